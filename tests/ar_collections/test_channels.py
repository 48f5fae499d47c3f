"""Whom a dunning step goes to and by which channel, and why (route_for)."""

import datetime as dt

import pytest

from ar_collections.channels import route_for, step_as_sent
from ar_collections.models import Channel, DunningAction, DunningStep, StepAction, StepFee
from customers.models import ContactAbsence, ContactRole, ReminderChannel, Segment

ON = dt.date(2026, 8, 3)


def step(action: str) -> DunningStep:
    return DunningStep.objects.filter(action=action, policy__is_active=True).order_by("id").first()


def route(customer, action: str):
    return route_for(action=DunningAction(customer=customer, step=step(action), planned_on=ON), day=ON)


@pytest.fixture
def account(make_customer):
    return make_customer(name="Acme Tools", segment=Segment.PROMPT)


@pytest.fixture
def anna(account, make_contact):
    return make_contact(account, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True,
                        postal_address="Acme Tools\nMain Street 1\n10115 Berlin")


def test_an_email_step_goes_by_email_to_the_billing_contact(account, anna):
    assert route(account, StepAction.EMAIL) == (anna, Channel.EMAIL, "")


def test_an_absent_billing_contact_is_replaced_by_the_stand_in_and_the_note_says_so(
    account, anna, make_contact
):
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=dt.date(2026, 8, 1), ends_on=dt.date(2026, 8, 15),
                                  delegate=ben)

    assert route(account, StepAction.EMAIL) == (
        ben, Channel.EMAIL, "Anna Clerk away until 15 Aug: sent to Ben Backup"
    )


def test_of_overlapping_absences_the_one_naming_a_stand_in_decides(account, anna, make_contact):
    """Away all August, nobody named; later, Ben covers the first fortnight."""
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=dt.date(2026, 7, 20), ends_on=dt.date(2026, 8, 31))
    ContactAbsence.objects.create(contact=anna, starts_on=dt.date(2026, 8, 1), ends_on=dt.date(2026, 8, 15),
                                  delegate=ben)

    assert account.billing_contact(on=ON) == ben
    assert route(account, StepAction.EMAIL) == (
        ben, Channel.EMAIL, "Anna Clerk away until 31 Aug: sent to Ben Backup"
    )


def test_a_stand_in_away_too_is_not_written_to_the_step_becomes_a_call_task_saying_why(
    account, anna, make_contact
):
    """Ben's own absence was recorded after Anna named him."""
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=dt.date(2026, 8, 1), ends_on=dt.date(2026, 8, 15),
                                  delegate=ben)
    ContactAbsence.objects.create(contact=ben, starts_on=dt.date(2026, 8, 3), ends_on=dt.date(2026, 8, 10))

    assert account.billing_contact(on=ON) is None
    assert route(account, StepAction.EMAIL) == (None, Channel.PHONE, (
        "Anna Clerk away until 15 Aug, and Ben Backup, written to instead, away until 10 Aug: "
        "call task for the collector"))


def test_two_contacts_saved_naming_each_other_leave_nobody_to_write_to(account, anna, make_contact):
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=dt.date(2026, 8, 1), ends_on=dt.date(2026, 8, 15),
                                  delegate=ben)
    ContactAbsence.objects.create(contact=ben, starts_on=dt.date(2026, 8, 1), ends_on=dt.date(2026, 8, 5),
                                  delegate=anna)

    assert route(account, StepAction.LETTER) == (None, Channel.PHONE, (
        "Anna Clerk away until 15 Aug, and Ben Backup, written to instead, away until 5 Aug: "
        "call task for the collector"))


def test_a_stand_in_away_who_named_someone_in_hands_the_step_on(account, anna, make_contact):
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    cleo = make_contact(account, name="Cleo Third", email="cleo@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=dt.date(2026, 8, 1), ends_on=dt.date(2026, 8, 15),
                                  delegate=ben)
    ContactAbsence.objects.create(contact=ben, starts_on=dt.date(2026, 8, 3), ends_on=dt.date(2026, 8, 10),
                                  delegate=cleo)

    assert route(account, StepAction.EMAIL) == (
        cleo, Channel.EMAIL, "Anna Clerk away until 15 Aug: sent to Cleo Third"
    )


def test_an_escalation_whose_principal_and_stand_in_are_away_goes_to_the_billing_contact(
    account, anna, make_contact
):
    paul = make_contact(account, name="Paul Owner", role=ContactRole.PRINCIPAL, email="paul@acme.test")
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=paul, starts_on=dt.date(2026, 8, 1), ends_on=dt.date(2026, 8, 15),
                                  delegate=ben)
    ContactAbsence.objects.create(contact=ben, starts_on=dt.date(2026, 8, 3), ends_on=dt.date(2026, 8, 3))

    assert route(account, StepAction.ESCALATE_PRINCIPAL) == (anna, Channel.EMAIL, (
        "Paul Owner away until 15 Aug, and Ben Backup, written to instead, away until 3 Aug: "
        "sent to the billing contact"))


