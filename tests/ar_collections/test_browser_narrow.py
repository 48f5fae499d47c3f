"""Pages with a wide table on a phone-sized screen (390 px): the table scrolls
inside its own wrapper, and the page itself never scrolls sideways, so the
links at the end of a row stay reachable by scrolling the table alone.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like tests/arcrm/test_browser.py. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections.models import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    StepAction,
)
from tests.ar_collections.conftest import log_in
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_WIDTH = 390


@pytest.fixture
def letters(make_customer, make_contact, make_invoice, manager, default_ladders) -> list[DunningAction]:
    """Three letters written and waiting for the post, to customers with long names."""
    today = timezone.localdate()
    run = DunningRun.objects.create(run_date=today)
    step = DunningStep.objects.get(policy__segment="prompt", action=StepAction.LETTER)
    written = []
    for n in range(3):
        customer = make_customer(name=f"Schmidt & Söhne Maschinenbau GmbH Nummer {n}")
        anna = make_contact(customer, name=f"Annegret Clerk-Wolfenschiessen {n}", is_primary_billing=True)
        due = today - dt.timedelta(days=40)
        invoice = make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="500.00")
        cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=today)
        letter = DunningAction.objects.create(
            run=run,
            cycle=cycle,
            customer=customer,
            step=step,
            status=ActionStatus.DONE,
            channel=Channel.LETTER,
            planned_on=today,
            pay_by=today + dt.timedelta(days=10),
            done_at=timezone.now(),
            recipient=anna,
            recipient_address="Industriestraße 123, 10115 Berlin-Charlottenburg",
        )
        DunningActionInvoice.objects.create(
            action=letter, invoice=invoice, open_amount=invoice.total_amount, currency=invoice.currency
        )
        letter.letter_pdf.save(f"dunning-{letter.pk}.pdf", ContentFile(b"%PDF-1.4\n% a dunning letter\n"))
        written.append(letter)
    return written


@pytest.fixture
def page(letters, browser_page) -> Iterator[Page]:
    browser_page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    yield browser_page
    # The ORM calls made while the browser runs (in its greenlet) opened a
    # connection of their own: closed here, before the test database goes.
    connections.close_all()


def page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_the_print_queue_does_not_scroll_sideways_on_a_phone(page, letters):
    log_in(page, "maria")
    page.goto("/collections/letters/")
    expect(page.get_by_role("heading", name="Print queue", level=1)).to_be_visible()
    page.screenshot(path=ARTIFACTS / "narrow-print-queue.png", full_page=True)

    assert page_width(page) <= PHONE_WIDTH
    # The row's last link is reached by scrolling the table, not the page.
    withdraw = page.get_by_role("link", name=f"Withdraw the letter to {letters[0].customer.name}")
    withdraw.scroll_into_view_if_needed()
    box = withdraw.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE_WIDTH
    assert page_width(page) <= PHONE_WIDTH


def test_the_account_page_does_not_scroll_sideways_on_a_phone(page, letters):
    customer = letters[0].customer
    # An address as long as real ones get, unbroken: it must wrap, not widen the page.
    customer.contacts.filter(is_primary_billing=True).update(
        email="accounts.payable.department@schmidt-und-soehne-maschinenbau.example.com")
    log_in(page, "maria")
    page.goto(f"/customers/{customer.pk}/")
    # A manager's invoice table ends in a "Write off" link per invoice.
    write_off = page.get_by_role("link", name="Write off ").first
    expect(write_off).to_be_attached()
    page.screenshot(path=ARTIFACTS / "narrow-account-page.png", full_page=True)

    assert page_width(page) <= PHONE_WIDTH
    write_off.scroll_into_view_if_needed()
    assert page_width(page) <= PHONE_WIDTH
