"""The collections pages in a real browser: the review queue, the approvals,
the print queue and the Dunning card all work in place with htmx.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like tests/arcrm/test_browser.py. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections import workspace
from ar_collections.models import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    ExceptionKind,
    StepAction,
)
from ar_collections.views import PAGE_SIZE
from arcrm.dates import format_day
from customers.models import Segment
from tests.ar_collections.conftest import log_in
from tests.conftest import ARTIFACTS

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def accounts(make_customer, make_contact, make_invoice, other_collector):
    """Acme (Carla's) has a step to review, an open cycle and a letter to print;
    Initech (Otto's) has a credit hold waiting for approval."""
    today = timezone.localdate()
    run = DunningRun.objects.create(run_date=today)

    def action(customer, step, status, **fields) -> DunningAction:
        cycle, _ = DunningCycle.objects.get_or_create(
            customer=customer, closed_on=None, defaults={"number": 1, "opened_on": today}
        )
        made = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=status, planned_on=today,
            pay_by=today + dt.timedelta(days=10), **fields,
        )
        invoice = make_invoice(customer, issued=today - dt.timedelta(days=60), amount="480.00")
        DunningActionInvoice.objects.create(
            action=made, invoice=invoice, open_amount=invoice.open_amount, currency=invoice.currency
        )
        return made

    acme = make_customer(name="Acme Tools", segment=Segment.PROMPT)
    make_contact(acme, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    prompt = DunningStep.objects.filter(policy__segment="prompt")
    action(acme, prompt.get(position=1), ActionStatus.IN_REVIEW)
    letter = action(
        acme, prompt.get(action=StepAction.LETTER), ActionStatus.DONE, channel=Channel.LETTER,
        done_at=timezone.now(), recipient_address="Main Street 1, Berlin",
    )
    letter.letter_pdf.save(f"dunning-{letter.pk}.pdf", ContentFile(b"%PDF-1.4\n"))
    initech = make_customer(name="Initech", collector=other_collector, segment=Segment.SYSTEMATIC_LATE)
    hold = DunningStep.objects.get(policy__segment="systematic_late", action=StepAction.CREDIT_HOLD)
    action(initech, hold, ActionStatus.AWAITING_APPROVAL)
    return acme


@pytest.fixture
def page(accounts, browser_page) -> Page:
    """The browser opens once the accounts are written (see browser_page)."""
    return browser_page


def test_a_collector_reviews_a_step_and_clears_the_print_queue_in_place(page, accounts):
    log_in(page, "carla")
    page.get_by_role("link", name="Collections").click()
    expect(page.get_by_role("heading", name="Dunning runs")).to_be_visible()
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "collections-runs.png", full_page=True)
    page.get_by_role("link", name="Review", exact=True).click()  # not "Policy review"
    page.evaluate("window.notReloaded = true")

    item = page.locator("article.queue-item", has_text="Acme Tools")
    expect(item).to_contain_text("EUR 480.00")
    item.get_by_role("button", name="Skip").click()
    expect(item).to_contain_text("Say why this step is skipped.")
    page.screenshot(path=ARTIFACTS / "collections-review-rejected.png", full_page=True)
    item.get_by_label("Note").fill("Anna promised payment on the phone")
    item.get_by_role("button", name="Skip").click()
    expect(item.locator(".decided")).to_contain_text("Skipped")
    expect(item.locator(".decided")).to_contain_text("Anna promised payment on the phone")
    expect(page.locator("#messages")).to_contain_text("Acme Tools: e-mail skipped")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "collections-review-skipped.png", full_page=True)

    page.get_by_role("link", name="Print queue").click()
    page.evaluate("window.notReloaded = true")
    expect(page.get_by_role("link", name="Download the letter to Acme Tools")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "collections-print-queue.png", full_page=True)
    page.get_by_label("Printed: letter to Acme Tools").check()
    page.get_by_role("button", name="Mark ticked documents printed").click()
    expect(page.locator("#letters")).to_contain_text("Nothing waits to be printed.")
    expect(page.locator("#messages")).to_contain_text("1 letter marked as printed.")
    assert page.evaluate("window.notReloaded") is True

    page.goto(f"/customers/{accounts.pk}/")
    page.evaluate("window.notReloaded = true")
    card = page.locator("#dunning")
    card.get_by_label("Why is the account behind?").select_option("stuff_happens")
    card.get_by_role("button", name="Note the cause").click()
    expect(page.locator("#dunning")).to_contain_text("(noted by carla)")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "account-dunning-card.png", full_page=True)


