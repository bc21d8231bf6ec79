"""Where lab keeps things: per-user cache, data and run directories, and the project tree."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "lab"


def project_root() -> Path:
    """The checkout lab runs from (holds configs/, images/, module/)."""
    env = os.environ.get("LAB_PROJECT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Built artifacts, keyed by content hash. Override with LAB_CACHE."""
    return Path(os.environ.get("LAB_CACHE") or platformdirs.user_cache_dir(APP))


def data_dir() -> Path:
    """Long-lived per-user data: the client SSH key. Override with LAB_DATA."""
    return Path(os.environ.get("LAB_DATA") or platformdirs.user_data_dir(APP))


def run_dir() -> Path:
    """Records of running guests, sockets and console logs. Override with LAB_RUN."""
    env = os.environ.get("LAB_RUN")
    if env:
        return Path(env)
    return Path(platformdirs.user_state_dir(APP)) / "run"
