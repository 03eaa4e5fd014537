"""Cases for the generated authorization matrix, one per registered API endpoint.

Every viewset registered on the API router must have a case here (test_every_endpoint_has_a_case
fails otherwise), so new endpoints join the matrix as they are added. A case says how to make one
object in an environment, what to POST and PATCH, and which action writes need.
"""
from datetime import timedelta

from django.utils import timezone

from ops_portal.accounts.choices import Action, Role
from ops_portal.jobs.templates import create_template
from tests import factories

# Scope kinds: objects living in an environment, global objects (only all-environment bindings
# reach them), and per-user objects (each user sees only their own).
ENVIRONMENT, GLOBAL, OWN = "environment", "global", "own"


class Case:
    basename = ""
    scope = ENVIRONMENT
    write_action = Action.MANAGE
    audit_prefix = ""
    audit_create = None  # the audit action of a create, when not "<prefix>.create"
    writable = True
    creatable = True
    create_format = "json"
    deletable = True
    updatable = True
    # Writes need write_action in every environment, even on an object of one (projects: their
    # files run as code on the portal's machine).
    write_everywhere = False

    def make(self, environment, owner=None):
        raise NotImplementedError

    def create_payload(self, environment):
        raise NotImplementedError

    def update_payload(self, obj):
        raise NotImplementedError


class EnvironmentCase(Case):
    basename = "environment"
    scope = "self"  # an environment is its own scope
    audit_prefix = "environment"

    def make(self, environment, owner=None):
        return environment

    def create_payload(self, environment):
        return {"name": "gamma", "description": "new"}

    def update_payload(self, obj):
        return {"description": "changed"}


class TeamCase(Case):
    basename = "team"
    scope = GLOBAL
    audit_prefix = "team"

    def make(self, environment, owner=None):
        return factories.team()

    def create_payload(self, environment):
        return {"name": "night-shift", "description": "on call"}

    def update_payload(self, obj):
        return {"description": "changed"}


class RoleBindingCase(Case):
    basename = "rolebinding"
    audit_prefix = "rolebinding"

    def make(self, environment, owner=None):
        return factories.binding(role=Role.VIEWER, user=factories.user(), environment=environment)

    def create_payload(self, environment):
        return {"user": factories.user().username, "role": Role.OPERATOR, "environment": environment.name}

    def update_payload(self, obj):
        return {"role": Role.OPERATOR}


class UserCase(Case):
    basename = "user"
    scope = GLOBAL
    audit_prefix = "user"
    deletable = False

    def make(self, environment, owner=None):
        return factories.user()

    def create_payload(self, environment):
        return {"username": "newcomer", "email": "new@example.com"}

    def update_payload(self, obj):
        return {"email": "changed@example.com"}


class TokenCase(Case):
    basename = "apitoken"
    scope = OWN
    audit_prefix = "token"
    updatable = False

    def make(self, environment, owner=None):
        from ops_portal.accounts.models import APIToken, hash_token

        key = APIToken.generate_key()
        return APIToken.objects.create(user=owner or factories.user(), name="t", key_hash=hash_token(key),
                                       key_prefix=key[:10])

    def create_payload(self, environment):
        return {"name": "ci"}


class AuditCase(Case):
    basename = "auditevent"
    writable = False

    def make(self, environment, owner=None):
        from django.db import transaction

        from ops_portal.audit.services import record
        from ops_portal.core.context import Actor

        with transaction.atomic():
            return record(Actor.system(), "audit.export", environment=environment, object_repr="probe")


class CredentialCase(Case):
    basename = "credential"
    audit_prefix = "credential"

    def make(self, environment, owner=None):
        return factories.credential(environment)

    def create_payload(self, environment):
        from tests.keys import ED25519_PRIVATE

        return {"name": "deploy-key", "environment": environment.name, "username": "deploy",
                "private_key": ED25519_PRIVATE}

    def update_payload(self, obj):
        return {"username": "ops"}


class HostGroupCase(Case):
    basename = "hostgroup"
    audit_prefix = "hostgroup"

    def make(self, environment, owner=None):
        return factories.host_group(environment)

    def create_payload(self, environment):
        return {"name": "web", "environment": environment.name, "variables": {"port": 80}}

    def update_payload(self, obj):
        return {"description": "changed"}


class HostCase(Case):
    basename = "host"
    audit_prefix = "host"

    def make(self, environment, owner=None):
        return factories.host(environment)

    def create_payload(self, environment):
        return {"name": "web-01", "address": "127.0.0.1", "port": 2222, "environment": environment.name,
                "tags": ["web"]}

    def update_payload(self, obj):
        return {"tags": ["db"]}


class SiteCase(Case):
    basename = "site"
    scope = GLOBAL
    audit_prefix = "site"

    def make(self, environment, owner=None):
        return factories.site()

    def create_payload(self, environment):
        return {"name": "paris-dc2", "description": "second room"}

    def update_payload(self, obj):
        return {"description": "changed"}


