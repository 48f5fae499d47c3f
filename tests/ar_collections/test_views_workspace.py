"""The collector's inline actions on the account page (calls, notes, invoice
copies, promises, plans, disputes, pauses, exception requests) and the
managers' decisions on plans and exceptions, with and without htmx."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from ar_collections import dunning, workspace
from ar_collections.models import (
    ActionStatus,
    Call,
    ChargeKind,
    CollectionRules,
    CreditNote,
    Department,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    DisputeStatus,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Instalment,
    Invoice,
    LateCharge,
    MailStatus,
    OutgoingMail,
    PauseKind,
    PaymentPlan,
    PlanStatus,
    Promise,
    PromiseStatus,
    TimelineEventInvoice,
)
from ar_collections.workspace import DISPUTE_CANCELLED_BY_THE_ERP_ONLY
from ar_collections.workspace_forms import NO_LONGER_OPEN, DisputeResolveForm
from arcrm.text import person_name
from customers.models import ContactAbsence, Customer, EventKind, TimelineEvent
from tests.ar_collections.conftest import sent_once

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
# The decide forms opened from the account page post into its action panel.
HTMX_PANEL = {"HX-Request": "true", "HX-Target": "action-panel"}
pytestmark = pytest.mark.usefixtures("_frozen_today")

# Every inline action on an account, by URL name.
ACTIONS = [
    "call_log", "note_add", "invoice_copy", "promise_record", "plan_propose", "dispute_open",
    "dispute_resolve", "pause_set", "pause_resume", "exception_request",
]
FORM_ACTIONS = [name for name in ACTIONS if name != "pause_resume"]
# A manager's decisions on what a collector asked, by URL name.
DECISIONS = ["plan_decide", "exception_decide"]
# The parts of the account page an accepted action swaps in out of band.
ACCOUNT_PARTS = [
    r'<section id="account-header"[^>]*hx-swap-oob="true"',
    r'<div id="timeline" hx-swap-oob="true"',
    r'<section id="dunning-preview"[^>]*hx-swap-oob="true"',
    r'<section id="commitments"[^>]*hx-swap-oob="true"',
    # The Dunning card (cause, pauses) and the open invoices change with an action too.
    r'<section id="dunning"[^>]*hx-swap-oob="true"',
    r'<section id="open-invoices"[^>]*hx-swap-oob="true"',
    r'<div id="messages"[^>]*hx-swap-oob="innerHTML"',
]


@pytest.fixture
def anna(customer, make_contact):
    return make_contact(customer, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)


@pytest.fixture
def invoices(customer, make_invoice):
    """Overdue since 1 July: INV-1001 of EUR 500.00 and INV-1002 of EUR 700.00."""
    return [
        make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount=amount,
                     number=number)
        for number, amount in [("INV-1001", "500.00"), ("INV-1002", "700.00")]
    ]


@pytest.fixture
def dispute(customer, collector, invoices) -> Dispute:
    return workspace.dispute_open(
        customer=customer, actor=collector, invoice=invoices[0], reason=DisputeReason.PRICE,
        description="Quoted EUR 450, billed EUR 500", on=TODAY,
    )


@pytest.fixture
def hold(customer, collector) -> DunningPause:
    """A manual hold on the whole account, in force today."""
    return workspace.pause_set(
        customer=customer, actor=collector, ends_on=TODAY + dt.timedelta(days=7), reason="CFO away", on=TODAY
    )


def url(name: str, customer, *args) -> str:
    return reverse(f"collections:{name}", args=[customer.pk, *args])


def account(customer) -> str:
    return reverse("customers:detail", args=[customer.pk])


@pytest.fixture
def posts(customer, anna, invoices, dispute, hold) -> dict[str, tuple[str, dict]]:
    """One valid POST for each inline action on the account, by URL name."""
    second = invoices[1]
    return {
        "call_log": (url("call_log", customer), sent_once({
            "contact": anna.pk, "outcome": "reached", "notes": "Pays on Friday",
            "promise_amount": "200.00", "promise_date": "2025-08-08", "promise_invoices": [second.pk],
        })),
        "note_add": (url("note_add", customer), {"text": "Met their CFO at the trade fair"}),
        "invoice_copy": (url("invoice_copy", customer),
                         sent_once({"invoice": second.pk, "contact": anna.pk})),
        "promise_record": (url("promise_record", customer), {
            "contact": anna.pk, "amount": "700.00", "promised_on": "2025-08-15", "invoices": [second.pk],
        }),
        "plan_propose": (url("plan_propose", customer), sent_once({
            "invoices": [second.pk], "instalment_count": "3", "first_due_on": "2025-08-15",
            "every_days": "30", "note": "Seasonal business",
        })),
        "dispute_open": (url("dispute_open", customer), {
            "invoice": second.pk, "reason": DisputeReason.QUANTITY, "description": "Got 9 pallets, not 10",
            "department": "",
        }),
        "dispute_resolve": (url("dispute_resolve", customer, dispute.pk), {
            "outcome": DisputeOutcome.REJECTED, "amount": "", "note": "The contract says EUR 500",
        }),
        "pause_set": (url("pause_set", customer), {
            "invoice": "", "ends_on": "2025-08-12", "reason": "Waiting for their bank loan",
        }),
        "pause_resume": (url("pause_resume", customer), {}),
        "exception_request": (url("exception_request", customer), {
            "kind": ExceptionKind.EXTENDED_TERMS, "invoice": second.pk, "pause_until": "2025-09-30",
            "reason": "Customer since 1998; their bank runs payments at the month's end",
        }),
    }


def state() -> tuple:
    """Everything an action on an account may change."""
    return (
        TimelineEvent.objects.count(),
        Call.objects.count(),
        sorted(Promise.objects.values_list("pk", "status")),
        sorted(PaymentPlan.objects.values_list("pk", "status")),
        sorted(Dispute.objects.values_list("pk", "status")),
        sorted(DunningPause.objects.values_list("pk", "lifted_at")),
        sorted(ExceptionRequest.objects.values_list("pk", "status")),
        sorted(Invoice.objects.values_list("number", "total_amount", "open_amount", "status")),
        CreditNote.objects.count(),
    )


def events_after(event_id: int) -> list[TimelineEvent]:
    return list(TimelineEvent.objects.filter(pk__gt=event_id).order_by("pk"))


def last_event_id() -> int:
    return TimelineEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def linked_numbers(event: TimelineEvent) -> list[str]:
    ids = TimelineEventInvoice.objects.filter(event=event).values_list("invoice_id", flat=True)
    return sorted(Invoice.objects.filter(pk__in=ids).values_list("number", flat=True))


def set_rules(**limits) -> None:
    CollectionRules.current()
    CollectionRules.objects.filter(pk=1).update(**limits)


# --- Every action: the page, the two answers, who may, which method -----------------------


@pytest.mark.parametrize("name", FORM_ACTIONS)
def test_every_action_offers_its_form_as_a_page_and_as_an_htmx_panel(client, collector, posts, name):
    action_url, _ = posts[name]
    client.force_login(collector)

    page = client.get(action_url)
    panel = client.get(action_url, headers=HTMX)

    assert page.status_code == panel.status_code == 200
    assert "<html" in page.content.decode()
    html = panel.content.decode()
    assert html.lstrip().startswith('<section id="action-panel"') and "<html" not in html
    # Progressive enhancement: the form posts plainly as well as through htmx.
    assert f'action="{action_url}"' in html and 'method="post"' in html and f'hx-post="{action_url}"' in html


def submit_label(html: str) -> str:
    return re.search(r'<button type="submit"[^>]*>([^<]+)</button>', html).group(1)


# What each panel's button does, in the words of its title: "Save" says nothing on
# a panel that withdraws or ends something.
BUTTONS = {
    "call_log": "Log call", "note_add": "Add note", "invoice_copy": "Send copy",
    "promise_record": "Record promise", "plan_propose": "Set up plan", "dispute_open": "Open dispute",
    "dispute_resolve": "Resolve dispute", "pause_set": "Pause dunning", "exception_request": "Send request",
}


def headings(html: str, level: int) -> list[str]:
    return [" ".join(re.sub(r"<[^>]+>", "", text).split())
            for text in re.findall(rf"<h{level}\b[^>]*>(.*?)</h{level}>", html, re.S)]


# Every panel the account page opens: the collectors' actions, the managers' money and decisions.
PANELS = [*FORM_ACTIONS, "payment_record", "payment_reverse", "credit_note_record", "invoice_write_off",
          *DECISIONS]


def panel_url(name: str, customer, invoices, request) -> str:
    if name in DECISIONS:
        return request.getfixturevalue("decisions")[name]
    if name == "invoice_write_off":
        return url(name, customer, invoices[0].pk)
    if name in FORM_ACTIONS:
        return request.getfixturevalue("posts")[name][0]
    return url(name, customer)


@pytest.mark.parametrize("name", PANELS)
def test_an_action_s_page_of_its_own_has_one_main_heading_and_its_panel_none(
    client, manager, customer, invoices, request, name
):
    action_url = panel_url(name, customer, invoices, request)
    client.force_login(manager)

    page = client.get(action_url).content.decode()
    panel = client.get(action_url, headers=HTMX).content.decode()

    # Without JavaScript the form is the whole page: a screen reader's "next heading" finds its title.
    [title] = headings(page, 1)
    assert title and title in headings(panel, 2)
    assert headings(panel, 1) == []


@pytest.mark.parametrize("name", PANELS)
def test_a_field_s_help_is_read_out_with_it(client, manager, customer, invoices, request, name):
    client.force_login(manager)

    panel = client.get(panel_url(name, customer, invoices, request), headers=HTMX).content.decode()

    # A screen reader reads the help a field names with aria-describedby: a name
    # no element carries reads nothing ("Promised amount" without "paid oldest due first").
    described_by = {ref for refs in re.findall(r'aria-describedby="([^"]+)"', panel) for ref in refs.split()}
    ids = set(re.findall(r'\bid="([^"]+)"', panel))
    assert described_by <= ids, sorted(described_by - ids)


@pytest.mark.parametrize("name", PANELS)
def test_a_menu_to_choose_from_says_what_to_choose(client, manager, customer, invoices, request, name):
    client.force_login(manager)

    panel = client.get(panel_url(name, customer, invoices, request), headers=HTMX).content.decode()

    # Django's "---------" says nothing to a collector, nor to a screen reader.
    first_options = re.findall(r"<select\b[^>]*>\s*<option[^>]*>([^<]*)</option>", panel)
    assert not [label for label in first_options if not label.strip("- ")], first_options


@pytest.mark.parametrize("name", FORM_ACTIONS)
def test_every_action_s_button_says_what_it_does(client, collector, posts, name):
    client.force_login(collector)

    assert submit_label(client.get(posts[name][0], headers=HTMX).content.decode()) == BUTTONS[name]


@pytest.mark.parametrize("name", ACTIONS)
def test_without_htmx_an_accepted_action_redirects_to_the_account_page_and_says_what_it_did(
    client, collector, customer, posts, name
):
    action_url, data = posts[name]
    before = state()
    client.force_login(collector)

    response = client.post(action_url, data)

    assert response.status_code == 302
    assert response.url == account(customer) + "#timeline"
    assert state() != before
    assert TimelineEvent.objects.count() > before[0]
    page = client.get(response.url).content.decode()
    assert 'class="message message-success"' in page


@pytest.mark.parametrize("name", ACTIONS)
def test_with_htmx_an_accepted_action_closes_the_panel_and_swaps_the_account_parts_out_of_band(
    client, collector, posts, name
):
    action_url, data = posts[name]
    before = state()
    client.force_login(collector)

    response = client.post(action_url, data, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert state() != before
    assert response["HX-Retarget"] == "#action-panel" and response["HX-Reswap"] == "outerHTML"
    assert html.lstrip().startswith('<div id="action-panel"></div>')
    assert "<html" not in html
    for part in ACCOUNT_PARTS:
        assert re.search(part, html), part
    assert html.count('id="messages"') == 1
    newest = TimelineEvent.objects.latest("occurred_at", "pk")
    assert escape(newest.summary) in html
    assert 'class="message message-success"' in html


@pytest.mark.parametrize("name", ACTIONS)
def test_with_htmx_an_action_on_a_filtered_timeline_takes_the_filter_out_of_the_address_bar(
    client, collector, customer, posts, name
):
    """The timeline comes back unfiltered with the change on top: an address
    still holding the filter would hide the change again on a reload."""
    action_url, data = posts[name]
    client.force_login(collector)
    page = account(customer)

    response = client.post(action_url, data, headers={**HTMX, "HX-Current-URL": f"http://testserver{page}"
                                                                             "?kind=call&invoice="})

    assert response.status_code == 200
    assert response["HX-Replace-Url"] == page
    assert " checked" not in re.search(r'<form class="timeline-filters".*?</form>', response.content.decode(),
                                       re.S).group()


@pytest.mark.parametrize("name", ["call_log", "invoice_copy", "promise_record", "plan_propose",
                                  "exception_request"])
def test_an_invoice_paid_since_the_form_was_opened_is_named_as_such_and_nothing_changes(
    client, collector, posts, invoices, name
):
    """Another tab (or the bank import) settled the invoice meanwhile: the
    refusal says so in words, not with the invoice's database id."""
    action_url, data = posts[name]
    Invoice.objects.filter(pk=invoices[1].pk).update(open_amount=0, status="paid", settled_on=TODAY)
    before = state()
    client.force_login(collector)

    response = client.post(action_url, data, headers=HTMX)

    errors = re.findall(r'class="field-error"[^>]*>([^<]*)<', response.content.decode())
    assert response.status_code == 422
    assert errors == ["An invoice chosen is no longer open on this account (paid or credited meanwhile): "
                      "choose from those listed now."]
    assert "A promise needs" not in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
