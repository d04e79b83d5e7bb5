"""Outgoing webhooks (OnCall's ``Webhook`` and ``WebhookResponse``): their settings, which of them an
event fires, the data their templates see, and the HTTP request they make.

A webhook is an aggregate in the configuration store: OnCall's fields, its ``trigger_type`` by
OnCall's public names, and its integration filter (integration ids; empty: every integration).
What one attempt to send it gave (the rendered request as shown, the answer's status and content,
or the error) is a ``WebhookResponse``, an aggregate of its own named by the attempt, so recording
the same attempt twice records it once.

Everything else here is pure and works on plain values: ``webhooks_for`` picks the webhooks an
event fires, ``webhook_context`` builds OnCall's template context (``serialize_event``), and
``render_request`` renders a webhook's trigger, URL, headers and data with the bounded renderer it
is given (``domain.templating`` in this process, or render workers with hard limits:
``adapters.webhook_sender.bounded_renderer``). Sending is ``adapters.webhook_sender``'s.

Secrets (``password``, ``authorization_header``) live only in the events and the aggregate. Read
models hold the mask instead, so settings read from them cannot send: ``render_request`` refuses
a masked secret. Load ``Configuration.webhook_settings`` for the request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import retry

from domain.ids import public_id
from domain.templating import (
    TRUNCATION_MARK,
    TemplateError,
    TemplateWarning,
    apply_template,
    fallback_text,
)
from domain.users import CLAIM_TEAM_NAME, claim_names

CONFLICT_RETRY = {"max_attempts": 20, "wait": 0.005, "stall": 0.0}

PREFIX_WEBHOOK = "WH"  # OnCall's prefix
MASK = "****************"  # OnCall's WEBHOOK_FIELD_PLACEHOLDER

# OnCall's public trigger names (``Webhook.PUBLIC_TRIGGER_TYPES_MAP``), in OnCall's order.
ESCALATION = "escalation"
ALERT_GROUP_CREATED = "alert group created"
ACKNOWLEDGE = "acknowledge"
RESOLVE = "resolve"
SILENCE = "silence"
UNSILENCE = "unsilence"
UNRESOLVE = "unresolve"
UNACKNOWLEDGE = "unacknowledge"
STATUS_CHANGE = "status change"
PERSONAL_NOTIFICATION = "personal notification"
TRIGGER_TYPES = (
    ESCALATION, ALERT_GROUP_CREATED, ACKNOWLEDGE, RESOLVE, SILENCE, UNSILENCE, UNRESOLVE, UNACKNOWLEDGE,
    STATUS_CHANGE, PERSONAL_NOTIFICATION,
)  # fmt: skip
# The actions a "status change" webhook fires for (OnCall's STATUS_CHANGE_TRIGGERS).
STATUS_CHANGE_TRIGGERS = frozenset({ACKNOWLEDGE, RESOLVE, SILENCE, UNSILENCE, UNRESOLVE, UNACKNOWLEDGE})
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")  # OnCall's PUBLIC_WEBHOOK_HTTP_METHODS
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})

# What a response keeps (OnCall's WEBHOOK_RESPONSE_LIMIT for the content; the rendered data and
# the event data, which OnCall keeps whole, are cut at the same size here: they go into events).
RESPONSE_LIMIT = 50_000

# A webhook's settings, by OnCall's public field names (``is_webhook_enabled``, ``forward_all``).
SETTINGS = (
    "name", "team_id", "is_webhook_enabled", "trigger_type", "http_method", "url", "headers", "data",
    "trigger_template", "username", "password", "authorization_header", "forward_all", "integration_filter",
)  # fmt: skip
SECRETS = ("password", "authorization_header")
DEFAULTS = {
    "team_id": None, "is_webhook_enabled": True, "headers": None, "data": None, "trigger_template": None,
    "username": None, "password": None, "authorization_header": None, "forward_all": True,
    "integration_filter": [],
}  # fmt: skip


@dataclass(frozen=True)
class WebhookSettings:
    """A webhook as ``render_request`` and ``webhooks_for`` take it (plain values, picklable)."""

    id: UUID
    name: str
    trigger_type: str
    http_method: str
    url: str
    is_webhook_enabled: bool = True
    team_id: UUID | None = None
    headers: str | None = None
    data: str | None = None
    trigger_template: str | None = None
    username: str | None = None
    password: str | None = None
    authorization_header: str | None = None
    forward_all: bool = True
    integration_filter: tuple[UUID, ...] = ()

    @property
    def public_id(self) -> str:
        return public_id(PREFIX_WEBHOOK, self.id)

    @classmethod
    def from_settings(cls, webhook_id: UUID, settings: Mapping[str, Any]) -> WebhookSettings:
        values = {name: settings[name] for name in SETTINGS if name in settings}
        values["integration_filter"] = tuple(values.get("integration_filter") or ())
        return cls(id=webhook_id, **values)


def shown_secret(value: str | None) -> str | None:
    """A secret as the API and read models show it: OnCall's mask when set."""
    return MASK if value else value


