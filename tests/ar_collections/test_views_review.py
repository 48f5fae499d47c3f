"""The review queue: steps of ladders that do not send on their own, sent or
skipped by the account's collector (or a manager)."""

from __future__ import annotations

import datetime as dt
import html as html_text
import re
from urllib.parse import urljoin

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ar_collections.delivery import message_id
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    StepAction,
)
from arcrm.dates import format_day
from arcrm.roles import sync_role_groups
from customers.models import CollectorAbsence, Contact, ContactAbsence, EventKind, TimelineEvent
from tests.ar_collections.test_views_approvals import marked_since, settled_since

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
QUEUE = reverse("collections:review")
pytestmark = pytest.mark.usefixtures("_frozen_today")



@pytest.fixture
def make_action(make_invoice):
    """make_action(customer) → a first friendly e-mail step of the prompt ladder,
    waiting for review and listing one overdue invoice of EUR 100.00."""

    def make(customer, *, status=ActionStatus.IN_REVIEW, amount="100.00") -> DunningAction:
        run, _ = DunningRun.objects.get_or_create(run_date=TODAY)
        cycle, _ = DunningCycle.objects.get_or_create(
            customer=customer, closed_on=None, defaults={"number": 1, "opened_on": TODAY}
        )
        step = DunningStep.objects.filter(policy__segment="prompt", position=1).get()
        action = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=status,
            planned_on=TODAY, pay_by=TODAY + dt.timedelta(days=10),
        )
        invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount=amount)
        DunningActionInvoice.objects.create(
            action=action, invoice=invoice, open_amount=invoice.open_amount, currency=invoice.currency
        )
        return action

    return make


