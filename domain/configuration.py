"""Configuration aggregates: integrations and API tokens (a separate, cold write stream)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.routes import RouteRule

ROLES = ("viewer", "editor", "admin")


def route_id_for_default(integration_id: UUID) -> UUID:
    """Every integration has a default route; routing rules come on top of it."""
    return uuid5(NAMESPACE_URL, f"/integrations/{integration_id}/routes/default")


# --- maintenance (OnCall's maintenance mode, per integration) ------------------------------------

MAINTENANCE_DEBUG = "debug"  # nothing escalates; alerts are grouped as usual
MAINTENANCE_COLLECT = "maintenance"  # nothing escalates; every alert goes into one group
MAINTENANCE_MODES = (MAINTENANCE_DEBUG, MAINTENANCE_COLLECT)
MAX_MAINTENANCE_SECONDS = 3_153_600_000  # a century, as the longest silence


class MaintenanceRefused(Exception):
    """A maintenance that cannot start; the message is OnCall's 400 text."""


def maintenance_id(integration_id: UUID, number: int) -> UUID:
    """One maintenance of an integration (its first is number 1): its deadline's subject, and the
    id of what gathers its alerts in the alerting store."""
    return uuid5(NAMESPACE_URL, f"/integrations/{integration_id}/maintenances/{number}")


def humanised_duration(seconds: int) -> str:
    """A duration in the words of OnCall's maintenance choices ("1 hour", "3 hours", "24 hours"),
    other lengths likewise, largest unit first ("1 hour 30 minutes"; days only beyond 24 hours)."""
    days, rest = divmod(seconds, 86_400) if seconds > 86_400 else (0, seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = ((days, "day"), (hours, "hour"), (minutes, "minute"), (secs, "second"))
    return " ".join(f"{value} {unit}{'' if value == 1 else 's'}" for value, unit in units if value) or "0 seconds"


@dataclass(frozen=True)
class MaintenanceWindow:
    """One maintenance of an integration, as recorded: its planned end, and its stop if earlier."""

    integration_id: UUID
    number: int
    mode: str
    duration: int  # seconds
    started_at: datetime
    end_at: datetime  # planned
    by: str | None
    integration_name: str  # when it started (the title of its group keeps this name)
    stopped_at: datetime | None = None

    @property
    def id(self) -> UUID:
        return maintenance_id(self.integration_id, self.number)

    @property
    def ends_at(self) -> datetime:
        return self.end_at if self.stopped_at is None or self.stopped_at > self.end_at else self.stopped_at

    def in_force_at(self, at: datetime) -> bool:
        return self.started_at <= at < self.ends_at

    @property
    def title(self) -> str:
        """OnCall's title of the group that collects the integration's alerts."""
        return f"Maintenance of {self.integration_name} for {humanised_duration(self.duration)}"


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
        # Every maintenance, oldest first (they never overlap), so any instant can be answered.
        self.maintenances: list[MaintenanceWindow] = []

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

    # --- maintenance ----------------------------------------------------------------------------

    @event("MaintenanceStarted")
    def _maintenance_started(
        self, mode: str, duration: int, started_at: datetime, end_at: datetime, by: str | None, number: int
    ) -> None:
        self.maintenances.append(
            MaintenanceWindow(self.id, number, mode, duration, started_at, end_at, by, integration_name=self.name)
        )

    @event("MaintenanceStopped")
    def _maintenance_stopped(self, by: str | None, at: datetime, number: int) -> None:
        self.maintenances[-1] = replace(self.maintenances[-1], stopped_at=at)

    def maintenance_at(self, at: datetime) -> str | None:
        """The maintenance mode in force at ``at``: "debug", "maintenance" or None."""
        window = self.maintenance_window_at(at)
        return None if window is None else window.mode

    def maintenance_window_at(self, at: datetime) -> MaintenanceWindow | None:
        for window in reversed(self.maintenances):  # the latest first: the instant asked is mostly now
            if window.started_at <= at:
                return window if at < window.ends_at else None
        return None

    def collecting_maintenance(self) -> MaintenanceWindow | None:
        """The latest maintenance that collects alerts into one group (ingest checks each alert's
        time against it; its end needs no event, so a maintenance ends on time by itself)."""
        return next((w for w in reversed(self.maintenances) if w.mode == MAINTENANCE_COLLECT), None)

    def start_maintenance(self, mode: str, duration: int, by: str | None, at: datetime) -> MaintenanceWindow:
        """Start a maintenance of ``duration`` seconds at ``at``; refused while one is in force."""
        if mode not in MAINTENANCE_MODES:
            raise ValueError(f"mode must be one of {', '.join(MAINTENANCE_MODES)}")
        if isinstance(duration, bool) or not isinstance(duration, int) or not 0 < duration <= MAX_MAINTENANCE_SECONDS:
            raise ValueError(f"duration must be from 1 to {MAX_MAINTENANCE_SECONDS} seconds")
        last = self.maintenances[-1] if self.maintenances else None
        # Also refused when the last one began after ``at`` (the clocks of two servers).
        if last is not None and at < last.ends_at:
            raise MaintenanceRefused("Already on maintenance")
        self._maintenance_started(
            mode=mode, duration=duration, started_at=at, end_at=at + timedelta(seconds=duration), by=by,
            number=len(self.maintenances) + 1,
        )
        return self.maintenances[-1]

    def stop_maintenance(self, by: str | None, at: datetime) -> MaintenanceWindow | None:
        """Stop the maintenance not yet over at ``at``; None (nothing recorded) when there is none."""
        last = self.maintenances[-1] if self.maintenances else None
        if last is None or at >= last.ends_at:
            return None
        self._maintenance_stopped(by=by, at=max(at, last.started_at), number=last.number)
        return self.maintenances[-1]


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
