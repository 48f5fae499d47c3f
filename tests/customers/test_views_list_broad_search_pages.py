"""A broad search's first accounts found are the same on every page: read
in no order, the set paged through changed when a row was updated between two
pages, and an account was never listed (or listed twice)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

import customers.models
from customers import views
from customers.models import Customer

URL = reverse("customers:list")


def names_in(response) -> list[str]:
    return [customer.name for customer in response.context["page"].object_list]


# Read whole and sorted (the matches fit in the span read in no order), and
# read again in the order of the ids (they do not).
@pytest.mark.parametrize("span", [4, 1])
def test_paging_a_broad_search_lists_each_found_account_once_when_a_row_changes_between_pages(
    client, collector, make_customer, monkeypatch, span
):
    monkeypatch.setattr(customers.models, "UNORDERED_SPAN", span)
    monkeypatch.setattr(views, "SEARCH_CAP", 5)
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for n in range(7):
        make_customer(name=f"Acme {n}")
    client.force_login(collector)

    first = client.get(URL, {"q": "acme", "page": 1})
    # Someone saves an account's card between the two pages (or the nightly
    # segment refresh writes its row): nothing about the search changed.
    Customer.objects.filter(name="Acme 0").update(legal_name="Acme 0 GmbH")
    rest = [client.get(URL, {"q": "acme", "page": n}) for n in (2, 3)]

    listed = names_in(first) + [name for page in rest for name in names_in(page)]
    assert len(listed) == len(set(listed)) == 5, listed
    # Nothing between two listed accounts is skipped: the pages read one list.
    assert re.search(r"page 2 of 3", " ".join(re.sub(r"<[^>]+>", " ", rest[0].content.decode()).split()))
    assert sorted(listed) == [f"Acme {n}" for n in range(5)], listed
