"""Amounts typed into the account page's forms are money as people write it:
"1e3" is not read as EUR 1,000.00 (nor "1e2" in a schedule as EUR 100.00)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import Dispute, Instalment, Payment
from customers.models import TimelineEvent

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
REFUSED = "Write the amount in digits with a point for the cents, e.g. 1000.00: “1e3” is not written so."
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoice(customer, make_contact, make_invoice):
    make_contact(customer, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    return make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="2308.88",
                        number="INV-1")


def url(name: str, customer, *args) -> str:
    return reverse(f"collections:{name}", args=[customer.pk, *args])


def test_a_disputed_amount_in_scientific_notation_is_refused_and_nothing_is_disputed(
    client, collector, customer, invoice
):
    client.force_login(collector)
    events = TimelineEvent.objects.count()

    response = client.post(url("dispute_open", customer), {
        "invoice": invoice.pk, "amount": "1e3", "reason": "price", "description": "Quoted less",
        "department": ""}, headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["amount"] == [REFUSED]
    assert not Dispute.objects.exists() and TimelineEvent.objects.count() == events


def test_a_payment_in_scientific_notation_is_refused_and_nothing_is_paid(client, manager, customer, invoice):
    client.force_login(manager)

    response = client.post(url("payment_record", customer), {
        "received_on": "2025-08-04", "currency": "EUR", "amount": "1e3", "method": "bank_transfer",
        "reference": "BANK-1", "invoices": [invoice.pk]}, headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["amount"] == [REFUSED]
    assert not Payment.objects.exists()


def test_a_new_schedule_with_an_amount_in_scientific_notation_is_refused_with_its_line(
    client, manager, customer, invoice
):
    plan = workspace.plan_propose(
        customer=customer, actor=manager, invoices=[invoice], on=TODAY,
        instalments=[(dt.date(2025, 8, 15), Decimal("1154.44")), (dt.date(2025, 9, 15), Decimal("1154.44"))])
    client.force_login(manager)
    before = sorted(Instalment.objects.values_list("due_on", "amount"))
    action_url = url("plan_amend", customer, plan.pk)
    token = client.get(action_url).context["form"]["submission"].value()

    response = client.post(action_url, {
        "instalments": "2025-08-20 1e2\n2025-09-20 2208.88", "note": "Asked for time", "submission": token,
    }, headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["instalments"] == [
        "Line 1: write the amount in digits with a point for the cents, e.g. 1000.00: “1e2” is not "
        "written so."]
    assert sorted(Instalment.objects.values_list("due_on", "amount")) == before
