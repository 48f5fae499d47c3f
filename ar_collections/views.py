"""The collections pages: dunning runs, the collectors' review queue, the
managers' approvals, the letters' print queue, and the two forms of the
Dunning card on the account page.

Same shape as customers/views.py: one view serves a page and its htmx
fragment (named partials that carry the DOM id they render). Without htmx a
form posts and redirects; with htmx it returns the re-rendered fragment and
the messages out of band. Every view checks who may see or do what; the
templates only mirror it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event
from kombu.exceptions import OperationalError as BrokerUnreachable

from ar_collections import api, delivery, dunning, imports, paper, services, simulator
from ar_collections.channels import caller_for, route_for, step_as_sent
from ar_collections.forms import (
    ApiTokenForm,
    ApprovalForm,
    CauseForm,
    CollectorFilterForm,
    ImportForm,
    LetterWithdrawForm,
    MarkPrintedForm,
    PaperWithdrawForm,
    ReviewForm,
    SegmentOverrideForm,
    StartRunForm,
    letters_in_queue,
)
from ar_collections.models import (
    ActionStatus,
    ApiToken,
    Channel,
    Dispute,
    DisputeStatus,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningPause,
    DunningRun,
    ExceptionKind,
    Holiday,
    ImportStatus,
    Invoice,
    InvoiceStatus,
    LatePaymentPolicy,
    PaperDocument,
    PaymentBehaviour,
    PaymentPlan,
    PlanStatus,
    Promise,
    PromiseStatus,
    ReceivablesImport,
    RunStatus,
    StepAction,
)
from ar_collections.numbers import with_disputed_part
from ar_collections.workspace import (
    amounts_waived,
    charges_waivable,
    exceptions_asked,
    pauses_liftable,
    write_off_lines_now,
)
from arcrm.dates import INVOICE_LONG_AGO_DAYS, LONG_AGO_DAYS, format_day
from arcrm.htmx import form_autofocus, wants_fragment
from arcrm.money import ZERO, format_money
from arcrm.paging import BadPosition, Keyset, Page
from arcrm.roles import can_act_on, require_act_on
from arcrm.text import person_name
from customers.cover import covered_by
from customers.models import Contact, Customer, EventKind, TimelineEvent
from customers.owners import account_owners

log = logging.getLogger(__name__)

PAGE_SIZE = 50
# Seconds starting a run waits for the message broker, to connect and then to
# take the message; it answers in milliseconds when it is up. Without them a
# broker that takes the connection and says nothing (hung, or a firewall that
# swallows the packets) held the request for ever, and one that refused it
# held it through the client's connection retries.
BROKER_WAIT_SECONDS = 2
# The review and approval queues page by position (arcrm.paging): a decision
# takes its step off the queue where it stands, and a page counted by offset
# would then skip the steps that moved up.
QUEUE_ORDER = Keyset("planned_on", "customer__name", "pk")
# So does the print queue, oldest first (as the partial indexes
# action_letter_unprinted and paper_unprinted hold them): letters marked
# printed or withdrawn leave it where they stand. It lists dunning letters and
# paper copies and statements as one list: queue_kind (0 a letter, 1 a paper
# document) tells apart two rows of two tables written at the same instant.
LETTERS_ORDER = Keyset("done_at", "queue_kind", "pk")
LAST_ACTIONS_ON_CARD = 5

# Who may do what, in the permissions arcrm.roles hands out: every role reads;
# collectors and managers work accounts (collectors their own, managers any);
# managers alone decide on credit terms, which a credit hold or C.O.D. changes.
READ = "customers.view_customer"
WORK = "customers.change_customer"
ACT_ON_ANY = "customers.act_on_any_customer"
DECIDE_TERMS = "customers.set_credit_terms"

# Columns of the runs table, in the order a run moves through them.
STATUS_COLUMNS = [
    (ActionStatus.PLANNED, "Planned"),
    (ActionStatus.IN_REVIEW, "In review"),
    (ActionStatus.AWAITING_APPROVAL, "Awaiting approval"),
    (ActionStatus.SENDING, "Sending"),
    (ActionStatus.DONE, "Done"),
    (ActionStatus.SKIPPED, "Skipped"),
    (ActionStatus.FAILED, "Failed"),
]
# A run's own page pages its steps by position (arcrm.paging): filtered by
# status, steps leave the filter where they stand as the workers send them
# and people review them, and a page counted by offset would skip those moved up.
RUN_ACTIONS_ORDER = Keyset("customer__name", "pk")


# --- Runs ------------------------------------------------------------------


@login_required
@permission_required(READ, raise_exception=True)
@require_safe
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    return _render_runs(request)


@login_required
@permission_required(ACT_ON_ANY, raise_exception=True)
@require_POST
def run_start(request: HttpRequest) -> HttpResponse:
    """Start (or refuse to start) today's run; the work itself is a Celery task."""
    today = timezone.localdate()
    form = StartRunForm(request.POST, today=today)
    # Refusals travel as messages: the runs section refreshes itself while a
    # run is going, and an error shown inside it would vanish at the next refresh.
    if form.is_valid() and not form.cleaned_data["confirmed"]:
        # The start button asks nothing itself: the page asks, naming the day, and nothing starts yet.
        return _render_runs(request, confirm=True)
    if form.is_valid():
        try:
            run = _run_start(run_date=today, manager=request.user)
        except dunning.RunRefused as refusal:
            messages.error(request, str(refusal))
        else:
            messages.success(
                request,
                f"The run for {format_day(run.run_date)} has started. Its counts fill in as it plans "
                "and sends.",
            )
            # The start button goes with the form: the new run's status takes the keyboard.
            if request.htmx:
                return _render_runs(request, started=run)
            return redirect(reverse("collections:runs") + f"#run-{run.pk}-status")
    else:
        for errors in form.errors.values():
            messages.error(request, "No run was started: " + " ".join(errors))
    return _render_runs(request, status=422)


def _run_start(*, run_date: dt.date, manager) -> DunningRun:
    """Create the run row now, so a refusal is said at once and the page shows
    the run as started; the task then resumes that same run.

    Two managers clicking at once may both pass the check below; only one
    creates the row, and the other is told so (the run would survive being
    enqueued twice, but a manager should not read "started" for a run they
    did not start).
    """
    existing = DunningRun.objects.filter(run_date=run_date).first()
    if existing and existing.status == RunStatus.RUNNING:
        raise dunning.RunRefused(
            f"The run for {format_day(run_date)} is already running (started "
            f"{timezone.localtime(existing.started_at):%H:%M}). Its progress shows below; "
            "there is no need to start it again."
        )
    if existing:
        raise dunning.RunRefused(
            f"The run for {format_day(run_date)} has already finished: every step due today "
            "was planned. The next run is tomorrow's."
        )
    with transaction.atomic():
        run = dunning.run_start(run_date=run_date, started_by=manager, new_only=True)
    # Enqueued once the row is committed (the worker resumes that row), here
    # rather than in an on-commit hook so that a broker that does not answer
    # is said, not a 500 over a run left "running" that no worker will do.
    try:
        _run_enqueue(run_date=run_date, manager=manager)
    except BrokerUnreachable as error:
        log.error("the run for %s could not be handed to the workers: %s", run_date, error)
        # No worker will hear of it: the row goes, as if never started, unless
        # a worker has begun planning it meanwhile (the nightly schedule).
        DunningRun.objects.filter(pk=run.pk, planned_through_customer_id=0, planned_at__isnull=True).delete()
        raise dunning.RunRefused(
            f"No run was started: the workers cannot be reached (the message broker did not answer: "
            f"{error}). Start it again once the broker is back; otherwise tonight's run does the work."
        ) from None
    return run


def _run_enqueue(*, run_date: dt.date, manager) -> None:
    """Hand the run to the workers, or raise BrokerUnreachable within about
    BROKER_WAIT_SECONDS: one try, on a connection of its own that has the
    timeouts (the shared ones have none, for the workers' long reads)."""
    from ar_collections.tasks import start_dunning_run

    bounded = {
        "socket_connect_timeout": BROKER_WAIT_SECONDS,
        "socket_timeout": BROKER_WAIT_SECONDS,
        "max_retries": 0,  # a refused connection is said at once, not retried
    }
    with start_dunning_run.app.connection_for_write(transport_options=bounded) as connection:
        start_dunning_run.apply_async((run_date.isoformat(), manager.pk), connection=connection, retry=False)


