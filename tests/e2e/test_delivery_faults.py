"""Notifications reach people while the processes that deliver them crash: none is lost, and no
attempt is sent twice (issue #10, section 4).

PostgreSQL with Redis: the Procfile's processes (`web`, `ingest`, `project`, `ticker`, `escalate`
and two `worker`s), each its own OS process. SQLite (no Redis): `tocsin serve`, which delivers in
threads of its own. Email goes to a real SMTP server (aiosmtpd) and webhooks to a real HTTP
server, both in this process and both slow to answer (1 to 2 s), so that a sender killed while
it is busy dies mid-send. Two users, each with the rules [email, wait 3 s, webhook], are paged by
the chain of every one of many alert groups, sent over HTTP; an outgoing webhook fires for each
group's creation, through the same outbox. Meanwhile, at seeded random moments: on PostgreSQL
the workers are killed with SIGKILL and started again, Redis's database is flushed (the queued
jobs are lost) and the escalation process, which queues the deliveries, is killed and started
again; on SQLite `tocsin serve` is killed and started again.

At the end the receivers are counted: every notification step of every person arrived at least
once; no attempt arrived twice (each attempt's id is in its email's ``X-Tocsin-Attempt`` header
and in its webhook's body); each arrived for the right person and alert group; and the timelines
agree with the receivers: every attempt shown as sent arrived once, and one that arrived without
being shown as sent is shown as failed with an unknown outcome (its sender died mid-send; the
step was tried again as a new attempt). Nothing else may fail. The outgoing webhook is also
counted per group (its request carries its attempt's id only if a header says so): at least
once, and more only for attempts whose sender died mid-send.

The seed is printed (run with `-s` to see the schedule); `TOCSIN_FAULTS_SEED=<seed>` replays the
same moments.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from http.client import HTTPException
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from adapters.notify_channels import check_webhook_url
from adapters.settings import Settings
from domain.alert_group import AlertGroup
from domain.delivery import (
    CANCELLED,
    DONE,
    FAILED,
    REQUESTED,
    SENT,
    STARTED,
    STOPPED,
    UNKNOWN_OUTCOME,
    WEBHOOK_CHANNEL,
    DeliveryAttempt,
    PersonalNotification,
)
from domain.ids import PREFIX_ALERT_GROUP, public_id
from domain.notification_rules import NotificationStep
from projections.timeline import (
    TYPE_CUSTOM_WEBHOOK_TRIGGERED,
    TYPE_ESCALATION_FAILED,
    TYPE_NOTIFICATION_FAILED,
    TYPE_NOTIFICATION_SENT,
)
from projections.users import user_by_id
from tests.conftest import redis_url, require_redis
from tests.e2e.conftest import ProductionProcesses, http, run_cli, wait_healthy
from tests.local_servers import LOCAL, Mailbox, Receiver, smtp_server
from tocsin.runtime import Runtime
from workers.delivery import ATTEMPT_HEADER

pytestmark = pytest.mark.e2e

GROUPS = 10
USERS = ("alice", "bob")
RULE_WAIT_SECONDS = 3  # between each person's email and webhook
ANSWER_SECONDS = (1.0, 2.0)  # how long the receivers take to answer: a killed sender dies mid-send
SEND_WINDOW = 8.0  # the alerts are sent within this many seconds of the first
FAULT_WINDOW = (3.0, 27.0)  # seconds after the first alert: while deliveries run
DOWN_SECONDS = (0.0, 2.0)  # how long a killed process stays down
# On PostgreSQL: each worker is killed this often, the escalation process too, and Redis flushed.
WORKER_KILLS, ESCALATE_KILLS, FLUSHES = 3, 2, 2
SERVE_KILLS = 3  # on SQLite
COMMANDS = {"postgres": ("web", "ingest", "project", "ticker", "escalate"), "sqlite": ("serve",)}
WORKERS = ("worker-1", "worker-2")
# The deliveries' own database of the test Redis: flushed mid-test, and at the start and end only.
REDIS_DB = 11
OUTGOING_PATH = "/outgoing"  # where the outgoing webhook posts (fired by each alert group's creation)
# A sender killed mid-send is found by its attempt's check 60 s after it started, and the step
# tried again 5 s later: the deadline leaves room for the last kill's.
TIMEOUT = 170.0
SETTLE_SECONDS = 3.0  # after every step was sent: time for a late double to arrive

TOPICS = [get_topic(cls) for cls in (
    AlertGroup.Registered, PersonalNotification.Created, PersonalNotification.Done, PersonalNotification.Stopped,
    DeliveryAttempt.Requested, DeliveryAttempt.Redispatched, DeliveryAttempt.Started, DeliveryAttempt.Sent,
    DeliveryAttempt.Failed, DeliveryAttempt.Cancelled,
)]  # fmt: skip


# --- the receivers ----------------------------------------------------------------------------------


class SlowMailbox(Mailbox):
    """An SMTP server that keeps each message as soon as its data arrive and answers 250 a second
    or two later."""

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((envelope, parsed))
        await asyncio.sleep(random.uniform(*ANSWER_SECONDS))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox():
    with smtp_server(SlowMailbox()) as box:
        yield box


@pytest.fixture
def receiver():
    server = Receiver()
    server.delay = sum(ANSWER_SECONDS) / 2
    server.httpd.handle_error = lambda request, address: None  # the broken pipe a killed sender leaves
    yield server
    server.stop()


@pytest.fixture
def delivery_redis(backend: str):
    """The URL of a Redis database of this test's own (none on SQLite), flushed before and after."""
    if backend == "sqlite":
        yield None
        return
    require_redis()
    import redis

    parts = urlsplit(redis_url())
    url = urlunsplit(parts._replace(path=f"/{REDIS_DB}"))
    connection = redis.Redis.from_url(url, socket_timeout=5)
    connection.flushdb()
    try:
        yield url
    finally:
        connection.flushdb()
        connection.close()


