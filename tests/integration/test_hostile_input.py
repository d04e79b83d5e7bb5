"""Hostile input gets a clear 4xx or is stored safely, never a 500 nor a stuck pipeline.

The events keep exactly what was received; the read models show NUL as U+FFFD (PostgreSQL text
cannot hold NUL). What a user types into the API (names, descriptions, templates) is refused
with a field error instead. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
from urllib.parse import quote

import pytest

from tests.conftest import eventually
from tests.integration.conftest import inbound_path, send, wait_for_groups

NUL = "\x00"
FFFD = "\ufffd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def token_of(runtime, integration: dict) -> str:
    (row,) = runtime.db.query("SELECT token FROM integrations WHERE id = %s", (integration["id"],))
    return row["token"]


def post_form(client, path: str, fields: dict[str, str]):
    body = "&".join(f"{quote(key)}={quote(value)}" for key, value in fields.items())
    return client.post(path, data=body, content_type="application/x-www-form-urlencoded")


# --- NUL ----------------------------------------------------------------------------------------


def test_nul_through_every_integration_type_and_the_api_never_stalls_anything(
    runtime, client, make_integration
):
    """The issue's scenario: NUL everywhere, then another integration's alerts still show up."""
    made = {t: make_integration(t) for t in (
        "alertmanager", "grafana_alerting", "legacy_alertmanager", "legacy_grafana_alerting", "webhook",
        "formatted_webhook", "elastalert", "kapacitor", "manual", "inbound_email",
    )}  # fmt: skip
    name = f"Disk{NUL}Full"

    # JSON bodies, each with the NUL where the type takes its title (or grouping key) from.
    send(client, made["alertmanager"], {
        "status": "firing", "groupKey": f"{{}}:{{alertname=\"{name}\"}}", "groupLabels": {"alertname": name},
        "alerts": [{"status": "firing", "labels": {"alertname": name}}]})  # fmt: skip
    send(client, made["grafana_alerting"], {
        "status": "firing", "groupKey": name, "groupLabels": {"alertname": name},
        "alerts": [{"status": "firing", "labels": {"alertname": name}}]})  # fmt: skip
    send(client, made["legacy_alertmanager"], {
        "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": name}}]})  # fmt: skip
    send(client, made["legacy_grafana_alerting"], {
        "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": name}}]})  # fmt: skip
    send(client, made["webhook"], {"title": name, "state": "alerting"})
    send(client, made["elastalert"], {"alert_uid": name, "rule_name": name})
    send(client, made["kapacitor"], {"id": name, "level": "CRITICAL", "message": name})
    manual_path = f"/integrations/v1/manual/{token_of(runtime, made['manual'])}/"
    response = client.post(manual_path, json={"oncall": {"title": name, "message": name, "uid": "page-1"}})
    assert response.status_code == 200
    # Form bodies.
    assert post_form(client, inbound_path(made["formatted_webhook"]), {"title": name, "alert_uid": name}).status_code == 200
    assert post_form(client, inbound_path(made["webhook"]), {"message": name}).status_code == 200
    # The inbound email webhook (SendGrid's parsed form) and the SMTP receiver.
    email_token = token_of(runtime, made["inbound_email"])
    response = post_form(client, "/integrations/v1/inbound_email_webhook", {
        "to": f"{email_token}@mail.example.com", "from": "monitor@example.com",
        "subject": f"Webhook {name}", "text": f"body {NUL}"})  # fmt: skip
    assert (response.status_code, response.get_json()) == (200, "OK")
    from workers.smtp import SMTPReceiver

    receiver = SMTPReceiver(runtime, f"127.0.0.1:{free_port()}")
    receiver.start()
    try:
        host, port = receiver.address.rsplit(":", 1)
        with smtplib.SMTP(host, int(port), timeout=10) as smtp:
            message = (
                f"From: monitor@example.com\r\nTo: {email_token}@mail.example.com\r\n"
                f"Subject: SMTP {name}\r\n\r\nline {NUL}\r\n"
            ).encode()
            smtp.sendmail("monitor@example.com", [f"{email_token}@mail.example.com"], message)
    finally:
        receiver.stop()

    # The API refuses NUL in what a user types, with a field error; nothing is created.
    for body, field in (
        ({"type": "webhook", "name": f"Bad{NUL}name"}, "name"),
        ({"type": "webhook", "description_short": f"Bad{NUL}"}, "description_short"),
        ({"type": "webhook", "templates": {"web": {"title": f"{{{{ 1 }}}}{NUL}"}}}, "templates"),
        ({"type": "webhook", "team_id": f"team{NUL}"}, "team_id"),
    ):
        response = client.post("/api/v1/integrations/", json=body)
        assert response.status_code == 400, (body, response.data)
        assert field in response.get_json(), response.get_json()
    response = client.patch(f"/api/v1/integrations/{made['webhook']['id']}/", json={"name": f"x{NUL}"})
    assert (response.status_code, list(response.get_json())) == (400, ["name"])
    # NUL in lookups is just a value that matches nothing.
    assert client.get(f"/api/v1/integrations/{quote(NUL)}/").status_code == 404
    assert client.get(f"/api/v1/alert_groups/?integration_id={quote(NUL)}").get_json()["count"] == 0
    assert client.get(f"/api/v1/integrations/?name={quote(name)}").get_json()["count"] == 0
    assert client.post(f"/integrations/v1/webhook/ab{quote(NUL)}cd/", json={}).status_code == 403

    # Everything sent shows up, with U+FFFD where the NUL was.
    shown = f"Disk{FFFD}Full"
    expected_titles = {
        "alertmanager": [f"{shown} "],
        "grafana_alerting": [f"{shown} "],
        "legacy_alertmanager": [shown],
        "legacy_grafana_alerting": [shown],
        "formatted_webhook": [shown],
        "kapacitor": [shown],
        "manual": [shown],
        "inbound_email": [f"Webhook {shown}", f"SMTP {shown}"],
        "webhook": ["Incident", "Incident"],  # the JSON and the form body: two payloads, two groups
        "elastalert": ["Incident"],
    }
    for type_, titles in expected_titles.items():
        groups = wait_for_groups(client, made[type_]["id"], len(titles))
        assert sorted(g["title"] for g in groups) == sorted(titles), type_
        assert all(NUL not in g["title"] for g in groups)
    # The events keep what was received.
    alerts = client.get(f"/api/v1/alerts/?alert_group_id={groups_of_id(client, made['kapacitor'])}").get_json()
    assert alerts["results"][0]["payload"]["id"] == name

    # Later alerts of another integration become visible; creating integrations and tokens works.
    other = make_integration("alertmanager", name="After the NUL")
    send(client, other, "captured/alertmanager/am-01-firing-single.json")
    wait_for_groups(client, other["id"], 1)
    from tocsin.cli import create_token

    token = create_token(runtime, "after-nul", "viewer")
    response = client.get("/api/v1/integrations/", headers={"Authorization": token})
    assert response.status_code == 200
    assert response.get_json()["count"] == len(made) + 1


def groups_of_id(client, integration: dict) -> str:
    (group,) = client.get(f"/api/v1/alert_groups/?integration_id={integration['id']}").get_json()["results"]
    return group["id"]


def test_a_lone_surrogate_in_what_a_user_types_is_a_field_error(client):
    response = client.post("/api/v1/integrations/", json={"type": "webhook", "name": "Bad\ud800"})
    assert response.status_code == 400
    assert response.get_json() == {"name": ["Surrogate characters are not allowed: U+D800."]}
    assert client.get("/api/v1/integrations/").get_json()["count"] == 0


def test_a_template_that_would_render_a_lone_surrogate_is_a_field_error(client):
    """Its every alert would be text no store can encode: refused when saved, not at ingest."""
    body = {"type": "webhook", "templates": {"web": {"title": '{{ "disk \\ud800 full" }}'}}}
    response = client.post("/api/v1/integrations/", json=body)
    assert response.status_code == 400
    assert response.get_json() == {
        "templates": {"web.title": ["Invalid web.title template: Surrogate characters are not allowed: U+D800."]}
    }
    body["templates"]["web"]["title"] = '{{ "disk \\u00e9 \\x00 full" }}'  # an escape of a storable character is fine
    assert client.post("/api/v1/integrations/", json=body).status_code == 201


# --- absurd sizes and nesting -------------------------------------------------------------------


def nested(depth: int) -> bytes:
    """A JSON object ``depth`` levels deep: {"a":{"a":...{}...}}."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


