"""The collector's workspace: the inline actions of the account page, the
timeline's pages, the worklist, and the managers' decisions on plans and
exceptions.

Every action is one view serving a form (a page without JavaScript, a panel
with htmx) and its POST. A rejected form comes back with a 422 and changes
nothing; an accepted one redirects to the account page (PRG) or, with htmx,
empties the panel and swaps the header, the timeline, the dunning preview and
the commitments in place, out of band.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, Prefetch, Sum, When, prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template import TemplateSyntaxError
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, push_url, replace_url, reswap, retarget

from ar_collections import dunning, rendering, services, statements, timeline, worklist, workspace
from ar_collections.channels import step_as_sent
from ar_collections.forms import letters_in_queue
from ar_collections.models import (
    ActionStatus,
    Allocation,
    Channel,
    Dispute,
    DisputeStatus,
    DunningAction,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Instalment,
    Invoice,
    InvoiceStatus,
    PaymentPlan,
    PlanStatus,
    Promise,
    PromiseStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from ar_collections.views import FiveQuestions
from ar_collections.workspace_forms import (
    REVERSIBLE_DAYS,
    CallForm,
    CopyForm,
    CreditApplyForm,
    CreditNoteForm,
    DecideForm,
    DisputeForm,
    DisputeResolveForm,
    ExceptionDecideForm,
    ExceptionForm,
    LadderDecisionForm,
    NoteForm,
    PauseForm,
    PaymentForm,
    PaymentReverseForm,
    PlanAmendForm,
    PlanForm,
    PromiseForm,
    ReassignForm,
    SnoozeForm,
    StatementForm,
    WithdrawForm,
    WriteOffForm,
    collectors,
    worklist_owners,
)
from arcrm.dates import format_day
from arcrm.htmx import form_autofocus, wants_fragment
from arcrm.money import ZERO, by_currency, format_money
from arcrm.paging import BadPosition
from arcrm.roles import can_act_on, may_work_for_item
from arcrm.text import person_name
from customers.access import customer_changeable, customer_readable
from customers.cover import covered_by
from customers.models import Customer, TimelineEvent

WORKLIST_PAGE_SIZE = 50

# The account page's action bar: URL name and label; and the permission each
# action needs, which its view asks for and the bar shows it by.
ACTION_LINKS = [
    ("collections:call_log", "Log a call"),
    ("collections:note_add", "Add a note"),
    ("collections:promise_record", "Promise to pay"),
    ("collections:plan_propose", "Payment plan"),
    ("collections:dispute_open", "Dispute"),
    ("collections:pause_set", "Pause dunning"),
    ("collections:exception_request", "Request an exception"),
    ("collections:invoice_copy", "Re-send a copy"),
    ("collections:statement_send", "Send a statement"),
    ("collections:payment_record", "Record a payment"),
    ("collections:payment_reverse", "Reverse a payment"),
    ("collections:credit_note_record", "Record a credit note"),
]
ACTION_PERMISSIONS = {
    "collections:call_log": "collections.add_call",
    "collections:note_add": "customers.add_timelineevent",
    "collections:promise_record": "collections.add_promise",
    "collections:plan_propose": "collections.add_paymentplan",
    "collections:dispute_open": "collections.add_dispute",
    "collections:pause_set": "collections.add_dunningpause",
    "collections:exception_request": "collections.add_exceptionrequest",
    "collections:invoice_copy": "customers.add_timelineevent",
    "collections:statement_send": "customers.add_timelineevent",
    "collections:payment_record": "collections.add_payment",
    # Who may put money on the account may take back what the bank took back.
    "collections:payment_reverse": "collections.add_payment",
    "collections:credit_note_record": "collections.add_creditnote",
}


# What the holder of an item handed over may do on its account (roles.may_work_for_item).
ITEM_ACTIONS = {"collections:call_log", "collections:note_add", "collections:promise_record"}


def action_links(user, *, for_item: bool = False) -> list[tuple[str, str]]:
    """The account page's actions this user's role may take; `for_item`, those
    an item handed to them asks for."""
    return [(name, label) for name, label in ACTION_LINKS if user.has_perm(ACTION_PERMISSIONS[name])
            and (not for_item or name in ITEM_ACTIONS)]


# --- The account page's parts -------------------------------------------------------


def timeline_context(request: HttpRequest, customer: Customer) -> dict:
    """The timeline's filters (from the query string) and its page."""
    kinds = [k for k in request.GET.getlist("kind") if k in dict(timeline.FILTER_KINDS)]
    number = request.GET.get("invoice", "").strip()
    invoice = None
    if "\x00" in number:
        raise timeline.BadCursor("An invoice number has no NUL character.")
    choices = []
    if number:
        invoice, choices = _invoice_numbered(customer, number)
    if number and invoice is None:
        # Not this account's invoice: nothing matches (the page says why).
        page = timeline.TimelinePage([], None)
    else:
        page = timeline.timeline_page(
            customer=customer, kinds=kinds, invoice=invoice, before=request.GET.get("before") or None
        )
    query = request.GET.copy()
    query.pop("before", None)
    account, timeline_prefix, action, letter = _timeline_link_bases(get_script_prefix())
    return {
        "timeline": page,
        "timeline_selected": kinds,
        "timeline_invoice": number,
        # Found by a part of its number: the page says which.
        "timeline_invoice_found": invoice.number if invoice and not invoice.whole else "",
        # Each number to choose, with the kinds ticked, as the filter would ask for it.
        "timeline_invoice_choices": [(choice, _timeline_query(invoice=choice, kinds=kinds))
                                     for choice in choices],
        "timeline_invoice_unknown": bool(number and invoice is None and not choices),
        "timeline_query": query.urlencode(),
        "timeline_deep": bool(request.GET.get("before")),
        # The filter's and "load more"'s addresses.
        "account_url": f"{account}{customer.pk}/",
        "timeline_url": f"{timeline_prefix}{customer.pk}/timeline/",
        # Link prefixes of the events' actions and letters.
        "action_base": action,
        "letter_base": letter,
    }


def _timeline_query(*, invoice: str, kinds: list[str]) -> str:
    query = QueryDict(mutable=True)
    query["invoice"] = invoice
    query.setlist("kind", kinds)
    return query.urlencode()


@functools.cache
def _timeline_link_bases(script_prefix: str) -> tuple[str, str, str, str]:
    """The timeline's addresses up to the id, reversed once a process (for
    each prefix the site is served under): reversing them on every page cost
    more than the page's other links."""
    return (reverse("customers:detail", args=[0]).removesuffix("0/"),
            reverse("customers:timeline", args=[0]).removesuffix("0/timeline/"),
            reverse("collections:action_detail", args=[0]).removesuffix("0/"),
            reverse("collections:letter_download", args=[0]).removesuffix("0/pdf/"))


# Numbers named when a part of one matches several of the account's invoices:
# enough to choose from; a part that common is better typed longer.
INVOICE_CHOICES = 10


def _invoice_numbered(customer: Customer, number: str) -> tuple[Invoice | None, list[str]]:
    """The account's invoice numbered `number` (any case), or else the one
    whose number holds it ("2881" for INV-2026-002881), or else none and the
    numbers holding it to choose from. One query: the whole number first."""
    found = list(
        Invoice.objects.filter(customer=customer, number__icontains=number)
        .annotate(whole=Case(When(number__iexact=number, then=True), default=False))
        .order_by("-whole", "number")[:INVOICE_CHOICES + 1]
    )
    if found and (found[0].whole or len(found) == 1):
        return found[0], []
    return None, [invoice.number for invoice in found[:INVOICE_CHOICES]]


