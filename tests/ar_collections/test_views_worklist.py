"""The worklist page: the signed-in collector's open items, most urgent first
with the priority explained, and done / snooze / hand over in place."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from urllib.parse import urljoin

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    CollectionRules,
    DisputeOutcome,
    DisputeReason,
    Invoice,
    InvoiceStatus,
    MoneyPointScale,
    PaymentBehaviour,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from arcrm.text import person_name
from customers.models import EventKind, Segment, TimelineEvent

from .conftest import frozen

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
WHY = "On calls all day at the trade fair"
WORKLIST = reverse("collections:worklist")
ITEM_ID = re.compile(r'<li class="work-item kind-\w+" id="work-(\d+)"')
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def make_item(make_customer):
    def make(*, assignee, title: str = "Call about the overdue invoices", kind=WorkKind.CALL,
             due_on: dt.date = TODAY, customer=None, **fields) -> WorkItem:
        customer = customer or make_customer(**({"collector": assignee} if assignee else {}))
        return WorkItem.objects.create(key=f"test:{title}:{customer.pk}", kind=kind, customer=customer,
                                       assignee=assignee, title=title, due_on=due_on, **fields)

    return make


@pytest.fixture
def item(make_item, collector) -> WorkItem:
    return make_item(assignee=collector, title="Call Acme about INV-1001")


def behaviour(customer, *, overdue: str, days: int) -> None:
    """The nightly figures, and an invoice for them overdue `days` today
    (lateness is read off the invoices)."""
    PaymentBehaviour.objects.create(customer=customer, computed_on=TODAY, overdue_amount=Decimal(overdue),
                                    max_days_overdue=days)
    due = TODAY - dt.timedelta(days=days)
    Invoice.objects.create(number=f"INV-LATE-{customer.pk}", customer=customer, currency=customer.currency,
                           issue_date=due - dt.timedelta(days=30), due_date=due,
                           total_amount=Decimal(overdue), open_amount=Decimal(overdue),
                           status=InvoiceStatus.OPEN)


def listed(response) -> list[int]:
    return [int(pk) for pk in ITEM_ID.findall(response.content.decode())]


def text_of(response) -> str:
    return " ".join(response.content.decode().split())


def change_url(item: WorkItem, change: str) -> str:
    return reverse("collections:work_item_change", args=[item.pk, change])


def item_state(item: WorkItem) -> tuple:
    item.refresh_from_db()
    return item.status, item.done_by_id, item.snoozed_until, item.assignee_id, TimelineEvent.objects.count()


# --- What the list shows -----------------------------------------------------------------


def test_a_collector_sees_their_own_open_items_that_are_due(client, collector, other_collector, make_item):
    today = make_item(assignee=collector, title="Due today")
    overdue = make_item(assignee=collector, title="Due last week", due_on=TODAY - dt.timedelta(days=7))
    make_item(assignee=collector, title="Already done", status=WorkStatus.DONE)
    make_item(assignee=collector, title="Due tomorrow", due_on=TODAY + dt.timedelta(days=1))
    make_item(assignee=other_collector, title="Otto's call")
    make_item(assignee=None, title="Nobody's call")
    client.force_login(collector)

    response = client.get(WORKLIST)

    html = response.content.decode()
    assert response.status_code == 200
    assert "My work today" in html
    assert sorted(listed(response)) == sorted([today.pk, overdue.pk])
    assert "Due today" in html and "Due last week" in html
    for absent in ["Already done", "Due tomorrow", "Otto&#x27;s call", "Nobody&#x27;s call"]:
        assert absent not in html, absent


def test_one_day_late_is_said_in_the_singular(client, collector, make_customer, make_item):
    account = make_customer(name="Just Late", segment=Segment.PROMPT)
    behaviour(account, overdue="800.00", days=1)
    make_item(assignee=collector, customer=account, title="Call about yesterday's invoice")
    client.force_login(collector)

    text = text_of(client.get(WORKLIST))

    assert "· 1 day late (+0)" in text
    assert "1 days" not in text


def test_items_come_most_urgent_first_with_every_part_of_the_priority_explained(
    client, collector, make_customer, make_item
):
    small = make_customer(name="Small Prompt", segment=Segment.PROMPT)
    behaviour(small, overdue="800.00", days=4)
    big = make_customer(name="Big Distressed", segment=Segment.DISTRESSED)
    behaviour(big, overdue="25300.00", days=52)
    late = make_customer(name="Late Again", segment=Segment.SYSTEMATIC_LATE)
    behaviour(late, overdue="3000.00", days=9)
    broken = make_item(assignee=collector, customer=small, kind=WorkKind.PROMISE_BROKEN,
                       title="Broken promise: EUR 800.00 promised for 31 Jul")
    call = make_item(assignee=collector, customer=big, title="Call the CFO")
    again = make_item(assignee=collector, customer=late, title="Call about the July invoices",
                      due_on=TODAY - dt.timedelta(days=2))
    client.force_login(collector)

    response = client.get(WORKLIST)

    assert listed(response) == [call.pk, broken.pk, again.pk]
    text = text_of(response)
    assert re.findall(r"<span class=\"visually-hidden\">Priority</span> <strong>(\d+)</strong>", text) == [
        "62", "21", "18"
    ]
    for why in [
        "Why: EUR 25,300.00 overdue (+25) · 52 days late (+17) · distressed (+20) · to do today",
        "Why: EUR 800.00 overdue (+0) · 4 days late (+1) · prompt payer (+0) · broken promise (+20) "
        "· to do today",
        "Why: EUR 3,000.00 overdue (+3) · 9 days late (+3) · systematic late payer (+12) · due since 3 Aug",
    ]:
        assert why in text, why
    assert ("Priority = money (1 per 1,000 overdue in the account's currency, or per the amount the "
            "collection rules set for that currency, up to 40)") in text


def test_an_account_in_a_currency_with_its_own_scale_says_so_beside_its_money_points(
    client, collector, make_customer, make_item
):
    MoneyPointScale.objects.create(rules=CollectionRules.current(), currency="JPY",
                                   per_point_amount=Decimal("150000"))
    yen = make_customer(name="Tokyo Parts", currency="JPY")
    behaviour(yen, overdue="50000", days=10)
    euro = make_customer(name="Berlin Tools")
    behaviour(euro, overdue="5000.00", days=10)
    first = make_item(assignee=collector, customer=euro, title="Call Berlin")
    second = make_item(assignee=collector, customer=yen, title="Call Tokyo")
    client.force_login(collector)

    response = client.get(WORKLIST)

    assert listed(response) == [first.pk, second.pk]
    text = text_of(response)
    assert "Why: JPY 50,000 overdue (+0, 1 per JPY 150,000) · 10 days late" in text
    assert "Why: EUR 5,000.00 overdue (+5) · 10 days late" in text


def test_a_promise_due_days_ago_is_not_called_due_today(client, collector, make_item):
    make_item(assignee=collector, kind=WorkKind.PROMISE_DUE, due_on=TODAY - dt.timedelta(days=2),
              title="Promise due: EUR 800.00 by 03 Aug (EUR 0.00 paid so far)")
    client.force_login(collector)

    shown = re.search(r'<li class="work-item .*?</li>', text_of(client.get(WORKLIST))).group()

    assert "Promise due: EUR 800.00 by 03 Aug" in shown
    assert "promise due (+10)" in shown
    assert "today" not in shown


def test_an_item_says_whether_it_is_to_do_today_or_since_when_it_has_waited(client, collector, make_item):
    """An item due in an earlier year keeps the year: "due since 3 Mar" alone
    would read as this March."""
    today = make_item(assignee=collector, title="Call today")
    waiting = make_item(assignee=collector, title="Call since Saturday", due_on=dt.date(2025, 8, 2))
    old = make_item(assignee=collector, title="Call since last year", due_on=dt.date(2024, 3, 3))
    client.force_login(collector)

    text = text_of(client.get(WORKLIST))

    def shown(item) -> str:
        return re.search(rf'<li class="work-item [^"]*" id="work-{item.pk}".*?</li>', text).group()

    assert "· to do today" in shown(today)
    assert "· due since 2 Aug </p>" in shown(waiting)
    assert "· due since 3 Mar 2024 </p>" in shown(old)


def test_each_done_button_names_the_item_it_closes(client, collector, item):
    """A screen reader lists the page's buttons by name: fifty "Done" buttons
    would not say which is which."""
    client.force_login(collector)

    text = text_of(client.get(WORKLIST))

    name = f"{item.customer.name}: Call Acme about INV-1001"
    assert f'Done<span class="visually-hidden">: {name}</span></button>' in text
    assert f'Snooze<span class="visually-hidden">: {name}</span></button>' in text


def label_of(page: str, control_id: str) -> str:
    """The text of the <label> for a control, as a screen reader reads it out."""
    found = re.search(rf'<label[^>]*for="{control_id}"[^>]*>(.*?)</label>', page, re.S)
    assert found, f"no label for {control_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())


def test_each_snooze_date_and_hand_over_choice_is_named_after_its_item(
    client, collector, manager, make_item
):
    """Tabbing through the list, a screen reader announces a field by its
    label: fifty "Snooze until" date fields would not say which item each
    puts off, nor fifty "Hand to" lists which item each hands over."""
    first = make_item(assignee=collector, title="Call Acme about INV-1001")
    second = make_item(assignee=collector, title="Send the statement again")
    client.force_login(collector)

    page = client.get(WORKLIST).content.decode()

    for item in (first, second):
        name = f"{item.customer.name}: {item.title}"
        assert label_of(page, f"snooze-{item.pk}") == f"Snooze {name} until"
        assert label_of(page, f"reassign-{item.pk}") == f"Hand {name} to"


def test_the_hand_over_list_starts_on_no_one_so_a_careless_click_hands_nothing_over(
    client, collector, manager, item
):
    client.force_login(collector)

    page = client.get(WORKLIST).content.decode()

    select = re.search(rf'<select id="reassign-{item.pk}"[^>]*>(.*?)</select>', page, re.S).group(1)
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
    assert options[0] == ("", "Choose a person")
    assert ("", "Choose a person") not in options[1:] and str(manager.pk) in dict(options)
    assert "selected" not in select


def test_a_snoozed_item_stays_hidden_until_its_day(client, collector, item):
    item.snoozed_until = TODAY + dt.timedelta(days=2)
    item.save()
    client.force_login(collector)

    assert listed(client.get(WORKLIST)) == []
    with frozen(TODAY + dt.timedelta(days=1)):
        assert listed(client.get(WORKLIST)) == []
    with frozen(TODAY + dt.timedelta(days=2)):
        assert listed(client.get(WORKLIST)) == [item.pk]


def test_with_htmx_the_list_comes_as_a_fragment(client, collector, item):
    client.force_login(collector)

    response = client.get(WORKLIST, headers=HTMX)

    html = response.content.decode()
    assert '<section id="worklist"' in html and "<html" not in html
    # The heading says whose list it is, out of band: a manager switches lists in place.
    assert '<h1 id="worklist-title" hx-swap-oob="true">My work today</h1>' in html
    assert listed(response) == [item.pk]
    assert "HX-Request" in response["Vary"]


def test_each_item_offers_done_snooze_and_hand_over_as_plain_forms_and_htmx(
    client, collector, other_collector, manager, item
):
    client.force_login(collector)

    html = client.get(WORKLIST).content.decode()

    # Hand over to whoever may work the account, or to a fellow collector.
    assert f'<option value="{manager.pk}">maria</option>' in html
    assert f'<option value="{other_collector.pk}">otto</option>' in html
    for change in ["done", "snooze", "reassign"]:
        assert f'action="{change_url(item, change)}"' in html
        assert f'hx-post="{change_url(item, change)}"' in html


def hand_over_options(page: str, item: WorkItem) -> list[tuple[str, str, bool]]:
    """The item's hand-over menu as a user sees it: (value, text, may be chosen)."""
    select = re.search(rf'<select id="reassign-{item.pk}"[^>]*>(.*?)</select>', page, re.S).group(1)
    return [(value, html.unescape(text), "disabled" not in attrs)
            for attrs, value, text in re.findall(r'<option( value="([^"]*)"[^>]*)>([^<]*)</option>', select)]


