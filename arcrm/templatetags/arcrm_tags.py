"""Template helpers: money, percentages, days, people's names, the aging bar and the role check.

`can_act_on` mirrors arcrm.roles so templates hide what the views refuse;
hiding is cosmetic, the views check again.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django import template

from arcrm import roles
from arcrm.dates import format_day
from arcrm.money import ZERO, format_money
from arcrm.text import person_name

register = template.Library()


@register.filter
def day(value: dt.date, today: dt.date) -> str:
    """"3 Mar" in the year of `today`, "3 Mar 2024" in any other: a day
    without its year reads as this year's."""
    return format_day(value, year=value.year != today.year)


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    return format_money(amount, currency)


@register.filter
def percent(share: Decimal | None) -> str:
    """A share between 0 and 1 as a whole percentage: `0.125` → `"13 %"`."""
    if share is None:
        return "—"
    # Half up, as money is rounded; format() alone would round half to even.
    return f"{(Decimal(share) * 100).quantize(Decimal('1'), ROUND_HALF_UP)} %"


@register.filter
def signed_days(days: Decimal | None) -> str:
    """`Decimal("4.5")` → `"+4.5 days"`; a real minus sign for the negative side."""
    if days is None:
        return "—"
    # The sign of what is shown: -0.04 rounds to a flat ±0.0, not to "−0.0".
    shown = Decimal(days).quantize(Decimal("0.1"), ROUND_HALF_UP)
    sign = "+" if shown > 0 else ("−" if shown < 0 else "±")
    return f"{sign}{abs(shown)} days"


@register.filter
def person(user) -> str:
    """A user by full name, or by username if no name is on file; "—" for nobody."""
    return person_name(user) if user else "—"


@register.filter
def can_act_on(user, customer) -> bool:
    return roles.can_act_on(user, customer)


# One colour class per aging bucket, from not yet due to 90+ days overdue.
# The buckets by days late, and where one is given (the account card's), what
# is under open dispute.
_AGING_CLASSES = ("current", "d30", "d60", "d90", "over90", "disputed")


@register.inclusion_tag("customers/_aging_bar.html")
def aging_bar(buckets: list[tuple[str, Decimal]], currency: str) -> dict:
    """A stacked bar of aging buckets, with a legend that carries the numbers.

    Widths are shares of the total, rounded for CSS only; the amounts shown
    stay exact.
    """
    total = sum((amount for _, amount in buckets), ZERO)
    segments = [
        {
            "label": label,
            "amount": amount,
            "css": css,
            "width": f"{amount / total * 100:.2f}" if total else "0",
        }
        for (label, amount), css in zip(buckets, _AGING_CLASSES[:len(buckets)], strict=True)
    ]
    summary = "; ".join(f"{s['label']}: {format_money(s['amount'], currency)}" for s in segments)
    return {"segments": segments, "total": total, "currency": currency, "summary": summary}
