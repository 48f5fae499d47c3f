"""The signed-in user and their permissions from the shared cache (Redis):
read once, then from the cache, and dropped by every change that concerns them.

These tests commit (the cache is used only outside a transaction), against the
Redis of REDIS_URL, with keys under this run's own prefix (tests/conftest.py).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time

import pytest
import redis
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache, caches
from django.db import transaction
from django.urls import reverse
from redis.exceptions import ConnectionError as RedisConnectionError

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


def cached(user) -> authcache.Rights | None:
    """The user's cache entry, None when there is none or it is marked forgotten."""
    entry = cache.get(f"auth-rights:{user.pk}")
    return entry if isinstance(entry, authcache.Rights) else None


def forgotten(user) -> bool:
    return cache.get(f"auth-rights:{user.pk}") == "forgotten"


def sign_in(client, user) -> None:
    """Signed in, as after the minute that giving the user its role (any
    change to it) keeps its entry marked forgotten."""
    client.force_login(user)
    cache.delete(f"auth-rights:{user.pk}")


def test_after_the_first_request_a_page_reads_the_users_row_alone_of_what_decides_their_rights(
    client, collector, customer, django_assert_num_queries
):
    for n in range(3):
        event_record(customer=customer, kind=EventKind.NOTE, summary=f"Note {n}", actor=collector)
    sign_in(client, collector)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    assert cached(collector) is not None

    # the session (kept in the database), the user's row (never cached), the
    # customer, the page with its actors; not their permissions, groups or role
    with django_assert_num_queries(4):
        response = client.get(timeline(customer), headers=HTMX)

    assert response.status_code == 200
    assert b"Note 2" in response.content
    # The entry carries the role's permissions and groups, which decide what the page offers.
    assert "collections.add_call" in cached(collector).group_permissions
    assert cached(collector).group_names == {COLLECTOR}


def test_redis_holds_no_password_hash(client, collector, customer):
    """Django checks a session against the user's password hash on every
    request. The hash is read from the database, never kept in Redis, where a
    copy of its memory would hand every signed-in user's hash to a cracker."""
    sign_in(client, collector)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    redis_client = cache._cache.get_client(write=False)

    values = [redis_client.get(key) for key in redis_client.scan_iter(match=cache.make_key("*"))]

    assert cached(collector) is not None and values
    password_hash = User.objects.get(pk=collector.pk).password.encode()
    assert not [value for value in values if password_hash in value]


def test_a_user_moved_to_another_role_has_its_permissions_at_the_next_request(client, collector, customer):
    sign_in(client, collector)
    note = reverse("collections:note_add", args=[customer.pk])
    assert client.get(note).status_code == 200
    assert cached(collector) is not None

    collector.groups.set([Group.objects.get(name=VIEWER)])

    assert forgotten(collector)
    assert client.get(note).status_code == 403
    # Not cached again until the mark expires: then read afresh.
    assert forgotten(collector)
    cache.delete(f"auth-rights:{collector.pk}")
    assert client.get(note).status_code == 403
    assert cached(collector).group_names == {VIEWER}


def test_a_permission_taken_from_a_role_is_gone_for_its_members_at_the_next_request(
    client, collector, customer
):
    sign_in(client, collector)
    note = reverse("collections:note_add", args=[customer.pk])
    assert client.get(note).status_code == 200
    permission = Permission.objects.get(codename="add_timelineevent", content_type__app_label="customers")
    group = Group.objects.get(name=COLLECTOR)

    group.permissions.remove(permission)
    try:
        assert forgotten(collector)
        assert client.get(note).status_code == 403
        cache.delete(f"auth-rights:{collector.pk}")
        assert client.get(note).status_code == 403
        assert cached(collector) is not None
    finally:
        permission.group_set.add(group)  # given back from the other side of the relation
    assert forgotten(collector)
    assert client.get(note).status_code == 200


