"""The per-customer timeline: recording events with the invoices they concern,
and reading them newest first, a page at a time.

Pages are keyset-paginated on (occurred_at, id), the order of the
`event_customer_timeline` index: the page at depth 10,000 costs what the
first one costs, where OFFSET would read and drop 10,000 rows first.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape as html_escape

from django.contrib.contenttypes.models import ContentType
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.db.models.fields.json import KT
from django.db.models.fields.tuple_lookups import TupleLessThan
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ar_collections.models import Invoice, MailPurpose, OutgoingMail, TimelineEventInvoice
from arcrm.dates import format_day
from arcrm.db import CompiledRead
from arcrm.money import format_money
from arcrm.text import name_of
from customers.models import Customer, EventKind, TimelineEvent

PAGE_SIZE = 25
_CURSOR_FORMAT = "%Y%m%d%H%M%S%f"


class BadCursor(ValueError):
    """A "load more" position that this page did not hand out."""


def event_record(
    *,
    customer: Customer,
    kind: str,
    summary: str,
    actor=None,
    details: dict | None = None,
    subject=None,
    invoices: Iterable[Invoice | int] = (),
    occurred_at: dt.datetime | None = None,
) -> TimelineEvent:
    """Append one event to the customer's timeline, linked to the invoices it
    concerns so that filtering by invoice finds it."""
    event = TimelineEvent.objects.create(
        customer=customer, kind=kind, summary=summary, actor=actor, details=details or {},
        occurred_at=occurred_at or timezone.now(),
        subject_type=ContentType.objects.get_for_model(subject) if subject is not None else None,
        subject_id=subject.pk if subject is not None else None,
    )
    invoice_ids = {i if isinstance(i, int) else i.pk for i in invoices}
    if subject is not None and isinstance(subject, Invoice):
        invoice_ids.add(subject.pk)
    events_link({event.pk: invoice_ids})
    return event


def invoice_issued(invoice: Invoice, *, at: dt.datetime, actor=None, **details) -> TimelineEvent:
    """The "invoice issued" event, not saved yet: the demo's history and the
    ERP import write many at once (`bulk_create`, then `events_link`)."""
    return TimelineEvent(
        customer_id=invoice.customer_id, kind=EventKind.INVOICE_ISSUED, actor=actor, occurred_at=at,
        summary=f"Invoice {invoice.number} issued: {format_money(invoice.total_amount, invoice.currency)}, "
                f"due {format_day(invoice.due_date)}",
        details={"number": invoice.number, "amount": str(invoice.total_amount), "currency": invoice.currency,
                 "due_date": invoice.due_date.isoformat(), **details},
        subject_type=ContentType.objects.get_for_model(Invoice), subject_id=invoice.pk,
    )


def invoice_paid_said(invoice: Invoice) -> dict:
    """The "invoice paid" event's summary and details for `invoice`, now
    settled: "Invoice INV-7 paid in full, 48 days late" (nothing said when
    on time), counted as the account's payment behaviour counts it. One
    wording for the payments recorded by hand, the credits set against
    invoices and the demo's history, so that the timeline reads them alike.
    Given to event_record or TimelineEvent as keywords."""
    late = invoice.days_late(on=invoice.settled_on)
    return {
        "summary": f"Invoice {invoice.number} paid in full"
                   + (f", {late} day{'s' if late != 1 else ''} late" if late else ""),
        "details": {"number": invoice.number, "days_late": late},
    }


def events_link(invoices_by_event: dict[int, Iterable[int]]) -> None:
    """Link events to invoices in one statement (repeats are ignored)."""
    TimelineEventInvoice.objects.bulk_create(
        [TimelineEventInvoice(event_id=e, invoice_id=i) for e, ids in invoices_by_event.items() for i in ids],
        ignore_conflicts=True,
    )


def links_backfill(*, event_model, link_model, invoice_model, invoice_type_id: int, batch: int = 5000) -> int:
    """Link events recorded without links (imports, older versions) to the
    invoices they name: their subject, or the numbers in their details
    ("invoices": [...] or "invoice"/"number"). Models are passed in so a
    migration can use its historical ones. Returns links made."""
    made = 0
    # NOT EXISTS per row (an index probe), not NOT IN over every link made so far.
    unlinked = ~Exists(link_model.objects.filter(event_id=OuterRef("pk")))
    events = event_model.objects.filter(unlinked).order_by("pk")
    last = 0
    while chunk := list(events.filter(pk__gt=last).values("pk", "customer_id", "subject_type_id",
                                                          "subject_id", "details")[:batch]):
        last = chunk[-1]["pk"]
        wanted: dict[int, set] = {}
        numbers: set[str] = set()
        for row in chunk:
            names = set()
            details = row["details"] or {}
            if isinstance(details.get("invoices"), list):
                names.update(str(n) for n in details["invoices"])
            for key in ("invoice", "number"):
                if isinstance(details.get(key), str):
                    names.add(details[key])
            wanted[row["pk"]] = names
            numbers |= names
        ids = dict(invoice_model.objects.filter(number__in=numbers).values_list("number", "pk"))
        customers = dict(invoice_model.objects.filter(number__in=numbers).values_list("pk", "customer_id"))
        links = []
        for row in chunk:
            found = {ids[n] for n in wanted[row["pk"]] if n in ids}
            if row["subject_type_id"] == invoice_type_id and row["subject_id"]:
                found.add(row["subject_id"])
            links += [link_model(event_id=row["pk"], invoice_id=i) for i in found
                      if customers.get(i, row["customer_id"]) == row["customer_id"]]
        link_model.objects.bulk_create(links, ignore_conflicts=True)
        made += len(links)
    return made


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """An event as the timeline shows it, everything worked out in Python:
    the page renders plain values (the template engine's lookups and filters
    cost more than the query)."""

    pk: int
    kind: str
    label: str
    occurred_at: dt.datetime
    when: str
    summary: str
    actor: str
    action_id: int | None
    has_letter: bool


@dataclass(frozen=True)
class TimelinePage:
    events: list[TimelineRow]
    next_cursor: str | None


# Invoice copies, statements of account and the cause of a cycle were
# recorded, and are, as notes (the timeline is append-only: a stored row keeps
# its kind), which mixed them in with what collectors write. They are told
# apart when read, by what only the code writes: a note about something (a
# hand-written one has no subject) whose summary names the copy
# (workspace.invoice_copy_send, paper.document_name), the statement
# (statements.statement_send, paper.document_name) or the cause
# (services.cause_record). A statement e-mailed has no subject: its details
# hold the balances it gave, which no hand-written note has. The timeline
# shows and filters this kind, `shown_kind`, in place of the stored one.
INVOICE_COPY = "invoice_copy"
STATEMENT = "statement"
CAUSE = "cause"
_WRITTEN_BY_US = Q(kind=EventKind.NOTE) & (Q(subject_type__isnull=False) | Q(details__has_key="balances"))


# The outbox's word that a copy or a statement is not sent yet, or not sent at
# all (outbox._failed), is a note about the mail itself, its summary the
# mail's: told apart by that mail's purpose, an index probe for those few rows.
# Only these notes have both a subject and the mail in their details (a
# statement e-mailed names its mail but has no subject).
def _mail_not_sent(purpose: str) -> Q:
    return (_WRITTEN_BY_US & Q(subject_id__isnull=False, details__has_key="mail")
            & Exists(OutgoingMail.objects.filter(pk=OuterRef("subject_id"), purpose=purpose)))


_SHOWN_KIND = Case(
    When(_WRITTEN_BY_US & Q(summary__startswith="Copy of invoice "), then=Value(INVOICE_COPY)),
    When(_WRITTEN_BY_US & Q(summary__startswith="Statement of account "), then=Value(STATEMENT)),
    When(_WRITTEN_BY_US & Q(summary__startswith="Cause noted: "), then=Value(CAUSE)),
    When(_mail_not_sent(MailPurpose.INVOICE_COPY), then=Value(INVOICE_COPY)),
    When(_mail_not_sent(MailPurpose.STATEMENT), then=Value(STATEMENT)),
    default=F("kind"),
)
_LABELS = {**dict(EventKind.choices), INVOICE_COPY: "Invoice copy", STATEMENT: "Statement", CAUSE: "Cause"}
# Of the details only what the row links to: a notice's details hold its whole
# text, which the page would fetch and parse for nothing.
_ROW_DETAILS = {"action_ref": KT("details__action"), "letter_ref": KT("details__letter")}
_ROW_FIELDS = ("pk", "shown_kind", "occurred_at", "summary", "action_ref", "letter_ref", "actor__first_name",
               "actor__last_name", "actor__username")


@functools.cache
def _rows_query():
    """What every page reads, in its order, with no filter yet. Built once a
    process: resolving the annotations, the actor's join and the order anew
    for every page showed in the profile beside the query itself. Each page
    adds its filters to a copy (a QuerySet is never changed in place), so no
    page's account or filter stays on it for the next."""
    return (TimelineEvent.objects.order_by("-occurred_at", "-pk")
            .annotate(**_ROW_DETAILS, shown_kind=_SHOWN_KIND).values_list(*_ROW_FIELDS))


