"""The Numbers page's roll-forward: the receivables at the start of a period,
plus what was invoiced, less what cancellations, corrections, credit notes,
payments and write-offs took off, plus the payments the bank took back, are
the receivables at the end, to the cent, on a ledger with every kind of
movement, over every month and over the quarter.

The ledger, EUR, today Fri 5 Dec 2025:
  A issued 5 Sep, 1,000; 600 paid 20 Sep
  B issued 10 Sep, 800; 500 received 25 Sep and kept on account, set against B on 15 Oct
  F issued 15 Sep, 900; written off 25 Nov
  G issued 20 Sep, 1,000; disputed 1 Oct, corrected to 850 on 20 Oct
  C issued 1 Oct, 400; paid 10 Oct, the payment reversed 5 Nov
  H issued 2 Oct, 250; paid 8 Oct, the payment reversed 30 Oct, cancelled 3 Nov
  D issued 3 Oct, 300; cancelled 20 Oct
  E issued 12 Oct, 700; a credit note of 200 kept on account 18 Oct, set against E on 10 Nov
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import numbers, workspace
from ar_collections.models import DisputeOutcome, DisputeReason, ReversalReason
from tests.ar_collections.conftest import frozen

D = Decimal
TODAY = dt.date(2025, 12, 5)
SEP, OCT, NOV = (dt.date(2025, m, 1) for m in (9, 10, 11))


def day(month: int, n: int) -> dt.date:
    return dt.date(2025, month, n)


@pytest.fixture
def book(manager, customer, make_invoice):
    def invoice(name, issued, amount):
        return make_invoice(customer, issued=issued, amount=amount, number=f"INV-{name}")

    def paid(inv, amount, on, allocate=True):
        with frozen(on):
            return workspace.payment_record(
                customer=customer, actor=manager, amount=D(amount), currency="EUR", received_on=on,
                allocations=[(inv, D(amount))] if allocate else [], reference=f"PAY-{inv.number}-{on}")

    def reversed_on(payment, on):
        with frozen(on):
            workspace.payment_reverse(payment=payment, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE,
                                      on=on)

    a = invoice("A", day(9, 5), "1000.00")
    paid(a, "600.00", day(9, 20))
    b = invoice("B", day(9, 10), "800.00")
    kept = paid(b, "500.00", day(9, 25), allocate=False)
    with frozen(day(10, 15)):
        workspace.credit_apply(customer=customer, actor=manager, credit=kept, invoices=[b], on=day(10, 15))
    f = invoice("F", day(9, 15), "900.00")
    with frozen(day(11, 25)):
        workspace.invoice_write_off(customer=customer, actor=manager, invoice=f, reason="Insolvent",
                                    on=day(11, 25))
    g = invoice("G", day(9, 20), "1000.00")
    with frozen(day(10, 1)):
        disputed = workspace.dispute_open(customer=customer, actor=manager, invoice=g, on=day(10, 1),
                                          reason=DisputeReason.PRICE, description="Wrong price")
    with frozen(day(10, 20)):
        workspace.dispute_resolve(dispute=disputed, actor=manager, outcome=DisputeOutcome.CORRECTED_INVOICE,
                                  note="Price put right", on=day(10, 20), amount=D("850.00"))
    c = invoice("C", day(10, 1), "400.00")
    reversed_on(paid(c, "400.00", day(10, 10)), day(11, 5))
    h = invoice("H", day(10, 2), "250.00")
    reversed_on(paid(h, "250.00", day(10, 8)), day(10, 30))
    with frozen(day(11, 3)):
        workspace.invoice_cancel(invoice=h, actor=manager, on=day(11, 3), reason="Raised in error")
    d = invoice("D", day(10, 3), "300.00")
    with frozen(day(10, 20)):
        workspace.invoice_cancel(invoice=d, actor=manager, on=day(10, 20), reason="Raised in error")
    e = invoice("E", day(10, 12), "700.00")
    with frozen(day(10, 18)):
        note = workspace.credit_note_on_account(customer=customer, actor=manager, currency="EUR",
                                                amount=D("200.00"), reason="Volume rebate",
                                                issued_on=day(10, 18))
    with frozen(day(11, 10)):
        workspace.credit_apply(customer=customer, actor=manager, credit=note, invoices=[e], on=day(11, 10))


def figures(month: dt.date, months: int = 1) -> numbers.PeriodFigures:
    with frozen(TODAY):
        [eur] = numbers.figures(numbers.Scope(), today=TODAY,
                                periods=[numbers.Period.ending(month, months=months, today=TODAY)])
    return eur.periods[0]


@pytest.mark.parametrize(("month", "months"), [
    (SEP, 1), (OCT, 1), (NOV, 1), (NOV, 3), (dt.date(2025, 12, 1), 1),
])
def test_the_start_and_the_movements_add_up_to_the_end_to_the_cent(book, month, months):
    period = figures(month, months)

    assert period.moves.end(period.opening) == period.closing


def test_each_movement_is_counted_in_the_month_it_moved_the_receivables(book):
    sep, oct_, nov = figures(SEP), figures(OCT), figures(NOV)

    assert (sep.opening, sep.closing, oct_.closing, nov.closing) == (
        D("0.00"), D("3100.00"), D("3400.00"), D("2450.00"))
    # Invoiced at the total as issued: G's 1,000 though corrected to 850 since.
    assert (sep.moves.invoiced, oct_.moves.invoiced, nov.moves.invoiced) == (D("3700.00"), D("1650.00"), 0)
    # The 500 kept on account in September is cash applied in October, the day it was set against B.
    assert (sep.moves.payments, oct_.moves.payments, nov.moves.payments) == (D("600.00"), D("1150.00"), 0)
    assert (oct_.moves.reversed, nov.moves.reversed) == (D("250.00"), D("400.00"))
    # D owed its 300 when cancelled; H owed all of its 250 again, its payment reversed before.
    assert (oct_.moves.cancelled, nov.moves.cancelled) == (D("300.00"), D("250.00"))
    assert (oct_.moves.corrected, nov.moves.corrected) == (D("150.00"), 0)
    # The credit note issued in October counts in November, the day it was set against E.
    assert (oct_.moves.credit_notes, nov.moves.credit_notes) == (0, D("200.00"))
    assert (nov.moves.written_off, oct_.moves.written_off) == (D("900.00"), 0)
    # The quarter is the months' sum.
    quarter = figures(NOV, 3)
    assert quarter.moves.payments == D("1750.00")
    assert quarter.moves.end(quarter.opening) == nov.closing


def test_the_page_shows_the_roll_forward_under_the_period(client, manager, book):
    client.force_login(manager)

    with frozen(TODAY):
        response = client.get(reverse("collections:numbers"), {"month": "2025-11", "months": "1"})
    html = response.content.decode()

    assert "Roll-forward of the receivables" in html
    # The notes say how cancellations count, as the roll-forward counts them.
    assert "An invoice the ERP cancelled counts until the day it was cancelled" in html
    assert "Cancelled invoices are left out everywhere" not in html
    rows = [("− Payments set against invoices", "0.00"), ("\\+ Payments reversed by the bank", "400.00"),
            ("− Written off", "900.00"), ("− Cancelled by the ERP", "250.00")]
    for label, amount in rows:
        cell = rf"{label}<br>[^/]*</span></th><td class=\"num\">[^<\d]*{re.escape(amount)}</td>"
        assert re.search(cell, html), label


def test_cei_counts_money_kept_on_account_as_collected_when_it_is_set_against_an_invoice(book):
    sep, oct_ = figures(SEP), figures(OCT)

    # September: 600 paid against A; the 500 kept on account reduced no invoice yet.
    assert sep.opening + sep.sales - sep.closing == sep.moves.payments == D("600.00")
    # October: the 500 applied, C's 400 and H's 250 paid (H's reversed), G corrected by 150.
    collected = oct_.moves.payments + oct_.moves.credit_notes + oct_.moves.corrected - oct_.moves.reversed
    assert oct_.opening + oct_.sales - oct_.closing == collected == D("1050.00")
    # Out of the start and the sales less what was not yet due on 31 Oct (H's 250, E's 700).
    assert (oct_.closing_current, oct_.cei) == (D("950.00"), D("30.0"))


def test_the_periods_file_carries_the_roll_forward(client, manager, book):
    client.force_login(manager)

    with frozen(TODAY):
        response = client.get(reverse("collections:numbers_csv"), {"month": "2025-10", "months": "1"})

    header, october = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    line = dict(zip(header, october, strict=True))
    assert [line[f"Roll-forward: {name}"] for name in (
        "invoiced", "cancelled (still owed)", "corrected by disputes", "credit notes set against invoices",
        "payments set against invoices", "payments reversed", "written off")] == [
        "1650.00", "300.00", "150.00", "0.00", "1150.00", "250.00", "0.00"]
    assert (line["Receivables at the start"], line["Receivables at the end"]) == ("3100.00", "3400.00")
