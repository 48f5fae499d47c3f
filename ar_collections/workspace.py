"""What a collector does on an account: calls, notes, invoice copies, promises
to pay, payment plans, disputes, pauses and exception requests; and the daily
check that finds kept and broken promises and missed instalments.

Every function is one transaction that locks what it changes, writes a
timeline event saying who did what, and keeps the dunning pauses in step:
a promise, a plan in good standing, an open dispute or an approved
exception each hold pause rows that are lifted when it ends, so dunning
resumes where the cycle stood.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, F, Max, Min, OuterRef, Q, Subquery, Sum, When
from django.template import TemplateSyntaxError
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst

from ar_collections import outbox, paper, rendering, services, worklist
from ar_collections.delivery import (
    charge_waive,
    invoice_copy,
    left_to_apply,
    letters_withdraw_moot,
    mail_address,
    step_name,
)
from ar_collections.dunning import copy_pay_by
from ar_collections.models import (
    ActionStatus,
    Allocation,
    Call,
    CallOutcome,
    Channel,
    ChargeKind,
    CollectionRules,
    CreditNote,
    Department,
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    DocumentCounter,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningPause,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Holiday,
    Instalment,
    InstalmentStatus,
    Invoice,
    InvoiceStatus,
    LateCharge,
    MailPurpose,
    PaperKind,
    PauseKind,
    Payment,
    PaymentMethod,
    PaymentPlan,
    PaymentReversal,
    PlanStatus,
    Promise,
    PromiseStatus,
    ReversalReason,
    WordingKind,
    WorkKind,
    WriteOff,
    WriteOffLine,
    bank_id_key,
    disputed_in_full,
    disputed_in_full_q,
    lists_open_invoice,
)
from ar_collections.timeline import event_record, invoice_paid_said
from ar_collections.wording import cover_wording_in_force
from arcrm.dates import add_months, format_day
from arcrm.money import ZERO, by_currency, format_amounts, format_money, places_check, smallest_unit
from arcrm.roles import require_act_on, require_work_for_item
from arcrm.text import hidden_characters, pdf_file_name, person_name
from customers.cover import working_for
from customers.models import Contact, Customer, EventKind, TimelineEvent
from customers.services import customer_update


@dataclass(frozen=True)
class PromiseTerms:
    amount: Decimal
    promised_on: dt.date
    invoices: Sequence[Invoice]


# --- Calls, notes, copies ---------------------------------------------------------


@transaction.atomic
def call_log(
    *,
    customer: Customer,
    actor,
    contact: Contact | None,
    outcome: str,
    cause: str = "",
    notes: str = "",
    promise: PromiseTerms | None = None,
    email_summary: bool = False,
    on: dt.date,
) -> Call:
    """Record a call; with a promise made on it, record that too; with
    `email_summary`, e-mail the contact what was agreed (after commit)."""
    require_work_for_item(actor, customer)
    if promise is not None and outcome != CallOutcome.REACHED:
        raise ValidationError({"promise_amount": "Only a call that reached someone can bring a promise."})
    if email_summary and outcome != CallOutcome.REACHED:
        raise ValidationError({"email_summary": "A summary goes only after a call that reached someone."})
    if email_summary and (contact is None or not contact.email):
        raise ValidationError({"email_summary": "The contact has no e-mail address for a summary."})
    call = Call.objects.create(
        customer=customer, contact=contact, made_by=actor, occurred_at=timezone.now(),
        outcome=outcome, cause=cause, notes=notes.strip(),
    )
    whom = contact.name if contact else "the customer"
    summary = f"Call to {whom}: {call.get_outcome_display().lower()}"
    if cause:
        summary += f"; cause: {call.get_cause_display().split(' (')[0].lower()}"
    if notes.strip():
        summary += f" — {notes.strip()}"
    event_record(
        customer=customer, kind=EventKind.CALL, actor=actor, subject=call, summary=summary,
        details={"outcome": outcome, "cause": cause, "notes": call.notes,
                 "contact": contact.pk if contact else None},
    )
    if cause and DunningCycle.objects.filter(customer=customer, closed_on__isnull=True).exists():
        # The audited path of the Dunning card: before and after, and red tape re-sends.
        services.cause_record(customer=customer, cause=cause, actor=actor, on=on)
    # The call dunning asked for has been made, whatever came of it.
    worklist.items_close(customer=customer, kind=WorkKind.CALL, actor=actor)
    made = None
    if promise is not None:
        made = promise_record(
            customer=customer, actor=actor, contact=contact, call=call, on=on,
            amount=promise.amount, promised_on=promise.promised_on, invoices=promise.invoices,
        )
    if email_summary:
        call.summary_sent_to = contact.email
        call.save(update_fields=["summary_sent_to"])
        message = _call_summary_message(call, contact, made)
        outbox.mail_queue(message, customer=customer, purpose=MailPurpose.CALL_SUMMARY, actor=actor)
        event_record(
            customer=customer, kind=EventKind.CALL, actor=actor, subject=call,
            summary=f"Summary of the call e-mailed to {contact.name} <{contact.email}>",
            details={"to": contact.email, "subject": message.subject, "text": message.body},
        )
    return call


def _call_summary_message(call: Call, contact: Contact, promise: Promise | None) -> EmailMessage:
    """What was said on the call, in the contact's language (as dunning notices
    and invoice copies are)."""
    customer, collector = call.customer, call.made_by
    agreed = {}
    if promise is not None:
        agreed = {"promise_amount": promise.amount, "promise_currency": promise.currency,
                  "promised_on": promise.promised_on,
                  "promise_invoices": tuple(i.number for i in promise.invoices.all())}
    subject, text = rendering.render_call_summary(rendering.CallSummary(
        language=contact.language, recipient_name=contact.name, customer_name=customer.name,
        account_number=customer.account_number, notes=call.notes, collector_name=person_name(collector),
        wording=cover_wording_in_force(WordingKind.CALL_SUMMARY, contact.language), **agreed,
    ))
    return EmailMessage(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[mail_address(contact.name, contact.email)],
        reply_to=[collector.email] if collector.email else None,
    )


@transaction.atomic
def note_add(*, customer: Customer, actor, text: str, invoices: Iterable[Invoice] = ()):
    require_work_for_item(actor, customer)
    text = text.strip()
    if not text:
        raise ValidationError({"text": "Write something in the note."})
    return event_record(
        customer=customer, kind=EventKind.NOTE, actor=actor, summary=text, details={"text": text},
        invoices=invoices,
    )


@transaction.atomic
def invoice_copy_send(*, customer: Customer, invoice: Invoice, contact: Contact, actor, on: dt.date):
    """Send a copy of one invoice (as a PDF) to the contact chosen: e-mailed,
    or to the print queue for the post when she takes paper (paper.way_to)."""
    require_act_on(actor, customer)
    if invoice.customer_id != customer.pk or contact.customer_id != customer.pk:
        raise ValidationError("The invoice and the contact must belong to this account.")
    way = paper.way_to(contact)
    if not way.by:
        raise ValidationError({"contact": f"The copy cannot be sent: {way.why}."})
    try:
        email, pdf = _invoice_copy(customer, invoice, contact, actor=actor, on=on)
    except (TemplateSyntaxError, rendering.LetterRenderError) as error:
        # The install's wording does not parse, or the PDF cannot be made: say
        # which and send nothing, rather than an error page.
        raise ValidationError(f"The copy could not be written, nothing was sent: {error}") from error
    if way.by == paper.POST:
        document = paper.document_queue(customer=customer, kind=PaperKind.INVOICE_COPY, contact=contact,
                                        pdf=pdf, actor=actor, invoice=invoice)
        return event_record(
            customer=customer, kind=EventKind.NOTE, actor=actor, subject=document, invoices=[invoice],
            summary=f"Copy of invoice {invoice.number} queued for the post to {contact.name}, "
                    f"{paper.first_line(document.recipient_address)}",
            details={"to": contact.name, "address": document.recipient_address, "paper": document.pk},
        )
    message = EmailMultiAlternatives(
        subject=email.subject, body=email.text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[mail_address(contact.name, contact.email)], reply_to=[actor.email] if actor.email else None,
    )
    message.attach_alternative(email.html, "text/html")
    message.attach(pdf_file_name("invoice", invoice.number), pdf, "application/pdf")
    # The copy gives a day to pay the open amount by, as an invoice gives its
    # terms: the ladder's next step waits for it, and keeps the minimum gap
    # from it, as long as the mail is not refused for good (dunning.copies_told
    # reads the outbox, and the print queue for a copy by post).
    event = event_record(
        customer=customer, kind=EventKind.NOTE, actor=actor, subject=invoice, invoices=[invoice],
        summary=f"Copy of invoice {invoice.number} e-mailed to {contact.name} <{contact.email}>",
        details={"to": contact.email, "subject": email.subject, "text": email.text},
    )
    outbox.mail_queue(message, customer=customer, purpose=MailPurpose.INVOICE_COPY, actor=actor,
                      invoice=invoice)
    return event


def _invoice_copy(customer: Customer, invoice: Invoice, contact: Contact, *, actor, on: dt.date):
    """The copy's cover e-mail and PDF, in the contact's language. It gives a
    day to pay the open amount by, as an invoice gives its terms."""
    copy = invoice_copy(customer, invoice, contact, sender=actor, on=on,
                        pay_by=copy_pay_by(due_date=invoice.due_date, sent_on=on,
                                           holidays=Holiday.objects.days_after(on)))
    return rendering.render_invoice_copy_email(copy), rendering.render_invoice_copy(copy)


# --- Promises to pay --------------------------------------------------------------


@transaction.atomic
def promise_record(
    *,
    customer: Customer,
    actor,
    amount: Decimal,
    promised_on: dt.date,
    invoices: Sequence[Invoice],
    on: dt.date,
    contact: Contact | None = None,
    call: Call | None = None,
) -> Promise:
    """Pause dunning of the invoices covered until the promised date plus grace."""
    require_work_for_item(actor, customer)
    invoices = _open_invoices_of(customer, invoices, field="invoices")
    currency = _one_currency(invoices, field="invoices")
    _not_committed(invoices, field="invoices")
    # A promise to pay what the customer says it does not owe would be broken
    # by the dispute itself, and break the customer's record with it: it
    # covers what is not disputed, and an invoice disputed in full not at all.
    disputed = disputed_parts(invoices)
    _not_disputed_in_full(invoices, disputed, field="invoices", out_of="the promise")
    if amount <= 0:
        raise ValidationError({"amount": "The promised amount must be more than zero."})
    places_check(amount, currency, field="amount")
    owed, contested = _owed_and_disputed(invoices, disputed)
    if amount > owed - contested:
        raise ValidationError({"amount": f"The invoices chosen owe {_owed_said(owed, contested, currency)}; "
                                         "a promise cannot be for more."})
    pays = _promise_pays(invoices, amount, disputed, currency)
    if promised_on < on:
        raise ValidationError({"promised_on": "A promise is for today or a later day."})
    rules = CollectionRules.current()
    # A promise holds dunning like a pause: no longer than a collector may pause.
    if _beyond_collector_limit(actor, days=(promised_on - on).days, rules=rules):
        raise ValidationError({"promised_on": (
            f"A promise more than {rules.max_pause_days} days ahead would hold dunning longer than a "
            "collector may pause: propose a payment plan, or ask a manager for an exception."
        )})
    promise = Promise.objects.create(
        customer=customer, contact=contact, call=call, currency=currency, amount=amount,
        promised_on=promised_on, grace_days=rules.promise_grace_days, made_on=on, made_by=actor,
        allocations_before=_last_allocation(),
    )
    promise.invoices.set(invoices)
    # It pauses dunning only of what it pays in full: an invoice it pays in
    # part still owes the rest, nobody has promised that, and dunning goes on
    # for it (what comes in on it still counts towards the promise).
    paused = [i for i in invoices if pays[i.pk] >= i.open_amount - disputed.get(i.pk, (None, ZERO))[1]]
    DunningPause.objects.bulk_create([
        DunningPause(customer=customer, invoice=i, kind=PauseKind.PROMISE, promise=promise, owner=actor,
                     reason=f"Promise to pay {format_money(amount, currency)} by {format_day(promised_on)}",
                     starts_on=on, ends_on=promise.broken_after)
        for i in paused
    ])
    numbers = [i.number for i in invoices]
    event_record(
        customer=customer, kind=EventKind.PROMISE, actor=actor, subject=promise, invoices=invoices,
        summary=f"Promise to pay {format_money(amount, currency)} by {format_day(promised_on)} "
        f"({_promise_covers_said(invoices, pays, disputed, currency)}); "
        f"{_promise_pauses_said(invoices, paused, until=promise.broken_after)}",
        details={"amount": str(amount), "currency": currency, "promised_on": promised_on.isoformat(),
                 "grace_until": promise.broken_after.isoformat(), "invoices": numbers,
                 "pays": {i.number: str(pays[i.pk]) for i in invoices},
                 "paused": [i.number for i in paused]},
    )
    said = f"promise to pay {format_money(amount, currency)} by {format_day(promised_on)}"
    letters_withdraw_held(on=on, customer=customer, by=f"the {said}", actor=actor)
    steps_skip_held(on=on, customer=customer, by=f"the {said}", actor=actor)
    worklist.items_followed_up(because=f"followed up: {said}", actor=actor, invoices=invoices, on=on)
    return promise


def _promise_pays(invoices: Sequence[Invoice], amount: Decimal, disputed: Mapping[int, tuple[int, Decimal]],
                  currency: str) -> dict[int, Decimal]:
    """What `amount` pays of each of `invoices` (by id), spread as a payment
    is, oldest due first, past what open disputes contest. A promise pauses
    dunning of whole invoices, so it may cover only those its amount reaches:
    a token sum for the whole debt would hold all of it. The last one reached
    may be paid in part: it is covered (what comes in on it counts), but not
    paused, as the rest of it is not promised (promise_record). The daily
    check keeps the promise when the amount promised comes in."""
    held = {pk: part for pk, (_, part) in disputed.items()}
    parts = dict((i.pk, part) for i, part in allocations_oldest_first(invoices, amount, held=held))
    missed = [i for i in invoices if i.pk not in parts]
    if missed:
        # `invoices` come oldest due first: what reaches the last one is one
        # smallest unit past all the others owe undisputed.
        before_last = sum((i.open_amount - held.get(i.pk, ZERO) for i in invoices[:-1]), ZERO)
        needed = before_last + smallest_unit(currency)
        reached = [i for i in invoices if i.pk in parts][-1]
        them = "them" if len(missed) > 1 else "it"
        raise ValidationError({"invoices": (
            f"{format_money(amount, currency)} pays none of {_listing([i.number for i in missed])}: paid "
            f"oldest due first, it ends in {reached.number}. To cover {them} too it must be for at least "
            f"{format_money(needed, currency)}, {format_money(needed - amount, currency)} more; choose the "
            "invoices it pays, or agree a payment plan."
        )})
    return {i.pk: parts[i.pk] for i in invoices}


def _promise_covers_said(invoices: Sequence[Invoice], pays: Mapping[int, Decimal],
                         disputed: Mapping[int, tuple[int, Decimal]], currency: str) -> str:
    """The invoices a promise covers, the last one with what the promise pays
    of it when that is not all it owes undisputed."""
    last = invoices[-1]
    payable = last.open_amount - disputed.get(last.pk, (None, ZERO))[1]
    if pays[last.pk] >= payable:
        return _listing([i.number for i in invoices])
    part = (f"{format_money(pays[last.pk], currency)} of {last.number}'s "
            f"{format_money(payable, currency)}")
    if len(invoices) == 1:
        return part
    return f"{_listing([i.number for i in invoices[:-1]])} and {part}"


def _promise_pauses_said(invoices: Sequence[Invoice], paused: Sequence[Invoice], *, until: dt.date) -> str:
    """What a promise does to dunning: paused until `until` for the invoices
    it pays in full, going on for the one it pays in part."""
    going_on = [i.number for i in invoices if i not in paused]
    if not going_on:
        return f"dunning paused until {format_day(until)}"
    if not paused:
        return (f"dunning goes on for {_listing(going_on)}: the promise does not pay it in full, so it "
                "pauses nothing")
    return (f"dunning paused for {_listing([i.number for i in paused])} until {format_day(until)}, and goes "
            f"on for {_listing(going_on)}, which it pays in part")


@transaction.atomic
def promise_withdraw(*, promise: Promise, actor, reason: str, on: dt.date) -> Promise:
    """Take back a promise recorded wrongly (the wrong amount, day or
    invoices, or one the customer never made): it ends as cancelled, not
    broken, so it counts against nobody's payment behaviour; its pause lifts
    and dunning goes on where it stood. Who, when and why go on the timeline."""
    require_act_on(actor, promise.customer)
    locked = Promise.objects.select_for_update().select_related("customer").get(pk=promise.pk)
    if locked.status != PromiseStatus.OPEN:
        raise ValidationError(f"This promise is {locked.get_status_display().lower()} already: only an open "
                              "promise can be withdrawn.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the promise is withdrawn."})
    said = f"Promise of {format_money(locked.amount, locked.currency)} by {format_day(locked.promised_on)}"
    _promise_close(locked, PromiseStatus.CANCELLED, paid=locked.paid_amount, on=on, actor=actor,
                   summary=f"{said} withdrawn: {reason.strip()}")
    return locked


# --- Payment plans ----------------------------------------------------------------


@transaction.atomic
def plan_propose(
    *,
    customer: Customer,
    actor,
    invoices: Sequence[Invoice],
    instalments: Sequence[tuple[dt.date, Decimal]],
    note: str = "",
    on: dt.date,
) -> PaymentPlan:
    """A plan for the invoices chosen. Within the collector's limit (or set up
    by a manager) it starts at once, and the customer is e-mailed the
    schedule; above it (or in a foreign currency) it waits for a manager."""
    require_act_on(actor, customer)
    # The account's row lock first, as a payment takes it, then the invoices':
    # one order, so a plan and a payment on the same invoices at once queue
    # rather than deadlock. It also makes two proposals at once count each
    # other against the limit below.
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    invoices = _open_invoices_of(customer, invoices, field="invoices")
    currency = _one_currency(invoices, field="invoices")
    _not_committed(invoices, field="invoices")
    # A plan would have the customer pay by instalments what they say they do
    # not owe, and an instalment held back over it would break the plan: it
    # covers what is not disputed, and an invoice disputed in full not at all.
    disputed = disputed_parts(invoices)
    _not_disputed_in_full(invoices, disputed, field="invoices", out_of="the plan")
    if len(instalments) < 2:
        raise ValidationError({"instalments": "A plan has at least two instalments."})
    dates = [d for d, _ in instalments]
    if dates != sorted(set(dates)):
        raise ValidationError({"instalments": "Instalment dates must be different and in order."})
    if dates[0] < on:
        raise ValidationError({"instalments": "The first instalment cannot be in the past."})
    if any(amount <= 0 for _, amount in instalments):
        raise ValidationError({"instalments": "Every instalment must be more than zero."})
    for _, amount in instalments:
        places_check(amount, currency, field="instalments")
    total = sum((a for _, a in instalments), ZERO)
    owed, contested = _owed_and_disputed(invoices, disputed)
    if total != owed - contested:
        said = _owed_said(owed, contested, currency)
        raise ValidationError({"instalments": f"The instalments add up to {format_money(total, currency)} "
                                              f"but the invoices owe {said}."})
    rules = CollectionRules.current()
    # The limit counts the plans already granted on the account, so a large
    # plan cannot start at once as several small ones.
    granted = (customer.payment_plans.filter(status=PlanStatus.ACTIVE, currency=currency)
               .aggregate(total=Sum("total_amount"))["total"] or ZERO)
    waits_because = _plan_beyond_collectors(total=total, currency=currency, granted=granted, rules=rules,
                                            dates=dates, on=on)
    needs_approval = bool(waits_because) and not actor.has_perm("collections.change_paymentplan")
    plan = PaymentPlan.objects.create(
        customer=customer, currency=currency, total_amount=total, grace_days=rules.instalment_grace_days,
        status=PlanStatus.AWAITING_APPROVAL if needs_approval else PlanStatus.ACTIVE,
        note=note.strip(), proposed_by=actor, proposed_on=on, allocations_before=_last_allocation(),
        disputes_left_out=[[pk, str(part)] for pk, part in disputed.values()],
    )
    plan.invoices.set(invoices)
    Instalment.objects.bulk_create(
        [Instalment(plan=plan, number=n, due_on=d, amount=a) for n, (d, a) in enumerate(instalments, 1)]
    )
    numbers = [i.number for i in invoices]
    schedule = schedule_said(instalments, currency, on=on)
    if needs_approval:
        summary = (f"Payment plan of {format_money(total, currency)} proposed ({schedule}); "
                   f"{waits_because}, so it waits for a manager")
    else:
        _plan_pause(plan, invoices, actor=actor, on=on)
        summary = f"Payment plan of {format_money(total, currency)} agreed: {schedule}"
    if plan.note:
        summary += f" — {plan.note}"  # the collector's reason for it, read where the plan is recorded
    event_record(
        customer=customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan, invoices=invoices,
        summary=summary,
        details={"status": plan.status, "total": str(total), "currency": currency, "invoices": numbers,
                 "instalments": [[d.isoformat(), str(a)] for d, a in instalments], "note": plan.note},
    )
    said = f"payment plan of {format_money(total, currency)} " + (
        "proposed, waiting for a manager" if needs_approval else "agreed")
    if not needs_approval:
        # Agreed at once, the customer is told the schedule as after a
        # manager's approval: a plan agreed here is never decided on, so
        # this is its one e-mail.
        _plan_agreed_send(plan, invoices, actor=actor, on=on)
        agreed = f"the payment plan of {format_money(total, currency)} agreed on {format_day(on)}"
        letters_withdraw_held(on=on, customer=customer, actor=actor, by=agreed)
        steps_skip_held(on=on, customer=customer, actor=actor, by=agreed)
    worklist.items_followed_up(because=f"followed up: {said}", actor=actor, invoices=invoices, on=on)
    return plan


# The shape of a plan, new or rescheduled (PlanForm, plan_amend): at most this
# many instalments, none further apart than this (about a quarter).
PLAN_INSTALMENTS_AT_MOST = 36
PLAN_DAYS_APART_AT_MOST = 92


def _plan_beyond_collectors(*, total: Decimal, currency: str, granted: Decimal, rules: CollectionRules,
                            dates: Sequence[dt.date], on: dt.date) -> str:
    """Why a plan proposed on `on` with instalments on `dates` is beyond what
    a collector agrees alone, or "": every rule it breaks, so the manager
    deciding sees them all. Its amount (or currency); a first instalment
    further away than the rules' days (a plan paying nothing for months is a
    pause by another name), or than the PLAN_DAYS_APART_AT_MOST a
    rescheduled plan keeps to (a mistyped year, most likely: rescheduling it
    would be refused); a last one beyond the rules' months."""
    reasons = []
    if rules.plan_needs_approval(amount=granted + total, currency=currency):
        reasons.append(_limit_passed(total=total, currency=currency, granted=granted, rules=rules))
    first, last, apart = dates[0], dates[-1], PLAN_DAYS_APART_AT_MOST
    if (first - on).days > apart:
        reasons.append(f"its first instalment, on {format_day(first)}, is more than {apart} days away, "
                       "further than a plan's instalments may be apart (check the year)")
    elif (first - on).days > (days := rules.plan_first_within_days):
        reasons.append(f"its first instalment, on {format_day(first)}, is more than {days} "
                       f"day{pluralize(days)} away, later than a collector may agree alone")
    if last > add_months(on, months := rules.plan_max_months):
        reasons.append(f"its last instalment, on {format_day(last)}, is more than {months} "
                       f"month{pluralize(months)} away, beyond the collectors' limit")
    return ", and ".join(reasons)


def schedule_said(instalments: Sequence[tuple[dt.date, Decimal]], currency: str, *, on: dt.date) -> str:
    """A plan's instalments in words, "EUR 600.00 on 20 Aug, EUR 600.00 on 20
    Sep": with the years when one falls in a year other than `on`'s."""
    year = any(d.year != on.year for d, _ in instalments)
    return ", ".join(f"{format_money(a, currency)} on {format_day(d, year=year)}" for d, a in instalments)


def _limit_passed(*, total: Decimal, currency: str, granted: Decimal = ZERO, rules: CollectionRules) -> str:
    """Why a plan of `total` in `currency` (with `granted` in plans already
    in force on the account) is beyond what a collector agrees alone, with
    the limit in its own currency. Collectors agree plans in the default
    currency only: a plan in another is not "above" a limit it cannot be
    compared with (the product knows no exchange rates)."""
    limit = format_money(rules.plan_approval_above_amount, settings.DEFAULT_CURRENCY)
    if currency != settings.DEFAULT_CURRENCY:
        default = settings.DEFAULT_CURRENCY
        return f"collectors agree plans in {default} only (up to {limit}), not in {currency}"
    if granted:
        return (f"with the {format_money(granted, currency)} of plans in force on the account it comes to "
                f"{format_money(granted + total, currency)}, above the collectors' limit of {limit}")
    return f"it is above the collectors' limit of {limit}"


def plan_waits_because(plan: PaymentPlan) -> str:
    """Why a proposal waits for a manager, as its proposer is told."""
    granted = (plan.customer.payment_plans.filter(status=PlanStatus.ACTIVE, currency=plan.currency)
               .exclude(pk=plan.pk).aggregate(total=Sum("total_amount"))["total"] or ZERO)
    return _plan_beyond_collectors_now(plan, granted=granted)


def _plan_beyond_collectors_now(plan: PaymentPlan, *, granted: Decimal) -> str:
    """_plan_beyond_collectors for a plan recorded, by its schedule as it stands."""
    dates = list(plan.instalments.order_by("due_on").values_list("due_on", flat=True))
    return _plan_beyond_collectors(total=plan.total_amount, currency=plan.currency, granted=granted,
                                   rules=CollectionRules.current(), dates=dates, on=plan.proposed_on)


def _plan_pause(plan: PaymentPlan, invoices: Sequence[Invoice], *, actor, on: dt.date) -> None:
    last = plan.instalments.order_by("-due_on").values_list("due_on", flat=True).first()
    DunningPause.objects.bulk_create([
        DunningPause(customer=plan.customer, invoice=i, kind=PauseKind.PAYMENT_PLAN, plan=plan, owner=actor,
                     reason=f"Payment plan of {format_money(plan.total_amount, plan.currency)}",
                     starts_on=on, ends_on=last + dt.timedelta(days=plan.grace_days))
        for i in invoices
    ])


