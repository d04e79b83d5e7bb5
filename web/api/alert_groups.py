"""``/api/v1/alert_groups/``: list, get, actions, and the audit timeline."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from uuid import UUID

from flask import Response, jsonify, request
from marshmallow import ValidationError

from domain.alert_group import ActionRefused
from domain.commands import (
    USER_ACTIONS,
    Acknowledge,
    GroupAction,
    Resolve,
    Silence,
    Unacknowledge,
    Unresolve,
    Unsilence,
)
from projections.queries import alert_group, alert_groups_page, timeline
from web import runtime
from web.api import (
    api,
    bad_request,
    caller_name,
    found,
    json_response,
    json_text,
    page_params,
    paginated_response,
    requires,
)
from web.api.schemas import AlertGroupSchema, SilenceSchema, TimelineSchema

STATES = ("new", "acknowledged", "resolved", "silenced")
STARTED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S"
ROW_JSON_CACHE_SIZE = 4096
group_schema = AlertGroupSchema()

# Stands in for the last alert's payload while the schema writes a row, then the stored payload
# text replaces it. Random per process, so no data can contain it on purpose; checked anyway.
_PAYLOAD_MARK = f"payload-{secrets.token_hex(16)}"
_PAYLOAD_MARK_JSON = json_text(_PAYLOAD_MARK)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


class _RowJsonCache:
    """A bounded LRU of rows' JSON (ASCII bytes, ready for the body), shared by the server's threads."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: list[tuple]) -> list[bytes | None]:
        with self._lock:
            found = [self._entries.get(key) for key in keys]
            for key, text in zip(keys, found):
                if text is not None:
                    self._entries.move_to_end(key)
        return found

    def put_many(self, entries: dict[tuple, bytes]) -> None:
        with self._lock:
            self._entries.update(entries)
            for key in entries:
                self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)


_row_json_cache = _RowJsonCache(ROW_JSON_CACHE_SIZE)


def _group(row: dict, base_url: str, payload: object) -> dict:
    """What ``group_schema`` dumps for a row, with ``payload`` as the last alert's."""
    last_alert = None
    if row.get("last_alert_id"):
        last_alert = {
            "id": row["last_alert_id"],
            "alert_group_id": row["id"],
            "created_at": row["last_alert_created_at"],
            "payload": payload,
        }
    return {
        **row,
        "team_id": None,
        "created_at": row["started_at"],
        "labels": [],
        "permalinks": {
            "slack": None,
            "slack_app": None,
            "telegram": None,
            "web": f"{base_url}/alert-groups/{row['id']}",
        },
        "last_alert": last_alert,
    }


def _payload_json(stored: str | None) -> str:
    """The stored payload text (JSON, written by the service) made ASCII, as jsonify writes it.

    Non-ASCII can only occur inside JSON strings, so escaping each run is what ``ensure_ascii``
    does to the parsed value. Whitespace between tokens, if the text has any, is kept.
    """
    if not stored:
        return "null"
    if stored.isascii():
        return stored
    return _NON_ASCII.sub(lambda run: json_text(run.group())[1:-1], stored)


def _write_row_json(row: dict, base_url: str) -> str:
    """What ``jsonify`` writes for the group, but with the stored payload text spliced in."""
    if not row.get("last_alert_id"):
        return json_text(group_schema.dump(_group(row, base_url, None)))
    # The schema writes every field but the payload, which is stored as JSON already: parsing it
    # only to write it again was a large part of a list's cost.
    text = json_text(group_schema.dump(_group(row, base_url, _PAYLOAD_MARK)))
    if text.count(_PAYLOAD_MARK_JSON) == 1:
        return text.replace(_PAYLOAD_MARK_JSON, _payload_json(row["last_alert_payload"]))
    stored = row["last_alert_payload"]  # the row's own fields contain the mark: parse, as before
    return json_text(group_schema.dump(_group(row, base_url, json.loads(stored) if stored else None)))


def _rows_json(rows: list[dict]) -> list[bytes]:
    """Group rows (as ``alert_group`` and ``alert_groups_page`` select them) as the API's JSON.

    Polls re-read mostly unchanged rows, so their JSON is kept, keyed by every column but the
    payload: that is the last alert's (``last_alert_id``), and alerts are never changed. Both
    queries select the same columns in the same order, so the values alone identify a row.
    """
    base_url = runtime().settings.base_url
    keys = []
    for row in rows:
        columns = dict(row)
        del columns["last_alert_payload"]
        keys.append((base_url, *columns.values()))
    texts = _row_json_cache.get_many(keys)
    written = {}
    for index, (row, key, text) in enumerate(zip(rows, keys, texts)):
        if text is None:
            texts[index] = written[key] = _write_row_json(row, base_url).encode()
    if written:
        _row_json_cache.put_many(written)
    return texts