def test_a_step_skipped_or_declined_without_a_reason_puts_the_keyboard_on_the_note(manager, page, accounts):
    """The item is redrawn with the refusal, and the button that was pressed
    with it: the focus goes to the note to write, not to the top of the page."""
    log_in(page, "carla")
    page.goto("/collections/review/")
    item = page.locator("article.queue-item", has_text="Acme Tools")
    item.get_by_role("button", name="Skip").press("Enter")
    expect(item).to_contain_text("Say why this step is skipped.")
    expect(item.get_by_label("Note")).to_be_focused()
    page.keyboard.type("Anna promised payment on the phone")
    item.get_by_role("button", name="Skip").press("Enter")
    expect(item.locator(".decided")).to_contain_text("Anna promised payment on the phone")

    page.context.clear_cookies()
    log_in(page, "maria")
    page.goto("/collections/approvals/")
    item = page.locator("article.queue-item", has_text="Initech")
    item.get_by_role("button", name="Decline").press("Enter")
    expect(item).to_contain_text("Write down why you decide this way.")
    expect(item.get_by_label("Why")).to_be_focused()


def test_a_manager_weighs_and_declines_a_credit_hold_and_overrides_a_segment(manager, page, accounts):
    log_in(page, "maria")
    page.goto("/collections/approvals/")
    page.evaluate("window.notReloaded = true")

    item = page.locator("article.queue-item", has_text="Initech")
    expect(item).to_contain_text("How long have we served them?")
    expect(item).to_contain_text("What is the relationship worth?")
    page.screenshot(path=ARTIFACTS / "collections-approvals.png", full_page=True)
    item.get_by_role("button", name="Decline").click()
    expect(item).to_contain_text("Write down why you decide this way.")
    item.get_by_label("Why").fill("Big order coming; talk to them first")
    item.get_by_role("button", name="Decline").click()
    expect(item.locator(".decided")).to_contain_text("Declined")
    expect(page.locator("#messages")).to_contain_text("Initech: credit hold declined.")
    assert page.evaluate("window.notReloaded") is True

    page.goto(f"/customers/{accounts.pk}/")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#account-card .badge").first).to_have_text("Prompt payer")
    card = page.locator("#dunning")
    card.get_by_label("Override the segment").select_option("distressed")
    card.get_by_label("Why", exact=True).fill("Lost their biggest client")
    card.get_by_role("button", name="Save segment").click()
    expect(page.locator("#messages")).to_contain_text("Segment set to Distressed.")
    # The account card heard the event and reloaded its badge.
    expect(page.locator("#account-card .badge").first).to_have_text("Distressed")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "account-segment-override.png", full_page=True)


@pytest.fixture
def long_print_queue(make_customer, make_invoice):
    """Carla's print queue: one page of letters and five more, written one after another."""
    letters_to_print(make_customer, make_invoice, PAGE_SIZE + 5)


@pytest.fixture
def short_print_queue(make_customer, make_invoice):
    """Carla's print queue: four letters, Customer 00 to 03."""
    letters_to_print(make_customer, make_invoice, 4)


def letters_to_print(make_customer, make_invoice, count: int) -> None:
    today = timezone.localdate()
    run = DunningRun.objects.create(run_date=today)
    step = DunningStep.objects.get(policy__segment="prompt", action=StepAction.LETTER)
    for n in range(count):
        customer = make_customer(name=f"Customer {n:02d}")
        cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=today)
        letter = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=ActionStatus.DONE,
            channel=Channel.LETTER, planned_on=today, pay_by=today + dt.timedelta(days=10),
            done_at=timezone.now(), recipient_address="Main Street 1, Berlin",
        )
        invoice = make_invoice(customer, issued=today - dt.timedelta(days=60))
        DunningActionInvoice.objects.create(action=letter, invoice=invoice, open_amount=invoice.open_amount,
                                            currency=invoice.currency)
        letter.letter_pdf.save(f"dunning-{letter.pk}.pdf", ContentFile(b"%PDF-1.4\n"))


