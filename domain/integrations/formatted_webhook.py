"""Formatted webhook: a JSON body with OnCall's own fields.

Recognised fields: ``alert_uid`` (grouping), ``title``, ``message``, ``image_url``,
``state`` (``"ok"`` resolves) and ``link_to_upstream_details``.
"""

from __future__ import annotations

from domain.integrations.appearance import channel_titles, on_rich_channels, slack_title
from domain.integrations.base import IntegrationType, load_example

WEB_TITLE = '{{ payload.get("title", "Title undefined (Check Web Title Template)") }}'
SLACK_TITLE = '{{ payload.get("title", "Title undefined (Check Slack Title Template)") }}'

TEMPLATES: dict[str, str | None] = {
    "grouping_key": '{{ payload.get("alert_uid", "") }}',
    "resolve_signal": '{{ payload.get("state", "").upper() == "OK" }}',
    "source_link": "{{ payload.link_to_upstream_details }}",
    **channel_titles(WEB_TITLE, slack_title(SLACK_TITLE)),
    **on_rich_channels("message", "{{ payload.message }}"),
    **on_rich_channels("image_url", "{{ payload.image_url }}"),
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
