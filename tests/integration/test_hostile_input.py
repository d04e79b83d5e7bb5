"""Hostile input gets a clear 4xx or is stored safely, never a 500 nor a stuck pipeline.

The events keep exactly what was received; the read models show NUL as U+FFFD (PostgreSQL text
cannot hold NUL). What a user types into the API (names, descriptions, templates) is refused
with a field error instead. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
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
