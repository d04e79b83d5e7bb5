"""OnCall-compatible Jinja2 templating: sandboxed environment, custom filters, error classes.

Integration templates are user-supplied, so they render in a sandbox with ``range`` disabled,
size limits on source and output, and a timeout on regular expressions. Failures are split the
way Grafana OnCall splits them: a *warning* is a data problem (a missing key, a wrong type) and
an *error* is a broken or forbidden template. Callers decide what a failure means for them
(a fallback title, a false condition, a fresh grouping key).

Render budget (not in OnCall, whose only guard is the regex timeout): a render that runs too long,
regular expressions included, is stopped and reported as a template error instead of stalling
ingest. Each ``apply_template`` call gets ``RENDER_TIME_LIMIT`` seconds of wall-clock time
(overridable per call). The deadline is checked wherever sandboxed code passes through the
environment: every call, attribute and item lookup, intercepted operator, loop iteration (each
``{% for %}`` iterable is wrapped at compile time) and output chunk. Regex filters get the
remaining budget (at most ``REGEX_TIMEOUT_SECONDS``) as their timeout; a regex stopped because
the budget ran out ends the render with TemplateTimeout, while one stopped by its own 2 s cap
(possible only with a budget above 2 s) renders None as in OnCall. The ``regex`` module counts
its timeout in CPU time, so on a busy machine a stopped regex can overrun the wall clock a little.

A single built-in operation is not interruptible, so the few that can blow up memory or time from
small inputs are refused up front with an error: ``*``, ``+`` and ``**`` results beyond
``MAX_COMPUTED_SIZE`` items / ``MAX_COMPUTED_INT_BITS`` bits, ``%`` and ``str.format`` widths,
``ljust``/``center``/``zfill``/``expandtabs``/``replace``/``join``/``list.extend``, and the
``center``, ``indent``, ``format``, ``replace``, ``join``, ``batch``, ``slice`` filters and the
``lipsum`` global. What remains possible is one built-in walking a structure that repeats a big
value many times (e.g. ``tojson`` of a list holding the same 10 MB string 10 000 times), or one
built-in that is simply slow on a big value (``sort`` of a 10-million-item list): these budgets
cannot stop them, so callers that must stay responsive (ingest, preview) render in worker
processes with a hard time and memory limit (``adapters.render_pool``). ``watch_renders``
lets such a worker see when each render starts, and a render that runs out of memory is reported
to it before it becomes a template error here.

Templates are read-only: the data a render is given (the payload and the other context values)
cannot be changed by it, so every template of an alert sees the payload as received and the
stored payload is exactly what was received. ``update``, ``pop``, ``append`` and the other
modifying methods of dicts, lists and sets are refused on those objects, as Jinja's
``ImmutableSandboxedEnvironment`` refuses them; unlike it, they stay allowed on objects the
template made itself (``payload.labels.copy()``, ``[]``), which OnCall's shipped templates and
many users' templates use.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import regex
from jinja2 import (
    BaseLoader,
    Template,
    TemplateAssertionError,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
    pass_context,
)
from jinja2.defaults import DEFAULT_FILTERS, DEFAULT_NAMESPACE
from jinja2.runtime import Context
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEnvironment,
    SecurityError,
    modifies_known_mutable,
)

MAX_TEMPLATE_LENGTH = 50_000
MAX_RESULT_LENGTH = 50_000
MAX_TITLE_LENGTH = 500
TRUNCATION_MARK = ".."

REGEX_TIMEOUT_SECONDS = 2
RENDER_TIME_LIMIT = 1.0  # seconds of wall-clock time per render
MAX_COMPUTED_SIZE = 10_000_000  # characters or items a single operation may produce
MAX_COMPUTED_INT_BITS = 1_000_000
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


class TemplateTimeout(TemplateError):
    """The render used up its time budget (``RENDER_TIME_LIMIT`` unless the caller set one)."""


class TemplateOutOfMemory(TemplateError):
    """The render needed more memory than the process may use."""


class RenderWatch:
    """Told when each render starts and when one runs out of memory (see ``watch_renders``)."""

    def render_started(self) -> None:
        pass

    def out_of_memory(self) -> None:
        pass


_watch = RenderWatch()


def watch_renders(watch: RenderWatch | None) -> None:
    """Install ``watch`` for every later render in this process (None: stop watching)."""
    global _watch
    _watch = watch if watch is not None else RenderWatch()


# --- render budget ----------------------------------------------------------------------------


class _Budget:
    """One render's deadline, and what it was given (which the template may not change)."""

    __slots__ = ("_input_ids", "deadline", "inputs", "limit")

    def __init__(self, deadline: float, limit: float, inputs: Iterable[Any]) -> None:
        self.deadline = deadline  # time.monotonic() value
        self.limit = limit
        self.inputs = inputs
        self._input_ids: set[int] | None = None

    def is_input(self, obj: Any) -> bool:
        # Computed on the first modifying access only: most renders never make one.
        if self._input_ids is None:
            self._input_ids = _container_ids(self.inputs)
        return id(obj) in self._input_ids


