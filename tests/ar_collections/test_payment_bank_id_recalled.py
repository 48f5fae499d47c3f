"""A transfer booked to the wrong account and recalled: once its payment is
reversed as recalled, the same bank entry imports onto the right account,
while a bank file sent again still records nothing twice — the entry onto the
account it was reversed on, or an entry reversed for another reason, is
refused saying it was reversed, when and why. By CSV file and by the API."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from ar_collections import workspace
from ar_collections.api import api_token_create
from ar_collections.imports import payments_import
from ar_collections.models import Allocation, Invoice, Payment, PaymentReversal, ReversalReason
from customers.models import TimelineEvent

pytestmark = pytest.mark.usefixtures("_frozen_today")
TODAY = dt.date(2025, 8, 5)
HEADER = "account_number,received_on,currency,amount,reference,method,invoices,bank_reference\n"


@pytest.fixture
def wrong(make_customer, make_invoice):
    """C1 Wrong Ltd, the account the transfer was booked to, with INV-W1."""
    customer = make_customer(account_number="C1", name="Wrong Ltd")
    make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00",
                 number="INV-W1")
    return customer


@pytest.fixture
def right(make_customer, make_invoice):
    """C2 Right GmbH, whose money it was, with INV-R1."""
    customer = make_customer(account_number="C2", name="Right GmbH")
    make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00",
                 number="INV-R1")
    return customer


def row(account: str, invoice: str, *, bank_reference="BANK-4000") -> str:
    return f"{account},2025-08-04,EUR,500.00,TRF 4000,bank_transfer,{invoice},{bank_reference}\n"


def by_file(manager, account: str, invoice: str, **kwargs):
    return payments_import(HEADER + row(account, invoice, **kwargs), actor=manager)


def by_api(manager, account: str, invoice: str, *, bank_reference="bank 4000") -> tuple[int, dict]:
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    body = {"rows": [{"account_number": account, "received_on": "2025-08-04", "currency": "EUR",
                      "amount": "500.00", "reference": "TRF 4000", "invoices": [invoice],
                      "bank_reference": bank_reference}]}
    response = client.post(reverse("api:payments"), json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


def state() -> tuple:
    return (
        sorted(Payment.objects.values_list("customer__account_number", "bank_reference")),
        sorted(Allocation.objects.values_list("invoice__number", "amount")),
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
        PaymentReversal.objects.count(),
        TimelineEvent.objects.count(),
    )


@pytest.fixture
def booked_wrong(manager, wrong, right) -> Payment:
    """The bank's entry BANK-4000, imported onto C1 and paying INV-W1."""
    report = by_file(manager, "C1", "INV-W1")
    assert report.ok and report.created == 1, report.errors
    return Payment.objects.get()


def reverse_as(payment, manager, reason, note=""):
    return workspace.payment_reverse(payment=payment, actor=manager, reason=reason, note=note, on=TODAY)


@pytest.mark.parametrize("way", ["file", "api"])
def test_an_entry_recalled_from_the_wrong_account_imports_onto_the_right_one(manager, booked_wrong, way):
    reverse_as(booked_wrong, manager, ReversalReason.RECALLED)

    if way == "file":
        report = by_file(manager, "C2", "INV-R1")
        assert report.ok and (report.created, report.already) == (1, 0), report.errors
    else:
        status, body = by_api(manager, "C2", "INV-R1")
        assert status == 200, body
        assert (body["recorded"], body["already_there"]) == (1, 0)

    # The reversed one keeps its record and its bank id; the new one pays the right invoice.
    assert sorted(Payment.objects.values_list("customer__account_number", "bank_reference")) == [
        ("C1", "BANK-4000"), ("C2", "BANK-4000" if way == "file" else "bank 4000")]
    assert sorted(Invoice.objects.values_list("number", "open_amount", "status")) == [
        ("INV-R1", Decimal("0.00"), "paid"), ("INV-W1", Decimal("500.00"), "open")]
    assert PaymentReversal.objects.get().payment == booked_wrong


@pytest.mark.parametrize("way", ["file", "api"])
def test_the_right_account_s_file_sent_again_records_nothing_twice(manager, booked_wrong, way):
    reverse_as(booked_wrong, manager, ReversalReason.RECALLED)
    assert by_file(manager, "C2", "INV-R1").created == 1
    before = state()

    if way == "file":
        report = by_file(manager, "C2", "INV-R1")
        assert report.ok and (report.created, report.already) == (0, 1), report.errors
    else:
        status, body = by_api(manager, "C2", "INV-R1")
        assert (status, body["recorded"], body["already_there"]) == (200, 0, 1), body

    assert state() == before


