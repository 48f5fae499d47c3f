"""An invoice disputed in part on the Numbers page, in the forecast and in the
aged trial balance: only the part disputed is under dispute; the rest stays
in its aging bucket and is expected cash, as the invoice copy and the
statement ask for it.

Today being Tue 5 Aug 2025, an account (no behaviour yet: expected on the due
date) with P1, EUR 2,308.88, due 1 Aug (4 days late), EUR 1,000.00 of it
disputed; P2, EUR 500.00 due 20 Aug (not yet due) disputed in full; and
P3, EUR 300.00 due 14 Aug, with nothing disputed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from ar_collections import numbers
from ar_collections.models import Dispute, DisputeReason

D = Decimal
TODAY = dt.date(2025, 8, 5)
JULY = numbers.Period.ending(dt.date(2025, 7, 1), months=1)


def day(month: int, n: int) -> dt.date:
    return dt.date(2025, month, n)


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def dispute(invoice, *, amount: str, user) -> Dispute:
    return Dispute.objects.create(
        customer=invoice.customer, invoice=invoice, reason=DisputeReason.PRICE, description="-",
        opened_by=user, opened_on=day(8, 3), answer_due_on=day(8, 10), disputed_amount=D(amount),
    )


@pytest.fixture
def account(make_customer, make_invoice, collector):
    customer = make_customer(name="Brennan Foods", currency="EUR", collector=collector)
    p1 = make_invoice(customer, number="P1", issued=day(7, 2), due=day(8, 1), amount="2308.88")
    dispute(p1, amount="1000.00", user=collector)
    p2 = make_invoice(customer, number="P2", issued=day(7, 21), due=day(8, 20), amount="500.00")
    dispute(p2, amount="500.00", user=collector)
    make_invoice(customer, number="P3", issued=day(7, 15), due=day(8, 14), amount="300.00")
    return customer


def eur() -> numbers.CurrencyFigures:
    [found] = numbers.figures(numbers.Scope(), today=TODAY, periods=[JULY])
    return found


def test_only_the_disputed_part_is_under_open_dispute_the_rest_stays_in_its_bucket(account):
    figures = eur()

    rows = {row.label: (row.amount, row.invoices) for row in figures.aging}
    assert rows["1–30 days late"] == (D("1308.88"), 1)
    assert rows["Not yet due"] == (D("300.00"), 1)
    assert (figures.disputed.amount, figures.disputed.invoices) == (D("1500.00"), 2)
    # Every open invoice once, and every cent once.
    assert (figures.open_total, figures.open_invoices) == (D("3108.88"), 3)


def test_the_forecast_leaves_out_only_the_disputed_part_and_expects_the_rest(account):
    forecast = eur().forecast

    assert (forecast.disputed.amount, forecast.disputed.count) == (D("1500.00"), 2)
    # P1's undisputed EUR 1,308.88 was due 1 Aug: later than usual, shown apart, not lost.
    assert (forecast.overdue_beyond_usual.amount, forecast.overdue_beyond_usual.count) == (D("1308.88"), 1)
    assert forecast.weeks[1].invoices == D("300.00")  # P3, due 14 Aug
    assert forecast.total == D("300.00")


def test_the_aged_trial_balance_holds_the_disputed_part_apart_and_the_rest_in_its_bucket(account):
    [row] = numbers.aged_accounts(numbers.aged_balances(numbers.Scope(), today=TODAY))

    # not yet due, 1–30, 31–60, 61–90, over 90, disputed
    assert row.buckets == [D("300.00"), D("1308.88"), D("0.00"), D("0.00"), D("0.00"), D("1500.00")]
    assert (row.total, row.invoices) == (D("3108.88"), 3)


def test_the_page_and_the_files_say_the_same(client, manager, account):
    client.force_login(manager)

    html = client.get(reverse("collections:numbers"), {"currency": "EUR"}).content.decode()
    aged = client.get(reverse("collections:numbers_aged_csv"))
    rows = list(csv.reader(io.StringIO(b"".join(aged.streaming_content).decode("utf-8-sig"))))

    assert "EUR 1,500.00" in html and "EUR 2,308.88" not in html.split("Under open dispute")[1][:300]
    header, line = rows[0], rows[1]
    assert line[header.index("Under open dispute")] == "1500.00", (header, line)
    assert line[header.index("1-30 days late")] == "1308.88", (header, line)
