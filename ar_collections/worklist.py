"""The collector's worklist: what to do today, in an order that is shown and
explained rather than a hidden score.

Items are rows (WorkItem) so they can be completed, snoozed and reassigned.
They come from dunning (call tasks, notices queued for review), from the
daily check of promises and plans, from disputes waiting for an answer, from
accounts on the personal track and from late fees and interest still owed
after every invoice they were charged on is paid. Each item's `key` names its source, so
creating it twice creates it once.

The priority is the sum of four parts, each capped and each printed next to
the item:
- money: 1 point per 1,000 overdue in the account's currency, or per the
  amount a manager set for that currency (MoneyPointScale: amounts are never
  converted, and 1,000 yen is not 1,000 euros), at most 40;
- lateness: 1 point per 3 days the oldest open invoice is overdue today, in
  whatever currency (days need no exchange rate), at most 30;
  both leave out what is under open dispute, as the account page does: the
  disputed part of an invoice's money, and the days of one wholly disputed;
- risk: by segment (distressed 20, systematic late 12, special bond 8, new 5,
  occasional slip 3, prompt 0);
- promises: a broken promise or missed instalment 20, a promise whose day has come 10;
  an account's "ladder finished" item 20 while a promise or plan it broke has
  an invoice left that nothing holds (the item took in the break's own).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import statistics
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextChoices,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Concat, Floor, Least, NullIf, RowNumber, Trim, TruncDate
from django.db.models.lookups import Exact
from django.utils import timezone

from ar_collections.models import (
    NOT_CARRIED_OUT,
    ActionStatus,
    Dispute,
    DisputeStatus,
    DunningAction,
    DunningCycle,
    DunningPause,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Invoice,
    InvoiceStatus,
    LateCharge,
    MissCause,
    MoneyPointScale,
    PauseKind,
    PaymentPlan,
    PlanStatus,
    Promise,
    PromiseStatus,
    StepAction,
    WorkItem,
    WorkKind,
    WorkStatus,
    WriteOff,
    account_pause_holds,
    money_field,
    why_not_carried_out,
)
from ar_collections.numbers import with_disputed_part
from ar_collections.paper import document_name, documents_in_queue
from ar_collections.timeline import event_record
from arcrm.dates import format_day
from arcrm.db import DaysBetween
from arcrm.money import ZERO, by_currency, format_amounts
from arcrm.paging import Keyset
from arcrm.roles import COLLECTOR, MANAGER, can_act_on, role_of
from arcrm.text import nothing_seen, one_line, person_name, shorten, shorten_words
from customers.cover import covered_by, stand_in_for, stand_ins
from customers.models import Contact, Customer, EventKind, Segment, TermsType, TimelineEvent
from customers.owners import account_owners

RISK_POINTS = {
    Segment.DISTRESSED: 20,
    Segment.SYSTEMATIC_LATE: 12,
    Segment.SPECIAL_BOND: 8,
    Segment.NEW: 5,
    Segment.OCCASIONAL_SLIP: 3,
    Segment.PROMPT: 0,
}
PROMISE_POINTS = {WorkKind.PROMISE_BROKEN: 20, WorkKind.INSTALMENT_MISSED: 20, WorkKind.PROMISE_DUE: 10}
MONEY_POINTS_PER = 1000
MONEY_POINTS_MAX = 40
DAYS_PER_POINT = 3
DAYS_POINTS_MAX = 30


def item_add(
    *, kind: str, key: str, customer, title: str, due_on: dt.date, assignee=None, again: bool = False,
    **source,
) -> bool:
    """Put an item on the account collector's list (or `assignee`'s; their
    stand-in's while they are away), unless it is there already (the unique
    key makes a concurrent second add find the first); `again` opens it anew
    if it was done."""
    new = WorkItem(kind=kind, customer=customer, title=title, due_on=due_on,
                   assignee_id=assignee.pk if assignee else customer.collector_id)
    items_covered([new], on=timezone.localdate())
    item, created = WorkItem.objects.get_or_create(key=key, defaults={
        "kind": kind, "customer": customer, "title": new.title[:300], "due_on": due_on,
        "assignee_id": new.assignee_id, "covering_for_id": new.covering_for_id, **source,
    })
    if again and not created and item.status != WorkStatus.OPEN:
        [(assignee_id, title, covering_for_id)] = _items_back([item], [title],
                                                              collector_ids=[customer.collector_id],
                                                              on=timezone.localdate())
        WorkItem.objects.filter(pk=item.pk).update(status=WorkStatus.OPEN, due_on=due_on, done_at=None,
                                                   done_by=None, snoozed_until=None, assignee_id=assignee_id,
                                                   title=title, covering_for_id=covering_for_id)
    return created


def items_covered(items: list[WorkItem], *, on: dt.date) -> None:
    """Items about to be created for someone away on `on` go to whoever
    covers for them, and say so in their title ("… (covering for Anna
    Smith)"), which tells why they came to them, and in their data
    (`covering_for`); once the absence is over they go back
    (items_back_from_cover). One query, two with anyone away."""
    cover = stand_ins(on=on)
    if not cover or not any(item.assignee_id in cover for item in items):
        return
    names = {user.pk: person_name(user) for user in get_user_model().objects.filter(pk__in=list(cover))}
    limit = WorkItem._meta.get_field("title").max_length
    for item in items:
        if item.assignee_id in cover:
            said = f" (covering for {names[item.assignee_id]})"
            item.title = shorten(item.title, limit - len(said)) + said
            item.covering_for_id = item.assignee_id
            item.assignee_id = cover[item.assignee_id]


def _title_covered(item: WorkItem, title: str, *, collector_id: int | None, on: dt.date) -> str:
    return _titles_covered([item], [title], collector_ids=[collector_id], on=on)[0]


def _titles_covered(items: list[WorkItem], titles: list[str], *, collector_ids: list[int | None],
                    on: dt.date) -> list[str]:
    """The new `titles` of these items, each said as items_covered says a new
    item's when the item is with whoever covers on `on` for its account's
    collector (`collector_ids`): a title rewritten while it is there keeps
    telling its holder why it came to them ("… (covering for Anna Smith)")."""
    said = [WorkItem(title=title, assignee_id=collector_id)
            for title, collector_id in zip(titles, collector_ids, strict=True)]
    items_covered(said, on=on)
    limit = WorkItem._meta.get_field("title").max_length
    return [(covered.title if covered.assignee_id == item.assignee_id else title)[:limit]
            for item, title, covered in zip(items, titles, said, strict=True)]


# What items_covered adds to a title, taken off before an item coming back
# is routed again: it says it once, for the cover of the day.
_COVERING_SAID = re.compile(r" \(covering for [^()]*\)$")


def _items_back(items: list[WorkItem], titles: list[str], *, collector_ids: list[int | None],
                on: dt.date) -> list[tuple[int | None, str, int | None]]:
    """Who gets each of these items coming back (done, open again) on `on`,
    its title, and whom it is with them for (`covering_for`), as a new item
    is routed (items_covered): one whose holder is away goes to whoever
    covers for them, "(covering for …)" in its title; one already with
    whoever covers for its account's collector (`collector_ids`) keeps
    saying why it came to them (_titles_covered). Otherwise a done item came
    back on the list of someone on holiday, seen by the stand-in only as
    someone else's. One a stand-in held for someone away is theirs again: it
    is routed from them, so it goes to them once they are back."""
    titles = [_COVERING_SAID.sub("", title) for title in titles]
    routed = [WorkItem(title=title, assignee_id=item.covering_for_id or item.assignee_id)
              for item, title in zip(items, titles, strict=True)]
    items_covered(routed, on=on)
    kept = _titles_covered(items, titles, collector_ids=collector_ids, on=on)
    return [(to.assignee_id, to.title, to.covering_for_id)
            if to.assignee_id != item.assignee_id or to.covering_for_id else (item.assignee_id, title, None)
            for item, to, title in zip(items, routed, kept, strict=True)]


def items_back_from_cover(*, on: dt.date) -> int:
    """Open items that went to a stand-in only because someone was away
    (`covering_for`) go to whoever covers for that person on `on`: to the
    person themselves once they are back, the title and the timeline saying
    who had it meanwhile (`back_from`, said beside the item while it is open
    with them); or to their stand-in of the day. Items handed over
    on purpose have no `covering_for` and stay; done items stay done. Run
    twice, the second finds nothing to move. Returns how many moved."""
    cover = stand_ins(on=on)
    moved = 0
    for item in (WorkItem.objects.filter(status=WorkStatus.OPEN, covering_for__isnull=False)
                 .select_related("customer", "assignee", "covering_for").order_by("pk")):
        owner, holder = item.covering_for, item.assignee
        to = cover.get(owner.pk, owner.pk)
        if to == item.assignee_id:
            continue
        if to == owner.pk:
            title, back_from_id = _COVERING_SAID.sub("", item.title), item.assignee_id
            covering_for_id = None
            summary = (f"Worklist: back to {person_name(owner)}, back at work, from "
                       f"{person_name(holder) if holder else 'nobody'}, who covered for them — {title}")
        else:
            taker = get_user_model().objects.get(pk=to)
            title, covering_for_id, back_from_id = item.title, owner.pk, None
            summary = (f"Worklist: handed from {person_name(holder) if holder else 'nobody'} to "
                       f"{person_name(taker)}, who covers for {person_name(owner)} today — {title}")
        # Conditional: one ticked off, handed over or moved by another run meanwhile stays as it is.
        if WorkItem.objects.filter(pk=item.pk, status=WorkStatus.OPEN, assignee_id=item.assignee_id,
                                   covering_for_id=owner.pk).update(
                assignee_id=to, title=title, covering_for_id=covering_for_id, back_from_id=back_from_id) == 0:
            continue
        item.title = title
        _record(item, None, summary)
        moved += 1
    return moved


def items_handed_back(*, on: dt.date) -> int:
    """Open items left with someone who may no longer work their account (a
    stand-in once the absence is over, or someone a manager handed one to
    while they covered) go to whoever works the account on `on`: its
    collector, or their stand-in. Otherwise nobody could act on them: the
    holder gets 403 on the account, and its collector does not see them.
    Each hand-back is on the account's timeline. Returns how many moved.
    Those that went to a stand-in only for an absence go back first
    (items_back_from_cover), to whom they are for. An item handed over on
    purpose (`handed_by`) stays with its holder while they still work
    accounts at all: they took it, with its reason, until it is done."""
    moved = items_back_from_cover(on=on)
    cover = stand_ins(on=on)
    may_work_any: dict[int, bool] = {}
    may_hold: dict[int, bool] = {}
    for item in (WorkItem.objects.filter(status=WorkStatus.OPEN, customer__collector__isnull=False,
                                         assignee__isnull=False)
                 .exclude(assignee_id=F("customer__collector_id"))
                 .select_related("customer__collector", "assignee").order_by("pk")):
        holder, collector_id = item.assignee, item.customer.collector_id
        if holder.pk not in may_work_any:
            may_work_any[holder.pk] = holder.is_active and holder.has_perm("customers.act_on_any_customer")
            may_hold[holder.pk] = holder.is_active and holder.has_perm("collections.change_workitem")
        if may_work_any[holder.pk] or (holder.is_active and cover.get(collector_id) == holder.pk):
            continue
        if item.handed_by_id is not None and may_hold[holder.pk]:
            continue  # handed to them on purpose: theirs until done (item_reassign)
        to = cover.get(collector_id, collector_id)
        # Held now for the account's collector if it goes to their stand-in; no
        # longer for whoever it was held for before (an account since passed
        # to another collector), whose absence would take it back there.
        if WorkItem.objects.filter(pk=item.pk, status=WorkStatus.OPEN, assignee_id=holder.pk).update(
                assignee_id=to, covering_for_id=collector_id if to != collector_id else None,
                back_from_id=None) == 0:
            continue  # closed or handed on meanwhile
        taker = item.customer.collector if to == collector_id else get_user_model().objects.get(pk=to)
        _record(item, None, f"Worklist: handed back from {person_name(holder)} to {person_name(taker)}, "
                f"who works the account today — {item.title}")
        moved += 1
    return moved


def items_handed_back_on_commit(sender, *, on: dt.date, **kwargs) -> None:
    """Receiver of customers.services.cover_ended and cover_recorded: once
    the end or the new absence is committed."""
    transaction.on_commit(lambda: items_handed_back(on=on), robust=True)


def items_close(*, actor=None, because: str = "", details: dict | None = None, **source) -> int:
    """Close the open items about a source that has ended (a dispute resolved, a promise kept).
    With `because`, each item's end goes on its account's timeline with the
    reason (and `details`), as an item a person ticks off does: it ends by
    what someone did elsewhere, and the collector looking for it should see
    why it went."""
    items = WorkItem.objects.filter(status=WorkStatus.OPEN, **source)
    if not because:
        return items.update(status=WorkStatus.DONE, done_at=timezone.now(), done_by=actor, back_from=None,
                            handed_by=None)
    return _items_end(items, actor=actor, because=because, details=details)


def _items_end(items: QuerySet[WorkItem], *, because: str, actor=None, details: dict | None = None) -> int:
    """Close the open ones of `items`, each with why on its account's
    timeline, in a few statements whatever their number: the daily refresh
    closes them over every account at once, and a query per item would make
    a busy morning's refresh thousands of round trips."""
    # Locked and read first: an item closed meanwhile by someone else is theirs
    # to record. Atomic of its own: the daily refresh calls this outside any
    # transaction, where a lock could not be taken at all.
    with transaction.atomic():
        closing = list(items.filter(status=WorkStatus.OPEN).select_for_update(of=("self",))
                       .only("pk", "customer_id", "kind", "title").order_by("pk"))
        if not closing:
            return 0
        WorkItem.objects.filter(pk__in=[i.pk for i in closing]).update(
            status=WorkStatus.DONE, done_at=timezone.now(), done_by=actor, back_from=None, handed_by=None)
        _records(closing, actor, [f"Worklist: done — {item.title}; {because}" for item in closing],
                 **(details or {}))
    return len(closing)