@pytest.fixture
def group(client, make_integration) -> dict:
    webhook = make_integration("webhook")
    send(client, webhook, {"alert_uid": "disk", "title": "Disk full"})
    (group,) = wait_for_groups(client, webhook["id"], 1)
    return group


def test_absurdly_deep_json_on_any_api_body_is_a_400(client, group):
    integration_id = group["integration_id"]
    deep = nested(100_000)
    for method, path in (
        ("post", "/api/v1/integrations/"),
        ("patch", f"/api/v1/integrations/{integration_id}/"),
        ("put", f"/api/v1/integrations/{integration_id}/"),
        ("post", f"/api/v1/alert_groups/{group['id']}/silence"),
        ("post", f"/api/v1/integrations/{integration_id}/preview_template"),
        ("post", f"/api/v1/integrations/{integration_id}/send_demo_alert"),
    ):
        response = getattr(client, method)(path, data=deep, content_type="application/json")
        assert response.status_code == 400, (path, response.data[:200])
        assert response.is_json and "detail" in response.get_json(), path


def test_a_silence_that_would_end_after_any_date_is_a_400(client, group):
    url = f"/api/v1/alert_groups/{group['id']}/silence"
    for delay in (10**18, 10**11, 2**63, "9" * 30):
        response = client.post(url, json={"delay": delay})
        assert (response.status_code, response.get_json()) == (400, {"detail": "invalid delay value"}), delay
    for body in (b'{"delay": 1e400}', b'{"delay": NaN}'):  # not JSON, as Python's parser would take them
        assert client.post(url, data=body, content_type="application/json").status_code == 400
    assert client.get(f"/api/v1/alert_groups/{group['id']}/").get_json()["state"] == "firing"
    # A century is the longest silence, and it is a date.
    assert client.post(url, json={"delay": 100 * 365 * 24 * 3600}).status_code == 200
    silenced = client.get(f"/api/v1/alert_groups/{group['id']}/").get_json()
    assert silenced["state"] == "silenced" and silenced["silenced_until"] > "2100"