class Webhook(Aggregate):
    """One outgoing webhook; ``settings`` holds ``SETTINGS`` (integration and team ids as UUIDs)."""

    @event("Created")
    def __init__(self, settings: dict, created_at: datetime):
        self.settings = {**DEFAULTS, **settings}
        self.created_at = created_at
        self.deleted = False

    @event("Changed")
    def _changed(self, changes: dict) -> None:
        self.settings.update(changes)

    def change(self, changes: Mapping[str, Any]) -> bool:
        """Record what differs from the settings (secrets and all); False if nothing does."""
        differing = {name: value for name, value in changes.items() if self.settings.get(name) != value}
        if differing:
            self._changed(changes=differing)
        return bool(differing)

    @event("Deleted")
    def delete(self, at: datetime) -> None:
        self.deleted = True

    def to_settings(self) -> WebhookSettings:
        return WebhookSettings.from_settings(self.id, self.settings)


class WebhookResponse(Aggregate):
    """What one attempt to send a webhook gave (OnCall's ``WebhookResponse`` row), named by the
    attempt: a second record of the same attempt has the same id, and is not saved again."""

    @event("Recorded")
    def __init__(self, attempt_id: str | UUID, webhook_id: UUID, record: dict):
        self.attempt_id = attempt_id
        self.webhook_id = webhook_id
        self.record = record

    @staticmethod
    def create_id(attempt_id: str | UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/webhook-attempts/{attempt_id}")


# --- which webhooks an event fires ----------------------------------------------------------------


def filter_allows(webhook: WebhookSettings, integration_id: UUID | None) -> bool:
    """OnCall's ``check_integration_filter``: no filter lets every integration through."""
    return not webhook.integration_filter or integration_id in webhook.integration_filter


def webhooks_for(
    trigger: str, integration_id: UUID | None, webhooks: Iterable[WebhookSettings]
) -> list[WebhookSettings]:
    """The webhooks an event fires, in the order given: enabled ones whose trigger is ``trigger``
    (or "status change", for the actions it covers) and whose integration filter lets
    ``integration_id`` through. An escalation step or a personal notification names its webhook
    instead; that one still goes through ``filter_allows``."""
    if trigger not in TRIGGER_TYPES or trigger == STATUS_CHANGE:
        raise ValueError(f"not an event's trigger: {trigger!r}")
    fired = {trigger, STATUS_CHANGE} if trigger in STATUS_CHANGE_TRIGGERS else {trigger}
    return [
        webhook for webhook in webhooks
        if webhook.is_webhook_enabled and webhook.trigger_type in fired and filter_allows(webhook, integration_id)
    ]  # fmt: skip


# --- OnCall's template context ------------------------------------------------------------------


def event_user(user_id: str, username: str, email: str | None) -> dict:
    """A user as the context shows one (OnCall's ``_serialize_event_user``)."""
    return {"id": user_id, "username": username, "email": email}


def _oncall_time(value: str | datetime | None) -> str | None:
    """OnCall's ``event.time``: Python's isoformat of an aware time (``...+00:00``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value[:-1] + "+00:00" if value.endswith("Z") else value


# The alert group's time each event shows (OnCall's ``_build_payload``).
_EVENT_TIMES = {
    ALERT_GROUP_CREATED: "created_at",
    ACKNOWLEDGE: "acknowledged_at",
    RESOLVE: "resolved_at",
    SILENCE: "silenced_at",
}


def _labels(labels: Any) -> dict:
    """Alert group labels as the context shows them: ``{key: value}`` (the API shows a list)."""
    if isinstance(labels, dict):
        return dict(labels)
    shown = {}
    for label in labels or ():
        try:
            shown[label["key"]["name"]] = label["value"]["name"]
        except (KeyError, TypeError):
            continue
    return shown


def webhook_context(
    trigger: str,
    *,
    alert_group: Mapping[str, Any],
    integration: Mapping[str, Any],
    webhook: Mapping[str, Any] | None = None,
    alert_payload: Any = "",
    user: Mapping[str, Any] | None = None,
    at: str | datetime | None = None,
    notified_users: Iterable[Mapping[str, Any]] = (),
    users_to_be_notified: Iterable[Mapping[str, Any]] = (),
    acknowledged_by: Mapping[str, Any] | None = None,
    resolved_by: Mapping[str, Any] | None = None,
    responses: Mapping[str, Any] | None = None,
    personal_context: Any = None,
) -> dict:
    """OnCall's event data for one webhook and one event (``serialize_event``), from plain values.

    ``trigger`` is the event's own trigger (a "status change" webhook sees the action, e.g.
    "acknowledge"). ``alert_group`` is the alert group as the public API shows it; ``integration``
    ``{"id", "type", "name", "team"}`` (team by name); ``webhook`` ``{"id", "name"}``;
    ``alert_payload`` the first alert's payload ("" when there is none); users as ``event_user``
    makes them. The event's time is the alert group's time for that event unless ``at`` is given;
    a silence also shows ``until``, a personal notification its ``personal_context`` as
    ``event.user``. ``responses`` (by webhook id: the latest content of each other webhook for
    this alert group) is shown only when there are some, as in OnCall. Labels are shown as OnCall
    shows them with labels on: ``{key: value}`` (none for integrations and webhooks here).
    """
    if trigger not in TRIGGER_TYPES or trigger == STATUS_CHANGE:
        raise ValueError(f"not an event's trigger: {trigger!r}")
    event: dict[str, Any] = {"type": trigger}
    if at is not None or trigger in _EVENT_TIMES:
        event["time"] = _oncall_time(at if at is not None else alert_group.get(_EVENT_TIMES[trigger]))
    if trigger == SILENCE:
        event["until"] = _oncall_time(alert_group.get("silenced_until"))
    if trigger == PERSONAL_NOTIFICATION:
        event["user"] = personal_context
    shown_group = {**alert_group, "labels": _labels(alert_group.get("labels"))}
    data: dict[str, Any] = {
        "event": event,
        "user": dict(user) if user else None,
        "alert_group": shown_group,
        "alert_group_id": alert_group.get("id"),
        "alert_payload": alert_payload,
        "integration": {name: integration.get(name) for name in ("id", "type", "name", "team")} | {"labels": {}},
        "notified_users": _distinct_users(notified_users),
        "users_to_be_notified": _distinct_users(users_to_be_notified),
    }
    if responses:
        data["responses"] = dict(responses)
    if webhook is not None:
        data["webhook"] = {"id": webhook.get("id"), "name": webhook.get("name"), "labels": {}}
    data["alert_group_acknowledged_by"] = dict(acknowledged_by) if acknowledged_by else None
    data["alert_group_resolved_by"] = dict(resolved_by) if resolved_by else None
    return data


def _distinct_users(users: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Each user once, in first-seen order (OnCall sets them by id)."""
    seen: dict[Any, dict] = {}
    for user in users:
        if user:
            seen.setdefault(user.get("id"), dict(user))
    return list(seen.values())


