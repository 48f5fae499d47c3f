"""A payment on the timeline says how it came and the reference it came with,
in the same words whether a collector typed it in or the bank's file brought
it: the collector matching it against a statement needs both."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.imports import payments_import
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoice(customer, make_invoice):
    return make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="5000.00",
                        number="INV-2026-002644", currency="GBP")


def summary() -> str:
    return TimelineEvent.objects.get(kind=EventKind.PAYMENT_RECEIVED).summary


def test_a_payment_recorded_by_hand_says_its_method_and_the_reference_typed(
    client, manager, customer, invoice
):
    client.force_login(manager)

    response = client.post(reverse("collections:payment_record", args=[customer.pk]), {
        "received_on": "2025-08-04", "currency": "GBP", "amount": "5000.00", "method": "cheque",
        "reference": "CHQ 004711", "invoices": [invoice.pk],
    })

    assert response.status_code == 302

    assert summary() == ("Payment of GBP 5,000.00 received on 4 Aug 2025 (cheque, reference CHQ 004711), "
                         "applied to INV-2026-002644")


def test_an_imported_payment_reads_as_one_recorded_by_hand(customer, invoice):
    report = payments_import("account_number,received_on,currency,amount,reference,method,invoices\n"
                             f"{customer.account_number},2025-08-04,GBP,5000.00,BACS-0815,,INV-2026-002644\n")

    assert report.ok, report.errors
    assert summary() == ("Payment of GBP 5,000.00 received on 4 Aug 2025 (bank transfer, "
                         "reference BACS-0815), "
                         "applied to INV-2026-002644")


def test_without_a_reference_it_says_the_method_alone(customer, invoice):
    workspace.payment_record(customer=customer, amount=Decimal("1200.00"), currency="GBP", received_on=TODAY,
                             allocations=[], method="cash")

    assert summary() == "Payment of GBP 1,200.00 received on 5 Aug 2025 (cash); GBP 1,200.00 kept on account"


def test_a_payment_received_on_the_day_it_is_recorded_names_that_day_too(customer, invoice):
    """Read next week, "received" without a day would leave the reader to
    guess it from when the entry was written: every payment names its day."""
    workspace.payment_record(customer=customer, amount=Decimal("1241.31"), currency="GBP", received_on=TODAY,
                             allocations=[], method="bank_transfer", reference="BANK-1")

    assert summary().startswith(
        "Payment of GBP 1,241.31 received on 5 Aug 2025 (bank transfer, reference BANK-1)")


def test_a_payment_with_the_bank_s_id_says_it_on_the_timeline_and_so_does_its_reversal(
    client, manager, customer, invoice
):
    """The Payments card shows the bank's id of the entry; the timeline's
    entries of that payment, filtered to payments too, show it as well: the
    collector finds the entry on the statement by it."""
    report = payments_import(
        "account_number,received_on,currency,amount,reference,method,invoices,bank_reference\n"
        f"{customer.account_number},2025-08-04,GBP,5000.00,BACS-0815,,INV-2026-002644,2025 0804 0001\n")
    assert report.ok, report.errors
    assert summary() == ("Payment of GBP 5,000.00 received on 4 Aug 2025 (bank transfer, "
                         "reference BACS-0815, bank id 2025 0804 0001), applied to INV-2026-002644")
    workspace.payment_reverse(payment=customer.payments.get(), actor=manager, reason="bounced_cheque",
                              on=TODAY)
    client.force_login(manager)

    page = client.get(reverse("customers:timeline", args=[customer.pk]), {"kind": EventKind.PAYMENT_RECEIVED},
                      headers={"HX-Request": "true"})

    assert page.content.decode().count("reference BACS-0815, bank id 2025 0804 0001)") == 2
