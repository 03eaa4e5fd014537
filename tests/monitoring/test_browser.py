"""Monitoring in a real browser: uPlot charts on the host page, alerts arriving and leaving live."""
import time

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from ops_portal.monitoring import services
from ops_portal.monitoring.models import Alert, AlertRule
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import person
from tests.monitoring.helpers import series_values

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]




def in_thread(func, *args, **kwargs):
    """Run a service in another thread: its on-commit publish uses async_to_sync, which refuses to
    run beside Playwright's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def call():
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def watch_errors(page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def test_the_host_page_draws_cpu_memory_load_and_disk_per_mount(page, live_web):
    env = factories.environment("staging")
    host = factories.host(env, "web-1")
    person(env, Role.VIEWER, "vera")
    start = int(time.time()) - 3600
    for name, values in (("cpu_percent", [10, 50, 30]), ("mem_percent", [40, 41, 42]), ("load1", [0.5, 1.5, 0.7])):
        series_values(host, name, values, start=start, every=1200)
    series_values(host, "disk_percent", [20, 21, 22], start=start, every=1200, mount="/")
    series_values(host, "disk_percent", [60, 80, 90], start=start, every=1200, mount="/mnt/data")
    errors = watch_errors(page)
    sign_in(page, live_web.url, "vera")
    page.goto(f"{live_web.url}/hosts/{host.pk}/")
    page.wait_for_selector("#host-charts figure[data-metric=disk_percent] .uplot")
    assert page.locator("#host-charts .uplot").count() == 4
    legend = page.locator("#host-charts figure[data-metric=disk_percent] .u-legend").inner_text()
    assert "/" in legend and "/mnt/data" in legend
    assert "(raw)" in page.locator("#host-charts figure[data-metric=cpu_percent] .u-title").inner_text()
    page.click(".chart-ranges [data-range='604800']")
    page.wait_for_selector("#host-charts figure[data-metric=cpu_percent] .u-title:has-text('(5m)')")
    assert page.locator("#host-charts .uplot").count() == 4
    assert errors == []


def test_alerts_arrive_are_acknowledged_and_leave_live(page, live_web):
    env = factories.environment("staging")
    host = factories.host(env, "db-1")
    person(env, Role.OPERATOR, "olga")
    errors = watch_errors(page)
    sign_in(page, live_web.url, "olga")
    page.goto(live_web.url + "/monitoring/")
    page.wait_for_selector("body[data-live=live]")
    page.wait_for_timeout(300)  # the subscription is sent right after the socket opens
    alert, _ = in_thread(services.fire, Actor.system(), source="rule", key="k", environment=env, host=host,
                         severity="critical", summary="db-1: Disk % on /var is 97")
    row = page.locator(f"#alerts-open tr[data-alert='{alert.pk}']")
    row.wait_for()
    assert "db-1: Disk % on /var is 97" in row.inner_text() and "Firing" in row.inner_text()
    row.locator("input[name=note]").fill("vacuuming the database")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(f"text=Alert #{alert.pk} acknowledged.")
    assert Alert.objects.get(pk=alert.pk).acknowledged_by_name == "olga"
    page.wait_for_selector("body[data-live=live]")
    page.wait_for_timeout(300)
    in_thread(services.resolve, Actor.system(), alert, resolution="the value is back past the clear threshold")
    page.locator(f"#alerts-open tr[data-alert='{alert.pk}']").wait_for(state="detached")
    assert errors == []


def test_a_subjects_alerts_page_takes_only_that_subjects_alerts_live(page, live_web):
    env = factories.environment("staging")
    host = factories.host(env, "db-1")
    other = factories.host(env, "db-2")
    person(env, Role.VIEWER, "vic")
    errors = watch_errors(page)
    sign_in(page, live_web.url, "vic")
    page.goto(f"{live_web.url}/monitoring/?subject_kind=host&subject_id={host.pk}")
    page.wait_for_selector("body[data-live=live]")
    page.wait_for_timeout(300)  # the subscription is sent right after the socket opens
    elsewhere, _ = in_thread(services.fire, Actor.system(), source="rule", key="b", environment=env, host=other,
                             severity="critical", summary="db-2 is hot")
    mine, _ = in_thread(services.fire, Actor.system(), source="rule", key="a", environment=env, host=host,
                        severity="critical", summary="db-1 is hot")
    page.locator(f"#alerts-open tr[data-alert='{mine.pk}']").wait_for()
    assert page.locator(f"#alerts-open tr[data-alert='{elsewhere.pk}']").count() == 0
    assert "db-2 is hot" not in page.locator("#alerts-open").inner_text()
    assert errors == []


def test_the_rule_form_shows_the_fields_of_the_kind_chosen(page, live_web):
    env = factories.environment("staging")
    person(env, Role.ADMIN, "ada")
    errors = watch_errors(page)
    sign_in(page, live_web.url, "ada")
    page.goto(f"{live_web.url}/monitoring/rules/new/")

    def shown(name):
        return page.locator(f"#id_{name}").is_visible()

    assert shown("metric") and shown("threshold") and shown("group") and not shown("name_filter")
    page.select_option("#id_kind", "container_not_running")
    assert not shown("metric") and not shown("threshold") and not shown("mount") and not shown("group")
    assert shown("name_filter") and shown("for_seconds") and shown("severity")
    page.select_option("#id_kind", "program_not_running")
    assert shown("group") and shown("tag") and shown("name_filter") and not shown("threshold")
    page.fill("#id_name", "programs-down")
    page.select_option("#id_environment", str(env.pk))
    page.fill("#id_name_filter", "web*")
    page.click("#object-form button[type=submit]")
    page.wait_for_selector("#alert-rules")
    assert "program not running named web*" in page.locator("#alert-rules").inner_text()

    # A container metric rule: a metric, a threshold and a name filter; no mount, group or tag.
    page.goto(f"{live_web.url}/monitoring/rules/new/")
    page.select_option("#id_kind", "container_metric")
    assert shown("metric") and shown("threshold") and shown("name_filter")
    assert not shown("mount") and not shown("group") and not shown("tag")
    page.fill("#id_name", "hot-shop")
    page.select_option("#id_environment", str(env.pk))
    page.select_option("#id_metric", "ctr_cpu_percent")
    page.fill("#id_threshold", "90")
    page.fill("#id_name_filter", "shop-*")
    page.click("#object-form button[type=submit]")
    page.wait_for_selector("#alert-rules")
    row = page.locator("#alert-rules tr", has_text="hot-shop").inner_text()
    assert "ctr_cpu_percent of containers named shop-* > 90" in row and "containers named shop-*" in row, row
    # A host metric picked for a container rule is refused on its field, nothing saved.
    page.goto(f"{live_web.url}/monitoring/rules/new/")
    page.select_option("#id_kind", "container_metric")
    page.fill("#id_name", "wrong")
    page.select_option("#id_environment", str(env.pk))
    page.select_option("#id_metric", "load1")
    page.fill("#id_threshold", "4")
    page.click("#object-form button[type=submit]")
    assert "watches one of" in page.locator("#object-form").inner_text()
    assert not AlertRule.objects.filter(name="wrong").exists()

    # A Swarm service metric rule: as a container one (no host group or tag).
    page.goto(f"{live_web.url}/monitoring/rules/new/")
    page.select_option("#id_kind", "service_metric")
    assert shown("metric") and shown("threshold") and shown("name_filter")
    assert not shown("mount") and not shown("group") and not shown("tag")
    # A program metric rule: a metric, a threshold, a name filter and the hosts' group and tag.
    page.select_option("#id_kind", "program_metric")
    assert shown("metric") and shown("threshold") and shown("name_filter") and shown("group") and shown("tag")
    assert not shown("mount")
    page.fill("#id_name", "fat-workers")
    page.select_option("#id_environment", str(env.pk))
    page.select_option("#id_metric", "prog_mem_bytes")
    page.fill("#id_threshold", "536870912")
    page.fill("#id_name_filter", "worker-*")
    page.fill("#id_tag", "db")
    page.click("#object-form button[type=submit]")
    page.wait_for_selector("#alert-rules")
    row = page.locator("#alert-rules tr", has_text="fat-workers").inner_text()
    assert "programs named worker-* on tag db" in row, row
    saved = AlertRule.objects.get(name="fat-workers")
    assert (saved.kind, saved.metric, saved.threshold, saved.tag) == ("program_metric", "prog_mem_bytes",
                                                                      536870912.0, "db")
    assert not errors, errors


def test_a_container_a_swarm_service_and_a_program_page_chart_their_own_samples(page, live_web):
    """Each object's page draws the last hour of its own series (and only its own: a neighbour's
    samples on the same host stay off its charts), with a time axis of minutes, not years."""
    from ops_portal.containers.models import service_metric_key
    from tests.containers.helpers import container, engine, service
    from tests.programs.helpers import program

    env = factories.environment("staging")
    host = factories.host(env, "node-1")
    person(env, Role.VIEWER, "vera")
    local = engine(env, host=host)
    shown, neighbour = container(local, "shop-web", state="running"), container(local, "shop-db", state="running")
    swarm = service(local, "shop", replicas_running=2)
    worker = program(host, "worker", state="running")
    now = int(time.time())
    samples = [(shown.metric_key, "ctr_cpu_percent", [10, 20, 30]), (shown.metric_key, "ctr_rx_rate", [2048, 4096]),
               (neighbour.metric_key, "ctr_cpu_percent", [99]),
               (service_metric_key(swarm.pk), "svc_cpu_percent", [40, 50]),
               (worker.metric_key, "prog_mem_bytes", [2**20, 2 * 2**20])]
    for key, metric, values in samples:
        series_values(host, metric, values, start=now - 60 * len(values), every=60, mount=key)
    errors = watch_errors(page)
    sign_in(page, live_web.url, "vera")
    page.goto(f"{live_web.url}/containers/{shown.pk}/")
    page.wait_for_selector("#container-charts figure[data-series=ctr_cpu_percent] .uplot")
    assert page.locator("#container-charts .uplot").count() == 2  # CPU and network received
    assert "no samples" in page.locator("#container-charts figure[data-series=ctr_mem_bytes]").inner_text()
    span = page.evaluate("() => { const plot = document.querySelector("
                         "'#container-charts figure[data-series=ctr_cpu_percent]').plot; "
                         "return plot.scales.x.max - plot.scales.x.min; }")
    assert 120 <= span <= 3600, span  # minutes, not a span of years
    page.goto(f"{live_web.url}/containers/services/{swarm.pk}/")
    page.wait_for_selector("#service-charts figure[data-series=svc_cpu_percent] .uplot")
    page.goto(f"{live_web.url}/programs/{worker.pk}/")
    page.wait_for_selector("#program-charts figure[data-series=prog_mem_bytes] .uplot")
    assert "no samples" in page.locator("#program-charts figure[data-series=prog_cpu_percent]").inner_text()
    assert errors == []
