"""Program logs: what counts as an error line, and searching lines by text and time.

Error lines: a line counts as an error when it contains one of the words of ERROR_WORDS (case
insensitive, whole words: "error", "ERROR:", "Traceback" count; "errors_total=0" and "terror" do
not), or, in the systemd journal, when its priority is err (3) or more severe. A program's error
count is taken over the last ERROR_WINDOW lines of its stderr (its journal under systemd, which
keeps both streams together): by each refresh for portal-managed programs, and by every
program.logs job (over the lines that job read).

Time ranges: the journal dates every line, so systemd searches ask journalctl (--since/--until).
supervisord and PM2 log files hold what the program wrote and nothing else: a line can only be
placed in time when the program starts it with a timestamp (ISO 8601 or "YYYY-MM-DD HH:MM:SS",
optionally in brackets); lines without one take the time of the line before. When no line carries
a timestamp, the range cannot be applied and the search says so.
"""
import re
from datetime import UTC, datetime

ERROR_WINDOW = 200
ERROR_WORDS = ("error", "err", "fatal", "critical", "crit", "panic", "exception", "traceback", "segfault",
               "emerg")
_ERROR = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(ERROR_WORDS) + r")(?![A-Za-z0-9_])", re.I)
_STAMP = re.compile(r"^\W{0,2}(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?)(Z|[+-]\d\d:?\d\d)?")
ERR_PRIORITY = 3


def is_error(text, priority=None):
    if isinstance(priority, int) and priority <= ERR_PRIORITY:
        return True
    return bool(_ERROR.search(text or ""))


def count_errors(lines, priorities=None):
    priorities = priorities or [None] * len(lines)
    return sum(1 for text, priority in zip(lines, priorities, strict=False) if is_error(text, priority))


def line_time(text):
    """Unix seconds of the timestamp a line starts with (UTC when it names no offset), or None."""
    match = _STAMP.match(text or "")
    if not match:
        return None
    stamp = match.group(1).replace(",", ".").replace(" ", "T")
    zone = match.group(2) or ""
    if zone == "Z":
        zone = "+00:00"
    elif zone and ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        moment = datetime.fromisoformat(stamp + zone)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def search(lines, *, text="", since=None, until=None):
    """(matching lines, note): lines containing `text` within [since, until] (unix seconds).

    The note says in words when the time range could not be applied (no timestamps in the lines).
    """
    note = ""
    timed = [None] * len(lines)
    if since is not None or until is not None:
        current = None
        for index, line in enumerate(lines):
            current = line_time(line) or current
            timed[index] = current
        if all(moment is None for moment in timed):
            note = ("these lines carry no timestamps of their own, so the time range could not be applied: "
                    "every line read was searched")
    found = []
    needle = text.lower()
    for line, moment in zip(lines, timed, strict=True):
        if needle and needle not in line.lower():
            continue
        if not note and (since is not None or until is not None):
            if moment is None or (since is not None and moment < since) or (until is not None and moment > until):
                continue
        found.append(line)
    return found, note