def timeline_page(
    *,
    customer: Customer,
    kinds: Sequence[str] = (),
    invoice: Invoice | None = None,
    before: str | None = None,
    size: int = PAGE_SIZE,
) -> TimelinePage:
    """One page of the customer's events, newest first, after `before`.

    One query whatever the depth and the number of events (one more row than
    shown tells whether there is a next page).
    """
    at, pk = cursor_parse(before) if before else (None, None)
    if kinds or invoice is not None:
        rows = list(_rows(customer_id=customer.pk, kinds=kinds, invoice=invoice, at=at, pk=pk, size=size))
    else:
        # Every page unfiltered, the first and each "load more": the same
        # read for every account, compiled once.
        rows = _unfiltered_rows(deep=at is not None, size=size).rows(customer_id=customer.pk, at=at, pk=pk)
    zone = timezone.get_current_timezone()  # once a page: looking it up costs more than converting to it
    shown = [_row(*row, zone=zone) for row in rows[:size]]
    return TimelinePage(shown, cursor_for(shown[-1]) if len(rows) > size else None)


def _rows(*, customer_id: int, kinds: Sequence[str], invoice: Invoice | int | None,
          at: dt.datetime | None, pk: int | None, size: int):
    """The rows of a page: the customer's events, of these kinds and about
    this invoice where given, before the event at (at, pk) where given."""
    events = _rows_query().filter(customer_id=customer_id)
    if kinds:
        events = events.filter(shown_kind__in=kinds)
    if invoice is not None:
        events = events.filter(
            pk__in=TimelineEventInvoice.objects.filter(invoice=invoice).values("event_id")
        )
    if at is not None:
        # One row-value comparison in the order of `event_customer_timeline`:
        # the index range starts right after the cursor's row.
        events = events.filter(TupleLessThan((F("occurred_at"), F("pk")), (at, pk)))
    return events[: size + 1]


