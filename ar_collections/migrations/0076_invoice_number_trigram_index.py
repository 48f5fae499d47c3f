"""A trigram index on the invoice numbers, on PostgreSQL, for the customer
search: a number as a caller reads it ("1774") is the end of the one on file
(INV-2026-001774), compared as UPPER(number) LIKE UPPER('%1774')
(customers.models._invoice_number_holds), which the unique index on the
number's capitals cannot serve. Built CONCURRENTLY as customers 0008 builds
its own (a build cut short is dropped and built again); pg_trgm is there
since customers 0008."""

from django.db import migrations

NAME = "invoice_number_trgm"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [NAME])
        found = cursor.fetchone()
    if found == (False,):
        schema_editor.execute(f'DROP INDEX CONCURRENTLY "{NAME}"')
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{NAME}" ON "collections_invoice" '
        'USING gin (UPPER("number") gin_trgm_ops)'
    )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{NAME}"')


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("collections", "0075_invoice_cancelled_on"),
        ("customers", "0014_search_without_accents"),
    ]

    operations = [migrations.RunPython(forward, backward)]
