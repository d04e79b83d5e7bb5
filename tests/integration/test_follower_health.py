"""A follower that keeps failing says so: /health answers 503 naming it, with its lag and last
error, and /metrics exports its lag and error count; once it gets past, /health is 200 again."""

from __future__ import annotations

import re

import pytest

from projections import follower_status
from tests.conftest import eventually
from tests.integration.conftest import inbound_path

FIRING = {"status": "firing", "groupKey": "{}:{alertname=\"Stuck\"}", "alerts": []}


@pytest.fixture(autouse=True)
def stuck_sooner(monkeypatch):
    monkeypatch.setattr(follower_status, "STUCK_AFTER_SECONDS", 1.0)


def metric(client, name: str, follower: str) -> float | None:
    text = client.get("/metrics").get_data(as_text=True)
    found = re.search(rf'^{name}{{follower="{follower}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_healthy_pipeline_answers_200_with_every_follower(client, make_integration):
    client.post(inbound_path(make_integration("alertmanager")), json=FIRING)

    def healthy():
        response = client.get("/health")
        body = response.get_json()
        ok = response.status_code == 200 and all(
            state["lag"] in (0, None) and state["last_success_at"] for state in body["followers"].values()
        )
        return body if ok else None

    body = eventually(healthy, describe="every follower caught up and reporting")
    assert body["status"] == "ok" and body["database"] == "reachable"
    assert set(body["followers"]) == {"ingest", "escalation", "project-alerting", "project-config", "ticker"}
    assert metric(client, "tocsin_follower_lag", "project-alerting") == 0
    assert metric(client, "tocsin_follower_stuck", "ingest") == 0


def test_a_projection_failing_on_one_event_is_reported_stuck_until_it_gets_past(client, make_integration, monkeypatch):
    from projections.alert_groups import AlertGroupsView

    integration = make_integration("alertmanager")
    with monkeypatch.context() as patch:

        def cannot_show(self, events, cur):
            raise RuntimeError("this event cannot be shown")

        patch.setattr(AlertGroupsView, "apply_batch", cannot_show)
        assert client.post(inbound_path(integration), json=FIRING).status_code == 200

        def reported_stuck():
            response = client.get("/health")
            return response if response.status_code == 503 else None

        body = eventually(reported_stuck, describe="/health reporting the stuck projection").get_json()
        assert body["status"] == "stuck" and body["stuck"] == ["project-alerting"]
        state = body["followers"]["project-alerting"]
        assert state["lag"] >= 1
        assert "this event cannot be shown" in state["last_error"]
        assert state["error_count"] >= 1 and state["failing_since"]
        assert metric(client, "tocsin_follower_lag", "project-alerting") >= 1
        assert metric(client, "tocsin_follower_errors_total", "project-alerting") >= 1
        assert metric(client, "tocsin_follower_stuck", "project-alerting") == 1

    # The view works again: the runner's next retry gets past the event (its backoff is short yet).
    def recovered():
        response = client.get("/health")
        return response.get_json() if response.status_code == 200 else None

    body = eventually(recovered, timeout=20, describe="/health back to 200")
    state = body["followers"]["project-alerting"]
    assert state["lag"] == 0 and state["failing_since"] is None
    assert state["error_count"] >= 1  # a counter: the failures stay counted
    assert client.get(f"/api/v1/alert_groups/?integration_id={integration['id']}").get_json()["count"] == 1


def test_ingest_failing_is_reported_stuck_with_its_lag(client, make_integration, monkeypatch):
    from workers.ingest import IngestProcessor

    integration = make_integration("alertmanager")

    def poisoned(self):
        raise RuntimeError("ingest cannot get past this entry")

    monkeypatch.setattr(IngestProcessor, "run_batch", poisoned)
    assert client.post(inbound_path(integration), json=FIRING).status_code == 200

    def reported_stuck():
        response = client.get("/health")
        return response.get_json() if response.status_code == 503 else None

    body = eventually(reported_stuck, describe="/health reporting stuck ingest")
    assert "ingest" in body["stuck"]
    assert body["followers"]["ingest"]["lag"] >= 1
    assert "cannot get past this entry" in body["followers"]["ingest"]["last_error"]
