"""Dunning coming up: what the nightly runs would do over the next days if
nobody paid, replied or was paused meanwhile, with the ladders as they are
or with a policy's days tried otherwise (nothing saved).

The state of every account is read in a fixed number of set-based queries
(its eligible invoices, its open cycle's stand, its last contact, the
invoice copies it was sent, the steps its cycle took), whatever the number
of accounts; the days are then projected in Python with the planner's own
rules (cycle_ladder, Ladder.next_after, waits_for, step_due_on,
above_minimum, planned_pay_by), a step taken on one day feeding the next.
What cannot be followed this way is said in APPROXIMATIONS, which the page
shows.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Exists, Max, OuterRef, Prefetch, Q, Subquery, prefetch_related_objects

from ar_collections.channels import INTERNAL_STEPS, route_for
from ar_collections.dunning import (
    CONTACTED_ON,
    CONTACTS,
    CYCLE_COLUMNS,
    CYCLE_STAND,
    DECLINED,
    FOR_A_MANAGER,
    HOLIDAYS_LOOK_BACK,
    Ladder,
    above_minimum,
    copies_told,
    cycle_ladder,
    cycles_over,
    decision_waited_until,
    declined_in,
    invoices_held_through,
    planned_pay_by,
    requests_holding,
    step_due_on,
    steps_in_force,
    waits_for,
)
from ar_collections.models import (
    Channel,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    Holiday,
    Invoice,
    InvoiceStatus,
    StepAction,
)
from arcrm.money import ZERO
from arcrm.text import person_name
from customers.models import Contact, Customer

DAY_CHOICES = (7, 14, 30)
DEFAULT_DAYS = 7

# What the projection cannot know or does not follow, in the page's words.
APPROXIMATIONS = (
    "Nobody pays, replies, disputes or promises anything, and no new invoice is issued.",
    "Pauses stay as they are today: one that ends within these days releases what it holds the day "
    "after it ends, and none starts meanwhile. A payment plan ends with its first instalment still "
    "due: nobody paying it, the morning's check breaks the plan the day after its grace days, and "
    "dunning resumes that night.",
    "Each step is taken as carried out on its day: reviews and approvals given, e-mails sent and "
    "letters posted that same day. A step already waiting today for a review, an approval, the mail "
    "server or the print queue is shown holding its account back for the whole time, as nobody can "
    "say when it will be done.",
    "A letter's pay-by date counts from the day it is planned, as for an e-mail (an office holiday "
    "that puts off its posting is not followed).",
    "Calls go to each account's collector (a stand-in covering an absent collector is not shown); "
    "channels follow today's contacts and their absences on each day.",
)


@dataclass(frozen=True)
class Planned:
    """One step a run would plan on one day for one account."""

    customer: Customer
    step: DunningStep
    channel: str
    amounts: dict[str, Decimal]
    # Queued for a collector's review first (the policy does not send on its own).
    for_review: bool

    @property
    def channel_label(self) -> str:
        return Channel(self.channel).label

    @property
    def what(self) -> str:
        """What the step does, in a manager's words."""
        if self.channel in (Channel.EMAIL, Channel.LETTER):
            written = "e-mail" if self.channel == Channel.EMAIL else "letter"
            if self.for_review:
                return f"a reminder {written} is written for a collector's review"
            return f"a reminder {written} goes to the customer"
        if self.channel == Channel.PHONE:
            return "a call to the customer goes on the collector's list"
        return f"a manager is asked to decide on a step ({self.step.get_action_display()})"

    @property
    def kind(self) -> str:
        """The column the step counts in: a manager's step by its action, else its channel."""
        if self.step.action in FOR_A_MANAGER:
            return self.step.action
        return self.channel


# The day table's columns: (kind, heading), in the order a manager reads them.
KINDS = (
    (Channel.EMAIL, "E-mails"),
    (Channel.LETTER, "Letters to post"),
    (Channel.PHONE, "Call tasks"),
    (StepAction.MANAGER_REVIEW, "Manager reviews"),
    (StepAction.CREDIT_HOLD, "Credit holds"),
    (StepAction.SWITCH_TO_COD, "Switches to C.O.D."),
)