def _render_runs(
    request: HttpRequest, *, status: int = 200, started: DunningRun | None = None, confirm: bool = False,
) -> HttpResponse:
    today = timezone.localdate()
    runs = DunningRun.objects.select_related("started_by").order_by("-run_date")
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    page_runs = list(page)
    counts = _counts_by_run(page_runs)
    may_start = request.user.has_perm(ACT_ON_ANY)
    # Newest first: on the first page today's run, if there is one, leads.
    todays_run = (next((run for run in page_runs if run.run_date == today), None) if page.number == 1
                  else DunningRun.objects.filter(run_date=today).first())
    form = StartRunForm(initial={"run_date": today}, today=today) if may_start and not todays_run else None
    # Said before the manager confirms: the run does not wait for a request nobody decided.
    acted_on = _requests_acted_on(today=today) if form is not None else []
    context = {
        "todays_run": todays_run if may_start else None,
        "page": page,
        "rows": [(run, [counts[run.pk][s] for s, _ in STATUS_COLUMNS]) for run in page_runs],
        "status_columns": [label for _, label in STATUS_COLUMNS],
        "any_running": any(run.status == RunStatus.RUNNING for run in page_runs),
        "form": form,
        "today": today,
        "started": started,
        "confirm": confirm and form is not None,
        "today_shown": format_day(today),
        "requests_acted_on": acted_on,
        # Also in the question the start button asks.
        "requests_said": (f" {len(acted_on)} request{'s' if len(acted_on) > 1 else ''} waiting for a manager "
                          f"concern{'' if len(acted_on) > 1 else 's'} accounts it acts on: only an approved "
                          "request pauses dunning." if acted_on else ""),
    }
    template = "collections/runs.html"
    if wants_fragment(request):
        template += "#runs"
    return render(request, template, context, status=status)


