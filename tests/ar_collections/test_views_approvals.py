"""Approvals: a manager weighs the five questions, then approves or declines a
credit hold or a switch to C.O.D., always with a note."""

from __future__ import annotations

import datetime as dt
import html as html_text
import re
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ar_collections import services, workspace
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    Invoice,
    InvoiceStatus,
    PaymentBehaviour,
    StepAction,
)
from ar_collections.worklist import worklist_refresh
from customers.models import Customer, EventKind, Segment, TermsType, TimelineEvent
from customers.services import customer_update
from tests.customers.test_views_edit import card_data

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
QUEUE = reverse("collections:approvals")
ON_HOLD = "the account is already on credit hold"
pytestmark = pytest.mark.usefixtures("_frozen_today")



@pytest.fixture
def make_action(make_invoice):
    """make_action(customer) → the systematic-late ladder's credit hold (or, with
    cod=True, its switch to C.O.D.) waiting for approval, listing one overdue
    invoice of EUR 100.00 issued on 1 Jun 2025."""

    def make(customer, *, cod=False, status=ActionStatus.AWAITING_APPROVAL) -> DunningAction:
        run, _ = DunningRun.objects.get_or_create(run_date=TODAY)
        cycle, _ = DunningCycle.objects.get_or_create(
            customer=customer, closed_on=None, defaults={"number": 1, "opened_on": TODAY}
        )
        step = DunningStep.objects.get(
            policy__segment="systematic_late",
            action=StepAction.SWITCH_TO_COD if cod else StepAction.CREDIT_HOLD,
        )
        action = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=status,
            planned_on=TODAY, pay_by=TODAY + dt.timedelta(days=7),
        )
        invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1))
        DunningActionInvoice.objects.create(
            action=action, invoice=invoice, open_amount=invoice.open_amount, currency=invoice.currency
        )
        return action

    return make


@pytest.fixture
def action(customer, make_action) -> DunningAction:
    return make_action(customer)


def url(action) -> str:
    return reverse("collections:action_decide", args=[action.pk])


def state(action) -> tuple:
    action.refresh_from_db()
    customer = action.customer
    customer.refresh_from_db()
    return (
        action.status, action.skip_reason, action.reviewed_by_id,
        customer.on_credit_hold, customer.terms_type, TimelineEvent.objects.count(),
    )


# --- The queue and its five questions --------------------------------------------


def test_each_step_shows_the_five_questions_computed_from_data(
    client, manager, make_customer, make_invoice, make_action
):
    customer = make_customer(name="Acme Tools", customer_since=dt.date(2015, 8, 5),
                             special_bond="Helped us in 2020")
    PaymentBehaviour.objects.create(
        customer=customer, computed_on=TODAY, invoices_settled=10, invoices_settled_late=3,
        share_paid_late=Decimal("0.3000"), avg_days_late=Decimal("12.50"),
        overdue_amount=Decimal("1500.00"),
    )
    # A year of sales: 1,000 + 2,000 (paid) + the 100 on the step. Not counted:
    # older than 12 months, another currency, cancelled.
    make_invoice(customer, issued=dt.date(2025, 1, 10), amount="1000.00")
    make_invoice(customer, issued=dt.date(2024, 9, 1), amount="2000.00", paid_on=dt.date(2024, 10, 1))
    make_invoice(customer, issued=dt.date(2024, 8, 5), amount="5000.00", paid_on=dt.date(2024, 9, 1))
    make_invoice(customer, issued=dt.date(2025, 3, 1), amount="700.00", currency="USD")
    cancelled = make_invoice(customer, issued=dt.date(2025, 4, 1), amount="300.00")
    Invoice.objects.filter(pk=cancelled.pk).update(status=InvoiceStatus.CANCELLED)
    make_customer(name="Referral One", referred_by=customer)
    make_customer(name="Referral Two", referred_by=customer)
    action = make_action(customer)
    client.force_login(manager)

    response = client.get(QUEUE)

    html = response.content.decode()
    [item] = response.context["items"]
    assert item.pk == action.pk
    questions = item.questions
    assert questions.customer_since == dt.date(2015, 8, 5)
    assert round(questions.years_served, 1) == 10.0
    assert questions.behaviour.invoices_settled_late == 3
    assert questions.revenue_12m == Decimal("3100.00")
    assert questions.referrals == 2
    for text in [
        "How long have we served them?", "Since 5 Aug 2015", "(10.0 years)",
        "Did they miss payments before?", "3 of 10 invoices paid late", "30 %",
        # Read off the invoices now (the 1,000.00 and the step's 100.00), not last night's 1,500.00.
        "How much money is involved?", "EUR 1,100.00 + USD 700.00 overdue",
        "the step's invoices still owe EUR 100.00",
        "What is the relationship worth?", "EUR 3,100.00",
        "Will they keep referring?", "Brought us 2 customers",
        "Helped us in 2020", "Credit hold",
    ]:
        assert text in html, text
    assert f'action="{url(action)}"' in html and f'hx-post="{url(action)}"' in html


def test_the_money_question_counts_what_is_overdue_in_other_currencies_too(
    client, manager, make_customer, make_invoice, make_action
):
    """A euro account owing EUR 100.00 and USD 50,000.00 overdue: "EUR 100.00
    overdue" alone would hide nearly all of it."""
    customer = make_customer(name="Dollar Debtor Inc", currency="EUR")
    make_invoice(customer, issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="50000.00",
                 currency="USD")
    make_invoice(customer, issued=dt.date(2025, 8, 1), due=dt.date(2025, 9, 1), amount="900.00",
                 currency="USD")  # not yet due
    make_action(customer)
    client.force_login(manager)

    html = " ".join(client.get(QUEUE).content.decode().split())

    assert "EUR 100.00 + USD 50,000.00 overdue" in html


def test_the_money_question_counts_what_was_paid_since_the_step_was_planned(
    client, manager, customer, make_action
):
    """Last night's figures said EUR 100.00 overdue; the step's invoice was
    paid this morning: the manager weighs a hold on an account owing nothing."""
    PaymentBehaviour.objects.create(customer=customer, computed_on=TODAY, overdue_amount=Decimal("100.00"))
    action = make_action(customer)
    invoice = action.lines.get().invoice
    Invoice.objects.filter(pk=invoice.pk).update(open_amount=0, status=InvoiceStatus.PAID, settled_on=TODAY)
    client.force_login(manager)

    html = " ".join(client.get(QUEUE).content.decode().split())

    assert "Nothing overdue" in html
    assert "EUR 100.00 overdue" not in html
    assert "the step's invoices still owe" not in html


