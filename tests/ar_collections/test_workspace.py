"""The collector's workflows as services: promises, payment plans, disputes,
pauses and exceptions keep dunning paused for what they cover, and the daily
check (or a payment) finds what was kept, broken or missed."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.urls import reverse

from ar_collections import workspace
from ar_collections.dunning import eligible_invoices, next_step, run_plan, run_start
from ar_collections.models import (
    CollectionRules,
    CreditNote,
    Department,
    DisputeOutcome,
    DisputeReason,
    DunningAction,
    DunningActionInvoice,
    DunningPause,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    InstalmentStatus,
    Invoice,
    InvoiceStatus,
    PauseKind,
    PaymentBehaviour,
    PlanStatus,
    PromiseStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from arcrm.dates import format_day
from customers.models import Customer, EventKind, Segment, TimelineEvent
from tests.ar_collections.conftest import DUE, frozen, held_by_another_worker

pytestmark = pytest.mark.usefixtures("default_ladders")

LATE = DUE + dt.timedelta(days=20)  # both invoices of make_account are 20 days overdue


@pytest.fixture
def account(make_account):
    return make_account()


@pytest.fixture
def invoices(account) -> list[Invoice]:
    return list(account.invoices.order_by("total_amount"))  # EUR 500, EUR 700


def chased(account, *, on: dt.date) -> set[str]:
    return set(eligible_invoices(on=on).filter(customer=account).values_list("number", flat=True))


def pay(account, on: dt.date, *parts: tuple[Invoice, str]):
    """One payment received on `on`, applied as `parts` says."""
    allocations = [(invoice, Decimal(amount)) for invoice, amount in parts]
    return workspace.payment_record(customer=account, amount=sum(a for _, a in allocations), currency="EUR",
                                    received_on=on, allocations=allocations)


def events(account, kind: str) -> list[str]:
    return list(TimelineEvent.objects.filter(customer=account, kind=kind).values_list("summary", flat=True))


# --- Promises -------------------------------------------------------------------------


def test_a_promise_pauses_dunning_of_what_it_covers_until_the_date_plus_grace(account, invoices, collector):
    small, large = invoices
    promise = workspace.promise_record(
        customer=account, actor=collector, amount=Decimal("500.00"), promised_on=LATE + dt.timedelta(days=7),
        invoices=[small], on=LATE,
    )
    assert promise.broken_after == LATE + dt.timedelta(days=7 + CollectionRules.current().promise_grace_days)
    assert chased(account, on=LATE) == {large.number}
    assert chased(account, on=promise.broken_after) == {large.number}
    assert chased(account, on=promise.broken_after + dt.timedelta(days=1)) == {small.number, large.number}
    (summary,) = events(account, EventKind.PROMISE)
    assert "Promise to pay EUR 500.00" in summary and small.number in summary


def test_a_promise_for_more_than_is_owed_is_refused_and_changes_nothing(account, invoices, collector):
    with pytest.raises(ValidationError, match="cannot be for more"):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.01"),
                                 promised_on=LATE, invoices=invoices[:1], on=LATE)
    assert not account.promises.exists() and not account.dunning_pauses.exists()


def test_a_payment_that_keeps_the_promise_shows_it_kept_at_once(account, invoices, collector):
    _, large = invoices
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("700.00"),
                                       promised_on=LATE + dt.timedelta(days=5), invoices=[large], on=LATE)
    pay(account, LATE + dt.timedelta(days=2), (large, "700.00"))
    promise.refresh_from_db()
    assert promise.status == PromiseStatus.KEPT and promise.paid_amount == Decimal("700.00")
    assert not account.dunning_pauses.filter(lifted_at__isnull=True).exists()
    assert Invoice.objects.get(pk=large.pk).status == InvoiceStatus.PAID
    assert any("Promise kept" in s for s in events(account, EventKind.PROMISE))


def test_a_broken_promise_is_found_daily_resumes_dunning_and_lands_on_the_worklist(
    account, invoices, collector
):
    small, _ = invoices
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                                       promised_on=LATE + dt.timedelta(days=3), invoices=[small], on=LATE)
    # A partial payment is not enough.
    pay(account, LATE + dt.timedelta(days=3), (small, "200.00"))
    assert workspace.commitments_check(on=promise.broken_after)["broken"] == 0
    counts = workspace.commitments_check(on=promise.broken_after + dt.timedelta(days=1))
    assert counts["broken"] == 1
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == (PromiseStatus.BROKEN, Decimal("200.00"))
    assert small.number in chased(account, on=promise.broken_after + dt.timedelta(days=1))
    item = WorkItem.objects.get(kind=WorkKind.PROMISE_BROKEN)
    assert (item.customer, item.assignee) == (account, collector)
    assert "EUR 200.00 paid" in item.title
    # Repeating the check changes nothing and adds nothing.
    assert workspace.commitments_check(on=promise.broken_after + dt.timedelta(days=2))["broken"] == 0
    assert WorkItem.objects.filter(kind=WorkKind.PROMISE_BROKEN).count() == 1
    assert sum("Promise broken" in s for s in events(account, EventKind.PROMISE)) == 1


def test_a_promise_due_today_is_a_work_item_until_it_is_kept(account, invoices, collector):
    small, _ = invoices
    workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                             promised_on=LATE + dt.timedelta(days=1), invoices=[small], on=LATE)
    assert workspace.commitments_check(on=LATE)["due"] == 0
    assert workspace.commitments_check(on=LATE + dt.timedelta(days=1))["due"] == 1
    item = WorkItem.objects.get(kind=WorkKind.PROMISE_DUE)
    assert item.status == "open"
    pay(account, LATE + dt.timedelta(days=1), (small, "500.00"))
    item.refresh_from_db()
    assert item.status == "done"


def test_dunning_resumes_where_the_cycle_stood_after_a_broken_promise(
    account, invoices, collector, plan_and_deliver, smtp_server
):
    first = DUE + dt.timedelta(days=3)
    assert plan_and_deliver(first)["emailed"] == 1  # step 1 of the prompt ladder
    workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"),
                             promised_on=first + dt.timedelta(days=5), invoices=invoices, on=first)
    paused_until = first + dt.timedelta(days=5 + CollectionRules.current().promise_grace_days)
    # While the promise stands, nothing more is planned.
    assert plan_and_deliver(paused_until).get("emailed", 0) == 0
    workspace.commitments_check(on=paused_until + dt.timedelta(days=1))
    later = paused_until + dt.timedelta(days=10)
    plan_and_deliver(later)
    positions = list(DunningAction.objects.filter(customer=account).order_by("planned_on")
                     .values_list("step__position", flat=True))
    assert positions == [1, 2]  # the next step, not the first again
    assert len(smtp_server.messages) == 2


# --- Calls ------------------------------------------------------------------------------


def test_a_call_with_a_promise_and_a_summary_records_both_and_mails_the_contact(
    account, invoices, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    contact = account.contacts.get()
    with django_capture_on_commit_callbacks(execute=True):
        call = workspace.call_log(
            customer=account, actor=collector, contact=contact, outcome="reached", cause="stuff_happens",
            notes="Cash is tight until the 15th.", email_summary=True, on=LATE,
            promise=workspace.PromiseTerms(Decimal("1200.00"), LATE + dt.timedelta(days=10), invoices),
        )
    assert call.promise.amount == Decimal("1200.00")
    assert call.summary_sent_to == "anna@acme.test"
    (message,) = smtp_server.messages
    assert message["To"].endswith("<anna@acme.test>")
    body = message.get_body(("plain",)).get_content()
    assert "Cash is tight until the 15th." in body and "EUR 1,200.00" in body
    assert account.dunning_cycles.filter(cause="").count() == 0  # no open cycle yet: nothing to steer
    assert len(events(account, EventKind.CALL)) == 2  # the call and the summary sent


def test_a_promise_on_a_call_that_reached_no_one_is_refused(account, invoices, collector):
    with pytest.raises(ValidationError):
        workspace.call_log(customer=account, actor=collector, contact=None, outcome="no_answer", on=LATE,
                           promise=workspace.PromiseTerms(Decimal("10"), LATE, invoices[:1]))
    assert not account.calls.exists()


# --- Payment plans ------------------------------------------------------------------------


def schedule(*parts: tuple[int, str]) -> list[tuple[dt.date, Decimal]]:
    return [(LATE + dt.timedelta(days=d), Decimal(a)) for d, a in parts]


def test_a_payment_received_before_the_promise_was_made_that_settles_its_invoice_keeps_it_at_once(
    account, invoices, collector
):
    """The customer had paid the day before; the collector, not knowing, took
    a promise; the payment is entered the day after with its real date."""
    _, large = invoices
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("700.00"),
                                       promised_on=LATE + dt.timedelta(days=5), invoices=[large], on=LATE)

    pay(account, LATE - dt.timedelta(days=1), (large, "700.00"))

    promise.refresh_from_db()
    assert (promise.status, promise.resolved_on) == (PromiseStatus.KEPT, LATE)  # not before it was made
    assert promise.paid_amount == Decimal("700.00")
    kept = [s for s in events(account, EventKind.PROMISE) if s.startswith("Promise kept")]
    assert kept == ["Promise kept: EUR 700.00 paid of EUR 700.00 promised for "
                    f"{format_day(LATE + dt.timedelta(days=5))}"]
    assert not account.dunning_pauses.filter(lifted_at__isnull=True).exists()


def test_a_part_payment_received_before_the_promise_was_made_leaves_it_open(account, invoices, collector):
    """What a promise counts is what came in after it was made; a part paid
    before is already off the balance the promise was made on."""
    _, large = invoices
    pay(account, LATE - dt.timedelta(days=1), (large, "300.00"))
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("400.00"),
                                       promised_on=LATE + dt.timedelta(days=5), invoices=[large], on=LATE)

    workspace.commitments_check(on=LATE - dt.timedelta(days=1), customer_ids=[account.pk])

    promise.refresh_from_db()
    assert promise.status == PromiseStatus.OPEN


def test_a_payment_recorded_the_same_morning_does_not_keep_a_promise_made_that_afternoon(
    account, invoices, collector
):
    """500 of the 700 came in this morning; on the call that afternoon the
    customer promises the remaining 200 by next week."""
    _, large = invoices
    pay(account, LATE, (large, "500.00"))
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("200.00"),
                                       promised_on=LATE + dt.timedelta(days=7), invoices=[large], on=LATE)

    workspace.commitments_check(on=LATE)

    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == (PromiseStatus.OPEN, Decimal("0.00"))
    assert large.number not in chased(account, on=LATE + dt.timedelta(days=1))
    pay(account, LATE, (large, "200.00"))  # the rest, the same day: that keeps it
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == (PromiseStatus.KEPT, Decimal("200.00"))


def test_a_payment_recorded_the_same_morning_pays_no_instalment_of_a_plan_made_that_afternoon(
    account, invoices, collector
):
    """600 of the 1,200 came in this morning; the rest goes on a plan of two
    instalments of 300 that afternoon. Nothing has been paid towards it yet."""
    small, large = invoices
    pay(account, LATE, (large, "600.00"))
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "300.00"), (40, "300.00")))

    workspace.commitments_check(on=LATE)

    plan.refresh_from_db()
    statuses = list(plan.instalments.order_by("number").values_list("status", flat=True))
    assert (plan.status, plan.paid_amount, statuses) == (
        PlanStatus.ACTIVE, Decimal("0.00"), [InstalmentStatus.DUE, InstalmentStatus.DUE])
    pay(account, LATE + dt.timedelta(days=2), (small, "300.00"))
    plan.refresh_from_db()
    assert plan.paid_amount == Decimal("300.00")
    assert plan.instalments.get(number=1).status == InstalmentStatus.PAID


def test_a_payment_after_the_grace_period_does_not_keep_a_promise(account, invoices, collector):
    small, _ = invoices
    promise = workspace.promise_record(
        customer=account, actor=collector, amount=Decimal("500.00"), promised_on=LATE + dt.timedelta(days=7),
        invoices=[small], on=LATE,
    )

    # Recorded three days after the grace period, before any daily check ran.
    paid_on = promise.broken_after + dt.timedelta(days=3)
    pay(account, paid_on, (small, "500.00"))
    promise.refresh_from_db()
    assert promise.status == PromiseStatus.OPEN  # not kept; breaking is the daily check's

    assert workspace.commitments_check(on=paid_on)["broken"] == 1
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == (PromiseStatus.BROKEN, Decimal("0.00"))


def test_a_payment_received_in_the_grace_period_but_entered_after_the_morning_check_keeps_the_promise(
    account, invoices, collector
):
    """The money came in on the last day of grace; the bank statement is read
    the next morning, after the daily check took the promise for broken."""
    small, _ = invoices
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                                       promised_on=LATE + dt.timedelta(days=3), invoices=[small], on=LATE)
    assert workspace.commitments_check(on=promise.broken_after + dt.timedelta(days=1))["broken"] == 1

    pay(account, promise.broken_after, (small, "500.00"))

    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == (PromiseStatus.KEPT, Decimal("500.00"))
    assert not WorkItem.objects.filter(kind=WorkKind.PROMISE_BROKEN, status=WorkStatus.OPEN).exists()
    assert events(account, EventKind.PROMISE)[0].startswith("Promise kept")  # newest first


def test_a_payment_after_the_grace_period_entered_after_the_break_leaves_the_promise_broken(
    account, invoices, collector
):
    small, _ = invoices
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                                       promised_on=LATE + dt.timedelta(days=3), invoices=[small], on=LATE)
    workspace.commitments_check(on=promise.broken_after + dt.timedelta(days=2))

    pay(account, promise.broken_after + dt.timedelta(days=1), (small, "500.00"))

    promise.refresh_from_db()
    assert promise.status == PromiseStatus.BROKEN


def test_payments_entered_out_of_date_order_keep_the_promise_the_earlier_one_kept(
    account, invoices, collector
):
    """A bank statement read newest first: the later payment, entered first,
    must not break the promise the earlier one (entered a moment later) kept."""
    small, large = invoices
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                                       promised_on=LATE + dt.timedelta(days=3), invoices=[small], on=LATE)

    pay(account, promise.broken_after + dt.timedelta(days=5), (large, "700.00"))
    pay(account, LATE + dt.timedelta(days=2), (small, "500.00"))

    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == (PromiseStatus.KEPT, Decimal("500.00"))
    assert not WorkItem.objects.filter(kind=WorkKind.PROMISE_BROKEN).exists()
    assert not any("Promise broken" in s for s in events(account, EventKind.PROMISE))


def test_an_instalment_paid_after_its_grace_period_is_missed(account, invoices, collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    first = plan.instalments.get(number=1)
    late = first.due_on + dt.timedelta(days=plan.grace_days + 1)
    small, large = invoices

    pay(account, late, (small, "500.00"), (large, "100.00"))  # the first instalment's amount, too late
    first.refresh_from_db()
    assert first.status == "due"  # not paid; missing it is the daily check's to record

    assert workspace.commitments_check(on=late)["missed"] == 1
    plan.refresh_from_db(), first.refresh_from_db()
    assert (plan.status, first.status) == (PlanStatus.BROKEN, "missed")


def test_an_instalment_paid_in_its_grace_period_but_entered_after_the_morning_check_keeps_the_plan(
    account, invoices, collector
):
    """The first instalment came in on its last day of grace; the statement
    is read the next morning, after the daily check took it for missed."""
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    first = plan.instalments.get(number=1)
    last_day = first.due_on + dt.timedelta(days=plan.grace_days)
    assert workspace.commitments_check(on=last_day + dt.timedelta(days=1))["missed"] == 1
    small, large = invoices

    pay(account, last_day, (small, "500.00"), (large, "100.00"))

    plan.refresh_from_db(), first.refresh_from_db()
    assert (plan.status, first.status, plan.paid_amount) == (PlanStatus.ACTIVE, "paid", Decimal("600.00"))
    assert chased(account, on=last_day + dt.timedelta(days=2)) == set()  # dunning waits again
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED, status=WorkStatus.OPEN).exists()
    assert any("back in good standing" in s for s in events(account, EventKind.PAYMENT_PLAN))
    # The second instalment is judged as usual.
    second_late = LATE + dt.timedelta(days=40 + plan.grace_days + 1)
    assert workspace.commitments_check(on=second_late)["missed"] == 1


def test_a_plan_back_in_good_standing_leaves_lifted_the_pause_a_person_lifted(account, invoices, collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    last_day = plan.instalments.get(number=1).due_on + dt.timedelta(days=plan.grace_days)
    workspace.commitments_check(on=last_day + dt.timedelta(days=1))
    small, large = invoices
    by_hand = DunningPause.objects.get(plan=plan, invoice=large)
    # Lifted by a person, not by the break.
    DunningPause.objects.filter(pk=by_hand.pk).update(lifted_by=collector)

    pay(account, last_day, (small, "500.00"), (large, "100.00"))

    held = dict(DunningPause.objects.filter(plan=plan).values_list("invoice_id", "lifted_at"))
    assert held[small.pk] is None and held[large.pk] is not None


def test_an_instalment_paid_after_its_grace_period_entered_after_the_break_leaves_the_plan_broken(
    account, invoices, collector
):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    last_day = plan.instalments.get(number=1).due_on + dt.timedelta(days=plan.grace_days)
    workspace.commitments_check(on=last_day + dt.timedelta(days=2))
    small, large = invoices

    pay(account, last_day + dt.timedelta(days=1), (small, "500.00"), (large, "100.00"))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert account.dunning_pauses.filter(lifted_at__isnull=True).count() == 0


def test_a_broken_plan_whose_invoices_went_on_a_new_plan_stays_broken(account, invoices, collector):
    """One live plan per invoice: the new plan holds them now, whatever the old one turns out."""
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    last_day = plan.instalments.get(number=1).due_on + dt.timedelta(days=plan.grace_days)
    workspace.commitments_check(on=last_day + dt.timedelta(days=1))
    new = workspace.plan_propose(customer=account, actor=collector, invoices=invoices,
                                 on=last_day + dt.timedelta(days=1),
                                 instalments=schedule((20, "600.00"), (50, "600.00")))
    small, large = invoices

    pay(account, last_day, (small, "500.00"), (large, "100.00"))

    plan.refresh_from_db(), new.refresh_from_db()
    assert (plan.status, new.status) == (PlanStatus.BROKEN, PlanStatus.ACTIVE)


def test_a_missed_instalment_says_how_much_was_short_by_its_deadline_not_after(account, invoices, collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    first = plan.instalments.get(number=1)
    deadline = first.due_on + dt.timedelta(days=plan.grace_days)
    small, large = invoices
    pay(account, deadline, (small, "200.00"))
    pay(account, deadline + dt.timedelta(days=1), (small, "300.00"), (large, "100.00"))  # the rest, late

    workspace.commitments_check(on=deadline + dt.timedelta(days=1))

    item = WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED)
    assert item.title.endswith(f"EUR 400.00 short by {format_day(deadline, year=False)}")
    assert f"EUR 400.00 short by {format_day(deadline)}" in events(account, EventKind.PAYMENT_PLAN)[0]
    plan.refresh_from_db()
    assert plan.paid_amount == Decimal("600.00")  # what came in, late or not


def test_a_payment_received_before_the_plan_was_agreed_that_settles_its_invoices_completes_it_at_once(
    account, invoices, collector
):
    """The customer had paid the day before; the collector, not knowing, agreed
    a plan; the payment is entered the day after with its real date."""
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices

    pay(account, LATE - dt.timedelta(days=1), (small, "500.00"), (large, "700.00"))

    plan.refresh_from_db()
    assert (plan.status, plan.paid_amount) == (PlanStatus.COMPLETED, Decimal("1200.00"))
    assert not account.dunning_pauses.filter(lifted_at__isnull=True).exists()


def test_a_backdated_payment_does_not_lower_what_the_plan_shows_paid(account, invoices, collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, _ = invoices

    pay(account, LATE + dt.timedelta(days=8), (small, "100.00"))
    pay(account, LATE + dt.timedelta(days=5), (small, "50.00"))  # entered late, with its real date

    plan.refresh_from_db()
    assert (plan.status, plan.paid_amount) == (PlanStatus.ACTIVE, Decimal("150.00"))


def test_the_plan_limit_counts_the_plans_already_in_force_on_the_account(account, invoices, collector):
    small, large = invoices  # EUR 500, EUR 700
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("1000.00")
    rules.save()

    first = workspace.plan_propose(customer=account, actor=collector, invoices=[small], on=LATE,
                                   instalments=schedule((10, "250.00"), (40, "250.00")))
    second = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=LATE,
                                    instalments=schedule((10, "350.00"), (40, "350.00")))

    assert first.status == PlanStatus.ACTIVE  # 500 alone is within the limit
    assert second.status == PlanStatus.AWAITING_APPROVAL  # 500 + 700 is not


def test_a_plan_within_the_collectors_limit_starts_at_once_and_pauses_its_invoices(
    account, invoices, collector
):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    assert plan.status == PlanStatus.ACTIVE
    assert chased(account, on=LATE + dt.timedelta(days=40)) == set()
    kinds = set(account.dunning_pauses.values_list("kind", flat=True))
    assert kinds == {PauseKind.PAYMENT_PLAN}


def test_a_plan_above_the_limit_waits_for_a_manager_and_pauses_nothing_until_approved(
    account, invoices, collector, manager
):
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("1000.00")
    rules.save()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    assert plan.status == PlanStatus.AWAITING_APPROVAL
    assert len(chased(account, on=LATE)) == 2
    with pytest.raises(ValidationError):
        workspace.plan_decide(plan=plan, manager=collector, approve=True, note="ok", on=LATE)
    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Long-standing customer", on=LATE)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE and plan.decided_by == manager
    assert chased(account, on=LATE) == set()


def test_instalments_that_do_not_add_up_are_refused(account, invoices, collector):
    with pytest.raises(ValidationError, match="add up"):
        workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                               instalments=schedule((10, "600.00"), (40, "500.00")))
    assert not account.payment_plans.exists()


def test_a_missed_instalment_breaks_the_plan_and_dunning_resumes(account, invoices, collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices
    workspace.payment_record(customer=account, amount=Decimal("600.00"), currency="EUR",
                             received_on=LATE + dt.timedelta(days=9),
                             allocations=[(small, Decimal("500.00")), (large, Decimal("100.00"))])
    first, second = plan.instalments.order_by("number")
    first.refresh_from_db()
    assert first.status == "paid"
    assert any(s.startswith("Instalment 1 of 2 paid") for s in events(account, EventKind.PAYMENT_PLAN))
    grace = plan.grace_days
    assert workspace.commitments_check(on=LATE + dt.timedelta(days=40 + grace))["missed"] == 0
    assert workspace.commitments_check(on=LATE + dt.timedelta(days=41 + grace))["missed"] == 1
    plan.refresh_from_db()
    second.refresh_from_db()
    assert (plan.status, second.status) == (PlanStatus.BROKEN, "missed")
    assert chased(account, on=LATE + dt.timedelta(days=41 + grace)) == {large.number}
    item = WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED)
    assert "EUR 600.00 short" in item.title


def test_a_plan_paid_in_full_completes(account, invoices, collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices
    workspace.payment_record(customer=account, amount=Decimal("1200.00"), currency="EUR", received_on=LATE,
                             allocations=[(small, Decimal("500.00")), (large, Decimal("700.00"))])
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


# --- Withdrawing and ending plans -------------------------------------------------------------


def plan_pauses_in_force(plan) -> int:
    return DunningPause.objects.filter(plan=plan, lifted_at__isnull=True).count()


def approval_above(amount: str) -> None:
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal(amount)
    rules.save()


def test_a_plan_the_customer_stops_is_ended_with_a_reason_and_only_its_own_pauses_lift(
    account, invoices, collector, manager
):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices
    pay(account, LATE + dt.timedelta(days=9), (small, "300.00"), (large, "300.00"))
    day = LATE + dt.timedelta(days=12)
    hold = workspace.pause_set(customer=account, actor=collector, reason="CFO away", on=day,
                               ends_on=day + dt.timedelta(days=3))
    # One of the plan's pauses a manager had lifted already: it stays as they left it.
    lifted_at = dt.datetime(2026, 3, 25, 8, 0, tzinfo=dt.UTC)
    DunningPause.objects.filter(plan=plan, invoice=small).update(lifted_at=lifted_at, lifted_by=manager)

    ended = workspace.plan_withdraw(plan=plan, actor=collector, reason="Pays the rest by card", on=day)

    plan.refresh_from_db()
    assert ended == plan and plan.status == PlanStatus.CANCELLED
    assert plan_pauses_in_force(plan) == 0
    assert DunningPause.objects.get(plan=plan, invoice=small).lifted_by == manager
    assert DunningPause.objects.get(plan=plan, invoice=small).lifted_at == lifted_at
    assert DunningPause.objects.get(plan=plan, invoice=large).lifted_by == collector
    hold.refresh_from_db()
    assert hold.lifted_at is None  # not the plan's to lift
    assert chased(account, on=day) == set()
    assert chased(account, on=day + dt.timedelta(days=4)) == {small.number, large.number}
    event = TimelineEvent.objects.filter(customer=account, kind=EventKind.PAYMENT_PLAN).latest("pk")
    assert event.summary == ("Payment plan of EUR 1,200.00 ended with 1 of 2 instalments paid (EUR 600.00): "
                             "Pays the rest by card; dunning goes on where it stood")
    assert (event.actor, event.details["before"], event.details["after"]) == (
        collector, {"status": PlanStatus.ACTIVE}, {"status": PlanStatus.CANCELLED})
    # Its invoices are free for a new arrangement.
    workspace.promise_record(customer=account, actor=collector, amount=Decimal("600.00"),
                             promised_on=day + dt.timedelta(days=5), invoices=invoices, on=day)


def test_a_proposal_waiting_for_a_manager_is_withdrawn_by_whoever_proposed_it_or_by_a_manager(
    account, invoices, collector, other_collector, manager
):
    approval_above("1000.00")
    first = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                   instalments=schedule((10, "600.00"), (40, "600.00")))
    workspace.plan_withdraw(plan=first, actor=collector, reason="The customer changed their mind", on=LATE)
    first.refresh_from_db()
    assert first.status == PlanStatus.CANCELLED
    assert TimelineEvent.objects.filter(customer=account).latest("pk").summary == (
        "Payment plan of EUR 1,200.00 withdrawn before a manager decided: The customer changed their mind")

    second = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                    instalments=schedule((10, "600.00"), (40, "600.00")))
    account.collector = other_collector  # the account changed hands
    account.save(update_fields=["collector"])
    with pytest.raises(ValidationError, match="Only carla, who proposed it, or a manager may withdraw it"):
        workspace.plan_withdraw(plan=second, actor=other_collector, reason="Not mine", on=LATE)
    second.refresh_from_db()
    assert second.status == PlanStatus.AWAITING_APPROVAL

    workspace.plan_withdraw(plan=second, actor=manager, reason="Replaced by a promise", on=LATE)
    second.refresh_from_db()
    assert second.status == PlanStatus.CANCELLED
    assert not DunningPause.objects.filter(plan__in=[first, second]).exists()


def test_a_payment_that_settles_a_proposal_s_invoices_withdraws_it_with_nothing_left_to_pay(
    account, invoices, collector, manager
):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices

    pay(account, LATE + dt.timedelta(days=3), (small, "500.00"), (large, "700.00"))

    plan.refresh_from_db()
    assert (plan.status, plan.paid_amount) == (PlanStatus.CANCELLED, Decimal("1200.00"))
    event = TimelineEvent.objects.filter(customer=account, kind=EventKind.PAYMENT_PLAN).latest("pk")
    assert event.summary == ("Payment plan of EUR 1,200.00 withdrawn before a manager decided: payments "
                             "received left nothing to pay (EUR 1,200.00 paid)")
    assert (event.details["before"], event.details["after"]) == (
        {"status": PlanStatus.AWAITING_APPROVAL}, {"status": PlanStatus.CANCELLED})
    # Nothing is left for the manager to approve.
    with pytest.raises(ValidationError, match=r"withdrawn on .*: payments received left nothing to pay"):
        workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Fine",
                              on=LATE + dt.timedelta(days=3))
    assert not DunningPause.objects.filter(plan=plan).exists()


def test_a_proposal_part_paid_before_the_manager_decides_shows_it_and_the_payment_counts_once_approved(
    account, invoices, collector, manager
):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices

    pay(account, LATE + dt.timedelta(days=3), (small, "300.00"))

    plan.refresh_from_db()
    assert (plan.status, plan.paid_amount) == (PlanStatus.AWAITING_APPROVAL, Decimal("300.00"))
    # Approved as proposed: what came in counts towards the first instalment, as it would in force.
    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Fine",
                          on=LATE + dt.timedelta(days=4))
    pay(account, LATE + dt.timedelta(days=9), (small, "200.00"), (large, "100.00"))
    assert [status for *_, status in instalments_of(plan)] == [InstalmentStatus.PAID, InstalmentStatus.DUE]


def test_a_proposal_whose_first_instalment_came_in_before_its_date_can_be_approved_after_it(
    account, invoices, collector, manager
):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices
    pay(account, LATE + dt.timedelta(days=3), (small, "500.00"), (large, "100.00"))

    # Its date has passed, but nothing of it is owed: the schedule still lies ahead.
    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Paid the first already",
                          on=LATE + dt.timedelta(days=20))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert [status for *_, status in instalments_of(plan)] == [InstalmentStatus.PAID, InstalmentStatus.DUE]
    assert chased(account, on=LATE + dt.timedelta(days=20)) == set()


def test_a_plan_a_manager_decided_on_is_ended_by_a_manager_only(account, invoices, collector, manager):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Long-standing customer", on=LATE)

    with pytest.raises(ValidationError, match="approved by a manager: a manager ends it"):
        workspace.plan_withdraw(plan=plan, actor=collector, reason="Customer asked", on=LATE)
    plan.refresh_from_db()
    assert (plan.status, plan_pauses_in_force(plan)) == (PlanStatus.ACTIVE, 2)

    workspace.plan_withdraw(plan=plan, actor=manager, reason="Customer asked", on=LATE)
    plan.refresh_from_db()
    assert (plan.status, plan_pauses_in_force(plan)) == (PlanStatus.CANCELLED, 0)


def test_a_plan_ended_after_its_approval_takes_the_tell_the_customer_item_off_the_list(
    account, invoices, collector, manager
):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Long-standing customer", on=LATE)
    (told,) = WorkItem.objects.filter(assignee=collector, kind=WorkKind.DECIDED, status=WorkStatus.OPEN)
    assert "approved" in told.title

    workspace.plan_withdraw(plan=plan, actor=manager, reason="Pays in one go next week", on=LATE)

    # The collector is not sent to tell the customer of a plan that no longer holds.
    told.refresh_from_db()
    assert (told.status, told.done_by) == (WorkStatus.DONE, manager)


def test_a_plan_a_manager_set_up_beyond_the_collectors_limit_is_a_managers_to_end(
    account, invoices, collector, manager
):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=manager, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    assert plan.status == PlanStatus.ACTIVE

    with pytest.raises(ValidationError, match=re.escape("limit of EUR 1,000.00: a manager ends it")):
        workspace.plan_withdraw(plan=plan, actor=collector, reason="Customer asked", on=LATE)
    assert plan_pauses_in_force(plan) == 2


def test_a_plan_a_manager_set_up_in_another_currency_is_a_managers_to_end_and_the_collector_is_told_why(
    collector, manager, make_customer, make_invoice
):
    approval_above("1000.00")
    account = make_customer(name="Boston Gears", currency="USD")
    invoice = make_invoice(account, issued=DUE - dt.timedelta(days=30), due=DUE, amount="500.00")
    plan = workspace.plan_propose(customer=account, actor=manager, invoices=[invoice], on=LATE,
                                  instalments=schedule((10, "250.00"), (40, "250.00")))
    assert plan.status == PlanStatus.ACTIVE

    with pytest.raises(ValidationError) as refused:
        workspace.plan_withdraw(plan=plan, actor=collector, reason="Customer asked", on=LATE)

    assert refused.value.messages == ["Collectors agree plans in EUR only (up to EUR 1,000.00), not in USD: "
                                      "a manager ends it."]


def test_a_plan_is_ended_only_with_a_reason_and_only_once(account, invoices, collector, manager):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    with pytest.raises(ValidationError, match="Say why the plan ends"):
        workspace.plan_withdraw(plan=plan, actor=collector, reason="  ", on=LATE)
    assert plan_pauses_in_force(plan) == 2
    workspace.plan_withdraw(plan=plan, actor=collector, reason="Customer asked", on=LATE)
    said = events(account, EventKind.PAYMENT_PLAN)

    with pytest.raises(ValidationError, match=r"payment plan was ended by carla on .*: Customer asked\."):
        workspace.plan_withdraw(plan=plan, actor=collector, reason="Again", on=LATE)
    with pytest.raises(ValidationError, match=r"This plan was ended by carla on .*: Customer asked"):
        workspace.plan_decide(plan=plan, manager=manager, approve=True, note="ok", on=LATE)
    assert events(account, EventKind.PAYMENT_PLAN) == said
    assert workspace.commitments_check(on=LATE + dt.timedelta(days=60))["missed"] == 0
    plan.refresh_from_db()
    assert plan.status == PlanStatus.CANCELLED


def test_a_completed_plan_is_not_ended_and_the_refusal_says_when_it_was_completed(
    account, invoices, collector
):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    small, large = invoices
    paid_on = LATE + dt.timedelta(days=5)
    with frozen(paid_on):
        pay(account, paid_on, (small, "500.00"), (large, "700.00"))
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED

    refusal = workspace.plan_withdraw_refusal(collector, plan)
    assert refusal == (f"This payment plan was completed on {format_day(paid_on)}: EUR 1,200.00 paid. Only a "
                       "plan waiting for a manager or in good standing can be withdrawn or ended.")
    with pytest.raises(ValidationError, match=f"completed on {format_day(paid_on)}"):
        workspace.plan_withdraw(plan=plan, actor=collector, reason="Customer asked", on=paid_on)


def test_a_broken_plan_is_not_ended_and_the_refusal_says_which_instalment_broke_it_and_when(
    account, invoices, collector
):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    late = plan.instalments.get(number=1).due_on + dt.timedelta(days=plan.grace_days + 1)
    with frozen(late):
        assert workspace.commitments_check(on=late)["missed"] == 1
    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN

    assert workspace.plan_withdraw_refusal(collector, plan) == (
        f"This payment plan was broken on {format_day(late)}: instalment 1 was missed, and dunning resumed. "
        "Only a plan waiting for a manager or in good standing can be withdrawn or ended.")


def test_a_rejected_proposal_is_not_withdrawn_and_the_refusal_says_who_rejected_it(
    account, invoices, collector, manager
):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    with frozen(LATE):
        workspace.plan_decide(plan=plan, manager=manager, approve=False, note="Too long", on=LATE)
    plan.refresh_from_db()

    assert workspace.plan_withdraw_refusal(collector, plan).startswith(
        f"This payment plan was already rejected by maria on {format_day(LATE)}: Too long. Only a plan")


def test_another_collector_cannot_end_a_plan_on_an_account_not_theirs(account, invoices, collector,
                                                                      other_collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    with pytest.raises(PermissionDenied):
        workspace.plan_withdraw(plan=plan, actor=other_collector, reason="x", on=LATE)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE


def test_dunning_resumes_where_the_cycle_stood_after_a_plan_is_ended(
    account, invoices, collector, plan_and_deliver, smtp_server
):
    first = DUE + dt.timedelta(days=3)
    assert plan_and_deliver(first)["emailed"] == 1  # step 1 of the prompt ladder
    plan = workspace.plan_propose(
        customer=account, actor=collector, invoices=invoices, on=first,
        instalments=[(first + dt.timedelta(days=30), Decimal("600.00")),
                     (first + dt.timedelta(days=60), Decimal("600.00"))],
    )
    day = first + dt.timedelta(days=20)
    # While the plan stands, nothing more is planned, though step 2 has long been due.
    assert plan_and_deliver(day).get("emailed", 0) == 0
    workspace.plan_withdraw(plan=plan, actor=collector, reason="Customer refinanced", on=day)
    for later in range(1, 40):
        plan_and_deliver(day + dt.timedelta(days=later))

    positions = list(DunningAction.objects.filter(customer=account).order_by("planned_on")
                     .values_list("step__position", "planned_on"))
    # The next step the day after, not the first again; then each one after it, none left out.
    assert [p for p, _ in positions] == [1, 2, 3, 4]
    assert positions[1][1] == day + dt.timedelta(days=1)


# --- Disputes -------------------------------------------------------------------------------


def test_a_dispute_routes_to_the_department_and_takes_the_invoice_out_of_dunning(
    account, invoices, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    Department.objects.create(name="Logistics", email="logistics@ours.test", reasons=["our_delivery"])
    small, large = invoices
    with django_capture_on_commit_callbacks(execute=True):
        dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                         reason=DisputeReason.OUR_DELIVERY,
                                         description="Pallet arrived damaged; half the goods unusable.")
    assert dispute.department.name == "Logistics"
    # The timeline keeps what the customer said, as a call's notes: a collector
    # reading the account later should not have to open the dispute to learn it.
    assert events(account, EventKind.DISPUTE) == [
        f"Dispute opened on {small.number}: Our delivery problem (late, damaged, incomplete); sent to "
        "Logistics <logistics@ours.test> — Pallet arrived damaged; half the goods unusable."
    ]
    (message,) = smtp_server.messages
    assert message["To"] == "logistics@ours.test"
    body = message.get_content()
    assert small.number in body and "Pallet arrived damaged" in body and account.name in body
    assert chased(account, on=LATE + dt.timedelta(days=365)) == {large.number}
    preview = next_step(account, on=LATE)
    assert [i.number for i in preview.invoices] == [large.number]
    assert [(i.number, why) for i, why in preview.held] == [(small.number, "Open dispute until resolved")]
    with pytest.raises(ValidationError, match="already has an open dispute"):
        workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                               reason=DisputeReason.PRICE, description="again")


def test_a_dispute_resolved_with_a_credit_note_reduces_the_invoice_and_resumes_dunning(
    account, invoices, collector
):
    small, _ = invoices
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="Scratched")
    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("150.00"), note="Goodwill credit", on=LATE)
    small.refresh_from_db()
    assert small.open_amount == Decimal("350.00")
    dispute.refresh_from_db()
    assert dispute.credit_note.number.startswith("CN-") and dispute.credit_note.amount == Decimal("150.00")
    assert small.number in chased(account, on=LATE)


@pytest.mark.parametrize(("outcome", "amount", "open_after"), [
    (DisputeOutcome.CREDIT_NOTE, "150.00", "1050.00"),
    (DisputeOutcome.CORRECTED_INVOICE, "450.00", "1150.00"),
], ids=["credit-note", "corrected-total"])
def test_a_dispute_settled_by_a_credit_recomputes_the_account_s_figures_as_of_today(
    account, invoices, collector, outcome, amount, open_after, django_capture_on_commit_callbacks
):
    small, _ = invoices
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="Scratched")
    today = LATE + dt.timedelta(days=3)
    with frozen(today), django_capture_on_commit_callbacks(execute=True):
        workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=outcome,
                                  amount=Decimal(amount), note="Goodwill", on=today)

    behaviour = PaymentBehaviour.objects.get(customer=account)
    assert (behaviour.computed_on, behaviour.open_amount, behaviour.overdue_amount) == (
        today, Decimal(open_after), Decimal(open_after)
    )


def test_a_dispute_credit_that_settles_a_promised_invoice_keeps_the_promise_at_once(
    account, invoices, collector, manager
):
    """As a payment does: the promise ends kept today and its pause lifts,
    rather than waiting for the daily check."""
    small, _ = invoices
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                                       promised_on=LATE + dt.timedelta(days=7), invoices=[small], on=LATE)
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="All of it broken")

    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("500.00"), note="Credited in full", on=LATE)

    promise.refresh_from_db()
    assert (promise.status, promise.resolved_on) == (PromiseStatus.KEPT, LATE)
    assert not DunningPause.objects.filter(promise=promise, lifted_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_resolving_a_dispute_takes_the_account_s_lock_before_the_invoice_s(
    account, invoices, collector, manager
):
    """A payment locks the account, then its invoices: a resolution taking
    the invoice first could hold what that payment waits for while it waits
    for the account, a deadlock. It waits for the account first."""
    small, _ = invoices
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="Scratched")
    errors = []

    def resolver() -> None:
        try:
            workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.CREDIT_NOTE,
                                      amount=Decimal("100.00"), note="Goodwill", on=LATE)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    with held_by_another_worker(Customer, account.pk):
        thread = threading.Thread(target=resolver)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waits_for_a_lock():
            assert time.monotonic() < deadline, "the resolution never waited for the account"
            time.sleep(0.05)
        with transaction.atomic():
            assert Invoice.objects.select_for_update(nowait=True).filter(pk=small.pk).exists()
    thread.join(timeout=30)

    assert errors == []
    small.refresh_from_db()
    assert small.open_amount == Decimal("400.00")


def _waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0


def test_a_corrected_invoice_keeps_what_was_paid(account, invoices, collector):
    _, large = invoices
    workspace.payment_record(customer=account, amount=Decimal("100.00"), currency="EUR", received_on=LATE,
                             allocations=[(large, Decimal("100.00"))])
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=large, on=LATE,
                                     reason=DisputeReason.PRICE, description="Contract price is 650")
    with pytest.raises(ValidationError):
        workspace.dispute_resolve(dispute=dispute, actor=collector, on=LATE, note="x",
                                  outcome=DisputeOutcome.CORRECTED_INVOICE, amount=Decimal("50.00"))
    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.CORRECTED_INVOICE,
                              amount=Decimal("650.00"), note="Price corrected", on=LATE)
    large.refresh_from_db()
    assert (large.total_amount, large.open_amount) == (Decimal("650.00"), Decimal("550.00"))


def test_a_credit_beyond_the_collectors_limit_is_a_managers_decision(account, invoices, collector, manager):
    small, large = invoices
    rules = CollectionRules.current()
    rules.credit_without_manager_amount = Decimal("100.00")
    rules.save()
    credit = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                    reason=DisputeReason.QUALITY, description="Scratched")
    price = workspace.dispute_open(customer=account, actor=collector, invoice=large, on=LATE,
                                   reason=DisputeReason.PRICE, description="Contract price is 500")

    with pytest.raises(ValidationError, match=r"Taking EUR 150\.00 off this invoice is a manager's decision"):
        workspace.dispute_resolve(dispute=credit, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                                  amount=Decimal("150.00"), note="Goodwill", on=LATE)
    with pytest.raises(ValidationError, match=r"up to EUR 100\.00"):
        workspace.dispute_resolve(dispute=price, actor=collector, outcome=DisputeOutcome.CORRECTED_INVOICE,
                                  amount=Decimal("500.00"), note="Price corrected", on=LATE)
    small.refresh_from_db(), large.refresh_from_db(), credit.refresh_from_db()
    assert (small.open_amount, large.total_amount) == (Decimal("500.00"), Decimal("700.00"))
    assert credit.status == "open" and not CreditNote.objects.exists()

    workspace.dispute_resolve(dispute=credit, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("100.00"), note="Within the limit", on=LATE)
    workspace.dispute_resolve(dispute=price, actor=manager, outcome=DisputeOutcome.CORRECTED_INVOICE,
                              amount=Decimal("500.00"), note="Price corrected", on=LATE)
    small.refresh_from_db(), large.refresh_from_db()
    assert (small.open_amount, large.total_amount) == (Decimal("400.00"), Decimal("500.00"))
    assert rules.credit_needs_manager(amount=Decimal("1.00"), currency="USD")  # other currencies: always


def test_a_dispute_on_an_invoice_paid_in_full_since_closes_as_paid_not_as_rejected(
    account, invoices, collector
):
    small, _ = invoices
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="Scratched")
    pay(account, LATE + dt.timedelta(days=2), (small, "500.00"))

    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.PAID_IN_FULL,
                              note="They paid in full; no complaint any more", on=LATE + dt.timedelta(days=3))

    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome, dispute.taken_off_amount) == (
        "resolved", DisputeOutcome.PAID_IN_FULL, Decimal("0.00"))
    assert not account.dunning_pauses.filter(dispute=dispute, lifted_at__isnull=True).exists()
    summary = events(account, EventKind.DISPUTE)[0]
    assert summary == (f"Dispute on {small.number} resolved: paid in full, nothing left to settle "
                       "— They paid in full; no complaint any more")


@pytest.mark.parametrize("outcome, amount", [
    (DisputeOutcome.CREDIT_NOTE, "100.00"), (DisputeOutcome.CORRECTED_INVOICE, "400.00"),
], ids=["credit-note", "corrected-invoice"])
def test_a_credit_on_an_invoice_paid_in_full_is_refused_and_changes_nothing(
    account, invoices, collector, outcome, amount
):
    small, _ = invoices
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="Scratched")
    pay(account, LATE, (small, "500.00"))

    with pytest.raises(ValidationError) as refused:
        workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=outcome, amount=Decimal(amount),
                                  note="Goodwill", on=LATE)

    assert refused.value.message_dict == {"outcome": [
        f"Invoice {small.number} is paid in full: nothing is open to credit or correct. "
        "Close the dispute as paid in full, or as rejected."
    ]}
    small.refresh_from_db(), dispute.refresh_from_db()
    assert (small.total_amount, small.open_amount, small.status) == (
        Decimal("500.00"), Decimal("0.00"), InvoiceStatus.PAID)
    assert dispute.status == "open" and not CreditNote.objects.exists()


def test_a_dispute_closes_as_paid_in_full_only_once_nothing_is_open(account, invoices, collector):
    small, _ = invoices
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="Scratched")
    pay(account, LATE, (small, "300.00"))

    with pytest.raises(ValidationError) as refused:
        workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.PAID_IN_FULL,
                                  note="Paid", on=LATE)

    assert refused.value.message_dict == {"outcome": [
        f"Invoice {small.number} still has EUR 200.00 open: it is not paid in full."
    ]}
    dispute.refresh_from_db()
    assert dispute.status == "open"


def test_another_collectors_account_cannot_be_worked(account, invoices, other_collector):
    with pytest.raises(Exception, match="not change it"):
        workspace.dispute_open(customer=account, actor=other_collector, invoice=invoices[0], on=LATE,
                               reason=DisputeReason.OTHER, description="x")
    assert not account.disputes.exists()


# --- Credit notes on planned invoices -------------------------------------------------------------


def credit_note(account, actor, invoice, amount: str, *, on: dt.date, corrected: bool = False):
    """A dispute on `invoice` settled by a credit note of `amount` (or, `corrected`, a new total of it)."""
    dispute = workspace.dispute_open(customer=account, actor=actor, invoice=invoice, on=on,
                                     reason=DisputeReason.PRICE, description="Billed above the contract")
    return workspace.dispute_resolve(
        dispute=dispute, actor=actor, on=on, note="Contract price", amount=Decimal(amount),
        outcome=DisputeOutcome.CORRECTED_INVOICE if corrected else DisputeOutcome.CREDIT_NOTE,
    )


def instalments_of(plan) -> list[tuple[int, dt.date, Decimal, str]]:
    return list(plan.instalments.order_by("number").values_list("number", "due_on", "amount", "status"))


def test_a_credit_note_in_a_plan_comes_off_its_last_instalments_and_paying_the_rest_completes_it(
    account, invoices, collector
):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    small, large = invoices
    grace = plan.grace_days

    dispute = credit_note(account, collector, large, "500.00", on=LATE + dt.timedelta(days=2))

    plan.refresh_from_db()
    assert plan.total_amount == Decimal("700.00")
    assert instalments_of(plan) == [
        (1, LATE + dt.timedelta(days=10), Decimal("400.00"), InstalmentStatus.DUE),
        (2, LATE + dt.timedelta(days=40), Decimal("300.00"), InstalmentStatus.DUE),
    ]
    # The plan holds dunning until its new last instalment (plus grace), no longer.
    assert set(DunningPause.objects.filter(plan=plan).values_list("ends_on", "reason")) == {
        (LATE + dt.timedelta(days=40 + grace), "Payment plan of EUR 700.00")}
    event = TimelineEvent.objects.filter(customer=account, kind=EventKind.PAYMENT_PLAN).latest("pk")
    assert event.summary == (
        f"Payment plan reduced from EUR 1,200.00 to EUR 700.00 by credit note {dispute.credit_note.number} "
        f"on {large.number}: EUR 400.00 on {format_day(LATE + dt.timedelta(days=10), year=False)}, "
        f"EUR 300.00 on {format_day(LATE + dt.timedelta(days=40), year=False)}")
    assert event.actor == collector
    assert event.details["before"]["instalments"][2] == [3, str(LATE + dt.timedelta(days=70)), "400.00"]

    # The customer pays what the plan now asks, on time; the daily check runs every day to the old end.
    for day in range(10, 80):
        on = LATE + dt.timedelta(days=day)
        if day == 10:
            pay(account, on, (small, "400.00"))
        if day == 40:
            pay(account, on, (small, "100.00"), (large, "200.00"))
        workspace.commitments_check(on=on)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()
    assert (f"Instalment 2 of 2 paid (EUR 300.00 due {format_day(LATE + dt.timedelta(days=40))})"
            in events(account, EventKind.PAYMENT_PLAN))


def test_an_instalment_missed_after_a_credit_note_is_short_by_what_was_still_owed(
    account, invoices, collector
):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    small, large = invoices
    # The credit takes instalment 3 off and EUR 100.00 off instalment 2; the
    # customer takes EUR 400.00 of it off instalment 1 instead (asked again
    # with instalment 3), so only EUR 100.00 of it is left to explain a shortfall.
    credit_note(account, collector, large, "500.00", on=LATE + dt.timedelta(days=2))
    mornings(account, plan, 3, 41 + plan.grace_days, {40: [(small, "150.00")]})  # EUR 150.00 short

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    item = WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED)
    assert item.title.startswith("Missed instalment 2 of EUR 300.00")
    assert "EUR 150.00 short" in item.title


def test_a_credit_note_that_leaves_nothing_to_pay_completes_the_plan_at_once(account, invoices, collector):
    small, _ = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[small], on=LATE,
                                  instalments=schedule((10, "250.00"), (40, "250.00")))
    pay(account, LATE + dt.timedelta(days=10), (small, "250.00"))

    dispute = credit_note(account, collector, small, "250.00", on=LATE + dt.timedelta(days=15))

    plan.refresh_from_db()
    assert (plan.status, plan.paid_amount) == (PlanStatus.COMPLETED, Decimal("250.00"))
    assert [status for *_, status in instalments_of(plan)] == [InstalmentStatus.PAID, InstalmentStatus.PAID]
    assert not DunningPause.objects.filter(plan=plan, lifted_at__isnull=True).exists()
    assert events(account, EventKind.PAYMENT_PLAN)[0] == (
        f"Payment plan completed: credit note {dispute.credit_note.number} on {small.number} left nothing "
        "to pay (EUR 250.00 paid)")


def test_a_corrected_invoice_in_a_plan_comes_off_its_last_instalment(account, invoices, collector):
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    _, large = invoices

    credit_note(account, collector, large, "650.00", on=LATE, corrected=True)

    plan.refresh_from_db()
    assert (plan.status, plan.total_amount) == (PlanStatus.ACTIVE, Decimal("1150.00"))
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("600.00"), Decimal("550.00")]
    assert events(account, EventKind.PAYMENT_PLAN)[0].startswith(
        f"Payment plan reduced from EUR 1,200.00 to EUR 1,150.00 by the correction of {large.number} "
        "to EUR 650.00:")


def test_a_proposal_waiting_for_a_manager_follows_a_credit_note_too(account, invoices, collector, manager):
    approval_above("1000.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    _, large = invoices

    credit_note(account, manager, large, "700.00", on=LATE)

    plan.refresh_from_db()
    assert (plan.status, plan.total_amount) == (PlanStatus.AWAITING_APPROVAL, Decimal("500.00"))
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("500.00")]
    # What the manager approves now asks for no more than is owed: paying it completes the plan.
    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Fine", on=LATE)
    pay(account, LATE + dt.timedelta(days=10), (invoices[0], "500.00"))
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_a_credit_note_on_an_invoice_outside_any_live_plan_touches_no_plan(account, invoices, collector):
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[small], on=LATE,
                                  instalments=schedule((10, "250.00"), (40, "250.00")))
    credit_note(account, collector, large, "100.00", on=LATE)
    plan.refresh_from_db()
    assert plan.total_amount == Decimal("500.00")
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("250.00"), Decimal("250.00")]


# --- Disputes on planned invoices ---------------------------------------------------------------------


def mornings(account, plan, first: int, last: int, payments=None) -> None:
    """The daily check every morning from day `first` to day `last` after LATE,
    with the payments of `payments` ({day: parts}) received on their day."""
    for day in range(first, last + 1):
        on = LATE + dt.timedelta(days=day)
        if payments and day in payments:
            pay(account, on, *payments[day])
        workspace.commitments_check(on=on)


def disputed_plan(account, invoices, collector):
    """EUR 1,200.00 in three instalments of EUR 400.00 on days 10, 40 and 70; a
    dispute on the large invoice opened on day 5; the customer pays everything
    but the disputed invoice, and holds back EUR 300.00 of instalment 2."""
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=large,
                                     on=LATE + dt.timedelta(days=5), reason=DisputeReason.QUANTITY,
                                     description="Got 9 pallets, not 10")
    mornings(account, plan, 6, 50, {10: [(small, "400.00")], 40: [(small, "100.00")]})
    return plan, dispute


def test_an_open_dispute_on_a_planned_invoice_holds_back_its_amount_without_breaking_the_plan(
    account, invoices, collector
):
    plan, _ = disputed_plan(account, invoices, collector)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert [(status, held) for status, held in plan.instalments.order_by("number")
            .values_list("status", "deducted_amount")] == [
        (InstalmentStatus.PAID, Decimal("0.00")), (InstalmentStatus.HELD, Decimal("300.00")),
        (InstalmentStatus.DUE, Decimal("0.00"))]
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()
    assert (f"Instalment 2 of 3: EUR 300.00 held back while the dispute on {invoices[1].number} is open "
            f"(EUR 400.00 due {format_day(LATE + dt.timedelta(days=40))}); the plan goes on"
            in events(account, EventKind.PAYMENT_PLAN))


def instalments_on_the_account_page(client, user, account) -> list[str]:
    client.force_login(user)
    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    listing = page.split('<ol class="instalments">')[1].split("</ol>")[0]
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in listing.split("<li>")[1:]]


def test_the_account_page_says_how_much_of_an_instalment_was_held_back_and_what_is_still_to_pay(
    client, account, invoices, collector
):
    disputed_plan(account, invoices, collector)

    assert instalments_on_the_account_page(client, collector, account)[1] == (
        f"{format_day(LATE + dt.timedelta(days=40))} · EUR 400.00 · Held back (dispute open): "
        "EUR 100.00 paid, EUR 300.00 held back, still to pay unless the dispute ends in a credit")


def test_the_account_page_says_what_came_off_a_paid_instalment(client, account, invoices, collector):
    _, dispute = disputed_plan(account, invoices, collector)
    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.REJECTED,
                              note="Delivery note signed for 10", on=LATE + dt.timedelta(days=51))

    assert instalments_on_the_account_page(client, collector, account)[1:] == [
        f"{format_day(LATE + dt.timedelta(days=40))} · EUR 400.00 · Paid less EUR 300.00 taken off",
        f"{format_day(LATE + dt.timedelta(days=70))} · EUR 700.00 · Due"]


def test_a_shortfall_beyond_the_disputed_invoice_s_open_amount_still_breaks_the_plan(
    account, invoices, collector
):
    small, _ = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE + dt.timedelta(days=5),
                           reason=DisputeReason.QUALITY, description="Half unusable")

    mornings(account, plan, 6, 50)  # nothing paid: EUR 400.00 held on day 14, EUR 800.00 short on day 44

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert [status for *_, status in instalments_of(plan)] == [
        InstalmentStatus.HELD, InstalmentStatus.MISSED, InstalmentStatus.DUE]
    item = WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED)
    assert item.title.startswith("Missed instalment 2 of EUR 400.00") and "EUR 400.00 short" in item.title


def test_a_rejected_dispute_asks_for_what_was_held_back_with_the_next_instalment(
    account, invoices, collector
):
    plan, dispute = disputed_plan(account, invoices, collector)
    _, large = invoices

    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.REJECTED,
                              note="Delivery note signed for 10", on=LATE + dt.timedelta(days=51))

    plan.refresh_from_db()
    assert instalments_of(plan) == [
        (1, LATE + dt.timedelta(days=10), Decimal("400.00"), InstalmentStatus.PAID),
        (2, LATE + dt.timedelta(days=40), Decimal("400.00"), InstalmentStatus.PAID),
        (3, LATE + dt.timedelta(days=70), Decimal("700.00"), InstalmentStatus.DUE),
    ]
    assert plan.total_amount == Decimal("1200.00")
    assert events(account, EventKind.PAYMENT_PLAN)[0] == (
        f"Dispute on {large.number} rejected: the EUR 300.00 held back is asked again with instalment 3, "
        f"now EUR 700.00 due {format_day(LATE + dt.timedelta(days=70))}")
    # Paying it completes the plan; paying less breaks it.
    mornings(account, plan, 51, 80, {70: [(large, "700.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()


def test_a_dispute_rejected_after_the_last_instalment_asks_for_what_was_held_back_a_fortnight_later(
    account, invoices, collector
):
    plan, dispute = disputed_plan(account, invoices, collector)
    _, large = invoices
    mornings(account, plan, 51, 80, {70: [(large, "400.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE  # instalment 3 paid, instalment 2's EUR 300.00 still held

    resolved = LATE + dt.timedelta(days=81)
    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.REJECTED,
                              note="Delivery note signed for 10", on=resolved)

    plan.refresh_from_db()
    assert instalments_of(plan)[-1] == (4, resolved + dt.timedelta(days=14), Decimal("300.00"),
                                        InstalmentStatus.DUE)
    # The plan holds dunning until then (plus grace), and breaks if it does not come.
    assert chased(account, on=resolved + dt.timedelta(days=14)) == set()
    mornings(account, plan, 82, 81 + 14 + plan.grace_days + 1)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert "EUR 300.00 short" in WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED).title


def test_a_credit_note_for_what_was_held_back_settles_the_held_instalment(account, invoices, collector):
    plan, dispute = disputed_plan(account, invoices, collector)
    _, large = invoices

    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("300.00"), note="One pallet short",
                              on=LATE + dt.timedelta(days=51))

    plan.refresh_from_db()
    assert plan.total_amount == Decimal("900.00")
    assert [(amount, status) for _, _, amount, status in instalments_of(plan)] == [
        (Decimal("400.00"), InstalmentStatus.PAID), (Decimal("400.00"), InstalmentStatus.PAID),
        (Decimal("400.00"), InstalmentStatus.DUE)]
    mornings(account, plan, 51, 80, {70: [(large, "400.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_a_credit_note_for_part_of_what_was_held_back_asks_for_the_rest_with_the_next_instalment(
    account, invoices, collector
):
    plan, dispute = disputed_plan(account, invoices, collector)
    _, large = invoices

    resolved = workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                                         amount=Decimal("100.00"), note="Part of a pallet short",
                                         on=LATE + dt.timedelta(days=51))

    plan.refresh_from_db()
    assert plan.total_amount == Decimal("1100.00")
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [
        Decimal("400.00"), Decimal("400.00"), Decimal("600.00")]
    assert events(account, EventKind.PAYMENT_PLAN)[0] == (
        f"Dispute on {large.number} settled by credit note {resolved.credit_note.number} on {large.number}: "
        "EUR 100.00 of the EUR 300.00 held back is no longer owed, the other EUR 200.00 is asked again with "
        f"instalment 3, now EUR 600.00 due {format_day(LATE + dt.timedelta(days=70))}")
    mornings(account, plan, 51, 80, {70: [(large, "600.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_the_first_of_two_disputes_to_end_settles_what_was_held_back_for_it(account, invoices, collector):
    """EUR 1,200.00 in three instalments of EUR 400.00 on days 10, 40 and 70.
    With the small invoice disputed, the customer holds back EUR 300.00 of
    instalment 2; with the large one disputed too, EUR 200.00 of instalment 3.
    The small invoice's dispute ends first."""
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    first = workspace.dispute_open(customer=account, actor=collector, invoice=small,
                                   on=LATE + dt.timedelta(days=5), reason=DisputeReason.QUALITY,
                                   description="Half unusable")
    mornings(account, plan, 6, 44, {10: [(large, "400.00")], 40: [(large, "100.00")]})
    second = workspace.dispute_open(customer=account, actor=collector, invoice=large,
                                    on=LATE + dt.timedelta(days=45), reason=DisputeReason.QUANTITY,
                                    description="Got 9 pallets, not 10")
    mornings(account, plan, 45, 80, {70: [(small, "200.00")]})
    assert [(status, held) for status, held in plan.instalments.order_by("number")
            .values_list("status", "deducted_amount")] == [
        (InstalmentStatus.PAID, Decimal("0.00")), (InstalmentStatus.HELD, Decimal("300.00")),
        (InstalmentStatus.HELD, Decimal("200.00"))]

    resolved = LATE + dt.timedelta(days=81)
    workspace.dispute_resolve(dispute=first, actor=collector, outcome=DisputeOutcome.REJECTED,
                              note="Tested: the goods are fine", on=resolved)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert [(number, amount, status, held) for number, amount, status, held in plan.instalments
            .order_by("number").values_list("number", "amount", "status", "deducted_amount")] == [
        (1, Decimal("400.00"), InstalmentStatus.PAID, Decimal("0.00")),
        (2, Decimal("400.00"), InstalmentStatus.PAID, Decimal("300.00")),
        (3, Decimal("400.00"), InstalmentStatus.HELD, Decimal("200.00")),
        (4, Decimal("300.00"), InstalmentStatus.DUE, Decimal("0.00"))]
    assert plan.instalments.get(number=4).due_on == resolved + dt.timedelta(days=14)
    assert events(account, EventKind.PAYMENT_PLAN)[0] == (
        f"Dispute on {small.number} rejected: the EUR 300.00 held back is asked again with instalment 4, "
        f"now EUR 300.00 due {format_day(resolved + dt.timedelta(days=14))}")

    # The other dispute ends in a credit for what was held back for it;
    # paying instalment 4 completes the plan.
    workspace.dispute_resolve(dispute=second, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("200.00"), note="One pallet short", on=resolved)
    plan.refresh_from_db()
    assert plan.total_amount == Decimal("1000.00")
    assert plan.instalments.get(number=3).status == InstalmentStatus.PAID
    mornings(account, plan, 82, 100, {90: [(small, "300.00")]})  # all that is still open
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_an_instalment_held_back_for_two_disputes_keeps_the_share_of_the_one_still_open(
    account, invoices, collector
):
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    first = workspace.dispute_open(customer=account, actor=collector, invoice=small,
                                   on=LATE + dt.timedelta(days=5), reason=DisputeReason.QUALITY,
                                   description="Half unusable")
    second = workspace.dispute_open(customer=account, actor=collector, invoice=large,
                                    on=LATE + dt.timedelta(days=6), reason=DisputeReason.QUANTITY,
                                    description="Got 9 pallets, not 10")
    # Nothing paid: EUR 400.00 held back for the large invoice's dispute on
    # day 14; on day 44 its other EUR 300.00 and EUR 100.00 for the small one's.
    mornings(account, plan, 7, 50)

    workspace.dispute_resolve(dispute=first, actor=collector, outcome=DisputeOutcome.REJECTED,
                              note="Tested: the goods are fine", on=LATE + dt.timedelta(days=51))

    assert instalments_of(plan) == [
        (1, LATE + dt.timedelta(days=10), Decimal("400.00"), InstalmentStatus.HELD),
        (2, LATE + dt.timedelta(days=40), Decimal("300.00"), InstalmentStatus.HELD),
        (3, LATE + dt.timedelta(days=70), Decimal("500.00"), InstalmentStatus.DUE)]
    assert events(account, EventKind.PAYMENT_PLAN)[0] == (
        f"Dispute on {small.number} rejected: the EUR 100.00 held back is asked again with instalment 3, "
        f"now EUR 500.00 due {format_day(LATE + dt.timedelta(days=70))}")

    workspace.dispute_resolve(dispute=second, actor=collector, outcome=DisputeOutcome.REJECTED,
                              note="Delivery note signed for 10", on=LATE + dt.timedelta(days=52))

    assert [(amount, status) for _, _, amount, status in instalments_of(plan)] == [
        (Decimal("400.00"), InstalmentStatus.PAID), (Decimal("300.00"), InstalmentStatus.PAID),
        (Decimal("1200.00"), InstalmentStatus.DUE)]
    mornings(account, plan, 53, 80, {70: [(small, "500.00"), (large, "700.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_a_plan_holding_back_an_instalment_keeps_dunning_of_its_invoices_paused_past_its_last_date(
    account, invoices, collector, plan_and_deliver
):
    """The small invoice disputed, the customer holds back EUR 300.00 of
    instalment 2 and pays instalment 3 on the small invoice: the large one
    still owes EUR 200.00 when the last instalment's date and grace pass."""
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small,
                                     on=LATE + dt.timedelta(days=5), reason=DisputeReason.QUALITY,
                                     description="Half unusable")

    mornings(account, plan, 6, 90,
             {10: [(large, "400.00")], 40: [(large, "100.00")], 70: [(small, "400.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert [status for *_, status in instalments_of(plan)] == [
        InstalmentStatus.PAID, InstalmentStatus.HELD, InstalmentStatus.PAID]
    assert chased(account, on=LATE + dt.timedelta(days=90)) == set()
    plan_and_deliver(LATE + dt.timedelta(days=90))
    assert not DunningAction.objects.filter(customer=account).exists()
    # The dispute ends: what was held back is asked for, and dunning waits for that date only.
    resolved = LATE + dt.timedelta(days=91)
    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.REJECTED,
                              note="Tested: the goods are fine", on=resolved)
    asked = resolved + dt.timedelta(days=14)
    assert chased(account, on=asked + dt.timedelta(days=plan.grace_days)) == set()
    assert chased(account, on=asked + dt.timedelta(days=plan.grace_days + 1)) == {small.number, large.number}


def credited_then_paid(account, invoices, collector, *, second: str):
    """EUR 1,200.00 in three instalments of EUR 400.00 on days 10, 40 and 70;
    instalment 1 paid; a credit note of EUR 300.00 on the large invoice on day
    20 (the plan asks EUR 100.00 on day 70 now); `second` paid on the small
    invoice on day 40."""
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    mornings(account, plan, 1, 19, {10: [(small, "400.00")]})
    dispute = credit_note(account, collector, large, "300.00", on=LATE + dt.timedelta(days=20))
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [
        Decimal("400.00"), Decimal("400.00"), Decimal("100.00")]
    mornings(account, plan, 20, 50, {40: [(small, second)]})
    plan.refresh_from_db()
    return plan, dispute


def test_a_credit_the_customer_takes_off_the_next_instalment_moves_there_from_the_last(
    account, invoices, collector
):
    plan, dispute = credited_then_paid(account, invoices, collector, second="100.00")

    assert plan.status == PlanStatus.ACTIVE
    assert [(amount, status, deducted) for amount, status, deducted in plan.instalments.order_by("number")
            .values_list("amount", "status", "deducted_amount")] == [
        (Decimal("400.00"), InstalmentStatus.PAID, Decimal("0.00")),
        (Decimal("400.00"), InstalmentStatus.PAID, Decimal("300.00")),
        (Decimal("400.00"), InstalmentStatus.DUE, Decimal("0.00"))]
    assert plan.total_amount == Decimal("900.00")
    assert (f"Instalment 2 of 3 paid less EUR 300.00 taken off for credit note {dispute.credit_note.number} "
            f"on {invoices[1].number}: that much is asked with instalment 3 instead, now EUR 400.00 due "
            f"{format_day(LATE + dt.timedelta(days=70))}") in events(account, EventKind.PAYMENT_PLAN)
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()
    mornings(account, plan, 51, 80, {70: [(invoices[1], "400.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_a_credit_note_recorded_on_the_account_and_taken_off_the_next_instalment_moves_there_too(
    account, invoices, collector, manager
):
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    mornings(account, plan, 1, 19, {10: [(small, "400.00")]})
    note = workspace.credit_note_record(customer=account, actor=manager, invoice=large,
                                        amount=Decimal("300.00"), reason="One pallet returned",
                                        issued_on=LATE + dt.timedelta(days=20))

    mornings(account, plan, 20, 50, {40: [(small, "100.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert [(amount, status) for _, _, amount, status in instalments_of(plan)] == [
        (Decimal("400.00"), InstalmentStatus.PAID), (Decimal("400.00"), InstalmentStatus.PAID),
        (Decimal("400.00"), InstalmentStatus.DUE)]
    assert (f"Instalment 2 of 3 paid less EUR 300.00 taken off for credit note {note.number} on "
            f"{large.number}: that much is asked with instalment 3 instead, now EUR 400.00 due "
            f"{format_day(LATE + dt.timedelta(days=70))}") in events(account, EventKind.PAYMENT_PLAN)


def test_an_instalment_short_by_more_than_the_credit_since_the_last_one_is_missed(
    account, invoices, collector
):
    plan, _ = credited_then_paid(account, invoices, collector, second="50.00")

    assert plan.status == PlanStatus.BROKEN
    assert "EUR 350.00 short" in WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED).title


def test_a_credit_bigger_than_the_last_instalment_taken_off_the_next_one_keeps_the_plan(
    account, invoices, collector
):
    """EUR 1,200.00 in three instalments of EUR 400.00; a credit note of EUR
    500.00 takes instalment 3 off the schedule and EUR 100.00 off instalment 2.
    The customer takes the credit off their next payments instead: nothing on
    day 40 (EUR 100.00 of the credit left over), EUR 300.00 on day 70."""
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    mornings(account, plan, 1, 19, {10: [(small, "400.00")]})
    credit_note(account, collector, large, "500.00", on=LATE + dt.timedelta(days=20))
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("400.00"), Decimal("300.00")]

    mornings(account, plan, 20, 50)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert instalments_of(plan) == [
        (1, LATE + dt.timedelta(days=10), Decimal("400.00"), InstalmentStatus.PAID),
        (2, LATE + dt.timedelta(days=40), Decimal("300.00"), InstalmentStatus.PAID),
        (3, LATE + dt.timedelta(days=70), Decimal("300.00"), InstalmentStatus.DUE),
    ]
    assert chased(account, on=LATE + dt.timedelta(days=50)) == set()
    mornings(account, plan, 51, 80, {70: [(small, "100.00"), (large, "200.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_a_credit_taken_off_the_next_instalments_one_after_the_other_keeps_the_plan(
    account, invoices, collector
):
    """EUR 1,200.00 in four instalments of EUR 300.00; a credit note of EUR
    500.00 takes instalment 4 off the schedule and EUR 200.00 off instalment 3.
    The customer takes EUR 300.00 of it off instalment 2 and the other EUR
    200.00 off instalment 3, and pays instalment 4 in full."""
    small, large = invoices
    plan = workspace.plan_propose(
        customer=account, actor=collector, invoices=invoices, on=LATE,
        instalments=schedule((10, "300.00"), (40, "300.00"), (70, "300.00"), (100, "300.00")))
    mornings(account, plan, 1, 19, {10: [(small, "300.00")]})
    credit_note(account, collector, large, "500.00", on=LATE + dt.timedelta(days=20))

    mornings(account, plan, 20, 80, {70: [(small, "100.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert [(amount, status) for _, _, amount, status in instalments_of(plan)] == [
        (Decimal("300.00"), InstalmentStatus.PAID), (Decimal("300.00"), InstalmentStatus.PAID),
        (Decimal("100.00"), InstalmentStatus.PAID), (Decimal("300.00"), InstalmentStatus.DUE)]
    assert instalments_of(plan)[-1][1] == LATE + dt.timedelta(days=100)
    mornings(account, plan, 81, 110, {100: [(small, "100.00"), (large, "200.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


# --- Pauses and exceptions --------------------------------------------------------------------


def test_a_pause_within_the_limit_holds_the_account_and_resume_lifts_it(account, invoices, collector):
    pause = workspace.pause_set(customer=account, actor=collector, ends_on=LATE + dt.timedelta(days=10),
                                reason="Owner in hospital", on=LATE)
    assert pause.kind == PauseKind.MANUAL_HOLD and pause.invoice is None
    assert chased(account, on=LATE) == set()
    assert workspace.pause_resume(customer=account, actor=collector, on=LATE) == 1
    assert len(chased(account, on=LATE)) == 2


def test_a_longer_pause_becomes_an_exception_a_manager_decides(account, invoices, collector, manager):
    asked = workspace.pause_set(customer=account, actor=collector, ends_on=LATE + dt.timedelta(days=60),
                                reason="Insolvency advisor engaged", on=LATE)
    assert isinstance(asked, ExceptionRequest) and asked.kind == ExceptionKind.PAUSE
    assert len(chased(account, on=LATE)) == 2  # nothing paused until a manager says so
    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Agreed", on=LATE)
    asked.refresh_from_db()
    assert asked.status == ExceptionStatus.APPROVED
    assert chased(account, on=LATE + dt.timedelta(days=59)) == set()
    assert len(chased(account, on=LATE + dt.timedelta(days=61))) == 2
    with pytest.raises(ValidationError, match="already approved"):
        workspace.exception_decide(request=asked, manager=manager, approve=False, note="no", on=LATE)


def test_a_hold_renewed_before_it_ends_counts_from_the_first_one_s_start(account, invoices, collector):
    limit = CollectionRules.current().max_pause_days
    first = workspace.pause_set(customer=account, actor=collector, ends_on=LATE + dt.timedelta(days=limit),
                                reason="CFO away", on=LATE)
    renew_on = LATE + dt.timedelta(days=limit - 1)

    again = workspace.pause_set(customer=account, actor=collector, reason="CFO still away", on=renew_on,
                                ends_on=renew_on + dt.timedelta(days=limit))

    assert isinstance(again, ExceptionRequest)
    assert again.reason == (f"CFO still away (pause of {2 * limit - 1} days, with the hold in force since "
                            f"{format_day(LATE, year=False)}; collectors may pause {limit})")
    assert list(account.dunning_pauses.all()) == [first]
    # Within the limit counted from the first start, a renewal is the collector's to make.
    within = workspace.pause_set(customer=account, actor=collector, ends_on=LATE + dt.timedelta(days=limit),
                                 reason="Same end, new reason", on=LATE + dt.timedelta(days=2))
    assert not isinstance(within, ExceptionRequest)


def test_a_rejected_exception_pauses_nothing(account, invoices, collector, manager):
    asked = workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                        reason="Please", pause_until=LATE + dt.timedelta(days=30), on=LATE)
    workspace.exception_decide(request=asked, manager=manager, approve=False, note="Not this time", on=LATE)
    assert not account.dunning_pauses.exists()
    assert any("rejected" in s for s in events(account, EventKind.EXCEPTION))


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "rejected"])
def test_a_pause_whose_end_has_passed_cannot_be_decided(account, invoices, collector, manager, approve):
    """Approved, it would hold nothing, yet tell the collector to tell the
    customer it was granted; rejected, it would say only what the date says.
    It has lapsed (see test_exception_lapsed)."""
    asked = workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                        reason="Please", pause_until=LATE + dt.timedelta(days=30), on=LATE)

    with pytest.raises(ValidationError, match="it has lapsed, and nothing was recorded"):
        workspace.exception_decide(request=asked, manager=manager, approve=approve, note="ok",
                                   on=LATE + dt.timedelta(days=31))

    asked.refresh_from_db()
    assert (asked.status, asked.decided_by) == (ExceptionStatus.PENDING, None)
    assert not WorkItem.objects.filter(kind=WorkKind.DECIDED).exists()


def test_the_same_request_made_twice_waits_in_the_managers_queue_once(account, invoices, collector, manager):
    """A double submit, or a long pause asked again, must not put the request
    twice in the managers' queue (approving both would hold the account twice)."""
    until = LATE + dt.timedelta(days=30)
    first = workspace.pause_set(customer=account, actor=collector, ends_on=until, reason="Bank loan", on=LATE)
    assert isinstance(first, ExceptionRequest)

    with pytest.raises(ValidationError, match="already waits for a manager"):
        workspace.pause_set(customer=account, actor=collector, ends_on=until, reason="Bank loan", on=LATE)
    with pytest.raises(ValidationError, match="already waits for a manager"):
        workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                    reason="Bank loan", pause_until=until, on=LATE)

    assert ExceptionRequest.objects.filter(customer=account).count() == 1
    # Another kind, another invoice, or once the first is decided: asked anew.
    workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                invoice=invoices[0], reason="Only this one", pause_until=until, on=LATE)
    workspace.exception_decide(request=first, manager=manager, approve=False, note="No", on=LATE)
    workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                reason="Bank loan, now signed", pause_until=until, on=LATE)
    assert ExceptionRequest.objects.filter(customer=account).count() == 3


# --- Work items from dunning ------------------------------------------------------------------


def test_a_call_task_from_dunning_is_a_work_item_for_the_accounts_collector(
    make_account, collector, plan_and_deliver
):
    from customers.models import Segment

    account = make_account(Segment.DISTRESSED)  # the distressed ladder calls on day 1
    plan_and_deliver(DUE + dt.timedelta(days=1))
    item = WorkItem.objects.get(kind=WorkKind.CALL)
    assert (item.customer, item.assignee, item.action.customer) == (account, collector, account)
    assert "Call Anna Clerk" in item.title


def test_promises_broken_again_and_again_make_the_customer_distressed(account, invoices, collector):
    from ar_collections.services import behaviour_refresh
    from customers.models import Segment

    for n, invoice in enumerate(invoices):
        made = LATE + dt.timedelta(days=10 * n)
        workspace.promise_record(customer=account, actor=collector, amount=invoice.open_amount,
                                 promised_on=made + dt.timedelta(days=2), invoices=[invoice], on=made)
        workspace.commitments_check(on=made + dt.timedelta(days=9))
    assert account.promises.filter(status=PromiseStatus.BROKEN).count() == 2
    behaviour_refresh(on=LATE + dt.timedelta(days=30))
    account.refresh_from_db()
    assert account.segment == Segment.DISTRESSED
    assert "Broke 2 promises" in account.segment_reason


def test_logging_a_call_completes_the_call_task_dunning_set(make_account, collector, plan_and_deliver):
    from customers.models import Segment

    account = make_account(Segment.DISTRESSED)
    plan_and_deliver(DUE + dt.timedelta(days=1))
    item = WorkItem.objects.get(kind=WorkKind.CALL)
    workspace.call_log(customer=account, actor=collector, contact=None, outcome="no_answer",
                       on=DUE + dt.timedelta(days=1))
    item.refresh_from_db()
    assert (item.status, item.done_by) == ("done", collector)


# --- What a review of the workflows asked for ------------------------------------------


def test_an_invoice_carries_one_open_promise_or_plan_at_a_time(account, invoices, collector):
    small, _ = invoices
    workspace.promise_record(customer=account, actor=collector, amount=Decimal("250.00"),
                             promised_on=LATE + dt.timedelta(days=5), invoices=[small], on=LATE)
    with pytest.raises(ValidationError, match="already has an open promise or payment plan"):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("250.00"),
                                 promised_on=LATE + dt.timedelta(days=20), invoices=[small], on=LATE)
    with pytest.raises(ValidationError, match=small.number):
        workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                               instalments=schedule((10, "600.00"), (40, "600.00")))
    assert account.promises.count() == 1 and not account.payment_plans.exists()


def test_a_plan_whose_invoices_are_settled_by_a_credit_note_completes_rather_than_breaks(
    account, invoices, collector
):
    small, _ = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[small], on=LATE,
                                  instalments=schedule((10, "250.00"), (40, "250.00")))
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=small, on=LATE,
                                     reason=DisputeReason.QUALITY, description="Half unusable")
    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("200.00"), note="Credited the damaged half", on=LATE)
    pay(account, LATE + dt.timedelta(days=5), (small, "300.00"))
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()


def test_a_plan_whose_schedule_has_passed_cannot_be_approved(account, invoices, collector, manager):
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("100.00")
    rules.save()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((5, "600.00"), (20, "600.00")))
    with pytest.raises(ValidationError, match="the schedule has passed"):
        workspace.plan_decide(plan=plan, manager=manager, approve=True, note="ok",
                              on=LATE + dt.timedelta(days=30))
    plan.refresh_from_db()
    assert plan.status == PlanStatus.AWAITING_APPROVAL and not account.dunning_pauses.exists()


def test_a_cause_found_on_a_call_is_noted_like_on_the_dunning_card(
    account, invoices, collector, plan_and_deliver, smtp_server
):
    plan_and_deliver(DUE + dt.timedelta(days=3))  # opens the cycle
    workspace.call_log(customer=account, actor=collector, contact=None, outcome="reached",
                       cause="cannot_pay", on=DUE + dt.timedelta(days=3))
    cycle = account.dunning_cycles.get(closed_on__isnull=True)
    assert (cycle.cause, cycle.cause_noted_by) == ("cannot_pay", collector)
    noted = TimelineEvent.objects.get(customer=account, summary__startswith="Cause noted")
    assert noted.details["before"] == {"cause": ""} and noted.details["after"] == {"cause": "cannot_pay"}


def test_no_summary_goes_to_someone_the_call_did_not_reach(account, collector):
    with pytest.raises(ValidationError, match="reached someone"):
        workspace.call_log(customer=account, actor=collector, contact=account.contacts.get(),
                           outcome="voicemail", email_summary=True, on=LATE)
    assert not account.calls.exists()


def test_a_hold_longer_than_collectors_may_set_is_lifted_by_a_manager_only(account, collector, manager):
    rules = CollectionRules.current()
    workspace.pause_set(customer=account, actor=manager, invoice=None, ends_on=LATE + dt.timedelta(days=60),
                        reason="Owner in hospital", on=LATE)
    limit = f"longer than collectors may set \\({rules.max_pause_days} days\\)"
    with pytest.raises(ValidationError, match=limit):
        workspace.pause_resume(customer=account, actor=collector, on=LATE)
    assert account.dunning_pauses.filter(lifted_at__isnull=True).count() == 1

    workspace.pause_set(customer=account, actor=collector, invoice=None, ends_on=LATE + dt.timedelta(days=7),
                        reason="Payment run on Friday", on=LATE)
    assert workspace.pause_resume(customer=account, actor=collector, on=LATE) == 1  # their own, short one
    (still,) = account.dunning_pauses.filter(lifted_at__isnull=True)
    assert still.owner == manager
    assert workspace.pause_resume(customer=account, actor=manager, on=LATE) == 1


def test_a_collector_resumes_their_own_holds_but_not_a_managers_exception(account, collector, manager):
    asked = workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                        reason="Six weeks", pause_until=LATE + dt.timedelta(days=40), on=LATE)
    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Agreed", on=LATE)
    with pytest.raises(ValidationError, match="No manual pause"):
        workspace.pause_resume(customer=account, actor=collector, on=LATE)
    assert workspace.pause_resume(customer=account, actor=manager, on=LATE) == 1
    event = account.events.filter(kind=EventKind.PAUSE).latest("pk")
    assert event.details["lifted"][0]["kind"] == PauseKind.EXCEPTION


def test_lifting_a_hold_and_setting_a_new_one_at_once_does_not_restart_the_collectors_limit(
    make_account, collector
):
    account = make_account()
    limit = CollectionRules.current().max_pause_days  # 14
    first = workspace.pause_set(customer=account, actor=collector, reason="CFO away", on=LATE,
                                ends_on=LATE + dt.timedelta(days=limit))
    assert isinstance(first, DunningPause)
    day = LATE + dt.timedelta(days=limit - 1)

    # The same day: lift the hold, and set a new one for the full limit.
    assert workspace.pause_resume(customer=account, actor=collector, on=day) == 1
    again = workspace.pause_set(customer=account, actor=collector, reason="CFO still away", on=day,
                                ends_on=day + dt.timedelta(days=limit))

    # The account is held without a break from LATE to day + limit: 2 * limit - 1 days.
    assert isinstance(again, ExceptionRequest), (
        f"held {(day + dt.timedelta(days=limit) - LATE).days} days in a row without a manager"
    )


def test_holding_an_invoice_after_the_whole_account_does_not_restart_the_collectors_limit(
    make_account, collector
):
    account = make_account()
    limit = CollectionRules.current().max_pause_days
    invoice = account.invoices.order_by("number").first()
    workspace.pause_set(customer=account, actor=collector, reason="CFO away", on=LATE,
                        ends_on=LATE + dt.timedelta(days=limit))
    day = LATE + dt.timedelta(days=limit)  # the account's hold is still in force today

    again = workspace.pause_set(customer=account, actor=collector, invoice=invoice, reason="CFO still away",
                                on=day, ends_on=day + dt.timedelta(days=limit))

    assert isinstance(again, ExceptionRequest), (
        f"{invoice.number} held {(day + dt.timedelta(days=limit) - LATE).days} days in a row, no manager"
    )


def test_approved_extended_terms_stop_the_reminders_they_extend(
    make_account, collector, manager
):
    """A collector asks for extended terms on an invoice until the end of the
    month; once a manager approves, the invoice is not chased before then."""
    customer = make_account(Segment.PROMPT)
    invoice = customer.invoices.order_by("number").first()
    asked_on = DUE + dt.timedelta(days=1)
    request = workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS, invoice=invoice,
        pause_until=dt.date(2026, 3, 31), reason="Customer asked for 30 more days; big order coming",
        on=asked_on,
    )
    workspace.exception_decide(request=request, manager=manager, approve=True, note="Agreed", on=asked_on)
    request.refresh_from_db()
    assert request.status == ExceptionStatus.APPROVED

    day = DUE + dt.timedelta(days=3)  # the prompt ladder's first step
    with frozen(day):
        run_plan(run=run_start(run_date=day))

    chased = DunningActionInvoice.objects.filter(invoice=invoice).exists()
    assert not chased, "the invoice granted extended terms is listed on the next reminder"


def test_extended_terms_need_the_new_day_to_pay_by(make_account, collector):
    customer = make_account(Segment.PROMPT)
    with pytest.raises(ValidationError, match="the new day to pay by"):
        workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                    reason="30 more days", on=DUE)


def test_whoever_asked_hears_of_the_manager_s_decision_on_their_worklist(make_account, collector, manager):
    """The customer believes a plan was agreed: the collector who proposed it
    must call back, approved or not. A manager deciding their own request
    needs no reminder."""
    CollectionRules.current()
    CollectionRules.objects.filter(pk=1).update(plan_approval_above_amount=Decimal("1000.00"))
    customer = make_account(Segment.PROMPT)
    invoices = list(customer.invoices.all())
    plan = workspace.plan_propose(
        customer=customer, actor=collector, invoices=invoices, on=DUE,
        instalments=[(DUE + dt.timedelta(days=10), Decimal("600.00")),
                     (DUE + dt.timedelta(days=40), Decimal("600.00"))],
    )
    asked = workspace.exception_request(customer=customer, actor=manager, kind=ExceptionKind.OTHER,
                                        reason="Keep the account open", on=DUE)

    workspace.plan_decide(plan=plan, manager=manager, approve=False, note="Too long for this account", on=DUE)
    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Fine", on=DUE)

    (told,) = WorkItem.objects.filter(customer=customer, status=WorkStatus.OPEN, kind=WorkKind.DECIDED)
    assert told.assignee == collector
    assert told.title == ("Payment plan of EUR 1,200.00 rejected by maria: Too long for this account — "
                          "tell the customer")


def test_extended_terms_asked_for_without_a_day_are_decided_and_hold_nothing(
    make_account, collector, manager
):
    """Requests made before extended terms took a day carry none: approving
    one records the decision and holds nothing back."""
    customer = make_account(Segment.PROMPT)
    asked = ExceptionRequest.objects.create(
        customer=customer, kind=ExceptionKind.EXTENDED_TERMS, reason="30 more days, big order coming",
        requested_by=collector, requested_on=DUE, pause_until=None,
    )

    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Agreed",
                               on=DUE + dt.timedelta(days=1))

    asked.refresh_from_db()
    assert asked.status == ExceptionStatus.APPROVED
    assert not DunningPause.objects.filter(exception=asked).exists()


# --- Amounts in the currency's own units --------------------------------------------------


@pytest.fixture
def yen_invoice(make_customer, make_invoice) -> Invoice:
    tokyo = make_customer(name="Tokyo Trading", currency="JPY")
    return make_invoice(tokyo, issued=DUE - dt.timedelta(days=30), due=DUE, amount="60000", currency="JPY")


def test_an_amount_in_fractions_of_a_yen_is_refused_wherever_money_is_entered(
    yen_invoice, collector, manager
):
    tokyo, half = yen_invoice.customer, Decimal("100.50")
    places = "JPY has no places after the point: write 100 or 101, not 100.50."
    with pytest.raises(ValidationError, match=re.escape(places)):
        workspace.payment_record(customer=tokyo, amount=half, currency="JPY", received_on=LATE,
                                 allocations=[(yen_invoice, half)], actor=manager)
    with pytest.raises(ValidationError, match=re.escape(places)):
        workspace.promise_record(customer=tokyo, actor=collector, amount=half, promised_on=LATE,
                                 invoices=[yen_invoice], on=LATE)
    with pytest.raises(ValidationError, match=re.escape("JPY has no places after the point")):
        workspace.plan_propose(customer=tokyo, actor=collector, invoices=[yen_invoice], on=LATE, instalments=[
            (LATE + dt.timedelta(days=7), Decimal("30000.50")),
            (LATE + dt.timedelta(days=37), Decimal("29999.50")),
        ])
    dispute = workspace.dispute_open(customer=tokyo, actor=collector, invoice=yen_invoice, reason="price",
                                     description="Price", on=LATE)
    with pytest.raises(ValidationError, match=re.escape(places)):
        workspace.dispute_resolve(dispute=dispute, actor=manager, outcome="credit_note", amount=half,
                                  note="Agreed", on=LATE)

    yen_invoice.refresh_from_db()
    assert yen_invoice.open_amount == Decimal("60000")
    assert not tokyo.payments.exists() and not tokyo.promises.exists() and not tokyo.payment_plans.exists()
    dispute.refresh_from_db()
    assert dispute.status == "open"
