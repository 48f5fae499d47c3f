"""Money helpers. Amounts are Decimal end to end; precision is set here, once."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError

MONEY_MAX_DIGITS = 14
MONEY_DECIMAL_PLACES = 2
# The largest amount a money column holds: 12 digits before the point. Kept
# as the bound of every amount typed or imported, whatever the currency: a
# B2B invoice of some hundred billion rupiah, dong or won is plausible, and
# fits; one more digit is no amount, and would fail on the column.
LARGEST_AMOUNT = "9" * (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES) + "." + "9" * MONEY_DECIMAL_PLACES
CENT = Decimal("0.01")
# Below this, an amount computed in the database is no money left: exact on
# PostgreSQL, float noise on SQLite.
HALF_CENT = Decimal("0.005")
ZERO = Decimal("0.00")


def quantize(amount: Decimal, currency: str | None = None) -> Decimal:
    """Round half up, as invoices and statements do: to cents, or with
    `currency` to the smallest amount of it we keep (whole yen for JPY)."""
    return Decimal(amount).quantize(CENT if currency is None else smallest_unit(currency),
                                    rounding=ROUND_HALF_UP)


def smallest_unit(currency: str) -> Decimal:
    """The smallest amount of `currency` we keep: 0.01 for EUR, 1 for JPY."""
    return Decimal(1).scaleb(-min(decimal_places(currency), MONEY_DECIMAL_PLACES))


def places_check(amount: Decimal, currency: str, *, field: str) -> None:
    """Refuse an amount finer than `currency` is paid in (JPY 100.50): the
    forms take two places for any currency, and half a yen can be neither
    paid nor asked for. Raised for `field`, as the services raise."""
    unit = smallest_unit(currency)
    if amount == amount.quantize(unit, rounding=ROUND_FLOOR):
        return
    below = amount.quantize(unit, rounding=ROUND_FLOOR)
    places = "no places" if unit == 1 else f"only {-unit.as_tuple().exponent} places"
    raise ValidationError({field: f"{currency} has {places} after the point: "
                                  f"write {below} or {below + unit}, not {amount}."})


def money_digits(amount: Decimal, currency: str) -> tuple[str, str]:
    """`(sign, digits)` of an amount as it is written in `currency`, with its
    own places after the point: `6000, "JPY"` → `("", "6,000")`, `-1234.5,
    "EUR"` → `("-", "1,234.50")`. Rounded half up; exact, no float on the way."""
    places = decimal_places(currency)
    value = Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return ("-" if value < 0 else ""), f"{abs(value):,.{places}f}"


def format_money(amount: Decimal | None, currency: str) -> str:
    """`1234.5, "EUR"` → `"EUR 1,234.50"`, `6000, "JPY"` → `"JPY 6,000"`."""
    if amount is None:
        return "—"
    sign, digits = money_digits(amount, currency)
    return f"{currency} {sign}{digits}"


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


# ISO 4217's currencies in circulation (not its funds, metals or test codes),
# with the places after the point where a currency has not two.
_IN_CIRCULATION = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU
    UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
"""
_WITHOUT_CENTS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_IN_THOUSANDTHS = "BHD IQD JOD KWD LYD OMR TND"
CURRENCIES = frozenset(_IN_CIRCULATION.split())
MINOR_UNITS = {**dict.fromkeys(_WITHOUT_CENTS.split(), 0), **dict.fromkeys(_IN_THOUSANDTHS.split(), 3)}


def decimal_places(currency: str) -> int:
    """How many places after the point an amount in `currency` has."""
    return MINOR_UNITS.get(currency, 2)


def validate_currency(value: str) -> None:
    """The form of a currency code: the models' check, which rows kept in a
    currency since withdrawn must still pass."""
    if len(value) != 3 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValidationError("Use a three-letter ISO 4217 code in capitals, e.g. EUR.")


def validate_currency_in_use(value: str) -> None:
    """A currency new money may come in: in circulation, and in cents or
    whole units (the ERP's files are checked with it; a typo such as EUO
    would otherwise open an account's money in a currency nobody pays in)."""
    validate_currency(value)
    if value not in CURRENCIES:
        raise ValidationError(f"{value} is not an ISO 4217 currency in circulation (EUR, USD, GBP, ...).")
    if decimal_places(value) > MONEY_DECIMAL_PLACES:
        raise ValidationError(f"{value} counts in thousandths; amounts here are kept to "
                              f"{MONEY_DECIMAL_PLACES} places after the point, so {value} cannot be used.")
