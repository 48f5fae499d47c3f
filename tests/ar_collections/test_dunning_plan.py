"""Planning: the next right step for each account, exactly once."""

import contextlib
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ar_collections import delivery, dunning
from ar_collections.delivery import letter_withdraw
from ar_collections.dunning import RunRefused, dunning_run_execute, next_step, run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    Invoice,
    InvoiceStatus,
    LatePaymentPolicy,
    PauseKind,
    RunStatus,
)
from customers.models import ContactRole, ReminderChannel, Segment
from tests.ar_collections.conftest import frozen

DUE = dt.date(2026, 3, 2)


def plan(on: dt.date) -> int:
    return run_plan(run=run_start(run_date=on))


def plan_and_send(on: dt.date) -> int:
    """Plan `on`, then carry out what was planned that day, as the workers
    would: the next step waits for the one before it to go out."""
    planned = plan(on)
    DunningAction.objects.filter(status=ActionStatus.PLANNED).update(
        status=ActionStatus.DONE, done_at=dt.datetime.combine(on, dt.time(6), tzinfo=dt.UTC)
    )
    return planned


def actions(customer) -> list[tuple[int, str, dt.date]]:
    return list(
        DunningAction.objects.filter(customer=customer)
        .order_by("planned_on").values_list("step__position", "step__action", "planned_on")
    )


@pytest.fixture
def prompt_customer(make_customer):
    return make_customer(segment=Segment.PROMPT)


@pytest.fixture
def overdue(prompt_customer, make_invoice):
    return make_invoice(prompt_customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount="500.00")


def test_a_prompt_payer_first_gets_a_friendly_email_three_days_after_the_due_date(prompt_customer, overdue):
    assert plan(DUE + dt.timedelta(days=2)) == 0
    assert plan(DUE + dt.timedelta(days=3)) == 1

    action = DunningAction.objects.get()
    assert (action.step.position, action.step.action, action.step.tone) == (1, "email", 1)
    assert action.status == ActionStatus.PLANNED
    assert action.pay_by == DUE + dt.timedelta(days=14)  # ten days fall on Sunday 15 Mar: the Monday after
    assert list(action.lines.values_list("invoice", "open_amount")) == [(overdue.pk, Decimal("500.00"))]


def test_planning_the_same_date_twice_plans_nothing_new(overdue):
    on = DUE + dt.timedelta(days=3)
    assert plan(on) == 1
    DunningRun.objects.filter(run_date=on).update(planned_through_customer_id=0)  # as if resumed from zero
    assert plan(on) == 0
    assert DunningAction.objects.count() == 1


def test_the_next_step_waits_for_the_pay_by_date_and_never_repeats(prompt_customer, overdue):
    for day in range(3, 30):
        plan_and_send(DUE + dt.timedelta(days=day))

    assert actions(prompt_customer) == [
        (1, "email", DUE + dt.timedelta(days=3)),
        (2, "letter", DUE + dt.timedelta(days=15)),  # the day after the first's pay-by, Monday 16 Mar
        (3, "escalate_principal", DUE + dt.timedelta(days=28)),
    ]


def test_one_action_lists_every_overdue_invoice_of_the_account(prompt_customer, overdue, make_invoice):
    younger = make_invoice(
        prompt_customer, issued=DUE - dt.timedelta(days=29), due=DUE + dt.timedelta(days=1)
    )
    not_due = make_invoice(prompt_customer, issued=DUE, due=DUE + dt.timedelta(days=30))

    plan(DUE + dt.timedelta(days=3))

    listed = set(DunningAction.objects.get().lines.values_list("invoice", flat=True))
    assert listed == {overdue.pk, younger.pk}
    assert not_due.pk not in listed


