"""A job's output as text: what the download and the page's "raw" view show."""
from .choices import EventKind
from .models import JobEvent


def format_event(event, names):
    when = event.time.strftime("%H:%M:%S")
    who = names.get(event.target, "") if event.target is not None else ""
    if event.kind == EventKind.OUTPUT:
        marker = "!" if event.stream == "stderr" else " "
        return f"{when} {who}{marker}| {event.text}\n"
    if event.kind == EventKind.TARGET:
        data = event.data or {}
        detail = f" exit={data.get('exit_code')}" if data.get("exit_code") is not None else ""
        error = f" error={data['error']}" if data.get("error") else ""
        return f"{when} {who} ** {data.get('state')}{detail}{error}\n"
    return f"{when} -- {event.text}\n"


def iter_output(job):
    names = dict(job.targets.values_list("index", "name"))
    rows = (JobEvent.objects.filter(job=job).order_by("seq").only("time", "kind", "target", "stream", "text", "data"))
    chunk = []
    for event in rows.iterator(chunk_size=5000):
        chunk.append(format_event(event, names))
        if len(chunk) >= 2000:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)
