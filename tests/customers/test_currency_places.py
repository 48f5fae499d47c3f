"""An account's currency and its credit limit as money is kept: amounts are
stored to two places after the point (arcrm.money), so a currency counted in
thousandths (KWD, BHD, JOD, OMR, TND) cannot be kept to its last fils, and an
amount finer than its currency is paid in (JPY 100.50) is no amount of it.
Both are refused where they are typed, as the imports refuse them."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from customers.models import Customer, TimelineEvent
from tests.customers.test_views_edit import card_data


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


def opening(collector, **fields) -> dict:
    return {"account_number": "C-NEW", "name": "Newco", "industry": "retail", "customer_since": "2024-05-01",
            "collector": collector.pk, "currency": "EUR", "credit_limit_amount": "5000.00",
            "terms_type": "standard", "payment_terms_days": "45", "buying_reasons": "[]", "ap_run_days": "[]",
            "contacts-TOTAL_FORMS": "0", "contacts-INITIAL_FORMS": "0", **fields}


@pytest.mark.parametrize(("currency", "said"), [
    ("KWD", "KWD counts in thousandths; amounts here are kept to 2 places after the point, so KWD cannot "
            "be used."),
    ("XYZ", "XYZ is not an ISO 4217 currency in circulation (EUR, USD, GBP, ...)."),
])
def test_an_account_is_not_opened_in_the_admin_in_a_currency_its_money_cannot_be_kept_in(
    admin_client, collector, currency, said
):
    response = admin_client.post(reverse("admin:customers_customer_add"),
                                 opening(collector, currency=currency))

    assert response.status_code == 200
    assert said in response.content.decode()
    assert not Customer.objects.exists() and not TimelineEvent.objects.exists()


def test_a_credit_limit_finer_than_its_currency_is_refused_in_the_admin(admin_client, collector):
    response = admin_client.post(reverse("admin:customers_customer_add"),
                                 opening(collector, currency="JPY", credit_limit_amount="100000.50"))

    assert response.status_code == 200
    assert "JPY has no places after the point: write 100000 or 100001, not 100000.50." in (
        response.content.decode())
    assert not Customer.objects.exists()


def test_a_credit_limit_finer_than_its_currency_is_refused_on_the_account_card(client, manager, customer):
    customer.currency = "JPY"
    customer.credit_limit_amount = 500000
    customer.save()
    client.force_login(manager)

    response = client.post(reverse("customers:edit", args=[customer.pk]),
                           card_data(customer, credit_limit_amount="750000.50"))

    assert response.status_code in (200, 422)
    assert "JPY has no places after the point: write 750000 or 750001, not 750000.50." in (
        response.content.decode())
    customer.refresh_from_db()
    assert customer.credit_limit_amount == 500000