def test_a_paid_account_closes_its_cycle_and_a_new_miss_starts_friendly_again(
    prompt_customer, overdue, make_invoice
):
    plan(DUE + dt.timedelta(days=3))
    Invoice.objects.filter(pk=overdue.pk).update(
        open_amount=0, status=InvoiceStatus.PAID, settled_on=DUE + dt.timedelta(days=5)
    )
    plan(DUE + dt.timedelta(days=6))
    later_due = DUE + dt.timedelta(days=40)
    make_invoice(prompt_customer, issued=later_due - dt.timedelta(days=30), due=later_due)

    plan(later_due + dt.timedelta(days=3))

    cycles = list(DunningCycle.objects.order_by("number").values_list("number", "closed_on"))
    assert cycles == [(1, DUE + dt.timedelta(days=6)), (2, None)]
    assert [a[0] for a in actions(prompt_customer)] == [1, 1]


def test_a_disputed_invoice_is_left_out_and_a_fully_paused_account_waits(
    prompt_customer, overdue, make_invoice, collector
):
    other = make_invoice(prompt_customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount="80.00")
    DunningPause.objects.create(customer=prompt_customer, invoice=overdue, kind=PauseKind.DISPUTE,
                                reason="Goods damaged", owner=collector, starts_on=DUE)
    plan_and_send(DUE + dt.timedelta(days=3))
    assert list(DunningAction.objects.get().lines.values_list("invoice", flat=True)) == [other.pk]

    DunningPause.objects.create(customer=prompt_customer, kind=PauseKind.PROMISE, reason="Pays on the 20th",
                                owner=collector, starts_on=DUE, ends_on=DUE + dt.timedelta(days=20))
    for day in range(4, 21):
        plan_and_send(DUE + dt.timedelta(days=day))
    assert DunningAction.objects.count() == 1
    assert DunningCycle.objects.get().closed_on is None  # dunning resumes where it stood

    plan_and_send(DUE + dt.timedelta(days=21))
    assert [a[0] for a in actions(prompt_customer)] == [1, 2]


def test_small_change_is_not_chased(prompt_customer, make_invoice):
    make_invoice(prompt_customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount="12.00")
    assert plan(DUE + dt.timedelta(days=3)) == 0


def test_a_systematic_late_payer_is_reminded_before_the_due_date(make_customer, make_invoice):
    late = make_customer(segment=Segment.SYSTEMATIC_LATE)
    make_invoice(late, issued=DUE - dt.timedelta(days=30), due=DUE)

    plan(DUE - dt.timedelta(days=3))

    assert actions(late) == [(1, "email", DUE - dt.timedelta(days=3))]


def test_a_reminder_before_the_due_date_is_planned_to_ask_for_the_due_date_as_it_will_say(
    make_customer, make_invoice
):
    """Ten days to pay from three days before the due date would run a week
    past it; delivery asks for the due date, never later (new terms nobody
    agreed to), and so does the plan: the next step's wait counts from the
    day the customer is told, not from a week after it."""
    late = make_customer(segment=Segment.SYSTEMATIC_LATE)
    make_invoice(late, issued=DUE - dt.timedelta(days=30), due=DUE)
    DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position=1).update(pay_by_days=10)

    plan_and_send(DUE - dt.timedelta(days=3))

    reminder = DunningAction.objects.get(customer=late)
    assert reminder.pay_by == DUE
    lines = delivery._lines_still_due(reminder, on=reminder.planned_on)
    assert reminder.pay_by == delivery.pay_by_when_sent(reminder, day=reminder.planned_on, channel="email",
                                                        lines=lines)
    for day in range(-2, 4):
        plan_and_send(DUE + dt.timedelta(days=day))
    assert actions(late)[1] == (2, "email", DUE + dt.timedelta(days=3))


def test_a_reminder_planned_before_the_due_date_for_an_overdue_invoice_keeps_its_days_to_pay(
    make_customer, make_invoice
):
    """Only what lists nothing overdue is held to the due date."""
    late = make_customer(segment=Segment.SYSTEMATIC_LATE)
    make_invoice(late, issued=DUE - dt.timedelta(days=40), due=DUE - dt.timedelta(days=10))

    plan(DUE - dt.timedelta(days=3))

    reminder = DunningAction.objects.get(customer=late)
    assert reminder.pay_by == DUE - dt.timedelta(days=3) + dt.timedelta(days=reminder.step.pay_by_days)