@login_required
@permission_required(READ, raise_exception=True)
@require_safe
@vary_on_headers("HX-Request")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: its counts, and its steps page by page, filtered by status.
    Whoever reads the runs page reads every step here, as that page counts
    them: runs are shared, and every role reads every account."""
    run = get_object_or_404(DunningRun.objects.select_related("started_by"), pk=pk)
    status = request.GET.get("status", "")
    statuses = dict(STATUS_COLUMNS)
    refusal = ""
    actions = _terms_in_force_marked(
        DunningAction.objects.filter(run=run, customer__in=Customer.objects.visible_to(request.user))
        .select_related("customer", "step", "recipient")
    )
    if status and status not in statuses:
        choices = [label.lower() for label in statuses.values()]
        refusal = (f"“{status[:40]}” is not a status a step can have: choose {', '.join(choices[:-1])} "
                   f"or {choices[-1]}.")
        actions = actions.none()
    elif status:
        actions = actions.filter(status=status)
    try:
        page = RUN_ACTIONS_ORDER.page(actions, after=request.GET.get("after", ""),
                                      before=request.GET.get("before", ""), size=PAGE_SIZE)
    except BadPosition as error:
        return HttpResponseBadRequest(str(error))
    _no_decision_needed_said(page.items)
    counts, no_decision_needed = _run_counts(run)
    context = {
        "run": run,
        "page": page,
        "status": status if not refusal else "",
        "status_label": statuses.get(status, ""),
        "refusal": refusal,
        "total": sum(counts.values()),
        "counts": [(value, label, counts[value]) for value, label in STATUS_COLUMNS],
        "no_decision_needed": no_decision_needed,
    }
    template = "collections/run_detail.html"
    if wants_fragment(request):
        template += "#run-actions"
    else:
        # The ladders this run took steps of whose minimum gap freezes them,
        # saved before it was checked: the run followed them as saved.
        context["gap_problems"] = LatePaymentPolicy.objects.filter(steps__actions__run=run).gap_problems()
    return render(request, template, context, status=400 if refusal else 200)


def _run_counts(run: DunningRun) -> tuple[dict[str, int], int]:
    """One run's steps by status, as the runs page counts them (the status
    on record), and how many of those awaiting approval need no decision
    (_terms_in_force_marked): in one grouped query."""
    counts = dict.fromkeys(ActionStatus.values, 0)
    rows = (
        DunningAction.objects.filter(run=run).order_by().values("status")
        .annotate(n=Count("pk"), moot=Count("pk", filter=_waiting_for_terms_in_force()))
        .values_list("status", "n", "moot")
    )
    no_decision_needed = 0
    for status, n, moot in rows:
        counts[status] = n
        no_decision_needed += moot
    return counts, no_decision_needed


def _waiting_for_terms_in_force() -> Q:
    """A step waiting for a manager that asks for terms its account has
    already (services.asking_terms_in_force): it waits for no manager. The
    approvals leave it out as they read until the daily refresh skips it
    (services.credit_terms_in_force_skip); the pages showing steps say so by
    the same rule, not "waiting"."""
    return Q(status=ActionStatus.AWAITING_APPROVAL) & services.asking_terms_in_force()


def _terms_in_force_marked(actions: QuerySet[DunningAction]) -> QuerySet[DunningAction]:
    """`actions`, each with `moot`: whether it is _waiting_for_terms_in_force."""
    return actions.annotate(moot=Case(When(_waiting_for_terms_in_force(), then=True), default=False))


def _no_decision_needed_said(actions) -> None:
    """On each moot step of `actions` (from _terms_in_force_marked, their
    steps and accounts loaded), `no_decision_needed`: why, in words."""
    for action in actions:
        if action.moot:
            action.no_decision_needed = services.credit_terms_in_force(action)[0]


def _counts_by_run(runs: list[DunningRun]) -> dict[int, dict[str, int]]:
    """dunning.run_counts for a page of runs: the same dictionaries, in one
    grouped query instead of one per run."""
    counts = {run.pk: dict.fromkeys(ActionStatus.values, 0) for run in runs}
    if counts:
        rows = (
            DunningAction.objects.filter(run_id__in=counts).order_by()
            .values("run_id", "status").annotate(n=Count("pk"))
            .values_list("run_id", "status", "n")
        )
        for run_id, status, n in rows:
            counts[run_id][status] = n
    return counts


# --- The collectors' review queue -------------------------------------------


@login_required
@permission_required(WORK, raise_exception=True)
@require_safe
@vary_on_headers("HX-Request")
def review_queue(request: HttpRequest) -> HttpResponse:
    """Steps waiting for a collector: a collector's own accounts, a manager's pick."""
    actions, form = _review_waiting(request.user, request.GET)
    try:
        page = _queue_page(actions, request.GET)
    except BadPosition as error:
        return HttpResponseBadRequest(str(error))
    items = page.items
    # Read once for the page: a step that would go by post counts from its posting day.
    holidays = Holiday.objects.days_after(timezone.localdate()) if items else frozenset()
    for action in items:
        _add_preview(action, holidays=holidays)
        action.form = ReviewForm(auto_id=f"review-{action.pk}-%s")
    template = "collections/review.html"
    if wants_fragment(request):
        template += "#review-queue"
    return render(request, template, {"page": page, "items": items, "form": form, "count": actions.count()})


def _review_waiting(user, query: QueryDict) -> tuple[QuerySet[DunningAction], CollectorFilterForm | None]:
    """The review queue `user` sees with `query`'s filter, and that filter's form."""
    actions = _review_actions().filter(status=ActionStatus.IN_REVIEW).order_by(*QUEUE_ORDER.order)
    form = None
    if user.has_perm(ACT_ON_ANY):
        form = CollectorFilterForm(query)
        if collector_id := form.collector_id():
            actions = actions.filter(customer__collector_id=collector_id)
    else:
        # Their own accounts', and those of a colleague away whom they cover for.
        actions = actions.filter(_theirs(user))
    return actions, form


@login_required
@permission_required(WORK, raise_exception=True)
@require_http_methods(["GET", "POST"])
def action_review(request: HttpRequest, pk: int) -> HttpResponse:
    actions = _review_actions()
    action = _action_for(request, actions, pk)
    if request.method == "GET":
        # The step on a page of its own, to send or skip (the worklist's item links here).
        _add_preview(action)
        action.form = ReviewForm(auto_id=f"review-{pk}-%s")
        return render(request, "collections/action_page.html", {
            "action": action, "item_template": "collections/review.html#review-item",
            "queue_url": reverse("collections:review"), "queue_name": "Steps to review",
        })
    form = ReviewForm(request.POST, auto_id=f"review-{pk}-%s")
    if form.is_valid():
        try:
            reviewed = delivery.action_review(
                action=action, collector=request.user, send=form.send,
                note=form.cleaned_data["note"],
            )
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            messages.add_message(request, *_review_outcome(action, reviewed))
            if not request.htmx:
                waiting, _ = _review_waiting(request.user, QueryDict())
                return redirect(_queue_landing("collections:review", waiting, action, list_id="review-queue"))
            form = None
        # Whatever happened, the item now shows the step as it stands.
        action = actions.get(pk=pk)
    _add_preview(action)
    action.form = form
    return _item_response(
        request, "collections/review.html#review-item", action,
        queue="collections:review", queue_name="Steps to review",
        count=lambda query: ("collections/review.html#review-count", _review_waiting(request.user, query)[0]),
    )


def _review_outcome(action: DunningAction, reviewed: DunningAction) -> tuple[int, str]:
    """A step sent from the review queue is with the delivery workers: the
    page says at once what they will do with it, by the route they take today
    (a call step sends the customer nothing, a letter waits to be posted), and
    what came of it lands on the timeline."""
    if reviewed.status != ActionStatus.PLANNED:
        return _outcome(action, reviewed)
    name, today = action.customer.name, timezone.localdate()
    route = route_for(action=action, day=today)
    whom = route.contact.name if route.contact else name
    if route.channel == Channel.EMAIL:
        return messages.SUCCESS, (f"{name}: e-mail to {whom} queued for sending; what comes of it shows "
                                  "on the account's timeline.")
    if route.channel == Channel.LETTER:
        return messages.SUCCESS, (f"{name}: letter to {whom} queued for writing; once written it waits "
                                  "in the print queue to be posted.")
    if route.channel == Channel.PHONE:
        caller = caller_for(action.customer, day=today)[1]
        return messages.SUCCESS, (f"{name}: a call to {whom} goes on the worklist of {caller}; "
                                  "nothing is sent to the customer.")
    # A step for a manager (a ladder edited since it was planned) is held for one by delivery.
    what = action.step.get_action_display().lower()
    return messages.SUCCESS, f"{name}: {what} goes to a manager to approve."


def _outcome(action: DunningAction, done: DunningAction, *, approved: bool = False) -> tuple[int, str]:
    """The message level and words for what became of a reviewed or approved step."""
    name, what = action.customer.name, action.step.get_action_display()
    if done.status == ActionStatus.DONE:
        if approved and action.step.action == StepAction.MANAGER_REVIEW:
            return messages.SUCCESS, f"{name}: manager review done; the ladder goes on."
        if approved:
            return messages.SUCCESS, f"{name}: {what.lower()} approved and in force."
        if done.channel == Channel.EMAIL:
            return messages.SUCCESS, f"{name}: {what.lower()} sent to {done.recipient_address}."
        if done.channel == Channel.LETTER:
            return messages.SUCCESS, f"{name}: letter written; it waits in the print queue."
        if done.channel == Channel.PHONE:
            return messages.SUCCESS, f"{name}: call task created."
        return messages.SUCCESS, f"{name}: {what.lower()} done."
    if done.status == ActionStatus.SKIPPED and approved:
        # The manager went ahead, but the step had nothing left to act on.
        return messages.WARNING, (f"{name}: {what.lower()} no longer needed, nothing done "
                                  f"({done.skip_reason}).")
    if done.status == ActionStatus.SKIPPED:
        return messages.SUCCESS, f"{name}: {what.lower()} skipped ({done.skip_reason})."
    if done.status == ActionStatus.FAILED:
        return messages.ERROR, f"{name}: {what.lower()} could not be sent: {done.error}"
    return messages.WARNING, (
        f"{name}: {what.lower()} is not sent yet and will be tried again"
        + (f" ({done.error})." if done.error else ".")
    )


# --- The managers' approvals ------------------------------------------------


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_safe
@vary_on_headers("HX-Request")
def approval_queue(request: HttpRequest) -> HttpResponse:
    """Credit holds and switches to C.O.D. waiting for a manager, each with the
    five questions to weigh before bending or applying the rule."""
    today = timezone.localdate()
    actions = _approval_waiting(today=today)
    try:
        page = _queue_page(actions, request.GET)
    except BadPosition as error:
        return HttpResponseBadRequest(str(error))
    items = page.items
    _add_questions(items, today=today)
    for action in items:
        action.form = ApprovalForm(auto_id=f"approval-{action.pk}-%s")
    # Collectors' requests above their limits; few at a time, so not paginated.
    # Those asked until a day that passed undecided are listed apart, for what they asked, not to be decided:
    # the recent ones only (those the daily job recorded as lapsed, and any it has not come to yet).
    # So are write-offs that closed undecided, every invoice settled another way, for as long.
    pending = list(
        exceptions_asked(on=today).select_related("customer", "requested_by").order_by("requested_on", "pk")
    )
    exception_requests = [asked for asked in pending if not asked.lapsed]
    lapsed_requests = [asked for asked in pending if asked.lapsed]
    for asked in exception_requests:
        if asked.kind == ExceptionKind.FEE_WAIVER:  # a query each: these are few
            asked.waives = amounts_waived(charges_waivable(asked))
        elif asked.kind == ExceptionKind.WRITE_OFF:  # two queries each, as few
            asked.lines_now = write_off_lines_now(asked)
    plans = list(PaymentPlan.objects.filter(status=PlanStatus.AWAITING_APPROVAL)
                 .select_related("customer", "proposed_by").order_by("proposed_on", "pk"))
    next_night = _next_run_marked([*plans, *exception_requests], today=today)
    # Undecided past the days the run waits for them (dunning.requests_holding): the run has gone on.
    for plan in plans:
        plan.overdue_for_decision = dunning.decision_overdue(plan.proposed_on, today=today)
    for asked in exception_requests:
        asked.overdue_for_decision = (asked.kind in dunning.HOLDING_REQUESTS
                                      and dunning.decision_overdue(asked.requested_on, today=today))
    template = "collections/approvals.html"
    fragment = wants_fragment(request)
    if fragment:
        template += "#approval-queue"
    return render(request, template, {
        "page": page, "items": items, "count": actions.count(), "requests_oob": fragment,
        "plans": plans, "exception_requests": exception_requests, "lapsed_requests": lapsed_requests,
        "next_night": next_night, "tonight": next_night == today,
    })


def _next_run_marked(waiting: list, *, today: dt.date) -> dt.date | None:
    """Give each request waiting for a manager `next_run`: the step the next
    run would take on its account, as Coming up projects it, or None. Only
    an approved request pauses dunning, so one left undecided past that night
    does not stop it: the manager should know before. Returns that night
    (None, and no query, when nothing waits)."""
    for asked in waiting:
        asked.next_run = None
    if not waiting:
        return None
    night, acted_on = simulator.next_run_steps(
        today=today, ladders=dunning.ladders(), customer_ids={asked.customer_id for asked in waiting})
    for asked in waiting:
        asked.next_run = acted_on.get(asked.customer_id)
    return night


def _requests_acted_on(*, today: dt.date) -> list:
    """The collectors' requests waiting for a manager (plans, then exceptions,
    as the approvals list them) on accounts the next run acts on."""
    waiting = [
        *PaymentPlan.objects.filter(status=PlanStatus.AWAITING_APPROVAL).select_related("customer")
        .order_by("proposed_on", "pk"),
        *(asked for asked in exceptions_asked(on=today).select_related("customer")
          .order_by("requested_on", "pk") if not asked.lapsed),
    ]
    _next_run_marked(waiting, today=today)
    return [asked for asked in waiting if asked.next_run is not None]


def _approval_waiting(*, today: dt.date) -> QuerySet[DunningAction]:
    """The steps waiting for a manager. One asking for terms its account has
    already (put in force since the last refresh other than on the account
    card, which skips such steps at once) is left out: there is nothing to
    weigh. It is skipped, with why on the timeline, by the daily refresh or
    when a manager decides it from a page opened before; never by a read."""
    return (_approval_actions(today=today).filter(status=ActionStatus.AWAITING_APPROVAL)
            .exclude(services.asking_terms_in_force()).order_by(*QUEUE_ORDER.order))


def _queue_landing(
    queue: str, waiting: QuerySet[DunningAction], decided: DunningAction, *, list_id: str
) -> str:
    """Where a queue opens without htmx once `decided` left it (with htmx the
    next item takes the keyboard, data-focus-next): at the step to go on with,
    on a page that holds it (QUEUE_ORDER.landing). At the list, whose count
    says none is left, when nothing waits."""
    url = reverse(queue)
    landing = QUEUE_ORDER.landing(waiting, QUEUE_ORDER.cursor_for(decided), size=PAGE_SIZE)
    if landing is None:
        return f"{url}#{list_id}"
    step, position = landing
    if position:
        url += "?" + urlencode(position)
    return f"{url}#action-{step.pk}"


def _queue_page(actions: QuerySet[DunningAction], query: QueryDict) -> Page:
    """The page of a queue that the URL asks for: after or before a step, or the first."""
    return QUEUE_ORDER.page(actions, after=query.get("after", ""), before=query.get("before", ""),
                            size=PAGE_SIZE)


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_POST
def action_decide(request: HttpRequest, pk: int) -> HttpResponse:
    today = timezone.localdate()
    actions = _approval_actions(today=today)
    action = _action_for(request, actions, pk)
    form = ApprovalForm(request.POST, auto_id=f"approval-{pk}-%s")
    if form.is_valid():
        note = form.cleaned_data["note"]
        approve = form.cleaned_data["decision"] == ApprovalForm.APPROVE
        try:
            if approve:
                done = delivery.action_approve(action=action, manager=request.user, note=note)
            else:
                done = services.action_decline(action=action, manager=request.user, note=note)
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            if approve or done.skip_reason in services.TERMS_IN_FORCE:
                # Approved, or found in force already: either way, what came of it.
                messages.add_message(request, *_outcome(action, done, approved=True))
            else:
                what = action.step.get_action_display().lower()
                messages.success(request, f"{action.customer.name}: {what} declined.")
            if not request.htmx:
                return redirect(_queue_landing("collections:approvals", _approval_waiting(today=today),
                                               action, list_id="approval-queue"))
            form = None
        action = actions.get(pk=pk)
    _add_questions([action], today=today)
    action.form = form
    if action.status != ActionStatus.AWAITING_APPROVAL:
        action.decided, action.decision_note = _decision_said(action)
    return _item_response(
        request, "collections/approvals.html#approval-item", action,
        queue="collections:approvals", queue_name="Approvals",
        count=lambda query: ("collections/approvals.html#approval-count", _approval_waiting(today=today)),
    )


# What a decided step asks for, and what came of approving it.
ASKED = {StepAction.CREDIT_HOLD: "credit hold", StepAction.SWITCH_TO_COD: "switch to C.O.D."}
APPROVED = {StepAction.CREDIT_HOLD: "the account is on credit hold",
            StepAction.SWITCH_TO_COD: "the account is on C.O.D. terms"}


def _decision_said(action: DunningAction) -> tuple[str, str]:
    """Who decided the step, what, when, and their note: what its card says
    once decided. The note is on the decision's timeline entry (a declined
    step keeps it as its skip reason, cut short; an approved one not at all),
    as is what tells a decline (an exception) from an approval that found
    the step moot (a dunning entry): both skip the step with reviewed_by
    set. One query."""
    events = (TimelineEvent.objects.for_subject(action).filter(actor__isnull=False).select_related("actor")
              .order_by("-occurred_at", "-pk"))
    decision = next((event for event in events if "note" in event.details), None)
    when = ""
    if action.done_at:
        done_at = timezone.localtime(action.done_at)
        when = f" on {format_day(done_at.date())} at {done_at:%H:%M}"
    if decision is None:
        # Not a manager's: skipped as asking for terms in force, or as no longer needed.
        if action.status == ActionStatus.SKIPPED:
            return f"Skipped{when}, no decision needed: {action.skip_reason}.", ""
        return action.get_status_display() + ".", ""
    by = f"by {person_name(decision.actor)}{when}"
    review = action.step.action == StepAction.MANAGER_REVIEW
    if action.status == ActionStatus.DONE:
        said = (f"Reviewed {by}: the ladder goes on." if review
                else f"Approved {by}: {APPROVED[action.step.action]}.")
    elif decision.kind == EventKind.EXCEPTION:
        said = (f"Review skipped {by}; the ladder goes on." if review
                else f"Declined {by}: no {ASKED[action.step.action]}; the ladder goes on.")
    else:
        said = f"Approved {by}, but not carried out: {action.skip_reason}."
    return said, decision.details["note"]


@dataclass(frozen=True)
class FiveQuestions:
    """What a manager weighs before a credit hold or C.O.D. (DESIGN: Exceptions)."""

    customer_since: dt.date
    years_served: float
    behaviour: PaymentBehaviour | None
    # What the account owes overdue now, per currency, the account's own first:
    # read off the invoices as the account page does, not last night's figure,
    # so a payment since counts before a hold or C.O.D. is decided. Less what
    # is under open dispute, which a hold would not chase, said beside
    # (`disputed`) as the account page's header says it.
    overdue: list[tuple[str, Decimal]]
    disputed: list[tuple[str, Decimal]]
    revenue_12m: Decimal
    referrals: int

    @classmethod
    def for_customer(cls, customer: Customer, *, today: dt.date) -> FiveQuestions:
        """The same questions for a collector's request (a plan, an exception):
        three small queries where the approval queue uses subqueries."""
        invoiced = Invoice.objects.filter(customer=customer, currency=customer.currency)
        revenue = _sales_in_year(invoiced, today=today).aggregate(total=Sum("total_amount"))["total"]
        return cls._of(
            customer, today=today, revenue_12m=revenue,
            referrals=Customer.objects.filter(referred_by=customer).count(),
            overdue=_overdue_now([customer.pk], today=today).get(customer.pk, {}),
        )

    @classmethod
    def of(cls, action: DunningAction, *, today: dt.date,
           overdue: dict[str, tuple[Decimal, Decimal]]) -> FiveQuestions:
        return cls._of(action.customer, today=today, revenue_12m=action.revenue_12m,
                       referrals=action.referral_count, overdue=overdue)

    @classmethod
    def _of(cls, customer: Customer, *, today: dt.date, revenue_12m, referrals,
            overdue: dict[str, tuple[Decimal, Decimal]]) -> FiveQuestions:
        try:
            behaviour = customer.behaviour
        except PaymentBehaviour.DoesNotExist:
            behaviour = None
        # A currency whose overdue money is all under dispute shows no 0.00 among what is overdue.
        in_order = sorted(overdue.items(), key=lambda pair: (pair[0] != customer.currency, pair[0]))
        return cls(
            customer_since=customer.customer_since,
            years_served=customer.years_served(on=today),
            behaviour=behaviour,
            overdue=[(currency, owed) for currency, (owed, _) in in_order if owed],
            disputed=[(currency, disputed) for currency, (_, disputed) in in_order if disputed],
            revenue_12m=revenue_12m or ZERO,
            referrals=referrals or 0,
        )


def _overdue_now(customer_ids: Iterable[int], *,
                 today: dt.date) -> dict[int, dict[str, tuple[Decimal, Decimal]]]:
    """What each account owes overdue today, per currency: what is not under
    open dispute and what is (numbers.with_disputed_part, of an invoice
    disputed in part the part disputed). One grouped query."""
    owed: dict[int, dict[str, tuple[Decimal, Decimal]]] = {}
    overdue = Invoice.objects.overdue(on=today).filter(customer_id__in=list(customer_ids))
    for row in (with_disputed_part(overdue).order_by().values("customer_id", "currency")
                .annotate(undisputed=Sum("undisputed"), disputed=Sum("disputed_part"))):
        owed.setdefault(row["customer_id"], {})[row["currency"]] = (row["undisputed"], row["disputed"])
    return owed


def _approval_actions(*, today: dt.date) -> QuerySet[DunningAction]:
    """Actions with what the five questions cannot read off the customer row:
    a year's sales (invoiced in the account currency, cancelled ones aside; the
    proxy for what the relationship is worth) and how many customers it referred.
    Both are subqueries of the one page query, whatever the number of rows."""
    revenue = (
        _sales_in_year(Invoice.objects.filter(customer=OuterRef("customer_id"),
                                              currency=OuterRef("customer__currency")), today=today)
        .order_by().values("customer").annotate(total=Sum("total_amount")).values("total")
    )
    referrals = (
        Customer.objects.filter(referred_by=OuterRef("customer_id"))
        .order_by().values("referred_by").annotate(n=Count("pk")).values("n")
    )
    return _actions_with_lines().select_related("customer__behaviour").annotate(
        revenue_12m=Subquery(revenue), referral_count=Subquery(referrals)
    )


def _sales_in_year(invoices: QuerySet[Invoice], *, today: dt.date) -> QuerySet[Invoice]:
    """The last 12 months' invoices, cancelled ones aside: what the relationship is worth."""
    return invoices.filter(issue_date__gt=today - dt.timedelta(days=365), issue_date__lte=today).exclude(
        status=InvoiceStatus.CANCELLED
    )


