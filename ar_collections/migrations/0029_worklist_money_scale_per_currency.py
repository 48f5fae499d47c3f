"""The worklist's money part per currency: "1 point per N overdue", set by a
manager in the collection rules. None is created: a currency without one
counts 1 point per 1,000, as every currency did before."""

import ar_collections.models
import arcrm.money
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0028_moot_letters_not_carried_out'),
    ]

    operations = [
        migrations.CreateModel(
            name='MoneyPointScale',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('currency', models.CharField(default=ar_collections.models._default_currency, max_length=3, validators=[arcrm.money.validate_currency])),
                ('per_point_amount', models.DecimalField(decimal_places=2, help_text="Overdue in this currency that makes one point of an item's money part.", max_digits=14, verbose_name='1 point per')),
                ('rules', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='money_scales', to='collections.collectionrules')),
            ],
            options={
                'verbose_name': 'worklist money scale',
                'ordering': ['currency'],
                'constraints': [models.UniqueConstraint(fields=('rules', 'currency'), name='money_scale_per_currency', violation_error_message='The worklist already has a scale for this currency.'), models.CheckConstraint(condition=models.Q(('per_point_amount__gt', 0)), name='money_scale_positive', violation_error_message='A point must stand for more than 0.')],
            },
        ),
    ]