@dataclass(frozen=True)
class Receipt:
    """One delivery as a receiver got it."""

    attempt_id: str | None  # None: the outgoing webhook's request did not say
    channel: str
    user: str | None  # to whom: the email's recipient, the webhook's user (and its path)
    subject: str | None  # the email's
    group_id: str | None  # the webhooks' alert group


def receipts(mailbox: SlowMailbox, receiver: Receiver) -> list[Receipt]:
    found = [Receipt(message[ATTEMPT_HEADER], "email", ",".join(envelope.rcpt_tos).removesuffix("@example.org"),
                     message["Subject"], None)
             for envelope, message in list(mailbox.messages)]  # fmt: skip
    for request in list(receiver.requests):
        body = json.loads(request["body"])
        if request["path"] == OUTGOING_PATH:
            headers = {name.lower(): value for name, value in request["headers"].items()}
            found.append(Receipt(headers.get(ATTEMPT_HEADER.lower()), WEBHOOK_CHANNEL, None, None, body["alert_group_id"]))
            continue
        assert request["path"] == f"/hook/{body['user']}", request
        found.append(Receipt(body["attempt_id"], "webhook", body["user"], None, body["alert_group_id"]))
    return found


# --- what the alerting store says -------------------------------------------------------------------


@dataclass
class Attempt:
    notification_id: UUID
    index: int
    number: int
    group_id: str  # public
    username: str
    channel: str  # WEBHOOK_CHANNEL: the outgoing webhook's, for no person
    state: str = REQUESTED
    reason: str | None = None
    redispatched: int = 0


