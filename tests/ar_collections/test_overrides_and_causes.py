"""A manager's segment override and the collector's cause of a miss, both audited."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.urls import reverse

from ar_collections.dunning import run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    DunningAction,
    DunningCycle,
    DunningStep,
    LatePaymentPolicy,
    MissCause,
    StepAction,
    Tone,
)
from ar_collections.services import behaviour_refresh, cause_record, segment_override
from customers.models import EventKind, Segment, TimelineEvent

ON = dt.date(2026, 6, 30)


@pytest.fixture
def prompt_customer(make_customer, make_invoice):
    customer = make_customer()
    for month in range(1, 6):
        due = dt.date(2026, month, 28)
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, paid_on=due)
    behaviour_refresh(on=ON)
    customer.refresh_from_db()
    assert customer.segment == Segment.PROMPT
    return customer


def test_a_manager_overrides_a_segment_with_a_note_and_it_is_audited(prompt_customer, manager):
    by_the_system = TimelineEvent.objects.filter(customer=prompt_customer, kind=EventKind.SEGMENT_CHANGED,
                                                 actor=None)
    computed_before = by_the_system.count()
    segment_override(customer=prompt_customer, segment=Segment.DISTRESSED,
                     note="Owner told us they lost their biggest client", actor=manager, on=ON)

    prompt_customer.refresh_from_db()
    assert prompt_customer.segment == Segment.DISTRESSED
    assert prompt_customer.segment_reason == (
        "Set by a manager: Owner told us they lost their biggest client "
        "(history says prompt payer: Paid 5 of 5 invoices on time.)"
    )
    decision = TimelineEvent.objects.get(customer=prompt_customer, actor=manager)
    assert decision.kind == EventKind.SEGMENT_CHANGED
    assert decision.details["before"]["segment"] == "prompt"
    assert decision.details["after"]["override"] == "distressed"
    # Recorded once, as the manager's: the recomputation it triggers adds no change "by the system".
    assert by_the_system.count() == computed_before


def test_the_nightly_refresh_keeps_the_override(prompt_customer, manager):
    segment_override(customer=prompt_customer, segment=Segment.SPECIAL_BOND, note="Founder's friend",
                     actor=manager, on=ON)
    behaviour_refresh(on=ON + dt.timedelta(days=1))

    prompt_customer.refresh_from_db()
    assert prompt_customer.segment == Segment.SPECIAL_BOND


def test_removing_the_override_brings_back_the_computed_segment(prompt_customer, manager):
    segment_override(customer=prompt_customer, segment=Segment.DISTRESSED, note="x", actor=manager, on=ON)
    segment_override(customer=prompt_customer, segment="", note="", actor=manager, on=ON)

    prompt_customer.refresh_from_db()
    assert (prompt_customer.segment, prompt_customer.segment_override) == (Segment.PROMPT, "")


def test_the_reason_given_for_an_override_is_on_the_timeline(client, prompt_customer, manager):
    """A collector reading the account's history sees why a manager moved it to
    another ladder, and from which segment, as a removal's reason is shown."""
    client.force_login(manager)
    url = reverse("collections:segment_override", args=[prompt_customer.pk])

    client.post(url, {"segment": Segment.DISTRESSED, "note": "Lost their biggest client"})

    said = "Segment set to Distressed by a manager (was Prompt payer): Lost their biggest client"
    decision = TimelineEvent.objects.get(customer=prompt_customer, kind=EventKind.SEGMENT_CHANGED,
                                         actor=manager)
    assert decision.summary == said
    assert said in client.get(reverse("customers:detail", args=[prompt_customer.pk])).content.decode()


