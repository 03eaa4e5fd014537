"""core.threads: the threads a worker keeps between jobs, and run_bounded over them."""
import threading
import time

import pytest

from ops_portal.core import threads


def test_run_bounded_returns_results_in_the_items_order_and_runs_at_most_limit_at_once():
    cache = threads.ThreadCache()
    lock, running, peak = threading.Lock(), [0], [0]

    def work(n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01 * (n % 3))
        with lock:
            running[0] -= 1
        return n * n

    assert threads.run_bounded(work, range(20), 4, threads=cache) == [n * n for n in range(20)]
    assert peak[0] == 4
    assert cache.started == 4


def _together(count):
    """An item function that returns its thread once `count` items run at once (one per lane)."""
    barrier = threading.Barrier(count, timeout=5)

    def work(_):
        barrier.wait()
        return threading.current_thread()

    return work


def test_a_second_run_reuses_the_idle_threads_of_the_first():
    cache = threads.ThreadCache()
    first = set(threads.run_bounded(_together(8), range(8), 8, threads=cache))
    assert len(first) == 8 and cache.started == 8
    _wait_for(lambda: cache.idle() == 8)
    second = set(threads.run_bounded(_together(8), range(8), 8, threads=cache))
    assert second == first
    assert cache.started == 8


def test_every_item_runs_when_one_raises_and_the_first_error_in_item_order_is_raised():
    cache = threads.ThreadCache()
    ran = []

    def work(n):
        ran.append(n)
        if n in (3, 7):
            raise ValueError(f"item {n}")
        return n

    with pytest.raises(ValueError, match="item 3"):
        threads.run_bounded(work, range(10), 3, threads=cache)
    assert sorted(ran) == list(range(10))


def test_idle_threads_end_after_the_idle_time_and_a_later_run_starts_new_ones():
    cache = threads.ThreadCache(idle_seconds=0.05)
    first = set(threads.run_bounded(_together(3), range(3), 3, name="idle-test", threads=cache))
    _wait_for(lambda: cache.idle() == 0)
    second = set(threads.run_bounded(_together(3), range(3), 3, name="idle-test", threads=cache))
    assert not first & second
    assert cache.started == 6


def test_no_more_idle_threads_are_kept_than_max_idle():
    cache = threads.ThreadCache(max_idle=2, name="max-idle")
    threads.run_bounded(_together(5), range(5), 5, name="max-idle-test", threads=cache)
    _wait_for(lambda: _alive("max-idle-") == 2)  # the three beyond max_idle ended
    assert cache.idle() == 2


def test_a_lane_names_its_thread_after_the_job_while_it_runs():
    cache = threads.ThreadCache()
    work = _together(2)
    names = threads.run_bounded(lambda n: work(n).name, range(2), 2, name="job-7", threads=cache)
    assert sorted(names) == ["job-7_0", "job-7_1"]
    _wait_for(lambda: cache.idle() == 2)
    assert _alive("job-7") == 0  # idle again, the threads take back their own names


def test_an_empty_run_starts_nothing():
    cache = threads.ThreadCache()
    assert threads.run_bounded(lambda n: n, [], 5, threads=cache) == []
    assert cache.started == 0


@pytest.mark.django_db(transaction=True)
def test_a_lane_closes_the_database_connection_its_thread_opened():
    from django.db import connections

    cache = threads.ThreadCache()

    def query(_):
        wrapper = connections["default"]  # this thread's own connection, not the caller's
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert wrapper.connection is not None
        return wrapper

    (used,) = threads.run_bounded(query, [0], 1, threads=cache)
    assert used is not connections["default"]
    assert used.connection is None  # closed before the thread went idle


def _alive(prefix):
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
