"""The beat scheduler: django-celery-beat's DatabaseScheduler, with the first change counted.

Upstream decides whether the schedule changed by comparing the change table's timestamp with the
one it saw last, or with itself when it saw none. A schedule saved while the table had no row yet
(a new database, or one just emptied) therefore stayed unseen until something else changed: an
interval schedule never fired. Here a timestamp that appears where there was none is a change. It
costs one extra read of the schedule after start, when the table already had its row.
"""

from django_celery_beat.schedulers import DatabaseScheduler


class Scheduler(DatabaseScheduler):
    def schedule_changed(self):
        had_none = self._last_timestamp is None
        changed = super().schedule_changed()
        return changed or (had_none and self._last_timestamp is not None)
