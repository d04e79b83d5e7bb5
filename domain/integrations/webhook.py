"""Generic webhook: any JSON body, shown as pretty-printed JSON.

Without a key to group on, identical bodies group together (the grouping key is the whole
payload). Heartbeat alerts carry a fixed ``alert_uid`` so that "missing" and "restored" meet.
"""

from __future__ import annotations

from domain.integrations.base import IntegrationType, load_example

TITLE = "Incident"

TEMPLATES: dict[str, str | None] = {
    "grouping_key": (
        '{% if "is_oncall_heartbeat" in payload %}{{ payload.alert_uid }}{% else %}{{ payload }}{% endif %}'
    ),
    "resolve_signal": '{{ payload.get("state", "").upper() == "OK" }}',
    "source_link": "{{ payload.url }}",
    "web.title": TITLE,
    "web.message": "```\n{{ payload|tojson_pretty }}\n```",
    "slack.title": (
        "*<{{ grafana_oncall_link }}|#{{ grafana_oncall_incident_id }} " + TITLE + ">*"
        " via {{ integration_name }}"
        "{% if source_link %} (*<{{ source_link }}|source>*){% endif %}"
    ),
    "slack.message": "```{{ payload|tojson_pretty }}```",
    "sms.title": TITLE,
    "phone_call.title": TITLE,
    "telegram.title": TITLE,
    "telegram.message": "<code>{{ payload|tojson_pretty }}</code>",
}

INTEGRATION_TYPE = IntegrationType(
    slug="webhook",
    title="Webhook",
    short_description="Generic",
    is_able_to_autoresolve=True,
    has_heartbeat=True,
    example_payload=load_example("webhook"),
    defaults=TEMPLATES,
)
