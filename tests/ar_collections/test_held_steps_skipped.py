"""A credit hold or switch to C.O.D. waiting for a manager leaves the
approvals once a promise or an agreed payment plan holds every invoice it
lists: approving it would go against what was just agreed. Skipped, it keeps
its place on the ladder, so a broken plan goes on at the next step."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import worklist, workspace
from ar_collections.dunning import run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    CollectionRules,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    PlanStatus,
    StepAction,
)
from arcrm.dates import format_day
from customers.models import EventKind, Segment

from .conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=30)  # the systematic-late ladder's credit hold is due


def waiting(account, action: str = StepAction.CREDIT_HOLD) -> DunningAction:
    """The systematic-late ladder's `action` step waiting for a manager, listing both invoices."""
    run, _ = DunningRun.objects.get_or_create(run_date=ON)
    cycle, _ = DunningCycle.objects.get_or_create(customer=account, closed_on=None,
                                                  defaults={"number": 1, "opened_on": ON})
    step = DunningStep.objects.get(policy__segment=Segment.SYSTEMATIC_LATE, action=action)
    step_action = DunningAction.objects.create(run=run, cycle=cycle, customer=account, step=step,
                                               status=ActionStatus.AWAITING_APPROVAL, planned_on=ON,
                                               pay_by=ON + dt.timedelta(days=7))
    DunningActionInvoice.objects.bulk_create(
        DunningActionInvoice(action=step_action, invoice=i, open_amount=i.open_amount, currency=i.currency)
        for i in account.invoices.all()
    )
    return step_action


def promise(account, collector, invoices, *, on=ON):
    return workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"),
                                    promised_on=on + dt.timedelta(days=5), invoices=invoices, on=on)


def plan(account, collector, *, amount="600.00", on=ON):
    return workspace.plan_propose(customer=account, actor=collector, invoices=account.invoices.all(), on=on,
                                  instalments=[(on + dt.timedelta(days=2), Decimal(amount)),
                                               (on + dt.timedelta(days=32), Decimal(amount))])


def dunning_events(account) -> list[str]:
    events = account.events.filter(kind=EventKind.DUNNING).order_by("pk")
    return list(events.values_list("summary", flat=True))


@pytest.mark.parametrize("action", [StepAction.CREDIT_HOLD, StepAction.SWITCH_TO_COD])
def test_a_promise_for_every_invoice_a_waiting_step_lists_skips_it(make_account, collector, action):
    account = make_account(Segment.SYSTEMATIC_LATE)
    step = waiting(account, action)

    with frozen(ON):
        promise(account, collector, account.invoices.all())

    step.refresh_from_db()
    assert step.status == ActionStatus.SKIPPED
    assert step.skip_reason == (f"the promise to pay EUR 1,200.00 by {format_day(ON + dt.timedelta(days=5))} "
                                "holds everything it asks for")
    [event] = dunning_events(account)
    assert event == (f"Step {step.step.position} ({step.step.get_action_display()}) skipped: "
                     f"{step.skip_reason}; no manager's decision is needed")


def test_a_plan_agreed_at_once_skips_the_waiting_credit_hold(make_account, collector):
    account = make_account(Segment.SYSTEMATIC_LATE)
    step = waiting(account)

    with frozen(ON):
        agreed = plan(account, collector)

    assert agreed.status == PlanStatus.ACTIVE
    step.refresh_from_db()
    assert step.status == ActionStatus.SKIPPED
    assert step.skip_reason.startswith("the payment plan of EUR 1,200.00 agreed on ")


def test_a_plan_waiting_for_a_manager_skips_the_credit_hold_only_once_approved(
    make_account, collector, manager
):
    account = make_account(Segment.SYSTEMATIC_LATE)
    step = waiting(account)
    CollectionRules.objects.filter(pk=CollectionRules.current().pk).update(plan_approval_above_amount=0)

    with frozen(ON):
        proposed = plan(account, collector)
        step.refresh_from_db()
        assert (proposed.status, step.status) == (PlanStatus.AWAITING_APPROVAL,
                                                  ActionStatus.AWAITING_APPROVAL)

        workspace.plan_decide(plan=proposed, manager=manager, approve=True, note="Fine.", on=ON)

    step.refresh_from_db()
    assert step.status == ActionStatus.SKIPPED
    assert step.skip_reason == (f"the payment plan of EUR 1,200.00 agreed on {format_day(ON)} holds "
                                "everything it asks for")


def test_a_promise_for_some_of_the_invoices_a_waiting_step_lists_leaves_it_to_the_manager(
    make_account, collector
):
    account = make_account(Segment.SYSTEMATIC_LATE)
    step = waiting(account)

    with frozen(ON):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"), on=ON,
                                 promised_on=ON + dt.timedelta(days=5),
                                 invoices=[account.invoices.order_by("total_amount").first()])
        worklist.worklist_refresh(on=ON)

    step.refresh_from_db()
    assert step.status == ActionStatus.AWAITING_APPROVAL
    assert dunning_events(account) == []


def test_a_step_a_manager_decided_meanwhile_is_not_skipped(make_account, collector, manager):
    account = make_account(Segment.SYSTEMATIC_LATE)
    step = waiting(account)
    DunningAction.objects.filter(pk=step.pk).update(status=ActionStatus.DONE)

    with frozen(ON):
        promise(account, collector, account.invoices.all())

    step.refresh_from_db()
    assert step.status == ActionStatus.DONE
    assert dunning_events(account) == []


def test_when_the_plan_that_skipped_the_credit_hold_breaks_the_ladder_goes_on_at_the_next_step(
    make_account, collector
):
    account = make_account(Segment.SYSTEMATIC_LATE)
    step = waiting(account)
    with frozen(ON):
        agreed = plan(account, collector)
    late = ON + dt.timedelta(days=2 + agreed.grace_days + 1)
    with frozen(late):
        workspace.commitments_check(on=late)
    agreed.refresh_from_db()
    assert agreed.status == PlanStatus.BROKEN

    day = DUE + dt.timedelta(days=45)  # the switch to C.O.D.
    with frozen(day):
        run_plan(run=run_start(run_date=day))

    step.refresh_from_db()
    assert step.status == ActionStatus.SKIPPED
    [following] = DunningAction.objects.filter(customer=account).exclude(pk=step.pk)
    assert (following.step.action, following.status) == (StepAction.SWITCH_TO_COD,
                                                          ActionStatus.AWAITING_APPROVAL)