# The broken commitments items are about: the item's field, and its invoices' relation to it.
BROKEN_COMMITMENTS = {WorkKind.PROMISE_BROKEN: ("promise", "promises"),
                      WorkKind.INSTALMENT_MISSED: ("plan", "payment_plans")}


def _promise_holds(*, on: dt.date) -> Exists:
    """For an Invoice query: an open promise pauses dunning of the invoice on
    `on`. The planner reads the promise's pause, which it has only on the
    invoices it pays in full (workspace.promise_record): a promise paying
    part of an invoice (EUR 0.01 of it, say) names it, but dunning goes on
    for it, and so the list must not take it as held."""
    return Exists(DunningPause.objects.active(on=on).filter(kind=PauseKind.PROMISE, invoice=OuterRef("pk")))


def _disputed_in_full(*, on: dt.date) -> Exists:
    """For an Invoice query: an open dispute of all it owes holds it on `on`
    (models.disputed_in_full, as the planner reads it: dunning.DISPUTED_IN_PART)."""
    from ar_collections import dunning  # it imports this module

    return Exists(DunningPause.objects.active(on=on).filter(invoice=OuterRef("pk"), kind=PauseKind.DISPUTE)
                  .exclude(dunning.DISPUTED_IN_PART))


def _committed(*, on: dt.date) -> Q:
    """For an Invoice query: an open promise paying it in full or a live plan
    (in force or waiting for a manager) holds it on `on`."""
    live_plans = PaymentPlan.objects.filter(status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL])
    return _promise_holds(on=on) | Exists(live_plans.filter(invoices=OuterRef("pk")))


def _followed_up(*, on: dt.date) -> Q:
    """For an Invoice query: what follows up a broken promise or plan holds
    it on `on`: a promise or plan (_committed), or an open dispute of all it
    owes. A dispute of part of it leaves the rest to chase."""
    return _committed(on=on) | _disputed_in_full(on=on)


def _left_to_chase(kind: str, *, on: dt.date) -> Exists:
    """For a WorkItem query of `kind` (BROKEN_COMMITMENTS): the broken promise
    or plan has an invoice still open that nothing following it up holds on
    `on` (_followed_up)."""
    source, invoices_of = BROKEN_COMMITMENTS[kind]
    return Exists(Invoice.objects.filter(**{invoices_of: OuterRef(source)}, status=InvoiceStatus.OPEN)
                  .exclude(_followed_up(on=on)))


def items_followed_up(*, because: str, actor=None, invoices=None, on: dt.date | None = None) -> int:
    """Close the items about a broken promise or a missed instalment once
    every invoice of it still open is held on `on` (today by default) by a
    new promise paying it in full or a plan (one the collector agreed with
    the customer after the break, or a plan waiting for a manager, who puts a
    "tell the customer" item on the list if they reject it): the break has
    been followed up, and the item asks for nothing more.
    `invoices`: only the items about one of these (a new promise's or plan's),
    else every account's; those with nothing open left close as settled
    (worklist_refresh), not as followed up."""
    on = on or timezone.localdate()
    closed = 0
    for kind, (source, _) in BROKEN_COMMITMENTS.items():
        items = (WorkItem.objects.filter(status=WorkStatus.OPEN, kind=kind)
                 .exclude(_left_to_chase(kind, on=on)))
        if invoices is not None:
            items = items.filter(**{f"{source}__invoices__in": [i.pk for i in invoices]})
        pks = set(items.values_list("pk", flat=True))
        if pks:
            # Marked so on the timeline: a follow-up that comes to nothing
            # brings the item back (items_follow_up_lost).
            closed += items_close(actor=actor, because=because, details={"followed_up": True}, pk__in=pks)
    # The accounts whose ladder has no step left, and whose overdue money the
    # new promise or plan now holds (all of it), have had their next action decided.
    closed += ladder_items_followed_up(
        because=because, actor=actor, on=on,
        customer_ids=None if invoices is None else {i.customer_id for i in invoices})
    return closed


def items_follow_up_lost(*, invoices, because: str, on: dt.date, actor=None) -> int:
    """Open again the items about a broken promise or a missed instalment
    that items_followed_up closed, once what followed them up holds nothing
    after all (a plan a manager rejected, or one withdrawn before a manager
    decided): the debt is left to chase, and the break not followed up. Only
    the items about one of `invoices` (the lost follow-up's) with an invoice
    left to chase that no open promise pays in full nor live plan holds, and only if the
    follow-up was their last end: one ticked off by hand since stays done.
    Each comes back once, due `on`, with `because` on the timeline."""

    reopened = 0
    for kind, (source, _) in BROKEN_COMMITMENTS.items():
        pks = set(WorkItem.objects.filter(status=WorkStatus.DONE, kind=kind)
                  .filter(**{f"{source}__invoices__in": [i.pk for i in invoices]})
                  .filter(_left_to_chase(kind, on=on)).values_list("pk", flat=True))
        # Locked: a refresh or a second decision at the same moment finds it open and leaves it.
        for item in (WorkItem.objects.select_for_update(of=("self",)).select_related("customer")
                     .filter(pk__in=pks, status=WorkStatus.DONE).order_by("pk")):
            ended = (TimelineEvent.objects.for_subject(item).filter(kind=EventKind.WORK)
                     .order_by("-occurred_at", "-pk").first())
            if ended is None or not ended.details.get("followed_up"):
                continue
            [(item.assignee_id, item.title, item.covering_for_id)] = _items_back(
                [item], [item.title], collector_ids=[item.customer.collector_id], on=on)
            WorkItem.objects.filter(pk=item.pk).update(status=WorkStatus.OPEN, due_on=on, done_at=None,
                                                       done_by=None, snoozed_until=None,
                                                       assignee_id=item.assignee_id, title=item.title,
                                                       covering_for_id=item.covering_for_id)
            _record(item, actor, f"Worklist: back — {item.title}; {because}", reopened=True)
            reopened += 1
    return reopened


# --- Ladders with no step left ------------------------------------------------------


def _overdue_unheld(*, on: dt.date) -> QuerySet[Invoice]:
    """Invoices overdue on `on` that nothing holds: no open promise paying
    them in full, live plan (in force or waiting for a manager) nor open
    dispute of all they owe (_followed_up), nor a pause in force on them or
    their account (a manual hold, an approved exception, a write-off
    waiting: models.account_pause_holds), each with `unheld_amount`: what it
    owes less what a dispute of part of it holds back, as the planner reads
    disputes (dunning.eligible_invoices). Money nobody is doing anything
    about, once the ladder has nothing more to send: a dispute of EUR 1.00
    of an invoice leaves the rest of it to chase. A finished ladder's first
    item and its comeback (ladder_items_back) both read it."""
    from ar_collections import dunning  # it imports this module

    # Every pause in force on the invoice or its account, a dispute of all it
    # owes among them (what _followed_up adds to a promise or plan).
    paused = DunningPause.objects.active(on=on).filter(
        Q(customer=OuterRef("customer_id"), invoice=OuterRef("pk")) | account_pause_holds()
    ).exclude(dunning.DISPUTED_IN_PART)
    return Invoice.objects.filter(status=InvoiceStatus.OPEN, open_amount__gt=0, due_date__lt=on).exclude(
        _committed(on=on) | Exists(paused)
    ).annotate(unheld_amount=F("open_amount") - dunning.disputed_part(on=on))


def ladders_ended(*, on: dt.date, customer_ids=None) -> dict[int, tuple[int, int]]:
    """The accounts (among `customer_ids`, else all) whose open cycle's
    ladder has no step left for it, as the planner reads it
    (dunning.Ladder.next_after: a cycle switched onto another ladder, its
    tone, the steps it took, the steps its account's terms put in force
    already): {customer id: (cycle id, the cycle's last
    action id)}. Not one whose last step still waits for a person, or to go
    out or be posted (that step comes first), nor one the next run closes
    (nothing it chased is open), nor one with no ladder for its segment at all.
    A few queries for any number of cycles, as the run plans them."""
    from ar_collections import dunning  # it imports this module

    book = dunning.ladders()
    accounts = Q() if customer_ids is None else Q(customer_id__in=list(customer_ids))
    over = dunning.cycles_over(accounts, book, on=on).values("pk")
    stands = list(
        DunningCycle.objects.filter(accounts, closed_on__isnull=True).exclude(pk__in=over)
        .values("pk", "customer_id", "customer__segment", "customer__on_credit_hold", "customer__terms_type",
                "cause", *dunning.CYCLE_COLUMNS)
        .annotate(**dunning.CYCLE_STAND, last_action=Max("actions__pk"))
    )
    routes = {}
    for stand in stands:
        if stand["last_action"] is None or stand["pending"] or stand["unsent"] or stand["unposted"]:
            continue
        ladder, switched = dunning.cycle_ladder(book, segment=stand["customer__segment"],
                                                cause=stand["cause"], stand=stand)
        if ladder is not None:
            routes[stand["pk"]] = (stand, ladder, switched)
    # Switched cycles past the end of their ladder: the steps they took, to
    # know whether its last one is among them (as the planner asks).
    past = [pk for pk, (stand, ladder, switched) in routes.items()
            if switched and ladder.next_after(stand["position"]) is None]
    taken: dict[int, set[tuple[str, int]]] = {}
    for cycle_id, segment, position in (
        DunningAction.objects.filter(cycle_id__in=past)
        .values_list("cycle_id", "step__policy__segment", "step__position") if past else ()
    ):
        taken.setdefault(cycle_id, set()).add((segment, position))
    return {
        stand["customer_id"]: (pk, stand["last_action"])
        for pk, (stand, ladder, switched) in routes.items()
        if ladder.next_after(
            stand["position"], switched=switched, taken=taken.get(pk, set()), tone=stand["tone"],
            in_force=dunning.steps_in_force(on_credit_hold=stand["customer__on_credit_hold"],
                                            terms_type=stand["customer__terms_type"]),
            declined=dunning.declined_in(stand),
        ) is None
    }


