#!/usr/bin/env python3
"""Escalation benchmark: from an alert's 2xx to its group's first escalation step, recorded.

Plain script, not a pytest test:

    python tests/benchmarks/bench_escalation.py [--idle-alerts 200] [--requests 5000]
                                                [--database-url postgresql://...]

What it does (see tests/benchmarks/README.md for how to read the output):

1. Starts Tocsin in production mode on a fresh PostgreSQL schema, as the ingest benchmark does,
   plus the ``escalate`` and ``ticker`` processes; a user and a chain [notify the user, wait an
   hour], which every benchmark integration's default route takes.
2. An observer in a process of its own LISTENs to the alerting store's NOTIFY (sent by each
   commit) and reads what was committed: each new group's title, and when its first step
   (``Escalation.StepTriggered``, index 0) became visible.
3. Idle: ``--idle-alerts`` alerts one at a time, each opening a group, the next sent a short
   random pause after the previous one's step was seen.
4. Under load: the ingest benchmark's workload (its load generator, ``--requests`` Alertmanager
   notifications, ``--new-group-ratio`` of them opening a group, ``--concurrency`` threads) to a
   fresh integration; the latency of every group it opens.
5. Prints p50 / p99 / max of each and whether the idle figures meet the targets (p50 <= 1 s,
   p99 <= 2 s).

Everything it starts (processes, the schema) is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO_ROOT))

# The ingest benchmark's load generator, processes, statistics and report helpers.
import bench_ingest
from bench_ingest import (
    FIXTURE,
    CpuMeter,
    Processes,
    build_workload,
    clock,
    drop_schema,
    first_accepted,
    http_json,
    machine_facts,
    ms,
    percentile,
    post_all,
    wait_for_log,
)

TARGET_P50_S = 1.0  # at idle
TARGET_P99_S = 2.0
HOLD_SECONDS = 3600  # the chain's wait after its first step: nothing else runs during the benchmark
OBSERVER_READY_TIMEOUT = 60.0


# --- the observer: LISTEN, then read what each commit made visible ----------------------------------


def observe(env: dict[str, str], found: multiprocessing.Queue, ready, stop) -> None:
    """Run in a process of its own (so the load threads' GIL does not delay it): put
    ("group", group id, title) for each new group and ("step", group id, seen at, decided at) for
    each group's first step, ``seen at`` on the ``clock()`` the load generator uses (system-wide
    monotonic), ``decided at`` the step event's own wall-clock time, taken before its commit."""
    from eventsourcing.utils import get_topic

    from adapters.listener import PostgresListener
    from adapters.settings import Settings
    from adapters.waker import Waker
    from domain.alert_group import AlertGroup
    from domain.applications import Alerting
    from domain.paging import Escalation

    settings = Settings.from_env(env)
    # Only the alerting store (not a whole runtime): two connections, beside the LISTEN one.
    alerting = Alerting(env=settings.event_store_env(Alerting.name, False))
    topics = [get_topic(AlertGroup.Registered), get_topic(Escalation.StepTriggered)]
    waker = Waker(gather=0.0)  # read at once: the time of reading is the measurement
    listener_stop = threading.Event()
    listener = PostgresListener(settings.postgres_conninfo(), {alerting.recorder.channel_name: [waker.notify]})
    threading.Thread(target=listener.run_forever, args=(listener_stop,), daemon=True).start()
    position = alerting.recorder.max_notification_id() or 0
    ready.set()
    try:
        while not stop.is_set():
            waker.wait(0.05)  # a NOTIFY missed (before LISTEN took effect) costs at most this
            while page := alerting.recorder.select_notifications(position, 500, topics=topics,
                                                                  inclusive_of_start=False):
                seen_at = clock()
                for notification in page:
                    event = alerting.mapper.to_domain_event(notification)
                    if isinstance(event, AlertGroup.Registered):
                        found.put(("group", str(event.originator_id), event.title.strip()))
                    elif event.index == 0 and event.run == 1:
                        found.put(("step", str(event.group_id), seen_at, event.timestamp.timestamp()))
                position = page[-1].id
    finally:
        listener_stop.set()
        alerting.close()


