"""Invoice copies and statements for contacts who take paper.

A contact who asked for paper invoices or letters (or has no e-mail address
we may use) gets a copy or a statement by post: the PDF joins the dunning
letters in the print queue (views.letter_queue), and leaves it when someone
marks it posted, when someone withdraws it, or by itself once what it asks
for is settled (documents_withdraw_moot). The timeline says each.
"""

from __future__ import annotations

from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Exists, IntegerField, OuterRef, Q, QuerySet, Value
from django.utils import timezone

from ar_collections.models import Invoice, InvoiceStatus, LateCharge, PaperDocument, PaperKind, WorkKind
from ar_collections.timeline import event_record
from arcrm.dates import format_day
from arcrm.roles import require_act_on
from arcrm.text import pdf_file_name, person_name
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
                   invoice: Invoice | None = None, asks_payment: bool = True) -> PaperDocument:
    """Put a written document in the print queue for `contact`. The caller is
    in a transaction and records the timeline event. `asks_payment`: False
    for a statement of an account with nothing to pay."""
    document = PaperDocument(
        customer=customer, kind=kind, invoice=invoice, recipient=contact, recipient_name=contact.name,
        recipient_address=contact.postal_address.strip(), created_by=actor, done_at=timezone.now(),
        asks_payment=asks_payment,
    )
    name = (pdf_file_name("copy", invoice.number) if kind == PaperKind.INVOICE_COPY
            else pdf_file_name("statement", customer.account_number))
    document.pdf.save(name, ContentFile(pdf), save=False)
    document.save()
    return document


def documents_in_queue() -> QuerySet[PaperDocument]:
    """Copies and statements waiting to be printed and posted. `queue_kind`
    places them after a letter written at the same instant, in the print
    queue's one order (views.QUEUE_ORDER)."""
    return PaperDocument.objects.filter(printed_at__isnull=True, withdrawn_at__isnull=True).annotate(
        queue_kind=Value(1, output_field=IntegerField())
    )


def _moot() -> Q:
    """For a PaperDocument query: what it asks for is settled. An invoice
    copy, when its invoice is paid, credited, cancelled or written off (as a
    letter's invoices: models.lists_open_invoice). A statement that asked for
    something, when the account has nothing left to pay: no invoice with an
    open amount, and no late fee or interest owed, in any currency. Until
    then it stands, whatever was paid since: it is still the account's
    statement of that day, and what is left on it is still owed."""
    still_open = Invoice.objects.filter(status=InvoiceStatus.OPEN, open_amount__gt=0)
    copy_settled = Q(kind=PaperKind.INVOICE_COPY) & ~Q(Exists(still_open.filter(pk=OuterRef("invoice_id"))))
    nothing_to_pay = (
        Q(kind=PaperKind.STATEMENT, asks_payment=True)
        & ~Q(Exists(still_open.filter(customer=OuterRef("customer_id"))))
        & ~Q(Exists(LateCharge.objects.filter(customer=OuterRef("customer_id")).standing()))
    )
    return copy_settled | nothing_to_pay


def documents_withdraw_moot(*, customer_ids: list[int] | None = None, actor=None) -> int:
    """Copies and statements in the print queue whose every demand has been
    settled since they were written (_moot) leave it, each withdrawn on its
    account's timeline with why (`actor`, if any, recorded what made them
    moot): posted, they would ask for money already received. Run where
    moot letters are withdrawn, at the same moments (delivery.letters_withdraw_moot):
    when a payment, a credit or a write-off is recorded, a dispute settled,
    and by the daily refresh (cancelled invoices)."""
    moot = documents_in_queue().filter(_moot())
    if customer_ids is not None:
        moot = moot.filter(customer_id__in=customer_ids)
    withdrawn = 0
    for document in moot.select_related("customer", "invoice").order_by("pk"):
        with transaction.atomic():
            # Locked and read again: marking it posted at this moment waits,
            # then finds it gone (documents_mark_posted); a second sweep waits,
            # then finds it withdrawn.
            still = documents_in_queue().select_for_update(of=("self",)).filter(_moot(), pk=document.pk)
            if not still.exists():
                continue
            if document.kind == PaperKind.INVOICE_COPY:
                invoice = document.invoice
                invoice.refresh_from_db()
                how = (invoice.settled_how() if invoice.status == InvoiceStatus.PAID
                       else invoice.get_status_display().lower())
                why = f"invoice {invoice.number} was {how} first"
            else:
                why = "the account had nothing left to pay first"
            _withdraw_locked(document, actor=None, reason=why, recorded_by=actor,
                             summary=f"{document_name(document)} to {document.recipient_name} not posted: "
                                     f"{why}; withdrawn from the print queue")
            withdrawn += 1
    return withdrawn


