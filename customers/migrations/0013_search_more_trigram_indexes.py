"""Trigram indexes for the customer search's new columns, on PostgreSQL.

The customer list's search box finds an account by a part of its legal name or
of a contact's name too (`Customer.objects.search`): the same UPPER(column)
LIKE comparison as in 0008, served the same way, built CONCURRENTLY for the
same reasons (a build cut short is dropped and built again). The exact invoice
number needs none: the unique index on its capitals (invoice_number_once)
serves it.
"""

from django.db import migrations

INDEXES = [
    ("customer_legal_name_trgm", "customers_customer", "legal_name"),
    ("contact_name_trgm", "customers_contact", "name"),
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

    dependencies = [("customers", "0012_integration_account_permission")]

    operations = [migrations.RunPython(forward, backward)]
