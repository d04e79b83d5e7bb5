"""Ingest: turn one inbox entry into alerts in alert groups (OnCall's ``Alert.create``).

Pure decision logic over a unit of work; the caller loads and saves aggregates. Everything
decided here (distinction, title, resolve/ack signal, route, template revision, template errors)
is written into the events, so a replay never renders a template again.

While an integration is in maintenance mode "maintenance", every alert it receives goes into one
group for that maintenance instead (``MaintenanceCollection``), titled as OnCall titles it; its
end (``domain.maintenance``) resolves that group.

Rendering is kept apart from recording so that it can run elsewhere: ``evaluate_entry`` (the
behaviour templates of an entry's alerts) and ``render_opening_of`` (the title and link of a group
an alert opens) take and return plain values, and ingest runs them in bounded render workers
(an ``Evaluator``); ``IN_PROCESS`` renders here, for tests and tools.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.alert_group import SOURCE_DISABLE_MAINTENANCE, Alert, AlertGroup, GroupingSlot
from domain.configuration import MaintenanceWindow
from domain.heartbeat import Heartbeat
from domain.inbox import KIND_DEMO, HeartbeatPing, ReceivedAlert
from domain.integrations import IntegrationType, evaluate, get_type, render_opening
from domain.routes import RouteRule, select_route
from domain.policies import Policies
from domain.templating import MAX_TITLE_LENGTH, TRUNCATION_MARK

log = logging.getLogger(__name__)

# One notification of a type that splits (legacy Alertmanager: one alert per element of
# ``alerts[]``) gives at most this many alerts; the rest are counted on the last one taken.
MAX_ALERTS_PER_NOTIFICATION = 1000

UNPROCESSABLE_TITLE = "Unprocessable alert: Tocsin could not evaluate it (see its payload)"
UNPROCESSABLE_ERROR = "Template Error: Tocsin could not evaluate this alert"
_BEHAVIOUR_FIELDS = ("grouping_key", "resolve_signal", "acknowledge_signal")


class UnitOfWork(Protocol):
    def get(self, aggregate_id: UUID) -> Aggregate | None: ...

    def add(self, aggregate: Aggregate) -> None: ...


@dataclass(frozen=True)
class IntegrationSettings:
    """What ingest needs to know about an integration at the moment it processes an entry."""

    id: UUID
    type: IntegrationType
    templates: dict
    template_revision: int
    default_route_id: UUID
    routes: tuple[RouteRule, ...] = ()  # tried in order before the default route
    # The latest maintenance that collects alerts into one group (``Integration.collecting_maintenance``).
    maintenance: MaintenanceWindow | None = None


@dataclass
class IngestResult:
    group_ids: list[UUID] = field(default_factory=list)
    created_group_ids: list[UUID] = field(default_factory=list)


# --- what the templates say (pure; runs in a render worker, so plain picklable values) ---------


@dataclass(frozen=True)
class AlertEvaluation:
    """The behaviour templates' verdict on one alert of an entry."""

    payload_json: str | None  # None: the alert is the whole entry (its text is the entry's)
    label_set: str | None
    distinction: str | None  # None: no usable grouping key
    is_resolve_signal: bool
    is_acknowledge_signal: bool
    template_errors: dict[str, str]  # template field -> "Template Error: ..." / "Template Warning: ..."
    route_id: UUID | None = None  # the first route that matched; None: the default route


@dataclass(frozen=True)
class EntryEvaluation:
    alerts: tuple[AlertEvaluation, ...]
    alerts_not_taken: int = 0  # beyond MAX_ALERTS_PER_NOTIFICATION

    def __len__(self) -> int:  # how render pools weigh an entry: by its alerts
        return len(self.alerts)


@dataclass(frozen=True)
class Opening:
    """What a new group takes from its first alert: title and source link."""

    title: str
    source_link: str | None
    template_errors: dict[str, str]