@pytest.mark.parametrize("way", ["file", "api"])
def test_the_entry_again_onto_the_account_it_was_recalled_from_is_refused_saying_so(
    manager, booked_wrong, way
):
    reverse_as(booked_wrong, manager, ReversalReason.RECALLED)
    before = state()

    said = ("bank_reference BANK-4000 was recorded on account C1 as EUR 500.00 received 2025-08-04 and "
            "reversed on 5 Aug 2025 (recalled, or booked to the wrong account): a reversed entry is not "
            "recorded again on the account it was reversed on")
    if way == "file":
        report = by_file(manager, "C1", "INV-W1")
        assert report.created == 0
        assert len(report.errors) == 1 and report.errors[0].startswith(f"line 2: {said}"), report.errors
    else:
        status, body = by_api(manager, "C1", "INV-W1", bank_reference="BANK-4000")
        assert status == 422, body
        assert body["problems"][0]["messages"][0].startswith(said), body

    assert state() == before


@pytest.mark.parametrize("way", ["file", "api"])
@pytest.mark.parametrize("account", ["C1", "C2"])
def test_an_entry_reversed_for_another_reason_is_refused_on_every_account(
    manager, booked_wrong, way, account
):
    reverse_as(booked_wrong, manager, ReversalReason.OTHER, note="MS03")
    before = state()

    said = ("bank_reference BANK-4000 was recorded on account C1 as EUR 500.00 received 2025-08-04 and "
            "reversed on 5 Aug 2025 (other: MS03)")
    invoice = "INV-W1" if account == "C1" else "INV-R1"
    if way == "file":
        report = by_file(manager, account, invoice)
        assert report.created == 0
        assert len(report.errors) == 1 and report.errors[0].startswith(f"line 2: {said}"), report.errors
    else:
        status, body = by_api(manager, account, invoice, bank_reference="BANK-4000")
        assert status == 422, body
        assert body["problems"][0]["messages"][0].startswith(said), body

    assert state() == before


def test_a_cheque_bounced_is_not_recorded_again_either(manager, booked_wrong):
    reverse_as(booked_wrong, manager, ReversalReason.BOUNCED_CHEQUE)

    report = by_file(manager, "C1", "INV-W1")

    assert report.created == 0
    assert "reversed on 5 Aug 2025 (cheque bounced)" in report.errors[0]


def test_the_database_still_holds_one_standing_payment_per_bank_entry(manager, booked_wrong, right):
    reverse_as(booked_wrong, manager, ReversalReason.RECALLED)
    Payment.objects.create(customer=right, received_on=TODAY, currency="EUR", amount=Decimal("500.00"),
                           reference="TRF 4000", bank_reference="BANK-4000")

    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(customer=right, received_on=TODAY, currency="EUR", amount=Decimal("1.00"),
                               reference="other", bank_reference="bank/4000")


def test_a_payment_bounced_keeps_its_bank_id_for_good(manager, booked_wrong, right):
    reverse_as(booked_wrong, manager, ReversalReason.BOUNCED_CHEQUE)

    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(customer=right, received_on=TODAY, currency="EUR", amount=Decimal("500.00"),
                               reference="TRF 4000", bank_reference="BANK-4000")


def test_the_erp_reverses_the_standing_payment_of_a_bank_id_recalled_once(manager, booked_wrong):
    reverse_as(booked_wrong, manager, ReversalReason.RECALLED)
    assert by_file(manager, "C2", "INV-R1").created == 1
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})

    response = client.post(reverse("api:payment_reversals"), json.dumps(
        {"bank_reference": "BANK-4000", "reason": "returned_direct_debit"}), content_type="application/json")

    assert response.status_code == 200, response.json()
    assert response.json()["reopened"] == ["INV-R1"]


def test_the_account_page_shows_the_recalled_payment_with_its_bank_id(client, manager, booked_wrong, wrong):
    reverse_as(booked_wrong, manager, ReversalReason.RECALLED)
    client.force_login(manager)

    html = client.get(reverse("customers:detail", args=[wrong.pk])).content.decode()

    assert "bank id BANK-4000" in html
    assert "Reversed on 5 Aug 2025 (recalled, or booked to the wrong account)" in html


@pytest.mark.parametrize(("reason", "note", "why"), [
    (ReversalReason.RECALLED, "", "recalled, or booked to the wrong account"),
    (ReversalReason.OTHER, "MS03", "other: MS03"),
])
def test_the_entry_typed_by_hand_on_the_account_it_was_reversed_on_is_refused_saying_so(
    client, manager, booked_wrong, wrong, reason, note, why
):
    """Typed by hand, its reference the bank's id on the statement, the entry
    is refused as the import refuses it: naming the payment, and when and why
    it was reversed, not only that it is recorded already."""
    reverse_as(booked_wrong, manager, reason, note=note)
    client.force_login(manager)
    before = state()

    response = client.post(reverse("collections:payment_record", args=[wrong.pk]), {
        "received_on": "2025-08-04", "currency": "EUR", "amount": "500.00", "method": "bank_transfer",
        "reference": "bank 4000"}, headers={"HX-Request": "true"})

    assert response.status_code == 422
    said = ("The payment with the bank’s id bank 4000 is already recorded for this account: EUR 500.00 "
            f"received on 4 Aug 2025, bank id BANK-4000, reversed on 5 Aug 2025 ({why}).")
    assert said in response.content.decode()
    assert state() == before
