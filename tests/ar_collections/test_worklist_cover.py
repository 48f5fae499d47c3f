"""The worklist while a collector is away: their stand-in sees and works
their open items, and work that comes up for them goes to the stand-in."""

from __future__ import annotations

import datetime as dt
import re
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
    assert (item.title, item.back_from) == ("Call Acme about INV-1", other_collector)
    event = TimelineEvent.objects.get(customer=account, summary__startswith="Worklist: back to")
    assert event.summary == ("Worklist: back to carla, back at work, from otto, who covered for them — "
                             "Call Acme about INV-1")


def back_note(client, user, item, *, on: dt.date) -> str | None:
    """What the worklist of `user` says beside `item` of who covered, or None when it is not listed."""
    client.force_login(user)
    with frozen(on):
        page = client.get(WORKLIST).content.decode()
    found = re.search(rf'<li[^>]* id="work-{item.pk}".*?</li>', page, re.S)
    if found is None:
        return None
    note = re.search(r'<p class="[^"]*work-back[^"]*">(.*?)</p>', found.group(0), re.S)
    return note.group(1) if note else ""


def test_an_item_back_from_cover_says_who_covered_beside_it_while_open_and_not_once_done(
    client, collector, other_collector, make_customer, away
):
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=account, title="Call Acme about INV-1",
                      due_on=TODAY)
    back = TODAY + dt.timedelta(days=4)
    with frozen(back):
        worklist.worklist_refresh(on=back)
    item = WorkItem.objects.get(key="call:test")

    assert back_note(client, collector, item, on=back) == "Back from otto, who covered."
    next_day = back + dt.timedelta(days=1)
    assert back_note(client, collector, item, on=next_day) == "Back from otto, who covered."

    with frozen(back):
        worklist.item_complete(item=item, actor=collector)
        worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=account, title="Call Acme again",
                          due_on=back, again=True)
    item.refresh_from_db()
    assert (item.status, item.title, item.back_from) == (WorkStatus.OPEN, "Call Acme again", None)
    assert back_note(client, collector, item, on=back) == ""


def test_an_item_back_from_cover_handed_to_a_colleague_no_longer_says_who_covered(
    client, collector, other_collector, manager, make_customer, away
):
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=account, title="Call Acme", due_on=TODAY)
    back = TODAY + dt.timedelta(days=4)
    with frozen(back):
        worklist.worklist_refresh(on=back)
        worklist.item_reassign(item=WorkItem.objects.get(key="call:test"), actor=collector, to=manager,
                               reason="Swapped work")
    item = WorkItem.objects.get(key="call:test")

    assert (item.assignee, item.back_from, item.title) == (manager, None, "Call Acme")
    assert back_note(client, manager, item, on=back) == ""


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


def test_what_went_to_a_stand_in_only_for_the_absence_comes_back_to_the_collector_once_back(
    client, collector, other_collector, manager, make_customer
):
    """Maria, a manager, covers for Carla: she may work any account, so nothing
    but the absence's end tells an item routed to her that it is Carla's. An
    item Carla handed to Maria on purpose stays Maria's; one Maria ticked off
    stays done; a second refresh changes nothing."""
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:handed", customer=account, title="Call Acme (handed)",
                      due_on=TODAY)
    handed = WorkItem.objects.get(key="call:handed")
    worklist.item_reassign(item=handed, actor=collector, to=manager, reason="Swapped work")
    CollectorAbsence.objects.create(user=collector, stand_in=manager, recorded_by=collector,
                                    starts_on=TODAY - dt.timedelta(days=1),
                                    ends_on=TODAY + dt.timedelta(days=3))
    for key in ("call:routed", "call:worked"):
        worklist.item_add(kind=WorkKind.CALL, key=key, customer=account, title=f"Call Acme ({key})",
                          due_on=TODAY)
    routed, worked = (WorkItem.objects.get(key=key) for key in ("call:routed", "call:worked"))
    assert routed.assignee == manager and routed.covering_for == collector
    handed.refresh_from_db()
    assert (handed.assignee, handed.covering_for) == (manager, None)
    worklist.item_complete(item=worked, actor=manager)
    back = TODAY + dt.timedelta(days=4)

    with frozen(back):
        worklist.worklist_refresh(on=back)
        worklist.worklist_refresh(on=back)

    routed.refresh_from_db()
    assert (routed.assignee, routed.covering_for) == (collector, None)
    assert (routed.title, routed.back_from) == ("Call Acme (call:routed)", manager)
    [event] = TimelineEvent.objects.filter(customer=account, summary__startswith="Worklist: back to")
    assert event.summary == ("Worklist: back to carla, back at work, from maria, who covered for them — "
                             "Call Acme (call:routed)")
    assert WorkItem.objects.get(pk=handed.pk).assignee == manager
    worked.refresh_from_db()
    assert (worked.status, worked.assignee, worked.done_by) == (WorkStatus.DONE, manager, manager)
    client.force_login(collector)
    with frozen(back):
        page = client.get(WORKLIST).content.decode()
    assert f'id="work-{routed.pk}"' in page and f'id="work-{handed.pk}"' not in page


