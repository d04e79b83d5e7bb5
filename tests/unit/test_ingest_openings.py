"""Ingest renders the titles of a batch's group-opening alerts together, before recording them."""

import json
from datetime import datetime, timezone

from domain.alert_group import AlertGroup
from domain.applications import Alerting, Configuration, Inbox
from domain.inbox import KIND_ALERT, ReceivedAlert
from workers.ingest import InProcessTemplates, IngestProcessor

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class CountingTemplates(InProcessTemplates):
    def __init__(self):
        self.batched: list[int] = []  # alerts per openings() call
        self.one_by_one = 0  # titles the batch did not foresee

    def openings(self, items):
        self.batched.append(len(items))
        return super().openings(items)

    def opening(self, integration, decision):
        self.one_by_one += 1
        return super().opening(integration, decision)


def run_batch(payloads: list[dict]) -> tuple[CountingTemplates, list[AlertGroup]]:
    inbox, alerting, config = Inbox(env=POPO), Alerting(env=POPO), Configuration(env=POPO)
    integration, _ = config.create_integration(
        type="formatted_webhook", name="i", token="t" * 32, team_id=None, description_short=None,
        templates={}, created_at=datetime.now(timezone.utc),
    )
    templates = CountingTemplates()
    ingest = IngestProcessor(inbox, alerting, config, templates=templates)
    inbox.receive_alerts([
        ReceivedAlert(integration_id=integration.id, kind=KIND_ALERT, payload_json=json.dumps(p),
                      received_at=datetime.now(timezone.utc))
        for p in payloads
    ])
    assert ingest.run_batch() == len(payloads)  # one batch
    groups = [
        alerting.get_group(event.originator_id)
        for event in map(alerting.mapper.to_domain_event, alerting.recorder.select_notifications(0, 10_000))
        if isinstance(event, AlertGroup.Registered)
    ]
    return templates, groups


def alert(uid: str, title: str, state: str = "alerting") -> dict:
    return {"alert_uid": uid, "title": title, "state": state}


def test_only_the_alerts_that_open_groups_have_their_titles_rendered():
    templates, groups = run_batch([alert("a", "A1"), alert("a", "A2"), alert("b", "B1"), alert("a", "A3")])
    assert templates.batched == [2] and templates.one_by_one == 0
    assert [(g.title, g.alerts_count) for g in groups] == [("A1", 3), ("B1", 1)]


def test_a_group_resolved_and_opened_again_in_one_batch_gets_its_title_foreseen():
    templates, groups = run_batch([alert("a", "First"), alert("a", "Ok", state="ok"), alert("a", "Second")])
    assert templates.one_by_one == 0
    assert [(g.title, g.state.value) for g in groups] == [("First", "resolved"), ("Second", "firing")]
