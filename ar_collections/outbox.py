"""E-mails a collector's action sends (a call's summary, an invoice copy, a
dispute routed to a department), through a queue in the database.

The action writes an `OutgoingMail` row in its own transaction and, once that
commits, hands the row's id to a worker. The page answers at once whatever the
mail server is doing, and a message is never lost with a failed request nor
sent for an action that rolled back.

A worker sends each mail exactly once by claiming it, then sending, then
recording, with no transaction open while the mail server talks: on SQLite
(the embedded demo) a transaction that writes is the whole database's write
lock, and every page that writes would wait for a slow mail server. The claim
is a conditional update of a mail still QUEUED and out of its back-off: it
moves the back-off (and the sweep's next hand-over) HANDED_OVER_FOR on, past
the longest a task may run, so a second worker or the sweep given the same id
leaves it meanwhile, and the time written is the claim's own mark. The outcome
is recorded under that mark. A worker killed mid-send leaves the mail QUEUED;
once its claim has run out the sweep sends it again, with the same
Message-ID, so a copy the server had already accepted is recognisable. A
transient failure (server unreachable, a 4xx
reply) leaves the mail QUEUED with the error and a back-off (RETRY_AFTER,
doubling, which a second task for the same mail respects too) until
MAX_ATTEMPTS; a permanent one, or the last attempt, marks it
FAILED and says so on the customer's timeline. A fault of the install's (a
refused login or sender address, see delivery.install_fault) keeps it QUEUED
without spending an attempt, however long the fix takes. When the server cannot be
reached at all, the rest of the batch waits for the sweep without spending an
attempt. So does it when the task's time runs out (DELIVERY_TIME_LIMIT) while
the server keeps a mail waiting: that mail is a transient failure, its attempt
spent (delivery.OutOfTime). The sweep (beat, every five minutes) hands over the
queued mails whose next attempt is due, and moves that time on so that it
does not hand the same mail over again while a worker still has it in its queue.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from email.utils import parseaddr

from celery.exceptions import SoftTimeLimitExceeded
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Now
from django.utils import timezone

from ar_collections.delivery import (
    HANDED_OVER_FOR,
    MAX_DELIVERY_ATTEMPTS,
    RETRY_AFTER,  # noqa: F401 (the outbox's first wait too: see below)
    Mailer,
    address_refused,
    back_off,
    contact_address_refused,
    install_fault,
    is_transient,
    sender_domain,
    server_reply,
    unreachable,
)
from ar_collections.models import DunningCycle, MailPurpose, MailStatus, OutgoingMail, TimelineEventInvoice
from ar_collections.timeline import event_record
from arcrm.text import one_line, shorten
from customers.models import EventKind

log = logging.getLogger(__name__)

MAX_ATTEMPTS = MAX_DELIVERY_ATTEMPTS
SWEEP_BATCH = 100
# A new mail is left this long to the worker its own action enqueued.
SWEEP_AFTER = dt.timedelta(minutes=1)
# After the first "not now" (RETRY_AFTER): 5, 10, 20, 40 minutes, so an outage
# of an hour or so loses nothing; a mail handed over by the sweep is left to
# that worker for HANDED_OVER_FOR. Both as dunning steps wait (delivery).

# The timeline kind a failure is reported under: the kind of the action that sent it.
_EVENT_KIND = {
    MailPurpose.CALL_SUMMARY: EventKind.CALL,
    MailPurpose.INVOICE_COPY: EventKind.NOTE,
    MailPurpose.DISPUTE_ROUTING: EventKind.DISPUTE,
    MailPurpose.INVOICES_RESEND: EventKind.DUNNING,
    MailPurpose.PLAN_AGREED: EventKind.PAYMENT_PLAN,
    MailPurpose.STATEMENT: EventKind.NOTE,
}


def mail_queue(message: EmailMessage, *, customer, purpose: str, actor=None, invoice=None) -> OutgoingMail:
    """Queue `message` (at most one attachment) to be sent once the caller's
    transaction commits. Its subject is put on one line (a name typed with a
    line break would make Django refuse the header, and the mail fail for
    good) and cut to what the row holds (an account's long name and an
    invoice number together may not fit)."""
    html = next((content for content, mimetype in getattr(message, "alternatives", ())
                 if mimetype == "text/html"), "")
    if len(message.attachments) > 1:
        raise ValueError("an outgoing mail carries at most one attachment")
    name, content, mimetype = message.attachments[0] if message.attachments else ("", None, "")
    mail = OutgoingMail.objects.create(
        customer=customer, purpose=purpose, created_by=actor, from_email=message.from_email,
        to=list(message.to), reply_to=list(message.reply_to), text=message.body,
        subject=shorten(one_line(message.subject), OutgoingMail._meta.get_field("subject").max_length),
        html=html, attachment_name=name or "", attachment_type=mimetype or "",
        attachment=content.encode() if isinstance(content, str) else content, invoice=invoice,
        next_attempt_at=timezone.now() + SWEEP_AFTER,
    )
    from ar_collections.tasks import send_mail

    # robust: a broker that is down must not turn the committed action into an
    # error page (a collector would do it again); the sweep hands the mail over.
    transaction.on_commit(lambda: send_mail.delay([mail.pk]), robust=True)
    return mail


def mails_send(*, mail_ids: Iterable[int]) -> Counter:
    """Send these queued mails, one SMTP session for all; counts by outcome:
    sent, deferred (the server said "not now"), unreachable (no server) and
    postponed (the rest of the batch, untried), failed, not_claimed."""
    counts: Counter = Counter()
    mailer = Mailer()
    ids = list(mail_ids)
    try:
        for done, pk in enumerate(ids, start=1):
            try:
                outcome = _send_one(pk, mailer)
            except SoftTimeLimitExceeded:
                # Out of time while claiming: recorded as a server's "not now"
                # if the claim did not stand; if it did, the mail waits for it
                # to run out, and the sweep.
                outcome = _send_failed(pk, mailer.out_of_time(otherwise="the mail was not sent"))
            counts[outcome] += 1
            if outcome == "unreachable":
                # Every other mail would wait out the same timeout: they stay
                # queued for the sweep, no attempt spent.
                counts["postponed"] += len(ids) - done
                break
    finally:
        mailer.close()
    return counts


def mails_sweep(*, now: dt.datetime | None = None) -> int:
    """Hand every mail still queued (a mail server that was down, a worker that
    died, a broker message lost) to the workers again, in batches. `now` is
    the database's clock unless given: the times compared are written by it."""
    from ar_collections.tasks import send_mail

    now = Now() if now is None else Value(now, output_field=DateTimeField())
    with transaction.atomic():
        due = (OutgoingMail.objects.select_for_update(skip_locked=True)
               .filter(status=MailStatus.QUEUED, next_attempt_at__lte=now).order_by("next_attempt_at"))
        ids = list(due.values_list("pk", flat=True))
        # Their back-off is over: the worker handed each one may try it.
        OutgoingMail.objects.filter(pk__in=ids).update(next_attempt_at=now + HANDED_OVER_FOR,
                                                       retry_not_before=None)
    for start in range(0, len(ids), SWEEP_BATCH):
        send_mail.delay(ids[start:start + SWEEP_BATCH])
    return len(ids)


