"""Drill-down across levels: a host page names what runs on it with counts and links; a
service's tasks lead to the hosts they run on and their containers; every object page links to
its jobs, audit entries and its host's alerts."""
import re

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.containers.models import Node, Task
from ops_portal.monitoring.models import Alert
from ops_portal.processes.models import Process
from ops_portal.programs.models import Program
from tests import factories
from tests.containers.helpers import container, engine, service
from tests.helpers import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def rig(env):
    host = factories.host(env, "node-1")
    box = engine(env, name="node-1-engine", host=host, swarm_node_id="n" * 25)
    ctr = container(box, "api-1", host=host)
    container(box, "api-2", host=host)
    Program.objects.create(host=host, manager="supervisord", name="worker")
    for pid in (1, 2, 3):
        Process.objects.create(host=host, pid=pid, ppid=0, user="root", name="p", command="p", state="S",
                               start_time=float(pid))
    Alert.objects.create(source="rule", key="k", environment=env, host=host, severity="warning", summary="s",
                         fired_at="2026-01-01T00:00:00Z")
    return host, box, ctr


def _href(page, cls):
    return re.search(rf'<a href="([^"]+)" class="{cls}[" ]', page).group(1).replace("&amp;", "&")


def test_the_host_page_links_one_level_down_with_counts(client, env, rig):
    host, box, _ = rig
    client.force_login(person(env, Role.VIEWER))
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    levels = page[page.index('id="host-levels"'):page.index("</nav>", page.index('id="host-levels"'))]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", levels))
    assert "engine node-1-engine (2 containers)" in text
    assert "2 containers · 1 program · 3 processes · 1 open alert" in text
    assert _href(levels, "js-level-engine") == f"/containers/engines/{box.pk}/"
    listed = client.get(_href(levels, "js-level-containers")).content.decode()
    assert "api-1" in listed and "api-2" in listed
    assert client.get(_href(levels, "js-level-programs")).status_code == 200
    assert _href(levels, "js-level-processes") == f"/processes/hosts/{host.pk}/"


def test_the_container_list_filters_by_host(client, env, rig):
    host, box, _ = rig
    other = factories.host(env, "elsewhere")
    container(box, "lonely", host=other)
    client.force_login(person(env, Role.VIEWER))
    page = client.get("/containers/", {"host": host.pk}).content.decode()
    assert "api-1" in page and "lonely" not in page


def test_a_services_tasks_lead_to_their_hosts_and_containers(client, env, rig):
    host, box, ctr = rig
    svc = service(box, "api")
    Node.objects.create(engine=box, node_id="n" * 25, hostname="node-1.example")
    Task.objects.create(engine=box, task_id="t" * 25, service=svc, slot=1, node_id="n" * 25,
                        container_id=ctr.docker_id, state="running", desired_state="running")
    Task.objects.create(engine=box, task_id="u" * 25, service=svc, slot=2, node_id="m" * 25, state="pending")
    client.force_login(person(env, Role.VIEWER))
    page = client.get(f"/containers/services/{svc.pk}/").content.decode()
    running = page[page.index(f'data-task="{"t" * 25}"'):]
    running = running[:running.index("</tr>")]
    assert f'<a href="/hosts/{host.pk}/"' in running and ">node-1</a>" in running
    assert f'<a href="/containers/{ctr.pk}/"' in running
    unknown = page[page.index(f'data-task="{"u" * 25}"'):]
    assert f'<code>{"m" * 12}</code>' in unknown[:unknown.index("</tr>")]


def test_object_pages_link_to_their_jobs_audit_and_own_alerts(client, env, rig):
    """A container's and a program's alerts are their own; a process's are its host's."""
    host, _, ctr = rig
    program = Program.objects.get()
    process = Process.objects.get(pid=1)
    client.force_login(person(env, Role.VIEWER))
    for url, kind, obj, alerts in ((f"/hosts/{host.pk}/", "host", host, "#host-monitoring"),
                                   (f"/containers/{ctr.pk}/", "container", ctr,
                                    f"/monitoring/?subject_kind=container&subject_id={ctr.pk}"),
                                   (f"/programs/{program.pk}/", "program", program,
                                    f"/monitoring/?subject_kind=program&subject_id={program.pk}"),
                                   (f"/processes/{process.pk}/", "process", process,
                                    f"/hosts/{host.pk}/#host-monitoring")):
        page = client.get(url).content.decode()
        assert _href(page, "js-all-jobs") == f"/jobs/?target_kind={kind}&target_id={obj.pk}", url
        assert _href(page, "js-audit-link") == f"/audit/?object_type={obj._meta.label_lower}&object_id={obj.pk}"
        assert _href(page, "js-alerts-link") == alerts, url
