"""Changing an account: the card, contacts and absences, with and without htmx."""

from __future__ import annotations

import datetime as dt
import html as html_text
import re
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from arcrm.dates import format_day
from arcrm.roles import INTEGRATION
from customers import services
from customers.models import (
    Contact,
    ContactAbsence,
    ContactRole,
    Customer,
    EventKind,
    ReminderChannel,
    TermsType,
    TimelineEvent,
)

HTMX = {"HX-Request": "true"}
# Absences below are dated in 2030: still to come on this frozen day, so the page shows them.
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def card_data(customer: Customer, **changes) -> dict:
    """What the edit form posts when nothing is touched, with `changes` applied."""
    data = {
        "name": customer.name,
        "account_number": customer.account_number,
        "legal_name": customer.legal_name,
        "industry": customer.industry,
        "business_description": customer.business_description,
        "buying_reasons": "\n".join(customer.buying_reasons),
        "customer_since": customer.customer_since.isoformat(),
        "collector": customer.collector_id,
        "relationship_owner": customer.relationship_owner_id or "",
        "special_bond": customer.special_bond,
        "referred_by": customer.referred_by.account_number if customer.referred_by else "",
        "currency": customer.currency,
        "credit_limit_amount": str(customer.credit_limit_amount),
        "terms_type": customer.terms_type,
        "payment_terms_days": customer.payment_terms_days,
        "on_credit_hold": customer.on_credit_hold,
        "ap_run_days": ", ".join(str(day) for day in customer.ap_run_days),
        "ordering_rhythm": customer.ordering_rhythm,
        "typical_order_interval_days": customer.typical_order_interval_days or "",
        "notes": customer.notes,
    }
    data.update(changes)
    # An unticked checkbox is simply not posted.
    return {key: ("on" if value is True else value) for key, value in data.items() if value is not False}


def contact_data(**changes) -> dict:
    data = {
        "name": "Jana Novak",
        "job_title": "AP clerk",
        "role": ContactRole.AP,
        "email": "jana@acme.example",
        "phone": "",
        "postal_address": "",
        "language": "en",
        "invoice_delivery": "pdf_email",
        "reminder_channel": "email",
        "best_time_to_call": "",
        "is_primary_billing": False,
        "notes": "",
    }
    data.update(changes)
    return {key: ("on" if value is True else value) for key, value in data.items() if value is not False}


def last_event() -> TimelineEvent:
    return TimelineEvent.objects.latest("id")


# --- Who may change what ------------------------------------------------------


@pytest.fixture
def requests_that_change(customer, make_contact):
    """One valid POST for each mutating view, by name."""
    jana = make_contact(customer, name="Jana")
    bob = make_contact(customer, name="Bob")
    absence = ContactAbsence.objects.create(
        contact=jana, starts_on=dt.date(2030, 8, 1), ends_on=dt.date(2030, 8, 15)
    )
    return {
        "edit card": (reverse("customers:edit", args=[customer.pk]), card_data(customer, name="X")),
        "add contact": (reverse("customers:contact_add", args=[customer.pk]), contact_data()),
        "edit contact": (
            reverse("customers:contact_edit", args=[customer.pk, jana.pk]),
            contact_data(name="Jana", email="new@acme.example"),
        ),
        "delete contact": (reverse("customers:contact_delete", args=[customer.pk, bob.pk]), {}),
        "add absence": (
            reverse("customers:absence_add", args=[customer.pk, jana.pk]),
            {"starts_on": "2030-09-01", "ends_on": "2030-09-02", "delegate": bob.pk, "note": ""},
        ),
        "delete absence": (
            reverse("customers:absence_delete", args=[customer.pk, absence.pk]), {}
        ),
    }


VIEWS = ["edit card", "add contact", "edit contact", "delete contact", "add absence", "delete absence"]
FORM_VIEWS = ["edit card", "add contact", "edit contact", "add absence"]


def database_state(customer: Customer) -> tuple:
    customer.refresh_from_db()
    return (
        customer.name,
        sorted(Contact.objects.values_list("name", "email")),
        sorted(ContactAbsence.objects.values_list("starts_on", "ends_on")),
        TimelineEvent.objects.count(),
    )


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("intruder", ["other_collector", "viewer"])
def test_people_who_may_only_read_the_account_are_refused(
    client, customer, requests_that_change, request, view, intruder
):
    url, data = requests_that_change[view]
    before = database_state(customer)
    client.force_login(request.getfixturevalue(intruder))

    response = client.post(url, data)

    assert response.status_code == 403
    assert database_state(customer) == before


@pytest.mark.parametrize("view", VIEWS)
def test_a_user_without_a_role_is_refused(client, customer, requests_that_change, view):
    url, data = requests_that_change[view]
    before = database_state(customer)
    client.force_login(User.objects.create_user("nobody"))

    assert client.post(url, data).status_code == 403
    assert database_state(customer) == before


@pytest.mark.parametrize("view", VIEWS)
def test_anonymous_visitors_are_sent_to_the_login_page(client, customer, requests_that_change, view):
    url, data = requests_that_change[view]
    before = database_state(customer)

    response = client.post(url, data)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert database_state(customer) == before


@pytest.mark.parametrize("view", ["delete contact", "delete absence"])
def test_deleting_needs_a_post(client, collector, customer, requests_that_change, view):
    url, _ = requests_that_change[view]
    before = database_state(customer)
    client.force_login(collector)

    assert client.get(url).status_code == 405
    assert database_state(customer) == before


@pytest.mark.parametrize("view", FORM_VIEWS)
def test_forms_accept_only_get_and_post(client, collector, customer, requests_that_change, view):
    url, _ = requests_that_change[view]
    client.force_login(collector)

    assert client.put(url).status_code == 405
    assert client.delete(url).status_code == 405


@pytest.mark.parametrize("view", FORM_VIEWS)
def test_a_form_is_a_page_of_its_own_without_htmx(
    client, collector, customer, requests_that_change, view
):
    url, _ = requests_that_change[view]
    client.force_login(collector)

    response = client.get(url)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html
    assert f'action="{url}"' in html
    assert 'method="post"' in html
    assert "hx-post" not in html  # posts as a plain form: there is no section to swap here


