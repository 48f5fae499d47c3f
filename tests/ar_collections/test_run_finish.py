"""A run is finished once it is fully planned and nothing is left to send."""

import datetime as dt
import io

from django.core.management import call_command

from ar_collections.dunning import dunning_run_execute, run_plan, run_start
from ar_collections.models import ActionStatus, DunningAction, DunningActionInvoice, DunningRun, RunStatus
from ar_collections.tasks import deliver_actions

from .conftest import DUE, frozen

DAY = DUE + dt.timedelta(days=3)


def test_the_batch_that_delivers_the_last_action_finishes_the_run(make_account, smtp_server, eager_celery):
    make_account(name="Acme Tools")
    make_account(name="Beta Bikes", email="anna@beta.test")
    with frozen(DAY):
        run = run_start(run_date=DAY)
        run_plan(run=run)
        first, second = DunningAction.objects.filter(run=run).order_by("pk").values_list("pk", flat=True)

        deliver_actions.delay([first])
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING  # one action still to send

        deliver_actions.delay([second])
        run.refresh_from_db()
        assert run.status == RunStatus.FINISHED
        assert run.finished_at is not None
    assert len(smtp_server.messages) == 2


def test_run_dunning_says_finished_when_the_run_has_finished(db):
    """Nothing to chase: the run plans nothing and is finished at once; the
    command's one line of output says so, not that it is still running."""
    out = io.StringIO()
    with frozen(DAY):
        call_command("run_dunning", stdout=out)

    assert DunningRun.objects.get(run_date=DAY).status == RunStatus.FINISHED
    assert out.getvalue().startswith(f"Dunning run {DAY}: finished;"), out.getvalue()


def test_a_run_still_sending_is_finished_the_next_night_without_planning_accounts_added_since(
    make_account, make_invoice, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    """The mail server puts off the first night's only e-mail, so that run is
    still going when the next night's run finishes it. An account imported in
    between is the next night's to plan, as of its own date: planned by the
    earlier run as of the earlier date, its first notice left out an invoice
    overdue by the time it went, and the earlier run's counts grew by a step it
    never planned that night."""

    def night(day: dt.date) -> None:
        with frozen(day), django_capture_on_commit_callbacks(execute=True):
            dunning_run_execute(run_date=day)

    make_account(name="Acme Tools")
    smtp_server.refuse_with("451 4.3.0 Try again later")
    night(DAY)
    first_run = DunningRun.objects.get(run_date=DAY)
    assert first_run.status == RunStatus.RUNNING

    smtp_server.refuse_with(None)
    imported = make_account(name="Beta Bikes", email="anna@beta.test")
    make_invoice(imported, issued=DAY - dt.timedelta(days=30), due=DAY, amount="300.00")
    next_day = DAY + dt.timedelta(days=1)
    night(next_day)

    first_run.refresh_from_db()
    assert first_run.status == RunStatus.FINISHED  # its put-off e-mail went
    assert first_run.actions.count() == 1
    action = DunningAction.objects.get(customer=imported)
    assert (action.run.run_date, action.planned_on, action.status) == (next_day, next_day, ActionStatus.DONE)
    assert DunningActionInvoice.objects.filter(action=action).count() == 3
    assert len(smtp_server.messages) == 2
