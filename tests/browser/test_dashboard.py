"""A real browser signs in, sees the dashboard and receives a live status message over the websocket."""
import pytest

from ops_portal.accounts.choices import Role
from tests import factories
from tests.helpers import person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def test_sign_in_see_the_dashboard_and_get_a_live_answer_from_a_worker(page, live_web, live_worker):
    staging = factories.environment("staging")
    factories.host(staging, "stage-web-1")
    person(staging, Role.OPERATOR, "olga")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))

    page.goto(live_web.url + "/")
    assert "/login/" in page.url
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_web.url + "/")
    assert page.locator("h1").inner_text() == "Dashboard"
    assert "staging" in page.locator(".stat").first.inner_text()
    page.wait_for_selector("#live-indicator.live")

    page.click("#ping-worker")
    pong = page.wait_for_selector("#status-feed li.pong", timeout=20000)
    assert "answered" in pong.inner_text()

    page.click("text=Hosts")
    assert "stage-web-1" in page.locator("#hosts").inner_text()
    assert errors == [], errors
