"""The OpenAPI document of the API, generated from the marshmallow schemas."""

from __future__ import annotations

from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import jsonify

from web.api import (
    api,
    integrations,
    on_call_shifts,
    personal_notification_rules,
    schedules,
    webhooks,
)
from web.api.schemas import (
    AlertGroupPageSchema,
    AlertGroupSchema,
    AlertPageSchema,
    ErrorSchema,
    IntegrationPageSchema,
    IntegrationSchema,
    IntegrationWriteSchema,
    SilenceSchema,
    TimelineSchema,
)

GROUP_FILTERS = ("id", "integration_id", "route_id", "state", "started_at", "page", "perpage")
ACTIONS = ("acknowledge", "unacknowledge", "resolve", "unresolve", "silence", "unsilence")


def _query(names) -> list[dict]:
    return [{"in": "query", "name": n, "schema": {"type": "string"}, "required": False} for n in names]


def _ok(schema: str, status: str = "200") -> dict:
    return {
        status: {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "400": {"description": "Invalid request", "content": {"application/json": {"schema": "Error"}}},
        "403": {"description": "Invalid token or role", "content": {"application/json": {"schema": "Error"}}},
    }


def _errors() -> dict:
    return {status: answer for status, answer in _ok("Error").items() if status != "200"}


def _path_id(name: str) -> list[dict]:
    return [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}]


