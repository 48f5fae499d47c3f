"""Workflows over receivables. Keyword-only, typed, atomic."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Avg, Count, Exists, F, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from ar_collections import segmentation, worklist
from ar_collections.dunning import COD_OR_STRICTER, LIFTED, LIFTED_SAID, steps_in_force
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    FormSubmission,
    Invoice,
    InvoiceStatus,
    MissCause,
    PaymentBehaviour,
    Promise,
    PromiseStatus,
    StepAction,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from ar_collections.timeline import event_record
from arcrm.dates import format_day, months_between
from arcrm.db import MONEY, DaysBetween
from arcrm.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, ZERO, quantize
from arcrm.roles import require_act_on
from arcrm.text import person_name
from customers.models import Customer, EventKind, Segment, TimelineEvent

# Customers per aggregate query. Each batch is one SELECT over their invoices
# plus one upsert; 2,000 keeps a batch's rows and memory small while the
# number of statements stays independent of the size of any one account.
BEHAVIOUR_BATCH_SIZE = 2_000

_WEIGHT = models.DecimalField(max_digits=MONEY_MAX_DIGITS + 6, decimal_places=MONEY_DECIMAL_PLACES)
_DAYS = Decimal("0.01")

_BEHAVIOUR_FIELDS = [
    "computed_on",
    "invoices_settled",
    "invoices_settled_late",
    "avg_days_late",
    "weighted_days_late",
    "share_paid_late",
    "avg_days_late_90d",
    "avg_days_late_365d",
    "last_days_late",
    "open_invoices",
    "overdue_invoices",
    "max_days_overdue",
    "open_amount",
    "overdue_amount",
    "aging_current_amount",
    "aging_1_30_amount",
    "aging_31_60_amount",
    "aging_61_90_amount",
    "aging_over_90_amount",
    "other_currency_open_invoices",
]


def behaviour_refresh(*, on: dt.date, customer_ids: Iterable[int] | None = None, record: bool = True) -> int:
    """Recompute payment behaviour and segment for customers as of `on`.

    Set-based: one aggregate query and one upsert per batch of customers,
    whatever their number of invoices. A segment that changes is recorded on
    the customer's timeline with the before and after. Returns how many
    customers were refreshed. `record=False` leaves the recording to a caller
    that records the change itself (a manager's override, with its actor).
    """
    ids = Customer.objects.order_by("pk").values_list("pk", flat=True)
    if customer_ids is not None:
        ids = ids.filter(pk__in=list(customer_ids))
    refreshed = 0
    last_pk = 0
    while True:
        batch = list(ids.filter(pk__gt=last_pk)[:BEHAVIOUR_BATCH_SIZE])
        if not batch:
            return refreshed
        _refresh_batch(batch, on=on, record=record)
        refreshed += len(batch)
        last_pk = batch[-1]


# The accounts whose money moved by hand in this thread's open transaction,
# waiting for their refresh after its commit (see behaviour_refresh_on_commit).
_refresh_pending = threading.local()


def behaviour_refresh_on_commit(*, customer_ids: Iterable[int]) -> None:
    """Recompute the accounts' payment behaviour and segment once the money
    that moved on them by hand (a payment, a credit note, a credit applied, a
    write-off, a dispute settled with money) is committed: the account header
    then reasons from what is open now, not from what the last night saw.

    As of today and recorded as the nightly refresh is: a segment that changes
    goes on the timeline with its before and after, a manager's override
    stands. After the commit, so that it reads the money as committed and
    keeps no account locked meanwhile; every account the transaction touched
    is refreshed in one set-based refresh however many changes named it (a
    payments import's rows, a credit settling a dispute). Should the refresh
    fail, the money stands and the nightly refresh recomputes the figures.
    """
    pending = getattr(_refresh_pending, "ids", None)
    if pending is None:
        pending = _refresh_pending.ids = set()
    pending.update(customer_ids)
    # One callback per call, each taking whatever is pending: the first to run
    # after the commit refreshes them all, the rest find nothing left. (A
    # callback of a savepoint rolled back is dropped; its ids are then taken by
    # another's, or by the next commit's: a refresh recomputes from what is
    # committed, so one more than needed is harmless.)
    transaction.on_commit(_behaviour_refresh_pending, robust=True)


def behaviour_in_new_currency_on_commit(sender, *, customer: Customer, **kwargs) -> None:
    """Receiver of customers.services.currency_changed: the payment behaviour's
    figures are in the account's currency, recomputed in the new one once the
    change is committed, not shown under the new code until the night."""
    behaviour_refresh_on_commit(customer_ids=[customer.pk])


def _behaviour_refresh_pending() -> None:
    ids = getattr(_refresh_pending, "ids", None)
    _refresh_pending.ids = set()
    if ids:
        behaviour_refresh(on=timezone.localdate(), customer_ids=sorted(ids))
        review_steps_paid_skip(on=timezone.localdate(), customer_ids=sorted(ids))
        # A hold to lift on an account paid up, a dispute on an invoice paid in
        # full to close: asked now, not at the next night's refresh.
        worklist.paid_up_items(on=timezone.localdate(), customer_ids=sorted(ids))


def review_steps_paid_skip(*, on: dt.date, customer_ids: Iterable[int] | None = None) -> int:
    """Skip the steps waiting for a collector's review (of `customer_ids`'
    accounts, else all) whose listed invoices have all been paid or credited
    (or written off, or cancelled in the ERP) since they were planned, each
    with the reason on the timeline saying which (listed_invoices_moot_said), and close
    their worklist items: sending would only skip them, and a queue of paid
    accounts hides the ones that matter. A paused invoice is still open and
    keeps its step. Each step is claimed with a conditional update, so a
    collector deciding it at this moment keeps it. How many were skipped."""
    still_open = DunningActionInvoice.objects.filter(action=OuterRef("pk"),
                                                     invoice__status=InvoiceStatus.OPEN)
    waiting = DunningAction.objects.filter(status=ActionStatus.IN_REVIEW).exclude(Exists(still_open))
    if customer_ids is not None:
        waiting = waiting.filter(customer_id__in=list(customer_ids))
    skipped = 0
    # Bounded by what collectors have waiting, not by the ledger.
    for action in waiting.select_related("customer", "step").order_by("pk"):
        with transaction.atomic():
            reason = listed_invoices_moot_said(action, by=format_day(on))
            if waiting_step_skip(action, reason=reason, still=~Exists(still_open),
                                 status=ActionStatus.IN_REVIEW):
                WorkItem.objects.filter(kind=WorkKind.REVIEW, action=action, status=WorkStatus.OPEN).update(
                    status=WorkStatus.DONE, done_at=timezone.now(), back_from=None)
                skipped += 1
    return skipped


# How a listed invoice left what is asked for, as a skipped step says it: open
# last, for an invoice still owed that a pause holds (or with nothing left on it).
_MOOT_SAID = {InvoiceStatus.PAID: "paid", InvoiceStatus.WRITTEN_OFF: "written off",
              InvoiceStatus.CANCELLED: "cancelled in the ERP", InvoiceStatus.OPEN: "paused"}


def listed_invoices_moot_said(action: DunningAction, *, by: str) -> str:
    """Why a step asks for nothing any more, as its listed invoices left what
    it asks for by `by` (a day, "delivery", "approval"): "by 5 Aug 2025 every
    listed invoice was paid" (or written off, or cancelled in the ERP, or
    paused); when they went different ways, which went which: a collector
    reading "paid" of an invoice raised in error would look for money that
    never came. Called only once none of them is asked for."""
    numbers: dict[str, list[str]] = {}
    for number, status in action.lines.order_by("invoice__number").values_list("invoice__number",
                                                                               "invoice__status"):
        numbers.setdefault(status, []).append(number)
    ways = [status for status in _MOOT_SAID if status in numbers]
    said = " or ".join(_MOOT_SAID[status] for status in ways)
    if len(ways) > 1:
        which = [f"{', '.join(numbers[status])} {_MOOT_SAID[status]}" for status in ways]
        said += f" ({'; '.join(which)})"
    return f"by {by} every listed invoice was {said}"


def _behaviour_rows(customer_ids: list[int], *, on: dt.date, old_days: int):
    settled = Q(invoices__status=InvoiceStatus.PAID, invoices__settled_on__isnull=False)
    open_ = Q(invoices__status=InvoiceStatus.OPEN)
    own_currency = Q(invoices__currency=F("currency"))
    overdue = open_ & Q(invoices__due_date__lt=on)
    days_late = Greatest(DaysBetween("invoices__settled_on", "invoices__due_date"), 0)
    last_90 = settled & Q(invoices__settled_on__gt=on - dt.timedelta(days=90))
    last_365 = settled & Q(invoices__settled_on__gt=on - dt.timedelta(days=365))

    def open_sum(condition: Q) -> Coalesce:
        return Coalesce(
            Sum("invoices__open_amount", filter=open_ & own_currency & condition), ZERO,
            output_field=MONEY,
        )

    def due_between(newest: int, oldest: int | None) -> Q:
        """Overdue by newest..oldest days (inclusive), as a due-date range."""
        q = Q(invoices__due_date__lte=on - dt.timedelta(days=newest))
        if oldest is not None:
            q &= Q(invoices__due_date__gte=on - dt.timedelta(days=oldest))
        return q

    last_settled = (
        Invoice.objects.filter(
            customer=OuterRef("pk"), status=InvoiceStatus.PAID, settled_on__isnull=False
        )
        .order_by("-settled_on", "-pk")
        .annotate(late=Greatest(DaysBetween("settled_on", "due_date"), 0))
        .values("late")[:1]
    )
    return (
        Customer.objects.filter(pk__in=customer_ids)
        .order_by()
        .annotate(
            n_settled=Count("invoices", filter=settled),
            n_settled_late=Count(
                "invoices", filter=settled & Q(invoices__settled_on__gt=F("invoices__due_date"))
            ),
            avg_late=Avg(days_late, filter=settled),
            # Weighted by amounts in the account's currency only: without
            # exchange rates, JPY 900,000 outweighs EUR 1,000 only as a number.
            weighted_late_sum=Sum(
                days_late * F("invoices__total_amount"), filter=settled & own_currency, output_field=_WEIGHT
            ),
            settled_amount=Sum("invoices__total_amount", filter=settled & own_currency, output_field=_WEIGHT),
            avg_late_90=Avg(days_late, filter=last_90),
            avg_late_365=Avg(days_late, filter=last_365),
            # Counted in the account's currency, as the amounts the page sets
            # beside them: "EUR 500.00 (2 invoices)" must add up; other
            # currencies' invoices are counted apart in n_other_currency.
            n_open=Count("invoices", filter=open_ & own_currency),
            n_overdue=Count("invoices", filter=overdue & own_currency),
            # Most days overdue, in whatever currency: days need no exchange
            # rate, and an invoice in euros 120 days overdue is no less late
            # for the account's currency being dollars now.
            oldest_due=Max(DaysBetween(models.Value(on), "invoices__due_date"), filter=overdue),
            # In the account's currency, as the amounts the segment's reason sets beside it.
            oldest_due_own=Max(DaysBetween(models.Value(on), "invoices__due_date"),
                               filter=overdue & own_currency),
            n_other_currency=Count("invoices", filter=open_ & ~own_currency),
            open_total=open_sum(Q()),
            overdue_total=open_sum(due_between(1, None)),
            old_overdue_total=open_sum(due_between(old_days, None)),
            aging_current=open_sum(Q(invoices__due_date__gte=on)),
            aging_1_30=open_sum(due_between(1, 30)),
            aging_31_60=open_sum(due_between(31, 60)),
            aging_61_90=open_sum(due_between(61, 90)),
            aging_over_90=open_sum(due_between(91, None)),
            last_late=Subquery(last_settled),
        )
    )


def _days(value) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(_DAYS)


@transaction.atomic
def _refresh_batch(customer_ids: list[int], *, on: dt.date, record: bool) -> None:
    behaviours: list[PaymentBehaviour] = []
    changed: list[Customer] = []
    events: list[TimelineEvent] = []
    # Lock the batch's customers first (FOR UPDATE cannot go on the GROUP BY
    # query itself) so a segment override or card edit made at the same moment
    # is not overwritten by a segment computed from stale reads. In the order
    # of their ids, as an import takes them, so the two queue, never deadlock.
    list(Customer.objects.filter(pk__in=customer_ids).select_for_update().order_by("pk").values_list("pk"))
    # Promises broken in the last year: a sign of distress the invoices alone do not show.
    broken = dict(
        Promise.objects.filter(customer_id__in=customer_ids, status=PromiseStatus.BROKEN,
                               resolved_on__gt=on - dt.timedelta(days=365))
        .order_by().values("customer_id").annotate(n=Count("pk")).values_list("customer_id", "n")
    )
    old_days = segmentation.Rules().distressed_days_overdue
    for c in _behaviour_rows(customer_ids, on=on, old_days=old_days):
        settled_amount = c.settled_amount or ZERO
        behaviour = PaymentBehaviour(
            customer=c,
            computed_on=on,
            invoices_settled=c.n_settled,
            invoices_settled_late=c.n_settled_late,
            avg_days_late=_days(c.avg_late) or Decimal("0"),
            # An account paid only in other currencies weighs every invoice alike.
            weighted_days_late=(
                (Decimal(c.weighted_late_sum) / settled_amount).quantize(_DAYS)
                if settled_amount
                else _days(c.avg_late) or Decimal("0")
            ),
            share_paid_late=(
                (Decimal(c.n_settled_late) / c.n_settled).quantize(Decimal("0.0001"))
                if c.n_settled
                else Decimal("0")
            ),
            avg_days_late_90d=_days(c.avg_late_90),
            avg_days_late_365d=_days(c.avg_late_365),
            last_days_late=c.last_late,
            open_invoices=c.n_open,
            overdue_invoices=c.n_overdue,
            max_days_overdue=c.oldest_due or 0,
            open_amount=quantize(c.open_total),
            overdue_amount=quantize(c.overdue_total),
            aging_current_amount=quantize(c.aging_current),
            aging_1_30_amount=quantize(c.aging_1_30),
            aging_31_60_amount=quantize(c.aging_31_60),
            aging_61_90_amount=quantize(c.aging_61_90),
            aging_over_90_amount=quantize(c.aging_over_90),
            other_currency_open_invoices=c.n_other_currency,
        )
        behaviours.append(behaviour)
        facts = _facts(c, behaviour, on=on, broken_promises=broken.get(c.pk, 0),
                       old_overdue=quantize(c.old_overdue_total), max_days_overdue=c.oldest_due_own or 0)
        verdict = _with_override(c, segmentation.classify(facts))
        if (verdict.segment, verdict.reason) != (c.segment, c.segment_reason):
            if verdict.segment != c.segment and record:
                events.append(
                    TimelineEvent(
                        customer=c,
                        kind=EventKind.SEGMENT_CHANGED,
                        summary=(
                            f"Segment changed from {Segment(c.segment).label} to "
                            f"{Segment(verdict.segment).label}"
                        ),
                        details={
                            "before": {"segment": c.segment, "reason": c.segment_reason},
                            "after": {"segment": verdict.segment, "reason": verdict.reason},
                            "computed_on": on.isoformat(),
                        },
                    )
                )
            c.segment, c.segment_reason = verdict.segment, verdict.reason
            changed.append(c)

    PaymentBehaviour.objects.bulk_create(
        behaviours,
        update_conflicts=True,
        unique_fields=["customer"],
        update_fields=_BEHAVIOUR_FIELDS,
    )
    Customer.objects.bulk_update(changed, ["segment", "segment_reason"])
    TimelineEvent.objects.bulk_create(events)


def _with_override(customer: Customer, computed: segmentation.Verdict) -> segmentation.Verdict:
    """A manager's override wins; the reason keeps what the history says."""
    if not customer.segment_override:
        return computed
    return segmentation.Verdict(
        customer.segment_override,
        f"Set by a manager: {customer.segment_override_note} "
        f"(history says {Segment(computed.segment).label.lower()}: {computed.reason})"[:300],
    )


