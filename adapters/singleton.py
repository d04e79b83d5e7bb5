"""At most one running copy of a worker (ingest, projections, ticker) on PostgreSQL.

A second copy waits as a hot standby and takes over when the first one's connection ends.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def hold_singleton(conninfo: str, name: str, poll_seconds: float = 2.0):
    """Block until this process holds the named advisory lock; returns the connection holding it."""
    import psycopg

    conn = psycopg.connect(conninfo, autocommit=True)
    announced = False
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"tocsin-{name}",)).fetchone()
        if row[0]:
            return conn
        if not announced:
            log.warning("another %s is running; waiting as a standby", name)
            announced = True
        time.sleep(poll_seconds)
