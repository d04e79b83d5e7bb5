"""Escalation never misses or doubles a step while its processes crash (issue #9, section 6).

The Procfile's processes run each as its own OS process (`tocsin web`, `ingest`, `project`,
`ticker`, `escalate`) on PostgreSQL and on SQLite (the production commands run there too, without
the singleton lock). Alert groups escalate through [notify alice, wait 2 s, notify bob,
repeat_escalation]; meanwhile every kind of process is killed with SIGKILL at seeded random
moments and started again. At the end the alerting store's events are counted: each group ran
every step of each of its six passes exactly once and in order (alice and bob notified six times
each, five repeats, finished once), no step ran before its wait was over, and the group
acknowledged midway ran nothing after its acknowledgement.

Escalation keeps nothing in Redis: its progress and its deadlines are events and read models.
Redis holds only the web's rate-limit counters and, when `tocsin worker` sends notifications,
their delivery queue; these processes run without it (they count in memory and `tocsin
escalate` delivers itself), so there is no Redis to flush.

The seed is printed (run with `-s` to see the schedule); `TOCSIN_FAULTS_SEED=<seed>` replays the
same kill moments.

One race is reproduced in-process, with the moments it needs held open: a user acknowledges
while the ticker runs a step, between the step's read of the group and its save.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from adapters.settings import Settings
from domain.alert_group import AlertGroup
from domain.ids import PREFIX_ALERT_GROUP, public_id
from domain.paging import REPEAT_DELAY, Escalation
from projections.escalation_chains import chain_by_id
from projections.timeline import TYPE_ESCALATION_TRIGGERED
from projections.users import user_by_id
from tests.e2e.conftest import ProductionProcesses, http, run_cli, wait_healthy
from tocsin.cli import create_token, migrate
from tocsin.runtime import Runtime

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 2
PASSES = 6  # the first run of the chain and its five repeats
GROUPS = 4
COMMANDS = ("web", "ingest", "project", "ticker", "escalate")
KILLS_PER_COMMAND = 2
KILL_WINDOW = (1.0, 40.0)  # seconds after the first alert: while the escalations run
DOWN_SECONDS = (0.0, 2.0)  # how long a killed process stays down
SEND_WINDOW = 6.0  # the other alerts follow the first within this many seconds
ACK_AFTER_STEPS = (4, 12)  # one group is acknowledged a moment after this many of its steps ran
TIMEOUT = 150.0
SETTLE_SECONDS = 3.0  # after the last escalation finished: time for a late double to show

EXPECTED_PASS = [(0, "notify_persons", "alice"), (1, "wait", None), (2, "notify_persons", "bob"),
                 (3, "repeat_escalation", None)]
# Every step of every pass; the last pass's repeat does nothing (at most five repeats).
EXPECTED = [step for number in range(PASSES) for step in EXPECTED_PASS][:-1]

TOPICS = [get_topic(cls) for cls in (
    Escalation.Opened, Escalation.Started, Escalation.StepTriggered, Escalation.StepFailed,
    Escalation.NotificationRequested, Escalation.Scheduled, Escalation.Paused, Escalation.Stopped,
    Escalation.Finished, AlertGroup.Registered, AlertGroup.Acknowledged,
)]


@dataclass
class History:
    """An alert group's escalation as the alerting store has it: (position, event), in log order."""

    title: str = ""
    events: list[tuple[int, object]] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)  # positions of its Acknowledged events

    def of(self, *types: type) -> list[tuple[int, object]]:
        return [(position, event) for position, event in self.events if isinstance(event, types)]

    @property
    def finished(self) -> bool:
        return bool(self.of(Escalation.Finished))

    def steps(self) -> list[tuple[int, str, str | None]]:
        """(index, type, whom it notified) of each triggered step, in order."""
        return [(e.index, e.step["type"], ",".join(u["username"] for u in e.details.get("users", [])) or None)
                for _, e in self.of(Escalation.StepTriggered)]


def histories(runtime: Runtime) -> dict[UUID, History]:
    """Every alert group's escalation events and acknowledgements, read from the event store."""
    found: dict[UUID, History] = defaultdict(History)
    group_of: dict[UUID, UUID] = {}  # escalation id -> group id
    position = 0
    while True:
        page = runtime.alerting.recorder.select_notifications(position, 1000, topics=TOPICS, inclusive_of_start=False)
        for notification in page:
            event = runtime.alerting.mapper.to_domain_event(notification)
            if isinstance(event, AlertGroup.Registered):
                found[event.originator_id].title = event.title.strip()
            elif isinstance(event, AlertGroup.Acknowledged):
                found[event.originator_id].acknowledged.append(notification.id)
            else:
                if isinstance(event, Escalation.Opened):
                    group_of[event.originator_id] = event.group_id
                found[group_of[event.originator_id]].events.append((notification.id, event))
        if len(page) < 1000:
            return dict(found)
        position = page[-1].id