@transaction.atomic
def segment_override(*, customer: Customer, segment: str, note: str, actor, on: dt.date) -> Customer:
    """Set (or, with an empty segment, remove) a manager's segment override.

    Audited: the timeline records who, when, and the segment before and after.
    The segment and its reason are recomputed at once, not at the next night.
    """
    if not actor.has_perm("customers.act_on_any_customer"):
        raise PermissionDenied("Only a manager may override a customer's segment.")
    if segment and segment not in Segment.values:
        raise ValidationError({"segment": f"Unknown segment {segment!r}."})
    if segment and not note.strip():
        raise ValidationError({"note": "Say why the segment is overridden."})
    locked = Customer.objects.select_for_update().get(pk=customer.pk)
    # Checked under the lock: a form opened before another manager's change,
    # or sent twice, would record a decision that changed nothing.
    if not segment and not locked.segment_override:
        raise ValidationError({"segment": "No segment is overridden on this account: the computed segment "
                                          "applies already. Nothing was changed."})
    if segment and (segment, note.strip()) == (locked.segment_override, locked.segment_override_note):
        raise ValidationError({"segment": f"The segment is set to {Segment(segment).label} with this reason "
                                          "already. Nothing was changed."})
    before = {"segment": locked.segment, "override": locked.segment_override,
              "note": locked.segment_override_note}
    Customer.objects.filter(pk=locked.pk).update(
        segment_override=segment, segment_override_note=note.strip() if segment else ""
    )
    behaviour_refresh(on=on, customer_ids=[locked.pk], record=False)  # recorded below, with the manager
    locked.refresh_from_db()
    after = {"segment": locked.segment, "override": locked.segment_override,
             "note": locked.segment_override_note}
    # A removal keeps no note on the account: its reason lives on the timeline only.
    removed = "Manager's segment override removed" + (f": {note.strip()}" if note.strip() else "")
    # Why, and from which segment, on the timeline as a removal's reason is:
    # the collector reading the history sees why the account changed ladder.
    was = f" (was {Segment(before['segment']).label})" if before["segment"] != locked.segment else ""
    set_to = f"Segment set to {Segment(segment).label} by a manager{was}: {note.strip()}" if segment else ""
    TimelineEvent.objects.create(
        customer=locked,
        kind=EventKind.SEGMENT_CHANGED,
        actor=actor,
        summary=set_to if segment else removed,
        details={"before": before, "after": after, "note": note.strip()},
    )
    return locked