class ArtifactCase(Case):
    basename = "artifact"
    audit_prefix = "artifact"
    updatable = False
    create_format = "multipart"

    @staticmethod
    def archive():
        import io
        import tarfile

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("VERSION")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"1.0"))
        return buffer.getvalue()

    def make(self, environment, owner=None):
        from ops_portal.inventory.models import Artifact

        data = self.archive()
        return Artifact.objects.create(name=f"rel-{environment.name}", environment=environment, data=data,
                                       size=len(data), sha256="x")

    def create_payload(self, environment):
        from django.core.files.uploadedfile import SimpleUploadedFile

        return {"name": "release-1", "environment": environment.name,
                "archive": SimpleUploadedFile("release.tar.gz", self.archive())}


class JobTemplateCase(Case):
    basename = "jobtemplate"
    audit_prefix = "jobtemplate"

    def make(self, environment, owner=None):
        from ops_portal.jobs.models import JobTemplate

        return JobTemplate.objects.create(name=f"tpl-{environment.name}", environment=environment,
                                          action="host.command", selector={"all": True})

    def create_payload(self, environment):
        return {"name": "uptime", "environment": environment.name, "action": "host.command",
                "selector": {"tags": ["web"]}, "action_params": {"command": "uptime"},
                "strategy": {"kind": "rolling", "batch_size": 2}}

    def update_payload(self, obj):
        return {"description": "changed"}


class JobCase(Case):
    basename = "job"
    audit_prefix = "job"
    write_action = Action.OPERATE
    audit_create = "job.launch"
    updatable = False
    deletable = False

    def make(self, environment, owner=None):
        from ops_portal.jobs.models import Job, JobTarget

        job = Job.objects.create(name="probe", environment=environment, action="host.command", plan_hash="x")
        JobTarget.objects.create(job=job, index=0, kind="host", ref_id=0, name="h")
        return job

    def create_payload(self, environment):
        factories.host(environment, f"matrix-{environment.name}")
        return {"environment": environment.name, "action": "host.command", "params": {"command": "true"},
                "selector": {"names": [f"matrix-{environment.name}"]}}


class FreezeWindowCase(Case):
    basename = "freezewindow"
    audit_prefix = "freezewindow"
    updatable = False

    def make(self, environment, owner=None):
        from ops_portal.jobs.models import FreezeWindow

        now = timezone.now()
        return FreezeWindow.objects.create(environment=environment, starts=now, ends=now + timedelta(hours=1),
                                           reason="release")

    def create_payload(self, environment):
        now = timezone.now()
        return {"environment": environment.name, "starts": now.isoformat(),
                "ends": (now + timedelta(hours=2)).isoformat(), "reason": "quarter close"}


class ApprovalPolicyCase(Case):
    basename = "approvalpolicy"
    audit_prefix = "approvalpolicy"

    def make(self, environment, owner=None):
        from ops_portal.approvals.models import ApprovalPolicy

        return ApprovalPolicy.objects.create(name="prod-always", environment=environment, all_work=True)

    def create_payload(self, environment):
        return {"name": "big-blast", "environment": environment.name, "min_targets": 10, "approvals_required": 2}

    def update_payload(self, obj):
        return {"approvals_required": 3}


class ApprovalRequestCase(Case):
    basename = "approvalrequest"
    writable = False

    def make(self, environment, owner=None):
        from ops_portal.approvals.models import ApprovalRequest

        return ApprovalRequest.objects.create(environment=environment, subject_type="job", subject_id=1, title="t",
                                              plan={}, plan_hash="x", expires_at=timezone.now() + timedelta(hours=1))


class MaintenanceWindowCase(Case):
    basename = "maintenancewindow"
    audit_prefix = "maintenancewindow"

    def make(self, environment, owner=None):
        from ops_portal.jobs.models import MaintenanceWindow

        return MaintenanceWindow.objects.create(environment=environment, name="sunday", weekdays=[6],
                                                start_time="02:00", duration_minutes=180)

    def create_payload(self, environment):
        return {"environment": environment.name, "name": "nightly", "weekdays": [0, 1, 2, 3, 4],
                "start_time": "01:00", "duration_minutes": 60, "timezone": "Europe/Berlin"}

    def update_payload(self, obj):
        return {"duration_minutes": 90}


class JobScheduleCase(Case):
    basename = "jobschedule"
    audit_prefix = "jobschedule"

    def make(self, environment, owner=None):
        from ops_portal.jobs.models import JobSchedule

        template = JobTemplateCase().make(environment)
        return JobSchedule.objects.create(name="nightly", template=template, kind="interval", interval_seconds=60)

    def create_payload(self, environment):
        template = JobTemplateCase().make(environment)
        return {"name": "every-5", "template": template.pk, "kind": "cron", "cron": "*/5 * * * *",
                "timezone": "Europe/Berlin", "params": {}}

    def update_payload(self, obj):
        return {"enabled": False}


