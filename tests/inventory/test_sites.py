"""Sites: the API and pages that manage them and place hosts on them, the routing of a job to its
targets' site queue (and the refusal of a job spanning sites), and what a job waiting for a site's
worker says and raises."""
import pytest
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core import heartbeat
from ops_portal.inventory.models import Host, Site
from ops_portal.jobs import live
from ops_portal.jobs.models import Job
from ops_portal.jobs.templates import create_template
from ops_portal.monitoring import site_workers
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.helpers import act, operator, person
from tests.jobs.helpers import launch

pytestmark = pytest.mark.django_db


@pytest.fixture
def placed(env):
    """Hosts a-1, a-2 on site a, b-1 on site b, n-1 on none."""
    a, b = factories.site("a"), factories.site("b")
    for name, site in (("a-1", a), ("a-2", a), ("b-1", b), ("n-1", None)):
        factories.host(env, name, site=site)
    return a, b


def test_a_job_on_one_sites_hosts_is_frozen_on_that_sites_queue(env, placed):
    job = launch(operator(env), env, "uptime", selector={"pattern": "a-*"})
    assert job.queue == "site.a"
    assert AuditEvent.objects.get(action="job.launch", object_id=str(job.pk)).after["queue"] == "site.a"
    assert launch(operator(env), env, "uptime", selector={"names": ["b-1"]}).queue == "site.b"


def test_a_job_on_hosts_of_no_site_goes_to_the_default_queue(env, placed):
    assert launch(operator(env), env, "uptime", selector={"names": ["n-1"]}).queue == "default"


def test_a_job_spanning_sites_is_refused_naming_them_and_nothing_is_stored(env, placed):
    with pytest.raises(ValidationError) as refused:
        launch(operator(env), env, "uptime", selector={"all": True})
    message = refused.value.message_dict["selector"][0]
    assert "2 on site a" in message and "1 on site b" in message and "1 on no site" in message
    with pytest.raises(ValidationError, match="site a.*no site"):
        launch(operator(env), env, "uptime", selector={"names": ["a-1", "n-1"]})
    assert not Job.objects.exists()


def test_the_api_refuses_a_job_spanning_sites_with_a_field_error(api, env, placed):
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post("/api/jobs/", {"environment": env.name, "action": "host.command",
                                       "params": {"command": "uptime"}, "selector": {"all": True}}, format="json")
    assert response.status_code == 400
    assert "site a" in response.json()["error"]["fields"]["selector"][0]
    assert not Job.objects.exists()


def test_programs_follow_the_site_of_their_host(env, placed):
    from ops_portal.core import targets as target_kinds
    from ops_portal.jobs.launch import route
    from tests.programs.helpers import program

    on_a = [program(Host.objects.get(name=name), name="web") for name in ("a-1", "a-2")]
    kind = target_kinds.get("program")
    assert route([kind.entry(p) for p in on_a]) == "site.a"
    on_none = program(Host.objects.get(name="n-1"), name="web")
    assert route([kind.entry(on_none)]) == "default"
    with pytest.raises(ValidationError, match="1 on site a, 1 on no site"):
        route([kind.entry(on_a[0]), kind.entry(on_none)])


def test_containers_services_and_engines_follow_the_site_of_their_engines_host(env, placed):
    from ops_portal.core import targets as target_kinds
    from ops_portal.jobs.launch import route
    from tests.containers.helpers import container, engine, service

    on_b = engine(env, "b-engine", url="tcp://127.0.0.1:2376", host=Host.objects.get(name="b-1"))
    hostless = engine(env, "tcp-engine", url="tcp://127.0.0.1:2377")
    assert route([target_kinds.get("container").entry(container(on_b, "web-1"))]) == "site.b"
    assert route([target_kinds.get("service").entry(service(on_b, "api"))]) == "site.b"
    assert route([target_kinds.get("engine").entry(on_b)]) == "site.b"
    assert route([target_kinds.get("container").entry(container(hostless, "web-2"))]) == "default"


