"""The collector's account page as a screen reader or keyboard user meets it,
in a real browser: what a field's error says is read with the field, in a
form opened in the page's panel and in the timeline's filters; the page opens
on its one main heading; the focus ring stands out on every background.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like test_browser_workspace.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.models import Segment
from tests.ar_collections.conftest import log_in, panel_open

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme(make_customer, make_contact, make_invoice):
    """Carla's prompt payer with two overdue invoices."""
    # Dates count from the real today: a frozen server clock would set the
    # session cookie's expiry in Chromium's past, and the browser would drop it.
    today = timezone.localdate()
    acme = make_customer(name="Acme Tools", segment=Segment.PROMPT)
    make_contact(acme, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    for number, days_late in [("INV-P", 40), ("INV-D", 20)]:
        due = today - dt.timedelta(days=days_late)
        make_invoice(acme, number=number, issued=due - dt.timedelta(days=30), due=due, amount="500.00")
    return acme


@pytest.fixture
def page(acme, browser_page) -> Page:
    """The browser opens once the data is written (see browser_page)."""
    return browser_page


def test_a_field_s_error_is_read_with_the_field_and_its_help(page, acme):
    """The field names its error in aria-describedby; the error must carry that
    id, or a screen reader on the field hears only that it is invalid."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    panel_open(page, "Promise to pay")
    panel = page.locator("#action-panel")
    panel.get_by_role("button", name="Record promise").click()

    amount = panel.get_by_label("Amount")
    expect(amount).to_be_focused()
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(amount).to_have_accessible_description(
        re.compile(r"^Paid oldest due first.* This field is required\.$"))
    expect(panel.get_by_label("Promised by")).to_have_accessible_description("This field is required.")


def test_a_group_of_boxes_says_what_is_wrong_with_it(page, acme):
    """A group of radio buttons or checkboxes is named by its legend: its error
    goes with the group (its fieldset), and each box says it is invalid."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    panel_open(page, "Log a call")
    panel = page.locator("#action-panel")
    panel.get_by_role("button", name="Log call").click()

    outcome = panel.get_by_role("group", name="Outcome")
    expect(outcome).to_have_accessible_description("This field is required.")
    expect(outcome.get_by_role("radio").first).to_be_focused()
    expect(outcome.get_by_role("radio", name="Reached")).to_have_attribute("aria-invalid", "true")


def test_an_unknown_invoice_in_the_timeline_filter_is_said_with_the_field(page, acme):
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    invoice = page.locator("#timeline").get_by_role("searchbox", name="Invoice")
    invoice.fill("INV-NOPE")
    invoice.press("Enter")

    error = page.locator("#timeline").get_by_role("alert")
    expect(error).to_have_text("No invoice INV-NOPE on this account.")
    invoice = page.locator("#timeline").get_by_role("searchbox", name="Invoice")
    expect(invoice).to_be_focused()
    expect(invoice).to_have_attribute("aria-invalid", "true")
    expect(invoice).to_have_accessible_description("No invoice INV-NOPE on this account.")

    invoice.fill("INV-P")
    invoice.press("Enter")
    expect(page.locator("#timeline").get_by_role("alert")).to_have_count(0)
    invoice = page.locator("#timeline").get_by_role("searchbox", name="Invoice")
    expect(invoice).not_to_have_attribute("aria-invalid", "true")
    expect(invoice).to_have_accessible_description("")


HEADING_LEVELS = """() => Array.from(document.querySelector('main').querySelectorAll('h1,h2,h3,h4,h5,h6'))
    .map(h => [Number(h.tagName[1]), h.textContent.trim()])"""


def test_the_account_page_opens_on_its_one_main_heading_and_never_skips_a_level(page, acme):
    """A screen-reader user jumps by headings: the first is the customer's name
    (level 1, the only one), and none goes more than one level deeper than the
    one before it, so no part seems to belong to a part that is not there."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")

    headings = page.evaluate(HEADING_LEVELS)
    assert headings[0] == [1, "Acme Tools"]
    assert [text for level, text in headings if level == 1] == ["Acme Tools"]
    skips = [(before, after) for before, after in itertools.pairwise(headings) if after[0] > before[0] + 1]
    assert skips == []
    expect(page.get_by_role("heading", level=1)).to_have_accessible_name("Acme Tools")


# The contrast of the focused control's ring (its outline and its box-shadow)
# against what lies behind the control: WCAG's 3:1 for what is not text.
RING_CONTRAST = """() => {
  const luminance = (colour) => {
    const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const opaque = (colour) => {
    const parts = colour.match(/[\\d.]+/g);
    return parts.length < 4 || +parts[3] > 0.5;
  };
  let behind = document.activeElement.parentElement;
  while (behind && !opaque(getComputedStyle(behind).backgroundColor)) behind = behind.parentElement;
  const background = luminance(behind ? getComputedStyle(behind).backgroundColor : 'rgb(255, 255, 255)');
  const style = getComputedStyle(document.activeElement);
  const rings = [];
  if (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) rings.push(style.outlineColor);
  rings.push(...(style.boxShadow.match(/rgba?\\([^)]*\\)/g) || []));
  return Math.max(0, ...rings.map((ring) => {
    const [light, dark] = [luminance(ring), background].sort((a, b) => b - a);
    return (light + 0.05) / (dark + 0.05);
  }));
}"""


def test_the_keyboard_s_place_stands_out_on_the_header_and_on_the_page_alike(page):
    """The focus ring must reach 3:1 against the dark header and the white
    cards alike; one colour cannot do both, so the ring has two."""
    page.goto("/login/")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator(".site-header .brand")).to_be_focused()
    assert page.evaluate(RING_CONTRAST) >= 3
    page.keyboard.press("Tab")
    expect(page.get_by_label("User name")).to_be_focused()
    assert page.evaluate(RING_CONTRAST) >= 3
