"""The manager's page of what dunning will do in the coming days, and what a
policy's steps on other days would do instead (nothing saved: the ladders
are changed in the admin)."""

from __future__ import annotations

import datetime as dt
import itertools

from django import forms
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from ar_collections import simulator
from ar_collections.dunning import Ladder, ladders
from ar_collections.models import STEP_DAYS_FROM_DUE_AT_MOST, Tone, ladder_problems
from arcrm.forms import WholeNumberField
from arcrm.htmx import wants_fragment

# The policy is the managers': the same permission as the Approvals page.
DECIDE_TERMS = "customers.set_credit_terms"

# How far from the due date a step may be tried, either way: as far as a step may run.
MAX_OFFSET = STEP_DAYS_FROM_DUE_AT_MOST


class WindowForm(forms.Form):
    days = forms.TypedChoiceField(
        label="Days ahead", choices=[(n, f"{n} days") for n in simulator.DAY_CHOICES], coerce=int,
        required=False, empty_value=simulator.DEFAULT_DAYS,
        error_messages={"invalid_choice": "Choose 7, 14 or 30 days."},
    )


def _step_field_name(step) -> str:
    return f"step_{step.pk}"


class WhatIfForm(forms.Form):
    """A policy's steps' days and its minimum gap between contacts, tried."""

    def __init__(self, ladder: Ladder, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ladder = ladder
        whole = "Enter a whole number of days, e.g. 14 (negative: before the due date)."
        for step in ladder.steps:
            self.fields[_step_field_name(step)] = WholeNumberField(
                label=f"Step {step.position}: {step.get_action_display()} "
                      f"({step.get_tone_display().lower()})",
                initial=step.day_offset, min_value=-MAX_OFFSET, max_value=MAX_OFFSET,
                error_messages={
                    "required": f"Give step {step.position} a day.", "invalid": whole,
                    "min_value": f"A step may come at most {MAX_OFFSET} days before the due date.",
                    "max_value": f"A step may come at most {MAX_OFFSET} days after the due date.",
                },
            )
        self.fields["min_gap"] = WholeNumberField(
            label="Minimum days between contacts", initial=ladder.policy.min_days_between_contacts,
            min_value=0, max_value=MAX_OFFSET,
            error_messages={"required": "Give the minimum gap in days (0 for none).",
                            "invalid": "Enter a whole number of days, e.g. 5.",
                            "min_value": "The gap cannot be negative.",
                            "max_value": f"The gap may be at most {MAX_OFFSET} days."},
        )

    def step_fields(self):
        return [self[_step_field_name(step)] for step in self.ladder.steps]

    def day_offsets(self) -> dict[int, int]:
        return {step.pk: self.cleaned_data[_step_field_name(step)] for step in self.ladder.steps}

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        tried = simulator.ladders_with(
            {self.ladder.policy.segment: self.ladder}, segment=self.ladder.policy.segment,
            day_offsets=self.day_offsets(), min_gap=cleaned["min_gap"],
        )[self.ladder.policy.segment]
        # The admin's own rules for a ladder: days that go forward, a pay-by
        # date never overtaken, tone that only gets firmer, a gap between
        # contacts no longer than the ladder.
        problems = ladder_problems(tried.steps, min_gap=cleaned["min_gap"])
        # Days put out of order would also reorder the tones the customer hears.
        by_day = sorted(tried.steps, key=lambda s: (s.day_offset, s.position))
        for earlier, later in itertools.pairwise(by_day):
            if later.tone < earlier.tone:
                problems.append(
                    f"On these days step {later.position} ({Tone(later.tone).label.lower()}) would come "
                    f"after step {earlier.position} ({Tone(earlier.tone).label.lower()}): tone may only "
                    "get firmer."
                )
        if problems:
            raise forms.ValidationError(problems)
        return cleaned


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_safe
@vary_on_headers("HX-Request")
def coming_up(request: HttpRequest) -> HttpResponse:
    """For each of the next days, the steps the nightly run would take if
    nobody paid, replied or was paused meanwhile; with `policy` and its
    steps' days, the same beside it as if the policy's days were those.
    With `day` (and `step`, `plan`), the accounts behind one day's figures."""
    today = timezone.localdate()
    window = WindowForm(request.GET)
    days = window.cleaned_data["days"] if window.is_valid() else simulator.DEFAULT_DAYS
    book_ladders = ladders()
    context: dict = {"window": window, "days": days, "today": today, "notes": simulator.APPROXIMATIONS,
                     "policies": [ladder.policy for ladder in book_ladders.values()],
                     # Ladders in force whose gap freezes them, saved before it was
                     # checked: the nights below follow them as saved.
                     "gap_problems": [(ladder.policy, problems) for ladder in book_ladders.values()
                                      if (problems := ladder.policy.gap_problems(ladder.steps))]}
    status = 200 if window.is_valid() else 422
    # Read before the tried ladders are copied from these: the copies keep the fees it fetches.
    book = simulator.book_read(today=today, ladders=book_ladders)

    ladder = _chosen_ladder(request, book_ladders)
    context["ladder"] = ladder
    if ladder is None and request.GET.get("policy", ""):
        # Shown as "No change" it would pass for a what-if that changes nothing.
        context["policy_error"] = ("There is no policy to try with that number: choose one from the list "
                                   "(only an active policy with steps can be tried).")
        status = 422
    tried = None
    if ladder is not None:
        tried_days = any(name.startswith("step_") for name in request.GET) or "min_gap" in request.GET
        form = WhatIfForm(ladder, request.GET if tried_days else None, auto_id="what-if-%s")
        context["what_if"] = form
        if tried_days:
            if form.is_valid():
                tried = simulator.ladders_with(
                    book_ladders, segment=ladder.policy.segment, day_offsets=form.day_offsets(),
                    min_gap=form.cleaned_data["min_gap"],
                )
            else:
                status = 422

    context["first_day"] = book.first_day
    context["now"] = simulator.project(book, book_ladders, days=days)
    if tried is not None:
        context["changed"] = simulator.project(book, tried, days=days)
    context["query"] = request.GET.urlencode()
    _chosen_accounts(request, context)

    template = "collections/coming_up.html"
    if wants_fragment(request):
        template += "#coming-up-accounts" if "day" in request.GET else "#coming-up-results"
    return render(request, template, context, status=status)


def _chosen_ladder(request: HttpRequest, book_ladders: dict[str, Ladder]) -> Ladder | None:
    wanted = request.GET.get("policy", "")
    return next((ladder for ladder in book_ladders.values() if str(ladder.policy.pk) == wanted), None)


def _chosen_accounts(request: HttpRequest, context: dict) -> None:
    """The steps of the day (and step) asked for, on the plan asked for."""
    try:
        day = dt.date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        return
    plan = "changed" if request.GET.get("plan") == "changed" and "changed" in context else "now"
    found = next((d for d in context[plan] if d.day == day), None)
    if found is None:
        return
    step = request.GET.get("step", "")
    context["chosen"] = {
        "day": day, "plan": plan,
        "steps": [p for p in found.steps if not step or str(p.step.pk) == step],
        "step": next((p.step for p in found.steps if str(p.step.pk) == step), None),
    }
