"""``/api/v1/on_call_shifts/``: OnCall's on-call shifts, with its validation and error texts.

``start``, ``rotation_start`` and ``until`` are wall-clock times in the shift's ``time_zone``
(else the schedule's); ``duration`` is in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from flask import Response, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate

from domain.ids import public_id
from domain.schedules import (
    FREQUENCIES,
    OVERRIDE,
    RECURRENT_EVENT,
    ROLLING_USERS,
    SHIFT_TYPES,
    SINGLE_EVENT,
    WEEKDAYS,
)
from domain.schedules.aggregates import (
    PREFIX_SHIFT,
    VERSION_KEYS,
    WALL_CLOCK_FORMAT,
    edited_from_now,
    ended_now,
    shift_from_spec,
)
from domain.schedules.shifts import MAX_YEAR, MIN_YEAR, ShiftError, to_local, zone_info
from domain.users import is_timezone
from projections.schedules import (
    live_user_ids,
    shift_by_id,
    shift_name_taken,
    shifts_page,
    web_schedule_zone,
)
from projections.users import live_teams
from web import runtime
from web.api import (
    ApiError,
    api,
    bad_request,
    config_change,
    found,
    json_object,
    not_found,
    page_params,
    paginated,
    requires,
)
from web.api.schemas import PageSchema, storable_text

MAX_NAME_LENGTH = 200
MAX_USERS = 100  # per shift, and per rotation group
MAX_GROUPS = 100
MAX_DURATION_SECONDS = 366 * 24 * 3600
MAX_INTERVAL = 1000
MAX_LEVEL = 1000
DATE_FORMAT_ERROR = "Invalid datetime format, should be \"yyyy-mm-dd'T'hh:mm:ss\""
RECURRENCE_FIELDS = ("frequency", "interval", "until", "week_start", "by_day", "by_month", "by_monthday")
# OnCall clears what a type does not use (``_correct_validated_data``) and hides it.
UNUSED_BY_TYPE = {
    SINGLE_EVENT: (*RECURRENCE_FIELDS, "rolling_users", "start_rotation_from_user_index"),
    RECURRENT_EVENT: ("rolling_users", "start_rotation_from_user_index"),
    ROLLING_USERS: ("users",),
    OVERRIDE: ("level", *RECURRENCE_FIELDS, "rolling_users", "start_rotation_from_user_index"),
}
FIELDS = ("name", "type", "team_id", "time_zone", "level", "start", "duration", "rotation_start", *RECURRENCE_FIELDS,
          "users", "rolling_users", "start_rotation_from_user_index")


def field_error(field: str, message: str) -> ApiError:
    return bad_request({field: [message]})


def _text(data: dict, field: str, max_length: int) -> str:
    value = data[field]
    if not isinstance(value, str):
        raise field_error(field, "Not a valid string.")
    if len(value) > max_length:
        raise field_error(field, f"Ensure this field has no more than {max_length} characters.")
    try:
        storable_text(value)
    except ValidationError as invalid:  # with Django REST framework's text
        raise field_error(field, invalid.messages[0])
    if not value.strip():
        raise field_error(field, "This field may not be blank.")
    return value


def _integer(value, field: str, low: int, high: int, detail: str | None = None) -> int:
    """An integer in [low, high] (digits in a string count, as in Django REST framework);
    400 with ``detail`` if given, else a field error."""
    if isinstance(value, str) and len(value) < 20 and value.strip().lstrip("-").isdigit():
        value = int(value)
    is_integer = isinstance(value, int) and not isinstance(value, bool)
    if is_integer and low <= value <= high:
        return value
    if detail:
        raise bad_request(detail)
    raise field_error(field, f"Ensure this value is between {low} and {high}." if is_integer
                      else "A valid integer is required.")


def _wall_clock(value) -> str:
    if not isinstance(value, str) or len(value) > 40:
        raise bad_request(DATE_FORMAT_ERROR)
    try:
        moment = datetime.strptime(value, WALL_CLOCK_FORMAT)
    except ValueError:
        raise bad_request(DATE_FORMAT_ERROR)
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise bad_request(f"Dates must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return moment.strftime(WALL_CLOCK_FORMAT)


def _team(value) -> str | None:
    if value in (None, ""):  # Terraform sends "" for no team
        return None
    if not isinstance(value, str) or not live_teams(runtime().db, [value]):
        raise field_error("team_id", f'Invalid pk "{str(value)[:100]}" - object does not exist.')
    return value


def known_user_ids(field: str, ids) -> list[str]:
    if not isinstance(ids, list) or len(ids) > MAX_USERS or not all(isinstance(i, str) and len(i) < 100 for i in ids):
        raise field_error(field, f"Expected a list of at most {MAX_USERS} user ids.")
    existing = live_user_ids(runtime().db, ids)
    missing = [i for i in dict.fromkeys(ids) if i not in existing]
    if missing:
        raise field_error(field, f'Invalid pk "{missing[0]}" - object does not exist.')
    return list(dict.fromkeys(ids))


def shift_spec(body: dict, before: dict | None = None) -> dict:
    """The stored spec from a request (merged over ``before`` on update); 400 with OnCall's
    texts otherwise."""
    data = dict(before or {})
    given = {k: v for k, v in body.items() if k in FIELDS}
    data.update(given)
    for field in ("name", "type", "start", "duration"):
        if data.get(field) is None:
            raise field_error(field, "This field is required.")
    if data["type"] not in SHIFT_TYPES:
        raise bad_request("Invalid shift type")
    shift_type = data["type"]
    spec = {"name": _text(data, "name", MAX_NAME_LENGTH), "type": shift_type}
    if "name" in given and shift_name_taken(runtime().db, spec["name"], (before or {}).get("_id")):
        raise bad_request("On-call shift with this name already exists")
    spec["team_id"] = _team(data.get("team_id"))
    time_zone = data.get("time_zone")
    if time_zone is not None and (not isinstance(time_zone, str) or not is_timezone(time_zone)):
        raise field_error("time_zone", "Invalid timezone")
    spec["time_zone"] = time_zone
    spec["level"] = _integer(data.get("level") or 0, "level", -MAX_LEVEL, MAX_LEVEL)
    spec["start"] = _wall_clock(data["start"])
    spec["duration"] = _integer(data["duration"], "duration", 1, MAX_DURATION_SECONDS)
    spec["rotation_start"] = _wall_clock(data["rotation_start"]) if data.get("rotation_start") else spec["start"]
    frequency = data.get("frequency")
    if frequency is not None and frequency not in FREQUENCIES:
        raise bad_request("Invalid frequency type")
    week_start = data.get("week_start")
    if week_start is not None and week_start not in WEEKDAYS:
        raise bad_request("Invalid day format for week start field. "
                          "Should be one of the following: 'MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'")
    if shift_type in (RECURRENT_EVENT, ROLLING_USERS):
        if frequency is None:
            raise bad_request("Field 'frequency' is required for this on-call shift type")
        if frequency == "weekly" and week_start is None:
            raise bad_request("Field 'week_start' is required for frequency type 'weekly'")
    interval = data.get("interval")
    if interval is not None:
        interval = _integer(interval, "interval", 1, MAX_INTERVAL, detail="Invalid value for interval")
    by_day = data.get("by_day") or []
    if not isinstance(by_day, list) or len(by_day) > 7 or any(d not in WEEKDAYS for d in by_day):
        raise bad_request("Invalid day value in by_day field. Valid values: 'MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'")
    by_month = data.get("by_month") or []
    if not isinstance(by_month, list) or len(by_month) > 12 or any(
            isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 12 for m in by_month):
        raise bad_request("Invalid month value in by_month field. Valid values: from 1 to 12")
    by_monthday = data.get("by_monthday") or []
    if not isinstance(by_monthday, list) or len(by_monthday) > 62 or any(
            isinstance(d, bool) or not isinstance(d, int) or not -31 <= d <= 31 or d == 0 for d in by_monthday):
        raise bad_request("Invalid monthday value in by_monthday field. Valid values: from 1 to 31 and from -31 to -1")
    spec.update(frequency=frequency, interval=interval if interval is not None else (1 if frequency else None),
                until=_wall_clock(data["until"]) if data.get("until") else None, week_start=week_start or "SU",
                by_day=list(dict.fromkeys(by_day)), by_month=list(dict.fromkeys(by_month)),
                by_monthday=list(dict.fromkeys(by_monthday)))
    if shift_type == ROLLING_USERS:
        index = data.get("start_rotation_from_user_index")
        if index is None:
            raise bad_request("Field 'start_rotation_from_user_index' is required for this on-call shift type")
        spec["start_rotation_from_user_index"] = _integer(index, "start_rotation_from_user_index", 0, 10_000)
        if frequency == "daily":
            if spec["by_monthday"]:
                raise bad_request("Day limits are temporarily disabled for on-call shifts with type 'rolling_users' "
                                  "and frequency 'daily'")
            if spec["by_day"] and spec["interval"] > len(spec["by_day"]):
                raise bad_request("Interval must be less than or equal to the number of selected days")
        groups = data.get("rolling_users") or []
        if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
            raise field_error("rolling_users", f"Expected a list of at most {MAX_GROUPS} lists of user ids.")
        spec["rolling_users"] = [known_user_ids("rolling_users", group) for group in groups]
        spec["users"] = []
    else:
        spec["users"] = known_user_ids("users", data.get("users") or [])
        spec["rolling_users"] = None
        spec["start_rotation_from_user_index"] = None
    for field in UNUSED_BY_TYPE[shift_type]:
        if field in RECURRENCE_FIELDS:
            spec[field] = None if field != "week_start" else "SU"
    if shift_type == OVERRIDE:
        spec["level"] = 0
    try:
        shift_from_spec("check", spec)  # the engine's own invariants, as a last word
    except ShiftError as refused:
        raise field_error(refused.field, str(refused))
    return spec


def serialise(row: dict) -> dict:
    spec = row["spec"]
    result = {"id": row["id"], "team_id": spec.get("team_id"), "name": spec["name"], "type": spec["type"],
              "time_zone": spec.get("time_zone"), "level": spec.get("level", 0), "start": spec["start"],
              "duration": spec["duration"], "rotation_start": spec.get("rotation_start") or spec["start"]}
    for field in (*RECURRENCE_FIELDS, "users", "rolling_users", "start_rotation_from_user_index"):
        result[field] = spec.get(field)
    for field in ("by_day", "by_month", "by_monthday"):
        result[field] = result[field] or None
    for field in UNUSED_BY_TYPE[spec["type"]]:
        result.pop(field, None)
    if spec.get("frequency") != "weekly":
        result.pop("week_start", None)
    return result


def _web_rotation_now(row: dict) -> datetime | None:
    """Now as wall-clock time in the shift's zone, for a shift of a web schedule (else None)."""
    schedule_zone = web_schedule_zone(runtime().db, row["id"])
    if schedule_zone is None:
        return None
    return to_local(datetime.now(UTC), zone_info(row["spec"].get("time_zone") or schedule_zone))


