"""A request waiting for a manager does not pause dunning (only an approved
one does), it only holds the account's next step for a few days
(DUNNING_WAITS_FOR_DECISION_DAYS): past them, the approvals mark each one
whose account the next run acts on, and the Runs page's start form says how
many, with links to them, before the manager confirms. The requests here
were asked four days ago, unless a test says otherwise."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import simulator, workspace
from ar_collections.dunning import ladders
from ar_collections.models import DunningRun, ExceptionKind, PlanStatus, RunStatus
from customers.models import ContactRole, Segment

TODAY = dt.date(2025, 8, 5)
APPROVALS = reverse("collections:approvals")
RUNS = reverse("collections:runs")
START = reverse("collections:run_start")
HTMX = {"HX-Request": "true"}
TONIGHT = "in tonight's run unless you decide first: only an approved request pauses dunning."
pytestmark = pytest.mark.usefixtures("_frozen_today")


def day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


@pytest.fixture
def accounts(make_customer, make_contact, make_invoice):
    """As Coming up projects them (the default ladders): Bolt (new customer),
    due yesterday, has its first e-mail tonight; Acme (prompt payer), due two
    days ago, tomorrow night; Crane owes under the minimum, never."""
    acme = make_customer(name="Acme Tools", segment=Segment.PROMPT)
    make_contact(acme, is_primary_billing=True, email="anna@acme.test")
    make_invoice(acme, issued=day(-32), due=day(-2), amount="500.00")
    bolt = make_customer(name="Bolt Supplies", segment=Segment.NEW)
    make_contact(bolt, role=ContactRole.AP, is_primary_billing=True, email="ben@bolt.test")
    make_invoice(bolt, issued=day(-31), due=day(-1), amount="300.00")
    make_invoice(bolt, issued=day(-31), due=day(-1), amount="80.00", currency="USD")
    crane = make_customer(name="Crane Parts", segment=Segment.PROMPT)
    make_contact(crane, is_primary_billing=True, email="cora@crane.test")
    make_invoice(crane, issued=day(-35), due=day(-4), amount="10.00")
    return {"acme": acme, "bolt": bolt, "crane": crane}


ASKED = day(-4)


def pause_asked(customer, collector, reason="The owner asks for six weeks", on=ASKED):
    return workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.PAUSE, reason=reason,
        pause_until=day(42), on=on,
    )


def item(html: str, element_id: str) -> str:
    found = re.search(rf'<li id="{element_id}".*?</li>', html, re.S)
    assert found, element_id
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(0)).replace("&#x27;", "'").split())


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("&#x27;", "'").split())


def test_the_next_run_steps_are_those_coming_up_projects_for_the_first_night(accounts):
    book_ladders = ladders()
    everyone = simulator.project(simulator.book_read(today=TODAY, ladders=book_ladders), book_ladders, days=1)

    night, acted_on = simulator.next_run_steps(
        today=TODAY, ladders=book_ladders, customer_ids=[c.pk for c in accounts.values()])

    assert night == TODAY
    assert {c: p.step for c, p in acted_on.items()} == {p.customer.pk: p.step for p in everyone[0].steps}
    assert set(acted_on) == {accounts["bolt"].pk}
    # Read for the accounts asked about alone.
    acme = accounts["acme"].pk
    assert simulator.next_run_steps(today=TODAY, ladders=book_ladders, customer_ids=[acme]) == (TODAY, {})


def test_a_pause_waiting_for_a_manager_is_marked_when_tonight_s_run_would_remind_the_customer(
    client, manager, collector, accounts
):
    bolt = pause_asked(accounts["bolt"], collector)
    acme = pause_asked(accounts["acme"], collector, reason="Moving offices")
    client.force_login(manager)

    html = client.get(APPROVALS).content.decode()

    said = item(html, f"exception-request-{bolt.pk}")
    assert "The owner asks for six weeks" in said
    assert f"A reminder e-mail goes to the customer {TONIGHT}" in said, said
    # Acme's first step comes the night after: nothing to decide before tonight.
    assert "run" not in item(html, f"exception-request-{acme.pk}")


def test_a_pause_asked_today_is_not_marked_tonight_s_run_waits_for_the_decision(
    client, manager, collector, accounts
):
    bolt = pause_asked(accounts["bolt"], collector, on=TODAY)
    client.force_login(manager)

    said = item(client.get(APPROVALS).content.decode(), f"exception-request-{bolt.pk}")

    assert "run" not in said and "Overdue" not in said, said


def test_once_tonight_s_run_has_started_the_mark_names_the_next_night(client, manager, collector, accounts):
    DunningRun.objects.create(run_date=TODAY, status=RunStatus.FINISHED, started_by=manager)
    acme = pause_asked(accounts["acme"], collector)
    client.force_login(manager)

    said = item(client.get(APPROVALS).content.decode(), f"exception-request-{acme.pk}")

    assert ("A reminder e-mail goes to the customer in the run of 6 Aug 2025 unless you decide first: "
            "only an approved request pauses dunning.") in said, said


def test_a_payment_plan_waiting_for_a_manager_is_marked_too(client, manager, collector, accounts):
    usd = accounts["bolt"].invoices.get(currency="USD")
    # In a foreign currency, a plan waits for a manager.
    plan = workspace.plan_propose(customer=accounts["bolt"], actor=collector, invoices=[usd], on=ASKED,
                                  instalments=[(day(10), Decimal("40.00")), (day(40), Decimal("40.00"))])
    assert plan.status == PlanStatus.AWAITING_APPROVAL
    client.force_login(manager)

    said = item(client.get(APPROVALS).content.decode(), f"plan-request-{plan.pk}")

    assert f"A reminder e-mail goes to the customer {TONIGHT}" in said, said


def test_the_start_form_says_how_many_waiting_requests_concern_accounts_the_run_acts_on(
    client, manager, collector, accounts
):
    bolt = pause_asked(accounts["bolt"], collector)
    pause_asked(accounts["acme"], collector, reason="Moving offices")
    pause_asked(accounts["crane"], collector, reason="Small change")
    client.force_login(manager)

    html = client.get(RUNS).content.decode()

    start = html.index('id="run-requests"')
    said = text(html[html.index(">", start) + 1:html.index("</div>", start)])
    assert said.startswith("1 request waiting for a manager concerns accounts this run acts on."), said
    assert ("Bolt Supplies: pause dunning beyond the collector's limit — a reminder e-mail goes to the "
            "customer") in said
    assert "Acme" not in said and "Crane" not in said
    assert f'href="{APPROVALS}#exception-request-{bolt.pk}"' in html
    # The question the start button brings says it too.
    asked = text(client.post(START, {"run_date": "2025-08-05"}).content.decode())
    assert ("need no review. 1 request waiting for a manager concerns accounts it acts on: only an approved "
            "request pauses dunning.") in asked, asked
    assert not DunningRun.objects.exists()


def test_the_page_asks_the_same_without_javascript(client, manager, collector, accounts):
    pause_asked(accounts["bolt"], collector)
    client.force_login(manager)

    for headers in ({}, HTMX):
        html = client.post(START, {"run_date": "2025-08-05"}, headers=headers).content.decode()
        assert "Yes, start the run for 5 Aug 2025" in html
        assert "1 request waiting for a manager concerns accounts this run acts on." in text(html)


def test_the_start_form_says_nothing_when_no_waiting_request_concerns_the_run(
    client, manager, collector, accounts
):
    pause_asked(accounts["acme"], collector)
    client.force_login(manager)

    html = client.get(RUNS).content.decode()

    assert 'id="run-requests"' not in html
    assert "Start a run for 5 Aug 2025" in html


@pytest.mark.parametrize("asked", [1, 3])
def test_the_marks_cost_the_same_number_of_queries_for_1_or_3_requests(
    client, manager, collector, make_customer, make_contact, make_invoice, django_assert_num_queries, asked
):
    for n in range(asked):
        account = make_customer(name=f"Account {n}", segment=Segment.NEW)
        make_contact(account, is_primary_billing=True)
        make_invoice(account, issued=day(-31), due=day(-1), amount="300.00")
        pause_asked(account, collector)
    ladders()  # kept by the process while their stamp stands, as between two page loads
    client.force_login(manager)

    # session, user, permissions (2), the page of steps waiting; the collectors' waiting exception
    # requests and plans; for their accounts, as Coming up reads them: the ladders' stamp, has
    # today's run started, the steps' fees, accounts, contacts, absences, eligible invoices, open
    # cycles, last contacts, the office's holidays, copies, steps taken, cycles over; the count of
    # steps waiting; role groups (the page head). The projection is 13 of them, read only while a
    # request waits.
    with django_assert_num_queries(22):
        response = client.get(APPROVALS)
    assert response.content.decode().count(TONIGHT) == asked

    # session, user, permissions (2), runs counted (none); the waiting plans and exception
    # requests; for their accounts, as above but the steps' fees (kept with the ladders read
    # above); role groups
    with django_assert_num_queries(20):
        response = client.get(RUNS)
    assert len(response.context["requests_acted_on"]) == asked