def evaluate_entry(
    type_slug: str,
    templates: dict,
    payload_json: str,
    not_rendered: str | None = None,
    routes: tuple[RouteRule, ...] = (),
) -> EntryEvaluation:
    """Split an entry into alerts and evaluate each one's behaviour templates and ``routes``.

    ``not_rendered`` (a "Template Error: ..." text) renders nothing: every alert gets that error
    on its behaviour templates, so no grouping key (a group of its own), no signals and the
    default route.
    """
    integration_type = get_type(type_slug)
    payload = json.loads(payload_json)
    try:
        alerts = integration_type.split(payload)
    except MemoryError:
        raise
    except Exception:
        # A body the type cannot take apart is still an alert: kept whole, never dropped.
        log.exception("integration type %s could not split an entry", type_slug)
        alerts = [payload]
    not_taken = max(len(alerts) - MAX_ALERTS_PER_NOTIFICATION, 0)
    evaluations = tuple(
        _evaluate_alert(integration_type, templates, alert, alert is payload, not_rendered, routes)
        for alert in alerts[:MAX_ALERTS_PER_NOTIFICATION]
    )
    return EntryEvaluation(evaluations, not_taken)


def _evaluate_alert(
    integration_type: IntegrationType,
    templates: dict,
    payload: Any,
    is_whole_entry: bool,
    not_rendered: str | None,
    routes: tuple[RouteRule, ...] = (),
) -> AlertEvaluation:
    # Taken before any template runs: the stored payload and label set are what was received.
    payload_json = None if is_whole_entry else json.dumps(payload)
    label_set = integration_type.label_set(payload)
    if not_rendered is not None:
        errors = dict.fromkeys(_custom_or_default_fields(integration_type, templates), not_rendered)
        return AlertEvaluation(payload_json, label_set, None, False, False, errors)
    errors: dict[str, str] = {}
    try:
        behaviour = evaluate(integration_type, templates, payload, errors)
        route_id = select_route(routes, payload)
    except MemoryError:
        raise
    except Exception:
        # Templates report their own errors; this is a defect elsewhere. One bad alert must not
        # stop ingest for everyone behind it: keep it, in a group of its own, marked as such.
        log.exception("could not evaluate an alert of type %s", integration_type.slug)
        return AlertEvaluation(payload_json, label_set, None, False, False, {"ingest": UNPROCESSABLE_ERROR})
    return AlertEvaluation(
        payload_json, label_set, behaviour.distinction, behaviour.is_resolve_signal,
        behaviour.is_acknowledge_signal, _capped(errors), route_id,
    )


def _custom_or_default_fields(integration_type: IntegrationType, templates: dict) -> list[str]:
    return [name for name in _BEHAVIOUR_FIELDS if templates.get(name) or integration_type.defaults[name]]


def render_opening_of(
    type_slug: str, templates: dict, payload_json: str, not_rendered: str | None = None
) -> Opening:
    """The title and source link of a group opened by the alert ``payload_json``."""
    if not_rendered is not None:
        return Opening(_truncated(not_rendered), None, {"web.title": not_rendered})
    errors: dict[str, str] = {}
    try:
        title, link = render_opening(get_type(type_slug), templates, json.loads(payload_json), errors)
    except MemoryError:
        raise
    except Exception:
        log.exception("could not render the title of an alert of type %s", type_slug)
        return Opening(UNPROCESSABLE_TITLE, None, {"ingest": UNPROCESSABLE_ERROR})
    return Opening(title, link, _capped(errors))


def _truncated(text: str) -> str:
    return text if len(text) <= MAX_TITLE_LENGTH else text[:MAX_TITLE_LENGTH] + TRUNCATION_MARK


def _capped(errors: dict[str, str]) -> dict[str, str]:
    # A message may quote the template (up to 50,000 characters), and every alert keeps its own.
    return {name: _truncated(error) for name, error in errors.items()}


class Evaluator(Protocol):
    """Where templates render: in this process (tests, tools) or in bounded render workers."""

    def evaluate(self, integration: IntegrationSettings, payload_json: str) -> EntryEvaluation: ...

    def opening(self, integration: IntegrationSettings, decision: AlertDecision) -> Opening: ...