def _facts(
    customer: Customer, b: PaymentBehaviour, *, on: dt.date, broken_promises: int, old_overdue: Decimal,
    max_days_overdue: int,
) -> segmentation.Facts:
    return segmentation.Facts(
        special_bond=customer.special_bond,
        months_served=months_between(customer.customer_since, on),
        invoices_settled=b.invoices_settled,
        invoices_settled_late=b.invoices_settled_late,
        avg_days_late=b.avg_days_late,
        last_days_late=b.last_days_late,
        avg_days_late_90d=b.avg_days_late_90d,
        avg_days_late_365d=b.avg_days_late_365d,
        overdue_invoices=b.overdue_invoices,
        max_days_overdue=max_days_overdue,
        open_amount=b.open_amount,
        overdue_amount=b.overdue_amount,
        old_overdue_amount=old_overdue,
        currency=customer.currency,
        broken_promises=broken_promises,
    )


@transaction.atomic
def cause_record(*, customer: Customer, cause: str, actor, on: dt.date) -> DunningCycle:
    """Record why the account is behind; it steers the rest of the cycle
    (see dunning.CAUSE_LADDER). Red tape also re-sends the overdue invoices to
    the billing contact at once, after commit."""
    require_act_on(actor, customer)
    if cause not in MissCause.values:
        raise ValidationError({"cause": f"Unknown cause {cause!r}."})
    cycle = (
        DunningCycle.objects.select_for_update()
        .filter(customer=customer, closed_on__isnull=True)
        .first()
    )
    if cycle is None:
        raise ValidationError("Nothing is overdue on this account: there is no cycle to note a cause on.")
    before = cycle.cause
    cycle.cause, cycle.cause_noted_by = cause, actor
    cycle.save(update_fields=["cause", "cause_noted_by"])
    TimelineEvent.objects.create(
        customer=customer,
        kind=EventKind.NOTE,
        actor=actor,
        summary=f"Cause noted: {MissCause(cause).label}",
        details={"before": {"cause": before}, "after": {"cause": cause}, "cycle": cycle.number,
                 "noted_on": on.isoformat()},
        subject=cycle,
    )
    if cause == MissCause.RED_TAPE:
        from ar_collections.tasks import resend_overdue_invoices

        resend_overdue_invoices.delay_on_commit(customer.pk, on.isoformat())
    return cycle


