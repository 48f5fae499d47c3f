# The day each allocation was set against its invoice or charge, apart from
# the day it counts from for the payer.

from django.db import migrations, models
from django.db.models import Count, F, Min, Sum


def applied_as_dated(apps, schema_editor):
    # The day an existing row was applied was never recorded: each is taken as
    # applied on its own day, so every past figure reads as it did before.
    apps.get_model("collections", "Allocation")._base_manager.update(applied_on=F("allocated_on"))


def once_per_invoice(apps, schema_editor):
    # Going back: money set against one invoice on several days becomes one row
    # per payment (or credit note) and invoice again, as that version kept them,
    # its amounts summed and counted from the earliest day. A payment's rows
    # share its reversal, if any: the bank takes a payment back whole.
    allocation = apps.get_model("collections", "Allocation")
    for link in ("payment", "credit_note"):
        rows = allocation._base_manager.filter(**{f"{link}__isnull": False, "invoice__isnull": False})
        twice = (rows.values(link, "invoice").annotate(n=Count("pk")).filter(n__gt=1)
                 .annotate(total=Sum("amount"), first=Min("allocated_on")))
        for group in twice:
            parts = rows.filter(**{link: group[link]}, invoice=group["invoice"]).order_by("allocated_on", "pk")
            kept = parts.first()
            parts.exclude(pk=kept.pk).delete()
            parts.filter(pk=kept.pk).update(amount=group["total"], allocated_on=group["first"])


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0077_collection_rules_row'),
    ]

    operations = [
        migrations.AddField(
            model_name='allocation',
            name='applied_on',
            field=models.DateField(null=True),
        ),
        migrations.RunPython(applied_as_dated, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='allocation',
            name='applied_on',
            field=models.DateField(),
        ),
        migrations.RemoveConstraint(
            model_name='allocation',
            name='allocation_once_per_payment_invoice',
        ),
        migrations.RemoveConstraint(
            model_name='allocation',
            name='allocation_once_per_credit_note_invoice',
        ),
        # Runs going back only, before the one row per invoice returns.
        migrations.RunPython(migrations.RunPython.noop, once_per_invoice),
        migrations.AddConstraint(
            model_name='allocation',
            constraint=models.UniqueConstraint(condition=models.Q(('payment__isnull', False)), fields=('payment', 'invoice', 'applied_on'), name='allocation_once_per_payment_invoice'),
        ),
        migrations.AddConstraint(
            model_name='allocation',
            constraint=models.UniqueConstraint(condition=models.Q(('credit_note__isnull', False)), fields=('credit_note', 'invoice', 'applied_on'), name='allocation_once_per_credit_note_invoice'),
        ),
    ]
