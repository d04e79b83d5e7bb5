"""Render workers with hard limits: real worker processes, killed and replaced when a job overruns."""

from __future__ import annotations

import os
import time

import pytest

from adapters.render_pool import Done, Failed, RenderPool, Stopped
from domain.templating import TemplateError, TemplateWarning, apply_template


# Jobs run in the worker by reference, so they live at module level.
def render(source: str) -> str:
    try:
        return apply_template(source, payload={"service": "db"})
    except (TemplateError, TemplateWarning) as exc:
        return f"error: {exc}"


def fail(message: str) -> None:
    raise ValueError(message)


def sleep_then(seconds: float, value: str) -> str:
    time.sleep(seconds)
    return value


def crash() -> None:
    os._exit(3)


def pid() -> int:
    return os.getpid()


def letters(text: str) -> list[str]:
    return list(text)


@pytest.fixture
def pool():
    pool = RenderPool(max_workers=2, hard_limit=0.5)
    yield pool
    pool.close()


def test_jobs_run_in_order_in_one_worker(pool):
    outcomes = pool.run(render, [("{{ payload.service }}",), ("{{ 1 + 1 }}",), ("{{ payload.x.y }}",)])
    assert outcomes == [Done("db"), Done("2"), Done("error: 'dict object' has no attribute 'x'")]
    assert len({pool.run_one(pid).value for _ in range(3)}) == 1  # the worker is kept


def test_a_job_over_the_time_limit_is_stopped_and_the_others_finish(pool):
    began = time.monotonic()
    outcomes = pool.run(sleep_then, [(0, "a"), (30, "never"), (0, "c")])
    assert outcomes == [Done("a"), Stopped("time"), Done("c")]
    assert time.monotonic() - began < 3.0


def test_the_limit_is_per_render_not_per_message(pool):
    # Ten renders of 0.1 s each take a second together, twice the limit: none is stopped.
    outcomes = pool.run(sleep_then, [(0.1, str(n)) for n in range(10)])
    assert outcomes == [Done(str(n)) for n in range(10)]


def test_a_render_that_fills_memory_is_stopped_and_its_worker_replaced():
    pool = RenderPool(hard_limit=10)  # time enough: memory runs out first
    bomb = (
        "{% set ns = namespace(kept=[]) %}{% for c in 'x' * 1000 %}"
        "{% set _ = ns.kept.append(('a' * 9999999) | list) %}{% endfor %}{{ ns.kept | length }}"
    )
    first_worker = pool.run_one(pid).value
    outcomes = pool.run(render, [("before",), (bomb,), ("after",)])
    assert outcomes == [Done("before"), Stopped("memory"), Done("after")]
    assert pool.run_one(pid).value != first_worker
    pool.close()


def test_a_job_that_raises_fails_alone_and_its_worker_goes_on(pool):
    worker = pool.run_one(pid).value
    assert pool.run(fail, [("defect",)]) == [Failed("ValueError: defect")]
    assert pool.run_one(pid).value == worker


def test_a_crashed_worker_is_a_stopped_job(pool):
    assert pool.run(render, [("x",)]) == [Done("x")]
    assert pool.run_one(crash) == Stopped("crashed")
    assert pool.run_one(render, "y") == Done("y")


def test_a_stopped_job_may_be_replaced_and_later_jobs_are_read_after_the_stop(pool):
    stops = []

    class Jobs(list):
        def __getitem__(self, index):
            # Read when sent: after a stop, the later jobs become cheap ones.
            return ("0", "skipped") if stops and index > 1 else (list.__getitem__(self, index))

    def replace(index: int, reason: str) -> tuple:
        stops.append((index, reason))
        return ("0", f"replaced ({reason})")

    jobs = Jobs([("0", "a"), ("30", "bomb"), ("30", "bomb too"), ("0", "d")])
    outcomes = pool.run(lambda_free_sleep, jobs, replace_stopped=replace)
    assert outcomes == [Done("a"), Done("replaced (time)"), Done("skipped"), Done("skipped")]
    assert stops == [(1, "time")]


def lambda_free_sleep(seconds: str, value: str) -> str:
    return sleep_then(float(seconds), value)


def test_max_weight_ends_a_run_after_enough_results(pool):
    outcomes = pool.run(letters, [("ab",), ("cde",), ("f",), ("g",)], max_weight=4)
    assert outcomes == [Done(["a", "b"]), Done(["c", "d", "e"])]


def test_big_jobs_go_in_several_messages(pool):
    jobs = [("x" * 3_000_000,), ("y" * 3_000_000,), ("z",)]
    outcomes = pool.run(len, jobs, job_size=lambda job: len(job[0]))
    assert outcomes == [Done(3_000_000), Done(3_000_000), Done(1)]


def test_a_closed_pool_has_no_workers_left():
    pool = RenderPool()
    worker_pid = pool.run_one(pid).value
    pool.close()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
