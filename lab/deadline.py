"""One monotonic deadline passed down through a wait, instead of scattered sleeps."""

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

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.remaining()))
