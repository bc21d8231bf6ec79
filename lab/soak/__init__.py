"""The soak: the in-guest agent (agent/), the core that reads and judges its
records (session.py, checks.py), thresholds, evidence, and `run_soak` (run.py)
that wires them to a guest."""

__all__ = ["SoakOptions", "SoakResult", "parse_params", "run_soak"]


def __getattr__(name: str):
    # Imported on first use: run.py pulls in the guest, SSH and JUnit layers, which
    # the report (and JUnit itself) must be able to import without.
    if name in __all__:
        from . import run
        return getattr(run, name)
    raise AttributeError(f"module 'lab.soak' has no attribute {name!r}")
