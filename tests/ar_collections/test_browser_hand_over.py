"""A hand-over in a real browser: Carla hands her call to Otto with a reason
from her worklist; Otto finds it on his, reads why it came, opens the
account, adds a note and ticks the item off; the account page tells Carla
where it went while it was open.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like test_browser_workspace.py. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections.models import WorkItem, WorkKind, WorkStatus
from ar_collections.worklist import item_add
from customers.models import EventKind, TimelineEvent
from tests.ar_collections.conftest import log_in, panel_open
from tests.conftest import ARTIFACTS

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TITLE = "Call Anna Clerk about three overdue invoices"
WHY = "I am at the trade fair all day"


@pytest.fixture
def acme(make_customer, collector, other_collector):
    acme = make_customer(name="Acme Tools")
    item_add(kind=WorkKind.CALL, key="call:acme", customer=acme, due_on=timezone.localdate(), title=TITLE)
    return acme


@pytest.fixture
def page(acme, browser_page) -> Page:
    """The browser opens once the data is written (see browser_page)."""
    return browser_page


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()


def test_a_collector_hands_a_call_to_a_fellow_collector_who_works_it_and_ticks_it_off(page, acme):
    log_in(page, "carla")
    page.goto("/collections/worklist/")
    item = page.locator("ol.worklist li.work-item").first
    item.get_by_label(f"Hand Acme Tools: {TITLE} to").select_option(label="otto")
    # Without a reason the browser does not send it: the field says it is needed.
    item.get_by_role("button", name="Hand over").click()
    expect(item).to_be_visible()
    assert WorkItem.objects.get(key="call:acme").assignee.username == "carla"
    item.get_by_label(f"Why you hand Acme Tools: {TITLE} over").fill(WHY)
    item.get_by_role("button", name="Hand over").click()
    expect(page.locator("ol.worklist")).to_contain_text("Handed to otto.")
    page.goto(f"/customers/{acme.pk}/")
    expect(page.locator("#work-items")).to_contain_text(f"{TITLE} — with otto, handed over by carla")
    expect(page.locator("#work-items")).to_contain_text(WHY)
    log_out(page)

    log_in(page, "otto")
    page.goto("/collections/worklist/")
    item = page.locator("ol.worklist li.work-item").first
    expect(item).to_contain_text(TITLE)
    expect(item.locator(".work-handed")).to_contain_text("Handed over by carla on ")
    expect(item.locator(".work-handed")).to_contain_text(f"(the account is carla’s): {WHY}")
    page.screenshot(path=ARTIFACTS / "hand-over-received.png", full_page=True)
    item.get_by_role("link", name="Acme Tools").click()
    expect(page).to_have_url(re.compile(rf"/customers/{acme.pk}/$"))
    expect(page.get_by_text("You hold an item of this account handed to you")).to_be_visible()
    actions = page.get_by_role("navigation", name="Actions on this account")
    expect(actions.get_by_role("link")).to_have_text(["Log a call", "Add a note", "Promise to pay"])
    panel_open(page, "Add a note")
    panel = page.locator("#action-panel")
    panel.get_by_label("Note").fill("Left a message with Anna")
    panel.get_by_role("button", name="Add note").click()
    expect(page.locator("#timeline")).to_contain_text("Left a message with Anna")
    page.goto("/collections/worklist/")
    page.locator("ol.worklist li.work-item").first.get_by_role("button", name="Done").click()
    expect(page.locator("ol.worklist")).to_contain_text("Done.")

    done = WorkItem.objects.get(key="call:acme")
    assert (done.status, done.done_by.username, done.handed_by) == (WorkStatus.DONE, "otto", None)
    assert TimelineEvent.objects.filter(customer=acme, kind=EventKind.NOTE, actor__username="otto").exists()
    page.goto(f"/customers/{acme.pk}/")
    expect(page.get_by_role("navigation", name="Actions on this account")).to_have_count(0)
