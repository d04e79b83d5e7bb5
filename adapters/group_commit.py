"""Group commit for the inbox: many concurrent requests, one transaction.

Each request hands its entry to a writer thread and waits for the commit. The writer takes
everything queued (up to ``max_batch``) and saves it in one transaction, so under load the
per-transaction cost (the event table's lock, the round trips, the fsync) is shared. Nothing is
acknowledged before its commit; a failed commit fails every request in it.

While the database is known to be unreachable (``reachable`` says so), requests fail at once
instead of waiting for the store's connection pool and its retries: the sender gets its 503 (or
451) within moments and retries later. An entry whose request gave up is not written if its
batch has not started; one already being written may still be committed, which the sender's
retry then repeats (as after any lost answer).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from eventsourcing.domain import Aggregate

from domain.applications import Inbox


class InboxUnavailable(Exception):
    """The event store could not take the write (the caller answers 503)."""


def _always() -> bool:
    return True


class GroupCommitter:
    def __init__(
        self,
        inbox: Inbox,
        max_batch: int = 256,
        timeout: float = 10.0,
        reachable: Callable[[], bool] = _always,
    ):
        self.inbox = inbox
        self.max_batch = max_batch
        self.timeout = timeout
        self.reachable = reachable
        self._queue: queue.SimpleQueue[tuple[Aggregate, Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, entry: Aggregate) -> int:
        """Commit one entry; returns its inbox position once it is durable."""
        if not self.reachable():
            raise InboxUnavailable("the database is unreachable")
        future: Future = Future()
        self._queue.put((entry, future))
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    # Wakes as soon as the commit is done; the slices only look at the probe.
                    return future.result(timeout=min(0.1, max(deadline - time.monotonic(), 0)))
                except FutureTimeout:
                    if not self.reachable():
                        future.cancel()  # not written if its batch has not started
                        raise InboxUnavailable("the database is unreachable") from None
                    if time.monotonic() >= deadline:
                        future.cancel()
                        raise
        except InboxUnavailable:
            raise
        except Exception as exc:  # timeout or database error: the caller must not answer 2xx
            raise InboxUnavailable(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Aggregate, Future]]) -> None:
        batch = [(entry, future) for entry, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        if not self.reachable():
            for _, future in batch:
                future.set_exception(InboxUnavailable("the database is unreachable"))
            return
        try:
            recordings = self.inbox.save(*(entry for entry, _ in batch))
        except Exception as exc:
            for _, future in batch:
                future.set_exception(InboxUnavailable(str(exc)))
            return
        positions = {r.domain_event.originator_id: r.notification.id for r in recordings}
        for entry, future in batch:
            future.set_result(positions[entry.id])