def away_today(user, *, stand_in):
    from customers.models import CollectorAbsence

    return CollectorAbsence.objects.create(user=user, stand_in=stand_in, recorded_by=user,
                                           starts_on=TODAY - dt.timedelta(days=1),
                                           ends_on=TODAY + dt.timedelta(days=3))


def test_hand_over_offers_whoever_covers_for_the_away_collector_and_says_why_they_are_not_offered(
    client, collector, other_collector, manager, other_manager, make_item
):
    """Carla is away and Otto covers her accounts: he may work them, so a
    manager can pass him one of her calls; Carla herself is named, not
    offered, with who covers for her."""
    away_today(collector, stand_in=other_collector)
    item = make_item(assignee=manager, customer=make_item(assignee=collector).customer, title="Call back")
    client.force_login(manager)

    options = hand_over_options(client.get(WORKLIST).content.decode(), item)

    assert options == [
        ("", "Choose a person", True),
        ("", "carla (the account's collector) — away today, otto covers", False),
        (str(other_collector.pk), "otto (covering for carla)", True),
        (str(other_manager.pk), "mark", True),
    ]


def test_hand_over_offers_the_managers_then_fellow_collectors_but_neither_a_viewer_nor_someone_without_a_role(
    client, collector, other_collector, manager, viewer, django_user_model, make_item
):
    django_user_model.objects.create_user("nora")
    item = make_item(assignee=collector, title="Call back")
    client.force_login(collector)

    options = hand_over_options(client.get(WORKLIST).content.decode(), item)

    assert options == [("", "Choose a person", True), (str(manager.pk), "maria", True),
                       (str(other_collector.pk), "otto", True)]


