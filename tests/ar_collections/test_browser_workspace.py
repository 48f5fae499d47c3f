"""The collector's workspace in a real browser: from the worklist to the
account page, where a call with a promise, a dispute and a pause change the
header, the timeline and the dunning preview in place; the timeline's pages
and filters.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like tests/arcrm/test_browser.py. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections.models import DunningPause, PaymentBehaviour, WorkKind
from ar_collections.timeline import PAGE_SIZE
from ar_collections.worklist import item_add
from ar_collections.workspace_views import WORKLIST_PAGE_SIZE
from arcrm.dates import format_day
from customers.models import EventKind, Segment, TimelineEvent
from tests.ar_collections.conftest import log_in, panel_open
from tests.conftest import ARTIFACTS

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Older events on Acme's timeline: more than a page, every tenth one a call.
OLD_EVENTS = 32
OLD_CALLS = 4


@pytest.fixture
def acme(make_customer, make_contact, make_invoice, manager):
    """A prompt payer with three overdue invoices, a call on Carla's worklist
    and a long history; Globex has a less urgent item below it. Maria, a
    manager, is there to hand items to."""
    # Dates count from the real today: a frozen server clock would set the
    # session cookie's expiry in Chromium's past, and the browser would drop it.
    today = timezone.localdate()
    acme = make_customer(name="Acme Tools", segment=Segment.PROMPT,
                         segment_reason="Paid every invoice on time for three years.")
    make_contact(acme, name="Anna Clerk", email="anna@acme.test", phone="+49 30 1234",
                 is_primary_billing=True)
    overdue = [("INV-P", 40, "500.00"), ("INV-D", 20, "700.00"), ("INV-X", 10, "300.00")]
    for number, days_late, amount in overdue:
        due = today - dt.timedelta(days=days_late)
        make_invoice(acme, number=number, issued=due - dt.timedelta(days=30), due=due, amount=amount)
    PaymentBehaviour.objects.create(
        customer=acme, computed_on=today, open_amount=Decimal("1500.00"), overdue_amount=Decimal("1500.00"),
        max_days_overdue=40, overdue_invoices=3,
    )
    now = timezone.now()
    TimelineEvent.objects.bulk_create(
        TimelineEvent(
            customer=acme, occurred_at=now - dt.timedelta(days=n + 1),
            kind=EventKind.CALL if n % 10 == 0 else EventKind.NOTE,
            summary=f"Old call {n}: no answer" if n % 10 == 0 else f"Old note {n}",
        )
        for n in range(OLD_EVENTS)
    )
    item_add(kind=WorkKind.CALL, key="call:acme", customer=acme, due_on=today,
             title="Call Anna Clerk about three overdue invoices")
    globex = make_customer(name="Globex Corporation", segment=Segment.SYSTEMATIC_LATE)
    item_add(kind=WorkKind.PERSONAL, key="personal:globex", customer=globex, due_on=today,
             title="Personal treatment: Globex is behind")
    return acme


@pytest.fixture
def page(acme, browser_page) -> Page:
    """The browser opens once the data is written (see browser_page)."""
    return browser_page


def events(page: Page):
    return page.locator("#timeline-events li.event")


def preview(page: Page, which: str):
    return page.locator(f"#dunning-preview ul[data-list={which}] li")


def test_a_collector_works_an_account_from_the_worklist_without_reloading(page, acme):
    log_in(page, "carla")
    page.get_by_role("link", name="My work").click()
    expect(page.get_by_role("heading", name="My work today")).to_be_visible()
    items = page.locator("ol.worklist li.work-item")
    expect(items).to_have_count(2)
    # Most urgent first, the priority and its parts in plain sight.
    first = items.first
    expect(first).to_contain_text("Call Anna Clerk about three overdue invoices")
    expect(first.locator(".work-priority strong")).to_have_text("14")
    expect(first.locator(".why")).to_contain_text("EUR 1,500.00 overdue (+1)")
    expect(first.locator(".why")).to_contain_text("40 days late (+13)")
    expect(items.nth(1)).to_contain_text("Globex Corporation")
    hand_over = first.get_by_label("Hand Acme Tools: Call Anna Clerk about three overdue invoices to")
    expect(hand_over.locator("option")).to_have_text(["Choose a person", "maria"])
    expect(hand_over).to_have_value("")
    page.screenshot(path=ARTIFACTS / "workspace-worklist.png", full_page=True)

    first.get_by_role("link", name="Acme Tools").click()
    expect(page).to_have_url(re.compile(rf"/customers/{acme.pk}/$"))
    header = page.locator("#account-header")
    expect(header).to_contain_text("Anna Clerk")
    expect(header.locator("[data-figure=overdue]")).to_have_text("EUR 1,500.00")
    expect(header.locator("[data-figure=pauses]")).to_have_text("None")
    expect(preview(page, "listed")).to_have_text([re.compile("^INV-P"), re.compile("^INV-D"),
                                                  re.compile("^INV-X")])
    expect(events(page)).to_have_count(PAGE_SIZE)
    page.screenshot(path=ARTIFACTS / "workspace-account.png", full_page=True)

    # A marker on window survives htmx swaps but not a page load.
    page.evaluate("window.notReloaded = true")
    # Nothing is paused: nothing offers to resume.
    expect(page.get_by_role("button", name="Resume dunning")).to_have_count(0)
    panel = page.locator("#action-panel")
    panel_open(page, "Log a call")
    expect(panel.get_by_role("heading", name="Log a call")).to_be_visible()
    panel.get_by_label("Contact", exact=True).select_option(label="Anna Clerk – Accounts payable / billing")
    panel.get_by_label("Reached").check()
    panel.get_by_label("What was said").fill("Invoice was on the wrong desk")
    panel.get_by_label("Promised amount").fill("500.00")
    promised_on = timezone.localdate() + dt.timedelta(days=7)
    panel.get_by_label("Promised by").fill(promised_on.isoformat())
    panel.get_by_role("group", name="Promise covers").get_by_label(re.compile(r"\bINV-P\b")).check()
    page.screenshot(path=ARTIFACTS / "workspace-call-form.png", full_page=True)
    panel.get_by_role("button", name="Log call").click()

    expect(page.locator("#messages")).to_contain_text("Call logged with a promise to pay.")
    expect(panel).to_be_empty()
    expect(events(page).nth(0)).to_contain_text("Promise to pay EUR 500.00")
    expect(events(page).nth(1)).to_contain_text("Call to Anna Clerk: reached — Invoice was on the wrong desk")
    expect(events(page).nth(1).locator(".badge")).to_have_text("Call")
    expect(header.locator("[data-figure=pauses]")).to_contain_text("Promise to pay on INV-P until")
    expect(page.locator("#commitments")).to_contain_text(f"Promise: EUR 500.00 by {promised_on:%-d %b %Y}")
    expect(preview(page, "listed")).to_have_text([re.compile("^INV-D"), re.compile("^INV-X")])
    expect(preview(page, "held")).to_have_text([re.compile("^INV-P · Promise to pay until")])
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "workspace-after-call.png", full_page=True)

    page.get_by_role("link", name="Dispute", exact=True).click()
    expect(panel.get_by_role("heading", name="Open a dispute")).to_be_visible()
    due = timezone.localdate() - dt.timedelta(days=20)
    panel.get_by_label("Invoice").select_option(label=f"INV-D · due {format_day(due)} · EUR 700.00")
    panel.get_by_label("Reason").select_option(label="Quantity differs from what was delivered")
    panel.get_by_role("button", name="Open dispute").click()
    # Rejected: the form comes back in place with the reason and what was chosen.
    expect(panel.locator(".field-error")).to_have_text("This field is required.")
    expect(panel.get_by_label("Reason")).to_have_value("quantity")
    expect(preview(page, "listed")).to_have_count(2)
    page.screenshot(path=ARTIFACTS / "workspace-dispute-rejected.png", full_page=True)
    panel.get_by_label("What the customer says").fill("Only 8 of 10 pallets arrived")
    panel.get_by_role("button", name="Open dispute").click()

    expect(page.locator("#messages")).to_contain_text("Dispute on INV-D opened")
    expect(events(page).first).to_contain_text("Dispute opened on INV-D")
    expect(preview(page, "listed")).to_have_text([re.compile("^INV-X")])
    expect(preview(page, "held")).to_have_text([
        re.compile("^INV-P · Promise to pay until"), re.compile("^INV-D · Open dispute until resolved"),
    ])
    expect(header.locator("[data-figure=pauses]")).to_contain_text("Open dispute on INV-D until resolved")
    expect(page.locator("#commitments")).to_contain_text("Dispute on INV-D")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "workspace-after-dispute.png", full_page=True)


def test_a_collector_pages_through_and_filters_the_timeline(page, acme):
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    page.evaluate("window.notReloaded = true")
    expect(events(page)).to_have_count(PAGE_SIZE)
    expect(events(page).first).to_contain_text("Old call 0")

    page.locator("#timeline-more").get_by_role("link", name="Load more").click()
    expect(events(page)).to_have_count(OLD_EVENTS)
    expect(events(page).last).to_contain_text(f"Old note {OLD_EVENTS - 1}")
    expect(page.locator("#timeline-more")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True

    page.locator(".timeline-filters").get_by_label("Calls").check()
    expect(events(page)).to_have_count(OLD_CALLS)
    for n in range(OLD_CALLS):
        expect(events(page).nth(n)).to_have_class(re.compile(r"\bevent-call\b"))
    # The filter is in the address bar: the page can be bookmarked and reloaded as it is.
    expect(page).to_have_url(re.compile(r"[?&]kind=call\b"))
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "workspace-timeline-filtered.png", full_page=True)

    page.reload()
    expect(page).to_have_url(re.compile(rf"/customers/{acme.pk}/\?kind=call\b"))
    expect(page.locator(".timeline-filters").get_by_label("Calls")).to_be_checked()
    expect(events(page)).to_have_count(OLD_CALLS)
    expect(page.locator("#timeline")).to_contain_text("Clear filters")

    # On a narrow screen the side column (the dunning preview) goes below the timeline.
    page.set_viewport_size({"width": 600, "height": 900})
    timeline_box = page.locator("#timeline-card").bounding_box()
    assert page.locator("#dunning-preview").bounding_box()["y"] > timeline_box["y"] + timeline_box["height"]
    page.screenshot(path=ARTIFACTS / "workspace-account-narrow.png", full_page=True)


def test_a_keyboard_user_keeps_their_place_in_the_timeline_filters(page, acme):
    """The filters are redrawn with the events they select: the box just
    ticked keeps the keyboard, and Tab goes on to the next one, rather than
    the focus falling to the top of the page after every tick."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    filters = page.locator(".timeline-filters")
    filters.get_by_label("Calls").focus()
    page.keyboard.press("Space")
    expect(events(page)).to_have_count(OLD_CALLS)
    expect(filters.get_by_label("Calls")).to_be_checked()
    expect(filters.get_by_label("Calls")).to_be_focused()
    page.keyboard.press("Tab")
    expect(filters.get_by_label("Notes", exact=True)).to_be_focused()
    page.keyboard.press("Space")
    expect(events(page)).to_have_count(PAGE_SIZE)
    expect(filters.get_by_label("Notes", exact=True)).to_be_focused()

    filters.get_by_role("searchbox", name="Invoice").fill("INV-NONE")
    filters.get_by_role("searchbox", name="Invoice").press("Enter")
    expect(filters).to_contain_text("No invoice INV-NONE on this account.")
    expect(filters.get_by_role("searchbox", name="Invoice")).to_be_focused()