class SystemScheduleCase(Case):
    basename = "systemschedule"
    scope = GLOBAL
    audit_prefix = "systemschedule"
    creatable = False
    deletable = False

    def make(self, environment, owner=None):
        from django_celery_beat.models import PeriodicTask

        from ops_portal.core.periodic import ensure_builtins

        ensure_builtins()
        return PeriodicTask.objects.get(name="jobs: reap lost jobs")

    def update_payload(self, obj):
        return {"every_seconds": 45}


class NotificationChannelCase(Case):
    basename = "notificationchannel"
    audit_prefix = "notificationchannel"

    def make(self, environment, owner=None):
        from tests.notifications.helpers import channel

        return channel(environment, events=["job.failed"])

    def create_payload(self, environment):
        return {"name": "chatops", "environment": environment.name, "kind": "webhook",
                "url": "https://hooks.example.com/ops?token=abc", "events": ["job.failed", "job.finished"]}

    def update_payload(self, obj):
        return {"events": ["job.succeeded"]}


class DeliveryCase(Case):
    basename = "delivery"
    writable = False

    def make(self, environment, owner=None):
        from tests.notifications.helpers import channel, delivery

        return delivery(channel(environment))


class ConfigTemplateCase(Case):
    basename = "configtemplate"
    audit_prefix = "configtemplate"

    def make(self, environment, owner=None):
        from ops_portal.configs.models import ConfigTemplate

        return ConfigTemplate.objects.create(name=f"app-conf-{environment.name}", environment=environment,
                                             selector={"all": True}, path="/etc/app.conf", content="port={{ port }}\n")

    def create_payload(self, environment):
        return {"name": "motd", "environment": environment.name, "selector": {"tags": ["web"]}, "path": "/etc/motd",
                "content": "Welcome to {{ host.name }}\n", "mode": "0644", "owner": "root", "group": "root"}

    def update_payload(self, obj):
        return {"description": "changed"}


class DriftReportCase(Case):
    basename = "driftreport"
    writable = False

    def make(self, environment, owner=None):
        from ops_portal.configs.models import DriftReport

        config = ConfigTemplateCase().make(environment)
        return DriftReport.objects.create(config=config, host=factories.host(environment), config_version=1,
                                          drifted=True, changes=["content"], checked=timezone.now())


CASES = [EnvironmentCase(), TeamCase(), RoleBindingCase(), UserCase(), TokenCase(), AuditCase(),
         CredentialCase(), HostGroupCase(), HostCase(), SiteCase(), ArtifactCase(),
         JobTemplateCase(), JobCase(), FreezeWindowCase(), MaintenanceWindowCase(), JobScheduleCase(),
         SystemScheduleCase(), ApprovalPolicyCase(), ApprovalRequestCase(),
         NotificationChannelCase(), DeliveryCase(), ConfigTemplateCase(), DriftReportCase()]


class AlertRuleCase(Case):
    basename = "alertrule"
    audit_prefix = "alertrule"

    def make(self, environment, owner=None):
        from ops_portal.monitoring.models import AlertRule

        return AlertRule.objects.create(name=f"cpu-{environment.name}", environment=environment, metric="cpu_percent",
                                        threshold=90)

    def create_payload(self, environment):
        return {"name": "disk-full", "environment": environment.name, "metric": "disk_percent", "threshold": 90,
                "clear_threshold": 80, "for_seconds": 120, "severity": "critical", "mount": "/var"}

    def update_payload(self, obj):
        return {"threshold": 95.0}


class AlertCase(Case):
    basename = "alert"
    writable = False

    def make(self, environment, owner=None):
        from ops_portal.monitoring.models import Alert

        return Alert.objects.create(source="drift", key=f"probe-{environment.name}", environment=environment,
                                    severity="warning", summary="probe", fired_at=timezone.now())


CASES += [AlertRuleCase(), AlertCase()]


class ProcessCase(Case):
    basename = "process"
    writable = False  # read-only; its actions launch jobs (tests/processes/test_api.py)

    def make(self, environment, owner=None):
        from ops_portal.processes import store
        from tests.processes.helpers import proc, snapshot

        host = factories.host(environment)
        store.store_scan(host.pk, snapshot([proc(4242, "nginx")]))
        return host.processes.get()


class ProcessScanCase(Case):
    basename = "processscan"
    writable = False  # read-only; POST scan/ launches a job (tests/processes/test_api.py)

    def make(self, environment, owner=None):
        from ops_portal.processes import store
        from tests.processes.helpers import proc, snapshot

        return store.store_scan(factories.host(environment).pk, snapshot([proc(4242, "nginx")]))


