"""The late fees and interest charged for being late with an invoice the ERP
then cancels: an invoice raised in error never was owed, so neither was what
was charged for paying it late. They are cancelled with it, on its timeline
entry; a charge of it the customer paid refuses the cancellation, as money
set against the invoice itself does."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ar_collections import workspace
from ar_collections.api import api_token_create
from ar_collections.models import (
    ActionStatus,
    Channel,
    ChargeKind,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    Invoice,
    InvoiceStatus,
    LateCharge,
)
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoices(customer, make_invoice) -> list[Invoice]:
    """INV-1 EUR 500.00 due 1 Jul, INV-2 EUR 700.00 due 15 Jul."""
    return [make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number)
            for number, due, amount in [("INV-1", dt.date(2025, 7, 1), "500.00"),
                                        ("INV-2", dt.date(2025, 7, 15), "700.00")]]


def notices(customer, *listed: list[Invoice]) -> list[DunningAction]:
    """E-mailed notices of one cycle, the first listing listed[0], the next listed[1]..."""
    run = DunningRun.objects.create(run_date=dt.date(2025, 7, 20))
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=dt.date(2025, 7, 20))
    steps = DunningStep.objects.filter(policy__segment="prompt").order_by("position")
    made = []
    for step, invoices, day in zip(steps, listed, [dt.date(2025, 7, 20), dt.date(2025, 7, 30)], strict=False):
        notice = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=ActionStatus.DONE,
            channel=Channel.EMAIL, planned_on=day, pay_by=day + dt.timedelta(days=7), done_at=timezone.now(),
        )
        for invoice in invoices:
            DunningActionInvoice.objects.create(action=notice, invoice=invoice, currency="EUR",
                                                open_amount=invoice.open_amount)
        made.append(notice)
    return made


def charge(notice, kind, amount, *, invoice=None) -> LateCharge:
    return LateCharge.objects.create(customer=notice.customer, action=notice, invoice=invoice, kind=kind,
                                     currency="EUR", amount=Decimal(amount), open_amount=Decimal(amount),
                                     basis="as charged")


@pytest.fixture
def charges(customer, invoices) -> dict[str, LateCharge]:
    """The first notice listed INV-1 and INV-2, charging a fee of EUR 40.00
    and interest on each; the second listed INV-1 alone, charging a fee of
    EUR 25.00 and EUR 1.50 of interest on it."""
    first, second = notices(customer, invoices, invoices[:1])
    return {
        "fee on both": charge(first, ChargeKind.LATE_FEE, "40.00"),
        "interest on INV-1": charge(first, ChargeKind.INTEREST, "3.00", invoice=invoices[0]),
        "interest on INV-2": charge(first, ChargeKind.INTEREST, "5.00", invoice=invoices[1]),
        "fee on INV-1": charge(second, ChargeKind.LATE_FEE, "25.00"),
        "interest again on INV-1": charge(second, ChargeKind.INTEREST, "1.50", invoice=invoices[0]),
    }


def owed(charges) -> dict[str, Decimal]:
    standing = dict(LateCharge.objects.standing().values_list("pk", "open_amount"))
    return {name: standing[c.pk] for name, c in charges.items() if c.pk in standing}


def cancel(invoice, manager):
    return workspace.invoice_cancel(invoice=invoice, actor=manager, on=dt.date(2025, 8, 4),
                                    reason="Raised in error, replaced by INV-9")


def test_cancelling_an_invoice_cancels_its_interest_and_the_fees_of_notices_that_asked_only_for_it(
    manager, customer, invoices, charges
):
    cancel(invoices[0], manager)

    # The notice that asked for INV-2 as well keeps its fee: the customer still owes INV-2.
    assert owed(charges) == {"fee on both": Decimal("40.00"), "interest on INV-2": Decimal("5.00")}
    names = ["interest on INV-1", "fee on INV-1", "interest again on INV-1"]
    gone = LateCharge.objects.filter(pk__in=[charges[name].pk for name in names])
    why = "Invoice INV-1 cancelled in the ERP on 4 Aug 2025: Raised in error, replaced by INV-9"
    assert {(c.cancelled_by, c.cancel_reason, c.waived_at) for c in gone} == {(manager, why, None)}
    # Said on the cancellation's own entry, with the amounts.
    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.INVOICE_CHANGED)
    assert event.summary == ("Invoice INV-1 for EUR 500.00 cancelled in the ERP on 4 Aug 2025 by maria, and "
                             "EUR 29.50 of late fees and interest on it: Raised in error, replaced by INV-9")
    assert sorted((c["kind"], c["amount"]) for c in event.details["cancelled_charges"]) == [
        ("interest", "1.50"), ("interest", "3.00"), ("late_fee", "25.00")]


def test_the_fee_of_a_notice_goes_with_the_last_of_its_invoices_cancelled(
    manager, customer, invoices, charges
):
    cancel(invoices[0], manager)
    cancel(invoices[1], manager)

    assert owed(charges) == {}
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.INVOICE_CHANGED).latest("pk")
    assert ", and EUR 45.00 of late fees and interest on it:" in event.summary


def write_off(invoice, manager):
    return workspace.invoice_write_off(customer=invoice.customer, actor=manager, invoice=invoice,
                                       reason="Customer insolvent", on=dt.date(2025, 8, 4))


def test_the_fee_of_a_notice_goes_with_its_last_invoice_cancelled_when_the_others_were_written_off(
    manager, customer, invoices, charges
):
    """Nothing the notice asked for is owed any more: INV-1 was given up as
    bad debt, INV-2 never was owed."""
    write_off(invoices[0], manager)
    assert owed(charges) == {"fee on both": Decimal("40.00"), "interest on INV-2": Decimal("5.00")}

    cancel(invoices[1], manager)

    assert owed(charges) == {}
    fee = LateCharge.objects.get(pk=charges["fee on both"].pk)
    assert (fee.cancelled_by, fee.waived_at) == (manager, None)
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.INVOICE_CHANGED).latest("pk")
    assert ", and EUR 45.00 of late fees and interest on it:" in event.summary


def test_the_fee_of_a_notice_goes_with_its_last_invoice_written_off_when_the_others_were_cancelled(
    manager, customer, invoices, charges
):
    cancel(invoices[1], manager)
    assert owed(charges)["fee on both"] == Decimal("40.00")

    write_off(invoices[0], manager)

    assert owed(charges) == {}
    fee = LateCharge.objects.get(pk=charges["fee on both"].pk)
    assert (fee.waived_by, fee.cancelled_at) == (manager, None)


def test_a_fee_paid_in_part_of_a_notice_whose_other_invoices_were_written_off_refuses_the_cancellation(
    manager, customer, invoices, charges
):
    write_off(invoices[0], manager)
    # Money naming no invoice pays the charges, oldest first: the fee on both.
    workspace.payment_record(customer=customer, amount=Decimal("1.00"), currency="EUR", received_on=TODAY,
                             allocations=[], reference="B-6")

    with pytest.raises(ValidationError, match="Invoice INV-2 has late fees or interest charged on it of "
                                              "which the customer paid EUR 1"):
        cancel(invoices[1], manager)

    assert Invoice.objects.get(number="INV-2").status == InvoiceStatus.OPEN
    assert owed(charges) == {"fee on both": Decimal("39.00"), "interest on INV-2": Decimal("5.00")}


def test_a_charge_waived_already_stays_waived(manager, customer, invoices, charges):
    workspace.charge_waive(charge=charges["fee on INV-1"], manager=manager, note="Goodwill")

    cancel(invoices[0], manager)

    fee = LateCharge.objects.get(pk=charges["fee on INV-1"].pk)
    assert (fee.waived_by, fee.cancelled_at) == (manager, None)
    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.INVOICE_CHANGED)
    assert ", and EUR 4.50 of interest on it:" in event.summary


def test_an_invoice_whose_interest_the_customer_paid_in_part_is_not_cancelled(manager, customer, invoices):
    [notice] = notices(customer, invoices[:1])
    interest = charge(notice, ChargeKind.INTEREST, "1.50", invoice=invoices[0])
    fee = charge(notice, ChargeKind.LATE_FEE, "25.00")
    # Money naming no invoice pays the charges, oldest first.
    workspace.payment_record(customer=customer, amount=Decimal("1.00"), currency="EUR", received_on=TODAY,
                             allocations=[], reference="B-7")
    before = (sorted(LateCharge.objects.values_list("pk", "open_amount", "cancelled_at")),
              sorted(Invoice.objects.values_list("number", "status")), TimelineEvent.objects.count())

    assert workspace.invoice_cancel_refusal(invoices[0]) == (
        "invoice INV-1 has late fees or interest charged on it of which the customer paid EUR 1.00: money "
        "set against what was charged for it is not cancelled with it; issue a credit note for it instead")
    with pytest.raises(ValidationError, match="Invoice INV-1 has late fees or interest charged on it of"):
        cancel(invoices[0], manager)

    assert (sorted(LateCharge.objects.values_list("pk", "open_amount", "cancelled_at")),
            sorted(Invoice.objects.values_list("number", "status")), TimelineEvent.objects.count()) == before
    assert LateCharge.objects.get(pk=interest.pk).open_amount == Decimal("0.50")
    assert LateCharge.objects.get(pk=fee.pk).open_amount == Decimal("25.00")


def test_a_paid_fee_of_a_notice_that_also_asked_for_another_invoice_does_not_refuse_it(
    manager, customer, invoices
):
    """That fee stays owed (the customer was late with INV-2 too): its being paid takes nothing back."""
    [notice] = notices(customer, invoices)
    charge(notice, ChargeKind.LATE_FEE, "40.00")
    workspace.payment_record(customer=customer, amount=Decimal("40.00"), currency="EUR", received_on=TODAY,
                             allocations=[], reference="B-8")

    cancel(invoices[0], manager)

    assert Invoice.objects.get(number="INV-1").status == InvoiceStatus.CANCELLED


def test_the_erp_is_told_why_when_a_charge_of_the_invoice_was_paid(manager, customer, invoices):
    [notice] = notices(customer, invoices[:1])
    charge(notice, ChargeKind.LATE_FEE, "25.00")
    workspace.payment_record(customer=customer, amount=Decimal("25.00"), currency="EUR", received_on=TODAY,
                             allocations=[], reference="B-9")
    erp = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    row = {"number": "INV-1", "account_number": customer.account_number, "issue_date": "2025-06-01",
           "due_date": "2025-07-01", "currency": "EUR", "total_amount": "500.00",
           "cancelled_on": "2025-08-04", "cancel_reason": "Raised in error"}

    response = erp.post(reverse("api:invoices"), json.dumps({"rows": [row]}), content_type="application/json")

    assert response.status_code == 422
    assert response.json()["problems"] == [{"row": 1, "messages": [
        "invoice INV-1 has late fees or interest charged on it of which the customer paid EUR 25.00: money "
        "set against what was charged for it is not cancelled with it; issue a credit note for it instead"]}]
    assert Invoice.objects.get(number="INV-1").status == InvoiceStatus.OPEN
