"""The managers' numbers: aging, DSO, best-possible DSO, ADD, CEI, write-offs,
credit notes, disputes and the cash-flow forecast, per currency.

Every figure is aggregated in the database, grouped by currency (and bucket,
month or week): the page costs the same handful of statements whatever the
size of the book. The formulas themselves are in arcrm/kpi.py.

Receivables at a past date are rebuilt from the ledger, not from today's open
amounts: what invoices issued by then came to, less what was allocated to
them (payments, credit notes) and written off by then — a payment reversed
since counted as it stood, from the day it was applied until the day it was
reversed, so no figure of a past day changes after it. One thing the ledger
does not date is approximated, and the page says so: an invoice corrected
by a dispute has only its corrected total; it counts at its total as issued
(corrected total + what the correction took off) until the day the dispute
was resolved, as a credit note would.
An invoice whose due date was moved since (the ERP's terms extended, put
right in the admin) is late, or not yet due, at a date by the due date it
had then, which the change's timeline entry keeps (due_dates_then).
An invoice the ERP cancelled counts until the day it was cancelled
(`cancelled_on`; one cancelled before that day was kept never counts), and
leaves the credit sales of the month it was cancelled in.
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connections
from django.db.models import (
    Case,
    Count,
    DateField,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Func,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.fields.json import KT
from django.db.models.functions import (
    Cast,
    Coalesce,
    FirstValue,
    Greatest,
    Least,
    Round,
    RowNumber,
    TruncMonth,
)
from django.utils import timezone

from ar_collections.models import (
    Allocation,
    CreditNote,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    DisputeStatus,
    DunningPause,
    ExceptionKind,
    Instalment,
    InstalmentStatus,
    Invoice,
    InvoiceStatus,
    PauseKind,
    Payment,
    PaymentPlan,
    PaymentReversal,
    PlanStatus,
    Promise,
    PromiseStatus,
    WriteOff,
    account_pause_holds,
    allocation_stood,
)
from arcrm import kpi
from arcrm.db import MONEY
from arcrm.money import ZERO, quantize
from arcrm.text import name_of
from customers.models import Customer, EventKind, Segment, TimelineEvent

# The reasons that are our own fault; disputes with them are routed to the
# department that caused them (Department.reasons).
CAUSED_BY_US = (DisputeReason.OUR_DELIVERY, DisputeReason.OUR_SERVICE)
DISPUTED = "Under open dispute"
FORECAST_WEEKS = 8
PERIOD_LENGTHS = (1, 3, 6, 12)


@dataclass(frozen=True)
class Scope:
    """Whose figures: the whole book, or one collector's accounts; all
    currencies or one."""

    collector_id: int | None = None
    currency: str | None = None

    def of(self, rows: QuerySet, *, customer: str = "customer", currency: str = "currency") -> QuerySet:
        if self.collector_id is not None:
            rows = rows.filter(**{f"{customer}__collector_id": self.collector_id})
        if self.currency:
            rows = rows.filter(**{currency: self.currency})
        return rows


@dataclass(frozen=True)
class Period:
    """Calendar months, `months` of them, ending with the month of `end`; the
    last one so far when `end` is today, before the month is over (`partial`)."""

    start: dt.date
    end: dt.date
    months: int
    partial: bool = False

    @classmethod
    def ending(cls, month: dt.date, *, months: int, today: dt.date | None = None) -> Period:
        """Ending with `month`; with `today` in it, ending today: this month so far."""
        end = month.replace(day=calendar.monthrange(month.year, month.month)[1])
        start = _month_start(month, back=months - 1)
        if today is not None and month <= today <= end:  # its last day is not over either
            return cls(start=start, end=today, months=months, partial=True)
        return cls(start=start, end=end, months=months)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def opening_day(self) -> dt.date:
        """The day whose closing balance the period opens with."""
        return self.start - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        if self.partial:
            # Said as days: "Dec 2026" would read as the whole month.
            first = "" if self.end.day == 1 else "1–"
            if self.months > 1:
                first = f"{self.start:%b}–" if self.start.year == self.end.year else f"{self.start:%b %Y}–"
            return f"{first}{self.end.day} {self.end:%b %Y}, to date"
        if self.months == 1:
            return f"{self.end:%b %Y}"
        first = f"{self.start:%b}" if self.start.year == self.end.year else f"{self.start:%b %Y}"
        return f"{first}–{self.end:%b %Y}"


def last_full_month(today: dt.date) -> dt.date:
    """The first day of the last calendar month that has ended."""
    return _month_start(today, back=1)


# How far back a period may end: ten years of months (a year's period ending
# with the oldest reads eleven). Further back than any ledger this product
# holds, so a mistyped year ("1900-01") is refused rather than answered with a
# page, or a file, of zeros that reads like a real month.
YEARS_BACK = 10


def earliest_month(today: dt.date) -> dt.date:
    """The first day of the oldest month a period may end with."""
    return _month_start(last_full_month(today), back=YEARS_BACK * 12 - 1)


def _month_start(day: dt.date, *, back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


# --- The figures the page shows -----------------------------------------------------------


@dataclass
class Amount:
    amount: Decimal = ZERO
    count: int = 0

    def add(self, amount: Decimal | None, count: int | None = None) -> None:
        self.amount += amount or ZERO
        self.count += count or 0


@dataclass
class AgingRow:
    label: str
    amount: Decimal
    invoices: int
    share: Decimal | None = None

    @property
    def key(self) -> str:
        """The bucket's name in the aged trial balance's address."""
        return AGED_KEYS[self.label]


@dataclass
class RollForward:
    """What moved the receivables over a period, each movement on the day it
    moved them (as the receivables at a date count it), so that the start
    plus these is the end to the cent: invoices issued (at their total as
    issued), what the invoices the ERP cancelled still owed the day they were
    cancelled, what corrections took off the day their dispute was resolved,
    credit notes and payments set against invoices on the day they were
    applied (money kept on account: the day it was set against an invoice,
    not the day it came in), payments the bank took back on the day they
    were reversed, and write-offs."""

    invoiced: Decimal = ZERO
    cancelled: Decimal = ZERO
    corrected: Decimal = ZERO
    credit_notes: Decimal = ZERO
    payments: Decimal = ZERO
    reversed: Decimal = ZERO
    written_off: Decimal = ZERO

    def end(self, start: Decimal) -> Decimal:
        return (start + self.invoiced - self.cancelled - self.corrected - self.credit_notes - self.payments
                + self.reversed - self.written_off)


@dataclass
class PeriodFigures:
    period: Period
    opening: Decimal
    closing: Decimal
    closing_current: Decimal
    sales: Decimal
    countback: kpi.Countback
    write_offs: Amount
    credit_notes: Amount
    disputes: Amount
    disputes_ours: Amount
    moves: RollForward = field(default_factory=RollForward)

    @property
    def dso(self) -> Decimal | None:
        return kpi.dso_simple(receivables=self.closing, credit_sales=self.sales, days=self.period.days)

    @property
    def best_possible_dso(self) -> Decimal | None:
        return kpi.best_possible_dso(
            current_receivables=self.closing_current, credit_sales=self.sales, days=self.period.days
        )

    @property
    def add(self) -> Decimal | None:
        return kpi.average_days_delinquent(dso=self.dso, best_possible=self.best_possible_dso)

    @property
    def cei(self) -> Decimal | None:
        return kpi.collection_effectiveness(
            opening=self.opening,
            credit_sales=self.sales,
            closing=self.closing,
            closing_current=self.closing_current,
        )


@dataclass
class ForecastWeek:
    start: dt.date
    end: dt.date
    invoices: Decimal = ZERO
    promises: Decimal = ZERO
    instalments: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.invoices + self.promises + self.instalments


@dataclass
class Forecast:
    weeks: list[ForecastWeek]
    # Left out of the weeks, and shown apart:
    disputed: Amount = field(default_factory=Amount)
    # Open invoices whose expected day (due date + the customer's usual
    # lateness) has passed: later than even this customer usually is.
    overdue_beyond_usual: Amount = field(default_factory=Amount)
    later: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return sum((week.total for week in self.weeks), ZERO)


@dataclass
class CurrencyFigures:
    currency: str
    aging: list[AgingRow]
    disputed: AgingRow
    periods: list[PeriodFigures]
    forecast: Forecast
    # Each open invoice once: one disputed in part has money in the disputed
    # row and in its bucket's, and counts in both rows.
    open_invoices: int = 0

    @property
    def aging_pairs(self) -> list[tuple[str, Decimal]]:
        """The buckets as the aging bar draws them."""
        return [(row.label, row.amount) for row in self.aging]

    @property
    def open_total(self) -> Decimal:
        return sum((row.amount for row in self.aging), ZERO) + self.disputed.amount


def figures(scope: Scope, *, today: dt.date, periods: list[Period]) -> list[CurrencyFigures]:
    """Everything the Numbers page shows, per currency, in a fixed number of queries."""
    aging = _aging(scope, on=today)
    days = sorted({p.end for p in periods} | {p.opening_day for p in periods})
    balances, sales, moves = _ledger(scope, days=days, periods=periods)
    flows = _flows(scope, periods=periods)
    forecast = _forecast(scope, today=today)
    currencies = sorted(set(aging) | set(balances) | set(sales) | set(flows) | set(forecast))
    result = []
    for currency in currencies:
        rows = aging.get(currency, {})
        table = [AgingRow(label, *rows.get(label, (ZERO, 0))) for label, _ in kpi.BUCKETS]
        disputed = AgingRow(DISPUTED, *rows.get(DISPUTED, (ZERO, 0)))
        whole = sum((row.amount for row in table), disputed.amount)
        for row in [*table, disputed]:
            row.share = kpi.share(row.amount, whole)
        at = balances.get(currency, {})
        monthly = sales.get(currency, {})
        result.append(
            CurrencyFigures(
                currency=currency,
                aging=table,
                disputed=disputed,
                periods=[
                    _period_figures(p, at=at, monthly=monthly, flows=flows.get(currency, {}).get(i),
                                    moves=moves.get(currency, {}).get(i))
                    for i, p in enumerate(periods)
                ],
                forecast=forecast.get(currency) or _empty_forecast(today),
                open_invoices=rows.get(ALL_OPEN, (ZERO, 0))[1],
            )
        )
    return result


def _period_figures(
    period: Period, *, at: dict, monthly: dict[dt.date, Decimal], flows: dict | None,
    moves: RollForward | None = None,
) -> PeriodFigures:
    closing, closing_current = at.get(period.end, (ZERO, ZERO))
    opening, _ = at.get(period.opening_day, (ZERO, ZERO))
    in_period = [m for m in monthly if period.start <= m <= period.end]
    # Countback walks back from the period's last month through every month on record.
    first = min(monthly, default=period.start)
    history = []
    month = period.end.replace(day=1)
    while month >= first:
        # The last month counts the days it has had: all of them once it is
        # over, those up to today while it is the month so far.
        days = period.end.day if month == period.end.replace(day=1) else calendar.monthrange(
            month.year, month.month)[1]
        history.append((days, monthly.get(month, ZERO)))
        month = _month_start(month, back=1)
    flows = flows or {}
    return PeriodFigures(
        period=period,
        opening=opening,
        closing=closing,
        closing_current=closing_current,
        sales=sum((monthly[m] for m in in_period), ZERO),
        countback=kpi.dso_countback(receivables=closing, months=history),
        write_offs=flows.get("write_offs", Amount()),
        credit_notes=flows.get("credit_notes", Amount()),
        disputes=flows.get("disputes", Amount()),
        disputes_ours=flows.get("disputes_ours", Amount()),
        moves=moves or RollForward(),
    )


# --- Aging of what is open today --------------------------------------------------------------


def with_disputed_part(invoices: QuerySet) -> QuerySet:
    """Open invoices with `disputed_part`, what their open dispute covers of
    the open amount (nothing without one), and `undisputed`, the rest: a
    dispute of EUR 1,000 on an invoice of EUR 2,308.88 holds back EUR 1,000,
    and EUR 1,308.88 is owed and asked for as the invoice copy and the
    statement say. A join rather than a lookup per invoice: an invoice has at
    most one open dispute (dispute_one_open_per_invoice), so no row doubles."""
    part = Least(
        Coalesce(F("open_dispute__disputed_amount"), Value(ZERO), output_field=MONEY),
        F("open_amount"),
        output_field=MONEY,
    )
    return (
        invoices.annotate(
            open_dispute=FilteredRelation("disputes", condition=Q(disputes__status=DisputeStatus.OPEN))
        )
        .annotate(disputed_part=part)
        .annotate(undisputed=ExpressionWrapper(F("open_amount") - F("disputed_part"), output_field=MONEY))
    )


# The key of every open invoice's count in `_aging`'s rows.
ALL_OPEN = "All open"


def _aging(scope: Scope, *, on: dt.date) -> dict[str, dict[str, tuple[Decimal, int]]]:
    """Open invoices by currency and bucket of days late today, less what is
    under open dispute, which is in a bucket of its own (an invoice disputed in
    part has money in both); every open invoice counted once under ALL_OPEN.
    One query."""
    # days late = on − due ≤ last day  ⇔  due ≥ on − last day
    buckets = [
        When(due_date__gte=on - dt.timedelta(days=last), then=Value(label))
        for label, last in kpi.BUCKETS
        if last is not None
    ]
    rows = (
        scope.of(with_disputed_part(Invoice.objects.open()))
        .annotate(bucket=Case(*buckets, default=Value(kpi.BUCKETS[-1][0])))
        .order_by()
        .values("currency", "bucket")
        .annotate(
            amount=Sum("undisputed"), invoices=Count("pk", filter=Q(undisputed__gt=0)),
            disputed=Sum("disputed_part"), disputed_n=Count("pk", filter=Q(disputed_part__gt=0)),
            total=Sum("open_amount"), n=Count("pk"),
        )
    )
    result: dict[str, dict[str, tuple[Decimal, int]]] = defaultdict(dict)
    for row in rows:
        found = result[row["currency"]]
        found[row["bucket"]] = (row["amount"], row["invoices"])
        for key, amount, n in [(DISPUTED, row["disputed"], row["disputed_n"]),
                               (ALL_OPEN, row["total"], row["n"])]:
            before, count = found.get(key, (ZERO, 0))
            found[key] = (before + amount, count + n)
    return result


# --- Receivables at past dates, from the ledger -------------------------------------------


def _at_sums(
    amount: str, *, issued: str, invoice: str, moved: str | Callable[[dt.date], Q] | None,
    days: list[dt.date], moved_after: bool = False,
) -> dict[str, Sum]:
    """Two filtered sums of `amount` per day: what counts towards the
    receivables at the end of that day (the invoice issued by then, the
    movement dated by then — or, with `moved_after`, after it; or the rows a
    callable says stood that day), and the part of that not yet due then: due
    that day or later, not late at its end (days late 0), as the aging's and the
    aged trial balance's "Not yet due" bucket counts it by its due day as it
    stood that day (not_yet_due, of the invoice reached through `invoice`). Money
    under open dispute is in it, as in the receivables: the aged trial balance
    shows that part in its own column instead."""
    sums = {}
    for i, day in enumerate(days):
        when = Q(**{f"{issued}__lte": day})
        if callable(moved):
            when &= moved(day)
        elif moved:
            when &= Q(**{f"{moved}__gt" if moved_after else f"{moved}__lte": day})
        sums[f"at{i}"] = Sum(amount, filter=when)
        sums[f"current{i}"] = Sum(amount, filter=when & not_yet_due(day, invoice=invoice))
    return sums


# An invoice the ERP cancelled counts until the day it was cancelled, so that
# a past day's figures read as they did then (the Numbers page's receivables,
# the aged trial balance as of a day); one cancelled before that day was kept
# has none, and never counts.
COUNTED = ~Q(status=InvoiceStatus.CANCELLED) | Q(cancelled_on__isnull=False)


def uncancelled(prefix: str = "") -> Callable[[dt.date], Q]:
    """Not cancelled by the end of a day (with COUNTED), for an invoice reached through `prefix`."""
    return lambda day: (Q(**{f"{prefix}cancelled_on__isnull": True})
                        | Q(**{f"{prefix}cancelled_on__gt": day}))


def _due_date_moves(day: dt.date) -> QuerySet:
    """The timeline's entries of an invoice's due date changed after `day`
    (the ERP sent another, terms extended; or it was put right in the admin).
    A change is dated the day it was recorded here: the ERP's own day for it
    is not sent."""
    since = timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))
    return TimelineEvent.objects.filter(
        kind=EventKind.INVOICE_CHANGED, occurred_at__gte=since, subject_id__isnull=False,
        subject_type__app_label=Invoice._meta.app_label, subject_type__model=Invoice._meta.model_name,
        details__before__has_key="due_date",
    )


def due_dates_then(day: dt.date) -> QuerySet:
    """The invoices whose due date was changed after `day`, a row each
    (`invoice_id`), with the due date they had at its end (`due_then`): what
    the first change since replaced, as that change's timeline entry keeps it
    (its `before`, the entries being never edited). The rest had the due date
    they have. Only the changes since the day are read."""
    # The first change since the day, found in one pass over the changes in
    # order: looking up whether each had an earlier one took an index look-up
    # per change, five times as long with 12,000 invoices moved.
    first = {"partition_by": F("subject_id"), "order_by": [F("occurred_at").asc(), F("pk").asc()]}
    return (
        _due_date_moves(day)
        .order_by()
        .annotate(
            nth=Window(RowNumber(), **first),
            due_then=Window(FirstValue(Cast(KT("details__before__due_date"), DateField())), **first),
        )
        .filter(nth=1)
        .values("due_then", invoice_id=F("subject_id"))
    )


def not_yet_due(day: dt.date, *, invoice: str = "") -> Q:
    """Due `day` or later, by the due date the invoice (reached through
    `invoice`) had at the end of that day: its own, or the one it had before
    the first change since if it was moved since (due_dates_then). Not late then.

    The moved invoices are read as two subqueries that do not depend on the
    row, each run once per statement (PostgreSQL hashes it, SQLite keeps it
    in a table of its own): a subquery looking up each row's invoice made the
    Numbers page a third slower where no due date had moved, and the moved
    ids written into the statement as values were refused past 65,535 of
    them, as one ERP file extending the terms of every open invoice makes."""
    moved = _due_date_moves(day).values("subject_id")
    still_due = due_dates_then(day).filter(due_then__gte=day).values("invoice_id")
    return (
        Q(**{f"{invoice}due_date__gte": day}) & ~Q(**{f"{invoice}pk__in": moved})
        | Q(**{f"{invoice}pk__in": still_due})
    )


def _moved_in(periods: list[Period], sums: dict[str, tuple[str, Callable[[Period], Q]]]) -> dict[str, Sum]:
    """Per period, a sum of `amount` over the rows a condition takes, for
    each line of the roll-forward: {line: (amount, condition(period))}."""
    return {
        f"{line}{i}": Sum(amount, filter=condition(p))
        for i, p in enumerate(periods)
        for line, (amount, condition) in sums.items()
    }


def _ledger(scope: Scope, *, days: list[dt.date], periods: list[Period]) -> tuple[dict, dict, dict]:
    """The receivables at the end of each of `days` (total, and the part not
    yet due), credit sales per month of issue (less the invoices cancelled
    in the month), per currency; and each period's roll-forward (RollForward),
    summed in the same statements. Five queries: invoices, cancellations,
    corrections, allocations, write-offs.

    Each row of the ledger counts towards the receivables from a first day
    to a last (the invoice from its issue to its cancellation, an allocation
    from the day it was applied, or the invoice's issue if later, to its
    payment's reversal or the invoice's cancellation...): the roll-forward
    takes it in the period of its first day and out in the period of the
    day after its last, on the line of what ended it, so that the start of
    a period plus its movements is its end to the cent."""
    balances: dict[str, dict[dt.date, list[Decimal]]] = defaultdict(
        lambda: {day: [ZERO, ZERO] for day in days}
    )
    sales: dict[str, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    moves: dict[str, dict[int, RollForward]] = defaultdict(lambda: defaultdict(RollForward))

    def take(rows, currency: str, sign: int, month: str | None = None, amount: str | None = None,
             lines: dict[str, tuple[str, int]] | None = None) -> None:
        for row in rows:
            at = balances[row[currency]]
            for i, day in enumerate(days):
                at[day][0] += sign * (row[f"at{i}"] or ZERO)
                at[day][1] += sign * (row[f"current{i}"] or ZERO)
            if month:
                sales[row[currency]][_as_date(row[month])] += row[amount] or ZERO
            for key, (line, line_sign) in (lines or {}).items():
                for i, _ in enumerate(periods):
                    moved = moves[row[currency]][i]
                    amount_moved = _as_money(row[f"{key}{i}"] or ZERO)
                    setattr(moved, line, getattr(moved, line) + line_sign * amount_moved)

    # An invoice counts from its issue to its cancellation (one cancelled the
    # day it was issued, or before, never counts, and moves nothing).
    lasted = Q(cancelled_on__isnull=True) | Q(cancelled_on__gt=F("issue_date"))
    invoices = (
        scope.of(Invoice.objects.filter(COUNTED))
        .annotate(month=TruncMonth("issue_date"))
        .order_by()
        .values("currency", "month")
        .annotate(
            issued=Sum("total_amount"),
            **_at_sums("total_amount", issued="issue_date", invoice="", moved=uncancelled(), days=days),
            **_moved_in(periods, {
                "invoiced": ("total_amount", lambda p: _in(p, "issue_date") & lasted),
                "cancelled": ("total_amount", lambda p: _in(p, "cancelled_on") & lasted),
            }),
        )
    )
    take(invoices, "currency", +1, month="month", amount="issued",
         lines={"invoiced": ("invoiced", +1), "cancelled": ("cancelled", +1)})
    # A cancellation takes the invoice off the credit sales of the month it was
    # cancelled in, at what it was billed at then, as it leaves the receivables
    # from that day: the months before read as they did, and an invoice raised
    # in error and billed again is one sale, not two.
    cancelled = (
        scope.of(Invoice.objects.filter(status=InvoiceStatus.CANCELLED, cancelled_on__isnull=False))
        .annotate(month=TruncMonth("cancelled_on"))
        .order_by()
        .values("currency", "month")
        .annotate(billed=Sum("total_amount"))
    )
    for row in cancelled:
        sales[row["currency"]][_as_date(row["month"])] -= row["billed"] or ZERO
    # A correction took its amount off the invoice's total on the day its
    # dispute was resolved: before that day the invoice counts at its total
    # as issued. It counts from the invoice's issue to its resolution, or the
    # invoice's cancellation if that came first.
    issued, resolved, ended = F("invoice__issue_date"), F("resolved_on"), F("invoice__cancelled_on")
    kept = Q(invoice__cancelled_on__isnull=True)  # never cancelled
    corrections = (
        scope.of(
            Dispute.objects.filter(
                outcome=DisputeOutcome.CORRECTED_INVOICE,
                status=DisputeStatus.RESOLVED,
                invoice__in=Invoice.objects.filter(COUNTED),
            ),
            currency="invoice__currency",
        )
        .annotate(month=TruncMonth("invoice__issue_date"))
        .order_by()
        .values("invoice__currency", "month")
        .annotate(
            issued=Sum("taken_off_amount"),
            **_at_sums(
                "taken_off_amount",
                issued="invoice__issue_date",
                invoice="invoice__",
                moved=lambda day: Q(resolved_on__gt=day) & uncancelled("invoice__")(day),
                days=days,
            ),
            **_moved_in(periods, {
                "invoiced": ("taken_off_amount", lambda p: _in(p, "invoice__issue_date")
                             & Q(resolved_on__gt=issued) & (kept | Q(invoice__cancelled_on__gt=issued))),
                "corrected": ("taken_off_amount", lambda p: _in(p, "resolved_on") & Q(resolved_on__gt=issued)
                              & (kept | Q(invoice__cancelled_on__gte=resolved))),
                "cancelled": ("taken_off_amount", lambda p: _in(p, "invoice__cancelled_on")
                              & Q(invoice__cancelled_on__gt=issued) & Q(resolved_on__gt=ended)),
            }),
        )
    )
    take(corrections, "invoice__currency", +1, month="month", amount="issued",
         lines={"invoiced": ("invoiced", +1), "corrected": ("corrected", +1), "cancelled": ("cancelled", +1)})
    def taken_off(rows, *, moved: str | Callable[[dt.date], Q], lines: dict, **scoping):
        """What came off the invoices (`amount`, on the day in `moved`), per currency."""
        return (
            scope.of(rows, currency="invoice__currency", **scoping)
            .order_by()
            .values("invoice__currency")
            .annotate(**_at_sums("amount", issued="invoice__issue_date", invoice="invoice__", moved=moved,
                                 days=days),
                      **_moved_in(periods, lines))
        )

    # Every allocation ever made, as it stood each day: from the day it was
    # applied (money on account set against an invoice later: that day, not
    # the day the money came in), and a payment reversed since until the day
    # it was reversed, so a past day's receivables read as they did then.
    # In the roll-forward it counts from that day (or its invoice's issue, if
    # later) to its payment's reversal or its invoice's cancellation,
    # whichever came first: the reversal when both fell on one day.
    begun, reversed_on = F("start"), F("reversal__reversed_on")
    not_reversed_by = {"reversal__isnull": True}
    stood_from = (
        (Q(**not_reversed_by) | Q(reversal__reversed_on__gt=begun))
        & (kept | Q(invoice__cancelled_on__gt=begun))
    )
    paid_or_credited = Allocation.ledger.filter(invoice__in=Invoice.objects.filter(COUNTED)).annotate(
        start=Greatest("applied_on", "invoice__issue_date"))
    take(taken_off(paid_or_credited, moved=lambda day: allocation_stood(day) & uncancelled("invoice__")(day),
                   customer="invoice__customer", lines={
                       "payments": ("amount", lambda p: _in(p, "start") & stood_from
                                    & Q(payment__isnull=False)),
                       "credit_notes": ("amount", lambda p: _in(p, "start") & stood_from
                                        & Q(payment__isnull=True)),
                       "reversed": ("amount", lambda p: _in(p, "reversal__reversed_on")
                                    & Q(reversal__reversed_on__gt=begun)
                                    & (kept | Q(invoice__cancelled_on__gte=reversed_on))),
                       "released": ("amount", lambda p: _in(p, "invoice__cancelled_on")
                                    & Q(invoice__cancelled_on__gt=begun)
                                    & (Q(**not_reversed_by) | Q(reversal__reversed_on__gt=ended))),
                   }),
         "invoice__currency", -1,
         lines={"payments": ("payments", +1), "credit_notes": ("credit_notes", +1),
                "reversed": ("reversed", +1),
                # What a cancelled invoice still owed: its total less what stood against it.
                "released": ("cancelled", -1)})
    write_offs = WriteOff.objects.annotate(start=Greatest("written_off_on", "invoice__issue_date"))
    take(taken_off(write_offs, moved="written_off_on",
                   lines={"written_off": ("amount", lambda p: _in(p, "start"))}),
         "invoice__currency", -1, lines={"written_off": ("written_off", +1)})
    return (
        {currency: {day: tuple(pair) for day, pair in at.items()} for currency, at in balances.items()},
        {currency: dict(months) for currency, months in sales.items()},
        {currency: dict(by_period) for currency, by_period in moves.items()},
    )


def _as_date(value) -> dt.date:
    # TruncMonth of a date is a date on PostgreSQL and may come back as a datetime elsewhere;
    # a date read by hand-written SQL comes back from SQLite as text.
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value.date() if isinstance(value, dt.datetime) else value


# --- What happened in the periods ---------------------------------------------------------


def _in(period: Period, field_name: str) -> Q:
    return Q(**{f"{field_name}__range": (period.start, period.end)})


def _flows(scope: Scope, *, periods: list[Period]) -> dict[str, dict[int, dict[str, Amount]]]:
    """Write-offs, credit notes and disputes opened in each period, per
    currency. Three queries, one per kind, every period in each."""
    first, last = min(p.start for p in periods), max(p.end for p in periods)
    result: dict[str, dict[int, dict[str, Amount]]] = defaultdict(lambda: defaultdict(dict))

    def take(rows, currency: str, kinds: list[str]) -> None:
        for row in rows:
            for i, _ in enumerate(periods):
                for kind in kinds:
                    result[row[currency]][i][kind] = Amount(
                        row[f"{kind}_amount{i}"] or ZERO, row[f"{kind}_count{i}"]
                    )

    def sums(kind: str, amount, day: str, extra: Q | None = None) -> dict:
        out = {}
        for i, p in enumerate(periods):
            when = _in(p, day) if extra is None else _in(p, day) & extra
            out[f"{kind}_amount{i}"] = Sum(amount, filter=when)
            out[f"{kind}_count{i}"] = Count("pk", filter=when)
        return out

    write_offs = (
        scope.of(WriteOff.objects.filter(written_off_on__range=(first, last)))
        .order_by()
        .values("currency")
        .annotate(**sums("write_offs", "amount", "written_off_on"))
    )
    take(write_offs, "currency", ["write_offs"])
    notes = (
        scope.of(CreditNote.objects.filter(issued_on__range=(first, last)))
        .order_by()
        .values("currency")
        .annotate(**sums("credit_notes", "amount", "issued_on"))
    )
    take(notes, "currency", ["credit_notes"])
    ours = Q(reason__in=CAUSED_BY_US)
    disputes = (
        scope.of(Dispute.objects.filter(opened_on__range=(first, last)), currency="invoice__currency")
        .order_by()
        .values("invoice__currency")
        .annotate(
            **sums("disputes", _disputed_amount(), "opened_on"),
            **sums("disputes_ours", _disputed_amount(), "opened_on", ours),
        )
    )
    take(disputes, "invoice__currency", ["disputes", "disputes_ours"])
    return result


def _disputed_amount():
    """What the disputed invoice still owed the day the dispute was opened:
    its total as issued, less what was allocated to it by then (corrections
    resolved by then are already out of its total; a payment reversed since
    counts as it stood that day). Nothing records the amount a customer
    disputes; this is what the dispute held back."""
    allocated = (
        Allocation.ledger.filter(allocation_stood(OuterRef("opened_on")), invoice=OuterRef("invoice"))
        .order_by()
        .values("invoice")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    corrected_since = (
        Dispute.objects.filter(invoice=OuterRef("invoice"), outcome=DisputeOutcome.CORRECTED_INVOICE)
        .filter(Q(pk=OuterRef("pk")) | Q(resolved_on__gt=OuterRef("opened_on")))
        .order_by()
        .values("invoice")
        .annotate(total=Sum("taken_off_amount"))
        .values("total")
    )
    return ExpressionWrapper(
        F("invoice__total_amount")
        + Coalesce(Subquery(corrected_since), Value(ZERO), output_field=MONEY)
        - Coalesce(Subquery(allocated), Value(ZERO), output_field=MONEY),
        output_field=MONEY,
    )


# --- The cash-flow forecast ---------------------------------------------------------------


class DaysFrom(Func):
    """Whole days from a fixed day to the date in an expression (negative before it)."""

    output_field = IntegerField()

    def __init__(self, day: dt.date, expression) -> None:
        super().__init__(expression, Value(day, output_field=DateField()))

    def as_sql(self, compiler, connection, **extra):
        (date_sql, date_params), (day_sql, day_params) = (
            compiler.compile(e) for e in self.source_expressions
        )
        if connection.vendor == "postgresql":
            return f"({date_sql} - {day_sql}::date)", (*date_params, *day_params)
        return (
            f"CAST(ROUND(julianday({date_sql}) - julianday({day_sql})) AS INTEGER)",
            (*date_params, *day_params),
        )


def _week(offset: str) -> ExpressionWrapper:
    """The forecast week (0 = the seven days from today) of a day `offset`
    days from today: -1 before today, FORECAST_WEEKS beyond the last week.

    Arithmetic on the offset, which it reads once: a CASE of the weeks'
    bounds repeated the offset's expression nine times, every one of them
    evaluated and compiled for each open invoice. The databases divide
    integers towards zero, which would put the six days before today into
    week 0: the offset is shifted a week up (and held at a week before today)
    before the division, and the week shifted back after it."""
    week = Value(7)
    shifted = Greatest(F(offset), Value(-7)) + week
    return ExpressionWrapper(
        Least(shifted / week, Value(FORECAST_WEEKS + 1)) - Value(1), output_field=IntegerField()
    )


def _empty_forecast(today: dt.date) -> Forecast:
    return Forecast(
        weeks=[
            ForecastWeek(start=today + dt.timedelta(days=7 * n), end=today + dt.timedelta(days=7 * n + 6))
            for n in range(FORECAST_WEEKS)
        ]
    )


def _forecast(scope: Scope, *, today: dt.date) -> dict[str, Forecast]:
    """Cash expected in each of the next weeks, per currency. Three queries:
    open invoices, open promises, instalments of plans in good standing.

    An open invoice is expected on its due date plus its customer's usual
    lateness (the amount-weighted average days late of what it settled), or,
    under approved extended terms in force, on the day they end; one a
    promise or a plan in good standing covers is expected as the promise or
    the instalments say instead; one under open dispute is not expected at
    all, but for the undisputed rest of one a plan in good standing covers,
    which its instalments stand for. A promise or instalment whose day has passed (within its grace
    period, or it would be broken or missed) is expected in the first week."""
    result: dict[str, Forecast] = defaultdict(lambda: _empty_forecast(today))
    lateness = Greatest(
        Cast(Round(Coalesce("customer__behaviour__weighted_days_late", Value(Decimal("0")))), IntegerField()),
        Value(0),
    )
    # Extended terms a manager approved give the customer a later day to pay
    # by: the invoice is expected the day they end, as a promise's day, not
    # by its old due date plus the customer's usual lateness (lateness
    # against a due date the customer no longer has). Terms on one invoice
    # cover it; terms on the whole account cover what dunning holds for them
    # (models.account_pause_holds: what the account owed when they were
    # granted that falls due before they end). Lifted or ended, they move
    # nothing, and the invoice is read by its due date again. The latest end
    # when several hold.
    terms = DunningPause.objects.active(on=today).filter(
        kind=PauseKind.EXCEPTION, exception__kind=ExceptionKind.EXTENDED_TERMS
    )
    terms_end = Subquery(
        terms.filter(Q(customer=OuterRef("customer_id"), invoice=OuterRef("pk")) | account_pause_holds())
        .order_by("-ends_on")
        .values("ends_on")[:1]
    )
    # Days from today to the due date plus the customer's usual lateness.
    usual_offset = DaysFrom(today, "due_date") + lateness
    # The accounts with terms in force are read once and hashed; only their
    # invoices look their terms up (few accounts have any), the rest of the
    # book is read by its due date without a lookup per invoice.
    expected_offset = Case(
        When(customer_id__in=terms.values("customer_id"),
             then=Coalesce(DaysFrom(today, terms_end), usual_offset)),
        default=usual_offset,
        output_field=IntegerField(),
    )
    # Which open invoices are expected by their due date, and which are
    # disputed, as conditional sums grouped by week alone, rather than a kind
    # per invoice that the rows are grouped by: the database cannot tell how
    # few kinds an expression of each invoice's id has, so it sorted every
    # open invoice to group them (spilling to disk in a large book) where a
    # hash of a few dozen weeks and currencies does. Each list of ids is read
    # once and hashed; a promise or a plan's invoices are its through rows,
    # never null.
    disputed = Q(pk__in=Dispute.objects.filter(status=DisputeStatus.OPEN).values("invoice_id"))
    promised = Q(
        pk__in=Promise.invoices.through.objects.filter(promise__status=PromiseStatus.OPEN).values(
            "invoice_id"
        )
    )
    planned = Q(
        pk__in=PaymentPlan.invoices.through.objects.filter(
            paymentplan__status=PlanStatus.ACTIVE
        ).values("invoice_id")
    )
    # One a promise or a plan covers: its promise or its plan's instalments
    # stand for it. Of one disputed in part, the undisputed rest is expected
    # by its due date (the invoice copy asks for it), the disputed part left out.
    by_due_date = ~promised & ~planned
    # Disputed and promised (no plan): the promise stands for the cash; the
    # invoice is left out whole, not expected twice.
    left_out = Case(When(promised & ~planned, then=F("open_amount")), default=F("disputed_part"),
                    output_field=MONEY)
    invoices = (
        scope.of(with_disputed_part(Invoice.objects.open()))
        .annotate(offset=expected_offset)
        .annotate(week=_week("offset"))
        .order_by()
        .values("currency", "week")
        .annotate(
            amount=Sum("undisputed", filter=by_due_date),
            n=Count("pk", filter=by_due_date & Q(undisputed__gt=0)),
            disputed_amount=Sum(left_out, filter=disputed),
            disputed_n=Count("pk", filter=disputed),
        )
    )
    for row in invoices:
        forecast = result[row["currency"]]
        forecast.disputed.add(row["disputed_amount"], row["disputed_n"])
        if not row["n"]:
            continue
        if row["week"] < 0:
            forecast.overdue_beyond_usual.add(row["amount"], row["n"])
        elif row["week"] >= FORECAST_WEEKS:
            forecast.later += row["amount"]
        else:
            forecast.weeks[row["week"]].invoices += row["amount"]

    promises = (
        scope.of(Promise.objects.filter(status=PromiseStatus.OPEN, amount__gt=F("paid_amount")))
        .annotate(offset=DaysFrom(today, "promised_on"))
        .annotate(week=_week("offset"))
        .order_by()
        .values("currency", "week")
        .annotate(amount=Sum(F("amount") - F("paid_amount")))
    )
    for row in promises:
        forecast = result[row["currency"]]
        if row["week"] >= FORECAST_WEEKS:
            forecast.later += row["amount"]
        else:
            forecast.weeks[max(row["week"], 0)].promises += row["amount"]

    instalments = (
        scope.of(
            Instalment.objects.filter(plan__status=PlanStatus.ACTIVE, status=InstalmentStatus.DUE),
            customer="plan__customer",
            currency="plan__currency",
        )
        .annotate(offset=DaysFrom(today, "due_on"))
        .annotate(week=_week("offset"))
        .order_by()
        .values("plan__currency", "week")
        .annotate(amount=Sum(F("amount") - F("deducted_amount")))
    )
    for row in instalments:
        forecast = result[row["plan__currency"]]
        if row["week"] >= FORECAST_WEEKS:
            forecast.later += row["amount"]
        else:
            forecast.weeks[max(row["week"], 0)].instalments += row["amount"]
    return dict(result)


# --- The aged trial balance -----------------------------------------------------------------

# Each column of the aged trial balance: its name in addresses and its
# heading, the aging's buckets in their order and the disputed apart.
AGED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("not_due", kpi.BUCKETS[0][0]),
    ("late_1_30", kpi.BUCKETS[1][0]),
    ("late_31_60", kpi.BUCKETS[2][0]),
    ("late_61_90", kpi.BUCKETS[3][0]),
    ("late_over_90", kpi.BUCKETS[4][0]),
    ("disputed", DISPUTED),
)
AGED_KEYS = {label: key for key, label in AGED_COLUMNS}


@dataclass(frozen=True)
class AgedAccount:
    """One account's open amounts in one currency, by bucket (AGED_COLUMNS' order)."""

    customer_id: int
    account_number: str
    name: str
    currency: str
    collector: str
    segment: str
    buckets: list[Decimal]
    total: Decimal
    invoices: int
    oldest_due: dt.date


def _aged_bounds(day: dt.date) -> Iterator[tuple[str, dt.date | None, dt.date | None]]:
    """Each bucket's column with the due dates that bound it at the end of
    `day`: due on `since` or later (None: however long ago), and not on
    `before` or later (None: however far ahead). Both the ORM's conditions
    (_aged_conditions) and the past day's SQL (_aged_conditions_sql) read them."""
    before = None
    for (key, _), (_, last) in zip(AGED_COLUMNS, kpi.BUCKETS, strict=False):
        # days late = day − due ≤ last  ⇔  due ≥ day − last
        since = None if last is None else day - dt.timedelta(days=last)
        yield key, since, before
        before = since  # the buckets nest: what is due since `since` holds all the newer ones