CASES += [ProcessCase(), ProcessScanCase()]


# Programs (supervisord, systemd, PM2) -----------------------------------------------------------

def _program(environment, name="web", **fields):
    from ops_portal.programs.models import Program

    host = factories.host(environment, f"prog-{environment.name}-{factories._seq.__next__()}")
    fields.setdefault("manager", "supervisord")
    return Program.objects.create(host=host, name=name, **fields)


class ProgramCase(Case):
    basename = "program"
    audit_prefix = "program"
    deletable = False  # a program leaves its host through a program.remove job

    def make(self, environment, owner=None):
        return _program(environment)

    def create_payload(self, environment):
        host = factories.host(environment, f"prog-new-{environment.name}")
        return {"host": host.pk, "manager": "supervisord", "name": "worker",
                "spec": {"command": ["/usr/bin/python3", "-m", "http.server", "8000"], "memory_max": 64 * 2**20}}

    def update_payload(self, obj):
        return {"description": "changed"}


class HostManagerCase(Case):
    basename = "hostmanager"
    writable = False

    def make(self, environment, owner=None):
        from ops_portal.programs.models import HostManager

        return HostManager.objects.create(host=factories.host(environment), manager="supervisord", available=True,
                                          version="4.2.5", supports=["start", "stop"])


CASES += [ProgramCase(), HostManagerCase()]


# Escalation: can a user give itself more than it has? ------------------------------------------
#
# Each attempt tries to gain a right through one path (a binding, a team, a host's transport, a
# template or schedule another user's authority runs). `allowed` says for which subjects it may
# succeed: those that already hold what it would give. The test also checks that no attempt,
# allowed or not, widens the subject's own rights.

ALL = None  # "environment": all environments


def _env(world, where):
    return None if where is ALL else getattr(world, where)


def _env_name(world, where):
    return None if where is ALL else getattr(world, where).name


class Escalation:
    name = ""
    needs_local_rule = False  # turns on LOCAL_TARGETS_NEED_GLOBAL_ADMIN (the production default)
    refused_at_request = True  # False: the change itself may be allowed; what it would lead to is not

    def allowed(self, world):
        """May this subject do it? By default: only an administrator of all environments."""
        return world.holds(Role.ADMIN, ALL)

    def setup(self, world):
        """Objects the attempt needs (made directly, not through the API)."""

    def attempt(self, world, api, client):
        """Perform the attack; return the HTTP response of the attacker's last request."""
        raise NotImplementedError

    def succeeded(self, world):
        raise NotImplementedError


class SelfBinding(Escalation):
    """POST /api/role-bindings/ naming yourself."""

    def __init__(self, role, where):
        self.role, self.where = role, where
        self.name = f"bind-self-{role}-{where or 'all'}"

    def allowed(self, world):
        """Granting needs the role itself and the administration of where it is granted (and a
        binding that exists already is not created twice)."""
        return (not world.existing and world.holds(self.role, self.where)
                and world.holds(Role.ADMIN, self.where))

    def matching(self, world):
        from ops_portal.accounts.models import RoleBinding

        return RoleBinding.objects.filter(user=world.user, role=self.role, environment=_env(world, self.where))

    def setup(self, world):
        world.existing = set(self.matching(world).values_list("pk", flat=True))

    def attempt(self, world, api, client):
        from django.urls import reverse

        return api.post(reverse("api:rolebinding-list"), {"user": world.user.username, "role": self.role,
                                                          "environment": _env_name(world, self.where)}, format="json")

    def succeeded(self, world):
        return self.matching(world).exclude(pk__in=world.existing).exists()


class TeamBinding(SelfBinding):
    """POST /api/role-bindings/ naming a team you belong to."""

    def __init__(self, role, where):
        super().__init__(role, where)
        self.name = f"bind-own-team-{role}-{where or 'all'}"

    def matching(self, world):
        from ops_portal.accounts.models import RoleBinding

        return RoleBinding.objects.filter(team=world.team, role=self.role, environment=_env(world, self.where))

    def setup(self, world):
        world.team = factories.team("my-team", members=[world.user])
        super().setup(world)

    def attempt(self, world, api, client):
        from django.urls import reverse

        return api.post(reverse("api:rolebinding-list"), {"team": world.team.name, "role": self.role,
                                                          "environment": _env_name(world, self.where)}, format="json")


class JoinPowerfulTeam(Escalation):
    """PATCH /api/teams/<id>/ adding yourself to a team that is admin of all environments."""

    name = "join-admin-team"

    def setup(self, world):
        world.team = factories.team("root-team", members=[factories.user()])
        factories.binding(role=Role.ADMIN, team=world.team, environment=None)

    def attempt(self, world, api, client):
        from django.urls import reverse

        members = [*world.team.members.values_list("username", flat=True), world.user.username]
        return api.patch(reverse("api:team-detail", args=[world.team.pk]), {"members": members}, format="json")

    def succeeded(self, world):
        return world.team.members.filter(pk=world.user.pk).exists()


