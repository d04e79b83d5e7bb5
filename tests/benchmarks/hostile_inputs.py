"""What each hostile input gets, what is stored, and how soon another integration's alert is seen.

A plain script, not a test (the tests assert each behaviour; this prints the figures):

    python tests/benchmarks/hostile_inputs.py [--database-url postgresql://...]

It runs a whole Tocsin runtime (ingest, projections, ticker in threads) on a fresh PostgreSQL
schema, drives it through the Flask app in process, and for each input: sends it, then sends a
plain alert to another integration and times how long that alert's group takes to show in
``GET /api/v1/alert_groups/`` after its 2xx. The schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SORT_BOMB = "{{ (('a'*9999999)|list)|sort|length }}"
MEMORY_BOMB = (
    "{% set ns = namespace(kept=[]) %}{% for c in 'x' * 1000 %}"
    "{% set _ = ns.kept.append(('a' * 9999999) | list) %}{% endfor %}{{ ns.kept | length }}"
)


def nested(depth: int) -> dict:
    value: object = "deep"
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


class Probe:
    def __init__(self, client, admin: str):
        self.client = client
        self.admin = admin
        self.other = self.integration("webhook", "bystander")
        self.sent = 0

    def integration(self, type_: str, name: str, **fields) -> dict:
        response = self.client.post(
            "/api/v1/integrations/", json={"type": type_, "name": name, **fields}, headers={"Authorization": self.admin}
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def post(self, integration: dict, **kwargs):
        return self.client.post(integration["link"].removeprefix("http://tocsin.test"), **kwargs)

    def groups(self, integration: dict) -> list[dict]:
        response = self.client.get(
            f"/api/v1/alert_groups/?integration_id={integration['id']}", headers={"Authorization": self.admin}
        )
        return response.get_json()["results"]

    def bystander_visible_after(self, timeout: float = 60.0) -> float:
        """Send a plain alert to the other integration; seconds from its 2xx to its group shown."""
        self.sent += 1
        response = self.post(self.other, json={"bystander": self.sent})
        assert response.status_code == 200
        since = time.monotonic()
        while time.monotonic() - since < timeout:
            if len(self.groups(self.other)) >= self.sent:
                return time.monotonic() - since
            time.sleep(0.01)
        return float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TOCSIN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()

    import psycopg

    from adapters.settings import Settings
    from tocsin.cli import create_token, migrate
    from tocsin.runtime import Runtime
    from web import create_app

    schema = f"hostile_{uuid.uuid4().hex[:10]}"
    settings = Settings(
        database_url=args.database_url, database_schema=schema, base_url="http://tocsin.test",
        ratelimit_integration="1000000/1d", ratelimit_total="1000000/1d",
    )  # fmt: skip
    migrate(settings)
    runtime = Runtime(settings)
    runtime.start()
    rows = []
    try:
        app = create_app(runtime)
        client = app.test_client()
        admin = create_token(runtime, "admin", "admin")
        viewer = create_token(runtime, "viewer", "viewer")
        probe = Probe(client, admin)
        am = probe.integration("alertmanager", "am")
        legacy = probe.integration("legacy_alertmanager", "legacy")

        def row(what: str, answer, stored: str) -> None:
            status = answer if isinstance(answer, str) else str(answer.status_code)
            rows.append((what, status, stored, f"{probe.bystander_visible_after():.2f} s"))

        nul = {"status": "firing", "groupKey": "nul", "groupLabels": {"alertname": "Disk\u0000Full"},
               "alerts": [{"status": "firing", "labels": {"alertname": "Disk\u0000Full"}}]}  # fmt: skip
        row("Alertmanager body with NUL in groupLabels.alertname", probe.post(am, json=nul),
            "title `Disk\\ufffdFull` in the read models; the event keeps the NUL")  # fmt: skip
        named = client.post("/api/v1/integrations/", json={"type": "webhook", "name": "a\u0000b"},
                            headers={"Authorization": admin})  # fmt: skip
        row("API: integration name with NUL", named, "nothing (field error)")
        deep_api = client.post("/api/v1/integrations/", data="[" * 100_000 + "]" * 100_000,
                               content_type="application/json", headers={"Authorization": admin})  # fmt: skip
        row("API: 100,000-deep JSON body", deep_api, "nothing")
        deep_alert = probe.post(am, data=json.dumps(nested(975)), content_type="application/json")
        row("Alert nested 975 levels deep", deep_alert, "nothing (limit 100 levels)")
        group = probe.groups(am)[0]
        silence = client.post(f"/api/v1/alert_groups/{group['id']}/silence", json={"delay": 10**18},
                              headers={"Authorization": admin})  # fmt: skip
        row("Silence with delay 10**18", silence, "nothing")
        huge_page = client.get("/api/v1/alert_groups/?perpage=9223372036854775808", headers={"Authorization": admin})
        row("perpage=9223372036854775808", huge_page, "- (clamped to 1000)")
        ses = client.post("/integrations/v1/inbound_email_webhook", json={"Type": "Notification", "Message": "5"})
        row("SES webhook body with Message not a mail", ses, "nothing")

        for name, templates, what in (
            ("sort bomb", {"grouping_key": SORT_BOMB}, "grouping_key: one sort of 10 million items"),
            ("memory bomb", {"grouping_key": MEMORY_BOMB}, "grouping_key: a namespace append loop"),
            ("five bombs", {field: SORT_BOMB for field in ("grouping_key", "resolve_signal",
                            "acknowledge_signal", "source_link")} | {"web": {"title": SORT_BOMB}},
             "the same bomb in five templates"),
            ("mutating", {"grouping_key": "{{ payload.labels.update({'x': 1}) }}"}, "payload.labels.update(...)"),
            ("surrogate", {"web": {"title": '{{ "%c" | format(55296) }}'}}, "a title rendering a lone surrogate"),
        ):  # fmt: skip
            integration = probe.integration("alertmanager", name, templates=templates)
            answer = probe.post(integration, json={"status": "firing", "groupKey": name, "groupLabels": {},
                                                   "alerts": [{"status": "firing", "labels": {"alertname": name}}]})  # fmt: skip
            row(f"Template {what}", answer, "the alert, in a group of its own or with its error on the timeline")

        began = time.monotonic()
        preview = client.post(
            f"/api/v1/integrations/{am['id']}/preview_template",
            json={"template_name": "grouping_key", "template_body": SORT_BOMB, "payload": {}},
            headers={"Authorization": viewer},
        )
        row(f"Viewer previews the sort bomb (answered in {time.monotonic() - began:.2f} s)", preview,
            "nothing (preview saves nothing)")  # fmt: skip
        body = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "Flood", "n": str(i)}}
                                               for i in range(20_000)]}  # fmt: skip
        row("Legacy Alertmanager body with 20,000 alerts", probe.post(legacy, json=body),
            "1,000 alerts; 19,000 counted on the timeline")  # fmt: skip
    finally:
        runtime.close()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    print("| input | answer | stored | another integration's alert visible after its 2xx |")
    print("|---|---|---|---|")
    for what, status, stored, visible in rows:
        print(f"| {what} | {status} | {stored} | {visible} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
