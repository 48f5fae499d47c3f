"""An account on the personal track that falls behind again in the same
cycle gets its personal-treatment item back (the item is the cycle's: its
key names it), once, with why on the timeline; one a collector ticked off
for the debt still overdue stays done."""

from __future__ import annotations

import datetime as dt

import pytest

from ar_collections import worklist, workspace
from ar_collections.imports import invoices_import
from ar_collections.models import WorkItem, WorkKind, WorkStatus
from arcrm.text import person_name
from customers.models import CollectorAbsence, Customer, EventKind, Segment, TimelineEvent
from tests.ar_collections.conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=30)


@pytest.fixture
def bond(make_account, plan_and_deliver):
    """A special-bond account behind since DUE, its cycle open and its personal item on the list on ON."""
    with frozen(DUE - dt.timedelta(days=30)):  # its invoices recorded when they were issued
        account = make_account(Segment.SPECIAL_BOND, name="Old Friend")
    plan_and_deliver(DUE + dt.timedelta(days=10))
    with frozen(ON):
        worklist.worklist_refresh(on=ON)
    return account


def personal(account) -> WorkItem:
    [item] = WorkItem.objects.filter(kind=WorkKind.PERSONAL, customer=account)
    return item


def refresh(day: dt.date) -> None:
    with frozen(day):
        worklist.worklist_refresh(on=day)


def back_entries(item: WorkItem) -> list[str]:
    return list(TimelineEvent.objects.for_subject(item).filter(kind=EventKind.WORK,
                                                               summary__startswith="Worklist: back — ")
                .values_list("summary", flat=True))


@pytest.mark.parametrize("how", ["falls-due-later", "recorded-later"])
def test_an_account_paid_up_that_falls_behind_again_in_the_cycle_gets_its_item_back(
    bond, make_invoice, how
):
    with frozen(ON):
        allocations = [(i, i.open_amount) for i in bond.invoices.all()]
        workspace.payment_record(customer=bond, amount=sum(a for _, a in allocations), currency="EUR",
                                 received_on=ON, allocations=allocations, reference="BANK-1")
        worklist.settled_items_close(customer_ids=[bond.pk], on=ON)
    item = personal(bond)
    assert item.status == WorkStatus.DONE
    assert bond.dunning_cycles.filter(closed_on__isnull=True).exists()
    if how == "falls-due-later":
        with frozen(ON):
            make_invoice(bond, issued=ON - dt.timedelta(days=20), due=ON + dt.timedelta(days=5),
                         amount="300.00", number="INV-NEW")
        overdue_since = ON + dt.timedelta(days=6)
        refresh(ON + dt.timedelta(days=1))  # not overdue yet: nothing to call about
        assert personal(bond).status == WorkStatus.DONE
    else:  # an invoice overdue before the payment, brought in by an import since
        with frozen(ON + dt.timedelta(days=2)):
            make_invoice(bond, issued=ON - dt.timedelta(days=40), due=ON - dt.timedelta(days=10),
                         amount="300.00", number="INV-NEW")
        overdue_since = ON - dt.timedelta(days=9)

    later = ON + dt.timedelta(days=10)
    refresh(later)
    refresh(later)

    item = personal(bond)
    assert (item.status, item.due_on, item.done_at) == (WorkStatus.OPEN, later, None)
    assert back_entries(item) == [
        f"Worklist: back — Personal treatment: Old Friend is behind again: INV-NEW overdue since "
        f"{overdue_since.day} {overdue_since:%b %Y}; call rather than write"]


def test_an_item_ticked_off_stays_done_for_the_same_debt_and_comes_back_for_a_new_one(
    bond, collector, make_invoice
):
    with frozen(ON):
        worklist.item_complete(item=personal(bond), actor=collector)
        make_invoice(bond, issued=ON - dt.timedelta(days=20), due=ON + dt.timedelta(days=3),
                     amount="300.00", number="INV-NEW")
    refresh(ON)
    refresh(ON + dt.timedelta(days=3))  # the same debt: the call about it was made
    assert personal(bond).status == WorkStatus.DONE
    assert back_entries(personal(bond)) == []

    refresh(ON + dt.timedelta(days=4))  # INV-NEW is overdue: a debt the call was not about

    assert personal(bond).status == WorkStatus.OPEN
    assert len(back_entries(personal(bond))) == 1


def test_an_item_back_for_a_new_invoice_names_that_debt_in_its_title(bond, collector, make_invoice):
    """Its first title told of the debt the cycle opened with, already called
    about: the collector must see which debt the call is about now."""
    first = personal(bond).title
    with frozen(ON):
        worklist.item_complete(item=personal(bond), actor=collector)
        make_invoice(bond, issued=ON - dt.timedelta(days=20), due=ON + dt.timedelta(days=3),
                     amount="300.00", number="INV-NEW")

    refresh(ON + dt.timedelta(days=4))

    item = personal(bond)
    overdue_since = ON + dt.timedelta(days=4)
    assert item.status == WorkStatus.OPEN
    assert first.startswith("Personal treatment: Old Friend is behind (since ")
    assert item.title == (f"Personal treatment: Old Friend is behind again: INV-NEW overdue since "
                          f"{overdue_since.day} {overdue_since:%b %Y}; call rather than write")
    assert back_entries(item) == [f"Worklist: back — {item.title}"]