def letters_withdraw_held(*, on: dt.date, customer: Customer | None = None, by: str = "", actor=None) -> int:
    """Withdraw the letters in the print queue (of `customer`, or every
    account's) that ask only for what a promise or a payment plan now holds,
    or an open dispute contests in full (`by` names it, e.g. "the promise to
    pay EUR 500.00 by 15 Mar 2026"). Posted, such a letter would demand at
    once what was just agreed to be paid later, or what the customer says it
    does not owe. Withdrawn, each is a step not carried out, as a letter paid
    before the post is (delivery.letters_withdraw_moot): its charges are
    cancelled unless a later notice asked for them, and its "not posted"
    item leaves the worklist, on the timeline. A letter also asking for
    money nothing holds (an invoice disputed only in part, one not
    disputed) stays for the person at the print queue to judge (it warns of
    the pauses since).

    Not holds and exceptions: they end on a date of their own, after which
    the letter may be right again. A promise or plan kept pays the invoices,
    which would make the letter moot anyway. One broken resumes dunning where the cycle stood:
    the withdrawn step is not taken again and counts as neither a contact,
    a tone nor a pay-by date, so the ladder's next step goes out as soon as
    it is due, with the amounts owed then and a pay-by date still ahead,
    where the letter written before the agreement would name one long past."""
    from ar_collections.delivery import letter_withdraw_locked
    from ar_collections.forms import letters_in_queue  # it imports this module (through imports)

    held = DunningPause.objects.active(on=on).filter(kind__in=[PauseKind.PROMISE, PauseKind.PAYMENT_PLAN],
                                                     invoice=OuterRef("invoice"))
    # Disputed in full: all the invoice owes now, whatever it owed when the letter was written.
    contested = Dispute.objects.filter(disputed_in_full_q("disputed_amount", F("invoice__open_amount")),
                                       invoice=OuterRef("invoice"), status=DisputeStatus.OPEN)
    asks_unheld = DunningActionInvoice.objects.filter(
        action=OuterRef("pk"), invoice__status=InvoiceStatus.OPEN, invoice__open_amount__gt=0,
    ).exclude(Exists(held)).exclude(Exists(contested))
    letters = letters_in_queue().exclude(Exists(asks_unheld))
    if customer is not None:
        letters = letters.filter(customer=customer)
    note = (f"{by or 'a promise, payment plan or dispute made since it was written'} holds everything it "
            "asks for")
    withdrawn = 0
    # Newest first, as moot letters are: a later letter that listed an
    # earlier one's charges asks for them only if it goes out.
    for pk in list(letters.order_by("-done_at", "-pk").values_list("pk", flat=True)):
        with transaction.atomic():
            # Locked and read again: marking it printed at this moment waits,
            # then finds it gone (views._letters_mark_printed); printed first,
            # it is not withdrawn.
            letter = (letters.select_for_update(of=("self",)).select_related("customer")
                      .filter(pk=pk).first())
            if letter is None:
                continue
            # Before the letter goes: its item's end says why, where withdrawing closes it unsaid.
            worklist.items_close(kind=WorkKind.LETTER_UNPOSTED, action=letter, actor=actor,
                                 because=f"the letter was withdrawn: {note}")
            reason = f"Letter of {format_day(letter.planned_on)} not posted: {note}"
            letter_withdraw_locked(letter=letter, actor=actor, note=note, cancel_reason=reason,
                                   summary=f"{reason}; withdrawn from the print queue")
            withdrawn += 1
    return withdrawn


def steps_skip_held(*, on: dt.date, customer: Customer | None = None, by: str = "", actor=None) -> int:
    """Skip the credit holds and switches to C.O.D. waiting for a manager (of
    `customer`, or every account's) whose open invoices a promise or a
    payment plan now holds, every one of them (`by` names it, as for
    letters_withdraw_held). Approved, such a step would go against what was
    just agreed (the approvals card says so, and the manager declined it by
    hand); skipped, with the reason on the timeline, no manager is asked to
    weigh it. A step skipped keeps its place on the ladder, as a declined one
    does: should the promise or plan break, dunning goes on at the next step.

    Each is claimed with a conditional update on what it waits for and what
    holds it, as credit_terms_in_force_skip claims one: a manager deciding it
    at this moment keeps it, and so does one whose promise ended meanwhile."""
    from ar_collections.dunning import NEEDS_APPROVAL

    held = DunningPause.objects.active(on=on).filter(kind__in=[PauseKind.PROMISE, PauseKind.PAYMENT_PLAN],
                                                     invoice=OuterRef("invoice"))
    asks_unheld = DunningActionInvoice.objects.filter(
        action=OuterRef("pk"), invoice__status=InvoiceStatus.OPEN, invoice__open_amount__gt=0,
    ).exclude(Exists(held))
    # Listing an open invoice at all: one whose invoices were paid meanwhile
    # is moot, which the manager's approval finds and says (delivery._moot).
    steps = (DunningAction.objects.filter(lists_open_invoice(), status=ActionStatus.AWAITING_APPROVAL,
                                          step__action__in=NEEDS_APPROVAL)
             .exclude(Exists(asks_unheld)))
    if customer is not None:
        steps = steps.filter(customer=customer)
    reason = f"{by or 'a promise or payment plan made since it was planned'} holds everything it asks for"
    skipped = 0
    for step in steps.select_related("customer", "step").order_by("pk"):
        # Still held by what holds it now: one whose promise ended meanwhile keeps it.
        skipped += services.waiting_step_skip(step, reason=reason, actor=actor,
                                              still=Q(lists_open_invoice()) & ~Exists(asks_unheld))
    return skipped


@transaction.atomic
def plan_decide(*, plan: PaymentPlan, manager, approve: bool, note: str, on: dt.date) -> PaymentPlan:
    locked = _decision_take(
        PaymentPlan, plan, manager=manager, approve=approve, note=note, what="payment plans", noun="plan",
        pending=PlanStatus.AWAITING_APPROVAL, approved=PlanStatus.ACTIVE, rejected=PlanStatus.REJECTED,
    )
    invoices = list(locked.invoices.all())
    if approve:
        # Approved as proposed: what the customer paid meanwhile counts towards
        # the first instalments, as it would had the plan been in force. So the
        # schedule has passed only if an instalment still owed is past its grace.
        locked.paid_amount = _Receipts(locked.invoices.all(), since=min(locked.proposed_on, on),
                                       after=locked.allocations_before).paid
        owed = plan_instalments_owed(locked)
        first = next((instalment for instalment, still in owed if still), owed[0][0])
        if first.due_on + dt.timedelta(days=locked.grace_days) < on:
            raise ValidationError(f"Instalment {first.number} was due on {format_day(first.due_on)}: the "
                                  "schedule has passed. Reject it and propose a new one.")
        # One a collector agreed that came back for approval (it asks more
        # now, see _plan_limit_check_again) kept its pauses.
        if not DunningPause.objects.filter(plan=locked, lifted_at__isnull=True).exists():
            _plan_pause(locked, [i for i in invoices if i.status == InvoiceStatus.OPEN], actor=manager, on=on)
    else:
        _pauses_lift(DunningPause.objects.filter(plan=locked), actor=manager)
    # Approved, the customer is e-mailed the schedule.
    tell = (lambda: _plan_agreed_send(locked, invoices, actor=manager, on=on)) if approve else None
    _decision_record(locked, manager, kind=EventKind.PAYMENT_PLAN, invoices=invoices,
                     what=f"Payment plan of {format_money(locked.total_amount, locked.currency)}",
                     asker=locked.proposed_by, tell=tell)
    said = f"payment plan of {format_money(locked.total_amount, locked.currency)}"
    if approve:
        letters_withdraw_held(on=on, customer=locked.customer, actor=manager,
                              by=f"the {said} agreed on {format_day(on)}")
        steps_skip_held(on=on, customer=locked.customer, actor=manager,
                        by=f"the {said} agreed on {format_day(on)}")
        # The instalments the payments so far cover show paid at once.
        _plan_check(locked, on=on, settle_only=True)
    else:
        # Proposed, it closed the items of the promise or plan it followed up;
        # rejected, it holds nothing, and they are for the collector again.
        worklist.items_follow_up_lost(
            invoices=invoices, on=on, actor=manager,
            because=f"the {said} it was followed up with was rejected by {person_name(manager)}: "
                    f"{locked.decision_note}")
    return locked


def _plan_agreed_send(plan: PaymentPlan, invoices: Sequence[Invoice], *, actor, on: dt.date,
                      rescheduled: bool = False) -> str:
    """Tell the billing contact the schedule just agreed (`actor` approved
    it, or agreed it at once), or, `rescheduled`, the new schedule of what is
    still to pay that replaces it: the instalments, their dates and amounts and
    the invoices covered, in the contact's language, through the outbox
    (after commit), with an entry on the plan's timeline. With no address to
    write to, nothing is sent and the timeline says so. Returns what is left
    to do (a manager's approval puts it on the collector's "decided" item)."""
    said = "new schedule" if rescheduled else "agreed schedule"
    customer = plan.customer
    contact = customer.billing_contact(on=on)
    if contact is None or not contact.email_usable:
        if contact is None:
            why = customer.nobody_billed_why(on=on)
        elif contact.email_refused_now:
            why = f"the mail server refused {contact.name}'s address"
        else:
            why = f"{contact.name} has no e-mail address"
        event_record(customer=customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan,
                     invoices=invoices, summary=f"The {said} could not be e-mailed: {why}",
                     details={"not_sent": why})
        return f"the schedule could not be e-mailed ({why}): tell the customer"
    sender = working_for(customer, on=on) or actor  # a stand-in while the collector is away
    instalments = [(i.number, i.due_on, i.amount) for i in plan.instalments.order_by("number")
                   if not rescheduled or i.status == InstalmentStatus.DUE]
    subject, text = rendering.render_plan_agreed(rendering.PlanAgreed(
        language=contact.language, recipient_name=contact.name, customer_name=customer.name,
        account_number=customer.account_number, currency=plan.currency, total_amount=plan.total_amount,
        instalments=tuple(instalments), invoices=tuple(i.number for i in invoices),
        sender_name=person_name(sender), paid_amount=plan.paid_amount, rescheduled=rescheduled,
        wording=cover_wording_in_force(WordingKind.PLAN_AGREED, contact.language),
    ))
    message = EmailMessage(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL,
                           to=[mail_address(contact.name, contact.email)],
                           reply_to=[sender.email] if sender.email else None)
    mail = outbox.mail_queue(message, customer=customer, purpose=MailPurpose.PLAN_AGREED, actor=actor)
    event_record(
        customer=customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan, invoices=invoices,
        summary=f"{capfirst(said)} e-mailed to {contact.name} <{contact.email}>: "
        f"{len(instalments)} instalment{pluralize(len(instalments))}"
        f"{' still to pay' if rescheduled else ''}, "
        f"{format_money(sum((a for _, _, a in instalments), ZERO), plan.currency)} in all",
        details={"to": contact.email, "subject": subject, "text": text, "mail": mail.pk},
    )
    return f"the schedule was e-mailed to {contact.name}; tell the customer if need be"


@dataclass(frozen=True)
class NoticeSent:
    """A reminder or letter dunning sent the customer, as a decision names it."""

    step: str
    how: str
    to: str
    on: dt.date
    pay_by: dt.date


def notices_sent_since(asked: ExceptionRequest) -> list[NoticeSent]:
    """The reminders and letters dunning sent the customer about what an
    exception covers since it was asked for, oldest first. A request holds
    nothing until it is approved: the nightly run goes on meanwhile, and the
    manager deciding a pause should know the customer was already sent a
    notice the collector may have promised would not come. An exception for
    the whole account covers all its invoices."""
    actions = DunningAction.objects.filter(customer=asked.customer_id, status=ActionStatus.DONE,
                                           channel__in=[Channel.EMAIL, Channel.LETTER])
    if asked.invoice_id:
        actions = actions.filter(lines__invoice=asked.invoice_id)
    # The request carries only a day: its event on the timeline says when in
    # that day it was made, so a reminder sent that morning, which the
    # collector knew of when asking, is not news.
    asked_at = (TimelineEvent.objects.for_subject(asked).order_by("pk").values_list("occurred_at", flat=True)
                .first())
    actions = (actions.filter(done_at__gt=asked_at) if asked_at is not None
               else actions.filter(done_at__date__gte=asked.requested_on))
    return [
        NoticeSent(step=step_name(action),
                   how="e-mailed" if action.channel == Channel.EMAIL else "sent as a letter",
                   to=action.recipient.name if action.recipient else action.recipient_address,
                   on=timezone.localdate(action.done_at), pay_by=action.pay_by)
        for action in actions.select_related("step", "recipient").order_by("done_at", "pk").distinct()
    ]


def disputes_opened_since(asked: PaymentPlan | ExceptionRequest) -> list[Dispute]:
    """Disputes still open that were opened on what a plan or an exception
    covers since it was asked for: the manager deciding should know the
    customer now contests some of it. An exception for the whole account
    covers all its invoices."""
    if isinstance(asked, PaymentPlan):
        # Those whose part it left out of its invoices were open when it was proposed.
        asked_on = asked.proposed_on
        disputes = (Dispute.objects.filter(invoice__payment_plans=asked)
                    .exclude(pk__in=list(_left_out(asked))))
    else:
        asked_on, disputes = asked.requested_on, Dispute.objects.filter(customer=asked.customer_id)
        if asked.invoice_id:
            disputes = disputes.filter(invoice=asked.invoice_id)
    # Both carry only a date: on the day itself, their events on the timeline
    # (numbered as they happen) tell which came first. Only a dispute shown
    # to have come first is left out: one with no event to say so (written
    # by a sync or a data fix, not by a collector) may be news to the
    # collector who asked, and a warning too many costs the manager less
    # than one missed.
    asked_event = TimelineEvent.objects.for_subject(asked).order_by("pk").values_list("pk", flat=True).first()
    same_day = Q(opened_on=asked_on)
    if asked_event is not None:
        opened_before = TimelineEvent.objects.filter(subject_type=ContentType.objects.get_for_model(Dispute),
                                                     subject_id=OuterRef("pk"), pk__lt=asked_event)
        same_day &= ~Exists(opened_before)
    later = Q(opened_on__gt=asked_on) | same_day
    return list(disputes.filter(later, status=DisputeStatus.OPEN).select_related("invoice")
                .order_by("opened_on", "pk"))


def plan_instalments_owed(plan: PaymentPlan) -> list[tuple[Instalment, Decimal]]:
    """Each instalment with what is still to pay of it, the payments on the
    plan's invoices since it was proposed counting towards the earliest first
    (as the daily check counts them: each for what it asks less what the
    customer took off it). `plan.paid_amount` is what came in. The
    instalments as the caller prefetched them, if it did: the account page
    reads every plan's in one query, however many there are."""
    owed, covered = [], ZERO
    for instalment in sorted(plan.instalments.all(), key=lambda i: i.number):
        covered += instalment.judged_amount
        owed.append((instalment, min(instalment.judged_amount, max(covered - plan.paid_amount, ZERO))))
    return owed


@transaction.atomic
def plan_withdraw(*, plan: PaymentPlan, actor, reason: str, on: dt.date) -> PaymentPlan:
    """Take back a proposal before a manager decides (the customer changed
    their mind), or end a plan in good standing (the customer asks to stop it,
    pays another way, or a new arrangement replaces it). It ends cancelled,
    not broken: it counts against nobody. The pauses it set that still hold
    lift, and dunning goes on where the cycle stood. Who, when and why go on
    the timeline."""
    require_act_on(actor, plan.customer)
    locked = PaymentPlan.objects.select_for_update().select_related("customer", "proposed_by").get(pk=plan.pk)
    refusal = plan_withdraw_refusal(actor, locked)
    if refusal:
        raise ValidationError(refusal)
    if not reason.strip():
        raise ValidationError({"reason": "Say why the plan ends."})
    before = locked.status
    instalments = list(locked.instalments.order_by("number"))
    receipts = _Receipts(locked.invoices.all(), since=min(locked.proposed_on, on),
                         after=locked.allocations_before)
    locked.status, locked.paid_amount = PlanStatus.CANCELLED, receipts.paid
    locked.save(update_fields=["status", "paid_amount"])
    _pauses_lift(DunningPause.objects.filter(plan=locked), actor=actor)
    worklist.items_close(plan=locked, actor=actor)
    said = f"Payment plan of {format_money(locked.total_amount, locked.currency)}"
    if before == PlanStatus.AWAITING_APPROVAL:
        summary = f"{said} withdrawn before a manager decided: {reason.strip()}"
        # As a proposal rejected: it never held what it closed the items of.
        worklist.items_follow_up_lost(
            invoices=list(locked.invoices.all()), on=on, actor=actor,
            because=f"the payment plan of {format_money(locked.total_amount, locked.currency)} it was "
                    f"followed up with was withdrawn: {reason.strip()}")
    else:
        paid = sum(i.status == InstalmentStatus.PAID for i in instalments)
        summary = (f"{said} ended with {paid} of {len(instalments)} instalments paid "
                   f"({format_money(receipts.paid, locked.currency)}): {reason.strip()}; "
                   "dunning goes on where it stood")
    event_record(
        customer=locked.customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=locked,
        invoices=list(locked.invoices.all()), summary=summary,
        details={"before": {"status": before}, "after": {"status": locked.status}, "reason": reason.strip(),
                 "paid": str(receipts.paid)},
    )
    return locked


@transaction.atomic
def plan_amend(
    *,
    plan: PaymentPlan,
    manager,
    instalments: Sequence[tuple[dt.date, Decimal]],
    note: str,
    on: dt.date,
) -> PaymentPlan:
    """A manager reschedules what an agreed plan still asks for: the
    instalments still due give way to `instalments` (dates and amounts),
    adding up to the same, none in the past; those paid or held back for a
    dispute stay as they were. The plan holds dunning until its new last
    instalment plus grace. Who, when, why, and the schedule before and
    after go on the timeline, and the customer is e-mailed the new schedule."""
    if not manager.has_perm("collections.change_paymentplan"):
        raise PermissionDenied("Only a manager may change an agreed payment plan.")
    require_act_on(manager, plan.customer)
    locked = PaymentPlan.objects.select_for_update().select_related("customer").get(pk=plan.pk)
    if locked.status != PlanStatus.ACTIVE:
        raise ValidationError(f"This payment plan is {locked.get_status_display().lower()}: only an agreed "
                              "plan in good standing can be changed.")
    if not note.strip():
        raise ValidationError({"note": "Say why the schedule changes."})
    rows = list(locked.instalments.order_by("number"))
    due = [i for i in rows if i.status == InstalmentStatus.DUE]
    if not due:
        raise ValidationError("No instalment of this plan is still due: there is nothing to reschedule.")
    if not instalments:
        raise ValidationError({"instalments": "Give at least one instalment."})
    dates = [d for d, _ in instalments]
    if dates != sorted(set(dates)):
        raise ValidationError({"instalments": "Instalment dates must be different and in order."})
    if dates[0] < on:
        raise ValidationError({"instalments": f"{format_day(dates[0])} is in the past: an instalment is for "
                                              "today or a later day."})
    if len(instalments) > PLAN_INSTALMENTS_AT_MOST:
        raise ValidationError({"instalments": f"{len(instalments)} instalments: a plan has at most "
                                              f"{PLAN_INSTALMENTS_AT_MOST}."})
    _plan_days_apart_check(dates, on=on)
    if any(not amount.is_finite() or amount <= 0 for _, amount in instalments):
        raise ValidationError({"instalments": "Every instalment must be more than zero."})
    for _, amount in instalments:
        places_check(amount, locked.currency, field="instalments")
    still = sum((i.amount for i in due), ZERO)
    total = sum((a for _, a in instalments), ZERO)
    if total != still:
        raise ValidationError({"instalments": (
            f"The instalments add up to {format_money(total, locked.currency)} but the plan still asks "
            f"{format_money(still, locked.currency)} in the instalments due: the total stays the same.")})
    before = [[i.number, i.due_on.isoformat(), str(i.amount), i.status] for i in rows]
    kept = [i for i in rows if i.status != InstalmentStatus.DUE]
    Instalment.objects.filter(pk__in=[i.pk for i in due]).delete()
    first = max((i.number for i in kept), default=0) + 1
    Instalment.objects.bulk_create([Instalment(plan=locked, number=n, due_on=d, amount=a)
                                    for n, (d, a) in enumerate(instalments, first)])
    after = [[i.number, i.due_on.isoformat(), str(i.amount), i.status]
             for i in locked.instalments.order_by("number")]
    last = max([d for d, _ in instalments] + [i.due_on for i in kept])
    DunningPause.objects.filter(plan=locked, lifted_at__isnull=True).update(
        ends_on=last + dt.timedelta(days=locked.grace_days))
    schedule = schedule_said(instalments, locked.currency, on=on)
    summary = (f"Payment plan of {format_money(locked.total_amount, locked.currency)} rescheduled by "
               f"{person_name(manager)}: {schedule} — {note.strip()}")
    event = event_record(
        customer=locked.customer, kind=EventKind.PAYMENT_PLAN, actor=manager, subject=locked,
        invoices=list(locked.invoices.all()), summary=summary,
        details={"note": note.strip(), "before": {"instalments": before}, "after": {"instalments": after}},
    )
    told = _plan_agreed_send(locked, list(locked.invoices.all()), actor=manager, on=on, rescheduled=True)
    collector = locked.customer.collector
    if collector is not None and collector.pk != manager.pk:
        # The account's collector follows the plan: a manager's decision on
        # it goes on their list, as an approval does (_decision_record). One
        # item per reschedule, about the plan, so that its end closes it.
        worklist.item_add(
            kind=WorkKind.DECIDED, key=f"rescheduled:paymentplan:{locked.pk}:{event.pk}",
            customer=locked.customer, assignee=collector, due_on=on,
            title=f"{summary} — {told}; follow the new schedule", plan=locked,
        )
    return locked


def _plan_days_apart_check(dates: Sequence[dt.date], *, on: dt.date) -> None:
    """A rescheduled plan keeps the shape of a new one (PlanForm): the first
    instalment within PLAN_DAYS_APART_AT_MOST days of `on`, each within as many
    of the one before. A mistyped year (2039 for 2029) would otherwise pause
    dunning for years, and the customer would be told so in writing."""
    apart = dt.timedelta(days=PLAN_DAYS_APART_AT_MOST)
    why = f"a plan's instalments are at most {PLAN_DAYS_APART_AT_MOST} days apart (check the year)"
    if dates[0] - on > apart:
        raise ValidationError({"instalments": f"{format_day(dates[0])} is more than "
                                              f"{PLAN_DAYS_APART_AT_MOST} days from today: {why}."})
    for before, day in itertools.pairwise(dates):
        if day - before > apart:
            raise ValidationError({"instalments": f"{format_day(day)} is more than {PLAN_DAYS_APART_AT_MOST} "
                                                  f"days after the one before: {why}."})


def plan_withdraw_refusal(actor, plan: PaymentPlan) -> str:
    """Why `actor` may not withdraw or end this plan ("" if they may). A
    proposal is its proposer's to take back, or a manager's. A plan in good
    standing that a manager decided on (approved it, or set it up beyond the
    collectors' limit) is a manager's to end, as a manager's hold or approved
    exception is a manager's to lift (see pauses_liftable); one a collector
    could agree alone, the collector may end."""
    if plan.status not in (PlanStatus.AWAITING_APPROVAL, PlanStatus.ACTIVE):
        return (f"{_plan_over(plan)} Only a plan waiting for a manager or in good standing can be withdrawn "
                "or ended.")
    if actor.has_perm("collections.change_paymentplan"):
        return ""
    if plan.status == PlanStatus.AWAITING_APPROVAL:
        if plan.proposed_by_id == actor.pk:
            return ""
        return (f"Only {person_name(plan.proposed_by)}, who proposed it, or a manager may withdraw it "
                "before a manager decides.")
    if plan.decided_by_id is not None:
        return "This plan was approved by a manager: a manager ends it."
    # The same rule that let it start without a manager, on its own amount.
    if why := _plan_beyond_collectors_now(plan, granted=ZERO):
        return f"{capfirst(why)}: a manager ends it."
    return ""


def _plan_over(plan: PaymentPlan) -> str:
    """What became of a plan no longer waiting or in force, and when, from
    the timeline: a collector refused ending it learns that it was completed
    or broken meanwhile (by a payment, the daily check), or by whom it was
    decided on or ended (see _decided_already)."""
    if plan.status not in (PlanStatus.COMPLETED, PlanStatus.BROKEN):
        return _decided_already(plan, noun="payment plan", approved=PlanStatus.ACTIVE,
                                rejected=PlanStatus.REJECTED)
    event = (TimelineEvent.objects.for_subject(plan)
             .filter(Q(details__status=plan.status) | Q(details__after__status=plan.status))
             .select_related("actor").order_by("-occurred_at", "-pk").first())
    if event is None:
        return f"This payment plan is {plan.get_status_display().lower()} already."
    when = f"on {format_day(timezone.localdate(event.occurred_at))}"
    if event.actor:
        when += f" by {person_name(event.actor)}"
    if plan.status == PlanStatus.BROKEN:
        missed = event.details.get("instalment")
        return f"This payment plan was broken {when}: instalment {missed} was missed, and dunning resumed."
    if because := event.details.get("because"):
        return f"This payment plan was completed {when}: {because} left nothing to pay."
    return f"This payment plan was completed {when}: {format_money(plan.paid_amount, plan.currency)} paid."


# --- Disputes ---------------------------------------------------------------------


@transaction.atomic
def dispute_open(
    *,
    customer: Customer,
    actor,
    invoice: Invoice,
    reason: str,
    description: str,
    department: Department | None = None,
    on: dt.date,
    site_url: str = "",
    amount: Decimal | None = None,
) -> Dispute:
    """Open a dispute on one invoice, of `amount` of it (None: all that is
    open). What it disputes leaves dunning until resolved, the rest is
    chased as before (dunning.eligible_invoices); a letter in the print
    queue asking only for what is now disputed is withdrawn. The department
    that can settle it gets an e-mail with the context, linking to the
    account at settings.SITE_URL, else at `site_url` (the address the
    collector uses)."""
    require_act_on(actor, customer)
    (invoice,) = _open_invoices_of(customer, [invoice], field="invoice")
    if not description.strip():
        raise ValidationError({"description": "Say what the customer disputes."})
    if Dispute.objects.filter(invoice=invoice, status=DisputeStatus.OPEN).exists():
        raise ValidationError({"invoice": f"Invoice {invoice.number} already has an open dispute."})
    amount = _disputed_amount_check(invoice, amount)
    if department is None:
        department = next((d for d in Department.objects.all() if reason in d.reasons), None)
    rules = CollectionRules.current()
    dispute = Dispute.objects.create(
        customer=customer, invoice=invoice, reason=reason, description=description.strip(),
        department=department, routed_to=department.email if department else "", opened_by=actor,
        opened_on=on, answer_due_on=on + dt.timedelta(days=rules.dispute_answer_days),
        disputed_amount=amount,
    )
    # The pause of a dispute of part of the invoice holds back that part only
    # (dunning.eligible_invoices reads its amount).
    in_part = not disputed_in_full(amount, invoice.open_amount)
    disputed = format_money(amount, invoice.currency)
    DunningPause.objects.create(
        customer=customer, invoice=invoice, kind=PauseKind.DISPUTE, dispute=dispute, owner=actor,
        reason=f"Dispute{f' of {disputed}' if in_part else ''}: {dispute.get_reason_display()}", starts_on=on,
    )
    routed = f"; sent to {department.name} <{department.email}>" if department else ""
    of = f" of {disputed} of {format_money(invoice.open_amount, invoice.currency)} open" if in_part else ""
    event_record(
        customer=customer, kind=EventKind.DISPUTE, actor=actor, subject=dispute, invoices=[invoice],
        # What the customer says, as a call's notes: the timeline is where a collector reads the account.
        summary=f"Dispute opened on {invoice.number}{of}: {dispute.get_reason_display()}{routed} "
                f"— {dispute.description}",
        details={"reason": reason, "description": dispute.description,
                 "department": department.name if department else None, "routed_to": dispute.routed_to,
                 "answer_due_on": dispute.answer_due_on.isoformat(), "disputed_amount": str(amount),
                 "open_amount": str(invoice.open_amount), "currency": invoice.currency},
    )
    if department:
        message = _dispute_message(dispute, site_url=settings.SITE_URL or site_url)
        outbox.mail_queue(message, customer=customer, purpose=MailPurpose.DISPUTE_ROUTING, actor=actor,
                          invoice=invoice)
    letters_withdraw_held(on=on, customer=customer, actor=actor, by=f"the dispute on {invoice.number}")
    # A dispute of all the invoice owes follows up a broken promise or plan
    # of it, and a finished ladder's item once it holds all that is overdue.
    worklist.items_followed_up(invoices=[invoice], actor=actor, on=on,
                               because=f"followed up: dispute opened on {invoice.number}")
    return dispute


