"""PDF letters read back with pdftotext, late fees and interest, waivers, and
the fetcher that keeps letters to our own static files."""

import contextlib
import datetime as dt
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from ar_collections.delivery import actions_deliver, charge_waive, invoices_resend
from ar_collections.dunning import next_step, run_plan, run_start
from ar_collections.forms import letters_in_queue
from ar_collections.models import (
    ActionStatus,
    ChargeKind,
    CollectionRules,
    DisputeOutcome,
    DisputeReason,
    DunningAction,
    DunningCycle,
    DunningStep,
    ExceptionKind,
    Holiday,
    Invoice,
    LateCharge,
    LatePaymentPolicy,
    MissCause,
    OutgoingMail,
    StepFee,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from ar_collections.rendering import LetterRenderError, ResourceRefused, html_to_pdf, static_file_for
from ar_collections.worklist import worklist_refresh
from ar_collections.workspace import (
    dispute_open,
    dispute_resolve,
    exception_decide,
    exception_request,
    payment_record,
)
from arcrm.dates import format_day
from customers.models import EventKind, ReminderChannel, Segment, TimelineEvent

from .conftest import DUE, frozen


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def letter_of(account, position: int) -> DunningAction:
    return DunningAction.objects.get(customer=account, step__position=position)


def post_waiting(day: dt.date) -> None:
    """The print room posts every letter waiting in the print queue on `day`."""
    letters_in_queue().update(printed_at=dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC))


def to_the_fee_letter(plan_and_deliver, *, posted: bool = False) -> None:
    """The systematic late payers' ladder up to its letter of day 12 (step 3,
    the one with a fee): the letters of days -3 and 3 go to the post the day
    they are written (the next step waits for a letter still in the print
    queue); the one of day 12 waits in the queue, unless `posted` that day."""
    for day in (-3, 3):
        plan_and_deliver(days(day))
        post_waiting(days(day))
    plan_and_deliver(days(12))
    if posted:
        post_waiting(days(12))


def next_out_while_the_fee_letter_waits(account, plan_and_deliver, day: dt.date) -> None:
    """The step after the letter of day 12 goes out on `day` while that letter
    still waits in the print queue. The planner holds a step back behind a
    letter in the queue; letters written before it did can still wait there
    behind a later notice, which this sets up: the letter taken for posted on
    day 12 for the night of `day`, then back in the queue."""
    letter = letter_of(account, 3)
    DunningAction.objects.filter(pk=letter.pk).update(printed_at=dt.datetime.combine(days(12), dt.time(8),
                                                                                      tzinfo=dt.UTC))
    plan_and_deliver(day)
    DunningAction.objects.filter(pk=letter.pk).update(printed_at=None)


def test_a_letter_names_the_customer_every_invoice_the_total_and_the_pay_by_date_on_one_page(
    make_account, plan_and_deliver, pdf_text, pdf_pages
):
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)

    plan_and_deliver(days(3))

    action = letter_of(account, 1)
    assert (action.status, action.channel, action.printed_at) == (ActionStatus.DONE, "letter", None)
    pdf = action.letter_pdf.read()
    assert pdf.startswith(b"%PDF-")
    assert Path(action.letter_pdf.path).is_relative_to(settings.MEDIA_ROOT)
    assert pdf_pages(pdf) == 1
    text = pdf_text(pdf)
    assert "Acme Tools" in text
    assert "Main Street 1" in text
    for number in Invoice.objects.filter(customer=account).values_list("number", flat=True):
        assert number in text
    assert "EUR 1,200.00" in text
    assert "Please pay by: 16 Mar 2026" in text  # ten days are Sunday 15 Mar: the Monday after
    assert "Did our invoices" in text  # the friendly subject
    assert "carla" in text  # signed by the owning collector


@pytest.mark.parametrize(("language", "shown", "not_shown"), [
    ("en", ["JPY 2,500", "JPY 6,000"], ["2,500.00", "6,000.00"]),
    ("de", ["2.500 JPY", "6.000 JPY"], ["2.500,00", "6.000,00"]),
])
def test_a_letter_in_yen_asks_for_whole_yen(
    make_customer, make_contact, make_invoice, plan_and_deliver, pdf_text, language, shown, not_shown
):
    account = make_customer(name="Tokyo Parts", segment=Segment.PROMPT, currency="JPY")
    make_contact(account, name="Anna Clerk", is_primary_billing=True, reminder_channel=ReminderChannel.LETTER,
                 postal_address="Tokyo Parts\nMain Street 1", language=language)
    for amount in ("2500", "3500"):
        make_invoice(account, issued=DUE - dt.timedelta(days=30), due=DUE, amount=amount)

    plan_and_deliver(days(3))

    text = pdf_text(letter_of(account, 1).letter_pdf.read())
    for amount in shown:
        assert amount in text, amount
    for amount in not_shown:
        assert amount not in text, amount


def test_a_long_letter_says_whose_it_is_on_every_page_and_gives_its_totals_once(
    make_account, make_invoice, plan_and_deliver, pdf_pages, pdf_text
):
    """The pages of a long statement come apart in the customer's AP office."""
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    for _ in range(60):
        make_invoice(account, issued=DUE - dt.timedelta(days=30), due=DUE, amount="10.00")

    plan_and_deliver(days(3))

    pdf = letter_of(account, 1).letter_pdf.read()
    assert pdf_pages(pdf) >= 2
    first, second = (subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), "-layout", "-", "-"], input=pdf,
                                    capture_output=True, check=True, timeout=30).stdout.decode()
                     for n in (1, 2))
    assert f"Acme Tools · Customer number {account.account_number} · 5 Mar 2026" in " ".join(second.split())
    # The first page has it beside the address, once.
    assert first.count(account.account_number) == 1
    # The totals come once, under the last invoice, not at the foot of every page.
    text = pdf_text(pdf)
    assert text.count("Amount due") == 1
    assert text.index("Amount due") > text.index(Invoice.objects.filter(customer=account).last().number)


def test_a_letter_to_a_long_postal_address_goes_out_with_the_address_cut_on_the_action(
    make_account, plan_and_deliver
):
    """The action keeps the address cut to its 300 characters rather than fail the letter."""
    lines = [f"Building {n}, Floor {n}, Department of Accounts Payable and Receivable" for n in range(6)]
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER,
                           postal_address="\n".join(["Acme Tools", *lines, "10115 Berlin"]))

    plan_and_deliver(days(3))

    action = letter_of(account, 1)
    assert (action.status, action.channel) == (ActionStatus.DONE, "letter"), action.error
    assert len(action.recipient_address) == 300 and action.recipient_address.endswith("…")


@pytest.fixture
def charging_account(make_account, make_invoice):
    """A systematic late payer who prefers letters, whose third step (the letter
    with a EUR 40.00 fee) also charges 8 % interest; a third invoice is so small
    its interest rounds to nothing."""
    account = make_account(Segment.SYSTEMATIC_LATE, reminder_channel=ReminderChannel.LETTER)
    # Held so: a payment recomputes the segment from history, which these invoices alone do not give.
    account.segment_override, account.segment_override_note = Segment.SYSTEMATIC_LATE, "Pays late every month"
    account.save(update_fields=["segment_override", "segment_override_note"])
    make_invoice(account, issued=DUE - dt.timedelta(days=30), due=DUE, amount="1.00", number="INV-SMALL")
    DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position=3).update(
        interest_rate_percent=Decimal("8.00")
    )
    return account