# --- rendering the request ----------------------------------------------------------------------

Render = Callable[[str, dict], str]


def render_in_process(source: str, context: dict) -> str:
    """The bounded renderer in this process (``domain.templating``'s budget and size guards)."""
    return apply_template(source, **context)


def render_outcome(source: str, context: dict) -> tuple[str, str]:
    """``render_in_process`` as a value, for a render worker to send back: ("ok", text),
    ("warning", message) or ("error", message)."""
    try:
        return "ok", render_in_process(source, context)
    except TemplateWarning as exc:
        return "warning", str(exc)
    except TemplateError as exc:
        return "error", str(exc)


class _JsonEscapedDict(dict):
    """OnCall's ``EscapeDoubleQuotesDict``: shown whole (``{{ alert_payload }}``) inside a JSON
    string literal, its double quotes are escaped, so the data stays JSON."""

    def __str__(self) -> str:
        text = super().__str__()
        return re.sub(r'(?<!\\)"', r'\\"', text) if '"' in text else text


def json_escaped(value: Any) -> Any:
    """OnCall's ``escape_payload`` for the headers and data templates: every string escaped as
    inside a JSON string literal (without the quotes), dicts shown with escaped quotes."""
    if isinstance(value, dict):
        return _JsonEscapedDict({key: json_escaped(item) for key, item in value.items()})
    if isinstance(value, list):
        return [json_escaped(item) for item in value]
    if isinstance(value, str):
        return json.dumps(value)[1:-1]
    return value