def _disputed_amount_check(invoice: Invoice, amount: Decimal | None) -> Decimal:
    """What a dispute on `invoice` is about: `amount`, or all that is open.
    Read under the invoice's lock: a payment just before lowers what can be disputed."""
    if amount is None:
        return invoice.open_amount
    if amount <= 0:
        raise ValidationError({"amount": "A disputed amount is more than zero: leave it blank to dispute all "
                                         "that is open."})
    places_check(amount, invoice.currency, field="amount")
    if amount > invoice.open_amount:
        raise ValidationError({"amount": f"{invoice.number} has "
                                         f"{format_money(invoice.open_amount, invoice.currency)} open: a "
                                         "dispute cannot be for more."})
    return amount


def _dispute_message(dispute: Dispute, *, site_url: str) -> EmailMessage:
    customer, invoice = dispute.customer, dispute.invoice
    path = reverse("customers:detail", args=[customer.pk])
    link = site_url.rstrip("/") + path if site_url else f"account {customer.account_number} in arcrm ({path})"
    body = "\n".join([
        f"{person_name(dispute.opened_by)} opened a dispute "
        f"that needs {dispute.department.name}.",
        "",
        f"Customer: {customer.name} ({customer.account_number})",
        f"Invoice:  {invoice.number}, issued {format_day(invoice.issue_date)}, "
        f"due {format_day(invoice.due_date)}, "
        f"{format_money(invoice.open_amount, invoice.currency)} open of "
        f"{format_money(invoice.total_amount, invoice.currency)}",
        f"Disputed: {format_money(dispute.disputed_amount, invoice.currency)}",
        f"Reason:   {dispute.get_reason_display()}",
        "",
        dispute.description,
        "",
        f"Please answer by {format_day(dispute.answer_due_on)}. " + (
            "Dunning of this invoice is paused meanwhile." if dispute.in_full
            else "Dunning of the amount disputed is paused meanwhile; the rest is chased as usual."),
        f"Account: {link}",
    ])
    return EmailMessage(
        subject=f"Dispute on invoice {invoice.number} ({customer.name}): {dispute.get_reason_display()}",
        body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[dispute.routed_to],
        reply_to=[dispute.opened_by.email] if dispute.opened_by.email else None,
    )


@transaction.atomic
def dispute_resolve(
    *,
    dispute: Dispute,
    actor,
    outcome: str,
    note: str,
    on: dt.date,
    amount: Decimal | None = None,
) -> Dispute:
    """Close a dispute. A credit note of `amount` reduces the invoice; a
    corrected invoice gets `amount` as its new total; either takes off no
    more than was disputed. A rejection puts the invoice back into dunning
    as it was."""
    locked = Dispute.objects.select_for_update().select_related("customer").get(pk=dispute.pk)
    customer = locked.customer
    require_act_on(actor, customer)
    if locked.status != DisputeStatus.OPEN:
        raise ValidationError("This dispute is already resolved.")
    if not note.strip():
        raise ValidationError({"note": "Say how the dispute was settled."})
    invoice = Invoice.objects.select_for_update().get(pk=locked.invoice_id)
    before = {"total_amount": str(invoice.total_amount), "open_amount": str(invoice.open_amount),
              "status": invoice.status}
    _outcome_possible(outcome, invoice)
    if amount is not None and outcome in (DisputeOutcome.CREDIT_NOTE, DisputeOutcome.CORRECTED_INVOICE):
        places_check(amount, invoice.currency, field="amount")
    if outcome == DisputeOutcome.CREDIT_NOTE:
        most = min(invoice.open_amount, locked.disputed_amount)
        if amount is None or amount <= 0 or amount > most:
            least = format_money(smallest_unit(invoice.currency), invoice.currency)
            what = "still open" if most == invoice.open_amount else "disputed"
            raise ValidationError({"amount": f"A credit note is between {least} and the "
                                             f"{format_money(most, invoice.currency)} {what}."})
        _credit_allowed(actor, invoice, taken_off=amount)
        locked.taken_off_amount = amount
        locked.credit_note = _credit_note_issue(invoice, amount=amount, reason=note.strip(), on=on)
        what = f"credit note {locked.credit_note.number} for {format_money(amount, invoice.currency)}"
    elif outcome == DisputeOutcome.CORRECTED_INVOICE:
        paid = invoice.total_amount - invoice.open_amount
        # A correction takes off no more than was disputed.
        undisputed = invoice.total_amount - locked.disputed_amount
        least = max(paid, undisputed, Decimal("0.01"))
        if amount is None or amount < least or amount >= invoice.total_amount:
            below = format_money(invoice.total_amount, invoice.currency)
            raise ValidationError({"amount": (
                f"The corrected total must be below {below} and at least what was paid "
                f"({format_money(paid, invoice.currency)})." if paid >= undisputed else
                f"The corrected total must be below {below} and at least "
                f"{format_money(undisputed, invoice.currency)}: the dispute is about "
                f"{format_money(locked.disputed_amount, invoice.currency)} of it."
            )})
        locked.taken_off_amount = invoice.total_amount - amount
        _credit_allowed(actor, invoice, taken_off=locked.taken_off_amount)
        invoice.total_amount, invoice.open_amount = amount, amount - paid
        if invoice.open_amount == 0:
            invoice.status, invoice.settled_on = InvoiceStatus.PAID, on
        invoice.save(update_fields=["total_amount", "open_amount", "status", "settled_on"])
        what = f"invoice corrected to {format_money(amount, invoice.currency)}"
    elif outcome == DisputeOutcome.REJECTED:
        what = "rejected, the invoice stands"
    elif outcome == DisputeOutcome.PAID_IN_FULL:
        what = f"{invoice.settled_how()} in full, nothing left to settle"
    else:
        raise ValidationError({"outcome": "Choose how the dispute ends."})
    locked.status, locked.outcome, locked.resolution_note = DisputeStatus.RESOLVED, outcome, note.strip()
    locked.resolved_by, locked.resolved_on = actor, on
    locked.save()
    _pauses_lift(DunningPause.objects.filter(dispute=locked), actor=actor)
    worklist.items_close(dispute=locked, actor=actor)
    invoice.refresh_from_db()
    event_record(
        customer=customer, kind=EventKind.DISPUTE, actor=actor, subject=locked, invoices=[invoice],
        summary=f"Dispute on {invoice.number} resolved: {what} — {note.strip()}",
        details={"outcome": outcome, "note": note.strip(), "before": before,
                 "after": {"total_amount": str(invoice.total_amount), "open_amount": str(invoice.open_amount),
                           "status": invoice.status}},
    )
    if before["status"] != InvoiceStatus.PAID and invoice.status == InvoiceStatus.PAID:
        # Its credit note or correction left nothing open: paid in full on
        # the timeline, as after a payment.
        event_record(customer=customer, kind=EventKind.INVOICE_PAID, actor=actor, subject=invoice,
                     **invoice_paid_said(invoice))
    if outcome == DisputeOutcome.CREDIT_NOTE:
        because = f"credit note {locked.credit_note.number} on {invoice.number}"
    elif outcome == DisputeOutcome.CORRECTED_INVOICE:
        because = f"the correction of {invoice.number} to {format_money(amount, invoice.currency)}"
    else:
        because = ""
    _plans_follow_dispute(invoice, taken_off=locked.taken_off_amount if because else ZERO, because=because,
                          ended=f"Dispute on {invoice.number} {_dispute_ended(locked, because, invoice)}",
                          actor=actor, on=on, dispute=locked)
    if because:
        # What it took off may have settled the last thing a letter not yet
        # posted lists: that letter goes now, as after a payment.
        letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)
    # A promise its invoices are now settled for is kept at once, as after a
    # payment (the plans holding the invoice were checked just above).
    commitments_check(on=on, customer_ids=[customer.pk], settle_only=True)
    if because:
        # What is open changed: the account's figures and segment follow
        # today, as of today as the nightly refresh computes them.
        services.behaviour_refresh_on_commit(customer_ids=[customer.pk])
    return locked


def _dispute_ended(dispute: Dispute, because: str, invoice: Invoice) -> str:
    if because:
        return f"settled by {because}"
    if dispute.outcome == DisputeOutcome.REJECTED:
        return "rejected"
    return f"closed as {invoice.settled_how()} in full"


# The outcome that is the ERP's own (invoice_cancel closes the dispute so):
# a person choosing it would close the dispute and leave the invoice owed.
DISPUTE_CANCELLED_BY_THE_ERP_ONLY = (
    "A dispute is closed as cancelled only when the ERP cancels its invoice, which closes the dispute on its "
    "own: choose another outcome."
)


def _outcome_possible(outcome: str, invoice: Invoice) -> None:
    """A credit takes something off what is open; paid in full says nothing is.
    Read under the invoice's lock: a payment just before decides which holds.
    Cancelled is the ERP's, never a person's (DISPUTE_CANCELLED_BY_THE_ERP_ONLY)."""
    if outcome == DisputeOutcome.INVOICE_CANCELLED:
        raise ValidationError({"outcome": DISPUTE_CANCELLED_BY_THE_ERP_ONLY})
    if outcome not in DisputeOutcome.values or outcome in DisputeOutcome.offered(invoice):
        return
    if outcome == DisputeOutcome.PAID_IN_FULL:
        raise ValidationError({"outcome": (
            f"Invoice {invoice.number} still has {format_money(invoice.open_amount, invoice.currency)} open: "
            "it is not paid in full."
        )})
    settled = f"{invoice.settled_how()} in full"
    raise ValidationError({"outcome": (
        f"Invoice {invoice.number} is {settled}: nothing is open to credit or correct. "
        f"Close the dispute as {settled}, or as rejected."
    )})


def _plans_follow_dispute(invoice: Invoice, *, taken_off: Decimal, because: str, ended: str, actor,
                          on: dt.date, dispute: Dispute | None = None) -> None:
    """A dispute on `invoice` ended, `taken_off` credited (`because` says how;
    none for a rejection). The plan holding the invoice (in good standing, or
    waiting for a manager) settles what its customer held back while the
    dispute (`dispute`, the one that ended) was open (_plan_release_held),
    and asks for the rest of the
    credit less, or it went on asking for money no longer owed (the collector
    quoted the old instalments, the manager approved the old total, a missed
    instalment read short by more than it was). A plan the credit leaves
    nothing to pay is done. The caller holds the invoice's lock, as a payment
    does before it checks the plan: one order, no deadlock."""
    plans = (PaymentPlan.objects.select_for_update(of=("self",)).select_related("customer")
             .filter(invoices=invoice, status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL]))
    for plan in plans:
        # What the plan left out for this dispute it never asked for: a credit
        # up to that much takes nothing off it, and what the customer owes of
        # it after all is asked with the next instalment, as the plan holds
        # dunning of the whole invoice.
        left_out = _left_out(plan).get(dispute.pk, ZERO) if dispute else ZERO
        spared = min(left_out, taken_off)
        if left_out:
            plan.disputes_left_out = [[pk, amount] for pk, amount in plan.disputes_left_out
                                      if int(pk) != dispute.pk]
            plan.save(update_fields=["disputes_left_out"])
        if not plan.invoices.filter(status=InvoiceStatus.OPEN).exists():
            if taken_off:
                _plan_credited_in_full(plan, because=because, actor=actor, on=on)
            continue
        if left_out - spared:
            _plan_ask_left_out(plan, left_out - spared, ended=ended, actor=actor, on=on)
        left = taken_off - spared
        left -= _plan_release_held(plan, dispute=dispute, credit=left, ended=ended, actor=actor, on=on)
        if left:
            _plan_reduce(plan, taken_off=left, because=because, actor=actor)
        _plan_check(plan, on=on, settle_only=True)


# How long a customer has to pay what they held back during a dispute that
# went against them, when no instalment of the plan is left to ask it with:
# a fortnight, the time a reminder usually gives.
HELD_BACK_DAYS = 14


def _plan_release_held(plan: PaymentPlan, *, dispute: Dispute | None, credit: Decimal, ended: str, actor,
                       on: dt.date) -> Decimal:
    """A dispute on the plan's invoices ended: what the customer held back
    from its instalments for it (see _instalment_hold) is settled, whatever
    other disputes stay open (those keep their own share held back); the
    last one to end settles all that is still held back. The credit the
    dispute gave covers it first (the customer already took that off); the
    rest is asked again with the next instalment, not the last: the customer
    kept money they owed, and putting it at the end would give a dispute that
    failed a free extension of credit. With no instalment left, a new one
    falls due HELD_BACK_DAYS after the dispute ended. Returns how much of
    `credit` it covered."""
    held = list(plan.instalments.filter(status=InstalmentStatus.HELD).order_by("number"))
    if not held:
        return ZERO
    last = not _disputed_open(plan)
    parts = []  # (instalment, amount settled of what it held back)
    for instalment in held:
        shares = {int(pk): Decimal(amount) for pk, amount in instalment.held_for}
        part = instalment.deducted_amount if last else shares.pop(dispute.pk, ZERO) if dispute else ZERO
        if not part:
            continue
        if part == instalment.deducted_amount:
            instalment.status = InstalmentStatus.PAID
        else:
            # Held back in part for another dispute still open: that part stays
            # held; what this one settles leaves the instalment, as it would
            # were it settled in full (asked again below, or no longer owed).
            instalment.amount -= part
            instalment.deducted_amount -= part
            instalment.held_for = [[pk, str(amount)] for pk, amount in shares.items()]
        instalment.save(update_fields=["status", "amount", "deducted_amount", "held_for"])
        parts.append((instalment, part))
    if not parts:
        return ZERO
    back = sum((part for _, part in parts), ZERO)
    forgiven = min(back, credit)
    again = back - forgiven
    plan.total_amount -= forgiven
    plan.save(update_fields=["total_amount"])
    money = format_money(back, plan.currency)
    said = []
    if forgiven:
        part = f"the {money}" if not again else f"{format_money(forgiven, plan.currency)} of the {money}"
        said.append(f"{part} held back is no longer owed")
    if again:
        nxt = _instalment_asking(plan, again, on=on)
        asked = (f"is asked again with instalment {nxt.number}, now "
                 f"{format_money(nxt.amount, plan.currency)} due {format_day(nxt.due_on)}")
        said.append(f"the {money} held back {asked}" if not forgiven
                    else f"the other {format_money(again, plan.currency)} {asked}")
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan,
        invoices=list(plan.invoices.all()), summary=f"{ended}: {', '.join(said)}",
        details={"held": str(back), "forgiven": str(forgiven), "asked_again": str(again),
                 "instalments": [i.number for i, _ in parts], "total": str(plan.total_amount)},
    )
    return forgiven


def _plan_ask_left_out(plan: PaymentPlan, amount: Decimal, *, ended: str, actor, on: dt.date) -> None:
    """A dispute whose part the plan left out ended with `amount` of it owed
    after all: the plan asks for it with its next instalment, not the last,
    as it asks again what was held back (_plan_release_held)."""
    before = plan.total_amount
    nxt = _instalment_asking(plan, amount, on=on)
    plan.total_amount += amount
    plan.save(update_fields=["total_amount"])
    DunningPause.objects.filter(plan=plan, lifted_at__isnull=True).update(
        reason=f"Payment plan of {format_money(plan.total_amount, plan.currency)}")
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan,
        invoices=list(plan.invoices.all()),
        summary=f"{ended}: the {format_money(amount, plan.currency)} left out of the plan while disputed is "
        f"asked with instalment {nxt.number}, now {format_money(nxt.amount, plan.currency)} due "
        f"{format_day(nxt.due_on)}",
        details={"asked": str(amount), "instalment": nxt.number,
                 "before": {"total": str(before)}, "after": {"total": str(plan.total_amount)}},
    )
    _plan_limit_check_again(plan, ended=ended, actor=actor)


def _plan_limit_check_again(plan: PaymentPlan, *, ended: str, actor) -> None:
    """A plan a collector agreed alone now asks more (a dispute it left out
    went against the customer): beyond what a collector may agree, it waits
    for a manager, as it would have had it asked this much when proposed.
    Its pauses stay: the customer pays as agreed meanwhile; a manager's
    rejection lifts them (plan_decide)."""
    if (plan.status != PlanStatus.ACTIVE or plan.decided_by_id is not None
            or plan.proposed_by.has_perm("collections.change_paymentplan")):
        return
    why = plan_waits_because(plan)
    if not why:
        return
    plan.status = PlanStatus.AWAITING_APPROVAL
    plan.save(update_fields=["status"])
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan,
        invoices=list(plan.invoices.all()),
        summary=f"{ended}: the plan now asks {format_money(plan.total_amount, plan.currency)}: {why}, "
        "so it waits for a manager",
        details={"status": plan.status, "total": str(plan.total_amount),
                 "before": {"status": PlanStatus.ACTIVE}, "after": {"status": plan.status}},
    )


def _instalment_asking(plan: PaymentPlan, amount: Decimal, *, on: dt.date) -> Instalment:
    """`amount` added to the plan's next instalment still due, or, none being
    left, a new one HELD_BACK_DAYS after `on`; the plan holds dunning until its
    last instalment (plus grace), as ever."""
    nxt = plan.instalments.filter(status=InstalmentStatus.DUE).order_by("number").first()
    if nxt is None:
        last = plan.instalments.order_by("-number").first()
        nxt = Instalment.objects.create(plan=plan, number=last.number + 1, amount=amount,
                                        due_on=max(on, last.due_on) + dt.timedelta(days=HELD_BACK_DAYS))
    else:
        nxt.amount += amount
        nxt.save(update_fields=["amount"])
    end = plan.instalments.order_by("-due_on").values_list("due_on", flat=True).first()
    DunningPause.objects.filter(plan=plan, lifted_at__isnull=True).update(
        ends_on=end + dt.timedelta(days=plan.grace_days))
    return nxt


def _plan_reduce(plan: PaymentPlan, *, taken_off: Decimal, because: str, actor) -> None:
    """Take `taken_off` off the instalments still due, the last one first (the
    customer deducts a credit from the end of the schedule, and what they
    agreed to pay next stays as agreed); an instalment taken to nothing leaves
    the schedule. Something stays due: the instalments not yet paid add up to
    at least what the plan's invoices still owe, and they owe more than nothing."""
    instalments = list(plan.instalments.order_by("number"))
    before = [[i.number, i.due_on.isoformat(), str(i.amount)] for i in instalments]
    credited = _credited_instalments(plan)
    left = taken_off
    for instalment in reversed(instalments):
        if left == 0 or instalment.status != InstalmentStatus.DUE:
            break
        part = min(left, instalment.amount)
        instalment.amount, left = instalment.amount - part, left - part
        due_on, earlier = credited.get(instalment.number, (instalment.due_on, ZERO))
        credited[instalment.number] = (due_on, earlier + part)
        if instalment.amount:
            instalment.save(update_fields=["amount"])
        else:
            instalment.delete()
    kept = [i for i in instalments if i.amount]
    old_total = plan.total_amount
    plan.total_amount -= taken_off - left
    plan.credited_instalments = _credited_rows(credited)
    plan.save(update_fields=["total_amount", "credited_instalments"])
    # The plan holds dunning until its new last instalment (plus grace), no longer.
    DunningPause.objects.filter(plan=plan, lifted_at__isnull=True).update(
        ends_on=kept[-1].due_on + dt.timedelta(days=plan.grace_days),
        reason=f"Payment plan of {format_money(plan.total_amount, plan.currency)}",
    )
    schedule = schedule_said([(i.due_on, i.amount) for i in kept], plan.currency, on=plan.proposed_on)
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan,
        invoices=list(plan.invoices.all()),
        summary=f"Payment plan reduced from {format_money(old_total, plan.currency)} to "
        f"{format_money(plan.total_amount, plan.currency)} by {because}: {schedule}",
        details={"because": because,
                 "before": {"total": str(old_total), "instalments": before},
                 "after": {"total": str(plan.total_amount),
                           "instalments": [[i.number, i.due_on.isoformat(), str(i.amount)] for i in kept]}},
    )


def _credited_instalments(plan: PaymentPlan) -> dict[int, tuple[dt.date, Decimal]]:
    """What credits took off the end of the plan's schedule: by instalment
    number, its date as agreed and the amount (PaymentPlan.credited_instalments)."""
    return {int(number): (dt.date.fromisoformat(due_on), Decimal(amount))
            for number, due_on, amount in plan.credited_instalments}


def _credited_rows(credited: Mapping[int, tuple[dt.date, Decimal]]) -> list[list]:
    return [[number, due_on.isoformat(), str(amount)]
            for number, (due_on, amount) in sorted(credited.items()) if amount]


def _plan_credited_in_full(plan: PaymentPlan, *, because: str, actor, on: dt.date) -> None:
    """Nothing is left to pay on the plan's invoices: a plan in force is
    completed (its instalments count as paid, as the daily check counts an
    invoice settled however), a proposal is withdrawn with nothing to decide."""
    before = plan.status
    receipts = _Receipts(plan.invoices.all(), since=min(plan.proposed_on, on), after=plan.allocations_before)
    money = format_money(plan.total_amount, plan.currency)
    paid = f" ({format_money(receipts.paid, plan.currency)} paid)" if receipts.paid else ""
    if before == PlanStatus.ACTIVE:
        plan.instalments.filter(status__in=[InstalmentStatus.DUE, InstalmentStatus.HELD]).update(
            status=InstalmentStatus.PAID)
        plan.status = PlanStatus.COMPLETED
        summary = f"Payment plan completed: {because} left nothing to pay{paid}"
    else:
        plan.status = PlanStatus.CANCELLED
        summary = (f"Payment plan of {money} withdrawn before a manager decided: {because} left nothing "
                   f"to pay{paid}")
    plan.paid_amount = receipts.paid
    plan.save(update_fields=["status", "paid_amount"])
    _pauses_lift(DunningPause.objects.filter(plan=plan), actor=actor)
    worklist.items_close(plan=plan, actor=actor)
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, actor=actor, subject=plan,
        invoices=list(plan.invoices.all()), summary=summary,
        details={"because": because, "before": {"status": before}, "after": {"status": plan.status},
                 "paid": str(receipts.paid)},
    )


def _credit_allowed(actor, invoice: Invoice, *, taken_off: Decimal) -> None:
    """Collectors settle small differences themselves; more is a manager's
    decision. The limit counts what every dispute on the invoice has taken off,
    so a large credit cannot be settled as several small ones. The caller holds
    the invoice's lock, so two resolutions at once cannot both slip under it."""
    if actor.has_perm("collections.settle_beyond_credit_limit"):
        return
    rules = CollectionRules.current()
    earlier = (Dispute.objects.filter(invoice=invoice, status=DisputeStatus.RESOLVED)
               .aggregate(total=Sum("taken_off_amount"))["total"] or ZERO)
    if not rules.credit_needs_manager(amount=earlier + taken_off, currency=invoice.currency):
        return
    currency = invoice.currency
    limit = format_money(rules.credit_without_manager_amount, settings.DEFAULT_CURRENCY)
    so_far = f" (with the {format_money(earlier, currency)} earlier disputes took off)" if earlier else ""
    raise ValidationError({"amount": (
        f"Taking {format_money(taken_off, currency)} off this invoice{so_far} is a manager's decision: "
        f"collectors may take off up to {limit} per invoice"
        + ("" if currency == settings.DEFAULT_CURRENCY else f", in {settings.DEFAULT_CURRENCY} only")
        + ". Ask a manager to resolve the dispute, or request an exception."
    )})


@transaction.atomic
def credit_note_record(
    *,
    customer: Customer,
    actor,
    invoice: Invoice,
    amount: Decimal,
    reason: str,
    issued_on: dt.date,
    number: str = "",
) -> CreditNote:
    """A credit note on one invoice (goods returned, a price put right, the
    ERP's note for either): its amount comes off what the invoice has open,
    it goes on the timeline, and the payment plan holding the invoice asks
    for that much less, as a dispute's credit note does. `number` is the
    ERP's; none given, the next of our own series. An invoice under dispute
    gets its credit note by resolving the dispute, which ends it too."""
    if actor is not None:
        require_act_on(actor, customer)
    invoice = _open_invoice_locked(customer, invoice, nothing_open_to="credit")
    if Dispute.objects.filter(invoice=invoice, status=DisputeStatus.OPEN).exists():
        raise ValidationError({"invoice": f"{invoice.number} has an open dispute: give the credit note by "
                                          "resolving the dispute, so that it ends too."})
    if issued_on < invoice.issue_date:
        # A note dated before its invoice would settle the invoice before it
        # existed, and make the payer look earlier than it can have been.
        issued = format_day(invoice.issue_date)
        raise ValidationError({"issued_on": f"{invoice.number} was issued on {issued}: a credit note on it "
                                            "cannot be dated before that."})
    number = _credit_note_terms_check(amount=amount, currency=invoice.currency, reason=reason, number=number)
    if amount > invoice.open_amount:
        most = format_money(invoice.open_amount, invoice.currency)
        raise ValidationError({"amount": f"A credit note on {invoice.number} takes off at most {most}, "
                                         "what is open."})
    if actor is not None:
        _credit_allowed(actor, invoice, taken_off=amount)
    note = _credit_note_created(number, lambda: _credit_note_issue(
        invoice, amount=amount, reason=reason.strip(), on=issued_on, number=number))
    money = format_money(amount, invoice.currency)
    settles = ", which leaves nothing open" if invoice.open_amount == 0 else ""
    event_record(
        customer=customer, kind=EventKind.CREDIT_NOTE, actor=actor, subject=note, invoices=[invoice],
        summary=f"Credit note {note.number} for {money} on {invoice.number}{settles}: {note.reason}",
        details={"number": note.number, "amount": str(amount), "currency": note.currency,
                 "invoice": invoice.number, "issued_on": issued_on.isoformat(), "reason": note.reason,
                 "open_amount": str(invoice.open_amount)},
    )
    if invoice.status == InvoiceStatus.PAID:
        # As after a payment, or a credit set against it: the timeline says so.
        event_record(customer=customer, kind=EventKind.INVOICE_PAID, actor=actor, subject=invoice,
                     **invoice_paid_said(invoice))
    because = f"credit note {note.number} on {invoice.number}"
    _plans_follow_dispute(invoice, taken_off=amount, because=because, ended=f"Credit note {note.number}",
                          actor=actor, on=issued_on)
    # A letter not yet posted that it made moot goes, and a promise its
    # invoices are now settled for is kept, as after a payment.
    letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)
    commitments_check(on=issued_on, customer_ids=[customer.pk], settle_only=True)
    # And the account's figures and segment show what is open now, as of
    # today as the nightly refresh computes them (a note may be dated earlier).
    services.behaviour_refresh_on_commit(customer_ids=[customer.pk])
    return note


