"""Dunning: work out, for a run date, the next step for every account behind on
its payments, exactly once.

Planning goes through customers in primary-key order, in bounded batches.
Each batch is one transaction of a fixed number of statements, whatever the
number of invoices: it closes cycles that are over, opens cycles for accounts
newly in reach, reads each open cycle's state and each account's eligible
invoices with aggregate queries, decides the next step per account (a few
comparisons in Python per account, never per invoice) and inserts the actions
and their invoice lines. The unique (cycle, step) constraint makes a second
action for the same step impossible, so two planners racing on one date, a
repeated run or a run finishing a crashed one can only ever plan it once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import (
    Case,
    Count,
    DateField,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Least, TruncDate
from django.utils import timezone

from ar_collections.channels import step_goes_to
from ar_collections.models import (
    DISPUTED_IN_FULL_SQL,
    NOT_CARRIED_OUT,
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Holiday,
    Instalment,
    InstalmentStatus,
    Invoice,
    InvoiceStatus,
    LadderStamp,
    LatePaymentPolicy,
    MailPurpose,
    MailStatus,
    MissCause,
    OutgoingMail,
    PaperDocument,
    PaperKind,
    PauseKind,
    PaymentPlan,
    PlanStatus,
    RunStatus,
    StepAction,
    account_pause_holds,
    disputed_in_part_q,
)
from arcrm.dates import format_day, working_day_from
from arcrm.db import MONEY, DaysAfter, rows_insert
from arcrm.money import MONEY_DECIMAL_PLACES, ZERO
from customers.models import Customer, Segment, TermsType

# Customers per planning transaction. Large enough that per-statement overhead
# vanishes, small enough that one transaction holds few row locks and a crash
# loses little work (the next run resumes after the last committed batch).
PLAN_BATCH_SIZE = 5_000

# Steps that change the terms of trade happen only with a manager's approval.
NEEDS_APPROVAL = {StepAction.CREDIT_HOLD, StepAction.SWITCH_TO_COD}
# Steps a manager decides: those, and the manager review itself, which waits
# in the managers' queue (never a collector's) until one has looked.
FOR_A_MANAGER = NEEDS_APPROVAL | {StepAction.MANAGER_REVIEW}

# The cause a collector found steers the ladder for the rest of the cycle:
# a customer who cannot pay is escalated fast, a special bond gets the personal
# (reviewed) track. "Stuff happens" keeps the ladder but its letters offer a
# payment plan; "red tape" re-sends the invoice at once (services.cause_record).
CAUSE_LADDER = {MissCause.CANNOT_PAY: Segment.DISTRESSED, MissCause.SPECIAL_BOND: Segment.SPECIAL_BOND}

class TermsSaid(NamedTuple):
    """How terms in force are named: among what the account page says the
    account has already ("on credit hold, trading on prepayment"), and as
    the reason a step asking for them was skipped."""

    trading: str
    already: str


# Terms an account trades on that a switch to C.O.D. would not make stricter,
# each with its words: the one list the ladders, the account page and the
# skipped steps' reasons read, so no terms type is in one and not the other.
COD_OR_STRICTER = {
    TermsType.COD: TermsSaid("trading cash on delivery", "the account already trades cash on delivery"),
    # Stricter than C.O.D.: switching would soften it.
    TermsType.PREPAYMENT: TermsSaid(
        "trading on prepayment", "the account already trades on prepayment, stricter than cash on delivery"
    ),
}


def steps_in_force(*, on_credit_hold: bool, terms_type: str) -> frozenset[str]:
    """The step actions asking for terms an account has already: a credit
    hold on an account on hold, a switch to C.O.D. on one trading C.O.D. or
    prepayment. Such a step asks for nothing, so a ladder passes over it
    (Ladder.next_after): planned, it would only be skipped as soon as the
    worklists are refreshed, and the account page would announce it as next
    meanwhile. One planned before the account's terms changed is skipped
    with the reason (services.credit_terms_in_force_skip)."""
    in_force = set()
    if on_credit_hold:
        in_force.add(StepAction.CREDIT_HOLD)
    if terms_type in COD_OR_STRICTER:
        in_force.add(StepAction.SWITCH_TO_COD)
    return frozenset(in_force)


# The requests a manager decides that, approved, hold dunning: while one
# waits, the account's next step waits too (requests_holding).
HOLDING_REQUESTS = {ExceptionKind.PAUSE: "the pause asked",
                    ExceptionKind.EXTENDED_TERMS: "the extended terms asked"}


def decision_waited_until(asked_on: dt.date) -> dt.date:
    """The last day whose run a request asked on `asked_on` holds while it
    waits for a manager (settings.DUNNING_WAITS_FOR_DECISION_DAYS after it)."""
    return asked_on + dt.timedelta(days=settings.DUNNING_WAITS_FOR_DECISION_DAYS)


def decision_overdue(asked_on: dt.date, *, today: dt.date) -> bool:
    """Whether a holding request still waiting on `today` no longer holds
    the run: the approvals mark it overdue for decision."""
    return today > decision_waited_until(asked_on)


def requests_holding(*, on: dt.date
                     ) -> tuple[models.QuerySet[ExceptionRequest], models.QuerySet[PaymentPlan]]:
    """The collectors' requests waiting for a manager that hold their
    account's next step on `on`: a pause or extended terms (not lapsed: its
    day still to come) and a payment plan, each asked on or before `on` and
    within settings.DUNNING_WAITS_FOR_DECISION_DAYS of it. Undecided, it does
    not pause dunning (only an approved one does), but a firmer step sent
    meanwhile would contradict what the collector told the customer. The
    planner, the account page's preview and Coming up read this one rule.
    The days count from the first request that held the step in the
    account's open cycle (its decision_awaited_from, withdrawn or lapsed
    since): a request withdrawn and asked again does not hold it again."""
    since = on - dt.timedelta(days=settings.DUNNING_WAITS_FOR_DECISION_DAYS)
    held_since = ~Exists(DunningCycle.objects.filter(customer=OuterRef("customer"), closed_on__isnull=True,
                                                     decision_awaited_from__lt=since))
    asked = ExceptionRequest.objects.filter(
        held_since, status=ExceptionStatus.PENDING, kind__in=list(HOLDING_REQUESTS), requested_on__gte=since,
        requested_on__lte=on, pause_until__gte=on,
    )
    plans = PaymentPlan.objects.filter(held_since, status=PlanStatus.AWAITING_APPROVAL,
                                       proposed_on__gte=since, proposed_on__lte=on)
    return asked, plans


def decision_awaited_record(accounts: Q, *, on: dt.date) -> None:
    """Record on each open cycle of `accounts` (a DunningCycle filter) that a
    request holds its next step on `on` for the first time, the day the
    earliest of them was asked: the days requests_holding grants count from
    it for the rest of the cycle. One statement."""
    asked, plans = requests_holding(on=on)
    asked = asked.filter(customer=OuterRef("customer")).order_by().values("customer")
    plans = plans.filter(customer=OuterRef("customer")).order_by().values("customer")
    first_asked = Subquery(asked.annotate(first=Min("requested_on")).values("first"))
    first_proposed = Subquery(plans.annotate(first=Min("proposed_on")).values("first"))
    DunningCycle.objects.filter(accounts, Q(Exists(asked)) | Q(Exists(plans)), closed_on__isnull=True,
                                decision_awaited_from__isnull=True).update(
        # Least of the two, either of which may be NULL (SQLite's MIN() of a NULL is NULL).
        decision_awaited_from=Least(Coalesce(first_asked, first_proposed),
                                    Coalesce(first_proposed, first_asked)))


def decision_awaited(*, on: dt.date) -> Q:
    """For a Customer query: a request holds the account's next step on `on` (requests_holding)."""
    asked, plans = requests_holding(on=on)
    return Q(Exists(asked.filter(customer=OuterRef("pk")))) | Q(Exists(plans.filter(customer=OuterRef("pk"))))


