"""What an integration type is: metadata, default templates, example payload, body splitting.

Kept apart from the package ``__init__`` so that type modules can import it while the package
registry imports them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
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


def load_example(slug: str) -> Any:
    """The demo payload shipped in ``examples/<slug>.json`` (OnCall's own example values)."""
    return json.loads(files(__package__).joinpath("examples", f"{slug}.json").read_text("utf-8"))


@dataclass(frozen=True, eq=False)
class IntegrationType:
    """One kind of alert source (``/integrations/v1/<slug>/<token>/``).

    ``defaults`` maps every name in TEMPLATE_FIELDS to a Jinja source, or None where the type
    has no such template. Fields not given are None; ``email.*`` falls back to ``web.*``.
    ``example_payload`` is shared: copy it before changing it.
    """

    slug: str
    title: str
    short_description: str
    is_able_to_autoresolve: bool
    has_heartbeat: bool
    example_payload: Any
    defaults: Mapping[str, str | None]
    split: Callable[[Any], list[Any]] = field(default=single_alert)

    def __post_init__(self) -> None:
        unknown = set(self.defaults) - set(TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(f"{self.slug}: unknown template fields {sorted(unknown)}")
        given = dict(self.defaults)
        for name, source_name in _INHERITED_DEFAULTS.items():
            given.setdefault(name, given.get(source_name))
        complete = {name: given.get(name) for name in TEMPLATE_FIELDS}
        # Frozen dataclass: normalise once here so every consumer sees all fields, read-only.
        object.__setattr__(self, "defaults", MappingProxyType(complete))
