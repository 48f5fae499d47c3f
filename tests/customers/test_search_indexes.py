"""The customer search on PostgreSQL: trigram indexes on the searched columns,
and a query they can serve (the list would otherwise read every account and
every contact for each letter typed in the search box)."""

from __future__ import annotations

import threading
import time

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
# Customers 0013: the legal name and the contacts' names, searched too.
LATER_INDEXES = {
    "customer_legal_name_trgm": "customers_customer",
    "contact_name_trgm": "customers_contact",
}
# Customers 0014: the names as the search compares them, without their accents.
FOLDED_INDEXES = {
    "customer_name_folded_trgm": "customers_customer",
    "customer_legal_name_folded_trgm": "customers_customer",
    "contact_name_folded_trgm": "customers_contact",
}
# What the search reads today: the names through their folded indexes, the rest as typed.
SEARCHED = ["customer_account_number_trgm", "contact_email_trgm", *FOLDED_INDEXES]
# Collections 0076: the end of an invoice number, as a caller reads it ("1774").
INVOICE_INDEX = "invoice_number_trgm"
MIGRATION = ("customers", "0008_search_trigram_indexes")
BEFORE = ("customers", "0007_contact_email_refused_invoice_changed")


def trigram_indexes(names=INDEXES) -> dict[str, tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, tablename, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
                       [list(names)])
        return {name: (table, definition) for name, table, definition in cursor.fetchall()}


def test_the_searched_columns_have_trigram_indexes_on_what_the_search_compares(db):
    found = trigram_indexes({**INDEXES, **LATER_INDEXES})

    assert {name: table for name, (table, _) in found.items()} == {**INDEXES, **LATER_INDEXES}
    for name, (_, definition) in found.items():
        # icontains compares UPPER(column) LIKE UPPER(text): the index holds the same expression.
        assert "USING gin (upper(" in definition and "gin_trgm_ops" in definition, name


def test_the_names_have_trigram_indexes_on_what_the_search_compares_without_accents(db):
    found = trigram_indexes(FOLDED_INDEXES)

    assert {name: table for name, (table, _) in found.items()} == FOLDED_INDEXES
    for name, (_, definition) in found.items():
        assert "USING gin (upper(arcrm_fold(" in definition and "gin_trgm_ops" in definition, name


def test_the_invoice_numbers_have_a_trigram_index_on_what_the_search_compares(db):
    (_, definition), = trigram_indexes({INVOICE_INDEX: "collections_invoice"}).values()

    assert "ON public.collections_invoice USING gin (upper((number)::text) gin_trgm_ops)" in definition


@pytest.mark.parametrize("text", ["acme-tools", "C00042", "ap@hollow-clinic", "Ruben Bakker", "INV-7",
                                  "López"])
def test_the_search_query_can_use_every_index(db, text):
    query = Customer.objects.search(text).values("pk")

    with transaction.atomic():
        with connection.cursor() as cursor:
            # On an empty table a scan is cheapest; forbidding it shows what the plan can use.
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()

    # A text with a digit is the end of an invoice number: the trigram index on
    # the numbers; one without, the whole number: the unique index on its capitals.
    invoice_index = INVOICE_INDEX if any(char.isdigit() for char in text) else "invoice_number_once"
    for name in [*SEARCHED, invoice_index]:
        assert name in plan, f"{name} unused:\n{plan}"


@pytest.fixture
def every_migration_applied_again(transactional_db):
    """Going back before customers 0008 takes every later migration of the
    other apps with it (those that depend on it): the tests after these must
    find the whole schema, not only what this one's migration gives back."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.usefixtures("every_migration_applied_again")
def test_the_migration_takes_the_indexes_away_again_and_puts_them_back():
    _migrate_to(BEFORE)
    assert trigram_indexes() == {}
    _migrate_to(MIGRATION)

    assert set(trigram_indexes()) == set(INDEXES)


def _migrate_to(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.mark.usefixtures("every_migration_applied_again")
def test_the_indexes_are_built_without_stopping_writes_to_the_tables():
    """On a live install the upgrade must not hold back the collectors'
    writes while an index is built: CREATE INDEX CONCURRENTLY takes a lock
    (SHARE UPDATE EXCLUSIVE) that writers do not wait for; a plain CREATE
    INDEX takes SHARE, which every INSERT and UPDATE queues behind."""
    _migrate_to(BEFORE)
    writer = connection.copy()  # a second session on the test database
    try:
        # A write under way when the upgrade starts: the build waits for it
        # to end, and shows meanwhile which lock it took on the table.
        with writer.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("UPDATE customers_customer SET name = name")
        done = threading.Event()
        failure: list[BaseException] = []

        def upgrade() -> None:
            try:
                _migrate_to(MIGRATION)
            except BaseException as error:  # reported below
                failure.append(error)
            finally:
                connection.close()
                done.set()

        thread = threading.Thread(target=upgrade)
        thread.start()
        modes = set()
        for _ in range(1200):  # it first works out the models' state: seconds on a busy machine
            with writer.cursor() as cursor:
                cursor.execute(
                    "SELECT mode FROM pg_locks "
                    "WHERE relation = 'customers_customer'::regclass AND pid <> pg_backend_pid()"
                )
                modes = {mode for (mode,) in cursor.fetchall()}
            if modes:
                break
            time.sleep(0.05)
        with writer.cursor() as cursor:
            cursor.execute("ROLLBACK")
        assert done.wait(60), "the upgrade did not finish once the write had ended"
        thread.join()
    finally:
        writer.close()
        _migrate_to(MIGRATION)
    assert not failure, failure
    assert modes == {"ShareUpdateExclusiveLock"}
    assert set(trigram_indexes()) == set(INDEXES)


@pytest.mark.usefixtures("every_migration_applied_again")
def test_an_index_left_invalid_by_a_build_cut_short_is_built_again():
    _migrate_to(BEFORE)
    try:
        with connection.cursor() as cursor:
            # What an interrupted CREATE INDEX CONCURRENTLY leaves: the index, marked invalid.
            cursor.execute('CREATE INDEX "customer_name_trgm" ON customers_customer (name)')
            cursor.execute("UPDATE pg_index SET indisvalid = false "
                           "WHERE indexrelid = 'customer_name_trgm'::regclass")
    finally:
        _migrate_to(MIGRATION)

    _, definition = trigram_indexes()["customer_name_trgm"]
    assert "gin_trgm_ops" in definition
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'customer_name_trgm'::regclass")
        assert cursor.fetchone() == (True,)
