"""Exactly once across workers: concurrent deliveries, held rows, fan-out and sweeps."""

import datetime as dt
import os
import signal
import smtplib
import threading
import time

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from ar_collections import delivery
from ar_collections.delivery import MAX_DELIVERY_ATTEMPTS, actions_deliver, actions_fan_out, run_sweep_planned
from ar_collections.dunning import ladders, run_plan, run_start
from ar_collections.models import ActionStatus, DunningAction, Invoice
from ar_collections.tasks import deliver_actions, sweep_planned_actions
from customers.models import Segment, TimelineEvent

from .conftest import DUE, SilentServer, frozen, held_by_another_worker

ON = DUE + dt.timedelta(days=3)


def _planned(make_account, accounts: int) -> list[int]:
    for n in range(accounts):
        make_account(Segment.PROMPT, name=f"Account {n}", email=f"ap{n}@example.test")
    with frozen(ON):
        run_plan(run=run_start(run_date=ON))
    return list(DunningAction.objects.order_by("pk").values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_the_same_actions_at_once_send_each_action_once(make_account, smtp_server):
    ids = _planned(make_account, 6)
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def worker(order: list[int]) -> None:
        try:
            start.wait(timeout=120)  # both started, however slow the machine
            results.append(actions_deliver(action_ids=order))
        except BaseException as error:  # surfaced below; a thread's exception is otherwise lost
            errors.append(error)
        finally:
            connection.close()  # each thread has its own database connection

    with frozen(ON):
        threads = [threading.Thread(target=worker, args=(order,)) for order in (ids, ids[::-1])]
        for thread in threads:
            thread.start()
        # Until both are done, however slow the machine: counting while one
        # is still delivering would blame the code for the machine's load.
        deadline = time.monotonic() + 300
        for thread in threads:
            thread.join(timeout=max(0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "the workers did not finish in 5 minutes"

    assert errors == []
    assert sum(r["emailed"] for r in results) == 6
    assert sum(r["not_claimed"] for r in results) == 6
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(
        f"Anna Clerk <ap{n}@example.test>" for n in range(6)
    )
    assert set(DunningAction.objects.values_list("status", "attempts")) == {(ActionStatus.DONE, 1)}


@pytest.mark.django_db(transaction=True)
def test_an_action_another_worker_holds_is_skipped_not_waited_for(make_account, smtp_server):
    [action_id] = _planned(make_account, 1)

    with held_by_another_worker(DunningAction, action_id), frozen(ON):
        assert actions_deliver(action_ids=[action_id])["not_claimed"] == 1
    assert smtp_server.messages == []

    with frozen(ON):
        assert actions_deliver(action_ids=[action_id])["emailed"] == 1
    assert len(smtp_server.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_refusal_is_recorded_by_whoever_holds_the_action_after_the_rollback(make_account):
    """A refused send rolls the attempt back and claims the action again to
    record the failure. If a sweep's worker took it in between, that worker
    records its own outcome: this one records nothing, counts no more attempts
    than the one it began."""
    [action_id] = _planned(make_account, 1)
    refusal = smtplib.SMTPDataError(554, b"Message refused")
    assert delivery._begin(action_id) == "begun"  # counted before the attempt that rolled back

    with held_by_another_worker(DunningAction, action_id):
        assert delivery._send_failed(action_id, refusal) == "not_claimed"
    action = DunningAction.objects.get(pk=action_id)
    assert (action.status, action.attempts, action.error) == (ActionStatus.PLANNED, 1, "")

    # Free again, the refusal is recorded once, as a permanent failure.
    assert delivery._send_failed(action_id, refusal) == "failed"
    action.refresh_from_db()
    assert (action.status, action.attempts) == (ActionStatus.FAILED, 1)
    assert action.error == "SMTPDataError: (554, b'Message refused')"


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_the_last_attempt_is_under_way_leaves_it_to_that_attempt(
    make_account, smtp_server, monkeypatch
):
    """Worker A has counted the step's last attempt (committed) and is about
    to claim it when the same id is delivered again (the broker hands the
    batch out again, or a sweep does): worker B finds every attempt spent.
    B must leave the step to A's attempt, not fail it as a delivery that
    stopped part-way: then A would find it failed, and the customer's last
    reminder would never go."""
    [action_id] = _planned(make_account, 1)
    DunningAction.objects.filter(pk=action_id).update(attempts=MAX_DELIVERY_ATTEMPTS - 1)
    begin = delivery._begin
    second: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def worker_b() -> None:
        try:
            second.append(actions_deliver(action_ids=[action_id]))
        except BaseException as error:  # surfaced below; a thread's exception is otherwise lost
            errors.append(error)
        finally:
            connection.close()  # the thread's own database connection

    def begin_then_delivered_again(action_id: int, **kwargs) -> str:
        begun = begin(action_id, **kwargs)  # A's count, committed; B's own _begin comes through here too
        if threading.current_thread() is threading.main_thread():
            # Between A's count and A's claim: B delivers the same id, on a
            # connection of its own, and is done before A goes on.
            thread = threading.Thread(target=worker_b)
            thread.start()
            thread.join(timeout=120)
            assert not thread.is_alive(), "the second delivery did not finish in 2 minutes"
        return begun

    monkeypatch.setattr(delivery, "_begin", begin_then_delivered_again)
    with frozen(ON):
        first = actions_deliver(action_ids=[action_id])

    assert errors == []
    assert second == [{**dict.fromkeys(delivery.OUTCOMES, 0), "not_claimed": 1}]
    assert first["emailed"] == 1
    [message] = smtp_server.messages
    assert message["Message-ID"] == delivery.message_id(action_id)
    action = DunningAction.objects.get(pk=action_id)
    assert (action.status, action.attempts, action.error) == (ActionStatus.DONE, MAX_DELIVERY_ATTEMPTS, "")
    assert not TimelineEvent.objects.filter(summary__contains="failed").exists()


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_between_an_attempt_s_count_and_its_claim_counts_no_attempt_of_its_own(
    make_account, smtp_server, monkeypatch
):
    """Worker A has counted an attempt (committed) and is about to claim the
    step when the same id is delivered again. A is alive and makes its
    attempt: the second delivery must leave it to A, not count a second
    attempt for the one e-mail, bringing the step's last attempt closer."""
    [action_id] = _planned(make_account, 1)
    begin = delivery._begin
    second: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def worker_b() -> None:
        try:
            second.append(actions_deliver(action_ids=[action_id]))
        except BaseException as error:  # surfaced below; a thread's exception is otherwise lost
            errors.append(error)
        finally:
            connection.close()  # the thread's own database connection

    def begin_then_delivered_again(action_id: int, **kwargs) -> str:
        begun = begin(action_id, **kwargs)
        if threading.current_thread() is threading.main_thread():
            thread = threading.Thread(target=worker_b)
            thread.start()
            thread.join(timeout=120)
            assert not thread.is_alive(), "the second delivery did not finish in 2 minutes"
        return begun

    monkeypatch.setattr(delivery, "_begin", begin_then_delivered_again)
    with frozen(ON):
        first = actions_deliver(action_ids=[action_id])

    assert errors == []
    assert second == [{**dict.fromkeys(delivery.OUTCOMES, 0), "not_claimed": 1}]
    assert first["emailed"] == 1
    assert len(smtp_server.messages) == 1
    action = DunningAction.objects.get(pk=action_id)
    assert (action.status, action.attempts) == (ActionStatus.DONE, 1)


@pytest.mark.django_db(transaction=True)
def test_a_last_attempt_finding_its_row_held_for_a_moment_waits_for_it_and_is_made(
    make_account, smtp_server, monkeypatch
):
    """Between its count and its claim, the last attempt finds the row held
    for a moment by a transaction that makes no attempt of its own (a second
    delivery of the id finding this attempt under way, the sweep moving its
    hand-over time on). Passing the row over as another worker's would leave
    the attempt unmade, and the step, every attempt spent, would later be
    failed as a delivery that stopped part-way."""
    [action_id] = _planned(make_account, 1)
    DunningAction.objects.filter(pk=action_id).update(attempts=MAX_DELIVERY_ATTEMPTS - 1)
    begin = delivery._begin
    held, first_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def holds_until_waited_for() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                DunningAction.objects.select_for_update().get(pk=action_id)
                held.set()
                # Until the first worker waits for this row (or gave up on it),
                # however slow the machine.
                deadline = time.monotonic() + 120
                while not first_done.is_set() and time.monotonic() < deadline:
                    cursor.execute("SELECT pg_stat_clear_snapshot()")
                    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
                                   "WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)))")
                    if cursor.fetchone()[0]:
                        break
                    time.sleep(0.01)
        except BaseException as error:  # surfaced below; a thread's exception is otherwise lost
            errors.append(error)
        finally:
            held.set()
            connection.close()  # the thread's own database connection

    holder = threading.Thread(target=holds_until_waited_for)

    def begin_then_held(action_id: int, **kwargs) -> str:
        begun = begin(action_id, **kwargs)  # the count, committed
        holder.start()
        assert held.wait(timeout=60)
        return begun

    monkeypatch.setattr(delivery, "_begin", begin_then_held)
    try:
        with frozen(ON):
            counts = actions_deliver(action_ids=[action_id])
    finally:
        first_done.set()
        if holder.is_alive():
            holder.join(timeout=120)

    assert errors == []
    assert counts["emailed"] == 1
    assert len(smtp_server.messages) == 1
    action = DunningAction.objects.get(pk=action_id)
    assert (action.status, action.attempts) == (ActionStatus.DONE, MAX_DELIVERY_ATTEMPTS)


def _last_attempt_begun(action_id: int, *, ago: dt.timedelta) -> None:
    """The step's last attempt counted `ago` by the database's clock (the one
    claim times are kept by), and the step still PLANNED: that attempt is
    under way, or its worker died in it."""
    DunningAction.objects.filter(pk=action_id).update(attempts=MAX_DELIVERY_ATTEMPTS, claimed_at=Now() - ago)


def _under_way_for() -> dt.timedelta:
    from django.conf import settings

    return dt.timedelta(seconds=settings.DELIVERY_TIME_LIMIT + settings.TIME_LIMIT_GRACE)


@pytest.mark.django_db(transaction=True)
def test_a_last_attempt_begun_longer_ago_than_a_delivery_may_run_is_failed_as_stopped_part_way(
    make_account, smtp_server
):
    """Past its task's time limit and the grace after it, the worker that
    began the last attempt has been stopped: nothing is under way any more."""
    [action_id] = _planned(make_account, 1)
    with frozen(ON):
        _last_attempt_begun(action_id, ago=_under_way_for() + dt.timedelta(seconds=1))
        assert actions_deliver(action_ids=[action_id])["failed"] == 1

    assert smtp_server.messages == []
    action = DunningAction.objects.get(pk=action_id)
    assert (action.status, action.attempts) == (ActionStatus.FAILED, MAX_DELIVERY_ATTEMPTS)
    assert "stopped part-way" in action.error
    [event] = TimelineEvent.objects.filter(customer=action.customer)
    assert event.summary == f"Friendly reminder (step 1, E-mail) failed, not tried again: {action.error}"


# --- one clock: the database's ------------------------------------------------------
# Worker hosts' clocks drift apart; each test runs this process's clock off by
# more than a delivery may run while the database's runs true, as on a host
# whose clock is off.
SKEW = dt.timedelta(minutes=10)


@pytest.mark.django_db(transaction=True)
def test_a_last_attempt_just_begun_on_a_host_whose_clock_is_behind_is_left_to_its_worker(
    make_account, smtp_server
):
    """The last attempt is counted by a worker on a host ten minutes behind;
    before it claims the step, the id is delivered again on a host whose
    clock is right. That attempt began moments ago: failing the step as
    stopped part-way would leave the customer's last reminder unsent."""
    assert _under_way_for() < SKEW  # the host is off by more than a delivery may run
    [action_id] = _planned(make_account, 1)
    DunningAction.objects.filter(pk=action_id).update(attempts=MAX_DELIVERY_ATTEMPTS - 1)
    with time_machine.travel(timezone.now() - SKEW):
        assert delivery._begin(action_id) == "begun"  # its worker goes on to claim it

    assert actions_deliver(action_ids=[action_id])["not_claimed"] == 1
    action = DunningAction.objects.get(pk=action_id)
    assert (action.status, action.attempts, action.error) == (ActionStatus.PLANNED, MAX_DELIVERY_ATTEMPTS, "")
    assert not TimelineEvent.objects.filter(customer=action.customer).exists()


@pytest.mark.django_db(transaction=True)
def test_a_last_attempt_begun_longer_ago_than_a_delivery_may_run_is_failed_by_a_host_whose_clock_is_behind(
    make_account, smtp_server
):
    """By the database's clock the worker that counted the last attempt has
    been stopped long since; a delivery on a host ten minutes behind must not
    take that attempt for one still under way and leave the step planned."""
    [action_id] = _planned(make_account, 1)
    DunningAction.objects.filter(pk=action_id).update(attempts=MAX_DELIVERY_ATTEMPTS - 1)
    assert delivery._begin(action_id) == "begun"  # its worker dies in it
    DunningAction.objects.filter(pk=action_id).update(
        claimed_at=F("claimed_at") - _under_way_for() - dt.timedelta(seconds=1)  # that long ago
    )

    with time_machine.travel(timezone.now() - SKEW):
        assert actions_deliver(action_ids=[action_id])["failed"] == 1
    assert smtp_server.messages == []
    action = DunningAction.objects.get(pk=action_id)
    assert (action.status, action.attempts) == (ActionStatus.FAILED, MAX_DELIVERY_ATTEMPTS)
    assert "stopped part-way" in action.error


@pytest.mark.django_db(transaction=True)
def test_the_sweep_measures_how_long_a_step_has_been_quiet_by_the_database_s_clock(make_account):
    """A sweep on a host ahead of time would hand over a step whose attempt has
    just begun; one behind would leave a step whose worker died for longer
    than the hand-over wait."""
    [action_id] = _planned(make_account, 1)
    assert delivery._begin(action_id) == "begun"  # an attempt counted just now; its worker dies in it

    with time_machine.travel(timezone.now() + SKEW + delivery.HANDED_OVER_FOR):
        assert delivery.actions_sweep_waiting() == 0
    DunningAction.objects.filter(pk=action_id).update(claimed_at=F("claimed_at") - delivery.HANDED_OVER_FOR)
    with time_machine.travel(timezone.now() - SKEW):
        assert delivery.actions_sweep_waiting() == 1


@pytest.mark.django_db(transaction=True)
def test_a_last_attempt_that_died_is_failed_by_a_later_sweep(make_account, smtp_server, eager_celery):
    """A last attempt whose worker died is left alone by a delivery that
    comes within the time a delivery may run (it may still be under way),
    and the step is not left PLANNED for ever: the daytime sweep hands it
    over again later, and that delivery fails it with the reason."""
    [action_id] = _planned(make_account, 1)
    with frozen(ON):
        _last_attempt_begun(action_id, ago=_under_way_for() - dt.timedelta(minutes=1))
        assert actions_deliver(action_ids=[action_id])["not_claimed"] == 1
        action = DunningAction.objects.get(pk=action_id)
        assert (action.status, action.attempts) == (ActionStatus.PLANNED, MAX_DELIVERY_ATTEMPTS)
        assert action.error == ""
        assert not TimelineEvent.objects.filter(customer=action.customer).exists()

    # HANDED_OVER_FOR later by the database's clock, which the sweep reads.
    DunningAction.objects.filter(pk=action_id).update(claimed_at=F("claimed_at") - delivery.HANDED_OVER_FOR)
    assert delivery.actions_sweep_waiting() == 1  # delivered at once (eager)

    assert smtp_server.messages == []
    action.refresh_from_db()
    assert (action.status, action.attempts) == (ActionStatus.FAILED, MAX_DELIVERY_ATTEMPTS)
    assert "stopped part-way" in action.error
    assert TimelineEvent.objects.filter(customer=action.customer).count() == 1


def test_a_sweep_enqueues_a_run_s_planned_actions_in_batches_once_committed(
    make_account, smtp_server, eager_celery, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(delivery, "DELIVERY_BATCH_SIZE", 2)
    _planned(make_account, 5)
    run = run_start(run_date=ON)

    with frozen(ON), django_capture_on_commit_callbacks(execute=True) as enqueued:
        assert run_sweep_planned(run=run) == 5

    assert len(enqueued) == 3  # 2 + 2 + 1
    assert len(smtp_server.messages) == 5
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        assert run_sweep_planned(run=run) == 0  # nothing planned is left
    assert enqueued == []


def test_the_tasks_tolerate_rows_that_vanished(db):
    assert deliver_actions([987654321])["not_claimed"] == 1
    assert sweep_planned_actions(987654321) == 0


@pytest.fixture
def worker_silent_smtp(monkeypatch):
    """A mail server that takes connections and never answers, for the app_worker
    started after it: a delivery under way waits there until its worker is stopped."""
    server = SilentServer()
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(server.port))
    monkeypatch.setenv("EMAIL_TIMEOUT", "60")
    yield server
    server.close()


@pytest.mark.slow
def test_a_delivery_that_stops_its_worker_every_time_fails_after_the_last_attempt(
    worker_silent_smtp, app_worker, default_ladders, make_account, wait_for
):
    """A step whose delivery takes its worker down each time (a letter that
    crashes the renderer, or runs it out of memory) rolls back each time, and
    the broker hands the batch out again at once: without a count kept
    outside that transaction it would be tried for ever, the rest of its
    batch behind it. Here the worker is stopped mid-delivery every time.

    After the last, the delivery the broker hands out again at once leaves
    the step alone (that attempt may still be under way, as far as it can
    tell); once the time a delivery may run is over, the sweep hands it over
    and it fails."""
    today = timezone.localdate()  # the worker's clock is not frozen
    due = today - dt.timedelta(days=ladders()[Segment.PROMPT].steps[0].day_offset)
    account = make_account(Segment.PROMPT)
    Invoice.objects.filter(customer=account).update(due_date=due, issue_date=due - dt.timedelta(days=30))
    run_plan(run=run_start(run_date=today))
    action = DunningAction.objects.get(customer=account)

    actions_fan_out(action_ids=[action.pk])  # as a run does (no transaction here: at once)
    for stops in range(1, MAX_DELIVERY_ATTEMPTS + 1):
        wait_for(lambda n=stops: len(worker_silent_smtp.connections) >= n,
                 timeout=60, message=f"delivery {stops} to begin")
        for pid in app_worker.session_pids():
            if pid != app_worker.pid:  # the pool's process, mid-delivery
                os.kill(pid, signal.SIGKILL)

    # The time a delivery may run has passed since the last attempt began.
    long_ago = timezone.now() - _under_way_for() - dt.timedelta(seconds=1)
    assert DunningAction.objects.filter(pk=action.pk, status=ActionStatus.PLANNED,
                                        attempts=MAX_DELIVERY_ATTEMPTS).update(claimed_at=long_ago) == 1
    # The sweep, when it comes (or the delivery handed out again, if it comes after this).
    delivery.actions_sweep_waiting(now=timezone.now() + delivery.HANDED_OVER_FOR)
    wait_for(lambda: _failed(action.pk), timeout=60, message="the step to be failed")
    action.refresh_from_db()
    assert action.attempts == MAX_DELIVERY_ATTEMPTS
    assert len(worker_silent_smtp.connections) == MAX_DELIVERY_ATTEMPTS
    assert "stopped part-way" in action.error
    [event] = TimelineEvent.objects.filter(customer=account)
    assert event.summary == f"Friendly reminder (step 1, E-mail) failed, not tried again: {action.error}"


def _failed(action_id: int) -> bool:
    return DunningAction.objects.filter(pk=action_id, status=ActionStatus.FAILED).exists()


# --- the daytime delivery sweep -----------------------------------------------------


def _due_today(make_account, name: str = "Acme Tools") -> DunningAction:
    """A prompt payer's first e-mail, planned by today's run (the worker's clock is not frozen)."""
    today = timezone.localdate()
    due = today - dt.timedelta(days=ladders()[Segment.PROMPT].steps[0].day_offset)
    account = make_account(Segment.PROMPT, name=name, email=f"ap@{name.split()[0].lower()}.test")
    Invoice.objects.filter(customer=account).update(due_date=due, issue_date=due - dt.timedelta(days=30))
    run_plan(run=run_start(run_date=today))
    return DunningAction.objects.get(customer=account)


@pytest.mark.slow
def test_a_step_whose_hand_over_the_broker_lost_is_delivered_by_the_daytime_sweep_once(
    app_worker_smtp, app_worker, default_ladders, make_account, wait_for
):
    """Redis restarted after the night's run handed its steps over: the queue is
    gone, and the steps would wait for the next night. The sweep hands over
    those nothing has happened to for a while, once."""
    action = _due_today(make_account)  # planned; its hand-over lost with the queue
    now = timezone.now()

    assert delivery.actions_sweep_waiting(now=now) == 0  # just planned: the run's own hand-over may come
    later = now + delivery.HANDED_OVER_FOR
    assert delivery.actions_sweep_waiting(now=later) == 1
    assert delivery.actions_sweep_waiting(now=later + dt.timedelta(minutes=5)) == 0  # handed over already

    wait_for(lambda: DunningAction.objects.filter(pk=action.pk, status=ActionStatus.DONE).exists(),
             timeout=60, message="the worker to deliver the swept step")
    [message] = app_worker_smtp.messages
    assert message["Message-ID"] == delivery.message_id(action.pk)


@pytest.mark.slow
def test_a_step_the_mail_server_put_off_is_sent_by_the_sweep_once_its_wait_is_over(
    app_worker_smtp, app_worker, default_ladders, make_account, wait_for
):
    """Greylisting: the server answers "not now". The step waits its turn (5
    minutes after the first refusal), then the sweep hands it over, the same
    day rather than the next night."""
    action = _due_today(make_account)
    app_worker_smtp.refuse_with("451 4.7.1 Greylisted, please try again later")
    actions_fan_out(action_ids=[action.pk])
    wait_for(lambda: DunningAction.objects.filter(pk=action.pk, attempts=1, error__contains="451").exists(),
             timeout=60, message="the first attempt to be put off")
    action.refresh_from_db()
    assert action.status == ActionStatus.PLANNED
    app_worker_smtp.refuse_with(None)

    assert delivery.actions_sweep_waiting(now=action.sweep_after - dt.timedelta(seconds=1)) == 0
    assert action.sweep_after - action.claimed_at >= delivery.RETRY_AFTER
    assert delivery.actions_sweep_waiting(now=action.sweep_after) == 1

    wait_for(lambda: DunningAction.objects.filter(pk=action.pk, status=ActionStatus.DONE).exists(),
             timeout=60, message="the worker to deliver the swept step")
    action.refresh_from_db()
    assert action.attempts == 2
    assert len(app_worker_smtp.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_the_sweep_leaves_alone_a_step_a_worker_is_delivering(make_account, default_ladders):
    action = _due_today(make_account)
    later = timezone.now() + delivery.HANDED_OVER_FOR

    with held_by_another_worker(DunningAction, action.pk):
        assert delivery.actions_sweep_waiting(now=later) == 0
    assert delivery.actions_sweep_waiting(now=later) == 1


def test_the_sweep_runs_every_fifteen_minutes_by_default():
    from django.conf import settings

    from arcrm.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["sweep-waiting-actions"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert entry["schedule"] == dt.timedelta(minutes=15)
