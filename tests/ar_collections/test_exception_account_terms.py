"""Extended terms for the whole account: a later day to pay by for the
account's open invoices. An invoice that falls due on or after that day gains
nothing, so a day before every open invoice falls due extends nothing and is
refused; a request says which invoices it gives more time and which not."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import DunningPause, ExceptionKind, ExceptionRequest, WorkItem
from customers.models import TimelineEvent

TODAY = dt.date(2025, 8, 5)
HTMX_PANEL = {"HX-Request": "true", "HX-Target": "action-panel"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def not_yet_due(customer, make_invoice):
    """INV-3001 due on 31 Aug 2025 and INV-3002 due on 30 Sep 2025, neither due yet."""
    return [
        make_invoice(customer, issued=dt.date(2025, 8, 1), due=dt.date(2025, 8, 31), amount="800.00",
                     number="INV-3001"),
        make_invoice(customer, issued=dt.date(2025, 8, 1), due=dt.date(2025, 9, 30), amount="200.00",
                     number="INV-3002"),
    ]


def request_url(customer) -> str:
    return reverse("collections:exception_request", args=[customer.pk])


def text_of(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split()).replace("&#x27;", "'")


def state() -> tuple:
    return (sorted(ExceptionRequest.objects.values_list("pk", "status", "pause_until", "granted_until")),
            DunningPause.objects.count(), TimelineEvent.objects.count(), WorkItem.objects.count())


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
@pytest.mark.parametrize("until", ["2025-08-20", "2025-08-31"], ids=["before", "on-the-first-due-date"])
def test_account_wide_terms_ending_before_any_open_invoice_falls_due_are_refused(
    client, collector, customer, not_yet_due, headers, until
):
    before = state()
    client.force_login(collector)

    response = client.post(request_url(customer), {"kind": ExceptionKind.EXTENDED_TERMS, "pause_until": until,
                                                   "reason": "Cash tight this month"}, headers=headers)

    assert response.status_code == 422
    day = dt.date.fromisoformat(until)
    assert (f"INV-3001, the first of the account's open invoices to fall due, falls due on 31 Aug 2025: "
            f"extended terms until {day.day} Aug 2025 give no invoice more time to pay. Choose a later day."
            ) in text_of(response)
    assert state() == before


def test_account_wide_terms_for_an_account_with_nothing_open_are_refused(customer, collector):
    with pytest.raises(ValidationError) as refused:
        workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                    pause_until=dt.date(2025, 9, 1), reason="Asked", on=TODAY)

    assert ("Acme Tools has no open invoice: extended terms would give nothing more time to pay."
            in " ".join(refused.value.messages))
    assert not ExceptionRequest.objects.exists()


@pytest.mark.parametrize("headers", [{}, HTMX_PANEL], ids=["plain", "htmx"])
def test_account_wide_terms_say_which_invoices_they_cover(
    client, collector, manager, customer, make_invoice, not_yet_due, headers
):
    make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="100.00",
                 number="INV-3000")
    client.force_login(collector)

    response = client.post(request_url(customer), {"kind": ExceptionKind.EXTENDED_TERMS,
                                                   "pause_until": "2025-09-15", "reason": "Cash tight"},
                           headers=headers, follow=not headers)

    assert ("Exception requested; it is in the managers' queue. Until 15 Sep 2025 it gives more time to pay "
            "for INV-3000 and INV-3001; not for INV-3002, which falls due on 30 Sep 2025, after that day."
            ) in text_of(response)
    asked = ExceptionRequest.objects.get()
    client.force_login(manager)
    page = text_of(client.get(reverse("collections:exception_decide", args=[asked.pk])))
    assert ("It gives more time to pay for INV-3000 (due 1 Jul 2025) and INV-3001 (due 31 Aug 2025); not for "
            "INV-3002, which falls due on 30 Sep 2025, after that day.") in page
    assert "this request covers EUR 900.00" in page


def test_account_wide_terms_are_not_granted_until_a_day_before_any_open_invoice_falls_due(
    customer, collector, manager, not_yet_due
):
    asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.EXTENDED_TERMS,
                                        pause_until=dt.date(2025, 9, 15), reason="Cash tight", on=TODAY)
    before = state()

    with pytest.raises(ValidationError) as refused:
        workspace.exception_decide(request=asked, manager=manager, approve=True, note="Less", on=TODAY,
                                   until=dt.date(2025, 8, 20))

    assert ("INV-3001 falls due on 31 Aug 2025: extended terms are granted until 1 Sep 2025 at the earliest."
            in " ".join(refused.value.messages))
    assert state() == before


def test_account_wide_terms_list_as_covered_only_what_approving_them_holds(
    client, collector, manager, customer, make_invoice, not_yet_due
):
    """An invoice issued after the day the terms take effect (one the ERP
    dated ahead) falls due before they end, but they were never asked about
    it: approved, they do not hold it, so neither the request nor the
    manager's page lists it as covered, nor counts its money."""
    make_invoice(customer, issued=dt.date(2025, 8, 9), due=dt.date(2025, 9, 8), amount="50.00",
                 number="INV-3003")
    client.force_login(collector)

    response = client.post(request_url(customer), {"kind": ExceptionKind.EXTENDED_TERMS,
                                                   "pause_until": "2025-09-15", "reason": "Cash tight"},
                           follow=True)

    assert ("Until 15 Sep 2025 it gives more time to pay for INV-3001; not for INV-3002, which falls due on "
            "30 Sep 2025, after that day; nor for INV-3003, issued on 9 Aug 2025, after they take effect."
            ) in text_of(response)
    asked = ExceptionRequest.objects.get()
    client.force_login(manager)
    page = text_of(client.get(reverse("collections:exception_decide", args=[asked.pk])))
    assert "It gives more time to pay for INV-3001 (due 31 Aug 2025); not for INV-3002" in page
    assert "this request covers EUR 800.00" in page

    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Yes", on=TODAY)
    pause = DunningPause.objects.select_related("exception").get(exception=asked)
    covered, _, _ = workspace.extended_terms_cover(asked, on=TODAY)
    assert [i.number for i in customer.invoices.order_by("due_date") if pause.holds(i)] == [
        i.number for i in covered] == ["INV-3001"]
    page = text_of(client.get(reverse("customers:detail", args=[customer.pk])))
    assert "Extended terms on the invoices issued by 5 Aug 2025 that fall due before their end" in page
    assert "the whole account" not in page