def assert_ran_in_order(history: History, steps: list, seed: int) -> None:
    """Each step once, as the chain says, and none before its wait (or the repeat's delay) was over."""
    assert history.steps() == steps, f"seed {seed}: {history.title} ran {history.steps()}"
    assert {e.run for _, e in history.of(Escalation.StepTriggered)} <= {1}, f"seed {seed}: restarted"
    assert not history.of(Escalation.StepFailed), f"seed {seed}: {history.of(Escalation.StepFailed)}"
    triggered = [e for _, e in history.of(Escalation.StepTriggered)]
    notified = [e.username for _, e in history.of(Escalation.NotificationRequested)]
    assert notified == [whom for _, _, whom in steps if whom], f"seed {seed}: {history.title} notified {notified}"
    for step, following in itertools.pairwise(triggered):
        if step.step["type"] == "wait":
            assert following.at >= step.at + timedelta(seconds=WAIT_SECONDS), f"seed {seed}: early after a wait"
        elif step.step["type"] == "repeat_escalation":
            assert following.at >= step.at + REPEAT_DELAY, f"seed {seed}: early after a repeat"


@dataclass
class Schedule:
    """What happens when, in seconds after the first alert, drawn from the seed."""

    sends: dict[str, float]  # alert title -> when it is first sent
    actions: list[tuple[float, str, str]]  # (when, "kill" or "start", command), in order
    acknowledged: str  # the title of the group acknowledged midway
    acknowledge_after: int  # ... once this many of its steps ran
    acknowledge_delay: float  # ... and this long after (at any moment of a pass, not just after a step)

    @classmethod
    def draw(cls, rng: random.Random) -> Schedule:
        titles = [f"Fault{number}" for number in range(GROUPS)]
        sends = [0.0] + sorted(rng.uniform(0.0, SEND_WINDOW) for _ in titles[1:])
        actions = []
        low, high = KILL_WINDOW
        slot = (high - low) / KILLS_PER_COMMAND
        for command in COMMANDS:  # each killed once in each slot of the window, then started again
            for number in range(KILLS_PER_COMMAND):
                at = rng.uniform(low + number * slot, low + (number + 1) * slot - DOWN_SECONDS[1] - 1.0)
                actions += [(at, "kill", command), (at + rng.uniform(*DOWN_SECONDS), "start", command)]
        return cls(dict(zip(titles, sends)), sorted(actions), rng.choice(titles), rng.randint(*ACK_AFTER_STEPS),
                   rng.uniform(0.0, WAIT_SECONDS))

    def __str__(self) -> str:
        return (f"alerts at {', '.join(f'{at:.1f}' for at in self.sends.values())} s; acknowledge "
                f"{self.acknowledged} {self.acknowledge_delay:.1f} s after its step {self.acknowledge_after}; "
                + ", ".join(f"{what} {command} at {at:.1f} s" for at, what, command in self.actions))


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_no_step_is_missed_or_doubled_while_processes_are_killed(tocsin_env, production_processes, backend):
    seed = int(os.environ.get("TOCSIN_FAULTS_SEED") or random.randrange(2**32))
    schedule = Schedule.draw(random.Random(seed))
    print(f"\nseed {seed} (TOCSIN_FAULTS_SEED={seed} replays it): {schedule}")
    processes = production_processes
    run_cli(["migrate"], tocsin_env, processes.log_dir)
    token = run_cli(["token", "create", "--name", "ops", "--role", "admin"], tocsin_env, processes.log_dir).split()[-1]
    headers = {"Authorization": token}
    for command in COMMANDS:
        processes.start(command)
    wait_healthy(processes.base_url)
    # The test's own runtime on the same database: the chain's waits (under the API's 60 s minimum)
    # and reading the event store.
    runtime = Runtime(Settings.from_env(processes.env))
    try:
        link = _integration_with_chain(runtime, _over_http(processes.base_url, headers))
        _run(schedule, processes, runtime, link, headers, seed)
        time.sleep(SETTLE_SECONDS)  # every process is up: a late re-run would show now
        assert processes.exited() == {}, f"seed {seed}: processes ended by themselves"
        found = {history.title: (group_id, history) for group_id, history in histories(runtime).items()}
    finally:
        runtime.close()

    assert sorted(found) == sorted(schedule.sends)
    for title, (group_id, history) in found.items():
        assert len(history.of(Escalation.Started)) == 1, f"seed {seed}: {title} started twice"
        if title != schedule.acknowledged:
            assert_ran_in_order(history, EXPECTED, seed)
            last = history.events[-1][1]
            assert isinstance(last, Escalation.Finished), f"seed {seed}: {title} ended with {last}"
            assert len(history.of(Escalation.Finished)) == 1 and not history.of(Escalation.Stopped)
            continue
        # The acknowledged group: the steps due before the acknowledgement ran once each, in order;
        # after it, only the escalation's stop.
        (acknowledged_at,) = history.acknowledged
        before = History(title, [(p, e) for p, e in history.events if p < acknowledged_at])
        after = [(p, e) for p, e in history.events if p > acknowledged_at]
        assert_ran_in_order(before, EXPECTED[:len(before.steps())], seed)
        assert len(before.steps()) >= schedule.acknowledge_after
        assert [(type(e), getattr(e, "reason", None)) for _, e in after] == [(Escalation.Stopped, "acknowledged")], (
            f"seed {seed}: after {title}'s acknowledgement (position {acknowledged_at}): "
            + repr([(p, type(e).__name__, getattr(e, "index", None)) for p, e in after]))

    # The audit timeline (the projections were killed too) shows each step once.
    for title, (group_id, history) in found.items():
        shown = _timeline_steps(processes.base_url, headers, group_id, len(history.steps()))
        assert len(shown) == len(history.steps()), f"seed {seed}: {title}'s timeline shows {shown}"


