"""The Flask application: inbound integration URLs, the public API, health."""

from __future__ import annotations

from flask import Flask, current_app, jsonify

from adapters.group_commit import InboxUnavailable

RETRY_AFTER_SECONDS = 5


def create_app(runtime) -> Flask:
    """The app over ``runtime`` (``tocsin.runtime.Runtime``: the stores, views and committer)."""
    app = Flask(__name__)
    app.extensions["tocsin"] = runtime
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.json.sort_keys = False

    from web import errors

    errors.install(app)  # strict JSON bodies; 4xx under /api/ and /integrations/ as JSON

    from web import outages

    outages.install(app)  # database outages: JSON 503 + Retry-After at once; other failures JSON 500

    from web.api import api
    from web.inbound import inbound
    from web.inbound_email import inbound_email
    from web.metrics import metrics
    from web.ratelimit import EXTENSION, RateLimiter

    app.extensions[EXTENSION] = RateLimiter(runtime.settings)  # invalid limits fail here, at startup
    app.register_blueprint(inbound)
    app.register_blueprint(inbound_email)
    app.register_blueprint(api)
    app.register_blueprint(metrics)
    from web.dashboard import dashboard

    app.register_blueprint(dashboard)  # the pages at /, for people in a browser
    from web.action_links import action_links

    app.register_blueprint(action_links)  # /a/<token>: acting on an alert group from a notification

    from web.health import health

    app.add_url_rule("/health", "health", health)  # 503 while the database or a follower is stuck

    @app.errorhandler(InboxUnavailable)
    def store_unavailable(exc):
        current_app.logger.warning("event store unavailable: %s", exc)
        response = jsonify({"detail": "The alert could not be stored right now; retry later."})
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(413)
    def too_large(exc):
        limit = runtime.settings.max_body_bytes
        response = jsonify({"detail": f"Request body too large: the limit is {limit} bytes."})
        response.status_code = 413
        return response

    @app.errorhandler(405)
    def method_not_allowed(exc):
        from flask import request

        response = jsonify({"detail": f'Method "{request.method}" not allowed.'})
        response.status_code = 405
        response.headers["Allow"] = ", ".join(exc.valid_methods or [])
        return response

    @app.errorhandler(404)
    def not_found(exc):
        response = jsonify({"detail": "Not found."})
        response.status_code = 404
        return response

    return app


def runtime():
    return current_app.extensions["tocsin"]
