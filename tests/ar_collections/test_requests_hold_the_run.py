"""A collector who asked a manager for a pause, extended terms or a payment
plan has told the customer so: while the request waits, the account's next
step waits too, for DUNNING_WAITS_FOR_DECISION_DAYS at most. The run plans
nothing for it and counts it with why, the account page says what it waits
for; past those days the run goes on and the approvals mark the request
overdue for decision."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.dunning import next_step, run_plan, run_start
from ar_collections.models import DunningAction, DunningRun, ExceptionKind, PlanStatus
from customers.models import ContactRole, Segment

from .conftest import frozen

TODAY = dt.date(2025, 8, 5)
APPROVALS = reverse("collections:approvals")
pytestmark = pytest.mark.usefixtures("default_ladders")


def day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


@pytest.fixture
def bolt(make_customer, make_contact, make_invoice):
    """A new customer whose first e-mail is due tonight (due yesterday, in EUR and USD)."""
    bolt = make_customer(name="Bolt Supplies", segment=Segment.NEW)
    make_contact(bolt, role=ContactRole.AP, is_primary_billing=True, email="ben@bolt.test")
    make_invoice(bolt, issued=day(-31), due=day(-1), amount="300.00")
    make_invoice(bolt, issued=day(-31), due=day(-1), amount="80.00", currency="USD")
    return bolt


def pause_asked(customer, collector):
    with frozen(TODAY):
        return workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.PAUSE,
                                           reason="The owner asks for six weeks", pause_until=day(42),
                                           on=TODAY)


def run_on(on: dt.date) -> DunningRun:
    with frozen(on):
        run = run_start(run_date=on)
        run_plan(run=run)
    return run


def planned(customer) -> list[dt.date]:
    return list(DunningAction.objects.filter(customer=customer).values_list("planned_on", flat=True))


def test_a_waiting_pause_holds_the_next_step_for_the_days_set_then_the_run_goes_on(
    client, bolt, collector, manager
):
    asked = pause_asked(bolt, collector)

    for n in range(4):  # asked today: tonight's run and the three after it wait
        run = run_on(day(n))
        assert planned(bolt) == [], n
        assert run.waited_for_decision == 1
    assert run_on(day(4)).waited_for_decision == 0
    assert planned(bolt) == [day(4)]

    client.force_login(manager)
    with frozen(day(4)):
        html = client.get(APPROVALS).content.decode()
    found = re.search(rf'<li id="exception-request-{asked.pk}".*?</li>', html, re.S)
    assert "Overdue for decision" in found.group(0)


def test_the_run_page_counts_the_accounts_that_waited(client, bolt, collector, manager):
    pause_asked(bolt, collector)
    run = run_on(TODAY)
    client.force_login(manager)

    with frozen(TODAY):
        html = client.get(reverse("collections:run_detail", args=[run.pk])).content.decode()

    assert ("1 account with a step due planned nothing: a collector's request (a pause, extended terms or a "
            "payment plan) waits for a manager's decision, which comes first.") in html


def test_a_request_not_yet_overdue_is_not_marked(client, bolt, collector, manager):
    asked = pause_asked(bolt, collector)
    client.force_login(manager)
    with frozen(day(3)):
        html = client.get(APPROVALS).content.decode()
    found = re.search(rf'<li id="exception-request-{asked.pk}".*?</li>', html, re.S)
    assert "Overdue for decision" not in found.group(0)


def test_the_account_page_preview_says_what_the_step_waits_for(bolt, collector):
    pause_asked(bolt, collector)

    with frozen(TODAY):
        coming = next_step(bolt, on=TODAY)

    assert coming.due_on == day(4)
    assert coming.note.startswith("Waits for the manager's decision on the pause asked on 5 Aug 2025; "
                                  "undecided, the run goes on after 8 Aug 2025.")


def test_a_payment_plan_waiting_for_a_manager_holds_the_step_too(bolt, collector):
    usd = bolt.invoices.get(currency="USD")
    with frozen(TODAY):
        plan = workspace.plan_propose(customer=bolt, actor=collector, invoices=[usd], on=TODAY,
                                      instalments=[(day(10), Decimal("40.00")), (day(40), Decimal("40.00"))])
    assert plan.status == PlanStatus.AWAITING_APPROVAL

    assert run_on(TODAY).waited_for_decision == 1
    assert planned(bolt) == []
    with frozen(TODAY):
        assert "the payment plan proposed on 5 Aug 2025" in next_step(bolt, on=TODAY).note


def test_with_no_days_set_the_run_does_not_wait(settings, bolt, collector):
    settings.DUNNING_WAITS_FOR_DECISION_DAYS = 0
    pause_asked(bolt, collector)

    assert run_on(day(1)).waited_for_decision == 0
    assert planned(bolt) == [day(1)]
