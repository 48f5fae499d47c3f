"""A cycle whose account changes segment part-way goes on on the new ladder,
from the position it reached. A step asking for terms the account has
already (a credit hold on an account on hold, C.O.D. on one trading C.O.D.
or prepayment) asks for nothing: the run does not plan it only for it to be
skipped, and the Dunning card does not announce it as the next step. With
nothing else left on the ladder, the collector is asked what next."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from ar_collections import services, worklist
from ar_collections.dunning import next_step, run_plan, run_start
from ar_collections.models import ActionStatus, DunningAction, StepAction, WorkItem, WorkKind, WorkStatus
from customers.models import Customer, EventKind, Segment, TermsType

from .conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")


def days(first: int, last: int):
    return (DUE + dt.timedelta(days=n) for n in range(first, last))


def plan_and_send(day: dt.date) -> None:
    """The run of `day`, what it planned carried out, and the daily refresh
    of the worklists (which skips steps asking for terms already in force)."""
    with frozen(day):
        run_plan(run=run_start(run_date=day))
        DunningAction.objects.filter(status=ActionStatus.PLANNED).update(
            status=ActionStatus.DONE, done_at=dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC))
        worklist.worklist_refresh(on=day)


def steps_of(customer) -> list[tuple[str, int, str]]:
    return list(DunningAction.objects.filter(customer=customer).order_by("pk")
                .values_list("step__policy__segment", "step__position", "status"))


@pytest.fixture
def held_late_payer(make_account) -> Customer:
    """A systematic late payer put on credit hold by hand, its ladder taken up
    to the principal (step 4, day 21): the hold is in force already."""
    customer = make_account(Segment.SYSTEMATIC_LATE)
    Customer.objects.filter(pk=customer.pk).update(on_credit_hold=True)
    for day in days(-3, 25):
        plan_and_send(day)
    assert [position for _, position, _ in steps_of(customer)] == [1, 2, 3, 4]
    return customer


def test_an_account_on_hold_moved_to_the_distressed_ladder_is_not_planned_a_hold_it_has(held_late_payer):
    """Past the end of the distressed ladder, whose last step is the credit
    hold the account is on already: nothing is left to take."""
    Customer.objects.filter(pk=held_late_payer.pk).update(segment=Segment.DISTRESSED)
    for day in days(25, 60):
        plan_and_send(day)

    assert [segment for segment, _, _ in steps_of(held_late_payer)] == [Segment.SYSTEMATIC_LATE] * 4
    assert not DunningAction.objects.filter(status=ActionStatus.SKIPPED).exists()


def test_the_card_of_an_account_on_hold_moved_to_the_distressed_ladder_announces_no_hold(held_late_payer):
    Customer.objects.filter(pk=held_late_payer.pk).update(segment=Segment.DISTRESSED)
    held_late_payer.refresh_from_db()
    on = DUE + dt.timedelta(days=29)
    with frozen(on):
        coming = next_step(held_late_payer, on=on)

    assert coming.step is None
    assert coming.note == ("No step is left: the rest of the ladder asks for terms the account has "
                           "already (on credit hold).")


def test_the_account_page_says_no_credit_hold_is_next_for_an_account_on_hold(
    client, collector, held_late_payer
):
    Customer.objects.filter(pk=held_late_payer.pk).update(segment=Segment.DISTRESSED,
                                                          collector=collector)
    client.force_login(collector)
    with frozen(DUE + dt.timedelta(days=29)):
        html = client.get(reverse("customers:detail", args=[held_late_payer.pk])).content.decode()

    assert "Next: <strong>Credit hold" not in html
    assert "the rest of the ladder asks for terms the account has already (on credit hold)" in html


def test_the_collector_is_asked_what_next_and_the_timeline_tells_of_no_step_taken(held_late_payer):
    """Once the principal's pay-by date has passed with money overdue, the
    ladder has no step left: its item goes on the collector's list, once,
    and nothing on the timeline says a step was taken that was not."""
    Customer.objects.filter(pk=held_late_payer.pk).update(segment=Segment.DISTRESSED)
    for day in days(25, 60):
        plan_and_send(day)

    [item] = WorkItem.objects.filter(customer=held_late_payer, kind=WorkKind.LADDER_ENDED)
    assert item.status == WorkStatus.OPEN
    principal = StepAction.ESCALATE_PRINCIPAL
    assert item.action == DunningAction.objects.get(customer=held_late_payer, step__action=principal)
    said = list(held_late_payer.events.filter(kind=EventKind.WORK).values_list("summary", flat=True))
    assert not [s for s in said if "a new step was taken" in s]
    assert len([s for s in said if "The ladder has no step left" in s]) == 1


def test_on_its_own_ladder_an_account_on_hold_goes_on_past_the_hold_to_c_o_d(held_late_payer):
    """The systematic late payers' hold (step 5) is in force already: the
    next step the run plans is the switch to C.O.D. (step 6), for a manager."""
    for day in days(25, 50):
        plan_and_send(day)

    assert steps_of(held_late_payer)[4:] == [
        (Segment.SYSTEMATIC_LATE, 6, ActionStatus.AWAITING_APPROVAL)]


def test_an_account_trading_c_o_d_is_not_planned_a_switch_to_c_o_d(make_account):
    """Its hold approved, a systematic late payer already trading C.O.D. has
    no step left: the ladder's last, C.O.D., asks for terms it has."""
    customer = make_account(Segment.SYSTEMATIC_LATE)
    Customer.objects.filter(pk=customer.pk).update(terms_type=TermsType.COD)
    for day in days(-3, 35):
        plan_and_send(day)
    print(steps_of(customer), next_step(customer, on=DUE + dt.timedelta(days=44)))
    hold = DunningAction.objects.get(customer=customer, step__action=StepAction.CREDIT_HOLD)
    assert hold.status == ActionStatus.AWAITING_APPROVAL
    DunningAction.objects.filter(pk=hold.pk).update(status=ActionStatus.DONE)
    Customer.objects.filter(pk=customer.pk).update(on_credit_hold=True)
    customer.refresh_from_db()

    for day in days(35, 70):
        plan_and_send(day)

    assert [position for _, position, _ in steps_of(customer)] == [1, 2, 3, 4, 5]
    with frozen(DUE + dt.timedelta(days=70)):
        assert next_step(customer, on=DUE + dt.timedelta(days=70)).step is None


