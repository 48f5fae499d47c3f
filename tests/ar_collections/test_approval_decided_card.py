"""A step decided on the approvals page says plainly who decided what, when,
and the manager's note, as the timeline does: not "Approved: done by ..."."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from ar_collections import services
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    StepAction,
)

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
# The clock is frozen at 09:00 UTC, the office's time zone.
WHEN = "on 5 Aug 2025 at 09:00"
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def maren(manager):
    manager.first_name, manager.last_name = "Maren", "Holt"
    manager.save()
    return manager


@pytest.fixture
def make_action(make_invoice):
    """make_action(customer, action) → that systematic-late step waiting for a
    manager, listing one overdue invoice of EUR 100.00 (or, `paid`, one paid since)."""

    def make(customer, action=StepAction.CREDIT_HOLD, *, paid=False) -> DunningAction:
        run, _ = DunningRun.objects.get_or_create(run_date=TODAY)
        cycle, _ = DunningCycle.objects.get_or_create(
            customer=customer, closed_on=None, defaults={"number": 1, "opened_on": TODAY})
        # No shipped ladder has a manager review: its credit hold becomes one.
        asked = StepAction.CREDIT_HOLD if action == StepAction.MANAGER_REVIEW else action
        step = DunningStep.objects.get(policy__segment="systematic_late", action=asked)
        if action != asked:
            DunningStep.objects.filter(pk=step.pk).update(action=action)
            step.refresh_from_db()
        planned = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=ActionStatus.AWAITING_APPROVAL,
            planned_on=TODAY, pay_by=TODAY + dt.timedelta(days=7))
        invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                               paid_on=TODAY if paid else None)
        DunningActionInvoice.objects.create(action=planned, invoice=invoice, open_amount=100,
                                            currency=invoice.currency)
        return planned

    return make


def decided(client, action, decision: str, note: str) -> str:
    response = client.post(reverse("collections:action_decide", args=[action.pk]),
                           {"decision": decision, "note": note}, headers=HTMX)
    assert response.status_code == 200, response.content.decode()
    found = re.search(r'<p class="decided">(.*?)</p>', response.content.decode(), re.S)
    assert found, response.content.decode()
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).replace("&#x27;", "'").split())


def test_an_approved_credit_hold_says_who_approved_it_when_and_their_note(
    client, maren, customer, make_action
):
    client.force_login(maren)

    said = decided(client, make_action(customer), "approve", "Third promise broken this year")

    assert said == (f"Approved by Maren Holt {WHEN}: the account is on credit hold. "
                    "Their note: “Third promise broken this year”")


def test_a_declined_switch_to_cod_says_who_declined_it_when_and_their_note(
    client, maren, customer, make_action
):
    client.force_login(maren)

    said = decided(client, make_action(customer, StepAction.SWITCH_TO_COD), "decline", "Big order next month")

    assert said == (f"Declined by Maren Holt {WHEN}: no switch to C.O.D.; the ladder goes on. "
                    "Their note: “Big order next month”")


def test_a_manager_review_says_who_reviewed_it(client, maren, customer, make_action):
    client.force_login(maren)

    said = decided(client, make_action(customer, StepAction.MANAGER_REVIEW), "approve", "Weighed: go on")

    assert said == f"Reviewed by Maren Holt {WHEN}: the ladder goes on. Their note: “Weighed: go on”"


def test_an_approval_that_came_to_nothing_says_so_and_keeps_the_note(client, maren, customer, make_action):
    client.force_login(maren)

    said = decided(client, make_action(customer, paid=True), "approve", "Late again")

    assert said.startswith(f"Approved by Maren Holt {WHEN}, but not carried out: by approval every listed "
                           "invoice was paid"), said
    assert said.endswith("Their note: “Late again”"), said


def test_a_step_decided_meanwhile_by_another_manager_shows_their_decision(
    client, maren, other_manager, customer, make_action
):
    action = make_action(customer)
    services.action_decline(action=action, manager=other_manager, note="Talk to them first")
    client.force_login(maren)

    response = client.post(reverse("collections:action_decide", args=[action.pk]),
                           {"decision": "approve", "note": "Hold them"}, headers=HTMX)

    html = " ".join(response.content.decode().split())
    assert response.status_code == 422
    assert f"Declined by mark {WHEN}: no credit hold; the ladder goes on." in html
    assert "Their note: “Talk to them first”" in html
