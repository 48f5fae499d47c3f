"""An invoice saved or deleted in the admin is in its account's figures at
once, as one the import or a payment changes: the payment behaviour and
segment are recomputed as of today in the same transaction. It takes the
import's rules for its values, and each add and change is on its account's
timeline with who, before and after."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import Invoice, PaymentBehaviour, TimelineEventInvoice
from ar_collections.services import behaviour_refresh
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


@pytest.fixture
def invoices(customer, make_invoice) -> list[Invoice]:
    """INV-1 EUR 500.00 due 1 Jul and INV-2 EUR 700.00 due 15 Aug; figures computed three days ago."""
    made = [make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00",
                         number="INV-1"),
            make_invoice(customer, issued=dt.date(2025, 7, 15), due=dt.date(2025, 8, 15), amount="700.00",
                         number="INV-2")]
    behaviour_refresh(on=TODAY - dt.timedelta(days=3), customer_ids=[customer.pk])
    return made


def change_form(invoice: Invoice, **fields) -> dict:
    data = {"number": invoice.number, "customer": invoice.customer_id, "issue_date": invoice.issue_date,
            "due_date": invoice.due_date, "currency": invoice.currency, "total_amount": invoice.total_amount,
            "open_amount": invoice.open_amount, "status": invoice.status, "po_reference": "",
            "settled_on": invoice.settled_on or "",
            "allocations-TOTAL_FORMS": "0", "allocations-INITIAL_FORMS": "0",
            "allocations-MIN_NUM_FORMS": "0", "allocations-MAX_NUM_FORMS": "1000"}
    data.update(fields)
    return data


def figures(customer) -> tuple:
    b = PaymentBehaviour.objects.get(customer=customer)
    return b.computed_on, b.open_invoices, b.open_amount, b.overdue_amount


def test_an_invoice_changed_in_the_admin_is_in_the_account_s_figures_at_once(
    admin_client, customer, invoices
):
    url = reverse("admin:collections_invoice_change", args=[invoices[1].pk])

    response = admin_client.post(url, change_form(invoices[1], due_date="2025-07-20"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert figures(customer) == (TODAY, 2, Decimal("1200.00"), Decimal("1200.00"))


def test_an_invoice_added_in_the_admin_is_in_the_account_s_figures_at_once(
    admin_client, customer, invoices
):
    url = reverse("admin:collections_invoice_add")

    response = admin_client.post(url, change_form(invoices[1], number="INV-3", total_amount="300.00",
                                                  open_amount="300.00", due_date="2025-08-01"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert figures(customer) == (TODAY, 3, Decimal("1500.00"), Decimal("800.00"))


def test_an_invoice_moved_to_another_account_leaves_the_first_one_s_figures(
    admin_client, customer, invoices, make_customer
):
    other = make_customer(name="Beta Bau")
    url = reverse("admin:collections_invoice_change", args=[invoices[0].pk])

    admin_client.post(url, change_form(invoices[0], customer=other.pk))

    assert figures(customer) == (TODAY, 1, Decimal("700.00"), Decimal("0.00"))
    assert figures(other) == (TODAY, 1, Decimal("500.00"), Decimal("500.00"))


def test_an_invoice_deleted_in_the_admin_leaves_the_account_s_figures_at_once(
    admin_client, customer, invoices
):
    url = reverse("admin:collections_invoice_delete", args=[invoices[0].pk])

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert figures(customer) == (TODAY, 1, Decimal("700.00"), Decimal("0.00"))
    [event] = timeline(customer, EventKind.INVOICE_CHANGED)
    assert event.summary == "Invoice INV-1 deleted in the admin: it was EUR 500.00, due 1 Jul 2025"
    assert event.actor.username == "root-admin"


def test_invoices_deleted_together_in_the_admin_leave_the_account_s_figures(admin_client, customer, invoices):
    response = admin_client.post(reverse("admin:collections_invoice_changelist"), {
        "action": "delete_selected", "_selected_action": [i.pk for i in invoices], "post": "yes",
    })

    assert response.status_code == 302
    assert not Invoice.objects.exists()
    assert figures(customer) == (TODAY, 0, Decimal("0.00"), Decimal("0.00"))
    assert sorted(e.summary for e in timeline(customer, EventKind.INVOICE_CHANGED)) == [
        "Invoice INV-1 deleted in the admin: it was EUR 500.00, due 1 Jul 2025",
        "Invoice INV-2 deleted in the admin: it was EUR 700.00, due 15 Aug 2025"]


# --- What an invoice owes follows from its total and what came in against it -----------


def stored(invoice: Invoice) -> tuple:
    invoice.refresh_from_db()
    return (invoice.currency, invoice.total_amount, invoice.open_amount, invoice.status, invoice.settled_on)


@pytest.mark.parametrize("by_hand", [
    {"open_amount": "100.00"}, {"status": "written_off"}, {"total_amount": "900.00"}, {"currency": "USD"},
    {"open_amount": "0.00", "status": "paid", "settled_on": "2025-08-01"},
], ids=["open-amount", "status", "total", "currency", "marked-paid"])
def test_what_an_invoice_owes_cannot_be_changed_by_hand_in_the_admin(
    admin_client, customer, invoices, by_hand
):
    before = stored(invoices[0])
    url = reverse("admin:collections_invoice_change", args=[invoices[0].pk])

    admin_client.post(url, change_form(invoices[0], po_reference="PO-77", **by_hand))

    assert stored(invoices[0]) == before
    assert invoices[0].po_reference == "PO-77"  # what may be corrected here still is
    assert figures(customer) == (TODAY, 2, Decimal("1200.00"), Decimal("500.00"))


def test_an_invoice_s_page_shows_what_it_owes_as_the_lists_do_with_nothing_to_type_into(
    admin_client, invoices
):
    url = reverse("admin:collections_invoice_change", args=[invoices[0].pk])

    page = admin_client.get(url).content.decode()

    assert 'readonly">EUR 500.00</div>' in page
    for name in ("open_amount", "status", "total_amount", "currency", "settled_on"):
        assert f'name="{name}"' not in page
    assert 'name="due_date"' in page


def test_an_invoice_added_in_the_admin_owes_its_total(admin_client, customer, invoices):
    page = admin_client.get(reverse("admin:collections_invoice_add")).content.decode()
    assert 'name="total_amount"' in page and 'name="open_amount"' not in page and 'name="status"' not in page

    response = admin_client.post(reverse("admin:collections_invoice_add"), change_form(
        invoices[1], number="INV-3", total_amount="300.00", open_amount="100.00", due_date="2025-08-01"))

    assert response.status_code == 302, response.content.decode()[:2000]
    added = Invoice.objects.get(number="INV-3")
    assert stored(added) == ("EUR", Decimal("300.00"), Decimal("300.00"), "open", None)


def test_an_invoice_with_a_payment_against_it_stays_with_its_account(
    admin_client, customer, make_invoice, make_customer
):
    paid = make_invoice(customer, issued=dt.date(2025, 6, 1), amount="400.00", paid_on=dt.date(2025, 7, 1))
    other = make_customer(name="Beta Bau")
    url = reverse("admin:collections_invoice_change", args=[paid.pk])

    response = admin_client.post(url, change_form(paid, customer=other.pk))

    assert response.status_code == 200
    assert ("Money has been recorded against this invoice on Acme Tools’s account: it stays with that "
            "account.") in response.content.decode()
    paid.refresh_from_db()
    assert paid.customer == customer


@pytest.mark.parametrize(("kept_by", "said"), [
    ("dispute", "A dispute still open"),
    ("promise", "A promise to pay still open"),
    ("plan", "A payment plan in force or waiting for a manager"),
])
def test_an_invoice_under_a_dispute_promise_or_plan_stays_with_its_account(
    admin_client, manager, collector, customer, make_invoice, make_customer, kept_by, said
):
    """Nothing paid yet, but the account's own dispute, promise or plan is
    about the invoice: moved, it would pause, promise or schedule another
    account's debt."""
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="400.00")
    if kept_by == "dispute":
        workspace.dispute_open(customer=customer, actor=collector, invoice=invoice, reason="price",
                               description="Not the price agreed", on=TODAY)
    elif kept_by == "promise":
        workspace.promise_record(customer=customer, actor=collector, amount=Decimal("400.00"),
                                 promised_on=dt.date(2025, 8, 12), invoices=[invoice], on=TODAY)
    else:
        workspace.plan_propose(customer=customer, actor=manager, invoices=[invoice], on=TODAY,
                               instalments=[(dt.date(2025, 8, 20), Decimal("200.00")),
                                            (dt.date(2025, 9, 20), Decimal("200.00"))])
    other = make_customer(name="Beta Bau")
    url = reverse("admin:collections_invoice_change", args=[invoice.pk])

    response = admin_client.post(url, change_form(invoice, customer=other.pk))

    assert response.status_code == 200
    assert (f"{said} on Acme Tools’s account covers this invoice: it stays with that account."
            ) in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.customer == customer


