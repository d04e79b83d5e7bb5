"""(Legacy) AlertManager: OnCall's pre-2023 Alertmanager integration, one alert per Alertmanager alert.

The request body is Alertmanager's webhook body, but each element of ``alerts[]`` becomes an
alert of its own (``split_alerts``), grouped by its ``labels``: every distinct label set is its
own alert group, whatever Alertmanager grouped. A body without an ``alerts`` key is taken as one
alert of that single-alert shape (heartbeat alerts and OnCall's own test payload look like
that); ``"alerts": []`` gives no alert at all, as in OnCall.

Auto-resolve is not the usual "a resolve signal resolves the group" (reference §2.5): an alert
with ``status: resolved`` resolves the group only once every label set seen in the group has its
latest alert resolved. The type exposes what ingest needs for that as ``label_set``
(``base.labels_hash``: md5 of the sorted ``labels`` JSON; ``endsAt`` and annotations do not
count); see ``IntegrationType`` and ``base.label_sets_resolved``.

Templates are OnCall's, with two small differences: a missing ``labels`` or ``annotations``
object counts as empty instead of failing the whole message, and the Telegram message links
with ``<a href>`` (OnCall's converts the same markdown).
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
from domain.integrations.base import IntegrationType, labels_hash, load_example


def split_alerts(payload: Any) -> list[Any]:
    """One alert per element of ``alerts[]``; a body without ``alerts`` is a single alert."""
    if isinstance(payload, dict) and "alerts" in payload:
        alerts = payload["alerts"]
        return list(alerts) if isinstance(alerts, list) else [payload]
    return [payload]


WEB_TITLE = '{{- payload.get("labels", {}).get("alertname", "No title (check Title Template)") -}}'
SLACK_TITLE = (
    '{%- set title = payload.get("labels", {}).get("alertname", "No title (check Title Template)") -%}'
    + slack_title("{{ title }}")
)


def _message_template(link: LinkMarkup) -> str:
    """Summary/message annotation, severity, status, runbooks, labels, other annotations."""
    return (
        """\
{%- set annotations = payload.get("annotations", {}).copy() -%}
{%- set labels = payload.get("labels", {}) -%}

{%- if "summary" in annotations %}
{{ annotations.summary }}
{%- set _ = annotations.pop('summary') -%}
{%- endif %}

{%- if "message" in annotations %}
{{ annotations.message }}
{%- set _ = annotations.pop('message') -%}
{%- endif %}

{% set severity = labels.severity | default("Unknown") -%}
{%- set severity_emoji = {"critical": ":rotating_light:", "warning": ":warning:" }[severity]
    | default(":question:") -%}
Severity: {{ severity }} {{ severity_emoji }}

{%- set status = payload.status | default("Unknown") %}
{%- set status_emoji = {"firing": ":fire:", "resolved": ":white_check_mark:"}[status]
    | default(":warning:") %}
Status: {{ status }} {{ status_emoji }} (on the source)

{% if "runbook_url" in annotations -%}
"""
        + link("annotations.runbook_url", ":book: Runbook:link:")
        + """
{%- set _ = annotations.pop('runbook_url') -%}
{%- endif %}

{%- if "runbook_url_internal" in annotations -%}
"""
        + link("annotations.runbook_url_internal", ":closed_book: Runbook (internal):link:")
        + """
{%- set _ = annotations.pop('runbook_url_internal') -%}
{%- endif %}

:label: Labels:
{%- for k, v in labels.items() %}
- {{ k }}: {{ v }}
{%- endfor %}

{% if annotations | length > 0 -%}
:pushpin: Other annotations:
{%- for k, v in annotations.items() %}
- {{ k }}: {{ v }}
{%- endfor %}
{% endif %}
"""
    )


TEMPLATES: dict[str, str | None] = {
    "grouping_key": "{{ payload.labels }}",
    "resolve_signal": '{{ payload.status == "resolved" }}',
    "source_link": "{{ payload.generatorURL }}",
    **channel_titles(WEB_TITLE, SLACK_TITLE),
    "web.message": _message_template(markdown_link),
    "slack.message": _message_template(slack_link),
    "telegram.message": _message_template(html_link),
}

INTEGRATION_TYPE = IntegrationType(
    slug="legacy_alertmanager",
    title="(Legacy) AlertManager",
    short_description="Prometheus",
    is_able_to_autoresolve=True,
    has_heartbeat=True,
    example_payload=load_example("legacy_alertmanager"),
    defaults=TEMPLATES,
    split=split_alerts,
    label_set=labels_hash,
)
