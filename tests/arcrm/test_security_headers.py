"""The headers every page is served with: a Content Security Policy that
runs only our own scripts, beside Django's own (no sniffing of types, no
referrer to other sites, no framing)."""

from __future__ import annotations

from django.urls import reverse


def test_a_page_runs_only_our_own_scripts_and_loads_nothing_from_another_site(client, collector):
    client.force_login(collector)

    response = client.get(reverse("customers:list"))

    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert policy["base-uri"] == "'self'"


def test_the_sign_in_page_has_the_policy_and_django_s_headers(client, db):
    response = client.get(reverse("login"))

    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_a_pdf_or_a_csv_file_is_served_without_a_page_s_policy(client, manager):
    """A policy is for pages that run scripts; browsers' PDF viewers are not ours to restrict."""
    client.force_login(manager)

    response = client.get(reverse("collections:numbers_csv"))

    assert response.status_code == 200
    assert "Content-Security-Policy" not in response