def test_a_credit_hold_waits_for_a_manager_and_a_special_bond_for_review(make_customer, make_invoice):
    late = make_customer(segment=Segment.SYSTEMATIC_LATE)
    bond = make_customer(segment=Segment.SPECIAL_BOND, special_bond="Helped us in 2024")
    for customer in (late, bond):
        make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE)

    for day in range(-3, 31):
        plan_and_send(DUE + dt.timedelta(days=day))

    assert DunningAction.objects.filter(customer=late, step__action="credit_hold").get().status == (
        ActionStatus.AWAITING_APPROVAL
    )
    assert set(DunningAction.objects.filter(customer=bond).values_list("status", flat=True)) == {
        ActionStatus.IN_REVIEW
    }


def test_a_run_for_a_date_before_the_last_finished_run_is_refused(db):
    run = run_start(run_date=DUE)
    run.status = RunStatus.FINISHED
    run.save()

    with pytest.raises(RunRefused, match="would go back in time"):
        run_start(run_date=DUE - dt.timedelta(days=1))


# The prompt ladder's first step is due on this day.
RUN_DAY = DUE + dt.timedelta(days=3)


def test_run_dunning_for_an_earlier_date_is_refused_while_a_later_run_is_still_going(
    make_account, make_customer, make_invoice
):
    """Today's run planned (its e-mails wait for the mail server, so it is still
    running); a manager then runs yesterday's, which the nightly beat missed.
    The command must refuse, as it does once today's run has finished: planning
    for yesterday against a today that has moved on closes today's fresh cycles
    "yesterday" — before they opened."""
    make_account(Segment.PROMPT)
    # A small account: its cycle opens today, no step is sent (under the minimum).
    small = make_customer(name="Small Change", segment=Segment.PROMPT)
    make_invoice(small, issued=DUE - dt.timedelta(days=30), due=DUE, amount="10.00")
    with frozen(RUN_DAY):
        run_plan(run=run_start(run_date=RUN_DAY))
    assert DunningRun.objects.get(run_date=RUN_DAY).status == RunStatus.RUNNING
    assert DunningCycle.objects.filter(customer=small, opened_on=RUN_DAY, closed_on=None).exists()

    with frozen(RUN_DAY), pytest.raises(CommandError, match="back in time"):
        call_command("run_dunning", "--date", (RUN_DAY - dt.timedelta(days=1)).isoformat(),
                     stdout=io.StringIO())


def test_a_run_for_an_earlier_date_that_failed_does_not_break_every_nightly_run_after_it(
    make_account, make_customer, make_invoice
):
    """The same start: whatever the command for yesterday did, tomorrow's
    nightly run must go through. It first finishes every earlier run still
    "running" — including the one for yesterday the command left behind."""
    make_account(Segment.PROMPT)
    small = make_customer(name="Small Change", segment=Segment.PROMPT)
    make_invoice(small, issued=DUE - dt.timedelta(days=30), due=DUE, amount="10.00")
    with frozen(RUN_DAY):
        run_plan(run=run_start(run_date=RUN_DAY))
    with frozen(RUN_DAY), contextlib.suppress(Exception):
        call_command("run_dunning", "--date", (RUN_DAY - dt.timedelta(days=1)).isoformat(),
                     stdout=io.StringIO())

    tomorrow = RUN_DAY + dt.timedelta(days=1)
    with frozen(tomorrow):
        run = dunning_run_execute(run_date=tomorrow)  # the nightly beat's task

    assert run.run_date == tomorrow


