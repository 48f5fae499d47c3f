from django.db import migrations


def link_existing_events(apps, schema_editor):
    from ar_collections.timeline import links_backfill

    ContentType = apps.get_model("contenttypes", "ContentType")
    invoice_type = ContentType.objects.filter(app_label="collections", model="invoice").first()
    links_backfill(
        event_model=apps.get_model("customers", "TimelineEvent"),
        link_model=apps.get_model("collections", "TimelineEventInvoice"),
        invoice_model=apps.get_model("collections", "Invoice"),
        invoice_type_id=invoice_type.pk if invoice_type else -1,
    )


class Migration(migrations.Migration):
    """Events recorded before the timeline could be filtered by invoice get their links."""

    dependencies = [
        ("collections", "0007_workspace"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0006_workspace"),
    ]

    operations = [migrations.RunPython(link_existing_events, migrations.RunPython.noop)]