def decision_awaited_said(customer: Customer, *, on: dt.date) -> tuple[dt.date, str] | None:
    """The last day the requests waiting on the account hold its next step
    on `on`, and what they are, in words; None when none does. One statement."""
    asked, plans = requests_holding(on=on)
    rows = (asked.filter(customer=customer).order_by().values_list("kind", "requested_on")
            .union(plans.filter(customer=customer).annotate(kind=Value("plan")).order_by()
                   .values_list("kind", "proposed_on"), all=True))
    said, last = [], None
    for kind, asked_on in sorted(rows, key=lambda row: row[1]):
        said.append(f"{HOLDING_REQUESTS.get(kind, 'the payment plan proposed')} on {format_day(asked_on)}")
        last = max(filter(None, [last, decision_waited_until(asked_on)]))
    return (last, " and ".join(said)) if said else None


class RunRefused(ValueError):
    """A run that must not start, with the reason in words."""


@dataclass(frozen=True)
class Ladder:
    policy: LatePaymentPolicy
    steps: tuple[DunningStep, ...]

    @property
    def reach(self) -> int:
        """Day offset of the first step: an invoice is in reach from then on."""
        return self.steps[0].day_offset

    def next_after(
        self, position: int | None, *, switched: bool = False, taken: Collection[tuple[str, int]] = (),
        tone: int | None = None, in_force: Collection[str] = (), declined: Collection[str] = (),
    ) -> DunningStep | None:
        """The step after `position`. A cycle `switched` onto this ladder part-way
        (by a cause: cannot pay, special bond; or by a new segment: a manager's
        override, the nightly refresh) carries the position it reached on the
        ladder it left, which may be longer: with no step of this ladder after
        it, the cycle goes on to this ladder's last, firmest step, once (unless
        among the steps `taken`, as (segment, position): a policy replaced since
        by a new one for the segment has other steps, not other rungs), rather
        than stopping there. Nor does it go softer than the `tone` the customer
        has heard already, the last step included: tone only gets firmer,
        across ladders too (a gentler ladder's end then ends the cycle's steps,
        and the account page's preview says so).

        Steps whose action is `in_force` (steps_in_force: terms the account
        has already, a credit hold on an account on hold) are passed over, on
        any ladder, the last step included: the cycle goes on to the step
        after one, and a ladder that has nothing else left has ended.

        So are steps whose action a manager `declined` in the cycle (its
        CYCLE_STAND counts, declined_in: a credit hold or C.O.D. turned down): the
        decision stands for the cycle, on a ladder it moved to as well, and
        is not asked of a manager again until a new cycle."""
        passed_over = {*in_force, *declined}

        def takes(step: DunningStep) -> bool:
            return step.action not in passed_over and (not switched or tone is None or step.tone >= tone)

        later = [s for s in self.steps if (position is None or s.position > position) and takes(s)]
        if later:
            return later[0]
        last = self.steps[-1]
        if switched and (self.policy.segment, last.position) not in taken and takes(last):
            return last
        return None


def cycle_ladder(book: dict[str, Ladder], *, segment: str, cause: str,
                 stand: dict | None = None) -> tuple[Ladder | None, bool]:
    """The ladder a cycle follows, and whether it was switched onto it part-way:
    by a cause, or because its steps so far came from another ladder (the
    account's segment changed during the cycle). `stand`: the cycle's
    CYCLE_STAND figures, when it has any."""
    by_cause = book.get(CAUSE_LADDER.get(cause))
    if by_cause is not None and by_cause is not book.get(segment):
        return by_cause, True
    ladder = book.get(segment)
    return ladder, _left_another_ladder(stand, ladder)


def _left_another_ladder(stand: dict | None, ladder: Ladder | None) -> bool:
    if not stand or ladder is None or stand.get("policy_low") is None:
        return False
    return not stand["policy_low"] == stand["policy_high"] == ladder.policy.pk


# The ladders this process read last, with the stamp they were read under.
_ladders_read: tuple[str, dict[str, Ladder]] | None = None


def ladders() -> dict[str, Ladder]:
    """The active ladder of each segment that has one with steps, without its
    retired steps (a cycle that had one goes on to the step after it: cycles
    stand at the position of the last step they had).

    Kept by the process while the ladders' stamp (models.LadderStamp, set by
    the database on every write to them) is the one they were read under: one
    short read on every account page instead of three and some thirty rows
    made into objects. The stamp is read first: a ladder saved between the two
    reads is then kept under the stamp before it, which the next call finds
    changed. Read anew in a transaction that has changed them: its stamp is new."""
    global _ladders_read
    stamp = LadderStamp.objects.filter(pk=1).values_list("stamp", flat=True).first()
    if stamp is not None and _ladders_read is not None and _ladders_read[0] == stamp:
        return dict(_ladders_read[1])  # a dict of its own: a caller may put a tried ladder in
    steps = Prefetch("steps", queryset=DunningStep.objects.in_ladder())
    book = {
        policy.segment: Ladder(policy, tuple(sorted(policy.steps.all(), key=lambda s: s.position)))
        for policy in LatePaymentPolicy.objects.chasing().prefetch_related(steps, "minimums")
    }
    if stamp is not None:
        _ladders_read = (stamp, book)
    return dict(book)


def run_start(*, run_date: dt.date, started_by=None, new_only: bool = False) -> DunningRun:
    """The run for `run_date`, created or resumed (`new_only`: created, else
    refused). A date before the latest finished run is refused: it would plan
    against a past that has moved on. So is a date after today: its letters
    would be dated and charge interest for days that have not come, and every
    nightly run before it would then be refused."""
    today = timezone.localdate()
    if run_date > today:
        raise RunRefused(f"A run for {format_day(run_date)} is refused: that day has not come yet "
                         f"(today is {format_day(today)}).")
    with transaction.atomic():
        # Finished or still going (its mail put off, its planning under way):
        # either way the accounts have moved on to that day.
        latest = DunningRun.objects.select_for_update().order_by("-run_date").first()
        if latest and run_date < latest.run_date:
            raise RunRefused(
                f"A run for {format_day(run_date)} would go back in time: the run for "
                f"{format_day(latest.run_date)} has already "
                + ("finished." if latest.status == RunStatus.FINISHED else "started.")
            )
        # The unique run date decides between two starts at once: get_or_create
        # finds the row the other one inserted.
        run, created = DunningRun.objects.get_or_create(
            run_date=run_date, defaults={"started_by": started_by}
        )
        if new_only and not created:
            raise RunRefused(f"The run for {format_day(run_date)} has just been started by someone else.")
        return run


def run_counts(*, run: DunningRun) -> dict[str, int]:
    """Actions of a run by status, every status present (0 when none)."""
    counts = dict.fromkeys(ActionStatus.values, 0)
    counts.update(
        run.actions.order_by().values("status").annotate(n=models.Count("pk")).values_list("status", "n")
    )
    return counts


