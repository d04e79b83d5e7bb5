"""The baseline for bench_ingest.py: the least a durable webhook receiver can do.

A minimal Flask app that inserts each raw request body into one PostgreSQL table (one INSERT and
one commit per request, through a psycopg_pool connection pool) and answers 200 "Ok.". It runs
under the same gunicorn settings as Tocsin's web process, so the ratio between the two is what
Tocsin's own work costs on top of "parse HTTP, commit the body, answer".

Configured by the environment (bench_ingest.py sets it):

* ``BENCH_CONNINFO``  libpq conninfo or URL of the database
* ``BENCH_TABLE``     schema-qualified table name, e.g. ``bench_base_1a2b.received``
* ``BENCH_POOL_SIZE`` connections per worker process (default 16)

Run by hand: ``gunicorn --worker-class gthread --threads 16 baseline_app:app``.
"""

from __future__ import annotations

import os
import threading

from flask import Flask, Response, request
from psycopg import sql
from psycopg_pool import ConnectionPool

app = Flask(__name__)

_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()
_insert = None


def _table() -> sql.Composed:
    schema, _, name = os.environ["BENCH_TABLE"].rpartition(".")
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def pool() -> ConnectionPool:
    # Created lazily, in the worker process (a pool's threads would not survive a fork).
    global _pool, _insert
    with _pool_lock:
        if _pool is None:
            size = int(os.environ.get("BENCH_POOL_SIZE", "16"))
            _insert = sql.SQL("INSERT INTO {} (body) VALUES (%s)").format(_table())
            _pool = ConnectionPool(os.environ["BENCH_CONNINFO"], min_size=size, max_size=size, open=True)
            _pool.wait(timeout=30)
        return _pool


@app.get("/health")
def health():
    pool()
    return {"status": "ok"}


@app.post("/receive/")
def receive():
    body = request.get_data()
    with pool().connection() as conn:  # commits on leaving the block
        conn.execute(_insert, (body,))
    return Response("Ok.", status=200, mimetype="text/plain")
