"""A payment in a currency its account is never billed in could pay none of
its invoices: the ERP's file or request naming one is refused with why, and
nothing of it is recorded."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections.api import api_token_create
from ar_collections.imports import payments_import
from ar_collections.models import Allocation, Invoice, Payment
from customers.models import TimelineEvent

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")
HEADER = "account_number,received_on,currency,amount,reference,invoices\n"


@pytest.fixture
def acme(make_customer, make_invoice):
    """Billed in EUR, its own currency, and once in USD (paid since)."""
    acme = make_customer(account_number="C-ACME", name="Acme Tools")
    make_invoice(acme, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00", number="INV-1")
    make_invoice(acme, issued=dt.date(2025, 5, 1), amount="80.00", currency="USD", number="INV-U",
                 paid_on=dt.date(2025, 6, 1))
    return acme


def state() -> tuple:
    return (sorted(Invoice.objects.values_list("number", "open_amount")),
            sorted(Payment.objects.values_list("reference", "amount", "currency")),
            Allocation.objects.count(), TimelineEvent.objects.count())


def test_a_payment_file_with_a_row_in_a_currency_the_account_is_never_billed_in_is_refused(acme):
    before = state()

    report = payments_import(HEADER + "C-ACME,2025-08-01,EUR,100.00,OK-1,\n"
                                      "C-ACME,2025-08-01,GBP,500.00,BANK-7,\n")

    assert report.errors == [
        "line 3: account C-ACME is never billed in GBP (only in EUR, USD): a payment in GBP could pay none "
        "of its invoices; check the currency, or record the GBP invoice it pays first",
    ]
    assert state() == before


@pytest.mark.parametrize("currency", ["EUR", "USD"])
def test_a_payment_in_the_account_s_own_currency_or_one_it_was_billed_in_is_recorded(acme, currency):
    report = payments_import(HEADER + f"C-ACME,2025-08-01,{currency},100.00,BANK-8,\n")

    assert report.ok, report.errors
    assert Payment.objects.get(reference="BANK-8").currency == currency


def test_the_api_refuses_a_payment_in_a_currency_the_account_is_never_billed_in_and_says_why(acme, manager):
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    before = state()

    response = client.post(reverse("api:payments"), json.dumps({"rows": [
        {"account_number": "C-ACME", "received_on": "2025-08-01", "currency": "CHF", "amount": "500.00",
         "reference": "BANK-9"},
    ]}), content_type="application/json")

    assert response.status_code == 422
    assert response.json()["problems"] == [{"row": 1, "messages": [
        "account C-ACME is never billed in CHF (only in EUR, USD): a payment in CHF could pay none of its "
        "invoices; check the currency, or record the CHF invoice it pays first"]}]
    assert state()[1:3] == before[1:3]


def test_the_payment_form_offers_only_the_currencies_the_account_is_billed_in(client, manager, acme):
    client.force_login(manager)
    before = state()

    response = client.post(reverse("collections:payment_record", args=[acme.pk]), {
        "received_on": "2025-08-01", "currency": "GBP", "amount": "500.00", "method": "bank_transfer",
        "reference": "BANK-10",
    })

    assert response.status_code == 422
    assert "currency" in response.context["form"].errors
    assert state() == before


# --- amounts finer than their currency ------------------------------------------------------
# Amounts are kept to two places (arcrm.money): yen have none, so JPY 100.50
# is no amount of yen, and a currency in thousandths (KWD) cannot be kept to
# its last fils. Both are refused wherever a payment comes in, never rounded.

HALF_A_YEN = "JPY has no places after the point: write 100 or 101, not 100.50."


@pytest.fixture
def tokyo(make_customer, make_invoice):
    tokyo = make_customer(account_number="C-TOKYO", name="Tokyo Parts", currency="JPY")
    make_invoice(tokyo, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="30000", currency="JPY",
                 number="INV-J")
    return tokyo


def test_a_payment_file_with_half_a_yen_or_dinars_in_thousandths_is_refused(tokyo):
    before = state()

    report = payments_import(HEADER + "C-TOKYO,2025-08-01,JPY,100.50,BANK-11,\n"
                                      "C-TOKYO,2025-08-01,KWD,10.125,BANK-12,\n")

    assert report.errors == [
        "line 2: amount 100.50 has more places after the point than JPY has (0)",
        "line 3: currency 'KWD': KWD counts in thousandths; amounts here are kept to 2 places after the "
        "point, so KWD cannot be used; amount '10.125' is not an amount: write it like 1234.50 (a dot for "
        "cents, no thousands separators, no currency sign)",
    ]
    assert state() == before


def test_the_api_refuses_half_a_yen(tokyo, manager):
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    before = state()

    response = client.post(reverse("api:payments"), json.dumps({"rows": [
        {"account_number": "C-TOKYO", "received_on": "2025-08-01", "currency": "JPY", "amount": "100.50",
         "reference": "BANK-13"},
    ]}), content_type="application/json")

    assert (response.status_code, response.json()["problems"]) == (422, [{"row": 1, "messages": [
        "amount 100.50 has more places after the point than JPY has (0)"]}])
    assert state() == before


def test_the_payment_form_refuses_half_a_yen(client, manager, tokyo):
    client.force_login(manager)
    before = state()

    response = client.post(reverse("collections:payment_record", args=[tokyo.pk]), {
        "received_on": "2025-08-01", "currency": "JPY", "amount": "100.50", "method": "bank_transfer",
        "reference": "BANK-14",
    })

    assert response.status_code == 422
    assert HALF_A_YEN in response.content.decode()
    assert state() == before
