from django.db import migrations, models
from django.db.models import Case, F, OuterRef, Subquery, When
from django.db.models.lookups import GreaterThan


def disputed_amounts_fill(apps, schema_editor):
    """Until now a dispute covered its whole invoice, and what was open on it
    when it was opened was not kept. An open dispute is taken to cover what
    its invoice owes today (so it goes on holding all of it, as before; an
    invoice paid in full since, owing nothing, is taken at its total, as no
    dispute is about nothing). A resolved one is taken to have been about
    what its resolution took off (a credit note, a corrected total's
    difference), or, where it took off nothing (rejected, paid in full since),
    about the invoice's total: the most it can have been about."""
    Dispute = apps.get_model("collections", "Dispute")
    Invoice = apps.get_model("collections", "Invoice")
    invoice = Invoice.objects.filter(pk=OuterRef("invoice_id"))
    open_amount = Subquery(invoice.values("open_amount")[:1])
    total = Subquery(invoice.values("total_amount")[:1])
    Dispute.objects.filter(status="open").update(
        disputed_amount=Case(When(GreaterThan(open_amount, 0), then=open_amount), default=total),
    )
    Dispute.objects.exclude(status="open").update(
        disputed_amount=Case(When(taken_off_amount__gt=0, then=F("taken_off_amount")), default=total),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("collections", "0037_write_off"),
    ]

    operations = [
        migrations.AddField(
            model_name="dispute",
            name="disputed_amount",
            field=models.DecimalField(decimal_places=2, max_digits=14, null=True),
        ),
        migrations.RunPython(disputed_amounts_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="dispute",
            name="disputed_amount",
            field=models.DecimalField(decimal_places=2, max_digits=14),
        ),
        migrations.AddConstraint(
            model_name="dispute",
            constraint=models.CheckConstraint(condition=models.Q(("disputed_amount__gt", 0)),
                                              name="dispute_amount_positive"),
        ),
    ]
