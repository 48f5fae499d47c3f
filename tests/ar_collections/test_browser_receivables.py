"""Money coming in, in a real browser: a manager records a payment on the
account page in place, and uploads an ERP file whose import a worker does.

Drives Debian's Chromium through Playwright against pytest-django's live
server, like tests/arcrm/test_browser.py. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone
from openpyxl import Workbook
from playwright.sync_api import Page, expect

from ar_collections.imports import import_run
from ar_collections.models import ImportStatus, Invoice, ReceivablesImport
from arcrm.dates import format_day
from tests.ar_collections.conftest import log_in, panel_open
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme(make_customer, make_contact, make_invoice, manager):
    """Carla's account, owing INV-A (EUR 500.00) and INV-B (EUR 700.00), both overdue."""
    today = timezone.localdate()
    customer = make_customer(account_number="C-ACME", name="Acme Tools")
    make_contact(customer, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    for number, amount, days in [("INV-A", "500.00", 40), ("INV-B", "700.00", 20)]:
        due = today - dt.timedelta(days=days)
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number)
    return customer


@pytest.fixture
def page(acme, browser_page) -> Iterator[Page]:
    yield browser_page
    # The ORM calls made while the browser runs (in its greenlet) opened a
    # connection of their own: closed here, before the test database goes.
    connections.close_all()


def test_a_manager_records_a_payment_and_the_account_changes_in_place(page, acme):
    log_in(page, "maria")
    page.goto(f"/customers/{acme.pk}/")
    header = page.locator("#account-header")
    expect(header.locator("[data-figure=overdue]")).to_have_text("EUR 1,200.00")
    page.evaluate("window.notReloaded = true")

    panel_open(page, "Record a payment")
    panel = page.locator("#action-panel")
    expect(panel.get_by_role("heading", name="Record a payment")).to_be_visible()
    panel.get_by_label("Amount").fill("600.00")
    panel.get_by_label("Reference").fill("BANK-0815")
    apply_to = panel.get_by_role("group", name="Apply to")
    apply_to.get_by_label(re.compile(r"\bINV-A\b")).check()
    apply_to.get_by_label(re.compile(r"\bINV-B\b")).check()
    page.screenshot(path=ARTIFACTS / "receivables-payment-form.png", full_page=True)
    panel.get_by_role("button", name="Record payment").click()

    expect(page.locator("#messages")).to_contain_text(
        "Payment of EUR 600.00 recorded, applied to INV-A, INV-B."
    )
    expect(panel).to_be_empty()
    expect(header.locator("[data-figure=overdue]")).to_have_text("EUR 600.00")
    newest = page.locator("#timeline li.event")
    expect(newest.nth(0)).to_contain_text("Invoice INV-A paid in full")
    expect(newest.nth(1)).to_contain_text(
        f"Payment of EUR 600.00 received on {format_day(timezone.localdate())} (bank transfer, reference "
        "BANK-0815), applied to INV-A, INV-B"
    )
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=ARTIFACTS / "receivables-after-payment.png", full_page=True)
    assert dict(Invoice.objects.values_list("number", "open_amount")) == {"INV-A": 0, "INV-B": 600}


def test_a_manager_records_a_rebate_on_account_then_sets_it_against_the_invoice_named(page, acme):
    log_in(page, "maria")
    page.goto(f"/customers/{acme.pk}/")
    header = page.locator("#account-header")
    page.evaluate("window.notReloaded = true")

    panel_open(page, "Record a credit note")
    panel = page.locator("#action-panel")
    panel.get_by_label("On invoice").select_option(label="None: keep it on account")
    panel.get_by_label("Currency").select_option("EUR")
    panel.get_by_label("Amount").fill("200.00")
    panel.get_by_label("What it is for").fill("Volume rebate for the first half year")
    panel.get_by_role("button", name="Record credit note").click()
    expect(page.locator("#messages")).to_contain_text("recorded on account")
    expect(header.locator("[data-figure=credits]")).to_have_text("EUR 200.00")
    expect(header.locator("[data-figure=overdue]")).to_have_text("EUR 1,200.00")

    panel_open(page, "Set a credit against invoices")
    expect(panel.get_by_label("Credit")).to_have_value(re.compile(r"^note-\d+$"))
    panel.get_by_role("group", name="Set against").get_by_label(re.compile(r"\bINV-B\b")).check()
    page.screenshot(path=ARTIFACTS / "receivables-credit-apply-form.png", full_page=True)
    panel.get_by_role("button", name="Set against invoices").click()

    expect(page.locator("#messages")).to_contain_text("EUR 200.00 set against INV-B.")
    expect(header.locator("[data-figure=overdue]")).to_have_text("EUR 1,000.00")
    expect(header.locator("[data-figure=credits]")).to_have_count(0)
    expect(page.locator("#timeline li.event").nth(0)).to_contain_text("set against INV-B: EUR 200.00")
    assert page.evaluate("window.notReloaded") is True
    assert dict(Invoice.objects.values_list("number", "open_amount")) == {"INV-A": 500, "INV-B": 500}


