"""The shared cache (Redis): a server that does not answer is a miss.

Only what can be read again from the database is cached (the signed-in user),
so a Redis outage, or a Redis that answers with an error (full, read-only
after a failover), costs speed, not pages: every read that fails is a miss,
every entry that cannot be added is skipped, and both are logged. Marking an
entry stale is not forgiven (arcrm/authcache.py: the change fails instead), nor
is deleting one: a stale entry left behind could answer for it.
"""

from __future__ import annotations

import functools
import logging

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class _ReusedClient(RedisCacheClient):
    """Django makes a new redis.Redis, with its table of ~170 reply parsers,
    for every command; a client per connection pool is as safe (redis-py's
    clients share nothing but the pool) and a third of a cache read's cost."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}  # by id of the connection pool, which lives as long

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        if (client := self._clients.get(id(pool))) is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


def _forgiving(name: str, what: str, answer=None):
    """RedisCache's method `name`, answering `answer` (a callable of the call's
    arguments, or a value) when Redis fails."""
    method = getattr(RedisCache, name)

    @functools.wraps(method)
    def forgiving(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RedisError as error:
            log.warning("cache %s skipped, Redis failed: %s: %s", what, type(error).__name__, error)
            return answer(*args, **kwargs) if callable(answer) else answer

    return forgiving


class ForgivingRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusedClient

    # Reads and adding an entry where there is none. set, set_many, delete and
    # delete_many raise: they are how stale entries are replaced or dropped.
    get = _forgiving("get", "read", lambda key, default=None, version=None: default)
    get_many = _forgiving("get_many", "read", lambda *args, **kwargs: {})
    has_key = _forgiving("has_key", "read", False)
    add = _forgiving("add", "write", False)
