"""Indexes for the global search (dashboard/search.py) on the tables it reads.

Django's `name__istartswith` is `UPPER(name::text) LIKE UPPER('abc%')` on PostgreSQL; a btree over
that expression with text_pattern_ops answers it without reading every row. The dashboard owns no
tables: the indexes belong to the search, so they live here rather than in each app. SQLite (a
development checkout) has no such index and needs none.
"""
from django.db import migrations

TABLES = ["inventory_host", "containers_container", "containers_service", "programs_program",
          "processes_process", "jobs_job", "jobs_jobtemplate"]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "search_{table}_name" ON "{table}" '
                              f'(UPPER("name"::text) text_pattern_ops)')


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "search_{table}_name"')


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0003_names_refuse_trailing_newline"),
        ("containers", "0003_container_stop_requested_at"),
        ("programs", "0001_initial"),
        ("processes", "0001_initial"),
        ("jobs", "0006_names_refuse_trailing_newline"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
