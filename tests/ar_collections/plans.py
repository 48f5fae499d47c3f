"""Days of a payment plan's life, for the plan tests: days counted from LATE,
and the mornings in between with the payments received on them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ar_collections import workspace
from tests.ar_collections.conftest import DUE

LATE = DUE + dt.timedelta(days=20)  # both invoices of make_account are 20 days overdue


def day(n: int) -> dt.date:
    return LATE + dt.timedelta(days=n)


def schedule(*parts: tuple[int, str]) -> list[tuple[dt.date, Decimal]]:
    return [(day(d), Decimal(a)) for d, a in parts]


def mornings(account, first: int, last: int, payments=None) -> None:
    """The daily check every morning from day `first` to day `last`, with the
    payments of `payments` ({day: [(invoice, amount), ...]}) received on their
    day, one payment each, entered before the check."""
    for n in range(first, last + 1):
        for invoice, amount in (payments or {}).get(n, []):
            workspace.payment_record(customer=account, amount=Decimal(amount), currency="EUR",
                                     received_on=day(n), allocations=[(invoice, Decimal(amount))])
        workspace.commitments_check(on=day(n))


def instalments_of(plan) -> list[tuple[int, dt.date, Decimal, str]]:
    return list(plan.instalments.order_by("number").values_list("number", "due_on", "amount", "status"))
