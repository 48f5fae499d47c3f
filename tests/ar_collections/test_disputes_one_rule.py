"""A dispute holds its whole invoice only when the amount it contests covers
everything still open on it; otherwise only that amount is held and dunning
chases the rest. The rule is read in Python (the Dunning card, the dispute's
own wording, letters and statements), in the ORM (eligible_invoices, the
worklist, letters withdrawn) and in the planner's raw SQL: on the same cases,
at and around the edge, every reader says the same."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from ar_collections import workspace
from ar_collections.dunning import _NOT_HELD, _held_sql, eligible_invoices
from ar_collections.models import Dispute, DisputeReason, DunningPause, disputed_in_full

from .conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=20)

# (disputed, then paid on the invoice of EUR 700.00, disputed in full?)
CASES = [
    ("250.00", "0.00", False),
    ("699.99", "0.00", False),
    ("700.00", "0.00", True),
    # The undisputed rest paid since: what is left is all disputed.
    ("250.00", "450.00", True),
    # More than the rest paid: the dispute contests more than is open.
    ("250.00", "500.00", True),
    ("250.00", "449.99", False),
]


def planner_lets_through(invoice, on: dt.date) -> bool:
    held, params = _held_sql(on, invoice.customer_id, invoice.customer_id)
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH {held}
            SELECT 1 FROM collections_invoice i WHERE i.id = %s AND {_NOT_HELD}
        """, [*params, invoice.pk])
        return cursor.fetchone() is not None


@pytest.mark.parametrize(("disputed", "paid", "in_full"), CASES)
def test_every_reader_of_the_rule_holds_the_invoice_whole_in_the_same_cases(
    make_account, collector, disputed, paid, in_full
):
    account = make_account()
    invoice = account.invoices.get(total_amount=Decimal("700.00"))
    with frozen(ON):
        dispute = workspace.dispute_open(customer=account, actor=collector, invoice=invoice,
                                         reason=DisputeReason.PRICE, description="Price differs", on=ON,
                                         amount=Decimal(disputed))
        if Decimal(paid):
            workspace.payment_record(customer=account, amount=Decimal(paid), currency="EUR", received_on=ON,
                                     allocations=[(invoice, Decimal(paid))], actor=collector)
    invoice.refresh_from_db()
    dispute = Dispute.objects.select_related("invoice").get(pk=dispute.pk)
    pause = DunningPause.objects.select_related("dispute", "invoice").get(dispute=dispute)

    assert disputed_in_full(dispute.disputed_amount, invoice.open_amount) == in_full
    assert dispute.in_full == in_full
    assert (pause.disputed_in_part() is None) == in_full
    assert eligible_invoices(on=ON).filter(pk=invoice.pk).exists() == (not in_full)
    assert planner_lets_through(invoice, ON) == (not in_full)
    try:
        workspace._not_disputed_in_full([invoice], workspace.disputed_parts([invoice]), field="invoices",
                                        out_of="the plan")
    except ValidationError:
        refused = True
    else:
        refused = False
    assert refused == in_full


@pytest.mark.parametrize(("disputed", "paid", "in_full"), CASES)
def test_the_account_page_s_commitments_box_says_what_the_dunning_holds(
    client, make_account, collector, disputed, paid, in_full
):
    """The box compared the amounts itself: a dispute contesting more than a
    part payment left open was shown with neither "all that is open" nor
    what is open, while dunning held the whole invoice."""
    account = make_account()
    invoice = account.invoices.get(total_amount=Decimal("700.00"))
    with frozen(ON):
        workspace.dispute_open(customer=account, actor=collector, invoice=invoice, reason=DisputeReason.PRICE,
                               description="Price differs", on=ON, amount=Decimal(disputed))
        if Decimal(paid):
            workspace.payment_record(customer=account, amount=Decimal(paid), currency="EUR", received_on=ON,
                                     allocations=[(invoice, Decimal(paid))], actor=collector)
        client.force_login(collector)
        page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    invoice.refresh_from_db()
    box = " ".join(page.split('<section id="commitments"')[1].split("</section>")[0].split())
    pauses = " ".join(page.split('data-figure="pauses">')[1].split("</dd>")[0].split())
    open_now = f"EUR {invoice.open_amount:,.2f}"

    said = f"EUR {Decimal(disputed):,.2f}, all of the {open_now} open" if in_full else (
        f"EUR {Decimal(disputed):,.2f} of {open_now} open")
    assert f"Dispute on {invoice.number} ({said}): " in box
    # What dunning does with it: the whole invoice held, or the rest chased.
    assert (f"Open dispute on {invoice.number} until resolved" in pauses) == in_full
    assert eligible_invoices(on=ON).filter(pk=invoice.pk).exists() == (not in_full)