def _add_questions(actions: list[DunningAction], *, today: dt.date) -> None:
    """The five questions of each action; one query for what their accounts
    owe overdue in other currencies, whatever the number of rows."""
    overdue = _overdue_now({action.customer_id for action in actions}, today=today)
    for action in actions:
        _add_totals(action)
        action.questions = FiveQuestions.of(action, today=today, overdue=overdue.get(action.customer_id, {}))
    _add_agreements(actions)
    _add_disputes(actions)


def _add_agreements(actions: list[DunningAction]) -> None:
    """The promises still open and the plans proposed or in force on each
    step's invoices (as the decision on a plan warns of a dispute opened
    since): a hold or C.O.D. over what the customer agreed to pay goes
    against the agreement, and the manager should know before deciding.
    Two queries, whatever the number of rows."""
    listing: dict[int, list[DunningAction]] = {}
    for action in actions:
        action.agreements = []
        for line in action.lines.all():
            listing.setdefault(line.invoice_id, []).append(action)
    promised = (Promise.invoices.through.objects
                .filter(invoice_id__in=listing, promise__status=PromiseStatus.OPEN)
                .select_related("promise", "invoice").order_by("promise_id", "invoice__number"))
    planned = (PaymentPlan.invoices.through.objects
               .filter(invoice_id__in=listing,
                       paymentplan__status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL])
               .select_related("paymentplan", "invoice").order_by("paymentplan_id", "invoice__number"))
    found: dict[tuple[int, object], list[str]] = {}
    links = [*((x.invoice_id, x.invoice.number, x.promise) for x in promised),
             *((x.invoice_id, x.invoice.number, x.paymentplan) for x in planned)]
    for invoice_id, number, agreement in links:
        for action in listing[invoice_id]:
            numbers = found.get((action.pk, agreement))
            if numbers is None:
                numbers = found[(action.pk, agreement)] = []
                action.agreements.append((agreement, numbers))
            numbers.append(number)