class Observer:
    """The observer process and what it has reported so far, by group title."""

    def __init__(self, env: dict[str, str]):
        context = multiprocessing.get_context("spawn")  # no copy of this process's threads
        self.queue = context.Queue()
        self.ready, self.stop = context.Event(), context.Event()
        self.process = context.Process(target=observe, args=(env, self.queue, self.ready, self.stop),
                                       name="step-observer", daemon=True)
        self.titles: dict[str, str] = {}  # group id -> title
        self.steps: dict[str, tuple[float, float]] = {}  # group id -> (seen at, decided at)
        # clock() and the wall clock, read together: what a wall-clock time is on clock()
        self.wall_minus_clock = time.time() - clock()

    def start(self) -> None:
        self.process.start()
        if not self.ready.wait(OBSERVER_READY_TIMEOUT):
            raise RuntimeError("the step observer did not start")

    def drain(self, timeout: float = 0.0) -> None:
        try:
            item = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
            while True:
                if item[0] == "group":
                    self.titles[item[1]] = item[2]
                else:
                    self.steps.setdefault(item[1], (item[2], item[3] - self.wall_minus_clock))
                item = self.queue.get_nowait()
        except queue.Empty:
            pass

    def step_of(self, title: str) -> tuple[float, float] | None:
        """(seen at, decided at) of the first step of the group with this title, on clock()."""
        for group_id, group_title in self.titles.items():
            if group_title == title and group_id in self.steps:
                return self.steps[group_id]
        return None

    def wait_for_steps(self, titles: set[str], timeout: float) -> dict[str, tuple[float, float]]:
        """The first steps of the groups with these titles, once all are seen or ``timeout`` passed."""
        deadline = clock() + timeout
        while True:
            self.drain(timeout=0.05)
            by_title = {self.titles[g]: step for g, step in self.steps.items() if self.titles.get(g) in titles}
            if len(by_title) == len(titles) or clock() > deadline:
                return by_title

    def close(self) -> None:
        self.stop.set()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


# --- Tocsin with escalation ------------------------------------------------------------------


class EscalatingTocsin(bench_ingest.Tocsin):
    """The ingest benchmark's production-mode Tocsin (with its escalation and ticker processes)
    and a chain that every integration made here takes."""

    def start(self) -> None:
        super().start()
        wait_for_log(self.procs, "tocsin-ticker", "ticker running")
        user = self._api("POST", "/api/v1/users/", {"username": "oncall", "role": "editor"})
        self.chain = self._api("POST", "/api/v1/escalation_chains/", {"name": "bench"})
        for step in ({"type": "notify_persons", "persons_to_notify": [user["id"]]},
                     {"type": "wait", "duration": HOLD_SECONDS}):
            self._api("POST", "/api/v1/escalation_policies/", {"escalation_chain_id": self.chain["id"], **step})

    def _api(self, method: str, path: str, body: object = None) -> dict:
        status, answer = http_json(self.port, method, path, body, headers={"Authorization": self.token})
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def escalating_integration(self, name: str) -> str:
        """A new integration whose default route takes the chain; its link's path."""
        integration_id, path = self.create_integration(name)
        route_id = self._api("GET", f"/api/v1/integrations/{integration_id}/")["default_route"]["id"]
        self._api("PATCH", f"/api/v1/routes/{route_id}/", {"escalation_chain_id": self.chain["id"]})
        return path


# --- the two phases --------------------------------------------------------------------------


class Latencies:
    def __init__(self, seen: list[float], decided: list[float], missing: int):
        self.seen = seen  # 2xx -> step visible, seconds
        self.decided = decided  # 2xx -> step decided (before its commit), seconds
        self.missing = missing  # groups whose first step was not seen in time

    def p(self, pct: float) -> float | None:
        return percentile(self.seen, pct)