@pytest.mark.parametrize("name", ACTIONS)
def test_an_action_answers_only_get_and_post(client, collector, posts, name, method):
    action_url, _ = posts[name]
    before = state()
    client.force_login(collector)

    response = getattr(client, method)(action_url)

    assert response.status_code == 405
    assert state() == before


def test_resuming_dunning_is_a_post_only(client, collector, posts):
    before = state()
    client.force_login(collector)

    assert client.get(posts["pause_resume"][0]).status_code == 405
    assert state() == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("name", ACTIONS)
def test_another_collectors_customer_is_refused_and_nothing_changes(
    client, other_collector, posts, name, headers
):
    action_url, data = posts[name]
    before = state()
    client.force_login(other_collector)

    response = client.post(action_url, data, headers=headers)

    assert response.status_code == 403
    assert state() == before


@pytest.mark.parametrize("name", FORM_ACTIONS)
def test_another_collector_does_not_even_get_the_form(client, other_collector, posts, name):
    client.force_login(other_collector)

    assert client.get(posts[name][0], headers=HTMX).status_code == 403


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("name", ACTIONS)
def test_a_viewer_may_read_the_account_but_not_act_on_it(client, viewer, posts, name, headers):
    action_url, data = posts[name]
    before = state()
    client.force_login(viewer)

    response = client.post(action_url, data, headers=headers)

    assert response.status_code == 403
    assert state() == before


@pytest.mark.parametrize("name", ACTIONS)
def test_a_user_without_a_role_may_not_act(client, posts, name):
    action_url, data = posts[name]
    before = state()
    client.force_login(User.objects.create_user("nobody"))

    assert client.post(action_url, data).status_code == 403
    assert state() == before


@pytest.mark.parametrize("name", ACTIONS)
def test_anonymous_visitors_are_sent_to_log_in_and_nothing_changes(client, posts, name):
    action_url, data = posts[name]
    before = state()

    response = client.post(action_url, data)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert state() == before


@pytest.mark.parametrize("name", ACTIONS)
def test_an_action_without_the_csrf_token_is_refused(collector, posts, name):
    action_url, data = posts[name]
    before = state()
    client = Client(enforce_csrf_checks=True)
    client.force_login(collector)

    response = client.post(action_url, data, headers=HTMX)

    assert response.status_code == 403
    assert state() == before


@pytest.mark.parametrize("name", ["note_add", "pause_set"])
def test_a_manager_may_act_on_any_collectors_account(client, manager, posts, name):
    action_url, data = posts[name]
    before = state()
    client.force_login(manager)

    assert client.post(action_url, data).status_code == 302
    assert TimelineEvent.objects.latest("pk").actor == manager
    assert state() != before


def test_an_unknown_customer_is_not_found(client, collector):
    client.force_login(collector)

    response = client.post(reverse("collections:note_add", args=[999_999]), {"text": "Hello"})

    assert response.status_code == 404


def test_a_dispute_of_another_account_is_not_found_through_this_one(
    client, collector, make_customer, dispute
):
    mine = make_customer(name="Mine Too")
    before = state()
    client.force_login(collector)

    response = client.post(
        url("dispute_resolve", mine, dispute.pk), {"outcome": DisputeOutcome.REJECTED, "note": "No"}
    )

    assert response.status_code == 404
    assert state() == before


# --- Rejected input -----------------------------------------------------------------------


@pytest.fixture
def bad_posts(customer, anna, invoices, dispute, make_contact, make_customer, make_invoice):
    """Posts each action must refuse: (URL, data, the message the collector reads)."""
    first, second = invoices
    ben = make_contact(customer, name="Ben Backup", email="")
    elsewhere = make_invoice(make_customer(name="Elsewhere Ltd"), issued=dt.date(2025, 6, 1))
    promise = {"promise_amount": "200.00", "promise_date": "2025-08-08", "promise_invoices": [second.pk]}
    not_offered = NO_LONGER_OPEN
    call, note, copy = url("call_log", customer), url("note_add", customer), url("invoice_copy", customer)
    promise_url, plan = url("promise_record", customer), url("plan_propose", customer)
    dispute_url, resolve = url("dispute_open", customer), url("dispute_resolve", customer, dispute.pk)
    pause, exception = url("pause_set", customer), url("exception_request", customer)
    return {
        "call without an outcome": (call, {"contact": anna.pk, "notes": "Hm"}, "This field is required."),
        "promise on an unanswered call": (
            call, {"outcome": "no_answer", **promise}, "Only a call that reached someone can bring a promise."
        ),
        "half a promise on a call": (
            call, {"outcome": "reached", "promise_amount": "5"},
            "A promise needs an amount, a date and the invoices it covers.",
        ),
        "summary to no one": (
            call, {"contact": "", "outcome": "reached", "email_summary": "on"},
            "Choose the contact to write the summary to.",
        ),
        "summary to a contact without e-mail": (
            call, {"contact": ben.pk, "outcome": "reached", "email_summary": "on"},
            "The contact has no e-mail address for a summary.",
        ),
        "empty note": (note, {"text": "   "}, "This field is required."),
        "copy to a contact without e-mail or postal address": (
            copy, {"invoice": second.pk, "contact": ben.pk},
            "Ben Backup has neither an e-mail address nor a postal address on file.",
        ),
        "copy of another account's invoice": (
            copy, {"invoice": elsewhere.pk, "contact": anna.pk}, not_offered
        ),
        "promise above what is owed": (
            promise_url, {"amount": "900.00", "promised_on": "2025-08-15", "invoices": [second.pk]},
            "The invoices chosen owe EUR 700.00; a promise cannot be for more.",
        ),
        "promise in the past": (
            promise_url, {"amount": "100.00", "promised_on": "2025-08-04", "invoices": [second.pk]},
            "A promise is for today or a later day.",
        ),
        "promise beyond the pause limit": (
            promise_url, {"amount": "100.00", "promised_on": "2025-08-20", "invoices": [second.pk]},
            "A promise more than 14 days ahead would hold dunning longer than a collector may pause: "
            "propose a payment plan, or ask a manager for an exception.",
        ),
        "promise years ahead": (
            promise_url, {"amount": "100.00", "promised_on": "9999-12-30", "invoices": [second.pk]},
            "30 Dec 9999 is more than 10 years ahead: check the year.",
        ),
        "promise on an invoice under dispute": (
            promise_url, {"amount": "100.00", "promised_on": "2025-08-15", "invoices": [first.pk]},
            "INV-1001 is disputed in full: settle the dispute first, or leave it out of the promise.",
        ),
        "plan starting years ahead": (
            plan, {"invoices": [second.pk], "instalment_count": "3", "first_due_on": "9999-11-15",
                   "every_days": "30"},
            "15 Nov 9999 is more than 10 years ahead: check the year.",
        ),
        "plan starting in the past": (
            plan, {"invoices": [second.pk], "instalment_count": "2", "first_due_on": "2025-08-01",
                   "every_days": "30"},
            "The first instalment cannot be in the past.",
        ),
        "plan of one instalment": (
            plan, {"invoices": [second.pk], "instalment_count": "1", "first_due_on": "2025-08-15",
                   "every_days": "30"},
            "Ensure this value is greater than or equal to 2.",
        ),
        "second dispute on an invoice": (
            dispute_url, {"invoice": first.pk, "reason": DisputeReason.PRICE, "description": "Again"},
            "That invoice is settled or already has an open dispute.",
        ),
        "dispute without a description": (
            dispute_url, {"invoice": second.pk, "reason": DisputeReason.PRICE, "description": " "},
            "This field is required.",
        ),
        "credit note above the open amount": (
            resolve, {"outcome": DisputeOutcome.CREDIT_NOTE, "amount": "600.00", "note": "Goodwill"},
            "A credit note is between EUR 0.01 and the EUR 500.00 still open.",
        ),
        "correction that is no reduction": (
            resolve, {"outcome": DisputeOutcome.CORRECTED_INVOICE, "amount": "500.00", "note": "Fixed"},
            "The corrected total must be below EUR 500.00",
        ),
        "resolution without a note": (
            resolve, {"outcome": DisputeOutcome.REJECTED, "note": ""}, "This field is required."
        ),
        "pause ending today": (
            pause, {"ends_on": "2025-08-05", "reason": "Holiday"}, "A pause ends after today."
        ),
        "pause of an unknown invoice": (
            pause, {"invoice": "0", "ends_on": "2025-08-12", "reason": "Holiday"}, not_offered
        ),
        "exception pause without an end": (
            exception, {"kind": ExceptionKind.PAUSE, "reason": "Bank loan pending"},
            "A pause needs an end after today.",
        ),
        "exception of an unknown kind": (
            exception, {"kind": "amnesty", "reason": "Please"},
            "Select a valid choice. amnesty is not one of the available choices.",
        ),
    }


BAD_INPUT = [
    "call without an outcome", "promise on an unanswered call", "half a promise on a call",
    "summary to no one", "summary to a contact without e-mail", "empty note",
    "copy to a contact without e-mail or postal address",
    "copy of another account's invoice", "promise above what is owed", "promise in the past",
    "promise beyond the pause limit", "promise years ahead", "promise on an invoice under dispute",
    "plan starting years ahead",
    "plan starting in the past", "plan of one instalment", "second dispute on an invoice",
    "dispute without a description", "credit note above the open amount", "correction that is no reduction",
    "resolution without a note", "pause ending today", "pause of an unknown invoice",
    "exception pause without an end", "exception of an unknown kind",
]


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_refused_with_a_422_and_a_clear_message_and_changes_nothing(
    client, collector, bad_posts, case, headers
):
    action_url, data, message = bad_posts[case]
    before = state()
    client.force_login(collector)

    # The token a form that sends to the customer carries; the others ignore it.
    response = client.post(action_url, sent_once(data), headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert escape(message) in html
    # Without htmx the form is a page of its own; with htmx it replaces the panel.
    assert ("<html" in html) == (not headers)
    assert html.lstrip().startswith('<section id="action-panel"') == bool(headers)
    assert state() == before


# --- Logging a call -------------------------------------------------------------------------


def test_a_call_with_a_promise_records_both_and_pauses_the_promised_invoice(
    client, collector, customer, anna, invoices
):
    second = invoices[1]
    since = last_event_id()
    client.force_login(collector)

    response = client.post(url("call_log", customer), sent_once({
        "contact": anna.pk, "outcome": "reached", "cause": "red_tape", "notes": "Needs a PO number",
        "promise_amount": "700.00", "promise_date": "2025-08-08", "promise_invoices": [second.pk],
    }))

    assert response.status_code == 302
    call = Call.objects.get(customer=customer)
    assert (call.contact, call.made_by, call.outcome, call.cause, call.notes) == (
        anna, collector, "reached", "red_tape", "Needs a PO number"
    )
    promise = Promise.objects.get(call=call)
    assert (promise.amount, promise.promised_on, promise.made_by) == (
        Decimal("700.00"), dt.date(2025, 8, 8), collector
    )
    assert list(promise.invoices.all()) == [second]
    pause = DunningPause.objects.get(promise=promise)
    assert (pause.invoice, pause.kind, pause.ends_on) == (second, PauseKind.PROMISE, dt.date(2025, 8, 11))
    call_event, promise_event = events_after(since)
    assert (call_event.kind, call_event.actor) == (EventKind.CALL, collector)
    assert call_event.summary == "Call to Anna Clerk: reached; cause: red tape — Needs a PO number"
    assert promise_event.kind == EventKind.PROMISE
    assert promise_event.summary.startswith("Promise to pay EUR 700.00 by 8 Aug 2025 (INV-1002)")
    assert linked_numbers(promise_event) == ["INV-1002"]
    assert "Call logged with a promise to pay." in client.get(response.url).content.decode()


def test_a_call_without_a_promise_records_only_the_call(client, collector, customer, anna, invoices):
    since = last_event_id()
    client.force_login(collector)

    client.post(url("call_log", customer), sent_once({"contact": anna.pk, "outcome": "voicemail"}))

    assert Call.objects.get(customer=customer).outcome == "voicemail"
    assert not Promise.objects.exists() and not DunningPause.objects.exists()
    assert [e.summary for e in events_after(since)] == ["Call to Anna Clerk: left a voicemail"]


def test_a_call_summary_is_e_mailed_to_the_contact(
    client, collector, customer, anna, invoices, smtp_server, django_capture_on_commit_callbacks,
    eager_celery,
):
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("call_log", customer), sent_once({
            "contact": anna.pk, "outcome": "reached", "notes": "Agreed to pay INV-1001 first",
            "email_summary": "on",
        }))

    (message,) = smtp_server.messages
    assert message["To"] == "Anna Clerk <anna@acme.test>"
    assert message["Subject"] == f"Our call today about account {customer.account_number}"
    assert "Agreed to pay INV-1001 first" in message.get_content()
    assert Call.objects.get().summary_sent_to == "anna@acme.test"



