"""The payment-behaviour refresh through a real Celery worker, Redis and PostgreSQL,
and the beat schedule that runs it every night."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlencode, urlunsplit

import pytest
from aiosmtpd.controller import Controller
from celery import Celery
from celery.schedules import crontab
from django.conf import settings
from django.db import connection
from django.utils import timezone
from openpyxl import Workbook

from ar_collections import imports, outbox, workspace
from ar_collections.default_policies import ladders_install_missing
from ar_collections.delivery import message_id
from ar_collections.dunning import ladders, run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningStep,
    ImportStatus,
    LatePaymentPolicy,
    MailPurpose,
    MailStatus,
    OutgoingMail,
    Payment,
    PaymentBehaviour,
    PolicyMinimum,
    PromiseStatus,
    ReceivablesImport,
    StepFee,
    WorkItem,
    WorkKind,
)
from ar_collections.tasks import (
    check_commitments,
    deliver_actions,
    refresh_payment_behaviour,
    run_import,
    send_mail,
)
from arcrm.celery import app
from arcrm.roles import sync_role_groups
from customers.models import Segment
from tests import redis_databases
from tests.ar_collections.conftest import SmtpServer, _free_port, _Mailbox

REPO_DIR = Path(__file__).resolve().parents[2]


def _test_database_url() -> str:
    """DATABASE_URL of the database this test runs in (pytest-django's test_… copy)."""
    db = settings.DATABASES["default"]
    credentials = quote(db["USER"], safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    netloc = f"{credentials}@" if credentials else ""
    netloc += db["HOST"] or "localhost"
    if db["PORT"]:
        netloc += f":{db['PORT']}"
    return urlunsplit(
        ("postgres", netloc, "/" + quote(db["NAME"], safe=""), urlencode(db.get("OPTIONS", {})), "")
    )


@pytest.fixture
def worker_key_prefix() -> str:
    """The broker keys of this test's worker and sender (tests/redis_databases.py)."""
    return redis_databases.key_prefix()


@pytest.fixture
def worker_redis_url(worker_key_prefix) -> Iterator[str]:
    """A Redis database apart from the suite's own; this test's keys deleted at the end."""
    url = redis_databases.redis_url(redis_databases.CELERY_WORKER)
    yield url
    redis_databases.delete_keys(url, worker_key_prefix)


@pytest.fixture
def sender(worker_redis_url, worker_key_prefix) -> Iterator[Celery]:
    """This process's side of the broker: the project's Celery settings, the worker's Redis.

    A Celery app of its own rather than the project's `app` reconfigured: that
    one may already hold pooled connections to another broker from earlier
    tests, and control commands (ping) publish through the pool whatever
    connection they are given.
    """
    sender = Celery("arcrm-test-sender", set_as_current=False)
    sender.config_from_object("django.conf:settings", namespace="CELERY")
    sender.conf.broker_url = worker_redis_url
    sender.conf.broker_transport_options = redis_databases.transport_options(worker_key_prefix)
    with sender:  # closes its connections at the end
        yield sender


WORKER_APPLICATION_NAME = "arcrm-test-worker"


@pytest.fixture
def worker(spawn, wait_for, tmp_path, worker_redis_url, worker_key_prefix, sender, transactional_db):
    """A Celery worker on a queue of its own, using this test's database."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: the worker cannot see an in-memory SQLite test database")
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {key: value for key, value in os.environ.items() if key != "CELERY_BROKER_URL"}
    env.update(
        DATABASE_URL=_test_database_url(),
        REDIS_URL=worker_redis_url,
        ARCRM_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY=env.get("SECRET_KEY") or "test-only-key",
        DJANGO_SETTINGS_MODULE="arcrm.settings",
        # The worker's database connections by name, for a test to kill them and no other.
        PGAPPNAME=WORKER_APPLICATION_NAME,
        **redis_databases.worker_env(worker_key_prefix),
    )
    process = spawn(
        "-m", "celery", "-A", "tests.worker_app", "worker", "--concurrency", "1", "-Q", queue,
        "-n", f"{queue}@%h", "-l", "info", "--without-mingle", "--without-gossip",
        env=env, name="worker",
    )

    def answers_ping() -> bool:
        assert process.popen.poll() is None, f"the worker exited early:\n{process.output()}"
        return bool(sender.control.ping(destination=[f"{queue}@{socket.gethostname()}"], timeout=1))

    try:
        wait_for(answers_ping, timeout=60, message="the Celery worker to answer a ping")
        yield queue, process
    finally:
        # Warm shutdown, as in production; the worker must be gone before
        # transactional_db empties the tables it may still be using.
        returncode = process.stop(timeout=30)
        assert returncode == 0, process.output()


@pytest.fixture
def worker_smtp(monkeypatch) -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that a worker started after it sends to
    (through the environment, as the worker is another process)."""
    yield from _smtp_for_workers(_Mailbox(), monkeypatch)


def _smtp_for_workers(mailbox, monkeypatch) -> Iterator[SmtpServer]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    monkeypatch.setenv("EMAIL_HOST", controller.hostname)
    monkeypatch.setenv("EMAIL_PORT", str(controller.port))
    try:
        yield SmtpServer(controller.hostname, controller.port, mailbox)
    finally:
        controller.stop()


@pytest.fixture
def role_groups(transactional_db) -> None:
    """The role groups, whatever an earlier transactional test's flush left behind."""
    sync_role_groups()


@pytest.mark.slow
def test_a_worker_refreshes_payment_behaviour_sent_through_redis(
    worker, sender, wait_for, role_groups, make_customer, make_invoice
):
    queue, process = worker
    customer = make_customer(name="Late Larry Ltd")
    # Four settled invoices: on time, then 10, 20 and 30 days late; all settled
    # more than 90 days before the refresh date. One open invoice 10 days overdue.
    for due, days_late in [
        (dt.date(2025, 1, 10), 0),
        (dt.date(2025, 2, 10), 10),
        (dt.date(2025, 2, 25), 30),
        (dt.date(2025, 3, 10), 20),
    ]:
        make_invoice(
            customer,
            issued=due - dt.timedelta(days=30),
            due=due,
            paid_on=due + dt.timedelta(days=days_late),
        )
    make_invoice(customer, issued=dt.date(2025, 5, 21), due=dt.date(2025, 6, 20), amount="250.00")

    with sender.connection_for_write() as connection:
        refresh_payment_behaviour.apply_async(
            kwargs={"on": "2025-06-30"}, queue=queue, connection=connection
        )

    behaviour = wait_for(
        lambda: PaymentBehaviour.objects.filter(customer=customer).first(),
        timeout=60,
        message="the worker to write the payment behaviour",
    )
    assert behaviour.computed_on == dt.date(2025, 6, 30)
    assert behaviour.invoices_settled == 4
    assert behaviour.invoices_settled_late == 3
    assert behaviour.avg_days_late == Decimal("15.00")
    assert behaviour.share_paid_late == Decimal("0.7500")
    assert behaviour.open_invoices == 1
    assert behaviour.overdue_invoices == 1
    assert behaviour.max_days_overdue == 10
    assert behaviour.overdue_amount == Decimal("250.00")
    customer.refresh_from_db()
    assert customer.segment == Segment.SYSTEMATIC_LATE
    assert "collections.refresh_payment_behaviour" in process.output()


@pytest.mark.slow
@pytest.mark.slow
def test_a_worker_s_process_has_weasyprint_imported_before_its_first_task(worker, sender, wait_for, tmp_path):
    """Imported by a delivery's first letter, WeasyPrint would take its time
    from that delivery's time limit: the limit striking inside the import
    leaves the module half-imported in the process, and every later letter
    there fails another way. The worker imports it when it starts."""
    queue, _ = worker
    written = tmp_path / "renderer-modules.json"

    with sender.connection_for_write() as broker:
        sender.send_task("tests.renderer_modules_at_start", args=[str(written)], queue=queue,
                         connection=broker)

    wait_for(written.exists, timeout=60, message="the worker to run its first task")
    loaded = json.loads(written.read_text())
    assert loaded == {"weasyprint": True, "weasyprint.text.fonts": True, "weasyprint.urls": True,
                      "PIL.PngImagePlugin": True, "weasyprint.HTML": True}


def test_a_worker_finds_a_broken_promise_and_puts_it_on_the_worklist(
    worker, sender, wait_for, role_groups, collector, make_customer, make_invoice
):
    queue, process = worker
    customer = make_customer(name="Promising Pete GmbH")
    invoice = make_invoice(customer, issued=dt.date(2025, 5, 1), due=dt.date(2025, 5, 31), amount="400.00")
    promise = workspace.promise_record(
        customer=customer, actor=collector, amount=Decimal("400.00"), promised_on=dt.date(2025, 6, 10),
        invoices=[invoice], on=dt.date(2025, 6, 5),
    )

    with sender.connection_for_write() as connection:
        check_commitments.apply_async(kwargs={"on": "2025-06-30"}, queue=queue, connection=connection)

    item = wait_for(
        lambda: WorkItem.objects.filter(kind=WorkKind.PROMISE_BROKEN, customer=customer).first(),
        timeout=60, message="the worker to put the broken promise on the worklist",
    )
    promise.refresh_from_db()
    assert promise.status == PromiseStatus.BROKEN
    assert item.assignee == collector
    assert not customer.dunning_pauses.filter(lifted_at__isnull=True).exists()
    assert "collections.check_commitments" in process.output()


class _SlowMailbox(_Mailbox):
    """Takes a moment over each message, as real servers do, and keeps the
    third waiting for its reply until `go_on` is set: the test acts in the
    middle of the batch however fast or slow the machine (polled every half
    second, two e-mails in, the batch could be over before it acted)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding, self.go_on = threading.Event(), threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.sleep(0.2)
        if len(self.messages) == 2:
            self.holding.set()
            while not self.go_on.is_set():
                await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_mailbox() -> _SlowMailbox:
    return _SlowMailbox()


@pytest.fixture
def slow_worker_smtp(slow_mailbox, monkeypatch) -> Iterator[SmtpServer]:
    """worker_smtp, slow."""
    yield from _smtp_for_workers(slow_mailbox, monkeypatch)


@pytest.mark.slow
def test_a_worker_whose_database_connection_is_killed_mid_batch_delivers_the_rest_that_night(
    slow_worker_smtp, slow_mailbox, worker, sender, wait_for, make_customer, make_contact, make_invoice
):
    """The database restarts (or its connection is killed) while a delivery
    batch is half done: the rest of the batch goes out once the database is
    back, not a day late with the next night's run."""
    queue, process = worker
    ladders_install_missing(policy_model=LatePaymentPolicy, step_model=DunningStep,
                            minimum_model=PolicyMinimum, fee_model=StepFee)
    today = timezone.localdate()  # the worker's clock is not frozen
    due = today - dt.timedelta(days=ladders()[Segment.PROMPT].steps[0].day_offset)
    addresses = [f"ap{n}@example.test" for n in range(8)]
    for address in addresses:
        customer = make_customer(segment=Segment.PROMPT)
        make_contact(customer, email=address, is_primary_billing=True)
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="500.00")
    run = run_start(run_date=today)
    run_plan(run=run)
    actions = DunningAction.objects.filter(run=run)
    assert actions.count() == len(addresses)

    with sender.connection_for_write() as broker:
        deliver_actions.apply_async(args=[list(actions.values_list("pk", flat=True))], queue=queue,
                                    connection=broker)
    wait_for(slow_mailbox.holding.is_set, timeout=120, message="the batch to be under way (its third e-mail)")
    try:
        with connection.cursor() as cursor:
            # The worker's alone: a connection of this process a browser test left
            # open would die too, and fail whichever later test still holds it.
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND application_name = %s",
                           [WORKER_APPLICATION_NAME])
            assert cursor.fetchall(), "no worker connection to kill"
    finally:
        slow_mailbox.go_on.set()

    wait_for(lambda: not actions.exclude(status=ActionStatus.DONE).exists(), timeout=90,
             message="the rest of the batch to be delivered")
    # The worker's connection was the one killed: psycopg says so with the
    # server's words, or, when the kill lands between two statements (an
    # attempt is counted in a short transaction before it is made), as a
    # connection the server closed.
    assert any(said in process.output() for said in (
        "terminating connection due to administrator command", "server closed the connection unexpectedly"
    ))
    # Each account its e-mail. The one e-mail whose server reply came as the
    # connection died may have gone twice: with the same Message-ID (see delivery.py).
    copies = Counter(m["Message-ID"] for m in slow_worker_smtp.messages)
    assert set(copies) == {message_id(pk) for pk in actions.values_list("pk", flat=True)}
    assert sum(copies.values()) - len(copies) <= 1
    assert {m["To"].addresses[0].addr_spec for m in slow_worker_smtp.messages} == set(addresses)


