"""Redis databases of their own for the tests that start Celery workers.

Each such test empties its database before and after it runs, so none may be
the suite's own (REDIS_URL's, where the cache lives) nor another such test's:
they are counted on from the suite's own, so REDIS_URL=…/12 moves them too."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest

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
