"""Credit notes are numbered without gaps from a counter per year, taken
under a lock as each is issued. The admin shows the counters and changes
none: a counter set forward leaves a gap in the numbers, one set back or
deleted hands out numbers already issued (then skipped, another gap)."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ar_collections.models import DocumentCounter
from ar_collections.workspace import document_number


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


def test_a_document_counter_is_neither_set_added_nor_deleted_in_the_admin(admin_client):
    assert [document_number("CN-2026-") for _ in range(3)] == ["CN-2026-00001", "CN-2026-00002",
                                                               "CN-2026-00003"]
    counter = DocumentCounter.objects.get(prefix="CN-2026-")
    url = reverse("admin:collections_documentcounter_change", args=[counter.pk])

    page = admin_client.get(url)
    changed = admin_client.post(url, {"prefix": "CN-2026-", "next_value": "10"})
    added = admin_client.post(reverse("admin:collections_documentcounter_add"),
                              {"prefix": "CN-2027-", "next_value": "500"})
    deleted = admin_client.post(reverse("admin:collections_documentcounter_delete", args=[counter.pk]),
                                {"post": "yes"})

    assert document_number("CN-2026-") == "CN-2026-00004"
    assert document_number("CN-2027-") == "CN-2027-00001"
    assert page.status_code == 200
    assert (changed.status_code, added.status_code, deleted.status_code) == (403, 403, 403)
