"""Ingest: turn one inbox entry into alerts in alert groups (OnCall's ``Alert.create``).

Pure decision logic over a unit of work; the caller loads and saves aggregates. Everything
decided here (distinction, title, resolve/ack signal, route, template revision) is written into
the events, so a replay never renders a template again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.alert_group import Alert, AlertGroup, GroupingSlot
from domain.heartbeat import Heartbeat
from domain.integrations import Behaviour, IntegrationType, evaluate


log = logging.getLogger(__name__)

UNPROCESSABLE = Behaviour(
    distinction=None,
    is_resolve_signal=False,
    is_acknowledge_signal=False,
    _title_template="Unprocessable alert: Tocsin could not evaluate it (see its payload)",
)


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


@dataclass
class IngestResult:
    group_ids: list[UUID] = field(default_factory=list)
    created_group_ids: list[UUID] = field(default_factory=list)


@dataclass(frozen=True)
class AlertDecision:
    """What the integration's templates say about one alert of an entry (no state involved)."""

    index: int
    payload: object
    payload_json: str
    behaviour: Behaviour
    distinction: str
    route_id: UUID
    is_resolve_signal: bool
    slot_id: UUID


def decide_entry(
    integration: IntegrationSettings, entry_id: UUID, payload_json: str, is_demo: bool = False
) -> list[AlertDecision]:
    """Split an entry into alerts and evaluate each one: pure, so callers can batch the lookups."""
    payload = json.loads(payload_json)
    try:
        alerts = integration.type.split(payload)
    except Exception:
        # A body the type cannot take apart is still an alert: kept whole, never dropped.
        log.exception("integration type %s could not split entry %s", integration.type.slug, entry_id)
        alerts = [payload]
    return [
        _decide_alert(integration, entry_id, index, alert_payload, payload_json, alert_payload is payload, is_demo)
        for index, alert_payload in enumerate(alerts)
    ]


def _decide_alert(
    integration: IntegrationSettings,
    entry_id: UUID,
    index: int,
    payload: object,
    entry_json: str,
    is_whole_entry: bool,
    is_demo: bool,
) -> AlertDecision:
    try:
        behaviour = evaluate(integration.type, integration.templates, payload)
    except Exception:
        # Templates report their own errors; this is a defect elsewhere. One bad alert must not
        # stop ingest for everyone behind it: keep it, in a group of its own, marked as such.
        log.exception("could not evaluate entry %s (alert %d)", entry_id, index)
        behaviour = UNPROCESSABLE
    distinction = behaviour.distinction
    if distinction is None or is_demo:
        # No usable grouping key (or a demo alert): a group of its own, derived from the
        # entry so that processing the same entry again gives the same answer.
        distinction = uuid5(NAMESPACE_URL, f"/ungrouped/{entry_id}/{index}").hex
    route_id = integration.default_route_id
    return AlertDecision(
        index=index,
        payload=payload,
        payload_json=entry_json if is_whole_entry else json.dumps(payload),
        behaviour=behaviour,
        distinction=distinction,
        route_id=route_id,
        is_resolve_signal=behaviour.is_resolve_signal and integration.type.is_able_to_autoresolve,
        slot_id=GroupingSlot.create_id(integration.id, route_id, distinction),
    )


def ingest_entry(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    payload_json: str,
    received_at: datetime,
    is_demo: bool = False,
) -> IngestResult:
    decisions = decide_entry(integration, entry_id, payload_json, is_demo)
    return record_entry(uow, integration, entry_id, decisions, received_at, is_demo)


def record_entry(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    decisions: list[AlertDecision],
    received_at: datetime,
    is_demo: bool = False,
) -> IngestResult:
    """Put each decided alert into its group: the open one, or a new one (OnCall's rules)."""
    result = IngestResult()
    for decision in decisions:
        group, created = _record_alert(uow, integration, entry_id, decision, received_at, is_demo)
        result.group_ids.append(group.id)
        if created:
            result.created_group_ids.append(group.id)
    return result


def _record_alert(
    uow: UnitOfWork,
    integration: IntegrationSettings,
    entry_id: UUID,
    decision: AlertDecision,
    received_at: datetime,
    is_demo: bool,
) -> tuple[AlertGroup, bool]:
    behaviour = decision.behaviour
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
        group = AlertGroup(
            integration_id=integration.id,
            route_id=route_id,
            distinction=distinction,
            generation=generation,
            title=behaviour.title,
            source_link=behaviour.source_link,
            template_revision=integration.template_revision,
            started_at=received_at,
            is_demo=is_demo,
        )
        slot.open_group(group_id=group.id, generation=generation)
        uow.add(group)
        created = True
    assert group is not None, "a grouping slot points at a group that does not exist"

    alert = Alert(
        inbox_id=entry_id,
        index=decision.index,
        alert_group_id=group.id,
        integration_id=integration.id,
        payload_json=decision.payload_json,
        received_at=received_at,
        is_resolve_signal=is_resolve_signal,
        is_first_in_group=created,
    )
    uow.add(alert)
    label_set = integration.type.label_set(decision.payload)
    group.attach_alert(
        alert_id=alert.id, received_at=received_at, is_resolve_signal=is_resolve_signal, label_set=label_set
    )
    if behaviour.is_acknowledge_signal:
        group.acknowledge_by_source(at=received_at)
    # Legacy per-alert types resolve a group only once every label set seen in it is resolved.
    resolves = is_resolve_signal and (label_set is None or group.every_label_set_resolved)
    if resolves and group.resolve_by_source(at=received_at):
        slot.close_group(group_id=group.id)
    return group, created


def _heartbeat_alert(integration: IntegrationSettings, which: int) -> str | None:
    payloads = integration.type.heartbeat_payloads
    return None if payloads is None else json.dumps(payloads[which])


def ingest_heartbeat_ping(
    uow: UnitOfWork, integration: IntegrationSettings, entry_id: UUID, received_at: datetime
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
    return ingest_entry(uow, integration, entry_id, _heartbeat_alert(integration, 1), received_at)


def expire_heartbeat(
    uow: UnitOfWork, integration: IntegrationSettings, heartbeat_id: UUID, fence: int, at: datetime
) -> IngestResult | None:
    """The deadline passed with no ping: send the type's "expired" alert (once per fence)."""
    heartbeat = uow.get(heartbeat_id)
    if heartbeat is None or integration.type.heartbeat_payloads is None:
        return None
    if not heartbeat.expire(fence=fence, at=at):
        return None
    entry_id = uuid5(NAMESPACE_URL, f"/heartbeat-expiries/{heartbeat_id}/{fence}")
    return ingest_entry(uow, integration, entry_id, _heartbeat_alert(integration, 0), at)
