"""With DEBUG on, Django's error page (the traceback) runs its own inline
script to fold and unfold the frames: that page alone may, and only then.
Every other page, and every page with DEBUG off, runs our own files only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path, reverse

from arcrm.urls import urlpatterns as site_urlpatterns


def _broken_page(request):
    raise RuntimeError("a bug")


urlpatterns = [path("broken/", _broken_page), *site_urlpatterns]
pytestmark = pytest.mark.urls(__name__)


def _script_src(response) -> str:
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    return policy["script-src"]


def test_with_debug_on_the_error_page_may_run_its_inline_script(settings, db):
    settings.DEBUG = True

    response = Client(raise_request_exception=False).get("/broken/")

    assert response.status_code == 500
    assert "RuntimeError" in response.content.decode() and "onclick=" in response.content.decode()
    assert _script_src(response) == "'self' 'unsafe-inline'"


def test_with_debug_on_every_other_page_stays_strict(settings, client, collector):
    settings.DEBUG = True
    client.force_login(collector)

    assert _script_src(client.get(reverse("customers:list"))) == "'self'"
    assert _script_src(client.get("/no-such-page/")) == "'self'"  # Django's own 404 page, under DEBUG


def test_with_debug_off_the_error_page_stays_strict(settings, db):
    settings.DEBUG = False

    response = Client(raise_request_exception=False).get("/broken/")

    assert response.status_code == 500
    assert "RuntimeError" not in response.content.decode()
    assert _script_src(response) == "'self'"
