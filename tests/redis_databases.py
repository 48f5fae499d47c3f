"""Redis for the tests that start Celery workers: a database apart from the
suite's own (REDIS_URL's, where the cache lives), and broker keys under a
prefix of each test's own.

Test runs may share one Redis server (two checkouts, CI beside a developer),
and they count the same databases: what keeps them apart is the prefix. A
test's workers and beats take only the messages under its prefix
(tests/worker_app.py), and the test deletes only the keys under it, never a
whole database another run may be using."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

# Redis has 16 databases unless configured otherwise.
DATABASES = 16
# How far from the suite's own database each test's lies.
CELERY_WORKER, CHAOS, APP_WORKER = 14, 12, 13


def redis_url(offset: int) -> str:
    """REDIS_URL with its database moved `offset` on (skips the test if unset)."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set (`make test` sets it)")
    parts = urlsplit(url)
    own = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(own + offset) % DATABASES}"))


def key_prefix() -> str:
    """A broker key prefix no other test, in this run or another, uses."""
    return f"arcrm-test-{uuid.uuid4().hex[:12]}:"


def transport_options(prefix: str) -> dict:
    """The project's broker transport options, its keys under `prefix`
    (what tests/worker_app.py gives the processes a test starts)."""
    from django.conf import settings

    return {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": prefix}


def worker_env(prefix: str) -> dict[str, str]:
    """What a worker or beat started with `-A tests.worker_app` needs in its environment."""
    return {"TEST_BROKER_KEY_PREFIX": prefix}


def delete_keys(url: str, prefix: str) -> None:
    """Delete the keys under `prefix`: a test's messages, a killed worker's
    unacknowledged ones, its bindings; nothing of anyone else's."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()
