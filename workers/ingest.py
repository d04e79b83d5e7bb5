"""The ingest processor: follows the inbox in order and records grouping decisions.

A batch of inbox entries becomes one transaction on the alerting store, together with the
position reached in the inbox (exactly once: a crash before commit redoes the batch, a crash
after it skips the batch). One ingest process runs at a time, so the same inbox and the same
configuration always give the same groups.

Templates render in a render worker process (``adapters.render_pool``), a batch's entries in one
message, so no template can stall ingest: a render that goes over the hard limit (time or memory)
is stopped, its alert is recorded with the error, and the batch goes on. After that, the same
integration's templates are not rendered for ``COOL_DOWN_SECONDS``: its alerts get an immediate
template error (each a group of its own, as any alert without a grouping key), so one
integration's repeated bombs cannot add up ahead of another integration's alerts. A batch takes
at most ``MAX_ALERTS_PER_BATCH`` alerts (the entries that bring them; always at least one), so
notifications with many alerts (legacy Alertmanager) bound a batch's work and memory by alerts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Tracking

from adapters.render_pool import Done, Failed, RenderPool, Stopped
from adapters.waker import Waker
from domain.alert_group import Alert
from domain.applications import Alerting, Configuration, Inbox
from domain.configuration import Integration
from domain.heartbeat import Heartbeat
from domain.inbox import KIND_DEMO, HeartbeatPing
from domain.ingest import (
    UNPROCESSABLE_ERROR,
    AlertDecision,
    AlertEvaluation,
    EntryEvaluation,
    IntegrationSettings,
    Opening,
    decisions_for,
    evaluate_entry,
    expire_heartbeat,
    ingest_heartbeat_ping,
    opens_a_group,
    record_entry,
    render_opening_of,
)
from domain.integrations import get_type
from domain.templating import MAX_TITLE_LENGTH, TRUNCATION_MARK

log = logging.getLogger(__name__)

COOL_DOWN_SECONDS = 30.0
MAX_ALERTS_PER_BATCH = 1000
_STOP_REASONS = {
    "time": "took longer than {limit:g}s",
    "memory": "needed more than {memory} MiB of memory",
    "crashed": "crashed its render process",
}


class BoundedTemplates:
    """Ingest's templates, rendered in a render worker, with the cool-down rule per integration.

    Also a ``domain.ingest.Evaluator``, for the alerts heartbeats send.
    """

    def __init__(self, pool: RenderPool | None = None, cool_down: float = COOL_DOWN_SECONDS):
        self._pool = pool
        self.cool_down = cool_down
        self._cooling_until: dict[UUID, float] = {}

    @property
    def pool(self) -> RenderPool:
        if self._pool is None:  # started on first use: a process that never ingests starts none
            self._pool = RenderPool(max_workers=1)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    # --- the cool-down rule ---------------------------------------------------------------------

    def not_rendered(self, integration_id: UUID) -> str | None:
        """The error an integration's alerts get instead of rendering, while it cools down."""
        until = self._cooling_until.get(integration_id)
        if until is None:
            return None
        if time.monotonic() >= until:
            self._cooling_until.pop(integration_id, None)  # the ticker's thread may look too
            return None
        return (
            "Template Error: Not rendered: a template of this integration went over a hard limit less than"
            f" {self.cool_down:g}s ago"
        )

    def _stopped(self, integration_id: UUID, reason: str) -> str:
        """Start the integration's cool-down; the error the alert whose render was stopped gets."""
        self._cooling_until[integration_id] = time.monotonic() + self.cool_down
        memory = (self.pool.memory_limit or 0) // (1024 * 1024)
        cause = _STOP_REASONS.get(reason, reason).format(limit=self.pool.hard_limit, memory=memory)
        log.warning("a template of integration %s %s; not rendering its templates for %gs", integration_id, cause, self.cool_down)
        return (
            f"Template Error: Template rendering was stopped: it {cause}; this integration's templates are not"
            f" rendered for {self.cool_down:g}s"
        )

    # --- batches ------------------------------------------------------------------------------

    def evaluate_entries(
        self, items: list[tuple[IntegrationSettings, str]], max_alerts: int | None = None
    ) -> list[EntryEvaluation]:
        """Each (integration, payload_json) evaluated, in order; a prefix when max_alerts is reached."""
        errors: dict[int, str] = {}  # the error a stopped entry gets instead of rendering

        def job(index: int) -> tuple:
            integration, payload_json = items[index]
            not_rendered = errors.get(index) or self.not_rendered(integration.id)
            return integration.type.slug, integration.templates, payload_json, not_rendered, integration.routes

        def replace_stopped(index: int, reason: str) -> tuple:
            errors[index] = self._stopped(items[index][0].id, reason)
            return job(index)

        outcomes = self.pool.run(
            evaluate_entry, _LazyJobs(job, len(items)), max_weight=max_alerts,
            job_size=lambda job: len(job[2]), replace_stopped=replace_stopped,
        )
        return [
            outcome.value if isinstance(outcome, Done) else _unrendered_entry(errors.get(index) or _failure(outcome))
            for index, outcome in enumerate(outcomes)
        ]

    def openings(self, items: list[tuple[IntegrationSettings, AlertDecision]]) -> list[Opening]:
        """Title and source link of each alert that may open a group."""
        errors: dict[int, str] = {}

        def job(index: int) -> tuple:
            integration, decision = items[index]
            not_rendered = errors.get(index) or self.not_rendered(integration.id)
            return integration.type.slug, integration.templates, decision.payload_json, not_rendered

        def replace_stopped(index: int, reason: str) -> tuple:
            errors[index] = self._stopped(items[index][0].id, reason)
            return job(index)

        outcomes = self.pool.run(
            render_opening_of, _LazyJobs(job, len(items)), job_size=lambda job: len(job[2]),
            replace_stopped=replace_stopped,
        )
        return [
            outcome.value if isinstance(outcome, Done) else _unrendered_opening(errors.get(index) or _failure(outcome))
            for index, outcome in enumerate(outcomes)
        ]

    # --- domain.ingest.Evaluator --------------------------------------------------------------

    def evaluate(self, integration: IntegrationSettings, payload_json: str) -> EntryEvaluation:
        return self.evaluate_entries([(integration, payload_json)])[0]

    def opening(self, integration: IntegrationSettings, decision: AlertDecision) -> Opening:
        return self.openings([(integration, decision)])[0]


