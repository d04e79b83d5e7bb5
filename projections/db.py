"""The read-model database: plain SQL tables on SQLite (embedded) or PostgreSQL (production).

SQL is written once with ``%s`` placeholders; SQLite gets them rewritten to ``?``. Times are
stored as ISO-8601 UTC text with a fixed width, which sorts and compares the same on both.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)


def iso(value: datetime | None) -> str | None:
    """Fixed-width UTC ISO text, e.g. ``2026-11-30T20:32:46.008000Z`` (OnCall's API shape)."""
    if value is None:
        return None
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"  # much faster than strftime


NUL = "\x00"
REPLACEMENT_CHARACTER = "\ufffd"


def storable(params: Sequence[Any]) -> tuple[Any, ...]:
    """``params`` with NUL characters in text replaced by U+FFFD.

    PostgreSQL text cannot hold NUL, and a sender or a template can put one anywhere (a label, a
    rendered title, an integration's name). The events keep exactly what was received; what a
    read model shows is the same text with U+FFFD in place of each NUL, on both backends.
    """
    if not any(isinstance(value, str) and NUL in value for value in params):
        return tuple(params)
    return tuple(
        value.replace(NUL, REPLACEMENT_CHARACTER) if isinstance(value, str) else value for value in params
    )


class Cursor:
    """A thin cursor that speaks ``%s`` placeholders on both backends and returns dicts.

    Every value written passes through ``storable``.
    """

    def __init__(self, raw, dialect: str):
        self._raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Cursor":
        if self.dialect == "sqlite":
            sql = sql.replace("%s", "?")
        self._raw.execute(sql, storable(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            sql = sql.replace("%s", "?")
        self._raw.executemany(sql, [storable(r) for r in rows])

    @property
    def rowcount(self) -> int:
        return self._raw.rowcount

    def fetchall(self) -> list[dict]:
        rows = self._raw.fetchall()
        if self.dialect == "sqlite":
            return [dict(r) for r in rows]
        return rows

    def fetchone(self) -> dict | None:
        row = self._raw.fetchone()
        if row is None:
            return None
        return dict(row) if self.dialect == "sqlite" else row


class Database:
    dialect: str

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        with self.transaction() as cur:
            return cur.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        pass


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        conn = self._connection()
        raw = conn.cursor()
        # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield Cursor(raw, self.dialect)
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        else:
            raw.execute("COMMIT")
        finally:
            raw.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        # Reads need no write lock: WAL readers see the last committed state.
        raw = self._connection().cursor()
        try:
            return Cursor(raw, self.dialect).execute(sql, params).fetchall()
        finally:
            raw.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()


class PostgresDatabase(Database):
    """Read models on PostgreSQL through a small pool.

    Outages: a connection is handed out within ``timeout`` seconds or the caller gets
    ``PoolTimeout`` (an ``OperationalError``: the web answers 503), and a pool whose reconnection
    attempts fail gives them up after ``reconnect_timeout`` so that the next request tries at once
    instead of waiting out a growing backoff. A pooled connection the server has dropped (a
    restart) fails on its first statement; that statement is retried on another connection, so
    stale connections never reach a caller.
    """

    dialect = "postgres"

    def __init__(
        self,
        conninfo: str,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 1.0,
        reconnect_timeout: float = 2.0,
    ):
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.conninfo = conninfo
        self.pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            # Autocommit, so that a read is one round trip; writes open a transaction explicitly.
            kwargs={"row_factory": dict_row, "autocommit": True},
            open=True,
            timeout=timeout,
            reconnect_timeout=reconnect_timeout,
            reconnect_failed=_log_reconnect_failed,
        )

    def _attempts(self) -> range:
        # Every idle connection may be stale after a restart; one more gets a fresh one.
        return range(self.pool.max_size + 1)

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        import psycopg

        for attempt in self._attempts():
            with self.pool.connection() as conn, ExitStack() as stack:
                try:
                    # BEGIN is the first statement: a connection dropped while idle fails here,
                    # before anything was done, and another one is tried.
                    stack.enter_context(conn.transaction())  # commits on a clean exit
                except psycopg.OperationalError:
                    if conn.broken and attempt < self.pool.max_size:
                        continue
                    raise
                with conn.cursor() as raw:
                    yield Cursor(raw, self.dialect)
                return

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        import psycopg

        # One statement needs no transaction: in autocommit it is one round trip instead of
        # three (BEGIN, the statement, COMMIT). A read can be retried on another connection.
        for attempt in self._attempts():
            with self.pool.connection() as conn:
                try:
                    return conn.execute(sql, storable(params)).fetchall()
                except psycopg.OperationalError:
                    if conn.broken and attempt < self.pool.max_size:
                        continue
                    raise
        raise AssertionError("not reached")

    def check_connections(self) -> None:
        """Replace idle connections the server dropped (called when the database is back)."""
        self.pool.check()

    def close(self) -> None:
        self.pool.close()


def _log_reconnect_failed(pool) -> None:
    log.warning("read-model pool: the database is still unreachable; reconnecting on demand")
