"""Managers own the policy in the admin: a ladder saved there holds together,
steps can be reordered, and every change keeps its values before and after."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ar_collections.dunning import run_plan, run_start
from ar_collections.models import (
    STEP_ON_RECORD,
    ActionStatus,
    CollectionRules,
    DunningAction,
    DunningStep,
    Holiday,
    LatePaymentPolicy,
    MoneyPointScale,
    PolicyMinimum,
    StepAction,
    StepFee,
    Tone,
)
from customers.models import Segment, TermsType

from .conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


def policy_post(policy, step_changes: dict[int, dict]) -> dict:
    """The policy's change form as the admin posts it, with some steps' fields changed."""
    data = {"name": policy.name, "segment": policy.segment, "description": policy.description,
            "is_active": "on" if policy.is_active else "", "auto_send": "on" if policy.auto_send else "",
            "min_days_between_contacts": policy.min_days_between_contacts}
    steps = list(policy.steps.order_by("position"))
    data.update({"steps-TOTAL_FORMS": len(steps), "steps-INITIAL_FORMS": len(steps),
                 "steps-MIN_NUM_FORMS": 0, "steps-MAX_NUM_FORMS": 1000})
    for n, step in enumerate(steps):
        fields = {"id": step.pk, "policy": policy.pk, "position": step.position,
                  "day_offset": step.day_offset, "action": step.action, "tone": step.tone,
                  "pay_by_days": step.pay_by_days, "interest_rate_percent": step.interest_rate_percent,
                  "retired": "on" if step.retired else ""}
        fields.update(step_changes.get(step.position, {}))
        data.update({f"steps-{n}-{k}": v for k, v in fields.items()})
    minimums = list(policy.minimums.order_by("pk"))
    data.update({"minimums-TOTAL_FORMS": len(minimums), "minimums-INITIAL_FORMS": len(minimums),
                 "minimums-MIN_NUM_FORMS": 0, "minimums-MAX_NUM_FORMS": 1000})
    for n, minimum in enumerate(minimums):
        data.update({f"minimums-{n}-id": minimum.pk, f"minimums-{n}-policy": policy.pk,
                     f"minimums-{n}-currency": minimum.currency,
                     f"minimums-{n}-min_amount": minimum.min_amount,
                     f"initial-minimums-{n}-currency": minimum.currency})
    return data


# A step's own page posts its fees' formset; these steps have none.
NO_FEES = {"fees-TOTAL_FORMS": 0, "fees-INITIAL_FORMS": 0, "fees-MIN_NUM_FORMS": 0,
           "fees-MAX_NUM_FORMS": 1000}


def change_url(policy) -> str:
    return reverse("admin:collections_latepaymentpolicy_change", args=[policy.pk])


def prompt() -> LatePaymentPolicy:
    return LatePaymentPolicy.objects.get(segment="prompt", is_active=True)


def ladder(policy) -> list[tuple]:
    return list(policy.steps.order_by("position").values_list("position", "day_offset", "action", "tone"))


def test_a_ladder_whose_tone_softens_is_refused_and_nothing_is_saved(admin_client):
    policy = prompt()
    before = ladder(policy)

    response = admin_client.post(change_url(policy), policy_post(policy, {4: {"tone": Tone.FRIENDLY}}))

    assert response.status_code == 200  # the form again, with the reason
    assert "Step 4 is friendly, softer than step 3; tone may only get firmer." in response.content.decode()
    assert ladder(policy) == before


def test_a_step_that_overtakes_the_pay_by_date_before_it_is_refused(admin_client):
    policy = prompt()  # step 1 on day 3 gives 10 days to pay

    response = admin_client.post(change_url(policy), policy_post(policy, {2: {"day_offset": 10}}))

    assert "Step 2 (day 10) would overtake step 1&#x27;s pay-by date (day 13)." in response.content.decode()
    assert policy.steps.get(position=2).day_offset == 14


def test_two_steps_swap_places_and_the_change_is_kept_with_before_and_after(admin_client):
    policy = prompt()  # step 2: a letter on day 14; step 3: the principal on day 28, both firm
    letter, principal = policy.steps.get(position=2), policy.steps.get(position=3)

    response = admin_client.post(change_url(policy), policy_post(
        policy, {2: {"position": 3, "day_offset": 28}, 3: {"position": 2, "day_offset": 14}}
    ))

    assert response.status_code == 302
    assert ladder(policy) == [
        (1, 3, StepAction.EMAIL, Tone.FRIENDLY), (2, 14, StepAction.ESCALATE_PRINCIPAL, Tone.FIRM),
        (3, 28, StepAction.LETTER, Tone.FIRM), (4, 42, StepAction.MANAGER_REVIEW, Tone.FINAL),
    ]
    entry = LogEntry.objects.get(object_id=str(policy.pk))
    changes = {c["changed"]["object"]: c["changed"] for c in json.loads(entry.change_message)}
    moved = {pk: changes[str(DunningStep.objects.get(pk=pk))] for pk in (letter.pk, principal.pk)}
    assert moved[letter.pk]["before"] == {"position": 2, "day_offset": 14}
    assert moved[principal.pk]["after"] == {"position": 2, "day_offset": 14}
    history = admin_client.get(reverse("admin:collections_latepaymentpolicy_history", args=[policy.pk]))
    assert "Changed Position and Day offset" in history.content.decode()  # the usual words still read


def test_the_history_page_shows_what_each_change_was_from_and_to_in_words(admin_client):
    """A manager asking who changed the ladder reads the values on the history
    page itself, choices by their labels, not only the names of the fields."""
    policy = prompt()
    data = policy_post(policy, {2: {"action": StepAction.CALL_TASK, "tone": Tone.FINAL},
                                3: {"tone": Tone.FINAL}})
    data["min_days_between_contacts"] = 6

    assert admin_client.post(change_url(policy), data).status_code == 302

    history = admin_client.get(reverse("admin:collections_latepaymentpolicy_history", args=[policy.pk]))
    page = history.content.decode()
    assert "Changed Min days between contacts: 5 → 6." in page
    step = str(policy.steps.get(position=2))
    assert (f"Changed Action and Tone for dunning step “{step}”: "
            "Action PDF letter → Call task for the collector, Tone Firm → Final.") in page


def test_one_step_edited_alone_must_fit_its_ladder(admin_client):
    step = prompt().steps.get(position=4)
    url = reverse("admin:collections_dunningstep_change", args=[step.pk])
    data = {"policy": step.policy_id, "position": 4, "day_offset": 42, "action": step.action,
            "tone": Tone.FRIENDLY, "pay_by_days": 7, "interest_rate_percent": "0", **NO_FEES}

    response = admin_client.post(url, data)

    assert "softer than step 3" in response.content.decode()
    step.refresh_from_db()
    assert step.tone == Tone.FINAL


def test_a_step_with_no_days_to_pay_is_refused_in_words_a_manager_understands(admin_client):
    policy = prompt()

    response = admin_client.post(change_url(policy), policy_post(policy, {2: {"pay_by_days": 0}}))

    html = response.content.decode()
    assert "A step must give at least 1 day to pay." in html
    assert "step_pay_by_positive" not in html
    assert policy.steps.get(position=2).pay_by_days == 10  # nothing saved


@pytest.mark.parametrize(("day", "pay_by", "said"), [
    (200, 100, "Step 9 gives 100 days to pay; a step gives at most 90."),
    (50, 30000, "Step 9 gives 30000 days to pay; a step gives at most 90."),
    (400, 7, "Step 9 runs on day 400; a step runs at most 365 days after the due date."),
    (-400, 7, "Step 9 runs on day -400; a step runs at most 365 days before the due date."),
])
def test_a_step_the_planner_cannot_follow_is_refused_with_the_reason(admin_client, day, pay_by, said):
    policy = prompt()
    data = {"policy": policy.pk, "position": 9, "day_offset": day, "action": StepAction.EMAIL,
            "tone": Tone.FINAL, "pay_by_days": pay_by, "interest_rate_percent": "0", **NO_FEES}

    response = admin_client.post(reverse("admin:collections_dunningstep_add"), data)

    assert response.status_code == 200
    assert said in response.content.decode()
    assert not policy.steps.filter(position=9).exists()


def test_a_ladder_with_a_step_the_planner_cannot_follow_is_refused_on_the_policy_page(admin_client):
    policy = prompt()

    response = admin_client.post(change_url(policy), policy_post(policy, {4: {"pay_by_days": 1000}}))

    assert "Step 4 gives 1000 days to pay; a step gives at most 90." in response.content.decode()
    assert policy.steps.get(position=4).pay_by_days == 7


def gap_refusal(gap: int, steps: list) -> str:
    """What the policy simulator says of a gap longer than the ladder, word for word."""
    first, last = steps[0], steps[-1]
    return (f"At least {gap} days between contacts is longer than the {last.day_offset - first.day_offset} "
            f"days from step {first.position} to step {last.position}: every step after the first would "
            "come that long after the one before, whatever its day. Give a shorter gap.")


def test_a_gap_between_contacts_longer_than_the_ladder_is_refused_as_the_simulator_refuses_it(admin_client):
    """A year between contacts put every step after the first a year after
    the one before: credit hold and C.O.D. never came. The simulator refused
    the gap; the policy's page saved it without a word."""
    policy = prompt()
    steps = list(policy.steps.in_ladder().order_by("position"))
    data = policy_post(policy, {})

    response = admin_client.post(change_url(policy), {**data, "min_days_between_contacts": 365})

    assert response.status_code == 200  # the form again, with the reason
    assert gap_refusal(365, steps) in response.content.decode().replace("&#x27;", "'")
    policy.refresh_from_db()
    assert policy.min_days_between_contacts == 5