def _aged_conditions(day: dt.date, *, disputed: Q) -> dict[str, Q]:
    """Which invoices open at the end of `day` each column sums: the aging's
    buckets by days late that day (as in `_aging`), and those `disputed` in
    a column of its own; the buckets take what is not disputed, that column
    the part disputed (aged_balances)."""
    conditions = {
        key: (Q(due_date__gte=since) if since else Q()) & (~Q(due_date__gte=before) if before else Q())
        for key, since, before in _aged_bounds(day)
    }
    conditions["disputed"] = disputed
    return conditions


def _ledger_on(day: dt.date) -> dict[str, QuerySet]:
    """What the ledger held against each invoice at the end of a past `day`,
    a row per invoice it touched (`invoice_id`, `amount_sum`): the allocations
    that stood that day (a payment reversed since counts until its reversal's
    day; money on account or a credit note applied since does not count yet,
    whatever day it counts from), what a correction
    resolved since took off its total, a write-off made by then, and what the
    dispute open that day (opened by then, not resolved by then) held back."""
    return {
        # allocation_stood(day), with the payments reversed since as a list
        # (PostgreSQL hashes it) rather than joined to every allocation one at a
        # time, which on a book of 1,000,000 invoices was a third of the statement.
        "allocated": Allocation.ledger.filter(
            Q(reversal__isnull=True)
            | Q(reversal_id__in=PaymentReversal.objects.filter(reversed_on__gt=day).values("pk")),
            applied_on__lte=day,
            invoice__isnull=False,
        )
        .order_by()
        .values("invoice_id")
        .annotate(amount_sum=Sum("amount")),
        "corrected": Dispute.objects.filter(
            outcome=DisputeOutcome.CORRECTED_INVOICE, status=DisputeStatus.RESOLVED, resolved_on__gt=day
        )
        .order_by()
        .values("invoice_id")
        .annotate(amount_sum=Sum("taken_off_amount")),
        "written_off": WriteOff.objects.filter(written_off_on__lte=day)
        .order_by()
        .values("invoice_id")
        .annotate(amount_sum=Sum("amount")),
        # One dispute at a time is open on an invoice (dispute_one_open_per_invoice):
        # the latest opened by the day, should dates overlap, rather than two rows.
        "disputed": Dispute.objects.filter(opened_on__lte=day)
        .filter(Q(resolved_on__isnull=True) | Q(resolved_on__gt=day))
        .annotate(latest=Window(RowNumber(), partition_by=F("invoice_id"),
                                order_by=[F("opened_on").desc(), F("pk").desc()]))
        .filter(latest=1)
        .order_by()
        .values("invoice_id", amount_sum=F("disputed_amount")),
    }


