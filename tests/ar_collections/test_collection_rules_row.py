"""The one row of collection rules is made with the schema, not on the first
page that reads it: a GET writes nothing."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ar_collections.models import CollectionRules


def test_the_migrations_make_the_collection_rules_with_their_defaults(db):
    rules = CollectionRules.objects.get(pk=1)

    assert (rules.max_pause_days, rules.updated_by) == (14, None)


def test_a_page_that_reads_the_rules_writes_nothing_even_without_their_row(client, collector, customer):
    CollectionRules.objects.all().delete()
    client.force_login(collector)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("collections:pause_set", args=[customer.pk]))

    assert response.status_code == 200
    assert "Up to 14 days from today" in response.content.decode()
    assert not [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert not CollectionRules.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_rules_row_is_made_again_after_a_flush_as_the_tests_between_them_do():
    """A test that commits ends by emptying every table: the tests after it
    read the rules' own row again, not unsaved defaults that nothing can
    point at."""
    call_command("flush", interactive=False, verbosity=0)

    assert CollectionRules.objects.filter(pk=1).exists()