def test_the_reason_given_for_removing_an_override_is_on_the_timeline(client, prompt_customer, manager):
    """The Dunning card asks "Why" for a removal too: the answer is what a
    reader of the timeline sees, and it is kept in the event's details."""
    client.force_login(manager)
    url = reverse("collections:segment_override", args=[prompt_customer.pk])
    client.post(url, {"segment": Segment.DISTRESSED, "note": "Lost their biggest client"})

    client.post(url, {"segment": "", "note": "New owner paid everything; back to normal"})

    removal = TimelineEvent.objects.filter(customer=prompt_customer, kind=EventKind.SEGMENT_CHANGED,
                                           actor=manager).latest("pk")
    assert removal.summary == (
        "Manager's segment override removed: New owner paid everything; back to normal"
    )
    assert removal.details["note"] == "New owner paid everything; back to normal"
    assert removal.details["before"]["note"] == "Lost their biggest client"


def test_only_a_manager_may_override_and_only_with_a_reason(prompt_customer, collector, manager):
    with pytest.raises(PermissionDenied):
        segment_override(customer=prompt_customer, segment=Segment.NEW, note="x", actor=collector, on=ON)
    with pytest.raises(ValidationError):
        segment_override(customer=prompt_customer, segment=Segment.NEW, note="  ", actor=manager, on=ON)
    prompt_customer.refresh_from_db()
    assert prompt_customer.segment_override == ""


@pytest.fixture
def behind(make_customer, make_invoice):
    customer = make_customer(segment=Segment.PROMPT)
    due = dt.date(2026, 3, 2)
    make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="900.00")
    sent_on = due + dt.timedelta(days=3)
    run_plan(run=run_start(run_date=sent_on))
    DunningAction.objects.filter(customer=customer).update(  # e-mailed that day, as a worker would
        status=ActionStatus.DONE, done_at=dt.datetime.combine(sent_on, dt.time(6), tzinfo=dt.UTC)
    )
    return customer


def test_a_customer_who_cannot_pay_is_escalated_on_the_fast_ladder(behind, collector):
    cause_record(customer=behind, cause=MissCause.CANNOT_PAY, actor=collector, on=dt.date(2026, 3, 6))
    # The day after the e-mail's pay-by date (Sunday 15 Mar, so Monday 16 Mar).
    run_plan(run=run_start(run_date=dt.date(2026, 3, 17)))

    steps = list(DunningAction.objects.filter(customer=behind).order_by("planned_on")
                 .values_list("step__policy__segment", "step__position"))
    # Prompt step 1, then the distressed ladder from position 2: a manager review.
    assert steps == [("prompt", 1), ("distressed", 2)]
    event = TimelineEvent.objects.get(customer=behind, kind=EventKind.NOTE)
    assert event.actor == collector
    assert event.details["after"] == {"cause": "cannot_pay"}


