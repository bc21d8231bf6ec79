"""The soak: the in-guest agent (agent/), the core that reads and judges its
records (session.py, checks.py), thresholds, evidence, and `run_soak` (run.py)
that wires them to a guest."""

from .run import SoakOptions, SoakResult, parse_params, run_soak

__all__ = ["SoakOptions", "SoakResult", "parse_params", "run_soak"]