@pytest.mark.parametrize("view", FORM_VIEWS)
def test_a_form_loads_into_the_account_page_with_htmx(
    client, collector, customer, requests_that_change, view
):
    url, _ = requests_that_change[view]
    client.force_login(collector)

    response = client.get(url, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert f'action="{url}"' in html
    assert f'hx-post="{url}"' in html


@pytest.mark.parametrize("view", VIEWS)
def test_a_manager_may_change_any_account(
    client, manager, customer, requests_that_change, view
):
    url, data = requests_that_change[view]
    client.force_login(manager)

    response = client.post(url, data)

    assert response.status_code == 302
    assert last_event().actor == manager


# --- The account card ---------------------------------------------------------


def test_saving_the_card_changes_it_and_records_who_changed_what(client, collector, customer):
    client.force_login(collector)

    response = client.post(
        reverse("customers:edit", args=[customer.pk]),
        card_data(
            customer,
            business_description="Makes hand tools.",
            buying_reasons="price\n\n  delivery speed \nservice\nquality",
            ap_run_days="30, 15,15",
            ordering_rhythm="Orders at the start of every month",
        ),
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.business_description == "Makes hand tools."
    assert customer.buying_reasons == ["price", "delivery speed", "service", "quality"]
    assert customer.ap_run_days == [15, 30]
    assert customer.ordering_rhythm == "Orders at the start of every month"
    event = last_event()
    assert event.customer == customer
    assert event.kind == EventKind.ACCOUNT_CHANGED
    assert event.actor == collector
    assert event.details == {
        "before": {
            "business_description": "",
            "buying_reasons": ["price", "delivery speed", "service"],
            "ap_run_days": [],
            "ordering_rhythm": "",
        },
        "after": {
            "business_description": "Makes hand tools.",
            "buying_reasons": ["price", "delivery speed", "service", "quality"],
            "ap_run_days": [15, 30],
            "ordering_rhythm": "Orders at the start of every month",
        },
    }
    assert "why they buy from us" in event.summary
    assert "Account card saved." in client.get(response.url).content.decode()


def test_saving_the_card_with_htmx_returns_the_updated_card(client, collector, customer):
    client.force_login(collector)

    response = client.post(
        reverse("customers:edit", args=[customer.pk]),
        card_data(customer, name="Acme Tools & Dies"),
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="account-card"')
    assert "Acme Tools &amp; Dies" in html
    assert 'id="messages"' in html and 'hx-swap-oob="innerHTML"' in html
    assert "Account card saved." in html
    assert Customer.objects.get(pk=customer.pk).name == "Acme Tools & Dies"


def header_of(html: str) -> str:
    return re.search(r'<section id="account-header".*?</section>', html, re.S).group(0)


def test_a_credit_hold_set_with_htmx_shows_in_the_header_and_on_the_timeline(client, manager, customer):
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, on_credit_hold=True, terms_reason="Two notices unanswered"),
                           headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    header = header_of(html)
    assert 'hx-swap-oob="true"' in header and "Credit hold" in header
    assert re.search(r'<div id="timeline" hx-swap-oob="true">.*Account card changed', html, re.S)


def test_an_integration_account_is_not_offered_nor_taken_as_relationship_owner(client, manager, customer):
    """The ERP's login signs API requests; it owns no relationship, and a
    manager choosing the owner should not find it among the people."""
    erp = User.objects.create_user(username="erp", first_name="ERP", last_name="integration")
    erp.groups.add(Group.objects.get(name=INTEGRATION))
    client.force_login(manager)
    url = reverse("customers:edit", args=[customer.pk])

    menu = re.search(r'<select name="relationship_owner".*?</select>', client.get(url).content.decode(), re.S)
    assert "Carla" in menu.group(0) or "carla" in menu.group(0), menu.group(0)
    assert "ERP" not in menu.group(0)

    response = client.post(url, card_data(customer, relationship_owner=erp.pk))
    assert response.status_code == 422
    customer.refresh_from_db()
    assert customer.relationship_owner_id != erp.pk


def test_saving_an_unchanged_card_records_nothing(client, collector, customer):
    client.force_login(collector)

    client.post(reverse("customers:edit", args=[customer.pk]), card_data(customer))

    assert not TimelineEvent.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ap_run_days": "15, 32"}, "“32” is not a day of the month"),
        ({"ap_run_days": "mid-month"}, "“mid-month” is not a day of the month"),
        ({"ap_run_days": "15, ³"}, "“³” is not a day of the month"),  # a digit to isdigit(), not to int()
        ({"name": ""}, "This field is required."),
        ({"buying_reasons": "price\x00\nspeed"}, "Null characters are not allowed."),
        ({"customer_since": "2052-01-01"}, "A customer since a day still to come? Check the year."),
        ({"referred_by": "NO-SUCH"}, "No customer has that account number."),
        ({"typical_order_interval_days": "100000"},
         "A typical gap between orders is at most 365 days; leave it empty if they order less often."),
        ({"typical_order_interval_days": "0"}, "A typical gap between orders is at least 1 day."),
        ({"buying_reasons": "  \n \n"},
         "Give at least one reason why they buy from us, one per line: change the reasons, do not remove "
         "them all."),
    ],
)
def test_bad_card_input_changes_nothing_and_says_why(
    client, collector, customer, changes, message
):
    before = database_state(customer)
    client.force_login(collector)

    response = client.post(
        reverse("customers:edit", args=[customer.pk]), card_data(customer, **changes)
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "<html" in html
    assert message in html
    assert "Nothing was saved" in html
    assert database_state(customer) == before


@pytest.mark.parametrize("whom", ["viewer", "no role"])
def test_an_account_handed_to_someone_not_offered_is_refused_without_naming_them(
    client, manager, viewer, customer, django_user_model, whom
):
    """A crafted id is told only that it is not a choice: the card must not
    say the name of whoever holds an id outside the menu."""
    to = viewer if whom == "viewer" else django_user_model.objects.create_user("nora", first_name="Nora")
    before = database_state(customer)
    client.force_login(manager)

    page = client.get(reverse("customers:edit", args=[customer.pk])).content.decode()
    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, collector=to.pk))

    menu = re.search(r'<select name="collector"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert f'<option value="{to.pk}"' not in menu and f'<option value="{manager.pk}"' in menu
    assert response.status_code == 422
    said = html_text.unescape(response.content.decode())
    assert "Select a valid choice. That choice is not one of the available choices." in said
    # (A viewer may still be offered as the relationship owner, in that menu.)
    collector_field = re.search(r'<label for="id_collector".*?</select>(.*?)</div>', said, re.S).group(0)
    assert not re.search(rf"\b{to.username}\b", collector_field, re.IGNORECASE)
    assert "does not work accounts" not in said
    assert database_state(customer) == before


def test_a_manager_may_hand_an_account_to_another_collector(client, manager, other_collector, customer):
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, collector=other_collector.pk))

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.collector == other_collector


def test_a_customer_cannot_refer_itself(client, collector, customer):
    client.force_login(collector)

    response = client.post(
        reverse("customers:edit", args=[customer.pk]),
        card_data(customer, referred_by=customer.account_number),
    )

    assert response.status_code == 422
    assert "A customer cannot refer itself." in response.content.decode()
    customer.refresh_from_db()
    assert customer.referred_by is None


def test_the_referrer_is_entered_by_account_number(client, collector, customer, make_customer):
    referrer = make_customer(name="Old Friend AG", account_number="OF-1")
    client.force_login(collector)

    client.post(
        reverse("customers:edit", args=[customer.pk]), card_data(customer, referred_by="OF-1")
    )

    customer.refresh_from_db()
    assert customer.referred_by == referrer
    assert last_event().details["after"] == {"referred_by": referrer.pk}
    form_html = client.get(reverse("customers:edit", args=[customer.pk])).content.decode()
    assert 'value="OF-1"' in form_html