def test_a_fee_and_interest_are_charged_and_shown_on_the_letter(charging_account, plan_and_deliver, pdf_text):
    to_the_fee_letter(plan_and_deliver)

    action = letter_of(charging_account, 3)
    charges = {
        (c.kind, c.invoice.open_amount if c.invoice else None): (c.amount, c.basis)
        for c in LateCharge.objects.filter(action=action).select_related("invoice")
    }
    assert charges == {
        (ChargeKind.LATE_FEE, None): (Decimal("40.00"), "step 3 of Systematic late payers"),
        # 500.00 × 8 % × 12/365 = 1.3150… and 700.00 × 8 % × 12/365 = 1.8410…, half up to cents
        (ChargeKind.INTEREST, Decimal("500.00")): (Decimal("1.32"), "EUR 500.00 × 8.00% × 12/365"),
        (ChargeKind.INTEREST, Decimal("700.00")): (Decimal("1.84"), "EUR 700.00 × 8.00% × 12/365"),
    }
    assert not LateCharge.objects.filter(action__step__position__lt=3).exists()
    text = pdf_text(action.letter_pdf.read())
    for shown in ("EUR 40.00", "EUR 1.32", "EUR 1.84", "EUR 500.00 × 8.00% × 12/365",
                  "EUR 1,201.00", "EUR 1,244.16", "late fee of EUR 40.00"):
        assert shown in text, shown


def test_the_fee_is_charged_in_its_own_currency_and_only_on_a_notice_listing_that_currency(
    make_customer, make_contact, make_invoice, plan_and_deliver
):
    """The default ladder's fee is EUR 40.00. A customer billed in USD whose
    notice lists only USD invoices is not charged "USD 40.00" (nor EUR 40.00
    on a USD notice); one whose notice also lists a EUR invoice is charged the
    EUR fee, whatever the account's own currency."""
    accounts = {}
    for name, currencies in (("Dollar Only", ["USD", "USD"]), ("Mixed", ["USD", "EUR"])):
        customer = make_customer(name=name, segment=Segment.SYSTEMATIC_LATE, currency="USD")
        make_contact(customer, name="Anna Clerk", is_primary_billing=True, email=f"anna@{name[0]}.test",
                     reminder_channel=ReminderChannel.LETTER, postal_address=f"{name}\nMain Street 1")
        for currency, amount in zip(currencies, ("500.00", "700.00"), strict=True):
            make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount=amount,
                         currency=currency)
        accounts[name] = customer
    step = DunningStep.objects.get(policy__segment=Segment.SYSTEMATIC_LATE, position=3)
    assert list(step.fees.values_list("amount", "currency")) == [(Decimal("40.00"), "EUR")]

    to_the_fee_letter(plan_and_deliver)

    fees = {
        c.customer.name: (c.currency, c.amount)
        for c in LateCharge.objects.filter(kind=ChargeKind.LATE_FEE).select_related("customer")
    }
    assert fees == {"Mixed": ("EUR", Decimal("40.00"))}
    dollar_only = letter_of(accounts["Dollar Only"], 3)
    assert dollar_only.status == ActionStatus.DONE
    event = TimelineEvent.objects.get(customer=accounts["Dollar Only"], kind=EventKind.DUNNING,
                                      subject_id=dollar_only.pk)
    note = "no late fee: the step's EUR 40.00 applies to notices listing EUR invoices"
    assert note in event.summary
    assert event.details["charges_note"] == note
    assert event.details["charges"] == []


def _fees_account(make_customer, make_contact, make_invoice, name: str, invoices: list[tuple[str, str]]):
    """A systematic late payer who prefers letters, owing `invoices` ((currency, amount)) due on DUE."""
    customer = make_customer(name=name, segment=Segment.SYSTEMATIC_LATE, currency=invoices[0][0])
    make_contact(customer, name="Anna Clerk", is_primary_billing=True, email=f"anna@{name[0]}.test",
                 reminder_channel=ReminderChannel.LETTER, postal_address=f"{name}\nMain Street 1")
    for currency, amount in invoices:
        make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount=amount, currency=currency)
    return customer


@pytest.fixture
def fees_in_eur_and_gbp(db):
    """The systematic late payers' letter (step 3) charges EUR 40.00 or GBP 35.00."""
    step = DunningStep.objects.get(policy__segment=Segment.SYSTEMATIC_LATE, position=3)
    StepFee.objects.create(step=step, currency="GBP", amount=Decimal("35.00"))
    assert sorted(step.fees.values_list("currency", "amount")) == [
        ("EUR", Decimal("40.00")), ("GBP", Decimal("35.00"))
    ]
    return step


def test_a_notice_listing_only_gbp_invoices_is_charged_the_step_s_gbp_fee(
    make_customer, make_contact, make_invoice, plan_and_deliver, fees_in_eur_and_gbp, pdf_text
):
    account = _fees_account(make_customer, make_contact, make_invoice, "Pound Only",
                            [("GBP", "500.00"), ("GBP", "700.00")])

    to_the_fee_letter(plan_and_deliver)

    letter = letter_of(account, 3)
    fees = LateCharge.objects.filter(kind=ChargeKind.LATE_FEE).values_list("action", "currency", "amount")
    assert list(fees) == [(letter.pk, "GBP", Decimal("35.00"))]
    text = pdf_text(letter.letter_pdf.read())
    assert "late fee of GBP 35.00" in text
    assert "GBP 1,235.00" in text  # 500.00 + 700.00 + the fee
    assert "EUR" not in text
    event = TimelineEvent.objects.get(customer=account, kind=EventKind.DUNNING, subject_id=letter.pk)
    assert "no late fee" not in event.summary
    # The timeline says what the letter asked, the fee with the invoices.
    assert ("2 invoices, GBP 1,200.00, with late fees and interest GBP 35.00 (GBP 1,235.00 in all), "
            "pay by") in event.summary


def test_a_notice_listing_several_currencies_carries_one_fee_per_currency_the_step_has_a_fee_in(
    make_customer, make_contact, make_invoice, plan_and_deliver, fees_in_eur_and_gbp, pdf_text
):
    """Each currency is its own debt: the EUR invoices carry the EUR fee, the
    GBP one the GBP fee, each an explicit charge and in its own currency's
    total; the USD invoice carries none, the step having no fee in USD."""
    account = _fees_account(make_customer, make_contact, make_invoice, "Three Currencies",
                            [("EUR", "500.00"), ("EUR", "700.00"), ("GBP", "300.00"), ("USD", "900.00")])

    to_the_fee_letter(plan_and_deliver)

    letter = letter_of(account, 3)
    fees = LateCharge.objects.filter(kind=ChargeKind.LATE_FEE, action=letter, invoice__isnull=True)
    assert sorted(fees.values_list("currency", "amount", "open_amount")) == [
        ("EUR", Decimal("40.00"), Decimal("40.00")), ("GBP", Decimal("35.00"), Decimal("35.00")),
    ]
    text = pdf_text(letter.letter_pdf.read())
    assert "late fees of EUR 40.00 and GBP 35.00" in text
    for total in ("EUR 1,240.00", "GBP 335.00", "USD 900.00"):  # per currency, never added together
        assert total in text, total
    assert "USD 9" in text and "USD 40" not in text and "USD 35" not in text
    event = TimelineEvent.objects.get(customer=account, kind=EventKind.DUNNING, subject_id=letter.pk)
    assert sorted((c["currency"], c["amount"]) for c in event.details["charges"]) == [
        ("EUR", "40.00"), ("GBP", "35.00")
    ]


def test_a_german_notice_names_each_currency_s_fee(
    make_customer, make_contact, make_invoice, plan_and_deliver, fees_in_eur_and_gbp
):
    account = _fees_account(make_customer, make_contact, make_invoice, "Zwei Währungen",
                            [("EUR", "500.00"), ("GBP", "300.00")])
    account.contacts.update(language="de")

    to_the_fee_letter(plan_and_deliver)

    assert "Mahngebühren von 40,00 EUR und 35,00 GBP" in letter_of(account, 3).body_text


