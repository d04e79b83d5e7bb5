"""The event store under concurrent writers: what followers (ingest, projections) rely on."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from domain.applications import Alerting, Inbox
from domain.heartbeat import Heartbeat
from domain.inbox import KIND_ALERT, ReceivedAlert
from tocsin.cli import migrate

WRITERS = 4
SAVES_PER_WRITER = 150


def _entries(count: int) -> list[ReceivedAlert]:
    now = datetime.now(timezone.utc)
    return [ReceivedAlert(integration_id=uuid4(), kind=KIND_ALERT, payload_json="{}", received_at=now) for _ in range(count)]


def test_a_tailing_follower_never_skips_an_event_while_writers_race(settings):
    """Commit order must equal notification order, or a follower reads past a gap for good."""
    migrate(settings)
    writers = [Inbox(env=settings.event_store_env(Inbox.name, False)) for _ in range(WRITERS)]
    follower = Inbox(env=settings.event_store_env(Inbox.name, False))
    written: list[int] = []
    written_lock = threading.Lock()
    done = threading.Event()
    seen: list[int] = []

    def write(inbox: Inbox, n: int) -> None:
        for i in range(SAVES_PER_WRITER):
            recordings = inbox.save(*_entries(1 + (i + n) % 3))
            with written_lock:
                written.extend(r.notification.id for r in recordings)

    def follow() -> None:
        position = 0
        while True:
            finished = done.is_set()  # read before selecting: a last pass after the writers end
            batch = follower.recorder.select_notifications(position, 20, inclusive_of_start=False)
            if batch:
                seen.extend(n.id for n in batch)
                position = batch[-1].id
            elif finished:
                return

    threads = [threading.Thread(target=write, args=(inbox, n)) for n, inbox in enumerate(writers)]
    tail = threading.Thread(target=follow)
    tail.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    tail.join(timeout=60)
    for app in (*writers, follower):
        app.close()

    assert len(written) == sum(1 + (i + n) % 3 for n in range(WRITERS) for i in range(SAVES_PER_WRITER))
    assert seen == sorted(written), f"the follower missed {len(set(written) - set(seen))} events"


def test_a_processed_position_only_moves_forward(settings):
    """Ingest's exactly-once: saving changes for an inbox position already passed is refused."""
    migrate(settings)
    alerting = Alerting(env=settings.event_store_env(Alerting.name, False))
    try:
        alerting.save_processed([Heartbeat(integration_id=uuid4())], Tracking(Inbox.name, 5))
        assert alerting.processed_position() == 5
        for stale in (5, 3):
            with pytest.raises(IntegrityError):
                alerting.save_processed([Heartbeat(integration_id=uuid4())], Tracking(Inbox.name, stale))
        assert alerting.processed_position() == 5
        assert alerting.recorder.max_notification_id() == 1  # the refused saves wrote nothing
        alerting.save_processed([Heartbeat(integration_id=uuid4())], Tracking(Inbox.name, 9))
        assert alerting.processed_position() == 9
    finally:
        alerting.close()