def test_bad_card_input_with_htmx_replaces_the_form_with_its_errors(client, collector, customer):
    before = database_state(customer)
    client.force_login(collector)

    response = client.post(
        reverse("customers:edit", args=[customer.pk]),
        card_data(customer, ap_run_days="0"),
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#account-card"
    assert response["HX-Reswap"] == "outerHTML"
    assert "<html" not in html
    assert "“0” is not a day of the month" in html
    assert database_state(customer) == before


def test_a_collector_cannot_change_credit_terms(client, collector, customer):
    client.force_login(collector)

    client.post(
        reverse("customers:edit", args=[customer.pk]),
        card_data(
            customer, credit_limit_amount="99999.00", terms_type=TermsType.COD,
            payment_terms_days=90, on_credit_hold=True, currency="JPY", notes="Tried",
        ),
    )

    customer.refresh_from_db()
    assert customer.credit_limit_amount == Decimal("0.00")
    assert customer.currency == "EUR"  # the credit limit is an amount in it
    assert customer.terms_type == TermsType.STANDARD
    assert customer.payment_terms_days == 30
    assert customer.on_credit_hold is False
    assert customer.notes == "Tried"
    assert last_event().details["after"] == {"notes": "Tried"}


def test_a_manager_changes_credit_terms_and_the_change_is_recorded(
    client, manager, other_collector, customer
):
    client.force_login(manager)

    client.post(
        reverse("customers:edit", args=[customer.pk]),
        card_data(
            customer, credit_limit_amount="5000.50", payment_terms_days=60,
            on_credit_hold=True, collector=other_collector.pk, terms_reason="Two notices unanswered",
        ),
    )

    customer.refresh_from_db()
    assert customer.credit_limit_amount == Decimal("5000.50")
    assert customer.on_credit_hold is True
    assert customer.collector == other_collector
    event = last_event()
    assert event.actor == manager
    assert event.details["before"]["credit_limit_amount"] == "0.00"
    assert event.details["after"]["credit_limit_amount"] == "5000.50"
    assert event.details["before"]["payment_terms_days"] == 30
    assert event.details["after"]["on_credit_hold"] is True
    assert event.details["after"]["collector"] == other_collector.pk


def test_a_manager_s_bad_currency_is_refused_with_a_message(client, manager, customer):
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]), card_data(customer, currency="e1x"))

    assert response.status_code == 422
    assert "Use a three-letter ISO 4217 code" in response.content.decode()
    customer.refresh_from_db()
    assert customer.currency == "EUR"


def test_a_currency_nobody_pays_in_is_refused_for_the_account(client, manager, customer):
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]), card_data(customer, currency="XYZ"))

    assert response.status_code == 422
    assert response.context["form"].errors["currency"] == [
        "XYZ is not an ISO 4217 currency in circulation (EUR, USD, GBP, ...)."]
    customer.refresh_from_db()
    assert customer.currency == "EUR"


def test_a_new_currency_with_the_old_credit_limit_is_refused_until_the_limit_is_given_in_it(
    client, manager, customer
):
    """The credit limit is an amount in the account's currency: EUR 100,000
    must not become GBP 100,000 by a change of the currency alone."""
    customer.credit_limit_amount = Decimal("100000.00")
    customer.save(update_fields=["credit_limit_amount"])
    client.force_login(manager)

    refused = client.post(reverse("customers:edit", args=[customer.pk]), card_data(customer, currency="gbp"))
    taken = client.post(reverse("customers:edit", args=[customer.pk]),
                        card_data(customer, currency="GBP", credit_limit_amount="86000.00"))

    assert refused.status_code == 422
    assert refused.context["form"].errors["credit_limit_amount"] == [
        "The credit limit is EUR 100,000.00: give it in GBP, the account's new currency."]
    assert taken.status_code == 302
    customer.refresh_from_db()
    assert (customer.currency, customer.credit_limit_amount) == ("GBP", Decimal("86000.00"))


def test_the_timeline_says_what_a_card_change_was_from_and_to(client, manager, customer, other_collector):
    """A credit limit raised from 100k to 250k must be readable where people
    look, not only in the event's stored details; texts too, quoted (a long
    one shortened: the details keep it whole)."""
    customer.credit_limit_amount = Decimal("100000.00")
    customer.save(update_fields=["credit_limit_amount"])
    client.force_login(manager)

    client.post(reverse("customers:edit", args=[customer.pk]), card_data(
        customer, credit_limit_amount="250000.00", payment_terms_days=45, on_credit_hold=True,
        collector=other_collector.pk, notes="Long story about the owner's nephew",
        terms_reason="Two notices unanswered"))

    assert last_event().summary == (
        "Account card changed: collector carla → otto; credit limit EUR 100,000.00 → EUR 250,000.00; "
        "days to pay 30 → 45; on credit hold no → yes; notes none → “Long story about the owner's nephew”, "
        "because “Two notices unanswered”")
    page = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert "credit limit EUR 100,000.00 → EUR 250,000.00" in page


def test_a_card_that_never_had_reasons_still_saves_its_other_fields(client, collector, make_customer):
    """An account the ERP's import opened has no reasons yet: its card is not
    held hostage to them (only reasons once given may not be wiped)."""
    account = make_customer(name="Imported Ltd", collector=collector)
    assert account.buying_reasons == []
    client.force_login(collector)

    response = client.post(reverse("customers:edit", args=[account.pk]),
                           card_data(account, business_description="Wholesale of fasteners"))

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.business_description == "Wholesale of fasteners"


def test_the_timeline_says_what_the_reasons_they_buy_from_us_were_and_became(client, collector, customer):
    client.force_login(collector)

    client.post(reverse("customers:edit", args=[customer.pk]),
                card_data(customer, buying_reasons="price\nservice"))

    assert last_event().summary == (
        "Account card changed: why they buy from us “price, delivery speed, service” → “price, service”")
    assert last_event().details == {"before": {"buying_reasons": ["price", "delivery speed", "service"]},
                                    "after": {"buying_reasons": ["price", "service"]}}


def test_a_long_text_changed_on_the_card_is_shortened_on_the_timeline(client, collector, customer):
    client.force_login(collector)
    long = "They run three plants and pay from the head office " * 4

    client.post(reverse("customers:edit", args=[customer.pk]), card_data(customer, business_description=long))

    summary = last_event().summary
    assert summary.startswith("Account card changed: what they do none → “They run three plants")
    assert summary.endswith("…”")
    assert last_event().details["after"]["business_description"] == long.strip()


def test_an_account_name_with_a_line_break_is_refused_with_a_message(client, collector, customer):
    """The name goes into the subject of e-mails, where a line break ends the header."""
    client.force_login(collector)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, name="Acme Tools\nBcc: someone@evil.test"))

    assert response.status_code == 422
    assert "Write the name on one line, without line breaks or tabs." in response.content.decode()
    customer.refresh_from_db()
    assert customer.name == "Acme Tools"


