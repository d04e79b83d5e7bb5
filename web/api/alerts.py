"""``/api/v1/alerts/``: received alerts with their raw payloads."""

from __future__ import annotations

from flask import jsonify, request

from projections.queries import alerts_page
from web import runtime
from web.api import api, page_params, paginated
from web.api.schemas import AlertSchema

alert_schema = AlertSchema()


@api.get("/alerts/", strict_slashes=False)
def list_alerts():
    number, size = page_params()
    filters = {name: request.args.get(name) for name in ("id", "alert_group_id", "search")}
    page = alerts_page(runtime().db, filters, number, size)
    return jsonify(paginated(page, alert_schema.dump(page.rows, many=True)))
