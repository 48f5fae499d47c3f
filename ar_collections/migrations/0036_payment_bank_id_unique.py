"""One bank entry is one payment: the bank's id (as compared, bank_key) is
unique among payments. Payments sharing one already are not deleted or
changed here: the migration stops and names them, for someone to decide
which is the bank's entry."""

from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models import Count


def refuse_shared_bank_ids(apps, schema_editor):
    Payment = apps.get_model("collections", "Payment")
    shared = (Payment.objects.exclude(bank_key="").values("bank_key").annotate(payments=Count("pk"))
              .filter(payments__gt=1).order_by("bank_key").values_list("bank_key", flat=True))
    if not shared:
        return
    lines = []
    for key in shared:
        payments = (Payment.objects.filter(bank_key=key).order_by("pk")
                    .values_list("pk", "customer__account_number", "currency", "amount", "received_on",
                                 "bank_reference"))
        said = "; ".join(f"payment {pk} on account {account}, {currency} {amount} received {day} "
                         f"(bank_reference {reference!r})"
                         for pk, account, currency, amount, day, reference in payments)
        lines.append(f"  bank id {key}: {said}")
    raise CommandError(
        "Payments share a bank id, which is one bank entry's: one payment each. Nothing was changed. "
        "Keep the payment that is the bank's entry and reverse or correct the others, then migrate "
        "again:\n" + "\n".join(lines)
    )


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0035_late_payment_policy_name'),
    ]

    operations = [
        migrations.RunPython(refuse_shared_bank_ids, migrations.RunPython.noop),
        migrations.RemoveIndex(
            model_name='payment',
            name='payment_by_bank_id',
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.UniqueConstraint(condition=models.Q(('bank_key', ''), _negated=True), fields=('bank_key',), name='payment_bank_id_once'),
        ),
    ]
