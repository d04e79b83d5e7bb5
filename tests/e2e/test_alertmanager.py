"""A real Prometheus Alertmanager notifies Tocsin's "alertmanager" integration over HTTP.

Alertmanager groups alerts by alertname and posts each notification of the group to the
integration link; Tocsin must keep every notification of that group in one alert group and
resolve it when Alertmanager reports the group resolved.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

# The binary check comes first so that a missing Alertmanager skips before Tocsin starts.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("alertmanager_binary")]

# group_wait 1s + group_interval 2s + Tocsin's own processing, with plenty of slack.
NOTIFICATION_TIMEOUT = 30.0


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def disk_full(instance: str, starts_at: datetime, ends_at: datetime) -> dict[str, Any]:
    return {
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"Disk full on {instance}"},
        "startsAt": iso(starts_at),
        "endsAt": iso(ends_at),
    }


class Observer:
    """Reads one integration's alert groups, remembering the last response for failure messages."""

    def __init__(self, tocsin, integration_id: str) -> None:
        self.tocsin = tocsin
        self.integration_id = integration_id
        self.last = "no request made yet"

    def get(self, path: str) -> Any:
        status, body = self.tocsin.api("GET", path)
        self.last = f"GET {path} -> {status}\n{json.dumps(body, indent=2, default=str)}"
        assert status == 200, self.last
        return body

    def groups(self) -> list[dict[str, Any]]:
        return self.get(f"/api/v1/alert_groups/?integration_id={self.integration_id}")["results"]

    def alerts(self, alert_group_id: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v1/alerts/?alert_group_id={alert_group_id}")["results"]

    def only_group(self, **expected: Any) -> dict[str, Any] | None:
        """The single alert group, if there is exactly one and it has the `expected` fields."""
        groups = self.groups()
        if len(groups) == 1 and all(groups[0].get(k) == v for k, v in expected.items()):
            return groups[0]
        return None


def firing_count(alert: dict[str, Any]) -> int:
    payload_alerts = alert.get("payload", {}).get("alerts", [])
    return sum(1 for a in payload_alerts if a.get("status") == "firing")


def newest(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return max(alerts, key=lambda alert: alert["created_at"])


def test_alertmanager_group_fires_grows_and_resolves(tocsin, start_alertmanager, wait_until) -> None:
    status, integration = tocsin.api("POST", "/api/v1/integrations/", {"type": "alertmanager", "name": "e2e"})
    assert status == 201, f"POST /api/v1/integrations/ -> {status} {integration!r}"
    link = integration["link"]
    assert link.startswith(tocsin.base_url + "/integrations/v1/alertmanager/"), (
        f"integration link {link!r} does not point at the running server {tocsin.base_url}"
    )
    alertmanager = start_alertmanager(link)
    observe = Observer(tocsin, integration["id"])

    started = datetime.now(timezone.utc)
    far_future = started + timedelta(hours=1)

    # 1. One firing alert -> one firing alert group named after the alertname.
    alertmanager.post_alerts([disk_full("db-1", started, far_future)])
    group = wait_until(
        lambda: observe.only_group(state="firing"),
        NOTIFICATION_TIMEOUT,
        lambda: f"expected exactly one firing alert group; last response:\n{observe.last}",
    )
    assert group["title"].startswith("DiskFull"), f"unexpected title {group['title']!r}\n{observe.last}"

    # 2. A second alert in the same Alertmanager group -> its notifications join the same group.
    alertmanager.post_alerts([disk_full("db-2", started, far_future)])

    def newest_alert_has_both_firing() -> bool:
        grown = observe.only_group(id=group["id"], state="firing")
        return bool(grown and grown["alerts_count"] >= 2
                    and firing_count(newest(observe.alerts(group["id"]))) == 2)

    wait_until(
        newest_alert_has_both_firing,
        NOTIFICATION_TIMEOUT,
        lambda: (f"expected the one group {group['id']} with alerts_count >= 2 whose newest alert "
                 f"has 2 firing alerts; last response:\n{observe.last}"),
    )

    # 3. Both alerts end -> Alertmanager sends status "resolved" -> the group resolves.
    now = datetime.now(timezone.utc)
    alertmanager.post_alerts([disk_full("db-1", started, now), disk_full("db-2", started, now)])
    wait_until(
        lambda: observe.only_group(id=group["id"], state="resolved"),
        NOTIFICATION_TIMEOUT,
        lambda: f"expected the one group {group['id']} to be resolved; last response:\n{observe.last}",
    )
