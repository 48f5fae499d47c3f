"""Delivery: carry out planned dunning actions, each exactly once.

An action is claimed, carried out and recorded in one transaction per action:

1. `SELECT … FOR UPDATE SKIP LOCKED` on the row while it is still PLANNED to
   count the attempt (committed apart, see below), then the claim: the row
   locked while it is still PLANNED and still this attempt's, and a
   conditional update to SENDING. A second worker with the same id skips
   the locked row, or finds it no longer PLANNED or no longer the first
   one's attempt; either way one of them does nothing.
2. Charges are created, the notice rendered, the outcome written (DONE,
   timeline event) and, last of all, the e-mail handed to SMTP.
3. Commit, with nothing between the server's acceptance and the COMMIT.

A server that refuses the e-mail rolls the whole attempt back; the failure is
then recorded under a claim of its own.

The transaction stays open across the send, so a worker killed mid-send rolls
back to PLANNED and the next sweep delivers the action again: SENDING is never
seen committed, and nothing is ever stuck in it. The attempt is counted in a
short transaction of its own before that one begins, so a step whose delivery
kills its worker every time fails after MAX_DELIVERY_ATTEMPTS instead of
being handed out again for ever. One window remains: the SMTP
server has accepted the message but the commit does not happen (the worker
dies, the database connection drops in between). The next sweep then sends a
second copy. Its Message-ID is derived from the action id, so the duplicate
is recognisable (mail clients and many servers drop it) and no second charge
or timeline entry is ever recorded.

Failures are outcomes too: a permanent one (a 5xx reply, a letter that does
not render) marks the action FAILED with the error; a transient one (the mail
server is unreachable or answers 4xx) puts it back to PLANNED with the error
until MAX_DELIVERY_ATTEMPTS, then FAILED; a server that cannot be reached
at all is tried once per batch, and the batch's other e-mails wait untried,
spending no attempt. What is the install's to fix is
neither: a server that will not open a session at all (a wrong password, a
TLS mismatch; asked once per batch) or send from our address (a 5xx to
MAIL FROM), or a wording template that does not parse or is missing (the
timeline names the file). The action stays PLANNED and no attempt
is spent, so the ladders wait rather than pass over it. Either way the
timeline says what happened, never that something was sent when it was not.
A step left PLANNED holds the next one back; the nightly run sends it again.

A batch has a time limit (DELIVERY_TIME_LIMIT): a mail server that takes the
connection and never answers, or a letter that never finishes rendering,
would otherwise hold its worker for ever. When the time runs out, the
attempt under way rolls back whole, as a refusal does, and is recorded as a
transient failure (OutOfTime): the step waits its back-off with the attempt
spent and fails after MAX_DELIVERY_ATTEMPTS. The rest of the batch is handed
back to the workers as a batch of its own; if it was the mail server that
did not answer, that batch does not wait for it again (its e-mails wait
untried, as after a server that cannot be reached).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import smtplib
import ssl
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import replace
from decimal import Decimal
from email.headerregistry import Address
from email.utils import parseaddr
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import DatabaseError, connection, transaction
from django.db.models import (
    DateTimeField,
    Exists,
    F,
    Max,
    OuterRef,
    Prefetch,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Now
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.utils import timezone

from ar_collections import paper, rendering, timeline, worklist
from ar_collections.channels import caller_for, join_notes, route_for
from ar_collections.dunning import (
    FOR_A_MANAGER,
    HOLIDAYS_LOOK_BACK,
    above_minimum,
    eligible_invoices,
    pay_by_on_working_day,
    resend_pay_by,
)
from ar_collections.models import (
    ActionStatus,
    Allocation,
    Channel,
    ChargeKind,
    CreditNote,
    DisputeStatus,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    Holiday,
    Invoice,
    LateCharge,
    MailPurpose,
    MissCause,
    Payment,
    RunStatus,
    StepAction,
    StepFee,
    Tone,
    WordingKind,
    WorkKind,
    allocation_stands,
    lists_open_invoice,
)
from ar_collections.services import credit_terms_in_force_skip, listed_invoices_moot_said
from ar_collections.wording import cover_wording_in_force, wording_in_force
from arcrm import roles
from arcrm.dates import format_day, next_working_day
from arcrm.money import HALF_CENT, ZERO, by_currency, format_amounts, format_money, quantize
from arcrm.text import one_line, pdf_file_name, person_name, shorten
from customers.cover import working_for
from customers.models import Contact, ContactAbsence, Customer, EventKind, TermsType, TimelineEvent
from customers.services import customer_update

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

# Action ids per delivery task. Each action costs one SMTP round trip or one
# PDF render (~50–200 ms), so a batch of 50 finishes within seconds: a worker
# killed mid-batch hands little back to the broker, batches spread evenly over
# the workers, and a run of 100,000 actions is still only 2,000 messages.
DELIVERY_BATCH_SIZE = 50

# A transient failure (mail server down, 4xx reply) is retried by the next
# sweeps up to this many attempts in all; then the action is FAILED.
MAX_DELIVERY_ATTEMPTS = 5
# The delivery sweep (beat, every DELIVERY_SWEEP_MINUTES) hands over again a
# step still planned that nothing has happened to for this long since it was
# handed over or last tried: its message was lost (Redis restarted, a broker
# outage at the hand-over). Long enough for a worker to take a message queued
# behind a busy run's, so a step is rarely handed over twice (which claims make
# harmless anyway). A setting, so that the settings can hold a delivery's time
# limit and grace within it.
HANDED_OVER_FOR = settings.DELIVERY_HANDED_OVER_FOR
# After a "not now" (greylisting, a server down): 5, 10, 20, 40 minutes (see
# back_off), here and in the outbox, so the attempts are not all spent within the hour.
RETRY_AFTER = dt.timedelta(minutes=5)
# A fault of the install's (a refused login, a broken wording) waits for a
# person to fix it: tried again hourly, not at every sweep.
INSTALL_FAULT_RETRY_AFTER = dt.timedelta(hours=1)
# Steps a sweep hands over at most: its transaction locks them while it moves
# their sweep time on; 10,000 is 200 messages and well under a second, and the
# rest go at the next sweep.
SWEEP_LIMIT = 10_000

OUTCOMES = (
    "emailed", "letters", "call_tasks", "awaiting_approval",
    "skipped", "deferred", "failed", "not_claimed", "handed_back",
)
# What carrying out an action came to, and the e-mail to send last, if any.
Outcome = tuple[str, EmailMultiAlternatives | None]
TONE_NAMES = {Tone.FRIENDLY: "Friendly reminder", Tone.FIRM: "Firm reminder", Tone.FINAL: "Final notice"}


# --- delivering ---------------------------------------------------------------


def actions_deliver(*, action_ids: list[int], mail_server_down: str = "") -> dict[str, int]:
    """Carry out the PLANNED actions among `action_ids`; return outcome counts.

    Ids that are not PLANNED (done, taken by another worker, vanished) are
    counted as not claimed and left alone, so delivering the same ids twice,
    or from two workers at once, sends each action once.

    When the task's time runs out (SoftTimeLimitExceeded), the action under
    way is recorded as put off and the rest handed back (see the module
    docstring). `mail_server_down`: why the mail server is not to be tried
    (a batch handed back after it did not answer).

    Call it outside any transaction: each action commits on its own, and an
    e-mail must not leave before the outcome recorded with it can commit.
    """
    counts = dict.fromkeys(OUTCOMES, 0)
    mailer = Mailer(unreachable=mail_server_down)
    ids = list(action_ids)
    try:
        for done, action_id in enumerate(ids):
            try:
                counts[_deliver_one(action_id, mailer)] += 1
                continue
            except _NotBegun:
                rest = ids[done:]  # nothing of this one was tried: it goes back with the rest
            except SoftTimeLimitExceeded:
                counts[_send_failed(action_id, mailer.out_of_time())] += 1
                rest = ids[done + 1:]
            counts["handed_back"] = len(rest)
            _hand_back(rest, mail_server_down=str(mailer.unreachable or ""))
            break
    finally:
        mailer.close()
    return counts


def _hand_back(action_ids: list[int], *, mail_server_down: str) -> None:
    """The rest of a batch whose time ran out, to the workers as a batch of its
    own, with a time limit of its own. If the broker cannot take it, the
    steps stay PLANNED and the delivery sweep hands them over."""
    from ar_collections.tasks import deliver_actions  # the tasks module imports this one

    if not action_ids:
        return
    log.warning("delivery out of time: dunning actions %s handed back", action_ids)
    try:
        deliver_actions.delay(action_ids, mail_server_down=mail_server_down)
    except Exception:
        log.exception("dunning actions %s could not be handed back; the delivery sweep will", action_ids)


def actions_fan_out(*, action_ids: list[int]) -> int:
    """Enqueue delivery tasks for `action_ids` in batches, once the current
    transaction commits (a worker must be able to see the rows). Returns the
    number of tasks."""
    from ar_collections.tasks import deliver_actions  # the tasks module imports this one

    batches = [
        list(action_ids[i : i + DELIVERY_BATCH_SIZE])
        for i in range(0, len(action_ids), DELIVERY_BATCH_SIZE)
    ]
    for batch in batches:
        deliver_actions.delay_on_commit(batch)
    return len(batches)


def run_sweep_planned(*, run: DunningRun) -> int:
    """(Re)enqueue every PLANNED action of a run: finishes a run after a crash
    or an outage. Claims make a duplicate of a task already queued harmless.
    Returns the number of actions enqueued."""
    # Served by the partial index action_planned_by_run.
    ids = list(
        DunningAction.objects.filter(run=run, status=ActionStatus.PLANNED)
        .order_by("id").values_list("id", flat=True)
    )
    actions_fan_out(action_ids=ids)
    return len(ids)


def actions_sweep_stranded() -> int:
    """(Re)enqueue the PLANNED actions of finished runs: a step a collector sent
    from the review queue after its run had finished, which the mail server
    put off, whose worker died or whose hand-over the broker never took. Their
    run is not swept again, so the nightly
    run does this. Returns the number of actions enqueued."""
    ids = list(
        DunningAction.objects.filter(status=ActionStatus.PLANNED, run__status=RunStatus.FINISHED)
        .order_by("id").values_list("id", flat=True)
    )
    actions_fan_out(action_ids=ids)
    return len(ids)


def actions_sweep_waiting(*, now: dt.datetime | None = None) -> int:
    """(Re)enqueue the PLANNED steps whose hand-over is overdue: those put off
    whose wait is over, and those nothing has happened to for HANDED_OVER_FOR
    since they were handed over or last tried (a message Redis lost). Steps
    of a run still planning are left to it; a step a worker is delivering
    (its row locked) is skipped. Returns the number of actions enqueued.

    Each step handed over gets HANDED_OVER_FOR before the next sweep may hand
    it over again; its claim keeps a duplicate from doing anything twice.

    `now` is the database's clock unless given: the claim and wait times
    compared are written by it (see _begin)."""
    now = Now() if now is None else Value(now, output_field=DateTimeField())
    quiet_since = now - HANDED_OVER_FOR
    due = Q(sweep_after__lte=now) | Q(
        Q(sweep_after__isnull=True),
        Q(claimed_at__lte=quiet_since) | Q(claimed_at__isnull=True, run__planned_at__lte=quiet_since),
    )
    with transaction.atomic():
        # of=self: the run rows are only read; the planner locks them.
        ids = list(
            DunningAction.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(due, status=ActionStatus.PLANNED, run__planned_at__isnull=False)
            .order_by("id").values_list("id", flat=True)[:SWEEP_LIMIT]
        )
        DunningAction.objects.filter(pk__in=ids).update(sweep_after=now + HANDED_OVER_FOR)
        actions_fan_out(action_ids=ids)
    return len(ids)


def _deliver_one(action_id: int, mailer: Mailer) -> str:
    with _delivering(action_id) as ours:
        if not ours:
            return "not_claimed"
        return _attempt(action_id, mailer)


@contextlib.contextmanager
def _delivering(action_id: int) -> Iterator[bool]:
    """Whether this worker is the one delivering `action_id` now: held from
    before the attempt's count until its outcome is recorded, by a lock of
    the database session (PostgreSQL), so it goes with the worker's
    connection if the worker dies.

    The count commits before the claim (see _begin): a second delivery of
    the id coming in between finds the row free, and without this would
    count an attempt of its own for the one the first worker goes on to
    make. A row lock cannot cover that moment; a killed worker's step, whose
    session has ended, is still taken by the next delivery at once. On
    SQLite (the demo on one machine) there is no such lock, and the moment
    stays."""
    if connection.vendor != "postgresql":
        yield True
        return
    try:
        with connection.cursor() as cursor:
            # The one-argument (bigint) form keyed by the action's id: the only
            # advisory lock the project takes.
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [action_id])
            ours = cursor.fetchone()[0]
    except SoftTimeLimitExceeded:
        # Out of time before anything was tried; the lock may have been
        # granted as the time ran out, and kept it would turn every other
        # worker away from the step for as long as this connection lives.
        _advisory_unlock(action_id)
        raise _NotBegun from None
    try:
        yield ours
    finally:
        if ours:
            _advisory_unlock(action_id)


def _advisory_unlock(action_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [action_id])
    except DatabaseError:
        # The connection is gone, and the session's locks with it; the error
        # that took it is the one to report.
        log.warning("dunning action %s: delivery lock not released, the connection is gone", action_id)


def _attempt(action_id: int, mailer: Mailer) -> str:
    # One transaction from the claim to the recorded outcome, held open across
    # the SMTP conversation: a worker killed mid-send rolls back to PLANNED and
    # the next sweep sends again. The window left: the server accepted the
    # message and the commit never happened; the copy sent then carries the
    # same Message-ID (see the module docstring). To keep that window as short
    # as it can be, the send comes after everything else, savepoints released,
    # so only the COMMIT follows the server's acceptance.
    claim = uuid.uuid4()
    try:
        begun = _begin(action_id, claim=claim)
    except SoftTimeLimitExceeded:
        raise _NotBegun from None
    if begun != "begun":
        return begun
    # The time running out (SoftTimeLimitExceeded) rolls the attempt back whole
    # and is recorded by the caller, under a claim of its own, as a refusal is.
    with transaction.atomic():
        action = _claim_begun(action_id, claim=claim)
        if action is None:
            return "not_claimed"
        files: list[str] = []
        try:
            # A savepoint: on failure the charges and records made so far go,
            # and the failure itself is recorded in the claim's transaction.
            with transaction.atomic():
                outcome, message = _carry_out(action, files)
        except SoftTimeLimitExceeded:
            _delete_files(files)
            raise
        except Exception as error:
            log.warning("dunning action %s failed: %s", action.pk, error, exc_info=True)
            _delete_files(files)
            return _record_failure(action, error)
        if message is None:
            return outcome
        # Refused: nothing was sent, the whole attempt goes, and the failure
        # is recorded below under a claim of its own.
        refused = mailer.send_last(message)
        if refused is None:
            return outcome
    log.warning("dunning action %s not sent: %s", action_id, refused, exc_info=refused)
    return _send_failed(action_id, refused)


def _send_failed(action_id: int, error: Exception) -> str:
    """Record that the mail server refused (or could not be reached) for the
    attempt that rolled back. Claimed again first: a sweep may have taken the
    action since, and then it is that worker's to record."""
    with transaction.atomic():
        action = _claim(action_id)
        if action is None:
            return "not_claimed"
        return _record_failure(action, error)


