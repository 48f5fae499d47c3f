"""The Numbers page reads each invoice's due date as it stood at its past
days, from the timeline's "invoice changed" entries. One ERP file extending
the terms of every open invoice moves thousands of due dates at once: the
page and its figures must still answer, with the due dates as they stood
(more than 65,535 values written into one statement are refused by PostgreSQL)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from ar_collections import numbers
from ar_collections.models import Invoice, InvoiceStatus
from customers.models import EventKind, TimelineEvent
from tests.ar_collections.conftest import frozen

TODAY = dt.date(2025, 12, 15)
MOVED = 12000


@pytest.fixture
def moved_book(make_customer):
    """12,000 open invoices of 10.00, due 31 Jan 2026 until the ERP moved them
    all to 28 Feb 2026 on 10 Dec 2025; and one of 500.00 first due 15 Oct
    2025, that the ERP moved to 31 Oct on 20 Nov and to 31 Jan 2026 on 10 Dec."""
    acme = make_customer(name="Acme", account_number="A-1", currency="EUR")
    Invoice.objects.bulk_create(
        Invoice(number=f"M-{i:06d}", customer=acme, issue_date=dt.date(2024, 10, 1),
                due_date=dt.date(2026, 2, 28), currency="EUR", total_amount=Decimal("10.00"),
                open_amount=Decimal("10.00"), status=InvoiceStatus.OPEN)
        for i in range(MOVED))
    late = Invoice.objects.create(
        number="L-1", customer=acme, issue_date=dt.date(2025, 9, 1), due_date=dt.date(2026, 1, 31),
        currency="EUR", total_amount=Decimal("500.00"), open_amount=Decimal("500.00"),
        status=InvoiceStatus.OPEN)
    kind = ContentType.objects.get_for_model(Invoice)

    def moved(pk: int, on: dt.date, before: str, after: str) -> TimelineEvent:
        return TimelineEvent(
            customer=acme, kind=EventKind.INVOICE_CHANGED, summary="Due date moved", subject_type=kind,
            subject_id=pk, occurred_at=timezone.make_aware(dt.datetime.combine(on, dt.time(12))),
            details={"before": {"due_date": before}, "after": {"due_date": after}})

    TimelineEvent.objects.bulk_create(
        [moved(pk, dt.date(2025, 12, 10), "2026-01-31", "2026-02-28")
         for pk in Invoice.objects.exclude(pk=late.pk).values_list("pk", flat=True)]
        + [moved(late.pk, dt.date(2025, 12, 10), "2025-10-31", "2026-01-31"),
           moved(late.pk, dt.date(2025, 11, 20), "2025-10-15", "2025-10-31")])
    return acme


def test_the_figures_read_the_due_dates_as_they_stood_however_many_were_moved_since(moved_book):
    with frozen(TODAY):
        periods = [numbers.Period.ending(dt.date(2025, month, 1), months=months, today=TODAY)
                   for month, months in ((10, 1), (11, 1), (11, 12))]
        [eur] = numbers.figures(numbers.Scope(), today=TODAY, periods=periods)
    october, november, year = eur.periods
    assert october.closing == november.closing == year.closing == Decimal("120500.00")
    # The 12,000 were due 31 Jan then. The other was late on 31 Oct by the due date
    # the first change since replaced (15 Oct), and on 30 Nov by 31 Oct: never by today's.
    assert october.closing_current == Decimal("120000.00")
    assert november.closing_current == year.closing_current == Decimal("120000.00")


def test_the_numbers_page_and_its_csv_answer_however_many_due_dates_were_moved_since(
    moved_book, manager, client
):
    client.force_login(manager)
    client.raise_request_exception = False
    with frozen(TODAY):
        page = client.get(reverse("collections:numbers"), {"month": "2025-11", "months": "12"})
        csv = client.get(reverse("collections:numbers_csv"), {"month": "2025-11", "months": "12"})
    assert page.status_code == 200
    assert "120,500" in page.content.decode()
    assert csv.status_code == 200
    # November's closing, and the part of it not yet due then.
    assert "120500.00,120000.00" in csv.content.decode()