class InProcessEvaluator:
    def evaluate(self, integration: IntegrationSettings, payload_json: str) -> EntryEvaluation:
        return evaluate_entry(integration.type.slug, integration.templates, payload_json, routes=integration.routes)

    def opening(self, integration: IntegrationSettings, decision: AlertDecision) -> Opening:
        return render_opening_of(integration.type.slug, integration.templates, decision.payload_json)


IN_PROCESS = InProcessEvaluator()


# --- decisions and recording ---------------------------------------------------------------------


@dataclass(frozen=True)
class AlertDecision:
    """What the integration's templates say about one alert of an entry (no state involved)."""

    index: int
    payload_json: str
    label_set: str | None
    distinction: str
    route_id: UUID
    is_resolve_signal: bool
    is_acknowledge_signal: bool
    slot_id: UUID  # the aggregate that says which group it joins (a MaintenanceCollection's id in maintenance)
    template_errors: dict[str, str]
    alerts_not_taken: int = 0  # on the last alert taken from a notification that had more
    maintenance: MaintenanceWindow | None = None  # received during it: goes into its group


class MaintenanceCollection(Aggregate):
    """The group of one maintenance, in the alerting store; its id is the maintenance's id.

    Both ingest (opening the group with the maintenance's first alert) and the maintenance's end
    (resolving it) write here, so neither can miss the other: an alert of the maintenance that
    ingest takes only after the end joins a group that is resolved.
    """

    @event("Created")
    def __init__(self, maintenance_id: UUID) -> None:
        self.group_id: UUID | None = None
        self.ended_at: datetime | None = None

    @staticmethod
    def create_id(maintenance_id: UUID) -> UUID:
        return maintenance_id

    @event("GroupOpened")
    def open_group(self, group_id: UUID) -> None:
        self.group_id = group_id

    @event("Ended")
    def _ended(self, at: datetime) -> None:
        self.ended_at = at

    def end(self, at: datetime) -> bool:
        """Record the end once; False when it was already recorded."""
        if self.ended_at is not None:
            return False
        self._ended(at=at)
        return True


def _collected(decision: AlertDecision, integration: IntegrationSettings, maintenance: MaintenanceWindow) -> AlertDecision:
    """The decision for an alert received during a maintenance that collects alerts: its group
    instead of its own grouping, and no signal (only the end resolves that group)."""
    return replace(
        decision, label_set=None, distinction=maintenance.id.hex, route_id=integration.default_route_id,
        is_resolve_signal=False, is_acknowledge_signal=False, slot_id=maintenance.id, maintenance=maintenance,
    )


def decisions_for(
    integration: IntegrationSettings,
    entry_id: UUID,
    payload_json: str,
    evaluation: EntryEvaluation,
    is_demo: bool = False,
    received_at: datetime | None = None,
) -> list[AlertDecision]:
    """``received_at``: when the entry was received (what decides whether a maintenance takes it)."""
    decisions = []
    last = len(evaluation.alerts) - 1
    for index, alert in enumerate(evaluation.alerts):
        distinction = alert.distinction
        if distinction is None or is_demo:
            # No usable grouping key (or a demo alert): a group of its own, derived from the
            # entry so that processing the same entry again gives the same answer.
            distinction = uuid5(NAMESPACE_URL, f"/ungrouped/{entry_id}/{index}").hex
        route_id = alert.route_id or integration.default_route_id
        decisions.append(
            AlertDecision(
                index=index,
                payload_json=payload_json if alert.payload_json is None else alert.payload_json,
                label_set=alert.label_set,
                distinction=distinction,
                route_id=route_id,
                is_resolve_signal=alert.is_resolve_signal and integration.type.is_able_to_autoresolve,
                is_acknowledge_signal=alert.is_acknowledge_signal,
                slot_id=GroupingSlot.create_id(integration.id, route_id, distinction),
                template_errors=alert.template_errors,
                alerts_not_taken=evaluation.alerts_not_taken if index == last else 0,
            )
        )
    maintenance = integration.maintenance
    if maintenance is not None and received_at is not None and maintenance.in_force_at(received_at):
        return [_collected(decision, integration, maintenance) for decision in decisions]
    return decisions


