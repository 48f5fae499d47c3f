"""Overdue means one thing on the account page's header and in the customer
list's Max days overdue, as in the list's Overdue column and the aged trial
balance: money under open dispute is left out (of an invoice disputed in
part, the part disputed) and said beside; an invoice wholly under dispute
is overdue nowhere."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import services, workspace
from ar_collections.models import DisputeOutcome, DisputeReason
from tests.ar_collections.conftest import frozen

TODAY = dt.date(2025, 8, 5)
OLD_DUE = dt.date(2025, 6, 1)  # 65 days overdue on TODAY
RECENT_DUE = dt.date(2025, 7, 6)  # 30 days overdue on TODAY


@pytest.fixture
def acme(make_customer, make_invoice, collector):
    """Owes EUR 1,000.00 due 65 days ago and EUR 200.00 due 30 days ago."""
    account = make_customer(name="Acme Trading", currency="EUR", collector=collector)
    account.old = make_invoice(account, number="INV-OLD", issued=dt.date(2025, 5, 1), due=OLD_DUE,
                               amount="1000.00")
    account.recent = make_invoice(account, number="INV-RECENT", issued=dt.date(2025, 6, 6), due=RECENT_DUE,
                                  amount="200.00")
    return account


def dispute(account, invoice, actor, *, amount: str | None = None, on: dt.date = TODAY):
    with frozen(on):
        return workspace.dispute_open(customer=account, actor=actor, invoice=invoice,
                                      reason=DisputeReason.PRICE, description="Wrong price", on=on,
                                      amount=Decimal(amount) if amount else None)


def header_overdue(client, account) -> str:
    with frozen(TODAY):
        html = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    return re.search(r'<dd data-figure="overdue".*?</dd>', html, re.S).group(0)


def listed_max_days(client, account, *, on: dt.date = TODAY, query=None) -> str:
    with frozen(on):
        html = client.get(reverse("customers:list"), query or {}).content.decode()
    row = re.search(rf'{account.name}</a>.*?</tr>', html, re.S).group(0)
    return re.findall(r'<td class="num">(\d+)</td>', row)[-1]


# --- the account page's header --------------------------------------------------------


def test_the_header_s_overdue_leaves_out_the_disputed_part_of_an_invoice_and_says_it_beside(
    client, collector, manager, acme
):
    dispute(acme, acme.old, manager, amount="400.00")
    client.force_login(collector)

    figure = " ".join(header_overdue(client, acme).split())

    assert 'class="overdue">EUR 800.00 <span class="muted">+ EUR 400.00 under dispute</span></dd>' in figure


def test_the_header_s_overdue_leaves_out_an_invoice_wholly_under_dispute(client, collector, manager, acme):
    dispute(acme, acme.old, manager)
    client.force_login(collector)

    figure = " ".join(header_overdue(client, acme).split())

    assert 'class="overdue">EUR 200.00 <span class="muted">+ EUR 1,000.00 under dispute</span></dd>' in figure


def test_an_account_whose_overdue_money_is_all_disputed_is_not_shown_as_overdue_in_its_header(
    client, collector, manager, make_customer, make_invoice
):
    account = make_customer(name="Bolt Trading")
    invoice = make_invoice(account, issued=dt.date(2025, 5, 1), due=OLD_DUE, amount="800.00")
    dispute(account, invoice, manager)
    client.force_login(collector)

    figure = " ".join(header_overdue(client, account).split())

    assert figure == ('<dd data-figure="overdue" class="">EUR 0.00 <span class="muted">+ EUR 800.00 under '
                      'dispute</span></dd>')


def test_a_resolved_dispute_puts_its_money_back_in_the_header_s_overdue(client, collector, manager, acme):
    opened = dispute(acme, acme.old, manager)
    with frozen(TODAY):
        workspace.dispute_resolve(dispute=opened, actor=manager, outcome=DisputeOutcome.REJECTED,
                                  note="Price was as quoted", on=TODAY)
    client.force_login(collector)

    figure = " ".join(header_overdue(client, acme).split())

    assert 'class="overdue">EUR 1,200.00</dd>' in figure
    assert "under dispute" not in figure


def test_a_disputed_invoice_not_yet_due_is_neither_overdue_nor_said_beside_it(
    client, collector, manager, acme, make_invoice
):
    later = make_invoice(acme, issued=dt.date(2025, 7, 20), due=dt.date(2025, 8, 20), amount="300.00")
    dispute(acme, later, manager)
    client.force_login(collector)

    figure = " ".join(header_overdue(client, acme).split())

    assert 'class="overdue">EUR 1,200.00</dd>' in figure


def test_other_currencies_overdue_leave_out_their_disputed_part_too(
    client, collector, manager, acme, make_invoice
):
    dollars = make_invoice(acme, issued=dt.date(2025, 5, 1), due=OLD_DUE, amount="500.00", currency="USD")
    make_invoice(acme, issued=dt.date(2025, 5, 1), due=OLD_DUE, amount="70.00", currency="GBP")
    dispute(acme, dollars, manager)
    client.force_login(collector)

    figure = " ".join(header_overdue(client, acme).split())

    # No "USD 0.00" among what is overdue: all the dollars are under dispute.
    assert ('class="overdue">EUR 1,200.00 + GBP 70.00 <span class="muted">+ USD 500.00 under dispute</span>'
            '</dd>') in figure


# --- the customer list's Max days overdue ------------------------------------------------


def refreshed(account, *, on: dt.date = TODAY):
    with frozen(on):
        services.behaviour_refresh(on=on, customer_ids=[account.pk], record=False)


@pytest.mark.parametrize("query", [{}, {"q": "acme"}])
def test_an_invoice_wholly_under_dispute_does_not_count_in_the_list_s_max_days_overdue(
    client, collector, manager, acme, query
):
    dispute(acme, acme.old, manager)
    refreshed(acme)
    client.force_login(collector)

    assert listed_max_days(client, acme, query=query) == "30"


def test_an_invoice_disputed_in_part_still_counts_in_the_list_s_max_days_overdue(
    client, collector, manager, acme
):
    dispute(acme, acme.old, manager, amount="400.00")
    refreshed(acme)
    client.force_login(collector)

    assert listed_max_days(client, acme) == "65"


def test_an_invoice_whose_dispute_is_resolved_counts_again_in_the_list_s_max_days_overdue(
    client, collector, manager, acme
):
    opened = dispute(acme, acme.old, manager)
    refreshed(acme)
    with frozen(TODAY):
        workspace.dispute_resolve(dispute=opened, actor=manager, outcome=DisputeOutcome.REJECTED,
                                  note="Price was as quoted", on=TODAY)
    client.force_login(collector)

    assert listed_max_days(client, acme) == "65"


def test_an_account_with_every_overdue_invoice_wholly_disputed_has_no_days_overdue_in_the_list(
    client, collector, manager, acme
):
    dispute(acme, acme.old, manager)
    dispute(acme, acme.recent, manager)
    refreshed(acme)
    client.force_login(collector)

    assert listed_max_days(client, acme) == "0"


def test_the_list_s_max_days_overdue_counts_as_of_the_day_the_behaviour_was_computed(
    client, collector, manager, acme, make_invoice
):
    """The column is the behaviour's, computed overnight: an invoice fallen due
    on the day it was computed is not overdue in it, dispute or not, and the
    days are counted to that day, as the Overdue column's amount is."""
    make_invoice(acme, issued=dt.date(2025, 4, 1), due=TODAY, amount="50.00")
    dispute(acme, acme.old, manager)
    refreshed(acme)
    client.force_login(collector)

    assert listed_max_days(client, acme, on=TODAY + dt.timedelta(days=3)) == "30"


