"""The collection rules (with their worklist money scales) are changed on
their admin page, which records each change with before and after; the
payment behaviour is computed from the account's history. Neither is
deleted in the admin: the rules would fall back to their defaults with no
record of what they were, and an account would lose its figures until the
nightly refresh."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ar_collections.models import CollectionRules, MoneyPointScale, PaymentBehaviour
from ar_collections.services import behaviour_refresh


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


@pytest.fixture
def rules(manager) -> CollectionRules:
    """Collectors may pause dunning 30 days here; JPY scores 1 point per 150,000."""
    rules, _ = CollectionRules.objects.update_or_create(pk=1, defaults={"max_pause_days": 30,
                                                                      "updated_by": manager})
    MoneyPointScale.objects.create(rules=rules, currency="JPY", per_point_amount=Decimal("150000"))
    return rules


def delete(admin_client, obj) -> int:
    """Deletes `obj` from the list and from its delete page; the page's answer."""
    opts = obj._meta
    admin_client.post(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                      {"action": "delete_selected", "post": "yes", "_selected_action": [str(obj.pk)]})
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk])
    return admin_client.post(url, {"post": "yes"}).status_code


def test_the_collection_rules_are_not_deleted_back_to_their_defaults_in_the_admin(admin_client, rules):
    status = delete(admin_client, rules)

    current = CollectionRules.current()
    scales = current.money_scales.values_list("currency", "per_point_amount")
    assert (current.max_pause_days, list(scales)) == (30, [("JPY", Decimal("150000"))])
    assert status == 403


def test_a_worklist_money_scale_is_not_deleted_apart_from_the_rules_page(admin_client, rules):
    status = delete(admin_client, MoneyPointScale.objects.get())

    assert MoneyPointScale.objects.filter(currency="JPY").exists()
    assert status == 403


def test_an_account_s_payment_behaviour_is_not_deleted_in_the_admin(admin_client, customer, make_invoice):
    make_invoice(customer, issued=dt.date(2026, 1, 1), amount="500.00")
    behaviour_refresh(on=dt.date(2026, 3, 2), customer_ids=[customer.pk])

    status = delete(admin_client, PaymentBehaviour.objects.get(customer=customer))

    assert PaymentBehaviour.objects.get(customer=customer).open_amount == Decimal("500.00")
    assert status == 403
