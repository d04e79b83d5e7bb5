"""``/api/v1/alerts/``: received alerts with their raw payloads."""

from __future__ import annotations

from flask import request

from projections.queries import alerts_page
from web import runtime
from web.api import api, json_text, page_params, paginated_response
from web.api.alert_groups import _payload_json


def _alert_json(row: dict) -> bytes:
    """What ``AlertSchema`` dumps for a row, with the stored payload text spliced in unparsed.

    Parsing it would cost time and could fail on a payload that nests deeper than a parser on
    this stack can follow (one accepted before the inbound depth limit).
    """
    fields = json_text({"id": row["id"], "alert_group_id": row["alert_group_id"], "created_at": row["created_at"]})
    return f'{fields[:-1]},"payload":{_payload_json(row["payload"])}}}'.encode()


@api.get("/alerts/", strict_slashes=False)
def list_alerts():
    number, size = page_params()
    filters = {name: request.args.get(name) for name in ("id", "alert_group_id", "search")}
    page = alerts_page(runtime().db, filters, number, size)
    return paginated_response(page, [_alert_json(row) for row in page.rows])
