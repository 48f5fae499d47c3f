"""A statement of account on demand: everything open on an account on one
day (the open invoices, the credits and payments not yet set against one,
the fees and interest still owed, per currency with their aging), as a PDF
to download, or e-mailed to the billing contact of the day through the
outbox. A customer asks for one, a collector wants one before a call, or a
credit team sends them monthly. It asks for nothing by a date: dunning does
not wait for it, and a download leaves no trace; an e-mail is on the timeline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q, Sum
from django.template import TemplateSyntaxError

from ar_collections import outbox, paper, rendering, workspace
from ar_collections.delivery import left_to_apply, mail_address
from ar_collections.models import (
    CreditNote,
    DisputeStatus,
    InvoiceStatus,
    LateCharge,
    MailPurpose,
    PaperKind,
    Payment,
    PaymentPlan,
    PlanStatus,
    WordingKind,
)
from ar_collections.timeline import event_record
from ar_collections.wording import cover_wording_in_force
from arcrm.money import ZERO, format_money
from arcrm.roles import require_act_on
from arcrm.text import pdf_file_name, person_name
from customers.cover import working_for
from customers.models import Contact, Customer, EventKind, TimelineEvent

NOTE_MAX_LENGTH = 300


def statement_build(customer: Customer, *, contact: Contact | None, sender, on: dt.date,
                    note: str = "") -> rendering.Statement:
    """The account as it stands on `on`, for `contact` (in her language; none:
    in English, to the billing address). The customer is told to ask the
    account's collector about it, or `sender` on an account without one."""
    invoices = list(
        customer.invoices.filter(status=InvoiceStatus.OPEN)
        .annotate(disputed=Sum("disputes__disputed_amount", filter=Q(disputes__status=DisputeStatus.OPEN)))
        .order_by("currency", "due_date", "number")
    )
    credit_notes = left_to_apply(CreditNote.objects, customer, link="credit_note").order_by("issued_on", "pk")
    payments = left_to_apply(Payment.objects, customer, link="payment").order_by("received_on", "pk")
    charges = LateCharge.objects.filter(customer=customer).standing().order_by("created_at", "pk")
    planned_later = _planned_later(customer, invoices, on=on)
    owner = working_for(customer, on=on) or sender  # a stand-in while the collector is away
    language = contact.language if contact else rendering.FALLBACK_LANGUAGE
    return rendering.Statement(
        language=language, wording=cover_wording_in_force(WordingKind.STATEMENT, language),
        customer_name=customer.legal_name or customer.name,
        account_number=customer.account_number,
        billing_address=_billing_address(customer, contact),
        recipient_name=contact.name if contact else "",
        statement_date=on,
        lines=tuple(
            rendering.StatementLine(
                number=i.number, issue_date=i.issue_date, due_date=i.due_date, currency=i.currency,
                total_amount=i.total_amount, open_amount=i.open_amount, days_late=i.days_late(on=on),
                disputed_amount=min(i.open_amount, i.disputed or ZERO),
                planned_later_amount=planned_later.get(i.pk, ZERO),
            )
            for i in invoices
        ),
        credits=tuple(
            [rendering.NoticeCredit(c.number, c.issued_on, c.amount - c.allocated, c.currency)
             for c in credit_notes]
            + [rendering.NoticeCredit(p.reference or p.bank_reference or f"#{p.pk}", p.received_on,
                                      p.amount - p.allocated, p.currency, payment=True)
               for p in payments]
        ),
        charges=tuple(
            rendering.NoticeCharge(
                c.kind, c.open_amount, c.currency, c.basis, paid=c.amount - c.open_amount,
                rate_percent=c.rate_percent,
                stretches=tuple((Decimal(balance), days) for balance, days in c.stretches),
            )
            for c in charges
        ),
        contact_name=person_name(owner), contact_email=owner.email,
        sender_name=person_name(sender), sender_email=sender.email, note=note,
    )


def _planned_later(customer: Customer, invoices, *, on: dt.date) -> dict[int, Decimal]:
    """Of each open invoice a payment plan in good standing covers, what the
    plan still asks for after `on`. The customer agreed to pay it on the
    instalments' dates: a statement that asked for it now would go back on
    the plan. Set against the plan's newest invoices first, as its
    instalments pay the oldest first, each up to what it owes beyond an open
    dispute (held back anyway)."""
    open_invoices = {i.pk: i for i in invoices}
    result: dict[int, Decimal] = {}
    plans = PaymentPlan.objects.filter(customer=customer, status=PlanStatus.ACTIVE).prefetch_related(
        "instalments", "invoices")
    for plan in plans:
        left = sum((still for instalment, still in workspace.plan_instalments_owed(plan)
                    if instalment.due_on > on), ZERO)
        covered = sorted((open_invoices[i.pk] for i in plan.invoices.all() if i.pk in open_invoices),
                         key=lambda i: (i.due_date, i.number), reverse=True)
        for invoice in covered:
            room = (invoice.open_amount - min(invoice.open_amount, invoice.disputed or ZERO)
                    - result.get(invoice.pk, ZERO))
            part = min(left, room)
            if part > 0:
                result[invoice.pk] = result.get(invoice.pk, ZERO) + part
                left -= part
    return result