# What a broken promise or plan says, in place of "dunning resumes", when the
# account's ladder has no step left.
LADDER_ENDED_SAYS = ("the ladder has no step left: nothing more goes out in this cycle, and its collector is "
                     "asked to decide the next action")


def ladder_ended_items(*, on: dt.date, customer_ids=None, again: bool = False, actor=None,
                       record: bool = True) -> int:
    """Put an item before the collector of each account (among
    `customer_ids`, else all) whose ladder has no step left while money is
    overdue that no promise, plan or dispute holds: decide the next action
    (call, a plan, a manager's exception, a write-off). One item a cycle
    (its key names the cycle), about the cycle's last step; once ticked off
    with a decision, ladder_items_back may add a later one, and "the cycle's
    item" below is then its latest.

    The cycle's open item takes in the items about a broken promise or a
    missed instalment open on the account: with no step left to resume,
    deciding what follows the break is deciding the next action, and one
    item asks it.

    `again`: something has just ended with nothing to resume (a promise
    broken, a plan failed, the last step declined): the cycle's item comes
    back if it was done. Without `again` (the daily refresh), accounts whose last
    step was skipped or declined are looked for, and those whose last step
    was carried out once the pay-by dates it and the steps before it gave
    have passed; a done item comes back only when a later step has ended the
    ladder again since, and one the collector ticked off stays done. With
    `record`, a new or returning item says on the timeline why (a broken
    promise's own entry says it already). Returns how many items were added
    or brought back."""
    ended = ladders_ended(on=on, customer_ids=customer_ids)

    lasts = DunningAction.objects.filter(pk__in=[last for _, last in ended.values()])
    if not again and ended:
        # A last step not carried out (skipped, declined, failed) leaves the
        # money to nobody at once. One carried out has its notice's time to
        # work: the account is listed once every pay-by date the cycle gave
        # has passed (the customer has that whole day, as before a next step).
        told_until = DunningAction.objects.filter(cycle=OuterRef("cycle"), pay_by__gte=on).exclude(
            status__in=NOT_CARRIED_OUT)
        lasts = lasts.filter(Q(status__in=NOT_CARRIED_OUT)
                             | Q(status=ActionStatus.DONE) & ~Exists(told_until))
    # A step a manager declined and one an approval found moot are both skipped
    # with the manager as reviewer; only the decline is on the timeline as an
    # exception (services.action_decline), its note the skip reason.
    declined = Exists(TimelineEvent.objects.filter(
        subject_type=ContentType.objects.get_for_model(DunningAction), subject_id=OuterRef("pk"),
        kind=EventKind.EXCEPTION))
    rows = (lasts.annotate(declined=declined).values_list(
        "pk", "status", "step__position", "step__action", "error", "skip_reason", "declined"
    ) if ended else ())
    # A last step that failed or was skipped (declined, say) told the customer
    # nothing: its item says so, and why.
    not_carried_out = {
        pk: _last_step_not_carried_out(position, action, status,
                                       why_not_carried_out(status, error, skip_reason), declined=declined)
        for pk, status, position, action, error, skip_reason, declined in rows if status in NOT_CARRIED_OUT}
    if not again and ended:
        listed = {row[0] for row in rows}
        ended = {c: (cycle, last) for c, (cycle, last) in ended.items() if last in listed}
    owed: dict[int, list[tuple[str, Decimal]]] = {}
    for customer_id, currency, amount in (
        _overdue_unheld(on=on).filter(customer_id__in=list(ended)).order_by("due_date", "pk")
        .values_list("customer_id", "currency", "unheld_amount") if ended else ()
    ):
        owed.setdefault(customer_id, []).append((currency, amount))
    # The cycle's latest item: the first, or one that came back after a decision (ladder_items_back).
    known = {item.action.cycle_id: item for item in WorkItem.objects.filter(
        kind=WorkKind.LADDER_ENDED,
        action__cycle_id__in=[cycle for customer_id, (cycle, _) in ended.items() if customer_id in owed],
    ).select_related("action").order_by("pk")}
    customers = {c.pk: c for c in Customer.objects.filter(pk__in=list(owed)).select_related("collector")}
    added = 0
    for customer_id, amounts in owed.items():
        cycle, last = ended[customer_id]
        key = _ladder_key(cycle)
        title = (f"The ladder has no step left: {format_amounts(by_currency(amounts))} overdue, and nothing "
                 f"more goes out; {not_carried_out.get(last, '')}decide the next action")
        item = known.get(cycle)
        if item is None:
            new = WorkItem(title=title, assignee_id=customers[customer_id].collector_id)
            items_covered([new], on=on)
            item, created = WorkItem.objects.get_or_create(key=key, defaults={
                "kind": WorkKind.LADDER_ENDED, "customer": customers[customer_id], "title": new.title[:300],
                "due_on": on, "assignee_id": new.assignee_id, "covering_for_id": new.covering_for_id,
                "action_id": last,
            })
            if not created:
                continue  # a concurrent refresh got there first
        elif item.status == WorkStatus.OPEN:
            # A later step that told the customer nothing (skipped, failed)
            # ended the ladder again while the item was open: the item is
            # about that step now, so the collector decides on what really
            # happened rather than on the earlier step.
            if item.action_id == last:
                continue
            title = _title_covered(item, title, collector_id=customers[customer_id].collector_id, on=on)
            if not WorkItem.objects.filter(pk=item.pk, status=WorkStatus.OPEN).exclude(action_id=last).update(
                    action_id=last, title=title):
                continue
            if record and title != item.title:
                item.customer, item.title = customers[customer_id], title
                _record(item, actor, f"Worklist: updated — {title}", action=last)
            continue
        else:
            # A done one comes back with what has just ended.
            if not (again or item.action_id != last):
                continue
            [(assignee_id, title, covering_for_id)] = _items_back(
                [item], [title], collector_ids=[customers[customer_id].collector_id], on=on)
            # Conditional: of two at once, one brings it back.
            if not WorkItem.objects.filter(pk=item.pk, status=WorkStatus.DONE).update(
                    status=WorkStatus.OPEN, due_on=on, done_at=None, done_by=None, snoozed_until=None,
                    action_id=last, title=title, assignee_id=assignee_id, covering_for_id=covering_for_id):
                continue
            item.title, item.assignee_id = title, assignee_id
        added += 1
        if record:
            item.customer = customers[customer_id]
            _record(item, actor, f"Worklist: {item.title}", action=last)
    # The ladder's item asks what follows a broken promise or missed
    # instalment, whenever it broke: one that broke while steps were left
    # has its own item open still, and the two, of one account and of equal
    # priority, would head the list side by side asking the same thing.
    if owed:
        _broken_commitments_taken_in(customer_ids=list(owed), on=on, actor=actor, record=record)
    return added


# Of why a last step failed or was skipped, at most this much goes in its
# item's title, cut after a word: a title is read as one line on the list, and
# what to do comes after it. A manager's note, written to be read whole,
# gives only its start. The whole of either is said below the title on the
# list, on the step and on its timeline entry.
NOT_CARRIED_OUT_SAID = 120
MANAGER_NOTE_SAID = 60


def _last_step_not_carried_out(position: int, action: str, status: str, reason: str, *,
                               declined: bool = False) -> str:
    # A note's closing full stop goes: what to do follows it.
    said = one_line(reason or "").rstrip(" .")
    why = shorten_words(said, MANAGER_NOTE_SAID if declined else NOT_CARRIED_OUT_SAID) if said else (
        "no reason was recorded")
    step = f"its last step, step {position} ({StepAction(action).label})"
    if declined:
        return f"{step}, was declined by a manager (note: {why}); "
    ended = "failed" if status == ActionStatus.FAILED else "was skipped"
    return f"{step}, {ended}: {why}; "


def _broken_commitments_taken_in(*, customer_ids: list[int], on: dt.date, actor, record: bool) -> None:
    """Close the open items about a broken promise or a missed instalment of
    these accounts whose ladder's item is open: the ladder resumes nothing
    after the break, so both would ask the collector the same thing, and a
    collector who dealt with one would find the other still there. Each
    closing goes on the timeline, but for the item the break that called
    this has just made (due `on`, and `record` False: the break's own entry
    says the ladder's item asks for the next action)."""
    holders = WorkItem.objects.filter(kind=WorkKind.LADDER_ENDED, status=WorkStatus.OPEN,
                                      customer_id__in=customer_ids).values("customer_id")
    taken = WorkItem.objects.filter(kind__in=list(BROKEN_COMMITMENTS), status=WorkStatus.OPEN,
                                    customer_id__in=holders)
    if not record:
        taken.filter(due_on=on).update(status=WorkStatus.DONE, done_at=timezone.now(), done_by=actor)
    items_close(actor=actor, because="the ladder has no step left: its item asks for the next action",
                pk__in=list(taken.values_list("pk", flat=True)))


def _ladder_key(cycle_id: int) -> str:
    return f"ladder_ended:cycle:{cycle_id}"


def ladder_items_followed_up(*, because: str = "", actor=None, customer_ids=None,
                             on: dt.date | None = None) -> int:
    """Close the "ladder has no step left" items (of `customer_ids`, else
    all) that something has followed: a new step in the cycle carried out or
    under way (one skipped or failed told the customer nothing, and the
    ladder has still nothing more to send), its cycle closed, or nothing
    overdue on `on` (today by default) left that nothing holds
    (_overdue_unheld: paid in full, or a promise, plan, dispute or pause
    since). Each end goes on the timeline with why (`because`, else in words
    of what followed)."""
    on = on or timezone.localdate()
    items = WorkItem.objects.filter(status=WorkStatus.OPEN, kind=WorkKind.LADDER_ENDED)
    if customer_ids is not None:
        items = items.filter(customer_id__in=list(customer_ids))
    newer = DunningAction.objects.filter(
        cycle=OuterRef("action__cycle"), pk__gt=OuterRef("action_id")
    ).exclude(status__in=NOT_CARRIED_OUT)
    closed = 0
    for item in items.annotate(
        new_step=Subquery(newer.order_by("pk").values("pk")[:1]),
        owing=Exists(_overdue_unheld(on=on).filter(customer=OuterRef("customer"))),
    ).select_related("action__cycle").filter(
        Q(new_step__isnull=False) | Q(owing=False) | Q(action__cycle__closed_on__isnull=False)
    ).order_by("pk"):
        if item.new_step is not None:
            step = DunningAction.objects.select_related("step").get(pk=item.new_step).step
            why = f"a new step was taken: step {step.position} ({step.get_action_display()})"
        elif item.action.cycle.closed_on is not None:
            why = "the cycle is over: nothing it chased is still open"
        else:
            why = because or ("nothing overdue is left to chase: it was paid, or a promise, plan, dispute "
                              "or pause holds it")
        closed += items_close(actor=actor, because=why, pk=item.pk)
    return closed


