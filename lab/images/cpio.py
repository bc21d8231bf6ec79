"""A deterministic newc cpio writer for initramfs images.

Entries are owned by root with mtime 0, whoever builds the image, and device
nodes can be made without privileges: the kernel needs /dev/console before
devtmpfs is mounted.
"""

from __future__ import annotations

import gzip
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable


@dataclass(frozen=True)
class Entry:
    name: str            # path inside the archive, without leading "/"
    mode: int            # full st_mode (type + permissions)
    data: bytes = b""    # file contents, or symlink target
    rdev: tuple[int, int] = (0, 0)


def _header(ino: int, e: Entry) -> bytes:
    name = e.name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(e.mode) else 1
    fields = [ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name), 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields) + name


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def write(entries: Iterable[Entry], out: BinaryIO) -> None:
    for ino, e in enumerate(list(entries) + [Entry("TRAILER!!!", 0)], start=1):
        h = _header(ino if e.name != "TRAILER!!!" else 0, e)
        out.write(h + _pad(len(h)) + e.data + _pad(len(e.data)))


def entries_from_tree(root: Path) -> list[Entry]:
    """Entries for every file, directory and symlink under ``root``, sorted, parents first."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out.append(Entry(rel, stat.S_IFLNK | 0o777, os.readlink(p).encode()))
            elif stat.S_ISDIR(st.st_mode):
                out.append(Entry(rel, stat.S_IFDIR | stat.S_IMODE(st.st_mode)))
            elif stat.S_ISREG(st.st_mode):
                out.append(Entry(rel, stat.S_IFREG | stat.S_IMODE(st.st_mode), p.read_bytes()))
    out.sort(key=lambda e: e.name)
    return out


def write_gz(entries: Iterable[Entry], path: Path) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0,
                                                          compresslevel=6) as gz:
        write(entries, gz)  # type: ignore[arg-type]
