# State alert rules: a rule kind, a name filter, metric and threshold only for metric rules, and
# the evaluation's record of when it first saw a subject failing.

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0006_alert_subject'),
    ]

    operations = [
        migrations.AddField(
            model_name='alertrule',
            name='kind',
            field=models.CharField(choices=[('metric', 'Host metric'), ('container_not_running', 'Container not running'), ('service_short', 'Service short of tasks'), ('program_not_running', 'Program not running')], default='metric', max_length=32),
        ),
        migrations.AddField(
            model_name='alertrule',
            name='name_filter',
            field=models.CharField(blank=True, help_text='State rules: only objects whose name matches this glob, e.g. web-* (empty: all).', max_length=255, validators=[django.core.validators.RegexValidator('^[^\\x00-\\x1f]{1,255}\\Z', 'Enter a name or a glob such as web-* on one line.')]),
        ),
        migrations.AlterField(
            model_name='alertrule',
            name='metric',
            field=models.CharField(blank=True, choices=[('cpu_percent', 'CPU %'), ('mem_percent', 'Memory %'), ('load1', 'Load (1 min)'), ('disk_percent', 'Disk % (per mount)'), ('reachable', 'Reachable (1 or 0)')], max_length=16),
        ),
        migrations.AlterField(
            model_name='alertrule',
            name='threshold',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='PendingState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('subject_kind', models.CharField(choices=[('host', 'Host'), ('container', 'Container'), ('service', 'Swarm service'), ('program', 'Program')], max_length=16)),
                ('subject_id', models.PositiveBigIntegerField()),
                ('since', models.DateTimeField()),
                ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='monitoring.alertrule')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('rule', 'subject_kind', 'subject_id'), name='pendingstate_unique_subject')],
            },
        ),
    ]
