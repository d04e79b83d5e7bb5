"""Escalation chains and their policies (OnCall's ``EscalationChain`` and ``EscalationPolicy``).

A chain holds its policies in order, so positions stay dense and unique in one aggregate. A
policy is a step ``type`` (OnCall's public names) with the parameters that step takes; the
``important`` variants of the notify steps are the base type with ``important`` set, as OnCall's
public API shows them. This module records configuration only: running a chain for an alert
group is the escalation engine's work.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import retry

from domain.configuration import Integration
from domain.users import CLAIM_TEAM_NAME, claim_names

CONFLICT_RETRY = {"max_attempts": 20, "wait": 0.005, "stall": 0.0}

PREFIX_ESCALATION_CHAIN = "F"  # OnCall's prefixes
PREFIX_ESCALATION_POLICY = "E"

# Public step type -> the parameters it takes (OnCall's public API field names).
STEP_PARAMETERS: dict[str, tuple[str, ...]] = {
    "wait": ("duration",),
    "notify_persons": ("persons_to_notify",),
    "notify_person_next_each_time": ("persons_to_notify_next_each_time",),
    "notify_team_members": ("team_to_notify",),
    "notify_on_call_from_schedule": ("notify_on_call_from_schedule",),
    "trigger_webhook": ("action_to_trigger",),
    "resolve": (),
    "repeat_escalation": (),
    "notify_if_time_from_to": ("notify_if_time_from", "notify_if_time_to"),
    "notify_if_num_alerts_in_window": ("num_alerts_in_window", "num_minutes_in_window"),
}
# Steps with an important variant (OnCall's DEFAULT_TO_IMPORTANT_STEP_MAPPING, less Slack's).
IMPORTANT_STEPS = frozenset(
    {"notify_persons", "notify_person_next_each_time", "notify_team_members", "notify_on_call_from_schedule"}
)
# OnCall steps that need a chat vendor (or Grafana IRM): refused with OnCall's texts.
SLACK_STEPS = frozenset({"notify_whole_channel", "notify_user_group"})

MIN_WAIT_SECONDS = 60  # OnCall's public API bounds for ``duration``
MAX_WAIT_SECONDS = 86_400
MAX_REPEATS = 5  # repeat_escalation jumps back at most this many times per alert group
MAX_PERSONS = 100  # per step: plenty for people, and a bound on what one request makes us check


def step_fields(step: dict) -> dict:
    """The fields a step shows: its parameters (unset: None, or [] for lists) and ``important``
    for steps that have an important variant."""
    shown = {}
    for name in STEP_PARAMETERS[step["type"]]:
        shown[name] = step.get(name, [] if name.startswith("persons_") else None)
    if step["type"] in IMPORTANT_STEPS:
        shown["important"] = bool(step.get("important"))
    return shown


class EscalationChain(Aggregate):
    @event("Created")
    def __init__(self, name: str, team_id: UUID | None, created_at: datetime):
        self.name = name
        self.team_id = team_id
        self.created_at = created_at
        self.deleted = False
        self.policies: list[dict] = []  # {"id": UUID, "step": {...}} in order

    def policy_index(self, policy_id: UUID) -> int | None:
        return next((index for index, p in enumerate(self.policies) if p["id"] == policy_id), None)

    @event("Updated")
    def _updated(self, name: str, team_id: UUID | None) -> None:
        self.name = name
        self.team_id = team_id

    def update(self, name: str, team_id: UUID | None) -> bool:
        if (name, team_id) == (self.name, self.team_id):
            return False
        self._updated(name=name, team_id=team_id)
        return True

    @event("PolicyAdded")
    def add_policy(self, policy_id: UUID, step: dict, position: int) -> None:
        self.policies.insert(position, {"id": policy_id, "step": dict(step)})

    @event("PolicyChanged")
    def change_policy(self, policy_id: UUID, step: dict) -> None:
        self.policies[self.policy_index(policy_id)]["step"] = dict(step)

    @event("PolicyMoved")
    def move_policy(self, policy_id: UUID, position: int) -> None:
        self.policies.insert(position, self.policies.pop(self.policy_index(policy_id)))

    @event("PolicyRemoved")
    def remove_policy(self, policy_id: UUID) -> None:
        del self.policies[self.policy_index(policy_id)]

    @event("Deleted")
    def delete(self, at: datetime) -> None:
        self.deleted = True


def insert_position(requested: int | None, count: int) -> int:
    """OnCall's ``position``: None or -1 is the end; beyond the end is the end."""
    if requested is None or requested < 0:
        return count
    return min(requested, count)


class RouteRefused(ValueError):
    """A route change OnCall refuses; the text is OnCall's."""


