"""Formatted webhook: a JSON body with OnCall's own fields.

Recognised fields: ``alert_uid`` (grouping), ``title``, ``message``, ``image_url``,
``state`` (``"ok"`` resolves) and ``link_to_upstream_details``.
"""

from __future__ import annotations

from domain.integrations.base import IntegrationType, load_example

WEB_TITLE = '{{ payload.get("title", "Title undefined (Check Web Title Template)") }}'
MESSAGE = "{{ payload.message }}"
IMAGE_URL = "{{ payload.image_url }}"

TEMPLATES: dict[str, str | None] = {
    "grouping_key": '{{ payload.get("alert_uid", "") }}',
    "resolve_signal": '{{ payload.get("state", "").upper() == "OK" }}',
    "source_link": "{{ payload.link_to_upstream_details }}",
    "web.title": WEB_TITLE,
    "web.message": MESSAGE,
    "web.image_url": IMAGE_URL,
    "slack.title": (
        "*<{{ grafana_oncall_link }}|#{{ grafana_oncall_incident_id }} "
        '{{ payload.get("title", "Title undefined (Check Slack Title Template)") }}>*'
        " via {{ integration_name }}"
        "{% if source_link %} (*<{{ source_link }}|source>*){% endif %}"
    ),
    "slack.message": MESSAGE,
    "slack.image_url": IMAGE_URL,
    "sms.title": WEB_TITLE,
    "phone_call.title": WEB_TITLE,
    "telegram.title": WEB_TITLE,
    "telegram.message": MESSAGE,
    "telegram.image_url": IMAGE_URL,
}

INTEGRATION_TYPE = IntegrationType(
    slug="formatted_webhook",
    title="Formatted webhook",
    short_description="Formatted webhook",
    is_able_to_autoresolve=True,
    has_heartbeat=True,
    example_payload=load_example("formatted_webhook"),
    defaults=TEMPLATES,
)
