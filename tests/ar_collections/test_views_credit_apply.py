"""Setting a credit against invoices: money kept on account, or a credit note
not yet set against an invoice, applied once the customer says what it was
for (a remittance advice arriving after the money, a call). Counted from the
day the money came in, so the payer is not made late by a late cash
application; what it refuses and who may."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    Allocation,
    CreditNote,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentBehaviour,
    PromiseStatus,
)
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoices(customer, make_invoice) -> list[Invoice]:
    """INV-1 EUR 500.00 due 1 Jul, INV-2 EUR 700.00 due 15 Jul, INV-3 USD 300.00 due 20 Jul."""
    return [
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number,
                     currency=currency)
        for number, due, amount, currency in [
            ("INV-1", dt.date(2025, 7, 1), "500.00", "EUR"),
            ("INV-2", dt.date(2025, 7, 15), "700.00", "EUR"),
            ("INV-3", dt.date(2025, 7, 20), "300.00", "USD"),
        ]
    ]


@pytest.fixture
def on_account(customer, invoices, manager) -> Payment:
    """EUR 900.00 received on 10 Jul naming no invoice we could match, kept on account."""
    return workspace.payment_record(customer=customer, actor=manager, amount=Decimal("900.00"),
                                    currency="EUR", received_on=dt.date(2025, 7, 10), allocations=[],
                                    reference="BANK-9")


def apply_url(customer) -> str:
    return reverse("collections:credit_apply", args=[customer.pk])


def open_amounts() -> dict[str, Decimal]:
    return dict(Invoice.objects.values_list("number", "open_amount"))


def state() -> tuple:
    return (sorted(Allocation.objects.values_list("invoice__number", "amount", "allocated_on")),
            sorted(open_amounts().items()), TimelineEvent.objects.count())


def test_money_on_account_is_set_against_the_invoice_the_customer_names_as_of_the_day_it_came_in(
    client, manager, customer, invoices, on_account
):
    client.force_login(manager)

    response = client.post(apply_url(customer), {"credit": f"payment-{on_account.pk}",
                                                 "invoices": [invoices[1].pk]}, follow=True)

    assert open_amounts() == {"INV-1": Decimal("500.00"), "INV-2": Decimal("0.00"),
                              "INV-3": Decimal("300.00")}
    paid = Invoice.objects.get(number="INV-2")
    # Paid when the money came, before its due date: not late because we applied it late.
    assert (paid.status, paid.settled_on) == (InvoiceStatus.PAID, dt.date(2025, 7, 10))
    assert list(on_account.allocations.values_list("invoice__number", "amount", "allocated_on")) == [
        ("INV-2", Decimal("700.00"), dt.date(2025, 7, 10))
    ]
    assert on_account.unallocated_amount() == Decimal("200.00")
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.PAYMENT_RECEIVED).first()
    assert event.summary == ("Payment BANK-9 of 10 Jul 2025 set against INV-2: EUR 700.00; "
                             "EUR 200.00 still on account")
    assert (event.actor, event.subject) == (manager, on_account)
    assert TimelineEvent.objects.filter(customer=customer, kind=EventKind.INVOICE_PAID).count() == 1
    assert "EUR 700.00 set against INV-2; EUR 200.00 stays on account." in response.content.decode()
    # The account's figures follow at once, as after a payment.
    behaviour = PaymentBehaviour.objects.get(customer=customer)
    assert (behaviour.computed_on, behaviour.open_amount) == (TODAY, Decimal("500.00"))  # INV-1; INV-3 is USD


def test_with_none_ticked_it_goes_to_the_oldest_open_invoices_but_a_disputed_one(
    client, manager, customer, invoices, on_account
):
    workspace.dispute_open(customer=customer, actor=manager, invoice=invoices[0], reason="quantity",
                           description="Two pallets short", on=TODAY)
    client.force_login(manager)

    client.post(apply_url(customer), {"credit": f"payment-{on_account.pk}", "amount": "300.00"})

    assert open_amounts() == {"INV-1": Decimal("500.00"), "INV-2": Decimal("400.00"),
                              "INV-3": Decimal("300.00")}
    assert on_account.unallocated_amount() == Decimal("600.00")


def test_a_credit_note_on_account_comes_off_the_invoice_and_keeps_the_promise_on_it(
    client, manager, customer, invoices
):
    note = CreditNote.objects.create(number="ERP-CN-5", customer=customer, issued_on=dt.date(2025, 8, 1),
                                     currency="EUR", amount=Decimal("500.00"), reason="Volume rebate")
    promise = workspace.promise_record(customer=customer, actor=manager, contact=None,
                                       amount=Decimal("500.00"), promised_on=dt.date(2025, 8, 8),
                                       invoices=[invoices[0]], on=TODAY)
    client.force_login(manager)

    client.post(apply_url(customer), {"credit": f"note-{note.pk}"}, headers=HTMX)

    assert open_amounts()["INV-1"] == Decimal("0.00")
    assert Invoice.objects.get(number="INV-1").settled_on == dt.date(2025, 8, 1)
    assert TimelineEvent.objects.filter(customer=customer, kind=EventKind.CREDIT_NOTE).first().summary == (
        "Credit note ERP-CN-5 set against INV-1: EUR 500.00"
    )
    promise.refresh_from_db()
    assert promise.status == PromiseStatus.KEPT


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"amount": "900.01"}, "amount", "Only EUR 900.00 of it is left to apply."),
    ({"invoices": "INV-3"}, "invoices",
     "Not in EUR: INV-3. A credit is set against invoices in its own currency."),
    ({"credit": "payment-0"}, "credit", "Nothing of that credit is left to apply (set against invoices "
                                        "meanwhile): choose from those listed now."),
    ({"amount": "10.001"}, "amount", "Ensure that there are no more than 2 decimal places."),
])
def test_a_wrong_application_is_refused_with_a_clear_message_and_changes_nothing(
    client, manager, customer, invoices, on_account, fields, field, message
):
    client.force_login(manager)
    data = {"credit": f"payment-{on_account.pk}", **fields}
    if data.get("invoices") == "INV-3":
        data["invoices"] = [invoices[2].pk]
    before = state()

    response = client.post(apply_url(customer), data, headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors[field] == [message]
    assert state() == before


def test_a_credit_note_is_not_set_against_a_disputed_invoice(client, manager, customer, invoices):
    """Its credit comes by resolving the dispute, which ends it too."""
    note = CreditNote.objects.create(number="ERP-CN-6", customer=customer, issued_on=dt.date(2025, 8, 1),
                                     currency="EUR", amount=Decimal("100.00"), reason="Goodwill")
    workspace.dispute_open(customer=customer, actor=manager, invoice=invoices[0], reason="price",
                           description="Charged the list price", on=TODAY)
    client.force_login(manager)
    before = state()

    response = client.post(apply_url(customer), {"credit": f"note-{note.pk}", "invoices": [invoices[0].pk]})

    assert response.status_code == 422
    assert response.context["form"].errors["invoices"] == [
        "INV-1 has an open dispute: a credit on it comes by resolving the dispute, so that it ends too."
    ]
    assert state() == before


def test_two_applications_of_the_same_money_cannot_spend_it_twice(manager, customer, invoices, on_account):
    workspace.credit_apply(customer=customer, actor=manager, credit=on_account, invoices=[invoices[1]])

    with pytest.raises(ValidationError, match=r"Only EUR 200\.00 of it is left to apply\."):
        workspace.credit_apply(customer=customer, actor=manager, credit=on_account, invoices=[invoices[0]],
                               amount=Decimal("500.00"))
    assert on_account.unallocated_amount() == Decimal("200.00")
    workspace.credit_apply(customer=customer, actor=manager, credit=on_account, invoices=[invoices[0]])
    with pytest.raises(ValidationError, match="Nothing of that credit is left to apply"):
        workspace.credit_apply(customer=customer, actor=manager, credit=on_account)


def test_the_account_page_offers_managers_alone_to_set_credits_against_invoices(
    client, manager, collector, customer, invoices, on_account
):
    page = reverse("customers:detail", args=[customer.pk])
    client.force_login(manager)
    assert apply_url(customer) in client.get(page).content.decode()
    form = client.get(apply_url(customer)).content.decode()
    assert "Payment BANK-9 received 10 Jul 2025: EUR 900.00 left" in form

    client.force_login(collector)
    assert apply_url(customer) not in client.get(page).content.decode()
    assert client.post(apply_url(customer), {"credit": f"payment-{on_account.pk}"}).status_code == 403
    assert on_account.unallocated_amount() == Decimal("900.00")
