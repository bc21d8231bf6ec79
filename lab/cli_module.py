"""CLI commands about the module under test: build, deploy, soak, matrix, report."""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn)
from rich.table import Table

from .cli_common import kernel_options, variant_of
from .config import DEFAULT_TARGET, load_lab
from .deploy import module_remote_path, put_file
from .errors import LabError
from .guest.lifecycle import find
from .guest.qemu import Guest
from .integrations import ktap
from .integrations.bisect import BISECT_EXIT, bisect
from .integrations.kcidb import export
from .matrix import default_jobs, parse_shard, run_matrix, shard_cells
from .module import build_module
from .report import load_records, soak_facts, threading_label, write_report
from .results import SoakSummary
from .soak.run import SoakOptions, run_soak
from .soak.thresholds import NAMES
from .verdict import Verdict
from .results.files import CONSOLE, JUNIT, RECORDS, REPORT_DIR, REPORT_HTML, SUMMARY


def _lab():
    return load_lab()


def cmd_module_build(args, ui) -> int:
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
    lab = _lab()
    target = lab.target(args.target or lab.default_target)
    rec = find(args.name or target.name)
    if rec.target != target.name:
        raise LabError(f"guest {rec.name} runs target {rec.target}, not {target.name}")
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


def register(sub, add) -> None:
    """Add this module's subcommands to the parser."""
    soak_options = _soak_parent()
    m = sub.add_parser("module", help="build the module under test")
    msub = m.add_subparsers(dest="module_command", required=True)
    b = add("build", cmd_module_build, "cross-build a module for a target", parent=msub)
    b.add_argument("target", nargs="?")
    b.add_argument("--module", type=Path, help="module directory (default: the lab's module/)")

    d = add("deploy", cmd_deploy, "build and upload the module to a running guest")
    d.add_argument("target", nargs="?")
    d.add_argument("--module", type=Path, help="module directory (default: the lab's module/)")
    d.add_argument("--name", help="guest name (default: the target name)")

    s = add("soak", cmd_soak, "load/unload soak with timing, thread and zombie checks",
            parents=[soak_options])
    s.add_argument("--target", action="append", help=f"target (repeatable; default {DEFAULT_TARGET})")
    s.add_argument("--keep", action="store_true", help="leave a guest the soak booted running")
    s.add_argument("--keep-going", action="store_true", help="continue after a failed cycle")
    s.add_argument("--out", type=Path, default=Path("results"), help="results directory")
    s.add_argument("--ktap", action="store_true", help="stream KTAP v1 to stdout (one subtest per cycle)")
    s.add_argument("--bisect-exit-codes", action="store_true",
                   help="exit as `git bisect run` wants: 0 pass, 1 fail/crash/hang, 125 infra "
                        "(skip), 128 interrupted (abort)")

    bi = add("bisect", cmd_bisect, "find the module commit that broke the soak (git bisect)")
    bi.add_argument("good", help="a commit that passes")
    bi.add_argument("bad", help="a commit that fails")
    bi.add_argument("--target", help=f"target (default {DEFAULT_TARGET})")
    bi.add_argument("--cycles", type=int, default=20, help="soak cycles per step")
    bi.add_argument("--module", type=Path, default=Path("."),
                    help="module directory inside a git work tree (default: here)")
    bi.add_argument("--out", type=Path, default=Path("bisect-results"),
                    help="results: one soak directory per commit tested, bisect.log")

    mx = add("matrix", cmd_matrix, "soak every target, several guests at once, then report",
             parents=[soak_options])
    mx.add_argument("--targets", nargs="+", help="targets (default: all)")
    mx.add_argument("--jobs", type=int, default=None, help="guests at once (default: from cores and memory)")
    mx.add_argument("--shard", help="I/N: run the I-th of N stable subsets of the cells")
    mx.add_argument("--out", type=Path, default=Path("matrix-results"))
    mx.add_argument("--ktap", action="store_true", help="KTAP v1 on stdout, a block per cell as it ends")

    ex = sub.add_parser("export", help="soak results in other systems' formats")
    exsub = ex.add_subparsers(dest="export_command", required=True)
    kc = add("kcidb", cmd_export_kcidb, "KCIDB JSON (KernelCI) from result directories",
             json_flag=False, parent=exsub)
    kc.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    kc.add_argument("--out", type=Path, help="write to this file (default: stdout)")

    r = add("report", cmd_report, "merge result directories into report.html, summary.json, junit.xml")
    r.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    r.add_argument("--previous", nargs="+", type=Path, default=[], metavar="DIR",
                   help="an earlier run's results, for new failures, fixes and regressions")
    r.add_argument("--out", type=Path, help="report.html path (default: DIR/report/report.html)")


