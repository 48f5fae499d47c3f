"""Receivables imports, the cases a review found wrong: empty days, bank ids
seen again, files naming more invoices than one query takes, currencies that
do not exist, Mac line endings, negative amounts, mistyped years, and a part
payment beside a row naming the same invoice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from ar_collections.imports import import_queue, import_run, invoices_import, payments_import
from ar_collections.models import Allocation, ImportStatus, Invoice, Payment, ReceivablesImport
from customers.models import TimelineEvent

pytestmark = pytest.mark.usefixtures("_frozen_today")  # today is 5 Aug 2025

INVOICES = """number,account_number,issue_date,due_date,currency,total_amount,po_reference
INV-100,C-ACME,2025-06-01,2025-07-01,EUR,500.00,PO-7
INV-101,C-ACME,2025-06-15,2025-07-15,EUR,700.00,
INV-200,C-BETA,2025-07-01,2025-07-31,EUR,120.50,
"""
INVOICE_HEADER = "number,account_number,issue_date,due_date,currency,total_amount\n"
PAYMENT_HEADER = "account_number,received_on,currency,amount,reference,bank_reference\n"
DAY = dt.date(2025, 8, 1)


@pytest.fixture
def accounts(make_customer):
    return {number: make_customer(account_number=number, name=name)
            for number, name in [("C-ACME", "Acme Tools"), ("C-BETA", "Beta Bau")]}


@pytest.fixture
def imported(accounts) -> dict[str, Invoice]:
    report = invoices_import(INVOICES)
    assert report.ok, report.errors
    return Invoice.objects.in_bulk(field_name="number")


def state() -> tuple:
    return (
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
        sorted(Payment.objects.values_list("reference", "amount", "received_on")),
        Allocation.objects.count(),
        TimelineEvent.objects.count(),
    )


# --- 1. a payments file with no rows (a day without receipts) crashes -------------------------


def test_a_payments_file_with_the_header_only_records_nothing_and_does_not_crash(imported):
    report = payments_import(PAYMENT_HEADER)

    assert (report.ok, report.created, report.already, report.rows) == (True, 0, 0, 0)


def test_the_scheduled_command_on_a_payments_file_without_rows_says_so_and_does_not_crash(
    imported, tmp_path
):
    path = tmp_path / "payments-2025-08-05.csv"
    path.write_text(PAYMENT_HEADER + "\r\n", encoding="utf-8")  # the header and a trailing empty line
    out = StringIO()

    call_command("import_receivables", "payments", str(path), stdout=out)

    assert out.getvalue().strip() == "0 payments recorded, 0 already there (left as they were), from 0 rows."


def test_an_uploaded_payments_file_without_rows_is_done_not_failed(imported, manager):
    batch = import_queue(kind="payments", text=PAYMENT_HEADER, actor=manager)

    assert import_run(batch.pk) == ImportStatus.DONE, ReceivablesImport.objects.get().errors


# --- 2. the bank's id does not tell a payment recorded before -------------------------------------


def test_a_payment_whose_bank_id_is_recorded_is_not_recorded_again_under_another_date(imported):
    """The README: a payment is known by the bank's id of its entry where the
    file has a bank_reference column. The same entry exported again with its
    value date instead of its booking date is the same payment."""
    assert payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,BANK-0001\n").created == 1
    before = state()

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-04,EUR,500.00,R-1,BANK-0001\n")

    assert report.created == 0, "the bank entry BANK-0001 was recorded a second time"
    assert Payment.objects.filter(bank_reference="BANK-0001").count() == 1
    assert state() == before


def test_a_bank_entry_recorded_before_with_another_amount_is_a_problem_not_already_there(imported):
    """An invoice recorded with another amount is named as a problem; a bank
    entry that the file now gives with another amount is silently counted as
    recorded, and the difference is never seen."""
    assert payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,BANK-0001\n").created == 1

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,5000.00,R-1,BANK-0001\n")

    assert not report.ok, (report.created, report.already)
    assert "BANK-0001" in report.errors[0]


# --- 2b. the bank's id written another way (spaces, small letters) is a new payment -----------------


def test_a_bank_id_exported_again_with_other_spaces_and_capitals_is_the_same_entry(imported):
    """A statement prints the bank's id in groups ("ab12 cd"), a CSV export of
    the same entry runs it together in capitals ("AB12CD"): banks read ids
    without spaces and in any case, and so does the import. The id is kept as
    the file first gave it."""
    assert payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,ab12 cd\n").created == 1
    before = state()

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1, AB12CD\n")

    assert (report.ok, report.created, report.already) == (True, 0, 1), report.errors
    assert list(Payment.objects.values_list("bank_reference", flat=True)) == ["ab12 cd"]
    assert state() == before


def test_one_bank_id_written_two_ways_in_a_file_is_refused_as_given_twice(imported):
    text = (PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,ab12 cd\n"
            + "C-ACME,2025-08-01,EUR,500.00,R-2,AB12CD\n")

    report = payments_import(text)

    assert report.errors == ["line 3: bank_reference AB12CD is on line 2 already"]
    assert not Payment.objects.exists()


def test_a_bank_id_written_another_way_with_another_amount_is_a_problem_not_a_second_payment(imported):
    assert payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,ab12 cd\n").created == 1

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,400.00,R-1,AB 12CD\n")

    assert report.errors == [
        "line 2: bank_reference AB 12CD is recorded already, as EUR 500.00 received 2025-08-01 on account "
        "C-ACME; the file says EUR 400.00 on account C-ACME. One bank entry is one payment: correct the "
        "file, or the payment recorded"]
    assert Payment.objects.count() == 1


TWINS = ["BANK-4000", "BANK4000", "bank_4000", "BANK/4000", "Bank.4000"]


@pytest.mark.parametrize("twin", TWINS)
def test_one_bank_id_written_with_other_punctuation_in_a_file_is_refused_as_given_twice(imported, twin):
    """A credit controller reads "BANK 4000" and "BANK-4000" as one entry:
    the bank's letters and digits are the id, its punctuation only print."""
    text = (PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,BANK 4000\n"
            + f"C-ACME,2025-08-01,EUR,500.00,R-2,{twin}\n")

    report = payments_import(text)

    assert report.errors == [f"line 3: bank_reference {twin} is on line 2 already"]
    assert not Payment.objects.exists()


