"""The search box, honest live counts in the jobs list, structured diffs and the charts, in a real
Chromium."""
import time

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import launch as jobs_launch
from ops_portal.jobs.choices import JobState
from ops_portal.monitoring import metrics
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import act, person, wait_until
from tests.jobs.helpers import launch, wait_job
from tests.monitoring.helpers import series_values

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def _watch_errors(page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    return errors


def test_the_search_box_shows_hits_as_you_type_and_the_keyboard_reaches_them(page, live_web):
    alpha, beta = factories.environment("alpha"), factories.environment("beta")
    mine = factories.host(alpha, "billing-1")
    factories.host(beta, "billing-2")
    person(alpha, Role.VIEWER, "vic")
    errors = _watch_errors(page)
    sign_in(page, live_web.url, "vic")
    page.fill("#nav-search-q", "BILL")
    hit = page.locator("#nav-search-results .search-hit")
    hit.first.wait_for()
    assert hit.all_inner_texts() == ["billing-1"]  # beta's host is not the viewer's
    page.press("#nav-search-q", "ArrowDown")
    assert page.evaluate("document.activeElement.textContent") == "billing-1"
    page.keyboard.press("Escape")
    assert page.locator("#nav-search-results").is_hidden()
    assert page.evaluate("document.activeElement.id") == "nav-search-q"
    page.press("#nav-search-q", "ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_web.url}/hosts/{mine.pk}/")
    page.fill("#nav-search-q", "billing")
    page.press("#nav-search-q", "Enter")
    page.wait_for_url(f"{live_web.url}/search/?q=billing")
    assert page.locator("section[data-kind=hosts] .search-hit").all_inner_texts() == ["billing-1"]
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: the results stay on screen
    page.fill("#nav-search-q", "bil")
    page.locator("#nav-search-results .search-hit").first.wait_for()
    box = page.locator("#nav-search-results").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert errors == [], errors


def test_the_jobs_list_says_canceled_without_a_reload(page, live_web, live_worker):
    env = factories.environment("staging")
    for name in ("app-1", "app-2"):
        factories.host(env, name, transport=Transport.LOCAL)
    user = person(env, Role.OPERATOR, "cora")
    job = launch(act(user), env, "sleep 600")
    wait_job(job, JobState.RUNNING)
    errors = _watch_errors(page)
    sign_in(page, live_web.url, "cora")
    page.goto(f"{live_web.url}/jobs/")
    page.wait_for_selector("body[data-live=live]")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_timeout(300)  # the subscription is sent right after the socket opens
    jobs_launch.request_cancel(act(user), job)
    row = page.locator(f"#jobs tr[data-job='{job.pk}']")
    row.locator(".badge[data-state=canceled]").wait_for(timeout=30000)
    wait_until(lambda: "canceled" in row.locator(".js-progress").inner_text(), 15, "canceled counts")
    assert row.locator(".js-progress").inner_text() == "0 ok, 0 failed, 2 canceled of 2"
    assert row.locator(".count-canceled.some").count() == 1
    assert page.evaluate("window.__notReloaded === true") and errors == [], errors


def test_a_single_sample_gives_a_short_time_axis_and_a_long_legend_no_sideways_scroll(page, live_web):
    env = factories.environment("staging")
    host = factories.host(env, "web-1")
    person(env, Role.VIEWER, "vera")
    at = int(time.time()) - 120
    series_values(host, "cpu_percent", [12], start=at)
    for i in range(8):
        series_values(host, "disk_percent", [10 + i], start=at, mount=f"/srv/a-rather-long-mount-point-name-{i}")
    errors = _watch_errors(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live_web.url, "vera")
    page.goto(f"{live_web.url}/hosts/{host.pk}/")
    page.wait_for_selector("#host-charts figure[data-metric=cpu_percent] .uplot")
    page.wait_for_selector("#host-charts figure[data-metric=disk_percent] .uplot")
    x = page.evaluate("(() => { const s = document.querySelector('#host-charts figure[data-metric=cpu_percent]')"
                      ".plot.scales.x; return [s.min, s.max]; })()")
    assert x[0] == at and 600 <= x[1] - x[0] <= 3600, x  # from the sample on, minutes not years
    labels = page.locator("#host-charts figure[data-metric=cpu_percent] .u-axis").first.inner_text()
    assert "2027" not in labels and "2028" not in labels
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    button = page.locator(".chart-ranges [data-range='86400']")
    assert button.evaluate("b => getComputedStyle(b).borderTopWidth") != "0px"  # a visible button, not a word
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    assert errors == [], errors


def test_the_dashboard_draws_fleet_charts_and_an_environment_can_be_chosen(page, live_web):
    alpha, beta = factories.environment("alpha"), factories.environment("beta")
    at = int(time.time()) - 900
    for env, value in ((alpha, 20), (beta, 80)):
        series_values(factories.host(env, f"{env.name}-1"), "cpu_percent", [value], start=at)
    metrics.rollup()  # the fleet charts draw what the rollup task has rolled up
    person(None, Role.VIEWER, "ada")
    errors = _watch_errors(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live_web.url, "ada")
    page.wait_for_selector("#fleet-charts figure[data-metric=cpu_percent] .uplot")
    assert "nothing in this range yet" in page.locator("#fleet-charts figure[data-metric=mem_percent]").inner_text()
    page.select_option(".js-chart-environment", "beta")
    page.wait_for_url(f"{live_web.url}/?range=24h&environment=beta")
    page.wait_for_selector("#fleet-charts figure[data-metric=cpu_percent] .uplot")
    assert page.locator("#fleet-title").inner_text() == "Environment beta over the last 24h"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    assert errors == [], errors
