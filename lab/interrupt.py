"""Stopping on request: Ctrl-C (SIGINT), a CI system's SIGTERM, a closed terminal's SIGHUP.

The first signal sets ``STOP`` and raises ``Interrupted`` in the main thread, so
every ``finally`` on the way out runs: result files are written and guests the
command started are shut down. Worker threads (matrix cells) poll ``STOP``.
Later signals only set the flag again: cleanup is bounded and must not be cut
short halfway.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

STOP = threading.Event()
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the first stop signal."""

    def __init__(self, signame: str = "SIGINT"):
        self.signame = signame
        super().__init__(f"interrupted by {signame}")


def check() -> None:
    """Raise Interrupted if a stop was requested (for loops in any thread)."""
    if STOP.is_set():
        raise Interrupted(_received[0] if _received else "SIGINT")


_received: list[str] = []


def _handler(signum: int, frame) -> None:
    first = not STOP.is_set()
    name = signal.Signals(signum).name
    _received.append(name)
    STOP.set()
    if first:
        raise Interrupted(name)


def install() -> Callable[[], None]:
    """Install the handlers (main thread only); returns a function that restores the old ones."""
    STOP.clear()
    _received.clear()
    old = {s: signal.signal(s, _handler) for s in SIGNALS}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)
        STOP.clear()
        _received.clear()
    return restore


@contextmanager
def deferred() -> Iterator[None]:
    """Hold stop signals back during a short, bounded exchange that must not be cut
    in the middle (a QMP command runs an asyncio loop of its own: interrupted there,
    it leaves a task behind that asyncio reports as a traceback). A signal that
    arrives meanwhile is acted on as soon as the section ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def reason() -> str:
    return f"interrupted by {_received[0]}" if _received else "interrupted"
