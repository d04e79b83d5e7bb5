"""Template preview and demo alerts for one integration.

``POST /api/v1/integrations/{id}/preview_template`` renders one template, or a proposed set, against
a payload (given, one of the integration's alerts, or its newest alert) and saves nothing: viewers
may use it. ``POST /api/v1/integrations/{id}/send_demo_alert`` sends the type's example payload (or
a given one) through the inbox like an inbound alert, marked as a demo: ingest never groups it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from flask import jsonify
from marshmallow import EXCLUDE, Schema, ValidationError, fields

from adapters.render_pool import Done, Stopped
from domain.inbox import KIND_DEMO, ReceivedAlert
from domain.integrations import (
    CHANNEL_ATTRIBUTES,
    INTEGRATION_TYPES,
    TEMPLATE_FIELDS,
    IntegrationType,
)
from domain.integrations.preview import preview_field as render_preview
from projections.queries import integration_by_id
from web import runtime
from web.api import api, bad_request, json_object, not_found, requires
from web.api.schemas import TemplatesSchema, flatten_templates

# OnCall's internal preview names its templates differently; both spellings are accepted.
ONCALL_TEMPLATE_NAMES = {
    "grouping_id": "grouping_key",
    "resolve_condition": "resolve_signal",
    "acknowledge_condition": "acknowledge_signal",
    **{f"{channel}_{attr}": f"{channel}.{attr}" for channel, attrs in CHANNEL_ATTRIBUTES.items() for attr in attrs},
}
NO_ALERT = "Alert to preview does not exist"
DEMO_NOT_AVAILABLE = "Demo alerts are not available for this integration type"


# --- request and response bodies (also in the OpenAPI document) ---------------------------------


def _described(text: str) -> dict:
    return {"metadata": {"description": text}}


class PreviewTemplateRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # lenient as the other bodies; unknown template names still fail

    template_name = fields.String(
        **_described("A flat template name (web.title, grouping_key, ...) or OnCall's (web_title, grouping_id).")
    )
    template_body = fields.String(
        allow_none=True, **_described("Jinja source; empty or null previews the type's default.")
    )
    templates = fields.Nested(
        TemplatesSchema,
        **_described("A proposed set, nested as in the integrations API; every given field is rendered."),
    )
    payload = fields.Raw(allow_none=True, **_described("The alert payload to render against."))
    alert_id = fields.String(**_described("Render against this alert of the integration instead."))


class PreviewResultSchema(Schema):
    preview = fields.String(allow_none=True, **_described("The rendered value; null on error or no template."))
    is_valid_json_object = fields.Boolean()
    error = fields.String(
        **_described('Present when rendering failed: "Template Error: ..." or "Template Warning: ...".')
    )
    grouping_distinction = fields.String(
        allow_none=True, **_described("grouping_key only: md5 of the key; null = a group of its own.")
    )
    is_resolve_signal = fields.Boolean(**_described("resolve_signal only: would the alert resolve its group."))
    is_acknowledge_signal = fields.Boolean(**_described("acknowledge_signal only."))


class PreviewSetResultSchema(Schema):
    templates = fields.Dict(**_described("The given fields, nested as in the request, each a PreviewResult."))


class DemoAlertRequestSchema(Schema):
    payload = fields.Raw(**_described("Sent instead of the type's example payload."))


# --- rendering ---------------------------------------------------------------------------------


def preview_fields(kind: IntegrationType, templates: dict, names: list[str], payload: Any, meta: dict) -> dict[str, dict]:
    """Each of the fields ``names`` of ``templates`` rendered as the preview shows it, in a bounded
    render worker (shared with the dashboard).

    A render that goes over the hard limit answers its template error; the request's later fields
    are then not rendered (same error), so a request answers within about one limit.
    """
    stopped: list[str] = []

    def job(index: int) -> tuple:
        return kind.slug, templates, names[index], payload, meta, stopped[0] if stopped else None

    def replace_stopped(index: int, reason: str) -> tuple:
        stopped.append(f"Template Error: Template rendering was stopped: it {_stop_cause(reason)}")
        return job(index)

    pool = runtime().render_pool
    outcomes = pool.run(render_preview, _Jobs(job, len(names)), replace_stopped=replace_stopped)
    results = {}
    for name, outcome in zip(names, outcomes):
        if isinstance(outcome, Done):
            results[name] = outcome.value
        else:  # even the answer without rendering failed (the payload alone is too big), or a defect
            cause = _stop_cause(outcome.reason) if isinstance(outcome, Stopped) else "failed"
            results[name] = {"preview": None, "is_valid_json_object": False, "error": f"Template Error: the preview {cause}"}
    return results


def preview_field(kind: IntegrationType, templates: dict, field: str, payload: Any, meta: dict) -> dict:
    """Render ``field`` of ``templates`` (custom sources; the rest are the type's defaults)."""
    return preview_fields(kind, templates, [field], payload, meta)[field]


def _stop_cause(reason: str) -> str:
    pool = runtime().render_pool
    if reason == "time":
        return f"took longer than {pool.hard_limit:g}s"
    if reason == "memory":
        return f"needed more than {(pool.memory_limit or 0) // (1024 * 1024)} MiB of memory"
    return "crashed its render process"


class _Jobs(Sequence):
    """Jobs made when sent, so that a stop earlier in the request applies to the later ones."""

    def __init__(self, make: Callable[[int], tuple], length: int):
        self._make, self._length = make, length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._make(index)


# --- endpoints ---------------------------------------------------------------------------------


def _integration(integration_id: str) -> dict:
    row = integration_by_id(runtime().db, integration_id)
    if row is None:
        not_found()
    return row


def _alert_to_preview(row: dict, alert_id: str | None) -> dict:
    db = runtime().db
    if alert_id is not None:
        alert = db.query_one(
            "SELECT id, alert_group_id, payload FROM alerts WHERE id = %s AND integration_id = %s",
            (alert_id, row["id"]),
        )
    else:
        # Through the groups' last alerts: indexed by integration, and the newest alert is one of them.
        alert = db.query_one(
            "SELECT a.id, a.alert_group_id, a.payload FROM alert_groups g JOIN alerts a ON a.id = g.last_alert_id"
            " WHERE g.integration_id = %s ORDER BY a.position DESC LIMIT 1",
            (row["id"],),
        )
    if alert is None:
        raise bad_request(NO_ALERT if alert_id is not None else f"{NO_ALERT}: the integration has no alert yet.")
    return alert


@api.post("/integrations/<integration_id>/preview_template", strict_slashes=False)
def preview_template(integration_id: str):
    row = _integration(integration_id)
    try:
        data = PreviewTemplateRequestSchema().load(json_object(empty_is={}))
    except ValidationError as invalid:
        raise bad_request(invalid.messages)
    if ("template_name" in data) == ("templates" in data):
        raise bad_request("Give either template_name (with template_body) or templates.")
    if data.get("payload") is not None and "alert_id" in data:
        raise bad_request("Give either payload or alert_id, not both.")
    kind = INTEGRATION_TYPES.get(row["type"])
    if kind is None:
        raise bad_request("Templates are not available for this integration type")

    if data.get("payload") is not None:
        payload, link = data["payload"], None
    else:
        alert = _alert_to_preview(row, data.get("alert_id"))
        payload = json.loads(alert["payload"])
        link = f"{runtime().settings.base_url}/alert-groups/{alert['alert_group_id']}"
    meta = {"integration_name": row["name"], "link": link}

    if "template_name" in data:
        field = ONCALL_TEMPLATE_NAMES.get(data["template_name"], data["template_name"])
        if field not in TEMPLATE_FIELDS:
            raise bad_request({"template_name": [f"Unknown template. Use one of: {', '.join(TEMPLATE_FIELDS)}."]})
        templates = {**row["templates"], field: data.get("template_body")}
        return jsonify(preview_field(kind, templates, field, payload, meta))

    proposed = flatten_templates(data["templates"], partial=True)
    templates = {**row["templates"], **proposed}
    results = preview_fields(kind, templates, list(proposed), payload, meta)
    given: dict[str, Any] = {}  # the given fields, in the request's shape
    for name in data["templates"]:
        if name in CHANNEL_ATTRIBUTES:
            given[name] = {a: results[f"{name}.{a}"] for a in CHANNEL_ATTRIBUTES[name] if f"{name}.{a}" in results}
        else:
            given[name] = results[name]
    return jsonify({"templates": given})


@api.post("/integrations/<integration_id>/send_demo_alert", strict_slashes=False)
@requires("editor")
def send_demo_alert(integration_id: str):
    submit_demo_alert(_integration(integration_id), json_object(empty_is={}).get("payload"))
    return jsonify({})


def submit_demo_alert(row: dict, payload: Any) -> None:
    """Commit a demo alert for the integration ``row`` (``payload`` None: the type's example).
    Shared with the dashboard."""
    kind = INTEGRATION_TYPES.get(row["type"])
    if kind is None or kind.example_payload is None:
        raise bad_request(DEMO_NOT_AVAILABLE)
    if payload is None:
        payload = kind.example_payload
    try:
        # Strict, as the inbound URLs: NaN or a lone surrogate could not be stored.
        payload_json = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        payload_json.encode()
    except ValueError as exc:
        raise bad_request(f"The payload cannot be stored: {exc}")
    if not kind.split(payload):
        raise bad_request("The payload holds no alert for this integration type.")
    entry = ReceivedAlert(
        integration_id=UUID(row["uuid"]),
        kind=KIND_DEMO,
        payload_json=payload_json,
        received_at=datetime.now(UTC),
    )
    runtime().committer.submit(entry)  # the same durable path as inbound alerts (503 if it fails)
