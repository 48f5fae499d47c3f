import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from ar_collections.models import (
    BANK_ID_LEFT_OUT,
    Allocation,
    Call,
    ChargeKind,
    Dispute,
    DunningCycle,
    DunningStep,
    ExceptionRequest,
    Instalment,
    Invoice,
    InvoiceStatus,
    LateCharge,
    LatePaymentPolicy,
    Payment,
    PaymentBehaviour,
    PaymentPlan,
    Promise,
    StepAction,
    StepFee,
    Tone,
    bank_id_key,
)
from customers.models import Customer, Segment

D = dt.date(2026, 3, 1)



@pytest.mark.parametrize(
    "changes",
    [
        {"open_amount": Decimal("100.01")},  # more open than invoiced
        {"open_amount": Decimal("-1")},
        {"due_date": D - dt.timedelta(days=1)},  # due before issued
        {"status": InvoiceStatus.PAID},  # paid yet still owing, never settled
        {"status": InvoiceStatus.OPEN, "open_amount": Decimal("0")},  # open with nothing owed
    ],
    ids=["open-over-total", "negative-open", "due-before-issue", "paid-owing", "open-empty"],
)
def test_the_database_rejects_an_inconsistent_invoice(customer, make_invoice, changes):
    invoice = make_invoice(customer, issued=D, amount="100.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(**changes)


def test_invoice_numbers_are_unique(customer, make_invoice):
    make_invoice(customer, issued=D, number="INV-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_invoice(customer, issued=D, number="INV-1")


def test_an_allocation_comes_from_a_payment_or_a_credit_note_not_neither(customer, make_invoice):
    invoice = make_invoice(customer, issued=D)
    with pytest.raises(IntegrityError), transaction.atomic():
        Allocation.objects.create(invoice=invoice, amount=Decimal("1"), allocated_on=D, applied_on=D)


def test_one_payment_can_settle_several_invoices_in_part(customer, make_invoice):
    first, second = make_invoice(customer, issued=D), make_invoice(customer, issued=D)
    payment = Payment.objects.create(customer=customer, received_on=D, amount=Decimal("150.00"))
    Allocation.objects.create(invoice=first, payment=payment, amount=Decimal("100.00"), allocated_on=D,
                              applied_on=D)
    Allocation.objects.create(invoice=second, payment=payment, amount=Decimal("50.00"), allocated_on=D,
                              applied_on=D)

    assert payment.unallocated_amount() == Decimal("0.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Allocation.objects.create(invoice=first, payment=payment, amount=Decimal("1"), allocated_on=D,
                                  applied_on=D)


def test_days_late_counts_to_settlement_or_to_the_given_day(customer, make_invoice):
    paid = make_invoice(customer, issued=D, due=D, paid_on=D + dt.timedelta(days=12))
    open_ = make_invoice(customer, issued=D, due=D)

    assert paid.days_late(on=D + dt.timedelta(days=40)) == 12
    assert open_.days_late(on=D + dt.timedelta(days=40)) == 40
    assert open_.days_late(on=D - dt.timedelta(days=3)) == 0


def _ladder(*steps):
    policy = LatePaymentPolicy.objects.create(name="Test ladder", segment="prompt", is_active=False)
    for position, (day, tone, pay_by) in enumerate(steps, start=1):
        DunningStep.objects.create(policy=policy, position=position, day_offset=day,
                                   action=StepAction.EMAIL, tone=tone, pay_by_days=pay_by)
    return policy


def test_a_well_formed_ladder_has_no_problems(db):
    policy = _ladder((-3, Tone.FRIENDLY, 7), (7, Tone.FRIENDLY, 7), (21, Tone.FIRM, 10), (35, Tone.FINAL, 7))
    assert policy.ladder_problems() == []


def test_a_ladder_that_softens_or_overtakes_its_own_deadline_is_reported(db):
    policy = _ladder((7, Tone.FIRM, 14), (14, Tone.FRIENDLY, 7))
    assert policy.ladder_problems() == [
        "Step 2 is friendly, softer than step 1; tone may only get firmer.",
        "Step 2 (day 14) would overtake step 1's pay-by date (day 21).",
    ]


def test_every_segment_starts_with_one_sound_active_ladder(db):
    active = LatePaymentPolicy.objects.filter(is_active=True)
    assert sorted(active.values_list("segment", flat=True)) == sorted(Segment.values)
    assert {p.segment: p.ladder_problems() for p in active} == {s: [] for s in Segment.values}


def test_only_one_active_policy_per_segment(db):
    LatePaymentPolicy.objects.create(name="B", segment="prompt", is_active=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        LatePaymentPolicy.objects.create(name="C", segment="prompt")


def test_a_notice_charges_its_fee_once_and_interest_once_per_invoice(customer, make_invoice):
    from ar_collections.models import (
        ChargeKind,
        DunningAction,
        DunningCycle,
        DunningRun,
        LateCharge,
    )

    invoice = make_invoice(customer, issued=D)
    step = DunningStep.objects.get(policy__segment="systematic_late", position=3)
    action = DunningAction.objects.create(
        run=DunningRun.objects.create(run_date=D), customer=customer, step=step, planned_on=D, pay_by=D,
        cycle=DunningCycle.objects.create(customer=customer, number=1, opened_on=D),
    )

    def charge(kind, invoice=None):
        return LateCharge.objects.create(customer=customer, action=action, kind=kind, invoice=invoice,
                                         amount=Decimal("40.00"))

    charge(ChargeKind.LATE_FEE)
    charge(ChargeKind.INTEREST, invoice)
    for kind, on in ((ChargeKind.LATE_FEE, None), (ChargeKind.INTEREST, invoice)):
        with pytest.raises(IntegrityError), transaction.atomic():
            charge(kind, on)
    # Each currency is its own debt: a notice listing GBP invoices too carries the GBP fee, once.
    LateCharge.objects.create(customer=customer, action=action, kind=ChargeKind.LATE_FEE, currency="GBP",
                              amount=Decimal("35.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        LateCharge.objects.create(customer=customer, action=action, kind=ChargeKind.LATE_FEE, currency="GBP",
                                  amount=Decimal("35.00"))


def test_money_rows_name_their_amount_as_the_pages_do_in_the_admin():
    """The admin titles, lists and confirmations name a row by its str():
    with the currency's own places, like every page."""
    on = dt.date(2025, 8, 5)
    assert str(Payment(currency="JPY", amount=Decimal("6000"), received_on=on)) == "JPY 6,000 on 5 Aug 2025"
    assert str(StepFee(currency="JPY", amount=Decimal("6000"))) == "Late fee JPY 6,000"
    interest = LateCharge(kind=ChargeKind.INTEREST, currency="JPY", amount=Decimal("1315"))
    assert str(interest) == "Interest JPY 1,315"
    assert str(Promise(currency="JPY", amount=Decimal("25000"), promised_on=on)) == (
        "Promise of JPY 25,000 by 5 Aug 2025"
    )


def test_rows_shown_in_the_admin_name_the_customer_and_invoice_not_their_ids():
    acme = Customer(pk=17, name="Acme Tools", currency="EUR")
    invoice = Invoice(pk=5, number="INV-1001", customer=acme)
    plan = PaymentPlan(pk=4, customer=acme, currency="EUR", total_amount=Decimal("900.00"))
    on = dt.date(2025, 8, 5)
    assert str(Call(customer=acme, outcome="reached")) == "Call to Acme Tools: Reached"
    assert str(plan) == "Plan of EUR 900.00 for Acme Tools"
    assert str(Instalment(plan=plan, number=2)) == "Instalment 2 of the payment plan for Acme Tools"
    assert str(Dispute(invoice=invoice, customer=acme, reason="price")) == (
        "Dispute on INV-1001: Price differs from the order or contract"
    )
    assert str(ExceptionRequest(customer=acme, kind="other", status="pending")) == (
        "Other for Acme Tools (Waiting for a manager)"
    )
    assert str(DunningCycle(customer=acme, number=2)) == "Cycle 2 of Acme Tools"
    assert str(PaymentBehaviour(customer=acme, computed_on=on)) == "Behaviour of Acme Tools on 5 Aug 2025"
    payment = Payment(currency="JPY", amount=Decimal("6000"), received_on=on)
    allocation = Allocation(payment=payment, invoice=invoice, amount=Decimal("6000"))
    assert str(allocation) == "JPY 6,000 to INV-1001"


def test_the_database_keys_a_bank_id_as_the_import_and_the_payment_form_do(customer):
    """The unique bank id (bank_key) is worked out by the database, the
    look-ups before it by bank_id_key: were they to differ, a second payment
    of one bank entry would stop on the database's error instead of being
    refused with a message."""
    reference = f"bank{BANK_ID_LEFT_OUT}4000 ab"
    payment = Payment.objects.create(customer=customer, received_on=dt.date(2026, 3, 2), currency="EUR",
                                     amount=Decimal("1.00"), bank_reference=reference)

    assert Payment.objects.get(pk=payment.pk).bank_key == bank_id_key(reference) == "BANK4000AB"
