"""The customer list's Overdue column leaves out what is under open dispute,
as the aged trial balance keeps it apart, and says how much that is; the list
is ranked by what it shows, searched or not, at no query more."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from ar_collections import services, workspace
from ar_collections.models import DisputeReason
from tests.ar_collections.conftest import frozen

URL = reverse("customers:list")
TODAY = dt.date(2025, 8, 5)


@pytest.fixture
def accounts(make_customer, make_invoice, manager, collector):
    """Acme owes 1,000 overdue, 800 of it disputed; Bolt 500 overdue, none disputed."""
    acme = make_customer(name="Acme Trading", currency="EUR", collector=collector)
    bolt = make_customer(name="Bolt Trading", currency="EUR", collector=collector)
    disputed = make_invoice(acme, issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="800.00")
    make_invoice(acme, issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="200.00")
    make_invoice(bolt, issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="500.00")
    with frozen(TODAY):
        workspace.dispute_open(customer=acme, actor=manager, invoice=disputed, reason=DisputeReason.PRICE,
                               description="Wrong price", on=TODAY)
        services.behaviour_refresh(on=TODAY, customer_ids=[acme.pk, bolt.pk], record=False)
    return acme, bolt



@pytest.mark.parametrize("query", [{}, {"q": "trading"}])
def test_the_overdue_column_leaves_out_the_disputed_part_and_ranks_by_what_it_shows(
    client, collector, accounts, query
):
    client.force_login(collector)

    with frozen(TODAY):
        response = client.get(URL, query)

    assert [c.name for c in response.context["page"].object_list] == ["Bolt Trading", "Acme Trading"]
    html = " ".join(response.content.decode().split())
    assert "EUR 500.00" in html
    assert re.search(r'>EUR 200\.00 <span class="muted">\+ EUR 800\.00 under dispute</span></td>', html), html
    assert "Overdue, not disputed" in html


def test_an_invoice_fallen_due_and_disputed_since_the_behaviour_was_computed_is_not_taken_off_it(
    client, collector, manager, make_customer, make_invoice
):
    """The Overdue column is the behaviour's, computed overnight: an invoice due
    on the day it was computed, disputed the next day, is not in that figure,
    so its disputed part is not taken off it (EUR -800.00 before)."""
    acme = make_customer(name="Acme Trading", currency="EUR", collector=collector)
    invoice = make_invoice(acme, issued=dt.date(2025, 7, 1), due=TODAY, amount="800.00")
    with frozen(TODAY):
        services.behaviour_refresh(on=TODAY, customer_ids=[acme.pk], record=False)
    day_after = TODAY + dt.timedelta(days=1)
    with frozen(day_after):
        workspace.dispute_open(customer=acme, actor=manager, invoice=invoice, reason=DisputeReason.PRICE,
                               description="Wrong price", on=day_after)
        client.force_login(collector)
        html = " ".join(client.get(URL).content.decode().split())

    assert "-800.00" not in html and "−800.00" not in html
    assert "under dispute" not in html
    assert "EUR 0.00" in html
