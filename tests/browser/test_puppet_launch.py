"""Launching Puppet in a real browser: choosing a Puppet action makes the live target picker leave
out the hosts whose facts lack Puppet, naming why, and the preview lists them the same way."""
import pytest

from ops_portal.accounts.choices import Role
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def test_the_picker_and_the_preview_name_the_hosts_left_out_of_a_puppet_run(page, live_web):
    env = factories.environment("staging")
    tools = {"python3": {"version": "3.11.2", "path": "/usr/bin/python3"}}
    for name, facts in (("pup-1", {"tools": {**tools, "puppet": {"version": "7.23.0", "path": "/usr/bin/puppet",
                                                                   "agent_server": ""}}}),
                        ("plain-1", {"tools": tools})):
        host = factories.host(env, name)
        host.facts = facts
        host.save(update_fields=["facts"])
    person(env, Role.OPERATOR, "pia")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, live_web.url, "pia")
    page.goto(live_web.url + "/jobs/new/")
    page.wait_for_selector("#target-count .js-target-count[data-count='2']")
    page.select_option("select[name=action]", "puppet.drift")
    page.wait_for_selector("#target-count .js-target-count[data-count='1']")
    excluded = page.locator("#target-count .js-target-excluded").inner_text()
    assert "plain-1" in excluded and "puppet is not installed according to its facts" in excluded
    page.fill("input[name='puppet.drift__project']", "site")
    page.click("button[name=step][value=preview]")
    page.wait_for_selector("#launch-preview")
    assert page.locator(".js-preview-count").inner_text() == "1 target"
    assert "plain-1: puppet is not installed" in page.locator(".js-preview-excluded").inner_text()
    assert errors == []
