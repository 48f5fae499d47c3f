"""Reversing a payment from the account page in a real browser: Reverse… on
the payment's row opens the panel with it chosen, the first click says what
reversing undoes, the second does it; the invoice is open again and the
payment marked reversed, in place, and the keyboard never falls to the top
of the page.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like tests/ar_collections/test_browser_workspace.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections import workspace
from ar_collections.models import InvoiceStatus, PaymentReversal
from arcrm.dates import format_day
from customers.models import Segment
from tests.ar_collections.conftest import log_in
from tests.conftest import ARTIFACTS

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme(make_customer, make_contact, make_invoice, manager):
    """INV-P (EUR 500.00, 40 days late) paid in full three days ago by a
    direct debit; INV-D (EUR 700.00) still open."""
    # Dates count from the real today: a frozen server clock would set the
    # session cookie's expiry in Chromium's past, and the browser would drop it.
    today = timezone.localdate()
    acme = make_customer(name="Acme Tools", segment=Segment.PROMPT)
    make_contact(acme, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    paid = make_invoice(acme, number="INV-P", issued=today - dt.timedelta(days=70),
                        due=today - dt.timedelta(days=40), amount="500.00")
    make_invoice(acme, number="INV-D", issued=today - dt.timedelta(days=50),
                 due=today - dt.timedelta(days=20), amount="700.00")
    acme.paid_on = today - dt.timedelta(days=3)
    acme.payment = workspace.payment_record(
        customer=acme, actor=manager, amount=Decimal("500.00"), currency="EUR", received_on=acme.paid_on,
        allocations=[(paid, Decimal("500.00"))], reference="DD-0815", method="direct_debit",
        bank_reference="2025 0804 0001",
    )
    return acme


@pytest.fixture
def page(acme, browser_page) -> Page:
    """The browser opens once the data is written (see browser_page)."""
    return browser_page


def test_a_manager_reverses_a_payment_from_its_row_in_two_clicks(page, acme):
    log_in(page, "maria")
    page.goto(f"/customers/{acme.pk}/")
    row = page.locator(f"#payment-{acme.payment.pk}")
    open_invoices = page.locator("#open-invoices")
    expect(open_invoices).not_to_contain_text("INV-P")
    panel = page.locator("#action-panel")

    row.get_by_role("link", name="Reverse…").focus()
    page.keyboard.press("Enter")
    expect(panel.get_by_role("heading", name="Reverse a payment")).to_be_visible()
    # The payment is chosen already: the keyboard lands on why.
    expect(panel.get_by_label("Payment")).to_have_value(str(acme.payment.pk))
    expect(panel.get_by_role("radio").first).to_be_focused()
    panel.get_by_label("Direct debit returned").check()
    panel.get_by_label("Note").fill("MD06")
    panel.get_by_role("button", name="Continue").click()

    day = format_day(acme.paid_on)
    asked = f"Reverse the payment of EUR 500.00 received on {day}?"
    expect(panel.get_by_role("heading", name=asked)).to_be_visible()
    expect(panel.locator("ul.undoes")).to_have_text(
        "EUR 500.00 paid on invoice INV-P: it reopens, EUR 500.00 open")
    # The keyboard lands on the question, not back on the Payment field: a
    # screen reader says what will be undone before the second click.
    expect(panel.get_by_role("heading", name=asked)).to_be_focused()
    expect(panel.get_by_role("heading", name=asked)).to_have_accessible_description(
        "Reversing it undoes what it paid, and nothing else: "
        "EUR 500.00 paid on invoice INV-P: it reopens, EUR 500.00 open")
    assert not PaymentReversal.objects.exists()
    page.screenshot(path=ARTIFACTS / "account-payment-reversal-confirm.png", full_page=True)

    panel.get_by_role("button", name="Reverse the payment").press("Enter")

    expect(page.locator("#messages")).to_contain_text(
        f"Payment of EUR 500.00 received on {day} reversed; INV-P is owed again.")
    expect(panel.get_by_role("button")).to_have_count(0)
    expect(open_invoices.get_by_role("row", name="INV-P")).to_contain_text("EUR 500.00")
    reversed_on = format_day(timezone.localdate())
    expect(row).to_contain_text(f"Reversed on {reversed_on} (direct debit returned: MD06), by maria")
    expect(row).to_contain_text("bank id 2025 0804 0001")
    expect(row.get_by_role("link", name="Reverse…")).to_have_count(0)
    # The link that opened the panel went with the payment reversed: the
    # keyboard stays on its row, where the reversal now shows.
    expect(row.locator(".reversal")).to_be_focused()
    page.screenshot(path=ARTIFACTS / "account-payment-reversed.png", full_page=True)

    reversal = PaymentReversal.objects.get()
    assert (reversal.payment_id, reversal.reason, reversal.note) == (acme.payment.pk, "returned_direct_debit",
                                                                     "MD06")
    assert acme.invoices.get(number="INV-P").status == InvoiceStatus.OPEN


def test_cancelling_the_reversal_gives_the_keyboard_back_to_the_payment_s_reverse_link(page, acme):
    log_in(page, "maria")
    page.goto(f"/customers/{acme.pk}/")
    opener = page.locator(f"#payment-{acme.payment.pk}").get_by_role("link", name="Reverse…")
    opener.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#action-panel")
    expect(panel.get_by_role("radio").first).to_be_focused()

    panel.get_by_role("link", name="Cancel").press("Enter")

    expect(panel.get_by_role("radio")).to_have_count(0)
    expect(opener).to_be_focused()
    assert not PaymentReversal.objects.exists()