@pytest.mark.parametrize("whom", ["viewer", "no role", "deactivated collector", "unknown"])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_crafted_hand_over_to_someone_who_may_not_work_the_account_is_refused(
    client, collector, other_collector, viewer, django_user_model, make_item, whom, headers
):
    """Someone outside those who work accounts is not named: an id posted
    must not tell whose it is."""
    nora = django_user_model.objects.create_user("nora")
    not_a_choice = "Select a valid choice. That choice is not one of the available choices."
    to, said = {
        "viewer": (viewer.pk, not_a_choice),
        "no role": (nora.pk, not_a_choice),
        "deactivated collector": (other_collector.pk, not_a_choice),
        "unknown": (nora.pk + 1000, not_a_choice),
    }[whom]
    other_collector.is_active = False
    other_collector.save(update_fields=["is_active"])
    item = make_item(assignee=collector, title="Call back")
    client.force_login(collector)
    before = item_state(item)

    response = client.post(change_url(item, "reassign"), {"to": to, "reason": WHY}, headers=headers)

    page = html.unescape(text_of(response if headers else client.get(WORKLIST)))
    assert said in page
    assert item_state(item) == before


def test_a_manager_may_take_any_item(client, collector, manager, make_item):
    item = make_item(assignee=collector, title="Call back")
    client.force_login(collector)

    response = client.post(change_url(item, "reassign"), {"to": manager.pk, "reason": WHY}, headers=HTMX)

    assert response.status_code == 200
    assert WorkItem.objects.get(pk=item.pk).assignee == manager


