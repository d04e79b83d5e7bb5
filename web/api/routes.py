"""``/api/v1/routes/``: OnCall's routes (admins write). Every integration has a default route,
tried last, that cannot be deleted; the others are tried in ``position`` order."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from domain.escalation import RouteRefused
from domain.ids import PREFIX_ROUTE, public_id
from domain.routes import (
    MAX_ROUTING_TERM_LENGTH,
    ROUTING_REGEX,
    ROUTING_TYPES,
    routing_term_error,
)
from projections.escalation_chains import chain_by_id
from projections.queries import integration_by_id
from projections.routes import ROUTES_PAGE_SIZE, route_by_id, routes_page
from web import runtime
from web.api import (
    api,
    bad_request,
    config_change,
    found,
    load_body,
    not_found,
    page_params,
    paginated,
    requires,
)
from web.api.schemas import PageSchema, Text

DEFAULT_TERM_FIXED = "Filtering term of default route cannot be changed"  # OnCall's text
MAX_ID_LENGTH = 100  # longer than any public id; a bound on what is echoed and looked up
# Django REST framework's texts (OnCall's API) for a missing or null field.
REQUIRED = {"required": "This field is required.", "null": "This field may not be null."}


class WholeNumber(fields.Integer):
    """An integer, and only that (JSON ``true`` is not 1); any size, for the caller to bound."""

    default_error_messages = {"invalid": "A valid integer is required."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


def known_routing_type(value: str) -> None:
    if value not in (*ROUTING_TYPES, "labels"):
        raise ValidationError(f'"{value[:100]}" is not a valid choice.')


class RouteWriteSchema(Schema):
    """A route as an admin sends it; on update every field is optional and ``integration_id``
    cannot change."""

    class Meta:
        unknown = EXCLUDE

    integration_id = Text(required=True, validate=validate.Length(max=MAX_ID_LENGTH), error_messages=REQUIRED)
    escalation_chain_id = Text(allow_none=True, validate=validate.Length(max=MAX_ID_LENGTH))
    routing_type = Text(validate=known_routing_type, metadata={"enum": [*ROUTING_TYPES, "labels"]})
    routing_regex = Text(
        required=True,
        error_messages=REQUIRED,
        validate=validate.Length(
            max=MAX_ROUTING_TERM_LENGTH, error="Ensure this field has no more than {max} characters."
        ),
    )
    position = WholeNumber(metadata={"description": "0 is tried first; -1 (or past the end): last before the default"})


class ChannelSchema(Schema):
    channel_id = fields.Constant(None)
    enabled = fields.Constant(False)


class TelegramSchema(Schema):
    id = fields.Constant(None)
    enabled = fields.Constant(False)


class RouteSchema(Schema):
    """OnCall's route shape (chat channels are not part of Tocsin: shown off)."""

    id = fields.String()
    integration_id = fields.String()
    escalation_chain_id = fields.String(allow_none=True)
    routing_type = fields.String()
    routing_regex = fields.String(allow_none=True)
    position = fields.Integer()
    is_the_last_route = fields.Boolean()
    slack = fields.Nested(ChannelSchema)
    telegram = fields.Nested(TelegramSchema)


class RoutePageSchema(PageSchema):
    results = fields.List(fields.Nested(RouteSchema))


route_schema = RouteSchema()


def serialise(row: dict) -> dict:
    return route_schema.dump(
        {
            **row,
            "routing_type": row["routing_type"] or ROUTING_REGEX,  # the default route's, as OnCall's
            "is_the_last_route": bool(row["is_default"]),
            "slack": {},
            "telegram": {},
        }
    )


def _route_or_404(route_id: str) -> dict:
    return found(route_by_id, route_id)