def _begin(action_id: int, *, claim: uuid.UUID | None = None) -> str:
    """Count the attempt about to be made, to be claimed by `claim`, committed
    before it starts: "begun", or "not_claimed" (done, gone, another worker
    has it), or "failed".

    The attempt itself rolls back whole if its worker dies, and the broker
    hands the batch out again at once (acks late): a step whose delivery
    takes its worker down every time (a letter that crashes the renderer or
    runs it out of memory) would be tried for ever, the rest of its batch
    waiting behind it. Counted here, such a step has spent its attempts when
    it comes back, and fails with the reason instead of being tried again.

    Two deliveries of the same id at the same moment may both count, one
    claiming and the other then finding the row held: an attempt counted
    twice, which only brings the last attempt closer, never a second send.

    A step whose last attempt began within the time a delivery may run is
    left alone: its count is committed before its claim, so a second
    delivery of the id (the broker handing a batch out again, a sweep) can
    come in between, and failing the step then would leave that attempt
    nothing to make. If its worker died, a later sweep hands the step over
    again and that delivery fails it.

    The time the attempt began is the database's, as is the time it is
    judged by (_may_be_under_way, the sweep): the worker hosts' clocks drift
    apart, and one a few minutes off would take an attempt just begun for
    one whose worker was stopped long since, or the other way round."""
    with transaction.atomic():
        action = _claim(action_id)
        if action is None:
            return "not_claimed"
        if action.attempts >= MAX_DELIVERY_ATTEMPTS:
            if _may_be_under_way(action):
                return "not_claimed"
            # Failures recorded by delivery fail the step at the last attempt
            # or take the attempt back (install_fault, NotTried): attempts
            # spent on a step still PLANNED are deliveries cut short.
            return _cut_short(action)
        DunningAction.objects.filter(pk=action.pk).update(
            attempts=F("attempts") + 1, claimed_at=Now(), claim=claim or uuid.uuid4()
        )
    return "begun"


def _may_be_under_way(action: DunningAction) -> bool:
    """Whether the attempt counted last (at claimed_at) may still be under
    way: its task's time limit and the grace after it, when a worker that
    has not stopped is killed, have not run out since it began. The daytime
    sweep hands over a step quiet for HANDED_OVER_FOR, no shorter than that
    (the settings refuse a DELIVERY_TIME_LIMIT that is), so the step is not
    left for ever. By the database's clock, which wrote claimed_at."""
    under_way_for = dt.timedelta(seconds=settings.DELIVERY_TIME_LIMIT + settings.TIME_LIMIT_GRACE)
    return DunningAction.objects.filter(pk=action.pk, claimed_at__gt=Now() - under_way_for).exists()


def _cut_short(action: DunningAction) -> str:
    text = (f"its delivery stopped part-way {action.attempts} times, the worker carrying it out "
            "stopped with it (a crash, or out of memory, while the notice was written or sent); "
            "it is not tried again")
    log.error("dunning action %s failed: %s", action.pk, text)
    DunningAction.objects.filter(pk=action.pk).update(status=ActionStatus.FAILED, error=text)
    _record(action.customer, action, summary=f"{step_name(action)} failed, not tried again: {text}",
            details={"error": text, "attempts": action.attempts, "status": ActionStatus.FAILED})
    _failed_last_step_listed(action)
    return "failed"


def _failed_last_step_listed(action: DunningAction) -> None:
    """A step that failed for good told the customer nothing. If it was its
    ladder's last, nothing more goes out while the money stays overdue: its
    collector is asked at once what next (the item says the step failed, and
    why), not left to find the account gone quiet."""
    worklist.ladder_ended_items(on=timezone.localdate(), customer_ids=[action.customer_id], again=True)


def _claim(action_id: int, **changes) -> DunningAction | None:
    """Lock the action if it is still PLANNED and no other worker holds it and
    apply `changes`; None if it is not ours to act on. (The attempt is
    counted by _begin, before the transaction that makes it.)"""
    action = (
        DunningAction.objects.select_for_update(skip_locked=True)
        .filter(pk=action_id, status=ActionStatus.PLANNED)
        .first()
    )
    if action is None:
        return None
    if changes:
        DunningAction.objects.filter(pk=action.pk).update(**changes)
        action.refresh_from_db()
    return action


def _claim_begun(action_id: int, *, claim: uuid.UUID) -> DunningAction | None:
    """Claim the action for the attempt _begin counted with `claim` (SENDING),
    waiting for the row if another transaction holds it; None if it is no
    longer that attempt's to make.

    Held rows are not skipped here, as _claim skips them: what holds the row
    between the count and this claim holds it for a moment and makes no
    attempt (a second delivery of the id finding this one under way, the
    sweep moving its hand-over time on), and skipping would leave the
    counted attempt unmade; at the last attempt, the step would be failed
    as stopped part-way without its last attempt. A worker making an attempt
    of its own holds the row longer, but only after its own _begin changed
    the claim: PostgreSQL, checking the row again once that _begin
    commits, finds it no longer this attempt's and hands back nothing,
    never waiting for the other attempt."""
    action = (
        DunningAction.objects.select_for_update()
        .filter(pk=action_id, status=ActionStatus.PLANNED, claim=claim)
        .first()
    )
    if action is None:
        return None
    DunningAction.objects.filter(pk=action.pk).update(status=ActionStatus.SENDING)
    action.refresh_from_db()
    return action


def _carry_out(action: DunningAction, files: list[str]) -> Outcome:
    """Carry the action out and record the outcome; return the outcome and
    the e-mail to send once everything else is done (None when there is none)."""
    action = (DunningAction.objects.select_related("step__policy", "cycle").prefetch_related("step__fees")
              .get(pk=action.pk))
    action.customer = _with_contacts(action.customer_id)
    step, today = action.step, timezone.localdate()

    lines = _lines_still_due(action, on=today)
    moot = _moot(action, lines, by="delivery")
    if moot:
        return _skip(action, moot), None
    if step.action in FOR_A_MANAGER:
        return _hold_for_approval(action), None

    route = route_for(action=action, day=today)
    if route.channel == Channel.PHONE:
        return _call_task(action, lines, route.contact, route.note, today), None
    return _written(action, lines, route.contact, route.channel, route.note, files, today)


