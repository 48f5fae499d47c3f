from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("collections", "0045_work_kinds_paid_up"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outgoingmail",
            name="purpose",
            field=models.CharField(
                choices=[
                    ("call_summary", "Summary of a call"),
                    ("invoice_copy", "Copy of an invoice"),
                    ("dispute_routing", "Dispute sent to a department"),
                    ("invoices_resend", "Invoices re-sent (red tape)"),
                    ("plan_agreed", "Payment plan agreed"),
                    ("statement", "Statement of account"),
                ],
                max_length=20,
            ),
        ),
    ]
