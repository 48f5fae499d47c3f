"""A credit hold or a switch to C.O.D. a manager approves on the approvals
queue changes the account's card as every hold or terms change does
(customers.services.customer_update): with a reason, which names the step
approved and who approved it, on the account's history beside the dunning
step's own entry."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from ar_collections.delivery import action_approve
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    StepAction,
)
from arcrm.text import person_name
from customers.models import EventKind, Segment, TermsType, TimelineEvent

from .conftest import DUE, frozen

pytestmark = pytest.mark.django_db


def _awaiting(account, step_action: str) -> DunningAction:
    """The step as the planner leaves it: waiting for approval, listing the open invoices."""
    step = DunningStep.objects.get(policy__segment=Segment.SYSTEMATIC_LATE, action=step_action)
    run = DunningRun.objects.create(run_date=DUE + dt.timedelta(days=step.day_offset))
    cycle = DunningCycle.objects.create(customer=account, number=1, opened_on=DUE - dt.timedelta(days=3))
    action = DunningAction.objects.create(
        run=run, cycle=cycle, customer=account, step=step, status=ActionStatus.AWAITING_APPROVAL,
        planned_on=run.run_date, pay_by=run.run_date + dt.timedelta(days=step.pay_by_days),
    )
    for invoice in account.invoices.all():
        action.lines.create(invoice=invoice, open_amount=invoice.open_amount, currency=invoice.currency)
    return action


@pytest.mark.parametrize(("step_action", "changed", "before", "after"), [
    (StepAction.CREDIT_HOLD, "on_credit_hold", False, True),
    (StepAction.SWITCH_TO_COD, "terms_type", TermsType.STANDARD, TermsType.COD),
], ids=["credit-hold", "cod"])
def test_an_approved_hold_or_cod_is_on_the_account_s_history_with_the_step_and_who_approved_it(
    make_account, manager, client, step_action, changed, before, after
):
    account = make_account(Segment.SYSTEMATIC_LATE)
    action = _awaiting(account, step_action)
    manager.first_name, manager.last_name = "Maria", "Stone"
    manager.save()

    with frozen(action.planned_on):
        action_approve(action=action, manager=manager, note="Third broken promise")

    account.refresh_from_db()
    assert getattr(account, changed) == after
    change = TimelineEvent.objects.get(customer=account, kind=EventKind.ACCOUNT_CHANGED)
    reason = (f"Step {action.step.position} ({action.step.get_action_display()}) approved by "
              f"{person_name(manager)}: Third broken promise")
    assert change.actor == manager
    assert change.details == {"before": {changed: before}, "after": {changed: after}, "reason": reason}
    assert change.summary.endswith(f", because “{reason}”")
    client.force_login(manager)
    with frozen(action.planned_on):
        page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    assert "Maria Stone: Third broken promise" in page and "Account card changed" in page
