"""The policy review: which steps of the late-payment ladders get paid.

For each step, over the notices it carried out (an e-mail sent, a letter
posted, a call task given to the collector) whose pay-by date fell in the
period: how many and how many accounts; of the money the notices asked (their
lines' balances as they stood), the share paid by the pay-by date and within
LATE_DAYS after it, per currency and never summed across currencies; the
median days from a notice to a payment towards it; how many cycles went on to
a later step and how many ended with a dispute or a payment plan instead; and
a plain flag (`judge`), one per step, over all its notices whatever their
currencies.

The period is of pay-by dates whose LATE_DAYS are over, so every notice in it
has had its whole time to be paid: a notice asking to be paid next week is not
yet a failure. Money paid is dated as on the Numbers page: a payment's
allocation to the invoice, on the day it was allocated; a credit note is no
payment.

Every figure is aggregated in the database, grouped by step (and currency):
four queries whatever the number of notices.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import (
    Case,
    Count,
    DateField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Least, TruncDate

from ar_collections.models import (
    ActionStatus,
    Allocation,
    Channel,
    Dispute,
    DunningAction,
    DunningActionInvoice,
    DunningStep,
    LatePaymentPolicy,
    PaymentPlan,
    PlanStatus,
    allocation_stands,
)
from ar_collections.numbers import Scope
from arcrm.db import MONEY, DaysBetween
from arcrm.money import ZERO, quantize

PERIOD_DAYS = (30, 90, 180, 365)
DEFAULT_DAYS = 90
# The second look: money that came within two weeks after the pay-by date
# still answered the notice (a payment run a week later, a slow bank).
LATE_DAYS = 14
# The flag's rule, stated on the page. Below MIN_NOTICES a share says more
# about a few customers than about the step.
MIN_NOTICES = 20
WORKS_FROM = Decimal("0.50")
RARELY_BELOW = Decimal("0.20")

WORKS = "works"
WATCH = "watch"
RARELY_WORKS = "rarely works"
TOO_FEW = "too few notices to judge"

# Plans that never were agreed do not end a cycle.
_PLAN_NOT_AGREED = (PlanStatus.AWAITING_APPROVAL, PlanStatus.REJECTED, PlanStatus.CANCELLED)


@dataclass(frozen=True)
class Window:
    """The pay-by dates under review: `days` of them, ending with the last
    day whose LATE_DAYS are over."""

    start: dt.date
    end: dt.date
    days: int

    @classmethod
    def ending_before(cls, today: dt.date, *, days: int) -> Window:
        end = today - dt.timedelta(days=LATE_DAYS + 1)
        return cls(start=end - dt.timedelta(days=days - 1), end=end, days=days)


@dataclass
class CurrencyRow:
    """One step's money in one currency."""

    currency: str
    notices: int
    asked: Decimal
    paid_by_pay_by: Decimal
    paid_late: Decimal

    @property
    def share_by_pay_by(self) -> Decimal | None:
        return self.paid_by_pay_by / self.asked if self.asked else None

    @property
    def share_late(self) -> Decimal | None:
        return self.paid_late / self.asked if self.asked else None


@dataclass
class StepReview:
    step: DunningStep
    notices: int = 0
    accounts: int = 0
    went_on: int = 0
    ended_disputed_or_planned: int = 0
    median_days: Decimal | None = None
    payments: int = 0
    currencies: list[CurrencyRow] = field(default_factory=list)

    @property
    def share_by_pay_by(self) -> Decimal | None:
        """The share paid by the pay-by date over all the step's notices:
        each currency's share of the money its notices asked, the shares
        weighted by how many notices asked in each. Amounts in different
        currencies are never added up, shares can be: whether a notice gets
        paid does not depend on its currency. In one currency, its share."""
        weighed = [(c.notices, c.share_by_pay_by) for c in self.currencies if c.share_by_pay_by is not None]
        if len(weighed) == 1:
            return weighed[0][1]
        notices = sum(n for n, _ in weighed)
        return sum((n * share for n, share in weighed), ZERO) / notices if notices else None

    @property
    def flag(self) -> str:
        """Judged over all the step's notices, whatever their currencies: 25
        notices in three currencies are enough to judge, though no currency
        has 20 of them."""
        return judge(notices=self.notices, share=self.share_by_pay_by)