# Placeholders for the compiled read: no account, event or moment has them.
_NO_ID = -1
_NO_MOMENT = dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)


@functools.cache
def _unfiltered_rows(*, deep: bool, size: int) -> CompiledRead:
    return CompiledRead(
        lambda customer_id, at=None, pk=None: _rows(customer_id=customer_id, kinds=(), invoice=None,
                                          at=at if deep else None, pk=pk, size=size),
        customer_id=_NO_ID, **({"at": _NO_MOMENT, "pk": _NO_ID - 1} if deep else {}),
    )


def _row(pk, kind, occurred_at, summary, action, letter, first, last, username, *, zone) -> TimelineRow:
    local = occurred_at.astimezone(zone)
    return TimelineRow(
        pk=pk, kind=kind, label=_LABELS.get(kind, kind), occurred_at=occurred_at,
        when=f"{local.day} {local:%b %Y %H:%M}", summary=summary,
        # No actor (the nightly run, an import): the row names nobody.
        actor=name_of(first, last, username) if username else "",
        # Text on PostgreSQL, a number on SQLite (JSON_EXTRACT keeps the JSON type).
        action_id=int(action) if action is not None and str(action).isdigit() else None,
        has_letter=bool(action and letter),
    )


def rows_html(
    rows: Sequence[TimelineRow], *, action_base: str, letter_base: str, can_act: bool
) -> SafeString:
    """The rows as the timeline lists them. Written here rather than in the
    template: this loop is the page's hot path, and the template engine's
    lookup, localisation and escaping of each value cost more than the query
    (a page at depth 10,000 serves in the time of the first, and both under
    load). Every value is escaped, as Django's escape() does it (html.escape),
    without its lazy-string wrapper and SafeString, which cost more than the
    escaping of these few plain strings."""
    action_base, letter_base = escape(action_base), escape(letter_base)
    out = []
    for row in rows:
        links = ""
        if row.action_id:
            pdf = (f' · <a href="{letter_base}{row.action_id}/pdf/">PDF</a>'
                   if row.has_letter and can_act else "")
            links = f'<span class="event-links"><a href="{action_base}{row.action_id}/">Open</a>{pdf}</span>'
        actor = f'<span class="muted"> — {html_escape(row.actor)}</span>' if row.actor else ""
        kind = html_escape(row.kind)
        out.append(
            f'<li class="event event-{kind}" id="event-{row.pk}">'
            f'<time datetime="{row.occurred_at.isoformat()}">{html_escape(row.when)}</time> '
            f'<span class="badge kind-{kind}">{html_escape(row.label)}</span> '
            f'<span class="event-summary">{html_escape(row.summary)}</span>{actor}{links}</li>'
        )
    return mark_safe("\n".join(out))


