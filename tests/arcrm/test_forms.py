"""The money field every form takes an amount with."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from arcrm.forms import MoneyField


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