def test_a_gap_as_long_as_the_ladder_is_saved(admin_client):
    policy = prompt()
    steps = list(policy.steps.in_ladder().order_by("position"))
    span = steps[-1].day_offset - steps[0].day_offset

    data = {**policy_post(policy, {}), "min_days_between_contacts": span}

    response = admin_client.post(change_url(policy), data)

    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.min_days_between_contacts == span


def test_a_step_retired_alone_may_not_leave_a_ladder_shorter_than_its_gap(admin_client):
    policy = prompt()
    steps = list(policy.steps.in_ladder().order_by("position"))
    span = steps[-1].day_offset - steps[0].day_offset
    LatePaymentPolicy.objects.filter(pk=policy.pk).update(min_days_between_contacts=span)
    last = steps[-1]
    data = {"position": last.position, "day_offset": last.day_offset, "action": last.action,
            "tone": last.tone, "pay_by_days": last.pay_by_days,
            "interest_rate_percent": last.interest_rate_percent, "retired": "on", **NO_FEES}

    response = admin_client.post(reverse("admin:collections_dunningstep_change", args=[last.pk]), data)

    assert response.status_code == 200
    assert gap_refusal(span, steps[:-1]) in response.content.decode().replace("&#x27;", "'")
    last.refresh_from_db()
    assert not last.retired


def test_a_second_active_policy_for_a_segment_is_refused_in_words_a_manager_understands(admin_client):
    data = {"name": "Prompt payers, gentler", "segment": "prompt", "description": "",
            "is_active": "on", "auto_send": "on", "min_days_between_contacts": 5,
            "steps-TOTAL_FORMS": 0, "steps-INITIAL_FORMS": 0, "steps-MIN_NUM_FORMS": 0,
            "steps-MAX_NUM_FORMS": 1000, "minimums-TOTAL_FORMS": 0, "minimums-INITIAL_FORMS": 0,
            "minimums-MIN_NUM_FORMS": 0, "minimums-MAX_NUM_FORMS": 1000}

    response = admin_client.post(reverse("admin:collections_latepaymentpolicy_add"), data)

    html = response.content.decode()
    assert "This segment already has an active policy" in html
    assert "policy_one_active_per_segment" not in html
    assert LatePaymentPolicy.objects.filter(segment="prompt").count() == 1


def test_switching_off_a_segment_s_only_ladder_is_refused_and_its_accounts_are_still_chased(
    admin_client, make_account
):
    customer = make_account(Segment.PROMPT)
    policy = prompt()
    data = policy_post(policy, {})
    data["is_active"] = ""

    response = admin_client.post(change_url(policy), data)

    assert response.status_code == 200  # the form again, with the reason
    assert "Nobody in the segment “Prompt payer” would be chased" in response.content.decode()
    day = DUE + dt.timedelta(days=3)  # the prompt ladder's first step is due
    with frozen(day):
        run_plan(run=run_start(run_date=day))
    assert DunningAction.objects.filter(customer=customer).count() == 1


def test_moving_a_segment_s_only_ladder_to_another_segment_is_refused(admin_client):
    policy = prompt()
    LatePaymentPolicy.objects.filter(segment="new").update(is_active=False)
    data = policy_post(policy, {})
    data["segment"] = "new"

    response = admin_client.post(change_url(policy), data)

    assert "Nobody in the segment “Prompt payer” would be chased" in response.content.decode()
    assert prompt().pk == policy.pk


def test_deleting_every_step_of_an_active_ladder_is_refused(admin_client):
    policy = prompt()
    data = policy_post(policy, {})
    for n in range(policy.steps.count()):
        data[f"steps-{n}-DELETE"] = "on"

    response = admin_client.post(change_url(policy), data)

    assert "An active policy needs at least one step" in response.content.decode()
    assert policy.steps.count() == 4


def test_a_draft_ladder_without_steps_may_wait_beside_the_segment_s_active_one(admin_client):
    data = {"name": "Prompt payers, gentler", "segment": "prompt", "description": "",
            "is_active": "", "auto_send": "on", "min_days_between_contacts": 5,
            "steps-TOTAL_FORMS": 0, "steps-INITIAL_FORMS": 0, "steps-MIN_NUM_FORMS": 0,
            "steps-MAX_NUM_FORMS": 1000, "minimums-TOTAL_FORMS": 0, "minimums-INITIAL_FORMS": 0,
            "minimums-MIN_NUM_FORMS": 0, "minimums-MAX_NUM_FORMS": 1000}

    response = admin_client.post(reverse("admin:collections_latepaymentpolicy_add"), data)

    assert response.status_code == 302
    assert LatePaymentPolicy.objects.filter(segment="prompt").count() == 2


def rules_post(scales: list[dict] = (), holidays: list[dict] = (), **changes) -> dict:
    """The collection rules' change form as the admin posts it: the rules with
    `changes`, the worklist's money scales (currency, per_point_amount; id
    for a saved one) and new office holidays (day, name)."""
    rules = CollectionRules.current()
    data = {f.name: getattr(rules, f.name) for f in CollectionRules._meta.fields
            if f.editable and f.name not in ("id", "updated_by")}
    data.update(changes)
    initial = sum(1 for scale in scales if "id" in scale)
    data.update({"money_scales-TOTAL_FORMS": len(scales), "money_scales-INITIAL_FORMS": initial,
                 "money_scales-MIN_NUM_FORMS": 0, "money_scales-MAX_NUM_FORMS": 1000})
    data.update({"holidays-TOTAL_FORMS": len(holidays), "holidays-INITIAL_FORMS": 0,
                 "holidays-MIN_NUM_FORMS": 0, "holidays-MAX_NUM_FORMS": 1000})
    for n, holiday in enumerate(holidays):
        data.update({f"holidays-{n}-{k}": v for k, v in {"rules": 1, **holiday}.items()})
    for n, scale in enumerate(scales):
        data.update({f"money_scales-{n}-{k}": v for k, v in {"rules": 1, **scale}.items()})
        if "id" in scale:  # as the form renders a saved row (the currency's default is a callable)
            data[f"initial-money_scales-{n}-currency"] = scale["currency"]
    return data


