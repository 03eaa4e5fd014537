"""Stored HTML injection: markup saved in every user-writable text field that pages show must come
back as text. Objects are written straight to the database, so the test holds even for values that
today's validation would refuse: escaping must not depend on validation."""
import re
from datetime import time, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import APIToken, Team
from ops_portal.approvals.models import ApprovalComment, ApprovalDecision, ApprovalPolicy, ApprovalRequest
from ops_portal.audit.services import record
from ops_portal.configs.models import ConfigTemplate, DriftReport
from ops_portal.core.context import Actor
from ops_portal.inventory.models import ComplianceResult
from ops_portal.jobs.models import FreezeWindow, Job, JobEvent, JobSchedule, JobTarget, JobTemplate, MaintenanceWindow
from ops_portal.monitoring.models import Alert, AlertRule
from tests import factories
from tests.helpers import ROOT

pytestmark = pytest.mark.django_db

RAW = re.compile(r"<img\b[^>]*onerror|<script>alert\(X\d\d\)", re.I)


class Payloads:
    """A distinct payload per field: `<img src=x onerror=alert(NAME)>` or a `<script>` block."""

    def __init__(self):
        self.fields = []

    def __call__(self, field, script=False):
        self.fields.append(field)
        mark = f"X{len(self.fields):02d}"
        self.marks = getattr(self, "marks", {})
        self.marks[field] = mark
        return f"<script>alert({mark})</script>" if script else f"<img src=x onerror=alert({mark})>"


@pytest.fixture
def stored():
    p = Payloads()
    env = factories.environment("alpha")
    env.description = p("environment description")
    env.save()
    other = factories.environment("beta")
    owner = factories.superuser("root")
    factories.binding(role=Role.ADMIN, user=owner, environment=None)
    get_user_model().objects.create(username=p("user name")[:150])
    Team.objects.create(name=p("team name")[:64], description=p("team description"))
    APIToken.objects.create(user=owner, name=p("token name"), key_hash="0" * 64, key_prefix="opt_xxxx")
    group = factories.host_group(env, p("group name"), description=p("group description"),
                                 variables={"g": p("group variable")})
    credential = factories.credential(env, p("credential name"))
    host = factories.host(env, p("host name"), address=p("host address"), tags=[p("host tag")],
                          variables={"v": p("host variable"), p("host variable name"): 1},
                          facts={"os": {"pretty_name": p("host fact")}}, last_error=p("host last error"),
                          credential=credential)
    host.groups.set([group])
    ComplianceResult.objects.create(host=host, name=p("compliance check name")[:64], passed=False,
                                    evidence=p("compliance evidence"))
    template = JobTemplate.objects.create(
        name=p("template name"), description=p("template description"), environment=env, action="host.command",
        selector={"names": [host.name]}, action_params={},
        parameters=[{"name": "command", "type": "string", "label": p("parameter label"),
                     "help": p("parameter help", script=True), "default": p("parameter default")},
                    ])
    choice_template = JobTemplate.objects.create(
        name="choices", environment=env, action="host.script", selector={"all": True},
        parameters=[{"name": "interpreter", "type": "choice", "choices": [p("parameter choice")]},
                    {"name": "script", "type": "text", "help": p("text parameter help")}])
    job = Job.objects.create(name=p("job name"), environment=env, action="host.command", template=template,
                             params={"command": p("job parameter")}, error=p("job error"),
                             emergency_reason=p("emergency reason"), waiting_reason=p("waiting reason"),
                             created_by=owner, created_by_name=owner.username, state="failed")
    JobTarget.objects.create(job=job, index=0, kind="host", ref_id=host.pk, name=host.name, state="failed",
                             error=p("target error"))
    JobEvent.objects.create(job=job, seq=1, time=timezone.now(), kind="output", target=0, stream="stdout",
                            text=p("output line", script=True))
    JobSchedule.objects.create(name=p("schedule name"), template=template, params={"command": p("schedule param")},
                               kind="interval", interval_seconds=3600, owner=owner, owner_name=owner.username)
    FreezeWindow.objects.create(environment=env, starts=timezone.now() - timedelta(hours=1),
                                ends=timezone.now() + timedelta(hours=1), reason=p("freeze reason"))
    MaintenanceWindow.objects.create(environment=env, name=p("window name"), weekdays=[0], start_time=time(2),
                                     duration_minutes=60)
    ApprovalPolicy.objects.create(name=p("policy name"), environment=env, all_work=True)
    request = ApprovalRequest.objects.create(
        environment=env, subject_type="job", subject_id=job.pk, title=p("approval title"),
        plan={"name": p("approval plan"), "params": {"command": p("approval plan parameter")}}, plan_hash="0" * 64,
        requested_by_name=p("requester name")[:150], expires_at=timezone.now() + timedelta(hours=1),
        reason=p("approval reason"), policies=[p("approval policy list")])
    ApprovalDecision.objects.create(request=request, user_name="someone", decision="approve",
                                    comment=p("decision comment"))
    ApprovalComment.objects.create(request=request, user_name="someone", text=p("approval comment"))
    rule = AlertRule.objects.create(name=p("alert rule name"), environment=env, metric="cpu_percent", threshold=90,
                                    description=p("alert rule description"))
    Alert.objects.create(rule=rule, source="rule", key="k1", environment=env, host=host, host_name=host.name,
                         severity="warning", summary=p("alert summary"), fired_at=timezone.now(),
                         note=p("alert note"))
    config = ConfigTemplate.objects.create(name=p("config name"), description=p("config description"),
                                           environment=env, selector={"all": True}, path="/etc/app.conf",
                                           content="x={{ v }}\n" + p("config content") + "\n",
                                           service_action=p("config service action"))
    DriftReport.objects.create(config=config, host=host, config_version=1, drifted=True,
                               changes=[p("drift change")], diff=p("drift diff"), error="",
                               checked=timezone.now())
    with transaction.atomic():
        record(Actor(owner.pk, p("audit actor name")[:150], "web"), "host.update", host,
               before={"name": "old"}, after={"name": p("audit after value")}, object_repr=p("audit object repr"))
    return {"p": p, "env": env, "other": other, "owner": owner, "host": host, "template": template,
            "choice_template": choice_template, "job": job, "request": request, "config": config}


