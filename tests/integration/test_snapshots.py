"""Post-boot snapshots on a real i386 guest: restores answer SSH, never share a
port or run directory, and are fresh: their random numbers, the SSH server's
ephemeral keys and their clocks are their own."""

import time

import paramiko
import pytest
from paramiko.kex_curve25519 import KexCurve25519
from paramiko.kex_ecdh_nist import KexNistp256

from lab.guest.lifecycle import up

TARGET = "i386-up"


@pytest.fixture
def server_ephemeral_keys(monkeypatch):
    """The server's ephemeral public key of every SSH key exchange made meanwhile."""
    seen = []
    for kex in (KexCurve25519, KexNistp256):
        real = kex._parse_kexecdh_reply

        def spy(self, m, real=real):
            copy = paramiko.Message(m.asbytes())
            copy.get_string()                 # the host key: the same for every guest
            seen.append(copy.get_string())    # the server's ephemeral public key
            return real(self, m)
        monkeypatch.setattr(kex, "_parse_kexecdh_reply", spy)
    return seen


def test_restores_are_separate_and_fresh(lab, built, server_ephemeral_keys):
    target = lab.target(TARGET)
    guests = []
    try:
        # The first `lab up` of this configuration boots and saves the snapshot (or
        # restores one an earlier run saved); the next two restore it, side by side.
        guests.append(up(lab, target, name="snap-0"))
        for name in ("snap-1", "snap-2"):
            guests.append(up(lab, target, name=name))
        restored = [g for g, _ in guests[1:]]
        assert all(g.record.from_snapshot for g in restored), \
            [g.record.snapshot_note for g in restored]

        records = [g.record for g, _ in guests]
        assert len({r.ssh_port for r in records}) == 3
        assert len({r.dir for r in records}) == 3

        randoms, skews = [], []
        for guest, conn in guests:
            assert "lab-guest: fresh" in guest.console.user_text(200) or not guest.record.from_snapshot
            randoms.append(conn.run("head -c 32 /dev/urandom | od -An -tx1").stdout)
            before = time.time()
            clock = float(conn.run("date +%s").stdout)
            skews.append(clock - before)
            # a program started now gets its own randomness too
            randoms.append(conn.run("dd if=/dev/urandom bs=16 count=1 2>/dev/null | od -An -tx1"
                                    ).stdout)
        assert len(set(randoms)) == len(randoms), randoms
        # the wall clock is the host's (seconds resolution, a loaded host's latency)
        assert all(-2.0 <= s <= 5.0 for s in skews), skews

        # every SSH key exchange, one per connection, used its own server key
        assert len(server_ephemeral_keys) >= 3
        assert len(set(server_ephemeral_keys)) == len(server_ephemeral_keys)
    finally:
        for guest, conn in guests:
            conn.close()
            guest.shutdown(hard_only=True)