def _succeeded(process, task: str) -> int:
    """How many runs of `task` the worker's log says ended: its "succeeded"
    lines. Not every line naming the task: the worker's banner lists it too,
    and "received" comes before the run has done anything."""
    return sum(1 for line in process.output().splitlines()
               if f"Task {task}[" in line and " succeeded in " in line)


@pytest.mark.slow
def test_a_worker_sends_a_queued_mail_once_however_often_it_is_handed_over(
    worker_smtp, worker, sender, wait_for, make_customer
):
    queue, process = worker
    customer = make_customer(name="Mailing Mia AG")
    mail = OutgoingMail.objects.create(
        customer=customer, purpose=MailPurpose.INVOICE_COPY, from_email=settings.DEFAULT_FROM_EMAIL,
        to=["Anna Clerk <anna@mia.test>"], subject="Copy of invoice INV-7", text="Here is the copy.",
        next_attempt_at=timezone.now(),
    )

    with sender.connection_for_write() as connection:
        for _ in range(2):  # the action's own hand-over and a sweep
            send_mail.apply_async(args=[[mail.pk]], queue=queue, connection=connection)

    wait_for(lambda: _succeeded(process, "collections.send_mail") >= 2, timeout=60,
             message="the worker to run both hand-overs")
    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (MailStatus.SENT, 1)
    (message,) = worker_smtp.messages
    assert message["Message-ID"] == outbox.message_id(mail.pk)
    assert message["Subject"] == "Copy of invoice INV-7"