class InProcessTemplates:
    """Templates rendered in this process, unbounded: for in-memory unit tests and tools only."""

    def evaluate_entries(
        self, items: list[tuple[IntegrationSettings, str]], max_alerts: int | None = None
    ) -> list[EntryEvaluation]:
        evaluations: list[EntryEvaluation] = []
        alerts = 0
        for integration, payload_json in items:
            if max_alerts is not None and alerts >= max_alerts:
                break
            evaluations.append(self.evaluate(integration, payload_json))
            alerts += len(evaluations[-1])
        return evaluations

    def openings(self, items: list[tuple[IntegrationSettings, AlertDecision]]) -> list[Opening]:
        return [
            render_opening_of(integration.type.slug, integration.templates, decision.payload_json)
            for integration, decision in items
        ]

    def evaluate(self, integration: IntegrationSettings, payload_json: str) -> EntryEvaluation:
        return evaluate_entry(integration.type.slug, integration.templates, payload_json, routes=integration.routes)

    def opening(self, integration: IntegrationSettings, decision: AlertDecision) -> Opening:
        return render_opening_of(integration.type.slug, integration.templates, decision.payload_json)

    def close(self) -> None:
        pass


class _LazyJobs(Sequence):
    """Jobs made when the pool sends them, so a cool-down that began meanwhile applies to them."""

    def __init__(self, make: Callable[[int], tuple], length: int):
        self._make = make
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._make(index)


def _failure(outcome: Failed | Stopped) -> str:
    # A job that raised is a defect (templates report their own errors): say so, keep the alert.
    log.error("rendering failed: %s", outcome)
    return UNPROCESSABLE_ERROR


def _unrendered_entry(error: str) -> EntryEvaluation:
    # Even rendering nothing failed (the payload alone went over a limit): keep it whole, as one alert.
    return EntryEvaluation((AlertEvaluation(None, None, None, False, False, {"ingest": error}),))


def _unrendered_opening(error: str) -> Opening:
    title = error if len(error) <= MAX_TITLE_LENGTH else error[:MAX_TITLE_LENGTH] + TRUNCATION_MARK
    return Opening(title, None, {"web.title": error})


class KnownAggregates:
    """Aggregates as ingest last saved them, so a busy ingest rarely reads the store.

    Safe without invalidation messages: ingest writes a new event to every group and heartbeat
    it uses, and a slot only changes together with a group, so if another writer (a user
    action, the ticker) changed one meanwhile, the save fails on the version and the batch runs
    again after ``clear()``.
    """

    def __init__(self, maxsize: int = 20_000):
        self.maxsize = maxsize
        self._aggregates: OrderedDict[UUID, Aggregate] = OrderedDict()

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        aggregate = self._aggregates.get(aggregate_id)
        if aggregate is not None:
            self._aggregates.move_to_end(aggregate_id)
        return aggregate

    def remember(self, aggregates) -> None:
        for aggregate in aggregates:
            if not isinstance(aggregate, Alert):  # alerts are written once and never read back
                self._aggregates[aggregate.id] = aggregate
                self._aggregates.move_to_end(aggregate.id)
        while len(self._aggregates) > self.maxsize:
            self._aggregates.popitem(last=False)

    def clear(self) -> None:
        self._aggregates.clear()


