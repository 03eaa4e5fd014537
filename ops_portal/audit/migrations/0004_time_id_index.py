from django.conf import settings
from django.db import migrations, models

from ops_portal.core.migration_operations import AddIndexWithoutLocking


class Migration(migrations.Migration):
    # The index is built CONCURRENTLY on PostgreSQL: the audit log takes writes meanwhile.
    atomic = False

    dependencies = [
        ('accounts', '0003_names_refuse_trailing_newline'),
        ('audit', '0003_environment_time_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexWithoutLocking(
            model_name='auditevent',
            index=models.Index(fields=['-time', '-id'], name='audit_time_id'),
        ),
        # (time, id) serves whatever (time) alone did.
        migrations.AlterField(
            model_name='auditevent',
            name='time',
            field=models.DateTimeField(auto_now_add=True),
        ),
    ]
