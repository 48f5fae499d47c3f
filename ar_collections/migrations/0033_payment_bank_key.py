"""Payments' bank ids compared as banks compare them, without spaces and in
capitals: the database works the key out for every row, those recorded
before included, and keeps the id as it was given."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0032_instalment_held_for'),
        ('customers', '0008_search_trigram_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='payment',
            name='bank_key',
            field=models.GeneratedField(db_persist=True, expression=django.db.models.functions.text.Upper(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(django.db.models.functions.text.Replace(models.F('bank_reference'), models.Value(' '), models.Value('')), models.Value('\xa0'), models.Value('')), models.Value('\t'), models.Value(''))), output_field=models.CharField(max_length=80)),
        ),
        migrations.AddIndex(
            model_name='payment',
            index=models.Index(condition=models.Q(('bank_key', ''), _negated=True), fields=['bank_key'], name='payment_by_bank_id'),
        ),
    ]