def _open_invoice_locked(customer: Customer, invoice: Invoice, *, nothing_open_to: str) -> Invoice:
    """`invoice` of `customer`, locked and read again, refused unless it is
    open. The account's lock first, then the invoice's: the order a payment
    takes, so a payment on it at this moment is either in its open amount or
    refused."""
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    invoice = Invoice.objects.select_for_update().filter(pk=invoice.pk, customer=customer).first()
    if invoice is None:
        raise ValidationError({"invoice": "Choose an invoice of this account."})
    if invoice.status != InvoiceStatus.OPEN:
        state = invoice.get_status_display().lower()
        state = f"{invoice.settled_how()} in full" if invoice.status == InvoiceStatus.PAID else state
        raise ValidationError({"invoice": f"Invoice {invoice.number} is {state}: nothing is open to "
                                          f"{nothing_open_to}."})
    return invoice


def _credit_note_terms_check(*, amount: Decimal, currency: str, reason: str, number: str) -> str:
    """Refuse what no credit note may be; the ERP's number, stripped."""
    if amount <= 0:
        raise ValidationError({"amount": "A credit note is more than zero."})
    places_check(amount, currency, field="amount")
    if not reason.strip():
        raise ValidationError({"reason": "Say what the credit note is for."})
    number = number.strip()
    if hidden := hidden_characters(number):
        raise ValidationError({"number": f"The number {number!r} holds a character no one sees "
                                         f"({', '.join(hidden)}): type it as on the ERP's credit note."})
    if number:
        _credit_note_number_free(number)
    return number


def _credit_note_created(number: str, create: Callable[[], CreditNote]) -> CreditNote:
    """`create()` in a savepoint: another account's note with this number,
    committed since it was looked for, makes the insert fail; rolled back to
    here the transaction goes on, to say so instead of failing."""
    try:
        with transaction.atomic():
            return create()
    except IntegrityError:
        if number:
            _credit_note_number_free(number)
        raise


def _credit_note_number_free(number: str) -> None:
    """Refuse an ERP number a credit note has already, in whatever capitals
    (the database holds it so: credit_note_number_once)."""
    known = CreditNote.objects.filter(number__iexact=number).select_related("invoice").first()
    if known:
        on = f"on {known.invoice.number}, " if known.invoice else ""
        raise ValidationError({"number": f"Credit note {known.number} is recorded already ({on}"
                                         f"{format_money(known.amount, known.currency)} issued on "
                                         f"{format_day(known.issued_on)})."})


@transaction.atomic
def credit_note_on_account(
    *,
    customer: Customer,
    actor,
    currency: str,
    amount: Decimal,
    reason: str,
    issued_on: dt.date,
    number: str = "",
) -> CreditNote:
    """A credit note on no invoice (a volume rebate, goodwill): kept on the
    account, listed on notices as a credit the customer may deduct, until it
    is set against invoices (credit_apply). `number` is the ERP's; none given,
    the next of our own series. Above the collectors' credit limit it is a
    manager's, as a credit on an invoice is."""
    if actor is not None:
        require_act_on(actor, customer)
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    number = _credit_note_terms_check(amount=amount, currency=currency, reason=reason, number=number)
    rules = CollectionRules.current()
    if (actor is not None and not actor.has_perm("collections.settle_beyond_credit_limit")
            and rules.credit_needs_manager(amount=amount, currency=currency)):
        limit = format_money(rules.credit_without_manager_amount, settings.DEFAULT_CURRENCY)
        raise ValidationError({"amount": f"A credit of {format_money(amount, currency)} is a manager's "
                                         f"decision: collectors may give up to {limit}."})
    note = _credit_note_created(number, lambda: CreditNote.objects.create(
        number=number or _our_credit_note_number(issued_on), customer=customer,
        issued_on=issued_on, currency=currency, amount=amount, reason=reason.strip()[:200],
    ))
    event_record(
        customer=customer, kind=EventKind.CREDIT_NOTE, actor=actor, subject=note,
        summary=f"Credit note {note.number} for {format_money(amount, currency)} on account: {note.reason}",
        details={"number": note.number, "amount": str(amount), "currency": currency,
                 "issued_on": issued_on.isoformat(), "reason": note.reason},
    )
    return note


def _credit_note_issue(invoice: Invoice, *, amount: Decimal, reason: str, on: dt.date,
                       number: str = "") -> CreditNote:
    number = number or _our_credit_note_number(on)
    note = CreditNote.objects.create(
        number=number, customer_id=invoice.customer_id, invoice=invoice, issued_on=on,
        currency=invoice.currency, amount=amount, reason=reason[:200],
    )
    Allocation.objects.create(invoice=invoice, credit_note=note, amount=amount, allocated_on=on,
                              applied_on=on)
    _invoice_take_off(invoice, amount, on=on)
    return note


def _our_credit_note_number(on: dt.date) -> str:
    """The next of our own series that no credit note has: an ERP's note may
    have been recorded with a number of its form (CN-2025-00002)."""
    while True:
        number = document_number(f"CN-{on.year}-")
        if not CreditNote.objects.filter(number__iexact=number).exists():
            return number


def document_number(prefix: str, *, digits: int = 5) -> str:
    """The next number of a series, from a row locked until commit (never max()+1)."""
    counter, _ = DocumentCounter.objects.select_for_update().get_or_create(prefix=prefix)
    value = counter.next_value
    DocumentCounter.objects.filter(pk=counter.pk).update(next_value=F("next_value") + 1)
    return f"{prefix}{value:0{digits}d}"


# --- Write-offs --------------------------------------------------------------------


@transaction.atomic
def invoice_write_off(
    *,
    customer: Customer,
    actor,
    invoice: Invoice,
    reason: str,
    on: dt.date,
    amount: Decimal | None = None,
) -> WriteOff:
    """Write off what an invoice still owes as bad debt: a manager's decision,
    recorded with who, when, why and the invoice before and after. Always the
    whole open amount, so the invoice's total stays its allocations plus the
    write-off; taking off part is a credit note's job. `amount`: what the
    manager was shown and confirmed; a payment or credit since changes what
    is open, and the write-off is then refused rather than take another sum.

    An invoice under open dispute, or held by an open promise or a payment
    plan, is refused: each of those still asks the customer for the money,
    and ends with a record of its own (resolved, withdrawn, ended) first.
    The late fees and interest charged for that debt alone go with it (see
    write_off_charges), waived in the same decision and listed on its
    timeline entry; `charges_waived` on the write-off returned names them.
    Afterwards, as after a credit note: letters it made moot leave the print
    queue, commitments are checked and the account's figures recomputed; the
    invoice is no longer open, so dunning no longer lists it."""
    require_act_on(actor, customer)
    if not actor.has_perm("collections.write_off_invoice"):
        raise PermissionDenied("Only a manager may write off an invoice.")
    invoice = _open_invoice_locked(customer, invoice, nothing_open_to="write off")
    _write_off_not_pursued(invoice)
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": f"Say why what {invoice.number} still owes is written off."})
    if on > timezone.localdate():
        raise ValidationError({"written_off_on": "A write-off cannot be dated after today."})
    last_allocated = invoice.allocations.aggregate(last=Max("allocated_on"))["last"]
    earliest = max(invoice.issue_date, last_allocated or invoice.issue_date)
    if on < earliest:
        since = (f"was last paid or credited on {format_day(last_allocated)}" if last_allocated == earliest
                 else f"was issued on {format_day(invoice.issue_date)}")
        raise ValidationError({"written_off_on": f"{invoice.number} {since}: what it still owes is written "
                                                 "off on that day or later."})
    money = format_money(invoice.open_amount, invoice.currency)
    if amount is not None and amount != invoice.open_amount:
        raise ValidationError({"amount": (
            f"{invoice.number} has {money} open now, not {format_money(amount, invoice.currency)}: a "
            f"write-off takes all that is open (to take off part, record a credit note). Confirm the "
            f"write-off of {money}."
        )})
    before = {"status": invoice.status, "open_amount": str(invoice.open_amount)}
    write_off = WriteOff.objects.create(
        invoice=invoice, customer=customer, currency=invoice.currency, amount=invoice.open_amount,
        reason=reason[:WriteOff._meta.get_field("reason").max_length], written_off_on=on, decided_by=actor,
    )
    invoice.open_amount, invoice.status, invoice.settled_on = ZERO, InvoiceStatus.WRITTEN_OFF, on
    invoice.save(update_fields=["open_amount", "status", "settled_on"])
    # Locked before the charges, in the order a manager's decision locks the
    # request and then its charges: one deciding at this moment is waited for,
    # and its request is then no longer pending.
    waivers = list(ExceptionRequest.objects.select_for_update()
                   .filter(customer=customer, kind=ExceptionKind.FEE_WAIVER, status=ExceptionStatus.PENDING)
                   .order_by("pk"))
    # Locked, as a payment or a manager's waiver locks them: one at this moment
    # waits, then finds them waived rather than paying or waiving them again.
    charges = list(LateCharge.objects.select_for_update()
                   .filter(pk__in=write_off_charges(invoice).values("pk")).order_by("created_at", "pk"))
    # Read before the charges are waived: afterwards every waiver covers nothing of them.
    waived = {c.pk for c in charges}
    moot = [asked for asked in waivers
            if (covered := set(charges_waivable(asked).values_list("pk", flat=True))) and covered <= waived]
    note = f"Written off with {invoice.number}: {write_off.reason}"
    # What is waived is what was left to pay of each; a part already paid stays paid.
    LateCharge.objects.filter(pk__in=[c.pk for c in charges]).update(
        waived_at=timezone.now(), waived_by=actor,
        waiver_note=note[:LateCharge._meta.get_field("waiver_note").max_length],
    )
    with_charges = f", and {charges_named(charges)} on it" if charges else ""
    event_record(
        customer=customer, kind=EventKind.WRITE_OFF, actor=actor, subject=write_off, invoices=[invoice],
        summary=f"{money} still owed on {invoice.number} written off as bad debt by {person_name(actor)}"
                f"{with_charges}: {write_off.reason}",
        details={"invoice": invoice.number, "amount": str(write_off.amount), "currency": write_off.currency,
                 "written_off_on": on.isoformat(), "reason": write_off.reason, "before": before,
                 "after": {"status": invoice.status, "open_amount": str(invoice.open_amount),
                           "settled_on": on.isoformat()},
                 "charges_waived": [
                     {"charge": c.pk, "kind": c.kind, "amount": str(c.amount), "currency": c.currency,
                      "basis": c.basis, "invoice": c.invoice_id, "action": c.action_id,
                      "waived_amount": str(c.open_amount)}
                     for c in charges
                 ]},
    )
    write_off.charges_waived = charges
    _fee_waivers_close(moot, actor=actor, why=(f"the late fees and interest asked about went with the "
                                               f"write-off of {invoice.number} on {format_day(on)}"))
    # As after a credit note: a letter not yet posted that asked only for this
    # goes, commitments are checked, and the account's figures show what is open now.
    letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)
    commitments_check(on=on, customer_ids=[customer.pk], settle_only=True)
    services.behaviour_refresh_on_commit(customer_ids=[customer.pk])
    return write_off


def _fee_waivers_close(requests: list[ExceptionRequest], *, actor, why: str, note: str = "",
                       tell: str = "") -> None:
    """Fee waivers whose every charge is no longer owed (a write-off of
    their invoice waived them, or the customer paid them): left pending, they
    would stay in the manager's queue and, approved, waive nothing. What they
    asked for needs doing no more, so they are approved in `actor`'s name with
    a note that says `why` (and the manager's own `note`), on the timeline and
    the asker's worklist as any decision is, `tell` saying what is left to do
    there. The caller holds their locks."""
    said = f"Nothing left to waive: {why}." + (f" {note}" if note else "")
    for asked in requests:
        asked.status, asked.decided_by, asked.decided_at = ExceptionStatus.APPROVED, actor, timezone.now()
        asked.decision_note = said[:ExceptionRequest._meta.get_field("decision_note").max_length]
        asked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        asked.status_before = ExceptionStatus.PENDING
        _decision_record(asked, actor, kind=EventKind.EXCEPTION, asker=asked.requested_by,
                         invoices=[asked.invoice] if asked.invoice else [],
                         what=f"Exception ({_kind_said(asked)})", tell=(lambda: tell) if tell else None)


def _notice_fees_going_with(invoice: Invoice) -> Q:
    """The charges that go when `invoice` stops being owed (written off,
    cancelled in the ERP): the interest charged on it, and the fee of a notice
    none of whose other invoices is still owed, each written off or cancelled
    (in whichever order). A notice that also asked for an invoice paid,
    credited or still open keeps its fee: the customer was late with that one
    too, and a fee is not split."""
    listed = DunningActionInvoice.objects.filter(action=OuterRef("action"), invoice=invoice)
    also_owed = (DunningActionInvoice.objects.filter(action=OuterRef("action")).exclude(invoice=invoice)
                 .exclude(invoice__status__in=[InvoiceStatus.WRITTEN_OFF, InvoiceStatus.CANCELLED]))
    return Q(invoice=invoice) | Q(Exists(listed), ~Exists(also_owed), invoice__isnull=True)


def write_off_charges(invoice: Invoice):
    """The late fees and interest still owed that go with writing off what
    `invoice` owes (_notice_fees_going_with): the fee was not charged for the
    bad debt alone while the notice asked for an invoice still owed."""
    return (LateCharge.objects.filter(customer=invoice.customer_id).standing()
            .filter(_notice_fees_going_with(invoice)).order_by("created_at", "pk"))


def charges_named(charges) -> str:
    """ "EUR 24.50 of late fees and interest": what the charges leave to pay."""
    kinds = {charge.kind for charge in charges}
    what = ("late fees and interest" if len(kinds) > 1
            else "late fees" if ChargeKind.LATE_FEE in kinds else "interest")
    return f"{format_amounts(by_currency((c.currency, c.open_amount) for c in charges))} of {what}"


def _write_off_not_pursued(invoice: Invoice) -> None:
    """Refuse to write off an invoice something still pursues (see write_off_pursued_said)."""
    if pursued := write_off_pursued_said(invoice):
        raise ValidationError({"invoice": pursued})


def write_off_pursued_said(invoice: Invoice) -> str:
    """Why `invoice` is not written off now, or "": an open dispute, an open
    promise or a plan waiting or in force asks the customer for it, and
    would be left asking for money no longer owed."""
    if Dispute.objects.filter(invoice=invoice, status=DisputeStatus.OPEN).exists():
        return f"{invoice.number} has an open dispute: resolve it first, then write off what it leaves open."
    if invoice.promises.filter(status=PromiseStatus.OPEN).exists():
        return (f"{invoice.number} is covered by an open promise to pay: withdraw the promise first, then "
                "write off what is open.")
    if invoice.payment_plans.filter(status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL]).exists():
        return (f"{invoice.number} is in a payment plan: end or withdraw the plan first, then write off what "
                "is open.")
    return ""


# --- Cancellations from the ERP ----------------------------------------------------


def invoice_cancel_refusal(invoice: Invoice, *, on: dt.date | None = None) -> str:
    """Why the ERP may not cancel `invoice` as it stands, or "": money set
    against it (paid or credited, in part or in full) stays the customer's
    money for that debt, so the ERP issues a credit note instead; a
    written-off debt is a manager's decision already on the books. Dated
    `on`, nor may it be cancelled from a day a payment reversed since still
    stood against it, or before: the figures of those days (numbers._ledger)
    would hold money against an invoice never owed."""
    if invoice.status == InvoiceStatus.CANCELLED:
        return f"invoice {invoice.number} is cancelled already" + (
            f", on {format_day(invoice.cancelled_on)}" if invoice.cancelled_on else "")
    if invoice.status == InvoiceStatus.WRITTEN_OFF:
        return (f"invoice {invoice.number} was written off as bad debt: a written-off invoice is not "
                "cancelled (ask a manager to look at the write-off)")
    if invoice.status == InvoiceStatus.PAID or invoice.allocations.exists():
        how = invoice.settled_how() if invoice.allocations.exists() else "paid"
        part = "in full" if invoice.status == InvoiceStatus.PAID else "in part"
        return (f"invoice {invoice.number} is {how} {part}: an invoice with money set against it is not "
                "cancelled; issue a credit note for it instead")
    if on is not None:
        # One applied and reversed on the same day never stood against it.
        reversed_on = (Allocation.ledger.filter(invoice=invoice, reversal__reversed_on__gt=on)
                       .filter(reversal__reversed_on__gt=F("applied_on"))
                       .order_by("-reversal__reversed_on").values_list("reversal__reversed_on", flat=True)
                       .first())
        if reversed_on:
            until = format_day(reversed_on)
            return (f"invoice {invoice.number} had money set against it until {until}, when the payment was "
                    "reversed: an invoice is not cancelled on a day money stood against it, nor before; date "
                    f"the cancellation {until} or later, or issue a credit note for it instead")
    # Paid in any part, even waived since: what the customer paid for being
    # late with it stays paid for that debt, as money set against the invoice does.
    paid = Allocation.objects.filter(charge__in=invoice_cancel_charges(invoice, owed_only=False))
    if paid.exists():
        amounts = format_amounts(by_currency(paid.values_list("charge__currency", "amount")))
        return (f"invoice {invoice.number} has late fees or interest charged on it of which the customer "
                f"paid {amounts}: money set against what was charged for it is not cancelled with it; "
                "issue a credit note for it instead")
    return ""


def invoice_cancel_charges(invoice: Invoice, *, owed_only: bool = True):
    """The late fees and interest charged for being late with `invoice`,
    which go when the ERP cancels it (_notice_fees_going_with): the interest
    charged on it, and the fee of a notice none of whose other invoices is
    still owed (each cancelled too, or written off). Those still owed; with
    `owed_only` False, also those paid off or waived (not those cancelled with
    their letter)."""
    charges = LateCharge.objects.filter(customer=invoice.customer_id)
    charges = charges.standing() if owed_only else charges.filter(cancelled_at__isnull=True)
    return charges.filter(_notice_fees_going_with(invoice)).order_by("created_at", "pk")


def invoice_cancel(*, invoice: Invoice, actor, on: dt.date, reason: str) -> Invoice:
    """The ERP cancelled `invoice` on `on` (raised in error, replaced), for
    `reason`: it owes nothing from that day, and nobody chases it any more.
    Refused, changing nothing, as invoice_cancel_refusal says, or dated after
    today or before its issue. The caller (the import) holds its account's
    lock, as a payment takes it before its invoices.

    The invoice leaves what is open (the worklist, statements, Coming up,
    dunning: a step planned and not yet carried out no longer lists it at
    delivery, and a letter not yet posted that asked only for it is
    withdrawn); its open dispute closes with the cancellation as its reason;
    a payment plan holding it asks for its amount less, as after a credit
    note, and a promise left with nothing open is kept. The late fees and
    interest charged for being late with it (invoice_cancel_charges) are
    cancelled with it, never having been owed, and listed on its timeline
    entry; one of them paid in any part refuses the cancellation, as money
    set against the invoice does. Its day stays: the
    receivables of a day before it still count it (numbers._ledger). On the
    timeline with who, why, and the invoice before and after."""
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=invoice.customer_id).first()
        invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
        customer = invoice.customer
        if refusal := invoice_cancel_refusal(invoice, on=on):
            raise ValidationError({"invoice": refusal[0].upper() + refusal[1:] + "."})
        reason = reason.strip()
        if not reason:
            raise ValidationError({"reason": f"Say why {invoice.number} is cancelled."})
        if on > timezone.localdate():
            raise ValidationError({"cancelled_on": "A cancellation cannot be dated after today."})
        if on < invoice.issue_date:
            raise ValidationError({"cancelled_on": f"{invoice.number} was issued on "
                                                   f"{format_day(invoice.issue_date)}: it is cancelled on "
                                                   "that day or later."})
        before = {"status": invoice.status, "open_amount": str(invoice.open_amount)}
        invoice.status, invoice.open_amount, invoice.cancelled_on = InvoiceStatus.CANCELLED, ZERO, on
        invoice.save(update_fields=["status", "open_amount", "cancelled_on"])
        ended = f"Invoice {invoice.number} cancelled in the ERP"
        # Never owed, as the invoice never was: cancelled (not waived, which
        # forgives a debt), kept with why. Locked, as a payment or a waiver
        # locks them: one at this moment waits, then finds them cancelled. None
        # of them is paid in any part (invoice_cancel_refusal, under the
        # account's lock that a payment takes first).
        charges = list(LateCharge.objects.select_for_update().order_by("created_at", "pk")
                       .filter(pk__in=invoice_cancel_charges(invoice).values("pk")))
        LateCharge.objects.filter(pk__in=[c.pk for c in charges]).update(
            cancelled_at=timezone.now(), cancelled_by=actor,
            cancel_reason=f"{ended} on {format_day(on)}: {reason}"[
                :LateCharge._meta.get_field("cancel_reason").max_length],
        )
        by = f" by {person_name(actor)}" if actor is not None else ""
        with_charges = f", and {charges_named(charges)} on it" if charges else ""
        event_record(
            customer=customer, kind=EventKind.INVOICE_CHANGED, actor=actor, subject=invoice,
            summary=f"Invoice {invoice.number} for {format_money(invoice.total_amount, invoice.currency)} "
                    f"cancelled in the ERP on {format_day(on)}{by}{with_charges}: {reason}",
            details={"number": invoice.number, "cancelled": True, "cancelled_on": on.isoformat(),
                     "reason": reason, "before": before,
                     "after": {"status": invoice.status, "open_amount": str(invoice.open_amount)},
                     "cancelled_charges": [
                         {"charge": c.pk, "kind": c.kind, "amount": str(c.amount), "currency": c.currency,
                          "basis": c.basis, "invoice": c.invoice_id, "action": c.action_id}
                         for c in charges
                     ]},
        )
        dispute = (Dispute.objects.select_for_update()
                   .filter(invoice=invoice, status=DisputeStatus.OPEN).first())
        if dispute is not None:
            note = f"{ended} on {format_day(on)}: {reason}"
            dispute.status, dispute.outcome = DisputeStatus.RESOLVED, DisputeOutcome.INVOICE_CANCELLED
            dispute.resolution_note = note[:Dispute._meta.get_field("resolution_note").max_length]
            # Closed today, when it is known to be moot, and never before it was opened.
            dispute.resolved_by, dispute.resolved_on = actor, max(timezone.localdate(), dispute.opened_on)
            dispute.save()
            _pauses_lift(DunningPause.objects.filter(dispute=dispute), actor=actor)
            worklist.items_close(dispute=dispute, actor=actor)
            event_record(
                customer=customer, kind=EventKind.DISPUTE, actor=actor, subject=dispute, invoices=[invoice],
                summary=f"Dispute on {invoice.number} closed: {dispute.resolution_note}",
                details={"outcome": dispute.outcome, "note": dispute.resolution_note, "before": before,
                         "after": {"status": invoice.status, "open_amount": str(invoice.open_amount)}},
            )
        # A promise for cancelled invoices alone asked for money never owed:
        # withdrawn, as a promise recorded wrongly is, kept by nobody. One with
        # other invoices is judged on them (commitments_check, below, reads a
        # cancelled invoice as settled): kept once they are paid. Ended today,
        # when it is known, and never before it was made.
        for promise in (Promise.objects.select_for_update().select_related("customer")
                        .filter(invoices=invoice, status=PromiseStatus.OPEN).order_by("pk")):
            if not promise.invoices.exclude(status=InvoiceStatus.CANCELLED).exists():
                said = (f"Promise of {format_money(promise.amount, promise.currency)} by "
                        f"{format_day(promise.promised_on)}")
                _promise_close(promise, PromiseStatus.CANCELLED, paid=promise.paid_amount,
                               on=max(timezone.localdate(), promise.made_on), actor=actor,
                               summary=f"{said} withdrawn: {ended}")
        _plans_follow_dispute(invoice, taken_off=invoice.total_amount, because=f"the cancellation of "
                              f"{invoice.number}", ended=ended, actor=actor, on=on, dispute=dispute)
        letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)
        commitments_check(on=timezone.localdate(), customer_ids=[customer.pk], settle_only=True)
        services.behaviour_refresh_on_commit(customer_ids=[customer.pk])
    return invoice


# --- Write-offs a collector proposes ------------------------------------------------


@dataclass(frozen=True)
class WriteOffLineNow:
    """An invoice a write-off request names, as it stands now: what it owes
    (nothing once settled), whether it can be written off, and, where it
    changed since the request was made, what changed, in words a manager
    reads before confirming (empty when it is as asked)."""

    line: WriteOffLine
    invoice: Invoice
    owed_amount: Decimal
    writable: bool
    changed: str

    @property
    def as_asked(self) -> bool:
        return self.writable and not self.changed


def write_off_lines_now(request: ExceptionRequest, *, lock: bool = False) -> list[WriteOffLineNow]:
    """The invoices a write-off request names, each as it stands now (see
    WriteOffLineNow); with `lock`, the invoices locked, as a write-off locks
    them, so that nothing pays them between reading and deciding."""
    lines = list(request.write_off_lines.order_by("pk"))
    invoices = Invoice.objects.filter(pk__in=[line.invoice_id for line in lines]).select_related("write_off")
    if lock:
        invoices = invoices.select_for_update(of=("self",))
    by_pk = {invoice.pk: invoice for invoice in invoices.order_by("pk")}
    return [_write_off_line_now(line, by_pk[line.invoice_id]) for line in lines]


def _write_off_line_now(line: WriteOffLine, invoice: Invoice) -> WriteOffLineNow:
    asked = format_money(line.asked_amount, line.currency)
    if invoice.status != InvoiceStatus.OPEN:
        if invoice.status == InvoiceStatus.WRITTEN_OFF:
            done = invoice.write_off
            why = (f"{invoice.number} was written off meanwhile, on {format_day(done.written_off_on)} by "
                   f"{person_name(done.decided_by)}")
        elif invoice.status == InvoiceStatus.PAID:
            why = (f"{invoice.number} was paid or credited in full meanwhile, on "
                   f"{format_day(invoice.settled_on)}")
        else:
            why = f"{invoice.number} is {invoice.get_status_display().lower()}"
        return WriteOffLineNow(line, invoice, ZERO, False, f"{why}: nothing of it is left to write off")
    owes = format_money(invoice.open_amount, invoice.currency)
    if pursued := write_off_pursued_said(invoice):
        return WriteOffLineNow(line, invoice, invoice.open_amount, False, pursued.rstrip("."))
    if invoice.open_amount < line.asked_amount:
        return WriteOffLineNow(line, invoice, invoice.open_amount, True,
                               f"{invoice.number} was paid or credited in part meanwhile: it owes {owes} "
                               f"now, {asked} when asked")
    if invoice.open_amount > line.asked_amount:
        return WriteOffLineNow(line, invoice, invoice.open_amount, True,
                               f"{invoice.number} owes {owes} now, more than the {asked} asked")
    return WriteOffLineNow(line, invoice, invoice.open_amount, True, "")


