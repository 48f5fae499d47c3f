"""Calls, promises, plans, disputes, exceptions, work items, outgoing mail and
the links of timeline events to invoices change through the account page and
the queues, which keep pauses, the timeline and the worklist in step. The
admin shows them and deletes none: a promise deleted rather than withdrawn, a
dispute rather than resolved, a mail before it went out would leave the rest
behind without a word."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    Call,
    CallOutcome,
    Department,
    Dispute,
    DisputeReason,
    ExceptionKind,
    ExceptionRequest,
    Instalment,
    OutgoingMail,
    PaymentPlan,
    Promise,
    TimelineEventInvoice,
    WorkItem,
    WorkKind,
)
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2026, 3, 10)


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


@pytest.fixture
def on_record(customer, collector, make_contact, make_invoice) -> dict:
    """What a collector's day leaves on an account, each row made as the pages make it."""
    contact = make_contact(customer, name="Anna Clerk", email="anna@acme.test")
    promised, planned, disputed, noted = (
        make_invoice(customer, issued=TODAY - dt.timedelta(days=60), amount=amount)
        for amount in ("100.00", "200.00", "300.00", "400.00")
    )
    call = workspace.call_log(
        customer=customer, actor=collector, contact=contact, outcome=CallOutcome.REACHED, on=TODAY,
        email_summary=True,
        promise=workspace.PromiseTerms(amount=Decimal("100.00"), promised_on=TODAY + dt.timedelta(days=7),
                                       invoices=[promised]),
    )
    plan = workspace.plan_propose(
        customer=customer, actor=collector, invoices=[planned], on=TODAY,
        instalments=[(TODAY + dt.timedelta(days=14), Decimal("100.00")),
                     (TODAY + dt.timedelta(days=44), Decimal("100.00"))],
    )
    Department.objects.create(name="Shipping", email="shipping@example.com", reasons=[DisputeReason.QUANTITY])
    dispute = workspace.dispute_open(customer=customer, actor=collector, invoice=disputed,
                                     reason=DisputeReason.QUANTITY, description="Two pallets short", on=TODAY)
    asked = workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.OTHER,
                                        reason="Invoice in their own currency", on=TODAY)
    workspace.note_add(customer=customer, actor=collector, text="Asked for the delivery note",
                       invoices=[noted])
    item = WorkItem.objects.create(key=f"personal:{customer.pk}", kind=WorkKind.PERSONAL, customer=customer,
                                   assignee=collector, title="Call the owner", due_on=TODAY)
    return {
        Call: call, Promise: Promise.objects.get(), PaymentPlan: plan, Instalment: plan.instalments.first(),
        Dispute: dispute, ExceptionRequest: asked, WorkItem: item,
        OutgoingMail: OutgoingMail.objects.order_by("pk").first(),
        TimelineEventInvoice: TimelineEventInvoice.objects.get(invoice=noted),
    }


KINDS = [Call, Promise, PaymentPlan, Instalment, Dispute, ExceptionRequest, WorkItem, OutgoingMail,
         TimelineEventInvoice]


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.__name__)
def test_a_workspace_record_cannot_be_deleted_in_the_admin(admin_client, on_record, model):
    row = on_record[model]
    opts = model._meta

    page = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]))
    listed = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    one = admin_client.post(reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[row.pk]),
                            {"post": "yes"})
    admin_client.post(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                      {"action": "delete_selected", "post": "yes", "_selected_action": [str(row.pk)]})

    assert model.objects.filter(pk=row.pk).exists()
    assert one.status_code == 403
    assert "deletelink" not in page.content.decode()
    assert "delete_selected" not in listed.content.decode()


def test_an_event_s_link_to_an_invoice_is_named_by_the_invoice_number_and_the_event_s_day_and_kind(
    admin_client, customer, make_invoice, settings
):
    settings.TIME_ZONE = "Europe/Berlin"
    invoice = make_invoice(customer, issued=TODAY, number="INV-2041")
    event = TimelineEvent.objects.create(customer=customer, kind=EventKind.NOTE, summary="Asked for the PO",
                                         occurred_at=dt.datetime(2025, 8, 4, 22, 30, tzinfo=dt.UTC))
    link = TimelineEventInvoice.objects.create(event=event, invoice=invoice)

    page = admin_client.get(reverse("admin:collections_timelineeventinvoice_change", args=[link.pk]))

    assert "<h2>INV-2041 – 5 Aug 2025 00:30 Note</h2>" in page.content.decode()
