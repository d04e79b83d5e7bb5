"""Delivering notifications: the dispatcher hands due attempts to a queue, a worker sends each.

The outbox is the alerting log itself: ``DeliveryAttempt.Requested`` (and ``Redispatched``) are
the entries. The ``Dispatcher`` follows the log from where it is when it starts and puts each due
attempt on a queue: Redis through RQ in production (``tocsin worker`` runs the workers), a small
thread pool in the embedded mode. Losing a queued job (Redis flushed, a dispatcher killed before
it queued) loses nothing: the attempt's check deadline dispatches it again. Queueing one twice
sends it once: ``Deliverer.deliver`` claims the attempt before sending (``StartDelivery``) and
only the worker whose claim was recorded sends, then records the outcome (``RecordDelivery``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from adapters.action_links import (
    ACTION_TITLES,
    action_links,
    reply_address,
    reply_token,
)
from adapters.notify_channels import (
    ATTEMPT_HEADER,
    PERMANENT,
    SendResult,
    email_message,
    render_message,
    send_apprise,
    send_email,
    send_webhook,
)
from adapters.render_pool import RenderPool
from adapters.settings import Settings
from adapters.waker import Waker, follow
from adapters.webhook_sender import attempt_webhook, bounded_renderer
from domain.alert_group import AlertGroup
from domain.applications import Alerting, Configuration
from domain.delivery import (
    NOT_TRIGGERED,
    SKIPPED,
    STARTED,
    DeliveryAttempt,
    RecordDelivery,
    StartDelivery,
)
from domain.ids import (
    PREFIX_ALERT_GROUP,
    PREFIX_INTEGRATION,
    PREFIX_ROUTE,
    PREFIX_USER,
    public_id,
)
from domain.notification_rules import CHANNELS
from domain.webhooks import event_user, webhook_context
from projections.db import Database, iso
from projections.queries import alert_group, first_alert_payload
from projections.webhooks import latest_responses

log = logging.getLogger(__name__)

QUEUE_NAME = "tocsin-deliveries"
JOB_TIMEOUT_SECONDS = 30  # a send takes at most its 4 s timeout, a render 1.25 s
EMBEDDED_WORKERS = 4
_DISPATCHED_TOPICS = tuple(get_topic(t) for t in (DeliveryAttempt.Requested, DeliveryAttempt.Redispatched))


def utcnow() -> datetime:
    return datetime.now(UTC)


class DeliveryQueue(Protocol):
    def put(self, attempt_id: UUID) -> None: ...

    def close(self) -> None: ...


class ThreadQueue:
    """The embedded mode's queue: deliveries run in this process, a few at a time."""

    def __init__(self, deliver: Callable[[UUID], None], workers: int = EMBEDDED_WORKERS):
        self._deliver = deliver
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tocsin-delivery")

    def put(self, attempt_id: UUID) -> None:
        self._pool.submit(self._run, attempt_id)

    def _run(self, attempt_id: UUID) -> None:
        try:
            self._deliver(attempt_id)
        except Exception:  # the attempt's check deadline tries again
            log.exception("delivering %s failed", attempt_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RedisQueue:
    """Production: one RQ job per attempt, run by ``tocsin worker`` (``deliver_job``)."""

    def __init__(self, redis_url: str):
        from redis import Redis
        from rq import Queue

        self._queue = Queue(QUEUE_NAME, connection=Redis.from_url(redis_url, socket_timeout=2))

    def put(self, attempt_id: UUID) -> None:
        # The attempt's id as the job's: queueing it again while queued replaces the job.
        self._queue.enqueue(
            deliver_job, str(attempt_id), job_id=f"attempt-{attempt_id}", job_timeout=JOB_TIMEOUT_SECONDS,
            result_ttl=600, failure_ttl=86_400,
        )  # fmt: skip

    def close(self) -> None:
        pass


class Dispatcher:
    """Follows the alerting log (from its newest event at start) and queues every attempt due."""

    def __init__(self, alerting: Alerting, queue: DeliveryQueue, clock: Callable[[], datetime] = utcnow):
        self.alerting = alerting
        self.queue = queue
        self.clock = clock
        self.waker = Waker()
        self._position: int | None = None

    def run_batch(self) -> int:
        if self._position is None:
            # Attempts from before this start are found by their check deadlines.
            self._position = self.alerting.recorder.max_notification_id() or 0
        newest = self.alerting.recorder.max_notification_id() or 0
        if newest <= self._position:
            return 0
        stop = min(newest, self._position + 500)
        # Only the attempts' events are read (the store filters by topic); the rest are skipped.
        notifications = self.alerting.recorder.select_notifications(
            self._position, 500, stop=stop, topics=_DISPATCHED_TOPICS, inclusive_of_start=False
        )
        now = self.clock()
        for notification in notifications:
            entry = self.alerting.mapper.to_domain_event(notification)
            if isinstance(entry, DeliveryAttempt.Requested) and entry.due_at > now:
                continue  # a retry after a backoff: its check deadline dispatches it when due
            try:
                self.queue.put(entry.originator_id)
            except Exception:  # Redis down: the check deadline dispatches it again
                log.warning("could not queue delivery %s; its check will", entry.originator_id, exc_info=True)
        read = stop - self._position
        self._position = stop
        return read

    def run_forever(self, stop: threading.Event, status=None) -> None:
        follow(self.run_batch, stop, self.waker, name="delivery-dispatch", batch_size=500, status=status)


class Deliverer:
    """Sends one attempt: claim it, render the message, send it, record the outcome."""

    def __init__(self, alerting: Alerting, config: Configuration, db: Database, settings: Settings,
                 render_pool: Callable[[], RenderPool], clock: Callable[[], datetime] = utcnow):  # fmt: skip
        self.alerting = alerting
        self.config = config
        self.db = db
        self.settings = settings
        self._render_pool = render_pool
        self.clock = clock

    def deliver(self, attempt_id: UUID) -> str | None:
        """The attempt's outcome ("sent", "transient", "permanent"), None when this worker did not
        send it (another did, it was cancelled, or it is not due)."""
        claim = uuid4()
        self.alerting.handle(StartDelivery(attempt_id=attempt_id, claim=claim, at=self.clock()))
        try:
            attempt: DeliveryAttempt = self.alerting.repository.get(attempt_id)
        except AggregateNotFoundError:
            return None
        if attempt.state != STARTED or attempt.claim != claim:
            return None
        address, result = self._send(attempt)
        self.alerting.handle(RecordDelivery(attempt_id=attempt_id, claim=claim, address=address,
                                            outcome=result.outcome, reason=result.reason, at=self.clock()))  # fmt: skip
        return result.outcome

    def _send(self, attempt: DeliveryAttempt) -> tuple[str | None, SendResult]:
        if attempt.webhook is not None:
            return self._send_webhook(attempt)
        channel = CHANNELS.get(attempt.channel)
        if channel is None:
            return None, SendResult(PERMANENT, f"unknown channel {attempt.channel}")
        try:
            user = self.config.get_user(attempt.user_id)
        except AggregateNotFoundError:
            return None, SendResult(PERMANENT, "the user was deleted")
        message = self._message(attempt, channel.name)
        if channel.address == "email":
            if not user.email:
                return None, SendResult(PERMANENT, f"{user.username} has no email address")
            email = email_message(user.email, message["title"], message["body"] + message["links_text"])
            reply_to = reply_address(self.settings, reply_token(self.settings, attempt.user_id, message["group_id"],
                                                                self.clock()))  # fmt: skip
            if reply_to:  # replying "ack" acknowledges (the SMTP receiver takes the reply)
                email["Reply-To"] = reply_to
            email[ATTEMPT_HEADER] = str(attempt.id)  # the receiver's idempotency key
            return user.email, send_email(self.settings.smtp_url, email)
        address = user.notification_channels.get(channel.name if channel.address == "apprise" else "webhook")
        if not address:
            return None, SendResult(PERMANENT, f"{user.username} has no {channel.name} address")
        if channel.address == "webhook":
            body = {"title": message["title"], "message": message["body"], "alert_group_id": message["group_id"],
                    "link": message["link"], "user": user.username, "actions": message["links"],
                    "attempt_id": str(attempt.id)}  # fmt: skip
            return address["shown"], send_webhook(address["url"], body, policy=self.settings.outgoing_policy)
        return address["shown"], send_apprise(address["url"], message["title"], message["body"] + message["links_text"],
                                              body_format=message["format"], policy=self.settings.outgoing_policy)

    def _send_webhook(self, attempt: DeliveryAttempt) -> tuple[str | None, SendResult]:
        """Render the webhook for its event, send it, and keep the response for its API."""
        webhook_id = attempt.webhook["id"]
        try:
            webhook = self.config.webhook_settings(webhook_id)
        except AggregateNotFoundError:
            return None, SendResult(PERMANENT, "the webhook was deleted")
        group: AlertGroup = self.alerting.repository.get(attempt.group_id)
        integration = self.config.get_integration(group.integration_id)
        group_id = public_id(PREFIX_ALERT_GROUP, group.id)
        row = alert_group(self.db, group_id) or {}
        shown_group = {
            "id": group_id, "integration_id": public_id(PREFIX_INTEGRATION, group.integration_id),
            "route_id": public_id(PREFIX_ROUTE, group.route_id), "alerts_count": group.alerts_count,
            "state": group.state.value, "title": group.title, "created_at": iso(group.started_at),
            **{name: row.get(name) for name in ("acknowledged_at", "resolved_at", "silenced_at", "silenced_until")},
            "permalinks": {"web": f"{self.settings.base_url}/alert-groups/{group_id}"},
        }  # fmt: skip
        # OnCall's alert_payload is the group's first alert's (the last one's while the read
        # models have not shown the first yet, as for a group just created).
        first = first_alert_payload(self.db, group_id)
        payload = ""
        if first is not None:
            payload = json.loads(first)
        elif group.last_alert_id is not None:
            payload = json.loads(self.alerting.repository.get(group.last_alert_id).payload_json)
        trigger = attempt.webhook["trigger"]
        person = None
        if attempt.webhook.get("user"):  # a personal notification's: whom it is about
            notified = attempt.webhook["user"]
            person = event_user(public_id(PREFIX_USER, notified["id"]), notified["username"], None)
        context = webhook_context(
            trigger, alert_group=shown_group, alert_payload=payload, at=attempt.webhook["event_at"],
            integration={"id": shown_group["integration_id"], "type": integration.type, "name": integration.name,
                         "team": None},
            webhook={"id": webhook.public_id, "name": webhook.name},
            responses=latest_responses(self.db, group_id, webhook.public_id),
            user=person, personal_context=person, notified_users=[person] if person else (),
        )  # fmt: skip
        result = attempt_webhook(
            webhook, context, trigger_type=trigger, policy=self.settings.outgoing_policy,
            render=bounded_renderer(self._render_pool()), self_url=self.settings.base_url, at=self.clock(),
            attempt_id=str(attempt.id),
        )  # fmt: skip
        if result.record is None:  # its trigger template said no: nothing sent, nothing to show
            return None, SendResult(SKIPPED, NOT_TRIGGERED)
        self.config.record_webhook_response(webhook_id, attempt.id, result.record)
        if result.outcome is None:  # a template or the URL failed: trying again would fail again
            return result.rendered.url, SendResult(PERMANENT, result.rendered.error)
        return result.rendered.url, SendResult(result.outcome.outcome, result.outcome.reason)

    def _message(self, attempt: DeliveryAttempt, channel: str) -> dict:
        group: AlertGroup = self.alerting.repository.get(attempt.group_id)
        integration = self.config.get_integration(group.integration_id)
        group_id = public_id(PREFIX_ALERT_GROUP, group.id)
        link = f"{self.settings.base_url}/alert-groups/{group_id}"
        payload = None
        if group.last_alert_id is not None:
            payload = json.loads(self.alerting.repository.get(group.last_alert_id).payload_json)
        message = render_message(
            self._render_pool(), type_slug=integration.type, templates=integration.templates, payload=payload,
            channel=channel, integration_name=integration.name, link=link, fallback_title=group.title,
        )  # fmt: skip
        # Signed links that act as this person (a GET asks, a POST acts): one per action.
        links = action_links(self.settings, attempt.user_id, attempt.username, group_id, self.clock())
        links_text = "\n\n" + "\n".join(f"{ACTION_TITLES[action]}: {url}" for action, url in links.items())
        return {**message, "group_id": group_id, "link": link, "links": links, "links_text": links_text}


# --- the production worker ------------------------------------------------------------------------

_worker_deliverer: Deliverer | None = None


def deliver_job(attempt_id: str) -> str | None:
    """An RQ job: runs in ``tocsin worker``, whose runtime ``set_worker_deliverer`` gave."""
    if _worker_deliverer is None:
        raise RuntimeError("no deliverer: run deliveries with `tocsin worker`")
    return _worker_deliverer.deliver(UUID(attempt_id))


def set_worker_deliverer(deliverer: Deliverer) -> None:
    global _worker_deliverer
    _worker_deliverer = deliverer
