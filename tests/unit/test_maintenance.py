"""Maintenance mode: the integration's record of it, ingest collecting alerts into one group, and
the fenced end that resolves that group (in-memory stores, explicit times)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.alert_group import SOURCE_DISABLE_MAINTENANCE, AlertGroup, State
from domain.applications import Alerting, Configuration, Inbox
from domain.commands import DEADLINE_COMMANDS, deadline_command
from domain.configuration import MaintenanceRefused, humanised_duration
from domain.inbox import KIND_ALERT, KIND_DEMO, ReceivedAlert
from domain.maintenance import EndMaintenance, start_maintenance, stop_maintenance
from workers.ingest import IngestProcessor

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Pipeline:
    """Inbox -> ingest -> alerting in memory, with the time each alert is received given."""

    def __init__(self, name: str = "Prometheus"):
        self.inbox = Inbox(env=POPO)
        self.alerting = Alerting(env=POPO)
        self.config = Configuration(env=POPO)
        self.integration, _ = self.config.create_integration(
            type="alertmanager", name=name, token="t" * 32, team_id=None, description_short=None,
            templates={}, created_at=T0 - timedelta(days=1),
        )
        self.ingest = IngestProcessor(self.inbox, self.alerting, self.config)

    def send(self, received_at: datetime, payload: dict, kind: str = KIND_ALERT, catch_up: bool = True) -> None:
        self.inbox.receive_alerts([
            ReceivedAlert(integration_id=self.integration.id, kind=kind, payload_json=json.dumps(payload),
                          received_at=received_at)
        ])  # fmt: skip
        if catch_up:
            self.ingest.catch_up()

    def start(self, mode: str, duration: int, when: datetime):
        window, _ = start_maintenance(self.config, self.integration.id, mode, duration, by="ann", at=when)
        return window

    def end(self, window, when: datetime) -> int | None:
        """What the ticker does when the maintenance's deadline is due."""
        command = deadline_command("maintenance-end", window.id, window.number, when)
        return self.alerting.handle(command, self.ingest)

    def groups(self) -> list[AlertGroup]:
        ids = [
            event.originator_id
            for n in self.alerting.recorder.select_notifications(0, 10_000)
            if isinstance(event := self.alerting.mapper.to_domain_event(n), AlertGroup.Registered)
        ]
        return [self.alerting.get_group(i) for i in ids]

    def resolutions(self, group: AlertGroup) -> list:
        return [
            event for event in self.alerting.repository.event_store.get(group.id) if isinstance(event, AlertGroup.Resolved)
        ]


def am(key: str, status: str = "firing") -> dict:
    return {"groupKey": key, "status": status, "alerts": [{"status": status, "labels": {"alertname": key}}],
            "groupLabels": {"alertname": key}}  # fmt: skip


# --- the integration's record ----------------------------------------------------------------------


def test_maintenance_at_answers_for_any_instant_past_or_present():
    p = Pipeline()
    p.start("debug", 3600, at(0))
    integration = p.config.get_integration(p.integration.id)
    assert [integration.maintenance_at(at(s)) for s in (-1, 0, 3599, 3600)] == [None, "debug", "debug", None]

    stop_maintenance(p.config, p.integration.id, by="bob", at=at(600))
    p.start("maintenance", 7200, at(700))
    integration = p.config.get_integration(p.integration.id)
    assert integration.maintenance_at(at(300)) == "debug"  # before the stop
    assert integration.maintenance_at(at(650)) is None  # between the two
    assert integration.maintenance_at(at(700 + 7199)) == "maintenance"
    assert integration.maintenance_at(at(700 + 7200)) is None
    assert [w.number for w in integration.maintenances] == [1, 2]
    assert integration.maintenances[0].by == "ann" and integration.maintenances[0].stopped_at == at(600)


def test_a_second_start_while_one_is_in_force_is_refused_and_a_stop_without_one_records_nothing():
    p = Pipeline()
    assert stop_maintenance(p.config, p.integration.id, by="bob", at=at(0)) is None
    p.start("maintenance", 60, at(0))
    with pytest.raises(MaintenanceRefused, match="^Already on maintenance$"):
        p.start("debug", 60, at(59))
    p.start("debug", 60, at(60))  # the first ended on time by itself: nothing had to stop it
    with pytest.raises(ValueError, match="mode"):
        p.config.get_integration(p.integration.id).start_maintenance("Debug", 60, by=None, at=at(500))
    for duration in (0, -1, 3_153_600_001, True, 1.0):
        with pytest.raises(ValueError, match="duration"):
            p.config.get_integration(p.integration.id).start_maintenance("debug", duration, by=None, at=at(500))


