"""Collectors' e-mails go through a queue in the database: the action commits
whatever the mail server does, a worker sends each mail once, a server saying
"not now" gets the mail again later, and a refusal for good is on the timeline."""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import socket
import threading
from decimal import Decimal

import pytest
import redis
import time_machine
from aiosmtpd.controller import Controller
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from ar_collections import outbox, workspace
from ar_collections.models import (
    Call,
    CollectionRules,
    DisputeOutcome,
    DisputeReason,
    MailPurpose,
    MailStatus,
    OutgoingMail,
    TimelineEventInvoice,
    WorkItem,
    WorkKind,
)
from arcrm.celery import app
from customers.models import EventKind, TimelineEvent
from tests import redis_databases
from tests.ar_collections.conftest import (
    DUE,
    _free_port,
    closed_port,
    held_by_another_worker,
    in_another_thread,
    sent_once,
)

pytestmark = pytest.mark.usefixtures("default_ladders")

LATE = DUE + dt.timedelta(days=20)


@pytest.fixture
def account(make_account):
    return make_account()


def copy_queued(account, collector, capture) -> OutgoingMail:
    """An invoice copy sent from the workspace, its worker not yet run."""
    with capture(execute=False) as enqueued:
        workspace.invoice_copy_send(customer=account, invoice=account.invoices.order_by("number").first(),
                                    contact=account.contacts.get(), actor=collector, on=LATE)
    assert len(enqueued) == 1  # the hand-over to a worker, once the action has committed
    return OutgoingMail.objects.get()


def test_an_invoice_copy_waits_in_the_queue_and_a_worker_sends_it_once(
    account, collector, smtp_server, django_capture_on_commit_callbacks, pdf_text
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    assert (mail.status, mail.purpose, mail.attempts) == (MailStatus.QUEUED, MailPurpose.INVOICE_COPY, 0)
    assert smtp_server.messages == []

    assert outbox.mails_send(mail_ids=[mail.pk]) == {"sent": 1}
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"not_claimed": 1}  # the broker handing it out twice

    (message,) = smtp_server.messages
    assert message["Message-ID"] == outbox.message_id(mail.pk)
    assert message["To"] == "Anna Clerk <anna@acme.test>"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert "INV-" in pdf_text(attachment.get_content())
    mail.refresh_from_db()
    assert (mail.status, mail.attempts, mail.error) == (MailStatus.SENT, 1, "")
    assert mail.sent_at is not None


def test_a_mail_server_saying_not_now_keeps_the_mail_queued_until_the_sweep_sends_it(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    smtp_server.refuse_with("451 4.3.0 Try again later")

    assert outbox.mails_send(mail_ids=[mail.pk]) == {"deferred": 1}
    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.QUEUED, 1) and "451" in mail.error
    assert not TimelineEvent.objects.filter(summary__startswith="E-mail not sent").exists()

    assert mail.next_attempt_at >= mail.created_at + outbox.RETRY_AFTER  # a back-off, not at once
    smtp_server.refuse_with(None)
    assert outbox.mails_sweep(now=mail.next_attempt_at - dt.timedelta(seconds=1)) == 0
    assert outbox.mails_sweep(now=mail.next_attempt_at) == 1

    assert len(smtp_server.messages) == 1
    mail.refresh_from_db()
    assert (mail.status, mail.attempts, mail.error) == (MailStatus.SENT, 2, "")


