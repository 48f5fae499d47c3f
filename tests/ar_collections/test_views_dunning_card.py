"""The Dunning card on the account page: where the account stands in its cycle,
and the two forms on it (the cause of a miss, a manager's segment override)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    MissCause,
    PauseKind,
)
from customers.models import EventKind, Segment, TimelineEvent

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")



@pytest.fixture
def cycle(customer) -> DunningCycle:
    return DunningCycle.objects.create(customer=customer, number=2, opened_on=dt.date(2025, 7, 20))


def page(customer) -> str:
    return reverse("customers:detail", args=[customer.pk])


def cause_url(customer) -> str:
    return reverse("collections:cause_record", args=[customer.pk])


def segment_url(customer) -> str:
    return reverse("collections:segment_override", args=[customer.pk])


def state(customer) -> tuple:
    customer.refresh_from_db()
    return (
        list(DunningCycle.objects.filter(customer=customer).values_list("cause", "cause_noted_by")),
        customer.segment, customer.segment_override, customer.segment_override_note,
        TimelineEvent.objects.count(),
    )


# --- What the card shows ------------------------------------------------------------


def test_the_card_shows_the_cycle_its_cause_the_last_steps_and_the_pauses(
    client, viewer, collector, customer, cycle, make_invoice
):
    DunningCycle.objects.filter(pk=cycle.pk).update(cause=MissCause.RED_TAPE, cause_noted_by=collector)
    run = DunningRun.objects.create(run_date=TODAY)
    first, second = DunningStep.objects.filter(policy__segment="prompt").order_by("position")[:2]
    DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer, step=first, status=ActionStatus.DONE,
        planned_on=dt.date(2025, 7, 20), pay_by=dt.date(2025, 7, 30), channel="email",
    )
    DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer, step=second, status=ActionStatus.SKIPPED,
        planned_on=dt.date(2025, 8, 1), pay_by=dt.date(2025, 8, 11), skip_reason="Paid by phone",
        channel="email",
    )
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-PAUSED")
    DunningPause.objects.create(
        customer=customer, invoice=invoice, kind=PauseKind.PROMISE, reason="Pays on the 15th",
        owner=collector, starts_on=dt.date(2025, 8, 1), ends_on=dt.date(2025, 8, 15),
    )
    DunningPause.objects.create(
        customer=customer, kind=PauseKind.MANUAL_HOLD, reason="Ended last month",
        owner=collector, starts_on=dt.date(2025, 7, 1), ends_on=dt.date(2025, 7, 31),
    )
    DunningPause.objects.create(
        customer=customer, kind=PauseKind.MANUAL_HOLD, reason="Lifted early",
        owner=collector, starts_on=dt.date(2025, 8, 1), ends_on=dt.date(2025, 8, 31),
        lifted_at=timezone.now(), lifted_by=collector,
    )
    client.force_login(viewer)

    html = client.get(page(customer)).content.decode()

    for text in [
        'id="dunning"', "open since 20 Jul 2025", "Red tape", "(noted by carla)",
        "20 Jul 2025 · E-mail <span", "Done", "1 Aug 2025 · PDF letter, e-mailed as an attachment",
        "Skipped", "Paid by phone",
        "Promise to pay", "INV-PAUSED", "until 15 Aug 2025", "Pays on the 15th",
    ]:
        assert text in html, text
    assert "Ended last month" not in html and "Lifted early" not in html


def test_an_account_without_an_open_cycle_says_so_and_offers_no_cause(client, collector, customer):
    DunningCycle.objects.create(customer=customer, number=1, opened_on=TODAY, closed_on=TODAY)
    client.force_login(collector)

    html = client.get(page(customer)).content.decode()

    assert "No open cycle" in html
    assert cause_url(customer) not in html


def test_the_owning_collector_may_note_the_cause_but_not_override_the_segment(
    client, collector, customer, cycle
):
    client.force_login(collector)

    html = client.get(page(customer)).content.decode()

    assert f'action="{cause_url(customer)}"' in html and f'hx-post="{cause_url(customer)}"' in html
    assert segment_url(customer) not in html


def test_a_manager_gets_both_forms(client, manager, customer, cycle):
    client.force_login(manager)

    html = client.get(page(customer)).content.decode()

    assert f'action="{cause_url(customer)}"' in html
    assert f'action="{segment_url(customer)}"' in html and f'hx-post="{segment_url(customer)}"' in html


@pytest.mark.parametrize("reader", ["other_collector", "viewer"])
def test_people_who_may_not_act_on_the_account_get_no_forms(client, customer, cycle, request, reader):
    client.force_login(request.getfixturevalue(reader))

    html = client.get(page(customer)).content.decode()

    assert 'id="dunning"' in html
    assert cause_url(customer) not in html and segment_url(customer) not in html


# --- Noting the cause ----------------------------------------------------------------


def test_noting_the_cause_records_it_on_the_open_cycle(client, collector, customer, cycle):
    client.force_login(collector)

    response = client.post(cause_url(customer), {"cause": MissCause.STUFF_HAPPENS})

    assert response.status_code == 302
    assert response.url == page(customer) + "#dunning"
    cycle.refresh_from_db()
    assert (cycle.cause, cycle.cause_noted_by) == (MissCause.STUFF_HAPPENS, collector)
    event = TimelineEvent.objects.get(customer=customer)
    assert (event.kind, event.actor) == (EventKind.NOTE, collector)
    assert event.details["before"] == {"cause": ""}
    assert event.details["after"] == {"cause": "stuff_happens"}
    assert "Cause noted" in client.get(response.url).content.decode()


def test_with_htmx_noting_the_cause_returns_the_card(client, collector, customer, cycle):
    client.force_login(collector)

    response = client.post(cause_url(customer), {"cause": MissCause.SPECIAL_BOND}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="dunning"')
    assert "<html" not in html
    assert "Special bond" in html
    assert "Cause noted" in html and 'hx-swap-oob="innerHTML"' in html


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_an_unknown_cause_changes_nothing(client, collector, customer, cycle, headers):
    before = state(customer)
    client.force_login(collector)

    response = client.post(cause_url(customer), {"cause": "bad_luck"}, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert "Select a valid choice." in html and "Nothing was saved." in html
    # On a page of its own the form posts plainly: there is no card to swap.
    assert ("<html" in html) == (not headers)
    assert ("hx-post" in html) == bool(headers)
    assert state(customer) == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_cause_needs_an_open_cycle(client, collector, customer, headers):
    before = state(customer)
    client.force_login(collector)

    response = client.post(cause_url(customer), {"cause": MissCause.RED_TAPE}, headers=headers)

    assert response.status_code == 422
    assert "there is no cycle to note a cause on" in response.content.decode()
    assert state(customer) == before


@pytest.mark.parametrize("intruder", ["other_collector", "viewer"])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_people_who_may_not_act_on_the_account_may_not_note_a_cause(
    client, customer, cycle, request, intruder, headers
):
    before = state(customer)
    client.force_login(request.getfixturevalue(intruder))

    response = client.post(cause_url(customer), {"cause": MissCause.STUFF_HAPPENS}, headers=headers)

    assert response.status_code == 403
    assert state(customer) == before


def test_a_manager_may_note_the_cause_on_any_account(client, manager, customer, cycle):
    client.force_login(manager)

    client.post(cause_url(customer), {"cause": MissCause.CANNOT_PAY})

    cycle.refresh_from_db()
    assert (cycle.cause, cycle.cause_noted_by) == (MissCause.CANNOT_PAY, manager)


def test_anonymous_visitors_are_sent_to_log_in_and_no_cause_is_noted(client, customer, cycle):
    before = state(customer)

    response = client.post(cause_url(customer), {"cause": MissCause.STUFF_HAPPENS})

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert state(customer) == before


def test_noting_a_cause_needs_a_post(client, collector, customer, cycle):
    client.force_login(collector)

    assert client.get(cause_url(customer)).status_code == 405


def test_noting_a_cause_without_the_csrf_token_is_refused(collector, customer, cycle):
    before = state(customer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(collector)

    response = client.post(cause_url(customer), {"cause": MissCause.STUFF_HAPPENS})

    assert response.status_code == 403
    assert state(customer) == before


def test_an_unknown_customer_is_not_found(client, collector):
    client.force_login(collector)

    response = client.post(reverse("collections:cause_record", args=[999999]), {"cause": "red_tape"})

    assert response.status_code == 404


# --- Overriding the segment ---------------------------------------------------------


def test_a_manager_overrides_the_segment_with_a_reason(client, manager, customer):
    client.force_login(manager)

    response = client.post(
        segment_url(customer), {"segment": Segment.DISTRESSED, "note": "Lost their biggest client"}
    )

    assert response.status_code == 302
    assert response.url == page(customer) + "#dunning"
    customer.refresh_from_db()
    assert (customer.segment, customer.segment_override) == (Segment.DISTRESSED, Segment.DISTRESSED)
    assert customer.segment_override_note == "Lost their biggest client"
    event = TimelineEvent.objects.get(customer=customer, actor=manager)
    assert event.kind == EventKind.SEGMENT_CHANGED
    assert event.details["after"]["override"] == "distressed"
    assert "Segment set to Distressed." in client.get(response.url).content.decode()


def test_with_htmx_the_card_returns_and_the_account_card_is_told_to_reload(
    client, manager, customer
):
    client.force_login(manager)

    response = client.post(
        segment_url(customer), {"segment": Segment.SPECIAL_BOND, "note": "Founder's friend"},
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="dunning"')
    assert response["HX-Trigger"] == '{"segment-changed": {}}'
    assert "Segment set to Special bond." in html
    account_page = client.get(page(customer)).content.decode()
    assert 'hx-trigger="segment-changed from:body"' in account_page
    # The card's reload brings no (empty) message list to swap over the override's message.
    reloaded = client.get(page(customer), headers={**HTMX, "HX-Target": "account-card"}).content.decode()
    assert reloaded.lstrip().startswith('<section id="account-card"') and 'id="messages"' not in reloaded


def test_an_empty_segment_removes_the_override(client, manager, customer):
    customer.segment_override, customer.segment_override_note = Segment.DISTRESSED, "was"
    customer.save()
    client.force_login(manager)

    client.post(segment_url(customer), {"segment": "", "note": ""})

    customer.refresh_from_db()
    assert (customer.segment_override, customer.segment_override_note) == ("", "")
    assert customer.segment == Segment.NEW


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("data", "message"),
    [({"segment": Segment.DISTRESSED, "note": "  "}, "Say why the segment is overridden."),
     ({"segment": "gold", "note": "x"}, "Select a valid choice.")],
    ids=["no-reason", "unknown-segment"],
)
def test_bad_input_changes_no_segment(client, manager, customer, headers, data, message):
    before = state(customer)
    client.force_login(manager)

    response = client.post(segment_url(customer), data, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert ("<html" in html) == (not headers)
    assert "HX-Trigger" not in response
    assert state(customer) == before


@pytest.mark.parametrize("intruder", ["collector", "viewer"])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_only_managers_may_override_a_segment(client, customer, request, intruder, headers):
    before = state(customer)
    client.force_login(request.getfixturevalue(intruder))

    response = client.post(
        segment_url(customer), {"segment": Segment.PROMPT, "note": "I say so"}, headers=headers
    )

    assert response.status_code == 403
    assert state(customer) == before


def test_a_user_without_a_role_may_not_override_a_segment(client, customer):
    before = state(customer)
    client.force_login(User.objects.create_user("nobody"))

    assert client.post(segment_url(customer), {"segment": "prompt", "note": "x"}).status_code == 403
    assert state(customer) == before


def test_anonymous_visitors_are_sent_to_log_in_and_no_segment_changes(client, customer):
    before = state(customer)

    response = client.post(segment_url(customer), {"segment": "prompt", "note": "x"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert state(customer) == before


def test_overriding_a_segment_needs_a_post(client, manager, customer):
    client.force_login(manager)

    assert client.get(segment_url(customer)).status_code == 405


def test_overriding_a_segment_without_the_csrf_token_is_refused(manager, customer):
    before = state(customer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(segment_url(customer), {"segment": "prompt", "note": "forged"}, headers=HTMX)

    assert response.status_code == 403
    assert state(customer) == before