def run_finish_if_done(*, run_id: int) -> bool:
    """Mark the run finished once it is fully planned and nothing is left to
    send (reviews and approvals wait for people, not for the run)."""
    pending = DunningAction.objects.filter(
        run_id=run_id, status__in=[ActionStatus.PLANNED, ActionStatus.SENDING]
    )
    finished = (
        DunningRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, planned_at__isnull=False)
        .exclude(Exists(pending))
        .update(status=RunStatus.FINISHED, finished_at=timezone.now())
    )
    return bool(finished)


def runs_unfinished(*, before: dt.date) -> models.QuerySet[DunningRun]:
    """Runs of earlier dates that died before finishing; the next run completes them."""
    return DunningRun.objects.filter(status=RunStatus.RUNNING, run_date__lt=before).order_by("run_date")


def run_plan(*, run: DunningRun) -> int:
    """Plan every batch not yet planned for this run; return actions planned.

    Safe to call from several processes at once: each batch starts by locking
    the run row, so planners take batches one after another instead of
    planning the same customers twice.
    """
    book = ladders()
    # The office's holidays, for the pay-by dates planned: read once a run, as the ladders are.
    holidays = Holiday.objects.days_after(run.run_date - HOLIDAYS_LOOK_BACK)
    planned = 0
    while (count := _plan_next_batch(run.pk, book, holidays)) is not None:
        planned += count
    DunningRun.objects.filter(pk=run.pk, planned_at__isnull=True).update(planned_at=timezone.now())
    run.refresh_from_db()
    return planned


# For a pause query within an Invoice query: the pause of a dispute of part
# of the invoice, which holds back that part only. A dispute's pause holds the
# whole invoice once it disputes all that is open (a payment of the rest since
# included); a pause of kind dispute written without its dispute holds it
# whole too. The worklist reads disputes by it as well (worklist._overdue_unheld).
DISPUTED_IN_PART = Q(kind=PauseKind.DISPUTE) & disputed_in_part_q("dispute__disputed_amount",
                                                                  OuterRef("open_amount"))


def disputed_part(*, on: dt.date) -> Coalesce:
    """For an Invoice query: what of it an open dispute's pause holds back on
    `on` (zero when none does). Read only of an invoice no pause holds whole
    (DISPUTED_IN_PART)."""
    disputed = DunningPause.objects.active(on=on).filter(invoice=OuterRef("pk"), kind=PauseKind.DISPUTE,
                                                         dispute__isnull=False)
    return Coalesce(Subquery(disputed.values("dispute__disputed_amount")[:1]), Value(ZERO),
                    output_field=MONEY)


def eligible_invoices(*, on: dt.date) -> models.QuerySet[Invoice]:
    """Open invoices that dunning may chase on `on`: not paused, singly or with
    their whole account (models.account_pause_holds). An open dispute of part
    of an invoice holds back that part only: the invoice stays, each with
    `asked_amount`, what it owes less what is disputed (its open amount when
    nothing is)."""
    active = DunningPause.objects.active(on=on)
    # Two plain EXISTS rather than one with an OR: each is a single index probe.
    return (
        Invoice.objects.filter(status=InvoiceStatus.OPEN, open_amount__gt=0)
        .exclude(Exists(active.filter(invoice=OuterRef("pk")).exclude(DISPUTED_IN_PART)))
        .exclude(Exists(active.filter(account_pause_holds())))
        .annotate(asked_amount=F("open_amount") - disputed_part(on=on))
    )


def invoices_held_through(*, on: dt.date) -> models.QuerySet[Invoice]:
    """Open invoices with something owed, each with `held_through`: the last
    day the pauses in force on `on` hold it by eligible_invoices()' rules
    (None when none does, dt.date.max while one lasts until resolved), and
    `asked_amount` as eligible_invoices() gives it. For days ahead: the
    invoice is eligible on a later day once that day is past `held_through`,
    if no pause starts meanwhile (Coming up: none can, every pause starts on
    the day it is recorded).

    Nobody paying, as Coming up assumes, a payment plan's pause does not last
    to its recorded end (the last instalment's grace): the morning's check,
    before the night's run, breaks the plan and lifts its pauses once its
    first instalment still due is past its grace days, so that day is the
    last it holds."""
    holding = DunningPause.objects.active(on=on).filter(
        Q(customer=OuterRef("customer_id"), invoice=OuterRef("pk")) | account_pause_holds()
    ).exclude(DISPUTED_IN_PART)
    never = Value(dt.date.max)
    grace_ends = (
        Instalment.objects.filter(plan=OuterRef("plan_id"), plan__status=PlanStatus.ACTIVE,
                                  status=InstalmentStatus.DUE)
        .order_by("due_on")
        .values(last=DaysAfter("due_on", "plan__grace_days"))[:1]
    )
    end = Least(Coalesce("ends_on", never), Coalesce(Subquery(grace_ends), never), output_field=DateField())
    return Invoice.objects.filter(status=InvoiceStatus.OPEN, open_amount__gt=0).annotate(
        held_through=Subquery(holding.annotate(end=end).order_by("-end").values("end")[:1]),
        asked_amount=F("open_amount") - disputed_part(on=on),
    )


def _in_reach(book: dict[str, Ladder], *, on: dt.date, prefix: str = "") -> Q:
    """Invoices within reach of their customer's ladder on `on` (date comparisons only)."""
    q = Q(pk__in=[])
    for segment, ladder in book.items():
        q |= Q(**{f"{prefix}customer__segment": segment,
                  f"{prefix}due_date__lte": on - dt.timedelta(days=ladder.reach)})
    return q


def cycles_over(accounts: Q, book: dict[str, Ladder], *, on: dt.date) -> models.QuerySet[DunningCycle]:
    """The open cycles of `accounts` (a Q on customer_id) that are over on
    `on`: no invoice the cycle has chased is still open, and it has chased
    one, or the account has nothing open left in reach (a cycle opened today
    waits for its first step with what is in reach). Paused invoices keep a
    cycle open, so dunning resumes where it stood; so does a chased invoice
    out of its ladder's reach (the ladder switched off for a night, a segment
    whose ladder starts later): closed, the cycle would start again at the
    friendly first step and charge its fee and interest a second time. An
    invoice never chased starts a cycle of its own, friendly first, even one
    already overdue when the rest was paid: its first word must not be the
    old cycle's next, firmer step (the principal, a credit hold). The run
    closes them; the account page's preview reads the same rule."""
    open_in_reach = Invoice.objects.filter(accounts, _in_reach(book, on=on), status=InvoiceStatus.OPEN)
    chased = DunningActionInvoice.objects.filter(action__cycle=OuterRef("pk"))
    return DunningCycle.objects.filter(accounts, closed_on__isnull=True).exclude(
        Exists(chased.filter(invoice__status=InvoiceStatus.OPEN))
    ).filter(Exists(chased) | ~Q(customer_id__in=open_in_reach.values("customer_id")))


