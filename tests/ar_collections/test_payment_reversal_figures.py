"""A payment reversed does not rewrite history: the figures of a day or a
period before the reversal read the payment as it stood then (its money
allocated from the day it was applied until the day it was reversed), those
of the reversal day on read it reversed, and what is open today is owed again."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import numbers, workspace
from ar_collections.models import DisputeReason, Invoice, InvoiceStatus, ReversalReason
from tests.ar_collections.conftest import frozen

OCTOBER = dt.date(2025, 10, 1)
NOVEMBER = dt.date(2025, 11, 1)
RECEIVED = dt.date(2025, 10, 20)
REVERSED = dt.date(2025, 11, 10)


@pytest.fixture
def book(customer, make_invoice) -> list[Invoice]:
    """Two invoices issued in September, due in October, and one issued in
    October, due in November: EUR 1,000.00, 600.00 and 400.00."""
    return [
        make_invoice(customer, issued=dt.date(2025, 9, 5), due=dt.date(2025, 10, 5), amount="1000.00",
                     number="INV-1"),
        make_invoice(customer, issued=dt.date(2025, 9, 20), due=dt.date(2025, 10, 20), amount="600.00",
                     number="INV-2"),
        make_invoice(customer, issued=dt.date(2025, 10, 10), due=dt.date(2025, 11, 9), amount="400.00",
                     number="INV-3"),
    ]


def period_figures(*, today: dt.date, month: dt.date, months: int = 1) -> dict:
    """What the Numbers page reads for the period ending with `month`, as of `today`."""
    with frozen(today):
        period = numbers.Period.ending(month, months=months, today=today)
        [currency] = numbers.figures(numbers.Scope(), today=today, periods=[period])
    figures = currency.periods[0]
    return {
        "opening": figures.opening, "closing": figures.closing, "closing_current": figures.closing_current,
        "sales": figures.sales, "dso": figures.dso, "countback": dataclasses.astuple(figures.countback),
        "best_possible_dso": figures.best_possible_dso, "add": figures.add, "cei": figures.cei,
        "disputes": (figures.disputes.amount, figures.disputes.count),
    }


@pytest.fixture
def bounced(manager, customer, book):
    """A cheque received on 20 Oct pays INV-1 in full and EUR 250.00 of INV-2;
    INV-2's rest is disputed on 25 Oct. The cheque bounces, reversed on 10 Nov."""
    with frozen(RECEIVED):
        payment = workspace.payment_record(
            customer=customer, actor=manager, amount=Decimal("1250.00"), currency="EUR", received_on=RECEIVED,
            allocations=[(book[0], Decimal("1000.00")), (book[1], Decimal("250.00"))], reference="CHQ-1")
    with frozen(dt.date(2025, 10, 25)):
        workspace.dispute_open(customer=customer, actor=manager, invoice=book[1], reason=DisputeReason.PRICE,
                               description="Wrong price", on=dt.date(2025, 10, 25))
    return payment


def reverse(payment, actor, *, on=REVERSED):
    with frozen(on):
        return workspace.payment_reverse(payment=payment, actor=actor, reason=ReversalReason.BOUNCED_CHEQUE,
                                         on=on)


def test_october_reads_the_same_in_december_as_in_november_though_its_payment_was_reversed_between(
    manager, bounced
):
    as_in_november = period_figures(today=dt.date(2025, 11, 3), month=OCTOBER)
    quarter_in_november = period_figures(today=dt.date(2025, 11, 3), month=OCTOBER, months=3)
    # The cheque counted in October: EUR 2,000.00 invoiced, 1,250.00 of it paid by the 31st.
    assert (as_in_november["closing"], as_in_november["closing_current"]) == (Decimal("750.00"),
                                                                             Decimal("400.00"))
    assert as_in_november["disputes"] == (Decimal("350.00"), 1)

    reverse(bounced, manager)

    assert period_figures(today=dt.date(2025, 12, 3), month=OCTOBER) == as_in_november
    assert period_figures(today=dt.date(2025, 12, 3), month=OCTOBER, months=3) == quarter_in_november


def test_the_days_from_the_reversal_on_read_the_payment_reversed(manager, bounced):
    reverse(bounced, manager)

    november = period_figures(today=dt.date(2025, 12, 3), month=NOVEMBER)
    # Opening with October as it stood, closing with the cheque's EUR 1,250.00 owed again.
    assert (november["opening"], november["closing"]) == (Decimal("750.00"), Decimal("2000.00"))
    assert november["closing_current"] == Decimal("0.00")


def test_a_payment_reversed_on_a_months_last_day_counts_in_no_figure_of_that_day(manager, bounced):
    reverse(bounced, manager, on=dt.date(2025, 10, 31))

    october = period_figures(today=dt.date(2025, 12, 3), month=OCTOBER)
    assert october["closing"] == Decimal("2000.00")


def test_what_is_open_today_reads_the_payment_reversed(manager, customer, book, bounced):
    reverse(bounced, manager)

    for invoice in book:
        invoice.refresh_from_db()
    assert [(i.open_amount, i.status) for i in book] == [
        (Decimal("1000.00"), InvoiceStatus.OPEN), (Decimal("600.00"), InvoiceStatus.OPEN),
        (Decimal("400.00"), InvoiceStatus.OPEN)]
    today = dt.date(2025, 12, 3)
    with frozen(today):
        [currency] = numbers.figures(numbers.Scope(), today=today,
                                     periods=[numbers.Period.ending(NOVEMBER, months=1)])
        [account] = numbers.aged_accounts(numbers.aged_balances(numbers.Scope(), today=today))
    assert currency.open_total == Decimal("2000.00")
    assert (account.total, account.invoices) == (Decimal("2000.00"), 3)
    # INV-2's rest was disputed: the dispute holds back what was open then, EUR 350.00; the
    # EUR 250.00 the cheque paid is owed again and chased.
    assert account.buckets == [Decimal("0.00"), Decimal("400.00"), Decimal("1250.00"), Decimal("0.00"),
                               Decimal("0.00"), Decimal("350.00")]
