"""An index of the invoice changes on the timeline by when they happened, for
the due dates invoices had at a past day (ar_collections.numbers.due_dates_then),
which otherwise read every event of every invoice. The timeline is the
largest table and takes writes all day: on PostgreSQL the index is built
CONCURRENTLY, as customers 0008 builds its own (a build cut short is dropped
and built again); elsewhere as the model states it."""

from django.db import migrations, models

NAME = "event_invoice_changed"
INDEX = models.Index(fields=["occurred_at"], condition=models.Q(kind="invoice_changed"), name=NAME)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(apps.get_model("customers", "TimelineEvent"), INDEX)
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [NAME])
        found = cursor.fetchone()
    if found == (False,):
        schema_editor.execute(f'DROP INDEX CONCURRENTLY "{NAME}"')
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{NAME}" ON "customers_timelineevent" ("occurred_at") '
        "WHERE \"kind\" = 'invoice_changed'"
    )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(apps.get_model("customers", "TimelineEvent"), INDEX)
        return
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{NAME}"')


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("customers", "0014_search_without_accents"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="timelineevent", index=INDEX)],
            database_operations=[migrations.RunPython(forward, backward)],
        ),
    ]
