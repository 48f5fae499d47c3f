import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from customers.models import ContactAbsence, ContactRole, Customer, EventKind, ReminderChannel, TimelineEvent

AUG = dt.date(2026, 8, 5)


@pytest.fixture
def clerk(customer, make_contact):
    return make_contact(customer, name="Anna Clerk", is_primary_billing=True)


@pytest.fixture
def backup(customer, make_contact):
    return make_contact(customer, name="Ben Backup")


def test_the_primary_billing_contact_is_addressed(customer, clerk, backup):
    assert customer.billing_contact(on=AUG) == clerk


def test_an_absent_billing_contact_hands_over_to_its_delegate(customer, clerk, backup):
    ContactAbsence.objects.create(contact=clerk, starts_on=dt.date(2026, 8, 1),
                                  ends_on=dt.date(2026, 8, 15), delegate=backup)

    assert customer.billing_contact(on=AUG) == backup
    assert customer.billing_contact(on=dt.date(2026, 8, 16)) == clerk


def test_delegates_are_followed_in_a_chain_but_never_to_someone_away(customer, clerk, backup, make_contact):
    third = make_contact(customer, name="Cleo Third")
    ContactAbsence.objects.create(contact=clerk, starts_on=AUG, ends_on=AUG, delegate=backup)
    ContactAbsence.objects.create(contact=backup, starts_on=AUG, ends_on=AUG, delegate=third)
    assert customer.billing_contact(on=AUG) == third

    # Saved before absences were checked against their stand-ins' (or Cleo's
    # absence named Anna later): all three away, nobody is written to.
    ContactAbsence.objects.create(contact=third, starts_on=AUG, ends_on=AUG, delegate=clerk)
    assert customer.billing_contact(on=AUG) is None


def test_a_contact_away_naming_nobody_is_still_written_to(customer, clerk, backup):
    ContactAbsence.objects.create(contact=clerk, starts_on=AUG, ends_on=AUG)

    assert customer.billing_contact(on=AUG) == clerk


def test_a_stand_in_away_naming_nobody_is_not_written_to(customer, clerk, backup):
    ContactAbsence.objects.create(contact=clerk, starts_on=AUG, ends_on=AUG, delegate=backup)
    ContactAbsence.objects.create(contact=backup, starts_on=AUG, ends_on=AUG)

    assert customer.billing_contact(on=AUG) is None
    assert customer.billing_contact(on=AUG + dt.timedelta(days=1)) == clerk


def test_without_a_primary_the_first_ap_contact_is_used_and_escalation_finds_the_principal(
    customer, make_contact
):
    make_contact(customer, name="Paula Purchasing", role=ContactRole.PURCHASING)
    ap = make_contact(customer, name="Alex AP", role=ContactRole.AP)
    owner = make_contact(customer, name="Olga Owner", role=ContactRole.PRINCIPAL)

    assert customer.billing_contact(on=AUG) == ap
    assert customer.principal_contact(on=AUG) == owner


def test_a_customer_has_at_most_one_primary_billing_contact(customer, clerk, make_contact):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_contact(customer, is_primary_billing=True)


def test_a_contact_must_be_reachable_on_the_channel_it_prefers(customer, make_contact):
    contact = make_contact(customer, email="", phone="", reminder_channel=ReminderChannel.PHONE,
                           invoice_delivery="e_invoice")
    with pytest.raises(ValidationError) as error:
        contact.full_clean()
    assert "phone" in error.value.message_dict


def test_a_contact_is_told_every_rule_it_breaks_at_once_each_on_its_field(customer, make_contact):
    contact = make_contact(customer, email="", phone="", postal_address="", invoice_delivery="paper",
                           reminder_channel=ReminderChannel.PHONE)
    with pytest.raises(ValidationError) as error:
        contact.full_clean()
    assert error.value.message_dict == {
        "postal_address": ["A postal address is needed for paper invoices."],
        "phone": ["A phone number is needed for phone reminders."],
    }


def test_a_contact_without_an_e_mail_is_told_both_what_needs_one(customer, make_contact):
    contact = make_contact(customer, email="", invoice_delivery="pdf_email",
                           reminder_channel=ReminderChannel.EMAIL)
    with pytest.raises(ValidationError) as error:
        contact.full_clean()
    assert error.value.message_dict == {"email": [
        "An e-mail address is needed to e-mail invoices.",
        "An e-mail address is needed for e-mail reminders.",
    ]}


def test_an_absence_cannot_end_before_it_starts(clerk):
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactAbsence.objects.create(contact=clerk, starts_on=AUG, ends_on=AUG - dt.timedelta(days=1))


def test_a_delegate_must_belong_to_the_same_customer(clerk, make_customer, make_contact):
    stranger = make_contact(make_customer())
    absence = ContactAbsence(contact=clerk, starts_on=AUG, ends_on=AUG, delegate=stranger)
    with pytest.raises(ValidationError) as error:
        absence.full_clean()
    assert error.value.message_dict["delegate"] == ["The stand-in must be a contact of the same customer."]


def test_timeline_events_cannot_be_edited_through_the_orm(customer):
    event = TimelineEvent.objects.create(customer=customer, kind=EventKind.NOTE, summary="Called")
    event.summary = "Rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_database_refuses_to_rewrite_or_delete_timeline_events(customer):
    event = TimelineEvent.objects.create(customer=customer, kind=EventKind.NOTE, summary="Called")
    for statement in (
        "UPDATE customers_timelineevent SET summary = 'x' WHERE id = %s",
        "DELETE FROM customers_timelineevent WHERE id = %s",
    ):
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [event.pk])
    assert TimelineEvent.objects.get(pk=event.pk).summary == "Called"


def test_a_timeline_event_is_named_with_its_day_and_local_time_as_the_timeline_writes_them(
    customer, settings
):
    settings.TIME_ZONE = "Europe/Berlin"
    event = TimelineEvent(customer=customer, kind=EventKind.ACCOUNT_CHANGED, summary="Terms changed",
                          occurred_at=dt.datetime(2025, 8, 4, 22, 30, tzinfo=dt.UTC))

    assert str(event) == "5 Aug 2025 00:30 Account card changed: Terms changed"


def test_an_account_with_its_people_and_referrer_loaded_is_checked_without_a_query(
    customer, make_customer, manager, django_assert_num_queries
):
    """The card's form and an import set the collector, relationship owner and
    referrer as rows they read already: checking the account asks for none
    of them again, nor for the check constraints its fields' validators hold."""
    account = Customer(account_number="C-NEW", name="New Ltd", collector=manager, relationship_owner=manager,
                       referred_by=customer)

    with django_assert_num_queries(0):
        account.full_clean(validate_unique=False)


def test_an_account_s_check_constraints_still_refuse_what_their_fields_refuse(customer):
    customer.credit_limit_amount = Decimal("-1.00")
    customer.payment_terms_days = 366

    with pytest.raises(ValidationError) as refused:
        customer.full_clean()

    assert set(refused.value.message_dict) == {"credit_limit_amount", "payment_terms_days"}
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(credit_limit_amount=Decimal("-1.00"))


def test_an_account_whose_collector_is_given_by_id_alone_is_checked_against_the_users(customer):
    customer.collector_id = 10**9

    with pytest.raises(ValidationError) as refused:
        customer.full_clean()

    assert "collector" in refused.value.message_dict
