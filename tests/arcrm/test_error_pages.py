"""The pages a refused or failed request answers with, as the user sees them
with DEBUG off."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path, reverse

from arcrm.urls import urlpatterns as site_urlpatterns


def _broken_page(request):
    raise RuntimeError("a bug")


# The site's pages and one that fails, for the server-error page.
urlpatterns = [path("broken/", _broken_page), *site_urlpatterns]


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


def test_a_page_that_is_not_there_says_why_in_the_site_s_own_layout(client, manager):
    client.force_login(manager)

    response = client.get(reverse("collections:import_example", args=["credit_notes"]))

    html = response.content.decode()
    assert response.status_code == 404
    assert 'class="site-nav"' in html
    assert "There are invoice, payment and account files only." in html


def test_an_address_that_does_not_exist_is_not_answered_in_python_s_words(client, manager):
    client.force_login(manager)

    response = client.get("/no-such-page/")

    html = response.content.decode()
    assert response.status_code == 404
    assert 'class="site-nav"' in html and "Page not found" in html
    assert "Resolver404" not in html


def test_an_account_that_is_not_there_is_not_named_by_its_model(client, manager):
    client.force_login(manager)

    response = client.get(reverse("customers:detail", args=[999999]))

    html = response.content.decode()
    assert response.status_code == 404
    assert "There is nothing at this address" in html
    assert "No Customer matches" not in html


def test_a_server_error_is_answered_in_the_site_s_layout_and_says_what_to_do(settings, manager):
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    client.force_login(manager)

    response = client.get("/broken/")

    html = response.content.decode()
    assert response.status_code == 500
    assert 'class="site-nav"' in html
    assert "reload the page" in html.lower() and "a bug" not in html
