"""Routes (OnCall's channel filters): which route, and so which escalation chain, an alert takes.

Every integration has a default route; routes added on top of it are tried in order and the first
that matches wins, else the default route (OnCall's ``select_filter``). A regex route searches the
alert's payload dumped as Python's ``json.dumps`` writes it (``", "``/``": "``, ASCII); a jinja2
route matches when its template renders truthy. Both run under the render budget of
``domain.templating`` (the regex through its bounded ``regex_search`` filter), so a slow route
is stopped like any template; an invalid expression or a failed render is no match.

Routes live in the Integration aggregate (domain.configuration), so their order and the
default-last rule hold in one aggregate, and ingest gets them with the integration it loads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.templating import TemplateError, TemplateWarning, apply_template, is_truthy, validate_syntax

ROUTING_REGEX = "regex"
ROUTING_JINJA2 = "jinja2"
ROUTING_TYPES = (ROUTING_REGEX, ROUTING_JINJA2)
MAX_ROUTING_TERM_LENGTH = 1024  # OnCall's filtering_term

# The regex runs as the templating's ``regex_search`` filter: the render budget bounds it.
_REGEX_SEARCH = "{{ subject | regex_search(term) }}"


@dataclass(frozen=True)
class RouteRule:
    """A non-default route as ingest tries it (plain values: it travels to render workers)."""

    id: UUID
    routing_type: str
    routing_regex: str


def routing_term_error(routing_type: str, term: str) -> str | None:
    """OnCall's text for a term that can never match, or None."""
    if routing_type == ROUTING_REGEX:
        try:
            re.compile(term)
        except (re.error, RecursionError, OverflowError, ValueError):
            return "Regular expression is incorrect"
        return None
    if routing_type == ROUTING_JINJA2:
        return "Jinja template is incorrect" if validate_syntax(term) is not None else None
    return "Expression type is incorrect"


def _regex_matches(term: str, payload_text: str) -> bool:
    try:
        return apply_template(_REGEX_SEARCH, subject=payload_text, term=term) == "True"
    except (TemplateError, TemplateWarning):
        return False  # invalid for the regex engine, or stopped by the budget


def _jinja2_matches(term: str, payload: Any) -> bool:
    try:
        return is_truthy(apply_template(term, payload=payload, labels=None))
    except (TemplateError, TemplateWarning):
        return False


def select_route(rules: Sequence[RouteRule], payload: Any) -> UUID | None:
    """The first of ``rules`` that matches ``payload``; None: the default route."""
    payload_text = None
    for rule in rules:
        if rule.routing_type == ROUTING_REGEX:
            if payload_text is None:
                payload_text = json.dumps(payload)  # OnCall's: default separators, ensure_ascii
            if _regex_matches(rule.routing_regex, payload_text):
                return rule.id
        elif rule.routing_type == ROUTING_JINJA2 and _jinja2_matches(rule.routing_regex, payload):
            return rule.id
    return None