def test_a_refusal_for_good_fails_the_mail_and_says_so_on_the_timeline(
    account, collector, smtp_server, django_capture_on_commit_callbacks
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    smtp_server.refuse_with("550 5.1.1 Mailbox unavailable")

    assert outbox.mails_send(mail_ids=[mail.pk]) == {"failed": 1}

    mail.refresh_from_db()
    assert mail.status == MailStatus.FAILED and "550" in mail.error
    event = TimelineEvent.objects.get(customer=account, summary__startswith="E-mail not sent")
    assert event.kind == EventKind.NOTE  # where the copy itself was noted
    assert "anna@acme.test" in event.summary and "550" in event.summary
    assert outbox.mails_sweep(now=mail.created_at + dt.timedelta(days=1)) == 0  # failed mails stay put
    assert event.pk in TimelineEvent.objects.filter(
        pk__in=TimelineEventInvoice.objects.filter(invoice=mail.invoice).values("event_id")
    ).values_list("pk", flat=True)  # found under the invoice's filter too


def test_a_copy_to_an_address_refused_for_good_marks_the_contact_s_address(
    account, collector, smtp_server, django_capture_on_commit_callbacks
):
    """"User unknown" for a collector's copy: the ladder's next written steps
    go by post, and the collector is asked for an address that works."""
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    smtp_server.refuse_with("550 5.1.1 <anna@acme.test>: User unknown")

    assert outbox.mails_send(mail_ids=[mail.pk]) == {"failed": 1}

    anna = account.contacts.get()
    assert anna.email_refused == "anna@acme.test" and not anna.email_usable
    assert WorkItem.objects.get(customer=account).kind == WorkKind.ADDRESS_REFUSED


def test_a_copy_the_mail_server_keeps_putting_off_is_said_once_to_be_not_sent_yet(
    account, collector, smtp_server, settings, django_capture_on_commit_callbacks
):
    """The timeline noted the copy as e-mailed when it was queued; a mail
    server refusing our login holds it for as long as that takes."""
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "arcrm", "wrong"
    smtp_server.accept_password("right")
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)

    for _ in range(3):
        outbox.mails_send(mail_ids=[mail.pk])
        OutgoingMail.objects.filter(pk=mail.pk).update(retry_not_before=None)

    mail.refresh_from_db()
    assert mail.status == MailStatus.QUEUED and smtp_server.messages == []
    (said,) = TimelineEvent.objects.filter(customer=account, summary__contains="not sent yet")
    assert said.summary.startswith("E-mail to Anna Clerk <anna@acme.test> not sent yet, the mail server "
                                   "refused the session; it will be tried again")


def test_a_second_task_for_a_mail_in_its_back_off_leaves_it_for_later(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    smtp_server.refuse_with("451 4.3.0 Try again later")
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"deferred": 1}
    smtp_server.refuse_with(None)

    # Its action's task and a sweep's both in the queue: the second comes at once.
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"not_claimed": 1}

    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.QUEUED, 1)
    assert smtp_server.messages == []
    assert mail.retry_not_before == mail.next_attempt_at > timezone.now()
    # The sweep, once the back-off is over, hands it over and it goes.
    assert outbox.mails_sweep(now=mail.next_attempt_at) == 1
    assert len(smtp_server.messages) == 1
    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.SENT, 2)


def _back_off_over(mail: OutgoingMail) -> None:
    OutgoingMail.objects.filter(pk=mail.pk).update(retry_not_before=timezone.now() - dt.timedelta(seconds=1))


def test_the_last_transient_failure_gives_up(
    account, collector, smtp_server, django_capture_on_commit_callbacks
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    smtp_server.refuse_with("421 4.7.0 Too busy")

    outcomes = []
    for _ in range(outbox.MAX_ATTEMPTS + 1):
        outcomes.append(outbox.mails_send(mail_ids=[mail.pk]))
        _back_off_over(mail)

    assert outcomes == [{"deferred": 1}] * (outbox.MAX_ATTEMPTS - 1) + [{"failed": 1}, {"not_claimed": 1}]
    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.FAILED, outbox.MAX_ATTEMPTS)


def test_an_action_that_rolls_back_queues_no_mail(account, collector, smtp_server, eager_celery):
    with pytest.raises(RuntimeError), transaction.atomic():
        workspace.invoice_copy_send(customer=account, invoice=account.invoices.first(),
                                    contact=account.contacts.get(), actor=collector, on=LATE)
        raise RuntimeError("the request failed after the service")

    assert not OutgoingMail.objects.exists() and smtp_server.messages == []