def _container_ids(values: Iterable[Any]) -> set[int]:
    """Identities of every dict, list and set reachable from ``values`` (iteratively: no depth limit)."""
    seen: set[int] = set()
    pending = list(values)
    while pending:
        value = pending.pop()
        if isinstance(value, (dict, list, set, tuple)) and id(value) not in seen:
            seen.add(id(value))
            pending.extend(value.values() if isinstance(value, dict) else value)
    return seen


# Per thread / task: set by apply_template for the duration of one render, None outside renders.
_budget: ContextVar[_Budget | None] = ContextVar("template_render_budget", default=None)


def _timeout(budget: _Budget) -> NoReturn:
    raise TemplateTimeout(f"Template rendering took too long (limit {budget.limit}s)")


def _check_budget() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        _timeout(budget)


def _regex_timeout() -> tuple[float, _Budget | None]:
    """The timeout for one regex call, and the budget if it (not the regex cap) is the limit."""
    budget = _budget.get()
    if budget is None:
        return REGEX_TIMEOUT_SECONDS, None
    remaining = budget.deadline - time.monotonic()
    if remaining <= 0:
        _timeout(budget)
    if remaining < REGEX_TIMEOUT_SECONDS:
        return remaining, budget
    return REGEX_TIMEOUT_SECONDS, None


def _run_regex(function: Callable[..., Any], *args: Any) -> Any:
    """Run a ``regex`` function under the render budget.

    A timeout caused by the render budget running out is a TemplateTimeout (the render is over);
    a timeout of the regex's own 2 s cap (only reachable with a budget above 2 s, or outside a
    render) stays a TimeoutError, which the filters turn into None as OnCall does.
    """
    timeout, limiting_budget = _regex_timeout()
    try:
        return function(*args, timeout=timeout)
    except TimeoutError:
        if limiting_budget is not None:
            _timeout(limiting_budget)
        raise


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
# Inside a render the timeout is the remaining render budget, at most REGEX_TIMEOUT_SECONDS:
# running out of budget raises TemplateTimeout; the regex's own cap gives None as in OnCall.
def regex_replace(value: Any, pattern: str, replacement: str) -> str | None:
    try:
        return _run_regex(regex.sub, pattern, replacement, value)
    except (*_FILTER_FAILURES, TimeoutError):
        return None


def regex_match(value: Any, pattern: str) -> bool | None:
    try:
        return bool(_run_regex(regex.match, pattern, value))
    except (*_FILTER_FAILURES, TimeoutError):
        return None


def regex_search(value: Any, pattern: str) -> bool | None:
    try:
        return bool(_run_regex(regex.search, pattern, value))
    except (*_FILTER_FAILURES, TimeoutError):
        return None


