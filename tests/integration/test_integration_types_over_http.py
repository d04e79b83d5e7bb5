"""Every integration type end to end through HTTP: real payloads in, OnCall's grouping out."""

from __future__ import annotations

import json

from tests.conftest import load_payload
from tests.integration.conftest import groups_of, send, wait_for_groups


def test_grafana_alerting_groups_a_notification_and_resolves_it(client, make_integration):
    integration = make_integration("grafana_alerting")
    send(client, integration, "captured/grafana/grafana-firing.json")
    (group,) = wait_for_groups(client, integration["id"], 1, state="firing")
    assert group["last_alert"]["payload"]["numFiring"] == 2  # added, as OnCall does

    send(client, integration, "captured/grafana/grafana-resolved.json")
    (group,) = wait_for_groups(client, integration["id"], 1, state="resolved")
    assert group["alerts_count"] == 2


def test_kapacitor_warning_then_ok_recovery(client, make_integration):
    integration = make_integration("kapacitor")
    send(client, integration, "captured/kapacitor/kapacitor-warning.json")
    (group,) = wait_for_groups(client, integration["id"], 1, state="firing")
    assert group["title"] == "kapacitor/cpu/web-01"

    send(client, integration, "captured/kapacitor/kapacitor-ok-recovery.json")
    wait_for_groups(client, integration["id"], 1, state="resolved", alerts_count=2)


def test_elastalert_groups_by_alert_uid_and_resolves_on_state_ok(client, make_integration):
    integration = make_integration("elastalert")
    body = json.loads(load_payload("captured/elastalert/elastalert-post-frequency-static-title.json"))
    send(client, integration, {**body, "alert_uid": "checkout-502"})
    send(client, integration, {**body, "alert_uid": "checkout-502"})
    wait_for_groups(client, integration["id"], 1, alerts_count=2)

    send(client, integration, {**body, "alert_uid": "checkout-502", "state": "ok"})
    wait_for_groups(client, integration["id"], 1, state="resolved", alerts_count=3)


def test_elastalert_without_alert_uid_opens_a_group_per_alert(client, make_integration):
    # What ElastAlert 2's `post` alerter sends unless the rule adds an alert_uid.
    integration = make_integration("elastalert")
    send(client, integration, "captured/elastalert/elastalert-post-frequency-static-title.json")
    send(client, integration, "captured/elastalert/elastalert-post-frequency-static-title.json")
    groups = wait_for_groups(client, integration["id"], 2)
    assert {g["title"] for g in groups} == {"Incident"}


def test_legacy_grafana_alerting_splits_a_notification_into_alerts(client, make_integration):
    integration = make_integration("legacy_grafana_alerting")
    body = json.loads(load_payload("oncall-examples/legacy_grafana_alerting.json"))
    send(client, integration, body)
    groups = wait_for_groups(client, integration["id"], 1)
    assert groups[0]["alerts_count"] == len(body["alerts"])


def test_manual_pages_never_group(runtime, client, make_integration):
    integration = make_integration("manual")
    assert integration["link"] is None  # as OnCall: pages are not sent by monitoring systems
    # The universal URL still takes the type's token, as OnCall's does.
    (row,) = runtime.db.query("SELECT token FROM integrations WHERE id = %s", (integration["id"],))
    page = json.loads(load_payload("oncall-examples/manual.json"))
    for uid in ("page-1", "page-2"):  # every page carries a fresh uid
        response = client.post(
            f"/integrations/v1/manual/{row['token']}/", json={"oncall": {**page["oncall"], "uid": uid}}
        )
        assert response.status_code == 200
    groups = wait_for_groups(client, integration["id"], 2)
    assert [g["title"] for g in groups] == [page["oncall"]["title"]] * 2
    assert all(g["state"] == "firing" for g in groups)
    assert len(groups_of(client, integration["id"])) == 2
