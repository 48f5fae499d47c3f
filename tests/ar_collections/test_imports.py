"""Invoices and payments from the ERP's CSV files: all or nothing, each
problem named by its line, the same file twice recording nothing twice."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ar_collections import imports, services, tasks, workspace
from ar_collections.imports import (
    import_queue,
    import_run,
    imports_sweep,
    invoices_import,
    payments_import,
)
from ar_collections.models import (
    Allocation,
    ImportStatus,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentBehaviour,
    PromiseStatus,
    ReceivablesImport,
    TimelineEventInvoice,
)
from arcrm.dates import INVOICE_LONG_AGO_DAYS, LONG_AGO_DAYS
from customers.models import Customer, EventKind, TimelineEvent
from tests.ar_collections.conftest import (
    done_by_another_worker,
    frozen,
    held_by_another_worker,
    in_another_thread,
    someone_waits_for_a_lock,
)

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")

INVOICES = """number,account_number,issue_date,due_date,currency,total_amount,po_reference
INV-100,C-ACME,2025-06-01,2025-07-01,EUR,500.00,PO-7
INV-101,C-ACME,2025-06-15,2025-07-15,EUR,700.00,
INV-102,C-ACME,2025-06-20,2025-07-20,USD,300.00,
INV-200,C-BETA,2025-07-01,2025-07-31,EUR,120.50,
"""


@pytest.fixture
def accounts(make_customer):
    return {number: make_customer(account_number=number, name=name)
            for number, name in [("C-ACME", "Acme Tools"), ("C-BETA", "Beta Bau")]}


@pytest.fixture
def imported(accounts, manager) -> dict[str, Invoice]:
    report = invoices_import(INVOICES, actor=manager)
    assert report.ok, report.errors
    return Invoice.objects.in_bulk(field_name="number")


def state() -> tuple:
    return (
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
        sorted(Payment.objects.values_list("reference", "amount")),
        Allocation.objects.count(),
        TimelineEvent.objects.count(),
    )


# --- invoices -------------------------------------------------------------------------------


def test_invoices_come_in_open_with_their_issue_on_the_timeline(accounts, manager):
    report = invoices_import(INVOICES, actor=manager)

    assert (report.ok, report.rows, report.created, report.already) == (True, 4, 4, 0)
    assert report.summary() == "4 invoices recorded, 0 already there (left as they were), from 4 rows."
    acme = sorted(accounts["C-ACME"].invoices.values_list("number", "currency", "total_amount", "open_amount",
                                                          "status", "po_reference"))
    assert acme == [
        ("INV-100", "EUR", Decimal("500.00"), Decimal("500.00"), InvoiceStatus.OPEN, "PO-7"),
        ("INV-101", "EUR", Decimal("700.00"), Decimal("700.00"), InvoiceStatus.OPEN, ""),
        ("INV-102", "USD", Decimal("300.00"), Decimal("300.00"), InvoiceStatus.OPEN, ""),
    ]
    event = TimelineEvent.objects.get(customer=accounts["C-BETA"], kind=EventKind.INVOICE_ISSUED)
    assert event.summary == "Invoice INV-200 issued: EUR 120.50, due 31 Jul 2025"
    assert (event.actor, event.occurred_at.date(), event.details["imported"]) == (
        manager, dt.date(2025, 7, 1), True
    )
    links = TimelineEventInvoice.objects.filter(event=event).values_list("invoice__number", flat=True)
    assert list(links) == ["INV-200"]


def test_imported_invoices_are_in_their_accounts_figures_at_once(accounts, manager):
    """A new invoice, or a due date the ERP moved, counts in the account's
    open and overdue amounts today, not after the next night's refresh."""
    assert invoices_import(INVOICES, actor=manager).ok

    acme = PaymentBehaviour.objects.get(customer=accounts["C-ACME"])
    assert (acme.computed_on, acme.open_invoices, acme.open_amount, acme.overdue_amount) == (
        TODAY, 2, Decimal("1200.00"), Decimal("1200.00")
    )
    assert acme.other_currency_open_invoices == 1  # counted apart from the euro figures
    assert PaymentBehaviour.objects.get(customer=accounts["C-BETA"]).open_amount == Decimal("120.50")

    assert invoices_import(INVOICES.replace("INV-200,C-BETA,2025-07-01,2025-07-31",
                                            "INV-200,C-BETA,2025-07-01,2025-08-31")).ok

    beta = PaymentBehaviour.objects.get(customer=accounts["C-BETA"])
    assert (beta.overdue_invoices, beta.overdue_amount, beta.aging_current_amount) == (
        0, Decimal("0.00"), Decimal("120.50")
    )


def test_the_same_file_again_records_nothing_twice(imported):
    before = state()

    report = invoices_import(INVOICES)

    assert (report.ok, report.created, report.already) == (True, 0, 4)
    assert state() == before


def test_semicolons_an_excel_byte_order_mark_and_columns_in_any_order_are_read(accounts):
    text = "\ufefftotal_amount;currency;number;due_date;issue_date;account_number\r\n" \
           "99.90;EUR;INV-300;2025-08-30;2025-07-31;C-ACME\r\n\r\n"

    report = invoices_import(text)

    assert (report.ok, report.created) == (True, 1)
    assert Invoice.objects.get(number="INV-300").total_amount == Decimal("99.90")


def test_a_due_date_or_po_reference_the_erp_changed_is_taken_and_said_on_the_timeline(imported, manager):
    """Terms extended in the ERP, a PO reference given late: tomorrow's export
    names the same invoices with them, and the import takes them."""
    changed = INVOICES.replace("INV-100,C-ACME,2025-06-01,2025-07-01,EUR,500.00,PO-7",
                               "INV-100,C-ACME,2025-06-01,2025-08-15,EUR,500.00,PO-7") \
                      .replace("INV-101,C-ACME,2025-06-15,2025-07-15,EUR,700.00,",
                               "INV-101,C-ACME,2025-06-15,2025-07-15,EUR,700.00,PO-9")

    assert invoices_import(changed, actor=manager, dry_run=True).summary() == (
        "0 invoices would be recorded, 2 would be updated (a due date or PO reference changed in the ERP), "
        "2 already there (left as they were), from 4 rows."
    )
    report = invoices_import(changed, actor=manager)

    assert report.summary() == ("0 invoices recorded, 2 updated (a due date or PO reference changed in the "
                                "ERP), 2 already there (left as they were), from 4 rows.")
    assert Invoice.objects.get(number="INV-100").due_date == dt.date(2025, 8, 15)
    assert Invoice.objects.get(number="INV-101").po_reference == "PO-9"
    said = list(TimelineEvent.objects.filter(kind=EventKind.INVOICE_CHANGED).order_by("pk")
                .values_list("summary", flat=True))
    assert said == ["Invoice INV-100 changed in the ERP: due date 1 Jul 2025 → 15 Aug 2025",
                    "Invoice INV-101 changed in the ERP: PO reference none → PO-9"]
    assert invoices_import(changed, actor=manager).already == 4  # the same file again changes nothing


