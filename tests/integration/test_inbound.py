"""Inbound integration URLs over HTTP, as senders see them (OnCall reference §1.3–1.4).

Every test runs on SQLite and on PostgreSQL, with the real ingest and projection threads.
"""

from __future__ import annotations

import io
import json
import sqlite3

import psycopg
import pytest

from tests.conftest import eventually, load_payload
from tests.integration.conftest import groups_of, inbound_path, wait_for_groups
from adapters.settings import DEFAULT_MAX_BODY_BYTES

AM_FIRING = "captured/alertmanager/am-02-firing-group-3-alerts.json"
NOT_FOUND_TEXT = "Integration key was not found. Permission denied."


def post_json(client, path: str, body: bytes, content_type: str = "application/json"):
    return client.post(path, data=body, content_type=content_type)


def alerts_of(client, group_id: str) -> list[dict]:
    response = client.get(f"/api/v1/alerts/?alert_group_id={group_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


# --- accepted requests ---------------------------------------------------------------------------


def test_alertmanager_notification_is_accepted_and_becomes_a_group(client, make_integration):
    integration = make_integration("alertmanager", name="Prometheus")

    response = post_json(client, inbound_path(integration), load_payload(AM_FIRING))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == "Ok."
    assert response.headers["Content-Length"] == str(len(response.data))
    [group] = wait_for_groups(client, integration["id"], 1)
    assert group["state"] == "firing"
    assert group["alerts_count"] == 1
    assert group["title"] == "InstanceDown "  # OnCall's default: alertname, then other group labels
    assert group["integration_id"] == integration["id"]
    assert group["route_id"] == integration["default_route"]["id"]


def test_every_captured_alertmanager_notification_is_accepted(client, make_integration):
    integration = make_integration("alertmanager")
    names = [
        "am-01-firing-single.json",
        "am-02-firing-group-3-alerts.json",
        "am-08-firing-with-1-resolved.json",
        "am-prom-03-heartbeat.json",
    ]
    for name in names:
        response = post_json(client, inbound_path(integration), load_payload(f"captured/alertmanager/{name}"))
        assert (response.status_code, response.get_json()) == (200, "Ok."), name

    # am-02 and am-08 share a groupKey; DiskFull and heartbeat have their own.
    groups = wait_for_groups(client, integration["id"], 3)
    assert sorted(g["alerts_count"] for g in groups) == [1, 1, 2]


def test_url_without_trailing_slash_is_accepted(client, make_integration):
    integration = make_integration("alertmanager")
    path = inbound_path(integration).rstrip("/")

    response = post_json(client, path, load_payload(AM_FIRING))

    assert (response.status_code, response.get_json()) == (200, "Ok.")
    wait_for_groups(client, integration["id"], 1)


def test_get_answers_an_html_page_naming_the_integration(client, make_integration):
    integration = make_integration("alertmanager", name="Prod <AM> & co")

    response = client.get(inbound_path(integration))

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Prod &lt;AM&gt; &amp; co" in page  # the name, escaped
    assert "<AM>" not in page
    assert "Alertmanager" in page
    assert groups_of(client, integration["id"]) == []  # a GET creates no alert


def test_head_answers_like_get_without_a_body(client, make_integration):
    integration = make_integration("webhook")

    response = client.head(inbound_path(integration))

    assert response.status_code == 200
    assert response.data == b""


def test_empty_body_creates_an_alert_with_an_empty_payload(client, make_integration):
    integration = make_integration("webhook")

    response = client.post(inbound_path(integration))

    assert (response.status_code, response.get_json()) == (200, "Ok.")
    [group] = wait_for_groups(client, integration["id"], 1)
    [alert] = eventually(lambda: alerts_of(client, group["id"]), describe="the alert of the empty body")
    assert alert["payload"] == {}


def test_form_encoded_body_becomes_a_flat_object(client, make_integration):
    integration = make_integration("webhook")
    body = load_payload("captured/webhook/webhook-form-encoded.txt")

    response = client.post(
        inbound_path(integration), data=body, content_type="application/x-www-form-urlencoded"
    )

    assert (response.status_code, response.get_json()) == (200, "Ok.")
    [group] = wait_for_groups(client, integration["id"], 1)
    [alert] = eventually(lambda: alerts_of(client, group["id"]), describe="the form alert")
    assert alert["payload"] == {"title": "Backup failed", "state": "alerting"}


def test_capitalised_json_content_type_is_accepted(client, make_integration):
    # curl in OnCall's formatted-webhook docs sends "Content-Type: Application/json".
    integration = make_integration("formatted_webhook")
    request = json.loads(load_payload("captured/webhook/formatted-webhook-docs-example.request.json"))
    content_type = dict(request["headers"])["Content-Type"]
    assert content_type == "Application/json"

    response = post_json(
        client,
        inbound_path(integration),
        load_payload("captured/webhook/formatted-webhook-docs-example.json"),
        content_type=content_type,
    )

    assert (response.status_code, response.get_json()) == (200, "Ok.")
    [group] = wait_for_groups(client, integration["id"], 1)
    assert group["title"] == "The whole system is down"


def test_heartbeat_get_answers_a_smiley_and_post_an_empty_200(client, make_integration):
    integration = make_integration("alertmanager")
    heartbeat = integration["heartbeat"]["link"].removeprefix("http://tocsin.test")

    got = client.get(heartbeat)
    posted = client.post(heartbeat)

    assert (got.status_code, got.get_json()) == (200, ":)")
    assert (posted.status_code, posted.data) == (200, b"")
    assert groups_of(client, integration["id"]) == []  # a heartbeat is not an alert


def test_heartbeat_with_unknown_token_is_refused(client):
    response = client.get("/integrations/v1/alertmanager/NoSuchToken123/heartbeat/")

    assert response.status_code == 403
    assert response.get_data(as_text=True) == NOT_FOUND_TEXT


# --- refused requests ----------------------------------------------------------------------------


def test_unknown_token_is_refused_with_oncalls_text(client):
    response = post_json(client, "/integrations/v1/alertmanager/NoSuchToken123/", load_payload(AM_FIRING))

    assert response.status_code == 403
    assert response.get_data(as_text=True) == NOT_FOUND_TEXT


def test_token_of_another_type_is_refused_with_oncalls_text(client, make_integration):
    webhook = make_integration("webhook")
    token = inbound_path(webhook).rstrip("/").rsplit("/", 1)[-1]

    response = post_json(client, f"/integrations/v1/alertmanager/{token}/", load_payload(AM_FIRING))

    assert response.status_code == 400
    assert response.get_data(as_text=True) == (
        "This url is for integration with Alertmanager. Key is for Webhook"
    )
    assert groups_of(client, webhook["id"]) == []


def test_malformed_json_is_a_400_parse_error(client, make_integration):
    integration = make_integration("webhook")

    response = post_json(client, inbound_path(integration), b'{"status": "firing",')

    assert response.status_code == 400
    body = response.get_json()
    assert list(body) == ["detail"]
    assert body["detail"].startswith("JSON parse error - ")


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": NaN}',
        b'{"value": -Infinity}',
        b'{"value": 1e400}',  # parses to infinity: no JSON reader could read it back
        b'{"text": "\\ud800"}',  # a lone surrogate: valid JSON text, not storable as UTF-8
        b'{"text": "\xed\xa0\x80"}',  # the same surrogate as raw bytes
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any parser goes
    ],
    ids=["nan", "infinity", "overflow", "escaped-surrogate", "raw-surrogate", "deep-nesting"],
)
def test_json_that_cannot_be_stored_faithfully_is_a_400(client, make_integration, body):
    integration = make_integration("webhook")

    response = post_json(client, inbound_path(integration), body)

    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("JSON parse error - ")


