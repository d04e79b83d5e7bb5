"""The ticker: fires due deadlines as fenced commands (timed unsilence, heartbeat expiry,
escalation steps).

Which command a deadline kind becomes is registered in ``domain.commands`` (``@deadline``), so
the ticker has no list of kinds. A command carries the fence its deadline was set with: firing
one twice (a crash after its save and before the deadlines view cleared the row, or two ticks
before the view caught up) changes something once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from domain.applications import Alerting, ProcessingApplication
from domain.commands import deadline_command
from projections.db import Database, iso
from projections.deadlines import due_deadlines
from projections.follower_status import FollowerStatus
from workers.ingest import IngestProcessor

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        self.ingest = ingest  # the context of commands that send alerts (heartbeat expiry)
        self.clock = clock
        # Where each deadline's command runs (``@deadline(kind, application)``); an application
        # added later (escalation) is added here by the runtime.
        self.applications: dict[str, ProcessingApplication] = {alerting.name: alerting}
        # The context each deadline kind's command gets, when not ingest's (escalation steps).
        self.contexts: dict[str, object] = {}

    def tick(self) -> int:
        """Fire every due deadline once; returns how many changed something."""
        now = self.clock()
        done = 0
        for row in due_deadlines(self.db, iso(now)):
            command = deadline_command(row["kind"], UUID(row["subject"]), int(row["fence"]), now)
            if command is None:
                log.warning("deadline of unknown kind %r for %s skipped", row["kind"], row["subject"])
                continue
            context = self.contexts.get(command.kind, self.ingest)
            done += self.applications[command.application].handle(command, context) is not None
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