@pytest.mark.parametrize("path", ["/api/v1/alert_groups/", "/api/v1/alerts/", "/api/v1/integrations/"])
def test_page_numbers_beyond_any_integer_are_clamped(client, group, path):
    huge = "9223372036854775808"
    page = client.get(f"{path}?perpage={huge}").get_json()
    assert (page["page_size"], page["count"], len(page["results"])) == (1000, 1, 1)
    page = client.get(f"{path}?page={huge}&perpage=1").get_json()
    assert (page["current_page_number"], len(page["results"])) == (1, 1)  # the last page, as OnCall
    page = client.get(f"{path}?page={'9' * 5000}&perpage={'9' * 5000}").get_json()
    assert (page["current_page_number"], page["page_size"]) == (1, 50)


def test_inbound_json_nesting_is_limited_to_100_levels(client, make_integration):
    webhook = make_integration("webhook")
    path = inbound_path(webhook)
    assert client.post(path, data=nested(100), content_type="application/json").status_code == 200
    for depth in (101, 975, 100_000):
        response = client.post(path, data=nested(depth), content_type="application/json")
        assert response.status_code == 400, depth
        assert response.get_json() == {"detail": "JSON parse error - nested deeper than 100 levels"}
    (group,) = wait_for_groups(client, webhook["id"], 1)
    assert client.get(f"/api/v1/alerts/?alert_group_id={group['id']}").get_json()["count"] == 1