def test_a_call_summary_writes_the_promised_day_without_a_leading_zero(
    client, collector, customer, anna, invoices, smtp_server, django_capture_on_commit_callbacks,
    eager_celery,
):
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("call_log", customer), sent_once({
            "contact": anna.pk, "outcome": "reached", "email_summary": "on",
            "promise_amount": "700.00", "promise_date": "2025-08-08", "promise_invoices": [invoices[1].pk],
        }))

    (message,) = smtp_server.messages
    assert "you will pay EUR 700.00 by 8 August 2025 for invoice(s) INV-1002." in message.get_content()

# --- Notes and invoice copies ------------------------------------------------------------------


def test_a_note_lands_on_the_timeline_under_the_collectors_name(client, collector, customer):
    client.force_login(collector)

    client.post(url("note_add", customer), {"text": "  Met their CFO at the trade fair  "})

    event = TimelineEvent.objects.get(customer=customer)
    assert (event.kind, event.actor) == (EventKind.NOTE, collector)
    assert event.summary == "Met their CFO at the trade fair"


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u202e", " \u200b\u00ad\n\u2060 "],
                         ids=["zero-width-spaces", "direction-mark", "soft-hyphen-and-word-joiner"])
def test_a_note_of_only_characters_no_one_sees_is_refused_and_nothing_lands_on_the_timeline(
    client, collector, customer, text
):
    """Pasted from a web page or a PDF, a "note" may hold only zero-width or
    format characters: it would stand on the timeline as an entry that says
    nothing, under the collector's name."""
    client.force_login(collector)

    response = client.post(url("note_add", customer), {"text": text})

    assert response.status_code == 422
    assert "holds only characters no one sees" in response.content.decode()
    assert not TimelineEvent.objects.filter(customer=customer).exists()


def test_an_invoice_copy_is_e_mailed_as_a_pdf_and_noted_on_the_timeline(
    client, collector, customer, anna, invoices, smtp_server, django_capture_on_commit_callbacks,
    eager_celery,
):
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("invoice_copy", customer),
                               sent_once({"invoice": invoices[1].pk, "contact": anna.pk}))

    assert response.status_code == 302
    (message,) = smtp_server.messages
    assert message["To"] == "Anna Clerk <anna@acme.test>"
    (pdf,) = list(message.iter_attachments())
    assert pdf.get_filename() == "invoice-INV-1002.pdf"
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")
    event = TimelineEvent.objects.get(customer=customer)
    assert event.summary == "Copy of invoice INV-1002 e-mailed to Anna Clerk <anna@acme.test>"
    assert linked_numbers(event) == ["INV-1002"]


def test_an_invoice_copy_reaches_an_address_with_an_internationalised_domain_and_a_name_on_two_lines(
    client, collector, customer, invoices, make_contact, smtp_server, django_capture_on_commit_callbacks,
    eager_celery,
):
    """The contact form accepts anna@bäckerei-müller.de; the domain goes out
    encoded, and a line break kept in the name from before is a space."""
    anna = make_contact(customer, name="Anna Clerk\nAccounts Payable", email="anna@bäckerei-müller.de",
                        is_primary_billing=True)
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("invoice_copy", customer),
                               sent_once({"invoice": invoices[1].pk, "contact": anna.pk}))

    assert response.status_code == 302
    mail = OutgoingMail.objects.get()
    assert (mail.status, mail.error) == (MailStatus.SENT, "")
    (message,) = smtp_server.messages
    assert message["To"] == "Anna Clerk Accounts Payable <anna@xn--bckerei-mller-bfb28a.de>"
    assert smtp_server.envelopes[0][1] == ["anna@xn--bckerei-mller-bfb28a.de"]


@pytest.mark.parametrize(("language", "said"), [
    ("en", r"Due date\s+31 Aug 2025"), ("de", r"Fällig am\s+31\.08\.2025"),
])
def test_a_copy_of_an_invoice_not_yet_due_says_when_it_falls_due(
    client, collector, customer, make_contact, make_invoice, pdf_text, language, said
):
    anna = make_contact(customer, name="Anna Clerk", email="anna@acme.test", language=language)
    invoice = make_invoice(customer, issued=dt.date(2025, 8, 1), due=dt.date(2025, 8, 31), amount="500.00")
    client.force_login(collector)

    client.post(url("invoice_copy", customer), sent_once({"invoice": invoice.pk, "contact": anna.pk}))

    text = pdf_text(bytes(OutgoingMail.objects.get().attachment))
    assert re.search(said, text), text


def contact_menu(html: str) -> str:
    return re.search(r'<select name="contact".*?</select>', html, re.S).group(0)


def test_the_copy_form_marks_a_contact_away_and_chooses_whom_the_account_writes_to_today(
    client, collector, customer, anna, invoices, make_contact
):
    ben = make_contact(customer, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=TODAY, ends_on=dt.date(2025, 8, 18), delegate=ben)
    client.force_login(collector)

    html = contact_menu(client.get(url("invoice_copy", customer), headers=HTMX).content.decode())

    anna_option = re.search(rf'<option value="{anna.pk}"[^>]*>([^<]*)</option>', html).group(0)
    ben_option = re.search(rf'<option value="{ben.pk}"[^>]*>([^<]*)</option>', html).group(0)
    assert "away until 18 Aug 2025" in anna_option and "selected" not in anna_option
    assert "away" not in ben_option and "selected" in ben_option


def test_the_copy_form_chooses_the_billing_contact_when_nobody_is_away(client, collector, customer, anna,
                                                                       invoices, make_contact):
    make_contact(customer, name="Ben Backup", email="ben@acme.test")
    client.force_login(collector)

    html = contact_menu(client.get(url("invoice_copy", customer), headers=HTMX).content.decode())

    anna_option = re.search(rf'<option value="{anna.pk}"[^>]*>([^<]*)</option>', html).group(0)
    assert "selected" in anna_option and "away" not in anna_option


@pytest.mark.parametrize("broken", ["en.html", "en.subject.txt"])
def test_an_invoice_copy_with_wording_that_does_not_parse_says_which_file_and_sends_nothing(
    client, collector, customer, anna, invoices, settings, tmp_path, broken
):
    wording = tmp_path / "email" / "invoice_copy"
    wording.mkdir(parents=True)
    (wording / broken).write_text("<p>{% for %}</p>")
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [tmp_path, *engine["DIRS"]]}]
    client.force_login(collector)

    response = client.post(url("invoice_copy", customer),
                           sent_once({"invoice": invoices[1].pk, "contact": anna.pk}),
                           headers={"HX-Request": "true"})

    assert response.status_code == 422
    assert (f"The copy could not be written, nothing was sent: email/invoice_copy/{broken} "
            "(or a template it uses): "
            "&#x27;for&#x27; statements should have at least four words" in response.content.decode())
    assert not OutgoingMail.objects.exists() and not TimelineEvent.objects.filter(customer=customer).exists()


# --- Promises and plans ---------------------------------------------------------------------------


def test_a_call_s_promise_refused_by_its_rules_says_why_under_the_promise_s_field(
    client, collector, customer, anna, invoices
):
    client.force_login(collector)

    response = client.post(url("call_log", customer), sent_once({
        "contact": anna.pk, "outcome": "reached", "promise_amount": "100.00", "promise_date": "2025-08-04",
        "promise_invoices": [invoices[0].pk],
    }))

    assert response.status_code == 422
    form = response.context["form"]
    assert form.errors["promise_date"] == ["A promise is for today or a later day."]
    assert not form.non_field_errors()
    assert not TimelineEvent.objects.filter(customer=customer).exists()


def test_a_promise_pauses_dunning_of_its_invoices_until_the_grace_ends(
    client, collector, customer, anna, invoices
):
    set_rules(promise_grace_days=3)
    client.force_login(collector)

    client.post(url("promise_record", customer), {
        "contact": anna.pk, "amount": "1200.00", "promised_on": "2025-08-15",
        "invoices": [i.pk for i in invoices],
    })

    promise = Promise.objects.get(customer=customer)
    assert (promise.amount, promise.contact, promise.status) == (Decimal("1200.00"), anna, "open")
    assert sorted(DunningPause.objects.filter(promise=promise).values_list("invoice__number", "ends_on")) == [
        ("INV-1001", dt.date(2025, 8, 18)), ("INV-1002", dt.date(2025, 8, 18)),
    ]
    event = TimelineEvent.objects.get(customer=customer)
    assert event.kind == EventKind.PROMISE
    assert linked_numbers(event) == ["INV-1001", "INV-1002"]


@pytest.fixture
def promised(customer, collector, anna, invoices) -> Promise:
    """Recorded wrongly: EUR 700.00 by 15 Aug on INV-1002, pausing its dunning."""
    return workspace.promise_record(customer=customer, actor=collector, contact=anna,
                                    amount=Decimal("700.00"), promised_on=dt.date(2025, 8, 15),
                                    invoices=[invoices[1]], on=TODAY)


def promise_state(promise: Promise) -> tuple:
    promise.refresh_from_db()
    return promise.status, DunningPause.objects.filter(promise=promise, lifted_at__isnull=True).count()


def test_the_withdraw_panels_buttons_say_what_they_withdraw_or_end(client, collector, customer, promised):
    client.force_login(collector)

    panel = client.get(url("promise_withdraw", customer, promised.pk), headers=HTMX).content.decode()

    assert submit_label(panel) == "Withdraw promise"


@pytest.mark.parametrize(("plan", "button"),
                         [("waiting_plan", "Withdraw proposal"), ("agreed_plan", "End plan")])
def test_the_plan_panel_s_button_says_whether_it_withdraws_a_proposal_or_ends_a_plan(
    client, manager, customer, request, plan, button
):
    plan = request.getfixturevalue(plan)
    client.force_login(manager)

    panel = client.get(url("plan_withdraw", customer, plan.pk), headers=HTMX).content.decode()

    assert submit_label(panel) == button


@pytest.mark.parametrize("name", ["plan_decide", "exception_decide"])
def test_a_decision_s_button_records_the_decision(client, manager, decisions, name):
    client.force_login(manager)

    assert submit_label(client.get(decisions[name], headers=HTMX).content.decode()) == "Record decision"


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_promise_recorded_wrongly_is_withdrawn_with_a_reason_and_dunning_goes_on(
    client, collector, customer, promised, headers
):
    """Withdrawn, not broken: it counts against nobody's payment behaviour."""
    client.force_login(collector)
    withdraw = url("promise_withdraw", customer, promised.pk)
    assert "Withdraw" in client.get(account(customer)).content.decode()
    assert "Why is it withdrawn?" in client.get(withdraw, headers=headers).content.decode()

    response = client.post(withdraw, {"reason": "Typed against the wrong invoice"}, headers=headers)

    if headers:
        assert response.status_code == 200
        page = response.content.decode()
        assert all(re.search(part, page) for part in ACCOUNT_PARTS)
    else:
        assert (response.status_code, response.url) == (302, account(customer) + "#timeline")
    assert promise_state(promised) == (PromiseStatus.CANCELLED, 0)
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.PROMISE).latest("pk")
    assert event.summary == "Promise of EUR 700.00 by 15 Aug 2025 withdrawn: Typed against the wrong invoice"
    assert (event.actor, event.details["before"]) == (collector, {"status": "open"})


