"""A notification's message rendered in a real render worker, under the hard limits ingest renders
under: a template that would run for long or fill memory is stopped, and the person is still
notified with the group's title and what happened to the template."""

from __future__ import annotations

import time

import pytest

from adapters.notify_channels import render_message
from adapters.render_pool import RenderPool
from domain.integrations import get_type

# One built-in call that runs for ~20 s and takes ~1.5 GiB (as in test_template_bounds).
SORT_BOMB = "{{ (('a'*9999999)|list)|sort|length }}"
PAYLOAD = get_type("alertmanager").example_payload


@pytest.fixture(scope="module")
def pool():
    render_pool = RenderPool(max_workers=1, hard_limit=0.5)
    yield render_pool
    render_pool.close()


def render(pool, channel: str, templates: dict) -> dict:
    return render_message(
        pool, type_slug="alertmanager", templates=templates, payload=PAYLOAD, channel=channel,
        integration_name="Prometheus", alert_group_number=7, link="https://oncall.example.com/I1",
        fallback_title="InstanceDown (as recorded)",
    )  # fmt: skip


def test_a_message_renders_in_a_worker_as_it_would_in_process(pool):
    assert render(pool, "sms", {}) == {"title": "InstanceDown", "body": "InstanceDown", "format": "text"}
    custom = render(pool, "email", {"email.title": "[{{ integration_name }}] #{{ grafana_oncall_alert_group_id }}"})
    assert custom["title"] == "[Prometheus] #7" and custom["body"].startswith("Status: firing")


def test_a_template_over_the_hard_limit_is_stopped_and_the_notification_still_has_a_message(pool):
    started = time.monotonic()
    stopped = render(pool, "email", {"email.message": SORT_BOMB})
    assert time.monotonic() - started < 5  # not the bomb's ~20 s
    assert stopped["title"] == "InstanceDown (as recorded)"
    assert stopped["body"].startswith("InstanceDown (as recorded)\n\nTemplate Error: Template rendering was stopped: it ")
    assert stopped["format"] == "text"
    # The pool goes on with a fresh worker.
    assert render(pool, "sms", {})["title"] == "InstanceDown"