def test_a_change_to_the_collection_rules_is_kept_with_before_and_after(admin_client):
    data = rules_post(max_pause_days=90)

    response = admin_client.post(reverse("admin:collections_collectionrules_change", args=[1]), data)

    assert response.status_code == 302
    (change,) = json.loads(LogEntry.objects.get(object_id="1").change_message)
    assert (change["changed"]["before"], change["changed"]["after"]) == (
        {"max_pause_days": 14}, {"max_pause_days": 90}
    )


@pytest.mark.parametrize("field", ["plan_approval_above_amount", "credit_without_manager_amount"])
def test_a_negative_money_limit_in_the_collection_rules_is_refused_and_says_why(admin_client, field):
    before = getattr(CollectionRules.current(), field)
    data = rules_post(**{field: "-500.00"})

    response = admin_client.post(reverse("admin:collections_collectionrules_change", args=[1]), data)

    assert response.status_code == 200  # the form again, with the reason
    assert "A limit cannot be negative" in response.content.decode()
    assert getattr(CollectionRules.current(), field) == before


@pytest.mark.parametrize(("field", "value", "said"), [
    ("max_pause_days", 366, "A collector may pause dunning for at most 365 days"),
    ("max_pause_days", 32767, "A collector may pause dunning for at most 365 days"),
    ("plan_max_months", 0, "A payment plan a collector agrees alone may run at least 1 month"),
    ("plan_max_months", 37, "A payment plan a collector agrees alone may run at most 36 months"),
])
def test_a_collector_limit_beyond_its_bounds_is_refused_and_says_why(admin_client, field, value, said):
    """89 years of pause, or no plan at all a collector may agree: saved
    without a word before."""
    before = getattr(CollectionRules.current(), field)

    response = admin_client.post(reverse("admin:collections_collectionrules_change", args=[1]),
                                 rules_post(**{field: value}))

    assert response.status_code == 200  # the form again, with the reason
    assert said in response.content.decode()
    assert getattr(CollectionRules.current(), field) == before


@pytest.mark.parametrize(("field", "value"), [("max_pause_days", 365), ("max_pause_days", 0),
                                              ("plan_max_months", 1), ("plan_max_months", 36)])
def test_a_collector_limit_at_its_bounds_is_saved(admin_client, field, value):
    response = admin_client.post(reverse("admin:collections_collectionrules_change", args=[1]),
                                 rules_post(**{field: value}))

    assert response.status_code == 302
    assert getattr(CollectionRules.current(), field) == value


def test_a_manager_sets_the_worklist_s_money_scale_per_currency_with_the_collection_rules(admin_client):
    url = reverse("admin:collections_collectionrules_change", args=[1])

    response = admin_client.post(url, rules_post([{"currency": "JPY", "per_point_amount": "150000"}]))

    assert response.status_code == 302
    assert list(MoneyPointScale.objects.values_list("currency", "per_point_amount")) == [
        ("JPY", Decimal("150000.00"))
    ]
    scale = MoneyPointScale.objects.get()
    response = admin_client.post(url, rules_post([{"id": scale.pk, "currency": "JPY",
                                                    "per_point_amount": "120000"}]))
    assert response.status_code == 302
    change = json.loads(LogEntry.objects.filter(object_id="1").latest("pk").change_message)
    assert [(c["changed"]["before"], c["changed"]["after"]) for c in change] == [
        ({"per_point_amount": "150000.00"}, {"per_point_amount": "120000"})
    ]


@pytest.mark.parametrize(("scale", "said"), [
    ({"currency": "JPY", "per_point_amount": "0"}, "A point must stand for more than 0."),
    ({"currency": "JPY", "per_point_amount": "-1000"}, "A point must stand for more than 0."),
    ({"currency": "JPY", "per_point_amount": "150000.50"}, "An amount in JPY is in whole units"),
    ({"currency": "EUO", "per_point_amount": "1000"}, "EUO is not an ISO 4217 currency in circulation"),
    ({"currency": "KWD", "per_point_amount": "300"}, "KWD counts in thousandths"),
])
def test_a_money_scale_that_cannot_be_used_is_refused_and_says_why(admin_client, scale, said):
    response = admin_client.post(reverse("admin:collections_collectionrules_change", args=[1]),
                                 rules_post([scale], max_pause_days=90))

    assert response.status_code == 200  # the form again, with the reason
    assert said in response.content.decode()
    assert not MoneyPointScale.objects.exists()
    assert CollectionRules.current().max_pause_days == 14


def test_a_currency_has_one_money_scale(admin_client):
    response = admin_client.post(reverse("admin:collections_collectionrules_change", args=[1]), rules_post([
        {"currency": "JPY", "per_point_amount": "150000"}, {"currency": "JPY", "per_point_amount": "100000"},
    ]))

    assert response.status_code == 200
    assert not MoneyPointScale.objects.exists()


def test_a_manager_enters_the_office_s_holidays_with_the_collection_rules(admin_client):
    url = reverse("admin:collections_collectionrules_change", args=[1])

    response = admin_client.post(url, rules_post(holidays=[{"day": "2026-04-03", "name": "Good Friday"}]))

    assert response.status_code == 302
    assert list(Holiday.objects.values_list("day", "name")) == [(dt.date(2026, 4, 3), "Good Friday")]
    assert "Added office holiday" in LogEntry.objects.get(object_id="1").get_change_message()


def test_a_day_is_entered_as_a_holiday_once(admin_client):
    Holiday.objects.create(rules=CollectionRules.current(), day=dt.date(2026, 4, 3), name="Good Friday")
    url = reverse("admin:collections_collectionrules_change", args=[1])

    response = admin_client.post(url, rules_post(holidays=[{"day": "2026-04-03", "name": "Again"}]))

    assert response.status_code == 200
    assert "This day is already a holiday." in response.content.decode()
    assert Holiday.objects.count() == 1


def test_a_manager_may_edit_the_office_s_holidays(manager):
    assert all(manager.has_perm(f"collections.{verb}_holiday") for verb in ("add", "change", "delete"))


def test_a_manager_may_edit_the_worklist_s_money_scales(manager):
    verbs = ("add", "change", "delete")
    assert all(manager.has_perm(f"collections.{verb}_moneypointscale") for verb in verbs)


def test_credit_terms_change_through_the_account_card_not_the_admin(admin_client, make_customer):
    customer = make_customer(name="Held GmbH", on_credit_hold=True, terms_type=TermsType.COD)

    page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()

    for field in ("on_credit_hold", "terms_type", "credit_limit_amount", "currency", "collector"):
        assert f'name="{field}"' not in page
    assert 'name="terms_type"' in admin_client.get(reverse("admin:customers_customer_add")).content.decode()


def test_a_manager_may_edit_the_minimums_of_the_policies_they_own(manager):
    assert all(manager.has_perm(f"collections.{verb}_policyminimum") for verb in ("add", "change", "delete"))


def minimum_warnings(admin_client, policy) -> list[str]:
    page = admin_client.get(reverse("admin:collections_latepaymentpolicy_change", args=[policy.pk]))
    return re.findall(r"No minimum for [A-Z]{3}: [^<]+", page.content.decode())