@transaction.atomic
def _plan_next_batch(run_id: int, book: dict[str, Ladder], holidays: Collection[dt.date]) -> int | None:
    run = DunningRun.objects.select_for_update().get(pk=run_id)
    on = run.run_date
    # The batch's accounts with their segments (the segment picks the ladder),
    # the steps their terms put in force already (the ladder passes over them)
    # and whether a request waiting for a manager holds their next step
    # (requests_holding): asked in the same statement, not per account.
    segments, in_force, awaiting = {}, {}, set()
    for customer_id, segment, on_credit_hold, terms_type, waits in (
        Customer.objects.filter(pk__gt=run.planned_through_customer_id)
        .annotate(waits=decision_awaited(on=on)).order_by("pk")
        .values_list("pk", "segment", "on_credit_hold", "terms_type", "waits")[:PLAN_BATCH_SIZE]
    ):
        segments[customer_id] = segment
        in_force[customer_id] = steps_in_force(on_credit_hold=on_credit_hold, terms_type=terms_type)
        if waits:
            awaiting.add(customer_id)
    if not segments:
        return None
    lo, hi = min(segments), max(segments)
    in_batch = Q(customer_id__gte=lo, customer_id__lte=hi)

    # 1. Close the cycles that are over. Never before it opened: an earlier
    #    run finished late plans for a day before the cycles a later run opened.
    cycles_over(in_batch, book, on=on).update(closed_on=Greatest(Value(on), F("opened_on")))

    # 2. Per account and currency, in one pass over the batch's invoices: the
    #    oldest eligible invoice in reach (it decides which step is due) and the
    #    eligible total, less what open disputes hold back (a step waits below
    #    the policy's minimum).
    anchors: dict[int, dt.date] = {}
    totals: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for customer_id, currency, total, oldest in _eligible_totals(book, on=on, lo=lo, hi=hi):
        totals[customer_id][currency] = total
        anchors[customer_id] = min(oldest, anchors.get(customer_id, oldest))
    if not anchors:
        _mark_progress(run, hi)
        return 0

    # 3. Open a cycle for accounts newly in reach (the partial unique index
    #    turns a concurrent second opening into a no-op).
    #    The open cycle and the last cycle's number of each account, in one
    #    read of the batch's cycles by range (not by a list of thousands of ids).
    open_cycles, last_numbers = {}, {}
    for customer_id, open_cycle, last_number in (
        DunningCycle.objects.filter(in_batch).order_by().values("customer_id")
        .annotate(open_cycle=Max("pk", filter=Q(closed_on__isnull=True)), last_number=Max("number"))
        .values_list("customer_id", "open_cycle", "last_number")
    ):
        last_numbers[customer_id] = last_number
        if open_cycle is not None:
            open_cycles[customer_id] = open_cycle
    newly = [c for c in anchors if c not in open_cycles]
    if newly:
        rows_insert(DunningCycle, {
            "customer_id": newly, "number": [last_numbers.get(c, 0) + 1 for c in newly],
            "opened_on": [on] * len(newly),
        })
        open_cycles = dict(
            DunningCycle.objects.filter(in_batch, closed_on__isnull=True).values_list("customer_id", "pk")
        )

    # The first request holding an account's step in its cycle sets the days
    # its later requests may hold it (requests_holding).
    decision_awaited_record(in_batch, on=on)

    # 4. Where each open cycle stands, and when each account was last contacted.
    stands = {
        row["pk"]: row
        for row in DunningCycle.objects.filter(pk__in=open_cycles.values())
        .values("pk", "cause", *CYCLE_COLUMNS).annotate(**CYCLE_STAND)
    }
    last_contact = dict(
        DunningAction.objects.filter(in_batch, CONTACTS).order_by().values("customer_id")
        .annotate(last=Max(CONTACTED_ON)).values_list("customer_id", "last")
    )
    copies = copies_told(in_batch, on=on, holidays=holidays)

    # 5. Decide, account by account, whether its next step is due today.
    routes = {
        c: cycle_ladder(book, segment=segments[c], cause=stands[open_cycles[c]]["cause"],
                        stand=stands[open_cycles[c]])
        for c in anchors
    }
    # Cycles a cause switched onto a ladder they have gone past the end of: the
    # steps they took, to know whether that ladder's last one is among them.
    past_the_end = [open_cycles[c] for c, (ladder, switched) in routes.items()
                    if switched and ladder.next_after(stands[open_cycles[c]]["position"]) is None]
    taken: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for cycle_id, segment, position in (
        DunningAction.objects.filter(cycle_id__in=past_the_end)
        .values_list("cycle_id", "step__policy__segment", "step__position") if past_the_end else ()
    ):
        taken[cycle_id].add((segment, position))
    actions: list[tuple] = []  # in the order of ACTION_COLUMNS
    waited = 0
    for customer_id, oldest_due in anchors.items():
        cycle_id = open_cycles[customer_id]
        stand = stands[cycle_id]
        ladder, switched = routes[customer_id]
        if stand["pending"] or stand["unsent"] or stand["unposted"]:
            continue  # the previous step waits for a person, is still to go out or to be posted
        step = ladder.next_after(stand["position"], switched=switched, taken=taken[cycle_id],
                                 tone=stand["tone"], in_force=in_force[customer_id],
                                 declined=declined_in(stand))
        if step is None:
            continue
        pay_by, contacted = waits_for(stand, last_contact=last_contact.get(customer_id),
                                      copy=copies.get(customer_id), holidays=holidays)
        due_on = step_due_on(ladder, step, oldest_due=oldest_due, pay_by=pay_by, last_contact=contacted)
        if on < due_on:
            continue
        if not above_minimum(ladder.policy, totals[customer_id]):
            continue
        if customer_id in awaiting:
            waited += 1  # due today, but a manager's decision on a request comes first
            continue
        actions.append((cycle_id, customer_id, step.pk, _first_status(ladder.policy, step),
                        planned_pay_by(step, on=on, oldest_due=oldest_due, holidays=holidays)))
    planned = len(actions)
    # Thousands of rows a batch: column by column, not as model instances.
    columns = {name: [row[n] for row in actions] for n, name in enumerate(ACTION_COLUMNS)}
    rows_insert(DunningAction, {**columns, "run_id": [run.pk] * planned, "planned_on": [on] * planned})

    # 6. List on each new action every eligible invoice it covers: all overdue
    #    ones, and for a reminder before the due date those falling due by then.
    _insert_lines(run, lo, hi)
    _mark_progress(run, hi, waited=waited)
    return planned


# The planner reads the office's holidays from this long before its day on: a
# pay-by date given before then (by a re-send, an invoice copy) lies before the
# day even once moved past a weekend and holidays, so whether it moves makes no
# difference to what is due.
HOLIDAYS_LOOK_BACK = dt.timedelta(days=31)


def pay_by_on_working_day(day: dt.date, *, holidays: Collection[dt.date]) -> dt.date:
    """The pay-by date a customer is given for `day`: the next working day if
    it falls on a Saturday, a Sunday or one of the office's `holidays`.
    Nobody is in to pay on such a day, nor do banks book a transfer; a
    deadline on it is in truth the working day before, days shorter than the
    step means to give. The one rule for every pay-by date we write."""
    return working_day_from(day, holidays=holidays)


def planned_pay_by(step: DunningStep, *, on: dt.date, oldest_due: dt.date,
                   holidays: Collection[dt.date]) -> dt.date:
    """The pay-by date a step planned on `on` gives, as delivery will state
    it (delivery.pay_by_when_sent, sent that day by e-mail): the step's days
    to pay, on a working day (`holidays`: the office's from `on` on), but
    never past the due date for a reminder that lists nothing overdue yet.
    What it lists falls due from `oldest_due` on (the oldest eligible invoice
    in reach is always among its lines: the step is due only once it is)."""
    pay_by = pay_by_on_working_day(on + dt.timedelta(days=step.days_to_pay), holidays=holidays)
    return min(pay_by, oldest_due) if oldest_due >= on else pay_by


# What the planner decides for each new action; the run and the day are the batch's.
ACTION_COLUMNS = ("cycle_id", "customer_id", "step_id", "status", "pay_by")

# A step waiting for a person (a collector's review, a manager's approval):
# the next one waits for it, so the order and the rising tone hold.
WAITING = [ActionStatus.IN_REVIEW, ActionStatus.AWAITING_APPROVAL]

