"""Money helpers. Amounts are Decimal end to end; precision is set here, once."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError

MONEY_MAX_DIGITS = 14
MONEY_DECIMAL_PLACES = 2
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def quantize(amount: Decimal) -> Decimal:
    """Round to cents, half up, as invoices and statements do."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def format_money(amount: Decimal | None, currency: str) -> str:
    """`1234.5, "EUR"` → `"EUR 1,234.50"`; stays exact (no float on the way)."""
    if amount is None:
        return "—"
    value = quantize(amount)
    sign = "-" if value < 0 else ""
    return f"{currency} {sign}{abs(value):,.2f}"


def by_currency(amounts: Iterable[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    """`(currency, amount)` pairs summed per currency, in currency order: amounts
    in different currencies are never added together."""
    totals: dict[str, Decimal] = {}
    for currency, amount in amounts:
        totals[currency] = totals.get(currency, ZERO) + amount
    return sorted(totals.items())


def format_amounts(totals: Iterable[tuple[str, Decimal]]) -> str:
    """`[("EUR", 40), ("USD", 5)]` → `"EUR 40.00 + USD 5.00"`."""
    return " + ".join(format_money(amount, currency) for currency, amount in totals)


def validate_currency(value: str) -> None:
    if len(value) != 3 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValidationError("Use a three-letter ISO 4217 code in capitals, e.g. EUR.")