def test_a_keyboard_user_who_loads_more_of_the_timeline_reads_on_from_the_first_event_loaded(page, acme):
    """"Load more" goes with the events it brings: the focus would fall to the
    top of the page, and a keyboard or screen-reader user would tab through
    the whole page again to reach where they were."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    expect(events(page)).to_have_count(PAGE_SIZE)

    page.locator("#timeline-more").get_by_role("link", name="Load more").focus()
    page.keyboard.press("Enter")

    expect(events(page)).to_have_count(OLD_EVENTS)
    first_loaded = events(page).nth(PAGE_SIZE)
    expect(first_loaded).to_be_focused()
    page.keyboard.press("Tab")
    # On from there: the next thing to tab to is inside or after the new events, not the page's top.
    assert page.evaluate("""(n) => {
        const loaded = document.querySelectorAll('#timeline-events li.event')[n];
        return !!(loaded.compareDocumentPosition(document.activeElement) & Node.DOCUMENT_POSITION_FOLLOWING
                  || loaded.contains(document.activeElement));
    }""", PAGE_SIZE)


def test_a_tick_made_the_moment_the_filters_are_redrawn_is_not_lost(page, acme):
    """What htmx swaps in answers the keyboard at once. It used to wake up
    20 ms later: a second box ticked in between was ticked on the screen and
    never asked for, so the list showed one filter and the boxes two."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    page.evaluate("""() => document.body.addEventListener("htmx:afterSwap", () => setTimeout(() => {
        document.getElementById("timeline-kind-note").click();
    }, 0), {once: true})""")
    filters = page.locator(".timeline-filters")
    filters.get_by_label("Calls").check()
    expect(filters.get_by_label("Notes", exact=True)).to_be_checked()
    expect(events(page)).to_have_count(PAGE_SIZE)
    expect(page).to_have_url(re.compile(r"kind=call&kind=note|kind=note&kind=call"))


def test_a_collector_pauses_and_resumes_dunning_in_place(page, acme):
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    page.evaluate("window.notReloaded = true")
    pauses = page.locator("#account-header [data-figure=pauses]")

    panel_open(page, "Pause dunning")
    panel = page.locator("#action-panel")
    panel.get_by_label("Until").fill((timezone.localdate() + dt.timedelta(days=5)).isoformat())
    panel.get_by_label("Why").fill("Owner on holiday, back next week")
    panel.get_by_role("button", name="Pause dunning").click()
    expect(pauses).to_contain_text("Manual hold on the account until")
    expect(preview(page, "listed")).to_have_count(0)

    # A colleague lifts the hold meanwhile: the refusal says why, shows the
    # account as it now stands and leaves the action bar working.
    lifted = DunningPause.objects.filter(customer=acme, lifted_at__isnull=True)
    assert lifted.update(lifted_at=timezone.now(), lifted_by=acme.collector) == 1
    resume = page.get_by_role("button", name="Resume dunning")
    resume.click()
    expect(page.locator("#messages")).to_contain_text("No manual pause is in force on this account.")
    expect(pauses).to_have_text("None")
    expect(resume).to_have_count(0)
    page.get_by_role("link", name="Add a note").click()
    expect(panel.get_by_role("heading", name="Add a note")).to_be_visible()

    panel_open(page, "Pause dunning")
    panel.get_by_label("Until").fill((timezone.localdate() + dt.timedelta(days=5)).isoformat())
    panel.get_by_label("Why").fill("Owner on holiday, back next week")
    panel.get_by_role("button", name="Pause dunning").click()
    expect(pauses).to_contain_text("Manual hold on the account until")
    expect(resume).to_be_visible()
    resume.click()
    expect(page.locator("#messages")).to_contain_text("Dunning resumed (1 pause lifted).")
    expect(pauses).to_have_text("None")
    expect(resume).to_have_count(0)
    expect(preview(page, "listed")).to_have_count(3)
    page.get_by_role("link", name="Add a note").click()
    expect(panel.get_by_role("heading", name="Add a note")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True


def test_after_back_the_collector_picker_names_whose_list_is_shown(page, acme, other_collector):
    log_in(page, "maria")
    page.goto("/collections/worklist/")
    picker = page.get_by_label("Collector")
    picker.select_option(label="carla")
    expect(page.get_by_role("heading", name="Work today for carla")).to_be_visible()
    picker.select_option(label="otto")
    expect(page.get_by_role("heading", name="Work today for otto")).to_be_visible()

    page.go_back()
    expect(page).to_have_url(re.compile(r"\?collector=\d+$"))
    expect(page.get_by_role("heading", name="Work today for carla")).to_be_visible()
    expect(page.locator("ol.worklist")).to_contain_text("Call Anna Clerk")
    expect(picker.locator("option:checked")).to_have_text("carla")


@pytest.fixture
def long_worklist(acme):
    """More items on Carla's list than two pages show."""
    today = timezone.localdate()
    for n in range(2 * WORKLIST_PAGE_SIZE + 5):
        item_add(kind=WorkKind.PERSONAL, key=f"personal:acme:{n}", customer=acme, due_on=today,
                 title=f"Check in with Acme ({n})")


