"""OnCall-compatible Jinja2 templating: sandboxed environment, custom filters, error classes.

Integration templates are user-supplied, so they render in a sandbox with ``range`` disabled,
size limits on source and output, and a timeout on regular expressions. Failures are split the
way Grafana OnCall splits them: a *warning* is a data problem (a missing key, a wrong type) and
an *error* is a broken or forbidden template. Callers decide what a failure means for them
(a fallback title, a false condition, a fresh grouping key).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import regex
from jinja2 import BaseLoader, Template, TemplateAssertionError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

MAX_TEMPLATE_LENGTH = 50_000
MAX_RESULT_LENGTH = 50_000
MAX_TITLE_LENGTH = 500
TRUNCATION_MARK = ".."

REGEX_TIMEOUT_SECONDS = 2
DEFAULT_DATETIME_FORMAT = "%H:%M / %d-%m-%Y"
TRUTHY_VALUES = frozenset({"1", "true", "ok"})

# Jinja caches nothing for from_string(); the same few templates render for every alert.
COMPILED_TEMPLATE_CACHE_SIZE = 4096

# Failures that filters swallow (returning None, which renders as "None"), as OnCall's do.
_FILTER_FAILURES = (ValueError, AttributeError, TypeError)


class TemplateError(Exception):
    """The template itself is broken or forbidden: syntax, unknown filter, sandbox violation."""


class TemplateWarning(Exception):
    """The template is fine but the data did not fit it (missing key, wrong type, bad value)."""


# --- filters --------------------------------------------------------------------------------


def tojson_pretty(value: Any) -> str | None:
    try:
        return json.dumps(value, sort_keys=True, indent=4, separators=(",", ": "), ensure_ascii=False)
    except _FILTER_FAILURES:
        return None


def json_dumps(value: Any) -> str | None:
    try:
        return json.dumps(value)
    except _FILTER_FAILURES:
        return None


def parse_json(value: Any) -> Any:
    try:
        return json.loads(value)
    except _FILTER_FAILURES:
        return None


def b64decode(value: Any) -> str | None:
    try:
        return base64.b64decode(value).decode("utf-8")
    except _FILTER_FAILURES:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


def iso8601_to_time(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp; aware when it carries an offset or ``Z``."""
    try:
        return datetime.fromisoformat(value)
    except _FILTER_FAILURES:
        return None


def datetimeformat(value: Any, format: str = DEFAULT_DATETIME_FORMAT) -> str | None:
    try:
        return value.strftime(format)
    except AttributeError:
        return None


def datetimeformat_as_timezone(
    value: Any, format: str = DEFAULT_DATETIME_FORMAT, tz: str = "UTC"
) -> str | None:
    # An unknown zone is deliberately not swallowed: ZoneInfoNotFoundError is a KeyError,
    # so the user gets a template warning naming the zone instead of a silent "None".
    zone = ZoneInfo(tz)
    try:
        return value.astimezone(zone).strftime(format)
    except AttributeError:
        return None


def datetimeparse(value: Any, format: str = DEFAULT_DATETIME_FORMAT) -> datetime | None:
    try:
        return datetime.strptime(value, format)
    except _FILTER_FAILURES:
        return None


def timestamp_to_datetime(value: Any) -> datetime | None:
    """Epoch seconds to a naive UTC datetime (OnCall's servers run in UTC; ours may not)."""
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc).replace(tzinfo=None)
    except (*_FILTER_FAILURES, OverflowError, OSError):
        return None


_TIMEDELTA_PATTERN = re.compile(r"^(?P<sign>[-+]?)(?P<amount>\d+)(?P<unit>[smhdwMQy])$")
_TIMEDELTA_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def timedeltaparse(value: Any) -> timedelta | None:
    """``"-5d"`` → ``timedelta(days=-5)``; months, quarters and years have no fixed length → None."""
    match = _TIMEDELTA_PATTERN.match(value) if isinstance(value, str) else None
    if match is None or match["unit"] not in _TIMEDELTA_UNITS:
        return None
    amount = int(match["amount"]) * (-1 if match["sign"] == "-" else 1)
    return timedelta(**{_TIMEDELTA_UNITS[match["unit"]]: amount})


