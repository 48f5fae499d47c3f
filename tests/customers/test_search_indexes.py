"""The customer search on PostgreSQL: trigram indexes on the searched columns,
and a query they can serve (the list would otherwise read every account and
every contact for each letter typed in the search box)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from customers.models import Customer

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql",
                                reason="trigram indexes are PostgreSQL's (SQLite scans, fine for a demo)")

INDEXES = {
    "customer_name_trgm": "customers_customer",
    "customer_account_number_trgm": "customers_customer",
    "contact_email_trgm": "customers_contact",
}
MIGRATION = ("customers", "0008_search_trigram_indexes")
BEFORE = ("customers", "0007_contact_email_refused_invoice_changed")


def trigram_indexes() -> dict[str, tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, tablename, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
                       [list(INDEXES)])
        return {name: (table, definition) for name, table, definition in cursor.fetchall()}


def test_the_searched_columns_have_trigram_indexes_on_what_the_search_compares(db):
    found = trigram_indexes()

    assert {name: table for name, (table, _) in found.items()} == INDEXES
    for name, (_, definition) in found.items():
        # icontains compares UPPER(column) LIKE UPPER(text): the index holds the same expression.
        assert "USING gin (upper(" in definition and "gin_trgm_ops" in definition, name


@pytest.mark.parametrize("text", ["acme-tools", "C00042", "ap@hollow-clinic"])
def test_the_search_query_can_use_every_index(db, text):
    query = Customer.objects.search(text).values("pk")

    with transaction.atomic():
        with connection.cursor() as cursor:
            # On an empty table a scan is cheapest; forbidding it shows what the plan can use.
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()

    for name in INDEXES:
        assert name in plan, f"{name} unused:\n{plan}"


@pytest.mark.django_db(transaction=True)
def test_the_migration_takes_the_indexes_away_again_and_puts_them_back():
    executor = MigrationExecutor(connection)
    try:
        executor.migrate([BEFORE])
        assert trigram_indexes() == {}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert set(trigram_indexes()) == set(INDEXES)