def settled_items_close(*, customer_ids, actor=None, on: dt.date | None = None) -> int:
    """Close the items of `customer_ids` that money just in (a payment, a
    credit note, a write-off) made untrue, each with why on the timeline:
    the late fees and interest item once nothing of them is owed, and the
    personal treatment one ("… is behind") once nothing is overdue on `on`
    (today by default). The daily refresh would close them only the next
    morning, while the collector would call about a debt already paid."""
    on = on or timezone.localdate()
    ids = list(customer_ids)
    owing_charges = LateCharge.objects.standing().filter(customer=OuterRef("customer"))
    overdue = Invoice.objects.filter(customer=OuterRef("customer"), status=InvoiceStatus.OPEN,
                                     open_amount__gt=0, due_date__lt=on)
    closed = 0
    for kind, still, why, details in (
        (WorkKind.CHARGES, owing_charges,
         "the late fees and interest are paid or waived: nothing of them is owed", None),
        # Marked so on the timeline: whatever is overdue later in the cycle
        # brings it back (personal_items_back).
        (WorkKind.PERSONAL, overdue, "nothing is overdue any more", {"paid_up": True}),
    ):
        pks = list(WorkItem.objects.filter(status=WorkStatus.OPEN, kind=kind, customer_id__in=ids)
                   .exclude(Exists(still)).values_list("pk", flat=True))
        if pks:
            closed += items_close(actor=actor, because=why, details=details, pk__in=pks)
    return closed


class LadderDecision(TextChoices):
    """What a collector decided when they tick off a finished ladder's item:
    with nothing more going out, the item is the only thing that keeps the
    debt in sight, so it is not closed without a decision and a note."""

    PLAN = "plan", "Called and agreed a payment plan or a promise"
    EXCEPTION = "exception", "Asked a manager for an exception"
    WRITE_OFF = "write_off", "Proposed a write-off"
    LEGAL = "legal", "Passed to legal or a collection agency"
    WATCH = "watch", "Keep watching"


# Days after a finished ladder's item is ticked off when the account comes
# back on the list if its money is still overdue and nothing holds it: long
# enough for a plan to be signed, a manager to decide or an agency to answer;
# short enough that a debt nobody acted on is not forgotten for a quarter.
LADDER_WATCH_DAYS = 14


def ladder_decision_check(*, decision: str, note: str) -> LadderDecision:
    """The decision a finished ladder's item is ticked off with, or a
    ValidationError saying what is missing."""
    errors = {}
    if decision not in LadderDecision.values:
        errors["decision"] = ("Choose what was decided: the ladder has no step left, and nothing else "
                              "goes out.")
    if not note.strip():
        errors["note"] = "Say in a note what was agreed or asked, with whom, and what happens next."
    if errors:
        raise ValidationError(errors)
    return LadderDecision(decision)


def ladder_items_back(*, on: dt.date) -> int:
    """Put a finished ladder's account back on its collector's list
    LADDER_WATCH_DAYS after its item was ticked off, if its cycle is still
    open with no step taken since and money is still overdue that no promise,
    plan, dispute nor pause holds: whatever was decided ("keep watching", a
    write-off proposed and not made) has not settled it, and without the item
    nothing would bring the debt back to anyone. A new item each time, its
    key naming the cycle and the day it came back, so a refresh run twice
    (or late) adds it once; it is about the cycle's latest item only, and
    not while another is open. Returns how many items were added."""
    cutoff = on - dt.timedelta(days=LADDER_WATCH_DAYS)
    ladder_items = WorkItem.objects.filter(kind=WorkKind.LADDER_ENDED)
    unheld = _overdue_unheld(on=on)
    added = 0
    for item in (
        ladder_items.filter(status=WorkStatus.DONE, done_at__date__lte=cutoff,
                            action__cycle__closed_on__isnull=True)
        .exclude(Exists(ladder_items.filter(action__cycle=OuterRef("action__cycle"), pk__gt=OuterRef("pk"))))
        .exclude(Exists(ladder_items.filter(status=WorkStatus.OPEN, customer=OuterRef("customer"))))
        .exclude(Exists(DunningAction.objects.filter(cycle=OuterRef("action__cycle"),
                                                     pk__gt=OuterRef("action_id"))))
        .filter(Exists(unheld.filter(customer=OuterRef("customer"))))
        .select_related("customer", "action").order_by("pk")
    ):
        back_on = timezone.localdate(item.done_at) + dt.timedelta(days=LADDER_WATCH_DAYS)
        amounts = unheld.filter(customer=item.customer).order_by("due_date", "pk").values_list(
            "currency", "unheld_amount")
        decided = (TimelineEvent.objects.for_subject(item).filter(kind=EventKind.WORK,
                                                                  details__has_key="decision")
                   .order_by("-occurred_at", "-pk").values_list("details__decision", flat=True).first())
        how = f"decided: {LadderDecision(decided).label.lower()}" if decided in LadderDecision.values else (
            "no decision recorded")
        since = (on - timezone.localdate(item.done_at)).days
        title = (f"The ladder has no step left: {format_amounts(by_currency(amounts))} still overdue with "
                 f"nothing holding it, {since} days after its item was ticked off ({how}); "
                 "decide the next action")
        key = f"{_ladder_key(item.action.cycle_id)}:{back_on.isoformat()}"
        if item_add(kind=WorkKind.LADDER_ENDED, key=key, customer=item.customer, title=title, due_on=back_on,
                    action=item.action):
            _record(WorkItem.objects.get(key=key), None, f"Worklist: back — {title}", previous=item.pk)
            added += 1
    return added


# --- Accounts paid up -----------------------------------------------------------------


def _held() -> Q:
    """For a Customer query: on credit hold, or on C.O.D. or prepayment since
    a dunning step switched it there (terms agreed so from the start are not
    a sanction to lift)."""

    switched = _switched_to_cod().filter(customer=OuterRef("pk"))
    return Q(on_credit_hold=True) | Q(Exists(switched), terms_type__in=[TermsType.COD, TermsType.PREPAYMENT])


def _switched_to_cod() -> QuerySet[DunningAction]:
    return DunningAction.objects.filter(status=ActionStatus.DONE, step__action=StepAction.SWITCH_TO_COD)


def hold_lift_changes(customer: Customer) -> dict[str, object]:
    """What lifting the account's hold changes on its card: the credit hold
    comes off, and C.O.D. or prepayment a dunning step switched it to goes
    back to standard terms (terms agreed so from the start are not a
    sanction, and stay). Empty: there is nothing to lift."""
    changes: dict[str, object] = {}
    if customer.on_credit_hold:
        changes["on_credit_hold"] = False
    if (customer.terms_type in (TermsType.COD, TermsType.PREPAYMENT)
            and _switched_to_cod().filter(customer=customer).exists()):
        changes["terms_type"] = TermsType.STANDARD
    return changes


def _overdue_on(on: dt.date) -> Exists:
    """For a Customer query: an invoice of the account is overdue on `on`."""
    return Exists(Invoice.objects.overdue(on=on).filter(customer=OuterRef("pk")))


def _behind_on(on: dt.date) -> Q:
    """For a Customer query: the account is not paid up on `on`: an invoice
    is overdue, or a late fee or interest a notice charged is still owed
    (neither paid, waived nor cancelled; a charge is owed from the notice
    that charged it, it has no due date of its own). The hold came with the
    notices that charged them: clearing the invoices alone has not paid them."""
    return Q(_overdue_on(on)) | Q(Exists(LateCharge.objects.standing().filter(customer=OuterRef("pk"))))


def _what_to_lift(customer: Customer) -> str:

    standard = customer.terms_type == TermsType.STANDARD
    terms = [] if standard else [f"{customer.get_terms_type_display()} terms"]
    return " and ".join((["the credit hold"] if customer.on_credit_hold else []) + terms)


def _cleared_since_held(customer: Customer) -> int | None:
    """The last invoice of the account that was overdue and has been paid,
    credited or written off since the hold (or the switch to C.O.D.) was put
    on, as its timeline records it: an account put on hold by hand with
    nothing overdue has paid up nothing. None if there is none."""

    put_on = (TimelineEvent.objects.filter(customer=customer)
              .filter(Q(details__after__on_credit_hold=True)
                      | Q(details__after__terms_type__in=["cod", "prepayment"]))
              .order_by("-occurred_at", "-pk").values_list("occurred_at", flat=True).first())
    if put_on is None:
        return None
    since = timezone.localdate(put_on)
    return (Invoice.objects.filter(customer=customer)
            .filter(Q(status=InvoiceStatus.PAID, settled_on__gt=F("due_date"), settled_on__gte=since)
                    | Q(Exists(WriteOff.objects.filter(invoice=OuterRef("pk"), written_off_on__gte=since))))
            .order_by("-pk").values_list("pk", flat=True).first())


def hold_release_items(*, on: dt.date, customer_ids=None, actor=None) -> int:
    """Put one item before the collector of each account (among
    `customer_ids`, else all) on credit hold, or switched to C.O.D. by a
    dunning step, that has paid up since: money overdue was paid (or
    credited, or written off) after the hold was put on, nothing is
    overdue on `on` and no late fee or interest is still owed. It asks a
    manager to lift the hold (an exception request): the hold is not lifted
    here, a manager weighs it as the hold was weighed. An item ends by
    itself once the hold is lifted, money is overdue again or a late fee or
    interest is owed again, with why on the timeline.

    The key names the account and the last overdue invoice it cleared: an
    item ticked off stays done until the account falls behind and pays up
    again. Returns how many items were added."""
    accounts = Customer.objects.all() if customer_ids is None else Customer.objects.filter(
        pk__in=list(customer_ids))
    gone = WorkItem.objects.filter(status=WorkStatus.OPEN, kind=WorkKind.HOLD_RELEASE,
                                   customer__in=accounts)
    for why, ended in (("the hold was lifted", ~Q(customer__in=Customer.objects.filter(_held()))),
                       ("money is overdue again: the hold stands for now",
                        Q(customer__in=Customer.objects.filter(_overdue_on(on)))),
                       ("late fees or interest are still owed: the hold stands for now",
                        Q(customer__in=Customer.objects.filter(_behind_on(on))))):
        items_close(actor=actor, because=why, pk__in=list(gone.filter(ended).values_list("pk", flat=True)))
    asking = WorkItem.objects.filter(status=WorkStatus.OPEN, kind=WorkKind.HOLD_RELEASE,
                                     customer=OuterRef("pk"))
    added = 0
    # Bounded by the accounts on hold, a handful: two queries each.
    for customer in accounts.filter(_held()).exclude(_behind_on(on)).exclude(Exists(asking)).order_by("pk"):
        cleared = _cleared_since_held(customer)
        if cleared is None:
            continue
        title = f"Paid up, nothing overdue: ask a manager to lift {_what_to_lift(customer)}"
        key = f"hold_release:{customer.pk}:{cleared}"
        if item_add(kind=WorkKind.HOLD_RELEASE, key=key, customer=customer, title=title, due_on=on):
            _record(WorkItem.objects.get(key=key), actor, f"Worklist: {title}",
                    before={"on_credit_hold": customer.on_credit_hold, "terms_type": customer.terms_type})
            added += 1
    return added