@dataclass
class Day:
    day: dt.date
    steps: list[Planned] = field(default_factory=list)

    @property
    def counts(self) -> list[tuple[str, str, int]]:
        """(kind, heading, how many) for every column, 0 included."""
        counted = Counter(p.kind for p in self.steps)
        return [(kind, heading, counted[kind]) for kind, heading in KINDS]

    @property
    def calls_by_collector(self) -> list[tuple[str, int]]:
        counted = Counter(_collector_name(p.customer) for p in self.steps if p.kind == Channel.PHONE)
        return sorted(counted.items())

    @property
    def for_review(self) -> int:
        return sum(p.for_review for p in self.steps)

    @property
    def money(self) -> list[tuple[str, Decimal]]:
        """What the day's steps cover, per currency (never converted)."""
        totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for planned in self.steps:
            for currency, amount in planned.amounts.items():
                totals[currency] += amount
        return sorted(totals.items())

    @property
    def by_step(self) -> list[tuple[DunningStep, int]]:
        """Each step taken that day with how many accounts, in ladder order."""
        counted = Counter(p.step for p in self.steps)
        return sorted(counted.items(), key=lambda item: (item[0].policy.name, item[0].position))


def _collector_name(customer: Customer) -> str:
    return person_name(customer.collector) if customer.collector else "No collector"


@dataclass
class _Account:
    """What the projection needs of one account, as it stands before the first day."""

    customer: Customer
    # Open: (due date, currency, asked amount, the last day a pause holds it or None).
    invoices: list[tuple[dt.date, str, Decimal, dt.date | None]]
    stand: dict | None  # the open cycle's CYCLE_STAND figures; None without one
    cycle_id: int | None
    last_contact: dt.date | None
    copy: tuple[dt.date, dt.date] | None
    taken: set[tuple[str, int]]
    # The last night a request waiting for a manager holds its next step
    # (dunning.requests_holding), or None.
    waits_through: dt.date | None = None


@dataclass(frozen=True)
class Book:
    """The accounts' state, read once, to project under one or more ladders."""

    first_day: dt.date
    accounts: list[_Account]
    holidays: frozenset[dt.date] = frozenset()
    # The accounts read (a Q on customer_id): all of them, or those book_read was given.
    scope: Q = field(default_factory=Q)


def first_day(*, today: dt.date) -> dt.date:
    """The first night still to come: today unless today's run has started."""
    if DunningRun.objects.filter(run_date=today).exists():
        return today + dt.timedelta(days=1)
    return today


