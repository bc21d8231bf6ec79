#!/usr/bin/env python3
"""Boot times per target: bare kernel boot vs `lab up` to SSH-ready, cold and
from the post-boot snapshot, side by side in one run.

Bare boot: QEMU start to the line a one-shot init (the image's busybox shell as
PID 1, `echo` and `read` builtins) prints on the serial console: firmware, kernel
start-up and one exec; not QEMU's exit nor the kernel's power-off path, which on
the 4-CPU Alpha took longer than a whole `lab up`.
lab up: `lab up` called to an SSH command answered, what a user waits for;
cold boots the kernel (`--cold`), snapshot restores the target's snapshot (saved
by one untimed `lab up` first if there is none).

    benchmarks/boot.py [TARGET...] [--runs N] [--json FILE]   (N: default 5)

--json FILE also writes every boot's time (seconds, in the order they ran) per
target, for a look at the spread behind the medians.
"""

import argparse
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.guest import snapshot  # noqa: E402
from lab.build import build_targets  # noqa: E402
from lab.cache import Store  # noqa: E402
from lab.config import load_lab  # noqa: E402
from lab.guest.console import KERNEL_MESSAGE  # noqa: E402
from lab.guest.qemu import QEMU_FAULT_SIGNALS, guest_cmdline, guest_command  # noqa: E402
from lab.images import images_for  # noqa: E402
from lab.guest.lifecycle import up  # noqa: E402
from lab.paths import cache_dir  # noqa: E402


# What the one-shot init prints, found in the console output with the kernel's
# messages cut out: its echo of the command line has the mark too, and a message
# printed meanwhile can land in the middle of the init's line.
BARE_MARK = "lab-bare-init"


def init_has_spoken(output: bytes) -> bool:
    return BARE_MARK in KERNEL_MESSAGE.sub("", output.decode(errors="replace"))


class EmulatorFault(RuntimeError):
    """QEMU itself died of a fault signal before the one-shot init spoke."""


def bare_boot(target, im, attempts: int = 3) -> float:
    """A bare boot's time; one that QEMU's own fault ended is booted again (what lab
    up does for its guests too), and said so on stderr."""
    for attempt in range(1, attempts + 1):
        try:
            return _bare_boot_once(target, im)
        except EmulatorFault as e:
            if attempt == attempts:
                raise
            print(f"{target.name}: bare boot {attempt}: {e}; booting again", file=sys.stderr)
    raise AssertionError("not reached")


def _bare_boot_once(target, im) -> float:
    # A shell that prints the mark with a builtin and then waits on its console: an
    # init that exits panics the kernel, and on SMP the panic can stop the CPUs
    # before the serial port has sent the line. The rest is lab up's own guest: the
    # same machine, devices and kernel options.
    cmdline = (re.sub(r"rdinit=\S+", "rdinit=/bin/sh", guest_cmdline(target))
               + f' -- -c "echo {BARE_MARK}; read forever"')
    argv = guest_command(target, im, "tcg", target.smp, target.memory, cmdline,
                         console=["-serial", "stdio"], netdev="user,id=net0")
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as err, \
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err) as p:
        try:
            seen = b""
            while not init_has_spoken(seen):
                left = 120 - (time.monotonic() - t0)
                if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
                    raise TimeoutError(f"{target.name}: no output of the one-shot init in 120 s")
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    code = p.wait()
                    err.seek(0)
                    why = err.read().decode(errors="replace").strip()[-300:] or "(no stderr)"
                    if code < 0 and -code in QEMU_FAULT_SIGNALS:
                        raise EmulatorFault(f"QEMU died of signal {-code}: {why}")
                    raise RuntimeError(f"{target.name}: QEMU ended (status {code}) before the "
                                       f"one-shot init ran: {why}")
                seen += chunk
            return time.monotonic() - t0
        finally:
            p.kill()


def lab_up(lab, target, cold: bool, priming: bool = False) -> float:
    t0 = time.monotonic()
    guest, conn = up(lab, target, accel="tcg", cold=cold)
    try:
        conn.run("true")
        took = time.monotonic() - t0
        if not cold and not priming and not guest.record.from_snapshot:
            raise RuntimeError(f"{target.name} did not restore: {guest.record.snapshot_note}")
        return took
    finally:
        conn.close()
        guest.shutdown(hard_only=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("targets", nargs="*")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path, metavar="FILE")
    args = ap.parse_args()
    os.environ.setdefault("LAB_RUN", tempfile.mkdtemp(prefix="lab-bench-run-"))
    lab = load_lab()
    targets = [lab.target(n) for n in (args.targets or lab.targets)]
    build_targets(lab, targets)
    store = Store(cache_dir())
    print(f"{'target':16} {'bare boot (s)':>14} {'cold up (s)':>12} {'ratio':>6} {'paired':>6} "
          f"{'snapshot up (s)':>16} {'ratio':>6}   (median of {args.runs})")
    samples = {}
    for t in targets:
        im = images_for(lab, t, store)
        # Interleaved, so that a host that slows down or speeds up mid-run weighs on
        # both columns alike.
        bares, colds = [], []
        for _ in range(args.runs):
            bares.append(bare_boot(t, im))
            colds.append(lab_up(lab, t, cold=True))
        bare, cold = statistics.median(bares), statistics.median(colds)
        # paired: the median of each cold boot over the bare boot just before it,
        # which a host drifting between minutes moves less than the medians' ratio.
        paired = statistics.median(c / b for b, c in zip(bares, colds))
        row = f"{t.name:16} {bare:14.2f} {cold:12.2f} {cold / bare:6.2f} {paired:6.2f} "
        samples[t.name] = {"bare": bares, "cold": colds}
        if why := snapshot.why_not(t, "tcg"):
            row += f"{'-':>16} {'-':>6}   ({why})"
        else:
            lab_up(lab, t, cold=False, priming=True)   # saves the snapshot if there is none
            warms = [lab_up(lab, t, cold=False) for _ in range(args.runs)]
            samples[t.name]["snapshot"] = warms
            warm = statistics.median(warms)
            row += f"{warm:16.2f} {warm / bare:6.2f}"
        print(row, flush=True)
        if args.json:
            args.json.write_text(json.dumps(samples, indent=1) + "\n")


if __name__ == "__main__":
    main()