def test_the_policy_page_warns_of_a_currency_on_open_invoices_that_has_no_minimum(
    admin_client, make_customer, make_invoice
):
    policy = prompt()
    yen = make_customer(currency="JPY")
    make_invoice(yen, issued=DUE, amount="1", currency="JPY")
    make_invoice(yen, issued=DUE, amount="5000", currency="CHF", paid_on=DUE)  # settled: nothing to chase
    make_invoice(make_customer(), issued=DUE, amount="10.00")  # EUR has its minimum

    assert minimum_warnings(admin_client, policy) == [
        "No minimum for JPY: accounts in JPY are chased for any amount, however small."]

    PolicyMinimum.objects.create(policy=policy, currency="JPY", min_amount=Decimal("3000"))
    assert minimum_warnings(admin_client, policy) == []


def with_minimum(data: dict, currency: str, amount: str) -> dict:
    """The policy's post with one more minimum row entered."""
    n = int(data["minimums-TOTAL_FORMS"])
    return {**data, "minimums-TOTAL_FORMS": n + 1, f"minimums-{n}-currency": currency,
            f"minimums-{n}-min_amount": amount}


def test_a_page_shown_again_warns_of_the_minimums_as_entered_not_as_saved(
    admin_client, make_customer, make_invoice
):
    """Refused for another reason, the page keeps the minimums entered: a
    warning that JPY has none, beside the JPY minimum just entered, would say
    it was not taken; one that was deleted on the form is warned of."""
    policy = prompt()
    yen = make_customer(currency="JPY")
    make_invoice(yen, issued=DUE, amount="1", currency="JPY")
    make_invoice(make_customer(), issued=DUE, amount="10.00")
    softened = policy_post(policy, {4: {"tone": Tone.FRIENDLY}})

    html = admin_client.post(change_url(policy), with_minimum(softened, "JPY", "3000")).content.decode()
    assert "Step 4 is friendly, softer than step 3" in html
    assert re.findall(r"No minimum for [A-Z]{3}", html) == []
    assert not policy.minimums.filter(currency="JPY").exists()

    n = [m.currency for m in policy.minimums.order_by("pk")].index("EUR")
    html = admin_client.post(change_url(policy), {**softened, f"minimums-{n}-DELETE": "on"}).content.decode()
    assert re.findall(r"No minimum for [A-Z]{3}", html) == ["No minimum for EUR", "No minimum for JPY"]


def _page_queries(admin_client, steps: int) -> int:
    """The queries of a draft policy's page whose ladder has `steps` steps, each with a fee."""
    draft = LatePaymentPolicy.objects.create(name=f"Draft of {steps}", segment=Segment.PROMPT,
                                             is_active=False)
    for n in range(1, steps + 1):
        step = DunningStep.objects.create(policy=draft, position=n, day_offset=n * 7, action=StepAction.EMAIL,
                                          tone=Tone.FRIENDLY, pay_by_days=7)
        StepFee.objects.create(step=step, currency="EUR", amount=Decimal("10.00"))
    admin_client.get(change_url(draft))  # the session and the user, loaded once
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(change_url(draft)).status_code == 200
    return len(queries)


def test_the_policy_page_costs_the_same_queries_whatever_the_length_of_its_ladder(admin_client):
    assert _page_queries(admin_client, 2) == _page_queries(admin_client, 8)


def test_a_draft_ladder_is_put_in_force_in_place_of_the_segment_s_current_one(admin_client):
    """The one ladder a segment is chased by cannot be switched off alone, and
    two cannot be active: the admin's action swaps them in one step, and the
    history says who did it, with before and after."""
    current = LatePaymentPolicy.objects.get(segment=Segment.PROMPT, is_active=True)
    draft = LatePaymentPolicy.objects.create(name="Prompt payers, gentler", segment=Segment.PROMPT,
                                             is_active=False)
    DunningStep.objects.create(policy=draft, position=1, day_offset=7, action=StepAction.EMAIL,
                               tone=Tone.FRIENDLY, pay_by_days=10)

    response = admin_client.post(reverse("admin:collections_latepaymentpolicy_changelist"),
                                 {"action": "put_in_force", "_selected_action": [draft.pk]}, follow=True)

    assert "“Prompt payers, gentler” is now the ladder for “Prompt payer”" in response.content.decode()
    current.refresh_from_db()
    draft.refresh_from_db()
    assert (current.is_active, draft.is_active) == (False, True)
    assert set(LatePaymentPolicy.objects.chasing().filter(segment=Segment.PROMPT)) == {draft}
    logged = {entry.object_id: json.loads(entry.change_message)[0]["changed"]
              for entry in LogEntry.objects.all()}
    assert logged[str(current.pk)]["after"] == {"is_active": False}
    assert logged[str(draft.pk)]["after"] == {"is_active": True}
    history = admin_client.get(reverse("admin:collections_latepaymentpolicy_history", args=[current.pk]))
    assert "Changed Is active: yes → no." in history.content.decode()


def test_a_draft_without_steps_is_not_put_in_force(admin_client):
    current = LatePaymentPolicy.objects.get(segment=Segment.PROMPT, is_active=True)
    draft = LatePaymentPolicy.objects.create(name="Empty draft", segment=Segment.PROMPT, is_active=False)

    response = admin_client.post(reverse("admin:collections_latepaymentpolicy_changelist"),
                                 {"action": "put_in_force", "_selected_action": [draft.pk]}, follow=True)

    assert "“Empty draft” was not put in force: it has no steps" in response.content.decode()
    current.refresh_from_db()
    assert current.is_active


def _delete_steps_selected(admin_client, policy):
    return admin_client.post(reverse("admin:collections_dunningstep_changelist"), {
        "action": "delete_selected", "post": "yes",
        "_selected_action": [str(pk) for pk in policy.steps.values_list("pk", flat=True)],
    })


def _delete_policy(admin_client, policy):
    return admin_client.post(reverse("admin:collections_latepaymentpolicy_delete", args=[policy.pk]),
                             {"post": "yes"})


def _move_each_step_to_a_draft(admin_client, policy):
    draft = LatePaymentPolicy.objects.create(name="Draft", segment=Segment.PROMPT, is_active=False)
    for step in policy.steps.order_by("position"):
        admin_client.post(reverse("admin:collections_dunningstep_change", args=[step.pk]), {
            "policy": draft.pk, "position": step.position, "day_offset": step.day_offset,
            "action": step.action, "tone": step.tone, "pay_by_days": step.pay_by_days,
            "interest_rate_percent": step.interest_rate_percent,
        })


@pytest.mark.parametrize("door", [_delete_steps_selected, _delete_policy, _move_each_step_to_a_draft],
                         ids=["steps-delete-selected", "policy-delete", "steps-moved-one-by-one"])
def test_a_ladder_in_force_cannot_be_emptied_through_another_admin_page(
    admin_client, make_account, door
):
    customer = make_account(Segment.PROMPT)
    policy = prompt()

    door(admin_client, policy)

    day = DUE + dt.timedelta(days=3)  # the prompt ladder's first step is due
    with frozen(day):
        run_plan(run=run_start(run_date=day))
    chased = DunningAction.objects.filter(customer=customer).count()
    steps = DunningStep.objects.filter(policy__segment=Segment.PROMPT, policy__is_active=True).count()
    assert (steps, chased) == (4, 1), "the prompt payers' only ladder was emptied: nobody in it is chased"