def test_a_cause_noted_past_the_end_of_its_ladder_goes_on_to_that_ladder_s_firmest_step_once(
    make_customer, make_invoice, collector
):
    """Every step of the prompt ladder taken (four), then "cannot pay": the
    distressed ladder has no fifth step, so the cycle goes on to its last one,
    the credit hold, rather than stopping there; and not twice."""
    customer = make_customer(segment=Segment.PROMPT)
    due = dt.date(2026, 3, 2)
    make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="900.00")

    def plan_and_send(day: dt.date) -> None:
        run_plan(run=run_start(run_date=day))
        # Sent, and the prompt ladder's manager review (step 4) looked at the same day.
        DunningAction.objects.filter(
            Q(status=ActionStatus.PLANNED)
            | Q(status=ActionStatus.AWAITING_APPROVAL, step__action=StepAction.MANAGER_REVIEW)
        ).update(status=ActionStatus.DONE, done_at=dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC))

    for offset in range(3, 50):
        plan_and_send(due + dt.timedelta(days=offset))
    assert list(DunningAction.objects.order_by("pk").values_list("step__position", flat=True)) == [1, 2, 3, 4]
    noted = due + dt.timedelta(days=50)
    cause_record(customer=customer, cause=MissCause.CANNOT_PAY, actor=collector, on=noted)

    for offset in range(50, 80):
        plan_and_send(due + dt.timedelta(days=offset))

    last = DunningAction.objects.order_by("pk").last()
    assert (last.step.policy.segment, last.step.action, last.status) == (
        Segment.DISTRESSED, "credit_hold", ActionStatus.AWAITING_APPROVAL
    )
    DunningAction.objects.filter(pk=last.pk).update(  # a manager approved it
        status=ActionStatus.DONE, done_at=dt.datetime.combine(due + dt.timedelta(days=80), dt.time(6),
                                                              tzinfo=dt.UTC)
    )
    for offset in range(81, 100):
        plan_and_send(due + dt.timedelta(days=offset))
    assert DunningAction.objects.count() == 5

    # The distressed policy replaced by a new one, alike: other steps, the same rungs.
    old = LatePaymentPolicy.objects.get(segment=Segment.DISTRESSED, is_active=True)
    steps, minimums = list(old.steps.all()), list(old.minimums.all())
    LatePaymentPolicy.objects.filter(pk=old.pk).update(is_active=False)
    new = LatePaymentPolicy.objects.get(pk=old.pk)
    new.pk, new.name, new.is_active = None, f"{old.name} (revised)", True
    new.save()
    for row in steps + minimums:
        row.pk, row.policy = None, new
        row.save()
    for offset in range(100, 120):
        plan_and_send(due + dt.timedelta(days=offset))
    assert DunningAction.objects.count() == 5  # the credit hold is not asked for again


def test_another_collectors_account_cannot_be_noted(behind, other_collector):
    with pytest.raises(PermissionDenied):
        cause_record(customer=behind, cause=MissCause.STUFF_HAPPENS, actor=other_collector,
                     on=dt.date(2026, 3, 6))
    assert DunningCycle.objects.get(customer=behind).cause == ""


def test_a_cause_needs_an_open_cycle(make_customer, collector):
    with pytest.raises(ValidationError, match="no cycle"):
        cause_record(customer=make_customer(), cause=MissCause.STUFF_HAPPENS, actor=collector, on=ON)


def _plan_and_send(day: dt.date) -> None:
    run_plan(run=run_start(run_date=day))
    DunningAction.objects.filter(status=ActionStatus.PLANNED).update(
        status=ActionStatus.DONE, done_at=dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC))


@pytest.mark.usefixtures("default_ladders")
def test_a_segment_changed_mid_cycle_goes_on_firmer_on_the_new_ladder_not_silent(
    make_customer, make_invoice, manager
):
    """An occasional slip has had its ladder's steps 1-4 (up to the principal,
    final tone). Overridden to distressed on day 40, the cycle does not stop:
    past the end of the distressed ladder, it takes that ladder's firmest step
    (the credit hold, for a manager's approval) once."""
    due = dt.date(2026, 3, 2)
    customer = make_customer(segment=Segment.OCCASIONAL_SLIP)
    make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="9000.00")
    for offset in range(5, 40):
        _plan_and_send(due + dt.timedelta(days=offset))
    assert list(DunningAction.objects.order_by("pk").values_list("step__position", flat=True)) == [1, 2, 3, 4]

    segment_override(customer=customer, segment=Segment.DISTRESSED, note="Lost their biggest client",
                     actor=manager, on=due + dt.timedelta(days=40))
    for offset in range(40, 90):
        _plan_and_send(due + dt.timedelta(days=offset))

    steps = list(DunningAction.objects.order_by("pk").values_list("step__policy__segment", "step__action"))
    assert steps[4:] == [(Segment.DISTRESSED, "credit_hold")]
    assert DunningAction.objects.get(step__action="credit_hold").status == ActionStatus.AWAITING_APPROVAL


