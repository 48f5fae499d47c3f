"""Numbers come in as digits 0-9 and references as the characters people see.

Python reads "１００" (full-width digits, as a Japanese keyboard types them) or
"١٠٠" (Arabic-Indic) as 100, so a file, the API or a form would record an
amount nobody wrote in the digits the ledger shows; they are refused with the
character named. A payment's reference with a zero-width space pasted in
("BANK-1\u200b") reads as BANK-1 yet is another reference: refused, named.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections.api import api_token_create
from ar_collections.imports import invoices_import, payments_import
from ar_collections.models import Allocation, Invoice, Payment
from customers.imports import customers_import
from customers.models import Customer, TimelineEvent

pytestmark = pytest.mark.usefixtures("_frozen_today")  # today is 5 Aug 2025

HTMX = {"HX-Request": "true"}
INVOICE_HEADER = "number,account_number,issue_date,due_date,currency,total_amount\n"
PAYMENT_HEADER = "account_number,received_on,currency,amount,reference\n"


@pytest.fixture
def acme(make_customer) -> Customer:
    return make_customer(account_number="C-ACME", name="Acme Tools")


@pytest.fixture
def invoice(acme, make_invoice) -> Invoice:
    return make_invoice(acme, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00",
                        number="INV-1")


def state() -> tuple:
    return (
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
        sorted(Payment.objects.values_list("reference", "amount")),
        Allocation.objects.count(),
        TimelineEvent.objects.count(),
        sorted(Customer.objects.values_list("account_number", "credit_limit_amount")),
    )


@pytest.mark.parametrize(("value", "named"), [
    ("１００.00", "１ (U+FF11), ０ (U+FF10)"),
    ("١٠٠.00", "١ (U+0661), ٠ (U+0660)"),
])
def test_an_invoice_amount_in_other_digits_is_refused_naming_them(acme, value, named):
    before = state()

    report = invoices_import(INVOICE_HEADER + f"INV-9,C-ACME,2025-07-01,2025-07-31,EUR,{value}\n")

    assert report.errors == [f"line 2: total_amount {value!r} is written with digits other than 0-9 "
                             f"({named}): write it like 1234.50"]
    assert state() == before


def test_a_payment_amount_in_full_width_digits_is_refused(invoice):
    before = state()

    report = payments_import(PAYMENT_HEADER + "C-ACME,2025-08-01,EUR,５００,BANK-1\n")

    assert report.errors == ["line 2: amount '５００' is written with digits other than 0-9 "
                             "(５ (U+FF15), ０ (U+FF10)): write it like 1234.50"]
    assert state() == before


def test_a_credit_limit_in_full_width_digits_is_refused(acme, manager):
    before = state()

    report = customers_import("account_number,name,credit_limit\nC-ACME,Acme Tools,２５０００\n",
                              actor=manager)

    assert report.errors == ["line 2: credit_limit '２５０００' is written with digits other than 0-9 "
                             "(２ (U+FF12), ５ (U+FF15), ０ (U+FF10)): write it like 25000.00"]
    assert state() == before


def test_the_api_refuses_an_amount_in_full_width_digits_and_records_nothing(acme, manager):
    erp = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    before = state()

    response = erp.post(reverse("api:invoices"), json.dumps({"rows": [{
        "number": "INV-9", "account_number": "C-ACME", "issue_date": "2025-07-01", "due_date": "2025-07-31",
        "currency": "EUR", "total_amount": "１００.00"}]}), content_type="application/json")

    assert response.status_code == 422
    assert response.json()["problems"] == [{"row": 1, "messages": [
        "total_amount '１００.00' is written with digits other than 0-9 (１ (U+FF11), ０ (U+FF10)): "
        "write it like 1234.50"]}]
    assert state() == before


def test_a_payment_typed_in_full_width_digits_on_the_account_page_is_refused(client, manager, acme, invoice):
    client.force_login(manager)
    before = state()

    response = client.post(reverse("collections:payment_record", args=[acme.pk]), {
        "received_on": "2025-08-04", "currency": "EUR", "amount": "５００.00", "method": "bank_transfer",
        "reference": "BANK-1", "invoices": [invoice.pk]}, headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["amount"] == [
        "“５００.00” is written with digits other than 0-9 (５ (U+FF15), ０ (U+FF10)): "
        "write the amount like 1000.00."]
    assert state() == before


def test_a_payment_reference_with_a_hidden_character_is_refused_naming_it(client, manager, acme, invoice):
    client.force_login(manager)
    before = state()

    response = client.post(reverse("collections:payment_record", args=[acme.pk]), {
        "received_on": "2025-08-04", "currency": "EUR", "amount": "500.00", "method": "bank_transfer",
        "reference": "INV-1\u200b", "invoices": [invoice.pk]}, headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["reference"] == [
        "This holds a character no one sees (U+200B): type it as you read it."]
    assert state() == before
