"""When a promise breaks or a plan fails on an account whose ladder has no
step left, nothing resumes: the timeline says so, and the account's collector
gets one item a cycle to decide the next action. So too when the ladder's last
step is declined by a manager, skipped or fails while money is still overdue,
or is carried out and the money is still overdue once its pay-by date has passed.
The item leaves the list once a new step, promise, plan, dispute or payment in
full follows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from ar_collections import delivery, services, worklist, workspace
from ar_collections.models import (
    ActionStatus,
    DisputeReason,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from arcrm.text import is_one_line, person_name
from customers.models import CollectorAbsence, EventKind, Segment

from .conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=30)  # past the distressed ladder's last step, its credit hold (day 21)
SAYS = "the ladder has no step left"


def ladder_taken(account, *, through: int | None = None, last=ActionStatus.SKIPPED) -> DunningAction:
    """The distressed ladder's steps taken in the account's cycle, up to
    position `through` (every one by default), the last one ending `last`
    (skipped: declined, say); each listing both invoices. The last action."""
    run, _ = DunningRun.objects.get_or_create(run_date=DUE + dt.timedelta(days=21))
    cycle, _ = DunningCycle.objects.get_or_create(
        customer=account, closed_on=None, defaults={"number": 1, "opened_on": DUE + dt.timedelta(days=1)})
    steps = list(DunningStep.objects.filter(policy__segment=Segment.DISTRESSED).order_by("position"))
    steps = steps[:through] if through else steps
    for step in steps:
        day = DUE + dt.timedelta(days=step.day_offset)
        action = DunningAction.objects.create(
            run=run, cycle=cycle, customer=account, step=step, planned_on=day,
            pay_by=day + dt.timedelta(days=step.pay_by_days),
            status=last if step == steps[-1] else ActionStatus.DONE,
        )
        DunningActionInvoice.objects.bulk_create(
            DunningActionInvoice(action=action, invoice=i, open_amount=i.open_amount, currency=i.currency)
            for i in account.invoices.all()
        )
    return action


def items(account) -> list[WorkItem]:
    return list(WorkItem.objects.filter(customer=account, kind=WorkKind.LADDER_ENDED))


def events(account, kind) -> list[str]:
    return list(account.events.filter(kind=kind).order_by("pk").values_list("summary", flat=True))


def broken_promise(account, collector, *, on=ON) -> dt.date:
    """A promise for both invoices, broken; the day it broke."""
    with frozen(on):
        promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"),
                                           promised_on=on + dt.timedelta(days=2),
                                           invoices=account.invoices.all(), on=on)
    late = promise.broken_after + dt.timedelta(days=1)
    with frozen(late):
        workspace.commitments_check(on=late)
    return late


@pytest.fixture
def account(make_account):
    return make_account(Segment.DISTRESSED)


def test_a_promise_broken_when_the_ladder_has_no_step_left_says_so_and_asks_the_collector_what_next(
    account, collector
):
    ladder_taken(account)

    late = broken_promise(account, collector)

    broken = events(account, EventKind.PROMISE)[-1]
    assert broken.startswith("Promise broken: EUR 1,200.00 was promised for ")
    assert f"EUR 0.00 paid; {SAYS}: " in broken
    assert "dunning resumes" not in broken
    [item] = items(account)
    assert (item.status, item.assignee, item.due_on) == (WorkStatus.OPEN, collector, late)
    assert item.title.startswith("The ladder has no step left: EUR 1,200.00 overdue")
    assert "decide the next action" in item.title
    assert item in worklist.items_for(assignee=collector, on=late)


def test_a_promise_broken_with_steps_left_resumes_dunning_and_asks_nothing_more(account, collector):
    ladder_taken(account, through=2, last=ActionStatus.DONE)

    broken_promise(account, collector)

    assert events(account, EventKind.PROMISE)[-1].endswith("; dunning resumes")
    assert items(account) == []


def test_a_missed_instalment_when_the_ladder_has_no_step_left_says_so_and_asks_the_collector(
    account, collector
):
    ladder_taken(account)
    with frozen(ON):
        plan = workspace.plan_propose(customer=account, actor=collector, invoices=account.invoices.all(),
                                      on=ON, instalments=[(ON + dt.timedelta(days=2), Decimal("600.00")),
                                                          (ON + dt.timedelta(days=32), Decimal("600.00"))])
    late = ON + dt.timedelta(days=2 + plan.grace_days + 1)

    with frozen(late):
        workspace.commitments_check(on=late)

    missed = events(account, EventKind.PAYMENT_PLAN)[-1]
    assert missed.startswith("Instalment 1 missed")
    assert f"the plan is broken; {SAYS}: " in missed
    assert "dunning resumes" not in missed
    [item] = items(account)
    assert item.status == WorkStatus.OPEN


def test_a_manager_declining_the_last_step_puts_the_account_on_its_collector_s_list(
    account, collector, manager
):
    hold = ladder_taken(account, last=ActionStatus.AWAITING_APPROVAL)

    with frozen(ON):
        services.action_decline(action=hold, manager=manager, note="They just paid a large order.")

    [item] = items(account)
    assert (item.status, item.assignee, item.action) == (WorkStatus.OPEN, collector, hold)
    assert any(e.startswith("Worklist: The ladder has no step left") for e in events(account, EventKind.WORK))
    # Declined, not "skipped"; the note's own full stop is not doubled by what follows it (".)").
    assert ("its last step, step 4 (Credit hold), was declined by a manager (note: They just paid a large "
            "order); decide the next action") in item.title, item.title


def test_a_manager_s_long_note_is_cut_in_the_item_s_title_and_read_whole_beside_it(
    account, collector, manager, client
):
    """A title is one line on the list: a manager's note of a paragraph would
    fill it. The title quotes its start; the item says it whole below."""
    hold = ladder_taken(account, last=ActionStatus.AWAITING_APPROVAL)
    note = ("They paid a large order last week and the owner called me himself.\n"
            "Give them until the end of the month; if nothing comes by then, call the owner, not the clerk, "
            "and ask for a plan over three months.")

    with frozen(ON):
        services.action_decline(action=hold, manager=manager, note=note)

    [item] = items(account)
    assert is_one_line(item.title), item.title
    assert "(note: They paid a large order last week and the owner called me…); decide the next action" in (
        item.title), item.title
    assert "three months" not in item.title
    client.force_login(collector)
    with frozen(ON):
        page = client.get(reverse("collections:worklist")).content.decode()
    assert "Give them until the end of the month; if nothing comes by then, call the owner" in page
    assert "ask for a plan over three months." in page


def test_a_last_step_a_manager_approved_but_found_moot_reads_skipped_not_declined(
    account, collector, manager
):
    """Approved once payments had taken what is due under the minimum, the
    hold is skipped with the manager as its reviewer too: the item says why."""
    hold = ladder_taken(account, last=ActionStatus.AWAITING_APPROVAL)
    account.invoices.update(open_amount=Decimal("5.00"))
    with frozen(ON):
        delivery.action_approve(action=hold, manager=manager, note="Late again.")
    hold.refresh_from_db()
    assert (hold.status, hold.reviewed_by) == (ActionStatus.SKIPPED, manager)

    worklist.worklist_refresh(on=ON)

    [item] = items(account)
    assert ("its last step, step 4 (Credit hold), was skipped: by approval what is still due (EUR 10.00) is "
            "under the policy's minimum; decide the next action") in item.title, item.title
    assert "declined" not in item.title


def test_a_last_step_that_failed_once_and_was_then_skipped_gives_one_reason_in_title_and_note(
    account, collector, client
):
    """A step keeps the error of a failed try when it is skipped after: the
    title and the note under it say the same reason, not one each."""
    last = ladder_taken(account)
    last.error = "Refused by the mail server: mailbox full"
    last.skip_reason = "The contact's address bounced twice"
    last.save(update_fields=["error", "skip_reason"])

    with frozen(ON):
        worklist.worklist_refresh(on=ON)
    [item] = items(account)
    client.force_login(collector)
    with frozen(ON):
        page = " ".join(client.get(reverse("collections:worklist")).content.decode().split())

    assert "mailbox full" in item.title and "bounced twice" not in item.title, item.title
    assert "Why the last step went no further: Refused by the mail server: mailbox full" in page
    assert "bounced twice" not in page


def test_a_manager_declining_a_step_with_another_after_it_adds_no_item(make_account, collector, manager):
    account = make_account(Segment.DISTRESSED)
    review = ladder_taken(account, through=2, last=ActionStatus.AWAITING_APPROVAL)  # a manager review

    with frozen(ON):
        services.action_decline(action=review, manager=manager, note="Not now.")

    assert items(account) == []


def test_the_daily_refresh_lists_a_finished_ladder_whose_last_step_was_skipped_once(account, collector):
    ladder_taken(account)

    worklist.worklist_refresh(on=ON)
    worklist.worklist_refresh(on=ON + dt.timedelta(days=1))

    [item] = items(account)
    assert item.status == WorkStatus.OPEN
    assert item.due_on == ON


@pytest.mark.parametrize("last", [ActionStatus.SKIPPED, ActionStatus.DONE])
def test_an_item_the_collector_ticked_off_does_not_come_back_the_next_morning(account, collector, last):
    ladder_taken(account, last=last)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)

    worklist.item_complete(item=item, actor=collector, decision="watch", note="They call back on Friday.")
    worklist.worklist_refresh(on=ON + dt.timedelta(days=1))

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE


def test_a_finished_ladder_whose_last_step_was_carried_out_is_listed_once_its_pay_by_date_has_passed(
    account, collector
):
    """The credit hold of day 21 was carried out, and its notice gives until
    day 28: till then it has its time to work. After it, the money still
    overdue, nothing more goes out, and the collector decides what next."""
    last = ladder_taken(account, last=ActionStatus.DONE)
    assert last.pay_by == DUE + dt.timedelta(days=28)

    worklist.worklist_refresh(on=last.pay_by)
    assert items(account) == []

    for later in (1, 2):
        worklist.worklist_refresh(on=last.pay_by + dt.timedelta(days=later))

    [item] = items(account)
    assert (item.status, item.assignee, item.action) == (WorkStatus.OPEN, collector, last)
    assert item.due_on == last.pay_by + dt.timedelta(days=1)
    assert item.title.startswith("The ladder has no step left: EUR 1,200.00 overdue")
    assert item in worklist.items_for(assignee=collector, on=ON)


def test_nothing_is_listed_while_a_promise_holds_everything_overdue(account, collector):
    ladder_taken(account)
    with frozen(ON):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"), on=ON,
                                 promised_on=ON + dt.timedelta(days=5), invoices=account.invoices.all())

    worklist.worklist_refresh(on=ON)

    assert items(account) == []


def follow_up(kind: str, account, collector) -> None:
    invoices = list(account.invoices.all())
    with frozen(ON):
        if kind == "promise":
            workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"), on=ON,
                                     promised_on=ON + dt.timedelta(days=5), invoices=invoices)
        elif kind == "plan":
            workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=ON,
                                   instalments=[(ON + dt.timedelta(days=7), Decimal("600.00")),
                                                (ON + dt.timedelta(days=37), Decimal("600.00"))])
        elif kind == "dispute":
            for invoice in invoices:
                workspace.dispute_open(customer=account, actor=collector, invoice=invoice,
                                       reason=DisputeReason.PRICE, description="Not the agreed price.", on=ON)
        else:
            workspace.payment_record(customer=account, amount=Decimal("1200.00"), currency="EUR",
                                     received_on=ON, allocations=[(i, i.open_amount) for i in invoices],
                                     reference="BANK-1")


@pytest.mark.parametrize("kind", ["promise", "plan", "dispute", "payment"])
def test_the_item_leaves_the_list_at_once_when_a_promise_plan_dispute_or_payment_in_full_follows(
    account, collector, kind
):
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)

    follow_up(kind, account, collector)

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    ended = events(account, EventKind.WORK)[-1]
    assert ended.startswith(f"Worklist: done — {item.title}; ")


def test_the_item_stays_while_part_of_what_is_overdue_is_left_to_chase(account, collector):
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)

    with frozen(ON):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"), on=ON,
                                 promised_on=ON + dt.timedelta(days=5),
                                 invoices=[account.invoices.order_by("total_amount").first()])
    worklist.worklist_refresh(on=ON)

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN


def test_the_item_stays_while_a_promise_pays_part_of_an_invoice_and_dunning_would_chase_the_rest(
    account, collector
):
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)

    # Both invoices, the second one a cent short: it is not paused.
    with frozen(ON):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("1199.99"), on=ON,
                                 promised_on=ON + dt.timedelta(days=5), invoices=account.invoices.all())
    worklist.worklist_refresh(on=ON)

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert events(account, EventKind.WORK)[-1] == f"Worklist: {item.title}"


def dispute_of(account, collector, invoice, amount: str | None) -> None:
    """A dispute of `amount` of `invoice` (None: all it owes), opened on ON."""
    with frozen(ON):
        workspace.dispute_open(customer=account, actor=collector, invoice=invoice, reason=DisputeReason.PRICE,
                               description="Not the agreed price.", on=ON,
                               amount=None if amount is None else Decimal(amount))


def test_disputes_of_a_euro_of_each_invoice_leave_the_item_on_the_list_for_the_rest(account, collector):
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)

    for invoice in account.invoices.all():
        dispute_of(account, collector, invoice, "1.00")
    worklist.worklist_refresh(on=ON)

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert not [e for e in events(account, EventKind.WORK) if e.startswith("Worklist: done")]


def test_a_promise_of_one_invoice_and_a_dispute_of_part_of_the_other_leave_the_item_on_the_list(
    account, collector
):
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    small, large = account.invoices.order_by("total_amount")

    with frozen(ON):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"), on=ON,
                                 promised_on=ON + dt.timedelta(days=5), invoices=[small])
    dispute_of(account, collector, large, "400.00")

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN


def test_a_dispute_of_part_and_a_promise_of_the_rest_hold_everything_and_the_item_leaves_the_list(
    account, collector
):
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    small, large = account.invoices.order_by("total_amount")

    dispute_of(account, collector, small, None)
    dispute_of(account, collector, large, "400.00")
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    with frozen(ON):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("300.00"), on=ON,
                                 promised_on=ON + dt.timedelta(days=5), invoices=[large])

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE


def test_the_item_counts_what_a_dispute_of_part_of_an_invoice_leaves_to_chase(account, collector):
    ladder_taken(account)
    dispute_of(account, collector, account.invoices.order_by("total_amount").last(), "200.00")

    worklist.worklist_refresh(on=ON)

    [item] = items(account)
    assert item.title.startswith("The ladder has no step left: EUR 1,000.00 overdue")


def test_the_item_leaves_the_list_when_a_new_step_follows(account, collector):
    last = ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    # A manager added a step to the ladder, and the run took it.
    step = DunningStep.objects.create(policy=last.step.policy, position=5, day_offset=35, action="letter",
                                      tone=3, pay_by_days=7)
    DunningAction.objects.create(run=last.run, cycle=last.cycle, customer=account, step=step, planned_on=ON,
                                 pay_by=ON + dt.timedelta(days=7), status=ActionStatus.DONE)

    worklist.worklist_refresh(on=ON)

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert events(account, EventKind.WORK)[-1].endswith("; a new step was taken: step 5 (PDF letter)")


def later_step_planned(last: DunningAction, *, status: str, error: str = "") -> DunningAction:
    """A step added to the finished ladder (a switch to C.O.D.), planned in
    the cycle of its `last` step and left at `status`."""
    step = DunningStep.objects.create(policy=last.step.policy, position=5, day_offset=35,
                                      action="switch_to_cod", tone=3, pay_by_days=7)
    return DunningAction.objects.create(run=last.run, cycle=last.cycle, customer=last.customer, step=step,
                                        planned_on=ON, pay_by=ON + dt.timedelta(days=7), status=status,
                                        error=error)


@pytest.mark.parametrize("status", [ActionStatus.SKIPPED, ActionStatus.FAILED])
def test_a_new_step_that_told_the_customer_nothing_leaves_the_item_on_the_list(account, collector, status):
    """A step added to the ladder that the run planned and that was then
    skipped (the account switched to C.O.D. on its card meanwhile) or failed:
    nothing was taken, so the timeline does not say a step was, nor does the
    item come back in the same second as if it were new."""
    last = ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    later_step_planned(last, status=status)

    worklist.worklist_refresh(on=ON)

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    said = events(account, EventKind.WORK)
    assert not [s for s in said if "a new step was taken" in s]
    assert len([s for s in said if s.startswith("Worklist: The ladder has no step left")]) == 1


@pytest.mark.parametrize("found_by", ["the daily refresh", "delivery giving up"])
def test_an_open_item_names_a_later_step_that_failed_and_why_once(account, collector, found_by):
    """The item was about step 4, skipped; step 5, added since, failed. The
    collector decides on what really ended the ladder: the item now names
    step 5, says it failed and why as the run page does, and the timeline
    says so once, however often the list is refreshed."""
    last = ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    failed = later_step_planned(last, status=ActionStatus.FAILED,
                                error="SMTPRecipientsRefused: 550 5.1.1 mailbox unknown")

    for _ in range(2):
        if found_by == "the daily refresh":
            worklist.worklist_refresh(on=ON)
        else:
            worklist.ladder_ended_items(on=ON, customer_ids=[account.pk], again=True)

    item.refresh_from_db()
    assert (item.status, item.action) == (WorkStatus.OPEN, failed)
    assert item.title.startswith("The ladder has no step left: EUR 1,200.00 overdue")
    assert ("its last step, step 5 (Switch to C.O.D./prepayment), failed: SMTPRecipientsRefused: 550 5.1.1 "
            "mailbox unknown; decide the next action") in item.title
    said = [s for s in events(account, EventKind.WORK) if "step 5" in s]
    assert said == [f"Worklist: updated — {item.title}"]


def test_a_new_step_waiting_for_a_manager_takes_the_item_off_the_list(account, collector):
    last = ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    later_step_planned(last, status=ActionStatus.AWAITING_APPROVAL)

    worklist.worklist_refresh(on=ON)

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert events(account, EventKind.WORK)[-1].endswith(
        "; a new step was taken: step 5 (Switch to C.O.D./prepayment)")


def test_a_promise_broken_after_the_item_was_followed_up_brings_the_same_item_back(account, collector):
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)

    late = broken_promise(account, collector)

    [again] = items(account)
    assert again.pk == item.pk
    assert (again.status, again.due_on) == (WorkStatus.OPEN, late)


def test_a_finished_ladder_whose_last_step_was_carried_out_and_then_paid_asks_nothing(account, collector):
    last = ladder_taken(account, last=ActionStatus.DONE)
    follow_up("payment", account, collector)

    worklist.worklist_refresh(on=last.pay_by + dt.timedelta(days=1))

    assert items(account) == []


@pytest.mark.parametrize("listed_before", [False, True])
def test_a_promise_broken_on_a_finished_ladder_leaves_one_item_on_the_collector_s_list(
    account, collector, listed_before
):
    """The broken promise resumes nothing: what to do about it is what the
    ladder's item asks, whether it was on the list before the promise or not."""
    ladder_taken(account)
    if listed_before:
        worklist.worklist_refresh(on=ON)

    late = broken_promise(account, collector)

    [item] = worklist.items_for(assignee=collector, on=late)
    assert item.kind == WorkKind.LADDER_ENDED
    assert WorkItem.objects.filter(customer=account, status=WorkStatus.OPEN).count() == 1