def disputes_settled_items(*, customer_ids=None, actor=None) -> int:
    """An open dispute whose invoice has been paid (or credited) in full
    since waits for no department's answer any more: nothing is left to
    credit or correct. Its "waiting for an answer" item ends, with why on the
    timeline, and one item asks the collector to close the dispute, as paid
    in full or as rejected (the resolve form offers those two): which of
    them it was is the collector's judgement, not the payment's, so the
    dispute is not closed here. Among `customer_ids`' disputes, else all.
    Returns how many items were added."""

    settled = Dispute.objects.filter(status=DisputeStatus.OPEN, invoice__status=InvoiceStatus.PAID)
    if customer_ids is not None:
        settled = settled.filter(customer_id__in=list(customer_ids))
    added = 0
    for dispute in settled.select_related("customer", "invoice", "department").order_by("pk"):
        invoice = dispute.invoice
        how = f"{invoice.settled_how()} in full"
        team = dispute.department.name if dispute.department else "nobody"
        items_close(actor=actor, because=f"{invoice.number} was {how} on {format_day(invoice.settled_on)}: "
                    f"no answer from {team} is awaited", kind=WorkKind.DISPUTE_WAITING, dispute=dispute)
        title = (f"Dispute on {invoice.number} ({team}): {how} on "
                 f"{format_day(invoice.settled_on, year=False)}, nothing left to settle: close the dispute")
        key = f"dispute_settled:{dispute.pk}"
        if item_add(kind=WorkKind.DISPUTE_SETTLED, key=key, customer=dispute.customer, title=title,
                    due_on=invoice.settled_on, dispute=dispute):
            _record(WorkItem.objects.get(key=key), actor, f"Worklist: {title}", dispute=dispute.pk)
            added += 1
    return added


def paid_up_items(*, on: dt.date, customer_ids=None) -> int:
    """What money moving on these accounts (else all) ends or asks: a hold
    to lift on an account paid up, a dispute on an invoice paid in full to
    close. Run once a payment, credit note, credit applied or write-off is
    committed (services.behaviour_refresh_on_commit) and by the daily refresh."""
    return (disputes_settled_items(customer_ids=customer_ids)
            + hold_release_items(on=on, customer_ids=customer_ids))


# A letter still in the print queue this many days after it was written goes
# on its account collector's list: it holds the account's next step (see
# dunning: the minimum gap counts from the day a letter is posted).
LETTER_POST_WITHIN_DAYS = 3

# Items created per statement by the daily refresh: bounded, so a backlog of
# thousands of reviews is a few inserts, not one round trip per item.
REFRESH_BATCH_SIZE = 1000


def refused_addresses_fixed(*, contact=None, actor=None) -> None:
    """Close "find a working address" items once the contact has another
    address, its address is marked as working again, or it is gone (by
    `actor`, who saved it), with why on the timeline: the key names the
    contact and the refused address. With `contact`, its items only."""
    items = WorkItem.objects.filter(status=WorkStatus.OPEN, kind=WorkKind.ADDRESS_REFUSED)
    if contact is not None:
        items = items.filter(key__startswith=f"address-refused:{contact.pk}:")
    items = list(items.values_list("pk", "key"))
    refused = {pk: key.split(":", 2)[1:] for pk, key in items}
    still = {pk: email.strip().lower() for pk, email in
             Contact.objects.filter(pk__in={int(c) for c, _ in refused.values()}).exclude(email_refused="")
             .values_list("pk", "email")}
    fixed = [pk for pk, (contact, address) in refused.items() if still.get(int(contact)) != address]
    if fixed:
        _items_end(WorkItem.objects.filter(pk__in=fixed), actor=actor,
                   because="the contact has another address, its address works again, or it is gone")


def worklist_refresh(*, on: dt.date) -> int:
    """Create the items that follow from the state of things today; close
    those whose reason is gone. Idempotent; run after planning and daily."""
    from ar_collections.services import review_steps_paid_skip  # it imports this module

    review_steps_paid_skip(on=on)
    wanted = [
        WorkItem(
            kind=WorkKind.REVIEW, key=f"review:action:{action.pk}", customer_id=action.customer_id,
            assignee_id=action.customer.collector_id, due_on=action.planned_on, action=action,
            title=f"Review before sending: {action.step.get_action_display().lower()} "
            f"(step {action.step.position} of {action.step.policy.name})",
        )
        for action in DunningAction.objects.filter(status=ActionStatus.IN_REVIEW)
        .select_related("customer", "step__policy").order_by("pk")
    ]
    for dispute in (
        # Not one whose invoice is paid since: no answer is awaited (disputes_settled_items).
        Dispute.objects.filter(status=DisputeStatus.OPEN, answer_due_on__lte=on)
        .exclude(invoice__status=InvoiceStatus.PAID)
        .select_related("customer", "invoice", "department").order_by("pk")
    ):
        team = dispute.department.name if dispute.department else "nobody yet"
        wanted.append(WorkItem(
            kind=WorkKind.DISPUTE_WAITING, key=f"dispute_waiting:{dispute.pk}",
            customer_id=dispute.customer_id, assignee_id=dispute.customer.collector_id,
            due_on=dispute.answer_due_on, dispute=dispute,
            title=f"Dispute on {dispute.invoice.number} waiting for an answer since "
            f"{format_day(dispute.opened_on, year=False)} ({team})",
        ))
    for cycle in (
        DunningCycle.objects.filter(closed_on__isnull=True)
        .filter(Q(customer__segment=Segment.SPECIAL_BOND) | Q(cause=MissCause.SPECIAL_BOND))
        .select_related("customer").order_by("pk")
    ):
        wanted.append(WorkItem(
            kind=WorkKind.PERSONAL, key=f"personal:cycle:{cycle.pk}", customer_id=cycle.customer_id,
            assignee_id=cycle.customer.collector_id, due_on=cycle.opened_on,
            title=_personal_title(cycle.customer.name,
                                  f"behind (since {format_day(cycle.opened_on, year=False)})"),
        ))
    from ar_collections.delivery import letters_withdraw_moot  # it imports this module
    from ar_collections.forms import letters_in_queue
    from ar_collections.services import credit_terms_in_force_skip
    from ar_collections.workspace import letters_withdraw_held, steps_skip_held

    letters_withdraw_moot()  # before the charges left are counted, and the letters waiting
    letters_withdraw_held(on=on)  # those a promise or plan made before this was done at once
    steps_skip_held(on=on)  # and the holds and C.O.D. they made wrong to approve
    credit_terms_in_force_skip()  # no manager is asked to approve terms already in force
    waiting = letters_in_queue()
    for letter in (
        waiting.filter(done_at__date__lte=on - dt.timedelta(days=LETTER_POST_WITHIN_DAYS))
        .select_related("customer").order_by("pk")
    ):
        wanted.append(WorkItem(
            kind=WorkKind.LETTER_UNPOSTED, key=f"letter_unposted:action:{letter.pk}",
            customer_id=letter.customer_id, assignee_id=letter.customer.collector_id, action=letter,
            due_on=on, title=f"Letter of {format_day(letter.planned_on, year=False)} not posted yet: "
            "post it or withdraw it (the account's next step waits for it)",
        ))
    paper_waiting = documents_in_queue()
    for document in (
        paper_waiting.filter(done_at__date__lte=on - dt.timedelta(days=LETTER_POST_WITHIN_DAYS))
        .select_related("customer", "invoice").order_by("pk")
    ):
        queued = format_day(timezone.localtime(document.done_at).date(), year=False)
        wanted.append(WorkItem(
            kind=WorkKind.LETTER_UNPOSTED, key=f"letter_unposted:document:{document.pk}",
            customer_id=document.customer_id, assignee_id=document.customer.collector_id, document=document,
            due_on=on, title=f"{document_name(document)} to {document.recipient_name}, queued on {queued}, "
            "not posted yet: post it or withdraw it",
        ))
    charges = _charges_left(on=on)
    wanted += charges
    gaps = order_gaps_wanted(on=on)
    wanted += gaps
    created = 0
    for start in range(0, len(wanted), REFRESH_BATCH_SIZE):
        batch = wanted[start:start + REFRESH_BATCH_SIZE]
        known = set(WorkItem.objects.filter(key__in=[i.key for i in batch]).values_list("key", flat=True))
        fresh = [i for i in batch if i.key not in known]
        items_covered(fresh, on=on)
        # ignore_conflicts: a concurrent refresh that got there first wins, nothing doubles.
        WorkItem.objects.bulk_create(fresh, ignore_conflicts=True)
        created += len(fresh)
    # What is no longer so leaves the list, each item with why on its
    # account's timeline: the collector who finds it gone sees what ended it.
    # A statement or three per reason, whatever the number of items (_items_end).
    open_items = WorkItem.objects.filter(status=WorkStatus.OPEN)
    _items_end(open_items.filter(kind=WorkKind.CALL, action__cycle__closed_on__isnull=False),
               because="the cycle is over: nothing it chased is still open")
    refused_addresses_fixed()
    _items_end(open_items.filter(kind=WorkKind.LETTER_UNPOSTED).exclude(
        Q(action__in=waiting) | Q(document__in=paper_waiting)),
        because="it is no longer in the print queue: it was posted or withdrawn")
    _items_end(open_items.filter(kind=WorkKind.REVIEW).exclude(action__status=ActionStatus.IN_REVIEW),
               because="the notice no longer waits for review: it was decided in the review queue")
    _items_end(open_items.filter(kind=WorkKind.PERSONAL).exclude(
        Exists(DunningCycle.objects.filter(customer=OuterRef("customer"), closed_on__isnull=True))),
        because="no dunning cycle is open: the account is no longer behind")
    personal_items_back(keys=[i.key for i in wanted if i.kind == WorkKind.PERSONAL], on=on)
    # A broken promise or a missed instalment whose invoices have all been
    # paid (or credited) since: nothing is left to chase.
    for kind, settled, what in (
        (WorkKind.PROMISE_BROKEN, ~Exists(Invoice.objects.filter(promises=OuterRef("promise"),
                                                                 status=InvoiceStatus.OPEN)),
         "every invoice of the broken promise is paid or credited: nothing is left to chase"),
        (WorkKind.INSTALMENT_MISSED, ~Exists(Invoice.objects.filter(payment_plans=OuterRef("plan"),
                                                                    status=InvoiceStatus.OPEN)),
         "every invoice of the plan is paid or credited: nothing is left to chase"),
    ):
        _items_end(open_items.filter(settled, kind=kind), because=what)
    # Or what is still open of them is held by a promise or plan made since
    # (one made before this was closed at once, see items_followed_up).
    items_followed_up(because="followed up: a promise or payment plan made since holds what is still open",
                      on=on)
    ladder_items_followed_up(on=on)
    # Ladders whose last step a manager declined or that was skipped (terms
    # already in force, say) or failed, or was carried out and its pay-by
    # date has passed, while money is still overdue: nothing more will go out.
    created += ladder_ended_items(on=on)
    # And those ticked off with a decision that has not settled them, some days on.
    created += ladder_items_back(on=on)
    created += paid_up_items(on=on)
    # What a stand-in was given while covering goes back once the cover is over.
    items_handed_back(on=on)
    # Charges charged again (a newer item says so), back on a cycle's notices, or paid or waived.
    ended = open_items.filter(kind=WorkKind.CHARGES).exclude(key__in=[i.key for i in charges])
    cycle_open = Exists(DunningCycle.objects.filter(customer=OuterRef("customer"), closed_on__isnull=True))
    _items_end(ended.filter(customer_id__in={i.customer_id for i in charges}),
               because="more late fees or interest were charged since: a newer item says what is owed")
    _items_end(ended.filter(cycle_open), because="a dunning cycle is open again: its notices ask for them")
    _items_end(ended, because="the late fees and interest are paid or waived: nothing of them is owed")
    order_gaps_ended(still={i.key for i in gaps}, on=on)
    return created


def _personal_title(name: str, behind: str) -> str:
    return f"Personal treatment: {name} is {behind}; call rather than write"[:300]


