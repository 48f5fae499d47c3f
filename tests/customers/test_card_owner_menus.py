"""The account card's Collector and Relationship owner menus say what choosing
nothing means, as the other menus do, rather than Django's "---------": an
account has no relationship owner when none is chosen, and always has a
collector."""

from __future__ import annotations

import re

from django.urls import reverse

from customers.models import Customer
from tests.customers.test_views_edit import card_data


def blank_option(html: str, name: str) -> str:
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S)
    assert select, name
    option = re.search(r'<option value=""( selected)?>(.*?)</option>', select.group(0))
    assert option, select.group(0)
    return option.group(2) + (" (selected)" if option.group(1) else "")


def test_the_owner_menus_say_what_choosing_nothing_means(client, collector, customer):
    client.force_login(collector)

    html = client.get(reverse("customers:edit", args=[customer.pk])).content.decode()

    # No relationship owner yet: the menu opens on what that means.
    assert blank_option(html, "relationship_owner") == "No relationship owner (selected)"
    assert blank_option(html, "collector") == "Choose a collector"
    assert "---------" not in html


def test_choosing_no_relationship_owner_leaves_the_account_without_one(client, collector, manager, customer):
    Customer.objects.filter(pk=customer.pk).update(relationship_owner=manager)
    customer.refresh_from_db()
    client.force_login(collector)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, relationship_owner=""))

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.relationship_owner is None


def test_choosing_no_collector_is_refused_with_why_and_changes_nothing(client, manager, collector, customer):
    client.force_login(manager)  # a collector's card has the menu disabled

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, collector=""))

    assert response.status_code == 422
    said = "Choose a collector: every account has one who chases its receivables."
    assert said in response.content.decode()
    customer.refresh_from_db()
    assert customer.collector == collector