# A red-tape re-send asks for payment within this many days (the customer only
# now has the invoices in the right hands): it is a contact with a pay-by
# date, which the next step waits for as for a notice's.
RESEND_PAY_WITHIN_DAYS = 7


def resend_pay_by(resent_on: dt.date, *, holidays: Collection[dt.date]) -> dt.date:
    return pay_by_on_working_day(resent_on + dt.timedelta(days=RESEND_PAY_WITHIN_DAYS), holidays=holidays)


# The cycle's columns that record what the customer was told outside its steps.
TOLD_OUTSIDE_THE_LADDER = ("invoices_resent_on",)

# The cycle's column recording the day a manager lifted what each step
# changing the terms of trade imposes (services.cycle_terms_lifted_record):
# lifted with money overdue, it is not asked for again in the cycle.
LIFTED = {StepAction.CREDIT_HOLD: "credit_hold_lifted_on", StepAction.SWITCH_TO_COD: "cod_lifted_on"}

# What a lifted step imposed, as the account page names it passed over.
LIFTED_SAID = {StepAction.CREDIT_HOLD: "the credit hold", StepAction.SWITCH_TO_COD: "the switch to C.O.D."}

# The cycle's own columns that where it stands reads beside its CYCLE_STAND figures.
CYCLE_COLUMNS = (*TOLD_OUTSIDE_THE_LADDER, *LIFTED.values())

# A collector's invoice copy asks for payment within this many days, or by the
# invoice's due date if that is later.
COPY_PAY_WITHIN_DAYS = 7


# Copies older than this (unless of an invoice not yet due) hold nothing back.
COPIES_LOOK_BACK_DAYS = 120


def copy_pay_by(*, due_date: dt.date, sent_on: dt.date, holidays: Collection[dt.date]) -> dt.date:
    """The day an invoice copy sent on `sent_on` asks to be paid by
    (`holidays`: the office's from then on). A due date still ahead is the
    invoice's own terms and stands as it is, whatever day it falls on."""
    within = pay_by_on_working_day(sent_on + dt.timedelta(days=COPY_PAY_WITHIN_DAYS), holidays=holidays)
    return max(within, due_date)


def copies_told(
    accounts: Q, *, on: dt.date, holidays: Collection[dt.date]
) -> dict[int, tuple[dt.date, dt.date]]:
    """Per account among `accounts` (a Q on customer_id), the invoice copies
    collectors sent since its last cycle closed, whether a cycle was open
    then or not: e-mailed and not refused for good, or by post, in the print
    queue or posted but not withdrawn (a posted copy gives its pay-by date
    in writing as an e-mailed one does; it counts from the day it was
    written, the day its pay-by date counts from). The last day one went and
    the latest pay-by date one gave (`holidays`: the office's, from
    HOLIDAYS_LOOK_BACK before `on`). The next step waits for both, as for a
    notice's. One statement: the e-mailed and the posted copies are read as
    the union of two selects."""
    last_closed = (DunningCycle.objects.filter(customer=OuterRef("customer"), closed_on__isnull=False)
                   .order_by("-closed_on").values("closed_on")[:1])
    # Older copies hold nothing back any more: their pay-by date and any
    # minimum gap from them have long passed.
    since = on - dt.timedelta(days=COPIES_LOOK_BACK_DAYS)
    columns = ("customer_id", "sent_on", "invoice__due_date", "closed")
    mailed = (
        OutgoingMail.objects.filter(accounts, purpose=MailPurpose.INVOICE_COPY)
        .exclude(status=MailStatus.FAILED)
        .filter(Q(created_at__date__gte=since) | Q(invoice__due_date__gte=on))
        .annotate(sent_on=TruncDate("created_at"), closed=Subquery(last_closed))
        # No order (the models' own included): SQLite, the embedded default,
        # refuses ORDER BY in the selects of a UNION.
        .order_by().values_list(*columns)
    )
    posted = (
        PaperDocument.objects.filter(accounts, kind=PaperKind.INVOICE_COPY, withdrawn_at__isnull=True)
        .filter(Q(done_at__date__gte=since) | Q(invoice__due_date__gte=on))
        .annotate(sent_on=TruncDate("done_at"), closed=Subquery(last_closed))
        .order_by().values_list(*columns)
    )
    copies = mailed.union(posted, all=True)
    told: dict[int, tuple[dt.date, dt.date]] = {}
    for customer_id, sent_on, due_date, closed in copies:
        if closed and sent_on < closed:
            continue  # told in a cycle that has closed since
        pay_by = copy_pay_by(due_date=due_date, sent_on=sent_on, holidays=holidays)
        if was := told.get(customer_id):
            sent_on, pay_by = max(sent_on, was[0]), max(pay_by, was[1])
        told[customer_id] = (sent_on, pay_by)
    return told


def waits_for(
    stand: dict | None, *, last_contact: dt.date | None, copy: tuple[dt.date, dt.date] | None = None,
    holidays: Collection[dt.date] = (),
) -> tuple[dt.date | None, dt.date | None]:
    """The pay-by date and last contact the next step waits for: the cycle's
    own steps (`stand`: its CYCLE_STAND figures and TOLD_OUTSIDE_THE_LADDER
    columns, None without a cycle), its red-tape re-send and a collector's
    invoice copies (`copy`: copies_told's figures for the account;
    `holidays` as for copies_told, to move the re-send's pay-by date as the
    re-send did)."""
    pay_bys, contacts = [], [last_contact]
    if copy:
        contacts.append(copy[0])
        pay_bys.append(copy[1])
    if stand is not None:
        resent_on = stand["invoices_resent_on"]
        pay_bys.append(stand["pay_by"])
        if resent_on:
            pay_bys.append(resend_pay_by(resent_on, holidays=holidays))
            contacts.append(resent_on)
    return max(filter(None, pay_bys), default=None), max(filter(None, contacts), default=None)


# For CYCLE_STAND: the action is a letter in the print queue that lists an
# open invoice. The subquery repeats the queue's own conditions on the
# letter: PostgreSQL may run it once for the whole statement (a hashed
# subplan) rather than per action, and then reads only the queue's letters
# (partial index action_letter_unprinted) and their lines, not every line
# ever written against every open invoice.
_LISTS_OPEN_INVOICE_IN_QUEUE = DunningActionInvoice.objects.filter(
    action=OuterRef("actions"), action__channel=Channel.LETTER, action__status=ActionStatus.DONE,
    action__printed_at__isnull=True, invoice__status=InvoiceStatus.OPEN, invoice__open_amount__gt=0,
)

# Where a cycle stands: its last step, the pay-by date the customer was (or is
# about to be) told (a skipped or failed step told them none), and steps waiting.
# CYCLE_STAND's name for the count of each step changing the terms a manager declined in the cycle.
DECLINED = {action: f"declined_{action}" for action in sorted(NEEDS_APPROVAL)}


def declined_in(stand) -> set[str]:
    """The steps changing the terms a manager decided against in a cycle,
    from its CYCLE_STAND figures and CYCLE_COLUMNS: declined, or what they
    impose lifted while the cycle was open (lifted_in)."""
    return {action for action, name in DECLINED.items() if stand[name]} | lifted_in(stand)


def lifted_in(stand) -> set[str]:
    """The steps whose credit hold or C.O.D. a manager lifted while the cycle was open."""
    return {action for action, name in LIFTED.items() if stand[name]}