def test_a_promise_is_withdrawn_only_with_a_reason_only_while_open_and_only_by_whoever_works_the_account(
    client, collector, other_collector, viewer, customer, promised
):
    withdraw = url("promise_withdraw", customer, promised.pk)
    client.force_login(collector)
    assert client.post(withdraw, {"reason": " "}).status_code == 422
    assert client.put(withdraw).status_code == 405
    for someone in (other_collector, viewer):
        client.force_login(someone)
        assert client.post(withdraw, {"reason": "Not mine to take back"}).status_code == 403
    assert Client(enforce_csrf_checks=True).post(withdraw, {"reason": "x"}).status_code in (302, 403)
    assert promise_state(promised) == (PromiseStatus.OPEN, 1)

    Promise.objects.filter(pk=promised.pk).update(status=PromiseStatus.KEPT)
    client.force_login(collector)
    refused = client.post(withdraw, {"reason": "Too late"})
    assert refused.status_code == 422
    assert "This promise is kept already" in refused.content.decode()
    offered = client.get(withdraw)
    assert offered.status_code == 404 and "This promise is kept already" in offered.content.decode()
    assert promise_state(promised)[0] == PromiseStatus.KEPT


def test_a_plan_within_the_collectors_limit_starts_at_once(client, collector, customer, invoices):
    set_rules(plan_approval_above_amount=Decimal("5000.00"), instalment_grace_days=3)
    client.force_login(collector)

    response = client.post(url("plan_propose", customer), sent_once({
        "invoices": [invoices[1].pk], "instalment_count": "3", "first_due_on": "2025-08-15",
        "every_days": "30", "note": "Seasonal business",
    }))

    plan = PaymentPlan.objects.get(customer=customer)
    assert (plan.status, plan.total_amount, plan.proposed_by) == (
        PlanStatus.ACTIVE, Decimal("700.00"), collector
    )
    # Equal instalments in cents; the last one takes the rounding.
    assert list(Instalment.objects.filter(plan=plan).values_list("due_on", "amount")) == [
        (dt.date(2025, 8, 15), Decimal("233.33")),
        (dt.date(2025, 9, 14), Decimal("233.33")),
        (dt.date(2025, 10, 14), Decimal("233.34")),
    ]
    pause = DunningPause.objects.get(plan=plan)
    # Until the last instalment plus its grace.
    assert (pause.kind, pause.invoice, pause.ends_on) == (
        PauseKind.PAYMENT_PLAN, invoices[1], dt.date(2025, 10, 17)
    )
    event = TimelineEvent.objects.get(customer=customer, summary__startswith="Payment plan of")
    assert event.kind == EventKind.PAYMENT_PLAN
    assert event.summary == (
        "Payment plan of EUR 700.00 agreed: EUR 233.33 on 15 Aug, EUR 233.33 on 14 Sep, EUR 233.34 on 14 Oct"
        " — Seasonal business"
    )
    assert linked_numbers(event) == ["INV-1002"]
    assert "Payment plan agreed" in client.get(response.url).content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_plan_with_an_invoice_disputed_in_full_is_refused(
    client, collector, customer, invoices, dispute, headers
):
    """A plan would ask the customer to pay in instalments what they say they
    do not owe, and its first missed instalment would break it."""
    before = state()
    client.force_login(collector)

    response = client.post(url("plan_propose", customer), sent_once({
        "invoices": [i.pk for i in invoices], "instalment_count": "2", "first_due_on": "2025-08-15",
        "every_days": "30",
    }), headers=headers)

    assert response.status_code == 422
    assert ("INV-1001 is disputed in full: settle the dispute first, or leave it out of the plan."
            in " ".join(response.content.decode().split()))
    assert state() == before


@pytest.mark.parametrize("form", ["plan_propose", "promise_record", "call_log"])
def test_the_promise_and_plan_forms_mark_the_invoices_under_open_dispute(
    client, collector, customer, invoices, dispute, form
):
    client.force_login(collector)

    html = client.get(url(form, customer), headers=HTMX).content.decode()

    labels = {number: label for number, label in re.findall(r'(INV-\d+) · ([^<]*)</label>', html)}
    assert "under open dispute" in labels["INV-1001"]
    assert "dispute" not in labels["INV-1002"]


@pytest.mark.parametrize("form", ["plan_propose", "promise_record", "call_log"])
def test_the_promise_and_plan_forms_mark_the_invoices_already_promised_or_in_a_plan(
    client, collector, customer, invoices, make_invoice, form
):
    """One promise or plan per invoice: the collector sees which are taken
    before choosing them, not only after the form is refused."""
    make_invoice(customer, issued=dt.date(2025, 6, 5), due=dt.date(2025, 7, 5), amount="300.00",
                 number="INV-1003")
    workspace.promise_record(customer=customer, actor=collector, amount=Decimal("100.00"),
                             promised_on=dt.date(2025, 8, 12), invoices=[invoices[0]], on=TODAY)
    workspace.plan_propose(customer=customer, actor=collector, invoices=[invoices[1]], on=TODAY,
                           instalments=[(dt.date(2025, 8, 20), Decimal("350.00")),
                                        (dt.date(2025, 9, 20), Decimal("350.00"))])
    client.force_login(collector)

    html = client.get(url(form, customer), headers=HTMX).content.decode()

    labels = {number: label for number, label in re.findall(r'(INV-\d+) · ([^<]*)</label>', html)}
    assert labels["INV-1001"].endswith(" · under an open promise")
    assert labels["INV-1002"].endswith(" · in a payment plan")
    assert labels["INV-1003"] == "due 5 Jul 2025 · EUR 300.00"
    assert "already promised or in a payment plan" in html


def test_a_plan_in_yen_is_split_into_whole_yen(client, manager, make_customer, make_invoice):
    account = make_customer(name="Tokyo Parts", currency="JPY")
    invoice = make_invoice(account, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="10000")
    client.force_login(manager)

    client.post(url("plan_propose", account), sent_once({
        "invoices": [invoice.pk], "instalment_count": "3", "first_due_on": "2025-08-15", "every_days": "30",
    }))

    plan = PaymentPlan.objects.get(customer=account)
    assert list(plan.instalments.values_list("amount", flat=True)) == [
        Decimal("3333"), Decimal("3333"), Decimal("3334")
    ]
    assert TimelineEvent.objects.get(customer=account, summary__startswith="Payment plan").summary == (
        "Payment plan of JPY 10,000 agreed: JPY 3,333 on 15 Aug, JPY 3,333 on 14 Sep, JPY 3,334 on 14 Oct"
    )


def test_a_plan_above_the_collectors_limit_waits_for_a_manager(client, collector, customer, invoices):
    set_rules(plan_approval_above_amount=Decimal("1000.00"))
    client.force_login(collector)

    response = client.post(url("plan_propose", customer), sent_once({
        "invoices": [i.pk for i in invoices], "instalment_count": "2", "first_due_on": "2025-08-15",
        "every_days": "30",
    }))

    plan = PaymentPlan.objects.get(customer=customer)
    assert plan.status == PlanStatus.AWAITING_APPROVAL
    assert not DunningPause.objects.filter(plan=plan).exists()
    assert "waits for a manager" in TimelineEvent.objects.get(customer=customer).summary
    page = " ".join(client.get(response.url).content.decode().split())
    assert ("Payment plan of EUR 1,200.00 proposed; it is above the collectors&#x27; limit of EUR 1,000.00, "
            "so it waits for a manager." in page)
    assert "Waiting for a manager&#x27;s approval" in page


# Each rule a collector's plan may cross, with the first instalment of the
# plan proposed (two, 30 days apart) and what the collector and the manager are told of it.
RULES_CROSSED = {
    "amount": ({"plan_approval_above_amount": Decimal("1000.00")}, "2025-08-15",
               "it is above the collectors' limit of EUR 1,000.00"),
    "first instalment": ({}, "2025-09-15",
                         "its first instalment, on 15 Sep 2025, is more than 30 days away, later than a "
                         "collector may agree alone"),
    "length": ({"plan_max_months": 1}, "2025-08-15",
               "its last instalment, on 14 Sep 2025, is more than 1 month away, beyond the collectors' "
               "limit"),
}


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("rule", RULES_CROSSED)
def test_a_collector_proposing_a_plan_that_waits_is_told_which_rule_it_crosses(
    client, collector, customer, invoices, rule, headers
):
    limits, first, why = RULES_CROSSED[rule]
    set_rules(**limits)
    client.force_login(collector)

    response = client.post(url("plan_propose", customer), sent_once({
        "invoices": [i.pk for i in invoices], "instalment_count": "2", "first_due_on": first,
        "every_days": "30",
    }), headers=headers)

    assert PaymentPlan.objects.get(customer=customer).status == PlanStatus.AWAITING_APPROVAL
    shown = response if headers else client.get(response.url)
    page = " ".join(shown.content.decode().split()).replace("&#x27;", "'")
    assert f"Payment plan of EUR 1,200.00 proposed; {why}, so it waits for a manager." in page


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_collector_proposing_a_plan_over_the_limit_with_the_plans_in_force_is_told_so(
    client, collector, customer, invoices, headers
):
    set_rules(plan_approval_above_amount=Decimal("1000.00"))
    workspace.plan_propose(customer=customer, actor=collector, invoices=invoices[:1], on=TODAY,
                           instalments=[(dt.date(2025, 8, 15), Decimal("250.00")),
                                        (dt.date(2025, 9, 15), Decimal("250.00"))])
    client.force_login(collector)

    response = client.post(url("plan_propose", customer), sent_once({
        "invoices": [invoices[1].pk], "instalment_count": "2", "first_due_on": "2025-08-15",
        "every_days": "30",
    }), headers=headers)

    shown = response if headers else client.get(response.url)
    page = " ".join(shown.content.decode().split()).replace("&#x27;", "'")
    assert ("Payment plan of EUR 700.00 proposed; with the EUR 500.00 of plans in force on the account it "
            "comes to EUR 1,200.00, above the collectors' limit of EUR 1,000.00, so it waits for a manager."
            in page)