@pytest.mark.slow
def test_a_worker_imports_an_uploaded_payments_file_once_however_often_it_is_handed_over(
    worker, sender, wait_for, make_customer, make_invoice
):
    queue, process = worker
    customer = make_customer(account_number="C-IMP", name="Importing Ida KG")
    # Recent days: a payment received long ago is taken only with its day confirmed.
    today = timezone.localdate()
    invoice = make_invoice(customer, issued=today - dt.timedelta(days=40), due=today - dt.timedelta(days=10),
                           amount="400.00")
    received = (today - dt.timedelta(days=8)).isoformat()
    batch = ReceivablesImport.objects.create(
        kind="payments", file_name="bank.csv",
        text=f"account_number,received_on,currency,amount,reference\nC-IMP,{received},EUR,150.00,BANK-9\n",
    )

    with sender.connection_for_write() as connection:
        for _ in range(2):  # the upload's own hand-over and a sweep
            run_import.apply_async(args=[batch.pk], queue=queue, connection=connection)

    wait_for(lambda: _succeeded(process, "collections.run_import") >= 2, timeout=60,
             message="the worker to run both hand-overs")
    batch.refresh_from_db()
    assert (batch.status, batch.created, batch.errors) == (ImportStatus.DONE, 1, [])
    invoice.refresh_from_db()
    assert invoice.open_amount == Decimal("250.00")
    assert Payment.objects.filter(customer=customer).count() == 1