def document_withdraw(*, document: PaperDocument, actor, reason: str) -> PaperDocument:
    """A person takes a copy or statement out of the print queue before it
    goes to the post, saying why (the customer asked for it by e-mail after
    all, say). It is never posted, and a copy's pay-by date no longer holds
    the ladder back (dunning.copies_told)."""
    require_act_on(actor, document.customer)
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": f"Say why the {_kind_said(document)} is withdrawn."})
    with transaction.atomic():
        # Locked while still in the queue: marking it posted at this moment
        # waits, then finds it gone; or it was posted first and this finds it gone.
        locked = (documents_in_queue().select_for_update(of=("self",)).select_related("customer", "invoice")
                  .filter(pk=document.pk).first())
        if locked is None:
            raise ValidationError(f"This {_kind_said(document)} has left the print queue already: "
                                  "posted or withdrawn.")
        _withdraw_locked(locked, actor=actor, reason=reason, recorded_by=actor,
                         summary=f"{document_name(locked)} to {locked.recipient_name} withdrawn from the "
                                 f"print queue by {person_name(actor)}: {reason}")
    locked.refresh_from_db()
    return locked


def _withdraw_locked(document: PaperDocument, *, actor, reason: str, recorded_by, summary: str) -> None:
    """Withdraw `document`, which the caller locked in a transaction and found
    in the queue, by `actor` (None: by itself), and say so on the timeline."""
    now = timezone.now()
    PaperDocument.objects.filter(pk=document.pk).update(withdrawn_at=now, withdrawn_by=actor,
                                                        withdrawn_reason=reason)
    _items_close(document_ids=[document.pk], actor=actor)
    event_record(
        customer=document.customer, kind=EventKind.NOTE, actor=recorded_by, subject=document,
        invoices=[document.invoice] if document.invoice else [], summary=summary,
        details={"reason": reason, "before": {"withdrawn_at": None},
                 "after": {"withdrawn_at": now.isoformat()}},
    )


def _items_close(*, document_ids: list[int], actor) -> None:
    """The worklist's "not posted yet" items of documents that left the queue."""
    from ar_collections import worklist  # it imports this module

    worklist.items_close(actor=actor, kind=WorkKind.LETTER_UNPOSTED, document_id__in=document_ids)


def _kind_said(document: PaperDocument) -> str:
    return "copy" if document.kind == PaperKind.INVOICE_COPY else "statement"


def documents_mark_posted(*, document_ids: list[int], actor) -> int:
    """Mark these documents posted by `actor`, each on its account's timeline.
    Conditional on their being in the queue, under their locks: two people
    marking the same document both see success, and it is posted (and
    recorded) once; one withdrawn meanwhile is not posted."""
    with transaction.atomic():
        documents = list(
            documents_in_queue().select_for_update(of=("self",)).select_related("customer", "invoice")
            .filter(pk__in=document_ids).order_by("pk")
        )
        now = timezone.now()
        PaperDocument.objects.filter(pk__in=[d.pk for d in documents]).update(printed_at=now,
                                                                              printed_by=actor)
        _items_close(document_ids=[d.pk for d in documents], actor=actor)
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
