"""Worklist items about a broken commitment or a letter nobody posted leave
the list once what they ask for has been done elsewhere: a new promise or
payment plan for the invoices, a letter that a promise or plan has made
wrong to post."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import worklist, workspace
from ar_collections.dunning import eligible_invoices
from ar_collections.forms import letters_in_queue
from ar_collections.models import (
    ActionStatus,
    CollectionRules,
    DunningAction,
    PlanStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import CollectorAbsence, EventKind, ReminderChannel, Segment
from tests.ar_collections.conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=30)


def broken_promise(account, collector) -> tuple[WorkItem, dt.date]:
    """A promise for both of the account's invoices, broken: its item, and the day it broke."""
    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"),
                                       promised_on=ON + dt.timedelta(days=2), invoices=account.invoices.all(),
                                       on=ON)
    late = promise.broken_after + dt.timedelta(days=1)
    workspace.commitments_check(on=late)
    return WorkItem.objects.get(kind=WorkKind.PROMISE_BROKEN, promise=promise), late


def follow_up(kind: str, account, collector, invoice, *, on: dt.date) -> None:
    if kind == "promise":
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("700.00"),
                                 promised_on=on + dt.timedelta(days=7), invoices=[invoice], on=on)
    else:
        workspace.plan_propose(customer=account, actor=collector, invoices=[invoice], on=on,
                               instalments=[(on + dt.timedelta(days=7), Decimal("350.00")),
                                            (on + dt.timedelta(days=37), Decimal("350.00"))])


def work_events(account) -> list[str]:
    return list(account.events.filter(kind=EventKind.WORK).order_by("pk").values_list("summary", flat=True))


@pytest.mark.parametrize("kind", ["promise", "plan"])
def test_a_broken_promise_leaves_the_worklist_at_once_when_a_new_promise_or_plan_covers_what_is_still_open(
    make_account, collector, kind
):
    account = make_account()
    small, large = account.invoices.order_by("total_amount")
    item, late = broken_promise(account, collector)
    # The small invoice paid since: only the large one is left to chase.
    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=late,
                             allocations=[(small, Decimal("500.00"))], reference="BANK-1")
    assert item in worklist.items_for(assignee=collector, on=late)

    follow_up(kind, account, collector, large, on=late)

    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)
    assert item not in worklist.items_for(assignee=collector, on=late)
    [ended] = work_events(account)
    assert ended.startswith(f"Worklist: done — {item.title}; followed up: ")
    assert ("promise to pay EUR 700.00" if kind == "promise" else "payment plan of EUR 700.00") in ended


def test_a_broken_promise_stays_on_the_worklist_while_part_of_it_is_left_to_chase(make_account, collector):
    account = make_account()
    large = account.invoices.order_by("total_amount").last()
    item, late = broken_promise(account, collector)

    follow_up("promise", account, collector, large, on=late)

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert item in worklist.items_for(assignee=collector, on=late)
    assert work_events(account) == []


@pytest.mark.parametrize(("promised", "status"), [("699.99", WorkStatus.OPEN), ("700.00", WorkStatus.DONE)])
def test_a_broken_promise_leaves_the_worklist_only_when_the_new_promise_pays_the_invoice_in_full(
    make_account, collector, promised, status
):
    """As the planner reads it: a promise paying part of an invoice pauses
    nothing, and dunning goes on for it, so the break is not followed up."""
    account = make_account()
    small, large = account.invoices.order_by("total_amount")
    item, late = broken_promise(account, collector)
    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=late,
                             allocations=[(small, Decimal("500.00"))], reference="BANK-1")

    workspace.promise_record(customer=account, actor=collector, amount=Decimal(promised),
                             promised_on=late + dt.timedelta(days=7), invoices=[large], on=late)

    item.refresh_from_db()
    assert item.status == status
    assert (item in worklist.items_for(assignee=collector, on=late)) == (status == WorkStatus.OPEN)
    chased = eligible_invoices(on=late).filter(pk=large.pk).exists()
    assert chased == (status == WorkStatus.OPEN)


def test_a_missed_instalment_leaves_the_worklist_when_a_promise_covers_the_plan_s_invoices(
    make_account, collector
):
    account = make_account()
    large = account.invoices.order_by("total_amount").last()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=ON,
                                  instalments=[(ON + dt.timedelta(days=2), Decimal("350.00")),
                                               (ON + dt.timedelta(days=32), Decimal("350.00"))])
    late = ON + dt.timedelta(days=2 + plan.grace_days + 1)
    workspace.commitments_check(on=late)
    item = WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED, plan=plan)

    follow_up("promise", account, collector, large, on=late)

    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)