def _write_off_proposed(customer: Customer, invoices: Iterable[Invoice]) -> list[Invoice]:
    """The invoices a write-off request may name: open ones of the account,
    locked, that nothing else pursues and no other write-off waiting names
    (approving both would write it off twice)."""
    if not list(invoices):
        raise ValidationError({"invoices": "Tick the invoices to write off."})
    chosen = _open_invoices_of(customer, invoices, field="invoices")
    if pursued := [said for invoice in chosen if (said := write_off_pursued_said(invoice))]:
        raise ValidationError({"invoices": pursued})
    waiting = (WriteOffLine.objects.filter(invoice__in=chosen, request__status=ExceptionStatus.PENDING)
               .select_related("invoice", "request").order_by("pk").first())
    if waiting is not None:
        raise ValidationError({"invoices": (
            f"{waiting.invoice.number} is in a write-off already waiting for a manager, asked on "
            f"{format_day(waiting.request.requested_on)}: a manager decides it first."
        )})
    return chosen


def _write_off_approved(request: ExceptionRequest, *, manager, confirmed: Mapping[int, Decimal] | None,
                        on: dt.date) -> tuple[list[WriteOffLineNow], list[WriteOffLineNow]]:
    """Check what approving a write-off request writes off: `confirmed`, by
    invoice id, the amount of each the manager was shown and confirmed
    (None: every invoice, at what it owed when asked). The invoices to write
    off and those left, or a ValidationError saying which invoice changed
    since it was asked, and how, with nothing written off."""
    if not manager.has_perm("collections.write_off_invoice"):
        raise ValidationError("Only a manager who may write off invoices approves a write-off: ask one who "
                              "may, or reject the request.")
    now = write_off_lines_now(request, lock=True)
    if confirmed is None:
        if changed := [line.changed for line in now if line.changed]:
            raise ValidationError(f"Since the write-off was asked: {'; '.join(changed)}. Nothing was written "
                                  "off: confirm what to write off now, or reject the request.")
        confirmed = {line.invoice.pk: line.line.asked_amount for line in now}
    if set(confirmed) - {line.invoice.pk for line in now}:
        raise ValidationError({"write_off": "Only the invoices the request names are written off with it."})
    if not confirmed:
        raise ValidationError({"write_off": "Tick the invoices to write off, or reject the request."})
    if refused := [line.changed for line in now if line.invoice.pk in confirmed and not line.writable]:
        raise ValidationError({"write_off": [f"{why}. Nothing was written off: untick it."
                                             for why in refused]})
    for line in now:
        if line.invoice.pk in confirmed and confirmed[line.invoice.pk] != line.owed_amount:
            owes = format_money(line.owed_amount, line.invoice.currency)
            seen = format_money(confirmed[line.invoice.pk], line.invoice.currency)
            raise ValidationError({"write_off": (
                f"{line.invoice.number} owes {owes} now, not the {seen} confirmed (paid or credited "
                f"meanwhile). Nothing was written off: confirm the write-off of {owes}, or untick it."
            )})
    return ([line for line in now if line.invoice.pk in confirmed],
            [line for line in now if line.invoice.pk not in confirmed])


# --- Pauses and exceptions --------------------------------------------------------


@transaction.atomic
def pause_set(
    *, customer: Customer, actor, ends_on: dt.date, reason: str, on: dt.date, invoice: Invoice | None = None
) -> DunningPause | ExceptionRequest:
    """Pause dunning (the account, or one invoice) until `ends_on`. Beyond the
    collector's limit the pause becomes a request in the managers' queue."""
    require_act_on(actor, customer)
    if invoice is not None:
        (invoice,) = _open_invoices_of(customer, [invoice], field="invoice")
    if not reason.strip():
        raise ValidationError({"reason": "Say why dunning should wait."})
    if ends_on <= on:
        raise ValidationError({"ends_on": "A pause ends after today."})
    rules = CollectionRules.current()
    # A hold renewed before it ends (or the day after) counts from the first
    # one's start: the limit is on days held in a row, not per request. So
    # does one lifted today or yesterday and set again, and a hold on an
    # invoice the whole account's hold covers (or the other way round).
    yesterday = on - dt.timedelta(days=1)
    covering = Q() if invoice is None else Q(invoice=invoice) | Q(invoice__isnull=True)
    held_since = (
        DunningPause.objects.filter(covering, customer=customer, kind=PauseKind.MANUAL_HOLD,
                                    starts_on__lte=on, ends_on__gte=yesterday)
        .filter(Q(lifted_at__isnull=True) | Q(lifted_at__date__gte=yesterday))
        .aggregate(since=Min("starts_on"))["since"]
    )
    start = min(held_since or on, on)
    days = (ends_on - start).days
    if _beyond_collector_limit(actor, days=days, rules=rules):
        renewed = f", with the hold in force since {format_day(start, year=False)}" if start < on else ""
        return exception_request(
            customer=customer, actor=actor, kind=ExceptionKind.PAUSE, invoice=invoice, on=on,
            pause_until=ends_on,
            reason=f"{reason.strip()} (pause of {days} days{renewed}; collectors may pause "
            f"{rules.max_pause_days})",
        )
    pause = DunningPause.objects.create(
        customer=customer, invoice=invoice, kind=PauseKind.MANUAL_HOLD, owner=actor,
        reason=reason.strip(), starts_on=on, ends_on=ends_on,
    )
    what = f"invoice {invoice.number}" if invoice else "the whole account"
    event_record(
        customer=customer, kind=EventKind.PAUSE, actor=actor, subject=pause,
        invoices=[invoice] if invoice else [],
        summary=f"Dunning paused for {what} until {format_day(ends_on)}: {reason.strip()}",
        details={"ends_on": ends_on.isoformat(), "reason": reason.strip(),
                 "invoice": invoice.number if invoice else None},
    )
    return pause


def _beyond_collector_limit(actor, *, days: int, rules: CollectionRules) -> bool:
    """Holding dunning this many days is a manager's decision for this actor."""
    return days > rules.max_pause_days and not actor.has_perm("customers.act_on_any_customer")


def pauses_liftable(actor, pauses: Iterable[DunningPause]) -> tuple[list[DunningPause], list[DunningPause]]:
    """Of `pauses` (in force), those "Resume dunning" lifts for `actor`, and the
    manual holds it leaves because they are a manager's to lift: a hold
    longer than collectors may set was a manager's decision (the same rule as
    pause_set's exception request), and so is an approved exception."""
    if actor.has_perm("collections.change_exceptionrequest"):
        return [p for p in pauses if p.kind in (PauseKind.MANUAL_HOLD, PauseKind.EXCEPTION)], []
    holds = [p for p in pauses if p.kind == PauseKind.MANUAL_HOLD]
    if not holds:
        return [], []
    rules = CollectionRules.current()
    beyond = [p for p in holds
              if _beyond_collector_limit(actor, days=(p.ends_on - p.starts_on).days, rules=rules)]
    return [p for p in holds if p not in beyond], beyond


@transaction.atomic
def pause_resume(*, customer: Customer, actor, on: dt.date) -> int:
    """Lift the manual holds and approved exceptions in force; disputes,
    promises and plans keep theirs (they end with what they stand for)."""
    require_act_on(actor, customer)
    pauses, beyond = pauses_liftable(actor, DunningPause.objects.active(on=on).filter(customer=customer)
                                     .select_related("invoice", "owner", "exception")
                                     .select_for_update(of=("self",)))
    if beyond and not pauses:
        raise ValidationError(
            f"The hold until {format_day(beyond[0].ends_on)} is longer than collectors may set "
            f"({CollectionRules.current().max_pause_days} days): a manager lifts it."
        )
    if not pauses:
        raise ValidationError("No manual pause is in force on this account.")
    lifted = _pauses_lift(DunningPause.objects.filter(pk__in=[p.pk for p in pauses]), actor=actor)
    event_record(
        customer=customer, kind=EventKind.PAUSE, actor=actor,
        invoices=[p.invoice for p in pauses if p.invoice],
        # Each named as the Dunning card named it while it held (held_said).
        summary=f"Dunning resumed by {person_name(actor)}: "
        + "; ".join(f"{p.held_said} until {format_day(p.ends_on)} lifted" for p in pauses),
        details={"lifted": [
            {"pause": p.pk, "kind": p.kind, "invoice": p.invoice.number if p.invoice else None,
             "ends_on": p.ends_on.isoformat(), "owner": p.owner.get_username()}
            for p in pauses
        ]},
    )
    return lifted


# Exceptions that hold dunning until a date once approved, and what a request
# without that date is told.
DATED_EXCEPTIONS = {
    ExceptionKind.PAUSE: "A pause needs an end after today.",
    ExceptionKind.EXTENDED_TERMS: "Extended terms need the new day to pay by, after today.",
}


# A pause or extended terms hold dunning for a year at most. A mistyped year
# (2030 for 2026) would otherwise hold it for years, and the customer would be
# told so; a longer hold than a year is a write-off or a plan, not an exception.
EXCEPTION_MONTHS_AT_MOST = 12


def _exception_end_check(*, customer: Customer, kind: str, until: dt.date, invoice: Invoice | None,
                         on: dt.date) -> None:
    """The end asked for a pause or extended terms: within a year of `on`,
    and for extended terms later than the day their invoice falls due
    already (an earlier one would shorten its terms, not extend them); for
    the whole account, later than the day its first open invoice falls due
    (until then, every invoice has as long by its own terms)."""
    if until > add_months(on, EXCEPTION_MONTHS_AT_MOST):
        raise ValidationError({"pause_until": f"{format_day(until)} is more than a year from today: an "
                                              "exception holds dunning for a year at most (check the year)."})
    if kind != ExceptionKind.EXTENDED_TERMS:
        return
    if invoice is not None and until <= invoice.due_date:
        raise ValidationError({"pause_until": (
            f"{invoice.number} falls due on {format_day(invoice.due_date)}: extended terms give a later day "
            "to pay by, not an earlier one."
        )})
    if invoice is None:
        first = _first_open_invoice(customer.pk)
        if first is None:
            raise ValidationError({"kind": f"{customer.name} has no open invoice: extended terms would give "
                                           "nothing more time to pay."})
        if until <= first.due_date:
            raise ValidationError({"pause_until": (
                f"{first.number}, the first of the account's open invoices to fall due, falls due on "
                f"{format_day(first.due_date)}: extended terms until {format_day(until)} give no invoice "
                "more time to pay. Choose a later day."
            )})


def _first_open_invoice(customer_id: int) -> Invoice | None:
    return Invoice.objects.open().filter(customer=customer_id).order_by("due_date", "pk").first()


def extended_terms_cover(request: ExceptionRequest, *, on: dt.date, until: dt.date | None = None
                         ) -> tuple[list[Invoice], list[Invoice], list[Invoice]]:
    """For extended terms on the whole account, until `until` (the day
    asked, by default), granted on `on` (or on the day they were, once
    approved): the open invoices they give more time to pay, as dunning will
    hold them (DunningPause.holds: owed on that day, falling due before
    `until`); those they do not because they fall due on it or after (their
    own terms give them as long); and those issued after that day, which
    were never asked about. Due date order."""
    granted = (request.pauses.filter(invoice__isnull=True).values_list("starts_on", "ends_on").first()
               if request.status == ExceptionStatus.APPROVED else None)
    starts_on, ends_on = granted or (on, until or request.pause_until)
    # The pause approving writes (or wrote): what it holds is the pause's rule.
    terms = DunningPause(customer_id=request.customer_id, kind=PauseKind.EXCEPTION, exception=request,
                         starts_on=starts_on, ends_on=ends_on)
    invoices = list(Invoice.objects.open().filter(customer=request.customer_id).order_by("due_date", "pk"))
    issued_since = [i for i in invoices if i.issue_date > terms.starts_on]
    return ([i for i in invoices if terms.holds(i)],
            [i for i in invoices if i.due_date >= terms.ends_on and i not in issued_since], issued_since)


def extended_terms_cover_said(covered: list[Invoice], later: list[Invoice], issued_since: list[Invoice] = (),
                              *, due: bool = False) -> str:
    """"gives more time to pay for INV-1 and INV-2; not for INV-3, which
    falls due on 30 Sep 2025, after that day; nor for INV-4, issued on
    9 Aug 2025, after they take effect." (`due`: each covered one with its
    due date)."""
    def named(invoice: Invoice) -> str:
        return f"{invoice.number} (due {format_day(invoice.due_date)})" if due else invoice.number

    def joined(names: list[str]) -> str:
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    if not covered:  # paid since it was asked, or every one falls due after that day
        return "gives no open invoice more time to pay."
    said = f"gives more time to pay for {joined([named(i) for i in covered])}"
    if later:
        falls = "falls" if len(later) == 1 else "fall"
        days = joined([format_day(i.due_date) for i in later])
        said += f"; not for {joined([i.number for i in later])}, which {falls} due on {days}, after that day"
    if issued_since:
        days = joined([format_day(i.issue_date) for i in issued_since])
        said += (f"; {'nor' if later else 'not'} for {joined([i.number for i in issued_since])}, issued on "
                 f"{days}, after they take effect")
    return said + "."


def exception_earliest_end(request: ExceptionRequest, *, on: dt.date) -> tuple[dt.date, Invoice | None]:
    """The earliest end a manager may grant a dated exception on `on`, and
    the invoice that sets it: today (None), or for extended terms not yet
    due, the day after their invoice, or the account's first open invoice,
    falls due (granted until then, they would extend nothing)."""
    if request.kind != ExceptionKind.EXTENDED_TERMS:
        return on, None
    invoice = request.invoice if request.invoice_id else _first_open_invoice(request.customer_id)
    if invoice is None or invoice.due_date < on:
        return on, None
    return invoice.due_date + dt.timedelta(days=1), invoice


def exceptions_lapsed(*, on: dt.date) -> Q:
    """For an ExceptionRequest query: a pause or extended terms still waiting
    for a manager on `on` whose day has passed. Approved, it would hold
    nothing; rejected, it would tell the collector nothing the date does not.
    It has lapsed: listed as such, not decided, and no bar to asking again."""
    return Q(status=ExceptionStatus.PENDING, kind__in=list(DATED_EXCEPTIONS), pause_until__lt=on)


# Days the approvals and the account page list a request that lapsed
# undecided, counted from the day it asked for: long enough for a manager
# back from a fortnight away (and the collector who asked) to see what went
# by, short enough that the list does not grow without end.
LAPSED_LISTED_DAYS = 30


def exceptions_asked(*, on: dt.date):
    """The requests waiting for a manager on `on`, and those that lapsed
    undecided within LAPSED_LISTED_DAYS, recorded as lapsed or not yet
    (exceptions_lapsed), each with `lapsed`: what the approvals and the
    account page list, the lapsed ones apart and not to be decided."""
    listed = [ExceptionStatus.PENDING, ExceptionStatus.LAPSED]
    return (
        ExceptionRequest.objects.filter(status__in=listed)
        .exclude(kind__in=list(DATED_EXCEPTIONS), pause_until__lt=on - dt.timedelta(days=LAPSED_LISTED_DAYS))
        # A write-off that closed undecided (every invoice settled another way), for as long.
        .exclude(kind=ExceptionKind.WRITE_OFF, status=ExceptionStatus.LAPSED,
                 decided_at__lt=timezone.now() - dt.timedelta(days=LAPSED_LISTED_DAYS))
        .annotate(lapsed=Case(When(Q(status=ExceptionStatus.LAPSED) | exceptions_lapsed(on=on), then=True),
                              default=False))
    )


def exceptions_lapse(*, on: dt.date) -> int:
    """Record as lapsed the requests still waiting for a manager on `on`
    whose day has passed (exceptions_lapsed), each on its account's timeline
    and on the worklist of the collector who asked: left pending, they would
    wait for a decision nobody may take, and the collector would never hear
    that nothing was granted. Daily; few at a time. Returns how many."""
    lapsed = 0
    for asked in (ExceptionRequest.objects.filter(exceptions_lapsed(on=on))
                  .select_related("customer", "requested_by").order_by("pk")):
        with transaction.atomic():
            # Locked, and read again: a manager deciding it this moment (from a
            # form opened before the day passed) is refused or got there first.
            if not list(ExceptionRequest.objects.select_for_update().filter(exceptions_lapsed(on=on),
                                                                            pk=asked.pk).values("pk")):
                continue
            _exception_lapsed_record(
                asked, on=on,
                note=(f"Lapsed undecided: asked until {format_day(asked.pause_until)}, a day that passed "
                      "before a manager decided it"),
                summary=(f"Exception ({_kind_said(asked)} until {format_day(asked.pause_until)}) lapsed "
                         "undecided: the day asked passed before a manager decided it; nothing was granted"),
                invoices=[asked.invoice_id] if asked.invoice_id else [],
                details={"until": asked.pause_until.isoformat()},
            )
            lapsed += 1
    return lapsed


def _exception_lapsed_record(asked: ExceptionRequest, *, on: dt.date, note: str, summary: str, invoices,
                             details: dict, tell: str = "if the customer still needs it, ask again") -> None:
    """A request no manager decided, and none needs to any more, recorded as
    lapsed: with `note` as its decision's, on its account's timeline, and on
    the worklist of the collector who asked, with what to `tell` them. The
    caller holds its lock."""
    ExceptionRequest.objects.filter(pk=asked.pk).update(
        status=ExceptionStatus.LAPSED, decided_at=timezone.now(),
        decision_note=note[:ExceptionRequest._meta.get_field("decision_note").max_length])
    event_record(
        customer=asked.customer, kind=EventKind.EXCEPTION, subject=asked, invoices=invoices, summary=summary,
        details={"before": {"status": ExceptionStatus.PENDING}, "after": {"status": ExceptionStatus.LAPSED},
                 **details},
    )
    # The key a decision's item has: a request is decided, or lapses, once.
    worklist.item_add(
        kind=WorkKind.DECIDED, key=f"decided:exceptionrequest:{asked.pk}", customer=asked.customer,
        assignee=asked.requested_by, due_on=on,
        title=f"{summary} — {tell}",
    )


def write_off_requests_settled(*, on: dt.date, customer_ids: Iterable[int] | None = None) -> int:
    """Close the write-off requests waiting for a manager every invoice of
    which was settled another way meanwhile (written off directly, paid or
    credited in full): nothing is left to write off, and left pending, a
    manager could only reject them, and the collector would hear that the
    write-off was refused. They lapse undecided, with what settled each
    invoice. One where some are still open stays: the manager writes off
    the rest. Returns how many closed."""
    still_open = WriteOffLine.objects.filter(request=OuterRef("pk"), invoice__status=InvoiceStatus.OPEN)
    settled = (ExceptionRequest.objects.filter(kind=ExceptionKind.WRITE_OFF, status=ExceptionStatus.PENDING)
               .exclude(Exists(still_open)))
    if customer_ids is not None:
        settled = settled.filter(customer_id__in=list(customer_ids))
    closed = 0
    for asked in settled.select_related("customer", "requested_by").order_by("pk"):
        with transaction.atomic():
            # Skipped while a manager decides it: the decision locks the request
            # before its invoices, and a payment or write-off calling here holds
            # an invoice already; the daily check comes back to one still pending.
            if not list(settled.select_for_update(skip_locked=True).filter(pk=asked.pk).values("pk")):
                continue
            now = write_off_lines_now(asked)
            _pauses_lift(DunningPause.objects.filter(exception=asked))
            _exception_lapsed_record(
                asked, on=on, note=f"Nothing left to write off: {'; '.join(line.changed for line in now)}",
                # What settled each is in the note and the details: the summary heads the asker's item.
                summary=(f"Exception ({_kind_said(asked)}) closed undecided: every invoice it named was "
                         f"settled meanwhile ({', '.join(line.invoice.number for line in now)}), so nothing "
                         "is left to write off"),
                invoices=[line.invoice for line in now],
                details={"settled": [{"invoice": line.invoice.number, "why": line.changed} for line in now]},
                tell="no need to ask again",
            )
            closed += 1
    return closed


def exception_lapsed_message(request: ExceptionRequest) -> str:
    return (f"This request asked until {format_day(request.pause_until)}, which passed before anyone decided "
            "it: it has lapsed, and nothing was recorded. If the customer still needs it, the collector asks "
            "again.")


def _kind_said(request: ExceptionRequest) -> str:
    """What a request asks, as running text: lower case but for its
    abbreviations ("lift the credit hold or C.O.D.")."""
    label = request.get_kind_display()
    return label[:1].lower() + label[1:]


@transaction.atomic
def exception_request(
    *,
    customer: Customer,
    actor,
    kind: str,
    reason: str,
    on: dt.date,
    pause_until: dt.date | None = None,
    invoice: Invoice | None = None,
    invoices: Iterable[Invoice] = (),
) -> ExceptionRequest:
    """Ask a manager for an exception. A write-off names `invoices` (open
    ones of the account that nothing else pursues), each recorded with what
    it owes now; approved, they are written off (exception_decide)."""
    require_act_on(actor, customer)
    if not reason.strip():
        raise ValidationError({"reason": "Say what you ask for and why."})
    invoices = list(invoices)
    if kind == ExceptionKind.WRITE_OFF and invoice is not None:
        raise ValidationError({"invoice": "A write-off names its invoices under the invoices to write off: "
                                          "leave this empty."})
    if kind != ExceptionKind.WRITE_OFF and invoices:
        raise ValidationError({"invoices": "Only a write-off names invoices to write off: leave them "
                                           "unticked, or ask for a write-off."})
    if kind in DATED_EXCEPTIONS and (pause_until is None or pause_until <= on):
        raise ValidationError({"pause_until": DATED_EXCEPTIONS[kind]})
    if kind in DATED_EXCEPTIONS:
        _exception_end_check(customer=customer, kind=kind, until=pause_until, invoice=invoice, on=on)
    # One request of a kind for the same thing waits at a time (a double submit,
    # a long pause asked again): approving both would grant it twice. The
    # account's lock makes two at the same moment queue and find each other.
    # "Other" requests each ask something of their own; write-offs are
    # checked per invoice (_write_off_proposed).
    current = Customer.objects.select_for_update().get(pk=customer.pk)
    waiting = (ExceptionRequest.objects.filter(customer=customer, kind=kind, invoice=invoice,
                                               status=ExceptionStatus.PENDING)
               .exclude(kind__in=[ExceptionKind.OTHER, ExceptionKind.WRITE_OFF])
               .exclude(exceptions_lapsed(on=on)).first())
    if waiting is not None:
        what = f"invoice {invoice.number}" if invoice else "the whole account"
        until = f" until {format_day(waiting.pause_until)}" if waiting.pause_until else ""
        raise ValidationError(
            f"A request ({_kind_said(waiting)}{until}) for {what} already waits for a "
            f"manager, asked on {format_day(waiting.requested_on)}: a manager decides it first."
        )
    if kind == ExceptionKind.HOLD_RELEASE:
        if invoice is not None:
            raise ValidationError({"invoice": "A credit hold or C.O.D. is on the whole account: name no "
                                              "invoice."})
        if not worklist.hold_lift_changes(current):
            raise ValidationError({"kind": f"{customer.name} is neither on credit hold nor on C.O.D. or "
                                           "prepayment a dunning step imposed: there is nothing to lift."})
    # A waiver of nothing owed would be approved for nothing, and the customer
    # told a fee was forgiven that they never had to pay.
    waived = kind == ExceptionKind.FEE_WAIVER
    if waived and not _charges_standing(customer.pk, invoice.pk if invoice else None).exists():
        where = f"on {invoice.number}" if invoice else "on this account"
        raise ValidationError({"invoice" if invoice else "kind":
                               f"No late fee or interest is owed {where}: there is nothing to waive."})
    if kind == ExceptionKind.WRITE_OFF:
        invoices = _write_off_proposed(customer, invoices)
    request = ExceptionRequest.objects.create(
        customer=customer, invoice=invoice, kind=kind, reason=reason.strip(), requested_by=actor,
        requested_on=on, pause_until=pause_until if kind in DATED_EXCEPTIONS else None,
    )
    WriteOffLine.objects.bulk_create(
        WriteOffLine(request=request, invoice=i, currency=i.currency, asked_amount=i.open_amount)
        for i in invoices
    )
    # Proposing a write-off is giving up pursuing them: held, as any pause
    # holds dunning, so no firmer step asks for them while a manager weighs
    # it; lifted with the decision (_write_off_decide) or when it closes
    # undecided (write_off_requests_settled).
    DunningPause.objects.bulk_create(
        DunningPause(customer=customer, invoice=i, kind=PauseKind.WRITE_OFF, exception=request, owner=actor,
                     reason=request.reason[:DunningPause._meta.get_field("reason").max_length], starts_on=on)
        for i in invoices
    )
    until = f" until {format_day(pause_until)}" if request.pause_until else ""
    of = (f" of {format_amounts(by_currency((i.currency, i.open_amount) for i in invoices))} on "
          f"{', '.join(i.number for i in invoices)}; dunning holds them until a manager decides"
          if invoices else "")
    event_record(
        customer=customer, kind=EventKind.EXCEPTION, actor=actor, subject=request,
        invoices=[invoice] if invoice else invoices,
        summary=f"Exception requested: {_kind_said(request)}{until}{of} — {reason.strip()}",
        details={"kind": kind, "reason": request.reason,
                 "pause_until": pause_until.isoformat() if request.pause_until else None,
                 **({"invoices": [{"invoice": i.number, "amount": str(i.open_amount), "currency": i.currency}
                                  for i in invoices]} if invoices else {})},
    )
    return request


