"""Money typed in the admin is read as the app's own forms read it
(arcrm.forms.MoneyField): digits and a point, never in scientific notation.
Decimal reads "1e3" as 1000, so a slip on the keyboard would otherwise
record EUR 1,000.00 where nobody wrote 1000."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import reverse

from ar_collections.models import CollectionRules, Invoice
from arcrm.admin_columns import _is_money
from arcrm.forms import MoneyField
from customers.models import TimelineEvent
from tests.ar_collections.test_admin_invoices import add_form
from tests.ar_collections.test_policy_admin import rules_post

NOT_PLAIN = "Write the amount in digits with a point for the cents, e.g. 1000.00: “{}” is not written so."


@pytest.fixture
def admin_client(client, db):
    """Signed in as a member of the admin staff signs in: through the admin's login page."""
    User.objects.create_superuser("root-admin", password="a long admin password")
    response = client.post(reverse("admin:login"), {"username": "root-admin",
                                                    "password": "a long admin password", "next": "/admin/"})
    assert response.status_code == 302 and response.url == "/admin/"
    return client


@pytest.mark.parametrize("typed", ["1e3", "2.5E2", "1E+3"])
def test_an_invoice_total_in_scientific_notation_is_refused_in_the_admin_and_nothing_is_saved(
    admin_client, customer, typed
):
    response = admin_client.post(reverse("admin:collections_invoice_add"),
                                 add_form(customer, total_amount=typed))

    assert response.status_code == 200
    assert NOT_PLAIN.format(typed) in response.content.decode()
    assert not Invoice.objects.exists()
    assert not TimelineEvent.objects.filter(customer=customer).exists()


@pytest.mark.parametrize("field", ["plan_approval_above_amount", "credit_without_manager_amount"])
def test_a_money_limit_in_scientific_notation_is_refused_in_the_collection_rules(admin_client, field):
    before = getattr(CollectionRules.current(), field)

    response = admin_client.post(reverse("admin:collections_collectionrules_change", args=[1]),
                                 rules_post(**{field: "5e3"}))

    assert response.status_code == 200
    assert NOT_PLAIN.format("5e3") in response.content.decode()
    assert getattr(CollectionRules.current(), field) == before


def test_an_invoice_total_in_digits_is_still_taken_in_the_admin(admin_client, customer):
    response = admin_client.post(reverse("admin:collections_invoice_add"),
                                 add_form(customer, total_amount="1000.00"))

    assert response.status_code == 302
    assert Invoice.objects.get().total_amount == Decimal("1000.00")


def test_every_amount_typed_in_the_admin_is_read_as_the_app_s_forms_read_it(db):
    """Every admin page's and inline's form: each money field one can type
    into is a MoneyField, the app's one rule for money typed in."""
    request = RequestFactory().get("/admin/")
    request.user = User.objects.create_superuser("root", password="x")
    read_otherwise = []
    for model, model_admin in admin.site._registry.items():
        forms = [(model, model_admin.get_form(request))]
        forms += [(inline.model, inline.get_formset(request).form)
                  for inline in model_admin.get_inline_instances(request)]
        for form_model, form in forms:
            for name, field in form.base_fields.items():
                model_field = next((f for f in form_model._meta.concrete_fields if f.name == name), None)
                if model_field is not None and _is_money(model_field) and not isinstance(field, MoneyField):
                    read_otherwise.append(f"{form_model.__name__}.{name}")
    assert read_otherwise == []
