"""The timeline is the account's record: what a collector or a manager wrote
(a plan's note, why it ended, why it was rescheduled, why a step was
declined) reads there whole, however long what the entry says around it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.forms import NOTE_MAX_LENGTH
from ar_collections.models import PaymentPlan
from ar_collections.timeline import event_record
from ar_collections.workspace_forms import PlanForm
from customers.models import EventKind
from tests.ar_collections.plans import LATE, day, mornings, schedule

from .conftest import frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

# As long as a note may be, and saying where it ends.
NOTE = ("Their main customer went bankrupt in March and they wait for the receiver; the owner, Mr Peters, "
        "called himself and offered monthly instalments from his own pocket, which he kept last year too. "
        "He asked us not to write to the AP clerk meanwhile, who is new. Agreed with him on the phone "
        "last week")[:NOTE_MAX_LENGTH - 8].rstrip().ljust(NOTE_MAX_LENGTH - 8, ".") + " THE END"


def monthly(count: int) -> list:
    """EUR 1,200.00 in `count` instalments a month apart from day 10 (the last takes the rest)."""
    part = 1200 // count
    return schedule(*[(10 + 30 * n, f"{part}.00") for n in range(count - 1)],
                    (10 + 30 * (count - 1), f"{1200 - part * (count - 1)}.00"))


def plan_summaries(account, start: str = "Payment plan") -> list[str]:
    events = account.events.filter(kind=EventKind.PAYMENT_PLAN, summary__startswith=start).order_by("pk")
    return list(events.values_list("summary", flat=True))


def test_the_note_is_as_long_as_a_note_may_be():
    assert len(NOTE) == NOTE_MAX_LENGTH


def test_a_plan_s_note_is_on_the_timeline_whole_after_a_long_schedule(make_account, manager, client):
    account = make_account()
    with frozen(LATE):
        workspace.plan_propose(customer=account, actor=manager, invoices=list(account.invoices.all()),
                               instalments=monthly(12), note=NOTE, on=LATE)

    [summary] = plan_summaries(account)
    assert summary.startswith("Payment plan of EUR 1,200.00 agreed: ")
    assert summary.endswith(f" — {NOTE}")
    client.force_login(manager)
    with frozen(LATE):
        page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    assert f"{NOTE[-30:]}</span>" in page


def test_a_plan_ended_for_a_long_reason_says_it_whole_and_that_dunning_goes_on(make_account, collector):
    account = make_account()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=list(account.invoices.all()),
                                  instalments=monthly(3), on=LATE)
    workspace.plan_withdraw(plan=plan, actor=collector, reason=NOTE, on=day(1))

    assert plan_summaries(account)[-1] == (
        f"Payment plan of EUR 1,200.00 ended with 0 of 3 instalments paid (EUR 0.00): {NOTE}; "
        "dunning goes on where it stood")


def test_a_reschedule_s_reason_reads_whole_after_a_schedule_of_many_instalments(make_account, collector,
                                                                                 manager):
    account = make_account()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=list(account.invoices.all()),
                                  instalments=monthly(3), on=LATE)
    mornings(account, 1, 2)
    workspace.plan_amend(plan=PaymentPlan.objects.get(pk=plan.pk), manager=manager, instalments=monthly(24),
                         note=NOTE, on=day(2))

    [rescheduled] = plan_summaries(account, "Payment plan of EUR 1,200.00 rescheduled")
    assert rescheduled.endswith(f" on {day(10 + 30 * 23):%-d %b %Y} — {NOTE}")


def test_a_note_longer_than_the_plan_keeps_is_refused_at_entry_saying_so(make_account, collector):
    account = make_account()
    form = PlanForm({"note": NOTE + "!"}, customer=account, today=LATE)

    assert not form.is_valid()
    assert form.errors["note"] == [f"Ensure this value has at most {NOTE_MAX_LENGTH} characters (it has "
                                   f"{NOTE_MAX_LENGTH + 1})."]


def test_whatever_an_entry_says_is_kept_whole(make_account, manager):
    account = make_account()
    event_record(customer=account, kind=EventKind.NOTE, actor=manager, summary=f"Step declined: {NOTE * 3}")

    assert account.events.get(kind=EventKind.NOTE).summary == f"Step declined: {NOTE * 3}"