CYCLE_STAND = {
    "position": Max("actions__step__position"),
    # The firmest tone the customer has heard in the cycle (steps not carried
    # out, and a manager's steps inside the house, do not count), and the
    # policies its steps came from: two ends of one range, equal to the
    # ladder's own policy unless the cycle changed ladders.
    "tone": Max("actions__step__tone", filter=~Q(actions__status__in=NOT_CARRIED_OUT)
                & ~Q(actions__step__action__in=FOR_A_MANAGER)),
    "policy_low": Min("actions__step__policy_id"),
    "policy_high": Max("actions__step__policy_id"),
    "pay_by": Max("actions__pay_by", filter=~Q(actions__status__in=NOT_CARRIED_OUT)),
    "pending": Count("actions", filter=Q(actions__status__in=WAITING)),
    # The steps changing the terms of trade a manager declined in the cycle
    # (services.action_decline records who), counted each: none is asked again
    # in it, whichever ladder the cycle goes on on (Ladder.next_after, through
    # declined_in). A count each rather than an array: SQLite has none.
    **{name: Count("actions", filter=Q(actions__status=ActionStatus.SKIPPED,
                                       actions__reviewed_by__isnull=False, actions__step__action=action))
       for action, name in DECLINED.items()},
    # A step not yet carried out (the mail server put it off, a worker died):
    # the next one waits for it, never overtakes it.
    "unsent": Count("actions", filter=Q(actions__status__in=[ActionStatus.PLANNED, ActionStatus.SENDING])),
    # Nor does it overtake a letter written and still in the print queue
    # (forms.letters_in_queue): the customer has not had it yet. It waits
    # until the letter is posted, or withdrawn (then a step not carried out).
    "unposted": Count("actions", filter=Q(
        actions__channel=Channel.LETTER, actions__status=ActionStatus.DONE, actions__printed_at__isnull=True,
    ) & ~Q(actions__letter_pdf="") & Q(Exists(_LISTS_OPEN_INVOICE_IN_QUEUE))),
}

# The day an action reached the customer, for the minimum gap between
# contacts: for a letter, the day it was posted (marked printed; none while it
# waits in the print queue); else the day it was carried out (a step sent
# late, after a review or an outage, went out then, not on its planned day),
# else the day it was planned.
CONTACTED_ON = Case(
    When(channel=Channel.LETTER, status=ActionStatus.DONE, then=TruncDate("printed_at")),
    When(status=ActionStatus.DONE, done_at__isnull=False, then=TruncDate("done_at")),
    default=F("planned_on"), output_field=DateField(),
)
# Actions that reach (or are to reach) the customer: not a manager's review,
# hold or C.O.D. decided inside the house, nor a step skipped or failed.
CONTACTS = ~Q(channel=Channel.INTERNAL) & ~Q(status__in=NOT_CARRIED_OUT)


def step_due_on(
    ladder: Ladder, step: DunningStep, *, oldest_due: dt.date, pay_by: dt.date | None,
    last_contact: dt.date | None,
) -> dt.date:
    """The first day `step` may be taken: its offset from the oldest eligible
    due date, only once the previous step's pay-by date has passed (the
    customer has that whole day to pay: a notice's deadline is never overtaken)
    and not within the minimum gap since the last contact."""
    due_on = oldest_due + dt.timedelta(days=step.day_offset)
    if pay_by:
        due_on = max(due_on, pay_by + dt.timedelta(days=1))
    if last_contact:
        due_on = max(due_on, last_contact + dt.timedelta(days=ladder.policy.min_days_between_contacts))
    return due_on


@dataclass(frozen=True)
class NextStep:
    """What dunning will do next on one account, as the planner would decide it."""

    step: DunningStep | None
    due_on: dt.date | None
    invoices: list[Invoice]
    held: list[tuple[Invoice, str]]
    note: str


@dataclass(frozen=True)
class AccountRead:
    """What the account page's Dunning card and its preview (next_step) both
    show of an account's dunning on day `on`, read once for the two: the
    ladders, the open cycle (with where it stands, CYCLE_STAND, and whether
    it is `over`), the pauses in force (soonest end first, with their
    invoice, owner, dispute and exception) and the open invoices (due first)."""

    on: dt.date
    book: dict[str, Ladder]
    cycle: DunningCycle | None
    pauses: list[DunningPause]
    open_invoices: list[Invoice]


def account_read(customer: Customer, *, on: dt.date, book: dict[str, Ladder] | None = None,
                 open_invoices: list[Invoice] | None = None) -> AccountRead:
    """The account's AccountRead for `on`: three queries and the ladders'
    (`book`, when not given), or two with `open_invoices` (the account's
    open invoices the page lists already, due first: an open invoice always
    has something open, models.Invoice's constraint)."""
    book = ladders() if book is None else book
    # Whether the cycle is over asks only this account's own ladder: what is
    # in reach is matched by the account's segment (cycles_over), so another
    # segment's ladder never matches, and each one is a condition more to
    # build and plan on every account page (the run asks them all for its batch).
    own = {customer.segment: book[customer.segment]} if customer.segment in book else {}
    over = cycles_over(Q(customer_id=customer.pk), own, on=on).filter(pk=OuterRef("pk"))
    cycle = (DunningCycle.objects.filter(customer=customer, closed_on__isnull=True)
             .select_related("cause_noted_by").annotate(**CYCLE_STAND, over=Exists(over)).first())
    pauses = list(DunningPause.objects.active(on=on).filter(customer=customer)
                  .select_related("invoice", "owner", "dispute", "exception").order_by("ends_on", "pk"))
    if open_invoices is None:
        open_invoices = list(customer.invoices.filter(status=InvoiceStatus.OPEN, open_amount__gt=0)
                             .order_by("due_date", "number"))
    return AccountRead(on, book, cycle, pauses, open_invoices)