@pytest.fixture
def action(customer, make_contact, make_action) -> DunningAction:
    make_contact(customer, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    return make_action(customer)


def url(action) -> str:
    return reverse("collections:action_review", args=[action.pk])


def state(action) -> tuple:
    action.refresh_from_db()
    return action.status, action.skip_reason, action.reviewed_by_id, TimelineEvent.objects.count()


# --- The queue -------------------------------------------------------------------


def test_a_collector_covering_for_an_absent_colleague_sees_the_steps_waiting_on_their_accounts(
    client, collector, other_collector, make_customer, make_action
):
    mine = make_action(make_customer(name="Mine Ltd"))
    ottos = make_action(make_customer(name="Otto's Ltd", collector=other_collector))
    CollectorAbsence.objects.create(user=other_collector, stand_in=collector, recorded_by=other_collector,
                                    starts_on=TODAY, ends_on=TODAY)
    client.force_login(collector)

    response = client.get(QUEUE)

    assert {a.pk for a in response.context["items"]} == {mine.pk, ottos.pk}


def test_a_collector_sees_the_steps_waiting_on_their_own_accounts_only(
    client, collector, other_collector, make_customer, make_action
):
    mine = make_action(make_customer(name="Mine Ltd"), amount="123.45")
    make_action(make_customer(name="Already Sent Ltd"), status=ActionStatus.DONE)
    make_action(make_customer(name="Otto's Ltd", collector=other_collector))
    client.force_login(collector)

    response = client.get(QUEUE)

    html = response.content.decode()
    assert response.status_code == 200
    assert [a.pk for a in response.context["items"]] == [mine.pk]
    assert "Mine Ltd" in html
    assert "Otto&#x27;s Ltd" not in html and "Already Sent Ltd" not in html
    assert "EUR 123.45" in html
    assert "Friendly" in html and "E-mail" in html
    assert f'action="{url(mine)}"' in html and 'method="post"' in html
    assert f'hx-post="{url(mine)}"' in html


def test_a_manager_sees_every_collectors_steps_and_may_pick_one_collector(
    client, manager, collector, other_collector, make_customer, make_action
):
    carla = make_action(make_customer(name="Carla's Customer"))
    otto = make_action(make_customer(name="Otto's Customer", collector=other_collector))
    client.force_login(manager)

    everyone = client.get(QUEUE)
    only_otto = client.get(QUEUE, {"collector": other_collector.pk})
    nonsense = client.get(QUEUE, {"collector": "nobody"})

    assert {a.pk for a in everyone.context["items"]} == {carla.pk, otto.pk}
    assert [a.pk for a in only_otto.context["items"]] == [otto.pk]
    assert {a.pk for a in nonsense.context["items"]} == {carla.pk, otto.pk}


def test_the_queue_previews_where_the_step_would_go_if_sent_now(
    client, collector, customer, action, make_contact
):
    anna = Contact.objects.get(customer=customer, name="Anna Clerk")
    ben = make_contact(customer, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(
        contact=anna, starts_on=TODAY - dt.timedelta(days=3), ends_on=dt.date(2025, 8, 15), delegate=ben
    )
    client.force_login(collector)

    html = client.get(QUEUE).content.decode()

    for text in [
        "If sent now, it goes", "E-mail", "Ben Backup", "ben@acme.test",
        "Anna Clerk away until 15 Aug: sent to Ben Backup", "15 Aug 2025",
    ]:
        assert text in html, text


def test_a_step_that_would_become_a_call_is_offered_as_a_call_task_not_sent(
    client, collector, customer, make_action
):
    # No contact on file: the e-mail step becomes a call task for the collector.
    make_action(customer)
    client.force_login(collector)

    html = client.get(QUEUE).content.decode()

    buttons = re.findall(r'<button type="submit" name="decision" value="send"[^>]*>([^<]*)</button>', html)
    assert buttons == ["Add the call to the worklist"]


def test_a_step_that_goes_in_writing_is_offered_to_send(client, collector, action):
    client.force_login(collector)

    html = client.get(QUEUE).content.decode()

    buttons = re.findall(r'<button type="submit" name="decision" value="send"[^>]*>([^<]*)</button>', html)
    assert buttons == ["Send"]


def test_the_queue_shows_the_pay_by_date_the_step_gives_if_sent_now(client, collector, action):
    """Planned three days ago with ten days to pay: sent today, it gives ten days from today."""
    DunningAction.objects.filter(pk=action.pk).update(planned_on=TODAY - dt.timedelta(days=3),
                                                      pay_by=TODAY + dt.timedelta(days=7))
    client.force_login(collector)

    page = " ".join(client.get(QUEUE).content.decode().split())

    assert "<dt>Pay by</dt> <dd>15 Aug 2025</dd>" in page
    assert "12 Aug 2025" not in page


def test_a_step_that_would_go_as_a_letter_shows_the_letter_s_pay_by_date(
    client, collector, customer, make_action, make_contact
):
    make_contact(customer, name="Anna Clerk", email="", postal_address="Main Street 1",
                 is_primary_billing=True)
    action = make_action(customer)
    DunningAction.objects.filter(pk=action.pk).update(pay_by=TODAY + dt.timedelta(days=2))
    client.force_login(collector)

    page = " ".join(client.get(QUEUE).content.decode().split())

    assert "no e-mail address: letter" in page
    # Posted the next working day (Wednesday 6 Aug), then the policy's 5 days between contacts.
    assert "<dt>Pay by</dt> <dd>11 Aug 2025</dd>" in page


def test_an_invoice_of_the_step_settled_since_is_marked_and_what_is_owed_now_is_totalled(
    client, collector, manager, action, make_invoice
):
    """A step reviewed a week after it was planned: an invoice paid or written
    off meanwhile must not read as owed, nor count in what the step asks now."""
    invoices = settled_since(action, manager=manager, make_invoice=make_invoice)
    client.force_login(collector)

    html = " ".join(client.get(QUEUE).content.decode().split())

    assert marked_since(html, invoices)
    totals = re.findall(r'<th scope="row" colspan="2">(.*?)</th>\s*<td class="num">(.*?)</td>', html)
    assert totals == [("Total", "<strong>EUR 300.00</strong>"), ("Owed now", "<strong>EUR 40.00</strong>")]


def test_a_step_whose_invoices_are_unchanged_shows_only_its_total(client, collector, action):
    client.force_login(collector)

    html = client.get(QUEUE).content.decode()

    assert "EUR 100.00" in html
    assert "Owed now" not in html


def test_with_htmx_the_queue_comes_as_a_fragment(client, collector, action):
    client.force_login(collector)

    response = client.get(QUEUE, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="review-queue"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_people_who_only_read_may_not_open_the_queue(client, viewer):
    client.force_login(viewer)

    assert client.get(QUEUE).status_code == 403
    assert client.get(QUEUE, headers=HTMX).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in_for_the_queue(client):
    response = client.get(QUEUE)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("rows", [2, 20])
def test_the_queue_costs_the_same_number_of_queries_for_2_or_20_steps(
    client, manager, collector, make_customer, make_contact, make_action, django_assert_num_queries,
    rows,
):
    for n in range(rows):
        customer = make_customer(name=f"Customer {n}")
        # Away with a stand-in who is away too: the preview follows the chain.
        anna, ben, cleo = (make_contact(customer, name=name) for name in ("Anna", "Ben", "Cleo"))
        Contact.objects.filter(pk=anna.pk).update(is_primary_billing=True)
        for away, stand_in in ((anna, ben), (ben, cleo)):
            ContactAbsence.objects.create(contact=away, starts_on=TODAY, ends_on=TODAY, delegate=stand_in)
        make_action(customer)
    client.force_login(manager)

    # session, user, role groups, permissions (2), collector choices, count,
    # actions with customer/step/recipient, their invoice lines, contacts, absences,
    # the steps' late fees, the office's holidays
    with django_assert_num_queries(13):
        response = client.get(QUEUE)

    assert len(response.context["items"]) == rows
    assert {a.preview.recipient for a in response.context["items"]} == {"Cleo"}


# --- Pages ---------------------------------------------------------------------------------


def link(response, rel: str) -> str | None:
    """The queue URL a page's "next" or "prev" link leads to (its href, unescaped,
    as the browser reads it on the list's page)."""
    found = re.search(rf'<a href="([^"]*)" rel="{rel}"', response.content.decode())
    return urljoin(QUEUE, html_text.unescape(found.group(1))) if found else None


def listed(response) -> list[int]:
    return [a.pk for a in response.context["items"]]


@pytest.fixture
def sixty_steps(collector, make_customer, make_action) -> list[int]:
    """60 steps waiting, their ids in the queue's order (planned day, customer name, id)."""
    return [make_action(make_customer(name=f"Customer {n:02d}")).pk for n in range(60)]


def test_steps_decided_in_place_on_a_page_do_not_push_others_past_the_next_page(
    client, collector, sixty_steps
):
    """Sent or skipped on the first page, a step stays there showing what became
    of it, but leaves the queue: the next page must still start right after the
    first page's last step, or the steps moved up into the gap are never reviewed."""
    client.force_login(collector)
    first = client.get(QUEUE)
    assert listed(first) == sixty_steps[:50]
    for pk in sixty_steps[:5]:
        client.post(reverse("collections:action_review", args=[pk]), {"decision": "skip", "note": "Paid"},
                    headers=HTMX)

    second = client.get(link(first, "next"), headers=HTMX)

    assert listed(second) == sixty_steps[50:]
    assert link(second, "next") is None
    back = client.get(link(second, "prev"))
    # Five fewer before page two: the first page, from the top, with no way further back.
    assert listed(back) == sixty_steps[5:55]
    assert link(back, "prev") is None


def test_page_links_keep_the_chosen_collector(client, manager, collector, other_collector, make_customer,
                                              make_action, sixty_steps):
    make_action(make_customer(name="Customer 00 of Otto's", collector=other_collector))
    client.force_login(manager)

    next_url = link(client.get(QUEUE, {"collector": collector.pk}), "next")

    assert f"collector={collector.pk}" in next_url
    assert listed(client.get(next_url)) == sixty_steps[50:]


@pytest.mark.parametrize("position", ["after=nonsense", "before=WzFd", "after="])
def test_a_page_position_the_queue_did_not_hand_out_is_a_bad_request(client, collector, action, position):
    client.force_login(collector)

    response = client.get(f"{QUEUE}?{position}")

    if position == "after=":  # no position: the first page
        assert listed(response) == [action.pk]
    else:
        assert response.status_code == 400
        assert "is not a position in this list" in response.content.decode()


# --- Sending or skipping ---------------------------------------------------------


def test_sending_a_step_hands_it_to_the_workers_and_answers_at_once(
    client, collector, action, silent_smtp, django_capture_on_commit_callbacks
):
    """A mail server that takes the connection and never answers does not hold
    the page: the step goes to the delivery workers once the review commits."""
    client.force_login(collector)

    with django_capture_on_commit_callbacks() as handed_over:
        response = client.post(url(action), {"decision": "send", "note": ""})

    assert response.status_code == 302
    action.refresh_from_db()
    assert (action.status, action.reviewed_by, action.attempts) == (ActionStatus.PLANNED, collector, 0)
    assert silent_smtp.connections == []
    assert len(handed_over) == 1
    page = client.get(QUEUE).content.decode()
    assert ("Acme Tools: e-mail to Anna Clerk queued for sending; what comes of it shows on the "
            "account&#x27;s timeline." in page)


def sent_message(client, action) -> str:
    """What the page says once `action` is sent from the queue (the workers not yet done)."""
    response = client.post(url(action), {"decision": "send", "note": ""}, headers=HTMX)
    assert response.status_code == 200
    [said] = re.findall(r'<p class="message[^"]*">(.*?)</p>', response.content.decode(), re.S)
    return html_text.unescape(" ".join(said.split()))


def test_a_step_that_goes_as_a_letter_says_it_waits_in_the_print_queue_once_written(
    client, collector, customer, make_action, make_contact, django_capture_on_commit_callbacks
):
    make_contact(customer, name="Anna Clerk", email="", postal_address="Main Street 1",
                 is_primary_billing=True)
    action = make_action(customer)
    client.force_login(collector)

    with django_capture_on_commit_callbacks():
        said = sent_message(client, action)

    assert said == ("Acme Tools: letter to Anna Clerk queued for writing; once written it waits in the "
                    "print queue to be posted.")


def test_a_step_that_becomes_a_call_says_whose_worklist_it_goes_on_and_that_nothing_is_sent(
    client, collector, customer, make_action, django_capture_on_commit_callbacks
):
    # No contact on file: the e-mail step becomes a call task for the collector.
    action = make_action(customer)
    client.force_login(collector)

    with django_capture_on_commit_callbacks():
        said = sent_message(client, action)

    assert said == ("Acme Tools: a call to Acme Tools goes on the worklist of carla; "
                    "nothing is sent to the customer.")


def test_a_call_step_reviewed_while_its_collector_is_away_goes_on_the_stand_in_s_worklist(
    client, collector, other_collector, manager, customer, make_action, make_contact,
    django_capture_on_commit_callbacks
):
    make_contact(customer, name="Anna Clerk", email="anna@acme.test", phone="+49 30 1234",
                 is_primary_billing=True)
    action = make_action(customer)
    DunningStep.objects.filter(pk=action.step_id).update(action=StepAction.CALL_TASK)
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=TODAY, ends_on=TODAY)
    client.force_login(manager)

    with django_capture_on_commit_callbacks():
        said = sent_message(client, action)

    assert said == ("Acme Tools: a call to Anna Clerk goes on the worklist of otto (covering for carla); "
                    "nothing is sent to the customer.")


def test_a_step_skipped_without_htmx_opens_the_queue_at_the_next_step(client, collector, make_customer,
                                                                      make_action):
    first, second, third = (make_action(make_customer(name=f"Customer {n}")) for n in "ABC")
    client.force_login(collector)

    response = client.post(url(second), {"decision": "skip", "note": "Paid by phone"})

    assert response.status_code == 302
    page_url, _, anchor = response.url.partition("#")
    page = client.get(page_url)
    assert anchor == f"action-{third.pk}"
    assert f'<article id="{anchor}"' in page.content.decode()
    assert listed(page) == [first.pk, third.pk]


def test_the_last_step_reviewed_without_htmx_opens_the_queue_at_its_count(client, collector, action):
    client.force_login(collector)

    response = client.post(url(action), {"decision": "skip", "note": "Paid by phone"})

    assert response.url == f"{QUEUE}#review-queue"
    page = client.get(QUEUE).content.decode()
    assert '<section id="review-queue"' in page and "0 steps waiting for review" in page


def test_with_htmx_a_step_sent_shows_as_queued_in_place(
    client, collector, action, silent_smtp, django_capture_on_commit_callbacks
):
    client.force_login(collector)

    with django_capture_on_commit_callbacks():
        response = client.post(url(action), {"decision": "send", "note": ""}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<article id="action-{action.pk}"')
    assert f'hx-post="{url(action)}"' not in html
    assert "Queued for sending" in html and "reviewed by carla" in html
    assert "Acme Tools: e-mail to Anna Clerk queued for sending" in html
    assert silent_smtp.connections == []


def test_a_step_sent_late_shows_the_pay_by_date_it_goes_out_with_not_the_planned_one(
    client, collector, action, silent_smtp, django_capture_on_commit_callbacks
):
    """Planned three days ago with ten days to pay: the card that replaces the
    form says it is being sent, by e-mail to Anna, with the date delivery gives
    it today (15 Aug), not the one planned (12 Aug) nor an empty channel."""
    DunningAction.objects.filter(pk=action.pk).update(planned_on=TODAY - dt.timedelta(days=3),
                                                      pay_by=TODAY + dt.timedelta(days=7))
    client.force_login(collector)

    with django_capture_on_commit_callbacks():
        response = client.post(url(action), {"decision": "send", "note": ""}, headers=HTMX)

    page = " ".join(response.content.decode().split())
    assert "Being sent, it goes" in page and "How it went out" not in page
    assert "<dt>Channel</dt> <dd>E-mail</dd>" in page
    assert "Anna Clerk" in page and "anna@acme.test" in page
    assert "<dt>Pay by</dt> <dd>15 Aug 2025</dd>" in page
    assert "12 Aug 2025" not in page


def test_a_step_once_delivered_shows_the_channel_and_pay_by_date_recorded(
    client, collector, action, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    DunningAction.objects.filter(pk=action.pk).update(planned_on=TODAY - dt.timedelta(days=3),
                                                      pay_by=TODAY + dt.timedelta(days=7))
    client.force_login(collector)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url(action), {"decision": "send", "note": ""}, headers=HTMX)
    action.refresh_from_db()
    assert action.status == ActionStatus.DONE

    page = " ".join(client.get(url(action)).content.decode().split())

    assert "How it went out" in page
    assert "<dt>Channel</dt> <dd>E-mail</dd>" in page
    assert f"<dt>Pay by</dt> <dd>{action.pay_by:%-d %b %Y}</dd>" in page
    assert action.pay_by == dt.date(2025, 8, 15)


def test_a_skipped_step_does_not_claim_to_have_gone_out(client, collector, action):
    client.force_login(collector)

    response = client.post(url(action), {"decision": "skip", "note": "Paid by phone"}, headers=HTMX)

    page = " ".join(response.content.decode().split())
    assert "Skipped" in page
    assert "How it went out" not in page and "<dt>Pay by</dt>" not in page


@pytest.fixture
def groups_and_ladders(transactional_db, default_ladders) -> None:
    """The role groups and ladders, whatever an earlier transactional test's flush left behind."""
    sync_role_groups()


@pytest.mark.slow
def test_a_step_sent_from_the_queue_is_delivered_by_a_worker_and_lands_on_the_timeline(
    app_worker_smtp, app_worker, groups_and_ladders, client, collector, action, wait_for
):
    client.force_login(collector)

    response = client.post(url(action), {"decision": "send", "note": ""}, headers=HTMX)

    assert "Acme Tools: e-mail to Anna Clerk queued for sending" in response.content.decode()
    wait_for(lambda: DunningAction.objects.filter(pk=action.pk, status=ActionStatus.DONE).exists(),
             timeout=60, message="the worker to deliver the reviewed step")
    [message] = app_worker_smtp.messages
    assert message["To"] == "Anna Clerk <anna@acme.test>"
    assert message["Message-ID"] == message_id(action.pk)
    assert list(TimelineEvent.objects.filter(customer=action.customer).order_by("pk")
                .values_list("summary", flat=True)) == [
        "Friendly reminder (step 1, E-mail) reviewed by carla: send",
        f"Friendly reminder e-mailed to Anna Clerk: 1 invoice, EUR 100.00, pay by "
        f"{format_day(DunningAction.objects.get(pk=action.pk).pay_by)}",
    ]
    assert "collections.deliver_actions" in app_worker.output()


def test_skipping_a_step_with_a_note_records_why(client, collector, action):
    client.force_login(collector)

    response = client.post(url(action), {"decision": "skip", "note": "Paid by phone today"})

    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == ActionStatus.SKIPPED
    assert action.skip_reason == "Paid by phone today"
    assert action.reviewed_by == collector
    event = TimelineEvent.objects.get(customer=action.customer)
    assert event.kind == EventKind.DUNNING
    assert event.actor == collector
    assert event.details["before"] == {"status": "in_review"}
    assert event.details["after"] == {"status": "skipped"}


def test_with_htmx_the_decided_step_replaces_its_form(client, collector, action):
    client.force_login(collector)

    response = client.post(url(action), {"decision": "skip", "note": "Customer asked to wait"}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<article id="action-{action.pk}"')
    assert "<html" not in html
    assert "Skipped" in html and "Customer asked to wait" in html
    assert f'hx-post="{url(action)}"' not in html
    assert 'id="messages"' in html and 'hx-swap-oob="innerHTML"' in html
    assert "Acme Tools: e-mail skipped (Customer asked to wait)." in html


def test_with_htmx_the_queue_s_count_follows_the_decision(
    client, manager, other_collector, make_customer, make_action
):
    """Two steps of Otto's and one of Carla's wait; the manager looks at
    Otto's and skips one: the count says one left, for Otto's filter."""
    otto = [make_action(make_customer(name=f"Otto's {n}", collector=other_collector)) for n in (1, 2)]
    make_action(make_customer(name="Carla's"))
    client.force_login(manager)
    shown = f"http://testserver{QUEUE}?collector={other_collector.pk}"

    response = client.post(url(otto[0]), {"decision": "skip", "note": "Paid by phone"},
                           headers={**HTMX, "HX-Current-URL": shown})

    html = response.content.decode()
    count = re.search(r'<p id="review-count"[^>]*hx-swap-oob="true"[^>]*>(.*?)</p>', html, re.S)
    assert count and " ".join(count.group(1).split()) == "1 step waiting for review"


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    "data",
    [{"decision": "skip", "note": "  "}, {"decision": "maybe", "note": "x"}, {}],
    ids=["skip-without-note", "unknown-decision", "nothing"],
)
def test_bad_input_changes_nothing_and_says_why(client, collector, action, headers, data):
    before = state(action)
    client.force_login(collector)

    response = client.post(url(action), data, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert "Nothing was done." in html
    assert ("<html" in html) == (not headers)
    assert state(action) == before


def test_skipping_without_a_note_says_a_note_is_needed(client, collector, action):
    client.force_login(collector)

    response = client.post(url(action), {"decision": "skip", "note": ""}, headers=HTMX)

    assert "Say why this step is skipped." in response.content.decode()


def test_a_step_already_decided_is_not_decided_again(client, collector, action):
    DunningAction.objects.filter(pk=action.pk).update(status=ActionStatus.SKIPPED, skip_reason="first")
    before = state(action)
    client.force_login(collector)

    response = client.post(url(action), {"decision": "skip", "note": "second"}, headers=HTMX)

    assert response.status_code == 422
    assert "no longer waiting for review" in response.content.decode()
    assert state(action) == before


@pytest.mark.parametrize("intruder", ["other_collector", "viewer"])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_people_who_may_not_act_on_the_account_are_refused(
    client, action, request, intruder, headers
):
    before = state(action)
    client.force_login(request.getfixturevalue(intruder))

    response = client.post(url(action), {"decision": "skip", "note": "not mine"}, headers=headers)

    assert response.status_code == 403
    assert state(action) == before


def test_a_user_without_a_role_is_refused(client, action):
    before = state(action)
    client.force_login(User.objects.create_user("nobody"))

    assert client.post(url(action), {"decision": "skip", "note": "x"}).status_code == 403
    assert state(action) == before


def test_a_manager_may_review_any_collectors_step(client, manager, action):
    client.force_login(manager)

    client.post(url(action), {"decision": "skip", "note": "Handled by me"})

    action.refresh_from_db()
    assert (action.status, action.reviewed_by) == (ActionStatus.SKIPPED, manager)


def test_anonymous_visitors_are_sent_to_log_in_and_nothing_changes(client, action):
    before = state(action)

    response = client.post(url(action), {"decision": "skip", "note": "x"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert state(action) == before


def test_reviewing_needs_a_post_and_opening_the_step_changes_nothing(client, collector, action):
    before = state(action)
    client.force_login(collector)

    assert client.get(url(action)).status_code == 200
    assert client.put(url(action)).status_code == 405
    assert state(action) == before


def test_reviewing_without_the_csrf_token_is_refused(collector, action):
    before = state(action)
    client = Client(enforce_csrf_checks=True)
    client.force_login(collector)

    response = client.post(url(action), {"decision": "skip", "note": "forged"}, headers=HTMX)

    assert response.status_code == 403
    assert state(action) == before


def test_an_unknown_step_is_not_found(client, collector):
    client.force_login(collector)

    assert client.post(reverse("collections:action_review", args=[999999]), {}).status_code == 404


def test_the_worklist_item_of_a_notice_to_review_leads_to_its_review_page(client, collector, action):
    """"Done" on the item would close it unread: the item offers the review itself."""
    from ar_collections.worklist import worklist_refresh

    worklist_refresh(on=TODAY)
    client.force_login(collector)

    page = client.get(reverse("collections:worklist")).content.decode()

    assert f'<a href="{url(action)}">Review the notice</a>' in page
    assert '<span class="visually-hidden">Priority</span>' in page


def test_following_the_worklist_link_of_a_notice_to_review_shows_the_step_to_send_or_skip(
    client, collector, action
):
    from ar_collections.worklist import worklist_refresh

    worklist_refresh(on=TODAY)
    client.force_login(collector)
    page = client.get(reverse("collections:worklist")).content.decode()
    link = re.search(r'<a href="([^"]+)">Review the notice</a>', page).group(1)
    before = state(action)

    response = client.get(link)

    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="action-{action.pk}"' in html
    assert 'value="send"' in html and 'value="skip"' in html
    assert state(action) == before


def test_another_collector_cannot_open_a_step_to_review(client, action):
    other = User.objects.create_user("olga")
    other.groups.add(*action.customer.collector.groups.all())
    client.force_login(other)

    assert client.get(url(action)).status_code == 403


def test_a_step_on_a_page_of_its_own_has_the_customer_as_its_one_main_heading(client, collector, action):
    client.force_login(collector)

    page = client.get(url(action)).content.decode()
    refused = client.post(url(action), {"decision": "skip", "note": ""}).content.decode()
    queue = client.get(QUEUE).content.decode()

    for html in (page, refused):
        found = re.findall(r'<h1 id="action-\d+-title">\s*<a [^>]*>([^<]*)</a>', html)
        assert found == [action.customer.name]
        assert html.count("<h1") == 1
    # In the queue the item is one of many: its heading stays under the queue's.
    assert queue.count("<h1") == 1 and f'<h2 id="action-{action.pk}-title">' in queue
