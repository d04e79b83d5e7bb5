"""Kapacitor (InfluxDB) ``.post()`` alert handler.

Kapacitor posts its alert data: ``id``, ``message``, ``details``, ``time``, ``duration``,
``level`` (OK / INFO / WARNING / CRITICAL), ``previousLevel``, ``data`` and ``recoverable``.
Alerts group by ``id`` and a ``level`` starting with "OK" (the recovery) resolves the group.
The title is the ``id``. No heartbeat.

Two quirks of what Kapacitor sends: ``details`` is rendered by Go's html/template, so by default
it is the alert data as HTML-escaped JSON (``{&#34;Name&#34;:...}``), and ``duration`` is in
nanoseconds. The payload is kept as sent; the default web and Slack messages (and so email)
show ``details`` unescaped and, when it is JSON, as JSON. Deliberate difference from OnCall,
whose messages show the raw escaped string. The Telegram message stays raw: Telegram messages
are HTML, so the escaped text is what it needs.
"""

from __future__ import annotations

from domain.integrations.appearance import channel_titles, pretty_json_messages, slack_title
from domain.integrations.base import IntegrationType, load_example

WEB_TITLE = '{{ payload.get("id", "Title undefined (check Web Title Template)") }}'

# The payload with `details` unescaped (the characters html/template escapes, `&` last) and
# parsed if it is JSON; anything else is shown as sent.
_READABLE_PAYLOAD = """\
{%- set shown = payload -%}
{%- if payload is mapping and payload.details is string -%}
{%- set text = payload.details
    | replace("&#34;", '"') | replace("&#39;", "'") | replace("&#43;", "+")
    | replace("&lt;", "<") | replace("&gt;", ">") | replace("&amp;", "&") | trim -%}
{%- set parsed = text | parse_json -%}
{%- set shown = dict(payload, details=text if parsed is none else parsed) -%}
{%- endif -%}
"""

TEMPLATES: dict[str, str | None] = {
    "grouping_key": '{{ payload.get("id", "") }}',
    "resolve_signal": '{{ payload.get("level", "").startswith("OK") }}',
    **channel_titles(
        WEB_TITLE, slack_title('{{ payload.get("id", "Title undefined (check Slack Title Template)") }}')
    ),
    # Telegram keeps the raw payload (see above).
    **pretty_json_messages(prelude=_READABLE_PAYLOAD, shown="shown"),
}

INTEGRATION_TYPE = IntegrationType(
    slug="kapacitor",
    title="Kapacitor",
    short_description="InfluxDB",
    is_able_to_autoresolve=True,
    has_heartbeat=False,
    example_payload=load_example("kapacitor"),
    defaults=TEMPLATES,
)