def _add_template_preview_and_demo(spec: APISpec) -> None:
    from web.api.template_preview import (
        DemoAlertRequestSchema,
        PreviewResultSchema,
        PreviewSetResultSchema,
        PreviewTemplateRequestSchema,
    )

    for name, schema in (
        ("PreviewTemplateRequest", PreviewTemplateRequestSchema),
        ("PreviewResult", PreviewResultSchema),
        ("PreviewSetResult", PreviewSetResultSchema),
        ("DemoAlertRequest", DemoAlertRequestSchema),
    ):
        spec.components.schema(name, schema=schema)
    preview_result = {"oneOf": [{"$ref": "#/components/schemas/PreviewResult"},
                                {"$ref": "#/components/schemas/PreviewSetResult"}]}
    spec.path(
        "/api/v1/integrations/{id}/preview_template", parameters=_path_id("id"),
        operations={"post": {
            "summary": "Render a template (template_name + template_body) or a proposed set (templates) against "
                       "a payload, an alert_id of the integration, or by default its newest alert; saves nothing. "
                       "A template that fails answers 200 with preview null and error. Any role.",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": "PreviewTemplateRequest"}}},
            "responses": {"200": {"description": "PreviewResult for one template, PreviewSetResult for a set",
                                  "content": {"application/json": {"schema": preview_result}}},
                          **_errors()},
        }},
    )  # fmt: skip
    spec.path(
        "/api/v1/integrations/{id}/send_demo_alert", parameters=_path_id("id"),
        operations={"post": {
            "summary": "Send the type's example payload (or the given one) as a demo alert, which never groups "
                       "with other alerts. Editors and admins.",
            "requestBody": {"required": False, "content": {"application/json": {"schema": "DemoAlertRequest"}}},
            "responses": {"200": {"description": "Committed (an empty object)",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors(),
                          "503": {"description": "The event store cannot take the write; retry",
                                  "content": {"application/json": {"schema": "Error"}}}},
        }},
    )  # fmt: skip


def _add_users_and_teams(spec: APISpec) -> None:
    from web.api.teams import TeamPageSchema, TeamSchema, TeamWriteSchema
    from web.api.users import (
        ShortUserSchema,
        UserPageSchema,
        UserSchema,
        UserWriteSchema,
    )

    for name, schema in (
        ("User", UserSchema),
        ("ShortUser", ShortUserSchema),
        ("UserPage", UserPageSchema),
        ("UserWrite", UserWriteSchema),
        ("Team", TeamSchema),
        ("TeamPage", TeamPageSchema),
        ("TeamWrite", TeamWriteSchema),
    ):
        spec.components.schema(name, schema=schema)
    for plural, single, filters, note in (
        ("users", "User", ("username", "email", "roles", "short", "page", "perpage"),
         "username and email match regardless of case; roles (repeatable) takes admin, editor, viewer or "
         "OnCall's numbers 0, 1, 2; short=true gives the compact form (no slack, timezone, teams); 100 a page"),
        ("teams", "Team", ("name", "page", "perpage"), "name matches exactly; 50 a page"),
    ):  # fmt: skip
        body = {"required": True, "content": {"application/json": {"schema": f"{single}Write"}}}
        spec.path(
            f"/api/v1/{plural}/",
            operations={
                "get": {"summary": f"List {plural}: {note}", "parameters": _query(filters),
                        "responses": _ok(f"{single}Page")},
                "post": {"summary": f"Create a {single.lower()} (admins)", "requestBody": body,
                         "responses": _ok(single, "201")},
            },
        )  # fmt: skip
        current = " (`current`: the caller's own)" if plural == "users" else ""
        spec.path(
            f"/api/v1/{plural}/{{id}}/", parameters=_path_id("id"),
            operations={
                "get": {"summary": f"Get a {single.lower()}{current}", "responses": _ok(single)},
                "put": {"summary": f"Update a {single.lower()} (admins; fields left out are kept)",
                        "requestBody": body, "responses": _ok(single)},
                "patch": {"summary": f"Update a {single.lower()} (admins)", "requestBody": body,
                          "responses": _ok(single)},
                "delete": {"summary": f"Delete a {single.lower()} (admins)",
                           "responses": {"204": {"description": "Deleted"}, **_errors()}},
            },
        )  # fmt: skip


def _add_routes_and_escalation(spec: APISpec) -> None:
    from web.api.escalation_chains import (
        EscalationChainPageSchema,
        EscalationChainSchema,
        EscalationChainWriteSchema,
    )
    from web.api.escalation_policies import (
        EscalationPolicyPageSchema,
        EscalationPolicySchema,
        EscalationPolicyWriteSchema,
    )
    from web.api.routes import RoutePageSchema, RouteSchema, RouteWriteSchema

    for single, schemas in (
        ("Route", (RouteSchema, RoutePageSchema, RouteWriteSchema)),
        ("EscalationChain", (EscalationChainSchema, EscalationChainPageSchema, EscalationChainWriteSchema)),
        ("EscalationPolicy", (EscalationPolicySchema, EscalationPolicyPageSchema, EscalationPolicyWriteSchema)),
    ):
        for suffix, schema in zip(("", "Page", "Write"), schemas):
            spec.components.schema(f"{single}{suffix}", schema=schema)
    for plural, single, filters, note, delete_note in (
        ("routes", "Route", ("integration_id", "routing_regex", "page", "perpage"),
         "each integration's routes in the order they are tried, its default route last; 25 a page",
         "the default route cannot be deleted"),
        ("escalation_chains", "EscalationChain", ("name", "team_id", "page", "perpage"),
         "name matches exactly, team_id=null: no team; 50 a page",
         "routes that took it take no chain"),
        ("escalation_policies", "EscalationPolicy", ("escalation_chain_id", "page", "perpage"),
         "by chain, then position; each shows its type's fields only; 50 a page", "later steps move up"),
    ):  # fmt: skip
        body = {"required": True, "content": {"application/json": {"schema": f"{single}Write"}}}
        words = plural.replace("_", " ")
        spec.path(
            f"/api/v1/{plural}/",
            operations={
                "get": {"summary": f"List {words}: {note}", "parameters": _query(filters),
                        "responses": _ok(f"{single}Page")},
                "post": {"summary": f"Create one of the {words} (admins)", "requestBody": body,
                         "responses": _ok(single, "201")},
            },
        )  # fmt: skip
        spec.path(
            f"/api/v1/{plural}/{{id}}/", parameters=_path_id("id"),
            operations={
                "get": {"summary": f"Get one of the {words}", "responses": _ok(single)},
                "put": {"summary": "Update (admins; fields left out are kept)", "requestBody": body,
                        "responses": _ok(single)},
                "patch": {"summary": "Update (admins)", "requestBody": body, "responses": _ok(single)},
                "delete": {"summary": f"Delete (admins; {delete_note})",
                           "responses": {"204": {"description": "Deleted"}, **_errors()}},
            },
        )  # fmt: skip


def _add_direct_paging(spec: APISpec) -> None:
    from web.api.direct_paging import DirectPagingSchema

    spec.components.schema("DirectPaging", schema=DirectPagingSchema)
    spec.path(
        "/api/v1/escalation/",
        operations={"post": {
            "summary": "Direct paging (editors): page a team (through its direct paging integration and its "
                       "routes) or users (each `important` or not) with a new alert group, or add users as "
                       "responders of `alert_group_id`. `team` and `users` exclude each other, as do "
                       "`alert_group_id` and title/message/source_url. Answers the alert group.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": "DirectPaging"}}},
            "responses": {**_ok("AlertGroup"),
                          "503": {"description": "Accepted but not grouped in time: no user was paged",
                                  "content": {"application/json": {"schema": "Error"}}}},
        }},
    )  # fmt: skip


