"""The money and whole-number fields every form takes an amount or a number with."""

from __future__ import annotations

import importlib
import inspect
from decimal import Decimal

import pytest
from django import forms
from django.core.exceptions import ValidationError

from ar_collections.models import DunningStep
from arcrm.forms import MoneyField, WholeNumberField


@pytest.mark.parametrize("written", ["1e3", "2.5E2", " 1E3 ", "1e-2"])
def test_an_amount_in_scientific_notation_is_refused_with_how_to_write_it(written):
    with pytest.raises(ValidationError) as refused:
        MoneyField().clean(written)

    assert refused.value.messages == [
        f"Write the amount in digits with a point for the cents, e.g. 1000.00: “{written.strip()}” is not "
        "written so."]


@pytest.mark.parametrize(("written", "amount"), [("1000.00", "1000.00"), (" 12.5 ", "12.5"), ("7", "7")])
def test_an_amount_in_digits_is_taken_as_written(written, amount):
    assert MoneyField().clean(written) == Decimal(amount)


def test_it_keeps_money_s_digits_and_places():
    with pytest.raises(ValidationError):
        MoneyField().clean("1.005")
    assert MoneyField(required=False).clean("") is None


@pytest.mark.parametrize(("form", "field"), [
    ("customers.forms.CustomerForm", "credit_limit_amount"),
    ("ar_collections.admin.StepFeeForm", "amount"),
    ("ar_collections.admin.MoneyPointScaleForm", "per_point_amount"),
])
def test_the_account_card_and_the_policy_admin_refuse_scientific_notation_too(form, field):
    module, name = form.rsplit(".", 1)
    form_class = getattr(importlib.import_module(module), name)

    with pytest.raises(ValidationError, match="Write the amount in digits"):
        form_class.base_fields[field].clean("5e3")


# --- Whole numbers ------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "named"), [
    ("３０", "３ (U+FF13), ０ (U+FF10)"),
    ("٣٠", "٣ (U+0663), ٠ (U+0660)"),
    ("3٠", "٠ (U+0660)"),
])
def test_a_whole_number_in_other_digits_is_refused_naming_them(written, named):
    with pytest.raises(ValidationError) as refused:
        WholeNumberField().clean(written)

    assert refused.value.messages == [
        f"“{written}” is written with digits other than 0-9 ({named}): write the number like 30."]


def test_a_whole_number_in_digits_is_taken_as_written():
    assert WholeNumberField().clean(" 30 ") == 30
    assert WholeNumberField(required=False).clean("") is None


def _a_plain_whole_number(field: forms.Field) -> bool:
    # Django's DecimalField and FloatField are IntegerFields too: amounts have MoneyField.
    return (isinstance(field, forms.IntegerField)
            and not isinstance(field, forms.FloatField | forms.DecimalField | WholeNumberField))


def _product_forms() -> list[type[forms.BaseForm]]:
    from ar_collections import forms as collections_forms
    from ar_collections import simulator_views, wording_views, workspace_forms
    from customers import forms as customers_forms

    found = []
    for module in (workspace_forms, collections_forms, customers_forms, wording_views, simulator_views):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, forms.BaseForm) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_whole_number_the_product_s_forms_take_is_written_in_digits_0_to_9():
    plain = [f"{form.__name__}.{name}" for form in _product_forms()
             for name, field in form.base_fields.items()
             if _a_plain_whole_number(field)]

    assert plain == []


@pytest.mark.django_db
def test_every_whole_number_the_admin_takes_is_written_in_digits_0_to_9(rf, django_user_model):
    from django.contrib import admin

    request = rf.get("/")
    request.user = django_user_model.objects.create_superuser("root", "root@example.com", "x")
    plain = []
    for model, model_admin in admin.site._registry.items():
        form = model_admin.get_form(request)
        plain += [f"{model.__name__}.{name}" for name, field in form.base_fields.items()
                  if _a_plain_whole_number(field)]
    for_steps = admin.site._registry[DunningStep].get_form(request).base_fields

    assert plain == []
    assert isinstance(for_steps["day_offset"], WholeNumberField)  # a whole number there is, swept


@pytest.mark.parametrize("written", ["1234567890123.00", "9999999999999"])
def test_an_amount_no_money_column_holds_is_refused_saying_the_largest(written):
    with pytest.raises(ValidationError) as refused:
        MoneyField().clean(written)

    assert refused.value.messages == ["This is more than an amount may be (999999999999.99 at most)."]


def test_the_largest_amount_a_money_column_holds_is_taken():
    assert MoneyField().clean("999999999999.99") == Decimal("999999999999.99")
