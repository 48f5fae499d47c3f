"""Order gaps: an account that stops ordering for well past its usual
interval is put before its collector once ("ask how they are"), and the
account page says how often it orders and how long ago it last did."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections import worklist, workspace
from ar_collections.api import api_token_create
from ar_collections.models import Invoice, InvoiceStatus, WorkItem, WorkKind, WorkStatus
from customers.models import CollectorAbsence, EventKind, TimelineEvent

from .conftest import frozen

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


def ordered(make_invoice, customer, *, last: dt.date, every: int, orders: int) -> None:
    """`orders` invoices `every` days apart, the last one issued on `last`."""
    for n in range(orders):
        make_invoice(customer, issued=last - dt.timedelta(days=every * n))


def gap_items(customer=None):
    items = WorkItem.objects.filter(kind=WorkKind.ORDER_GAP)
    return items.filter(customer=customer) if customer else items


def rhythm_line(client, customer) -> str:
    """The account card's line on the ordering rhythm, as read (tags left out)."""
    page = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    line = page.split('id="order-rhythm"', 1)[1].split(">", 1)[1].split("</span>")[0]
    return " ".join(re.sub(r"<[^>]+>", "", line).split())


def test_an_account_quiet_for_52_days_that_orders_every_30_goes_to_its_collector_once(
    make_customer, make_invoice, collector
):
    customer = make_customer(name="Acme")
    ordered(make_invoice, customer, last=TODAY - dt.timedelta(days=52), every=30, orders=6)

    worklist.worklist_refresh(on=TODAY)
    worklist.worklist_refresh(on=TODAY)
    with frozen(TODAY + dt.timedelta(days=1)):
        worklist.worklist_refresh(on=TODAY + dt.timedelta(days=1))

    item = gap_items().get()
    assert item.customer == customer and item.assignee == collector and item.status == WorkStatus.OPEN
    assert item.title == "No order since 14 Jun (usually every 30 days): ask how they are"


def test_a_gap_running_from_last_year_names_the_year_of_the_last_order(make_customer, make_invoice):
    customer = make_customer()
    # Quarterly orders, the last on 20 Dec 2024: 228 days quiet by 5 Aug 2025.
    ordered(make_invoice, customer, last=dt.date(2024, 12, 20), every=90, orders=5)

    worklist.worklist_refresh(on=TODAY)

    assert gap_items(customer).get().title == (
        "No order since 20 Dec 2024 (usually every 90 days): ask how they are")


def test_the_learned_interval_is_the_median_gap_of_the_last_twelve_order_days(make_customer, make_invoice):
    customer = make_customer()
    last = TODAY - dt.timedelta(days=80)
    # Newest first: eleven gaps, one of them a long summer break, then older
    # orders every 3 days, before the last twelve order days.
    days = [last]
    for gap in (20, 22, 25, 90, 21, 19, 23, 20, 24, 21, 22, 3, 3, 3, 3):
        days.append(days[-1] - dt.timedelta(days=gap))
    for day in days:
        make_invoice(customer, issued=day)
    make_invoice(customer, issued=last)  # two invoices of one day are one order

    rhythm = worklist.order_rhythm(customer, on=TODAY)

    # 19 20 20 21 21 [22] 22 23 24 25 90: the summer does not count, nor do the 3-day orders.
    assert (rhythm.interval, rhythm.learned, rhythm.orders, rhythm.last_order_on) == (22, True, 12, last)
    # Of an even count of gaps, the higher middle one: 1, [9], 20.
    assert worklist.interval_learned([dt.date(2025, 1, d) for d in (1, 11, 31, 2)]) == 9
    assert worklist.interval_learned([dt.date(2025, 1, d) for d in (1, 11, 31)]) is None


