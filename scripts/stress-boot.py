#!/usr/bin/env python3
"""Boot a target again and again on a busy host, and keep what went wrong.

Each boot is `lab up` to an answered SSH command, optionally a short soak, then
`lab down`. The boot retry lab normally allows for emulator faults is turned
off here, so every fault shows: a run reports how many boots `lab up` would
have retried (QEMU exiting silently, SSH silent after the guest said ready) and
how many failed outright. The console and the verdict of each bad boot are saved
under --out; a guest whose SSH stays silent is examined before it is stopped
(sysrq t, QEMU's interrupt and virtqueue state, and whether a link toggle revives SSH).

    scripts/stress-boot.py TARGET [--boots N] [--busy K] [--compile K] [--soak-cycles C]
                           [--catch-exits] [--out DIR] [--json]

--busy K runs K busy loops (default: one per host core) for the whole run, and
--compile K as many compiler loops beside them, the load of a parallel build.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import interrupt  # noqa: E402
from lab.build import ensure_images  # noqa: E402
from lab.config import load_lab  # noqa: E402
from lab.deadline import Deadline  # noqa: E402
from lab.guest.qemu import BootVerdict, Guest  # noqa: E402
from lab.soak.run import SoakOptions, run_soak  # noqa: E402
from lab.verdict import BootOutcome  # noqa: E402


def busy_loops(k: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
            for _ in range(k)]


def compile_loops(k: int) -> list[subprocess.Popen]:
    """K compilers at work all the time, the load of a parallel build: short-lived
    processes, memory and cache pressure (the soak agent's C source, at -O2)."""
    source = Path(__file__).resolve().parent.parent / "lab/soak/agent/soak-agent.c"
    return [subprocess.Popen(["sh", "-c", f"while :; do gcc -O2 -c -o /dev/null {source}; done"],
                             start_new_session=True, stderr=subprocess.DEVNULL)
            for _ in range(k)]


def hmp(guest, command: str) -> str:
    try:
        return guest.hmp(command, timeout=10)
    except Exception as e:
        return f"({command} failed: {e})"


def console_commands(guest, commands: str, wait: float = 8.0) -> list[str]:
    """Type ``commands`` into the guest's console shell; the console lines that follow."""
    guest.console.poll()
    start = len(guest.console.lines)
    try:
        with guest.console_connection() as keys:
            keys.sendall(b"\r")          # "Please press Enter to activate this console."
            time.sleep(1.5)
            keys.sendall(commands.encode() + b"\r")
            time.sleep(wait)
    except OSError as e:
        return [f"(console socket: {e})"]
    guest.console.poll()
    return guest.console.lines[start:]


def virtio_net_queues(guest) -> list[str]:
    """The NIC's virtqueues as QEMU sees them (no guest involved): indexes of the
    receive and transmit rings, and the receive ring's next element as QEMU reads it
    from guest memory, which is the DMA path a stalled NIC would have lost."""
    try:
        devices = guest.qmp("x-query-virtio", timeout=10)
        path = next(d["path"] for d in devices if d["name"] == "virtio-net")
    except Exception as e:
        return [f"(x-query-virtio failed: {e})"]
    out = [f"virtio-net at {path}"]
    for queue, name in ((0, "rx"), (1, "tx")):
        for command in ("x-query-virtio-queue-status", "x-query-virtio-queue-element"):
            try:
                out.append(f"{name} {command}: "
                           + json.dumps(guest.qmp(command, timeout=10, path=path, queue=queue)))
            except Exception as e:
                out.append(f"{name} {command} failed: {e}")
    return out


def ssh_answers(guest, tries: int = 5) -> bool:
    for _ in range(tries):
        try:
            with guest.connection(command_timeout=10, connect_timeout=8).connect() as c:
                c.run(["true"], timeout=10)
            return True
        except Exception:
            time.sleep(2)
    return False


def examine_silent_ssh(guest, path: Path) -> str:
    """While a guest whose SSH stays silent still runs: its tasks (sysrq t through
    the keyboard), QEMU's interrupt state, the NIC's virtqueues read twice, QEMU's
    virtqueue trace events during an SSH attempt, what the guest itself says on its
    serial console (counters, ARP, a ping of the gateway), then whether a link
    toggle, and after it taking eth0 down and up in the guest, revives SSH.
    Returns what revived it, if anything."""
    guest.console.poll()
    start = len(guest.console.lines)
    hmp(guest, "sendkey alt-sysrq-t")
    time.sleep(4)
    guest.console.poll()
    parts = ["--- sysrq t ---", *guest.console.lines[start:]]
    for command in ("info irq", "info pic", "info network", "info pci"):
        parts += [f"--- {command} ---", hmp(guest, command)]
    parts += ["--- virtio-net queues ---", *virtio_net_queues(guest)]
    # QEMU's virtqueue trace events (to its stderr) while one more SSH attempt is made.
    stderr_before = len(guest.stderr())
    hmp(guest, "log trace:virtqueue_*,trace:virtio_queue_notify,trace:virtio_notify*")
    parts += [f"--- SSH attempt with virtqueue tracing: answered={ssh_answers(guest, 1)} ---"]
    hmp(guest, "log none")
    parts += [guest.stderr()[stderr_before:][-6000:]]
    parts += ["--- virtio-net queues, again ---", *virtio_net_queues(guest)]
    # The serial console's shell does not need the network: ask the guest itself.
    parts += ["--- the guest, asked on its serial console ---",
              *console_commands(guest, "cat /proc/interrupts; cd /sys/class/net/eth0/statistics; "
                                "grep . rx_packets tx_packets rx_missed_errors rx_errors "
                                "tx_errors; cd /; cat /proc/net/arp; cat /proc/net/tcp; "
                                "for d in /sys/bus/pci/devices/*; do grep -q 0x1af4 $d/vendor "
                                "&& od -An -tx1 -N8 $d/config; done; "
                                "ping -c 1 -W 2 10.0.2.2; cat /proc/net/arp; "
                                "cat /sys/class/net/eth0/statistics/rx_packets", wait=10)]
    # Down for long enough that the guest's driver sees both edges.
    start = len(guest.console.lines)
    hmp(guest, "set_link net0 off")
    time.sleep(5)
    hmp(guest, "set_link net0 on")
    result = "ssh answered after a link toggle" if ssh_answers(guest) else None
    guest.console.poll()
    parts += ["--- console during and after the link toggle ---", *guest.console.lines[start:]]
    if result is None:
        # The driver's close and open: every receive register written again.
        parts += ["--- eth0 down and up in the guest ---",
                  *console_commands(guest, "ip link set eth0 down; ip link set eth0 up; sleep 3; "
                                    "ip route add default via 10.0.2.2; ip route", wait=6)]
        result = ("ssh answered after eth0 down and up" if ssh_answers(guest)
                  else "ssh still silent after a link toggle and eth0 down and up")
    path.write_text("\n".join([result, *parts]) + "\n")
    return result


def examine_stopped_guest(guest, path: Path) -> str:
    """A guest that went silent, running or stopped after asking QEMU to shut down
    or reset (kept by -no-shutdown): where each CPU was, in registers and code.
    Returns the run state."""
    state = hmp(guest, "info status").strip()
    parts = [state]
    for command in ("info cpus", "info registers -a", "x/12i $pc - 24"):
        parts += [f"--- {command} ---", hmp(guest, command)]
    path.write_text("\n".join(parts) + "\n")
    return state


def catching_exits(target, out: Path, n: int):
    """The target with QEMU kept alive when the guest shuts down or resets, and
    guest errors and unimplemented device accesses logged, for one boot."""
    args = ("-no-shutdown", "-d", "guest_errors,unimp", "-D", str(out / f"boot-{n}-qemu.log"))
    # The guest stops printing when it stops: notice it sooner than a real hang.
    return replace(target, qemu_args=target.qemu_args + args,
                   timeouts=replace(target.timeouts, silence=min(target.timeouts.silence, 20.0)))


def one_boot(lab, target, images, n: int, out: Path, soak_cycles: int,
             catch_exits: bool) -> dict:
    rec = {"boot": n, "outcome": "ok"}
    t0 = time.monotonic()
    if catch_exits:
        target = catching_exits(target, out, n)
    guest = Guest.launch(target, images, f"stress-{n}", "tcg")
    try:
        t = target.timeouts
        conn = guest.wait_ready(Deadline(t.boot, f"boot of {target.name}"), t.silence,
                                t.ssh_after_ready)
    except BootVerdict as e:
        rec.update(outcome="would-retry" if e.emulator_fault else "failed", verdict=e.outcome,
                   seconds=round(time.monotonic() - t0, 2))
        guest.console.poll()   # the whole console: an oops's first lines are the ones that tell
        (out / f"boot-{n}.txt").write_text(f"{e}\n\n--- console ---\n"
                                           + "\n".join(guest.console.lines) + "\n")
        if e.outcome is BootOutcome.SILENT_HANG and guest.running():
            # Stopped by the guest itself (-no-shutdown) or stuck while running (a
            # frozen clock, a spin): where each CPU is, before the guest is gone.
            state = examine_stopped_guest(guest, out / f"boot-{n}-stopped.txt")
            if catch_exits and "shutdown" in state:
                rec.update(outcome="would-retry", verdict="guest-shutdown")
        if e.outcome in (BootOutcome.SSH_SILENT, BootOutcome.NO_NETWORK) and guest.running():
            rec["revived"] = examine_silent_ssh(guest, out / f"boot-{n}-examined.txt")
        guest.shutdown(hard_only=True)
        return rec
    except BaseException:
        guest.shutdown(hard_only=True)
        raise
    try:
        conn.run(["uname", "-r"], timeout=30)
        rec["ready_seconds"] = round(time.monotonic() - t0, 2)
        if soak_cycles:
            conn.close()
            res = run_soak(lab, target, SoakOptions(out=out / f"soak-{n}", accel="tcg",
                                                    cycles=soak_cycles, name=f"stress-{n}",
                                                    keep=True))
            rec["soak"] = res.verdict.value
            if res.verdict != "pass":
                rec["outcome"] = "soak-" + res.verdict.value
                rec["reason"] = res.summary.reason
    finally:
        conn.close()
        # -no-shutdown keeps QEMU after a poweroff: then only QMP quit ends it.
        guest.shutdown(soft_timeout=10, hard_only=catch_exits)
    return rec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target")
    p.add_argument("--boots", type=int, default=30)
    p.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                   help="busy loops for the whole run (0: an idle host)")
    p.add_argument("--compile", type=int, default=0,
                   help="compiler loops besides the busy loops, like a parallel build")
    p.add_argument("--soak-cycles", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("stress-results"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--catch-exits", action="store_true",
                   help="keep QEMU when the guest shuts down or resets (-no-shutdown) and log "
                        "guest errors, so a silent exit can be examined")
    args = p.parse_args()
    lab = load_lab()
    target = replace(lab.target(args.target), boot_retries=0)
    images = ensure_images(lab, target)
    args.out.mkdir(parents=True, exist_ok=True)
    interrupt.install()  # Ctrl-C or SIGTERM: the guest of the boot under way is stopped too
    loops = busy_loops(args.busy) + compile_loops(args.compile)
    boots = []
    try:
        for n in range(1, args.boots + 1):
            boots.append(one_boot(lab, target, images, n, args.out, args.soak_cycles,
                                  args.catch_exits))
            b = boots[-1]
            print(f"[{time.strftime('%H:%M:%S')}] boot {n}/{args.boots}: {b['outcome']}"
                  f" {b.get('ready_seconds', b.get('seconds', ''))}s", file=sys.stderr)
    finally:
        for proc in loops:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ready = [b["ready_seconds"] for b in boots if "ready_seconds" in b]
    summary = {
        "target": args.target, "boots": len(boots), "busy_loops": args.busy,
        "compile_loops": args.compile, "cores": os.cpu_count(), "soak_cycles": args.soak_cycles,
        "outcomes": {k: sum(1 for b in boots if b["outcome"] == k)
                     for k in sorted({b["outcome"] for b in boots})},
        "ready_p50_s": round(statistics.median(ready), 2) if ready else None,
        "ready_max_s": max(ready) if ready else None,
        "bad_boots": [b for b in boots if b["outcome"] != "ok"],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.target}: {summary['boots']} boots with {args.busy} busy loop(s) and "
              f"{args.compile} compiler loop(s) on "
              f"{summary['cores']} cores: {summary['outcomes']}; SSH ready p50 "
              f"{summary['ready_p50_s']} s, max {summary['ready_max_s']} s; "
              f"details in {args.out}/")
    return 0 if summary["outcomes"].get("ok", 0) == len(boots) else 1


if __name__ == "__main__":
    sys.exit(main())
