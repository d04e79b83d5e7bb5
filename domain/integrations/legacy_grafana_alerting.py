"""(Deprecated) Grafana Alerting: OnCall's pre-2023 Grafana Alerting integration.

Like ``legacy_alertmanager``: each element of ``alerts[]`` is an alert of its own, and the group
resolves only once every label set seen in it has its latest alert resolved (``label_set``
hook). Unlike it, alerts group by their title, ``labels.alertname`` (or the "No title" text when
there is none), so every alert of one alert rule shares a group. No heartbeat.

Deliberate difference from OnCall: its Telegram message reads ``payload.messsage`` (a typo, so
always empty); ours reads ``payload.message``.
"""

from __future__ import annotations

from domain.integrations.appearance import channel_titles, slack_title
from domain.integrations.base import IntegrationType, labels_hash, load_example
from domain.integrations.legacy_alertmanager import split_alerts

WEB_TITLE = (
    "{# Usually the title is payload.labels.alertname #}\n"
    '{{- payload.get("labels", {}).get("alertname", "No title (check Web Title Template)") }}'
)
SLACK_TITLE = (
    '{%- set title = payload.get("labels", {})'
    '.get("alertname", "No title (check Web Title Template)") -%}' + slack_title("{{ title }}")
)
SHORT_TITLE = '{{ payload.get("labels", {}).get("alertname", "Title undefined") }}'

# Annotations that are links show as links.
WEB_MESSAGE = """\
{{- payload.message }}
{%- if "status" in payload %}
**Status**: {{ payload.status }}
{% endif -%}
**Labels:** {% for k, v in payload.get("labels", {}).items() %}
*{{ k }}*: {{ v }}{% endfor %}
**Annotations:**
{%- for k, v in payload.get("annotations", {}).items() %}
*{{ k }}*: {% if v is string and v.startswith("http") %} [here]({{ v }}){% else %} {{ v }} {% endif -%}
{% endfor %}"""

SLACK_MESSAGE = """\
{{- payload.message }}
{%- if "status" in payload -%}
*Status*: {{ payload.status }}
{% endif -%}
*Labels:* {% for k, v in payload.get("labels", {}).items() %}
{{ k }}: {{ v }}{% endfor %}
*Annotations:*
{%- for k, v in payload.get("annotations", {}).items() %}
{{ k }}: {% if v is string and v.startswith("http") %} <{{ v }}|here> {% else %} {{ v }} {% endif -%}
{% endfor %}"""

TELEGRAM_MESSAGE = """\
{{- payload.message }}
{%- if "status" in payload -%}
<b>Status</b>: {{ payload.status }}
{% endif -%}
<b>Labels:</b> {% for k, v in payload.get("labels", {}).items() %}
{{ k }}: {{ v }}{% endfor %}
<b>Annotations:</b>
{%- for k, v in payload.get("annotations", {}).items() %}
{{ k }}: {{ v }}
{% endfor %}"""

TEMPLATES: dict[str, str | None] = {
    "grouping_key": WEB_TITLE,
    "resolve_signal": '{{ payload.get("status", "") == "resolved" }}',
    "source_link": "{{ payload.generatorURL }}",
    **channel_titles(WEB_TITLE, SLACK_TITLE, short=SHORT_TITLE),
    "web.message": WEB_MESSAGE,
    "slack.message": SLACK_MESSAGE,
    "telegram.message": TELEGRAM_MESSAGE,
}

INTEGRATION_TYPE = IntegrationType(
    slug="legacy_grafana_alerting",
    title="(Deprecated) Grafana Alerting",
    short_description="Grafana",
    is_able_to_autoresolve=True,
    has_heartbeat=False,
    example_payload=load_example("legacy_grafana_alerting"),
    defaults=TEMPLATES,
    split=split_alerts,
    label_set=labels_hash,
)