def test_the_daily_refresh_closes_a_broken_promise_s_item_that_a_new_promise_covered_before(
    make_account, collector
):
    """Items left open by an earlier version, which did not close them when the new promise was made."""
    account = make_account()
    item, late = broken_promise(account, collector)
    workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"), on=late,
                             promised_on=late + dt.timedelta(days=7), invoices=account.invoices.all())
    WorkItem.objects.filter(pk=item.pk).update(status=WorkStatus.OPEN, done_at=None, done_by=None)

    worklist.worklist_refresh(on=late)

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert work_events(account)[-1].startswith(f"Worklist: done — {item.title}; followed up: ")


def plan_above_the_collectors_limit(account, collector, invoices, *, on: dt.date):
    """A plan for `invoices` that waits for a manager: the collectors' limit is EUR 100.00."""
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("100.00")
    rules.save()
    owed = sum(i.open_amount for i in invoices)
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=on,
                                  instalments=[(on + dt.timedelta(days=7), owed / 2),
                                               (on + dt.timedelta(days=37), owed / 2)])
    assert plan.status == PlanStatus.AWAITING_APPROVAL
    return plan


def missed_instalment(account, collector) -> tuple[WorkItem, dt.date]:
    """A plan for the large invoice whose first instalment was missed: its item, and the day it was missed."""
    large = account.invoices.order_by("total_amount").last()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=ON,
                                  instalments=[(ON + dt.timedelta(days=2), Decimal("350.00")),
                                               (ON + dt.timedelta(days=32), Decimal("350.00"))])
    late = ON + dt.timedelta(days=2 + plan.grace_days + 1)
    workspace.commitments_check(on=late)
    return WorkItem.objects.get(kind=WorkKind.INSTALMENT_MISSED, plan=plan), late


@pytest.mark.parametrize("broken", ["promise", "instalment"])
@pytest.mark.parametrize("ended", ["rejected", "withdrawn"])
def test_a_broken_commitment_s_item_comes_back_once_when_the_plan_that_followed_it_up_never_holds(
    make_account, collector, manager, broken, ended
):
    """The new plan waited for a manager, who rejected it (or the collector
    took it back): nothing holds the debt any more, and the break is to be
    followed up again."""
    account = make_account()
    item, late = (broken_promise if broken == "promise" else missed_instalment)(account, collector)
    still_open = list((item.promise or item.plan).invoices.all())
    plan = plan_above_the_collectors_limit(account, collector, still_open, on=late)
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE

    if ended == "rejected":
        workspace.plan_decide(plan=plan, manager=manager, approve=False, note="Too long for this account",
                              on=late)
    else:
        workspace.plan_withdraw(plan=plan, actor=collector, reason="The customer will pay at once", on=late)
    worklist.worklist_refresh(on=late)
    worklist.worklist_refresh(on=late + dt.timedelta(days=1))

    item.refresh_from_db()
    assert (item.status, item.done_by, item.due_on) == (WorkStatus.OPEN, None, late)
    assert item in worklist.items_for(assignee=collector, on=late)
    assert WorkItem.objects.filter(kind=item.kind, status=WorkStatus.OPEN).count() == 1
    said = "payment plan of EUR 1,200.00" if broken == "promise" else "payment plan of EUR 700.00"
    why = ("rejected by maria: Too long for this account" if ended == "rejected"
           else "withdrawn: The customer will pay at once")
    assert work_events(account)[-2:] == [
        f"Worklist: done — {item.title}; followed up: {said} proposed, waiting for a manager",
        f"Worklist: back — {item.title}; the {said} it was followed up with was {why}",
    ]