def test_a_plan_in_another_currency_waits_for_a_manager_and_says_why_in_its_currency(
    client, collector, make_customer, make_invoice
):
    """Below the limit's amount, but collectors agree plans in euros only:
    the collector is told so, not that USD 500.00 is above EUR 1,000.00."""
    set_rules(plan_approval_above_amount=Decimal("1000.00"))
    account = make_customer(name="Boston Gears", currency="USD")
    invoice = make_invoice(account, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00")
    client.force_login(collector)

    response = client.post(url("plan_propose", account), sent_once({
        "invoices": [invoice.pk], "instalment_count": "2", "first_due_on": "2025-08-15", "every_days": "30",
    }))

    assert PaymentPlan.objects.get(customer=account).status == PlanStatus.AWAITING_APPROVAL
    said = ("collectors agree plans in EUR only (up to EUR 1,000.00), not in USD, so it waits for a "
            "manager")
    page = " ".join(client.get(response.url).content.decode().split())
    assert f"Payment plan of USD 500.00 proposed; {said}." in page
    assert "above" not in TimelineEvent.objects.get(customer=account).summary
    assert TimelineEvent.objects.get(customer=account).summary.endswith(f"; {said}")


def test_a_plan_that_with_those_in_force_passes_the_limit_says_so(
    client, collector, customer, invoices, make_invoice
):
    set_rules(plan_approval_above_amount=Decimal("1000.00"))
    workspace.plan_propose(customer=customer, actor=collector, invoices=[invoices[1]], on=TODAY,
                           instalments=[(dt.date(2025, 8, 15), Decimal("350.00")),
                                        (dt.date(2025, 9, 15), Decimal("350.00"))])
    client.force_login(collector)

    response = client.post(url("plan_propose", customer), sent_once({
        "invoices": [invoices[0].pk], "instalment_count": "2", "first_due_on": "2025-08-15",
        "every_days": "30",
    }))

    page = " ".join(client.get(response.url).content.decode().split())
    assert ("Payment plan of EUR 500.00 proposed; with the EUR 700.00 of plans in force on the account it "
            "comes to EUR 1,200.00, above the collectors&#x27; limit of EUR 1,000.00, so it waits for a "
            "manager." in page)


def test_a_managers_plan_above_the_limit_needs_no_approval(client, manager, customer, invoices):
    set_rules(plan_approval_above_amount=Decimal("1000.00"))
    client.force_login(manager)

    client.post(url("plan_propose", customer), sent_once({
        "invoices": [i.pk for i in invoices], "instalment_count": "2", "first_due_on": "2025-08-15",
        "every_days": "30",
    }))

    assert PaymentPlan.objects.get(customer=customer).status == PlanStatus.ACTIVE


# --- Disputes -----------------------------------------------------------------------------------------


def test_a_dispute_is_routed_to_the_department_that_handles_its_reason(
    client, collector, customer, invoices, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    Department.objects.create(name="Logistics", email="logistics@example.test", reasons=["our_delivery"])
    Department.objects.create(name="Sales Ops", email="salesops@example.test", reasons=["price", "quantity"])
    set_rules(dispute_answer_days=7)
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("dispute_open", customer), {
            "invoice": invoices[0].pk, "reason": DisputeReason.PRICE,
            "description": "Quoted EUR 450, billed EUR 500", "department": "",
        })

    assert response.status_code == 302
    dispute = Dispute.objects.get(customer=customer)
    assert (dispute.department.name, dispute.routed_to, dispute.answer_due_on) == (
        "Sales Ops", "salesops@example.test", dt.date(2025, 8, 12)
    )
    pause = DunningPause.objects.get(dispute=dispute)
    assert (pause.invoice, pause.kind, pause.ends_on) == (invoices[0], PauseKind.DISPUTE, None)
    (message,) = smtp_server.messages
    assert message["To"] == "salesops@example.test"
    assert message["Subject"] == (
        "Dispute on invoice INV-1001 (Acme Tools): Price differs from the order or contract"
    )
    assert "Quoted EUR 450, billed EUR 500" in message.get_content()
    # Linked at the address the collector uses (no SITE_URL set): the department opens the account.
    assert f"Account: http://testserver/customers/{customer.pk}/" in message.get_content()
    event = TimelineEvent.objects.filter(kind=EventKind.DISPUTE).get()
    assert event.summary.endswith(
        "sent to Sales Ops <salesops@example.test> — Quoted EUR 450, billed EUR 500")
    assert linked_numbers(event) == ["INV-1001"]


def test_a_dispute_on_an_account_whose_name_has_a_line_break_is_routed_with_a_one_line_subject(
    client, collector, customer, invoices, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    """A line break in a Subject makes Django refuse the mail for good; a name
    kept with one from before the card refused them goes out on one line."""
    Department.objects.create(name="Sales Ops", email="salesops@example.test", reasons=["price"])
    customer.name = "Acme Tools\nBcc: someone@evil.test"
    customer.save(update_fields=["name"])
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("dispute_open", customer), {
            "invoice": invoices[0].pk, "reason": DisputeReason.PRICE, "description": "Quoted EUR 450",
        })

    mail = OutgoingMail.objects.get()
    assert (mail.status, mail.error) == (MailStatus.SENT, "")
    (message,) = smtp_server.messages
    assert message["Subject"] == (
        "Dispute on invoice INV-1001 (Acme Tools Bcc: someone@evil.test): Price differs from the order or "
        "contract"
    )
    assert message["Bcc"] is None and smtp_server.envelopes[0][1] == ["salesops@example.test"]


def test_a_dispute_on_an_account_with_a_long_name_opens_with_the_subject_cut_to_fit(
    client, collector, make_customer, make_invoice
):
    """The longest name and invoice number joined with the reason are longer
    than a mail's subject may be: the subject is cut, the dispute opens."""
    Department.objects.create(name="Sales Ops", email="salesops@example.test", reasons=["price"])
    customer = make_customer(name="N" * Customer._meta.get_field("name").max_length)
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                           number="INV-" + "9" * 36)
    client.force_login(collector)

    response = client.post(url("dispute_open", customer), {
        "invoice": invoice.pk, "reason": DisputeReason.PRICE, "description": "Quoted EUR 450",
    })

    assert response.status_code == 302
    assert Dispute.objects.filter(invoice=invoice).exists()
    subject = OutgoingMail.objects.get().subject
    limit = OutgoingMail._meta.get_field("subject").max_length
    assert (len(subject), subject[-1]) == (limit, "…")
    assert subject.startswith(f"Dispute on invoice {invoice.number} (NNN")


def test_a_dispute_with_no_team_for_its_reason_is_sent_nowhere(
    client, collector, customer, invoices, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("dispute_open", customer), {
            "invoice": invoices[0].pk, "reason": DisputeReason.OTHER, "description": "Unclear",
        })

    assert Dispute.objects.get().routed_to == ""
    assert smtp_server.messages == []


@pytest.mark.parametrize(
    ("outcome", "amount", "total", "open_amount", "credit_notes", "said"),
    [
        (DisputeOutcome.CREDIT_NOTE, "50.00", "500.00", "450.00", 1, "credit note CN-"),
        (DisputeOutcome.CORRECTED_INVOICE, "450.00", "450.00", "450.00", 0,
         "invoice corrected to EUR 450.00"),
        (DisputeOutcome.REJECTED, "", "500.00", "500.00", 0, "rejected, the invoice stands"),
    ],
    ids=["credit-note", "corrected-invoice", "rejected"],
)
def test_resolving_a_dispute_settles_the_invoice_and_lifts_its_pause(
    client, collector, customer, dispute, outcome, amount, total, open_amount, credit_notes, said
):
    since = last_event_id()
    client.force_login(collector)

    response = client.post(
        url("dispute_resolve", customer, dispute.pk),
        {"outcome": outcome, "amount": amount, "note": "Agreed with Sales"},
    )

    assert response.status_code == 302
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome, dispute.resolved_by) == (
        DisputeStatus.RESOLVED, outcome, collector
    )
    invoice = Invoice.objects.get(number="INV-1001")
    assert (invoice.total_amount, invoice.open_amount) == (Decimal(total), Decimal(open_amount))
    assert CreditNote.objects.filter(invoice=invoice).count() == credit_notes
    assert DunningPause.objects.get(dispute=dispute).lifted_by == collector
    (event,) = events_after(since)
    assert event.kind == EventKind.DISPUTE
    assert said in event.summary and event.summary.endswith("— Agreed with Sales")


def paid_in_full(customer, invoice) -> None:
    workspace.payment_record(customer=customer, amount=invoice.open_amount, currency=invoice.currency,
                             received_on=TODAY, allocations=[(invoice, invoice.open_amount)])


def offered_outcomes(html: str) -> list[str]:
    return re.findall(r'name="outcome" value="([a-z_]+)"', html)


def test_the_resolve_form_offers_paid_in_full_once_the_invoice_is_paid_and_no_credit(
    client, collector, customer, dispute
):
    resolve = url("dispute_resolve", customer, dispute.pk)
    client.force_login(collector)
    assert offered_outcomes(client.get(resolve).content.decode()) == [
        DisputeOutcome.CREDIT_NOTE, DisputeOutcome.CORRECTED_INVOICE, DisputeOutcome.REJECTED]

    paid_in_full(customer, dispute.invoice)
    html = client.get(resolve, headers=HTMX).content.decode()

    assert offered_outcomes(html) == [DisputeOutcome.PAID_IN_FULL, DisputeOutcome.REJECTED]
    assert "INV-1001 is paid in full: nothing is open to credit or correct." in html
    assert 'name="amount"' not in html


def test_a_dispute_on_an_invoice_credited_to_nothing_since_reads_credited_not_paid(
    client, collector, customer, dispute
):
    """A credit set against the invoice outside the dispute (recorded by the
    ERP, or by an earlier version): nothing is open, but nothing was paid."""
    invoice = dispute.invoice
    workspace._credit_note_issue(invoice, amount=invoice.open_amount, reason="Returned by the ERP", on=TODAY)
    resolve = url("dispute_resolve", customer, dispute.pk)
    client.force_login(collector)

    html = client.get(resolve, headers=HTMX).content.decode()

    assert offered_outcomes(html) == [DisputeOutcome.PAID_IN_FULL, DisputeOutcome.REJECTED]
    assert "Credited in full since: nothing left to settle" in html
    assert "INV-1001 is credited in full: nothing is open to credit or correct." in html
    assert "Paid in full" not in html and "paid in full" not in html

    since = last_event_id()
    client.post(resolve, {"outcome": DisputeOutcome.PAID_IN_FULL, "note": "Credited by the ERP"})
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == (DisputeStatus.RESOLVED, DisputeOutcome.PAID_IN_FULL)
    (event,) = events_after(since)
    assert event.summary == ("Dispute on INV-1001 resolved: credited in full, nothing left to settle "
                             "— Credited by the ERP")


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_dispute_on_an_invoice_paid_since_is_closed_as_paid_in_full(
    client, collector, customer, dispute, headers
):
    paid_in_full(customer, dispute.invoice)
    since = last_event_id()
    client.force_login(collector)

    response = client.post(url("dispute_resolve", customer, dispute.pk),
                           {"outcome": DisputeOutcome.PAID_IN_FULL, "note": "Paid; the price is settled"},
                           headers=headers)

    assert response.status_code == (200 if headers else 302)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome, dispute.resolved_by) == (
        DisputeStatus.RESOLVED, DisputeOutcome.PAID_IN_FULL, collector)
    (event,) = events_after(since)
    assert event.summary == ("Dispute on INV-1001 resolved: paid in full, nothing left to settle "
                             "— Paid; the price is settled")


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("outcome", [DisputeOutcome.CREDIT_NOTE, DisputeOutcome.CORRECTED_INVOICE])
def test_a_credit_on_an_invoice_paid_in_full_is_refused_with_a_clear_message_and_changes_nothing(
    client, collector, customer, dispute, outcome, headers
):
    paid_in_full(customer, dispute.invoice)
    before = state()
    client.force_login(collector)

    response = client.post(url("dispute_resolve", customer, dispute.pk),
                           {"outcome": outcome, "amount": "100.00", "note": "Goodwill"}, headers=headers)

    assert response.status_code == 422
    assert escape("Invoice INV-1001 is paid in full: nothing is open to credit or correct. "
                  "Close the dispute as paid in full, or as rejected.") in response.content.decode()
    assert state() == before


def test_a_dispute_on_an_invoice_still_open_is_not_closed_as_paid_in_full(
    client, collector, customer, dispute
):
    before = state()
    client.force_login(collector)

    response = client.post(url("dispute_resolve", customer, dispute.pk),
                           {"outcome": DisputeOutcome.PAID_IN_FULL, "note": "Paid"})

    assert response.status_code == 422
    said = escape("Invoice INV-1001 still has EUR 500.00 open: it is not paid in full.")
    assert said in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("paid", [False, True], ids=["open", "paid"])
def test_a_dispute_is_not_closed_as_cancelled_by_hand_and_a_crafted_post_changes_nothing(
    client, collector, customer, dispute, paid, headers
):
    """That outcome is the ERP's cancelling the invoice, which closes its
    dispute on its own; a person picking it would leave the invoice owed."""
    if paid:
        paid_in_full(customer, dispute.invoice)
    resolve = url("dispute_resolve", customer, dispute.pk)
    client.force_login(collector)
    assert DisputeOutcome.INVOICE_CANCELLED not in offered_outcomes(client.get(resolve).content.decode())
    form = DisputeResolveForm(invoice=dispute.invoice, actor=collector)
    assert DisputeOutcome.INVOICE_CANCELLED not in dict(form.fields["outcome"].choices)
    before = state()

    response = client.post(resolve, {"outcome": DisputeOutcome.INVOICE_CANCELLED, "note": "Cancelled"},
                           headers=headers)

    assert response.status_code == 422
    assert escape(DISPUTE_CANCELLED_BY_THE_ERP_ONLY) in response.content.decode()
    assert "Close the dispute as" not in response.content.decode()  # the refusal of a credit
    assert state() == before
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.OPEN


def test_the_service_refuses_to_close_a_dispute_as_cancelled_when_the_invoice_is_not(
    collector, customer, dispute
):
    before = state()

    with pytest.raises(ValidationError) as refused:
        workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.INVOICE_CANCELLED,
                                  note="Cancelled", on=TODAY)

    assert refused.value.message_dict == {"outcome": [DISPUTE_CANCELLED_BY_THE_ERP_ONLY]}
    assert DISPUTE_CANCELLED_BY_THE_ERP_ONLY == (
        "A dispute is closed as cancelled only when the ERP cancels its invoice, which closes the dispute "
        "on its own: choose another outcome.")
    assert state() == before


def test_a_resolved_dispute_cannot_be_resolved_again(client, collector, customer, dispute):
    client.force_login(collector)
    resolve = url("dispute_resolve", customer, dispute.pk)
    client.post(resolve, {"outcome": DisputeOutcome.REJECTED, "note": "No"})
    before = state()

    response = client.post(
        resolve, {"outcome": DisputeOutcome.CREDIT_NOTE, "amount": "100.00", "note": "Changed our mind"}
    )

    assert response.status_code == 422
    assert "This dispute is already resolved." in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_collector_cannot_credit_beyond_the_limit_but_a_manager_can(
    client, collector, manager, customer, dispute, htmx
):
    set_rules(credit_without_manager_amount=Decimal("100.00"))
    resolve = url("dispute_resolve", customer, dispute.pk)
    credit = {"outcome": DisputeOutcome.CREDIT_NOTE, "amount": "250.00", "note": "Goodwill"}
    headers = {"HX-Request": "true"} if htmx else {}
    client.force_login(collector)
    before = state()

    response = client.post(resolve, credit, headers=headers)

    assert response.status_code == 422
    assert escape("Taking EUR 250.00 off this invoice is a manager's decision") in response.content.decode()
    assert state() == before
    client.force_login(manager)
    assert client.post(resolve, credit, headers=headers).status_code == (200 if htmx else 302)
    assert CreditNote.objects.get(invoice=dispute.invoice).amount == Decimal("250.00")