def test_a_call_is_logged_while_the_mail_server_is_down_and_its_summary_waits(
    client, account, collector, settings, django_capture_on_commit_callbacks, eager_celery
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 5
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("collections:call_log", args=[account.pk]),
            sent_once({"contact": account.contacts.get().pk, "outcome": "reached", "notes": "Pays Friday",
             "email_summary": "on"}),
            headers={"HX-Request": "true"},
        )

    assert response.status_code == 200
    assert Call.objects.get(customer=account).summary_sent_to == "anna@acme.test"
    mail = OutgoingMail.objects.get(purpose=MailPurpose.CALL_SUMMARY)
    assert mail.status == MailStatus.QUEUED and mail.attempts == 1
    assert "Connection refused" in mail.error or "ConnectionRefused" in mail.error


def test_a_mail_server_that_cannot_be_reached_postpones_the_rest_of_the_batch(
    account, collector, settings, django_capture_on_commit_callbacks
):
    first = copy_queued(account, collector, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        workspace.invoice_copy_send(customer=account, invoice=account.invoices.order_by("number").last(),
                                    contact=account.contacts.get(), actor=collector, on=LATE)
    second = OutgoingMail.objects.exclude(pk=first.pk).get()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 5

    assert outbox.mails_send(mail_ids=[first.pk, second.pk]) == {"unreachable": 1, "postponed": 1}

    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, first.attempts, second.status, second.attempts) == (
        MailStatus.QUEUED, 1, MailStatus.QUEUED, 0  # the second was not tried: no attempt spent
    )


def test_the_sweep_hands_a_mail_over_once_while_a_worker_has_it(
    account, collector, django_capture_on_commit_callbacks
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    due = mail.next_attempt_at

    assert outbox.mails_sweep(now=due) == 1  # onto the real broker; no worker takes it here
    assert outbox.mails_sweep(now=due + dt.timedelta(minutes=5)) == 0
    mail.refresh_from_db()
    assert mail.next_attempt_at == due + outbox.HANDED_OVER_FOR
    assert outbox.mails_sweep(now=due + outbox.HANDED_OVER_FOR) == 1  # that worker never sent it


def test_a_mail_a_test_hands_to_the_suite_s_broker_waits_under_this_run_s_own_keys(
    account, collector, django_capture_on_commit_callbacks, settings
):
    """Not in the default queue of the suite's Redis database, where any worker
    of another test run, or a developer's `make run` on the same Redis, would
    take it and look for the mail in its own database."""
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    waiting = broker.llen(f"{prefix}celery")

    assert outbox.mails_sweep(now=mail.next_attempt_at) == 1

    assert prefix.startswith("arcrm-test-")
    assert broker.llen(f"{prefix}celery") == waiting + 1
    broker.close()


def test_a_mail_server_refusing_the_login_keeps_the_mail_queued_without_spending_attempts(
    account, collector, smtp_server, settings, django_capture_on_commit_callbacks
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "arcrm", "wrong"
    smtp_server.accept_password("right")

    for _ in range(outbox.MAX_ATTEMPTS + 1):
        assert outbox.mails_send(mail_ids=[mail.pk])["unreachable"] == 1
        _back_off_over(mail)  # the mail waits out its back-off like any other

    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.QUEUED, 0)
    assert mail.error.startswith("SessionRefused: the mail server refused the session: (535")
    settings.EMAIL_HOST_PASSWORD = "right"
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"sent": 1}


def test_a_sender_address_the_mail_server_refuses_keeps_the_mail_queued_without_spending_attempts(
    account, collector, smtp_server, django_capture_on_commit_callbacks
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    smtp_server.refuse_sender("553 5.7.1 Sender address rejected: not owned by user arcrm")

    for _ in range(outbox.MAX_ATTEMPTS + 1):
        assert outbox.mails_send(mail_ids=[mail.pk]) == {"deferred": 1}
        _back_off_over(mail)

    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.QUEUED, 0)
    assert mail.error.startswith("SMTPSenderRefused: (553")
    smtp_server.refuse_sender(None)
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"sent": 1}


