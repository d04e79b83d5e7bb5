"""The ingest processor: follows the inbox in order and records grouping decisions.

It is the inbox → alerting instance of the tracked process (``adapters.reactions``) with
ingest's batch policy (``domain.ingest.ingest_batch``). A batch of inbox entries becomes one transaction on the alerting store, together with the
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
import time
from collections.abc import Callable, Sequence
from uuid import UUID

from adapters.reactions import KnownAggregates, TrackedProcess
from adapters.render_pool import Done, Failed, RenderPool, Stopped
from domain.alert_group import Alert
from domain.applications import Alerting, Configuration, Inbox
from domain.commands import ExpireHeartbeat
from domain.configuration import Integration
from domain.ingest import (
    INGEST,
    UNPROCESSABLE_ERROR,
    AlertDecision,
    AlertEvaluation,
    EntryEvaluation,
    IntegrationSettings,
    Opening,
    evaluate_entry,
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


class IngestProcessor(TrackedProcess):
    """Ingest: the inbox → alerting instance of the tracked process, with ingest's batch policy.

    Its tracking row is named after the inbox (as before there were other processes), and it is
    also the context of ingest's policies and of heartbeat expiry: integration settings (cached
    until the configuration log moves on) and the bounded templates.
    """

    def __init__(
        self,
        inbox: Inbox,
        alerting: Alerting,
        config: Configuration,
        batch_size: int = 200,
        batch_interval: float = 0.05,
        templates: BoundedTemplates | InProcessTemplates | None = None,
    ):
        super().__init__(
            inbox.name, inbox, alerting, INGEST,
            batch_size=batch_size,
            # Starting batches at most every 50 ms makes them bigger under load: about a third
            # less CPU per alert when the host is busy.
            batch_interval=batch_interval,
            known=KnownAggregates(forget=(Alert,)),  # alerts are written once and never read back
            preload=alerting.get_slots,  # grouping slots: one read per batch
        )
        self.inbox = inbox
        self.alerting = alerting
        self.config = config
        # The runtime gives bounded templates; in-memory unit tests may render in-process.
        self.templates = templates if templates is not None else InProcessTemplates()
        self.max_alerts = MAX_ALERTS_PER_BATCH
        self._settings: dict[UUID, IntegrationSettings] = {}
        self._settings_position: int | None = None

    def before_batch(self) -> None:
        # Configuration changes rarely: keep what was read until the configuration log moves on.
        config_position = self.config.recorder.max_notification_id()
        if config_position != self._settings_position:
            self._settings.clear()
            self._settings_position = config_position

    def settings_of(self, integration_id: UUID) -> IntegrationSettings:
        if integration_id not in self._settings:
            self._settings[integration_id] = self._load_settings(integration_id)
        return self._settings[integration_id]

    def live_settings(self, integration_id: UUID) -> IntegrationSettings | None:
        """Read afresh (for a deadline, not a batch); None when the integration was deleted."""
        if self.config.get_integration(integration_id).deleted:
            return None
        return self._load_settings(integration_id)

    def _load_settings(self, integration_id: UUID) -> IntegrationSettings:
        integration: Integration = self.config.get_integration(integration_id)
        return IntegrationSettings(
            id=integration.id,
            type=get_type(integration.type),
            templates=integration.templates,
            template_revision=integration.template_revision,
            default_route_id=integration.default_route_id,
            routes=integration.route_rules(),
            maintenance=integration.collecting_maintenance(),
        )

    def close(self) -> None:
        """Stop the render worker, if one was started."""
        self.templates.close()

    def expire_heartbeat(self, heartbeat_id: UUID, fence: int, at) -> bool:
        """Fenced: sends the expired alert once, and nothing when a ping came in meanwhile.

        The heartbeat of a deleted integration is retired instead (True: that changed it).
        """
        return self.alerting.handle(ExpireHeartbeat(subject=heartbeat_id, fence=fence, at=at), self) is not None
