#!/usr/bin/env python3
"""Notification benchmark: from an alert's 2xx to its email, received by a local SMTP server.

Plain script, not a pytest test:

    python tests/benchmarks/bench_notification.py [--idle-alerts 100] [--requests 5000]
                                                  [--database-url postgresql://...]
                                                  [--redis-url redis://127.0.0.1:6379/12]

What it does (see tests/benchmarks/README.md for how to read the output):

1. Starts Tocsin in production mode on a fresh PostgreSQL schema, as the escalation benchmark
   does (``web``, ``ingest``, ``project``, ``escalate``, ``ticker``), with Redis (a database the
   benchmark has to itself) and ``--delivery-workers`` ``tocsin worker`` processes; email goes to
   an SMTP server (aiosmtpd) in a process of its own, which notes when each message arrived.
   Through the API: a user with an email address and one rule, notify by email, and a chain
   [notify that user, wait an hour] that every benchmark integration's default route takes.
2. Idle: after five untimed alerts, ``--idle-alerts`` alerts one at a time, each opening a
   group, the next sent a short random pause after the previous one's email arrived.
3. Under load: the ingest benchmark's workload (its load generator, ``--requests`` Alertmanager
   notifications, ``--new-group-ratio`` of them opening a group, ``--concurrency`` threads) to a
   fresh integration; the latency of every group it opens.
4. Prints p50 / p99 / max of each, where the time went (from the store: when each delivery
   attempt was requested and claimed by a worker), and whether the idle figures meet the
   targets (p50 <= 1 s, p99 <= 2 s).

Everything it starts (processes, the schema, what it put in Redis) is removed at the end, also on
failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO_ROOT))

# The ingest benchmark's load generator, processes, statistics and report helpers, and the
# escalation benchmark's Tocsin with a chain, its observer process, phases and report.
from bench_escalation import (
    PROCESS_LABELS,
    EscalatingTocsin,
    ObserverProcess,
    Phase,
    add_phase_arguments,
    add_server_arguments,
    idle_checks,
    phases_workload,
    print_load_notes,
    run_phases,
    send_idle,
    send_load,
)
from bench_ingest import (
    CpuMeter,
    LoadResult,
    add_database_argument,
    add_keep_arguments,
    benchmark_run,
    build_workload,
    clock,
    free_port,
    machine_facts,
    ms,
    percentile,
    post_all,
    print_heading,
    print_targets,
    wait_for_log,
)

DEFAULT_REDIS_DB = 12  # a database of the benchmark's own on the test Redis
SINK_READY_TIMEOUT = 30.0
IDLE_WARMUP = 5  # untimed alerts before the idle ones
ATTEMPT_HEADER = "X-Tocsin-Attempt"  # workers.delivery's: each email's delivery attempt


# --- the SMTP server: notes when each message arrived ------------------------------------------------


def run_sink(port: int, received: multiprocessing.Queue, ready, stop) -> None:
    """Run in the sink's process: put (subject, attempt id, arrived at) for each message, ``arrived
    at`` on the ``clock()`` the load generator uses (system-wide monotonic), read when the
    message's data are in, before the answer."""
    import email.policy
    from email.parser import BytesHeaderParser

    from aiosmtpd.controller import Controller

    parser = BytesHeaderParser(policy=email.policy.default)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            arrived = clock()
            headers = parser.parsebytes(envelope.original_content)
            received.put((str(headers["Subject"]), headers[ATTEMPT_HEADER], arrived))
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        stop.wait()
    finally:
        controller.stop()


class Sink(ObserverProcess):
    """The SMTP server's process and what it has received so far: when the first email about each
    title arrived, on clock()."""

    def __init__(self):
        self.port = free_port()
        super().__init__(run_sink, (self.port,), "smtp-sink", "SMTP server", SINK_READY_TIMEOUT)
        self.first: dict[str, float] = {}  # subject -> when its first message arrived
        self.attempts: Counter[str] = Counter()  # attempt id -> messages

    def take(self, report: tuple) -> None:
        subject, attempt_id, arrived = report
        self.first.setdefault(subject, arrived)
        self.attempts[attempt_id] += 1

    def seen(self, titles: set[str]) -> dict[str, float]:
        return {title: self.first[title] for title in titles if title in self.first}


# --- Tocsin with delivery ------------------------------------------------------------------------


