"""The monitoring page, the host page's charts and the live "alerts" stream."""
import pytest
from asgiref.sync import sync_to_async

from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from ops_portal.jobs.templates import create_template
from ops_portal.monitoring import services
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.helpers import act, person
from tests.monitoring.helpers import rule
from tests.wsclient import communicator, receive_until, session_cookie_for


def fire(env, host, key="k", **fields):
    fields.setdefault("severity", "critical")
    fields.setdefault("summary", "web-1: Disk % on /mnt/data is 93")
    return services.fire(Actor.system(), source="rule", key=key, environment=env, host=host, **fields)[0]


@pytest.mark.django_db
def test_a_viewer_sees_open_alerts_and_rules_but_no_acknowledge_button(client, env, host):
    fire(env, host)
    rule(env, name="disk-full", metric="disk_percent", threshold=90, for_seconds=60)
    client.force_login(person(env, Role.VIEWER))
    page = client.get("/monitoring/").content.decode()
    assert "web-1: Disk % on /mnt/data is 93" in page and "disk-full" in page
    assert "disk_percent &gt; 90 for 60s" in page
    assert 'name="note"' not in page
    assert 'href="/monitoring/"' in client.get("/").content.decode()  # in the navigation


@pytest.mark.django_db
def test_open_alerts_come_a_page_at_a_time_most_severe_first(client, env, host):
    import re

    for n in range(205):
        fire(env, host, key=f"w{n}", severity="warning", summary=f"warning-{n}")
    for n in range(3):
        fire(env, host, key=f"c{n}", severity="critical", summary=f"critical-{n}")
    client.force_login(person(env, Role.VIEWER))
    first = client.get("/monitoring/").content.decode()
    table = first.split('id="alerts-open"')[1].split("</table>")[0]
    summaries = re.findall(r"<td>((?:critical|warning)-\d+)</td>", table)
    assert len(summaries) == 100
    assert summaries[:3] == ["critical-2", "critical-1", "critical-0"]  # most severe, then newest
    assert summaries[3] == "warning-204"
    assert 'aria-label="Pages of open alerts"' in first and "page 1 of 3 (208 rows)" in first
    assert 'href="?open=2">next →</a>' in first
    last = client.get("/monitoring/", {"open": 3}).content.decode()
    table = last.split('id="alerts-open"')[1].split("</table>")[0]
    assert re.findall(r"<td>((?:critical|warning)-\d+)</td>", table) == [f"warning-{n}" for n in range(7, -1, -1)]
    assert client.get("/monitoring/", {"open": "x"}).status_code == 200  # a bad page number shows the first


@pytest.mark.django_db
def test_an_operator_acknowledges_on_the_page_and_a_viewer_is_refused(client, env, host):
    alert = fire(env, host)
    viewer = person(env, Role.VIEWER)
    client.force_login(viewer)
    refused = client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/", {"note": "mine"}, follow=True)
    assert "You may not operate" in refused.content.decode()
    operator = person(env, Role.OPERATOR)
    client.force_login(operator)
    page = client.get("/monitoring/").content.decode()
    assert f'action="/monitoring/alerts/{alert.pk}/acknowledge/"' in page
    done = client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/", {"note": "rotating logs"}, follow=True)
    assert f"Alert #{alert.pk} acknowledged." in done.content.decode()
    assert Alert.objects.get(pk=alert.pk).acknowledged_by == operator
    assert "rotating logs" in client.get("/monitoring/").content.decode()


@pytest.mark.django_db
def test_an_alert_offers_its_runbook_template(client, env, host):
    admin = person(env, Role.ADMIN)
    template = create_template(act(admin, source="web"), name="clean-disk", environment=env,
                                    action="host.command", selector={"all": True},
                                    action_params={"command": "rm -f /mnt/data/fill"})
    watched = rule(env, metric="disk_percent", threshold=90, runbook=template)
    services.fire(Actor.system(), source="rule", key="r", environment=env, host=host, rule=watched,
                  severity="critical", summary="full")
    client.force_login(person(env, Role.OPERATOR))
    page = client.get("/monitoring/").content.decode()
    assert f'href="/templates/{template.pk}/launch/">clean-disk</a>' in page


@pytest.mark.django_db
def test_the_host_page_has_charts_and_the_hosts_open_alerts(client, env, host):
    fire(env, host)
    client.force_login(person(env, Role.VIEWER))
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    assert 'id="host-charts"' in page and f'data-host="{host.pk}"' in page and 'data-url="/api/metrics/"' in page
    for metric in ("cpu_percent", "mem_percent", "load1", "disk_percent"):
        assert f'data-metric="{metric}"' in page
    assert "/static/vendor/uplot/uPlot.iife.min.js" in page and "/static/js/charts.js" in page
    assert "<script>" not in page  # the CSP allows no inline script
    assert "web-1: Disk % on /mnt/data is 93" in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_alerts_stream_carries_only_the_users_environments():
    @sync_to_async
    def setup():
        alpha, beta = factories.environment("alpha"), factories.environment("beta")
        user = person(alpha, Role.VIEWER)
        return alpha, beta, factories.host(alpha, "a-1"), factories.host(beta, "b-1"), session_cookie_for(user)

    alpha, beta, mine, theirs, cookie = await setup()
    comm = communicator(cookie)
    connected, _ = await comm.connect()
    assert connected
    await comm.receive_json_from()  # hello
    await comm.send_json_to({"action": "subscribe", "id": "x", "stream": "alerts", "params": {"environment": "beta"}})
    assert (await comm.receive_json_from())["code"] == "forbidden"
    await comm.send_json_to({"action": "subscribe", "id": "a", "stream": "alerts", "params": {}})
    assert (await comm.receive_json_from())["type"] == "subscribed"
    await sync_to_async(fire)(beta, theirs, key="beta", summary="secret")
    await sync_to_async(fire)(alpha, mine, key="alpha", summary="a-1 is on fire")
    seen = await receive_until(comm, lambda m: m.get("type") == "events")
    items = [item for m in seen if m.get("type") == "events" for item in m["items"]]
    assert [(i["summary"], i["state"], i["environment_name"]) for i in items] == [("a-1 is on fire", "firing",
                                                                                  "alpha")]
    await comm.disconnect()