def decide_entry(
    integration: IntegrationSettings,
    entry_id: UUID,
    payload_json: str,
    is_demo: bool = False,
    evaluator: Evaluator = IN_PROCESS,
    received_at: datetime | None = None,
) -> list[AlertDecision]:
    """Split an entry into alerts and evaluate each one: pure, so callers can batch the lookups."""
    evaluation = evaluator.evaluate(integration, payload_json)
    return decisions_for(integration, entry_id, payload_json, evaluation, is_demo, received_at)


def ingest_entry(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    payload_json: str,
    received_at: datetime,
    is_demo: bool = False,
    evaluator: Evaluator = IN_PROCESS,
) -> IngestResult:
    decisions = decide_entry(integration, entry_id, payload_json, is_demo, evaluator, received_at)
    return record_entry(
        uow, integration, entry_id, decisions, received_at, is_demo, lambda d: evaluator.opening(integration, d)
    )


def record_entry(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    decisions: list[AlertDecision],
    received_at: datetime,
    is_demo: bool = False,
    opening: Callable[[AlertDecision], Opening] | None = None,
) -> IngestResult:
    """Put each decided alert into its group: the open one, or a new one (OnCall's rules).

    ``opening`` gives the title and link of a group an alert opens (default: rendered here).
    """
    if opening is None:
        opening = lambda decision: IN_PROCESS.opening(integration, decision)
    result = IngestResult()
    for decision in decisions:
        group, created = _record_alert(uow, integration, entry_id, decision, received_at, is_demo, opening)
        result.group_ids.append(group.id)
        if created:
            result.created_group_ids.append(group.id)
    return result


def opens_a_group(uow: UnitOfWork, decisions: Iterable[AlertDecision]) -> list[AlertDecision]:
    """The decisions that may open a group when recorded in this order (a superset, never less).

    Lets a caller render the titles of just those alerts at once, before recording.
    """
    open_now: dict[UUID, bool | None] = {}  # slot -> open (True), not open (False), unknown (None)
    candidates = []
    for decision in decisions:
        if decision.maintenance is not None:
            continue  # its group's title is the maintenance's, never rendered
        if decision.slot_id not in open_now:
            slot = uow.get(decision.slot_id)
            open_now[decision.slot_id] = slot is not None and slot.open_group_id is not None
        if open_now[decision.slot_id] is not True:
            candidates.append(decision)
            open_now[decision.slot_id] = True
        if decision.is_resolve_signal:
            open_now[decision.slot_id] = None  # it may close the group
    return candidates


def _record_alert(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    decision: AlertDecision,
    received_at: datetime,
    is_demo: bool,
    opening: Callable[[AlertDecision], Opening],
) -> tuple[AlertGroup, bool]:
    if decision.maintenance is not None:
        return _record_in_maintenance(uow, integration, entry_id, decision, received_at)
    template_errors = decision.template_errors
    distinction, route_id, is_resolve_signal = decision.distinction, decision.route_id, decision.is_resolve_signal
    slot = uow.get(decision.slot_id)
    if slot is None:
        slot = GroupingSlot(integration_id=integration.id, route_id=route_id, distinction=distinction)
        uow.add(slot)

    created = False
    if slot.open_group_id is not None:
        group = uow.get(slot.open_group_id)
    elif is_resolve_signal and slot.last_resolved_group_id is not None:
        # A resolve signal with nothing open joins the latest resolved group (no new group).
        group = uow.get(slot.last_resolved_group_id)
    else:
        generation = slot.generation + 1
        # An alert ingest could not evaluate says so in its title instead of rendering one.
        opened = opening(decision) if "ingest" not in template_errors else Opening(UNPROCESSABLE_TITLE, None, {})
        template_errors = {**template_errors, **opened.template_errors}
        group = AlertGroup(
            integration_id=integration.id,
            route_id=route_id,
            distinction=distinction,
            generation=generation,
            title=opened.title,
            source_link=opened.source_link,
            template_revision=integration.template_revision,
            started_at=received_at,
            is_demo=is_demo,
        )
        slot.open_group(group_id=group.id, generation=generation)
        uow.add(group)
        created = True
    assert group is not None, "a grouping slot points at a group that does not exist"

    _attach_new_alert(uow, integration, entry_id, decision, received_at, group, created, template_errors)
    label_set = decision.label_set
    if decision.is_acknowledge_signal:
        group.acknowledge_by_source(at=received_at)
    # Legacy per-alert types resolve a group only once every label set seen in it is resolved.
    resolves = is_resolve_signal and (label_set is None or group.every_label_set_resolved)
    if resolves and group.resolve_by_source(at=received_at):
        slot.close_group(group_id=group.id)
    return group, created


