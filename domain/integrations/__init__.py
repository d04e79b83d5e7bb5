"""Integration types and the pure rules that turn a payload into alert behaviour and text.

Adding a type: write ``domain/integrations/<slug>.py`` defining ``INTEGRATION_TYPE`` (and its
``examples/<slug>.json``), then list it in ``INTEGRATION_TYPES`` below.

An integration stores only the templates its users customised; everything else is the type's
default at render time, so improving a default reaches every integration that kept it.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeGuard

from domain.integrations import (
    alertmanager,
    direct_paging,
    elastalert,
    formatted_webhook,
    grafana_alerting,
    inbound_email,
    kapacitor,
    legacy_alertmanager,
    legacy_grafana_alerting,
    manual,
    webhook,
)
from domain.integrations.base import TEMPLATE_FIELDS, IntegrationType
from domain.templating import (
    MAX_RESULT_LENGTH,
    MAX_TITLE_LENGTH,
    TRUNCATION_MARK,
    TemplateError,
    TemplateWarning,
    apply_template,
    fallback_text,
    is_truthy,
)

__all__ = [
    "CHANNEL_ATTRIBUTES",
    "INTEGRATION_TYPES",
    "TEMPLATE_FIELDS",
    "Behaviour",
    "IntegrationType",
    "effective_templates",
    "evaluate",
    "get_type",
    "render_appearance",
    "render_opening",
]

# In OnCall's order (INSTALLED_ONCALL_INTEGRATIONS, the UI order); OnCall's maintenance, zabbix
# and grafana (legacy Grafana ≤8) types are not implemented.
INTEGRATION_TYPES: dict[str, IntegrationType] = {
    integration_type.slug: integration_type
    for integration_type in (
        grafana_alerting.INTEGRATION_TYPE,
        webhook.INTEGRATION_TYPE,
        alertmanager.INTEGRATION_TYPE,
        formatted_webhook.INTEGRATION_TYPE,
        kapacitor.INTEGRATION_TYPE,
        elastalert.INTEGRATION_TYPE,
        inbound_email.INTEGRATION_TYPE,
        manual.INTEGRATION_TYPE,
        direct_paging.INTEGRATION_TYPE,
        legacy_alertmanager.INTEGRATION_TYPE,
        legacy_grafana_alerting.INTEGRATION_TYPE,
    )
}

# Which attributes each notification channel shows, in OnCall's render order.
CHANNEL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "web": ("title", "message", "image_url"),
    "slack": ("title", "message", "image_url"),
    "sms": ("title",),
    "phone_call": ("title",),
    "telegram": ("title", "message", "image_url"),
    "email": ("title", "message"),
}

# OnCall turns a rendered "None" (e.g. ``{{ payload.missing_key_with_null }}``) into no value.
_RENDERED_NONE = "None"
_SLACK_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")
_SLACK_BARE_LINK = re.compile(r"<([^<>|]+)>")


def get_type(slug: str) -> IntegrationType:
    """The integration type for a URL slug; KeyError when there is none."""
    return INTEGRATION_TYPES[slug]


def effective_templates(
    integration_type: IntegrationType, custom_templates: Mapping[str, str | None]
) -> dict[str, str | None]:
    """Every template field resolved: the custom source if non-empty, else the type default."""
    return {
        name: custom_templates.get(name) or integration_type.defaults[name] for name in TEMPLATE_FIELDS
    }


@dataclass(frozen=True)
class Behaviour:
    """What ingestion needs from one payload, decided by the behaviour templates.

    The title and source link matter only for the alert that opens a group, so they are
    rendered on first use: most alerts join an open group and never need them.
    """

    distinction: str | None  # md5 hex of the grouping key; None = no key, caller makes it unique
    is_resolve_signal: bool
    is_acknowledge_signal: bool
    _title_template: str | None = field(repr=False, compare=False, default=None)
    _link_template: str | None = field(repr=False, compare=False, default=None)
    _context: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @cached_property
    def title(self) -> str:
        return _behaviour_title(self._title_template, self._context)

    @cached_property
    def source_link(self) -> str | None:
        return _link(self._link_template, self._context)


def evaluate(
    integration_type: IntegrationType,
    custom_templates: Mapping[str, str | None],
    payload: Any,
    errors: dict[str, str] | None = None,
) -> Behaviour:
    """Render grouping key, conditions, title and source link as OnCall does at ingestion.

    Failures never raise: a broken grouping key gives no distinction (a group of its own), a broken
    condition is false, a broken title shows the error text, a broken link is absent. When
    ``errors`` is given, each failed behaviour template puts its "Template Error: ..." (or
    Warning) text there under its field name.
    """
    templates = effective_templates(integration_type, custom_templates)
    context = {"payload": payload, "labels": None}
    grouping_key = _render_or_none(templates["grouping_key"], context, errors, "grouping_key")
    return Behaviour(
        distinction=hashlib.md5(grouping_key.encode()).hexdigest() if _has_value(grouping_key) else None,
        is_resolve_signal=_condition(templates["resolve_signal"], context, errors, "resolve_signal"),
        is_acknowledge_signal=_condition(templates["acknowledge_signal"], context, errors, "acknowledge_signal"),
        _title_template=templates["web.title"],
        _link_template=templates["source_link"],
        _context=context,
    )


def render_opening(
    integration_type: IntegrationType,
    custom_templates: Mapping[str, str | None],
    payload: Any,
    errors: dict[str, str] | None = None,
) -> tuple[str, str | None]:
    """The title and source link a new group takes from its first alert (as ``Behaviour``'s)."""
    templates = effective_templates(integration_type, custom_templates)
    context = {"payload": payload, "labels": None}
    title = _behaviour_title(templates["web.title"], context, errors)
    return title, _link(templates["source_link"], context, errors)


def render_appearance(
    integration_type: IntegrationType,
    custom_templates: Mapping[str, str | None],
    payload: Any,
    channel: str,
    *,
    integration_name: str,
    alert_group_number: int | None = None,
    link: str | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, str | None]:
    """Title, message and image URL of an alert for one channel (absent ones are None).

    Errors show as "Template Error: ..." / "Template Warning: ..." in place of the value, and
    are also put in ``errors`` (by attribute) when given, for a preview to tell them apart.
    Web output is the rendered markdown; turning it into HTML is the web layer's job.
    """
    if channel not in CHANNEL_ATTRIBUTES:
        raise ValueError(f"unknown channel {channel!r}")
    templates = effective_templates(integration_type, custom_templates)
    if channel == "telegram":
        # Telegram messages are HTML; escape the data, not the template's own markup.
        payload = _escape_strings(payload)
    context: dict[str, Any] = {
        "payload": payload,
        "integration_name": integration_name,
        "grafana_oncall_alert_group_id": alert_group_number,
        "grafana_oncall_incident_id": alert_group_number,
        "grafana_oncall_link": link,
        "source_link": None,
    }
    context["source_link"] = _link(templates["source_link"], context)
    if channel != "web":
        for attribute in CHANNEL_ATTRIBUTES["web"]:
            source = templates[f"web.{attribute}"]
            context[f"web_{attribute}"] = (
                _appearance_value(source, attribute, context) if source else f"web_{attribute} is not set"
            )
    rendered: dict[str, str | None] = dict.fromkeys(("title", "message", "image_url"))
    for attribute in CHANNEL_ATTRIBUTES[channel]:
        source = templates[f"{channel}.{attribute}"]
        if source:
            value = _appearance_value(source, attribute, context, errors, attribute)
            rendered[attribute] = _post_process(channel, attribute, value)
    return rendered


def _render_or_none(
    source: str | None,
    context: Mapping[str, Any],
    errors: dict[str, str] | None = None,
    error_key: str | None = None,
) -> str | None:
    if not source:
        return None
    try:
        return apply_template(source, **context)
    except (TemplateError, TemplateWarning) as exc:
        if errors is not None and error_key is not None:
            errors[error_key] = fallback_text(exc)
        return None


def _has_value(rendered: str | None) -> TypeGuard[str]:
    return rendered is not None and rendered.strip() not in ("", _RENDERED_NONE)


def _condition(
    source: str | None, context: Mapping[str, Any], errors: dict[str, str] | None = None, error_key: str | None = None
) -> bool:
    return is_truthy(_render_or_none(source, context, errors, error_key))


def _link(source: str | None, context: Mapping[str, Any], errors: dict[str, str] | None = None) -> str | None:
    # A broken link template gives no link rather than a link to an error message.
    rendered = _render_or_none(source, context, errors, "source_link")
    return rendered.strip() if _has_value(rendered) else None


def _truncate_title(text: str) -> str:
    return text if len(text) <= MAX_TITLE_LENGTH else text[:MAX_TITLE_LENGTH] + TRUNCATION_MARK


def _behaviour_title(source: str | None, context: Mapping[str, Any], errors: dict[str, str] | None = None) -> str:
    if not source:
        return ""
    try:
        rendered = apply_template(source, result_length=MAX_TITLE_LENGTH, **context)
    except (TemplateError, TemplateWarning) as exc:
        if errors is not None:
            errors["web.title"] = fallback_text(exc)
        return _truncate_title(fallback_text(exc))
    return "" if rendered == _RENDERED_NONE else rendered


def _appearance_value(
    source: str,
    attribute: str,
    context: Mapping[str, Any],
    errors: dict[str, str] | None = None,
    error_key: str | None = None,
) -> str | None:
    length = MAX_TITLE_LENGTH if attribute == "title" else MAX_RESULT_LENGTH
    try:
        rendered = apply_template(source, result_length=length, **context)
    except (TemplateError, TemplateWarning) as exc:
        if errors is not None and error_key is not None:
            errors[error_key] = fallback_text(exc)
        return fallback_text(exc)
    return None if rendered == _RENDERED_NONE else rendered


def _post_process(channel: str, attribute: str, value: str | None) -> str | None:
    if value is None or attribute != "title":
        return value
    if channel in ("slack", "email"):
        return value.replace("\n", "")
    if channel in ("sms", "phone_call"):
        plain = _SLACK_BARE_LINK.sub(r"\1", _SLACK_LINK.sub(r"\2", value))
        # Quotes confuse text-to-speech providers.
        return plain.replace('"', "") if channel == "phone_call" else plain
    return value


def _escape_strings(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, dict):
        return {key: _escape_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape_strings(item) for item in value]
    return value
