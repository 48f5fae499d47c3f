"""The runs page: every dunning run with its steps by status, and a manager's
button to start today's run."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    RunStatus,
)

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
RUNS = reverse("collections:runs")
START = reverse("collections:run_start")
# What the start form sends once the manager has confirmed the date.
CONFIRMED = {"run_date": "2025-08-05", "confirmed": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")



@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    """The arguments of every start_dunning_run message handed to the broker."""
    from ar_collections.tasks import start_dunning_run

    sent: list[tuple] = []
    monkeypatch.setattr(start_dunning_run, "apply_async", lambda args, **options: sent.append(tuple(args)))
    return sent


def add_actions(run: DunningRun, customers, status: str) -> None:
    step = DunningStep.objects.get(policy__segment="prompt", position=1)
    for customer in customers:
        cycle = DunningCycle.objects.create(
            customer=customer, number=DunningCycle.objects.filter(customer=customer).count() + 1,
            opened_on=run.run_date, closed_on=run.run_date,
        )
        DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=status,
            planned_on=run.run_date, pay_by=run.run_date,
        )


def runs() -> list[tuple]:
    return list(DunningRun.objects.order_by("run_date").values_list("run_date", "status", "started_by"))


# --- The page ---------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_their_steps_by_status(
    client, viewer, manager, make_customer
):
    older = DunningRun.objects.create(run_date=dt.date(2025, 8, 3), status=RunStatus.FINISHED)
    newer = DunningRun.objects.create(run_date=dt.date(2025, 8, 4), started_by=manager)
    customers = [make_customer() for _ in range(3)]
    add_actions(older, customers, ActionStatus.DONE)
    add_actions(newer, customers[:2], ActionStatus.IN_REVIEW)
    add_actions(newer, customers[2:], ActionStatus.FAILED)
    client.force_login(viewer)

    response = client.get(RUNS)

    html = response.content.decode()
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [run.pk for run, _ in rows] == [newer.pk, older.pk]
    labels = response.context["status_columns"]
    assert dict(zip(labels, rows[0][1], strict=True)) == {
        "Planned": 0, "In review": 2, "Awaiting approval": 0, "Sending": 0, "Done": 0,
        "Skipped": 0, "Failed": 1,
    }
    assert dict(zip(labels, rows[1][1], strict=True))["Done"] == 3
    assert "Mon 4 Aug 2025" in html and "Sun 3 Aug 2025" in html
    assert "by maria" in html and "by the schedule" in html
    assert "Running" in html and "Finished" in html


@pytest.mark.parametrize("reader", ["viewer", "collector", "manager"])
def test_every_role_may_read_the_runs(client, db, request, reader):
    client.force_login(request.getfixturevalue(reader))

    assert client.get(RUNS).status_code == 200


def test_a_user_without_a_role_may_not_read_the_runs(client, db):
    client.force_login(User.objects.create_user("nobody"))

    assert client.get(RUNS).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in_for_the_runs(client):
    response = client.get(RUNS)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_only_managers_are_offered_to_start_a_run(client, manager, collector, viewer):
    client.force_login(manager)
    html = client.get(RUNS).content.decode()
    assert "Start a run for 5 Aug 2025" in html
    assert f'action="{START}"' in html and 'method="post"' in html and f'hx-post="{START}"' in html

    for reader in (collector, viewer):
        client.force_login(reader)
        assert "Start a run" not in client.get(RUNS).content.decode()


@pytest.mark.parametrize(("status", "said"), [(RunStatus.RUNNING, "is running"),
                                               (RunStatus.FINISHED, "has finished")])
def test_once_today_s_run_exists_the_page_says_so_instead_of_offering_to_start_it(
    client, manager, status, said
):
    DunningRun.objects.create(run_date=TODAY, status=status)
    client.force_login(manager)

    html = client.get(RUNS).content.decode()

    assert "Start a run for" not in html
    assert f"Today's run (5 Aug 2025) {said}" in html


def test_a_running_run_keeps_its_section_refreshing(client, viewer):
    DunningRun.objects.create(run_date=TODAY)
    client.force_login(viewer)

    html = client.get(RUNS, headers=HTMX).content.decode()

    assert html.lstrip().startswith('<section id="runs"')
    assert "<html" not in html
    assert 'hx-trigger="every 10s"' in html


def test_finished_runs_do_not_refresh(client, viewer):
    DunningRun.objects.create(run_date=TODAY, status=RunStatus.FINISHED)
    client.force_login(viewer)

    assert "every 10s" not in client.get(RUNS).content.decode()


@pytest.mark.parametrize("rows", [2, 20])
def test_the_runs_page_costs_the_same_number_of_queries_for_2_or_20_runs(
    client, manager, make_customer, django_assert_num_queries, rows
):
    customer = make_customer()
    for n in range(rows):
        run = DunningRun.objects.create(
            run_date=TODAY - dt.timedelta(days=n), status=RunStatus.FINISHED, started_by=manager
        )
        add_actions(run, [customer], ActionStatus.DONE)
    client.force_login(manager)

    # session, user, role groups, permissions (2), count, runs with who started
    # them, their actions counted by status
    with django_assert_num_queries(8):
        response = client.get(RUNS)

    assert len(response.context["rows"]) == rows


# --- Starting a run ---------------------------------------------------------------


def test_the_task_has_the_name_the_workers_know_it_by():
    from ar_collections.tasks import start_dunning_run

    assert start_dunning_run.name == "collections.start_dunning_run"


def test_the_start_button_asks_on_the_page_before_any_mail_goes(client, manager):
    """No browser dialog: the button posts unconfirmed, and the page asks
    (test_starting_without_confirming_asks_first_and_starts_nothing)."""
    client.force_login(manager)

    html = client.get(RUNS).content.decode()

    assert "Start a run for 5 Aug 2025" in html
    assert "hx-confirm" not in html
    assert '"confirmed": "true"' not in html


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_starting_without_confirming_asks_first_and_starts_nothing(client, manager, enqueued, headers):
    """The button asks nothing itself: the page asks, with htmx or without."""
    client.force_login(manager)

    response = client.post(START, {"run_date": "2025-08-05"}, headers=headers)

    page = " ".join(response.content.decode().split())
    assert response.status_code == 200
    assert ("Start the run for 5 Aug 2025? It plans every step due that day and at once sends the e-mails "
            "and letters that need no review.") in page
    assert '<input type="hidden" name="confirmed" value="true">' in page
    assert "Yes, start the run for 5 Aug 2025" in page
    assert f'<a href="{RUNS}">Cancel</a>' in page
    assert runs() == []
    assert enqueued == []


def test_a_manager_starts_todays_run_and_the_task_is_enqueued(client, manager, enqueued):
    client.force_login(manager)

    response = client.post(START, CONFIRMED)

    assert response.status_code == 302
    run = DunningRun.objects.get()
    # Straight to the new run's status, which takes the keyboard.
    assert response.url == f"{RUNS}#run-{run.pk}-status"
    assert runs() == [(TODAY, RunStatus.RUNNING, manager.pk)]
    assert enqueued == [("2025-08-05", manager.pk)]
    assert "The run for 5 Aug 2025 has started." in client.get(RUNS).content.decode()


def test_with_htmx_starting_returns_the_runs_section(
    client, manager, enqueued, django_capture_on_commit_callbacks
):
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(START, CONFIRMED, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="runs"')
    assert "<html" not in html
    assert "has started" in html and 'hx-swap-oob="innerHTML"' in html
    assert enqueued == [("2025-08-05", manager.pk)]
    # The started run refreshes from the runs page, not from the form's address.
    assert f'hx-get="{RUNS}" hx-trigger="every 10s"' in html


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("existing", "message"),
    [(RunStatus.RUNNING, "is already running"), (RunStatus.FINISHED, "has already finished")],
)
def test_todays_run_is_not_started_twice(
    client, manager, enqueued, django_capture_on_commit_callbacks, headers, existing, message
):
    DunningRun.objects.create(run_date=TODAY, status=existing)
    before = runs()
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(START, CONFIRMED, headers=headers)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert runs() == before
    assert enqueued == []


@pytest.mark.django_db(transaction=True)
def test_of_two_managers_starting_at_the_same_moment_one_is_told_it_has_started(
    manager, other_manager, enqueued, monkeypatch
):
    from django.db import connection

    from ar_collections import dunning

    # Both requests pass the page's "not started yet" check before either creates the run.
    both_checked = threading.Barrier(2, timeout=10)
    real_run_start = dunning.run_start

    def run_start_after_both_checked(**kwargs):
        both_checked.wait()
        return real_run_start(**kwargs)

    monkeypatch.setattr(dunning, "run_start", run_start_after_both_checked)
    said: dict[str, str] = {}

    def press(user) -> None:
        try:
            client = Client()
            client.force_login(user)
            response = client.post(START, CONFIRMED, follow=True)
            # The page's words, not response.context: the test client gathers
            # contexts through a signal that both threads' requests fire.
            said[user.username] = response.content.decode()
        finally:
            connection.close()

    threads = [threading.Thread(target=press, args=(user,)) for user in (manager, other_manager)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert DunningRun.objects.count() == 1
    started = [who for who, page in said.items() if "has started" in page]
    told = [who for who, page in said.items() if "just been started by someone else" in page]
    assert len(started) == 1 and len(told) == 1 and started != told
    assert len(enqueued) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_run_the_workers_cannot_be_told_of_is_not_started_and_may_be_started_once_they_can(
    client, manager, broker_down, headers
):
    """The task queue does not answer: no error page, no run left "running"
    that nothing will ever carry out today and that refuses a second press."""
    client.force_login(manager)

    response = client.post(START, CONFIRMED, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert "No run was started: the workers cannot be reached" in html
    assert "has started" not in html
    assert runs() == []
    assert "Start a run for 5 Aug 2025" in client.get(RUNS).content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_started_run_reaches_the_broker(client, manager, broker_queue):
    client.force_login(manager)

    response = client.post(START, CONFIRMED)

    messages = broker_queue()
    assert response.status_code == 302
    assert [(m["task"], m["argsrepr"]) for m in messages] == [
        ("collections.start_dunning_run", f"('2025-08-05', {manager.pk})")
    ]


@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_a_broker_that_takes_the_connection_and_never_answers_is_said_within_seconds(
    client, manager, broker_hangs
):
    """The request waited through the broker client's connection retries (or
    for ever, on a connection that was open but silent) before the manager
    heard anything."""
    client.force_login(manager)

    started = time.perf_counter()  # the wall clock: the test's own clock is frozen
    response = client.post(START, CONFIRMED, headers=HTMX)
    waited = time.perf_counter() - started

    assert broker_hangs.connections, "the broker was never asked"
    assert response.status_code == 422
    assert "No run was started: the workers cannot be reached" in response.content.decode()
    assert waited < 8, f"the manager waited {waited:.1f} s"
    assert runs() == []


def test_a_run_that_would_go_back_in_time_is_refused(
    client, manager, enqueued, django_capture_on_commit_callbacks
):
    DunningRun.objects.create(run_date=TODAY + dt.timedelta(days=1), status=RunStatus.FINISHED)
    before = runs()
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(START, CONFIRMED, headers=HTMX)

    assert response.status_code == 422
    assert "would go back in time" in response.content.decode()
    assert runs() == before
    assert enqueued == []


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("data", "message"),
    [({"run_date": "2025-08-04"}, "but today is 5 Aug 2025"), ({"run_date": "soon"}, "valid date"),
     ({}, "required")],
    ids=["yesterdays-page", "not-a-date", "no-date"],
)
def test_bad_input_starts_nothing_and_says_why(
    client, manager, enqueued, django_capture_on_commit_callbacks, headers, data, message
):
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(START, data, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert ("<html" in html) == (not headers)
    assert runs() == []
    assert enqueued == []


@pytest.mark.parametrize("intruder", ["collector", "viewer"])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_only_managers_may_start_a_run(client, db, request, intruder, headers):
    client.force_login(request.getfixturevalue(intruder))

    assert client.post(START, CONFIRMED, headers=headers).status_code == 403
    assert runs() == []


def test_anonymous_visitors_are_sent_to_log_in_and_nothing_starts(client, db):
    response = client.post(START, CONFIRMED)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert runs() == []


def test_starting_needs_a_post(client, manager):
    client.force_login(manager)

    assert client.get(START).status_code == 405
    assert runs() == []


def test_starting_without_the_csrf_token_is_refused(manager):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(START, CONFIRMED)

    assert response.status_code == 403
    assert runs() == []