def _soak_parent() -> argparse.ArgumentParser:
    """The options `lab soak` and `lab matrix` share: what each soak does, on which
    kernel, judged by which thresholds."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--module", type=Path, help="module directory (default: the lab's module/)")
    p.add_argument("--params", default="", help='module parameters, "k=v ..."')
    p.add_argument("--dwell-every", type=int, default=0, metavar="K",
                   help="every K-th cycle keep the module loaded --dwell seconds")
    p.add_argument("--dwell", type=float, default=0.0, metavar="S")
    p.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    kernel_options(p, "each target's")
    _thresholds(p)
    return p


def _thresholds(parser) -> None:
    for name in NAMES:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=float, default=None,
                            help=f"threshold override ({name})")


def _soak_options(args, **kw):
    """SoakOptions from the shared soak/matrix flags, checked before anything runs."""
    opts = SoakOptions(cycles=args.cycles, module_dir=args.module, params=args.params,
                       dwell_every=args.dwell_every, dwell_s=args.dwell, accel=args.accel,
                       overrides={k: getattr(args, k) for k in NAMES}, **kw)
    opts.validate()
    return opts


class SoakProgress:
    """A soak's progress: a rich bar on a terminal; otherwise plain timestamped lines
    (each status change, every tenth of the cycles or 10 s, every new failure)."""

    def __init__(self, ui, target: str, cycles: int):
        self.ui, self.target, self.cycles = ui, target, cycles
        self.t0 = time.monotonic()
        self.last_line, self.fails = 0.0, 0
        self.bar = None

    def __enter__(self):
        if self.ui.live:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]} cycles/s  failures {task.fields[fails]}"),
                                TimeElapsedColumn(), console=self.ui.err, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task(f"{self.target}: starting", total=self.cycles,
                                          rate="-", fails=0)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def status(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=f"{self.target}: {msg}")
        else:
            self.ui.line(f"{self.target}: {msg}")

    def record(self, rec, fails: int) -> None:
        kind = rec.get("type")
        if kind == "baseline":
            self.t0 = time.monotonic()
        if kind == "unload-blocked" and self.bar is None:
            self.ui.line(f"{self.target}: cycle {rec['n']}: unload still blocked after "
                         f"{rec['after_us'] / 1000:.0f} ms")
        if kind != "cycle":
            return
        n = rec["n"]
        rate = n / max(1e-6, time.monotonic() - self.t0)
        if self.bar is not None:
            self.bar.update(self.task, completed=n, rate=f"{rate:.1f}", fails=fails,
                            description=f"{self.target}: soaking")
            return
        step = max(1, self.cycles // 10)
        if n % step == 0 or n == self.cycles or fails != self.fails or \
                time.monotonic() - self.last_line > 10:
            self.last_line, self.fails = time.monotonic(), fails
            self.ui.line(f"{self.target}: cycle {n}/{self.cycles}, {rate:.1f} cycles/s, "
                         f"{fails} failed cycle(s)")


def cmd_soak(args, ui) -> int:
    try:
        return _soak_all(args, ui)
    except LabError as e:
        if not args.bisect_exit_codes:
            raise
        # a commit that cannot be soaked (the module does not build, say) is skipped
        ui.err.print(f"lab: error: {e}", markup=False)
        return 125


def _one_stdout_format(args, ui) -> None:
    if args.ktap and ui.json_mode:
        raise LabError("--ktap and --json both want stdout: choose one")


def _ktap_line(line: str) -> None:
    print(line, flush=True)


def _soak_all(args, ui) -> int:

    base = _soak_options(args, keep=args.keep, keep_going=args.keep_going)
    _one_stdout_format(args, ui)
    lab = _lab()
    targets = [variant_of(lab, lab.target(t), args) for t in (args.target or [lab.default_target])]
    if args.ktap:
        ktap.header(len(targets), _ktap_line)
    results = []
    for i, target in enumerate(targets, 1):
        out = args.out / target.name if len(targets) > 1 else args.out
        k = ktap.KtapSoak(i, target.name, args.cycles, _ktap_line) if args.ktap else None
        with SoakProgress(ui, target.name, args.cycles) as shown:
            def progress(rec, fails):
                shown.record(rec, fails)
                if k:
                    k.record(rec)
            res = run_soak(lab, target, replace(base, out=out), progress=progress,
                           status=shown.status)
        if k:
            k.finish(res.summary)
        if not ui.live:
            ui.line(f"{target.name}: {res.verdict} after {res.summary.cycles} cycle(s)")
        results.append(res)
        if not ui.json_mode and not args.ktap:
            print_summary(ui, res)
    if ui.json_mode:
        ui.emit_json([r.summary.to_json() for r in results])
    if args.bisect_exit_codes:
        return max(BISECT_EXIT[r.verdict] for r in results)
    return max(r.exit_code for r in results)


def cmd_bisect(args, ui) -> int:
    lab = _lab()
    target = lab.target(args.target or lab.default_target)
    if args.cycles < 1:
        raise LabError(f"--cycles {args.cycles}: must be 1 or more")
    with ui.status(f"bisecting on {target.name}") as status:
        res = bisect(args.module, args.good, args.bad, target.name, args.cycles, args.out,
                     log=status)
    if ui.json_mode:
        ui.emit_json(res.as_json())
    else:
        ui.out.print(f"first bad commit: {res.first_bad} {res.subject}", markup=False)
        ui.out.print(f"  {res.verdict}: {res.reason or ', '.join(res.checks_failed)}", markup=False)
        if res.checks_failed:
            ui.out.print("  failed checks: " + ", ".join(f"{k} ({v})" for k, v in
                                                          res.checks_failed.items()), markup=False)
        ui.out.print(f"  {res.steps} commit(s) soaked; results in {res.out}/", markup=False)
    return 0


def _fmt(v, unit=""):
    return "-" if v is None else f"{v:.1f}{unit}"


def print_summary(ui, res) -> None:
    s = res.summary
    # run_soak returns a summary only once a guest ran the soak: every part is there
    setup, stats, module = s.setup, s.stats, s.module
    assert setup is not None and stats is not None, "a soak result without its setup"
    colour = "green" if res.verdict == "pass" else "red" if res.verdict.module_failed else "yellow"
    ui.out.print(f"[bold]{s.target}[/bold] ({s.arch}, {s.smp} x "
                 f"{s.cpu_model or s.cpu}{threading_label(s)}, kernel "
                 f"{s.guest.kernel_release if s.guest else '?'}): [{colour}]{s.verdict.upper()}[/]  "
                 f"{s.cycles}/{setup.requested_cycles} cycles, "
                 f"{s.cycles_per_second or 0:.2f} cycles/s ({s.seconds or 0:.1f}s in all)")
    t = Table("latency (ms)", "p50", "p95", "p99", "max")
    for k, v in stats.latency.items():
        t.add_row(k, _fmt(v.p50), _fmt(v.p95), _fmt(v.p99), _fmt(v.max))
    p = stats.period
    if p.samples:
        t.add_row(f"wake period (n={p.samples})", _fmt(p.p50), _fmt(p.p95),
                  _fmt(p.p99), _fmt(p.max))
    ui.out.print(t)
    if p.samples:
        ui.out.print(f"wake period: mean {_fmt(p.mean)} ms, jitter {_fmt(p.jitter)} ms "
                     f"(module period {module.period_ms if module else None} ms)")
    for line in soak_facts(s):
        ui.out.print(line, markup=False)
    pr = stats.processes
    ui.out.print(f"processes: baseline {pr.baseline}, first {pr.first}, last {pr.last}; "
                 f"max new zombies {stats.zombies_max}")
    th = ", ".join(f"{k}={v:g}" for k, v in setup.thresholds.items())
    ui.out.print(f"thresholds: {th}", markup=False)
    if setup.timeout_policy:
        ui.out.print(f"timeouts: {setup.timeout_policy}", markup=False)
    if s.reason:
        ui.out.print(f"reason: {s.reason}", markup=False)
    for line in s.evidence[:60]:
        ui.out.print(f"  | {line}", markup=False)
    for f in s.failures[:10]:
        ui.out.print(f"cycle {f.cycle}: {f.check}: {f.message}", markup=False)
        for e in f.evidence[:5]:
            ui.out.print(f"    {e}", markup=False)
    ui.out.print(f"results: {res.out}/ ({RECORDS}, {SUMMARY}, {CONSOLE}, {JUNIT})")


def cmd_matrix(args, ui) -> int:

    base = _soak_options(args)
    lab = _lab()
    targets = [variant_of(lab, lab.target(t), args) for t in (args.targets or sorted(lab.targets))]
    shard = parse_shard(args.shard)
    jobs = args.jobs or default_jobs()
    _one_stdout_format(args, ui)
    ended = _ktap_cells(args, targets, shard) if args.ktap else (lambda cell: None)
    with Progress(TextColumn("{task.description:24}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[state]}"), console=ui.err, disable=not ui.live) as bar:
        tasks = {}

        def task_of(cell):
            if cell.target.name not in tasks:
                tasks[cell.target.name] = bar.add_task(cell.target.name, total=args.cycles,
                                                       state="waiting")
            return tasks[cell.target.name]

        def on_cell(cell, event):
            state = str(cell.verdict) if event == "done" else event
            bar.update(task_of(cell), state=state)
            if event == "done":
                ended(cell)
            if not ui.live:
                ui.line(f"{cell.target.name}: {state}")

        def progress_for(cell):
            step = max(1, args.cycles // 10)

            def progress(rec, fails):
                if rec.get("type") == "cycle":
                    bar.update(task_of(cell), completed=rec["n"],
                               state=f"running, {fails} failed" if fails else "running")
                    if not ui.live and rec["n"] % step == 0:
                        ui.line(f"{cell.target.name}: cycle {rec['n']}/{args.cycles}, "
                                f"{fails} failed cycle(s)")
            return progress
        cells = run_matrix(lab, targets, base, args.out, jobs, shard, on_cell, progress_for)
    merged = write_report([args.out], args.out / REPORT_HTML)
    if ui.json_mode:
        ui.emit_json({"cells": [{"target": c.target.name, "verdict": c.verdict,
                                 "seconds": round(c.seconds, 2)} for c in cells],
                      "verdict": str(merged.verdict), "out": str(args.out)})
    elif not args.ktap:
        for c in cells:
            ui.out.print(f"{c.target.name:16} {c.verdict:6} {c.seconds:7.1f}s  {c.out}")
        ui.out.print(f"report: {args.out / REPORT_HTML}")
    return max((Verdict(c.verdict).exit_code for c in cells), default=0)


def _ktap_cells(args, targets, shard):
    """KTAP header now; each cell's block when it ends (numbered in the order cells end)."""

    ktap.header(len(shard_cells([t.name for t in targets], shard)), _ktap_line)
    lock, count = threading.Lock(), [0]

    def ended(cell) -> None:
        with lock:
            count[0] += 1
            ktap.replay(count[0], cell.target.name, args.cycles, load_records(cell.out),
                        cell.summary or SoakSummary.stand_in(cell.target, cell.verdict, ""),
                        _ktap_line)
    return ended


def cmd_export_kcidb(args, ui) -> int:

    data = json.dumps(export(args.dirs), indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(data + "\n")
        ui.err.print(f"KCIDB data for {len(json.loads(data)['tests'])} test(s): {args.out}",
                     markup=False)
    else:
        print(data)
    return 0


def cmd_report(args, ui) -> int:
    out = args.out or (args.dirs[0] / REPORT_DIR / REPORT_HTML)
    merged = write_report(args.dirs, out, args.previous)
    if ui.json_mode:
        ui.emit_json(merged.to_json())
    else:
        for t, s in merged.cells.items():
            ui.out.print(f"{t:16} {s.verdict}")
        for line in merged.triage:
            ui.out.print(line)
        ui.out.print(f"report: {out} ({SUMMARY} and {JUNIT} beside it)")
    return merged.verdict.exit_code
