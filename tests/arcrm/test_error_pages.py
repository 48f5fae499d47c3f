"""The pages a refused or failed request answers with, as the user sees them
with DEBUG off."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse


@pytest.fixture
def checked_client() -> Client:
    return Client(enforce_csrf_checks=True)


def test_a_form_from_before_signing_in_elsewhere_says_what_happened_in_the_site_s_own_layout(
    checked_client, collector,
):
    # A page opened before the user signed in again in another tab carries
    # the old CSRF token: Django refuses its form.
    checked_client.force_login(collector)
    checked_client.get(reverse("customers:list"))

    response = checked_client.post(reverse("logout"), {"csrfmiddlewaretoken": "x" * 64})

    html = response.content.decode()
    assert response.status_code == 403
    assert 'class="site-nav"' in html
    assert "Nothing was changed" in html
    assert "opened before you last signed in or out" in html and "reload the page" in html
    assert "DEBUG=True" not in html


def test_a_sign_in_from_a_browser_that_sent_no_cookie_says_to_allow_cookies(checked_client):
    response = checked_client.post(reverse("login"), {"username": "carla", "password": "pw"})

    html = response.content.decode()
    assert response.status_code == 403
    assert "did not send arcrm's cookie" in html and "Nothing was changed" in html
