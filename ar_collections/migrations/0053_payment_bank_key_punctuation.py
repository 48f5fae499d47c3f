"""A bank's id is compared without its spaces and punctuation: "BANK 4000",
"BANK-4000", "bank_4000" and "BANK/4000" are the entry BANK4000, one
payment. Payments whose ids were told apart only by punctuation are not
deleted or changed here (each may have paid invoices): the migration stops
and names them, for someone to decide which is the bank's entry, then
migrate again.

The database cannot change how it works out a kept column: the key is
dropped and added again with the new rule, and worked out anew for every
payment; the bank's id as it was given is kept."""

from collections import defaultdict

from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models.functions import Replace, Upper

# As the rule is in this version (models.BANK_ID_LEFT_OUT).
LEFT_OUT = " \u00a0\t-_/\\.,:;'\"()+#?*"


def bank_key(text: str) -> str:
    return text.translate(dict.fromkeys(map(ord, LEFT_OUT))).upper()


def bank_key_in_database():
    expression = models.F("bank_reference")
    for left_out in LEFT_OUT:
        expression = Replace(expression, models.Value(left_out), models.Value(""))
    return Upper(expression)


def refuse_shared_bank_ids(apps, schema_editor):
    Payment = apps.get_model("collections", "Payment")
    by_key = defaultdict(list)
    for pk, reference in (Payment.objects.exclude(bank_reference="").order_by("pk")
                          .values_list("pk", "bank_reference").iterator()):
        if key := bank_key(reference):
            by_key[key].append(pk)
    shared = {key: pks for key, pks in by_key.items() if len(pks) > 1}
    if not shared:
        return
    lines = []
    for key, pks in sorted(shared.items()):
        payments = (Payment.objects.filter(pk__in=pks).order_by("pk")
                    .values_list("pk", "customer__account_number", "currency", "amount", "received_on",
                                 "bank_reference"))
        said = "; ".join(f"payment {pk} on account {account}, {currency} {amount} received {day} "
                         f"(bank_reference {reference!r})"
                         for pk, account, currency, amount, day, reference in payments)
        lines.append(f"  bank id {key}: {said}")
    raise CommandError(
        "Payments share a bank id, which is one bank entry's: one payment each. Bank ids are now compared "
        "without their spaces and punctuation. Nothing was changed. Keep the "
        "payment that is the bank's entry and reverse or correct the others, then migrate again:\n"
        + "\n".join(lines)
    )


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0052_records_once'),
    ]

    operations = [
        migrations.RunPython(refuse_shared_bank_ids, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name='payment', name='payment_bank_id_once'),
        migrations.RemoveField(model_name='payment', name='bank_key'),
        migrations.AddField(
            model_name='payment',
            name='bank_key',
            field=models.GeneratedField(db_persist=True, expression=bank_key_in_database(),
                                        output_field=models.CharField(max_length=80)),
        ),
        migrations.AddConstraint(
            model_name='payment',
            constraint=models.UniqueConstraint(condition=models.Q(('bank_key', ''), _negated=True),
                                               fields=('bank_key',), name='payment_bank_id_once'),
        ),
    ]