def test_a_deactivated_user_is_signed_out_at_the_next_request(client, collector, customer):
    sign_in(client, collector)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200

    collector.is_active = False
    collector.save()

    response = client.get(reverse("customers:detail", args=[customer.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_password_changed_behind_the_applications_back_signs_out_at_the_next_request(
    client, collector, customer
):
    """An administrator resetting a password by SQL (no signal tells the
    cache): the session, checked against the row, ends at once."""
    sign_in(client, collector)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    assert cached(collector) is not None

    User.objects.filter(pk=collector.pk).update(password=make_password("pw-reset"))

    response = client.get(reverse("customers:detail", args=[customer.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_deleted_role_takes_its_members_permissions_at_the_next_request(client, customer):
    group = Group.objects.create(name="Temporary collectors")
    group.permissions.set(Group.objects.get(name=COLLECTOR).permissions.all())
    user = User.objects.create_user("tess", password="pw-tess")
    user.groups.add(group)
    Customer.objects.filter(pk=customer.pk).update(collector=user)
    sign_in(client, user)
    note = reverse("collections:note_add", args=[customer.pk])
    assert client.get(note).status_code == 200
    assert cached(user) is not None

    group.delete()

    assert forgotten(user)
    assert client.get(note).status_code == 403


def test_a_change_in_a_transaction_is_not_served_from_the_cache_before_it_commits(client, manager, customer):
    sign_in(client, manager)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    assert cached(manager) is not None
    backend = authcache.CachedModelBackend()

    with transaction.atomic():
        manager.groups.set([Group.objects.get(name=VIEWER)])
        assert forgotten(manager)
        # Read inside the transaction: its own change, and nothing written to the cache.
        inside = backend.get_user(manager.pk)
        assert not inside.has_perm("customers.act_on_any_customer")
        assert cached(manager) is None
        transaction.set_rollback(True)

    # Rolled back: the manager is a manager again, and the cache never held otherwise.
    assert forgotten(manager)
    cache.delete(f"auth-rights:{manager.pk}")
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    assert cached(manager).group_names == {MANAGER}


def test_pages_are_served_when_redis_does_not_answer(client, collector, customer, settings, caplog):
    # A port nothing listens on: every cache read and write fails at once.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    assert caches["default"].get("anything", "missed") == "missed"
    client.force_login(collector)

    with caplog.at_level(logging.WARNING, logger="arcrm.cache"):
        response = client.get(reverse("customers:detail", args=[customer.pk]))

    assert response.status_code == 200
    assert customer.name.encode() in response.content
    assert "cache read skipped, Redis failed: ConnectionError" in caplog.text


def test_a_request_that_read_the_user_before_a_change_does_not_cache_what_it_read(
    client, manager, customer, monkeypatch
):
    """The race: rows read, then the change commits, then the request caches."""
    sign_in(client, manager)
    original = authcache.CachedModelBackend.get_all_permissions

    def read_then_demoted(self, user_obj, obj=None):
        permissions = original(self, user_obj, obj)  # read as a manager ...
        if not getattr(read_then_demoted, "done", False):
            read_then_demoted.done = True
            manager.groups.set([Group.objects.get(name=VIEWER)])  # ... demoted before it is cached
        return permissions

    monkeypatch.setattr(authcache.CachedModelBackend, "get_all_permissions", read_then_demoted)
    client.get(timeline(customer), headers=HTMX)

    assert read_then_demoted.done
    assert cached(manager) is None and forgotten(manager)


def test_a_renamed_role_is_shown_under_its_new_name_at_the_next_request(client, collector, customer):
    sign_in(client, collector)
    assert client.get(timeline(customer), headers=HTMX).status_code == 200
    group = Group.objects.get(name=COLLECTOR)

    group.name = "Collections team"
    try:
        group.save()
        assert forgotten(collector)
    finally:
        Group.objects.filter(pk=group.pk).update(name=COLLECTOR)


def test_signing_out_ends_the_session_whatever_the_cache_does(client, collector, customer):
    sign_in(client, collector)
    page = reverse("customers:detail", args=[customer.pk])
    assert client.get(page).status_code == 200
    cookie = client.cookies["sessionid"].value

    client.post(reverse("logout"))
    client.cookies["sessionid"] = cookie  # the old cookie, replayed

    response = client.get(page)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_change_to_a_role_fails_rather_than_leave_old_rights_cached_while_redis_is_away(
    collector, settings
):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}

    with pytest.raises(RedisConnectionError):
        collector.groups.set([Group.objects.get(name=VIEWER)])

    assert set(collector.groups.values_list("name", flat=True)) == {COLLECTOR}  # rolled back


@pytest.fixture
def full_redis(tmp_path):
    """A Redis of its own that refuses every write: full, with no eviction."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--maxmemory", "1", "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("probe", "x" * 1000)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def test_pages_are_served_when_redis_answers_with_an_error(client, collector, customer, settings, caplog,
                                                            full_redis):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": full_redis}}
    sign_in(client, collector)

    with caplog.at_level(logging.WARNING, logger="arcrm.cache"):
        first = client.get(reverse("customers:detail", args=[customer.pk]))
        second = client.get(timeline(customer), headers=HTMX)

    assert (first.status_code, second.status_code) == (200, 200)
    assert "cache write skipped, Redis failed: OutOfMemoryError" in caplog.text