def test_the_resolve_form_tells_a_collector_their_credit_limit_before_they_try(
    client, collector, manager, customer, dispute
):
    """A collector learns the limit from the form, not from a second refusal;
    a manager, who has none, is not told of one."""
    set_rules(credit_without_manager_amount=Decimal("100.00"))
    resolve = url("dispute_resolve", customer, dispute.pk)
    limit = escape("Collectors may take off up to EUR 100.00 per invoice, in EUR only; "
                   "more is a manager's decision.")
    client.force_login(collector)

    assert limit in " ".join(client.get(resolve, headers=HTMX).content.decode().split())
    client.force_login(manager)
    assert "Collectors may take off" not in client.get(resolve, headers=HTMX).content.decode()


# --- Pauses and exceptions -----------------------------------------------------------------------------


def test_the_forms_offer_no_second_dispute_and_say_the_pause_limit_up_front(
    client, collector, customer, invoices, dispute
):
    client.force_login(collector)

    disputing = client.get(url("dispute_open", customer)).content.decode()
    pausing = client.get(url("pause_set", customer)).content.decode()

    assert f'value="{dispute.invoice.pk}"' not in disputing
    assert f'value="{invoices[1].pk}"' in disputing
    assert "Up to 14 days from today; a longer pause goes to the managers as an exception request." in pausing


def test_a_pause_within_the_limit_holds_dunning(client, collector, customer, invoices):
    set_rules(max_pause_days=14)
    client.force_login(collector)

    client.post(url("pause_set", customer), {
        "invoice": invoices[0].pk, "ends_on": "2025-08-19", "reason": "Waiting for their bank loan",
    })

    pause = DunningPause.objects.get(customer=customer)
    assert (pause.kind, pause.invoice, pause.starts_on, pause.ends_on, pause.owner) == (
        PauseKind.MANUAL_HOLD, invoices[0], TODAY, dt.date(2025, 8, 19), collector
    )
    assert not ExceptionRequest.objects.exists()
    event = TimelineEvent.objects.get(customer=customer)
    assert (event.kind, event.summary) == (
        EventKind.PAUSE, "Dunning paused for invoice INV-1001 until 19 Aug 2025: Waiting for their bank loan"
    )


def test_a_pause_beyond_the_limit_becomes_an_exception_request(client, collector, customer, invoices):
    set_rules(max_pause_days=14)
    client.force_login(collector)

    response = client.post(url("pause_set", customer), {
        "invoice": "", "ends_on": "2025-08-20", "reason": "Waiting for their bank loan",
    })

    assert not DunningPause.objects.exists()
    asked = ExceptionRequest.objects.get(customer=customer)
    assert (asked.kind, asked.status, asked.pause_until, asked.requested_by) == (
        ExceptionKind.PAUSE, ExceptionStatus.PENDING, dt.date(2025, 8, 20), collector
    )
    assert "(pause of 15 days; collectors may pause 14)" in asked.reason
    assert TimelineEvent.objects.get(customer=customer).kind == EventKind.EXCEPTION
    assert "it went to the managers as an exception request" in client.get(response.url).content.decode()


def test_resuming_lifts_the_manual_holds_but_not_a_dispute(client, collector, customer, hold, dispute):
    since = last_event_id()
    client.force_login(collector)

    response = client.post(url("pause_resume", customer))

    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.lifted_by == collector and hold.lifted_at is not None
    assert DunningPause.objects.get(dispute=dispute).lifted_at is None
    (event,) = events_after(since)
    assert event.kind == EventKind.PAUSE
    assert event.summary == "Dunning resumed by carla: Manual hold on the account until 12 Aug 2025 lifted"


def test_resuming_names_what_it_lifts_as_every_page_names_a_pause(
    client, collector, manager, customer, invoices
):
    """The Dunning card says "Manual hold on INV-1001" and "Extended terms on
    the invoices issued by …"; the timeline said "manual hold on INV-1001" and
    "approved exception on the account" of the same two."""
    held = workspace.pause_set(customer=customer, actor=collector, invoice=invoices[0],
                               ends_on=TODAY + dt.timedelta(days=7), reason="CFO away", on=TODAY)
    asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                        pause_until=dt.date(2025, 9, 30), reason="Month's end", on=TODAY)
    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Fine", on=TODAY)
    terms = DunningPause.objects.get(exception=asked)
    client.force_login(manager)
    shown = " ".join(client.get(account(customer)).content.decode().split())
    since = last_event_id()

    client.post(url("pause_resume", customer))

    (event,) = events_after(since)
    assert event.summary == (
        f"Dunning resumed by {person_name(manager)}: Extended terms on the invoices issued by 5 Aug 2025 "
        "that fall due before their end until 30 Sep 2025 lifted; Manual hold on INV-1001 until 12 Aug 2025 "
        "lifted"
    )
    for pause in (held, terms):
        assert f"{pause.held_said} until {pause.ends_on:%-d %b %Y}" in shown


def resume_offered(client, user, customer) -> bool:
    client.force_login(user)
    page = client.get(account(customer))
    assert page.status_code == 200
    return url("pause_resume", customer) in page.content.decode()


def test_resume_is_offered_only_beside_a_pause_the_user_may_lift(
    client, collector, manager, viewer, customer, invoices, dispute
):
    """A dispute pauses its invoice but is not "resumed": no button for it."""
    assert not resume_offered(client, collector, customer)
    hold = workspace.pause_set(customer=customer, actor=collector, ends_on=TODAY + dt.timedelta(days=7),
                               reason="CFO away", on=TODAY)
    assert resume_offered(client, collector, customer)
    assert resume_offered(client, manager, customer)
    assert not resume_offered(client, viewer, customer)
    # An approved exception is a manager's to lift, and so is a hold longer
    # than collectors may set.
    DunningPause.objects.filter(pk=hold.pk).update(kind=PauseKind.EXCEPTION)
    assert not resume_offered(client, collector, customer)
    assert resume_offered(client, manager, customer)
    DunningPause.objects.filter(pk=hold.pk).update(kind=PauseKind.MANUAL_HOLD,
                                                   ends_on=TODAY + dt.timedelta(days=60))
    assert not resume_offered(client, collector, customer)
    assert resume_offered(client, manager, customer)


def test_resuming_with_nothing_to_resume_says_so_and_changes_nothing(client, collector, customer):
    before = state()
    client.force_login(collector)

    plain = client.post(url("pause_resume", customer))
    assert plain.status_code == 302 and plain.url == account(customer)
    assert "No manual pause is in force on this account." in client.get(plain.url).content.decode()
    htmx = client.post(url("pause_resume", customer), headers=HTMX)

    assert htmx.status_code == 422
    assert "No manual pause is in force on this account." in htmx.content.decode()
    assert state() == before


def test_a_refused_resume_with_htmx_leaves_the_action_panel_in_the_page(client, collector, customer):
    """The resume button swaps #action-panel (outerHTML). An answer made only of
    out-of-band messages swaps the panel for nothing, and every action link on
    the page (hx-target="#action-panel") stops working until a reload."""
    client.force_login(collector)

    response = client.post(url("pause_resume", customer), headers=HTMX)

    html = response.content.decode()
    assert 'id="action-panel"' in html or response.get("HX-Reswap") == "none"


def test_an_exception_request_waits_in_the_managers_queue(client, collector, manager, customer, invoices):
    client.force_login(collector)

    client.post(url("exception_request", customer), {
        "kind": ExceptionKind.PAUSE, "invoice": invoices[1].pk, "pause_until": "2025-10-01",
        "reason": "Bank loan pending",
    })

    asked = ExceptionRequest.objects.get(customer=customer)
    assert (asked.kind, asked.invoice, asked.pause_until, asked.status) == (
        ExceptionKind.PAUSE, invoices[1], dt.date(2025, 10, 1), ExceptionStatus.PENDING
    )
    event = TimelineEvent.objects.get(customer=customer)
    assert event.kind == EventKind.EXCEPTION and "until 1 Oct 2025" in event.summary
    assert linked_numbers(event) == ["INV-1002"]
    client.force_login(manager)
    assert reverse("collections:exception_decide", args=[asked.pk]) in client.get(
        reverse("collections:approvals")
    ).content.decode()


# --- Managers' decisions -------------------------------------------------------------------------------


@pytest.fixture
def waiting_plan(customer, collector, invoices) -> PaymentPlan:
    set_rules(plan_approval_above_amount=Decimal("1000.00"))
    return workspace.plan_propose(
        customer=customer, actor=collector, invoices=invoices, on=TODAY,
        instalments=[(dt.date(2025, 8, 15), Decimal("600.00")), (dt.date(2025, 9, 15), Decimal("600.00"))],
    )


@pytest.fixture
def pause_request(customer, collector) -> ExceptionRequest:
    return workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.PAUSE, reason="Bank loan pending",
        pause_until=dt.date(2025, 10, 1), on=TODAY,
    )


@pytest.fixture
def decisions(waiting_plan, pause_request) -> dict[str, str]:
    return {
        "plan_decide": reverse("collections:plan_decide", args=[waiting_plan.pk]),
        "exception_decide": reverse("collections:exception_decide", args=[pause_request.pk]),
    }



def decision_state() -> tuple:
    return state(), sorted(PaymentPlan.objects.values_list("pk", "status", "decided_by"))


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_the_decision_shows_what_is_asked_and_the_five_questions(
    client, manager, customer, decisions, headers
):
    client.force_login(manager)

    plan = " ".join(client.get(decisions["plan_decide"], headers=headers).content.decode().split())
    pause = " ".join(client.get(decisions["exception_decide"], headers=headers).content.decode().split())

    assert (f"Payment plan of <strong>EUR 1,200.00</strong> for {customer.name}, proposed by carla on "
            "5 Aug 2025, covering INV-1001, INV-1002.") in plan
    assert "15 Aug 2025" in plan and "15 Sep 2025" in plan and "EUR 600.00" in plan
    assert "this request covers EUR 1,200.00" in plan
    assert ("<strong>Pause dunning beyond the collector’s limit</strong> until 1 Oct 2025, "
            "for the whole account") in pause.replace("&#x27;", "’").replace("'", "’")
    assert "“Bank loan pending”" in pause
    for page in (plan, pause):
        assert all(question in page for question in (
            "How long have we served them?", "Did they miss payments before?", "How much money is involved?",
            "What is the relationship worth?", "Will they keep referring?"))


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize("rule", RULES_CROSSED)
def test_the_decision_on_a_plan_says_which_rule_made_it_wait(
    client, manager, collector, customer, invoices, rule, headers
):
    limits, first, why = RULES_CROSSED[rule]
    set_rules(**limits)
    first_on = dt.date.fromisoformat(first)
    plan = workspace.plan_propose(customer=customer, actor=collector, invoices=invoices, on=TODAY,
                                  instalments=[(first_on, Decimal("600.00")),
                                               (first_on + dt.timedelta(days=30), Decimal("600.00"))])
    client.force_login(manager)

    page = " ".join(client.get(reverse("collections:plan_decide", args=[plan.pk]), headers=headers)
                    .content.decode().split()).replace("&#x27;", "'")

    assert f"It waits for a manager because {why}." in page


def test_the_decision_on_a_plan_says_the_plans_in_force_made_it_wait(
    client, manager, collector, customer, invoices
):
    set_rules(plan_approval_above_amount=Decimal("1000.00"))
    workspace.plan_propose(customer=customer, actor=collector, invoices=invoices[:1], on=TODAY,
                           instalments=[(dt.date(2025, 8, 15), Decimal("250.00")),
                                        (dt.date(2025, 9, 15), Decimal("250.00"))])
    plan = workspace.plan_propose(customer=customer, actor=collector, invoices=invoices[1:], on=TODAY,
                                  instalments=[(dt.date(2025, 8, 15), Decimal("350.00")),
                                               (dt.date(2025, 9, 15), Decimal("350.00"))])
    client.force_login(manager)

    page = " ".join(client.get(reverse("collections:plan_decide", args=[plan.pk])).content.decode().split())

    assert ("It waits for a manager because with the EUR 500.00 of plans in force on the account it comes to "
            "EUR 1,200.00, above the collectors' limit of EUR 1,000.00.") in page.replace("&#x27;", "'")


