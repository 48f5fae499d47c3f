"""Trigram indexes for the customer search, on PostgreSQL.

The customer list's search box finds an account by a part of its name, of its
account number or of a contact's e-mail address, in any case (icontains,
which Django renders on PostgreSQL as `UPPER(column::text) LIKE UPPER(%s)`).
A B-tree cannot serve a pattern with a leading wildcard, so every search read
both tables whole. A GIN index of the trigrams of `UPPER(column)` is what that
comparison can use (an index on the bare column would not be).

pg_trgm is a trusted extension from PostgreSQL 13: the database's owner may
create it. The indexes are built CONCURRENTLY, outside a transaction, so an
upgrade of a live install does not hold back writes to the customers and
contacts while they are built; a build cut short leaves an invalid index,
which the next attempt drops and builds again. SQLite (`make run`) has no such index and keeps scanning, which is
fine at a demo's size. Going back drops the indexes but leaves the extension,
which other objects may have come to rely on.
"""

from django.db import migrations

INDEXES = [
    ("customer_name_trgm", "customers_customer", "name"),
    ("customer_account_number_trgm", "customers_customer", "account_number"),
    ("contact_email_trgm", "customers_contact", "email"),
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
            found = cursor.fetchone()
        if found == (False,):
            schema_editor.execute(f'DROP INDEX CONCURRENTLY "{name}"')
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" '
            f'USING gin (UPPER("{column}") gin_trgm_ops)'
        )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _, _ in INDEXES:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("customers", "0007_contact_email_refused_invoice_changed")]

    operations = [migrations.RunPython(forward, backward)]
