"""A run is finished once it is fully planned and nothing is left to send."""

import datetime as dt
import io

from django.core.management import call_command

from ar_collections.dunning import run_plan, run_start
from ar_collections.models import DunningAction, DunningRun, RunStatus
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
