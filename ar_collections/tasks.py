"""Celery tasks: thin wrappers that take plain values and call the domain."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from ar_collections.delivery import (
    actions_deliver,
    actions_sweep_waiting,
    invoices_resend,
    resends_retry,
    run_sweep_planned,
)
from ar_collections.dunning import RunRefused, dunning_run_execute, run_counts, run_finish_if_done
from ar_collections.imports import import_run as imports_run
from ar_collections.imports import imports_sweep
from ar_collections.models import DunningAction, DunningRun
from ar_collections.outbox import mails_send, mails_sweep
from ar_collections.services import behaviour_refresh, submissions_prune
from ar_collections.worklist import worklist_refresh
from ar_collections.workspace import commitments_check, exceptions_lapse

log = logging.getLogger(__name__)

# The database went away mid-task (restarted, failed over, the connection
# killed): the task is handed over again shortly, on a new connection, rather
# than what it had left waiting for the next night's run. Claims and the
# run's constraints make the repeat harmless. 5, 10, 20 … 160 s: an outage of
# about five minutes.
DATABASE_GONE = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5, "retry_jitter": False, "max_retries": 6,
}
# Tasks that send, render or sweep in bounded batches, seconds each: a mail
# server or a letter that hangs holds a worker no longer than
# DELIVERY_TIME_LIMIT (see settings). What they do when it runs out: see
# delivery.actions_deliver and outbox.mails_send; a sweep's transaction rolls
# back and the next sweep does its work.
DELIVERY_TIME = {
    "soft_time_limit": settings.DELIVERY_TIME_LIMIT,
    "time_limit": settings.DELIVERY_TIME_LIMIT + settings.TIME_LIMIT_GRACE,
}


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


@shared_task(name="collections.check_commitments")
def check_commitments(on: str | None = None) -> dict[str, int]:
    """Daily, before the dunning run: promises kept or broken, instalments paid
    or missed, exception requests whose day passed undecided recorded as
    lapsed (and write-offs whose every invoice was settled another way), and
    the worklist items that follow; red-tape re-sends that did not go are
    tried again; the tokens of forms carried out long ago are
    forgotten (services.SUBMISSIONS_KEPT). Safe to repeat."""
    day = dt.date.fromisoformat(on) if on else timezone.localdate()
    counts = commitments_check(on=day)
    counts["exceptions_lapsed"] = exceptions_lapse(on=day)
    counts["work_items"] = worklist_refresh(on=day)
    counts["resends"] = resends_retry(on=day)
    counts["form_tokens_forgotten"] = submissions_prune(now=timezone.now())
    log.info("commitments checked as of %s: %s", day, counts)
    return counts


@shared_task(name="collections.deliver_actions", **DATABASE_GONE, **DELIVERY_TIME)
def deliver_actions(action_ids: list[int], mail_server_down: str = "") -> dict[str, int]:
    """Deliver one batch of planned dunning actions (see delivery.actions_fan_out).

    Ids that are done, taken by another worker or gone are left alone, so a
    message the broker hands out twice sends nothing twice. `mail_server_down`:
    the rest of a batch whose time ran out waiting for the mail server does
    not wait for it again.
    """
    ids = [int(pk) for pk in action_ids]
    counts = actions_deliver(action_ids=ids, mail_server_down=mail_server_down)
    log.info("delivered dunning actions %s: %s", _id_range(action_ids), counts)
    # The batch that delivers a run's last action marks the run finished.
    for run_id in DunningAction.objects.filter(pk__in=ids).values_list("run_id", flat=True).distinct():
        run_finish_if_done(run_id=run_id)
    return counts


@shared_task(name="collections.sweep_planned_actions", **DATABASE_GONE, **DELIVERY_TIME)
def sweep_planned_actions(run_id: int) -> int:
    """Enqueue delivery of every action of a run still PLANNED (finishes a run
    after a crash or a mail outage)."""
    run = DunningRun.objects.filter(pk=run_id).first()
    if run is None:
        log.warning("dunning run %s no longer exists; nothing to sweep", run_id)
        return 0
    return run_sweep_planned(run=run)


@shared_task(name="collections.sweep_waiting_actions", **DATABASE_GONE, **DELIVERY_TIME)
def sweep_waiting_actions() -> int:
    """Every DELIVERY_SWEEP_MINUTES: hand planned steps over again whose message
    was lost or whose mail server said "not now", rather than leave them for
    the next night's run."""
    swept = actions_sweep_waiting()
    if swept:
        log.info("delivery sweep handed %d waiting dunning actions to the workers", swept)
    return swept


def _id_range(ids: list[int]) -> str:
    return f"{min(ids)}…{max(ids)} ({len(ids)})" if ids else "(none)"


# A run whose time ran out (JOB_TIME_LIMIT) is handed over again at once and
# carries on where it stopped: its planning is kept batch by batch. Left to
# the next night, the accounts not planned yet would wait a day, and so would
# the steps already planned, which the delivery sweep hands over only for a
# run planned in full. Six more goes, each with the whole time again.
RUN_CUT_SHORT = {**DATABASE_GONE, "autoretry_for": (*DATABASE_GONE["autoretry_for"], SoftTimeLimitExceeded)}


@shared_task(name="collections.start_dunning_run", **RUN_CUT_SHORT)
def start_dunning_run(run_date: str | None = None, started_by_id: int | None = None) -> int | None:
    """Nightly (and from the managers' page): plan the run for a date and hand
    its actions to the delivery workers. Two beats firing together, or a
    manager and the schedule at once, plan each step only once."""
    day = dt.date.fromisoformat(run_date) if run_date else timezone.localdate()
    try:
        run = dunning_run_execute(run_date=day, started_by=_user(started_by_id))
    except RunRefused as refused:
        log.warning("dunning run for %s refused: %s", day, refused)
        return None
    log.info("dunning run %s planned: %s", day, run_counts(run=run))
    return run.pk


def _user(pk: int | None):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=pk).first() if pk else None


@shared_task(name="collections.resend_overdue_invoices", **DATABASE_GONE, **DELIVERY_TIME)
def resend_overdue_invoices(customer_id: int, on: str) -> str:
    """Red tape: the overdue invoices again, to whoever handles billing today."""
    return invoices_resend(customer_id=customer_id, on=dt.date.fromisoformat(on))


@shared_task(name="collections.send_mail", **DELIVERY_TIME)
def send_mail(mail_ids: list[int]) -> dict[str, int]:
    """Send queued outgoing mails (see outbox): ids already sent, failed or
    taken by another worker are left alone, so a repeat sends nothing twice."""
    counts = mails_send(mail_ids=[int(pk) for pk in mail_ids])
    log.info("outgoing mails %s: %s", _id_range(mail_ids), dict(counts))
    return dict(counts)


@shared_task(name="collections.sweep_queued_mail", **DELIVERY_TIME)
def sweep_queued_mail() -> int:
    """Every few minutes: hand mails still queued to the workers again."""
    return mails_sweep()


@shared_task(name="collections.run_import")
def run_import(import_id: int) -> str:
    """Import an uploaded CSV file of invoices or payments (see imports)."""
    outcome = imports_run(int(import_id))
    log.info("receivables import %s: %s", import_id, outcome)
    return outcome


@shared_task(name="collections.sweep_queued_imports", **DELIVERY_TIME)
def sweep_queued_imports() -> int:
    """Every few minutes: hand uploads whose task was lost to the workers again."""
    return imports_sweep()
