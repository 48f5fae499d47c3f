"""The worklist while a collector is away: their stand-in sees and works
their open items, and work that comes up for them goes to the stand-in."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import worklist
from ar_collections.models import (
    Dispute,
    DisputeReason,
    Invoice,
    InvoiceStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import CollectorAbsence, EventKind, Segment, TimelineEvent

from .conftest import DUE, frozen

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
WORKLIST = reverse("collections:worklist")
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def away(collector, other_collector) -> CollectorAbsence:
    """Carla away 4-8 Aug 2025, Otto covering."""
    return CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                           starts_on=TODAY - dt.timedelta(days=1),
                                           ends_on=TODAY + dt.timedelta(days=3))


def make_item(customer, *, assignee, title: str) -> WorkItem:
    return WorkItem.objects.create(key=f"test:{title}", kind=WorkKind.CALL, customer=customer,
                                   assignee=assignee, title=title, due_on=TODAY)


def test_the_stand_in_sees_the_absent_collectors_open_items_marked_as_cover(
    client, collector, other_collector, make_customer, away
):
    carlas = make_item(make_customer(name="Acme"), assignee=collector, title="Call Acme")
    ottos = make_item(make_customer(name="Bolt", collector=other_collector), assignee=other_collector,
                      title="Call Bolt")
    client.force_login(other_collector)

    page = " ".join(client.get(WORKLIST).content.decode().split())

    assert f'id="work-{carlas.pk}"' in page and f'id="work-{ottos.pk}"' in page
    assert page.count("Covering for carla, away today.") == 1
    carla_part = page.split(f'id="work-{carlas.pk}"')[1].split("</li>")[0]
    assert "Covering for carla, away today." in carla_part


def test_once_the_absence_is_over_the_stand_in_no_longer_sees_them(
    client, collector, other_collector, make_customer, away
):
    carlas = make_item(make_customer(name="Acme"), assignee=collector, title="Call Acme")
    client.force_login(other_collector)
    with frozen(TODAY + dt.timedelta(days=4)):
        page = client.get(WORKLIST).content.decode()
    assert f'id="work-{carlas.pk}"' not in page
    client.force_login(collector)
    with frozen(TODAY + dt.timedelta(days=4)):
        assert f'id="work-{carlas.pk}"' in client.get(WORKLIST).content.decode()


@pytest.mark.parametrize("htmx", [False, True])
def test_the_stand_in_ticks_off_the_absent_collectors_item(
    client, collector, other_collector, make_customer, away, htmx
):
    item = make_item(make_customer(name="Acme"), assignee=collector, title="Call Acme")
    client.force_login(other_collector)

    response = client.post(reverse("collections:work_item_change", args=[item.pk, "done"]),
                           headers=HTMX if htmx else {})

    assert response.status_code == (200 if htmx else 302)
    if not htmx:
        # Back to the stand-in's own list, not to the absent collector's.
        assert "collector=" not in response.url
    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, other_collector)


def test_someone_not_covering_may_not_touch_the_absent_collectors_item(
    client, collector, other_collector, make_customer, away, django_user_model
):
    from django.contrib.auth.models import Group

    third = django_user_model.objects.create_user(username="cora", password="pw")
    third.groups.add(Group.objects.get(name="Collector"))
    item = make_item(make_customer(name="Acme"), assignee=collector, title="Call Acme")
    client.force_login(third)
    response = client.post(reverse("collections:work_item_change", args=[item.pk, "done"]))
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN


def test_an_item_that_comes_up_while_the_collector_is_away_goes_to_the_stand_in_and_stays_there(
    collector, other_collector, make_customer, away
):
    account = make_customer(name="Acme")

    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=account, title="Call Acme about INV-1",
                      due_on=TODAY)

    item = WorkItem.objects.get(key="call:test")
    assert item.assignee == other_collector
    assert item.title == "Call Acme about INV-1 (covering for carla)"
    # Back at work, Carla's list holds her own items; the stand-in keeps what
    # came to them until the daily refresh hands it back (below).
    with frozen(TODAY + dt.timedelta(days=4)):
        assert list(worklist.items_for(assignee=other_collector, on=TODAY + dt.timedelta(days=4))) == [item]
        assert list(worklist.items_for(assignee=collector, on=TODAY + dt.timedelta(days=4))) == []


def test_an_item_done_that_comes_back_while_the_collector_is_away_goes_to_the_stand_in(
    collector, other_collector, make_customer
):
    """Done before Carla went away, the item came back on her list, not on
    Otto's as an item coming up for her while she is away does."""
    account = make_customer(name="Acme")
    title = "The mail server refused Anna's address: find one that works"
    key = "address-refused:test"
    worklist.item_add(kind=WorkKind.ADDRESS_REFUSED, key=key, customer=account, title=title,
                      due_on=TODAY - dt.timedelta(days=2))
    item = WorkItem.objects.get(key=key)
    worklist.item_complete(item=item, actor=collector)
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=3))

    worklist.item_add(kind=WorkKind.ADDRESS_REFUSED, key=key, customer=account, title=title, due_on=TODAY,
                      again=True)

    item.refresh_from_db()
    assert (item.status, item.assignee, item.title) == (
        WorkStatus.OPEN, other_collector, f"{title} (covering for carla)")
    assert list(worklist.items_for(assignee=other_collector, on=TODAY)) == [item]


