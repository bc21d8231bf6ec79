"""CLI commands about the module under test: build, deploy, soak, matrix, report."""

from __future__ import annotations

from pathlib import Path


def _lab():
    from .config import load_lab
    return load_lab()


def cmd_module_build(args, ui) -> int:
    from .module import build_module
    lab = _lab()
    target = lab.target(args.target or lab.default_target)
    with ui.status(f"building module for {target.name}") as status:
        mod, built = build_module(lab, target, args.module, status=status)
    info = {"target": target.name, "module": mod.spec.module, "path": str(mod.path),
            "sha256": mod.sha256, "key": mod.key, "kernel_release": mod.release, "built": built}
    if ui.json_mode:
        ui.emit_json(info)
    else:
        ui.out.print(f"{'built' if built else 'cached'} {mod.path} for {target.name} "
                     f"(kernel {mod.release}, sha256 {mod.sha256[:16]})")
    return 0


def cmd_deploy(args, ui) -> int:
    from .deploy import module_remote_path, put_file
    from .guest import Guest
    from .lifecycle import find
    from .module import build_module
    lab = _lab()
    target = lab.target(args.target or lab.default_target)
    rec = find(args.name or target.name)
    if rec.target != target.name:
        raise_mismatch(rec, target)
    with ui.status(f"deploying to {rec.name}") as status:
        mod, _ = build_module(lab, target, args.module, status=status)
        with Guest(rec).connection().connect() as conn:
            d = put_file(conn, mod.path, module_remote_path(mod.spec.module, mod.path))
    info = {"guest": rec.name, "remote": d.remote, "sha256": d.sha256, "size": d.size,
            "sent": d.sent}
    if ui.json_mode:
        ui.emit_json(info)
    else:
        ui.out.print(f"{'deployed' if d.sent else 'already deployed'} {d.remote} on {rec.name} "
                     f"({d.size} bytes, sha256 {d.sha256[:16]})")
    return 0


def raise_mismatch(rec, target):
    from .errors import LabError
    raise LabError(f"guest {rec.name} runs target {rec.target}, not {target.name}")


def register(sub, add) -> None:
    """Add this module's subcommands to the parser."""
    m = sub.add_parser("module", help="build the module under test")
    msub = m.add_subparsers(dest="module_command", required=True)
    b = add("build", cmd_module_build, "cross-build a module for a target", parent=msub)
    b.add_argument("target", nargs="?")
    b.add_argument("--module", type=Path, help="module directory (default: the lab's module/)")

    d = add("deploy", cmd_deploy, "build and upload the module to a running guest")
    d.add_argument("target", nargs="?")
    d.add_argument("--module", type=Path, help="module directory (default: the lab's module/)")
    d.add_argument("--name", help="guest name (default: the target name)")
