"""Indexes on time for retention deletes: BRIN on PostgreSQL (a few pages for millions of rows
appended in time order), a b-tree elsewhere. Not model indexes: Django has no portable BRIN."""
from django.db import migrations

INDEXES = [("monitoring_sample", "monitoring_sample_time_brin"), ("monitoring_rollup", "monitoring_rollup_time_brin")]


def create(apps, schema_editor):
    quote = schema_editor.quote_name
    using = " USING brin" if schema_editor.connection.vendor == "postgresql" else ""
    for table, name in INDEXES:
        schema_editor.execute(f"CREATE INDEX {quote(name)} ON {quote(table)}{using} ({quote('time')})")


def drop(apps, schema_editor):
    for _, name in INDEXES:
        schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
