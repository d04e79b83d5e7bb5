"""Grafana Alerting contact point of type "Grafana OnCall".

Grafana sends Alertmanager's webhook body (plus a few extra fields), so this type shares the
Alertmanager templates and splitting; only metadata and the example differ. Grafana has no
heartbeat URL for it.
"""

from __future__ import annotations

from domain.integrations import alertmanager
from domain.integrations.base import IntegrationType, load_example

INTEGRATION_TYPE = IntegrationType(
    slug="grafana_alerting",
    title="Grafana Alerting",
    short_description="Grafana",
    is_able_to_autoresolve=True,
    has_heartbeat=False,
    example_payload=load_example("grafana_alerting"),
    defaults=alertmanager.TEMPLATES,
    split=alertmanager.split_group_notification,
)