def test_a_broken_promise_on_a_finished_ladder_for_part_of_the_money_leaves_one_item(account, collector):
    """The ladder's item stayed open while the promise held part of the money."""
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    small = account.invoices.order_by("total_amount").first()
    with frozen(ON):
        promise = workspace.promise_record(customer=account, actor=collector, amount=small.open_amount, on=ON,
                                           promised_on=ON + dt.timedelta(days=2), invoices=[small])
    late = promise.broken_after + dt.timedelta(days=1)
    with frozen(late):
        workspace.commitments_check(on=late)

    assert [i.kind for i in worklist.items_for(assignee=collector, on=late)] == [WorkKind.LADDER_ENDED]


def test_a_missed_instalment_on_a_finished_ladder_leaves_one_item_on_the_collector_s_list(account, collector):
    ladder_taken(account)
    with frozen(ON):
        plan = workspace.plan_propose(customer=account, actor=collector, invoices=account.invoices.all(),
                                      on=ON, instalments=[(ON + dt.timedelta(days=2), Decimal("600.00")),
                                                          (ON + dt.timedelta(days=32), Decimal("600.00"))])
    late = ON + dt.timedelta(days=2 + plan.grace_days + 1)

    with frozen(late):
        workspace.commitments_check(on=late)

    assert [i.kind for i in worklist.items_for(assignee=collector, on=late)] == [WorkKind.LADDER_ENDED]