def test_an_invoice_whose_dispute_was_resolved_without_money_may_move(
    admin_client, collector, manager, customer, make_invoice, make_customer
):
    """Entered on the wrong account, disputed for that, and the dispute
    rejected: nothing keeps it there any more."""
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="400.00")
    dispute = workspace.dispute_open(customer=customer, actor=collector, invoice=invoice,
                                     reason="not_ordered", description="Not ours", on=dt.date(2025, 8, 1))
    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome="rejected", note="Wrong account",
                              on=TODAY)
    other = make_customer(name="Beta Bau")
    url = reverse("admin:collections_invoice_change", args=[invoice.pk])

    response = admin_client.post(url, change_form(invoice, customer=other.pk))

    assert response.status_code == 302, response.content.decode()[:2000]
    invoice.refresh_from_db()
    assert invoice.customer == other


# --- The import's rules, and the timeline ------------------------------------------------


def add_form(customer, **fields) -> dict:
    data = {"number": "INV-NEW", "customer": customer.pk, "issue_date": "2025-08-01",
            "due_date": "2025-08-31", "currency": "EUR", "total_amount": "250.00", "po_reference": "",
            "allocations-TOTAL_FORMS": "0", "allocations-INITIAL_FORMS": "0",
            "allocations-MIN_NUM_FORMS": "0", "allocations-MAX_NUM_FORMS": "1000"}
    data.update(fields)
    return data