def test_interest_on_yen_is_charged_in_whole_yen(
    make_customer, make_contact, make_invoice, plan_and_deliver, pdf_text
):
    """500,000 × 8 % × 12/365 is 1,315.07: a yen has no cents, so the charge
    is 1,315, and the letter's lines add up to the total it asks for."""
    account = _fees_account(make_customer, make_contact, make_invoice, "Tokyo Parts", [("JPY", "500000")])
    DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position=3).update(
        interest_rate_percent=Decimal("8.00")
    )

    to_the_fee_letter(plan_and_deliver)

    letter = letter_of(account, 3)
    assert list(LateCharge.objects.filter(action=letter).values_list("kind", "amount")) == [
        (ChargeKind.INTEREST, Decimal("1315.00"))
    ]
    text = pdf_text(letter.letter_pdf.read())
    assert "JPY 1,315" in text and "JPY 501,315" in text


def test_interest_on_a_later_notice_runs_from_where_the_earlier_one_stopped(
    charging_account, plan_and_deliver
):
    DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position=2).update(
        interest_rate_percent=Decimal("8.00")
    )
    to_the_fee_letter(plan_and_deliver)

    interest = LateCharge.objects.filter(kind=ChargeKind.INTEREST, invoice__total_amount=Decimal("700.00"))
    bases = sorted(interest.values_list("action__step__position", "basis", "interest_through"))
    assert bases == [
        (2, "EUR 700.00 × 8.00% × 3/365", days(3)),  # the due date to step 2
        (3, "EUR 700.00 × 8.00% × 9/365", days(12)),  # the days since: none charged twice
    ]


def test_interest_follows_the_balance_down_after_a_part_payment(charging_account, plan_and_deliver):
    """EUR 700.00 due on DUE, EUR 300.00 of it paid on day 5: step 3 (day 12)
    charges 5 days on 700.00 and 7 days on 400.00, not 12 days on what is
    open at delivery; the notice lists the 400.00 still due."""
    invoice = Invoice.objects.get(customer=charging_account, total_amount=Decimal("700.00"))
    for day in (-3, 3):
        plan_and_deliver(days(day))
        post_waiting(days(day))
    payment_record(customer=charging_account, amount=Decimal("300.00"), currency="EUR", received_on=days(5),
                   allocations=[(invoice, Decimal("300.00"))])
    plan_and_deliver(days(12))

    charge = LateCharge.objects.get(kind=ChargeKind.INTEREST, invoice=invoice)
    # (700.00 × 5 + 400.00 × 7) × 8 % / 365 = 1.3808…
    assert (charge.amount, charge.basis, charge.interest_through) == (
        Decimal("1.38"), "EUR 700.00 × 8.00% × 5/365 + EUR 400.00 × 8.00% × 7/365", days(12)
    )
    line = letter_of(charging_account, 3).lines.get(invoice=invoice)
    assert line.invoice.open_amount == Decimal("400.00")


def test_waiving_a_charge_needs_a_manager_and_a_reason_and_is_recorded(
    charging_account, plan_and_deliver, collector, manager
):
    to_the_fee_letter(plan_and_deliver)
    fee = LateCharge.objects.get(kind=ChargeKind.LATE_FEE)

    with pytest.raises(PermissionDenied):
        charge_waive(charge=fee, manager=collector, note="Good customer")
    with pytest.raises(ValidationError):
        charge_waive(charge=fee, manager=manager, note="")
    waived = charge_waive(charge=fee, manager=manager, note="Goodwill: first fee in ten years")

    assert (waived.waived_by, waived.waiver_note) == (manager, "Goodwill: first fee in ten years")
    assert waived.waived_at is not None
    event = TimelineEvent.objects.get(customer=charging_account, kind=EventKind.EXCEPTION)
    assert event.actor == manager
    assert (event.details["before"], event.details["after"]["waived"]) == ({"waived": False}, True)
    assert "Late fee of EUR 40.00 waived by maria" in event.summary
    with pytest.raises(ValidationError):
        charge_waive(charge=fee, manager=manager, note="Twice")


def test_the_next_notice_repeats_charges_still_standing_but_not_waived_ones(
    charging_account, plan_and_deliver, manager, pdf_text
):
    to_the_fee_letter(plan_and_deliver, posted=True)
    charge_waive(charge=LateCharge.objects.get(kind=ChargeKind.LATE_FEE), manager=manager, note="Goodwill")

    plan_and_deliver(days(22))  # the final notice, by letter, after the fee letter's pay-by (Monday 23 Mar)

    text = pdf_text(letter_of(charging_account, 4).letter_pdf.read())
    assert "Final notice" in text
    assert "from an earlier notice" in text
    assert "EUR 1.32" in text and "EUR 1.84" in text
    assert "EUR 40.00" not in text
    assert "EUR 1,204.16" in text  # 1,201.00 + 1.32 + 1.84


def test_an_approved_fee_waiver_takes_the_invoice_s_charges_off_the_next_notice(
    charging_account, plan_and_deliver, collector, manager, pdf_text
):
    to_the_fee_letter(plan_and_deliver, posted=True)
    interest = {c.amount: c.invoice for c in LateCharge.objects.filter(kind=ChargeKind.INTEREST)}
    assert sorted(interest) == [Decimal("1.32"), Decimal("1.84")]
    small, large = interest[Decimal("1.32")], interest[Decimal("1.84")]
    assert LateCharge.objects.get(kind=ChargeKind.LATE_FEE).amount == Decimal("40.00")
    waiver = {"customer": charging_account, "actor": collector, "kind": ExceptionKind.FEE_WAIVER,
              "on": days(13)}
    with frozen(days(13)):
        request = exception_request(**waiver, invoice=large, reason="Paid late because our delivery was late")
        refused = exception_request(**waiver, invoice=small, reason="And this one too")
        exception_decide(request=refused, manager=manager, approve=False, note="No", on=days(13))
        assert not LateCharge.objects.filter(waived_at__isnull=False).exists()  # a refusal waives nothing
        exception_decide(request=request, manager=manager, approve=True, note="Our fault", on=days(13))

    # The fee of the notice that listed it and its own interest; the other invoice's interest stands.
    waived = LateCharge.objects.filter(waived_at__isnull=False)
    assert {(c.kind, c.invoice_id) for c in waived} == {(ChargeKind.LATE_FEE, None),
                                                        (ChargeKind.INTEREST, large.pk)}
    assert {c.waiver_note for c in waived} == {"Exception approved: Our fault"}
    events = TimelineEvent.objects.filter(customer=charging_account, kind=EventKind.EXCEPTION,
                                          summary__contains="waived by maria")
    assert events.count() == 2
    plan_and_deliver(days(22))  # after the fee letter's pay-by date, Monday 23 Mar
    text = pdf_text(letter_of(charging_account, 4).letter_pdf.read())
    assert "EUR 1.32" in text and "EUR 1.84" not in text and "EUR 40.00" not in text


def test_a_red_tape_resend_asks_for_what_the_last_notice_said_is_owed(
    charging_account, plan_and_deliver, pdf_text
):
    to_the_fee_letter(plan_and_deliver)
    letter = pdf_text(letter_of(charging_account, 3).letter_pdf.read())
    assert "EUR 1,244.16" in letter  # 1,201.00 + 40.00 + 1.32 + 1.84

    with frozen(days(13)):
        assert invoices_resend(customer_id=charging_account.pk, on=days(13)) == "queued"

    text = OutgoingMail.objects.get(customer=charging_account).text
    assert "from an earlier notice" in text
    assert "EUR 1,244.16" in text.split("Amount due")[1]


def test_a_german_letter_works_out_its_charges_in_german_and_keeps_our_policy_names_to_itself(
    make_account, plan_and_deliver, pdf_text
):
    account = make_account(Segment.SYSTEMATIC_LATE, reminder_channel=ReminderChannel.LETTER, language="de")
    DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position=3).update(
        interest_rate_percent=Decimal("8.00")
    )
    to_the_fee_letter(plan_and_deliver)

    letter = letter_of(account, 3)
    text = letter.body_text + pdf_text(letter.letter_pdf.read())
    assert "500,00 EUR × 8,00 % × 12/365" in text
    assert "Mahngebühr (gemäß unseren Zahlungsbedingungen)" in text
    for english in ("EUR 500.00", "8.00%", "step 3 of", "Systematic late payers"):
        assert english not in text
    # Our own record keeps how the fee came about.
    assert LateCharge.objects.get(kind=ChargeKind.LATE_FEE).basis == "step 3 of Systematic late payers"


