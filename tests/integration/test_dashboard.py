"""The dashboard over HTTP (Flask's client) on SQLite and PostgreSQL: sign-in, sessions, CSRF,
roles, filters, hostile input, escaping, insights and the alert-group metrics."""

from __future__ import annotations

import re
import stat

import pytest

from tests.conftest import eventually
from tests.integration.conftest import send, wait_for_groups

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


class Browser:
    """A test client with a dashboard session (cookies) and its CSRF token."""

    def __init__(self, app):
        self.http = app.test_client()
        self.csrf = ""

    def get(self, path: str, **kwargs):
        response = self.http.get(path, **kwargs)
        found = CSRF.search(response.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict | None = None, fetch: bool = True, **kwargs):
        headers = {"X-Requested-With": "fetch"} if fetch else {}
        return self.http.post(path, data={"csrf_token": self.csrf, **(data or {})}, headers=headers, **kwargs)

    def post_json(self, path: str, body):
        return self.http.post(path, json=body, headers={"X-CSRF-Token": self.csrf})


def signed_in(app, token: str) -> Browser:
    browser = Browser(app)
    browser.get("/sign-in")
    response = browser.post("/sign-in", {"token": token}, fetch=False)
    assert response.status_code == 303, response.get_data(as_text=True)
    browser.get("/")  # the session's CSRF token is new after signing in
    return browser


def disk_full(name: str = "DiskFull", key: str | None = None) -> dict:
    return {
        "status": "firing",
        "groupKey": key or name,
        "groupLabels": {"alertname": name},
        "alerts": [{"status": "firing", "labels": {"alertname": name}}],
    }


@pytest.fixture
def viewer_token(runtime) -> str:
    from tocsin.cli import create_token

    return create_token(runtime, "night viewer", "viewer")


@pytest.fixture
def editor_token(runtime) -> str:
    from tocsin.cli import create_token

    return create_token(runtime, "night editor", "editor")


def test_pages_need_a_signed_in_session_with_a_safe_cookie(app, admin_token):
    anonymous = Browser(app)
    for path in ("/", "/integrations", "/insights", "/alert-groups/IXXXX"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/sign-in?next=" in response.headers["Location"], path
    assert anonymous.get("/alert-groups/live", headers={"X-Requested-With": "fetch"}).status_code == 401

    anonymous.get("/sign-in")
    wrong = anonymous.post("/sign-in", {"token": "not-a-token"}, fetch=False)
    assert wrong.status_code == 401 and "That token is not valid." in wrong.get_data(as_text=True)
    assert "not-a-token" not in wrong.get_data(as_text=True), "a typed token is never shown back"
    assert anonymous.http.post("/sign-in", data={"token": admin_token}).status_code == 400, "sign-in needs the CSRF token"

    anonymous.get("/sign-in?next=//evil.example/")
    response = anonymous.post("/sign-in", {"token": admin_token, "next": "//evil.example/"}, fetch=False)
    assert response.status_code == 303 and response.headers["Location"] == "/", "no open redirect"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert admin_token not in cookie, "the cookie keeps the token's digest, not the token"

    page = anonymous.get("/")
    assert page.status_code == 200 and admin_token not in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]

    assert anonymous.post("/sign-out", fetch=False).status_code == 303
    assert anonymous.get("/").status_code == 302, "signed out"