def _integration_with_chain(runtime: Runtime, api) -> str:
    """An Alertmanager integration whose default route takes [notify alice, wait, notify bob,
    repeat]; returns its link. ``api(method, path, body, expected status)`` answers the JSON."""
    users = [api("POST", "/api/v1/users/", {"username": name, "role": "editor"}, 201) for name in ("alice", "bob")]
    alice, bob = (UUID(user_by_id(runtime.db, user["id"])["uuid"]) for user in users)
    chain = api("POST", "/api/v1/escalation_chains/", {"name": "fast"}, 201)
    chain_id = UUID(chain_by_id(runtime.db, chain["id"])["uuid"])
    for step in ({"type": "notify_persons", "persons_to_notify": [alice], "important": False},
                 {"type": "wait", "duration": WAIT_SECONDS},
                 {"type": "notify_persons", "persons_to_notify": [bob], "important": False},
                 {"type": "repeat_escalation"}):
        runtime.config.add_escalation_policy(chain_id, step, None)
    integration = api("POST", "/api/v1/integrations/", {"type": "alertmanager", "name": "faults"}, 201)
    api("PATCH", f"/api/v1/routes/{integration['default_route']['id']}/", {"escalation_chain_id": chain["id"]}, 200)
    return integration["link"]


def _run(schedule: Schedule, processes: ProductionProcesses, runtime: Runtime, link: str, headers: dict, seed: int) -> None:
    """Send the alerts, kill and start processes, acknowledge, as scheduled, until every other
    group's escalation finished."""
    actions = list(schedule.actions)
    unsent = dict(schedule.sends)
    acknowledged = False
    reached: float | None = None  # when the acknowledged group had run enough steps
    began = time.monotonic()
    while True:
        elapsed = time.monotonic() - began
        found = {history.title: (group_id, history) for group_id, history in histories(runtime).items()}
        assert elapsed < TIMEOUT, f"seed {seed}: escalations unfinished after {TIMEOUT:.0f} s: " + repr(
            {title: (history.steps(), history.finished) for title, (_, history) in found.items()})
        while actions and actions[0][0] <= elapsed:
            _, what, command = actions.pop(0)
            if what == "kill":
                processes.kill(command)
            else:
                processes.start(command)
        for title, at in list(unsent.items()):  # retried until answered 2xx, as Alertmanager does
            if at <= elapsed and _post_alert(link, title):
                del unsent[title]
        if not acknowledged and schedule.acknowledged in found:
            group_id, history = found[schedule.acknowledged]
            if reached is None and len(history.steps()) >= schedule.acknowledge_after:
                reached = elapsed
            if reached is not None and elapsed >= reached + schedule.acknowledge_delay:
                acknowledged = _acknowledge(processes.base_url, headers, group_id)
        others = [history for title, (_, history) in found.items() if title != schedule.acknowledged]
        if acknowledged and not actions and len(others) == GROUPS - 1 and all(h.finished for h in others):
            return
        time.sleep(0.2)


