"""Inbound email through a provider's inbound-parse webhook (OnCall reference §1.4, §2.2–2.3).

The bodies are the captured Mailgun (raw MIME form), SendGrid (parsed form) and Amazon SES (SNS
JSON) webhooks for ``captured/email/01-plain-text.eml``, sent to ``Yz8Pq2TestToken@inbound.oncall.test``;
each test puts its own integration's token in place of that one. Every test runs on SQLite and
on PostgreSQL with the real ingest and projection threads.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import logging
import re
from dataclasses import replace

import pytest

from tests.conftest import load_payload
from tests.integration.conftest import groups_of, wait_for_groups
from adapters.group_commit import InboxUnavailable

DOMAIN = "inbound.oncall.test"  # the domain the captured bodies were sent to
CAPTURED_TOKEN = "Yz8Pq2TestToken"
URL = "/integrations/v1/inbound_email_webhook"
BOUNDARY = "BoUnDaRyStRiNg"
FORM = f"multipart/form-data; boundary={BOUNDARY}"
PROVIDERS = ["mailgun", "sendgrid", "amazon_ses"]
NOT_FOUND_TEXT = "Integration key was not found. Permission denied."

SUBJECT = "PROBLEM: Disk /var is 95% full on db-1"
MESSAGE = (
    "Problem started at 20:15:00 on 2026.11.30\nProblem name: Disk /var is 95% full\nHost: db-1\n"
    "Severity: High\nOperational data: 95.2 %\nOriginal problem ID: 48213"
)
SENDER = "zabbix@monitoring.example.com"


@pytest.fixture
def settings(settings):
    """The shared settings, with the inbound email domain the captured mail was addressed to."""
    return replace(settings, inbound_email_domain=DOMAIN)


@pytest.fixture(autouse=True)
def no_webhook_checks(monkeypatch):
    for name in ("TOCSIN_MAILGUN_SIGNING_KEY", "TOCSIN_INBOUND_EMAIL_WEBHOOK_SECRET", "TOCSIN_SES_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)


# --- provider bodies ----------------------------------------------------------------------------


def eml(name: str, token: str) -> bytes:
    return load_payload(f"captured/email/{name}").replace(CAPTURED_TOKEN.encode(), token.encode())


def set_form_field(body: bytes, name: str, value: bytes) -> bytes:
    """Replace one field's value in the captured multipart body."""
    pattern = re.compile(
        rb'(Content-Disposition: form-data; name="' + re.escape(name.encode()) + rb'"\r\n\r\n)(.*?)(\r\n--'
        + BOUNDARY.encode() + rb")",
        re.S,
    )
    assert pattern.search(body), f"no field {name} in the body"
    return pattern.sub(lambda m: m.group(1) + value + m.group(3), body, count=1)


def mailgun_body(message: str, token: str) -> bytes:
    body = load_payload("captured/email-providers/01-plain-text.mailgun-mime.body")
    body = body.replace(CAPTURED_TOKEN.encode(), token.encode())
    return body.replace(eml("01-plain-text.eml", token), eml(message, token))


def sendgrid_body(message: str, token: str) -> bytes:
    body = load_payload("captured/email-providers/01-plain-text.sendgrid-parsed.body")
    body = body.replace(CAPTURED_TOKEN.encode(), token.encode())
    parsed = email.message_from_bytes(eml(message, token), policy=email.policy.default)
    body = set_form_field(body, "subject", parsed["Subject"].encode())
    # SendGrid posts the body with the message's own (CRLF) line endings.
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n").replace("\n", "\r\n")
    return set_form_field(body, "text", text.encode())


def ses_notification(token: str) -> dict:
    raw = load_payload("captured/email-providers/01-plain-text.amazon-ses-sns.body").decode()
    return json.loads(raw.replace(CAPTURED_TOKEN, token))


def ses_body(message: str, token: str, **sns_fields) -> bytes:
    sns = ses_notification(token)
    notification = json.loads(sns["Message"])
    notification["content"] = base64.b64encode(eml(message, token)).decode()
    sns["Message"] = json.dumps(notification)
    sns.update(sns_fields)
    return json.dumps(sns).encode()


def provider_body(provider: str, message: str, token: str) -> tuple[bytes, str]:
    if provider == "mailgun":
        return mailgun_body(message, token), FORM
    if provider == "sendgrid":
        return sendgrid_body(message, token), FORM
    return ses_body(message, token), "text/plain; charset=UTF-8"  # as SNS sends it


def post(client, body: bytes, content_type: str, url: str = URL, **kwargs):
    return client.post(url, data=body, content_type=content_type, **kwargs)