def test_the_daily_refresh_lists_a_finished_ladder_whose_last_step_failed_saying_why(account, collector):
    """A last step that failed told the customer nothing: without an item the
    account would drop out of dunning with its money still overdue."""
    last = ladder_taken(account, last=ActionStatus.FAILED)
    DunningAction.objects.filter(pk=last.pk).update(error="RuntimeError: the letter could not be rendered")

    worklist.worklist_refresh(on=ON)
    worklist.worklist_refresh(on=ON + dt.timedelta(days=1))

    [item] = items(account)
    assert (item.status, item.assignee, item.action, item.due_on) == (WorkStatus.OPEN, collector, last, ON)
    assert item.title.startswith("The ladder has no step left: EUR 1,200.00 overdue")
    assert ("its last step, step 4 (Credit hold), failed: RuntimeError: the letter could not be rendered"
            in item.title)
    assert "decide the next action" in item.title
    assert "failed: RuntimeError" in events(account, EventKind.WORK)[-1]


@pytest.fixture
def one_step_ladder(default_ladders):
    """The prompt ladder cut to its first step, a friendly e-mail on day 3."""
    DunningStep.objects.filter(policy__segment=Segment.PROMPT, position__gt=1).update(retired=True)


@pytest.mark.usefixtures("one_step_ladder")
def test_a_last_step_refused_by_the_mail_server_puts_the_account_on_its_collector_s_list_at_once(
    make_account, collector, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    smtp_server.refuse_with("550 5.7.1 Message rejected as spam")

    assert plan_and_deliver(DUE + dt.timedelta(days=3))["failed"] == 1

    [item] = items(account)
    failed = DunningAction.objects.get(customer=account)
    assert (item.status, item.assignee, item.action) == (WorkStatus.OPEN, collector, failed)
    assert "its last step, step 1 (E-mail), failed: SMTP" in item.title
    assert "rejected as spam" in item.title


@pytest.mark.usefixtures("one_step_ladder")
def test_a_step_that_will_be_tried_again_adds_no_item(make_account, plan_and_deliver, smtp_server):
    make_account(Segment.PROMPT)
    smtp_server.refuse_with("451 4.3.0 Try again later")

    assert plan_and_deliver(DUE + dt.timedelta(days=3))["deferred"] == 1

    assert WorkItem.objects.filter(kind=WorkKind.LADDER_ENDED).count() == 0


def test_a_finished_ladder_s_item_about_a_broken_promise_scores_the_broken_promise_s_points(
    account, make_account, collector, client
):
    """The ladder's item takes in the broken promise's own (which would score
    20): an account that broke its word ranks above one that did not."""
    ladder_taken(account)
    kept_its_word = make_account(Segment.DISTRESSED, name="Beta Bakery")
    ladder_taken(kept_its_word)
    late = broken_promise(account, collector)
    worklist.worklist_refresh(on=late)

    first, second = worklist.items_for(assignee=collector, on=late)

    assert (first.customer, first.kind, first.promise_points) == (account, WorkKind.LADDER_ENDED, 20)
    assert (second.customer, second.kind, second.promise_points) == (kept_its_word, WorkKind.LADDER_ENDED, 0)
    assert first.priority == second.priority + 20
    client.force_login(collector)
    with frozen(late):
        page = client.get(reverse("collections:worklist")).content.decode()
    assert page.count("a promise or plan broken (+20)") == 1


def test_the_broken_promise_s_points_go_once_what_it_covered_is_held_again(account, collector):
    """As the broken promise's own item would close: the rest of the money
    keeps the ladder's item on the list, without the points."""
    ladder_taken(account)
    small = account.invoices.order_by("total_amount").first()
    with frozen(ON):
        promise = workspace.promise_record(customer=account, actor=collector, amount=small.open_amount, on=ON,
                                           promised_on=ON + dt.timedelta(days=2), invoices=[small])
    late = promise.broken_after + dt.timedelta(days=1)
    with frozen(late):
        workspace.commitments_check(on=late)
    [item] = worklist.items_for(assignee=collector, on=late)
    assert (item.kind, item.promise_points) == (WorkKind.LADDER_ENDED, 20)

    with frozen(late):
        workspace.promise_record(customer=account, actor=collector, amount=small.open_amount, on=late,
                                 promised_on=late + dt.timedelta(days=5), invoices=[small])

    [item] = worklist.items_for(assignee=collector, on=late)
    assert (item.kind, item.promise_points) == (WorkKind.LADDER_ENDED, 0)


def test_the_broken_promise_s_points_stay_while_the_new_promise_pays_its_invoice_only_in_part(
    account, collector
):
    ladder_taken(account)
    small = account.invoices.order_by("total_amount").first()
    with frozen(ON):
        promise = workspace.promise_record(customer=account, actor=collector, amount=small.open_amount, on=ON,
                                           promised_on=ON + dt.timedelta(days=2), invoices=[small])
    late = promise.broken_after + dt.timedelta(days=1)
    with frozen(late):
        workspace.commitments_check(on=late)

    with frozen(late):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("0.01"), on=late,
                                 promised_on=late + dt.timedelta(days=5), invoices=[small])

    [item] = worklist.items_for(assignee=collector, on=late)
    assert (item.kind, item.promise_points) == (WorkKind.LADDER_ENDED, 20)