def _add_disputes(actions: list[DunningAction]) -> None:
    """The disputes still open on each step's invoices: the customer may owe
    less than the step counts on (our own delivery, a price), and a hold or
    C.O.D. over our own mistake costs the relationship. One query, whatever
    the number of rows."""
    listing: dict[int, list[DunningAction]] = {}
    for action in actions:
        action.disputes = []
        for line in action.lines.all():
            listing.setdefault(line.invoice_id, []).append(action)
    for dispute in (Dispute.objects.filter(invoice_id__in=listing, status=DisputeStatus.OPEN)
                    .select_related("invoice").order_by("invoice__number", "pk")):
        for action in listing[dispute.invoice_id]:
            action.disputes.append(dispute)


# --- The print queue ---------------------------------------------------------


@login_required
@permission_required(WORK, raise_exception=True)
@require_safe
@vary_on_headers("HX-Request")
def letter_queue(request: HttpRequest) -> HttpResponse:
    try:
        position = _letters_position(request)
    except BadPosition as error:
        return HttpResponseBadRequest(str(error))
    return _render_letters(request, position)


@login_required
@permission_required(WORK, raise_exception=True)
@require_safe
def letter_download(request: HttpRequest, pk: int) -> FileResponse:
    letter = get_object_or_404(
        DunningAction.objects.select_related("customer").exclude(letter_pdf=""), pk=pk
    )
    require_act_on(request.user, letter.customer)
    return _pdf_download(letter.letter_pdf, missing="The letter's PDF is missing from storage.")


@login_required
@permission_required(WORK, raise_exception=True)
@require_safe
def paper_download(request: HttpRequest, pk: int) -> FileResponse:
    """An invoice copy or statement of the print queue, to print."""
    document = get_object_or_404(PaperDocument.objects.select_related("customer"), pk=pk)
    require_act_on(request.user, document.customer)
    return _pdf_download(document.pdf, missing="The document's PDF is missing from storage.")


def _pdf_download(pdf, *, missing: str) -> FileResponse:
    """A stored PDF (a file field's file) as a download; 404 saying `missing` if storage lost it."""
    try:
        handle = pdf.open("rb")
    except FileNotFoundError:
        raise Http404(missing) from None
    return FileResponse(handle, as_attachment=True, filename=os.path.basename(pdf.name),
                        content_type="application/pdf")


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def letters_printed(request: HttpRequest) -> HttpResponse:
    """Mark the ticked letters (and paper copies and statements) printed; the
    queue then shows again from where the form was, with what moved up into
    their place."""
    try:
        position = _letters_position(request)
    except BadPosition as error:
        return HttpResponseBadRequest(str(error))
    form = MarkPrintedForm(request.POST)
    if form.is_valid():
        letters, documents = list(form.cleaned_data["letters"]), list(form.cleaned_data["documents"])
        for item in letters + documents:
            require_act_on(request.user, item.customer)
        marked = 0
        if letters:
            marked += delivery.letters_mark_printed(letter_ids=[letter.pk for letter in letters],
                                                    actor=request.user)
        if documents:
            marked += paper.documents_mark_posted(document_ids=[d.pk for d in documents], actor=request.user)
        what = "document" if documents else "letter"
        messages.success(request, f"{marked} {what}{'' if marked == 1 else 's'} marked as printed.")
        first = min(letters + documents, key=_place)
        after = _letter_after(request, first)
        if request.htmx:
            return _render_letters(request, position, letters_left=True, focus=after)
        return redirect(_letters_landing(request, position, letter=after, gone=first))
    return _render_letters(request, position, form=form, status=422)


@login_required
@permission_required(WORK, raise_exception=True)
@require_http_methods(["GET", "POST"])
def letter_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    """Take a letter out of the print queue before it is posted, saying why:
    one the queue warns about (its account paused since, its invoices paid in
    part) that should not go after all."""
    letter = get_object_or_404(
        DunningAction.objects.filter(channel=Channel.LETTER).exclude(letter_pdf="")
        .select_related("customer", "step__policy", "recipient"), pk=pk,
    )
    require_act_on(request.user, letter.customer)
    if not letters_in_queue().filter(pk=letter.pk).exists():
        # Printed or withdrawn by a colleague while the reason was being typed, say.
        raise Http404(_left_the_queue(letter))
    return _queue_withdraw(
        request, letter, what=f"Letter to {letter.customer.name}",
        withdraw=lambda reason: delivery.letter_withdraw(letter=letter, actor=request.user, reason=reason),
        form=LetterWithdrawForm, template="collections/letter_withdraw.html", context={"letter": letter},
        # The page says what was paid of it since it was written.
        before_page=lambda: _add_paid_since([letter]),
    )


@login_required
@permission_required(WORK, raise_exception=True)
@require_http_methods(["GET", "POST"])
def paper_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    """Take an invoice copy or statement out of the print queue before it is
    posted, saying why. One whose demands were all settled leaves by itself
    (paper.documents_withdraw_moot)."""
    document = get_object_or_404(PaperDocument.objects.select_related("customer", "invoice"), pk=pk)
    require_act_on(request.user, document.customer)
    name = paper.document_name(document)
    if not paper.documents_in_queue().filter(pk=document.pk).exists():
        raise Http404(f"{name} to {document.recipient_name} has left the print queue already: "
                      + ("it was marked posted." if document.printed_at else "it was withdrawn."))
    return _queue_withdraw(
        request, document, what=f"{name} to {document.recipient_name}",
        withdraw=lambda reason: paper.document_withdraw(document=document, actor=request.user, reason=reason),
        form=PaperWithdrawForm, template="collections/paper_withdraw.html",
        context={"document": document, "name": name},
    )


def _queue_withdraw(request: HttpRequest, item, *, what: str, withdraw, form, template: str,
                    context: dict, before_page=None) -> HttpResponse:
    """The withdraw page of a letter or paper document in the print queue
    (`item`, still in it): the reason asked on GET; on POST `withdraw(reason)`,
    then the queue from where the page was, with what moved up into its place."""
    try:
        position = _letters_position(request)
    except BadPosition as error:
        return HttpResponseBadRequest(str(error))
    bound = request.method == "POST"
    form = form(request.POST if bound else None)
    if bound and form.is_valid():
        try:
            withdraw(form.cleaned_data["reason"])
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            messages.success(request, f"{what} withdrawn.")
            after = _letter_after(request, item)
            if request.htmx:
                return _render_letters(request, position, letters_left=True, focus=after)
            return redirect(_letters_landing(request, position, letter=after, gone=item))
    if before_page:
        before_page()
    return render(request, template, {
        **context, "form": form, "position": position.urlencode(), "queue_url": _letters_url(position),
    }, status=422 if bound else 200)


def _left_the_queue(letter: DunningAction) -> str:
    if letter.printed_at:
        return (f"The letter to {letter.customer.name} was marked printed on "
                f"{format_day(timezone.localtime(letter.printed_at).date())} and has left the print queue: "
                "it can no longer be withdrawn.")
    return (f"The letter to {letter.customer.name} has left the print queue already: it was withdrawn, "
            "or what it asked for has been paid.")


def _place(item: DunningAction | PaperDocument) -> tuple:
    """Where a letter or paper document stands in the print queue's order."""
    return (item.done_at, 1 if isinstance(item, PaperDocument) else 0, item.pk)


def _cursor(item: DunningAction | PaperDocument) -> str:
    item.queue_kind = _place(item)[1]
    return LETTERS_ORDER.cursor_for(item)


def _box_id(item: DunningAction | PaperDocument) -> str:
    return f"{'document' if isinstance(item, PaperDocument) else 'letter'}-{item.pk}"


def _letters_position(request: HttpRequest) -> QueryDict:
    """Where in the print queue the page asking stands: after or before a
    letter, or at the top (empty). The forms and links that lead back to the
    queue carry it in their address, so that a collector who marks letters
    printed or withdraws one on a later page comes back to that place, not to
    the first page. BadPosition for one the queue did not hand out."""
    position = QueryDict(mutable=True)
    for name in ("after", "before"):
        if cursor := request.GET.get(name):
            LETTERS_ORDER.cursor_parse(_letters_for(None), cursor)
            position[name] = cursor
    return position


