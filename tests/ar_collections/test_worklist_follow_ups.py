"""Worklist items about a broken commitment or a letter nobody posted leave
the list once what they ask for has been done elsewhere: a new promise or
payment plan for the invoices, a letter that a promise or plan has made
wrong to post."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import worklist, workspace
from ar_collections.models import WorkItem, WorkKind, WorkStatus
from customers.models import EventKind
from tests.ar_collections.conftest import DUE

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=30)


def broken_promise(account, collector) -> tuple[WorkItem, dt.date]:
    """A promise for both of the account's invoices, broken: its item, and the day it broke."""
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"),
                                       promised_on=ON + dt.timedelta(days=2), invoices=account.invoices.all(),
                                       on=ON)
    late = promise.broken_after + dt.timedelta(days=1)
    workspace.commitments_check(on=late)
    return WorkItem.objects.get(kind=WorkKind.PROMISE_BROKEN, promise=promise), late


def follow_up(kind: str, account, collector, invoice, *, on: dt.date) -> None:
    if kind == "promise":
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("700.00"),
                                 promised_on=on + dt.timedelta(days=7), invoices=[invoice], on=on)
    else:
        workspace.plan_propose(customer=account, actor=collector, invoices=[invoice], on=on,
                               instalments=[(on + dt.timedelta(days=7), Decimal("350.00")),
                                            (on + dt.timedelta(days=37), Decimal("350.00"))])


def work_events(account) -> list[str]:
    return list(account.events.filter(kind=EventKind.WORK).order_by("pk").values_list("summary", flat=True))


@pytest.mark.parametrize("kind", ["promise", "plan"])
def test_a_broken_promise_leaves_the_worklist_at_once_when_a_new_promise_or_plan_covers_what_is_still_open(
    make_account, collector, kind
):
    account = make_account()
    small, large = account.invoices.order_by("total_amount")
    item, late = broken_promise(account, collector)
    # The small invoice paid since: only the large one is left to chase.
    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=late,
                             allocations=[(small, Decimal("500.00"))], reference="BANK-1")
    assert item in worklist.items_for(assignee=collector, on=late)

    follow_up(kind, account, collector, large, on=late)

    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)
    assert item not in worklist.items_for(assignee=collector, on=late)
    [ended] = work_events(account)
    assert ended.startswith(f"Worklist: done — {item.title}; followed up: ")
    assert ("promise to pay EUR 700.00" if kind == "promise" else "payment plan of EUR 700.00") in ended


def test_a_broken_promise_stays_on_the_worklist_while_part_of_it_is_left_to_chase(make_account, collector):
    account = make_account()
    large = account.invoices.order_by("total_amount").last()
    item, late = broken_promise(account, collector)

    follow_up("promise", account, collector, large, on=late)

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert item in worklist.items_for(assignee=collector, on=late)
    assert work_events(account) == []


def test_a_missed_instalment_leaves_the_worklist_when_a_promise_covers_the_plan_s_invoices(
    make_account, collector
):
    account = make_account()
    large = account.invoices.order_by("total_amount").last()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=ON,
                                  instalments=[(ON + dt.timedelta(days=2), Decimal("350.00")),
                                               (ON + dt.timedelta(days=32), Decimal("350.00"))])
    late = ON + dt.timedelta(days=2 + plan.grace_days + 1)
    workspace.commitments_check(on=late)
    item = WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED, plan=plan)

    follow_up("promise", account, collector, large, on=late)

    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)


def test_the_daily_refresh_closes_a_broken_promise_s_item_that_a_new_promise_covered_before(
    make_account, collector
):
    """Items left open by an earlier version, which did not close them when the new promise was made."""
    account = make_account()
    item, late = broken_promise(account, collector)
    workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"), on=late,
                             promised_on=late + dt.timedelta(days=7), invoices=account.invoices.all())
    WorkItem.objects.filter(pk=item.pk).update(status=WorkStatus.OPEN, done_at=None, done_by=None)

    worklist.worklist_refresh(on=late)

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert work_events(account)[-1].startswith(f"Worklist: done — {item.title}; followed up: ")