@pytest.mark.parametrize("twin", TWINS)
def test_a_bank_id_recorded_before_with_other_punctuation_on_another_account_is_refused(imported, twin):
    assert payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,BANK 4000\n").created == 1
    before = state()

    report = payments_import(PAYMENT_HEADER + f"C-BETA,2025-08-01,EUR,500.00,R-1,{twin}\n")

    assert report.errors == [
        f"line 2: bank_reference {twin} is recorded already, as EUR 500.00 received 2025-08-01 on account "
        "C-ACME; the file says EUR 500.00 on account C-BETA. One bank entry is one payment: correct the "
        "file, or the payment recorded"]
    assert state() == before
    assert list(Payment.objects.values_list("bank_key", flat=True)) == ["BANK4000"]


def test_a_reference_written_with_other_punctuation_is_the_same_payment_in_a_file(imported):
    text = (PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,BANK 4000,\n"
            + "C-ACME,2025-08-01,EUR,500.00,BANK-4000,\n")

    report = payments_import(text)

    assert report.errors == [
        "line 3: the same payment (reference BANK-4000) is on line 2 already; if these are two payments, "
        "give each the bank's id of its entry in a bank_reference column"]
    assert not Payment.objects.exists()


def test_a_payment_recorded_before_with_its_id_written_another_way_is_found(imported, accounts):
    """Rows already in the database are compared as the file's are, however
    their id was written when they were recorded."""
    Payment.objects.create(customer=accounts["C-ACME"], received_on=DAY, currency="EUR",
                           amount=Decimal("500.00"), reference="R-1", bank_reference="Ab12\tCd ")

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,AB12CD\n")

    assert (report.ok, report.created, report.already) == (True, 0, 1), report.errors
    assert list(Payment.objects.values_list("bank_reference", flat=True)) == ["Ab12\tCd "]


# --- 3. a large payments file crashes on PostgreSQL's parameter limit ------------------------------


def test_a_payments_file_within_the_row_limit_naming_many_invoices_is_checked_not_a_crash(imported):
    """22,000 rows (under the 50,000 the README promises), each naming three
    invoices: 66,000 numbers looked up in one query, over the 65,535
    parameters PostgreSQL takes with server-side binding."""
    rows = "".join(f"C-ACME,2025-08-01,EUR,1.00,R-{n},I-{n}-A;I-{n}-B;I-{n}-C\n" for n in range(22_000))
    text = "account_number,received_on,currency,amount,reference,invoices\n" + rows

    report = payments_import(text, dry_run=True)  # one query for all: OperationalError

    assert not report.ok
    assert report.errors[0] == "line 2: account C-ACME has no invoices I-0-A, I-0-B, I-0-C"
    assert len(report.errors) == 22_000


# --- 4. a currency that is no ISO 4217 code is taken -----------------------------------------------


@pytest.mark.parametrize("currency", ["EUO", "ABC", "XYZ"])
def test_an_invoice_in_a_currency_that_does_not_exist_is_refused(accounts, currency):
    report = invoices_import(INVOICE_HEADER + f"INV-1,C-ACME,2025-07-01,2025-07-31,{currency},10.00\n")

    assert not report.ok and not Invoice.objects.exists()
    assert report.errors == [f"line 2: currency {currency!r}: {currency} is not an ISO 4217 currency in "
                             "circulation (EUR, USD, GBP, ...)."]