def _letters_url(position: QueryDict) -> str:
    url = reverse("collections:letters")
    return f"{url}?{position.urlencode()}" if position else url


def _letters_landing(
    request: HttpRequest, position: QueryDict, *, letter: DunningAction | PaperDocument | None,
    gone: DunningAction | PaperDocument,
) -> str:
    """Where the queue opens without htmx after letters left it, `gone` the
    first of them in the queue's order: at the box of `letter`, the one to go
    on with, on a page that holds it. The page the collector was on, if it
    still does; else the first page; else the page that begins right after
    `gone` (or, `letter` coming before it, ends right before), which always
    does. At the top of the list, which says so, when no letter is left."""
    if letter is None:
        return reverse("collections:letters") + "#letters"
    queue = _queue_for(request.user)
    for where in [position, QueryDict()] if position else [position]:
        page = LETTERS_ORDER.page_merged(queue, after=where.get("after", ""), before=where.get("before", ""),
                                         size=PAGE_SIZE)
        if letter in page.items:
            return _letters_url(where) + f"#{_box_id(letter)}"
    side = "after" if _place(letter) > _place(gone) else "before"
    where = QueryDict(mutable=True)
    where[side] = _cursor(gone)
    return _letters_url(where) + f"#{_box_id(letter)}"


def _letters_for(user) -> QuerySet[DunningAction]:
    """The dunning letters of the print queue this user works (None: everyone's)."""
    letters = letters_in_queue().annotate(queue_kind=Value(0, output_field=IntegerField()))
    return letters if user is None or user.has_perm(ACT_ON_ANY) else letters.filter(_theirs(user))


def _documents_for(user) -> QuerySet[PaperDocument]:
    """The paper copies and statements of the print queue this user works."""
    documents = paper.documents_in_queue()
    return documents if user.has_perm(ACT_ON_ANY) else documents.filter(_theirs(user))


def _queue_for(user) -> list[QuerySet]:
    return [_letters_for(user), _documents_for(user)]


def _theirs(user) -> Q:
    """A collector's queue: their own accounts', and those of a colleague
    away whom they cover for today (the worklist sends them there)."""
    return Q(customer__collector=user) | Q(customer__collector_id__in=covered_by(user))


def _letter_after(request: HttpRequest, gone: DunningAction | PaperDocument
                  ) -> DunningAction | PaperDocument | None:
    """The letter (or paper document) that takes the keyboard once `gone` (and
    any marked with it) left the queue: the next one in the queue's order, or
    the one before when it was the last; None when none is left."""
    queue, cursor = _queue_for(request.user), _cursor(gone)
    later = LETTERS_ORDER.page_merged(queue, after=cursor, size=1).items
    # Going back with fewer than a page before, a page shows the first: with
    # nothing after `gone` and one before, that is the one before.
    earlier = [] if later else LETTERS_ORDER.page_merged(queue, before=cursor, size=1).items
    return (later or earlier or [None])[0]


def _render_letters(request: HttpRequest, position: QueryDict, *, form: MarkPrintedForm | None = None,
                    status: int = 200, letters_left: bool = False, focus: DunningAction | None = None):
    """The queue. After letters left it, the button pressed is swapped away and
    the focus would fall to the top of the page: the box of the letter `focus`
    takes it, or the list itself when that letter is not on this page or none is left."""
    queue = [_letters_for(request.user).select_related("customer", "step__policy", "recipient"),
             _documents_for(request.user).select_related("customer", "invoice")]
    page = LETTERS_ORDER.page_merged(queue, after=position.get("after", ""),
                                     before=position.get("before", ""), size=PAGE_SIZE)
    ticked = ({f"letter-{pk}" for pk in form["letters"].value() or []}
              | {f"document-{pk}" for pk in form["documents"].value() or []}) if form else set()
    listed = page.items
    for item in listed:
        item.box_id = _box_id(item)
    _add_paid_since([item for item in listed if isinstance(item, DunningAction)])
    context = {
        "page": page, "count": sum(rows.count() for rows in queue), "letters": listed, "form": form,
        "ticked": ticked,
        # A collector's queue holds the letters of their own accounts only: the page says so.
        "yours_only": not request.user.has_perm(ACT_ON_ANY),
        "focus_letter": _box_id(focus) if letters_left and focus else None,
        "focus_list": letters_left and focus not in listed,
        "position": position.urlencode(),
        # A form rejected without htmx shows at the form's address: page links relative to it would ask
        # the form for a page.
        "queue_path": reverse("collections:letters"),
    }
    template = "collections/letters.html"
    if wants_fragment(request):
        template += "#letters"
    return render(request, template, context, status=status)


def _add_paid_since(letters: list[DunningAction]) -> None:
    """On each letter, what it asks for that has been paid since it was
    written ("INV-1 paid", "INV-2 part paid"): the one posting it decides
    whether it still goes (a letter all of whose invoices are settled leaves
    the queue by itself). One query for the page."""
    listed = (
        DunningActionInvoice.objects.filter(action__in=letters)
        .order_by("invoice__due_date", "invoice__number")
        .values_list("action_id", "invoice__number", "invoice__open_amount", "open_amount",
                     "invoice__due_date")
    )
    paid: dict[int, list[str]] = {}
    falls_due: dict[int, dt.date] = {}
    for action_id, number, still_open, asked, due_date in listed:
        falls_due.setdefault(action_id, due_date)  # the first, in due-date order
        if still_open < asked:
            paid.setdefault(action_id, []).append(f"{number} {'part paid' if still_open > 0 else 'paid'}")
    today = timezone.localdate()
    paused = _paused_since(letters, today=today)
    for letter in letters:
        letter.paid_since = paid.get(letter.pk, [])
        letter.paused_since = paused.get(letter.pk, [])
        letter.pay_by_warning = _pay_by_warning(letter, today=today, falls_due=falls_due.get(letter.pk))


def _pay_by_warning(letter: DunningAction, *, today: dt.date, falls_due: dt.date | None) -> str:
    """What is wrong with posting the letter today, as far as its pay-by date
    goes ("" if nothing). A letter posted after the day it asks payment by
    tells the customer nothing it can do. One asking to be paid in fewer days
    than its policy leaves between two contacts is nearly as bad: the post
    takes some of them, and the customer has less time to pay than the
    policy would give between two reminders. Not so a reminder before the due
    date, which asks for the due date (`falls_due`, the first of what it
    lists) by design: the terms were agreed, and it only recalls them."""
    left = (letter.pay_by - today).days
    reminds_of_terms = falls_due is not None and letter.pay_by <= falls_due
    if left >= (0 if reminds_of_terms else delivery.letter_days_to_pay(letter.step.policy)):
        return ""
    pay_by = format_day(letter.pay_by)
    if left < 0:
        return f"It asks for payment by {pay_by}, which has passed."
    when = {0: "today", 1: "tomorrow"}.get(left, f"in {left} days")
    return f"It asks for payment by {pay_by}, {when}: too soon for a letter still to be posted."


def _paused_since(letters: list[DunningAction], *, today: dt.date) -> dict[int, list[str]]:
    """Per letter, what it asks for that a pause now in force and begun since
    it was written covers ("INV-2 (promise to pay)"): a letter demanding what
    the collector has since agreed to wait for, or that the customer disputes,
    contradicts them. Two queries for the page."""
    listed: dict[int, list[Invoice]] = {}
    for line in DunningActionInvoice.objects.filter(action__in=letters).select_related("invoice"):
        listed.setdefault(line.action_id, []).append(line.invoice)
    pauses: dict[int, list[DunningPause]] = {}
    customers = {x.customer_id for x in letters}
    in_force = (DunningPause.objects.active(on=today).filter(customer_id__in=customers)
                .select_related("exception"))
    for pause in in_force.order_by("starts_on", "pk"):
        pauses.setdefault(pause.customer_id, []).append(pause)
    said: dict[int, list[str]] = {}
    for letter in letters:
        for pause in pauses.get(letter.customer_id, []):
            if pause.starts_on < letter.planned_on:
                continue
            kind = pause.get_kind_display().lower()
            if pause.invoice_id is None and not pause.account_terms:
                said.setdefault(letter.pk, []).append(f"the account ({kind})")
            else:
                # Extended terms on the account hold the invoices they cover, as a pause of one holds it.
                said.setdefault(letter.pk, []).extend(f"{invoice.number} ({kind})"
                                                      for invoice in listed.get(letter.pk, [])
                                                      if pause.holds(invoice))
    return said


# --- The Dunning card on the account page -----------------------------------


