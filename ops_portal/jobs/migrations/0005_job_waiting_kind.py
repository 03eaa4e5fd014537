"""Why a queued job waits, as a choice (the dispatcher filtered on the words "held until" and
"frozen until" before); the words stay in waiting_reason for people."""
from django.db import migrations, models

PREFIXES = [("held until", "held"), ("frozen until", "frozen"), ("waiting for lease", "lease"),
            ("waiting: ", "concurrency")]


def classify(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    for prefix, kind in PREFIXES:
        Job.objects.filter(waiting_reason__startswith=prefix).update(waiting_kind=kind)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0004_move_template_secrets_out_of_params")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="waiting_kind",
            field=models.CharField(blank=True, choices=[("", "Not waiting"), ("held", "Held until a maintenance window"),
                                                        ("frozen", "Held by a freeze"),
                                                        ("concurrency", "Too many jobs of its template run"),
                                                        ("lease", "A target is leased by another job")],
                                   default="", max_length=16),
        ),
        migrations.RunPython(classify, migrations.RunPython.noop),
    ]
