"""What the template preview shows for one template field: pure, so it can run in a render worker."""

from __future__ import annotations

import json
from typing import Any

from domain.integrations import (
    effective_templates,
    evaluate,
    get_type,
    render_appearance,
)
from domain.templating import (
    TemplateError,
    TemplateWarning,
    apply_template,
    fallback_text,
)

BEHAVIOUR_FIELDS = ("grouping_key", "resolve_signal", "acknowledge_signal")


def _is_json_object(value: str | None) -> bool:
    try:
        return isinstance(json.loads(value), dict) if value is not None else False
    except ValueError:
        return False


def preview_field(
    type_slug: str, templates: dict, field: str, payload: Any, meta: dict, not_rendered: str | None = None
) -> dict:
    """Render ``field`` of ``templates`` (custom sources; the rest are the type's defaults).

    ``not_rendered`` (a "Template Error: ..." text) renders nothing and answers that error, with
    the decisions ingest takes for an alert it does not render.
    """
    kind = get_type(type_slug)
    source = effective_templates(kind, templates)[field]
    result: dict[str, Any] = {"preview": None, "is_valid_json_object": False}
    if not_rendered is not None:
        if source:
            result["error"] = not_rendered
        return {**result, **_decision(field, None, False, False)}
    if source and (field in BEHAVIOUR_FIELDS or field == "source_link"):
        try:  # rendered as ingest renders it, to report the error ingest would swallow
            rendered: str | None = apply_template(source, payload=payload, labels=None)
        except (TemplateError, TemplateWarning) as exc:
            result["error"] = fallback_text(exc)
        else:
            if field == "source_link":
                rendered = evaluate(kind, templates, payload).source_link
            result.update(preview=rendered, is_valid_json_object=_is_json_object(rendered))
    elif source:
        channel, attr = field.split(".")
        errors: dict[str, str] = {}
        rendered = render_appearance(kind, templates, payload, channel, errors=errors, **meta)[attr]
        if attr in errors:
            result["error"] = errors[attr]
        else:
            result.update(preview=rendered, is_valid_json_object=_is_json_object(rendered))
    if field in BEHAVIOUR_FIELDS:
        decided = evaluate(kind, templates, payload)  # exactly what ingest would decide
        result.update(
            _decision(field, decided.distinction, decided.is_resolve_signal, decided.is_acknowledge_signal)
        )
        if field == "resolve_signal":
            result["is_resolve_signal"] = result["is_resolve_signal"] and kind.is_able_to_autoresolve
    return result


def _decision(field: str, distinction: str | None, resolves: bool, acknowledges: bool) -> dict:
    if field == "grouping_key":
        return {"grouping_distinction": distinction}
    if field == "resolve_signal":
        return {"is_resolve_signal": resolves}
    if field == "acknowledge_signal":
        return {"is_acknowledge_signal": acknowledges}
    return {}


def web_message(type_slug: str, templates: dict, payload: Any, integration_name: str, link: str) -> str | None:
    """A group's web message as OnCall shows it (from its first alert): run in a render worker."""
    return render_appearance(
        get_type(type_slug), templates, payload, "web", integration_name=integration_name, link=link
    )["message"]