def pages(stored):
    host, template, job = stored["host"], stored["template"], stored["job"]
    from ops_portal.audit.models import AuditEvent

    audit = AuditEvent.objects.filter(action="host.update").latest("pk")
    return ["/", "/hosts/", f"/hosts/{host.pk}/", "/compliance/", "/credentials/", "/jobs/", "/jobs/new/",
            f"/jobs/{job.pk}/", "/templates/", f"/templates/{template.pk}/launch/",
            f"/templates/{stored['choice_template'].pk}/launch/", "/schedules/", "/approvals/",
            f"/approvals/{stored['request'].pk}/", "/audit/", f"/audit/{audit.pk}/", "/configs/",
            f"/configs/{stored['config'].pk}/", f"/configs/{stored['config'].pk}/?host={host.pk}", "/monitoring/",
            "/access/", "/account/tokens/", f"/jobs/{job.pk}/live/", "/approvals/waiting/", "/nav/counts/"]


# Fields a person can write through the portal that these pages must show (as text).
MUST_SHOW = {"parameter help", "parameter label", "parameter default", "parameter choice", "text parameter help",
             "template name", "template description", "host name", "host variable", "host tag", "host address",
             "alert rule name", "alert summary", "group name", "environment description", "job parameter",
             "approval comment", "decision comment", "config name", "config content",
             "schedule name", "audit object repr", "team name", "user name", "token name"}


def test_markup_stored_in_user_fields_is_shown_as_text_on_every_page(client, stored):
    client.force_login(stored["owner"])
    shown = set()
    for path in pages(stored):
        response = client.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        found = RAW.search(body)
        assert found is None, f"{path} renders stored markup unescaped: {body[max(0, found.start() - 200):found.end()]}"
        for field, mark in stored["p"].marks.items():
            if f"alert({mark})" in body:
                shown.add(field)
    missing = MUST_SHOW - shown
    assert not missing, f"fields not shown on any page (the test would prove nothing for them): {sorted(missing)}"


def test_the_launch_page_shows_a_parameters_help_as_text(client, stored):
    client.force_login(stored["owner"])
    body = client.get(f"/templates/{stored['template'].pk}/launch/").content.decode()
    mark = stored["p"].marks["parameter help"]
    assert f"&lt;script&gt;alert({mark})&lt;/script&gt;" in body
    assert "<script>alert(" not in body


def test_form_help_texts_are_escaped_by_every_layout():
    from django import forms

    class Form(forms.Form):
        name = forms.CharField(help_text="<b>bold</b> & <i>co</i>")

    form = Form()
    for html in (form.as_div(), form.as_p(), form.as_table(), form.as_ul(), str(form["name"].as_field_group())):
        assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;co&lt;/i&gt;" in html


def test_page_scripts_never_parse_data_as_html():
    """Live updates (job output, alerts, approvals) are drawn by static/js with textContent only."""

    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\.html\(")
    for script in (ROOT / "static" / "js").glob("*.js"):
        assert not sinks.search(script.read_text()), f"{script.name} writes HTML from data"