# --- the account page's payment behaviour -------------------------------------------------


def behaviour_block(client, account) -> tuple[str, str]:
    """The payment behaviour's Overdue and Most days overdue, as shown."""
    with frozen(TODAY):
        html = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    block = html.split("Most days overdue")
    overdue = re.findall(r"<dt>Overdue</dt><dd[^>]*>(.*?)</dd>", block[0], re.S)[-1]
    most = re.match(r"</dt><dd>(\d+)</dd>", block[1]).group(1)
    return " ".join(re.sub(r"<[^>]+>", "", overdue).split()), most


@pytest.mark.parametrize(("amount", "shown"), [
    (None, ("EUR 200.00 (1 invoice) + EUR 1,000.00 under dispute", "30")),
    ("400.00", ("EUR 800.00 (2 invoices) + EUR 400.00 under dispute", "65")),
])
def test_the_payment_behaviour_s_overdue_and_most_days_follow_the_customer_list(
    client, collector, manager, acme, amount, shown
):
    dispute(acme, acme.old, manager, amount=amount)
    refreshed(acme)
    client.force_login(collector)

    assert behaviour_block(client, acme) == shown


def test_the_payment_behaviour_counts_invoices_wholly_disputed_in_no_currency(
    client, collector, manager, acme, make_invoice
):
    """The account's own currency's count leaves out an invoice wholly under
    dispute, as the other currencies' counts beside it do: "(2 invoices)"
    beside EUR 200.00 counted the EUR 1,000.00 disputed."""
    dollars = make_invoice(acme, issued=dt.date(2025, 5, 1), due=OLD_DUE, amount="500.00", currency="USD")
    make_invoice(acme, issued=dt.date(2025, 6, 6), due=RECENT_DUE, amount="70.00", currency="USD")
    dispute(acme, acme.old, manager)
    dispute(acme, dollars, manager)
    refreshed(acme)
    client.force_login(collector)

    assert behaviour_block(client, acme) == (
        "EUR 200.00 (1 invoice) + USD 70.00 (1 invoice) + EUR 1,000.00 under dispute", "30")


def test_the_payment_behaviour_counts_a_resolved_dispute_s_invoice_again(client, collector, manager, acme):
    opened = dispute(acme, acme.old, manager)
    refreshed(acme)
    with frozen(TODAY):
        workspace.dispute_resolve(dispute=opened, actor=manager, outcome=DisputeOutcome.REJECTED,
                                  note="Price was as quoted", on=TODAY)
    client.force_login(collector)

    assert behaviour_block(client, acme) == ("EUR 1,200.00 (2 invoices)", "65")


def test_a_dispute_opened_on_the_account_page_updates_the_header_s_overdue_in_place(
    client, collector, acme, django_capture_on_commit_callbacks
):
    client.force_login(collector)

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("collections:dispute_open", args=[acme.pk]), {
            "invoice": acme.old.pk, "reason": DisputeReason.PRICE, "description": "Billed twice",
            "department": "", "amount": "250.00",
        }, headers={"HX-Request": "true"})

    assert response.status_code == 200
    figure = " ".join(re.search(r'<dd data-figure="overdue".*?</dd>', response.content.decode(), re.S)
                      .group(0).split())
    assert 'class="overdue">EUR 950.00 <span class="muted">+ EUR 250.00 under dispute</span></dd>' in figure