def test_an_account_paid_up_behind_again_on_an_invoice_it_had_then_gets_its_item_back_once(
    bond, make_invoice
):
    """Paid up, nothing overdue: the item closed. INV-LATER was open then and
    not yet due; the ERP has since moved its due date back, and it is
    overdue: the account is behind again in the same cycle, though the
    invoice neither is new nor fell due after the item closed (as a payment
    taken back would leave it too)."""
    # The bond on its card, as the import's recomputed segment reads it.
    Customer.objects.filter(pk=bond.pk).update(special_bond="They stood by us when our plant burned down.")
    with frozen(ON - dt.timedelta(days=1)):
        make_invoice(bond, issued=ON - dt.timedelta(days=10), due=ON + dt.timedelta(days=20), amount="300.00",
                     number="INV-LATER")
    with frozen(ON):
        allocations = [(i, i.open_amount) for i in bond.invoices.filter(due_date__lt=ON)]
        workspace.payment_record(customer=bond, amount=sum(a for _, a in allocations), currency="EUR",
                                 received_on=ON, allocations=allocations, reference="BANK-1")
        worklist.settled_items_close(customer_ids=[bond.pk], on=ON)
    assert personal(bond).status == WorkStatus.DONE
    later = ON + dt.timedelta(days=3)
    issued, moved_to = ON - dt.timedelta(days=10), ON - dt.timedelta(days=5)
    with frozen(later):
        report = invoices_import("number,account_number,issue_date,due_date,currency,total_amount\n"
                                 f"INV-LATER,{bond.account_number},{issued},{moved_to},EUR,300.00\n")
    assert report.updated == 1, report.errors

    refresh(later)
    refresh(later + dt.timedelta(days=1))

    item = personal(bond)
    overdue_since = moved_to + dt.timedelta(days=1)
    assert (item.status, item.due_on) == (WorkStatus.OPEN, later)
    assert back_entries(item) == [
        f"Worklist: back — Personal treatment: Old Friend is behind again: INV-LATER overdue since "
        f"{overdue_since.day} {overdue_since:%b %Y}; call rather than write"]


def test_an_item_back_while_its_collector_is_away_says_whom_its_stand_in_covers_for(
    request, collector, other_collector, make_invoice
):
    """The item came to Otto "(covering for carla)"; back with the invoice
    it is now about, it no longer said why it was on his list."""
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=ON - dt.timedelta(days=1), ends_on=ON + dt.timedelta(days=20))
    bond = request.getfixturevalue("bond")
    covering = f" (covering for {person_name(collector)})"
    assert personal(bond).title.endswith(covering)
    with frozen(ON):
        allocations = [(i, i.open_amount) for i in bond.invoices.all()]
        workspace.payment_record(customer=bond, amount=sum(a for _, a in allocations), currency="EUR",
                                 received_on=ON, allocations=allocations, reference="BANK-1")
        worklist.settled_items_close(customer_ids=[bond.pk], on=ON)
        make_invoice(bond, issued=ON - dt.timedelta(days=20), due=ON + dt.timedelta(days=5),
                     amount="300.00", number="INV-NEW")

    refresh(ON + dt.timedelta(days=10))

    item = personal(bond)
    assert (item.status, item.assignee) == (WorkStatus.OPEN, other_collector)
    assert "behind again: INV-NEW overdue" in item.title and item.title.endswith(covering)


def test_an_item_back_after_its_collector_went_away_goes_to_the_stand_in(
    bond, collector, other_collector, make_invoice
):
    """On Carla's list before she went away, the item came back on hers, not
    on Otto's, who covers for her."""
    assert personal(bond).assignee == collector
    with frozen(ON):
        allocations = [(i, i.open_amount) for i in bond.invoices.all()]
        workspace.payment_record(customer=bond, amount=sum(a for _, a in allocations), currency="EUR",
                                 received_on=ON, allocations=allocations, reference="BANK-1")
        worklist.settled_items_close(customer_ids=[bond.pk], on=ON)
        make_invoice(bond, issued=ON - dt.timedelta(days=20), due=ON + dt.timedelta(days=5),
                     amount="300.00", number="INV-NEW")
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=ON + dt.timedelta(days=1), ends_on=ON + dt.timedelta(days=20))

    refresh(ON + dt.timedelta(days=10))

    item = personal(bond)
    assert (item.status, item.assignee) == (WorkStatus.OPEN, other_collector)
    assert "behind again: INV-NEW overdue" in item.title
    assert item.title.endswith(f"; call rather than write (covering for {person_name(collector)})")