def test_a_file_with_problems_is_refused_line_by_line_and_nothing_is_recorded(imported):
    text = """number,account_number,issue_date,due_date,currency,total_amount
INV-400,C-ACME,2025-07-01,2025-07-31,EUR,10.00
INV-401,C-NOPE,2025-07-01,2025-07-31,EUR,10.00
INV-402,C-ACME,01.07.2025,2025-07-31,EUR,10.00
INV-403,C-ACME,2025-07-31,2025-07-01,EUR,10.00
INV-404,C-ACME,2025-07-01,2025-07-31,EUR,"1.234,50"
INV-405,C-ACME,2025-07-01,2025-07-31,eur,10.00
INV-400,C-ACME,2025-07-01,2025-07-31,EUR,10.00
INV-100,C-ACME,2025-06-01,2025-07-01,EUR,550.00
INV-406,C-ACME,2025-07-01,2025-07-31,EUR,0
INV-407,C-ACME,2025-07-01,2025-07-31,EUR,10.00,extra
INV-408,C-ACME,2025-08-06,2025-09-05,EUR,10.00
"""
    before = state()

    report = invoices_import(text)

    assert not report.ok and report.created == 0
    assert report.errors == [
        "line 3: no account 'C-NOPE'",
        "line 4: issue_date '01.07.2025' is not a date: write YYYY-MM-DD",
        "line 5: due_date 2025-07-01 is before issue_date 2025-07-31",
        "line 6: total_amount '1.234,50' is not an amount: write it like 1234.50 (a dot for cents, "
        "no thousands separators, no currency sign)",
        "line 7: currency 'eur': Use a three-letter ISO 4217 code in capitals, e.g. EUR.",
        "line 8: invoice INV-400 is on line 2 already: give each invoice once",
        "line 9: invoice INV-100 is recorded with total_amount 500.00, the file says 550.00; an import "
        "changes only an invoice's due date and PO reference: a different amount comes as a credit note or a "
        "new invoice",
        "line 10: total_amount must be more than zero",
        "line 11: more values than columns",
        # A mistyped year in the ERP would flow into credit sales and DSO.
        "line 12: issue_date 2025-08-06 is after today (5 Aug 2025): an invoice comes in once it is issued",
    ]
    assert report.summary() == "Nothing imported: 10 problems in 11 rows."
    assert state() == before


def test_an_invoice_given_twice_is_named_on_its_second_line_even_while_the_first_has_a_problem(accounts):
    """Before, the second line went unremarked until the first was mended,
    and the file came back refused a second time for it."""
    text = """number,account_number,issue_date,due_date,currency,total_amount
INV-500,C-ACME,2025-07-01,31.07.2025,EUR,10.00
INV-501,C-ACME,2025-07-01,2025-07-31,EUR,10.00
INV-500,C-BETA,2025-07-01,2025-07-31,EUR,10.00
"""
    before = state()

    report = invoices_import(text)

    assert report.errors == [
        "line 2: due_date '31.07.2025' is not a date: write YYYY-MM-DD",
        "line 4: invoice INV-500 is on line 2 already: give each invoice once",
    ]
    assert (report.created, state()) == (0, before)


def test_an_invoice_given_twice_with_its_own_problem_too_has_both_named(accounts):
    text = """number,account_number,issue_date,due_date,currency,total_amount
INV-500,C-ACME,2025-07-01,2025-07-31,EUR,10.00
INV-500,C-ACME,2025-07-01,2025-07-31,EUR,ten
"""

    report = invoices_import(text)

    assert report.errors == [
        "line 3: invoice INV-500 is on line 2 already: give each invoice once; total_amount 'ten' is not an "
        "amount: write it like 1234.50 (a dot for cents, no thousands separators, no currency sign)",
    ]
    assert not Invoice.objects.exists()


def test_a_payment_naming_one_invoice_twice_is_refused_rather_than_spread_as_if_over_two(imported):
    before = state()

    report = payments_import("""account_number,received_on,currency,amount,reference,invoices
C-ACME,2025-08-01,EUR,600.00,R-1,INV-100; INV-100
""")

    assert report.errors == ["line 2: invoices names INV-100 twice: name each invoice once"]
    assert state() == before



def test_a_number_or_reference_with_a_line_break_is_refused(accounts):
    """A quoted CSV value may hold a line break; an invoice number goes into
    e-mail subjects and file names, where one would stop the mail for good."""
    text = ('number,account_number,issue_date,due_date,currency,total_amount,po_reference\r\n'
            '"INV-1\nBcc: someone@evil.test",C-ACME,2025-06-01,2025-07-01,EUR,500.00,\r\n'
            'INV-2,C-ACME,2025-06-01,2025-07-01,EUR,500.00,"PO\t7"\r\n')

    report = invoices_import(text)

    assert report.errors == [  # a row is told by the line it starts on
        "line 2: number 'INV-1\\nBcc: someone@evil.test' has a line break or another control character: "
        "write it on one line",
        "line 4: po_reference 'PO\\t7' has a line break or another control character: write it on one line",
    ]
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(("header", "problem"), [
    ("number,account_number,issue_date,currency,total_amount", "line 1: missing column due_date"),
    ("number,account_number,issue_date,due_date,currency,total_amount,amout",
     "line 1: unknown column 'amout' (the columns are number, account_number, issue_date, due_date, "
     "currency, total_amount, po_reference, confirm_old_date, cancelled_on, cancel_reason)"),
    ("", "line 2: the first line must name the columns (number, account_number, issue_date, due_date, "
         "currency, total_amount); this one names none of them"),
])
def test_a_header_that_does_not_name_the_columns_is_refused(accounts, header, problem):
    report = invoices_import(f"{header}\nINV-1,C-ACME,2025-07-01,2025-07-31,EUR,10.00\n")

    assert report.errors == [problem]
    assert not Invoice.objects.exists()


def test_a_dry_run_says_what_it_would_record_and_records_nothing(accounts):
    report = invoices_import(INVOICES, dry_run=True)

    assert (report.ok, report.created) == (True, 4)
    assert report.summary() == (
        "4 invoices would be recorded, 0 already there (left as they were), from 4 rows."
    )
    assert not Invoice.objects.exists() and not TimelineEvent.objects.exists()


# --- payments -------------------------------------------------------------------------------


PAYMENTS = """account_number,received_on,currency,amount,reference,method,invoices
C-ACME,2025-08-01,EUR,600.00,BANK-1,bank_transfer,
C-ACME,2025-08-02,USD,300.00,BANK-2,Cheque,INV-102
C-BETA,2025-08-03,EUR,100.00,BANK-3,,INV-200
"""


def test_payments_go_to_the_named_invoices_or_the_oldest_first_and_keep_promises(
    imported, accounts, collector
):
    promise = workspace.promise_record(
        customer=accounts["C-ACME"], actor=collector, contact=None, amount=Decimal("300.00"),
        promised_on=dt.date(2025, 8, 4), invoices=[imported["INV-102"]], on=dt.date(2025, 7, 28),
    )

    report = payments_import(PAYMENTS)

    assert (report.ok, report.created) == (True, 3), report.errors
    amounts = dict(Invoice.objects.values_list("number", "open_amount"))
    # 600.00 without named invoices: INV-100 (due 1 Jul) whole, then 100.00 of INV-101.
    assert amounts == {"INV-100": Decimal("0.00"), "INV-101": Decimal("600.00"), "INV-102": Decimal("0.00"),
                       "INV-200": Decimal("20.50")}
    cheque = Payment.objects.get(reference="BANK-2")
    assert (cheque.method, cheque.received_on) == ("cheque", dt.date(2025, 8, 2))
    assert Invoice.objects.get(number="INV-100").settled_on == dt.date(2025, 8, 1)
    promise.refresh_from_db()
    assert promise.status == PromiseStatus.KEPT
    assert TimelineEvent.objects.filter(kind=EventKind.PAYMENT_RECEIVED).count() == 3


