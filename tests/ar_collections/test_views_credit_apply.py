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

from ar_collections import numbers, workspace
from ar_collections.models import (
    ActionStatus,
    Allocation,
    ChargeKind,
    CreditNote,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    Invoice,
    InvoiceStatus,
    LateCharge,
    Payment,
    PaymentBehaviour,
    PromiseStatus,
)
from customers.models import EventKind, TimelineEvent
from tests.ar_collections.conftest import frozen

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
    client, manager, customer, invoices, on_account, django_capture_on_commit_callbacks
):
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
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
    # The account's figures follow once it commits, as after a payment.
    behaviour = PaymentBehaviour.objects.get(customer=customer)
    assert (behaviour.computed_on, behaviour.open_amount) == (TODAY, Decimal("500.00"))  # INV-1; INV-3 is USD


def test_money_on_account_settling_an_overdue_invoice_says_how_late_it_was_paid(
    client, manager, customer, invoices, on_account
):
    """INV-1 fell due on 1 Jul; the money that pays it came on 10 Jul."""
    client.force_login(manager)

    client.post(apply_url(customer), {"credit": f"payment-{on_account.pk}", "invoices": [invoices[0].pk]})

    paid = TimelineEvent.objects.get(customer=customer, kind=EventKind.INVOICE_PAID)
    assert paid.summary == "Invoice INV-1 paid in full, 9 days late"
    assert paid.details == {"number": "INV-1", "days_late": 9}


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


# --- Late fees and interest: a credit pays them as a payment's money would ----------

CHARGED = dt.date(2025, 7, 20)  # the day the letter charged its fee and interest, after the money came in


@pytest.fixture
def charges(customer, invoices) -> dict[str, LateCharge]:
    """A letter of 20 Jul listing INV-1 and INV-2 charged a late fee of EUR 40.00
    and interest of EUR 4.50 on INV-2, none of it paid."""
    run = DunningRun.objects.create(run_date=CHARGED)
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=CHARGED)
    step = DunningStep.objects.get(policy__segment="systematic_late", position=3)
    letter = DunningAction.objects.create(run=run, cycle=cycle, customer=customer, step=step,
                                          status=ActionStatus.DONE, planned_on=CHARGED, pay_by=CHARGED)
    for invoice in invoices[:2]:
        DunningActionInvoice.objects.create(action=letter, invoice=invoice, open_amount=invoice.open_amount,
                                            currency="EUR")
    made = {
        "fee": LateCharge.objects.create(
            customer=customer, action=letter, kind=ChargeKind.LATE_FEE, currency="EUR",
            amount=Decimal("40.00"), open_amount=Decimal("40.00"), basis="step 3 of the ladder"),
        "interest": LateCharge.objects.create(
            customer=customer, action=letter, invoice=invoices[1], kind=ChargeKind.INTEREST, currency="EUR",
            amount=Decimal("4.50"), open_amount=Decimal("4.50"), basis="EUR 700.00 × 8% × 30/365"),
    }
    LateCharge.objects.update(created_at=dt.datetime.combine(CHARGED, dt.time(6), tzinfo=dt.UTC))
    return made


def charges_owed() -> dict[str, Decimal]:
    return {str(c.get_kind_display()): c.open_amount for c in LateCharge.objects.all()}


def charges_paid(credit) -> list[tuple[str, Decimal, dt.date]]:
    return sorted((c.charge.kind, c.amount, c.allocated_on)
                  for c in credit.allocations.filter(charge__isnull=False).select_related("charge"))


def kept_on_account(customer, amount: str) -> Payment:
    return workspace.payment_record(customer=customer, amount=Decimal(amount), currency="EUR",
                                    received_on=dt.date(2025, 7, 10), allocations=[], reference="BANK-7")