def test_a_draft_s_steps_are_deleted_one_by_one(admin_client):
    draft = LatePaymentPolicy.objects.create(name="Draft", segment=Segment.PROMPT, is_active=False)
    step = DunningStep.objects.create(policy=draft, position=1, day_offset=7, action=StepAction.EMAIL,
                                      tone=Tone.FRIENDLY, pay_by_days=10)

    admin_client.post(reverse("admin:collections_dunningstep_delete", args=[step.pk]), {"post": "yes"})

    assert not DunningStep.objects.filter(pk=step.pk).exists()


# --- A step taken for customers stays as they got it ---------------------------------
# The timeline, letters, runs and reports read what a customer got from the step
# its action points to, and the planner reads where a cycle stands from that
# step's position: a step once taken keeps what it sent, charged and where it
# stands. The ladder changes by retiring it and adding a new step.


def chase(day: dt.date) -> None:
    """Plan the run of `day`, then carry out what it planned, as the workers would."""
    with frozen(day):
        run_plan(run=run_start(run_date=day))
    DunningAction.objects.filter(status=ActionStatus.PLANNED).update(
        status=ActionStatus.DONE, done_at=dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC)
    )


def steps_taken(customer) -> list[tuple]:
    actions = DunningAction.objects.filter(customer=customer).order_by("planned_on", "pk")
    return [(a.step.position, a.step.action, a.step.fees_text())
            for a in actions.select_related("step").prefetch_related("step__fees")]


def add_step(data: dict, policy, **fields) -> dict:
    """The policy's change form as posted, with one new step added."""
    n = data["steps-TOTAL_FORMS"]
    data["steps-TOTAL_FORMS"] = n + 1
    defaults = {"policy": policy.pk, "interest_rate_percent": "0", "retired": ""}
    data.update({f"steps-{n}-{k}": v for k, v in {**defaults, **fields}.items()})
    return data


def step_values(step) -> tuple:
    step.refresh_from_db()
    return (step.position, step.day_offset, step.action, step.tone, step.pay_by_days, step.fees_text(),
            step.interest_rate_percent, step.retired)


@pytest.fixture
def mid_ladder(make_account):
    """A prompt payer who has had the prompt ladder's steps 1 (e-mail) and 2 (letter)."""
    customer = make_account(Segment.PROMPT)
    chase(DUE + dt.timedelta(days=3))
    # The day after the e-mail's pay-by date (Sunday 15 Mar, so Monday 16 Mar).
    chase(DUE + dt.timedelta(days=15))
    assert [s[0] for s in steps_taken(customer)] == [1, 2]
    return customer


@pytest.mark.parametrize("change", [
    {"tone": Tone.FRIENDLY}, {"action": StepAction.EMAIL}, {"interest_rate_percent": "8.00"},
    {"pay_by_days": 12},
    {"day_offset": 15},
], ids=lambda change: next(iter(change)))
def test_a_taken_step_keeps_what_it_sent_and_charged_and_the_page_says_how_to_change_the_ladder(
    admin_client, mid_ladder, change
):
    policy = prompt()
    letter = policy.steps.get(position=2)
    before = step_values(letter)

    response = admin_client.post(change_url(policy), policy_post(policy, {2: change}))

    assert response.status_code == 200  # the form again, with the reason
    html = response.content.decode()
    assert "Step 2 has been taken for customers already" in html
    assert "tick “Retired” on this step and add a new step" in html
    assert step_values(letter) == before


def test_moving_a_taken_step_is_refused_and_an_account_mid_ladder_gets_its_next_step(
    admin_client, mid_ladder
):
    """Swapped with step 3, the letter the account had would stand at place 3
    and the planner would go on after it: the escalation to the principal
    would never come."""
    policy = prompt()

    response = admin_client.post(change_url(policy), policy_post(
        policy, {2: {"position": 3, "day_offset": 28}, 3: {"position": 2, "day_offset": 14}}
    ))
    chase(DUE + dt.timedelta(days=28))

    assert [s[:2] for s in steps_taken(mid_ladder)] == [
        (1, StepAction.EMAIL), (2, StepAction.LETTER), (3, StepAction.ESCALATE_PRINCIPAL),
    ]
    assert response.status_code == 200
    assert "Step 2 has been taken for customers already" in response.content.decode()


def test_a_page_posted_by_a_browser_saves_the_other_steps_and_keeps_the_taken_ones(admin_client, mid_ladder):
    """A browser posts no read-only (disabled) field: the taken steps are kept
    as they are, and a change to a step not yet taken is saved."""
    policy = prompt()
    taken = [policy.steps.get(position=1), policy.steps.get(position=2)]
    before = [step_values(step) for step in taken]
    data = policy_post(policy, {4: {"interest_rate_percent": "8.00"}})
    for n in (0, 1):  # steps 1 and 2
        for name in (*STEP_ON_RECORD, "DELETE"):
            data.pop(f"steps-{n}-{name}", None)

    response = admin_client.post(change_url(policy), data)

    assert response.status_code == 302
    assert [step_values(step) for step in taken] == before
    assert policy.steps.get(position=4).interest_rate_percent == Decimal("8.00")


def test_a_taken_step_is_shown_as_it_stays_with_the_way_to_change_the_ladder(admin_client, mid_ladder):
    policy = prompt()
    rows = {step.position: n for n, step in enumerate(policy.steps.order_by("position"))}

    html = admin_client.get(change_url(policy)).content.decode()

    taken, untaken = rows[2], rows[3]
    assert re.search(rf'<select name="steps-{taken}-tone"[^>]* disabled', html)
    assert re.search(rf'<input type="checkbox" name="steps-{taken}-DELETE"[^>]* disabled', html)
    assert not re.search(rf'<select name="steps-{untaken}-tone"[^>]* disabled', html)
    assert "Taken for customers: stays as they got it. To change it, retire it and add a new step." in html


def test_a_taken_step_is_retired_and_replaced_and_each_account_goes_on_from_where_it_stands(
    admin_client, mid_ladder, make_customer, make_invoice
):
    """The account that had the old letter goes on to step 3; one that had
    only the e-mail gets the new letter, with its fee."""
    later = make_customer(name="Later GmbH", segment=Segment.PROMPT)
    make_invoice(later, issued=DUE, due=DUE + dt.timedelta(days=12), amount="900.00")
    chase(DUE + dt.timedelta(days=15))  # the later account's first e-mail
    policy = prompt()
    old_letter = policy.steps.get(position=2)

    data = add_step(policy_post(policy, {2: {"retired": "on"}}), policy, position=2, day_offset=14,
                    action=StepAction.LETTER, tone=Tone.FIRM, pay_by_days=10)
    response = admin_client.post(change_url(policy), data)
    new_letter = policy.steps.get(position=2, retired=False)
    fee_added = admin_client.post(step_url(new_letter), step_post(new_letter, [("EUR", "40.00")]))

    assert (response.status_code, fee_added.status_code) == (302, 302)
    logged = json.loads(LogEntry.objects.get(object_id=str(policy.pk)).change_message)
    (change,) = [entry["changed"] for entry in logged if "changed" in entry]
    assert (change["before"], change["after"]) == ({"retired": False}, {"retired": True})
    assert step_values(old_letter)[:-1] == (2, 14, StepAction.LETTER, Tone.FIRM, 10, "None",
                                            Decimal("0.00"))
    assert old_letter.retired
    chase(DUE + dt.timedelta(days=28))
    assert steps_taken(mid_ladder) == [
        (1, StepAction.EMAIL, "None"), (2, StepAction.LETTER, "None"),
        (3, StepAction.ESCALATE_PRINCIPAL, "None"),
    ]
    assert steps_taken(later) == [(1, StepAction.EMAIL, "None"), (2, StepAction.LETTER, "EUR 40.00")]
    assert DunningAction.objects.get(customer=mid_ladder, step__position=2).step == old_letter