def test_an_interval_set_on_the_account_card_wins_over_the_learned_one(make_customer, make_invoice):
    learned_says_gap = make_customer(name="Set longer", typical_order_interval_days=60)
    ordered(make_invoice, learned_says_gap, last=TODAY - dt.timedelta(days=52), every=30, orders=6)
    learned_says_fine = make_customer(name="Set shorter", typical_order_interval_days=10)
    ordered(make_invoice, learned_says_fine, last=TODAY - dt.timedelta(days=30), every=60, orders=6)

    worklist.worklist_refresh(on=TODAY)

    assert not gap_items(learned_says_gap).exists()
    assert gap_items(learned_says_fine).get().title == (
        "No order since 6 Jul (usually every 10 days): ask how they are")


def test_an_interval_set_on_the_card_needs_no_history(make_customer, make_invoice):
    customer = make_customer(typical_order_interval_days=30)
    make_invoice(customer, issued=TODAY - dt.timedelta(days=50))

    worklist.worklist_refresh(on=TODAY)

    assert gap_items(customer).count() == 1


def test_a_new_invoice_closes_the_item_and_the_next_gap_is_a_new_item(
    make_customer, make_invoice, collector
):
    customer = make_customer()
    ordered(make_invoice, customer, last=TODAY - dt.timedelta(days=52), every=30, orders=6)
    worklist.worklist_refresh(on=TODAY)
    first = gap_items(customer).get()

    make_invoice(customer, issued=TODAY)
    worklist.worklist_refresh(on=TODAY)

    first.refresh_from_db()
    assert first.status == WorkStatus.DONE
    ended = TimelineEvent.objects.filter(customer=customer, kind=EventKind.WORK).get()
    assert ended.summary == f"Worklist: done — {first.title}; it has ordered again"

    later = TODAY + dt.timedelta(days=60)
    with frozen(later):
        worklist.worklist_refresh(on=later)
    assert gap_items(customer).filter(status=WorkStatus.OPEN).get().title.startswith(
        "No order since 5 Aug (usually every 30 days)")


def test_a_cancelled_last_order_closes_the_item_saying_so_and_the_gap_runs_from_the_order_before(
    make_customer, make_invoice, collector, manager
):
    # The gap ran from an order the ERP then cancelled: the account has not ordered
    # again, and the item it was, read "No order since 14 Jun", is wrong by a month.
    customer = make_customer()
    ordered(make_invoice, customer, last=TODAY - dt.timedelta(days=52), every=30, orders=6)
    worklist.worklist_refresh(on=TODAY)
    first = gap_items(customer).get()
    last = Invoice.objects.get(customer=customer, issue_date=TODAY - dt.timedelta(days=52))

    workspace.invoice_cancel(invoice=last, actor=manager, on=TODAY, reason="Raised in error")
    worklist.order_gaps_ordered(customer_ids=[customer.pk], on=TODAY)
    first.refresh_from_db()
    assert first.status == WorkStatus.OPEN  # not "it has ordered again"

    worklist.worklist_refresh(on=TODAY)
    first.refresh_from_db()
    assert first.status == WorkStatus.DONE
    ended = TimelineEvent.objects.filter(customer=customer, kind=EventKind.WORK).get()
    assert ended.summary == (f"Worklist: done — {first.title}; the order its gap ran from was cancelled "
                             "in the ERP")
    assert gap_items(customer).filter(status=WorkStatus.OPEN).get().title.startswith(
        "No order since 15 May (usually every 30 days)")


def test_an_item_ticked_off_stays_done_while_the_same_gap_goes_on(make_customer, make_invoice, collector):
    customer = make_customer()
    ordered(make_invoice, customer, last=TODAY - dt.timedelta(days=52), every=30, orders=6)
    worklist.worklist_refresh(on=TODAY)
    worklist.item_complete(item=gap_items(customer).get(), actor=collector)

    later = TODAY + dt.timedelta(days=10)
    with frozen(later):
        worklist.worklist_refresh(on=later)

    assert gap_items(customer).get().status == WorkStatus.DONE