def _written(action, lines, contact, channel, note, files, today) -> Outcome:
    step, customer = action.step, action.customer
    _pay_by_from(action, today, channel, lines)
    language, language_note = rendering.wording_language(contact.language, step.tone)
    note = join_notes(note, language_note)
    charges = _charges_create(action, lines)
    fee_note = _fee_note(step, lines)
    notice = _notice(action, lines, contact, language=language, today=today)
    copies = _copies_asked(action, lines, contact, channel=channel, today=today)
    notice = replace(notice, copies_attached=bool(copies))
    email = rendering.render_email(notice)
    what = TONE_NAMES[Tone(step.tone)]
    count, amounts = len(lines), _amounts(lines) + _charges_asked(notice)
    details = {
        "channel": channel, "recipient": contact.pk, "recipient_name": contact.name,
        "subject": email.subject, "text": email.text, "channel_note": note,
        "invoices": [line.invoice.number for line in lines], "lines": _lines_details(lines),
        "charges": [_charge_details(c) for c in charges],
        **({"charges_note": fee_note} if fee_note else {}),
    }
    fee_tail = f"; {fee_note}" if fee_note else ""
    fields = {
        "pay_by": action.pay_by, "channel": channel, "recipient": contact, "channel_note": note,
        "subject": email.subject, "body_text": email.text, "body_html": email.html,
    }

    if channel == Channel.LETTER:
        pdf = rendering.render_letter(notice)
        action.letter_pdf.save(f"dunning-{action.pk}.pdf", ContentFile(pdf), save=False)
        files.append(action.letter_pdf.name)
        # One line, cut to its column: an address over 300 characters must not fail the letter.
        address = shorten(", ".join(x.strip() for x in contact.postal_address.splitlines() if x.strip()),
                          DunningAction._meta.get_field("recipient_address").max_length)
        details.update(address=address, letter=action.letter_pdf.name)
        _done(action, recipient_address=address, letter_pdf=action.letter_pdf.name, **fields)
        _record(customer, action, details=details, invoices=[x.invoice for x in lines], summary=(
            f"{what} letter to {contact.name} queued for printing: {count} invoice{_s(count)}, "
            f"{amounts}, pay by {format_day(action.pay_by)}{fee_tail}"
        ))
        return "letters", None

    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[mail_address(contact.name, contact.email)],
        reply_to=[notice.collector_email] if notice.collector_email else None,
        headers={"Message-ID": message_id(action.pk)},
    )
    message.attach_alternative(email.html, "text/html")
    # Firm and final notices carry the statement as a PDF to forward or file;
    # a friendly "did it reach you?" the invoices themselves.
    if step.tone >= Tone.FIRM or step.action == StepAction.LETTER:
        attachment = pdf_file_name("statement", notice.reference)
        message.attach(attachment, rendering.render_letter(notice), "application/pdf")
        details["attachment"] = attachment
    elif copies:
        details["attachment"] = _copies_attach(message, copies, reference=notice.reference)
    details.update(address=contact.email, message_id=message_id(action.pk))
    _done(action, recipient_address=contact.email, **fields)
    _record(customer, action, details=details, invoices=[x.invoice for x in lines], summary=(
        f"{what} e-mailed to {contact.name}: {count} invoice{_s(count)}, {amounts}, "
        f"pay by {format_day(action.pay_by)}{fee_tail}"
    ))
    # Sent by the caller, last: everything above rolls back if the server refuses it.
    return "emailed", message


# A friendly "did it reach you?" e-mail carries a copy of each invoice it asks
# about when it lists at most this many: past that a statement is what helps,
# and a mail of dozens of PDFs is one nobody opens.
COPIES_AT_MOST = 10


def _copies_asked(action, lines, contact: Contact, *, channel: str, today: dt.date):
    """The invoice copies a friendly e-mail about overdue invoices carries,
    each asking for payment by the notice's own date; none for a letter, a
    firmer tone (its statement goes instead) or a reminder before the due date."""
    if (channel != Channel.EMAIL or action.step.tone != Tone.FRIENDLY or len(lines) > COPIES_AT_MOST
            or all(line.days_overdue <= 0 for line in lines)):
        return []
    return invoice_copies(action.customer, [line.invoice for line in lines], contact,
                          sender=working_for(action.customer, on=today), on=today, pay_by=action.pay_by)


def pay_by_when_sent(action, *, day: dt.date, channel: str, lines: list[_Line],
                     holidays: Collection[dt.date] | None = None) -> dt.date:
    """The pay-by date the step gives if carried out on `day` by `channel`
    about `lines` (`holidays`: the office's after `day`, read when not given).

    A step carried out later than planned (a mail outage, a review that
    waited) still gives the customer the step's full time to pay. A letter
    gives at least letter_days_to_pay from the day it is posted, whatever the
    step gives an e-mail (one sent as a letter for want of an e-mail address
    would otherwise ask to be paid before the post brings it). A reminder
    before the due date asks for payment by the due date, never later. Any
    other date falls on a working day (dunning.pay_by_on_working_day). The
    date is stored with the outcome, so the next step waits for it too."""
    if holidays is None:
        holidays = Holiday.objects.days_after(day)
    pay_by = action.pay_by
    if day > action.planned_on:
        pay_by = day + dt.timedelta(days=action.step.days_to_pay)
    if channel == Channel.LETTER:
        posted = letter_posted_on(day, holidays=holidays)
        pay_by = max(pay_by, posted + dt.timedelta(days=letter_days_to_pay(action.step.policy)))
    pay_by = pay_by_on_working_day(pay_by, holidays=holidays)
    falls_due = min((line.invoice.due_date for line in lines), default=None)
    if falls_due is not None and falls_due >= day:
        # Nothing it lists is overdue (the notice says "falls due shortly"):
        # it reminds the customer of terms agreed already, and a later date in
        # writing would be new terms nobody agreed to, which the customer could
        # hold us to and the next step would wait for. So it names the first
        # due date of what it lists (each invoice's own stands in its table),
        # even in a letter the post may bring on that day or after it: the
        # invoice is due then whatever the post does, and the print queue says
        # so only once that day has passed.
        pay_by = min(pay_by, falls_due)
    return pay_by


def letter_posted_on(written: dt.date, *, holidays: Collection[dt.date] | None = None) -> dt.date:
    """The day a letter written on `written` goes to the post: the print queue
    is worked through each working morning, so the next working day, the
    office's holidays (`holidays`, else read) passed over (the demo's team
    posts so too)."""
    if holidays is None:
        holidays = Holiday.objects.days_after(written)
    return next_working_day(written, holidays=holidays)


def letter_days_to_pay(policy) -> int:
    """The fewest days from posting a letter to the pay-by date it asks: the
    days the policy leaves between two contacts. The post takes some of them,
    and the print queue warns of a letter that asks to be paid sooner."""
    return policy.min_days_between_contacts


def _pay_by_from(action, today: dt.date, channel: str, lines: list[_Line]) -> None:
    action.pay_by = pay_by_when_sent(action, day=today, channel=channel, lines=lines)


def _call_task(action, lines, contact: Contact | None, note: str, today: dt.date) -> str:
    # No fee or interest here: a charge counts only once it is announced in writing.
    _pay_by_from(action, today, Channel.PHONE, lines)
    customer = action.customer
    collector = customer.collector
    # The collector away, the task is their stand-in's (the worklist item goes to them too).
    caller, for_whom = caller_for(customer, day=today)
    whom = contact.name if contact else customer.name
    count, amounts = len(lines), _amounts(lines)
    phone = contact.phone if contact else ""
    when = f"; best time: {contact.best_time_to_call}" if contact and contact.best_time_to_call else ""
    script = "\n".join(
        [f"Call {whom}{f' on {phone}' if phone else ''}{when}.",
         f"About {count} overdue invoice{_s(count)} of {customer.name}, {amounts}:"]
        + [f"  {x.invoice.number}  due {format_day(x.invoice.due_date)}  {format_money(x.amount, x.currency)}"
           for x in lines]
        + [f"Ask for payment by {format_day(action.pay_by)}.", *([f"Note: {note}"] if note else [])]
    )
    subject = f"Call {whom} about {amounts}"
    _done(action, channel=Channel.PHONE, recipient=contact, recipient_address=phone, pay_by=action.pay_by,
          channel_note=note, subject=subject, body_text=script, body_html="")
    _record(customer, action, invoices=[x.invoice for x in lines], summary=(
        f"Call task for {for_whom}: call {whom} about {amounts} "
        f"({count} invoice{_s(count)}), pay by {format_day(action.pay_by)}"
    ), details={
        "channel": Channel.PHONE, "collector": collector.pk, "caller": caller,
        "recipient": contact.pk if contact else None,
        "phone": phone, "channel_note": note, "text": script,
        "invoices": [x.invoice.number for x in lines], "lines": _lines_details(lines),
    })
    worklist.item_add(
        kind=WorkKind.CALL, key=f"call:action:{action.pk}", customer=customer, action=action,
        title=f"{subject} ({count} invoice{_s(count)}), pay by {format_day(action.pay_by)}", due_on=today,
    )
    return "call_tasks"


def _hold_for_approval(action) -> str:
    """A step that changes the terms of trade never runs unapproved, and a
    manager review never passes without a manager, even if it reached
    delivery (say, a ladder edited after planning)."""
    DunningAction.objects.filter(pk=action.pk).update(
        status=ActionStatus.AWAITING_APPROVAL, channel=Channel.INTERNAL
    )
    _record(action.customer, action, summary=(
        f"{action.step.get_action_display()} waits for a manager's approval"
    ), details={"channel": Channel.INTERNAL})
    return "awaiting_approval"


def _skip(action, reason: str, *, by: User | None = None, note: str = "") -> str:
    """The step is not carried out; `by` and `note`: a person decided it."""
    DunningAction.objects.filter(pk=action.pk).update(
        status=ActionStatus.SKIPPED, skip_reason=reason, done_at=timezone.now(),
        **({"reviewed_by": by} if by else {}),
    )
    details = {"skip_reason": reason}
    if by:
        details.update(note=note, before={"status": action.status}, after={"status": ActionStatus.SKIPPED})
    _record(action.customer, action, actor=by, summary=(
        f"{step_name(action)} skipped: {reason}" + (f" ({person_name(by)}: {note})" if by else "")
    ), details=details)
    return "skipped"


def _done(action, **fields) -> None:
    DunningAction.objects.filter(pk=action.pk).update(
        status=ActionStatus.DONE, done_at=timezone.now(), error="", **fields
    )


def back_off(attempts: int) -> dt.timedelta:
    """How long a step or a mail the server put off waits after its `attempts`th try."""
    return RETRY_AFTER * 2 ** max(attempts - 1, 0)