def test_a_retired_step_is_no_longer_taken_and_the_account_goes_on_to_the_step_after_it(
    admin_client, make_account
):
    customer = make_account(Segment.PROMPT)
    chase(DUE + dt.timedelta(days=3))
    policy = prompt()

    response = admin_client.post(change_url(policy), policy_post(policy, {2: {"retired": "on"}}))

    assert response.status_code == 302
    chase(DUE + dt.timedelta(days=14))
    chase(DUE + dt.timedelta(days=28))
    assert [s[:2] for s in steps_taken(customer)] == [
        (1, StepAction.EMAIL), (3, StepAction.ESCALATE_PRINCIPAL),
    ]


def test_a_taken_step_cannot_be_deleted_from_its_ladder_and_the_page_says_to_retire_it(
    admin_client, mid_ladder
):
    policy = prompt()
    data = policy_post(policy, {})
    data["steps-1-DELETE"] = "on"  # step 2, the letter the account had

    response = admin_client.post(change_url(policy), data)

    assert response.status_code == 200
    assert ("Step 2 has been taken for customers and stays on record with them, so it cannot be deleted. "
            "Tick “Retired” instead") in response.content.decode()
    assert policy.steps.filter(position=2).exists()


def test_a_step_retired_and_replaced_cannot_come_back_beside_its_replacement(admin_client, mid_ladder):
    policy = prompt()
    admin_client.post(change_url(policy), add_step(
        policy_post(policy, {2: {"retired": "on"}}), policy, position=2, day_offset=14,
        action=StepAction.LETTER, tone=Tone.FIRM, pay_by_days=10))
    old_letter = policy.steps.get(position=2, retired=True)
    data = policy_post(policy, {})
    row = next(n for n in range(data["steps-TOTAL_FORMS"]) if data[f"steps-{n}-id"] == old_letter.pk)
    data[f"steps-{row}-retired"] = ""

    response = admin_client.post(change_url(policy), data)

    assert response.status_code == 200
    assert "Two steps are at position 2" in response.content.decode()
    assert step_values(old_letter)[-1] is True


def test_retiring_every_step_of_the_ladder_in_force_is_refused(admin_client):
    policy = prompt()
    changes = {step.position: {"retired": "on"} for step in policy.steps.all()}

    response = admin_client.post(change_url(policy), policy_post(policy, changes))

    assert "An active policy needs at least one step" in response.content.decode()
    assert not policy.steps.filter(retired=True).exists()


def test_a_taken_step_on_its_own_page_keeps_what_it_sent(admin_client, mid_ladder):
    step = prompt().steps.get(position=2)
    url = reverse("admin:collections_dunningstep_change", args=[step.pk])
    before = step_values(step)

    page = admin_client.get(url).content.decode()
    response = admin_client.post(url, {
        "position": 2, "day_offset": 14, "action": StepAction.EMAIL, "tone": Tone.FIRM, "pay_by_days": 10,
        "interest_rate_percent": "0", **NO_FEES,
    })

    assert re.search(r'<select name="action"[^>]* disabled', page)
    assert "Step 2 has been taken for customers already" in response.content.decode()
    assert step_values(step) == before


def test_a_taken_step_is_retired_on_its_own_page_as_a_browser_posts_it(admin_client, mid_ladder):
    step = prompt().steps.get(position=2)
    before = step_values(step)

    response = admin_client.post(reverse("admin:collections_dunningstep_change", args=[step.pk]),
                                 {"retired": "on", **NO_FEES})  # the read-only fields are not posted

    assert response.status_code == 302
    assert step_values(step) == (*before[:-1], True)


def test_retiring_the_last_step_of_a_ladder_in_force_on_its_own_page_is_refused(admin_client):
    policy = prompt()
    policy.steps.exclude(position=1).update(retired=True)
    step = policy.steps.get(position=1)

    response = admin_client.post(reverse("admin:collections_dunningstep_change", args=[step.pk]), {
        "position": 1, "day_offset": 3, "action": StepAction.EMAIL, "tone": Tone.FRIENDLY, "pay_by_days": 10,
        "interest_rate_percent": "0", "retired": "on", **NO_FEES,
    })

    assert "An active policy needs at least one step" in response.content.decode()
    assert step_values(step)[-1] is False


def test_a_draft_with_only_retired_steps_is_not_put_in_force(admin_client):
    draft = LatePaymentPolicy.objects.create(name="Old draft", segment=Segment.PROMPT, is_active=False)
    DunningStep.objects.create(policy=draft, position=1, day_offset=7, action=StepAction.EMAIL,
                               tone=Tone.FRIENDLY, pay_by_days=10, retired=True)

    response = admin_client.post(reverse("admin:collections_latepaymentpolicy_changelist"),
                                 {"action": "put_in_force", "_selected_action": [draft.pk]}, follow=True)

    assert "“Old draft” was not put in force: it has no steps" in response.content.decode()
    assert prompt().name == "Prompt payers"


def _replaced_by_a_draft(admin_client) -> LatePaymentPolicy:
    """The prompt ladder, taken for customers, then replaced by a draft put in force."""
    old = prompt()
    draft = LatePaymentPolicy.objects.create(name="Prompt payers, gentler", segment=Segment.PROMPT,
                                             is_active=False)
    DunningStep.objects.create(policy=draft, position=1, day_offset=7, action=StepAction.EMAIL,
                               tone=Tone.FRIENDLY, pay_by_days=10)
    admin_client.post(reverse("admin:collections_latepaymentpolicy_changelist"),
                      {"action": "put_in_force", "_selected_action": [draft.pk]})
    old.refresh_from_db()
    assert not old.is_active
    return old


@pytest.mark.parametrize("door", ["step-delete-page", "steps-delete-selected"])
def test_deleting_a_taken_step_says_why_it_stays_in_words_a_manager_understands(
    admin_client, mid_ladder, door
):
    old = _replaced_by_a_draft(admin_client)
    letter = old.steps.get(position=2)
    if door == "step-delete-page":
        response = admin_client.post(reverse("admin:collections_dunningstep_delete", args=[letter.pk]),
                                     {"post": "yes"})
    else:
        response = admin_client.post(reverse("admin:collections_dunningstep_changelist"), {
            "action": "delete_selected", "post": "yes", "_selected_action": [str(letter.pk)],
        })

    html = response.content.decode()
    assert "Step 2 of “Prompt payers” has been taken for customers and stays on record with them" in html
    assert f"for {mid_ladder.pk} (Done)" not in html  # not every action it was taken in, one by one
    assert DunningStep.objects.filter(pk=letter.pk).exists()


@pytest.mark.parametrize("confirmed", [False, True], ids=["asked", "confirmed"])
def test_deleting_an_unused_step_of_a_ladder_in_force_says_why_it_stays_not_that_permission_lacks(
    client, manager, confirmed
):
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    client.force_login(manager)
    policy = prompt()
    step = policy.steps.get(position=4)
    assert not step.actions.exists() and manager.has_perm("collections.delete_dunningstep")
    data = {"action": "delete_selected", "_selected_action": [str(step.pk)]}

    response = client.post(reverse("admin:collections_dunningstep_changelist"),
                           {**data, "post": "yes"} if confirmed else data)

    html = " ".join(response.content.decode().split())
    assert "permission" not in html
    assert (f"Step 4 of “{policy.name}” belongs to a ladder in force. Retire it to take it out of the "
            "ladder, or edit the ladder on its policy’s page.") in html
    assert DunningStep.objects.filter(pk=step.pk).exists()


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("taken", [False, True], ids=["unused", "taken"])
def test_the_delete_page_of_a_step_in_force_says_why_it_stays_not_that_permission_lacks(
    client, manager, make_account, method, taken
):
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    client.force_login(manager)
    policy = prompt()
    step = policy.steps.get(position=1)
    if taken:
        make_account(Segment.PROMPT)
        chase(DUE + dt.timedelta(days=3))
        assert step.actions.exists()

    url = reverse("admin:collections_dunningstep_delete", args=[step.pk])
    response = getattr(client, method)(url, {"post": "yes"} if method == "post" else {}, follow=True)

    assert response.redirect_chain == [(step_url(step), 302)]
    html = " ".join(response.content.decode().split())
    said = ("Step 1 of “Prompt payers” has been taken for customers and stays on record with them" if taken
            else f"Step 1 of “{policy.name}” belongs to a ladder in force. Retire it to take it out of the "
                 "ladder, or edit the ladder on its policy’s page.")
    assert said in html
    assert DunningStep.objects.filter(pk=step.pk).exists()