def test_an_english_letter_names_no_policy_either(charging_account, plan_and_deliver, pdf_text):
    to_the_fee_letter(plan_and_deliver)

    text = pdf_text(letter_of(charging_account, 3).letter_pdf.read())
    assert "Late fee (as our terms of payment provide)" in text
    assert "Systematic late payers" not in text


def _pay(account, amount: str, day: dt.date, *, to_invoices: bool = True, reference: str = "BANK-1",
         posted: bool = True):
    """A payment that first pays every open invoice in full (or none); the
    letters written so far went to the post before it came (posted)."""
    if posted:
        DunningAction.objects.filter(customer=account, channel="letter", printed_at__isnull=True).update(
            printed_at=dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC)
        )
    invoices = list(Invoice.objects.filter(customer=account).open()) if to_invoices else []
    return payment_record(customer=account, amount=Decimal(amount), currency="EUR", received_on=day,
                          allocations=[(i, i.open_amount) for i in invoices], reference=reference)


def test_paying_the_amount_due_pays_the_invoices_then_the_fees_and_interest(
    charging_account, plan_and_deliver
):
    to_the_fee_letter(plan_and_deliver)  # the letter asks for EUR 1,244.16: 1,201.00 + 40.00 + 1.32 + 1.84

    payment = _pay(charging_account, "1250.00", days(14))

    assert list(LateCharge.objects.values_list("open_amount", flat=True)) == [Decimal("0.00")] * 3
    assert payment.unallocated_amount() == Decimal("5.84")  # the rest stays on account
    assert sum(a.amount for a in payment.allocations.filter(charge__isnull=False)) == Decimal("43.16")
    event = TimelineEvent.objects.get(customer=charging_account, kind=EventKind.PAYMENT_RECEIVED)
    assert "EUR 43.16 to late fees and interest; EUR 5.84 left on account" in event.summary
    plan_and_deliver(days(15))
    worklist_refresh(on=days(15))
    assert not WorkItem.objects.filter(kind=WorkKind.CHARGES).exists()  # nothing is owed


def test_charges_left_when_the_invoices_are_paid_stay_owed_until_paid_or_waived(
    charging_account, plan_and_deliver, make_invoice, manager, client, pdf_text
):
    to_the_fee_letter(plan_and_deliver, posted=True)
    _pay(charging_account, "1201.00", days(13))
    plan_and_deliver(days(14))  # nothing chased is open: the cycle closes, its charges do not vanish
    worklist_refresh(on=days(14))  # as the nightly run does after planning

    assert charging_account.dunning_cycles.get().closed_on == days(14)
    item = WorkItem.objects.get(kind=WorkKind.CHARGES, status=WorkStatus.OPEN)
    assert item.assignee == charging_account.collector
    assert "Late fees and interest of EUR 43.16 still owed with the invoices paid" in item.title
    client.force_login(charging_account.collector)
    page = client.get(f"/customers/{charging_account.pk}/").content.decode()
    assert "Late fees and interest owed" in page and "EUR 43.16" in page

    # A new invoice falls behind: the new cycle's first notice asks for the old charges too.
    make_invoice(charging_account, issued=days(-10), due=days(20), amount="100.00", number="INV-NEXT")
    # 15.00 on account, which goes to the oldest charge: the fee.
    _pay(charging_account, "15.00", days(16), to_invoices=False, reference="BANK-2")
    plan_and_deliver(days(17))  # the systematic ladder's reminder 3 days before the due date
    worklist_refresh(on=days(17))

    reminder = DunningAction.objects.get(customer=charging_account, cycle__number=2)
    text = pdf_text(reminder.letter_pdf.read())
    assert "INV-NEXT" in text and "from an earlier notice" in text
    assert "EUR 15.00 of it paid" in text and "EUR 25.00" in text
    assert "EUR 128.16" in text  # 100.00 + 25.00 + 1.32 + 1.84
    # The notices ask for them again: the worklist item is done.
    assert not WorkItem.objects.filter(kind=WorkKind.CHARGES, status=WorkStatus.OPEN).exists()

    fee = LateCharge.objects.get(kind=ChargeKind.LATE_FEE)
    waived = charge_waive(charge=fee, manager=manager, note="Goodwill")
    assert (waived.open_amount, waived.waived_by) == (Decimal("25.00"), manager)  # the 15.00 paid stays paid
    assert TimelineEvent.objects.filter(
        customer=charging_account, summary__startswith="Late fee of EUR 25.00 (of EUR 40.00) waived by maria"
    ).exists()
    assert not LateCharge.objects.filter(kind=ChargeKind.LATE_FEE).standing().exists()


def test_charges_left_owing_again_after_a_later_cycle_are_back_on_the_worklist(
    charging_account, plan_and_deliver, make_invoice
):
    to_the_fee_letter(plan_and_deliver, posted=True)
    _pay(charging_account, "1201.00", days(13))
    plan_and_deliver(days(14))
    worklist_refresh(on=days(14))
    first = WorkItem.objects.get(kind=WorkKind.CHARGES, status=WorkStatus.OPEN)
    fresh = make_invoice(charging_account, issued=days(-10), due=days(20), amount="100.00", number="INV-NEXT")
    plan_and_deliver(days(17))  # a new cycle: its notices ask for the charges, the item is done
    worklist_refresh(on=days(17))
    assert not WorkItem.objects.filter(kind=WorkKind.CHARGES, status=WorkStatus.OPEN).exists()
    payment_record(customer=charging_account, amount=Decimal("100.00"), currency="EUR", received_on=days(18),
                   allocations=[(fresh, Decimal("100.00"))], reference="BANK-2")  # the invoice only

    plan_and_deliver(days(19))  # the new cycle closes; the charges are still owed
    worklist_refresh(on=days(19))

    again = WorkItem.objects.get(kind=WorkKind.CHARGES, status=WorkStatus.OPEN)
    assert again.pk != first.pk and "EUR 43.16" in again.title


def test_a_letter_made_moot_before_it_was_posted_charges_nothing(
    charging_account, plan_and_deliver, client, manager
):
    """The letter of day 12 charges EUR 40.00 and interest; everything it lists
    is paid the same day, before it goes to the post: it leaves the print queue
    and its charges are cancelled, on the timeline and on the charges
    themselves, which stay on record and count in no total."""
    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)
    assert LateCharge.objects.filter(action=letter).count() == 3

    invoices = list(Invoice.objects.filter(customer=charging_account).open())
    payment = payment_record(customer=charging_account, amount=Decimal("1201.00"), currency="EUR",
                             received_on=days(12), allocations=[(i, i.open_amount) for i in invoices],
                             reference="BANK-1", actor=manager)

    charges = LateCharge.objects.filter(action=letter).order_by("pk")
    assert [(c.kind, c.amount, c.open_amount, c.cancelled_by, c.cancel_reason) for c in charges] == [
        (c.kind, c.amount, c.amount, manager,
         f"Letter of {format_day(letter.planned_on)} not posted: everything it lists was settled first")
        for c in charges
    ]
    assert all(c.cancelled_at is not None and c.waived_at is None for c in charges)
    assert sum(c.amount for c in charges) == Decimal("43.16")
    assert not LateCharge.objects.filter(customer=charging_account).standing().exists()
    # The letters of days -3 and 3 went to the post: only the one of day 12 is withdrawn.
    event = TimelineEvent.objects.get(customer=charging_account,
                                      summary__startswith=f"Letter of {format_day(letter.planned_on)}")
    assert "not posted" in event.summary and "late fee EUR 40.00" in event.summary
    assert event.actor == manager
    assert [x["charge"] for x in event.details["cancelled_charges"]] == [c.pk for c in charges]
    assert payment.unallocated_amount() == Decimal("0.00")
    worklist_refresh(on=days(13))
    assert not WorkItem.objects.filter(kind=WorkKind.CHARGES).exists()
    client.force_login(manager)
    page = client.get(f"/customers/{charging_account.pk}/").content.decode()
    assert 'data-figure="charges"' not in page and "Late fees and interest owed" not in page


