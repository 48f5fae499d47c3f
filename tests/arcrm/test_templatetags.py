"""The template filters that print figures."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template

from arcrm.templatetags.arcrm_tags import day, percent, signed_days


@pytest.mark.parametrize(("share", "shown"), [
    (Decimal("0.125"), "13 %"),  # half up, as money is rounded
    (Decimal("0.124"), "12 %"),
    (Decimal("0"), "0 %"),
    (None, "—"),
])
def test_a_share_is_a_whole_percentage_rounded_half_up(share, shown):
    assert percent(share) == shown


@pytest.mark.parametrize(("days", "shown"), [
    (Decimal("4.5"), "+4.5 days"),
    (Decimal("-2.25"), "−2.3 days"),
    (Decimal("-0.04"), "±0.0 days"),  # flat once rounded: no minus sign
    (Decimal("0.04"), "±0.0 days"),
    (None, "—"),
])
def test_a_trend_in_days_carries_the_sign_of_what_is_shown(days, shown):
    assert signed_days(days) == shown


def test_the_person_filter_names_a_user_by_full_name_or_else_by_username():
    template = Template(
        "{% load arcrm_tags %}{{ named|person }} / {{ unnamed|person }} / {{ nobody|person }}"
    )
    html = template.render(Context({
        "named": User(username="carla", first_name="Carla", last_name="Collins"),
        "unnamed": User(username="otto"),
        "nobody": None,
    }))
    assert html == "Carla Collins / otto / —"


@pytest.mark.parametrize(("value", "shown"), [
    (dt.date(2025, 3, 3), "3 Mar"),
    (dt.date(2024, 12, 31), "31 Dec 2024"),
    (dt.date(2026, 1, 2), "2 Jan 2026"),
])
def test_a_day_keeps_its_year_when_it_is_not_this_year(value, shown):
    assert day(value, dt.date(2025, 8, 5)) == shown