def test_the_decision_on_a_plan_the_rules_now_allow_says_a_collector_could_agree_it(
    client, manager, customer, waiting_plan
):
    set_rules(plan_approval_above_amount=Decimal("5000.00"))
    client.force_login(manager)

    page = " ".join(client.get(reverse("collections:plan_decide", args=[waiting_plan.pk])).content.decode()
                    .split())

    assert "It waits for a manager because" not in page
    assert "Under the rules as they stand now a collector could agree it alone." in page


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize("name", DECISIONS)
def test_the_decision_warns_of_a_dispute_opened_since_the_request(
    client, manager, collector, customer, invoices, decisions, name, headers
):
    """The plan and the pause (for the whole account) cover INV-1001; the
    customer disputed it after the collector asked."""
    client.force_login(manager)
    warning = "A dispute was opened on INV-1001 on 5 Aug 2025, after this was asked for"
    assert warning not in client.get(decisions[name], headers=headers).content.decode()

    workspace.dispute_open(customer=customer, actor=collector, invoice=invoices[0],
                           reason=DisputeReason.PRICE, description="Quoted EUR 450, billed EUR 500", on=TODAY)

    page = " ".join(client.get(decisions[name], headers=headers).content.decode().split())
    assert f"{warning}: Price" in page.replace("&#x27;", "'")


def test_the_decision_does_not_warn_of_a_dispute_the_collector_knew_of(
    client, manager, collector, customer, invoices, dispute
):
    """Opened the same day, but before the request: the collector asked knowing of it."""
    asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.PAUSE,
                                        pause_until=dt.date(2025, 10, 1), reason="Bank loan", on=TODAY)
    client.force_login(manager)

    page = client.get(reverse("collections:exception_decide", args=[asked.pk])).content.decode()

    assert "A dispute was opened" not in page


def test_the_decision_on_an_invoice_does_not_warn_of_a_dispute_on_another(
    client, manager, collector, customer, invoices
):
    asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                        invoice=invoices[1], pause_until=dt.date(2025, 9, 30),
                                        reason="Month's end", on=TODAY)
    workspace.dispute_open(customer=customer, actor=collector, invoice=invoices[0],
                           reason=DisputeReason.PRICE, description="Quoted EUR 450, billed EUR 500", on=TODAY)
    client.force_login(manager)

    page = client.get(reverse("collections:exception_decide", args=[asked.pk])).content.decode()

    assert "A dispute was opened" not in page


def test_a_proposal_part_paid_since_shows_what_is_still_owed_on_the_decision_and_in_the_queue(
    client, manager, customer, invoices, waiting_plan
):
    workspace.payment_record(customer=customer, amount=Decimal("300.00"), currency="EUR", received_on=TODAY,
                             allocations=[(invoices[0], Decimal("300.00"))])
    client.force_login(manager)

    page = " ".join(client.get(reverse("collections:plan_decide", args=[waiting_plan.pk])).content.decode()
                    .split())
    queue = " ".join(client.get(reverse("collections:approvals")).content.decode().split())

    assert ("EUR 300.00 paid since it was proposed: EUR 900.00 still owed of EUR 1,200.00. Approving keeps "
            "the schedule; what came in counts towards the first instalments.") in page
    # Each instalment says what is still to pay of it.
    assert re.search(r"15 Aug 2025</td><td class=\"num\">EUR 600.00</td><td class=\"num\">EUR 300.00</td>",
                     page)
    assert re.search(r"15 Sep 2025</td><td class=\"num\">EUR 600.00</td><td class=\"num\">EUR 600.00</td>",
                     page)
    assert "this request covers EUR 900.00" in page
    assert (f"Payment plan of EUR 1,200.00 (EUR 900.00 still owed) for <a href=\"/customers/{customer.pk}/\">"
            in queue)


def test_a_proposal_paid_in_full_since_leaves_the_managers_queue(client, manager, customer, invoices,
                                                                  waiting_plan):
    decide = reverse("collections:plan_decide", args=[waiting_plan.pk])
    client.force_login(manager)
    assert decide in client.get(reverse("collections:approvals")).content.decode()

    workspace.payment_record(customer=customer, amount=Decimal("1200.00"), currency="EUR", received_on=TODAY,
                             allocations=[(invoices[0], Decimal("500.00")), (invoices[1], Decimal("700.00"))])

    assert decide not in client.get(reverse("collections:approvals")).content.decode()
    response = client.post(decide, {"decision": "approve", "note": "Fine"})
    assert response.status_code == 422
    assert ("This plan was withdrawn on 5 Aug 2025: payments received left nothing to pay."
            in response.content.decode())
    waiting_plan.refresh_from_db()
    assert waiting_plan.status == PlanStatus.CANCELLED


def test_a_proposal_its_proposer_withdrew_says_who_withdrew_it_and_why(client, manager, collector,
                                                                       waiting_plan):
    workspace.plan_withdraw(plan=waiting_plan, actor=collector, reason="The customer pays in full next week",
                            on=TODAY)
    client.force_login(manager)

    response = client.post(reverse("collections:plan_decide", args=[waiting_plan.pk]),
                           {"decision": "approve", "note": "Fine"})

    assert response.status_code == 422
    assert ("This plan was withdrawn by carla on 5 Aug 2025: The customer pays in full next week."
            in response.content.decode())


def test_the_decision_page_names_the_account_once_in_its_breadcrumb(client, manager, customer, decisions):
    client.force_login(manager)

    for name, what in (("plan_decide", "Payment plan"), ("exception_decide", "Exception")):
        page = client.get(decisions[name]).content.decode()
        crumb = " ".join(page.split('<p class="breadcrumb">')[1].split("</p>")[0].split())
        assert crumb == (f'<a href="/customers/{customer.pk}/">{customer.name}</a> '
                         f'<span aria-hidden="true">›</span> {what}')
        assert f"{what} for {customer.name}</h1>" in page


def test_the_decision_counts_what_is_overdue_in_other_currencies(
    client, manager, customer, make_invoice, pause_request
):
    make_invoice(customer, issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="50000.00",
                 currency="USD")
    client.force_login(manager)

    page = " ".join(client.get(
        reverse("collections:exception_decide", args=[pause_request.pk])
    ).content.decode().split())

    assert "USD 50,000.00 overdue" in page


def test_a_manager_approves_a_plan_and_its_invoices_leave_dunning(
    client, manager, waiting_plan, pause_request, decisions
):
    since = last_event_id()
    client.force_login(manager)

    response = client.post(decisions["plan_decide"], {"decision": "approve", "note": "Good payer for years"})

    assert response.status_code == 302
    # Back on the approvals, at the request still waiting.
    assert response.url == reverse("collections:approvals") + f"#exception-request-{pause_request.pk}"
    waiting_plan.refresh_from_db()
    assert (waiting_plan.status, waiting_plan.decided_by, waiting_plan.decision_note) == (
        PlanStatus.ACTIVE, manager, "Good payer for years"
    )
    assert DunningPause.objects.filter(plan=waiting_plan).count() == 2
    # The decision, then the schedule e-mailed to the customer (test_plan_agreed_mail).
    event, mailed = events_after(since)
    assert (event.kind, event.actor) == (EventKind.PAYMENT_PLAN, manager)
    assert event.summary == "Payment plan of EUR 1,200.00 approved by maria: Good payer for years"
    assert (mailed.kind, mailed.actor) == (EventKind.PAYMENT_PLAN, manager)
    assert "schedule" in mailed.summary


def test_a_manager_rejects_a_plan_from_the_account_page_with_htmx(
    client, manager, customer, waiting_plan, decisions
):
    client.force_login(manager)

    response = client.post(decisions["plan_decide"], {"decision": "reject", "note": "Too long"},
                           headers=HTMX_PANEL)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="action-panel"></div>')
    for part in ACCOUNT_PARTS:
        assert re.search(part, html), part
    assert "rejected by maria: Too long" in html
    waiting_plan.refresh_from_db()
    assert waiting_plan.status == PlanStatus.REJECTED
    assert not DunningPause.objects.filter(plan=waiting_plan).exists()


# --- Withdrawing and ending plans ----------------------------------------------------------------------


@pytest.fixture
def agreed_plan(customer, collector, invoices) -> PaymentPlan:
    """Agreed at once, within the collector's limit: EUR 700.00 on INV-1002 in two instalments."""
    set_rules(plan_approval_above_amount=Decimal("5000.00"))
    return workspace.plan_propose(
        customer=customer, actor=collector, invoices=[invoices[1]], on=TODAY,
        instalments=[(dt.date(2025, 8, 15), Decimal("350.00")), (dt.date(2025, 9, 15), Decimal("350.00"))],
    )


def plan_state(plan: PaymentPlan) -> tuple:
    plan.refresh_from_db()
    return plan.status, DunningPause.objects.filter(plan=plan, lifted_at__isnull=True).count()


def commitments_of(html: str) -> str:
    return html.split('<section id="commitments"')[1].split("</section>")[0]


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_plan_the_customer_stops_is_ended_from_the_account_page_and_dunning_goes_on(
    client, collector, customer, agreed_plan, headers
):
    client.force_login(collector)
    end = url("plan_withdraw", customer, agreed_plan.pk)
    assert f'href="{end}"' in commitments_of(client.get(account(customer)).content.decode())
    assert "Why does the plan end?" in client.get(end, headers=headers).content.decode()

    response = client.post(end, {"reason": "Pays by card instead"}, headers=headers)

    if headers:
        assert response.status_code == 200
        page = response.content.decode()
        assert all(re.search(part, page) for part in ACCOUNT_PARTS)
        assert end not in commitments_of(page)
    else:
        assert (response.status_code, response.url) == (302, account(customer) + "#timeline")
    assert plan_state(agreed_plan) == (PlanStatus.CANCELLED, 0)
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.PAYMENT_PLAN).latest("pk")
    assert event.summary == ("Payment plan of EUR 700.00 ended with 0 of 2 instalments paid (EUR 0.00): "
                             "Pays by card instead; dunning goes on where it stood")
    assert event.actor == collector


def test_a_proposal_is_withdrawn_only_with_a_reason_only_once_and_only_by_whoever_works_the_account(
    client, collector, other_collector, viewer, customer, waiting_plan
):
    withdraw = url("plan_withdraw", customer, waiting_plan.pk)
    client.force_login(collector)
    assert f'href="{withdraw}"' in commitments_of(client.get(account(customer)).content.decode())
    assert client.post(withdraw, {"reason": " "}).status_code == 422
    assert client.put(withdraw).status_code == 405
    for someone in (other_collector, viewer):
        client.force_login(someone)
        assert client.post(withdraw, {"reason": "Not mine to take back"}).status_code == 403
    assert Client(enforce_csrf_checks=True).post(withdraw, {"reason": "x"}).status_code in (302, 403)
    assert plan_state(waiting_plan) == (PlanStatus.AWAITING_APPROVAL, 0)

    client.force_login(collector)
    response = client.post(withdraw, {"reason": "The customer changed their mind"})
    assert response.status_code == 302
    assert plan_state(waiting_plan) == (PlanStatus.CANCELLED, 0)
    said = TimelineEvent.objects.count()

    refused = client.post(withdraw, {"reason": "Again"})
    assert refused.status_code == 422
    assert "This payment plan was withdrawn by carla on 5 Aug 2025: The customer changed their mind." in (
        refused.content.decode())
    offered = client.get(withdraw)
    assert offered.status_code == 404 and "withdrawn by carla on 5 Aug 2025" in offered.content.decode()
    assert TimelineEvent.objects.count() == said


def test_a_plan_a_manager_approved_is_ended_by_a_manager_not_by_the_collector(
    client, collector, manager, customer, waiting_plan
):
    workspace.plan_decide(plan=waiting_plan, manager=manager, approve=True, note="Good payer", on=TODAY)
    end = url("plan_withdraw", customer, waiting_plan.pk)
    client.force_login(collector)
    assert end not in commitments_of(client.get(account(customer)).content.decode())
    assert client.get(end).status_code == 403
    refused = client.post(end, {"reason": "Customer asked"})
    assert refused.status_code == 403
    assert plan_state(waiting_plan) == (PlanStatus.ACTIVE, 2)

    client.force_login(manager)
    assert f'href="{end}"' in commitments_of(client.get(account(customer)).content.decode())
    response = client.post(end, {"reason": "A new arrangement replaces it"}, headers=HTMX)
    assert response.status_code == 200
    assert plan_state(waiting_plan) == (PlanStatus.CANCELLED, 0)


