"""The worker's process settings: the cycle collector as it is tuned before serving."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

# In a process of its own: the collector's settings are the whole process's.
_PROBE = """
import gc
from adapter.transport.worker import tune_collector
tune_collector()
frozen = gc.get_freeze_count()
cycle = []
cycle.append(cycle)
del cycle
print(gc.get_threshold()[0], frozen, gc.collect())
"""


def test_the_worker_collects_cycles_less_often_and_never_walks_what_it_held_at_the_start() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    threshold, frozen, collected = (int(word) for word in done.stdout.split())
    assert threshold == 10_000
    assert frozen > 1000  # the modules and objects imported before serving
    assert collected >= 1  # a cycle made afterwards is still collected
