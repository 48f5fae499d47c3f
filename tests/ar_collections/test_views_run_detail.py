"""A dunning run's own page: its counts, and its steps page by page, each with
its account, step, channel, recipient, status, pay-by date and what stopped it."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import urljoin

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ar_collections import services
from ar_collections.dunning import run_counts
from ar_collections.models import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    RunStatus,
    StepAction,
)
from customers.models import TermsType

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
RUNS = reverse("collections:runs")
ACTION_ROW = re.compile(r'<tr id="run-action-(\d+)"')
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def run(db) -> DunningRun:
    return DunningRun.objects.create(run_date=TODAY, status=RunStatus.FINISHED)


@pytest.fixture
def add_action(run):
    step = DunningStep.objects.get(policy__segment="prompt", position=1)

    def add(customer, status: str = ActionStatus.DONE, **fields) -> DunningAction:
        cycle = DunningCycle.objects.create(
            customer=customer, number=DunningCycle.objects.filter(customer=customer).count() + 1,
            opened_on=run.run_date, closed_on=run.run_date,
        )
        fields.setdefault("pay_by", TODAY + dt.timedelta(days=7))
        fields.setdefault("step", step)
        return DunningAction.objects.create(run=run, cycle=cycle, customer=customer, status=status,
                                            planned_on=run.run_date, **fields)

    return add


def page_of(run: DunningRun) -> str:
    return reverse("collections:run_detail", args=[run.pk])


def listed(response) -> list[int]:
    return [int(pk) for pk in ACTION_ROW.findall(response.content.decode())]


def text_of(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def row_of(response, action: DunningAction) -> str:
    found = re.search(rf'<tr id="run-action-{action.pk}">(.*?)</tr>', response.content.decode(), re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def link(response, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]*)" rel="{rel}"', response.content.decode())
    return urljoin(page_of(response.context["run"]), html.unescape(found.group(1))) if found else None


# --- What the page shows ------------------------------------------------------------------


def test_the_runs_list_links_each_run_to_its_own_page(client, viewer, run):
    client.force_login(viewer)

    page = client.get(RUNS).content.decode()

    assert f'<a href="{page_of(run)}">Tue 5 Aug 2025</a>' in page


def test_a_run_s_page_shows_its_counts_and_each_step_with_what_became_of_it(
    client, collector, other_collector, make_customer, make_contact, add_action, run
):
    """Runs are shared: a collector sees every step of the run, their
    colleagues' accounts too, as the runs page counts them all."""
    mine = make_customer(name="Acme Tools", collector=collector)
    anna = make_contact(mine, name="Anna Clerk", email="anna@acme.test")
    theirs = make_customer(name="Bolt Works", collector=other_collector)
    quiet = make_customer(name="Crane Hire")
    sent = add_action(mine, channel=Channel.EMAIL, recipient=anna, recipient_address="anna@acme.test")
    skipped = add_action(theirs, ActionStatus.SKIPPED, skip_reason="paid since it was planned")
    failed = add_action(quiet, ActionStatus.FAILED, channel=Channel.LETTER,
                        error="No postal address for a letter")
    client.force_login(collector)

    response = client.get(page_of(run))

    assert response.status_code == 200
    text = text_of(response)
    assert "Dunning run of Tue 5 Aug 2025" in text
    assert "3 steps" in text
    assert re.search(r"Done\s+1\b", text) and re.search(r"Skipped\s+1\b", text)
    assert re.search(r"Failed\s+1\b", text) and re.search(r"Planned\s+0\b", text)
    # By account name.
    assert listed(response) == [sent.pk, skipped.pk, failed.pk]
    body = response.content.decode()
    for customer in (mine, theirs, quiet):
        assert f'<a href="{reverse("customers:detail", args=[customer.pk])}">{customer.name}</a>' in body
    assert "Step 1: E-mail" in text
    assert "Anna Clerk anna@acme.test" in text
    assert "12 Aug 2025" in text
    assert "paid since it was planned" in text
    assert "No postal address for a letter" in text


