"""Senders for personal notifications: email (SMTP), a generic webhook (JSON POST) and Apprise.

Pure I/O: each sender takes an address and a message, tries once within ``SEND_TIMEOUT`` per
request (OnCall's 4 s for webhooks), and says what happened: ``sent``, a ``transient`` failure
(worth retrying: the network, a timeout, a 5xx, 408 or 429, an SMTP 4xx) or a ``permanent`` one
(not worth retrying: a refused address, a malformed URL, another 4xx, an SMTP 5xx), with a
reason a person can read. Deciding whom to notify, when, and what to do after a failure is not
done here.

The generic webhook and Apprise (whatever service its URL names) go through the outgoing-address
guard (``adapters.http_guard``). Apprise services that do not speak HTTP through ``requests``
(SMTP, MQTT, XMPP, IRC, syslog, desktop notifications, ...) open sockets the guard does not see,
or act on the server itself, so their URLs are refused when saved, as are the URL parameters
through which some Apprise services read a file from the server's disk. The SMTP server is the
operator's setting (``TOCSIN_SMTP_URL``), so email is not guarded.
"""

from __future__ import annotations

import functools
import logging
import re
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qsl, unquote, urlsplit

import requests

from adapters.http_guard import GuardRecord, OutgoingPolicy, guarded
from adapters.render_pool import Done, Failed, RenderPool, Stopped
from domain.notification_rules import notification_message

SEND_TIMEOUT = 4.0  # seconds per request, OnCall's OUTGOING_WEBHOOK_TIMEOUT
MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 5
MAX_REASON_LENGTH = 300
MASK = "****************"  # OnCall's mask for secrets

SENT, TRANSIENT, PERMANENT = "sent", "transient", "permanent"
# Each delivery attempt's id goes with what is sent (an email header, a webhook field or header): a
# receiver that sees the same id twice got one attempt twice (which the delivery's claim prevents).
ATTEMPT_HEADER = "X-Tocsin-Attempt"
STRICT = OutgoingPolicy()  # no internal address at all


@dataclass(frozen=True)
class SendResult:
    outcome: str  # SENT, TRANSIENT or PERMANENT
    reason: str = ""

    @property
    def sent(self) -> bool:
        return self.outcome == SENT


def _sent() -> SendResult:
    return SendResult(SENT)


def _transient(reason: str) -> SendResult:
    return SendResult(TRANSIENT, reason[:MAX_REASON_LENGTH])


def _permanent(reason: str) -> SendResult:
    return SendResult(PERMANENT, reason[:MAX_REASON_LENGTH])


def _status_outcome(status: int) -> str:
    if 200 <= status < 300:
        return SENT
    return TRANSIENT if status >= 500 or status in (408, 429) else PERMANENT


class InvalidAddress(ValueError):
    """A channel address that cannot be used; the text says why, for a 400."""