def message_id(mail_id: int) -> str:
    """The same Message-ID for every copy of one mail, so a resend after a crash is recognisable."""
    return f"<outgoing-mail-{mail_id}@{sender_domain()}>"


def _send_one(pk: int, mailer: Mailer) -> str:
    claimed = _claim(pk)
    if claimed is None:
        return "not_claimed"  # sent, failed for good, gone, or another worker has it
    mail, claim = claimed
    message = _message(mail)
    try:
        mailer.send(message)
    except SoftTimeLimitExceeded:
        return _send_failed(pk, mailer.out_of_time(otherwise="the mail was not sent"), claim=claim)
    except Exception as error:
        return _send_failed(pk, error, claim=claim)
    # The server has it: recorded whatever became of the claim meanwhile.
    OutgoingMail.objects.filter(pk=pk, status=MailStatus.QUEUED).update(
        status=MailStatus.SENT, sent_at=timezone.now(), error="", attempts=F("attempts") + 1,
        retry_not_before=None,
    )
    return "sent"


def _send_failed(pk: int, error: Exception, *, claim: uuid.UUID | None = None) -> str:
    """Record a refusal (or an unreachable server) for the attempt under
    `claim` (none: an attempt whose claim did not stand). A mail no longer
    under that claim, nor free, is another worker's, and then the outcome
    is that worker's to record."""
    with transaction.atomic():
        claimed = Q(claim=claim) if claim is not None else Q()
        mail = (OutgoingMail.objects.select_for_update(skip_locked=True)
                .filter(claimed | _backed_off(), pk=pk, status=MailStatus.QUEUED).first())
        if mail is None:
            return "not_claimed"
        if install_fault(error) is None:  # the install's to fix: no attempt of the mail's spent
            mail.attempts += 1
        return _failed(mail, error)


