"""The aged trial balance as of a past day: what was owed at the end of that
day, by days late then, after later payments, reversals, credit notes and
write-offs, so a month end reconciles to the ledger long after. It adds up to
the Numbers page's receivables at that day, currency by currency.

The book, today being Mon 15 Dec 2025:

EUR, Acme (Carla's)
  INV-REV 1,000 issued 1 Oct, due 31 Oct: paid by a cheque on 20 Nov that bounced, reversed 10 Dec
  INV-DEC   500 issued 3 Dec, due 2 Jan
  INV-WO    300 issued 1 Sep, due 1 Oct: written off 5 Dec
  INV-CN    800 issued 15 Oct, due 14 Nov: a credit note of 200 on it issued 8 Dec
EUR, Cogs (Otto's)
  INV-DSP   600 issued 1 Oct, due 31 Oct: disputed 25 Nov, corrected to 450 on 5 Dec
USD, Bolt (Otto's)
  INV-USD   700 issued 1 Aug, due 31 Aug

As of Sun 30 Nov: Acme 800 1–30 days late (INV-CN, 16), 300 31–60 (INV-WO, 60);
Cogs 600 under open dispute; Bolt 700 over 90 (91). Today: Acme 500 not yet
due, 1,600 31–60 (INV-REV 45, INV-CN 600 at 31); Cogs 450 31–60; Bolt 700 over 90.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import numbers, numbers_views, workspace
from ar_collections.imports import invoices_import
from ar_collections.models import DisputeOutcome, DisputeReason, ReversalReason
from tests.ar_collections.conftest import frozen

D = Decimal
TODAY = dt.date(2025, 12, 15)
MONTH_END = dt.date(2025, 11, 30)
URL = reverse("collections:numbers_aged")
CSV_URL = reverse("collections:numbers_aged_csv")
HTMX = {"HX-Request": "true"}


def day(month: int, n: int) -> dt.date:
    return dt.date(2025, month, n)


def buckets(**amounts: str) -> list[Decimal]:
    """The six columns, zero but those named by key."""
    return [D(amounts.get(key, "0.00")) for key, _ in numbers.AGED_COLUMNS]


@pytest.fixture
def book(make_customer, make_invoice, collector, other_collector, manager):
    acme = make_customer(name="Acme", account_number="A-1", currency="EUR", collector=collector)
    cogs = make_customer(name="Cogs", account_number="C-1", currency="EUR", collector=other_collector)
    bolt = make_customer(name="Bolt", account_number="B-1", currency="USD", collector=other_collector)
    reversed_ = make_invoice(acme, issued=day(10, 1), due=day(10, 31), amount="1000.00", number="INV-REV")
    make_invoice(acme, issued=day(12, 3), due=dt.date(2026, 1, 2), amount="500.00", number="INV-DEC")
    written_off = make_invoice(acme, issued=day(9, 1), due=day(10, 1), amount="300.00", number="INV-WO")
    credited = make_invoice(acme, issued=day(10, 15), due=day(11, 14), amount="800.00", number="INV-CN")
    disputed = make_invoice(cogs, issued=day(10, 1), due=day(10, 31), amount="600.00", number="INV-DSP")
    make_invoice(bolt, issued=day(8, 1), due=day(8, 31), amount="700.00", number="INV-USD", currency="USD")

    with frozen(day(11, 20)):
        cheque = workspace.payment_record(
            customer=acme, actor=manager, amount=D("1000.00"), currency="EUR", received_on=day(11, 20),
            allocations=[(reversed_, D("1000.00"))], reference="CHQ-1")
    with frozen(day(11, 25)):
        dispute = workspace.dispute_open(customer=cogs, actor=manager, invoice=disputed, on=day(11, 25),
                                         reason=DisputeReason.PRICE, description="Wrong price")
    with frozen(day(12, 5)):
        workspace.invoice_write_off(customer=acme, actor=manager, invoice=written_off, reason="Bankrupt",
                                    on=day(12, 5))
        workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.CORRECTED_INVOICE,
                                  note="Price put right", on=day(12, 5), amount=D("450.00"))
    with frozen(day(12, 8)):
        workspace.credit_note_record(customer=acme, actor=manager, invoice=credited, amount=D("200.00"),
                                     reason="Goods returned", issued_on=day(12, 8))
    with frozen(day(12, 10)):
        workspace.payment_reverse(payment=cheque, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE,
                                  on=day(12, 10))
    return {"acme": acme, "cogs": cogs, "bolt": bolt}


def balance(on: dt.date | None, bucket: str | None = None, scope: numbers.Scope | None = None) -> list[tuple]:
    with frozen(TODAY):
        rows = numbers.aged_balances(scope or numbers.Scope(), today=TODAY, on=on, bucket=bucket)
        return [(a.currency, a.name, a.buckets, a.total, a.invoices, a.oldest_due)
                for a in numbers.aged_accounts(rows)]


def names(html: str) -> list[str]:
    return [part.split("</a>", 1)[0].split(">")[-1] for part in html.split('<th scope="row"><a href=')[1:]]


# --- The figures ------------------------------------------------------------------------------


def test_the_month_end_reads_as_it_stood_whatever_happened_since(book):
    assert balance(MONTH_END) == [
        # The cheque stood on 30 Nov: INV-REV was paid. INV-DEC was not issued yet. INV-WO was
        # not written off yet, INV-CN not credited yet; INV-DSP was under dispute at its total as issued.
        ("EUR", "Acme", buckets(late_1_30="800.00", late_31_60="300.00"), D("1100.00"), 2, day(10, 1)),
        ("EUR", "Cogs", buckets(disputed="600.00"), D("600.00"), 1, day(10, 31)),
        ("USD", "Bolt", buckets(late_over_90="700.00"), D("700.00"), 1, day(8, 31)),
    ]


def test_today_reads_the_reversal_the_write_off_the_credit_and_the_correction(book):
    assert balance(None) == balance(TODAY) == [
        ("EUR", "Acme", buckets(not_due="500.00", late_31_60="1600.00"), D("2100.00"), 3, day(10, 31)),
        ("EUR", "Cogs", buckets(late_31_60="450.00"), D("450.00"), 1, day(10, 31)),
        ("USD", "Bolt", buckets(late_over_90="700.00"), D("700.00"), 1, day(8, 31)),
    ]


def test_a_day_between_reads_what_had_happened_by_then_and_not_after(book):
    # 9 Dec: written off, corrected and credited, but the cheque not yet reversed.
    assert balance(day(12, 9)) == [
        ("EUR", "Acme", buckets(not_due="500.00", late_1_30="600.00"), D("1100.00"), 2, day(11, 14)),
        ("EUR", "Cogs", buckets(late_31_60="450.00"), D("450.00"), 1, day(10, 31)),
        ("USD", "Bolt", buckets(late_over_90="700.00"), D("700.00"), 1, day(8, 31)),
    ]


def test_a_payment_reversed_on_the_day_counts_as_reversed_at_its_end(book):
    [acme, *_] = balance(day(12, 10))
    assert acme[2] == buckets(not_due="500.00", late_31_60="1000.00", late_1_30="600.00")


def test_a_dispute_of_part_holds_back_that_part_from_the_day_it_was_opened(book, manager):
    bolt = book["bolt"]
    with frozen(day(11, 20)):
        workspace.dispute_open(customer=bolt, actor=manager, invoice=bolt.invoices.get(), on=day(11, 20),
                               reason=DisputeReason.QUALITY, description="Three broken", amount=D("300.00"))

    assert balance(day(11, 19))[-1][2] == buckets(late_61_90="700.00")
    assert balance(MONTH_END)[-1][2] == buckets(late_over_90="400.00", disputed="300.00")
    assert balance(MONTH_END)[-1][3] == D("700.00")


def erp_moves_due_date(invoice, due: dt.date, *, on: dt.date, actor) -> None:
    """The ERP sends the invoice again on `on` with another due date (terms extended)."""
    text = ("number,account_number,issue_date,due_date,currency,total_amount\n"
            f"{invoice.number},{invoice.customer.account_number},{invoice.issue_date},{due},"
            f"{invoice.currency},{invoice.total_amount}\n")
    with frozen(on):
        assert invoices_import(text, actor=actor).ok


def test_a_due_date_the_erp_moved_since_is_read_as_it_was_that_day(
    book, make_customer, make_invoice, manager
):
    # Due 30 Sep; on 15 Nov the ERP moved it to 31 Oct, on 10 Dec to 31 Dec.
    dent = make_customer(name="Dent", account_number="D-1", currency="EUR")
    moved = make_invoice(dent, issued=day(9, 1), due=day(9, 30), amount="400.00", number="INV-MOV")
    erp_moves_due_date(moved, day(10, 31), on=day(11, 15), actor=manager)
    erp_moves_due_date(moved, day(12, 31), on=day(12, 10), actor=manager)

    def dent_row(on):
        return [row[2:] for row in balance(on) if row[1] == "Dent"]

    # 10 Nov: due 30 Sep then, 41 days late; 30 Nov: due 31 Oct then, 30 days late; today: not yet due.
    assert dent_row(day(11, 10)) == [(buckets(late_31_60="400.00"), D("400.00"), 1, day(9, 30))]
    assert dent_row(MONTH_END) == [(buckets(late_1_30="400.00"), D("400.00"), 1, day(10, 31))]
    assert dent_row(TODAY) == dent_row(None) == [(buckets(not_due="400.00"), D("400.00"), 1, day(12, 31))]
    # The Numbers page's "not yet due" at the month end reads the same due date: none of it was.
    with frozen(TODAY):
        [eur, _] = numbers.figures(numbers.Scope(), today=TODAY,
                                   periods=[numbers.Period.ending(day(11, 1), months=1, today=TODAY)])
    assert (eur.currency, eur.periods[0].closing_current) == ("EUR", D("0.00"))


def month_end_read_on(today: dt.date) -> tuple[list[tuple], dict[str, Decimal]]:
    """The aged balance as of 30 Nov and the Numbers page's receivables at
    30 Nov, per currency, both read on `today`."""
    with frozen(today):
        rows = numbers.aged_accounts(numbers.aged_balances(numbers.Scope(), today=today, on=MONTH_END))
        november = numbers.Period.ending(day(11, 1), months=1, today=today)
        receivables = {c.currency: c.periods[0].closing
                       for c in numbers.figures(numbers.Scope(), today=today, periods=[november])}
    return [(a.currency, a.name, a.buckets, a.total, a.invoices) for a in rows], receivables


def test_money_on_account_set_against_an_invoice_later_leaves_the_month_end_as_it_read(book, manager):
    # 300 came in on 20 Nov naming no invoice and stayed on account; on 10 Dec the
    # customer said it was for INV-CN. On 30 Nov INV-CN was still owed in full.
    acme = book["acme"]
    with frozen(day(11, 20)):
        payment = workspace.payment_record(customer=acme, actor=manager, amount=D("300.00"), currency="EUR",
                                           received_on=day(11, 20), allocations=[], reference="BANK-9")
    before = month_end_read_on(day(12, 1))
    with frozen(day(12, 10)):
        workspace.credit_apply(customer=acme, actor=manager, credit=payment, invoices=[
            acme.invoices.get(number="INV-CN")], on=day(12, 10))

    assert month_end_read_on(day(12, 11)) == before
    rows, receivables = before
    # INV-CN counts open on 30 Nov, 16 days late, at its whole 800.
    assert rows[0] == ("EUR", "Acme", buckets(late_1_30="800.00", late_31_60="300.00"), D("1100.00"), 2)
    assert receivables["EUR"] == rows[0][3] + rows[1][3] == D("1700.00")
    # From the day it was applied, the invoice owes the rest.
    with frozen(TODAY):
        [eur, _] = numbers.figures(numbers.Scope(), today=TODAY,
                                   periods=[numbers.Period.ending(day(12, 1), months=1, today=TODAY)])
    assert balance(day(12, 9))[0][2] == buckets(not_due="500.00", late_1_30="600.00")
    assert balance(day(12, 10))[0][2] == buckets(not_due="500.00", late_1_30="300.00", late_31_60="1000.00")
    assert eur.periods[0].closing == sum(row[3] for row in balance(TODAY) if row[0] == "EUR")


def test_a_credit_note_on_account_set_against_an_invoice_later_counts_from_the_day_it_was_applied(
    book, manager
):
    # A rebate issued on account on 20 Nov and set against INV-CN on 8 Dec: on both
    # pages the month end reads INV-CN owed in full, as it read on 1 Dec.
    acme = book["acme"]
    with frozen(day(11, 20)):
        note = workspace.credit_note_on_account(customer=acme, actor=manager, currency="EUR",
                                                amount=D("50.00"), reason="Rebate", issued_on=day(11, 20))
    before = month_end_read_on(day(12, 1))
    with frozen(day(12, 8)):
        workspace.credit_apply(customer=acme, actor=manager, credit=note, invoices=[
            acme.invoices.get(number="INV-CN")], on=day(12, 8))

    rows, receivables = month_end_read_on(TODAY)
    assert (rows, receivables) == before
    assert rows[0][2] == buckets(late_1_30="800.00", late_31_60="300.00")
    assert rows[0][3] + rows[1][3] == receivables["EUR"] == D("1700.00")


def test_money_on_account_set_against_one_invoice_in_two_goes_keeps_each_goes_day(book, manager):
    # 300 on account from 20 Nov: 100 of it set against INV-CN on 2 Dec, 200 more on 10 Dec.
    acme = book["acme"]
    with frozen(day(11, 20)):
        payment = workspace.payment_record(customer=acme, actor=manager, amount=D("300.00"), currency="EUR",
                                           received_on=day(11, 20), allocations=[], reference="BANK-9")
    for on, amount in [(day(12, 2), D("100.00")), (day(12, 10), D("200.00"))]:
        with frozen(on):
            workspace.credit_apply(customer=acme, actor=manager, credit=payment, amount=amount, invoices=[
                acme.invoices.get(number="INV-CN")], on=on)

    # 8 Dec: a credit note of 200 on INV-CN as well; 800 - 100 - 200 = 500 owed on 9 Dec.
    assert balance(day(12, 9))[0][2] == buckets(not_due="500.00", late_1_30="500.00")
    assert balance(day(12, 10))[0][2] == buckets(not_due="500.00", late_1_30="300.00", late_31_60="1000.00")


def test_money_on_account_at_a_day_is_what_came_in_by_then_and_was_not_applied_by_then(book, manager):
    # 300 came in on 20 Nov and a rebate of 50 was issued on account on 25 Nov;
    # both were set against INV-CN on 10 Dec. The cheque of 20 Nov paid INV-REV
    # whole (nothing on account) until the bank took it back.
    acme = book["acme"]
    with frozen(day(11, 20)):
        payment = workspace.payment_record(customer=acme, actor=manager, amount=D("300.00"), currency="EUR",
                                           received_on=day(11, 20), allocations=[], reference="BANK-9")
    with frozen(day(11, 25)):
        note = workspace.credit_note_on_account(customer=acme, actor=manager, currency="EUR",
                                                amount=D("50.00"), reason="Rebate", issued_on=day(11, 25))

    def on_account(on: dt.date, today: dt.date) -> list[tuple]:
        with frozen(today):
            return [(m.currency, m.payments, m.credit_notes, m.total)
                    for m in numbers.on_account(numbers.Scope(), day=on)]

    before = on_account(MONTH_END, day(12, 1))
    assert before == [("EUR", D("300.00"), D("50.00"), D("350.00"))]
    assert on_account(day(11, 22), day(12, 1)) == [("EUR", D("300.00"), D("0.00"), D("300.00"))]
    with frozen(day(12, 10)):
        for credit in [payment, note]:
            workspace.credit_apply(customer=acme, actor=manager, credit=credit, invoices=[
                acme.invoices.get(number="INV-CN")], on=day(12, 10))

    assert on_account(MONTH_END, day(12, 11)) == before
    assert on_account(day(12, 9), day(12, 11)) == before
    assert on_account(day(12, 10), day(12, 11)) == []
    assert on_account(day(11, 19), day(12, 11)) == []


def test_the_page_shows_the_money_on_account_that_day_beside_the_balance(client, manager, book):
    acme = book["acme"]
    with frozen(day(11, 20)):
        payment = workspace.payment_record(customer=acme, actor=manager, amount=D("300.00"), currency="EUR",
                                           received_on=day(11, 20), allocations=[], reference="BANK-9")
    with frozen(day(12, 10)):
        workspace.credit_apply(customer=acme, actor=manager, credit=payment, invoices=[
            acme.invoices.get(number="INV-CN")], on=day(12, 10))
    client.force_login(manager)

    for htmx in [False, True]:
        _, html = page(client, {"as_of": "2025-11-30"}, htmx=htmx)
        row = html.split('id="on-account-EUR"', 1)[1].split("</tr>", 1)[0]
        assert "Money on account at the end of 30 Nov 2025" in html
        assert [cell.split("<", 1)[0] for cell in row.split('class="num')[1:]] == [
            '">EUR 300.00', '">EUR 0.00', ' total">EUR 300.00']
    # Today it is set against INV-CN: nothing on account.
    _, html = page(client, {})
    assert 'id="on-account"' not in html
    # Only the accounts in the selection: Otto's have none.
    _, html = page(client, {"as_of": "2025-11-30", "collector": str(book["cogs"].collector_id)})
    assert 'id="on-account"' not in html


def test_an_invoice_the_erp_cancelled_after_the_day_counts_as_it_stood_on_both_pages(
    book, make_invoice, manager
):
    # Owed on 30 Nov, cancelled on 12 Dec: the month end reads it, and still agrees
    # with the Numbers page's receivables; today it is gone.
    bolt = book["bolt"]
    wrong = make_invoice(bolt, issued=day(11, 3), due=day(11, 18), amount="90.00", number="INV-ERR",
                         currency="USD")
    with frozen(day(12, 12)):
        workspace.invoice_cancel(invoice=wrong, actor=manager, on=day(12, 12), reason="Raised in error")
    with frozen(TODAY):
        [_, usd] = numbers.figures(numbers.Scope(), today=TODAY,
                                   periods=[numbers.Period.ending(day(11, 1), months=1)])

    [*_, bolt_row] = balance(MONTH_END)
    assert bolt_row[2] == buckets(late_1_30="90.00", late_over_90="700.00")
    assert bolt_row[3] == usd.periods[0].closing == D("790.00")
    assert balance(TODAY)[-1][2] == buckets(late_over_90="700.00")


def test_an_invoice_due_on_the_month_end_is_not_yet_due_on_both_pages(book, make_invoice):
    # Due on 30 Nov, it is not late at the end of that day (days late 0): the aged trial
    # balance has it in "Not yet due", and the Numbers page's receivables not yet due at
    # the end, which best-possible DSO, ADD and CEI read, count it too, so the two agree.
    make_invoice(book["acme"], issued=day(11, 2), due=MONTH_END, amount="250.00", number="INV-EOM")
    with frozen(TODAY):
        [eur, _] = numbers.figures(numbers.Scope(), today=TODAY,
                                   periods=[numbers.Period.ending(day(11, 1), months=1)])

    [acme_row, *_] = balance(MONTH_END)
    assert acme_row[2] == buckets(not_due="250.00", late_1_30="800.00", late_31_60="300.00")
    assert eur.periods[0].closing_current == acme_row[2][0] == D("250.00")


def test_the_totals_as_of_the_month_end_are_the_numbers_pages_receivables_then(book):
    with frozen(TODAY):
        figures = numbers.figures(numbers.Scope(), today=TODAY,
                                  periods=[numbers.Period.ending(day(11, 1), months=1)])
        rows = numbers.aged_balances(numbers.Scope(), today=TODAY, on=MONTH_END)
        totals = numbers.aged_totals(rows)

    assert [(t.currency, t.total, t.accounts, t.invoices) for t in totals] == [
        ("EUR", D("1700.00"), 2, 3), ("USD", D("700.00"), 1, 1)]
    assert [t.total for t in totals] == [c.periods[0].closing for c in figures]
    assert totals[0].buckets == buckets(late_1_30="800.00", late_31_60="300.00", disputed="600.00")


def test_a_bucket_as_of_a_day_keeps_only_the_accounts_with_money_in_it_then(book):
    assert [(r[0], r[1]) for r in balance(MONTH_END, bucket="late_31_60")] == [("EUR", "Acme")]
    assert [(r[0], r[1]) for r in balance(MONTH_END, bucket="disputed")] == [("EUR", "Cogs")]
    usd = numbers.Scope(currency="USD")
    assert [(r[0], r[1]) for r in balance(MONTH_END, scope=usd)] == [("USD", "Bolt")]


@pytest.mark.parametrize("month", [day(9, 1), day(10, 1), day(11, 1), day(12, 1)])
def test_the_as_of_total_equals_the_numbers_pages_receivables_at_that_day_per_currency(book, month):
    with frozen(TODAY):
        period = numbers.Period.ending(month, months=1, today=TODAY)
        receivables = {c.currency: c.periods[0].closing
                       for c in numbers.figures(numbers.Scope(), today=TODAY, periods=[period])}
    totals: dict[str, Decimal] = {}
    for currency, _, _, total, _, _ in balance(period.end):
        totals[currency] = totals.get(currency, D("0")) + total

    assert totals == {currency: amount for currency, amount in receivables.items() if amount}
    assert totals  # every month has something owed


# --- The page ---------------------------------------------------------------------------------


def page(client, query: dict, htmx: bool = False) -> tuple[int, str]:
    with frozen(TODAY):
        response = client.get(URL, query, headers=HTMX if htmx else {})
    return response.status_code, response.content.decode()


def test_the_page_shows_the_balance_as_of_the_day_chosen_and_says_so(client, manager, book):
    client.force_login(manager)

    status, html = page(client, {"as_of": "2025-11-30"})

    assert status == 200
    assert names(html) == ["Acme", "Cogs", "Bolt"]
    assert "as of 30 Nov 2025" in html
    assert 'name="as_of" value="2025-11-30"' in html


@pytest.mark.parametrize("htmx", [False, True])
def test_a_bucket_pages_and_the_file_keep_the_day(client, manager, book, htmx, monkeypatch):
    monkeypatch.setattr(numbers_views, "AGED_PAGE_SIZE", 1)
    client.force_login(manager)

    status, html = page(client, {"as_of": "2025-11-30", "bucket": "late_1_30"}, htmx=htmx)
    assert status == 200 and names(html) == ["Acme"]

    _, html = page(client, {"as_of": "2025-11-30"}, htmx=htmx)
    assert names(html) == ["Acme"]
    assert 'href="?as_of=2025-11-30&amp;page=2"' in html
    assert f'href="{CSV_URL}?as_of=2025-11-30"' in html


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("2025-12-16", "16 Dec 2025 is still to come: choose a day up to today, 15 Dec 2025."),
        ("2025-07-31", "The book begins on 1 Aug 2025, its first invoice's day: choose a day from then on."),
        ("30/11/2025", "Write the day as year, month and day, e.g. 2025-11-30; '30/11/2025' is not one."),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_a_day_that_cannot_be_shown_gets_a_clear_message_and_today_s_balance(
    client, manager, book, typed, message, htmx
):
    client.force_login(manager)

    status, html = page(client, {"as_of": typed, "bucket": "late_31_60"}, htmx=htmx)

    assert status == 200
    assert message.replace("'", "&#x27;") in html
    assert names(html) == ["Acme", "Cogs"]  # today's, in the bucket chosen
    assert "as of 30 Nov 2025" not in html


def test_the_numbers_pages_receivables_at_a_month_end_lead_to_the_accounts_as_of_that_day(
    client, manager, book
):
    client.force_login(manager)

    with frozen(TODAY):
        numbers_html = client.get(reverse("collections:numbers"), {"month": "2025-11", "months": "1"})
    link = f"{URL}?as_of=2025-11-30&amp;currency=EUR"
    assert f'<a href="{link}" title="The accounts and what each owed' in numbers_html.content.decode()
    assert "EUR 1,700.00" in numbers_html.content.decode()

    _, html = page(client, {"as_of": "2025-11-30", "currency": "EUR"})
    assert names(html) == ["Acme", "Cogs"]
    assert "EUR 1,100.00" in html and "EUR 600.00" in html


def test_the_numbers_pages_not_yet_due_at_a_month_end_leads_to_those_accounts_then(
    client, manager, book, make_invoice
):
    make_invoice(book["acme"], issued=day(11, 2), due=day(12, 10), amount="250.00", number="INV-LATER")
    client.force_login(manager)

    with frozen(TODAY):
        numbers_html = client.get(reverse("collections:numbers"), {"month": "2025-11", "months": "1"})
    link = f"{URL}?as_of=2025-11-30&amp;bucket=not_due&amp;currency=EUR"
    title = "The accounts and what each had not yet due"
    assert f'<a href="{link}" title="{title}' in numbers_html.content.decode()

    _, html = page(client, {"as_of": "2025-11-30", "bucket": "not_due", "currency": "EUR"})
    assert names(html) == ["Acme"]
    assert "Total EUR" in html and "EUR 250.00" in html


def test_a_collector_as_of_a_day_sees_only_their_own_accounts(client, collector, other_collector, book):
    client.force_login(collector)

    _, html = page(client, {"as_of": "2025-11-30", "collector": other_collector.pk})

    assert names(html) == ["Acme"]
    assert "1,100.00" in html and "2,100.00" not in html


# --- The CSV file -----------------------------------------------------------------------------


def download(client, query: dict):
    with frozen(TODAY):
        response = client.get(CSV_URL, query)
        assert response.status_code == 200
        body = b"".join(response.streaming_content).decode("utf-8-sig")
    return response, list(csv.reader(io.StringIO(body)))


def test_the_csv_as_of_a_day_says_the_day_in_its_name_and_every_row(client, manager, book):
    client.force_login(manager)

    response, rows = download(client, {"as_of": "2025-11-30", "currency": "EUR"})

    assert response["Content-Disposition"] == 'attachment; filename="aged-trial-balance-2025-11-30.csv"'
    assert rows[0][:3] == ["Currency", "As of", "Account number"] and rows[0][-1] == "Row"
    assert [row[:3] + row[6:] for row in rows[1:] if row[-1] == "account"] == [
        ["EUR", "2025-11-30", "A-1", "0.00", "800.00", "300.00", "0.00", "0.00", "0.00", "1100.00",
         "2", "2025-10-01", "account"],
        ["EUR", "2025-11-30", "C-1", "0.00", "0.00", "0.00", "0.00", "0.00", "600.00", "600.00",
         "1", "2025-10-31", "account"],
    ]


def test_the_csv_of_today_says_today(client, manager, book):
    client.force_login(manager)

    response, rows = download(client, {"currency": "USD"})

    assert response["Content-Disposition"] == 'attachment; filename="aged-trial-balance-2025-12-15.csv"'
    assert [row[:3] for row in rows[1:] if row[-1] == "account"] == [["USD", "2025-12-15", "B-1"]]


def test_a_day_the_csv_cannot_hold_gets_the_pages_message_instead(client, manager, book):
    client.force_login(manager)

    with frozen(TODAY):
        response = client.get(CSV_URL, {"as_of": "2025-12-16"})

    html = response.content.decode()
    assert "16 Dec 2025 is still to come" in html
    assert names(html) == ["Acme", "Cogs", "Bolt"]


def test_the_csv_ends_with_each_currencys_total_and_money_on_account_as_of_its_day(client, manager, book):
    # 300 came in on 20 Nov naming no invoice; set against INV-CN on 10 Dec, after the month end.
    acme = book["acme"]
    with frozen(day(11, 20)):
        payment = workspace.payment_record(customer=acme, actor=manager, amount=D("300.00"), currency="EUR",
                                           received_on=day(11, 20), allocations=[], reference="BANK-9")
    with frozen(day(12, 10)):
        workspace.credit_apply(customer=acme, actor=manager, credit=payment, invoices=[
            acme.invoices.get(number="INV-CN")], on=day(12, 10))
    client.force_login(manager)

    _, rows = download(client, {"as_of": "2025-11-30"})

    header, *rest = rows
    kinds = [row[-1] for row in rest]
    assert kinds == ["account", "account", "account", "total", "total", "on_account"]
    totals = {row[0]: row for row in rest if row[-1] == "total"}
    assert totals["EUR"] == ["EUR", "2025-11-30", "", "Total, 2 accounts", "", "", "0.00", "800.00",
                             "300.00", "0.00", "0.00", "600.00", "1700.00", "3", "", "total"]
    assert totals["USD"][3] == "Total, 1 account"
    # The money on account as it stood on 30 Nov, a credit: the ledger's receivables are the total less it.
    [on_account] = [row for row in rest if row[-1] == "on_account"]
    assert on_account[:2] == ["EUR", "2025-11-30"]
    assert on_account[header.index("Total open")] == "-300.00"
    assert "payments 300.00" in on_account[3]
    # A tool summing the account rows by the Row column finds each currency's total.
    column = header.index("Total open")
    for currency, total in totals.items():
        accounts = [row for row in rest if row[0] == currency and row[-1] == "account"]
        assert accounts and sum(D(row[column]) for row in accounts) == D(total[column])


def test_one_buckets_csv_and_page_leave_out_the_money_on_account_which_is_in_no_bucket(client, manager, book):
    acme = book["acme"]
    with frozen(day(11, 20)):
        workspace.payment_record(customer=acme, actor=manager, amount=D("300.00"), currency="EUR",
                                 received_on=day(11, 20), allocations=[], reference="BANK-9")
    client.force_login(manager)

    _, every = download(client, {"as_of": "2025-11-30"})
    _, late = download(client, {"as_of": "2025-11-30", "bucket": "late_1_30"})

    assert [row[-1] for row in every[1:]].count("on_account") == 1
    assert [row[-1] for row in late[1:]] == ["account", "total"]
    with frozen(TODAY):
        page = client.get(URL, {"as_of": "2025-11-30", "bucket": "late_1_30"})
    assert page.status_code == 200 and 'id="on-account"' not in page.content.decode()
