"""Cases for the generated authorization matrix, one per registered API endpoint.

Every viewset registered on the API router must have a case here (test_every_endpoint_has_a_case
fails otherwise), so new endpoints join the matrix as they are added. A case says how to make one
object in an environment, what to POST and PATCH, and which action writes need.
"""
from datetime import timedelta

from django.utils import timezone

from ops_portal.accounts.choices import Action, Role
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
    updatable = False

    def make(self, environment, owner=None):
        return factories.binding(role=Role.VIEWER, user=factories.user(), environment=environment)

    def create_payload(self, environment):
        return {"user": factories.user().username, "role": Role.OPERATOR, "environment": environment.name}


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
         CredentialCase(), HostGroupCase(), HostCase(), ArtifactCase(),
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