def latencies(titles: list[str], accepted_at: list[float | None], steps: dict[str, tuple[float, float]]) -> Latencies:
    seen, decided, missing = [], [], 0
    for title, accepted in zip(titles, accepted_at):
        if accepted is None:
            continue  # never accepted: not measured
        if title not in steps:
            missing += 1
            continue
        seen.append(steps[title][0] - accepted)
        decided.append(steps[title][1] - accepted)
    return Latencies(seen, decided, missing)


def run_idle(tocsin: EscalatingTocsin, observer: Observer, template: dict, args) -> Latencies:
    """One alert at a time; the next a random pause after the previous one's step was seen."""
    path = tocsin.escalating_integration("bench-idle")
    workload = build_workload(template, args.idle_alerts, 1.0, args.seed, "Idle")
    rng = random.Random(args.seed)
    accepted_at: list[float | None] = []
    for body, title in zip(workload.bodies, workload.titles):
        load = post_all(tocsin.port, path, [body], 1)
        accepted_at.append(load.done_at[0])
        if load.done_at[0] is not None:
            observer.wait_for_steps({title}, args.step_timeout)
        time.sleep(rng.uniform(0.05, 0.25))
    observer.drain()
    steps = {title: step for title in workload.titles if (step := observer.step_of(title))}
    return latencies(workload.titles, accepted_at, steps)


def run_loaded(tocsin: EscalatingTocsin, observer: Observer, template: dict, args):
    """The ingest benchmark's load (after its warm-up) to an escalating integration."""
    warm_path = tocsin.escalating_integration("bench-warmup")
    warmup = build_workload(template, args.warmup, args.new_group_ratio, args.seed + 1, "Warm")
    post_all(tocsin.port, warm_path, warmup.bodies, args.concurrency)
    observer.wait_for_steps(set(warmup.titles), args.step_timeout)  # drained: start clean

    path = tocsin.escalating_integration("bench-load")
    workload = build_workload(template, args.requests, args.new_group_ratio, args.seed, "Load")
    labels = {"tocsin-web": "web (gunicorn)", "tocsin-ingest": "ingest", "tocsin-project": "project",
              "tocsin-escalate": "escalate", "tocsin-ticker": "ticker"}
    cpu = CpuMeter(tocsin.procs.pgids(labels)).start()
    load = post_all(tocsin.port, path, workload.bodies, args.concurrency)
    accepted_at = first_accepted(workload, load)
    expected = {title for title, at in zip(workload.titles, accepted_at) if at is not None}
    steps = observer.wait_for_steps(expected, args.step_timeout)
    cpu.stop()
    return load, latencies(workload.titles, accepted_at, steps), cpu


# --- the report ------------------------------------------------------------------------------


