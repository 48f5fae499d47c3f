"""The account card in a real browser: the reason for a change of credit hold
or payment terms is asked only when they change, and a screen reader hears it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from customers.models import TermsType
from tests.ar_collections.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REASON = "Why the credit hold or payment terms change"


@pytest.fixture
def page(manager, customer, browser_page) -> Page:
    """The browser opens once the account is written (see browser_page)."""
    return browser_page


def test_the_reason_is_asked_once_the_hold_or_the_terms_change(page, customer):
    log_in(page, "maria")
    page.goto(reverse("customers:detail", args=[customer.pk]))
    page.get_by_role("link", name="Edit card").click()
    card = page.locator("#account-card form")
    hold = card.get_by_label("On credit hold")
    expect(hold).to_be_visible()
    expect(card.get_by_label(REASON)).to_be_hidden()

    hold.check()
    expect(card.get_by_label(REASON)).to_be_visible()
    expect(card.get_by_role("status")).to_have_text(f"New field below: {REASON}.")
    hold.uncheck()
    expect(card.get_by_label(REASON)).to_be_hidden()
    expect(card.get_by_role("status")).to_have_text("")

    card.get_by_label("Payment terms", exact=True).select_option(TermsType.COD)
    card.get_by_label(REASON).fill("Cash first after three broken promises")
    card.get_by_role("button", name="Save card").click()
    expect(page.locator("#messages")).to_contain_text("Account card saved.")
    expect(page.get_by_text("because “Cash first after three broken promises”").first).to_be_visible()


def test_a_card_sent_back_for_a_missing_reason_shows_the_field(page, customer):
    log_in(page, "maria")
    page.goto(reverse("customers:edit", args=[customer.pk]))
    page.get_by_label("On credit hold").check()
    page.get_by_role("button", name="Save card").click()

    expect(page.get_by_label(REASON)).to_be_visible()
    expect(page.locator(".error-summary")).to_contain_text("Nothing was saved.")


def test_without_script_the_reason_is_always_asked(page, customer, live_server):
    log_in(page, "maria")
    context = page.context.browser.new_context(java_script_enabled=False, base_url=live_server.url,
                                               storage_state=page.context.storage_state())
    try:
        plain = context.new_page()
        plain.goto(reverse("customers:edit", args=[customer.pk]))
        expect(plain.get_by_label(REASON)).to_be_visible()
    finally:
        context.close()