class NotifyingTocsin(EscalatingTocsin):
    """The escalation benchmark's Tocsin with Redis, ``tocsin worker`` processes and email to the
    sink; the chain's user has an email address and an email rule."""

    def __init__(self, procs, args, schemas: list[str], smtp_port: int):
        super().__init__(procs, args, schemas)
        self.env.update(TOCSIN_REDIS_URL=args.redis_url,
                        TOCSIN_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}/?from=pager@example.org")  # fmt: skip

    def start(self) -> None:
        super().start()
        for name in self.worker_names():
            self.procs.start(name, [sys.executable, "-m", "tocsin.cli", "worker"], self.env)
            wait_for_log(self.procs, name, "Listening on")

    def on_call_user(self) -> dict:
        user = self._api("POST", "/api/v1/users/", {"username": "oncall", "role": "editor",
                                                    "email": "oncall@example.org"})  # fmt: skip
        self._api("POST", "/api/v1/personal_notification_rules/", {"user_id": user["id"], "type": "notify_by_email"})
        return user

    def worker_names(self) -> list[str]:
        return [f"tocsin-worker-{number}" for number in range(1, self.args.delivery_workers + 1)]


# --- where the time went, from the store ------------------------------------------------------------


def attempt_times(env: dict[str, str], titles: set[str]) -> dict[str, tuple[float, float]]:
    """Title -> (when its group's first delivery attempt was requested, when a worker claimed it),
    wall-clock times from the alerting store."""
    from eventsourcing.utils import get_topic

    from adapters.settings import Settings
    from domain.alert_group import AlertGroup
    from domain.applications import Alerting
    from domain.delivery import DeliveryAttempt

    settings = Settings.from_env(env)
    alerting = Alerting(env=settings.event_store_env(Alerting.name, False))
    topics = [get_topic(c) for c in (AlertGroup.Registered, DeliveryAttempt.Requested, DeliveryAttempt.Started)]
    title_of: dict = {}  # group id -> title
    requested: dict = {}  # attempt id -> (title, requested at)
    times: dict[str, tuple[float, float]] = {}
    position = 0
    try:
        while page := alerting.recorder.select_notifications(position, 1000, topics=topics, inclusive_of_start=False):
            for notification in page:
                event = alerting.mapper.to_domain_event(notification)
                if isinstance(event, AlertGroup.Registered):
                    if event.title.strip() in titles:
                        title_of[event.originator_id] = event.title.strip()
                elif isinstance(event, DeliveryAttempt.Requested):
                    if event.group_id in title_of and event.number == 1:
                        requested[event.originator_id] = (title_of[event.group_id], event.timestamp.timestamp())
                elif event.originator_id in requested:
                    title, at = requested.pop(event.originator_id)
                    times.setdefault(title, (at, event.at.timestamp()))
            position = page[-1].id
    finally:
        alerting.close()
    return times


@dataclass
class Latencies:
    received: list[float]  # 2xx -> email arrived at the SMTP server, seconds
    requested: list[float]  # 2xx -> delivery attempt requested (escalation step and the person's rules)
    claimed: list[float]  # 2xx -> claimed by a worker (queued, picked up)
    missing: int  # groups whose email did not arrive in time
    doubled: int  # attempts whose email arrived more than once

    def p(self, pct: float) -> float | None:
        return percentile(self.received, pct)


def latencies(phase: Phase, times: dict[str, tuple[float, float]], sink: Sink) -> Latencies:
    measured, missing = phase.measured()
    result = Latencies([], [], [], missing, sum(count > 1 for count in sink.attempts.values()))
    for title, accepted in measured:
        result.received.append(phase.seen[title] - accepted)
        if title in times:
            requested, claimed = times[title]
            result.requested.append(requested - sink.wall_minus_clock - accepted)
            result.claimed.append(claimed - sink.wall_minus_clock - accepted)
    return result


# --- the two phases --------------------------------------------------------------------------


def run_idle(tocsin: NotifyingTocsin, sink: Sink, template: dict, args) -> Latencies:
    """One alert at a time; the next a random pause after the previous one's email arrived."""
    # A few untimed first: the first alerts start the render workers and open the pools.
    warm_path = tocsin.escalating_integration("bench-idle-warmup")
    warmup = build_workload(template, IDLE_WARMUP, 1.0, args.seed + 2, "First")
    for body, title in zip(warmup.bodies, warmup.titles):
        post_all(tocsin.port, warm_path, [body], 1)
        sink.wait_for({title}, args.email_timeout)
    phase = send_idle(tocsin, sink, template, args, args.email_timeout)
    times = attempt_times(tocsin.env, set(phase.titles))
    return latencies(phase, times, sink)