def next_step(customer: Customer, *, on: dt.date, book: dict[str, Ladder] | None = None,
              read: AccountRead | None = None) -> NextStep:
    """The account's next dunning step and the day it is due, the invoices it
    would list, and the open invoices held back by a pause (with why).
    `read`: the account as account_read() read it for the same day, which
    next_step then does not read again.

    The same rules as planning (step_due_on, the pause rules, the minimum), for
    one account, read-only: the account page's preview.
    """
    if read is None or read.on != on:
        read = account_read(customer, on=on, book=book)
    book, cycle, open_invoices = read.book, read.cycle, read.open_invoices
    if cycle and cycle.over:
        # The next run closes it before it plans: the account starts a new
        # cycle, friendly first, when something falls into reach again.
        cycle = None
    # The pauses in force, as eligible_invoices() reads them: one on the
    # invoice, or one on the whole account that covers it (DunningPause.holds),
    # holds it back; a dispute of part of it holds back that part. The oldest
    # first: it gives the reason an invoice is held.
    pauses, account_pauses, disputed = {}, [], {}
    for pause in sorted(read.pauses, key=lambda p: p.pk):
        part = pause.disputed_in_part()
        if part is not None:
            disputed[pause.invoice_id] = part
        elif pause.invoice_id is None:
            account_pauses.append(pause)
        else:
            pauses.setdefault(pause.invoice_id, pause)
    holding = {i.pk: p for i in open_invoices
               if (p := pauses.get(i.pk) or next((a for a in account_pauses if a.holds(i)), None))}
    held = [(i, _held_because(holding[i.pk])) for i in open_invoices if i.pk in holding]
    eligible = [i for i in open_invoices if i.pk not in holding]
    for invoice in eligible:
        invoice.disputed_part = disputed.get(invoice.pk, ZERO)
        invoice.asked_amount = invoice.open_amount - invoice.disputed_part
    # The same figures the planner reads for its batch, for this one cycle.
    stand = ({name: getattr(cycle, name) for name in (*CYCLE_STAND, *CYCLE_COLUMNS)}
             if cycle else None)
    ladder, switched = cycle_ladder(book, segment=customer.segment, cause=cycle.cause if cycle else "",
                                    stand=stand)
    if ladder is None:
        return NextStep(None, None, [], held, "No active policy for this segment.")
    if cycle and cycle.pending:
        return NextStep(None, None, [], held, "The last step waits for a collector's review or a manager's "
                        "approval: the next one waits for it.")
    if cycle and cycle.unsent:
        return NextStep(None, None, [], held, "The last step has not gone out yet (the mail server put it "
                        "off, or it is being sent): the next one waits for it.")
    if cycle and cycle.unposted:
        return NextStep(None, None, [], held, "The last letter waits in the print queue: the next step waits "
                        "until it is posted or withdrawn.")
    position, tone = (cycle.position, cycle.tone) if cycle else (None, None)
    declined = declined_in(stand) if cycle else set()
    taken = set(cycle.actions.values_list("step__policy__segment", "step__position")) if switched else ()
    in_force = steps_in_force(on_credit_hold=customer.on_credit_hold, terms_type=customer.terms_type)
    step = ladder.next_after(position, switched=switched, taken=taken, tone=tone, in_force=in_force,
                             declined=declined)
    if step is None and ladder.next_after(position, switched=switched, taken=taken, tone=tone,
                                          declined=declined):
        return NextStep(None, None, [], held, "No step is left: the rest of the ladder asks for terms the "
                        f"account has already ({_terms_said(customer)}).")
    lifted = lifted_in(stand) if cycle else set()
    if step is None and (again := ladder.next_after(position, switched=switched, taken=taken, tone=tone)):
        decided = "lifted" if again.action in lifted else "declined"
        return NextStep(None, None, [], held, "No step is left: the rest of the ladder asks for what a "
                        f"manager {decided} in this cycle ({again.get_action_display()}).")
    if step is None:
        return NextStep(None, None, [], held, "Every step of the ladder has been taken in this cycle.")
    # A hold or C.O.D. lifted in the cycle, passed over on the way to this
    # step: said, as the collector may expect the ladder to ask for it again.
    passed = ladder.next_after(position, switched=switched, taken=taken, tone=tone, in_force=in_force,
                               declined=declined - lifted) if lifted else None
    passed_said = (f"Passes over {LIFTED_SAID[passed.action]}: a manager lifted it in this cycle."
                   if passed is not None and passed != step and passed.action in lifted else "")
    ends = [p.ends_on for p in holding.values() if p.ends_on]
    if not eligible and ends:
        # Held today, not for good: the step and day this card says the day
        # after the earliest hold ends (another hold may still keep it waiting
        # then). Nothing is listed: today every invoice is held. The cycle
        # and the pauses are read for that day; the open invoices are today's.
        later = min(ends) + dt.timedelta(days=1)
        after = next_step(customer, on=later,
                          read=account_read(customer, on=later, book=book, open_invoices=open_invoices))
        said = f"Every open invoice is held; the earliest hold ends on {format_day(min(ends))}."
        return NextStep(after.step, after.due_on, [], held,
                        " ".join(filter(None, [said, after.note])))
    if not eligible:
        note = "Nothing to chase: every open invoice is held." if held else "Nothing open to chase."
        return NextStep(step, None, [], held, note)
    last = customer.dunning_actions.filter(CONTACTS).aggregate(last=Max(CONTACTED_ON))["last"]
    holidays = Holiday.objects.days_after(on - HOLIDAYS_LOOK_BACK)
    copy = copies_told(Q(customer_id=customer.pk), on=on, holidays=holidays).get(customer.pk)
    pay_by, last = waits_for(stand, last_contact=last, copy=copy, holidays=holidays)
    due_on = max(on, step_due_on(ladder, step, oldest_due=eligible[0].due_date, pay_by=pay_by,
                                 last_contact=last))
    # A request waiting for a manager holds the step as the run holds it (requests_holding).
    awaited = decision_awaited_said(customer, on=on)
    waits_said = ""
    if awaited and due_on <= awaited[0]:
        until, what = awaited
        due_on = max(due_on, until + dt.timedelta(days=1))
        waits_said = (f"Waits for the manager's decision on {what}; undecided, the run goes on after "
                      f"{format_day(until)}.")
    listed_until = due_on - dt.timedelta(days=min(step.day_offset, 1))
    listed = [i for i in eligible if i.due_date <= listed_until]
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    # The minimum is weighed as planning weighs it: over every eligible invoice
    # within the ladder's reach that day, not only those the notice lists.
    in_reach = due_on - dt.timedelta(days=ladder.reach)
    for invoice in eligible:
        if invoice.due_date <= in_reach:
            totals[invoice.currency] += invoice.asked_amount
    notes = [waits_said, passed_said] if above_minimum(ladder.policy, totals) else [
        waits_said, passed_said, "Waits: the amount is below the policy's minimum."]
    # Whom it goes to when not the contact of record, and how when not as the
    # step says (channels.step_goes_to): said before it happens, not only on
    # the action afterwards.
    notes.append(step_goes_to(customer, step=step, day=due_on))
    return NextStep(step, due_on, listed, held, " ".join(filter(None, notes)))


def _terms_said(customer: Customer) -> str:
    """The terms in force that make a step moot, in words for the account page."""
    said = ["on credit hold"] if customer.on_credit_hold else []
    if customer.terms_type in COD_OR_STRICTER:
        said.append(COD_OR_STRICTER[customer.terms_type].trading)
    return ", ".join(said)


def _held_because(pause: DunningPause) -> str:
    until = f" until {format_day(pause.ends_on)}" if pause.ends_on else " until resolved"
    return f"{pause.get_kind_display()}{until}"


def above_minimum(policy: LatePaymentPolicy, totals: dict[str, Decimal]) -> bool:
    """Whether some currency's total reaches the policy's minimum for it."""
    minimums = {m.currency: m.min_amount for m in policy.minimums.all()}
    return any(total >= minimums.get(currency, ZERO) and total > 0 for currency, total in totals.items())


def _first_status(policy: LatePaymentPolicy, step: DunningStep) -> str:
    if step.action in FOR_A_MANAGER:
        return ActionStatus.AWAITING_APPROVAL
    if not policy.auto_send:
        return ActionStatus.IN_REVIEW
    return ActionStatus.PLANNED


def _mark_progress(run: DunningRun, through: int, *, waited: int = 0) -> None:
    DunningRun.objects.filter(pk=run.pk).update(planned_through_customer_id=through,
                                                waited_for_decision=F("waited_for_decision") + waited)


def _date_param() -> str:
    """A date placeholder in raw SQL, typed where PostgreSQL needs the type."""
    return "%s::date" if connection.vendor == "postgresql" else "%s"