def dunning_card_context(
    customer: Customer,
    *,
    user,
    today: dt.date,
    cause_form: CauseForm | None = None,
    segment_form: SegmentOverrideForm | None = None,
    read: dunning.AccountRead | None = None,
) -> dict:
    """What the account page's Dunning card shows, in three queries: the open
    cycle, the last actions and the pauses in force today; in one with `read`
    (dunning.account_read for today, which the preview reads too)."""
    if read is not None:
        cycle, pauses = read.cycle, read.pauses
    else:
        cycle = (
            DunningCycle.objects.filter(customer=customer, closed_on__isnull=True)
            .select_related("cause_noted_by").first()
        )
        pauses = list(
            customer.dunning_pauses.active(on=today)
            .select_related("invoice", "owner", "dispute", "exception").order_by("ends_on", "pk")
        )
    # A step asking for terms the account has already waits for no manager:
    # the card says so (_waiting_for_terms_in_force), not "waiting".
    actions = list(
        _terms_in_force_marked(customer.dunning_actions.select_related("step"))
        .order_by("-planned_on", "-pk")[:LAST_ACTIONS_ON_CARD]
    )
    for action in actions:
        action.as_sent = step_as_sent(action.step.action, action.channel)
        action.customer = customer
    _no_decision_needed_said(actions)
    # A rejected form stays on show even when the cycle has closed meanwhile: it carries the why.
    may_note_cause = can_act_on(user, customer) and (cycle is not None or cause_form is not None)
    may_override = user.has_perm(ACT_ON_ANY)
    if may_note_cause and cause_form is None:
        cause_form = CauseForm(initial={"cause": cycle.cause}, auto_id="dunning-cause-%s")
    if may_override and segment_form is None:
        segment_form = SegmentOverrideForm(
            initial={"segment": customer.segment_override, "note": customer.segment_override_note},
            auto_id="dunning-segment-%s",
        )
    return {
        "customer": customer,
        "dunning_cycle": cycle,
        # "Resume dunning" is offered where there is something this user may lift.
        "pauses_liftable": can_act_on(user, customer) and bool(pauses_liftable(user, pauses)[0]),
        "dunning_actions": actions,
        "dunning_pauses": pauses,
        "cause_form": cause_form if may_note_cause else None,
        "segment_form": segment_form if may_override else None,
        "today": today,
    }


