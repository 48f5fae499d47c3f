"""Money helpers: amounts per currency are summed and written apart."""

from decimal import Decimal

from arcrm.money import by_currency, format_amounts


def test_amounts_are_summed_per_currency_never_across():
    pairs = [("USD", Decimal("5.00")), ("EUR", Decimal("40.00")), ("EUR", Decimal("3.16"))]

    assert by_currency(pairs) == [("EUR", Decimal("43.16")), ("USD", Decimal("5.00"))]
    assert by_currency([]) == []


def test_amounts_in_several_currencies_read_as_a_sum_of_each():
    assert format_amounts([("EUR", Decimal("43.16")), ("USD", Decimal("5"))]) == "EUR 43.16 + USD 5.00"
    assert format_amounts([]) == ""