@pytest.mark.django_db(transaction=True)
def test_a_refusal_is_recorded_by_whoever_holds_the_mail_after_the_rollback(account):
    """A refused send rolls the attempt back and claims the mail again to record
    the failure. If a sweep's worker took it in between, that worker records its
    own outcome: this one records nothing and counts no attempt."""
    mail = OutgoingMail.objects.create(  # committed: the other worker's connection sees it
        customer=account, purpose=MailPurpose.INVOICE_COPY, from_email="ar@example.test",
        to=["anna@acme.test"], subject="Invoice copy", text="Attached.", next_attempt_at=timezone.now(),
    )
    refusal = smtplib.SMTPDataError(554, b"Message refused")

    with held_by_another_worker(OutgoingMail, mail.pk):
        assert outbox._send_failed(mail.pk, refusal) == "not_claimed"
    mail.refresh_from_db()
    assert (mail.status, mail.attempts, mail.error) == (MailStatus.QUEUED, 0, "")
    assert not TimelineEvent.objects.filter(summary__startswith="E-mail not sent").exists()

    # Free again, the refusal is recorded once, as a permanent failure.
    assert outbox._send_failed(mail.pk, refusal) == "failed"
    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.FAILED, 1)
    assert mail.error == "SMTPDataError: (554, b'Message refused')"
    assert TimelineEvent.objects.filter(customer=account, summary__startswith="E-mail not sent").count() == 1


class _SlowToAccept:
    """aiosmtpd handler: holds each message until released, then accepts it."""

    def __init__(self) -> None:
        self.receiving, self.release = threading.Event(), threading.Event()
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.receiving.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        self.accepted += 1
        return "250 Message accepted for delivery"


@pytest.mark.django_db(transaction=True)
def test_while_the_mail_server_takes_its_time_over_a_mail_the_database_is_not_held(account, settings):
    """On the embedded SQLite database a transaction open across the SMTP
    conversation is the whole database's write lock: every page that writes
    waited for the mail server. The mail is claimed first, sent with no
    transaction open, and recorded after."""
    mail = OutgoingMail.objects.create(  # committed: the worker's connection sees it
        customer=account, purpose=MailPurpose.INVOICE_COPY, from_email="ar@example.test",
        to=["anna@acme.test"], subject="Invoice copy", text="Attached.", next_attempt_at=timezone.now(),
    )
    handler = _SlowToAccept()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", controller.port, 10
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    try:
        worker = in_another_thread(lambda: outbox.mails_send(mail_ids=[mail.pk]))
        assert handler.receiving.wait(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()")
            in_transaction = cursor.fetchone()[0]
        with transaction.atomic():
            free = OutgoingMail.objects.select_for_update(skip_locked=True).filter(pk=mail.pk).exists()
        # Handed over again meanwhile, it is not sent a second time.
        second = outbox.mails_send(mail_ids=[mail.pk])
        handler.release.set()
        sent = worker()
    finally:
        handler.release.set()
        controller.stop()

    assert (in_transaction, free) == (0, True)
    assert (sent, second) == ({"sent": 1}, {"not_claimed": 1})
    mail.refresh_from_db()
    assert (mail.status, mail.attempts, handler.accepted) == (MailStatus.SENT, 1, 1)


@pytest.fixture
def someone_elses_message():
    """A message waiting in the default queue of the Redis database the
    suite's workers use, as another test run on the same Redis server (a
    second checkout, CI beside a developer) leaves it for its own worker."""
    client = redis.Redis.from_url(redis_databases.redis_url(redis_databases.APP_WORKER))
    raw = '{"body": "", "headers": {"task": "someone.elses", "id": "not-this-run-s"}}'
    client.lpush("celery", raw)
    yield lambda: client.lrange("celery", 0, -1).count(raw.encode())
    client.lrem("celery", 0, raw)
    client.close()


@pytest.mark.slow
def test_a_worker_of_the_tests_takes_and_clears_nothing_of_another_run_on_the_same_redis(
    someone_elses_message, app_worker_smtp, app_worker, account, collector, wait_for
):
    with transaction.atomic():
        workspace.invoice_copy_send(customer=account, invoice=account.invoices.order_by("number").first(),
                                    contact=account.contacts.get(), actor=collector, on=LATE)
    wait_for(lambda: OutgoingMail.objects.filter(status=MailStatus.SENT).exists(), timeout=60,
             message="the worker to send the copy")

    assert len(app_worker_smtp.messages) == 1
    assert someone_elses_message() == 1, "the other run's message is gone"


def test_an_action_whose_worker_cannot_be_told_still_answers_and_its_mail_waits(
    client, account, collector, broker_down, django_capture_on_commit_callbacks, caplog
):
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("collections:call_log", args=[account.pk]),
            sent_once({"contact": account.contacts.get().pk, "outcome": "reached", "email_summary": "on"}),
        )

    (failed,) = [r for r in caplog.records if "in on_commit()" in r.getMessage()]
    assert "Connection refused" in failed.getMessage() or "Error 111" in failed.getMessage()
    assert response.status_code == 302  # the call is logged; no error page to make them log it again
    assert Call.objects.filter(customer=account).count() == 1
    mail = OutgoingMail.objects.get()
    assert (mail.status, mail.attempts) == (MailStatus.QUEUED, 0)  # for the sweep
    assert mail.next_attempt_at <= timezone.now() + outbox.SWEEP_AFTER


