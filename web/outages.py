"""Database outages answer a JSON 503 with ``Retry-After``; any other failure a JSON 500.

No HTML error page under ``/api/`` or ``/integrations/``: senders (Alertmanager retries 5xx) and
API clients get ``{"detail": ...}``. While this process's probe finds PostgreSQL unreachable,
those paths answer 503 at once instead of waiting for a connection that cannot come.
"""

from __future__ import annotations

import sqlite3

import psycopg
from eventsourcing import persistence
from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from web import RETRY_AFTER_SECONDS, runtime

GUARDED_PREFIXES = ("/api/", "/integrations/")
# Where failures answer JSON: the guarded paths, and what monitoring reads.
JSON_PREFIXES = (*GUARDED_PREFIXES, "/health", "/metrics")
UNAVAILABLE_DETAIL = "The database is unavailable right now; retry later."


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached or used in time (not a bug)."""
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):  # PoolTimeout too
        return True
    if isinstance(exc, (persistence.OperationalError, persistence.InterfaceError)):
        return True
    if type(exc) is persistence.PersistenceError:  # the event store's "some other psycopg error"
        return isinstance(exc.__cause__, (psycopg.OperationalError, psycopg.InterfaceError))
    if isinstance(exc, sqlite3.OperationalError):  # busy beyond the lock timeout
        return "locked" in str(exc) or "busy" in str(exc)
    return False


def unavailable_response():
    response = jsonify({"detail": UNAVAILABLE_DETAIL})
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _refuse_while_unreachable():
    if request.path.startswith(GUARDED_PREFIXES) and not runtime().database_reachable():
        return unavailable_response()
    return None


def _unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return exc  # answered by the HTTP error handlers
    if not request.path.startswith(JSON_PREFIXES):
        raise exc  # pages for people (the dashboard) keep Flask's own error page
    if database_unavailable(exc):
        current_app.logger.warning("database unavailable: %s", str(exc).strip() or type(exc).__name__)
        return unavailable_response()
    current_app.logger.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    response = jsonify({"detail": "Internal server error."})
    response.status_code = 500
    return response


def install(app: Flask) -> None:
    app.before_request(_refuse_while_unreachable)
    app.register_error_handler(Exception, _unexpected)
