"""The web dashboard: server-rendered pages over the read models, for people in a browser.

Sign-in takes an API token; the session cookie (signed, HttpOnly, SameSite=Lax) keeps only the
token's digest, and every request looks the token up again, so a revoked token signs out. Every
POST carries the session's CSRF token (a form field or the ``X-CSRF-Token`` header). Roles are
the API's: viewers read and preview, editors act on alert groups and send demo alerts, admins
manage integrations; the server checks the role whatever the page showed.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from functools import wraps

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from adapters.expiring_cache import ExpiringCache
from adapters.settings import secret_key
from domain.configuration import ROLES
from projections.queries import api_token_by_hash

dashboard = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard-static",
)

SESSION_LIFETIME = timedelta(hours=24)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_CACHE_SECONDS = 5.0
_signed_in = ExpiringCache(ttl=TOKEN_CACHE_SECONDS)


@dashboard.record_once
def _configure(state) -> None:
    app = state.app
    settings = app.extensions["tocsin"].settings
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="tocsin_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # A session lasts SESSION_LIFETIME from sign-in: no cookie to sign again on every poll.
        SESSION_REFRESH_EACH_REQUEST=False,
    )


# --- who is signed in -------------------------------------------------------------------------


def current_user() -> dict | None:
    """The signed-in API token's row (name, role), or None."""
    if "user" not in g:
        digest = session.get("token_hash")
        user = None
        if isinstance(digest, str):
            from web import runtime

            user = _signed_in.get_or_load(digest, lambda: api_token_by_hash(runtime().db, digest))
        g.user = user
    return g.user


def sign_in_as(digest: str) -> None:
    session.clear()  # a fresh session (and CSRF token) for each sign-in
    session.permanent = True
    session["token_hash"] = digest
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def csrf_token() -> str:
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def csrf_ok() -> bool:
    expected = session.get(CSRF_FIELD)
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), given.encode())


def wants_fragment() -> bool:
    """The page's script asked (fetch), rather than a plain form submission."""
    return request.headers.get("X-Requested-With") == "fetch"


def can(role: str) -> bool:
    user = current_user()
    return user is not None and ROLES.index(user["role"]) >= ROLES.index(role)


def requires(role: str):
    """Refuse (403) a signed-in user below ``role``, whatever the page showed them."""

    def decorate(view):
        @wraps(view)
        def checked(*args, **kwargs):
            if not can(role):
                return refuse(403, f"This needs the {role} role; you are signed in as a {current_user()['role']}.")
            return view(*args, **kwargs)

        return checked

    return decorate


def refuse(status: int, message: str) -> Response:
    if wants_fragment() or request.is_json:
        return Response(message, status=status, content_type="text/plain; charset=utf-8")
    return Response(render_template("dashboard/error.html", status=status, message=message), status=status)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.alert_groups")


@dashboard.before_request
def authenticate():
    if request.endpoint in ("dashboard.sign_in", "dashboard.static"):
        if request.method == "POST" and not csrf_ok():
            return refuse(400, "The form has expired. Reload the page and try again.")
        return None
    if current_user() is None:
        if request.method == "GET" and not wants_fragment():
            return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")))
        return refuse(401, "You are signed out. Reload the page to sign in again.")
    if request.method == "POST" and not csrf_ok():
        return refuse(400, "The form has expired. Reload the page and try again.")
    return None


@dashboard.after_request
def no_store(response: Response) -> Response:
    # Pages show live data and who is signed in: never cache them, never frame them.
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    # Scripts only from our own files: injected markup could not run even if escaping failed.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@dashboard.app_template_global()
def dashboard_csrf_token() -> str:
    return csrf_token()


@dashboard.context_processor
def page_context() -> dict:
    return {"user": current_user(), "can": can}


def not_found(what: str) -> Response:
    abort(Response(render_template("dashboard/error.html", status=404, message=f"No such {what}."), status=404))


from web.dashboard import views  # noqa: F401  (registers the pages)