def test_a_payment_in_a_mistyped_currency_is_refused_not_kept_on_account(imported):
    """EUO for EUR: the money stays on account in a currency that does not
    exist, and the EUR invoices it paid stay open and are dunned."""
    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUO,500.00,R-1,\n")

    assert not report.ok
    assert not Payment.objects.exists()


# --- 5. a file with old-Mac line endings gets a Python developer's message ---------------------------


def test_a_file_with_carriage_return_line_endings_is_read(accounts):
    """Excel for Mac's "CSV (Macintosh)" ends lines with CR alone."""
    text = INVOICE_HEADER.replace("\n", "\r") + "INV-1,C-ACME,2025-07-01,2025-07-31,EUR,10.00\r"

    report = invoices_import(text)

    assert report.errors == []
    assert (report.ok, report.created) == (True, 1)


# --- 6. a negative amount (a credit note, a refund) is told it is badly written ----------------------


def test_a_credit_note_row_is_told_the_amount_must_be_positive_not_how_to_write_an_amount(accounts):
    report = invoices_import(INVOICE_HEADER + "CN-1,C-ACME,2025-07-01,2025-07-31,EUR,-100.00\n")

    assert not report.ok
    # Today: "total_amount '-100.00' is not an amount: write it like 1234.50 (a dot for
    # cents, no thousands separators, no currency sign)" -- it is written exactly so.
    assert "is not an amount" not in report.errors[0]
    assert "more than zero" in report.errors[0]


def test_a_refund_in_a_payments_file_is_told_the_amount_must_be_positive(imported):
    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,-50.00,REFUND-1,\n")

    assert not report.ok
    assert "is not an amount" not in report.errors[0]
    assert "more than zero" in report.errors[0]


def test_the_same_bank_entry_given_to_another_account_later_is_not_recorded_twice(imported):
    """The bank first matched entry BANK-0001 to the wrong customer; the
    corrected statement gives it to the right one. One bank entry is one
    payment: recorded on both accounts, the money is counted twice and pays
    invoices of both customers."""
    assert payments_import(PAYMENT_HEADER + "C-BETA,2025-08-01,EUR,120.50,R-1,BANK-0001\n").created == 1

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,120.50,R-1,BANK-0001\n")

    assert Payment.objects.filter(bank_reference="BANK-0001").count() == 1
    assert not report.ok  # a problem to resolve (it is recorded on C-BETA), not a second payment


# --- 7. a failed import is shown in green, like a success ----------------------------------------


def test_the_page_of_an_import_that_stopped_on_an_error_shows_it_as_an_error(
    client, manager, accounts, monkeypatch
):
    batch = import_queue(kind="invoices", text=INVOICES, actor=manager)

    def broken(*args, **kwargs):
        raise RuntimeError("connection to the database lost")

    monkeypatch.setattr("ar_collections.imports.invoices_import", broken)
    assert import_run(batch.pk) == ImportStatus.FAILED
    client.force_login(manager)

    page = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()

    summary = next(line for line in page.splitlines() if "Nothing imported: the import stopped" in line)
    assert "message-success" not in summary, summary.strip()
    assert "message-error" in summary


# --- 8. a blank first line makes the file "empty" ------------------------------------------------


def test_a_file_starting_with_a_blank_line_is_not_called_empty(accounts):
    report = invoices_import("\n" + INVOICE_HEADER + "INV-1,C-ACME,2025-07-01,2025-07-31,EUR,10.00\n")

    assert not any("the file is empty" in error for error in report.errors), report.errors


# --- 9. a mistyped year takes an invoice out of collections for centuries --------------------------


def test_an_invoice_due_centuries_ahead_is_refused_as_the_forms_refuse_such_dates(accounts):
    """The account forms refuse a date more than 10 years ahead as a mistyped
    year (workspace_forms.DATE_AHEAD_YEARS); the import records the invoice,
    which is then never overdue and never dunned."""
    report = invoices_import(INVOICE_HEADER + "INV-1,C-ACME,2025-07-01,2925-07-31,EUR,10.00\n")

    assert not report.ok
    assert not Invoice.objects.exists()


# --- 10. an invoice paid in full by two payments stays open, the money on account -------------------


