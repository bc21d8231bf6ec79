"""Soak thresholds: configs/soak.yaml (defaults, then per arch), then command-line overrides."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping

from ..config import ARCHES, _load_yaml, _Reader, _positive, timeout_factor
from ..errors import ConfigError, LabError
from ..paths import project_root


@dataclass(frozen=True)
class Thresholds:
    max_load_ms: float = 1000
    max_threads_ms: float = 2000
    max_unload_ms: float = 1000
    cycle_deadline_s: float = 60
    hold_ms: float = 0
    hold_limit_ms: float = 5000
    period_tolerance_pct: float = 10
    max_jitter_ms: float = 100
    leak_kb_per_cycle: float = 4
    leak_min_kb: float = 128
    mem_noise_kb: float = 4096


# May be zero; every other threshold must be positive.
ZERO_ALLOWED = ("hold_ms",)


NAMES = tuple(f.name for f in fields(Thresholds))


def _values(r: _Reader) -> dict[str, float]:
    r.only(NAMES)
    out = {}
    for k in NAMES:
        if k in r.data:
            out[k] = float(r.get(k, (int, float)))
            if not (k in ZERO_ALLOWED and out[k] == 0):
                _positive(r, k, out[k])
    return out


# QEMU's round-robin slice when one host thread runs all of a guest's vCPUs
# (TCG_KICK_PERIOD, accel/tcg/tcg-accel-ops-rr.h): a vCPU whose timer fires while
# another vCPU runs may wait this long for its turn.
TCG_ROUND_ROBIN_MS = 100.0


def load_thresholds(arch: str, path: Path | None = None,
                    overrides: Mapping[str, float | None] | None = None,
                    factor: float | None = None, one_thread_smp: bool = False) -> Thresholds:
    """The soak's thresholds for ``arch``; its deadlines scaled by ``factor`` (a target's
    timeout_factor; by default the policy's for one vCPU). For an SMP guest on one TCG
    thread (``one_thread_smp``) the jitter allowed grows by QEMU's round-robin slice,
    unless the command line set it: the emulator's delay, not the module's."""
    path = path or project_root() / "configs" / "soak.yaml"
    r = _Reader(str(path), _load_yaml(path))
    r.only(("defaults", "arches"))
    t = Thresholds(**_values(r.sub("defaults", {}) or _Reader(str(path), {})))
    arches = r.sub("arches", {})
    assert arches is not None
    for name in arches.data:
        if name not in ARCHES:
            raise ConfigError(str(path), arches.key(str(name)),
                              f"unknown arch; valid: {', '.join(ARCHES)}")
    per_arch = arches.sub(arch, {}) if arch in arches.data else None
    if per_arch is not None:
        t = replace(t, **_values(per_arch))
    given = check_overrides(overrides) if overrides else {}
    if one_thread_smp and "max_jitter_ms" not in given:
        t = replace(t, max_jitter_ms=t.max_jitter_ms + TCG_ROUND_ROBIN_MS)
    t = replace(t, **given)
    factor = timeout_factor() if factor is None else factor
    return replace(t, cycle_deadline_s=t.cycle_deadline_s * factor,
                   hold_limit_ms=t.hold_limit_ms * factor)


def check_overrides(overrides: Mapping[str, float | None]) -> dict[str, float]:
    """The command line's threshold values, each checked: LabError naming the flag."""
    given = {k: float(v) for k, v in overrides.items() if v is not None}
    for k, v in given.items():
        if v < 0 or (v == 0 and k not in ZERO_ALLOWED):
            flag = "--" + k.replace("_", "-")
            raise LabError(f"{flag} {v:g}: must be {'zero or more' if k in ZERO_ALLOWED else 'positive'}")
    return given