def _open_on_sql(scope: Scope, *, day: dt.date, bucket: str | None) -> tuple[str, list]:
    """The aged trial balance at the end of a past `day`, as one statement
    PostgreSQL and SQLite both run, unordered: invoices as they stood then,
    rebuilt from the ledger as the Numbers page's receivables at a date are
    (_ledger), so the two agree — issued by then and not cancelled by then, at their
    total as issued (plus what a correction resolved since took off), less
    the allocations that stood that day and a write-off made by then. `owed`
    is what each still owed; only those owing something count. What a
    dispute open that day held back of it is its `disputed_part`, the rest
    `undisputed`; the buckets by days late that day sum the one, the
    disputed column the other.

    Each invoice's figures are worked out once, in a derived table joined to
    the ledger's sums per invoice (_ledger_on): written as annotations, the
    ORM repeats the four look-ups in every column's sum and the filter, some
    thirty per invoice, and the page waited seconds on a book of 100,000."""
    connection = connections[Invoice.objects.db]
    invoices = (
        # One the ERP cancelled since still counts, as it stood, as in _ledger.
        scope.of(Invoice.objects.filter(COUNTED, uncancelled()(day), issue_date__lte=day))
        .order_by()
        .values("id", "customer_id", "currency", "due_date", "total_amount")
    )
    sql, params = invoices.query.sql_with_params()
    joins, params = [f"({sql}) i"], list(params)
    for name, rows in {**_ledger_on(day), "changed": due_dates_then(day)}.items():
        sql, more = rows.query.sql_with_params()
        joins.append(f"LEFT JOIN ({sql}) {name} ON {name}.invoice_id = i.id")
        params.extend(more)
    # Rounded to the cent: SQLite adds money as floating point, and an invoice
    # paid in two parts (250.30 = 100.10 + 150.20) would owe 2.8e-14 and count.
    owed = (
        "ROUND(i.total_amount + COALESCE(corrected.amount_sum, 0) - COALESCE(allocated.amount_sum, 0)"
        " - COALESCE(written_off.amount_sum, 0), 2)"
    )
    # Days late by the due date the invoice had that day: one the ERP has moved since
    # would otherwise read as late, or not yet due, by a date it did not have then.
    figures = (
        "SELECT i.id, i.customer_id, i.currency, COALESCE(changed.due_then, i.due_date) AS due_date,"
        f" {owed} AS owed, COALESCE(disputed.amount_sum, 0) AS held_back"
        f" FROM {' '.join(joins)}"
    )
    # The disputed part: what the dispute held back, at most what was owed; the rest undisputed.
    parts = (
        "SELECT f.*, CASE WHEN held_back < owed THEN held_back ELSE owed END AS disputed_part,"
        " CASE WHEN owed > held_back THEN owed - held_back ELSE 0 END AS undisputed"
        f" FROM ({figures}) f WHERE owed > 0"
    )
    sums, sum_params = {}, []
    conditions = _aged_conditions_sql(day, connection=connection)
    for key, (condition, condition_params) in conditions.items():
        amount = "disputed_part" if key == "disputed" else "undisputed"
        sums[key] = f"COALESCE(SUM(CASE WHEN {condition} THEN {amount} END), 0)"
        sum_params.extend(condition_params)
    select = ", ".join(
        ["customer_id", "currency"]
        + [f"{expression} AS {key}" for key, expression in sums.items()]
        + ["SUM(owed) AS total", "COUNT(*) AS invoices", "MIN(due_date) AS oldest_due"]
    )
    # By account and currency alone: the account's name, segment and collector
    # are joined to the few rows this leaves (AgedBalance), not sorted with
    # every invoice, and counting the rows needs none of them.
    sql = f"SELECT {select} FROM ({parts}) p GROUP BY customer_id, currency"
    params = sum_params + params
    if bucket:
        # PostgreSQL reads no column alias in HAVING: the bucket's sum again.
        sql += f" HAVING {sums[bucket]} > 0"
        params += conditions[bucket][1]
    return sql, params


