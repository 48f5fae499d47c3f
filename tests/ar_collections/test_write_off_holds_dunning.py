"""A write-off waiting for a manager holds dunning for the invoices it names:
the collector has stopped pursuing them until a manager decides, so no firmer
step goes out about them meanwhile. The planner, the account page's next
step and everything reading eligible_invoices agree; a rejection (or a
request that closes undecided) lets the ladder go on."""

from __future__ import annotations

import pytest

from ar_collections import simulator, workspace
from ar_collections.dunning import eligible_invoices, ladders, next_step, run_plan, run_start
from ar_collections.models import DunningAction, ExceptionKind, ExceptionStatus
from customers.models import EventKind

from .conftest import frozen
from .test_ladder_finished import ON

pytestmark = pytest.mark.usefixtures("default_ladders", "on_day")


@pytest.fixture
def on_day():
    with frozen(ON):
        yield


@pytest.fixture
def account(make_account):
    """Owes EUR 500.00 and EUR 700.00, a month overdue: its ladder's first step is due."""
    return make_account(name="Ashford Civil Engineering")


def planned(account) -> list[set[str]]:
    """Plan today's run; the invoices each step planned for the account lists."""
    run_plan(run=run_start(run_date=ON))
    return [set(action.lines.values_list("invoice__number", flat=True))
            for action in DunningAction.objects.filter(customer=account)]


def coming_up(account) -> list[dict]:
    """What Coming up projects for the account over the next fortnight: each step's amounts."""
    book = ladders()
    days = simulator.project(simulator.book_read(today=ON, ladders=book), book, days=14)
    return [planned.amounts for day in days for planned in day.steps if planned.customer == account]


def proposed(account, collector, *invoices):
    return workspace.exception_request(customer=account, actor=collector, kind=ExceptionKind.WRITE_OFF, on=ON,
                                       invoices=list(invoices), reason="The business is closing")


def test_a_write_off_waiting_for_a_manager_holds_its_invoices_from_dunning(account, collector):
    five_hundred, seven_hundred = account.invoices.order_by("total_amount")
    asked = proposed(account, collector, five_hundred, seven_hundred)

    assert not eligible_invoices(on=ON).filter(customer=account).exists()
    preview = next_step(account, on=ON)
    assert preview.note == "Nothing to chase: every open invoice is held."
    assert [(invoice, why) for invoice, why in preview.held] == [
        (five_hundred, "Write-off waiting for a manager until resolved"),
        (seven_hundred, "Write-off waiting for a manager until resolved")]
    assert coming_up(account) == []
    assert planned(account) == []
    # The timeline says why nothing goes out about them.
    event = account.events.filter(kind=EventKind.EXCEPTION).get()
    assert "dunning holds them until a manager decides" in event.summary
    assert asked.status == ExceptionStatus.PENDING


def test_only_the_invoices_the_write_off_names_are_held(account, collector):
    five_hundred, seven_hundred = account.invoices.order_by("total_amount")
    proposed(account, collector, seven_hundred)

    assert list(eligible_invoices(on=ON).filter(customer=account)) == [five_hundred]
    assert coming_up(account)[0] == {"EUR": five_hundred.open_amount}
    assert planned(account) == [{five_hundred.number}]


def test_a_rejected_write_off_lets_the_ladder_go_on(account, collector, manager):
    five_hundred, seven_hundred = account.invoices.order_by("total_amount")
    asked = proposed(account, collector, five_hundred, seven_hundred)

    workspace.exception_decide(request=asked, manager=manager, approve=False, note="Keep chasing", on=ON)

    assert set(eligible_invoices(on=ON).filter(customer=account)) == {five_hundred, seven_hundred}
    assert next_step(account, on=ON).held == []
    assert planned(account) == [{five_hundred.number, seven_hundred.number}]


def test_an_approved_write_off_leaves_the_invoices_it_did_not_write_off_to_the_ladder(
    account, collector, manager
):
    five_hundred, seven_hundred = account.invoices.order_by("total_amount")
    asked = proposed(account, collector, five_hundred, seven_hundred)

    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Only the larger", on=ON,
                               write_off={seven_hundred.pk: seven_hundred.open_amount})

    assert planned(account) == [{five_hundred.number}]
