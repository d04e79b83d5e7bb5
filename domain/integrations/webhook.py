"""Generic webhook: any JSON body, shown as pretty-printed JSON.

Without a key to group on, identical bodies group together (the grouping key is the whole
payload). Heartbeat alerts carry a fixed ``alert_uid`` so that "missing" and "restored" meet.
"""

from __future__ import annotations

from domain.integrations.appearance import channel_titles, pretty_json_messages, slack_title
from domain.integrations.base import IntegrationType, load_example

TITLE = "Incident"

TEMPLATES: dict[str, str | None] = {
    "grouping_key": (
        '{% if "is_oncall_heartbeat" in payload %}{{ payload.alert_uid }}{% else %}{{ payload }}{% endif %}'
    ),
    "resolve_signal": '{{ payload.get("state", "").upper() == "OK" }}',
    "source_link": "{{ payload.url }}",
    **channel_titles(TITLE, slack_title(TITLE)),
    **pretty_json_messages(),
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
