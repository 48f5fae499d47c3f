"""A search the book answers with more accounts than anyone reads: the list
says so and asks for more letters, rather than ranking and counting every
match on each keystroke. Narrower searches are listed and counted exactly."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections.models import PaymentBehaviour
from customers import views
from customers.models import Contact, ContactRole, Customer

URL = reverse("customers:list")


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(views, "SEARCH_CAP", 5)


def owing(customer, overdue_amount):
    PaymentBehaviour.objects.create(customer=customer, computed_on=dt.date(2025, 3, 1),
                                    overdue_amount=Decimal(overdue_amount))
    return customer


def names_in(response) -> list[str]:
    return [customer.name for customer in response.context["page"].object_list]


def said(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def test_a_search_matching_more_accounts_than_the_cap_says_so_and_asks_for_more_letters(
    client, collector, make_customer, small_cap
):
    for n in range(6):
        make_customer(name=f"Acme {n}")
    make_customer(name="Globex")
    client.force_login(collector)

    response = client.get(URL, {"q": "acme"})

    assert response.status_code == 200
    assert "More than 5 customers match “acme” — keep typing to narrow the search." in said(response)
    # No count and no ranking claimed for accounts never ranked.
    assert names_in(response) == []
    assert "6 customers" not in said(response)
    assert "No customers match" not in said(response)


def test_a_search_matching_as_many_accounts_as_the_cap_is_listed_and_counted_most_overdue_first(
    client, collector, make_customer, small_cap
):
    for n, amount in enumerate(["10", "500", "0", "70", "500"]):
        owing(make_customer(name=f"Acme {n}"), amount)
    make_customer(name="Globex")
    client.force_login(collector)

    response = client.get(URL, {"q": "acme"})

    assert names_in(response) == ["Acme 1", "Acme 4", "Acme 3", "Acme 0", "Acme 2"]
    assert "5 customers" in said(response)
    assert "keep typing" not in said(response)


def test_an_account_found_through_many_of_its_contacts_counts_once(
    client, collector, make_customer, make_contact, small_cap
):
    """Its contacts are more than the cap, three times over; the accounts they lead to are not."""
    busy = make_customer(name="Busy")
    for n in range(20):
        make_contact(busy, name=f"Clerk {n}", email=f"ap{n}@busy.example")
    quiet = make_customer(name="Quiet")
    make_contact(quiet, email="ap@quiet.example")
    client.force_login(collector)

    response = client.get(URL, {"q": "ap"})

    assert names_in(response) == ["Busy", "Quiet"]
    assert "2 customers" in said(response)


def test_a_filter_that_narrows_a_broad_search_under_the_cap_lists_every_match(
    client, collector, make_customer, small_cap
):
    for n in range(8):
        make_customer(name=f"Acme {n}", on_credit_hold=n < 2)
    client.force_login(collector)

    response = client.get(URL, {"q": "acme", "terms": "credit_hold"})

    assert names_in(response) == ["Acme 0", "Acme 1"]
    assert "2 customers" in said(response)


def test_a_filter_that_leaves_a_search_broad_still_says_so(client, collector, make_customer, small_cap):
    for n in range(8):
        make_customer(name=f"Acme {n}", on_credit_hold=n < 6)
    client.force_login(collector)

    response = client.get(URL, {"q": "acme", "terms": "credit_hold"})

    assert names_in(response) == []
    assert "More than 5 customers match “acme” — keep typing" in said(response)


def test_the_cap_is_a_thousand_accounts_said_with_its_thousands_separator(client, collector, db):
    Customer.objects.bulk_create(
        Customer(account_number=f"B{n:05d}", name=f"Bakker {n}", collector=collector,
                 customer_since=dt.date(2020, 1, 1)) for n in range(1001))
    client.force_login(collector)

    response = client.get(URL, {"q": "bakker"})

    assert "More than 1,000 customers match “bakker” — keep typing to narrow the search." in said(response)


def test_a_thousand_accounts_found_through_their_contacts_are_all_listed_and_counted(
    client, collector, db
):
    customers = Customer.objects.bulk_create(
        Customer(account_number=f"B{n:05d}", name=f"Firm {n}", collector=collector,
                 customer_since=dt.date(2020, 1, 1)) for n in range(1000))
    Contact.objects.bulk_create(
        Contact(customer=c, name=f"Anna Bakker {n}", role=ContactRole.AP, email=f"anna@firm{n}.example")
        for c in customers for n in range(2))
    client.force_login(collector)

    response = client.get(URL, {"q": "bakker"})

    assert "1000 customers, page 1 of 20" in said(response)
    assert "keep typing" not in said(response)


def test_a_broad_search_reads_no_account(client, collector, make_customer, small_cap,
                                         django_assert_num_queries):
    for n in range(6):
        make_customer(name=f"Acme {n}")
    client.force_login(collector)

    # session, user, role groups, permissions (2), collector choices, and the
    # accounts' own columns, read up to the cap: no count, no ranking, no page
    with django_assert_num_queries(7):
        client.get(URL, {"q": "acme"})
