"""The container pages: what viewers, operators and administrators see and may do; bad input shown
on the page; privileged specs refused on the page as in the API."""
import json

import pytest
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.containers.models import AllowedHostPath, Engine, Stack
from ops_portal.jobs.models import Job
from tests.containers.helpers import container, engine, person, service

pytestmark = pytest.mark.django_db
COMPOSE = "services:\n  web:\n    image: web:v1\n    deploy:\n      replicas: 2\n"


@pytest.fixture
def world(env):
    local = engine(env, url="unix:///run/ct-pages.sock", swarm_role="manager", state="ok", version="20.10.24",
                   api_version="1.41")
    return {"engine": local, "container": container(local, "web-1", labels={"team": "shop"}),
            "service": service(local, "shop_web", stack="shop", replicas_running=2, replicas_desired=2,
                               publish_mode="host", endpoint_mode="dnsrr",
                               endpoints=[{"address": "127.0.0.1", "port": 30001, "protocol": "tcp", "target": 8080,
                                           "slot": 1}],
                               spec={"name": "shop_web", "image": "web:v1", "replicas": 2})}


def login(client, env, role):
    user = person(env, role)
    client.force_login(user)
    return user


def test_viewers_see_every_page_without_forms_that_change_things(client, env, world):
    login(client, env, Role.VIEWER)
    stack = Stack.objects.create(engine=world["engine"], name="shop", compose=COMPOSE)
    pages = [reverse("containers:home"), reverse("containers:container", args=[world["container"].pk]),
             reverse("containers:services"), reverse("containers:service", args=[world["service"].pk]),
             reverse("containers:stacks"), reverse("containers:stack", args=[stack.pk]),
             reverse("containers:engines"), reverse("containers:engine", args=[world["engine"].pk]),
             reverse("containers:allowed_paths")]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'name="form" value="remove"' not in response.content, url
    home = client.get(reverse("containers:home")).content.decode()
    assert "web-1" in home and "Up" in home and 'name="ids"' not in home
    page = client.get(reverse("containers:service", args=[world["service"].pk])).content.decode()
    assert "host mode" in page and "DNS round robin" in page and "127.0.0.1:30001" in page


def test_filters_and_search_narrow_the_containers(client, env, world):
    login(client, env, Role.VIEWER)
    container(world["engine"], "db-1", state="exited", labels={"team": "data"})
    page = client.get(reverse("containers:home"), {"state": "exited"}).content.decode()
    assert "db-1" in page and "web-1" not in page
    page = client.get(reverse("containers:home"), {"label": "team=shop"}).content.decode()
    assert "web-1" in page and "db-1" not in page
    page = client.get(reverse("containers:home"), {"search": "db"}).content.decode()
    assert "db-1" in page and "web-1" not in page


def test_an_operator_launches_bulk_and_single_container_jobs_from_the_pages(client, env, world):
    login(client, env, Role.OPERATOR)
    other = container(world["engine"], "web-2")
    response = client.post(reverse("containers:home"), {"operation": "restart",
                                                         "ids": [world["container"].pk, other.pk]})
    job = Job.objects.get(action="container.restart")
    assert response.status_code == 302 and response.url == reverse("jobs:detail", args=[job.pk])
    assert sorted(job.targets.values_list("name", flat=True)) == ["local/web-1", "local/web-2"]
    response = client.post(reverse("containers:container", args=[world["container"].pk]),
                           {"form": "exec", "exec-argv": "ls\n-l\n/", "exec-user": ""})
    job = Job.objects.get(action="container.exec")
    assert json.loads(job.params["argv"]) == ["ls", "-l", "/"]


def test_a_bad_spec_shows_field_errors_and_a_privileged_one_is_refused_on_the_page(client, env, world):
    login(client, env, Role.OPERATOR)
    bad = {"engine": world["engine"].pk, "spec": json.dumps({"name": "x", "image": "Bad Image", "replicas": -1})}
    page = client.post(reverse("containers:services"), bad).content.decode()
    assert "spec.image: " in page and "spec.replicas: " in page and "errorlist" in page
    rooted = {"engine": world["engine"].pk, "spec": json.dumps({
        "name": "rooted", "image": "web:v1", "mounts": [{"type": "bind", "source": "/etc", "target": "/x"}]})}
    page = client.post(reverse("containers:services"), rooted, follow=True).content.decode()
    assert "Only administrators of ct" in page and "bind-mounts the host path /etc" in page
    assert not Job.objects.exists()


def test_stacks_are_saved_with_compose_errors_shown_and_their_diff_before_a_deploy(client, env, world):
    login(client, env, Role.OPERATOR)
    page = client.post(reverse("containers:stacks"), {"name": "shop", "engine": world["engine"].pk,
                                                      "compose": "services:\n  web:\n    privileged: true\n"})
    assert page.status_code == 200 and "compose.services.web.privileged: " in page.content.decode()
    assert not Stack.objects.exists()
    response = client.post(reverse("containers:stacks"), {"name": "shop", "engine": world["engine"].pk,
                                                          "compose": COMPOSE.replace("replicas: 2", "replicas: 3")})
    stack = Stack.objects.get(name="shop")
    page = client.get(response.url).content.decode()
    assert "replicas: 2 -&gt; 3" in page or "replicas: 2 -> 3" in page.replace("&gt;", ">"), page
    client.post(reverse("containers:stack", args=[stack.pk]), {"form": "deploy", "prune": "on"})
    job = Job.objects.get(action="stack.deploy")
    assert job.params["stack"] == stack.pk and len(job.params["compose_hash"]) == 64


def test_administrators_register_engines_and_allowed_paths_with_errors_shown(client, env, world, tmp_path):
    login(client, env, Role.ADMIN)
    page = client.post(reverse("containers:engines"), {"name": "remote", "environment": env.pk, "transport": "tcp",
                                                       "url": "tcp://10.0.0.9:2376", "tls_verify": "on",
                                                       "enabled": "on"})
    assert "errorlist" in page.content.decode() and not Engine.objects.filter(name="remote").exists()
    page = client.post(reverse("containers:engines"), {"name": "mine", "environment": env.pk, "transport": "unix",
                                                       "url": "unix:///var/run/docker.sock", "enabled": "on"},
                       follow=True)
    assert "Only administrators of all environments" in page.content.decode()
    client.post(reverse("containers:allowed_paths"), {"form": "add", "environment": env.pk, "path": "/srv/data"})
    assert AllowedHostPath.objects.filter(environment=env, path="/srv/data").exists()
    page = client.post(reverse("containers:allowed_paths"), {"form": "add", "environment": env.pk,
                                                             "path": "/srv/../etc"})
    assert "errorlist" in page.content.decode()