@pytest.mark.parametrize("away_since", ["the-follow-up", "the-break"])
def test_a_broken_promise_s_item_back_while_its_collector_is_away_goes_to_the_stand_in(
    make_account, collector, other_collector, manager, away_since
):
    """Followed up before Carla went away, the item came back on her list
    when the plan was rejected, not on Otto's, who covers for her. One that
    came to Otto in the first place says whom he covers for once."""
    account = make_account()
    if away_since == "the-break":
        CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                        starts_on=ON, ends_on=ON + dt.timedelta(days=30))
    item, late = broken_promise(account, collector)
    title = item.title.removesuffix(" (covering for carla)")
    plan = plan_above_the_collectors_limit(account, collector, list(item.promise.invoices.all()), on=late)
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    if away_since == "the-follow-up":
        assert item.assignee == collector
        CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                        starts_on=late, ends_on=late + dt.timedelta(days=10))

    with frozen(late):
        workspace.plan_decide(plan=plan, manager=manager, approve=False, note="Too long", on=late)

    item.refresh_from_db()
    assert (item.status, item.assignee, item.title) == (
        WorkStatus.OPEN, other_collector, f"{title} (covering for carla)")
    assert item in worklist.items_for(assignee=other_collector, on=late)
    assert work_events(account)[-1].startswith(f"Worklist: back — {title} (covering for carla); ")


def test_a_broken_promise_s_item_stays_done_when_the_rejected_plan_was_not_what_closed_it(
    make_account, collector, manager
):
    """Ticked off by the collector (the rest agreed by phone, say) before the
    plan for part of it was rejected: the collector's word stands."""
    account = make_account()
    large = account.invoices.order_by("total_amount").last()
    item, late = broken_promise(account, collector)
    plan = plan_above_the_collectors_limit(account, collector, [large], on=late)
    worklist.item_complete(item=item, actor=collector)

    workspace.plan_decide(plan=plan, manager=manager, approve=False, note="Too long", on=late)

    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)


# --- A letter a promise or plan has made wrong to post ------------------------------

WRITTEN = DUE + dt.timedelta(days=3)  # the prompt payers' first step, a letter for this account
SEEN = WRITTEN + dt.timedelta(days=worklist.LETTER_POST_WITHIN_DAYS)  # on the worklist from then


def letter_on_the_worklist(make_account, plan_and_deliver) -> tuple[DunningAction, WorkItem]:
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    plan_and_deliver(WRITTEN)
    with frozen(SEEN):
        worklist.worklist_refresh(on=SEEN)
    return (DunningAction.objects.get(customer=account, step__position=1),
            WorkItem.objects.get(kind=WorkKind.LETTER_UNPOSTED, customer=account))


def plan_approved(account, collector, manager, *, first_due: dt.date):
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("1000.00")
    rules.save()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=account.invoices.all(), on=SEEN,
                                  instalments=[(first_due, Decimal("600.00")),
                                               (first_due + dt.timedelta(days=30), Decimal("600.00"))])
    assert plan.status == PlanStatus.AWAITING_APPROVAL
    # Waiting for a manager, the plan holds nothing: the letter is still right to post.
    assert letters_in_queue().filter(customer=account).exists()
    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Long-standing customer", on=SEEN)
    return plan


@pytest.mark.parametrize("held_by", ["promise", "approved plan"])
def test_a_letter_whose_invoices_a_promise_or_an_approved_plan_holds_is_withdrawn_and_leaves_the_worklist(
    make_account, plan_and_deliver, collector, manager, held_by
):
    letter, item = letter_on_the_worklist(make_account, plan_and_deliver)
    account = letter.customer
    with frozen(SEEN):
        if held_by == "promise":
            workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"), on=SEEN,
                                     promised_on=SEEN + dt.timedelta(days=7), invoices=account.invoices.all())
        else:
            plan_approved(account, collector, manager, first_due=SEEN + dt.timedelta(days=10))
    actor = collector if held_by == "promise" else manager

    letter.refresh_from_db()
    assert letter.status == ActionStatus.SKIPPED
    assert letter.skip_reason.startswith("withdrawn from the print queue: the ")
    assert not letters_in_queue().filter(customer=account).exists()
    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, actor)
    withdrawn = account.events.filter(kind=EventKind.DUNNING).latest("pk")
    said = ("the promise to pay EUR 1,200.00 by 15 Mar 2026" if held_by == "promise"
            else "the payment plan of EUR 1,200.00 agreed on 8 Mar 2026")
    assert withdrawn.summary == (f"Letter of 5 Mar 2026 not posted: {said} holds everything it asks for; "
                                 "withdrawn from the print queue")
    assert withdrawn.actor == actor
    assert work_events(account) == [f"Worklist: done — {item.title}; the letter was withdrawn: {said} holds "
                                    "everything it asks for"]


