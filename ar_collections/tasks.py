"""Celery tasks: thin wrappers that take plain values and call the domain."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

from ar_collections.services import behaviour_refresh

log = logging.getLogger(__name__)


@shared_task(name="collections.refresh_payment_behaviour")
def refresh_payment_behaviour(on: str | None = None) -> int:
    """Nightly: recompute every customer's payment behaviour and segment.

    Safe to run twice or concurrently with itself: each batch is an upsert
    under row locks, so a repeat simply recomputes the same figures.
    """
    day = dt.date.fromisoformat(on) if on else timezone.localdate()
    refreshed = behaviour_refresh(on=day)
    log.info("payment behaviour refreshed for %d customers as of %s", refreshed, day)
    return refreshed
