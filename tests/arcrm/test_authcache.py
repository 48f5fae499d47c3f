"""The signed-in user and their permissions from the shared cache (Redis):
read once, then from the cache, and dropped by every change that concerns them.

These tests commit (the cache is used only outside a transaction), against the
Redis of REDIS_URL, with keys under this run's own prefix (tests/conftest.py).
"""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache, caches
from django.db import transaction
from django.urls import reverse

from ar_collections.timeline import event_record
from arcrm import authcache
from arcrm.roles import COLLECTOR, MANAGER, VIEWER
from customers.models import Customer, EventKind

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _needs_the_cache(settings):
    assert settings.AUTH_CACHE_SECONDS > 0, "the suite runs with REDIS_URL set: the cache is on"


def timeline(customer) -> str:
    return reverse("customers:timeline", args=[customer.pk])


def cached(user) -> User | None:
    return cache.get(f"auth-user:{user.pk}")


def test_after_the_first_request_a_page_reads_neither_the_session_nor_the_user_from_the_database(
    client, collector, customer, django_assert_num_queries
):
    for n in range(3):
        event_record(customer=customer, kind=EventKind.NOTE, summary=f"Note {n}", actor=collector)
    client.force_login(collector)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    assert cached(collector) is not None

    # the customer, the page with its actors: nothing about who asks
    with django_assert_num_queries(2):
        response = client.get(timeline(customer), headers=HTMX)

    assert response.status_code == 200
    assert b"Note 2" in response.content
    # The cached user carries the role's permissions and groups, which decide what the page offers.
    assert cached(collector).has_perm("collections.add_call")
    assert cached(collector)._arcrm_group_names == {COLLECTOR}


def test_a_user_moved_to_another_role_has_its_permissions_at_the_next_request(client, collector, customer):
    client.force_login(collector)
    note = reverse("collections:note_add", args=[customer.pk])
    assert client.get(note).status_code == 200
    assert cached(collector) is not None

    collector.groups.set([Group.objects.get(name=VIEWER)])

    assert cached(collector) is None
    assert client.get(note).status_code == 403
    assert cached(collector)._arcrm_group_names == {VIEWER}


def test_a_permission_taken_from_a_role_is_gone_for_its_members_at_the_next_request(
    client, collector, customer
):
    client.force_login(collector)
    note = reverse("collections:note_add", args=[customer.pk])
    assert client.get(note).status_code == 200
    permission = Permission.objects.get(codename="add_timelineevent", content_type__app_label="customers")
    group = Group.objects.get(name=COLLECTOR)

    group.permissions.remove(permission)
    try:
        assert cached(collector) is None
        assert client.get(note).status_code == 403
    finally:
        group.permissions.add(permission)
    # Given back, from the other side of the relation: dropped again.
    assert cached(collector) is None
    assert client.get(note).status_code == 200


def test_a_deactivated_user_is_signed_out_at_the_next_request(client, collector, customer):
    client.force_login(collector)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200

    collector.is_active = False
    collector.save()

    response = client.get(reverse("customers:detail", args=[customer.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_deleted_role_takes_its_members_permissions_at_the_next_request(client, customer):
    group = Group.objects.create(name="Temporary collectors")
    group.permissions.set(Group.objects.get(name=COLLECTOR).permissions.all())
    user = User.objects.create_user("tess", password="pw-tess")
    user.groups.add(group)
    Customer.objects.filter(pk=customer.pk).update(collector=user)
    client.force_login(user)
    note = reverse("collections:note_add", args=[customer.pk])
    assert client.get(note).status_code == 200
    assert cached(user) is not None

    group.delete()

    assert cached(user) is None
    assert client.get(note).status_code == 403


def test_a_change_in_a_transaction_is_not_served_from_the_cache_before_it_commits(client, manager, customer):
    client.force_login(manager)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    assert cached(manager) is not None
    backend = authcache.CachedModelBackend()

    with transaction.atomic():
        manager.groups.set([Group.objects.get(name=VIEWER)])
        assert cached(manager) is None
        # Read inside the transaction: its own change, and nothing written to the cache.
        inside = backend.get_user(manager.pk)
        assert not inside.has_perm("customers.act_on_any_customer")
        assert cached(manager) is None
        transaction.set_rollback(True)

    # Rolled back: the manager is a manager again, and the cache never held otherwise.
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    assert cached(manager)._arcrm_group_names == {MANAGER}


def test_pages_are_served_when_redis_does_not_answer(client, collector, customer, settings, caplog):
    # A port nothing listens on: every cache read and write fails at once.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    assert caches["default"].get("anything", "missed") == "missed"
    client.force_login(collector)

    with caplog.at_level(logging.WARNING, logger="arcrm.cache"):
        response = client.get(reverse("customers:detail", args=[customer.pk]))

    assert response.status_code == 200
    assert customer.name.encode() in response.content
    assert "Redis did not answer" in caplog.text
