"""Coming up: the steps the nightly runs would take in the next days if nobody
paid, and what a policy's steps on other days would do instead."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from ar_collections import simulator, workspace
from ar_collections.dunning import ladders, run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningStep,
    PlanStatus,
)
from customers.models import ContactRole, ReminderChannel, Segment
from tests.ar_collections.conftest import frozen

TODAY = dt.date(2025, 8, 5)
URL = reverse("collections:coming_up")
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


def day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


@pytest.fixture
def book(make_customer, make_contact, make_invoice, collector):
    """Three accounts whose nights are known (the default ladders):
    - Acme (prompt payer), EUR 500 due 3 Aug: the e-mail on 6 Aug (due + 3);
      it asks for payment by 16 Aug, a Saturday, so by Monday 18 Aug, and the
      letter comes on 19 Aug (due + 16), by post.
    - Bolt (new customer), EUR 300 and USD 80 due 4 Aug: the e-mail today
      (due + 1), then the call task on 14 Aug (due + 10).
    - Crane (prompt payer), EUR 10 due 1 Aug: below the EUR 25 minimum, nothing."""
    collector.first_name, collector.last_name = "Carla", "Collins"
    collector.save()
    acme = make_customer(name="Acme Tools", segment=Segment.PROMPT)
    # Anna would rather be called: written steps then keep their own channel.
    make_contact(acme, name="Anna Clerk", is_primary_billing=True, email="anna@acme.test",
                 postal_address="Acme Tools\nMain Street 1\n10115 Berlin", phone="+49 30 9876",
                 reminder_channel=ReminderChannel.PHONE)
    make_invoice(acme, issued=day(-32), due=day(-2), amount="500.00")
    bolt = make_customer(name="Bolt Supplies", segment=Segment.NEW)
    make_contact(bolt, name="Ben Payable", role=ContactRole.AP, is_primary_billing=True,
                 email="ben@bolt.test", phone="+49 30 1234")
    make_invoice(bolt, issued=day(-31), due=day(-1), amount="300.00")
    make_invoice(bolt, issued=day(-31), due=day(-1), amount="80.00", currency="USD")
    crane = make_customer(name="Crane Parts", segment=Segment.PROMPT)
    make_contact(crane, name="Cora Ledger", is_primary_billing=True, email="cora@crane.test")
    make_invoice(crane, issued=day(-35), due=day(-4), amount="10.00")
    return {"acme": acme, "bolt": bolt, "crane": crane}


def steps_by_day(days: list[simulator.Day]) -> set[tuple[str, int, dt.date]]:
    return {(p.customer.name, p.step.position, d.day) for d in days for p in d.steps}


def projected(days: int = 15, book_ladders=None) -> list[simulator.Day]:
    book_ladders = book_ladders or ladders()
    return simulator.project(simulator.book_read(today=TODAY, ladders=book_ladders), book_ladders, days=days)


def test_each_step_falls_on_the_night_its_ladder_gives(book):
    assert steps_by_day(projected()) == {
        ("Bolt Supplies", 1, day(0)), ("Acme Tools", 1, day(1)),
        ("Bolt Supplies", 2, day(9)), ("Acme Tools", 2, day(14)),
    }


def test_the_projection_agrees_with_what_the_runs_then_plan(book):
    expected = steps_by_day(projected())

    for n in range(15):
        with frozen(day(n)):
            run_plan(run=run_start(run_date=day(n)))
            # Carried out that day, as the projection takes them: sent, and letters posted.
            done = timezone.now()
            DunningAction.objects.filter(status=ActionStatus.PLANNED).update(
                status=ActionStatus.DONE, done_at=done, printed_at=done,
            )

    planned = DunningAction.objects.values_list("customer__name", "step__position", "planned_on")
    assert set(planned) == expected


def runs_planned(days: int = 15, *, mornings: bool = False) -> set[tuple[str, int, dt.date]]:
    """What the nightly runs of the next `days` plan, each step carried out on
    its day; with `mornings`, each after the night's check of promises and
    plans, which comes first (CELERY_BEAT_SCHEDULE)."""
    for n in range(days):
        with frozen(day(n)):
            if mornings:
                workspace.commitments_check(on=day(n))
            run_plan(run=run_start(run_date=day(n)))
            done = timezone.now()
            DunningAction.objects.filter(status=ActionStatus.PLANNED).update(
                status=ActionStatus.DONE, done_at=done, printed_at=done,
            )
    return set(DunningAction.objects.values_list("customer__name", "step__position", "planned_on"))


def test_a_hold_ending_within_the_days_releases_its_invoices_the_night_after_it_ends(book, collector):
    """Acme's first e-mail, due on 6 Aug, waits for a hold on the account
    until 9 Aug and goes out on the 10th, as the runs then plan it; Bolt's
    hold on its EUR invoice until 12 Aug leaves its USD one to chase."""
    workspace.pause_set(customer=book["acme"], actor=collector, ends_on=day(4), on=TODAY,
                        reason="Their AP clerk is back on the 10th.")
    [eur] = book["bolt"].invoices.filter(currency="EUR")
    workspace.pause_set(customer=book["bolt"], actor=collector, ends_on=day(7), on=TODAY, invoice=eur,
                        reason="Waiting for their purchase order.")

    days = projected()
    expected = steps_by_day(days)

    assert {(name, position, on) for name, position, on in expected if name == "Acme Tools"} == {
        ("Acme Tools", 1, day(5))}
    bolt_money = {d.day: d.money for d in days if any(p.customer.name == "Bolt Supplies" for p in d.steps)}
    assert bolt_money[day(0)] == [("USD", Decimal("80.00"))]
    assert runs_planned() == expected


def test_a_payment_plan_nobody_pays_ends_its_pause_the_night_after_its_first_instalment_s_grace(
    book, manager
):
    """Acme's plan pauses its invoice until its last instalment (30 Aug)
    and its grace days; but the projection takes it that nobody pays, and
    the morning's check breaks the plan once its first instalment (7 Aug) is
    past its grace: that night dunning resumes, as the runs then plan it."""
    [invoice] = book["acme"].invoices.all()
    plan = workspace.plan_propose(customer=book["acme"], actor=manager, invoices=[invoice],
                                  instalments=[(day(2), Decimal("250.00")), (day(25), Decimal("250.00"))],
                                  on=TODAY)
    assert plan.status == PlanStatus.ACTIVE
    broken_on = day(2 + plan.grace_days + 1)

    expected = steps_by_day(projected())

    assert min(on for name, _, on in expected if name == "Acme Tools") == broken_on
    assert runs_planned(mornings=True) == expected


def test_a_day_counts_its_steps_by_channel_and_its_money_by_currency(book):
    nights = projected()

    today, tomorrow, call_day, letter_day = nights[0], nights[1], nights[9], nights[14]
    assert dict((kind, n) for kind, _, n in today.counts)[Channel.EMAIL] == 1
    assert today.money == [("EUR", Decimal("300.00")), ("USD", Decimal("80.00"))]
    assert tomorrow.money == [("EUR", Decimal("500.00"))]
    assert call_day.calls_by_collector == [("Carla Collins", 1)]
    assert dict((kind, n) for kind, _, n in letter_day.counts)[Channel.LETTER] == 1


def test_once_todays_run_has_started_the_nights_begin_tomorrow(book):
    run_plan(run=run_start(run_date=TODAY))
    DunningAction.objects.update(status=ActionStatus.DONE, done_at=timezone.now())

    nights = projected()

    assert nights[0].day == day(1)
    assert steps_by_day(nights) == {
        ("Acme Tools", 1, day(1)), ("Bolt Supplies", 2, day(9)), ("Acme Tools", 2, day(14)),
    }


def test_nothing_below_the_policys_minimum_comes_up(book):
    assert not any(p.customer.name == "Crane Parts" for d in projected(days=30) for p in d.steps)


def test_a_step_waiting_for_a_collectors_review_holds_its_account_back(book):
    run = run_start(run_date=day(-1))
    cycle = DunningCycle.objects.create(customer=book["acme"], number=1, opened_on=day(-1))
    invoice = book["acme"].invoices.get()
    action = DunningAction.objects.create(
        run=run, cycle=cycle, customer=book["acme"], step=DunningStep.objects.get(
            policy__segment=Segment.PROMPT, position=1), status=ActionStatus.IN_REVIEW,
        planned_on=day(-1), pay_by=day(9),
    )
    DunningActionInvoice.objects.create(action=action, invoice=invoice, open_amount=invoice.open_amount,
                                        currency=invoice.currency)

    assert not any(p.customer.name == "Acme Tools" for d in projected() for p in d.steps)


def test_the_page_shows_each_nights_steps_and_says_what_it_assumes(client, manager, book):
    client.force_login(manager)

    response = client.get(URL, {"days": 30})

    assert response.status_code == 200
    text = response.content.decode()
    assert "if nobody paid, replied or was paused meanwhile" in text
    assert "What this projection assumes" in text
    row = _row(text, "now", day(14))
    assert "Prompt payers · step 2 (pdf letter)" in row
    assert "EUR 500.00" in row or "€500.00" in row or "500.00" in row
    assert "Carla Collins: 1" in _row(text, "now", day(9))
    assert f'id="coming-up-now-{day(30):%Y-%m-%d}"' not in text


def test_the_page_shows_seven_days_unless_asked_for_more(client, manager, book):
    client.force_login(manager)

    text = client.get(URL).content.decode()

    assert f'id="coming-up-now-{day(6):%Y-%m-%d}"' in text
    assert f'id="coming-up-now-{day(7):%Y-%m-%d}"' not in text
    assert f'id="coming-up-now-{day(29):%Y-%m-%d}"' in client.get(URL, {"days": 30}).content.decode()


def test_an_unknown_number_of_days_is_refused_with_a_message(client, manager, book):
    client.force_login(manager)

    response = client.get(URL, {"days": 99})

    assert response.status_code == 422
    assert "Choose 7, 14 or 30 days." in response.content.decode()


def test_a_night_opens_its_accounts_as_a_partial_with_htmx(client, manager, book):
    client.force_login(manager)
    query = {"days": 14, "day": day(9).isoformat(), "plan": "now"}

    partial = client.get(URL, query, headers=HTMX)
    page = client.get(URL, query)

    text = partial.content.decode()
    assert text.lstrip().startswith('<section id="coming-up-accounts"')
    assert "<html" not in text
    assert "Bolt Supplies" in text and "Phone call" in text and "Acme Tools" not in text
    assert "<html" in page.content.decode()
    assert "Bolt Supplies" in page.content.decode().split('id="coming-up-accounts"')[1]


def test_a_step_opens_only_its_accounts(client, manager, book):
    client.force_login(manager)
    email = DunningStep.objects.get(policy__segment=Segment.NEW, position=1)

    text = client.get(URL, {"day": day(0).isoformat(), "step": email.pk}, headers=HTMX).content.decode()

    assert "Bolt Supplies" in text
    assert "New customers step 1" in text


def test_a_night_and_its_steps_link_with_an_address_too(client, manager, book):
    client.force_login(manager)

    text = client.get(URL).content.decode()

    links = re.findall(r'<a href="([^"]*day=[^"]*)" hx-get="([^"]*)"', text)
    assert links
    assert all(href.split("#")[0] == hx_get for href, hx_get in links)


def test_a_what_if_moving_a_step_moves_its_night(client, manager, book):
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]
    query = {"days": 14, "policy": prompt.policy.pk, "min_gap": 5,
             **{f"step_{s.pk}": s.day_offset for s in prompt.steps}}
    query[f"step_{prompt.steps[0].pk}"] = 4  # the first e-mail on due + 4: 7 Aug, not 6 Aug

    response = client.get(URL, query)

    assert response.status_code == 200
    text = response.content.decode()
    assert "Prompt payers · step 1" in _row(text, "now", day(1))
    assert "Prompt payers · step 1" not in _row(text, "changed", day(1))
    assert "Prompt payers · step 1" in _row(text, "changed", day(2))
    # The change moves nothing of another ladder.
    assert "New customers · step 1" in _row(text, "changed", day(0))
    assert "policy admin" in text


def test_a_night_with_the_change_opens_the_accounts_of_the_changed_plan(client, manager, book):
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]
    query = {"policy": prompt.policy.pk, "min_gap": 5, **{f"step_{s.pk}": s.day_offset for s in prompt.steps},
             "day": day(2).isoformat()}
    query[f"step_{prompt.steps[0].pk}"] = 4

    changed = client.get(URL, {**query, "plan": "changed"}, headers=HTMX).content.decode()
    now = client.get(URL, {**query, "plan": "now"}, headers=HTMX).content.decode()

    assert "Acme Tools" in changed and "(with the change)" in changed
    assert "Acme Tools" not in now and "No step is due that night." in now


def test_the_page_and_its_what_if_save_nothing(client, manager, book):
    # Bolt's e-mail, and Crane's cycle waiting below the minimum, on record.
    run_plan(run=run_start(run_date=TODAY))
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]
    before = list(DunningStep.objects.order_by("pk").values_list("pk", "day_offset"))
    counts = DunningAction.objects.count(), DunningCycle.objects.count()
    assert counts == (1, 2)
    query = {"policy": prompt.policy.pk, "min_gap": 2,
             **{f"step_{s.pk}": s.day_offset + 1 for s in prompt.steps}}

    assert client.get(URL, query).status_code == 200
    assert client.get(URL, {**query, "day": day(1).isoformat()}, headers=HTMX).status_code == 200

    assert list(DunningStep.objects.order_by("pk").values_list("pk", "day_offset")) == before
    assert (DunningAction.objects.count(), DunningCycle.objects.count()) == counts
    prompt.policy.refresh_from_db()
    assert prompt.policy.min_days_between_contacts == 5


@pytest.mark.parametrize(("change", "message"), [
    ({"first": "soon"}, "Enter a whole number of days"),
    ({"second": 2}, "Step 2 runs on day 2, not after step 1 (day 3)."),
    ({"first": 30, "second": 31}, "tone may only get firmer"),
    ({"first": 10}, "Step 2 (day 14) would overtake step 1's pay-by date (day 20)."),
    ({"gap": -1}, "The gap cannot be negative."),
])
def test_bad_what_if_days_get_a_clear_message_and_no_comparison(client, manager, book, change, message):
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]
    first, second = prompt.steps[0], prompt.steps[1]
    query = {"policy": prompt.policy.pk, "min_gap": change.get("gap", 5),
             **{f"step_{s.pk}": s.day_offset for s in prompt.steps}}
    query[f"step_{first.pk}"] = change.get("first", first.day_offset)
    query[f"step_{second.pk}"] = change.get("second", second.day_offset)

    response = client.get(URL, query)

    assert response.status_code == 422
    text = response.content.decode()
    assert message in text.replace("&#x27;", "'")
    assert 'id="coming-up-changed' not in text
    assert 'id="coming-up-now' in text


def test_a_gap_longer_than_the_ladder_is_refused_as_meaningless(client, manager, book):
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]
    first, last = prompt.steps[0], prompt.steps[-1]
    span = last.day_offset - first.day_offset
    query = {"policy": prompt.policy.pk, **{f"step_{s.pk}": s.day_offset for s in prompt.steps}}

    refused = client.get(URL, {**query, "min_gap": span + 1})
    taken = client.get(URL, {**query, "min_gap": span})

    assert refused.status_code == 422
    text = refused.content.decode().replace("&#x27;", "'")
    assert (f"At least {span + 1} days between contacts is longer than the {span} days from step "
            f"{first.position} to step {last.position}: every step after the first would come that long "
            "after the one before, whatever its day. Give a shorter gap.") in text
    assert 'id="coming-up-changed' not in text
    assert 'id="coming-up-now' in text
    assert taken.status_code == 200
    assert 'id="coming-up-changed' in taken.content.decode()


@pytest.mark.parametrize("policy", ["999999", "prompt", "0"])
def test_an_unknown_policy_is_refused_rather_than_shown_as_no_change(client, manager, book, policy):
    client.force_login(manager)

    response = client.get(URL, {"policy": policy, "min_gap": 5})
    fragment = client.get(URL, {"policy": policy}, headers=HTMX)

    assert response.status_code == fragment.status_code == 422
    for text in (response.content.decode(), fragment.content.decode()):
        assert ("There is no policy to try with that number: choose one from the list "
                "(only an active policy with steps can be tried).") in text.replace("&#x27;", "'")
        assert 'id="what-if"' not in text and 'id="coming-up-changed' not in text
        assert 'id="coming-up-now' in text


def test_offsets_that_put_a_firmer_step_first_are_refused(client, manager, book):
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]
    query = {"policy": prompt.policy.pk, "min_gap": 5, **{f"step_{s.pk}": s.day_offset for s in prompt.steps}}
    # The firm letter before the friendly e-mail.
    query[f"step_{prompt.steps[0].pk}"], query[f"step_{prompt.steps[1].pk}"] = 20, 3

    text = client.get(URL, query).content.decode()

    assert "step 1 (friendly) would come after step 2 (firm): tone may only get firmer" in text


def test_choosing_a_policy_shows_its_days_to_try(client, manager, book):
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]

    response = client.get(URL, {"policy": prompt.policy.pk}, headers=HTMX)

    text = response.content.decode()
    assert response.status_code == 200
    assert text.lstrip().startswith('<section id="coming-up-results"')
    assert f'name="step_{prompt.steps[0].pk}" value="3"' in text
    assert 'id="coming-up-changed' not in text


def test_collectors_and_viewers_may_not_see_the_page(client, collector, viewer, book):
    for user in (collector, viewer):
        client.force_login(user)
        assert client.get(URL).status_code == 403
        assert client.get(URL, {"day": day(0).isoformat()}, headers=HTMX).status_code == 403


def test_the_page_needs_a_login(client, book):
    response = client.get(URL)

    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_the_page_only_reads(client, manager, book):
    client.force_login(manager)

    assert client.post(URL).status_code == 405


def test_managers_find_it_in_the_collections_menu_and_collectors_do_not(client, manager, collector, book):
    client.force_login(manager)
    assert f'href="{URL}"' in client.get(reverse("collections:runs")).content.decode()
    client.force_login(collector)
    assert f'href="{URL}"' not in client.get(reverse("collections:runs")).content.decode()


@pytest.mark.parametrize("more", [False, True])
def test_the_page_costs_the_same_queries_however_big_the_book(
    client, manager, book, make_customer, make_contact, make_invoice, django_assert_num_queries, more
):
    if more:
        for n in range(12):
            account = make_customer(segment=[Segment.PROMPT, Segment.NEW, Segment.SYSTEMATIC_LATE][n % 3])
            make_contact(account, is_primary_billing=True, postal_address="Somewhere 1")
            make_invoice(account, issued=day(-40 + n), due=day(-10 + n), amount="100.00")
    client.force_login(manager)
    prompt = ladders()[Segment.PROMPT]
    query = {"days": 30, "policy": prompt.policy.pk, "min_gap": 5,
             **{f"step_{s.pk}": s.day_offset + 1 for s in prompt.steps}}

    # session, user, permissions (2); the ladders' stamp (the ladders read above are kept while it
    # stands); has today's run started; the steps' fees; accounts, contacts, absences; eligible
    # invoices; open cycles; last contacts; the office's holidays; copies; steps taken; cycles over
    # (now, and with the change); role groups (the page head)
    with django_assert_num_queries(19):
        response = client.get(URL, query)

    assert response.status_code == 200


def _row(text: str, plan: str, night: dt.date) -> str:
    start = text.index(f'id="coming-up-{plan}-{night:%Y-%m-%d}"')
    return text[start:text.index("</tr>", start)]