def test_json_that_is_not_an_object_is_accepted(client, make_integration):
    # OnCall accepts any JSON value as a payload; templates then see what they see.
    integration = make_integration("webhook")
    for body in (b"[1, 2]", b'"just text"', b"null", b'{"emoji": "\\ud83d\\udd25", "ratio": 0.5}'):
        response = post_json(client, inbound_path(integration), body)
        assert (response.status_code, response.get_json()) == (200, "Ok."), body

    groups = wait_for_groups(client, integration["id"], 4)
    payloads = [alerts_of(client, g["id"])[0]["payload"] for g in groups]
    assert payloads == [{"emoji": "\U0001f525", "ratio": 0.5}, None, "just text", [1, 2]]


def test_text_plain_is_an_unsupported_media_type(client, make_integration):
    integration = make_integration("webhook")

    response = post_json(client, inbound_path(integration), b"disk full", content_type="text/plain")

    assert response.status_code == 415
    assert response.get_json() == {"detail": 'Unsupported media type "text/plain" in request.'}


def test_multipart_file_upload_is_refused(client, make_integration):
    integration = make_integration("webhook")

    response = client.post(
        inbound_path(integration),
        data={"title": "x", "file": (io.BytesIO(b"data"), "dump.bin")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 400
    assert response.get_data(as_text=True) == "File uploads are not allowed"


def test_other_methods_are_not_allowed(client, make_integration):
    integration = make_integration("webhook")

    response = client.put(inbound_path(integration), json={})

    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Method "PUT" not allowed.'}


def test_body_over_the_size_limit_is_refused_and_at_the_limit_accepted(client, make_integration):
    integration = make_integration("webhook")
    path = inbound_path(integration)

    def body_of(size: int) -> bytes:
        body = b'{"blob": "' + b"x" * (size - len(b'{"blob": ""}')) + b'"}'
        assert len(body) == size
        return body

    too_large = post_json(client, path, body_of(DEFAULT_MAX_BODY_BYTES + 1))
    at_limit = post_json(client, path, body_of(DEFAULT_MAX_BODY_BYTES))

    assert too_large.status_code == 413
    assert str(DEFAULT_MAX_BODY_BYTES) in too_large.get_json()["detail"]
    assert (at_limit.status_code, at_limit.get_json()) == (200, "Ok.")
    [group] = wait_for_groups(client, integration["id"], 1)  # only the accepted one
    assert group["alerts_count"] == 1


def test_store_failure_answers_503_and_acknowledges_nothing(client, make_integration, runtime, backend, monkeypatch):
    integration = make_integration("webhook")
    path = inbound_path(integration)
    error = sqlite3.OperationalError if backend == "sqlite" else psycopg.OperationalError

    def broken_save(*aggregates, **kwargs):
        raise error("the event store is down")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.inbox, "save", broken_save)
        refused = client.post(path, json={"lost": True})

    assert refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    assert "detail" in refused.get_json()

    # The store works again: a later alert is stored and ingested, the refused one never is.
    accepted = client.post(path, json={"kept": True})
    assert (accepted.status_code, accepted.get_json()) == (200, "Ok.")
    [group] = wait_for_groups(client, integration["id"], 1)
    assert group["alerts_count"] == 1
    assert [a["payload"] for a in alerts_of(client, group["id"])] == [{"kept": True}]
    assert client.get("/api/v1/alerts/?search=lost").get_json()["count"] == 0
