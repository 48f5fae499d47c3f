"""An account whose currency is changed on its card keeps its invoices'
money in the invoices' own currency: the customer list, the account header's
figures and aging and the payment behaviour never relabel euros as dollars,
nor show dollars owing nothing while euros are overdue."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from ar_collections.services import behaviour_refresh

from .test_views_edit import card_data

TODAY = dt.date(2026, 12, 4)


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def account(make_customer, make_invoice, collector):
    """Billed in euros: EUR 861.11 overdue since 20 Nov, EUR 1,028.65 due 21 Dec."""
    customer = make_customer(name="Liffey Logistics", currency="EUR", collector=collector)
    make_invoice(customer, issued=dt.date(2026, 10, 21), due=dt.date(2026, 11, 20), amount="861.11")
    make_invoice(customer, issued=dt.date(2026, 11, 21), due=dt.date(2026, 12, 21), amount="1028.65")
    behaviour_refresh(on=TODAY, customer_ids=[customer.pk])
    return customer


def now_in_dollars(client, manager, customer, django_capture_on_commit_callbacks) -> None:
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("customers:edit", args=[customer.pk]),
                               card_data(customer, currency="USD", credit_limit_amount="5000.00"))
    assert response.status_code == 302, response.content.decode()
    customer.refresh_from_db()
    assert customer.currency == "USD"


def between(html: str, start: str, end: str) -> str:
    html = " ".join(html.split())
    return html.split(start, 1)[1].split(end, 1)[0]


def test_the_customer_list_shows_the_euros_as_euros(
    client, manager, account, django_capture_on_commit_callbacks
):
    now_in_dollars(client, manager, account, django_capture_on_commit_callbacks)

    row = between(client.get(reverse("customers:list")).content.decode(), "Liffey Logistics", "</tr>")

    assert "EUR 1,889.76" in row and "EUR 861.11" in row, row
    assert "USD" not in row, row


def test_the_account_header_and_payment_behaviour_show_the_euros_as_euros(
    client, manager, account, django_capture_on_commit_callbacks
):
    now_in_dollars(client, manager, account, django_capture_on_commit_callbacks)

    html = client.get(reverse("customers:detail", args=[account.pk])).content.decode()

    header = between(html, 'class="header-figures"', 'class="header-facts"')
    assert "EUR 1,889.76" in header and "EUR 861.11" in header, header
    assert "USD 0.00" not in header, header  # nor an aging of dollars owing nothing
    assert "1–30: EUR 861.11" in header and "Not yet due: EUR 1,028.65" in header, header
    behaviour = between(html, 'id="behaviour"', "</section>")
    assert "EUR 1,889.76 <span class=\"muted\">(2 invoices)</span>" in behaviour, behaviour
    assert "EUR 861.11 <span class=\"muted\">(1 invoice)</span>" in behaviour, behaviour
    assert "USD" not in behaviour, behaviour


def test_an_account_with_money_in_two_currencies_shows_an_aging_for_each(
    client, manager, account, make_invoice, django_capture_on_commit_callbacks
):
    now_in_dollars(client, manager, account, django_capture_on_commit_callbacks)
    make_invoice(account, issued=dt.date(2026, 11, 1), due=dt.date(2026, 12, 1), amount="50.00")

    html = client.get(reverse("customers:detail", args=[account.pk])).content.decode()

    header = between(html, 'class="header-figures"', 'class="header-facts"')
    assert "USD 50.00 + EUR 1,889.76" in header, header
    assert "1–30: USD 50.00" in header and "1–30: EUR 861.11" in header, header


@pytest.fixture
def others(make_customer, make_invoice, collector):
    """An account in euros with EUR 100.00 overdue, and one in dollars with USD 50.00 overdue."""
    made = []
    for name, currency, amount in [("Berlin Bakery", "EUR", "100.00"), ("Boston Brewing", "USD", "50.00")]:
        customer = make_customer(name=name, currency=currency, collector=collector)
        make_invoice(customer, issued=dt.date(2026, 10, 1), due=dt.date(2026, 11, 1), amount=amount,
                     currency=currency)
        behaviour_refresh(on=TODAY, customer_ids=[customer.pk])
        made.append(customer)
    return made


def names_in(response) -> list[str]:
    return [customer.name for customer in response.context["page"].object_list]


def test_the_customer_list_ranks_the_euros_overdue_among_the_euros_not_as_nothing_in_dollars(
    client, manager, account, others, django_capture_on_commit_callbacks, settings
):
    settings.DEFAULT_CURRENCY = "EUR"
    now_in_dollars(client, manager, account, django_capture_on_commit_callbacks)

    response = client.get(reverse("customers:list"))

    # EUR 861.11 overdue comes before EUR 100.00, under the euros' heading.
    assert names_in(response) == ["Liffey Logistics", "Berlin Bakery", "Boston Brewing"]
    html = " ".join(response.content.decode().split())
    assert html.index("Accounts in EUR") < html.index("Liffey Logistics") < html.index("Accounts in USD")
    assert "Most overdue first within each currency: EUR, then USD." in html


def test_the_overdue_filter_keeps_an_account_owing_overdue_money_only_in_another_currency(
    client, manager, account, others, django_capture_on_commit_callbacks
):
    now_in_dollars(client, manager, account, django_capture_on_commit_callbacks)

    assert "Liffey Logistics" in names_in(client.get(reverse("customers:list"), {"overdue": "on"}))


def test_most_days_overdue_counts_the_invoices_in_euros_on_the_list_and_the_card(
    client, manager, account, make_invoice, django_capture_on_commit_callbacks
):
    """Days need no exchange rate: EUR 861.11 due 20 Nov is 14 days overdue on
    4 Dec, whatever the account's currency is now (a dollar invoice 3 days
    overdue beside it does not hide it)."""
    now_in_dollars(client, manager, account, django_capture_on_commit_callbacks)
    make_invoice(account, issued=dt.date(2026, 11, 1), due=dt.date(2026, 12, 1), amount="50.00",
                 currency="USD")
    behaviour_refresh(on=TODAY, customer_ids=[account.pk])

    row = between(client.get(reverse("customers:list")).content.decode(), "Liffey Logistics", "</tr>")
    html = " ".join(client.get(reverse("customers:detail", args=[account.pk])).content.decode().split())

    assert row.split('<td class="num">')[-1].startswith("14</td>"), row
    assert "<dt>Most days overdue</dt><dd>14</dd>" in html
