"""A step's late fee per currency: the one fee a step had (late_fee_amount in
late_fee_currency) becomes its StepFee in that currency; a step whose fee was
0 charged nothing and gets none. A notice may now carry one fee per currency
it lists, so the one-fee-per-notice constraint counts per currency.

Going back keeps one fee a step, the only shape the previous version knows:
the fee in the default currency if the step has one, else the first by
currency code. Charges are never dropped to go back: a notice that charged
fees in two currencies stops the way back at the old constraint."""

from decimal import Decimal

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import ar_collections.models
import arcrm.money


def fees_from_steps(apps, schema_editor):
    step_model = apps.get_model("collections", "DunningStep")
    fee_model = apps.get_model("collections", "StepFee")
    alias = schema_editor.connection.alias
    fee_model.objects.using(alias).bulk_create(
        fee_model(step_id=pk, currency=currency, amount=amount)
        for pk, amount, currency in step_model.objects.using(alias).filter(late_fee_amount__gt=0)
        .values_list("pk", "late_fee_amount", "late_fee_currency")
    )


def steps_from_fees(apps, schema_editor):
    step_model = apps.get_model("collections", "DunningStep")
    fee_model = apps.get_model("collections", "StepFee")
    alias = schema_editor.connection.alias
    kept: dict[int, tuple[str, Decimal]] = {}
    for step_id, currency, amount in (fee_model.objects.using(alias).order_by("step_id", "currency")
                                      .values_list("step_id", "currency", "amount")):
        if step_id not in kept or currency == settings.DEFAULT_CURRENCY:
            kept[step_id] = (currency, amount)
    for step_id, (currency, amount) in kept.items():
        step_model.objects.using(alias).filter(pk=step_id).update(late_fee_amount=amount,
                                                                  late_fee_currency=currency)


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0026_action_sweep_after'),
    ]

    operations = [
        migrations.CreateModel(
            name='StepFee',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('currency', models.CharField(default=ar_collections.models._default_currency, max_length=3, validators=[arcrm.money.validate_currency])),
                ('amount', models.DecimalField(decimal_places=2, max_digits=14)),
                ('step', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='fees', to='collections.dunningstep')),
            ],
            options={
                'ordering': ['currency'],
                'constraints': [
                    models.UniqueConstraint(fields=('step', 'currency'), name='step_fee_per_currency', violation_error_message='This step already has a late fee in this currency.'),
                    models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='step_fee_positive', violation_error_message='A late fee must be more than 0; to charge none in a currency, leave the currency out.'),
                ],
            },
        ),
        migrations.RunPython(fees_from_steps, steps_from_fees),
        migrations.RemoveConstraint(
            model_name='dunningstep',
            name='step_fee_not_negative',
        ),
        migrations.RemoveField(
            model_name='dunningstep',
            name='late_fee_amount',
        ),
        migrations.RemoveField(
            model_name='dunningstep',
            name='late_fee_currency',
        ),
        migrations.RemoveConstraint(
            model_name='latecharge',
            name='charge_once_per_action_without_invoice',
        ),
        migrations.AddConstraint(
            model_name='latecharge',
            constraint=models.UniqueConstraint(condition=models.Q(('invoice__isnull', True)), fields=('action', 'kind', 'currency'), name='charge_once_per_action_currency'),
        ),
    ]
