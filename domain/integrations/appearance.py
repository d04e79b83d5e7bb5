"""Appearance templates (titles, messages, images) that several integration types show alike.

Each builder returns Jinja source, or template fields mapped to it, to the letter what the types
wrote out before. What a type does with a payload (grouping key, resolve and acknowledge
conditions, source link) stays spelled out in the type's own module.
"""

from __future__ import annotations

from collections.abc import Callable

# The channels that show a message and an image, not only a title.
_RICH_CHANNELS = ("web", "slack", "telegram")

# ``link(url_expression, text)``: a link to the URL a Jinja expression gives, in a channel's markup.
LinkMarkup = Callable[[str, str], str]


def markdown_link(url_expression: str, text: str) -> str:
    """Web (and so email) messages are markdown."""
    return f"[{text}]({{{{ {url_expression} }}}})"


def slack_link(url_expression: str, text: str) -> str:
    """Slack messages link with Slack's own ``<url|text>`` syntax."""
    return f"<{{{{ {url_expression} }}}}|{text}>"


def html_link(url_expression: str, text: str) -> str:
    """Telegram messages are HTML."""
    return f"<a href='{{{{ {url_expression} }}}}'>{text}</a>"


def slack_title(title: str, *, show_source_if: str = "source_link") -> str:
    """Every type's Slack title links the alert group and, when there is one, the source alike.

    ``title`` is the Jinja markup of the title text; ``show_source_if`` the Jinja condition under
    which the source link is shown.
    """
    return (
        "*<{{ grafana_oncall_link }}|#{{ grafana_oncall_incident_id }} " + title + ">*"
        " via {{ integration_name }}"
        "{% if " + show_source_if + " %} (*<{{ source_link }}|source>*){% endif %}"
    )


def channel_titles(web: str, slack: str, *, short: str | None = None) -> dict[str, str]:
    """SMS, phone calls and Telegram share one title: the web title unless a type gives ``short``."""
    short = web if short is None else short
    return {
        "web.title": web,
        "slack.title": slack,
        "sms.title": short,
        "phone_call.title": short,
        "telegram.title": short,
    }


def on_rich_channels(attribute: str, source: str) -> dict[str, str]:
    """One template for ``attribute`` on web, Slack and Telegram, for types that show it alike."""
    return {f"{channel}.{attribute}": source for channel in _RICH_CHANNELS}


def pretty_json_messages(*, prelude: str = "", shown: str = "payload") -> dict[str, str]:
    """Payloads with no message of their own are shown as pretty JSON in each channel's code markup.

    ``prelude`` is Jinja that may set the variable ``shown`` to a more readable form of the
    payload for web and Slack; Telegram always shows the payload as sent.
    """
    return {
        "web.message": prelude + "```\n{{ " + shown + "|tojson_pretty }}\n```",
        "slack.message": prelude + "```{{ " + shown + "|tojson_pretty }}```",
        "telegram.message": "<code>{{ payload|tojson_pretty }}</code>",
    }