def timeline(customer, kind: str) -> list[TimelineEvent]:
    return list(TimelineEvent.objects.filter(customer=customer, kind=kind).order_by("pk"))


@pytest.mark.parametrize(("entered", "said"), [
    ({"issue_date": "2099-01-01", "due_date": "2099-02-01"},
     "Issue date 1 Jan 2099 is not a plausible date: check the year."),
    ({"issue_date": "2025-09-01", "due_date": "2025-10-01"},
     "Issue date 1 Sep 2025 is after today (5 Aug 2025): an invoice comes in once it is issued."),
    ({"due_date": "2025-07-01"}, "Due date 1 Jul 2025 is before the issue date 1 Aug 2025."),
    ({"currency": "JPY", "total_amount": "100.50"},
     "Total amount 100.5 has more places after the point than JPY has (0)."),
    ({"currency": "XYZ"}, "XYZ is not an ISO 4217 currency in circulation"),
    ({"number": "INV;9"}, "has a &#x27;;&#x27;, which a payments file&#x27;s invoices column cannot name."),
    ({"po_reference": "PO-1\nPO-2"}, "has a line break or another control character: write it on one line."),
], ids=["far-ahead", "issued-tomorrow", "due-before-issue", "half-a-yen", "no-currency", "semicolon",
        "two-lines"])
def test_an_invoice_the_import_would_refuse_is_refused_in_the_admin_and_nothing_is_saved(
    admin_client, customer, entered, said
):
    response = admin_client.post(reverse("admin:collections_invoice_add"), add_form(customer, **entered))

    assert response.status_code == 200
    assert said in response.content.decode()
    assert not Invoice.objects.exists()
    assert not TimelineEvent.objects.filter(customer=customer).exists()