def test_the_credit_limit_counts_every_dispute_on_the_invoice(account, collector, manager):
    rules = CollectionRules.current()
    rules.credit_without_manager_amount = Decimal("100.00")
    rules.save()
    invoice = account.invoices.order_by("total_amount").first()  # EUR 500

    def credit(amount: str, actor):
        dispute = invoice.disputes.filter(status="open").first() or workspace.dispute_open(
            customer=account, actor=actor, invoice=invoice, on=LATE, reason=DisputeReason.QUALITY,
            description="Scratched",
        )
        workspace.dispute_resolve(dispute=dispute, actor=actor, outcome=DisputeOutcome.CREDIT_NOTE,
                                  amount=Decimal(amount), note="Goodwill", on=LATE)

    credit("80.00", collector)
    with pytest.raises(ValidationError, match=r"with the EUR 80\.00 earlier disputes took off"):
        credit("30.00", collector)
    credit("20.00", collector)  # the same dispute, 100 in all: still within
    credit("300.00", manager)
    invoice.refresh_from_db()
    assert invoice.open_amount == Decimal("100.00")


# --- one clock: the database's ------------------------------------------------------
# Worker hosts' clocks drift apart; these run this process's clock off by more
# than a claim lasts while the database's runs true, as on a host whose clock is off.
SKEW = outbox.HANDED_OVER_FOR + dt.timedelta(minutes=5)


def test_a_worker_on_a_host_whose_clock_is_ahead_leaves_a_mail_another_worker_is_sending(
    account, collector, smtp_server, django_capture_on_commit_callbacks
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    assert outbox._claim(mail.pk) is not None  # a worker on a host whose clock is right is sending it

    with time_machine.travel(timezone.now() + SKEW):
        assert outbox.mails_send(mail_ids=[mail.pk]) == {"not_claimed": 1}
        assert outbox.mails_sweep() == 0
    assert smtp_server.messages == []


def test_a_mail_put_off_on_a_host_whose_clock_is_behind_waits_its_back_off(
    account, collector, smtp_server, django_capture_on_commit_callbacks
):
    mail = copy_queued(account, collector, django_capture_on_commit_callbacks)
    smtp_server.refuse_with("451 4.3.0 Try again later")
    with time_machine.travel(timezone.now() - SKEW):
        assert outbox.mails_send(mail_ids=[mail.pk]) == {"deferred": 1}
    smtp_server.refuse_with(None)

    # A worker, and the sweep, on a host whose clock is right.
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"not_claimed": 1}
    assert outbox.mails_sweep() == 0
    assert smtp_server.messages == []
    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.QUEUED, 1)