def test_a_payment_naming_no_invoice_passes_over_a_disputed_one(imported, accounts, manager):
    """The customer holds back a disputed invoice's payment on purpose: the
    bank line that names none pays its other invoices."""
    workspace.dispute_open(customer=accounts["C-ACME"], actor=manager, invoice=imported["INV-100"],
                           reason="quantity", description="Two pallets short", on=dt.date(2025, 7, 28))

    report = payments_import("account_number,received_on,currency,amount,reference\n"
                             "C-ACME,2025-08-01,EUR,600.00,BANK-1\n")

    assert (report.ok, report.created) == (True, 1), report.errors
    amounts = dict(Invoice.objects.filter(customer=accounts["C-ACME"]).values_list("number", "open_amount"))
    assert (amounts["INV-100"], amounts["INV-101"]) == (Decimal("500.00"), Decimal("100.00"))


def test_a_payments_file_recomputes_each_account_s_behaviour_once_after_its_rows(
    imported, accounts, monkeypatch, django_capture_on_commit_callbacks
):
    """The figures and segment follow the money once the file commits, as of
    today, for accounts never computed before too; one recompute for the
    file's accounts together, not one per row."""
    refreshed: list[list[int]] = []
    refresh_batch = services._refresh_batch

    def counted(customer_ids, **kwargs):
        refreshed.append(sorted(customer_ids))
        return refresh_batch(customer_ids, **kwargs)

    monkeypatch.setattr(services, "_refresh_batch", counted)
    text = PAYMENTS + "C-ACME,2025-08-04,EUR,50.00,BANK-4,,\n"

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert payments_import(text).ok
        assert refreshed == []  # not while the file's rows are being written

    assert len(callbacks) == 1
    assert refreshed == [sorted(c.pk for c in accounts.values())]
    acme = PaymentBehaviour.objects.get(customer=accounts["C-ACME"])
    assert (acme.computed_on, acme.invoices_settled, acme.open_amount) == (
        TODAY, 2, Decimal("550.00")
    )
    beta = PaymentBehaviour.objects.get(customer=accounts["C-BETA"])
    assert (beta.computed_on, beta.open_amount, beta.overdue_amount) == (
        TODAY, Decimal("20.50"), Decimal("20.50")
    )
    assert Customer.objects.get(pk=accounts["C-ACME"].pk).segment_reason


def test_a_payments_dry_run_leaves_the_figures_as_they_were(imported, accounts):
    before = sorted(PaymentBehaviour.objects.values_list("customer_id", "open_amount"))

    assert payments_import(PAYMENTS, dry_run=True).ok

    assert sorted(PaymentBehaviour.objects.values_list("customer_id", "open_amount")) == before
    assert before == [(accounts["C-ACME"].pk, Decimal("1200.00")), (accounts["C-BETA"].pk, Decimal("120.50"))]


def test_the_same_payments_file_again_records_nothing_twice(imported):
    assert payments_import(PAYMENTS).ok
    before = state()

    report = payments_import(PAYMENTS)

    assert (report.ok, report.created, report.already) == (True, 0, 3)
    assert state() == before


def test_a_payment_file_with_problems_is_refused_line_by_line_and_nothing_is_recorded(imported):
    text = """account_number,received_on,currency,amount,reference,method,invoices
C-ACME,2025-08-01,EUR,50.00,OK-1,,INV-100
C-ACME,2025-08-01,EUR,50.00,X-1,,INV-200
C-ACME,2025-08-01,EUR,50.00,X-2,,INV-102
C-ACME,2025-08-06,EUR,50.00,X-3,,
C-ACME,2025-08-01,EUR,50.00,X-4,barter,
C-ACME,2025-08-01,EUR,50.00,OK-1,,INV-100
"""
    before = state()

    report = payments_import(text)

    assert report.errors == [
        "line 3: account C-ACME has no invoice INV-200",
        "line 4: invoice INV-102 is in USD, the payment in EUR",
        "line 5: received_on 2025-08-06 is after today",
        "line 6: method 'barter' is not one of bank_transfer, direct_debit, card, cheque, cash",
        "line 7: the same payment (reference OK-1) is on line 2 already; if these are two payments, give "
        "each the bank's id of its entry in a bank_reference column",
    ]
    assert state() == before


def test_a_row_with_several_problems_names_them_all_at_once(imported):
    """Whoever fixes the file in the ERP sees every problem of a line in one
    report, not one per upload."""
    invoices = """number,account_number,issue_date,due_date,currency,total_amount
INV-500,C-NOPE,2025-07-01,31.07.2025,EUR,"1.234,50"
INV-501,C-ACME,2025-07-31,2025-07-01,EUX,10.00
"""
    payments = """account_number,received_on,currency,amount,reference,method,invoices
C-ACME,2025-08-06,EUR,-50.00,,barter,INV-200;INV-102
"""
    before = state()

    invoice_report, payment_report = invoices_import(invoices), payments_import(payments)

    assert invoice_report.errors == [
        "line 2: no account 'C-NOPE'; due_date '31.07.2025' is not a date: write YYYY-MM-DD; total_amount "
        "'1.234,50' is not an amount: write it like 1234.50 (a dot for cents, no thousands separators, "
        "no currency sign)",
        "line 3: due_date 2025-07-01 is before issue_date 2025-07-31; currency 'EUX': EUX is not an ISO "
        "4217 currency in circulation (EUR, USD, GBP, ...).",
    ]
    assert payment_report.errors == [
        "line 2: received_on 2025-08-06 is after today; method 'barter' is not one of bank_transfer, "
        "direct_debit, card, cheque, cash; invoice INV-102 is in USD, the payment in EUR; account C-ACME "
        "has no invoice INV-200; amount must be more than zero: credit notes and refunds are not "
        "imported from the ERP; record a credit note on the account page (Record a credit note); reference "
        "is empty: the payment's reference (the bank's, the cheque number) is what tells a new payment "
        "from one imported before",
    ]
    assert state() == before


def test_a_payment_row_with_an_unknown_account_and_an_unknown_invoice_names_both_problems(imported):
    payments = """account_number,received_on,currency,amount,reference,invoices
C-NOPE,2025-08-01,EUR,50.00,R-1,INV-999
"""
    before = state()

    report = payments_import(payments)

    assert report.errors == ["line 2: no account 'C-NOPE'; there is no invoice INV-999"]
    assert state() == before


DOUBLE_PAYMENT = """account_number,received_on,currency,amount,reference,invoices,bank_reference
C-ACME,2025-08-01,EUR,500.00,INV-100,INV-100,20250801-0007
C-ACME,2025-08-01,EUR,500.00,INV-100,,20250801-0008
"""


def test_a_customer_paying_an_invoice_twice_is_two_payments_told_apart_by_the_bank_reference(imported):
    report = payments_import(DOUBLE_PAYMENT)

    assert (report.ok, report.created, report.already) == (True, 2, 0), report.errors
    payments = list(Payment.objects.order_by("bank_reference").values_list("bank_reference", "amount"))
    assert payments == [("20250801-0007", Decimal("500.00")), ("20250801-0008", Decimal("500.00"))]
    # The second finds INV-100 paid and goes to the next open invoice, as any unnamed payment.
    amounts = dict(Invoice.objects.values_list("number", "open_amount"))
    assert (amounts["INV-100"], amounts["INV-101"]) == (Decimal("0.00"), Decimal("200.00"))

    before = state()
    again = payments_import(DOUBLE_PAYMENT)
    assert (again.ok, again.created, again.already) == (True, 0, 2)
    assert state() == before