def install_fault(error: Exception) -> str | None:
    """What is wrong with the install, not with this step, if that is the
    error: a setting to fix (the mail server refuses the session, or to send
    from our address) or a wording template that does not parse or is
    missing. Such a step waits, spending no attempt, however long the fix
    takes: failing it would move the ladder past it."""
    if isinstance(error, SessionRefused):
        return "the mail server refused the session"
    if isinstance(error, smtplib.SMTPSenderRefused) and not is_transient(error):
        # MAIL FROM refused for good (a 553: "not owned by user"): the same for every message.
        return "the mail server will not send from our address (the DEFAULT_FROM_EMAIL setting)"
    if isinstance(error, TemplateSyntaxError):
        return "a wording template is broken"
    if isinstance(error, TemplateDoesNotExist):  # one an install's wording extends or includes
        return "a wording template is missing"
    return None


def _record_failure(action: DunningAction, error: Exception) -> str:
    """Record the failure of the attempt its claim counted; a fault of the
    install's takes that attempt back (see install_fault)."""
    text = f"{type(error).__name__}: {error}"
    fault = install_fault(error)
    not_tried = isinstance(error, NotTried)
    retry = fault is not None or not_tried or (
        is_transient(error) and action.attempts < MAX_DELIVERY_ATTEMPTS
    )
    status = ActionStatus.PLANNED if retry else ActionStatus.FAILED
    attempts = action.attempts - (1 if fault or not_tried else 0)
    wait = INSTALL_FAULT_RETRY_AFTER if fault else back_off(attempts)
    DunningAction.objects.filter(pk=action.pk).update(
        status=status, error=text, attempts=attempts, sweep_after=Now() + wait if retry else None
    )
    if fault and text == action.error:
        # Tried again hourly until someone fixes it: the timeline says so once.
        log.error("dunning action %s still waits, %s: %s", action.pk, fault, text)
        return "deferred"
    if not_tried:
        summary = f"{step_name(action)} not sent yet (no attempt spent), will retry: {text}"
    elif fault:
        # Every step it touches waits until someone fixes it: loud in the logs.
        log.error("dunning action %s waits, %s: %s", action.pk, fault, text)
        summary = f"{step_name(action)} not sent yet, {fault}: {text}"
    elif retry:
        summary = (f"{step_name(action)} not sent yet (attempt {action.attempts} of "
                   f"{MAX_DELIVERY_ATTEMPTS}), will retry: {text}")
    else:
        summary = f"{step_name(action)} failed, nothing was sent: {text}"
    _record(action.customer, action, summary=summary, details={
        "error": text, "attempts": attempts, "status": status,
    })
    if not retry and address_refused(error):
        _address_refused_record(action, reason=server_reply(error))
    if not retry:
        _failed_last_step_listed(action)
    return "deferred" if retry else "failed"