def personal_items_back(*, keys: list[str], on: dt.date) -> int:
    """Open again the done personal-treatment items among `keys` (those of
    the cycles still open) whose account is behind again on `on`: an invoice
    is overdue that was not when the item was closed (it fell due on that
    day or later, or it was recorded since). Closed once the account paid
    up, or ticked off after a call, the item is the cycle's (its key names
    it), and without this an account falling behind again in the same cycle
    would never be called about. One closed because the account had paid up
    comes back for any invoice overdue since, one it had then included (a
    due date the ERP moved back, say): nothing was overdue
    then. One ticked off for the debt still overdue stays done: the call
    about it was made. Each comes back with its title
    naming the invoice it is now about (its first named the debt the cycle
    opened with), and so on the timeline; a few statements whatever their number."""
    done_on = TruncDate("done_at")
    # Its last close was settled_items_close's (the entry is written just after done_at).
    paid_up = Exists(TimelineEvent.objects.filter(
        subject_type=ContentType.objects.get_for_model(WorkItem), subject_id=OuterRef("pk"),
        kind=EventKind.WORK, occurred_at__gte=OuterRef("done_at"), details__paid_up=True))
    again = (Invoice.objects.filter(customer=OuterRef("customer"), status=InvoiceStatus.OPEN,
                                    open_amount__gt=0, due_date__lt=on)
             .filter(Q(due_date__gte=OuterRef("done_on")) | Q(created_at__gt=OuterRef("done_at"))
                     | Q(Exact(OuterRef("paid_up"), True)))
             .order_by("due_date", "pk"))
    with transaction.atomic():
        # Locked: a collector ticking off or a second refresh at this moment finds it as it is.
        back = list(
            WorkItem.objects.filter(kind=WorkKind.PERSONAL, status=WorkStatus.DONE, key__in=keys,
                                    done_at__isnull=False)
            .annotate(done_on=done_on, paid_up=paid_up).filter(Exists(again))
            .annotate(invoice_number=Subquery(again.values("number")[:1]),
                      invoice_due=Subquery(again.values("due_date")[:1]), customer_name=F("customer__name"),
                      collector_id=F("customer__collector_id"))
            .select_for_update(of=("self",))
            .only("pk", "customer_id", "kind", "title", "assignee_id", "covering_for_id")
            .order_by("pk")
        )
        if not back:
            return 0
        routed = _items_back(back, [
            _personal_title(item.customer_name, f"behind again: {item.invoice_number} overdue since "
                                                f"{format_day(item.invoice_due + dt.timedelta(days=1))}")
            for item in back
        ], collector_ids=[item.collector_id for item in back], on=on)
        for item, (assignee_id, title, covering_for_id) in zip(back, routed, strict=True):
            item.status, item.due_on, item.done_at, item.done_by, item.snoozed_until = (
                WorkStatus.OPEN, on, None, None, None)
            item.title, item.assignee_id, item.covering_for_id = title, assignee_id, covering_for_id
        WorkItem.objects.bulk_update(back, ["status", "due_on", "done_at", "done_by", "snoozed_until",
                                            "title", "assignee_id", "covering_for_id"],
                                     batch_size=REFRESH_BATCH_SIZE)
        _records(back, None, [f"Worklist: back — {item.title}" for item in back], reopened=True)
    return len(back)


def _charges_left(*, on: dt.date) -> list[WorkItem]:
    """An item per account owing late fees or interest with no cycle open: its
    notices have stopped, so without the item the money would be forgotten.
    Collect it, or ask a manager to waive it (a fee waiver request)."""
    owed: dict[int, list[LateCharge]] = {}
    for charge in (
        LateCharge.objects.standing()
        .exclude(Exists(DunningCycle.objects.filter(customer=OuterRef("customer"), closed_on__isnull=True)))
        .select_related("customer").order_by("customer_id", "pk")
    ):
        owed.setdefault(charge.customer_id, []).append(charge)
    cycles = dict(
        DunningCycle.objects.filter(customer_id__in=owed).order_by().values("customer_id")
        .annotate(last=Max("number")).values_list("customer_id", "last")
    ) if owed else {}
    items = []
    for customer_id, charges in owed.items():
        owing = format_amounts(by_currency((c.currency, c.open_amount) for c in charges))
        items.append(WorkItem(
            # The newest charge and the last cycle in the key: charged again, or
            # left owing again after a later cycle (whose notices asked for the
            # charges and closed this item), the account gets a fresh item.
            kind=WorkKind.CHARGES, customer_id=customer_id,
            key=f"charges:{customer_id}:{charges[-1].pk}:{cycles.get(customer_id, 0)}",
            assignee_id=charges[0].customer.collector_id, due_on=on,
            title=f"Late fees and interest of {owing} still owed with the invoices paid: "
            "ask for them, or for a manager's waiver",
        ))
    return items


# --- Order gaps -------------------------------------------------------------------------

# An account's usual interval between orders, when nobody set one on its card,
# is learned from its last ORDER_DAYS_READ order days (the distinct issue days
# of its invoices, cancelled ones left out: two invoices of one day are one
# order), and only from ORDER_DAYS_TO_LEARN or more: three gaps at least, so
# that one odd gap is outvoted. Twelve days are about a year of a monthly
# orderer: a rhythm that changed long ago no longer counts.
ORDER_DAYS_READ = 12
ORDER_DAYS_TO_LEARN = 4
# A gap is worth a call when the days since the last order are more than one
# and a half usual intervals, and at least GAP_MARGIN_DAYS more than one: a
# weekly orderer late by ten days, or a monthly one by a fortnight, is not yet news.
GAP_MARGIN_DAYS = 14


def interval_learned(order_days: list[dt.date]) -> int | None:
    """The usual days between orders of these distinct order days (any
    order): the median gap, the higher middle one of an even count (a gap
    the account really had, and the later of the two: an alarm rather late
    than false). None with fewer than ORDER_DAYS_TO_LEARN days."""
    if len(order_days) < ORDER_DAYS_TO_LEARN:
        return None
    days = sorted(order_days)
    return statistics.median_high([(later - earlier).days for earlier, later in itertools.pairwise(days)])


def is_order_gap(*, days_since: int, interval: int) -> bool:
    """Whether `days_since` the last order are well past the usual `interval`."""
    return 2 * days_since > 3 * interval and days_since - interval >= GAP_MARGIN_DAYS


@dataclass(frozen=True)
class OrderRhythm:
    """How often an account orders, and how long since it last did."""

    customer_id: int
    collector_id: int
    last_order_on: dt.date
    # Order days read (at most ORDER_DAYS_READ): what a learned interval is learned from.
    orders: int
    # Days between orders: set by a person on the account card, else learned;
    # None when neither (too little history).
    interval: int | None
    learned: bool

    def days_since(self, *, on: dt.date) -> int:
        return (on - self.last_order_on).days

    def is_gap(self, *, on: dt.date) -> bool:
        return self.interval is not None and is_order_gap(days_since=self.days_since(on=on),
                                                          interval=self.interval)


def order_rhythms(*, on: dt.date, customers: QuerySet[Customer] | None = None,
                  quiet: bool = False) -> dict[int, OrderRhythm]:
    """{customer id: its OrderRhythm as of `on`} for the accounts (among
    `customers`, else all) with an order on or before `on`. `quiet`: only
    those with no order in the last GAP_MARGIN_DAYS, the only ones a gap can
    be found in (see is_order_gap), which leaves out most of a busy book.

    One query whatever the number of accounts: each account's last
    ORDER_DAYS_READ order days, numbered newest first by a window function
    (PostgreSQL, and SQLite from 3.25), and the interval a person set."""
    orders = Invoice.objects.exclude(status=InvoiceStatus.CANCELLED).filter(issue_date__lte=on)
    if customers is not None:
        orders = orders.filter(customer__in=customers)
    if quiet:
        recent = Invoice.objects.exclude(status=InvoiceStatus.CANCELLED).filter(
            issue_date__gt=on - dt.timedelta(days=GAP_MARGIN_DAYS), issue_date__lte=on)
        orders = orders.exclude(customer_id__in=recent.values("customer_id"))
    rows = (
        # Grouped by day first: the window then numbers order days, not invoices.
        orders.order_by().values("customer_id", "issue_date", "customer__collector_id",
                                 "customer__typical_order_interval_days")
        .annotate(invoices=Count("pk"))  # the GROUP BY
        .annotate(newest_first=Window(RowNumber(), partition_by=[F("customer_id")],
                                      order_by=F("issue_date").desc()))
        .filter(newest_first__lte=ORDER_DAYS_READ)
        .values_list("customer_id", "issue_date", "customer__collector_id",
                     "customer__typical_order_interval_days")
    )
    days: dict[int, list[dt.date]] = {}
    about: dict[int, tuple[int, int | None]] = {}
    for customer_id, issued, collector_id, set_interval in rows:
        days.setdefault(customer_id, []).append(issued)
        about[customer_id] = (collector_id, set_interval)
    rhythms = {}
    for customer_id, order_days in days.items():
        collector_id, set_interval = about[customer_id]
        # 0 days between orders means nothing: read as not set.
        learned = interval_learned(order_days) if not set_interval else None
        rhythms[customer_id] = OrderRhythm(
            customer_id=customer_id, collector_id=collector_id, last_order_on=max(order_days),
            orders=len(order_days), interval=set_interval or learned, learned=not set_interval,
        )
    return rhythms


def order_rhythm(customer: Customer, *, on: dt.date) -> OrderRhythm | None:
    """The account's OrderRhythm as of `on`; None if it has never ordered."""
    return order_rhythms(on=on, customers=Customer.objects.filter(pk=customer.pk)).get(customer.pk)


def _order_gap_key(customer_id: int, last_order_on: dt.date) -> str:
    # The last order's day: a new order ends the gap, and the gap after it is
    # another item; a second invoice of that same day is the same order.
    return f"order_gap:{customer_id}:{last_order_on.isoformat()}"


def order_gaps_wanted(*, on: dt.date) -> list[WorkItem]:
    """An item per account gone well past its usual interval without an
    order on `on` (is_order_gap), for its collector: ask how they are. Not
    for an account on credit hold: we stopped its orders, and it is on the
    collector's mind already. One query (order_rhythms)."""
    rhythms = order_rhythms(on=on, customers=Customer.objects.filter(on_credit_hold=False), quiet=True)
    items = []
    for rhythm in rhythms.values():
        if not rhythm.is_gap(on=on):
            continue
        last = rhythm.last_order_on
        items.append(WorkItem(
            kind=WorkKind.ORDER_GAP, key=_order_gap_key(rhythm.customer_id, rhythm.last_order_on),
            customer_id=rhythm.customer_id, assignee_id=rhythm.collector_id, due_on=on,
            # No count of days: the title is written once and read for weeks
            # (and quoted when the item closes), so "for 52 days" would age.
            title=f"No order since {format_day(last, year=last.year != on.year)}"
            f" (usually every {rhythm.interval} days): ask how they are",
        ))
    return items


def order_gaps_ended(*, still: set[str], on: dt.date) -> int:
    """Close the open order-gap items whose key is not among `still` (the
    gaps of today), each with why on its account's timeline: the account has
    ordered again, or its gap is one no longer (its usual interval was set
    longer on the card, or it went on credit hold). Returns how many."""
    ended = {pk: (customer_id, key) for pk, customer_id, key in WorkItem.objects.filter(
        status=WorkStatus.OPEN, kind=WorkKind.ORDER_GAP).values_list("pk", "customer_id", "key")
        if key not in still}
    if not ended:
        return 0
    ordered, cancelled = _last_order_moved(ended, on=on)
    # Atomic: items_close locks the items it records, so a collector ticking
    # one off at this moment does not see it closed twice.
    with transaction.atomic():
        return (items_close(because=ORDERED_AGAIN, pk__in=ordered)
                + items_close(because="the order its gap ran from was cancelled in the ERP", pk__in=cancelled)
                + items_close(because="the gap is one no longer: its usual interval was changed, or it "
                              "is on credit hold", pk__in=set(ended) - ordered - cancelled))


