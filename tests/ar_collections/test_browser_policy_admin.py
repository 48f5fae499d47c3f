"""The policy's page in the admin, in a real browser: a ladder whose steps
were taken for customers shows them as they stay, and the box that retires
a step is in sight.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like tests/arcrm/test_browser.py. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from ar_collections.dunning import run_plan, run_start
from ar_collections.models import LatePaymentPolicy
from customers.models import Segment
from tests.ar_collections.conftest import DUE, frozen, log_in
from tests.conftest import ARTIFACTS

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def taken_first_step(make_account, manager) -> LatePaymentPolicy:
    """The prompt payers' ladder, its first step taken for an account; Maria may use the admin."""
    make_account(Segment.PROMPT)
    with frozen(DUE + dt.timedelta(days=3)):
        run_plan(run=run_start(run_date=DUE + dt.timedelta(days=3)))
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    policy = LatePaymentPolicy.objects.get(segment=Segment.PROMPT, is_active=True)
    assert policy.steps.order_by("position").first().is_taken()
    return policy


@pytest.fixture
def page(taken_first_step, browser_page) -> Page:
    return browser_page


def box(page: Page, selector: str) -> dict:
    return page.eval_on_selector(selector, """field => {
        const style = getComputedStyle(field), rect = field.getBoundingClientRect();
        return {right: rect.right, border: style.borderTopColor, background: style.backgroundColor};
    }""")


def test_a_taken_step_reads_as_fixed_and_the_box_to_retire_it_is_in_sight(page, taken_first_step):
    log_in(page, "maria")
    page.goto(reverse("admin:collections_latepaymentpolicy_change", args=[taken_first_step.pk]))
    page.eval_on_selector("#steps-group", "group => window.scrollTo(0, group.offsetTop)")
    page.screenshot(path=ARTIFACTS / "admin-policy-steps.png", full_page=True)

    # Step 1 was taken, step 2 not yet: what stays as it was sent does not look typed into.
    taken, free = box(page, "#id_steps-0-day_offset"), box(page, "#id_steps-1-day_offset")
    assert page.is_disabled("#id_steps-0-day_offset") and not page.is_disabled("#id_steps-1-day_offset")
    assert (taken["border"], taken["background"]) != (free["border"], free["background"])
    # The way to change the ladder is on screen, not off to the right of it.
    width = page.evaluate("window.innerWidth")
    assert box(page, "#id_steps-0-retired")["right"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width