def test_a_payment_imported_before_without_the_bank_reference_answers_for_one_row_with_it(imported):
    first = """account_number,received_on,currency,amount,reference,invoices
C-ACME,2025-08-01,EUR,500.00,INV-100,INV-100
"""
    assert payments_import(first).created == 1

    # The bank's full statement, now with its ids: one of the two is the payment recorded already.
    report = payments_import(DOUBLE_PAYMENT)

    assert (report.ok, report.created, report.already) == (True, 1, 1), report.errors
    assert Payment.objects.count() == 2
    assert payments_import(DOUBLE_PAYMENT).created == 0  # and the one with its id is known by it


def test_a_payment_matched_to_a_bank_reference_keeps_it_so_later_files_find_the_others_new(imported):
    header = "account_number,received_on,currency,amount,reference,bank_reference\n"
    line = "C-ACME,2025-08-01,EUR,100.00,R-1,{}\n"
    assert payments_import(header + line.format("")).created == 1  # recorded without the bank's id

    assert (payments_import(header + line.format("B-Y")).already, Payment.objects.get().bank_reference) == (
        1, "B-Y")
    # Another bank entry alike in all else is another payment, in a later file too.
    assert payments_import(header + line.format("B-X")).created == 1
    assert payments_import(header + line.format("B-Y") + line.format("B-X") + line.format("B-Z")).created == 1
    assert sorted(Payment.objects.values_list("bank_reference", flat=True)) == ["B-X", "B-Y", "B-Z"]


def test_a_row_without_the_bank_reference_alike_a_row_with_one_is_refused_as_the_same_payment(imported):
    text = """account_number,received_on,currency,amount,reference,bank_reference
C-ACME,2025-08-01,EUR,100.00,R-1,B-1
C-ACME,2025-08-01,EUR,100.00,R-1,
"""
    before = state()

    report = payments_import(text)

    assert report.errors == [
        "line 3: the same payment (reference R-1) is on line 2 already; if these are two payments, give "
        "each the bank's id of its entry in a bank_reference column",
    ]
    assert state() == before


def test_the_same_bank_reference_twice_in_a_file_is_refused(imported):
    text = DOUBLE_PAYMENT.replace("20250801-0008", "20250801-0007")
    before = state()

    report = payments_import(text)

    assert report.errors == ["line 3: bank_reference 20250801-0007 is on line 2 already"]
    assert state() == before


def test_a_row_that_no_longer_fits_rolls_back_the_rows_before_it(imported):
    """Checked row by row, the file is fine; recorded in order, the second
    payment names an invoice the first one paid in full."""
    text = """account_number,received_on,currency,amount,reference,invoices
C-ACME,2025-08-01,EUR,500.00,A,INV-100
C-ACME,2025-08-02,EUR,500.00,B,INV-100
"""
    before = state()

    report = payments_import(text)

    assert report.errors == [
        "line 3: invoice INV-100 is not open any more (paid, written off or cancelled); if the customer paid "
        "twice, empty this row's invoices column to apply the money to its other open invoices (or hold it "
        "on the account), or take the row out and refund it"
    ]
    assert (report.created, report.already) == (0, 0)
    assert state() == before


def test_a_payments_file_is_recorded_without_a_savepoint_per_row(imported):
    """Every row is checked before anything is written, and a file with a
    problem is rolled back whole: a row needs no savepoint of its own."""
    one = "account_number,received_on,currency,amount,reference,invoices\nC-ACME,2025-08-01,EUR,10.00,A,\n"
    many = one + "".join(f"C-ACME,2025-08-0{day},EUR,10.00,{ref},\n" for day, ref in [(2, "B"), (3, "C")])

    with CaptureQueriesContext(connection) as first:
        assert payments_import(one).created == 1
    with CaptureQueriesContext(connection) as second:
        assert payments_import(many).created == 2  # A was recorded by the first

    def savepoints(queries) -> int:
        return sum(query["sql"].startswith("SAVEPOINT") for query in queries.captured_queries)

    assert savepoints(second) == savepoints(first)


@pytest.mark.django_db(transaction=True)
def test_a_row_that_fails_half_recorded_leaves_the_file_s_payments_unrecorded(accounts):
    """The second row's invoice is corrected by a dispute (under the
    invoice's lock, not the account's) between the import reading it and
    recording on it: the row fails with its payment written, and the whole
    file, the first row included, is rolled back; the row after it is not
    recorded on top of it."""
    assert invoices_import(INVOICES).ok
    text = """account_number,received_on,currency,amount,reference,invoices
C-ACME,2025-08-01,EUR,100.00,A,INV-101
C-ACME,2025-08-02,EUR,500.00,B,INV-100
C-ACME,2025-08-03,EUR,50.00,C,
"""
    corrected = Invoice.objects.filter(number="INV-100")
    before = state()

    with done_by_another_worker(lambda: corrected.update(total_amount=300, open_amount=300)):
        importing = in_another_thread(lambda: payments_import(text, today=TODAY))
        someone_waits_for_a_lock()  # the import, to record on INV-100
    report = importing()

    assert report.errors == ["line 3: EUR 500.00 does not fit on invoice INV-100."]
    assert (report.created, report.already) == (0, 0)
    invoices, *rest = before
    assert state() == ([(n, Decimal("300.00") if n == "INV-100" else a, s) for n, a, s in invoices], *rest)


def test_a_payment_dry_run_records_nothing(imported):
    before = state()

    report = payments_import(PAYMENTS, dry_run=True)

    assert (report.ok, report.created) == (True, 3)
    assert state() == before


# --- the command ------------------------------------------------------------------------------


