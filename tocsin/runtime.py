"""The composition root: builds the applications, read-model database and workers for the
configured backend. The same functions run in both modes; only the dispatch differs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import domain.maintenance  # noqa: F401  (registers the maintenance-end deadline's command)
from adapters.group_commit import GroupCommitter
from adapters.listener import PostgresListener
from adapters.reachability import DatabaseReachability
from adapters.render_pool import RenderPool
from adapters.settings import Settings
from domain.applications import Alerting, Configuration, Inbox
from domain.paging import RunEscalationStep
from projections.alert_groups import AlertGroupsView
from projections.alerts import AlertsView
from projections.api_tokens import ApiTokensView
from projections.db import Database, PostgresDatabase, SQLiteDatabase
from projections.deadlines import DeadlinesView
from projections.escalation_chains import EscalationChainsView
from projections.follower_status import FollowerStatus, follower_states
from projections.integrations import HeartbeatsView, IntegrationsView
from projections.maintenance import MaintenanceDeadlinesView, MaintenanceEndsView
from projections.notification_rules import NotificationRulesView
from projections.routes import RoutesView
from projections.runner import ProjectionRunner, wait_for_position
from projections.schedules import SchedulesView, refresh_calendars_forever
from projections.timeline import TimelineView
from projections.users import UsersView
from projections.webhooks import WebhooksView
from workers.delivery import (
    Deliverer,
    DeliveryQueue,
    Dispatcher,
    RedisQueue,
    ThreadQueue,
)
from workers.escalation import EscalationProcess
from workers.ingest import BoundedTemplates, IngestProcessor
from workers.ticker import Ticker

log = logging.getLogger(__name__)

# Previews rendering at once in one process; more wait for a free worker.
PREVIEW_RENDER_WORKERS = 4

# How long a pool keeps retrying a failed connection with a growing backoff before it gives up
# until the next request asks (psycopg_pool's default is 5 minutes, which after an outage left
# the pools waiting out backoffs of 8 s and more while the database was already back).
POOL_RECONNECT_TIMEOUT = 2.0


class Runtime:
    def __init__(self, settings: Settings, create_tables: bool = False):
        self.settings = settings
        if settings.backend == "sqlite":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            # SQLite has no cross-process notifications; table creation is cheap and safe there.
            create_tables = True
        self.inbox = Inbox(env=settings.event_store_env(Inbox.name, create_tables))
        self.alerting = Alerting(env=settings.event_store_env(Alerting.name, create_tables))
        self.config = Configuration(env=settings.event_store_env(Configuration.name, create_tables))
        self.db: Database = (
            PostgresDatabase(settings.postgres_conninfo())
            if settings.backend == "postgres"
            else SQLiteDatabase(str(settings.data_dir / "read_models.sqlite3"))
        )
        self.runners = {
            "alerting": ProjectionRunner(
                self.db,
                self.alerting,
                [AlertGroupsView(), AlertsView(), TimelineView(), DeadlinesView(), HeartbeatsView(), MaintenanceEndsView()],
            ),
            "config": ProjectionRunner(
                self.db,
                self.config,
                # Chains before routes: routes show only live chains.
                [IntegrationsView(), ApiTokensView(), UsersView(), SchedulesView(), EscalationChainsView(), RoutesView(),
                 MaintenanceDeadlinesView(), NotificationRulesView(), WebhooksView()],
            ),
        }
        # Templates render in worker processes with hard limits, started on first use: ingest's
        # own, and the preview's (web), so a preview can never hold up ingest.
        self.ingest = IngestProcessor(self.inbox, self.alerting, self.config, templates=BoundedTemplates())
        self._render_pool: RenderPool | None = None
        self._render_pool_lock = threading.Lock()
        # Escalation follows the alerting store and writes into it; it is also the context of the
        # escalation steps the ticker runs.
        self.escalation = EscalationProcess(self.alerting, self.config, self.db)
        self.ticker = Ticker(self.db, self.alerting, self.ingest)
        self.ticker.contexts[RunEscalationStep.kind] = self.escalation
        # Notifications: attempts are sent by a deliverer, here (embedded) or in `tocsin worker`.
        self.deliverer = Deliverer(self.alerting, self.config, self.db, settings, lambda: self.render_pool)
        self._delivery_queue: DeliveryQueue | None = None
        self.dispatcher: Dispatcher | None = None
        # In-process wake-ups (the embedded mode, and a production process's own writes).
        self.inbox.add_listener(self.ingest.waker.notify)
        self.alerting.add_listener(self.runners["alerting"].waker.notify)
        self.alerting.add_listener(self.escalation.waker.notify)
        self.alerting.add_listener(lambda: self.dispatcher and self.dispatcher.waker.notify())
        self.config.add_listener(self.runners["config"].waker.notify)
        self.reachability: DatabaseReachability | None = None
        if settings.backend == "postgres":
            pools = [app.factory.datastore.pool for app in (self.inbox, self.alerting, self.config)]
            for pool in pools:
                # Not among the event store's settings; the pool reads it at each failed attempt.
                pool.reconnect_timeout = POOL_RECONNECT_TIMEOUT
            self.reachability = DatabaseReachability(
                settings.postgres_conninfo(),
                on_recovery=[self.db.check_connections, *(lambda p=p: _check_if_open(p) for p in pools)],
            )
        self._committer: GroupCommitter | None = None
        self._committer_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- writing --------------------------------------------------------------------------------

    @property
    def committer(self) -> GroupCommitter:
        # Created lazily: a WSGI server may fork after building the app, and threads do not fork.
        with self._committer_lock:
            if self._committer is None:
                self._committer = GroupCommitter(self.inbox, reachable=self.database_reachable)
            return self._committer

    def database_reachable(self) -> bool:
        """False while this process's probe cannot reach PostgreSQL (always True on SQLite)."""
        if self.reachability is None:
            return True
        self.reachability.start()  # lazily, like the committer: after a WSGI server's fork
        return self.reachability.reachable

    @property
    def render_pool(self) -> RenderPool:
        """Render workers for requests that render templates (the template preview)."""
        with self._render_pool_lock:
            if self._render_pool is None:
                self._render_pool = RenderPool(max_workers=PREVIEW_RENDER_WORKERS)
            return self._render_pool

    # --- reading your writes -------------------------------------------------------------------

    def wait_for(self, upstream: str, position: int | None, timeout: float = 5.0) -> bool:
        """Wait until every view following ``upstream`` has applied ``position``."""
        if position is None:
            return True
        runner = self.runners[upstream]
        if upstream == "config":
            # Configuration is cold: apply it here rather than depend on the projections process.
            runner.catch_up()
        return all(
            wait_for_position(self.db, name, upstream, position, timeout) for name in runner.names
        )

    def catch_up(self) -> None:
        """Bring ingest and every view up to date (tests and command-line tools)."""
        self.runners["config"].catch_up()
        self.ingest.catch_up()
        self.escalation.catch_up()
        self.runners["alerting"].catch_up()

    def rebuild_read_models(self) -> dict[str, int]:
        """Rebuild every read model from the events; returns events read per upstream.

        One read-model transaction for all of it: readers (token lookups, the API) see the old
        rows until the commit switches them over at once, and a failure leaves the old rows.
        Live runners of the same views wait on their tracking rows meanwhile.
        """
        with self.db.transaction() as cur:
            replayed = {name: runner.rebuild(cur) for name, runner in self.runners.items()}
        for runner in self.runners.values():
            runner.forget_positions()
        return replayed

    # --- health -------------------------------------------------------------------------------

    def follower_states(self) -> dict[str, dict]:
        """Each follower's errors (as it reported them) and lag: its upstream's newest event
        minus the position it has reached (for the projections, their slowest view)."""
        positions: dict[str, int] = {}
        for row in self.db.query("SELECT upstream, MIN(position) AS position FROM projection_tracking GROUP BY upstream"):
            positions[row["upstream"]] = int(row["position"])
        lags: dict[str, int | None] = {
            "ingest": (self.inbox.recorder.max_notification_id() or 0) - self.alerting.processed_position(),
            "escalation": max((self.alerting.recorder.max_notification_id() or 0) - self.escalation.position(), 0),
            "ticker": None,
        }
        for name, runner in self.runners.items():
            newest = runner.app.recorder.max_notification_id() or 0
            lags[f"project-{name}"] = max(newest - positions.get(runner.app.name, 0), 0)
        return follower_states(self.db, lags)

    # --- background work -----------------------------------------------------------------------

    def start(
        self, ingest: bool = True, projections: bool = True, ticker: bool = True, escalation: bool = True,
        deliver_here: bool = True,
    ) -> None:
        """Run the chosen parts in threads. The escalation part also dispatches notifications:
        to in-process delivery threads (``deliver_here``), else to Redis for `tocsin worker`."""
        if self.reachability is not None:
            self.reachability.start()
        jobs: list[tuple[str, object]] = []

        def report(follower: str) -> FollowerStatus:
            return FollowerStatus(self.db, follower)

        if ingest:
            jobs.append(("ingest", lambda: self.ingest.run_forever(self._stop, status=report("ingest"))))
        if escalation:
            jobs.append(("escalation", lambda: self.escalation.run_forever(self._stop, status=report("escalation"))))
            self._delivery_queue = (
                ThreadQueue(self.deliverer.deliver) if deliver_here else RedisQueue(self.settings.redis_url)
            )
            self.dispatcher = Dispatcher(self.alerting, self._delivery_queue)
            jobs.append(("delivery-dispatch", lambda: self.dispatcher.run_forever(self._stop)))
        if projections:
            for name, runner in self.runners.items():
                jobs.append(
                    (f"project-{name}", lambda r=runner, n=name: r.run_forever(self._stop, status=report(f"project-{n}")))
                )
        if ticker:
            jobs.append(("ticker", lambda: self.ticker.run_forever(self._stop, status=report("ticker"))))
            # Calendars of ical schedules, fetched every 10 minutes beside the ticker's work.
            jobs.append(("ical-refresh", lambda: refresh_calendars_forever(self.db, self.config, self._stop)))
        if self.settings.backend == "postgres":
            jobs.append(("listen", lambda: self._listener(ingest, projections, escalation).run_forever(self._stop)))
        for name, target in jobs:
            thread = threading.Thread(target=target, name=f"tocsin-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _listener(self, ingest: bool, projections: bool, escalation: bool) -> PostgresListener:
        channels: dict[str, list] = {}

        def add(app, wakers: Iterable) -> None:
            channels.setdefault(app.recorder.channel_name, []).extend(wakers)

        if ingest:
            add(self.inbox, [self.ingest.waker.notify])
        if escalation:
            add(self.alerting, [self.escalation.waker.notify, self.dispatcher.waker.notify])
        if projections:
            add(self.alerting, [self.runners["alerting"].waker.notify])
            add(self.config, [self.runners["config"].waker.notify])
        return PostgresListener(self.settings.postgres_conninfo(), channels)

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    def close(self) -> None:
        self._stop.set()
        # Idle followers sleep on their waker, not on the stop event: wake them to stop now.
        self.ingest.waker.notify()
        self.escalation.waker.notify()
        if self.dispatcher is not None:
            self.dispatcher.waker.notify()
        for runner in self.runners.values():
            runner.waker.notify()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._committer is not None:
            self._committer.close()
        if self._delivery_queue is not None:
            self._delivery_queue.close()
        self.ingest.close()
        if self._render_pool is not None:
            self._render_pool.close()
        if self.reachability is not None:
            self.reachability.stop()
        for app in (self.inbox, self.alerting, self.config):
            app.close()
        self.db.close()


def _check_if_open(pool) -> None:
    """Replace the idle connections the server dropped; an event store opens its pool on first use."""
    if not pool.closed:
        pool.check()
