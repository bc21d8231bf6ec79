"""Choosing the accelerator: KVM only where a probe boot proves it runs guests.

On some hosts /dev/kvm exists and QEMU starts with -accel kvm, yet every guest
dies at once with "KVM internal error" and QEMU then hangs. So the first use of
KVM for an arch runs a short probe boot; its verdict is remembered per QEMU
binary and kernel, and TCG is used when it fails.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

from ..config import Target
from .console import KVM_FATAL
from ..deadline import Deadline
from ..paths import cache_dir
from ..runner import require


def _verdict_file() -> Path:
    return cache_dir() / "kvm-probe.json"


def kvm_possible(target: Target) -> bool:
    return (target.spec.host_kvm_arch == platform.machine()
            and os.access("/dev/kvm", os.R_OK | os.W_OK))


def probe_kvm(target: Target, kernel: Path, timeout: float = 20.0) -> tuple[bool, str]:
    """Boot ``kernel`` under KVM until it starts init; (works, evidence)."""
    qemu = require(target.spec.qemu, target.spec.qemu_package)
    argv = [qemu, "-M", target.machine, "-accel", "kvm", "-cpu", "host", "-m", "256",
            "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", str(kernel),
            "-append", "console=ttyS0 rdinit=/nonexistent panic=-1"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = []
    probe = Deadline(timeout, f"KVM probe boot of {target.name}")
    ok = False
    try:
        assert p.stdout is not None
        os.set_blocking(p.stdout.fileno(), False)
        while not probe.expired() and p.poll() is None:
            chunk = p.stdout.read() or b""
            out.append(chunk.decode(errors="replace"))
            text = "".join(out)
            if KVM_FATAL.search(text):
                break
            if "Run /" in text or "Kernel panic" in text:
                ok = True
                break
            probe.sleep(0.1)
    finally:
        p.kill()
        p.wait()
    text = "".join(out)
    return ok, text[-2000:]


def choose_accel(target: Target, kernel: Path, kernel_key: str, wanted: str = "auto") -> str:
    """'kvm' or 'tcg'. ``wanted`` may force either ('kvm' still requires a good probe)."""
    if wanted == "tcg" or not kvm_possible(target):
        return "tcg"
    vf = _verdict_file()
    try:
        verdicts = json.loads(vf.read_text())
    except (OSError, ValueError):
        verdicts = {}
    qemu = require(target.spec.qemu, target.spec.qemu_package)
    key = f"{qemu}:{os.stat(qemu).st_mtime_ns}:{kernel_key}"
    if key not in verdicts:
        ok, evidence = probe_kvm(target, kernel)
        verdicts[key] = {"ok": ok, "evidence": evidence[-500:]}
        vf.parent.mkdir(parents=True, exist_ok=True)
        vf.write_text(json.dumps(verdicts, indent=1))
    return "kvm" if verdicts[key]["ok"] else "tcg"
