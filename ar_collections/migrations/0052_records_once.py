"""Things recorded once.

One credit note per ERP number, whatever its capitals ("Cn-Test-1" is
CN-TEST-1). Notes sharing a number so already are not deleted or renumbered
here (the number is the ERP's document's, and each may have credited money):
the migration stops and names them, for someone to decide which is the ERP's
note and correct or remove the other, then migrate again.

A form that sends something to the customer is carried out once: the
one-time tokens taken (FormSubmission), none for forms sent before."""

import django.db.models.functions.text
from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Upper


def refuse_shared_numbers(apps, schema_editor):
    CreditNote = apps.get_model("collections", "CreditNote")
    shared = (CreditNote.objects.annotate(key=Upper("number")).values("key").annotate(notes=Count("pk"))
              .filter(notes__gt=1).order_by("key").values_list("key", flat=True))
    if not shared:
        return
    lines = []
    for key in shared:
        notes = (CreditNote.objects.filter(number__iexact=key).order_by("pk")
                 .values_list("pk", "number", "customer__account_number", "currency", "amount", "issued_on"))
        said = "; ".join(f"credit note {pk} {number!r} on account {account}, {currency} {amount} issued {day}"
                         for pk, number, account, currency, amount, day in notes)
        lines.append(f"  number {key}: {said}")
    raise CommandError(
        "Credit notes share a number, which is one ERP document's: one note each. Nothing was changed. "
        "Keep the note that is the ERP's document and correct or remove the others, then migrate "
        "again:\n" + "\n".join(lines)
    )


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0051_paper_withdrawn'),
    ]

    operations = [
        migrations.RunPython(refuse_shared_numbers, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='creditnote',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Upper('number'),
                                               name='credit_note_number_once'),
        ),
        migrations.CreateModel(
            name='FormSubmission',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token', models.UUIDField(unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
