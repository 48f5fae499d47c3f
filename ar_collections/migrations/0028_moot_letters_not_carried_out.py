"""Letters an earlier version took out of the print queue, paid before they
were posted, become what this version makes of them: steps not carried out.

The earlier version hid such a letter from the queue (and cancelled its
charges, on the timeline) but left it marked done; this version's sweep
would withdraw every one of them again, each with a new timeline entry. Here
they change quietly: what happened to them was recorded when it happened."""

from django.db import migrations
from django.db.models import Exists, OuterRef

REASON = ("withdrawn from the print queue: everything it lists was settled before it was posted "
          "(taken out of the queue by an earlier version)")


def forwards(apps, schema_editor):
    DunningAction = apps.get_model("collections", "DunningAction")
    DunningActionInvoice = apps.get_model("collections", "DunningActionInvoice")
    # As models.lists_open_invoice() and delivery.letters_withdraw_moot() read it.
    open_line = DunningActionInvoice.objects.filter(
        action=OuterRef("pk"), invoice__status="open", invoice__open_amount__gt=0
    )
    (DunningAction.objects.filter(channel="letter", status="done", printed_at__isnull=True)
     .exclude(letter_pdf="").exclude(Exists(open_line))
     .update(status="skipped", skip_reason=REASON))


def backwards(apps, schema_editor):
    DunningAction = apps.get_model("collections", "DunningAction")
    DunningAction.objects.filter(status="skipped", skip_reason=REASON).update(status="done", skip_reason="")


class Migration(migrations.Migration):

    dependencies = [
        ("collections", "0027_step_fees_per_currency"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
