import datetime as dt

import pytest

from arcrm.dates import (
    add_months,
    format_day,
    format_day_long,
    months_between,
    next_working_day,
    working_day_from,
)

D = dt.date


@pytest.mark.parametrize(("start", "end", "months"), [
    (D(2025, 12, 30), D(2026, 6, 30), 6),  # 182 days: a count by 365ths said 5
    (D(2025, 12, 30), D(2026, 6, 29), 5),
    (D(2025, 1, 31), D(2025, 2, 28), 0),
    (D(2024, 2, 29), D(2025, 2, 28), 11),
    (D(2024, 2, 29), D(2025, 3, 1), 12),
    (D(2020, 5, 1), D(2026, 5, 1), 72),
    (D(2026, 5, 2), D(2026, 5, 1), 0),  # a customer since tomorrow
])
def test_whole_calendar_months_between_two_days(start, end, months):
    assert months_between(start, end) == months


@pytest.mark.parametrize(("day", "year", "said"), [
    (D(2026, 12, 2), True, "2 Dec 2026"),
    (D(2026, 12, 2), False, "2 Dec"),
    (D(2026, 3, 15), True, "15 Mar 2026"),
])
def test_a_day_is_written_as_the_pages_write_it_without_a_leading_zero(day, year, said):
    assert format_day(day, year=year) == said


def test_a_day_in_full_has_no_leading_zero():
    assert format_day_long(D(2026, 3, 5)) == "5 March 2026"
    assert format_day_long(D(2026, 12, 31)) == "31 December 2026"


@pytest.mark.parametrize(("day", "months", "later"), [
    (dt.date(2025, 8, 5), 12, dt.date(2026, 8, 5)),
    (dt.date(2025, 8, 31), 6, dt.date(2026, 2, 28)),
    (dt.date(2027, 8, 31), 6, dt.date(2028, 2, 29)),
    (dt.date(2025, 11, 30), 3, dt.date(2026, 2, 28)),
    (dt.date(2025, 1, 15), 0, dt.date(2025, 1, 15)),
    (dt.date(2025, 12, 1), 1, dt.date(2026, 1, 1)),
])
def test_months_later_is_the_same_day_or_the_month_s_last(day, months, later):
    assert add_months(day, months) == later


@pytest.mark.parametrize(("day", "next_one"), [
    (D(2026, 3, 5), D(2026, 3, 6)),  # Thursday: Friday
    (D(2026, 3, 6), D(2026, 3, 9)),  # Friday: Monday
    (D(2026, 3, 7), D(2026, 3, 9)),  # Saturday: Monday
    (D(2026, 3, 8), D(2026, 3, 9)),  # Sunday: Monday
    (D(2026, 12, 31), D(2027, 1, 1)),
])
def test_the_next_working_day_passes_over_the_weekend(day, next_one):
    assert next_working_day(day) == next_one


@pytest.mark.parametrize(("day", "next_one"), [
    (D(2026, 4, 2), D(2026, 4, 7)),  # Thursday before Good Friday and Easter Monday: Tuesday
    (D(2026, 4, 3), D(2026, 4, 7)),  # Good Friday itself
    (D(2026, 4, 1), D(2026, 4, 2)),  # the day before is no holiday
    (D(2026, 12, 23), D(2026, 12, 28)),  # 24 and 25 Dec shut, then the weekend
])
def test_the_next_working_day_passes_over_the_office_s_holidays(day, next_one):
    holidays = {D(2026, 4, 3), D(2026, 4, 6), D(2026, 12, 24), D(2026, 12, 25)}
    assert next_working_day(day, holidays=holidays) == next_one


@pytest.mark.parametrize(("day", "working"), [
    (D(2026, 3, 6), D(2026, 3, 6)),  # Friday: itself
    (D(2026, 3, 7), D(2026, 3, 9)),  # Saturday: Monday
    (D(2026, 3, 8), D(2026, 3, 9)),  # Sunday: Monday
    (D(2026, 4, 3), D(2026, 4, 7)),  # Good Friday, then the weekend and Easter Monday: Tuesday
])
def test_a_day_falls_on_itself_if_working_else_the_next_working_day(day, working):
    assert working_day_from(day, holidays={D(2026, 4, 3), D(2026, 4, 6)}) == working