def _attach_new_alert(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    decision: AlertDecision,
    received_at: datetime,
    group: AlertGroup,
    created: bool,
    template_errors: dict[str, str],
) -> None:
    alert = Alert(
        inbox_id=entry_id,
        index=decision.index,
        alert_group_id=group.id,
        integration_id=integration.id,
        payload_json=decision.payload_json,
        received_at=received_at,
        is_resolve_signal=decision.is_resolve_signal,
        is_first_in_group=created,
        template_errors=template_errors or None,
        alerts_not_taken=decision.alerts_not_taken,
    )
    uow.add(alert)
    group.attach_alert(
        alert_id=alert.id, received_at=received_at, is_resolve_signal=decision.is_resolve_signal,
        label_set=decision.label_set,
    )


def _record_in_maintenance(
    uow: UnitOfWork, integration: IntegrationSettings, entry_id: UUID, decision: AlertDecision, received_at: datetime
) -> tuple[AlertGroup, bool]:
    """Put an alert received during a maintenance into that maintenance's one group."""
    maintenance = decision.maintenance
    collection = uow.get(maintenance.id)
    if collection is None:
        collection = MaintenanceCollection(maintenance_id=maintenance.id)
        uow.add(collection)
    created = collection.group_id is None
    if created:
        group = AlertGroup(
            integration_id=integration.id,
            route_id=decision.route_id,
            distinction=decision.distinction,
            generation=1,
            title=_truncated(maintenance.title),
            source_link=None,
            template_revision=integration.template_revision,
            started_at=received_at,
            is_demo=False,
        )
        uow.add(group)
        collection.open_group(group_id=group.id)
    else:
        group = uow.get(collection.group_id)
        assert group is not None, "a maintenance points at a group that does not exist"
    _attach_new_alert(uow, integration, entry_id, decision, received_at, group, created, decision.template_errors)
    if created and collection.ended_at is not None:
        # Its end came before ingest got to its first alert: resolved as that end would have.
        group.resolve_automatically(SOURCE_DISABLE_MAINTENANCE, at=collection.ended_at)
    return group, created


def _heartbeat_alert(integration: IntegrationSettings, which: int) -> str | None:
    payloads = integration.type.heartbeat_payloads
    return None if payloads is None else json.dumps(payloads[which])


def ingest_heartbeat_ping(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    received_at: datetime,
    evaluator: Evaluator = IN_PROCESS,
) -> IngestResult | None:
    """Record a ping; the first ping after an expiry sends the type's "restored" alert."""
    if integration.type.heartbeat_payloads is None:
        return None  # this type has no heartbeat (as in OnCall, the ping is accepted and ignored)
    heartbeat = uow.get(Heartbeat.create_id(integration.id))
    if heartbeat is None:
        heartbeat = Heartbeat(integration_id=integration.id)
        uow.add(heartbeat)
    if not heartbeat.ping(at=received_at):
        return None
    return ingest_entry(uow, integration, entry_id, _heartbeat_alert(integration, 1), received_at, evaluator=evaluator)


def expire_heartbeat(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    heartbeat_id: UUID,
    fence: int,
    at: datetime,
    evaluator: Evaluator = IN_PROCESS,
) -> IngestResult | None:
    """The deadline passed with no ping: send the type's "expired" alert (once per fence)."""
    heartbeat = uow.get(heartbeat_id)
    if heartbeat is None or integration.type.heartbeat_payloads is None:
        return None
    if not heartbeat.expire(fence=fence, at=at):
        return None
    entry_id = uuid5(NAMESPACE_URL, f"/heartbeat-expiries/{heartbeat_id}/{fence}")
    return ingest_entry(uow, integration, entry_id, _heartbeat_alert(integration, 0), at, evaluator=evaluator)


