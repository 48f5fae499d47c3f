# The day each allocation was set against its invoice or charge, apart from
# the day it counts from for the payer.

from django.db import migrations, models
from django.db.models import F


def applied_as_dated(apps, schema_editor):
    # The day an existing row was applied was never recorded: each is taken as
    # applied on its own day, so every past figure reads as it did before.
    apps.get_model("collections", "Allocation")._base_manager.update(applied_on=F("allocated_on"))


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
        migrations.AddConstraint(
            model_name='allocation',
            constraint=models.UniqueConstraint(condition=models.Q(('payment__isnull', False)), fields=('payment', 'invoice', 'applied_on'), name='allocation_once_per_payment_invoice'),
        ),
        migrations.AddConstraint(
            model_name='allocation',
            constraint=models.UniqueConstraint(condition=models.Q(('credit_note__isnull', False)), fields=('credit_note', 'invoice', 'applied_on'), name='allocation_once_per_credit_note_invoice'),
        ),
    ]
