"""summary.json on disk: write one, read one back (any schema this lab knows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import LabError
from .files import SUMMARY
from .summary import SCHEMA_VERSION, SoakSummary


def write_summary(out: Path, summary: SoakSummary) -> Path:
    """``out``/summary.json; returns its path."""
    path = out / SUMMARY
    write_json(path, summary.to_json())
    return path


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def _load(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise LabError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except ValueError as e:
        found = f"{len(text)} bytes" if text.strip() else "an empty file"
        raise LabError(f"{path}: not JSON ({e}; found {found})") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _from(path: Path, data: Any) -> SoakSummary:
    if isinstance(data, dict):
        schema = data.get("schema", 0)
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
            raise LabError(f"{path}: 'schema' is {schema!r}, not a schema number")
        if schema > SCHEMA_VERSION:
            raise LabError(f"{path}: schema {schema} is newer than this lab reads "
                           f"({SCHEMA_VERSION}): upgrade lab to read it")
    try:
        return SoakSummary.from_json(data)
    except LabError as e:
        raise LabError(_one_line(f"{path}: {e}")) from None


def read_summary(path: Path) -> SoakSummary:
    """The soak summary in ``path`` (a summary.json); a LabError in one line names the
    file and what was found there if it is not one."""
    return _from(path, _load(path))


def read_cell(path: Path) -> SoakSummary | None:
    """Like read_summary, but None for a merged report's summary.json (`lab report`
    writes one beside report.html, possibly inside the directories it merges)."""
    data = _load(path)
    if isinstance(data, dict) and "cells" in data and "target" not in data:
        return None
    return _from(path, data)
