"""Accounts, contacts and absences in the admin: looked at there, changed on
the account page, whose services write the timeline with before and after,
move the primary billing flag and close the "address refused" work item."""

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from customers.models import Contact, ContactAbsence, Customer, EventKind, TimelineEvent


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


def _contact_post(customer, **fields):
    return {"customer": customer.pk, "name": "Nina New", "role": "ap", "email": "nina@example.com",
            "language": "en", "invoice_delivery": "pdf_email", "reminder_channel": "email", **fields}


def test_a_contact_cannot_be_added_in_the_admin(admin_client, customer):
    response = admin_client.post(reverse("admin:customers_contact_add"), _contact_post(customer))

    assert response.status_code == 403
    assert not Contact.objects.exists() and not TimelineEvent.objects.exists()


def test_a_contact_cannot_be_changed_or_removed_in_the_admin(admin_client, customer, make_contact):
    contact = make_contact(customer, name="Ben Backup")

    changed = admin_client.post(reverse("admin:customers_contact_change", args=[contact.pk]),
                                _contact_post(customer, name="Ben Renamed"))
    removed = admin_client.post(reverse("admin:customers_contact_delete", args=[contact.pk]), {"post": "yes"})

    assert (changed.status_code, removed.status_code) == (403, 403)
    assert Contact.objects.get().name == "Ben Backup"


def test_an_absence_cannot_be_added_changed_or_removed_in_the_admin(admin_client, customer, make_contact):
    contact, stand_in = make_contact(customer, name="Ada Away"), make_contact(customer, name="Sam Stand-in")
    absence = ContactAbsence.objects.create(contact=contact, starts_on=dt.date(2026, 8, 1),
                                            ends_on=dt.date(2026, 8, 15), delegate=stand_in)
    dates = {"contact": contact.pk, "starts_on": "2026-09-01", "ends_on": "2026-09-10", "delegate": ""}

    added = admin_client.post(reverse("admin:customers_contactabsence_add"), dates)
    changed = admin_client.post(reverse("admin:customers_contactabsence_change", args=[absence.pk]), dates)
    removed = admin_client.post(reverse("admin:customers_contactabsence_delete", args=[absence.pk]),
                                {"post": "yes"})

    assert (added.status_code, changed.status_code, removed.status_code) == (403, 403, 403)
    kept = ContactAbsence.objects.get()
    assert (kept.starts_on, kept.delegate) == (dt.date(2026, 8, 1), stand_in)


def test_the_admin_s_absence_page_offers_no_menu_of_contacts(admin_client, customer, make_contact,
                                                             make_customer):
    """With thousands of accounts a menu of every contact is unusable, and would
    offer another customer's: the admin shows the absence, the account page
    (whose menu offers the customer's own contacts) records it."""
    contact, stand_in = make_contact(customer, name="Ada Away"), make_contact(customer, name="Sam Stand-in")
    make_contact(make_customer(name="Other Ltd"), name="Stranger Elsewhere")
    absence = ContactAbsence.objects.create(contact=contact, starts_on=dt.date(2026, 8, 1),
                                            ends_on=dt.date(2026, 8, 15), delegate=stand_in)

    url = reverse("admin:customers_contactabsence_change", args=[absence.pk])

    html = admin_client.get(url).content.decode()

    assert "Ada Away" in html and "Sam Stand-in" in html
    assert "<select" not in html and 'name="delegate"' not in html and 'name="contact"' not in html
    assert "Stranger Elsewhere" not in html


def test_a_contact_on_the_account_s_admin_page_is_only_shown(admin_client, customer, make_contact):
    contact = make_contact(customer, name="Ben Backup", is_primary_billing=True)

    page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()

    assert "Ben Backup" in page
    assert 'name="contacts-0-name"' not in page and 'name="contacts-0-is_primary_billing"' not in page
    assert Contact.objects.get(pk=contact.pk).is_primary_billing