def test_next_and_previous_show_the_worklist_page_from_its_top(long_worklist, page):
    """The pages swap in place: the browser would otherwise stay scrolled where
    the link was, at the foot of the new page, its first items out of sight."""
    log_in(page, "carla")
    page.goto("/collections/worklist/")
    items = page.locator("ol.worklist > li")
    expect(items).to_have_count(WORKLIST_PAGE_SIZE)
    first = items.first.text_content()

    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"\?after="))
    expect(items.first).not_to_have_text(first)
    expect(items.first).to_be_in_viewport()

    page.get_by_role("link", name="← Previous").click()
    # Back on the first page, at its own address: no position in it.
    expect(page).to_have_url(re.compile(r"/collections/worklist/$"))
    expect(items.first).to_have_text(first)
    expect(items.first).to_be_in_viewport()


def test_a_keyboard_user_lands_in_the_form_and_on_the_field_to_correct(page, acme):
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    panel = page.locator("#action-panel")
    page.get_by_role("link", name="Pause dunning").focus()
    page.keyboard.press("Enter")
    expect(panel.get_by_role("heading", name="Pause dunning")).to_be_visible()
    expect(panel.get_by_label("Invoice")).to_be_focused()

    panel.get_by_label("Until").fill((timezone.localdate() + dt.timedelta(days=5)).isoformat())
    panel.get_by_role("button", name="Pause dunning").press("Enter")
    expect(panel.locator(".field-error")).to_have_text("This field is required.")
    expect(panel.get_by_label("Why")).to_be_focused()
    page.keyboard.type("Owner on holiday")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#messages")).to_contain_text("Dunning paused until")