def test_the_command_imports_a_file_and_says_what_it_did(accounts, tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(INVOICES, encoding="utf-8")
    out = StringIO()

    call_command("import_receivables", "invoices", str(path), stdout=out)

    assert out.getvalue().strip() == "4 invoices recorded, 0 already there (left as they were), from 4 rows."
    assert Invoice.objects.count() == 4


def test_the_command_lists_the_problems_and_fails(accounts, tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(INVOICES.replace("C-BETA", "C-NOPE"), encoding="utf-8")
    err = StringIO()

    with pytest.raises(CommandError, match=r"Nothing imported: 1 problem in 4 rows\."):
        call_command("import_receivables", "invoices", str(path), stderr=err)

    assert err.getvalue().strip() == "line 5: no account 'C-NOPE'"
    assert not Invoice.objects.exists()


def test_the_command_refuses_a_file_that_is_not_utf8(accounts, tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_bytes(INVOICES.replace("Acme", "Müller").encode("utf-8") + "Müller".encode("latin-1"))

    with pytest.raises(CommandError, match=r"invoices.csv: The file is not UTF-8 \(byte \d+\)"):
        call_command("import_receivables", "invoices", str(path))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_receivables", "invoices", str(tmp_path / "missing.csv"))
    assert not Invoice.objects.exists()


# --- the page ---------------------------------------------------------------------------------


def upload(text: str | bytes, kind: str = "invoices", **fields) -> dict:
    content = text.encode("utf-8") if isinstance(text, str) else text
    return {"kind": kind, "file": SimpleUploadedFile(f"{kind}.csv", content, "text/csv"), **fields}


def test_the_import_page_is_named_for_all_it_imports(client, manager, accounts):
    """It takes customer accounts too, not only receivables: its title, heading,
    a report's way back to it and the permission that opens it say so."""
    client.force_login(manager)
    page = client.get("/collections/import/").content.decode()
    assert "<title>Import invoices, payments and accounts" in page
    assert "<h1>Import invoices, payments and accounts</h1>" in page
    batch = import_queue(kind="customers", text="account_number,name\n", actor=manager)
    report = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()
    assert ">Import invoices, payments and accounts</a>" in report
    permission = Permission.objects.get(codename="import_receivables")
    assert permission.name == "Can import invoices, payments and customer accounts from the ERP"


def test_a_manager_uploads_a_file_and_a_worker_imports_it(client, manager, accounts):
    client.force_login(manager)
    page = client.get(reverse("collections:import")).content.decode()
    assert "Import invoices, payments and accounts" in page

    response = client.post(reverse("collections:import"), upload(INVOICES))

    assert response.status_code == 302 and response.url == reverse("collections:import")
    batch = ReceivablesImport.objects.get()
    assert (batch.kind, batch.file_name, batch.status, batch.created_by) == (
        "invoices", "invoices.csv", ImportStatus.QUEUED, manager
    )
    assert not Invoice.objects.exists()  # the worker's job, not the request's
    waiting = client.get(reverse("collections:import")).content.decode()
    assert "invoices.csv is queued for import" in waiting
    assert 'hx-trigger="every 3s"' in waiting  # the list refreshes itself while a file waits

    assert import_run(batch.pk) == ImportStatus.DONE
    assert import_run(batch.pk) == "not_claimed"  # a second hand-over does nothing

    assert Invoice.objects.count() == 4
    assert TimelineEvent.objects.filter(kind=EventKind.INVOICE_ISSUED, actor=manager).count() == 4
    listed = client.get(reverse("collections:import"), headers={"HX-Request": "true"}).content.decode()
    assert listed.lstrip().startswith('<section id="imports"') and "every 3s" not in listed
    assert "4 invoices recorded, 0 already there (left as they were), from 4 rows." in listed


def test_an_uploaded_file_keeps_how_many_invoices_the_erp_changed(imported, manager):
    changed = INVOICES.replace("INV-101,C-ACME,2025-06-15,2025-07-15,EUR,700.00,",
                               "INV-101,C-ACME,2025-06-15,2025-07-15,EUR,700.00,PO-9")
    batch = import_queue(kind="invoices", text=changed, file_name="invoices.csv", actor=manager)

    assert import_run(batch.pk) == ImportStatus.DONE

    batch.refresh_from_db()
    assert (batch.created, batch.already, batch.updated) == (0, 3, 1)


def test_a_file_with_problems_is_refused_and_its_page_lists_them(client, manager, accounts):
    client.force_login(manager)
    before = state()
    client.post(reverse("collections:import"), upload(INVOICES.replace("C-BETA", "C-NOPE")))
    batch = ReceivablesImport.objects.get()

    assert import_run(batch.pk) == ImportStatus.REFUSED

    assert state() == before
    page = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()
    assert "Nothing imported: 1 problem in 4 rows." in page
    assert "line 5: no account &#x27;C-NOPE&#x27;" in page


def test_a_check_only_upload_records_nothing(client, manager, accounts):
    client.force_login(manager)
    client.post(reverse("collections:import"), upload(INVOICES, dry_run="on"))

    assert import_run(ReceivablesImport.objects.get().pk) == ImportStatus.CHECKED
    assert not Invoice.objects.exists()


def test_a_check_only_upload_with_problems_is_labelled_a_check_not_a_refusal(client, manager, accounts):
    """A check is what the manager asked for: its problems are its answer, not
    a refusal of something that was never to be recorded."""
    client.force_login(manager)
    before = state()
    client.post(reverse("collections:import"), upload(INVOICES.replace("C-BETA", "C-NOPE"), dry_run="on"))
    batch = ReceivablesImport.objects.get()

    assert import_run(batch.pk) == ImportStatus.CHECKED_PROBLEMS

    assert state() == before
    listed = client.get(reverse("collections:import")).content.decode()
    page = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()
    for text in (listed, page):
        assert "Checked: problems found (nothing recorded)" in text
        assert "Refused" not in text
    assert "line 5: no account &#x27;C-NOPE&#x27;" in page


def test_an_upload_whose_task_was_lost_is_handed_over_again_by_the_sweep(manager, accounts, monkeypatch):
    fresh = import_queue(kind="invoices", text=INVOICES, actor=manager)
    stale = import_queue(kind="invoices", text=INVOICES, actor=manager)
    ReceivablesImport.objects.filter(pk=stale.pk).update(created_at=timezone.now() - dt.timedelta(minutes=6))
    handed: list[int] = []
    # What goes to the broker; a real worker takes it in tests/arcrm/test_celery_worker.py.
    monkeypatch.setattr(tasks.run_import, "delay", handed.append)

    assert imports_sweep() == 1

    assert handed == [stale.pk] and fresh.pk not in handed


@pytest.mark.parametrize(("fields", "message"), [
    ({"file": SimpleUploadedFile("x.csv", "Müller".encode("latin-1"), "text/csv")},
     "The file is not UTF-8 (byte 1)"),
    ({"kind": "credit_notes"}, "Select a valid choice."),
    ({"file": ""}, "This field is required."),
], ids=["latin-1", "unknown-kind", "no-file"])
def test_a_bad_upload_is_refused_with_a_clear_message(client, manager, accounts, fields, message):
    client.force_login(manager)
    before = state()

    response = client.post(reverse("collections:import"), {**upload(INVOICES), **fields})

    assert response.status_code == 422
    assert message in response.content.decode()
    assert state() == before and not ReceivablesImport.objects.exists()


@pytest.mark.parametrize("who", ["collector", "viewer", "nobody"])
def test_only_a_manager_imports(client, request, manager, accounts, who):
    user = User.objects.create_user("nobody") if who == "nobody" else request.getfixturevalue(who)
    batch = import_queue(kind="invoices", text=INVOICES, actor=manager)
    client.force_login(user)

    assert client.get(reverse("collections:import")).status_code == 403
    assert client.get(reverse("collections:import_detail", args=[batch.pk])).status_code == 403
    assert client.post(reverse("collections:import"), upload(INVOICES)).status_code == 403
    assert ReceivablesImport.objects.count() == 1


def test_the_import_page_needs_the_csrf_token_and_answers_only_get_and_post(client, manager, accounts):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    client.force_login(manager)

    assert strict.post(reverse("collections:import"), upload(INVOICES)).status_code == 403
    assert client.put(reverse("collections:import")).status_code == 405
    assert not ReceivablesImport.objects.exists()


def test_importing_is_its_own_permission_and_does_not_open_the_admins_invoice_form(manager):
    """add_invoice would let a manager add invoices in the admin, which puts
    nothing on the timeline; the import has a permission of its own."""
    assert manager.has_perm("collections.import_receivables")
    assert not manager.has_perm("collections.add_invoice")


# --- reading CSV as spreadsheets write it ----------------------------------------------------------


def test_doubled_quotes_in_a_quoted_field_are_one_quote(imported):
    text = ('account_number,received_on,currency,amount,reference\n'
            'C-ACME,2025-08-01,EUR,10.00,"Ref ""X"", part"\n')

    report = payments_import(text)

    assert report.ok, report.errors
    assert Payment.objects.get().reference == 'Ref "X", part'


def test_a_quote_left_open_is_a_problem_not_a_field_that_swallows_the_next_rows(imported):
    text = ('account_number,received_on,currency,amount,reference\n'
            'C-ACME,2025-08-01,EUR,10.00,"R1\n'
            'C-BETA,2025-08-01,EUR,20.00,R2\n')
    before = state()

    report = payments_import(text)

    assert not report.ok
    assert report.errors[0].startswith("line 3: unexpected end of data (a quote opened and not closed?)")
    assert state() == before


def test_a_trailing_delimiter_with_nothing_under_it_is_fine_with_something_under_it_is_not(accounts):
    ok = invoices_import("number,account_number,issue_date,due_date,currency,total_amount,\n"
                         "INV-1,C-ACME,2025-07-01,2025-07-31,EUR,10.00,\n", dry_run=True)
    bad = invoices_import("number,account_number,issue_date,due_date,currency,total_amount,\n"
                          "INV-1,C-ACME,2025-07-01,2025-07-31,EUR,10.00,oops\n", dry_run=True)

    assert (ok.ok, ok.created) == (True, 1)
    assert bad.errors == ["line 2: a value under a column without a name"]


@pytest.mark.parametrize(("value", "problem"), [
    ("1234567890123.00", "total_amount 1234567890123.00 is more than an amount may be (999999999999.99 at "
                         "most)"),
    ("12.345", "total_amount '12.345' is not an amount"),
    ("€10", "total_amount '€10' is not an amount"),
])
def test_amounts_the_ledger_cannot_hold_are_problems_not_crashes(accounts, value, problem):
    report = invoices_import("number,account_number,issue_date,due_date,currency,total_amount\n"
                             f"INV-1,C-ACME,2025-07-01,2025-07-31,EUR,{value}\n")

    assert report.errors[0].startswith(f"line 2: {problem}")
    assert not Invoice.objects.exists()


def test_the_largest_amount_the_ledger_holds_is_taken(accounts):
    report = invoices_import("number,account_number,issue_date,due_date,currency,total_amount\n"
                             "INV-1,C-ACME,2025-07-01,2025-07-31,EUR,999999999999.99\n")

    assert report.ok, report.errors
    assert Invoice.objects.get().total_amount == Decimal("999999999999.99")


@pytest.mark.parametrize("value", ["2025-W31-1", "20250701", "2025-7-1"])
def test_only_calendar_dates_written_yyyy_mm_dd_are_dates(accounts, value):
    report = invoices_import("number,account_number,issue_date,due_date,currency,total_amount\n"
                             f"INV-1,C-ACME,{value},2025-07-31,EUR,10.00\n")

    assert report.errors == [f"line 2: issue_date {value!r} is not a date: write YYYY-MM-DD"]


def test_a_payment_without_a_reference_is_refused_so_a_second_run_cannot_record_it_again(imported):
    text = "account_number,received_on,currency,amount,reference\nC-ACME,2025-08-01,EUR,100.00,\n"

    report = payments_import(text)

    assert report.errors == ["line 2: reference is empty: the payment's reference (the bank's, the cheque "
                             "number) is what tells a new payment from one imported before"]
    assert not Payment.objects.exists()


def test_a_file_over_the_row_limit_is_refused(accounts, monkeypatch):
    monkeypatch.setattr("ar_collections.imports.MAX_ROWS", 3)

    report = invoices_import(INVOICES)

    assert report.errors == ["more than 3 rows: split the file"]
    assert not Invoice.objects.exists()


@pytest.mark.parametrize("kind", ["invoices", "payments"])
def test_the_example_files_are_offered_and_are_files_the_import_takes(client, manager, make_customer, kind):
    """The example names one of the installation's accounts (the first) and
    its invoice: the file checks clean as it is, a real starting point."""
    make_customer(account_number="C10001", name="Example GmbH")
    make_customer(account_number="C10002", name="Other GmbH")
    if kind == "payments":
        invoices_import(imports.example_file("invoices", account_number="C10001", currency="EUR",
                                             today=TODAY))
    client.force_login(manager)

    response = client.get(reverse("collections:import_example", args=[kind]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="arcrm-{kind}-example.csv"' in response["Content-Disposition"]
    run = invoices_import if kind == "invoices" else payments_import
    assert "C10001" in response.content.decode()
    report = run(response.content.decode(), dry_run=True)
    assert (report.ok, report.created) == (True, 1), report.errors
    assert client.get(reverse("collections:import_example", args=["credit_notes"])).status_code == 404


def test_the_example_files_import_as_they_are_on_any_day_in_the_accounts_currency(
        client, manager, make_customer):
    """Downloaded long after the product was written, and for an account in
    yen: the invoice is not refused as issued long ago, nor its amount for
    cents, and the payment pays it."""
    make_customer(account_number="C10001", name="Example KK", currency="JPY")

    with frozen(dt.date(2026, 12, 4)):
        client.force_login(manager)
        invoices = client.get(reverse("collections:import_example", args=["invoices"])).content.decode()
        payments = client.get(reverse("collections:import_example", args=["payments"])).content.decode()
        invoiced = invoices_import(invoices)
        paid = payments_import(payments)

    assert ((invoiced.ok, invoiced.created), (paid.ok, paid.created)) == ((True, 1), (True, 1)), (
        invoiced.errors + paid.errors)
    invoice = Invoice.objects.get()
    assert (invoice.currency, invoice.status) == ("JPY", InvoiceStatus.PAID)


def test_a_short_row_leaves_its_last_columns_empty_and_says_what_is_missing(accounts):
    report = invoices_import("account_number,number,issue_date,due_date,currency,total_amount\n"
                             "C-ACME\n")

    assert report.errors == [
        "line 2: number is empty; issue_date is empty; due_date is empty; currency is empty; "
        "total_amount is empty"
    ]


def test_a_value_under_any_column_without_a_name_is_a_problem(accounts):
    report = invoices_import("number,account_number,issue_date,due_date,currency,total_amount,,\n"
                             "INV-1,C-ACME,2025-07-01,2025-07-31,EUR,10.00,oops,\n")

    assert report.errors == ["line 2: a value under a column without a name"]


def test_a_file_with_a_nul_character_is_refused_on_the_page_and_by_the_command(client, manager, accounts,
                                                                               tmp_path):
    raw = INVOICES.replace("PO-7", "PO\x007").encode("utf-8")
    client.force_login(manager)

    response = client.post(reverse("collections:import"), upload(raw))

    assert response.status_code == 422
    assert "The file holds a NUL character" in response.content.decode()
    path = tmp_path / "nul.csv"
    path.write_bytes(raw)
    with pytest.raises(CommandError, match=r"nul\.csv: The file holds a NUL character"):
        call_command("import_receivables", "invoices", str(path))
    assert not ReceivablesImport.objects.exists() and not Invoice.objects.exists()


def test_an_import_that_stops_on_an_unforeseen_error_fails_instead_of_staying_queued(
    manager, accounts, monkeypatch
):
    batch = import_queue(kind="invoices", text=INVOICES, actor=manager)

    def broken(*args, **kwargs):
        Invoice.objects.create(number="HALF-WRITTEN", customer=accounts["C-ACME"], issue_date=TODAY,
                               due_date=TODAY, total_amount=1, open_amount=1)
        raise RuntimeError("disk full")

    monkeypatch.setattr("ar_collections.imports.invoices_import", broken)  # a defect, simulated

    assert import_run(batch.pk) == ImportStatus.FAILED
    batch.refresh_from_db()
    assert batch.errors == ["The import stopped on an error: RuntimeError: disk full"]
    assert not Invoice.objects.exists()  # what it wrote before the error is gone
    assert imports_sweep(now=timezone.now() + dt.timedelta(hours=1)) == 0  # not handed over again


@pytest.mark.django_db(transaction=True)
def test_two_copies_of_a_payments_file_imported_at_once_record_each_payment_once(accounts):
    assert invoices_import(INVOICES).ok
    start = threading.Barrier(2)
    reports, errors = [], []

    def worker() -> None:
        try:
            start.wait(timeout=10)
            reports.append(payments_import(PAYMENTS, today=TODAY))
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert all(report.ok for report in reports), [report.errors for report in reports]
    assert sorted((report.created, report.already) for report in reports) == [(0, 3), (3, 0)]
    assert Payment.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_one_bank_line_imported_at_once_for_two_accounts_is_recorded_once(accounts):
    """Each import holds only its own account: the bank's id, looked for by
    both before either committed, is what the second must wait for. It is
    then refused as when it comes later, and the bank line is one payment."""
    assert invoices_import(INVOICES).ok
    header = "account_number,received_on,currency,amount,reference,bank_reference\n"
    acme = header + "C-ACME,2025-08-01,EUR,100.00,R-1,AB12 CD\n"
    beta = header + "C-BETA,2025-08-01,EUR,100.00,R-1,ab12cd\n"

    with done_by_another_worker(lambda: payments_import(acme, today=TODAY)):
        second = in_another_thread(lambda: payments_import(beta, today=TODAY))
        someone_waits_for_a_lock(unless=second.finished)  # the second, for the bank's id
    report = second()

    assert report.errors == [
        "line 2: bank_reference ab12cd is recorded already, as EUR 100.00 received 2025-08-01 on "
        "account C-ACME; the file says EUR 100.00 on account C-BETA. One bank entry is one payment: "
        "correct the file, or the payment recorded"]
    assert list(Payment.objects.values_list("customer__account_number", "bank_key")) == [
        ("C-ACME", "AB12CD")]


@pytest.mark.django_db(transaction=True)
def test_a_bank_line_a_third_import_records_while_the_second_looks_again_is_named_by_its_row(
    accounts, make_customer
):
    """The second import waits for the first's bank id, then looks again; a
    third import meanwhile records another bank id of its file. That row is
    named as the first one is, not the whole import stopped on an error."""
    make_customer(account_number="C-GAMMA", name="Gamma GmbH")
    header = "account_number,received_on,currency,amount,reference,bank_reference\n"
    acme = header + "C-ACME,2025-08-01,EUR,100.00,R-1,AB12 CD\n"
    gamma = header + "C-GAMMA,2025-08-02,EUR,200.00,R-2,EF34 GH\n"
    beta = header + "C-BETA,2025-08-01,EUR,100.00,R-1,ab12cd\nC-BETA,2025-08-02,EUR,200.00,R-2,ef34gh\n"

    with done_by_another_worker(lambda: payments_import(gamma, today=TODAY)):
        with done_by_another_worker(lambda: payments_import(acme, today=TODAY)):
            second = in_another_thread(lambda: payments_import(beta, today=TODAY))
            someone_waits_for_a_lock(unless=second.finished)  # for the first import's bank id
        # The first committed: the second looks again, and waits for the third's bank id.
        someone_waits_for_a_lock(unless=second.finished)
    report = second()

    assert report.errors == [
        "line 2: bank_reference ab12cd is recorded already, as EUR 100.00 received 2025-08-01 on "
        "account C-ACME; the file says EUR 100.00 on account C-BETA. One bank entry is one payment: "
        "correct the file, or the payment recorded",
        "line 3: bank_reference ef34gh is recorded already, as EUR 200.00 received 2025-08-02 on "
        "account C-GAMMA; the file says EUR 200.00 on account C-BETA. One bank entry is one payment: "
        "correct the file, or the payment recorded"]
    assert sorted(Payment.objects.values_list("customer__account_number", "bank_key")) == [
        ("C-ACME", "AB12CD"), ("C-GAMMA", "EF34GH")]


def test_a_statement_listed_newest_first_is_applied_in_the_order_the_money_came_in(
    imported, accounts, collector
):
    """Without named invoices, the oldest payment settles the oldest invoice,
    and a later payment listed first does not break a promise an earlier one keeps."""
    promise = workspace.promise_record(
        customer=accounts["C-ACME"], actor=collector, contact=None, amount=Decimal("500.00"),
        promised_on=dt.date(2025, 7, 22), invoices=[imported["INV-100"]], on=dt.date(2025, 7, 20),
    )
    text = """account_number,received_on,currency,amount,reference,invoices
C-ACME,2025-08-04,EUR,700.00,LATER,
C-ACME,2025-07-21,EUR,500.00,EARLIER,
"""
    report = payments_import(text)

    assert (report.ok, report.created) == (True, 2), report.errors
    settled = dict(Invoice.objects.filter(customer=accounts["C-ACME"]).values_list("number", "settled_on"))
    assert settled == {"INV-100": dt.date(2025, 7, 21), "INV-101": dt.date(2025, 8, 4), "INV-102": None}
    promise.refresh_from_db()
    assert (promise.status, promise.paid_amount) == (PromiseStatus.KEPT, Decimal("500.00"))


@pytest.mark.django_db(transaction=True)
def test_an_import_takes_its_accounts_locks_in_one_order_so_two_at_once_queue_rather_than_deadlock(
    accounts,
):
    """Another transaction holds the first account (by id). A file listing the
    second account first must wait for the first before it touches the second:
    a file listing them the other way round, imported meanwhile, can then take
    both in turn instead of each import holding what the other waits for."""
    assert invoices_import(INVOICES).ok
    first, second = sorted(accounts.values(), key=lambda c: c.pk)
    text = f"""account_number,received_on,currency,amount,reference,invoices
{second.account_number},2025-08-01,EUR,20.50,B-1,
{first.account_number},2025-08-01,EUR,50.00,A-1,
"""
    reports, errors = [], []

    def importer() -> None:
        try:
            reports.append(payments_import(text, today=TODAY))
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    with held_by_another_worker(Customer, first.pk):
        thread = threading.Thread(target=importer)
        thread.start()
        someone_waits_for_a_lock()  # the import, for the first account
        # The second account is free: the import did not take it before the first.
        with transaction.atomic():
            assert Customer.objects.select_for_update(nowait=True).filter(pk=second.pk).exists()
    thread.join(timeout=30)

    assert errors == []
    assert [(r.ok, r.created) for r in reports] == [(True, 2)]


def test_a_payment_without_invoices_leaves_alone_the_invoices_another_row_names(imported, accounts):
    """Applied by date, the earlier unnamed payment would take the oldest
    invoice, which the later row names: that invoice is the named row's."""
    text = """account_number,received_on,currency,amount,reference,invoices
C-ACME,2025-08-04,EUR,500.00,NAMED,INV-100
C-ACME,2025-07-22,EUR,300.00,UNNAMED,
"""
    report = payments_import(text)

    assert (report.ok, report.created) == (True, 2), report.errors
    amounts = dict(Invoice.objects.filter(customer=accounts["C-ACME"], currency="EUR")
                   .values_list("number", "open_amount"))
    assert amounts == {"INV-100": Decimal("0.00"), "INV-101": Decimal("400.00")}
    unnamed = Payment.objects.get(reference="UNNAMED")
    assert list(unnamed.allocations.values_list("invoice__number", flat=True)) == ["INV-101"]


def test_an_invoice_named_by_a_row_recorded_before_is_open_to_a_payment_without_invoices(
    imported, accounts
):
    """A row known from an earlier import pays nothing now: the invoice it
    names is fair game for the new unnamed payment, oldest first."""
    first = """account_number,received_on,currency,amount,reference,invoices
C-ACME,2025-07-20,EUR,300.00,NAMED,INV-100
"""
    assert payments_import(first).ok
    again = first + "C-ACME,2025-07-25,EUR,200.00,UNNAMED,\n"

    report = payments_import(again)

    assert (report.ok, report.created, report.already) == (True, 1, 1), report.errors
    amounts = dict(Invoice.objects.filter(customer=accounts["C-ACME"], currency="EUR")
                   .values_list("number", "open_amount"))
    assert amounts == {"INV-100": Decimal("0.00"), "INV-101": Decimal("700.00")}


def test_an_invoice_recorded_with_a_semicolon_before_it_was_refused_still_matches_on_a_new_import(
    imported, make_invoice, accounts
):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="10.00",
                 number="OLD;1")
    text = ("number,account_number,issue_date,due_date,currency,total_amount\n"
            "OLD;1,C-ACME,2025-06-01,2025-07-01,EUR,10.00\n")

    report = invoices_import(text)

    assert (report.ok, report.created, report.already) == (True, 0, 1), report.errors


@pytest.mark.parametrize(("row", "problem"), [
    ("INV;9,C-ACME,2025-06-01,2025-07-01,EUR,10.00,",
     "line 2: number 'INV;9' has a ';', which a payments file's invoices column cannot name"),
    ("INV-9,C-ACME,2025-06-01,2025-07-01,ÄÖÜ,10.00,",
     "line 2: currency 'ÄÖÜ': Use a three-letter ISO 4217 code in capitals, e.g. EUR."),
], ids=["semicolon", "not-ascii-currency"])
def test_an_invoice_a_payment_file_could_not_name_or_a_currency_that_is_no_code_is_refused(
    accounts, row, problem
):
    header = "number,account_number,issue_date,due_date,currency,total_amount,po_reference\n"
    assert invoices_import(header + row + "\n").errors == [problem]
    assert not Invoice.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_list_tells_a_file_being_imported_from_one_waiting_for_a_worker(manager, accounts, monkeypatch):
    """The import's transaction holds its row until the end: what others see
    meanwhile is the start committed before it."""
    client = Client()
    client.force_login(manager)
    batch = import_queue(kind="invoices", text=INVOICES, actor=manager)
    assert "Waiting for a worker" in client.get(reverse("collections:import")).content.decode()
    seen = []

    def look_from_another_request() -> None:
        try:
            seen.append(client.get(reverse("collections:import")).content.decode())
            seen.append(client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode())
        finally:
            connection.close()

    real = imports.invoices_import

    def import_while_someone_looks(*args, **kwargs):
        look = threading.Thread(target=look_from_another_request)
        look.start()
        look.join(timeout=30)
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "invoices_import", import_while_someone_looks)
    with held_by_another_worker(ReceivablesImport, batch.pk):
        assert import_run(batch.pk) == "not_claimed"  # another worker has it: nothing waits, nothing is said
    assert ReceivablesImport.objects.get().started_at is None

    assert import_run(batch.pk) == ImportStatus.DONE

    listed, detail = seen
    started = timezone.localtime(ReceivablesImport.objects.get().started_at)
    assert f"Being imported, since {started:%H:%M:%S}" in listed and "Waiting for a worker" not in listed
    assert "Being imported." in detail
    assert "4 invoices recorded" in client.get(reverse("collections:import")).content.decode()


def test_the_import_pages_name_the_uploader_by_full_name(client, manager, accounts):
    manager.first_name, manager.last_name = "Maria", "Meyer"
    manager.save()
    client.force_login(manager)
    client.post(reverse("collections:import"), upload(INVOICES))
    batch = ReceivablesImport.objects.get()

    listed = client.get(reverse("collections:import")).content.decode()
    detail = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()

    assert "<td>Maria Meyer</td>" in listed
    assert "by Maria Meyer</dd>" in detail
    assert ">maria<" not in listed + detail


def test_an_invoice_recorded_by_another_import_meanwhile_asks_to_import_the_file_again(
        accounts, manager, monkeypatch):
    real = Invoice.objects.bulk_create

    def after_another_import(invoices, *args, **kwargs):
        # Another import records the first number between this file's check and its write.
        Invoice.objects.create(**{f.attname: getattr(invoices[0], f.attname)
                                  for f in Invoice._meta.concrete_fields if f.attname != "id"})
        return real(invoices, *args, **kwargs)

    monkeypatch.setattr(Invoice.objects, "bulk_create", after_another_import)

    report = invoices_import(INVOICES, actor=manager)

    assert report.errors == ["an invoice number in the file was recorded meanwhile: import the file again"]
    assert not Invoice.objects.exists()


def test_the_import_page_names_every_column_a_file_may_have_and_what_a_second_import_changes(client, manager):
    client.force_login(manager)
    page = client.get(reverse("collections:import")).content.decode()
    columns = {kind: page.split(f'id="columns-{kind}"', 1)[1].split("</dd>", 1)[0]
               for kind in imports.COLUMNS}

    for kind, (required, optional) in imports.COLUMNS.items():
        assert f"<code>{', '.join(required)}</code>" in columns[kind]
        for name in optional:
            assert f"<code>{name}</code>" in columns[kind]
    # The ERP moving a due date or giving a PO reference late is taken, on the invoice's timeline.
    assert "a changed due date or PO reference is taken" in columns["invoices"]
    assert f"issued more than {INVOICE_LONG_AGO_DAYS} days ago" in columns["invoices"]
    assert f"received more than {LONG_AGO_DAYS} days ago" in columns["payments"]


def test_a_payment_naming_its_invoice_in_other_capitals_pays_that_invoice(imported):
    """A bank line carries the number as the customer typed it: one invoice
    per number in any capitals, so inv-102 can only be INV-102."""
    report = payments_import("account_number,received_on,currency,amount,reference,invoices\n"
                             "C-ACME,2025-08-02,USD,300.00,BANK-2,inv-102\n")

    assert (report.ok, report.created) == (True, 1), report.errors
    assert Invoice.objects.get(number="INV-102").open_amount == Decimal("0.00")


def test_a_payment_naming_one_invoice_twice_in_other_capitals_is_refused(imported):
    report = payments_import("account_number,received_on,currency,amount,reference,invoices\n"
                             "C-ACME,2025-08-02,USD,300.00,BANK-2,INV-102;inv-102\n")

    assert report.errors == ["line 2: invoices names INV-102 twice: name each invoice once"]
    assert not Payment.objects.exists()
