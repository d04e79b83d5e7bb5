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
import json
import multiprocessing
import os
import queue
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO_ROOT))

# The ingest benchmark's load generator, processes, statistics and report helpers, and the
# escalation benchmark's Tocsin with a chain.
import bench_ingest
from bench_escalation import EscalatingTocsin
from bench_ingest import (
    FIXTURE,
    CpuMeter,
    Processes,
    build_workload,
    clock,
    drop_schema,
    first_accepted,
    free_port,
    machine_facts,
    ms,
    percentile,
    post_all,
    wait_for_log,
)

TARGET_P50_S = 1.0  # at idle
TARGET_P99_S = 2.0
DEFAULT_REDIS_DB = 12  # a database of the benchmark's own on the test Redis
SINK_READY_TIMEOUT = 30.0
IDLE_WARMUP = 5  # untimed alerts before the idle ones
ATTEMPT_HEADER = "X-Tocsin-Attempt"  # workers.delivery's: each email's delivery attempt


# --- the SMTP server: notes when each message arrived ------------------------------------------------


def run_sink(port: int, received: multiprocessing.Queue, ready, stop) -> None:
    """Run in a process of its own (so the load threads' GIL does not delay it): put (subject,
    attempt id, arrived at) for each message, ``arrived at`` on the ``clock()`` the load generator
    uses (system-wide monotonic), read when the message's data are in, before the answer."""
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


class Sink:
    """The SMTP server's process and what it has received so far."""

    def __init__(self):
        context = multiprocessing.get_context("spawn")  # no copy of this process's threads
        self.port = free_port()
        self.queue = context.Queue()
        self.ready, self.stop = context.Event(), context.Event()
        self.process = context.Process(target=run_sink, args=(self.port, self.queue, self.ready, self.stop),
                                       name="smtp-sink", daemon=True)
        self.first: dict[str, float] = {}  # subject -> when its first message arrived
        self.attempts: Counter[str] = Counter()  # attempt id -> messages

    def start(self) -> None:
        self.process.start()
        if not self.ready.wait(SINK_READY_TIMEOUT):
            raise RuntimeError("the SMTP server did not start")

    def drain(self, timeout: float = 0.0) -> None:
        try:
            item = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
            while True:
                subject, attempt_id, arrived = item
                self.first.setdefault(subject, arrived)
                self.attempts[attempt_id] += 1
                item = self.queue.get_nowait()
        except queue.Empty:
            pass

    def wait_for(self, titles: set[str], timeout: float) -> dict[str, float]:
        """When the first email about each of these titles arrived, once all did or ``timeout`` passed."""
        deadline = clock() + timeout
        while True:
            self.drain(timeout=0.05)
            arrived = {title: self.first[title] for title in titles if title in self.first}
            if len(arrived) == len(titles) or clock() > deadline:
                return arrived

    def close(self) -> None:
        self.stop.set()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


# --- Tocsin with delivery ------------------------------------------------------------------------


class NotifyingTocsin(EscalatingTocsin):
    """The escalation benchmark's Tocsin with Redis, ``tocsin worker`` processes and email to the
    sink; the chain's user has an email address and an email rule."""

    def __init__(self, procs: Processes, args, schemas: list[str], smtp_port: int):
        super().__init__(procs, args, schemas)
        self.env.update(TOCSIN_REDIS_URL=args.redis_url,
                        TOCSIN_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}/?from=pager@example.org")  # fmt: skip

    def start(self) -> None:
        bench_ingest.Tocsin.start(self)  # web, ingest, project (and whatever else it runs)
        cli = [sys.executable, "-m", "tocsin.cli"]
        for name, command, ready in (("tocsin-escalate", "escalate", "escalation running"),
                                     ("tocsin-ticker", "ticker", "ticker running")):
            if name not in self.procs.running:
                self.procs.start(name, cli + [command], self.env)
                wait_for_log(self.procs, name, ready)
        for name in self.worker_names():
            self.procs.start(name, cli + ["worker"], self.env)
            wait_for_log(self.procs, name, "Listening on")
        user = self._api("POST", "/api/v1/users/", {"username": "oncall", "role": "editor",
                                                    "email": "oncall@example.org"})  # fmt: skip
        self._api("POST", "/api/v1/personal_notification_rules/", {"user_id": user["id"], "type": "notify_by_email"})
        self.chain = self._api("POST", "/api/v1/escalation_chains/", {"name": "bench"})
        for step in ({"type": "notify_persons", "persons_to_notify": [user["id"]]},
                     {"type": "wait", "duration": 3600}):
            self._api("POST", "/api/v1/escalation_policies/", {"escalation_chain_id": self.chain["id"], **step})

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


