"""A step waiting for a collector's review whose invoices have all been paid
since leaves the review queue and the worklist on its own, skipped with the
reason on the timeline: the collector does not clear paid accounts by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import ActionStatus, Invoice, WorkItem, WorkKind, WorkStatus
from ar_collections.worklist import worklist_refresh
from customers.models import EventKind, TimelineEvent

from . import test_views_review

make_action = test_views_review.make_action  # the review queue's fixture

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


def paid(customer, manager, invoice) -> None:
    workspace.payment_record(customer=customer, actor=manager, amount=invoice.open_amount, currency="EUR",
                             received_on=TODAY, allocations=[(invoice, invoice.open_amount)],
                             reference=f"BANK-{invoice.pk}")


def test_a_step_in_review_whose_invoices_are_paid_is_skipped_once_the_payment_commits(
    client, collector, manager, customer, make_action, django_capture_on_commit_callbacks
):
    action = make_action(customer)
    worklist_refresh(on=TODAY)
    item = WorkItem.objects.get(kind=WorkKind.REVIEW, action=action)
    invoice = action.lines.get().invoice

    with django_capture_on_commit_callbacks(execute=True):
        paid(customer, manager, invoice)

    action.refresh_from_db()
    item.refresh_from_db()
    assert (action.status, action.skip_reason) == (
        ActionStatus.SKIPPED, "by 5 Aug 2025 every listed invoice was paid")
    assert item.status == WorkStatus.DONE
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.DUNNING).latest("pk")
    assert event.summary == ("Step 1 (E-mail) skipped: by 5 Aug 2025 every listed invoice was paid; "
                             "no review is needed")
    assert event.details["before"] == {"status": ActionStatus.IN_REVIEW}
    client.force_login(collector)
    assert f'id="action-{action.pk}"' not in client.get(reverse("collections:review")).content.decode()


def test_a_step_with_an_invoice_still_open_stays_for_review(
    manager, customer, make_action, make_invoice, django_capture_on_commit_callbacks
):
    action = make_action(customer)
    other = make_invoice(customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2), amount="50.00")
    action.lines.create(invoice=other, open_amount=other.open_amount, currency="EUR")

    with django_capture_on_commit_callbacks(execute=True):
        paid(customer, manager, action.lines.get(invoice=other).invoice)

    action.refresh_from_db()
    assert action.status == ActionStatus.IN_REVIEW


def test_the_daily_refresh_skips_one_paid_without_anyone_at_the_account_page(customer, make_action):
    """The ERP's payments file, a credit note from the admin: money can settle
    an invoice without passing the account page."""
    action = make_action(customer)
    Invoice.objects.filter(pk=action.lines.get().invoice_id).update(status="paid", open_amount=0,
                                                                    settled_on=TODAY)

    worklist_refresh(on=TODAY)

    action.refresh_from_db()
    assert action.status == ActionStatus.SKIPPED
    assert not WorkItem.objects.filter(kind=WorkKind.REVIEW, action=action, status=WorkStatus.OPEN).exists()


def cancelled(manager, invoice) -> None:
    workspace.invoice_cancel(invoice=invoice, actor=manager, on=TODAY, reason="Raised in error")


def test_a_step_whose_invoices_the_erp_cancelled_says_so_not_that_they_were_paid(
    manager, customer, make_action, django_capture_on_commit_callbacks
):
    action = make_action(customer)

    with django_capture_on_commit_callbacks(execute=True):
        cancelled(manager, action.lines.get().invoice)

    action.refresh_from_db()
    assert (action.status, action.skip_reason) == (
        ActionStatus.SKIPPED, "by 5 Aug 2025 every listed invoice was cancelled in the ERP")
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.DUNNING).latest("pk")
    assert event.summary == ("Step 1 (E-mail) skipped: by 5 Aug 2025 every listed invoice was cancelled in "
                             "the ERP; no review is needed")


def test_a_step_whose_invoices_were_some_paid_some_cancelled_says_which_was_which(
    manager, customer, make_action, make_invoice, django_capture_on_commit_callbacks
):
    action = make_action(customer)
    first = action.lines.get().invoice
    other = make_invoice(customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2), amount="50.00")
    action.lines.create(invoice=other, open_amount=other.open_amount, currency="EUR")

    with django_capture_on_commit_callbacks(execute=True):
        paid(customer, manager, first)
    with django_capture_on_commit_callbacks(execute=True):
        cancelled(manager, other)

    action.refresh_from_db()
    assert (action.status, action.skip_reason) == (
        ActionStatus.SKIPPED, f"by 5 Aug 2025 every listed invoice was paid or cancelled in the ERP "
                              f"({first.number} paid; {other.number} cancelled in the ERP)")