@pytest.mark.parametrize("entered", [
    {"issue_date": "2099-01-01", "due_date": "2099-02-01"},
    {"issue_date": "2025-09-01", "due_date": "2025-10-01"},
    {"due_date": "2025-07-01"}, {"currency": "JPY", "total_amount": "100.50"}, {"number": "INV;9"},
], ids=["far-ahead", "issued-tomorrow", "due-before-issue", "half-a-yen", "semicolon"])
def test_the_admin_s_invoice_problems_name_fields_and_dates_in_the_user_s_words(
    admin_client, customer, entered
):
    response = admin_client.post(reverse("admin:collections_invoice_add"), add_form(customer, **entered))

    page = response.content.decode()
    errors = " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S))
    assert errors
    assert not re.search(r"\b(issue_date|due_date|total_amount|po_reference|account_number)\b", errors)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", errors)


@pytest.mark.parametrize(("currency", "amount"), [("USD", "250.00"), ("JPY", "1500.00")],
                         ids=["other-currency-than-the-account-s", "whole-yen-with-zero-cents"])
def test_an_invoice_the_import_would_take_is_taken_in_the_admin(admin_client, customer, currency, amount):
    """The import takes an invoice in any currency in circulation, whatever
    the account's (amounts are never converted), and so does the admin."""
    response = admin_client.post(reverse("admin:collections_invoice_add"),
                                 add_form(customer, currency=currency, total_amount=amount))

    assert response.status_code == 302, response.content.decode()[:3000]
    added = Invoice.objects.get(number="INV-NEW")
    assert (added.currency, added.total_amount, added.open_amount) == (currency, Decimal(amount),
                                                                       Decimal(amount))


def test_an_invoice_added_in_the_admin_is_issued_on_its_account_s_timeline_by_who_entered_it(
    client, customer
):
    manager = User.objects.create_superuser("manager", password="x")
    client.force_login(manager)

    client.post(reverse("admin:collections_invoice_add"), add_form(customer, po_reference="PO-5"))

    [event] = timeline(customer, EventKind.INVOICE_ISSUED)
    invoice = Invoice.objects.get(number="INV-NEW")
    assert event.summary == "Invoice INV-NEW issued: EUR 250.00, due 31 Aug 2025"
    assert event.actor == manager
    assert event.details["entered_in"] == "admin"
    assert event.occurred_at.date() == dt.date(2025, 8, 1)
    # Found when the timeline is filtered by the invoice.
    assert TimelineEventInvoice.objects.filter(event=event, invoice=invoice).exists()


def test_a_due_date_moved_in_the_admin_is_on_the_account_s_timeline_with_before_and_after(
    admin_client, customer, invoices
):
    url = reverse("admin:collections_invoice_change", args=[invoices[0].pk])

    response = admin_client.post(url, change_form(invoices[0], due_date="2026-07-01"))

    assert response.status_code == 302, response.content.decode()[:3000]
    [event] = timeline(customer, EventKind.INVOICE_CHANGED)
    assert event.summary == "Invoice INV-1 changed in the admin: due date 1 Jul 2025 → 1 Jul 2026"
    assert event.actor.username == "root-admin"
    assert (event.details["before"], event.details["after"]) == (
        {"due_date": "2025-07-01"}, {"due_date": "2026-07-01"})


def test_a_save_in_the_admin_that_changes_nothing_puts_nothing_on_the_timeline(
    admin_client, customer, invoices
):
    url = reverse("admin:collections_invoice_change", args=[invoices[0].pk])

    response = admin_client.post(url, change_form(invoices[0]))

    assert response.status_code == 302, response.content.decode()[:3000]
    assert not timeline(customer, EventKind.INVOICE_CHANGED)


def test_an_invoice_moved_to_another_account_is_on_both_timelines(
    admin_client, customer, invoices, make_customer
):
    other = make_customer(name="Beta Bau")
    url = reverse("admin:collections_invoice_change", args=[invoices[0].pk])

    admin_client.post(url, change_form(invoices[0], customer=other.pk))

    said = f"Invoice INV-1 changed in the admin: account Acme Tools ({customer.account_number}) → Beta Bau"
    [left] = timeline(customer, EventKind.INVOICE_CHANGED)
    [joined] = timeline(other, EventKind.INVOICE_CHANGED)
    assert left.summary.startswith(said) and joined.summary.startswith(said)