def _chain_uuid(data: dict) -> UUID | None:
    """The escalation chain named by ``escalation_chain_id`` (None: no chain); 400 if it is none."""
    chain_id = data.get("escalation_chain_id")
    if chain_id is None:
        return None
    chain = chain_by_id(runtime().db, chain_id)
    if chain is None:
        raise bad_request({"escalation_chain_id": [f'Invalid pk "{chain_id}" - object does not exist.']})
    return UUID(chain["uuid"])


def _check_term(routing_type: str, term: str) -> None:
    """OnCall's answers: a bad regex in ``detail``, the rest as non-field errors."""
    error = routing_term_error(routing_type, term)
    if error is None:
        return
    if routing_type == ROUTING_REGEX:
        raise bad_request(error)
    raise bad_request({"non_field_errors": [error]})


@api.get("/routes/", strict_slashes=False)
def list_routes():
    number, size = page_params(ROUTES_PAGE_SIZE)
    filters = {name: request.args.get(name) for name in ("integration_id", "routing_regex")}
    page = routes_page(runtime().db, filters, number, size)
    return jsonify(paginated(page, [serialise(row) for row in page.rows]))


@api.get("/routes/<route_id>/", strict_slashes=False)
def get_route(route_id: str):
    return jsonify(serialise(_route_or_404(route_id)))


@api.post("/routes/", strict_slashes=False)
@requires("admin")
def create_route():
    data = load_body(RouteWriteSchema(), partial=False)
    rt = runtime()
    integration = integration_by_id(rt.db, data["integration_id"])
    if integration is None:
        raise bad_request({"integration_id": [f'Invalid pk "{data["integration_id"]}" - object does not exist.']})
    routing_type = data.get("routing_type", ROUTING_REGEX)
    _check_term(routing_type, data["routing_regex"])
    try:
        route_uuid, position = rt.config.add_route(
            UUID(integration["uuid"]),
            routing_type=routing_type,
            routing_regex=data["routing_regex"],
            escalation_chain_id=_chain_uuid(data),
            position=data.get("position"),
        )
    except AggregateNotFoundError:  # the integration was deleted meanwhile
        raise bad_request({"integration_id": [f'Invalid pk "{data["integration_id"]}" - object does not exist.']})
    rt.wait_for("config", position)
    return jsonify(serialise(_route_or_404(public_id(PREFIX_ROUTE, route_uuid)))), 201


@api.route("/routes/<route_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_route(route_id: str):
    row = _route_or_404(route_id)
    data = load_body(RouteWriteSchema(), partial=True)
    rt = runtime()
    integration = integration_by_id(rt.db, row["integration_id"])
    if integration is None:
        not_found()
    if row["is_default"] and data.get("routing_regex") is not None:
        raise bad_request(DEFAULT_TERM_FIXED)
    changes = {}
    if "escalation_chain_id" in data:
        changes["escalation_chain_id"] = _chain_uuid(data)
    if not row["is_default"] and ("routing_type" in data or "routing_regex" in data):
        routing_type = data.get("routing_type", row["routing_type"])
        routing_regex = data.get("routing_regex", row["routing_regex"])
        _check_term(routing_type, routing_regex)
        changes.update(routing_type=routing_type, routing_regex=routing_regex)
    try:
        position = rt.config.change_route(
            UUID(integration["uuid"]), UUID(row["uuid"]), position=data.get("position"), **changes
        )
    except RouteRefused as refused:
        raise bad_request(str(refused))
    except AggregateNotFoundError:  # deleted meanwhile
        not_found()
    rt.wait_for("config", position)
    return jsonify(serialise(_route_or_404(route_id)))


@api.delete("/routes/<route_id>/", strict_slashes=False)
@requires("admin")
def delete_route(route_id: str):
    row = _route_or_404(route_id)
    if row["is_default"]:
        raise bad_request("Unable to delete default filter")
    rt = runtime()
    integration = integration_by_id(rt.db, row["integration_id"])
    if integration is None:
        not_found()
    config_change(lambda config: config.remove_route(UUID(integration["uuid"]), UUID(row["uuid"])))
    return Response(status=204)

