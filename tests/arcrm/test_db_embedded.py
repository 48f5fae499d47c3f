"""The embedded database (`make run`'s SQLite) compares text as PostgreSQL does:
a search in any capitals finds a name whatever its letters, not only A to Z."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.backends.sqlite3.base import DatabaseWrapper

from arcrm.env import parse_database_url


@pytest.fixture
def embedded(tmp_path, django_db_blocker):
    """A connection to an SQLite file made as `make run` makes it (the test
    database, PostgreSQL, is not used)."""
    config = connections.configure_settings(
        {"default": parse_database_url(f"sqlite:///{tmp_path / 'arcrm.sqlite3'}")})["default"]
    wrapper = DatabaseWrapper(config, alias="embedded")
    with django_db_blocker.unblock():
        try:
            yield wrapper
        finally:
            wrapper.close()


def _holds(wrapper: DatabaseWrapper, value: str | None, text: str) -> bool | None:
    """Whether `value` holds `text`, asked as `icontains` asks SQLite."""
    operator = wrapper.operators["icontains"] % "%s"
    with wrapper.cursor() as cursor:
        cursor.execute(f"SELECT %s {operator}", [value, f"%{wrapper.ops.prep_for_like_query(text)}%"])
        (found,) = cursor.fetchone()
    return None if found is None else bool(found)


@pytest.mark.parametrize(("name", "typed"), [
    ("Élodie Vos", "élodie"),
    ("Krüger Interiors", "KRÜGER"),
    ("Álvaro Iglesias", "álvaro iglesias"),
    ("ŁÓDŹ Freight", "łódź"),
    ("Hendriks Data", "hendriks"),
])
def test_a_name_is_found_in_any_capitals_of_any_letter(embedded, name, typed):
    assert _holds(embedded, name, typed) is True


@pytest.mark.parametrize(("name", "typed", "found"), [
    ("50% off", "50%", True),
    ("505 Trading", "50%", False),
    ("A_B Foods", "a_b", True),
    ("AxB Foods", "a_b", False),
    ("C:\\Data", "c:\\d", True),
    ("Élodie Vos", "elodie", False),
    ("Hendriks Data", "henriks", False),
])
def test_what_is_typed_is_matched_as_typed_wildcards_included(embedded, name, typed, found):
    assert _holds(embedded, name, typed) is found


def test_a_missing_value_holds_nothing(embedded):
    assert _holds(embedded, None, "x") is None
