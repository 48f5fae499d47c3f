"""Receivables imports and the API, the cases a second review found wrong:
account numbers in another case, wording that misleads, a missing PO
reference column erasing the ones recorded, and payment dates with a
mistyped year."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections.api import api_token_create
from ar_collections.imports import invoices_import, payments_import
from ar_collections.models import Invoice, Payment
from customers.models import TimelineEvent

pytestmark = pytest.mark.usefixtures("_frozen_today")  # today is 5 Aug 2025

INVOICE_HEADER = "number,account_number,issue_date,due_date,currency,total_amount"
PAYMENT_HEADER = "account_number,received_on,currency,amount,reference,invoices"


@pytest.fixture
def acme(make_customer):
    return make_customer(account_number="C10002", name="Acme Tools")


@pytest.fixture
def invoiced(acme) -> Invoice:
    report = invoices_import(f"{INVOICE_HEADER},po_reference\n"
                             "W-10,C10002,2025-06-01,2025-07-01,EUR,500.00,PO-777\n"
                             "W-20,C10002,2025-06-10,2025-07-10,EUR,300.00,PO-778\n")
    assert report.ok, report.errors
    return Invoice.objects.get(number="W-10")


def post(manager, name: str, rows: list[dict]) -> tuple[int, dict]:
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    response = client.post(reverse(f"api:{name}"), json.dumps({"rows": rows}),
                           content_type="application/json")
    return response.status_code, response.json()


# --- 4. the import finds an account in any case, as the API does ---------------------------


def test_an_invoices_file_finds_an_account_written_in_other_capitals(acme):
    report = invoices_import(f"{INVOICE_HEADER}\nW-30,c10002,2025-07-01,2025-07-31,EUR,90.00\n")

    assert report.ok, report.errors
    assert Invoice.objects.get(number="W-30").customer == acme


def test_a_payments_file_finds_an_account_written_in_other_capitals(invoiced, acme):
    report = payments_import(f"{PAYMENT_HEADER}\nc10002,2025-08-01,EUR,500.00,BANK-1,W-10\n")

    assert report.ok, report.errors
    assert Payment.objects.get().customer == acme


def test_an_account_written_exactly_is_taken_before_one_differing_in_case(acme, make_customer):
    lower = make_customer(account_number="c10002", name="Another")

    report = invoices_import(f"{INVOICE_HEADER}\nW-30,c10002,2025-07-01,2025-07-31,EUR,90.00\n")

    assert report.ok, report.errors
    assert Invoice.objects.get(number="W-30").customer == lower


def test_two_accounts_differing_only_in_case_from_the_number_given_are_not_guessed_between(make_customer):
    make_customer(account_number="AB-1")
    make_customer(account_number="ab-1")

    report = invoices_import(f"{INVOICE_HEADER}\nW-30,Ab-1,2025-07-01,2025-07-31,EUR,90.00\n")

    assert report.errors == ["line 2: no account 'Ab-1'; AB-1 and ab-1 differ from it only in case: "
                             "give the number exactly"]
    assert not Invoice.objects.exists()


# --- 3. wording that misleads -----------------------------------------------------------


def test_an_invoice_given_another_account_is_refused_without_talk_of_amounts(invoiced, make_customer):
    make_customer(account_number="C20003")

    report = invoices_import(f"{INVOICE_HEADER}\nW-10,C20003,2025-06-01,2025-07-01,EUR,500.00\n")

    assert report.errors == ["line 2: invoice W-10 is recorded with account C10002, the file says C20003; "
                             "an invoice's account, issue date and currency stay as first recorded: check "
                             "the row (an import changes only an invoice's due date and PO reference)"]


def test_an_invoice_given_another_amount_is_told_how_an_amount_changes(invoiced):
    report = invoices_import(f"{INVOICE_HEADER}\nW-10,C10002,2025-06-01,2025-07-01,EUR,450.00\n")

    assert report.errors == ["line 2: invoice W-10 is recorded with total_amount 500.00, the file says "
                             "450.00; an import changes only an invoice's due date and PO reference: a "
                             "different amount comes as a credit note or a new invoice"]


def test_a_day_the_calendar_does_not_have_is_called_so(acme):
    report = invoices_import(f"{INVOICE_HEADER}\nW-30,C10002,2025-02-30,2025-03-31,EUR,90.00\n")

    assert report.errors == ["line 2: issue_date 2025-02-30 is no such day"]


def test_invoices_separated_by_commas_are_told_the_separator_is_a_semicolon(invoiced):
    report = payments_import(f'{PAYMENT_HEADER}\nC10002,2025-08-01,EUR,800.00,BANK-1,"W-10, W-20"\n')

    assert report.errors == ["line 2: account C10002 has no invoice W-10, W-20 (separate invoices with ';', "
                             "as in W-10;W-20)"]
    assert not Payment.objects.exists()


# --- 1. a PO reference left out is kept, not erased -------------------------------------


def po_references() -> list[tuple[str, str]]:
    return sorted(Invoice.objects.values_list("number", "po_reference"))


def test_an_invoices_file_without_the_po_reference_column_keeps_the_po_references_recorded(invoiced):
    report = invoices_import(f"{INVOICE_HEADER}\nW-10,C10002,2025-06-01,2025-07-01,EUR,500.00\n"
                             "W-20,C10002,2025-06-10,2025-07-10,EUR,300.00\n")

    assert report.summary() == "0 invoices recorded, 2 already there (left as they were), from 2 rows."
    assert po_references() == [("W-10", "PO-777"), ("W-20", "PO-778")]
    assert not TimelineEvent.objects.filter(summary__contains="changed in the ERP").exists()


def test_an_empty_po_reference_keeps_the_one_recorded_and_a_due_date_moved_is_still_taken(invoiced):
    report = invoices_import(f"{INVOICE_HEADER},po_reference\n"
                             "W-10,C10002,2025-06-01,2025-08-15,EUR,500.00,\n")

    assert report.updated == 1, report.errors
    assert po_references() == [("W-10", "PO-777"), ("W-20", "PO-778")]
    assert list(TimelineEvent.objects.filter(summary__contains="changed in the ERP")
                .values_list("summary", flat=True)) == [
        "Invoice W-10 changed in the ERP: due date 1 Jul 2025 → 15 Aug 2025"]


@pytest.mark.parametrize("po_reference", ["leave out", None, ""])
def test_an_api_invoice_without_a_po_reference_keeps_the_one_recorded(invoiced, manager, po_reference):
    row = {"number": "W-10", "account_number": "C10002", "issue_date": "2025-06-01", "due_date": "2025-07-01",
           "currency": "EUR", "total_amount": "500.00"}
    if po_reference != "leave out":
        row["po_reference"] = po_reference

    status, answer = post(manager, "invoices", [row])

    assert (status, answer["already_there"], answer["updated"]) == (200, 1, 0), answer
    assert po_references() == [("W-10", "PO-777"), ("W-20", "PO-778")]


def test_a_po_reference_given_still_replaces_the_one_recorded(invoiced):
    report = invoices_import(f"{INVOICE_HEADER},po_reference\n"
                             "W-10,C10002,2025-06-01,2025-07-01,EUR,500.00,PO-9\n")

    assert report.updated == 1, report.errors
    assert po_references() == [("W-10", "PO-9"), ("W-20", "PO-778")]


# --- 2. payment and invoice dates with a mistyped year ----------------------------------


def test_a_payment_received_before_the_invoice_it_names_was_issued_is_refused(invoiced):
    report = payments_import(f"{PAYMENT_HEADER},confirm_old_date\n"
                             "C10002,2015-05-20,EUR,500.00,BANK-1,W-10,2015-05-20\n")

    assert report.errors == ["line 2: received_on 2015-05-20 is 3665 days before invoice W-10 was issued "
                             "(1 Jun 2025): too early to be paid ahead; check the year"]
    assert not Payment.objects.exists()
    assert Invoice.objects.get(number="W-10").open_amount == 500


def test_a_payment_received_weeks_before_the_invoice_it_names_is_a_prepayment_and_pays_it(invoiced):
    # C.O.D. and prepayment accounts pay before the invoice is issued.
    report = payments_import(f"{PAYMENT_HEADER},confirm_old_date\n"
                             "C10002,2025-05-11,EUR,500.00,BANK-1,W-10,2025-05-11\n")

    assert report.ok, report.errors
    assert Invoice.objects.get(number="W-10").open_amount == 0


@pytest.mark.parametrize("received_on", ["2024-08-05", "2025-05-06"])
def test_a_payment_received_more_than_90_days_ago_needs_its_date_confirmed(acme, received_on):
    report = payments_import(f"{PAYMENT_HEADER}\nC10002,{received_on},EUR,500.00,BANK-1,\n")

    days = {"2024-08-05": 365, "2025-05-06": 91}[received_on]
    assert report.errors == [f"line 2: received_on {received_on} is {days} days ago: if that is right, give "
                             "the same date in a confirm_old_date column"]
    assert not Payment.objects.exists()


def test_an_old_payment_with_its_date_confirmed_is_recorded_and_its_day_is_on_the_timeline(acme, manager):
    report = payments_import(f"{PAYMENT_HEADER},confirm_old_date\n"
                             "C10002,2025-03-03,EUR,50.00,BANK-1,,2025-03-03\n", actor=manager)

    assert report.ok, report.errors
    assert Payment.objects.get().received_on.isoformat() == "2025-03-03"
    assert TimelineEvent.objects.get(summary__startswith="Payment").summary == (
        "Payment of EUR 50.00 received on 3 Mar 2025 (bank transfer, reference BANK-1); EUR 50.00 kept on "
        "account")


def test_a_confirmation_of_another_date_confirms_nothing(acme):
    report = payments_import(f"{PAYMENT_HEADER},confirm_old_date\n"
                             "C10002,2024-03-03,EUR,50.00,BANK-1,,2025-03-03\n")

    assert report.errors == ["line 2: received_on 2024-03-03 is 520 days ago: if that is right, give the "
                             "same date in a confirm_old_date column"]


def test_an_api_payment_long_ago_is_refused_unless_confirmed(acme, manager):
    row = {"account_number": "C10002", "received_on": "2016-12-05", "currency": "EUR", "amount": "50.00",
           "reference": "BANK-1"}

    status, answer = post(manager, "payments", [row])

    assert status == 422
    assert answer["problems"] == [{"row": 1, "messages": [
        "received_on 2016-12-05 is 3165 days ago: if that is right, give the same date in a confirm_old_date "
        "field"]}]
    status, answer = post(manager, "payments", [dict(row, confirm_old_date="2016-12-05")])
    assert (status, answer["recorded"]) == (200, 1)


def test_a_new_invoice_issued_more_than_180_days_ago_needs_its_date_confirmed(acme):
    report = invoices_import(f"{INVOICE_HEADER}\nW-95,C10002,1995-06-01,1995-07-01,EUR,90.00\n")

    assert report.errors == ["line 2: issue_date 1995-06-01 is 11023 days ago: if that is right, give the "
                             "same date in a confirm_old_date column"]
    report = invoices_import(f"{INVOICE_HEADER},confirm_old_date\n"
                             "W-95,C10002,1995-06-01,1995-07-01,EUR,90.00,1995-06-01\n")
    assert report.ok, report.errors


def test_an_invoice_issued_four_months_ago_is_open_receivables_and_needs_no_confirmation(acme):
    # Today is 5 Aug 2025: an ERP's first load brings its Over 90 invoices.
    report = invoices_import(f"{INVOICE_HEADER}\nW-96,C10002,2025-04-01,2025-05-01,EUR,90.00\n")

    assert report.ok, report.errors


def test_an_old_invoice_recorded_before_comes_again_without_a_confirmation(acme):
    text = f"{INVOICE_HEADER},confirm_old_date\nW-95,C10002,2025-01-02,2025-02-01,EUR,90.00,2025-01-02\n"
    assert invoices_import(text).ok

    report = invoices_import(f"{INVOICE_HEADER}\nW-95,C10002,2025-01-02,2025-02-01,EUR,90.00\n")

    assert (report.ok, report.already) == (True, 1), report.errors
