"""A collector's first minutes in a real browser: log in, find a customer,
read the account card, and change it in place.

Drives Debian's Chromium through Playwright against pytest-django's live server.
Screenshots land in test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections.models import PaymentBehaviour
from customers.models import ContactRole, Customer, ReminderChannel, Segment
from customers.views import PAGE_SIZE
from tests.conftest import ARTIFACTS

# The live server needs committed data; the flush after each test keeps the
# role groups (arcrm.roles.sync_role_groups runs after every flush).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def accounts(make_customer, make_contact, other_collector):
    acme = make_customer(
        name="Acme Tools",
        account_number="C-ACME",
        buying_reasons=["next-day delivery", "fair prices", "our service desk"],
        segment=Segment.OCCASIONAL_SLIP,
        segment_reason="Two late payments in a year, both under a week.",
    )
    make_contact(
        acme, name="Jana Novak", role=ContactRole.AP, phone="+49 30 1234",
        reminder_channel=ReminderChannel.PHONE, best_time_to_call="Tue–Thu mornings",
        is_primary_billing=True,
    )
    make_contact(acme, name="Bob Keller", role=ContactRole.PURCHASING)
    PaymentBehaviour.objects.create(
        customer=acme, computed_on=timezone.localdate(), invoices_settled=12,
        invoices_settled_late=2, avg_days_late=Decimal("3.50"),
        share_paid_late=Decimal("0.1667"), open_amount=Decimal("4200.00"),
        overdue_amount=Decimal("1200.00"), aging_current_amount=Decimal("3000.00"),
        aging_1_30_amount=Decimal("1200.00"), max_days_overdue=12, overdue_invoices=1,
    )
    make_customer(name="Globex Corporation", segment=Segment.PROMPT)
    make_customer(name="Initech", segment=Segment.SYSTEMATIC_LATE, collector=other_collector)
    return acme


@pytest.fixture
def page(accounts, browser_page) -> Page:
    """The browser opens once the accounts are written (see browser_page)."""
    return browser_page


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/customers/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    expect(page.get_by_role("heading", name="arcrm")).to_be_visible()
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/customers/$"))


def results(page: Page):
    return page.locator("#results tbody th a")


def test_a_collector_finds_a_customer_and_reads_the_account(page):
    log_in(page, "carla", "pw-carla")
    expect(page.locator(".nav-user")).to_contain_text("Collector")
    expect(results(page)).to_have_count(3)
    page.screenshot(path=ARTIFACTS / "customer-list.png", full_page=True)

    # A marker on window survives htmx swaps but not a full page load.
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Search").press_sequentially("acme")
    expect(page).to_have_url(re.compile(r"/customers/\?q=acme"))
    expect(results(page)).to_have_count(1)
    expect(results(page).first).to_have_text("Acme Tools")
    assert page.evaluate("window.notReloaded") is True

    page.get_by_label("Search").fill("")
    page.get_by_label("Segment").select_option("systematic_late")
    expect(page).to_have_url(re.compile(r"segment=systematic_late"))
    expect(results(page)).to_have_text(["Initech"])
    page.get_by_label("Collector").select_option("mine")
    expect(page).to_have_url(re.compile(r"collector=mine"))
    expect(page.locator("#results")).to_contain_text("No customers match")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "customer-list-filtered.png", full_page=True)

    page.goto("/customers/?q=acme")
    page.get_by_role("link", name="Acme Tools").click()
    card = page.locator("#account-card")
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Tools")
    expect(card.get_by_role("heading", level=2)).to_have_text("Acme Tools")
    expect(card).to_contain_text("next-day delivery")
    expect(card).to_contain_text("Two late payments in a year")
    jana = page.locator("article.contact", has_text="Jana Novak")
    expect(jana).to_contain_text("Reminders by")
    expect(jana.locator("dd", has_text="Phone").first).to_be_visible()
    expect(jana).to_contain_text("Tue–Thu mornings")
    behaviour = page.locator("#behaviour")
    expect(behaviour).to_contain_text("17 %")
    expect(behaviour).to_contain_text("EUR 1,200.00")
    expect(behaviour).to_contain_text("Computed on")
    expect(behaviour.locator(".aging-bar")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "account-page.png", full_page=True)


def test_a_collector_records_an_absence_without_leaving_the_page(page, accounts):
    log_in(page, "carla", "pw-carla")
    page.goto(f"/customers/{accounts.pk}/")
    page.evaluate("window.notReloaded = true")
    jana = page.locator("article.contact", has_text="Jana Novak")

    jana.get_by_role("link", name="Add absence").click()
    form = page.locator("form[id^=absence-form]")
    today = timezone.localdate()
    form.get_by_label("Away from").fill((today + dt.timedelta(days=10)).isoformat())
    form.get_by_label("Away until").fill(today.isoformat())
    form.get_by_role("button", name="Save absence").click()
    # Rejected: the form comes back in place with the reason.
    expect(form).to_contain_text("The absence must end on or after its first day.")
    page.screenshot(path=ARTIFACTS / "account-absence-rejected.png", full_page=True)

    form.get_by_label("Away from").fill(today.isoformat())
    # The days bring a fresh menu of those in then: chosen before it comes, the choice would be swapped away.
    until = (today + dt.timedelta(days=10)).isoformat()
    with page.expect_response(lambda response: f"ends_on={until}" in response.url):
        form.get_by_label("Away until").fill(until)
    expect(form.locator("select.htmx-request")).to_have_count(0)
    form.get_by_label("Write to instead").select_option(label="Bob Keller – Purchasing")
    form.get_by_role("button", name="Save absence").click()

    contacts = page.locator("#contacts")
    expect(contacts).to_contain_text("write to Bob Keller instead")
    expect(contacts.locator(".write-to")).to_contain_text("Bob Keller")
    expect(page.locator("#messages")).to_contain_text("Absence of Jana Novak recorded.")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "account-absence-recorded.png", full_page=True)

    page.get_by_role("link", name="Edit card").click()
    page.get_by_label("Why they buy from us").fill("next-day delivery\nfair prices\nlocal stock")
    page.screenshot(path=ARTIFACTS / "account-card-edit.png", full_page=True)
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#account-card")).to_contain_text("local stock")
    expect(page.locator("#account-card form")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True


def test_a_keyboard_user_lands_in_the_card_and_contact_forms_and_on_the_field_to_correct(page, accounts):
    """The link that opened a form is swapped away with what it replaced: the
    form takes the keyboard, rather than the focus falling to the top of the
    page, and a rejected form puts it on the field to correct."""
    log_in(page, "carla", "pw-carla")
    page.goto(f"/customers/{accounts.pk}/")
    card = page.locator("#account-card")
    page.get_by_role("link", name="Edit card").focus()
    page.keyboard.press("Enter")
    expect(card.get_by_label("Name", exact=True)).to_be_focused()

    card.get_by_label("Typical days between orders").fill("-3")
    card.get_by_role("button", name="Save card").press("Enter")
    expect(card).to_contain_text("Nothing was saved.")
    expect(card.get_by_label("Typical days between orders")).to_be_focused()
    card.get_by_role("link", name="Cancel").click()
    expect(card.locator("form")).to_have_count(0)

    jana = page.locator("article.contact", has_text="Jana Novak")
    jana.get_by_role("link", name="Edit Jana Novak").focus()
    page.keyboard.press("Enter")
    form = page.locator("form[id^=contact-form]")
    expect(form.get_by_label("Name", exact=True)).to_be_focused()
    form.get_by_label("Email").fill("not an address")
    form.get_by_role("button", name="Save contact").press("Enter")
    expect(form).to_contain_text("Enter a valid email address.")
    expect(form.get_by_label("Email")).to_be_focused()


@pytest.fixture
def many_customers(accounts):
    """Enough customers for three pages of the list."""
    Customer.objects.bulk_create(
        Customer(account_number=f"C-MANY{n:03d}", name=f"Many {n:03d}", collector=accounts.collector,
                 customer_since=dt.date(2020, 1, 1))
        for n in range(2 * PAGE_SIZE)
    )


def test_next_and_previous_show_the_customer_list_page_from_its_top(many_customers, page):
    """The pages swap in place: the browser would otherwise stay scrolled where
    the link was, at the foot of the new page, its first rows out of sight."""
    log_in(page, "carla", "pw-carla")
    first = results(page).first.text_content()

    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"\?page=2"))
    expect(results(page).first).not_to_have_text(first)
    expect(results(page).first).to_be_in_viewport()
    second = results(page).first.text_content()

    page.get_by_role("link", name="Next →").click()
    # Page 3 in place before its Previous is clicked: page 2's own would lead to page 1.
    expect(page).to_have_url(re.compile(r"\?page=3"))
    expect(results(page).first).not_to_have_text(second)
    page.get_by_role("link", name="← Previous").click()
    expect(page).to_have_url(re.compile(r"\?page=2"))
    expect(results(page).first).to_be_in_viewport()


def test_after_saving_or_cancelling_on_the_account_page_the_keyboard_stays_with_the_edit(page, accounts):
    """The button that was pressed is swapped away with its form: the focus
    goes to the heading of what was edited (the card, the contact, the
    contact list when the contact went), not back to the top of the page."""
    log_in(page, "carla", "pw-carla")
    page.goto(f"/customers/{accounts.pk}/")
    page.on("dialog", lambda dialog: dialog.accept())
    card = page.locator("#account-card")

    card.get_by_role("link", name="Edit card").click()
    card.get_by_role("button", name="Save card").press("Enter")
    expect(card.locator("form")).to_have_count(0)
    expect(card.get_by_role("heading", name="Acme Tools")).to_be_focused()
    card.get_by_role("link", name="Edit card").click()
    card.get_by_role("link", name="Cancel").press("Enter")
    expect(card.locator("form")).to_have_count(0)
    expect(card.get_by_role("heading", name="Acme Tools")).to_be_focused()

    contacts = page.locator("#contacts")
    jana = contacts.get_by_role("heading", name="Jana Novak")
    contacts.get_by_role("link", name="Edit Jana Novak").click()
    contacts.get_by_role("button", name="Save contact").press("Enter")
    expect(page.locator("#messages")).to_contain_text("Contact Jana Novak saved.")
    expect(jana).to_be_focused()
    contacts.get_by_role("link", name="Edit Jana Novak").click()
    contacts.get_by_role("link", name="Cancel").press("Enter")
    expect(contacts.locator("form[id^=contact-form]")).to_have_count(0)
    expect(jana).to_be_focused()

    contacts.get_by_role("link", name="Add absence for Jana Novak").click()
    form = contacts.locator("form[id^=absence-form]")
    today = timezone.localdate()
    form.get_by_label("Away from").fill(today.isoformat())
    form.get_by_label("Away until").fill((today + dt.timedelta(days=3)).isoformat())
    form.get_by_role("button", name="Save absence").press("Enter")
    expect(page.locator("#messages")).to_contain_text("Absence of Jana Novak recorded.")
    expect(jana).to_be_focused()
    contacts.get_by_role("link", name="Add absence for Jana Novak").click()
    form.get_by_role("link", name="Cancel").press("Enter")
    expect(form).to_have_count(0)
    expect(jana).to_be_focused()
    contacts.get_by_role("button", name=re.compile("^Remove absence")).press("Enter")
    expect(page.locator("#messages")).to_contain_text("Absence of Jana Novak removed.")
    expect(jana).to_be_focused()

    contacts.get_by_role("button", name="Delete Bob Keller").press("Enter")
    expect(page.locator("#messages")).to_contain_text("Contact Bob Keller removed.")
    expect(contacts.get_by_role("heading", name="Contacts", exact=True)).to_be_focused()