def _aged_conditions_sql(day: dt.date, *, connection) -> dict[str, tuple[str, list]]:
    """_aged_conditions as SQL over a column `due_date`, for _open_on_sql;
    the disputed column takes every invoice's disputed part (nothing without
    a dispute)."""
    conditions = {}
    for key, since, before in _aged_bounds(day):
        parts = [(sql, connection.ops.adapt_datefield_value(bound))
                 for sql, bound in (("due_date >= %s", since), ("NOT due_date >= %s", before)) if bound]
        conditions[key] = (" AND ".join(sql for sql, _ in parts) or "1 = 1", [param for _, param in parts])
    conditions["disputed"] = ("1 = 1", [])
    return conditions


class AgedBalance:
    """The rows of a past day's aged trial balance (_open_on_sql), ranked as
    aged_balances says, read as a page of a Paginator or streamed into a
    file as today's QuerySet is: count(), a slice, iterator(chunk_size)."""

    def __init__(self, sql: str, params: list, *, ranked_by: str) -> None:
        # Written into the statement as a column's name: only one of the balance's own.
        if ranked_by not in {*dict(AGED_COLUMNS), "total"}:
            raise ValueError(f"No column {ranked_by!r} in the aged trial balance.")
        self.sql, self.params = sql, params
        q = connections[Invoice.objects.db].ops.quote_name
        accounts, account_params = (
            Customer.objects.order_by()
            .values(
                "id", "account_number", "name", "segment",
                collector_first=F("collector__first_name"),
                collector_last=F("collector__last_name"),
                collector_username=F("collector__username"),
            )
            .query.sql_with_params()
        )
        columns = [
            ("g.customer_id", "customer_id"),
            ("g.currency", "currency"),
            ("c.account_number", "customer__account_number"),
            ("c.name", "customer__name"),
            ("c.segment", "customer__segment"),
            ("c.collector_first", "customer__collector__first_name"),
            ("c.collector_last", "customer__collector__last_name"),
            ("c.collector_username", "customer__collector__username"),
            *((f"g.{key}", key) for key, _ in AGED_COLUMNS),
            ("g.total", "total"),
            ("g.invoices", "invoices"),
            ("g.oldest_due", "oldest_due"),
        ]
        self.rows_sql = (
            f"SELECT {', '.join(f'{column} AS {q(key)}' for column, key in columns)}"
            f" FROM ({sql}) g JOIN ({accounts}) c ON c.id = g.customer_id"
            f" ORDER BY g.currency, g.{ranked_by} DESC, c.name, g.customer_id"
        )
        self.rows_params = [*params, *account_params]
        self._totals: list[AgedTotal] | None = None

    @property
    def _connection(self):
        return connections[Invoice.objects.db]

    def totals(self) -> list[AgedTotal]:
        """Its totals per currency (aged_totals), read once."""
        if self._totals is None:
            self._totals = _aged_totals_of(self.sql, self.params)
        return self._totals

    def count(self) -> int:
        # The accounts its totals count: the page shows both, and each reading of
        # the statement rebuilds every invoice issued by the day from the ledger.
        return sum(total.accounts for total in self.totals())

    def __getitem__(self, page: slice) -> list[dict]:
        if not isinstance(page, slice) or page.step is not None or page.start is None or page.stop is None:
            raise TypeError("An aged balance is read a page at a time, as [start:stop].")
        with self._connection.cursor() as cursor:
            cursor.execute(f"{self.rows_sql} LIMIT %s OFFSET %s",
                           [*self.rows_params, page.stop - page.start, page.start])
            names = [column[0] for column in cursor.description]
            return [self._row(names, values) for values in cursor.fetchall()]

    def __iter__(self) -> Iterator[dict]:
        return self.iterator()

    def iterator(self, chunk_size: int = 2000) -> Iterator[dict]:
        # A cursor on the server, as QuerySet.iterator() takes: the whole book's file
        # is never held in memory at once.
        cursor = self._connection.chunked_cursor()
        try:
            cursor.execute(self.rows_sql, self.rows_params)
            # Read once: the driver builds the description anew each time it is asked.
            names = [column[0] for column in cursor.description]
            while chunk := cursor.fetchmany(chunk_size):
                yield from (self._row(names, values) for values in chunk)
        finally:
            cursor.close()

    @staticmethod
    def _row(names: list[str], values) -> dict:
        row = dict(zip(names, values, strict=True))
        # SQLite hands back sums as floats and dates as text; as Django's fields read them.
        for key in [*dict(AGED_COLUMNS), "total"]:
            row[key] = _as_money(row[key])
        row["oldest_due"] = _as_date(row["oldest_due"])
        return row


