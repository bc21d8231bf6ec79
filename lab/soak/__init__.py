"""The soak: the in-guest agent (agent/), the core that reads and judges its
records (session.py, checks.py), thresholds, evidence, and `run_soak` (run.py)
that wires them to a guest.

Import what you use from its module (``from lab.soak.run import run_soak``):
this package imports nothing, so the pure checks are importable (by
lab.results, and through it by the report and JUnit) without the guest and
SSH layers that run.py pulls in.
"""
