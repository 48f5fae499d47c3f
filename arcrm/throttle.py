"""Refusing for a while whoever failed too often: wrong passwords per user
name from one address and per address, wrong API tokens per address.

Failures are counted in Django's cache: Redis when REDIS_URL is set, so every
process of the site counts together; the embedded demo's local-memory cache
counts per process, which for its one process is the same. The count starts
with the first failure and lasts `Limit.seconds`; the failure that reaches
`Limit.attempts` refuses that name or address for `Limit.seconds` from then.

A Redis that fails counts nothing and refuses nothing (logged): an outage
must not lock every user out of the site.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What is counted, each apart: a user name from one address (sign_in_pair), an
# address signing in, an address sending API tokens. A user name alone is not
# counted: anyone could then lock any known user out by typing wrong passwords.
SIGN_IN_PAIR, SIGN_IN_ADDRESS, API_ADDRESS = "sign-in-pair", "sign-in-address", "api-address"
# The keys' start; the tests give each test its own.
KEY_PREFIX = "throttle"


class Limit(NamedTuple):
    attempts: int
    seconds: int


def _keys(scope: str, who: str) -> tuple[str, str]:
    """The failures' count and the refusal's end, under a digest: a user name
    as typed may be long or hold anything."""
    digest = hashlib.sha256(who.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{scope}:{digest}:count", f"{KEY_PREFIX}:{scope}:{digest}:until"


def _round_key(username: str) -> str:
    return f"{KEY_PREFIX}:sign-in-round:{hashlib.sha256(username.encode()).hexdigest()[:32]}"


def sign_in_pair(username: str, address: str) -> str:
    """A user name as typed from one address, as SIGN_IN_PAIR counts it: under
    the name's round, which forget_name moves on to clear the name's count and
    refusal from every address at once (the addresses are not listed
    anywhere). A Redis that fails reads the first round."""
    return json.dumps([username, cache.get(_round_key(username), ""), address])


def forget_name(username: str) -> None:
    """Clear the failures and refusals of `username` from every address. The
    round is kept without end: back to the first, an older count would count
    again."""
    cache.set(_round_key(username), uuid.uuid4().hex, None)


def refused_for(scope: str, who: str) -> int:
    """Seconds left before `who` may try again in `scope`; 0: not refused."""
    until = cache.get(_keys(scope, who)[1])
    return max(0, math.ceil(until - time.time())) if until is not None else 0


def failure_count(scope: str, who: str, limit: Limit) -> bool:
    """Count one failure of `who`; True when it reaches the limit, which
    refuses `who` for `limit.seconds` from now."""
    count_key, until_key = _keys(scope, who)
    try:
        cache.add(count_key, 0, limit.seconds)
        try:
            count = cache.incr(count_key)
        except ValueError:  # the count expired between the two calls
            cache.set(count_key, count := 1, limit.seconds)
        if count < limit.attempts:
            return False
        cache.set(until_key, time.time() + limit.seconds, limit.seconds)
        cache.delete(count_key)
        return True
    except RedisError as error:
        log.warning("failure of %s not counted, Redis failed: %s: %s", scope, type(error).__name__, error)
        return False


def forget(scope: str, who: str, *, forgiving: bool = False) -> None:
    """Clear `who`'s failures and refusal in `scope`. Forgiving (a sign-in
    clearing its name's count), a Redis that fails is logged, not raised: the
    sign-in itself went well."""
    try:
        cache.delete_many(list(_keys(scope, who)))
    except RedisError as error:
        if not forgiving:
            raise
        log.warning("count of %s not cleared, Redis failed: %s: %s", scope, type(error).__name__, error)


def client_address(request: HttpRequest) -> str:
    """The address a request came from: the connection's, or behind the
    proxy the site trusts (BEHIND_TLS_PROXY) the one that proxy saw, which it
    adds last to X-Forwarded-For. Entries before it are whatever the client
    sent: taking one of them would let anyone pick the address counted."""
    if settings.BEHIND_TLS_PROXY:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR", "") or "?"


def as_typed(username: str) -> str:
    """A user name as typed, fit for a log line: cut short, quoted, its
    control characters escaped (no forged second line)."""
    return repr(username[:40] + ("…" if len(username) > 40 else ""))


def minutes(seconds: int) -> str:
    count = max(1, math.ceil(seconds / 60))
    return f"{count} minute{'s' if count != 1 else ''}"