def _as_money(value) -> Decimal:
    if isinstance(value, float):
        return decimal.Context(prec=15).create_decimal_from_float(value)
    return Decimal(value)


def aged_balances(
    scope: Scope, *, today: dt.date, on: dt.date | None = None, bucket: str | None = None
) -> QuerySet | AgedBalance:
    """The aged trial balance: each account's open invoices summed by bucket,
    a row per account and currency, with its collector and segment. One
    query, grouped in the database, whatever the size of the book.

    Today's (`on` None or today) from the open amounts as they stand; a past
    day's (`on`) from the ledger as it stood at the end of that day, by days
    late then (_open_on_sql), adding up to the Numbers page's receivables at
    that day.

    Ranked within each currency (amounts in different currencies cannot be
    ranked against each other), the currencies by code as on the Numbers
    page: by the open total, or, given a `bucket`, only the accounts with
    money in it, by what they have in it; biggest first. Rows are dicts;
    `aged_accounts` reads them."""
    if on is not None and on < today:
        sql, params = _open_on_sql(scope, day=on, bucket=bucket)
        return AgedBalance(sql, params, ranked_by=bucket or "total")
    day = today
    invoices = with_disputed_part(Invoice.objects.open()).annotate(owed=F("open_amount"))
    # The open disputes' invoices, once per query (PostgreSQL hashes the
    # list), rather than a lookup per invoice and per column.
    disputed = Q(pk__in=Dispute.objects.filter(status=DisputeStatus.OPEN).values("invoice_id"))
    # The buckets sum what is not disputed, the disputed column the part
    # disputed: an invoice disputed in part has money in both.
    sums = {
        key: Coalesce(Sum("disputed_part" if key == "disputed" else "undisputed", filter=when), Value(ZERO),
                      output_field=MONEY)
        for key, when in _aged_conditions(day, disputed=disputed).items()
    }
    rows = (
        scope.of(invoices)
        .order_by()
        .values(
            "customer_id",
            "currency",
            "customer__account_number",
            "customer__name",
            "customer__segment",
            "customer__collector__first_name",
            "customer__collector__last_name",
            "customer__collector__username",
        )
        .annotate(**sums, total=Sum("owed"), invoices=Count("pk"), oldest_due=Min("due_date"))
    )
    ranked_by = "total"
    if bucket:
        rows = rows.filter(**{f"{bucket}__gt": 0})
        ranked_by = bucket
    return rows.order_by("currency", F(ranked_by).desc(), "customer__name", "customer_id")