@transaction.atomic
def exception_decide(*, request: ExceptionRequest, manager, approve: bool, note: str, on: dt.date,
                     until: dt.date | None = None, write_off: Mapping[int, Decimal] | None = None):
    """Approve or reject a collector's request. A pause or extended terms may
    be approved until `until`, earlier than asked (today at the earliest):
    the request keeps the end asked and records the end granted.

    An approved write-off writes off, dated `on` and with the request's
    reason, the invoices the manager confirmed: `write_off`, by invoice id,
    what each owes as the manager was shown it (None: all of them, at what
    they owed when asked). One paid, credited, disputed, promised or put in
    a plan since, confirmed, is refused with what changed, and nothing is
    written off: all of them are, or none (one transaction)."""
    locked = _decision_take(
        ExceptionRequest, request, manager=manager, approve=approve, note=note, what="exceptions",
        noun="request",
        pending=ExceptionStatus.PENDING, approved=ExceptionStatus.APPROVED, rejected=ExceptionStatus.REJECTED,
    )
    if locked.kind == ExceptionKind.WRITE_OFF:
        return _write_off_decide(locked, manager=manager, approve=approve, confirmed=write_off, on=on)
    dated = locked.kind in DATED_EXCEPTIONS and locked.pause_until is not None
    # Approved, a pause or extended terms hold dunning for what they cover
    # until their date (that day included). Past it, approving would hold
    # nothing, and the collector would tell the customer it was granted; a
    # rejection would only say what the date says. A form opened before the
    # day passed is refused (the decision taken above is rolled back).
    if dated and locked.pause_until < on:
        raise ValidationError(exception_lapsed_message(locked))
    granted = _exception_end_granted(locked, approve=approve, until=until, on=on) if dated else None
    if until is not None and not dated:
        raise ValidationError({"until": "This request asks for nothing until a date: approve or reject it."})
    terms = ""
    if granted is not None:
        locked.granted_until = granted
        locked.save(update_fields=["granted_until"])
        DunningPause.objects.create(
            customer=locked.customer, invoice=locked.invoice, kind=PauseKind.EXCEPTION, exception=locked,
            owner=manager, reason=locked.reason[:300], starts_on=on, ends_on=granted,
        )
        if granted != locked.pause_until:
            than = "earlier" if locked.kind == ExceptionKind.EXTENDED_TERMS else "shorter"
            terms = (f" until {format_day(granted)}, {than} than the {format_day(locked.pause_until)} "
                     "asked")
    waived = []
    if approve and locked.kind == ExceptionKind.FEE_WAIVER:
        # Locked, as a payment locks them: one at this moment waits, then pays
        # only what is left; what the decision says it waives is what it waives.
        waived = list(LateCharge.objects.select_for_update()
                      .filter(pk__in=charges_waivable(locked).values("pk")).order_by("pk"))
        if not waived:
            # Paid (or waived) while the request waited: approving waives
            # nothing, and the collector has nothing to tell the customer.
            paid_on = _charges_paid_said(locked, dated_only=True)
            _fee_waivers_close(
                [locked], actor=manager, note=locked.decision_note,
                why=paid_on or "the late fees and interest asked about were waived or cancelled meanwhile",
                tell="the customer paid it: nothing was waived" if paid_on else "nothing was waived",
            )
            return locked
        if paid := _charges_paid_said(locked, charges=waived):
            terms = f", waiving the {format_amounts(amounts_waived(waived))} left ({paid})"
    _decision_record(locked, manager, kind=EventKind.EXCEPTION, asker=locked.requested_by,
                     invoices=[locked.invoice] if locked.invoice else [],
                     what=f"Exception ({_kind_said(locked)})", terms=terms,
                     before={"until": locked.pause_until.isoformat()} if dated else {},
                     after={"until": granted.isoformat() if granted else None} if dated else {})
    for charge in waived:
        charge_waive(charge=charge, manager=manager, note=f"Exception approved: {locked.decision_note}")
    if approve and locked.kind == ExceptionKind.HOLD_RELEASE:
        # Read as it stands now: lifted on the card meanwhile, nothing is left to change.
        customer = Customer.objects.get(pk=locked.customer_id)
        if changes := worklist.hold_lift_changes(customer):
            customer_update(customer=customer, actor=manager, changes=changes,
                            reason=f"Exception approved: {locked.decision_note}")
    return locked


def _write_off_decide(locked: ExceptionRequest, *, manager, approve: bool,
                      confirmed: Mapping[int, Decimal] | None, on: dt.date) -> ExceptionRequest:
    """The decision on a write-off request (see exception_decide), on the
    timeline before the write-offs it makes, each of which has its own entry.
    Its invoices are no longer held: those not written off go back to the ladder."""
    _pauses_lift(DunningPause.objects.filter(exception=locked), actor=manager)
    if not approve:
        now = write_off_lines_now(locked)
        _decision_record(locked, manager, kind=EventKind.EXCEPTION, asker=locked.requested_by,
                         invoices=[line.invoice for line in now], what=f"Exception ({_kind_said(locked)})",
                         terms=", dunning goes on with its invoices")
        return locked
    written, left = _write_off_approved(locked, manager=manager, confirmed=confirmed, on=on)
    amounts = format_amounts(by_currency((line.invoice.currency, line.owed_amount) for line in written))
    terms = f", writing off {amounts} on {', '.join(line.invoice.number for line in written)}"
    if left:
        terms += f"; not written off: {'; '.join(line.changed or line.invoice.number for line in left)}"
    _decision_record(
        locked, manager, kind=EventKind.EXCEPTION, asker=locked.requested_by,
        invoices=[line.invoice for line in written + left], what=f"Exception ({_kind_said(locked)})",
        terms=terms,
        after={"written_off": [{"invoice": line.invoice.number, "amount": str(line.owed_amount),
                                "currency": line.invoice.currency} for line in written],
               "left": [{"invoice": line.invoice.number, "why": line.changed} for line in left]},
    )
    for line in written:
        invoice_write_off(customer=locked.customer, actor=manager, invoice=line.invoice, reason=locked.reason,
                          on=on, amount=line.owed_amount)
    return locked


def _exception_end_granted(locked: ExceptionRequest, *, approve: bool, until: dt.date | None,
                           on: dt.date) -> dt.date | None:
    """The end a decision grants a dated exception (None: rejected). A
    manager may grant less than asked, never more: the collector asked the
    customer for no more, and a longer hold is a request of its own."""
    asked = locked.pause_until
    if until is None or until == asked:
        return asked if approve else None
    terms = locked.kind == ExceptionKind.EXTENDED_TERMS
    if not approve:
        less = "the earlier day" if terms else "the shorter pause"
        raise ValidationError({"until": f"A rejection grants nothing: leave the end as asked, or approve "
                                        f"{less}."})
    if until > asked:
        raise ValidationError({"until": f"Asked until {format_day(asked)}: a manager may grant an earlier "
                                        "end, not a later one."})
    earliest, first = exception_earliest_end(locked, on=on)
    if until < earliest and first is not None:
        raise ValidationError({"until": f"{first.number} falls due on {format_day(first.due_date)}: extended "
                                        f"terms are granted until {format_day(earliest)} at the earliest."})
    if until < on:
        what = "Extended terms granted end" if terms else "A pause granted ends"
        raise ValidationError({"until": f"{what} today ({format_day(on)}) at the earliest."})
    return until


def charges_waivable(request: ExceptionRequest):
    """The late fees and interest a fee waiver covers: those still standing on
    its invoice (its interest, and the fees of notices that listed it), or on
    the whole account when it names no invoice."""
    return _charges_standing(request.customer_id, request.invoice_id)


def _charges_paid_said(request: ExceptionRequest, *, charges=None, dated_only: bool = False) -> str:
    """What the customer paid of the charges a fee waiver covers, and when:
    "EUR 25.00 paid on 5 Aug 2025" (of `charges`, else of every charge it
    names), or with `dated_only` just "paid on 5 Aug 2025". Empty when none
    of it was paid."""
    if charges is None:
        charges = LateCharge.objects.filter(customer=request.customer_id, cancelled_at__isnull=True)
        if request.invoice_id:
            charges = charges.filter(Q(invoice=request.invoice_id)
                                     | Q(invoice__isnull=True, action__lines__invoice=request.invoice_id))
        charges = list(charges.distinct())
    parts = Allocation.objects.filter(charge__in=charges).select_related("charge")
    if not parts:
        return ""
    day = format_day(max(part.allocated_on for part in parts))
    if dated_only:
        return f"paid on {day}"
    paid = by_currency((part.charge.currency, part.amount) for part in parts)
    return f"{format_amounts(paid)} paid on {day}"


def _charges_standing(customer_id: int, invoice_id: int | None):
    charges = LateCharge.objects.filter(customer=customer_id).standing()
    if invoice_id:
        charges = charges.filter(Q(invoice=invoice_id)
                                 | Q(invoice__isnull=True, action__lines__invoice=invoice_id))
    return charges.distinct().order_by("pk")


def amounts_waived(charges) -> list[tuple[str, Decimal]]:
    """Per currency, what waiving these charges forgives: what is left to pay
    of each (a part already paid stays paid, see delivery.charge_waive)."""
    return by_currency((charge.currency, charge.open_amount) for charge in charges)


def _decision_take(model, row, *, manager, approve: bool, note: str, what: str, noun: str, pending: str,
                   approved: str, rejected: str):
    """A manager's decision on a request (plan or exception): once, with a reason, recorded on the row."""
    if not manager.has_perm(f"collections.change_{model._meta.model_name}"):
        raise ValidationError(f"Only a manager decides on {what}.")
    locked = model.objects.select_for_update().select_related("customer").get(pk=row.pk)
    if locked.status != pending:
        raise ValidationError(_decided_already(locked, noun=noun, approved=approved, rejected=rejected))
    if not note.strip():
        raise ValidationError({"note": "Say why, in a few words."})
    locked.status = approved if approve else rejected
    locked.decided_by, locked.decided_at, locked.decision_note = manager, timezone.now(), note.strip()
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    locked.status_before = pending
    return locked


def _decided_already(locked, *, noun: str, approved: str, rejected: str) -> str:
    """Why a request no longer waits for a decision, in the words the manager
    needs: who decided it, when and why, or how it was withdrawn (a proposal
    its proposer took back, or one that payments or a credit left nothing to
    pay for, see plan_withdraw and _plan_credited_in_full)."""
    if locked.status == ExceptionStatus.LAPSED and locked.kind == ExceptionKind.WRITE_OFF:
        return f"This request closed undecided: {locked.decision_note}."
    if locked.status == ExceptionStatus.LAPSED:
        return exception_lapsed_message(locked)
    if locked.status in (approved, rejected) and locked.decided_by_id:
        return (f"This {noun} was already {locked.get_status_display().lower()} by "
                f"{person_name(locked.decided_by)} on {format_day(timezone.localdate(locked.decided_at))}: "
                f"{locked.decision_note}.")
    if locked.status == PlanStatus.CANCELLED:
        ended = (TimelineEvent.objects.for_subject(locked).filter(details__after__status=locked.status)
                 .select_related("actor").order_by("-occurred_at", "-pk").first())
        if ended is not None:
            proposal = ended.details.get("before", {}).get("status") == PlanStatus.AWAITING_APPROVAL
            how = "withdrawn" if proposal else "ended"
            by = f" by {person_name(ended.actor)}" if ended.actor else ""
            why = ended.details.get("reason") or f"{ended.details.get('because')} left nothing to pay"
            return f"This {noun} was {how}{by} on {format_day(timezone.localdate(ended.occurred_at))}: {why}."
    return f"This {noun} is already {locked.get_status_display().lower()}."


def _decision_record(locked, manager, *, kind: str, invoices, what: str, asker, terms: str = "",
                     before: dict | None = None, after: dict | None = None,
                     tell: Callable[[], str] | None = None) -> None:
    """The decision on the timeline, and on the worklist of whoever asked for
    it (unless they decided it themselves): it is theirs to tell the customer.
    `terms` says what was granted where it differs from what was asked, and
    `before` / `after` what the decision changed beside the status. `tell`
    tells the customer itself, once the decision is on the timeline, and
    returns what is left for the asker to do."""
    verdict = "rejected" if locked.status in {PlanStatus.REJECTED, ExceptionStatus.REJECTED} else "approved"
    summary = f"{what} {verdict} by {person_name(manager)}{terms}: {locked.decision_note}"
    event_record(
        customer=locked.customer, kind=kind, actor=manager, subject=locked, invoices=invoices,
        summary=summary,
        details={"before": {"status": locked.status_before, **(before or {})},
                 "after": {"status": locked.status, **(after or {})},
                 "note": locked.decision_note},
    )
    told = tell() if tell is not None else ""
    if asker is not None and asker.pk != manager.pk:
        # About the plan: a plan that ends (withdrawn, ended, credited in full)
        # closes its items, and nobody then tells the customer it holds.
        about = {"plan": locked} if isinstance(locked, PaymentPlan) else {}
        worklist.item_add(
            kind=WorkKind.DECIDED, key=f"decided:{locked._meta.model_name}:{locked.pk}",
            customer=locked.customer, assignee=asker, due_on=timezone.localdate(),
            title=f"{summary} — {told or 'tell the customer'}", **about,
        )


def _pauses_lift(pauses, *, actor=None) -> int:
    return pauses.filter(lifted_at__isnull=True).update(lifted_at=timezone.now(), lifted_by=actor)


# --- Payments ---------------------------------------------------------------------


def payment_record(
    *,
    customer: Customer,
    amount: Decimal,
    currency: str,
    received_on: dt.date,
    allocations: Sequence[tuple[Invoice, Decimal]],
    reference: str = "",
    method: str = PaymentMethod.BANK_TRANSFER,
    actor=None,
    known_checked: bool = False,
    bank_reference: str = "",
    refresh_behaviour: bool = True,
    not_yet_due: Sequence[Invoice] = (),
    held: Mapping[int, Decimal] | None = None,
) -> Payment:
    """A payment applied to invoices; what is left after them pays the late
    fees and interest still owed in its currency, oldest first (the notice
    asked for them: a customer who pays its "amount due" pays them too),
    those charged by the day it was received and not on a disputed invoice
    (see _charges_pay), then
    the invoices of `not_yet_due`, oldest due first, each up to its open
    amount less what `held` keeps for others (money naming no invoice, see
    unnamed_money_split), and what is left after those stays on account.
    Promises and plans of the account are checked at once, so a payment that
    keeps a promise shows as kept today.

    The same reference, amount and date twice on one account is refused: it
    is the same bank line recorded again (a double submit, a statement read
    twice), and recording it would take the money off the invoices twice.
    `known_checked`: the caller holds the account's lock and has found the
    line new itself (the import does, for a whole file at once); it records
    in a transaction of its own and rolls it back whole on a problem, so the
    payment takes no savepoint of its own (two statements a row), and one
    that fails leaves the caller's transaction to roll back.

    The account's payment behaviour and segment are recomputed once it commits,
    as of today as the nightly refresh computes them, so the account page shows the
    money in its figures today. `refresh_behaviour=False`: the caller
    recomputes them itself, once for all its payments (the import does)."""
    with transaction.atomic(savepoint=not known_checked):
        if amount <= 0:
            raise ValidationError({"amount": "A payment is more than zero."})
        places_check(amount, currency, field="amount")
        for _, part in allocations:
            places_check(part, currency, field="allocations")
        applied = sum((a for _, a in allocations), ZERO)
        if applied > amount:
            raise ValidationError({"allocations": "More is applied to invoices than was paid."})
        reference = reference.strip()
        if not known_checked and payment_known(customer=customer, reference=reference, amount=amount,
                                               currency=currency, received_on=received_on):
            raise ValidationError({"reference": (
                f"A payment of {format_money(amount, currency)} with reference {reference} received on "
                f"{format_day(received_on)} is already recorded for this account."
            )})
        if not known_checked and (known := payment_with_bank_id(customer=customer, reference=reference)):
            reversal = getattr(known, "reversal", None)
            reversed_ = f", {reversed_when_why(reversal)}" if reversal is not None else ""
            raise ValidationError({"reference": (
                f"The payment with the bank’s id {reference} is already recorded for this account: "
                f"{format_money(known.amount, known.currency)} received on {format_day(known.received_on)}, "
                f"bank id {known.bank_reference}{reversed_}."
            )})
        payment = Payment.objects.create(
            customer=customer, received_on=received_on, currency=currency, amount=amount, reference=reference,
            method=method, bank_reference=bank_reference,
        )
        invoices = [_invoice_pay(payment, invoice, part) for invoice, part in allocations]
        # A letter not yet posted that this payment made moot charges nothing: its
        # charges go before the payment's rest could pay them.
        letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)
        to_charges = _charges_pay(payment, amount - applied, charged_by=received_on)
        # Read under their locks now, after the charges took their part: what
        # the charges left is what these may have.
        left = amount - applied - to_charges
        later = allocations_oldest_first(
            Invoice.objects.select_for_update().filter(
                pk__in=[i.pk for i in not_yet_due], customer=customer, currency=currency,
                status=InvoiceStatus.OPEN,
            ),
            left, held=held,
        ) if left and not_yet_due else []
        if later:
            invoices += [_invoice_pay(payment, invoice, part) for invoice, part in later]
            applied += sum((part for _, part in later), ZERO)
            # A letter not posted that listed only these is moot as well.
            letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)
        numbers = [i.number for i in invoices]
        unapplied = amount - applied - to_charges
        event_record(
            customer=customer, kind=EventKind.PAYMENT_RECEIVED, actor=actor, subject=payment,
            invoices=invoices,
            summary=payment_summary(payment, invoices=numbers, to_charges=to_charges, unapplied=unapplied),
            details={"amount": str(amount), "currency": currency, "reference": reference,
                     "invoices": numbers, "method": method, "charges": str(to_charges),
                     "unapplied": str(unapplied)},
        )
        for invoice in invoices:
            if invoice.status == InvoiceStatus.PAID:
                event_record(customer=customer, kind=EventKind.INVOICE_PAID, actor=actor, subject=invoice,
                             **invoice_paid_said(invoice))
        commitments_check(on=received_on, customer_ids=[customer.pk], settle_only=True)
        if refresh_behaviour:
            services.behaviour_refresh_on_commit(customer_ids=[customer.pk])
        return payment


def _payment_came(payment: Payment) -> str:
    """How a payment came, as its timeline entries say it: the method, the
    reference and, where the bank gave one, the bank's id of the entry (as the
    Payments card shows them)."""
    came = payment.get_method_display().lower()
    if payment.reference:
        came += f", reference {payment.reference}"
    if payment.bank_reference:
        came += f", bank id {payment.bank_reference}"
    return came


def payment_summary(payment: Payment, *, invoices: Sequence[str], to_charges: Decimal = ZERO,
                    unapplied: Decimal = ZERO) -> str:
    """How a payment received reads on the timeline, in the same words whether
    a collector typed it in or a bank file brought it: how it came and the
    reference it came with (what the collector finds it by on the statement),
    then where its money went."""
    # The day it came in, also when that is today: the entry is read on later
    # days, and reads as every other payment does.
    summary = (f"Payment of {format_money(payment.amount, payment.currency)} received on "
               f"{format_day(payment.received_on)} ({_payment_came(payment)})")
    if invoices:
        summary += f", applied to {_listing(invoices)}"
    if to_charges:
        summary += f"; {format_money(to_charges, payment.currency)} to late fees and interest"
    if unapplied:
        left = "left" if invoices or to_charges else "kept"
        summary += f"; {format_money(unapplied, payment.currency)} {left} on account"
    return summary


def _invoice_pay(payment: Payment, invoice: Invoice, part: Decimal) -> Invoice:
    """`part` of the payment on the invoice, locked and read again; refused if
    it does not fit (paid meanwhile, another currency)."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk, customer=payment.customer_id)
    currency = payment.currency
    if invoice.status != InvoiceStatus.OPEN or part <= 0 or part > invoice.open_amount:
        raise ValidationError({"allocations": f"{format_money(part, currency)} does not fit on "
                                              f"invoice {invoice.number}."})
    if invoice.currency != currency:
        raise ValidationError({"allocations": f"Invoice {invoice.number} is in {invoice.currency}."})
    # Money sent before the invoice existed (a prepayment) pays it the day it is
    # issued, as setting a credit against it does: not before it existed.
    on = max(payment.received_on, invoice.issue_date)
    # Applied as it came in: the payment named the invoice, or came to it with the rest.
    Allocation.objects.create(invoice=invoice, payment=payment, amount=part, allocated_on=on, applied_on=on)
    _invoice_take_off(invoice, part, on=on)
    return invoice


def _invoice_take_off(invoice: Invoice, part: Decimal, *, on: dt.date) -> None:
    """`part` off the invoice's open amount, its allocation of day `on`
    recorded by the caller. Paid in full, the invoice is settled on the
    latest of its parts' days, which this one need not be (a cheque dated
    earlier, entered last; a credit note the ERP dated before the last
    payment does not make the payer earlier). Paid whole by this part, the
    common case, it is this part's day: no query for it."""
    invoice.open_amount -= part
    if invoice.open_amount == 0:
        last = on if part == invoice.total_amount else invoice.allocations.aggregate(
            last=Max("allocated_on"))["last"]
        invoice.status, invoice.settled_on = InvoiceStatus.PAID, last
    invoice.save(update_fields=["open_amount", "status", "settled_on"])


def _charges_pay(credit: Payment | CreditNote, amount: Decimal, *, charged_by: dt.date | None,
                 on: dt.date | None = None) -> Decimal:
    """Up to `amount` of a payment or a credit note to the account's charges
    still owed in its currency, oldest first; returns how much went to them.
    The charges are locked, so a waiver at the same moment waits and then
    waives only the rest.

    Only charges the customer can have meant it for. None on an invoice under
    open dispute: the customer holds its interest back with the invoice, for
    the dispute to settle. `charged_by`: only those charged by that day, for a
    payment's rest the day it was received (a payment entered today, dated
    last week, was not sent for a fee charged three days ago); None: every one
    standing, for a credit set against them now on the customer's word (see
    credit_apply). Those left stay owed, as their invoice does.

    Each part is dated the later of the credit's day and the charge's, as a
    credit set against an invoice is: money on account pays a fee charged
    since from the day it was charged, not before it existed. `on`: the day
    it is set against them (credit_apply), if later: until then it was on
    account, as a past day's figures read it; None, a payment's own rest,
    applied as it came in."""
    paid = ZERO
    if amount <= 0:
        return paid
    link = "payment" if isinstance(credit, Payment) else "credit_note"
    dated = _credit_dated(credit)
    disputed = Exists(Dispute.objects.filter(invoice=OuterRef("invoice"), status=DisputeStatus.OPEN))
    charges = (LateCharge.objects.select_for_update()
               .filter(customer=credit.customer_id, currency=credit.currency).standing().exclude(disputed))
    if charged_by is not None:
        charges = charges.filter(created_at__date__lte=charged_by)
    for charge in charges.order_by("created_at", "pk"):
        part = min(amount - paid, charge.open_amount)
        counts_from = max(dated, timezone.localdate(charge.created_at))
        # Set against the same charge again the same day: one row; on another day, a row
        # of its own, as on an invoice, so each part keeps the day it left the account.
        allocation, created = Allocation.objects.get_or_create(
            charge=charge, **{link: credit}, applied_on=max(on or counts_from, counts_from),
            defaults={"amount": part, "allocated_on": counts_from},
        )
        if not created:
            Allocation.objects.filter(pk=allocation.pk).update(amount=F("amount") + part)
        charge.open_amount -= part
        charge.save(update_fields=["open_amount"])
        paid += part
        if paid == amount:
            break
    return paid


def payment_known(*, customer: Customer, reference: str, amount: Decimal, currency: str,
                  received_on: dt.date) -> bool:
    """Whether this bank line (reference, amount, date) is recorded on the
    account already, its reference compared as the import compares it
    (bank_id_key: "bank-0815 " is BANK-0815). Takes the account's lock first
    and keeps it to the end of the transaction: one payment at a time per
    account, so the same line recorded twice at once is found by the second."""
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    key = bank_id_key(reference)
    # The account's payments of that amount on that day: a handful at most,
    # compared in Python by the very function the import uses.
    return bool(key) and any(bank_id_key(known) == key for known in Payment.objects.filter(
        customer=customer, amount=amount, currency=currency, received_on=received_on
    ).values_list("reference", flat=True))


def payment_with_bank_id(*, customer: Customer, reference: str) -> Payment | None:
    """The payment on the account the ERP gave the bank's id typed here as a
    reference (the id on the statement), whatever its amount and day: the
    ERP's copy may give the value date for the booking date. The caller holds
    the account's lock (payment_known)."""
    key = bank_id_key(reference)
    return (Payment.objects.filter(customer=customer, bank_key=key).select_related("reversal").order_by("pk")
            .first() if key else None)


# --- Reversals -------------------------------------------------------------------


def payment_reverse(*, payment: Payment, actor, reason: str, note: str = "", on: dt.date) -> PaymentReversal:
    """The bank took the payment back (a direct debit returned, a cheque that
    bounced, a transfer recalled): it stays on record, reversed, and what it
    settled is owed again as before it came. Its allocations are kept, marked
    with the reversal: every sum of what stands today (open amounts, money on
    account, promises and plans judged) reads without them, while the figures
    of a day before the reversal read them as they stood then
    (models.Allocation); what they were is said on the reversal and its
    timeline entry too. The invoices it paid reopen, the
    charges it paid are owed again; a promise or an instalment it kept is
    judged again as the daily check would, today; a dunning cycle its money
    closed opens again, so the ladder goes on where it stood rather than
    starting over; the account's figures are recomputed once it commits.
    Recalled (booked to the wrong account), the payment lets go of the bank's
    id of its entry, which it keeps to show: the entry may then be imported
    onto the right account (imports._Known).

    Refused, changing nothing: a payment reversed already (the database holds
    one reversal per payment), a day before it was received or after today,
    "other" without a note, or an invoice it paid that was written off or
    cancelled since (what to owe again is then a person's call: credit or
    correct it first)."""
    with transaction.atomic():
        # The account's lock, as recording a payment takes it (payment_known):
        # a payment recorded meanwhile applies to what this reopens, after it.
        customer = Customer.objects.select_for_update().get(pk=payment.customer_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if done := PaymentReversal.objects.filter(payment=payment).first():
            raise ValidationError({"payment": payment_reversed_said(payment, done)})
        _reversal_terms_check(payment, reason=reason, note=note, on=on)
        allocations = list(payment.allocations.order_by("pk"))
        invoices = {i.pk: i for i in Invoice.objects.select_for_update().order_by("pk").filter(
            pk__in=[a.invoice_id for a in allocations if a.invoice_id])}
        charges = {c.pk: c for c in LateCharge.objects.select_for_update().order_by("pk").filter(
            pk__in=[a.charge_id for a in allocations if a.charge_id])}
        if gone := [i for i in invoices.values() if i.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID)]:
            raise ValidationError({"payment": (
                f"{_listing([i.number for i in gone])} {'was' if len(gone) == 1 else 'were'} "
                f"{gone[0].get_status_display().lower()} since this payment was applied: correct "
                f"{'it' if len(gone) == 1 else 'them'} first, then reverse the payment."
            )})
        undone = [_allocation_undone(a, invoices, charges) for a in allocations]
        try:
            with transaction.atomic():
                reversal = PaymentReversal.objects.create(
                    payment=payment, reason=reason, note=note.strip(), reversed_on=on, reversed_by=actor,
                    undone=undone)
        except IntegrityError:
            raise ValidationError({"payment": "This payment is reversed already."}) from None
        Allocation.objects.filter(pk__in=[a.pk for a in allocations]).update(reversal=reversal)
        reopened = []
        for allocation in allocations:
            if allocation.invoice_id:
                invoice = invoices[allocation.invoice_id]
                if invoice.status == InvoiceStatus.PAID:
                    reopened.append(invoice)
                invoice.open_amount += allocation.amount
                invoice.status, invoice.settled_on = InvoiceStatus.OPEN, None
                invoice.save(update_fields=["open_amount", "status", "settled_on"])
            else:
                charge = charges[allocation.charge_id]
                charge.open_amount += allocation.amount
                charge.save(update_fields=["open_amount"])
        if reason == ReversalReason.RECALLED:
            Payment.objects.filter(pk=payment.pk).update(bank_id_released=True)
        to_charges = sum((a.amount for a in allocations if a.charge_id), ZERO)
        event_record(
            customer=customer, kind=EventKind.PAYMENT_RECEIVED, actor=actor, subject=payment,
            invoices=list(invoices.values()),
            summary=reversal_summary(reversal, invoices=list(invoices.values()), reopened=reopened,
                                     to_charges=to_charges),
            details={"reversed": True, "reason": reason, "note": reversal.note, "reversed_on": on.isoformat(),
                     "amount": str(payment.amount), "currency": payment.currency,
                     "before": {"allocations": undone}, "after": {"allocations": []},
                     "reopened": [i.number for i in reopened]},
        )
        today = timezone.localdate()
        if invoices:
            _commitments_judge_again(customer, payment, list(invoices), actor=actor, on=today)
            _cycle_reopen(customer, payment, list(invoices))
        services.behaviour_refresh_on_commit(customer_ids=[customer.pk])
        return reversal