def latencies(titles: list[str], accepted_at: list[float | None], arrived: dict[str, float],
              times: dict[str, tuple[float, float]], wall_minus_clock: float, sink: Sink) -> Latencies:  # fmt: skip
    result = Latencies([], [], [], 0, sum(count > 1 for count in sink.attempts.values()))
    for title, accepted in zip(titles, accepted_at):
        if accepted is None:
            continue  # never accepted: not measured
        if title not in arrived:
            result.missing += 1
            continue
        result.received.append(arrived[title] - accepted)
        if title in times:
            requested, claimed = times[title]
            result.requested.append(requested - wall_minus_clock - accepted)
            result.claimed.append(claimed - wall_minus_clock - accepted)
    return result


# --- the two phases --------------------------------------------------------------------------


def run_idle(tocsin: NotifyingTocsin, sink: Sink, template: dict, args, wall_minus_clock: float) -> Latencies:
    """One alert at a time; the next a random pause after the previous one's email arrived."""
    # A few untimed first: the first alerts start the render workers and open the pools.
    warm_path = tocsin.escalating_integration("bench-idle-warmup")
    warmup = build_workload(template, IDLE_WARMUP, 1.0, args.seed + 2, "First")
    for body, title in zip(warmup.bodies, warmup.titles):
        post_all(tocsin.port, warm_path, [body], 1)
        sink.wait_for({title}, args.email_timeout)
    path = tocsin.escalating_integration("bench-idle")
    workload = build_workload(template, args.idle_alerts, 1.0, args.seed, "Idle")
    rng = random.Random(args.seed)
    accepted_at: list[float | None] = []
    for body, title in zip(workload.bodies, workload.titles):
        load = post_all(tocsin.port, path, [body], 1)
        accepted_at.append(load.done_at[0])
        if load.done_at[0] is not None:
            sink.wait_for({title}, args.email_timeout)
        time.sleep(rng.uniform(0.05, 0.25))
    sink.drain()
    arrived = {title: sink.first[title] for title in workload.titles if title in sink.first}
    times = attempt_times(tocsin.env, set(workload.titles))
    return latencies(workload.titles, accepted_at, arrived, times, wall_minus_clock, sink)


def run_loaded(tocsin: NotifyingTocsin, sink: Sink, template: dict, args, wall_minus_clock: float):
    """The ingest benchmark's load (after its warm-up) to an integration whose groups email."""
    warm_path = tocsin.escalating_integration("bench-warmup")
    warmup = build_workload(template, args.warmup, args.new_group_ratio, args.seed + 1, "Warm")
    post_all(tocsin.port, warm_path, warmup.bodies, args.concurrency)
    sink.wait_for(set(warmup.titles), args.email_timeout)  # delivered: start clean

    path = tocsin.escalating_integration("bench-load")
    workload = build_workload(template, args.requests, args.new_group_ratio, args.seed, "Load")
    labels = {"tocsin-web": "web (gunicorn)", "tocsin-ingest": "ingest", "tocsin-project": "project",
              "tocsin-escalate": "escalate", "tocsin-ticker": "ticker",
              **dict.fromkeys(tocsin.worker_names(), "worker (RQ)")}  # fmt: skip
    cpu = CpuMeter(tocsin.procs.pgids(labels)).start()
    load = post_all(tocsin.port, path, workload.bodies, args.concurrency)
    accepted_at = first_accepted(workload, load)
    expected = {title for title, at in zip(workload.titles, accepted_at) if at is not None}
    arrived = sink.wait_for(expected, args.email_timeout)
    cpu.stop()
    times = attempt_times(tocsin.env, expected)
    return load, latencies(workload.titles, accepted_at, arrived, times, wall_minus_clock, sink), cpu


# --- the report ------------------------------------------------------------------------------


