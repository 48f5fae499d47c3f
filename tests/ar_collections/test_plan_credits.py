"""Credits the customer deducts from a payment plan's instalments: a credit
note or correction on the plan's invoices comes off the end of the schedule,
but the customer may take it off any later payment instead. The plan moves
what they took back to where the credit came off, however many instalments
lie between the credit and the payment it was taken from, and counts each
credit once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import workspace
from ar_collections.models import (
    DisputeOutcome,
    DisputeReason,
    InstalmentStatus,
    Invoice,
    Payment,
    PlanStatus,
    ReversalReason,
    WorkItem,
    WorkKind,
)
from customers.models import EventKind, TimelineEvent
from tests.ar_collections.conftest import frozen
from tests.ar_collections.plans import LATE, day, instalments_of, mornings, schedule

pytestmark = pytest.mark.usefixtures("default_ladders")

@pytest.fixture
def account(make_account):
    return make_account()


@pytest.fixture
def invoices(account) -> list[Invoice]:
    return list(account.invoices.order_by("total_amount"))  # EUR 500, EUR 700


def four_instalments(account, invoices, collector):
    """EUR 1,200.00 in four instalments of EUR 300.00 on days 10, 40, 70 and 100, the first paid."""
    plan = workspace.plan_propose(
        customer=account, actor=collector, invoices=invoices, on=LATE,
        instalments=schedule((10, "300.00"), (40, "300.00"), (70, "300.00"), (100, "300.00")))
    mornings(account, 1, 19, {10: [(invoices[0], "300.00")]})
    return plan


def test_a_credit_kept_for_a_later_instalment_than_the_next_is_moved_there_and_the_plan_holds(
    account, invoices, collector, manager
):
    """A credit note of EUR 300.00 on day 20 takes instalment 4 off the
    schedule. The customer pays instalment 2 in full on day 40 as agreed and
    takes the credit off instalment 3 on day 70 instead: that is the credit
    the plan owed them, not a missed instalment."""
    small, large = invoices
    plan = four_instalments(account, invoices, collector)
    note = workspace.credit_note_record(customer=account, actor=manager, invoice=large,
                                        amount=Decimal("300.00"), reason="One pallet returned",
                                        issued_on=day(20))
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("300.00")] * 3

    mornings(account, 20, 90, {40: [(small, "200.00"), (large, "100.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()
    assert instalments_of(plan) == [
        (1, day(10), Decimal("300.00"), InstalmentStatus.PAID),
        (2, day(40), Decimal("300.00"), InstalmentStatus.PAID),
        (3, day(70), Decimal("300.00"), InstalmentStatus.PAID),
        (4, day(100), Decimal("300.00"), InstalmentStatus.DUE),
    ]
    assert any(summary.startswith(f"Instalment 3 of 4 paid less EUR 300.00 taken off for credit note "
                                  f"{note.number} on {large.number}")
               for summary in TimelineEvent.objects.filter(customer=account, kind=EventKind.PAYMENT_PLAN)
               .values_list("summary", flat=True))
    # And paying the last instalment as first agreed completes the plan.
    mornings(account, 91, 110, {100: [(large, "300.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_a_credit_taken_off_two_instalments_in_turn_is_counted_once(account, invoices, collector, manager):
    """The customer takes the EUR 300.00 credit of day 20 off instalment 2,
    then again off instalment 3: the second time it was no credit of theirs,
    and instalment 3 is missed."""
    _, large = invoices
    plan = four_instalments(account, invoices, collector)
    workspace.credit_note_record(customer=account, actor=manager, invoice=large, amount=Decimal("300.00"),
                                 reason="One pallet returned", issued_on=day(20))

    mornings(account, 20, 90)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert [status for *_, status in instalments_of(plan)][:3] == [
        InstalmentStatus.PAID, InstalmentStatus.PAID, InstalmentStatus.MISSED]
    assert "EUR 300.00 short" in WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED).title


def test_part_of_a_credit_taken_off_each_of_two_later_instalments_keeps_the_plan(
    account, invoices, collector
):
    """A dispute settled on day 20 by a credit note of EUR 400.00: instalment 4
    leaves the schedule and instalment 3 asks EUR 200.00. The customer pays
    instalment 2 in full, then takes EUR 200.00 of the credit off instalment 3
    (EUR 100.00 on day 70) and the other EUR 200.00 off instalment 4."""
    small, large = invoices
    plan = four_instalments(account, invoices, collector)
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=large, on=day(18),
                                     reason=DisputeReason.PRICE, description="Billed above the contract")
    workspace.dispute_resolve(dispute=dispute, actor=collector, on=day(20), note="Contract price",
                              amount=Decimal("400.00"), outcome=DisputeOutcome.CREDIT_NOTE)
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [
        Decimal("300.00"), Decimal("300.00"), Decimal("200.00")]

    mornings(account, 20, 90, {40: [(small, "200.00"), (large, "100.00")], 70: [(large, "100.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert instalments_of(plan) == [
        (1, day(10), Decimal("300.00"), InstalmentStatus.PAID),
        (2, day(40), Decimal("300.00"), InstalmentStatus.PAID),
        (3, day(70), Decimal("200.00"), InstalmentStatus.PAID),
        (4, day(100), Decimal("100.00"), InstalmentStatus.DUE),
    ]
    mornings(account, 91, 110, {100: [(large, "100.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED


def test_a_credit_note_kept_on_the_account_and_set_against_a_planned_invoice_may_be_taken_off_early(
    account, invoices, collector, manager
):
    """A rebate credited to the account before the plan was agreed, set against
    the large invoice on day 20 once the customer says so: the plan asks
    EUR 300.00 less at its end, and the customer takes it off instalment 2."""
    _, large = invoices
    rebate = workspace.credit_note_on_account(customer=account, actor=manager, currency="EUR",
                                              amount=Decimal("300.00"), reason="Volume rebate",
                                              issued_on=LATE - dt.timedelta(days=5))
    plan = four_instalments(account, invoices, collector)
    workspace.credit_apply(customer=account, actor=manager, credit=rebate, invoices=[large])
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("300.00")] * 3

    mornings(account, 20, 60)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()
    assert [(amount, status) for _, _, amount, status in instalments_of(plan)] == [
        (Decimal("300.00"), InstalmentStatus.PAID), (Decimal("300.00"), InstalmentStatus.PAID),
        (Decimal("300.00"), InstalmentStatus.DUE), (Decimal("300.00"), InstalmentStatus.DUE)]
    assert any(summary.startswith(f"Instalment 2 of 4 paid less EUR 300.00 taken off for credit note "
                                  f"{rebate.number} on {large.number}")
               for summary in TimelineEvent.objects.filter(customer=account, kind=EventKind.PAYMENT_PLAN)
               .values_list("summary", flat=True))


def test_a_credit_note_given_before_the_plan_was_agreed_is_not_taken_off_an_instalment_again(
    account, invoices, collector, manager
):
    """A credit note of the same morning, before the plan: the plan's total
    already leaves it out, so an instalment short by it is missed."""
    small, large = invoices
    workspace.credit_note_record(customer=account, actor=manager, invoice=large, amount=Decimal("200.00"),
                                 reason="One pallet returned", issued_on=LATE)
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "300.00"), (40, "300.00"), (70, "400.00")))

    mornings(account, 1, 30, {10: [(small, "100.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert "EUR 200.00 short" in WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED).title


def test_a_credit_taken_off_an_instalment_is_counted_once_when_a_payment_of_it_is_reversed(
    account, invoices, collector, manager
):
    """A credit note of EUR 300.00 on day 20 takes instalment 4 off the
    schedule. The customer pays instalment 2 with two cheques of EUR 100.00
    and takes EUR 100.00 of the credit off it: instalment 4 asks that back.
    The second cheque bounces: the customer has now taken EUR 200.00 of the
    credit off instalment 2, which the plan asks back with instalment 4. The
    EUR 100.00 taken off already is not credit left to take again."""
    small, _ = invoices
    plan = four_instalments(account, invoices, collector)
    workspace.credit_note_record(customer=account, actor=manager, invoice=invoices[1],
                                 amount=Decimal("300.00"), reason="One pallet returned", issued_on=day(20))
    after_grace = 40 + plan.grace_days + 1
    mornings(account, 20, after_grace, {38: [(small, "100.00")], 40: [(small, "100.00")]})
    assert deducted(plan) == [
        (1, Decimal("300.00"), Decimal("0.00"), InstalmentStatus.PAID),
        (2, Decimal("300.00"), Decimal("100.00"), InstalmentStatus.PAID),
        (3, Decimal("300.00"), Decimal("0.00"), InstalmentStatus.DUE),
        (4, Decimal("100.00"), Decimal("0.00"), InstalmentStatus.DUE)]
    bounced = Payment.objects.get(customer=account, received_on=day(40))

    with frozen(day(after_grace + 1)):
        workspace.payment_reverse(payment=bounced, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE,
                                  on=day(after_grace + 1))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert deducted(plan) == [
        (1, Decimal("300.00"), Decimal("0.00"), InstalmentStatus.PAID),
        (2, Decimal("300.00"), Decimal("200.00"), InstalmentStatus.PAID),
        (3, Decimal("300.00"), Decimal("0.00"), InstalmentStatus.DUE),
        (4, Decimal("200.00"), Decimal("0.00"), InstalmentStatus.DUE)]
    # What the plan still asks is what the invoices owe less the credit left: 1,200.00 − 300.00 paid
    # − 100.00 paid − 300.00 credited.
    left = sum((amount - taken for _, amount, taken, status in deducted(plan)
                if status == InstalmentStatus.DUE), Decimal("0.00"))
    assert left == Decimal("500.00")


def deducted(plan) -> list[tuple]:
    return list(plan.instalments.order_by("number").values_list("number", "amount", "deducted_amount",
                                                                "status"))