def test_run_dunning_says_finished_when_the_run_has_finished(db):
    """Nothing to chase: the run plans nothing and is finished at once; the
    command's one line of output must not say it is still running."""
    out = io.StringIO()
    with frozen(RUN_DAY):
        call_command("run_dunning", stdout=out)

    run = DunningRun.objects.get(run_date=RUN_DAY)
    assert run.status == RunStatus.FINISHED
    assert "finished" in out.getvalue(), out.getvalue()


@pytest.mark.parametrize("written", ["", " ", "today", "8.3.2026", "2026-3-8", "20260308", "2026-W11-7",
                                     "2026-02-30", "2026-03-05 "])
def test_run_dunning_refuses_a_date_it_cannot_read_and_says_how_to_write_it(db, written):
    """`--date=` (empty, as a script with an unset variable writes it) ran for
    today without a word; a week date or a date without dashes was taken
    although the command asks for YYYY-MM-DD."""
    with frozen(RUN_DAY), pytest.raises(CommandError) as refused:
        call_command("run_dunning", f"--date={written}", stdout=io.StringIO())

    assert str(refused.value) == f"--date must be a day written YYYY-MM-DD, e.g. 2026-03-05; got {written!r}"
    assert not DunningRun.objects.exists()


def test_run_dunning_takes_a_date_written_yyyy_mm_dd(db):
    out = io.StringIO()
    with frozen(RUN_DAY):
        call_command("run_dunning", f"--date={RUN_DAY - dt.timedelta(days=1):%Y-%m-%d}", stdout=out)

    assert list(DunningRun.objects.values_list("run_date", flat=True)) == [RUN_DAY - dt.timedelta(days=1)]
    assert out.getvalue().startswith("Dunning run 2026-03-04: finished")


def test_a_run_for_a_day_to_come_is_refused(db):
    with frozen(DUE), pytest.raises(RunRefused, match="that day has not come yet"):
        run_start(run_date=DUE + dt.timedelta(days=1))
    assert not DunningRun.objects.exists()


# --- Letters in the print queue ----------------------------------------------------------
#
# A letter is written by a worker and then waits in the print queue until a
# collector marks it printed: it reaches the customer only once posted.


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


@pytest.fixture
def writes_letters(make_account, make_contact, smtp_server):
    """A prompt payer whose billing contact Anna prefers letters (the prompt
    ladder: a letter on day 3, a firmer one on day 14, both giving 10 days to
    pay; on day 28 an e-mail to the principal, Paul)."""
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    make_contact(account, name="Paul Principal", role=ContactRole.PRINCIPAL, email="paul@acme.test")
    return account


def posted(account, position: int, *, on: dt.date) -> DunningAction:
    """The letter of that step marked printed (posted) on `on`, as the print queue marks it."""
    with frozen(on):
        DunningAction.objects.filter(customer=account, step__position=position, channel="letter",
                                     printed_at=None).update(printed_at=timezone.now())
    return DunningAction.objects.get(customer=account, step__position=position)


def test_a_letter_still_in_the_print_queue_holds_the_next_step_until_it_is_posted(
    writes_letters, plan_and_deliver, smtp_server
):
    """The print room posts the letter of day 14 only on day 40: the e-mail to
    the principal (day 28 on the ladder) does not overtake it, and then waits
    the minimum gap (5 days) from the day it was posted."""
    plan_and_deliver(days(3))
    posted(writes_letters, 1, on=days(3))
    for day in range(4, 41):
        plan_and_deliver(days(day))

    assert [a[:2] for a in actions(writes_letters)] == [(1, "email"), (2, "letter")]
    assert smtp_server.messages == []
    preview = next_step(writes_letters, on=days(40))
    assert preview.due_on is None
    assert preview.note == ("The last letter waits in the print queue: the next step waits until it is "
                            "posted or withdrawn.")

    posted(writes_letters, 2, on=days(40))
    assert next_step(writes_letters, on=days(40)).due_on == days(45)
    for day in range(41, 47):
        plan_and_deliver(days(day))

    assert actions(writes_letters)[2] == (3, "escalate_principal", days(45))
    assert [m["To"] for m in smtp_server.messages] == ["Paul Principal <paul@acme.test>"]