def aged_accounts(rows) -> list[AgedAccount]:
    return [
        AgedAccount(
            customer_id=row["customer_id"],
            account_number=row["customer__account_number"],
            name=row["customer__name"],
            currency=row["currency"],
            collector=name_of(
                row["customer__collector__first_name"],
                row["customer__collector__last_name"],
                row["customer__collector__username"],
            ),
            segment=Segment(row["customer__segment"]).label,
            # In the currency's places: SQLite sums to ten, and yen have none.
            buckets=[quantize(row[key], row["currency"]) for key, _ in AGED_COLUMNS],
            total=quantize(row["total"], row["currency"]),
            invoices=row["invoices"],
            oldest_due=row["oldest_due"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class AgedTotal:
    """One currency's line under the aged trial balance: its columns, total
    open, accounts and invoices, summed over every account it holds."""

    currency: str
    buckets: list[Decimal]
    total: Decimal
    accounts: int
    invoices: int


def aged_totals(rows: QuerySet | AgedBalance) -> list[AgedTotal]:
    """The totals per currency of an aged trial balance (aged_balances, today's
    or a past day's, with its choices), of every account in it and not only a
    page's: what a month end is tied to the ledger by. One statement, summing
    the balance's own rows, so the totals are those rows' to the cent; a
    past day's, none more once its page is counted (AgedBalance.count)."""
    if isinstance(rows, AgedBalance):
        return rows.totals()
    return _aged_totals_of(*rows.order_by().query.sql_with_params())


def _aged_totals_of(sql: str, params) -> list[AgedTotal]:
    connection = connections[Invoice.objects.db]
    q = connection.ops.quote_name
    keys = [*dict(AGED_COLUMNS), "total", "invoices"]
    select = ", ".join([q("currency"), *(f"SUM(g.{q(key)})" for key in keys), "COUNT(*)"])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {select} FROM ({sql}) g GROUP BY {q('currency')} ORDER BY {q('currency')}",
                       params)
        found = cursor.fetchall()
    totals = []
    for currency, *sums, accounts in found:
        *amounts, invoices = sums
        # In the currency's places, as each row is (aged_accounts): SQLite sums floats.
        money = [quantize(_as_money(amount), currency) for amount in amounts]
        totals.append(AgedTotal(currency=currency, buckets=money[:-1], total=money[-1], accounts=accounts,
                                invoices=int(invoices)))
    return totals


@dataclass(frozen=True)
class OnAccount:
    """Money on account at the end of a day, in one currency: what payments
    and credit notes had in by then and was not yet set against an invoice or
    a charge. The ledger's receivables are the open invoices less this."""

    currency: str
    payments: Decimal
    credit_notes: Decimal

    @property
    def total(self) -> Decimal:
        return self.payments + self.credit_notes


def on_account(scope: Scope, *, day: dt.date) -> list[OnAccount]:
    """Money on account at the end of `day`, per currency, the currencies by
    code as the aged trial balance's: payments received by then and not
    taken back by the bank by then, and credit notes issued by then, less
    what of them was applied by then (Allocation.applied_on). Money applied
    after the day was on account that day, whenever it is read: a month end
    shows what it showed. One query: what came in and what of it was applied,
    summed apart per currency rather than a look-up of its allocations per
    payment, which a book of many payments would wait on."""
    # A payment the bank took back by then was not on account (nor applied) that day.
    stood = Q(reversal__isnull=True) | Q(reversal__reversed_on__gt=day)
    payments = Payment.objects.filter(stood, received_on__lte=day)
    notes = CreditNote.objects.filter(issued_on__lte=day)
    parts = [
        ("paid", scope.of(payments), "currency"),
        ("credited", scope.of(notes), "currency"),
        ("paid_applied", scope.of(Allocation.ledger.filter(applied_on__lte=day, payment__in=payments),
                                  customer="payment__customer", currency="payment__currency"),
         "payment__currency"),
        ("credited_applied", scope.of(Allocation.ledger.filter(applied_on__lte=day, credit_note__in=notes),
                                      customer="credit_note__customer", currency="credit_note__currency"),
         "credit_note__currency"),
    ]
    sums = [
        rows.order_by().values(in_currency=F(currency)).annotate(part=Value(name), total=Sum("amount"))
        .values_list("in_currency", "part", "total")
        for name, rows, currency in parts
    ]
    found: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for currency, part, total in sums[0].union(*sums[1:], all=True):
        found[currency][part] += _as_money(total or ZERO)
    result = []
    for currency, got in sorted(found.items()):
        # In the currency's places: SQLite sums to ten.
        paid = quantize(got["paid"] - got["paid_applied"], currency)
        credited = quantize(got["credited"] - got["credited_applied"], currency)
        if paid or credited:
            result.append(OnAccount(currency, paid, credited))
    return result


def currencies_in_use() -> list[str]:
    """The currencies invoices are in, for the page's choice of one."""
    return list(Invoice.objects.order_by("currency").values_list("currency", flat=True).distinct())


def book_begins() -> dt.date | None:
    """The day the first invoice was issued: the earliest day a balance can be as of."""
    return Invoice.objects.aggregate(first=Min("issue_date"))["first"]
