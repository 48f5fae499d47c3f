"""The account page's "Promises, plans and disputes" box shows what came in on
a promise and what is left, in the promise's currency; a promise kept in part
stays open until its grace period ends, and is then broken with what was paid."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.dunning import ladders
from ar_collections.models import PromiseStatus

from .conftest import frozen

TODAY = dt.date(2026, 11, 5)
PROMISED_ON = dt.date(2026, 11, 15)


@pytest.fixture
def account(make_customer, make_contact, make_invoice):
    customer = make_customer(name="Harbour Supplies")
    make_contact(customer, name="Anna Clerk", is_primary_billing=True)
    make_invoice(customer, issued=dt.date(2026, 9, 1), due=dt.date(2026, 10, 1), amount="12000.00",
                 currency="EUR", number="INV-EUR")
    make_invoice(customer, issued=dt.date(2026, 9, 1), due=dt.date(2026, 10, 1), amount="3000.00",
                 currency="GBP", number="INV-GBP")
    return customer


def promise_of(account, collector, amount: str, number: str):
    with frozen(TODAY):
        return workspace.promise_record(customer=account, actor=collector, amount=Decimal(amount),
                                        promised_on=PROMISED_ON, on=TODAY,
                                        invoices=[account.invoices.get(number=number)])


def pay(account, number: str, amount: str, currency: str, on: dt.date) -> None:
    with frozen(on):
        workspace.payment_record(customer=account, amount=Decimal(amount), currency=currency,
                                 received_on=on, reference=f"BANK-{number}-{amount}",
                                 allocations=[(account.invoices.get(number=number), Decimal(amount))])


def commitments(response) -> str:
    page = response.content.decode()
    box = re.search(r'<section id="commitments".*?</section>', page, re.S).group(0)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", box)).split())


def box_of(client, account, on: dt.date) -> str:
    with frozen(on):
        return commitments(client.get(reverse("customers:detail", args=[account.pk])))


def test_a_promise_paid_in_part_shows_what_was_paid_so_far_and_what_is_left(client, collector, account):
    promise = promise_of(account, collector, "10000.00", "INV-EUR")
    pay(account, "INV-EUR", "4000.00", "EUR", dt.date(2026, 11, 8))
    client.force_login(collector)

    box = box_of(client, account, dt.date(2026, 11, 8))

    assert "Promise: EUR 10,000.00 by 15 Nov 2026" in box
    assert "EUR 4,000.00 paid so far, EUR 6,000.00 left" in box
    promise.refresh_from_db()
    assert promise.status == PromiseStatus.OPEN


def test_a_promise_nothing_was_paid_on_says_only_what_was_promised(client, collector, account):
    promise_of(account, collector, "10000.00", "INV-EUR")
    client.force_login(collector)

    box = box_of(client, account, dt.date(2026, 11, 8))

    assert "Promise: EUR 10,000.00 by 15 Nov 2026" in box
    assert "paid so far" not in box


def test_each_promise_counts_what_came_in_in_its_own_currency(client, collector, account):
    promise_of(account, collector, "10000.00", "INV-EUR")
    promise_of(account, collector, "2500.00", "INV-GBP")
    pay(account, "INV-EUR", "4000.00", "EUR", dt.date(2026, 11, 8))
    pay(account, "INV-GBP", "1000.00", "GBP", dt.date(2026, 11, 9))
    client.force_login(collector)

    box = box_of(client, account, dt.date(2026, 11, 9))

    assert "EUR 4,000.00 paid so far, EUR 6,000.00 left" in box
    assert "GBP 1,000.00 paid so far, GBP 1,500.00 left" in box


def test_money_paid_before_the_promise_was_made_does_not_count_towards_it(client, collector, account):
    pay(account, "INV-EUR", "1000.00", "EUR", TODAY)
    promise_of(account, collector, "10000.00", "INV-EUR")
    client.force_login(collector)

    box = box_of(client, account, dt.date(2026, 11, 8))

    assert "paid so far" not in box


def test_a_promise_kept_in_part_is_broken_when_its_grace_ends_saying_what_was_paid(collector, account):
    promise = promise_of(account, collector, "10000.00", "INV-EUR")
    pay(account, "INV-EUR", "4000.00", "EUR", dt.date(2026, 11, 8))

    with frozen(promise.broken_after):
        workspace.commitments_check(on=promise.broken_after)
    promise.refresh_from_db()
    assert promise.status == PromiseStatus.OPEN

    after = promise.broken_after + dt.timedelta(days=1)
    with frozen(after):
        workspace.commitments_check(on=after)

    promise.refresh_from_db()
    assert promise.status == PromiseStatus.BROKEN
    assert promise.paid_amount == Decimal("4000.00")


def test_a_promise_paid_in_two_parts_within_its_grace_is_kept(collector, account):
    promise = promise_of(account, collector, "10000.00", "INV-EUR")
    pay(account, "INV-EUR", "4000.00", "EUR", dt.date(2026, 11, 8))
    pay(account, "INV-EUR", "6000.00", "EUR", dt.date(2026, 11, 14))

    promise.refresh_from_db()
    assert promise.status == PromiseStatus.KEPT
    assert promise.paid_amount == Decimal("10000.00")


@pytest.mark.parametrize("count", [1, 3])
def test_the_account_page_reads_what_was_paid_on_every_promise_in_one_query(
    client, collector, make_invoice, account, django_assert_num_queries, count
):
    for n in range(count):
        make_invoice(account, issued=dt.date(2026, 9, 1), due=dt.date(2026, 10, 1), amount="100.00",
                     currency="EUR", number=f"INV-{n}")
        promise_of(account, collector, "100.00", f"INV-{n}")
        pay(account, f"INV-{n}", "40.00", "EUR", dt.date(2026, 11, 8))
    client.force_login(collector)

    # Open promises with their invoices, then what came in on all of them.
    # (36 with the card's ordering rhythm, the account's last order days, and the
    # office's holidays for the next step's pay-by date; 33 with the open cycle,
    # the pauses and the open invoices read once for the Dunning card, the
    # preview and the invoices; two more for the Payments card: the payments,
    # then their allocations; 33 with the ladders kept from an earlier page,
    # their stamp read in place of them; 35 with whether a request waiting for
    # a manager holds the next step, and the account's open work items.)
    ladders()
    with frozen(dt.date(2026, 11, 8)), django_assert_num_queries(35):
        box = commitments(client.get(reverse("customers:detail", args=[account.pk])))

    assert box.count("EUR 40.00 paid so far, EUR 60.00 left") == count