def test_the_delete_page_of_a_step_stays_closed_to_whoever_may_not_delete_steps(client, viewer):
    viewer.is_staff = True
    viewer.save(update_fields=["is_staff"])
    client.force_login(viewer)
    step = prompt().steps.get(position=1)

    response = client.post(reverse("admin:collections_dunningstep_delete", args=[step.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert DunningStep.objects.filter(pk=step.pk).exists()


def test_deleting_a_policy_whose_steps_were_taken_says_why_it_stays(admin_client, mid_ladder):
    old = _replaced_by_a_draft(admin_client)

    response = admin_client.post(reverse("admin:collections_latepaymentpolicy_delete", args=[old.pk]),
                                 {"post": "yes"})

    html = response.content.decode()
    assert "Step 1 of “Prompt payers” has been taken for customers and stays on record with them" in html
    assert f"for {mid_ladder.pk} (Done)" not in html
    assert LatePaymentPolicy.objects.filter(pk=old.pk).exists()


# --- A late fee per currency --------------------------------------------------------
# A step charges at most one fixed fee per currency, each on a notice listing an
# invoice in that currency. The fees are entered on the step's own page, as a
# policy's minimums are on the policy's.


def step_url(step) -> str:
    return reverse("admin:collections_dunningstep_change", args=[step.pk])


def step_post(step, fees: list[tuple[str, str]] | None = None, **changes) -> dict:
    """The step's own change form as the admin posts it: its fields, and its
    fees (existing ones first, as on the page) replaced by `fees` when given."""
    data = {"position": step.position, "day_offset": step.day_offset, "action": step.action,
            "tone": step.tone, "pay_by_days": step.pay_by_days,
            "interest_rate_percent": step.interest_rate_percent, "retired": "on" if step.retired else "",
            **changes}
    existing = list(step.fees.order_by("currency"))
    wanted = [(fee.currency, str(fee.amount)) for fee in existing] if fees is None else fees
    rows = max(len(existing), len(wanted))
    data.update({"fees-TOTAL_FORMS": rows, "fees-INITIAL_FORMS": len(existing), "fees-MIN_NUM_FORMS": 0,
                 "fees-MAX_NUM_FORMS": 1000})
    for n in range(rows):
        if n < len(existing):
            data.update({f"fees-{n}-id": existing[n].pk, f"initial-fees-{n}-currency": existing[n].currency})
        else:
            data[f"initial-fees-{n}-currency"] = "EUR"
        data[f"fees-{n}-step"] = step.pk
        if n < len(wanted):
            data[f"fees-{n}-currency"], data[f"fees-{n}-amount"] = wanted[n]
        else:  # a row left out of `fees`: deleted
            data.update({f"fees-{n}-currency": existing[n].currency, f"fees-{n}-amount": existing[n].amount,
                         f"fees-{n}-DELETE": "on"})
    return data


def fees_of(step) -> list[tuple[str, Decimal]]:
    return list(step.fees.order_by("currency").values_list("currency", "amount"))


def test_a_step_charges_a_fee_in_each_currency_entered_on_its_page(admin_client):
    step = prompt().steps.get(position=2)
    assert fees_of(step) == []

    response = admin_client.post(step_url(step), step_post(step, [("EUR", "40.00"), ("GBP", "35.00"),
                                                                  ("JPY", "6000")]))

    assert response.status_code == 302
    assert fees_of(step) == [
        ("EUR", Decimal("40.00")), ("GBP", Decimal("35.00")), ("JPY", Decimal("6000"))
    ]
    policy_page = admin_client.get(change_url(prompt())).content.decode()
    assert "EUR 40.00 / GBP 35.00 / JPY 6,000" in policy_page  # the step's fees, on its policy's page


def test_a_fee_change_is_kept_with_its_amount_before_and_after(admin_client):
    step = prompt().steps.get(position=2)
    admin_client.post(step_url(step), step_post(step, [("EUR", "40.00")]))

    admin_client.post(step_url(step), step_post(step, [("EUR", "95.00")]))

    latest = LogEntry.objects.filter(object_id=str(step.pk)).latest("action_time")
    (change,) = json.loads(latest.change_message)
    assert (change["changed"]["before"], change["changed"]["after"]) == (
        {"amount": "40.00"}, {"amount": "95.00"}
    )


def test_a_fee_currency_listed_twice_is_refused_and_nothing_is_saved(admin_client):
    step = prompt().steps.get(position=2)
    admin_client.post(step_url(step), step_post(step, [("EUR", "40.00")]))

    response = admin_client.post(step_url(step), step_post(step, [("EUR", "40.00"), ("GBP", "35.00"),
                                                                  ("GBP", "30.00")], pay_by_days=12))

    assert response.status_code == 200  # the form again, with the reason
    assert "GBP is listed twice: a step charges one late fee per currency." in response.content.decode()
    assert fees_of(step) == [("EUR", Decimal("40.00"))]
    assert prompt().steps.get(position=2).pay_by_days == 10  # nothing saved, the step's own fields neither


@pytest.mark.parametrize(("currency", "amount", "message"), [
    ("EUR", "-40.00", "A late fee cannot be negative."),
    ("EUR", "0", "A late fee of EUR 0 charges nothing: delete the row instead."),
    ("EUR", "40.005", "A fee in EUR has at most 2 places after the point."),
    ("JPY", "6000.50", "A fee in JPY is in whole units, with no places after the point."),
    ("EUO", "40.00", "EUO is not an ISO 4217 currency in circulation"),
    ("KWD", "12.000", "KWD counts in thousandths"),
], ids=["negative", "zero", "beyond-cents", "yen-with-cents", "no-such-currency", "thousandths"])
def test_a_fee_the_step_could_not_charge_is_refused_in_words_a_manager_understands(
    admin_client, currency, amount, message
):
    step = prompt().steps.get(position=2)

    response = admin_client.post(step_url(step), step_post(step, [(currency, amount)]))

    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert "step_fee_" not in html
    assert fees_of(step) == []


@pytest.fixture
def taken_with_fee(make_account) -> DunningStep:
    """The prompt ladder's letter (step 2), with a EUR 15.00 fee, taken for a prompt payer."""
    letter = prompt().steps.get(position=2)
    StepFee.objects.create(step=letter, currency="EUR", amount=Decimal("15.00"))
    make_account(Segment.PROMPT)
    chase(DUE + dt.timedelta(days=3))
    chase(DUE + dt.timedelta(days=15))  # the day after the e-mail's pay-by date, a Sunday moved to Monday
    assert letter.is_taken()
    return letter


@pytest.mark.parametrize("fees", [
    [("EUR", "20.00")], [("USD", "15.00")], [("EUR", "15.00"), ("GBP", "12.00")], [],
], ids=["amount-changed", "currency-changed", "fee-in-a-new-currency-added", "fee-deleted"])
def test_the_fees_of_a_taken_step_stay_as_customers_got_them(admin_client, taken_with_fee, fees):
    """A fee in a currency the step had none in is refused too: accounts that
    had the step with a notice in that currency were charged nothing, and
    the step's record would say otherwise of what they got."""
    response = admin_client.post(step_url(taken_with_fee), step_post(taken_with_fee, fees))

    assert response.status_code == 200  # the form again, with the reason
    html = response.content.decode()
    assert "Step 2 has been taken for customers already" in html
    assert "tick “Retired” on this step and add a new step" in html
    assert fees_of(taken_with_fee) == [("EUR", Decimal("15.00"))]


def test_the_fees_of_a_taken_step_are_shown_as_they_stay(admin_client, taken_with_fee):
    html = admin_client.get(step_url(taken_with_fee)).content.decode()

    assert re.search(r'<input [^>]*name="fees-0-amount"[^>]* disabled', html)
    assert re.search(r'<input type="checkbox" name="fees-0-DELETE"[^>]* disabled', html)
    assert "fees-__prefix__" not in html  # no row to add a fee in another currency


def test_a_taken_step_with_fees_is_retired_on_its_own_page_as_a_browser_posts_it(
    admin_client, taken_with_fee
):
    data = step_post(taken_with_fee)
    for name in (*STEP_ON_RECORD, "fees-0-currency", "fees-0-amount", "initial-fees-0-currency"):
        data.pop(name, None)  # read-only: not posted
    data["retired"] = "on"

    response = admin_client.post(step_url(taken_with_fee), data)

    assert response.status_code == 302
    taken_with_fee.refresh_from_db()
    assert taken_with_fee.retired
    assert fees_of(taken_with_fee) == [("EUR", Decimal("15.00"))]


def test_the_admin_calls_a_policy_a_late_payment_policy_as_the_product_does(admin_client):
    page = admin_client.get(reverse("admin:collections_latepaymentpolicy_add")).content.decode()

    assert "Add late-payment policy" in page
    assert "late payment policy" not in page


# --- A step saved before the bounds -----------------------------------------------------------


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def saved_before_the_bounds(**values) -> DunningStep:
    """The prompt ladder's last step (day 42) as saved before the bounds a step keeps existed."""
    DunningStep.objects.filter(policy=prompt(), position=4).update(**values)
    return prompt().steps.get(position=4)


@pytest.mark.parametrize(("values", "said"), [
    ({"pay_by_days": 120},
     "Step 4 gives 120 days to pay; a step gives at most 90. It was saved before that limit (meanwhile its "
     "notices give 90 days to pay). To mend it, set its days to pay to 90 or fewer."),
    ({"day_offset": 400},
     "Step 4 runs on day 400; a step runs at most 365 days after the due date. It was saved before that "
     "limit. To mend it, move it to day 365 or nearer the due date."),
], ids=["days-to-pay", "day"])
def test_a_ladder_with_a_step_saved_before_the_bounds_saves_and_names_the_step_and_how_to_mend_it(
    admin_client, values, said
):
    saved_before_the_bounds(**values)
    policy = prompt()
    data = policy_post(policy, {})
    data["description"] = "Ask kindly first."

    response = admin_client.post(change_url(policy), data, follow=True)

    policy.refresh_from_db()
    assert policy.description == "Ask kindly first."
    assert said in messages_of(response)


def test_a_taken_step_saved_before_the_bounds_is_to_be_retired_and_replaced(admin_client, make_account):
    step = saved_before_the_bounds(pay_by_days=120)
    customer = make_account(Segment.PROMPT)
    run = run_start(run_date=DUE)
    DunningAction.objects.create(run=run, cycle=customer.dunning_cycles.create(number=1, opened_on=DUE),
                                 customer=customer, step=step, planned_on=DUE, pay_by=DUE)
    policy = prompt()
    data = policy_post(policy, {})
    data["description"] = "Ask kindly first."

    response = admin_client.post(change_url(policy), data, follow=True)

    policy.refresh_from_db()
    assert policy.description == "Ask kindly first."
    assert ("Step 4 gives 120 days to pay; a step gives at most 90. It was saved before that limit "
            "(meanwhile its notices give 90 days to pay). It has been taken for customers, so it cannot be "
            "changed: tick “Retired” on it and add a new step in its place.") in messages_of(response)


def test_a_step_saved_before_the_bounds_changed_to_another_day_past_them_is_refused(admin_client):
    saved_before_the_bounds(pay_by_days=120)
    policy = prompt()

    response = admin_client.post(change_url(policy), policy_post(policy, {4: {"pay_by_days": 150}}))

    assert response.status_code == 200
    assert "Step 4 gives 150 days to pay; a step gives at most 90." in response.content.decode()
    assert policy.steps.get(position=4).pay_by_days == 120


def test_another_step_of_a_ladder_with_a_step_saved_before_the_bounds_saves_on_its_own_page(admin_client):
    saved_before_the_bounds(day_offset=400)
    first = prompt().steps.get(position=1)

    response = admin_client.post(step_url(first), step_post(first, tone=Tone.FIRM), follow=True)

    first.refresh_from_db()
    assert first.tone == Tone.FIRM
    assert ("Step 4 runs on day 400; a step runs at most 365 days after the due date. It was saved before "
            "that limit. To mend it, move it to day 365 or nearer the due date.") in messages_of(response)


LADDER_TABLES = ("collections_latepaymentpolicy", "collections_dunningstep", "collections_policyminimum")


def ladder_reads(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if any(f'FROM "{t}"' in q["sql"] for t in LADDER_TABLES)]


def test_the_ladders_are_read_once_and_kept_until_one_changes():
    from ar_collections.dunning import ladders

    first = ladders()
    with CaptureQueriesContext(connection) as queries:
        again = ladders()

    assert ladder_reads(queries) == []
    assert again == first


def test_a_ladder_a_manager_saves_is_the_one_dunning_reads_the_moment_it_is_saved(admin_client):
    from ar_collections.dunning import ladders

    policy = prompt()
    assert [s.day_offset for s in ladders()[Segment.PROMPT].steps][1] != 16
    response = admin_client.post(change_url(policy), policy_post(policy, {2: {"day_offset": 16}}))
    assert response.status_code == 302

    assert [s.day_offset for s in ladders()[Segment.PROMPT].steps][1] == 16


def test_every_way_a_ladder_changes_is_read_at_once_however_it_was_written():
    """Not only the admin's saves: an update in bulk, a deleted row and a fee
    are ladders changed too, whichever code or tool wrote them."""
    from ar_collections.dunning import ladders

    step = ladders()[Segment.PROMPT].steps[0]
    DunningStep.objects.filter(pk=step.pk).update(day_offset=step.day_offset - 1)
    assert ladders()[Segment.PROMPT].steps[0].day_offset == step.day_offset - 1

    policy = prompt()
    PolicyMinimum.objects.filter(policy=policy).delete()
    assert list(ladders()[Segment.PROMPT].policy.minimums.all()) == []

    LatePaymentPolicy.objects.filter(pk=policy.pk).update(min_days_between_contacts=2)
    assert ladders()[Segment.PROMPT].policy.min_days_between_contacts == 2

    with connection.cursor() as cursor:  # a hand-written statement, as a database tool would send it
        cursor.execute("UPDATE collections_dunningstep SET tone = tone WHERE id = %s", [step.pk])
        cursor.execute("DELETE FROM collections_latepaymentpolicy WHERE id = %s AND false", [policy.pk])
    with CaptureQueriesContext(connection) as queries:
        ladders()
    assert ladder_reads(queries), "a written step left the ladders as they were read before"
