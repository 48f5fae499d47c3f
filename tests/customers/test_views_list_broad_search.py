"""A search the book answers with more accounts than anyone reads: the list
says so and asks for more letters, and lists the first of them it found
(their names' matches first), most overdue first, rather than ranking and
counting every match on each keystroke. Narrower searches are listed and
counted exactly."""

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


def test_a_search_matching_more_accounts_than_the_cap_lists_as_many_as_the_cap_and_asks_for_more_letters(
    client, collector, make_customer, small_cap
):
    for n, amount in enumerate(["10", "500", "0", "70", "300", "20"]):
        owing(make_customer(name=f"Acme {n}"), amount)
    make_customer(name="Globex")
    client.force_login(collector)

    response = client.get(URL, {"q": "acme"})

    assert response.status_code == 200
    assert "5+ accounts match “acme”; narrow the search. The first 5 found, most overdue first." in said(
        response)
    # Five of the six, most overdue first; never the account the text is not in.
    listed = names_in(response)
    assert len(listed) == 5 and set(listed) < {f"Acme {n}" for n in range(6)}
    amounts = {"Acme 0": 10, "Acme 1": 500, "Acme 2": 0, "Acme 3": 70, "Acme 4": 300, "Acme 5": 20}
    assert [amounts[name] for name in listed] == sorted((amounts[name] for name in listed), reverse=True)
    # No count claimed for accounts never counted.
    assert "6 customers" not in said(response)
    assert "No customers match" not in said(response)


def test_a_broad_search_lists_the_accounts_its_name_matches_before_those_its_contacts_lead_to(
    client, collector, make_customer, make_contact, small_cap
):
    for n in range(4):
        make_customer(name=f"Acme {n}")
    for n in range(4):
        make_contact(make_customer(name=f"Firm {n}"), name="Clerk", email=f"acme{n}@firm{n}.example")
    client.force_login(collector)

    response = client.get(URL, {"q": "acme"})

    assert "5+ accounts match “acme”" in said(response)
    listed = names_in(response)
    assert len(listed) == 5
    assert {f"Acme {n}" for n in range(4)} < set(listed)


def test_a_broad_search_pages_through_the_accounts_it_lists(client, collector, make_customer, monkeypatch):
    monkeypatch.setattr(views, "SEARCH_CAP", 5)
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for n in range(7):
        make_customer(name=f"Acme {n}")
    client.force_login(collector)

    pages = [client.get(URL, {"q": "acme", "page": n}) for n in (1, 2, 3)]

    assert "The first 5 found, most overdue first, page 2 of 3." in said(pages[1])
    listed = [name for page in pages for name in names_in(page)]
    assert len(listed) == len(set(listed)) == 5


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
    assert "narrow the search" not in said(response)


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

    assert len(names_in(response)) == 5
    assert "5+ accounts match “acme”; narrow the search." in said(response)


def test_the_cap_is_a_thousand_accounts_said_with_its_thousands_separator(client, collector, db):
    Customer.objects.bulk_create(
        Customer(account_number=f"B{n:05d}", name=f"Bakker {n}", collector=collector,
                 customer_since=dt.date(2020, 1, 1)) for n in range(1001))
    client.force_login(collector)

    response = client.get(URL, {"q": "bakker"})

    assert ("1,000+ accounts match “bakker”; narrow the search. The first 1,000 found, most overdue first, "
            "page 1 of 20.") in said(response)


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
    assert "narrow the search" not in said(response)


def test_a_broad_search_ranks_only_the_accounts_it_lists(client, collector, make_customer, small_cap,
                                                          django_assert_num_queries):
    for n in range(6):
        make_customer(name=f"Acme {n}")
    client.force_login(collector)

    # session, user, role groups, permissions (2), collector choices, the
    # accounts' own columns, read up to the cap, the ranking of the cap's
    # accounts and the page's: nothing counts or ranks every match
    with django_assert_num_queries(9):
        client.get(URL, {"q": "acme"})