def address_refused(error: Exception) -> bool:
    """The mail server says, for good, that the recipient's address takes no
    mail: a 5xx with an addressing status (RFC 3463's 5.1.x: "user unknown",
    "no such domain"), whether it refused the recipient or the message. A
    5.7.x ("relay access denied", spam) says nothing about the mailbox."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = list(error.recipients.values())
        return bool(replies) and all(code >= 500 and _addressing(reply) for code, reply in replies)
    if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500:
        return _addressing(error.smtp_error)
    return False


def _addressing(reply: bytes | str) -> bool:
    return _said(reply).lstrip().startswith("5.1.")


def _said(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def server_reply(error: Exception) -> str:
    """What the mail server answered, as it wrote it ("550 5.1.1 <anna@…>:
    User unknown"), for a person to read; else the error."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{code} {_said(reply)}" for code, reply in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_said(error.smtp_error)}"
    return str(error)


def _address_refused_record(action: DunningAction, *, reason: str) -> None:
    """The contact the step went to (routed again: nothing has changed since)."""
    action.customer = _with_contacts(action.customer_id)
    route = route_for(action=action, day=timezone.localdate())
    if route.channel == Channel.EMAIL and route.contact is not None:
        contact_address_refused(route.contact, customer=action.customer, reason=reason)


def contact_address_refused(contact: Contact, *, customer: Customer, reason: str) -> None:
    """Mark the contact's address refused for good (written reminders go by
    post from now on, see channels._reachable) and ask the account's
    collector, once per address, to find one that works."""
    today = timezone.localdate()
    Contact.objects.filter(pk=contact.pk).update(
        email_refused=contact.email, email_refused_on=today,
        email_refused_reason=shorten(reason, Contact._meta.get_field("email_refused_reason").max_length),
    )
    worklist.item_add(
        kind=WorkKind.ADDRESS_REFUSED, key=f"address-refused:{contact.pk}:{contact.email.lower()}",
        customer=customer, due_on=today,
        title=f"The mail server refused {contact.name}'s address {contact.email} for good: find one that "
              "works (written reminders go by post meanwhile)",
        # Refused again after it was marked as working: the item comes back.
        again=True,
    )


def is_transient(error: Exception) -> bool:
    """Worth another try later: the mail server was unreachable or said "not now"."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPException):
        return False
    return isinstance(error, OSError)  # refused connection, timeout, name lookup, full disk


def unreachable(error: Exception) -> bool:
    """No conversation with the mail server at all (smtplib's errors are OSErrors
    too; a reply such as 4xx is a conversation, about this message only)."""
    if isinstance(error, smtplib.SMTPConnectError | smtplib.SMTPServerDisconnected):
        return True
    return isinstance(error, OSError) and not isinstance(error, smtplib.SMTPException)


class SessionRefused(ConnectionError):
    """The mail server will not open a session for us, for good: the login
    failed (a 535 for a wrong password), STARTTLS or TLS failed, or the
    greeting was a 5xx. That is a setting to fix, nothing to do with any one
    message: the e-mail waits (no attempt spent) instead of failing for good,
    so the ladders do not move past it. A server saying "not now" (a 4xx
    greeting, a dropped connection) is an ordinary transient failure."""


def _session_refusal(error: Exception) -> SessionRefused | None:
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return None
    if isinstance(error, smtplib.SMTPResponseException) and 400 <= error.smtp_code < 500:
        return None
    if isinstance(error, smtplib.SMTPException | ssl.SSLError):
        return SessionRefused(f"the mail server refused the session: {error}")
    return None


class NotTried(ConnectionError):
    """The e-mail was not offered to the mail server: it could not be reached
    for an earlier e-mail of the same batch. No attempt of the e-mail's is spent."""


class OutOfTime(TimeoutError):
    """The task's time (DELIVERY_TIME_LIMIT) ran out part-way through this
    step or mail: the mail server did not answer, or the notice was not
    written in time. Transient, as a server's "not now" is: the attempt is
    spent and the step waits its back-off, so one that runs out of time
    every time fails after the last attempt instead of holding a worker
    again and again. A server that took the message but whose reply never
    came sends a second copy at the next attempt, with the same Message-ID
    (as after a timeout of the connection)."""


class _NotBegun(Exception):
    """The time ran out before the attempt was counted: nothing was tried."""


class Mailer:
    """One SMTP session for a batch: opened at the first e-mail, dropped after
    an error so the next message starts on a clean connection. A session the
    server refused for good is not asked for again in the same batch: one
    failed login per batch, not one per e-mail (an account could be locked).
    Nor is a server that could not be reached: one that hangs would cost every
    e-mail of the batch the whole timeout, the letters and calls behind them
    waiting too."""

    def __init__(self, *, unreachable: str = "") -> None:
        self.backend = get_connection()
        self.opened = False
        self.refusal: SessionRefused | None = None
        self.unreachable: Exception | None = OutOfTime(unreachable) if unreachable else None
        self.hung = False  # the time ran out waiting for the mail server

    def send(self, message: EmailMultiAlternatives) -> None:
        if self.refusal is not None:
            raise SessionRefused(*self.refusal.args)
        if self.unreachable is not None:
            raise NotTried(f"the mail server could not be reached moments ago: {self.unreachable}")
        try:
            if not self.opened:
                try:
                    self.backend.open()
                except Exception as error:
                    if (refusal := _session_refusal(error)) is None:
                        if unreachable(error):
                            self.unreachable = error
                        raise
                    self.refusal = refusal
                    raise refusal from error
                self.opened = True
            message.connection = self.backend
            message.send()
        except SoftTimeLimitExceeded:
            # Dropped without a goodbye: a server that stopped answering would
            # keep us another EMAIL_TIMEOUT waiting for its reply to QUIT.
            self.abort()
            self.hung = True
            self.unreachable = self.out_of_time()
            raise
        except Exception:
            self.close()
            raise

    def send_last(self, message: EmailMultiAlternatives) -> Exception | None:
        """Send `message` as the last thing the current transaction does, so
        that only its COMMIT follows the server's acceptance (a crash in
        between sends a second copy, with the same Message-ID). None once the
        server took it; else the error, with the transaction marked to roll
        back, so nothing recorded with the message stands."""
        try:
            self.send(message)
        except SoftTimeLimitExceeded:
            raise  # the whole attempt rolls back; the caller records it (OutOfTime)
        except Exception as error:
            transaction.set_rollback(True)
            return error
        return None

    def out_of_time(self, *, otherwise: str = "the notice was not written") -> OutOfTime:
        """What to record when the task's time ran out now: the mail server did
        not answer, or `otherwise`."""
        limit = f"the delivery's time limit (DELIVERY_TIME_LIMIT, {settings.DELIVERY_TIME_LIMIT} s)"
        if self.hung:
            return OutOfTime(f"the mail server did not answer within {limit}")
        return OutOfTime(f"{otherwise} within {limit}")

    def abort(self) -> None:
        """Drop the session at once, without the QUIT close() sends (also one
        stopped half-way through its opening: the login, STARTTLS)."""
        self.opened = False
        for name in ("connection", "_partial_connection"):
            connection = getattr(self.backend, name, None)
            setattr(self.backend, name, None)
            if connection is not None:
                try:
                    connection.close()
                except OSError:
                    log.debug("dropping the SMTP session failed", exc_info=True)

    def close(self) -> None:
        if self.opened:
            self.opened = False
            try:
                self.backend.close()
            except Exception:  # a broken session is being dropped anyway
                log.debug("closing the SMTP session failed", exc_info=True)


def message_id(action_id: int) -> str:
    """The same Message-ID for every copy of one action's e-mail."""
    return f"<dunning-action-{action_id}@{sender_domain()}>"


def sender_domain() -> str:
    """The domain of our Message-IDs: the sender address's."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "arcrm.invalid"


def mail_address(name: str, email: str) -> str:
    """'Name <address>' for a To header. The name is put on one line (a line
    break would end the header: Django refuses to send it) and quoted where it
    needs to be; an internationalised domain (anna@bäckerei-müller.de) is left
    as it is, for Django to encode when it sends, where formataddr() fails on it."""
    return str(Address(display_name=one_line(name), addr_spec=email))


# --- what the notice says -------------------------------------------------------


class _Line:
    """A listed invoice as it stands at delivery."""

    def __init__(self, line: DunningActionInvoice, on: dt.date, asked: Decimal) -> None:
        self.invoice = line.invoice
        # The balance today, less what an open dispute holds back (`asked`,
        # eligible_invoices' asked_amount): a part payment since planning
        # lowers what we ask for, and the disputed part is not asked for. Nor
        # does it bear interest while disputed: the notice charges interest on
        # what it asks for.
        self.amount = asked
        self.disputed = line.invoice.open_amount - asked
        self.currency = line.invoice.currency
        # As of the letter's date: a step that went out late (an outage, a
        # review) says how late the invoices are now, not on the planning day.
        self.days_overdue = (on - line.invoice.due_date).days


def _lines_still_due(action: DunningAction, *, on: dt.date) -> list[_Line]:
    lines = list(action.lines.select_related("invoice").order_by("invoice__due_date", "invoice__number"))
    due = dict(eligible_invoices(on=on).filter(pk__in=[x.invoice_id for x in lines])
               .values_list("pk", "asked_amount"))
    return [_Line(x, on, due[x.invoice_id]) for x in lines if x.invoice_id in due]


def _moot(action: DunningAction, lines: list[_Line], *, by: str) -> str:
    """Why a step planned earlier is no longer worth carrying out by the time
    of `by` (delivery, approval), or "" if it still is: its invoices were
    paid, written off, cancelled in the ERP or paused since planning (worded
    as the review queue words it), or payments took what is left under the
    policy's minimum, below which nobody is chased."""
    step = action.step
    if not lines:
        return listed_invoices_moot_said(action, by=by)
    if not above_minimum(step.policy, dict(_totals(lines))):
        return f"by {by} what is still due ({_amounts(lines)}) is under the policy's minimum"
    return ""


def _with_contacts(customer_id: int) -> Customer:
    return Customer.objects.select_related("collector").prefetch_related(
        Prefetch("contacts__absences", queryset=ContactAbsence.objects.select_related("delegate"))
    ).get(pk=customer_id)


def _fees_due(step, lines: list[_Line]) -> list[StepFee]:
    """The step's fees a notice listing `lines` carries: one per currency it
    lists that the step has a fee in. Each currency is its own debt, so a
    notice listing EUR and GBP invoices carries both fees, each in its own
    currency's total; a fee is never converted, never relabelled as another
    currency (40 in euros is not 40 in yen)."""
    listed = {x.currency for x in lines}
    return [fee for fee in step.fees.all() if fee.currency in listed]


def _fee_note(step, lines: list[_Line]) -> str:
    """Why a step with fees charged none on this notice, or "" if it charged some (or has none)."""
    fees = list(step.fees.all())
    if not fees or _fees_due(step, lines):
        return ""
    amounts = " and ".join(format_money(fee.amount, fee.currency) for fee in fees)
    currencies = " or ".join(fee.currency for fee in fees)
    return (f"no late fee: the step's {amounts} {'applies' if len(fees) == 1 else 'apply'} to notices "
            f"listing {currencies} invoices")


def _charges_create(action: DunningAction, lines: list[_Line]) -> list[LateCharge]:
    """The step's late fee and interest, charged by this written notice."""
    step, customer = action.step, action.customer
    charges = []
    for fee in _fees_due(step, lines):
        charges.append(LateCharge(
            customer=customer, action=action, invoice=None, kind=ChargeKind.LATE_FEE,
            currency=fee.currency, amount=fee.amount, open_amount=fee.amount,
            basis=f"step {step.position} of {step.policy.name}",
        ))
    rate = step.interest_rate_percent
    if rate > 0:
        # Days an earlier notice of this cycle already charged (waived or not:
        # a waiver forgives them, it does not make them chargeable again; a
        # charge cancelled with its letter was never asked for).
        charged_through = dict(
            LateCharge.objects.filter(action__cycle_id=action.cycle_id, kind=ChargeKind.INTEREST,
                                      cancelled_at__isnull=True)
            .exclude(action=action).values("invoice_id").annotate(through=Max("interest_through"))
            .values_list("invoice_id", "through")
        )
        starts = {
            x.invoice.pk: max(filter(None, [x.invoice.due_date, charged_through.get(x.invoice.pk)]))
            for x in lines
        }
        paid = _payments_after(lines, since=starts)
        for line in lines:
            stretches = _balance_stretches(line, paid[line.invoice.pk], start=starts[line.invoice.pk],
                                           end=action.planned_on)
            if not stretches:
                continue
            # Simple interest, actual/365, on what was owed day by day for the
            # days not charged yet up to planning: a part payment lowers the
            # balance from its date on. Multiplied out before the one division
            # and rounded half up once, to the cent or the currency's smallest
            # unit (whole yen), so the basis shown recomputes exactly.
            amount = quantize(sum(balance * days for balance, days in stretches) * rate / Decimal(36_500),
                              line.currency)
            if amount <= 0:
                continue
            charges.append(LateCharge(
                customer=customer, action=action, invoice=line.invoice, kind=ChargeKind.INTEREST,
                currency=line.currency, amount=amount, open_amount=amount, interest_through=action.planned_on,
                basis=_interest_basis(stretches, line.currency, rate), rate_percent=rate,
                stretches=[[str(balance), days] for balance, days in stretches],
            ))
    # The unique constraints (action, kind, invoice; a fee: action, kind,
    # currency) make a repeat impossible.
    return LateCharge.objects.bulk_create(charges)


Paid = list[tuple[dt.date, Decimal]]  # (allocated on, amount), oldest first
Stretches = list[tuple[Decimal, int]]  # (balance, days)


def _payments_after(lines: list[_Line], *, since: dict[int, dt.date]) -> dict[int, Paid]:
    """Per listed invoice, the payments applied to it after its interest start,
    oldest first. Credit notes are left out: they correct what was owed from
    the start, so interest never ran on what they took off."""
    paid: dict[int, Paid] = {x.invoice.pk: [] for x in lines}
    if not lines:
        return paid
    rows = (
        Allocation.objects.filter(invoice_id__in=paid, payment__isnull=False,
                                  allocated_on__gt=min(since.values()))
        .order_by("allocated_on", "id").values_list("invoice_id", "allocated_on", "amount")
    )
    for invoice_id, on, amount in rows:
        if on > since[invoice_id]:
            paid[invoice_id].append((on, amount))
    return paid


def _balance_stretches(line: _Line, payments: Paid, *, start: dt.date, end: dt.date) -> Stretches:
    """(balance, days) from `start` (exclusive) to `end`: the balance owed on
    each stretch, as the open amount today plus what was paid after it. A
    payment on day d ends interest on the part it paid that day, as paying the
    whole invoice on `end` would."""
    if end <= start:
        return []
    balance = line.amount + sum((amount for _, amount in payments), ZERO)
    stretches, day = [], start
    for on, amount in payments:
        if on >= end:
            break
        if on > day:
            stretches.append((balance, (on - day).days))
            day = on
        balance -= amount
    if balance > 0:
        stretches.append((balance, (end - day).days))
    return [(b, d) for b, d in stretches if b > 0 and d > 0]


def _interest_basis(stretches: Stretches, currency: str, rate: Decimal) -> str:
    """'EUR 500.00 × 8.00% × 12/365', one term per stretch of the balance."""
    basis = " + ".join(f"{format_money(b, currency)} × {rate:.2f}% × {d}/365" for b, d in stretches)
    limit = LateCharge._meta.get_field("basis").max_length
    if len(basis) <= limit:
        return basis
    days = sum(d for _, d in stretches)
    return (f"{len(stretches)} balances over {days} days, from {format_money(stretches[0][0], currency)} "
            f"to {format_money(stretches[-1][0], currency)}, × {rate:.2f}%/365")[:limit]


def _notice(action, lines, contact, *, language: str, today: dt.date) -> rendering.Notice:
    customer, step = action.customer, action.step
    # Whom the customer is told to ask: a stand-in while the collector is away.
    collector = working_for(customer, on=today)
    new_charges = list(action.charges.all())
    return rendering.Notice(
        tone=step.tone,
        language=language,
        customer_name=customer.legal_name or customer.name,
        account_number=customer.account_number,
        recipient_name=contact.name,
        postal_address=contact.postal_address,
        letter_date=today,
        pay_by=action.pay_by,
        lines=tuple(
            rendering.NoticeLine(x.invoice.number, x.invoice.issue_date, x.invoice.due_date,
                                 x.days_overdue, x.amount, x.currency, disputed_amount=x.disputed)
            for x in lines
        ),
        collector_name=person_name(collector),
        collector_email=collector.email,
        credits=_credits_on_notice(customer),
        charges=_charges_standing(customer, besides=action) + tuple(_notice_charge(c) for c in new_charges),
        interest_rate_percent=step.interest_rate_percent,
        offer_payment_plan=action.cycle.cause == MissCause.STUFF_HAPPENS,
        reference=f"D-{action.pk}",
        wording=wording_in_force(WordingKind.DUNNING, step.tone, language),
    )


def invoice_copies(customer: Customer, invoices: list[Invoice], contact: Contact, *, sender,
                   on: dt.date, pay_by: dt.date) -> list[rendering.InvoiceCopy]:
    """invoice_copy for each of `invoices`, the billing address read once."""
    billing = _billing_address(customer, contact)
    return [invoice_copy(customer, invoice, contact, sender=sender, on=on, pay_by=pay_by, billing=billing)
            for invoice in invoices]


def _billing_address(customer: Customer, contact: Contact) -> str:
    # The invoice went to the account's billing address, whoever asks for the copy.
    billing = customer.contacts.filter(is_primary_billing=True).exclude(postal_address="").first()
    return (billing or contact).postal_address


def invoice_copy(customer: Customer, invoice: Invoice, contact: Contact, *, sender, on: dt.date,
                 pay_by: dt.date, billing: str | None = None) -> rendering.InvoiceCopy:
    """A copy of one invoice, for `contact` in her language: the invoice as
    issued, what has been paid and credited on it and what is open, with the
    fees and interest our reminders about it charged that are still owed, to
    pay by `pay_by` (the date the mail it goes with asks for)."""
    taken_off = invoice.allocations.aggregate(
        paid=Sum("amount", filter=Q(payment__isnull=False)),
        credited=Sum("amount", filter=Q(credit_note__isnull=False)),
    )
    # Interest on this invoice, and a fee of a notice that listed it, in its
    # currency (a notice charges one fee per currency it lists).
    charges = (
        LateCharge.objects.filter(customer=customer, currency=invoice.currency).standing()
        .filter(Q(invoice=invoice) | Q(invoice__isnull=True, action__lines__invoice=invoice))
        .distinct().order_by("created_at", "id")
    )
    return rendering.InvoiceCopy(
        language=contact.language, number=invoice.number, issue_date=invoice.issue_date,
        due_date=invoice.due_date, currency=invoice.currency, total_amount=invoice.total_amount,
        paid_amount=taken_off["paid"] or ZERO, credited_amount=taken_off["credited"] or ZERO,
        open_amount=invoice.open_amount, customer_name=customer.legal_name or customer.name,
        account_number=customer.account_number,
        billing_address=billing if billing is not None else _billing_address(customer, contact),
        recipient_name=contact.name,
        copy_date=on, pay_by=pay_by, sender_name=person_name(sender), sender_email=sender.email,
        customer_reference=invoice.po_reference,
        charges=tuple(_notice_charge(c) for c in charges),
        disputed_amount=min(
            invoice.open_amount,
            invoice.disputes.filter(status=DisputeStatus.OPEN).aggregate(part=Sum("disputed_amount"))["part"]
            or ZERO,
        ),
        wording=cover_wording_in_force(WordingKind.INVOICE_COPY, contact.language),
    )


def _copies_attach(message: EmailMultiAlternatives, copies: list[rendering.InvoiceCopy], *,
                   reference: str) -> str:
    """The copies as one PDF, a page each: "invoice-<number>.pdf" for one
    invoice, "invoices-<reference>.pdf" for several."""
    name = (pdf_file_name("invoice", copies[0].number) if len(copies) == 1
            else pdf_file_name("invoices", reference))
    message.attach(name, rendering.render_invoice_copies(copies), "application/pdf")
    return name


def _charges_standing(customer, *, besides=None) -> tuple[rendering.NoticeCharge, ...]:
    """The account's charges of earlier notices still owed, for a notice to
    repeat, whichever cycle charged them: its amount due is what the customer
    owes, and a fee left when the invoices were paid is not forgotten."""
    earlier = LateCharge.objects.filter(customer=customer).standing()
    if besides is not None:
        earlier = earlier.exclude(action=besides)
    return tuple(_notice_charge(c, earlier=True) for c in earlier.order_by("created_at", "id"))


def _notice_charge(charge: LateCharge, *, earlier: bool = False) -> rendering.NoticeCharge:
    return rendering.NoticeCharge(
        charge.kind, charge.open_amount, charge.currency, charge.basis, earlier=earlier,
        paid=charge.amount - charge.open_amount, rate_percent=charge.rate_percent,
        stretches=tuple((Decimal(balance), days) for balance, days in charge.stretches),
    )


def left_to_apply(documents, customer, *, link: str):
    """Credit notes (link "credit_note") or payments ("payment") of the account
    with something not yet allocated, as `allocated`. Summed by a join, one
    row per document: PostgreSQL sums a document's allocations once for the
    row and its test, where a subquery would be run for each."""
    # At least a cent left: SQLite sums decimals as floats, and a payment
    # allocated in full must not come out with "0.00" left.
    documents = documents.filter(customer=customer)
    if link == "payment":
        # A payment the bank took back (reversed) has nothing left to apply,
        # though its allocations no longer stand: workspace.payment_reverse.
        documents = documents.filter(reversal__isnull=True)
    # A join does not go through Allocation.objects: what stands is said here.
    return documents.annotate(
        allocated=Coalesce(Sum("allocations__amount", filter=allocation_stands("allocations__")), ZERO)
    ).filter(amount__gt=F("allocated") + HALF_CENT)


def credits_standing(customer, *, newest: int) -> tuple[rendering.NoticeCredit, ...]:
    """The account's newest credit notes with something left to apply, then its
    newest payments kept on account ("the rest stays on account"), `newest` of
    each, oldest first: the customer may deduct both from what a notice asks.
    credits_held has the totals of them all."""
    credits = reversed(left_to_apply(CreditNote.objects, customer, link="credit_note")
                       .order_by("-issued_on", "-number")[:newest])
    on_account = reversed(left_to_apply(Payment.objects, customer, link="payment")
                          .order_by("-received_on", "-pk")[:newest])
    return tuple(
        rendering.NoticeCredit(c.number, c.issued_on, c.amount - c.allocated, c.currency) for c in credits
    ) + tuple(
        rendering.NoticeCredit(p.reference, p.received_on, p.amount - p.allocated, p.currency, payment=True)
        for p in on_account
    )


# Credits a notice lists one by one, the newest of each kind; older ones are
# one line per currency, so years of unapplied documents keep a letter short.
NOTICE_CREDITS_LISTED = 10


def _credits_on_notice(customer) -> tuple[rendering.NoticeCredit, ...]:
    listed = credits_standing(customer, newest=NOTICE_CREDITS_LISTED)
    held = credits_held(customer)
    if sum(n for _, _, n in held) == len(listed):
        return listed
    shown: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (ZERO, 0))
    for credit in listed:
        amount, n = shown[credit.currency]
        shown[credit.currency] = amount + credit.amount, n + 1
    return tuple(
        rendering.NoticeCredit("", None, total - shown[currency][0], currency,
                               earlier_count=count - shown[currency][1])
        for currency, total, count in held if count > shown[currency][1]
    ) + listed