class NewTeamWithBinding(Escalation):
    """POST /api/teams/ with yourself as a member, then bind the team admin of all environments."""

    name = "new-team-then-bind"

    def attempt(self, world, api, client):
        from django.urls import reverse

        api.post(reverse("api:team-list"), {"name": "mine", "members": [world.user.username]}, format="json")
        return api.post(reverse("api:rolebinding-list"), {"team": "mine", "role": Role.ADMIN, "environment": None},
                        format="json")

    def succeeded(self, world):
        from ops_portal.accounts.models import RoleBinding

        return RoleBinding.objects.filter(team__name="mine", team__members=world.user).exists()


class MoveBindingEverywhere(Escalation):
    """PATCH a binding of yours from one environment to all of them."""

    name = "move-own-binding-to-all"

    def allowed(self, world):
        """Moving a binding is granting its role where it goes (and where it was): it needs the role
        and the administration of all environments, as creating one there does."""
        return world.holds(Role.VIEWER, ALL) and world.holds(Role.ADMIN, ALL)

    def setup(self, world):
        from ops_portal.accounts.models import RoleBinding

        world.binding, _ = RoleBinding.objects.get_or_create(role=Role.VIEWER, user=world.user,
                                                             environment=world.alpha)

    def attempt(self, world, api, client):
        from django.urls import reverse

        return api.patch(reverse("api:rolebinding-detail", args=[world.binding.pk]), {"environment": None},
                         format="json")

    def succeeded(self, world):
        from ops_portal.accounts.models import RoleBinding

        return RoleBinding.objects.filter(user=world.user, environment=None, role=Role.VIEWER).exists()


class AccessPageBinding(Escalation):
    """The Access page's binding form, naming yourself or your team."""

    def __init__(self, subject, where):
        self.subject, self.where = subject, where
        self.name = f"access-page-{subject}-admin-{where or 'all'}"

    def allowed(self, world):
        return not world.existing and world.holds(Role.ADMIN, self.where)

    def matching(self, world):
        from ops_portal.accounts.models import RoleBinding

        subject = {"user": world.user} if self.subject == "self" else {"team": world.team}
        return RoleBinding.objects.filter(role=Role.ADMIN, environment=_env(world, self.where), **subject)

    def setup(self, world):
        world.team = factories.team("page-team", members=[world.user])
        world.existing = set(self.matching(world).values_list("pk", flat=True))

    def attempt(self, world, api, client):
        environment = _env(world, self.where)
        subject = world.user.username if self.subject == "self" else f"team:{world.team.name}"
        return client.post("/access/", {"form": "binding", "binding-subject": subject, "binding-role": Role.ADMIN,
                                        "binding-environment": environment.pk if environment else ""})

    def succeeded(self, world):
        return self.matching(world).exclude(pk__in=world.existing).exists()


class LocalHost(Escalation):
    """Make a host in alpha the portal's own machine (transport local): create one, switch an SSH
    host to local, or change a local host (its tags decide which templates select it)."""

    def __init__(self, how):
        self.how = how
        self.name = f"local-host-{how}"

    def setup(self, world):
        from ops_portal.inventory.choices import Transport

        if self.how == "switch":
            world.host = factories.host(world.alpha, "web-9")
        elif self.how == "retag":
            world.host = factories.host(world.alpha, "portal", transport=Transport.LOCAL)

    def attempt(self, world, api, client):
        from django.urls import reverse

        if self.how == "create":
            return api.post(reverse("api:host-list"), {"name": "portal-2", "address": "127.0.0.1",
                                                       "transport": "local", "environment": "alpha"}, format="json")
        payload = {"transport": "local"} if self.how == "switch" else {"tags": ["web"]}
        return api.patch(reverse("api:host-detail", args=[world.host.pk]), payload, format="json")

    def succeeded(self, world):
        from ops_portal.inventory.models import Host

        if self.how == "create":
            return Host.objects.filter(name="portal-2").exists()
        host = Host.objects.get(pk=world.host.pk)
        return host.transport == "local" and (self.how == "switch" or host.tags == ["web"])


