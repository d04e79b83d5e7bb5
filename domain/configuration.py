"""Configuration aggregates: integrations and API tokens (a separate, cold write stream)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.routes import RouteRule

ROLES = ("viewer", "editor", "admin")


def route_id_for_default(integration_id: UUID) -> UUID:
    """Every integration has a default route; routing rules come on top of it."""
    return uuid5(NAMESPACE_URL, f"/integrations/{integration_id}/routes/default")


class Integration(Aggregate):
    @event("Created")
    def __init__(
        self,
        type: str,
        name: str,
        token: str,
        team_id: str | None,
        description_short: str | None,
        templates: dict,
        created_at: datetime,
    ):
        self.type = type
        self.name = name
        self.token = token
        self.team_id = team_id
        self.description_short = description_short
        self.templates = dict(templates)
        self.template_revision = 1
        self.created_at = created_at
        self.deleted = False
        # Routes on top of the default one, in the order they are tried (domain.routes).
        self.routes: list[dict] = []
        self.default_escalation_chain_id: UUID | None = None

    @property
    def default_route_id(self) -> UUID:
        return route_id_for_default(self.id)

    def route_rules(self) -> tuple[RouteRule, ...]:
        return tuple(RouteRule(r["id"], r["routing_type"], r["routing_regex"]) for r in self.routes)

    def route_index(self, route_id: UUID) -> int | None:
        """Where a non-default route is tried (0 first); None for the default route or none."""
        return next((index for index, r in enumerate(self.routes) if r["id"] == route_id), None)

    @event("RouteAdded")
    def add_route(
        self, route_id: UUID, routing_type: str, routing_regex: str, escalation_chain_id: UUID | None, position: int
    ) -> None:
        route = {"id": route_id, "routing_type": routing_type, "routing_regex": routing_regex,
                 "escalation_chain_id": escalation_chain_id}  # fmt: skip
        self.routes.insert(position, route)

    @event("RouteChanged")
    def change_route(
        self, route_id: UUID, routing_type: str | None, routing_regex: str | None, escalation_chain_id: UUID | None
    ) -> None:
        """The default route has only a chain to change (its type and term stay None)."""
        if route_id == self.default_route_id:
            self.default_escalation_chain_id = escalation_chain_id
            return
        route = self.routes[self.route_index(route_id)]
        route.update(routing_type=routing_type, routing_regex=routing_regex, escalation_chain_id=escalation_chain_id)

    @event("RouteRemoved")
    def remove_route(self, route_id: UUID) -> None:
        del self.routes[self.route_index(route_id)]

    @event("RoutesReordered")
    def reorder_routes(self, route_ids: list[UUID]) -> None:
        by_id = {r["id"]: r for r in self.routes}
        self.routes = [by_id[route_id] for route_id in route_ids]

    @event("Updated")
    def update(self, name: str, description_short: str | None, team_id: str | None) -> None:
        self.name = name
        self.description_short = description_short
        self.team_id = team_id

    @event("TemplatesChanged")
    def _templates_changed(self, templates: dict, revision: int) -> None:
        self.templates = dict(templates)
        self.template_revision = revision

    def change_templates(self, changes: dict) -> bool:
        """Apply template changes; ``None`` or "" restores a default. Each change is a new revision."""
        templates = dict(self.templates)
        for field, source in changes.items():
            if source:
                templates[field] = source
            else:
                templates.pop(field, None)
        if templates == self.templates:
            return False
        self._templates_changed(templates=templates, revision=self.template_revision + 1)
        return True

    @event("Deleted")
    def delete(self, at: datetime) -> None:
        self.deleted = True


def token_digest(token: str) -> str:
    """Secrets are looked up by digest, so lookup time says nothing about the secret."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(Aggregate):
    """An API token; only its hash is stored, the token itself is shown once.

    A token belongs to a user (``user_id``) and acts with that user's role of the moment; tokens
    created before users existed have none and keep the role they were created with.
    """

    @event("Created")
    def __init__(
        self, name: str, role: str, token_hash: str, created_at: datetime, user_id: UUID | None = None
    ):
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        self.name = name
        self.role = role
        self.token_hash = token_hash
        self.created_at = created_at
        self.user_id = user_id
        self.revoked = False
        self.revoked_at: datetime | None = None

    @event("Revoked")
    def _revoked(self, at: datetime) -> None:
        self.revoked = True
        self.revoked_at = at

    def revoke(self, at: datetime) -> bool:
        """Refuse the token from now on; False if it was already revoked (recorded once)."""
        if self.revoked:
            return False
        self._revoked(at=at)
        return True