def credits_held(customer) -> list[tuple[str, Decimal, int]]:
    """Per currency, what the account's credit notes and payments on account
    have left to apply, and how many documents that is: two statements,
    whatever the account's history."""
    totals: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (ZERO, 0))
    for documents, link in ((CreditNote.objects, "credit_note"), (Payment.objects, "payment")):
        # Added up here: a sum per currency in the statement would sum each
        # document's allocations again (an aggregate of left_to_apply's own).
        left = left_to_apply(documents, customer, link=link).order_by()
        for currency, amount, allocated in left.values_list("currency", "amount", "allocated"):
            total, count = totals[currency]
            totals[currency] = total + amount - allocated, count + 1
    return [(currency, total, count) for currency, (total, count) in sorted(totals.items())]


# --- decisions by people --------------------------------------------------------


def action_review(*, action: DunningAction, collector: User, send: bool, note: str = "") -> DunningAction:
    """A collector's review of a step queued for review: send it (the delivery
    workers carry it out, as they do a nightly run's steps), or skip it (with
    the reason)."""
    roles.require_act_on(collector, action.customer)
    if not send and not note.strip():
        raise ValidationError({"note": "Say why this step is skipped."})
    with transaction.atomic():
        locked = DunningAction.objects.select_for_update().select_related("step").get(pk=action.pk)
        if locked.status != ActionStatus.IN_REVIEW:
            raise ValidationError(
                f"This step is no longer waiting for review ({locked.get_status_display()})."
            )
        if send:
            DunningAction.objects.filter(pk=locked.pk).update(
                status=ActionStatus.PLANNED, reviewed_by=collector,
                sweep_after=Now() + HANDED_OVER_FOR,
            )
            summary = f"{step_name(locked)} reviewed by {person_name(collector)}: send"
        else:
            DunningAction.objects.filter(pk=locked.pk).update(
                status=ActionStatus.SKIPPED, reviewed_by=collector, skip_reason=note.strip()[:300],
                done_at=timezone.now(),
            )
            summary = f"{step_name(locked)} skipped by {person_name(collector)}: {note.strip()}"
        _record(locked.customer, locked, summary=summary, actor=collector, details={
            "decision": "send" if send else "skip", "note": note.strip(),
            "before": {"status": ActionStatus.IN_REVIEW},
            "after": {"status": ActionStatus.PLANNED if send else ActionStatus.SKIPPED},
        })
        # Reviewed here, it is off the worklist now: left to the nightly refresh,
        # the list would offer all day to review a notice already decided.
        worklist.items_close(actor=collector, kind=WorkKind.REVIEW, action=locked)
        if send:
            action_hand_over(action_id=locked.pk)
    locked.refresh_from_db()
    return locked


def action_hand_over(*, action_id: int) -> None:
    """Hand one PLANNED action to the delivery workers once the current
    transaction commits: the path a nightly run's actions take, claim and all.
    A person's request never waits for the mail server (one that takes the
    connection and never answers would hold the page until its timeout).

    robust: a broker that is down must not turn the committed decision into an
    error page; the action stays PLANNED and the delivery sweep hands it over."""
    from ar_collections.tasks import deliver_actions  # the tasks module imports this one

    transaction.on_commit(lambda: deliver_actions.delay([action_id]), robust=True)


def action_approve(*, action: DunningAction, manager: User, note: str) -> DunningAction:
    """A manager approves a credit hold or a switch to C.O.D. and it takes
    effect; or, on a manager review, records having weighed the account, and
    the ladder goes on."""
    if not manager.has_perm("customers.set_credit_terms"):
        raise PermissionDenied("Only a manager may put an account on hold or change its terms.")
    if not note.strip():
        raise ValidationError({"note": "Say why you approve this step."})
    with transaction.atomic():
        locked = DunningAction.objects.select_for_update().select_related("step__policy").get(pk=action.pk)
        if locked.status != ActionStatus.AWAITING_APPROVAL:
            raise ValidationError(
                f"This step is not waiting for approval ({locked.get_status_display()})."
            )
        if locked.step.action not in FOR_A_MANAGER:
            raise ValidationError("Only a credit hold, a switch to C.O.D. or a manager review waits "
                                  "for a manager.")
        customer = Customer.objects.select_for_update().get(pk=locked.customer_id)
        locked.customer = customer
        # Held or moved to C.O.D. by hand since the manager opened the page:
        # nothing is left to approve, and the timeline must not say otherwise.
        if credit_terms_in_force_skip(action_ids=[locked.pk], actor=manager):
            locked.refresh_from_db()
            return locked
        # A hold or C.O.D. is no more worth imposing than a notice is worth sending.
        moot = _moot(locked, _lines_still_due(locked, on=timezone.localdate()), by="approval")
        if moot:
            _skip(locked, moot, by=manager, note=note.strip())
            locked.refresh_from_db()
            return locked
        terms = {}  # what changes on the account
        if locked.step.action == StepAction.MANAGER_REVIEW:
            before, after = {"status": ActionStatus.AWAITING_APPROVAL}, {"status": ActionStatus.DONE}
        elif locked.step.action == StepAction.CREDIT_HOLD:
            before, after = {"on_credit_hold": customer.on_credit_hold}, {"on_credit_hold": True}
            terms = after
        else:
            # Standard terms: one on prepayment (stricter) or C.O.D. had its step skipped above.
            before, after = {"terms_type": customer.terms_type}, {"terms_type": TermsType.COD}
            terms = after
        if terms:
            # As every hold or terms change: on the account's history with why
            # (the step approved, by whom, and the note), and whatever follows
            # a change of the terms (credit_terms_changed) follows this one too.
            customer = customer_update(customer=customer, actor=manager, changes=terms, reason=(
                f"{step_name(locked)} approved by {person_name(manager)}: {note.strip()}"))
        DunningAction.objects.filter(pk=locked.pk).update(
            status=ActionStatus.DONE, channel=Channel.INTERNAL, reviewed_by=manager,
            done_at=timezone.now(),
        )
        verb = "done" if locked.step.action == StepAction.MANAGER_REVIEW else "approved"
        # An exception, as the decline of such a step is (services.action_decline):
        # filtering the timeline by exceptions finds a manager's decisions either way.
        _record(customer, locked, actor=manager, kind=EventKind.EXCEPTION, summary=(
            f"{locked.step.get_action_display()} {verb} by {person_name(manager)}: {note.strip()}"
        ), details={"before": before, "after": after, "note": note.strip()})
    locked.refresh_from_db()
    return locked