def test_a_credit_note_on_a_planned_invoice_shows_at_once_in_the_plans_instalments(
    client, collector, customer, invoices, agreed_plan
):
    disputed = workspace.dispute_open(customer=customer, actor=collector, invoice=invoices[1], on=TODAY,
                                      reason=DisputeReason.PRICE, description="Quoted EUR 600")
    client.force_login(collector)

    response = client.post(url("dispute_resolve", customer, disputed.pk), {
        "outcome": DisputeOutcome.CREDIT_NOTE, "amount": "100.00", "note": "Contract price",
    }, headers=HTMX)

    assert response.status_code == 200
    plan = " ".join(commitments_of(response.content.decode()).split())
    assert "Payment plan: EUR 600.00" in plan
    assert "15 Aug 2025 · EUR 350.00 · Due" in plan and "15 Sep 2025 · EUR 250.00 · Due" in plan
    note = CreditNote.objects.get(invoice=invoices[1])
    assert (f"Payment plan reduced from EUR 700.00 to EUR 600.00 by credit note {note.number} on INV-1002: "
            "EUR 350.00 on 15 Aug, EUR 250.00 on 15 Sep") in response.content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
def test_a_manager_approves_a_long_pause_and_dunning_waits_until_its_end(
    client, manager, customer, pause_request, decisions, headers
):
    since = last_event_id()
    client.force_login(manager)

    response = client.post(
        decisions["exception_decide"], {"decision": "approve", "note": "Fine"}, headers=headers
    )

    assert response.status_code == (200 if headers else 302)
    pause_request.refresh_from_db()
    assert (pause_request.status, pause_request.decided_by) == (ExceptionStatus.APPROVED, manager)
    pause = DunningPause.objects.get(exception=pause_request)
    assert (pause.kind, pause.invoice, pause.starts_on, pause.ends_on) == (
        PauseKind.EXCEPTION, None, TODAY, dt.date(2025, 10, 1)
    )
    (event,) = events_after(since)
    assert event.kind == EventKind.EXCEPTION and "approved by maria: Fine" in event.summary


def test_a_rejected_exception_pauses_nothing(client, manager, pause_request, decisions):
    client.force_login(manager)

    client.post(decisions["exception_decide"], {"decision": "reject", "note": "Not this time"})

    pause_request.refresh_from_db()
    assert pause_request.status == ExceptionStatus.REJECTED
    assert not DunningPause.objects.exists()


@pytest.fixture
def charges(customer, invoices):
    """A letter listing INV-1001 charged a late fee of EUR 95.50 (EUR 5.50 of it
    paid since); interest of EUR 4.50 stands on INV-1002."""
    run = DunningRun.objects.create(run_date=TODAY)
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=TODAY)
    step = DunningStep.objects.get(policy__segment="systematic_late", position=3)
    letter = DunningAction.objects.create(run=run, cycle=cycle, customer=customer, step=step,
                                          status=ActionStatus.DONE, planned_on=TODAY, pay_by=TODAY)
    DunningActionInvoice.objects.create(action=letter, invoice=invoices[0], open_amount=Decimal("500.00"),
                                        currency="EUR")
    return [
        LateCharge.objects.create(customer=customer, action=letter, kind=ChargeKind.LATE_FEE, currency="EUR",
                                  amount=Decimal("95.50"), open_amount=Decimal("90.00"),
                                  basis="step 3 of the ladder"),
        LateCharge.objects.create(customer=customer, action=letter, invoice=invoices[1],
                                  kind=ChargeKind.INTEREST, currency="EUR", amount=Decimal("4.50"),
                                  open_amount=Decimal("4.50"), basis="EUR 700.00 × 8% × 30/365"),
    ]


@pytest.mark.parametrize(("on_invoice", "waived", "listed"), [
    (False, "EUR 94.50", ["Late fee", "Interest on INV-1002"]),
    (True, "EUR 90.00", ["Late fee"]),
], ids=["whole-account", "one-invoice"])
def test_a_fee_waiver_shows_what_approving_it_waives(
    client, manager, collector, customer, invoices, charges, on_invoice, waived, listed
):
    asked = workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.FEE_WAIVER, on=TODAY,
        invoice=invoices[0] if on_invoice else None, reason="Customer since 1998; waive the fee once",
    )
    client.force_login(manager)

    page = " ".join(re.sub(r"<[^>]+>", " ", client.get(
        reverse("collections:exception_decide", args=[asked.pk])
    ).content.decode()).split())
    queue = " ".join(re.sub(r"<[^>]+>", " ", client.get(
        reverse("collections:approvals")
    ).content.decode()).split())

    assert f"approving waives {waived}" in page
    for charge in ("Late fee", "Interest on INV-1002"):
        assert (charge in page) == (charge in listed)
    assert f"would waive {waived}" in queue


def test_a_fee_waiver_with_nothing_left_to_waive_says_so(client, manager, collector, customer, invoices,
                                                         charges):
    asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.FEE_WAIVER,
                                        on=TODAY, reason="Waive the fee once")
    # The customer paid the charges while the request waited.
    LateCharge.objects.update(open_amount=Decimal("0.00"))
    client.force_login(manager)

    page = client.get(reverse("collections:exception_decide", args=[asked.pk])).content.decode()

    assert "No late fee or interest is owed" in page


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(("on_invoice", "message"), [
    (False, "No late fee or interest is owed on this account: there is nothing to waive."),
    (True, "No late fee or interest is owed on INV-1001: there is nothing to waive."),
], ids=["whole-account", "one-invoice"])
def test_a_fee_waiver_is_refused_when_nothing_is_owed(
    client, collector, customer, invoices, charges, on_invoice, message, headers
):
    """A manager would be asked to approve a waiver that waives nothing, and
    the collector would tell the customer a fee was forgiven."""
    # Paid already: nothing is left standing.
    LateCharge.objects.update(open_amount=Decimal("0.00"))
    before = state()
    client.force_login(collector)

    response = client.post(url("exception_request", customer), {
        "kind": ExceptionKind.FEE_WAIVER, "invoice": invoices[0].pk if on_invoice else "", "pause_until": "",
        "reason": "Waive the fee once",
    }, headers=headers)

    assert response.status_code == 422
    assert message in " ".join(response.content.decode().split())
    assert state() == before


def test_a_fee_waiver_on_an_invoice_is_refused_when_only_another_invoice_owes_charges(
    client, collector, customer, invoices, charges
):
    # Only INV-1002's interest stands: the fee of the letter that listed INV-1001 was paid.
    LateCharge.objects.filter(kind=ChargeKind.LATE_FEE).update(open_amount=Decimal("0.00"))
    before = state()
    client.force_login(collector)

    refused = client.post(url("exception_request", customer), {
        "kind": ExceptionKind.FEE_WAIVER, "invoice": invoices[0].pk, "pause_until": "", "reason": "Once",
    })
    accepted = client.post(url("exception_request", customer), {
        "kind": ExceptionKind.FEE_WAIVER, "invoice": invoices[1].pk, "pause_until": "", "reason": "Once",
    })

    assert refused.status_code == 422
    assert "No late fee or interest is owed on INV-1001" in refused.content.decode()
    assert accepted.status_code == 302
    assert ExceptionRequest.objects.get().invoice == invoices[1]
    assert state() != before


@pytest.mark.parametrize("name", DECISIONS)
def test_a_manager_gets_the_decision_form_as_a_page_and_as_a_panel(client, manager, decisions, name):
    client.force_login(manager)

    page = client.get(decisions[name])
    panel = client.get(decisions[name], headers=HTMX_PANEL)

    assert page.status_code == panel.status_code == 200
    assert "<html" in page.content.decode()
    html = panel.content.decode()
    assert html.lstrip().startswith('<section id="action-panel"')
    assert f'action="{decisions[name]}?next=' in html and 'name="decision"' in html


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize("who", ["collector", "other_collector", "viewer"])
@pytest.mark.parametrize("name", DECISIONS)
def test_only_managers_decide(client, decisions, request, name, who, headers):
    before = decision_state()
    client.force_login(request.getfixturevalue(who))

    assert client.get(decisions[name], headers=headers).status_code == 403
    response = client.post(decisions[name], {"decision": "approve", "note": "Me"}, headers=headers)
    assert response.status_code == 403
    assert decision_state() == before


@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("name", DECISIONS)
def test_a_decision_answers_only_get_and_post(client, manager, decisions, name, method):
    before = decision_state()
    client.force_login(manager)

    assert getattr(client, method)(decisions[name]).status_code == 405
    assert decision_state() == before


@pytest.mark.parametrize("name", DECISIONS)
def test_a_decision_without_the_csrf_token_is_refused(manager, decisions, name):
    before = decision_state()
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    assert client.post(decisions[name], {"decision": "approve", "note": "Forged"}).status_code == 403
    assert decision_state() == before


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("data", "message"),
    [({"decision": "approve", "note": ""}, "This field is required."),
     ({"decision": "maybe", "note": "Hm"},
      "Select a valid choice. maybe is not one of the available choices.")],
    ids=["no-note", "no-decision"],
)
@pytest.mark.parametrize("name", DECISIONS)
def test_a_decision_needs_a_verdict_and_a_reason(client, manager, decisions, name, data, message, headers):
    before = decision_state()
    client.force_login(manager)

    response = client.post(decisions[name], data, headers=headers)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert decision_state() == before


@pytest.mark.parametrize(
    ("name", "message"),
    [("plan_decide", "This plan was already rejected by maria on 5 Aug 2025: No."),
     ("exception_decide", "This request was already rejected by maria on 5 Aug 2025: No.")],
)
def test_a_decision_is_taken_once(client, manager, decisions, name, message):
    client.force_login(manager)
    client.post(decisions[name], {"decision": "reject", "note": "No"})
    before = decision_state()

    response = client.post(decisions[name], {"decision": "approve", "note": "Changed my mind"})

    assert response.status_code == 422
    assert message in response.content.decode()
    assert decision_state() == before


# --- A form on a page of its own ------------------------------------------------------------------------


def submit_like_a_browser(client, page_url: str, data: dict):
    """Submit the form of a full page as a browser with htmx would: through
    htmx (with the headers htmx sends) if the form has hx-post, else plainly."""
    page = client.get(page_url).content.decode()
    panel = page[page.index('<section id="action-panel"'):]
    form = re.search(r'<form method="post" action="([^"]+)"([^>]*)>', panel)
    attributes = form.group(2)
    if "hx-post=" not in attributes:
        return client.post(form.group(1), data), False
    headers = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{page_url}"}
    if target := re.search(r'hx-target="#([\w-]+)"', attributes):
        headers["HX-Target"] = target.group(1)
    return client.post(form.group(1), data, headers=headers), True


def test_a_decision_taken_on_its_own_page_leads_back_to_the_approvals_queue(client, manager, decisions):
    """The approvals queue links to the decide page plainly. Its form then posts
    through htmx into #action-panel, and the answer is the account page's
    out-of-band parts: on the decide page the form just vanishes and the manager
    is left on an empty page instead of the queue."""
    client.force_login(manager)
    approvals = reverse("collections:approvals")

    response, through_htmx = submit_like_a_browser(
        client, decisions["plan_decide"], {"decision": "approve", "note": "Fine"}
    )

    assert PaymentPlan.objects.get().status == PlanStatus.ACTIVE
    if through_htmx:
        assert response.get("HX-Redirect") == approvals or approvals in response.get("HX-Location", "")
    else:
        assert response.status_code == 302 and response.url.partition("#")[0] == approvals


def test_an_action_taken_on_its_own_page_leads_to_the_account_page(client, collector, customer):
    """The action bar's links have an href: opened in a new tab, the form is a
    page of its own, and it must lead to the account page when saved."""
    client.force_login(collector)

    response, through_htmx = submit_like_a_browser(
        client, url("note_add", customer), {"text": "Called twice"}
    )

    assert TimelineEvent.objects.get(customer=customer).summary == "Called twice"
    if through_htmx:
        redirect_to = response.get("HX-Redirect", "") or response.get("HX-Location", "")
        assert account(customer) in redirect_to
    else:
        assert response.status_code == 302 and response.url.startswith(account(customer))


def test_a_pause_of_every_open_invoice_says_when_it_ends_and_when_dunning_starts_again(
    client, collector, customer, make_contact, invoices
):
    make_contact(customer, is_primary_billing=True)
    client.force_login(collector)
    client.post(url("pause_set", customer), {"ends_on": "2025-08-11", "reason": "Owner on holiday"})
    assert DunningPause.objects.get(customer=customer).invoice is None

    coming = dunning.next_step(customer, on=TODAY)
    after = dunning.next_step(customer, on=dt.date(2025, 8, 12))

    assert after.step is not None and after.due_on >= dt.date(2025, 8, 12)
    assert (coming.step, coming.due_on) == (after.step, after.due_on)
    assert "the earliest hold ends on 11 Aug 2025" in coming.note
    page = client.get(account(customer)).content.decode()
    assert f"on {after.due_on:%-d %b %Y}" in page
    assert "the earliest hold ends on 11 Aug 2025" in page