def _timeline_steps(base_url: str, headers: dict, group_id: UUID, at_least: int, timeout: float = 30.0) -> list:
    """The "triggered step" entries of the group's timeline, once it shows ``at_least`` of them."""
    path = f"{base_url}/api/v1/alert_groups/{public_id(PREFIX_ALERT_GROUP, group_id)}/timeline/"
    deadline = time.monotonic() + timeout
    while True:
        status, timeline = http("GET", path, headers=headers)
        assert status == 200, timeline
        shown = [entry["action"] for entry in timeline["results"] if entry["type"] == TYPE_ESCALATION_TRIGGERED]
        if len(shown) >= at_least or time.monotonic() > deadline:
            return shown
        time.sleep(0.25)


def _over_http(base_url: str, headers: dict):
    def api(method: str, path: str, body: object, expect: int) -> dict:
        status, answer = http(method, base_url + path, body, headers)
        assert status == expect, f"{method} {path}: {status} {answer}"
        return answer

    return api


def _through(client):
    """The same, through Flask's test client."""

    def api(method: str, path: str, body: object, expect: int) -> dict:
        response = client.open(path, method=method, json=body)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.get_json()}"
        return response.get_json()

    return api


def _alert(title: str) -> dict:
    """A firing Alertmanager notification that opens a group of its own, titled ``title``."""
    return {"status": "firing", "groupKey": f'{{}}:{{alertname="{title}"}}', "groupLabels": {"alertname": title},
            "commonLabels": {"alertname": title}, "alerts": [{"status": "firing", "labels": {"alertname": title}}]}


def _post_alert(link: str, title: str) -> bool:
    """Post ``title``'s alert; True when answered 200."""
    try:
        return http("POST", link, _alert(title), timeout=2)[0] == 200
    except (OSError, HTTPException):  # the web process is down, or was killed while answering
        return False


def _acknowledge(base_url: str, headers: dict, group_id: UUID) -> bool:
    """Acknowledge through the API; True once an answer says it is acknowledged."""
    try:
        status, answer = http("POST", f"{base_url}/api/v1/alert_groups/{public_id(PREFIX_ALERT_GROUP, group_id)}"
                                      "/acknowledge", headers=headers, timeout=2)
    except (OSError, HTTPException):  # the web process is down, or was killed while answering
        return False
    # 400: an earlier try went through but its answer was lost. Anything else (404 while the
    # projections are behind, 503 while restarting): try again.
    return status == 200 or (status == 400 and "acknowledged" in str(answer))


def test_a_step_running_while_its_group_is_acknowledged_notifies_nobody_after_it(settings):
    from web import create_app

    migrate(settings)
    runtime = Runtime(settings)  # nothing runs in threads: the test runs each part when it must
    try:
        client = create_app(runtime).test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = create_token(runtime, "admin", "admin")
        runtime.catch_up()
        link = _integration_with_chain(runtime, _through(client))
        assert client.post(link.removeprefix(settings.base_url), json=_alert("Raced")).status_code == 200
        runtime.catch_up()  # ingest, then the escalation's first steps: alice notified, then the wait
        (group_id,) = histories(runtime)
        runtime.ticker.clock = lambda: datetime.now(UTC) + timedelta(seconds=WAIT_SECONDS)  # the wait is over

        # The step reads the group, then whom to notify; the acknowledgement commits in between.
        people, read, acknowledged = runtime.escalation.people, threading.Event(), threading.Event()

        def people_while_acknowledged(user_ids):
            found = people(user_ids)
            read.set()
            acknowledged.wait(10)
            return found

        runtime.escalation.people = people_while_acknowledged
        ticking = threading.Thread(target=runtime.ticker.tick)
        ticking.start()
        assert read.wait(10), "the ticker did not run the step after the wait"
        runtime.alerting.act(group_id, "acknowledge", by="admin", at=datetime.now(UTC))
        acknowledged.set()
        ticking.join(10)
        runtime.escalation.people = people
        runtime.catch_up()  # the escalation process reacts to the acknowledgement
        history = histories(runtime)[group_id]
    finally:
        runtime.close()
    (acknowledged_at,) = history.acknowledged
    after = [(type(e).__name__, getattr(e, "index", None)) for p, e in history.events if p > acknowledged_at]
    assert after == [("Stopped", None)]