def _held_sql(on: dt.date, lo: int, hi: int) -> tuple[str, list]:
    """The pauses in force on `on` for the accounts `lo`..`hi`, as two CTEs
    with their parameters. held: a row per paused invoice, `whole` 1 when
    something holds all of it (a promise, a plan, an exception, a manual
    hold, a pause of kind dispute without its dispute), `most_disputed` the
    largest part disputed (a dispute of all that is open holds it whole),
    `disputed` the latest dispute's part, which is not asked for. held_accounts:
    the pauses of whole accounts. The rules of eligible_invoices(), read once per
    statement through the index of unlifted pauses and hashed, rather than
    probed twice for every invoice. A pause names its invoice's own account,
    so the range of accounts finds them all. Each of held_accounts' rows
    holds what the account owed on `issued_by` that falls due before
    `due_before` (extended terms, models.account_pause_holds), or all of it
    (both null)."""
    date = _date_param()
    active = (f"{{p}}.lifted_at IS NULL AND {{p}}.starts_on <= {date} "
              f"AND ({{p}}.ends_on IS NULL OR {{p}}.ends_on >= {date})")
    sql = f"""held AS (
            SELECT p.invoice_id,
                   MAX(CASE WHEN p.kind <> 'dispute' OR d.id IS NULL THEN 1 ELSE 0 END) AS whole,
                   MAX(d.disputed_amount) AS most_disputed,
                   (SELECT d2.disputed_amount
                    FROM collections_dunningpause p2
                    JOIN collections_dispute d2 ON d2.id = p2.dispute_id
                    WHERE p2.invoice_id = p.invoice_id AND p2.kind = 'dispute' AND {active.format(p="p2")}
                    ORDER BY p2.starts_on DESC, p2.id DESC LIMIT 1) AS disputed
            FROM collections_dunningpause p
            LEFT JOIN collections_dispute d ON d.id = p.dispute_id AND p.kind = 'dispute'
            WHERE p.customer_id BETWEEN %s AND %s AND p.invoice_id IS NOT NULL AND {active.format(p="p")}
            GROUP BY p.invoice_id
        ),
        held_accounts AS (
            SELECT DISTINCT p.customer_id,
                   CASE WHEN e.kind = 'extended_terms' THEN p.starts_on END AS issued_by,
                   CASE WHEN e.kind = 'extended_terms' THEN p.ends_on END AS due_before
            FROM collections_dunningpause p
            LEFT JOIN collections_exceptionrequest e ON e.id = p.exception_id AND p.kind = 'exception'
            WHERE p.customer_id BETWEEN %s AND %s AND p.invoice_id IS NULL AND {active.format(p="p")}
        )"""
    day = on if connection.vendor == "postgresql" else on.isoformat()
    return sql, [day, day, lo, hi, day, day, lo, hi, day, day]


# An open invoice i the pauses let dunning chase: neither its account nor the
# invoice is held whole, and what is open exceeds any part disputed. Written
# as anti-joins, which PostgreSQL estimates well (a filter on the columns of
# an outer join it takes for a few rows, and then loops over the rest).
_NOT_HELD = f"""i.open_amount > 0
          AND NOT EXISTS (SELECT 1 FROM held_accounts w WHERE w.customer_id = i.customer_id
                          AND (w.due_before IS NULL
                               OR (i.issue_date <= w.issued_by AND i.due_date < w.due_before)))
          AND NOT EXISTS (SELECT 1 FROM held x WHERE x.invoice_id = i.id
                          AND (x.whole = 1
                               OR {DISPUTED_IN_FULL_SQL.format(disputed="x.most_disputed",
                                                               open_amount="i.open_amount")}))"""


def _eligible_totals(
    book: dict[str, Ladder], *, on: dt.date, lo: int, hi: int
) -> list[tuple[int, str, Decimal, dt.date]]:
    """Per account of `lo`..`hi` and currency: the eligible total within reach
    of the account's ladder (eligible_invoices()' asked amounts: less what
    open disputes hold back) and the oldest such invoice's due date. One
    statement; the accounts are read by range, not the whole customer table."""
    if not book:
        return []
    held, params = _held_sql(on, lo, hi)
    postgres = connection.vendor == "postgresql"
    # The last day an invoice may fall due to be within reach, per segment.
    reach = ", ".join([f"(%s, {_date_param()})"] * len(book))
    for segment, ladder in book.items():
        cutoff = on - dt.timedelta(days=ladder.reach)
        params += [segment, cutoff if postgres else cutoff.isoformat()]
    sql = f"""
        WITH {held}, reach (segment, cutoff) AS (VALUES {reach})
        SELECT i.customer_id, i.currency, SUM(i.open_amount - COALESCE(h.disputed, 0)), MIN(i.due_date)
        FROM collections_invoice i
        JOIN customers_customer c ON c.id = i.customer_id
        JOIN reach r ON r.segment = c.segment
        LEFT JOIN held h ON h.invoice_id = i.id
        WHERE i.customer_id BETWEEN %s AND %s AND c.id BETWEEN %s AND %s
          AND i.status = 'open' AND i.due_date <= r.cutoff AND {_NOT_HELD}
        GROUP BY i.customer_id, i.currency
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, lo, hi, lo, hi])
        rows = cursor.fetchall()
    if postgres:
        return rows
    # SQLite hands back sums of its decimals as floats and dates as text:
    # rounded to the cent, as the ORM rounds them.
    cent = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)
    return [(c, cur, Decimal(str(total)).quantize(cent), dt.date.fromisoformat(oldest))
            for c, cur, total, oldest in rows]


def _insert_lines(run: DunningRun, lo: int, hi: int) -> None:
    postgres = connection.vendor == "postgresql"
    listed_until = ("(%s::date - LEAST(s.day_offset, 1))" if postgres
                    else "date(%s, (-MIN(s.day_offset, 1)) || ' days')")
    on = run.run_date if postgres else run.run_date.isoformat()
    held, params = _held_sql(run.run_date, lo, hi)
    # As eligible_invoices(): a dispute of part of an invoice holds back that
    # part, and the line asks for the rest.
    sql = f"""
        WITH {held}
        INSERT INTO collections_dunningactioninvoice (action_id, invoice_id, open_amount, currency)
        SELECT a.id, i.id, i.open_amount - COALESCE(h.disputed, 0), i.currency
        FROM collections_dunningaction a
        JOIN collections_dunningstep s ON s.id = a.step_id
        JOIN collections_invoice i ON i.customer_id = a.customer_id
        LEFT JOIN held h ON h.invoice_id = i.id
        WHERE a.run_id = %s AND a.customer_id BETWEEN %s AND %s
          AND i.status = 'open' AND i.due_date <= {listed_until} AND {_NOT_HELD}
        ON CONFLICT (action_id, invoice_id) DO NOTHING
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, run.pk, lo, hi, on])


def dunning_run_execute(*, run_date: dt.date, started_by=None) -> DunningRun:
    """Everything a run does: finish any earlier run that died half-way, plan
    this date, and hand every planned action to the delivery workers.

    Safe to call twice for the same date, from two beats or a manager and the
    schedule at once: planning takes batches in turn and constraints keep
    each step single; delivery claims each action before acting.
    """
    from ar_collections.delivery import actions_sweep_stranded, run_sweep_planned
    from ar_collections.worklist import worklist_refresh

    for earlier in runs_unfinished(before=run_date):
        # Only planning that died is finished as of the earlier date: a run
        # that planned every account then and is still sending has none left
        # to plan (accounts added since are this run's, as of this date).
        if earlier.planned_at is None:
            run_plan(run=earlier)
        run_sweep_planned(run=earlier)
        run_finish_if_done(run_id=earlier.pk)
    actions_sweep_stranded()
    run = run_start(run_date=run_date, started_by=started_by)
    run_plan(run=run)
    run_sweep_planned(run=run)
    run_finish_if_done(run_id=run.pk)
    # Notices a policy queues for review go on their collectors' worklists now,
    # not at the next daily check.
    worklist_refresh(on=run_date)
    # Read again: finishing updates the row, not this copy, which still says "running".
    run.refresh_from_db()
    return run
