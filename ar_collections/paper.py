"""Invoice copies and statements for contacts who take paper.

A contact who asked for paper invoices or letters (or has no e-mail address
we may use) gets a copy or a statement by post: the PDF joins the dunning
letters in the print queue (views.letter_queue), and leaves it when someone
marks it posted. The timeline says both: queued, then posted.
"""

from __future__ import annotations

from typing import NamedTuple

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import IntegerField, QuerySet, Value
from django.utils import timezone

from ar_collections.models import Invoice, PaperDocument, PaperKind
from ar_collections.timeline import event_record
from arcrm.dates import format_day
from customers.models import Contact, Customer, EventKind, InvoiceDelivery, ReminderChannel

EMAIL, POST = "email", "post"


class Way(NamedTuple):
    """How a document reaches a contact: by e-mail, by post, or (empty) not
    at all, with `why` saying so in words a collector reads."""

    by: str
    why: str


def way_to(contact: Contact) -> Way:
    """By post to a contact who takes paper (invoices or letters) and has an
    address; else by e-mail when she has one we may use; else by post when
    she has an address; else no way, and why."""
    address = bool(contact.postal_address.strip())
    takes_paper = (contact.invoice_delivery == InvoiceDelivery.PAPER
                   or contact.reminder_channel == ReminderChannel.LETTER)
    if takes_paper and address:
        return Way(POST, f"by post: {contact.name} takes paper")
    if contact.email_usable:
        return Way(EMAIL, f"by e-mail to {contact.email}")
    if address:
        refused = " (the mail server refused her e-mail address)" if contact.email_refused_now else ""
        return Way(POST, f"by post: {contact.name} has no e-mail address we can use{refused}")
    if contact.email_refused_now:
        return Way("", f"the mail server refused {contact.name}'s address {contact.email}, and no postal "
                       "address is on file")
    return Way("", f"{contact.name} has neither an e-mail address nor a postal address on file")


def document_queue(*, customer: Customer, kind: str, contact: Contact, pdf: bytes, actor,
                   invoice: Invoice | None = None) -> PaperDocument:
    """Put a written document in the print queue for `contact`. The caller is
    in a transaction and records the timeline event."""
    document = PaperDocument(
        customer=customer, kind=kind, invoice=invoice, recipient=contact, recipient_name=contact.name,
        recipient_address=contact.postal_address.strip(), created_by=actor, done_at=timezone.now(),
    )
    name = f"copy-{invoice.number}.pdf" if kind == PaperKind.INVOICE_COPY else (
        f"statement-{customer.account_number}.pdf")
    document.pdf.save(name, ContentFile(pdf), save=False)
    document.save()
    return document


def documents_in_queue() -> QuerySet[PaperDocument]:
    """Copies and statements waiting to be printed and posted. `queue_kind`
    places them after a letter written at the same instant, in the print
    queue's one order (views.QUEUE_ORDER)."""
    return PaperDocument.objects.filter(printed_at__isnull=True).annotate(
        queue_kind=Value(1, output_field=IntegerField())
    )


def documents_mark_posted(*, document_ids: list[int], actor) -> int:
    """Mark these documents posted by `actor`, each on its account's timeline.
    Conditional on printed_at, under their locks: two people marking the same
    document both see success, and it is posted (and recorded) once."""
    with transaction.atomic():
        documents = list(
            PaperDocument.objects.select_for_update(of=("self",)).select_related("customer", "invoice")
            .filter(pk__in=document_ids, printed_at__isnull=True).order_by("pk")
        )
        now = timezone.now()
        PaperDocument.objects.filter(pk__in=[d.pk for d in documents]).update(printed_at=now,
                                                                              printed_by=actor)
        day = format_day(timezone.localtime(now).date())
        for document in documents:
            event_record(
                customer=document.customer, kind=EventKind.NOTE, actor=actor, subject=document,
                invoices=[document.invoice] if document.invoice else [],
                summary=f"{document_name(document)} to {document.recipient_name} posted on {day}",
                details={"before": {"printed_at": None}, "after": {"printed_at": now.isoformat()}},
            )
    return len(documents)


def document_name(document: PaperDocument) -> str:
    if document.kind == PaperKind.INVOICE_COPY:
        return f"Copy of invoice {document.invoice.number}"
    return f"Statement of account of {format_day(timezone.localtime(document.done_at).date())}"


def first_line(address: str) -> str:
    return next((line.strip() for line in address.splitlines() if line.strip()), "")