def test_a_manager_uploads_an_erp_file_and_sees_what_came_of_it(page, acme, tmp_path):
    today = timezone.localdate()
    csv = tmp_path / "erp-invoices.csv"
    csv.write_text("number,account_number,issue_date,due_date,currency,total_amount\n"
                   f"INV-C,C-ACME,{today:%Y-%m-%d},{today + dt.timedelta(days=30):%Y-%m-%d},EUR,90.00\n"
                   f"INV-D,C-NONE,{today:%Y-%m-%d},{today + dt.timedelta(days=30):%Y-%m-%d},EUR,10.00\n",
                   encoding="utf-8")
    log_in(page, "maria")
    page.get_by_role("link", name="Collections").click()
    page.get_by_role("link", name="Import", exact=True).click()
    expect(page.get_by_role("heading", name="Import invoices, payments and accounts")).to_be_visible()

    page.get_by_label("Invoices").check()
    page.get_by_label("CSV file").set_input_files(str(csv))
    page.get_by_role("button", name="Import").click()

    expect(page.locator("#messages")).to_contain_text("erp-invoices.csv is queued for import")
    expect(page.locator("#imports")).to_contain_text("Waiting for a worker")
    # What the worker does (tests/arcrm/test_celery_worker.py runs a real one);
    # the list, refreshing itself every few seconds, then shows the outcome.
    assert import_run(ReceivablesImport.objects.get().pk) == ImportStatus.REFUSED
    expect(page.locator("#imports")).to_contain_text("Nothing imported: 1 problem in 2 rows.", timeout=15_000)
    page.get_by_role("link", name="erp-invoices.csv").click()
    expect(page.locator("#import-report")).to_contain_text("line 3: no account 'C-NONE'")
    page.screenshot(path=ARTIFACTS / "receivables-import-refused.png", full_page=True)
    assert not Invoice.objects.filter(number="INV-C").exists()


def test_a_manager_uploads_an_excel_workbook_and_its_problems_are_named_by_the_sheet_s_rows(
    page, acme, tmp_path
):
    today = timezone.localdate()
    book = Workbook()
    sheet = book.active
    sheet.title = "Invoices"
    sheet.append(["number", "account_number", "issue_date", "due_date", "currency", "total_amount"])
    sheet.append(["INV-C", "C-ACME", today, today + dt.timedelta(days=30), "EUR", 90.1])
    sheet.append([])
    sheet.append(["INV-D", "C-NONE", today, today + dt.timedelta(days=30), "EUR", 10])
    path = tmp_path / "erp-invoices.xlsx"
    book.save(path)
    log_in(page, "maria")
    page.get_by_role("link", name="Collections").click()
    page.get_by_role("link", name="Import", exact=True).click()

    page.get_by_label("Invoices").check()
    expect(page.get_by_label("CSV file or Excel workbook")).to_have_attribute("accept", re.compile(r"\.xlsx"))
    page.get_by_label("CSV file or Excel workbook").set_input_files(str(path))
    page.get_by_role("button", name="Import").click()

    expect(page.locator("#messages")).to_contain_text("erp-invoices.xlsx is queued for import")
    assert import_run(ReceivablesImport.objects.get().pk) == ImportStatus.REFUSED
    expect(page.locator("#imports")).to_contain_text("Nothing imported: 1 problem in 2 rows.", timeout=15_000)
    page.get_by_role("link", name="erp-invoices.xlsx").click()
    expect(page.locator("#import-report")).to_contain_text("line 4: no account 'C-NONE'")
    assert not Invoice.objects.filter(number="INV-C").exists()

    book.remove(book["Invoices"])
    sheet = book.create_sheet("Invoices")
    sheet.append(["number", "account_number", "issue_date", "due_date", "currency", "total_amount"])
    sheet.append(["INV-C", "C-ACME", today, today + dt.timedelta(days=30), "EUR", 90.1])
    book.save(path)
    page.get_by_role("link", name="Import invoices, payments and accounts").click()
    page.get_by_label("Invoices").check()
    page.get_by_label("CSV file or Excel workbook").set_input_files(str(path))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#imports")).to_contain_text("Waiting for a worker")
    assert import_run(ReceivablesImport.objects.latest("pk").pk) == ImportStatus.DONE
    expect(page.locator("#imports")).to_contain_text("1 invoice recorded", timeout=15_000)
    assert Invoice.objects.get(number="INV-C").total_amount == Decimal("90.10")