ORDERED_AGAIN = "it has ordered again"


def order_gaps_ordered(*, customer_ids, on: dt.date) -> int:
    """Close at once the open order-gap items of `customer_ids` that have
    ordered since (an import has just brought their new invoices), rather
    than at the next daily refresh: the collector would otherwise ring to ask
    why they stopped ordering the morning after they ordered."""
    items = {pk: (customer_id, key) for pk, customer_id, key in WorkItem.objects.filter(
        status=WorkStatus.OPEN, kind=WorkKind.ORDER_GAP, customer_id__in=list(customer_ids))
        .values_list("pk", "customer_id", "key")}
    return items_close(because=ORDERED_AGAIN, pk__in=_last_order_moved(items, on=on)[0]) if items else 0


def _last_order_moved(items: dict[int, tuple[int, str]], *, on: dt.date) -> tuple[set[int], set[int]]:
    """Of order-gap `items` (pk → (customer id, key)), those whose account's
    last order by `on` is later than the one the item's gap runs from (it
    has ordered again), and those whose last order is earlier: the order the
    gap ran from was cancelled in the ERP, and the gap runs from the one
    before, another item with another title."""
    last_orders = dict(
        Invoice.objects.exclude(status=InvoiceStatus.CANCELLED)
        .filter(customer_id__in={c for c, _ in items.values()}, issue_date__lte=on)
        .order_by().values("customer_id").annotate(last=Max("issue_date")).values_list("customer_id", "last")
    )
    later, earlier = set(), set()
    for pk, (customer_id, key) in items.items():
        since = dt.date.fromisoformat(key.rsplit(":", 1)[1])
        last = last_orders.get(customer_id, dt.date.min)
        if last > since:
            later.add(pk)
        elif last < since:
            earlier.add(pk)
    return later, earlier


# --- Reading the list ----------------------------------------------------------------


# The list pages by position (arcrm.paging): items done, snoozed or handed over
# in place leave it, and a page counted by offset would skip the ones moved up.
ITEMS_ORDER = Keyset("-priority", "due_on", "pk")


def items_for(*, assignee, on: dt.date) -> QuerySet[WorkItem]:
    """Open items due by `on` and not snoozed past it, most urgent first: the
    assignee's own, and those of colleagues away whom they cover for on `on`
    (the item's assignee, read in the same query, names whose they are)."""
    if not hasattr(assignee, "pk"):
        assignee = get_user_model()(pk=assignee)
    covered = covered_by(assignee, on=on)
    if not covered:
        return items_due(on=on).filter(assignee=assignee)
    return (items_due(on=on).filter(Q(assignee=assignee) | Q(assignee_id__in=covered))
            .select_related("assignee"))


def items_due(*, on: dt.date) -> QuerySet[WorkItem]:
    """items_for everyone: every list's open items (and those on nobody's,
    their account without a collector) in one order, for a manager's view of the team."""
    return (
        WorkItem.objects.filter(status=WorkStatus.OPEN, due_on__lte=on)
        .filter(Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=on))
        # The action: a finished ladder's item says below its title why its last step went no further.
        .select_related("customer", "customer__collector", "back_from", "handed_by", "action")
        .annotate(days_late=_days_late(on=on), overdue_amount=_overdue_amount(on=on),
                  money_per_point=_money_per_point())
        .annotate(**priority_parts(on=on))
        .annotate(priority=F("money_points") + F("days_points") + F("risk_points") + F("promise_points"))
        .annotate(**_release_asked())
        .order_by(*ITEMS_ORDER.order)
    )


def _release_asked() -> dict[str, Case]:
    """For a paid-up item (HOLD_RELEASE), the request to lift the hold that
    already waits for a manager: when it was asked (`release_asked_on`) and
    by whom (`release_asked_by`, as person_name says it), so the item shows
    it waits rather than offering to ask again. In the list's own query; the
    CASE keeps the subqueries to those items."""
    waiting = ExceptionRequest.objects.filter(
        customer=OuterRef("customer_id"), kind=ExceptionKind.HOLD_RELEASE, invoice__isnull=True,
        status=ExceptionStatus.PENDING,
    ).order_by("requested_on", "pk")
    name = Coalesce(NullIf(Trim(Concat(Trim("requested_by__first_name"), Value(" "),
                                       Trim("requested_by__last_name"))), Value("")),
                    "requested_by__username")
    hold_release = Q(kind=WorkKind.HOLD_RELEASE)
    return {
        "release_asked_on": Case(When(hold_release, then=Subquery(waiting.values("requested_on")[:1]))),
        "release_asked_by": Case(When(hold_release, then=Subquery(
            waiting.annotate(asker=name).values("asker")[:1]))),
    }


def item_place(item: WorkItem, *, on: dt.date, on_list_of=None) -> str | None:
    """The item's position in its assignee's list on `on` (or `on_list_of`'s,
    who covers for its assignee) (None when it is not on it), to find its
    neighbours once it has left: its priority is worked out as the list is
    read, so read it before the item is done, snoozed or handed over."""
    if item.assignee_id is None:
        return None
    listed = items_for(assignee=on_list_of or item.assignee_id, on=on).filter(pk=item.pk).first()
    return ITEMS_ORDER.cursor_for(listed) if listed else None


def _days_late(*, on: dt.date) -> Coalesce:
    """Days the item's account's oldest open invoice with money not under
    open dispute is overdue on `on` (0 if none): one wholly disputed is not
    chased, and is no more late here than on the account page or the
    customer list (numbers.with_disputed_part); one disputed in part is."""
    oldest = (with_disputed_part(Invoice.objects.overdue(on=on).filter(customer=OuterRef("customer")))
              .filter(undisputed__gt=0).order_by("due_date").values("due_date")[:1])
    return Coalesce(DaysBetween(Value(on), Subquery(oldest)), Value(0))


def _overdue_amount(*, on: dt.date) -> Coalesce:
    """What the item's account has overdue on `on`, in its own currency, less
    what is under open dispute (numbers.with_disputed_part), as the account
    page's header says it, as it stands now: a payment recorded this morning
    counts, where last night's behaviour figures would not yet have it."""
    overdue = (with_disputed_part(Invoice.objects.overdue(on=on).filter(
                   customer=OuterRef("customer"), currency=OuterRef("customer__currency")))
               .values("customer").annotate(total=Sum("undisputed")).values("total"))
    return Coalesce(Subquery(overdue), Value(ZERO), output_field=money_field())


def _money_per_point() -> Coalesce:
    """How much overdue in the item's account's currency makes one point: the
    manager's scale for that currency, else MONEY_POINTS_PER. Read in the same
    query, so the priority stays one integer the list can order and page by.
    (Every scale belongs to the one row of collection rules.)"""
    scale = (MoneyPointScale.objects.filter(currency=OuterRef("customer__currency"))
             .values("per_point_amount")[:1])
    return Coalesce(Subquery(scale), Value(Decimal(MONEY_POINTS_PER)), output_field=money_field())


BROKEN_WORD_POINTS = PROMISE_POINTS[WorkKind.PROMISE_BROKEN]


def _broken_word_left(*, on: dt.date) -> Exists:
    """For a WorkItem query: the item's account broke a promise, or missed an
    instalment of a plan, and an invoice it covered is still open on `on`
    that nothing following it up holds (while so, the broken commitment's
    own item would stay open, see _left_to_chase)."""
    unheld = Invoice.objects.filter(status=InvoiceStatus.OPEN).exclude(_followed_up(on=on))
    return (
        Exists(Promise.objects.filter(customer=OuterRef("customer"), status=PromiseStatus.BROKEN)
               .filter(Exists(unheld.filter(promises=OuterRef("pk")))))
        | Exists(PaymentPlan.objects.filter(customer=OuterRef("customer"), status=PlanStatus.BROKEN)
                 .filter(Exists(unheld.filter(payment_plans=OuterRef("pk")))))
    )


def priority_parts(*, on: dt.date) -> dict:
    """The four parts of an item's priority; `days_late`, `overdue_amount`
    and `money_per_point` annotated first."""
    whole = IntegerField()
    return {
        "money_points": Least(
            Floor(F("overdue_amount") / F("money_per_point")),
            Value(MONEY_POINTS_MAX), output_field=whole,
        ),
        "days_points": Least(
            Floor(F("days_late") / DAYS_PER_POINT),
            Value(DAYS_POINTS_MAX), output_field=whole,
        ),
        "risk_points": Case(
            *[When(customer__segment=s, then=Value(p)) for s, p in RISK_POINTS.items()],
            default=Value(0), output_field=whole,
        ),
        "promise_points": Case(
            *[When(kind=k, then=Value(p)) for k, p in PROMISE_POINTS.items()],
            # The ladder's item takes in the broken promise's or missed
            # instalment's own (_broken_commitments_taken_in), and scores as it would.
            When(_broken_word_left(on=on), kind=WorkKind.LADDER_ENDED, then=Value(BROKEN_WORD_POINTS)),
            default=Value(0), output_field=whole,
        ),
    }


# The form a decision's claim is recorded with, when nothing is on record yet.
LADDER_DECISION_FORMS = {LadderDecision.PLAN: "promise_record", LadderDecision.EXCEPTION: "exception_request"}


def _ladder_decision_on_record(item: WorkItem, *, decided: LadderDecision, actor, note: str) -> None:
    """A decision that says something was agreed or asked must be true: the
    account and the manager act on what is on record, not on the item's
    timeline entry. A write-off proposed goes to a manager here, as a
    write-off request naming the overdue invoices nothing else pursues (a
    dispute, a promise or a plan still asks for the others), which the
    manager's approval writes off; a plan or promise agreed, or an exception
    asked, must be on record since the ladder finished (the item was put on
    the list)."""
    since = timezone.localdate(item.created_at)
    customer = item.customer
    if decided == LadderDecision.WRITE_OFF:
        # Imported here: workspace builds on this module.
        from ar_collections.workspace import exception_request, write_off_pursued_said

        today = timezone.localdate()
        overdue = list(Invoice.objects.filter(customer=customer).overdue(on=today).order_by("due_date", "pk"))
        if not overdue:
            raise ValidationError({"decision": f"Nothing of {customer.name}'s is overdue: there is nothing "
                                               "to write off."})
        pursued = {invoice.pk: write_off_pursued_said(invoice) for invoice in overdue}
        if all(pursued.values()):
            raise ValidationError({"decision": " ".join(pursued.values())})
        overdue = [invoice for invoice in overdue if not pursued[invoice.pk]]
        amounts = format_amounts(by_currency((i.currency, i.open_amount) for i in overdue))
        exception_request(
            customer=customer, actor=actor, kind=ExceptionKind.WRITE_OFF, on=today, invoices=overdue,
            reason=(f"Write off {amounts} overdue ({', '.join(i.number for i in overdue)}): the ladder has "
                    f"no step left. {note.strip()}"),
        )
    elif decided == LadderDecision.PLAN and not (
        Promise.objects.filter(customer=customer, made_on__gte=since).exists()
        or PaymentPlan.objects.filter(customer=customer, proposed_on__gte=since).exists()
    ):
        raise ValidationError({"decision": "No promise or plan recorded since the ladder finished: record it "
                                           "first."})
    # A write-off proposed is a decision of its own (WRITE_OFF above), not an exception asked.
    elif (decided == LadderDecision.EXCEPTION
          and not ExceptionRequest.objects.filter(customer=customer, requested_on__gte=since)
          .exclude(kind=ExceptionKind.WRITE_OFF).exists()):
        raise ValidationError({"decision": "No exception asked of a manager since the ladder finished: ask "
                                           "for it first."})