def test_an_item_taken_over_by_a_later_skipped_step_says_why_and_keeps_its_cover(
    account, collector, other_collector
):
    """Carla is away, Otto covers: the item came to him "(covering for
    carla)". Step 5, added since, was skipped: the rewritten item named it
    without why, and no longer said why it was on Otto's list."""
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=ON - dt.timedelta(days=3), ends_on=ON + dt.timedelta(days=3))
    last = ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    covering = f" (covering for {person_name(collector)})"
    assert item.title.endswith(covering) and item.assignee == other_collector
    skipped = later_step_planned(last, status=ActionStatus.SKIPPED)
    DunningAction.objects.filter(pk=skipped.pk).update(skip_reason="the account pays C.O.D. already")

    worklist.worklist_refresh(on=ON)

    item.refresh_from_db()
    assert (item.status, item.action, item.assignee) == (WorkStatus.OPEN, skipped, other_collector)
    assert ("its last step, step 5 (Switch to C.O.D./prepayment), was skipped: the account pays C.O.D. "
            f"already; decide the next action{covering}") in item.title
    said = [s for s in events(account, EventKind.WORK) if "step 5" in s]
    assert said == [f"Worklist: updated — {item.title}"]


def test_a_done_item_back_while_its_collector_is_away_keeps_its_cover(account, collector, other_collector):
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=ON - dt.timedelta(days=3), ends_on=ON + dt.timedelta(days=3))
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    WorkItem.objects.filter(pk=item.pk).update(status=WorkStatus.DONE, done_at=timezone.now())

    worklist.ladder_ended_items(on=ON, customer_ids=[account.pk], again=True)

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert item.title.endswith(f"decide the next action (covering for {person_name(collector)})")