def work_items_context(customer: Customer, *, user) -> dict:
    """Whether this user may act on the account (`can_act`), or only for an
    item handed to them (`works_for_item`, roles.may_work_for_item), the
    actions the page offers them, and the account's open items with whom
    each is with and why it went there: its collector sees where an item
    handed over went; and whom this user may hand the items they hold to."""
    can_act = can_act_on(user, customer)
    works_for_item = not can_act and may_work_for_item(user, customer)
    items = list(customer.work_items.filter(status=WorkStatus.OPEN)
                 .select_related("assignee", "handed_by").order_by("due_on", "pk"))
    holds = any(item.assignee_id == user.pk for item in items) or (
        bool(items) and user.has_perm("customers.act_on_any_customer"))
    return {
        "can_act": can_act,
        "works_for_item": works_for_item,
        "action_links": (action_links(user) if can_act
                         else action_links(user, for_item=True) if works_for_item else []),
        "open_work_items": items,
        "hand_over_people": ([person for person in collectors() if person.pk != user.pk]
                             if holds and (can_act or works_for_item) else []),
    }


def commitments_context(customer: Customer, *, user) -> dict:
    """Open promises, plans in force or waiting, open disputes and pending requests."""
    plans = list(
        customer.payment_plans.filter(status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL])
        .select_related("proposed_by")
        .prefetch_related("invoices", Prefetch("instalments", queryset=Instalment.objects.order_by("number")))
    )
    for plan in plans:
        # The Withdraw / End link shows for whom plan_withdraw would take it.
        plan.withdrawable = not workspace.plan_withdraw_refusal(user, plan)
        # Each instalment with what came in on it and what is still to pay,
        # as a promise due says what was paid so far.
        plan.schedule = [(instalment, instalment.judged_amount - still, still)
                         for instalment, still in workspace.plan_instalments_owed(plan)]
    promises = list(
        customer.promises.filter(status=PromiseStatus.OPEN).prefetch_related("invoices").order_by("promised_on")
    )
    paid = workspace.promises_paid(promises)
    for promise in promises:
        # Part paid, the box says how much came in and what is still to come,
        # in the promise's own currency (a customer may promise in two).
        promise.paid_so_far = paid.get(promise.pk, ZERO)
        promise.left = max(promise.amount - promise.paid_so_far, ZERO)
    disputes = list(
        customer.disputes.filter(status=DisputeStatus.OPEN).select_related("invoice", "department"))
    today = timezone.localdate()
    for dispute in disputes:
        # Past its day the department owes the answer: the collector chases it, not the customer.
        dispute.answer_late = dispute.answer_due_on < today
    return {
        "open_promises": promises,
        "live_plans": plans,
        "open_disputes": disputes,
        # A pause or extended terms asked until a day that passed undecided is
        # shown lapsed, not to be decided, for as long as the approvals list it:
        # the collector sees it lapsed rather than wonder whether it was asked.
        "exceptions_asked": list(workspace.exceptions_asked(on=timezone.localdate()).filter(customer=customer)
                                 .order_by("requested_on", "pk")),
    }


# Payments listed on the page, the newest: about a quarter of a weekly payer's
# money and most of a year's of a monthly one, which is what a collector on the
# phone is asked about ("we paid that last week"); the timeline filtered to
# payments has every one, reversals too.
PAYMENTS_SHOWN = 10


def payments_context(customer: Customer, *, today: dt.date) -> dict:
    """The account's newest payments, each with what it paid (or, reversed,
    what it had paid, as its reversal keeps it) and what it left on account:
    two queries whatever their number (the payments with their reversals and
    who reversed them; the others' allocations with their invoices)."""
    payments = list(
        customer.payments.select_related("reversal__reversed_by").order_by("-received_on", "-pk")
        [:PAYMENTS_SHOWN + 1]
    )
    for payment in payments:
        payment.reversed = getattr(payment, "reversal", None)
    # A reversed payment's allocations no longer stand, and its reversal says
    # what they were: only the others' are read.
    prefetch_related_objects([payment for payment in payments if not payment.reversed], Prefetch(
        "allocations", queryset=Allocation.objects.select_related("invoice").order_by("pk")))
    # A payment older than this is not offered by the reversal form either.
    reversible_from = today - dt.timedelta(days=REVERSIBLE_DAYS)
    for payment in payments:
        if payment.reversed:
            # Its allocations no longer stand; the reversal says what they were.
            parts = [(line.get("invoice", ""), Decimal(line["amount"])) for line in payment.reversed.undone]
        else:
            parts = [(a.invoice.number if a.invoice_id else "", a.amount) for a in payment.allocations.all()]
        # Set against one invoice on two days, money on account kept a row for each: one entry here.
        paid: dict[str, Decimal] = {}
        for number, amount in parts:
            if number:
                paid[number] = paid.get(number, ZERO) + amount
        payment.paid_invoices = list(paid.items())
        payment.paid_charges = sum((amount for number, amount in parts if not number), ZERO)
        payment.left_on_account = payment.amount - sum((amount for _, amount in parts), ZERO)
        payment.reversible = not payment.reversed and payment.received_on >= reversible_from
    return {
        "payments": payments[:PAYMENTS_SHOWN],
        "payments_older": len(payments) > PAYMENTS_SHOWN,
    }


def preview_context(customer: Customer, *, today: dt.date, read: dunning.AccountRead | None = None) -> dict:
    return {"next_step": dunning.next_step(customer, on=today, read=read)}


