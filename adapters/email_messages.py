"""Email messages as inbound alerts: MIME parsing, recipients to tokens, the inbox entry.

Shared by the SMTP receiver (``workers/smtp.py``) and the provider webhooks
(``web/inbound_email.py``). Everything from a mail is hostile: undecodable bytes and lone
surrogates become U+FFFD so that any store can keep the text.
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from uuid import UUID

from domain.inbox import KIND_ALERT, ReceivedAlert
from domain.integrations.inbound_email import email_payload

INTEGRATION_TYPE = "inbound_email"


@dataclass(frozen=True)
class InboundEmail:
    subject: str
    text: str
    html: str
    sender: str
    recipients: tuple[str, ...] = ()  # envelope recipients when known, else the To/Cc headers

    def payload(self) -> dict:
        """The alert payload; line breaks are "\n" whatever the transport used (CRLF in mail)."""
        return email_payload(clean(self.subject), _newlines(self.text), _newlines(self.html), clean(self.sender))


def _newlines(text: str) -> str:
    return clean(text).replace("\r\n", "\n").replace("\r", "\n")


def clean(text: str | None) -> str:
    """Text any store can keep: undecodable bytes the email package kept as surrogates → U+FFFD."""
    if not text:
        return ""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _part_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset, odd transfer encoding
        raw = part.get_payload(decode=True) or b""
        return raw.decode("utf-8", "replace")


def address_of(value: str | None) -> str:
    """The bare address in ``Name <user@host>`` (or the value itself when it is one)."""
    if not value:
        return ""
    addresses = [addr for _, addr in getaddresses([value]) if addr]
    return addresses[0] if addresses else parseaddr(value)[1]


# What the standard library's header parser raises on some defective headers (a bug of its own).
HEADER_PARSE_ERRORS = (IndexError, ValueError, TypeError, AttributeError, LookupError)


def _raw_header(message: EmailMessage, name: str) -> str:
    """The first ``name`` header as it was sent (unfolded), without the parser."""
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            return " ".join(str(value).split())
    return ""


def parse_mime(raw: bytes, envelope_sender: str | None = None, recipients: tuple[str, ...] = ()) -> InboundEmail:
    """A raw RFC 5322 message: subject, the text/plain and text/html bodies, the From address."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    sender = ""
    try:
        from_header = message["From"]
        if from_header is not None:
            addresses = getattr(from_header, "addresses", ())
            sender = addresses[0].addr_spec if addresses else address_of(str(from_header))
    except HEADER_PARSE_ERRORS:  # a defective From header
        sender = address_of(_raw_header(message, "From"))
    if "@" not in sender and envelope_sender:
        sender = envelope_sender
    if not recipients:
        # Unparsed: the header parser fails on some defective address lists; these are only read
        # for their addresses.
        headers = [clean(value) for name, value in message.raw_items() if name.lower() in ("to", "cc")]
        recipients = tuple(addr for _, addr in getaddresses(headers) if addr)
    try:
        subject = str(message.get("Subject", "") or "")
    except HEADER_PARSE_ERRORS:
        subject = _raw_header(message, "Subject")
    return InboundEmail(
        subject=clean(subject),
        text=clean(_part_text(message, "plain")),
        html=clean(_part_text(message, "html")),
        sender=clean(sender),
        recipients=recipients,
    )


def alert_entry(integration: dict, payload: dict) -> ReceivedAlert:
    """The inbox entry for one email to one integration (committed before anyone answers)."""
    return ReceivedAlert(
        integration_id=UUID(integration["uuid"]),
        kind=KIND_ALERT,
        payload_json=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        received_at=datetime.now(timezone.utc),
    )


def token_for(recipients: tuple[str, ...] | list[str], domain: str | None) -> str | None:
    """The local part of the first recipient at ``domain`` (any domain when it is not set)."""
    for recipient in recipients:
        local, at, host = address_of(recipient).rpartition("@")
        if at and local and (domain is None or host.lower() == domain.lower()):
            return clean(local)  # a lone surrogate (from a JSON escape) could not even be looked up
    return None
