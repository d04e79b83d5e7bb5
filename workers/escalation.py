"""The escalation process: follows the alerting store and writes its reactions back into it.

It is the alerting → alerting instance of the tracked process (``adapters.reactions``) with the
policies of ``domain.paging`` and ``domain.delivery``: a new group starts its chain,
acknowledge/resolve/silence stop it, their undoing restarts it, a notification request starts
the person's rules; each batch's reactions are saved with the position reached, exactly once. It is also the context those policies and the ticker's ``RunEscalationStep`` need: the
chain a route takes and the integration's maintenance (from the configuration store, cached
until its log moves on), and who may be notified, team members and who is on call (from the read
models, as of the moment the step runs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from adapters.reactions import KnownAggregates, TrackedProcess
from domain.alert_group import AlertGroup
from domain.applications import Alerting, Configuration
from domain.configuration import Integration
from domain.escalation import EscalationChain
from domain.notification_rules import rules_for
from domain.paging import ESCALATION, ChainSnapshot, Person
from domain.schedules import on_call_at
from domain.webhooks import WebhookSettings, filter_allows, webhooks_for
from projections.db import Database
from projections.schedules import ON_CALL_ROLES, directory, engine_schedule
from projections.webhooks import webhooks_to_match

PROCESS_NAME = "escalation"
ALERTS_PAGE = 500


class EscalationProcess(TrackedProcess):
    def __init__(self, alerting: Alerting, config: Configuration, db: Database, batch_size: int = 200):
        super().__init__(
            PROCESS_NAME, alerting, alerting, ESCALATION, batch_size=batch_size,
            # Groups are read, not written, here: a copy kept from an earlier batch could miss a
            # user's acknowledgement. So nothing is kept between batches.
            known=KnownAggregates(maxsize=0),
            # Escalations, like grouping slots, are never snapshotted: a batch's in one read.
            preload=alerting.get_slots,
            # It reacts to a few of the alerting log's events: alerts' payloads are never read.
            read_declared_only=True,
        )  # fmt: skip
        self.alerting = alerting
        self.config = config
        self.db = db
        self._integrations: dict[UUID, Integration | None] = {}
        self._chains: dict[UUID, EscalationChain | None] = {}
        self._webhooks: list[WebhookSettings] | None = None
        self._config_position: int | None = None

    def before_batch(self) -> None:
        # Configuration changes rarely: keep what was read until its log moves on.
        position = self.config.recorder.max_notification_id()
        if position != self._config_position:
            self._integrations.clear()
            self._chains.clear()
            self._webhooks = None
            self._config_position = position

    def _cached(self, cache: dict, aggregate_id: UUID):
        if aggregate_id not in cache:
            try:
                aggregate = self.config.repository.get(aggregate_id)
            except AggregateNotFoundError:
                aggregate = None
            cache[aggregate_id] = None if aggregate is None or aggregate.deleted else aggregate
        return cache[aggregate_id]

    # --- PagingContext -------------------------------------------------------------------------

    def chain_for(self, integration_id: UUID, route_id: UUID) -> ChainSnapshot | None:
        if self._config_position is None:
            self.before_batch()  # called outside a batch (the ticker's commands)
        integration: Integration | None = self._cached(self._integrations, integration_id)
        if integration is None:
            return None
        if route_id == integration.default_route_id:
            chain_id = integration.default_escalation_chain_id
        else:
            index = integration.route_index(route_id)
            chain_id = None if index is None else integration.routes[index]["escalation_chain_id"]
        chain: EscalationChain | None = self._cached(self._chains, chain_id) if chain_id else None
        if chain is None:
            return None
        steps = tuple({**policy["step"], "policy_id": policy["id"]} for policy in chain.policies)
        return ChainSnapshot(chain_id=chain.id, name=chain.name, steps=steps)

    def maintenance_at(self, integration_id: UUID, at: datetime) -> str | None:
        integration = self._cached(self._integrations, integration_id)
        maintenance_at = getattr(integration, "maintenance_at", None)
        return maintenance_at(at) if maintenance_at is not None else None

    def people(self, user_ids: Sequence[UUID]) -> list[Person]:
        if not user_ids:
            return []
        marks = ", ".join(["%s"] * len(user_ids))
        rows = self.db.query(
            f"SELECT uuid, username, role FROM users WHERE deleted = 0 AND uuid IN ({marks})",
            [str(user_id) for user_id in user_ids],
        )
        found = {UUID(r["uuid"]): r for r in rows if r["role"] in ON_CALL_ROLES}  # viewers are never notified
        return [Person(user_id, found[user_id]["username"]) for user_id in dict.fromkeys(user_ids) if user_id in found]

    def team(self, team_id: UUID) -> tuple[str, list[Person]] | None:
        team = self.db.query_one("SELECT id, name FROM teams WHERE deleted = 0 AND uuid = %s", (str(team_id),))
        if team is None:
            return None
        rows = self.db.query(
            "SELECT u.uuid FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = %s ORDER BY u.username",
            (team["id"],),
        )
        return team["name"], self.people([UUID(r["uuid"]) for r in rows])

    def on_call(self, schedule_id: UUID, at: datetime) -> tuple[str, list[Person]] | None:
        row = self.db.query_one("SELECT * FROM schedules WHERE deleted = 0 AND uuid = %s", (str(schedule_id),))
        if row is None:
            return None
        row = {**row, "settings": json.loads(row["settings"])}
        public_ids = sorted(on_call_at(engine_schedule(self.db, row), at, directory(self.db)))
        if not public_ids:
            return row["name"], []
        marks = ", ".join(["%s"] * len(public_ids))
        rows = self.db.query(f"SELECT uuid FROM users WHERE id IN ({marks})", public_ids)
        return row["name"], self.people([UUID(r["uuid"]) for r in rows])

    # --- WebhooksContext ---------------------------------------------------------------------

    def _live_webhooks(self) -> list[WebhookSettings]:
        if self._webhooks is None:  # read again when the configuration log moves on
            self._webhooks = webhooks_to_match(self.db)
        return self._webhooks

    def webhooks_for(self, trigger: str, integration_id: UUID | None) -> list[tuple[UUID, str]]:
        webhooks = self._live_webhooks()
        if integration_id is None:  # any webhook with the trigger, whatever integrations it takes
            webhooks = [replace(webhook, integration_filter=()) for webhook in webhooks]
        return [(webhook.id, webhook.name) for webhook in webhooks_for(trigger, integration_id, webhooks)]

    def webhook_named_by(self, public_id: str, integration_id: UUID) -> tuple[UUID, str] | None:
        for webhook in self._live_webhooks():
            if webhook.public_id == public_id and webhook.is_webhook_enabled and filter_allows(webhook, integration_id):
                return webhook.id, webhook.name
        return None

    def notification_steps(self, user_id: UUID, important: bool) -> list[dict]:
        return [step.as_dict() for step in rules_for(self.config.notification_rules(user_id), important)]

    def alerts_since(self, group_id: UUID, since: datetime, at_most: int) -> int:
        """Counted from the group's events, newest first (the read models may not have the
        alert that asked yet)."""
        count = 0
        lte = None
        while True:
            stored = self.alerting.recorder.select_events(group_id, lte=lte, desc=True, limit=ALERTS_PAGE)
            for item in stored:
                domain_event = self.alerting.mapper.to_domain_event(item)
                if isinstance(domain_event, AlertGroup.AlertAttached):
                    if domain_event.received_at < since:
                        return count
                    count += 1
                    if count >= at_most:
                        return count
            if len(stored) < ALERTS_PAGE:
                return count
            lte = stored[-1].originator_version - 1