def build_spec() -> dict:
    spec = APISpec(
        title="Tocsin public API",
        version="v1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Grafana OnCall compatible public API (v1)."},
        components={"securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}}},
        security=[{"token": []}],
    )
    for name, schema in (
        ("Error", ErrorSchema),
        ("AlertGroup", AlertGroupSchema),
        ("AlertGroupPage", AlertGroupPageSchema),
        ("AlertPage", AlertPageSchema),
        ("Timeline", TimelineSchema),
        ("Integration", IntegrationSchema),
        ("IntegrationPage", IntegrationPageSchema),
        ("IntegrationWrite", IntegrationWriteSchema),
        ("Silence", SilenceSchema),
    ):
        spec.components.schema(name, schema=schema)
    spec.path(
        "/api/v1/alert_groups/",
        operations={"get": {"summary": "List alert groups", "parameters": _query(GROUP_FILTERS),
                            "responses": _ok("AlertGroupPage")}},
    )
    spec.path(
        "/api/v1/alert_groups/{id}/", parameters=_path_id("id"),
        operations={"get": {"summary": "Get an alert group", "responses": _ok("AlertGroup")}},
    )
    spec.path(
        "/api/v1/alert_groups/{id}/timeline/", parameters=_path_id("id"),
        operations={"get": {"summary": "The audit timeline of an alert group", "responses": _ok("Timeline")}},
    )
    for action in ACTIONS:
        operation = {"summary": f"{action.title()} an alert group",
                     "responses": {"200": {"description": "Done (empty body)"},
                                   "400": {"description": "Refused", "content": {"application/json": {"schema": "Error"}}}}}
        if action == "silence":
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": "Silence"}}}
        spec.path(f"/api/v1/alert_groups/{{id}}/{action}", parameters=_path_id("id"), operations={"post": operation})
    spec.path(
        "/api/v1/alerts/",
        operations={"get": {"summary": "List alerts with their payloads",
                            "parameters": _query(("id", "alert_group_id", "search", "page", "perpage")),
                            "responses": _ok("AlertPage")}},
    )
    write_body = {"required": True, "content": {"application/json": {"schema": "IntegrationWrite"}}}
    spec.path(
        "/api/v1/integrations/",
        operations={
            "get": {"summary": "List integrations", "parameters": _query(("name", "team_id", "page", "perpage")),
                    "responses": _ok("IntegrationPage")},
            "post": {"summary": "Create an integration", "requestBody": write_body,
                     "responses": _ok("Integration", "201")},
        },
    )
    spec.path(
        "/api/v1/integrations/{id}/", parameters=_path_id("id"),
        operations={
            "get": {"summary": "Get an integration", "responses": _ok("Integration")},
            "put": {"summary": "Update an integration", "requestBody": write_body, "responses": _ok("Integration")},
            "patch": {"summary": "Update an integration", "requestBody": write_body, "responses": _ok("Integration")},
            "delete": {"summary": "Delete an integration", "responses": {"204": {"description": "Deleted"}}},
        },
    )
    _add_template_preview_and_demo(spec)
    _add_users_and_teams(spec)
    _add_routes_and_escalation(spec)
    _add_direct_paging(spec)
    integrations.add_to_spec(spec)  # maintenance
    personal_notification_rules.add_to_spec(spec)
    schedules.add_to_spec(spec)  # schedules, final shifts, the iCal feeds
    on_call_shifts.add_to_spec(spec)
    webhooks.add_to_spec(spec)
    return _with_common_errors(spec.to_dict())


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _with_common_errors(document: dict) -> dict:
    """Every operation can answer 400 (a malformed body or filter) and 403 (token or role);
    every operation on one object 404 (no such id)."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            responses.setdefault("400", _error("Invalid request"))
            responses.setdefault("403", _error("Invalid token or role"))
            if "{" in path:
                responses.setdefault("404", _error("Not found"))
    return document


@lru_cache(maxsize=1)
def _document() -> dict:
    return build_spec()


@api.get("/openapi.json")
def openapi_document():
    return jsonify(_document())
