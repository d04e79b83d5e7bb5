"""Wake-ups for followers of an event log (ingest, projections)."""

from __future__ import annotations

import threading
import time


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
