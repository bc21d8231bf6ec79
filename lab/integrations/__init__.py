"""lab in other people's tools: `git bisect` (bisect.py), KTAP output (ktap.py)."""