@login_required
@require_POST
def cause_record(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_object_or_404(Customer.objects.select_related("collector"), pk=pk)
    require_act_on(request.user, customer)
    form = CauseForm(request.POST, auto_id="dunning-cause-%s")
    if form.is_valid():
        try:
            services.cause_record(
                customer=customer, cause=form.cleaned_data["cause"], actor=request.user,
                on=timezone.localdate(),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Cause noted; it steers the rest of this cycle.")
            return _dunning_changed(request, customer)
    return _dunning_rejected(request, customer, cause_form=form)


@login_required
@permission_required(ACT_ON_ANY, raise_exception=True)
@require_POST
def segment_override(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=pk)
    form = SegmentOverrideForm(request.POST, auto_id="dunning-segment-%s")
    if form.is_valid():
        try:
            customer = services.segment_override(
                customer=customer, segment=form.cleaned_data["segment"],
                note=form.cleaned_data["note"], actor=request.user, on=timezone.localdate(),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(
                request,
                f"Segment set to {customer.get_segment_display()}."
                if form.cleaned_data["segment"] else "Override removed; the computed segment applies.",
            )
            response = _dunning_changed(request, customer)
            # The account card shows the segment too; it reloads itself on this event.
            return trigger_client_event(response, "segment-changed") if request.htmx else response
    return _dunning_rejected(request, customer, segment_form=form)


def _dunning_changed(request: HttpRequest, customer: Customer) -> HttpResponse:
    if request.htmx:
        context = dunning_card_context(customer, user=request.user, today=timezone.localdate())
        return render(request, "customers/customer_detail.html#dunning", context)
    return redirect(reverse("customers:detail", args=[customer.pk]) + "#dunning")


def _dunning_rejected(request: HttpRequest, customer: Customer, **bound_forms) -> HttpResponse:
    """422: with htmx the card comes back with the form's errors in place;
    without, the form is a page of its own."""
    context = dunning_card_context(customer, user=request.user, today=timezone.localdate(), **bound_forms)
    if request.htmx:
        return render(request, "customers/customer_detail.html#dunning", context, status=422)
    which, form = next(iter(bound_forms.items()))
    return render(
        request, "collections/dunning_form.html", {**context, "form": form, "which": which}, status=422
    )


# --- Helpers -----------------------------------------------------------------


def _actions_with_lines() -> QuerySet[DunningAction]:
    # The write-off joined in: the approvals say when a listed invoice was written off since.
    lines = DunningActionInvoice.objects.select_related("invoice__write_off").order_by(
        "invoice__due_date", "invoice__number"
    )
    return DunningAction.objects.select_related(
        "customer__collector", "step__policy", "recipient", "reviewed_by"
    ).prefetch_related(Prefetch("lines", queryset=lines))


def _review_actions() -> QuerySet[DunningAction]:
    """Actions with what the channel preview reads: the customer's contacts and
    their absences (who is away, and who stands in), and the step's fees (an
    escalation that charges one goes in writing)."""
    contacts = Contact.objects.prefetch_related("absences")
    return _actions_with_lines().prefetch_related(Prefetch("customer__contacts", queryset=contacts),
                                                  "step__fees")


@dataclass(frozen=True)
class Preview:
    channel: str
    recipient: str
    address: str
    note: str
    pay_by: dt.date | None
    # Sent, a step by phone puts a call on the worklist; nothing goes to the customer.
    by_phone: bool = False


def _add_preview(action: DunningAction, *, holidays: Collection[dt.date] | None = None) -> None:
    """Totals, and where the step goes: for a step still waiting, or sent from
    the queue and not yet carried out, where it goes if sent now (the route
    delivery takes); once carried out, where it went. A skipped step went
    nowhere and has no preview."""
    _add_totals(action)
    action.preview = None
    if action.status == ActionStatus.SKIPPED:
        return
    if action.status not in (ActionStatus.IN_REVIEW, ActionStatus.PLANNED, ActionStatus.SENDING):
        action.preview = Preview(
            action.get_channel_display(), action.recipient.name if action.recipient else "",
            action.recipient_address, action.channel_note, action.pay_by,
        )
        return
    # Until the workers record what went out, the step still holds the channel
    # and pay-by date it was planned with (none and the planned day's): the
    # card would show those rather than what delivery gives it today.
    contacts = {c.pk: c for c in action.customer.contacts.all()}
    for contact in contacts.values():
        for absence in contact.absences.all():
            # The stand-in is one of the contacts already loaded: following a
            # chain of absences then asks the database nothing.
            if absence.delegate_id in contacts:
                absence.delegate = contacts[absence.delegate_id]
    today = timezone.localdate()
    route = route_for(action=action, day=today)
    address = {
        Channel.EMAIL: route.contact.email if route.contact else "",
        Channel.LETTER: ", ".join(
            line.strip() for line in (route.contact.postal_address if route.contact else "").splitlines()
            if line.strip()
        ),
        Channel.PHONE: route.contact.phone if route.contact else "",
    }.get(route.channel, "")
    # Sent now, it asks for the date delivery will give it today and by this
    # channel, not the one planned: that moves on while the step waits.
    action.preview = Preview(
        Channel(route.channel).label, route.contact.name if route.contact else "", address, route.note,
        delivery.pay_by_when_sent(action, day=today, channel=route.channel, lines=list(action.lines.all()),
                                  holidays=holidays),
        by_phone=route.channel == Channel.PHONE,
    )


def _add_totals(action: DunningAction) -> None:
    """Per currency, what the action's invoices added up to as they stood
    when it was planned (`totals`), and what they still owe today
    (`still_owed`): a collector reviewing the step, or a manager weighing a
    hold, goes by the latter. Each line that changed since says how
    (`now_said`), so the list under the totals does not show an invoice
    written off or paid as if it were owed; `changed_since` says whether any did."""
    totals: dict[str, Decimal] = {}
    owed: dict[str, Decimal] = {}
    for line in action.lines.all():
        invoice = line.invoice
        totals[line.currency] = totals.get(line.currency, ZERO) + line.open_amount
        line.now_said = _line_now_said(line)
        if invoice.status == InvoiceStatus.OPEN:
            owed[invoice.currency] = owed.get(invoice.currency, ZERO) + invoice.open_amount
    action.totals = sorted(totals.items())
    action.still_owed = sorted(owed.items())
    action.changed_since = any(line.now_said for line in action.lines.all())


def _line_now_said(line: DunningActionInvoice) -> str:
    """How a step's invoice stands now beside what it owed when the step was
    planned; empty if unchanged."""
    invoice = line.invoice
    if invoice.status == InvoiceStatus.WRITTEN_OFF:
        write_off = getattr(invoice, "write_off", None)
        return f"written off on {format_day(write_off.written_off_on)}" if write_off else "written off since"
    if invoice.status == InvoiceStatus.PAID:
        return f"paid on {format_day(invoice.settled_on)}"
    if invoice.status == InvoiceStatus.CANCELLED:
        # Those cancelled before the day was kept have none.
        cancelled_on = invoice.cancelled_on
        return f"cancelled on {format_day(cancelled_on)}" if cancelled_on else "cancelled since"
    if invoice.open_amount != line.open_amount:
        return f"owes {format_money(invoice.open_amount, invoice.currency)} now"
    return ""


def _action_for(request: HttpRequest, actions: QuerySet[DunningAction], pk: int) -> DunningAction:
    """The action, if this user may act on its customer: 404 if none, 403 if not theirs."""
    action = get_object_or_404(actions, pk=pk)
    if not can_act_on(request.user, action.customer):
        raise PermissionDenied("This step belongs to another collector's account.")
    return action


def _item_response(
    request: HttpRequest, template: str, action: DunningAction, *, queue: str, queue_name: str,
    count: Callable[[QueryDict], tuple[str, QuerySet]],
) -> HttpResponse:
    """A queue item after a POST. With a form still attached it was rejected:
    422, in place with htmx, as a page of its own without. With htmx the
    queue's count comes along out of band, for the queue the browser shows
    (`count` gives its template and rows for that URL's filter)."""
    status = 422 if action.form is not None else 200
    if action.form is not None:
        # The pressed button is swapped away with the item: the note to write takes the keyboard.
        form_autofocus(action.form, first=False)
    if request.htmx:
        response = render(request, template, {"action": action, "with_messages": True}, status=status)
        query = QueryDict(urlsplit(request.htmx.current_url or "").query)
        count_template, waiting = count(query)
        response.content += render_to_string(count_template, {"count": waiting.count(), "oob": True},
                                              request).encode()
        return response
    context = {
        "action": action, "item_template": template,
        "queue_url": reverse(queue), "queue_name": queue_name,
    }
    return render(request, "collections/action_page.html", context, status=status)


# --- Receivables from the ERP ------------------------------------------------------------

IMPORT_PERMISSION = "collections.import_receivables"
IMPORTS_LISTED = 20
IMPORT_ERRORS_SHOWN = 200


@login_required
@permission_required(IMPORT_PERMISSION, raise_exception=True)
@require_http_methods(["GET", "POST"])
def receivables_import(request: HttpRequest) -> HttpResponse:
    """A manager uploads the ERP's invoices, payments or accounts as CSV or an Excel workbook; a worker
    imports the file, all or nothing, and the list below says what came of it."""
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        batch = imports.import_queue(kind=data["kind"], text=data["file"], file_name=data["file_name"],
                                     dry_run=data["dry_run"], actor=request.user)
        messages.success(request, f"{batch.file_name or 'The file'} is queued for "
                                  f"{'a check' if batch.dry_run else 'import'}; "
                                  "what came of it shows below in a moment.")
        return redirect("collections:import")
    # The page's list of columns says how old a date may be before confirm_old_date is needed.
    context = {"form": form, "long_ago_days": LONG_AGO_DAYS, "invoice_long_ago_days": INVOICE_LONG_AGO_DAYS,
               **_imports_context()}
    if request.htmx and request.method == "GET":
        return render(request, "collections/import.html#imports", context)
    return render(request, "collections/import.html", context, status=422 if form.is_bound else 200)


def _imports_context() -> dict:
    recent = list(ReceivablesImport.objects.select_related("created_by", "api_token")
              .defer("text", "workbook")[:IMPORTS_LISTED])
    return {"imports": recent, "any_queued": any(i.status == ImportStatus.QUEUED for i in recent)}


@login_required
@permission_required(IMPORT_PERMISSION, raise_exception=True)
@require_safe
def receivables_import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(ReceivablesImport.objects.select_related("created_by", "api_token")
                              .defer("text", "workbook"), pk=pk)
    return render(request, "collections/import_detail.html", {
        "batch": batch,
        "errors_shown": batch.errors[:IMPORT_ERRORS_SHOWN],
        "errors_more": max(len(batch.errors) - IMPORT_ERRORS_SHOWN, 0),
    })


@login_required
@permission_required(IMPORT_PERMISSION, raise_exception=True)
@require_safe
def receivables_import_file(request: HttpRequest, pk: int) -> HttpResponse:
    """The file an import was made from (or the API request), as it came in."""
    return import_file_response(get_object_or_404(ReceivablesImport, pk=pk))


def import_file_response(batch: ReceivablesImport) -> HttpResponse:
    """An import's file as a download under its own name (the admin offers it too)."""
    name, content_type, content = batch.kept_file()
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=name)
    return response


@login_required
@permission_required(IMPORT_PERMISSION, raise_exception=True)
@require_safe
def receivables_import_example(request: HttpRequest, kind: str) -> HttpResponse:
    """A CSV file to start from: the columns and one example row."""
    if kind not in imports.COLUMNS:
        raise Http404("There are invoice, payment and account files only.")
    # One of the user's own accounts, so the example imports as it is.
    account_number, currency = (Customer.objects.visible_to(request.user).order_by("account_number")
                                .values_list("account_number", "currency").first() or ("C00042", "EUR"))
    # The accounts' example opens an account owned by whoever downloads it (a
    # manager may own accounts); an administrator in no group owns none, so
    # by the first who may.
    owners = account_owners()
    owner = request.user if owners.filter(pk=request.user.pk).exists() else owners.first()
    example = imports.example_file(kind, account_number=account_number, currency=currency,
                                   today=timezone.localdate(),
                                   collector=owner.get_username() if owner else "")
    response = HttpResponse(example, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"arcrm-{kind}-example.csv")
    return response


# --- Tokens for the ERP API ---------------------------------------------------------------


def _tokens_context() -> dict:
    return {"tokens": ApiToken.objects.select_related("user", "created_by", "revoked_by")}


# A token just issued, kept in the session for the page that follows the form,
# which shows its secret and forgets it: reloading that page asks for the page
# again, not for another token, and shows the secret no more. The secret is in
# the session's row only until that page is shown, moments later.
ISSUED_TOKEN_KEY = "collections_api_token_issued"


@never_cache  # the page that issues a token shows its secret: no cache may keep it
@login_required
@permission_required(IMPORT_PERMISSION, raise_exception=True)
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The tokens the ERP and other systems sign their API requests with: a
    manager issues one (its secret shown once, on the page after the form,
    never again) and revokes one no longer wanted. The managers who import the
    ERP's receivables by hand are those who let it send them."""
    form = ApiTokenForm(request.POST or None)
    made = None
    if request.method == "POST" and form.is_valid():
        try:
            made = services.carried_out_once(form, lambda: api.api_token_create(
                user=form.cleaned_data["user"], name=form.cleaned_data["name"], actor=request.user))
        except ValidationError as error:
            form.add_error(None, error)
    if made is not None:
        token, secret = made
        if request.htmx:
            # An htmx post is no page the browser reloads: the secret comes back in place.
            return render(request, "collections/api_tokens.html#token-issue", {
                "form": ApiTokenForm(), "issued": token, "secret": secret, "oob": True, **_tokens_context(),
            }, status=201)
        request.session[ISSUED_TOKEN_KEY] = {"token": token.pk, "secret": secret}
        return redirect("collections:api_tokens")
    if request.method == "GET" and wants_fragment(request):
        return render(request, "collections/api_tokens.html#api-tokens", _tokens_context())
    if form.is_bound:
        form_autofocus(form, first=False)
        page = "collections/api_tokens.html"
        return render(request, f"{page}#token-issue" if request.htmx else page,
                      {"form": form, **_tokens_context()}, status=422)
    context = {"form": form, **_tokens_context()}
    if request.method == "GET" and (issued := request.session.pop(ISSUED_TOKEN_KEY, None)):
        context.update(issued=ApiToken.objects.select_related("user").filter(pk=issued["token"]).first(),
                       secret=issued["secret"])
    return render(request, "collections/api_tokens.html", context)


@login_required
@permission_required(IMPORT_PERMISSION, raise_exception=True)
@require_POST
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.select_related("revoked_by"), pk=pk)
    if api.api_token_revoke(token=token, actor=request.user):
        messages.success(request, f"Token {token.name} revoked: requests signed with it are refused "
                                  "from now on.")
    else:
        messages.info(request, f"Token {token.name} was revoked already, by {person_name(token.revoked_by)} "
                               f"on {format_day(timezone.localdate(token.revoked_at))}."
                      if token.revoked_by else f"Token {token.name} was revoked already.")
    if request.htmx:
        return render(request, "collections/api_tokens.html#api-tokens",
                      {"with_messages": True, **_tokens_context()})
    return redirect("collections:api_tokens")