def test_the_money_question_leaves_out_what_is_under_open_dispute_and_says_it_beside(
    client, manager, collector, make_customer, make_invoice, make_action
):
    """As the account page's header: EUR 1,000.00 wholly disputed and USD
    200.00 of USD 500.00 are not overdue money a hold would chase; said
    beside, they are not hidden either."""
    customer = make_customer(name="Disputer Ltd", currency="EUR")
    make_action(customer)
    disputed = make_invoice(customer, issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="1000.00")
    dollars = make_invoice(customer, issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="500.00",
                           currency="USD")
    for invoice, amount in [(disputed, None), (dollars, Decimal("200.00"))]:
        workspace.dispute_open(customer=customer, actor=collector, invoice=invoice, reason="price",
                               description="Wrong price", on=TODAY, amount=amount)
    client.force_login(manager)

    html = " ".join(client.get(QUEUE).content.decode().split())

    assert ('<span class="overdue">EUR 100.00 + USD 300.00 overdue</span> <span class="muted">+ EUR 1,000.00 '
            '+ USD 200.00 under dispute</span>') in html


def test_an_account_whose_overdue_money_is_all_disputed_has_nothing_overdue_in_the_money_question(
    client, manager, collector, customer, make_action
):
    action = make_action(customer)
    workspace.dispute_open(customer=customer, actor=collector, invoice=action.lines.get().invoice,
                           reason="price", description="Wrong price", on=TODAY)
    client.force_login(manager)

    html = " ".join(client.get(QUEUE).content.decode().split())

    answer = re.search(r"<dt>How much money is involved\?</dt> <dd> (.*?)</dd>", html).group(1)
    assert answer.startswith('Nothing overdue <span class="muted">but EUR 100.00 under dispute</span>')


def settled_since(action: DunningAction, *, manager, make_invoice) -> tuple[Invoice, Invoice, Invoice]:
    """Since the step was planned listing its invoice of EUR 100.00 and two
    more of EUR 100.00: one written off on 4 Aug 2025, one paid today, its
    own paid down to EUR 40.00 (written off, paid, part paid)."""
    customer = action.customer
    part_paid = action.lines.get().invoice
    written_off = make_invoice(customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2))
    paid = make_invoice(customer, issued=dt.date(2025, 6, 3), due=dt.date(2025, 7, 3))
    for invoice in (written_off, paid):
        DunningActionInvoice.objects.create(action=action, invoice=invoice, open_amount=invoice.open_amount,
                                            currency=invoice.currency)
    workspace.invoice_write_off(customer=customer, actor=manager, invoice=written_off,
                                reason="Insolvent branch", on=dt.date(2025, 8, 4))
    Invoice.objects.filter(pk=paid.pk).update(open_amount=0, status=InvoiceStatus.PAID, settled_on=TODAY)
    Invoice.objects.filter(pk=part_paid.pk).update(open_amount=Decimal("40.00"))
    return written_off, paid, part_paid


def marked_since(html: str, invoices: tuple[Invoice, Invoice, Invoice]) -> bool:
    """Whether the page lists the invoices settled_since left each with how it stands now."""
    written_off, paid, part_paid = invoices
    rows = re.findall(r'<th scope="row">(.*?)</th>', html)
    return {f"{written_off.number} — written off on 4 Aug 2025", f"{paid.number} — paid on 5 Aug 2025",
            f"{part_paid.number} — owes EUR 40.00 now"} <= set(rows)


def test_an_invoice_of_the_step_written_off_or_paid_since_is_marked_with_the_day(
    client, manager, customer, make_action, make_invoice
):
    """The header counts only what the step's invoices still owe: the list
    below must not show an invoice written off or paid since as if owed."""
    invoices = settled_since(make_action(customer), manager=manager, make_invoice=make_invoice)
    client.force_login(manager)

    html = " ".join(client.get(QUEUE).content.decode().split())

    assert marked_since(html, invoices)
    assert "the step's invoices still owe EUR 40.00" in html  # the header


def test_a_customer_without_history_says_so(client, manager, customer, make_action):
    make_action(customer)
    client.force_login(manager)

    html = client.get(QUEUE).content.decode()

    assert "No payment history computed yet." in html
    assert "No referrals so far" in html


def test_only_steps_waiting_for_approval_are_listed(client, manager, make_customer, make_action):
    waiting = make_action(make_customer(name="Waiting Ltd"))
    make_action(make_customer(name="Decided Ltd"), status=ActionStatus.DONE)
    client.force_login(manager)

    response = client.get(QUEUE)

    assert [a.pk for a in response.context["items"]] == [waiting.pk]
    assert "Decided Ltd" not in response.content.decode()


def test_with_htmx_the_queue_comes_as_a_fragment(client, manager, action):
    client.force_login(manager)

    html = client.get(QUEUE, headers=HTMX).content.decode()

    assert html.lstrip().startswith('<section id="approval-queue"')
    assert "<html" not in html


@pytest.mark.parametrize("reader", ["collector", "other_collector", "viewer"])
def test_only_managers_may_open_the_approvals(client, action, request, reader):
    client.force_login(request.getfixturevalue(reader))

    assert client.get(QUEUE).status_code == 403
    assert client.get(QUEUE, headers=HTMX).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in_for_the_approvals(client):
    response = client.get(QUEUE)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("rows", [2, 20])
def test_the_approvals_cost_the_same_number_of_queries_for_2_or_20_steps(
    client, manager, make_customer, make_invoice, make_action, django_assert_num_queries, rows
):
    for n in range(rows):
        customer = make_customer(name=f"Customer {n}")
        PaymentBehaviour.objects.create(customer=customer, computed_on=TODAY)
        make_customer(referred_by=customer)
        make_invoice(customer, issued=dt.date(2025, 5, 1), paid_on=dt.date(2025, 6, 1))
        make_action(customer)
    client.force_login(manager)

    # session, user, role groups, permissions (2), count, actions with
    # customer, behaviour, step, a year's sales and referrals, their invoice
    # lines, what their accounts owe overdue in other currencies, the
    # promises, plans and open disputes on their invoices; the collectors'
    # waiting plans and exception requests
    with django_assert_num_queries(14):
        response = client.get(QUEUE)

    assert len(response.context["items"]) == rows