@pytest.mark.parametrize("page", ["contact", "contactabsence"])
def test_the_admin_page_of_a_contact_or_absence_leads_to_the_account_page(admin_client, customer,
                                                                          make_contact, page):
    contact = make_contact(customer)
    absence = ContactAbsence.objects.create(contact=contact, starts_on=dt.date(2026, 8, 1),
                                            ends_on=dt.date(2026, 8, 15))
    row = contact if page == "contact" else absence

    html = admin_client.get(reverse(f"admin:customers_{page}_change", args=[row.pk])).content.decode()

    assert f'href="{reverse("customers:detail", args=[customer.pk])}"' in html


def test_an_account_card_cannot_be_changed_in_the_admin(admin_client, customer):
    """The account page records the change with before and after; the admin would not."""
    page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    response = admin_client.post(reverse("admin:customers_customer_change", args=[customer.pk]), {
        "account_number": customer.account_number, "name": "Acme Renamed", "industry": "retail",
        "customer_since": "2020-01-01", "buying_reasons": "[]", "ap_run_days": "[]",
        "contacts-TOTAL_FORMS": "0", "contacts-INITIAL_FORMS": "0",
    })

    assert 'name="name"' not in page and 'name="industry"' not in page
    assert f'href="{reverse("customers:detail", args=[customer.pk])}"' in page
    assert response.status_code == 403
    assert Customer.objects.get().name == "Acme Tools"


def test_a_new_account_is_opened_in_the_admin_with_its_terms(admin_client, collector):
    """Imports and the ERP sync bring invoices and payments for accounts that
    exist: the admin is where an account is opened."""
    response = admin_client.post(reverse("admin:customers_customer_add"), {
        "account_number": "C-NEW", "name": "Newco", "industry": "retail", "customer_since": "2024-05-01",
        "collector": collector.pk, "currency": "EUR", "credit_limit_amount": "5000.00",
        "terms_type": "standard", "payment_terms_days": "45", "buying_reasons": "[]", "ap_run_days": "[]",
        "contacts-TOTAL_FORMS": "0", "contacts-INITIAL_FORMS": "0",
    })

    assert response.status_code == 302
    opened = Customer.objects.get(account_number="C-NEW")
    assert (opened.name, opened.collector, opened.payment_terms_days) == ("Newco", collector, 45)


def test_an_account_opened_in_the_admin_starts_its_timeline_with_who_opened_it(
    admin_client, collector, customer
):
    """As every account's history begins: the opening, with the referral if any."""
    admin = User.objects.get(username="root-admin")

    admin_client.post(reverse("admin:customers_customer_add"), {
        "account_number": "C-NEW", "name": "Newco", "industry": "retail", "customer_since": "2024-05-01",
        "collector": collector.pk, "currency": "EUR", "credit_limit_amount": "5000.00",
        "terms_type": "standard", "payment_terms_days": "45", "buying_reasons": "[]", "ap_run_days": "[]",
        "referred_by": customer.pk, "contacts-TOTAL_FORMS": "0", "contacts-INITIAL_FORMS": "0",
    })

    opened = Customer.objects.get(account_number="C-NEW")
    event = TimelineEvent.objects.get(customer=opened)
    assert (event.kind, event.actor, event.summary) == (
        EventKind.ACCOUNT_CREATED, admin, "Account opened for Newco, referred by Acme Tools"
    )
    assert event.details == {"account_number": "C-NEW", "referred_by": customer.account_number}


@pytest.mark.parametrize("page", ["contact", "customer"])
def test_the_admin_shows_a_contact_s_refused_address_read_only(admin_client, customer, make_contact, page):
    """Why mail to the contact stops: the address the mail server refused for
    good, when and what it said. Kept by delivery, never typed in."""
    contact = make_contact(customer, name="Ben Bounced", email="ben@acme.example")
    Contact.objects.filter(pk=contact.pk).update(
        email_refused="ben@acme.example", email_refused_on=dt.date(2025, 7, 30),
        email_refused_reason="550 5.1.1 User unknown",
    )
    row = contact if page == "contact" else customer

    html = admin_client.get(reverse(f"admin:customers_{page}_change", args=[row.pk])).content.decode()

    for shown in ["Email refused", "30 Jul 2025", "550 5.1.1 User unknown"]:
        assert shown in html, shown
    assert 'name="email_refused' not in html and 'name="contacts-0-email_refused' not in html
