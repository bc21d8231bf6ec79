"""Post-boot snapshots against the fake QEMU: when one is taken, used, refused and thrown away."""

import json

import pytest

from lab.guest import snapshot
from lab.cache import Store
from lab.config import load_lab
from lab.paths import cache_dir

from fakeguest import images, up_on_fake_qemu


@pytest.fixture
def up(fake_qemu, monkeypatch, tmp_path):
    """lifecycle.up() on the fake QEMU, whose guests have no SSH server: a connection
    is a FakeConnection once the console says ready."""
    yield from up_on_fake_qemu(monkeypatch, tmp_path)


def snapshots():
    return [a for a in Store(cache_dir()).all() if a.kind == snapshot.KIND]


def test_first_up_boots_and_saves_later_ones_restore_fresh(up):
    first = up(name="a")
    assert not first.record.from_snapshot and "-incoming" not in first.record.command
    [art] = snapshots()
    assert art.name == "i386-up" and (art.path / snapshot.STATE).is_file()
    # the booted guest runs on from the saved state too: it was refreshed as well
    assert "lab-guest: fresh" in first.console.user_text(200)

    second, third = up(name="b"), up(name="c")
    for g in (second, third):
        assert g.record.from_snapshot and g.record.snapshot_note == ""
        assert "-incoming" in g.record.command
        assert "lab-guest: fresh" in g.console.user_text(200)
        assert g.qmp("query-status")["status"] == "running"
    # nothing of one guest is another's: port, run directory, console, QMP socket
    recs = [g.record for g in (first, second, third)]
    assert len({r.ssh_port for r in recs}) == 3
    assert len({r.dir for r in recs}) == 3
    assert len({str(r.console_log) for r in recs}) == 3
    assert len(snapshots()) == 1


def test_a_snapshot_that_does_not_load_is_discarded_and_the_guest_boots(up):
    up(name="a").shutdown(hard_only=True)
    [art] = snapshots()
    (art.path / snapshot.STATE).write_text("not a saved state")
    g = up(name="b")
    assert not g.record.from_snapshot
    assert "did not restore" in g.record.snapshot_note and "load of migration failed" in g.record.snapshot_note
    # a good one was saved in its place
    [new] = snapshots()
    assert json.loads((new.path / snapshot.STATE).read_text())["fake-state"] == "paused"
    assert up(name="c").record.from_snapshot


def test_cold_and_lab_snapshots_0_boot_the_kernel(up, monkeypatch):
    up(name="a")
    assert up(name="b", cold=True).record.snapshot_note == "--cold"
    monkeypatch.setenv("LAB_SNAPSHOTS", "0")
    g = up(name="c")
    assert not g.record.from_snapshot and g.record.snapshot_note == "LAB_SNAPSHOTS=0"


def test_targets_that_cannot_be_snapshotted_boot_and_say_why(up):
    g = up("alpha-ds20", name="a")
    assert not g.record.from_snapshot and "qemu-system-alpha" in g.record.snapshot_note
    assert snapshots() == []


def test_the_key_follows_images_machine_and_qemu_build(fake_qemu, tmp_path, monkeypatch):
    lab, store = load_lab(), Store(tmp_path / "store")
    target = lab.target("i386-up")

    def key(imgs=None, smp=1, memory=None, cmdline=""):
        return snapshot.snapshot_for(target, imgs or images(tmp_path), "tcg", smp,
                                     memory or target.memory, cmdline, store).artifact.key
    base = key()
    assert key() == base                                  # stable
    assert key(images(tmp_path, kernel_key="k2")) != base  # another kernel build
    assert key(images(tmp_path, rootfs_key="r2")) != base  # another root filesystem
    assert key(smp=2) != base and key(memory=target.memory * 2) != base
    assert key(cmdline="quiet") != base
    # another QEMU build of the same name
    other = tmp_path / "bin"
    other.mkdir()
    fake = other / "qemu-system-i386"
    fake.write_text("#!/bin/sh\n# another build\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}:{__import__('os').environ['PATH']}")
    assert key() != base


def test_an_upgrade_behind_an_unchanged_wrapper_changes_the_key(fake_qemu, tmp_path, monkeypatch):
    """Debian's qemu-system-i386 is a shell script that execs the real binary: the
    version the script reports must count, not only the script's bytes."""
    lab, store = load_lab(), Store(tmp_path / "store")
    target = lab.target("i386-up")
    bindir, version = tmp_path / "bin", tmp_path / "version"
    bindir.mkdir()
    wrapper = bindir / "qemu-system-i386"
    wrapper.write_text(f'#!/bin/sh\necho "QEMU emulator version $(cat {version})"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")

    def key():
        snapshot._identities.clear()     # a new `lab up` process
        return snapshot.snapshot_for(target, images(tmp_path), "tcg", 1, target.memory, "",
                                     store).artifact.key
    version.write_text("7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)")
    before = key()
    version.write_text("7.2.23 (Debian 1:7.2+dfsg-7+deb12u19)")
    assert key() != before
