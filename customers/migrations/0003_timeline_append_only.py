"""Make timeline events append-only in PostgreSQL: UPDATE and DELETE raise.

The timeline is the account's record of what happened; a bug or a hand-run
query must not be able to rewrite it. (TRUNCATE, used by test teardown, is a
different statement and is not blocked.)
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION customers_timelineevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'timeline events are append-only (%% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER customers_timelineevent_append_only
    BEFORE UPDATE OR DELETE ON customers_timelineevent
    FOR EACH ROW EXECUTE FUNCTION customers_timelineevent_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS customers_timelineevent_append_only ON customers_timelineevent;
DROP FUNCTION IF EXISTS customers_timelineevent_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_roles")]

    operations = [migrations.RunPython(forward, backward)]