def test_letters_marked_printed_or_withdrawn_on_the_second_page_leave_the_collector_there(
    long_print_queue, browser_page
):
    """The queue comes back at the page the collector was on, with the letters
    moved up, not at the first page under an address that says the second."""
    page = browser_page
    log_in(page, "carla")
    page.goto("/collections/letters/")
    rows = page.locator("#letters tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"/collections/letters/\?after="))
    second = page.url
    expect(rows).to_have_count(5)
    page.evaluate("window.notReloaded = true")

    page.get_by_label(f"Printed: letter to Customer {PAGE_SIZE:02d}").check()
    page.get_by_role("button", name="Mark ticked documents printed").click()

    expect(page.locator("#messages")).to_contain_text("1 letter marked as printed.")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text(f"Customer {PAGE_SIZE + 1:02d}")
    assert page.url == second
    assert page.evaluate("window.notReloaded") is True

    page.get_by_role("link", name=f"Withdraw the letter to Customer {PAGE_SIZE + 1:02d}").click()
    page.get_by_label("Why is it withdrawn?").fill("Paid on the phone")
    page.get_by_role("button", name="Withdraw the letter").click()

    expect(page.locator("#messages")).to_contain_text(f"Letter to Customer {PAGE_SIZE + 1:02d} withdrawn.")
    expect(page).to_have_url(re.compile(re.escape(second) + "#letter-"))
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text(f"Customer {PAGE_SIZE + 2:02d}")


def test_when_a_decided_step_leaves_the_queue_the_keyboard_goes_to_what_is_left(manager, page, accounts):
    """Send or Approve takes the step off the queue with the button pressed:
    with no other step left, the focus goes to the queue's count, which says
    so, not back to the top of the page."""
    log_in(page, "carla")
    page.goto("/collections/review/")
    item = page.locator("article.queue-item", has_text="Acme Tools")
    item.get_by_role("button", name="Send").press("Enter")
    expect(page.locator("#review-count")).to_contain_text("0 steps")
    expect(page.locator("#review-count")).to_be_focused()

    page.context.clear_cookies()
    log_in(page, "maria")
    page.goto("/collections/approvals/")
    item = page.locator("article.queue-item", has_text="Initech")
    item.get_by_label("Why").fill("They paid the overdue invoices")
    item.get_by_role("button", name=re.compile("^Approve")).press("Enter")
    expect(page.locator("#approval-count")).to_contain_text("0 steps")
    expect(page.locator("#approval-count")).to_be_focused()


def test_after_starting_a_run_the_keyboard_lands_on_the_new_run(manager, browser_page):
    """Start asks on the page itself, not in a browser dialog: the question
    names the day and what the run does, and takes the keyboard; confirmed,
    the start button goes once the run has started: the focus goes to the
    new run's status in the table, and stays there when the table refreshes
    itself, not back to the top of the page."""
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, "maria")
    page.goto("/collections/runs/")
    page.evaluate("window.notReloaded = true")
    today = format_day(timezone.localdate())
    page.get_by_role("button", name=re.compile("^Start a run for")).press("Enter")
    question = page.locator("#run-confirm")
    expect(question).to_have_text(f"Start the run for {today}? It plans every step due that day and at "
                                  "once sends the e-mails and letters that need no review.")
    expect(question).to_be_focused()
    assert DunningRun.objects.count() == 0
    page.screenshot(path=ARTIFACTS / "run-start-confirm.png", full_page=True)
    page.keyboard.press("Tab")
    yes = page.get_by_role("button", name=f"Yes, start the run for {today}")
    expect(yes).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#messages")).to_contain_text("has started")
    assert dialogs == []
    assert page.evaluate("window.notReloaded") is True
    status = page.locator("#runs tbody tr").first.get_by_role("cell").first
    expect(status).to_have_text("Running")
    expect(status).to_be_focused()
    # What the table's own refresh every 10 seconds asks for.
    page.evaluate("htmx.ajax('GET', '/collections/runs/', {target: '#runs', swap: 'outerHTML'})")
    expect(page.locator("#runs tbody tr").first.get_by_role("cell").first).to_be_focused()


