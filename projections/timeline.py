"""The audit timeline of each alert group, with OnCall's log record types and texts."""

from __future__ import annotations

import json
from functools import singledispatchmethod

from domain.alert_group import SOURCE_ALERT_SOURCE, Alert, AlertGroup
from domain.ids import PREFIX_ALERT, PREFIX_ALERT_GROUP, PREFIX_ROUTE, public_id
from projections.db import Cursor, iso
from projections.runner import Projection

# AlertGroupLogRecord types (OnCall's integer values).
TYPE_ACK = 0
TYPE_UN_ACK = 1
TYPE_SILENCE = 7
TYPE_RESOLVED = 13
TYPE_UN_RESOLVED = 14
TYPE_UN_SILENCE = 15
TYPE_REGISTERED = 21
TYPE_ROUTE_ASSIGNED = 22
# Tocsin's own (OnCall shows neither in its timeline): an alert's failed templates, and alerts of a
# notification that ingest did not take (more than it takes from one notification).
TYPE_TEMPLATE_ERRORS = 100
TYPE_ALERTS_NOT_TAKEN = 101

TYPE_NAMES = {
    TYPE_ACK: "Acknowledged",
    TYPE_UN_ACK: "Unacknowledged",
    TYPE_SILENCE: "Silenced",
    TYPE_RESOLVED: "Incident resolved",
    TYPE_UN_RESOLVED: "Incident unresolved",
    TYPE_UN_SILENCE: "Unsilenced",
    TYPE_REGISTERED: "Incident registered",
    TYPE_ROUTE_ASSIGNED: "A route is assigned to the incident",
    TYPE_TEMPLATE_ERRORS: "Template errors",
    TYPE_ALERTS_NOT_TAKEN: "Alerts not taken",
}


def _by(author: str | None) -> str:
    return f" by {author}" if author else ""


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


INSERT_ENTRY = (
    "INSERT INTO timeline (alert_group_id, position, seq, type, action, author, created_at, details)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


class TimelineView(Projection):
    name = "timeline"
    upstream = "alerting"
    tables = ("timeline",)

    def apply(self, event: object, cur: Cursor, position: int) -> None:
        self.apply_batch([(position, event)], cur)

    def apply_batch(self, events, cur: Cursor) -> None:
        # Append-only: all of a batch's entries in one statement.
        rows = [row for position, event in events for row in self.entries(event, position)]
        if rows:
            cur.executemany(INSERT_ENTRY, rows)

    @singledispatchmethod
    def entries(self, event: object, position: int) -> list[tuple]:
        """Alerts joining a group are not timeline entries (as in OnCall)."""
        return []

    @entries.register
    def _(self, e: AlertGroup.Registered, position: int) -> list[tuple]:
        return [
            _entry(e, position, 0, TYPE_REGISTERED, "Incident registered", None, e.started_at, {}),
            _entry(
                e, position, 1, TYPE_ROUTE_ASSIGNED, "A route is assigned to the incident", None, e.started_at,
                {"route_id": public_id(PREFIX_ROUTE, e.route_id)},
            ),
        ]

    @entries.register
    def _(self, e: AlertGroup.Acknowledged, position: int) -> list[tuple]:
        text = "Acknowledged by alert source" if e.source == SOURCE_ALERT_SOURCE else f"Acknowledged{_by(e.by)}"
        return [_entry(e, position, 0, TYPE_ACK, text, e.by, e.at, {"source": e.source})]

    @entries.register
    def _(self, e: AlertGroup.Unacknowledged, position: int) -> list[tuple]:
        return [_entry(e, position, 0, TYPE_UN_ACK, f"Unacknowledged{_by(e.by)}", e.by, e.at, {})]

    @entries.register
    def _(self, e: AlertGroup.Resolved, position: int) -> list[tuple]:
        text = "Resolved by alert source" if e.source == SOURCE_ALERT_SOURCE else f"Resolved{_by(e.by)}"
        return [_entry(e, position, 0, TYPE_RESOLVED, text, e.by, e.at, {"source": e.source})]

    @entries.register
    def _(self, e: AlertGroup.Unresolved, position: int) -> list[tuple]:
        return [_entry(e, position, 0, TYPE_UN_RESOLVED, f"Unresolved{_by(e.by)}", e.by, e.at, {})]

    @entries.register
    def _(self, e: AlertGroup.Silenced, position: int) -> list[tuple]:
        span = f"for {_duration(e.delay)}" if e.delay else "forever"
        return [
            _entry(
                e, position, 0, TYPE_SILENCE, f"Silenced{_by(e.by)} {span}", e.by, e.at,
                {"silence_delay": e.delay, "silenced_until": iso(e.until)},
            )
        ]

    @entries.register
    def _(self, e: AlertGroup.Unsilenced, position: int) -> list[tuple]:
        text = "Unsilenced automatically" if e.reason == "auto unsilence" else f"Unsilenced{_by(e.by)}"
        return [_entry(e, position, 0, TYPE_UN_SILENCE, text, e.by, e.at, {"reason": e.reason})]

    @entries.register
    def _(self, e: Alert.Received, position: int) -> list[tuple]:
        """Only alerts with something to say: failed templates, or alerts of theirs not taken."""
        entries = []
        group_id = public_id(PREFIX_ALERT_GROUP, e.alert_group_id)
        alert_id = public_id(PREFIX_ALERT, e.originator_id)
        errors = getattr(e, "template_errors", None)  # absent from events older than the field
        if errors:
            text = "; ".join(f"{name}: {error}" for name, error in errors.items())
            entries.append((
                group_id, position, 0, TYPE_TEMPLATE_ERRORS, f"Alert {alert_id}: {text}", None,
                iso(e.received_at), json.dumps({"alert_id": alert_id, "template_errors": errors}),
            ))
        not_taken = getattr(e, "alerts_not_taken", 0)
        if not_taken:
            taken = e.index + 1
            text = f"{not_taken} alerts of the notification after its first {taken} (the most taken from one) were not taken"
            entries.append((
                group_id, position, 1, TYPE_ALERTS_NOT_TAKEN, text, None, iso(e.received_at),
                json.dumps({"alert_id": alert_id, "alerts_not_taken": not_taken}),
            ))
        return entries


def _entry(e, position, seq, type_, action, author, at, details) -> tuple:
    return (
        public_id(PREFIX_ALERT_GROUP, e.originator_id),
        position, seq, type_, action, author, iso(at), json.dumps(details),
    )