def test_an_account_with_too_little_history_gets_none(make_customer, make_invoice):
    three_orders = make_customer()
    ordered(make_invoice, three_orders, last=TODAY - dt.timedelta(days=100), every=10, orders=3)

    worklist.worklist_refresh(on=TODAY)

    assert not gap_items().exists()


def test_accounts_never_ordering_cancelled_only_or_on_credit_hold_get_none(make_customer, make_invoice):
    make_customer(name="Nothing yet", typical_order_interval_days=30)
    cancelled = make_customer(name="Cancelled only", typical_order_interval_days=30)
    for invoice in [make_invoice(cancelled, issued=TODAY - dt.timedelta(days=100 - n)) for n in range(5)]:
        Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.CANCELLED)
    on_hold = make_customer(name="On hold", on_credit_hold=True)
    ordered(make_invoice, on_hold, last=TODAY - dt.timedelta(days=52), every=30, orders=6)

    worklist.worklist_refresh(on=TODAY)

    assert not gap_items().exists()


def test_a_gap_found_while_the_collector_is_away_goes_to_the_stand_in(
    make_customer, make_invoice, collector, other_collector
):
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=3))
    customer = make_customer()
    ordered(make_invoice, customer, last=TODAY - dt.timedelta(days=52), every=30, orders=6)

    worklist.worklist_refresh(on=TODAY)

    item = gap_items(customer).get()
    assert item.assignee == other_collector
    assert item.title.endswith("ask how they are (covering for carla)")


def test_the_item_is_on_the_collectors_worklist(client, make_customer, make_invoice, collector):
    customer = make_customer(name="Acme")
    ordered(make_invoice, customer, last=TODAY - dt.timedelta(days=52), every=30, orders=6)
    worklist.worklist_refresh(on=TODAY)
    client.force_login(collector)

    page = client.get(reverse("collections:worklist")).content.decode()

    assert "No order for longer than usual" in page
    assert "No order since 14 Jun (usually every 30 days): ask how they are" in page


def test_the_account_page_says_the_rhythm_and_the_gap(client, make_customer, make_invoice, collector):
    learned = make_customer()
    ordered(make_invoice, learned, last=TODAY - dt.timedelta(days=52), every=30, orders=14)
    set_on_card = make_customer(typical_order_interval_days=45)
    ordered(make_invoice, set_on_card, last=TODAY - dt.timedelta(days=1), every=30, orders=2)
    too_few = make_customer()
    ordered(make_invoice, too_few, last=TODAY, every=30, orders=3)
    never = make_customer()
    client.force_login(collector)

    assert rhythm_line(client, learned) == (
        "Orders every ~30 days (learned from 12 orders); last order 52 days ago: "
        "longer than usual, ask how they are")
    assert rhythm_line(client, set_on_card) == (
        "Orders every ~45 days (as set on the account card); last order yesterday")
    assert rhythm_line(client, too_few) == (
        "Too few orders to learn its rhythm (3 so far, 4 needed); last order today")
    assert rhythm_line(client, never) == "No order yet"


def test_an_order_the_erp_sends_ends_the_gap_at_once_not_at_the_next_daily_refresh(
    make_customer, make_invoice, manager
):
    customer = make_customer()
    ordered(make_invoice, customer, last=TODAY - dt.timedelta(days=52), every=30, orders=6)
    worklist.worklist_refresh(on=TODAY)
    erp = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})

    response = erp.post("/api/v1/invoices/", {"rows": [{
        "number": "INV-NEW", "account_number": customer.account_number, "issue_date": TODAY.isoformat(),
        "due_date": (TODAY + dt.timedelta(days=30)).isoformat(), "currency": "EUR", "total_amount": "900.00",
    }]}, content_type="application/json")

    assert response.status_code == 200, response.content
    item = gap_items(customer).get()
    assert item.status == WorkStatus.DONE
    assert TimelineEvent.objects.filter(customer=customer, kind=EventKind.WORK).get().summary == (
        f"Worklist: done — {item.title}; it has ordered again")
