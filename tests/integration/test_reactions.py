"""Reactions on the tracked process, and deadlines fired as fenced commands, on both backends.

A reaction is one policy function and its declared event types: what it produces commits with
the process's position, so each upstream event counts once, also when the process crashes before
or after its commit. A deadline fired twice (a crash after the command's save, before the
deadline row was cleared) changes something once.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event

from adapters.reactions import TrackedProcess
from domain.applications import AggregatesUnitOfWork
from domain.inbox import KIND_ALERT, HeartbeatPing, ReceivedAlert
from domain.policies import Policies
from tests.conftest import eventually
from tests.integration.conftest import inbound_path, wait_for_groups

TALLY_ID = uuid5(NAMESPACE_URL, "/tests/reactions/tally")


class Tally(Aggregate):
    """What the test reactions produce: one event per reaction, so a double shows as a count."""

    @event("Started")
    def __init__(self) -> None:
        self.seen: list[str] = []

    @staticmethod
    def create_id() -> UUID:
        return TALLY_ID

    @event("Counted")
    def count(self, what: str) -> None:
        self.seen.append(what)


def tally(uow: AggregatesUnitOfWork) -> Tally:
    found = uow.get(TALLY_ID)
    if found is None:
        found = Tally()
        uow.add(found)
    return found


def seen(runtime) -> list[str]:
    try:
        return runtime.alerting.repository.get(TALLY_ID).seen
    except AggregateNotFoundError:
        return []


def receive(runtime, integration_id: UUID, pings: int, alerts: int = 0) -> None:
    at = datetime.now(timezone.utc)
    entries = [HeartbeatPing(integration_id=integration_id, received_at=at) for _ in range(pings)]
    entries += [
        ReceivedAlert(integration_id=integration_id, kind=KIND_ALERT, payload_json="{}", received_at=at)
        for _ in range(alerts)
    ]
    runtime.inbox.receive_alerts(entries)


def test_a_reaction_is_one_policy_and_its_event_types_and_counts_each_event_once(runtime, client, make_integration):
    integration = make_integration("webhook")
    integration_id = _integration_uuid(runtime, integration)
    reactions = Policies()

    @reactions.policy(HeartbeatPing.HeartbeatPinged)
    def count_pings(uow, ping, context) -> None:
        tally(uow).count(str(ping.originator_id))

    def process() -> TrackedProcess:  # a fresh copy: what a restarted process would be
        return TrackedProcess("inbox:ping-tally", runtime.inbox, runtime.alerting, reactions, batch_size=3)

    receive(runtime, integration_id, pings=4, alerts=2)  # alerts are not its business: skipped
    first = process()
    assert first.catch_up() >= 6
    assert len(seen(runtime)) == 4
    assert first.position() == runtime.inbox.recorder.max_notification_id()

    # A crash after the commit, before the process learnt of it: a restart must not count again.
    receive(runtime, integration_id, pings=5)
    inbox_end = runtime.inbox.recorder.max_notification_id()
    eventually(lambda: runtime.alerting.processed_position() == inbox_end, describe="ingest done")  # it saves too
    save_processed = runtime.alerting.save_processed

    def commit_then_crash(aggregates, tracking):
        save_processed(aggregates, tracking)
        raise ConnectionError("the process died after its commit")

    crashing = process()
    runtime.alerting.save_processed = commit_then_crash
    try:
        with pytest.raises(ConnectionError):
            crashing.run_batch()
    finally:
        del runtime.alerting.save_processed
    assert len(seen(runtime)) == 7  # the first batch of three committed
    process().catch_up()
    assert len(seen(runtime)) == 9

    # A crash in the middle of a batch, before its commit: nothing of it is kept, the re-run counts it.
    receive(runtime, integration_id, pings=3)
    failing = {"left": 1}

    @reactions.policy(HeartbeatPing.HeartbeatPinged)
    def fail_once(uow, ping, context) -> None:
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("the policy's process died mid-batch")

    with pytest.raises(RuntimeError):
        process().run_batch()
    assert len(seen(runtime)) == 9
    process().catch_up()
    pings = [
        str(runtime.inbox.mapper.to_domain_event(n).originator_id)
        for n in runtime.inbox.recorder.select_notifications(0, 100)
        if n.topic.endswith("HeartbeatPinged")
    ]
    assert sorted(seen(runtime)) == sorted(pings) and len(pings) == 12  # each exactly once


def test_a_batch_policy_may_end_a_batch_early_and_others_see_the_same_events(runtime, client, make_integration):
    integration_id = _integration_uuid(runtime, make_integration("webhook"))
    reactions = Policies()

    @reactions.policy(HeartbeatPing.HeartbeatPinged)
    def each(uow, ping, context) -> None:  # declared first: runs again on a shortened batch
        tally(uow).count(f"each {ping.originator_id}")

    @reactions.batch_policy(HeartbeatPing.HeartbeatPinged)
    def two_at_a_time(uow, pings, context) -> int:
        for ping in pings[:2]:
            tally(uow).count(f"batch {ping.originator_id}")
        return min(len(pings), 2)

    receive(runtime, integration_id, pings=7)
    process = TrackedProcess("inbox:two-at-a-time", runtime.inbox, runtime.alerting, reactions, batch_size=50)
    counts = []
    while count := process.run_batch():
        counts.append(count)
    assert counts == [2, 2, 2, 1]
    marks = seen(runtime)
    assert len(marks) == 14 and len(set(marks)) == 14  # every ping once by each policy
    assert sum(mark.startswith("batch ") for mark in marks) == 7


def test_a_policy_must_declare_its_event_types():
    with pytest.raises(TypeError, match="declare the event types"):
        Policies().policy()
    with pytest.raises(ValueError, match="no policies"):
        TrackedProcess("nothing", None, None, Policies())


# --- deadlines fired twice ------------------------------------------------------------------


def _fire_twice_with_a_crash_between(runtime, monkeypatch, moved: datetime) -> tuple[int, int]:
    """Fire the due deadlines; the first firing crashes right after its command's commit, and
    the deadline rows stay as they were read (the deadlines view has not caught up): a re-fire."""
    import workers.ticker

    rows = workers.ticker.due_deadlines(runtime.db, moved.isoformat())
    assert rows, "a deadline should be due"
    monkeypatch.setattr(workers.ticker, "due_deadlines", lambda db, now_iso: [dict(row) for row in rows])
    runtime.ticker.clock = lambda: moved
    save = runtime.alerting.save

    def commit_then_crash(*aggregates, **kwargs):
        save(*aggregates, **kwargs)
        raise ConnectionError("the ticker died after the command's commit")

    runtime.alerting.save = commit_then_crash
    try:
        with pytest.raises(ConnectionError):
            runtime.ticker.tick()
    finally:
        del runtime.alerting.save
    again = runtime.ticker.tick()
    once_more = runtime.ticker.tick()
    return again, once_more


def test_a_heartbeat_deadline_fired_again_after_a_crash_sends_one_alert(runtime, client, make_integration, monkeypatch):
    integration = make_integration("webhook")
    client.get(inbound_path(integration) + "heartbeat/")
    eventually(
        lambda: runtime.db.query("SELECT 1 FROM deadlines WHERE kind = 'heartbeat'"), describe="deadline recorded"
    )
    moved = datetime.now(timezone.utc) + timedelta(seconds=601)
    assert _fire_twice_with_a_crash_between(runtime, monkeypatch, moved) == (0, 0)
    (group,) = wait_for_groups(client, integration["id"], 1, state="firing")
    assert group["alerts_count"] == 1


def test_an_unsilence_deadline_fired_again_after_a_crash_unsilences_once(runtime, client, make_integration, monkeypatch):
    from tests.integration.conftest import send

    integration = make_integration("webhook")
    send(client, integration, {"title": "disk full"})
    (group,) = wait_for_groups(client, integration["id"], 1)
    assert client.post(f"/api/v1/alert_groups/{group['id']}/silence", json={"delay": 1800}).status_code == 200
    moved = datetime.now(timezone.utc) + timedelta(seconds=1801)
    assert _fire_twice_with_a_crash_between(runtime, monkeypatch, moved) == (0, 0)
    wait_for_groups(client, integration["id"], 1, state="firing")
    timeline = client.get(f"/api/v1/alert_groups/{group['id']}/timeline/").get_json()["results"]
    assert sum("Unsilenced automatically" in str(entry) for entry in timeline) == 1, timeline


def _integration_uuid(runtime, integration: dict) -> UUID:
    row = runtime.db.query_one("SELECT uuid FROM integrations WHERE id = %s", (integration["id"],))
    return UUID(str(row["uuid"]))


def test_a_deadline_of_a_kind_this_version_does_not_know_is_skipped(runtime, client, make_integration, monkeypatch):
    """A row written by a newer version (say, during a rolling deploy) must not stop the others."""
    from projections.db import iso

    integration = make_integration("webhook")
    client.get(inbound_path(integration) + "heartbeat/")
    eventually(
        lambda: runtime.db.query("SELECT 1 FROM deadlines WHERE kind = 'heartbeat'"), describe="deadline recorded"
    )
    long_ago = iso(datetime(2000, 1, 1, tzinfo=timezone.utc))
    with runtime.db.transaction() as cur:
        cur.execute(
            "INSERT INTO deadlines (kind, subject, due_at, fence) VALUES (%s, %s, %s, %s)",
            ("from-a-newer-version", str(uuid5(NAMESPACE_URL, "/tests/unknown")), long_ago, 1),
        )
    moved = datetime.now(timezone.utc) + timedelta(seconds=601)
    runtime.ticker.clock = lambda: moved
    assert runtime.ticker.tick() == 1  # the heartbeat's expiry still fires
    wait_for_groups(client, integration["id"], 1, state="firing")
