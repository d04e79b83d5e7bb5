"""Failures under /api/ and /integrations/ answer JSON: a busy or unreachable store is a 503 with
Retry-After, anything else a 500 with {"detail": ...}, never an HTML error page."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from eventsourcing import persistence

from tests.integration.conftest import inbound_path

FIRING = {"status": "firing", "groupKey": "errors", "alerts": []}


def break_alert_group_list(monkeypatch, exc: BaseException) -> None:
    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr("web.api.alert_groups.alert_groups_page", broken)


def break_alert_intake(monkeypatch, exc: BaseException) -> None:
    from adapters.group_commit import GroupCommitter

    def broken(self, entry):
        raise exc

    monkeypatch.setattr(GroupCommitter, "submit", broken)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        persistence.OperationalError("could not connect"),
        sqlite3.OperationalError("database is locked"),
    ],
    ids=["psycopg", "event-store", "sqlite-busy"],
)
def test_an_unavailable_store_is_a_json_503_with_retry_after(client, make_integration, monkeypatch, exc):
    integration = make_integration("alertmanager")
    break_alert_group_list(monkeypatch, exc)
    break_alert_intake(monkeypatch, exc)
    for response in (client.get("/api/v1/alert_groups/"), client.post(inbound_path(integration), json=FIRING)):
        assert response.status_code == 503
        assert response.get_json() == {"detail": "The database is unavailable right now; retry later."}
        assert response.headers["Retry-After"] == "5"


def test_any_other_failure_is_a_json_500(client, make_integration, monkeypatch):
    integration = make_integration("alertmanager")
    failures = (
        RuntimeError("a bug"),
        persistence.IntegrityError("a conflict nobody retried"),
        sqlite3.OperationalError("no such table: alert_groups"),
    )
    for exc in failures:
        break_alert_group_list(monkeypatch, exc)
        break_alert_intake(monkeypatch, exc)
        for response in (client.get("/api/v1/alert_groups/"), client.post(inbound_path(integration), json=FIRING)):
            assert response.status_code == 500, exc
            assert response.get_json() == {"detail": "Internal server error."}
            assert "Retry-After" not in response.headers