def test_a_manager_corrects_a_mistyped_account_number_and_the_change_is_recorded(client, manager, customer):
    """The ERP's invoices and payments find the account by its number: one
    mistyped when the account was opened must be put right, on the record."""
    before = customer.account_number
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, account_number="  C77001 "))

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.account_number == "C77001"
    event = last_event()
    assert (event.actor, event.details["before"], event.details["after"]) == (
        manager, {"account_number": before}, {"account_number": "C77001"})


def test_an_account_number_another_account_has_is_refused_naming_that_account(
    client, manager, customer, make_customer
):
    other = make_customer(name="Beta Bau")
    before = customer.account_number
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, account_number=other.account_number))

    assert response.status_code == 422
    assert response.context["form"].errors["account_number"] == [
        f"{other.account_number} is the account number of Beta Bau: each account has its own."]
    customer.refresh_from_db()
    assert customer.account_number == before


def test_a_collector_cannot_change_the_account_number(client, collector, customer):
    before = customer.account_number
    client.force_login(collector)

    client.post(reverse("customers:edit", args=[customer.pk]),
                card_data(customer, account_number="C99999", notes="Tried"))

    customer.refresh_from_db()
    assert (customer.account_number, customer.notes) == (before, "Tried")


def test_the_card_form_shows_locked_terms_to_a_collector(client, collector, customer):
    client.force_login(collector)

    html = client.get(reverse("customers:edit", args=[customer.pk])).content.decode()

    assert re.search(r'<input[^>]*name="credit_limit_amount"[^>]*disabled', html)
    assert not re.search(r'<textarea[^>]*name="notes"[^>]*disabled', html)
    assert "A manager decides this." in html


# --- Contacts -----------------------------------------------------------------


def test_adding_a_contact_saves_it_and_records_it(client, collector, customer):
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_add", args=[customer.pk]),
        contact_data(reminder_channel=ReminderChannel.PHONE, phone="+49 30 1234"),
    )

    assert response.status_code == 302
    contact = customer.contacts.get()
    assert (contact.name, contact.phone, contact.reminder_channel) == ("Jana Novak", "+49 30 1234", "phone")
    event = last_event()
    assert event.kind == EventKind.CONTACT_CHANGED
    assert event.actor == collector
    assert event.subject == contact
    assert event.details["before"] == {}
    assert event.details["after"]["reminder_channel"] == "phone"
    assert event.summary == "Contact added: Jana Novak (Accounts payable / billing)"


def test_adding_a_contact_with_htmx_returns_the_contacts_section(client, collector, customer):
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_add", args=[customer.pk]), contact_data(), headers=HTMX
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="contacts"')
    assert "Jana Novak" in html
    assert "Contact Jana Novak saved." in html


def test_a_contact_added_with_htmx_on_a_filtered_timeline_takes_the_filter_out_of_the_address_bar(
    client, collector, customer
):
    client.force_login(collector)
    page = reverse("customers:detail", args=[customer.pk])

    response = client.post(reverse("customers:contact_add", args=[customer.pk]), contact_data(),
                           headers={**HTMX, "HX-Current-URL": f"http://testserver{page}?kind=call"})

    assert response.status_code == 200
    assert response["HX-Replace-Url"] == page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reminder_channel": "phone", "phone": ""}, "A phone number is needed for phone reminders."),
        ({"email": "", "reminder_channel": "letter", "postal_address": "1 Main St"},
         "An e-mail address is needed to e-mail invoices."),
        ({"invoice_delivery": "paper", "postal_address": ""},
         "A postal address is needed for paper invoices."),
        ({"email": "not-an-address"}, "Enter a valid email address."),
        # The name goes into the To header of every e-mail to the contact.
        ({"name": "Anna Clerk\nBcc: someone@evil.test"}, "Write the name on one line, without line breaks"),
    ],
)
def test_contact_rules_show_as_form_errors_and_nothing_is_saved(
    client, collector, customer, changes, message
):
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_add", args=[customer.pk]), contact_data(**changes)
    )

    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Contact.objects.exists()
    assert not TimelineEvent.objects.exists()


def test_a_new_contact_with_an_invalid_e_mail_is_told_it_is_invalid_not_that_one_is_missing(
    client, collector, customer
):
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_add", args=[customer.pk]), contact_data(email="jana(at)acme")
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "Enter a valid email address." in html
    assert "An e-mail address is needed" not in html
    assert not Contact.objects.exists()


def test_a_contact_breaking_several_rules_is_told_all_of_them_in_one_go_each_by_its_field(
    client, collector, customer
):
    client.force_login(collector)

    response = client.post(reverse("customers:contact_add", args=[customer.pk]), contact_data(
        email="", invoice_delivery="paper", reminder_channel="phone"))

    assert response.status_code == 422
    form = response.context["form"]
    assert form.errors == {
        "postal_address": ["A postal address is needed for paper invoices."],
        "phone": ["A phone number is needed for phone reminders."],
    }
    html = response.content.decode()
    assert "A postal address is needed for paper invoices." in html
    assert "A phone number is needed for phone reminders." in html
    assert not Contact.objects.exists()


def test_an_invalid_e_mail_is_told_only_that_with_the_contact_s_other_problems(client, collector, customer):
    client.force_login(collector)

    response = client.post(reverse("customers:contact_add", args=[customer.pk]), contact_data(
        email="jana(at)acme", reminder_channel="phone"))

    assert response.status_code == 422
    assert response.context["form"].errors == {
        "email": ["Enter a valid email address."],
        "phone": ["A phone number is needed for phone reminders."],
    }
    assert not Contact.objects.exists()


def test_a_new_contact_without_an_e_mail_is_told_one_is_needed(client, collector, customer):
    client.force_login(collector)

    response = client.post(reverse("customers:contact_add", args=[customer.pk]), contact_data(email=""))

    assert response.status_code == 422
    assert "An e-mail address is needed to e-mail invoices." in response.content.decode()
    assert not Contact.objects.exists()


def test_a_rejected_contact_with_htmx_replaces_its_own_form(client, collector, customer):
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_add", args=[customer.pk]),
        contact_data(reminder_channel="phone"),
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#contact-form-new"
    assert response["HX-Reswap"] == "outerHTML"
    assert html.lstrip().startswith('<form id="contact-form-new"')
    assert "A phone number is needed for phone reminders." in html
    assert not Contact.objects.exists()


def test_editing_a_contact_records_only_what_changed(client, collector, customer, make_contact):
    jana = make_contact(customer, name="Jana Novak", email="old@acme.example", job_title="AP clerk")
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_edit", args=[customer.pk, jana.pk]),
        contact_data(email="new@acme.example", best_time_to_call="Mornings"),
    )

    assert response.status_code == 302
    jana.refresh_from_db()
    assert jana.email == "new@acme.example"
    event = last_event()
    assert event.details == {
        "contact": jana.pk,
        "before": {"email": "old@acme.example", "best_time_to_call": ""},
        "after": {"email": "new@acme.example", "best_time_to_call": "Mornings"},
    }