def test_an_item_for_someone_away_other_than_the_collector_comes_back_to_them(
    collector, other_collector, manager, make_customer, django_user_model
):
    """A manager put the item on Maria's list; Maria was away and Otto covered:
    once Maria is back it is hers again, not the account collector's."""
    CollectorAbsence.objects.create(user=manager, stand_in=other_collector, recorded_by=manager,
                                    starts_on=TODAY, ends_on=TODAY)
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:maria", customer=account, title="Call Acme",
                      due_on=TODAY, assignee=manager)
    assert WorkItem.objects.get(key="call:maria").assignee == other_collector
    back = TODAY + dt.timedelta(days=1)

    with frozen(back):
        worklist.worklist_refresh(on=back)

    item = WorkItem.objects.get(key="call:maria")
    assert (item.assignee, item.covering_for, item.title, item.back_from) == (
        manager, None, "Call Acme", other_collector)


def test_an_item_handed_on_purpose_to_a_stand_in_stays_with_them_once_the_absence_is_over(
    collector, other_collector, manager, make_customer, away
):
    """Handed over on purpose, with a reason, it is not the absence's: Otto
    keeps it, and works Acme for it, until it is done (roles.may_work_for_item)."""
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=account, title="Call Acme",
                      due_on=TODAY, assignee=manager)
    item = WorkItem.objects.get(key="call:test")
    worklist.item_reassign(item=item, actor=manager, to=other_collector, reason="Swapped work")
    back = TODAY + dt.timedelta(days=4)

    with frozen(back):
        worklist.worklist_refresh(on=back)

    item.refresh_from_db()
    assert (item.assignee, item.title, item.handed_by) == (other_collector, "Call Acme", manager)
    assert not TimelineEvent.objects.filter(customer=account, summary__startswith="Worklist: handed back")


def test_an_item_held_for_a_collector_whose_account_went_to_another_stays_with_the_new_one(
    collector, other_collector, make_customer, away, django_user_model
):
    """Acme passed from Carla, away, to Dan: Otto may no longer work it, so
    the item goes to Dan, and it is no longer held for Carla, whose absence
    would otherwise take it back to Otto the next morning."""
    from django.contrib.auth.models import Group

    dan = django_user_model.objects.create_user(username="dan", password="pw")
    dan.groups.add(Group.objects.get(name="Collector"))
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:test", customer=account, title="Call Acme", due_on=TODAY)
    account.collector = dan
    account.save(update_fields=["collector"])

    worklist.worklist_refresh(on=TODAY)
    worklist.worklist_refresh(on=TODAY)

    item = WorkItem.objects.get(key="call:test")
    assert (item.assignee, item.covering_for) == (dan, None)
    assert TimelineEvent.objects.filter(customer=account, kind=EventKind.WORK).count() == 1


def test_an_item_held_for_an_absent_collector_goes_with_the_account_to_its_new_collector_at_once(
    collector, other_collector, manager, make_customer, away, django_user_model
):
    """Acme passes from Carla, away (Otto covers), to Dan: the item Otto
    holds for her goes to Dan with the account's other items, not the next
    morning; Otto, who no longer works Acme, would find it on his list and
    be refused on the account meanwhile."""
    from django.contrib.auth.models import Group

    from customers.services import customer_update

    dan = django_user_model.objects.create_user(username="dan", password="pw")
    dan.groups.add(Group.objects.get(name="Collector"))
    account = make_customer(name="Acme")
    worklist.item_add(kind=WorkKind.CALL, key="call:held", customer=account, title="Call Acme", due_on=TODAY)
    held = WorkItem.objects.get(key="call:held")
    assert (held.assignee, held.covering_for) == (other_collector, collector)

    customer_update(customer=account, actor=manager, changes={"collector": dan})

    held.refresh_from_db()
    assert (held.assignee, held.covering_for, held.title) == (dan, None, "Call Acme")
    assert held in worklist.items_for(assignee=dan, on=TODAY)
    assert held not in worklist.items_for(assignee=other_collector, on=TODAY)


def test_a_cover_recorded_for_a_stand_in_hands_what_they_hold_for_someone_away_on_at_once(
    collector, other_collector, manager, make_customer, away, django_capture_on_commit_callbacks
):
    """Otto holds Carla's new item while she is away; Otto falls ill today and
    Maria covers for him. The item goes to Maria at once, held for Carla and
    saying so, not with the next morning's refresh."""
    from customers import services

    worklist.item_add(kind=WorkKind.CALL, key="call:held", customer=make_customer(name="Acme"),
                      title="Call Acme", due_on=TODAY)
    held = WorkItem.objects.get(key="call:held")
    assert (held.assignee, held.covering_for) == (other_collector, collector)

    with django_capture_on_commit_callbacks(execute=True):
        services.absence_record(user=other_collector, stand_in=manager, starts_on=TODAY,
                                ends_on=TODAY + dt.timedelta(days=1), actor=manager)

    held.refresh_from_db()
    assert (held.assignee, held.covering_for) == (manager, collector)
    assert held.title == "Call Acme (covering for carla)"
    assert TimelineEvent.objects.filter(
        customer=held.customer,
        summary__startswith="Worklist: handed from otto to maria, who covers for carla today").exists()