def test_a_message_after_an_action_lands_in_the_live_region_screen_readers_already_watch(page, acme):
    """A live region is announced when what is in it changes; one swapped in
    whole, message and all, is a new region that most screen readers pass over."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    page.evaluate("document.getElementById('messages').dataset.watched = 'yes'")

    panel_open(page, "Add a note")
    page.locator("#action-panel").get_by_label("Note").fill("Spoke to their CFO")
    page.locator("#action-panel").get_by_role("button", name="Add note").click()

    messages = page.locator("#messages")
    expect(messages).to_have_text("Note added.")
    expect(messages).to_have_attribute("data-watched", "yes")
    expect(messages).to_have_attribute("aria-live", "polite")


def test_a_refused_click_says_why_instead_of_doing_nothing(page, acme, other_collector):
    """htmx swaps nothing for an error answer: the account was handed to
    another collector while Carla had its page open, and her note is refused
    (403) with the server's reason in the message area."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    panel_open(page, "Add a note")
    page.locator("#action-panel").get_by_label("Note").fill("Spoke to their CFO")
    type(acme).objects.filter(pk=acme.pk).update(collector=other_collector)

    page.locator("#action-panel").get_by_role("button", name="Add note").click()

    messages = page.locator("#messages")
    expect(messages).to_contain_text("Nothing was changed.")
    expect(messages.get_by_role("alert")).to_have_count(1)
    notes = TimelineEvent.objects.filter(customer=acme, kind=EventKind.NOTE, summary__contains="CFO")
    assert not notes.exists()
    page.screenshot(path=ARTIFACTS / "account-refused-click.png", full_page=True)


