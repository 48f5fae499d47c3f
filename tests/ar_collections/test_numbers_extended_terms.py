"""Extended terms a manager approved, in the Numbers page's cash forecast:
the invoice's money is expected the week the terms end, not the week its
old due date (plus the customer's usual lateness) would put it in; when the
terms end or are lifted, it is expected by its due date again.

Today being Tue 5 Aug 2025, the forecast's weeks start on Tuesdays:
week 0 5–11 Aug, 1 12–18 Aug, 2 19–25 Aug, 3 26 Aug–1 Sep, 4 2–8 Sep,
5 9–15 Sep, 6 16–22 Sep, 7 23–29 Sep.

Harbour Supplies (EUR, usually 3 days late) owes T1, EUR 1,000.00 due
12 Aug (expected 15 Aug, week 1), T2, EUR 250.00 due 19 Aug (expected
22 Aug, week 2) and T3, EUR 80.00 due 15 Sep (expected 18 Sep, week 6).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from ar_collections import numbers, workspace
from ar_collections.models import ExceptionKind, PaymentBehaviour

D = Decimal
TODAY = dt.date(2025, 8, 5)
JULY = numbers.Period.ending(dt.date(2025, 7, 1), months=1)
NOTHING = D("0.00")


def day(month: int, n: int) -> dt.date:
    return dt.date(2025, month, n)


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def harbour(make_customer, make_invoice, collector):
    customer = make_customer(name="Harbour Supplies", currency="EUR", collector=collector)
    PaymentBehaviour.objects.create(customer=customer, computed_on=TODAY, weighted_days_late=D("3.0"))
    invoices = {
        "T1": make_invoice(customer, number="T1", issued=day(7, 13), due=day(8, 12), amount="1000.00"),
        "T2": make_invoice(customer, number="T2", issued=day(7, 20), due=day(8, 19), amount="250.00"),
        "T3": make_invoice(customer, number="T3", issued=day(8, 1), due=day(9, 15), amount="80.00"),
    }
    return customer, invoices


def granted(customer, *, until: dt.date, collector, manager, invoice=None,
            kind: str = ExceptionKind.EXTENDED_TERMS):
    """A collector asks for `kind` until `until`, and a manager approves it today."""
    asked = workspace.exception_request(
        customer=customer, actor=collector, kind=kind, reason="Their customer pays them late this quarter",
        on=TODAY, pause_until=until, invoice=invoice,
    )
    return workspace.exception_decide(request=asked, manager=manager, approve=True, note="Agreed", on=TODAY)


def forecast(today: dt.date = TODAY) -> numbers.Forecast:
    [eur] = numbers.figures(numbers.Scope(), today=today, periods=[JULY])
    return eur.forecast


def weekly(found: numbers.Forecast) -> list[Decimal]:
    return [week.invoices for week in found.weeks]


def test_extended_terms_beyond_the_eight_weeks_move_the_invoice_out_of_its_week(
    harbour, collector, manager
):
    customer, invoices = harbour
    before = forecast()
    assert weekly(before)[1] == D("1000.00") and before.later == NOTHING

    asked = workspace.exception_request(
        customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS, reason="A slow quarter",
        on=TODAY, pause_until=day(11, 5), invoice=invoices["T1"],
    )
    # Asked, not yet approved: nothing is granted, nothing moves.
    assert weekly(forecast()) == weekly(before)

    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Agreed", on=TODAY)
    after = forecast()

    assert weekly(after)[1] == NOTHING
    assert after.later == D("1000.00")
    assert after.total == before.total - D("1000.00")
    # The account's other invoices stay where they were.
    assert weekly(after)[2] == D("250.00") and weekly(after)[6] == D("80.00")


def test_extended_terms_within_the_eight_weeks_expect_the_money_the_week_they_end(
    harbour, collector, manager
):
    customer, invoices = harbour

    granted(customer, invoice=invoices["T1"], until=day(9, 10), collector=collector, manager=manager)
    found = forecast()

    # 10 Sep, the day the terms end, is in week 5: the customer's usual
    # lateness was lateness against the old due date.
    assert weekly(found) == [
        NOTHING, NOTHING, D("250.00"), NOTHING, NOTHING, D("1000.00"), D("80.00"), NOTHING
    ]
    assert found.total == D("1330.00")


def test_the_money_is_expected_by_the_due_date_again_once_the_terms_have_ended(
    harbour, collector, manager
):
    customer, invoices = harbour
    granted(customer, invoice=invoices["T1"], until=day(9, 10), collector=collector, manager=manager)

    # On their last day the terms still hold: the money is expected that week.
    last_day = forecast(today=day(9, 10))
    assert last_day.weeks[0].invoices == D("1000.00")
    assert (last_day.overdue_beyond_usual.amount, last_day.overdue_beyond_usual.count) == (D("250.00"), 1)

    ended = forecast(today=day(9, 11))
    # The day after, T1 is read by its due date again (12 Aug + 3 days):
    # later than even this customer usually pays, as T2 is.
    assert (ended.overdue_beyond_usual.amount, ended.overdue_beyond_usual.count) == (D("1250.00"), 2)
    assert ended.weeks[0].invoices == NOTHING


def test_terms_a_manager_lifted_no_longer_move_the_money(harbour, collector, manager):
    customer, invoices = harbour
    granted(customer, invoice=invoices["T1"], until=day(11, 5), collector=collector, manager=manager)
    assert weekly(forecast())[1] == NOTHING

    workspace.pause_resume(customer=customer, actor=manager, on=TODAY)

    found = forecast()
    assert weekly(found)[1] == D("1000.00") and found.later == NOTHING


def test_extended_terms_for_the_whole_account_move_the_invoices_falling_due_before_they_end(
    harbour, collector, manager
):
    customer, _ = harbour

    granted(customer, until=day(9, 10), collector=collector, manager=manager)
    found = forecast()

    # T1 and T2 fall due before 10 Sep: expected that week. T3 falls due
    # after it: its own terms give it as long, and it stays in week 6.
    assert weekly(found) == [NOTHING, NOTHING, NOTHING, NOTHING, NOTHING, D("1250.00"), D("80.00"), NOTHING]


def test_an_invoice_issued_after_terms_for_the_whole_account_were_granted_is_expected_by_its_own_terms(
    harbour, make_invoice, collector, manager
):
    customer, _ = harbour
    granted(customer, until=day(9, 10), collector=collector, manager=manager)

    # Issued the day after, falling due before the terms end: the manager
    # granted them for what the account owed, not for what it buys next.
    make_invoice(customer, number="T4", issued=day(8, 6), due=day(8, 26), amount="60.00")
    found = forecast()

    # T4 due 26 Aug plus 3 days usually late: 29 Aug, week 3.
    assert weekly(found) == [
        NOTHING, NOTHING, NOTHING, D("60.00"), NOTHING, D("1250.00"), D("80.00"), NOTHING
    ]


def test_a_pause_of_dunning_alone_does_not_move_the_money(harbour, collector, manager):
    customer, invoices = harbour
    before = weekly(forecast())

    # A pause stops the reminders; the invoice is still owed by its due date.
    granted(customer, invoice=invoices["T1"], until=day(9, 10), collector=collector, manager=manager,
            kind=ExceptionKind.PAUSE)

    assert weekly(forecast()) == before


def test_the_page_shows_the_moved_money_and_says_why(client, manager, harbour, collector):
    customer, invoices = harbour
    granted(customer, invoice=invoices["T1"], until=day(9, 10), collector=collector, manager=manager)
    client.force_login(manager)

    html = client.get(reverse("collections:numbers")).content.decode()

    assert "approved extended terms, in the week the terms end" in html
    assert "Expected after these weeks: EUR 0.00" in html
    # T1 in week 5, the invoices column.
    assert '<th scope="row">9 Sep – 15 Sep</th><td class="num">EUR 1,000.00</td>' in html