def cursor_for(event) -> str:
    """The "load more" position after `event` (anything with occurred_at and pk)."""
    at = event.occurred_at.astimezone(dt.UTC)
    return f"{at:{_CURSOR_FORMAT}}-{event.pk}"


def cursor_parse(cursor: str) -> tuple[dt.datetime, int]:
    stamp, _, pk = cursor.partition("-")
    try:
        at = dt.datetime.strptime(stamp, _CURSOR_FORMAT).replace(tzinfo=dt.UTC)
        return at, int(pk)
    except ValueError:
        raise BadCursor(f"{cursor!r} is not a position in this timeline.") from None


# Kinds offered as filters, in the order a collector thinks of them.
FILTER_KINDS = [
    (EventKind.CALL, "Calls"),
    (EventKind.NOTE, "Notes"),
    (INVOICE_COPY, "Invoice copies"),
    (STATEMENT, "Statements"),
    (CAUSE, "Causes"),
    (EventKind.DUNNING, "Dunning"),
    (EventKind.PROMISE, "Promises"),
    (EventKind.PAYMENT_PLAN, "Payment plans"),
    (EventKind.DISPUTE, "Disputes"),
    (EventKind.EXCEPTION, "Exceptions"),
    (EventKind.WRITE_OFF, "Write-offs"),
    (EventKind.PAUSE, "Pauses"),
    (EventKind.PAYMENT_RECEIVED, "Payments"),
    (EventKind.INVOICE_ISSUED, "Invoices issued"),
    (EventKind.INVOICE_PAID, "Invoices paid"),
    (EventKind.INVOICE_CHANGED, "Invoices changed"),
    (EventKind.CREDIT_NOTE, "Credit notes"),
    (EventKind.SEGMENT_CHANGED, "Segment changes"),
    (EventKind.ACCOUNT_CHANGED, "Account changes"),
    (EventKind.CONTACT_CHANGED, "Contact changes"),
    (EventKind.ACCOUNT_CREATED, "Account created"),
    (EventKind.WORK, "Worklist"),
]


def filter_chips_html(selected: Sequence[str]) -> SafeString:
    """The filter's boxes, one per kind in FILTER_KINDS, those in `selected`
    ticked. Written here for the reason the rows are (rows_html): the first
    page of every timeline renders them all, and the template engine's
    loop cost more than the rest of the form. Ids on the boxes: htmx gives
    the focus back to the one with the same id after the swap."""
    chips = []
    for value, label in FILTER_KINDS:
        checked = " checked" if value in selected else ""
        value = html_escape(str(value))
        chips.append(f'<label class="chip"><input type="checkbox" name="kind" id="timeline-kind-{value}" '
                     f'value="{value}"{checked}> {html_escape(label)}</label>')
    return mark_safe("\n".join(chips))
