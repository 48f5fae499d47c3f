"""The worklist as a service: where items come from, the priority and its
parts, and completing, snoozing and handing over."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from ar_collections import worklist, workspace
from ar_collections.delivery import action_review
from ar_collections.models import (
    ActionStatus,
    CollectionRules,
    DisputeReason,
    DunningAction,
    LatePaymentPolicy,
    MoneyPointScale,
    PaymentBehaviour,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import Segment
from tests.ar_collections.conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=30)


def behaviour(customer, *, overdue: str, days: int) -> None:
    """The nightly figures, and the account's invoices overdue `days` on ON,
    owing `overdue` between them (the list reads both off the invoices)."""
    PaymentBehaviour.objects.create(customer=customer, computed_on=ON, overdue_amount=Decimal(overdue),
                                    max_days_overdue=days)
    share = Decimal(overdue) / customer.invoices.count()
    customer.invoices.update(issue_date=ON - dt.timedelta(days=days + 30),
                             due_date=ON - dt.timedelta(days=days), total_amount=share, open_amount=share)


def add(customer, key: str, kind: str = WorkKind.CALL, due_on: dt.date = ON) -> WorkItem:
    worklist.item_add(kind=kind, key=key, customer=customer, title=key, due_on=due_on)
    return WorkItem.objects.get(key=key)


def test_an_item_is_created_once_whatever_repeats_it(make_account):
    account = make_account()
    assert worklist.item_add(kind=WorkKind.CALL, key="call:x", customer=account, title="Call", due_on=ON)
    assert not worklist.item_add(kind=WorkKind.CALL, key="call:x", customer=account, title="Call", due_on=ON)
    assert WorkItem.objects.count() == 1


def test_the_priority_adds_money_lateness_risk_and_promises_and_shows_each_part(
    make_account, collector
):
    big = make_account(Segment.DISTRESSED, name="Big Distressed")
    behaviour(big, overdue="25300.00", days=52)
    small = make_account(Segment.PROMPT, name="Small Prompt")
    behaviour(small, overdue="800.00", days=4)
    add(small, "broken", WorkKind.PROMISE_BROKEN)
    add(big, "call")
    first, second = worklist.items_for(assignee=collector, on=ON)
    parts = ("money_points", "days_points", "risk_points", "promise_points", "priority")
    assert first.customer == big
    assert [getattr(first, p) for p in parts] == [25, 17, 20, 0, 62]
    assert [getattr(second, p) for p in parts] == [0, 1, 0, 20, 21]


def test_a_payment_recorded_today_lowers_the_money_part_before_the_nightly_figures_do(
    make_account, collector
):
    account = make_account(Segment.PROMPT)
    behaviour(account, overdue="25000.00", days=10)
    add(account, "call")
    invoice = account.invoices.first()
    workspace.payment_record(customer=account, amount=Decimal("12500.00"), currency="EUR", received_on=ON,
                             allocations=[(invoice, Decimal("12500.00"))], reference="BANK-1")

    (item,) = worklist.items_for(assignee=collector, on=ON)

    assert (item.overdue_amount, item.money_points) == (Decimal("12500.00"), 12)


def test_points_are_capped(make_account, collector):
    account = make_account(Segment.SYSTEMATIC_LATE)
    behaviour(account, overdue="9000000.00", days=900)
    add(account, "call")
    (item,) = worklist.items_for(assignee=collector, on=ON)
    assert (item.money_points, item.days_points, item.risk_points) == (40, 30, 12)


def overdue_in(make_customer, make_invoice, *, name: str, currency: str, amount: str):
    """A prompt payer owing `amount` in `currency`, 10 days overdue on ON."""
    customer = make_customer(name=name, segment=Segment.PROMPT, currency=currency)
    make_invoice(customer, issued=ON - dt.timedelta(days=40), due=ON - dt.timedelta(days=10), amount=amount)
    return customer


def test_the_money_part_weighs_each_currency_by_the_scale_a_manager_set_for_it(
    make_customer, make_invoice, collector
):
    """JPY 50,000 (some EUR 300) must not outrank EUR 5,000: at 1 point per
    JPY 150,000 the yen account's money part is 0, the euro one's 5."""
    yen = overdue_in(make_customer, make_invoice, name="Tokyo Parts", currency="JPY", amount="50000")
    euro = overdue_in(make_customer, make_invoice, name="Berlin Tools", currency="EUR", amount="5000")
    MoneyPointScale.objects.create(rules=CollectionRules.current(), currency="JPY",
                                   per_point_amount=Decimal("150000"))
    add(yen, "call-yen")
    add(euro, "call-euro")

    first, second = worklist.items_for(assignee=collector, on=ON)

    assert [first.customer, second.customer] == [euro, yen]
    assert (first.money_points, first.money_per_point) == (5, Decimal("1000"))
    assert (second.money_points, second.money_per_point) == (0, Decimal("150000"))


def test_a_currency_without_a_scale_counts_1_point_per_1000(make_customer, make_invoice, collector):
    MoneyPointScale.objects.create(rules=CollectionRules.current(), currency="JPY",
                                   per_point_amount=Decimal("150000"))
    pounds = overdue_in(make_customer, make_invoice, name="Leeds Ltd", currency="GBP", amount="7000")
    add(pounds, "call")

    (item,) = worklist.items_for(assignee=collector, on=ON)

    assert (item.money_points, item.money_per_point) == (7, Decimal("1000"))


def test_snoozed_and_future_items_wait_for_their_day(make_account, collector):
    account = make_account()
    item = add(account, "later", due_on=ON + dt.timedelta(days=2))
    snoozed = add(account, "snoozed")
    worklist.item_snooze(item=snoozed, actor=collector, until=ON + dt.timedelta(days=3), on=ON)
    assert list(worklist.items_for(assignee=collector, on=ON)) == []
    assert list(worklist.items_for(assignee=collector, on=ON + dt.timedelta(days=2))) == [item]
    assert set(worklist.items_for(assignee=collector, on=ON + dt.timedelta(days=3))) == {item, snoozed}
    with pytest.raises(ValidationError):
        worklist.item_snooze(item=item, actor=collector, until=ON, on=ON)


def test_done_and_handed_over_items_leave_the_list_and_say_so_on_the_timeline(
    make_account, collector, other_collector, manager, viewer
):
    account = make_account()
    done, handed = add(account, "done"), add(account, "handed")
    worklist.item_complete(item=done, actor=collector)
    # Only someone who may work the account, or a fellow collector, can take its item: not a viewer.
    for nobody in (viewer,):
        with pytest.raises(ValidationError, match="may not work"):
            worklist.item_reassign(item=handed, actor=collector, to=nobody, reason="Swapped work")
    worklist.item_reassign(item=handed, actor=collector, to=manager, reason="Swapped work")
    assert list(worklist.items_for(assignee=collector, on=ON)) == []
    assert list(worklist.items_for(assignee=manager, on=ON)) == [handed]
    summaries = list(account.events.filter(kind="work").values_list("summary", flat=True))
    assert any("done" in s for s in summaries)
    assert any(f"to {manager.get_username()}" in s for s in summaries)
    with pytest.raises(ValidationError, match="already done"):
        worklist.item_complete(item=done, actor=collector)


def test_a_personal_track_item_closes_when_the_account_is_no_longer_behind(make_account, plan_and_deliver):
    bond = make_account(Segment.SPECIAL_BOND, name="Old Friend")
    plan_and_deliver(DUE + dt.timedelta(days=10))
    worklist.worklist_refresh(on=ON)
    item = WorkItem.objects.get(kind=WorkKind.PERSONAL)
    bond.dunning_cycles.update(closed_on=ON)
    worklist.worklist_refresh(on=ON)
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE


def test_a_call_task_closes_once_the_account_has_paid_and_its_cycle_closed(
    make_account, collector, plan_and_deliver
):
    account = make_account(Segment.DISTRESSED)  # the distressed ladder calls on day 1
    plan_and_deliver(DUE + dt.timedelta(days=1))
    item = WorkItem.objects.get(kind=WorkKind.CALL)
    day = DUE + dt.timedelta(days=3)
    worklist.worklist_refresh(on=day)
    assert item in worklist.items_for(assignee=collector, on=day)  # still behind: the call stands

    allocations = [(i, i.open_amount) for i in account.invoices.all()]
    workspace.payment_record(customer=account, amount=sum(a for _, a in allocations), currency="EUR",
                             received_on=DUE + dt.timedelta(days=2), allocations=allocations)
    plan_and_deliver(day)  # the nightly run closes the cycle
    worklist.worklist_refresh(on=day)  # as the run and the daily check do

    assert not account.dunning_cycles.filter(closed_on__isnull=True).exists()
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert item not in worklist.items_for(assignee=collector, on=day)


def test_notices_queued_for_review_are_on_the_list_until_reviewed(make_account, collector, plan_and_deliver):
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(auto_send=False)
    account = make_account()
    day = DUE + dt.timedelta(days=3)
    plan_and_deliver(day)
    action = DunningAction.objects.get(customer=account)
    assert action.status == ActionStatus.IN_REVIEW
    assert worklist.worklist_refresh(on=day) == 1
    assert worklist.worklist_refresh(on=day) == 0
    item = WorkItem.objects.get(kind=WorkKind.REVIEW)
    assert item.action == action and item.assignee == collector
    with frozen(day):
        action_review(action=action, collector=collector, send=False, note="Called instead")
    worklist.worklist_refresh(on=day)
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE


@pytest.mark.parametrize("send", [True, False], ids=["sent", "skipped"])
def test_a_notice_reviewed_in_the_review_queue_leaves_the_worklist_at_once(
    make_account, collector, plan_and_deliver, send
):
    """Not at the next nightly refresh: until then the worklist offered to
    review a notice that had already been sent or skipped."""
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(auto_send=False)
    account = make_account()
    day = DUE + dt.timedelta(days=3)
    plan_and_deliver(day)
    worklist.worklist_refresh(on=day)
    item = WorkItem.objects.get(kind=WorkKind.REVIEW, customer=account)
    with frozen(day):
        action_review(action=item.action, collector=collector, send=send,
                      note="" if send else "Called instead")
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert item.done_by == collector
    assert item not in worklist.items_for(assignee=collector, on=day)


def test_accounts_on_the_personal_track_and_unanswered_disputes_are_on_the_list(
    make_account, collector, plan_and_deliver
):
    bond = make_account(Segment.SPECIAL_BOND, name="Old Friend")
    plan_and_deliver(DUE + dt.timedelta(days=10))  # opens the cycle
    other = make_account(name="Disputer")
    workspace.dispute_open(customer=other, actor=collector, invoice=other.invoices.first(), on=ON,
                           reason=DisputeReason.PRICE, description="Wrong price")
    worklist.worklist_refresh(on=ON)
    # The special-bond ladder's steps are reviewed, so its first notice waits for review too.
    assert set(WorkItem.objects.values_list("kind", "customer__name")) == {
        (WorkKind.PERSONAL, bond.name), (WorkKind.REVIEW, bond.name)}
    worklist.worklist_refresh(on=ON + dt.timedelta(days=7))
    waiting = WorkItem.objects.get(kind=WorkKind.DISPUTE_WAITING)
    assert waiting.customer == other and "Wrong price" not in waiting.title


def test_lateness_counts_an_invoice_in_another_currency(make_customer, make_invoice, collector):
    """A euro account owing USD 50,000.00, 65 days overdue, nothing in euros:
    21 lateness points (days need no exchange rate)."""
    customer = make_customer(name="Dollar Debtor Inc", currency="EUR")
    make_invoice(customer, issued=ON - dt.timedelta(days=95), due=ON - dt.timedelta(days=65),
                 amount="50000.00", currency="USD")
    add(customer, "call")

    (item,) = worklist.items_for(assignee=collector, on=ON)

    assert (item.days_late, item.days_points) == (65, 21)


def test_a_broken_promise_and_a_missed_instalment_leave_the_list_once_their_invoices_are_paid(
    make_account, collector
):
    account = make_account()
    small, large = account.invoices.order_by("total_amount")
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                                       promised_on=ON + dt.timedelta(days=2), invoices=[small], on=ON)
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=ON,
                                  instalments=[(ON + dt.timedelta(days=2), Decimal("350.00")),
                                               (ON + dt.timedelta(days=32), Decimal("350.00"))])
    late = ON + dt.timedelta(days=2 + plan.grace_days + 1)
    assert promise.broken_after < late
    workspace.commitments_check(on=late)
    worklist.worklist_refresh(on=late)
    assert set(worklist.items_for(assignee=collector, on=late).values_list("kind", flat=True)) == {
        WorkKind.PROMISE_BROKEN, WorkKind.INSTALMENT_MISSED}

    # Paid late, in full: nothing is left to chase.
    workspace.payment_record(customer=account, amount=Decimal("1200.00"), currency="EUR", received_on=late,
                             allocations=[(small, Decimal("500.00")), (large, Decimal("700.00"))])
    worklist.worklist_refresh(on=late)

    assert not worklist.items_for(assignee=collector, on=late).exists()


def test_a_hand_over_names_both_people_by_their_full_names(make_account, collector, manager):
    collector.first_name, collector.last_name = "Carla", "Collins"
    manager.first_name, manager.last_name = "Maria", "Meyer"
    collector.save()
    manager.save()
    account = make_account()
    item = add(account, "handed")

    worklist.item_reassign(item=item, actor=collector, to=manager, reason="Swapped work")

    [summary] = account.events.filter(kind="work").values_list("summary", flat=True)
    assert summary.startswith("Worklist: handed from Carla Collins to Maria Meyer")