def test_a_letter_also_asking_for_an_invoice_no_promise_holds_stays_in_the_print_queue(
    make_account, plan_and_deliver, collector
):
    letter, item = letter_on_the_worklist(make_account, plan_and_deliver)
    account = letter.customer
    small = account.invoices.order_by("total_amount").first()
    with frozen(SEEN):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"), on=SEEN,
                                 promised_on=SEEN + dt.timedelta(days=7), invoices=[small])
        worklist.worklist_refresh(on=SEEN)

    letter.refresh_from_db()
    item.refresh_from_db()
    assert (letter.status, item.status) == (ActionStatus.DONE, WorkStatus.OPEN)
    assert letters_in_queue().filter(pk=letter.pk).exists()


def test_the_daily_refresh_withdraws_a_letter_a_promise_made_before_holds_and_closes_its_item(
    make_account, plan_and_deliver, collector
):
    """Letters left in the queue by an earlier version, which did not withdraw them at the promise."""
    letter, item = letter_on_the_worklist(make_account, plan_and_deliver)
    account = letter.customer
    with frozen(SEEN):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"), on=SEEN,
                                 promised_on=SEEN + dt.timedelta(days=7), invoices=account.invoices.all())
    DunningAction.objects.filter(pk=letter.pk).update(status=ActionStatus.DONE, skip_reason="")
    WorkItem.objects.filter(pk=item.pk).update(status=WorkStatus.OPEN, done_at=None, done_by=None)
    later = SEEN + dt.timedelta(days=1)

    with frozen(later):
        worklist.worklist_refresh(on=later)

    letter.refresh_from_db()
    item.refresh_from_db()
    assert (letter.status, item.status) == (ActionStatus.SKIPPED, WorkStatus.DONE)
    assert letter.skip_reason == ("withdrawn from the print queue: a promise, payment plan or dispute made "
                                  "since it was written holds everything it asks for")
    assert not WorkItem.objects.filter(kind=WorkKind.LETTER_UNPOSTED, status=WorkStatus.OPEN).exists()


def test_dunning_resumes_at_the_next_step_when_the_plan_that_withdrew_the_letter_breaks(
    make_account, plan_and_deliver, collector, manager
):
    letter, _ = letter_on_the_worklist(make_account, plan_and_deliver)
    account = letter.customer
    with frozen(SEEN):
        plan = plan_approved(account, collector, manager, first_due=SEEN + dt.timedelta(days=5))
    broken = SEEN + dt.timedelta(days=5 + plan.grace_days + 1)
    assert broken >= DUE + dt.timedelta(days=14)  # the ladder's second step is due by then
    with frozen(broken):
        workspace.commitments_check(on=broken)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN

    plan_and_deliver(broken)

    # The withdrawn letter's step is not taken again, nor does the ladder wait
    # for it: the next step goes out, in the same cycle, for both invoices.
    [next_step] = DunningAction.objects.filter(customer=account).exclude(pk=letter.pk)
    assert (next_step.step.position, next_step.cycle_id) == (2, letter.cycle_id)
    assert next_step.status == ActionStatus.DONE
    assert set(next_step.lines.values_list("invoice", flat=True)) == set(
        account.invoices.values_list("pk", flat=True))


@pytest.mark.parametrize(("disputed", "status"), [(None, WorkStatus.DONE), ("699.99", WorkStatus.OPEN)])
def test_a_broken_promise_leaves_the_worklist_when_a_dispute_of_all_that_is_left_follows_it(
    make_account, collector, disputed, status
):
    """A dispute opened after the break of all the invoice still owes holds
    it (the planner chases nothing of it): the break is followed up. One of
    part of it leaves the rest to chase, and the item stays."""
    account = make_account()
    small, large = account.invoices.order_by("total_amount")
    item, late = broken_promise(account, collector)
    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=late,
                             allocations=[(small, Decimal("500.00"))], reference="BANK-1")

    workspace.dispute_open(customer=account, actor=collector, invoice=large, reason="price",
                           description="Not the agreed price.", on=late,
                           amount=Decimal(disputed) if disputed else None)

    item.refresh_from_db()
    assert item.status == status
    assert (item in worklist.items_for(assignee=collector, on=late)) == (status == WorkStatus.OPEN)
    assert eligible_invoices(on=late).filter(pk=large.pk).exists() == (status == WorkStatus.OPEN)
    # The daily refresh agrees.
    worklist.worklist_refresh(on=late)
    item.refresh_from_db()
    assert item.status == status
