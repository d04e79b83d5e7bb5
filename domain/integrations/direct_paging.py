"""Direct paging: alerts raised by people ("alice is paging the Network team"), not by a system.

The payload is built by the paging code: ``{"oncall": {"title", "message", "uid",
"author_username", "permalink", "important"}}``. Its fresh ``uid`` makes every page a group of
its own (the grouping key is the whole payload), and nothing resolves by itself. There is no
example payload, so no demo alert. ``manual`` (OnCall's legacy Slack "create incident") reuses
these templates.

Deliberate difference from OnCall: the web message links the permalink in markdown
(``[Link to the original message](...)``); OnCall writes a Slack-style link there and converts it
to markdown when rendering for the web, so the result is the same.
"""

from __future__ import annotations

from domain.integrations.appearance import channel_titles, slack_title
from domain.integrations.base import IntegrationType

WEB_TITLE = "{{ payload.oncall.title }}"
CREATED_BY = "created by {{ payload.oncall.author_username }}"
CHAT_MESSAGE = "{{ payload.oncall.message }}\n\n" + CREATED_BY

TEMPLATES: dict[str, str | None] = {
    "grouping_key": "{{ payload }}",
    "source_link": "{{ payload.oncall.permalink }}",
    **channel_titles(WEB_TITLE, slack_title(WEB_TITLE)),
    "web.message": (
        "{{ payload.oncall.message }}\n"
        "{% if source_link %}\n[Link to the original message]({{ source_link }})\n{% endif %}\n"
        + CREATED_BY
    ),
    "slack.message": CHAT_MESSAGE,
    "telegram.message": CHAT_MESSAGE,
}

INTEGRATION_TYPE = IntegrationType(
    slug="direct_paging",
    title="Direct paging",
    short_description=None,
    is_able_to_autoresolve=False,
    has_heartbeat=False,
    example_payload=None,
    defaults=TEMPLATES,
)
