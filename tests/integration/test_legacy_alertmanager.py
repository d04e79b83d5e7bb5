"""Legacy (per-alert) Alertmanager integrations, for users who kept OnCall's v1 behaviour.

OnCall's public API refuses to create them; Tocsin allows it, so those users can move.
"""

from __future__ import annotations

import json

from tests.conftest import load_payload
from tests.integration.conftest import groups_of, send, wait_for_groups

THREE_FIRING = "captured/alertmanager/am-02-firing-group-3-alerts.json"


def test_a_legacy_integration_keeps_the_alertmanager_url(make_integration):
    integration = make_integration("legacy_alertmanager")
    assert "/integrations/v1/alertmanager/" in integration["link"]
    assert integration["type"] == "alertmanager"  # OnCall shows legacy types without the prefix


def test_each_alert_of_a_notification_is_its_own_alert_grouped_by_labels(client, make_integration):
    integration = make_integration("legacy_alertmanager")
    send(client, integration, THREE_FIRING)
    groups = wait_for_groups(client, integration["id"], 3)
    assert sorted(g["alerts_count"] for g in groups) == [1, 1, 1]

    send(client, integration, THREE_FIRING)  # the same three label sets again
    groups = wait_for_groups(client, integration["id"], 3, alerts_count=2)
    assert all(g["alerts_count"] == 2 for g in groups)


def test_a_group_resolves_when_every_label_set_in_it_is_resolved(client, make_integration):
    # Group by alertname only, so one group holds several label sets.
    integration = make_integration(
        "legacy_alertmanager", templates={"grouping_key": "{{ payload.labels.alertname }}"}
    )
    body = json.loads(load_payload(THREE_FIRING))
    send(client, integration, body)
    (group,) = wait_for_groups(client, integration["id"], 1, alerts_count=3)

    first_resolved = {**body, "alerts": [{**body["alerts"][0], "status": "resolved"}]}
    send(client, integration, first_resolved)
    (group,) = wait_for_groups(client, integration["id"], 1, alerts_count=4)
    assert group["state"] == "firing"  # two label sets are still firing

    all_resolved = {**body, "alerts": [{**a, "status": "resolved"} for a in body["alerts"][1:]]}
    send(client, integration, all_resolved)
    (group,) = wait_for_groups(client, integration["id"], 1, state="resolved")
    assert group["alerts_count"] == 6
    assert len(groups_of(client, integration["id"])) == 1