def test_the_card_of_an_account_trading_c_o_d_says_why_no_step_is_left(make_account):
    customer = make_account(Segment.SYSTEMATIC_LATE)
    for day in days(-3, 35):
        plan_and_send(day)
    DunningAction.objects.filter(customer=customer, step__action=StepAction.CREDIT_HOLD).update(
        status=ActionStatus.DONE)
    Customer.objects.filter(pk=customer.pk).update(on_credit_hold=True, terms_type=TermsType.PREPAYMENT)
    customer.refresh_from_db()

    with frozen(DUE + dt.timedelta(days=50)):
        coming = next_step(customer, on=DUE + dt.timedelta(days=50))

    assert coming.step is None
    assert coming.note == ("No step is left: the rest of the ladder asks for terms the account has "
                           "already (on credit hold, trading on prepayment).")


def test_a_credit_hold_a_manager_declined_is_not_asked_again_on_the_ladder_the_account_moved_to(
    make_account, manager
):
    """Declined as the distressed ladder's last step, the hold leaves the
    collector to decide what next; moved to the systematic late payers the
    same cycle, the account is not asked the hold again (their step 5): the
    manager's decision stands for the cycle, and the card says the same."""
    customer = make_account(Segment.DISTRESSED)
    holds = DunningAction.objects.filter(customer=customer, step__action=StepAction.CREDIT_HOLD)
    for day in days(0, 90):
        plan_and_send(day)
        # The manager review (step 2) looked at by a manager.
        DunningAction.objects.filter(customer=customer, step__action=StepAction.MANAGER_REVIEW,
                                     status=ActionStatus.AWAITING_APPROVAL).update(
            status=ActionStatus.DONE, done_at=dt.datetime.combine(day, dt.time(7), tzinfo=dt.UTC))
        if holds.exists():
            break
    [hold] = holds
    assert hold.status == ActionStatus.AWAITING_APPROVAL
    on = day + dt.timedelta(days=1)
    with frozen(on):
        services.action_decline(action=hold, manager=manager, note="They just paid a large order.")
    # Nothing more to send: the collector is asked what next.
    ended = WorkItem.objects.filter(customer=customer, kind=WorkKind.LADDER_ENDED, status=WorkStatus.OPEN)
    assert ended.exists()
    Customer.objects.filter(pk=customer.pk).update(segment=Segment.SYSTEMATIC_LATE)
    customer.refresh_from_db()

    with frozen(on):
        coming = next_step(customer, on=on)
    # The ladder goes on past the declined hold, to the switch to C.O.D. for a manager.
    assert coming.step.action == StepAction.SWITCH_TO_COD
    for n in range(30):
        plan_and_send(on + dt.timedelta(days=n))
    assert steps_of(customer)[4:] == [(Segment.SYSTEMATIC_LATE, 6, ActionStatus.AWAITING_APPROVAL)]
    assert list(holds.values_list("pk", flat=True)) == [hold.pk]


def test_the_card_of_an_account_whose_declined_hold_ends_its_new_ladder_says_so(make_account, manager):
    """A systematic late payer whose hold and switch to C.O.D. a manager
    declined, moved to the distressed ladder: its last step, a hold, is what
    was declined; the card announces no hold, and says why."""
    customer = make_account(Segment.SYSTEMATIC_LATE)
    waiting = DunningAction.objects.filter(customer=customer, status=ActionStatus.AWAITING_APPROVAL)
    for day in days(-3, 120):
        plan_and_send(day)
        for action in waiting.all():
            with frozen(day):
                services.action_decline(action=action, manager=manager, note="They just paid a large order.")
        if DunningAction.objects.filter(customer=customer, step__action=StepAction.SWITCH_TO_COD).exists():
            break
    assert [(position, status) for _, position, status in steps_of(customer)][4:] == [
        (5, ActionStatus.SKIPPED), (6, ActionStatus.SKIPPED)]
    Customer.objects.filter(pk=customer.pk).update(segment=Segment.DISTRESSED)
    customer.refresh_from_db()
    with frozen(day):
        coming = next_step(customer, on=day)

    assert coming.step is None
    assert coming.note == ("No step is left: the rest of the ladder asks for what a manager declined in "
                           "this cycle (Credit hold).")