@dataclass(frozen=True)
class WebhookRequest:
    """A rendered request, ready to send, and how its response shows it (``request_*``)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None  # None: no body (GET, DELETE, OPTIONS, or nothing to send)
    basic_auth: tuple[str, str] | None = None
    request_trigger: str | None = None  # what the trigger template rendered (None: no template)
    request_data: str | None = None  # the body as the response shows it

    @property
    def request_headers(self) -> str:
        """The headers as the response shows them: ``Authorization`` masked."""
        return json.dumps(masked_headers(self.headers))


@dataclass(frozen=True)
class NotTriggered:
    """The trigger template said no: nothing is sent and nothing recorded (OnCall logs it only)."""

    request_trigger: str


@dataclass(frozen=True)
class RequestFailed:
    """A template or the rendered URL or headers failed: nothing is sent, the failure is recorded
    (``error`` with OnCall's prefix, e.g. "URL - Template Error: ..."), with what was rendered."""

    error: str
    url: str | None = None
    request_trigger: str | None = None
    request_headers: str | None = None
    request_data: str | None = None


Rendered = WebhookRequest | NotTriggered | RequestFailed


class _Refused(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


_PREFIXES = {"url": "URL", "request_trigger": "Trigger", "request_headers": "Headers", "request_data": "Data"}
# RFC 9110 field names; values may not break lines (header injection) or hold NUL.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
MAX_HEADERS = 100


def _rendered(render: Render, source: str, context: dict, field: str) -> str:
    try:
        return render(source, context)
    except (TemplateError, TemplateWarning) as exc:
        raise _Refused(field, fallback_text(exc)) from None


def _checked_url(url: str, self_url: str | None) -> str:
    """OnCall's ``parse_url`` checks that need no network: http(s) with a host, and not Tocsin
    itself. Where the address may go is the sender's check, made on each connection."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port that is not a number is a malformed URL)
    except ValueError:
        raise _Refused("url", "Malformed url") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
        raise _Refused("url", "Malformed url")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise _Refused("url", "Malformed url")
    if self_url and self_url in url:
        raise _Refused("url", "Potential self-reference")
    return url


def _checked_headers(rendered: str) -> dict[str, str]:
    try:
        headers = json.loads(rendered)
    except (ValueError, RecursionError):
        raise _Refused("request_headers", "Template did not result in json/dict") from None
    if not isinstance(headers, dict):
        raise _Refused("request_headers", "Template did not result in json/dict")
    if len(headers) > MAX_HEADERS:
        raise _Refused("request_headers", f"At most {MAX_HEADERS} headers")
    checked = {}
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise _Refused("request_headers", f"Invalid header name {name[:100]!r}")
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            raise _Refused("request_headers", f"Header {name!r} must be a string or a number")
        text = value if isinstance(value, str) else json.dumps(value)
        if _HEADER_VALUE_FORBIDDEN.search(text):
            raise _Refused("request_headers", f"Header {name!r} may not contain line breaks or NUL")
        checked[name] = text.strip()
    return checked


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """OnCall's ``mask_authorization_header``: the ``Authorization`` header (any case) masked."""
    return {name: MASK if name.lower() == "authorization" else value for name, value in headers.items()}


def _no_constants(name: str) -> None:
    raise ValueError(name)  # NaN and Infinity are not JSON: such data is sent as text


def _body(webhook: WebhookSettings, context: dict, render: Render) -> tuple[bytes | None, str | None, str | None]:
    """The body, how a response shows it, and its content type (OnCall's ``build_request_kwargs``)."""
    if webhook.http_method not in METHODS_WITH_BODY:
        return None, None, None
    if webhook.forward_all:
        text = json.dumps(context)
        return text.encode(), text, "application/json"
    if not webhook.data:
        return None, None, None
    rendered = _rendered(render, webhook.data, json_escaped(context), "request_data")
    try:
        parsed = json.loads(rendered, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return rendered.encode(), rendered, None
    text = json.dumps(parsed)  # as requests sends ``json=``
    return text.encode(), text, "application/json"


def render_request(
    webhook: WebhookSettings,
    context: dict,
    render: Render = render_in_process,
    *,
    self_url: str | None = None,
) -> Rendered:
    """Render what ``webhook`` sends for the event ``context`` (``webhook_context``), as OnCall's
    ``make_request`` does before sending: the trigger template first (no template, or a result
    of "true" or "1" in any case, fires; anything else is ``NotTriggered``), then the URL (an
    http(s) URL with a host that is not ``self_url``), the headers (a JSON object; the
    ``authorization_header`` replaces any ``Authorization``), and for POST, PUT and PATCH the
    body: the whole context as JSON with ``forward_all``, else the data template, sent as JSON
    when it parses as JSON, as UTF-8 text otherwise. The headers and data templates see every
    string escaped for a JSON string literal; the trigger and URL templates see raw values.

    ``render(source, context)`` renders one template and raises ``TemplateError`` or
    ``TemplateWarning``. A failure is a ``RequestFailed`` with OnCall's message. Raises
    ValueError for settings read from a read model (a masked secret): load them whole.
    """
    if any(getattr(webhook, name) == MASK for name in SECRETS):
        raise ValueError("the webhook's secrets are masked: load its settings from the configuration store")
    shown: dict[str, str | None] = {}
    try:
        if webhook.trigger_template:
            shown["request_trigger"] = _rendered(render, webhook.trigger_template, context, "request_trigger")
            if shown["request_trigger"].lower() not in ("true", "1"):
                return NotTriggered(shown["request_trigger"])
        shown["url"] = _checked_url(_rendered(render, webhook.url, context, "url"), self_url)
        headers: dict[str, str] = {}
        if webhook.headers:
            headers = _checked_headers(_rendered(render, webhook.headers, json_escaped(context), "request_headers"))
        if webhook.authorization_header:
            headers = {name: value for name, value in headers.items() if name.lower() != "authorization"}
            headers["Authorization"] = webhook.authorization_header
        shown["request_headers"] = json.dumps(masked_headers(headers))
        body, shown["request_data"], content_type = _body(webhook, context, render)
    except _Refused as refused:
        shown[refused.field] = error = f"{_PREFIXES[refused.field]} - {refused.message}"
        return RequestFailed(error=error, **shown)
    if content_type and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = content_type
    auth = (webhook.username, webhook.password) if webhook.username and webhook.password else None
    return WebhookRequest(
        method=webhook.http_method, url=shown["url"], headers=headers, body=body, basic_auth=auth,
        request_trigger=shown.get("request_trigger"), request_data=shown.get("request_data"),
    )  # fmt: skip


# --- outcomes and what a response records -------------------------------------------------------

SENT, TRANSIENT, PERMANENT = "sent", "transient", "permanent"


@dataclass(frozen=True)
class WebhookOutcome:
    """What sending gave: ``outcome`` (``SENT`` for a 2xx answer; ``TRANSIENT`` worth another
    attempt: the network, a timeout, a 5xx, 408 or 429; ``PERMANENT`` not: a refused address, a
    TLS failure, another answer), the answer's ``status_code`` and ``content`` (OnCall's: JSON
    written again, or text; a message instead above ``RESPONSE_LIMIT`` bytes), or the ``error``
    when there was no answer."""

    outcome: str
    status_code: int | None = None
    content: str | None = None
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.outcome == SENT

    @property
    def reason(self) -> str:
        """The timeline's reason: the status code (OnCall's), or the error."""
        return str(self.status_code) if self.status_code is not None else self.error or ""


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= RESPONSE_LIMIT:
        return text
    return text[:RESPONSE_LIMIT] + TRUNCATION_MARK


@dataclass(frozen=True)
class ResponseRecord:
    """One response, as ``/api/v1/webhooks/{id}/responses`` shows it (OnCall's fields), with the
    alert group and the trigger it was for."""

    timestamp: datetime
    trigger_type: str
    alert_group_id: str | None = None
    url: str | None = None
    request_trigger: str | None = None
    request_headers: str | None = None
    request_data: str | None = None
    status_code: int | None = None
    content: str | None = None
    event_data: str | None = None

    @classmethod
    def of(
        cls,
        rendered: WebhookRequest | RequestFailed,
        outcome: WebhookOutcome | None,
        *,
        context: Mapping[str, Any],
        trigger_type: str,
        at: datetime,
    ) -> ResponseRecord:
        """What to record for an attempt: the rendered request (or its failure) and what sending
        gave (None when nothing was sent). A network error is the content, as in OnCall."""
        content = None
        status_code = None
        if outcome is not None:
            status_code = outcome.status_code
            content = outcome.content if outcome.status_code is not None else outcome.error
        return cls(
            timestamp=at, trigger_type=trigger_type, alert_group_id=context.get("alert_group_id"),
            url=rendered.url, request_trigger=rendered.request_trigger, request_headers=rendered.request_headers,
            request_data=_cut(rendered.request_data), status_code=status_code, content=_cut(content),
            event_data=_cut(json.dumps(context)),
        )  # fmt: skip

    def as_event_data(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# OnCall's timeline for an attempt that was sent or failed (a trigger template that said no adds
# nothing): type 10 "Custom webhook triggered" (reason: the status code), or type 17 "Escalation
# failed" with error code 17 (TRIGGER_CUSTOM_WEBHOOK_ERROR; reason: the error).
TIMELINE_WEBHOOK_TRIGGERED = 10
TIMELINE_ESCALATION_FAILED = 17
TRIGGER_CUSTOM_WEBHOOK_ERROR = 17


def timeline_action(webhook_name: str, webhook_trigger: str, error: str | None = None) -> str:
    """OnCall's timeline text for an attempt, by the webhook's own trigger type."""
    if error is not None:
        return f"skipped {webhook_trigger} outgoing webhook `{webhook_name}`: {error}"
    return f"outgoing webhook `{webhook_name}` triggered by {webhook_trigger}"


# --- commands -----------------------------------------------------------------------------------


WEBHOOK_CLAIM = "webhook"


class WebhookCommands:
    """Mixed into ``Configuration``: outgoing webhooks and their responses.

    Each command loads, decides and saves (again on a version conflict) and returns the position
    of what it recorded (None: nothing changed); ``create_webhook`` returns the new id too.
    Webhook names are unique regardless of case (``NameTaken``), as escalation chains' are.
    """

    def _webhook_saved(self, *aggregates) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _live_webhook(self, webhook_id: UUID) -> Webhook:
        webhook = self.repository.get(webhook_id)
        if not isinstance(webhook, Webhook) or webhook.deleted:
            raise AggregateNotFoundError(webhook_id)
        return webhook

    def webhook_settings(self, webhook_id: UUID) -> WebhookSettings:
        """A live webhook's settings with its secrets, for ``render_request``."""
        return self._live_webhook(webhook_id).to_settings()

    @retry(IntegrityError, **CONFLICT_RETRY)
    def create_webhook(self, settings: Mapping[str, Any], at: datetime) -> tuple[UUID, int | None]:
        """``settings`` by ``SETTINGS`` names (``name``, ``url``, ``http_method`` and
        ``trigger_type`` at least; the others default as in OnCall)."""
        values = _checked_settings({**DEFAULTS, **settings})
        webhook = Webhook(settings=values, created_at=at)
        claims = claim_names(self._claim, webhook.id, WEBHOOK_CLAIM, {}, {CLAIM_TEAM_NAME: values["name"]})
        return webhook.id, self._webhook_saved(webhook, *claims)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_webhook(self, webhook_id: UUID, changes: Mapping[str, Any]) -> int | None:
        """Change the settings ``changes`` names; the others stay."""
        webhook = self._live_webhook(webhook_id)
        wanted = _checked_settings({**webhook.settings, **changes})
        claims = claim_names(self._claim, webhook.id, WEBHOOK_CLAIM, {CLAIM_TEAM_NAME: webhook.settings["name"]},
                             {CLAIM_TEAM_NAME: wanted["name"]})  # fmt: skip
        webhook.change({name: wanted[name] for name in changes})
        return self._webhook_saved(webhook, *claims)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_webhook(self, webhook_id: UUID, at: datetime) -> int | None:
        """Delete a webhook; its name is free again, its responses stay in the log."""
        webhook = self._live_webhook(webhook_id)
        claims = claim_names(self._claim, webhook.id, WEBHOOK_CLAIM, {CLAIM_TEAM_NAME: webhook.settings["name"]}, {})
        webhook.delete(at=at)
        return self._webhook_saved(webhook, *claims)

    def record_webhook_response(self, webhook_id: UUID, attempt_id: str | UUID, record: ResponseRecord) -> int | None:
        """Record what the attempt ``attempt_id`` of ``webhook_id`` gave; an attempt already
        recorded (a redelivery) records nothing and returns None. A deleted webhook's attempt is
        recorded too: it was sent."""
        response_id = WebhookResponse.create_id(attempt_id)
        if self._webhook_response_exists(response_id):
            return None
        response = WebhookResponse(attempt_id=attempt_id, webhook_id=webhook_id, record=record.as_event_data())
        try:
            return self._webhook_saved(response)
        except IntegrityError:
            if self._webhook_response_exists(response_id):
                return None  # recorded at the same moment by another delivery of this attempt
            raise

    def _webhook_response_exists(self, response_id: UUID) -> bool:
        try:
            self.repository.get(response_id)
        except AggregateNotFoundError:
            return False
        return True


def _checked_settings(values: dict) -> dict:
    """The settings a webhook may hold; ValueError names the first that it may not (the API
    refuses them first, with OnCall's texts)."""
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown webhook settings: {sorted(unknown)}")
    if not isinstance(values.get("name"), str) or not values["name"].strip():
        raise ValueError("a webhook needs a name")
    if not isinstance(values.get("url"), str) or not values["url"].strip():
        raise ValueError("a webhook needs a url")
    if values.get("trigger_type") not in TRIGGER_TYPES:
        raise ValueError(f"trigger_type must be one of {list(TRIGGER_TYPES)}")
    if values.get("http_method") not in HTTP_METHODS:
        raise ValueError(f"http_method must be one of {list(HTTP_METHODS)}")
    values["integration_filter"] = list(dict.fromkeys(values.get("integration_filter") or []))
    return values
