"""The decision on a waiting request says what dunning sent the customer while it waited.

A request does not stop dunning: until a manager decides, the nightly run
goes on, and a reminder may reach the customer the collector has just told
that a pause is being asked for. The manager deciding should know it."""
import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import ExceptionKind
from customers.models import Segment

from .conftest import DUE, frozen


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def decision_page(client, asked, *, on: dt.date) -> str:
    with frozen(on):
        response = client.get(reverse("collections:exception_decide", args=[asked.pk]))
    assert response.status_code == 200
    return " ".join(response.content.decode().split())


@pytest.fixture
def account(make_account, default_ladders):
    return make_account(Segment.PROMPT)


def pause_asked(account, collector, *, on: dt.date, invoice=None, hours_later: int = 0):
    """The collector asks, `hours_later` than the 06:00 the runs are frozen at."""
    with frozen(on), time_machine.travel(dt.timedelta(hours=hours_later), tick=False):
        return workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.PAUSE,
                                           invoice=invoice, pause_until=on + dt.timedelta(days=30),
                                           reason="Waiting for a bank loan", on=on)


def test_the_decision_names_the_reminder_e_mailed_the_night_after_the_pause_was_asked(
    client, manager, collector, account, plan_and_deliver, smtp_server
):
    asked = pause_asked(account, collector, on=days(2))
    client.force_login(manager)
    assert "Nothing has been sent to the customer since this was asked." in decision_page(client, asked,
                                                                                         on=days(2))

    # Undecided past the days the run waits for a decision (asked on day 2: the runs up to
    # day 5), the first reminder, due on day 3, went on day 6.
    assert plan_and_deliver(days(5))["emailed"] == 0
    assert plan_and_deliver(days(6))["emailed"] == 1

    page = decision_page(client, asked, on=days(7))
    assert "Nothing has been sent" not in page
    assert ("Sent to the customer while this waited: Friendly reminder (step 1, E-mail), e-mailed to "
            "Anna Clerk on 8 Mar 2026, asking for payment by") in page


def test_a_reminder_sent_before_the_request_is_not_said_to_have_come_while_it_waited(
    client, manager, collector, account, plan_and_deliver, smtp_server
):
    assert plan_and_deliver(days(3))["emailed"] == 1
    asked = pause_asked(account, collector, on=days(3), hours_later=3)  # the same day, after the reminder
    client.force_login(manager)

    page = decision_page(client, asked, on=days(4))

    assert "Sent to the customer while this waited" not in page
    assert "Nothing has been sent to the customer since this was asked." in page