def test_a_deep_payload_stored_before_the_limit_is_still_listed(runtime, client, make_integration):
    """What an older version accepted (975 levels) must not break the pages that show it."""
    from datetime import datetime, timezone
    from uuid import UUID

    from domain.inbox import KIND_ALERT, ReceivedAlert

    webhook = make_integration("webhook")
    (row,) = runtime.db.query("SELECT uuid FROM integrations WHERE id = %s", (webhook["id"],))
    payload_json = nested(975).decode()
    runtime.committer.submit(ReceivedAlert(
        integration_id=UUID(row["uuid"]), kind=KIND_ALERT, payload_json=payload_json,
        received_at=datetime.now(timezone.utc)))  # fmt: skip
    # Read as text: a parser called this deep in the test's own stack could not follow it either.
    listed = eventually(lambda: re.search(
        rb'"count":1,.*?"id":"(I[0-9A-Z]+)"', client.get(f"/api/v1/alert_groups/?integration_id={webhook['id']}").data
    ), describe="the group of the deep payload")  # fmt: skip
    group_id = listed.group(1).decode()
    for path in ("/api/v1/alerts/", f"/api/v1/alerts/?alert_group_id={group_id}", "/api/v1/alert_groups/",
                 f"/api/v1/alert_groups/{group_id}/"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200, path
        assert payload_json.encode() in response.data, path


# --- malformed email provider bodies ------------------------------------------------------------


def sns(notification: object) -> bytes:
    message = notification if isinstance(notification, str) else json.dumps(notification)
    return json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-1:1:tocsin", "Message": message}).encode()


RECEIVED = {"notificationType": "Received", "content": "Subject: x\r\n\r\nbody"}


@pytest.mark.parametrize(
    "body, content_type",
    [
        (sns({**RECEIVED, "receipt": "a string"}), "text/plain"),
        (sns({**RECEIVED, "mail": "a string"}), "text/plain"),
        (sns({**RECEIVED, "receipt": {"recipients": 5}}), "text/plain"),
        (sns({**RECEIVED, "receipt": {"recipients": [5]}}), "text/plain"),
        (sns({**RECEIVED, "receipt": {"action": "SNS"}}), "text/plain"),
        (sns({**RECEIVED, "mail": {"destination": {"to": "x"}}}), "text/plain"),
        (sns({**RECEIVED, "mail": {"source": ["a@example.com"]}}), "text/plain"),
        (json.dumps({"Type": "Notification", "TopicArn": "t", "Message": 5}).encode(), "text/plain"),
        (json.dumps({"Type": "Notification", "TopicArn": "t", "Message": {"a": 1}}).encode(), "text/plain"),
        (sns(nested(100_000).decode()), "text/plain"),
        (b'{"Type": "Notification", "TopicArn": "t", "x": ' + nested(100_000) + b"}", "application/json"),
        (b"to=a%40example.com&envelope=" + quote(json.dumps({"to": 5})).encode(), "application/x-www-form-urlencoded"),
        (b"to=a%40example.com&envelope=" + quote(json.dumps({"to": [{}]})).encode(), "application/x-www-form-urlencoded"),
        (b"to=a%40example.com&envelope=" + quote(json.dumps({"from": 5})).encode(), "application/x-www-form-urlencoded"),
        (b"to=a%40example.com&envelope=" + quote(json.dumps([1])).encode(), "application/x-www-form-urlencoded"),
        (b"to=a%40example.com&envelope=" + quote(nested(100_000).decode()).encode(), "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_provider_bodies_on_the_email_webhook_are_400(client, body, content_type):
    response = client.post("/integrations/v1/inbound_email_webhook", data=body, content_type=content_type)
    assert response.status_code == 400, response.data[:300]
    assert response.mimetype == "text/plain" and response.data


def test_ses_content_with_a_lone_surrogate_is_stored_safely(runtime, client, make_integration):
    mail = make_integration("inbound_email")
    token = token_of(runtime, mail)
    body = sns({**RECEIVED, "content": "Subject: odd \ud800 subject\r\n\r\nbody", "receipt": {"recipients": [f"{token}@x.example"]}})
    response = client.post("/integrations/v1/inbound_email_webhook", data=body, content_type="text/plain")
    assert (response.status_code, response.get_json()) == (200, "OK")
    (group,) = wait_for_groups(client, mail["id"], 1)
    assert group["title"].startswith("odd ") and group["title"].endswith(" subject")


def test_defective_address_headers_in_a_raw_message_do_not_lose_the_mail(runtime, client, make_integration):
    """The standard library's header parser raises on ``Cc: team:;x`` and ``To: ops <``."""
    mail = make_integration("inbound_email")
    token = token_of(runtime, mail)
    raw = (f"From: monitor <monitor@example.com\r\nTo: {token}@mail.example.com, ops <\r\n"
           "Cc: I+|:w;T0\r\nSubject: Backup failed\r\n\r\nexit 1\r\n")  # fmt: skip
    response = post_form(client, "/integrations/v1/inbound_email_webhook?provider=sendgrid", {"email": raw, "to": ""})
    assert (response.status_code, response.get_json()) == (200, "OK")
    (group,) = wait_for_groups(client, mail["id"], 1)
    assert group["title"] == "Backup failed"


def test_a_recipient_with_a_lone_surrogate_is_an_unknown_integration(client):
    body = sns({**RECEIVED, "receipt": {"recipients": ["ab\ud800cd@x.example"]}})
    response = client.post("/integrations/v1/inbound_email_webhook", data=body, content_type="text/plain")
    assert (response.status_code, response.data) == (403, b"Integration key was not found. Permission denied.")


# --- error bodies -------------------------------------------------------------------------------


def test_http_errors_under_the_api_and_integration_urls_are_json(app, client):
    from flask import abort

    app.add_url_rule("/api/v1/teapot", "teapot", lambda: abort(418))
    app.add_url_rule("/integrations/v1/teapot", "inbound_teapot", lambda: abort(418))
    for path in ("/api/v1/teapot", "/integrations/v1/teapot"):
        response = client.get(path)
        assert (response.status_code, response.mimetype) == (418, "application/json"), path
        assert set(response.get_json()) == {"detail"}
    # The unknown integration token keeps OnCall's text answer.
    response = client.post("/integrations/v1/webhook/unknown/", json={})
    assert (response.status_code, response.mimetype) == (403, "text/html")
    assert response.data == b"Integration key was not found. Permission denied."
