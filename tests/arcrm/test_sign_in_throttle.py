"""Failed sign-ins are counted per user name from one address and per address:
too many, and that name from that address (or the address) is refused for a
while, whatever the password, with a message that never tells whether the name
exists. Whoever guesses a user's password locks out only themselves."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

USER_LOCKED = "Too many failed sign-ins for this user; try again in 15 minutes or ask a manager."


def _sign_in(username: str, password: str, address: str = "10.0.0.1", **headers):
    client = Client(REMOTE_ADDR=address, **headers)
    response = client.post(reverse("login"), {"username": username, "password": password})
    return client, response


def _fail(username: str, times: int, address: str = "10.0.0.1", **headers) -> None:
    for _ in range(times):
        _, response = _sign_in(username, "wrong", address, **headers)
        assert response.status_code == 200


def test_the_sign_ins_are_counted_in_the_shared_cache_when_there_is_one():
    backend = settings.CACHES["default"]["BACKEND"]
    assert backend == ("arcrm.cache.ForgivingRedisCache" if settings.CACHE_URL
                       else "django.core.cache.backends.locmem.LocMemCache")


def test_five_wrong_passwords_refuse_the_user_even_with_the_right_one(collector):
    _fail(collector.username, 4)
    client, response = _sign_in(collector.username, "pw-" + collector.username)
    assert response.status_code == 302  # four are allowed
    client.logout()

    _fail(collector.username, 5)
    client, response = _sign_in(collector.username, "pw-" + collector.username)

    assert response.status_code == 200
    assert USER_LOCKED in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_same_name_from_another_address_still_signs_in(collector):
    # Someone elsewhere typing wrong passwords for the collector's name does not lock the collector out.
    _fail(collector.username, 5, address="198.51.100.66")

    assert USER_LOCKED in _sign_in(collector.username, "pw-" + collector.username,
                                   address="198.51.100.66")[1].content.decode()
    assert _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.1")[1].status_code == 302


def test_an_unknown_name_is_answered_as_a_known_one(collector):
    _fail(collector.username, 5)
    _fail("nobody-by-that-name", 5)

    known = _sign_in(collector.username, "wrong")[1]
    unknown = _sign_in("nobody-by-that-name", "wrong")[1]

    assert USER_LOCKED in known.content.decode()
    assert [str(error) for error in known.context["form"].non_field_errors()] == [
        str(error) for error in unknown.context["form"].non_field_errors()] == [USER_LOCKED]


def test_signing_in_clears_the_count_of_the_name(collector):
    _fail(collector.username, 4)
    assert _sign_in(collector.username, "pw-" + collector.username)[1].status_code == 302
    _fail(collector.username, 4)

    assert _sign_in(collector.username, "pw-" + collector.username)[1].status_code == 302


def test_one_name_locked_leaves_the_others_alone(collector, manager):
    _fail(collector.username, 5)

    assert _sign_in(manager.username, "pw-" + manager.username)[1].status_code == 302


def test_one_address_trying_many_names_is_refused(collector, settings):
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 6
    for number in range(6):
        _fail(f"guess-{number}", 1, address="10.0.0.9")

    refused = _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.9")[1]
    elsewhere = _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.10")[1]

    assert "Too many failed sign-ins from your address; try again in 15 minutes." in refused.content.decode()
    assert elsewhere.status_code == 302


def test_behind_the_proxy_the_address_it_saw_is_counted(collector, settings):
    settings.BEHIND_TLS_PROXY = True
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 3
    # The client writes what it likes before the proxy's own entry: counted is the proxy's.
    for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        _fail(f"guess-{forged}", 1, address="192.168.0.1", HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.7")

    refused = _sign_in(collector.username, "pw-" + collector.username, address="192.168.0.1",
                       HTTP_X_FORWARDED_FOR="203.0.113.7")[1]
    other = _sign_in(collector.username, "pw-" + collector.username, address="192.168.0.1",
                     HTTP_X_FORWARDED_FOR="203.0.113.8")[1]

    assert "from your address" in refused.content.decode()
    assert other.status_code == 302


def test_without_a_trusted_proxy_the_forwarded_address_is_ignored(collector, settings):
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 3
    for number in range(3):
        _fail(f"guess-{number}", 1, address="10.0.0.5", HTTP_X_FORWARDED_FOR=f"198.51.100.{number}")

    refused = _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.5",
                       HTTP_X_FORWARDED_FOR="198.51.100.77")[1]

    assert "from your address" in refused.content.decode()


def test_failures_are_logged_with_the_address_and_name_never_the_password(collector, caplog):
    caplog.set_level(logging.WARNING, logger="arcrm.signin")
    long_name = "x" * 100 + "\nforged line"
    _fail(long_name, 1, address="10.0.0.3")
    _fail(collector.username, 5, address="10.0.0.3")

    text = caplog.text
    assert "Sign-in failed for 'xxxxxxxx" in text and "from 10.0.0.3" in text
    assert "forged line" not in text and "x" * 41 not in text
    assert (f"Sign-ins for '{collector.username}' from 10.0.0.3 refused for 15 minutes after 5 failures"
            in text)
    assert "wrong" not in text


def test_a_manager_lifts_the_refusal_with_a_command(collector, settings):
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 5
    _fail(collector.username, 5)

    call_command("sign_in_unlock", collector.username, "--address", "10.0.0.1")

    assert _sign_in(collector.username, "pw-" + collector.username)[1].status_code == 302


def test_the_command_given_a_name_lifts_its_refusal_from_every_address(collector):
    _fail(collector.username, 5, address="10.0.0.1")
    _fail(collector.username, 5, address="10.0.0.2")

    call_command("sign_in_unlock", collector.username)

    assert _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.1")[1].status_code == 302
    assert _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.2")[1].status_code == 302
    # And the counts start again: four more failures do not refuse the name.
    _fail(collector.username, 4, address="10.0.0.2")
    assert _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.2")[1].status_code == 302


def test_the_command_needs_a_name_or_an_address():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Name the user name"):
        call_command("sign_in_unlock")


def test_the_admin_sign_in_counts_too(db, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-password")
    client = Client(REMOTE_ADDR="10.0.0.2")
    for _ in range(5):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})

    response = client.post("/admin/login/", {"username": "root", "password": "root-password"})

    assert response.status_code == 200
    assert USER_LOCKED in response.content.decode()


def test_a_right_password_at_the_admin_is_no_failure_for_a_user_without_admin_access(collector):
    # The admin refuses a collector's right password ("not staff"): that is no
    # wrong password, and must not lock the collector out of the login page.
    client = Client(REMOTE_ADDR="10.0.0.2")
    for _ in range(5):
        response = client.post("/admin/login/", {"username": collector.username,
                                                 "password": "pw-" + collector.username})
        assert response.status_code == 200 and USER_LOCKED not in response.content.decode()

    assert _sign_in(collector.username, "pw-" + collector.username, address="10.0.0.2")[1].status_code == 302


def test_a_redis_that_does_not_answer_counts_nothing_and_locks_no_one_out(collector, settings, caplog):
    # Nothing listens on port 1: every cache call fails as with Redis down.
    settings.CACHES = {"default": {
        "BACKEND": "arcrm.cache.ForgivingRedisCache", "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }}
    _fail(collector.username, 6)

    assert _sign_in(collector.username, "pw-" + collector.username)[1].status_code == 302
    assert "not counted, Redis failed" in caplog.text


def test_an_administrator_lets_a_user_sign_in_again_from_the_users_admin(collector, admin_client):
    _fail(collector.username, 5)

    response = admin_client.post(reverse("admin:auth_user_changelist"), {
        "action": "sign_in_unlock", "_selected_action": [collector.pk]}, follow=True)

    assert f"May sign in again: {collector.username}." in response.content.decode()
    assert _sign_in(collector.username, "pw-" + collector.username)[1].status_code == 302
