"""Content-addressed artifact store.

An artifact lives in ``<cache>/<kind>/<name>-<key>/``; it is complete when its
``manifest.json`` exists (written last, after an atomic rename of the build
directory), so an interrupted build never looks finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

MANIFEST = "manifest.json"


def hash_inputs(inputs: Mapping[str, Any]) -> str:
    """A stable hex key for a mapping of inputs (strings, numbers, nested lists/dicts)."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


@dataclass(frozen=True)
class Artifact:
    kind: str
    name: str
    key: str
    path: Path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict:
        with open(self.manifest_path, encoding="utf-8") as f:
            return json.load(f)


class Store:
    def __init__(self, root: Path):
        self.root = root

    def artifact(self, kind: str, name: str, key: str) -> Artifact:
        return Artifact(kind, name, key, self.root / kind / f"{name}-{key}")

    @contextlib.contextmanager
    def lock(self, art: Artifact):
        """Exclusive per-artifact lock, so parallel lab processes never build one thing twice."""
        art.path.parent.mkdir(parents=True, exist_ok=True)
        with open(art.path.with_name(art.path.name + ".lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def staging(self, art: Artifact) -> Path:
        """A fresh directory to build ``art`` in; publish() moves it into place."""
        tmp = art.path.with_name(art.path.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def publish(self, art: Artifact, staging: Path, inputs: Mapping[str, Any],
                info: Mapping[str, Any] | None = None) -> None:
        if art.path.exists():
            shutil.rmtree(art.path)
        os.rename(staging, art.path)
        manifest = {"kind": art.kind, "name": art.name, "key": art.key,
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "inputs": inputs, "size": tree_size(art.path), **(info or {})}
        tmp = art.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        os.rename(tmp, art.manifest_path)

    def all(self) -> list[Artifact]:
        out = []
        if not self.root.is_dir():
            return out
        for kind_dir in sorted(self.root.iterdir()):
            if not kind_dir.is_dir():
                continue
            for d in sorted(kind_dir.iterdir()):
                if d.is_dir() and (d / MANIFEST).is_file():
                    name, _, key = d.name.rpartition("-")
                    out.append(Artifact(kind_dir.name, name, key, d))
        return out