@pytest.mark.parametrize(("step_action", "terms", "reason"), [
    (StepAction.CREDIT_HOLD, {"on_credit_hold": True}, "the account is already on credit hold"),
    (StepAction.SWITCH_TO_COD, {"terms_type": TermsType.COD}, "the account already trades cash on delivery"),
    (StepAction.SWITCH_TO_COD, {"terms_type": TermsType.PREPAYMENT},
     "the account already trades on prepayment, stricter than cash on delivery"),
])
def test_a_step_asking_for_terms_already_in_force_is_not_shown_as_waiting_for_a_manager(
    client, manager, make_customer, add_action, run, step_action, terms, reason
):
    """The account was held (or put on C.O.D.) some way the step did not see:
    the approvals leave the step out, and the daily refresh skips it. The run's
    page says so, as the Dunning card does, not "waiting"; its counts stay
    those the runs page shows, then move with the skip."""
    step = DunningStep.objects.get(policy__segment="systematic_late", action=step_action)
    moot = add_action(make_customer(name="Held Ltd", **terms), ActionStatus.AWAITING_APPROVAL, step=step)
    waiting = add_action(make_customer(name="Open Ltd"), ActionStatus.AWAITING_APPROVAL, step=step)
    client.force_login(manager)

    response = client.get(page_of(run))

    assert "Waiting for a manager" not in row_of(response, moot)
    assert "No decision needed" in row_of(response, moot) and reason in row_of(response, moot)
    assert "Waiting for a manager's approval" in html.unescape(row_of(response, waiting))
    assert re.search(r"Awaiting approval 2 \(1 needs no decision\)", text_of(response))
    assert [n for _, _, n in response.context["counts"]] == client.get(RUNS).context["rows"][0][1]
    assert listed(client.get(page_of(run), {"status": "awaiting_approval"})) == [moot.pk, waiting.pk]

    assert services.credit_terms_in_force_skip(customer_ids=[moot.customer_id]) == 1

    response = client.get(page_of(run))
    assert "Skipped" in row_of(response, moot) and reason in row_of(response, moot)
    assert "No decision needed" not in row_of(response, moot)
    assert re.search(r"Awaiting approval 1 Sending", text_of(response))
    assert re.search(r"Skipped 1\b", text_of(response))
    counts = {value: n for value, _, n in response.context["counts"]}
    assert list(counts.values()) == client.get(RUNS).context["rows"][0][1]
    assert counts == run_counts(run=run)


def test_each_status_count_filters_the_steps_to_that_status(client, manager, make_customer, add_action, run):
    done = add_action(make_customer(name="A"), ActionStatus.DONE)
    waiting = add_action(make_customer(name="B"), ActionStatus.AWAITING_APPROVAL)
    review = add_action(make_customer(name="C"), ActionStatus.IN_REVIEW)
    add_action(make_customer(name="D"), ActionStatus.SKIPPED, skip_reason="paid")
    client.force_login(manager)

    page = client.get(page_of(run)).content.decode()

    assert 'href="?status=awaiting_approval"' in page
    assert listed(client.get(page_of(run), {"status": "awaiting_approval"})) == [waiting.pk]
    assert listed(client.get(page_of(run), {"status": "in_review"})) == [review.pk]
    assert listed(client.get(page_of(run), {"status": "done"})) == [done.pk]
    assert listed(client.get(page_of(run), {"status": "planned"})) == []
    assert len(listed(client.get(page_of(run)))) == 4


def test_a_filter_nothing_matches_says_so(client, manager, make_customer, add_action, run):
    add_action(make_customer())
    client.force_login(manager)

    response = client.get(page_of(run), {"status": "failed"})

    assert "No step of this run is failed." in text_of(response)


@pytest.mark.parametrize("status", ["sent", "DONE", "x" * 300])
def test_an_unknown_status_is_a_bad_request_that_says_which_statuses_there_are(
    client, manager, make_customer, add_action, run, status
):
    add_action(make_customer())
    client.force_login(manager)

    response = client.get(page_of(run), {"status": status})

    assert response.status_code == 400
    assert ("is not a status a step can have: choose planned, in review, awaiting approval, sending, done, "
            "skipped or failed.") in text_of(response)
    assert listed(response) == []


def test_with_htmx_the_page_answers_with_the_steps_section_alone(
    client, manager, make_customer, add_action, run
):
    action = add_action(make_customer())
    client.force_login(manager)

    response = client.get(page_of(run), {"status": "done"}, headers=HTMX)

    body = response.content.decode()
    assert body.lstrip().startswith('<section id="run-actions"')
    assert "<html" not in body
    assert listed(response) == [action.pk]