MOOT_SETTLED = "everything it lists was settled before it was posted"


def letters_withdraw_moot(*, customer_ids: list[int] | None = None, actor: User | None = None) -> int:
    """Letters written but not yet posted whose every invoice has been paid,
    credited or cancelled since: they leave the print queue (see
    forms.letters_in_queue), each withdrawn on the timeline (`actor`, if any,
    recorded what made it moot), and the late fee and interest they charged
    are cancelled: a letter the customer never receives charges nothing. Like
    a letter a person withdraws, each becomes a step not carried out
    (skipped): the ladder counts neither its tone nor its pay-by date, and the
    next step does not wait the minimum gap after a contact that never
    happened. A charge already paid in part stays as it is, and so do the
    charges of a letter after which the customer was written to again (a
    later notice, a red-tape re-send): those listed them and asked for them.

    Run when a payment is recorded (before its rest goes to charges) and by
    the daily refresh (credit notes, cancelled invoices). The invoice copies
    and statements of the print queue made moot go with them, at the same
    moments (paper.documents_withdraw_moot); the count is the letters'."""
    moot = (
        DunningAction.objects.filter(channel=Channel.LETTER, status=ActionStatus.DONE,
                                     printed_at__isnull=True)
        .exclude(letter_pdf="").exclude(lists_open_invoice())
    )
    if customer_ids is not None:
        moot = moot.filter(customer_id__in=customer_ids)
    withdrawn = 0
    # Newest first: a later letter that listed an earlier one's charges asks
    # for them only if it goes out; withdrawn first, it no longer keeps them.
    for letter in moot.select_related("customer", "step").order_by("-done_at", "-pk"):
        with transaction.atomic():
            # The letter locked and read again: marking it printed at this
            # moment waits for this, then finds it out of the queue (views.
            # _letters_mark_printed marks only letters that still ask); a
            # second sweep at this moment waits, then finds it withdrawn.
            if not DunningAction.objects.select_for_update().filter(
                pk=letter.pk, status=ActionStatus.DONE, printed_at__isnull=True
            ).exclude(lists_open_invoice()).exists():
                continue
            reason = (f"Letter of {format_day(letter.planned_on)} not posted: everything it lists was "
                      "settled first")
            letter_withdraw_locked(letter=letter, actor=actor, note=MOOT_SETTLED, cancel_reason=reason,
                                   summary=f"{reason}; withdrawn from the print queue")
            withdrawn += 1
    paper.documents_withdraw_moot(customer_ids=customer_ids, actor=actor)
    return withdrawn


def _written_to_since() -> Q:
    """For a DunningAction query: the customer was written to after the letter
    (a later notice, a red-tape re-send), which listed its charges and asked
    for them; they stand whatever becomes of the letter."""
    written_since = DunningAction.objects.filter(
        customer=OuterRef("customer"), status=ActionStatus.DONE, done_at__gt=OuterRef("done_at"),
        channel__in=[Channel.EMAIL, Channel.LETTER],
    )
    # By day: a re-send from the letter's planned day on counts (keeping charges is the safe side).
    resent_since = DunningCycle.objects.filter(
        customer=OuterRef("customer"), invoices_resent_on__gte=OuterRef("planned_on")
    )
    return Q(Exists(written_since)) | Q(Exists(resent_since))


def letter_withdraw(*, letter: DunningAction, actor: User, reason: str) -> DunningAction:
    """A person takes a letter out of the print queue before it goes to the post
    (the account was paused since it was written, say). The letter becomes a
    step not carried out (skipped, with the reason and who decided): the
    ladder counts neither its tone nor its pay-by date. Its charges are
    cancelled as a moot letter's are: a letter the customer never receives
    charges nothing, unless a later notice asked for them."""
    roles.require_act_on(actor, letter.customer)
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why the letter is withdrawn."})
    with transaction.atomic():
        # Locked while still in the queue: marking it printed at this moment
        # waits, then finds it gone (views._letters_mark_printed), or it was
        # printed first and this finds it gone.
        locked = (
            DunningAction.objects.select_for_update(of=("self",)).select_related("customer")
            .filter(pk=letter.pk, channel=Channel.LETTER, status=ActionStatus.DONE, printed_at__isnull=True)
            .first()
        )
        if locked is None:
            raise ValidationError("This letter has left the print queue already: printed or withdrawn.")
        summary = (f"Letter of {format_day(locked.planned_on)} withdrawn from the print queue by "
                   f"{person_name(actor)}: {reason}")
        letter_withdraw_locked(letter=locked, actor=actor, note=reason, cancel_reason=summary,
                               summary=summary, reviewed_by=actor)
    locked.refresh_from_db()
    return locked


def letters_mark_printed(*, letter_ids: list[int], actor) -> int:
    """Mark these letters in the print queue as posted by `actor`: the print
    queue's "Mark printed", and the demo's team posting its letters."""
    # Conditional on printed_at: two people marking the same letter both see
    # success, and the first time it left for the post is the one kept. And on
    # the letter still being in the queue and asking for something: one
    # withdrawn meanwhile (by a person, or made moot: delivery.letter_withdraw,
    # letters_withdraw_moot) is not marked posted. The form checked the ticked
    # letters before this; a withdrawal can commit in between, and then this
    # update waits for its lock and reads the row again.
    # The letters marked are read under their locks first, for the timeline:
    # a second marking at this moment waits, then finds them printed.
    with transaction.atomic():
        ids = list(DunningAction.objects.select_for_update().filter(
            pk__in=letter_ids, status=ActionStatus.DONE, printed_at__isnull=True
        ).filter(lists_open_invoice()).values_list("pk", flat=True))
        now = timezone.now()
        marked = DunningAction.objects.filter(pk__in=ids).update(printed_at=now)
        letters_posted_record(letter_ids=ids, actor=actor, at=now)
        worklist.items_close(actor=actor, kind=WorkKind.LETTER_UNPOSTED, action_id__in=letter_ids,
                             action__printed_at__isnull=False)
    return marked


def letters_posted_record(*, letter_ids: list[int], actor: User | None, at: dt.datetime) -> None:
    """Say on each account's timeline that its letter went to the post: the
    next step's minimum gap counts from that day, and a collector reading the
    account should see it without opening the letter. The caller has just
    marked them printed, under their locks."""
    day = format_day(timezone.localtime(at).date())
    letters = (DunningAction.objects.filter(pk__in=letter_ids).select_related("customer", "step", "recipient")
               .order_by("pk"))
    for letter in letters:
        whom = f" to {letter.recipient.name}" if letter.recipient else ""
        _record(letter.customer, letter, actor=actor, summary=(
            f"{TONE_NAMES[Tone(letter.step.tone)]} letter{whom} posted on {day}"
        ), details={"before": {"printed_at": None}, "after": {"printed_at": at.isoformat()}})


def letter_withdraw_locked(*, letter: DunningAction, actor: User | None, note: str, cancel_reason: str,
                           summary: str, **fields) -> None:
    """What withdrawing a letter before the post does, whoever or whatever
    withdraws it (a person: letter_withdraw; everything it lists settled:
    letters_withdraw_moot; a promise or plan holding all it asks:
    workspace.letters_withdraw_held): the letter becomes a step not carried
    out, its charges are cancelled unless a later notice asked for them, its
    "not posted" worklist item closes, and the timeline says which. `note`
    is why (the skip reason says it after "withdrawn from the print queue:
    "), `cancel_reason` what the cancelled charges keep, `summary` the
    timeline entry; `fields` are further columns set on the letter
    (reviewed_by). It checks nothing: the caller, in a
    transaction, has locked the letter and found it still in the print queue,
    so it is withdrawn once and never after it was printed."""
    _letter_not_carried_out(letter, skip_reason=f"withdrawn from the print queue: {note}", **fields)
    asked_again = DunningAction.objects.filter(pk=letter.pk).filter(_written_to_since()).exists()
    charges = [] if asked_again else _charges_cancel(letter, reason=cancel_reason, actor=actor)
    if charges:
        summary += f"; its charges are cancelled ({_charges_listing(charges)})"
    elif asked_again and letter.charges.standing().exists():
        summary += "; its charges stand: a later notice asked for them"
    _record(letter.customer, letter, actor=actor, summary=summary, details={
        "note": note,
        "before": {"status": ActionStatus.DONE}, "after": {"status": ActionStatus.SKIPPED},
        "cancelled_charges": [{"charge": c.pk, **_charge_details(c)} for c in charges],
    })
    _charges_cancel_unasked(letter, actor=actor)
    worklist.items_close(actor=actor, kind=WorkKind.LETTER_UNPOSTED, action=letter)


def _charges_cancel_unasked(withdrawn: DunningAction, *, actor: User | None) -> None:
    """The charges of earlier letters withdrawn before the post stood because
    a later notice listed them; if `withdrawn` was that notice, and nothing
    else written since asks for them, nobody did: they are cancelled as the
    letter's own would have been, on its timeline entry."""
    earlier = (
        DunningAction.objects.filter(customer=withdrawn.customer_id, channel=Channel.LETTER,
                                     status=ActionStatus.SKIPPED, printed_at__isnull=True,
                                     done_at__lt=withdrawn.done_at)
        .filter(Exists(LateCharge.objects.filter(action=OuterRef("pk")).standing()))
        .exclude(_written_to_since()).select_related("customer").order_by("pk")
    )
    for letter in earlier:
        summary = (f"Letter of {format_day(letter.planned_on)}, withdrawn before the post: its charges are "
                   "cancelled")
        charges = _charges_cancel(letter, reason=summary, actor=actor)
        if not charges:
            continue
        _record(letter.customer, letter, actor=actor, summary=(
            f"{summary} ({_charges_listing(charges)}), the letter of {format_day(withdrawn.planned_on)} "
            "that listed them having been withdrawn too"
        ), details={"cancelled_charges": [{"charge": c.pk, **_charge_details(c)} for c in charges],
                    "because": {"withdrawn": withdrawn.pk}})


def _letter_not_carried_out(letter: DunningAction, *, skip_reason: str, **fields) -> None:
    """A letter withdrawn before the post becomes a step not carried out
    (models.NOT_CARRIED_OUT): it keeps its place on the ladder (the step is
    not taken again in the cycle) but was no contact. The caller holds its lock."""
    DunningAction.objects.filter(pk=letter.pk).update(
        status=ActionStatus.SKIPPED,
        skip_reason=shorten(skip_reason, DunningAction._meta.get_field("skip_reason").max_length), **fields,
    )