def print_report(args, facts, idle: Latencies, load, loaded: Latencies, cpu: CpuMeter) -> bool:
    print()
    print("=" * 100)
    print("Tocsin notification benchmark: alert 2xx -> email received by a local SMTP server")
    print("=" * 100)
    for key, value in facts:
        print(f"  {key:<15} {value}")
    print(f"  {'workload':<15} idle: {args.idle_alerts} alerts one at a time; load: {args.requests} Alertmanager "
          f"notifications (am-02), {args.new_group_ratio:.0%} opening a group, concurrency {args.concurrency}, "
          f"seed {args.seed}")
    print()
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
    if load.failures:
        print(f"  load: {len(load.failures)} of {load.requests} requests were not 200, e.g. {load.failures[:3]}")
    if cpu.used and load.ok:
        shares = ", ".join(f"{label} {1000 * seconds / load.ok:.2f}" for label, seconds in sorted(cpu.used.items()))
        print(f"  CPU ms per accepted request under load (until every email arrived, {cpu.wall:.1f} s): {shares}")
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


# --- main ------------------------------------------------------------------------------------


def default_redis_url() -> str:
    """The test Redis's server, in a database of the benchmark's own."""
    base = urlsplit(os.environ.get("TOCSIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    return urlunsplit(base._replace(path=f"/{DEFAULT_REDIS_DB}"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-alerts", type=int, default=100, help="alerts sent one at a time (default 100)")
    parser.add_argument("--requests", type=int, default=5000, help="notifications of the load (default 5000)")
    parser.add_argument("--new-group-ratio", type=float, default=0.2,
                        help="share of the load's notifications that open a group (default 0.2)")
    parser.add_argument("--concurrency", type=int, default=16, help="load threads (default 16)")
    parser.add_argument("--delivery-workers", type=int, default=2, help="`tocsin worker` processes (default 2)")
    parser.add_argument("--database-url", default=os.environ.get("TOCSIN_TEST_DATABASE_URL",
                                                                 bench_ingest.DEFAULT_DATABASE_URL),
                        help="PostgreSQL URL (default $TOCSIN_TEST_DATABASE_URL or %(default)s)")
    parser.add_argument("--redis-url", default=default_redis_url(),
                        help="an empty Redis database, emptied again at the end (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (default 16)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests before the load (default 100)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--email-timeout", type=float, default=60.0,
                        help="seconds to wait for a group's email (default 60)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs (path printed)")
    parser.add_argument("--keep-rate-limits", action="store_true",
                        help="keep Tocsin's default inbound rate limits (most of the load then gets 429)")
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


def _terminate(signum, frame):  # run the finally blocks on SIGTERM too
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    template = json.loads(FIXTURE.read_text("utf-8"))
    redis = empty_redis(args.redis_url)
    log_dir = Path(tempfile.mkdtemp(prefix="tocsin-bench-notification-"))
    procs = Processes(log_dir)
    schemas: list[str] = []
    sink = Sink()
    keep_logs = args.keep_logs
    try:
        facts = machine_facts(args)
        delivery = (f"Redis {args.redis_url}, {args.delivery_workers} `tocsin worker` (RQ), email to aiosmtpd "
                    "on 127.0.0.1 in a process of its own")
        facts.append(("delivery", delivery))
        sink.start()
        tocsin = NotifyingTocsin(procs, args, schemas, sink.port)
        print(f"starting Tocsin (schema {tocsin.schema}); logs in {log_dir} ...", flush=True)
        tocsin.start()
        # clock() and the wall clock, read together: the store's times on clock()
        wall_minus_clock = time.time() - clock()
        print(f"idle: {args.idle_alerts} alerts one at a time ...", flush=True)
        idle = run_idle(tocsin, sink, template, args, wall_minus_clock)
        print(f"idle: p50 {ms(idle.p(50))} ms, p99 {ms(idle.p(99))} ms; load ...", flush=True)
        load, loaded, cpu = run_loaded(tocsin, sink, template, args, wall_minus_clock)
        for name in procs.running:
            procs.check_alive(name)
        facts.append(("load avg (end)", ", ".join(f"{x:.2f}" for x in os.getloadavg())))
        facts.append(("finished", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")))
        return 0 if print_report(args, facts, idle, load, loaded, cpu) else 1
    except BaseException:
        keep_logs = True
        raise
    finally:
        sink.close()
        procs.stop_all()
        for schema in schemas:
            try:
                drop_schema(args.database_url, schema)
            except Exception as exc:  # noqa: BLE001  (report, but go on cleaning up)
                print(f"could not drop schema {schema}: {exc}", file=sys.stderr)
        try:
            redis.flushdb()  # it was empty: only what this run put there
        finally:
            redis.close()
        if keep_logs:
            print(f"server logs kept in {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