@dataclass
class PolicyReview:
    policy: LatePaymentPolicy
    steps: list[StepReview] = field(default_factory=list)


def judge(*, notices: int, share: Decimal | None) -> str:
    """The flag for a step: how many notices it carried out, and the share
    paid by their pay-by date (StepReview.share_by_pay_by)."""
    if notices < MIN_NOTICES or share is None:
        return TOO_FEW
    if share < RARELY_BELOW:
        return RARELY_WORKS
    if share < WORKS_FROM:
        return WATCH
    return WORKS


def notice_day(prefix: str = "") -> Case:
    """The day a notice reached the customer: a letter the day it was posted,
    anything else the day it was carried out."""
    return Case(
        When(**{f"{prefix}channel": Channel.LETTER}, then=TruncDate(f"{prefix}printed_at")),
        default=TruncDate(f"{prefix}done_at"),
        output_field=DateField(),
    )


def _late_end(pay_by) -> ExpressionWrapper:
    """The last day of the second look after a pay-by date (a field's name or an OuterRef)."""
    pay_by = F(pay_by) if isinstance(pay_by, str) else pay_by
    return ExpressionWrapper(pay_by + Value(dt.timedelta(days=LATE_DAYS)), output_field=DateField())


def notices(scope: Scope, *, window: Window) -> QuerySet:
    """The notices carried out whose pay-by date is in the window: e-mails
    sent, letters posted (a letter still in the print queue has reached no
    one), call tasks given; not a manager's review, a hold or C.O.D., decided
    inside the house."""
    reached = Q(channel__in=[Channel.EMAIL, Channel.PHONE]) | Q(
        channel=Channel.LETTER, printed_at__isnull=False
    )
    return scope.of(
        DunningAction.objects.filter(reached, status=ActionStatus.DONE,
                                     pay_by__range=(window.start, window.end)),
        currency="customer__currency",
    )