def test_a_payment_without_invoices_is_not_left_on_account_while_the_invoice_it_would_pay_stays_open(
    imported, accounts
):
    """Beta owes only INV-200 (EUR 120.50, due 31 Jul) and pays it in two parts:
    100.00 without naming it, then the 20.50 rest naming it. Recorded by hand
    in this order, or by the import without the reservation, INV-200 is paid.
    The import reserves the whole invoice for the later row, so the 100.00
    finds no invoice and stays on account, the 20.50 leaves 100.00 open, and
    the paid invoice is dunned as overdue."""
    text = """account_number,received_on,currency,amount,reference,invoices
C-BETA,2025-08-01,EUR,100.00,PART-1,
C-BETA,2025-08-03,EUR,20.50,PART-2,INV-200
"""
    report = payments_import(text)

    assert report.ok, report.errors
    invoice = Invoice.objects.get(number="INV-200")
    on_account = sum(p.unallocated_amount() for p in Payment.objects.filter(customer=accounts["C-BETA"]))
    assert (invoice.open_amount, on_account) == (0, 0), (invoice.open_amount, on_account)
    assert invoice.settled_on is not None


# --- 11. cents in a currency that has none --------------------------------------------------------


def test_an_invoice_in_yen_with_cents_is_refused(accounts):
    report = invoices_import(INVOICE_HEADER + "INV-1,C-ACME,2025-07-01,2025-07-31,JPY,125000.50\n")

    assert not report.ok
    assert not Invoice.objects.exists()


def test_a_row_naming_two_invoices_reserves_its_amount_once_not_on_each(make_customer):
    """Acme owes INV-100 (500) and INV-101 (700), 1,200 in all, and pays
    exactly that: 1,100 naming no invoice, then 100 naming both. The second
    row keeps back only the 100 it will pay (on INV-100), not 100 on each."""
    acme = make_customer(account_number="C-ACME", name="Acme Tools")
    report = invoices_import(
        "number,account_number,issue_date,due_date,currency,total_amount\n"
        "INV-100,C-ACME,2025-06-01,2025-07-01,EUR,500.00\n"
        "INV-101,C-ACME,2025-06-15,2025-07-15,EUR,700.00\n"
    )
    assert report.ok, report.errors

    report = payments_import(
        "account_number,received_on,currency,amount,reference,invoices\n"
        "C-ACME,2025-08-01,EUR,1100.00,PART-1,\n"
        "C-ACME,2025-08-03,EUR,100.00,PART-2,INV-100;INV-101\n"
    )

    assert report.ok, report.errors
    open_left = {i.number: i.open_amount for i in Invoice.objects.filter(customer=acme)}
    on_account = sum(p.unallocated_amount() for p in Payment.objects.filter(customer=acme))
    assert (open_left, on_account) == ({"INV-100": 0, "INV-101": 0}, 0)


def test_a_problem_is_told_at_the_line_its_row_starts_on_when_a_value_spans_lines(accounts):
    # A spreadsheet writes a cell holding a line break as a quoted value over
    # two lines; the row's problem is where the row begins, and the rows after
    # it keep their own lines.
    report = invoices_import(INVOICE_HEADER.replace("\n", ",po_reference\n")
                             + 'INV-1,C-ACME,2025-06-01,2025-07-01,EUR,10.00,"PO\n7"\n'
                             + "INV-2,C-ACME,2025-06-01,2025-07-01,EUX,10.00,\n")
    assert [error.split(":")[0] for error in report.errors] == ["line 2", "line 4"], report.errors


# --- 2c. a payment's reference written another way is the same bank line ---------------------------


def test_a_payment_recorded_by_hand_is_found_by_a_file_giving_its_reference_in_other_capitals_and_spaces(
    imported, accounts
):
    """The form, the API and the import compare a payment's reference by one
    rule, the bank id's (bank_id_key): a line recorded by hand and then
    imported is one payment."""
    Payment.objects.create(customer=accounts["C-ACME"], received_on=DAY, currency="EUR",
                           amount=Decimal("500.00"), reference="bank-0815")
    before = state()

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,BANK-08 15,\n")

    assert (report.ok, report.created, report.already) == (True, 0, 1), report.errors
    assert state() == before


def test_one_payment_with_its_reference_written_two_ways_in_a_file_is_refused_as_given_twice(imported):
    text = (PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,500.00,R-1,\n"
            + "C-ACME,2025-08-01,EUR,500.00,r- 1,\n")

    report = payments_import(text)

    assert not report.ok
    assert report.errors[0].startswith("line 3: the same payment (reference r- 1) is on line 2 already")
    assert not Payment.objects.exists()


# --- 12. a file of delimiters only stopped the import on an error -----------------------------------


def test_a_file_of_delimiters_only_is_called_empty_not_an_error(manager, accounts):
    """An export of an empty selection may be its separators alone: the
    worker said it "stopped on an error: StopIteration", which tells the
    manager nothing."""
    batch = import_queue(kind="invoices", text=",,,\n,,\n", actor=manager)

    assert import_run(batch.pk) == ImportStatus.REFUSED

    batch.refresh_from_db()
    assert batch.errors == ["line 1: the file is empty; the first line names the columns: number, "
                            "account_number, issue_date, due_date, currency, total_amount"]