def test_an_item_for_a_collector_at_work_is_theirs(collector, other_collector, make_customer):
    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=make_customer(), title="Call",
                      due_on=TODAY)
    item = WorkItem.objects.get(key="call:test")
    assert (item.assignee, item.title) == (collector, "Call")


def test_the_daily_refresh_gives_the_stand_in_the_items_of_the_absent_collectors_accounts(
    collector, other_collector, make_customer, away
):
    account = make_customer(name="Acme")
    invoice = Invoice.objects.create(number="INV-9", customer=account, currency=account.currency,
                                     issue_date=TODAY - dt.timedelta(days=60),
                                     due_date=TODAY - dt.timedelta(days=30),
                                     total_amount=Decimal("100.00"), open_amount=Decimal("100.00"),
                                     status=InvoiceStatus.OPEN)
    Dispute.objects.create(customer=account, invoice=invoice, reason=DisputeReason.QUALITY,
                           description="Broken", opened_by=collector, disputed_amount=Decimal("100.00"),
                           opened_on=TODAY - dt.timedelta(days=10),
                           answer_due_on=TODAY - dt.timedelta(days=1))

    worklist.worklist_refresh(on=TODAY)

    item = WorkItem.objects.get(kind=WorkKind.DISPUTE_WAITING)
    assert item.assignee == other_collector
    assert item.title.endswith("(covering for carla)")


def test_the_stand_ins_worklist_costs_the_same_queries_with_the_absent_collectors_items(
    client, collector, other_collector, manager, make_customer, away, django_assert_num_queries
):
    for n in range(20):
        customer = make_customer(name=f"Customer {n}", segment=Segment.SYSTEMATIC_LATE,
                                 collector=collector if n % 2 else other_collector)
        make_item(customer, assignee=customer.collector, title=f"Call {n}")
    client.force_login(other_collector)

    # As the worklist's own test counts, and the absences in force (whom this
    # user covers for) once; the covered items' assignees come with the page;
    # the hand-over menus read who is away and the people at work once each.
    with django_assert_num_queries(9):
        response = client.get(WORKLIST)

    assert response.content.decode().count('class="work-item kind-') == 20


def test_a_call_task_while_the_collector_is_away_is_the_stand_ins_and_the_timeline_says_so(
    collector, other_collector, make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.DISTRESSED, phone="+49 30 555 01")
    day = DUE + dt.timedelta(days=1)
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=day, ends_on=day + dt.timedelta(days=5))

    assert plan_and_deliver(day)["call_tasks"] == 1

    [summary] = TimelineEvent.objects.filter(customer=account, kind=EventKind.DUNNING).values_list(
        "summary", flat=True)
    assert summary.startswith("Call task for otto (covering for carla): call Anna Clerk about EUR 1,200.00")
    item = WorkItem.objects.get(kind=WorkKind.CALL, customer=account)
    assert item.assignee == other_collector
    assert item.title.endswith("(covering for carla)")


def test_once_the_absence_is_over_the_daily_refresh_hands_the_stand_ins_items_back(
    collector, other_collector, manager, make_customer, away
):
    """Otto may no longer work Acme once Carla is back: an item left on his
    list would be one nobody can act on."""
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=account, title="Call Acme about INV-1",
                      due_on=TODAY)
    ottos_own = make_item(make_customer(name="Bolt", collector=other_collector), assignee=other_collector,
                          title="Call Bolt")
    # A manager's item on Carla's account is the manager's: a manager works any account.
    managers = make_item(account, assignee=manager, title="Look at Acme")
    back = TODAY + dt.timedelta(days=4)

    with frozen(back):
        worklist.worklist_refresh(on=back)

    item = WorkItem.objects.get(key="call:test")
    assert item.assignee == collector
    assert WorkItem.objects.get(pk=ottos_own.pk).assignee == other_collector
    assert WorkItem.objects.get(pk=managers.pk).assignee == manager
    event = TimelineEvent.objects.get(customer=account, summary__startswith="Worklist: handed back")
    assert event.summary == ("Worklist: handed back from otto to carla, who works the account today — "
                             "Call Acme about INV-1 (covering for carla)")


def test_ending_an_absence_hands_the_stand_ins_items_back_at_once(
    collector, other_collector, make_customer, away, django_capture_on_commit_callbacks
):
    from customers import services

    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=make_customer(name="Acme"),
                      title="Call Acme", due_on=TODAY)
    assert WorkItem.objects.get(key="call:test").assignee == other_collector

    with django_capture_on_commit_callbacks(execute=True):
        services.absence_end(absence=away, actor=collector, on=TODAY)

    assert WorkItem.objects.get(key="call:test").assignee == collector


def test_the_customer_is_told_to_ask_the_stand_in_while_the_collector_is_away(
    collector, other_collector, manager, make_customer, away
):
    from ar_collections.statements import statement_build
    from customers.cover import working_for

    account = make_customer(name="Acme")

    assert working_for(account, on=TODAY) == other_collector
    assert statement_build(account, contact=None, sender=manager, on=TODAY).contact_name == "otto"
    # Back at work, the account's collector again.
    back = TODAY + dt.timedelta(days=4)
    assert working_for(account, on=back) == collector
    assert statement_build(account, contact=None, sender=manager, on=back).contact_name == "carla"
