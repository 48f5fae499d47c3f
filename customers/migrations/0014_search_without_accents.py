"""The customer search compares names without their accents, on PostgreSQL.

A caller spells "Lopez" or "Muller", on a keyboard that may not have the
letter: the search compares arcrm_fold(name), PostgreSQL's unaccent behind a
function of our own, as unaccent itself is not immutable (its dictionary could
change) and an index may hold only what is. Trigram indexes on the same
UPPER(arcrm_fold(column)) the search compares (icontains), built CONCURRENTLY
as in 0008 and 0013 (a build cut short is dropped and built again). SQLite
registers arcrm_fold on each connection (arcrm.db.sqlite_functions_register).
"""

from django.db import migrations

INDEXES = [
    ("customer_name_folded_trgm", "customers_customer", "name"),
    ("customer_legal_name_folded_trgm", "customers_customer", "legal_name"),
    ("contact_name_folded_trgm", "customers_contact", "name"),
]

FUNCTION = """
CREATE OR REPLACE FUNCTION arcrm_fold(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")
    schema_editor.execute(FUNCTION)
    for name, table, column in INDEXES:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
            found = cursor.fetchone()
        if found == (False,):
            schema_editor.execute(f'DROP INDEX CONCURRENTLY "{name}"')
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" '
            f'USING gin (UPPER(arcrm_fold("{column}")) gin_trgm_ops)'
        )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _, _ in INDEXES:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
    schema_editor.execute("DROP FUNCTION IF EXISTS arcrm_fold(text)")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("customers", "0013_search_more_trigram_indexes")]

    operations = [migrations.RunPython(forward, backward)]