@pytest.mark.slow
def test_a_worker_imports_an_uploaded_excel_workbook_as_it_does_a_csv_file(
    worker, sender, wait_for, make_customer, make_invoice
):
    queue, process = worker
    customer = make_customer(account_number="C-IMP", name="Importing Ida KG")
    today = timezone.localdate()
    invoice = make_invoice(customer, issued=today - dt.timedelta(days=40), due=today - dt.timedelta(days=10),
                           amount="400.00")
    book = Workbook()
    book.active.append(["account_number", "received_on", "currency", "amount", "reference"])
    book.active.append(["C-IMP", today - dt.timedelta(days=8), "EUR", 100.1 + 50.05, "BANK-9"])
    raw = io.BytesIO()
    book.save(raw)
    batch = ReceivablesImport.objects.create(kind="payments", file_name="bank.xlsx", text="",
                                             workbook=imports.decode(raw.getvalue()))

    with sender.connection_for_write() as connection:
        run_import.apply_async(args=[batch.pk], queue=queue, connection=connection)

    wait_for(lambda: _succeeded(process, "collections.run_import") >= 1, timeout=60,
             message="the worker to import the workbook")
    batch.refresh_from_db()
    assert (batch.status, batch.created, batch.errors) == (ImportStatus.DONE, 1, [])
    invoice.refresh_from_db()
    assert invoice.open_amount == Decimal("249.85")  # 150.15, not 150.14999999999998


