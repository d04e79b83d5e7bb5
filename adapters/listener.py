"""Cross-process wake-ups on PostgreSQL: LISTEN to the event tables' NOTIFY channels.

The event store sends ``NOTIFY <table>`` on every insert; followers in other processes (ingest,
projections) wake at once instead of polling. Polling stays as the fallback (a missed
notification costs at most the idle timeout).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PostgresListener:
    def __init__(self, conninfo: str, channels: dict[str, list[Callable[[], None]]]):
        self.conninfo = conninfo
        self.channels = channels

    def run_forever(self, stop: threading.Event) -> None:
        import psycopg
        from psycopg import sql

        while not stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    for channel in self.channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    while not stop.is_set():
                        for notify in conn.notifies(timeout=0.5):
                            for wake in self.channels.get(notify.channel, ()):
                                wake()
            except psycopg.Error as exc:  # an outage: polling carries on meanwhile
                log.warning("LISTEN connection lost (%s); reconnecting", str(exc).strip())
                stop.wait(1.0)
            except Exception:
                log.exception("LISTEN connection lost; reconnecting")
                stop.wait(1.0)
