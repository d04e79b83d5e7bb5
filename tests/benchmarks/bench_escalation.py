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
import sys
import threading
import time
from dataclasses import dataclass
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
    LoadResult,
    add_database_argument,
    add_keep_arguments,
    benchmark_run,
    build_workload,
    clock,
    first_accepted,
    http_json,
    machine_facts,
    ms,
    percentile,
    post_all,
    print_heading,
    print_targets,
    wait_for_log,
)

TARGET_P50_S = 1.0  # at idle
TARGET_P99_S = 2.0
HOLD_SECONDS = 3600  # the chain's wait after its first step: nothing else runs during the benchmark
OBSERVER_READY_TIMEOUT = 60.0
# The production processes the ingest benchmark's Tocsin runs, by the label of their CPU.
PROCESS_LABELS = {"tocsin-web": "web (gunicorn)", "tocsin-ingest": "ingest", "tocsin-project": "project",
                  "tocsin-escalate": "escalate", "tocsin-ticker": "ticker"}  # fmt: skip


# --- observers in processes of their own -----------------------------------------------------


class ObserverProcess:
    """A process of its own (so the load threads' GIL does not delay it) that reports what it sees
    of each group, by title: ``target(*args, queue, ready, stop)`` runs in it, puts reports on the
    queue and sets ``ready`` once it watches; ``take`` files each report here."""

    def __init__(self, target, args: tuple, name: str, description: str, ready_timeout: float):
        context = multiprocessing.get_context("spawn")  # no copy of this process's threads
        self.queue = context.Queue()
        self.ready, self.stop = context.Event(), context.Event()
        self.process = context.Process(target=target, args=(*args, self.queue, self.ready, self.stop), name=name,
                                       daemon=True)  # fmt: skip
        self.description = description
        self.ready_timeout = ready_timeout
        # clock() and the wall clock, read together: what a wall-clock time is on clock()
        self.wall_minus_clock = time.time() - clock()

    def take(self, report: tuple) -> None:
        raise NotImplementedError

    def seen(self, titles: set[str]) -> dict[str, object]:
        """What was reported so far of the groups with these titles, by title."""
        raise NotImplementedError

    def start(self) -> None:
        self.process.start()
        if not self.ready.wait(self.ready_timeout):
            raise RuntimeError(f"the {self.description} did not start")

    def drain(self, timeout: float = 0.0) -> None:
        try:
            report = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
            while True:
                self.take(report)
                report = self.queue.get_nowait()
        except queue.Empty:
            pass

    def wait_for(self, titles: set[str], timeout: float) -> dict[str, object]:
        """What was seen of the groups with these titles, once all are seen or ``timeout`` passed."""
        deadline = clock() + timeout
        while True:
            self.drain(timeout=0.05)
            seen = self.seen(titles)
            if len(seen) == len(titles) or clock() > deadline:
                return seen

    def close(self) -> None:
        self.stop.set()
        if self.process.pid is None:
            return  # never started
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


# --- the observer: LISTEN, then read what each commit made visible ----------------------------------


def observe(env: dict[str, str], found: multiprocessing.Queue, ready, stop) -> None:
    """Run in the observer's process: put ("group", group id, title) for each new group and
    ("step", group id, seen at, decided at) for each group's first step, ``seen at`` on the
    ``clock()`` the load generator uses (system-wide monotonic), ``decided at`` the step event's
    own wall-clock time, taken before its commit."""
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


class Observer(ObserverProcess):
    """The step observer and what it has reported so far: each group's first step, (seen at,
    decided at) on clock()."""

    def __init__(self, env: dict[str, str]):
        super().__init__(observe, (env,), "step-observer", "step observer", OBSERVER_READY_TIMEOUT)
        self.titles: dict[str, str] = {}  # group id -> title
        self.steps: dict[str, tuple[float, float]] = {}  # group id -> (seen at, decided at)

    def take(self, report: tuple) -> None:
        if report[0] == "group":
            self.titles[report[1]] = report[2]
        else:
            self.steps.setdefault(report[1], (report[2], report[3] - self.wall_minus_clock))

    def seen(self, titles: set[str]) -> dict[str, tuple[float, float]]:
        return {self.titles[g]: step for g, step in self.steps.items() if self.titles.get(g) in titles}


# --- Tocsin with escalation ------------------------------------------------------------------


