"""A collector away and who covers for them: recording and ending absences,
who may act on the absent collector's accounts, and the chain of stand-ins."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import RequestFactory

from arcrm.roles import COLLECTOR, can_act_on
from customers import cover, services
from customers.access import customer_changeable
from customers.models import CollectorAbsence, EventKind, TimelineEvent

TODAY = dt.date(2025, 12, 3)
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 12, 3, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def third_collector(db) -> User:
    user = User.objects.create_user(username="cora", password="pw-cora", first_name="Cora", last_name="Lind")
    user.groups.add(Group.objects.get(name=COLLECTOR))
    return user


def record(user, stand_in, *, actor=None, starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=9), note=""):
    return services.absence_record(user=user, stand_in=stand_in, starts_on=starts_on, ends_on=ends_on,
                                   actor=actor or user, note=note)


def fresh(user) -> User:
    """The user as the next request reads them (nothing remembered from this one)."""
    return User.objects.get(pk=user.pk)


def test_a_collector_records_their_own_absence_and_each_of_their_accounts_says_who_covers(
    collector, other_collector, make_customer
):
    mine = [make_customer(name="Acme"), make_customer(name="Bolt")]
    theirs = make_customer(name="Crane", collector=other_collector)

    absence = record(collector, other_collector, note="holiday")

    assert (absence.user, absence.stand_in, absence.recorded_by) == (collector, other_collector, collector)
    events = TimelineEvent.objects.filter(kind=EventKind.WORK, subject_id=absence.pk)
    assert sorted(e.customer_id for e in events) == sorted(c.pk for c in mine)
    assert not events.filter(customer=theirs).exists()
    event = events.first()
    assert event.actor == collector
    assert event.summary == "Cover: carla away 3 Dec 2025–12 Dec 2025: otto covers (holiday)"
    assert event.details["before"] == {}
    assert event.details["after"]["stand_in"] == other_collector.pk


def test_a_collector_may_not_record_a_colleagues_absence(collector, other_collector, third_collector):
    with pytest.raises(PermissionDenied):
        record(other_collector, third_collector, actor=collector)
    assert not CollectorAbsence.objects.exists()


def test_a_manager_records_anyones_absence(collector, other_collector, manager):
    absence = record(collector, other_collector, actor=manager)
    assert absence.recorded_by == manager


def test_a_read_only_colleague_may_not_record_an_absence(viewer, collector):
    with pytest.raises(PermissionDenied):
        record(viewer, collector)


@pytest.mark.parametrize("days", [(0, 3), (9, 20), (-5, 0), (2, 4)])
def test_an_absence_overlapping_another_of_the_same_person_is_refused_and_names_it(
    collector, other_collector, third_collector, days
):
    record(collector, other_collector)
    with pytest.raises(ValidationError) as refused:
        record(collector, third_collector, starts_on=TODAY + dt.timedelta(days=days[0]),
               ends_on=TODAY + dt.timedelta(days=days[1]))
    assert refused.value.messages == [
        "carla is already away 3 Dec 2025–12 Dec 2025: end that absence early or choose other days."]
    assert CollectorAbsence.objects.count() == 1


def test_back_to_back_absences_are_no_overlap(collector, other_collector, third_collector):
    record(collector, other_collector)
    record(collector, third_collector, starts_on=TODAY + dt.timedelta(days=10),
           ends_on=TODAY + dt.timedelta(days=12))
    assert CollectorAbsence.objects.count() == 2


def test_nobody_stands_in_for_themselves(collector):
    with pytest.raises(ValidationError) as refused:
        record(collector, collector)
    assert "nobody covers for themselves" in refused.value.messages[0]


def test_a_stand_in_who_cannot_work_accounts_is_refused(collector, other_collector, viewer):
    other_collector.is_active = False
    other_collector.save()
    for stand_in in (viewer, other_collector):
        with pytest.raises(ValidationError) as refused:
            record(collector, stand_in)
        assert "not an active collector or manager" in refused.value.messages[0]
    assert not CollectorAbsence.objects.exists()


def test_an_absence_ending_before_it_starts_or_longer_than_a_year_is_refused(collector, other_collector):
    with pytest.raises(ValidationError):
        record(collector, other_collector, ends_on=TODAY - dt.timedelta(days=1))
    with pytest.raises(ValidationError) as refused:
        record(collector, other_collector, ends_on=TODAY + dt.timedelta(days=400))
    assert "hands their accounts over" in refused.value.messages[0]
    assert not CollectorAbsence.objects.exists()


def test_a_stand_in_away_with_the_absent_person_covering_for_them_is_refused(
    collector, other_collector, third_collector
):
    """Otto away 5-7 Dec with Carla covering; Carla cannot then be away those
    days with Otto covering: each would hand the work to the other."""
    record(other_collector, collector, starts_on=TODAY + dt.timedelta(days=2),
           ends_on=TODAY + dt.timedelta(days=4))
    with pytest.raises(ValidationError) as refused:
        record(collector, other_collector)
    assert refused.value.messages == [
        "otto is away on 5 Dec 2025 with carla covering for them: choose someone who is at work then."]
    # Nor down a chain: Cora away with Otto covering, and Carla away with Cora covering.
    record(third_collector, other_collector, starts_on=TODAY + dt.timedelta(days=20),
           ends_on=TODAY + dt.timedelta(days=25))
    record(other_collector, collector, starts_on=TODAY + dt.timedelta(days=20),
           ends_on=TODAY + dt.timedelta(days=20))
    with pytest.raises(ValidationError):
        record(collector, third_collector, starts_on=TODAY + dt.timedelta(days=20),
               ends_on=TODAY + dt.timedelta(days=21))


def test_a_stand_in_away_too_hands_the_work_on_to_their_own_stand_in(
    collector, other_collector, third_collector
):
    record(collector, other_collector)
    record(other_collector, third_collector, starts_on=TODAY + dt.timedelta(days=2),
           ends_on=TODAY + dt.timedelta(days=3))

    assert cover.stand_ins(on=TODAY) == {collector.pk: other_collector.pk}
    assert cover.stand_ins(on=TODAY + dt.timedelta(days=2)) == {
        collector.pk: third_collector.pk, other_collector.pk: third_collector.pk}
    assert cover.covering_for(collector.pk, on=TODAY + dt.timedelta(days=10)) == collector.pk


def test_the_stand_in_for_someone_away_is_read_with_the_chain_followed_in_one_query(
    collector, other_collector, third_collector, django_assert_num_queries
):
    record(collector, other_collector)
    record(other_collector, third_collector, starts_on=TODAY + dt.timedelta(days=2),
           ends_on=TODAY + dt.timedelta(days=3))

    with django_assert_num_queries(1):
        assert cover.stand_in_for(collector.pk, on=TODAY + dt.timedelta(days=2)) == third_collector
    assert cover.stand_in_for(collector.pk, on=TODAY) == other_collector
    assert cover.stand_in_for(third_collector.pk, on=TODAY) is None
    assert cover.stand_in_for(collector.pk, on=TODAY + dt.timedelta(days=10)) is None


def test_a_collector_covering_may_change_the_absent_collectors_account_until_the_absence_ends(
    collector, other_collector, make_customer
):
    account = make_customer(collector=collector)
    assert not can_act_on(fresh(other_collector), account)

    absence = record(collector, other_collector, ends_on=TODAY + dt.timedelta(days=2))
    request = RequestFactory().post("/")
    request.user = fresh(other_collector)
    assert customer_changeable(request, account.pk, permission="customers.change_customer") == account

    with time_machine.travel(dt.datetime(2025, 12, 6, 9, 0, tzinfo=dt.UTC), tick=False):
        request.user = fresh(other_collector)
        with pytest.raises(PermissionDenied):
            customer_changeable(request, account.pk, permission="customers.change_customer")
    # The absent collector keeps their own accounts meanwhile, and nobody else gains any.
    assert can_act_on(fresh(collector), account)
    assert absence.ends_on == TODAY + dt.timedelta(days=2)


def test_a_collector_covering_someone_else_may_not_change_the_absent_collectors_account(
    collector, other_collector, third_collector, make_customer
):
    account = make_customer(collector=collector)
    record(collector, other_collector)
    assert not can_act_on(fresh(third_collector), account)


def test_an_absence_not_begun_yet_may_not_be_acted_on(collector, other_collector, make_customer):
    account = make_customer(collector=collector)
    record(collector, other_collector, starts_on=TODAY + dt.timedelta(days=1))
    assert not can_act_on(fresh(other_collector), account)


def test_ending_an_absence_early_gives_the_accounts_back_today_and_says_so(
    collector, other_collector, manager, make_customer
):
    account = make_customer(collector=collector)
    absence = record(collector, other_collector, starts_on=TODAY - dt.timedelta(days=2))

    ended = services.absence_end(absence=absence, actor=manager)

    assert (ended.ends_on, ended.cancelled, ended.ended_by) == (TODAY - dt.timedelta(days=1), False, manager)
    assert not can_act_on(fresh(other_collector), account)
    event = TimelineEvent.objects.filter(customer=account, subject_id=absence.pk).order_by("pk").last()
    assert event.actor == manager
    assert event.summary == ("Cover: carla back on 3 Dec 2025 (away until 12 Dec 2025 was recorded); "
                             "otto no longer covers")
    assert (event.details["before"]["ends_on"], event.details["after"]["ends_on"]) == (
        "2025-12-12", "2025-12-02")


def test_ending_an_absence_that_has_not_begun_calls_it_off(collector, other_collector, third_collector):
    absence = record(collector, other_collector, starts_on=TODAY + dt.timedelta(days=1))
    ended = services.absence_end(absence=absence, actor=collector)
    assert ended.cancelled
    # Called off, it no longer stands in the way of another absence on those days.
    record(collector, third_collector, starts_on=TODAY + dt.timedelta(days=1))


def test_ending_an_absence_on_its_first_day_keeps_it_on_record_to_the_end_of_the_day(
    collector, other_collector
):
    """Otto may have worked Carla's accounts that morning: a record saying
    she was never away would make what he did look unauthorised."""
    absence = record(collector, other_collector, starts_on=TODAY)

    ended = services.absence_end(absence=absence, actor=collector)

    assert (ended.cancelled, ended.starts_on, ended.ends_on) == (False, TODAY, TODAY)


def test_ending_an_absence_on_its_first_day_gives_the_accounts_back_at_once_and_only_once(
    collector, other_collector, make_customer
):
    account = make_customer(collector=collector)
    absence = record(collector, other_collector, starts_on=TODAY)
    assert can_act_on(fresh(other_collector), account)

    services.absence_end(absence=absence, actor=collector)

    assert not can_act_on(fresh(other_collector), account)
    assert cover.stand_ins(on=TODAY) == {}
    assert not CollectorAbsence.objects.not_over(on=TODAY).exists()
    event = TimelineEvent.objects.filter(customer=account, subject_id=absence.pk).order_by("pk").last()
    assert event.summary == ("Cover: carla back on 3 Dec 2025, the first day away (away until 12 Dec 2025 "
                             "was recorded); otto covered until now and no longer covers")
    with pytest.raises(ValidationError) as refused:
        services.absence_end(absence=absence, actor=collector)
    assert refused.value.messages == ["This absence is already over."]
    assert TimelineEvent.objects.filter(customer=account, subject_id=absence.pk).count() == 2


def test_an_absence_already_over_cannot_be_ended_again(collector, other_collector):
    absence = record(collector, other_collector, starts_on=TODAY - dt.timedelta(days=3))
    services.absence_end(absence=absence, actor=collector)
    with pytest.raises(ValidationError) as refused:
        services.absence_end(absence=absence, actor=collector)
    assert refused.value.messages == ["This absence is already over."]


def test_only_a_manager_or_the_absent_person_ends_an_absence(collector, other_collector):
    absence = record(collector, other_collector)
    with pytest.raises(PermissionDenied):
        services.absence_end(absence=absence, actor=other_collector)
    absence.refresh_from_db()
    assert absence.ended_by is None


def test_who_works_an_account_is_read_in_one_query_whether_its_collector_is_away_or_not(
    collector, other_collector, third_collector, make_customer, django_assert_num_queries
):
    """The chain followed as for the worklist (Carla away, Otto covers; Otto
    away as well, Cora covers both); the collector at work is the one already loaded."""
    record(collector, other_collector)
    record(other_collector, third_collector, starts_on=TODAY + dt.timedelta(days=2),
           ends_on=TODAY + dt.timedelta(days=3))
    account = make_customer(name="Acme")  # its collector loaded with it, as the pages load it

    with django_assert_num_queries(1):
        assert cover.working_for(account, on=TODAY + dt.timedelta(days=2)) == third_collector
    with django_assert_num_queries(1):
        assert cover.working_for(account, on=TODAY) == other_collector
    with django_assert_num_queries(1):
        assert cover.working_for(account, on=TODAY + dt.timedelta(days=10)) is account.collector
