"""Heartbeats through the API and the real ticker (with a controllable clock), on both backends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.conftest import eventually
from tests.integration.conftest import groups_of, inbound_path, wait_for_groups


def integration_of(client, integration_id: str) -> dict:
    return client.get(f"/api/v1/integrations/{integration_id}/").get_json()


def later(runtime, seconds: int) -> None:
    """Move the ticker's clock forward and run it once (as its next tick would)."""
    moved = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    runtime.ticker.clock = lambda: moved
    runtime.ticker.tick()


def test_heartbeat_is_shown_and_its_timeout_can_be_changed(client, make_integration):
    integration = make_integration("alertmanager")
    assert integration["heartbeat"] == {
        "link": integration["link"] + "heartbeat/",
        "timeout_seconds": 600,
        "last_heartbeat_time": None,
        "status": "not_armed",
    }
    response = client.patch(f"/api/v1/integrations/{integration['id']}/", json={"heartbeat": {"timeout_seconds": 60}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["heartbeat"]["timeout_seconds"] == 60

    refused = client.patch(f"/api/v1/integrations/{integration['id']}/", json={"heartbeat": {"timeout_seconds": 61}})
    assert refused.status_code == 400
    assert "timeout_seconds" in str(refused.get_json())


def test_a_silent_heartbeat_opens_a_group_and_the_next_ping_resolves_it(runtime, client, make_integration):
    integration = make_integration("alertmanager")
    client.patch(f"/api/v1/integrations/{integration['id']}/", json={"heartbeat": {"timeout_seconds": 60}})
    assert client.get(inbound_path(integration) + "heartbeat/").get_json() == ":)"
    eventually(lambda: integration_of(client, integration["id"])["heartbeat"]["status"] == "alive", describe="armed")

    later(runtime, 30)
    assert groups_of(client, integration["id"]) == []  # not yet due

    later(runtime, 61)
    (group,) = wait_for_groups(client, integration["id"], 1, state="firing")
    assert group["title"].startswith("OnCallHeartBeatMissing")
    assert integration_of(client, integration["id"])["heartbeat"]["status"] == "expired"

    later(runtime, 62)  # still silent: no second alert
    assert groups_of(client, integration["id"])[0]["alerts_count"] == 1

    assert client.post(inbound_path(integration) + "heartbeat/").status_code == 200
    (group,) = wait_for_groups(client, integration["id"], 1, state="resolved")
    assert group["alerts_count"] == 2
    assert integration_of(client, integration["id"])["heartbeat"]["status"] == "alive"


def test_expiry_survives_a_restart_of_every_process(settings, make_integration, client, runtime):
    from tocsin.runtime import Runtime

    integration = make_integration("webhook")
    client.get(inbound_path(integration) + "heartbeat/")
    eventually(lambda: integration_of(client, integration["id"])["heartbeat"]["status"] == "alive", describe="armed")
    runtime.close()  # everything stops; only what is stored remains

    restarted = Runtime(settings)
    try:
        restarted.start(ticker=False)
        moved = datetime.now(timezone.utc) + timedelta(seconds=601)
        restarted.ticker.clock = lambda: moved
        assert restarted.ticker.tick() == 1
        restarted.catch_up()
        assert [g["state"] for g in restarted.db.query("SELECT state FROM alert_groups")] == ["firing"]
        (alert,) = restarted.db.query("SELECT payload FROM alerts")
        assert json.loads(alert["payload"])["title"] == "Webhook heartbeat is missing"
    finally:
        restarted.close()


def test_reset_disarms_the_heartbeat(runtime, client, make_integration):
    integration = make_integration("formatted_webhook")
    client.get(inbound_path(integration) + "heartbeat/")
    eventually(lambda: integration_of(client, integration["id"])["heartbeat"]["status"] == "alive", describe="armed")

    response = client.post(f"/api/v1/integrations/{integration['id']}/heartbeat/reset")
    assert response.status_code == 200
    assert response.get_json()["heartbeat"]["status"] == "not_armed"
    assert response.get_json()["heartbeat"]["last_heartbeat_time"] is None

    later(runtime, 601)
    assert groups_of(client, integration["id"]) == []