class OthersSchedule(Escalation):
    """A global admin's schedule runs a template in alpha; the attacker changes the template (to
    select the portal's own machine) or the schedule (the command it passes), then it fires."""

    needs_local_rule = True
    refused_at_request = False  # an environment admin may edit them; the run must refuse

    def __init__(self, what):
        self.what = what
        self.name = f"others-schedule-change-{what}"

    def setup(self, world):
        from ops_portal.core.context import Actor
        from ops_portal.inventory.choices import Transport
        from ops_portal.jobs import schedules
        root = factories.user("root-owner")
        factories.binding(role=Role.ADMIN, user=root, environment=None)
        owner = Actor.for_user(root, source="api")
        factories.host(world.alpha, "portal", transport=Transport.LOCAL)
        factories.host(world.alpha, "web-1")
        if self.what == "template":
            world.template = create_template(
                owner, name="tick", environment=world.alpha, action="host.command",
                selector={"names": ["web-1"]}, action_params={"command": "uptime"})
            params = {}
        else:
            world.template = create_template(
                owner, name="tick", environment=world.alpha, action="host.command", selector={"names": ["portal"]},
                parameters=[{"name": "command", "type": "string"}])
            params = {"command": "uptime"}
        world.schedule = schedules.create_schedule(owner, name="nightly", template=world.template, kind="cron",
                                                   cron="0 3 * * *", params=params)

    def attempt(self, world, api, client):
        from django.urls import reverse

        from ops_portal.jobs import schedules

        if self.what == "template":
            response = api.patch(reverse("api:jobtemplate-detail", args=[world.template.pk]),
                                 {"selector": {"names": ["portal"]}}, format="json")
        else:
            response = api.patch(reverse("api:jobschedule-detail", args=[world.schedule.pk]),
                                 {"params": {"command": "id"}}, format="json")
        world.run = schedules.fire(world.schedule.pk)
        return response

    def succeeded(self, world):
        from ops_portal.jobs.models import Job

        jobs = Job.objects.filter(schedule=world.schedule, targets__name="portal")
        if self.what == "schedule":
            jobs = jobs.filter(params__command="id")
        return jobs.exists()


class LocalProcess(Escalation):
    """Act on a process of the portal's own machine (a local host in alpha): signal it, or scan the
    machine (the portal's secrets live there)."""

    needs_local_rule = True

    def __init__(self, how):
        self.how = how
        self.name = f"local-process-{how}"

    def setup(self, world):
        from ops_portal.inventory.choices import Transport
        from ops_portal.processes import store
        from tests.processes.helpers import proc, snapshot

        world.host = factories.host(world.alpha, "portal", transport=Transport.LOCAL)
        store.store_scan(world.host.pk, snapshot([proc(4242, "celery")]))
        world.process = world.host.processes.get()

    def attempt(self, world, api, client):
        from django.urls import reverse

        if self.how == "scan":
            return api.post(reverse("api:processscan-scan"), {"hosts": [world.host.pk]}, format="json")
        return api.post(reverse(f"api:process-{self.how}", args=[world.process.pk]), {}, format="json")

    def succeeded(self, world):
        from ops_portal.jobs.models import Job

        return Job.objects.filter(targets__name__startswith="portal").exists()


ESCALATIONS = [
    SelfBinding(Role.ADMIN, ALL), SelfBinding(Role.ADMIN, "beta"), SelfBinding(Role.OPERATOR, "alpha"),
    SelfBinding(Role.APPROVER, "beta"),
    TeamBinding(Role.ADMIN, ALL), TeamBinding(Role.ADMIN, "beta"), TeamBinding(Role.OPERATOR, "alpha"),
    JoinPowerfulTeam(), NewTeamWithBinding(), MoveBindingEverywhere(),
    AccessPageBinding("self", ALL), AccessPageBinding("team", ALL), AccessPageBinding("self", "beta"),
    LocalHost("create"), LocalHost("switch"), LocalHost("retag"),
    OthersSchedule("template"), OthersSchedule("schedule"),
    LocalProcess("kill"), LocalProcess("pause"), LocalProcess("scan"),
]


class ProgramConfiguration(Escalation):
    """Operators operate programs; only administrators write a program's configuration to its host
    (program.apply needs manage): through the programs API or as an ad-hoc job."""

    def __init__(self, path):
        self.path = path
        self.name = f"operator-applies-program-via-{path}"

    def allowed(self, world):
        return world.holds(Role.ADMIN, "alpha")

    def setup(self, world):
        from ops_portal.programs.models import HostManager

        world.program = _program(world.alpha, "api", managed=True, spec={"command": ["/bin/sleep", "100"]})
        HostManager.objects.create(host=world.program.host, manager="supervisord", available=True,
                                   supports=["apply", "start", "stop", "remove"])

    def attempt(self, world, api, client):
        import json

        from django.urls import reverse

        if self.path == "programs":
            return api.post(reverse("api:program-apply", args=[world.program.pk]), format="json")
        return api.post(reverse("api:job-list"), {
            "environment": "alpha", "action": "program.apply",
            "params": {"spec": json.dumps({"command": ["/bin/sh", "-c", "id > /tmp/owned"]})},
            "selector": {"kind": "program", "ids": [str(world.program.pk)]}}, format="json")

    def succeeded(self, world):
        from ops_portal.jobs.models import Job

        return Job.objects.filter(action="program.apply").exists()