@pytest.mark.usefixtures("default_ladders")
def test_a_segment_changed_mid_cycle_never_goes_softer_than_what_was_said(make_customer, make_invoice):
    """A systematic late payer's ladder here is final from step 2 on. After step
    2, the account becomes a new customer (as the nightly refresh may decide):
    that ladder's step 3 is a firm letter, softer than what was said; the cycle
    goes on with the first step at least as firm, the principal (step 4)."""
    final_from_2 = DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position__gte=2)
    final_from_2.update(tone=Tone.FINAL)
    due = dt.date(2026, 3, 2)
    customer = make_customer(segment=Segment.SYSTEMATIC_LATE)
    make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="900.00")
    for offset in range(-3, 8):
        _plan_and_send(due + dt.timedelta(days=offset))
    assert list(DunningAction.objects.order_by("pk").values_list("step__position", "step__tone")) == [
        (1, Tone.FRIENDLY), (2, Tone.FINAL)
    ]

    type(customer).objects.filter(pk=customer.pk).update(segment=Segment.NEW)
    for offset in range(8, 60):
        _plan_and_send(due + dt.timedelta(days=offset))

    later = list(DunningAction.objects.order_by("pk").values_list("step__policy__segment", "step__position",
                                                                  "step__tone"))[2:]
    assert later == [(Segment.NEW, 4, Tone.FINAL), (Segment.NEW, 5, Tone.FINAL)]


@pytest.mark.usefixtures("default_ladders")
def test_a_switched_cycle_past_a_gentler_ladder_s_end_stops_rather_than_soften(make_customer, make_invoice):
    """As above, but the new customers' ladder here ends with its firm letter
    (step 3): after a final notice, even that last step would be softer."""
    final_from_2 = DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position__gte=2)
    final_from_2.update(tone=Tone.FINAL)
    DunningStep.objects.filter(policy__segment=Segment.NEW, position__gte=4).delete()
    due = dt.date(2026, 3, 2)
    customer = make_customer(segment=Segment.SYSTEMATIC_LATE)
    make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="900.00")
    for offset in range(-3, 8):
        _plan_and_send(due + dt.timedelta(days=offset))

    type(customer).objects.filter(pk=customer.pk).update(segment=Segment.NEW)
    for offset in range(8, 60):
        _plan_and_send(due + dt.timedelta(days=offset))

    assert DunningAction.objects.count() == 2  # nothing softer after the final notice


def _decisions(customer) -> list[str]:
    return list(TimelineEvent.objects.filter(customer=customer, kind=EventKind.SEGMENT_CHANGED)
                .order_by("pk").values_list("summary", flat=True))


def test_removing_an_override_there_is_none_of_is_refused_and_records_nothing(
    client, prompt_customer, manager
):
    """A form opened before another manager removed it, or "Save" left on "No
    override" as it opened: there is nothing to remove, and the timeline would
    say a manager removed an override nobody had set."""
    client.force_login(manager)
    before = _decisions(prompt_customer)

    response = client.post(reverse("collections:segment_override", args=[prompt_customer.pk]),
                           {"segment": "", "note": ""}, headers={"HX-Request": "true"})

    assert response.status_code == 422
    assert response.context["segment_form"].errors["segment"] == [
        "No segment is overridden on this account: the computed segment applies already. "
        "Nothing was changed."]
    assert _decisions(prompt_customer) == before


def test_the_same_override_sent_twice_is_recorded_once(client, prompt_customer, manager):
    client.force_login(manager)
    url = reverse("collections:segment_override", args=[prompt_customer.pk])
    sent = {"segment": Segment.DISTRESSED, "note": "Lost their biggest client"}
    assert client.post(url, sent).status_code == 302
    before = _decisions(prompt_customer)

    again = client.post(url, sent, headers={"HX-Request": "true"})

    assert again.status_code == 422
    assert again.context["segment_form"].errors["segment"] == [
        "The segment is set to Distressed with this reason already. Nothing was changed."]
    assert _decisions(prompt_customer) == before