def test_editing_a_contact_with_htmx_returns_the_contacts_section(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_edit", args=[customer.pk, jana.pk]),
        contact_data(name="Jana Novak-Berg"),
        headers=HTMX,
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="contacts"')
    assert "Jana Novak-Berg" in html


def test_a_rejected_contact_edit_changes_nothing(client, collector, customer, make_contact):
    jana = make_contact(customer, name="Jana Novak", email="jana@acme.example")
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_edit", args=[customer.pk, jana.pk]),
        contact_data(email=""),
        headers=HTMX,
    )

    assert response.status_code == 422
    assert response["HX-Retarget"] == f"#contact-form-{jana.pk}"
    assert "An e-mail address is needed" in response.content.decode()
    jana.refresh_from_db()
    assert jana.email == "jana@acme.example"
    assert not TimelineEvent.objects.exists()


def test_a_contact_of_another_customer_is_not_found(client, collector, customer, make_customer, make_contact):
    stranger = make_contact(make_customer(name="Other"))
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_edit", args=[customer.pk, stranger.pk]), contact_data()
    )

    assert response.status_code == 404


def test_marking_a_new_primary_contact_takes_the_flag_from_the_old_one(
    client, collector, customer, make_contact
):
    old = make_contact(customer, name="Old Primary", is_primary_billing=True)
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_add", args=[customer.pk]),
        contact_data(name="New Primary", is_primary_billing=True),
    )

    assert response.status_code == 302
    old.refresh_from_db()
    assert old.is_primary_billing is False
    assert customer.contacts.get(is_primary_billing=True).name == "New Primary"
    assert last_event().details["primary_billing_taken_from"] == [
        {"contact": old.pk, "name": "Old Primary"}
    ]


def test_editing_a_contact_into_the_primary_one_moves_the_flag(
    client, collector, customer, make_contact
):
    old = make_contact(customer, name="Old Primary", is_primary_billing=True)
    jana = make_contact(customer, name="Jana Novak", email="jana@acme.example")
    client.force_login(collector)

    client.post(
        reverse("customers:contact_edit", args=[customer.pk, jana.pk]),
        contact_data(is_primary_billing=True),
    )

    assert list(customer.contacts.filter(is_primary_billing=True)) == [jana]
    old.refresh_from_db()
    assert old.is_primary_billing is False


def test_a_failed_primary_switch_leaves_the_old_primary_in_place(customer, collector, make_contact):
    old = make_contact(customer, name="Old Primary", is_primary_billing=True)
    invalid = Contact(
        customer=customer, name="No Phone", reminder_channel=ReminderChannel.PHONE,
        email="x@acme.example", is_primary_billing=True,
    )

    with pytest.raises(ValidationError):
        services.contact_save(contact=invalid, actor=collector)

    old.refresh_from_db()
    assert old.is_primary_billing is True
    assert not TimelineEvent.objects.exists()


def test_deleting_a_contact_removes_it_and_records_what_it_was(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak", email="jana@acme.example")
    client.force_login(collector)

    response = client.post(reverse("customers:contact_delete", args=[customer.pk, jana.pk]))

    assert response.status_code == 302
    assert not Contact.objects.exists()
    event = last_event()
    assert event.kind == EventKind.CONTACT_CHANGED
    assert event.details["before"]["email"] == "jana@acme.example"
    assert event.details["after"] == {}
    assert event.summary == "Contact removed: Jana Novak (Accounts payable / billing)"


def test_deleting_a_contact_with_htmx_returns_the_contacts_section(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    make_contact(customer, name="Bob Keep")
    client.force_login(collector)

    response = client.post(
        reverse("customers:contact_delete", args=[customer.pk, jana.pk]), headers=HTMX
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="contacts"')
    assert "Bob Keep" in html
    assert "Jana Novak" in html  # the message says who was removed ...
    assert f'id="contact-{jana.pk}"' not in html  # ... but the card is gone


# --- Absences -----------------------------------------------------------------


def test_adding_an_absence_records_it_with_its_stand_in(client, collector, customer, make_contact):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    client.force_login(collector)

    response = client.post(
        reverse("customers:absence_add", args=[customer.pk, jana.pk]),
        {"starts_on": "2030-08-01", "ends_on": "2030-08-15", "delegate": bob.pk, "note": "Holiday"},
    )

    assert response.status_code == 302
    absence = jana.absences.get()
    assert (absence.starts_on, absence.ends_on, absence.delegate, absence.note) == (
        dt.date(2030, 8, 1), dt.date(2030, 8, 15), bob, "Holiday"
    )
    event = last_event()
    assert event.kind == EventKind.CONTACT_CHANGED
    assert event.actor == collector
    assert event.summary == "Jana Novak away 1 Aug 2030–15 Aug 2030; write to Bob Stand-in instead"
    assert event.details["before"] == {}
    assert event.details["after"]["delegate"] == bob.pk


def test_an_absence_added_with_htmx_changes_who_the_header_says_to_contact_today(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak", is_primary_billing=True)
    bob = make_contact(customer, name="Bob Stand-in")
    client.force_login(collector)
    today = timezone.localdate()

    response = client.post(
        reverse("customers:absence_add", args=[customer.pk, jana.pk]),
        {"starts_on": today.isoformat(), "ends_on": (today + dt.timedelta(days=9)).isoformat(),
         "delegate": bob.pk},
        headers=HTMX,
    )

    header = header_of(response.content.decode())
    assert 'hx-swap-oob="true"' in header
    assert "<strong>Bob Stand-in</strong>" in header and "<strong>Jana Novak</strong>" not in header


def test_the_header_says_the_contact_written_to_today_is_away_when_she_named_nobody_instead(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak", is_primary_billing=True)
    client.force_login(collector)
    today = timezone.localdate()
    back = today + dt.timedelta(days=9)

    response = client.post(
        reverse("customers:absence_add", args=[customer.pk, jana.pk]),
        {"starts_on": today.isoformat(), "ends_on": back.isoformat(), "delegate": ""},
        headers=HTMX,
    )

    header = header_of(response.content.decode())
    assert "<strong>Jana Novak</strong>" in header
    assert f"away until {format_day(back)}; still written to, as asked" in header


def test_the_header_names_whom_a_stand_in_writes_for(client, collector, customer, make_contact):
    jana = make_contact(customer, name="Jana Novak", is_primary_billing=True)
    bob = make_contact(customer, name="Bob Stand-in")
    today = timezone.localdate()
    back = today + dt.timedelta(days=9)
    ContactAbsence.objects.create(contact=jana, starts_on=today, ends_on=back, delegate=bob)
    client.force_login(collector)

    header = header_of(client.get(reverse("customers:detail", args=[customer.pk])).content.decode())

    assert "<strong>Bob Stand-in</strong>" in header
    assert f"for Jana Novak, away until {format_day(back)}" in header


def test_adding_an_absence_with_htmx_re_renders_the_contacts_section(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    client.force_login(collector)

    response = client.post(
        reverse("customers:absence_add", args=[customer.pk, jana.pk]),
        {"starts_on": "2030-08-01", "ends_on": "2030-08-15", "delegate": bob.pk},
        headers=HTMX,
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="contacts"')
    assert "write to Bob Stand-in instead" in html


def test_the_stand_in_is_chosen_among_the_customers_other_contacts(
    client, collector, customer, make_contact, make_customer
):
    jana = make_contact(customer, name="Jana Novak")
    make_contact(customer, name="Bob Stand-in")
    make_contact(make_customer(name="Other"), name="Stranger")
    client.force_login(collector)

    html = client.get(reverse("customers:absence_add", args=[customer.pk, jana.pk])).content.decode()

    assert "Bob Stand-in" in html
    assert "Stranger" not in html
    assert f'<option value="{jana.pk}"' not in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"starts_on": "2030-08-15", "ends_on": "2030-08-01"},
         "The absence must end on or after its first day."),
        ({"starts_on": "2025-07-01", "ends_on": "2025-08-04"},
         "This absence ended before today: what was sent then cannot be routed again"),
        ({"starts_on": "2099-08-01", "ends_on": "2099-08-10"}, "1 Aug 2099 is more than 10 years ahead: "
                                                              "check the year."),
        ({"starts_on": "2030-08-01", "ends_on": ""}, "This field is required."),
        # Never offered, posted anyway: refused by the absence's own rule, in its words.
        ({"starts_on": "2030-08-01", "ends_on": "2030-08-02", "delegate": "self"},
         "A contact cannot stand in for itself."),
        ({"starts_on": "2030-08-01", "ends_on": "2030-08-02", "delegate": "stranger"},
         "The stand-in must be a contact of the same customer."),
        ({"starts_on": "2030-08-01", "ends_on": "2033-07-31"},
         "An absence lasts at most 366 days; this one is 1,096 (1 Aug 2030–31 Jul 2033)"),
    ],
)
def test_bad_absences_are_refused_with_a_message(
    client, collector, customer, make_contact, make_customer, data, message
):
    jana = make_contact(customer, name="Jana Novak")
    stranger = make_contact(make_customer(name="Other"))
    data = {**data}
    data["delegate"] = {"self": jana.pk, "stranger": stranger.pk}.get(data.get("delegate"), "")
    client.force_login(collector)

    response = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]), data)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert not ContactAbsence.objects.exists()
    assert not TimelineEvent.objects.exists()


