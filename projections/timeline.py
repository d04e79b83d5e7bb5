"""The audit timeline of each alert group, with OnCall's log record types and texts."""

from __future__ import annotations

import json
from functools import singledispatchmethod

from domain.alert_group import (
    SOURCE_ALERT_SOURCE,
    SOURCE_DISABLE_MAINTENANCE,
    SOURCE_LAST_STEP,
    Alert,
    AlertGroup,
)
from domain.delivery import MAX_ATTEMPTS, DeliveryAttempt, PersonalNotification
from domain.ids import (
    PREFIX_ALERT,
    PREFIX_ALERT_GROUP,
    PREFIX_ROUTE,
    PREFIX_USER,
    public_id,
)
from domain.paging import Escalation
from domain.webhooks import (
    PREFIX_WEBHOOK,
    TRIGGER_CUSTOM_WEBHOOK_ERROR,
    timeline_action,
)
from projections import escalation_texts
from projections.db import Cursor, iso
from projections.runner import Projection

# AlertGroupLogRecord types (OnCall's integer values).
TYPE_ACK = 0
TYPE_UN_ACK = 1
TYPE_ESCALATION_TRIGGERED = 5
TYPE_CUSTOM_WEBHOOK_TRIGGERED = 10
TYPE_SILENCE = 7
TYPE_RESOLVED = 13
TYPE_UN_RESOLVED = 14
TYPE_UN_SILENCE = 15
TYPE_ESCALATION_FINISHED = 16
TYPE_ESCALATION_FAILED = 17
TYPE_REGISTERED = 21
TYPE_ROUTE_ASSIGNED = 22
TYPE_DIRECT_PAGING = 23
# Tocsin's own (OnCall shows neither in its timeline): an alert's failed templates, and alerts of a
# notification that ingest did not take (more than it takes from one notification).
TYPE_TEMPLATE_ERRORS = 100
TYPE_ALERTS_NOT_TAKEN = 101
# Also Tocsin's: when an escalation (re)starts and why it stopped (OnCall shows neither).
TYPE_ESCALATION_STARTED = 102
TYPE_ESCALATION_STOPPED = 103
# And a person's notifications (OnCall keeps those in a personal log of its own).
TYPE_NOTIFICATION_SENT = 104
TYPE_NOTIFICATION_FAILED = 105
TYPE_NOTIFICATION_STOPPED = 106

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
    TYPE_ESCALATION_TRIGGERED: "Escalation triggered",
    TYPE_CUSTOM_WEBHOOK_TRIGGERED: "Custom webhook triggered",
    TYPE_ESCALATION_FINISHED: "Escalation finished",
    TYPE_ESCALATION_FAILED: "Escalation failed",
    TYPE_DIRECT_PAGING: "Trigger direct paging escalation",
    TYPE_ESCALATION_STARTED: "Escalation started",
    TYPE_ESCALATION_STOPPED: "Escalation stopped",
    TYPE_NOTIFICATION_SENT: "Notification sent",
    TYPE_NOTIFICATION_FAILED: "Notification failed",
    TYPE_NOTIFICATION_STOPPED: "Notification stopped",
}
RESOLVED_TEXTS = {
    SOURCE_ALERT_SOURCE: "Resolved by alert source",
    SOURCE_LAST_STEP: "Resolved automatically",
    SOURCE_DISABLE_MAINTENANCE: "Resolved by stop maintenance",
}


