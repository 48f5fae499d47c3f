"""A pay-by date the customer reads falls on a working day: never on a
Saturday, a Sunday or a day the office is shut."""

import datetime as dt

from ar_collections.dunning import run_plan, run_start
from ar_collections.models import CollectionRules, DunningAction, Holiday, LatePaymentPolicy
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
