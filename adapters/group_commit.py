"""Group commit for the inbox: many concurrent requests, one transaction.

Each request hands its entry to a writer thread and waits for the commit. The writer takes
everything queued (up to ``max_batch``) and saves it in one transaction, so under load the
per-transaction cost (the event table's lock, the round trips, the fsync) is shared. Nothing is
acknowledged before its commit; a failed commit fails every request in it.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from eventsourcing.domain import Aggregate

from domain.applications import Inbox


class InboxUnavailable(Exception):
    """The event store could not take the write (the caller answers 503)."""


class GroupCommitter:
    def __init__(self, inbox: Inbox, max_batch: int = 256, timeout: float = 10.0):
        self.inbox = inbox
        self.max_batch = max_batch
        self.timeout = timeout
        self._queue: queue.SimpleQueue[tuple[Aggregate, Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, entry: Aggregate) -> int:
        """Commit one entry; returns its inbox position once it is durable."""
        future: Future = Future()
        self._queue.put((entry, future))
        try:
            return future.result(timeout=self.timeout)
        except InboxUnavailable:
            raise
        except Exception as exc:  # timeout or database error: the caller must not answer 2xx
            raise InboxUnavailable(str(exc)) from exc

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
        try:
            recordings = self.inbox.save(*(entry for entry, _ in batch))
        except Exception as exc:
            for _, future in batch:
                future.set_exception(InboxUnavailable(str(exc)))
            return
        positions = {r.domain_event.originator_id: r.notification.id for r in recordings}
        for entry, future in batch:
            future.set_result(positions[entry.id])