def test_a_done_item_back_after_its_collector_went_away_goes_to_the_stand_in(
    account, collector, other_collector
):
    """On Carla's list and ticked off before she went away, the item came
    back on hers, not on Otto's, who covers for her."""
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = items(account)
    assert item.assignee == collector
    WorkItem.objects.filter(pk=item.pk).update(status=WorkStatus.DONE, done_at=timezone.now())
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=ON, ends_on=ON + dt.timedelta(days=3))

    worklist.ladder_ended_items(on=ON, customer_ids=[account.pk], again=True)

    item.refresh_from_db()
    assert (item.status, item.assignee) == (WorkStatus.OPEN, other_collector)
    assert item.title.endswith(f"decide the next action (covering for {person_name(collector)})")
    assert events(account, EventKind.WORK)[-1] == f"Worklist: {item.title}"


@pytest.mark.parametrize("held", ["manual_hold", "exception"])
def test_nothing_is_listed_while_a_hold_or_an_approved_exception_holds_the_account_as_its_comeback_reads_it(
    account, collector, manager, held
):
    """The first item reads the same holds as its comeback 14 days later
    (ladder_items_back): a hold the first ignored would list money that the
    comeback, and the planner, take as held."""
    ladder_taken(account)
    with frozen(ON):
        if held == "manual_hold":
            workspace.pause_set(customer=account, actor=collector, ends_on=ON + dt.timedelta(days=10),
                                reason="Their new AP clerk starts next week.", on=ON)
        else:
            asked = workspace.exception_request(customer=account, actor=collector, kind="pause", on=ON,
                                                reason="Owner in hospital",
                                                pause_until=ON + dt.timedelta(days=10))
            workspace.exception_decide(request=asked, manager=manager, approve=True, note="Yes", on=ON)
    assert account.dunning_pauses.get().kind == held

    worklist.worklist_refresh(on=ON)
    assert items(account) == []

    # Once the hold is over, with the money still overdue, it is listed.
    worklist.worklist_refresh(on=ON + dt.timedelta(days=11))
    [item] = items(account)
    assert item.status == WorkStatus.OPEN