@transaction.atomic
def action_decline(*, action: DunningAction, manager, note: str) -> DunningAction:
    """A manager declines a credit hold or switch to C.O.D. (or skips a manager
    review): the step is skipped with the manager's reason, and the ladder goes
    on from the next step.

    Audited like every exception: the timeline records who, when, why, and the
    status before and after.
    """
    if not manager.has_perm("customers.set_credit_terms"):
        raise PermissionDenied("Only a manager may decide on a credit hold or C.O.D.")
    note = note.strip()
    if not note:
        raise ValidationError({"note": "Say why you decline this step."})
    # Nothing to decline in terms the account has already (held by hand since
    # the page was opened): skipped as moot, the timeline says why.
    if credit_terms_in_force_skip(action_ids=[action.pk], actor=manager):
        return DunningAction.objects.select_related("step").get(pk=action.pk)
    # Conditional update: of two managers deciding at once (or one approving
    # while another declines) exactly one changes the row; the other is told.
    declined = DunningAction.objects.filter(
        pk=action.pk, status=ActionStatus.AWAITING_APPROVAL
    ).update(
        status=ActionStatus.SKIPPED, skip_reason=note[:300], reviewed_by=manager, done_at=timezone.now()
    )
    action = DunningAction.objects.select_related("step", "customer").get(pk=action.pk)
    if not declined:
        raise ValidationError(
            f"This step is not waiting for approval ({action.get_status_display()})."
        )
    # Linked to the step's invoices, as its approval is: filtering the
    # timeline by one of them shows the decision either way.
    event_record(
        customer=action.customer,
        kind=EventKind.EXCEPTION,
        actor=manager,
        invoices=list(action.lines.values_list("invoice_id", flat=True)),
        summary=f"{action.step.get_action_display()} declined by {person_name(manager)}: {note}",
        details={
            "action": action.pk,
            "before": {"status": ActionStatus.AWAITING_APPROVAL},
            "after": {"status": ActionStatus.SKIPPED, "skip_reason": action.skip_reason},
            "note": note,
        },
        subject=action,
    )
    # Declined as the ladder's last step, with money still overdue: nothing
    # more goes out, and the collector is asked what next.
    from ar_collections.worklist import ladder_ended_items  # it imports this module

    ladder_ended_items(on=timezone.localdate(), customer_ids=[action.customer_id], again=True, actor=manager)
    return action


