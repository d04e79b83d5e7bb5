"""Prometheus Alertmanager (webhook_config receiver, payload version 4).

One notification = one alert. Grouping by ``groupKey`` puts every notification of the same
Alertmanager group into one alert group; Alertmanager only sends ``status: resolved`` once all
alerts of its group are resolved, which is what resolves ours. Grafana Alerting sends the same
body and reuses these templates.
"""

from __future__ import annotations

from typing import Any

from domain.integrations.appearance import (
    LinkMarkup,
    channel_titles,
    html_link,
    markdown_link,
    slack_link,
    slack_title,
)
from domain.integrations.base import IntegrationType, load_example


def split_group_notification(payload: Any) -> list[Any]:
    """One alert per notification, with ``numFiring``/``numResolved`` filled in if absent.

    Older Alertmanagers do not send the counters; the default message shows them.
    """
    if not isinstance(payload, dict) or "numFiring" in payload:
        return [payload]
    alerts = payload.get("alerts")
    statuses = [a.get("status") for a in alerts if isinstance(a, dict)] if isinstance(alerts, list) else []
    counted = {**payload, "numFiring": statuses.count("firing"), "numResolved": statuses.count("resolved")}
    return [counted]


# Sets `alertname` and `groupLabels` (the group labels minus alertname). Bodies with top-level
# `labels` are the legacy one-alert shape, whose name lives there instead.
_NAME_AND_LABELS = """\
{%- set groupLabels = payload.get("groupLabels", {}).copy() -%}
{%- if "labels" in payload -%}
{%- set alertname = payload.labels.alertname -%}
{%- else -%}
{%- set alertname = groupLabels.pop("alertname", "") -%}
{%- endif -%}
"""
# "<alertname> (<other group label values>)"; the space stays when there are no others.
_TITLE_TEXT = '{{ alertname }} {% if groupLabels %}({{ groupLabels.values() | join(", ") }}){% endif %}'

WEB_TITLE = _NAME_AND_LABELS + _TITLE_TEXT

# Alertmanager often sends relative or empty generator URLs; only link real ones.
_REAL_SOURCE_LINK = (
    'source_link and (source_link.startswith("http://") or source_link.startswith("https://"))'
)
SLACK_TITLE = _NAME_AND_LABELS + slack_title(_TITLE_TEXT, show_source_if=_REAL_SOURCE_LINK)

PHONE_CALL_TITLE = '{{ payload.get("groupLabels", {}).values() | join(", ") }}'


def _message_template(link: LinkMarkup, *, with_source_link: bool) -> str:
    """The group summary: severity, status, counters, runbooks, label and annotation lists."""
    source_line = (
        "{%- if source_link %}\n\n" + link("source_link", "View in AlertManager") + "{%- endif %}"
        if with_source_link
        else ""
    )
    return (
        """\
{%- set groupLabels = payload.get("groupLabels", {}) -%}
{%- set annotations = payload.get("commonAnnotations", {}).copy() -%}
{%- set status = payload.get("status", "Unknown") -%}
{%- if "severity" in groupLabels -%}
Severity: {{ groupLabels.severity }} \
{{ {"critical": ":rotating_light:", "warning": ":warning:"}.get(groupLabels.severity, ":question:") }}
{% endif -%}
Status: {{ status }} \
{{ {"firing": ":fire:", "resolved": ":white_check_mark:"}.get(status, ":warning:") }} (on the source)
{%- if status == "firing" and payload.numFiring %}
Firing alerts – {{ payload.numFiring }}
Resolved alerts – {{ payload.numResolved }}
{%- endif %}
{%- if annotations.runbook_url %}
"""
        + link("annotations.runbook_url", "📖 Runbook")
        + """
{%- endif %}
{%- if annotations.runbook_url_internal %}
"""
        + link("annotations.runbook_url_internal", "📓 Runbook (internal)")
        + """
{%- endif %}
{#- Runbooks are shown as links above, not again in the annotation list. #}
{%- set _ = annotations.pop("runbook_url", None) %}
{%- set _ = annotations.pop("runbook_url_internal", None) %}
{%- set sections = [
    ("GroupLabels", groupLabels),
    ("CommonLabels", payload.get("commonLabels", {})),
    ("Annotations", annotations),
    ("Labels", payload.get("labels", {})),
    ("Annotations", payload.get("annotations", {})),
] %}
{%- for heading, entries in sections if entries %}

{{ heading }}:
{%- for key, value in entries.items() %}
- {{ key }}: {{ value }}
{%- endfor %}
{%- endfor %}
"""
        + source_line
    )


WEB_MESSAGE = _message_template(markdown_link, with_source_link=True)

TEMPLATES: dict[str, str | None] = {
    "grouping_key": "{{ payload.groupKey }}",
    "resolve_signal": '{{ payload.status == "resolved" }}',
    "source_link": "{{ payload.alerts[0].generatorURL }}",
    **channel_titles(WEB_TITLE, SLACK_TITLE),
    "phone_call.title": PHONE_CALL_TITLE,  # replaces the web title for phone calls only
    "web.message": WEB_MESSAGE,
    "slack.message": _message_template(slack_link, with_source_link=False),
    "telegram.message": _message_template(html_link, with_source_link=True),
}

INTEGRATION_TYPE = IntegrationType(
    slug="alertmanager",
    title="Alertmanager",
    short_description="Prometheus",
    is_able_to_autoresolve=True,
    has_heartbeat=True,
    example_payload=load_example("alertmanager"),
    defaults=TEMPLATES,
    split=split_group_notification,
)