def test_a_viewer_sees_no_buttons_and_the_server_refuses_their_actions(app, client, make_integration, viewer_token):
    integration = make_integration(name="Prometheus")
    send(client, integration, disk_full())
    group = wait_for_groups(client, integration["id"], 1)[0]
    viewer = signed_in(app, viewer_token)

    page = viewer.get(f"/alert-groups/{group['id']}").get_data(as_text=True)
    assert "DiskFull" in page and "data-action=" not in page
    assert viewer.post(f"/alert-groups/{group['id']}/acknowledge").status_code == 403
    assert viewer.post(f"/alert-groups/{group['id']}/silence", {"delay": "1800"}).status_code == 403
    assert client.get(f"/api/v1/alert_groups/{group['id']}/").get_json()["state"] == "firing"

    page = viewer.get(f"/integrations/{integration['id']}").get_data(as_text=True)
    assert 'id="send-demo"' not in page and "Save templates" not in page and "New integration" not in page
    assert viewer.post(f"/integrations/{integration['id']}/demo").status_code == 403
    assert viewer.post("/integrations", {"type": "webhook", "name": "sneaky"}).status_code == 403
    refused = viewer.post(f"/integrations/{integration['id']}/templates", {"template:web.title": "x"}, fetch=False)
    assert refused.status_code == 403
    assert client.get(f"/api/v1/integrations/{integration['id']}/").get_json()["templates"]["web"]["title"] is None
    preview = viewer.post_json(f"/integrations/{integration['id']}/preview",
                               {"template_name": "web.title", "template_body": "{{ payload.status }}"})
    assert preview.status_code == 200 and preview.get_json()["preview"] == "firing", "viewers may preview"


def test_an_editor_acts_and_gets_the_new_state_and_timeline_back(app, client, make_integration, editor_token):
    integration = make_integration(name="Prometheus")
    send(client, integration, disk_full())
    group_id = wait_for_groups(client, integration["id"], 1)[0]["id"]
    editor = signed_in(app, editor_token)
    acknowledged = editor.post(f"/alert-groups/{group_id}/acknowledge")
    assert acknowledged.status_code == 200 and "Acknowledged by night editor" in acknowledged.get_data(as_text=True)

    again = editor.post(f"/alert-groups/{group_id}/acknowledge")
    assert again.status_code == 400 and "acknowledge" in again.get_data(as_text=True).lower()
    assert editor.post(f"/alert-groups/{group_id}/unacknowledge").status_code == 200
    assert editor.post(f"/alert-groups/{group_id}/silence", {"delay": "5"}).status_code == 400, "OnCall's choices only"
    assert editor.post(f"/alert-groups/{group_id}/silence", {"delay": "x"}).status_code == 400
    silenced = editor.post(f"/alert-groups/{group_id}/silence", {"delay": "1800"})
    assert silenced.status_code == 200
    fragment = silenced.get_data(as_text=True)
    assert 'id="group-state">Silenced<' in fragment and "Silenced by night editor for 30 minutes" in fragment
    assert 'data-action="unsilence"' in fragment, "the undo is offered"
    resolved = editor.post(f"/alert-groups/{group_id}/resolve", fetch=False)
    assert resolved.status_code == 303 and resolved.headers["Location"].endswith(f"/alert-groups/{group_id}")
    assert client.get(f"/api/v1/alert_groups/{group_id}/").get_json()["state"] == "resolved"
    assert editor.post(f"/alert-groups/{group_id}/explode").status_code == 404
    assert editor.post("/integrations", {"type": "webhook"}).status_code == 403, "integrations are for admins"


