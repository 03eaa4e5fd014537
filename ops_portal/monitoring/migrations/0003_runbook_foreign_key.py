"""The runbook becomes a foreign key to jobs.JobTemplate (it was a bare id). An id that names no
template of the rule's environment any more is dropped rather than copied."""
import django.db.models.deletion
from django.db import migrations, models


def copy_ids(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    JobTemplate = apps.get_model("jobs", "JobTemplate")
    for rule in AlertRule.objects.exclude(runbook_template_id=None).only("pk", "environment_id",
                                                                       "runbook_template_id"):
        if JobTemplate.objects.filter(pk=rule.runbook_template_id, environment_id=rule.environment_id).exists():
            AlertRule.objects.filter(pk=rule.pk).update(runbook_id=rule.runbook_template_id)


def copy_back(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    for rule in AlertRule.objects.exclude(runbook=None).only("pk", "runbook_id"):
        AlertRule.objects.filter(pk=rule.pk).update(runbook_template_id=rule.runbook_id)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0004_move_template_secrets_out_of_params"),
        ("monitoring", "0002_time_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="alertrule",
            name="runbook",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="alert_rules", to="jobs.jobtemplate"),
        ),
        migrations.RunPython(copy_ids, copy_back),
        migrations.RemoveField(model_name="alertrule", name="runbook_template_id"),
    ]
