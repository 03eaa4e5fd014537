"""Measured, not assumed: `uname -a` on every fleet host through one pool, cold and warm.

Prints the figures (run with -s or look for the "host pool:" lines); asserts only what must hold.
"""
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from schedulers.host import SSHPool, run_capture

pytestmark = pytest.mark.fleet


def uname_everywhere(pool, targets, workers):
    def one(target):
        started = time.monotonic()
        result, out, _ = run_capture(pool, target, "uname -a")
        assert result.ok and out.startswith("Linux ")
        return time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as threads:
        each = list(threads.map(one, targets))
    return time.monotonic() - started, each


def test_uname_on_every_host_cold_and_warm(targets, capsys):
    with SSHPool(len(targets)) as pool:
        cold, cold_each = uname_everywhere(pool, targets, len(targets))
        opened = pool.stats()["opened"]
        warm_runs = [uname_everywhere(pool, targets, len(targets)) for _ in range(3)]
        assert pool.stats()["opened"] == opened == len(targets)  # warm runs opened nothing new
    warm = statistics.median(total for total, _ in warm_runs)
    warm_each = statistics.median(t for _, each in warm_runs for t in each)
    with capsys.disabled():
        print(f"\nhost pool: uname -a on {len(targets)} hosts, {len(targets)} connections, {len(targets)} threads: "
              f"cold {cold:.3f}s (median per host {statistics.median(cold_each):.3f}s), "
              f"warm {warm:.3f}s (median of 3 runs; median per host {warm_each:.3f}s)")
    assert warm < cold
