"""Whether this process can reach PostgreSQL, known without making a request wait to find out.

A thread keeps one connection and runs an empty statement every ``interval`` seconds. During an
outage the inbound paths and the API answer 503 at once from this flag instead of waiting for a
pool that has no connection to give. When the database answers again, the recovery callbacks
(each pool's check, which replaces the connections the server dropped) run before the flag turns
back, so no request is handed a stale connection.
"""

from __future__ import annotations

import logging
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
        stale_after: float = 5.0,
    ):
        self.conninfo = conninfo
        self.on_recovery = list(on_recovery)
        self.interval = interval
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
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True, **CONNECT_OPTIONS)
                conn.execute("")
            except psycopg.Error as exc:
                if self._reachable:
                    log.warning("the database is unreachable: %s", str(exc).strip())
                self._reachable = False
                if conn is not None:
                    conn.close()
                    conn = None
            else:
                if not self._reachable:
                    self._recover()
                self._last_answer = time.monotonic()
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def _recover(self) -> None:
        for callback in self.on_recovery:
            try:
                callback()
            except Exception:  # the database may have gone again; the next probe will tell
                log.warning("checking connections after the database came back failed", exc_info=True)
        self._last_answer = time.monotonic()
        self._reachable = True
        log.warning("the database is reachable again")
