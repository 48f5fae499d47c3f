"""The aged trial balance as of a past day on a large book: each invoice's
figures are rebuilt from the ledger once, in one statement PostgreSQL and
SQLite both run, not once for every column summed (which made the page wait
seconds on 100,000 invoices). The figures themselves are the as-of tests'
(test_numbers_aged_as_of.py); these hold the statement's shape and its reading
of a page, a count, a currency and a bucket."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ar_collections import numbers
from ar_collections.models import Payment
from tests.ar_collections.conftest import frozen

D = Decimal
TODAY = dt.date(2025, 12, 15)
MONTH_END = dt.date(2025, 11, 30)


@pytest.fixture
def book(make_customer, make_invoice):
    acme = make_customer(name="Acme", account_number="A-1", currency="EUR")
    bolt = make_customer(name="Bolt", account_number="B-1", currency="USD")
    cogs = make_customer(name="Cogs", account_number="C-1", currency="EUR")
    # Paid after the month end: still owed on 30 Nov, 30 days late.
    make_invoice(acme, issued=dt.date(2025, 10, 1), due=dt.date(2025, 10, 31), amount="1000.00",
                 paid_on=dt.date(2025, 12, 10))
    # Paid before it: nothing owed then.
    make_invoice(acme, issued=dt.date(2025, 10, 1), due=dt.date(2025, 10, 31), amount="250.00",
                 paid_on=dt.date(2025, 11, 10))
    make_invoice(bolt, issued=dt.date(2025, 8, 1), due=dt.date(2025, 8, 31), amount="700.00")
    make_invoice(cogs, issued=dt.date(2025, 11, 1), due=dt.date(2025, 12, 1), amount="40.00")
    return {"acme": acme, "bolt": bolt}


def test_a_past_day_s_balance_reads_each_ledger_table_once_not_once_per_column(book):
    with frozen(TODAY), CaptureQueriesContext(connection) as queries:
        rows = numbers.aged_balances(numbers.Scope(), today=TODAY, on=MONTH_END)
        counted, accounts = rows.count(), numbers.aged_accounts(rows)
    assert (counted, [(a.name, a.total) for a in accounts]) == (
        3, [("Acme", D("1000.00")), ("Cogs", D("40.00")), ("Bolt", D("700.00"))])
    reading = [query["sql"] for query in queries.captured_queries if "collections_allocation" in query["sql"]]
    assert len(reading) == 2  # the count, then the rows
    for sql in reading:
        for table in ("collections_allocation", "collections_writeoff"):
            assert sql.count(f'FROM "{table}"') == 1, table


def test_a_past_day_s_balance_comes_a_page_at_a_time_ranked_within_each_currency(book):
    with frozen(TODAY):
        rows = numbers.aged_balances(numbers.Scope(), today=TODAY, on=MONTH_END)
        pages = [[a.name for a in numbers.aged_accounts(rows[start:start + 2])] for start in (0, 2)]
    assert pages == [["Acme", "Cogs"], ["Bolt"]]


def test_a_past_day_s_balance_narrows_to_one_currency_and_to_a_bucket(book):
    with frozen(TODAY):
        euros = numbers.aged_balances(numbers.Scope(currency="EUR"), today=TODAY, on=MONTH_END)
        late = numbers.aged_balances(numbers.Scope(), today=TODAY, on=MONTH_END, bucket="late_1_30")
        assert [a.name for a in numbers.aged_accounts(euros)] == ["Acme", "Cogs"]
        assert (late.count(), [(a.name, a.buckets[1]) for a in numbers.aged_accounts(late)]) == (
            1, [("Acme", D("1000.00"))])


def test_a_past_day_s_balance_of_nothing_owed_is_empty(make_customer, make_invoice):
    acme = make_customer(name="Acme", currency="EUR")
    make_invoice(acme, issued=dt.date(2025, 10, 1), amount="90.00", paid_on=dt.date(2025, 10, 5))
    with frozen(TODAY):
        rows = numbers.aged_balances(numbers.Scope(), today=TODAY, on=MONTH_END)
        assert (rows.count(), list(rows[0:50]), list(rows)) == (0, [], [])


def test_an_invoice_paid_in_parts_owes_nothing_to_the_cent_on_either_database(make_customer, make_invoice):
    # SQLite adds money as floating point: 250.30 - 100.10 - 150.20 is 2.8e-14 there,
    # which listed a settled invoice's account with 0.00 before owed was rounded.
    acme = make_customer(name="Acme", currency="EUR")
    invoice = make_invoice(acme, issued=dt.date(2025, 10, 1), amount="250.30", paid_on=dt.date(2025, 10, 5))
    invoice.allocations.update(amount=D("100.10"))
    second = Payment.objects.create(customer=acme, received_on=dt.date(2025, 10, 6), currency="EUR",
                                    amount=D("150.20"))
    invoice.allocations.create(payment=second, amount=D("150.20"), allocated_on=dt.date(2025, 10, 6),
                               applied_on=dt.date(2025, 10, 6))
    with frozen(TODAY):
        rows = numbers.aged_balances(numbers.Scope(), today=TODAY, on=MONTH_END)
        assert (rows.count(), list(rows)) == (0, [])


def test_a_past_day_s_page_reads_the_ledger_twice_its_count_summed_from_its_totals(book):
    # The page asks for the count, a page of rows and the totals: the count is the
    # totals' accounts, not a third run of the statement that rebuilds every invoice.
    with frozen(TODAY), CaptureQueriesContext(connection) as queries:
        rows = numbers.aged_balances(numbers.Scope(), today=TODAY, on=MONTH_END)
        counted, page, totals = rows.count(), numbers.aged_accounts(rows[0:2]), numbers.aged_totals(rows)
    assert counted == 3
    assert [a.name for a in page] == ["Acme", "Cogs"]
    assert [(t.currency, t.accounts, t.total) for t in totals] == [("EUR", 2, D("1040.00")),
                                                                   ("USD", 1, D("700.00"))]
    reading = [query["sql"] for query in queries.captured_queries if "collections_allocation" in query["sql"]]
    assert len(reading) == 2  # the totals (and so the count), then the page
