"""A run is finished once it is fully planned and nothing is left to send."""

import datetime as dt

from ar_collections.dunning import run_plan, run_start
from ar_collections.models import DunningAction, RunStatus
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