# --- Pages ---------------------------------------------------------------------------------


def link(response, rel: str) -> str | None:
    """The queue URL a page's "next" or "prev" link leads to (its href, unescaped,
    as the browser reads it on the list's page)."""
    found = re.search(rf'<a href="([^"]*)" rel="{rel}"', response.content.decode())
    return urljoin(QUEUE, html_text.unescape(found.group(1))) if found else None


def listed(response) -> list[int]:
    return [a.pk for a in response.context["items"]]


def test_steps_decided_in_place_on_a_page_do_not_push_others_past_the_next_page(
    client, manager, make_customer, make_action
):
    """Approved or declined on the first page, a step stays there showing the
    decision, but leaves the queue: the next page must still start right after
    the first page's last step, or the steps moved up into the gap wait unseen."""
    steps = [make_action(make_customer(name=f"Customer {n:02d}")).pk for n in range(60)]
    client.force_login(manager)
    first = client.get(QUEUE)
    assert listed(first) == steps[:50]
    for pk in steps[:5]:
        client.post(reverse("collections:action_decide", args=[pk]),
                    {"decision": "decline", "note": "Big order next month"}, headers=HTMX)

    second = client.get(link(first, "next"), headers=HTMX)

    assert listed(second) == steps[50:]
    assert link(second, "next") is None
    assert listed(client.get(link(second, "prev"))) == steps[5:55]


def test_a_page_position_the_queue_did_not_hand_out_is_a_bad_request(client, manager, action):
    client.force_login(manager)

    response = client.get(f"{QUEUE}?before=nonsense")

    assert response.status_code == 400
    assert "is not a position in this list" in response.content.decode()


# --- Where the queue opens without htmx -------------------------------------------
# A decided step leaves the queue; the browser follows the redirect to the step
# to decide next, which must be on the page it opens.


def opens_at(client, response) -> tuple[str, list[int]]:
    """The anchor a plain POST's redirect opens the queue at, and the steps of
    the page it opens, which holds an element with that id."""
    assert response.status_code == 302
    url, _, anchor = response.url.partition("#")
    page = client.get(url)
    assert f'id="{anchor}"' in page.content.decode(), f"the page {url} opens has no #{anchor}"
    return anchor, listed(page)


DECLINE = {"decision": "decline", "note": "Big order next month"}


def test_a_step_decided_without_htmx_opens_the_queue_at_the_next_step(
    client, manager, make_customer, make_action
):
    first, second, third = (make_action(make_customer(name=f"Customer {n}")) for n in "ABC")
    client.force_login(manager)

    response = client.post(url(second), {"decision": "approve", "note": "Third promise broken"})

    assert opens_at(client, response) == (f"action-{third.pk}", [first.pk, third.pk])


def test_the_last_step_decided_without_htmx_opens_the_queue_at_the_step_before_it(
    client, manager, make_customer, make_action
):
    first, second = (make_action(make_customer(name=f"Customer {n}")) for n in "AB")
    client.force_login(manager)

    response = client.post(url(second), DECLINE)

    assert opens_at(client, response) == (f"action-{first.pk}", [first.pk])


def test_the_only_step_decided_without_htmx_opens_the_queue_at_its_count(client, manager, action):
    client.force_login(manager)

    response = client.post(url(action), DECLINE)

    assert opens_at(client, response) == ("approval-queue", [])
    assert "0 steps waiting for a decision" in client.get(QUEUE).content.decode()


def test_a_step_decided_on_a_later_page_without_htmx_opens_the_page_holding_the_next_step(
    client, manager, make_customer, make_action
):
    steps = [make_action(make_customer(name=f"Customer {n:02d}")).pk for n in range(60)]
    client.force_login(manager)

    response = client.post(reverse("collections:action_decide", args=[steps[54]]), DECLINE)

    anchor, shown = opens_at(client, response)
    assert anchor == f"action-{steps[55]}"
    assert steps[55] in shown


# --- Deciding ---------------------------------------------------------------------


def test_approving_a_credit_hold_puts_the_account_on_hold(client, manager, action):
    client.force_login(manager)

    response = client.post(url(action), {"decision": "approve", "note": "Third promise broken"})

    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == ActionStatus.DONE
    assert action.reviewed_by == manager
    action.customer.refresh_from_db()
    assert action.customer.on_credit_hold is True
    assert "Acme Tools: credit hold approved and in force." in client.get(QUEUE).content.decode()


def test_a_credit_hold_for_an_account_already_on_hold_does_not_wait_for_a_manager(
    client, manager, make_customer, make_action
):
    """Nothing is left for a manager to weigh: the daily refresh skips the step
    with the reason, the timeline says so, and the ladder goes on."""
    held = make_action(make_customer(name="Held Ltd", on_credit_hold=True))
    waiting = make_action(make_customer(name="Open Ltd"))

    worklist_refresh(on=TODAY)

    held.refresh_from_db()
    assert held.status == ActionStatus.SKIPPED
    assert held.skip_reason == "the account is already on credit hold"
    assert held.reviewed_by is None
    event = TimelineEvent.objects.get(customer=held.customer, kind=EventKind.DUNNING)
    assert event.summary == ("Step 5 (Credit hold) skipped: the account is already on credit hold; "
                             "no manager's decision is needed")
    waiting.refresh_from_db()
    assert waiting.status == ActionStatus.AWAITING_APPROVAL
    client.force_login(manager)
    assert listed(client.get(QUEUE)) == [waiting.pk]