def _shift_or_404(shift_id: str) -> dict:
    return found(shift_by_id, shift_id)


@api.get("/on_call_shifts/", strict_slashes=False)
def list_shifts():
    filters = {name: request.args.get(name) for name in ("name", "schedule_id")}
    if "team_id" in request.args:
        filters["team_id"] = request.args["team_id"]
    number, size = page_params()
    page = shifts_page(runtime().db, filters, number, size)
    return jsonify(paginated(page, [serialise(row) for row in page.rows]))


@api.get("/on_call_shifts/<shift_id>/", strict_slashes=False)
def get_shift(shift_id: str):
    return jsonify(serialise(_shift_or_404(shift_id)))


@api.post("/on_call_shifts/", strict_slashes=False)
@requires("admin")
def create_shift():
    spec = shift_spec(json_object())
    rt = runtime()
    shift, position = rt.config.create_shift(spec, at=datetime.now(UTC))
    rt.wait_for("config", position)
    return jsonify(serialise(_shift_or_404(public_id(PREFIX_SHIFT, shift.id)))), 201


@api.route("/on_call_shifts/<shift_id>/", methods=["PUT", "PATCH"], strict_slashes=False)
@requires("admin")
def update_shift(shift_id: str):
    row = _shift_or_404(shift_id)
    spec = shift_spec(json_object(), before={**row["spec"], "_id": row["id"]})
    now_local = _web_rotation_now(row)
    if now_local is not None:  # OnCall's web rotation: the edit counts from now on
        spec = edited_from_now(row["spec"], spec, now_local)
    else:
        spec = {**spec, **{key: row["spec"][key] for key in VERSION_KEYS if key in row["spec"]}}
    config_change(lambda config: config.update_shift(UUID(row["uuid"]), spec))
    return jsonify(serialise(_shift_or_404(shift_id)))


