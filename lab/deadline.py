"""One monotonic deadline passed down through a wait, instead of scattered sleeps.

Every wait in the guest layer and the SSH client is one of these: a budget
(``Deadline(boot_timeout, "boot of i386-up")``), a window that starts again when
something happens (console silence), or the spacing of retries (``Deadline(0.5)``
between two SSH attempts).
"""

from __future__ import annotations

import time


class Deadline:
    def __init__(self, seconds: float, what: str = "operation"):
        self.seconds = seconds
        self.what = what
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def elapsed(self) -> float:
        """Seconds since the deadline was set."""
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, but not past the deadline."""
        time.sleep(min(seconds, self.remaining()))

    def renewed(self) -> "Deadline":
        """The same budget again from now (a silence window after new output)."""
        return Deadline(self.seconds, self.what)
