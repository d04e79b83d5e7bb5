"""At most one active copy of a worker (ingest, projections, ticker) on PostgreSQL.

The active copy holds a session advisory lock; a second copy waits as a hot standby and takes
over when the first one's session ends. The holder checks its lock every ``check_seconds``
(one cheap query on the lock's connection): if the session was terminated or the server
restarted, the lock is gone, so it stops its work at once and waits as a standby again. A copy
that takes the lock waits ``2 * check_seconds`` before starting, so a previous holder that lost
it has noticed and stepped down by then: never two active copies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

Work = TypeVar("Work")

# As for the reachability probe: a server that vanished without closing the connection fails the
# next check after 2 s of unacknowledged data instead of hanging it.
CONNECT_OPTIONS = {"connect_timeout": 5, "tcp_user_timeout": 2000}
HOLDS_LOCK = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
    " AND pid = pg_backend_pid() AND granted) AS held"
)


class SingletonLock:
    def __init__(self, conninfo: str, name: str, poll_seconds: float = 2.0, check_seconds: float = 1.0):
        self.conninfo = conninfo
        self.name = name
        self.poll_seconds = poll_seconds
        self.check_seconds = check_seconds
        self._conn = None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's session (while held)."""
        return None if self._conn is None else self._conn.info.backend_pid

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process holds the lock (True), or ``stop`` is set (False)."""
        import psycopg

        announced = False
        while not stop.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.conninfo, autocommit=True, **CONNECT_OPTIONS)
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(hashtext(%s))", (f"tocsin-{self.name}",)
                ).fetchone()
            except psycopg.Error as exc:
                log.warning("cannot reach the database for the %s lock: %s", self.name, str(exc).strip())
                self.release()
                stop.wait(self.poll_seconds)
                continue
            if row[0]:
                # A holder that lost the lock notices within a check; let it step down first.
                if stop.wait(2 * self.check_seconds):
                    self.release()
                    return False
                if self.held():
                    return True
                continue  # lost it again meanwhile
            if not announced:
                log.warning("another %s is running; waiting as a standby", self.name)
                announced = True
            stop.wait(self.poll_seconds)
        return False

    def held(self) -> bool:
        """Whether the lock's session is alive and still holds it (one round trip)."""
        import psycopg

        if self._conn is None or self._conn.closed:
            return False
        try:
            return bool(self._conn.execute(HOLDS_LOCK).fetchone()[0])
        except psycopg.Error:
            return False

    def wait_until_lost(self, stop: threading.Event) -> bool:
        """Check the lock every ``check_seconds``: True once it is lost, False when ``stop`` is set."""
        while not stop.wait(self.check_seconds):
            if not self.held():
                return True
        return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # ends the session, and with it the lock
            except Exception:  # already broken
                pass
            self._conn = None


def run_as_singleton(
    lock: SingletonLock, start: Callable[[], Work], stop_work: Callable[[Work], None], stop: threading.Event
) -> None:
    """Run ``start()``'s work while holding ``lock``, until ``stop`` is set.

    When the lock is lost, ``stop_work`` runs at once and the process waits as a standby again
    (it does not exit: under a process manager such as honcho one exit would stop every process).
    """
    while lock.acquire(stop):
        work = start()
        lost = False
        try:
            lost = lock.wait_until_lost(stop)
        finally:
            if lost:
                log.error("lost the %s lock (session ended or server restarted): stopping", lock.name)
            stop_work(work)
            lock.release()
        if lost:
            log.warning("%s stopped; waiting as a standby", lock.name)