def test_a_credit_hold_set_on_the_account_card_takes_the_hold_waiting_for_a_manager_off_the_queue(
    client, manager, action, django_capture_on_commit_callbacks
):
    """Held by hand during the day, the account has nothing left for a manager
    to weigh: the step is skipped then, not at the next night's refresh."""
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("customers:edit", args=[action.customer.pk]),
                               card_data(action.customer, on_credit_hold=True, terms_reason="Unanswered"))

    assert response.status_code == 302
    action.refresh_from_db()
    assert (action.status, action.skip_reason) == (ActionStatus.SKIPPED, ON_HOLD)
    event = TimelineEvent.objects.get(customer=action.customer, kind=EventKind.DUNNING)
    assert event.actor == manager
    assert event.summary == ("Step 5 (Credit hold) skipped: the account is already on credit hold; "
                             "no manager's decision is needed")
    assert listed(client.get(QUEUE)) == []


def test_a_card_change_that_holds_nothing_leaves_the_hold_waiting(
    client, manager, action, django_capture_on_commit_callbacks
):
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("customers:edit", args=[action.customer.pk]),
                    card_data(action.customer, payment_terms_days=45))

    action.refresh_from_db()
    assert action.status == ActionStatus.AWAITING_APPROVAL
    assert listed(client.get(QUEUE)) == [action.pk]


def test_a_manager_opening_the_approvals_is_not_offered_a_hold_already_in_force(
    client, manager, make_customer, make_action
):
    """Put on hold some way the card did not see (a hold an earlier cycle's
    approval left in force, the planner's step planned over it since): the
    queue leaves the step out as it reads, rather than ask to approve it.
    Opening a page writes nothing: the daily refresh skips the step, with
    why on the timeline."""
    held = make_action(make_customer(name="Held Ltd"))
    Customer.objects.filter(pk=held.customer_id).update(on_credit_hold=True)
    waiting = make_action(make_customer(name="Open Ltd"))
    client.force_login(manager)

    response = client.get(QUEUE)
    fragment = client.get(QUEUE, headers=HTMX)

    assert listed(response) == listed(fragment) == [waiting.pk]
    assert "1 step waiting for a decision" in response.content.decode()
    assert "Held Ltd" not in response.content.decode()
    held.refresh_from_db()
    assert held.status == ActionStatus.AWAITING_APPROVAL
    assert not TimelineEvent.objects.filter(customer=held.customer).exists()

    worklist_refresh(on=TODAY)

    held.refresh_from_db()
    assert (held.status, held.skip_reason) == (ActionStatus.SKIPPED, ON_HOLD)


@pytest.mark.parametrize(("cod", "terms", "reason"), [
    (False, TermsType.STANDARD, ON_HOLD),
    (True, TermsType.COD, "the account already trades cash on delivery"),
])
def test_the_account_page_does_not_show_a_step_the_approvals_leave_out_as_waiting(
    client, manager, make_customer, make_action, cod, terms, reason
):
    """The account was held (or put on C.O.D.) some way its card did not see:
    the approvals leave the step out until the daily refresh skips it. The
    account page's Dunning card says the same: no manager is asked, and why."""
    moot = make_action(make_customer(name="Held Ltd"), cod=cod)
    Customer.objects.filter(pk=moot.customer_id).update(on_credit_hold=not cod, terms_type=terms)
    waiting = make_action(make_customer(name="Open Ltd"), cod=cod)
    client.force_login(manager)

    assert listed(client.get(QUEUE)) == [waiting.pk]
    card = client.get(reverse("customers:detail", args=[moot.customer_id])).content.decode()
    dunning = card[card.index('id="dunning"'):]
    assert "Waiting for a manager&#x27;s approval" not in dunning
    assert "No decision needed</span>" in dunning and reason in dunning
    other = client.get(reverse("customers:detail", args=[waiting.customer_id])).content.decode()
    assert "Waiting for a manager&#x27;s approval" in other[other.index('id="dunning"'):]

    worklist_refresh(on=TODAY)

    card = client.get(reverse("customers:detail", args=[moot.customer_id])).content.decode()
    dunning = card[card.index('id="dunning"'):]
    assert "Skipped</span>" in dunning and reason in dunning


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_opening_the_approvals_writes_nothing(client, manager, make_customer, make_action, headers):
    make_action(make_customer(name="Held Ltd", on_credit_hold=True))
    make_action(make_customer(name="Cash Ltd", terms_type=TermsType.COD), cod=True)
    make_action(make_customer(name="Open Ltd"))
    client.force_login(manager)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(QUEUE, headers=headers)

    assert response.status_code == 200
    written = [q["sql"] for q in queries.captured_queries
               if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert written == []
    assert set(DunningAction.objects.values_list("status", flat=True)) == {ActionStatus.AWAITING_APPROVAL}


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("decision", ["approve", "decline"])
def test_deciding_a_hold_already_in_force_skips_it_and_says_why(
    client, manager, action, decision, headers
):
    """The page was opened before the account was held by hand: the manager's
    decision comes to nothing, and the timeline does not tell of a hold
    approved (or declined) over one already in force."""
    client.force_login(manager)
    client.get(QUEUE)
    Customer.objects.filter(pk=action.customer_id).update(on_credit_hold=True)

    response = client.post(url(action), {"decision": decision, "note": "Late again"}, headers=headers,
                           follow=not headers)

    action.refresh_from_db()
    assert (action.status, action.skip_reason) == (ActionStatus.SKIPPED, ON_HOLD)
    [event] = TimelineEvent.objects.filter(customer=action.customer)
    assert event.kind == EventKind.DUNNING and event.actor == manager
    assert f"Acme Tools: credit hold no longer needed, nothing done ({ON_HOLD})." in response.content.decode()


@pytest.mark.parametrize(("terms", "reason"), [
    (TermsType.COD, "the account already trades cash on delivery"),
    (TermsType.PREPAYMENT, "the account already trades on prepayment, stricter than cash on delivery"),
])
def test_a_switch_to_cod_for_an_account_already_on_cod_or_prepayment_does_not_wait_for_a_manager(
    client, manager, make_customer, make_action, terms, reason
):
    moot = make_action(make_customer(name="Cash Ltd", terms_type=terms), cod=True)
    waiting = make_action(make_customer(name="Open Ltd"), cod=True)

    worklist_refresh(on=TODAY)

    moot.refresh_from_db()
    assert (moot.status, moot.skip_reason, moot.reviewed_by) == (ActionStatus.SKIPPED, reason, None)
    event = TimelineEvent.objects.get(customer=moot.customer, kind=EventKind.DUNNING)
    assert event.summary == (f"Step 6 (Switch to C.O.D./prepayment) skipped: {reason}; "
                             "no manager's decision is needed")
    moot.customer.refresh_from_db()
    assert moot.customer.terms_type == terms
    client.force_login(manager)
    assert listed(client.get(QUEUE)) == [waiting.pk]


def test_switching_the_card_to_cod_takes_the_switch_waiting_for_a_manager_off_the_queue(
    client, manager, customer, make_action, django_capture_on_commit_callbacks
):
    action = make_action(customer, cod=True)
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("customers:edit", args=[customer.pk]),
                    card_data(customer, terms_type=TermsType.COD, terms_reason="Two notices unanswered"))

    action.refresh_from_db()
    assert (action.status, action.skip_reason) == (
        ActionStatus.SKIPPED, "the account already trades cash on delivery"
    )


