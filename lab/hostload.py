"""How busy the host is, and what that means for a guest's time budgets.

TCG runs each vCPU on a host thread of its own, so a guest is slowed by about
its vCPU count over the cores nobody else is using. Timeouts were set on an
idle host; on a busy one they stretch by the slowdown the load adds to that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_AUTO_FACTOR = 4.0


@dataclass(frozen=True)
class HostLoad:
    cores: int
    runnable: float          # 1-minute load average: tasks running or waiting to run

    @property
    def free_cores(self) -> float:
        return max(0.0, self.cores - self.runnable)


def read_load() -> HostLoad:
    cores = os.cpu_count() or 1
    try:
        with open("/proc/loadavg") as f:
            runnable = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        runnable = 0.0
    return HostLoad(cores, runnable)


def slowdown(vcpus: int, cores: float) -> float:
    return max(1.0, vcpus / max(cores, 0.5))


def auto_factor(vcpus: int, load: HostLoad) -> float:
    """How much longer than on an idle host a guest of ``vcpus`` needs now (1 to 4)."""
    busy, idle = slowdown(vcpus, load.free_cores), slowdown(vcpus, load.cores)
    return round(min(MAX_AUTO_FACTOR, busy / idle), 2)


def free_core_slots(load: HostLoad) -> int:
    """Guests the host can run at once without making each other wait: its free cores."""
    return max(1, min(load.cores, int(load.free_cores + 0.5)))
