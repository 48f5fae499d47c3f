"""Where money that names no invoice goes, by the payment form and by the
payments file alike: the invoices already due, then the late fees and
interest still owed, then the invoices not yet due, then on account."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.forms import letters_in_queue
from ar_collections.imports import payments_import
from ar_collections.models import (
    ChargeKind,
    InstalmentStatus,
    Invoice,
    LateCharge,
    LatePaymentPolicy,
    Payment,
    PlanStatus,
    PromiseStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from ar_collections.worklist import worklist_refresh
from customers.models import ReminderChannel, Segment

from .conftest import DUE, frozen


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


@pytest.fixture
def wolf_charging_interest(make_account, make_invoice, plan_and_deliver):
    """Wolf Trading as `wolf`, the letter of day 12 also charging 8 % interest
    on each invoice it lists: EUR 1.32 on the EUR 500.00, EUR 1.84 on the EUR 700.00."""
    step = LatePaymentPolicy.objects.get(segment=Segment.SYSTEMATIC_LATE).steps.get(position=3)
    step.interest_rate_percent = Decimal("8.00")
    step.save(update_fields=["interest_rate_percent"])
    account = make_account(Segment.SYSTEMATIC_LATE, name="Wolf Trading",
                           reminder_channel=ReminderChannel.LETTER)
    account.segment_override, account.segment_override_note = Segment.SYSTEMATIC_LATE, "Pays late every month"
    account.save(update_fields=["segment_override", "segment_override_note"])
    make_invoice(account, issued=days(0), due=days(30), amount="300.00", number="INV-LATER")
    for day in (-3, 3, 12):
        plan_and_deliver(days(day))
        letters_in_queue().update(printed_at=dt.datetime.combine(days(day), dt.time(8), tzinfo=dt.UTC))
    assert sorted(LateCharge.objects.filter(customer=account).values_list("kind", "amount")) == [
        (ChargeKind.INTEREST, Decimal("1.32")), (ChargeKind.INTEREST, Decimal("1.84")),
        (ChargeKind.LATE_FEE, Decimal("40.00")),
    ]
    return account


@pytest.fixture
def wolf(make_account, make_invoice, plan_and_deliver, pdf_text):
    """A systematic late payer owing EUR 1,200.00 due on DUE, whose letter of
    day 12 (step 3) adds a EUR 40.00 late fee and asks for EUR 1,240.00; its
    next invoice, EUR 300.00, is not due until day 30. Every letter goes to
    the post the day it is written."""
    account = make_account(Segment.SYSTEMATIC_LATE, name="Wolf Trading",
                           reminder_channel=ReminderChannel.LETTER)
    # Held so: a payment recomputes the segment from history, which these invoices alone do not give.
    account.segment_override, account.segment_override_note = Segment.SYSTEMATIC_LATE, "Pays late every month"
    account.save(update_fields=["segment_override", "segment_override_note"])
    make_invoice(account, issued=days(0), due=days(30), amount="300.00", number="INV-LATER")
    for day in (-3, 3, 12):
        plan_and_deliver(days(day))
        letters_in_queue().update(printed_at=dt.datetime.combine(days(day), dt.time(8), tzinfo=dt.UTC))
    fee = LateCharge.objects.get(customer=account)
    assert (fee.amount, fee.open_amount) == (Decimal("40.00"), Decimal("40.00"))
    notice = account.dunning_actions.get(step__position=3)
    assert "EUR 1,240.00" in pdf_text(notice.letter_pdf.read())  # what the customer is asked to pay
    return account


def open_amounts(account) -> dict[str, Decimal]:
    return dict(Invoice.objects.filter(customer=account).values_list("number", "open_amount"))


def fee_owed(account) -> Decimal:
    return LateCharge.objects.get(customer=account).open_amount


def pay_by_form(client, manager, account, amount: str, *, on: dt.date, invoices=(),
                today: dt.date | None = None) -> str:
    """Records the payment received on `on` on the account page, on `today`
    (by default the same day); returns the page it lands on."""
    client.force_login(manager)
    with frozen(today or on):
        response = client.post(reverse("collections:payment_record", args=[account.pk]), {
            "received_on": on.isoformat(), "currency": "EUR", "amount": amount, "method": "bank_transfer",
            "reference": f"BANK-{amount}", "invoices": [i.pk for i in invoices],
        }, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def pay_by_file(account, amount: str, *, received_on: dt.date, today: dt.date) -> None:
    with frozen(today):
        report = payments_import(
            "account_number,received_on,currency,amount,reference\n"
            f"{account.account_number},{received_on.isoformat()},EUR,{amount},BANK-{amount}\n",
            today=today,
        )
    assert report.ok, report.errors


def charges_on_the_worklist(account, plan_and_deliver, day: dt.date) -> list[str]:
    """The nightly run of `day` (the cycle closes once nothing chased is open), then the worklist."""
    plan_and_deliver(day)
    worklist_refresh(on=day)
    return list(WorkItem.objects.filter(customer=account, kind=WorkKind.CHARGES, status=WorkStatus.OPEN)
                .values_list("title", flat=True))


def test_paying_on_the_form_what_the_notice_asked_pays_the_fee_and_leaves_the_next_invoice_alone(
    wolf, client, manager, plan_and_deliver
):
    page = pay_by_form(client, manager, wolf, "1240.00", on=days(13))

    assert open_amounts(wolf)["INV-LATER"] == Decimal("300.00")
    assert fee_owed(wolf) == Decimal("0.00")
    assert Payment.objects.get(customer=wolf).unallocated_amount() == Decimal("0.00")
    assert "EUR 40.00 to late fees and interest." in page
    assert charges_on_the_worklist(wolf, plan_and_deliver, days(14)) == []


def test_a_bank_line_of_what_the_notice_asked_pays_the_fee_and_leaves_the_next_invoice_alone(
    wolf, plan_and_deliver
):
    pay_by_file(wolf, "1240.00", received_on=days(13), today=days(13))

    assert open_amounts(wolf)["INV-LATER"] == Decimal("300.00")
    assert fee_owed(wolf) == Decimal("0.00")
    assert Payment.objects.get(customer=wolf).unallocated_amount() == Decimal("0.00")
    assert charges_on_the_worklist(wolf, plan_and_deliver, days(14)) == []


def test_money_beyond_the_invoices_due_and_the_fee_goes_to_the_invoice_not_yet_due_then_on_account(
    wolf, client, manager
):
    pay_by_form(client, manager, wolf, "1400.00", on=days(13))
    assert open_amounts(wolf)["INV-LATER"] == Decimal("140.00")
    assert fee_owed(wolf) == Decimal("0.00")

    pay_by_form(client, manager, wolf, "200.00", on=days(14))
    assert open_amounts(wolf)["INV-LATER"] == Decimal("0.00")
    assert Payment.objects.get(amount=Decimal("200.00")).unallocated_amount() == Decimal("60.00")


def test_a_bank_line_read_after_the_next_invoice_fell_due_still_pays_the_fee_it_was_sent_for(wolf):
    """An invoice is due or not as of the day the money came in, not the day
    the statement is read: on day 13 INV-LATER was not owed yet."""
    pay_by_file(wolf, "1240.00", received_on=days(13), today=days(31))

    assert open_amounts(wolf)["INV-LATER"] == Decimal("300.00")
    assert fee_owed(wolf) == Decimal("0.00")


def test_an_invoice_due_the_day_the_money_comes_in_is_paid_before_the_fee(wolf, client, manager):
    pay_by_form(client, manager, wolf, "1240.00", on=days(30))

    assert open_amounts(wolf)["INV-LATER"] == Decimal("260.00")
    assert fee_owed(wolf) == Decimal("40.00")


def test_money_naming_an_invoice_not_yet_due_pays_it_then_the_fee_and_not_the_invoices_due(
    wolf, client, manager
):
    later = Invoice.objects.get(number="INV-LATER")

    page = pay_by_form(client, manager, wolf, "350.00", on=days(13), invoices=[later])

    # The invoices due are left as they were: the customer said what the money was for.
    assert sorted(open_amounts(wolf).values()) == [Decimal("0.00"), Decimal("500.00"), Decimal("700.00")]
    assert fee_owed(wolf) == Decimal("0.00")
    assert "EUR 40.00 to late fees and interest; EUR 10.00 stays on account." in page


def test_a_promise_for_the_invoice_not_yet_due_is_kept_by_paying_its_amount_while_the_fee_is_owed(
    wolf, client, manager
):
    """The customer paid what it promised, for the invoice it promised it for:
    the fee does not take part of it and break the promise."""
    pay_by_form(client, manager, wolf, "1200.00", on=days(13),
                invoices=Invoice.objects.filter(customer=wolf, due_date=DUE))
    later = Invoice.objects.get(number="INV-LATER")
    with frozen(days(14)):
        promise = workspace.promise_record(customer=wolf, actor=manager, amount=Decimal("300.00"),
                                           promised_on=days(20), invoices=[later], on=days(14))

    pay_by_form(client, manager, wolf, "300.00", on=days(15))

    promise.refresh_from_db()
    assert promise.status == PromiseStatus.KEPT
    assert open_amounts(wolf)["INV-LATER"] == Decimal("0.00")
    assert fee_owed(wolf) == Decimal("40.00")


def test_an_instalment_on_invoices_not_yet_due_is_paid_in_full_while_the_fee_is_owed(wolf, manager):
    pay_by_file(wolf, "1200.00", received_on=days(13), today=days(13))  # the fee stays owed: 40.00 short
    assert fee_owed(wolf) == Decimal("40.00")
    with frozen(days(14)):
        plan = workspace.plan_propose(
            customer=wolf, actor=manager, invoices=[Invoice.objects.get(number="INV-LATER")],
            instalments=[(days(20), Decimal("150.00")), (days(40), Decimal("150.00"))], on=days(14),
        )
    assert plan.status == PlanStatus.ACTIVE

    pay_by_file(wolf, "150.00", received_on=days(20), today=days(20))

    assert open_amounts(wolf)["INV-LATER"] == Decimal("150.00")
    assert fee_owed(wolf) == Decimal("40.00")
    assert list(plan.instalments.values_list("status", flat=True)) == [
        InstalmentStatus.PAID, InstalmentStatus.DUE
    ]


def test_money_for_everything_before_the_fee_letter_is_posted_pays_every_invoice_and_no_fee(
    make_account, make_invoice, plan_and_deliver, client, manager
):
    """The letter of day 12 still waits in the print queue when the customer
    pays all it owes: the letter is moot, its fee cancelled, and the money
    the fee would have taken pays the invoice not yet due."""
    account = make_account(Segment.SYSTEMATIC_LATE, name="Wolf Trading",
                           reminder_channel=ReminderChannel.LETTER)
    make_invoice(account, issued=days(0), due=days(30), amount="300.00", number="INV-LATER")
    for day in (-3, 3, 12):
        plan_and_deliver(days(day))
        if day < 12:
            letters_in_queue().update(printed_at=dt.datetime.combine(days(day), dt.time(8), tzinfo=dt.UTC))

    pay_by_form(client, manager, account, "1500.00", on=days(13))

    assert set(open_amounts(account).values()) == {Decimal("0.00")}
    fee = LateCharge.objects.get(customer=account)
    assert fee.cancelled_at is not None and fee.open_amount == Decimal("40.00")
    assert Payment.objects.get(customer=account).unallocated_amount() == Decimal("0.00")


def pay(by: str, client, manager, account, amount: str, *, received_on: dt.date, today: dt.date) -> None:
    """Money naming no invoice, received on `received_on` and recorded on
    `today` by the payment form or a payments file."""
    if by == "form":
        pay_by_form(client, manager, account, amount, on=received_on, today=today)
    else:
        pay_by_file(account, amount, received_on=received_on, today=today)


@pytest.mark.parametrize("by", ["form", "file"])
def test_money_naming_no_invoice_leaves_the_interest_on_a_disputed_invoice_as_it_leaves_the_invoice(
    wolf_charging_interest, client, manager, by
):
    """The customer holds back a disputed invoice on purpose, and the interest
    charged on it with it: whether it is owed is for the dispute to settle."""
    account = wolf_charging_interest
    disputed, other = Invoice.objects.filter(customer=account, due_date=DUE).order_by("total_amount")
    with frozen(days(13)):
        workspace.dispute_open(customer=account, actor=manager, invoice=disputed, reason="quantity",
                               description="Two pallets short", on=days(13))
    interest = {c.invoice_id: c
                for c in LateCharge.objects.filter(customer=account, kind=ChargeKind.INTEREST)}

    # The undisputed invoice, the fee and the interest on that invoice, and EUR 10.00 more.
    pay(by, client, manager, account, "751.84", received_on=days(13), today=days(13))

    assert open_amounts(account) == {disputed.number: Decimal("500.00"), other.number: Decimal("0.00"),
                                     "INV-LATER": Decimal("290.00")}
    owed = dict(LateCharge.objects.filter(customer=account).values_list("pk", "open_amount"))
    assert owed == {interest[disputed.pk].pk: Decimal("1.32"), interest[other.pk].pk: Decimal("0.00"),
                    LateCharge.objects.get(customer=account, kind=ChargeKind.LATE_FEE).pk: Decimal("0.00")}


@pytest.mark.parametrize("by", ["form", "file"])
def test_money_received_before_a_fee_was_charged_does_not_pay_it_though_recorded_after(
    wolf, client, manager, by
):
    """Money that came in on day 10, recorded on day 14: the fee the letter
    of day 12 charged is nothing the customer can have sent it for."""
    pay(by, client, manager, wolf, "1240.00", received_on=days(10), today=days(14))

    assert open_amounts(wolf) == {"INV-LATER": Decimal("260.00"), **{
        number: Decimal("0.00") for number in Invoice.objects.filter(customer=wolf, due_date=DUE)
        .values_list("number", flat=True)
    }}
    assert fee_owed(wolf) == Decimal("40.00")
