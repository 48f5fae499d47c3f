"""The session store (arcrm.sessions): Django's database sessions, read by a
query compiled once a process."""

from __future__ import annotations

import datetime as dt

from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone


def test_a_live_session_opens_the_account_and_an_expired_one_asks_to_sign_in(client, collector, customer):
    client.force_login(collector)
    url = reverse("customers:timeline", args=[customer.pk])

    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200

    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get(url, HTTP_HX_REQUEST="true")

    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_each_session_signs_in_its_own_user(collector, other_collector, customer):
    mine, theirs = Client(), Client()
    mine.force_login(collector)
    theirs.force_login(other_collector)
    url = reverse("customers:detail", args=[customer.pk])

    assert theirs.get(url).wsgi_request.user == other_collector
    assert mine.get(url).wsgi_request.user == collector
