"""One invoice per number in any capitals, and no number with a character no
one sees: "w-1" beside W-1, or "W 71" with a zero-width space after it, is the
same invoice billed twice."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from ar_collections.api import api_token_create
from ar_collections.imports import invoices_import
from ar_collections.models import CreditNote, Invoice
from tests.ar_collections.test_admin_invoices import change_form
from tests.ar_collections.test_migrations import _migrate, _migrate_to_latest

HTMX = {"HX-Request": "true"}
ZWSP = "\u200b"


@pytest.fixture
def recorded(customer, make_invoice) -> Invoice:
    return make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00",
                        number="W-1")


def numbers() -> list[str]:
    return sorted(Invoice.objects.values_list("number", flat=True))


def csv(customer, *numbers: str) -> str:
    return "number,account_number,issue_date,due_date,currency,total_amount\n" + "".join(
        f"{n},{customer.account_number},2025-07-01,2025-07-31,EUR,100.00\n" for n in numbers)


@pytest.mark.usefixtures("_frozen_today")
def test_a_file_refuses_an_invoice_number_recorded_in_other_capitals(customer, recorded, manager):
    report = invoices_import(csv(customer, "w-1"), actor=manager)

    assert not report.ok
    assert report.errors == [f"line 2: invoice W-1 is recorded already, on account "
                             f"{customer.account_number}: w-1 is the same number in other capitals"]
    assert numbers() == ["W-1"]


@pytest.mark.usefixtures("_frozen_today")
def test_a_file_giving_one_number_twice_in_other_capitals_names_the_second_line(customer, manager):
    report = invoices_import(csv(customer, "W-2", "w-2"), actor=manager)

    assert report.errors == ["line 3: invoice w-2 is on line 2 already: give each invoice once"]
    assert numbers() == []


@pytest.mark.usefixtures("_frozen_today")
def test_the_api_refuses_a_number_with_a_character_no_one_sees_and_in_other_capitals(
    customer, recorded, manager
):
    erp = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    rows = [{"number": number, "account_number": customer.account_number, "issue_date": "2025-07-01",
             "due_date": "2025-07-31", "currency": "EUR", "total_amount": "100.00"}
            for number in (f"W 71{ZWSP}", "w-1")]

    response = erp.post(reverse("api:invoices"), json.dumps({"rows": rows}), content_type="application/json")

    assert response.status_code == 422
    assert response.json()["problems"] == [
        {"row": 1, "messages": ["number 'W 71\\u200b' holds a character no one sees (U+200B): give the "
                                "number as on the invoice"]},
        {"row": 2, "messages": [f"invoice W-1 is recorded already, on account {customer.account_number}: "
                                "w-1 is the same number in other capitals"]}]
    assert numbers() == ["W-1"]


@pytest.mark.usefixtures("_frozen_today")
@pytest.mark.parametrize("number", ["w-1", f"W-2{ZWSP}"])
def test_the_admin_refuses_a_number_in_other_capitals_or_with_a_character_no_one_sees(
    client, recorded, number
):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))

    response = client.post(reverse("admin:collections_invoice_add"), change_form(recorded, number=number))

    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors.get("number", [])
                      + response.context["adminform"].form.non_field_errors())
    assert errors in ("An invoice with this number in other capitals is recorded already.",
                      "Number 'W-2\\u200b' holds a character no one sees (U+200B): give the number as on "
                      "the invoice.")
    assert numbers() == ["W-1"]


@pytest.mark.usefixtures("_frozen_today")
def test_a_credit_note_number_with_a_character_no_one_sees_is_refused(client, manager, customer, recorded):
    client.force_login(manager)

    response = client.post(reverse("collections:credit_note_record", args=[customer.pk]), {
        "invoice": recorded.pk, "amount": "100.00", "issued_on": "2025-08-04", "number": f"CN-7{ZWSP}",
        "reason": "Two crates returned"}, headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["number"] == [
        "The number 'CN-7\\u200b' holds a character no one sees (U+200B): type it as on the ERP's "
        "credit note."]
    assert not CreditNote.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_invoices_sharing_a_number_in_other_capitals_stop_the_upgrade_named_and_kept_as_they_were(
    customer, make_customer, make_invoice
):
    beta = make_customer(name="Beta Bau")
    # Recorded with today's columns, before the schema goes back (an invoice
    # written at 0053 by today's model names columns that came later).
    first, second = (make_invoice(account, issued=dt.date(2025, 6, 1), amount="100.00", number=number)
                     for account, number in ((customer, "W-1"), (beta, "W-0")))
    try:
        _migrate(("collections", "0053_payment_bank_key_punctuation"))
        # As an earlier version let them be recorded: one ERP number twice.
        Invoice.objects.filter(pk=second.pk).update(number="w-1")
        with pytest.raises(CommandError) as refused:
            _migrate(("collections", "0055_invoice_number_once"))
        assert str(refused.value) == (
            "Invoices share a number in other capitals, which is one ERP invoice's: one invoice each. "
            "Nothing was changed. Keep the invoice that is the ERP's and correct or remove the others, "
            "then migrate again:\n"
            f"  number W-1: invoice {first.pk} 'W-1' on account {customer.account_number}, EUR 100.00 issued "
            f"2025-06-01; invoice {second.pk} 'w-1' on account {beta.account_number}, EUR 100.00 issued "
            "2025-06-01")
        assert numbers() == ["W-1", "w-1"]
        Invoice.objects.filter(pk=second.pk).update(number="W-2")
        _migrate(("collections", "0055_invoice_number_once"))
        with pytest.raises(IntegrityError), transaction.atomic():
            Invoice.objects.filter(pk=second.pk).update(number="w-1")
    finally:
        _migrate_to_latest()
    assert Invoice.objects.get(pk=first.pk).total_amount == Decimal("100.00")