class RoutingCommands:
    """Mixed into ``Configuration``: routes (in their integration) and escalation chains.

    Each command loads, decides and saves (again on a version conflict) and returns the position
    of what it recorded (None: nothing changed); commands that create return the new id too.
    """

    def _saved_position(self, *aggregates) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _live_integration(self, integration_id: UUID) -> Integration:
        integration = self.repository.get(integration_id)
        if integration.deleted:
            raise AggregateNotFoundError(integration_id)
        return integration

    def _live_chain(self, chain_id: UUID) -> EscalationChain:
        chain = self.repository.get(chain_id)
        if chain.deleted:
            raise AggregateNotFoundError(chain_id)
        return chain

    # --- routes ------------------------------------------------------------------------------

    @retry(IntegrityError, **CONFLICT_RETRY)
    def add_route(
        self, integration_id: UUID, *, routing_type: str, routing_regex: str,
        escalation_chain_id: UUID | None, position: int | None,
    ) -> tuple[UUID, int | None]:  # fmt: skip
        integration = self._live_integration(integration_id)
        route_id = uuid4()
        integration.add_route(
            route_id=route_id, routing_type=routing_type, routing_regex=routing_regex,
            escalation_chain_id=escalation_chain_id, position=insert_position(position, len(integration.routes)),
        )  # fmt: skip
        return route_id, self._saved_position(integration)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def change_route(self, integration_id: UUID, route_id: UUID, position: int | None = None, **changes) -> int | None:
        """Change what ``changes`` holds (routing_type, routing_regex, escalation_chain_id) and,
        unless None, move the route to ``position``. The default route takes only a chain."""
        integration = self._live_integration(integration_id)
        if route_id == integration.default_route_id:
            if set(changes) - {"escalation_chain_id"}:
                raise RouteRefused("Filtering term of default route cannot be changed")
            current = {"routing_type": None, "routing_regex": None,
                       "escalation_chain_id": integration.default_escalation_chain_id}  # fmt: skip
        else:
            index = integration.route_index(route_id)
            if index is None:
                raise AggregateNotFoundError(route_id)
            route = integration.routes[index]
            current = {name: route[name] for name in ("routing_type", "routing_regex", "escalation_chain_id")}
        wanted = {**current, **changes}
        if wanted != current:
            integration.change_route(route_id=route_id, **wanted)
        if position is not None and route_id != integration.default_route_id:
            order = [r["id"] for r in integration.routes]
            order.remove(route_id)
            order.insert(insert_position(position, len(order)), route_id)
            if order != [r["id"] for r in integration.routes]:
                integration.reorder_routes(route_ids=order)
        return self._saved_position(integration)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def remove_route(self, integration_id: UUID, route_id: UUID) -> int | None:
        integration = self._live_integration(integration_id)
        if route_id == integration.default_route_id:
            raise RouteRefused("Unable to delete default filter")
        if integration.route_index(route_id) is None:
            raise AggregateNotFoundError(route_id)
        integration.remove_route(route_id=route_id)
        return self._saved_position(integration)

    # --- escalation chains and policies ------------------------------------------------------

    @retry(IntegrityError, **CONFLICT_RETRY)
    def create_escalation_chain(
        self, name: str, team_id: UUID | None, at: datetime
    ) -> tuple[EscalationChain, int | None]:
        """Raises ``NameTaken`` when another chain has the name (regardless of case)."""
        chain = EscalationChain(name=name, team_id=team_id, created_at=at)
        claims = claim_names(self._claim, chain.id, CHAIN_CLAIM, {}, {CLAIM_TEAM_NAME: name})
        return chain, self._saved_position(chain, *claims)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_escalation_chain(self, chain_id: UUID, **fields) -> int | None:
        chain = self._live_chain(chain_id)
        name = fields.get("name", chain.name)
        claims = claim_names(self._claim, chain.id, CHAIN_CLAIM, {CLAIM_TEAM_NAME: chain.name}, {CLAIM_TEAM_NAME: name})
        chain.update(name=name, team_id=fields.get("team_id", chain.team_id))
        return self._saved_position(chain, *claims)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_escalation_chain(self, chain_id: UUID, at: datetime, used_by: list[UUID]) -> int | None:
        """Delete a chain; the routes of the integrations ``used_by`` that take it take none
        (OnCall's: the route stays, its chain becomes null), in the same transaction."""
        chain = self._live_chain(chain_id)
        claims = claim_names(self._claim, chain.id, CHAIN_CLAIM, {CLAIM_TEAM_NAME: chain.name}, {})
        chain.delete(at=at)
        changed = []
        for integration_id in used_by:
            integration: Integration = self.repository.get(integration_id)
            routes = [{**r, "route_id": r["id"]} for r in integration.routes]
            routes.append({"route_id": integration.default_route_id, "routing_type": None, "routing_regex": None,
                           "escalation_chain_id": integration.default_escalation_chain_id})  # fmt: skip
            for route in routes:
                if route["escalation_chain_id"] == chain_id:
                    integration.change_route(
                        route_id=route["route_id"], routing_type=route["routing_type"],
                        routing_regex=route["routing_regex"], escalation_chain_id=None,
                    )  # fmt: skip
            changed.append(integration)
        return self._saved_position(chain, *claims, *changed)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def add_escalation_policy(self, chain_id: UUID, step: dict, position: int | None) -> tuple[UUID, int | None]:
        chain = self._live_chain(chain_id)
        policy_id = uuid4()
        chain.add_policy(policy_id=policy_id, step=step, position=insert_position(position, len(chain.policies)))
        return policy_id, self._saved_position(chain)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def change_escalation_policy(
        self, chain_id: UUID, policy_id: UUID, step: dict | None = None, position: int | None = None
    ) -> int | None:
        chain = self._live_chain(chain_id)
        index = chain.policy_index(policy_id)
        if index is None:
            raise AggregateNotFoundError(policy_id)
        if step is not None and step != chain.policies[index]["step"]:
            chain.change_policy(policy_id=policy_id, step=step)
        if position is not None:
            target = insert_position(position, len(chain.policies) - 1)
            if target != index:
                chain.move_policy(policy_id=policy_id, position=target)
        return self._saved_position(chain)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def remove_escalation_policy(self, chain_id: UUID, policy_id: UUID) -> int | None:
        chain = self._live_chain(chain_id)
        if chain.policy_index(policy_id) is None:
            raise AggregateNotFoundError(policy_id)
        chain.remove_policy(policy_id=policy_id)
        return self._saved_position(chain)


CHAIN_CLAIM = "escalation_chain"
