"""The sandboxed Jinja2 environment: filters, sandbox, limits, error classes, truthiness.

Mirrors what OnCall's own tests assert about its templating (reference §3 and §13.3).
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import datetime, timezone

import pytest

from domain.templating import (
    MAX_COMPUTED_SIZE,
    MAX_RESULT_LENGTH,
    MAX_TEMPLATE_LENGTH,
    MAX_TITLE_LENGTH,
    RENDER_TIME_LIMIT,
    RenderWatch,
    TemplateError,
    TemplateOutOfMemory,
    TemplateTimeout,
    TemplateWarning,
    apply_template,
    fallback_text,
    is_truthy,
    regex_replace,
    regex_search,
    validate_syntax,
    watch_renders,
)


def render(source: str, **payload: object) -> str:
    return apply_template(source, payload=payload)


def test_limits_match_oncall() -> None:
    assert (MAX_TEMPLATE_LENGTH, MAX_RESULT_LENGTH, MAX_TITLE_LENGTH) == (50_000, 50_000, 500)


# --- basics ---------------------------------------------------------------------------------


def test_renders_payload_fields_and_missing_keys_as_empty() -> None:
    assert render("{{ payload.name }}/{{ payload.missing }}", name="db-1") == "db-1/"


def test_one_trailing_newline_is_dropped() -> None:
    assert render("{{ payload.a }}\n", a="x") == "x"


def test_no_html_escaping() -> None:
    assert render("{{ payload.a }}", a="<b>&") == "<b>&"


def test_time_global_is_aware_utc_now() -> None:
    before = datetime.now(timezone.utc)
    rendered = apply_template("{{ time().isoformat() }}")
    assert before <= datetime.fromisoformat(rendered) <= datetime.now(timezone.utc)
    assert apply_template("{{ time().tzinfo }}") == "UTC"


def test_builtin_filters_are_available() -> None:
    assert render('{{ payload.names|join(", ") }} {{ payload.names|length }}', names=["a", "b"]) == "a, b 2"
    assert render("{{ payload|tojson }}", a=1) == '{"a": 1}'
    assert render('{{ payload.missing|default("none") }}') == "none"


# --- custom filters -------------------------------------------------------------------------


def test_tojson_pretty_sorts_indents_and_keeps_unicode() -> None:
    assert render("{{ payload|tojson_pretty }}", b=1, a="é") == '{\n    "a": "é",\n    "b": 1\n}'


def test_json_dumps_is_plain_json() -> None:
    assert render("{{ payload|json_dumps }}", b=[1, 2], a="é") == '{"b": [1, 2], "a": "\\u00e9"}'


def test_parse_json() -> None:
    assert render("{{ (payload.raw|parse_json).level }}", raw='{"level": "high"}') == "high"
    assert render("{{ payload.raw|parse_json }}", raw="{not json") == "None"


def test_b64decode() -> None:
    assert render("{{ payload.data|b64decode }}", data="aMOpbGxv") == "héllo"
    assert render("{{ payload.data|b64decode }}", data="not base64!") == "None"


def test_iso8601_to_time() -> None:
    assert render("{{ payload.t|iso8601_to_time }}", t="2023-06-12T08:24:38.326Z") == (
        "2023-06-12 08:24:38.326000+00:00"
    )
    assert render("{{ payload.t|iso8601_to_time }}", t="2023-06-12T10:24:38+02:00") == (
        "2023-06-12 10:24:38+02:00"
    )
    assert render("{{ payload.t|iso8601_to_time }}", t="2023-06-12 08:24") == "2023-06-12 08:24:00"
    assert render("{{ payload.t|iso8601_to_time }}", t="yesterday") == "None"


def test_datetimeformat() -> None:
    source = "{% set t = payload.t|iso8601_to_time %}{{ t|datetimeformat }} | {{ t|datetimeformat('%Y') }}"
    assert render(source, t="2023-06-12T08:24:38Z") == "08:24 / 12-06-2023 | 2023"
    assert render("{{ payload.t|datetimeformat }}", t="not a datetime") == "None"


def test_datetimeformat_as_timezone() -> None:
    source = "{{ payload.t|iso8601_to_time|datetimeformat_as_timezone('%H:%M %Z', 'Europe/Amsterdam') }}"
    assert render(source, t="2023-06-12T08:24:38Z") == "10:24 CEST"
    assert render("{{ payload.t|iso8601_to_time|datetimeformat_as_timezone }}", t="2023-01-12T08:24:38Z") == (
        "08:24 / 12-01-2023"
    )


def test_datetimeformat_as_timezone_with_unknown_zone_is_a_warning() -> None:
    with pytest.raises(TemplateWarning, match="Mars/Olympus_Mons"):
        render("{{ payload.t|datetimeformat_as_timezone('%H', 'Mars/Olympus_Mons') }}", t=datetime.now())


def test_datetimeparse() -> None:
    assert render("{{ payload.t|datetimeparse }}", t="12:30 / 01-02-2024") == "2024-02-01 12:30:00"
    assert render("{{ payload.t|datetimeparse('%d.%m.%Y') }}", t="01.02.2024") == "2024-02-01 00:00:00"
    assert render("{{ payload.t|datetimeparse }}", t="2024-02-01") == "None"


def test_timestamp_to_datetime_is_naive_utc() -> None:
    assert render("{{ payload.ts|timestamp_to_datetime }}", ts=1686558278) == "2023-06-12 08:24:38"
    assert render("{{ payload.ts|timestamp_to_datetime }}", ts="soon") == "None"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-100s", "-1 day, 23:58:20"),
        ("12h", "12:00:00"),
        ("+30m", "0:30:00"),
        ("-5d", "-5 days, 0:00:00"),
        ("52w", "364 days, 0:00:00"),
        ("3M", "None"),
        ("1Q", "None"),
        ("2y", "None"),
        ("12 h", "None"),
        ("h", "None"),
    ],
)
def test_timedeltaparse(text: str, expected: str) -> None:
    assert render("{{ payload.d|timedeltaparse }}", d=text) == expected


def test_datetime_arithmetic_with_timedeltas() -> None:
    source = "{{ payload.t|iso8601_to_time + payload.d|timedeltaparse }}"
    assert render(source, t="2023-06-12T08:24:38Z", d="1d") == "2023-06-13 08:24:38+00:00"
    assert render(source, t="2023-06-12T08:24:38Z", d="-90m") == "2023-06-12 06:54:38+00:00"


def test_regex_replace() -> None:
    assert render("{{ payload.host|regex_replace('[0-9]+', 'N') }}", host="web-12.eu-1") == "web-N.eu-N"


def test_regex_match_is_anchored_and_regex_search_is_not() -> None:
    source = "{{ s|regex_match('b') }} {{ s|regex_search('b') }} {{ s|regex_match('ab') }}"
    assert apply_template(source, s="abc") == "False True True"


def test_invalid_regex_is_an_error() -> None:
    with pytest.raises(TemplateError):
        render("{{ payload.s|regex_search('(unclosed') }}", s="abc")


@pytest.mark.timeout(20)  # a hang here would otherwise stall the whole run
def test_catastrophic_regex_is_stopped_by_the_render_budget() -> None:
    # Decision: when the render budget (here 0.3 s) is what stops the regex, the render is over:
    # a template error, not OnCall's None. The regex module counts its timeout in CPU time, so
    # on a busy machine the wall-clock time can overshoot the budget somewhat.
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"^Template rendering took too long \(limit 0.3s\)$"):
        apply_template(
            "{{ payload.s|regex_search('(a|aa)+$') }}", time_limit=0.3, payload={"s": "a" * 60 + "b"}
        )
    assert time.monotonic() - started < 3


@pytest.mark.timeout(30)
def test_regex_cap_within_a_larger_budget_gives_none_as_oncall() -> None:
    # With more budget than the regex's own 2 s cap, the cap is what stops it: None, as in OnCall.
    started = time.monotonic()
    rendered = apply_template(
        "{{ payload.s|regex_search('(a|aa)+$') }}", time_limit=30, payload={"s": "a" * 60 + "b"}
    )
    elapsed = time.monotonic() - started
    assert rendered == "None"
    assert 1.5 < elapsed < 15


def test_regex_filters_outside_a_render_have_no_budget() -> None:
    assert regex_search("abc", "b") is True
    assert regex_replace("abc", "b", "x") == "axc"


# --- sandbox ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ payload.__init__() }}",
        "{{ payload.__class__.__init__.__globals__ }}",
        "{{ payload.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_escapes_are_errors(source: str) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render(source, a=1)


def test_unsafe_attribute_alone_reveals_nothing() -> None:
    # As in OnCall: the sandbox hands back an empty "unsafe" placeholder; any use of it raises.
    assert render("{{ payload.__class__.__init__ }}", a=1) == ""


def test_range_is_restricted_when_executed() -> None:
    with pytest.raises(TemplateError, match="use of 'range' is restricted"):
        render("{% for i in range(10) %}{{ i }}{% endfor %}")
    assert render("{% if false %}{{ range(3)|list }}{% endif %}ok") == "ok"


# --- error classes ----------------------------------------------------------------------------


def test_unknown_filter_is_an_error() -> None:
    with pytest.raises(TemplateError, match="No filter named 'shout'"):
        render("{{ payload.a|shout }}", a="x")


def test_syntax_error_is_an_error() -> None:
    with pytest.raises(TemplateError):
        render("{% if payload.a %}unclosed", a="x")


def test_missing_nested_field_is_a_warning() -> None:
    with pytest.raises(TemplateWarning, match="has no attribute 'labels'"):
        render("{{ payload.labels.severity }}")


def test_type_error_is_a_warning() -> None:
    with pytest.raises(TemplateWarning, match="unsupported operand"):
        render("{{ payload.count + 'x' }}", count=1)


def test_key_error_is_a_warning() -> None:
    with pytest.raises(TemplateWarning):
        render("{{ payload.copy().pop('missing') }}")


def test_fallback_texts() -> None:
    assert fallback_text(TemplateError("boom")) == "Template Error: boom"
    assert fallback_text(TemplateWarning("'x' is undefined")) == "Template Warning: 'x' is undefined"


# --- limits ---------------------------------------------------------------------------------


def test_template_longer_than_the_limit_is_an_error() -> None:
    with pytest.raises(TemplateError, match="length limit"):
        apply_template("x" * 80_000)
    assert apply_template("x" * MAX_TEMPLATE_LENGTH) == "x" * MAX_TEMPLATE_LENGTH


def test_output_is_truncated_to_the_limit_plus_two_dots() -> None:
    rendered = render("{{ payload.text }}", text="a" * 60_000)
    assert rendered == "a" * MAX_RESULT_LENGTH + ".."
    assert apply_template("{{ t }}", result_length=5, t="abcdefgh") == "abcde.."
    assert apply_template("{{ t }}", result_length=5, t="abcde") == "abcde"


def test_a_context_variable_may_be_called_source() -> None:
    assert apply_template("{{ source }}", source="grafana") == "grafana"


def test_validate_syntax() -> None:
    assert validate_syntax("{{ payload.a|upper }}") is None
    assert validate_syntax("{{ payload.a") is not None
    assert validate_syntax("{{ payload.a|shout }}") == "No filter named 'shout'."
    assert "length limit" in validate_syntax("x" * 80_000)


# --- truthiness -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [" 1 ", " TRUE ", " ok ", "True", "OK", "true\n"])
def test_truthy_values(value: str) -> None:
    assert is_truthy(value)


@pytest.mark.parametrize("value", [" 0 ", "False", "yes", "on", "", "None", None, 1, True])
def test_falsy_values(value: object) -> None:
    assert not is_truthy(value)


def test_rendered_comparison_is_a_truthy_condition() -> None:
    assert is_truthy(render('{{ payload.status == "resolved" }}', status="resolved"))
    assert not is_truthy(render('{{ payload.status == "resolved" }}', status="firing"))


# --- render budget and size guards ------------------------------------------------------------

ITEMS = list(range(1000))
NESTED_LOOPS = (
    '{% for a in payload["items"] %}{% for b in payload["items"] %}{% for c in payload["items"] %}'
    "{{ a }}{% endfor %}{% endfor %}{% endfor %}"
)


def test_render_budget_default() -> None:
    assert RENDER_TIME_LIMIT == 1.0


@pytest.mark.timeout(20)
def test_nested_loops_over_a_big_payload_stop_at_the_budget() -> None:
    # 10**9 iterations would take minutes; the render stops after about RENDER_TIME_LIMIT.
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"^Template rendering took too long \(limit 1.0s\)$") as failure:
        render(NESTED_LOOPS, items=ITEMS)
    elapsed = time.monotonic() - started
    assert isinstance(failure.value, TemplateTimeout)
    assert 0.9 < elapsed < 3


def test_payload_dot_items_is_the_dict_method_not_the_key() -> None:
    # Jinja looks attributes up before keys: `payload.items` is dict.items, which is not iterable.
    with pytest.raises(TemplateWarning, match="not iterable"):
        render("{% for a in payload.items %}{{ a }}{% endfor %}", items=ITEMS)


@pytest.mark.timeout(20)
def test_loops_that_touch_nothing_else_are_budgeted_too() -> None:
    # No attribute lookup, call or output inside: only the per-iteration check can stop this.
    source = (
        "{% set xs = payload.entries %}"
        "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}{% endfor %}{% endfor %}done"
    )
    started = time.monotonic()
    with pytest.raises(TemplateTimeout, match=r"limit 0.2s"):
        apply_template(source, time_limit=0.2, payload={"entries": ITEMS})
    assert time.monotonic() - started < 2


def test_the_budget_is_per_render() -> None:
    with pytest.raises(TemplateTimeout):
        apply_template(NESTED_LOOPS, time_limit=0.05, payload={"items": ITEMS})
    # The next render starts with a fresh budget; a small loop is nowhere near it.
    assert render('{% for a in payload["items"] %}{{ a }}{% endfor %}', items=[1, 2, 3]) == "123"


def test_loops_behave_as_before() -> None:
    assert render(
        "{% for x in payload.xs %}{{ loop.index }}/{{ loop.length }}/{{ loop.revindex }}"
        "{{ ',' if not loop.last }}{% endfor %}",
        xs=["a", "b", "c"],
    ) == "1/3/3,2/3/2,3/3/1"
    assert render("{% for x in payload.xs %}{{ x }}{% else %}none{% endfor %}", xs=[]) == "none"
    assert render("{% for k, v in payload.items() %}{{ k }}={{ v }};{% endfor %}", a=1, b=2) == "a=1;b=2;"
    assert render("{% for x in payload.missing %}{{ x }}{% endfor %}ok") == "ok"
    assert render("{% for x in payload.xs if x > 1 %}{{ x }}{% endfor %}", xs=[1, 2, 3]) == "23"
    with pytest.raises(TemplateWarning, match="'int' object is not iterable"):
        render("{% for x in payload.n %}{{ x }}{% endfor %}", n=5)


def test_huge_string_multiplication_is_refused_without_allocating() -> None:
    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(TemplateError, match=r"too large \(1000000000 > 10000000\)"):
            apply_template('{{ "x" * 10**9 }}')
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 5_000_000  # a gigabyte string was never built
    # Not constant-folded at compile time either (the sandbox intercepts the operator).
    assert validate_syntax('{{ "x" * 1000000000 }}') is None


@pytest.mark.parametrize(
    "source",
    [
        "{{ [1] * 10**9 }}",
        "{{ 10**9 * 'x' }}",
        "{{ 7 ** 10000000 }}",
        "{% set ns = namespace(s='x') %}{% for a in payload.xs %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% set l = [1] %}{% for a in payload.xs %}{% set _ = l.extend(l) %}{% endfor %}",
        "{{ '%1000000000d' % 1 }}",
        "{{ '%*d' % (1000000000, 1) }}",
        "{{ '{:>1000000000}'.format(1) }}",
        "{{ '{:>{}}'.format(1, 1000000000) }}",
        "{{ 'x'.ljust(1000000000) }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ 'a\nb'|indent(1000000000) }}",
        "{{ '%1000000000s'|format('x') }}",
        "{{ ('ab' * 5000000)|replace('', 'ab' * 100) }}",
        "{{ (['x' * 5000000] * 3)|join }}",
        "{{ [0]|batch(1000000000, 0)|list }}",
        "{{ [0]|slice(1000000000)|list }}",
        "{{ lipsum(1000000) }}",
    ],
)
def test_amplifying_operations_are_refused(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match="too large"):
        render(source, xs=list(range(100)))
    assert time.monotonic() - started < 1


def test_ordinary_operations_are_unchanged() -> None:
    assert render("{{ 'ab' * 3 }} {{ 3 * [0] }} {{ 2 ** 10 }} {{ 'a' + 'b' }} {{ [1] + [2] }}") == (
        "ababab [0, 0, 0] 1024 ab [1, 2]"
    )
    formatted = render("{{ '%05d|%s' % (42, 'x') }} {{ '{:>4}|{}'.format(7, 'y') }} {{ 7 % 3 }}")
    assert formatted == "00042|x    7|y 1"
    filtered = render("{{ 'ab'|center(6) }}|{{ 'a'|replace('a', 'bb') }}|{{ [1, 2]|join('-') }}")
    assert filtered == "  ab  |bb|1-2"
    assert render("{{ ('x' * (10 * 1000)) | length }}") == str(10 * 1000)
    assert len(render("{{ 'x' * payload.n }}", n=MAX_COMPUTED_SIZE)) == MAX_RESULT_LENGTH + 2
    with pytest.raises(TemplateWarning, match="unsupported operand"):
        render("{{ payload.count + 'x' }}", count=1)


# --- read-only inputs and running out of memory -------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        '{{ payload.labels.update({"alertname": "Changed"}) }}',
        "{{ payload.labels.pop('alertname') }}",
        "{% set _ = payload.alerts.append(1) %}",
        "{% set alerts = payload.alerts %}{{ alerts.clear() }}",
        "{% for alert in payload.alerts %}{{ alert.setdefault('x', 1) }}{% endfor %}",
        "{{ labels.update(a=1) }}",
    ],
)
def test_a_template_cannot_change_what_it_is_given(source: str) -> None:
    payload = {"labels": {"alertname": "DiskFull"}, "alerts": [{"status": "firing"}]}
    labels = {"team": "db"}
    with pytest.raises(TemplateError, match="is unsafe"):
        apply_template(source, payload=payload, labels=labels)
    assert payload == {"labels": {"alertname": "DiskFull"}, "alerts": [{"status": "firing"}]}
    assert labels == {"team": "db"}


def test_a_template_may_change_what_it_made_itself() -> None:
    payload = {"labels": {"alertname": "DiskFull", "secret": "x"}, "alerts": [1, 2]}
    source = (
        "{% set labels = payload.labels.copy() %}{% set _ = labels.pop('secret') %}"
        "{% set seen = [] %}{% for a in payload.alerts %}{% set _ = seen.append(a * 2) %}{% endfor %}"
        "{% set alerts = payload.alerts | list %}{% set _ = alerts.reverse() %}"
        "{{ labels }} {{ seen }} {{ alerts }}"
    )
    assert apply_template(source, payload=payload) == "{'alertname': 'DiskFull'} [2, 4] [2, 1]"
    assert payload == {"labels": {"alertname": "DiskFull", "secret": "x"}, "alerts": [1, 2]}


def test_deeply_nested_input_is_still_read_only() -> None:
    payload: dict = {}
    inner = payload
    for _ in range(50_000):  # far deeper than recursion allows: the check walks it iteratively
        inner["next"] = {}
        inner = inner["next"]
    with pytest.raises(TemplateError, match="is unsafe"):
        apply_template("{{ payload.clear() }}", payload=payload)
    assert "next" in payload


class _Exhausting:
    @property
    def big(self) -> str:
        raise MemoryError


def test_running_out_of_memory_is_a_template_error_and_the_watch_is_told() -> None:
    seen = []

    class Watch(RenderWatch):
        def render_started(self) -> None:
            seen.append("started")

        def out_of_memory(self) -> None:
            seen.append("out of memory")

    watch_renders(Watch())
    try:
        with pytest.raises(TemplateOutOfMemory, match="ran out of memory"):
            apply_template("{{ payload.big }}", payload=_Exhausting())
        assert apply_template("{{ 1 }}") == "1"
    finally:
        watch_renders(None)
    assert seen == ["started", "out of memory", "started"]
    assert isinstance(TemplateOutOfMemory("x"), TemplateError)