# --- Changing items --------------------------------------------------------------------


@transaction.atomic
def item_complete(*, item: WorkItem, actor, decision: str = "", note: str = "") -> WorkItem:
    """Tick the item off. A finished ladder's item needs a `decision`
    (LadderDecision) and a `note`, both on the timeline: nothing more goes
    out for the account, and one click must not let the debt go quiet. It
    comes back LADDER_WATCH_DAYS later if the money is still left to nobody
    (ladder_items_back)."""
    locked = _lock_open(item)
    summary, details = f"Worklist: done — {locked.title}", {}
    if locked.kind == WorkKind.LADDER_ENDED:
        decided = ladder_decision_check(decision=decision, note=note)
        _ladder_decision_on_record(locked, decided=decided, actor=actor, note=note)
        back_on = timezone.localdate() + dt.timedelta(days=LADDER_WATCH_DAYS)
        # The decision and the note first: a long title would push them out of the summary.
        summary = (f"Worklist: ladder finished, decided: {decided.label} (back on the list on "
                   f"{format_day(back_on)} if money is still overdue with nothing holding it): "
                   f"{one_line(note)} — {locked.title}")
        details = {"decision": decided.value, "note": note.strip(), "back_on": back_on.isoformat()}
    locked.status, locked.done_at, locked.done_by = WorkStatus.DONE, timezone.now(), actor
    # Done, a hand-over's holder works the account no more (roles.may_work_for_item).
    locked.back_from, locked.handed_by = None, None
    locked.save(update_fields=["status", "done_at", "done_by", "back_from", "handed_by"])
    _record(locked, actor, summary, **details)
    return locked


SNOOZE_AT_MOST = dt.timedelta(days=30)


@transaction.atomic
def item_snooze(*, item: WorkItem, actor, until: dt.date, on: dt.date) -> WorkItem:
    if until <= on:
        raise ValidationError({"until": "Snooze to a later day."})
    if until > (latest := on + SNOOZE_AT_MOST):
        # Put off for months, an item is out of sight as surely as closed, and
        # nobody decided to close it.
        raise ValidationError({"until": f"Snooze at most {SNOOZE_AT_MOST.days} days, until "
                                        f"{format_day(latest)}: an item that must wait longer is one to mark "
                                        "done or hand over."})
    locked = _lock_open(item)
    locked.snoozed_until = until
    locked.save(update_fields=["snoozed_until"])
    _record(locked, actor, f"Worklist: snoozed until {format_day(until)} — {locked.title}")
    return locked


@dataclass(frozen=True)
class HandOverChoice:
    """One line of an item's hand-over menu: someone it may go to (`open`),
    or someone away today, named with who covers for them but not to be chosen."""
    pk: int
    label: str
    open: bool


def hand_over_choices(items: list[WorkItem], *, on: dt.date) -> dict[int, list[HandOverChoice]]:
    """{item id: whom it may be handed to on `on`}: everyone at work who may
    work its account (its collector, whoever covers for them while they are
    away, the managers), then every fellow collector (item_reassign), never
    its holder. Someone away is named with who
    covers for them, not offered: an item handed to them would wait on a list
    nobody reads. The items' customers and collectors come loaded; two
    queries however many items (the absences, the people)."""
    cover = stand_ins(on=on)
    may_work_any = Q(is_superuser=True) | Exists(get_user_model().groups.through.objects.filter(
        user_id=OuterRef("pk"), group__name=MANAGER))
    people = {user.pk: user for user in account_owners(also=Q(is_active=True, is_superuser=True))
              .annotate(works_any=may_work_any)}
    managers = [pk for pk, user in people.items() if user.works_any]
    fellows = [pk for pk, user in people.items() if not user.works_any]
    choices = {}
    for item in items:
        collector_id = item.customer.collector_id
        stand_in = cover.get(collector_id) if collector_id is not None else None
        said = {collector_id: " (the account's collector)"}
        if stand_in is not None:
            said[stand_in] = f" (covering for {person_name(item.customer.collector)})"
        offered = []
        for pk in dict.fromkeys([collector_id, stand_in, *managers, *fellows]):
            if pk is None or pk == item.assignee_id or pk not in people:
                continue
            label = person_name(people[pk]) + said.get(pk, "")
            if pk in cover:
                covering = people.get(cover[pk])
                label += f" — away today{f', {person_name(covering)} covers' if covering else ''}"
            offered.append(HandOverChoice(pk=pk, label=label, open=pk not in cover))
        choices[item.pk] = offered
    return choices


@transaction.atomic
def item_reassign(*, item: WorkItem, actor, to, reason: str) -> WorkItem:
    """Hand the item to `to` on purpose, with a reason: to someone who may
    work its account, or to a fellow collector, who may then work the
    account for what the item asks until it is done (roles.may_work_for_item).
    The reason, who and to whom go on the timeline; the receiver sees the
    reason beside the item."""
    locked = _lock_open(item)
    _hand_over_check(locked.customer, to=to, reason=reason)
    return _hand(locked, actor=actor, to=to, reason=reason)


def _hand(locked: WorkItem, *, actor, to, reason: str) -> WorkItem:
    """Hand the locked open item to `to`, checked already (_hand_over_check)."""
    if locked.assignee_id == to.pk:
        # A second click, or another tab: it went already.
        raise ValidationError({"to": f"{locked.title} is with {person_name(to)} already: "
                                     "nothing was changed."})
    before = locked.assignee
    # Handed over on purpose (`handed_by`): it stays with `to`, whoever's
    # absence ends, and the morning's refresh leaves it there (items_handed_back).
    locked.assignee, locked.covering_for, locked.back_from = to, None, None
    locked.handed_by, locked.handed_at, locked.handed_reason = actor, timezone.now(), reason.strip()
    locked.save(update_fields=["assignee", "covering_for", "back_from", "handed_by", "handed_at",
                               "handed_reason"])
    _record(locked, actor, f"Worklist: handed from {person_name(before) if before else 'nobody'} to "
            f"{person_name(to)} — {locked.title}. Why: {one_line(reason)}",
            **{"from": before.pk if before else None, "to": to.pk, "reason": reason.strip()})
    return locked


@transaction.atomic
def account_items_reassign(*, customer, actor, to, reason: str) -> int:
    """Hand every open item of the account that `actor` holds (their own, and
    those of a colleague away they cover for; a manager: every one) to `to`,
    as item_reassign hands one. All or none. Returns how many went."""
    _hand_over_check(customer, to=to, reason=reason)
    items = WorkItem.objects.filter(customer=customer, status=WorkStatus.OPEN).exclude(assignee_id=to.pk)
    if not actor.has_perm("customers.act_on_any_customer"):
        items = items.filter(Q(assignee_id=actor.pk) | Q(assignee_id__in=covered_by(actor)))
    handing = list(items.order_by("pk"))
    if not handing:
        raise ValidationError(f"You hold no open item of {customer.name} to hand to {person_name(to)}: "
                              "nothing was changed.")
    for item in handing:  # checked once above, for the one account and person
        _hand(_lock_open(item), actor=actor, to=to, reason=reason)
    return len(handing)


def _hand_over_check(customer, *, to, reason: str) -> None:
    """Why an item of `customer` may not go to `to` with `reason`, raised;
    nothing when it may: a reason said, and someone at work who may work the
    account or is a fellow collector."""
    if nothing_seen(reason):
        raise ValidationError({"reason": "Say why you hand it over: whoever takes it sees the reason."})
    if not to.is_active:
        raise ValidationError({"to": f"{person_name(to)} is no longer active: hand it to someone at work."})
    if not can_act_on(to, customer) and role_of(to) != COLLECTOR:
        raise ValidationError({"to": f"{person_name(to)} may not work {customer.name}'s account: an item "
                                     "goes to a fellow collector or a manager."})
    if (stand_in := stand_in_for(to.pk, on=timezone.localdate())) is not None:
        # Their list is read by nobody until they are back (items_for shows it to
        # whoever covers for them, who may not work this account).
        raise ValidationError({"to": f"{person_name(to)} is away today ({person_name(stand_in)} covers): "
                                     "hand it to someone at work."})


def items_hand_over(*, customer, before_id: int | None, after_id: int | None, actor, **_) -> int:
    """An account changed collector: its open items on the former collector's
    list move to the new one's (receiver of customers.services.collector_changed).
    Items a manager handed to someone else stay where they are."""
    if before_id is None or after_id is None:
        return 0  # no collector before, or none now: a manager's list to sort out
    moved = WorkItem.objects.filter(customer=customer, status=WorkStatus.OPEN, assignee_id=before_id)
    count = moved.update(assignee_id=after_id, back_from=None)
    # Those a stand-in holds only because the former collector is away go
    # too, routed as a new item would be (to the new collector's stand-in
    # while they are away): the stand-in no longer works the account, and
    # the daily hand-back would bring them to the new collector only the
    # next morning.
    held = list(WorkItem.objects.select_for_update().filter(customer=customer, status=WorkStatus.OPEN,
                                                            covering_for_id=before_id).order_by("pk"))
    routed = [WorkItem(title=_COVERING_SAID.sub("", item.title), assignee_id=after_id) for item in held]
    items_covered(routed, on=timezone.localdate())
    for item, to in zip(held, routed, strict=True):
        count += WorkItem.objects.filter(pk=item.pk, status=WorkStatus.OPEN).update(
            assignee_id=to.assignee_id, covering_for_id=to.covering_for_id, title=to.title, back_from=None)
    if count:
        event_record(customer=customer, kind=EventKind.WORK, actor=actor,
                     summary=f"Worklist: {count} open item(s) handed over with the account",
                     details={"from": before_id, "to": after_id, "items": count})
    return count


def _lock_open(item: WorkItem) -> WorkItem:
    # of=self: the assignee is an outer join, which FOR UPDATE cannot lock.
    items = WorkItem.objects.select_for_update(of=("self",)).select_related("customer", "assignee")
    locked = items.get(pk=item.pk)
    if locked.status != WorkStatus.OPEN:
        raise ValidationError(item_done_said(locked))
    return locked


def item_done_said(item: WorkItem) -> str:
    """What someone acting on an item another person (or the system) has
    closed meanwhile is told: who closed it and when, and that nothing changed."""
    how = f"ticked off by {person_name(item.done_by)}" if item.done_by_id else "closed"
    if item.done_at:
        at = timezone.localtime(item.done_at)
        how += f" on {format_day(at.date())} at {at:%H:%M}"
    return f"This item is already done: {item.title} — {how}. Nothing was changed."


def _records(items: list[WorkItem], actor, summaries: list[str], **details) -> None:
    """_record for many items at once: one insert per REFRESH_BATCH_SIZE
    entries. An item's entry names no invoice, so there is nothing to link."""
    subject_type = ContentType.objects.get_for_model(WorkItem)
    now = timezone.now()
    TimelineEvent.objects.bulk_create([
        TimelineEvent(customer_id=item.customer_id, kind=EventKind.WORK, actor=actor, occurred_at=now,
                      summary=summary, subject_type=subject_type, subject_id=item.pk,
                      details={"item": item.pk, "kind": item.kind, **details})
        for item, summary in zip(items, summaries, strict=True)
    ], batch_size=REFRESH_BATCH_SIZE)


def _record(item: WorkItem, actor, summary: str, **details) -> None:
    event_record(customer=item.customer, kind=EventKind.WORK, actor=actor, subject=item, summary=summary,
                 details={"item": item.pk, "kind": item.kind, **details})