@api.delete("/on_call_shifts/<shift_id>/", strict_slashes=False)
@requires("admin")
def delete_shift(shift_id: str):
    """The shift stops counting from now; who was on call before stays answerable from the log.
    A started rotation of a web schedule is not deleted but ends now, as in OnCall, so that its
    past stays in the final shifts."""
    row = _shift_or_404(shift_id)
    rt = runtime()
    now_local = _web_rotation_now(row)
    ended = ended_now(row["spec"], now_local) if now_local is not None else None
    try:
        if ended is not None:
            position = rt.config.update_shift(UUID(row["uuid"]), ended)
        else:
            position = rt.config.delete_shift(UUID(row["uuid"]), at=datetime.now(UTC))
    except AggregateNotFoundError:
        not_found()
    rt.wait_for("config", position)
    return Response(status=204)


# --- the OpenAPI document -----------------------------------------------------------------------


class OnCallShiftSchema(Schema):
    """OnCall's on-call shift. Fields a type does not use are left out, and ``week_start`` is
    shown for weekly shifts only."""

    id = fields.String()
    team_id = fields.String(allow_none=True)
    name = fields.String()
    type = fields.String(validate=validate.OneOf(SHIFT_TYPES))
    time_zone = fields.String(allow_none=True, metadata={"description": "null: the schedule's"})
    level = fields.Integer()
    start = fields.String(metadata={"description": "wall-clock time in the time zone", "example": "2026-03-02T09:00:00"})
    duration = fields.Integer(metadata={"description": "seconds"})
    rotation_start = fields.String(metadata={"description": "the first occurrence made (wall-clock time)"})
    frequency = fields.String(allow_none=True, metadata={"description": "hourly, daily, weekly or monthly"})
    interval = fields.Integer(allow_none=True)
    until = fields.String(allow_none=True)
    week_start = fields.String(validate=validate.OneOf(WEEKDAYS))
    by_day = fields.List(fields.String(), allow_none=True)
    by_month = fields.List(fields.Integer(), allow_none=True)
    by_monthday = fields.List(fields.Integer(), allow_none=True)
    users = fields.List(fields.String())
    rolling_users = fields.List(fields.List(fields.String()), allow_none=True)
    start_rotation_from_user_index = fields.Integer(allow_none=True)


