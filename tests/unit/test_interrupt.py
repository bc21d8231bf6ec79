"""Stop signals: raised at once in the main thread, or held back for a short exchange."""

import os
import signal

import pytest

from lab import interrupt


@pytest.fixture
def installed():
    restore = interrupt.install()
    yield
    restore()


def test_a_signal_during_a_deferred_section_lands_when_it_ends(installed):
    reached_end = False
    with pytest.raises(interrupt.Interrupted) as e:
        with interrupt.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):      # bytecodes run: a pending handler would fire here
                pass
            reached_end = True
    assert reached_end and e.value.signame == "SIGTERM"


def test_outside_a_deferred_section_the_signal_raises_at_once(installed):
    with pytest.raises(interrupt.Interrupted):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
