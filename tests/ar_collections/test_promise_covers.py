"""A promise to pay covers only the invoices its amount pays, oldest due
first, the last of them perhaps in part, and pauses dunning only of those it
pays in full: a token amount holds neither the whole debt nor one invoice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from ar_collections import workspace
from ar_collections.dunning import eligible_invoices
from ar_collections.models import (
    Call,
    DisputeReason,
    DunningPause,
    Invoice,
    Promise,
    PromiseStatus,
    WorkItem,
)
from customers.models import Customer, EventKind, TimelineEvent
from tests.ar_collections.conftest import sent_once

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today", "default_ladders")


@pytest.fixture
def bologna(make_customer) -> Customer:
    return make_customer(name="Bologna School Board")


@pytest.fixture
def invoices(bologna, make_invoice) -> list[Invoice]:
    """Three overdue invoices, EUR 4,876.86 in all, made newest first so
    that the oldest due is not the first row."""
    made = {
        number: make_invoice(bologna, issued=due - dt.timedelta(days=30), due=due, amount=amount,
                             number=number)
        for number, due, amount in [
            ("INV-B3", dt.date(2025, 6, 1), "1500.00"),
            ("INV-B2", dt.date(2025, 5, 1), "1876.86"),
            ("INV-B1", dt.date(2025, 4, 1), "1500.00"),
        ]
    }
    return [made["INV-B1"], made["INV-B2"], made["INV-B3"]]


def promise(customer, collector, amount: str, invoices, *, promised_on=dt.date(2025, 8, 10)) -> Promise:
    return workspace.promise_record(customer=customer, actor=collector, amount=Decimal(amount),
                                    promised_on=promised_on, invoices=invoices, on=TODAY)


def state() -> tuple:
    """Everything recording a promise may change."""
    return (
        TimelineEvent.objects.count(),
        Call.objects.count(),
        sorted(Promise.objects.values_list("pk", "status")),
        sorted(DunningPause.objects.values_list("pk", "lifted_at")),
        sorted(WorkItem.objects.values_list("pk", "status")),
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
    )


def paused(customer) -> list[str]:
    return sorted(DunningPause.objects.filter(customer=customer, lifted_at__isnull=True)
                  .values_list("invoice__number", flat=True))


def test_a_token_promise_covering_the_whole_debt_is_refused_naming_what_it_does_not_pay(
    bologna, invoices, collector
):
    before = state()

    with pytest.raises(ValidationError) as refused:
        promise(bologna, collector, "1.00", invoices)

    assert refused.value.message_dict["invoices"] == [
        "EUR 1.00 pays none of INV-B2, INV-B3: paid oldest due first, it ends in INV-B1. To cover them too "
        "it must be for at least EUR 3,376.87, EUR 3,375.87 more; choose the invoices it pays, or agree a "
        "payment plan."
    ]
    assert state() == before


def test_a_one_cent_promise_on_an_invoice_covers_it_but_pauses_nothing_and_dunning_goes_on(
    bologna, invoices, collector
):
    made = promise(bologna, collector, "0.01", invoices[:1])

    assert list(made.invoices.all()) == invoices[:1]
    assert paused(bologna) == []
    assert "INV-B1" in eligible_invoices(on=TODAY).filter(customer=bologna).values_list("number", flat=True)
    event = TimelineEvent.objects.filter(customer=bologna, kind=EventKind.PROMISE).get()
    assert event.summary == ("Promise to pay EUR 0.01 by 10 Aug 2025 (EUR 0.01 of INV-B1's EUR 1,500.00); "
                             "dunning goes on for INV-B1: the promise does not pay it in full, so it pauses "
                             "nothing")
    assert (event.details["pays"], event.details["paused"]) == ({"INV-B1": "0.01"}, [])


def test_a_promise_of_one_invoice_s_whole_open_amount_pauses_it(bologna, invoices, collector):
    made = promise(bologna, collector, "1500.00", invoices[:1])

    assert paused(bologna) == ["INV-B1"]
    eligible = eligible_invoices(on=TODAY).filter(customer=bologna).values_list("number", flat=True)
    assert "INV-B1" not in eligible
    event = TimelineEvent.objects.filter(customer=bologna, kind=EventKind.PROMISE).get()
    assert event.summary.endswith(f"(INV-B1); dunning paused until {made.broken_after:%-d %b %Y}")


def test_a_promise_of_the_exact_amount_covers_every_invoice_in_full(bologna, invoices, collector):
    made = promise(bologna, collector, "4876.86", [invoices[2], invoices[0], invoices[1]])

    assert sorted(i.number for i in made.invoices.all()) == ["INV-B1", "INV-B2", "INV-B3"]
    assert paused(bologna) == ["INV-B1", "INV-B2", "INV-B3"]
    event = TimelineEvent.objects.filter(customer=bologna, kind=EventKind.PROMISE).get()
    assert event.summary.startswith("Promise to pay EUR 4,876.86 by 10 Aug 2025 (INV-B1, INV-B2, INV-B3); "
                                    "dunning paused until ")
    assert event.details["pays"] == {"INV-B1": "1500.00", "INV-B2": "1876.86", "INV-B3": "1500.00"}


def test_a_promise_may_pay_the_last_invoice_it_covers_in_part_and_the_timeline_says_how_much(
    bologna, invoices, collector
):
    made = promise(bologna, collector, "3500.00", invoices)

    # INV-B3 is covered (what comes in on it counts) but not paused: most of it is not promised.
    assert made.invoices.count() == 3
    assert paused(bologna) == ["INV-B1", "INV-B2"]
    event = TimelineEvent.objects.filter(customer=bologna, kind=EventKind.PROMISE).get()
    assert event.summary == (
        "Promise to pay EUR 3,500.00 by 10 Aug 2025 "
        "(INV-B1, INV-B2 and EUR 123.14 of INV-B3's EUR 1,500.00); "
        f"dunning paused for INV-B1, INV-B2 until {made.broken_after:%-d %b %Y}, and goes on for INV-B3, "
        "which it pays in part"
    )
    assert event.details["pays"] == {"INV-B1": "1500.00", "INV-B2": "1876.86", "INV-B3": "123.14"}
    assert event.details["paused"] == ["INV-B1", "INV-B2"]


def test_one_cent_more_than_the_invoices_before_the_last_reaches_it_and_one_cent_less_does_not(
    bologna, invoices, collector
):
    with pytest.raises(ValidationError) as refused:
        promise(bologna, collector, "3376.86", invoices)
    assert refused.value.message_dict["invoices"][0].startswith(
        "EUR 3,376.86 pays none of INV-B3: paid oldest due first, it ends in INV-B2. To cover it too it must "
        "be for at least EUR 3,376.87, EUR 0.01 more;")

    made = promise(bologna, collector, "3376.87", invoices)
    assert made.invoices.count() == 3


def test_a_promise_kept_in_the_amount_promised_lifts_its_pauses_and_dunning_chases_the_rest(
    bologna, invoices, collector
):
    made = promise(bologna, collector, "3500.00", invoices)
    oldest_first = workspace.allocations_oldest_first(invoices, Decimal("3500.00"))

    workspace.payment_record(customer=bologna, amount=Decimal("3500.00"), currency="EUR",
                             received_on=dt.date(2025, 8, 8), allocations=oldest_first)

    made.refresh_from_db()
    assert (made.status, made.paid_amount) == (PromiseStatus.KEPT, Decimal("3500.00"))
    assert paused(bologna) == []
    assert list(eligible_invoices(on=dt.date(2025, 8, 9)).filter(customer=bologna)
                .values_list("number", "open_amount")) == [("INV-B3", Decimal("1376.86"))]


def test_what_a_dispute_contests_is_not_what_a_promise_pays(bologna, invoices, collector):
    workspace.dispute_open(customer=bologna, actor=collector, invoice=invoices[0], on=TODAY,
                           reason=DisputeReason.QUANTITY, description="Ten desks missing",
                           amount=Decimal("1000.00"))

    # EUR 500.00 is all INV-B1 owes undisputed: it reaches no further.
    with pytest.raises(ValidationError) as refused:
        promise(bologna, collector, "500.00", invoices[:2])
    assert refused.value.message_dict["invoices"] == [
        "EUR 500.00 pays none of INV-B2: paid oldest due first, it ends in INV-B1. To cover it too it must "
        "be for at least EUR 500.01, EUR 0.01 more; choose the invoices it pays, or agree a payment plan."
    ]

    made = promise(bologna, collector, "500.01", invoices[:2])
    event = TimelineEvent.objects.filter(customer=bologna, kind=EventKind.PROMISE).get()
    assert event.details["pays"] == {"INV-B1": "500.00", "INV-B2": "0.01"}
    assert made.invoices.count() == 2
    # All INV-B1 owes undisputed is promised: the promise pauses it; INV-B2 it does not.
    assert list(DunningPause.objects.filter(promise=made).values_list("invoice__number", flat=True)) == [
        "INV-B1"]


def test_a_yen_promise_says_its_shortfall_in_whole_yen(make_customer, make_invoice, collector):
    tokyo = make_customer(name="Tokyo Trading", currency="JPY")
    older, newer = (
        make_invoice(tokyo, issued=dt.date(2025, 5, 1), due=due, amount="60000", currency="JPY",
                     number=number)
        for number, due in [("INV-T1", dt.date(2025, 6, 1)), ("INV-T2", dt.date(2025, 7, 1))]
    )

    with pytest.raises(ValidationError) as refused:
        promise(tokyo, collector, "1000", [newer, older])

    assert refused.value.message_dict["invoices"] == [
        "JPY 1,000 pays none of INV-T2: paid oldest due first, it ends in INV-T1. To cover it too it must be "
        "for at least JPY 60,001, JPY 59,001 more; choose the invoices it pays, or agree a payment plan."
    ]
    assert not Promise.objects.exists()


# --- The forms --------------------------------------------------------------------------


def promise_url(customer) -> str:
    return reverse("collections:promise_record", args=[customer.pk])


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_the_promise_form_refuses_a_token_promise_with_a_422_under_its_invoices_and_changes_nothing(
    client: Client, collector, bologna, invoices, headers
):
    client.force_login(collector)
    before = state()

    response = client.post(promise_url(bologna), {
        "amount": "1.00", "promised_on": "2025-08-10", "invoices": [i.pk for i in invoices],
    }, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert escape("EUR 1.00 pays none of INV-B2, INV-B3: paid oldest due first") in html
    assert ("<html" in html) == (not headers)
    assert html.lstrip().startswith('<section id="action-panel"') == bool(headers)
    assert state() == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_the_promise_form_records_a_promise_paying_its_last_invoice_in_part(
    client: Client, collector, bologna, invoices, headers
):
    client.force_login(collector)

    response = client.post(promise_url(bologna), {
        "amount": "3500.00", "promised_on": "2025-08-10", "invoices": [i.pk for i in invoices],
    }, headers=headers)

    assert response.status_code == (200 if headers else 302)
    made = Promise.objects.get(customer=bologna)
    assert (made.amount, made.invoices.count()) == (Decimal("3500.00"), 3)
    event = TimelineEvent.objects.get(customer=bologna, kind=EventKind.PROMISE)
    assert "EUR 123.14 of INV-B3's EUR 1,500.00" in event.summary


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_call_s_token_promise_is_refused_under_the_promise_s_invoices_and_nothing_is_logged(
    client: Client, collector, bologna, invoices, headers
):
    client.force_login(collector)
    before = state()

    response = client.post(reverse("collections:call_log", args=[bologna.pk]), sent_once({
        "outcome": "reached", "notes": "Will pay something on the 10th",
        "promise_amount": "1.00", "promise_date": "2025-08-10", "promise_invoices": [i.pk for i in invoices],
    }), headers=headers)

    assert response.status_code == 422
    assert response.context["form"].errors["promise_invoices"][0].startswith("EUR 1.00 pays none of INV-B2")
    assert state() == before


@pytest.mark.parametrize("form", ["promise_record", "call_log"])
def test_the_promise_forms_say_a_promise_covers_only_the_invoices_its_amount_pays(
    client: Client, collector, bologna, invoices, form
):
    client.force_login(collector)

    html = client.get(reverse(f"collections:{form}", args=[bologna.pk]), headers=HTMX).content.decode()

    assert escape("Paid oldest due first, it covers only the invoices it reaches; the last may be paid "
                  "in part. It pauses dunning only of those it pays in full: dunning goes on for one it "
                  "pays in part.") in html