def test_the_minimum_gap_after_a_letter_counts_from_the_day_it_was_posted(writes_letters, plan_and_deliver):
    """Written on day 14 and posted on day 22; with 10 days between contacts
    the principal hears from us on day 32, not on day 28 (the ladder's day,
    already 14 days after the letter was written)."""
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(min_days_between_contacts=10)
    plan_and_deliver(days(3))
    posted(writes_letters, 1, on=days(3))
    for day in range(4, 23):
        plan_and_deliver(days(day))
    posted(writes_letters, 2, on=days(22))

    assert next_step(writes_letters, on=days(23)).due_on == days(32)  # the preview agrees
    for day in range(23, 35):
        plan_and_deliver(days(day))

    assert actions(writes_letters)[2] == (3, "escalate_principal", days(32))


def test_a_letter_withdrawn_from_the_queue_lets_the_ladder_go_on_without_sending_its_step_again(
    writes_letters, plan_and_deliver, collector
):
    """The letter of day 14 waits in the queue until day 35, when a collector
    withdraws it (its pay-by date, day 24, long past). It is a step not
    carried out, as a skipped one: the step is not taken again in the cycle,
    and the next one follows that very night, waiting neither for the
    withdrawn letter's pay-by date nor a minimum gap after it. The account is
    never stuck behind a letter nobody will post."""
    plan_and_deliver(days(3))
    posted(writes_letters, 1, on=days(3))
    for day in range(4, 35):
        plan_and_deliver(days(day))
    assert len(actions(writes_letters)) == 2

    with frozen(days(35)):
        letter_withdraw(letter=DunningAction.objects.get(customer=writes_letters, step__position=2),
                        actor=collector, reason="Asks to be paid by a day long past")
    assert next_step(writes_letters, on=days(35)).due_on == days(35)
    plan_and_deliver(days(35))

    assert [(a.step.position, a.status, a.planned_on) for a in
            DunningAction.objects.filter(customer=writes_letters).order_by("step__position")] == [
        (1, ActionStatus.DONE, days(3)), (2, ActionStatus.SKIPPED, days(15)),
        (3, ActionStatus.DONE, days(35)),
    ]


class _Rollback(Exception):
    pass


def _statements_to_plan(accounts: int, make_customer, make_invoice) -> int:
    """Statements one planning pass issues for `accounts` overdue accounts (then undone)."""
    try:
        with transaction.atomic():
            for _ in range(accounts):
                customer = make_customer(segment=Segment.PROMPT)
                make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE)
                make_invoice(customer, issued=DUE - dt.timedelta(days=20), due=DUE + dt.timedelta(days=2))
            run = run_start(run_date=DUE + dt.timedelta(days=3))
            dunning.ladders()  # kept by the process from the first pass on: each pass counts the same
            with CaptureQueriesContext(connection) as statements:
                assert run_plan(run=run) == accounts
            raise _Rollback
    except _Rollback:
        return len(statements)


def test_a_batch_is_planned_in_sixteen_statements(make_customer, make_invoice, monkeypatch):
    # A batch reads its accounts with their segments, their cycles (open, and
    # the last number) in one statement, and their pauses within each
    # statement that needs them, and records the first request holding a
    # cycle's step in one: 16 statements from BEGIN to COMMIT. (The
    # office's holidays, for the pay-by dates, are read once a run.)
    monkeypatch.setattr(dunning, "PLAN_BATCH_SIZE", 5)

    assert _statements_to_plan(10, make_customer, make_invoice) - _statements_to_plan(
        5, make_customer, make_invoice
    ) == 16


def test_statements_do_not_grow_with_the_number_of_accounts(make_customer, make_invoice, monkeypatch):
    monkeypatch.setattr(dunning, "PLAN_BATCH_SIZE", 1000)

    assert _statements_to_plan(5, make_customer, make_invoice) == _statements_to_plan(
        50, make_customer, make_invoice
    )