def test_an_item_cannot_be_handed_to_someone_away_today(
    client, collector, other_collector, manager, make_item
):
    """A hand-over posted to a colleague away (a page opened before the
    absence was recorded) would leave the item on a list nobody reads: refused, nothing changed."""
    item = make_item(assignee=collector, title="Call back")
    away_today(manager, stand_in=other_collector)
    client.force_login(collector)
    before = item_state(item)

    response = client.post(change_url(item, "reassign"), {"to": manager.pk, "reason": WHY}, headers=HTMX)

    assert response.status_code == 422
    assert "maria is away today (otto covers): hand it to someone at work." in text_of(response)
    assert item_state(item) == before


def test_a_hand_over_to_the_stand_in_lands_on_their_list_and_on_the_timeline(
    client, collector, other_collector, manager, make_item
):
    away_today(collector, stand_in=other_collector)
    item = make_item(assignee=manager, customer=make_item(assignee=collector).customer, title="Call back")
    client.force_login(manager)

    response = client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY})

    assert response.status_code == 302
    item.refresh_from_db()
    assert item.assignee == other_collector
    event = TimelineEvent.objects.get(customer=item.customer, kind=EventKind.WORK)
    assert (event.actor, event.summary) == (manager,
                                            f"Worklist: handed from maria to otto — Call back. Why: {WHY}")


def test_with_no_colleague_to_hand_over_to_there_is_no_hand_over_form(client, collector, item):
    client.force_login(collector)

    html = client.get(WORKLIST).content.decode()

    assert change_url(item, "done") in html
    assert change_url(item, "reassign") not in html


def test_a_manager_may_look_at_another_collectors_list(
    client, manager, collector, other_collector, make_item
):
    carla = make_item(assignee=collector, title="Carla's call")
    otto = make_item(assignee=other_collector, title="Otto's call")
    client.force_login(manager)

    own = client.get(WORKLIST)
    ottos = client.get(WORKLIST, {"collector": other_collector.pk})
    nonsense = client.get(WORKLIST, {"collector": "nobody"})

    assert listed(own) == [] and "My work today" in own.content.decode()
    assert listed(ottos) == [otto.pk]
    assert "Work today for otto" in ottos.content.decode()
    assert f'<option value="{other_collector.pk}" selected>' in ottos.content.decode()
    assert listed(nonsense) == []
    assert carla.pk not in listed(ottos)


def test_a_collector_cannot_look_at_a_colleagues_list(client, collector, other_collector, make_item):
    mine = make_item(assignee=collector, title="Mine")
    make_item(assignee=other_collector, title="Otto's")
    client.force_login(collector)

    response = client.get(WORKLIST, {"collector": other_collector.pk})

    assert listed(response) == [mine.pk]
    assert 'name="collector"' not in response.content.decode()


def test_read_only_colleagues_have_no_worklist(client, viewer):
    client.force_login(viewer)

    assert client.get(reverse("collections:worklist")).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in_for_the_worklist(client):
    response = client.get(WORKLIST)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- Changing items ------------------------------------------------------------------------


CHANGES = ["done", "snooze", "reassign"]


@pytest.fixture
def change_data(manager) -> dict[str, dict]:
    return {"done": {}, "snooze": {"until": "2025-08-08"}, "reassign": {"to": manager.pk, "reason": WHY}}


def expected_state(change: str, collector, manager) -> tuple:
    """(status, done_by, snoozed_until, assignee) after each change."""
    return {
        "done": (WorkStatus.DONE, collector.pk, None, collector.pk),
        "snooze": (WorkStatus.OPEN, None, dt.date(2025, 8, 8), collector.pk),
        "reassign": (WorkStatus.OPEN, None, None, manager.pk),
    }[change]


@pytest.mark.parametrize("change", CHANGES)
def test_without_htmx_a_change_is_saved_and_the_list_comes_back_without_the_item(
    client, collector, manager, item, change_data, change
):
    client.force_login(collector)

    response = client.post(change_url(item, change), change_data[change])

    assert response.status_code == 302 and response.url.partition("#")[0] == WORKLIST
    assert item_state(item)[:4] == expected_state(change, collector, manager)
    event = TimelineEvent.objects.get(customer=item.customer)
    assert (event.kind, event.actor) == (EventKind.WORK, collector)
    # A hand-over says why after the title.
    assert event.summary.startswith("Worklist: ") and "— Call Acme about INV-1001" in event.summary
    after = client.get(response.url)
    assert item.pk not in listed(after)
    assert 'class="message message-success"' in after.content.decode()