def test_an_escalation_reaches_the_principal_by_the_principal_s_preferred_channel(
    account, anna, make_contact
):
    paul = make_contact(account, name="Paul Owner", role=ContactRole.PRINCIPAL,
                        reminder_channel=ReminderChannel.LETTER, postal_address="Paul Owner\nHill 2\nBerlin")

    assert route(account, StepAction.ESCALATE_PRINCIPAL) == (paul, Channel.LETTER, "")


def test_a_principal_who_prefers_the_phone_becomes_a_call_task(account, anna, make_contact):
    paul = make_contact(account, name="Paul Owner", role=ContactRole.PRINCIPAL, phone="+49 30 1",
                        reminder_channel=ReminderChannel.PHONE)

    assert route(account, StepAction.ESCALATE_PRINCIPAL) == (paul, Channel.PHONE, "")


def test_an_escalation_that_charges_a_fee_goes_in_writing_to_a_principal_who_prefers_calls(
    account, anna, make_contact
):
    paul = make_contact(account, name="Paul Owner", role=ContactRole.PRINCIPAL, phone="+49 30 1",
                        email="paul@acme.test", reminder_channel=ReminderChannel.PHONE)
    escalation = step(StepAction.ESCALATE_PRINCIPAL)
    StepFee.objects.create(step=escalation, currency="EUR", amount="40.00")

    assert route(account, StepAction.ESCALATE_PRINCIPAL) == (
        paul, Channel.EMAIL, "Paul Owner prefers calls, but the step charges a fee or interest: in writing"
    )


def test_without_a_principal_an_escalation_goes_to_the_billing_contact(account, anna):
    assert route(account, StepAction.ESCALATE_PRINCIPAL) == (
        anna, Channel.EMAIL, "no principal on file: sent to the billing contact"
    )


@pytest.mark.parametrize(
    ("step_action", "preference", "channel", "note"),
    [
        (StepAction.EMAIL, ReminderChannel.LETTER, Channel.LETTER, "Anna Clerk prefers letters"),
        (StepAction.LETTER, ReminderChannel.EMAIL, Channel.EMAIL, "Anna Clerk prefers e-mails"),
        # A pay-by date must be in writing: a phone preference keeps the written step.
        (StepAction.EMAIL, ReminderChannel.PHONE, Channel.EMAIL, ""),
        (StepAction.LETTER, ReminderChannel.PHONE, Channel.LETTER, ""),
    ],
    ids=["prefers-letter", "prefers-email", "phone-keeps-email", "phone-keeps-letter"],
)
def test_a_written_step_honours_a_written_preference_only(account, anna, step_action, preference, channel,
                                                          note):
    anna.reminder_channel = preference
    anna.phone = "+49 30 2"
    anna.save()

    assert route(account, step_action) == (anna, channel, note)


def test_no_email_address_falls_back_to_a_letter(account, anna):
    anna.email = ""
    anna.save()

    assert route(account, StepAction.EMAIL) == (anna, Channel.LETTER, "no e-mail address: letter")


def test_no_postal_address_falls_back_to_an_email(account, anna):
    anna.postal_address = ""
    anna.reminder_channel = ReminderChannel.LETTER
    anna.save()

    assert route(account, StepAction.LETTER) == (anna, Channel.EMAIL, "no postal address: e-mail")


def test_neither_address_becomes_a_call_task_for_the_collector(account, anna):
    anna.email = anna.postal_address = ""
    anna.save()

    assert route(account, StepAction.EMAIL) == (
        anna, Channel.PHONE, "no e-mail or postal address: call task for the collector"
    )


def test_a_call_step_is_a_call_to_the_billing_contact(account, anna):
    assert route(account, StepAction.CALL_TASK) == (anna, Channel.PHONE, "no phone number on file")


@pytest.mark.parametrize("step_action", [StepAction.MANAGER_REVIEW, StepAction.CREDIT_HOLD,
                                         StepAction.SWITCH_TO_COD])
def test_reviews_and_holds_are_internal_with_nobody_contacted(account, anna, step_action):
    assert route(account, step_action) == (None, Channel.INTERNAL, "")


def test_an_account_without_contacts_gets_a_call_task(account):
    assert route(account, StepAction.EMAIL) == (
        None, Channel.PHONE, "no billing contact on file: call task for the collector"
    )


@pytest.mark.parametrize(("step_action", "channel", "said"), [
    (StepAction.EMAIL, Channel.EMAIL, "E-mail"),
    (StepAction.EMAIL, "", "E-mail"),
    (StepAction.EMAIL, Channel.LETTER, "E-mail step, sent as a letter"),
    (StepAction.LETTER, Channel.EMAIL, "PDF letter, e-mailed as an attachment"),
    (StepAction.LETTER, Channel.PHONE, "PDF letter step, made a call task for the collector"),
    (StepAction.CALL_TASK, Channel.PHONE, "Call task for the collector"),
    (StepAction.ESCALATE_PRINCIPAL, Channel.LETTER, "Escalate to the principal, by letter"),
    (StepAction.CREDIT_HOLD, Channel.INTERNAL, "Credit hold"),
])
def test_a_step_is_named_with_the_channel_it_went_by_only_when_that_is_not_its_own(
    step_action, channel, said
):
    assert step_as_sent(step_action, channel) == said