class BatchUnitOfWork:
    """Aggregates loaded or created while processing one batch, each loaded at most once."""

    def __init__(self, alerting: Alerting, known: KnownAggregates | None = None):
        self._alerting = alerting
        self._repository = alerting.repository
        self._known = known
        self._aggregates: dict[UUID, Aggregate | None] = {}

    def preload_slots(self, slot_ids) -> None:
        """Look up every slot a batch needs in one read instead of one read per alert."""
        unknown = {
            slot_id for slot_id in slot_ids
            if slot_id not in self._aggregates and (self._known is None or self._known.get(slot_id) is None)
        }
        if unknown:
            found = self._alerting.get_slots(unknown)
            for slot_id in unknown:
                self._aggregates[slot_id] = found.get(slot_id)  # None: no such slot yet

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self._aggregates:
            aggregate = self._known.get(aggregate_id) if self._known else None
            if aggregate is None:
                try:
                    aggregate = self._repository.get(aggregate_id)
                except AggregateNotFoundError:
                    return None
            self._aggregates[aggregate_id] = aggregate
        return self._aggregates[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self._aggregates[aggregate.id] = aggregate

    def all(self) -> list[Aggregate]:
        return [a for a in self._aggregates.values() if a is not None]

    def changed(self) -> list[Aggregate]:
        return [a for a in self.all() if a.pending_events]


class IngestProcessor:
    def __init__(
        self,
        inbox: Inbox,
        alerting: Alerting,
        config: Configuration,
        batch_size: int = 200,
        batch_interval: float = 0.05,
        templates: BoundedTemplates | InProcessTemplates | None = None,
    ):
        self.inbox = inbox
        self.alerting = alerting
        self.config = config
        # The runtime gives bounded templates; in-memory unit tests may render in-process.
        self.templates = templates if templates is not None else InProcessTemplates()
        self.batch_size = batch_size
        self.batch_interval = batch_interval  # see run_forever
        self.waker = Waker()
        self.known = KnownAggregates()
        self._settings: dict[UUID, IntegrationSettings] = {}
        self._settings_position: int | None = None
        self._position: int | None = None  # the inbox position saved last; None: read it
        # Entries read per batch: after a batch ended early on MAX_ALERTS_PER_BATCH (entries with
        # many alerts, up to a few MiB each), read about that many, doubling back to batch_size.
        self._read_limit = batch_size

    def _forget_settings_if_changed(self) -> None:
        """Configuration changes rarely: keep what was read until the configuration log moves on."""
        config_position = self.config.recorder.max_notification_id()
        if config_position != self._settings_position:
            self._settings.clear()
            self._settings_position = config_position

    def _integration_settings(self, integration_id: UUID) -> IntegrationSettings:
        if integration_id not in self._settings:
            self._settings[integration_id] = self._load_settings(integration_id)
        return self._settings[integration_id]

    def _load_settings(self, integration_id: UUID) -> IntegrationSettings:
        integration: Integration = self.config.get_integration(integration_id)
        return IntegrationSettings(
            id=integration.id,
            type=get_type(integration.type),
            templates=integration.templates,
            template_revision=integration.template_revision,
            default_route_id=integration.default_route_id,
            routes=integration.route_rules(),
        )

    def run_batch(self) -> int:
        """Process the next batch; returns how many inbox entries it read (0: caught up)."""
        try:
            return self._run_batch()
        except BaseException:
            self.known.clear()  # aggregates may hold changes that were never saved
            self._position = None  # and the save may or may not have committed
            raise

    def _run_batch(self) -> int:
        for attempt in range(20):
            # Ingest is the only writer of its position (one active copy): what it last saved
            # is the position, and a conflict makes it read the store again.
            if self._position is None:
                self._position = self.alerting.processed_position()
            position = self._position
            notifications = self.inbox.recorder.select_notifications(
                position, self._read_limit, inclusive_of_start=False
            )
            if not notifications:
                return 0
            uow = BatchUnitOfWork(self.alerting, self.known)
            self._forget_settings_if_changed()
            entries = [
                (entry, self._integration_settings(entry.integration_id))
                for entry in map(self.inbox.mapper.to_domain_event, notifications)
            ]
            # Templates first (in a render worker, one message), so that the batch's slots can be
            # read at once.
            alert_entries = [
                (index, entry, integration)
                for index, (entry, integration) in enumerate(entries)
                if not isinstance(entry, HeartbeatPing.HeartbeatPinged)
            ]
            evaluations = self.templates.evaluate_entries(
                [(integration, entry.payload_json) for _, entry, integration in alert_entries], MAX_ALERTS_PER_BATCH
            )
            if len(evaluations) < len(alert_entries):
                # The batch holds enough alerts: it ends before the first entry not evaluated.
                cut = alert_entries[len(evaluations)][0]
                entries, notifications = entries[:cut], notifications[:cut]
                self._read_limit = cut + 1
            else:
                self._read_limit = min(self._read_limit * 2, self.batch_size)
            decided: dict[int, list[AlertDecision]] = {}
            for (index, entry, integration), evaluation in zip(alert_entries, evaluations):
                decided[index] = decisions_for(
                    integration, entry.originator_id, entry.payload_json, evaluation, entry.kind == KIND_DEMO
                )
            uow.preload_slots(d.slot_id for decisions in decided.values() for d in decisions)
            openings = self._render_openings(uow, entries, decided)
            for index, (entry, integration) in enumerate(entries):
                if index not in decided:
                    ingest_heartbeat_ping(uow, integration, entry.originator_id, entry.received_at, self.templates)
                    continue

                def opening(
                    decision: AlertDecision, integration: IntegrationSettings = integration, openings=openings
                ) -> Opening:
                    # Rendered above unless the guess missed it: then on its own.
                    found = openings.get(id(decision))
                    return found if found is not None else self.templates.opening(integration, decision)

                record_entry(
                    uow, integration, entry.originator_id, decided[index], entry.received_at,
                    entry.kind == KIND_DEMO, opening,
                )
            try:
                self.alerting.save_processed(uow.changed(), Tracking(self.inbox.name, notifications[-1].id))
            except IntegrityError:
                # A user action changed a group meanwhile (or another ingest ran): redo on fresh state.
                log.debug("ingest batch conflicted (attempt %d); retrying", attempt + 1)
                self.known.clear()
                self._position = None
                continue
            self._position = notifications[-1].id
            self.known.remember(uow.all())
            return len(notifications)
        raise RuntimeError("ingest batch kept conflicting; giving up for now")

    def _render_openings(
        self, uow: BatchUnitOfWork, entries: list, decided: dict[int, list[AlertDecision]]
    ) -> dict[int, Opening]:
        """Title and link of each alert that may open a group, rendered together (by id(decision))."""
        in_order = [(entries[index][1], d) for index in sorted(decided) for d in decided[index]]
        integration_of = {id(d): integration for integration, d in in_order}
        candidates = [(integration_of[id(d)], d) for d in opens_a_group(uow, [d for _, d in in_order])]
        openings = self.templates.openings(candidates)
        return {id(decision): found for (_, decision), found in zip(candidates, openings)}

    def close(self) -> None:
        """Stop the render worker, if one was started."""
        self.templates.close()

    def expire_heartbeat(self, heartbeat_id: UUID, fence: int, at) -> bool:
        """Fenced: sends the expired alert once, and nothing when a ping came in meanwhile.

        The heartbeat of a deleted integration is retired instead (True: that changed it).
        """
        for _ in range(20):
            uow = BatchUnitOfWork(self.alerting)
            heartbeat = uow.get(heartbeat_id)
            if not isinstance(heartbeat, Heartbeat):
                return False
            if self.config.get_integration(heartbeat.integration_id).deleted:
                # Deleted since the deadline was set, and the deletion's own disarm is not (yet)
                # recorded: disarm now instead of raising an alert nothing could resolve.
                if not heartbeat.retire(at=at):
                    return False
            else:
                settings = self._load_settings(heartbeat.integration_id)
                if expire_heartbeat(uow, settings, heartbeat_id, fence, at, self.templates) is None:
                    return False
            try:
                self.alerting.save(*uow.changed())
            except IntegrityError:
                continue  # a ping or an action raced with us: decide again on fresh state
            return True
        raise RuntimeError("heartbeat expiry kept conflicting; the ticker will try again")

    def catch_up(self) -> int:
        total = 0
        while count := self.run_batch():
            total += count
        return total

    def run_forever(self, stop: threading.Event, idle_timeout: float = 1.0, status=None) -> None:
        """Follow the inbox until ``stop``; ``status`` (a ``projections.follower_status.FollowerStatus``)
        hears of every failure and of successes, for /health and /metrics."""
        backoff = 0.1
        while not stop.is_set():
            began = time.monotonic()
            try:
                count = self.run_batch()
                backoff = 0.1
            except Exception as exc:  # a database outage must not end ingest: keep retrying
                log.exception("ingest failed; retrying in %.1fs", backoff)
                if status is not None:
                    status.failed(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if status is not None:
                status.succeeded()
            if count == 0:
                self.waker.wait(idle_timeout)
            elif count < self.batch_size:
                # Under load, entries keep arriving while a batch runs, so the next batch would be
                # as small; and a batch costs a few queries and a transaction whatever its size.
                # Starting batches at most every batch_interval makes them bigger (a full batch
                # goes on at once): about a third less CPU per alert when the host is busy.
                stop.wait(self.batch_interval - (time.monotonic() - began))