# --- size guards ------------------------------------------------------------------------------
# Checked before the operation runs, so a refused operation allocates nothing.

_SIZED_RESULTS = (str, bytes, list, tuple)
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def _refuse(what: str, size: int, limit: int = MAX_COMPUTED_SIZE) -> NoReturn:
    raise SecurityError(f"{what} would be too large ({size} > {limit})")


def _check_size(what: str, size: int) -> None:
    if size > MAX_COMPUTED_SIZE:
        _refuse(what, size)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number_text(what: str, digits: str) -> None:
    # int() of a very long digit string is itself refused by Python; the length says enough.
    if len(digits) > len(str(MAX_COMPUTED_SIZE)) or int(digits) > MAX_COMPUTED_SIZE:
        _refuse(what, int(digits) if len(digits) <= 30 else 10**30)


def _check_int_arguments(what: str, values: Iterable[Any]) -> None:
    for value in values:
        if _is_int(value):
            _check_size(what, abs(value))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    what = f"the result of {operator!r}"
    if operator == "*":
        if isinstance(left, _SIZED_RESULTS) and _is_int(right):
            _check_size(what, len(left) * right)
        elif isinstance(right, _SIZED_RESULTS) and _is_int(left):
            _check_size(what, len(right) * left)
        elif _is_int(left) and _is_int(right):
            bits = left.bit_length() + right.bit_length()
            if bits > MAX_COMPUTED_INT_BITS:
                _refuse(f"{what} (in bits)", bits, MAX_COMPUTED_INT_BITS)
    elif operator == "+":
        if isinstance(left, _SIZED_RESULTS) and isinstance(right, _SIZED_RESULTS):
            _check_size(what, len(left) + len(right))
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            bits = right * left.bit_length()
            if bits > MAX_COMPUTED_INT_BITS:
                _refuse(f"{what} (in bits)", bits, MAX_COMPUTED_INT_BITS)
    elif operator == "%" and isinstance(left, str):
        _check_printf(left, right)


def _check_printf(template: str, arguments: Any) -> None:
    """Refuse ``%`` formatting whose field widths or precisions exceed the size limit."""
    takes_star = False
    for match in _PRINTF_SPEC.finditer(template):
        for number in match.groups():
            if number == "*":
                takes_star = True
            elif number:
                _check_number_text("a '%' field width", number)
    if takes_star:
        values = arguments if isinstance(arguments, tuple) else (arguments,)
        _check_int_arguments("a '%' field width", values)


