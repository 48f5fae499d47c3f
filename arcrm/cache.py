"""The shared cache (Redis): a server that does not answer is a miss.

Only what can be read again from the database is cached (sessions, the
signed-in user), so a Redis outage costs speed, not pages: every read that
fails is a miss, every write that fails is skipped, and both are logged.
"""

from __future__ import annotations

import functools
import logging

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError, TimeoutError

log = logging.getLogger(__name__)
_UNREACHABLE = (ConnectionError, TimeoutError)


class _ReusedClient(RedisCacheClient):
    """Django makes a new redis.Redis, with its table of ~170 reply parsers,
    for every command; a client per connection pool is as safe (redis-py's
    clients share nothing but the pool) and a third of a cache read's cost."""

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        if (client := clients.get(id(pool))) is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client


def _forgiving(name: str, what: str, answer=None, *, level: int = logging.WARNING):
    """RedisCache's method `name`, answering `answer` (a callable of the call's
    arguments, or a value) when Redis does not answer."""
    method = getattr(RedisCache, name)

    @functools.wraps(method)
    def forgiving(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _UNREACHABLE as error:
            log.log(level, "cache %s skipped, Redis did not answer: %s", what, error)
            return answer(*args, **kwargs) if callable(answer) else answer

    return forgiving


class ForgivingRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusedClient

    get = _forgiving("get", "read", lambda key, default=None, version=None: default)
    get_many = _forgiving("get_many", "read", lambda *args, **kwargs: {})
    has_key = _forgiving("has_key", "read", False)
    set = _forgiving("set", "write")
    set_many = _forgiving("set_many", "write", lambda data, *args, **kwargs: list(data))
    add = _forgiving("add", "write", False)
    touch = _forgiving("touch", "write", False)
    # An entry that could not be dropped is stale until it expires
    # (AUTH_CACHE_SECONDS for a user): worth an error, not a warning.
    delete = _forgiving("delete", "delete", False, level=logging.ERROR)
    delete_many = _forgiving("delete_many", "delete", level=logging.ERROR)
