"""Sessions kept in the database, as Django keeps them, read on every request
by a query compiled once a process (SESSION_ENGINE)."""

from __future__ import annotations

import datetime as dt
import functools

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from arcrm.db import CompiledRead


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self):
        """The session unless it expired, as Django's own store reads it: every
        signed-in request starts here, and building the ORM's query for it
        cost more than running it."""
        rows = _session_read().rows(key=self.session_key, now=timezone.now())
        if not rows:
            self._session_key = None
            return None
        return self.model.from_db("default", ("session_key", "session_data", "expire_date"),
                                  (self.session_key, *rows[0]))


@functools.cache
def _session_read() -> CompiledRead:
    return CompiledRead(
        lambda key, now: Session.objects.filter(session_key=key, expire_date__gt=now)
        .values_list("session_data", "expire_date"),
        key="\x00no session", now=dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
    )
