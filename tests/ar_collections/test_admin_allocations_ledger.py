"""The admin shows every allocation ever made, not only what stands today: a
payment the bank took back keeps the rows of what it once paid, each marked
with the reversal that undid it and its day, on the payment's and the
invoice's pages and in the list of allocations."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import Allocation, Invoice, ReversalReason

pytestmark = pytest.mark.usefixtures("_frozen_today")  # 5 Aug 2025

MARK = re.compile(r'Reversed on 5 Aug 2025 by <a href="([^"]+)">Reversal of EUR 500\.00 on 1 Aug 2025</a>')


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


@pytest.fixture
def reversed_and_standing(customer, manager, make_invoice) -> dict:
    """INV-1 paid on 1 Aug by a cheque that bounced on 5 Aug; INV-2 paid by a transfer that stands."""
    bounced, paid = (make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                                  amount=amount, number=number)
                     for number, amount in (("INV-1", "500.00"), ("INV-2", "300.00")))
    cheque, transfer = (
        workspace.payment_record(customer=customer, actor=manager, amount=invoice.total_amount,
                                 currency="EUR", received_on=dt.date(2025, 8, 1), reference=reference,
                                 allocations=[(invoice, invoice.total_amount)])
        for invoice, reference in ((bounced, "CHEQUE-1"), (paid, "BANK-2"))
    )
    reversal = workspace.payment_reverse(payment=cheque, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE,
                                         on=dt.date(2025, 8, 5))
    return {"invoice": bounced, "payment": cheque, "reversal": reversal, "standing": transfer}


def page(admin_client, name: str, obj) -> str:
    response = admin_client.get(reverse(f"admin:collections_{name}_change", args=[obj.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_reversed_payment_s_admin_page_shows_what_it_once_paid_marked_with_its_reversal(
    admin_client, reversed_and_standing
):
    html = page(admin_client, "payment", reversed_and_standing["payment"])

    assert "INV-1" in html
    assert MARK.findall(html) == [
        reverse("admin:collections_paymentreversal_change", args=[reversed_and_standing["reversal"].pk])]


def test_an_invoice_s_admin_page_shows_the_payment_that_was_taken_back_as_reversed(
    admin_client, reversed_and_standing
):
    invoice = reversed_and_standing["invoice"]

    html = page(admin_client, "invoice", invoice)

    assert len(MARK.findall(html)) == 1
    assert Allocation.objects.filter(invoice=invoice).count() == 0  # what stands is unchanged


def test_an_invoice_with_reversed_rows_still_saves_from_its_admin_page(admin_client, reversed_and_standing):
    """The rows shown read-only are left as they are by a save of the invoice."""
    invoice = reversed_and_standing["invoice"]
    url = reverse("admin:collections_invoice_change", args=[invoice.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if name in form.fields and value is not None}
    data.update(customer=invoice.customer_id, po_reference="PO-NEW", issue_date="2025-06-01",
                due_date="2025-07-01")
    data.update({"allocations-TOTAL_FORMS": "1", "allocations-INITIAL_FORMS": "1",
                 "allocations-MIN_NUM_FORMS": "0", "allocations-MAX_NUM_FORMS": "1000"})

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Invoice.objects.get(pk=invoice.pk).po_reference == "PO-NEW"
    assert Allocation.ledger.filter(invoice=invoice, reversal=reversed_and_standing["reversal"]).count() == 1


def test_the_admin_s_list_of_allocations_holds_the_reversed_row_marked_and_the_standing_one_not(
    admin_client, reversed_and_standing
):
    response = admin_client.get(reverse("admin:collections_allocation_changelist"))

    assert response.status_code == 200
    listed = response.context["cl"].result_list
    assert sorted(a.invoice.number for a in listed) == ["INV-1", "INV-2"]
    assert len(MARK.findall(response.content.decode())) == 1
    reversed_row = Allocation.ledger.get(reversal__isnull=False)
    assert MARK.search(page(admin_client, "allocation", reversed_row))


def test_a_staff_user_who_may_not_view_reversals_sees_the_mark_without_a_link(
    client, reversed_and_standing
):
    """A link they may not follow would only lead to a refusal."""
    clerk = User.objects.create_user("clerk", password="x", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="collections", codename__in=["view_payment", "view_allocation"]))
    client.force_login(clerk)
    said = "Reversed on 5 Aug 2025 by Reversal of EUR 500.00 on 1 Aug 2025"

    on_the_payment = page(client, "payment", reversed_and_standing["payment"])
    in_the_list = client.get(reverse("admin:collections_allocation_changelist")).content.decode()

    for html in (on_the_payment, in_the_list):
        assert said in html
        assert not MARK.search(html)
        assert "paymentreversal" not in html