def _plain_url(url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidAddress(f"Ensure this URL has no more than {MAX_URL_LENGTH} characters.")
    if any(not c.isprintable() or c.isspace() for c in url):
        raise InvalidAddress("A URL may not contain spaces or control characters.")


# --- email ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: str  # "none", "starttls" or "tls"
    username: str | None
    password: str | None
    sender: str


_TRUE = ("1", "true", "yes", "on")


def parse_smtp_url(url: str) -> SmtpServer:
    """``smtp://[user:pass@]host[:port][?starttls=true][&from=addr]`` (port 25, or 587 with
    STARTTLS) or ``smtps://...`` (TLS from the start, port 465). The sender (``from``)
    defaults to ``tocsin@<host>``. Raises ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("TOCSIN_SMTP_URL must look like smtp://user:pass@host:port or smtps://...")
    options = {key.lower(): value for key, value in parse_qsl(parts.query)}
    starttls = options.get("starttls", "").lower() in _TRUE
    security = "tls" if parts.scheme == "smtps" else "starttls" if starttls else "none"
    try:
        port = parts.port or {"tls": 465, "starttls": 587, "none": 25}[security]
    except ValueError:
        raise ValueError("TOCSIN_SMTP_URL has an invalid port") from None
    return SmtpServer(
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=options.get("from") or f"tocsin@{parts.hostname}",
    )


def email_message(to: str, subject: str, text: str, sender: str | None = None) -> EmailMessage:
    """A plain-text message; the sender defaults to the SMTP setting's when sent."""
    message = EmailMessage()
    # Header values may not span lines: a title with line breaks would inject headers.
    message["Subject"] = " ".join(subject.split())
    message["To"] = to
    if sender:
        message["From"] = sender
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="tocsin")
    # Lines as written, not quoted-printable: a long link (an action link) stays one line a person
    # can copy from any mail viewer. 8bit needs lines of at most 998 bytes; longer ones are encoded.
    if all(len(line.encode()) <= 998 for line in text.splitlines()):
        message.set_content(text, cte="7bit" if text.isascii() else "8bit")
    else:
        message.set_content(text)
    return message


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The client TLS context, made once per process: loading the CA certificates costs some 20 ms
    of CPU, which every email paid (measured: two thirds of a worker's time per email)."""
    return ssl.create_default_context()


def send_email(smtp_url: str | None, message: EmailMessage, timeout: float = SEND_TIMEOUT) -> SendResult:
    if not smtp_url:
        return _permanent("no SMTP server is configured (TOCSIN_SMTP_URL)")
    try:
        server = parse_smtp_url(smtp_url)
    except ValueError as invalid:
        return _permanent(str(invalid))
    if "From" not in message:
        message["From"] = server.sender
    try:
        if server.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=_tls_context())
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with smtp:
            if server.security == "starttls":
                smtp.starttls(context=_tls_context())
            if server.username:
                smtp.login(server.username, server.password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        return _smtp_refusal(exc.recipients)
    except smtplib.SMTPResponseException as exc:
        text = f"SMTP {exc.smtp_code}: {_smtp_text(exc.smtp_error)}"
        return _transient(text) if 400 <= exc.smtp_code < 500 else _permanent(text)
    except smtplib.SMTPNotSupportedError as exc:  # e.g. no STARTTLS offered: a setting to fix
        return _permanent(f"SMTP: {exc}")
    except ssl.SSLError as exc:
        return _permanent(f"SMTP TLS: {exc}")
    except (smtplib.SMTPException, OSError) as exc:
        return _transient(f"SMTP: {exc or type(exc).__name__}")
    if refused:
        return _smtp_refusal(refused)
    return _sent()


def _smtp_text(error: bytes | str) -> str:
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)


def _smtp_refusal(recipients: dict) -> SendResult:
    """Refused recipients: transient if any refusal was a 4xx (try again later)."""
    codes = [code for code, _ in recipients.values()]
    text = "; ".join(f"{to}: SMTP {code} {_smtp_text(error)}" for to, (code, error) in recipients.items())
    return _transient(text) if any(400 <= code < 500 for code in codes) else _permanent(text)


# --- generic webhook ------------------------------------------------------------------------------


