"""Followers of an event log (ingest, reactions, projections): their wake-ups and their loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Waker:
    """Wakes a follower when its upstream has news (in-process save or PostgreSQL NOTIFY).

    A follower woken from idle lingers ``gather`` seconds so that news arriving together is
    handled in one batch (each batch costs a few queries and a transaction whatever its size).
    News that came while it was busy is handled at once: under load the time spent on a batch
    already gathers the next one, and lingering then would only let the backlog grow.
    """

    def __init__(self, gather: float = 0.02) -> None:
        self._event = threading.Event()
        self.gather = gather

    def notify(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        if self._event.is_set():
            self._event.clear()
            return
        if self._event.wait(timeout) and self.gather:
            time.sleep(self.gather)
        self._event.clear()


def follow(
    run_batch: Callable[[], int],
    stop: threading.Event,
    waker: Waker,
    *,
    name: str,
    batch_size: int,
    status=None,
    idle_timeout: float = 1.0,
    batch_interval: float = 0.0,
) -> None:
    """Run ``run_batch`` (how many it read; 0: caught up) until ``stop`` is set.

    Errors are logged, told to ``status`` (a ``projections.follower_status.FollowerStatus``, read
    by /health and /metrics) and retried with backoff: a database outage must not end a follower.
    After a partial batch the follower waits for news; with a ``batch_interval`` it instead
    starts batches at most that often: under load, entries keep arriving while a batch runs, so
    the next batch would be as small, and a batch costs a few queries and a transaction whatever
    its size (a full batch goes on at once).
    """
    backoff = 0.1
    while not stop.is_set():
        began = time.monotonic()
        try:
            count = run_batch()
            backoff = 0.1
        except Exception as exc:
            log.exception("%s failed; retrying in %.1fs", name, backoff)
            if status is not None:
                status.failed(exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        if status is not None:
            status.succeeded()
        if count == 0 or (count < batch_size and not batch_interval):
            waker.wait(idle_timeout)
        elif count < batch_size:
            stop.wait(batch_interval - (time.monotonic() - began))
