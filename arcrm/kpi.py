"""The managers' measures as formulas: aging buckets, DSO (simple and
countback), best-possible DSO, ADD and CEI. No Django: the Numbers page
(ar_collections/numbers.py) gathers the amounts, these say what they mean.

Money and days are Decimal throughout. A measure whose divisor is zero (no
sales in the period, nothing collectable) is None — "not defined", which the
page shows as a dash — rather than a made-up zero or infinity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0")
HUNDRED = Decimal("100")
# Days and percentages are shown to one place: a tenth of a day is already
# finer than anyone collects by.
ONE_PLACE = Decimal("0.1")

# Aging buckets by days late (days past the due date): the last day each
# bucket holds, the over-90 bucket holding all the rest. "Not yet due" is 0
# days late or less: an invoice due today is not late yet.
NOT_YET_DUE = "Not yet due"
BUCKETS: tuple[tuple[str, int | None], ...] = (
    (NOT_YET_DUE, 0),
    ("1–30 days late", 30),
    ("31–60 days late", 60),
    ("61–90 days late", 90),
    ("Over 90 days late", None),
)


def one_place(value: Decimal) -> Decimal:
    return value.quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def aging_bucket(days_late: int) -> str:
    """The bucket of an invoice `days_late` days past due (0 or less: not yet due)."""
    for label, last_day in BUCKETS:
        if last_day is None or days_late <= last_day:
            return label
    raise AssertionError("the last bucket holds every day")  # pragma: no cover


def dso_simple(*, receivables: Decimal, credit_sales: Decimal, days: int) -> Decimal | None:
    """Receivables at the period's end / credit sales in the period × days in it."""
    if credit_sales <= 0:
        return None
    return one_place(receivables / credit_sales * days)


def best_possible_dso(*, current_receivables: Decimal, credit_sales: Decimal, days: int) -> Decimal | None:
    """The DSO if every late invoice had been paid on time: only the
    receivables not yet due at the period's end / credit sales × days."""
    return dso_simple(receivables=current_receivables, credit_sales=credit_sales, days=days)


def average_days_delinquent(*, dso: Decimal | None, best_possible: Decimal | None) -> Decimal | None:
    """ADD = DSO − best-possible DSO: the days lateness adds."""
    if dso is None or best_possible is None:
        return None
    return one_place(dso - best_possible)


@dataclass(frozen=True)
class Countback:
    days: Decimal
    # False when the months given ran out before the receivables did: the
    # DSO is then more than `days`.
    complete: bool


def dso_countback(*, receivables: Decimal, months: Iterable[tuple[int, Decimal]]) -> Countback:
    """Countback DSO: going back month by month from the period's end, each
    month's credit sales "use up" the receivables; a month used up whole
    counts all its days, the month where they run out the share of its days
    that the rest is of its sales. `months` are (days in the month, credit
    sales), newest first. A month without sales uses up nothing and counts
    whole."""
    left, days = receivables, ZERO
    if left <= 0:
        return Countback(ZERO, complete=True)
    for month_days, sales in months:
        if sales > 0 and left <= sales:
            return Countback(one_place(days + left / sales * month_days), complete=True)
        days += month_days
        left -= max(sales, ZERO)
    return Countback(one_place(days), complete=False)


def collection_effectiveness(
    *, opening: Decimal, credit_sales: Decimal, closing: Decimal, closing_current: Decimal
) -> Decimal | None:
    """CEI = (opening receivables + credit sales − closing receivables) /
    (opening receivables + credit sales − closing receivables not yet due) × 100:
    what was collected (or otherwise taken off) out of what could have been."""
    collectable = opening + credit_sales - closing_current
    if collectable <= 0:
        return None
    return one_place((opening + credit_sales - closing) / collectable * HUNDRED)


def share(part: Decimal, whole: Decimal) -> Decimal | None:
    """`part` as a fraction of `whole` (None for a whole of nothing)."""
    return part / whole if whole else None
