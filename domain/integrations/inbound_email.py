"""Inbound Email: alerts from emails sent to ``<token>@<inbound email domain>``.

Whatever receives the email (a provider's inbound-parse webhook, an SMTP listener) turns it into
the payload ``{"subject", "message", "sender"}`` with ``email_payload`` (the plain-text body,
or the HTML body as text when there is no plain text). Emails group by their
upper-cased subject, and an email whose body is just "OK" (any case, surrounding whitespace
ignored) resolves the group of its subject. No heartbeat: there is no URL to ping.

Deliberate difference from OnCall: the resolve condition strips the message itself
(``payload.message.strip().upper() == "OK"``). OnCall strips at parse time only, so a payload
posted to the universal URL with ``"OK\\n"`` would not resolve there; ``email_payload`` strips
too, so emails behave the same either way. ``email_payload`` also turns CRLF line endings into
LF.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from domain.integrations.appearance import channel_titles, on_rich_channels, slack_title
from domain.integrations.base import IntegrationType, load_example

# Elements that start and end a line of text.
_BLOCK_ELEMENTS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
        "h4", "h5", "h6", "header", "html", "legend", "li", "main", "nav", "ol", "p", "pre",
        "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
# Elements whose content is not text a reader sees.
_HIDDEN_ELEMENTS = frozenset({"head", "script", "style", "template", "title", "noscript"})
_CELL_ELEMENTS = frozenset({"td", "th"})
RULE = "-" * 32
_WHITESPACE = re.compile(r"\s+")
_LINE_BREAK = re.compile(r"\r\n?")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._hidden = 0
        self._pre = 0
        # One entry per open <a>: (href, index in _out where its text starts).
        self._links: list[tuple[str | None, int]] = []

    def _at_break(self) -> bool:
        return not self._out or self._out[-1][-1:] in (" ", "\n")

    def _newline(self) -> None:
        self._out.append("\n")

    def _space(self) -> None:
        if not self._at_break():
            self._out.append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_ELEMENTS:
            self._hidden += 1
        elif tag in _BLOCK_ELEMENTS:
            self._newline()
            if tag == "li":
                self._out.append("* ")
            elif tag == "pre":
                self._pre += 1
        elif tag == "br":
            self._newline()
        elif tag == "hr":
            self._out.extend(("\n", RULE, "\n"))
        elif tag in _CELL_ELEMENTS:
            self._space()
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self._out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <p/>: no content, so only the start matters (an <a/> has no text).
        if tag != "a":
            self.handle_starttag(tag, attrs)
            if tag in _HIDDEN_ELEMENTS:
                self._hidden -= 1
            elif tag == "pre":
                self._pre -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_ELEMENTS:
            self._hidden = max(self._hidden - 1, 0)
        elif tag in _BLOCK_ELEMENTS:
            if tag == "pre":
                self._pre = max(self._pre - 1, 0)
            self._newline()
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            text = " ".join("".join(self._out[start:]).split())
            href = (href or "").strip()
            if href and href != text:
                del self._out[start:]
                self._out.append(f"{text} ({href})" if text else href)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            # As a browser shows it: a run of whitespace is one space, none after a space or break.
            data = _WHITESPACE.sub(" ", data)
            if data.startswith(" ") and self._at_break():
                data = data[1:]
        if data:
            self._out.append(data)

    def text(self) -> str:
        lines = "".join(self._out).splitlines()
        return "\n".join(line.rstrip() for line in lines if line.strip())


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML email body.

    Block elements (paragraphs, headings, divs, list items, table rows...) are on lines of their
    own, ``<br>`` breaks the line, ``<a href>`` becomes "text (href)" (just the text when it is
    the URL), ``<li>`` is prefixed "* ", ``<hr>`` becomes 32 dashes, table cells are separated
    by spaces, ``<head>``/``<script>``/``<style>`` are dropped, entities are decoded, whitespace
    is collapsed as a browser does (kept in ``<pre>``), trailing spaces and blank lines are removed.
    """
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return extractor.text()


def email_payload(subject: str | None, text: str | None, html: str | None, sender: str) -> dict:
    """The alert payload of one email, as OnCall's inbound email view builds it.

    ``message`` is the plain-text body, stripped; when there is no plain text with anything but
    whitespace in it, the HTML body converted with ``html_to_text``; else "". Line endings are
    normalised to ``\n`` (SMTP and MIME deliver ``\r\n``; OnCall keeps whatever the provider
    passed on).
    """
    if text and text.strip():
        message = _LINE_BREAK.sub("\n", text.strip())
    elif html:
        message = html_to_text(html)
    else:
        message = ""
    return {"subject": (subject or "").strip(), "message": message, "sender": sender}


WEB_TITLE = '{{ payload.get("subject", "Title undefined (check Web Title Template)") }}'
SLACK_TITLE = '{{ payload.get("subject", "Title undefined (check Slack Title Template)") }}'

TEMPLATES: dict[str, str | None] = {
    "grouping_key": '{{ payload.get("subject", "").upper() }}',
    "resolve_signal": '{{ payload.get("message", "").strip().upper() == "OK" }}',
    **channel_titles(WEB_TITLE, slack_title(SLACK_TITLE)),
    **on_rich_channels("message", "{{ payload.message }}"),
    **on_rich_channels("image_url", "{{ payload.image_url }}"),
}

INTEGRATION_TYPE = IntegrationType(
    slug="inbound_email",
    title="Inbound Email",
    short_description=None,
    is_able_to_autoresolve=True,
    has_heartbeat=False,
    example_payload=load_example("inbound_email"),
    defaults=TEMPLATES,
)