@dataclass
class Outbox:
    """Personal notifications and their delivery attempts, read from the alerting store."""

    titles: dict[str, str] = field(default_factory=dict)  # group (public id) -> title
    notifications: dict[UUID, PersonalNotification.Created] = field(default_factory=dict)
    finished: dict[UUID, str] = field(default_factory=dict)  # notification -> DONE or STOPPED
    attempts: dict[UUID, Attempt] = field(default_factory=dict)

    @classmethod
    def read(cls, runtime: Runtime) -> Outbox:
        outbox = cls()
        position = 0
        while page := runtime.alerting.recorder.select_notifications(position, 1000, topics=TOPICS,
                                                                     inclusive_of_start=False):
            for notification in page:
                outbox._apply(runtime.alerting.mapper.to_domain_event(notification))
            position = page[-1].id
        return outbox

    def _apply(self, event) -> None:
        if isinstance(event, AlertGroup.Registered):
            self.titles[public_id(PREFIX_ALERT_GROUP, event.originator_id)] = event.title.strip()
        elif isinstance(event, PersonalNotification.Created):
            self.notifications[event.originator_id] = event
        elif isinstance(event, PersonalNotification.Done | PersonalNotification.Stopped):
            self.finished[event.originator_id] = DONE if isinstance(event, PersonalNotification.Done) else STOPPED
        elif isinstance(event, DeliveryAttempt.Requested):
            self.attempts[event.originator_id] = Attempt(
                event.notification_id, event.index, event.number, public_id(PREFIX_ALERT_GROUP, event.group_id),
                event.username, event.channel,
            )  # fmt: skip
        else:
            attempt = self.attempts[event.originator_id]
            if isinstance(event, DeliveryAttempt.Redispatched):
                attempt.redispatched += 1
            elif isinstance(event, DeliveryAttempt.Started):
                attempt.state = STARTED
            elif isinstance(event, DeliveryAttempt.Sent):
                attempt.state = SENT
            elif isinstance(event, DeliveryAttempt.Failed):
                attempt.state, attempt.reason = FAILED, event.reason
            elif isinstance(event, DeliveryAttempt.Cancelled):
                attempt.state, attempt.reason = CANCELLED, event.reason

    def steps(self) -> dict[tuple[UUID, int], list[UUID]]:
        """Every notify step of every person's notification -> its attempts."""
        steps: dict[tuple[UUID, int], list[UUID]] = {
            (notification_id, index): []
            for notification_id, created in self.notifications.items()
            for index, step in enumerate(created.steps) if step["type"].startswith("notify_by_")
        }  # fmt: skip
        for attempt_id, attempt in self.attempts.items():
            if attempt.channel != WEBHOOK_CHANNEL:
                steps.setdefault((attempt.notification_id, attempt.index), []).append(attempt_id)
        return steps

    def outgoing(self) -> dict[str, list[Attempt]]:
        """Every alert group -> the attempts of the outgoing webhook its creation fired."""
        outgoing: dict[str, list[Attempt]] = {group_id: [] for group_id in self.titles}
        for attempt in self.attempts.values():
            if attempt.channel == WEBHOOK_CHANNEL:
                outgoing.setdefault(attempt.group_id, []).append(attempt)
        return outgoing

    def complete(self) -> bool:
        """Every person of every group notified, every step sent, every group's webhook sent, no
        attempt pending."""
        return (len(self.notifications) == GROUPS * len(USERS) and len(self.titles) == GROUPS
                and all(self.finished.get(n) == DONE for n in self.notifications)
                and all(any(self.attempts[a].state == SENT for a in attempts) for attempts in self.steps().values())
                and all(any(a.state == SENT for a in attempts) for attempts in self.outgoing().values())
                and not any(a.state in (REQUESTED, STARTED) for a in self.attempts.values()))  # fmt: skip

    def progress(self) -> str:
        states = Counter(attempt.state for attempt in self.attempts.values())
        return (f"{len(self.notifications)} notifications ({sum(s == DONE for s in self.finished.values())} done), "
                f"attempts {dict(states)}")


# --- the schedule -----------------------------------------------------------------------------------