def alerts_of(client, group_id: str) -> list[dict]:
    response = client.get(f"/api/v1/alerts/?alert_group_id={group_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


@pytest.fixture
def email_integration(make_integration):
    integration = make_integration("inbound_email", name="Mail")
    assert integration["inbound_email"].endswith(f"@{DOMAIN}")
    assert integration["link"] is None
    return integration


@pytest.fixture
def token(email_integration) -> str:
    """The integration's token: the local part of the address the API shows."""
    return email_integration["inbound_email"].partition("@")[0]


def only_group(client, integration: dict, **expect) -> dict:
    [group] = wait_for_groups(client, integration["id"], 1, **expect)
    return group


# --- accepted mail ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_webhook_opens_a_group_and_the_ok_mail_resolves_it(client, email_integration, token, provider):
    body, content_type = provider_body(provider, "01-plain-text.eml", token)

    response = post(client, body, content_type)

    assert (response.status_code, response.get_json()) == (200, "OK")
    group = only_group(client, email_integration, state="firing")
    assert group["title"] == SUBJECT
    [alert] = alerts_of(client, group["id"])
    assert alert["payload"] == {"subject": SUBJECT, "message": MESSAGE, "sender": SENDER}

    body, content_type = provider_body(provider, "06-body-ok.eml", token)
    response = post(client, body, content_type)

    assert (response.status_code, response.get_json()) == (200, "OK")
    group = only_group(client, email_integration, state="resolved")
    assert group["alerts_count"] == 2
    assert group["title"] == SUBJECT


def test_url_with_trailing_slash_and_explicit_provider_are_accepted(client, email_integration, token):
    body, content_type = provider_body("sendgrid", "01-plain-text.eml", token)

    response = post(client, body, content_type, url=URL + "/?provider=sendgrid")

    assert (response.status_code, response.get_json()) == (200, "OK")
    assert only_group(client, email_integration)["title"] == SUBJECT


def test_html_only_mail_becomes_text(client, email_integration, token):
    response = post(client, ses_body("02-html-only.eml", token), "text/plain; charset=UTF-8")

    assert (response.status_code, response.get_json()) == (200, "OK")
    group = only_group(client, email_integration)
    assert group["title"] == "[FIRING:1] InstanceDown (web-1:9100 node critical)"
    [alert] = alerts_of(client, group["id"])
    message = alert["payload"]["message"]
    assert "<" not in message  # no markup left
    assert "[FIRING:1] InstanceDown" in message
    assert "web-1:9100 of job node has been down for more than 1 minute." in message
    assert "http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1" in message
    assert alert["payload"]["sender"] == "alertmanager@monitoring.example.com"


def test_multipart_mail_uses_its_text_part(client, email_integration, token):
    response = post(client, mailgun_body("03-multipart-alternative.eml", token), FORM)

    assert (response.status_code, response.get_json()) == (200, "OK")
    group = only_group(client, email_integration)
    assert group["title"] == "[FIRING:2] High CPU usage Infrastructure"
    [alert] = alerts_of(client, group["id"])
    assert alert["payload"]["message"] == (
        "**Firing**\n\nValue: A=93.17\nLabels:\n - alertname = High CPU usage\n - instance = web-01:9100"
    )


def test_mailgun_parsed_fields_are_accepted(client, email_integration, token):
    """Mailgun's parsed (not MIME) form: an HTML-only body becomes text."""
    fields = {
        "recipient": f"{token}@{DOMAIN}",
        "sender": "bounces@monitoring.example.com",
        "from": f"Zabbix <{SENDER}>",
        "subject": SUBJECT,
        "body-plain": "",
        "body-html": "<p>Disk <b>full</b></p><ul><li>db-1</li></ul>",
        "timestamp": "1796070945",
        "token": "4a3cf138be784366a962d3debb88cca0",
        "signature": "unchecked without TOCSIN_MAILGUN_SIGNING_KEY",
    }

    response = client.post(URL, data=fields)  # application/x-www-form-urlencoded

    assert (response.status_code, response.get_json()) == (200, "OK")
    group = only_group(client, email_integration)
    assert group["title"] == SUBJECT
    [alert] = alerts_of(client, group["id"])
    assert alert["payload"] == {"subject": SUBJECT, "message": "Disk full\n* db-1", "sender": SENDER}


def test_head_answers_200_for_provider_verification(client):
    assert client.head(URL).status_code == 200
    assert client.head(URL + "/").status_code == 200
    assert client.get(URL).status_code == 405


# --- refused mail -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unknown_token_is_refused_with_403(client, email_integration, provider):
    body, content_type = provider_body(provider, "01-plain-text.eml", "NoSuchToken123")

    response = post(client, body, content_type)

    assert response.status_code == 403
    assert response.get_data(as_text=True) == NOT_FOUND_TEXT


@pytest.mark.parametrize("provider", PROVIDERS)
def test_recipient_outside_the_inbound_domain_is_refused_with_400(client, email_integration, token, provider):
    body, content_type = provider_body(provider, "01-plain-text.eml", token)
    body = body.replace(DOMAIN.encode(), b"elsewhere.example")

    response = post(client, body, content_type)

    assert response.status_code == 400
    assert f"No recipient address at {DOMAIN}" in response.get_data(as_text=True)
    send_valid_and_expect_exactly_it(client, email_integration, token)


def test_token_of_another_integration_type_is_refused(client, make_integration):
    webhook = make_integration("webhook")
    webhook_token = webhook["link"].rstrip("/").rpartition("/")[2]
    body, content_type = provider_body("sendgrid", "01-plain-text.eml", webhook_token)

    response = post(client, body, content_type)

    assert response.status_code == 400
    assert response.get_data(as_text=True) == (
        "This url is for integration with Inbound Email. Key is for Webhook"
    )
    assert groups_of(client, webhook["id"]) == []


def test_unrecognised_body_is_refused_with_400(client, email_integration):
    response = client.post(URL, json={"hello": "world"})

    assert response.status_code == 400
    assert "Unrecognised inbound email webhook" in response.get_data(as_text=True)


def send_valid_and_expect_exactly_it(client, integration: dict, token: str) -> None:
    """After refusals: one good mail gives exactly one group with one alert (nothing else got in)."""
    body, content_type = provider_body("sendgrid", "01-plain-text.eml", token)
    assert post(client, body, content_type).status_code == 200
    assert only_group(client, integration)["alerts_count"] == 1


def test_mailgun_signature_is_checked_when_a_signing_key_is_set(client, email_integration, token, monkeypatch):
    monkeypatch.setenv("TOCSIN_MAILGUN_SIGNING_KEY", "key-tocsin-test")
    body = mailgun_body("01-plain-text.eml", token)  # signed with another key

    refused = post(client, body, FORM)

    assert refused.status_code == 403
    assert refused.get_data(as_text=True) == "Mailgun webhook signature is missing or invalid."

    form = email.message_from_bytes(b"Content-Type: " + FORM.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP)
    fields = {part.get_param("name", header="content-disposition"): part.get_content().strip()
              for part in form.iter_parts()}
    signature = hmac.new(b"key-tocsin-test", (fields["timestamp"] + fields["token"]).encode(), hashlib.sha256)
    signed = set_form_field(body, "signature", signature.hexdigest().encode())

    accepted = post(client, signed, FORM)

    assert (accepted.status_code, accepted.get_json()) == (200, "OK")
    assert only_group(client, email_integration)["alerts_count"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_webhook_secret_is_required_when_set(client, email_integration, token, monkeypatch, provider):
    monkeypatch.setenv("TOCSIN_INBOUND_EMAIL_WEBHOOK_SECRET", "s3cret")
    body, content_type = provider_body(provider, "01-plain-text.eml", token)

    assert post(client, body, content_type).status_code == 403
    wrong = post(client, body, content_type, url=URL + "?secret=guess")
    assert wrong.status_code == 403
    assert wrong.get_data(as_text=True) == "Inbound email webhook secret is missing or wrong."

    by_query = post(client, body, content_type, url=URL + "?secret=s3cret")
    basic = "Basic " + base64.b64encode(b"anymail:s3cret").decode()
    by_basic_auth = post(client, body, content_type, headers={"Authorization": basic})

    assert (by_query.status_code, by_query.get_json()) == (200, "OK")
    assert (by_basic_auth.status_code, by_basic_auth.get_json()) == (200, "OK")
    assert only_group(client, email_integration, alerts_count=2)


def test_ses_topic_is_checked_when_configured(client, email_integration, token, monkeypatch):
    monkeypatch.setenv("TOCSIN_SES_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:oncall-inbound")

    foreign = post(client, ses_body("01-plain-text.eml", token, TopicArn="arn:aws:sns:us-east-1:666:evil"),
                   "text/plain; charset=UTF-8")
    assert foreign.status_code == 403
    assert "TOCSIN_SES_TOPIC_ARN" in foreign.get_data(as_text=True)

    ours = post(client, ses_body("01-plain-text.eml", token), "text/plain; charset=UTF-8")
    assert (ours.status_code, ours.get_json()) == (200, "OK")
    assert only_group(client, email_integration)["alerts_count"] == 1


def test_sns_subscription_confirmation_is_answered_and_logged_not_fetched(
    client, email_integration, token, caplog
):
    subscribe_url = (
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
        "arn:aws:sns:us-east-1:123456789012:oncall-inbound&Token=2336412f37"
    )
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:oncall-inbound",
        "Message": "You have chosen to subscribe to the topic ...",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2026-11-30T20:30:00.000Z",
    }
    with caplog.at_level(logging.WARNING, logger="web.inbound_email"):
        response = client.post(URL, data=json.dumps(confirmation), content_type="text/plain; charset=UTF-8",
                               headers={"x-amz-sns-message-type": "SubscriptionConfirmation"})

    assert (response.status_code, response.get_json()) == (200, "OK")
    assert subscribe_url in caplog.text
    send_valid_and_expect_exactly_it(client, email_integration, token)


def test_store_unavailable_answers_503_so_the_provider_retries(client, email_integration, token, runtime, monkeypatch):
    def unavailable(entry):
        raise InboxUnavailable("database is down")

    body, content_type = provider_body("mailgun", "01-plain-text.eml", token)
    with monkeypatch.context() as patch:
        patch.setattr(runtime.committer, "submit", unavailable)
        response = post(client, body, content_type)

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    send_valid_and_expect_exactly_it(client, email_integration, token)