def test_a_credit_hold_leaves_a_switch_to_cod_waiting(client, manager, customer, make_action):
    """On hold, the account still trades on its terms: C.O.D. is another step."""
    action = make_action(customer, cod=True)
    Customer.objects.filter(pk=customer.pk).update(on_credit_hold=True)

    worklist_refresh(on=TODAY)

    action.refresh_from_db()
    assert action.status == ActionStatus.AWAITING_APPROVAL


def test_the_card_warns_of_a_plan_or_a_promise_on_the_steps_invoices(
    client, manager, collector, make_customer, make_invoice, make_action
):
    """A hold over an invoice the customer is paying by a plan, or promised
    to pay, goes against what was agreed: the manager sees it before deciding.
    (Over nothing but such invoices, the step leaves the queue at once: see
    test_held_steps_skipped.)"""
    planned = make_action(make_customer(name="Planned Ltd"))
    plan_invoice = planned.lines.get().invoice
    for action in (planned, promised := make_action(make_customer(name="Promised Ltd"))):
        # Each step also lists an invoice nothing was agreed for.
        other = make_invoice(action.customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2))
        DunningActionInvoice.objects.create(action=action, invoice=other, open_amount=other.open_amount,
                                            currency=other.currency)
    workspace.plan_propose(customer=planned.customer, actor=manager, invoices=[plan_invoice], on=TODAY,
                           instalments=[(dt.date(2025, 8, 20), Decimal("50.00")),
                                        (dt.date(2025, 9, 20), Decimal("50.00"))])
    promise_invoice = promised.lines.order_by("invoice__due_date").first().invoice
    workspace.promise_record(customer=promised.customer, actor=collector, amount=Decimal("100.00"),
                             promised_on=dt.date(2025, 8, 12), invoices=[promise_invoice], on=TODAY)
    plain = make_action(make_customer(name="Plain Ltd"))
    client.force_login(manager)

    page = client.get(QUEUE).content.decode()

    cards = {pk: " ".join(card.split()) for pk, card in
             re.findall(r'<article id="action-(\d+)"(.*?)</article>', page, flags=re.S)}
    assert (f"A payment plan of EUR 100.00 agreed on 5 Aug 2025 covers {plan_invoice.number}: "
            "this step goes against what was agreed.") in html_text.unescape(cards[str(planned.pk)])
    assert (f"A promise to pay EUR 100.00 by 12 Aug 2025, made on 5 Aug 2025, covers "
            f"{promise_invoice.number}: this step goes against what was agreed."
            ) in html_text.unescape(cards[str(promised.pk)])
    assert "goes against" not in cards[str(plain.pk)]


def test_the_card_warns_of_an_open_dispute_on_the_steps_invoices(
    client, manager, collector, make_customer, make_invoice, make_action
):
    """A hold over an invoice the customer disputes may hold them over our own
    mistake: the manager sees the dispute before deciding. One resolved does
    not warn, nor does one on an invoice the step does not list."""
    disputed = make_action(make_customer(name="Disputed Ltd"))
    customer = disputed.customer
    other = make_invoice(customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2))
    DunningActionInvoice.objects.create(action=disputed, invoice=other, open_amount=other.open_amount,
                                        currency=other.currency)
    workspace.dispute_open(customer=customer, actor=collector, invoice=other, reason="quality",
                           description="Half the pallets arrived broken", on=TODAY)
    unlisted = make_invoice(customer, issued=dt.date(2025, 6, 3), due=dt.date(2025, 7, 3))
    workspace.dispute_open(customer=customer, actor=collector, invoice=unlisted, reason="price",
                           description="Not the price agreed", on=TODAY)
    settled = make_action(make_customer(name="Settled Ltd"))
    dispute = workspace.dispute_open(customer=settled.customer, actor=collector,
                                     invoice=settled.lines.get().invoice, reason="price",
                                     description="Wrong price", on=dt.date(2025, 8, 1))
    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome="rejected", note="Price was right",
                              on=TODAY)
    client.force_login(manager)

    page = client.get(QUEUE).content.decode()

    cards = {pk: html_text.unescape(" ".join(card.split())) for pk, card in
             re.findall(r'<article id="action-(\d+)"(.*?)</article>', page, flags=re.S)}
    assert (f"{other.number} is disputed since 5 Aug 2025 (Quality of the goods: Half the pallets arrived "
            "broken): the customer may owe less than this step counts on.") in cards[str(disputed.pk)]
    assert unlisted.number not in cards[str(disputed.pk)]
    assert "disputed" not in cards[str(settled.pk)]


def test_approving_a_switch_to_cod_changes_the_terms(client, manager, customer, make_action):
    action = make_action(customer, cod=True)
    client.force_login(manager)

    client.post(url(action), {"decision": "approve", "note": "Cash only from now on"})

    customer.refresh_from_db()
    assert customer.terms_type == TermsType.COD