def book_read(*, today: dt.date, ladders: dict[str, Ladder],
              customer_ids: Collection[int] | None = None) -> Book:
    """Every account with something open (or those of `customer_ids` that
    have), its eligible invoices and where its cycle stands, in a fixed number
    of queries (`ladders`: their steps get their fees, which decide an
    escalation's channel)."""
    first = first_day(today=today)
    ids = None if customer_ids is None else list(customer_ids)
    scope = Q() if ids is None else Q(customer_id__in=ids)
    steps = [step for ladder in ladders.values() for step in ladder.steps]
    # An escalation's channel depends on whether the step charges a fee (route_for).
    prefetch_related_objects(steps, "fees")
    owing = Invoice.objects.filter(customer=OuterRef("pk"), status=InvoiceStatus.OPEN, open_amount__gt=0)
    # The latest request holding the account's next step on the first night
    # (requests_holding), read with the accounts: it holds it for some nights more.
    asked, plans = requests_holding(on=first)
    customers = {
        c.pk: c for c in Customer.objects.filter(Exists(owing), Q() if ids is None else Q(pk__in=ids))
        .annotate(asked_on=Subquery(asked.filter(customer=OuterRef("pk")).order_by("-requested_on")
                                    .values("requested_on")[:1]),
                  proposed_on=Subquery(plans.filter(customer=OuterRef("pk")).order_by("-proposed_on")
                                       .values("proposed_on")[:1]))
        .select_related("collector").prefetch_related(
            Prefetch("contacts", queryset=Contact.objects.prefetch_related("absences__delegate"))
        ).order_by("name", "pk")
    }
    invoices: dict[int, list] = defaultdict(list)
    # Held ones too, with the day their pauses end: each is chased from the day after.
    for customer_id, due_date, currency, asked, held_through in (
        invoices_held_through(on=first).filter(scope).order_by("customer_id", "due_date", "pk")
        .values_list("customer_id", "due_date", "currency", "asked_amount", "held_through")
    ):
        invoices[customer_id].append((due_date, currency, asked, held_through))
    stands = {
        row["customer_id"]: row for row in DunningCycle.objects.filter(scope, closed_on__isnull=True)
        .values("pk", "customer_id", "cause", *CYCLE_COLUMNS).annotate(**CYCLE_STAND)
    }
    last_contact = dict(
        DunningAction.objects.filter(scope, CONTACTS).order_by().values("customer_id")
        .annotate(last=Max(CONTACTED_ON)).values_list("customer_id", "last")
    )
    # The office's holidays, for the pay-by dates, as the planner reads them.
    holidays = Holiday.objects.days_after(first - HOLIDAYS_LOOK_BACK)
    copies = copies_told(scope, on=first, holidays=holidays)
    taken: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for cycle_id, segment, position in DunningAction.objects.filter(
        scope, cycle__closed_on__isnull=True
    ).values_list("cycle_id", "step__policy__segment", "step__position"):
        taken[cycle_id].add((segment, position))
    accounts = []
    for customer_id, customer in customers.items():
        stand = stands.get(customer_id)
        cycle_id = stand["pk"] if stand else None
        accounts.append(_Account(
            customer=customer, invoices=invoices.get(customer_id, []), stand=stand, cycle_id=cycle_id,
            last_contact=last_contact.get(customer_id), copy=copies.get(customer_id),
            taken=taken.get(cycle_id, set()),
            waits_through=max((decision_waited_until(d) for d in (customer.asked_on, customer.proposed_on)
                               if d), default=None),
        ))
    return Book(first_day=first, accounts=accounts, holidays=frozenset(holidays), scope=scope)


def project(book: Book, ladders: dict[str, Ladder], *, days: int) -> list[Day]:
    """The steps each of the next `days` nightly runs would plan (one query:
    the cycles the first run closes depend on the ladders' reach)."""
    over = frozenset(cycles_over(book.scope, ladders, on=book.first_day).values_list("pk", flat=True))
    window = [Day(book.first_day + dt.timedelta(days=n)) for n in range(days)]
    for account in book.accounts:
        for day, planned in _account_steps(account, ladders, days=[d.day for d in window], over=over,
                                           holidays=book.holidays):
            window[(day - book.first_day).days].steps.append(planned)
    return window


def next_run_steps(*, today: dt.date, ladders: dict[str, Ladder],
                   customer_ids: Collection[int]) -> tuple[dt.date, dict[int, Planned]]:
    """The night of the next run, and the step it would plan for each of these
    accounts that it acts on, as Coming up projects it: what a manager should
    know before a request about the account waits past that night (only an
    approved one pauses dunning). Reads those accounts alone."""
    if not customer_ids:
        return first_day(today=today), {}
    book = book_read(today=today, ladders=ladders, customer_ids=customer_ids)
    [night] = project(book, ladders, days=1)
    return night.day, {planned.customer.pk: planned for planned in night.steps}


def _fresh_stand() -> dict:
    """A cycle opened by the run: no step yet."""
    return {"position": None, "tone": None, "policy_low": None, "policy_high": None, "pay_by": None,
            "pending": 0, "unsent": 0, "unposted": 0, **dict.fromkeys(DECLINED.values(), 0), "cause": "",
            **dict.fromkeys(CYCLE_COLUMNS)}


