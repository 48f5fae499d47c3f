"""A collector's requests waiting for a manager hold the account's next step
for DUNNING_WAITS_FOR_DECISION_DAYS counted from the first of them in the
cycle: withdrawing a plan and proposing it again does not start the days
again, or a collector could hold the ladder alone for as long as they liked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ar_collections import workspace
from ar_collections.dunning import next_step
from ar_collections.models import DunningCycle, PlanStatus

from .conftest import frozen
from .test_requests_hold_the_run import bolt, day, planned, run_on  # noqa: F401

pytestmark = pytest.mark.usefixtures("default_ladders")


def test_withdrawing_and_proposing_again_does_not_hold_the_run_past_the_days_set(bolt, collector):  # noqa: F811
    usd = bolt.invoices.get(currency="USD")
    for n in range(0, 12):
        on = day(n)
        if n % 4 == 0:
            with frozen(on):
                plan = workspace.plan_propose(customer=bolt, actor=collector, invoices=[usd], on=on,
                                              instalments=[(day(n + 10), Decimal("40.00")),
                                                           (day(n + 40), Decimal("40.00"))])
            assert plan.status == PlanStatus.AWAITING_APPROVAL
        run_on(on)
        if n % 4 == 3:
            with frozen(on):
                workspace.plan_withdraw(plan=plan, actor=collector, reason="Customer changed mind", on=on)
        if n < 4:
            # Asked on day 0: the run waits through day 3.
            assert planned(bolt) == [], n
    assert planned(bolt)[0] == day(4), "proposed again on day 4, the plan held the run once more"
    assert DunningCycle.objects.get(customer=bolt).decision_awaited_from == day(0)
    # The account page's next step does not say it waits for the plan proposed on day 8.
    with frozen(day(9)):
        assert "Waits for the manager's decision" not in next_step(bolt, on=day(9)).note
