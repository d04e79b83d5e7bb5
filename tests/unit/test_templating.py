"""The sandboxed Jinja2 environment: filters, sandbox, limits, error classes, truthiness.

Mirrors what OnCall's own tests assert about its templating (reference §3 and §13.3).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from domain.templating import (
    MAX_RESULT_LENGTH,
    MAX_TEMPLATE_LENGTH,
    MAX_TITLE_LENGTH,
    TemplateError,
    TemplateWarning,
    apply_template,
    fallback_text,
    is_truthy,
    validate_syntax,
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


@pytest.mark.timeout(10)  # a hang here would otherwise stall the whole run
def test_catastrophic_regex_gives_up_after_the_timeout() -> None:
    # ~2 s by design: the regex timeout is the only render-time guard OnCall has.
    started = time.monotonic()
    rendered = render("{{ payload.s|regex_search('(a|aa)+$') }}", s="a" * 60 + "b")
    elapsed = time.monotonic() - started
    assert rendered == "None"
    assert 1.5 < elapsed < 5


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