def test_an_account_whose_ladder_ends_after_a_broken_promise_heads_the_list_once(account, collector):
    """A promise broke while steps were left (its own item asks the collector
    to follow it up); the last step then went no further. The ladder's item
    takes the broken promise's in, as when the promise breaks on a finished
    ladder: two items of equal priority about one account would head the list
    side by side, in no order of their own, asking one question twice."""
    ladder_taken(account, through=2, last=ActionStatus.DONE)
    late = broken_promise(account, collector)
    assert WorkItem.objects.filter(customer=account, kind=WorkKind.PROMISE_BROKEN,
                                   status=WorkStatus.OPEN).count() == 1
    # The rest of the ladder taken in the same cycle, its last step skipped.
    DunningAction.objects.filter(customer=account).delete()
    ladder_taken(account)

    with frozen(late):
        worklist.worklist_refresh(on=late)

    listed = [item for item in worklist.items_for(assignee=collector, on=late) if item.customer == account]
    assert [item.kind for item in listed] == [WorkKind.LADDER_ENDED]
    broken = WorkItem.objects.get(customer=account, kind=WorkKind.PROMISE_BROKEN)
    assert broken.status == WorkStatus.DONE
    assert any("the ladder has no step left: its item asks for the next action" in e
               for e in events(account, EventKind.WORK))
