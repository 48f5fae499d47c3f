"""The daily refresh closes the items whose reason has gone (a cycle closed,
a notice reviewed elsewhere, a letter out of the print queue, an account no
longer behind, a broken promise paid, late fees paid or waived) with why on
the account's timeline, as an item ticked off says it: the collector who
finds an item gone reads what ended it. Over every account at once, in as
many statements for a thousand items as for one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ar_collections import worklist, workspace
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningCycle,
    Invoice,
    InvoiceStatus,
    LatePaymentPolicy,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import EventKind, Segment, TimelineEvent
from tests.ar_collections.conftest import DUE

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=30)


def why_closed(item: WorkItem) -> str:
    """The summary of the item's last timeline entry, once the item is done."""
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    entries = TimelineEvent.objects.for_subject(item).filter(kind=EventKind.WORK, customer=item.customer_id)
    return entries.latest("occurred_at", "pk").summary


def add(customer, kind: str, key: str, title: str = "An item", **source) -> WorkItem:
    worklist.item_add(kind=kind, key=key, customer=customer, title=title, due_on=ON, **source)
    return WorkItem.objects.get(key=key)


def test_a_call_whose_cycle_closed_says_so(make_account, plan_and_deliver):
    account = make_account(Segment.DISTRESSED)  # the distressed ladder calls on day 1
    plan_and_deliver(DUE + dt.timedelta(days=1))
    item = WorkItem.objects.get(kind=WorkKind.CALL, customer=account)
    account.dunning_cycles.update(closed_on=ON)

    worklist.worklist_refresh(on=ON)

    assert why_closed(item) == (f"Worklist: done — {item.title}; the cycle is over: nothing it chased is "
                                "still open")


def test_a_review_decided_elsewhere_says_so(make_account, plan_and_deliver):
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(auto_send=False)
    account = make_account()
    day = DUE + dt.timedelta(days=3)
    plan_and_deliver(day)
    worklist.worklist_refresh(on=day)
    item = WorkItem.objects.get(kind=WorkKind.REVIEW, customer=account)
    DunningAction.objects.filter(pk=item.action_id).update(status=ActionStatus.SKIPPED)

    worklist.worklist_refresh(on=day)

    assert why_closed(item).endswith("; the notice no longer waits for review: it was decided in the review "
                                     "queue")


def test_a_personal_item_with_no_cycle_open_says_so(make_account, plan_and_deliver):
    bond = make_account(Segment.SPECIAL_BOND, name="Old Friend")
    plan_and_deliver(DUE + dt.timedelta(days=10))
    worklist.worklist_refresh(on=ON)
    item = WorkItem.objects.get(kind=WorkKind.PERSONAL)
    bond.dunning_cycles.update(closed_on=ON)

    worklist.worklist_refresh(on=ON)

    assert why_closed(item) == (f"Worklist: done — {item.title}; no dunning cycle is open: the account is no "
                                "longer behind")


def test_a_letter_item_whose_letter_left_the_queue_says_so(make_customer):
    item = add(make_customer(), WorkKind.LETTER_UNPOSTED, "letter_unposted:action:0", "Letter not posted yet")

    worklist.worklist_refresh(on=ON)

    assert why_closed(item) == ("Worklist: done — Letter not posted yet; it is no longer in the print queue: "
                                "it was posted or withdrawn")


def test_a_broken_promise_and_a_missed_instalment_paid_say_so(make_account, collector):
    account = make_account()
    small, large = account.invoices.order_by("total_amount")
    workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                             promised_on=ON + dt.timedelta(days=2), invoices=[small], on=ON)
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=ON,
                                  instalments=[(ON + dt.timedelta(days=2), Decimal("350.00")),
                                               (ON + dt.timedelta(days=32), Decimal("350.00"))])
    late = ON + dt.timedelta(days=2 + plan.grace_days + 1)
    workspace.commitments_check(on=late)
    worklist.worklist_refresh(on=late)
    broken = WorkItem.objects.get(kind=WorkKind.PROMISE_BROKEN)
    missed = WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED)
    # Settled without a payment recorded here (no check runs at once): the refresh finds it.
    Invoice.objects.filter(pk__in=[small.pk, large.pk]).update(status=InvoiceStatus.PAID, open_amount=0,
                                                               settled_on=late)

    worklist.worklist_refresh(on=late)

    assert why_closed(broken).endswith("; every invoice of the broken promise is paid or credited: nothing "
                                       "is left to chase")
    assert why_closed(missed).endswith("; every invoice of the plan is paid or credited: nothing is left to "
                                       "chase")


def test_a_charges_item_says_whether_they_were_paid_or_a_cycle_asks_for_them(make_customer):
    paid = add(make_customer(name="Paid Ltd"), WorkKind.CHARGES, "charges:paid", "Late fees owed")
    asked = make_customer(name="Asked Ltd")
    DunningCycle.objects.create(customer=asked, number=2, opened_on=ON)
    asked_item = add(asked, WorkKind.CHARGES, "charges:asked", "Late fees owed")

    worklist.worklist_refresh(on=ON)

    assert why_closed(paid) == ("Worklist: done — Late fees owed; the late fees and interest are paid or "
                                "waived: nothing of them is owed")
    assert why_closed(asked_item) == ("Worklist: done — Late fees owed; a dunning cycle is open again: its "
                                      "notices ask for them")


def test_the_refresh_closes_any_number_of_items_in_the_same_number_of_statements(make_customer):
    def accounts_no_longer_behind(count: int) -> list[WorkItem]:
        items = []
        for _ in range(count):
            customer = make_customer()
            items += [add(customer, WorkKind.PERSONAL, f"personal:{customer.pk}"),
                      add(customer, WorkKind.LETTER_UNPOSTED, f"letter_unposted:{customer.pk}"),
                      add(customer, WorkKind.CHARGES, f"charges:{customer.pk}")]
        return items

    # Once before, as by a worker that has refreshed before: what it reads once
    # and keeps (the ladders, content types) is not counted against one side.
    worklist.worklist_refresh(on=ON)
    one = accounts_no_longer_behind(1)
    with CaptureQueriesContext(connection) as for_one:
        worklist.worklist_refresh(on=ON)
    many = accounts_no_longer_behind(5)
    with CaptureQueriesContext(connection) as for_many:
        worklist.worklist_refresh(on=ON)

    assert len(for_many.captured_queries) == len(for_one.captured_queries)
    closed = one + many
    assert set(WorkItem.objects.filter(pk__in=[i.pk for i in closed]).values_list("status", flat=True)) == {
        WorkStatus.DONE}
    said = TimelineEvent.objects.filter(kind=EventKind.WORK, summary__startswith="Worklist: done — ")
    assert said.count() == len(closed)