def test_an_engine_without_a_host_is_placed_on_a_site_of_its_own(api, client, env, placed):
    from ops_portal.containers.models import Engine
    from ops_portal.core import targets as target_kinds
    from ops_portal.jobs.launch import route
    from tests.containers.helpers import container, engine

    a, b = placed
    admin = person(None, Role.ADMIN)
    api.force_authenticate(admin)
    hostless = engine(env, "tcp-engine", url="unix:///run/elsewhere.sock")
    response = api.patch(f"/api/engines/{hostless.pk}/", {"site": "a"}, format="json")
    assert response.status_code == 200 and response.json()["site"] == "a", response.content
    assert route([target_kinds.get("container").entry(container(hostless, "web-1"))]) == "site.a"
    assert route([target_kinds.get("engine").entry(Engine.objects.get(pk=hostless.pk))]) == "site.a"
    # An engine on a host follows its host: a site of its own is refused, nothing changes.
    on_b = engine(env, "b-engine", url="tcp://127.0.0.1:2376", host=Host.objects.get(name="b-1"))
    refused = api.patch(f"/api/engines/{on_b.pk}/", {"site": "a"}, format="json")
    assert refused.status_code == 400 and "b-1 is on site b" in str(refused.json()["error"]["fields"]["site"])
    assert Engine.objects.get(pk=on_b.pk).site is None
    # A site an engine is placed on is not removed from under it.
    Host.objects.filter(site=a).update(site=None)
    refused = api.delete(f"/api/sites/{a.pk}/")
    assert refused.status_code == 400 and "tcp-engine" in str(refused.json()), refused.content
    assert Site.objects.filter(pk=a.pk).exists() and not AuditEvent.objects.filter(action="site.delete").exists()
    client.force_login(admin)
    page = client.get(f"/containers/engines/{hostless.pk}/")
    assert page.status_code == 200 and "site.a" in page.content.decode()


def test_the_portals_own_work_launches_one_job_per_environment_and_site(env, envs, placed):
    from ops_portal.jobs.system import launch_everywhere
    from ops_portal.monitoring.tasks import collect_metrics

    factories.host(envs[1], "beta-1", site=placed[0])  # beta: one site only, its selector as given
    for launched in (launch_everywhere("host.facts", name="Inventory refresh"), collect_metrics()):
        jobs = Job.objects.filter(pk__in=launched)
        assert sorted((job.environment.name, job.queue, job.targets_total) for job in jobs) == [
            ("alpha", "default", 1), ("alpha", "site.a", 2), ("alpha", "site.b", 1), ("beta", "site.a", 1)]
    assert launch_everywhere("host.facts", name="Inventory refresh") == []  # the previous ones still queued


def test_the_drift_check_launches_one_job_per_site_of_the_hosts_its_configurations_select(env, placed):
    from ops_portal.configs import services as configs
    from ops_portal.core.choices import Source
    from ops_portal.core.context import Actor
    from tests.configs.helpers import config

    config(env, selector={"names": ["a-1", "b-1", "n-1"]})
    launched = configs.launch_drift_checks(Actor.system(Source.SCHEDULE))
    assert sorted((job.queue, list(job.targets.values_list("name", flat=True))) for job in launched) == [
        ("default", ["n-1"]), ("site.a", ["a-1"]), ("site.b", ["b-1"])]
    assert configs.launch_drift_checks(Actor.system(Source.SCHEDULE)) == []  # the previous ones still queued


def test_a_template_naming_a_queue_keeps_it_whatever_the_site(env, placed):
    actor = act(person(env, Role.ADMIN))
    template = create_template(actor, name="reports", environment=env, action="host.command",
                               selector={"pattern": "a-*"}, action_params={"command": "uptime"}, queue="reports")
    from ops_portal.jobs.launch import launch as launch_template

    assert launch_template(actor, template).queue == "reports"
    template.queue = "default"
    template.save()
    assert launch_template(actor, template).queue == "site.a"


