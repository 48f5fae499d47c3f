"""Where signing in leads: a collector's day starts on their work for today,
a read-only colleague's on the customers (they have no list of work)."""

from __future__ import annotations

import pytest
from django.urls import reverse


def signed_in(client, user):
    return client.post(reverse("login"), {"username": user.username, "password": "pw-" + user.username},
                       follow=True)


@pytest.mark.parametrize("role", ["collector", "manager"])
def test_someone_with_a_worklist_lands_on_their_work_for_today(client, request, role):
    response = signed_in(client, request.getfixturevalue(role))

    assert response.redirect_chain[-1][0] == reverse("collections:worklist")
    assert response.status_code == 200


def test_a_read_only_colleague_lands_on_the_customers(client, viewer):
    response = signed_in(client, viewer)

    assert response.redirect_chain[-1][0] == reverse("customers:list")
    assert response.status_code == 200


def test_a_page_asked_for_before_signing_in_is_still_where_signing_in_leads(client, collector, make_customer):
    account = make_customer(name="Hendriks")
    page = reverse("customers:detail", args=[account.pk])

    response = client.post(f"{reverse('login')}?next={page}",
                           {"username": "carla", "password": "pw-carla"}, follow=True)

    assert response.redirect_chain[-1][0] == page


@pytest.mark.parametrize(("role", "page"), [
    ("collector", "collections:worklist"), ("viewer", "customers:list"),
])
def test_the_home_address_leads_where_signing_in_does(client, request, role, page):
    client.force_login(request.getfixturevalue(role))

    response = client.get("/")

    assert response.status_code == 302
    assert response.url == reverse(page)


def test_the_home_address_sends_a_visitor_to_sign_in_and_on_to_their_work(client, collector):
    """The address typed in the morning: signing in from there leads to the
    worklist, not to the customer list the front door used to ask for."""
    sign_in = client.get("/", follow=True).redirect_chain[-1][0]
    assert sign_in.startswith(reverse("login"))

    response = client.post(sign_in, {"username": "carla", "password": "pw-carla"}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("collections:worklist")


def test_the_name_at_the_top_of_every_page_leads_to_where_signing_in_does(client, collector, make_customer):
    """Clicking "arcrm" brings a collector back to their work for today, as
    signing in does, not to the customer list."""
    client.force_login(collector)
    account = make_customer(name="Hendriks")
    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()

    assert f'<a class="brand" href="{reverse("home")}">' in page
    assert client.get(reverse("home")).url == reverse("collections:worklist")