class EscalatingTocsin(bench_ingest.Tocsin):
    """The ingest benchmark's production-mode Tocsin (with its escalation and ticker processes)
    and a chain that every integration made here takes."""

    def start(self) -> None:
        super().start()
        wait_for_log(self.procs, "tocsin-ticker", "ticker running")
        user = self.on_call_user()
        self.chain = self._api("POST", "/api/v1/escalation_chains/", {"name": "bench"})
        for step in ({"type": "notify_persons", "persons_to_notify": [user["id"]]},
                     {"type": "wait", "duration": HOLD_SECONDS}):
            self._api("POST", "/api/v1/escalation_policies/", {"escalation_chain_id": self.chain["id"], **step})

    def on_call_user(self) -> dict:
        """The user the chain notifies."""
        return self._api("POST", "/api/v1/users/", {"username": "oncall", "role": "editor"})

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


@dataclass
class Phase:
    """What a phase sent, per group in sending order, and what the observer saw of it, by title."""

    titles: list[str]
    accepted_at: list[float | None]  # the 2xx of the group's first accepted notification, on clock()
    seen: dict[str, object]
    load: LoadResult | None = None  # under load: the load generator's result
    cpu: CpuMeter | None = None  # under load: from its start until the observer saw every group

    @property
    def accepted(self) -> set[str]:
        """The titles of the groups with an accepted notification."""
        return {title for title, at in zip(self.titles, self.accepted_at) if at is not None}

    def measured(self) -> tuple[list[tuple[str, float]], int]:
        """(title, 2xx) of each group with an accepted notification that the observer saw, and how
        many such groups it did not see in time (a group never accepted is not measured)."""
        seen = [(title, at) for title, at in zip(self.titles, self.accepted_at)
                if at is not None and title in self.seen]  # fmt: skip
        return seen, len(self.accepted) - len(seen)


def send_idle(tocsin: EscalatingTocsin, observer: ObserverProcess, template: dict, args, timeout: float) -> Phase:
    """``--idle-alerts`` alerts to a fresh escalating integration, one at a time, each opening a
    group; the next a random pause after the observer saw the previous one's group (or
    ``timeout`` passed)."""
    path = tocsin.escalating_integration("bench-idle")
    workload = build_workload(template, args.idle_alerts, 1.0, args.seed, "Idle")
    rng = random.Random(args.seed)
    accepted_at: list[float | None] = []
    for body, title in zip(workload.bodies, workload.titles):
        load = post_all(tocsin.port, path, [body], 1)
        accepted_at.append(load.done_at[0])
        if load.done_at[0] is not None:
            observer.wait_for({title}, timeout)
        time.sleep(rng.uniform(0.05, 0.25))
    observer.drain()
    return Phase(workload.titles, accepted_at, observer.seen(set(workload.titles)))


def send_load(tocsin: EscalatingTocsin, observer: ObserverProcess, template: dict, args, timeout: float,
              labels: dict[str, str]) -> Phase:  # fmt: skip
    """The ingest benchmark's load (after its warm-up, whose groups the observer sees first) to a
    fresh escalating integration; the CPU of the processes named in ``labels`` meanwhile."""
    warm_path = tocsin.escalating_integration("bench-warmup")
    warmup = build_workload(template, args.warmup, args.new_group_ratio, args.seed + 1, "Warm")
    post_all(tocsin.port, warm_path, warmup.bodies, args.concurrency)
    observer.wait_for(set(warmup.titles), timeout)  # drained: start clean

    path = tocsin.escalating_integration("bench-load")
    workload = build_workload(template, args.requests, args.new_group_ratio, args.seed, "Load")
    cpu = CpuMeter(tocsin.procs.pgids(labels)).start()
    load = post_all(tocsin.port, path, workload.bodies, args.concurrency)
    phase = Phase(workload.titles, first_accepted(workload, load), {}, load, cpu)
    phase.seen = observer.wait_for(phase.accepted, timeout)
    cpu.stop()
    return phase


class Latencies:
    def __init__(self, seen: list[float], decided: list[float], missing: int):
        self.seen = seen  # 2xx -> step visible, seconds
        self.decided = decided  # 2xx -> step decided (before its commit), seconds
        self.missing = missing  # groups whose first step was not seen in time

    def p(self, pct: float) -> float | None:
        return percentile(self.seen, pct)


def latencies(phase: Phase) -> Latencies:
    measured, missing = phase.measured()
    return Latencies([phase.seen[title][0] - accepted for title, accepted in measured],
                     [phase.seen[title][1] - accepted for title, accepted in measured], missing)  # fmt: skip


def run_idle(tocsin: EscalatingTocsin, observer: Observer, template: dict, args) -> Latencies:
    return latencies(send_idle(tocsin, observer, template, args, args.step_timeout))


def run_loaded(tocsin: EscalatingTocsin, observer: Observer, template: dict, args
               ) -> tuple[LoadResult, Latencies, CpuMeter]:  # fmt: skip
    phase = send_load(tocsin, observer, template, args, args.step_timeout, PROCESS_LABELS)
    return phase.load, latencies(phase), phase.cpu


# --- the report ------------------------------------------------------------------------------