ALREADY_ON_HOLD = "the account is already on credit hold"
# Why such a step was skipped without a manager's decision (the terms a switch
# to C.O.D. asks for nothing on say theirs in dunning.COD_OR_STRICTER).
TERMS_IN_FORCE = {ALREADY_ON_HOLD, *(said.already for said in COD_OR_STRICTER.values())}

# What each step that changes the terms of trade asks for, as a condition on
# its action's account: a step asking for what the account already has waits
# for no manager. A hold and C.O.D. are steps of their own: an account on hold
# may still be switched to C.O.D., and one on C.O.D. held.
_IN_FORCE = {
    StepAction.CREDIT_HOLD: Q(customer__on_credit_hold=True),
    StepAction.SWITCH_TO_COD: Q(customer__terms_type__in=list(COD_OR_STRICTER)),
}


def credit_terms_in_force(action: DunningAction) -> tuple[str, Q]:
    """Why the step asks for terms its account (as loaded) has already, or "",
    and the condition on the account under which that reason holds."""
    customer = action.customer
    # The rule the ladders pass such steps over by (dunning.steps_in_force).
    if action.step.action not in steps_in_force(on_credit_hold=customer.on_credit_hold,
                                                terms_type=customer.terms_type):
        return "", Q(pk__in=[])
    if action.step.action == StepAction.CREDIT_HOLD:
        return ALREADY_ON_HOLD, _IN_FORCE[StepAction.CREDIT_HOLD]
    return COD_OR_STRICTER[customer.terms_type].already, Q(customer__terms_type=customer.terms_type)