def statement_file_name(customer: Customer, on: dt.date) -> str:
    """The statement's file name, downloaded or attached to an e-mail: the
    account number as the ERP wrote it may hold quotes, semicolons or line
    breaks, which would end the name, or the header, early."""
    return pdf_file_name("statement", customer.account_number, on.isoformat())


def statement_pdf(customer: Customer, *, actor, on: dt.date) -> bytes:
    """The statement to download: as the billing contact of the day would get it."""
    statement = statement_build(customer, contact=customer.billing_contact(on=on), sender=actor, on=on)
    return rendering.render_statement(statement)


def statement_recipient(customer: Customer, *, on: dt.date) -> tuple[Contact | None, str]:
    """Whom a statement sent on `on` goes to (the billing contact, or whoever
    she asked us to write to while she is away), or why no one: by e-mail, or
    by post to one who takes paper (paper.way_to)."""
    contact = customer.billing_contact(on=on)
    if contact is None:
        return None, customer.nobody_billed_why(on=on)
    way = paper.way_to(contact)
    return (contact, "") if way.by else (None, way.why)


@transaction.atomic
def statement_send(*, customer: Customer, actor, on: dt.date, note: str = "") -> TimelineEvent:
    """E-mail the statement (as a PDF) to the billing contact of the day,
    through the outbox (after commit), with `note` word for word in the cover
    e-mail; or, to one who takes paper, put it in the print queue for the post
    with `note` printed on the statement itself, which goes without a cover.
    The timeline says what went to whom. Nothing is sent, and nothing
    recorded, when there is no one to send it to."""
    require_act_on(actor, customer)
    note = note.strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise ValidationError({"note": f"Keep the note to {NOTE_MAX_LENGTH} characters."})
    contact, why = statement_recipient(customer, on=on)
    if contact is None:
        raise ValidationError(f"The statement was not sent: {why}.")
    by_post = paper.way_to(contact).by == paper.POST
    statement = statement_build(customer, contact=contact, sender=actor, on=on, note=note)
    try:
        # The note is the cover e-mail's; by post, with no cover, the statement carries it.
        email = rendering.render_statement_email(statement)
        pdf = rendering.render_statement(statement if by_post else dataclasses.replace(statement, note=""))
    except (TemplateSyntaxError, rendering.LetterRenderError) as error:
        raise ValidationError(f"The statement could not be written, nothing was sent: {error}") from error
    totals = rendering.statement_totals(statement)
    count = len(statement.lines)
    said = (f"{count} open invoice{'s' if count != 1 else ''}; balance "
            + ", ".join(format_money(s.balance, s.currency) for s in totals)) if totals else "nothing open"
    if any(s.differs_from_balance for s in totals):
        # As the statement and its cover e-mail say it.
        said += "; to pay now " + ", ".join(format_money(s.to_pay_now, s.currency) for s in totals)
        for words, amount in (("falling due later", "later"), ("held back while under dispute", "disputed"),
                              ("credit left on the account", "credit_left")):
            if any(getattr(s, amount) for s in totals):
                said += f"; {words} " + ", ".join(format_money(getattr(s, amount), s.currency)
                                                  for s in totals if getattr(s, amount))
    noted = f" — {note}" if note else ""
    if by_post:
        document = paper.document_queue(customer=customer, kind=PaperKind.STATEMENT, contact=contact,
                                        pdf=pdf, actor=actor,
                                        asks_payment=bool(statement.lines or statement.charges))
        return event_record(
            customer=customer, kind=EventKind.NOTE, actor=actor, subject=document,
            invoices=list(customer.invoices.filter(status=InvoiceStatus.OPEN)),
            summary=f"Statement of account queued for the post to {contact.name}, "
                    f"{paper.first_line(document.recipient_address)}: {said}{noted}",
            details={"to": contact.name, "address": document.recipient_address, "paper": document.pk,
                     "note": note,
                     "invoices": [x.number for x in statement.lines],
                     "balances": {s.currency: str(s.balance) for s in totals}},
        )
    message = EmailMultiAlternatives(
        subject=email.subject, body=email.text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[mail_address(contact.name, contact.email)], reply_to=[actor.email] if actor.email else None,
    )
    message.attach_alternative(email.html, "text/html")
    message.attach(statement_file_name(customer, on), pdf, "application/pdf")
    mail = outbox.mail_queue(message, customer=customer, purpose=MailPurpose.STATEMENT, actor=actor)
    return event_record(
        customer=customer, kind=EventKind.NOTE, actor=actor,
        invoices=list(customer.invoices.filter(status=InvoiceStatus.OPEN)),
        summary=f"Statement of account e-mailed to {contact.name} <{contact.email}>: {said}{noted}",
        details={"to": contact.email, "subject": email.subject, "text": email.text, "mail": mail.pk,
                 "note": note, "invoices": [x.number for x in statement.lines],
                 "balances": {s.currency: str(s.balance) for s in totals}},
    )


def _billing_address(customer: Customer, contact: Contact | None) -> str:
    # The account's billing address, whoever the statement is for (as an invoice copy's).
    billing = customer.contacts.filter(is_primary_billing=True).exclude(postal_address="").first()
    return (billing or contact).postal_address if (billing or contact) else ""