def test_an_absence_overlapping_another_of_the_same_contact_is_refused_naming_its_days(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    ContactAbsence.objects.create(contact=jana, starts_on=dt.date(2030, 8, 1), ends_on=dt.date(2030, 8, 15))
    client.force_login(collector)

    response = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                           {"starts_on": "2030-08-10", "ends_on": "2030-08-20"})

    assert response.status_code == 422
    assert ("Jana Novak is already away 1 Aug 2030–15 Aug 2030: remove that absence first, or choose days "
            "outside it.") in response.content.decode()
    assert jana.absences.count() == 1
    assert not TimelineEvent.objects.exists()


def test_an_absence_beginning_the_day_after_another_ends_is_recorded(client, collector, customer,
                                                                      make_contact):
    jana = make_contact(customer, name="Jana Novak")
    ContactAbsence.objects.create(contact=jana, starts_on=dt.date(2030, 8, 1), ends_on=dt.date(2030, 8, 15))
    client.force_login(collector)

    response = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                           {"starts_on": "2030-08-16", "ends_on": "2030-08-20"})

    assert response.status_code == 302
    assert jana.absences.count() == 2


def test_a_stand_in_away_on_one_of_those_days_is_refused_naming_their_days(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2030, 8, 15), ends_on=dt.date(2030, 8, 31))
    client.force_login(collector)

    response = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                           {"starts_on": "2030-08-01", "ends_on": "2030-08-15", "delegate": bob.pk})

    assert response.status_code == 422
    assert ("Bob Stand-in is away 15 Aug 2030–31 Aug 2030 too: choose someone who is in while Jana Novak "
            "is away, or nobody.") in response.content.decode()
    assert not jana.absences.exists()
    assert not TimelineEvent.objects.exists()


def test_two_contacts_cannot_name_each_other_as_stand_ins_for_the_same_days(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2030, 8, 1), ends_on=dt.date(2030, 8, 15),
                                  delegate=jana)
    client.force_login(collector)

    response = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                           {"starts_on": "2030-08-10", "ends_on": "2030-08-20", "delegate": bob.pk})

    assert response.status_code == 422
    assert "Bob Stand-in is away 1 Aug 2030–15 Aug 2030 too" in response.content.decode()
    assert not jana.absences.exists()


def test_a_stand_in_away_only_on_other_days_is_accepted(client, collector, customer, make_contact):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2030, 8, 16), ends_on=dt.date(2030, 8, 31))
    client.force_login(collector)

    response = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                           {"starts_on": "2030-08-01", "ends_on": "2030-08-15", "delegate": bob.pk})

    assert response.status_code == 302
    assert jana.absences.get().delegate == bob


def stand_ins_offered(page: str) -> dict[int, str]:
    """The "Write to instead" menu's contacts, by id, with their labels."""
    menu = page.split('name="delegate"')[1].split("</select>")[0]
    return {int(pk): label.strip() for pk, label in re.findall(r'<option value="(\d+)"[^>]*>([^<]*)<', menu)}


def test_choosing_the_days_with_htmx_offers_only_stand_ins_in_on_all_of_them(
    client, collector, customer, make_contact
):
    """Bob is away from the 10th: not offered for 1-15 Aug. Carla is away only
    after those days; Dora's absence is over before them."""
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    carla = make_contact(customer, name="Carla Cover")
    dora = make_contact(customer, name="Dora Desk")
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2030, 8, 10), ends_on=dt.date(2030, 8, 20))
    ContactAbsence.objects.create(contact=carla, starts_on=dt.date(2030, 8, 16), ends_on=dt.date(2030, 8, 20))
    ContactAbsence.objects.create(contact=dora, starts_on=dt.date(2030, 7, 20), ends_on=dt.date(2030, 7, 31))
    url = reverse("customers:absence_add", args=[customer.pk, jana.pk])
    client.force_login(collector)

    form = client.get(url, headers=HTMX).content.decode()
    # The menu asks for itself again when the days change, with them.
    menu = form.split('name="delegate"')[1].split(">")[0]
    assert f'hx-get="{url}"' in menu
    assert f"change from:#absence-form-{jana.pk}-starts_on" in menu
    response = client.get(url, {"starts_on": "2030-08-01", "ends_on": "2030-08-15", "delegate": bob.pk},
                          headers=HTMX)

    assert response.status_code == 200
    assert set(stand_ins_offered(response.content.decode())) == {carla.pk, dora.pk}


def test_a_stand_in_away_then_posted_anyway_is_refused_and_no_longer_offered(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    carla = make_contact(customer, name="Carla Cover")
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2030, 8, 10), ends_on=dt.date(2030, 8, 20))
    client.force_login(collector)

    response = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                           {"starts_on": "2030-08-01", "ends_on": "2030-08-15", "delegate": bob.pk},
                           headers=HTMX)

    assert response.status_code == 422
    page = response.content.decode()
    assert "Bob Stand-in is away 10 Aug 2030–20 Aug 2030 too" in page
    assert set(stand_ins_offered(page)) == {carla.pk}
    assert not jana.absences.exists()