def test_with_none_ticked_it_pays_the_invoices_due_then_the_charges_then_those_not_yet_due(
    client, manager, customer, invoices, make_invoice, charges
):
    """The order money naming no invoice takes: what is overdue today first,
    so that no fee keeps an invoice overdue, then the fee and interest the
    letter asked for, then an invoice not due until the end of the month."""
    make_invoice(customer, issued=dt.date(2025, 8, 1), due=dt.date(2025, 8, 31), amount="200.00",
                 number="INV-4")
    money = kept_on_account(customer, "1300.00")
    # Received before the letter charged anything: recorded, it paid no charge.
    assert money.unallocated_amount() == Decimal("1300.00")
    client.force_login(manager)

    response = client.post(apply_url(customer), {"credit": f"payment-{money.pk}"}, follow=True)

    assert open_amounts() == {"INV-1": Decimal("0.00"), "INV-2": Decimal("0.00"), "INV-3": Decimal("300.00"),
                              "INV-4": Decimal("144.50")}
    assert charges_owed() == {"Late fee": Decimal("0.00"), "Interest": Decimal("0.00")}
    # Paid as of the day they were charged, the money having come in before.
    assert charges_paid(money) == [(ChargeKind.INTEREST, Decimal("4.50"), CHARGED),
                                   (ChargeKind.LATE_FEE, Decimal("40.00"), CHARGED)]
    assert money.unallocated_amount() == Decimal("0.00")
    assert ("EUR 1,255.50 set against INV-1, INV-2, INV-4; EUR 44.50 to late fees and interest."
            in response.content.decode())
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.PAYMENT_RECEIVED).first()
    assert event.summary == ("Payment BANK-7 of 10 Jul 2025 set against INV-1, INV-2, INV-4: "
                             "EUR 1,255.50; EUR 44.50 to late fees and interest")


def test_with_invoices_ticked_what_is_left_after_them_pays_the_charges_then_stays_on_account(
    client, manager, customer, invoices, charges, on_account
):
    client.force_login(manager)

    response = client.post(apply_url(customer), {"credit": f"payment-{on_account.pk}",
                                                 "invoices": [invoices[1].pk]}, headers=HTMX)

    assert open_amounts()["INV-2"] == Decimal("0.00")
    assert open_amounts()["INV-1"] == Decimal("500.00")
    assert charges_owed() == {"Late fee": Decimal("0.00"), "Interest": Decimal("0.00")}
    assert on_account.unallocated_amount() == Decimal("155.50")
    assert ("EUR 700.00 set against INV-2; EUR 44.50 to late fees and interest; EUR 155.50 stays on "
            "account." in response.content.decode())


@pytest.mark.parametrize("credit", ["payment", "note"])
def test_a_credit_pays_the_charges_left_once_every_invoice_is_paid(
    client, manager, customer, invoices, charges, credit
):
    """The worklist's "charges still owed with the invoices paid": the money
    the customer has on account settles them, in two goes of its amount."""
    for invoice in invoices:
        workspace.payment_record(customer=customer, amount=invoice.open_amount, currency=invoice.currency,
                                 received_on=dt.date(2025, 7, 15), reference=f"PAID-{invoice.number}",
                                 allocations=[(invoice, invoice.open_amount)])
    if credit == "payment":
        document = kept_on_account(customer, "100.00")
    else:
        document = CreditNote.objects.create(number="ERP-CN-8", customer=customer, currency="EUR",
                                             issued_on=dt.date(2025, 7, 10), amount=Decimal("100.00"),
                                             reason="Volume rebate")
    assert charges_owed() == {"Late fee": Decimal("40.00"), "Interest": Decimal("4.50")}
    client.force_login(manager)
    key = f"{credit}-{document.pk}"

    first = client.post(apply_url(customer), {"credit": key, "amount": "30.00"}, follow=True)
    second = client.post(apply_url(customer), {"credit": key, "amount": "14.50"}, follow=True)

    assert "EUR 30.00 to late fees and interest; EUR 70.00 stays on account." in first.content.decode()
    assert "EUR 14.50 to late fees and interest; EUR 55.50 stays on account." in second.content.decode()
    assert charges_owed() == {"Late fee": Decimal("0.00"), "Interest": Decimal("0.00")}
    # One allocation per charge, grown by the second go.
    assert charges_paid(document) == [(ChargeKind.INTEREST, Decimal("4.50"), CHARGED),
                                      (ChargeKind.LATE_FEE, Decimal("40.00"), CHARGED)]
    summary = TimelineEvent.objects.filter(customer=customer).first().summary
    name = "Payment BANK-7 of 10 Jul 2025" if credit == "payment" else "Credit note ERP-CN-8"
    assert summary == f"{name} set against late fees and interest: EUR 14.50; EUR 55.50 still on account"