def _check_format(template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse ``str.format`` specs (``{:>1000000000}``) whose widths exceed the size limit."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # the call itself reports the malformed format string
    nested = False
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        nested = nested or "{" in spec
        for number in _DIGITS.findall(spec):
            _check_number_text("a format field width", number)
    if nested:
        _check_int_arguments("a format field width", (*args, *kwargs.values()))


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    growth = len(new) - len(old)
    if growth <= 0:
        return
    occurrences = text.count(old) if old else len(text) + 1
    if _is_int(count) and count >= 0:
        occurrences = min(occurrences, count)
    _check_size("the result of replace", len(text) + occurrences * growth)


def _check_join(separator: Any, items: Any) -> None:
    if not isinstance(items, (list, tuple)):
        return  # an iterator cannot be measured without consuming it
    size = sum(len(item) for item in items if isinstance(item, str))
    _check_size("the result of join", size + len(str(separator)) * max(len(items) - 1, 0))


def _check_call(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Size checks for the amplifying methods of ``str`` and ``list``."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", None)
    if isinstance(owner, str):
        if name in _WIDTH_METHODS:
            _check_int_arguments(f"the result of {name}", (*args[:1], kwargs.get("width")))
        elif name == "expandtabs":
            tab_size = args[0] if args else kwargs.get("tabsize", 8)
            if _is_int(tab_size):
                _check_size("the result of expandtabs", len(owner) + owner.count("\t") * tab_size)
        elif name == "replace":
            _check_replace(owner, *args, **kwargs)
        elif name == "join" and args:
            _check_join(owner, args[0])
    elif isinstance(owner, list) and name == "extend" and args and isinstance(args[0], Sized):
        _check_size("the result of extend", len(owner) + len(args[0]))


def _guarded(function: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    """``function`` preceded by ``check`` (same arguments); keeps Jinja's pass_* marker."""

    @functools.wraps(function)  # copies __dict__, i.e. jinja_pass_arg
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return function(*args, **kwargs)

    return guarded


def _check_center_filter(value: Any, width: Any = 80) -> None:
    _check_int_arguments("the result of center", (width,))


def _check_indent_filter(text: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = str(text)
    indent = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    _check_size("the result of indent", len(text) + (text.count("\n") + 1) * indent)


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(str(value), kwargs or args)


def _check_replace_filter(eval_ctx: Any, text: Any, old: Any, new: Any, count: Any = None) -> None:
    _check_replace(str(text), str(old), str(new), -1 if count is None else count)


def _check_join_filter(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> None:
    if attribute is None:
        _check_join(d, value)


def _check_batch_filter(value: Any, linecount: Any, fill_with: Any = None) -> None:
    _check_int_arguments("a batch", (linecount,))


def _check_slice_filter(eval_ctx: Any, value: Any, slices: Any, fill_with: Any = None) -> None:
    _check_int_arguments("the number of slices", (slices,))


def _check_lipsum(n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> None:  # noqa: A002
    if _is_int(n) and _is_int(max):
        _check_size("the result of lipsum", n * max * 10)  # ~10 characters per word


_GUARDED_FILTERS = {
    "center": _check_center_filter,
    "indent": _check_indent_filter,
    "format": _check_format_filter,
    "replace": _check_replace_filter,
    "join": _check_join_filter,
    "batch": _check_batch_filter,
    "slice": _check_slice_filter,
}


# --- environment ----------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _restricted_range(*args: Any, **kwargs: Any) -> NoReturn:
    # range(10**9) in a loop is the easiest way to hang a renderer; forbid it outright.
    raise SecurityError("use of 'range' is restricted")


class _BudgetedIterator:
    """A ``{% for %}`` iterable that checks the render budget before each item."""

    __slots__ = ("_iterator", "_length")

    def __init__(self, iterable: Any) -> None:
        self._length = len(iterable) if isinstance(iterable, Sized) else None
        self._iterator = iter(iterable)  # not iterable: fails where the loop starts, as before

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        _check_budget()
        return next(self._iterator)

    def __len__(self) -> int:  # loop.length / loop.revindex without consuming the iterable
        if self._length is None:
            raise TypeError("object has no len()")
        return self._length


# pass_context keeps the compiler from evaluating the filter at compile time on constant lists.
@pass_context
def _budgeted_loop(context: Context, iterable: Any) -> _BudgetedIterator:
    return _BudgetedIterator(iterable)


_LOOP_GUARD_FILTER = "_budgeted_loop"


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    """OnCall's sandbox plus the render budget, size guards and read-only inputs (module docstring)."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # The immutable sandbox's rule, for the render's inputs only (see the module docstring).
        if not SandboxedEnvironment.is_safe_attribute(self, obj, attr, value):
            return False
        if not modifies_known_mutable(obj, attr):
            return True
        budget = _budget.get()
        return budget is not None and not budget.is_input(obj)

    # Also keeps Jinja from constant-folding `"x" * 10**9` at compile time.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_budget()
        _check_call(obj, args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_budget()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_budget()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_budget()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        template = value.__self__

        def checked_format(*args: Any, **kwargs: Any) -> str:
            _check_budget()
            mapping = args[0] if value.__name__ == "format_map" and args else {}
            _check_format(template, args, {**kwargs, **(mapping if isinstance(mapping, dict) else {})})
            return formatter(*args, **kwargs)

        return checked_format


_environment = _BudgetedSandbox(loader=BaseLoader(), autoescape=False, keep_trailing_newline=False)
_environment.globals.update(
    time=_utc_now,
    range=_restricted_range,
    lipsum=_guarded(DEFAULT_NAMESPACE["lipsum"], _check_lipsum),
)
_environment.filters.update(
    {name: _guarded(DEFAULT_FILTERS[name], check) for name, check in _GUARDED_FILTERS.items()}
)
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
    # pass_context: never run at compile time (outside any budget) on a constant argument.
    regex_replace=pass_context(lambda _context, *args: regex_replace(*args)),
    regex_match=pass_context(lambda _context, *args: regex_match(*args)),
    regex_search=pass_context(lambda _context, *args: regex_search(*args)),
)
_environment.filters[_LOOP_GUARD_FILTER] = _budgeted_loop


@lru_cache(maxsize=COMPILED_TEMPLATE_CACHE_SIZE)
def _compile(source: str) -> Template:
    tree = _environment.parse(source)
    # Every loop checks the budget per item, even one whose body touches nothing else.
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_GUARD_FILTER, [], [], None, None, lineno=loop.lineno)
    return _environment.from_string(tree)


def _message(exc: BaseException) -> str:
    # Jinja exceptions carry the bare text in .message; str() may add location details.
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else str(exc)


def _check_length(source: str) -> None:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"Template exceeds length limit ({len(source)} > {MAX_TEMPLATE_LENGTH})")


# Output chunks between budget checks: a backstop only, loops and lookups check on their own.
_CHUNKS_PER_CHECK = 64


def _render(template: Template, context: dict[str, Any], result_length: int) -> str:
    # Like Template.render, but checking the budget per output chunk and keeping no more output
    # than can be shown (the rest is still rendered: a later error must still surface).
    parts: list[str] = []
    kept = 0
    for count, chunk in enumerate(template.generate(**context)):
        if not count % _CHUNKS_PER_CHECK:
            _check_budget()
        if kept <= result_length:
            parts.append(chunk)
            kept += len(chunk)
    return "".join(parts)


def apply_template(
    source: str,
    /,
    result_length: int = MAX_RESULT_LENGTH,
    time_limit: float = RENDER_TIME_LIMIT,
    **context: Any,
) -> str:
    """Render ``source`` with ``context``; output longer than ``result_length`` is cut and marked.

    Raises TemplateError for broken/forbidden templates (TemplateTimeout, a TemplateError, when
    the render takes longer than ``time_limit`` seconds) and TemplateWarning for data problems.
    ``source`` is positional-only so that a template variable may be called "source";
    ``result_length`` and ``time_limit`` cannot be template variables.
    """
    _check_length(source)
    _watch.render_started()
    budget = _Budget(deadline=time.monotonic() + time_limit, limit=float(time_limit), inputs=context.values())
    token = _budget.set(budget)
    try:
        rendered = _render(_compile(source), context, result_length)
    except TemplateError:
        raise
    except MemoryError as exc:
        _watch.out_of_memory()
        raise TemplateOutOfMemory("Template rendering ran out of memory") from exc
    except (TemplateSyntaxError, TemplateAssertionError, SecurityError) as exc:
        raise TemplateError(_message(exc)) from exc
    except (TypeError, KeyError, ValueError, UndefinedError) as exc:
        raise TemplateWarning(_message(exc)) from exc
    except Exception as exc:
        raise TemplateError(_message(exc)) from exc
    finally:
        _budget.reset(token)
    if len(rendered) > result_length:
        rendered = rendered[:result_length] + TRUNCATION_MARK
    return _encodable(rendered)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (``{{ "%c"|format(55296) }}``) replaced by U+FFFD.

    No store can encode a lone surrogate, and a rendered value is written into events: one such
    title would make every save of its batch fail, and ingest retry it for ever.
    """
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


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
