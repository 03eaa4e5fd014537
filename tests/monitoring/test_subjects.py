"""Alerts about a subject: a host, or a container, Swarm service or program (their pages list their
own alerts; the alerts page and /api/alerts/ filter by subject)."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core.context import Actor
from ops_portal.monitoring import services
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.containers import helpers as ct
from tests.helpers import person
from tests.programs.helpers import program as make_program

pytestmark = pytest.mark.django_db


def raise_about(env, kind, obj, key=None, host=None, summary=None):
    return services.raise_external("container_crash_loop" if kind != "program" else "program_crash_loop",
                                   key or f"{kind}:{obj.pk}", environment=env, host=host, severity="critical",
                                   summary=summary or f"{obj.name} is in a crash loop",
                                   subject=(kind, obj.pk, obj.name))


def test_an_alert_is_about_its_host_by_default_or_the_subject_it_names(env, host):
    on_host, _ = services.fire(Actor.system(), source="rule", key="k", environment=env, host=host,
                               severity="warning", summary="hot")
    assert (on_host.subject_kind, on_host.subject_id, on_host.subject_name) == ("host", host.pk, "web-1")
    site_wide = services.raise_external("site_queue", "q", environment=env, severity="info", summary="no worker")
    assert (site_wide.subject_kind, site_wide.subject_id, site_wide.subject_name) == ("", None, "")
    ticker = make_program(host, "ticker")
    alert = raise_about(env, "program", ticker, host=host)
    assert (alert.subject_kind, alert.subject_id, alert.subject_name, alert.host_id) == (
        "program", ticker.pk, "ticker", host.pk)
    for subject in [("vm", 1, "x"), ("program", 0, "x"), ("program", "1", "x"), ("program", None, "x")]:
        with pytest.raises(ValueError):
            services.raise_external("program_crash_loop", "bad", environment=env, severity="info", summary="s",
                                    subject=subject)
    assert not Alert.objects.filter(key="bad").exists()


def test_raising_again_moves_the_open_alert_to_the_recreated_object_with_an_audit_row(env):
    engine = ct.engine(env)
    first = ct.container(engine, "web-1")
    alert = raise_about(env, "container", first, key=f"container:{engine.pk}:web-1")
    first_pk = first.pk
    first.delete()
    second = ct.container(engine, "web-1", docker_id="f" * 64)
    again = raise_about(env, "container", second, key=f"container:{engine.pk}:web-1")
    assert again.pk == alert.pk and (again.subject_kind, again.subject_id) == ("container", second.pk)
    update = AuditEvent.objects.get(object_type="monitoring.alert", action="alert.update")
    assert (update.before["subject_id"], update.after["subject_id"]) == (first_pk, second.pk)


def test_the_api_filters_alerts_by_subject_within_the_users_environments(api, env, host):
    engine = ct.engine(env)
    box = ct.container(engine, "box-1")
    svc = ct.service(engine, "api")
    ticker = make_program(host, "ticker")
    raise_about(env, "container", box, summary="box")
    raise_about(env, "service", svc, summary="svc")
    raise_about(env, "program", ticker, host=host, summary="prog")
    services.fire(Actor.system(), source="rule", key="k", environment=env, host=host, severity="warning",
                  summary="hot")
    api.force_authenticate(person(env, Role.VIEWER))

    def summaries(**params):
        response = api.get("/api/alerts/", params)
        assert response.status_code == 200, response.content
        return sorted(row["summary"] for row in response.json()["results"])

    assert summaries() == ["box", "hot", "prog", "svc"]
    assert summaries(subject_kind="container") == ["box"]
    assert summaries(subject_kind="service", subject_id=svc.pk) == ["svc"]
    assert summaries(subject_kind="program", subject_id=ticker.pk) == ["prog"]
    assert summaries(subject_kind="program", subject_id=ticker.pk + 1000) == []
    assert summaries(subject_kind="host", subject_id=host.pk) == ["hot"]
    assert summaries(subject_name="ticker") == ["prog"]
    assert summaries(host=host.pk) == ["hot", "prog"]  # the host filter still means "raised on the host"
    row = api.get("/api/alerts/", {"subject_kind": "program"}).json()["results"][0]
    assert (row["subject_kind"], row["subject_id"], row["subject_name"]) == ("program", ticker.pk, "ticker")
    for params, field in [({"subject_kind": "vm"}, "subject_kind"), ({"subject_id": "abc"}, "subject_id"),
                          ({"subject_id": 0}, "subject_id"), ({"subject_id": 2**64}, "subject_id")]:
        response = api.get("/api/alerts/", params)
        assert response.status_code == 400, (params, response.content)
        assert field in response.json()["error"]["fields"], (params, response.json())
    api.force_authenticate(person(factories.environment("beta"), Role.ADMIN))
    assert summaries(subject_kind="program", subject_id=ticker.pk) == []


def test_the_alerts_page_narrows_to_one_subject_and_says_so(client, env, host):
    engine = ct.engine(env)
    box = ct.container(engine, "box-1")
    other = ct.container(engine, "box-2")
    raise_about(env, "container", box, summary="box one loops")
    raise_about(env, "container", other, summary="box two loops")
    resolved = raise_about(env, "container", box, key="old", summary="box one looped before")
    services.resolve(Actor.system(), resolved, resolution="done")
    client.force_login(person(env, Role.VIEWER))
    page = client.get("/monitoring/", {"subject_kind": "container", "subject_id": box.pk}).content.decode()
    assert "box one loops" in page and "box one looped before" in page and "box two loops" not in page
    assert 'id="alerts-subject"' in page and "box-1" in page
    assert f'data-subject-kind="container" data-subject-id="{box.pk}"' in page
    everything = client.get("/monitoring/").content.decode()
    assert "box one loops" in everything and "box two loops" in everything and 'id="alerts-subject"' not in everything
    bad = client.get("/monitoring/", {"subject_kind": "vm", "subject_id": "x"})
    assert bad.status_code == 200
    text = bad.content.decode()
    assert "Not a subject to filter alerts by" in text and "box two loops" in text


def test_object_pages_show_their_open_alerts_and_link_to_all_of_them(client, env, host):
    engine = ct.engine(env)
    box = ct.container(engine, "box-1", host=host)
    svc = ct.service(engine, "api")
    ticker = make_program(host, "ticker")
    quiet = make_program(host, "quiet")
    raise_about(env, "container", box, summary="box-1 keeps crashing")
    raise_about(env, "service", svc, summary="api lacks tasks")
    raise_about(env, "program", ticker, host=host, summary="ticker keeps crashing")
    gone = raise_about(env, "program", ticker, key="earlier", host=host, summary="ticker crashed last week")
    services.resolve(Actor.system(), gone, resolution="done")
    client.force_login(person(env, Role.OPERATOR))
    for url, kind, obj, shown in [(f"/containers/{box.pk}/", "container", box, "box-1 keeps crashing"),
                                  (f"/containers/services/{svc.pk}/", "service", svc, "api lacks tasks"),
                                  (f"/programs/{ticker.pk}/", "program", ticker, "ticker keeps crashing")]:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert 'id="subject-alerts"' in page and shown in page, url
        assert "crashed last week" not in page  # resolved: on the alerts page only
        link = f"/monitoring/?subject_kind={kind}&amp;subject_id={obj.pk}"
        assert f'href="{link}" class="js-alerts-link"' in page, url  # the object's own, not its host's
        assert 'name="note"' in page  # an operator acknowledges it there
    page = client.get(f"/programs/{quiet.pk}/").content.decode()
    assert "No open alerts." in page and "ticker keeps crashing" not in page


def test_migration_0006_gives_older_alerts_their_subject(env, host):
    """Alerts raised before subjects existed: a crash loop's program or container when it is still
    there, else the host it was raised on, else none."""
    import importlib

    from django.apps import apps

    fill_subjects = importlib.import_module("ops_portal.monitoring.migrations.0006_alert_subject").fill_subjects
    engine = ct.engine(env)
    box = ct.container(engine, "box-1")
    ticker = make_program(host, "ticker")
    made = {
        "program": raise_about(env, "program", ticker, key=f"program:{ticker.pk}", host=host),
        "container": raise_about(env, "container", box, key=f"container:{engine.pk}:box-1", host=host),
        "gone program": raise_about(env, "program", ticker, key="program:999999", host=host),
        "drift": services.raise_external("config_drift", "d", environment=env, host=host, severity="info",
                                         summary="drift"),
        "site": services.raise_external("site_queue", "q", environment=env, severity="info", summary="queue"),
    }
    Alert.objects.update(subject_kind="", subject_id=None, subject_name="")
    fill_subjects(apps, None)
    subjects = {name: Alert.objects.values_list("subject_kind", "subject_id", "subject_name").get(pk=alert.pk)
                for name, alert in made.items()}
    assert subjects == {
        "program": ("program", ticker.pk, "ticker"), "container": ("container", box.pk, "box-1"),
        "gone program": ("host", host.pk, "web-1"), "drift": ("host", host.pk, "web-1"), "site": ("", None, ""),
    }
