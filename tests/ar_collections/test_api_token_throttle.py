"""Requests refused for their token are counted per address: too many within
a minute and that address's wrong tokens are answered 429 with when to try
again. A good token is never held up."""

from __future__ import annotations

import logging

from django.test import Client
from django.urls import reverse

from ar_collections.api import api_token_create


def _standing(address: str, token: str = "arcrm_wrong", **headers):
    client = Client(REMOTE_ADDR=address, headers={"Authorization": f"Bearer {token}"}, **headers)
    return client.get(reverse("api:customer_standing", args=["C-ACME"]))


def test_too_many_wrong_tokens_from_one_address_are_answered_429_with_retry_after(customer, settings):
    settings.API_TOKEN_FAILURES_PER_MINUTE = 3
    assert [_standing("10.1.0.1").status_code for _ in range(3)] == [401, 401, 401]

    response = _standing("10.1.0.1")

    assert response.status_code == 429
    assert 50 <= int(response["Retry-After"]) <= 60
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"].startswith("Too many requests with a wrong token from this address")
    assert _standing("10.1.0.2").status_code == 401  # another address is answered as before


def test_a_good_token_from_that_address_is_answered_at_once(customer, manager, settings):
    settings.API_TOKEN_FAILURES_PER_MINUTE = 3
    customer.account_number = "C-ACME"
    customer.save(update_fields=["account_number"])
    secret = api_token_create(user=manager, name="ERP")[1]
    for _ in range(4):
        _standing("10.1.0.1")

    response = _standing("10.1.0.1", secret)
    assert response.status_code == 200 and response.json()["account_number"] == "C-ACME"
    assert _standing("10.1.0.1").status_code == 429  # its wrong tokens are still held up


def test_good_tokens_are_not_counted(customer, manager, settings):
    settings.API_TOKEN_FAILURES_PER_MINUTE = 3
    secret = api_token_create(user=manager, name="ERP")[1]
    for _ in range(5):
        _standing("10.1.0.1", secret)

    assert _standing("10.1.0.1").status_code == 401


def test_behind_the_proxy_the_refusal_log_names_the_client_not_the_proxy(customer, settings, caplog):
    settings.BEHIND_TLS_PROXY = True
    caplog.set_level(logging.WARNING, logger="ar_collections.api")

    _standing("192.168.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7")

    assert "an unknown token, from 203.0.113.7" in caplog.text


def test_without_a_trusted_proxy_the_log_names_the_connection(customer, caplog):
    caplog.set_level(logging.WARNING, logger="ar_collections.api")

    _standing("192.168.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert "an unknown token, from 192.168.0.1" in caplog.text