def test_a_job_waiting_for_a_site_without_worker_says_so_and_raises_an_alert_until_one_comes(env, placed):
    for name in heartbeat.takers("site.a"):  # another test's worker that beat without its queues takes every one
        heartbeat.forget("worker", name)
    heartbeat.beat_once("worker", "other@test", queues=["default", "site.b"])
    job = launch(operator(env), env, "uptime", selector={"pattern": "a-*"})
    assert live.why_waiting(job).startswith("No worker for site a: it runs as soon as a worker takes queue site.a")
    assert site_workers.check() == [f"site:a:environment:{env.pk}"]
    alert = Alert.objects.get(source="site_workers")
    assert alert.state == "firing" and "No worker for site a: 1 job waiting" in alert.summary
    assert site_workers.check() == [f"site:a:environment:{env.pk}"]  # idempotent: one alert
    assert Alert.objects.filter(source="site_workers").count() == 1
    heartbeat.beat_once("worker", "near-a@test", queues=["site.a"])
    try:
        assert site_workers.check() == []
        assert Alert.objects.get(pk=alert.pk).state == "resolved"
        assert not live.why_waiting(job).startswith("No worker")
    finally:
        heartbeat.forget("worker", "near-a@test")
        heartbeat.forget("worker", "other@test")
    assert Job.objects.get(pk=job.pk).state == "queued"  # waited, never failed or lost


def test_sites_are_managed_through_the_api_by_administrators_of_all_environments(api, env):
    admin = person(None, Role.ADMIN)
    api.force_authenticate(admin)
    created = api.post("/api/sites/", {"name": "paris", "description": "DC 1"}, format="json")
    assert created.status_code == 201 and created.json()["queue"] == "site.paris"
    for bad in ("Paris", "a b", "x;rm", "-lead", "a" * 41):
        response = api.post("/api/sites/", {"name": bad}, format="json")
        assert response.status_code == 400 and "name" in response.json()["error"]["fields"], bad
    host = api.post("/api/hosts/", {"name": "web-1", "address": "127.0.0.1", "environment": env.name,
                                    "site": "paris"}, format="json")
    assert host.status_code == 201 and host.json()["site"] == "paris"
    factories.host(env, "web-2")
    assert [h["name"] for h in api.get("/api/hosts/?site=paris").json()["results"]] == ["web-1"]
    assert [h["name"] for h in api.get("/api/hosts/?site=-").json()["results"]] == ["web-2"]
    site = Site.objects.get(name="paris")
    refused = api.delete(f"/api/sites/{site.pk}/")
    assert refused.status_code == 400 and "web-1" in str(refused.json())
    assert api.patch(f"/api/hosts/{host.json()['id']}/", {"site": None}, format="json").json()["site"] is None
    assert api.delete(f"/api/sites/{site.pk}/").status_code == 204
    assert list(AuditEvent.objects.filter(action__startswith="site.").values_list("action", flat=True)
                .order_by("pk")) == ["site.create", "site.delete"]


def test_an_environment_administrator_may_not_create_sites(api, env):
    api.force_authenticate(person(env, Role.ADMIN))
    assert api.post("/api/sites/", {"name": "paris"}, format="json").status_code == 403
    assert not Site.objects.exists()


def test_the_pages_add_a_site_place_a_host_on_it_and_filter_the_host_list(client, env):
    client.force_login(person(None, Role.ADMIN))
    response = client.post("/sites/", {"name": "lyon", "description": "second room"})
    assert response.status_code == 302
    site = Site.objects.get(name="lyon")
    host = factories.host(env, "db-1", tags=["db"])
    factories.host(env, "db-2")
    form = {"name": "db-1", "address": "127.0.0.1", "port": 22, "username": "", "transport": "ssh",
            "environment": env.pk, "credential": "", "site": site.pk, "tags": "db"}
    assert client.post(f"/hosts/{host.pk}/edit/", form).status_code == 302
    assert Host.objects.get(pk=host.pk).site == site
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    assert "lyon" in page and "site.lyon" in page
    listed = client.get("/hosts/?site=lyon").content.decode()
    assert "db-1" in listed and "db-2" not in listed
    assert "site.lyon" in client.get("/sites/").content.decode()
    client.post(f"/sites/{site.pk}/delete/")
    assert Site.objects.filter(pk=site.pk).exists()  # a host is still on it
    client.post(f"/sites/{site.pk}/edit/", {"name": "lyon-2", "description": ""})
    assert Site.objects.get(pk=site.pk).name == "lyon-2"


def test_environment_administrators_do_not_get_the_site_pages(client, env):
    site = factories.site("x")
    client.force_login(person(env, Role.ADMIN))
    assert client.post("/sites/", {"name": "y"}).status_code == 403
    assert client.get(f"/sites/{site.pk}/edit/").status_code == 404
    assert list(Site.objects.values_list("name", flat=True)) == ["x"]