def phases_workload(args) -> tuple[str, str]:
    """The ``workload`` line of the report's heading."""
    described = (f"idle: {args.idle_alerts} alerts one at a time; load: {args.requests} Alertmanager "
                 f"notifications (am-02), {args.new_group_ratio:.0%} opening a group, concurrency {args.concurrency}, "
                 f"seed {args.seed}")
    return "workload", described


def print_load_notes(load: LoadResult, cpu: CpuMeter, until: str) -> None:
    """The load's failed requests, and the CPU per accepted request from its start ``until``."""
    if load.failures:
        print(f"  load: {len(load.failures)} of {load.requests} requests were not 200, e.g. {load.failures[:3]}")
    if cpu.used and load.ok:
        shares = ", ".join(f"{label} {1000 * seconds / load.ok:.2f}" for label, seconds in sorted(cpu.used.items()))
        print(f"  CPU ms per accepted request under load ({until}, {cpu.wall:.1f} s): {shares}")


def idle_checks(idle) -> list[tuple[str, str, bool]]:
    """The targets, at idle: p50 and p99, each missed too if a group was missing."""
    missing = f", {idle.missing} missing" if idle.missing else ""
    return [(f"idle p{pct} <= {target * 1000:.0f} ms", f"{ms(idle.p(pct))} ms{missing}",
             idle.p(pct) is not None and idle.p(pct) <= target and idle.missing == 0)
            for pct, target in ((50, TARGET_P50_S), (99, TARGET_P99_S))]  # fmt: skip


def print_report(args, facts, idle: Latencies, load: LoadResult, loaded: Latencies, cpu: CpuMeter) -> bool:
    print_heading("Tocsin escalation benchmark: alert 2xx -> first escalation step recorded", 92,
                  [*facts, phases_workload(args)])
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
    print_load_notes(load, cpu, "until every step was seen")
    return print_targets(idle_checks(idle), 30)


# --- main ------------------------------------------------------------------------------------


def add_phase_arguments(parser: argparse.ArgumentParser, idle_alerts: int) -> None:
    parser.add_argument("--idle-alerts", type=int, default=idle_alerts,
                        help=f"alerts sent one at a time (default {idle_alerts})")
    parser.add_argument("--requests", type=int, default=5000, help="notifications of the load (default 5000)")
    parser.add_argument("--new-group-ratio", type=float, default=0.2,
                        help="share of the load's notifications that open a group (default 0.2)")
    parser.add_argument("--concurrency", type=int, default=16, help="load threads (default 16)")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (default 16)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests before the load (default 100)")
    parser.add_argument("--seed", type=int, default=42)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_phase_arguments(parser, idle_alerts=200)
    add_database_argument(parser)
    add_server_arguments(parser)
    parser.add_argument("--step-timeout", type=float, default=60.0,
                        help="seconds to wait for a group's first step (default 60)")
    add_keep_arguments(parser)
    args = parser.parse_args(argv)
    if args.idle_alerts < 1 or args.requests < 1 or args.concurrency < 1:
        parser.error("need at least one idle alert, one request and one load thread")
    return args


def run_phases(args, facts: list[tuple[str, str]], tocsin: EscalatingTocsin, observer: ObserverProcess,
               run_idle, run_loaded, print_report) -> int:  # fmt: skip
    """Start Tocsin, then the observer; ``run_idle`` then ``run_loaded`` (each given Tocsin, the
    observer, the captured Alertmanager payload and ``args``); the report. 0 if the idle targets are met."""
    template = json.loads(FIXTURE.read_text("utf-8"))
    print(f"starting Tocsin (schema {tocsin.schema}); logs in {tocsin.procs.log_dir} ...", flush=True)
    tocsin.start()
    try:
        observer.start()
        print(f"idle: {args.idle_alerts} alerts one at a time ...", flush=True)
        idle = run_idle(tocsin, observer, template, args)
        print(f"idle: p50 {ms(idle.p(50))} ms, p99 {ms(idle.p(99))} ms; load ...", flush=True)
        load, loaded, cpu = run_loaded(tocsin, observer, template, args)
        for name in tocsin.procs.running:
            tocsin.procs.check_alive(name)
    finally:
        observer.close()
    facts.append(("load avg (end)", ", ".join(f"{x:.2f}" for x in os.getloadavg())))
    facts.append(("finished", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")))
    return 0 if print_report(args, facts, idle, load, loaded, cpu) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with benchmark_run(args, "tocsin-bench-escalation-") as (procs, schemas):
        facts = machine_facts(args)
        tocsin = EscalatingTocsin(procs, args, schemas)
        return run_phases(args, facts, tocsin, Observer(tocsin.env), run_idle, run_loaded, print_report)


if __name__ == "__main__":
    sys.exit(main())
