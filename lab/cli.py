"""The `lab` command line. ``main(argv, deps)`` so tests drive it without a shell."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from rich.console import Console
from rich.table import Table

from . import __version__, cli_module, interrupt
from .build import build_targets, ensure_images
from .cache import Store
from .cli_common import kernel_flags, kernel_options, variant_of
from .config import DEFAULT_TARGET, THREADING_LABELS, Timeouts, load_lab, parse_timeout_factor
from .errors import LabError
from .guest.lifecycle import down, find, up
from .guest.qemu import Guest
from .guest.state import all_records, remove
from .images import kernel_step
from .images.kernel import parse_config
from .keys import client_key_path
from .paths import cache_dir, project_root
from .verdict import Verdict


class UI:
    """Where commands print: results to stdout, progress and errors to stderr."""

    def __init__(self, json_mode: bool = False, verbose: bool = False):
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.json_mode, self.verbose = json_mode, verbose

    def emit_json(self, data: object) -> None:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))

    def note(self, msg: str) -> None:
        if self.verbose:
            self.err.print(msg, markup=False)

    @property
    def live(self) -> bool:
        """A terminal gets rich's live status lines; a log file gets plain timestamped lines."""
        return self.err.is_terminal

    def line(self, msg: str) -> None:
        """One plain progress line on stderr: '[12:03:04] msg'."""
        self.err.print(f"[{time.strftime('%H:%M:%S')}] {msg}", markup=False, highlight=False)

    @contextmanager
    def status(self, initial: str) -> Iterator["object"]:
        t0 = time.monotonic()
        if not self.live:
            last = [""]

            def plain(msg: str) -> None:
                if msg != last[0]:
                    last[0] = msg
                    self.line(f"{msg} ({time.monotonic() - t0:.0f}s)")
            plain(initial)
            yield plain
            return
        with self.err.status(initial) as st:
            def update(msg: str) -> None:
                st.update(f"{msg}  [dim]({time.monotonic() - t0:.0f}s)[/dim]")
            yield update


def _lab():
    return load_lab()


# ---- images ---------------------------------------------------------------------
def cmd_images_build(args, ui: UI) -> int:
    lab = _lab()
    names = list(lab.targets) if args.all or not args.targets else args.targets
    targets = [variant_of(lab, lab.target(n), args) for n in names]
    with ui.status("planning") as status:
        def on_step(step, i, n):
            status(f"[{i + 1}/{n}] {step.kind} {step.name}")
        report = build_targets(lab, targets, jobs=args.jobs, status=status, on_step=on_step)
    if ui.json_mode:
        ui.emit_json(report.as_json())
        return 0
    if not report.built:
        ui.out.print(f"all images up to date for {', '.join(names)} "
                     f"({report.seconds:.2f}s, nothing built)")
    for step, secs in report.built:
        ui.out.print(f"built {step.kind} {step.name} [{step.key}] in {secs:.1f}s", markup=False)
    return 0


def cmd_images_list(args, ui: UI) -> int:
    arts = Store(cache_dir()).all()
    rows = []
    for a in arts:
        m = a.manifest()
        rows.append({"kind": a.kind, "name": a.name, "key": a.key, "size": m.get("size", 0),
                     "built": m.get("built", ""), "path": str(a.path)})
    if ui.json_mode:
        ui.emit_json(rows)
        return 0
    t = Table("kind", "name", "key", "size", "built")
    for r in rows:
        t.add_row(r["kind"], r["name"], r["key"], f"{r['size'] / 2**20:.1f} MiB", r["built"])
    ui.out.print(t)
    return 0


def cmd_images_show(args, ui: UI) -> int:
    """The effective kernel .config of a target (with --kernel/--config/--config-fragment)."""
    lab = _lab()
    target = variant_of(lab, lab.target(args.target or lab.default_target), args)
    step = kernel_step(lab, target)
    art = step.artifact(Store(cache_dir()))
    config = art.path / "build" / ".config"
    info = {"target": target.name, "kernel": step.name, "key": art.key, "built": art.exists(),
            "fragments": [str(project_root() / f) for f in step.spec.fragments],
            "config_path": str(config)}
    if not art.exists():
        flags = shlex.join([*kernel_flags(args)])
        raise LabError(f"kernel {step.name} ({art.key}) for {target.name} is not built: run "
                       f"`lab images build {target.name}{' ' + flags if flags else ''}`")
    text = config.read_text()
    if ui.json_mode:
        ui.emit_json({**info, "config": parse_config(text)})
        return 0
    ui.note(f"{target.name}: kernel {step.name}, key {art.key}\n"
            f"fragments: {', '.join(info['fragments'])}\n{config}:")
    sys.stdout.write(text)
    return 0