def test_a_letter_made_moot_before_it_was_posted_is_no_contact_for_the_next_step(
    charging_account, plan_and_deliver, make_invoice, manager
):
    """The letter of day 12 never goes to the post: everything it lists is paid
    that day. It is a step not carried out, as a withdrawn letter is: the next
    cycle's reminder does not wait the minimum gap after it, nor does its own
    cycle count its pay-by date."""
    from ar_collections.dunning import CYCLE_STAND

    to_the_fee_letter(plan_and_deliver)  # the first two letters went to the post
    letter = letter_of(charging_account, 3)
    with frozen(days(12)):
        _pay(charging_account, "1201.00", days(12), posted=False)

    letter.refresh_from_db()
    assert (letter.status, letter.reviewed_by) == (ActionStatus.SKIPPED, None)
    assert "settled" in letter.skip_reason
    first = charging_account.dunning_cycles.annotate(**CYCLE_STAND).get()
    assert first.pay_by == letter_of(charging_account, 2).pay_by
    plan_and_deliver(days(13))  # nothing left open: the cycle closes
    make_invoice(charging_account, issued=days(-10), due=days(17), amount="100.00", number="INV-NEXT")

    # The reminder 3 days before INV-NEXT falls due: the last contact was the
    # letter of day 3 (the minimum gap is 5 days), not the one of day 12.
    plan_and_deliver(days(14))

    reminder = DunningAction.objects.get(customer=charging_account, cycle__number=2)
    assert (reminder.step.position, reminder.planned_on) == (1, days(14))


def test_a_charge_cancelled_with_its_letter_cannot_be_waived_or_paid(
    charging_account, plan_and_deliver, manager
):
    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)
    _pay(charging_account, "1201.00", days(12), posted=False)
    fee = LateCharge.objects.get(action=letter, kind=ChargeKind.LATE_FEE)

    with pytest.raises(ValidationError, match="cancelled with its letter; there is nothing to waive"):
        charge_waive(charge=fee, manager=manager, note="Goodwill")
    later = _pay(charging_account, "50.00", days(13), to_invoices=False, reference="BANK-2")

    fee.refresh_from_db()
    assert (fee.waived_at, fee.open_amount) == (None, Decimal("40.00"))
    assert later.unallocated_amount() == Decimal("50.00")  # kept on account, not paid to a cancelled fee


def test_a_letter_withdrawn_from_the_queue_cancels_its_charges_and_tells_the_customer_nothing(
    charging_account, plan_and_deliver, collector
):
    """The customer says on the phone, after the letter of day 12 was
    written, that they will pay everything on the 20th: the collector
    withdraws it. (A promise recorded for all it asks for withdraws it
    itself, see test_worklist_follow_ups.) Its charges stay on record as
    cancelled, by whom and why; the letter counts as a step not carried out,
    so its pay-by date holds nothing."""
    from ar_collections.delivery import letter_withdraw
    from ar_collections.dunning import CYCLE_STAND

    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)
    with frozen(days(13)):
        letter_withdraw(letter=letter, actor=collector, reason="Promised to pay everything on the 20th")

    letter.refresh_from_db()
    assert (letter.status, letter.reviewed_by) == (ActionStatus.SKIPPED, collector)
    charges = list(LateCharge.objects.filter(action=letter))
    assert len(charges) == 3 and not LateCharge.objects.filter(action=letter).standing().exists()
    reason = (f"Letter of {format_day(letter.planned_on)} withdrawn from the print queue by carla: "
              "Promised to pay everything on the 20th")
    assert {(c.cancelled_by, c.cancel_reason) for c in charges} == {(collector, reason)}
    event = TimelineEvent.objects.filter(customer=charging_account).latest("pk")
    assert event.summary == (
        reason + "; its charges are cancelled (late fee EUR 40.00 + interest EUR 1.32 + interest EUR 1.84)"
    )
    assert event.actor == collector and len(event.details["cancelled_charges"]) == 3
    stand = charging_account.dunning_cycles.annotate(**CYCLE_STAND).get()
    assert stand.pay_by == letter_of(charging_account, 2).pay_by  # the withdrawn letter's asks nothing


def test_a_letter_withdrawn_cancels_charges_a_payment_reversed_since_had_paid(
    charging_account, plan_and_deliver, collector, manager
):
    """Money on account paid the letter's charges, then the bank took it back:
    the charges are unpaid again, and withdrawn with their letter as any
    charge nothing paid."""
    from ar_collections.delivery import letter_withdraw
    from ar_collections.workspace import payment_reverse

    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)
    bounced = _pay(charging_account, "43.16", days(12), to_invoices=False, posted=False)
    assert not LateCharge.objects.filter(action=letter, open_amount__gt=0).exists()
    with frozen(days(13)):
        payment_reverse(payment=bounced, actor=manager, reason="bounced_cheque", on=days(13))
        letter_withdraw(letter=letter, actor=collector, reason="Promised to pay everything on the 20th")

    charges = LateCharge.objects.filter(action=letter)
    assert [(c.open_amount == c.amount, c.cancelled_by) for c in charges] == [(True, collector)] * 3
    assert not LateCharge.objects.filter(customer=charging_account).standing().exists()


def test_a_letter_marked_posted_as_the_withdrawal_reaches_it_keeps_its_charges(
    charging_account, plan_and_deliver, monkeypatch
):
    from ar_collections import delivery

    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)
    settled = {"status": "paid", "open_amount": 0, "settled_on": days(13)}  # by credit notes, say
    Invoice.objects.filter(customer=charging_account).update(**settled)
    real_atomic = delivery.transaction.atomic

    @contextlib.contextmanager
    def posted_meanwhile(*args, **kwargs):
        DunningAction.objects.filter(pk=letter.pk, printed_at__isnull=True).update(printed_at=timezone.now())
        with real_atomic(*args, **kwargs):
            yield

    monkeypatch.setattr(delivery.transaction, "atomic", posted_meanwhile)
    delivery.letters_withdraw_moot()

    assert LateCharge.objects.filter(action=letter).standing().count() == 3


def test_a_letter_made_moot_that_charged_nothing_is_withdrawn_on_the_timeline(
    make_account, plan_and_deliver, collector
):
    """A prompt payer's letter charges no fee; everything it lists is paid the
    day after it was written, before it went to the post. It leaves the print
    queue as a letter with charges does: on the account's timeline, saying
    who recorded what made it moot, when and why, and once only."""
    account = make_account(reminder_channel=ReminderChannel.LETTER)
    plan_and_deliver(days(3))
    letter = DunningAction.objects.get(customer=account)
    assert (letter.channel, LateCharge.objects.count()) == ("letter", 0)
    events = TimelineEvent.objects.filter(customer=account, summary__startswith="Letter of")

    with frozen(days(4)):
        payment_record(customer=account, amount=Decimal("1200.00"), currency="EUR", received_on=days(4),
                       allocations=[(i, i.open_amount) for i in Invoice.objects.filter(customer=account)],
                       reference="BANK-1", actor=collector)
        worklist_refresh(on=days(4))  # the daily refresh finds nothing more to withdraw

    [event] = events
    assert event.summary == (f"Letter of {format_day(days(3))} not posted: everything it lists was settled "
                             "first; withdrawn from the print queue")
    assert (event.actor, event.occurred_at.date(), event.subject) == (collector, days(4), letter)
    assert event.details["before"] == {"status": "done"} and event.details["after"] == {"status": "skipped"}
    letter.refresh_from_db()
    assert letter.status == ActionStatus.SKIPPED