def _charges_cancel(letter: DunningAction, *, reason: str, actor: User | None) -> list[LateCharge]:
    """Cancel the late fee and interest of a letter that never reaches the
    customer, those not paid in any part nor waived: each keeps its amount and
    says why, when and by whom it was cancelled (never a silent loss); the
    caller lists them on the timeline. The caller holds the letter's lock."""
    # Locked, and paid-or-not read again: a payment at this moment pays or waits.
    # No allocation that stands: one of a payment reversed since paid nothing.
    charges = list(LateCharge.objects.select_for_update().filter(
        ~Exists(Allocation.objects.filter(charge=OuterRef("pk"))),
        action=letter, waived_at__isnull=True, cancelled_at__isnull=True,
    ).order_by("pk"))
    if not charges:
        return []
    cancel_reason = shorten(reason, LateCharge._meta.get_field("cancel_reason").max_length)
    LateCharge.objects.filter(pk__in=[c.pk for c in charges]).update(
        cancelled_at=timezone.now(), cancelled_by=actor, cancel_reason=cancel_reason
    )
    return charges


def _charges_listing(charges: list[LateCharge]) -> str:
    return " + ".join(f"{c.get_kind_display().lower()} {format_money(c.amount, c.currency)}" for c in charges)


def charge_waive(*, charge: LateCharge, manager: User, note: str) -> LateCharge:
    """A manager waives a late fee or interest; recorded, never a silent loss."""
    if not manager.has_perm("customers.act_on_any_customer"):
        raise PermissionDenied("Only a manager may waive a late fee or interest.")
    if not note.strip():
        raise ValidationError({"note": "Say why the charge is waived."})
    with transaction.atomic():
        locked = LateCharge.objects.select_for_update().select_related("customer").get(pk=charge.pk)
        if locked.waived_at:
            raise ValidationError("This charge has already been waived.")
        if locked.cancelled_at:
            raise ValidationError("This charge was cancelled with its letter; there is nothing to waive.")
        if not locked.open_amount:
            raise ValidationError("This charge is paid; there is nothing left to waive.")
        locked.waived_at, locked.waived_by, locked.waiver_note = timezone.now(), manager, note.strip()[:300]
        locked.save(update_fields=["waived_at", "waived_by", "waiver_note"])
        # What is waived is what was left to pay; a part already paid stays paid.
        waived = format_money(locked.open_amount, locked.currency)
        if locked.open_amount != locked.amount:
            waived += f" (of {format_money(locked.amount, locked.currency)})"
        _record(locked.customer, locked, actor=manager, kind=EventKind.EXCEPTION, summary=(
            f"{locked.get_kind_display()} of {waived} waived by {person_name(manager)}: {note.strip()}"
        ), details={
            "before": {"waived": False},
            "after": {"waived": True, "waiver_note": locked.waiver_note},
            "charge": {"kind": locked.kind, "amount": str(locked.amount), "currency": locked.currency,
                       "basis": locked.basis, "action": locked.action_id},
            "waived_amount": str(locked.open_amount),
        })
    return locked


# --- small helpers --------------------------------------------------------------


def _record(customer, subject, *, summary: str, details: dict, actor=None,
            kind: str = EventKind.DUNNING, invoices=None) -> TimelineEvent:
    """A timeline event about an action (or a cycle), linked to the invoices it
    lists: those given, else the action's lines."""
    if invoices is None:
        invoices = (
            list(DunningActionInvoice.objects.filter(action=subject).values_list("invoice_id", flat=True))
            if isinstance(subject, DunningAction) else []
        )
    return timeline.event_record(
        customer=customer, kind=kind, actor=actor, summary=summary, subject=subject, invoices=invoices,
        details={**({"action": action_id} if (action_id := _action_of(subject)) else {}), **details},
    )


def _action_of(subject) -> int | None:
    if isinstance(subject, DunningAction):
        return subject.pk
    return getattr(subject, "action_id", None)


def _totals(lines: list[_Line]) -> list[tuple[str, Decimal]]:
    return by_currency((line.currency, line.amount) for line in lines)


def _amounts(lines: list[_Line]) -> str:
    return format_amounts(_totals(lines))


def _charges_asked(notice) -> str:
    """What a notice asked for beyond its invoices, for its timeline line:
    ", with late fees and interest EUR 80.00 (EUR 30,999.92 in all)", or ""
    when it asked for no charge (the line's amount is then all it asked)."""
    asked = rendering.totals(notice)
    charged = [(t.currency, t.charges) for t in asked if t.charges]
    if not charged:
        return ""
    return (f", with late fees and interest {format_amounts(charged)} "
            f"({format_amounts((t.currency, t.due) for t in asked)} in all)")


def _lines_details(lines: list[_Line]) -> list[dict]:
    """The invoices as the notice listed them, for its timeline entry: the
    action's own lines keep the amounts of the planning day."""
    return [{"invoice": x.invoice.number, "amount": str(x.amount), "currency": x.currency} for x in lines]


def _charge_details(charge: LateCharge) -> dict:
    return {"kind": charge.kind, "amount": str(charge.amount), "currency": charge.currency,
            "basis": charge.basis, "invoice": charge.invoice_id}


def step_name(action: DunningAction) -> str:
    """A step as the timeline and the manager's pages name it: "Friendly reminder (step 1, E-mail)"."""
    step = action.step
    if step.action in (StepAction.EMAIL, StepAction.LETTER, StepAction.ESCALATE_PRINCIPAL):
        return f"{TONE_NAMES[Tone(step.tone)]} (step {step.position}, {step.get_action_display()})"
    return f"Step {step.position} ({step.get_action_display()})"


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("could not remove %s after a failed delivery", name)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# --- red tape: the invoices again, to the right person ---------------------------


def resends_retry(*, on: dt.date) -> int:
    """Daily: red tape noted on a cycle whose invoices have not gone yet is
    tried again: its re-send was stopped by an error or lost with a worker, or
    no billing address was on file. Returns how many re-sends were enqueued;
    each claims its cycle, so one already under way sends nothing twice."""
    from ar_collections.tasks import resend_overdue_invoices  # it imports this module

    customer_ids = list(
        DunningCycle.objects.filter(cause=MissCause.RED_TAPE, closed_on__isnull=True,
                                    invoices_resent_on__isnull=True)
        .order_by("customer_id").values_list("customer_id", flat=True)
    )
    for customer_id in customer_ids:
        resend_overdue_invoices.delay_on_commit(customer_id, on.isoformat())
    return len(customer_ids)


def invoices_resend(*, customer_id: int, on: dt.date) -> str:
    """Send the account's overdue invoices again, at once, to whoever handles
    billing today (absences applied): the "red tape" treatment.

    Once per cycle: the open cycle's invoices_resent_on is claimed in the same
    transaction as the mail is queued, so a task delivered twice re-sends
    nothing. The mail goes through the outbox (ar_collections/outbox.py): a
    server saying "not now" gets it again later, and a refusal for good is
    on the timeline, never lost with a rolled-back claim. The friendly wording
    ("did you receive it? a copy is attached") is the one a first reminder
    uses, with a copy of each invoice as a PDF (a statement past
    COPIES_AT_MOST invoices).
    """
    from ar_collections import outbox  # it imports this module

    with transaction.atomic():
        cycle = (
            DunningCycle.objects.select_for_update(skip_locked=True)
            .filter(customer_id=customer_id, closed_on__isnull=True, invoices_resent_on__isnull=True)
            .first()
        )
        if cycle is None:
            return "nothing"  # no open cycle, already re-sent, or another worker has it
        customer = _with_contacts(customer_id)
        invoices = list(
            eligible_invoices(on=on).filter(customer_id=customer_id, due_date__lt=on)
            .order_by("due_date", "number")
        )
        contact = customer.billing_contact(on=on)
        if invoices and (contact is None or not contact.email_usable):
            # Not marked re-sent: once someone is back, or an address is on
            # file, the daily check (resends_retry) sends them. Said once a
            # cycle, not every morning (while the same people are away). An
            # address the mail server refused for good is none: mailed again,
            # it would be refused again, and retried every morning.
            if contact is None:
                why = customer.nobody_billed_why(on=on)
            elif contact.email_refused_now:
                why = f"the mail server refused {contact.name}'s address"
            else:
                why = "no billing e-mail address on file"
            summary = f"Invoices could not be re-sent: {why}"
            if not TimelineEvent.objects.for_subject(cycle).filter(summary=summary).exists():
                _record(customer, cycle, details={"invoices": [i.number for i in invoices]},
                        invoices=invoices, summary=summary)
            return "nobody" if contact is None else "no-address"
        cycle.invoices_resent_on = on
        cycle.save(update_fields=["invoices_resent_on"])
        if not invoices:
            return "nothing"
        language, _ = rendering.wording_language(contact.language, Tone.FRIENDLY)
        collector = working_for(customer, on=on)  # a stand-in while the collector is away
        # Never earlier than a notice of the cycle already asked: two dates, the
        # sooner one second, would leave the customer unsure which holds.
        asked = cycle.actions.exclude(status=ActionStatus.SKIPPED).aggregate(last=Max("pay_by"))["last"]
        holidays = Holiday.objects.days_after(on - HOLIDAYS_LOOK_BACK)
        notice = rendering.Notice(
            tone=Tone.FRIENDLY, language=language, customer_name=customer.legal_name or customer.name,
            account_number=customer.account_number, recipient_name=contact.name,
            postal_address=contact.postal_address, letter_date=on,
            pay_by=max(filter(None, [resend_pay_by(on, holidays=holidays), asked])),
            lines=tuple(
                rendering.NoticeLine(i.number, i.issue_date, i.due_date, (on - i.due_date).days,
                                     i.open_amount, i.currency)
                for i in invoices
            ),
            collector_name=person_name(collector),
            collector_email=collector.email, reference=f"R-{cycle.pk}",
            wording=wording_in_force(WordingKind.DUNNING, Tone.FRIENDLY, language),
            # The amount due is what the last notice said is owed: its charges and credits too.
            credits=_credits_on_notice(customer), charges=_charges_standing(customer),
        )
        # Red tape: the invoices themselves, to the person who books them.
        copies = invoice_copies(customer, invoices, contact, sender=collector, on=on,
                                pay_by=notice.pay_by) if len(invoices) <= COPIES_AT_MOST else []
        notice = replace(notice, copies_attached=bool(copies))
        email = rendering.render_email(notice)
        message = EmailMultiAlternatives(
            subject=email.subject, body=email.text, from_email=settings.DEFAULT_FROM_EMAIL,
            to=[mail_address(contact.name, contact.email)],
            reply_to=[collector.email] if collector.email else None,
        )
        message.attach_alternative(email.html, "text/html")
        if copies:
            _copies_attach(message, copies, reference=notice.reference)
        else:
            message.attach(f"invoices-R-{cycle.pk}.pdf", rendering.render_letter(notice), "application/pdf")
        mail = outbox.mail_queue(message, customer=customer, purpose=MailPurpose.INVOICES_RESEND)
        _record(customer, cycle, invoices=invoices, summary=(
            f"Invoices re-sent to {contact.name} (red tape): {len(invoices)} invoice{_s(len(invoices))}"
        ), details={"recipient": contact.pk, "address": contact.email, "subject": email.subject,
                    "invoices": [i.number for i in invoices], "mail": mail.pk})
        return "queued"
