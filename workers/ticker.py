"""The ticker: turns due deadlines into fenced commands (timed unsilence, later escalations)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from uuid import UUID

from domain.applications import Alerting
from projections.db import Database, iso
from projections.deadlines import KIND_HEARTBEAT, KIND_UNSILENCE, due_deadlines
from projections.follower_status import FollowerStatus
from workers.ingest import IngestProcessor

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Ticker:
    def __init__(
        self,
        db: Database,
        alerting: Alerting,
        ingest: IngestProcessor,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.db = db
        self.alerting = alerting
        self.ingest = ingest
        self.clock = clock

    def tick(self) -> int:
        """Run every due command once; returns how many changed something."""
        now = self.clock()
        done = 0
        # Fenced commands: a no-op when the state changed since the deadline was set.
        for row in due_deadlines(self.db, iso(now)):
            subject, fence = UUID(row["subject"]), int(row["fence"])
            if row["kind"] == KIND_UNSILENCE:
                done += bool(self.alerting.unsilence_when_due(subject, fence, at=now))
            elif row["kind"] == KIND_HEARTBEAT:
                done += self.ingest.expire_heartbeat(subject, fence, at=now)
        return done

    def run_forever(self, stop: threading.Event, interval: float = 1.0, status: FollowerStatus | None = None) -> None:
        """Tick every ``interval`` until ``stop``; each outcome is reported to ``status`` (/health)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:
                log.exception("ticker failed; retrying")
                if status is not None:
                    status.failed(exc)
            else:
                if status is not None:
                    status.succeeded()
            stop.wait(interval)