@pytest.mark.parametrize(
    ("change", "said"),
    [("done", "Done."), ("snooze", "Snoozed until 8 Aug 2025."), ("reassign", "Handed to maria.")],
)
def test_with_htmx_a_change_replaces_the_item_in_place(
    client, collector, manager, item, change_data, change, said
):
    client.force_login(collector)

    response = client.post(change_url(item, change), change_data[change], headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<li class="work-item work-item-gone" id="work-{item.pk}">')
    assert said in html and "<html" not in html
    assert re.search(r'<div id="messages"[^>]*hx-swap-oob="innerHTML"', html)
    assert item_state(item)[:4] == expected_state(change, collector, manager)


def test_a_handed_over_item_lands_on_the_managers_list(client, collector, manager, item):
    client.force_login(collector)
    client.post(change_url(item, "reassign"), {"to": manager.pk, "reason": WHY})

    client.force_login(manager)

    assert listed(client.get(WORKLIST)) == [item.pk]


def test_an_item_handed_to_a_fellow_collector_lands_on_their_list_with_its_reason(
    client, collector, other_collector, item
):
    client.force_login(collector)

    response = client.post(change_url(item, "reassign"), {"to": other_collector.pk, "reason": WHY},
                           headers=HTMX)

    assert response.status_code == 200
    item.refresh_from_db()
    assert (item.assignee, item.handed_by, item.handed_reason) == (other_collector, collector, WHY)
    client.force_login(other_collector)
    page = text_of(client.get(WORKLIST))
    assert listed(client.get(WORKLIST)) == [item.pk]
    assert f"Handed over by carla on 5 Aug (the account is carla’s): {WHY}" in page


def test_a_manager_may_change_an_item_on_a_collectors_list_and_returns_to_that_list(
    client, manager, collector, item
):
    client.force_login(manager)

    response = client.post(change_url(item, "done"))

    assert response.url.partition("#")[0] == f"{WORKLIST}?collector={collector.pk}"
    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, manager)


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("who", ["other_collector", "viewer"])
def test_someone_elses_item_is_refused_and_nothing_changes(
    client, item, change_data, request, who, change, headers
):
    before = item_state(item)
    client.force_login(request.getfixturevalue(who))

    response = client.post(change_url(item, change), change_data[change], headers=headers)

    assert response.status_code == 403
    assert item_state(item) == before


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_an_account_handed_to_another_collector_takes_its_items_along(
    client, collector, other_collector, manager, item, change_data, change, headers
):
    from customers.services import customer_update

    customer_update(customer=item.customer, actor=manager, changes={"collector": other_collector})
    item.refresh_from_db()
    assert item.assignee == other_collector  # on the new collector's list
    handed = "Worklist: 1 open item(s) handed over with the account"
    assert TimelineEvent.objects.filter(customer=item.customer, summary=handed).exists()
    item.assignee = collector  # as if it had stayed: the former collector still may not touch it
    item.save(update_fields=["assignee"])
    before = item_state(item)
    client.force_login(collector)

    response = client.post(change_url(item, change), change_data[change], headers=headers)

    assert response.status_code == 403
    assert item_state(item) == before


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_needs_a_post(client, collector, item, change):
    before = item_state(item)
    client.force_login(collector)

    assert client.get(change_url(item, change)).status_code == 405
    assert item_state(item) == before


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_without_the_csrf_token_is_refused(collector, item, change_data, change):
    before = item_state(item)
    client = Client(enforce_csrf_checks=True)
    client.force_login(collector)

    assert client.post(change_url(item, change), change_data[change], headers=HTMX).status_code == 403
    assert item_state(item) == before


def test_an_unknown_change_is_a_bad_request(client, collector, item):
    before = item_state(item)
    client.force_login(collector)

    assert client.post(change_url(item, "delete")).status_code == 400
    assert item_state(item) == before


def test_an_unknown_item_is_not_found(client, collector):
    client.force_login(collector)

    assert client.post(reverse("collections:work_item_change", args=[999_999, "done"])).status_code == 404


@pytest.fixture
def bad_changes(item, viewer):
    return {
        "snooze to today": ("snooze", {"until": "2025-08-05"}, "Snooze to a later day."),
        "snooze without a date": ("snooze", {}, "This field is required."),
        # Put off for months, an item is out of sight as surely as if it were closed.
        "snooze for months": ("snooze", {"until": "2025-12-31"},
                              "Snooze at most 30 days, until 4 Sep 2025: an item that must wait longer is "
                              "one to mark done or hand over."),
        "hand to a viewer": ("reassign", {"to": viewer.pk},
                             "Select a valid choice. That choice is not one of the available choices."),
        "hand to no one chosen": ("reassign", {"to": ""}, "Choose whom to hand the item to."),
    }


@pytest.mark.parametrize("case", ["snooze to today", "snooze without a date", "snooze for months",
                                  "hand to a viewer", "hand to no one chosen"])
def test_a_refused_change_says_why_and_changes_nothing(client, collector, item, bad_changes, case):
    change, data, message = bad_changes[case]
    before = item_state(item)
    client.force_login(collector)

    plain = client.post(change_url(item, change), data)
    assert plain.status_code == 302 and plain.url == WORKLIST
    assert message in client.get(plain.url).content.decode()
    htmx = client.post(change_url(item, change), data, headers=HTMX)

    assert htmx.status_code == 422
    assert message in htmx.content.decode()
    assert item_state(item) == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_an_item_already_done_says_at_once_by_whom_and_when_and_changes_nothing(
    client, collector, manager, item, headers
):
    """A manager ticked it off in another tab; the collector's list still
    shows it. Their Done says so in the answer itself, not on a later page."""
    client.force_login(manager)
    client.post(change_url(item, "done"))
    before = item_state(item)
    client.force_login(collector)

    response = client.post(change_url(item, "done"), headers=headers)

    assert response.status_code == 200
    said = text_of(response)
    assert ("This item is already done: Call Acme about INV-1001 — ticked off by "
            f"{person_name(manager)} on 5 Aug 2025 at 09:00. Nothing was changed.") in html.unescape(said)
    assert item_state(item) == before
    assert "already done" not in text_of(client.get(WORKLIST))  # said once, not again on the next page


