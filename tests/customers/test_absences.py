"""A contact's absences and whom we write to meanwhile: the rules every way of
recording one runs (ContactAbsence.clean through services.absence_add), and
who stands in on a day for absences already saved."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError

from customers import services
from customers.models import TimelineEvent


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2030, 7, 1, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def anna(customer, make_contact):
    return make_contact(customer, name="Anna Clerk", is_primary_billing=True)


@pytest.fixture
def ben(customer, make_contact):
    return make_contact(customer, name="Ben Backup")


def add(contact, actor, first, last, delegate=None):
    return services.absence_add(contact=contact, actor=actor, starts_on=first, ends_on=last,
                                delegate=delegate)


def test_an_absence_overlapping_one_of_the_same_contact_is_refused_by_the_service(collector, anna):
    add(anna, collector, dt.date(2030, 8, 1), dt.date(2030, 8, 15))

    with pytest.raises(ValidationError, match="Anna Clerk is already away 1 Aug 2030–15 Aug 2030"):
        add(anna, collector, dt.date(2030, 7, 20), dt.date(2030, 8, 1))

    assert anna.absences.count() == 1
    assert TimelineEvent.objects.count() == 1


def test_a_stand_in_named_for_days_they_are_away_is_refused_by_the_service(collector, anna, ben):
    add(ben, collector, dt.date(2030, 8, 1), dt.date(2030, 8, 15), delegate=anna)

    with pytest.raises(ValidationError, match="Ben Backup is away 1 Aug 2030–15 Aug 2030 too"):
        add(anna, collector, dt.date(2030, 8, 15), dt.date(2030, 8, 20), delegate=ben)

    assert not anna.absences.exists()


@pytest.mark.parametrize(("last", "accepted"), [(dt.date(2031, 8, 1), True), (dt.date(2031, 8, 2), False)])
def test_an_absence_lasts_at_most_366_days(collector, anna, last, accepted):
    if accepted:
        assert add(anna, collector, dt.date(2030, 8, 1), last).ends_on == last
    else:
        with pytest.raises(ValidationError, match="at most 366 days; this one is 367"):
            add(anna, collector, dt.date(2030, 8, 1), last)