@dataclass
class Schedule:
    """What happens when, in seconds after the first alert, drawn from the seed."""

    sends: dict[str, float]  # alert title -> when it is first sent
    actions: list[tuple[float, str, str]]  # (when, "kill", "start" or "flush", what), in order

    @classmethod
    def draw(cls, rng: random.Random, backend: str) -> Schedule:
        titles = [f"Delivery{number}" for number in range(GROUPS)]
        sends = [0.0] + sorted(rng.uniform(0.0, SEND_WINDOW) for _ in titles[1:])
        kills = {"serve": SERVE_KILLS} if backend == "sqlite" else {
            **dict.fromkeys(WORKERS, WORKER_KILLS), "escalate": ESCALATE_KILLS}
        actions = []
        for process, count in kills.items():  # each killed once in each slot of the window, then started again
            for at in _in_slots(rng, count, margin=DOWN_SECONDS[1] + 1.0):
                actions += [(at, "kill", process), (at + rng.uniform(*DOWN_SECONDS), "start", process)]
        if backend == "postgres":
            actions += [(at, "flush", "redis") for at in _in_slots(rng, FLUSHES, margin=0.0)]
        return cls(dict(zip(titles, sends)), sorted(actions))

    def __str__(self) -> str:
        return (f"alerts at {', '.join(f'{at:.1f}' for at in self.sends.values())} s; "
                + ", ".join(f"{what} {process} at {at:.1f} s" for at, what, process in self.actions))


def _in_slots(rng: random.Random, count: int, margin: float) -> list[float]:
    """One moment in each of ``count`` equal slots of the fault window, ``margin`` before its end."""
    low, high = FAULT_WINDOW
    slot = (high - low) / count
    return [rng.uniform(low + number * slot, low + (number + 1) * slot - margin) for number in range(count)]


