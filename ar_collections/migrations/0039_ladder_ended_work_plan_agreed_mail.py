from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0038_dispute_disputed_amount'),
    ]

    operations = [
        migrations.AlterField(
            model_name='workitem',
            name='kind',
            field=models.CharField(choices=[('call', 'Call task from dunning'), ('review', 'Notice to review before sending'), ('promise_due', 'Promise due'), ('promise_broken', 'Broken promise'), ('instalment_missed', 'Missed instalment'), ('dispute_waiting', 'Dispute waiting for an answer'), ('personal', 'Personal treatment'), ('charges', 'Charges left after the invoices'), ('address_refused', 'E-mail address refused'), ('decided', 'A manager decided your request'), ('letter_unposted', 'Letter not posted'), ('ladder_ended', 'Ladder finished: decide the next action')], max_length=20),
        ),
        migrations.AlterField(
            model_name='outgoingmail',
            name='purpose',
            field=models.CharField(choices=[('call_summary', 'Summary of a call'), ('invoice_copy', 'Copy of an invoice'), ('dispute_routing', 'Dispute sent to a department'), ('invoices_resend', 'Invoices re-sent (red tape)'), ('plan_agreed', 'Payment plan agreed')], max_length=20),
        ),
    ]