def asking_terms_in_force() -> Q:
    """For a DunningAction query: a step changing the terms of trade to what
    its account has already (see _IN_FORCE). The approvals leave these out as
    they read, until credit_terms_in_force_skip skips them."""
    in_force = Q(pk__in=[])
    for step_action, condition in _IN_FORCE.items():
        in_force |= Q(step__action=step_action) & condition
    return in_force


def credit_terms_in_force_skip(
    *, customer_ids: Iterable[int] | None = None, action_ids: Iterable[int] | None = None, actor=None
) -> int:
    """Credit-hold steps waiting for a manager on accounts already on credit
    hold (put there by hand, or by an earlier cycle's hold), and switches to
    C.O.D. on accounts already on C.O.D. or prepayment, ask for nothing: each
    is skipped with the reason, so no manager is asked to weigh it, and the
    ladder, whose next step waits for a step waiting, goes on.

    The one way such a step leaves the queue: run by the daily refresh
    (worklist.worklist_refresh) over every account, once the account card
    changes the terms (`customer_ids`, `actor` who changed them), and for the
    step a manager decides (`action_ids`, under the decision's locks). Not as
    the approvals open: a page read writes nothing; they leave such a step
    out (asking_terms_in_force) until then. Returns how many were skipped."""
    waiting = DunningAction.objects.filter(asking_terms_in_force(), status=ActionStatus.AWAITING_APPROVAL)
    if customer_ids is not None:
        waiting = waiting.filter(customer_id__in=list(customer_ids))
    if action_ids is not None:
        waiting = waiting.filter(pk__in=list(action_ids))
    skipped = 0
    for action in waiting.select_related("customer", "step").order_by("pk"):
        reason, still = credit_terms_in_force(action)
        # On the terms as they stand now: an account whose terms changed since
        # they were read keeps its step.
        skipped += waiting_step_skip(action, reason=reason, actor=actor, still=still)
    return skipped


