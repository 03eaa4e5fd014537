"""Values of template parameters typed `secret` were stored in clear in jobs' and schedules'
parameters (and the approval plans that copy them): move them to the encrypted columns."""
import json

from django.db import migrations

MARK = "<secret>"


def _secrets(row):
    return json.loads(row.secret_params) if row.secret_params else {}


def forwards(apps, schema_editor):
    JobTemplate = apps.get_model("jobs", "JobTemplate")  # noqa: N806 (historical models)
    Job = apps.get_model("jobs", "Job")  # noqa: N806
    JobSchedule = apps.get_model("jobs", "JobSchedule")  # noqa: N806
    ApprovalRequest = apps.get_model("approvals", "ApprovalRequest")  # noqa: N806

    def scrub_plans(subject_type, subject_id, names):
        for request in ApprovalRequest.objects.filter(subject_type=subject_type, subject_id=subject_id):
            shown = request.plan.get("params")
            if isinstance(shown, dict) and set(shown) & names:
                request.plan = {**request.plan, "params": {k: (MARK if k in names else v) for k, v in shown.items()}}
                request.save(update_fields=["plan"])

    for template in JobTemplate.objects.all():
        names = {d["name"] for d in template.parameters or [] if d.get("type") == "secret"}
        if not names:
            continue
        for job in Job.objects.filter(template=template).iterator(chunk_size=500):
            leaked = {k: v for k, v in job.params.items() if k in names and v != MARK}
            if leaked:
                job.secret_params = json.dumps({**_secrets(job), **leaked})
                job.params = {**job.params, **{k: MARK for k in leaked}}
                job.save(update_fields=["params", "secret_params"])
                scrub_plans("job", job.pk, names)
        for schedule in JobSchedule.objects.filter(template=template):
            leaked = {k: v for k, v in schedule.params.items() if k in names}
            if leaked:
                schedule.secret_params = json.dumps({**_secrets(schedule), **leaked})
                schedule.params = {k: v for k, v in schedule.params.items() if k not in names}
                schedule.save(update_fields=["params", "secret_params"])
                scrub_plans("schedule", schedule.pk, names)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0003_shaped_by"),
        ("approvals", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
