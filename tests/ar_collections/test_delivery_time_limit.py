"""A delivery batch has a time limit: a mail server that takes the connection
and never answers, or a notice that never finishes rendering, holds a worker
only that long. The step it was on waits its back-off like one the mail
server put off (its attempt spent, failed after the last), and the rest of
its batch is handed back to the workers."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from aiosmtpd.controller import Controller
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from ar_collections import delivery, outbox, rendering
from ar_collections.delivery import MAX_DELIVERY_ATTEMPTS, RETRY_AFTER, actions_deliver, back_off
from ar_collections.dunning import ladders, run_plan, run_start
from ar_collections.models import ActionStatus, DunningAction, Invoice, LateCharge, MailStatus, OutgoingMail
from ar_collections.tasks import start_dunning_run
from customers.models import Segment, TimelineEvent
from tests.ar_collections.conftest import DUE, SilentServer, _Mailbox, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=3)  # the prompt payers' first reminder is due


def _events(customer) -> list[str]:
    events = TimelineEvent.objects.filter(customer=customer).order_by("pk")
    return list(events.values_list("summary", flat=True))


# --- through a real worker ------------------------------------------------------------


@pytest.fixture
def hung_smtp(monkeypatch) -> Iterator[SilentServer]:
    """A mail server that takes the connection and never answers, for the
    app_worker started after it, with a mail timeout longer than the
    delivery's time limit (a server that trickles its answer byte by byte
    never times out at all)."""
    server = SilentServer()
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(server.port))
    monkeypatch.setenv("EMAIL_TIMEOUT", "600")
    monkeypatch.setenv("DELIVERY_TIME_LIMIT", "10")
    yield server
    server.close()


def _due_today(make_account, name: str, **anna) -> DunningAction | None:
    """An account whose prompt payer's first step is due today (the worker's clock is not frozen)."""
    today = timezone.localdate()
    due = today - dt.timedelta(days=ladders()[Segment.PROMPT].steps[0].day_offset)
    account = make_account(Segment.PROMPT, name=name, **anna)
    Invoice.objects.filter(customer=account).update(due_date=due, issue_date=due - dt.timedelta(days=30))
    return account


@pytest.mark.slow
def test_a_mail_server_that_never_answers_holds_a_delivery_batch_only_until_its_time_limit(
    hung_smtp, app_worker, make_account, wait_for
):
    """The nightly run hands its steps to the worker; the first e-mail's server
    takes the connection and says nothing. At the time limit the step is put
    off (attempt 1 of 5, back in 5 minutes), the worker is free again, and
    the rest of the batch is handed back: the letter goes, the other e-mail
    waits without trying the server or spending an attempt. Once the server
    answers, the sweep sends each e-mail once."""
    hanging = _due_today(make_account, "Acme Tools", email="ap@acme.test")
    by_letter = _due_today(make_account, "Beta Bau", email="")  # no address: a letter
    waiting = _due_today(make_account, "Gamma Goods", email="ap@gamma.test")

    start_dunning_run.delay(timezone.localdate().isoformat())  # as the nightly beat does

    def put_off(customer) -> DunningAction | None:
        return DunningAction.objects.filter(customer=customer, status=ActionStatus.PLANNED,
                                            error__startswith="OutOfTime").first()

    first = wait_for(lambda: put_off(hanging), timeout=90, message="the hanging step to be put off")
    wait_for(lambda: DunningAction.objects.filter(customer=by_letter, status=ActionStatus.DONE).exists(),
             timeout=60, message="the rest of the batch to be handed back and the letter written")
    second = wait_for(
        lambda: DunningAction.objects.filter(customer=waiting, error__startswith="NotTried").first(),
        timeout=60, message="the other e-mail to wait",
    )

    assert len(hung_smtp.connections) == 1  # the handed-back batch did not wait for the server again
    assert "Soft time limit (10s) exceeded" in app_worker.output()
    assert "Hard time limit" not in app_worker.output()
    assert (first.attempts, second.status, second.attempts) == (1, ActionStatus.PLANNED, 0)
    assert first.sweep_after - first.claimed_at >= RETRY_AFTER
    assert _events(hanging) == [
        "Friendly reminder (step 1, E-mail) not sent yet (attempt 1 of 5), will retry: OutOfTime: the mail "
        "server did not answer within the delivery's time limit (DELIVERY_TIME_LIMIT, 10 s)"
    ]
    assert not LateCharge.objects.filter(action=first).exists()

    # The server answers again (on the same port); the sweep hands both e-mails over once their wait is over.
    hung_smtp.close()
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=hung_smtp.port)
    controller.start()
    try:
        later = max(first.sweep_after, second.sweep_after)
        assert delivery.actions_sweep_waiting(now=later) == 2
        wait_for(lambda: not DunningAction.objects.filter(customer__in=[hanging, waiting])
                 .exclude(status=ActionStatus.DONE).exists(), timeout=60, message="both e-mails to be sent")
    finally:
        controller.stop()
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.attempts, second.attempts) == (2, 1)
    copies = Counter(m["Message-ID"] for m in mailbox.messages)
    assert copies == {delivery.message_id(first.pk): 1, delivery.message_id(second.pk): 1}


# --- in this process, at the moment the limit strikes ---------------------------------


@contextlib.contextmanager
def soft_time_limit(when: Callable[[], object]) -> Iterator[None]:
    """What a worker's pool does at a task's soft time limit: a signal whose
    handler raises SoftTimeLimitExceeded in the task, wherever it is.

    It strikes once `when()` holds, that is once the task is where the test
    means the time to run out (waiting for the mail server, rendering), however
    long a loaded machine takes to get there: after a fixed delay it struck
    earlier on the way there now and then. Two minutes at the latest."""

    def strike(signum, frame):
        raise SoftTimeLimitExceeded()

    task, over, striking = threading.main_thread().ident, threading.Event(), threading.Lock()

    def watch() -> None:
        for _ in range(12_000):  # every 10 ms; counted, as the test may have frozen the clock
            if over.wait(0.01):
                return
            if when():
                break
        with striking:
            if not over.is_set():
                signal.pthread_kill(task, signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, strike)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with striking:
            over.set()
        watcher.join()
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def hung_server(silent_smtp, settings) -> SilentServer:
    """silent_smtp with a mail timeout the time limit strikes first."""
    settings.EMAIL_TIMEOUT = 600
    settings.DELIVERY_TIME_LIMIT = 10
    return silent_smtp


def _planned(make_account, *names: str, **anna) -> list[DunningAction]:
    accounts = [make_account(Segment.PROMPT, name=name, email=f"ap@{name.split()[0].lower()}.test", **anna)
                for name in names]
    with frozen(ON):
        run_plan(run=run_start(run_date=ON))
    return [DunningAction.objects.get(customer=account) for account in accounts]


def test_a_step_that_runs_out_of_time_at_its_last_attempt_fails_saying_why(make_account, hung_server):
    [action] = _planned(make_account, "Acme Tools")
    DunningAction.objects.filter(pk=action.pk).update(attempts=MAX_DELIVERY_ATTEMPTS - 1)

    # Once the notice is written and the server holds the connection without a word.
    with frozen(ON), soft_time_limit(lambda: hung_server.connections):
        counts = actions_deliver(action_ids=[action.pk])

    assert counts["failed"] == 1
    action.refresh_from_db()
    assert (action.status, action.attempts) == (ActionStatus.FAILED, MAX_DELIVERY_ATTEMPTS)
    assert _events(action.customer) == [
        "Friendly reminder (step 1, E-mail) failed, nothing was sent: OutOfTime: the mail server did not "
        "answer within the delivery's time limit (DELIVERY_TIME_LIMIT, 10 s)"
    ]


def test_a_notice_that_never_finishes_rendering_is_put_off_and_the_rest_of_its_batch_handed_back(
    make_account, smtp_server, settings, monkeypatch, eager_celery
):
    """A letter WeasyPrint never finishes (here: a render that waits for ever).
    Its attempt rolls back whole (no charge kept), and the accounts
    after it in the batch get their reminders from the batch handed back."""
    settings.DELIVERY_TIME_LIMIT = 10
    letter, *rest = _planned(make_account, "Acme Tools", "Beta Bau", "Gamma Goods")
    letter.customer.contacts.update(email="")  # no address: a letter
    rendered, hanging = rendering.html_to_pdf, threading.Event()

    def hangs_for_acme(*htmls: str) -> bytes:
        if any("Acme Tools" in html for html in htmls):
            hanging.set()
            threading.Event().wait()
        return rendered(*htmls)

    monkeypatch.setattr(rendering, "html_to_pdf", hangs_for_acme)

    with frozen(ON), soft_time_limit(hanging.is_set):
        counts = actions_deliver(action_ids=[letter.pk, *(a.pk for a in rest)])

    assert (counts["deferred"], counts["handed_back"]) == (1, 2)
    letter.refresh_from_db()
    assert (letter.status, letter.attempts, letter.letter_pdf.name) == (ActionStatus.PLANNED, 1, "")
    assert letter.sweep_after - letter.claimed_at >= back_off(1)
    assert _events(letter.customer) == [
        "Friendly reminder (step 1, E-mail) not sent yet (attempt 1 of 5), will retry: OutOfTime: the notice "
        "was not written within the delivery's time limit (DELIVERY_TIME_LIMIT, 10 s)"
    ]
    assert not LateCharge.objects.filter(action=letter).exists()
    after = DunningAction.objects.filter(pk__in=[a.pk for a in rest])
    assert sorted(after.values_list("status", "attempts")) == [(ActionStatus.DONE, 1), (ActionStatus.DONE, 1)]
    sent_to = sorted(m["To"].addresses[0].addr_spec for m in smtp_server.messages)
    assert sent_to == ["ap@beta.test", "ap@gamma.test"]


def test_an_outgoing_mail_whose_server_never_answers_stays_queued_when_the_time_runs_out(
    make_account, collector, hung_server, django_capture_on_commit_callbacks
):
    """The outbox as delivery: the mail waits its back-off with the attempt
    spent, and the rest of the batch waits for the sweep, no attempt spent."""
    from ar_collections import workspace

    account = make_account(Segment.PROMPT)
    with django_capture_on_commit_callbacks(execute=False):
        for invoice in account.invoices.order_by("number"):
            workspace.invoice_copy_send(customer=account, invoice=invoice, contact=account.contacts.get(),
                                        actor=collector, on=ON)
    first, second = OutgoingMail.objects.order_by("pk")

    with soft_time_limit(lambda: hung_server.connections):
        counts = outbox.mails_send(mail_ids=[first.pk, second.pk])

    assert counts == {"unreachable": 1, "postponed": 1}
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, first.attempts, second.status, second.attempts) == (
        MailStatus.QUEUED, 1, MailStatus.QUEUED, 0
    )
    assert first.error == ("OutOfTime: the mail server did not answer within the delivery's time limit "
                           "(DELIVERY_TIME_LIMIT, 10 s)")
    assert first.retry_not_before >= timezone.now() + RETRY_AFTER - dt.timedelta(seconds=5)


# --- the nightly jobs ------------------------------------------------------------------


def test_a_dunning_run_whose_time_runs_out_while_planning_carries_on_in_a_task_of_its_own(
    make_account, smtp_server, eager_celery, monkeypatch, django_capture_on_commit_callbacks
):
    """The run's time (JOB_TIME_LIMIT) runs out after its first batch of
    accounts. Left there, the accounts not planned yet would wait for the
    next night, and so would the steps planned already: the sweeps hand over
    only the steps of a run planned in full."""
    from ar_collections import dunning
    from ar_collections.models import DunningRun, RunStatus

    monkeypatch.setattr(dunning, "PLAN_BATCH_SIZE", 1)
    for name in ("Acme Tools", "Beta Bau"):
        make_account(Segment.PROMPT, name=name, email=f"ap@{name.split()[0].lower()}.test")
    plan_batch, batches = dunning._plan_next_batch, []

    def out_of_time_at_the_second(run_id, *rest):
        batches.append(run_id)
        if len(batches) == 2:
            raise SoftTimeLimitExceeded()  # as the worker's pool raises it
        return plan_batch(run_id, *rest)

    monkeypatch.setattr(dunning, "_plan_next_batch", out_of_time_at_the_second)

    with frozen(ON), django_capture_on_commit_callbacks(execute=True):
        # Eager, the task's repeat runs here, within its Retry (which a worker would log).
        start_dunning_run.apply(kwargs={"run_date": ON.isoformat()}, throw=False)

    assert DunningRun.objects.get(run_date=ON).status == RunStatus.FINISHED
    assert sorted(DunningAction.objects.values_list("customer__name", "status")) == [
        ("Acme Tools", ActionStatus.DONE), ("Beta Bau", ActionStatus.DONE)
    ]
    assert len(smtp_server.messages) == 2


def test_an_import_whose_time_runs_out_fails_saying_so_and_imports_nothing(
    make_customer, monkeypatch, settings
):
    from ar_collections import imports
    from ar_collections.models import ImportStatus, Payment, ReceivablesImport

    settings.JOB_TIME_LIMIT = 1800
    make_customer(account_number="C-IMP")
    # Received days ago: the row itself is good, and would be recorded but for the time limit.
    received = (timezone.localdate() - dt.timedelta(days=3)).isoformat()
    batch = ReceivablesImport.objects.create(
        kind="payments", file_name="bank.csv",
        text=f"account_number,received_on,currency,amount,reference\nC-IMP,{received},EUR,150.00,BANK-9\n",
    )
    payments_import, imported = imports.payments_import, threading.Event()

    def slow(text, **options):
        report = payments_import(text, **options)
        imported.set()
        threading.Event().wait()  # the rest of a file far too long for the limit
        return report

    monkeypatch.setattr(imports, "payments_import", slow)

    with soft_time_limit(imported.is_set):
        assert imports.import_run(batch.pk) == ImportStatus.FAILED

    batch.refresh_from_db()
    assert batch.errors == ["The import took longer than its time limit (JOB_TIME_LIMIT, 1800 s) and was "
                            "stopped: nothing was imported. Import the file in parts."]
    assert not Payment.objects.exists()
