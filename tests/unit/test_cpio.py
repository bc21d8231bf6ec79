import gzip
import stat

from lab.images import cpio


def parse(data: bytes):
    """A minimal newc reader, independent of the writer."""
    out, pos = [], 0
    while True:
        h = data[pos:pos + 110]
        assert h[:6] == b"070701"
        f = [int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos:pos + filesize]
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out.append((name, f[1], f[2], f[3], body, (f[9], f[10])))


def test_roundtrip_and_ownership(tmp_path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin/busybox").write_bytes(b"\x7fELF...")
    (root / "bin/busybox").chmod(0o755)
    (root / "bin/sh").symlink_to("busybox")
    entries = cpio.entries_from_tree(root) + [cpio.Entry("dev/console", stat.S_IFCHR | 0o600,
                                                         rdev=(5, 1))]
    cpio.write_gz(entries, tmp_path / "i.cpio.gz")
    got = {e[0]: e for e in parse(gzip.decompress((tmp_path / "i.cpio.gz").read_bytes()))}
    assert set(got) == {"bin", "bin/busybox", "bin/sh", "dev/console"}
    name, mode, uid, gid, body, rdev = got["bin/busybox"]
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755 and (uid, gid) == (0, 0)
    assert body == b"\x7fELF..."
    assert got["bin/sh"][4] == b"busybox" and stat.S_ISLNK(got["bin/sh"][1])
    assert stat.S_ISCHR(got["dev/console"][1]) and got["dev/console"][5] == (5, 1)


def test_deterministic(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "a").write_text("x")
    cpio.write_gz(cpio.entries_from_tree(root), tmp_path / "1.gz")
    (root / "a").touch()
    cpio.write_gz(cpio.entries_from_tree(root), tmp_path / "2.gz")
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()