def test_before_the_days_are_chosen_a_contact_away_today_is_marked_with_the_day_they_are_back(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    carla = make_contact(customer, name="Carla Cover")
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2025, 8, 1), ends_on=dt.date(2025, 8, 12))
    client.force_login(collector)

    offered = stand_ins_offered(client.get(reverse("customers:absence_add", args=[customer.pk, jana.pk]))
                                .content.decode())

    assert offered[bob.pk] == "Bob Stand-in – Accounts payable / billing (away until 12 Aug 2025)"
    assert offered[carla.pk] == "Carla Cover – Accounts payable / billing"


def test_a_rejected_absence_with_htmx_replaces_its_own_form(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    client.force_login(collector)

    response = client.post(
        reverse("customers:absence_add", args=[customer.pk, jana.pk]),
        {"starts_on": "2030-08-15", "ends_on": "2030-08-01"},
        headers=HTMX,
    )

    assert response.status_code == 422
    assert response["HX-Retarget"] == f"#absence-form-{jana.pk}"
    assert "The absence must end on or after its first day." in response.content.decode()
    assert not ContactAbsence.objects.exists()


def test_deleting_an_absence_removes_it_and_records_it(client, collector, customer, make_contact):
    jana = make_contact(customer, name="Jana Novak")
    absence = ContactAbsence.objects.create(
        contact=jana, starts_on=dt.date(2030, 8, 1), ends_on=dt.date(2030, 8, 15)
    )
    client.force_login(collector)

    response = client.post(reverse("customers:absence_delete", args=[customer.pk, absence.pk]))

    assert response.status_code == 302
    assert not ContactAbsence.objects.exists()
    event = last_event()
    assert event.summary == "Absence removed: Jana Novak 1 Aug 2030–15 Aug 2030"
    assert event.details["before"]["starts_on"] == "2030-08-01"
    assert event.details["after"] == {}


def test_deleting_an_absence_with_htmx_returns_the_contacts_section(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    absence = ContactAbsence.objects.create(
        contact=jana, starts_on=dt.date(2030, 8, 1), ends_on=dt.date(2030, 8, 15), note="gone soon"
    )
    client.force_login(collector)

    response = client.post(
        reverse("customers:absence_delete", args=[customer.pk, absence.pk]), headers=HTMX
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="contacts"')
    assert "gone soon" not in html


def test_an_absence_of_another_customer_is_not_found(
    client, collector, customer, make_customer, make_contact
):
    stranger = make_contact(make_customer(name="Other", collector=collector))
    absence = ContactAbsence.objects.create(
        contact=stranger, starts_on=dt.date(2030, 8, 1), ends_on=dt.date(2030, 8, 15)
    )
    client.force_login(collector)

    response = client.post(reverse("customers:absence_delete", args=[customer.pk, absence.pk]))

    assert response.status_code == 404
    assert ContactAbsence.objects.exists()


def test_an_account_cannot_be_handed_to_a_deactivated_user(
    client, manager, customer, other_collector, make_customer
):
    """A deactivated collector who still owns some account is not offered for
    another one (only the account's own collector stays on offer)."""
    make_customer(name="Otto's last account", collector=other_collector)
    other_collector.is_active = False
    other_collector.save()
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, collector=other_collector.pk))

    customer.refresh_from_db()
    assert customer.collector_id != other_collector.pk, "handed to a deactivated user"
    assert response.status_code == 422


def test_a_collector_cannot_take_a_distressed_account_off_its_ladder_through_the_card(
    client, collector, customer, make_invoice
):
    """Any text in the card's "special bond" makes the computed segment Special
    bond, ahead of Distressed: a ladder with no credit hold, no C.O.D., no fee
    and every step reviewed. Like a segment override, that is a manager's
    call: for a collector the field is shown, not taken."""
    from ar_collections import services
    from customers.models import Segment

    make_invoice(customer, issued=dt.date(2025, 4, 1), due=dt.date(2025, 5, 1), amount="9000.00")
    services.behaviour_refresh(on=dt.date(2025, 8, 5))
    customer.refresh_from_db()
    assert customer.segment == Segment.DISTRESSED
    client.force_login(collector)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, special_bond="They helped us once"))
    services.behaviour_refresh(on=dt.date(2025, 8, 5))

    customer.refresh_from_db()
    assert response.status_code in (302, 403, 422)
    assert customer.segment == Segment.DISTRESSED, (
        f"a collector's card edit moved the account to {customer.segment}"
    )


@pytest.mark.parametrize("currency", ["KWD", "HRK"])
def test_a_collector_can_still_edit_the_card_of_an_account_kept_in_a_currency_refused_since(
    client, collector, make_customer, currency
):
    """The imports refuse currencies in thousandths (KWD) and codes no longer
    in circulation (HRK, the euro since 2023); an account kept in one before
    still has a card that saves."""
    customer = make_customer(name="Gulf Trading", currency=currency, buying_reasons=["a", "b", "c"])
    client.force_login(collector)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, notes="Call Fatima, not the front desk"))

    customer.refresh_from_db()
    assert customer.notes == "Call Fatima, not the front desk", (
        response.status_code, [line.strip() for line in response.content.decode().splitlines()
                               if "currency" in line.lower() and "error" in line.lower()][:3])


# --- Where the page opens without htmx ----------------------------------------
# The account page is long: a form posted without JavaScript comes back to the
# part that was changed, at a heading that is on the page, not at the top.


def lands_on(client, response) -> tuple[str, str]:
    """The anchor a plain POST's redirect opens the account page at, and the
    page the browser then shows (which must hold an element with that id)."""
    assert response.status_code == 302
    url, _, anchor = response.url.partition("#")
    return anchor, client.get(url).content.decode()


def test_a_card_saved_without_htmx_opens_the_account_page_at_the_card(client, collector, customer):
    client.force_login(collector)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, notes="Pays on the 15th"))

    anchor, page = lands_on(client, response)
    assert anchor == "account-name"
    # The card's heading, a level below the page's own (the customer's name atop the page).
    assert re.search(rf'<section id="account-card".*?<h2 id="{anchor}"', page, re.S)
    assert "Account card saved." in page


def test_a_contact_added_without_htmx_opens_the_account_page_at_that_contact(
    client, collector, customer, make_contact
):
    make_contact(customer, name="Bob Keep")
    client.force_login(collector)

    response = client.post(reverse("customers:contact_add", args=[customer.pk]), contact_data())

    jana = customer.contacts.get(name="Jana Novak")
    anchor, page = lands_on(client, response)
    assert anchor == f"contact-{jana.pk}-name"
    assert f'<h3 id="{anchor}" tabindex="-1">Jana Novak</h3>' in page


def test_a_contact_changed_without_htmx_opens_the_account_page_at_that_contact(
    client, collector, customer, make_contact
):
    make_contact(customer, name="Bob Keep")
    jana = make_contact(customer, name="Jana Novak")
    client.force_login(collector)

    response = client.post(reverse("customers:contact_edit", args=[customer.pk, jana.pk]),
                           contact_data(name="Jana Novak-Berg"))

    anchor, page = lands_on(client, response)
    assert anchor == f"contact-{jana.pk}-name"
    assert f'<h3 id="{anchor}" tabindex="-1">Jana Novak-Berg</h3>' in page


