"""The SMTP receiver: mail to ``<token>@<TOCSIN_INBOUND_EMAIL_DOMAIN>`` becomes an alert, and a
reply to a notification (``ack+<reply token>@...``) acts on its alert group.

An aiosmtpd server in its own thread (its own asyncio loop). Like the integration URLs it is
thin and durable before acknowledged:

* RCPT: the local part must be the token of an ``inbound_email`` integration and the domain
  ``TOCSIN_INBOUND_EMAIL_DOMAIN`` (compared case-insensitively; any domain when it is unset),
  else ``550 5.1.1 Unknown recipient``. The lookup is the web's cached token directory.
* DATA: a message above ``TOCSIN_MAX_BODY_BYTES`` gets 552 (aiosmtpd's ``data_size_limit``).
  Otherwise it is parsed (subject, text/plain part or text/html turned into text, From address),
  one inbox entry per distinct integration among the accepted recipients is committed through
  the group committer, and only then does the client get 250. If the store cannot take the
  write the answer is ``451`` and the client retries later. While the database is known to be
  unreachable, RCPT answers ``451`` at once.

Replies (``adapters.action_links``): RCPT checks the reply address's signature and expiry
(``550`` when it is not one of ours or has expired). DATA reads the first word of the reply that
is not quoted: "ack" or "acknowledge" acknowledges, "resolve" resolves, as the user the address
was made for if that user still exists and is an editor or admin; 250 once the action is
committed, else ``554`` with the reason (the group's refusal in OnCall's words), so the sender's
bounce says why. A reply never becomes an alert: a message goes either to one reply address or to
integrations, and a recipient of the other kind gets ``452`` (its sender sends it on its own
later). Automatic replies (``Auto-Submitted``, RFC 3834) are taken and do nothing.

Blocking work (the token lookup, the commit) runs in a thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from uuid import UUID

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.action_links import (
    ExpiredToken,
    InvalidToken,
    ReplyToken,
    actor_refusal,
    command_for,
    is_reply_local_part,
    read_reply_token,
    reply_action,
)
from adapters.email_messages import INTEGRATION_TYPE, alert_entry, parse_mime
from adapters.group_commit import InboxUnavailable
from domain.alert_group import ActionRefused
from projections.directory import IntegrationDirectory
from projections.queries import alert_group
from projections.users import user_by_id

log = logging.getLogger(__name__)

UNKNOWN_RECIPIENT = "550 5.1.1 Unknown recipient"
LOOKUP_FAILED = "451 4.3.0 Recipient lookup failed, try again later"
STORE_UNAVAILABLE = "451 4.3.0 The alert could not be stored right now, try again later"
UNPARSABLE = "554 5.6.0 The message could not be read"
ACCEPTED = "250 2.0.0 OK: alert accepted"
REPLY_ALONE = "452 4.5.3 A reply to a notification must travel alone; send this recipient separately"
REPLY_EXPIRED = "550 5.7.1 This reply address expired at {}; use a newer notification"
REPLY_WITHOUT_ACTION = '554 5.6.0 Nothing done: start the reply with "ack", "acknowledge" or "resolve"'
REPLY_AUTOMATIC = "250 2.0.0 OK: automatic replies do nothing"
REPLY_REFUSED = "554 5.7.1 {}"
REPLY_FAILED = "451 4.3.0 The action could not be done right now, try again later"
REPLY_DONE = "250 2.0.0 OK: {} {} by {}"
DONE = {"acknowledge": "acknowledged", "resolve": "resolved"}
READY_TIMEOUT = 5.0


def _smtp_text(text: str) -> str:
    """``text`` fit for an SMTP answer line: ASCII (the receiver does not offer SMTPUTF8), one line."""
    return re.sub(r"[^\x20-\x7e]", "?", text)


def _automatic(raw: bytes) -> bool:
    """An out-of-office or other automatic reply (RFC 3834), which must not act."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = str(headers.get("Auto-Submitted", "no")).strip().lower()
    return value != "no" and value != ""


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:2525`` for IPv6) → (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"TOCSIN_SMTP_ADDRESS must be HOST:PORT, not {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class InboundEmailHandler:
    """aiosmtpd handler hooks; runs on the receiver's event loop."""

    def __init__(self, runtime, executor: ThreadPoolExecutor):
        self.runtime = runtime
        self.executor = executor
        self.domain = runtime.settings.inbound_email_domain
        self.directory = IntegrationDirectory(lambda: runtime.db)

    def _integration(self, address: str) -> dict | None:
        local, at, domain = address.rpartition("@")
        if not at or not local:
            return None
        if self.domain is not None and domain.lower() != self.domain.lower():
            return None
        integration = self.directory.find(local)
        if integration is None or integration["type"] != INTEGRATION_TYPE:
            return None
        return integration

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options):
        if not self.runtime.database_reachable():  # an outage: the client retries later
            return LOOKUP_FAILED
        local, at, domain = address.rpartition("@")
        if at and is_reply_local_part(local):
            return await self._reply_recipient(envelope, address, local, domain, rcpt_options)
        if getattr(envelope, "tocsin_reply", None) is not None:
            return REPLY_ALONE
        loop = asyncio.get_running_loop()
        try:
            integration = await loop.run_in_executor(self.executor, self._integration, address)
        except Exception:
            log.exception("looking up recipient %s failed", address)
            return LOOKUP_FAILED
        if integration is None:
            log.info("refused mail to unknown recipient %s", address)
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        # One alert per integration, even when it is addressed twice.
        integrations = getattr(envelope, "tocsin_integrations", {})
        integrations[integration["uuid"]] = integration
        envelope.tocsin_integrations = integrations  # type: ignore[attr-defined]
        return "250 2.1.5 OK"

    async def _reply_recipient(self, envelope: Envelope, address: str, local: str, domain: str, rcpt_options) -> str:
        if getattr(envelope, "tocsin_integrations", None) or getattr(envelope, "tocsin_reply", None) is not None:
            return REPLY_ALONE
        if self.domain is not None and domain.lower() != self.domain.lower():
            return UNKNOWN_RECIPIENT
        loop = asyncio.get_running_loop()
        settings, now = self.runtime.settings, datetime.now(UTC)
        try:  # reading the secret key may touch the data directory's file: off the event loop
            reply = await loop.run_in_executor(self.executor, read_reply_token, settings, local, now)
        except ExpiredToken as expired:
            log.info("refused a reply to an expired address")
            return REPLY_EXPIRED.format(expired.expires_at.strftime("%Y-%m-%d %H:%M UTC"))
        except InvalidToken:
            log.info("refused a reply to an address that is not ours: %s", address)
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.tocsin_reply = reply  # type: ignore[attr-defined]
        return "250 2.1.5 OK"

    def _act_on_reply(self, reply: ReplyToken, action: str) -> str:
        """Run the reply's action as its user (blocking: in the executor); the SMTP answer."""
        db = self.runtime.db
        user = user_by_id(db, reply.user_id)
        refusal = actor_refusal(user, reply.user_id)
        if refusal is not None:
            return REPLY_REFUSED.format(_smtp_text(refusal))
        group = alert_group(db, reply.group_id)
        if group is None:
            return REPLY_REFUSED.format("No such alert group.")
        username = user["username"]
        try:
            self.runtime.alerting.handle(command_for(action, UUID(group["uuid"]), by=username, at=datetime.now(UTC)))
        except ActionRefused as refused:
            return REPLY_REFUSED.format(_smtp_text(str(refused)))
        log.info("%s %s alert group %s by replying to a notification", username, DONE[action], group["id"])
        return REPLY_DONE.format(group["id"], DONE[action], _smtp_text(username))

    async def _handle_reply(self, envelope: Envelope, reply: ReplyToken) -> str:
        raw = envelope.original_content or b""
        try:
            if _automatic(raw):
                return REPLY_AUTOMATIC
            action = reply_action(parse_mime(raw, envelope.mail_from).payload()["message"])
        except Exception:
            log.exception("could not parse a reply from %s", envelope.mail_from)
            return UNPARSABLE
        if action is None:
            return REPLY_WITHOUT_ACTION
        if not self.runtime.database_reachable():
            return REPLY_FAILED
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, self._act_on_reply, reply, action)
        except Exception:
            log.exception("acting on a reply to alert group %s failed", reply.group_id)
            return REPLY_FAILED

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        reply = getattr(envelope, "tocsin_reply", None)
        if reply is not None:
            return await self._handle_reply(envelope, reply)
        integrations: dict = getattr(envelope, "tocsin_integrations", {})
        try:
            message = parse_mime(envelope.original_content or b"", envelope.mail_from)
            payload = message.payload()
        except Exception:
            log.exception("could not parse a message from %s", envelope.mail_from)
            return UNPARSABLE
        entries = [alert_entry(integration, payload) for integration in integrations.values()]
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(self.executor, self.runtime.committer.submit, entry) for entry in entries),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            # The client retries the whole message; integrations whose entry did commit get it twice
            # (it joins the same alert group: same subject).
            for failure in failures:
                if not isinstance(failure, InboxUnavailable):
                    log.error("storing an email alert failed", exc_info=failure)
            log.warning("event store unavailable: %d of %d email alert(s) not stored", len(failures), len(entries))
            return STORE_UNAVAILABLE
        log.info("email from %s accepted for %d integration(s)", message.sender or envelope.mail_from, len(entries))
        return ACCEPTED


class SMTPReceiver:
    """The SMTP listener. ``start()`` returns once it accepts connections; ``stop()`` closes it."""

    def __init__(self, runtime, address: str | None = None, data_size_limit: int | None = None):
        settings = runtime.settings
        self.host, self.port = parse_address(address or settings.smtp_address)
        self.runtime = runtime
        self.data_size_limit = data_size_limit or settings.max_body_bytes
        self._executor: ThreadPoolExecutor | None = None
        self._controller: Controller | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> None:
        if self._controller is not None:
            return
        # aiosmtpd logs every SMTP command at INFO; keep that for who asks for it explicitly.
        mail_log = logging.getLogger("mail.log")
        if mail_log.level == logging.NOTSET:
            mail_log.setLevel(logging.WARNING)
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tocsin-smtp")
        controller = Controller(
            InboundEmailHandler(self.runtime, self._executor),
            hostname=self.host,
            port=self.port,
            ready_timeout=READY_TIMEOUT,
            server_hostname=self.runtime.settings.inbound_email_domain or "tocsin",
            ident="Tocsin",
            data_size_limit=self.data_size_limit,
        )
        try:
            controller.start()
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._controller = controller
        log.info("SMTP receiver listening on %s", self.address)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
