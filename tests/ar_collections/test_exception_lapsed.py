"""A pause or extended terms asked until a day that has passed before any
manager decided it: deciding it now would mean nothing. The approvals and the
account page list it as lapsed, with what was asked and when, and offer no
decision; a form opened before and posted now is refused and changes nothing."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    DunningPause,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    WorkItem,
    WorkKind,
)
from ar_collections.tasks import check_commitments
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
HTMX_PANEL = {"HX-Request": "true", "HX-Target": "action-panel"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def lapsed(customer, collector) -> ExceptionRequest:
    """Asked last week for a pause that ended yesterday; never decided."""
    return workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.PAUSE, reason="Bank loan pending",
        pause_until=dt.date(2025, 8, 4), on=dt.date(2025, 7, 28),
    )


@pytest.fixture
def current(make_customer, collector) -> ExceptionRequest:
    return workspace.exception_request(
        customer=make_customer(name="Beta Ltd"), actor=collector, kind=ExceptionKind.PAUSE,
        reason="Moving offices", pause_until=dt.date(2025, 9, 1), on=TODAY,
    )


def decide_url(request: ExceptionRequest) -> str:
    return reverse("collections:exception_decide", args=[request.pk])


def text_of(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def state() -> tuple:
    return (
        sorted(ExceptionRequest.objects.values_list("pk", "status", "decided_by", "granted_until",
                                                    "decision_note")),
        DunningPause.objects.count(), TimelineEvent.objects.count(), WorkItem.objects.count(),
    )


def test_the_approvals_list_a_lapsed_request_as_lapsed_without_a_decision(client, manager, lapsed, current):
    client.force_login(manager)

    response = client.get(reverse("collections:approvals"))

    html = response.content.decode()
    lapsed_item = re.search(rf'<li id="exception-request-{lapsed.pk}".*?</li>', html, re.S).group(0)
    current_item = re.search(rf'<li id="exception-request-{current.pk}".*?</li>', html, re.S).group(0)
    assert decide_url(lapsed) not in lapsed_item and "Decide" not in lapsed_item
    assert decide_url(current) in current_item
    said = " ".join(re.sub(r"<[^>]+>", "", lapsed_item).split()).replace("&#x27;", "'")
    assert ("Pause dunning beyond the collector's limit until 4 Aug 2025 for Acme Tools, asked by carla on "
            "28 Jul 2025: Bank loan pending — lapsed undecided: that day has passed.") in said


def test_the_account_page_shows_a_lapsed_request_without_a_decision(client, manager, customer, lapsed):
    client.force_login(manager)

    response = client.get(reverse("customers:detail", args=[customer.pk]))

    assert "Exception asked: Pause dunning beyond the collector" in text_of(response)
    assert "until 4 Aug 2025 (asked on 28 Jul 2025, lapsed undecided on 5 Aug 2025)" in text_of(response)
    assert decide_url(lapsed) not in response.content.decode()


@pytest.mark.parametrize("recorded", [False, True], ids=["not-yet-recorded", "recorded"])
def test_the_account_page_shows_a_lapsed_request_with_the_day_it_lapsed_and_a_way_to_ask_again(
    client, collector, customer, lapsed, recorded
):
    """Once the daily check recorded it as lapsed, it vanished from the
    account page: the collector could not tell it lapsed from never asked."""
    if recorded:
        workspace.exceptions_lapse(on=TODAY)
    client.force_login(collector)

    response = client.get(reverse("customers:detail", args=[customer.pk]))

    html = response.content.decode()
    item = re.search(r'<p class="commitment">Exception asked:.*?</p>', html, re.S).group(0)
    said = " ".join(re.sub(r"<[^>]+>", " ", item).split()).replace("&#x27;", "'")
    assert ("Exception asked: Pause dunning beyond the collector's limit until 4 Aug 2025 (asked on 28 Jul "
            "2025, lapsed undecided on 5 Aug 2025) Ask again") in said
    ask_again = reverse("collections:exception_request", args=[customer.pk]) + "?kind=pause"
    assert f'href="{ask_again}"' in item and f'hx-get="{ask_again}"' in item
    assert decide_url(lapsed) not in html


@pytest.mark.parametrize("recorded", [False, True], ids=["not-yet-recorded", "recorded"])
def test_the_account_page_shows_only_the_requests_that_lapsed_in_the_last_30_days(
    client, collector, customer, lapsed, recorded
):
    # Asked before the other, when nothing else waited (as exception_request leaves it).
    old = ExceptionRequest.objects.create(
        customer=customer, kind=ExceptionKind.PAUSE, reason="Long ago", requested_by=collector,
        requested_on=dt.date(2025, 6, 20), pause_until=dt.date(2025, 7, 5),
    )
    if recorded:
        workspace.exceptions_lapse(on=TODAY)
    client.force_login(collector)

    response = client.get(reverse("customers:detail", args=[customer.pk]))

    listed = [asked.pk for asked in response.context["exceptions_asked"]]
    assert lapsed.pk in listed and old.pk not in listed


def test_a_viewer_sees_a_lapsed_request_but_no_way_to_ask_again(client, viewer, customer, lapsed):
    workspace.exceptions_lapse(on=TODAY)
    client.force_login(viewer)

    response = client.get(reverse("customers:detail", args=[customer.pk]))

    assert "lapsed undecided on 5 Aug 2025" in text_of(response)
    assert reverse("collections:exception_request", args=[customer.pk]) not in response.content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_deciding_a_lapsed_request_from_a_form_opened_before_is_refused(
    client, manager, lapsed, decision, headers
):
    before = state()
    client.force_login(manager)

    response = client.post(decide_url(lapsed), {"decision": decision, "note": "Fine"}, headers=headers)

    assert response.status_code == 422
    assert ("This request asked until 4 Aug 2025, which passed before anyone decided it: it has lapsed, and "
            "nothing was recorded. If the customer still needs it, the collector asks again."
            ) in text_of(response)
    assert state() == before


def test_a_lapsed_request_does_not_stop_the_collector_asking_again(customer, collector, lapsed):
    again = workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.PAUSE, reason="Loan still pending",
        pause_until=dt.date(2025, 9, 1), on=TODAY,
    )

    waiting = ExceptionRequest.objects.filter(status=ExceptionStatus.PENDING).order_by("pk")
    assert list(waiting) == [lapsed, again]


def test_the_daily_check_records_a_lapsed_request_and_tells_the_collector_who_asked(
    customer, collector, lapsed, current
):
    """Left pending, it waited for ever for a decision nobody may take, and
    the collector never heard that nothing was granted."""
    counts = check_commitments(on=TODAY.isoformat())

    lapsed.refresh_from_db()
    current.refresh_from_db()
    assert counts["exceptions_lapsed"] == 1
    assert (lapsed.status, lapsed.decided_by, lapsed.granted_until) == (ExceptionStatus.LAPSED, None, None)
    assert current.status == ExceptionStatus.PENDING
    said = ("Exception (pause dunning beyond the collector's limit until 4 Aug 2025) lapsed undecided: the "
            "day asked passed before a manager decided it; nothing was granted")
    entry = TimelineEvent.objects.for_subject(lapsed).latest("pk")
    assert (entry.customer, entry.kind, entry.summary) == (customer, EventKind.EXCEPTION, said)
    assert entry.details["after"] == {"status": ExceptionStatus.LAPSED}
    [item] = WorkItem.objects.filter(kind=WorkKind.DECIDED)
    assert (item.assignee, item.customer, item.due_on) == (collector, customer, TODAY)
    assert item.title == f"{said} — if the customer still needs it, ask again"

    before = state()
    assert check_commitments(on=TODAY.isoformat())["exceptions_lapsed"] == 0
    assert state() == before


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
def test_deciding_a_request_recorded_as_lapsed_is_refused(client, manager, lapsed, headers):
    workspace.exceptions_lapse(on=TODAY)
    before = state()
    client.force_login(manager)

    response = client.post(decide_url(lapsed), {"decision": "approve", "note": "Fine"}, headers=headers)

    assert response.status_code == 422
    assert "passed before anyone decided it: it has lapsed, and nothing was recorded" in text_of(response)
    assert state() == before


@pytest.mark.parametrize("recorded", [False, True], ids=["not-yet-recorded", "recorded"])
def test_the_approvals_list_only_the_requests_that_lapsed_in_the_last_30_days(
    client, manager, make_customer, collector, lapsed, recorded
):
    old = workspace.exception_request(
        customer=make_customer(name="Gamma Ltd"), actor=collector, kind=ExceptionKind.PAUSE,
        reason="Long ago", pause_until=dt.date(2025, 7, 5), on=dt.date(2025, 6, 20),
    )
    if recorded:
        workspace.exceptions_lapse(on=TODAY)
        assert ExceptionRequest.objects.get(pk=old.pk).status == ExceptionStatus.LAPSED
    client.force_login(manager)

    html = client.get(reverse("collections:approvals")).content.decode()

    item = re.search(rf'<li id="exception-request-{lapsed.pk}".*?</li>', html, re.S).group(0)
    assert "lapsed undecided: that day has passed." in item and decide_url(lapsed) not in item
    assert f'id="exception-request-{old.pk}"' not in html
