"""A pay-by date the customer reads falls on a working day: never on a
Saturday, a Sunday or a day the office is shut."""

import datetime as dt

from ar_collections.dunning import planned_pay_by, run_plan, run_start
from ar_collections.models import (
    PAY_BY_DAYS_AT_MOST,
    CollectionRules,
    DunningAction,
    DunningStep,
    Holiday,
    LatePaymentPolicy,
)
from customers.models import ReminderChannel, Segment

from .conftest import DUE, frozen


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)  # DUE is Monday 2 Mar 2026


def test_a_step_planned_to_ask_for_payment_on_a_sunday_asks_for_the_monday_after(make_account):
    """The prompt payers' first e-mail, planned on Thursday 5 Mar, gives ten
    days: Sunday 15 Mar, so Monday 16 Mar."""
    account = make_account(Segment.PROMPT)

    with frozen(days(3)):
        run_plan(run=run_start(run_date=days(3)))

    assert DunningAction.objects.get(customer=account).pay_by == dt.date(2026, 3, 16)


def test_the_email_asks_for_payment_on_the_working_day_after_an_office_holiday(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    Holiday.objects.create(rules=CollectionRules.current(), day=dt.date(2026, 3, 16), name="Founders' Day")

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    for part in (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()):
        assert "17 Mar 2026" in part or "17 March 2026" in part
        assert "15 Mar" not in part and "16 Mar" not in part
    assert DunningAction.objects.get(customer=account).pay_by == dt.date(2026, 3, 17)


def test_a_letter_asks_for_payment_on_a_working_day(make_account, plan_and_deliver, pdf_text):
    """Written on Thursday 5 Mar, posted Friday 6 Mar, 15 days to pay from
    then: Saturday 21 Mar, so Monday 23 Mar."""
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(min_days_between_contacts=15)

    plan_and_deliver(days(3))

    letter = DunningAction.objects.get(customer=account)
    assert letter.pay_by == dt.date(2026, 3, 23)
    assert "Please pay by: 23 Mar 2026" in pdf_text(letter.letter_pdf.read())


def test_a_reminder_before_the_due_date_still_names_the_due_date_itself(make_customer, make_contact,
                                                                       make_invoice):
    """A due date on a Saturday is the invoice's own terms: the systematic late
    payers' reminder three days before it names it as it is."""
    saturday = dt.date(2026, 3, 7)
    customer = make_customer(name="Early Bird", segment=Segment.SYSTEMATIC_LATE)
    make_contact(customer, name="Anna Clerk", is_primary_billing=True, email="anna@early.test")
    make_invoice(customer, issued=saturday - dt.timedelta(days=30), due=saturday, amount="500.00")

    with frozen(dt.date(2026, 3, 4)):
        run_plan(run=run_start(run_date=dt.date(2026, 3, 4)))

    assert DunningAction.objects.get(customer=customer).pay_by == saturday


def test_a_step_saved_with_more_days_to_pay_than_a_step_may_give_plans_the_most_it_may():
    # Saved before steps were bounded: the nightly run and Coming up plan it
    # with the longest time a step may give, rather than failing on a date
    # past the calendar's end.
    step = DunningStep(position=9, day_offset=200, pay_by_days=3_000_000)
    on = dt.date(2026, 12, 4)  # a Friday; 90 days on is Thursday 4 Mar 2027

    pay_by = planned_pay_by(step, on=on, oldest_due=dt.date(2026, 1, 1), holidays=())

    assert pay_by == on + dt.timedelta(days=PAY_BY_DAYS_AT_MOST)