def test_the_status_filter_is_plain_links_that_htmx_swaps_the_steps_with(client, manager, run):
    client.force_login(manager)

    body = client.get(page_of(run)).content.decode()

    assert "<html" in body
    assert ('<a href="?status=failed" hx-get="?status=failed" hx-target="#run-actions" hx-swap="outerHTML" '
            'hx-push-url="true">Failed</a>') in body
    assert '<a href="." hx-get="."' in body


def test_a_running_run_s_page_refreshes_its_steps_with_the_filter_kept(client, manager, run):
    run.status = RunStatus.RUNNING
    run.save()
    client.force_login(manager)

    body = client.get(page_of(run), {"status": "planned"}).content.decode()

    assert f'hx-get="{page_of(run)}?status=planned" hx-trigger="every 10s"' in body


# --- Who may see it -----------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["viewer", "collector", "manager"])
def test_every_role_that_reads_the_runs_reads_a_run_s_page(client, request, run, reader):
    client.force_login(request.getfixturevalue(reader))

    assert client.get(page_of(run)).status_code == 200


def test_a_user_without_a_role_may_not_read_a_run_s_page(client, run):
    client.force_login(User.objects.create_user("nobody"))

    assert client.get(page_of(run)).status_code == 403
    assert client.get(page_of(run), headers=HTMX).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in_for_a_run_s_page(client, run):
    response = client.get(page_of(run))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_run_that_does_not_exist_is_not_found(client, viewer, run):
    client.force_login(viewer)

    assert client.get(reverse("collections:run_detail", args=[run.pk + 1])).status_code == 404


def test_a_run_s_page_only_reads(client, manager, make_customer, add_action, run):
    action = add_action(make_customer(), ActionStatus.PLANNED)
    client.force_login(manager)

    response = client.post(page_of(run), {"status": "done"})

    assert response.status_code == 405
    action.refresh_from_db()
    assert action.status == ActionStatus.PLANNED


# --- Pages --------------------------------------------------------------------------------


@pytest.fixture
def sixty_planned(make_customer, add_action) -> list[int]:
    """60 planned steps, their ids in the page's order (by account name)."""
    return [add_action(make_customer(name=f"Customer {n:02d}"), ActionStatus.PLANNED).pk for n in range(60)]


def test_steps_sent_meanwhile_do_not_push_others_past_the_next_page_of_a_filter(
    client, manager, run, sixty_planned
):
    """Planned steps leave the "planned" filter as the workers send them; the
    next page starts right after the last one shown all the same."""
    client.force_login(manager)
    first = client.get(page_of(run), {"status": "planned"})
    assert listed(first) == sixty_planned[:50]
    DunningAction.objects.filter(pk__in=sixty_planned[:5]).update(status=ActionStatus.DONE)

    second = client.get(link(first, "next"), headers=HTMX)

    assert "status=planned" in link(first, "next")
    assert listed(second) == sixty_planned[50:]
    assert link(second, "next") is None


@pytest.mark.parametrize("position", ["after=nonsense", "before=WyJ4Il0"])
def test_a_page_position_the_page_did_not_hand_out_is_a_bad_request(client, manager, run, position):
    client.force_login(manager)

    response = client.get(f"{page_of(run)}?{position}")

    assert response.status_code == 400
    assert "is not a position in this list" in response.content.decode()


@pytest.mark.parametrize("steps", [3, 60])
def test_a_run_s_page_costs_the_same_queries_for_3_or_60_steps(
    client, manager, make_customer, make_contact, add_action, run, django_assert_num_queries, steps
):
    for n in range(steps):
        customer = make_customer(name=f"Customer {n:02d}")
        contact = make_contact(customer)
        add_action(customer, channel=Channel.EMAIL, recipient=contact, recipient_address=contact.email)
    client.force_login(manager)

    # session, user, role groups, permissions (2), the run, its steps counted
    # by status, the page of steps with their accounts, steps and recipients,
    # the ladders of its steps whose gap between contacts freezes them
    with django_assert_num_queries(9):
        response = client.get(page_of(run))

    assert len(listed(response)) == min(steps, 50)
