"""Disputes on what a payment plan or an exception covers: the manager
deciding hears of those opened since it was asked for."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import workspace
from ar_collections.models import (
    CollectionRules,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    ExceptionKind,
    InstalmentStatus,
    Invoice,
    Payment,
    PlanStatus,
    ReversalReason,
    WorkItem,
    WorkKind,
)
from tests.ar_collections.conftest import frozen
from tests.ar_collections.plans import LATE, day, mornings

pytestmark = pytest.mark.usefixtures("default_ladders")

@pytest.fixture
def account(make_account):
    return make_account()


@pytest.fixture
def invoices(account) -> list[Invoice]:
    return list(account.invoices.order_by("total_amount"))  # EUR 500, EUR 700


@pytest.fixture
def waiting_plan(account, invoices, collector):
    """EUR 1,200.00 in two instalments, above the collectors' limit: it waits for a manager."""
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("1000.00")
    rules.save()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=[(LATE + dt.timedelta(days=10), Decimal("600.00")),
                                               (LATE + dt.timedelta(days=40), Decimal("600.00"))])
    assert plan.status == PlanStatus.AWAITING_APPROVAL
    return plan


def dispute_recorded_without_an_event(account, invoice, collector, *, on: dt.date) -> Dispute:
    """A dispute written as an ERP sync or a data fix writes it: the row only,
    nothing on the timeline to tell whether it came before or after the request."""
    return Dispute.objects.create(customer=account, invoice=invoice, reason=DisputeReason.QUALITY,
                                  description="Two cartons damaged", opened_by=collector, opened_on=on,
                                  answer_due_on=on + dt.timedelta(days=14),
                                  disputed_amount=invoice.open_amount)


def test_a_dispute_with_nothing_on_the_timeline_opened_the_day_a_plan_was_proposed_is_warned_of(
    account, invoices, collector, waiting_plan
):
    """The plan left out what the disputes open when it was proposed
    contested, and knows which they were: a dispute open on its invoices now
    that it did not leave out came after it, whatever the timeline says."""
    dispute = dispute_recorded_without_an_event(account, invoices[1], collector, on=LATE)

    assert workspace.disputes_opened_since(waiting_plan) == [dispute]


def test_a_dispute_with_nothing_on_the_timeline_opened_the_day_of_an_exception_is_warned_of(
    account, invoices, collector
):
    """Nothing tells which came first: the manager is better told of a dispute
    the collector may have known of than left unaware of one."""
    asked = workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                        pause_until=LATE + dt.timedelta(days=60), reason="Bank loan", on=LATE)
    dispute = dispute_recorded_without_an_event(account, invoices[0], collector, on=LATE)

    assert workspace.disputes_opened_since(asked) == [dispute]


def test_a_dispute_opened_the_same_day_before_an_exception_is_not_warned_of(account, invoices, collector):
    workspace.dispute_open(customer=account, actor=collector, invoice=invoices[0], on=LATE,
                           reason=DisputeReason.PRICE, description="Billed above the contract")
    asked = workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                        pause_until=LATE + dt.timedelta(days=60), reason="Bank loan", on=LATE)

    assert workspace.disputes_opened_since(asked) == []


def test_a_dispute_opened_and_settled_since_a_plan_was_proposed_is_not_warned_of_its_credit_shows_instead(
    account, invoices, collector, manager, waiting_plan
):
    """Nothing is contested any more: what the dispute took off is in the plan
    the manager decides on, which asks that much less."""
    dispute = workspace.dispute_open(customer=account, actor=collector, invoice=invoices[1],
                                     on=LATE + dt.timedelta(days=1), reason=DisputeReason.PRICE,
                                     description="Billed above the contract")
    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("100.00"), note="Contract price", on=LATE + dt.timedelta(days=2))

    waiting_plan.refresh_from_db()
    assert workspace.disputes_opened_since(waiting_plan) == []
    assert waiting_plan.total_amount == Decimal("1100.00")


def three_instalments_and_a_dispute(account, invoices, collector, *, description: str,
                                    amount: Decimal | None = None):
    """EUR 1,200.00 in three instalments of EUR 400.00 on days 10, 40 and 70;
    the large invoice (EUR 700.00) disputed on day 5, all of it or `amount`."""
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=[(LATE + dt.timedelta(days=d), Decimal("400.00"))
                                               for d in (10, 40, 70)])
    workspace.dispute_open(customer=account, actor=collector, invoice=invoices[1],
                           on=LATE + dt.timedelta(days=5), reason=DisputeReason.PRICE,
                           description=description, amount=amount)
    return plan


def test_paying_the_undisputed_part_of_a_disputed_invoice_just_after_an_instalment_held_back_keeps_the_plan(
    account, invoices, collector
):
    """EUR 1,200.00 in three instalments of EUR 400.00 on days 10, 40 and 70;
    the customer disputes the large invoice (EUR 700.00) on day 5 and holds
    back EUR 300.00 of instalment 2 for it. The morning after its grace
    period they pay EUR 500.00 of the large invoice, all but what they
    contest, before the daily check: the instalment is held back as it would
    have been an hour earlier, not missed, and the plan is not broken by a
    payment of more than it asked."""
    small, large = invoices
    plan = three_instalments_and_a_dispute(account, invoices, collector,
                                           description="Billed EUR 200.00 above the contract")
    first_after = 40 + plan.grace_days + 1

    mornings(account, 6, first_after, {10: [(small, "400.00")], 40: [(small, "100.00")],
                                       first_after: [(large, "500.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()
    # Instalment 3 is paid already: EUR 1,000.00 came in of the EUR 900.00
    # asked by then, instalment 2 less what was held back.
    assert list(plan.instalments.order_by("number").values_list("status", "deducted_amount")) == [
        (InstalmentStatus.PAID, Decimal("0.00")), (InstalmentStatus.HELD, Decimal("300.00")),
        (InstalmentStatus.PAID, Decimal("0.00"))]
    # The customer owes what they contest; the plan asks nothing more before the dispute ends.
    mornings(account, first_after + 1, 80)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert not WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()


def test_an_instalment_held_back_is_judged_again_when_the_payment_of_its_rest_is_reversed(
    account, invoices, collector, manager
):
    """EUR 1,200.00 in three instalments of EUR 400.00; EUR 300.00 of the
    large invoice is disputed on day 5, and instalment 2 comes in EUR 300.00
    short: held back. The EUR 100.00 that paid the rest of it bounces: it is
    EUR 400.00 short, more than the dispute holds back, and missed, its
    grace period over; the plan is broken, as the daily check would have
    found had the cheque never come."""
    small, _ = invoices
    plan = three_instalments_and_a_dispute(account, invoices, collector, amount=Decimal("300.00"),
                                           description="Billed EUR 300.00 above the contract")
    first_after = 40 + plan.grace_days + 1
    mornings(account, 6, first_after, {10: [(small, "400.00")], 40: [(small, "100.00")]})
    assert list(plan.instalments.order_by("number").values_list("status", "deducted_amount")) == [
        (InstalmentStatus.PAID, Decimal("0.00")), (InstalmentStatus.HELD, Decimal("300.00")),
        (InstalmentStatus.DUE, Decimal("0.00"))]
    bounced = Payment.objects.get(customer=account, amount=Decimal("100.00"))

    with frozen(day(first_after + 1)):
        workspace.payment_reverse(payment=bounced, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE,
                                  on=day(first_after + 1))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert list(plan.instalments.order_by("number").values_list("status", flat=True)) == [
        InstalmentStatus.PAID, InstalmentStatus.MISSED, InstalmentStatus.DUE]