ESCALATIONS += [ProgramConfiguration("programs"), ProgramConfiguration("jobs")]




# The container level --------------------------------------------------------------------------

COMPOSE = "services:\n  web:\n    image: web:v1\n    deploy:\n      replicas: 2\n"
FAKE_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
FAKE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"


def _engine(environment, manager=True):
    from ops_portal.containers.models import Engine

    engine, _ = Engine.objects.get_or_create(
        name=f"eng-{environment.name}", environment=environment,
        defaults={"url": f"tcp://{environment.name}.example:2376", "transport": "tcp", "tls_cert": FAKE_PEM,
                  "tls_key": FAKE_KEY, "state": "ok", "swarm_role": "manager" if manager else "none"})
    return engine


class EngineCase(Case):
    basename = "engine"
    audit_prefix = "engine"

    def make(self, environment, owner=None):
        return _engine(environment)

    def create_payload(self, environment):
        return {"name": "remote", "environment": environment.name, "transport": "tcp",
                "url": "tcp://127.0.0.1:2376", "tls_cert": FAKE_PEM, "tls_key": FAKE_KEY}

    def update_payload(self, obj):
        return {"enabled": False}


class _Observed(Case):
    writable = False
    fields = {}

    def make(self, environment, owner=None):
        import uuid

        fields = {key: f"{value}{uuid.uuid4().hex}" if key.endswith("_id") else value
                  for key, value in self.fields.items()}
        return self.model().objects.create(engine=_engine(environment), **fields)


class ContainerCase(_Observed):
    basename = "container"
    fields = {"docker_id": "", "name": "web-1", "state": "running"}

    def model(self):
        from ops_portal.containers.models import Container

        return Container


class ServiceCase(_Observed):
    basename = "service"
    fields = {"service_id": "", "name": "shop_web", "mode": "replicated"}

    def model(self):
        from ops_portal.containers.models import Service

        return Service


class ImageCase(_Observed):
    basename = "image"
    fields = {"docker_id": "sha256:", "tags": ["web:v1"]}

    def model(self):
        from ops_portal.containers.models import Image

        return Image


class NetworkCase(_Observed):
    basename = "network"
    fields = {"docker_id": "", "name": "bridge"}

    def model(self):
        from ops_portal.containers.models import Network

        return Network


class VolumeCase(_Observed):
    basename = "volume"
    fields = {"name": "data"}

    def model(self):
        from ops_portal.containers.models import Volume

        return Volume


class NodeCase(_Observed):
    basename = "node"
    fields = {"node_id": "", "hostname": "node-1"}

    def model(self):
        from ops_portal.containers.models import Node

        return Node


class StackCase(Case):
    basename = "stack"
    audit_prefix = "stack"
    write_action = Action.OPERATE

    def make(self, environment, owner=None):
        from ops_portal.containers.models import Stack

        return Stack.objects.create(engine=_engine(environment), name=f"shop-{environment.name}", compose=COMPOSE)

    def create_payload(self, environment):
        return {"name": "shop", "engine": _engine(environment).pk, "compose": COMPOSE}

    def update_payload(self, obj):
        return {"description": "changed"}


class AllowedHostPathCase(Case):
    basename = "allowedhostpath"
    audit_prefix = "allowedhostpath"

    def make(self, environment, owner=None):
        from ops_portal.containers.models import AllowedHostPath

        return AllowedHostPath.objects.create(environment=environment, path=f"/srv/{environment.name}")

    def create_payload(self, environment):
        return {"environment": environment.name, "path": "/srv/app-data", "description": "uploads"}

    def update_payload(self, obj):
        return {"description": "changed"}


CASES += [EngineCase(), ContainerCase(), ServiceCase(), ImageCase(), NetworkCase(), VolumeCase(), NodeCase(),
          StackCase(), AllowedHostPathCase()]


# Autoscaling ------------------------------------------------------------------------------------

class ScalingPolicyCase(Case):
    basename = "scalingpolicy"
    audit_prefix = "scalingpolicy"
    write_action = Action.OPERATE

    def make(self, environment, owner=None):
        from ops_portal.autoscaling.models import ScalingPolicy

        return ScalingPolicy.objects.create(engine=_engine(environment), service_name=f"web-{environment.name}",
                                            target=50.0)

    def create_payload(self, environment):
        return {"engine": _engine(environment).pk, "service_name": "shop_web", "min_replicas": 1, "max_replicas": 4,
                "metric": "cpu", "mode": "target", "target": 60}

    def update_payload(self, obj):
        return {"max_replicas": 8}


class EvaluationCase(Case):
    basename = "evaluation"
    writable = False

    def make(self, environment, owner=None):
        from ops_portal.autoscaling.models import Evaluation

        policy = ScalingPolicyCase().make(environment)
        return Evaluation.objects.create(policy=policy, key=f"slot:{environment.pk}", metric="cpu", value=12.5,
                                         outcome="hold", reason="within the tolerance")


