"""Manual: OnCall's legacy Slack "create incident" integration, hidden from the web UI.

Same payload shape and templates as direct paging (``{"oncall": {...}}`` with a fresh ``uid``):
every alert is a group of its own, nothing resolves by itself, and there is no demo alert.
"""

from __future__ import annotations

from domain.integrations import direct_paging
from domain.integrations.base import IntegrationType

INTEGRATION_TYPE = IntegrationType(
    slug="manual",
    title="Manual",
    short_description=None,
    is_able_to_autoresolve=False,
    has_heartbeat=False,
    example_payload=None,
    defaults=direct_paging.TEMPLATES,
)
