"""A collector agrees a payment plan alone only when it is near and short: a
first instalment or a last one further away than the rules' days and months
is a manager's decision, like a large amount."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import CollectionRules, PlanStatus
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoice(customer, make_invoice):
    return make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="900.00")


def propose(customer, actor, invoice, *dates):
    share = invoice.open_amount / len(dates)
    return workspace.plan_propose(customer=customer, actor=actor, invoices=[invoice], on=TODAY,
                                  instalments=[(d, share) for d in dates])


def test_a_short_plan_starting_soon_is_agreed_by_the_collector_alone(customer, collector, invoice):
    plan = propose(customer, collector, invoice, dt.date(2025, 9, 4), dt.date(2025, 10, 4),
                   dt.date(2026, 8, 5))

    assert plan.status == PlanStatus.ACTIVE


@pytest.mark.parametrize(("dates", "why"), [
    ((dt.date(2025, 9, 5), dt.date(2025, 10, 5)),
     "its first instalment, on 5 Sep 2025, is more than 30 days away, later than a collector may agree "
     "alone"),
    ((dt.date(2025, 8, 10), dt.date(2026, 8, 6)),
     "its last instalment, on 6 Aug 2026, is more than 12 months away, beyond the collectors' limit"),
    ((dt.date(2026, 3, 1), dt.date(2026, 4, 1)),
     "its first instalment, on 1 Mar 2026, is more than 92 days away, further than a plan's instalments "
     "may be apart (check the year)"),
])
def test_a_plan_starting_late_or_running_long_waits_for_a_manager_saying_why(
    customer, collector, invoice, dates, why
):
    plan = propose(customer, collector, invoice, *dates)

    assert plan.status == PlanStatus.AWAITING_APPROVAL
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.PAYMENT_PLAN).latest("pk")
    assert event.summary.endswith(f"; {why}, so it waits for a manager")
    assert workspace.plan_waits_because(plan) == why
    assert not customer.dunning_pauses.filter(plan=plan).exists()  # nothing paused before a manager decides


def test_the_days_and_months_are_the_rules_a_manager_sets(customer, collector, invoice):
    CollectionRules.objects.update_or_create(pk=1, defaults={"plan_first_within_days": 45,
                                                             "plan_max_months": 18})

    plan = propose(customer, collector, invoice, dt.date(2025, 9, 19), dt.date(2027, 2, 5))

    assert plan.status == PlanStatus.ACTIVE


def test_a_manager_agrees_a_long_plan_at_once(customer, manager, invoice):
    plan = propose(customer, manager, invoice, dt.date(2025, 9, 30), dt.date(2027, 9, 30))

    assert plan.status == PlanStatus.ACTIVE


def test_a_plan_over_more_than_one_limit_names_every_rule_it_breaks(customer, collector, make_invoice):
    big = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="9000.00")

    plan = propose(customer, collector, big, dt.date(2025, 9, 20), dt.date(2026, 12, 1))

    assert workspace.plan_waits_because(plan) == (
        "it is above the collectors' limit of EUR 5,000.00, and its first instalment, on 20 Sep 2025, is "
        "more than 30 days away, later than a collector may agree alone, and its last instalment, on "
        "1 Dec 2026, is more than 12 months away, beyond the collectors' limit"
    )
    assert plan.total_amount == Decimal("9000.00")


def test_the_decision_page_names_a_first_instalment_a_year_away_as_well_as_the_amount(
    client, customer, collector, manager, make_invoice
):
    big = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="9000.00")
    plan = propose(customer, collector, big, dt.date(2026, 8, 1), dt.date(2026, 9, 1))
    client.force_login(manager)

    page = " ".join(re.sub(r"<[^>]+>", " ", client.get(
        reverse("collections:plan_decide", args=[plan.pk])).content.decode()).split())

    assert "above the collectors' limit of EUR 5,000.00" in page.replace("&#x27;", "'")
    assert ("its first instalment, on 1 Aug 2026, is more than 92 days away, further than a plan's "
            "instalments may be apart (check the year)") in page.replace("&#x27;", "'")


def test_a_plan_running_into_later_years_names_them_on_the_timeline(customer, manager, invoice):
    propose(customer, manager, invoice, dt.date(2025, 9, 30), dt.date(2026, 3, 31))

    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.PAYMENT_PLAN).earliest("pk")
    assert event.summary == ("Payment plan of EUR 900.00 agreed: EUR 450.00 on 30 Sep 2025, "
                             "EUR 450.00 on 31 Mar 2026")