def test_the_daily_refresh_withdraws_a_letter_made_moot_by_a_credit_note(make_account, plan_and_deliver):
    account = make_account(reminder_channel=ReminderChannel.LETTER)
    plan_and_deliver(days(3))
    Invoice.objects.filter(customer=account).update(status="paid", open_amount=0, settled_on=days(4))

    with frozen(days(5)):
        worklist_refresh(on=days(5))

    event = TimelineEvent.objects.get(customer=account, summary__startswith="Letter of")
    assert "withdrawn from the print queue" in event.summary and event.actor is None
    assert DunningAction.objects.get(customer=account).status == ActionStatus.SKIPPED


def test_a_dispute_settled_by_a_credit_note_withdraws_the_letter_it_made_moot_at_once(
    make_account, plan_and_deliver, manager
):
    """One of the letter's invoices is paid, the other disputed; the credit
    note that ends the dispute settles it, and with it all the letter lists:
    it leaves the print queue then, as after a payment, not the next morning."""
    account = make_account(reminder_channel=ReminderChannel.LETTER)
    plan_and_deliver(days(3))
    letter = DunningAction.objects.get(customer=account)
    small, large = Invoice.objects.filter(customer=account).order_by("total_amount")  # EUR 500, 700
    with frozen(days(4)):
        # Disputed while the letter still asked for the other invoice too: a
        # dispute of all it asks for withdraws it at once (letters_withdraw_held).
        dispute = dispute_open(customer=account, actor=manager, invoice=small, on=days(4),
                               reason=DisputeReason.QUALITY, description="Scratched")
        payment_record(customer=account, amount=large.total_amount, currency="EUR", received_on=days(4),
                       allocations=[(large, large.total_amount)], reference="BANK-1")
        assert letter in letters_in_queue()

        dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.CREDIT_NOTE,
                        amount=small.total_amount, note="Goodwill for the scratches", on=days(4))

    letter.refresh_from_db()
    assert letter.status == ActionStatus.SKIPPED
    assert letter not in letters_in_queue()
    event = TimelineEvent.objects.get(customer=account, summary__startswith="Letter of")
    assert event.summary == (f"Letter of {format_day(days(3))} not posted: everything it lists was settled "
                             "first; withdrawn from the print queue")
    assert event.actor == manager


def test_charges_of_an_unposted_letter_listed_again_only_by_a_later_unposted_letter_are_cancelled(
    charging_account, plan_and_deliver
):
    """The letters of days 12 and 22 both wait in the print queue when
    everything is paid: the later one listed the earlier one's charges, but
    never reached the customer either, so it asked for nothing."""
    to_the_fee_letter(plan_and_deliver)
    next_out_while_the_fee_letter_waits(charging_account, plan_and_deliver, days(22))
    later = letter_of(charging_account, 4)
    assert later.channel == "letter" and not LateCharge.objects.filter(action=later).exists()

    _pay(charging_account, "1201.00", days(22), posted=False)

    assert not LateCharge.objects.filter(customer=charging_account).standing().exists()
    assert set(DunningAction.objects.filter(customer=charging_account, step__position__gte=3)
               .values_list("status", flat=True)) == {ActionStatus.SKIPPED}


def test_charges_a_later_notice_asked_for_stay_when_the_unposted_letter_becomes_moot(
    charging_account, plan_and_deliver, smtp_server
):
    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)  # never posted
    charging_account.contacts.update(reminder_channel=ReminderChannel.EMAIL)
    # The next notice, by e-mail, lists the letter's charges.
    next_out_while_the_fee_letter_waits(charging_account, plan_and_deliver, days(22))
    assert "from an earlier notice" in letter_of(charging_account, 4).body_text

    _pay(charging_account, "1201.00", days(22), posted=False)

    assert LateCharge.objects.filter(action=letter).standing().count() == 3
    letter.refresh_from_db()
    assert letter.status == ActionStatus.SKIPPED  # withdrawn all the same: it never went out
    day = format_day(days(12))
    event = TimelineEvent.objects.get(customer=charging_account, summary__startswith=f"Letter of {day}")
    assert event.summary == (
        f"Letter of {day} not posted: everything it lists was settled first; withdrawn from the print queue; "
        "its charges stand: a later notice asked for them"
    )


def test_a_letter_made_moot_is_not_marked_posted(client, collector, charging_account, plan_and_deliver):
    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)
    _pay(charging_account, "1201.00", days(12), posted=False)
    client.force_login(collector)

    client.post(reverse("collections:letters_printed"), {"letters": [letter.pk]})

    letter.refresh_from_db()
    assert letter.printed_at is None


def test_a_posted_letter_keeps_its_charges_when_its_invoices_are_paid(charging_account, plan_and_deliver):
    to_the_fee_letter(plan_and_deliver)
    letter = letter_of(charging_account, 3)
    _pay(charging_account, "1201.00", days(14))  # after the letter was posted

    assert LateCharge.objects.filter(action=letter).standing().count() == 3


def test_a_paid_charge_cannot_be_waived(charging_account, plan_and_deliver, manager):
    to_the_fee_letter(plan_and_deliver)
    _pay(charging_account, "1244.16", days(13))

    with pytest.raises(ValidationError, match="nothing left to waive"):
        charge_waive(charge=LateCharge.objects.get(kind=ChargeKind.LATE_FEE), manager=manager, note="Kind")
    assert not LateCharge.objects.filter(waived_at__isnull=False).exists()


def test_a_ladder_switched_off_for_a_night_resumes_where_it_stood_and_charges_nothing_twice(
    charging_account, plan_and_deliver
):
    to_the_fee_letter(plan_and_deliver, posted=True)
    cycle = charging_account.dunning_cycles.get()
    policy = LatePaymentPolicy.objects.get(segment=Segment.SYSTEMATIC_LATE)
    LatePaymentPolicy.objects.filter(pk=policy.pk).update(is_active=False)
    plan_and_deliver(days(13))  # no ladder for the segment tonight: the account is still behind
    cycle.refresh_from_db()
    assert cycle.closed_on is None
    LatePaymentPolicy.objects.filter(pk=policy.pk).update(is_active=True)

    for day in (14, 21, 30, 40):
        plan_and_deliver(days(day))
        post_waiting(days(day))

    assert charging_account.dunning_cycles.count() == 1
    actions = charging_account.dunning_actions.order_by("planned_on")
    positions = list(actions.values_list("step__position", flat=True))
    assert positions == sorted(set(positions)) and positions[:3] == [1, 2, 3]  # no step again
    assert LateCharge.objects.filter(kind=ChargeKind.LATE_FEE).count() == 1
    interest_days = list(LateCharge.objects.filter(kind=ChargeKind.INTEREST).values_list("basis", flat=True))
    assert not any("× 40/365" in basis for basis in interest_days), interest_days


def test_an_invoice_newly_overdue_after_the_rest_was_paid_starts_a_cycle_friendly_first(
    make_account, plan_and_deliver, make_invoice
):
    account = make_account()  # prompt payers: steps on days 3, 14, 28, 42 after the due date
    # Held so: a payment recomputes the segment from history, which these invoices alone do not give.
    account.segment_override, account.segment_override_note = Segment.PROMPT, "Always paid on time"
    account.save(update_fields=["segment_override", "segment_override_note"])
    for day in (3, 14):
        plan_and_deliver(days(day))
    fresh = make_invoice(account, issued=days(-10), due=days(20), amount="90.00", number="INV-NEW")
    for invoice in Invoice.objects.filter(customer=account).exclude(pk=fresh.pk):
        payment_record(customer=account, amount=invoice.open_amount, currency="EUR", received_on=days(15),
                       allocations=[(invoice, invoice.open_amount)], reference=f"pay-{invoice.number}")

    plan_and_deliver(days(21))  # INV-NEW a day overdue, not yet in reach: nothing chased is open
    plan_and_deliver(days(23))  # in reach now

    first, second = account.dunning_cycles.order_by("number")
    assert first.closed_on == days(21) and second.closed_on is None
    assert [a.step.position for a in second.actions.all()] == [1]  # the friendly reminder, not step 3
    assert second.actions.get().lines.get().invoice == fresh


