"""The policy review page: per policy and step, whether its notices get
paid, over a period of pay-by dates; on a page and as a CSV file.

The same readers as the Numbers page: managers see the whole book, a
collector the notices to their own accounts, read-only colleagues nothing.
One view serves the page and, to htmx, its figures region alone.
"""

from __future__ import annotations

import csv

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from ar_collections import policy_review
from ar_collections.numbers import Scope
from ar_collections.numbers_views import EXCEL_KNOWS_UTF8, csv_text, numbers_reader
from arcrm.htmx import wants_fragment


class ReviewForm(forms.Form):
    days = forms.TypedChoiceField(
        label="Pay-by dates over",
        coerce=int,
        choices=[(n, f"{n} days") for n in policy_review.PERIOD_DAYS],
        error_messages={"invalid_choice": "Choose a period of 30, 90, 180 or 365 days."},
    )


def _query(query: QueryDict) -> dict[str, str]:
    return {"days": query.get("days", str(policy_review.DEFAULT_DAYS))}


def _scope(request: HttpRequest, manager: bool) -> Scope:
    # A collector reviews the notices to their own accounts, whatever the query says.
    return Scope() if manager else Scope(collector_id=request.user.pk)


@login_required
@require_safe
def policy_review_page(request: HttpRequest) -> HttpResponse:
    """Each step's notices, the money they asked and the share paid by the
    pay-by date and two weeks after it, per currency, and a plain flag."""
    manager = numbers_reader(request)
    today = timezone.localdate()
    form = ReviewForm(_query(request.GET))
    context = {"form": form, "manager": manager, "today": today, "policies": None, "rule": policy_review}
    status = 200
    if form.is_valid():
        context["window"], context["policies"] = policy_review.review(
            _scope(request, manager), today=today, days=form.cleaned_data["days"]
        )
    else:
        # As a rejected form: base.html swaps a 422 in, so the message shows where the figures were.
        status = 422
    template = "collections/policy_review.html"
    if wants_fragment(request):
        template += "#policy-review-figures"
    return render(request, template, context, status=status)


POLICY_REVIEW_CSV_HEADER = [
    "Policy",
    "Segment",
    "Step",
    "Day",
    "Action",
    "Notices",
    "Accounts",
    "Currency",
    "Notices in the currency",
    "Asked",
    "Paid by the pay-by date",
    "Share paid by the pay-by date (%)",
    f"Paid by {policy_review.LATE_DAYS} days after",
    f"Share paid by {policy_review.LATE_DAYS} days after (%)",
    "Median days to a payment",
    "Went on to a later step",
    "Ended with a dispute or plan",
    # The step's, over all its notices whatever their currencies: the same on each of its rows.
    "Share paid by the pay-by date, all notices (%)",
    "Flag",
]


def _percent(share) -> str:
    return "" if share is None else f"{share * 100:.1f}"


@login_required
@require_safe
def policy_review_csv(request: HttpRequest) -> HttpResponse:
    """The page's table as a CSV file: a row per step and currency (a step
    without notices, one row with empty money cells)."""
    manager = numbers_reader(request)
    today = timezone.localdate()
    form = ReviewForm(_query(request.GET))
    if not form.is_valid():
        # A file cannot carry the message: the page does, with the same query.
        return policy_review_page(request)
    _, policies = policy_review.review(_scope(request, manager), today=today,
                                       days=form.cleaned_data["days"])
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"policy-review-{today.isoformat()}.csv")
    response.write(EXCEL_KNOWS_UTF8)
    writer = csv.writer(response)
    writer.writerow(POLICY_REVIEW_CSV_HEADER)
    for p in policies:
        for s in p.steps:
            head = [
                csv_text(p.policy.name), p.policy.get_segment_display(), s.step.position, s.step.day_offset,
                s.step.get_action_display(), s.notices, s.accounts,
            ]
            median = "" if s.median_days is None else str(s.median_days)
            tail = [median, s.went_on, s.ended_disputed_or_planned, _percent(s.share_by_pay_by), s.flag]
            for c in s.currencies or [None]:
                if c is None:
                    writer.writerow([*head, "", "", "", "", "", "", "", *tail])
                    continue
                writer.writerow([
                    *head, c.currency, c.notices, str(c.asked), str(c.paid_by_pay_by),
                    _percent(c.share_by_pay_by), str(c.paid_late), _percent(c.share_late), *tail,
                ])
    return response