def _filters() -> dict:
    args = request.args
    filters = {name: args.get(name) for name in ("id", "integration_id", "route_id")}
    # As OnCall: case-insensitive, and an empty value is no filter.
    state = (args.get("state") or "").lower()
    if state:
        if state not in STATES:
            raise bad_request({"state": f"Must be one of the following: {', '.join(STATES)}"})
        filters["state"] = "firing" if state == "new" else state
    started_at = args.get("started_at")
    if started_at:
        try:
            start, end = (
                datetime.strptime(part, STARTED_AT_FORMAT).replace(tzinfo=UTC)
                for part in started_at.split("_")
            )
        except ValueError:
            raise bad_request(
                {"started_at": "Invalid range value. Use %Y-%m-%dT%H:%M:%S_%Y-%m-%dT%H:%M:%S"}
            )
        filters["started_after"] = start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        filters["started_before"] = end.strftime("%Y-%m-%dT%H:%M:%S.999999Z")
    return filters


@api.get("/alert_groups/", strict_slashes=False)
def list_alert_groups():
    number, size = page_params()
    page = alert_groups_page(runtime().db, _filters(), number, size)
    return paginated_response(page, _rows_json(page.rows))


def _group_or_404(group_id: str) -> dict:
    return found(alert_group, group_id)


@api.get("/alert_groups/<group_id>/", strict_slashes=False)
def get_alert_group(group_id: str):
    return json_response(*_rows_json([_group_or_404(group_id)]))


@api.get("/alert_groups/<group_id>/timeline/", strict_slashes=False)
def get_timeline(group_id: str):
    _group_or_404(group_id)
    rows = [{**row, "realm": "alert_group"} for row in timeline(runtime().db, group_id)]
    return jsonify(TimelineSchema().dump({"alert_group_id": group_id, "results": rows}))


def act_on_group(row: dict, action: str | type[GroupAction], by: str, **fields) -> None:
    """Run ``action`` (a command type, or its name in ``USER_ACTIONS``) on the group ``row`` as
    ``by`` (``ActionRefused`` passes up), and wait until the read models show it. Shared with
    the dashboard."""
    rt = runtime()
    command_type = USER_ACTIONS[action] if isinstance(action, str) else action
    command = command_type(group_id=UUID(row["uuid"]), by=by, at=datetime.now(UTC), **fields)
    position = rt.alerting.handle(command)
    rt.wait_for("alerting", position)  # the next GET shows the change


def _act(group_id: str, action: type[GroupAction], **fields) -> Response:
    row = _group_or_404(group_id)
    try:
        act_on_group(row, action, caller_name(), **fields)
    except ActionRefused as refused:
        raise bad_request(str(refused))
    return Response(status=200)


@api.post("/alert_groups/<group_id>/acknowledge", strict_slashes=False)
@requires("editor")
def acknowledge(group_id: str):
    return _act(group_id, Acknowledge)


@api.post("/alert_groups/<group_id>/unacknowledge", strict_slashes=False)
@requires("editor")
def unacknowledge(group_id: str):
    return _act(group_id, Unacknowledge)


@api.post("/alert_groups/<group_id>/resolve", strict_slashes=False)
@requires("editor")
def resolve(group_id: str):
    return _act(group_id, Resolve)


@api.post("/alert_groups/<group_id>/unresolve", strict_slashes=False)
@requires("editor")
def unresolve(group_id: str):
    return _act(group_id, Unresolve)


@api.post("/alert_groups/<group_id>/silence", strict_slashes=False)
@requires("editor")
def silence(group_id: str):
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(body, dict) or body.get("delay") is None:
        raise bad_request("delay is required")
    try:
        delay = SilenceSchema().load(body)["delay"]
    except ValidationError:
        raise bad_request("invalid delay value")
    return _act(group_id, Silence, delay=delay)


@api.post("/alert_groups/<group_id>/unsilence", strict_slashes=False)
@requires("editor")
def unsilence(group_id: str):
    return _act(group_id, Unsilence)
