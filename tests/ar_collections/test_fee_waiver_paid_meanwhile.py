"""A fee waiver a manager approves after the customer paid the fee, in full
or in part: it waives what is left, and says what was paid and when."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    ActionStatus,
    ChargeKind,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    ExceptionKind,
    ExceptionStatus,
    LateCharge,
    WorkItem,
    WorkKind,
)
from customers.models import TimelineEvent

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoice(customer, make_invoice):
    return make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00",
                        number="INV-1001")


@pytest.fixture
def fee(customer, invoice) -> LateCharge:
    """A letter asking for INV-1001 charged a late fee of EUR 40.00."""
    run = DunningRun.objects.create(run_date=TODAY)
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=TODAY)
    step = DunningStep.objects.get(policy__segment="systematic_late", position=3)
    letter = DunningAction.objects.create(run=run, cycle=cycle, customer=customer, step=step,
                                          status=ActionStatus.DONE, planned_on=TODAY, pay_by=TODAY)
    DunningActionInvoice.objects.create(action=letter, invoice=invoice, open_amount=Decimal("500.00"),
                                        currency="EUR")
    return LateCharge.objects.create(customer=customer, action=letter, kind=ChargeKind.LATE_FEE,
                                     currency="EUR", amount=Decimal("40.00"), open_amount=Decimal("40.00"),
                                     basis="step 3 of the ladder")


@pytest.fixture
def asked(customer, collector, invoice, fee):
    return workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.FEE_WAIVER,
                                       invoice=invoice, on=TODAY, reason="Our delivery was late")


def pay(customer, invoice, amount: str) -> None:
    """The customer pays INV-1001 and `amount` more, which goes to the fee."""
    workspace.payment_record(customer=customer, amount=Decimal("500.00") + Decimal(amount), currency="EUR",
                             received_on=TODAY, allocations=[(invoice, Decimal("500.00"))],
                             reference="BANK-1")


def approve(client, manager, asked):
    client.force_login(manager)
    return client.post(reverse("collections:exception_decide", args=[asked.pk]),
                       {"decision": "approve", "note": "Loyal customer"})


def test_a_fee_waiver_approved_after_the_fee_was_paid_says_nothing_was_left_to_waive(
    client, manager, collector, customer, invoice, fee, asked
):
    pay(customer, invoice, "40.00")

    response = approve(client, manager, asked)

    assert response.status_code == 302
    asked.refresh_from_db()
    assert asked.status == ExceptionStatus.APPROVED
    assert asked.decision_note == "Nothing left to waive: paid on 5 Aug 2025. Loyal customer"
    fee.refresh_from_db()
    assert (fee.waived_at, fee.open_amount) == (None, Decimal("0.00"))
    event = TimelineEvent.objects.for_subject(asked).order_by("pk").last()
    assert event.summary == ("Exception (waive fees or interest) approved by maria: Nothing left to waive: "
                             "paid on 5 Aug 2025. Loyal customer")
    # The collector learns of it, with nothing to tell the customer.
    item = WorkItem.objects.get(kind=WorkKind.DECIDED, assignee=collector)
    assert "tell the customer" not in item.title
    assert item.title.endswith("the customer paid it: nothing was waived")


def test_a_fee_waiver_of_a_fee_partly_paid_waives_what_is_left_and_says_so(
    client, manager, collector, customer, invoice, fee, asked
):
    pay(customer, invoice, "25.00")

    approve(client, manager, asked)

    fee.refresh_from_db()
    assert fee.waived_by == manager
    assert fee.open_amount == Decimal("15.00")  # what was paid of it stays paid
    event = TimelineEvent.objects.for_subject(asked).order_by("pk").last()
    assert event.summary == ("Exception (waive fees or interest) approved by maria, waiving the EUR 15.00 "
                             "left (EUR 25.00 paid on 5 Aug 2025): Loyal customer")
    item = WorkItem.objects.get(kind=WorkKind.DECIDED, assignee=collector)
    assert item.title == f"{event.summary} — tell the customer"


def test_a_fee_waiver_of_a_fee_still_owed_in_full_waives_it_all(
    client, manager, collector, customer, invoice, fee, asked
):
    approve(client, manager, asked)

    fee.refresh_from_db()
    assert fee.waived_by == manager
    event = TimelineEvent.objects.for_subject(asked).order_by("pk").last()
    assert event.summary == "Exception (waive fees or interest) approved by maria: Loyal customer"
