"""What an integration type is: metadata, default templates, example payload, body splitting,
heartbeat payloads and the label-set hook of the legacy Alertmanager types.

Kept apart from the package ``__init__`` so that type modules can import it while the package
registry imports them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from types import MappingProxyType
from typing import Any

TEMPLATE_FIELDS: tuple[str, ...] = (
    "grouping_key",
    "resolve_signal",
    "acknowledge_signal",
    "source_link",
    "web.title",
    "web.message",
    "web.image_url",
    "slack.title",
    "slack.message",
    "slack.image_url",
    "sms.title",
    "phone_call.title",
    "telegram.title",
    "telegram.message",
    "telegram.image_url",
    "email.title",
    "email.message",
)

# OnCall has no email-specific defaults: an email shows the web title and message.
_INHERITED_DEFAULTS = {"email.title": "web.title", "email.message": "web.message"}


def single_alert(payload: Any) -> list[Any]:
    """Most types turn one request body into exactly one alert."""
    return [payload]


def no_label_set(alert_payload: Any) -> str | None:
    """Every type but the legacy Alertmanager ones: alerts carry no label set."""
    return None


def labels_hash(alert_payload: Any) -> str:
    """md5 hex of the alert's ``labels`` as JSON with sorted keys (OnCall's optimization hash).

    Only the labels count, so ``endsAt``, ``annotations`` and the status do not change it. An
    alert without a ``labels`` object counts as having no labels (``{}``).
    """
    labels = alert_payload.get("labels") if isinstance(alert_payload, dict) else None
    labels_json = json.dumps(labels if isinstance(labels, dict) else {}, sort_keys=True)
    return hashlib.md5(labels_json.encode()).hexdigest()


def load_example(slug: str) -> Any:
    """The demo payload shipped in ``examples/<slug>.json`` (OnCall's own example values)."""
    return json.loads(files(__package__).joinpath("examples", f"{slug}.json").read_text("utf-8"))


def load_heartbeat_payloads(slug: str) -> tuple[Any, Any]:
    """(expired, restored) alert payloads from ``examples/heartbeat/<slug>_{expired,restored}.json``.

    Each file is OnCall's ``{title, message, raw_request_data}``; the alert payload is
    ``raw_request_data``.
    """
    folder = files(__package__).joinpath("examples", "heartbeat")
    expired, restored = (
        json.loads(folder.joinpath(f"{slug}_{state}.json").read_text("utf-8"))["raw_request_data"]
        for state in ("expired", "restored")
    )
    return expired, restored


@dataclass(frozen=True, eq=False)
class IntegrationType:
    """One kind of alert source (``/integrations/v1/<slug>/<token>/``).

    ``defaults`` maps every name in TEMPLATE_FIELDS to a Jinja source, or None where the type
    has no such template. Fields not given are None; ``email.*`` falls back to ``web.*``.
    ``example_payload`` is shared: copy it before changing it. None means the type has no demo
    alert (``direct_paging``, ``manual``).

    ``split`` turns one request body into the alert payloads to ingest, in order.

    ``heartbeat_payloads`` is ``(expired, restored)``: the alert payloads a heartbeat sends when
    pings stop and when they come back, ingested like any other alert of the type. With the type's
    default templates both have the same grouping distinction and ``restored`` is a resolve
    signal, so the restore resolves the "missing" group. A type with ``has_heartbeat`` gets them
    from ``examples/heartbeat/<slug>_{expired,restored}.json`` unless given; a type without
    heartbeat has None.

    ``label_set(alert_payload)`` is the hook for OnCall's legacy Alertmanager auto-resolve
    (``legacy_alertmanager``, ``legacy_grafana_alerting``; reference §2.5). It returns None for
    every other type, meaning "resolve as usual": a resolve signal resolves the group. For the
    legacy types it returns the alert's label set (md5 hex of its ``labels`` JSON with sorted
    keys, see ``labels_hash``), and ingest must then resolve the group only when this alert is a
    resolve signal (from the normal resolve template) *and* every label set seen in the group has
    its latest alert resolved. ``label_sets_resolved`` computes that from the group's history.
    """

    slug: str
    title: str
    short_description: str | None
    is_able_to_autoresolve: bool
    has_heartbeat: bool
    example_payload: Any
    defaults: Mapping[str, str | None]
    split: Callable[[Any], list[Any]] = field(default=single_alert)
    heartbeat_payloads: tuple[Any, Any] | None = None
    label_set: Callable[[Any], str | None] = field(default=no_label_set)

    def __post_init__(self) -> None:
        unknown = set(self.defaults) - set(TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(f"{self.slug}: unknown template fields {sorted(unknown)}")
        if self.has_heartbeat and self.heartbeat_payloads is None:
            object.__setattr__(self, "heartbeat_payloads", load_heartbeat_payloads(self.slug))
        elif not self.has_heartbeat and self.heartbeat_payloads is not None:
            raise ValueError(f"{self.slug}: heartbeat payloads given for a type without heartbeat")
        given = dict(self.defaults)
        for name, source_name in _INHERITED_DEFAULTS.items():
            given.setdefault(name, given.get(source_name))
        complete = {name: given.get(name) for name in TEMPLATE_FIELDS}
        # Frozen dataclass: normalise once here so every consumer sees all fields, read-only.
        object.__setattr__(self, "defaults", MappingProxyType(complete))


def label_sets_resolved(history: Iterable[tuple[str | None, bool]]) -> bool:
    """Whether a legacy Alertmanager group may resolve: every label set's latest state resolved.

    ``history`` is the group's alerts oldest first, each ``(label_set, is_resolve_signal)``
    (alerts without a label set are ignored). The newest alert must itself be resolved, so an
    empty or firing-last history gives False. OnCall also leaves groups with more than 500
    alerts unresolved (``NOT_YET_STOP_AUTORESOLVE``); that cut-off is the caller's decision.
    """
    latest: dict[str, bool] = {}
    last_resolved = False
    for label_set, is_resolve_signal in history:
        if label_set is None:
            continue
        latest[label_set] = is_resolve_signal
        last_resolved = is_resolve_signal
    return last_resolved and all(latest.values())