def test_a_refused_change_with_htmx_leaves_the_item_on_the_list(client, collector, item):
    """The forms swap #work-<id> (outerHTML). An answer made only of the
    out-of-band messages swaps the item for nothing: it vanishes from the list
    although nothing changed, until the page is reloaded."""
    client.force_login(collector)

    response = client.post(change_url(item, "snooze"), {"until": "2025-08-01"}, headers=HTMX)

    html = response.content.decode()
    assert f'id="work-{item.pk}"' in html or response.get("HX-Reswap") == "none"


def test_a_refused_change_with_htmx_says_why_beside_the_item_not_only_at_the_top_of_the_page(
    client, collector, item
):
    """The top of a long list is out of sight: the reason goes into the item,
    whose forms stay as they were (the date typed with them)."""
    client.force_login(collector)

    response = client.post(change_url(item, "snooze"), {"until": "2025-08-01"}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 422 and response["HX-Reswap"] == "none"
    error = re.search(rf'<p [^>]*id="work-{item.pk}-error"[^>]*>(.*?)</p>', html)
    assert error and error.group(1) == "Snooze to a later day."
    assert 'hx-swap-oob="true"' in error.group() and 'role="alert"' in error.group()
    assert f'id="work-{item.pk}-error"' in client.get(WORKLIST).content.decode()
    assert "Snooze to a later day." not in client.get(WORKLIST).content.decode()


# --- Pages ---------------------------------------------------------------------------------


def link(response, rel: str) -> str | None:
    """The worklist URL a page's "next" or "prev" link leads to (its href, unescaped,
    as the browser reads it on the list's page)."""
    found = re.search(rf'<a href="([^"]*)" rel="{rel}"', response.content.decode())
    return urljoin(WORKLIST, html.unescape(found.group(1))) if found else None


@pytest.fixture
def sixty_items(collector, make_customer, make_item) -> list[int]:
    """60 items, their ids in the list's order: by priority (the money part,
    three items to each), then by due day, then by id."""
    items = []
    for n in range(60):
        customer = make_customer(name=f"Customer {n:02d}")
        behaviour(customer, overdue=f"{1000 * (20 - n // 3)}.00", days=1)
        item = make_item(assignee=collector, customer=customer, title=f"Call {n:02d}",
                         due_on=TODAY - dt.timedelta(days=n % 3))
        items.append(((-(20 - n // 3), item.due_on, item.pk), item.pk))
    return [pk for _, pk in sorted(items)]


def test_items_closed_in_place_on_a_page_do_not_push_others_past_the_next_page(
    client, collector, sixty_items
):
    """Done, snoozed or handed over on the first page, the items leave the list
    in place; the next page must still start right after the first page's last
    item, or the items moved up into the gap are never shown to anyone."""
    client.force_login(collector)
    first = client.get(WORKLIST)
    assert listed(first) == sixty_items[:50]
    for pk in sixty_items[:4]:
        client.post(reverse("collections:work_item_change", args=[pk, "done"]), headers=HTMX)
    client.post(reverse("collections:work_item_change", args=[sixty_items[4], "snooze"]),
                {"until": "2025-08-09"}, headers=HTMX)

    second = client.get(link(first, "next"), headers=HTMX)

    assert listed(second) == sixty_items[50:]
    assert link(second, "next") is None


def test_the_previous_page_is_the_fifty_items_before_the_first_shown(client, collector, sixty_items):
    client.force_login(collector)
    second = client.get(link(client.get(WORKLIST), "next"))
    for pk in sixty_items[10:13]:
        client.post(reverse("collections:work_item_change", args=[pk, "done"]))

    back = client.get(link(second, "prev"))

    # Three fewer before page two: the first page, from the top, with no way further back.
    assert listed(back) == sixty_items[:10] + sixty_items[13:53]
    assert link(back, "prev") is None
    assert link(second, "prev") and link(client.get(WORKLIST), "prev") is None


def test_page_links_keep_the_chosen_collector_and_can_be_shared(
    client, manager, collector, sixty_items
):
    client.force_login(manager)
    next_url = link(client.get(WORKLIST, {"collector": collector.pk}), "next")

    assert f"collector={collector.pk}" in next_url
    # Another manager opening the same link sees the same page.
    client.force_login(manager)
    assert listed(client.get(next_url)) == sixty_items[50:]


@pytest.mark.parametrize("position", ["after=nonsense", "before=1.2025-13-01.4", "after=1.20250805"])
def test_a_page_position_the_list_did_not_hand_out_is_a_bad_request(client, collector, item, position):
    client.force_login(collector)

    response = client.get(f"{WORKLIST}?{position}")

    assert response.status_code == 400
    assert "is not a position in this list" in response.content.decode()


# --- Where the list opens without htmx ------------------------------------------------------
# Done, snoozed or handed over, an item leaves the list; the browser follows the
# redirect to the item to go on with, which must be on the page it opens.


def opens_at(client, response) -> tuple[str, list[int]]:
    """The anchor a plain POST's redirect opens the list at, and the items of
    the page it opens, which holds an element with that id."""
    assert response.status_code == 302
    url, _, anchor = response.url.partition("#")
    page = client.get(url)
    assert f'id="{anchor}"' in page.content.decode(), f"the page {url} opens has no #{anchor}"
    return anchor, listed(page)


@pytest.fixture
def three_items(collector, make_customer, make_item) -> list[WorkItem]:
    """Three items of the same priority and day: listed in the order made."""
    return [make_item(assignee=collector, customer=make_customer(name=f"Customer {n}"), title=f"Call {n}")
            for n in "ABC"]


@pytest.mark.parametrize("change", CHANGES)
def test_an_item_changed_without_htmx_opens_the_list_at_the_next_item(
    client, collector, three_items, change_data, change
):
    first, second, third = three_items
    client.force_login(collector)

    response = client.post(change_url(second, change), change_data[change])

    assert opens_at(client, response) == (f"work-{third.pk}", [first.pk, third.pk])


@pytest.mark.parametrize("change", CHANGES)
def test_the_last_item_changed_without_htmx_opens_the_list_at_the_item_before_it(
    client, collector, three_items, change_data, change
):
    first, second, third = three_items
    client.force_login(collector)

    response = client.post(change_url(third, change), change_data[change])

    assert opens_at(client, response) == (f"work-{second.pk}", [first.pk, second.pk])


@pytest.mark.parametrize("change", CHANGES)
def test_the_only_item_changed_without_htmx_opens_the_list_at_its_heading_saying_nothing_is_left(
    client, collector, item, change_data, change
):
    client.force_login(collector)

    response = client.post(change_url(item, change), change_data[change])

    assert response.url == f"{WORKLIST}#worklist-title"
    assert opens_at(client, response) == ("worklist-title", [])
    assert "Nothing to do today." in client.get(WORKLIST).content.decode()


def test_an_item_changed_on_a_later_page_without_htmx_opens_the_page_holding_the_next_item(
    client, collector, sixty_items
):
    client.force_login(collector)

    response = client.post(reverse("collections:work_item_change", args=[sixty_items[54], "done"]))

    anchor, shown = opens_at(client, response)
    assert anchor == f"work-{sixty_items[55]}"
    assert shown[0] == sixty_items[55]


def test_the_last_item_of_the_first_page_done_without_htmx_opens_the_first_page_at_the_one_moved_up(
    client, collector, sixty_items
):
    client.force_login(collector)

    response = client.post(reverse("collections:work_item_change", args=[sixty_items[49], "done"]))

    assert response.url == f"{WORKLIST}#work-{sixty_items[50]}"
    assert opens_at(client, response) == (f"work-{sixty_items[50]}", sixty_items[:49] + sixty_items[50:51])


def test_the_next_item_is_the_next_by_priority_as_it_stands_when_the_change_is_made(
    client, collector, three_items
):
    """An invoice fell overdue since the list was read: the third item's
    account now owes most, and the list the browser opens has it on top."""
    first, second, third = three_items
    behaviour(third.customer, overdue="9000.00", days=30)
    client.force_login(collector)

    response = client.post(change_url(first, "done"))

    assert opens_at(client, response) == (f"work-{second.pk}", [third.pk, second.pk])


def test_an_item_a_manager_changes_on_a_collectors_later_page_opens_that_list_at_the_next_item(
    client, manager, collector, sixty_items
):
    client.force_login(manager)

    response = client.post(reverse("collections:work_item_change", args=[sixty_items[57], "snooze"]),
                           {"until": "2025-08-08"})

    assert f"collector={collector.pk}" in response.url
    anchor, shown = opens_at(client, response)
    assert anchor == f"work-{sixty_items[58]}"
    assert shown[0] == sixty_items[58]


def disputed_account(make_customer, manager, *, amount: str | None = None, resolved: bool = False):
    """A prompt payer owing EUR 1,000.00 due 65 days ago, under open dispute
    (of `amount` of it, else all of it; `resolved`: rejected since), and EUR
    200.00 due 30 days ago."""
    account = make_customer(name="Disputer Ltd", segment=Segment.PROMPT)
    old, _ = (Invoice.objects.create(number=f"INV-{days}-{account.pk}", customer=account, currency="EUR",
                                     issue_date=TODAY - dt.timedelta(days=days + 30),
                                     due_date=TODAY - dt.timedelta(days=days), total_amount=Decimal(owed),
                                     open_amount=Decimal(owed), status=InvoiceStatus.OPEN)
              for days, owed in [(65, "1000.00"), (30, "200.00")])
    dispute = workspace.dispute_open(customer=account, actor=manager, invoice=old, reason=DisputeReason.PRICE,
                                     description="Wrong price", on=TODAY,
                                     amount=Decimal(amount) if amount else None)
    if resolved:
        workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.REJECTED,
                                  note="Price was as quoted", on=TODAY)
    return account


@pytest.mark.parametrize(("amount", "resolved", "why"), [
    # Wholly disputed: neither its money nor its days are chased.
    (None, False, "Why: EUR 200.00 overdue (+0) · 30 days late (+10)"),
    # Disputed in part: the rest of it is overdue, and as late as ever.
    ("400.00", False, "Why: EUR 800.00 overdue (+0) · 65 days late (+21)"),
    # Resolved: all of it counts again.
    (None, True, "Why: EUR 1,200.00 overdue (+1) · 65 days late (+21)"),
])
def test_the_priority_leaves_out_what_is_under_open_dispute_as_the_account_page_does(
    client, collector, manager, make_customer, make_item, amount, resolved, why
):
    account = disputed_account(make_customer, manager, amount=amount, resolved=resolved)
    make_item(assignee=collector, customer=account, title="Call about the overdue invoices")
    client.force_login(collector)

    assert why in text_of(client.get(WORKLIST))


# --- Query count --------------------------------------------------------------------------


@pytest.mark.parametrize("items", [3, 60])
def test_the_worklist_costs_the_same_queries_for_3_or_60_items(
    client, collector, other_collector, manager, other_manager, make_customer, make_item,
    django_assert_num_queries, items
):
    away_today(manager, stand_in=other_collector)  # each menu says who covers for her
    for n in range(items):
        customer = make_customer(name=f"Customer {n}", segment=Segment.SYSTEMATIC_LATE)
        if n % 2:
            behaviour(customer, overdue=f"{1000 * n}.00", days=n)
        if n % 4 == 1:  # what is under dispute is left out in the same query
            workspace.dispute_open(customer=customer, actor=manager, invoice=customer.invoices.get(),
                                   reason=DisputeReason.PRICE, description="Wrong price", on=TODAY,
                                   amount=Decimal("400.00"))
        make_item(assignee=collector, customer=customer, title=f"Call {n}")
    client.force_login(collector)

    # With colleagues to hand over to, every item has its hand-over form.
    # session, user, permissions (2), role groups, the absences in force today
    # (whom this user covers for, whose items the list shows too), the page of
    # items with their customers and behaviour (pages by position: no count),
    # then for the hand-over menus the absences again (who is away, who covers
    # for whom) and the people at work with whether each may work any account
    with django_assert_num_queries(9):
        response = client.get(WORKLIST)

    assert len(listed(response)) == min(items, 50)


def test_a_deactivated_collectors_open_items_can_still_be_found_by_a_manager(
    client, manager, other_collector, make_customer
):
    """Nothing hands a leaver's accounts over by itself: until a manager does,
    their open items stay on a list a manager can choose."""
    account = make_customer(name="Otto's account", collector=other_collector)
    item = WorkItem.objects.create(key="test:broken-promise", kind=WorkKind.PROMISE_BROKEN, customer=account,
                                   assignee=other_collector, title="Broken promise: EUR 900.00",
                                   due_on=TODAY)
    other_collector.is_active = False  # Otto has left
    other_collector.save()
    client.force_login(manager)

    ottos = client.get(WORKLIST, {"collector": other_collector.pk})
    own = client.get(WORKLIST)

    assert item.pk in listed(ottos), "the leaver's open item is on no list a manager can open"
    assert "(deactivated)</option>" in own.content.decode()


@pytest.mark.parametrize(("query", "first_page"), [("", "."), ("assignee={pk}&", "?assignee={pk}")],
                         ids=["own-list", "filtered"])
def test_previous_from_the_second_page_leads_to_the_first_page_s_own_address(
    client, collector, make_customer, monkeypatch, query, first_page
):
    """No position in it: the first page has one address, the one htmx pushes too."""
    from ar_collections import workspace_views

    monkeypatch.setattr(workspace_views, "WORKLIST_PAGE_SIZE", 3)
    customer = make_customer()
    for n in range(7):
        WorkItem.objects.create(key=f"test:{n}", kind=WorkKind.PERSONAL, customer=customer,
                                assignee=collector, title=f"Check in ({n})", due_on=TODAY)
    client.force_login(collector)
    query, first_page = query.format(pk=collector.pk), first_page.format(pk=collector.pk)

    def previous(page: str) -> str:
        return html.unescape(re.search(r'<a href="([^"]*)" rel="prev"', page).group(1))

    def next_(page: str) -> str:
        return html.unescape(re.search(r'<a href="([^"]*)" rel="next"', page).group(1))

    first = client.get(f"{WORKLIST}?{query}").content.decode()
    second = client.get(WORKLIST + next_(first)).content.decode()
    third = client.get(WORKLIST + next_(second)).content.decode()
    back = client.get(WORKLIST + previous(third)).content.decode()

    assert 'rel="prev"' not in first
    assert previous(second) == first_page
    assert "before=" in previous(third)
    assert previous(back) == first_page
    assert re.search(r'<a href="([^"]*)" rel="prev" hx-get="\1"', second)