def test_the_list_filters_searches_counts_and_pages(app, client, make_integration, admin_token):
    prometheus = make_integration(name="Prometheus")
    grafana = make_integration("webhook", name="Hooks")
    for index in range(27):
        send(client, prometheus, disk_full(f"Disk_{index}"))
    send(client, prometheus, disk_full("100% CPU"))
    send(client, grafana, {"title": "Webhook thing"})
    wait_for_groups(client, prometheus["id"], 28)
    wait_for_groups(client, grafana["id"], 1)
    first = client.get(f"/api/v1/alert_groups/?integration_id={prometheus['id']}").get_json()["results"][0]
    client.post(f"/api/v1/alert_groups/{first['id']}/acknowledge")
    browser = signed_in(app, admin_token)

    def rows(path: str) -> list[str]:
        response = browser.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return re.findall(r'data-group-id="([^"]+)"', response.get_data(as_text=True))

    def count(path: str, state: str) -> int:
        found = re.search(rf'data-state-count="{state}">(\d+)<', browser.get(path).get_data(as_text=True))
        return int(found.group(1))

    assert len(rows("/")) == 25 and len(rows("/?page=2")) == 4
    assert rows("/?page=999999999999") == rows("/?page=2"), "a page too far shows the last"
    assert count("/", "firing") == 28 and count("/", "acknowledged") == 1
    assert rows("/?state=acknowledged") == [first["id"]]
    assert len(rows(f"/?integration={grafana['id']}")) == 1
    assert count(f"/?integration={grafana['id']}", "firing") == 1
    assert len(rows("/?q=disk_1")) == 11, "case-insensitive, _ taken literally: Disk_1 and Disk_10..19"
    assert len(rows("/?q=100%25")) == 1 and len(rows("/?q=%25")) == 1, "% taken literally"
    assert len(rows("/?from=2000-01-01&to=2999-12-31")) == 25
    assert rows("/?to=2000-01-01") == []
    assert len(rows("/?from=0001-01-01&to=9999-12-31")) == 25, "the first and last days there are"
    live = browser.get("/alert-groups/live?state=acknowledged", headers={"X-Requested-With": "fetch"})
    assert live.status_code == 200 and first["id"] in live.get_data(as_text=True)
    assert "<html" not in live.get_data(as_text=True), "the live part is a fragment"
    page = browser.get("/?state=firing&q=disk&page=2").get_data(as_text=True)
    assert 'href="/?state=firing&amp;q=disk&amp;page=1"' in page, "page links keep the filters"


@pytest.mark.parametrize(
    "query",
    ["q=%00", "q=" + "x" * 201, "state=bogus", "from=yesterday", "to=2026-13-40", "integration=%00"],
)
def test_hostile_filters_are_a_clear_400(app, admin_token, query):
    browser = signed_in(app, admin_token)
    response = browser.get(f"/?{query}")
    assert response.status_code == 400 and "Invalid filter" in response.get_data(as_text=True)


def test_hostile_input_elsewhere_is_a_clear_4xx(app, client, make_integration, admin_token):
    integration = make_integration(name="Prometheus")
    browser = signed_in(app, admin_token)
    assert browser.get("/alert-groups/INOPE").status_code == 404
    assert browser.get("/integrations/CNOPE").status_code == 404
    assert browser.get("/insights?days=1000000").status_code == 400
    assert browser.get("/insights?integration=%00").status_code == 400
    assert browser.post("/integrations", {"type": "nonsense"}).status_code == 400
    assert browser.post("/integrations", {"type": "webhook", "name": "a\x00b"}).status_code == 400
    assert browser.post("/integrations", {"type": "webhook", "name": "n" * 151}).status_code == 400
    path = f"/integrations/{integration['id']}"
    syntax = browser.post(f"{path}/templates", {"template:web.title": "{{ oops"}, fetch=False)
    assert syntax.status_code == 400 and "Invalid web.title template" in syntax.get_data(as_text=True)
    assert browser.post(f"{path}/templates", {"template:web.title": "a\x00"}, fetch=False).status_code == 400
    huge = browser.post(f"{path}/templates", {"template:web.title": "x" * 50_001}, fetch=False)
    assert huge.status_code == 400
    assert browser.post_json(f"{path}/preview", {"template_name": "nope", "template_body": ""}).status_code == 400
    assert browser.post_json(f"{path}/preview", {"template_name": "web.title", "template_body": 5}).status_code == 400
    assert browser.post_json(f"{path}/preview", [[[]]]).status_code == 400
    no_alert = browser.post_json(f"{path}/preview", {"template_name": "web.title", "template_body": "x"})
    assert no_alert.status_code == 200 and "No alert yet" in no_alert.get_json()["error"]
    deep = "[" * 5000 + "]" * 5000
    response = browser.http.post(f"{path}/preview", data=deep, content_type="application/json",
                                 headers={"X-CSRF-Token": browser.csrf})
    assert response.status_code == 400


