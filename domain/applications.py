"""Event-sourced applications: one per write stream, each with its own events table and lock.

* ``Inbox``: accepted inbound requests (hot, append-only, written before the HTTP answer).
* ``Alerting``: alert groups, grouping slots and alerts (written by ingest and by user actions).
* ``Configuration``: integrations and their routes, API tokens, users and teams, schedules and
  shifts, escalation chains (cold).

The persistence module comes from the environment (POPO in unit tests, SQLite embedded,
PostgreSQL in production); nothing here knows which.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking
from eventsourcing.utils import retry

from domain.alert_group import AlertGroup, GroupingSlot
from domain.commands import HANDLERS, USER_ACTIONS, Command, CommandHandlers
from domain.configuration import ApiToken, Integration, token_digest
from domain.escalation import RoutingCommands
from domain.heartbeat import Heartbeat
from domain.inbox import HeartbeatPing, ReceivedAlert
from domain.notification_rules import NotificationRuleCommands
from domain.schedules.commands import ScheduleCommands
from domain.users import CLAIM_TEAM_NAME, NameClaim, Team, User, claim_names
from domain.webhooks import WebhookCommands

CONFLICT_RETRY = {"max_attempts": 20, "wait": 0.005, "stall": 0.0}


class CollectedEvents(ProcessingEvent[UUID]):
    """The library's ``ProcessingEvent``, with a fast path for plain aggregates.

    The library checks every saved object against two runtime-checkable protocols, which costs
    more than the rest of collecting; every object we save is an ``Aggregate``.
    """

    def collect_events(self, *objs, **kwargs) -> None:
        for obj in objs:
            if isinstance(obj, Aggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            elif obj is not None:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


class NotifyingApplication(Application[UUID]):
    """Calls in-process listeners after each save, so embedded followers wake at once."""

    def __init__(self, env=None):
        super().__init__(env=env)
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()

    def add_listener(self, listener: Callable[[], None]) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def _notify(self, recordings) -> None:
        super()._notify(recordings)
        if recordings:
            for listener in list(self._listeners):
                listener()

    def save(self, *objs, **kwargs):
        """As the library's ``save``, collecting with ``CollectedEvents``."""
        processing = CollectedEvents()
        processing.collect_events(*objs, **kwargs)
        return self._save_collected(processing)

    def _save_collected(self, processing: ProcessingEvent[UUID]):
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings


