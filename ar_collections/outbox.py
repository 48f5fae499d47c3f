"""E-mails a collector's action sends (a call's summary, an invoice copy, a
dispute routed to a department), through a queue in the database.

The action writes an `OutgoingMail` row in its own transaction and, once that
commits, hands the row's id to a worker. The page answers at once whatever the
mail server is doing, and a message is never lost with a failed request nor
sent for an action that rolled back.

A worker sends each mail as delivery sends a dunning notice
(ar_collections/delivery.py): the row is locked while still QUEUED and stays
locked across the SMTP conversation, so a second worker given the same id
skips it; a worker killed mid-send rolls back to QUEUED and the sweep sends
again, with the same Message-ID. A transient failure (server unreachable, a 4xx
reply) leaves the mail QUEUED with the error until MAX_ATTEMPTS; a permanent
one, or the last attempt, marks it FAILED and says so on the customer's
timeline. The sweep (beat, every few minutes) picks up what is still queued.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from ar_collections.delivery import MAX_DELIVERY_ATTEMPTS, Mailer, is_transient
from ar_collections.models import MailPurpose, MailStatus, OutgoingMail
from ar_collections.timeline import event_record
from customers.models import EventKind

log = logging.getLogger(__name__)

MAX_ATTEMPTS = MAX_DELIVERY_ATTEMPTS
SWEEP_BATCH = 100
# A mail younger than this is left to the worker its own action enqueued.
SWEEP_AFTER = dt.timedelta(minutes=1)

# The timeline kind a failure is reported under: the kind of the action that sent it.
_EVENT_KIND = {
    MailPurpose.CALL_SUMMARY: EventKind.CALL,
    MailPurpose.INVOICE_COPY: EventKind.NOTE,
    MailPurpose.DISPUTE_ROUTING: EventKind.DISPUTE,
}


def mail_queue(message: EmailMessage, *, customer, purpose: str, actor=None) -> OutgoingMail:
    """Queue `message` (at most one attachment) to be sent once the caller's
    transaction commits."""
    html = next((content for content, mimetype in getattr(message, "alternatives", ())
                 if mimetype == "text/html"), "")
    if len(message.attachments) > 1:
        raise ValueError("an outgoing mail carries at most one attachment")
    name, content, mimetype = message.attachments[0] if message.attachments else ("", None, "")
    mail = OutgoingMail.objects.create(
        customer=customer, purpose=purpose, created_by=actor, from_email=message.from_email,
        to=list(message.to), reply_to=list(message.reply_to), subject=message.subject, text=message.body,
        html=html, attachment_name=name or "", attachment_type=mimetype or "",
        attachment=content.encode() if isinstance(content, str) else content,
    )
    from ar_collections.tasks import send_mail

    transaction.on_commit(lambda: send_mail.delay([mail.pk]))
    return mail


def mails_send(*, mail_ids: Iterable[int]) -> Counter:
    """Send these queued mails, one SMTP session for all; counts by outcome
    (sent, deferred, failed, not_claimed)."""
    counts: Counter = Counter()
    mailer = Mailer()
    try:
        for pk in mail_ids:
            counts[_send_one(pk, mailer)] += 1
    finally:
        mailer.close()
    return counts


def mails_sweep(*, now: dt.datetime | None = None) -> int:
    """Hand every mail still queued (a mail server that was down, a worker that
    died, a broker message lost) to the workers again, in batches."""
    from ar_collections.tasks import send_mail

    before = (now or timezone.now()) - SWEEP_AFTER
    ids = list(OutgoingMail.objects.filter(status=MailStatus.QUEUED, created_at__lte=before)
               .order_by("created_at").values_list("pk", flat=True))
    for start in range(0, len(ids), SWEEP_BATCH):
        send_mail.delay(ids[start:start + SWEEP_BATCH])
    return len(ids)


def message_id(mail_id: int) -> str:
    """The same Message-ID for every copy of one mail, so a resend after a crash is recognisable."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "arcrm.invalid"
    return f"<outgoing-mail-{mail_id}@{domain}>"


def _send_one(pk: int, mailer: Mailer) -> str:
    with transaction.atomic():
        mail = (OutgoingMail.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status=MailStatus.QUEUED).first())
        if mail is None:
            return "not_claimed"  # sent, failed for good, gone, or another worker has it
        mail.attempts += 1
        try:
            mailer.send(_message(mail))
        except Exception as error:
            return _failed(mail, error)
        mail.status, mail.sent_at, mail.error = MailStatus.SENT, timezone.now(), ""
        mail.save(update_fields=["status", "sent_at", "error", "attempts"])
        return "sent"


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
    retry = is_transient(error) and mail.attempts < MAX_ATTEMPTS
    log.warning("outgoing mail %s not sent (attempt %d): %s", mail.pk, mail.attempts, text)
    mail.status, mail.error = (MailStatus.QUEUED if retry else MailStatus.FAILED), text
    mail.save(update_fields=["status", "error", "attempts"])
    if retry:
        return "deferred"
    event_record(
        customer=mail.customer, kind=_EVENT_KIND[mail.purpose], subject=mail,
        summary=f"E-mail not sent to {', '.join(mail.to)} after {mail.attempts} attempt(s): "
                f"{mail.subject} — {text}",
        details={"mail": mail.pk, "to": mail.to, "subject": mail.subject, "error": text,
                 "attempts": mail.attempts},
    )
    return "failed"
