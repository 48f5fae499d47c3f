"""A manager approves a shorter pause than the collector asked for: an
earlier end, today at the earliest, the asked day at the latest. The
exception and the timeline say what was asked and what was granted."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    CollectionRules,
    DunningPause,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    PauseKind,
    PaymentPlan,
    WorkItem,
    WorkKind,
)
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
ASKED = dt.date(2025, 10, 1)
HTMX_PANEL = {"HX-Request": "true", "HX-Target": "action-panel"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def asked(customer, collector) -> ExceptionRequest:
    return workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.PAUSE, reason="Bank loan pending",
        pause_until=ASKED, on=TODAY,
    )


def decide_url(request: ExceptionRequest) -> str:
    return reverse("collections:exception_decide", args=[request.pk])


def state() -> tuple:
    """Everything deciding may change."""
    return (
        sorted(ExceptionRequest.objects.values_list("pk", "status", "decided_by", "granted_until",
                                                    "decision_note")),
        sorted(DunningPause.objects.values_list("pk", "ends_on")),
        TimelineEvent.objects.count(),
        WorkItem.objects.count(),
    )


def text_of(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


# --- Granting less ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
def test_a_manager_approves_a_shorter_pause_and_dunning_waits_only_until_its_end(
    client, manager, collector, customer, asked, headers
):
    client.force_login(manager)

    response = client.post(decide_url(asked), {"decision": "approve", "until": "2025-09-10",
                                               "note": "Six weeks is enough"}, headers=headers)

    assert response.status_code == (200 if headers else 302)
    asked.refresh_from_db()
    assert (asked.status, asked.decided_by, asked.pause_until, asked.granted_until) == (
        ExceptionStatus.APPROVED, manager, ASKED, dt.date(2025, 9, 10)
    )
    pause = DunningPause.objects.get(exception=asked)
    assert (pause.kind, pause.starts_on, pause.ends_on) == (PauseKind.EXCEPTION, TODAY, dt.date(2025, 9, 10))
    event = TimelineEvent.objects.filter(kind=EventKind.EXCEPTION).latest("pk")
    assert event.actor == manager
    assert event.summary == (
        "Exception (pause dunning beyond the collector's limit) approved by maria until 10 Sep 2025, "
        "shorter than the 1 Oct 2025 asked: Six weeks is enough"
    )
    assert event.details["before"] == {"status": "pending", "until": "2025-10-01"}
    assert event.details["after"] == {"status": "approved", "until": "2025-09-10"}
    # The collector who asked tells the customer what was granted, not what was asked.
    told = WorkItem.objects.get(kind=WorkKind.DECIDED, assignee=collector)
    assert "until 10 Sep 2025, shorter than the 1 Oct 2025 asked" in told.title


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
def test_the_manager_is_told_until_when_a_shorter_pause_holds(client, manager, customer, asked, headers):
    client.force_login(manager)

    response = client.post(decide_url(asked), {"decision": "approve", "until": "2025-09-10",
                                               "note": "Six weeks is enough"}, headers=headers)

    told = text_of(response if headers else client.get(response.url))
    assert (f"Exception for {customer.name}: approved until 10 Sep 2025, shorter than the 1 Oct 2025 "
            "asked.") in told


def test_the_manager_is_told_until_when_a_pause_granted_as_asked_holds(client, manager, customer, asked):
    client.force_login(manager)

    response = client.post(decide_url(asked), {"decision": "approve", "note": "Fine"})

    told = text_of(client.get(response.url))
    assert f"Exception for {customer.name}: approved until 1 Oct 2025." in told
    assert "shorter" not in told


def test_a_pause_granted_as_asked_records_the_asked_end_as_granted(client, manager, asked):
    client.force_login(manager)

    client.post(decide_url(asked), {"decision": "approve", "until": "2025-10-01", "note": "Fine"})

    asked.refresh_from_db()
    assert asked.granted_until == ASKED
    assert DunningPause.objects.get(exception=asked).ends_on == ASKED
    event = TimelineEvent.objects.filter(kind=EventKind.EXCEPTION).latest("pk")
    assert event.summary == "Exception (pause dunning beyond the collector's limit) approved by maria: Fine"
    assert event.details["after"] == {"status": "approved", "until": "2025-10-01"}


def test_a_pause_approved_without_an_end_given_is_granted_as_asked(client, manager, asked):
    client.force_login(manager)

    client.post(decide_url(asked), {"decision": "approve", "note": "Fine"})

    asked.refresh_from_db()
    assert (asked.status, asked.granted_until) == (ExceptionStatus.APPROVED, ASKED)


def test_a_pause_may_be_granted_until_today(client, manager, asked):
    client.force_login(manager)

    client.post(decide_url(asked), {"decision": "approve", "until": "2025-08-05", "note": "Today only"})

    asked.refresh_from_db()
    assert asked.granted_until == TODAY
    assert DunningPause.objects.get(exception=asked).ends_on == TODAY


def test_extended_terms_may_be_granted_to_an_earlier_day_too(
    client, manager, collector, customer, make_invoice
):
    make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1))  # overdue: they cover it
    terms = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                        reason="Month's end", pause_until=ASKED, on=TODAY)
    client.force_login(manager)

    client.post(decide_url(terms), {"decision": "approve", "until": "2025-09-01", "note": "A month"})

    terms.refresh_from_db()
    assert terms.granted_until == dt.date(2025, 9, 1)


def test_a_rejected_pause_grants_nothing(client, manager, asked):
    client.force_login(manager)

    client.post(decide_url(asked), {"decision": "reject", "until": "2025-10-01", "note": "Not now"})

    asked.refresh_from_db()
    assert (asked.status, asked.granted_until) == (ExceptionStatus.REJECTED, None)
    event = TimelineEvent.objects.filter(kind=EventKind.EXCEPTION).latest("pk")
    assert event.details["after"] == {"status": "rejected", "until": None}


# --- The form -----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
def test_the_decision_on_a_pause_offers_its_end_set_to_the_asked_day(client, manager, asked, headers):
    client.force_login(manager)

    response = client.get(decide_url(asked), headers=headers)

    page = response.content.decode()
    assert re.search(r'<input type="date" name="until" value="2025-10-01"[^>]*>', page)
    assert ("Asked until 1 Oct 2025. To approve a shorter pause, choose an earlier day (today, 5 Aug 2025, "
            "at the earliest).") in text_of(response)


def test_a_decision_on_a_request_without_an_end_offers_no_end(client, manager, collector, customer):
    other = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.OTHER,
                                        reason="Send statements quarterly", on=TODAY)
    client.force_login(manager)

    assert 'name="until"' not in client.get(decide_url(other)).content.decode()


def test_plans_keep_approve_or_reject(client, manager, collector, customer, make_invoice):
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="9000.00")
    CollectionRules.current()
    CollectionRules.objects.update(plan_approval_above_amount="1000.00")
    plan = workspace.plan_propose(customer=customer, actor=collector, invoices=[invoice], on=TODAY,
                                  instalments=[(dt.date(2025, 9, 1), invoice.open_amount / 2),
                                               (dt.date(2025, 10, 1), invoice.open_amount / 2)])
    assert plan.status == "awaiting_approval"
    client.force_login(manager)

    page = client.get(reverse("collections:plan_decide", args=[plan.pk])).content.decode()

    assert 'name="until"' not in page
    assert 'value="approve"' in page and 'value="reject"' in page
    assert PaymentPlan.objects.count() == 1


# --- Bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize(("data", "message"), [
    ({"decision": "approve", "until": "2025-10-02"},
     "Asked until 1 Oct 2025: a manager may grant an earlier end, not a later one."),
    ({"decision": "approve", "until": "2025-08-04"},
     "A pause granted ends today (5 Aug 2025) at the earliest."),
    ({"decision": "reject", "until": "2025-09-10"},
     "A rejection grants nothing: leave the end as asked, or approve the shorter pause."),
    ({"decision": "approve", "until": "next week"}, "Enter a valid date."),
], ids=["after-the-asked-day", "before-today", "rejected-with-an-end", "not-a-date"])
def test_an_end_that_cannot_be_granted_is_refused_and_nothing_changes(
    client, manager, asked, headers, data, message
):
    before = state()
    client.force_login(manager)

    response = client.post(decide_url(asked), {**data, "note": "Shorter"}, headers=headers)

    assert response.status_code == 422
    assert message in text_of(response)
    assert state() == before


@pytest.mark.parametrize(("kind", "until", "message"), [
    (ExceptionKind.PAUSE, dt.date(2025, 10, 2), "a manager may grant an earlier end, not a later one"),
    (ExceptionKind.PAUSE, dt.date(2025, 8, 4), "ends today (5 Aug 2025) at the earliest"),
    (ExceptionKind.OTHER, dt.date(2025, 9, 1), "This request asks for nothing until a date"),
])
def test_the_service_refuses_an_end_it_cannot_grant(customer, collector, manager, kind, until, message):
    request = workspace.exception_request(customer=customer, actor=collector, kind=kind, reason="Please",
                                          pause_until=ASKED, on=TODAY)
    before = state()

    with pytest.raises(ValidationError) as refused:
        workspace.exception_decide(request=request, manager=manager, approve=True, note="Shorter", on=TODAY,
                                   until=until)

    assert message in " ".join(refused.value.messages)
    assert state() == before


# --- What may be asked ---------------------------------------------------------------------


def request_url(customer) -> str:
    return reverse("collections:exception_request", args=[customer.pk])


@pytest.fixture
def not_yet_due(customer, make_invoice):
    """INV-2001, falling due on 31 Aug 2025."""
    return make_invoice(customer, issued=dt.date(2025, 8, 1), due=dt.date(2025, 8, 31), amount="800.00",
                        number="INV-2001")


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize(("kind", "until", "message"), [
    (ExceptionKind.PAUSE, "2030-12-01",
     "1 Dec 2030 is more than a year from today: an exception holds dunning for a year at most (check the "
     "year)."),
    (ExceptionKind.EXTENDED_TERMS, "2025-08-20",
     "INV-2001 falls due on 31 Aug 2025: extended terms give a later day to pay by, not an earlier one."),
    (ExceptionKind.EXTENDED_TERMS, "2025-08-31",
     "INV-2001 falls due on 31 Aug 2025: extended terms give a later day to pay by, not an earlier one."),
], ids=["pause-years-ahead", "terms-before-the-due-date", "terms-on-the-due-date"])
def test_a_request_for_a_day_that_makes_no_sense_is_refused_and_nothing_changes(
    client, collector, customer, not_yet_due, headers, kind, until, message
):
    before = state()
    client.force_login(collector)

    data = {"kind": kind, "invoice": not_yet_due.pk, "pause_until": until, "reason": "Asked by the customer"}

    response = client.post(request_url(customer), data, headers=headers)

    assert response.status_code == 422
    assert message in text_of(response)
    assert state() == before


def test_extended_terms_after_the_invoice_s_due_date_are_asked(customer, collector, not_yet_due):
    request = workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS, invoice=not_yet_due,
        pause_until=dt.date(2025, 9, 30), reason="Month's end", on=TODAY,
    )

    assert request.pause_until == dt.date(2025, 9, 30)


def test_the_decision_on_extended_terms_speaks_of_a_day_to_pay_by_not_a_pause(
    client, manager, collector, customer, not_yet_due
):
    terms = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                        invoice=not_yet_due, pause_until=dt.date(2025, 9, 30),
                                        reason="Month's end", on=TODAY)
    client.force_login(manager)

    page = text_of(client.get(decide_url(terms)))

    assert "pause" not in page.lower().split("grant until")[1].split("note")[0]
    assert ("Asked until 30 Sep 2025. To give less time to pay, choose an earlier day (1 Sep 2025, the day "
            "after INV-2001 falls due, at the earliest).") in page


def test_extended_terms_are_not_granted_until_a_day_the_invoice_is_due_anyway(
    customer, collector, manager, not_yet_due
):
    terms = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                        invoice=not_yet_due, pause_until=dt.date(2025, 9, 30),
                                        reason="Month's end", on=TODAY)
    before = state()

    with pytest.raises(ValidationError) as refused:
        workspace.exception_decide(request=terms, manager=manager, approve=True, note="Less", on=TODAY,
                                   until=dt.date(2025, 8, 20))

    assert ("INV-2001 falls due on 31 Aug 2025: extended terms are granted until 1 Sep 2025 at the earliest."
            in " ".join(refused.value.messages))
    assert state() == before


# --- Who may --------------------------------------------------------------------------------


@pytest.mark.parametrize("intruder", ["collector", "viewer"])
@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
def test_only_managers_grant_a_shorter_pause(client, request, asked, intruder, headers):
    before = state()
    client.force_login(request.getfixturevalue(intruder))

    response = client.post(decide_url(asked), {"decision": "approve", "until": "2025-09-10", "note": "Mine"},
                           headers=headers)

    assert response.status_code == 403
    assert state() == before


def test_a_request_that_does_not_exist_is_not_found(client, manager, asked):
    client.force_login(manager)

    response = client.post(reverse("collections:exception_decide", args=[asked.pk + 1]),
                           {"decision": "approve", "until": "2025-09-10", "note": "Shorter"})

    assert response.status_code == 404


def test_deciding_takes_a_get_or_a_post_only(client, manager, asked):
    before = state()
    client.force_login(manager)

    response = client.put(decide_url(asked), "decision=approve&until=2025-09-10&note=Shorter",
                          content_type="application/x-www-form-urlencoded")

    assert response.status_code == 405
    assert state() == before


def test_anonymous_visitors_are_sent_to_log_in(client, asked):
    before = state()

    response = client.post(decide_url(asked), {"decision": "approve", "until": "2025-09-10", "note": "x"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert state() == before
