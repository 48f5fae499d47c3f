"""A manager edits the words on an invoice copy's PDF in a real browser: the
table of placeholders stays beside the editor through a preview, a refused
save and a save, each of which swaps part of the page without a reload.

Drives Debian's Chromium through Playwright against pytest-django's live
server, as tests/ar_collections/test_browser_workspace.py does.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from ar_collections.models import NO_TONE, WordingKind, WordingVersion
from tests.ar_collections.conftest import log_in

# The live server needs committed data; role groups and ladders come back after each flush.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
COPY = WordingKind.INVOICE_COPY


@pytest.fixture
def page(manager, browser_page) -> Page:
    """The browser opens once the data is written (see browser_page)."""
    return browser_page


def placeholders(page: Page):
    return page.get_by_role("table", name="The placeholders invoice copies are given")


def test_the_placeholders_stay_beside_the_editor_through_a_preview_a_refusal_and_a_save(page):
    log_in(page, "maria")
    page.goto(reverse("collections:wording_edit", kwargs={"kind": COPY, "language": "nl"}))
    page.evaluate("window.notReloaded = true")
    expect(placeholders(page)).to_be_visible()
    expect(placeholders(page).get_by_text("{{ customer_reference }}")).to_be_visible()
    field = page.get_by_label("Words on the PDF")
    shipped = field.input_value()

    page.get_by_role("button", name="Preview the e-mail").click()
    expect(page.locator("#wording-preview iframe")).to_be_visible()
    expect(placeholders(page)).to_be_visible()

    field.fill(shipped.replace("{% block copy_mark %}KOPIE", "{% block copy_mark %}{{ nummer }}"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("form .error-summary")).to_contain_text("it names 'nummer'")
    expect(placeholders(page)).to_be_visible()

    page.get_by_label("Words on the PDF").fill(
        shipped.replace("{% block copy_mark %}KOPIE", "{% block copy_mark %}DUPLICAAT"))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("saved as version 1")).to_be_visible()
    expect(placeholders(page)).to_be_visible()
    expect(placeholders(page)).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True
    [version] = WordingVersion.objects.filter(kind=COPY, tone=NO_TONE, language="nl")
    assert "{% block copy_mark %}DUPLICAAT{% endblock %}" in version.pdf


def test_a_preview_of_the_corrected_text_takes_away_the_refused_save_s_complaint(page):
    """The manager whose save was refused corrects the text and previews it:
    the preview shows, and the form no longer says what was wrong with the
    text that is gone."""
    log_in(page, "maria")
    page.goto(reverse("collections:wording_edit", kwargs={"kind": COPY, "language": "nl"}))
    field = page.get_by_label("Words on the PDF")
    shipped = field.input_value()
    field.fill(shipped.replace("{% block copy_mark %}KOPIE", "{% block copy_mark %}{{ nummer }}"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("form .error-summary")).to_contain_text("it names 'nummer'")

    page.get_by_label("Words on the PDF").fill(
        shipped.replace("{% block copy_mark %}KOPIE", "{% block copy_mark %}DUPLICAAT"))
    page.get_by_role("button", name="Preview the e-mail").click()

    expect(page.locator("#wording-preview iframe")).to_be_visible()
    expect(page.locator("form .error-summary")).to_have_count(0)
    assert not WordingVersion.objects.filter(kind=COPY, tone=NO_TONE, language="nl").exists()


def test_a_good_preview_takes_away_a_field_s_own_complaint(page):
    """A save refused for an empty subject says so under the subject; the
    manager writes one and previews: the preview shows, and the subject no
    longer says it is missing nor stands marked wrong."""
    log_in(page, "maria")
    page.goto(reverse("collections:wording_edit", kwargs={"kind": COPY, "language": "nl"}))
    page.evaluate("window.notReloaded = true")
    subject = page.get_by_label("Subject")
    shipped = subject.input_value()
    subject.fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("form .field-error")).to_have_text(["Write a subject."])
    expect(page.get_by_label("Subject")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Subject").fill("Nogmaals: " + shipped)
    page.get_by_role("button", name="Preview the e-mail").click()

    expect(page.locator("#wording-preview iframe")).to_be_visible()
    expect(page.locator("form .field-error")).to_have_count(0)
    expect(page.locator("form .field-invalid")).to_have_count(0)
    expect(page.get_by_label("Subject")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Subject")).to_have_value("Nogmaals: " + shipped)
    assert page.evaluate("window.notReloaded") is True
    assert not WordingVersion.objects.filter(kind=COPY, tone=NO_TONE, language="nl").exists()
