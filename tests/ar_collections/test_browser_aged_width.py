"""The aged trial balance fits a 1,400 px window: every column, from the
account to the oldest due date, is seen without scrolling sideways, with
long account names, collectors and amounts in the millions in each bucket
(a month end is read on a laptop, and a column out of sight is missed).

Drives Debian's Chromium through Playwright against pytest-django's live
server, like tests/ar_collections/test_browser_narrow.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections.models import Dispute, DisputeReason
from tests.ar_collections.conftest import log_in
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def book(make_customer, make_invoice, manager):
    """Accounts with money in every bucket and under dispute, in the millions."""
    today = timezone.localdate()
    manager.first_name, manager.last_name = "Maximiliane", "Oberhuber-Wittgenstein"
    manager.save()
    for n in range(3):
        customer = make_customer(name=f"Schmidt & Söhne Maschinenbau und Anlagentechnik GmbH Nummer {n}",
                                 account_number=f"C-2025-00{n}", collector=manager, currency="EUR")
        for days_late in (-10, 15, 45, 75, 200):
            due = today - dt.timedelta(days=days_late)
            make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="1234567.89")
        month_ago = today - dt.timedelta(days=30)
        disputed = make_invoice(customer, issued=month_ago - dt.timedelta(days=30), due=month_ago,
                                amount="9876543.21")
        Dispute.objects.create(customer=customer, invoice=disputed, reason=DisputeReason.PRICE,
                               description="-", opened_by=manager, opened_on=today,
                               answer_due_on=today + dt.timedelta(days=7),
                               disputed_amount=disputed.total_amount)


@pytest.fixture
def page(book, browser_page) -> Iterator[Page]:
    browser_page.set_viewport_size({"width": 1400, "height": 900})
    yield browser_page
    connections.close_all()


def test_the_aged_trial_balance_fits_a_1400_px_window(page, manager):
    log_in(page, manager.username)

    page.goto("/collections/numbers/aged/")
    table = page.locator("table.aged-table")
    expect(table).to_be_visible()
    page.screenshot(path=ARTIFACTS / "aged-trial-balance-1400.png", full_page=True)

    wrap = table.locator("xpath=..")
    scroll, client = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert scroll <= client, f"the table is {scroll} px wide in {client} px"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    # The last column is in the window, not behind a scroll bar.
    box = table.locator("thead th").last.bounding_box()
    assert box["x"] + box["width"] <= 1400