CASES += [ScalingPolicyCase(), EvaluationCase()]


class PrivilegedSpec(Escalation):
    """POST a service, container or stack that is root on the engine's host (a bind mount of /, added
    capabilities, privileged mode): only administrators of the environment may."""

    def __init__(self, what):
        self.what = what
        self.name = f"privileged-{what}"

    def allowed(self, world):
        return world.holds(Role.ADMIN, "alpha")

    def setup(self, world):
        world.engine = _engine(world.alpha)

    def attempt(self, world, api, client):
        from django.urls import reverse

        if self.what == "service-bind-mount":
            return api.post(reverse("api:service-list"), {"engine": world.engine.pk, "spec": {
                "name": "rooted", "image": "web:v1", "mounts": [{"type": "bind", "source": "/", "target": "/host"}]}},
                format="json")
        if self.what == "container-privileged":
            return api.post(reverse("api:container-list"), {"engine": world.engine.pk, "spec": {
                "image": "web:v1", "name": "rooted", "privileged": True}}, format="json")
        return api.post(reverse("api:stack-list"), {"name": "rooted", "engine": world.engine.pk, "compose": (
            "services:\n  web:\n    image: web:v1\n    cap_add: [SYS_ADMIN]\n")}, format="json")

    def succeeded(self, world):
        from ops_portal.containers.models import Stack
        from ops_portal.jobs.models import Job

        return Job.objects.filter(action__in=["service.create", "container.create"]).exists() or \
            Stack.objects.filter(name="rooted").exists()


class AllowedPathElsewhere(Escalation):
    """POST /api/allowed-host-paths/ in beta (which would let beta's operators mount / there)."""

    name = "allowed-host-path-in-other-environment"

    def allowed(self, world):
        return world.holds(Role.ADMIN, "beta")

    def attempt(self, world, api, client):
        from django.urls import reverse

        return api.post(reverse("api:allowedhostpath-list"), {"environment": "beta", "path": "/"}, format="json")

    def succeeded(self, world):
        from ops_portal.containers.models import AllowedHostPath

        return AllowedHostPath.objects.filter(environment=world.beta, path="/").exists()


class LocalEngine(Escalation):
    """Register this machine's Docker socket as an engine of alpha: root on the portal's machine."""

    name = "engine-unix-socket"

    def attempt(self, world, api, client):
        from django.urls import reverse

        return api.post(reverse("api:engine-list"), {"name": "mine", "environment": "alpha", "transport": "unix",
                                                     "url": "unix:///var/run/docker.sock"}, format="json")

    def succeeded(self, world):
        from ops_portal.containers.models import Engine

        return Engine.objects.filter(name="mine").exists()


ESCALATIONS += [PrivilegedSpec("service-bind-mount"), PrivilegedSpec("container-privileged"),
                PrivilegedSpec("stack-cap-add"), AllowedPathElsewhere(), LocalEngine()]


class HealingPolicyCase(Case):
    basename = "healingpolicy"
    audit_prefix = "healingpolicy"

    def make(self, environment, owner=None):
        from ops_portal.healing.models import HealingPolicy

        return HealingPolicy.objects.create(environment=environment, name=f"heal-{environment.name}",
                                            label_selector={"app": "web"})

    def create_payload(self, environment):
        return {"name": "web-crashes", "environment": environment.name, "label_selector": {"app": "web"},
                "action": "recreate", "on_exit": True, "on_unhealthy": True, "max_attempts": 3}

    def update_payload(self, obj):
        return {"max_attempts": 7}


class HealingEventCase(Case):
    basename = "healingevent"
    writable = False

    def make(self, environment, owner=None):
        import uuid

        from ops_portal.healing.models import HealingEvent

        engine = _engine(environment)
        return HealingEvent.objects.create(key=uuid.uuid4().hex, environment=environment, engine=engine,
                                           docker_id=uuid.uuid4().hex, container_name="web-1", trigger="exit",
                                           state="skipped", reason="the container is running again")


CASES += [HealingPolicyCase(), HealingEventCase()]


# Projects ---------------------------------------------------------------------------------------

class ProjectCase(Case):
    basename = "project"
    audit_prefix = "project"
    write_everywhere = True

    def make(self, environment, owner=None):
        from ops_portal.projects.models import Project

        return Project.objects.create(environment=environment, name=f"site-{environment.name}",
                                      url="https://git.example.test/site.git", branch="main")

    def create_payload(self, environment):
        return {"name": "playbooks", "environment": environment.name, "kind": "git",
                "url": "https://git.example.test/playbooks.git", "branch": "main"}

    def update_payload(self, obj):
        return {"description": "changed"}


CASES += [ProjectCase()]