class OnCallShiftPageSchema(PageSchema):
    results = fields.List(fields.Nested(OnCallShiftSchema))


class OnCallShiftWriteSchema(Schema):
    """A shift as an admin sends it; on update the fields left out are kept."""

    name = fields.String(required=True, validate=validate.Length(max=MAX_NAME_LENGTH))
    type = fields.String(required=True, validate=validate.OneOf(SHIFT_TYPES))
    team_id = fields.String(allow_none=True)
    time_zone = fields.String(allow_none=True)
    level = fields.Integer(validate=validate.Range(-MAX_LEVEL, MAX_LEVEL))
    start = fields.String(required=True, metadata={"example": "2026-03-02T09:00:00"})
    duration = fields.Integer(required=True, validate=validate.Range(1, MAX_DURATION_SECONDS))
    rotation_start = fields.String(allow_none=True)
    frequency = fields.String(allow_none=True, validate=validate.OneOf(FREQUENCIES))
    interval = fields.Integer(allow_none=True, validate=validate.Range(1, MAX_INTERVAL))
    until = fields.String(allow_none=True)
    week_start = fields.String(allow_none=True, validate=validate.OneOf(WEEKDAYS))
    by_day = fields.List(fields.String(validate=validate.OneOf(WEEKDAYS)), allow_none=True)
    by_month = fields.List(fields.Integer(validate=validate.Range(1, 12)), allow_none=True)
    by_monthday = fields.List(fields.Integer(validate=validate.Range(-31, 31)), allow_none=True)
    users = fields.List(fields.String(), validate=validate.Length(max=MAX_USERS))
    rolling_users = fields.List(fields.List(fields.String(), validate=validate.Length(max=MAX_USERS)),
                                allow_none=True, validate=validate.Length(max=MAX_GROUPS))
    start_rotation_from_user_index = fields.Integer(allow_none=True)


def add_to_spec(spec) -> None:
    """``/api/v1/on_call_shifts/`` in the OpenAPI document."""
    from web.api.openapi import _errors, _ok, _path_id, _query

    for suffix, schema in (("", OnCallShiftSchema), ("Page", OnCallShiftPageSchema), ("Write", OnCallShiftWriteSchema)):
        spec.components.schema(f"OnCallShift{suffix}", schema=schema)
    body = {"required": True, "content": {"application/json": {"schema": "OnCallShiftWrite"}}}
    spec.path(
        "/api/v1/on_call_shifts/",
        operations={
            "get": {"summary": "List on-call shifts: name matches exactly, schedule_id: a schedule's shifts, "
                               "team_id=null: no team; 50 a page",
                    "parameters": _query(("name", "schedule_id", "team_id", "page", "perpage")),
                    "responses": _ok("OnCallShiftPage")},
            "post": {"summary": "Create an on-call shift (admins; OnCall's validation texts)", "requestBody": body,
                     "responses": _ok("OnCallShift", "201")},
        },
    )  # fmt: skip
    spec.path(
        "/api/v1/on_call_shifts/{id}/", parameters=_path_id("id"),
        operations={
            "get": {"summary": "Get an on-call shift", "responses": _ok("OnCallShift")},
            "put": {"summary": "Update (admins; fields left out are kept)", "requestBody": body,
                    "responses": _ok("OnCallShift")},
            "patch": {"summary": "Update (admins)", "requestBody": body, "responses": _ok("OnCallShift")},
            "delete": {"summary": "Delete (admins; who was on call before stays answerable from the log)",
                       "responses": {"204": {"description": "Deleted"}, **_errors()}},
        },
    )  # fmt: skip
