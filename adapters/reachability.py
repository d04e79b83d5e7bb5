"""Whether this process can reach PostgreSQL, known without making a request wait to find out.

A thread keeps one connection and runs an empty statement every ``interval`` seconds, or at once
when the server closes that connection. During an outage the inbound paths and the API answer
503 at once from this flag instead of waiting for a pool that has no connection to give. When
the database answers again, the recovery callbacks (each pool's check, which replaces the
connections the server dropped) run before the flag turns back, so no request is handed a stale
connection.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

# libpq: give up connecting after 2 s (its minimum), and on a connection whose sent data goes
# unacknowledged for 2 s (a server or network that vanished without closing it).
CONNECT_OPTIONS = {"connect_timeout": 2, "tcp_user_timeout": 2000}


class DatabaseReachability:
    def __init__(
        self,
        conninfo: str,
        on_recovery: Sequence[Callable[[], None]] = (),
        interval: float = 0.25,
        retry_interval: float = 0.1,
        stale_after: float = 5.0,
    ):
        self.conninfo = conninfo
        self.on_recovery = list(on_recovery)
        self.interval = interval
        self.retry_interval = retry_interval  # while unreachable
        self.stale_after = stale_after  # a probe stuck this long counts as unreachable
        self._reachable = True  # until a probe says otherwise: startup must not refuse requests
        self._last_answer = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is not None:  # asked on every request: no lock once started
            return
        with self._lock:
            if self._thread is None:
                # The staleness clock starts with the probe: a process may serve its first
                # request long after it was built (gunicorn workers, a quiet embedded server).
                self._last_answer = time.monotonic()
                self._thread = threading.Thread(target=self._run, name="tocsin-db-probe", daemon=True)
                self._thread.start()

    @property
    def reachable(self) -> bool:
        return self._reachable and time.monotonic() - self._last_answer < self.stale_after

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        conn = None
        while not self._stop.is_set():
            try:
                conn = self._answered(conn)
            except psycopg.Error:
                # Dropped, perhaps by a restart that is already over: a new connection tells.
                if conn is not None:
                    conn.close()
                    conn = None
                try:
                    conn = self._answered(None)
                except psycopg.Error as exc:
                    if self._reachable:
                        log.warning("the database is unreachable: %s", str(exc).strip())
                    self._reachable = False
                else:
                    # Back at once, but every pooled connection may have been dropped too.
                    self._reachable = False
                    self._recover()
            else:
                if not self._reachable:
                    self._recover()
                self._last_answer = time.monotonic()
            self._pause(conn)
        if conn is not None:
            conn.close()

    def _pause(self, conn) -> None:
        """Wait for the next probe; wake at once if the server closes the connection (a restart
        or a terminated session sends a notice or an end of file), so that requests are held
        back within moments instead of taking pooled connections that were dropped too."""
        if conn is None:
            self._stop.wait(self.retry_interval)
            return
        try:
            select.select([conn.fileno()], [], [], self.interval)
        except (OSError, ValueError):  # the connection is gone already
            self._stop.wait(self.retry_interval)

    def _answered(self, conn):
        """``conn`` (or a new connection if None) once it has answered an empty statement."""
        import psycopg

        fresh = conn is None
        if fresh:
            conn = psycopg.connect(self.conninfo, autocommit=True, **CONNECT_OPTIONS)
        try:
            conn.execute("")
        except psycopg.Error:
            if fresh:
                conn.close()
            raise
        return conn

    def _recover(self) -> None:
        for callback in self.on_recovery:
            try:
                callback()
            except Exception:  # the database may have gone again; the next probe will tell
                log.warning("checking connections after the database came back failed", exc_info=True)
        self._last_answer = time.monotonic()
        self._reachable = True
        log.warning("the database is reachable again")
