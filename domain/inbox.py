"""The inbox: every accepted inbound request, recorded before the sender gets its 2xx."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

KIND_ALERT = "alert"
KIND_DEMO = "demo"


class ReceivedAlert(Aggregate):
    """One accepted request to an integration URL (it may carry several alerts: legacy types)."""

    @event("AlertReceived")
    def __init__(self, integration_id: UUID, kind: str, payload_json: str, received_at: datetime):
        self.integration_id = integration_id
        self.kind = kind
        self.payload_json = payload_json
        self.received_at = received_at


class HeartbeatPing(Aggregate):
    @event("HeartbeatPinged")
    def __init__(self, integration_id: UUID, received_at: datetime):
        self.integration_id = integration_id
        self.received_at = received_at