def _reversal_terms_check(payment: Payment, *, reason: str, note: str, on: dt.date) -> None:
    if reason not in ReversalReason.values:
        raise ValidationError({"reason": "Choose why the payment is reversed."})
    if "\x00" in note:
        # The page's form refuses it; the API hands the note over as sent.
        raise ValidationError({"note": "The note holds a NUL character (\\u0000): write it without."})
    if reason == ReversalReason.OTHER and not note.strip():
        raise ValidationError({"note": "Say why the payment is reversed."})
    if on < payment.received_on:
        raise ValidationError({"reversed_on": (
            f"The payment was received on {format_day(payment.received_on)}: it cannot be taken back "
            "before.")})
    if on > timezone.localdate():
        raise ValidationError({"reversed_on": "A payment cannot be reversed on a day still to come."})


def _allocation_undone(allocation: Allocation, invoices: Mapping[int, Invoice],
                       charges: Mapping[int, LateCharge]) -> dict:
    """An allocation as the reversal keeps it, to say later what the payment had settled."""
    kept = {"amount": str(allocation.amount), "allocated_on": allocation.allocated_on.isoformat()}
    if allocation.invoice_id:
        invoice = invoices[allocation.invoice_id]
        return {"invoice": invoice.number, "invoice_id": invoice.pk, "status": invoice.status, **kept}
    charge = charges[allocation.charge_id]
    return {"charge": charge.pk, "kind": charge.kind, **kept}


def payment_reversed_said(payment: Payment, reversal: PaymentReversal) -> str:
    who = person_name(reversal.reversed_by) if reversal.reversed_by_id else "the system"
    return (f"This payment of {format_money(payment.amount, payment.currency)} was reversed already, on "
            f"{format_day(reversal.reversed_on)} by {who} ({reversal.get_reason_display().lower()}).")


def reversal_why(reversal: PaymentReversal) -> str:
    """Why the payment was reversed, with the note the collector or the bank gave."""
    return reversal.get_reason_display().lower() + (f": {reversal.note}" if reversal.note else "")


def reversed_when_why(reversal: PaymentReversal) -> str:
    """When and why, as a refusal to record a reversed entry again says it
    (by hand, by file or by the API)."""
    return f"reversed on {format_day(reversal.reversed_on)} ({reversal_why(reversal)})"


def reversal_summary(reversal: PaymentReversal, *, invoices: Sequence[Invoice], reopened: Sequence[Invoice],
                     to_charges: Decimal) -> str:
    """How a reversal reads on the timeline: which payment, why, and what is owed again."""
    payment = reversal.payment
    summary = (f"Payment of {format_money(payment.amount, payment.currency)} received on "
               f"{format_day(payment.received_on)} ({_payment_came(payment)}) reversed on "
               f"{format_day(reversal.reversed_on)} — {reversal_why(reversal)}")
    if reopened:
        summary += f"; {_listing([i.number for i in reopened])} open again"
    if others := [i.number for i in invoices if i not in reopened]:
        summary += f"; {_listing(others)} owe{'s' if len(others) == 1 else ''} more again"
    if to_charges:
        summary += f"; {format_money(to_charges, payment.currency)} of late fees and interest owed again"
    return summary


def reversal_owed_again(reversal: PaymentReversal) -> list[str]:
    """The invoices the reversed payment had paid, each once in the order
    paid: money set against one invoice on two days kept a row for each."""
    return list(dict.fromkeys(line["invoice"] for line in reversal.undone if "invoice" in line))


def reversal_said(reversal: PaymentReversal) -> str:
    """What the collector is told once a reversal is recorded."""
    payment = reversal.payment
    numbers = reversal_owed_again(reversal)
    said = (f"Payment of {format_money(payment.amount, payment.currency)} received on "
            f"{format_day(payment.received_on)} reversed")
    if numbers:
        said += f"; {_listing(numbers)} {'is' if len(numbers) == 1 else 'are'} owed again"
    return said + "."


def reversal_undoes(payment: Payment) -> list[str]:
    """What reversing the payment would undo, for the confirm step: a line per
    invoice and per charge, in the order first paid, with all the payment
    paid on it (set against it on two days, money on account kept two rows)."""
    paid: dict[Invoice | LateCharge, Decimal] = {}
    for allocation in payment.allocations.select_related("invoice", "charge").order_by("pk"):
        target = allocation.invoice if allocation.invoice_id else allocation.charge
        paid[target] = paid.get(target, ZERO) + allocation.amount
    lines = []
    for target, amount in paid.items():
        money = format_money(amount, payment.currency)
        if isinstance(target, Invoice):
            again = ("reopens" if target.status == InvoiceStatus.PAID else "owes it again") + (
                f", {format_money(target.open_amount + amount, target.currency)} open")
            lines.append(f"{money} paid on invoice {target.number}: it {again}")
        else:
            lines.append(f"{money} paid on {target.get_kind_display().lower()} "
                         f"{format_money(target.amount, target.currency)}: owed again")
    if left := payment.unallocated_amount():
        lines.append(f"{format_money(left, payment.currency)} kept on account: no longer there to apply")
    return lines


def _commitments_judge_again(customer: Customer, payment: Payment, invoices: Sequence[int], *, actor,
                             on: dt.date) -> None:
    """A promise the payment kept is open again and judged as the daily check
    judges it as of `on` (broken if its grace period is over); so is an
    instalment it paid, and a plan it completed is in good standing again
    until its check says otherwise. Their pauses stand again meanwhile. An
    instalment held back for a dispute, whose rest the payment paid, is
    judged again too: what it is short may be more than the dispute holds
    back (_instalment_hold), and the hold is decided again from nothing."""
    promises = Promise.objects.filter(
        customer=customer, status=PromiseStatus.KEPT, invoices__in=invoices,
        resolved_on__gte=min(payment.received_on, on),
    ).values_list("pk", flat=True).distinct()
    for promise in Promise.objects.select_for_update().filter(pk__in=list(promises)).order_by("pk"):
        promise.status, promise.resolved_on = PromiseStatus.OPEN, None
        promise.save(update_fields=["status", "resolved_on"])
        DunningPause.objects.filter(promise=promise).update(lifted_at=None, lifted_by=None)
        event_record(customer=customer, kind=EventKind.PROMISE, subject=promise, actor=actor,
                     invoices=list(promise.invoices.all()),
                     summary=f"Promise of {format_money(promise.amount, promise.currency)} for "
                     f"{format_day(promise.promised_on)} open again: the payment that kept it was reversed",
                     details={"status": PromiseStatus.OPEN, "before": {"status": PromiseStatus.KEPT}})
        _promise_check(promise, on=on)
    plans = PaymentPlan.objects.filter(
        customer=customer, status__in=[PlanStatus.ACTIVE, PlanStatus.COMPLETED], invoices__in=invoices,
    ).values_list("pk", flat=True).distinct()
    for plan in PaymentPlan.objects.select_for_update().filter(pk__in=list(plans)).order_by("pk"):
        receipts = _Receipts(plan.invoices.all(), since=plan.proposed_on, after=plan.allocations_before)
        covered, unpaid = ZERO, []
        for instalment in plan.instalments.order_by("number"):
            covered += instalment.judged_amount
            end = instalment.due_on + dt.timedelta(days=plan.grace_days)
            if (instalment.status in (InstalmentStatus.PAID, InstalmentStatus.HELD)
                    and receipts.paid_by(end) < covered and not receipts.settled_by(end)):
                unpaid.append(instalment)
        if not unpaid:
            continue
        Instalment.objects.filter(pk__in=[i.pk for i in unpaid]).update(status=InstalmentStatus.DUE)
        Instalment.objects.filter(pk__in=[i.pk for i in unpaid if i.status == InstalmentStatus.HELD]).update(
            deducted_amount=ZERO, held_for=[])
        before = plan.status
        if plan.status == PlanStatus.COMPLETED:
            plan.status = PlanStatus.ACTIVE
            plan.save(update_fields=["status"])
            DunningPause.objects.filter(plan=plan).update(lifted_at=None, lifted_by=None)
        numbers = ", ".join(str(i.number) for i in unpaid)
        event_record(customer=customer, kind=EventKind.PAYMENT_PLAN, subject=plan, actor=actor,
                     invoices=list(plan.invoices.all()),
                     summary=f"Instalment{pluralize(len(unpaid))} {numbers} of the payment plan due again: "
                     "the payment that paid them was reversed",
                     details={"instalments": [i.number for i in unpaid],
                              "before": {"status": before}, "after": {"status": plan.status}})
        _plan_check(plan, on=on)


def _cycle_reopen(customer: Customer, payment: Payment, invoices: Sequence[int]) -> None:
    """The dunning cycle the payment's money closed opens again when the
    account has none open: the next run goes on to the step after the last
    one taken, never the friendly first step again, nor two steps at once
    (the cycle's own stand decides). Only a cycle that chased these invoices
    and closed since the payment came in."""
    if DunningCycle.objects.filter(customer=customer, closed_on__isnull=True).exists():
        return  # the open cycle takes the reopened invoices in where it stands
    last = DunningCycle.objects.filter(customer=customer).order_by("-number").first()
    if (last is not None and last.closed_on >= payment.received_on
            and DunningActionInvoice.objects.filter(action__cycle=last, invoice__in=invoices).exists()):
        DunningCycle.objects.filter(pk=last.pk).update(closed_on=None)


LIVE_PLAN_STATUSES = (PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL)


def unnamed_money_targets(customer: Customer, currency: str):
    """Where money that names no invoice goes: the account's open invoices in
    its currency, but none under open dispute. A customer disputing an invoice
    holds its payment back on purpose; other money applied to it would settle
    the dispute by the back door, and leave an undisputed invoice unpaid and
    chased. Named, a disputed invoice is paid as the customer says.

    But an invoice disputed in part that a live payment plan covers: the plan
    asks for its undisputed rest, and the customer pays its instalments
    without naming invoices like any other; unnamed_money_split leaves the
    disputed part alone."""
    disputed = Dispute.objects.filter(invoice=OuterRef("pk"), status=DisputeStatus.OPEN)
    on_plan = PaymentPlan.objects.filter(invoices=OuterRef("pk"), status__in=LIVE_PLAN_STATUSES)
    in_full = disputed.filter(disputed_in_full_q("disputed_amount", OuterRef("open_amount")))
    return customer.invoices.filter(status=InvoiceStatus.OPEN, currency=currency).filter(
        ~Exists(disputed) | (Exists(on_plan) & ~Exists(in_full))
    ).annotate(disputed_part=Subquery(disputed.values("disputed_amount")[:1]))


def unnamed_money_split(
    *, customer: Customer, currency: str, amount: Decimal, received_on: dt.date,
    held: Mapping[int, Decimal] | None = None,
) -> tuple[list[tuple[Invoice, Decimal]], list[Invoice]]:
    """Where money naming no invoice goes, for payment_record: `amount` spread
    over the invoices the customer owes already, oldest due first, and the
    invoices it does not owe yet, which get what the late fees and interest
    still owed in its currency leave (payment_record pays those in between,
    but those charged after `received_on` or on an invoice under dispute),
    then the rest stays on account. All of them unnamed_money_targets, each
    up to its open amount less what `held` keeps for others.

    A notice asks for the invoices overdue and the charges: a customer who
    pays what it asked has paid the charges, and must not be chased for them
    while its money sits on an invoice not due yet. The charges still come
    after every invoice owed, so that no fee keeps an invoice overdue.

    Owed: due on or before `received_on`, the day the money came in, not the
    day it is recorded: a bank statement read, or a cheque entered, days
    later is the money the customer sent for what it owed then, and what it
    pays is settled as of that day. Owed too, whatever its due date, an
    invoice an open promise or a live payment plan holds: the customer
    undertook to pay it, and the commitment is judged by the money that
    reaches it, which charges taken first would cut short."""
    targets = list(unnamed_money_targets(customer, currency))
    committed = set(
        Invoice.objects.filter(pk__in=[i.pk for i in targets])
        .filter(Q(promises__status=PromiseStatus.OPEN)
                | Q(payment_plans__status__in=LIVE_PLAN_STATUSES))
        .values_list("pk", flat=True)
    )
    owed = [i for i in targets if i.due_date <= received_on or i.pk in committed]
    owed_ids = {i.pk for i in owed}
    # An invoice disputed in part on a plan: what is disputed stays unpaid,
    # as the customer holds it back (see unnamed_money_targets).
    held = dict(held or {})
    for invoice in owed:
        if invoice.disputed_part:
            held[invoice.pk] = held.get(invoice.pk, ZERO) + invoice.disputed_part
    return allocations_oldest_first(owed, amount, held=held), [i for i in targets if i.pk not in owed_ids]


def allocations_oldest_first(
    invoices: Iterable[Invoice], amount: Decimal, *, held: Mapping[int, Decimal] | None = None
) -> list[tuple[Invoice, Decimal]]:
    """`amount` spread over `invoices`, the oldest due first, each up to its
    open amount less what `held` keeps for others (by invoice id); what is
    left over is not applied."""
    held = held or {}
    left, parts = amount, []
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.number)):
        if left <= 0:
            break
        part = min(left, invoice.open_amount - held.get(invoice.pk, ZERO))
        if part > 0:
            parts.append((invoice, part))
            left -= part
    return parts


def credits_to_apply(customer: Customer) -> list[Payment | CreditNote]:
    """The account's money kept on account and credit notes not yet set
    against an invoice in full, oldest first, each with what is `left`."""
    documents = [
        *left_to_apply(Payment.objects, customer, link="payment").order_by("received_on", "pk"),
        *left_to_apply(CreditNote.objects, customer, link="credit_note").order_by("issued_on", "pk"),
    ]
    for document in documents:
        document.left = document.amount - document.allocated
    return sorted(documents, key=_credit_dated)


def _credit_dated(document: Payment | CreditNote) -> dt.date:
    return document.received_on if isinstance(document, Payment) else document.issued_on


def credit_label(document: Payment | CreditNote) -> str:
    """A credit as a manager recognises it on the bank statement or in the ERP."""
    if isinstance(document, Payment):
        reference = document.reference or "without reference"
        name = f"Payment {reference} received {format_day(document.received_on)}"
    else:
        name = f"Credit note {document.number} of {format_day(document.issued_on)}"
    return f"{name}: {format_money(document.left, document.currency)} left"


@dataclass(frozen=True)
class CreditApplied:
    """What credit_apply set a credit against: the invoices, each with its
    part, in the order paid; what went to late fees and interest; what is
    left of the credit on account."""

    parts: list[tuple[Invoice, Decimal]]
    to_charges: Decimal
    left: Decimal


@transaction.atomic
def credit_apply(
    *,
    customer: Customer,
    actor,
    credit: Payment | CreditNote,
    invoices: Sequence[Invoice] = (),
    amount: Decimal | None = None,
    on: dt.date | None = None,
) -> CreditApplied:
    """Money kept on account, or a credit note not set against an invoice,
    set against what the account owes once the customer says what for (a
    remittance advice, a call); `amount` of it, else all that is left. It
    goes where a payment's money would: the invoices named, oldest due first,
    then the late fees and interest still owed; with none named, those of
    unnamed_money_split as of `on` (today): the invoices owed, then the
    charges, then the invoices not yet due; in its currency and none under
    dispute. What is left stays on account.

    A credit named for invoices pays the charges too, as a payment naming
    them does: the notice asked for both, and a fee would otherwise stand
    while the credit sat unused. Every charge still standing, not only those
    charged by the credit's own day: the customer says now what it is for.

    Each part counts from the day the money came in or the note was issued
    (an invoice issued later, a charge made later: from its own date), as if
    the customer had said so then: a payer is not made late by a late cash
    application. Plans, promises, letters and the account's figures follow as
    after a payment, or a credit note."""
    if actor is not None:
        require_act_on(actor, customer)
    on = on or timezone.localdate()
    # The account's lock first, then the invoices': the order a payment takes.
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    is_payment = isinstance(credit, Payment)
    link = "payment" if is_payment else "credit_note"
    # Read again under the lock: another application may have used it since.
    credits = type(credit).objects.filter(pk=credit.pk, customer=customer)
    if is_payment:
        # Reversed meanwhile: the bank took it back, whatever its allocations
        # (gone with the reversal) would leave.
        credits = credits.filter(reversal__isnull=True)
    credit = credits.first()
    if credit is not None:
        credit.left = credit.amount - (Allocation.objects.filter(**{link: credit}).aggregate(
            total=Sum("amount"))["total"] or ZERO)
    if credit is None or credit.left <= 0:
        raise ValidationError({"credit": "Nothing of that credit is left to apply: choose from those "
                                         "listed now."})
    currency = credit.currency
    amount = credit.left if amount is None else amount
    if amount <= 0:
        raise ValidationError({"amount": "Set more than zero against the invoices."})
    places_check(amount, currency, field="amount")
    if amount > credit.left:
        raise ValidationError({"amount": f"Only {format_money(credit.left, currency)} of it is left to "
                                         "apply."})
    if invoices:
        targets = _open_invoices_of(customer, invoices, field="invoices")
        others = [i.number for i in targets if i.currency != currency]
        if others:
            raise ValidationError({"invoices": f"Not in {currency}: {_listing(others)}. A credit is set "
                                               "against invoices in its own currency."})
        disputed = sorted(
            Invoice.objects.filter(pk__in=[i.pk for i in targets], disputes__status=DisputeStatus.OPEN)
            .values_list("number", flat=True)
        )
        if disputed and not is_payment:
            has = "has" if len(disputed) == 1 else "have"
            raise ValidationError({"invoices": f"{_listing(disputed)} {has} an open dispute: a credit on it "
                                               "comes by resolving the dispute, so that it ends too."})
        owed, later = allocations_oldest_first(targets, amount), []
    else:
        # Locked before the split reads them, so what it reads stays so.
        list(unnamed_money_targets(customer, currency).select_for_update())
        owed, later = unnamed_money_split(customer=customer, currency=currency, amount=amount, received_on=on)
    dated = _credit_dated(credit)
    parts = [(_credit_on_invoice(credit, invoice, part, link=link, on=on), part) for invoice, part in owed]
    # A letter not yet posted that this made moot charges nothing: its charges
    # go before the credit's rest could pay them (as after a payment).
    letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)
    applied = sum((part for _, part in parts), ZERO)
    to_charges = _charges_pay(credit, amount - applied, charged_by=None, on=on)
    rest = amount - applied - to_charges
    paid_later = allocations_oldest_first(
        # Read under their locks now, after the charges took their part.
        Invoice.objects.select_for_update().filter(pk__in=[i.pk for i in later], status=InvoiceStatus.OPEN),
        rest,
    ) if rest and later else []
    if paid_later:
        parts += [(_credit_on_invoice(credit, invoice, part, link=link, on=on), part)
                  for invoice, part in paid_later]
        applied = sum((part for _, part in parts), ZERO)
        letters_withdraw_moot(customer_ids=[customer.pk], actor=actor)  # one listing only these, too
    if not parts and not to_charges:
        raise ValidationError({"invoices": f"No invoice in {currency} is open to set it against"
                                           + ("." if invoices else ", but those under dispute, and no late "
                                                                   "fee or interest is owed.")})
    numbers = [i.number for i, _ in parts]
    left = credit.left - applied - to_charges
    if is_payment:
        name = f"Payment {credit.reference or 'without reference'} of {format_day(credit.received_on)}"
    else:
        name = f"Credit note {credit.number}"
    if numbers:
        summary = f"{name} set against {_listing(numbers)}: {format_money(applied, currency)}"
        if to_charges:
            summary += f"; {format_money(to_charges, currency)} to late fees and interest"
    else:
        summary = f"{name} set against late fees and interest: {format_money(to_charges, currency)}"
    if left:
        summary += f"; {format_money(left, currency)} still on account"
    event_record(
        customer=customer, kind=EventKind.PAYMENT_RECEIVED if is_payment else EventKind.CREDIT_NOTE,
        actor=actor, subject=credit, invoices=[i for i, _ in parts], summary=summary,
        details={"applied": str(applied), "currency": currency, "invoices": numbers,
                 "parts": {i.number: str(part) for i, part in parts}, "charges": str(to_charges),
                 "left": str(left)},
    )
    for invoice, _ in parts:
        if invoice.status == InvoiceStatus.PAID:
            event_record(customer=customer, kind=EventKind.INVOICE_PAID, actor=actor, subject=invoice,
                         **invoice_paid_said(invoice))
    latest = max([dated, *(invoice.issue_date for invoice, _ in parts)])  # the latest part's day
    if not is_payment:
        # Less is owed: the plan holding an invoice asks for that much less.
        for invoice, part in parts:
            because = f"credit note {credit.number} on {invoice.number}"
            _plans_follow_dispute(invoice, taken_off=part, because=because,
                                  ended=f"Credit note {credit.number}", actor=actor, on=latest)
    commitments_check(on=latest, customer_ids=[customer.pk], settle_only=True)
    services.behaviour_refresh_on_commit(customer_ids=[customer.pk])
    return CreditApplied(parts=parts, to_charges=to_charges, left=left)


def _credit_on_invoice(credit: Payment | CreditNote, invoice: Invoice, part: Decimal, *,
                       link: str, on: dt.date) -> Invoice:
    """`part` of a credit set against the invoice on day `on`, locked by the
    caller; counted from the credit's day, or the invoice's if it was issued
    later. Applied on `on` (not before the day it counts from): until then
    the invoice stood open and the money on account, and a past day's figures
    read it so whenever they are read. Returns the invoice as it is now."""
    counts_from = max(_credit_dated(credit), invoice.issue_date)
    # Set against the same invoice again the same day: one row; on another day, a row of its own.
    allocation, created = Allocation.objects.get_or_create(
        invoice=invoice, **{link: credit}, applied_on=max(on, counts_from),
        defaults={"amount": part, "allocated_on": counts_from})
    if not created:
        Allocation.objects.filter(pk=allocation.pk).update(amount=F("amount") + part)
    _invoice_take_off(invoice, part, on=counts_from)
    return invoice


# --- The daily check ---------------------------------------------------------------


def commitments_check(
    *, on: dt.date, customer_ids: Iterable[int] | None = None, settle_only: bool = False
) -> dict[str, int]:
    """Find kept and broken promises and paid and missed instalments, as of
    `on`; put what needs a collector on the worklist. Safe to repeat: each
    finding changes a row's status once, under its lock.

    `settle_only` is for the check a payment triggers, as of its date: it
    finds what the payment keeps or pays, and leaves breaking to the daily
    check, as of today. Payments entered out of date order (a bank statement
    newest first, a late entry) must not break a promise that an earlier
    payment, entered a moment later, keeps."""
    counts = dict.fromkeys(["kept", "broken", "due", "open", "paid", "missed", "held", "completed",
                            "withdrawn"], 0)
    # Promises and plans made after `on` too: checked as of a payment's date,
    # one made since can only turn out kept or paid (its invoices were settled
    # by then), never broken, as no grace period can have ended before it was made.
    promises = Promise.objects.filter(status=PromiseStatus.OPEN)
    if settle_only:
        # And those the daily check broke after this payment arrived: the
        # bank statement of a promise's last day is read the next morning,
        # after the check; what arrived in time keeps the promise all the same.
        promises |= Promise.objects.filter(status=PromiseStatus.BROKEN, resolved_on__gt=on)
    plans = PaymentPlan.objects.filter(status=PlanStatus.ACTIVE)
    # Proposals too: paid in full before a manager decides, there is nothing
    # left to approve; part paid, the manager sees how much came in.
    proposals = PaymentPlan.objects.filter(status=PlanStatus.AWAITING_APPROVAL)
    if settle_only:
        # So for an instalment taken for missed: _plan_check looks at whether it came in in time.
        plans |= PaymentPlan.objects.filter(status=PlanStatus.BROKEN, proposed_on__lte=on)
    if customer_ids is not None:
        ids = list(customer_ids)
        promises, plans = promises.filter(customer_id__in=ids), plans.filter(customer_id__in=ids)
        proposals = proposals.filter(customer_id__in=ids)
    for promise in promises.iterator():
        counts[_promise_check(promise, on=on, settle_only=settle_only)] += 1
    for plan in plans.iterator():
        for outcome in _plan_check(plan, on=on, settle_only=settle_only):
            counts[outcome] += 1
    for plan in proposals.iterator():
        counts[_proposal_check(plan, on=on)] += 1
    if customer_ids is not None:
        # Money just came in (or a credit): an account whose ladder has no
        # step left and which owes nothing overdue now has no next action to decide,
        # and the items about its late fees or its being behind may be untrue now.
        worklist.ladder_items_followed_up(customer_ids=ids)
        worklist.settled_items_close(customer_ids=ids)
    # A write-off waiting for a manager whose invoices all came in (or were
    # written off directly) has nothing left to decide.
    counts["write_offs_settled"] = write_off_requests_settled(
        on=on, customer_ids=ids if customer_ids is not None else None)
    return counts


@transaction.atomic
def _proposal_check(plan: PaymentPlan, *, on: dt.date) -> str:
    """A proposal waiting for a manager follows what was paid on its invoices:
    settled in full, it is withdrawn (approving it would ask for nothing);
    otherwise its paid figure is kept up to date for the manager to see."""
    locked = PaymentPlan.objects.select_for_update().select_related("customer").get(pk=plan.pk)
    if locked.status != PlanStatus.AWAITING_APPROVAL:
        return "open"
    if not locked.invoices.filter(status=InvoiceStatus.OPEN).exists():
        _plan_credited_in_full(locked, because="payments received", actor=None, on=on)
        return "withdrawn"
    paid = _Receipts(locked.invoices.all(), since=min(locked.proposed_on, on),
                     after=locked.allocations_before).paid
    if paid != locked.paid_amount:
        PaymentPlan.objects.filter(pk=locked.pk).update(paid_amount=paid)
    return "open"


def _last_allocation() -> int:
    """The newest allocation's id. Called with the commitment's invoices
    locked: a payment on them allocates before that lock or after this call."""
    return Allocation.objects.aggregate(last=Max("pk"))["last"] or 0


class _Receipts:
    """What came in on a commitment's invoices since it was made, read once:
    its payments by day, and when each invoice was settled (however: paid,
    credited, corrected, or cancelled in the ERP, which leaves nothing owed).
    A commitment is judged by what arrived by its deadline."""

    def __init__(self, invoices, *, since: dt.date, after: int | None) -> None:
        allocations = Allocation.objects.filter(invoice__in=invoices, payment__isnull=False,
                                                payment__received_on__gte=since)
        if after is not None:
            allocations = allocations.filter(pk__gt=after)
        self.payments = list(allocations.values_list("payment__received_on", "amount"))
        self.settled_on = [settled or cancelled
                           for settled, cancelled in invoices.values_list("settled_on", "cancelled_on")]

    def paid_by(self, end: dt.date) -> Decimal:
        return sum((amount for day, amount in self.payments if day <= end), ZERO)

    @property
    def paid(self) -> Decimal:
        """Everything recorded so far, whatever date the check is as of."""
        return sum((amount for _, amount in self.payments), ZERO)

    def settled_by(self, end: dt.date) -> bool:
        return all(day is not None and day <= end for day in self.settled_on)


