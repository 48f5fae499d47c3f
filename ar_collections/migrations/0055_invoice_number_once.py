"""One invoice per number, whatever its capitals ("w-1" is W-1), as credit
notes have since 0052. Invoices sharing a number so already are not deleted
or renumbered here (each may have been paid, chased or written off): the
migration stops and names them, for someone to decide which is the ERP's
invoice and correct or remove the other, then migrate again."""

import django.db.models.functions.text
from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Upper


def refuse_shared_numbers(apps, schema_editor):
    Invoice = apps.get_model("collections", "Invoice")
    shared = (Invoice.objects.annotate(key=Upper("number")).values("key").annotate(invoices=Count("pk"))
              .filter(invoices__gt=1).order_by("key").values_list("key", flat=True))
    if not shared:
        return
    lines = []
    for key in shared:
        invoices = (Invoice.objects.filter(number__iexact=key).order_by("pk")
                    .values_list("pk", "number", "customer__account_number", "currency", "total_amount",
                                 "issue_date"))
        said = "; ".join(f"invoice {pk} {number!r} on account {account}, {currency} {total} issued {day}"
                         for pk, number, account, currency, total, day in invoices)
        lines.append(f"  number {key}: {said}")
    raise CommandError(
        "Invoices share a number in other capitals, which is one ERP invoice's: one invoice each. Nothing "
        "was changed. Keep the invoice that is the ERP's and correct or remove the others, then migrate "
        "again:\n" + "\n".join(lines)
    )


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0054_work_item_document'),
    ]

    operations = [
        migrations.RunPython(refuse_shared_numbers, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='invoice',
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Upper('number'), name='invoice_number_once',
                violation_error_message='An invoice with this number in other capitals is recorded already.'),
        ),
    ]