def print_report(args, facts, idle: Latencies, load, loaded: Latencies, cpu: CpuMeter) -> bool:
    print()
    print("=" * 92)
    print("Tocsin escalation benchmark: alert 2xx -> first escalation step recorded")
    print("=" * 92)
    for key, value in facts:
        print(f"  {key:<15} {value}")
    print(f"  {'workload':<15} idle: {args.idle_alerts} alerts one at a time; load: {args.requests} Alertmanager "
          f"notifications (am-02), {args.new_group_ratio:.0%} opening a group, concurrency {args.concurrency}, "
          f"seed {args.seed}")
    print()
    print(f"{'phase':<6} | {'groups':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missing':>7} | "
          f"{'decided p50':>11} {'decided p99':>11} | {'acc/s':>6}")
    print("-" * 92)
    for name, result, rate in (("idle", idle, None), ("load", loaded, load.accepted_per_s)):
        print(f"{name:<6} | {len(result.seen):>6} {ms(result.p(50)):>8} {ms(result.p(99)):>8} {ms(result.p(100)):>8} "
              f"{result.missing:>7} | {ms(percentile(result.decided, 50)):>11} {ms(percentile(result.decided, 99)):>11} | "
              f"{'-' if rate is None else f'{rate:.0f}':>6}")
    print()
    print("  p50/p99/max: 2xx of the group's first notification -> its first step seen committed (LISTEN/NOTIFY,")
    print("  then read). decided: -> the step event's own time, taken before its commit (the observer's share is the")
    print("  difference). missing: steps not seen within --step-timeout.")
    if load.failures:
        print(f"  load: {len(load.failures)} of {load.requests} requests were not 200, e.g. {load.failures[:3]}")
    if cpu.used and load.ok:
        shares = ", ".join(f"{label} {1000 * seconds / load.ok:.2f}" for label, seconds in sorted(cpu.used.items()))
        print(f"  CPU ms per accepted request under load (until every step was seen, {cpu.wall:.1f} s): {shares}")
    checks = [
        (f"idle p50 <= {TARGET_P50_S * 1000:.0f} ms", idle.p(50), TARGET_P50_S),
        (f"idle p99 <= {TARGET_P99_S * 1000:.0f} ms", idle.p(99), TARGET_P99_S),
    ]
    results = [(text, value, value is not None and value <= target and idle.missing == 0)
               for text, value, target in checks]
    print()
    print("Targets")
    for text, value, ok in results:
        print(f"  [{bench_ingest.mark(ok)}] {text:<30} {ms(value)} ms" + (f", {idle.missing} missing" if idle.missing else ""))
    print()
    return all(ok for _, _, ok in results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-alerts", type=int, default=200, help="alerts sent one at a time (default 200)")
    parser.add_argument("--requests", type=int, default=5000, help="notifications of the load (default 5000)")
    parser.add_argument("--new-group-ratio", type=float, default=0.2,
                        help="share of the load's notifications that open a group (default 0.2)")
    parser.add_argument("--concurrency", type=int, default=16, help="load threads (default 16)")
    parser.add_argument("--database-url", default=os.environ.get("TOCSIN_TEST_DATABASE_URL",
                                                                 bench_ingest.DEFAULT_DATABASE_URL),
                        help="PostgreSQL URL (default $TOCSIN_TEST_DATABASE_URL or %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (default 16)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests before the load (default 100)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--step-timeout", type=float, default=60.0,
                        help="seconds to wait for a group's first step (default 60)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs (path printed)")
    parser.add_argument("--keep-rate-limits", action="store_true",
                        help="keep Tocsin's default inbound rate limits (most of the load then gets 429)")
    args = parser.parse_args(argv)
    if args.idle_alerts < 1 or args.requests < 1 or args.concurrency < 1:
        parser.error("need at least one idle alert, one request and one load thread")
    return args


def _terminate(signum, frame):  # run the finally blocks on SIGTERM too
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    template = json.loads(FIXTURE.read_text("utf-8"))
    log_dir = Path(tempfile.mkdtemp(prefix="tocsin-bench-escalation-"))
    procs = Processes(log_dir)
    schemas: list[str] = []
    observer = None
    keep_logs = args.keep_logs
    try:
        facts = machine_facts(args)
        tocsin = EscalatingTocsin(procs, args, schemas)
        print(f"starting Tocsin (schema {tocsin.schema}); logs in {log_dir} ...", flush=True)
        tocsin.start()
        observer = Observer(tocsin.env)
        observer.start()
        print(f"idle: {args.idle_alerts} alerts one at a time ...", flush=True)
        idle = run_idle(tocsin, observer, template, args)
        print(f"idle: p50 {ms(idle.p(50))} ms, p99 {ms(idle.p(99))} ms; load ...", flush=True)
        load, loaded, cpu = run_loaded(tocsin, observer, template, args)
        for name in ("tocsin-web", "tocsin-ingest", "tocsin-project", "tocsin-escalate", "tocsin-ticker"):
            procs.check_alive(name)
        facts.append(("load avg (end)", ", ".join(f"{x:.2f}" for x in os.getloadavg())))
        facts.append(("finished", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")))
        return 0 if print_report(args, facts, idle, load, loaded, cpu) else 1
    except BaseException:
        keep_logs = True
        raise
    finally:
        if observer is not None:
            observer.close()
        procs.stop_all()
        for schema in schemas:
            try:
                drop_schema(args.database_url, schema)
            except Exception as exc:  # noqa: BLE001  (report, but go on cleaning up)
                print(f"could not drop schema {schema}: {exc}", file=sys.stderr)
        if keep_logs:
            print(f"server logs kept in {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
