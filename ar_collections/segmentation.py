"""What kind of payer a customer is, with the reason in words.

Pure rules over a customer's payment facts: no database, no settings. The
thresholds are one dataclass so a manager-facing editor can tune them later.
Rules are tried in order; the first that fits decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from arcrm.money import format_money

NEW = "new"
PROMPT = "prompt"
OCCASIONAL_SLIP = "occasional_slip"
SYSTEMATIC_LATE = "systematic_late"
DISTRESSED = "distressed"
SPECIAL_BOND = "special_bond"


@dataclass(frozen=True)
class Facts:
    special_bond: str
    months_served: int
    invoices_settled: int
    invoices_settled_late: int
    avg_days_late: Decimal
    last_days_late: int | None
    avg_days_late_90d: Decimal | None
    avg_days_late_365d: Decimal | None
    overdue_invoices: int
    max_days_overdue: int
    open_amount: Decimal
    overdue_amount: Decimal
    # Open in the account's currency and overdue by Rules.distressed_days_overdue or more.
    old_overdue_amount: Decimal
    currency: str
    broken_promises: int = 0


@dataclass(frozen=True)
class Rules:
    # Fewer settled invoices or months than this and history cannot tell us much.
    min_settled_invoices: int = 4
    min_months_served: int = 6
    # Distressed: old debt making up most of what is open ...
    distressed_days_overdue: int = 60
    distressed_overdue_share: Decimal = Decimal("0.5")
    # ... or paying markedly slower lately than over the year ...
    distressed_recent_days_late: Decimal = Decimal("30")
    distressed_slowdown_days: Decimal = Decimal("15")
    # ... or promises broken again and again.
    distressed_broken_promises: int = 2
    # Systematic: most invoices late, and those late by more than a lost-invoice slip.
    systematic_share_late: Decimal = Decimal("0.5")
    systematic_avg_days_late: Decimal = Decimal("7")


@dataclass(frozen=True)
class Verdict:
    segment: str
    reason: str


def classify(facts: Facts, rules: Rules = Rules()) -> Verdict:
    if facts.special_bond.strip():
        return Verdict(SPECIAL_BOND, f"Special bond: {facts.special_bond.strip()}"[:300])

    distressed = _distress(facts, rules)
    if distressed:
        return Verdict(DISTRESSED, distressed)

    if (not facts.invoices_settled or facts.invoices_settled < rules.min_settled_invoices
            or facts.months_served < rules.min_months_served):
        return Verdict(
            NEW,
            f"Customer for {_count(facts.months_served, 'month')} with "
            f"{_count(facts.invoices_settled, 'settled invoice')}; too little history to judge.",
        )

    on_time = facts.invoices_settled - facts.invoices_settled_late
    share_late = Decimal(facts.invoices_settled_late) / Decimal(facts.invoices_settled)
    paid = f"paid {on_time} of {facts.invoices_settled} invoices on time"

    # avg_days_late counts the invoices paid on time as 0 days: the late ones'
    # own average is what tells a habit from a lost invoice.
    when_late = (facts.avg_days_late * facts.invoices_settled / facts.invoices_settled_late
                 if facts.invoices_settled_late else Decimal("0"))
    if share_late >= rules.systematic_share_late and when_late >= rules.systematic_avg_days_late:
        return Verdict(
            SYSTEMATIC_LATE,
            f"Paid {facts.invoices_settled_late} of {facts.invoices_settled} invoices late, "
            f"those {_days(when_late)} late on average.",
        )
    if facts.invoices_settled_late:
        last = (
            f"; last one {_days(facts.last_days_late)} late"
            if facts.last_days_late
            else "; the last one on time"
        )
        return Verdict(OCCASIONAL_SLIP, f"{paid.capitalize()}{last}.")
    return Verdict(PROMPT, f"{paid.capitalize()}.")


def _distress(facts: Facts, rules: Rules) -> str | None:
    if facts.broken_promises >= rules.distressed_broken_promises:
        return f"Broke {facts.broken_promises} promises to pay."
    # The old debt itself must be most of what is open: one small invoice long
    # overdue beside a large one due yesterday is a slip, not distress.
    if (
        facts.max_days_overdue >= rules.distressed_days_overdue
        and facts.open_amount > 0
        and facts.old_overdue_amount / facts.open_amount >= rules.distressed_overdue_share
    ):
        return (
            f"{format_money(facts.old_overdue_amount, facts.currency)} of "
            f"{format_money(facts.open_amount, facts.currency)} open is {rules.distressed_days_overdue} "
            "days or more past due; "
            f"the oldest {facts.max_days_overdue} days."
        )
    recent, year = facts.avg_days_late_90d, facts.avg_days_late_365d
    if (
        recent is not None
        and year is not None
        and recent >= rules.distressed_recent_days_late
        and recent - year >= rules.distressed_slowdown_days
    ):
        return (
            f"Paying {_days(recent)} late over the last 90 days against {_days(year)} "
            "over the year."
        )
    return None


def _days(value: Decimal | int | None) -> str:
    number = round(Decimal(value or 0))
    return _count(number, "day")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