def test_uploads_whose_task_was_lost_are_swept_every_five_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-queued-imports"]

    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert entry["schedule"] == crontab(minute="*/5")


def test_queued_mail_is_swept_every_five_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-queued-mail"]

    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert entry["schedule"] == crontab(minute="*/5")


def test_commitments_are_checked_then_segments_refreshed_then_dunning_planned():
    """A promise broken today counts towards tonight's segment, and the run plans on both."""
    check = settings.CELERY_BEAT_SCHEDULE["check-commitments"]
    refresh = settings.CELERY_BEAT_SCHEDULE["refresh-payment-behaviour"]
    run = settings.CELERY_BEAT_SCHEDULE["nightly-dunning-run"]
    assert check["task"] == "collections.check_commitments"
    assert check["schedule"] == crontab(hour=2, minute=30)
    assert refresh["schedule"] == crontab(hour=3, minute=0)
    assert run["schedule"] == crontab(hour=3, minute=30)


def test_the_nightly_refresh_is_a_task_the_workers_know():
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-payment-behaviour"]

    app.loader.import_default_modules()
    assert entry["task"] in app.tasks  # a typo here would fail only at 03:00


def _schedule_with(refresh_at: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "BEHAVIOUR_REFRESH_AT"}
    env.update(
        BEHAVIOUR_REFRESH_AT=refresh_at,
        SECRET_KEY="test-only-key",
        DJANGO_SETTINGS_MODULE="arcrm.settings",
    )
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "s = settings.CELERY_BEAT_SCHEDULE['refresh-payment-behaviour']['schedule']; "
        "print(sorted(s.hour), sorted(s.minute))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_DIR, env=env, capture_output=True, text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_the_refresh_time_comes_from_behaviour_refresh_at():
    result = _schedule_with("05:15")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[5] [15]"


@pytest.mark.slow
def test_a_refresh_time_that_is_not_a_clock_time_stops_the_start():
    result = _schedule_with("three o'clock")

    assert result.returncode != 0
    assert "BEHAVIOUR_REFRESH_AT must be HH:MM" in result.stderr
