"""Marshmallow schemas: the API's request and response bodies (and its OpenAPI document)."""

from __future__ import annotations

import json
import re

from jinja2 import Environment, TemplateSyntaxError, nodes
from marshmallow import (
    EXCLUDE,
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from domain.heartbeat import TIMEOUT_OPTIONS
from domain.integrations import CHANNEL_ATTRIBUTES, TEMPLATE_FIELDS
from domain.templating import validate_syntax

# --- shared -------------------------------------------------------------------------------------


def storable_text(value: str) -> None:
    """Refuse what no store can keep, with Django REST framework's messages (OnCall's API).

    PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded at all.
    """
    if "\x00" in value:
        raise ValidationError("Null characters are not allowed.")
    surrogate = _SURROGATE.search(value)
    if surrogate:
        raise ValidationError(f"Surrogate characters are not allowed: U+{ord(surrogate.group()):X}.")


_SURROGATE = re.compile("[\ud800-\udfff]")


class Text(fields.String):
    """A string a user typed: refused (400, a field error) when no store could keep it."""

    def __init__(self, *args, validate=None, **kwargs):
        checks = [storable_text] + ([validate] if callable(validate) else list(validate or ()))
        super().__init__(*args, validate=checks, **kwargs)


class PageSchema(Schema):
    count = fields.Integer()
    next = fields.String(allow_none=True)
    previous = fields.String(allow_none=True)
    page_size = fields.Integer()
    current_page_number = fields.Integer()
    total_pages = fields.Integer()


class ErrorSchema(Schema):
    """``{"detail": "..."}``, or field errors ``{"<field>": ["..."]}`` (Django REST framework's shapes)."""

    class Meta:
        unknown = INCLUDE  # the document then allows the field names beside ``detail``

    detail = fields.Raw()


# --- alerts and alert groups --------------------------------------------------------------------


class AlertSchema(Schema):
    id = fields.String()
    alert_group_id = fields.String()
    created_at = fields.String()
    payload = fields.Function(lambda row: json.loads(row["payload"]))


class AlertPageSchema(PageSchema):
    results = fields.List(fields.Nested(AlertSchema))


class LastAlertSchema(Schema):
    id = fields.String()
    alert_group_id = fields.String()
    created_at = fields.String()
    payload = fields.Raw()


class PermalinksSchema(Schema):
    slack = fields.String(allow_none=True)
    slack_app = fields.String(allow_none=True)
    telegram = fields.String(allow_none=True)
    web = fields.String()


class AlertGroupSchema(Schema):
    id = fields.String()
    integration_id = fields.String()
    team_id = fields.String(allow_none=True)
    route_id = fields.String()
    alerts_count = fields.Integer()
    state = fields.String(validate=validate.OneOf(["firing", "acknowledged", "resolved", "silenced"]))
    created_at = fields.String()
    resolved_at = fields.String(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    acknowledged_at = fields.String(allow_none=True)
    acknowledged_by = fields.String(allow_none=True)
    labels = fields.List(fields.Dict())
    title = fields.String()
    permalinks = fields.Nested(PermalinksSchema)
    silenced_at = fields.String(allow_none=True)
    silenced_until = fields.String(allow_none=True)
    last_alert = fields.Nested(LastAlertSchema, allow_none=True)


class AlertGroupPageSchema(PageSchema):
    results = fields.List(fields.Nested(AlertGroupSchema))


MAX_SILENCE_SECONDS = 100 * 365 * 24 * 3600


class SilenceSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    # Lenient as OnCall (it calls int() on whatever was sent): "3600" and 1.5 are accepted. At
    # most a century: the end of a silence must be a date.
    delay = fields.Integer(required=True, allow_none=False, validate=validate.Range(min=-1, max=MAX_SILENCE_SECONDS))


class TimelineEntrySchema(Schema):
    type = fields.Integer()
    action = fields.String()
    author = fields.String(allow_none=True)
    created_at = fields.String()
    realm = fields.String()
    details = fields.Function(lambda row: json.loads(row["details"]))


class TimelineSchema(Schema):
    alert_group_id = fields.String()
    results = fields.List(fields.Nested(TimelineEntrySchema))


# --- integrations -------------------------------------------------------------------------------

CHANNEL_FIELDS = CHANNEL_ATTRIBUTES
TOP_LEVEL_TEMPLATES = ("grouping_key", "resolve_signal", "acknowledge_signal", "source_link")
assert set(TOP_LEVEL_TEMPLATES) | {f"{c}.{a}" for c, attrs in CHANNEL_FIELDS.items() for a in attrs} == set(
    TEMPLATE_FIELDS
)


def _channel_schema(name: str, attrs: tuple[str, ...]) -> type[Schema]:
    return Schema.from_dict({a: Text(allow_none=True) for a in attrs}, name=f"{name.title()}Templates")


# OnCall's nested ``templates``; ``null`` means "the type's default". Fields left out are left as
# they are on update, so the schema sets no load defaults.
TemplatesSchema = Schema.from_dict(
    {
        **{name: Text(allow_none=True) for name in TOP_LEVEL_TEMPLATES},
        **{
            channel: fields.Nested(_channel_schema(channel, attrs), allow_none=True)
            for channel, attrs in CHANNEL_FIELDS.items()
        },
    },
    name="Templates",
)


def flatten_templates(nested: dict, partial: bool) -> dict[str, str | None]:
    """Nested API templates to flat field names; on update only the fields that were given."""
    flat: dict[str, str | None] = {}
    for name in TOP_LEVEL_TEMPLATES:
        if name in nested or not partial:
            flat[name] = nested.get(name)
    for channel, attrs in CHANNEL_FIELDS.items():
        if partial and channel not in nested:
            continue
        values = nested.get(channel)  # a whole channel set to null resets all of it
        for attr in attrs:
            if values is None or not partial or attr in values:
                flat[f"{channel}.{attr}"] = (values or {}).get(attr)
    return flat


def nest_templates(flat: dict[str, str]) -> dict:
    nested: dict = {name: flat.get(name) for name in TOP_LEVEL_TEMPLATES}
    for channel, attrs in CHANNEL_FIELDS.items():
        nested[channel] = {attr: flat.get(f"{channel}.{attr}") for attr in attrs}
    return nested


class HeartbeatWriteSchema(Schema):
    timeout_seconds = fields.Integer(
        validate=validate.OneOf(TIMEOUT_OPTIONS, error="Must be one of: {choices}.")
    )


def _unstorable_literal(source: str) -> str | None:
    """A string literal whose escape makes a lone surrogate (``"\\ud800"``): every alert it
    rendered would be text no store can encode."""
    try:
        parsed = _PARSER.parse(source)
    except TemplateSyntaxError:  # validate_syntax has the say on syntax
        return None
    for literal in parsed.find_all(nodes.Const):
        if isinstance(literal.value, str):
            try:
                storable_text(literal.value.replace("\x00", ""))  # NUL is shown as U+FFFD
            except ValidationError as refused:
                return refused.messages[0]
    return None


_PARSER = Environment()  # syntax only: the sandbox's filters and tests play no part in parsing


class IntegrationWriteSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = Text()
    name = Text(validate=validate.Length(min=1, max=150))
    description_short = Text(allow_none=True, validate=validate.Length(max=250))
    team_id = Text(allow_none=True)
    templates = fields.Nested(TemplatesSchema(unknown=EXCLUDE), allow_none=True)
    heartbeat = fields.Nested(HeartbeatWriteSchema(unknown=EXCLUDE))

    @validates_schema
    def check_templates(self, data, **kwargs):
        templates = data.get("templates") or {}
        errors = {}
        for field, source in flatten_templates(templates, partial=True).items():
            if source:
                problem = validate_syntax(source) or _unstorable_literal(source)
                if problem:
                    errors[field] = [f"Invalid {field} template: {problem}"]
        if errors:
            raise ValidationError({"templates": errors})


class RouteSummarySchema(Schema):
    id = fields.String()
    escalation_chain_id = fields.String(allow_none=True)
    slack = fields.Dict()
    telegram = fields.Dict()


class HeartbeatSchema(Schema):
    link = fields.String()
    timeout_seconds = fields.Integer()
    last_heartbeat_time = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(["not_armed", "alive", "expired"]))


class IntegrationSchema(Schema):
    id = fields.String()
    name = fields.String()
    description_short = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    link = fields.String(allow_none=True)
    inbound_email = fields.String(allow_none=True)
    type = fields.String()
    default_route = fields.Nested(RouteSummarySchema)
    templates = fields.Dict()
    heartbeat = fields.Nested(HeartbeatSchema, allow_none=True)
    maintenance_mode = fields.String(allow_none=True)
    maintenance_started_at = fields.String(allow_none=True)
    maintenance_end_at = fields.String(allow_none=True)


class IntegrationPageSchema(PageSchema):
    results = fields.List(fields.Nested(IntegrationSchema))