def _backed_off() -> Q:
    # By the database's clock, which wrote retry_not_before (_claim, _failed).
    return Q(retry_not_before__isnull=True) | Q(retry_not_before__lte=Now())


def _claim(pk: int) -> tuple[OutgoingMail, uuid.UUID] | None:
    """The mail and the claim, if it is still QUEUED and out of its back-off;
    None if another worker has it. The claim ends HANDED_OVER_FOR from now
    by the database's clock: no task runs that long (DELIVERY_TIME_LIMIT and
    its grace end within it), so a claim that runs out was a worker that
    died. Told apart by a token, not by that time read back: SQLite gives
    its clock's times back with other digits than Python writes them."""
    claim = uuid.uuid4()
    claimed = OutgoingMail.objects.filter(_backed_off(), pk=pk, status=MailStatus.QUEUED).update(
        retry_not_before=Now() + HANDED_OVER_FOR, next_attempt_at=Now() + HANDED_OVER_FOR, claim=claim
    )
    if not claimed:
        return None
    return OutgoingMail.objects.get(pk=pk), claim


def _message(mail: OutgoingMail) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=mail.subject, body=mail.text, from_email=mail.from_email, to=mail.to,
        reply_to=mail.reply_to or None, headers={"Message-ID": message_id(mail.pk)},
    )
    if mail.html:
        message.attach_alternative(mail.html, "text/html")
    if mail.attachment is not None:
        message.attach(mail.attachment_name, bytes(mail.attachment), mail.attachment_type)
    return message


def _failed(mail: OutgoingMail, error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    fault = install_fault(error)
    retry = fault is not None or (is_transient(error) and mail.attempts < MAX_ATTEMPTS)
    log.warning("outgoing mail %s not sent (attempt %d): %s", mail.pk, mail.attempts, text)
    first_trouble = not mail.error
    mail.status, mail.error = (MailStatus.QUEUED if retry else MailStatus.FAILED), text
    # Waits by the database's clock, as every worker's claim reads it (_backed_off).
    until = Now() + back_off(mail.attempts)
    OutgoingMail.objects.filter(pk=mail.pk).update(
        status=mail.status, error=mail.error, attempts=mail.attempts,
        next_attempt_at=until, retry_not_before=until,
    )
    if retry:
        if first_trouble:
            # The timeline noted the mail as sent when it was queued: say, once,
            # that it has not gone yet and why (a fault of ours may last days).
            why = fault or "the mail server could not take it yet"
            event_record(
                customer=mail.customer, kind=_EVENT_KIND[mail.purpose], subject=mail,
                invoices=[mail.invoice_id] if mail.invoice_id else [],
                summary=f"E-mail to {', '.join(mail.to)} not sent yet, {why}; it will be tried again: "
                        f"{mail.subject} — {text}",
                details={"mail": mail.pk, "to": mail.to, "subject": mail.subject, "error": text},
            )
        return "unreachable" if unreachable(error) else "deferred"
    if address_refused(error):
        addresses = {parseaddr(to)[1].lower() for to in mail.to}
        for contact in mail.customer.contacts.all():
            if contact.email.strip().lower() in addresses:
                contact_address_refused(contact, customer=mail.customer, reason=server_reply(error))
    invoices = [mail.invoice_id] if mail.invoice_id else []
    if mail.purpose == MailPurpose.INVOICES_RESEND:
        # The cycle's "re-sent" mark goes with the mail that never went: once the
        # address is fixed, noting red tape again sends the invoices.
        DunningCycle.objects.filter(customer=mail.customer_id, closed_on__isnull=True).update(
            invoices_resent_on=None
        )
        # The invoices the re-send carried: those its own timeline entry names.
        invoices = list(TimelineEventInvoice.objects.filter(
            event__customer=mail.customer_id, event__details__mail=mail.pk
        ).values_list("invoice_id", flat=True))
    event_record(
        customer=mail.customer, kind=_EVENT_KIND[mail.purpose], subject=mail, invoices=invoices,
        summary=f"E-mail not sent to {', '.join(mail.to)} after {mail.attempts} attempt(s): "
                f"{mail.subject} — {text}",
        details={"mail": mail.pk, "to": mail.to, "subject": mail.subject, "error": text,
                 "attempts": mail.attempts},
    )
    return "failed"