class AggregatesUnitOfWork:
    """Aggregates loaded or created while running one command or one batch, each loaded once.

    ``known`` (optional) holds aggregates as the caller last saved them (``get``/``remember``);
    ``bulk_get`` (optional) reads many aggregates in one query, for ``preload``.
    """

    def __init__(self, app: Application, known=None, bulk_get: Callable[[Iterable[UUID]], dict] | None = None):
        self._repository = app.repository
        self._known = known
        self._bulk_get = bulk_get
        self._aggregates: dict[UUID, Aggregate | None] = {}

    def preload(self, aggregate_ids: Iterable[UUID]) -> None:
        """Look up every aggregate a batch needs in one read instead of one read each."""
        if self._bulk_get is None:
            return
        unknown = {
            aggregate_id for aggregate_id in aggregate_ids
            if aggregate_id not in self._aggregates and (self._known is None or self._known.get(aggregate_id) is None)
        }
        if unknown:
            found = self._bulk_get(unknown)
            for aggregate_id in unknown:
                self._aggregates[aggregate_id] = found.get(aggregate_id)  # None: no such aggregate yet

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self._aggregates:
            aggregate = self._known.get(aggregate_id) if self._known is not None else None
            if aggregate is None:
                try:
                    aggregate = self._repository.get(aggregate_id)
                except AggregateNotFoundError:
                    aggregate = None  # remembered too: one lookup, and ``add`` keeps its place
            self._aggregates[aggregate_id] = aggregate
        return self._aggregates[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self._aggregates[aggregate.id] = aggregate

    def all(self) -> list[Aggregate]:
        return [a for a in self._aggregates.values() if a is not None]

    def changed(self) -> list[Aggregate]:
        return [a for a in self.all() if a.pending_events]


class Inbox(NotifyingApplication):
    name = "inbox"

    def receive_alerts(self, entries: Iterable[ReceivedAlert | HeartbeatPing]) -> int:
        """Commit many entries in one transaction (group commit); returns the last position."""
        recordings = self.save(*entries)
        return recordings[-1].notification.id


class ProcessingApplication(NotifyingApplication):
    """The downstream of a tracked process: saves what it decided with its upstream position."""

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def save_processed(self, aggregates: Iterable, tracking: Tracking) -> int | None:
        """Save a batch's changes and the upstream position in one transaction (exactly once)."""
        processing = CollectedEvents(tracking)
        processing.collect_events(*aggregates)
        recordings = self._save_collected(processing)
        return recordings[-1].notification.id if recordings else None

    @retry(IntegrityError, **CONFLICT_RETRY)
    def handle(self, command: Command, context: object = None, handlers: CommandHandlers = HANDLERS) -> int | None:
        """Run a command: load, decide (its registered handler), save; returns the position of
        what it saved, None if it changed nothing. On a version conflict the whole command runs
        again on fresh state. A handler's refusal (``ActionRefused``) passes up."""
        uow = AggregatesUnitOfWork(self)
        handlers.handler_for(command)(uow, command, context)
        recordings = self.save(*uow.changed())
        return recordings[-1].notification.id if recordings else None


class Alerting(ProcessingApplication):
    """Alert groups; ingest saves its decisions together with its position in the inbox."""

    name = "alerting"
    snapshotting_intervals = {AlertGroup: 200}

    def get_slots(self, slot_ids: Iterable[UUID]) -> dict[UUID, GroupingSlot]:
        """The existing slots among ``slot_ids``, in one read where the store can do that.

        Slots are never snapshotted, so their events are the whole story.
        """
        select_events_of = getattr(self.recorder, "select_events_of", None)
        if select_events_of is None:
            slots = {}
            for slot_id in slot_ids:
                try:
                    slots[slot_id] = self.repository.get(slot_id)
                except AggregateNotFoundError:
                    pass
            return slots
        events = defaultdict(list)
        for stored in select_events_of(list(slot_ids)):
            events[stored.originator_id].append(self.mapper.to_domain_event(stored))
        return {slot_id: project_aggregate(None, slot_events) for slot_id, slot_events in events.items()}

    def processed_position(self) -> int:
        return self.recorder.max_tracking_id(Inbox.name) or 0

    def get_group(self, group_id: UUID) -> AlertGroup:
        return self.repository.get(group_id)

    def act(self, group_id: UUID, action: str, by: str | None, at: datetime, **fields) -> int | None:
        """The user action named ``action`` (a key of ``USER_ACTIONS``), as a command; for tools."""
        return self.handle(USER_ACTIONS[action](group_id=group_id, by=by, at=at, **fields))

    @retry(IntegrityError, **CONFLICT_RETRY)
    def change_heartbeat(
        self, integration_id: UUID, at: datetime, timeout_seconds: int | None = None, reset: bool = False
    ) -> int | None:
        """Change a heartbeat's timeout and/or reset it; returns the position, None if unchanged."""
        heartbeat_id = Heartbeat.create_id(integration_id)
        try:
            heartbeat: Heartbeat = self.repository.get(heartbeat_id)
        except AggregateNotFoundError:
            heartbeat = Heartbeat(integration_id=integration_id)
        if timeout_seconds is not None:
            heartbeat.change_timeout(timeout_seconds)
        if reset:
            heartbeat.reset(at=at)
        recordings = self.save(heartbeat)
        return recordings[-1].notification.id if recordings else None

    @retry(IntegrityError, **CONFLICT_RETRY)
    def retire_heartbeat(self, integration_id: UUID, at: datetime) -> int | None:
        """Disarm a deleted integration's heartbeat for good; returns the position, None if unchanged."""
        try:
            heartbeat: Heartbeat = self.repository.get(Heartbeat.create_id(integration_id))
        except AggregateNotFoundError:
            return None  # never pinged; a ping still in the inbox is caught when its deadline comes
        heartbeat.retire(at=at)
        recordings = self.save(heartbeat)
        return recordings[-1].notification.id if recordings else None


class Configuration(RoutingCommands, ScheduleCommands, NotificationRuleCommands, WebhookCommands, NotifyingApplication):
    name = "config"

    @retry(IntegrityError, **CONFLICT_RETRY)
    def direct_paging_integration(self, team_id: str | None, team_name: str | None, token: str, at: datetime) -> UUID:
        """The team's direct paging integration (``None``: no team), created on first use with
        OnCall's two routes: "important" pages (``payload.oncall.important``) first, then the
        default. Its id comes from the team, so two first pages at once create one."""
        integration_id = uuid5(NAMESPACE_URL, f"/direct-paging/{team_id or 'no-team'}")
        try:
            existing: Integration = self.repository.get(integration_id)
        except AggregateNotFoundError:
            existing = None
        if existing is not None:
            return integration_id  # the API refuses to delete it
        name = f"Direct paging ({team_name} team)" if team_name else "Direct paging (No team)"
        integration = Integration._create(  # the library's way to create with a chosen id
            Integration.Created, id=integration_id, type="direct_paging", name=name, token=token,
            team_id=team_id, description_short=None, templates={}, created_at=at,
        )  # fmt: skip
        integration.add_route(route_id=uuid5(integration_id, "important"), routing_type="jinja2",
                              routing_regex="{{ payload.oncall.important }}", escalation_chain_id=None,
                              position=0)  # fmt: skip
        self.save(integration)
        return integration_id

    def create_integration(self, **fields) -> tuple[Integration, int]:
        integration = Integration(**fields)
        return integration, self.save(integration)[-1].notification.id

    def get_integration(self, integration_id: UUID) -> Integration:
        return self.repository.get(integration_id)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_integration(
        self, integration_id: UUID, *, name=None, description_short=..., team_id=..., templates=None
    ) -> int | None:
        """Change what was given (``...`` and ``None`` name mean "keep"); returns the position."""
        integration: Integration = self.repository.get(integration_id)
        new_name = integration.name if name is None else name
        new_description = integration.description_short if description_short is ... else description_short
        new_team = integration.team_id if team_id is ... else team_id
        if (new_name, new_description, new_team) != (
            integration.name,
            integration.description_short,
            integration.team_id,
        ):
            integration.update(name=new_name, description_short=new_description, team_id=new_team)
        if templates:
            integration.change_templates(templates)
        recordings = self.save(integration)
        return recordings[-1].notification.id if recordings else None

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_integration(self, integration_id: UUID, at: datetime) -> int | None:
        integration: Integration = self.repository.get(integration_id)
        if integration.deleted:
            return None
        integration.delete(at=at)
        return self.save(integration)[-1].notification.id

    def create_api_token(self, name: str, role: str, token: str, at: datetime, user_id: UUID | None = None) -> int:
        """A token for ``user_id`` (with that user's role; a deleted user has none) or, as tokens
        were before users, for no one with ``role``."""
        if user_id is not None:
            role = self.get_user(user_id).role
        api_token = ApiToken(name=name, role=role, token_hash=token_digest(token), created_at=at, user_id=user_id)
        return self.save(api_token)[-1].notification.id

    @retry(IntegrityError, **CONFLICT_RETRY)
    def revoke_api_token(self, token_id: UUID, at: datetime) -> int | None:
        """Revoke a token (an event); returns the position, None if it was already revoked."""
        api_token: ApiToken = self.repository.get(token_id)
        if not api_token.revoke(at=at):
            return None
        return self.save(api_token)[-1].notification.id

    # --- users and teams ---------------------------------------------------------------------

    def _claim(self, claim_id: UUID) -> NameClaim | None:
        try:
            return self.repository.get(claim_id)
        except AggregateNotFoundError:
            return None

    def _live(self, aggregate_id: UUID) -> User | Team:
        """A user or team that was not deleted (``AggregateNotFoundError`` otherwise)."""
        aggregate = self.repository.get(aggregate_id)
        if aggregate.deleted:
            raise AggregateNotFoundError(aggregate_id)
        return aggregate

    def get_user(self, user_id: UUID) -> User:
        return self._live(user_id)

    @retry(IntegrityError, **CONFLICT_RETRY)
    def create_user(
        self, *, username: str, email: str | None, role: str, timezone: str, team_ids: list[UUID], at: datetime
    ) -> tuple[User, int]:
        """Raises ``NameTaken`` when the username or the email is another user's."""
        user = User(username=username, email=email, role=role, timezone=timezone, team_ids=team_ids, created_at=at)
        claims = claim_names(self._claim, user.id, "user", {}, {"username": username, "email": email})
        return user, self.save(user, *claims)[-1].notification.id

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_user(self, user_id: UUID, *, team_ids: list[UUID] | None = None, **profile) -> int | None:
        """Change the given profile fields (username, email, role, timezone) and, unless None, the
        teams; returns the position, None if nothing changed."""
        user: User = self._live(user_id)
        before = {"username": user.username, "email": user.email}
        values = {name: profile.get(name, getattr(user, name)) for name in ("username", "email", "role", "timezone")}
        claims = claim_names(self._claim, user.id, "user", before, {name: values[name] for name in before})
        user.update(**values)
        if team_ids is not None:
            user.change_teams(team_ids)
        recordings = self.save(user, *claims)
        return recordings[-1].notification.id if recordings else None

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_user(self, user_id: UUID, at: datetime) -> int:
        """Delete a user and free its username and email for someone else."""
        user: User = self._live(user_id)
        claims = claim_names(self._claim, user.id, "user", {"username": user.username, "email": user.email}, {})
        user.delete(at=at)
        return self.save(user, *claims)[-1].notification.id

    @retry(IntegrityError, **CONFLICT_RETRY)
    def create_team(self, *, name: str, email: str | None, avatar_url: str | None, at: datetime) -> tuple[Team, int]:
        team = Team(name=name, email=email, avatar_url=avatar_url, created_at=at)
        claims = claim_names(self._claim, team.id, "team", {}, {CLAIM_TEAM_NAME: name})
        return team, self.save(team, *claims)[-1].notification.id

    @retry(IntegrityError, **CONFLICT_RETRY)
    def update_team(self, team_id: UUID, **fields) -> int | None:
        team: Team = self._live(team_id)
        values = {name: fields.get(name, getattr(team, name)) for name in ("name", "email", "avatar_url")}
        claims = claim_names(self._claim, team.id, "team", {CLAIM_TEAM_NAME: team.name}, {CLAIM_TEAM_NAME: values["name"]})
        team.update(**values)
        recordings = self.save(team, *claims)
        return recordings[-1].notification.id if recordings else None

    @retry(IntegrityError, **CONFLICT_RETRY)
    def delete_team(self, team_id: UUID, at: datetime) -> int:
        """Delete a team: it leaves every user's teams, and its name is free again."""
        team: Team = self._live(team_id)
        claims = claim_names(self._claim, team.id, "team", {CLAIM_TEAM_NAME: team.name}, {})
        team.delete(at=at)
        return self.save(team, *claims)[-1].notification.id
