"""Money moved by hand on an account (a payment, a credit note, a credit set
against an invoice, a write-off, a dispute settled with a credit) recomputes
the account's payment behaviour and segment once it commits, not at night:
the account header never reasons from debt that is no longer open."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse

from ar_collections import services, workspace
from ar_collections.models import DisputeOutcome, Invoice, PaymentBehaviour
from customers.models import Customer, EventKind, Segment, TimelineEvent

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
DISTRESSED_REASON = "EUR 1,257.24 of EUR 1,257.24 open is 60 days or more past due; the oldest 91 days."
NEW_REASON = "Customer for 67 months with {} settled invoice{}; too little history to judge."
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def old_debt(customer, make_invoice) -> Invoice:
    """Acme's one invoice, EUR 1,257.24 due 91 days ago: this night's refresh
    made it distressed (unrecorded: the timeline holds only what follows)."""
    invoice = make_invoice(customer, issued=TODAY - dt.timedelta(days=121), due=TODAY - dt.timedelta(days=91),
                           amount="1257.24", number="INV-OLD")
    services.behaviour_refresh(on=TODAY, customer_ids=[customer.pk], record=False)
    customer.refresh_from_db()
    assert (customer.segment, customer.segment_reason) == (Segment.DISTRESSED, DISTRESSED_REASON)
    return invoice


def paid(customer, manager, invoice):
    workspace.payment_record(customer=customer, actor=manager, amount=invoice.open_amount, currency="EUR",
                             received_on=TODAY, allocations=[(invoice, invoice.open_amount)],
                             reference="BANK-1")


def credited(customer, manager, invoice):
    workspace.credit_note_record(customer=customer, actor=manager, invoice=invoice,
                                 amount=invoice.open_amount, reason="Goods returned", issued_on=TODAY)


def credit_applied(customer, manager, invoice):
    note = workspace.credit_note_on_account(customer=customer, actor=manager, currency="EUR",
                                            amount=invoice.open_amount, reason="Volume rebate",
                                            issued_on=TODAY)
    workspace.credit_apply(customer=customer, actor=manager, credit=note, invoices=[invoice])


def written_off(customer, manager, invoice):
    workspace.invoice_write_off(customer=customer, actor=manager, invoice=invoice, reason="Insolvent",
                                on=TODAY)


def dispute_credited(customer, manager, invoice):
    dispute = workspace.dispute_open(customer=customer, actor=manager, invoice=invoice, reason="price",
                                     description="Charged the list price", on=TODAY)
    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.CREDIT_NOTE,
                              note="Price put right", on=TODAY, amount=invoice.open_amount)


def segment(customer: Customer) -> tuple[str, str]:
    return tuple(Customer.objects.filter(pk=customer.pk).values_list("segment", "segment_reason").get())


@pytest.mark.parametrize(("move", "settled"), [
    (paid, 1), (credited, 1), (credit_applied, 1), (written_off, 0), (dispute_credited, 1),
])
def test_money_moved_by_hand_recomputes_the_figures_and_segment_once_it_commits(
    manager, customer, old_debt, move, settled, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        move(customer, manager, old_debt)
        # Not while the change is still being written: from what it commits.
        assert segment(customer) == (Segment.DISTRESSED, DISTRESSED_REASON)

    assert segment(customer) == (Segment.NEW, NEW_REASON.format(settled, "" if settled == 1 else "s"))
    behaviour = PaymentBehaviour.objects.get(customer=customer)
    assert (behaviour.computed_on, behaviour.open_amount, behaviour.max_days_overdue) == (TODAY, 0, 0)


def test_the_segment_change_goes_on_the_timeline_as_the_nightly_refresh_records_it(
    manager, customer, old_debt, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        written_off(customer, manager, old_debt)

    [event] = TimelineEvent.objects.filter(customer=customer, kind=EventKind.SEGMENT_CHANGED)
    assert (event.summary, event.actor) == ("Segment changed from Distressed to New", None)
    assert event.details["before"] == {"segment": Segment.DISTRESSED, "reason": DISTRESSED_REASON}
    assert event.details["computed_on"] == TODAY.isoformat()


def test_a_segment_a_manager_overrode_stays_overridden_when_money_moves(
    manager, customer, old_debt, django_capture_on_commit_callbacks
):
    services.segment_override(customer=customer, segment=Segment.SYSTEMATIC_LATE, note="Always pays after "
                              "dunning", actor=manager, on=TODAY)

    with django_capture_on_commit_callbacks(execute=True):
        written_off(customer, manager, old_debt)

    assert segment(customer) == (
        Segment.SYSTEMATIC_LATE,
        f"Set by a manager: Always pays after dunning (history says new: {NEW_REASON.format(0, 's')})",
    )
    assert not TimelineEvent.objects.filter(customer=customer, kind=EventKind.SEGMENT_CHANGED,
                                            actor=None).exists()


def test_changes_in_one_transaction_refresh_their_accounts_together_once(
    manager, customer, old_debt, make_customer, make_invoice, monkeypatch, django_capture_on_commit_callbacks
):
    other = make_customer(name="Beta Bau")
    theirs = make_invoice(other, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="300.00")
    refreshed: list[list[int]] = []
    refresh_batch = services._refresh_batch

    def counted(customer_ids, **kwargs):
        refreshed.append(sorted(customer_ids))
        return refresh_batch(customer_ids, **kwargs)

    monkeypatch.setattr(services, "_refresh_batch", counted)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        workspace.payment_record(customer=customer, actor=manager, amount=Decimal("257.24"), currency="EUR",
                                 received_on=TODAY, allocations=[(old_debt, Decimal("257.24"))])
        old_debt.refresh_from_db()
        written_off(customer, manager, old_debt)
        paid(other, manager, theirs)

    assert refreshed == [sorted([customer.pk, other.pk])]
    assert PaymentBehaviour.objects.get(customer=other).invoices_settled == 1


@pytest.mark.django_db(transaction=True)
def test_after_a_write_off_the_header_reasons_from_what_is_open_now(client, manager, customer, old_debt):
    """Not "EUR 1,257.24 of EUR 1,257.24 open is 60 days or more past due"
    beside "Open EUR 0.00": the header swapped in with htmx, and the page."""
    client.force_login(manager)
    url = reverse("collections:invoice_write_off", args=[customer.pk, old_debt.pk])

    response = client.post(url, {"reason": "Insolvent", "written_off_on": "2025-08-04", "amount": "1257.24"},
                           headers=HTMX)

    page = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    for html in response.content.decode(), page:
        header = re.search(r'<section id="account-header".*?</section>', html, re.S).group(0)
        assert re.search(r'data-figure="open">EUR 0.00</dd>', header)
        assert 'class="badge segment-new">New</span>' in header
        assert f'<p class="segment-reason">{NEW_REASON.format(0, "s")}</p>' in header
        assert "past due" not in header


@pytest.mark.django_db(transaction=True)
def test_after_a_payment_the_header_swapped_in_shows_the_new_segment(client, manager, customer, old_debt):
    client.force_login(manager)

    response = client.post(reverse("collections:payment_record", args=[customer.pk]), {
        "amount": "1257.24", "currency": "EUR", "received_on": "2025-08-05", "reference": "BANK-1",
        "method": "bank_transfer", "invoices": [old_debt.pk],
    }, headers=HTMX)

    header = re.search(r'<section id="account-header".*?</section>', response.content.decode(), re.S).group(0)
    assert 'class="badge segment-new">New</span>' in header
    assert NEW_REASON.format(1, "") in header and "past due" not in header