def test_a_run_asked_about_on_the_page_and_cancelled_starts_nothing(manager, browser_page):
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, "maria")
    page.goto("/collections/runs/")
    page.get_by_role("button", name=re.compile("^Start a run for")).press("Enter")
    expect(page.locator("#run-confirm")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    cancel = page.get_by_role("link", name="Cancel")
    expect(cancel).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_role("button", name=re.compile("^Start a run for"))).to_be_visible()
    expect(page.locator("#run-confirm")).to_have_count(0)
    assert dialogs == []
    assert DunningRun.objects.count() == 0


def test_when_letters_leave_the_print_queue_the_keyboard_goes_to_the_next(short_print_queue, browser_page):
    """A letter marked printed or withdrawn leaves the list, with the button
    pressed or the page of its own: the focus goes to the next letter's box,
    or the one before when it was the last, or the list when none is left."""
    page = browser_page
    log_in(page, "carla")
    page.goto("/collections/letters/")

    def box(n: int):
        return page.get_by_label(f"Printed: letter to Customer {n:02d}")

    def mark(n: int) -> None:
        box(n).focus()
        page.keyboard.press("Space")
        page.get_by_role("button", name="Mark ticked documents printed").press("Enter")
        expect(box(n)).to_have_count(0)

    page.get_by_role("link", name="Withdraw the letter to Customer 01").click()
    page.get_by_label("Why is it withdrawn?").fill("Paid on the phone")
    page.get_by_role("button", name="Withdraw the letter").click()
    expect(page.locator("#messages")).to_contain_text("Letter to Customer 01 withdrawn.")
    expect(box(2)).to_be_focused()

    mark(2)
    expect(box(3)).to_be_focused()
    mark(3)
    expect(box(0)).to_be_focused()
    mark(0)
    expect(page.locator("#letters")).to_contain_text("Nothing waits to be printed.")
    expect(page.locator("#letters")).to_be_focused()


@pytest.fixture
def long_approvals(make_customer, make_invoice, collector):
    """A page of credit holds waiting for a manager and one more, and Carla's
    request to pause Acme's dunning beyond her limit."""
    today = timezone.localdate()
    run = DunningRun.objects.create(run_date=today)
    hold = DunningStep.objects.get(policy__segment="systematic_late", action=StepAction.CREDIT_HOLD)
    for n in range(PAGE_SIZE + 1):
        customer = make_customer(name=f"Customer {n:02d}", segment=Segment.SYSTEMATIC_LATE)
        cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=today)
        action = DunningAction.objects.create(run=run, cycle=cycle, customer=customer, step=hold,
                                              status=ActionStatus.AWAITING_APPROVAL, planned_on=today,
                                              pay_by=today + dt.timedelta(days=10))
        invoice = make_invoice(customer, issued=today - dt.timedelta(days=60))
        DunningActionInvoice.objects.create(action=action, invoice=invoice, open_amount=invoice.open_amount,
                                            currency=invoice.currency)
    acme = make_customer(name="Acme Tools")
    workspace.exception_request(customer=acme, actor=collector, kind=ExceptionKind.PAUSE, reason="Bank loan",
                                pause_until=today + dt.timedelta(days=60), on=today)


def test_a_request_decided_from_the_second_page_of_the_approvals_goes_back_to_it(
    long_approvals, manager, browser_page
):
    page = browser_page
    log_in(page, "maria")
    page.goto("/collections/approvals/")
    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"/collections/approvals/\?after="))
    second = page.url

    page.get_by_role("link", name="Decide").click()
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(second)

    page.get_by_role("link", name="Decide").click()
    page.get_by_label("Reject").check()
    page.get_by_label("Note").fill("Not before the bank says yes")
    page.get_by_role("button", name="Record decision").click()
    # Back on that page, at the count of what waits: no other request is left to go on to.
    expect(page).to_have_url(second + "#approval-count")
    expect(page.locator("#messages")).to_contain_text("Exception for Acme Tools: rejected.")
