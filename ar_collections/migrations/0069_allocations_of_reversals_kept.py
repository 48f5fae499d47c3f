import datetime as dt
from decimal import Decimal

from django.db import migrations


def allocations_kept(apps, schema_editor):
    """Payments reversed before kept what their allocations were only on the
    reversal (`undone`): the rows are made again, marked with it, so that the
    figures of the days before it read the payment as it stood then. A line
    whose invoice or charge is gone since is left out, as it is from every
    figure."""
    Allocation = apps.get_model("collections", "Allocation")
    PaymentReversal = apps.get_model("collections", "PaymentReversal")
    Invoice = apps.get_model("collections", "Invoice")
    LateCharge = apps.get_model("collections", "LateCharge")
    reversals = list(PaymentReversal.objects.order_by("pk"))
    lines = [(reversal, line) for reversal in reversals for line in reversal.undone]
    invoices = set(Invoice.objects.filter(
        pk__in=[line["invoice_id"] for _, line in lines if "invoice_id" in line]).values_list("pk", flat=True))
    charges = set(LateCharge.objects.filter(
        pk__in=[line["charge"] for _, line in lines if "charge" in line]).values_list("pk", flat=True))
    Allocation.objects.bulk_create([
        Allocation(payment_id=reversal.payment_id, invoice_id=line.get("invoice_id"),
                   charge_id=line.get("charge"), amount=Decimal(line["amount"]),
                   allocated_on=dt.date.fromisoformat(line["allocated_on"]), reversal=reversal)
        for reversal, line in lines
        if line.get("invoice_id") in invoices or line.get("charge") in charges
    ])


def allocations_dropped(apps, schema_editor):
    # Back to a version that deleted them: kept, they would stand again.
    apps.get_model("collections", "Allocation").objects.filter(reversal__isnull=False).delete()


# Apart from the schema's change: PostgreSQL alters no table with rows
# written in the same transaction still to be checked.
class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0068_allocation_reversal'),
    ]

    operations = [
        migrations.RunPython(allocations_kept, allocations_dropped),
    ]