# ---- guests ------------------------------------------------------------------------
def _reach(rec) -> dict:
    plain = ["ssh", "-p", str(rec.ssh_port), "-i", str(client_key_path()),
             "-o", f"UserKnownHostsFile={rec.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             "root@127.0.0.1"]
    return {"lab_ssh": f"lab ssh {rec.name}", "ssh": shlex.join(plain)}


def cmd_up(args, ui: UI) -> int:
    lab = _lab()
    target = variant_of(lab, lab.target(args.target or lab.default_target), args)
    t0 = time.monotonic()
    with ui.status(f"starting {target.name}") as status:
        images = ensure_images(lab, target, status)
        guest, conn = up(lab, target, images=images, name=args.name, smp=args.smp,
                         memory=args.memory, accel=args.accel, timeout=args.timeout,
                         cold=args.cold, status=status, verbose=ui.note)
    conn.close()
    rec = guest.record
    elapsed = time.monotonic() - t0
    info = {"name": rec.name, "target": rec.target, "pid": rec.pid, "ssh_port": rec.ssh_port,
            "accel": rec.accel, "smp": rec.smp, "cpu_model": rec.cpu_model,
            "threading": rec.threading, "from_snapshot": rec.from_snapshot, "ready_seconds": rec.ready_seconds,
            "up_seconds": round(elapsed, 2), "snapshot_note": rec.snapshot_note, **_reach(rec)}
    if ui.json_mode:
        ui.emit_json(info)
    else:
        how = "restored from its snapshot" if rec.from_snapshot else "booted"
        ui.out.print(f"{rec.name} is up ({rec.smp} x {rec.cpu_model or '?'}, "
                     f"{THREADING_LABELS.get(rec.threading, rec.accel)}, "
                     f"{how}, SSH ready in {rec.ready_seconds:.1f}s)")
        if rec.snapshot_note:
            ui.out.print(f"  no snapshot: {rec.snapshot_note}")
        ui.out.print(f"  {info['lab_ssh']}")
        ui.out.print(f"  {info['ssh']}")
    return 0


def _names(args) -> list[str]:
    if args.all:
        return [r.name for r in all_records()]
    if not args.name:
        raise LabError("name a guest, or use --all")
    return [args.name]


def cmd_down(args, ui: UI) -> int:
    results = {}
    for name in _names(args):
        with ui.status(f"stopping {name}"):
            results[name] = down(name, args.timeout)
    if ui.json_mode:
        ui.emit_json(results)
    else:
        for name, how in results.items():
            ui.out.print(f"{name}: stopped ({how})")
        if not results:
            ui.out.print("no guests running")
    return 0


def cmd_status(args, ui: UI) -> int:
    rows = []
    for rec in all_records():
        g = Guest(rec)
        alive = g.running()
        qmp_ok = ssh_ok = False
        if alive:
            try:
                g.qmp("query-status", timeout=2)
                qmp_ok = True
            except Exception:
                pass
            try:
                with g.connection(command_timeout=5).connect() as c:
                    ssh_ok = c.run("true", timeout=5, check=False).exit_code == 0
            except Exception:
                pass
        else:
            remove(rec.name)
        rows.append({"name": rec.name, "target": rec.target, "pid": rec.pid,
                     "state": "running" if alive else "stale (cleaned)",
                     "uptime": round(time.time() - rec.started) if alive else None,
                     "ssh_port": rec.ssh_port, "qmp": qmp_ok, "ssh": ssh_ok, "accel": rec.accel,
                     "smp": rec.smp, "cpu_model": rec.cpu_model})
    if ui.json_mode:
        ui.emit_json(rows)
        return 0
    t = Table("name", "target", "state", "uptime", "ssh port", "QMP", "SSH", "accel", "cpus",
              "cpu model")
    for r in rows:
        t.add_row(r["name"], r["target"], r["state"],
                  f"{r['uptime']}s" if r["uptime"] is not None else "-", str(r["ssh_port"]),
                  "ok" if r["qmp"] else "-", "ok" if r["ssh"] else "-", r["accel"], str(r["smp"]),
                  r["cpu_model"] or "?")
    ui.out.print(t if rows else "no guests")
    return 0


def cmd_ssh(args, ui: UI) -> int:
    rec = find(args.name)
    command = [c for c in args.command if c != "--"]
    if not command:
        argv = shlex.split(_reach(rec)["ssh"])
        os.execvp(argv[0], argv)
    # Like ssh: standard input that is not a terminal goes to the command (`lab ssh
    # NAME -- 'cat > f' < f`); `< /dev/null` gives it none.
    stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    timeout = args.timeout
    if timeout is None:     # the target's, scaled for this host; Timeouts' own if it is gone
        target = _lab().targets.get(rec.target)
        timeout = (target.timeouts if target else Timeouts()).ssh_command
    with Guest(rec).connection(command_timeout=timeout).connect() as c:
        r = c.run(" ".join(command) if len(command) == 1 else command, check=False, stdin=stdin)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.exit_code


def cmd_console(args, ui: UI) -> int:
    rec = find(args.name)
    path = rec.console_log
    with open(path, "rb") as f:
        while True:
            chunk = f.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            elif not args.follow or not Guest(rec).running():
                return 0
            else:
                time.sleep(0.2)


# ---- parser ------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description="QEMU test lab for Linux kernel modules")
    p.add_argument("--version", action="version", version=f"lab {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="print QEMU command lines and details")
    p.add_argument("--timeout-factor", metavar="F",
                   help="multiply every timeout by F (above 0, at most 100) on slow or busy "
                        "hosts, or auto (or LAB_TIMEOUT_FACTOR)")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help_, json_flag=True, parent=sub, parents=()):
        sp = parent.add_parser(name, help=help_, parents=list(parents))
        sp.set_defaults(func=func)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    images = sub.add_parser("images", help="build and list guest images")
    isub = images.add_subparsers(dest="images_command", required=True)
    b = add("build", cmd_images_build, "build missing kernels and root filesystems", parent=isub)
    b.add_argument("targets", nargs="*", metavar="TARGET")
    b.add_argument("--all", action="store_true", help="every target (the default)")
    b.add_argument("-j", "--jobs", type=int, default=None, help="parallel make jobs (default: cores)")
    kernel_options(b, "the targets'")
    add("list", cmd_images_list, "list built artifacts", parent=isub)
    sh = add("show", cmd_images_show, "print a target's effective kernel .config", parent=isub)
    sh.add_argument("target", nargs="?", help=f"target name (default: {DEFAULT_TARGET})")
    kernel_options(sh)

    u = add("up", cmd_up, "boot a guest and wait until SSH answers")
    u.add_argument("target", nargs="?", help=f"target name (default: {DEFAULT_TARGET})")
    u.add_argument("--name", help="guest name (default: the target name)")
    u.add_argument("--smp", type=int, help="override the target's vCPU count")
    u.add_argument("--memory", type=int, help="override the target's memory (MiB)")
    u.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    u.add_argument("--timeout", type=float, help="seconds to SSH-ready (default: target's boot timeout)")
    u.add_argument("--cold", action="store_true",
                   help="boot the kernel even if a post-boot snapshot exists (LAB_SNAPSHOTS=0: always)")
    kernel_options(u)

    d = add("down", cmd_down, "shut a guest down (soft, then hard)")
    d.add_argument("name", nargs="?")
    d.add_argument("--all", action="store_true")
    d.add_argument("--timeout", type=float, default=20.0, help="soft shutdown timeout (s)")

    add("status", cmd_status, "list guests and their health")

    s = add("ssh", cmd_ssh, "shell on a guest, or run a command", json_flag=False)
    s.add_argument("name")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.add_argument("--timeout", type=float,
                   help="command timeout (s; default: the target's timeouts.ssh_command)")

    c = add("console", cmd_console, "print a guest's serial console log", json_flag=False)
    c.add_argument("name")
    c.add_argument("-f", "--follow", action="store_true")

    cli_module.register(sub, add)
    return p


def _set_timeout_factor(flag: str | None) -> None:
    """``--timeout-factor F`` becomes LAB_TIMEOUT_FACTOR, checked as that is, and a bad
    one is refused before the command runs, whether or not the command loads a target."""
    if flag is not None:
        parse_timeout_factor(flag, "--timeout-factor")
        os.environ["LAB_TIMEOUT_FACTOR"] = flag
    else:
        parse_timeout_factor(os.environ.get("LAB_TIMEOUT_FACTOR", "auto"))


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    ui = UI(json_mode=getattr(args, "json", False), verbose=args.verbose)
    restore = interrupt.install()
    try:
        _set_timeout_factor(args.timeout_factor)
        return args.func(args, ui)
    except LabError as e:
        ui.err.print(f"lab: error: {e}", markup=False)
        return e.exit_code
    except KeyboardInterrupt:
        ui.err.print(f"lab: {interrupt.reason()}", markup=False)
        return Verdict.INTERRUPTED.exit_code
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
