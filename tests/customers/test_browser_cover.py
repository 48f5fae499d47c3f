"""The Cover page in a real browser: a manager choosing who is away and when
gets a menu of stand-ins without that person and without anyone away then."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.models import CollectorAbsence
from tests.ar_collections.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def otto_away(manager, collector, other_collector) -> CollectorAbsence:
    """Otto is away from the day after tomorrow for a week, Maria covering."""
    today = timezone.localdate()
    return CollectorAbsence.objects.create(user=other_collector, stand_in=manager, recorded_by=manager,
                                           starts_on=today + dt.timedelta(days=2),
                                           ends_on=today + dt.timedelta(days=8))


@pytest.fixture
def page(otto_away, browser_page) -> Page:
    """The browser opens once the absence is written (see browser_page)."""
    return browser_page


def test_the_stand_ins_offered_follow_who_is_away_and_when(page):
    today = timezone.localdate()
    log_in(page, "maria")
    page.goto(reverse("collections:cover"))
    form = page.locator("#cover-form")
    stand_in = form.get_by_label("Covered by")
    expect(stand_in.locator("option")).to_have_text(["Choose a person", "carla", "maria", "otto"])

    form.get_by_label("Who is away").select_option(label="carla")
    expect(stand_in.locator("option")).to_have_text(["Choose a person", "maria", "otto"])
    form.get_by_label("Away from").fill(today.isoformat())
    form.get_by_label("Away until").fill((today + dt.timedelta(days=3)).isoformat())
    expect(stand_in.locator("option")).to_have_text(["Choose a person", "maria"])

    stand_in.select_option(label="maria")
    form.get_by_role("button", name="Save absence").click()
    expect(page.locator("#messages")).to_contain_text(
        f"carla away {today.day} {today:%b %Y}–{(today + dt.timedelta(days=3)).day}")
    expect(page.locator("#messages")).to_contain_text("maria covers.")


def test_a_stand_in_chosen_while_the_menu_is_asked_for_anew_stays_chosen(page):
    """A date changed, then a stand-in chosen at once: the fresh menu the date
    asked for arrives after the choice, and must not put "Choose a person"
    back in its place (saving then says a stand-in is missing)."""
    today = timezone.localdate()
    log_in(page, "maria")
    page.goto(reverse("collections:cover"))
    form = page.locator("#cover-form")
    stand_in = form.get_by_label("Covered by")
    form.get_by_label("Who is away").select_option(label="carla")
    expect(stand_in.locator("option")).to_have_text(["Choose a person", "maria", "otto"])

    # The menu's answer is held until the choice is made, as on a slow line.
    held = []
    page.route("**/cover/?*", lambda route: held.append(route))
    form.get_by_label("Away from").fill(today.isoformat())
    page.wait_for_timeout(200)
    assert held, "the date asked for no fresh menu"
    stand_in.select_option(label="maria")
    for route in held:
        route.continue_()
    page.unroute("**/cover/?*")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    expect(stand_in.locator("option")).to_have_text(["Choose a person", "maria", "otto"])
    # Read from the page, not the database: the ORM called while the browser
    # runs would open a connection of its own.
    expect(stand_in.locator("option:checked")).to_have_text("maria")

    form.get_by_label("Away until").fill((today + dt.timedelta(days=1)).isoformat())
    page.wait_for_load_state("networkidle")
    form.get_by_role("button", name="Save absence").click()
    expect(page.locator("#messages")).to_contain_text("maria covers.")