def _by(author: str | None) -> str:
    return f" by {author}" if author else ""


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
        text = RESOLVED_TEXTS.get(e.source) or f"Resolved{_by(e.by)}"
        return [_entry(e, position, 0, TYPE_RESOLVED, text, e.by, e.at, {"source": e.source})]

    @entries.register
    def _(self, e: AlertGroup.Unresolved, position: int) -> list[tuple]:
        return [_entry(e, position, 0, TYPE_UN_RESOLVED, f"Unresolved{_by(e.by)}", e.by, e.at, {})]

    @entries.register
    def _(self, e: AlertGroup.Silenced, position: int) -> list[tuple]:
        span = f"for {escalation_texts.duration_text(e.delay)}" if e.delay else "forever"
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


    # --- escalation ------------------------------------------------------------------------------

    @entries.register
    def _(self, e: Escalation.Started, position: int) -> list[tuple]:
        text = escalation_texts.started(e.chain_name, e.reason)
        details = {"chain": e.chain_name, "run": e.run, "reason": e.reason}
        return [_group_entry(e.group_id, position, TYPE_ESCALATION_STARTED, text, None, e.at, details)]

    @entries.register
    def _(self, e: Escalation.StepTriggered, position: int) -> list[tuple]:
        details = {"step": e.index, "type": e.step["type"], "run": e.run, **_shown(e.details)}
        text = escalation_texts.triggered(e.step, e.details)
        return [_group_entry(e.group_id, position, TYPE_ESCALATION_TRIGGERED, text, None, e.at, details)]

    @entries.register
    def _(self, e: Escalation.StepFailed, position: int) -> list[tuple]:
        details = {"step": e.index, "type": e.step.get("type"), "run": e.run, "escalation_error_code": e.error_code,
                   **_shown(e.details)}  # fmt: skip
        text = escalation_texts.failed(e.step, e.error_code, e.details)
        return [_group_entry(e.group_id, position, TYPE_ESCALATION_FAILED, text, None, e.at, details)]

    @entries.register
    def _(self, e: Escalation.Stopped, position: int) -> list[tuple]:
        text = f"escalation stopped because alert group was {e.reason}"
        return [_group_entry(e.group_id, position, TYPE_ESCALATION_STOPPED, text, None, e.at, {"reason": e.reason})]

    @entries.register
    def _(self, e: Escalation.Finished, position: int) -> list[tuple]:
        return [_group_entry(e.group_id, position, TYPE_ESCALATION_FINISHED, "escalation finished", None, e.at, {})]

    @entries.register
    def _(self, e: Escalation.ResponderPaged, position: int) -> list[tuple]:
        text = f"{e.by or 'API'} paged user {e.username}"
        details = {"user": public_id(PREFIX_USER, e.user_id), "important": e.important}
        return [_group_entry(e.group_id, position, TYPE_DIRECT_PAGING, text, e.by, e.at, details)]


    # --- a person's notifications -----------------------------------------------------------------

    @entries.register
    def _(self, e: DeliveryAttempt.Sent, position: int) -> list[tuple]:
        webhook = getattr(e, "webhook", None)
        if webhook is not None:
            text = timeline_action(webhook["name"], webhook["trigger"])
            details = {"webhook_id": public_id(PREFIX_WEBHOOK, webhook["id"]), "webhook_name": webhook["name"],
                       "trigger": webhook["trigger"], "url": e.address, "attempt": e.number}  # fmt: skip
            return [_group_entry(e.group_id, position, TYPE_CUSTOM_WEBHOOK_TRIGGERED, text, None, e.at, details)]
        text = f"sent {escalation_texts.channel_name(e.channel)} to {e.username} ({e.address})"
        details = {"channel": e.channel, "attempt": e.number, "address": e.address, "user": e.username}
        return [_group_entry(e.group_id, position, TYPE_NOTIFICATION_SENT, text, None, e.at, details)]

    @entries.register
    def _(self, e: DeliveryAttempt.Failed, position: int) -> list[tuple]:
        webhook = getattr(e, "webhook", None)
        if webhook is not None:
            text = timeline_action(webhook["name"], webhook["trigger"], error=e.reason)
            details = {"webhook_id": public_id(PREFIX_WEBHOOK, webhook["id"]), "webhook_name": webhook["name"],
                       "trigger": webhook["trigger"], "url": e.address, "attempt": e.number, "reason": e.reason,
                       "escalation_error_code": TRIGGER_CUSTOM_WEBHOOK_ERROR}  # fmt: skip
            return [_group_entry(e.group_id, position, TYPE_ESCALATION_FAILED, text, None, e.at, details)]
        again = "" if e.permanent else " (will try again)" if e.number < MAX_ATTEMPTS else " (no attempt left)"
        text = f"failed to notify {e.username} by {escalation_texts.channel_name(e.channel)}: {e.reason}{again}"
        details = {"channel": e.channel, "attempt": e.number, "address": e.address, "user": e.username,
                   "reason": e.reason, "permanent": e.permanent}  # fmt: skip
        return [_group_entry(e.group_id, position, TYPE_NOTIFICATION_FAILED, text, None, e.at, details)]

    @entries.register
    def _(self, e: DeliveryAttempt.Cancelled, position: int) -> list[tuple]:
        if getattr(e, "webhook", None) is not None:
            return []  # a webhook whose trigger template said no: OnCall shows nothing either
        text = f"did not notify {e.username} by {escalation_texts.channel_name(e.channel)}: {e.reason}"
        details = {"channel": e.channel, "user": e.username, "reason": e.reason}
        return [_group_entry(e.group_id, position, TYPE_NOTIFICATION_STOPPED, text, None, e.at, details)]

    @entries.register
    def _(self, e: PersonalNotification.Stopped, position: int) -> list[tuple]:
        text = f"stopped notifying {e.username}: {e.reason}"
        return [_group_entry(e.group_id, position, TYPE_NOTIFICATION_STOPPED, text, None, e.at,
                             {"user": e.username, "reason": e.reason})]  # fmt: skip


def _shown(details: dict) -> dict:
    """A step's details as the timeline's JSON shows them (users by public id and name)."""
    shown = dict(details)
    if "users" in shown:
        shown["users"] = [{"id": public_id(PREFIX_USER, u["id"]), "username": u["username"]} for u in shown["users"]]
    if shown.get("eta") is not None:
        shown["eta"] = iso(shown["eta"])
    if shown.get("schedule_id") is not None:
        shown["schedule_id"] = escalation_texts.schedule_public_id(shown["schedule_id"])
    return shown


def _group_entry(group_id, position, type_, action, author, at, details) -> tuple:
    return (public_id(PREFIX_ALERT_GROUP, group_id), position, 0, type_, action, author, iso(at), json.dumps(details))


def _entry(e, position, seq, type_, action, author, at, details) -> tuple:
    return (
        public_id(PREFIX_ALERT_GROUP, e.originator_id),
        position, seq, type_, action, author, iso(at), json.dumps(details),
    )