def check_webhook_url(url: str, policy: OutgoingPolicy) -> str:
    """A webhook address as it is shown to its owner and admins (scheme and host; the path and
    query, which often hold a secret, masked). Raises ``InvalidAddress``."""
    _plain_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidAddress("Enter a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidAddress("Enter a valid URL.")
    refusal = policy.literal_refusal(parts.hostname)
    if refusal is not None:
        raise InvalidAddress(f"This address is not allowed: {refusal}.")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    hidden = parts.path.strip("/") or parts.query or parts.username
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/{MASK if hidden else ''}"


def send_webhook(
    url: str, payload: object, *, policy: OutgoingPolicy = STRICT, timeout: float = SEND_TIMEOUT
) -> SendResult:
    """POST ``payload`` as JSON; redirects are followed (at most 5), each one guarded."""
    try:
        check_webhook_url(url, policy)
    except InvalidAddress as invalid:
        return _permanent(str(invalid))
    with guarded(policy) as record, requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the guard checks the real peer
        session.max_redirects = MAX_REDIRECTS
        try:
            response = session.post(url, json=payload, timeout=timeout, stream=True)
            response.close()  # the answer's body is not needed; do not wait for it
        except requests.exceptions.SSLError as exc:
            return _permanent(f"TLS: {_first_line(exc)}")
        except requests.exceptions.TooManyRedirects:
            return _permanent(f"more than {MAX_REDIRECTS} redirects")
        except requests.exceptions.RequestException as exc:
            return _network_failure(record, exc)
    outcome = _status_outcome(response.status_code)
    if outcome == SENT:
        return _sent()
    return SendResult(outcome, f"HTTP {response.status_code} {response.reason or ''}".strip())


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _network_failure(record: GuardRecord, exc: BaseException) -> SendResult:
    if record.refusals and not isinstance(exc, requests.exceptions.Timeout):
        return _permanent(f"refused: {record.refusals[-1]}")
    if isinstance(exc, requests.exceptions.Timeout):
        return _transient(f"timed out after {SEND_TIMEOUT:g} s")
    return _transient(f"connection failed: {_first_line(exc)}")


# --- Apprise --------------------------------------------------------------------------------------

# Apprise services that do not send through ``requests`` (checked against the installed Apprise
# by tests/unit/test_notification_channels.py): raw sockets, or the server's own desktop and logs.
NOT_HTTP_SCHEMES = frozenset({
    "amqp", "amqps", "aprs", "blink1", "dbus", "kde", "qt", "deltachat", "deltachats", "mailto",
    "mailtos", "gio", "glib", "gnome", "growl", "irc", "ircs", "macosx", "mqtt", "mqtts", "rsyslog",
    "smpp", "smpps", "syslog", "windows", "xmpp", "xmpps",
})  # fmt: skip
# URL parameters through which Apprise services read a file on the server (a template, a key).
FILE_PARAMETERS = frozenset({"template", "keyfile", "subfile", "pgpprv", "pgppub"})
# How Apprise names such a parameter (some services call an ID ``template``).
NAMES_A_FILE = re.compile(r"\b(path|file|keyfile)\b", re.IGNORECASE)
# Apprise also takes some services' own web addresses (https://hooks.slack.com/services/...).
NATIVE_SCHEMES = ("http", "https")


def _is_file_parameter(plugin_class, key: str) -> bool:
    if key not in FILE_PARAMETERS:
        return False
    spec = getattr(plugin_class, "template_args", {}).get(key) if plugin_class is not None else None
    return spec is None or bool(NAMES_A_FILE.search(str(spec.get("name", ""))))


def _apprise_plugin(url: str):
    """The Apprise service object for ``url``; raises ``InvalidAddress``."""
    import apprise
    from apprise.manager_plugins import NotificationManager

    _plain_url(url)
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    if not separator or not scheme:
        raise InvalidAddress("Enter an Apprise URL, such as tgram://bottoken/ChatID.")
    plugins = NotificationManager()
    if scheme not in plugins and scheme not in NATIVE_SCHEMES:
        raise InvalidAddress(f'Apprise does not support "{scheme[:30]}://" URLs.')
    if scheme in NOT_HTTP_SCHEMES:
        raise InvalidAddress(
            f'"{scheme}://" URLs are not accepted: they do not send over HTTP, where outgoing addresses are checked.'
        )
    # A native URL's service is known only once Apprise has parsed it: refuse every file parameter.
    plugin_class = None if scheme in NATIVE_SCHEMES else plugins[scheme]
    for key, _ in parse_qsl(url.partition("?")[2], keep_blank_values=True):
        if _is_file_parameter(plugin_class, key.lower()):
            raise InvalidAddress(f'The "{key}" parameter is not accepted: it reads a file on the server.')
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise InvalidAddress(f'Apprise cannot use this "{scheme}://" URL: check its parts against the service\'s URL format.')
    if not getattr(plugin, "enabled", True):
        raise InvalidAddress(f'"{scheme}://" needs a library this server does not have.')
    return plugin


def check_apprise_url(url: str) -> str:
    """An Apprise URL as shown to its owner and admins (Apprise's privacy form, secrets cut to
    their first and last characters). Raises ``InvalidAddress`` with what is wrong."""
    plugin = _apprise_plugin(url)
    return plugin.url(privacy=True).split("?", 1)[0]


class _ThreadWarnings(logging.Handler):
    """Apprise reports why a send failed only in its log: keep this thread's warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


_HTTP_STATUS = re.compile(r"\berror[=: ]\s*(\d{3})\b", re.IGNORECASE)


def send_apprise(
    url: str,
    title: str,
    body: str,
    *,
    body_format: str = "text",
    policy: OutgoingPolicy = STRICT,
    timeout: float = SEND_TIMEOUT,
) -> SendResult:
    """Send through the Apprise service ``url`` names. ``body_format`` is "text", "markdown" or
    "html"; Apprise converts it to what the service takes.

    Apprise answers only success or failure. The reason is the last warning it logged; an HTTP
    status it names there that is a client error (other than 408 and 429) makes the failure
    permanent, as does a refused address; anything else is transient.
    """
    import apprise

    try:
        plugin = _apprise_plugin(url)
    except InvalidAddress as invalid:
        return _permanent(str(invalid))
    # At most our timeout per request, whatever the URL's cto/rto say.
    plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout or timeout), timeout)
    plugin.socket_read_timeout = min(float(plugin.socket_read_timeout or timeout), timeout)
    warnings = _ThreadWarnings()
    logger = logging.getLogger(apprise.LOGGER_NAME)
    logger.addHandler(warnings)
    try:
        with guarded(policy) as record:
            try:
                ok = plugin.notify(body=body or " ", title=title, body_format=body_format)
            except (requests.RequestException, OSError, ValueError, TypeError, LookupError, AttributeError) as exc:
                # A service's defect (Apprise catches what the network raises) is reported, not raised.
                return _transient(f"{plugin.service_name}: {type(exc).__name__}: {exc}")
    finally:
        logger.removeHandler(warnings)
    if ok:
        return _sent()
    reason = warnings.messages[-1] if warnings.messages else f"{plugin.service_name} did not accept the notification"
    if record.refusals:
        return _permanent(f"refused: {record.refusals[-1]}")
    status = _HTTP_STATUS.search(reason)
    if status and _status_outcome(int(status.group(1))) == PERMANENT:
        return _permanent(reason)
    return _transient(reason)


# --- message content ------------------------------------------------------------------------------

_STOP_CAUSES = {"time": "took longer than {limit:g}s", "memory": "needed more than {memory} MiB of memory"}


def render_message(
    pool: RenderPool,
    *,
    type_slug: str,
    templates: dict,
    payload: object,
    channel: str,
    integration_name: str,
    alert_group_number: int | None = None,
    link: str | None = None,
    fallback_title: str = "",
) -> dict[str, str]:
    """``domain.notification_rules.notification_message`` in a render worker, under the hard
    limits ingest renders under. A render that is stopped or fails still gives a message, so the
    person is notified: the group's title (``fallback_title``, as ingest recorded it) and the
    error as the body."""
    outcome = pool.run_one(
        notification_message, type_slug, templates, payload, channel, integration_name, alert_group_number, link
    )
    if isinstance(outcome, Done):
        return outcome.value
    if isinstance(outcome, Stopped):
        memory = (pool.memory_limit or 0) // (1024 * 1024)
        cause = _STOP_CAUSES.get(outcome.reason, "crashed its render process").format(limit=pool.hard_limit, memory=memory)
        error = f"Template Error: Template rendering was stopped: it {cause}"
    else:
        error = f"Template Error: {outcome.error if isinstance(outcome, Failed) else outcome}"
    title = fallback_title or f"Alert group from {integration_name}"
    return {"title": title, "body": f"{title}\n\n{error}", "format": "text"}