def run_loaded(tocsin: NotifyingTocsin, sink: Sink, template: dict, args) -> tuple[LoadResult, Latencies, CpuMeter]:
    """The ingest benchmark's load (after its warm-up) to an integration whose groups email."""
    labels = {**PROCESS_LABELS, **dict.fromkeys(tocsin.worker_names(), "worker (RQ)")}
    phase = send_load(tocsin, sink, template, args, args.email_timeout, labels)
    times = attempt_times(tocsin.env, phase.accepted)
    return phase.load, latencies(phase, times, sink), phase.cpu


# --- the report ------------------------------------------------------------------------------


def print_report(args, facts, idle: Latencies, load: LoadResult, loaded: Latencies, cpu: CpuMeter) -> bool:
    print_heading("Tocsin notification benchmark: alert 2xx -> email received by a local SMTP server", 100,
                  [*facts, phases_workload(args)])
    print(f"{'phase':<6} | {'emails':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missing':>7} {'twice':>5} | "
          f"{'requested p50/p99':>17} {'claimed p50/p99':>17} | {'acc/s':>6}")
    print("-" * 100)
    for name, result, rate in (("idle", idle, None), ("load", loaded, load.accepted_per_s)):
        requested = f"{ms(percentile(result.requested, 50))}/{ms(percentile(result.requested, 99))}"
        claimed = f"{ms(percentile(result.claimed, 50))}/{ms(percentile(result.claimed, 99))}"
        print(f"{name:<6} | {len(result.received):>6} {ms(result.p(50)):>8} {ms(result.p(99)):>8} "
              f"{ms(result.p(100)):>8} {result.missing:>7} {result.doubled:>5} | {requested:>17} {claimed:>17} | "
              f"{'-' if rate is None else f'{rate:.0f}':>6}")
    print()
    print("  p50/p99/max: 2xx of the group's first notification -> its email's data in at the SMTP server.")
    print("  requested: -> the delivery attempt's event (escalation step, then the person's rules); claimed: -> a")
    print("  worker's claim of it (queued in Redis, picked up). missing: no email within --email-timeout;")
    print("  twice: attempts whose email arrived more than once (the claim should make it 0).")
    print_load_notes(load, cpu, "until every email arrived")
    return print_targets(idle_checks(idle), 30)


# --- main ------------------------------------------------------------------------------------


def default_redis_url() -> str:
    """The test Redis's server, in a database of the benchmark's own."""
    base = urlsplit(os.environ.get("TOCSIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    return urlunsplit(base._replace(path=f"/{DEFAULT_REDIS_DB}"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_phase_arguments(parser, idle_alerts=100)
    parser.add_argument("--delivery-workers", type=int, default=2, help="`tocsin worker` processes (default 2)")
    add_database_argument(parser)
    parser.add_argument("--redis-url", default=default_redis_url(),
                        help="an empty Redis database, emptied again at the end (default %(default)s)")
    add_server_arguments(parser)
    parser.add_argument("--email-timeout", type=float, default=60.0,
                        help="seconds to wait for a group's email (default 60)")
    add_keep_arguments(parser)
    args = parser.parse_args(argv)
    if args.idle_alerts < 1 or args.requests < 1 or args.concurrency < 1 or args.delivery_workers < 1:
        parser.error("need at least one idle alert, one request, one load thread and one delivery worker")
    return args


def empty_redis(url: str):
    """A connection to the benchmark's Redis database, refused unless it is empty (it is emptied at the end)."""
    import redis

    connection = redis.Redis.from_url(url, socket_timeout=5)
    keys = connection.dbsize()
    if keys:
        connection.close()
        raise SystemExit(f"the Redis database {url} holds {keys} keys: give an empty one (--redis-url), "
                         "as the benchmark empties it at the end")
    return connection


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    redis = empty_redis(args.redis_url)
    try:
        with benchmark_run(args, "tocsin-bench-notification-") as (procs, schemas):
            facts = machine_facts(args)
            delivery = (f"Redis {args.redis_url}, {args.delivery_workers} `tocsin worker` (RQ), email to aiosmtpd "
                        "on 127.0.0.1 in a process of its own")
            facts.append(("delivery", delivery))
            sink = Sink()
            tocsin = NotifyingTocsin(procs, args, schemas, sink.port)
            return run_phases(args, facts, tocsin, sink, run_idle, run_loaded, print_report)
    finally:
        try:
            redis.flushdb()  # it was empty: only what this run put there
        finally:
            redis.close()


if __name__ == "__main__":
    sys.exit(main())
