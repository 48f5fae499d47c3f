"""One bank entry is one payment, whichever way it came in first: a payment
recorded by hand (its reference is the bank's id of the entry, as on the
statement) and the ERP's copy of it with that id in its bank_reference."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections.api import api_token_create
from ar_collections.models import Allocation, Invoice, Payment
from customers.models import TimelineEvent

HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def account(make_customer, make_invoice):
    customer = make_customer(account_number="C10020", currency="USD")
    make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="1500.00",
                 number="INV-1", currency="USD")
    return customer


@pytest.fixture
def erp(manager) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})


def state() -> tuple:
    return (
        sorted(Payment.objects.values_list("reference", "bank_reference", "amount")),
        sorted(Allocation.objects.values_list("invoice__number", "amount")),
        sorted(Invoice.objects.values_list("number", "open_amount")),
        TimelineEvent.objects.count(),
    )


def by_hand(client, account, reference: str):
    return client.post(reverse("collections:payment_record", args=[account.pk]), {
        "received_on": "2025-08-04", "currency": "USD", "amount": "1000.00", "method": "bank_transfer",
        "reference": reference}, headers=HTMX)


def by_api(erp, bank_reference: str):
    response = erp.post(reverse("api:payments"), json.dumps({"rows": [{
        "account_number": "C10020", "received_on": "2025-08-04", "currency": "USD", "amount": "1000.00",
        "reference": "INV-1", "bank_reference": bank_reference}]}), content_type="application/json")
    return response.status_code, response.json()


def test_the_erps_copy_of_a_payment_recorded_by_hand_is_refused_naming_it(client, manager, erp, account):
    client.force_login(manager)
    assert by_hand(client, account, "BANK-0815").status_code == 200
    assert Payment.objects.count() == 1
    before = state()

    status, body = by_api(erp, "BANK-0815")

    assert (status, body["problems"]) == (422, [{"row": 1, "messages": [
        "bank_reference BANK-0815 is recorded already, by hand, as USD 1,000.00 received 2025-08-04 on "
        "account C10020 with reference BANK-0815. One bank entry is one payment: correct the request, "
        "or the payment recorded"]}])
    assert state() == before


def test_a_payment_the_erp_recorded_is_refused_by_hand_naming_it(client, manager, erp, account):
    assert by_api(erp, "ab 12")[0] == 200
    client.force_login(manager)
    before = state()

    response = by_hand(client, account, "AB12")

    assert response.status_code == 422
    assert ("The payment with the bank’s id AB12 is already recorded for this account: USD 1,000.00 "
            "received on 4 Aug 2025, bank id ab 12.") in response.content.decode()
    assert state() == before