def test_a_contact_deleted_without_htmx_opens_the_account_page_at_the_contacts_heading(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    make_contact(customer, name="Bob Keep")
    client.force_login(collector)

    response = client.post(reverse("customers:contact_delete", args=[customer.pk, jana.pk]))

    anchor, page = lands_on(client, response)
    assert anchor == "contacts-title"
    assert f'<h2 id="{anchor}" tabindex="-1">Contacts</h2>' in page


def test_an_absence_added_or_removed_without_htmx_opens_the_account_page_at_its_contact(
    client, collector, customer, make_contact
):
    make_contact(customer, name="Bob Keep")
    jana = make_contact(customer, name="Jana Novak")
    client.force_login(collector)

    added = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                        {"starts_on": "2030-08-01", "ends_on": "2030-08-15", "note": "Holiday"})
    absence = jana.absences.get()
    removed = client.post(reverse("customers:absence_delete", args=[customer.pk, absence.pk]))

    for response in (added, removed):
        anchor, page = lands_on(client, response)
        assert anchor == f"contact-{jana.pk}-name"
        assert f'<h3 id="{anchor}" tabindex="-1">Jana Novak</h3>' in page


@pytest.mark.parametrize("changes", [
    {"on_credit_hold": False},
    {"terms_type": TermsType.STANDARD},
], ids=["lifting the hold", "back to standard terms"])
def test_lifting_a_hold_or_c_o_d_through_the_card_without_a_reason_is_refused(
    client, manager, customer, changes
):
    customer.on_credit_hold, customer.terms_type = True, TermsType.COD
    customer.save(update_fields=["on_credit_hold", "terms_type"])
    events = TimelineEvent.objects.count()
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, **changes, terms_reason="  "))

    assert response.status_code == 422
    assert "Say why the credit hold or the payment terms change" in response.content.decode()
    customer.refresh_from_db()
    assert (customer.on_credit_hold, customer.terms_type) == (True, TermsType.COD)
    assert TimelineEvent.objects.count() == events


def test_a_hold_lifted_through_the_card_records_why_with_who_and_before_and_after(client, manager, customer):
    customer.on_credit_hold = True
    customer.save(update_fields=["on_credit_hold"])
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]), card_data(
        customer, on_credit_hold=False, terms_reason="Paid everything; CFO agreed a new plan"))

    assert response.status_code == 302
    event = last_event()
    assert event.actor == manager
    assert event.summary == ("Account card changed: on credit hold yes → no, because "
                             "“Paid everything; CFO agreed a new plan”")
    assert event.details == {"before": {"on_credit_hold": True}, "after": {"on_credit_hold": False},
                             "reason": "Paid everything; CFO agreed a new plan"}
    page = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert "CFO agreed a new plan" in page


def test_the_card_asks_a_manager_why_credit_terms_change_but_not_a_collector(client, manager, collector,
                                                                             customer):
    url = reverse("customers:edit", args=[customer.pk])
    client.force_login(manager)
    assert 'name="terms_reason"' in client.get(url).content.decode()
    client.force_login(collector)
    assert 'name="terms_reason"' not in client.get(url).content.decode()


def test_a_card_change_that_leaves_credit_terms_alone_needs_no_reason(client, manager, customer):
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, payment_terms_days=45))

    assert response.status_code == 302
    assert last_event().summary == "Account card changed: days to pay 30 → 45"


@pytest.mark.parametrize("changes", [
    {"on_credit_hold": True},
    {"terms_type": TermsType.COD},
], ids=["a hold", "C.O.D."])
def test_a_credit_terms_change_saved_without_a_reason_is_refused_whatever_calls(manager, customer, changes):
    """The card's form is not the only way to the card: the rule holds where it is saved."""
    events = TimelineEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        services.customer_update(customer=customer, actor=manager, changes=changes, reason="  ")

    assert refused.value.message_dict == {"terms_reason": [
        "Say why the credit hold or the payment terms change: the timeline keeps it beside the change."]}
    customer.refresh_from_db()
    assert (customer.on_credit_hold, customer.terms_type) == (False, TermsType.STANDARD)
    assert TimelineEvent.objects.count() == events


def test_a_credit_terms_change_saved_with_a_reason_goes_through(manager, customer):
    services.customer_update(customer=customer, actor=manager, changes={"on_credit_hold": True},
                             reason="Three notices unanswered")

    customer.refresh_from_db()
    assert customer.on_credit_hold
    assert last_event().details["reason"] == "Three notices unanswered"


HIDDEN = "\u200b\u200b\u2060"  # zero-width spaces and a word joiner, as pasted from a web page


def test_a_card_note_of_only_characters_no_one_sees_is_refused_and_the_card_kept(client, collector, customer):
    client.force_login(collector)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, notes=HIDDEN, business_description=HIDDEN))

    assert response.status_code == 422
    form = response.context["form"]
    assert set(form.errors) == {"notes", "business_description"}
    assert form.errors["notes"] == ["This holds only characters no one sees (U+200B, U+2060): write it out."]
    customer.refresh_from_db()
    assert (customer.notes, customer.business_description) == ("", "")
    assert not TimelineEvent.objects.exists()


def test_a_contact_or_an_absence_whose_text_no_one_sees_is_refused(client, collector, customer, make_contact):
    jana = make_contact(customer, name="Jana Novak")
    client.force_login(collector)

    contact = client.post(reverse("customers:contact_add", args=[customer.pk]),
                          contact_data(name="Piet Visser", email="piet@acme.example", notes=HIDDEN))
    absence = client.post(reverse("customers:absence_add", args=[customer.pk, jana.pk]),
                          {"starts_on": "2030-08-10", "ends_on": "2030-08-20", "note": HIDDEN})

    assert (contact.status_code, absence.status_code) == (422, 422)
    assert "This holds only characters no one sees" in contact.content.decode()
    assert "This holds only characters no one sees" in absence.content.decode()
    assert list(Contact.objects.values_list("name", flat=True)) == ["Jana Novak"]
    assert not jana.absences.exists()
    assert not TimelineEvent.objects.exists()


@pytest.mark.parametrize(("field", "written", "named"), [
    ("payment_terms_days", "４５", "４ (U+FF14), ５ (U+FF15)"),
    ("payment_terms_days", "٤٥", "٤ (U+0664), ٥ (U+0665)"),
    ("typical_order_interval_days", "４５", "４ (U+FF14), ５ (U+FF15)"),
])
def test_a_number_of_days_in_other_digits_is_refused_naming_them(
    client, manager, customer, field, written, named
):
    before = database_state(customer)
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, terms_reason="Agreed at the review", **{field: written}))

    assert response.status_code == 422
    assert (f"“{written}” is written with digits other than 0-9 ({named}): write the number like 30."
            in html_text.unescape(response.content.decode()))
    assert database_state(customer) == before