@transaction.atomic
def _promise_check(promise: Promise, *, on: dt.date, settle_only: bool = False) -> str:
    locked = Promise.objects.select_for_update().select_related("customer").get(pk=promise.pk)
    # Broken by the daily check, and a payment entered since: judged again on
    # everything that arrived by the end of its grace period.
    judged_again = settle_only and locked.status == PromiseStatus.BROKEN
    if locked.status != PromiseStatus.OPEN and not judged_again:
        return "open"
    # Only what arrived by the end of the grace period keeps a promise: a payment
    # recorded late, before the daily check came round, does not turn it kept.
    end = locked.broken_after if judged_again else min(on, locked.broken_after)
    # Checked as of a payment received before it was made (entered late),
    # that payment counts: it is what settled the invoices.
    receipts = _Receipts(locked.invoices.all(), since=min(locked.made_on, on),
                         after=locked.allocations_before)
    paid = receipts.paid_by(end)
    money = format_money(locked.amount, locked.currency)
    if paid >= locked.amount or receipts.settled_by(end):
        after_all = (" (paid in time, entered after it was taken for broken)"
                     if judged_again else "")
        # Settled before it was made (a payment entered late): kept from the day it was made.
        _promise_close(locked, PromiseStatus.KEPT, paid=paid, on=max(on, locked.made_on),
                       summary=f"Promise kept: {format_money(paid, locked.currency)} paid of {money} "
                       f"promised for {format_day(locked.promised_on)}{after_all}")
        return "kept"
    if settle_only:
        return "open"
    if on > locked.broken_after:
        ended = _ladder_ended(locked.customer, on=on)
        _promise_close(locked, PromiseStatus.BROKEN, paid=paid, on=on,
                       summary=f"Promise broken: {money} was promised for {format_day(locked.promised_on)}, "
                       f"{format_money(paid, locked.currency)} paid; "
                       + (worklist.LADDER_ENDED_SAYS if ended else "dunning resumes"))
        title = (f"Broken promise: {money} promised for {format_day(locked.promised_on, year=False)}, "
                 f"{format_money(paid, locked.currency)} paid")
        worklist.item_add(kind=WorkKind.PROMISE_BROKEN, key=f"promise_broken:{locked.pk}",
                          customer=locked.customer, title=title, due_on=on, promise=locked)
        if ended:
            worklist.ladder_ended_items(on=on, customer_ids=[locked.customer_id], again=True, record=False)
        return "broken"
    if locked.promised_on <= on:
        worklist.item_add(
            kind=WorkKind.PROMISE_DUE, key=f"promise_due:{locked.pk}", customer=locked.customer,
            title=f"Promise due: {money} by {format_day(locked.promised_on, year=False)} "
            f"({format_money(paid, locked.currency)} paid so far)",
            due_on=locked.promised_on, promise=locked,
        )
        return "due"
    return "open"


def _promise_close(
    promise: Promise, status: str, *, paid: Decimal, on: dt.date, summary: str, actor=None
) -> None:
    """Kept, broken or withdrawn: the promise ends, its pauses lift and its open items close."""
    before = promise.status
    promise.status, promise.resolved_on, promise.paid_amount = status, on, paid
    promise.save(update_fields=["status", "resolved_on", "paid_amount"])
    _pauses_lift(DunningPause.objects.filter(promise=promise), actor=actor)
    worklist.items_close(promise=promise, actor=actor)
    event_record(customer=promise.customer, kind=EventKind.PROMISE, subject=promise, actor=actor,
                 invoices=list(promise.invoices.all()), summary=summary,
                 details={"status": status, "paid": str(paid), "before": {"status": before}})


def promises_paid(promises: Sequence[Promise]) -> dict[int, Decimal]:
    """What came in so far on each open promise's invoices, as the check
    counts it (payments received since it was made, allocated after it), in
    the promise's currency: its invoices are all in it. One query for all of
    them, for the account page. A promise nothing came in on is left out."""
    if not promises:
        return {}
    # One filter() call: its conditions on the promise join the same promise row.
    paid = (Allocation.objects
            .filter(Q(invoice__promises__allocations_before__isnull=True)
                    | Q(pk__gt=F("invoice__promises__allocations_before")),
                    invoice__promises__in=promises, payment__isnull=False,
                    payment__received_on__gte=F("invoice__promises__made_on"))
            .values_list("invoice__promises").annotate(paid=Sum("amount")))
    return {pk: amount for pk, amount in paid if amount}


@transaction.atomic
def _plan_check(plan: PaymentPlan, *, on: dt.date, settle_only: bool = False) -> list[str]:
    locked = PaymentPlan.objects.select_for_update().select_related("customer").get(pk=plan.pk)
    judged_again = settle_only and locked.status == PlanStatus.BROKEN
    if locked.status != PlanStatus.ACTIVE and not judged_again:
        return []
    outcomes, covered = [], ZERO
    # Checked as of a payment received before it was agreed (entered late),
    # that payment counts: it is what settled the invoices.
    receipts = _Receipts(locked.invoices.all(), since=min(locked.proposed_on, on),
                         after=locked.allocations_before)
    # The plan's paid figure is everything recorded: a check as of a backdated
    # payment's date must not lower it below what later payments brought.
    paid = receipts.paid
    instalments = list(locked.instalments.order_by("number"))
    if judged_again and not _plan_missed_in_time(locked, instalments, receipts):
        return []
    # What earlier instalments held back already for the disputes open now.
    held = sum((i.deducted_amount for i in instalments if i.status == InstalmentStatus.HELD), ZERO)
    for instalment in instalments:
        covered += instalment.amount - instalment.deducted_amount
        if instalment.status == InstalmentStatus.HELD and receipts.settled_by(on):
            # Its invoices were settled however (paid, credited): nothing is held back any more.
            instalment.status = InstalmentStatus.PAID
            instalment.save(update_fields=["status"])
        if instalment.status != InstalmentStatus.DUE:
            continue
        # What arrived by this instalment's date plus grace counts for it; a
        # payment recorded late does not turn a missed instalment paid.
        end = min(on, instalment.due_on + dt.timedelta(days=locked.grace_days))
        if receipts.paid_by(end) >= covered or receipts.settled_by(end):
            instalment.status = InstalmentStatus.PAID
            instalment.save(update_fields=["status"])
            outcomes.append("paid")
            event_record(
                customer=locked.customer, kind=EventKind.PAYMENT_PLAN, subject=locked,
                invoices=list(locked.invoices.all()),
                summary=f"Instalment {instalment.number} of {len(instalments)} paid "
                f"({format_money(instalment.amount, locked.currency)} due {format_day(instalment.due_on)})",
                details={"instalment": instalment.number, "paid": str(paid)},
            )
        elif on > instalment.due_on + dt.timedelta(days=locked.grace_days):
            if settle_only:
                break  # missed: the daily check's to record, as of today; nothing after it is judged
            short = covered - receipts.paid_by(end)
            # The customer may hold back what the open disputes contest of what
            # their invoices owed by then (not what a plan left out for them),
            # less what earlier instalments held back already.
            owed = _disputed_owed(locked, by=end)
            if short <= sum(owed.values(), ZERO) - held:
                _instalment_hold(locked, instalment, short=short, of=len(instalments), owed=owed)
                covered, held = covered - short, held + short
                outcomes.append("held")
                continue
            if _credit_taken_early(locked, instalments, instalment, short=short, end=end):
                covered -= short
                outcomes.append("paid")
                continue
            instalment.status = InstalmentStatus.MISSED
            instalment.save(update_fields=["status"])
            outcomes.append("missed")
            _plan_break(locked, instalment, paid=paid, paid_in_time=receipts.paid_by(end), due=covered,
                        deadline=end, on=on)
            return outcomes
    if any(i.status == InstalmentStatus.HELD for i in instalments):
        _plan_pause_while_held(locked, on=on)
    if all(i.status == InstalmentStatus.PAID for i in instalments):
        locked.status, locked.paid_amount = PlanStatus.COMPLETED, paid
        locked.save(update_fields=["status", "paid_amount"])
        _pauses_lift(DunningPause.objects.filter(plan=locked))
        event_record(
            customer=locked.customer, kind=EventKind.PAYMENT_PLAN, subject=locked,
            invoices=list(locked.invoices.all()),
            summary=f"Payment plan completed: {format_money(paid, locked.currency)} paid in "
            f"{len(instalments)} instalments",
            details={"status": PlanStatus.COMPLETED, "paid": str(paid)},
        )
        outcomes.append("completed")
    elif paid != locked.paid_amount:
        PaymentPlan.objects.filter(pk=locked.pk).update(paid_amount=paid)
    return outcomes


def _plan_pause_while_held(plan: PaymentPlan, *, on: dt.date) -> None:
    """A plan holding back an instalment for an open dispute is in good
    standing until the dispute ends, however long that takes: its pauses,
    set to end with its last instalment's grace, hold at least `on` plus the
    grace too, renewed by each daily check before the dunning run. Without
    this, the last instalment's date passing while the dispute stayed open
    resumed dunning of the plan's other invoices, still owing what was held
    back. When the dispute ends, what was held back is asked for by a date,
    and the pauses end with it (_instalment_asking)."""
    until = on + dt.timedelta(days=plan.grace_days)
    DunningPause.objects.filter(plan=plan, lifted_at__isnull=True, ends_on__lt=until).update(ends_on=until)


def _disputed_open(plan: PaymentPlan) -> Decimal:
    """What the customer may still hold back from the plan for its open disputes."""
    return sum(_disputed_owed(plan).values(), ZERO)


def _disputed_owed(plan: PaymentPlan, *, by: dt.date | None = None) -> dict[int, Decimal]:
    """What the customer may hold back from the plan's instalments for each
    of its invoices under open dispute, as of the end of `by` (None: now):
    what the dispute contests, up to what the invoice owed then (what it
    owes now and the payments on it received since), less what the plan
    left out for that dispute when it was proposed (it never asked for
    that). An instalment is judged on the payments that came in by its date
    plus grace (`by`), so what may be held back for it is judged then too:
    the customer who pays the part they do not contest the next morning,
    before the daily check, has not held back less than they had the day before."""
    disputes = list(Dispute.objects.filter(invoice__in=plan.invoices.all(), status=DisputeStatus.OPEN)
                    .values_list("pk", "invoice", "disputed_amount", "invoice__open_amount"))
    owed = {invoice_id: open_amount for _, invoice_id, _, open_amount in disputes}
    if by is not None:
        paid_since = Allocation.objects.filter(invoice__in=list(owed), payment__isnull=False,
                                               payment__received_on__gt=by)
        for invoice_id, amount in paid_since.values_list("invoice", "amount"):
            owed[invoice_id] += amount
    left_out = _left_out(plan)
    return {invoice_id: max(min(disputed, owed[invoice_id]) - left_out.get(pk, ZERO), ZERO)
            for pk, invoice_id, disputed, _ in disputes}


def _left_out(plan: PaymentPlan) -> dict[int, Decimal]:
    """What the plan left out of its invoices for each dispute open when it
    was proposed (PaymentPlan.disputes_left_out), by the dispute's id."""
    return {int(pk): Decimal(amount) for pk, amount in plan.disputes_left_out}


def _instalment_hold(plan: PaymentPlan, instalment: Instalment, *, short: Decimal, of: int,
                     owed: Mapping[int, Decimal]) -> None:
    """The instalment's date passed `short` of it, no more than the open
    disputes on the plan's invoices contest (_disputed_owed): the customer
    rightly holds that back while the dispute is open (its pause stops
    dunning of what it contests too). The plan goes on; what
    was held back for each dispute is settled when that dispute ends
    (dispute_resolve)."""
    # Which dispute it is held back for: the newest first (a dispute opened
    # since the last instalment is what the customer answers with this one),
    # each up to what its invoice owed (`owed`, see _disputed_owed) less what
    # other instalments hold back for it already.
    taken: dict[int, Decimal] = {}
    for other in plan.instalments.filter(status=InstalmentStatus.HELD).exclude(pk=instalment.pk):
        for pk, amount in other.held_for:
            taken[int(pk)] = taken.get(int(pk), ZERO) + Decimal(amount)
    held_for, left = [], short
    for dispute in (Dispute.objects.filter(invoice__in=list(owed), status=DisputeStatus.OPEN)
                    .order_by("-opened_on", "-pk")):
        part = min(left, max(owed[dispute.invoice_id] - taken.get(dispute.pk, ZERO), ZERO))
        if part:
            held_for.append([dispute.pk, str(part)])
            left -= part
    instalment.status, instalment.deducted_amount = InstalmentStatus.HELD, short
    instalment.held_for = held_for
    instalment.save(update_fields=["status", "deducted_amount", "held_for"])
    disputed = _listing(list(plan.invoices.filter(disputes__status=DisputeStatus.OPEN)
                             .order_by("number").values_list("number", flat=True)))
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, subject=plan, invoices=list(plan.invoices.all()),
        summary=f"Instalment {instalment.number} of {of}: {format_money(short, plan.currency)} held back "
        f"while the dispute on {disputed} is open ({format_money(instalment.amount, plan.currency)} due "
        f"{format_day(instalment.due_on)}); the plan goes on",
        details={"instalment": instalment.number, "held": str(short), "disputed": disputed},
    )


def _credit_taken_early(plan: PaymentPlan, instalments: list[Instalment], instalment: Instalment, *,
                        short: Decimal, end: dt.date) -> bool:
    """Whether `instalment` came in `short` because the customer took a credit
    off it: credit notes (a dispute's or one recorded on the account) or
    corrections on the plan's invoices since it was proposed, of at least
    that much besides what earlier instalments took off already. A credit
    comes off the plan's last instalments (_plan_reduce), but customers
    commonly deduct it from a payment before ("we took the credit note off
    this month's payment"). If so, the
    instalment counts as paid less `short`, and `short` goes back where the
    credit came off, the last instalment first, on its date as agreed, even
    one the credit took off altogether (the customer who took a credit bigger
    than the last instalment off this one still expects that one): the plan
    asks for the same total, only where the customer now expects it. A shortfall beyond
    the credit is missed as ever, and so is one with nothing after it to
    move it to. `instalments` gains any instalment given back."""
    later = [i for i in instalments if i.number > instalment.number and i.status == InstalmentStatus.DUE]
    credited = {number: taken for number, taken in _credited_instalments(plan).items()
                if number > instalment.number}
    if not later and not credited:
        return False
    credits = _plan_credits(plan, end=end)
    # Each credit is the customer's to take off once, from whichever payment
    # they like, not only the one after it: a customer may pay the next
    # instalment in full and keep the credit for a later one. What earlier
    # instalments took off already (the oldest credits first) is not theirs
    # to take again; what one held back for a dispute (it says which) is
    # that dispute's to settle. Nor is what this one took off already, when
    # a payment of it was reversed and it is judged again
    # (_commitments_judge_again): that is credit used, and `short` is taken
    # off on top of it.
    taken = sum((i.deducted_amount for i in instalments
                 if ((i.number < instalment.number and i.status == InstalmentStatus.PAID)
                     or i.pk == instalment.pk) and not i.held_for), ZERO)
    unused = []
    for credit in credits:
        used = min(taken, credit.amount)
        taken -= used
        if credit.amount - used:
            unused.append(replace(credit, amount=credit.amount - used))
    if short > sum((credit.amount for credit in unused), ZERO):
        return False
    # Where `short` goes back: first planned, then done, so that a shortfall
    # with nowhere to go leaves the schedule as it was.
    rows = {i.number: i for i in instalments}
    moves, left = [], short
    for number in sorted(credited, reverse=True):
        due_on, taken = credited[number]
        if number in rows and rows[number].status != InstalmentStatus.DUE:
            continue
        part = min(left, taken)
        moves.append((number, due_on, part))
        credited[number] = (due_on, taken - part)
        left -= part
        if not left:
            break
    if left and not later:
        return False
    back = []
    for number, due_on, part in moves:
        row = rows.get(number)
        if row is None:
            row = Instalment.objects.create(plan=plan, number=number, due_on=due_on, amount=part)
            instalments.append(row)
        else:
            row.amount += part
            row.save(update_fields=["amount"])
        back.append(row)
    if left:
        later[-1].amount += left
        later[-1].save(update_fields=["amount"])
        back.append(later[-1])
    instalments.sort(key=lambda i: i.number)
    rest = {number: taken for number, taken in _credited_instalments(plan).items()
            if number <= instalment.number}
    plan.credited_instalments = _credited_rows({**rest, **credited})
    plan.save(update_fields=["credited_instalments"])
    instalment.status, instalment.deducted_amount = InstalmentStatus.PAID, instalment.deducted_amount + short
    instalment.save(update_fields=["status", "deducted_amount"])
    # The plan holds dunning until its last instalment (plus grace), a given back one included.
    last_day = max(i.due_on for i in instalments)
    DunningPause.objects.filter(plan=plan, lifted_at__isnull=True).update(
        ends_on=last_day + dt.timedelta(days=plan.grace_days))
    which = _listing(list(dict.fromkeys(credit.name for credit in unused)))
    back = sorted({i.number: i for i in back}.values(), key=lambda i: i.number)
    asked = ", and ".join(f"instalment {i.number}{' instead' if n == 0 else ''}, now "
                          f"{format_money(i.amount, plan.currency)} due {format_day(i.due_on)}"
                          for n, i in enumerate(back))
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, subject=plan, invoices=list(plan.invoices.all()),
        summary=f"Instalment {instalment.number} of {len(instalments)} paid less "
        f"{format_money(short, plan.currency)} taken off for {which}: that much is asked with {asked}",
        details={"instalment": instalment.number, "taken_off": str(short),
                 "moved_to": [i.number for i in back],
                 "credit_notes": list(dict.fromkeys(c.note for c in unused if c.note)),
                 "corrections": [c.correction for c in unused if c.correction]},
    )
    return True


@dataclass(frozen=True)
class _Credit:
    name: str  # as the customer knows it
    amount: Decimal  # what it took off the plan's invoices
    note: str = ""  # the credit note's number
    correction: int | None = None  # the dispute that corrected the invoice


def _plan_credits(plan: PaymentPlan, *, end: dt.date) -> list[_Credit]:
    """What credits took off the plan's invoices since it was proposed, up
    to `end`, oldest first. Credit notes by their allocations: a note kept on
    the account and set against an invoice of the plan counts, with what it
    took off that invoice, though it names no invoice; and one set against
    them before the plan was made, which its total already leaves out, does
    not, even the same day (on plans older than the allocation mark, by day)."""
    allocations = Allocation.objects.filter(invoice__in=plan.invoices.all(), credit_note__isnull=False,
                                            allocated_on__lte=end)
    if plan.allocations_before is not None:
        allocations = allocations.filter(pk__gt=plan.allocations_before)
    else:
        allocations = allocations.filter(allocated_on__gte=plan.proposed_on)
    notes = [(a.allocated_on, a.pk, _Credit(name=f"credit note {a.credit_note.number} on {a.invoice.number}",
                                            amount=a.amount, note=a.credit_note.number))
             for a in allocations.select_related("credit_note", "invoice")]
    corrections = [(d.resolved_on, d.pk, _Credit(name=f"the correction of {d.invoice.number}",
                                                 amount=d.taken_off_amount, correction=d.pk))
                   for d in Dispute.objects.filter(
                       invoice__in=plan.invoices.all(), status=DisputeStatus.RESOLVED,
                       outcome=DisputeOutcome.CORRECTED_INVOICE, resolved_on__range=(plan.proposed_on, end),
                   ).select_related("invoice")]
    return [credit for *_, credit in sorted(notes + corrections, key=lambda c: c[:2])]


def _plan_missed_in_time(plan: PaymentPlan, instalments: list[Instalment], receipts: _Receipts) -> bool:
    """Whether the instalment the daily check took for missed had come in by
    the end of its grace period after all (a payment entered after the check,
    the bank statement of its last day read the next morning). If so, the
    plan is back in good standing: its pauses hold again and the missed
    instalment's item closes; the caller then finds the instalment paid."""
    missed = next((i for i in instalments if i.status == InstalmentStatus.MISSED), None)
    if missed is None:
        return False
    end = missed.due_on + dt.timedelta(days=plan.grace_days)
    due = sum((i.amount - i.deducted_amount for i in instalments if i.number <= missed.number), ZERO)
    if receipts.paid_by(end) < due and not receipts.settled_by(end):
        return False
    # Its invoices have since gone to another promise or plan: that one holds them now.
    if (Invoice.objects.filter(pk__in=plan.invoices.values("pk"))
            .filter(Q(promises__status=PromiseStatus.OPEN)
                    | Q(payment_plans__status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL]))
            .exists()):
        return False
    missed.status = InstalmentStatus.DUE
    missed.save(update_fields=["status"])
    plan.status = PlanStatus.ACTIVE
    plan.save(update_fields=["status"])
    # The pauses the break lifted (by nobody); one a person lifted stays lifted.
    DunningPause.objects.filter(plan=plan, lifted_by__isnull=True).update(lifted_at=None)
    worklist.items_close(plan=plan)
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, subject=plan, invoices=list(plan.invoices.all()),
        summary=f"Payment plan back in good standing: instalment {missed.number} came in by "
        f"{format_day(end)} (entered after it was taken for missed); dunning waits again",
        details={"before": {"status": PlanStatus.BROKEN}, "after": {"status": PlanStatus.ACTIVE},
                 "instalment": missed.number},
    )
    return True


def _plan_break(plan: PaymentPlan, instalment: Instalment, *, paid: Decimal, paid_in_time: Decimal,
                due: Decimal, deadline: dt.date, on: dt.date):
    """`paid`: everything recorded on the plan; `paid_in_time`: what of it had
    come in by the missed instalment's `deadline` (its date plus grace), which
    is what the instalment was short of: money that came later does not make
    it less missed, and must not make it read "0.00 short"."""
    ended = _ladder_ended(plan.customer, on=on)
    plan.status, plan.paid_amount = PlanStatus.BROKEN, paid
    plan.save(update_fields=["status", "paid_amount"])
    _pauses_lift(DunningPause.objects.filter(plan=plan))
    short = format_money(due - paid_in_time, plan.currency)
    worklist.item_add(
        kind=WorkKind.INSTALMENT_MISSED, key=f"instalment_missed:{instalment.pk}", customer=plan.customer,
        title=f"Missed instalment {instalment.number} of {format_money(instalment.amount, plan.currency)} "
        f"due {format_day(instalment.due_on, year=False)}: {short} short "
        f"by {format_day(deadline, year=False)}",
        due_on=on, plan=plan,
    )
    event_record(
        customer=plan.customer, kind=EventKind.PAYMENT_PLAN, subject=plan,
        invoices=list(plan.invoices.all()),
        summary=f"Instalment {instalment.number} missed ({format_money(instalment.amount, plan.currency)} "
        f"due {format_day(instalment.due_on)}, {short} short by {format_day(deadline)}): the plan is broken"
        + (f"; {worklist.LADDER_ENDED_SAYS}" if ended else " and dunning resumes"),
        details={"status": PlanStatus.BROKEN, "instalment": instalment.number, "paid": str(paid),
                 "paid_in_time": str(paid_in_time), "due": str(due)},
    )
    if ended:
        worklist.ladder_ended_items(on=on, customer_ids=[plan.customer_id], again=True, record=False)


def _ladder_ended(customer: Customer, *, on: dt.date) -> bool:
    """Whether the account's open cycle has no step of its ladder left: a
    promise or plan that breaks then resumes nothing, and says so."""
    return customer.pk in worklist.ladders_ended(on=on, customer_ids=[customer.pk])


# --- Helpers ----------------------------------------------------------------------


def _open_invoices_of(customer: Customer, invoices: Iterable[Invoice], *, field: str) -> list[Invoice]:
    ids = {i.pk for i in invoices}
    if not ids:
        raise ValidationError({field: "Choose at least one invoice."})
    found = list(
        Invoice.objects.select_for_update().filter(pk__in=ids, customer=customer, status=InvoiceStatus.OPEN)
        .order_by("due_date", "number")
    )
    if len(found) != len(ids):
        raise ValidationError({field: "Choose open invoices of this account."})
    return found


def disputed_parts(invoices: Sequence[Invoice]) -> dict[int, tuple[int, Decimal]]:
    """The open dispute of each of `invoices` that has one (an invoice has
    one at most), by invoice id: the dispute's id and how much of what the
    invoice owes now it contests."""
    open_amounts = {i.pk: i.open_amount for i in invoices}
    return {invoice_id: (pk, min(amount, open_amounts[invoice_id]))
            for pk, invoice_id, amount in Dispute.objects.filter(invoice__in=list(open_amounts),
                                                                 status=DisputeStatus.OPEN)
            .values_list("pk", "invoice", "disputed_amount")}


def _not_disputed_in_full(invoices: Sequence[Invoice], disputed: Mapping[int, tuple[int, Decimal]], *,
                          field: str, out_of: str) -> None:
    whole = sorted(i.number for i in invoices
                   if i.pk in disputed and disputed_in_full(disputed[i.pk][1], i.open_amount))
    if whole:
        is_, it = ("is", "it") if len(whole) == 1 else ("are", "them")
        raise ValidationError({field: f"{_listing(whole)} {is_} disputed in full: settle the "
                                      f"dispute first, or leave {it} out of {out_of}."})


def _owed_and_disputed(invoices: Sequence[Invoice],
                       disputed: Mapping[int, tuple[int, Decimal]]) -> tuple[Decimal, Decimal]:
    """What `invoices` owe, and how much of it their open disputes contest."""
    return (sum((i.open_amount for i in invoices), ZERO),
            sum((part for _, part in disputed.values()), ZERO))


def _owed_said(owed: Decimal, contested: Decimal, currency: str) -> str:
    if not contested:
        return format_money(owed, currency)
    return (f"{format_money(owed - contested, currency)} not disputed ({format_money(contested, currency)} "
            f"of the {format_money(owed, currency)} open is under dispute)")


def _not_committed(invoices: Sequence[Invoice], *, field: str) -> None:
    """One open promise or live plan per invoice: a payment must count towards
    one commitment, not towards each one that names the same invoice."""
    taken = sorted(set(
        Invoice.objects.filter(pk__in=[i.pk for i in invoices])
        .filter(Q(promises__status=PromiseStatus.OPEN)
                | Q(payment_plans__status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL]))
        .values_list("number", flat=True)
    ))
    if taken:
        raise ValidationError({field: f"{_listing(taken)} already {'has' if len(taken) == 1 else 'have'} "
                                      "an open promise or payment plan."})


def _one_currency(invoices: Sequence[Invoice], *, field: str) -> str:
    currencies = {i.currency for i in invoices}
    if len(currencies) > 1:
        raise ValidationError({field: "Choose invoices in one currency."})
    return currencies.pop()


def _listing(numbers: Sequence[str]) -> str:
    if len(numbers) <= 3:
        return ", ".join(numbers)
    return f"{', '.join(numbers[:3])} and {len(numbers) - 3} more"

