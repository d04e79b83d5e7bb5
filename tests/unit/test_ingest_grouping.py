"""OnCall's grouping rules (reference 4.1), through the ingest processor on in-memory stores."""

import json
from datetime import datetime, timezone

import pytest

from domain.alert_group import AlertGroup
from domain.applications import Alerting, Configuration, Inbox
from domain.inbox import KIND_ALERT, KIND_DEMO, ReceivedAlert
from workers.ingest import IngestProcessor

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class Pipeline:
    """Inbox -> ingest -> alerting, all in memory; `groups()` reads the aggregates back."""

    def __init__(self, integration_type="alertmanager", templates=None):
        self.inbox = Inbox(env=POPO)
        self.alerting = Alerting(env=POPO)
        self.config = Configuration(env=POPO)
        self.integration, _ = self.config.create_integration(
            type=integration_type, name="i", token="t" * 32, team_id=None, description_short=None,
            templates=templates or {}, created_at=datetime.now(timezone.utc),
        )
        self.ingest = IngestProcessor(self.inbox, self.alerting, self.config)
        self.group_ids: list = []

    def receive(self, payload, kind=KIND_ALERT):
        self.inbox.receive_alerts([
            ReceivedAlert(
                integration_id=self.integration.id, kind=kind, payload_json=json.dumps(payload),
                received_at=datetime.now(timezone.utc),
            )
        ])
        self.ingest.catch_up()

    def groups(self) -> list[AlertGroup]:
        ids = []
        for n in self.alerting.recorder.select_notifications(0, 10_000):
            event = self.alerting.mapper.to_domain_event(n)
            if isinstance(event, AlertGroup.Registered):
                ids.append(event.originator_id)
        return [self.alerting.get_group(i) for i in ids]


def am(group_key: str, status: str = "firing") -> dict:
    return {"groupKey": group_key, "status": status, "alerts": [{"status": status, "labels": {"alertname": "A"}}],
            "groupLabels": {"alertname": "A"}}


def test_same_grouping_key_joins_the_open_group():
    p = Pipeline()
    p.receive(am("k1"))
    p.receive(am("k1"))
    p.receive(am("k2"))
    groups = p.groups()
    assert [g.alerts_count for g in groups] == [2, 1]


def test_resolve_signal_resolves_and_the_next_firing_alert_opens_a_new_group():
    p = Pipeline()
    p.receive(am("k"))
    p.receive(am("k", "resolved"))
    p.receive(am("k"))
    first, second = p.groups()
    assert first.resolved and first.alerts_count == 2
    assert not second.resolved and second.generation == 2


def test_resolve_signal_without_an_open_group_joins_the_latest_resolved_group():
    p = Pipeline()
    p.receive(am("k"))
    p.receive(am("k", "resolved"))
    p.receive(am("k", "resolved"))  # Alertmanager repeats the resolved notification
    (only,) = p.groups()
    assert only.resolved and only.alerts_count == 3


def test_a_first_alert_that_is_a_resolve_signal_opens_a_group_already_resolved():
    p = Pipeline()
    p.receive(am("k", "resolved"))
    (only,) = p.groups()
    assert only.resolved


def test_acknowledged_and_silenced_groups_keep_collecting_alerts():
    p = Pipeline()
    p.receive(am("k"))
    (group,) = p.groups()
    p.alerting.act(group.id, "acknowledge", by="ann", at=datetime.now(timezone.utc))
    p.receive(am("k"))
    p.alerting.act(group.id, "unacknowledge", by="ann", at=datetime.now(timezone.utc))
    p.alerting.act(group.id, "silence", by="ann", at=datetime.now(timezone.utc), delay=-1)
    p.receive(am("k"))
    (group,) = p.groups()
    assert group.alerts_count == 3 and group.silenced


def test_a_user_resolve_closes_grouping():
    p = Pipeline()
    p.receive(am("k"))
    (group,) = p.groups()
    p.alerting.act(group.id, "resolve", by="ann", at=datetime.now(timezone.utc))
    p.receive(am("k"))
    assert len(p.groups()) == 2


def test_unresolving_does_not_reopen_the_group_for_grouping():
    p = Pipeline()
    p.receive(am("k"))
    (group,) = p.groups()
    now = datetime.now(timezone.utc)
    p.alerting.act(group.id, "resolve", by="ann", at=now)
    p.alerting.act(group.id, "unresolve", by="ann", at=now)
    p.receive(am("k"))
    assert len(p.groups()) == 2  # OnCall quirk 5, kept deliberately


def test_demo_alerts_never_group():
    p = Pipeline()
    p.receive(am("k"), kind=KIND_DEMO)
    p.receive(am("k"), kind=KIND_DEMO)
    groups = p.groups()
    assert len(groups) == 2 and all(g.is_demo for g in groups)


def test_an_empty_grouping_key_gives_each_alert_its_own_group():
    p = Pipeline(templates={"grouping_key": "{{ payload.missing }}"})
    p.receive(am("k"))
    p.receive(am("k"))
    assert len(p.groups()) == 2


def test_decisions_are_recorded_so_template_changes_do_not_rewrite_history():
    p = Pipeline(integration_type="webhook")
    p.receive({"title": "disk full"})
    p.config.update_integration(p.integration.id, templates={"web.title": "{{ payload.title | upper }}"})
    p.receive({"title": "cpu hot"})
    first, second = p.groups()
    assert first.title == "Incident" and first.template_revision == 1
    assert second.title == "CPU HOT" and second.template_revision == 2


def test_processing_the_inbox_twice_adds_nothing():
    p = Pipeline()
    p.receive(am("k"))
    position = p.alerting.processed_position()
    assert p.ingest.catch_up() == 0
    assert p.alerting.processed_position() == position
    assert [g.alerts_count for g in p.groups()] == [1]


@pytest.mark.parametrize("payload", [[], [1, 2], "text"])
def test_non_object_payloads_are_kept_and_grouped(payload):
    p = Pipeline(integration_type="webhook")
    p.receive(payload)
    p.receive(payload)
    (group,) = p.groups()
    assert group.alerts_count == 2


def test_a_payload_the_grouping_template_cannot_read_is_still_kept():
    # The webhook default asks `"is_oncall_heartbeat" in payload`, which fails for a number:
    # as in OnCall that is a template error, so each alert gets a group of its own.
    p = Pipeline(integration_type="webhook")
    p.receive(42)
    p.receive(42)
    assert [g.alerts_count for g in p.groups()] == [1, 1]


def test_an_alert_that_breaks_evaluation_is_kept_and_ingest_goes_on(monkeypatch):
    p = Pipeline()

    def broken(*args, **kwargs):
        raise RuntimeError("defect")

    monkeypatch.setattr("domain.ingest.evaluate", broken)
    p.receive(am("k"))
    monkeypatch.undo()
    p.receive(am("k"))  # the next alert is ingested normally
    broken_group, normal_group = p.groups()
    assert broken_group.title.startswith("Unprocessable alert")
    assert normal_group.title.strip() == "A" and normal_group.alerts_count == 1
