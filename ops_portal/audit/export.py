"""Streaming export of audit rows as CSV or JSON lines."""
import csv
import io
import json

COLUMNS = ["id", "time", "actor_id", "actor_name", "action", "object_type", "object_id", "object_repr",
           "environment_name", "source", "request_id", "client_address", "before", "after", "extra"]


def _row(event):
    return {
        "id": event.pk,
        "time": event.time.isoformat(),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "environment_name": event.environment_name,
        "source": event.source,
        "request_id": event.request_id,
        "client_address": event.client_address,
        "before": event.before,
        "after": event.after,
        "extra": event.extra,
    }


def iter_jsonl(queryset):
    for event in queryset.iterator(chunk_size=2000):
        yield json.dumps(_row(event), ensure_ascii=False) + "\n"


def iter_csv(queryset):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for event in queryset.iterator(chunk_size=2000):
        row = _row(event)
        for key in ("before", "after", "extra"):
            row[key] = "" if row[key] is None else json.dumps(row[key], ensure_ascii=False)
        writer.writerow(row)
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