# --- the test ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_every_notification_arrives_and_no_attempt_twice_while_processes_are_killed(
    tocsin_env, production_processes, mailbox, receiver, delivery_redis, backend
):
    seed = int(os.environ.get("TOCSIN_FAULTS_SEED") or random.randrange(2**32))
    schedule = Schedule.draw(random.Random(seed), backend)
    print(f"\nseed {seed} (TOCSIN_FAULTS_SEED={seed} replays it): {schedule}")
    processes = production_processes
    processes.env.update(
        TOCSIN_SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}/?from=pager@example.org",
        TOCSIN_OUTGOING_ALLOW="127.0.0.1",
        TOCSIN_SMTP_ADDRESS="",  # `serve` receives no email here
    )
    if delivery_redis:
        processes.env["TOCSIN_REDIS_URL"] = delivery_redis
    run_cli(["migrate"], tocsin_env, processes.log_dir)
    token = run_cli(["token", "create", "--name", "ops", "--role", "admin"], tocsin_env, processes.log_dir).split()[-1]
    headers = {"Authorization": token}
    for command in COMMANDS[backend]:
        processes.start(command)
    if backend == "postgres":
        for number, _ in enumerate(WORKERS, 1):
            processes.start_copy("worker", number)
    wait_healthy(processes.base_url)
    # The test's own runtime on the same database: the people's rules (a wait under the API's
    # minimum of a minute), and reading the alerting store.
    runtime = Runtime(Settings.from_env(processes.env))
    try:
        link = _paging_integration(runtime, processes.base_url, headers, receiver)
        _run(schedule, processes, runtime, link, delivery_redis, seed)
        time.sleep(SETTLE_SECONDS)  # a late double would arrive now
        assert processes.exited() == {}, f"seed {seed}: processes ended by themselves"
        outbox = Outbox.read(runtime)
    finally:
        runtime.close()
    got = receipts(mailbox, receiver)
    print(f"seed {seed}: {outbox.progress()}; {len(got)} received; "
          f"{sum(a.redispatched for a in outbox.attempts.values())} dispatched again by their checks; "
          f"{sum(a.reason == UNKNOWN_OUTCOME for a in outbox.attempts.values())} senders died mid-send")

    # No attempt arrived twice, and each arrived as its attempt says: its channel, its person,
    # its group. (The outgoing webhook's requests are among them once they carry the attempt's id.)
    identified = [receipt for receipt in got if receipt.attempt_id is not None]
    webhook_ids = any(receipt.channel == WEBHOOK_CHANNEL for receipt in identified)
    print(f"seed {seed}: outgoing webhook requests {'with' if webhook_ids else 'without'} their attempt's id")
    doubled = {attempt_id: count for attempt_id, count in Counter(r.attempt_id for r in identified).items() if count > 1}
    assert not doubled, f"seed {seed}: attempts received more than once: {doubled}"
    for receipt in identified:
        attempt = outbox.attempts.get(UUID(receipt.attempt_id))
        assert attempt is not None, f"seed {seed}: {receipt} is no attempt of the store"
        assert (receipt.channel, receipt.user or "") == (attempt.channel, attempt.username), f"seed {seed}: {receipt}"
        assert receipt.group_id in (None, attempt.group_id), f"seed {seed}: {receipt} for {attempt}"
        assert receipt.subject in (None, outbox.titles[attempt.group_id]), f"seed {seed}: {receipt} for {attempt}"
    # Every step of every person's notification arrived (once, or again by a later attempt).
    assert len(outbox.notifications) == GROUPS * len(USERS)
    received = {UUID(r.attempt_id) for r in identified}
    steps = outbox.steps()
    assert len(steps) == GROUPS * len(USERS) * 2
    lost = [key for key, attempts in steps.items() if not received & set(attempts)]
    assert not lost, f"seed {seed}: steps that never arrived: {[(key, steps[key]) for key in lost]}"
    # The store agrees with the receivers: every attempt recorded as sent arrived; one that
    # arrived and was not recorded as sent is one whose sender died mid-send; nothing else failed.
    for attempt_id, attempt in outbox.attempts.items():
        if attempt.state == SENT:
            assert (attempt.channel == WEBHOOK_CHANNEL and not webhook_ids) or attempt_id in received, (
                f"seed {seed}: {attempt_id} recorded as sent never arrived: {attempt}")
        else:
            assert (attempt.state, attempt.reason) == (FAILED, UNKNOWN_OUTCOME), f"seed {seed}: {attempt}"
    # A kill landed mid-send at least once, or the test did not test what it says.
    assert any(a.reason == UNKNOWN_OUTCOME for a in outbox.attempts.values()), f"seed {seed}: no kill landed mid-send"

    # The outgoing webhook, fired once by each group's creation, counted per group too (its
    # request may not carry the attempt's id): sent once, and received once, or once more for
    # each attempt whose sender died mid-send.
    outgoing = Counter(receipt.group_id for receipt in got if receipt.channel == WEBHOOK_CHANNEL)
    assert set(outgoing) <= set(outbox.titles), f"seed {seed}: {outgoing}"
    for group_id, attempts in outbox.outgoing().items():
        sent = sum(a.state == SENT for a in attempts)
        unknown = sum(a.reason == UNKNOWN_OUTCOME for a in attempts)
        assert sent == 1 and 1 <= outgoing[group_id] <= sent + unknown, (
            f"seed {seed}: {group_id}'s webhook received {outgoing[group_id]} times: {attempts}")

    # The timelines (the projections' work, which was killed too on SQLite) show the same.
    for group_id in outbox.titles:
        expected = {
            kind: sorted((a.username, a.channel, a.number) for a in outbox.attempts.values()
                         if a.group_id == group_id and a.state == state)
            for kind, state in (("sent", SENT), ("failed", FAILED))
        }  # fmt: skip
        assert _timeline_deliveries(processes.base_url, headers, group_id, expected) == expected, f"seed {seed}"


def _paging_integration(runtime: Runtime, base_url: str, headers: dict, receiver: Receiver) -> str:
    """The users with their rules and webhook addresses, an Alertmanager integration whose default
    route's chain notifies them all; returns its link."""

    def api(method: str, path: str, body: object, expect: int) -> dict:
        status, answer = http(method, base_url + path, body, headers)
        assert status == expect, f"{method} {path}: {status} {answer}"
        return answer

    users = []
    for name in USERS:
        user = api("POST", "/api/v1/users/", {"username": name, "role": "editor", "email": f"{name}@example.org"}, 201)
        user_id = UUID(user_by_id(runtime.db, user["id"])["uuid"])
        for step in (NotificationStep("notify_by_email"), NotificationStep("wait", RULE_WAIT_SECONDS),
                     NotificationStep("notify_by_webhook")):
            runtime.config.add_notification_rule(user_id, False, step)
        url = receiver.url(f"/hook/{name}")
        runtime.config.change_notification_channels(user_id, {"webhook": {"url": url, "shown": check_webhook_url(url, LOCAL)}})
        users.append(user["id"])
    api("POST", "/api/v1/webhooks/", {"name": "pager log", "url": receiver.url(OUTGOING_PATH), "http_method": "POST",
                                      "trigger_type": "alert group created",
                                      "data": '{"alert_group_id": "{{ alert_group.id }}"}'}, 201)  # fmt: skip
    chain = api("POST", "/api/v1/escalation_chains/", {"name": "everyone"}, 201)
    api("POST", "/api/v1/escalation_policies/",
        {"escalation_chain_id": chain["id"], "type": "notify_persons", "persons_to_notify": users}, 201)
    integration = api("POST", "/api/v1/integrations/", {"type": "alertmanager", "name": "deliveries"}, 201)
    api("PATCH", f"/api/v1/routes/{integration['default_route']['id']}/", {"escalation_chain_id": chain["id"]}, 200)
    return integration["link"]


