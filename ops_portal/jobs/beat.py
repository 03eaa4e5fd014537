"""The beat scheduler: django-celery-beat's DatabaseScheduler, with the first change counted and
database errors survived.

Upstream decides whether the schedule changed by comparing the change table's timestamp with the
one it saw last, or with itself when it saw none. A schedule saved while the table had no row yet
(a new database, or one just emptied) therefore stayed unseen until something else changed: an
interval schedule never fired. Here a timestamp that appears where there was none is a change. It
costs one extra read of the schedule after start, when the table already had its row.

Upstream also lets a database error while it reads the schedule (a deadlock, a restarted or
unreachable PostgreSQL, a dropped connection) escape from `tick`, which ends the beat process:
no schedule fires again until someone restarts it. Here such a tick is logged, the schedule read
last stays in force, and the next tick, a few seconds later, reads it again.
"""
import logging

from django.db import close_old_connections
from django.db.utils import DatabaseError, InterfaceError
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

# Seconds before a tick that met a database error tries again.
RETRY_SECONDS = 5.0


class Scheduler(DatabaseScheduler):
    _reread = False  # a read of the schedule failed: the next tick reads it again

    def schedule_changed(self):
        had_none = self._last_timestamp is None
        changed = super().schedule_changed()
        if self._reread:
            self._reread = False
            return True
        return changed or (had_none and self._last_timestamp is not None)

    def tick(self, *args, **kwargs):
        try:
            return super().tick(*args, **kwargs)
        except (DatabaseError, InterfaceError) as exc:
            # The message only: a database error's text names tables and values, never secrets.
            logger.warning("beat: the database failed while reading or updating the schedule (%s); "
                           "keeping the schedule read last and trying again in %.0f s",
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__, RETRY_SECONDS)
            self._reread = True
            self._heap = None  # rebuilt from the schedule at the next tick
            close_old_connections()  # a connection the error left unusable is not reused
            return min(RETRY_SECONDS, self.max_interval)
