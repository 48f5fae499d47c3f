"""A manager who lifts a credit hold (or C.O.D.) while money is still overdue
has decided against it for the rest of the cycle, as one who declines the
step: the ladder passes over that step, the timeline and the account's
preview say so, and only a new cycle may ask for it again."""

from __future__ import annotations

import datetime as dt

import pytest

from ar_collections.dunning import next_step
from ar_collections.models import DunningAction, DunningCycle, StepAction
from customers.models import Customer, EventKind, Segment, TermsType, TimelineEvent
from customers.services import customer_update

from .conftest import DUE, frozen
from .test_dunning_ladder_switch import days, plan_and_send, steps_of

pytestmark = pytest.mark.usefixtures("default_ladders")


def lift(customer: Customer, manager, on: dt.date, **changes) -> None:
    with frozen(on):
        customer_update(customer=Customer.objects.get(pk=customer.pk), actor=manager,
                        changes=changes or {"on_credit_hold": False},
                        reason="They paid half and promised the rest.")


@pytest.fixture
def held_late_payer(make_account) -> Customer:
    """A systematic late payer put on credit hold by hand, its ladder taken up
    to the principal (step 4, day 21): its hold (step 5, day 30) is in force."""
    customer = make_account(Segment.SYSTEMATIC_LATE)
    Customer.objects.filter(pk=customer.pk).update(on_credit_hold=True)
    for day in days(-3, 25):
        plan_and_send(day)
    assert [position for _, position, _ in steps_of(customer)] == [1, 2, 3, 4]
    return customer


def test_a_hold_a_manager_lifted_is_not_asked_for_again_in_the_cycle(held_late_payer, manager):
    lift(held_late_payer, manager, DUE + dt.timedelta(days=25))
    for day in days(25, 50):
        plan_and_send(day)

    # Past the hold the manager lifted, on to the switch to C.O.D. (step 6, day 45).
    steps = DunningAction.objects.filter(customer=held_late_payer).order_by("pk")
    assert list(steps.values_list("step__position", "step__action"))[4:] == [(6, StepAction.SWITCH_TO_COD)]
    [event] = TimelineEvent.objects.filter(customer=held_late_payer, kind=EventKind.DUNNING,
                                           summary__contains="lifted")
    assert event.summary == ("Credit hold lifted while money is overdue: the ladder passes over its "
                             "credit hold for the rest of cycle 1; a new cycle may ask for it again.")


def test_the_preview_says_the_lifted_hold_is_passed_over(held_late_payer, manager):
    on = DUE + dt.timedelta(days=26)
    lift(held_late_payer, manager, on)
    held_late_payer.refresh_from_db()
    with frozen(on):
        coming = next_step(held_late_payer, on=on)

    assert coming.step.action == StepAction.SWITCH_TO_COD
    assert "Passes over the credit hold: a manager lifted it in this cycle." in coming.note


def test_a_new_cycle_may_ask_for_the_hold_again(held_late_payer, manager):
    lift(held_late_payer, manager, DUE + dt.timedelta(days=25))
    cycle = DunningCycle.objects.get(customer=held_late_payer)
    assert cycle.credit_hold_lifted_on == DUE + dt.timedelta(days=25)
    DunningCycle.objects.filter(pk=cycle.pk).update(closed_on=DUE + dt.timedelta(days=25))
    # A cycle of its own standing where the first stood: nothing lifted in it.
    again = DunningCycle.objects.create(customer=held_late_payer, number=2,
                                        opened_on=DUE + dt.timedelta(days=26))
    DunningAction.objects.filter(cycle=cycle).update(cycle=again)
    for day in days(26, 35):
        plan_and_send(day)

    assert DunningAction.objects.filter(customer=held_late_payer, cycle__number=2,
                                        step__action=StepAction.CREDIT_HOLD).exists()


def test_c_o_d_a_manager_lifted_is_not_asked_for_again_in_the_cycle(make_account, manager):
    """An account trading C.O.D. since an earlier cycle's switch, put back on
    standard terms by a manager with money overdue: not switched back."""
    customer = make_account(Segment.SYSTEMATIC_LATE)
    Customer.objects.filter(pk=customer.pk).update(terms_type=TermsType.COD)
    for day in days(-3, 40):
        plan_and_send(day)
        DunningAction.objects.filter(customer=customer, step__action=StepAction.CREDIT_HOLD).update(
            status="skipped", skip_reason="test")
    lift(customer, manager, DUE + dt.timedelta(days=40), terms_type=TermsType.STANDARD)
    for day in days(40, 70):
        plan_and_send(day)

    assert not DunningAction.objects.filter(customer=customer, step__action=StepAction.SWITCH_TO_COD).exists()
    assert TimelineEvent.objects.filter(customer=customer, kind=EventKind.DUNNING,
                                        summary__startswith="C.O.D. lifted").exists()