def test_money_on_account_set_against_the_charges_later_was_on_account_until_that_day(
    manager, customer, invoices, charges
):
    """EUR 1,300 on account from 10 Jul; the fee and interest charged on 20 Jul;
    the customer says on 5 Aug what it was for. The money counts from 20 Jul
    for the charges, but 31 Jul's figures read it on account, as they did."""
    money = kept_on_account(customer, "1300.00")

    def on_account(day: dt.date) -> Decimal:
        return sum((m.total for m in numbers.on_account(numbers.Scope(), day=day)), Decimal("0.00"))

    assert on_account(dt.date(2025, 7, 31)) == Decimal("1300.00")

    workspace.credit_apply(customer=customer, actor=manager, credit=money, on=TODAY)

    assert on_account(dt.date(2025, 7, 31)) == Decimal("1300.00")
    assert on_account(TODAY) == Decimal("55.50")
    assert sorted(money.allocations.filter(charge__isnull=False).values_list("amount", "allocated_on",
                                                                              "applied_on")) == [
        (Decimal("4.50"), CHARGED, TODAY), (Decimal("40.00"), CHARGED, TODAY)]


@pytest.mark.parametrize("credit", ["payment", "note"])
def test_a_credit_set_against_a_charge_on_two_days_keeps_each_days_part(
    manager, customer, invoices, charges, credit
):
    """EUR 30.00 of the credit on the late fee on 5 Aug, EUR 14.50 more on
    6 Aug (10.00 to the fee, 4.50 to the interest): 5 Aug's figures read the
    14.50 still on account."""
    for invoice in invoices:
        workspace.payment_record(customer=customer, amount=invoice.open_amount, currency=invoice.currency,
                                 received_on=dt.date(2025, 7, 15), reference=f"PAID-{invoice.number}",
                                 allocations=[(invoice, invoice.open_amount)])
    if credit == "payment":
        document = kept_on_account(customer, "100.00")
    else:
        document = CreditNote.objects.create(number="ERP-CN-8", customer=customer, currency="EUR",
                                             issued_on=dt.date(2025, 7, 10), amount=Decimal("100.00"),
                                             reason="Volume rebate")
    later = TODAY + dt.timedelta(days=1)

    workspace.credit_apply(customer=customer, actor=manager, credit=document, amount=Decimal("30.00"),
                           on=TODAY)
    with frozen(later):
        workspace.credit_apply(customer=customer, actor=manager, credit=document, amount=Decimal("14.50"),
                               on=later)

    assert charges_owed() == {"Late fee": Decimal("0.00"), "Interest": Decimal("0.00")}
    assert sorted(document.allocations.values_list("charge__kind", "amount", "allocated_on",
                                                   "applied_on")) == [
        (ChargeKind.INTEREST, Decimal("4.50"), CHARGED, later),
        (ChargeKind.LATE_FEE, Decimal("10.00"), CHARGED, later),
        (ChargeKind.LATE_FEE, Decimal("30.00"), CHARGED, TODAY),
    ]
    with frozen(later):
        assert [m.total for m in numbers.on_account(numbers.Scope(), day=TODAY)] == [Decimal("70.00")]
        assert [m.total for m in numbers.on_account(numbers.Scope(), day=later)] == [Decimal("55.50")]


def test_the_interest_on_a_disputed_invoice_stays_owed_as_the_invoice_does(
    client, manager, customer, invoices, charges, on_account
):
    workspace.dispute_open(customer=customer, actor=manager, invoice=invoices[1], reason="quantity",
                           description="Two pallets short", on=TODAY)
    client.force_login(manager)

    client.post(apply_url(customer), {"credit": f"payment-{on_account.pk}"})

    assert open_amounts() == {"INV-1": Decimal("0.00"), "INV-2": Decimal("700.00"),
                              "INV-3": Decimal("300.00")}
    assert charges_owed() == {"Late fee": Decimal("0.00"), "Interest": Decimal("4.50")}
    assert on_account.unallocated_amount() == Decimal("360.00")
