"""A manager reschedules an agreed payment plan: the instalments still due
move (dates and amounts, the same total, none in the past), recorded on
the timeline with who, when, before and after, and the customer is told."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    DunningPause,
    InstalmentStatus,
    MailPurpose,
    OutgoingMail,
    PlanStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import EventKind
from tests.ar_collections.conftest import frozen, sent_once
from tests.ar_collections.plans import LATE, day, instalments_of, mornings, schedule

pytestmark = pytest.mark.usefixtures("default_ladders")

HTMX = {"HX-Request": "true"}


@pytest.fixture
def account(make_account):
    return make_account()


@pytest.fixture
def plan(account, collector):
    """EUR 1,200.00 in three instalments of EUR 400.00, days 10, 40 and 70; the first paid."""
    small, _ = account.invoices.order_by("total_amount")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=list(account.invoices.all()),
                                  on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    mornings(account, 1, 12, {10: [(small, "400.00")]})
    OutgoingMail.objects.all().delete()
    return plan


def amended(plan, manager, parts, *, note="Lost a big customer; asked for more time"):
    return workspace.plan_amend(plan=plan, manager=manager, instalments=schedule(*parts), note=note,
                                on=day(12))


def test_a_manager_reschedules_the_instalments_still_due_and_the_paid_one_stays(account, plan, manager):
    amended(plan, manager, [(40, "200.00"), (70, "300.00"), (100, "300.00")])

    assert instalments_of(plan) == [
        (1, day(10), Decimal("400.00"), InstalmentStatus.PAID),
        (2, day(40), Decimal("200.00"), InstalmentStatus.DUE),
        (3, day(70), Decimal("300.00"), InstalmentStatus.DUE),
        (4, day(100), Decimal("300.00"), InstalmentStatus.DUE),
    ]
    # Dunning waits until the new last instalment plus grace.
    assert set(DunningPause.objects.filter(plan=plan).values_list("ends_on", flat=True)) == {
        day(100 + plan.grace_days)}


def test_the_new_schedule_is_on_the_timeline_with_who_why_before_and_after(account, plan, manager):
    amended(plan, manager, [(40, "200.00"), (70, "300.00"), (100, "300.00")])

    event = account.events.get(kind=EventKind.PAYMENT_PLAN, summary__contains="rescheduled")
    assert event.actor == manager
    assert event.summary == ("Payment plan of EUR 1,200.00 rescheduled by maria: EUR 200.00 on "
                             f"{day(40):%-d %b}, EUR 300.00 on {day(70):%-d %b}, EUR 300.00 on "
                             f"{day(100):%-d %b} — Lost a big customer; asked for more time")
    assert [row[2] for row in event.details["before"]["instalments"]] == ["400.00", "400.00", "400.00"]
    assert [row[2] for row in event.details["after"]["instalments"]] == ["400.00", "200.00", "300.00",
                                                                          "300.00"]


def test_the_customer_is_e_mailed_the_new_schedule(account, plan, manager):
    amended(plan, manager, [(40, "200.00"), (70, "300.00"), (100, "300.00")])

    mail = OutgoingMail.objects.get()
    assert (mail.purpose, mail.created_by) == (MailPurpose.PLAN_AGREED, manager)
    assert account.events.filter(summary__startswith="New schedule e-mailed to Anna Clerk").exists()


def test_the_plan_is_judged_by_the_new_schedule(account, plan, manager):
    small, large = account.invoices.order_by("total_amount")
    amended(plan, manager, [(40, "200.00"), (70, "300.00"), (100, "300.00")])

    mornings(account, 13, 40 + plan.grace_days + 1, {40: [(small, "100.00"), (large, "100.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert instalments_of(plan)[1][3] == InstalmentStatus.PAID


@pytest.mark.parametrize(("parts", "field", "says"), [
    ([(40, "400.00"), (70, "300.00")], "instalments",
     "The instalments add up to EUR 700.00 but the plan still asks EUR 800.00 in the instalments due: the "
     "total stays the same."),
    ([(11, "400.00"), (70, "400.00")], "instalments",
     "is in the past: an instalment is for today or a later day."),
    ([(70, "400.00"), (40, "400.00")], "instalments", "Instalment dates must be different and in order."),
    # A year mistyped (2039 for 2029) would silence the account for years and tell the customer so.
    ([(40, "400.00"), (40 + 365 * 13, "400.00")], "instalments",
     "more than 92 days after the one before: a plan's instalments are at most 92 days apart (check the "
     "year)"),
    ([(12 + 93, "800.00")], "instalments",
     "is more than 92 days from today: a plan's instalments are at most 92 days apart (check the year)"),
    ([(12 + 2 * n, "20.00") for n in range(1, 41)], "instalments",
     "40 instalments: a plan has at most 36."),
], ids=["another total", "in the past", "out of order", "a year too far", "first too far", "too many"])
def test_a_schedule_that_does_not_fit_is_refused_and_changes_nothing(plan, manager, parts, field, says):
    before = instalments_of(plan)

    with pytest.raises(ValidationError) as refused:
        amended(plan, manager, parts)

    assert says in " ".join(refused.value.message_dict[field])
    assert instalments_of(plan) == before
    assert not OutgoingMail.objects.exists()


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_an_amount_that_is_no_number_is_refused_with_its_line(client, plan, manager, amount):
    client.force_login(manager)
    before = instalments_of(plan)

    with frozen(day(12)):
        response = client.post(amend_url(plan), sent_once({"instalments": f"{day(40).isoformat()} 400.00\n"
                                                                f"{day(70).isoformat()} {amount}",
                                                 "note": "Asked for time"}), headers=HTMX)

    assert response.status_code == 422
    assert "Line 2: write the date (YYYY-MM-DD)" in response.content.decode()
    assert instalments_of(plan) == before


def test_the_customer_is_told_the_schedule_changed_not_that_a_new_plan_was_agreed(account, plan, manager):
    amended(plan, manager, [(40, "200.00"), (70, "300.00"), (100, "300.00")])

    mail = OutgoingMail.objects.get()
    text = mail.text
    assert "changed the schedule of the payment plan" in text
    assert "replaces the schedule" in text
    assert "agreed the following payment plan" not in text
    # Only what is still to pay is listed, the money received is named once.
    assert "EUR 200.00 by" in text and "EUR 400.00 by" not in text
    assert "EUR 400.00 already received" in text
    event = account.events.get(summary__startswith="New schedule e-mailed to Anna Clerk")
    assert event.summary.endswith(": 3 instalments still to pay, EUR 800.00 in all")


def test_a_schedule_left_with_one_instalment_says_so_in_good_english(account, plan, manager):
    amended(plan, manager, [(40, "800.00")])

    event = account.events.get(summary__startswith="New schedule e-mailed to Anna Clerk")
    assert event.summary.endswith(": 1 instalment still to pay, EUR 800.00 in all")


def test_a_collector_may_not_reschedule_an_agreed_plan(plan, collector):
    before = instalments_of(plan)

    with pytest.raises(PermissionDenied):
        amended(plan, collector, [(40, "400.00"), (100, "400.00")])

    assert instalments_of(plan) == before


def amend_url(plan) -> str:
    return reverse("collections:plan_amend", args=[plan.customer_id, plan.pk])


NEW_SCHEDULE = {"instalments": f"{day(40).isoformat()} 200.00\n{day(70).isoformat()} 300.00\n"
                               f"{day(100).isoformat()} 300.00",
                "note": "Lost a big customer"}


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_manager_reschedules_a_plan_from_the_account_page(client, account, plan, manager, headers):
    client.force_login(manager)
    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    assert amend_url(plan) in page

    with frozen(day(12)):
        offered = client.get(amend_url(plan), headers=HTMX).content.decode()
        response = client.post(amend_url(plan), sent_once(NEW_SCHEDULE), headers=headers)

    assert f"{day(40).isoformat()} 400.00" in offered
    assert response.status_code == (200 if headers else 302)
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [
        Decimal("400.00"), Decimal("200.00"), Decimal("300.00"), Decimal("300.00")]


def test_a_schedule_that_cannot_be_read_is_refused_with_the_line_and_changes_nothing(client, plan, manager):
    client.force_login(manager)
    before = instalments_of(plan)

    with frozen(day(12)):
        response = client.post(amend_url(plan), sent_once({
            "instalments": f"{day(40).isoformat()} 400.00\nnext month", "note": "Asked for time",
        }), headers=HTMX)

    assert response.status_code == 422
    assert "Line 2: write the date (YYYY-MM-DD)" in response.content.decode()
    assert instalments_of(plan) == before


def test_a_collector_is_not_offered_rescheduling_and_cannot_post_it(client, account, plan, collector):
    client.force_login(collector)
    before = instalments_of(plan)

    assert amend_url(plan) not in client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    with frozen(day(12)):
        response = client.post(amend_url(plan), sent_once(NEW_SCHEDULE), headers=HTMX)

    assert response.status_code == 403
    assert instalments_of(plan) == before


def test_rescheduling_answers_only_get_and_post(client, plan, manager):
    client.force_login(manager)

    assert client.put(amend_url(plan)).status_code == 405


def test_the_accounts_collector_gets_a_worklist_item_to_follow_the_new_schedule(
    account, plan, manager, collector
):
    amended(plan, manager, [(40, "200.00"), (70, "300.00"), (100, "300.00")])

    item = WorkItem.objects.get(plan=plan, status=WorkStatus.OPEN)
    assert (item.kind, item.assignee, item.due_on) == (WorkKind.DECIDED, collector, day(12))
    assert item.title.startswith("Payment plan of EUR 1,200.00 rescheduled by maria: EUR 200.00 on ")
    assert item.title.endswith("— Lost a big customer; asked for more time — the schedule was e-mailed to "
                               "Anna Clerk; tell the customer if need be; follow the new schedule")


def test_each_reschedule_puts_its_own_item_on_the_worklist(account, plan, manager):
    amended(plan, manager, [(40, "200.00"), (70, "300.00"), (100, "300.00")])
    amended(plan, manager, [(50, "200.00"), (80, "600.00")], note="Paid late once more")

    assert WorkItem.objects.filter(plan=plan, status=WorkStatus.OPEN).count() == 2