def test_an_unrelated_invalid_field_on_the_card_does_not_stop_an_approval(
    client, manager, customer, make_action
):
    """The approval changes the hold or the terms alone, and checks only
    those: a payment-run day of 40 (an old import) is the card's to mend."""
    hold, cod = make_action(customer), make_action(customer, cod=True)
    Customer.objects.filter(pk=customer.pk).update(ap_run_days=[15, 40])
    client.force_login(manager)

    client.post(url(hold), {"decision": "approve", "note": "Third promise broken"})
    client.post(url(cod), {"decision": "approve", "note": "Cash only from now on"})

    customer.refresh_from_db()
    assert (customer.on_credit_hold, customer.terms_type, customer.ap_run_days) == (True, TermsType.COD,
                                                                                    [15, 40])
    hold.refresh_from_db()
    cod.refresh_from_db()
    assert (hold.status, cod.status) == (ActionStatus.DONE, ActionStatus.DONE)


def test_the_card_still_refuses_an_invalid_value_it_changes(manager, customer):
    with pytest.raises(ValidationError, match="Payment-run days are days of the month"):
        customer_update(customer=customer, actor=manager, changes={"ap_run_days": [40]})
    customer.refresh_from_db()
    assert customer.ap_run_days != [40]


def test_approving_cod_for_an_account_moved_to_prepayment_meanwhile_leaves_it_there(
    client, manager, make_customer, make_action
):
    customer = make_customer(name="Prepaid Ltd")
    action = make_action(customer, cod=True)
    Customer.objects.filter(pk=customer.pk).update(terms_type=TermsType.PREPAYMENT)
    client.force_login(manager)

    client.post(url(action), {"decision": "approve", "note": "Cash only"})

    customer.refresh_from_db()
    assert customer.terms_type == TermsType.PREPAYMENT  # stricter than C.O.D.: not softened
    action.refresh_from_db()
    assert (action.status, action.skip_reason) == (
        ActionStatus.SKIPPED, "the account already trades on prepayment, stricter than cash on delivery"
    )


def test_approving_a_step_whose_invoices_were_paid_meanwhile_records_who_and_why(client, manager, action):
    Invoice.objects.filter(customer=action.customer).update(
        status=InvoiceStatus.PAID, open_amount=Decimal("0"), settled_on=TODAY
    )
    client.force_login(manager)

    client.post(url(action), {"decision": "approve", "note": "Fourth broken promise"})

    action.refresh_from_db()
    assert (action.status, action.reviewed_by) == (ActionStatus.SKIPPED, manager)
    event = TimelineEvent.objects.get(customer=action.customer)
    assert event.actor == manager
    assert "Fourth broken promise" in event.summary and event.details["note"] == "Fourth broken promise"
    assert event.details["before"] == {"status": "awaiting_approval"}
    action.customer.refresh_from_db()
    assert action.customer.on_credit_hold is False


def test_approving_a_credit_hold_over_a_balance_paid_down_under_the_policy_minimum_skips_it(
    client, manager, customer, make_action
):
    """Planned over EUR 100.00; the customer then pays all but EUR 10.00, under
    the ladder's EUR 25.00 minimum below which delivery sends no notice at all.
    Approving it must not put the account on hold for ten euros."""
    action = make_action(customer)
    line = action.lines.get()
    workspace.payment_record(customer=customer, amount=Decimal("90.00"), currency="EUR", received_on=TODAY,
                             allocations=[(line.invoice, Decimal("90.00"))], reference="BANK-1",
                             actor=manager)
    client.force_login(manager)

    response = client.post(url(action), {"decision": "approve", "note": "Late again"}, follow=True)

    action.refresh_from_db()
    customer.refresh_from_db()
    assert (customer.on_credit_hold, action.status, action.reviewed_by) == (
        False, ActionStatus.SKIPPED, manager
    )
    assert "minimum" in action.skip_reason and "EUR 10.00" in action.skip_reason
    # The manager said "go ahead": the page says it came to nothing, and why.
    assert f"{customer.name}: credit hold no longer needed, nothing done (by approval" in (
        response.content.decode()
    )


@pytest.mark.parametrize("decision", ["approve", "decline"])
def test_the_decision_on_a_step_is_found_on_the_timeline_of_its_invoices(client, manager, action, decision):
    """Filtering the account's timeline by an invoice the step listed shows the
    manager's decision on it, declined as well as approved."""
    client.force_login(manager)
    client.post(url(action), {"decision": decision, "note": "Big order next month"})
    number = action.lines.get().invoice.number

    page = client.get(reverse("customers:detail", args=[action.customer.pk]), {"invoice": number})

    verb = "approved" if decision == "approve" else "declined"
    assert f"Credit hold {verb} by" in page.content.decode()


def test_declining_skips_the_step_with_the_managers_note(client, manager, action):
    client.force_login(manager)

    response = client.post(url(action), {"decision": "decline", "note": "Big order next month"})

    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == ActionStatus.SKIPPED
    assert action.skip_reason == "Big order next month"
    assert action.reviewed_by == manager
    action.customer.refresh_from_db()
    assert action.customer.on_credit_hold is False
    event = TimelineEvent.objects.get(customer=action.customer)
    assert event.kind == EventKind.EXCEPTION
    assert event.actor == manager
    assert event.subject == action
    assert event.details["before"] == {"status": "awaiting_approval"}
    assert event.details["after"] == {"status": "skipped", "skip_reason": "Big order next month"}
    assert "Big order next month" in event.summary