# What no longer happens when a waiting step is skipped, by what it waited for.
NO_LONGER_NEEDED = {ActionStatus.AWAITING_APPROVAL: "no manager's decision is needed",
                    ActionStatus.IN_REVIEW: "no review is needed"}


def waiting_step_skip(action: DunningAction, *, reason: str, still: Q, actor=None,
                      status: str = ActionStatus.AWAITING_APPROVAL) -> bool:
    """Skip a step waiting (in `status`: for a manager's decision, or a
    collector's review) that asks for nothing any more, the reason on the
    timeline. A conditional update on its still waiting and on `still` (what
    makes it moot, as it stands now): someone deciding it at this moment
    keeps it. Whether it was skipped."""
    reason = reason[:DunningAction._meta.get_field("skip_reason").max_length]
    with transaction.atomic():
        waiting = DunningAction.objects.filter(still, pk=action.pk, status=status)
        if not waiting.update(status=ActionStatus.SKIPPED, skip_reason=reason, done_at=timezone.now()):
            return False
        event_record(
            customer=action.customer, kind=EventKind.DUNNING, subject=action, actor=actor,
            invoices=list(action.lines.values_list("invoice_id", flat=True)),
            summary=f"Step {action.step.position} ({action.step.get_action_display()}) skipped: "
            f"{reason}; {NO_LONGER_NEEDED[status]}",
            details={"action": action.pk, "skip_reason": reason, "before": {"status": status},
                     "after": {"status": ActionStatus.SKIPPED}},
        )
    return True


def credit_terms_in_force_skip_on_commit(sender, *, customer: Customer, actor, **kwargs) -> None:
    """Receiver of customers.services.credit_terms_changed: the steps the new
    terms make moot leave the approvals once the change is committed, not at
    the next night. After the commit, so that the account's lock is released
    before the steps' are taken (a manager approving one takes the step's
    first); should it fail, the change stands and the daily refresh skips them."""
    transaction.on_commit(
        lambda: credit_terms_in_force_skip(customer_ids=[customer.pk], actor=actor), robust=True
    )
    # A hold lifted ends the item that asked for it at once.
    transaction.on_commit(
        lambda: worklist.hold_release_items(on=timezone.localdate(), customer_ids=[customer.pk], actor=actor),
        robust=True,
    )


