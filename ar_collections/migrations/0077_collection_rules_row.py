"""The one row of collection rules, with its defaults, made with the schema:
read on a page, the rules never write (CollectionRules.current)."""

from django.db import migrations


def rules_row_create(apps, schema_editor):
    CollectionRules = apps.get_model("collections", "CollectionRules")
    if not CollectionRules.objects.filter(pk=1).exists():
        CollectionRules.objects.create(pk=1)


class Migration(migrations.Migration):

    dependencies = [
        ("collections", "0076_invoice_number_trigram_index"),
    ]

    operations = [
        migrations.RunPython(rules_row_create, migrations.RunPython.noop),
    ]
