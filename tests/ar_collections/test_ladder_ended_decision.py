"""Done on a finished ladder's item asks what was decided (a plan or promise
agreed, a manager's exception asked, a write-off proposed, legal or an agency,
keep watching) and a note, both on the timeline: nothing more goes out for the
account, and one click must not let the debt go quiet. If the money is still
overdue with nothing holding it some days later, the account comes back on
the list. Other items keep their one-click Done."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ar_collections import worklist, workspace
from ar_collections.models import DisputeReason, ExceptionRequest, WorkItem, WorkKind, WorkStatus
from arcrm.dates import format_day
from customers.models import EventKind, Segment, TimelineEvent

from .conftest import frozen
from .test_ladder_finished import ON, ladder_taken

pytestmark = pytest.mark.usefixtures("default_ladders")

HTMX = {"HX-Request": "true"}
BACK = ON + dt.timedelta(days=worklist.LADDER_WATCH_DAYS)
WATCH = {"decision": "watch", "note": "Spoke to their owner: a large customer pays them on the 20th."}


@pytest.fixture
def account(make_account):
    return make_account(Segment.DISTRESSED, name="Ashford Civil Engineering")


@pytest.fixture
def item(account, collector) -> WorkItem:
    """The account's "ladder finished" item, open on the collector's list on ON."""
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    [item] = ladder_items(account)
    return item


@pytest.fixture
def on_day():
    with frozen(ON):
        yield


def ladder_items(account) -> list[WorkItem]:
    return list(WorkItem.objects.filter(customer=account, kind=WorkKind.LADDER_ENDED).order_by("pk"))


def work_events(account) -> list[str]:
    return list(account.events.filter(kind=EventKind.WORK).order_by("pk").values_list("summary", flat=True))


def done_url(item: WorkItem) -> str:
    return reverse("collections:work_item_change", args=[item.pk, "done"])


def decide_url(item: WorkItem) -> str:
    return reverse("collections:work_item_decide", args=[item.pk])


def text_of(response) -> str:
    return " ".join(response.content.decode().split())


def decided(item: WorkItem, collector, *, decision: str = "watch", on: dt.date = ON) -> None:
    with frozen(on):
        worklist.item_complete(item=item, actor=collector, decision=decision, note="Agreed by phone.")


# --- Done asks what was decided -------------------------------------------------------------


@pytest.mark.usefixtures("on_day")
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
@pytest.mark.parametrize("posted, said", [
    ({}, "Choose what was decided"),
    ({"note": "Called them."}, "Choose what was decided"),
    ({"decision": "watch"}, "Say in a note what was agreed or asked"),
    ({"decision": "watch", "note": "   "}, "Say in a note what was agreed or asked"),
    ({"decision": "forget_it", "note": "Called them."}, "Select a valid choice"),
], ids=["nothing", "no decision", "no note", "blank note", "unknown decision"])
def test_done_without_a_decision_and_a_note_is_refused_and_changes_nothing(
    client, collector, account, item, headers, posted, said
):
    events_before = TimelineEvent.objects.count()
    client.force_login(collector)

    response = client.post(done_url(item), posted, headers=headers)

    assert response.status_code == 422
    assert said in text_of(response)
    item.refresh_from_db()
    assert (item.status, item.done_at, item.done_by) == (WorkStatus.OPEN, None, None)
    assert TimelineEvent.objects.count() == events_before


@pytest.mark.usefixtures("on_day")
def test_refused_without_htmx_the_form_comes_back_as_a_page_with_what_was_typed(client, collector, item):
    client.force_login(collector)

    response = client.post(done_url(item), {"note": "Their owner promised to call back."})

    html = response.content.decode()
    assert "<h1" in html and "what was decided for Ashford Civil Engineering?" in html
    assert "Their owner promised to call back." in html
    assert f'action="{done_url(item)}"' in html


@pytest.mark.usefixtures("on_day")
def test_refused_with_htmx_only_the_item_s_decision_panel_is_swapped_with_the_errors(client, collector, item):
    client.force_login(collector)

    response = client.post(done_url(item), {"decision": "legal"}, headers=HTMX)

    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == f"#work-{item.pk}-decision"
    assert response.headers["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    assert "<html" not in html
    assert f'<section id="work-{item.pk}-decision"' in html
    assert re.search(r'<input type="radio" name="decision" value="legal"[^>]* checked>', html)
    assert "Say in a note what was agreed or asked" in html


@pytest.mark.usefixtures("on_day")
def test_done_with_a_decision_and_a_note_records_both_on_the_timeline_and_ends_the_item(
    client, collector, account, item
):
    client.force_login(collector)

    response = client.post(done_url(item), WATCH)

    assert response.status_code == 302
    assert response.url.startswith(reverse("collections:worklist"))
    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)
    recorded = TimelineEvent.objects.for_subject(item).order_by("pk").last()
    assert recorded.summary == (
        f"Worklist: ladder finished, decided: Keep watching (back on the list on {format_day(BACK)} if money "
        f"is still overdue with nothing holding it): {WATCH['note']} — {item.title}")
    assert (recorded.details["decision"], recorded.details["note"]) == ("watch", WATCH["note"])
    assert recorded.actor == collector
    # The account page's timeline says it.
    page = client.get(reverse("customers:detail", args=[account.pk]))
    assert "decided: Keep watching" in text_of(page)
    assert WATCH["note"] in text_of(page)


@pytest.mark.usefixtures("on_day")
@pytest.mark.parametrize("decision, label", [
    ("plan", "Called and agreed a payment plan or a promise"),
    ("exception", "Asked a manager for an exception"),
    ("write_off", "Proposed a write-off"),
    ("legal", "Passed to legal or a collection agency"),
])
def test_each_decision_is_recorded_in_its_words(client, collector, account, item, decision, label):
    # What the decision says was agreed or asked is on record (a write-off is proposed by the decision).
    first = account.invoices.order_by("pk").first()
    if decision == "plan":
        workspace.promise_record(customer=account, actor=collector, amount=first.open_amount, on=ON,
                                 promised_on=ON + dt.timedelta(days=7), invoices=[first])
    if decision == "exception":
        workspace.exception_request(customer=account, actor=collector, kind="other", on=ON,
                                    reason="Settle for half")
    client.force_login(collector)

    client.post(done_url(item), {"decision": decision, "note": "See the call of today."})

    item.refresh_from_db()
    assert item.status == WorkStatus.DONE
    assert work_events(account)[-1].startswith(f"Worklist: ladder finished, decided: {label} (")


@pytest.mark.usefixtures("on_day")
def test_done_with_htmx_swaps_the_item_out_in_place(client, collector, item):
    client.force_login(collector)

    response = client.post(done_url(item), WATCH, headers=HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert f'<li class="work-item work-item-gone" id="work-{item.pk}">' in html
    assert "Done: keep watching." in html
    item.refresh_from_db()
    assert item.status == WorkStatus.DONE


def test_the_service_refuses_a_finished_ladder_s_item_without_a_decision(account, collector, item):
    events_before = TimelineEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        worklist.item_complete(item=item, actor=collector)

    assert set(refused.value.message_dict) == {"decision", "note"}
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert TimelineEvent.objects.count() == events_before


# --- The form: a page, or a panel in the item ---------------------------------------------


@pytest.mark.usefixtures("on_day")
def test_the_list_s_done_on_a_finished_ladder_opens_the_form_and_other_items_keep_one_click(
    client, collector, item, make_customer
):
    call = WorkItem.objects.create(key="test:call", kind=WorkKind.CALL, customer=make_customer(),
                                   assignee=collector, title="Call about INV-1", due_on=ON)
    client.force_login(collector)

    html = client.get(reverse("collections:worklist")).content.decode()

    assert f'<a class="button" href="{decide_url(item)}" hx-get="{decide_url(item)}"' in html
    assert f'<div id="work-{item.pk}-decision"></div>' in html
    assert f'action="{done_url(item)}"' not in html
    assert f'action="{done_url(call)}"' in html


def ids_in(html: str) -> list[str]:
    """Every id attribute in the markup, in order, duplicates kept."""
    class Ids(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.ids: list[str] = []

        def handle_starttag(self, tag, attrs) -> None:
            self.ids += [value for name, value in attrs if name == "id"]

    parser = Ids()
    parser.feed(html)
    parser.close()
    return parser.ids


def duplicates(ids: list[str]) -> list[str]:
    return sorted(name for name, n in Counter(ids).items() if n > 1)


@pytest.mark.usefixtures("on_day")
def test_no_id_is_used_twice_on_the_list_with_the_decision_panel_open_or_on_its_own_page(
    client, collector, item, make_customer
):
    WorkItem.objects.create(key="test:call", kind=WorkKind.CALL, customer=make_customer(),
                            assignee=collector, title="Call about INV-1", due_on=ON)
    client.force_login(collector)

    page = client.get(reverse("collections:worklist")).content.decode()
    panel = client.get(decide_url(item), headers=HTMX).content.decode()
    refused = client.post(done_url(item), {"note": "Called them."}, headers=HTMX).content.decode()
    own_page = client.get(decide_url(item)).content.decode()

    slot = f'<div id="work-{item.pk}-decision"></div>'
    assert slot in page
    # As in the browser once htmx has swapped the panel (or the refused one) in for its slot.
    for opened in (page.replace(slot, panel), page.replace(slot, refused)):
        ids = ids_in(opened)
        assert f"work-{item.pk}-decision" in ids
        assert duplicates(ids) == []
    assert duplicates(ids_in(page)) == duplicates(ids_in(own_page)) == []


@pytest.mark.usefixtures("on_day")
def test_without_htmx_the_form_is_a_page_of_its_own(client, collector, item):
    client.force_login(collector)

    response = client.get(decide_url(item))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and "<h1" in html
    assert item.title in html
    for label in ("Keep watching", "Passed to legal or a collection agency", "Proposed a write-off"):
        assert label in html
    assert f'<form method="post" action="{done_url(item)}" novalidate>' in html


@pytest.mark.usefixtures("on_day")
def test_with_htmx_the_form_is_a_panel_posting_in_place(client, collector, item):
    client.force_login(collector)

    response = client.get(decide_url(item), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.strip().startswith(f'<section id="work-{item.pk}-decision"')
    assert f'hx-post="{done_url(item)}" hx-target="#work-{item.pk}" hx-swap="outerHTML"' in html


@pytest.mark.usefixtures("on_day")
def test_other_items_have_no_decision_form(client, collector, make_customer):
    call = WorkItem.objects.create(key="test:call", kind=WorkKind.CALL, customer=make_customer(),
                                   assignee=collector, title="Call about INV-1", due_on=ON)
    client.force_login(collector)

    assert client.get(decide_url(call)).status_code == 404
    response = client.post(done_url(call))

    assert response.status_code == 302
    call.refresh_from_db()
    assert call.status == WorkStatus.DONE


@pytest.mark.usefixtures("on_day")
def test_the_wrong_method_is_refused(client, collector, item):
    client.force_login(collector)

    assert client.get(done_url(item)).status_code == 405
    assert client.post(decide_url(item), WATCH).status_code == 405
    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN


@pytest.mark.usefixtures("on_day")
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_a_collector_whose_item_it_is_not_is_refused(client, other_collector, viewer, item, headers):
    events_before = TimelineEvent.objects.count()
    for someone in (other_collector, viewer):
        client.force_login(someone)

        assert client.get(decide_url(item), headers=headers).status_code == 403
        assert client.post(done_url(item), WATCH, headers=headers).status_code == 403

    item.refresh_from_db()
    assert item.status == WorkStatus.OPEN
    assert TimelineEvent.objects.count() == events_before


@pytest.mark.usefixtures("on_day")
def test_a_manager_may_record_the_decision_from_everyone_s_list_and_goes_back_to_it(client, manager, item):
    client.force_login(manager)

    page = client.get(decide_url(item) + "?list=everyone").content.decode()
    response = client.post(done_url(item), {**WATCH, "list": "everyone"})

    assert '<input type="hidden" name="list" value="everyone">' in page
    assert response.status_code == 302
    assert "collector=everyone" in response.url
    item.refresh_from_db()
    assert (item.status, item.done_by) == (WorkStatus.DONE, manager)


# --- It comes back while the money is left to nobody --------------------------------------------


@pytest.mark.parametrize("decision", ["watch", "legal"])
def test_the_account_comes_back_after_the_days_while_the_money_is_still_overdue_and_unheld(
    account, collector, item, decision
):
    decided(item, collector, decision=decision)

    worklist.worklist_refresh(on=BACK - dt.timedelta(days=1))
    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE]

    for day in (BACK, BACK + dt.timedelta(days=1)):
        worklist.worklist_refresh(on=day)

    first, back = ladder_items(account)
    assert first.pk == item.pk and first.status == WorkStatus.DONE
    assert (back.status, back.assignee, back.due_on) == (WorkStatus.OPEN, collector, BACK)
    assert back.key == f"ladder_ended:cycle:{item.action.cycle_id}:{BACK.isoformat()}"
    assert back.title.startswith(
        "The ladder has no step left: EUR 1,200.00 still overdue with nothing holding it, "
        f"{worklist.LADDER_WATCH_DAYS} days after its item was ticked off (decided: ")
    assert back in worklist.items_for(assignee=collector, on=BACK)
    assert work_events(account)[-1] == f"Worklist: back — {back.title}"


def test_a_write_off_proposed_holds_the_money_until_a_manager_rejects_it(account, collector, manager, item):
    decided(item, collector, decision="write_off")

    worklist.worklist_refresh(on=BACK)
    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE]

    proposed = ExceptionRequest.objects.get(customer=account)
    with frozen(BACK):
        workspace.exception_decide(request=proposed, manager=manager, approve=False, note="Keep chasing",
                                   on=BACK)
    worklist.worklist_refresh(on=BACK)

    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE, WorkStatus.OPEN]


def test_ticked_off_again_it_comes_back_again_the_same_number_of_days_later(account, collector, item):
    decided(item, collector)
    worklist.worklist_refresh(on=BACK)
    [_, back] = ladder_items(account)

    decided(back, collector, on=BACK)
    worklist.worklist_refresh(on=BACK + dt.timedelta(days=worklist.LADDER_WATCH_DAYS))

    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE, WorkStatus.DONE, WorkStatus.OPEN]


def test_it_does_not_come_back_once_the_money_is_paid(account, collector, item):
    decided(item, collector)
    with frozen(ON + dt.timedelta(days=3)):
        workspace.payment_record(customer=account, amount=Decimal("1200.00"), currency="EUR",
                                 received_on=ON + dt.timedelta(days=3), reference="BANK-1",
                                 allocations=[(i, i.open_amount) for i in account.invoices.all()])

    worklist.worklist_refresh(on=BACK)

    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE]


def test_it_does_not_come_back_while_a_promise_holds_the_money(account, collector, item):
    decided(item, collector)
    agreed = ON + dt.timedelta(days=5)
    with frozen(agreed):
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"), on=agreed,
                                 promised_on=BACK + dt.timedelta(days=3), invoices=account.invoices.all())

    worklist.worklist_refresh(on=BACK)

    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE]


def test_it_does_not_come_back_while_a_pause_holds_the_account(account, collector, item):
    decided(item, collector)
    paused = ON + dt.timedelta(days=7)
    with frozen(paused):
        workspace.pause_set(customer=account, actor=collector, ends_on=ON + dt.timedelta(days=20),
                            reason="Their owner is in hospital; the manager agreed to wait.", on=paused)

    worklist.worklist_refresh(on=BACK)
    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE]

    # Once the pause is over, with the money still overdue, it does.
    worklist.worklist_refresh(on=ON + dt.timedelta(days=21))
    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE, WorkStatus.OPEN]


def test_it_comes_back_for_what_disputes_of_part_of_the_money_leave_unheld(account, collector, item):
    decided(item, collector)
    disputed = ON + dt.timedelta(days=3)
    with frozen(disputed):
        for invoice in account.invoices.all():
            workspace.dispute_open(customer=account, actor=collector, invoice=invoice, on=disputed,
                                   reason=DisputeReason.QUANTITY, description="Ten pallets short.",
                                   amount=Decimal("100.00"))

    worklist.worklist_refresh(on=BACK)

    _, back = ladder_items(account)
    assert back.status == WorkStatus.OPEN
    assert back.title.startswith(
        "The ladder has no step left: EUR 1,000.00 still overdue with nothing holding it, ")


def test_a_promise_broken_after_it_came_back_leaves_one_item_open(account, collector, item):
    decided(item, collector)
    worklist.worklist_refresh(on=BACK)
    with frozen(BACK):
        promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("1200.00"),
                                           on=BACK, promised_on=BACK + dt.timedelta(days=2),
                                           invoices=account.invoices.all())
    late = promise.broken_after + dt.timedelta(days=1)
    with frozen(late):
        workspace.commitments_check(on=late)
        worklist.worklist_refresh(on=late)

    assert [i.status for i in ladder_items(account)] == [WorkStatus.DONE, WorkStatus.OPEN]


# --- In a real browser ------------------------------------------------------------------------


@pytest.fixture
def ashford_in_browser(make_customer, make_invoice, collector):
    """Carla's list on the real today (a frozen server clock would expire the
    session cookie in Chromium's past): Ashford's finished ladder, first. Written
    before the browser opens (see browser_page)."""
    from django.utils import timezone

    today = timezone.localdate()
    ashford = make_customer(name="Ashford Civil Engineering", segment=Segment.DISTRESSED)
    make_invoice(ashford, issued=today - dt.timedelta(days=185), due=today - dt.timedelta(days=155),
                 amount="28857.64")
    worklist.item_add(kind=WorkKind.LADDER_ENDED, key="ladder_ended:test", customer=ashford, due_on=today,
                      title="The ladder has no step left: EUR 28,857.64 overdue, and nothing more goes out; "
                      "decide the next action")
    return ashford


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_done_opens_the_decision_in_the_item_refuses_it_empty_and_then_takes_it(
    ashford_in_browser, browser_page
):
    from playwright.sync_api import expect

    from .conftest import log_in

    page = browser_page
    log_in(page, "carla")
    page.goto("/collections/worklist/")
    item = page.locator("ol.worklist li.work-item").first
    expect(item).to_contain_text("Ashford Civil Engineering")

    item.get_by_role("link", name=re.compile("^Done")).click()
    panel = item.locator(".work-decision")
    expect(panel.get_by_role("radio").first).to_be_focused()
    panel.get_by_role("button", name="Record and mark done").click()
    expect(panel).to_contain_text("Choose what was decided")
    expect(panel).to_contain_text("Say in a note what was agreed or asked")
    expect(page).to_have_url(re.compile(r"/collections/worklist/$"))

    panel.get_by_label("Keep watching").check()
    panel.get_by_label(re.compile("^Note")).fill("Owner says a large customer pays them on the 20th.")
    panel.get_by_role("button", name="Record and mark done").click()

    expect(page.locator("ol.worklist")).to_contain_text("Done: keep watching.")
    page.goto(reverse("customers:detail", args=[ashford_in_browser.pk]))
    expect(page.locator("#timeline-events li.event").first).to_contain_text(
        "decided: Keep watching (back on the list on ")
    expect(page.locator("#timeline-events li.event").first).to_contain_text(
        "Owner says a large customer pays them on the 20th.")
    page.goto("/collections/worklist/")
    expect(page.locator("#worklist")).to_contain_text("Nothing to do today.")
