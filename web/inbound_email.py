"""Inbound email through a provider's inbound-parse webhook (OnCall's InboundEmailWebhookView).

``POST /integrations/v1/inbound_email_webhook`` takes what Mailgun, SendGrid or Amazon SES (via
SNS) post for a received message. The integration is the local part of the first recipient at
``TOCSIN_INBOUND_EMAIL_DOMAIN``; the alert payload is ``{"subject", "message", "sender"}``, built
by the ``inbound_email`` integration type. As every inbound URL: thin, and 200 only after the
commit. The MIME parsing here is shared with the SMTP receiver (``workers/smtp.py``).

Checks, each only when its variable is set:

* ``TOCSIN_INBOUND_EMAIL_WEBHOOK_SECRET``: every request, whatever the provider, must carry it as
  ``?secret=...`` or as the password of HTTP basic auth (else 403).
* ``TOCSIN_MAILGUN_SIGNING_KEY``: Mailgun's signature, HMAC-SHA256 of timestamp + token (else 403).
* ``TOCSIN_SES_TOPIC_ARN``: the SNS message's ``TopicArn`` (else 403). SNS message signatures are
  not verified: that needs Amazon's signing certificate, fetched over the internet from the URL
  the message names. Use the topic check together with the secret in the subscription URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from email.utils import getaddresses

from flask import Blueprint, Response, jsonify, request

from adapters.email_messages import (
    INTEGRATION_TYPE,
    InboundEmail,
    address_of,
    alert_entry,
    parse_mime,
    token_for,
)
from web import runtime
from web.errors import load_json
from web.inbound import find_integration

log = logging.getLogger(__name__)

inbound_email = Blueprint("inbound_email", __name__, url_prefix="/integrations/v1")

PROVIDERS = ("mailgun", "sendgrid", "amazon_ses")


# --- messages -----------------------------------------------------------------------------------


# --- the webhook --------------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text

    def response(self) -> Response:
        return Response(self.text, status=self.status, mimetype="text/plain")


class Answered(Exception):
    """Nothing to store, but the provider gets its 200 (SNS subscription handshakes)."""


def _object(value: object, what: str) -> dict:
    """``value`` when it is a JSON object (absent: empty), else a 400 naming the field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused(400, f"{what} must be a JSON object.")
    return value