def _run(schedule: Schedule, processes: ProductionProcesses, runtime: Runtime, link: str, redis_address: str | None,
         seed: int) -> None:  # fmt: skip
    """Send the alerts, kill and start processes and flush Redis, as scheduled, until every step
    of every notification was sent."""
    actions = list(schedule.actions)
    unsent = dict(schedule.sends)
    began = time.monotonic()
    while True:
        elapsed = time.monotonic() - began
        while actions and actions[0][0] <= elapsed:
            _, what, process = actions.pop(0)
            if what == "flush":
                import redis

                with redis.Redis.from_url(redis_address, socket_timeout=5) as connection:
                    connection.flushdb()
            elif what == "kill":
                processes.kill(process)
            elif process in WORKERS:
                processes.start_copy("worker", WORKERS.index(process) + 1)
            else:
                processes.start(process)
        for title, at in list(unsent.items()):  # tried again until answered 200, as Alertmanager does
            if at <= elapsed and _post_alert(link, title):
                del unsent[title]
        outbox = Outbox.read(runtime)
        if not actions and not unsent and outbox.complete():
            return
        assert elapsed < TIMEOUT, f"seed {seed}: not every notification sent after {TIMEOUT:.0f} s: {outbox.progress()}"
        time.sleep(0.5)


def _post_alert(link: str, title: str) -> bool:
    """Post a firing Alertmanager notification for a group of its own; True when answered 200."""
    body = {"status": "firing", "groupKey": f'{{}}:{{alertname="{title}"}}', "groupLabels": {"alertname": title},
            "commonLabels": {"alertname": title},
            "alerts": [{"status": "firing", "labels": {"alertname": title}}]}
    try:
        return http("POST", link, body, timeout=2)[0] == 200
    except (OSError, HTTPException):  # the web process is down, or was killed while answering
        return False


def _timeline_deliveries(base_url: str, headers: dict, group_id: str, expected: dict, timeout: float = 30.0) -> dict:
    """The group's "sent" and "failed" entries (of people's notifications and of the outgoing
    webhook) as (user, channel, attempt), once they are as expected or ``timeout`` passed (the
    projections may be behind)."""
    kinds = {TYPE_NOTIFICATION_SENT: "sent", TYPE_CUSTOM_WEBHOOK_TRIGGERED: "sent", TYPE_NOTIFICATION_FAILED: "failed",
             TYPE_ESCALATION_FAILED: "failed"}  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        status, timeline = http("GET", f"{base_url}/api/v1/alert_groups/{group_id}/timeline/", headers=headers)
        shown = {"sent": [], "failed": []}
        if status == 200:
            for entry in timeline["results"]:
                kind, details = kinds.get(entry["type"]), entry["details"]
                if kind and "webhook_id" in details:
                    shown[kind].append(("", WEBHOOK_CHANNEL, details["attempt"]))
                elif kind and "channel" in details:
                    shown[kind].append((details["user"], details["channel"], details["attempt"]))
        shown = {kind: sorted(entries) for kind, entries in shown.items()}
        if shown == expected or time.monotonic() > deadline:
            return shown
        time.sleep(0.25)
