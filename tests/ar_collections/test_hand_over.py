"""A collector hands an item, or an account's open items, to a fellow
collector with a reason: the holder works the account for what the item
asks until it is done, the morning's refresh leaves it with them, and the
account's collector sees where it went."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.urls import reverse

from ar_collections import worklist
from ar_collections.models import WorkItem, WorkKind, WorkStatus
from customers.models import EventKind, TimelineEvent

from .conftest import frozen

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
WHY = "Carla is on calls all day at the trade fair"
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def item(customer, collector) -> WorkItem:
    return WorkItem.objects.create(key="call:hand-over", kind=WorkKind.CALL, customer=customer,
                                   assignee=collector, title="Call Acme about INV-1001", due_on=TODAY)


def change_url(item: WorkItem, change: str) -> str:
    return reverse("collections:work_item_change", args=[item.pk, change])


def state(item: WorkItem) -> tuple:
    item.refresh_from_db()
    return (item.status, item.assignee_id, item.handed_by_id, item.handed_reason,
            TimelineEvent.objects.count())


def text_of(response) -> str:
    return html.unescape(" ".join(response.content.decode().split()))


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_collector_hands_an_item_to_a_fellow_collector_who_sees_why_and_the_timeline_says_who_to_whom_when(
    client, collector, other_collector, item, headers
):
    client.force_login(collector)

    response = client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY},
                           headers=headers)

    assert response.status_code == (200 if headers else 302)
    item.refresh_from_db()
    assert (item.assignee, item.handed_by, item.handed_reason, item.covering_for) == (
        other_collector, collector, WHY, None)
    event = TimelineEvent.objects.get(customer=item.customer, kind=EventKind.WORK)
    assert (event.actor, event.summary) == (
        collector, f"Worklist: handed from carla to otto — Call Acme about INV-1001. Why: {WHY}")
    assert event.details["reason"] == WHY and event.details["to"] == other_collector.pk
    client.force_login(other_collector)
    page = text_of(client.get(reverse("collections:worklist")))
    assert f'id="work-{item.pk}"' in page
    assert f"Handed over by carla on 5 Aug (the account is carla’s): {WHY}" in page


@pytest.fixture
def bad_hand_overs(other_collector, viewer, django_user_model):
    gone = django_user_model.objects.create_user("leo")
    gone.groups.add(*other_collector.groups.all())
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    not_a_choice = "Select a valid choice. That choice is not one of the available choices."
    return {
        "no reason": ({"to": other_collector.pk},
                      "Say why you hand it over: whoever takes it sees the reason."),
        "a reason of blanks": ({"to": other_collector.pk, "reason": " \u200b "},
                               "This holds only characters no one sees"),
        "a deactivated collector": ({"to": gone.pk, "reason": WHY}, not_a_choice),
        "a viewer": ({"to": viewer.pk, "reason": WHY}, not_a_choice),
        "no one": ({"to": "", "reason": WHY}, "Choose whom to hand the item to."),
    }


@pytest.mark.parametrize("case", ["no reason", "a reason of blanks", "a deactivated collector", "a viewer",
                                  "no one"])
def test_a_bad_hand_over_says_why_and_changes_nothing(client, collector, item, bad_hand_overs, case):
    data, said = bad_hand_overs[case]
    client.force_login(collector)
    before = state(item)

    htmx = client.post(change_url(item, "reassign"), data, headers=HTMX)
    plain = client.post(change_url(item, "reassign"), data)

    assert htmx.status_code == 422 and said in text_of(htmx)
    assert plain.status_code == 302 and said in text_of(client.get(plain.url))
    assert state(item) == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_second_click_on_hand_over_says_it_went_already_and_changes_nothing(
    client, collector, other_collector, item, headers
):
    client.force_login(collector)
    client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY})
    after_first = state(item)

    again = client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY},
                        headers=headers)

    assert again.status_code == 403
    assert "You handed this item to otto: it is on their list now. Nothing was changed." in text_of(again)
    assert state(item) == after_first


def test_a_manager_handing_an_item_to_whoever_holds_it_already_is_told_so(
    client, manager, other_collector, item
):
    client.force_login(manager)
    client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY})
    after_first = state(item)

    again = client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY},
                        headers=HTMX)

    assert again.status_code == 422
    assert "Call Acme about INV-1001 is with otto already: nothing was changed." in text_of(again)
    assert state(item) == after_first


def test_a_collector_cannot_hand_over_someone_elses_item(client, other_collector, manager, item):
    client.force_login(other_collector)
    before = state(item)

    response = client.post(change_url(item, "reassign"), {"to": manager.pk, "reason": WHY}, headers=HTMX)

    assert response.status_code == 403
    assert "This item is on someone else's list." in text_of(response)
    assert state(item) == before


def test_an_item_cannot_go_to_a_fellow_collector_away_today(
    client, collector, other_collector, manager, item
):
    from customers.models import CollectorAbsence

    CollectorAbsence.objects.create(user=other_collector, stand_in=manager, recorded_by=other_collector,
                                    starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=2))
    client.force_login(collector)
    before = state(item)

    response = client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY},
                           headers=HTMX)

    assert response.status_code == 422
    assert "otto is away today (maria covers): hand it to someone at work." in text_of(response)
    assert state(item) == before


def test_the_holder_works_the_account_for_the_item_and_no_further(
    client, collector, other_collector, customer, make_contact, item
):
    """Otto, holding Carla's item: he opens the account, adds a note, logs the
    call and ticks the item off; the account's card and disputes stay Carla's.
    Done, the account is no longer his to change."""
    make_contact(customer)
    worklist.item_reassign(item=item, actor=collector, to=other_collector, reason=WHY)
    client.force_login(other_collector)
    account = reverse("customers:detail", args=[customer.pk])
    note = reverse("collections:note_add", args=[customer.pk])

    page = text_of(client.get(account))
    assert "You hold an item of this account handed to you" in page
    assert reverse("collections:call_log", args=[customer.pk]) in page
    assert reverse("collections:dispute_open", args=[customer.pk]) not in page
    assert client.post(note, {"text": "Left a message with AP"}).status_code == 302
    assert client.get(reverse("collections:call_log", args=[customer.pk])).status_code == 200
    assert client.get(reverse("collections:promise_record", args=[customer.pk])).status_code == 200
    assert client.get(reverse("customers:edit", args=[customer.pk])).status_code == 403
    assert client.get(reverse("collections:dispute_open", args=[customer.pk])).status_code == 403
    assert client.post(change_url(item, "snooze"), {"until": "2025-08-07"}).status_code == 302
    assert client.post(change_url(item, "done")).status_code == 302
    item.refresh_from_db()
    assert (item.status, item.done_by, item.handed_by) == (WorkStatus.DONE, other_collector, None)
    assert client.post(note, {"text": "One more"}).status_code == 403
    assert TimelineEvent.objects.filter(customer=customer, kind=EventKind.NOTE).count() == 1


def test_the_mornings_refresh_leaves_a_handed_over_item_with_its_holder_but_takes_back_a_left_over_one(
    collector, other_collector, customer, item
):
    """Both items are on Otto's list and neither is for an absence: the one
    Carla handed him on purpose stays; one he was merely left holding goes
    back to Carla, who works the account."""
    worklist.item_reassign(item=item, actor=collector, to=other_collector, reason=WHY)
    left_over = WorkItem.objects.create(key="call:left-over", kind=WorkKind.CALL, customer=customer,
                                        assignee=other_collector, title="Left over", due_on=TODAY)
    tomorrow = TODAY + dt.timedelta(days=1)

    with frozen(tomorrow):
        worklist.worklist_refresh(on=tomorrow)

    item.refresh_from_db()
    left_over.refresh_from_db()
    assert (item.assignee, item.handed_by) == (other_collector, collector)
    assert left_over.assignee == collector


def test_a_handed_over_item_goes_back_once_its_holder_is_deactivated(collector, other_collector, item):
    worklist.item_reassign(item=item, actor=collector, to=other_collector, reason=WHY)
    other_collector.is_active = False
    other_collector.save(update_fields=["is_active"])

    worklist.worklist_refresh(on=TODAY)

    item.refresh_from_db()
    assert item.assignee == collector


def test_the_accounts_collector_sees_on_the_account_page_where_the_item_went_and_why(
    client, collector, other_collector, customer, item
):
    worklist.item_reassign(item=item, actor=collector, to=other_collector, reason=WHY)
    client.force_login(collector)

    page = text_of(client.get(reverse("customers:detail", args=[customer.pk])))

    assert f"Call Acme about INV-1001 — with otto, handed over by carla on 5 Aug: {WHY}" in page


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_collector_hands_all_open_items_of_an_account_to_a_fellow_collector(
    client, collector, other_collector, customer, item, headers
):
    second = WorkItem.objects.create(key="review:hand-over", kind=WorkKind.REVIEW, customer=customer,
                                     assignee=collector, title="Review the letter", due_on=TODAY)
    client.force_login(collector)
    url = reverse("collections:account_items_hand_over", args=[customer.pk])

    response = client.post(url, {"to": other_collector.pk, "reason": WHY}, headers=headers)

    assert response.status_code == 200 if headers else 302
    handed = WorkItem.objects.filter(pk__in=[item.pk, second.pk]).values_list("assignee", "handed_reason")
    assert set(handed) == {(other_collector.pk, WHY)}
    page = text_of(client.get(reverse("customers:detail", args=[customer.pk])))
    assert "2 open items of" in page and "handed to otto." in page


def test_handing_all_of_an_accounts_items_without_a_reason_changes_nothing(
    client, collector, other_collector, customer, item
):
    client.force_login(collector)
    before = state(item)

    response = client.post(reverse("collections:account_items_hand_over", args=[customer.pk]),
                           {"to": other_collector.pk, "reason": ""}, follow=True)

    assert "Say why you hand it over: whoever takes it sees the reason." in text_of(response)
    assert state(item) == before
