"""Money helpers: amounts per currency are summed and written apart, each with
its currency's own places after the point."""

from decimal import Decimal

import pytest

from arcrm.money import by_currency, format_amounts, format_money


def test_amounts_are_summed_per_currency_never_across():
    pairs = [("USD", Decimal("5.00")), ("EUR", Decimal("40.00")), ("EUR", Decimal("3.16"))]

    assert by_currency(pairs) == [("EUR", Decimal("43.16")), ("USD", Decimal("5.00"))]
    assert by_currency([]) == []


def test_amounts_in_several_currencies_read_as_a_sum_of_each():
    assert format_amounts([("EUR", Decimal("43.16")), ("USD", Decimal("5"))]) == "EUR 43.16 + USD 5.00"
    assert format_amounts([]) == ""


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    ("1234.5", "EUR", "EUR 1,234.50"),
    ("6000.00", "JPY", "JPY 6,000"),  # yen have no minor unit
    ("6000.5", "JPY", "JPY 6,001"),  # rounded half up, as money is
    ("-1500", "KRW", "KRW -1,500"),
    ("1234.5", "KWD", "KWD 1,234.500"),  # dinars count in thousandths
    ("0", "JPY", "JPY 0"),
])
def test_an_amount_shows_its_currency_s_own_places(amount, currency, shown):
    assert format_money(Decimal(amount), currency) == shown


def test_a_sum_in_several_currencies_shows_each_with_its_own_places():
    assert format_amounts([("EUR", Decimal("40")), ("JPY", Decimal("6000"))]) == "EUR 40.00 + JPY 6,000"
