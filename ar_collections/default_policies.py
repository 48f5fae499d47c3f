"""The ladder every segment starts with; managers tune them afterwards.

Each step: (day relative to due date, action, tone 1 friendly / 2 firm /
3 final, pay-by days, late fee). Tone never softens and no step comes before
the previous step's pay-by date (tests hold every ladder to that).

Used by migration 0004 and after every migrate or test flush
(CollectionsConfig.ready): a segment left with no policy at all gets its
default back, because dunning cannot chase what no ladder covers.
"""

from decimal import Decimal

from django.conf import settings

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




def ladders_install_missing(*, policy_model, step_model, minimum_model, fee_model,
                            using: str = "default") -> int:
    """Create the default ladder of every segment that has no policy; return how many.

    A step's fee is in the default currency: a StepFee row, or, with
    `fee_model` None (migration 0004, before fees had rows of their own),
    the step's own fee column, which migration 0027 turns into its row."""
    have = set(policy_model.objects.using(using).values_list("segment", flat=True))
    created = 0
    for segment, (name, description, auto_send, steps) in POLICIES.items():
        if segment in have:
            continue
        policy = policy_model.objects.using(using).create(
            name=name, segment=segment, description=description, auto_send=auto_send
        )
        made = step_model.objects.using(using).bulk_create(
            step_model(policy=policy, position=position, day_offset=day, action=action, tone=tone,
                       pay_by_days=pay_by, **({} if fee_model else {"late_fee_amount": Decimal(fee)}))
            for position, (day, action, tone, pay_by, fee) in enumerate(steps, start=1)
        )
        if fee_model is not None:
            fee_model.objects.using(using).bulk_create(
                fee_model(step=step, currency=settings.DEFAULT_CURRENCY, amount=Decimal(fee))
                for step, (*_, fee) in zip(made, steps, strict=True) if Decimal(fee) > 0
            )
        minimum_model.objects.using(using).bulk_create(
            minimum_model(policy=policy, currency=currency, min_amount=Decimal(amount))
            for currency, amount in MINIMUMS.items()
        )
        created += 1
    return created