def _paid(*, until) -> Coalesce:
    """For a notice's line: payments allocated to its invoice from the day the
    notice reached the customer to `until`, at most what the line asked."""
    paid = (
        Allocation.objects.filter(
            invoice=OuterRef("invoice"), payment__isnull=False,
            allocated_on__gte=OuterRef("notice_on"), allocated_on__lte=until,
        )
        .order_by()
        .values("invoice")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Least(Coalesce(Subquery(paid), Value(ZERO), output_field=MONEY), F("open_amount"))


def _money(notices_: QuerySet) -> dict[int, list[CurrencyRow]]:
    """What each step's notices asked and what was paid, per currency."""
    rows = (
        DunningActionInvoice.objects.filter(action__in=notices_)
        .annotate(notice_on=notice_day("action__"))
        .annotate(
            by_pay_by=_paid(until=OuterRef("action__pay_by")),
            late=_paid(until=_late_end(OuterRef("action__pay_by"))),
        )
        .order_by()
        .values("action__step_id", "currency")
        .annotate(
            notices=Count("action", distinct=True),
            asked=Sum("open_amount"),
            paid_by_pay_by=Sum("by_pay_by"),
            paid_late=Sum("late"),
        )
        .order_by("action__step_id", "currency")
    )
    result: dict[int, list[CurrencyRow]] = defaultdict(list)
    for row in rows:
        currency = row["currency"]
        result[row["action__step_id"]].append(CurrencyRow(
            currency=currency,
            notices=row["notices"],
            # In the currency's places: SQLite sums to ten.
            asked=quantize(row["asked"] or ZERO, currency),
            paid_by_pay_by=quantize(row["paid_by_pay_by"] or ZERO, currency),
            paid_late=quantize(row["paid_late"] or ZERO, currency),
        ))
    return result


def _cycles(notices_: QuerySet) -> dict[int, dict]:
    """Per step: notices, accounts, and how many cycles went on to a later
    step or ended with a dispute or a plan (and did not go on)."""
    later_step = DunningAction.objects.filter(
        cycle=OuterRef("cycle"), step__position__gt=OuterRef("step__position"),
    ).exclude(status__in=[ActionStatus.SKIPPED, ActionStatus.FAILED])
    # A dispute opened or a plan agreed on an invoice the notice asked for,
    # from the day it reached the customer to the end of the second look.
    disputed = Dispute.objects.filter(
        invoice__dunning_lines__action=OuterRef("pk"),
        opened_on__gte=OuterRef("notice_on"), opened_on__lte=_late_end(OuterRef("pay_by")),
    )
    planned = PaymentPlan.objects.filter(
        invoices__dunning_lines__action=OuterRef("pk"),
        proposed_on__gte=OuterRef("notice_on"), proposed_on__lte=_late_end(OuterRef("pay_by")),
    ).exclude(status__in=_PLAN_NOT_AGREED)
    went_on = Exists(later_step)
    rows = (
        notices_.annotate(notice_on=notice_day())
        .annotate(went_on=went_on, disputed=Exists(disputed), planned=Exists(planned))
        .order_by()
        .values("step_id")
        .annotate(
            notices=Count("pk"),
            accounts=Count("customer", distinct=True),
            went_on_n=Count("pk", filter=Q(went_on=True)),
            ended_n=Count("pk", filter=Q(went_on=False) & (Q(disputed=True) | Q(planned=True))),
        )
    )
    return {row["step_id"]: row for row in rows}


def _days_to_money(notices_: QuerySet) -> dict[int, dict[int, int]]:
    """Per step, how many payments came how many days after the notice
    (within the second look): a histogram, whose median the caller reads."""
    rows = (
        DunningActionInvoice.objects.filter(action__in=notices_)
        .annotate(notice_on=notice_day("action__"))
        .filter(
            allocation_stands("invoice__allocations__"),
            invoice__allocations__payment__isnull=False,
            invoice__allocations__allocated_on__gte=F("notice_on"),
            invoice__allocations__allocated_on__lte=_late_end("action__pay_by"),
        )
        .order_by()
        .values("action__step_id", days=DaysBetween(F("invoice__allocations__allocated_on"), F("notice_on")))
        .annotate(n=Count("pk"))
    )
    result: dict[int, dict[int, int]] = defaultdict(dict)
    for row in rows:
        result[row["action__step_id"]][row["days"]] = row["n"]
    return result


def median(histogram: dict[int, int]) -> Decimal | None:
    """The median of values given as {value: how many times}; of an even
    count, the mean of the two middle ones."""
    total = sum(histogram.values())
    if not total:
        return None
    ordered = sorted(histogram.items())

    def nth(k: int) -> int:
        seen = 0
        for value, n in ordered:
            seen += n
            if seen > k:
                return value
        raise AssertionError("unreachable")

    low, high = nth((total - 1) // 2), nth(total // 2)
    return (Decimal(low) + Decimal(high)) / 2


def review(scope: Scope, *, today: dt.date, days: int = DEFAULT_DAYS) -> tuple[Window, list[PolicyReview]]:
    """Each policy's steps with their figures over the window of `days`
    before today whose second look is over. The ladders as they run now,
    plus any retired step (or inactive policy) that had notices in it."""
    window = Window.ending_before(today, days=days)
    taken = notices(scope, window=window)
    money, cycles, histograms = _money(taken), _cycles(taken), _days_to_money(taken)
    steps = (
        DunningStep.objects.filter(
            Q(retired=False, policy__is_active=True) | Q(pk__in=list(cycles))
        )
        .select_related("policy")
        .order_by("policy__segment", "policy__name", "policy_id", "position", "pk")
    )
    policies: dict[int, PolicyReview] = {}
    for step in steps:
        counts = cycles.get(step.pk, {})
        histogram = histograms.get(step.pk, {})
        policies.setdefault(step.policy_id, PolicyReview(policy=step.policy)).steps.append(StepReview(
            step=step,
            notices=counts.get("notices", 0),
            accounts=counts.get("accounts", 0),
            went_on=counts.get("went_on_n", 0),
            ended_disputed_or_planned=counts.get("ended_n", 0),
            median_days=median(histogram),
            payments=sum(histogram.values()),
            currencies=money.get(step.pk, []),
        ))
    return window, list(policies.values())
