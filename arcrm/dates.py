"""Date maths in the calendar's own terms. No Django."""

from __future__ import annotations

import datetime as dt


def months_between(start: dt.date, end: dt.date) -> int:
    """Whole calendar months from `start` to `end` (0 if `end` is earlier):
    30 Dec to 30 Jun is six, to 29 Jun five; 31 Jan to 28 Feb counts as none."""
    months = (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day)
    return max(months, 0)
