"""The Integration group's users are the accounts other systems (the ERP)
sign API requests as. They are no person's login: even given a password,
such a user neither signs in to the browser pages nor, with a session from
before joining the group, opens any of them, and above all never manages
API tokens, which would let it issue itself one acting as a manager."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ar_collections.api import api_token_create
from ar_collections.models import ApiToken
from arcrm.roles import INTEGRATION


@pytest.fixture
def erp_user(db) -> User:
    """The ERP's user as the demo makes it (no password), then given one by an admin."""
    user = User.objects.create_user(username="erp", password=None)
    user.groups.add(Group.objects.get(name=INTEGRATION))
    user.set_password("erp-given-a-password")
    user.save()
    return user


def test_an_integration_user_given_a_password_cannot_sign_in_and_is_told_why(erp_user):
    client = Client()
    response = client.post(reverse("login"), {"username": "erp", "password": "erp-given-a-password"})

    assert response.status_code == 200
    assert "erp is an integration account" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("collections:api_tokens")).status_code == 302  # to the login page


def test_a_wrong_password_still_reads_as_before(manager):
    response = Client().post(reverse("login"), {"username": "maria", "password": "wrong"})

    assert "Your user name and password did not match. Please try again." in response.content.decode()


@pytest.mark.parametrize("name, args", [
    ("collections:api_tokens", []),
    ("customers:list", []),
    ("collections:worklist", []),
    ("collections:import", []),
])
def test_an_integration_user_signed_in_from_before_is_refused_every_page_with_a_403_saying_why(
        erp_user, name, args):
    client = Client()
    client.force_login(erp_user)  # signed in before an admin put the user in the group

    response = client.get(reverse(name, args=args))

    assert response.status_code == 403
    assert "erp is an integration account" in response.content.decode()


def test_an_integration_user_cannot_issue_a_token_acting_as_a_manager(erp_user, manager):
    client = Client()
    client.force_login(erp_user)

    response = client.post(reverse("collections:api_tokens"), {"name": "mine", "user": manager.pk})

    assert response.status_code == 403
    assert not ApiToken.objects.exists()


def test_an_integration_user_cannot_open_the_admin_even_as_staff(erp_user):
    erp_user.is_staff = True
    erp_user.save()
    client = Client()
    client.force_login(erp_user)

    assert client.get("/admin/").status_code == 403


def test_an_integration_user_still_signs_api_requests_with_its_token(erp_user, make_customer):
    make_customer(account_number="C-ACME", name="Acme Tools")
    secret = api_token_create(user=erp_user, name="ERP")[1]
    client = Client(headers={"Authorization": f"Bearer {secret}"})

    issued = timezone.localdate() - dt.timedelta(days=10)
    response = client.post(reverse("api:invoices"), json.dumps({"rows": [{
        "number": "INV-1", "account_number": "C-ACME", "issue_date": issued.isoformat(),
        "due_date": (issued + dt.timedelta(days=30)).isoformat(),
        "currency": "EUR", "total_amount": "500.00"}]}), content_type="application/json")

    assert response.status_code == 200, response.content
