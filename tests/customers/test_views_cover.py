"""The cover page: who is away and who covers, a form to record an absence,
and ending one early; as a page and as htmx fragments."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.urls import reverse

from arcrm.roles import COLLECTOR
from customers.models import CollectorAbsence, TimelineEvent

TODAY = dt.date(2025, 12, 3)
HTMX = {"HX-Request": "true"}
COVER = reverse("collections:cover")
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 12, 3, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def absence_of(user, stand_in, *, starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=9)) -> CollectorAbsence:
    return CollectorAbsence.objects.create(user=user, stand_in=stand_in, starts_on=starts_on, ends_on=ends_on,
                                           recorded_by=user)


def form_data(stand_in, **fields) -> dict:
    return {"starts_on": "2025-12-04", "ends_on": "2025-12-12", "stand_in": stand_in.pk, "note": "holiday",
            **fields}


def test_the_page_lists_who_is_away_now_and_who_will_be(client, collector, other_collector, manager):
    away = absence_of(collector, other_collector, starts_on=TODAY - dt.timedelta(days=1))
    later = absence_of(other_collector, manager, starts_on=TODAY + dt.timedelta(days=20),
                       ends_on=TODAY + dt.timedelta(days=22))
    over = absence_of(manager, collector, starts_on=TODAY - dt.timedelta(days=9),
                      ends_on=TODAY - dt.timedelta(days=1))
    client.force_login(collector)

    response = client.get(COVER)

    page = response.content.decode()
    assert response.status_code == 200
    now, coming = page.split('id="cover-current"')[1].split('id="cover-coming"')
    assert f'id="absence-{away.pk}"' in now and "End early: back today" in now
    assert f'id="absence-{later.pk}"' in coming and "23 Dec" in coming
    # Over yesterday: gone from the page. Another's absence: no button to end it.
    assert f'id="absence-{over.pk}"' not in page
    assert "Call off" not in coming
    # A collector records their own absence only: no "who is away" to choose.
    assert 'name="user"' not in page


def test_a_collector_records_their_own_absence_without_htmx_and_is_sent_back_to_the_page(
    client, collector, other_collector, make_customer
):
    account = make_customer(collector=collector)
    client.force_login(collector)

    response = client.post(COVER, form_data(other_collector))

    assert response.status_code == 302 and response.url == COVER
    absence = CollectorAbsence.objects.get()
    assert (absence.user, absence.stand_in, absence.starts_on, absence.ends_on) == (
        collector, other_collector, dt.date(2025, 12, 4), dt.date(2025, 12, 12))
    assert (absence.note, absence.recorded_by) == ("holiday", collector)
    assert TimelineEvent.objects.filter(customer=account, subject_id=absence.pk, actor=collector).exists()


def test_with_htmx_the_recorded_absence_comes_back_in_the_cover_fragment(client, collector, other_collector):
    client.force_login(collector)

    response = client.post(COVER, form_data(other_collector), headers=HTMX)

    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="messages"')
    assert '<section id="cover"' in page and "<html" not in page
    assert "carla away 4 Dec 2025–12 Dec 2025: otto covers." in page
    assert CollectorAbsence.objects.filter(user=collector).count() == 1


def test_a_manager_records_a_collectors_absence(client, manager, collector, other_collector):
    client.force_login(manager)
    response = client.post(COVER, form_data(other_collector, user=collector.pk))
    assert response.status_code == 302
    assert CollectorAbsence.objects.get().user == collector
    assert CollectorAbsence.objects.get().recorded_by == manager


def test_a_collector_naming_someone_else_still_records_only_their_own(
    client, collector, other_collector, manager
):
    client.force_login(collector)
    client.post(COVER, form_data(manager, user=other_collector.pk))
    assert CollectorAbsence.objects.get().user == collector


@pytest.mark.parametrize("htmx", [False, True])
def test_an_overlapping_absence_is_refused_with_a_message_and_nothing_changes(
    client, collector, other_collector, manager, htmx
):
    absence_of(collector, other_collector)
    client.force_login(collector)

    response = client.post(COVER, form_data(manager), headers=HTMX if htmx else {})

    assert response.status_code == 422
    page = response.content.decode()
    assert ("carla is already away 3 Dec 2025–12 Dec 2025: end that absence early or choose other days."
            in page)
    assert ("<html" in page) is not htmx
    assert CollectorAbsence.objects.count() == 1


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize(("days", "field", "message"), [
    (("2025-11-20", "2025-12-02"), "ends_on", "This absence ended before today"),
    (("2026-12-04", "2026-12-10"), "starts_on", "An absence is recorded at most a year ahead"),
])
def test_an_absence_wholly_past_or_more_than_a_year_ahead_is_refused_and_nothing_changes(
    client, collector, other_collector, htmx, days, field, message
):
    client.force_login(collector)

    response = client.post(COVER, form_data(other_collector, starts_on=days[0], ends_on=days[1]),
                           headers=HTMX if htmx else {})

    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert ("<html" in page) is not htmx
    assert not CollectorAbsence.objects.exists()


def test_an_absence_a_year_ahead_to_the_day_is_recorded(client, collector, other_collector):
    client.force_login(collector)

    response = client.post(COVER, form_data(other_collector, starts_on="2026-12-03", ends_on="2026-12-10"))

    assert response.status_code == 302
    assert CollectorAbsence.objects.get().starts_on == dt.date(2026, 12, 3)


def test_a_stand_in_away_too_shows_the_whole_chain_of_who_covers(client, collector, other_collector, manager):
    """carla away, otto covers; otto away as well, maria covers otto: the
    page says where carla's work ends up, on the days it does."""
    absence_of(collector, other_collector)
    absence_of(other_collector, manager, starts_on=TODAY + dt.timedelta(days=20),
               ends_on=TODAY + dt.timedelta(days=22))
    absence_of(other_collector, manager, starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=2))
    client.force_login(collector)

    page = client.get(COVER).content.decode()

    now = page.split('id="cover-current"')[1].split('id="cover-coming"')[0]
    assert "carla → otto → maria" in now
    assert "otto → maria" in now
    coming = page.split('id="cover-coming"')[1]
    assert "→" not in coming  # by then carla is back: otto's stand-in covers otto alone


