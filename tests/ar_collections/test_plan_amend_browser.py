"""A manager reschedules a plan in force from the account page in a real
browser: the panel offers what is still due, the new schedule shows in the
commitments box without a reload, and the account's collector finds an item
on their worklist to follow it.

Drives Debian's Chromium through Playwright against pytest-django's live
server, as tests/ar_collections/test_browser_workspace.py does.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ar_collections import workspace
from ar_collections.models import PlanStatus
from tests.ar_collections.conftest import log_in, panel_open

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def plan(make_customer, make_contact, make_invoice, collector, manager):
    """Carla's account with EUR 900.00 overdue, agreed by her in three
    instalments of EUR 300.00 from next week. Dates count from the real
    today, as the browser's session cookie needs a real clock."""
    today = timezone.localdate()
    acme = make_customer(name="Acme Tools")
    make_contact(acme, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    invoice = make_invoice(acme, number="INV-P", issued=today - dt.timedelta(days=60),
                           due=today - dt.timedelta(days=30), amount="900.00")
    plan = workspace.plan_propose(customer=acme, actor=collector, invoices=[invoice], on=today, instalments=[
        (today + dt.timedelta(days=7 + 30 * n), Decimal("300.00")) for n in range(3)])
    assert plan.status == PlanStatus.ACTIVE
    return plan


@pytest.fixture
def page(plan, browser_page) -> Page:
    """The browser opens once the data is written (see browser_page)."""
    return browser_page


def test_a_manager_reschedules_a_plan_in_place_and_the_collector_is_told_to_follow_it(page, plan):
    today = timezone.localdate()
    later = [today + dt.timedelta(days=14), today + dt.timedelta(days=60)]
    log_in(page, "maria")
    page.goto(f"/customers/{plan.customer_id}/")
    page.evaluate("window.notReloaded = true")

    panel_open(page, "Reschedule")
    panel = page.locator("#action-panel")
    schedule = panel.get_by_label("Instalments still to pay")
    expect(schedule).to_have_value("\n".join(
        f"{(today + dt.timedelta(days=7 + 30 * n)).isoformat()} 300.00" for n in range(3)))
    schedule.fill(f"{later[0].isoformat()} 400.00\n{later[1].isoformat()} 500.00")
    panel.get_by_label("Why does the schedule change?").fill("Lost a big customer; asked for more time")
    panel.get_by_role("button", name="Reschedule").click()

    expect(page.locator("#messages")).to_contain_text("Payment plan rescheduled")
    instalments = page.locator("#commitments ol.instalments li")
    expect(instalments).to_have_count(2)
    expect(instalments.first).to_contain_text(f"{later[0]:%-d %b %Y} · EUR 400.00 · Due")
    expect(instalments.nth(1)).to_contain_text(f"{later[1]:%-d %b %Y} · EUR 500.00 · Due")
    assert page.evaluate("window.notReloaded") is True

    # The account's collector finds it on her list.
    page.context.clear_cookies()
    log_in(page, "carla")
    page.get_by_role("link", name="My work").click()
    expect(page.locator("ol.worklist li.work-item").filter(has_text="rescheduled by maria")).to_contain_text(
        "follow the new schedule")