@pytest.mark.parametrize(("entered", "said"), [
    ({"due_date": "2025-05-01"}, "Due date 1 May 2025 is before the issue date 1 Jun 2025."),
    ({"issue_date": "2025-07-15"}, "Due date 1 Jul 2025 is before the issue date 15 Jul 2025."),
    ({"due_date": "2925-07-01"}, "Due date 1 Jul 2925 is not a plausible date: check the year."),
], ids=["due-before-issue", "issued-after-due", "mistyped-year"])
def test_a_change_the_import_would_refuse_is_refused_in_the_admin_and_nothing_is_saved(
    admin_client, customer, invoices, entered, said
):
    url = reverse("admin:collections_invoice_change", args=[invoices[0].pk])

    response = admin_client.post(url, change_form(invoices[0], **entered))

    assert response.status_code == 200
    assert said in response.content.decode()
    invoices[0].refresh_from_db()
    assert (invoices[0].issue_date, invoices[0].due_date) == (dt.date(2025, 6, 1), dt.date(2025, 7, 1))
    assert not timeline(customer, EventKind.INVOICE_CHANGED)


def test_a_value_recorded_before_the_rules_does_not_stop_a_change_to_another(
    admin_client, customer, make_invoice
):
    """A PO reference on two lines, entered before the admin checked it, is
    left as it is; the due date beside it may still be moved."""
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), number="INV-OLD",
                           po_reference="PO-1\nPO-2")
    url = reverse("admin:collections_invoice_change", args=[invoice.pk])

    response = admin_client.post(url, change_form(invoice, po_reference="PO-1\nPO-2", due_date="2025-07-15"))

    assert response.status_code == 302, response.content.decode()[:3000]
    invoice.refresh_from_db()
    assert invoice.due_date == dt.date(2025, 7, 15)


def test_an_invoices_number_is_the_erps_and_never_changes_here(admin_client, customer, make_invoice):
    """Renumbered, the ERP's next file would bring it in again under its own
    number: the debt twice."""
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-ERP")
    url = reverse("admin:collections_invoice_change", args=[invoice.pk])

    page = admin_client.get(url).content.decode()
    admin_client.post(url, change_form(invoice, number="INV-9"))

    assert 'name="number"' not in page
    invoice.refresh_from_db()
    assert invoice.number == "INV-ERP"
    assert not timeline(customer, EventKind.INVOICE_CHANGED)


def test_an_invoice_paid_against_keeps_its_issue_date(admin_client, customer, make_invoice):
    said = "Money has been recorded against this invoice: its issue date stays as it was paid (1 Jun 2025)."
    paid = make_invoice(customer, issued=dt.date(2025, 6, 1), amount="400.00", paid_on=dt.date(2025, 7, 1),
                        number="INV-PAID")
    url = reverse("admin:collections_invoice_change", args=[paid.pk])

    response = admin_client.post(url, change_form(paid, issue_date="2025-05-01"))

    assert response.status_code == 200
    assert said in response.content.decode()
    paid.refresh_from_db()
    assert (paid.number, paid.issue_date) == ("INV-PAID", dt.date(2025, 6, 1))
    assert not timeline(customer, EventKind.INVOICE_CHANGED)


def test_an_invoice_paid_against_may_still_have_its_due_date_and_po_reference_corrected(
    admin_client, customer, make_invoice
):
    paid = make_invoice(customer, issued=dt.date(2025, 6, 1), amount="400.00", paid_on=dt.date(2025, 7, 1),
                        number="INV-PAID")
    url = reverse("admin:collections_invoice_change", args=[paid.pk])

    response = admin_client.post(url, change_form(paid, due_date="2025-07-15", po_reference="PO-9"))

    assert response.status_code == 302, response.content.decode()[:3000]
    paid.refresh_from_db()
    assert (paid.due_date, paid.po_reference) == (dt.date(2025, 7, 15), "PO-9")
    [event] = timeline(customer, EventKind.INVOICE_CHANGED)
    assert "due date 1 Jul 2025 → 15 Jul 2025; PO reference none → PO-9" in event.summary


def test_someone_not_on_the_admin_staff_adds_no_invoice_there(client, collector, customer):
    client.force_login(collector)

    response = client.post(reverse("admin:collections_invoice_add"), add_form(customer))

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not Invoice.objects.exists()
    assert not TimelineEvent.objects.filter(customer=customer).exists()
