"""The pool's worker processes are forks of a fork server that has imported the heavy
modules once (training/pool.worker_context), in both shapes."""

from __future__ import annotations

import os
import sys

from pebble import ProcessPool

from ovencast.training.pool import PRELOAD, start_workers_early, stop_workers, worker_context


def _imported_in_worker() -> tuple[int, list[str]]:
    return os.getpid(), [name for name in PRELOAD if name in sys.modules]


def _run_in_pool() -> tuple[int, list[str]]:
    with ProcessPool(max_workers=1, context=worker_context()) as pool:
        result: tuple[int, list[str]] = pool.schedule(_imported_in_worker).result(timeout=120)
    return result


def test_workers_start_with_the_preloaded_modules_and_survive_a_stopped_server() -> None:
    start_workers_early()
    start_workers_early()  # idempotent
    pid, imported = _run_in_pool()
    assert pid != os.getpid()
    assert imported == list(PRELOAD)
    stop_workers()
    stop_workers()  # stopping a stopped server is a no-op
    pid_after, imported_after = _run_in_pool()  # a fresh server is started on demand
    assert pid_after != pid
    assert imported_after == list(PRELOAD)
