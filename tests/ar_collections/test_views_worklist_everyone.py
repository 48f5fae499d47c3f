"""The worklist's team view: a manager picks "Everyone" and sees every
collector's open items in one list, most urgent first, each naming whose it is."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import urljoin

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from ar_collections.models import WorkItem, WorkKind, WorkStatus
from arcrm.roles import COLLECTOR
from customers.models import CollectorAbsence, Segment

from .test_views_worklist import behaviour

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
WORKLIST = reverse("collections:worklist")
ITEM_ID = re.compile(r'<li class="work-item kind-\w+" id="work-(\d+)"')
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def make_item(make_customer):
    def make(*, assignee, title: str = "Call about the overdue invoices", due_on: dt.date = TODAY,
             customer=None, **fields) -> WorkItem:
        customer = customer or make_customer(**({"collector": assignee} if assignee else {}))
        return WorkItem.objects.create(key=f"test:{title}:{customer.pk}", kind=WorkKind.CALL,
                                       customer=customer, assignee=assignee, title=title, due_on=due_on,
                                       **fields)

    return make


def listed(response) -> list[int]:
    return [int(pk) for pk in ITEM_ID.findall(response.content.decode())]


def text_of(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def owner_of(response, item: WorkItem) -> str:
    """What the item says about whose list it is on."""
    block = response.content.decode().split(f'id="work-{item.pk}"')[1].split("</li>")[0]
    found = re.search(r'<p class="work-owner[^"]*">(.*?)</p>', block, re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split()) if found else ""


def test_a_manager_may_choose_everyone_as_well_as_each_collector(client, manager, collector):
    client.force_login(manager)

    page = client.get(WORKLIST).content.decode()

    assert '<option value="everyone">Everyone</option>' in page
    assert f'<option value="{collector.pk}">' in page
    # The manager's own list is still where the page opens.
    assert "My work today" in page


def test_everyone_lists_every_open_item_most_urgent_first_each_naming_its_collector(
    client, manager, collector, other_collector, make_customer, make_item
):
    big = make_customer(name="Big Distressed", collector=other_collector, segment=Segment.DISTRESSED)
    behaviour(big, overdue="25300.00", days=52)
    small = make_customer(name="Small Prompt", collector=collector, segment=Segment.PROMPT)
    behaviour(small, overdue="800.00", days=4)
    carla = make_item(assignee=collector, customer=small, title="Carla's call")
    otto = make_item(assignee=other_collector, customer=big, title="Otto's call")
    nobody = make_item(assignee=None, title="Nobody's call")
    marias = make_item(assignee=manager, title="Maria's call", due_on=TODAY - dt.timedelta(days=1))
    make_item(assignee=collector, title="Done already", status=WorkStatus.DONE)
    make_item(assignee=other_collector, title="Not due yet", due_on=TODAY + dt.timedelta(days=1))
    make_item(assignee=collector, title="Snoozed", snoozed_until=TODAY + dt.timedelta(days=2))
    client.force_login(manager)

    response = client.get(WORKLIST, {"collector": "everyone"})

    assert response.status_code == 200
    # By priority (the new accounts ahead of the prompt payer), then by due day.
    assert listed(response) == [otto.pk, marias.pk, nobody.pk, carla.pk]
    assert "Everyone’s work today" in response.content.decode()
    assert '<option value="everyone" selected>Everyone</option>' in response.content.decode()
    assert owner_of(response, otto) == "Collector: otto"
    assert owner_of(response, carla) == "Collector: carla"
    assert owner_of(response, marias) == "Collector: maria"
    assert owner_of(response, nobody) == "Collector: nobody (hand it over)"


def test_a_single_collector_s_list_does_not_name_the_collector_on_every_item(
    client, manager, collector, make_item
):
    item = make_item(assignee=collector)
    client.force_login(manager)

    response = client.get(WORKLIST, {"collector": collector.pk})

    assert listed(response) == [item.pk]
    assert owner_of(response, item) == ""


def test_with_htmx_everyone_answers_with_the_list_and_the_heading_and_choice_to_match(
    client, manager, collector, make_item
):
    item = make_item(assignee=collector)
    client.force_login(manager)

    response = client.get(WORKLIST, {"collector": "everyone"}, headers=HTMX)

    body = response.content.decode()
    assert "<html" not in body
    assert listed(response) == [item.pk]
    assert '<h1 id="worklist-title" hx-swap-oob="true">Everyone’s work today</h1>' in body
    assert '<option value="everyone" selected>Everyone</option>' in body


def test_the_pages_of_everyone_s_list_keep_the_choice(
    client, manager, collector, other_collector, make_customer, make_item
):
    items = []
    for n in range(60):
        who = collector if n % 2 else other_collector
        customer = make_customer(name=f"Customer {n:02d}", collector=who)
        behaviour(customer, overdue=f"{1000 * (60 - n)}.00", days=1)
        items.append(make_item(assignee=who, customer=customer, title=f"Call {n:02d}").pk)
    client.force_login(manager)

    first = client.get(WORKLIST, {"collector": "everyone"})
    found = re.search(r'<a href="([^"]*)" rel="next"', first.content.decode())
    next_url = urljoin(WORKLIST, html.unescape(found.group(1)))
    second = client.get(next_url)

    assert "collector=everyone" in next_url
    assert listed(first) == items[:50]
    assert listed(second) == items[50:]


def test_a_collector_is_not_offered_everyone_and_asking_for_it_shows_their_own_list(
    client, collector, other_collector, make_item
):
    mine = make_item(assignee=collector, title="Mine")
    make_item(assignee=other_collector, title="Otto's")
    make_item(assignee=None, title="Nobody's")
    client.force_login(collector)

    response = client.get(WORKLIST, {"collector": "everyone"})

    assert listed(response) == [mine.pk]
    assert "My work today" in response.content.decode()
    assert 'name="collector"' not in response.content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_read_only_colleagues_have_no_team_view_either(client, viewer, headers):
    client.force_login(viewer)

    assert client.get(WORKLIST, {"collector": "everyone"}, headers=headers).status_code == 403


def test_the_worklist_only_reads(client, manager, collector, make_item):
    item = make_item(assignee=collector)
    client.force_login(manager)

    assert client.post(WORKLIST, {"collector": "everyone"}).status_code == 405
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN


@pytest.mark.parametrize("chosen", ["nobody", "999999"])
def test_a_collector_choice_that_names_nobody_says_so_and_shows_the_manager_s_own_list(
    client, manager, collector, make_item, chosen
):
    make_item(assignee=collector)
    own = make_item(assignee=manager, title="Maria's call")
    client.force_login(manager)

    response = client.get(WORKLIST, {"collector": chosen})

    assert listed(response) == [own.pk]
    assert (f"There is no collector “{chosen}” to show the list of: this is your own list. "
            "Choose a collector or Everyone above.") in text_of(response)


@pytest.mark.parametrize("collectors", [2, 6])
def test_everyone_s_list_costs_the_same_queries_for_2_or_6_collectors(
    client, manager, make_customer, make_item, django_assert_num_queries, collectors
):
    group = Group.objects.get(name=COLLECTOR)
    for n in range(collectors):
        person = User.objects.create_user(f"collector{n}")
        person.groups.add(group)
        for m in range(3):
            customer = make_customer(name=f"Customer {n}-{m}", collector=person)
            behaviour(customer, overdue=f"{1000 * (m + 1)}.00", days=m + 1)
            make_item(assignee=person, customer=customer, title=f"Call {n}-{m}")
    # The first collector away, the second covering: each menu says so.
    first, second = User.objects.filter(username__in=["collector0", "collector1"]).order_by("username")
    CollectorAbsence.objects.create(user=first, stand_in=second, recorded_by=manager,
                                    starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=2))
    client.force_login(manager)

    # session, user, permissions (2), the people to choose from, role groups,
    # the page of items with their customers, collectors and behaviour (pages
    # by position: no count), then for the hand-over menus the absences in
    # force (who is away, who covers for whom) and the people at work with
    # whether each may work any account
    with django_assert_num_queries(9):
        response = client.get(WORKLIST, {"collector": "everyone"})

    assert len(listed(response)) == 3 * collectors


def test_without_htmx_a_change_made_on_everyone_s_list_returns_to_everyone_s_list(
    client, manager, collector, other_collector, make_item
):
    """Ticking off a collector's item from the team view must not drop the
    manager on that collector's list: they were working through everyone's."""
    first = make_item(assignee=collector, title="Carla's call")
    going_on = make_item(assignee=other_collector, title="Otto's call")
    client.force_login(manager)

    page = client.get(WORKLIST, {"collector": "everyone"}).content.decode()
    form = page.split(f'id="work-{first.pk}"')[1].split("</form>")[0]
    assert '<input type="hidden" name="list" value="everyone">' in form
    response = client.post(reverse("collections:work_item_change", args=[first.pk, "done"]),
                           {"list": "everyone"})

    assert response.status_code == 302
    assert response["Location"] == f"{WORKLIST}?collector=everyone#work-{going_on.pk}"
    landed = client.get(urljoin(WORKLIST, response["Location"]))
    assert "Everyone’s work today" in landed.content.decode()
    assert listed(landed) == [going_on.pk]


def test_a_collector_saying_everyone_in_a_change_still_returns_to_their_own_list(
    client, collector, make_item
):
    mine = make_item(assignee=collector, title="Carla's call")
    client.force_login(collector)

    response = client.post(reverse("collections:work_item_change", args=[mine.pk, "done"]),
                           {"list": "everyone"})

    assert response["Location"].startswith(f"{WORKLIST}#") or response["Location"] == WORKLIST
    assert "everyone" not in response["Location"]