def test_with_htmx_the_decided_step_replaces_its_form(client, manager, action):
    client.force_login(manager)

    response = client.post(url(action), {"decision": "decline", "note": "Big order next month"},
                           headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<article id="action-{action.pk}"')
    assert "<html" not in html
    assert "Declined" in html and "Big order next month" in html
    assert f'hx-post="{url(action)}"' not in html
    assert "Acme Tools: credit hold declined." in html and 'hx-swap-oob="innerHTML"' in html


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    "data",
    [{"decision": "approve", "note": ""}, {"decision": "decline", "note": "   "},
     {"decision": "perhaps", "note": "x"}],
    ids=["approve-without-note", "decline-without-note", "unknown-decision"],
)
def test_bad_input_changes_nothing_and_says_why(client, manager, action, headers, data):
    before = state(action)
    client.force_login(manager)

    response = client.post(url(action), data, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert "Nothing was decided." in html
    assert ("<html" in html) == (not headers)
    assert state(action) == before


def test_a_decision_needs_a_note(client, manager, action):
    client.force_login(manager)

    html = client.post(url(action), {"decision": "approve"}, headers=HTMX).content.decode()

    assert "Write down why you decide this way." in html


@pytest.mark.parametrize("decision", ["approve", "decline"])
def test_a_step_already_decided_is_not_decided_again(client, manager, other_manager, action, decision):
    services.action_decline(action=action, manager=other_manager, note="first")
    before = state(action)
    client.force_login(manager)

    response = client.post(url(action), {"decision": decision, "note": "second"}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 422
    assert "not waiting for approval (Skipped)" in html
    assert "Declined" in html and "first" in html  # the item shows how it was decided
    assert state(action) == before


@pytest.mark.parametrize("intruder", ["collector", "other_collector", "viewer"])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_only_managers_may_decide(client, action, request, intruder, headers):
    before = state(action)
    client.force_login(request.getfixturevalue(intruder))

    response = client.post(url(action), {"decision": "approve", "note": "me"}, headers=headers)

    assert response.status_code == 403
    assert state(action) == before


def test_a_user_without_a_role_is_refused(client, action):
    before = state(action)
    client.force_login(User.objects.create_user("nobody"))

    assert client.post(url(action), {"decision": "approve", "note": "x"}).status_code == 403
    assert state(action) == before


def test_anonymous_visitors_are_sent_to_log_in_and_nothing_changes(client, action):
    before = state(action)

    response = client.post(url(action), {"decision": "approve", "note": "x"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert state(action) == before


def test_deciding_needs_a_post(client, manager, action):
    before = state(action)
    client.force_login(manager)

    assert client.get(url(action)).status_code == 405
    assert state(action) == before


def test_deciding_without_the_csrf_token_is_refused(manager, action):
    before = state(action)
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(url(action), {"decision": "approve", "note": "forged"})

    assert response.status_code == 403
    assert state(action) == before


def test_an_unknown_step_is_not_found(client, manager):
    client.force_login(manager)

    assert client.post(reverse("collections:action_decide", args=[999999]), {}).status_code == 404


def test_the_segment_badge_shows_which_payer_it_is(client, manager, make_customer, make_action):
    make_action(make_customer(segment=Segment.SYSTEMATIC_LATE))
    client.force_login(manager)

    assert "Systematic late payer" in client.get(QUEUE).content.decode()


# --- Collectors' requests: back to where the manager was ----------------------------------


@pytest.fixture
def requests_waiting(customer, collector, make_invoice) -> dict[str, str]:
    """A payment plan above the collectors' limit and an exception request, by the URL name deciding each."""
    from ar_collections.models import CollectionRules, ExceptionKind

    CollectionRules.current()
    CollectionRules.objects.filter(pk=1).update(plan_approval_above_amount=Decimal("50.00"))
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="1000.00")
    plan = workspace.plan_propose(
        customer=customer, actor=collector, invoices=[invoice], on=TODAY,
        instalments=[(dt.date(2025, 8, 15), Decimal("500.00")), (dt.date(2025, 9, 15), Decimal("500.00"))],
    )
    asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.PAUSE,
                                        pause_until=dt.date(2025, 10, 1), reason="Bank loan", on=TODAY)
    return {"plan_decide": reverse("collections:plan_decide", args=[plan.pk]),
            "exception_decide": reverse("collections:exception_decide", args=[asked.pk])}


def decide_links(response) -> dict[str, str]:
    """Each request's Decide link on the approvals (its href, unescaped), by the decision's address."""
    found = re.findall(r'<a href="([^"]*)">Decide</a>', response.content.decode())
    hrefs = [html_text.unescape(href) for href in found]
    return {href.split("?")[0]: href for href in hrefs}


def cancel_link(response) -> str:
    found = re.search(r'<a href="([^"]*)"[^>]*>Cancel</a>', response.content.decode())
    return html_text.unescape(found.group(1))


@pytest.mark.parametrize("name", ["plan_decide", "exception_decide"])
def test_a_decision_opened_on_a_later_page_of_the_approvals_goes_back_to_that_page(
    client, manager, make_customer, make_action, requests_waiting, name
):
    for n in range(51):
        make_action(make_customer(name=f"Customer {n:02d}"))
    client.force_login(manager)
    second_page = link(client.get(QUEUE), "next")
    assert "after=" in second_page

    # Paged with htmx, the address bar shows the second page: the links follow it.
    paged = client.get(second_page, headers=HTMX)
    decide = decide_links(paged)[requests_waiting[name]]
    assert 'id="collector-requests" hx-swap-oob="true"' in paged.content.decode()
    assert decide == decide_links(client.get(second_page))[requests_waiting[name]]
    query = dict(parse_qsl(urlsplit(decide).query))
    assert query == {"next": second_page}

    form = client.get(decide)
    assert cancel_link(form) == second_page
    refused = client.post(decide, {"decision": "approve", "note": ""})
    assert refused.status_code == 422 and cancel_link(refused) == second_page
    decided = client.post(decide, {"decision": "approve", "note": "Good payer for years"})
    assert decided.status_code == 302
    assert decided.url.partition("#")[0] == second_page


@pytest.mark.parametrize("bad", ["https://evil.test/approvals/", "//evil.test/", "javascript:alert(1)",
                                 "http:///evil.test", ""])
def test_a_decision_with_an_outside_or_bad_next_goes_back_to_the_approvals(
    client, manager, requests_waiting, bad
):
    client.force_login(manager)
    decide = f"{requests_waiting['exception_decide']}?{urlencode({'next': bad})}"

    assert cancel_link(client.get(decide)) == QUEUE
    decided = client.post(decide, {"decision": "reject", "note": "Not now"})
    assert decided.status_code == 302
    assert decided.url.partition("#")[0] == QUEUE


def test_a_decision_opened_from_the_account_page_goes_back_to_it(client, manager, customer, requests_waiting):
    """Without JavaScript the account page's Decide link opens the decision as a page."""
    client.force_login(manager)
    account = reverse("customers:detail", args=[customer.pk])

    page = client.get(account).content.decode()
    decide = html_text.unescape(re.search(
        rf'<a href="({re.escape(requests_waiting["plan_decide"])}[^"]*)"', page).group(1))

    assert cancel_link(client.get(decide)) == account
    assert client.post(decide, {"decision": "approve", "note": "Fine"}).url == account


# --- Where the approvals open after a request is decided without htmx ------------------------
# A decided request leaves the collectors' requests; back on the approvals, the
# browser opens at the request to decide next, which the page must hold.

REQUEST_ID = re.compile(r'<li id="((?:plan|exception)-request-\d+)"')


def requests_at(client, response) -> tuple[str, list[str]]:
    """The anchor a decision's redirect opens the approvals at, and the ids of
    the requests that page lists, in order; the page holds an element with that id."""
    assert response.status_code == 302
    url, _, anchor = response.url.partition("#")
    page = client.get(url).content.decode()
    assert f'id="{anchor}"' in page, f"the page {url} opens has no #{anchor}"
    return anchor, REQUEST_ID.findall(page)


@pytest.fixture
def make_request(collector, make_customer, make_invoice):
    """make_request("plan" or "exception") → the decision's URL, as the
    approvals link it, and the id of the request's line on the approvals."""
    from ar_collections.models import CollectionRules, ExceptionKind

    CollectionRules.current()
    CollectionRules.objects.filter(pk=1).update(plan_approval_above_amount=Decimal("50.00"))

    def make(kind: str) -> tuple[str, str]:
        customer = make_customer()
        if kind == "plan":
            invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                                   amount="1000.00")
            plan = workspace.plan_propose(
                customer=customer, actor=collector, invoices=[invoice], on=TODAY,
                instalments=[(dt.date(2025, 8, 15), Decimal("500.00")),
                             (dt.date(2025, 9, 15), Decimal("500.00"))],
            )
            decide = reverse("collections:plan_decide", args=[plan.pk])
            return f"{decide}?{urlencode({'next': QUEUE})}", f"plan-request-{plan.pk}"
        asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.PAUSE,
                                            pause_until=dt.date(2025, 10, 1), reason="Bank loan", on=TODAY)
        decide = reverse("collections:exception_decide", args=[asked.pk])
        return f"{decide}?{urlencode({'next': QUEUE})}", f"exception-request-{asked.pk}"

    return make