def _text(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Refused(400, f"{what} must be a string.")


def _addresses(value: object, what: str) -> tuple[str, ...]:
    """One address or a list of them (absent: none)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item for item in value if item)
    raise Refused(400, f"{what} must be an address or a list of addresses.")


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _check_secret() -> None:
    secret = _env("TOCSIN_INBOUND_EMAIL_WEBHOOK_SECRET")
    if secret is None:
        return
    given = request.args.get("secret")
    if given is None and request.authorization is not None:
        given = request.authorization.password
    if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
        raise Refused(403, "Inbound email webhook secret is missing or wrong.")


def _sns_message() -> dict | None:
    """The SNS envelope, when the body is one (SNS posts JSON as text/plain)."""
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return None
    raw = request.get_data(cache=True)
    if not raw.lstrip().startswith(b"{"):
        return None
    try:
        body = load_json(raw)
    except ValueError:  # not JSON, or nested absurdly deep
        return None
    return body if isinstance(body, dict) and "Type" in body and "TopicArn" in body else None


def _provider() -> str:
    chosen = request.args.get("provider")
    if chosen:
        if chosen not in PROVIDERS:
            raise Refused(400, f"Unknown provider {chosen!r}: use one of {', '.join(PROVIDERS)}.")
        return chosen
    if request.headers.get("x-amz-sns-message-type") or _sns_message() is not None:
        return "amazon_ses"
    form = request.form
    if "body-mime" in form or "body-plain" in form or ("recipient" in form and "signature" in form):
        return "mailgun"
    if "envelope" in form or ("to" in form and ("text" in form or "html" in form or "email" in form)):
        return "sendgrid"
    raise Refused(
        400,
        "Unrecognised inbound email webhook: expected Mailgun, SendGrid or Amazon SES (SNS) "
        "fields; name the provider with ?provider=mailgun|sendgrid|amazon_ses.",
    )


def _mailgun() -> InboundEmail:
    form = request.form
    key = _env("TOCSIN_MAILGUN_SIGNING_KEY")
    if key is not None:
        expected = hmac.new(
            key.encode(), (form.get("timestamp", "") + form.get("token", "")).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, form.get("signature", "")):
            raise Refused(403, "Mailgun webhook signature is missing or invalid.")
    recipients = tuple(r.strip() for r in form.get("recipient", "").split(",") if r.strip())
    if "body-mime" in form:
        return parse_mime(form["body-mime"].encode("utf-8", "surrogateescape"), form.get("sender"), recipients)
    return InboundEmail(
        subject=form.get("subject", ""),
        text=form.get("body-plain", ""),
        html=form.get("body-html", ""),
        sender=address_of(form.get("from")) or form.get("sender", ""),
        recipients=recipients or tuple(addr for _, addr in getaddresses([form.get("To", "")]) if addr),
    )


def _sendgrid() -> InboundEmail:
    form = request.form
    recipients: tuple[str, ...] = ()
    envelope_sender = None
    if form.get("envelope"):
        try:
            envelope = _object(load_json(form["envelope"]), "SendGrid envelope")
        except ValueError:
            raise Refused(400, "SendGrid envelope field is not JSON.")
        recipients = _addresses(envelope.get("to"), "SendGrid envelope to")
        envelope_sender = _text(envelope.get("from"), "SendGrid envelope from")
    if not recipients:
        recipients = tuple(addr for _, addr in getaddresses([form.get("to", ""), form.get("cc", "")]) if addr)
    if form.get("email"):  # "POST the raw, full MIME message" enabled
        return parse_mime(form["email"].encode("utf-8", "surrogateescape"), envelope_sender, recipients)
    return InboundEmail(
        subject=form.get("subject", ""),
        text=form.get("text", ""),
        html=form.get("html", ""),
        sender=address_of(form.get("from")) or (envelope_sender or ""),
        recipients=recipients,
    )


def _amazon_ses() -> InboundEmail:
    sns = _sns_message()
    if sns is None:
        raise Refused(400, "Amazon SES webhook body is not an SNS message (JSON with Type and TopicArn).")
    topic = _env("TOCSIN_SES_TOPIC_ARN")
    if topic is not None and sns.get("TopicArn") != topic:
        raise Refused(403, "SNS topic is not the one configured in TOCSIN_SES_TOPIC_ARN.")
    kind = sns.get("Type")
    if kind == "SubscriptionConfirmation":
        # Fetching the URL would confirm it; this server may not reach the internet, the operator can.
        log.warning(
            "Amazon SNS subscription to %s awaits confirmation: open this URL to confirm it: %s",
            sns.get("TopicArn"), sns.get("SubscribeURL"),
        )
        raise Answered()
    if kind == "UnsubscribeConfirmation":
        log.warning("Amazon SNS unsubscribed this endpoint from %s", sns.get("TopicArn"))
        raise Answered()
    if kind != "Notification":
        raise Refused(400, f"Unsupported SNS message type {kind!r}.")
    try:
        notification = load_json(_text(sns.get("Message"), "SNS Message") or "")
    except ValueError:
        raise Refused(400, "SNS Message is not an Amazon SES notification (JSON expected).")
    if not isinstance(notification, dict):
        raise Refused(400, "SNS Message is not an Amazon SES notification (JSON expected).")
    if notification.get("notificationType") != "Received":
        log.info("ignoring Amazon SES notification %r", notification.get("notificationType"))
        raise Answered()  # e.g. the AmazonSnsSubscriptionSucceeded test message
    receipt = _object(notification.get("receipt"), "Amazon SES receipt")
    mail = _object(notification.get("mail"), "Amazon SES mail")
    content = notification.get("content")
    if not isinstance(content, str):
        raise Refused(
            400,
            "The Amazon SES notification carries no message content: deliver it with the receipt "
            "rule's SNS action (messages stored in S3 are not fetched).",
        )
    encoding = str(_object(receipt.get("action"), "Amazon SES receipt action").get("encoding", "UTF8")).upper()
    if encoding == "BASE64":
        try:
            raw = base64.b64decode(content, validate=False)
        except (binascii.Error, ValueError):
            raise Refused(400, "Amazon SES content is not valid base64.")
    else:
        try:
            raw = content.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate from a JSON escape
            raw = content.encode("utf-8", "replace")
    recipients = _addresses(receipt.get("recipients"), "Amazon SES receipt recipients") or _addresses(
        mail.get("destination"), "Amazon SES mail destination"
    )
    envelope_sender = _text(mail.get("source"), "Amazon SES mail source")
    return parse_mime(raw, envelope_sender, recipients)


PARSERS = {"mailgun": _mailgun, "sendgrid": _sendgrid, "amazon_ses": _amazon_ses}


# Two rules rather than strict_slashes=False, so that GET without the slash is a 405 too.
@inbound_email.route("/inbound_email_webhook", methods=["HEAD", "POST"])
@inbound_email.route("/inbound_email_webhook/", methods=["HEAD", "POST"])
def receive_email():
    if request.method == "HEAD":  # providers check that the URL answers
        return Response(status=200)
    # A whole message can be one form field (Mailgun's body-mime): allow it the body limit.
    request.max_form_memory_size = runtime().settings.max_body_bytes
    try:
        _check_secret()
        message = PARSERS[_provider()]()
    except Refused as refused:
        return refused.response()
    except Answered:
        return jsonify("OK")
    domain = runtime().settings.inbound_email_domain
    token = token_for(message.recipients, domain)
    if token is None:
        where = f"at {domain}" if domain else "with a local part"
        return Response(
            f"No recipient address {where}: the integration is named by the local part of "
            f"<token>@{domain or 'TOCSIN_INBOUND_EMAIL_DOMAIN'}.",
            status=400,
            mimetype="text/plain",
        )
    integration, refusal = find_integration(INTEGRATION_TYPE, token)
    if refusal is not None:
        return refusal
    runtime().committer.submit(alert_entry(integration, message.payload()))
    return jsonify("OK")