def test_templates_save_and_an_unchanged_default_stays_default(app, client, make_integration, admin_token):
    integration = make_integration(name="Prometheus")
    browser = signed_in(app, admin_token)
    path = f"/integrations/{integration['id']}"
    default_grouping = re.search(
        r'name="template:grouping_key"[^>]*>([^<]*)</textarea>', browser.get(path).get_data(as_text=True)
    ).group(1)
    saved = browser.post(f"{path}/templates", {
        "template:web.title": "Custom {{ payload.status }}",
        "template:grouping_key": default_grouping.replace("&#34;", '"').replace("&#39;", "'"),
    }, fetch=False)
    assert saved.status_code == 303
    templates = client.get(f"/api/v1/integrations/{integration['id']}/").get_json()["templates"]
    assert templates["web"]["title"] == "Custom {{ payload.status }}"
    assert templates["grouping_key"] is None, "the type's default is not saved as a custom template"
    browser.post(f"{path}/templates", {"template:web.title": ""}, fetch=False)
    assert client.get(f"/api/v1/integrations/{integration['id']}/").get_json()["templates"]["web"]["title"] is None


def test_user_data_is_shown_as_text(app, client, make_integration, admin_token):
    integration = make_integration("formatted_webhook", name="<b>Hooks</b>")
    send(client, integration, {"alert_uid": "1", "title": "<script>alert(1)</script>", "message": "<img src=x>",
                               "link_to_upstream_details": "javascript:alert(2)"})
    group = wait_for_groups(client, integration["id"], 1)[0]
    browser = signed_in(app, admin_token)
    for path in ("/", f"/alert-groups/{group['id']}", "/integrations", f"/integrations/{integration['id']}"):
        page = browser.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in page and "<b>Hooks</b>" not in page and "<img src=x>" not in page, path
    page = browser.get(f"/alert-groups/{group['id']}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page, "a sender's link is not clickable unless it is http(s)"


def test_insights_count_per_day_and_time_to_acknowledge_and_resolve(app, client, make_integration, admin_token):
    integration = make_integration(name="Prometheus")
    for name in ("A", "B", "C"):
        send(client, integration, disk_full(name))
    send(client, integration, disk_full("A"))  # a second alert in A's group: A is the noisiest
    groups = {g["title"].strip(): g for g in wait_for_groups(client, integration["id"], 3)}
    eventually(lambda: client.get(f"/api/v1/alert_groups/{groups['A']['id']}/").get_json()["alerts_count"] == 2)
    client.post(f"/api/v1/alert_groups/{groups['A']['id']}/acknowledge")
    client.post(f"/api/v1/alert_groups/{groups['B']['id']}/resolve")
    browser = signed_in(app, admin_token)
    page = browser.get(f"/insights?days=30&integration={integration['id']}").get_data(as_text=True)
    assert re.search(r'id="total-groups">3<', page)
    assert "1 acknowledged" in page and "1 resolved" in page
    assert re.search(r'id="mtta">\d+ s<', page) and re.search(r'id="mttr">\d+ s<', page)
    noisiest = page[page.index('id="noisiest"'):]
    assert noisiest.index("2 alerts in 1 group") < noisiest.index("1 alert in 1 group")
    assert page.count("<tr><th scope=\"row\">") == 30, "one table row per day of the period"
    other = make_integration(name="Empty")
    assert re.search(r'id="total-groups">0<', browser.get(f"/insights?integration={other['id']}").get_data(as_text=True))


def test_metrics_have_alert_groups_by_state_and_the_response_time(app, client, make_integration):
    integration = make_integration(name='Prom "main"')
    send(client, integration, disk_full("A"))
    send(client, integration, disk_full("B"))
    groups = wait_for_groups(client, integration["id"], 2)
    client.post(f"/api/v1/alert_groups/{groups[0]['id']}/acknowledge")
    client.post(f"/api/v1/alert_groups/{groups[0]['id']}/resolve")  # a later response: counted once
    text = app.test_client().get("/metrics").get_data(as_text=True)
    labels = f'integration="{integration["id"]}",integration_name="Prom \\"main\\""'
    assert f'tocsin_alert_groups_total{{{labels},state="firing"}} 1' in text
    assert f'tocsin_alert_groups_total{{{labels},state="resolved"}} 1' in text
    assert f'tocsin_alert_groups_total{{{labels},state="silenced"}} 0' in text
    assert "# TYPE tocsin_alert_groups_response_time_seconds histogram" in text
    assert f'tocsin_alert_groups_response_time_seconds_bucket{{{labels},le="60"}} 1' in text
    assert f'tocsin_alert_groups_response_time_seconds_bucket{{{labels},le="+Inf"}} 1' in text
    assert f"tocsin_alert_groups_response_time_seconds_count{{{labels}}} 1" in text

    client.post(f"/api/v1/alert_groups/{groups[1]['id']}/silence", json={"delay": 1800})  # after that scrape
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert f"tocsin_alert_groups_response_time_seconds_count{{{labels}}} 2" in text
    assert f'tocsin_alert_groups_total{{{labels},state="silenced"}} 1' in text


def test_the_secret_key_comes_from_the_environment_or_stays_in_the_data_dir(runtime, monkeypatch):
    from web import create_app

    monkeypatch.delenv("TOCSIN_SECRET_KEY", raising=False)
    first = create_app(runtime).secret_key
    key_file = runtime.settings.data_dir / "secret_key"
    assert key_file.read_text().strip() == first and len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert create_app(runtime).secret_key == first, "sessions survive a restart"
    monkeypatch.setenv("TOCSIN_SECRET_KEY", "from-the-environment")
    assert create_app(runtime).secret_key == "from-the-environment"


def test_the_grafana_dashboard_charts_only_metrics_that_are_exported(app, client, make_integration):
    import json
    from pathlib import Path

    import web.dashboard

    dashboard = json.loads((Path(web.dashboard.__file__).parent / "grafana-dashboard.json").read_text())
    queried = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\btocsin_[a-z_]+", target["expr"])
    }
    make_integration(name="Prometheus")
    exported = set(re.findall(r"^# TYPE (\S+) ", app.test_client().get("/metrics").get_data(as_text=True), re.M))
    assert queried and queried <= exported, f"charted but not exported: {sorted(queried - exported)}"


