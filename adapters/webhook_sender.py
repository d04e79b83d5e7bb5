"""Sending outgoing webhooks: one rendered request (``domain.webhooks.render_request``), tried once.

The request goes through the outgoing-address guard (``adapters.http_guard``): private, loopback,
link-local and other internal addresses are refused unless ``TOCSIN_OUTGOING_ALLOW`` lists them,
checked on the address each connection really goes to, so a name that resolves to one and a
redirect to one are refused too (redirects are followed, at most 5, each connection guarded;
``requests`` drops the credentials when a redirect leaves the host). Each request has OnCall's
4 s timeout, and reading the answer stops at that deadline too.

What came back is recorded as OnCall records it: the status code and the content (JSON written
again, or text; above 50,000 bytes a message saying so). Whether to try again is the outcome:
``transient`` for the network, a timeout, a 5xx, 408 or 429; ``permanent`` for a refused address,
TLS, too many redirects or another answer; ``sent`` for a 2xx. Retrying, recording and the
timeline are the delivery side's.

Templates render where the caller says: ``bounded_renderer`` renders each one in render workers
under the hard limits ingest renders under.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import requests

from adapters.http_guard import OutgoingPolicy, guarded
from adapters.notify_channels import (
    _STOP_CAUSES,
    ATTEMPT_HEADER,
    MAX_REDIRECTS,
    SEND_TIMEOUT,
    STRICT,
    InvalidAddress,
    _first_line,
    _network_failure,
    _status_outcome,
    check_webhook_url,
)
from adapters.render_pool import Done, Failed, RenderPool, Stopped
from domain.templating import TemplateError, TemplateWarning
from domain.webhooks import (
    PERMANENT,
    RESPONSE_LIMIT,
    TRANSIENT,
    NotTriggered,
    Render,
    RequestFailed,
    ResponseRecord,
    WebhookOutcome,
    WebhookRequest,
    WebhookSettings,
    render_in_process,
    render_outcome,
    render_request,
)

MAX_READ = 1024 * 1024  # bytes of an answer read at most: enough to say how far past the limit it is
READ_CHUNK = 64 * 1024


def send_webhook_request(
    request: WebhookRequest, policy: OutgoingPolicy = STRICT, *, timeout: float = SEND_TIMEOUT
) -> WebhookOutcome:
    """Send ``request`` once and say what happened (never raises for the network's sake)."""
    try:
        check_webhook_url(request.url, policy)  # a plainly internal literal: refused before any connection
    except InvalidAddress as invalid:
        return WebhookOutcome(PERMANENT, error=f"URL - {invalid}")
    deadline = time.monotonic() + timeout
    with guarded(policy) as record, requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the guard checks the real peer
        session.max_redirects = MAX_REDIRECTS
        try:
            response = session.request(
                request.method, request.url, headers=request.headers, data=request.body,
                auth=request.basic_auth, timeout=timeout, stream=True,
            )  # fmt: skip
            try:
                body, complete = _read(response, deadline)
            finally:
                response.close()
        except requests.exceptions.SSLError as exc:
            return WebhookOutcome(PERMANENT, error=f"TLS: {_first_line(exc)}")
        except requests.exceptions.TooManyRedirects:
            return WebhookOutcome(PERMANENT, error=f"more than {MAX_REDIRECTS} redirects")
        except requests.exceptions.RequestException as exc:
            failure = _network_failure(record, exc)
            return WebhookOutcome(failure.outcome, error=failure.reason)
    status = response.status_code
    return WebhookOutcome(_status_outcome(status), status_code=status, content=_content(response, body, complete))


def _read(response: requests.Response, deadline: float) -> tuple[bytes, bool]:
    """The answer's body, up to ``MAX_READ`` bytes and the deadline; and whether it is all."""
    chunks, size = [], 0
    for chunk in response.iter_content(READ_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_READ or time.monotonic() > deadline:
            return b"".join(chunks), False
    return b"".join(chunks), True


def _content(response: requests.Response, body: bytes, complete: bool) -> str:
    """OnCall's ``content``: the JSON answer written again, or the text; a message above the limit."""
    if len(body) > RESPONSE_LIMIT:
        size = len(body)
        if not complete:
            declared = response.headers.get("Content-Length", "")
            size = int(declared) if declared.isdigit() and int(declared) > size else size
        return f"Response content {size} exceeds {RESPONSE_LIMIT} character limit"
    try:
        return json.dumps(json.loads(body))
    except (ValueError, RecursionError):
        return body.decode("utf-8", "replace")


# --- rendering under hard limits ------------------------------------------------------------------


def bounded_renderer(pool: RenderPool) -> Render:
    """A ``render`` for ``render_request`` that renders each template in ``pool``'s workers: a
    render over the pool's hard limits is stopped and becomes a template error."""

    def render(source: str, context: dict) -> str:
        outcome = pool.run_one(render_outcome, source, context)
        if isinstance(outcome, Done):
            kind, text = outcome.value
            if kind == "ok":
                return text
            raise (TemplateWarning if kind == "warning" else TemplateError)(text)
        if isinstance(outcome, Stopped):
            memory = (pool.memory_limit or 0) // (1024 * 1024)
            cause = _STOP_CAUSES.get(outcome.reason, "crashed its render process")
            raise TemplateError(f"Template rendering was stopped: it {cause.format(limit=pool.hard_limit, memory=memory)}")
        raise TemplateError(outcome.error if isinstance(outcome, Failed) else str(outcome))

    return render


# --- one attempt, from settings to what to record -------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one attempt did: ``record`` is None when the trigger template said no (nothing was
    sent, nothing is recorded); ``outcome`` is None when nothing was sent (not triggered, or a
    template or the URL failed: ``record`` says why, and trying again would fail again)."""

    rendered: WebhookRequest | RequestFailed | NotTriggered
    outcome: WebhookOutcome | None
    record: ResponseRecord | None

    @property
    def retry(self) -> bool:
        return self.outcome is not None and self.outcome.outcome == TRANSIENT


def attempt_webhook(
    webhook: WebhookSettings,
    context: Mapping[str, Any],
    *,
    trigger_type: str,
    policy: OutgoingPolicy = STRICT,
    render: Render = render_in_process,
    self_url: str | None = None,
    at: datetime | None = None,
    timeout: float = SEND_TIMEOUT,
    attempt_id: str | None = None,
) -> Attempt:
    """Render ``webhook`` for ``context`` (``domain.webhooks.webhook_context``), send it, and say
    what to record (``Configuration.record_webhook_response``) under ``trigger_type``."""
    rendered = render_request(webhook, dict(context), render, self_url=self_url)
    if isinstance(rendered, NotTriggered):
        return Attempt(rendered, None, None)
    outcome = None
    if isinstance(rendered, WebhookRequest):
        # The attempt's id goes with the request (not into what is recorded): the receiver's
        # idempotency key, as for people's notifications.
        sent = replace(rendered, headers={**rendered.headers, ATTEMPT_HEADER: attempt_id}) if attempt_id else rendered
        outcome = send_webhook_request(sent, policy, timeout=timeout)
    record = ResponseRecord.of(rendered, outcome, context=context, trigger_type=trigger_type, at=at or datetime.now(UTC))
    return Attempt(rendered, outcome, record)