def _account_steps(account: _Account, ladders: dict[str, Ladder], *, days: list[dt.date], over: frozenset,
                   holidays: frozenset[dt.date]):
    """(day, Planned) for each step the runs of `days` would plan for the account."""
    customer = account.customer
    # The planner finds an account's invoices in reach with its segment's ladder.
    own = ladders.get(customer.segment)
    if own is None or not account.invoices:
        return
    stand, taken, copy_told = account.stand, set(account.taken), account.copy
    if stand is not None and account.cycle_id in over:
        # Closed by the first run before it plans: a new cycle, friendly first;
        # copies sent in the old one no longer hold the next step back.
        stand, taken = None, set()
        if copy_told and copy_told[0] < days[0]:
            copy_told = None
    if stand is not None and (stand["pending"] or stand["unsent"] or stand["unposted"]):
        return  # the last step waits for a person, the mail server or the print queue
    stand = dict(stand) if stand is not None else None
    last_contact = account.last_contact
    # Terms the account has already, as the planner reads them: their steps are passed over.
    in_force = steps_in_force(on_credit_hold=customer.on_credit_hold, terms_type=customer.terms_type)
    for day in days:
        if account.waits_through and day <= account.waits_through:
            continue  # the run waits for a manager's decision on a request
        # Eligible that night: no pause in force today holds it any more.
        eligible = [i for i in account.invoices if i[3] is None or i[3] < day]
        in_reach = [i for i in eligible if i[0] <= day - dt.timedelta(days=own.reach)]
        if not in_reach:
            continue
        if stand is None:
            stand = _fresh_stand()  # the run opens a cycle for an account newly in reach
        ladder, switched = cycle_ladder(ladders, segment=customer.segment, cause=stand["cause"], stand=stand)
        if ladder is None:
            return
        step = ladder.next_after(stand["position"], switched=switched, taken=taken, tone=stand["tone"],
                                 in_force=in_force, declined=declined_in(stand))
        if step is None:
            return
        oldest_due = in_reach[0][0]
        pay_by, contacted = waits_for(stand, last_contact=last_contact, copy=copy_told, holidays=holidays)
        if day < step_due_on(ladder, step, oldest_due=oldest_due, pay_by=pay_by, last_contact=contacted):
            continue
        totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for _, currency, asked, _ in in_reach:
            totals[currency] += asked
        if not above_minimum(ladder.policy, totals):
            continue
        # The notice lists what is overdue, and a reminder before the due date
        # what falls due by then (dunning._insert_lines).
        listed_until = day - dt.timedelta(days=min(step.day_offset, 1))
        amounts: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for due_date, currency, asked, _ in eligible:
            if due_date <= listed_until:
                amounts[currency] += asked
        channel = route_for(action=DunningAction(step=step, customer=customer), day=day).channel
        yield day, Planned(customer=customer, step=step, channel=channel, amounts=dict(amounts),
                           for_review=not ladder.policy.auto_send and step.action not in FOR_A_MANAGER)
        # Where the cycle stands after it, as CYCLE_STAND would read it the next night.
        stand["position"] = step.position
        if step.action not in FOR_A_MANAGER:
            stand["tone"] = max(stand["tone"] or step.tone, step.tone)
        stand["policy_low"] = min(filter(None, (stand["policy_low"], step.policy_id)))
        stand["policy_high"] = max(filter(None, (stand["policy_high"], step.policy_id)))
        step_pay_by = planned_pay_by(step, on=day, oldest_due=oldest_due, holidays=holidays)
        stand["pay_by"] = max(filter(None, (stand["pay_by"], step_pay_by)))
        taken.add((ladder.policy.segment, step.position))
        if step.action not in INTERNAL_STEPS:
            last_contact = day


def ladders_with(ladders: dict[str, Ladder], *, segment: str, day_offsets: dict[int, int],
                 min_gap: int) -> dict[str, Ladder]:
    """The ladders with one segment's steps on other days and its minimum gap
    between contacts changed: copies, nothing saved."""
    ladder = ladders[segment]
    policy = copy.copy(ladder.policy)
    policy.min_days_between_contacts = min_gap
    steps = []
    for step in ladder.steps:
        changed = copy.copy(step)
        changed.day_offset = day_offsets.get(step.pk, step.day_offset)
        changed.policy = policy
        steps.append(changed)
    return {**ladders, segment: Ladder(policy, tuple(steps))}
