"""Promises and payment plans on an invoice disputed in part ("10 of 50
pallets were damaged"): the customer may promise or plan the rest, and
the plan asks for it only, whatever becomes of the dispute."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ar_collections import numbers, workspace
from ar_collections.models import (
    CollectionRules,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    InstalmentStatus,
    Invoice,
    PaymentPlan,
    PlanStatus,
    Promise,
    WorkItem,
    WorkKind,
)
from tests.ar_collections.conftest import frozen, sent_once
from tests.ar_collections.plans import LATE, day, instalments_of, mornings, schedule

pytestmark = pytest.mark.usefixtures("default_ladders")


@pytest.fixture
def account(make_account):
    return make_account()


@pytest.fixture
def invoices(account) -> list[Invoice]:
    return list(account.invoices.order_by("total_amount"))  # EUR 500, EUR 700


def dispute(account, invoice, collector, *, on: dt.date = LATE, amount: str | None = None) -> Dispute:
    return workspace.dispute_open(customer=account, actor=collector, invoice=invoice, on=on,
                                  reason=DisputeReason.QUANTITY, description="10 of 50 pallets damaged",
                                  amount=None if amount is None else Decimal(amount))


def refusal(error: ValidationError, field: str = "invoices") -> str:
    return " ".join(error.message_dict[field])


def test_a_promise_may_cover_the_undisputed_rest_of_an_invoice_disputed_in_part(account, invoices, collector):
    _, large = invoices
    dispute(account, large, collector, amount="200.00")

    promise = workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.00"),
                                       promised_on=day(7), invoices=[large], on=LATE)

    assert promise.amount == Decimal("500.00")
    assert list(promise.invoices.all()) == [large]


def test_a_promise_for_more_than_the_undisputed_rest_is_refused_and_says_how_much_is_disputed(
    account, invoices, collector
):
    _, large = invoices
    dispute(account, large, collector, amount="200.00")

    with pytest.raises(ValidationError) as refused:
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("500.01"),
                                 promised_on=day(7), invoices=[large], on=LATE)

    assert refusal(refused.value, "amount") == (
        "The invoices chosen owe EUR 500.00 not disputed (EUR 200.00 of the EUR 700.00 open is under "
        "dispute); a promise cannot be for more.")
    assert not Promise.objects.exists()


def test_an_invoice_disputed_in_full_is_refused_for_a_promise_and_a_plan(account, invoices, collector):
    _, large = invoices
    dispute(account, large, collector)

    with pytest.raises(ValidationError) as promised:
        workspace.promise_record(customer=account, actor=collector, amount=Decimal("100.00"),
                                 promised_on=day(7), invoices=invoices, on=LATE)
    with pytest.raises(ValidationError) as planned:
        workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                               instalments=schedule((10, "600.00"), (40, "600.00")))

    assert refusal(promised.value) == (f"{large.number} is disputed in full: settle the dispute first, or "
                                       "leave it out of the promise.")
    assert refusal(planned.value) == (f"{large.number} is disputed in full: settle the dispute first, or "
                                      "leave it out of the plan.")
    assert not Promise.objects.exists() and not PaymentPlan.objects.exists()


def test_a_plan_covers_what_is_open_less_what_is_disputed(account, invoices, collector):
    _, large = invoices
    dispute(account, large, collector, amount="200.00")

    with pytest.raises(ValidationError) as refused:
        workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                               instalments=schedule((10, "600.00"), (40, "600.00")))
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "500.00"), (40, "500.00")))

    assert refusal(refused.value, "instalments") == (
        "The instalments add up to EUR 1,200.00 but the invoices owe EUR 1,000.00 not disputed "
        "(EUR 200.00 of the EUR 1,200.00 open is under dispute).")
    assert (plan.status, plan.total_amount) == (PlanStatus.ACTIVE, Decimal("1000.00"))


def test_the_plan_form_spreads_only_the_undisputed_rest_over_the_instalments(
    client, account, invoices, collector
):
    _, large = invoices
    dispute(account, large, collector, amount="200.00")
    client.force_login(collector)

    with frozen(LATE):
        response = client.post(reverse("collections:plan_propose", args=[account.pk]), sent_once({
            "invoices": [i.pk for i in invoices], "instalment_count": "2",
            "first_due_on": day(10).isoformat(), "every_days": "30"}))

    assert response.status_code == 302
    plan = PaymentPlan.objects.get()
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("500.00"), Decimal("500.00")]


def test_the_plan_form_says_how_much_of_an_invoice_is_disputed(client, account, invoices, collector):
    small, large = invoices
    dispute(account, large, collector, amount="200.00")
    client.force_login(collector)

    html = client.get(reverse("collections:plan_propose", args=[account.pk]),
                      headers={"HX-Request": "true"}).content.decode()

    labels = dict(re.findall(r'(INV-\d+) · ([^<]*)</label>', html))
    assert labels[large.number].endswith("· EUR 200.00 of it under open dispute")
    assert "dispute" not in labels[small.number]


def test_an_instalment_short_by_what_a_dispute_the_plan_left_out_covers_is_missed_not_held_back(
    account, invoices, collector
):
    """The plan never asked for the EUR 200.00 disputed: paying that much less
    than an instalment asks is not holding it back, it is missing it."""
    small, large = invoices
    dispute(account, large, collector, amount="200.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "500.00"), (40, "500.00")))

    mornings(account, 1, 10 + plan.grace_days + 1, {10: [(small, "300.00")]})

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert WorkItem.objects.filter(kind=WorkKind.INSTALMENT_MISSED).exists()


def test_a_dispute_of_part_of_an_invoice_opened_during_a_plan_lets_only_that_part_be_held_back(
    account, invoices, collector
):
    """EUR 1,200.00 in three instalments of EUR 400.00; on day 5 the customer
    disputes EUR 100.00 of the large invoice. Instalment 1 short by EUR 100.00
    is held back; instalment 2 short by another EUR 100.00 is missed: the
    dispute does not cover it, as it would had it taken the whole invoice."""
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "400.00"), (40, "400.00"), (70, "400.00")))
    dispute(account, large, collector, on=day(5), amount="100.00")

    mornings(account, 6, 10 + plan.grace_days + 1, {10: [(small, "300.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert instalments_of(plan)[0][3] == InstalmentStatus.HELD

    mornings(account, 10 + plan.grace_days + 2, 40 + plan.grace_days + 1, {40: [(small, "200.00")]})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN


def test_a_credit_for_a_dispute_the_plan_left_out_does_not_lower_what_the_plan_asks(
    account, invoices, collector, manager
):
    _, large = invoices
    disputed = dispute(account, large, collector, amount="200.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "500.00"), (40, "500.00")))

    workspace.dispute_resolve(dispute=disputed, actor=manager, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("200.00"), note="Damaged pallets credited", on=day(3))

    plan.refresh_from_db()
    assert plan.total_amount == Decimal("1000.00")
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("500.00"), Decimal("500.00")]


def test_a_rejected_dispute_the_plan_left_out_is_asked_with_the_next_instalment(
    account, invoices, collector, manager
):
    """The customer owes the EUR 200.00 after all, and the plan holds dunning
    of the invoice: the plan asks for it, with its next instalment."""
    _, large = invoices
    disputed = dispute(account, large, collector, amount="200.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "500.00"), (40, "500.00")))

    workspace.dispute_resolve(dispute=disputed, actor=manager, outcome=DisputeOutcome.REJECTED,
                              note="The pallets arrived whole", on=day(3))

    plan.refresh_from_db()
    assert plan.total_amount == Decimal("1200.00")
    assert [amount for _, _, amount, _ in instalments_of(plan)] == [Decimal("700.00"), Decimal("500.00")]
    assert account.events.filter(summary__contains="EUR 200.00 left out of the plan while disputed is asked "
                                                   "with instalment 1").exists()


def test_a_dispute_the_plan_left_out_is_not_news_to_the_manager_deciding_it(account, invoices, collector):
    _, large = invoices
    dispute(account, large, collector, amount="200.00")
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("100.00")
    rules.save()
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "500.00"), (40, "500.00")))

    assert plan.status == PlanStatus.AWAITING_APPROVAL
    assert workspace.disputes_opened_since(plan) == []


def test_money_naming_no_invoice_pays_the_undisputed_rest_of_an_invoice_disputed_in_part_on_a_plan(
    account, invoices, collector
):
    """The customer pays its instalment without naming an invoice: the plan
    asks for the EUR 500.00 not disputed of the large invoice, so the money
    goes there (oldest due first), never into the EUR 200.00 disputed."""
    small, large = invoices
    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=LATE,
                             allocations=[(small, Decimal("500.00"))])
    dispute(account, large, collector, amount="200.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=LATE,
                                  instalments=schedule((10, "250.00"), (40, "250.00")))

    owed, later = workspace.unnamed_money_split(customer=account, currency="EUR", amount=Decimal("800.00"),
                                                received_on=day(10))

    assert [(i.number, part) for i, part in owed] == [(large.number, Decimal("500.00"))]
    assert later == []
    assert plan.status == PlanStatus.ACTIVE


def test_money_naming_no_invoice_still_leaves_an_invoice_disputed_in_part_off_a_plan_alone(
    account, invoices, collector
):
    _, large = invoices
    dispute(account, large, collector, amount="200.00")

    owed, _ = workspace.unnamed_money_split(customer=account, currency="EUR", amount=Decimal("800.00"),
                                            received_on=day(10))

    assert large.number not in [i.number for i, _ in owed]


def test_money_naming_no_invoice_leaves_an_invoice_on_a_plan_disputed_in_full_alone(
    account, invoices, collector
):
    small, large = invoices
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "600.00"), (40, "600.00")))
    dispute(account, large, collector, on=day(2))
    assert plan.invoices.count() == 2

    owed, _ = workspace.unnamed_money_split(customer=account, currency="EUR", amount=Decimal("1000.00"),
                                            received_on=day(10))

    assert [(i.number, part) for i, part in owed] == [(small.number, Decimal("500.00"))]


def test_the_payment_form_naming_no_invoice_pays_the_plan_on_an_invoice_disputed_in_part(
    client, account, invoices, collector, manager
):
    small, large = invoices
    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=LATE,
                             allocations=[(small, Decimal("500.00"))])
    dispute(account, large, collector, amount="200.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=LATE,
                                  instalments=schedule((10, "250.00"), (40, "250.00")))
    client.force_login(manager)

    with frozen(day(10)):
        response = client.post(reverse("collections:payment_record", args=[account.pk]), {
            "amount": "250.00", "currency": "EUR", "received_on": day(10).isoformat(),
            "reference": "BANK-77", "method": "bank_transfer",
        })

    assert response.status_code == 302
    large.refresh_from_db()
    assert large.open_amount == Decimal("450.00")
    assert instalments_of(plan)[0][3] == InstalmentStatus.PAID


def test_the_forecast_expects_the_undisputed_rest_on_a_plan_on_its_instalment_dates(
    account, invoices, collector
):
    """EUR 200.00 of the EUR 700.00 invoice disputed, the EUR 500.00 rest in
    two instalments: the rest is expected on the instalments' days, and only
    the EUR 200.00 is left out as disputed."""
    small, large = invoices
    dispute(account, large, collector, amount="200.00")
    workspace.plan_propose(customer=account, actor=collector, invoices=[large], on=LATE,
                           instalments=schedule((10, "250.00"), (40, "250.00")))

    found = numbers.figures(numbers.Scope(), today=LATE,
                            periods=[numbers.Period.ending(dt.date(2026, 2, 1), months=1)])
    forecast = {c.currency: c for c in found}["EUR"].forecast

    assert (forecast.disputed.amount, forecast.disputed.count) == (Decimal("200.00"), 1)
    assert [week.instalments for week in forecast.weeks] == [
        0, Decimal("250.00"), 0, 0, 0, Decimal("250.00"), 0, 0][:len(forecast.weeks)]
    assert sum(week.invoices for week in forecast.weeks) == 0
    assert forecast.overdue_beyond_usual.amount == small.open_amount


def test_off_a_plan_too_the_forecast_leaves_out_only_the_disputed_part_and_expects_the_rest(
    account, invoices, collector
):
    """As the invoice copy asks for the EUR 500.00 not under dispute, the
    forecast expects it; only the EUR 200.00 disputed is left out."""
    small, large = invoices
    dispute(account, large, collector, amount="200.00")

    found = numbers.figures(numbers.Scope(), today=LATE,
                            periods=[numbers.Period.ending(dt.date(2026, 2, 1), months=1)])
    forecast = {c.currency: c for c in found}["EUR"].forecast

    assert (forecast.disputed.amount, forecast.disputed.count) == (Decimal("200.00"), 1)
    expected = forecast.overdue_beyond_usual.amount + forecast.total + forecast.later
    assert expected == small.open_amount + Decimal("500.00")


@pytest.fixture
def limit_1100(db):
    rules = CollectionRules.current()
    rules.plan_approval_above_amount = Decimal("1100.00")
    rules.save()


def collector_plan_then_dispute_rejected(account, invoices, collector, manager) -> PaymentPlan:
    """The collector agrees EUR 1,000.00 alone, EUR 200.00 left out while
    disputed; the dispute is rejected, so the plan asks EUR 1,200.00."""
    _, large = invoices
    disputed = dispute(account, large, collector, amount="200.00")
    plan = workspace.plan_propose(customer=account, actor=collector, invoices=invoices, on=LATE,
                                  instalments=schedule((10, "500.00"), (40, "500.00")))
    assert plan.status == PlanStatus.ACTIVE
    workspace.dispute_resolve(dispute=disputed, actor=manager, outcome=DisputeOutcome.REJECTED,
                              note="The pallets arrived whole", on=day(3))
    plan.refresh_from_db()
    return plan


@pytest.mark.usefixtures("limit_1100")
def test_a_rejected_dispute_taking_a_collectors_plan_beyond_the_limit_makes_it_wait_for_a_manager(
    account, invoices, collector, manager
):
    plan = collector_plan_then_dispute_rejected(account, invoices, collector, manager)

    assert (plan.status, plan.total_amount) == (PlanStatus.AWAITING_APPROVAL, Decimal("1200.00"))
    assert account.events.filter(summary__contains=(
        "the plan now asks EUR 1,200.00: it is above the collectors' limit of EUR 1,100.00, so it waits "
        "for a manager")).exists()
    # Dunning stays paused meanwhile: the customer is paying as agreed.
    assert account.dunning_pauses.filter(plan=plan, lifted_at__isnull=True).count() == 2


@pytest.mark.usefixtures("limit_1100")
def test_the_manager_approving_it_keeps_one_pause_per_invoice(account, invoices, collector, manager):
    plan = collector_plan_then_dispute_rejected(account, invoices, collector, manager)

    workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Fine.", on=day(4))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert account.dunning_pauses.filter(plan=plan, lifted_at__isnull=True).count() == 2


@pytest.mark.usefixtures("limit_1100")
def test_the_manager_rejecting_it_lets_dunning_resume(account, invoices, collector, manager):
    plan = collector_plan_then_dispute_rejected(account, invoices, collector, manager)

    workspace.plan_decide(plan=plan, manager=manager, approve=False, note="Too much.", on=day(4))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.REJECTED
    assert not account.dunning_pauses.filter(plan=plan, lifted_at__isnull=True).exists()


def test_a_rejected_dispute_keeping_a_collectors_plan_within_the_limit_leaves_it_in_force(
    account, invoices, collector, manager
):
    plan = collector_plan_then_dispute_rejected(account, invoices, collector, manager)

    assert plan.status == PlanStatus.ACTIVE