# --- ingest as a policy of the inbox -> alerting process ------------------------------------------


class BatchEvaluator(Evaluator, Protocol):
    """An ``Evaluator`` that also renders many at once (one message to a render worker)."""

    def evaluate_entries(
        self, items: list[tuple[IntegrationSettings, str]], max_alerts: int | None = None
    ) -> list[EntryEvaluation]: ...

    def openings(self, items: list[tuple[IntegrationSettings, AlertDecision]]) -> list[Opening]: ...


class IngestContext(Protocol):
    """What ingest's policy needs besides the unit of work."""

    templates: BatchEvaluator
    max_alerts: int | None  # alerts a batch takes at most (it ends before the entry that goes over)

    def settings_of(self, integration_id: UUID) -> IntegrationSettings: ...


class BatchUnitOfWork(UnitOfWork, Protocol):
    def preload(self, aggregate_ids: Iterable[UUID]) -> None: ...


INGEST = Policies()


@INGEST.batch_policy(ReceivedAlert.AlertReceived, HeartbeatPing.HeartbeatPinged)
def ingest_batch(uow: BatchUnitOfWork, entries: list, context: IngestContext) -> int:
    """Record a batch of inbox entries in order; returns how many it took (a prefix, at least one).

    Templates first (one message to a render worker), so that every grouping slot the batch needs
    is read at once; then the titles and links of just the alerts that may open a group, together.
    """
    settings = [context.settings_of(entry.integration_id) for entry in entries]
    alert_entries = [
        (index, entry, integration)
        for index, (entry, integration) in enumerate(zip(entries, settings))
        if not isinstance(entry, HeartbeatPing.HeartbeatPinged)
    ]
    evaluations = context.templates.evaluate_entries(
        [(integration, entry.payload_json) for _, entry, integration in alert_entries], context.max_alerts
    )
    taken = len(entries)
    if len(evaluations) < len(alert_entries):
        # The batch holds enough alerts: it ends before the first entry not evaluated.
        taken = alert_entries[len(evaluations)][0]
    decided: dict[int, list[AlertDecision]] = {}
    for (index, entry, integration), evaluation in zip(alert_entries, evaluations):
        decided[index] = decisions_for(
            integration, entry.originator_id, entry.payload_json, evaluation, entry.kind == KIND_DEMO, entry.received_at
        )
    uow.preload(d.slot_id for decisions in decided.values() for d in decisions)
    openings = _render_openings(uow, settings, decided, context.templates)
    for index in range(taken):
        entry, integration = entries[index], settings[index]
        if index not in decided:
            ingest_heartbeat_ping(uow, integration, entry.originator_id, entry.received_at, context.templates)
            continue

        def opening(decision: AlertDecision, integration: IntegrationSettings = integration) -> Opening:
            # Rendered above unless the guess missed it: then on its own.
            found = openings.get(id(decision))
            return found if found is not None else context.templates.opening(integration, decision)

        record_entry(
            uow, integration, entry.originator_id, decided[index], entry.received_at, entry.kind == KIND_DEMO, opening
        )
    return taken


def _render_openings(
    uow: UnitOfWork, settings: list[IntegrationSettings], decided: dict[int, list[AlertDecision]], templates: BatchEvaluator
) -> dict[int, Opening]:
    """Title and link of each alert that may open a group, rendered together (by id(decision))."""
    in_order = [(settings[index], d) for index in sorted(decided) for d in decided[index]]
    integration_of = {id(d): integration for integration, d in in_order}
    candidates = [(integration_of[id(d)], d) for d in opens_a_group(uow, [d for _, d in in_order])]
    openings = templates.openings(candidates)
    return {id(decision): found for (_, decision), found in zip(candidates, openings)}