def test_a_form_opening_on_a_group_of_boxes_focuses_its_first_box_only(page, acme):
    """Resolving a dispute starts with a choice of outcome, a group of radio
    buttons: the keyboard lands on the first one, and only that one asks for
    the focus (a page may name one autofocus, not one per box)."""
    from ar_collections.workspace import dispute_open

    invoice = acme.invoices.get(number="INV-D")
    dispute_open(customer=acme, actor=acme.collector, invoice=invoice, reason="quantity",
                 description="Only 8 of 10 pallets arrived", on=timezone.localdate())
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    page.locator("#commitments").get_by_role("link", name="Resolve").focus()
    page.keyboard.press("Enter")
    panel = page.locator("#action-panel")
    outcomes = panel.get_by_role("radio")
    expect(outcomes.first).to_be_focused()
    expect(panel.locator("[autofocus]")).to_have_count(1)


def test_a_keyboard_user_goes_on_to_the_next_item_when_one_leaves_the_worklist(page, acme):
    """Done takes the item off the list with the button pressed: the focus goes
    to the next item, or the one before when it was the last, or the list's
    heading when nothing is left, not back to the top of the page."""
    initech = type(acme).objects.create(account_number="C-INITECH", name="Initech", collector=acme.collector,
                                        customer_since=dt.date(2020, 1, 1))
    item_add(kind=WorkKind.PERSONAL, key="personal:initech", customer=initech,
             due_on=timezone.localdate(), title="Personal treatment: Initech is behind")
    log_in(page, "carla")
    page.goto("/collections/worklist/")
    items = page.locator("ol.worklist li.work-item")
    expect(items).to_have_count(3)
    last = items.nth(2)
    last_link = last.get_by_role("link").first

    items.nth(1).get_by_role("button", name=re.compile("^Done")).press("Enter")
    expect(page.locator("ol.worklist")).to_contain_text("Done.")
    expect(last_link).to_be_focused()
    last.get_by_role("button", name=re.compile("^Done")).press("Enter")
    expect(items.first.get_by_role("link", name="Acme Tools")).to_be_focused()
    items.first.get_by_role("button", name=re.compile("^Done")).press("Enter")
    expect(page.get_by_role("heading", name="My work today")).to_be_focused()