def test_durations_read_as_in_oncall():
    assert [humanised_duration(h * 3600) for h in (1, 3, 6, 12, 24)] == [
        "1 hour", "3 hours", "6 hours", "12 hours", "24 hours"
    ]  # fmt: skip
    assert humanised_duration(5400) == "1 hour 30 minutes"
    assert humanised_duration(61) == "1 minute 1 second"
    assert humanised_duration(2 * 86_400) == "2 days"
    assert humanised_duration(86_400 + 7200) == "1 day 2 hours"


# --- ingest ---------------------------------------------------------------------------------------


def test_alerts_received_during_a_maintenance_go_into_its_one_group_and_signals_do_not_close_it():
    p = Pipeline()
    p.send(at(-10), am("disk"))  # before: its own group, still open afterwards
    p.start("maintenance", 3600, at(0))
    p.send(at(1), am("cpu"))
    p.send(at(2), am("disk"))
    p.send(at(3), am("cpu", "resolved"))
    p.send(at(4), {**am("mem"), "status": "firing"}, kind=KIND_DEMO)
    before, during = p.groups()
    assert (before.alerts_count, during.alerts_count) == (1, 4)
    assert during.title == "Maintenance of Prometheus for 1 hour"
    assert during.state == State.FIRING and during.route_id == p.integration.default_route_id
    assert not during.is_demo

    p.send(at(3600), am("disk"))  # after its end: grouped as usual again
    p.send(at(3601), am("net"))
    before, during, after = p.groups()
    assert (before.alerts_count, during.alerts_count, after.alerts_count) == (2, 4, 1)


def test_debug_mode_changes_nothing_in_grouping():
    p = Pipeline()
    p.start("debug", 3600, at(0))
    p.send(at(1), am("cpu"))
    p.send(at(2), am("cpu"))
    p.send(at(3), am("cpu", "resolved"))
    (group,) = p.groups()
    assert group.alerts_count == 3 and group.state == State.RESOLVED


def test_the_end_resolves_the_group_by_stop_maintenance_once():
    p = Pipeline()
    window = p.start("maintenance", 3 * 3600, at(0))
    p.send(at(1), am("cpu"))
    stop_maintenance(p.config, p.integration.id, by="bob", at=at(60))
    assert DEADLINE_COMMANDS["maintenance-end"] is EndMaintenance and EndMaintenance.application == "alerting"

    assert p.end(window, at(61)) is not None
    (group,) = p.groups()
    assert group.state == State.RESOLVED
    (resolved,) = p.resolutions(group)
    assert (resolved.source, resolved.by, resolved.at) == (SOURCE_DISABLE_MAINTENANCE, None, at(61))
    assert p.end(window, at(62)) is None  # fired again: nothing changes

    p.send(at(30), am("late"))  # received during it, taken after the end: joins it, still resolved
    p.send(at(120), am("cpu"))  # after the stop: a group of its own
    during, after = p.groups()
    assert (during.alerts_count, during.state, after.alerts_count) == (2, State.RESOLVED, 1)
    assert len(p.resolutions(during)) == 1


def test_an_alert_of_a_maintenance_that_ingest_takes_after_its_end_starts_a_resolved_group():
    p = Pipeline()
    window = p.start("maintenance", 3600, at(0))
    p.send(at(10), am("cpu"), catch_up=False)  # ingest is behind
    assert p.end(window, at(3600)) is not None  # nothing to resolve yet: the end is recorded
    p.ingest.catch_up()
    (group,) = p.groups()
    assert group.state == State.RESOLVED and group.alerts_count == 1
    (resolved,) = p.resolutions(group)
    assert (resolved.source, resolved.at) == (SOURCE_DISABLE_MAINTENANCE, at(3600))
    assert p.end(window, at(3601)) is None


def test_each_maintenance_has_its_own_group():
    p = Pipeline("db")
    first = p.start("maintenance", 600, at(0))
    p.send(at(1), am("cpu"))
    p.end(first, at(600))
    second = p.start("maintenance", 1800, at(700))
    p.send(at(701), am("cpu"))
    one, two = p.groups()
    assert (one.state, two.state) == (State.RESOLVED, State.FIRING)
    assert (one.title, two.title) == ("Maintenance of db for 10 minutes", "Maintenance of db for 30 minutes")
    assert first.id != second.id
