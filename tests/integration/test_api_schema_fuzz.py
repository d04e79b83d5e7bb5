"""Schemathesis drives every operation of ``/api/v1/openapi.json`` against the app (in process).

For each operation it generates requests from the document, valid ones and invalid ones, a
bounded and repeatable number of each, and checks that no answer is a 5xx and that every answer
(status code, content type, body) is one the document describes. Runs on SQLite and PostgreSQL,
with an alert group and an integration to act on besides the ids it makes up.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import send, wait_for_groups

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and mode; with the fixed seed every run sends the same requests.
MAX_EXAMPLES = 20
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def fuzz(operation, admin_token: str, mode, path_parameters: dict | None = None) -> None:
    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def check(case):
        case.call_and_validate(headers={"Authorization": admin_token}, checks=CHECKS)

    check()


@pytest.mark.timeout(300)
def test_every_operation_answers_as_its_document_says(api_schema, admin_token, client, make_integration):
    webhook = make_integration("formatted_webhook", name="Fuzzed")
    send(client, webhook, {"alert_uid": "disk", "title": "Disk full"})
    (group,) = wait_for_groups(client, webhook["id"], 1)
    real_ids = {"/api/v1/alert_groups/": group["id"], "/api/v1/integrations/": webhook["id"]}

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15  # the document lists every operation
    # Deleting the integration comes last, so that the others act on a live one.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            fuzz(operation, admin_token, mode)  # made-up ids
            real_id = next((i for prefix, i in real_ids.items() if operation.path.startswith(f"{prefix}{{id}}")), None)
            if real_id is not None:
                fuzz(operation, admin_token, mode, {"id": real_id})
