"""Date maths in the calendar's own terms. No Django."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Collection

# A date further ahead than this is a mistyped year, not a plan: the forms and
# the imports refuse it with a message (near 9999 the grace and instalment
# arithmetic would overflow).
DATE_AHEAD_YEARS = 10
# A day further back than this (a payment received, an invoice issued) is
# taken only once confirmed: a mistyped year (2024 for 2025) would settle
# invoices on the wrong day and change a closed month's figures. The payment
# form asks for a tick, the imports for a confirm_old_date column.
LONG_AGO_DAYS = 90
# An invoice still open months after it was issued is the receivables' own
# business (the Over 90 column), and an ERP's first load brings many: an issue
# day is asked to be confirmed only further back than this, which a year typed
# one too low still is.
INVOICE_LONG_AGO_DAYS = 180


def long_ago(value: dt.date, *, today: dt.date, days: int = LONG_AGO_DAYS) -> bool:
    """Whether `value` is more than `days` (LONG_AGO_DAYS) before `today`."""
    return value < today - dt.timedelta(days=days)


def format_day(day: dt.date, *, year: bool = True) -> str:
    """A day as the pages write it: "2 Dec 2026" ("2 Dec" without the year),
    never "02 Dec"."""
    return f"{day.day} {day:%b %Y}" if year else f"{day.day} {day:%b}"


def format_day_long(day: dt.date) -> str:
    """A day as letters and e-mails to customers write it: "5 March 2026",
    never "05 March 2026"."""
    return f"{day.day} {day:%B %Y}"


def next_working_day(day: dt.date, *, holidays: Collection[dt.date] = ()) -> dt.date:
    """The first day after `day` from Monday to Friday that is not one of
    `holidays` (the days the office is shut, read by the caller)."""
    day += dt.timedelta(days=1)
    while day.weekday() >= 5 or day in holidays:
        day += dt.timedelta(days=1)
    return day


def working_day_from(day: dt.date, *, holidays: Collection[dt.date] = ()) -> dt.date:
    """`day` itself if it is a working day (Monday to Friday, not one of
    `holidays`), else the first one after it."""
    return next_working_day(day - dt.timedelta(days=1), holidays=holidays)


def far_ahead(value: dt.date, *, today: dt.date) -> bool:
    """Whether `value` is more than DATE_AHEAD_YEARS after `today`."""
    return value > today.replace(year=today.year + DATE_AHEAD_YEARS, day=min(today.day, 28))


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` calendar months later, or the month's last day
    where it has no such day: 31 Aug + 6 months is 28 (or 29) Feb."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def months_between(start: dt.date, end: dt.date) -> int:
    """Whole calendar months from `start` to `end` (0 if `end` is earlier):
    30 Dec to 30 Jun is six, to 29 Jun five; 31 Jan to 28 Feb counts as none."""
    months = (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day)
    return max(months, 0)