def test_an_invoice_already_overdue_when_the_chased_ones_are_paid_starts_a_cycle_friendly_first(
    make_account, plan_and_deliver, make_invoice
):
    """The cycle ends with the money it chased, even when another invoice is
    already in reach by then: that one was never reminded, and must not meet
    the old cycle's next, firmer step (a principal, a credit hold) first."""
    account = make_account()  # prompt payers: steps on days 3, 14, 28, 42 after the due date
    account.segment_override, account.segment_override_note = Segment.PROMPT, "Always paid on time"
    account.save(update_fields=["segment_override", "segment_override_note"])
    for day in (3, 15):  # the letter the day after the e-mail's pay-by date, Monday 16 Mar
        plan_and_deliver(days(day))
    fresh = make_invoice(account, issued=days(-20), due=days(10), amount="90.00", number="INV-NEW")
    for invoice in Invoice.objects.filter(customer=account).exclude(pk=fresh.pk):
        payment_record(customer=account, amount=invoice.open_amount, currency="EUR", received_on=days(16),
                       allocations=[(invoice, invoice.open_amount)], reference=f"pay-{invoice.number}")

    with frozen(days(16)):
        preview = next_step(account, on=days(16))
    plan_and_deliver(days(16))  # INV-NEW six days overdue, in reach since day 13, never chased
    plan_and_deliver(days(20))  # five days after the last contact

    assert (preview.step.position, preview.invoices, preview.due_on) == (1, [fresh], days(20))
    first, second = account.dunning_cycles.order_by("number")
    assert first.closed_on == days(16) and second.closed_on is None
    assert [a.step.position for a in second.actions.all()] == [1]  # the friendly reminder, not step 3
    assert second.actions.get().lines.get().invoice == fresh


def queue_page(client, collector, day: dt.date) -> str:
    client.force_login(collector)
    with frozen(day):
        return " ".join(client.get(reverse("collections:letters")).content.decode().split())


def test_a_reminder_before_the_due_date_sent_as_a_letter_asks_for_payment_by_the_due_date(
    make_account, plan_and_deliver, client, collector, pdf_text
):
    """The systematic late payers' reminder of day -3 goes as a letter for want
    of an e-mail address. It reminds the customer of terms agreed already: a
    later pay-by date than the due date, to give the post its time, would be
    terms we never agreed to, in writing. Written on Friday 27 Feb and posted
    on Monday, the due date, it still names the due date, and the print queue
    does not call it too soon to post."""
    account = make_account(Segment.SYSTEMATIC_LATE, email="")

    plan_and_deliver(days(-3))

    letter = letter_of(account, 1)
    assert (letter.channel, letter.channel_note) == ("letter", "no e-mail address: letter")
    assert letter.pay_by == DUE
    assert "Please pay by: 2 Mar 2026" in pdf_text(letter.letter_pdf.read())
    assert TimelineEvent.objects.filter(customer=account, summary__endswith="pay by 2 Mar 2026").exists()
    page = queue_page(client, collector, DUE)
    assert "Acme Tools" in page  # the letter is in the queue
    assert "too soon for a letter" not in page and "which has passed" not in page


def test_the_queue_says_when_a_reminder_before_the_due_date_is_posted_after_it(
    make_account, plan_and_deliver, client, collector
):
    make_account(Segment.SYSTEMATIC_LATE, email="")
    plan_and_deliver(days(-3))

    page = queue_page(client, collector, days(1))

    assert "Acme Tools" in page
    assert "It asks for payment by 2 Mar 2026, which has passed." in page


def test_a_reminder_before_the_due_date_carried_out_late_still_asks_for_the_due_date(
    make_account, smtp_server
):
    """The mail server put the reminder of day -3 off until day -1: the step's
    three days to pay, counted from then, would run past the due date."""
    account = make_account(Segment.SYSTEMATIC_LATE)
    with frozen(days(-3)):
        run_plan(run=run_start(run_date=days(-3)))

    with frozen(days(-1)):
        actions_deliver(action_ids=[letter_of(account, 1).pk])

    reminder = letter_of(account, 1)
    assert (reminder.status, reminder.channel, reminder.pay_by) == (ActionStatus.DONE, "email", DUE)
    assert len(smtp_server.messages) == 1
    assert TimelineEvent.objects.filter(customer=account, summary__endswith="pay by 2 Mar 2026").exists()


@pytest.mark.parametrize(("written", "posted", "pay_by"), [
    (days(3), days(4), dt.date(2026, 3, 18)),  # Thursday 5 Mar: posted on Friday
    # Friday 6 Mar: posted on Monday 9 Mar; 12 days are Saturday 21 Mar, so Monday 23 Mar
    (days(4), days(7), dt.date(2026, 3, 23)),
])
def test_a_letter_s_days_to_pay_count_from_the_working_day_it_is_posted(
    make_account, plan_and_deliver, client, collector, written, posted, pay_by
):
    """The print queue is worked through each working morning: a letter goes
    to the post the working day after it is written. The policy leaves 12 days
    between contacts here, more than the prompt payers' first step gives (10):
    a letter gives at least those 12 from the day it is posted, and the print
    queue, looked at that day, has nothing to warn of."""
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(min_days_between_contacts=12)

    plan_and_deliver(written)

    letter = letter_of(account, 1)
    assert letter.channel == "letter"
    assert letter.pay_by == pay_by
    page = queue_page(client, collector, posted)
    assert "Acme Tools" in page
    assert "too soon for a letter" not in page and "which has passed" not in page


def test_a_letter_written_before_an_office_holiday_counts_its_days_to_pay_from_the_day_after_it(
    make_account, plan_and_deliver, client, collector
):
    """Friday 6 Mar is a holiday the manager entered: the letter written on
    Thursday goes to the post on Monday 9 Mar, and gives its 12 days from
    then; the print queue, looked at that Monday, has nothing to warn of."""
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(min_days_between_contacts=12)
    Holiday.objects.create(rules=CollectionRules.current(), day=days(4), name="Founders' Day")

    plan_and_deliver(days(3))

    letter = letter_of(account, 1)
    assert letter.pay_by == dt.date(2026, 3, 23)  # 12 days from 9 Mar are a Saturday: the Monday after
    page = queue_page(client, collector, days(7))
    assert "Acme Tools" in page
    assert "too soon for a letter" not in page and "which has passed" not in page


def test_the_step_after_such_a_letter_waits_for_the_letter_s_own_pay_by_date(make_account, plan_and_deliver):
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(min_days_between_contacts=12)
    plan_and_deliver(days(3))
    post_waiting(days(4))
    assert letter_of(account, 1).pay_by == days(16)

    plan_and_deliver(days(16))  # step 2 is due on day 14 and 12 days after the post, but it asks until today
    assert account.dunning_actions.count() == 1

    plan_and_deliver(days(17))
    assert account.dunning_actions.count() == 2


