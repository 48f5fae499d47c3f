# Money set against a late fee or interest again on a later day is a row of
# its own, as on an invoice (0078), so each part keeps the day it was applied;
# a credit note's rows on charges are held to it as a payment's are.

from django.db import migrations, models
from django.db.models import Count, Min, Sum


def charges_once_per_payment(apps, schema_editor):
    # Going back: a payment's parts of one charge on several days become one
    # row again, as that version kept them, counted from the earliest day.
    allocation = apps.get_model("collections", "Allocation")
    rows = allocation._base_manager.filter(payment__isnull=False, charge__isnull=False)
    twice = (rows.values("payment", "charge").annotate(n=Count("pk")).filter(n__gt=1)
             .annotate(total=Sum("amount"), first=Min("allocated_on")))
    for group in twice:
        parts = rows.filter(payment=group["payment"], charge=group["charge"]).order_by("allocated_on", "pk")
        kept = parts.first()
        parts.exclude(pk=kept.pk).delete()
        parts.filter(pk=kept.pk).update(amount=group["total"], allocated_on=group["first"])


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0078_allocation_applied_on'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='allocation',
            name='allocation_once_per_payment_charge',
        ),
        # Runs going back only, before the one row per payment and charge returns.
        migrations.RunPython(migrations.RunPython.noop, charges_once_per_payment),
        migrations.AddConstraint(
            model_name='allocation',
            constraint=models.UniqueConstraint(condition=models.Q(('charge__isnull', False), ('payment__isnull', False)), fields=('payment', 'charge', 'applied_on'), name='allocation_once_per_payment_charge'),
        ),
        migrations.AddConstraint(
            model_name='allocation',
            constraint=models.UniqueConstraint(condition=models.Q(('charge__isnull', False), ('credit_note__isnull', False)), fields=('credit_note', 'charge', 'applied_on'), name='allocation_once_per_credit_note_charge'),
        ),
    ]