@login_required
@require_safe
def action_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A dunning step as it went out: the e-mail as rendered, the letter as
    written and whether it has been printed for the post."""
    action = get_object_or_404(
        DunningAction.objects.select_related("customer", "step", "recipient"), pk=pk,
        customer__in=Customer.objects.visible_to(request.user),
    )
    letter = action.channel == Channel.LETTER
    return render(request, "collections/action_detail.html", {
        "action": action, "lines": _lines_listed(action),
        "as_sent": step_as_sent(action.step.action, action.channel),
        "can_act": can_act_on(request.user, action.customer),
        "as_written": "The letter as written" if letter else "The e-mail as sent",
        "in_print_queue": letter and letters_in_queue().filter(pk=action.pk).exists(),
        "written_in": _written_language(action),
    })


def _written_language(action: DunningAction) -> str:
    """The language the step was written in, when not the page's English: its
    subject and text are marked with it, so that a screen reader reads them
    with the right voice. The HTML as sent says it (the language chosen at
    sending, whatever the contact's language is now); a call task has none."""
    written = re.match(r'<!doctype html>\s*<html lang="([a-z-]+)"', action.body_html, re.IGNORECASE)
    return written.group(1) if written and written.group(1) != "en" else ""


def _lines_listed(action: DunningAction) -> list[dict]:
    """The step's invoices and amounts: once it went out, as its notice or
    call task listed them (from its timeline entry: an invoice paid since
    planning left off, a part payment lowering the amount); before, as planned."""
    planned = [{"invoice": x.invoice.number, "amount": x.open_amount, "currency": x.currency}
               for x in action.lines.select_related("invoice").order_by("invoice__due_date")]
    if action.status != ActionStatus.DONE:
        return planned
    done = (TimelineEvent.objects.filter(subject_type=ContentType.objects.get_for_model(DunningAction),
                                         subject_id=action.pk, details__has_key="invoices")
            .order_by("-occurred_at", "-pk").values_list("details", flat=True).first())
    if done is None:
        return planned
    if "lines" not in done:
        # Recorded before the amounts were: the invoices it listed, at their planned amounts.
        return [line for line in planned if line["invoice"] in done["invoices"]]
    return [{**line, "amount": Decimal(line["amount"])} for line in done["lines"]]


# --- Timeline pages --------------------------------------------------------------------


@login_required
@require_safe
@vary_on_headers("HX-Request")
def timeline_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A page of the timeline for htmx ("load more", a filter); without htmx
    the account page shows the same page, so the link works either way."""
    customer = customer_readable(request, pk, card=False)
    if not wants_fragment(request):
        url = reverse("customers:detail", args=[pk])
        return redirect(f"{url}?{request.GET.urlencode()}#timeline" if request.GET else url)
    try:
        context = {"customer": customer, "can_act": can_act_on(request.user, customer),
                   **timeline_context(request, customer)}
    except timeline.BadCursor as error:
        return HttpResponseBadRequest(str(error))
    if request.GET.get("before"):
        return render(request, "customers/customer_detail.html#timeline-page", context)
    # A filter: the address bar shows the account page with it, to bookmark or share.
    response = render(request, "customers/customer_detail.html#timeline", context)
    url = context["account_url"]
    return push_url(response, f"{url}?{request.GET.urlencode()}" if request.GET else url)


# --- Inline actions ---------------------------------------------------------------------

Perform = Callable[[Customer, object, dt.date, object], str]


def _inline_action(
    request: HttpRequest, pk: int, *, form_class, slug: str, title: str, submit: str, perform: Perform,
    permission: str, for_item: bool = False,
) -> HttpResponse:
    customer = customer_changeable(request, pk, permission=permission, for_item=for_item)
    today = timezone.localdate()
    bound = request.method == "POST"
    form = form_class(request.POST if bound else None, customer=customer, today=today, auto_id=f"{slug}-%s")
    if bound and form.is_valid():
        try:
            message = services.carried_out_once(form, lambda: perform(customer, form, today, request.user))
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, message)
            return _account_changed(request, customer)
    context = {"customer": customer, "form": form, "slug": slug, "title": title, "submit": submit,
               "action_url": request.path}
    return _form_response(request, context, status=422 if bound else 200)


def _form_response(
    request: HttpRequest, context: dict, *, status: int, focus_first: bool = True, start: str = ""
) -> HttpResponse:
    form_autofocus(context["form"], first=focus_first, start=start)
    if not request.htmx:
        return render(request, "collections/action_form.html", context, status=status)
    return render(request, "collections/action_form.html#action-panel", context, status=status)


def _account_changed(request: HttpRequest, customer: Customer) -> HttpResponse:
    if not request.htmx:
        return redirect(reverse("customers:detail", args=[customer.pk]) + "#timeline")
    context = {**changed_parts_context(request, customer), **commitments_context(customer, user=request.user),
               **payments_context(customer, today=timezone.localdate())}
    response = render(request, "collections/_account_changed.html", context)
    retarget(response, "#action-panel")
    reswap(response, "outerHTML")
    return address_unfiltered(request, response, customer)


def address_unfiltered(request: HttpRequest, response: HttpResponse, customer: Customer) -> HttpResponse:
    """The timeline swapped in after a change is unfiltered: the address bar
    drops the filter it held too, or a reload (or a bookmark) would hide the
    change behind the filter again."""
    if urlsplit(request.htmx.current_url or "").query:
        replace_url(response, reverse("customers:detail", args=[customer.pk]))
    return response


def changed_parts_context(request: HttpRequest, customer: Customer) -> dict:
    """What the account page's parts show after a change, for swapping them in
    out of band: the header, the Dunning card, the preview and the timeline's
    newest page (the change's event on top)."""
    from ar_collections.views import dunning_card_context
    from customers.views import header_context

    today = timezone.localdate()
    # Money moved recomputes the segment and its reason (on commit, after the
    # customer was loaded): the header reasons from what is open now.
    customer.refresh_from_db(fields=["segment", "segment_reason"])
    header = header_context(customer, today=today)
    # The Dunning card and the preview read the account's dunning once, its
    # open invoices those the header has read.
    read = dunning.account_read(customer, on=today, open_invoices=header["invoices"])
    return {
        "customer": customer,
        **header,
        **dunning_card_context(customer, user=request.user, today=today, read=read),
        **timeline_context(_without_query(request), customer),
        **preview_context(customer, today=today, read=read),
        "can_act": can_act_on(request.user, customer),
        "today": today,
        "oob": True,
    }


def _without_query(request: HttpRequest) -> HttpRequest:
    """After a change the timeline shows its newest page, unfiltered: the new event on top."""
    request.GET = request.GET.copy()
    request.GET.clear()
    return request


@login_required
@require_http_methods(["GET", "POST"])
def call_log(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        call = workspace.call_log(
            customer=customer, actor=user, contact=data["contact"], outcome=data["outcome"],
            cause=data["cause"], notes=data["notes"], promise=form.promise,
            email_summary=data["email_summary"], on=today,
        )
        said = "Call logged"
        if hasattr(call, "promise"):
            said += " with a promise to pay"
        return said + (f"; summary e-mailed to {call.summary_sent_to}" if call.summary_sent_to else "") + "."

    return _inline_action(request, pk, form_class=CallForm, slug="call", title="Log a call",
                          submit="Log call", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:call_log"], for_item=True)


@login_required
@require_http_methods(["GET", "POST"])
def note_add(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        workspace.note_add(customer=customer, actor=user, text=form.cleaned_data["text"])
        return "Note added."

    return _inline_action(request, pk, form_class=NoteForm, slug="note", title="Add a note",
                          submit="Add note", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:note_add"], for_item=True)


@login_required
@require_http_methods(["GET", "POST"])
def invoice_copy(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        event = workspace.invoice_copy_send(customer=customer, invoice=data["invoice"],
                                            contact=data["contact"], actor=user, on=today)
        if "paper" in event.details:
            return (f"Copy of {data['invoice'].number} to {data['contact'].name} is in the print queue "
                    "for the post.")
        return f"Copy of {data['invoice'].number} e-mailed to {data['contact'].name}."

    return _inline_action(request, pk, form_class=CopyForm, slug="copy", title="Re-send an invoice copy",
                          submit="Send copy", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:invoice_copy"])


@login_required
@require_http_methods(["GET", "POST"])
def statement_send(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        event = statements.statement_send(customer=customer, actor=user, on=today,
                                          note=form.cleaned_data["note"])
        if "paper" in event.details:
            return f"Statement to {event.details['to']} is in the print queue for the post."
        return f"Statement e-mailed to {event.details['to']}."

    return _inline_action(request, pk, form_class=StatementForm, slug="statement",
                          title="Send a statement of account", submit="Send statement", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:statement_send"])


@login_required
@require_safe
def statement_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The statement as a PDF, for anyone who may read the account: it shows
    no more than the account page does (its invoices, credits and charges),
    and a colleague visiting the customer may take it along. Nothing changes
    and nothing is recorded; only e-mailing it is an action on the account."""
    customer = customer_readable(request, pk)
    if not request.user.has_perm("collections.view_invoice"):
        raise PermissionDenied("Your role may not see this account's invoices.")
    if request.htmx:
        # A file is no fragment: the browser fetches it itself.
        return HttpResponseClientRedirect(request.path)
    today = timezone.localdate()
    try:
        pdf = statements.statement_pdf(customer, actor=request.user, on=today)
    except (TemplateSyntaxError, rendering.LetterRenderError) as error:
        messages.error(request, f"The statement could not be written: {error}")
        return redirect("customers:detail", customer.pk)
    response = HttpResponse(pdf, content_type="application/pdf")
    name = statements.statement_file_name(customer, today)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=name)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def promise_record(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        promise = workspace.promise_record(
            customer=customer, actor=user, contact=data["contact"], amount=data["amount"],
            promised_on=data["promised_on"], invoices=list(data["invoices"]), on=today,
        )
        return (f"Promise of {format_money(promise.amount, promise.currency)} recorded; dunning of its "
                f"invoices waits until {format_day(promise.broken_after)}.")

    return _inline_action(request, pk, form_class=PromiseForm, slug="promise",
                          title="Record a promise to pay", submit="Record promise", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:promise_record"], for_item=True)


@login_required
@require_http_methods(["GET", "POST"])
def payment_record(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        if data["invoices"]:
            parts, later = workspace.allocations_oldest_first(data["invoices"], data["amount"]), []
        else:
            # None ticked: the invoices due, the charges, then those not yet due,
            # as a payment file's row that names none (the help text says so).
            parts, later = workspace.unnamed_money_split(
                customer=customer, currency=data["currency"], amount=data["amount"],
                received_on=data["received_on"],
            )
        payment = workspace.payment_record(
            customer=customer, actor=user, amount=data["amount"], currency=data["currency"],
            received_on=data["received_on"], allocations=parts, not_yet_due=later,
            reference=data["reference"], method=data["method"],
        )
        paid = payment.allocations.order_by("pk")
        numbers = list(paid.filter(invoice__isnull=False).values_list("invoice__number", flat=True))
        to_charges = paid.filter(charge__isnull=False).aggregate(total=Sum("amount"))["total"] or ZERO
        message = f"Payment of {format_money(payment.amount, payment.currency)} recorded"
        if numbers:
            message += f", applied to {', '.join(numbers)}"
        if to_charges:
            message += f"; {format_money(to_charges, payment.currency)} to late fees and interest"
        if left := payment.unallocated_amount():
            message += f"; {format_money(left, payment.currency)} stays on account"
        return message + "."

    return _inline_action(request, pk, form_class=PaymentForm, slug="payment", title="Record a payment",
                          submit="Record payment", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:payment_record"])


@login_required
@require_http_methods(["GET", "POST"])
def payment_reverse(request: HttpRequest, pk: int) -> HttpResponse:
    """A payment the bank took back, reversed in two steps: the form, then
    what reversing it undoes (invoices reopening, charges owed again), which
    the second click confirms. Opened from a payment's row on the account page
    (`?payment=<id>`), the form starts with that payment chosen."""
    customer = customer_changeable(request, pk, permission=ACTION_PERMISSIONS["collections:payment_reverse"])
    today = timezone.localdate()
    bound = request.method == "POST"
    form = PaymentReverseForm(request.POST if bound else None, customer=customer, today=today,
                              auto_id="reverse-%s")
    context = {"customer": customer, "form": form, "slug": "reverse", "title": "Reverse a payment",
               "submit": "Continue", "action_url": request.path}
    chosen = request.GET.get("payment", "")
    # Only one the form offers: a payment reversed or too old since the page
    # was drawn opens the form with none chosen, to choose from those listed.
    if not bound and chosen.isdigit() and form.fields["payment"].queryset.filter(pk=chosen).exists():
        form.initial["payment"] = int(chosen)
        # The keyboard goes on to why, the payment being chosen already.
        return _form_response(request, context, status=200, start="reason")
    if bound and form.is_valid():
        data = form.cleaned_data
        payment = data["payment"]
        if data["confirmed"] == payment.pk:
            try:
                reversal = workspace.payment_reverse(payment=payment, actor=request.user,
                                                     reason=data["reason"], note=data["note"],
                                                     on=data["reversed_on"])
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, workspace.reversal_said(reversal))
                return _account_changed(request, customer)
        else:
            # Nothing changes yet: the form comes back saying what the payment
            # settled, and the same values with this payment confirmed.
            form.data = form.data.copy()
            form.data["confirmed"] = str(payment.pk)
            money = format_money(payment.amount, payment.currency)
            day = format_day(payment.received_on)
            context.update(title=f"Reverse the payment of {money} received on {day}?",
                           undoes=workspace.reversal_undoes(payment), submit="Reverse the payment")
            # The keyboard goes to the question (the template focuses it), not
            # back to the Payment field: a screen reader says what it undoes.
            return _form_response(request, context, status=200, focus_first=False)
    return _form_response(request, context, status=422 if bound else 200)


@login_required
@require_http_methods(["GET", "POST"])
def credit_note_record(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        if data["invoice"] is None:
            note = workspace.credit_note_on_account(
                customer=customer, actor=user, currency=data["currency"], amount=data["amount"],
                reason=data["reason"], issued_on=data["issued_on"], number=data["number"],
            )
            return (f"Credit note {note.number} for {format_money(note.amount, note.currency)} recorded on "
                    "account; set it against invoices when the customer says which.")
        note = workspace.credit_note_record(
            customer=customer, actor=user, invoice=data["invoice"], amount=data["amount"],
            reason=data["reason"], issued_on=data["issued_on"], number=data["number"],
        )
        invoice = note.invoice
        invoice.refresh_from_db()
        left = (f"{format_money(invoice.open_amount, invoice.currency)} is still open" if invoice.open_amount
                else "nothing is left open")
        return (f"Credit note {note.number} for {format_money(note.amount, note.currency)} recorded on "
                f"{invoice.number}; {left}.")

    return _inline_action(request, pk, form_class=CreditNoteForm, slug="credit-note",
                          title="Record a credit note", submit="Record credit note", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:credit_note_record"])


@login_required
@require_http_methods(["GET", "POST"])
def credit_apply(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        credit = data["credit"]
        done = workspace.credit_apply(customer=customer, actor=user, credit=credit,
                                      invoices=list(data["invoices"]), amount=data["amount"], on=today)
        said = []
        if done.parts:
            applied = sum((part for _, part in done.parts), ZERO)
            said.append(f"{format_money(applied, credit.currency)} set against "
                        f"{', '.join(invoice.number for invoice, _ in done.parts)}")
        if done.to_charges:
            said.append(f"{format_money(done.to_charges, credit.currency)} to late fees and interest")
        if done.left:
            said.append(f"{format_money(done.left, credit.currency)} stays on account")
        return "; ".join(said) + "."

    # Cash application, as recording a payment is: the same people may.
    return _inline_action(request, pk, form_class=CreditApplyForm, slug="credit-apply",
                          title="Set a credit against invoices", submit="Set against invoices",
                          perform=perform, permission=ACTION_PERMISSIONS["collections:payment_record"])


@login_required
@require_http_methods(["GET", "POST"])
def plan_propose(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        plan = workspace.plan_propose(
            customer=customer, actor=user, invoices=list(form.cleaned_data["invoices"]),
            instalments=form.schedule(), note=form.cleaned_data["note"], on=today,
        )
        if plan.status == PlanStatus.AWAITING_APPROVAL:
            return (f"Payment plan of {format_money(plan.total_amount, plan.currency)} proposed; "
                    f"{workspace.plan_waits_because(plan)}, so it waits for a manager.")
        return "Payment plan agreed; dunning of its invoices waits while it is kept."

    return _inline_action(request, pk, form_class=PlanForm, slug="plan", title="Set up a payment plan",
                          submit="Set up plan", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:plan_propose"])


@login_required
@require_http_methods(["GET", "POST"])
def dispute_open(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        dispute = workspace.dispute_open(
            customer=customer, actor=user, invoice=data["invoice"], reason=data["reason"],
            description=data["description"], department=data["department"], on=today,
            site_url=request.build_absolute_uri("/"), amount=data["amount"],
        )
        invoice = dispute.invoice
        routed = f" and sent to {dispute.department.name}" if dispute.department else ""
        if dispute.in_full:
            return f"Dispute on {invoice.number} opened{routed}; the invoice is out of dunning."
        rest = format_money(invoice.open_amount - dispute.disputed_amount, invoice.currency)
        return (f"Dispute of {format_money(dispute.disputed_amount, invoice.currency)} on {invoice.number} "
                f"opened{routed}; the {rest} not disputed is chased as before.")

    return _inline_action(request, pk, form_class=DisputeForm, slug="dispute", title="Open a dispute",
                          submit="Open dispute", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:dispute_open"])


@login_required
@require_http_methods(["GET", "POST"])
def pause_set(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        result = workspace.pause_set(customer=customer, actor=user, ends_on=data["ends_on"],
                                     reason=data["reason"], invoice=data["invoice"], on=today)
        if isinstance(result, ExceptionRequest):
            return "That is longer than you may pause: it went to the managers as an exception request."
        return f"Dunning paused until {format_day(result.ends_on)}."

    return _inline_action(request, pk, form_class=PauseForm, slug="pause", title="Pause dunning",
                          submit="Pause dunning", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:pause_set"])


@login_required
@require_http_methods(["GET", "POST"])
def exception_request(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(customer, form, today, user) -> str:
        data = form.cleaned_data
        asked = workspace.exception_request(
            customer=customer, actor=user, kind=data["kind"], reason=data["reason"],
            pause_until=data["pause_until"], invoice=data["invoice"], invoices=data["invoices"], on=today,
        )
        done = "Exception requested; it is in the managers' queue."
        if asked.kind == ExceptionKind.EXTENDED_TERMS and asked.invoice_id is None:
            covers = workspace.extended_terms_cover_said(*workspace.extended_terms_cover(asked, on=today))
            done += f" Until {format_day(asked.pause_until)} it {covers}"
        return done

    # A link may name what is asked (the worklist's "paid up" item asks to lift a hold).
    kind = request.GET.get("kind", "")
    form_class = ExceptionForm
    if kind in ExceptionKind.values:
        form_class = partial(ExceptionForm, initial={"kind": kind})
    return _inline_action(request, pk, form_class=form_class, slug="exception",
                          title="Request an exception", submit="Send request", perform=perform,
                          permission=ACTION_PERMISSIONS["collections:exception_request"])


@login_required
@require_POST
def account_items_hand_over(request: HttpRequest, pk: int) -> HttpResponse:
    """Hand every open item of the account this user holds to a colleague,
    with a reason (worklist.account_items_reassign); a manager, every open item."""
    customer = customer_changeable(request, pk, permission="collections.change_workitem", for_item=True)
    form = ReassignForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(form.refusal())
        to = form.cleaned_data["to"]
        count = worklist.account_items_reassign(customer=customer, actor=request.user, to=to,
                                                reason=form.cleaned_data["reason"])
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{count} open item{'s' if count > 1 else ''} of {customer.name} handed to "
                                  f"{person_name(to)}.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("customers:detail", args=[customer.pk]) + "#work-items")
    return redirect(reverse("customers:detail", args=[customer.pk]) + "#work-items")


@login_required
@require_POST
def pause_resume(request: HttpRequest, pk: int) -> HttpResponse:
    customer = customer_changeable(request, pk, permission="collections.change_dunningpause")
    try:
        lifted = workspace.pause_resume(customer=customer, actor=request.user, on=timezone.localdate())
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        if request.htmx:
            # The message, and the account as it stands now (a colleague may
            # have lifted the hold meanwhile: the button goes with it).
            response = _account_changed(request, customer)
            response.status_code = 422
            return response
        return redirect("customers:detail", pk=pk)
    messages.success(request, f"Dunning resumed ({lifted} pause{'s' if lifted > 1 else ''} lifted).")
    return _account_changed(request, customer)


@login_required
@require_http_methods(["GET", "POST"])
def dispute_resolve(request: HttpRequest, pk: int, dispute_id: int) -> HttpResponse:
    customer = customer_changeable(request, pk, permission="collections.change_dispute")
    dispute = get_object_or_404(Dispute.objects.select_related("invoice"), pk=dispute_id, customer=customer)
    bound = request.method == "POST"
    form = DisputeResolveForm(request.POST if bound else None, auto_id="resolve-%s", invoice=dispute.invoice,
                              actor=request.user)
    if bound and form.is_valid():
        data = form.cleaned_data
        try:
            workspace.dispute_resolve(dispute=dispute, actor=request.user, outcome=data["outcome"],
                                      note=data["note"], amount=data.get("amount"), on=timezone.localdate())
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Dispute on {dispute.invoice.number} resolved.")
            return _account_changed(request, customer)
    context = {"customer": customer, "form": form, "slug": "resolve",
               "title": f"Resolve the dispute on {dispute.invoice.number}", "submit": "Resolve dispute",
               "action_url": request.path,
               "dispute": dispute}
    return _form_response(request, context, status=422 if bound else 200)


@login_required
@require_http_methods(["GET", "POST"])
def promise_withdraw(request: HttpRequest, pk: int, promise_id: int) -> HttpResponse:
    # Whoever may record a promise may take back one recorded wrongly.
    customer = customer_changeable(request, pk, permission="collections.add_promise")
    promise = get_object_or_404(Promise, pk=promise_id, customer=customer)
    bound = request.method == "POST"
    if not bound and promise.status != PromiseStatus.OPEN:
        raise Http404(f"This promise is {promise.get_status_display().lower()} already: only an open promise "
                      "can be withdrawn.")
    form = WithdrawForm(request.POST if bound else None, auto_id="withdraw-%s")
    if bound and form.is_valid():
        try:
            workspace.promise_withdraw(promise=promise, actor=request.user,
                                       reason=form.cleaned_data["reason"], on=timezone.localdate())
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Promise withdrawn; dunning goes on where it stood.")
            return _account_changed(request, customer)
    money = format_money(promise.amount, promise.currency)
    context = {"customer": customer, "form": form, "slug": "withdraw", "action_url": request.path,
               "title": f"Withdraw the promise of {money} by {format_day(promise.promised_on)}",
               "submit": "Withdraw promise"}
    return _form_response(request, context, status=422 if bound else 200)


@login_required
@require_http_methods(["GET", "POST"])
def plan_withdraw(request: HttpRequest, pk: int, plan_id: int) -> HttpResponse:
    """Withdraw a proposal waiting for a manager, or end a plan in good standing."""
    customer = customer_changeable(request, pk, permission="collections.add_paymentplan")
    plan = get_object_or_404(PaymentPlan.objects.select_related("proposed_by"), pk=plan_id, customer=customer)
    refusal = workspace.plan_withdraw_refusal(request.user, plan)
    live = plan.status in (PlanStatus.AWAITING_APPROVAL, PlanStatus.ACTIVE)
    if not live and request.method != "POST":
        raise Http404(refusal)
    if live and refusal:
        raise PermissionDenied(refusal)
    pending = plan.status == PlanStatus.AWAITING_APPROVAL
    bound = request.method == "POST"
    form = WithdrawForm(request.POST if bound else None, auto_id="plan-withdraw-%s")
    if not pending:
        form.fields["reason"].label = "Why does the plan end?"
    if bound and form.is_valid():
        try:
            workspace.plan_withdraw(plan=plan, actor=request.user, reason=form.cleaned_data["reason"],
                                    on=timezone.localdate())
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Payment plan withdrawn." if pending
                             else "Payment plan ended; dunning goes on where it stood.")
            return _account_changed(request, customer)
    money = format_money(plan.total_amount, plan.currency)
    title = (f"Withdraw the payment plan of {money} proposed on {format_day(plan.proposed_on)}" if pending
             else f"End the payment plan of {money}")
    context = {"customer": customer, "form": form, "slug": "plan-withdraw", "action_url": request.path,
               "title": title, "submit": "Withdraw proposal" if pending else "End plan"}
    return _form_response(request, context, status=422 if bound else 200)


@login_required
@require_http_methods(["GET", "POST"])
def plan_amend(request: HttpRequest, pk: int, plan_id: int) -> HttpResponse:
    """A manager reschedules the instalments an agreed plan still asks for."""
    customer = customer_changeable(request, pk, permission="collections.change_paymentplan")
    plan = get_object_or_404(PaymentPlan, pk=plan_id, customer=customer)
    bound = request.method == "POST"
    if not bound and plan.status != PlanStatus.ACTIVE:
        raise Http404(f"This payment plan is {plan.get_status_display().lower()}: only an agreed plan in "
                      "good standing can be changed.")
    form = PlanAmendForm(request.POST if bound else None, plan=plan, auto_id="plan-amend-%s")
    if bound and form.is_valid():
        try:
            data = form.cleaned_data
            services.carried_out_once(form, lambda: workspace.plan_amend(
                plan=plan, manager=request.user, instalments=data["instalments"], note=data["note"],
                on=timezone.localdate()))
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Payment plan rescheduled; the customer is e-mailed the new schedule.")
            return _account_changed(request, customer)
    context = {"customer": customer, "form": form, "slug": "plan-amend", "action_url": request.path,
               "title": f"Reschedule the payment plan of {format_money(plan.total_amount, plan.currency)}",
               "submit": "Reschedule"}
    return _form_response(request, context, status=422 if bound else 200)


@login_required
@require_http_methods(["GET", "POST"])
def invoice_write_off(request: HttpRequest, pk: int, invoice_id: int) -> HttpResponse:
    """A manager writes off what one invoice still owes, confirming the amount."""
    customer = customer_changeable(request, pk, permission="collections.write_off_invoice")
    invoice = get_object_or_404(Invoice, pk=invoice_id, customer=customer)
    bound = request.method == "POST"
    if not bound and invoice.status != InvoiceStatus.OPEN:
        raise Http404(f"Invoice {invoice.number} is {invoice.get_status_display().lower()}: nothing is open "
                      "to write off.")
    today = timezone.localdate()
    form = WriteOffForm(request.POST if bound else None, invoice=invoice, today=today, auto_id="write-off-%s")
    if bound and form.is_valid():
        data = form.cleaned_data
        try:
            write_off = workspace.invoice_write_off(
                customer=customer, actor=request.user, invoice=invoice, reason=data["reason"],
                on=data["written_off_on"], amount=data["amount"],
            )
        except ValidationError as error:
            _add_errors(form, error)
            # Refused for what is open now (a payment came in meanwhile): the
            # panel asks again for that amount, which the next click confirms.
            invoice.refresh_from_db()
            form.data = form.data.copy()
            form.data["amount"] = str(invoice.open_amount)
        else:
            money = format_money(write_off.amount, write_off.currency)
            charges = write_off.charges_waived
            with_charges = f", and {workspace.charges_named(charges)} on it" if charges else ""
            messages.success(request, f"{money} of {invoice.number} written off{with_charges}; it is no "
                                      "longer chased.")
            return _account_changed(request, customer)
    money = format_money(invoice.open_amount, invoice.currency)
    # The fees and interest that go with it are said before the manager decides.
    charges = list(workspace.write_off_charges(invoice)) if invoice.status == InvoiceStatus.OPEN else []
    with_charges = f" and {workspace.charges_named(charges)} on it" if charges else ""
    title = (f"Write off {money} of {invoice.number}{with_charges}?" if invoice.status == InvoiceStatus.OPEN
             else f"Write off {invoice.number}")
    context = {"customer": customer, "form": form, "slug": "write-off", "title": title,
               "submit": f"Write off {money}" if invoice.status == InvoiceStatus.OPEN else "Write off",
               "crumb": f"Write off {invoice.number}", "action_url": request.path}
    return _form_response(request, context, status=422 if bound else 200)


# --- Managers' decisions -----------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def plan_decide(request: HttpRequest, plan_id: int) -> HttpResponse:
    return _decision(request, PaymentPlan, plan_id, workspace.plan_decide, argument="plan",
                     what="Payment plan", slug="plan")


@login_required
@require_http_methods(["GET", "POST"])
def exception_decide(request: HttpRequest, request_id: int) -> HttpResponse:
    """Approve or reject; a pause (or extended terms) may be approved until an earlier day than asked."""
    return _decision(request, ExceptionRequest, request_id, workspace.exception_decide, argument="request",
                     what="Exception", slug="exception",
                     form_for=lambda data, asked, **kwargs: ExceptionDecideForm(
                         data, asked=asked, today=timezone.localdate(), **kwargs))


def _decision(request, model, pk: int, decide, *, argument: str, what: str, slug: str,
              form_for=lambda data, asked, **kwargs: DecideForm(data, **kwargs)) -> HttpResponse:
    """A manager decides a collector's request (a plan above the limit, an exception)."""
    if not request.user.has_perm(f"collections.change_{model._meta.model_name}"):
        raise PermissionDenied("Only a manager decides on this.")
    subject = get_object_or_404(model.objects.select_related("customer"), pk=pk)
    customer = subject.customer
    title = f"{what} for {customer.name}"
    back = _back_to(request)
    bound = request.method == "POST"
    form = form_for(request.POST if bound else None, subject, auto_id=f"{slug}-{pk}-%s")
    if bound and form.is_valid():
        try:
            decided = decide(**{argument: subject}, manager=request.user, approve=form.approve,
                             note=form.cleaned_data["note"], on=timezone.localdate(), **form.terms())
        except ValidationError as error:
            _add_errors(form, error)
        else:
            verdict = "approved" if form.approve else "rejected"
            messages.success(request, f"{title}: {verdict}{_granted_said(decided)}.")
            if request.htmx and request.htmx.target == "action-panel":
                return _account_changed(request, customer)
            return redirect(_decision_landing(back, subject))
    # The charges approving a fee waiver waives: the manager decides on them, not on the invoice.
    waivable = (
        list(workspace.charges_waivable(subject).select_related("invoice"))
        if getattr(subject, "kind", None) == ExceptionKind.FEE_WAIVER else None
    )
    # Extended terms for the whole account: the open invoices they give more time, and those they do not.
    account_terms = (getattr(subject, "kind", None) == ExceptionKind.EXTENDED_TERMS
                     and subject.invoice_id is None and subject.pause_until)
    terms_cover = workspace.extended_terms_cover(subject, on=timezone.localdate()) if account_terms else None
    # A write-off's invoices, each as it stands now beside what it owed when asked.
    write_off_lines = (workspace.write_off_lines_now(subject)
                       if getattr(subject, "kind", None) == ExceptionKind.WRITE_OFF else None)
    context = {"customer": customer, "form": form, "slug": f"{slug}-{pk}", "asked": subject,
               # The breadcrumb names the account already.
               "title": title, "submit": "Record decision", "crumb": what,
               # The page the manager came from goes along with the POST, for Cancel and after.
               "action_url": f"{request.path}?{urlencode({'next': back})}", "cancel_url": back,
               # What is asked, and the five questions to weigh before bending the rule.
               "questions": FiveQuestions.for_customer(customer, today=timezone.localdate()),
               "waivable": waivable, "covers": _covers(subject, waivable, terms_cover, write_off_lines),
               "write_off_lines": write_off_lines,
               "terms_cover": terms_cover and workspace.extended_terms_cover_said(*terms_cover, due=True),
               "disputed_since": workspace.disputes_opened_since(subject),
               # A waiting request holds nothing: what dunning sent meanwhile.
               "sent_since": (workspace.notices_sent_since(subject) if model is ExceptionRequest
                              and subject.status == ExceptionStatus.PENDING else None),
               # A plan's instalments with what is still to pay of each, payments since counted.
               "instalments": workspace.plan_instalments_owed(subject) if model is PaymentPlan else None,
               # The rule a plan crosses, as its proposer was told: the manager
               # decides on that, not on a plan that merely reached the queue.
               "waits_because": (workspace.plan_waits_because(subject) if model is PaymentPlan
                                 and subject.status == PlanStatus.AWAITING_APPROVAL else None)}
    # The manager reads what is asked first: the form takes the focus only to be corrected.
    return _form_response(request, context, status=422 if bound else 200, focus_first=False)


def _granted_said(decided) -> str:
    """Until when an approved pause or extended terms hold, and whether that
    is less than asked: the manager who chose an earlier end sees it was
    taken, before the collector tells the customer."""
    granted = getattr(decided, "granted_until", None)
    if granted is None:
        return ""
    said = f" until {format_day(granted)}"
    if granted != decided.pause_until:
        than = "earlier" if decided.kind == ExceptionKind.EXTENDED_TERMS else "shorter"
        said += f", {than} than the {format_day(decided.pause_until)} asked"
    return said


def _back_to(request: HttpRequest) -> str:
    """Where a decision goes back to: the page the manager came from (the
    approvals at the position they were on, the account page), named by
    `next`; one of another site, or none, is the approvals list."""
    back = request.GET.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return back
    return reverse("collections:approvals")


def _decision_landing(back: str, decided: PaymentPlan | ExceptionRequest) -> str:
    """Where the browser goes once `decided` is decided (without htmx): `back`
    as it is when it is another page (the account page). On the approvals, at
    the collectors' request to go on with, the next one listed or, `decided`
    being the last, the one before; at the count of the steps waiting, the
    work that comes next, when no request is left."""
    url = back.partition("#")[0]
    if urlsplit(url).path != reverse("collections:approvals"):
        return back
    # The approvals list the requests plans first, then exceptions, each by
    # the day asked and then as made (views.approval_queue); few wait at a
    # time, so all of them are read.
    waiting = [(0, day, pk, f"plan-request-{pk}") for day, pk in PaymentPlan.objects.filter(
        status=PlanStatus.AWAITING_APPROVAL).values_list("proposed_on", "pk")]
    waiting += [(1, day, pk, f"exception-request-{pk}") for day, pk in ExceptionRequest.objects.filter(
        status=ExceptionStatus.PENDING).exclude(workspace.exceptions_lapsed(on=timezone.localdate()))
        .values_list("requested_on", "pk")]
    place = (0, decided.proposed_on, decided.pk) if isinstance(decided, PaymentPlan) else (
        1, decided.requested_on, decided.pk)
    later = [asked for asked in waiting if asked[:3] > place]
    earlier = [asked for asked in waiting if asked[:3] < place]
    if later:
        return f"{url}#{min(later)[3]}"
    if earlier:
        return f"{url}#{max(earlier)[3]}"
    return f"{url}#approval-count"


def _covers(asked, waivable: list | None, terms_cover: tuple | None = None,
            write_off_lines: list | None = None) -> list[tuple[str, Decimal]]:
    """The money a request is about, by currency: a plan's total, what a fee
    waiver would waive, what is open of the invoices extended terms for the
    whole account give more time, what a write-off's invoices owe now, the
    open amount of the invoice any other exception names (none for the
    whole account)."""
    if write_off_lines is not None:
        return by_currency((line.invoice.currency, line.owed_amount) for line in write_off_lines)
    if isinstance(asked, PaymentPlan):
        # What approving puts at stake: the plan's total less what came in since it was proposed.
        return [(asked.currency, asked.still_owed_amount)]
    if waivable is not None:
        return workspace.amounts_waived(waivable)
    if terms_cover is not None:
        return by_currency((invoice.currency, invoice.open_amount) for invoice in terms_cover[0])
    if asked.invoice_id:
        return [(asked.invoice.currency, asked.invoice.open_amount)]
    return []


# --- The worklist ---------------------------------------------------------------------------


# The worklist's choice of every list at once (a manager's view of the team).
EVERYONE = "everyone"


@login_required
@require_safe
@vary_on_headers("HX-Request")
def worklist_view(request: HttpRequest) -> HttpResponse:
    """"My work today"; a manager may look at any collector's list, or at
    everyone's at once, each item naming whose it is. Read-only colleagues
    have no list of work (and no way to do any)."""
    if not request.user.has_perm("collections.change_workitem"):
        raise PermissionDenied
    today = timezone.localdate()
    assignee = request.user
    people, everyone, unknown = [], False, ""
    if request.user.has_perm("customers.act_on_any_customer"):
        people = list(worklist_owners())
        chosen = request.GET.get("collector", "")
        everyone = chosen == EVERYONE
        assignee = next((p for p in people if str(p.pk) == chosen), request.user)
        if chosen and not everyone and assignee == request.user and chosen != str(request.user.pk):
            unknown = chosen[:40]
    if everyone:
        # Each item names whose list it is on: the assignee comes in the same query.
        items = worklist.items_due(on=today).select_related("assignee")
    else:
        items = worklist.items_for(assignee=assignee, on=today)
    try:
        page = worklist.ITEMS_ORDER.page(items, after=request.GET.get("after", ""),
                                         before=request.GET.get("before", ""), size=WORKLIST_PAGE_SIZE)
    except BadPosition as error:
        return HttpResponseBadRequest(str(error))
    # An item can go to whoever may work its account (worklist.hand_over_choices).
    hand_over = worklist.hand_over_choices(page.items, on=today)
    for item in page.items:
        item.hand_over = hand_over[item.pk]
        item.hand_over_open = any(choice.open for choice in item.hand_over)
    context = {"page": page, "assignee": assignee, "people": people, "today": today, "everyone": everyone,
               "unknown": unknown, "points": worklist}
    template = "collections/worklist.html"
    if wants_fragment(request):
        template += "#worklist"
    return render(request, template, context)


def _work_item_for(request: HttpRequest, item_id: int) -> tuple[WorkItem, bool]:
    """The item, if this user may change it (else 404 or 403), and whether it
    is a colleague's they cover for. Their own item (or one of a colleague
    away whom they cover for), on an account still theirs: an account handed
    to another collector takes its items along, and they are no longer this
    user's to close. A manager may change any."""
    item = get_object_or_404(WorkItem.objects.select_related("customer", "assignee"), pk=item_id)
    covering = item.assignee_id in covered_by(request.user)
    # Or one handed to them on purpose, on any account, until it is done (roles.may_work_for_item).
    handed = item.assignee_id == request.user.pk and item.handed_by_id is not None and request.user.is_active
    mine = ((item.assignee_id == request.user.pk or covering)
            and (handed or can_act_on(request.user, item.customer)))
    may = mine or request.user.has_perm("customers.act_on_any_customer")
    if not may or not request.user.has_perm("collections.change_workitem"):
        if item.handed_by_id == request.user.pk and item.assignee_id and item.status == WorkStatus.OPEN:
            # A second click on Hand over, or a tab left open: it went already.
            raise PermissionDenied(f"You handed this item to {person_name(item.assignee)}: it is on their "
                                   "list now. Nothing was changed.")
        raise PermissionDenied("This item is on someone else's list.")
    return item, covering


@login_required
@require_safe
@vary_on_headers("HX-Request")
def work_item_decide(request: HttpRequest, item_id: int) -> HttpResponse:
    """The form a finished ladder's item is ticked off with (what was decided,
    and a note): a page of its own, or with htmx a panel in the item. It posts
    to work_item_change's "done"."""
    item, _ = _work_item_for(request, item_id)
    if item.kind != WorkKind.LADDER_ENDED:
        raise Http404("Only a finished ladder's item asks what was decided.")
    everyone = request.GET.get("list") == EVERYONE and request.user.has_perm("customers.act_on_any_customer")
    return _ladder_decision_form(request, item, LadderDecisionForm(auto_id=_decision_ids(item)),
                                 everyone=everyone, status=200)


def _decision_ids(item: WorkItem) -> str:
    """The decision form's field ids: the panel itself is work-<pk>-decision
    (the list's slot it swaps in for), so its field "decision" must not be."""
    return f"work-{item.pk}-decide-%s"


def _ladder_decision_form(request: HttpRequest, item: WorkItem, form: LadderDecisionForm, *, everyone: bool,
                          status: int) -> HttpResponse:
    form_autofocus(form, first=True)
    # Refused for want of a record: the form that records it, on the account.
    missing = form.has_error("decision") and worklist.LADDER_DECISION_FORMS.get(form.data.get("decision"))
    context = {"item": item, "form": form, "everyone": everyone, "watch_days": worklist.LADDER_WATCH_DAYS,
               "list_url": _worklist_url(request, item, everyone=everyone),
               "record_url": missing and reverse(f"collections:{missing}", args=[item.customer_id])}
    if not wants_fragment(request):
        return render(request, "collections/work_item_decide.html", context, status=status)
    response = render(request, "collections/work_item_decide.html#decision-panel", context, status=status)
    if request.method == "POST":
        # The form posts with the whole item as its target (done, the item goes);
        # refused, only the panel is swapped, the errors in it.
        retarget(response, f"#work-{item.pk}-decision")
        reswap(response, "outerHTML")
    return response


@login_required
@require_POST
def work_item_change(request: HttpRequest, item_id: int, change: str) -> HttpResponse:
    item, covering = _work_item_for(request, item_id)
    today = timezone.localdate()
    # The list the change was made on, to return to without htmx: a manager
    # working through everyone's stays on everyone's.
    everyone = (request.POST.get("list") == EVERYONE
                and request.user.has_perm("customers.act_on_any_customer"))
    if item.status != WorkStatus.OPEN:
        # Ticked off meanwhile in another tab or by someone else: said at
        # once, in the answer itself, and nothing is changed.
        said = worklist.item_done_said(item)
        if request.htmx:
            return render(request, "collections/worklist.html#item-gone", {"item": item, "said": said})
        list_url = _worklist_url(request, item, everyone=everyone)
        return render(request, "collections/work_item_done.html",
                      {"item": item, "said": said, "list_url": list_url})
    # Read before the change takes the item off the list: after it, the list
    # no longer knows where the item stood.
    place = None if request.htmx else worklist.item_place(item, on=today,
                                                          on_list_of=request.user if covering else None)
    try:
        if change == "done" and item.kind == WorkKind.LADDER_ENDED:
            # Nothing more goes out for the account: what was decided is asked, not clicked past.
            form = LadderDecisionForm(request.POST, auto_id=_decision_ids(item))
            if not form.is_valid():
                return _ladder_decision_form(request, item, form, everyone=everyone, status=422)
            try:
                worklist.item_complete(item=item, actor=request.user, **form.cleaned_data)
            except ValidationError as error:
                # Refused (a plan or an exception claimed but not on record): the
                # form comes back with why, and a link to the form that records it.
                _add_errors(form, error)
                return _ladder_decision_form(request, item, form, everyone=everyone, status=422)
            said = f"Done: {worklist.LadderDecision(form.cleaned_data['decision']).label.lower()}."
        elif change == "done":
            worklist.item_complete(item=item, actor=request.user)
            said = "Done."
        elif change == "snooze":
            form = SnoozeForm(request.POST)
            if not form.is_valid():
                raise ValidationError(form.errors["until"])
            worklist.item_snooze(item=item, actor=request.user, until=form.cleaned_data["until"], on=today)
            said = f"Snoozed until {format_day(form.cleaned_data['until'])}."
        elif change == "reassign":
            form = ReassignForm(request.POST)
            if not form.is_valid():
                raise ValidationError(form.refusal())
            worklist.item_reassign(item=item, actor=request.user, to=form.cleaned_data["to"],
                                   reason=form.cleaned_data["reason"])
            to = form.cleaned_data["to"]
            said = f"Handed to {person_name(to)}."
        else:
            return HttpResponseBadRequest("Unknown change.")
    except ValidationError as error:
        said = " ".join(error.messages)
        if request.htmx:
            # The reason goes beside the item (out of band): the top of a long
            # list is out of sight. The item stays as it was, the date typed too.
            response = render(request, "collections/worklist.html#item-refused", {"item": item, "said": said},
                              status=422)
            return reswap(response, "none")
        messages.error(request, said)
        return redirect(_worklist_url(request, item, everyone=everyone))
    messages.success(request, said)
    if request.htmx:
        item.refresh_from_db()
        return render(request, "collections/worklist.html#item-gone", {"item": item, "said": said})
    return redirect(_worklist_landing(request, item, place=place, on=today, everyone=everyone))


def _worklist_url(request: HttpRequest, item: WorkItem, *, everyone: bool = False, **position: str) -> str:
    """The list the item was on (a manager's change returns to the collector's
    list they were looking at, or to everyone's), at `position` (after or
    before an item)."""
    query = {}
    if everyone:
        query["collector"] = EVERYONE
    elif item.assignee_id and _list_of(request, item) != request.user.pk:
        query["collector"] = item.assignee_id
    query.update(position)
    url = reverse("collections:worklist")
    return f"{url}?{urlencode(query)}" if query else url


def _worklist_landing(request: HttpRequest, item: WorkItem, *, place: str | None, on: dt.date,
                      everyone: bool) -> str:
    """Where the list opens without htmx once `item`, which stood at `place`,
    left it (with htmx the next item takes the keyboard, data-focus-next): at
    the item to go on with, on a page that holds it (ITEMS_ORDER.landing). At
    the list's heading, above the words saying nothing is left, when no item is."""
    if place is None:
        return _worklist_url(request, item, everyone=everyone)
    items = (worklist.items_due(on=on) if everyone
             else worklist.items_for(assignee=_list_of(request, item), on=on))
    landing = worklist.ITEMS_ORDER.landing(items, place, size=WORKLIST_PAGE_SIZE)
    if landing is None:
        return _worklist_url(request, item, everyone=everyone) + "#worklist-title"
    going_on, position = landing
    return _worklist_url(request, item, everyone=everyone, **position) + f"#work-{going_on.pk}"


def _list_of(request: HttpRequest, item: WorkItem) -> int | None:
    """Whose list the item was on for this user: theirs when it is the item of
    a colleague away whom they cover for, else its assignee's."""
    return request.user.pk if item.assignee_id in covered_by(request.user) else item.assignee_id


# --- Helpers -------------------------------------------------------------------------------


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            field = getattr(form, "SERVICE_FIELDS", {}).get(field, field)
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)