def test_once_nothing_chased_is_open_the_preview_starts_the_next_cycle_friendly_first(
    make_account, plan_and_deliver, make_invoice
):
    """The cycle closes at the next run; the account page says so already, not
    the closing cycle's next step for an invoice not yet due."""
    account = make_account()  # prompt payers: steps on days 3, 14, 28, 42 after the due date
    account.segment_override, account.segment_override_note = Segment.PROMPT, "Always paid on time"
    account.save(update_fields=["segment_override", "segment_override_note"])
    for day in (3, 14):
        plan_and_deliver(days(day))
    fresh = make_invoice(account, issued=days(-10), due=days(20), amount="90.00", number="INV-NEW")
    for invoice in Invoice.objects.filter(customer=account).exclude(pk=fresh.pk):
        payment_record(customer=account, amount=invoice.open_amount, currency="EUR", received_on=days(15),
                       allocations=[(invoice, invoice.open_amount)], reference=f"pay-{invoice.number}")

    with frozen(days(15)):
        preview = next_step(account, on=days(15))

    assert account.dunning_cycles.get().closed_on is None  # not yet: the next run closes it
    assert (preview.step.position, preview.step.get_action_display(), preview.step.get_tone_display()) == (
        1, "E-mail", "Friendly")
    assert preview.due_on == days(23)
    assert preview.invoices == [fresh]


def test_while_a_chased_invoice_is_open_the_preview_goes_on_with_the_cycle(
    make_account, plan_and_deliver, make_invoice
):
    account = make_account()
    account.segment_override, account.segment_override_note = Segment.PROMPT, "Always paid on time"
    account.save(update_fields=["segment_override", "segment_override_note"])
    for day in (3, 15):  # the letter the day after the e-mail's pay-by date, Monday 16 Mar
        plan_and_deliver(days(day))
    first = Invoice.objects.filter(customer=account).order_by("number").first()
    payment_record(customer=account, amount=first.open_amount, currency="EUR", received_on=days(16),
                   allocations=[(first, first.open_amount)], reference="pay-first")

    with frozen(days(16)):
        preview = next_step(account, on=days(16))

    assert (preview.step.position, preview.due_on) == (3, days(28))


def test_the_preview_judges_a_cycle_over_by_the_account_s_own_ladder_not_another_segment_s(make_account):
    """A cycle that has chased nothing yet is over once nothing open is in
    reach of the account's ladder. The systematic late payers' ladder reaches
    an invoice three days before it is due, a prompt payer's three days after:
    two days before the due date a prompt payer's cycle (a cause noted that
    would switch it to the distressed ladder's call) is over, and the preview
    is the prompt ladder's friendly e-mail of a fresh cycle."""
    account = make_account()  # prompt payers, two invoices due on DUE; steps on days 3, 14, 28, 42
    DunningCycle.objects.create(customer=account, number=1, opened_on=days(-3), cause=MissCause.CANNOT_PAY)

    with frozen(days(-2)):
        preview = next_step(account, on=days(-2))

    assert (preview.step.position, preview.step.get_action_display(), preview.step.get_tone_display()) == (
        1, "E-mail", "Friendly")
    assert preview.due_on == days(3)


# --- the fetcher ------------------------------------------------------------------


def test_the_fetcher_reads_our_static_files():
    stylesheet = Path(finders.find("pdf/dunning_letter.css"))

    assert static_file_for(stylesheet.as_uri()) == stylesheet.resolve()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://127.0.0.1:9/pixel.png",
        "https://example.com/logo.png",
        "data:text/css,body{}",
        Path(finders.find("pdf/dunning_letter.css")).parent.as_uri() + "/../../../../etc/passwd",
        "file://intranet-host/share/secret.css",
    ],
    ids=["passwd", "http", "https", "data", "dot-dot", "remote-file"],
)
def test_the_fetcher_refuses_anything_else(url):
    with pytest.raises(ResourceRefused, match="refused to fetch"):
        static_file_for(url)


def test_an_image_outside_our_static_files_in_inline_svg_fails_the_letter_too():
    """WeasyPrint's SVG code catches a refused image and only logs it."""
    html = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
            '<image href="http://127.0.0.1:9/pixel.png" width="10" height="10"/></svg><p>x</p>')
    with pytest.raises(LetterRenderError, match="refused to fetch"):
        html_to_pdf(html)


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ('<link rel="stylesheet" href="file:///etc/passwd"><p>x</p>', "outside our static files"),
        ('<p>x<img src="http://127.0.0.1:9/pixel.png"></p>', "only use our own static files"),
    ],
    ids=["passwd", "http"],
)
def test_a_letter_pointing_outside_our_static_files_is_refused_with_a_clear_error(html, reason):
    with pytest.raises(LetterRenderError, match=reason):
        html_to_pdf(html)


def test_a_letter_may_use_our_static_files_by_relative_url(pdf_text):
    pdf = html_to_pdf('<link rel="stylesheet" href="pdf/dunning_letter.css"><p>Hello</p>')

    assert "Hello" in pdf_text(pdf)


def test_a_letter_that_cannot_be_rendered_fails_once_with_its_reason_and_is_not_tried_again(
    make_account, settings, tmp_path, client, manager, eager_celery, django_capture_on_commit_callbacks
):
    """A poison letter: whatever its wording makes WeasyPrint do, it fails the
    first time, says why on the timeline and counts as failed on the runs
    page; the nightly runs after it leave it alone rather than render it again."""
    from ar_collections.dunning import dunning_run_execute

    wording = tmp_path / "wording" / "email" / "dunning" / "friendly"
    wording.mkdir(parents=True)
    (wording / "en.html").write_text(
        '{% extends layout %}{% block intro %}<p><img src="http://127.0.0.1:9/logo.png"></p>{% endblock %}'
    )
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [tmp_path / "wording", *engine["DIRS"]]}]
    account = make_account(Segment.PROMPT, email="")

    for day in range(3, 10):  # the step's night, then six more nightly runs with their sweeps
        with frozen(days(day)), django_capture_on_commit_callbacks(execute=True):
            dunning_run_execute(run_date=days(day))

    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.attempts, action.channel) == (ActionStatus.FAILED, 1, "")
    assert action.error.startswith("LetterRenderError: ") and "only use our own static files" in action.error
    [event] = TimelineEvent.objects.filter(customer=account, kind=EventKind.DUNNING)
    assert event.summary == f"Friendly reminder (step 1, E-mail) failed, nothing was sent: {action.error}"
    assert not action.letter_pdf and not action.charges.exists()
    client.force_login(manager)
    with frozen(days(9)):
        runs = client.get(reverse("collections:runs"))
    failed = [row for run, row in runs.context["rows"] if run.run_date == days(3)]
    assert failed and failed[0][-1] == 1  # the Failed column


def test_charges_kept_for_a_later_letter_are_cancelled_when_that_letter_is_withdrawn_too(
    charging_account, plan_and_deliver, collector
):
    """The letters of days 12 and 22 both wait in the print queue. The one of
    day 12 is withdrawn: its charges stand, as the one of day 21 lists them.
    Then that one is withdrawn as well: no notice that reached the customer
    asked for the charges, so they are cancelled, on the timeline of the
    letter that made them."""
    from ar_collections.delivery import letter_withdraw

    to_the_fee_letter(plan_and_deliver)
    next_out_while_the_fee_letter_waits(charging_account, plan_and_deliver, days(22))
    earlier, later = letter_of(charging_account, 3), letter_of(charging_account, 4)
    with frozen(days(22)):
        letter_withdraw(letter=earlier, actor=collector, reason="Disputed on the phone")
        assert LateCharge.objects.filter(action=earlier).standing().count() == 3

        letter_withdraw(letter=later, actor=collector, reason="Promised to pay on the 30th")

    assert not LateCharge.objects.filter(customer=charging_account).standing().exists()
    assert {c.cancelled_by for c in LateCharge.objects.filter(action=earlier)} == {collector}
    event = TimelineEvent.objects.filter(customer=charging_account, subject_id=earlier.pk).latest("pk")
    assert event.summary == (
        f"Letter of {format_day(earlier.planned_on)}, withdrawn before the post: its charges are cancelled "
        "(late fee EUR 40.00 + interest EUR 1.32 + interest EUR 1.84), the letter of "
        f"{format_day(later.planned_on)} that listed them having been withdrawn too"
    )
    assert event.actor == collector and len(event.details["cancelled_charges"]) == 3
