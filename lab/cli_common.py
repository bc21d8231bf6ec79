"""Options more than one command shares: which kernel a target runs."""

from __future__ import annotations

import argparse

from .images.variant import variant


def kernel_options(p: argparse.ArgumentParser, what: str = "the target's") -> None:
    """--kernel, --config and --config-fragment: one set for every command that boots or builds."""
    p.add_argument("--kernel", metavar="PROFILE", help=f"kernel profile instead of {what} "
                   "(the debug kernel is a variant: --config-fragment debug)")
    p.add_argument("--config", action="append", default=[], metavar="CONFIG_X=y",
                   help="kernel config line for a variant kernel (repeatable)")
    p.add_argument("--config-fragment", action="append", default=[], metavar="FILE|NAME",
                   help="config fragment file, or a shipped one by name (debug); repeatable")


def variant_of(lab, target, args):
    return variant(lab, target, args.kernel, args.config, args.config_fragment)


def kernel_flags(args) -> list[str]:
    flags = ["--kernel", args.kernel] if args.kernel else []
    flags += [x for c in args.config for x in ("--config", c)]
    return flags + [x for f in args.config_fragment for x in ("--config-fragment", f)]
