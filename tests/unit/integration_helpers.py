"""What the integration type tests share: payload files, md5, and ingest/render as the workers do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from domain.integrations import Behaviour, IntegrationType, evaluate, render_appearance
from tests.conftest import PAYLOADS

EXAMPLES = PAYLOADS / "oncall-examples"
CAPTURED = PAYLOADS / "captured"

Templates = dict[str, str | None]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def md5(text: str) -> str:
    """Grouping distinctions are the md5 of the rendered grouping key, as in OnCall."""
    return hashlib.md5(text.encode()).hexdigest()


def heartbeat_payload(name: str) -> Any:
    """The alert payload of OnCall's ``heartbeat/<name>.json`` example."""
    return load(EXAMPLES / "heartbeat" / f"{name}.json")["raw_request_data"]


def ingest(integration_type: IntegrationType, payload: Any, custom: Templates | None = None) -> Behaviour:
    """What the ingest worker does with one request body of a single-alert type."""
    (alert,) = integration_type.split(payload)
    return evaluate(integration_type, custom or {}, alert)


def ingest_all(integration_type: IntegrationType, payload: Any) -> list[Behaviour]:
    """What the ingest worker does with one request body, whatever the number of alerts in it."""
    return [evaluate(integration_type, {}, alert) for alert in integration_type.split(payload)]


def appearance(
    integration_type: IntegrationType,
    payload: Any,
    channel: str,
    custom: Templates | None = None,
    *,
    integration_name: str = "Prom",
    **links: Any,
) -> dict[str, str | None]:
    """One channel's rendering, for an integration named "Prom" unless told otherwise."""
    return render_appearance(
        integration_type, custom or {}, payload, channel, integration_name=integration_name, **links
    )
