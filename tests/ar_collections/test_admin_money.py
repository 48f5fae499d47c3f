"""The admin's lists show money as the rest of the product does: in the
currency's own places, with grouping, and still sort by the amount."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import DecimalField
from django.urls import reverse

from ar_collections.models import (
    Allocation,
    CollectionRules,
    CreditNote,
    Instalment,
    Invoice,
    Payment,
    PaymentPlan,
    money_field,
)

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


def changelist(admin_client, model, query: str = ""):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist") + query
    response = admin_client.get(url)
    assert response.status_code == 200
    return response


def _is_money(field) -> bool:
    probe = money_field()
    return (isinstance(field, DecimalField) and field.max_digits == probe.max_digits
            and field.decimal_places == probe.decimal_places)


def test_no_admin_list_shows_a_money_field_raw():
    """Every money column goes through the money formatting (a field named
    in list_display is shown as "6000.00", whatever its currency)."""
    raw = []
    for model, model_admin in admin.site._registry.items():
        for name in model_admin.list_display:
            if not isinstance(name, str):
                continue
            try:
                field = model._meta.get_field(name)
            except Exception:
                continue
            if _is_money(field):
                raw.append(f"{model.__name__}.{name}")
    assert raw == []


def test_invoice_amounts_are_shown_in_their_currency_with_grouping(admin_client, customer, make_invoice):
    make_invoice(customer, issued=DAY, amount="6000.00", currency="JPY", number="INV-JPY")
    make_invoice(customer, issued=DAY, amount="1234.50", currency="EUR", number="INV-EUR")
    page = changelist(admin_client, Invoice).content.decode()
    assert "JPY 6,000" in page and "EUR 1,234.50" in page
    assert "6000.00" not in page and "1234.50" not in page


def _column(response, field: str) -> int:
    """The admin's sort index (`?o=`) of the column that shows `field`."""
    cl = response.context["cl"]
    names = [getattr(entry, "__name__", entry) for entry in cl.list_display]
    return names.index(field)


def test_the_invoice_list_still_sorts_by_total_and_by_open_amount(admin_client, customer, make_invoice):
    for number, total in (("INV-B", "90.00"), ("INV-A", "5000.00"), ("INV-C", "700.00")):
        make_invoice(customer, issued=DAY, amount=total, number=number)
    first = changelist(admin_client, Invoice)
    for field in ("total_amount", "open_amount"):
        index = _column(first, field)
        ascending = changelist(admin_client, Invoice, f"?o={index}").context["cl"].result_list
        assert [i.number for i in ascending] == ["INV-B", "INV-C", "INV-A"]
        descending = changelist(admin_client, Invoice, f"?o=-{index}").context["cl"].result_list
        assert [i.number for i in descending] == ["INV-A", "INV-C", "INV-B"]


def test_payments_credit_notes_and_allocations_show_their_currency(admin_client, customer, make_invoice):
    invoice = make_invoice(customer, issued=DAY, amount="250000.00", currency="JPY", paid_on=DAY)
    CreditNote.objects.create(number="CN-1", customer=customer, invoice=invoice, issued_on=DAY,
                              currency="JPY", amount=Decimal("1200.00"))
    assert "JPY 250,000" in changelist(admin_client, Payment).content.decode()
    assert "JPY 1,200" in changelist(admin_client, CreditNote).content.decode()
    page = changelist(admin_client, Allocation).content.decode()
    assert "JPY 250,000" in page and "250000.00" not in page


def test_a_column_finds_the_currency_through_a_relation_or_the_default(settings):
    settings.DEFAULT_CURRENCY = "GBP"
    instalment = Instalment(plan=PaymentPlan(currency="JPY"), amount=Decimal("6000.00"))
    column = next(c for c in admin.site._registry[Instalment].list_display if callable(c))
    assert column(instalment) == "JPY 6,000"
    rules = admin.site._registry[CollectionRules]
    column = next(c for c in rules.list_display if getattr(c, "__name__", "") == "plan_approval_above_amount")
    assert column(CollectionRules(plan_approval_above_amount=Decimal("5000.00"))) == "GBP 5,000.00"


def test_a_read_only_change_page_shows_money_as_the_lists_do(admin_client, customer, make_invoice):
    invoice = make_invoice(customer, issued=DAY, amount="250000.00", currency="JPY", paid_on=DAY)
    payment = Payment.objects.get(allocations__invoice=invoice)
    url = reverse("admin:collections_payment_change", args=[payment.pk])

    page = admin_client.get(url).content.decode()

    assert 'readonly">JPY 250,000</div>' in page  # the payment's amount, and its allocation's
    assert 'readonly">250000.00' not in page and "250,000.00" not in page


def test_a_customers_credit_limit_shows_in_its_currency_where_it_cannot_be_edited(admin_client, customer):
    customer.credit_limit_amount, customer.currency = Decimal("1234.50"), "EUR"
    customer.save()

    page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()

    assert "EUR 1,234.50" in page and "1234.50" not in page
