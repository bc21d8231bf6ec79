"""Results: the typed soak summary (summary.py), summary.json on disk (store.py) and
the names of every result file (files.py).

Above the soak, below the report: it may read the soak's pure checks
(lab.soak.checks), never the guest or SSH layers, so every reader of results
(report, JUnit, KCIDB, ...) imports it without them.
"""

from .failure import CHECKS, Failure
from . import files
from .store import read_cell, read_summary, write_json, write_summary
from .summary import (MAX_FAILURES, SCHEMA_VERSION, CycleStats, GuestInfo, KthreadCensus,
                      Kmemleak, Latency, MemoryTrend, MemSeries, ModuleInfo, Percentiles,
                      Processes, SoakSetup, SoakSummary, WakePeriod)

__all__ = ["CHECKS", "Failure", "files", "read_cell", "read_summary", "write_json",
           "write_summary", "MAX_FAILURES", "SCHEMA_VERSION", "CycleStats", "GuestInfo",
           "KthreadCensus", "Kmemleak", "Latency", "MemoryTrend", "MemSeries", "ModuleInfo",
           "Percentiles", "Processes", "SoakSetup", "SoakSummary", "WakePeriod"]
