"""A sensible starting ladder for every segment; managers tune them afterwards.

Each step: (day relative to due date, action, tone 1 friendly / 2 firm /
3 final, pay-by days, late fee). Tone never softens and no step comes before
the previous step's pay-by date.
"""

from decimal import Decimal

from django.db import migrations

E, L, CALL, PRINCIPAL, REVIEW, HOLD, COD = (
    "email", "letter", "call_task", "escalate_principal", "manager_review", "credit_hold", "switch_to_cod"
)
POLICIES = {
    "prompt": (
        "Prompt payers",
        "They pay on time; a miss is probably a lost invoice. Ask kindly whether it arrived, "
        "with a copy, and only then get firmer.",
        True,
        [(3, E, 1, 10, "0"), (14, L, 2, 10, "0"), (28, PRINCIPAL, 2, 10, "0"), (42, REVIEW, 3, 7, "0")],
    ),
    "occasional_slip": (
        "Occasional slips",
        "Usually on time. Re-send the invoice to the right AP person, then call before writing firmly.",
        True,
        [(5, E, 1, 7, "0"), (14, CALL, 1, 7, "0"), (24, L, 2, 10, "0"), (38, PRINCIPAL, 3, 7, "0"),
         (50, REVIEW, 3, 7, "0")],
    ),
    "systematic_late": (
        "Systematic late payers",
        "A reminder before the due date, then a shorter, firmer ladder with a late fee, up to a "
        "credit hold and C.O.D. with a manager's approval.",
        True,
        [(-3, E, 1, 3, "0"), (3, E, 2, 7, "0"), (12, L, 2, 7, "40.00"), (21, PRINCIPAL, 3, 7, "0"),
         (30, HOLD, 3, 7, "0"), (45, COD, 3, 7, "0")],
    ),
    "distressed": (
        "Distressed accounts",
        "They cannot pay as things are: call quickly about a payment plan and bring in a manager.",
        True,
        [(1, CALL, 1, 5, "0"), (7, REVIEW, 2, 7, "0"), (14, PRINCIPAL, 3, 7, "0"), (21, HOLD, 3, 7, "0")],
    ),
    "special_bond": (
        "Special bond",
        "Personal treatment: every step is reviewed by the collector before it goes out.",
        False,
        [(7, CALL, 1, 14, "0"), (21, E, 1, 14, "0"), (35, REVIEW, 2, 7, "0")],
    ),
    "new": (
        "New customers",
        "Little history yet: a friendly reminder, a call, then a firmer letter.",
        True,
        [(1, E, 1, 7, "0"), (10, CALL, 1, 7, "0"), (20, L, 2, 10, "0"), (30, PRINCIPAL, 3, 7, "0"),
         (40, REVIEW, 3, 7, "0")],
    ),
}
MINIMUMS = {"EUR": "25.00", "USD": "25.00", "GBP": "20.00"}


def create(apps, schema_editor):
    Policy = apps.get_model("collections", "LatePaymentPolicy")
    Step = apps.get_model("collections", "DunningStep")
    Minimum = apps.get_model("collections", "PolicyMinimum")
    for segment, (name, description, auto_send, steps) in POLICIES.items():
        policy = Policy.objects.create(
            name=name, segment=segment, description=description, auto_send=auto_send
        )
        Step.objects.bulk_create(
            Step(policy=policy, position=position, day_offset=day, action=action, tone=tone,
                 pay_by_days=pay_by, late_fee_amount=Decimal(fee))
            for position, (day, action, tone, pay_by, fee) in enumerate(steps, start=1)
        )
        Minimum.objects.bulk_create(
            Minimum(policy=policy, currency=currency, min_amount=Decimal(amount))
            for currency, amount in MINIMUMS.items()
        )


def remove(apps, schema_editor):
    apps.get_model("collections", "LatePaymentPolicy").objects.filter(
        name__in=[name for name, *_ in POLICIES.values()]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("collections", "0003_dunning")]

    operations = [migrations.RunPython(create, remove)]