def test_first_responses_are_counted_once_and_leave_with_their_period(runtime, client, make_integration):
    from datetime import datetime, timedelta, timezone

    from projections.insights import FirstResponses

    integration = make_integration(name="Prometheus")
    send(client, integration, disk_full("A"))
    send(client, integration, disk_full("B"))
    groups = wait_for_groups(client, integration["id"], 2)
    responses = FirstResponses((60, 3600))
    week_ago = datetime.now(timezone.utc) - timedelta(days=7)
    assert responses.histogram(runtime.db, week_ago) == {}, "no response yet"

    client.post(f"/api/v1/alert_groups/{groups[0]['id']}/acknowledge")
    client.post(f"/api/v1/alert_groups/{groups[0]['id']}/unacknowledge")
    client.post(f"/api/v1/alert_groups/{groups[0]['id']}/resolve")
    found = responses.histogram(runtime.db, week_ago)[integration["id"]]
    assert (found.buckets, found.count) == ([1, 1], 1), "three responses, one group: counted once"
    assert 0 <= found.total < 60

    client.post(f"/api/v1/alert_groups/{groups[1]['id']}/resolve")
    assert responses.histogram(runtime.db, week_ago)[integration["id"]].count == 2
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert responses.histogram(runtime.db, later) == {}, "groups started before the period leave it"


def test_a_group_page_renders_a_hostile_message_template_under_the_render_limits(
    app, client, make_integration, admin_token
):
    # One built-in call that no budget check interrupts (~20 s, ~1.5 GiB): the page must not
    # hold a web thread for it, nor grow the web process.
    import time

    integration = make_integration(
        "alertmanager", templates={"web": {"message": "{{ (('a'*9999999)|list)|sort|length }}"}}
    )
    send(client, integration, disk_full())
    group = wait_for_groups(client, integration["id"], 1)[0]
    browser = signed_in(app, admin_token)
    began = time.monotonic()
    response = browser.get(f"/alert-groups/{group['id']}")
    assert response.status_code == 200
    assert time.monotonic() - began < 5
    assert "Template Error: rendering was stopped" in response.get_data(as_text=True)