def cycle_terms_lifted_record(sender, *, customer: Customer, actor, before: dict, by_erp: bool = False,
                              **kwargs) -> None:
    """Receiver of customers.services.credit_terms_changed: a credit hold
    lifted, or C.O.D. or prepayment put back to other terms, while the
    account has a cycle open (money overdue) is a decision against that step
    for the rest of the cycle, as a decline is: the ladder passes over it
    (dunning.declined_in), where it would otherwise ask a manager for it
    again at the next run. Recorded on the cycle, in the change's
    transaction, with what it means on the timeline. A new cycle may ask again.
    Only a person allowed to set credit terms decides so, on the card or
    approving a release: the ERP's accounts file (`by_erp`, as a file or
    through the API) changing the terms is the ERP's record, whoever sent it,
    a manager uploading it too, not a decision against the step, and the
    ladder may still ask a manager."""
    if by_erp or actor is None or not actor.has_perm("customers.set_credit_terms"):
        return
    lifted = []
    if before.get("on_credit_hold") and not customer.on_credit_hold:
        lifted.append(StepAction.CREDIT_HOLD)
    if before.get("terms_type") in COD_OR_STRICTER and customer.terms_type not in COD_OR_STRICTER:
        lifted.append(StepAction.SWITCH_TO_COD)
    if not lifted:
        return
    on = timezone.localdate()
    cycle = DunningCycle.objects.select_for_update().filter(customer=customer, closed_on__isnull=True).first()
    if cycle is None:
        return
    for action in lifted:
        # The first lift of the cycle stands: lifted again after a hold put back by hand, it says the same.
        if getattr(cycle, LIFTED[action]) is None:
            setattr(cycle, LIFTED[action], on)
    cycle.save(update_fields=list(LIFTED.values()))
    for action in lifted:
        event_record(
            customer=customer, kind=EventKind.DUNNING, actor=actor, subject=cycle,
            summary=f"{LIFTED_NAMES[action]} lifted while money is overdue: the ladder passes over its "
                    f"{LIFTED_SAID[action].removeprefix('the ')} for the rest of cycle {cycle.number}; "
                    "a new cycle may ask for it again.",
            details={"cycle": cycle.number, "lifted": action, "lifted_on": on.isoformat()},
        )


# What was lifted, as a timeline entry begins.
LIFTED_NAMES = {StepAction.CREDIT_HOLD: "Credit hold", StepAction.SWITCH_TO_COD: "C.O.D."}


# Said when a form's one-time token was taken: the form was carried out once.
SENT_ALREADY = ("This form was sent already and carried out then (see the timeline): nothing was recorded or "
                "sent again. To send another, open the form again.")


# How long a carried-out form's token is kept. What it guards against comes
# within seconds or minutes (a second click, a retry on a slow network, the
# page sent again from another tab); kept for months past that, tokens would
# only grow the table.
SUBMISSIONS_KEPT = dt.timedelta(days=90)


def submissions_prune(*, now: dt.datetime) -> int:
    """Forget the tokens of forms carried out more than SUBMISSIONS_KEPT
    before `now` (the daily check). Returns how many."""
    deleted, _ = FormSubmission.objects.filter(created_at__lt=now - SUBMISSIONS_KEPT).delete()
    return deleted


def submission_record(*, token: uuid.UUID) -> None:
    """Take a form's one-time token (workspace_forms._sent_once) in the
    caller's transaction, which then carries the form out: the same form sent
    again finds it taken and is refused. Sent twice at once, the second
    insert waits on the unique index for the first's transaction: committed,
    the second is refused; rolled back (the form was refused), it goes on."""
    try:
        with transaction.atomic():
            FormSubmission.objects.create(token=token)
    except IntegrityError:
        raise ValidationError(SENT_ALREADY) from None


_T = TypeVar("_T")


def submission_taken_check(*, token: uuid.UUID) -> None:
    """Refuse a form whose one-time token was taken already (submission_record)."""
    if FormSubmission.objects.filter(token=token).exists():
        raise ValidationError(SENT_ALREADY, code="sent_already")


def carried_out_once(form, perform: Callable[[], _T]) -> _T:
    """perform(), in one transaction with taking the form's one-time token
    (arcrm.forms.one_time_token) where it came with one: the same form sent
    twice records and sends once. A form refused gives its token back."""
    with transaction.atomic():
        if token := form.cleaned_data.get("submission"):
            submission_record(token=token)
        return perform()
