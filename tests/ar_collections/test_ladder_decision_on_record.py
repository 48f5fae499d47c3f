"""A finished ladder's item ticked off with a decision that claims something
was agreed, asked or proposed: the claim must be true. "Proposed a write-off"
puts the proposal, with the amount, before a manager; "Called and agreed a
plan or promise" and "Asked a manager for an exception" need one on record
since the ladder finished, or are refused with a link to the form."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from ar_collections import worklist, workspace
from ar_collections.models import (
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import Segment, TimelineEvent

from .conftest import frozen
from .test_ladder_finished import ON, ladder_taken

pytestmark = pytest.mark.usefixtures("default_ladders", "on_day")

HTMX = {"HX-Request": "true"}


@pytest.fixture
def on_day():
    with frozen(ON):
        yield


@pytest.fixture
def account(make_account):
    return make_account(Segment.DISTRESSED, name="Ashford Civil Engineering")


@pytest.fixture
def item(account, collector) -> WorkItem:
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    return WorkItem.objects.get(customer=account, kind=WorkKind.LADDER_ENDED)


def done(client, item, decision: str, headers=None):
    return client.post(reverse("collections:work_item_change", args=[item.pk, "done"]),
                       {"decision": decision, "note": "Their owner says the business is closing."},
                       headers=headers or {})


def text_of(response) -> str:
    return " ".join(response.content.decode().split())


def test_proposing_a_write_off_puts_it_before_a_manager_with_the_amount(client, collector, manager, account,
                                                                        item):
    client.force_login(collector)

    response = done(client, item, "write_off")

    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    proposed = ExceptionRequest.objects.get(customer=account)
    assert (proposed.status, proposed.requested_by) == (ExceptionStatus.PENDING, collector)
    assert proposed.reason.startswith("Write off EUR 1,200.00 overdue")
    assert "Their owner says the business is closing." in proposed.reason
    # The manager finds it in the approvals queue.
    client.force_login(manager)
    assert "Write off EUR 1,200.00 overdue" in text_of(client.get(reverse("collections:approvals")))


@pytest.mark.parametrize(("decision", "message", "form"), [
    ("plan", "No promise or plan recorded since the ladder finished: record it first.", "promise_record"),
    ("exception", "No exception asked of a manager since the ladder finished: ask for it first.",
     "exception_request"),
])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_plan_or_exception_not_on_record_is_refused_with_a_link_to_its_form(
    client, collector, account, item, decision, message, form, headers
):
    client.force_login(collector)
    events_before = TimelineEvent.objects.count()

    response = done(client, item, decision, headers)

    assert response.status_code == 422
    assert message in text_of(response)
    assert f'href="{reverse(f"collections:{form}", args=[account.pk])}"' in response.content.decode()
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert TimelineEvent.objects.count() == events_before
    assert not ExceptionRequest.objects.exists()


def test_a_promise_recorded_since_the_ladder_finished_lets_the_plan_decision_through(
    client, collector, account, item
):
    first = account.invoices.order_by("pk").first()
    workspace.promise_record(customer=account, actor=collector, amount=first.open_amount, on=ON,
                             promised_on=ON + dt.timedelta(days=7), invoices=[first])
    client.force_login(collector)

    response = done(client, item, "plan")

    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE


def test_an_exception_asked_since_the_ladder_finished_lets_the_exception_decision_through(
    client, collector, account, item
):
    workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE, on=ON,
                                pause_until=ON + dt.timedelta(days=30), reason="Owner in hospital")
    client.force_login(collector)

    response = done(client, item, "exception")

    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert ExceptionRequest.objects.count() == 1  # no second request made


def test_an_exception_asked_before_the_ladder_finished_does_not_count(client, collector, account, item):
    asked = workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.OTHER, on=ON,
                                        reason="Long ago")
    ExceptionRequest.objects.filter(pk=asked.pk).update(requested_on=ON - dt.timedelta(days=40))
    client.force_login(collector)

    response = done(client, item, "exception")

    assert response.status_code == 422
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN


def test_a_write_off_proposed_since_the_ladder_finished_is_no_exception_asked(client, collector, account,
                                                                             item):
    workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.WRITE_OFF, on=ON,
                                invoices=list(account.invoices.all()), reason="The business is closing")
    client.force_login(collector)

    response = done(client, item, "exception")

    assert response.status_code == 422
    assert "No exception asked of a manager since the ladder finished: ask for it first." in text_of(response)
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