APPROVE = {"decision": "approve", "note": "Good payer for years"}
REJECT = {"decision": "reject", "note": "Not now"}


def test_a_request_decided_without_htmx_opens_the_approvals_at_the_next_request(
    client, manager, make_request
):
    (_, first), (decide, _), (_, third) = (make_request("plan") for _ in range(3))
    client.force_login(manager)

    assert requests_at(client, client.post(decide, APPROVE)) == (third, [first, third])


def test_the_last_plan_decided_opens_the_approvals_at_the_first_exception_listed_after_it(
    client, manager, make_request
):
    (_, first), (decide, _) = make_request("plan"), make_request("plan")
    _, after = make_request("exception")
    client.force_login(manager)

    assert requests_at(client, client.post(decide, APPROVE)) == (after, [first, after])


def test_the_last_request_decided_without_htmx_opens_the_approvals_at_the_request_before_it(
    client, manager, make_request
):
    (_, first), (_, second) = make_request("plan"), make_request("exception")
    decide, _ = make_request("exception")
    client.force_login(manager)

    assert requests_at(client, client.post(decide, REJECT)) == (second, [first, second])


@pytest.mark.parametrize("kind", ["plan", "exception"])
def test_the_only_request_decided_without_htmx_opens_the_approvals_at_the_count_of_steps_waiting(
    client, manager, make_request, kind
):
    decide, _ = make_request(kind)
    client.force_login(manager)

    response = client.post(decide, APPROVE)

    assert response.url == f"{QUEUE}#approval-count"
    assert requests_at(client, response) == ("approval-count", [])
    assert "0 steps waiting for a decision" in client.get(QUEUE).content.decode()


def test_a_request_decided_on_a_later_page_of_the_approvals_opens_that_page_at_the_next_request(
    client, manager, make_customer, make_action, make_request
):
    for n in range(51):
        make_action(make_customer(name=f"Customer {n:02d}"))
    (decide, _), (_, other) = make_request("exception"), make_request("plan")
    client.force_login(manager)
    second_page = link(client.get(QUEUE), "next")
    decide = decide_links(client.get(second_page))[decide.partition("?")[0]]

    response = client.post(decide, APPROVE)

    assert response.url == f"{second_page}#{other}"
    assert requests_at(client, response) == (other, [other])



def test_a_refused_decision_without_htmx_is_a_page_with_the_customer_as_its_one_main_heading(
    client, manager, action
):
    client.force_login(manager)

    page = client.post(url(action), {"decision": "approve", "note": ""}).content.decode()
    in_place = client.post(url(action), {"decision": "approve", "note": ""}, headers=HTMX).content.decode()

    assert re.findall(r'<h1 id="action-\d+-title">\s*<a [^>]*>([^<]*)</a>', page) == [action.customer.name]
    assert page.count("<h1") == 1
    # In the queue the item is one of many: its heading stays under the queue's.
    assert "<h1" not in in_place and f'<h2 id="action-{action.pk}-title">' in in_place


def test_a_hold_approved_and_a_switch_declined_are_both_found_under_exceptions_on_the_timeline(
    client, manager, customer, make_action
):
    """A manager's decision on a step changing the terms is an exception,
    approved or declined: filtering the timeline by exceptions finds both."""
    hold, cod = make_action(customer), make_action(customer, cod=True)
    client.force_login(manager)
    client.post(url(hold), {"decision": "approve", "note": "Third time late"})
    client.post(url(cod), {"decision": "decline", "note": "Hold is enough"})
    assert state(hold)[0] == ActionStatus.DONE and state(cod)[0] == ActionStatus.SKIPPED

    response = client.get(reverse("customers:timeline", args=[customer.pk]), {"kind": EventKind.EXCEPTION},
                          headers=HTMX)

    text = html_text.unescape(response.content.decode())
    assert "Credit hold approved by" in text and "Third time late" in text
    assert "Switch to C.O.D./prepayment declined by" in text and "Hold is enough" in text
    assert set(TimelineEvent.objects.filter(summary__contains=" by ", details__action__in=[hold.pk, cod.pk])
               .values_list("kind", flat=True)) == {EventKind.EXCEPTION}