def test_after_adding_a_note_from_the_keyboard_the_focus_goes_back_to_the_action_that_opened_it(page, acme):
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    opener = page.locator(".action-bar").get_by_role("link", name="Add a note")
    opener.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#action-panel")
    panel.get_by_label("Note").fill("Spoke to their CFO")
    panel.get_by_role("button", name="Add note").press("Enter")

    expect(page.locator("#messages")).to_have_text("Note added.")
    expect(events(page).first).to_contain_text("Spoke to their CFO")
    expect(opener).to_be_focused()
    page.keyboard.press("Enter")  # a second note, straight away
    expect(panel.get_by_label("Note")).to_be_visible()


def test_after_cancelling_a_panel_from_the_keyboard_the_focus_goes_back_to_its_action(page, acme):
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    opener = page.locator(".action-bar").get_by_role("link", name="Add a note")
    opener.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#action-panel")
    panel.get_by_label("Note").fill("Half a thought")
    panel.get_by_role("link", name="Cancel").press("Enter")

    expect(panel.get_by_label("Note")).to_have_count(0)
    expect(opener).to_be_focused()
    page.keyboard.press("Enter")  # opened again, straight away
    expect(panel.get_by_label("Note")).to_be_visible()


def test_escape_closes_a_panel_as_its_cancel_link_does_and_the_focus_goes_back_to_its_action(page, acme):
    """From the keyboard the way out of a form is Escape, not a dozen Tabs to
    its Cancel link."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    opener = page.locator(".action-bar").get_by_role("link", name="Log a call")
    opener.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#action-panel")
    panel.get_by_label("What was said").fill("Half a thought")
    page.keyboard.press("Escape")

    expect(panel.get_by_label("What was said")).to_have_count(0)
    expect(opener).to_be_focused()
    expect(events(page).first).not_to_contain_text("Half a thought")


def test_after_deciding_an_exception_from_the_keyboard_the_focus_stays_in_the_card_that_listed_it(
    acme, collector, manager, browser_page
):
    """The Decide link goes with the request decided: the focus would fall to
    the top of the page. It goes to the heading of the card that listed the
    request instead, where the manager left off."""
    from ar_collections import workspace
    from ar_collections.models import ExceptionKind

    today = timezone.localdate()
    workspace.exception_request(customer=acme, actor=collector, kind=ExceptionKind.PAUSE,
                                reason="Owner asks for six weeks.", on=today,
                                pause_until=today + dt.timedelta(days=42))
    page = browser_page
    log_in(page, "maria")
    page.goto(f"/customers/{acme.pk}/")
    decide = page.locator("#commitments").get_by_role("link", name="Decide")
    decide.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#action-panel")
    panel.get_by_label("Reject").check()
    panel.get_by_label("Note").fill("Six weeks is too long for them.")
    panel.get_by_role("button", name="Record decision").press("Enter")

    expect(page.locator("#messages")).to_have_text("Exception for Acme Tools: rejected.")
    expect(page.get_by_role("heading", name="Promises, plans and disputes")).to_be_focused()


def test_after_cancelling_a_finished_ladder_s_decision_the_focus_goes_back_to_its_done_link(page, acme):
    item_add(kind=WorkKind.LADDER_ENDED, key="ladder:acme", customer=acme, due_on=timezone.localdate(),
             title="Acme's ladder finished: decide the next action")
    log_in(page, "carla")
    page.goto("/collections/worklist/")
    item = page.locator("ol.worklist li.work-item", has_text="ladder finished")
    done = item.get_by_role("link", name="Done…")
    done.focus()
    page.keyboard.press("Enter")
    panel = page.locator(".work-decision")
    expect(panel.get_by_role("heading", name="What was decided?")).to_be_visible()
    panel.get_by_role("link", name="Cancel").press("Enter")

    expect(panel).to_have_count(0)
    expect(done).to_be_focused()
    page.keyboard.press("Enter")  # opened again, straight away
    expect(panel.get_by_role("heading", name="What was decided?")).to_be_visible()


def test_a_collector_on_a_call_sees_the_open_invoices_without_scrolling_past_the_whole_page(page, acme):
    """What a collector reads first on a call: the invoices the customer owes,
    right after the account's key figures, not at the foot of a long page."""
    log_in(page, "carla")
    page.goto(f"/customers/{acme.pk}/")
    heading = page.get_by_role("heading", name="Open invoices", level=2)
    expect(heading).to_be_visible()
    box = heading.bounding_box()
    assert box["y"] + box["height"] <= page.viewport_size["height"], box
    expect(page.locator("#open-invoices tbody tr")).to_have_count(3)
    # The page's headings still read in order: its one h1, then the cards' h2s.
    levels = page.evaluate("() => [...document.querySelectorAll('main h1, main h2, main h3')]"
                           ".map((h) => Number(h.tagName[1]))")
    assert levels[0] == 1 and levels.count(1) == 1, levels
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
