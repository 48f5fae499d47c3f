"""A policy or collection rules saved before today's checks keep running as
saved: a manager sees what is wrong now, on every page that shows or uses
them and in `manage.py check --database default`, in the words a save would refuse with, and
nothing is changed by looking."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from ar_collections.models import (
    ActionStatus,
    CollectionRules,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    LatePaymentPolicy,
    contact_gap_problems,
)
from customers.models import Segment

pytestmark = pytest.mark.usefixtures("default_ladders")

FROZEN_GAP = 365


@pytest.fixture
def frozen_policy() -> LatePaymentPolicy:
    """The prompt ladder with a year between contacts, saved before the gap was checked."""
    policy = LatePaymentPolicy.objects.get(segment=Segment.PROMPT, is_active=True)
    LatePaymentPolicy.objects.filter(pk=policy.pk).update(min_days_between_contacts=FROZEN_GAP)
    policy.refresh_from_db()
    return policy


def refusal(policy: LatePaymentPolicy) -> str:
    """What saving the policy as it stands is refused with."""
    [said] = contact_gap_problems(policy.steps.in_ladder(), min_gap=policy.min_days_between_contacts)
    return said


def text(response) -> str:
    return response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


def test_the_policy_list_names_a_policy_whose_gap_freezes_its_ladder(admin_client, frozen_policy):
    said = refusal(frozen_policy)
    assert said.startswith(f"At least {FROZEN_GAP} days between contacts is longer than the ")

    page = text(admin_client.get(reverse("admin:collections_latepaymentpolicy_changelist")))

    assert said in page
    assert page.count("days between contacts is longer than") == 1  # the other ladders are sound


def test_the_policy_page_says_it_without_saving(admin_client, frozen_policy):
    before = frozen_policy.updated_at

    page = text(admin_client.get(reverse("admin:collections_latepaymentpolicy_change",
                                         args=[frozen_policy.pk])))

    assert refusal(frozen_policy) in page
    frozen_policy.refresh_from_db()
    assert (frozen_policy.min_days_between_contacts, frozen_policy.updated_at) == (FROZEN_GAP, before)


def test_a_sound_policy_s_page_says_nothing_of_it(admin_client):
    sound = LatePaymentPolicy.objects.get(segment=Segment.PROMPT, is_active=True)

    page = text(admin_client.get(reverse("admin:collections_latepaymentpolicy_change", args=[sound.pk])))

    assert "days between contacts is longer than" not in page


def run_with_a_step_of(policy: LatePaymentPolicy, make_customer) -> DunningRun:
    today = dt.date(2025, 8, 5)
    run = DunningRun.objects.create(run_date=today)
    customer = make_customer(segment=policy.segment)
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=today)
    DunningAction.objects.create(run=run, cycle=cycle, customer=customer, status=ActionStatus.DONE,
                                 step=DunningStep.objects.filter(policy=policy).order_by("position").first(),
                                 planned_on=today, pay_by=today + dt.timedelta(days=7))
    return run


def test_the_run_page_names_the_frozen_policy_its_steps_came_from(client, manager, make_customer,
                                                                  frozen_policy):
    run = run_with_a_step_of(frozen_policy, make_customer)
    client.force_login(manager)

    page = text(client.get(reverse("collections:run_detail", args=[run.pk])))

    assert f"{frozen_policy.name}: {refusal(frozen_policy)}" in page


def test_a_run_of_other_ladders_says_nothing_of_it(client, manager, make_customer, frozen_policy):
    other = LatePaymentPolicy.objects.get(segment=Segment.SYSTEMATIC_LATE, is_active=True)
    run = run_with_a_step_of(other, make_customer)
    client.force_login(manager)

    page = text(client.get(reverse("collections:run_detail", args=[run.pk])))

    assert "days between contacts is longer than" not in page


def test_coming_up_says_which_ladder_its_gap_freezes(client, manager, frozen_policy):
    client.force_login(manager)

    page = text(client.get(reverse("collections:coming_up")))

    assert f"{frozen_policy.name}: {refusal(frozen_policy)}" in page


@pytest.fixture
def rules_out_of_bounds() -> CollectionRules:
    """Rules saved before their bounds: a pause of 400 days, plans of 0 months."""
    CollectionRules.current()
    CollectionRules.objects.filter(pk=1).update(max_pause_days=400, plan_max_months=0)
    return CollectionRules.current()


PAUSE_REFUSED = ("A collector may pause dunning for at most 365 days: even a manager's exception holds it a "
                 "year at most. 0 sends every pause to a manager.")
PLAN_REFUSED = "A payment plan a collector agrees alone may run at least 1 month: with 0 no plan would be"


def test_the_collection_rules_list_and_page_say_which_limits_are_out_of_bounds(admin_client,
                                                                               rules_out_of_bounds):
    listed = text(admin_client.get(reverse("admin:collections_collectionrules_changelist")))
    page = text(admin_client.get(reverse("admin:collections_collectionrules_change", args=[1])))

    for said in (listed, page):
        assert PAUSE_REFUSED in said
        assert PLAN_REFUSED in said
    rules = CollectionRules.current()
    assert (rules.max_pause_days, rules.plan_max_months) == (400, 0)


def test_manage_py_check_warns_of_them(frozen_policy, rules_out_of_bounds, capsys):
    call_command("check", databases=["default"])

    said = capsys.readouterr().err.replace("\n", " ")
    assert "collections.W001" in said and frozen_policy.name in said
    assert refusal(frozen_policy)[:60] in said
    assert "collections.W002" in said and PAUSE_REFUSED[:60] in said


def test_manage_py_check_says_nothing_of_sound_policies_and_rules(capsys):
    CollectionRules.current()

    call_command("check", databases=["default"])

    said = capsys.readouterr()
    assert "collections.W00" not in said.out + said.err


def test_checks_run_without_naming_a_database_reach_none(frozen_policy, django_assert_num_queries, capsys):
    """As a Celery worker's start runs them, and `runserver`."""
    with django_assert_num_queries(0):
        call_command("check")

    assert "collections.W00" not in capsys.readouterr().err
