"""A heartbeat in real time against a running server: silence for its timeout opens a group,
the next ping resolves it. The shortest timeout OnCall offers is 60 s, so this test takes about
a minute; it runs once, on the production backend.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.e2e

TIMEOUT = 60
# The ticker checks deadlines every second; allow for a loaded machine.
EXPIRY_SLACK = 15.0


def groups(tocsin, integration_id: str) -> list[dict]:
    status, body = tocsin.api("GET", f"/api/v1/alert_groups/?integration_id={integration_id}")
    assert status == 200, body
    return body["results"]


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_silent_monitor_raises_an_alert_and_its_next_ping_resolves_it(tocsin, wait_until, backend):
    from tests.e2e.conftest import http

    status, integration = tocsin.api("POST", "/api/v1/integrations/", {"type": "webhook", "name": "cron"})
    assert status == 201, integration
    status, body = tocsin.api(
        "PATCH", f"/api/v1/integrations/{integration['id']}/", {"heartbeat": {"timeout_seconds": TIMEOUT}}
    )
    assert status == 200 and body["heartbeat"]["timeout_seconds"] == TIMEOUT, body
    ping_url = integration["heartbeat"]["link"]

    assert http("GET", ping_url)[0] == 200
    pinged_at = time.monotonic()
    wait_until(
        lambda: tocsin.api("GET", f"/api/v1/integrations/{integration['id']}/")[1]["heartbeat"]["status"] == "alive",
        10, lambda: "the heartbeat was not armed by its first ping",
    )
    assert groups(tocsin, integration["id"]) == []

    (group,) = wait_until(
        lambda: groups(tocsin, integration["id"]),
        TIMEOUT + EXPIRY_SLACK,
        lambda: f"no alert group {TIMEOUT + EXPIRY_SLACK:.0f}s after the last ping",
    )
    assert time.monotonic() - pinged_at >= TIMEOUT - 1  # not before the timeout
    assert group["state"] == "firing"
    assert group["last_alert"]["payload"]["title"] == "Webhook heartbeat is missing"

    assert http("POST", ping_url)[0] == 200
    wait_until(
        lambda: groups(tocsin, integration["id"])[0]["state"] == "resolved",
        10, lambda: f"the ping after expiry did not resolve the group: {groups(tocsin, integration['id'])}",
    )
    assert len(groups(tocsin, integration["id"])) == 1