# An invalid pattern raises regex.error, which is left to surface as a template error.
def regex_replace(value: Any, pattern: str, replacement: str) -> str | None:
    try:
        return regex.sub(pattern, replacement, value, timeout=REGEX_TIMEOUT_SECONDS)
    except (*_FILTER_FAILURES, TimeoutError):
        return None


def regex_match(value: Any, pattern: str) -> bool | None:
    try:
        return bool(regex.match(pattern, value, timeout=REGEX_TIMEOUT_SECONDS))
    except (*_FILTER_FAILURES, TimeoutError):
        return None


def regex_search(value: Any, pattern: str) -> bool | None:
    try:
        return bool(regex.search(pattern, value, timeout=REGEX_TIMEOUT_SECONDS))
    except (*_FILTER_FAILURES, TimeoutError):
        return None


# --- environment ----------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _restricted_range(*args: Any, **kwargs: Any) -> NoReturn:
    # range(10**9) in a loop is the easiest way to hang a renderer; forbid it outright.
    raise SecurityError("use of 'range' is restricted")


_environment = SandboxedEnvironment(loader=BaseLoader(), autoescape=False, keep_trailing_newline=False)
_environment.globals.update(time=_utc_now, range=_restricted_range)
_environment.filters.update(
    tojson_pretty=tojson_pretty,
    json_dumps=json_dumps,
    parse_json=parse_json,
    b64decode=b64decode,
    iso8601_to_time=iso8601_to_time,
    datetimeformat=datetimeformat,
    datetimeformat_as_timezone=datetimeformat_as_timezone,
    datetimeparse=datetimeparse,
    timestamp_to_datetime=timestamp_to_datetime,
    timedeltaparse=timedeltaparse,
    regex_replace=regex_replace,
    regex_match=regex_match,
    regex_search=regex_search,
)


@lru_cache(maxsize=COMPILED_TEMPLATE_CACHE_SIZE)
def _compile(source: str) -> Template:
    return _environment.from_string(source)


def _message(exc: BaseException) -> str:
    # Jinja exceptions carry the bare text in .message; str() may add location details.
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else str(exc)


def _check_length(source: str) -> None:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"Template exceeds length limit ({len(source)} > {MAX_TEMPLATE_LENGTH})")


def apply_template(source: str, /, result_length: int = MAX_RESULT_LENGTH, **context: Any) -> str:
    """Render ``source`` with ``context``; output longer than ``result_length`` is cut and marked.

    Raises TemplateError for broken/forbidden templates and TemplateWarning for data problems.
    ``source`` is positional-only so that a template variable may be called "source".
    """
    _check_length(source)
    try:
        rendered = _compile(source).render(**context)
    except (TemplateSyntaxError, TemplateAssertionError, SecurityError) as exc:
        raise TemplateError(_message(exc)) from exc
    except (TypeError, KeyError, ValueError, UndefinedError) as exc:
        raise TemplateWarning(_message(exc)) from exc
    except Exception as exc:
        raise TemplateError(_message(exc)) from exc
    if len(rendered) > result_length:
        return rendered[:result_length] + TRUNCATION_MARK
    return rendered


def fallback_text(exc: TemplateError | TemplateWarning) -> str:
    """What a user sees in place of a value whose template failed."""
    kind = "Warning" if isinstance(exc, TemplateWarning) else "Error"
    return f"Template {kind}: {exc}"


def is_truthy(rendered: Any) -> bool:
    """OnCall's rule for conditions and routes: only "1", "true" and "ok" (any case/padding)."""
    return isinstance(rendered, str) and rendered.strip().lower() in TRUTHY_VALUES


def validate_syntax(source: str) -> str | None:
    """Why ``source`` can never render (too long, bad syntax, unknown filter), or None if it can."""
    try:
        _check_length(source)
        _compile(source)
    except TemplateError as exc:
        return str(exc)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        return _message(exc)
    return None