def stand_ins_offered(page: str) -> set[int]:
    menu = page.split('name="stand_in"')[1].split("</select>")[0]
    return {int(value) for value in re.findall(r'<option value="(\d+)"', menu)}


def test_a_collector_is_not_offered_as_their_own_stand_in(client, collector, other_collector, manager):
    client.force_login(collector)

    page = client.get(COVER).content.decode()

    assert stand_ins_offered(page) == {other_collector.pk, manager.pk}


def test_a_form_sent_back_offers_neither_the_person_away_nor_anyone_away_on_those_days(
    client, manager, collector, other_collector
):
    """Otto is away on one of the days; Nina only after them."""
    nina = User.objects.create_user(username="nina")
    nina.groups.add(Group.objects.get(name=COLLECTOR))
    absence_of(other_collector, manager, starts_on=dt.date(2025, 12, 12), ends_on=dt.date(2025, 12, 20))
    absence_of(nina, manager, starts_on=dt.date(2025, 12, 13), ends_on=dt.date(2025, 12, 20))
    client.force_login(manager)

    response = client.post(COVER, form_data(manager, user=collector.pk, note="two\nlines"))

    assert response.status_code == 422
    assert stand_ins_offered(response.content.decode()) == {manager.pk, nina.pk}


def test_choosing_who_is_away_and_when_brings_the_stand_ins_free_then(
    client, manager, collector, other_collector
):
    absence_of(other_collector, manager, starts_on=dt.date(2025, 12, 5), ends_on=dt.date(2025, 12, 6))
    client.force_login(manager)

    response = client.get(COVER, {"user": collector.pk, "starts_on": "2025-12-04", "ends_on": "2025-12-12"},
                          headers=HTMX)

    page = response.content.decode()
    assert response.status_code == 200
    assert stand_ins_offered(page) == {manager.pk}
    assert "error" not in page.split('name="stand_in"')[1].split("</select>")[0]


def test_a_stand_in_not_offered_but_posted_by_hand_is_still_refused(client, collector):
    client.force_login(collector)

    response = client.post(COVER, form_data(collector))

    assert response.status_code == 422
    assert "Someone else must stand in: nobody covers for themselves." in response.content.decode()
    assert not CollectorAbsence.objects.exists()


def test_a_read_only_colleague_may_not_see_nor_record_cover(client, viewer, collector):
    client.force_login(viewer)
    assert client.get(COVER).status_code == 403
    assert client.post(COVER, form_data(collector)).status_code == 403
    assert not CollectorAbsence.objects.exists()


def test_the_page_asks_for_a_login(client):
    assert client.get(COVER).status_code == 302


def test_ending_wants_a_post(client, collector, other_collector):
    absence = absence_of(collector, other_collector)
    client.force_login(collector)
    assert client.get(reverse("collections:cover_end", args=[absence.pk])).status_code == 405
    absence.refresh_from_db()
    assert absence.ended_by is None


@pytest.mark.parametrize("htmx", [False, True])
def test_a_collector_ends_their_own_absence_early(client, collector, other_collector, htmx):
    absence = absence_of(collector, other_collector, starts_on=TODAY - dt.timedelta(days=2))
    client.force_login(collector)

    response = client.post(reverse("collections:cover_end", args=[absence.pk]), headers=HTMX if htmx else {})

    absence.refresh_from_db()
    assert (absence.ends_on, absence.ended_by) == (TODAY - dt.timedelta(days=1), collector)
    if htmx:
        assert response.status_code == 200
        page = response.content.decode()
        assert "carla is back: their list and accounts are theirs again." in page
        assert "Nobody is away today." in page and "<html" not in page
    else:
        assert response.status_code == 302 and response.url == COVER


def test_a_collector_may_not_end_a_colleagues_absence(client, collector, other_collector):
    absence = absence_of(other_collector, collector)
    client.force_login(collector)
    response = client.post(reverse("collections:cover_end", args=[absence.pk]))
    assert response.status_code == 403
    absence.refresh_from_db()
    assert (absence.ends_on, absence.ended_by) == (TODAY + dt.timedelta(days=9), None)


def test_a_manager_calls_off_an_absence_not_begun(client, manager, collector, other_collector):
    absence = absence_of(collector, other_collector, starts_on=TODAY + dt.timedelta(days=5),
                         ends_on=TODAY + dt.timedelta(days=6))
    client.force_login(manager)
    response = client.post(reverse("collections:cover_end", args=[absence.pk]), headers=HTMX)
    assert response.status_code == 200
    absence.refresh_from_db()
    assert absence.cancelled and absence.ended_by == manager
    assert "No absence is coming." in response.content.decode()


def test_ending_an_absence_already_over_says_so(client, collector, other_collector):
    absence = absence_of(collector, other_collector, starts_on=TODAY - dt.timedelta(days=5),
                         ends_on=TODAY - dt.timedelta(days=1))
    client.force_login(collector)
    response = client.post(reverse("collections:cover_end", args=[absence.pk]), headers=HTMX)
    assert response.status_code == 422
    assert "This absence is already over." in response.content.decode()


def test_the_collections_menu_leads_to_cover(client, collector):
    client.force_login(collector)
    page = client.get(reverse("collections:worklist")).content.decode()
    assert f'href="{COVER}"' in page
