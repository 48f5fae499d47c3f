"""Changes to the account card, its contacts and their absences.

Each function is one atomic workflow: it validates with the model's own rules,
saves, and records a timeline event saying who changed what, from what to
what (DESIGN invariant 4). A ValidationError leaves the database untouched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone

from arcrm.dates import DATE_AHEAD_YEARS, add_months, far_ahead, format_day
from arcrm.money import format_money
from arcrm.roles import COLLECTOR, MANAGER, role_of
from arcrm.text import person_name
from customers.models import (
    CollectorAbsence,
    Contact,
    ContactAbsence,
    Customer,
    EventKind,
    TimelineEvent,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Sent inside customer_update's transaction when an account changes collector
# (sender=Customer; customer, before_id and after_id: the collectors' user ids or
# None; actor). The collections app hands the open worklist items over with it.
collector_changed = Signal()
# Sent inside customer_update's transaction when an account's credit hold or
# payment terms change (sender=Customer; customer, actor, before: the changed
# fields' old values, by_erp: whether the ERP's accounts file changed them). The
# collections app takes the steps waiting for a manager to impose those terms
# off the approvals, and records a lift that is a manager's decision on the cycle.
credit_terms_changed = Signal()
# Sent inside customer_update's transaction when an account's currency changes
# (sender=Customer; customer, actor). The collections app recomputes its payment
# behaviour, whose figures are in the account's currency: else the old
# currency's amounts would show under the new code until the night.
currency_changed = Signal()
# Sent with `absence` and `on` when an absence is ended early, inside the
# transaction: the worklist hands back what its stand-in may no longer work.
cover_ended = Signal()
# Sent with `absence` and `on` (today) when an absence in force today is
# recorded, inside the transaction: the worklist hands what someone away now
# held for another to whoever covers for that person today, at once rather
# than with the next morning's refresh.
cover_recorded = Signal()
# The card's fields a credit hold or a switch to C.O.D. changes.
CREDIT_TERMS_FIELDS = ("on_credit_hold", "terms_type")
# A credit hold or C.O.D. is put on with a why (the approval's note, the ERP's
# word), so putting it on or taking it off by hand says why too: the next
# manager weighing the account reads it on the timeline.
TERMS_REASON_NEEDED = ("Say why the credit hold or the payment terms change: "
                       "the timeline keeps it beside the change.")

CONTACT_FIELDS = (
    "name", "job_title", "role", "email", "phone", "postal_address", "language",
    "invoice_delivery", "reminder_channel", "best_time_to_call", "is_primary_billing", "notes",
    "email_refused",
)
# How a change reads on the timeline where the field's own name would not say it.
_CONTACT_CHANGE_LABELS = {"email_refused": "address marked as working again"}


def account_opened(customer: Customer, *, at: dt.datetime | None = None, actor: User | None = None
                   ) -> TimelineEvent:
    """The "account opened" event that begins an account's timeline, not saved
    yet: the demo's history writes many at once (`at`: when, else now)."""
    referrer = customer.referred_by
    return TimelineEvent(
        customer=customer, kind=EventKind.ACCOUNT_CREATED, actor=actor,
        **({"occurred_at": at} if at is not None else {}),
        summary=f"Account opened for {customer.name}"
                + (f", referred by {referrer.name}" if referrer else ""),
        details={"account_number": customer.account_number,
                 "referred_by": referrer.account_number if referrer else None},
    )


def customer_open(*, customer: Customer, actor: User) -> Customer:
    """Open a new account (the admin is where accounts are opened), its
    timeline beginning with who opened it."""
    with transaction.atomic():
        customer.full_clean()
        customer.save()
        account_opened(customer, actor=actor).save()
    return customer


# Rows per INSERT when a customer master is opened at once: statements that
# stay well under PostgreSQL's 65,535 parameters (a customer has 27 columns).
OPEN_BATCH = 1000


def customers_open(*, accounts: Sequence[tuple[Customer, Contact | None]], actor: User | None
                   ) -> list[Customer]:
    """Open many new accounts at once (an ERP's customer master), each with
    its billing contact if it has one, as customer_open and contact_save open
    them one by one: the same rows, and on each timeline who opened the
    account, then who added its contact. The caller has checked each as those
    do (the card's and the contact's forms); the database still refuses an
    account number recorded meanwhile (IntegrityError, nothing written)."""
    with transaction.atomic():
        customers = Customer.objects.bulk_create([customer for customer, _ in accounts],
                                                 batch_size=OPEN_BATCH)
        contacts = []
        for customer, contact in accounts:
            if contact is not None:
                contact.customer = customer
                contacts.append(contact)
        Contact.objects.bulk_create(contacts, batch_size=OPEN_BATCH)
        events = []
        for customer, contact in accounts:
            events.append(account_opened(customer, actor=actor))
            if contact is not None:
                events.append(TimelineEvent(
                    customer=customer, kind=EventKind.CONTACT_CHANGED, actor=actor,
                    summary=_contact_added(contact),
                    details={"contact": contact.pk, "before": {},
                             "after": _fields_of(contact, CONTACT_FIELDS)},
                    subject_type=ContentType.objects.get_for_model(contact), subject_id=contact.pk))
        TimelineEvent.objects.bulk_create(events, batch_size=OPEN_BATCH)
    return customers


def terms_reason_check(*, changed: Iterable[str], reason: str) -> None:
    """Refuse a change of the credit hold or the payment terms (`changed`: the
    card's fields that change) without a `reason` (ValidationError on terms_reason)."""
    if not reason.strip() and any(name in CREDIT_TERMS_FIELDS for name in changed):
        raise ValidationError({"terms_reason": TERMS_REASON_NEEDED})


def customer_update(*, customer: Customer, actor: User, changes: Mapping[str, Any], reason: str = "",
                    by_erp: bool = False) -> Customer:
    """Apply card changes (field name → new value) and record what actually
    changed; `reason`, why the credit hold or payment terms change, goes with
    the change onto the timeline, and without one such a change is refused
    (terms_reason_check), whoever asks: the card, an approval, an import.
    `by_erp`: the changes are the ERP's record of the account (its accounts
    file), whoever sent it, not `actor`'s decision (credit_terms_changed)."""
    with transaction.atomic():
        # Locked so that two people saving the same card one after the other
        # each record a "before" that is what the other one left.
        current = Customer.objects.select_for_update().get(pk=customer.pk)
        collector_before = current.collector_id
        before, after, old_values = {}, {}, {}
        for name, value in changes.items():
            old = getattr(current, name)
            if old != value:
                before[name], after[name] = _jsonable(old), _jsonable(value)
                old_values[name] = old
                setattr(current, name, value)
        if not after:
            return current
        terms_reason_check(changed=after, reason=reason)
        # What changes, and the checks that read it: an approved credit hold
        # is not refused for a payment-run day elsewhere on the card.
        unchanged = [field.name for field in Customer._meta.fields if field.name not in after]
        current.clean_fields(exclude=unchanged)
        current.clean_changed(fields=after)
        current.validate_unique(exclude=unchanged)
        current.validate_constraints(exclude=unchanged)
        current.save(update_fields=[*after, "updated_at"])
        currencies = (old_values.get("currency", current.currency), current.currency)
        said = "; ".join(_card_change(name, old_values[name], getattr(current, name), currencies)
                         for name in after)
        details = {"before": before, "after": after}
        if reason := reason.strip():
            said += f", because “{reason}”"
            details["reason"] = reason
        _record(
            customer=current, actor=actor, kind=EventKind.ACCOUNT_CHANGED,
            summary=f"Account card changed: {said}", details=details,
        )
        if "currency" in after:
            currency_changed.send(sender=Customer, customer=current, actor=actor)
        if "collector" in after:
            collector_changed.send(sender=Customer, customer=current, before_id=collector_before,
                                   after_id=current.collector_id, actor=actor)
        if any(name in after for name in CREDIT_TERMS_FIELDS):
            credit_terms_changed.send(sender=Customer, customer=current, actor=actor, before=before,
                                      by_erp=by_erp)
    return current


def contact_save(*, contact: Contact, actor: User) -> Contact:
    """Create or update a contact. Marking it primary billing contact takes the
    flag from whoever had it, in the same transaction."""
    with transaction.atomic():
        # The customer row is the lock for its contacts: two people switching
        # the primary contact at once are serialised instead of one of them
        # hitting the one-primary-per-customer constraint.
        Customer.objects.select_for_update().get(pk=contact.customer_id)
        is_new = contact.pk is None
        before = {} if is_new else _fields_of(Contact.objects.get(pk=contact.pk), CONTACT_FIELDS)
        previous_primaries: list[Contact] = []
        if contact.is_primary_billing:
            previous_primaries = list(
                Contact.objects.select_for_update()
                .filter(customer_id=contact.customer_id, is_primary_billing=True)
                .exclude(pk=contact.pk)
            )
            Contact.objects.filter(pk__in=[c.pk for c in previous_primaries]).update(
                is_primary_billing=False
            )
        contact.full_clean()
        contact.save()
        after = _fields_of(contact, CONTACT_FIELDS)
        if not is_new:
            before, after = _only_changed(before, after)
            if not after:
                return contact
        details: dict[str, Any] = {"contact": contact.pk, "before": before, "after": after}
        if previous_primaries:
            details["primary_billing_taken_from"] = [
                {"contact": c.pk, "name": c.name} for c in previous_primaries
            ]
        if is_new:
            summary = _contact_added(contact)
        else:
            labels = ", ".join(
                _CONTACT_CHANGE_LABELS.get(name) or str(Contact._meta.get_field(name).verbose_name)
                for name in after
            )
            summary = f"Contact {contact.name} changed: {labels}"
        _record(
            customer=contact.customer, actor=actor, kind=EventKind.CONTACT_CHANGED,
            summary=summary, details=details, subject=contact,
        )
    return contact


def _contact_added(contact: Contact) -> str:
    return f"Contact added: {contact.name} ({contact.get_role_display()})"


def contact_delete(*, contact: Contact, actor: User) -> None:
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=contact.customer_id)
        before = _fields_of(contact, CONTACT_FIELDS)
        _record(
            customer=customer, actor=actor, kind=EventKind.CONTACT_CHANGED,
            summary=f"Contact removed: {contact.name} ({contact.get_role_display()})",
            details={"contact": contact.pk, "before": before, "after": {}}, subject=contact,
        )
        # Its absences go with it; absences it covered for lose their stand-in.
        contact.delete()


def absence_add(
    *,
    contact: Contact,
    actor: User,
    starts_on: dt.date,
    ends_on: dt.date,
    delegate: Contact | None = None,
    note: str = "",
) -> ContactAbsence:
    # A customer's people plan holidays further ahead than our own cover is
    # arranged: only a year beyond the pages' usual horizon is a mistyped one.
    today = timezone.localdate()
    if ends_on < today:
        raise ValidationError({"ends_on": "This absence ended before today: what was sent then cannot be "
                                          "routed again; record an absence going on or still to come."})
    for name, day in (("starts_on", starts_on), ("ends_on", ends_on)):
        if far_ahead(day, today=today):
            raise ValidationError({name: f"{format_day(day)} is more than {DATE_AHEAD_YEARS} years ahead: "
                                         "check the year."})
    with transaction.atomic():
        # The customer's row is the lock for its contacts' absences: two
        # recorded at once (for one contact, or two contacts naming each other)
        # are checked one after the other, so they cannot both pass clean().
        Customer.objects.select_for_update().get(pk=contact.customer_id)
        absence = ContactAbsence(
            contact=contact, starts_on=starts_on, ends_on=ends_on, delegate=delegate, note=note
        )
        absence.full_clean()
        absence.save()
        instead = f"; write to {delegate.name} instead" if delegate else ""
        _record(
            customer=contact.customer, actor=actor, kind=EventKind.CONTACT_CHANGED,
            summary=f"{contact.name} away {_period(starts_on, ends_on)}{instead}",
            details={"contact": contact.pk, "before": {}, "after": _absence_fields(absence)},
            subject=absence,
        )
    return absence


def absence_delete(*, absence: ContactAbsence, actor: User) -> None:
    with transaction.atomic():
        contact = absence.contact
        _record(
            customer=contact.customer, actor=actor, kind=EventKind.CONTACT_CHANGED,
            summary=f"Absence removed: {contact.name} {_period(absence.starts_on, absence.ends_on)}",
            details={"contact": contact.pk, "before": _absence_fields(absence), "after": {}},
            subject=absence,
        )
        absence.delete()


# --- A collector away, and who covers for them -------------------------------------

# An absence longer than this is a collector leaving: their accounts are handed
# over (the account card's collector), not covered for.
ABSENCE_AT_MOST = dt.timedelta(days=366)
# An absence starting later than this is a mistyped year more likely than a
# plan; one ending before today is no cover anybody could act on.
ABSENCE_AHEAD_MONTHS = 12
# Timeline events written per statement when an absence is recorded on each of
# the absent collector's accounts: bounded, for a collector with thousands.
ABSENCE_EVENTS_BATCH = 500


def absence_record(
    *, user: User, stand_in: User, starts_on: dt.date, ends_on: dt.date, actor: User, note: str = "",
) -> CollectorAbsence:
    """Record that `user` is away from `starts_on` to `ends_on` (both days
    included) and `stand_in` covers for them. A manager records it for
    anyone, a collector for themselves. Refused, changing nothing: an
    absence overlapping another of the same person's, a stand-in who could
    not work the accounts, or one who is away then with the absent person
    standing in for them (directly or down a chain). Every account of the
    absent person says so on its timeline, with who recorded it. An absence
    over before today, or starting more than a year ahead, is refused too."""
    if not actor.has_perm("customers.change_customer"):
        raise PermissionDenied("Your role may not record absences.")
    if user.pk != actor.pk and not actor.has_perm("customers.act_on_any_customer"):
        raise PermissionDenied("A collector records their own absences; a manager records anyone's.")
    note = note.strip()
    if ends_on < starts_on:
        raise ValidationError({"ends_on": "The absence must end on or after its first day."})
    if ends_on - starts_on >= ABSENCE_AT_MOST:
        raise ValidationError({"ends_on": f"An absence is at most {ABSENCE_AT_MOST.days} days: someone away "
                                          "for longer hands their accounts over to another collector."})
    today = timezone.localdate()
    if ends_on < today:
        raise ValidationError({"ends_on": "This absence ended before today: record an absence going on or "
                                          "still to come (cover cannot be arranged after the fact)."})
    if starts_on > add_months(today, ABSENCE_AHEAD_MONTHS):
        raise ValidationError({"starts_on": "An absence is recorded at most a year ahead (starting by "
                                            f"{format_day(add_months(today, ABSENCE_AHEAD_MONTHS))}): "
                                            "is the year right?"})
    if stand_in.pk == user.pk:
        raise ValidationError({"stand_in": "Someone else must stand in: nobody covers for themselves."})
    if not stand_in.is_active or role_of(stand_in) not in (COLLECTOR, MANAGER):
        raise ValidationError({"stand_in": f"{person_name(stand_in)} is not an active collector or manager, "
                                           "and could not work the accounts."})
    with transaction.atomic():
        # The absent person's row is the lock for their absences: two absences
        # recorded at once for them are checked one after the other, so they
        # cannot both pass the overlap check.
        get_user_model().objects.select_for_update().get(pk=user.pk)
        clash = CollectorAbsence.objects.overlapping(starts_on=starts_on, ends_on=ends_on).filter(
            user=user).first()
        if clash is not None:
            raise ValidationError(
                f"{person_name(user)} is already away {_period(clash.starts_on, clash.ends_on)}: "
                "end that absence early or choose other days.")
        _refuse_circle(user=user, stand_in=stand_in, starts_on=starts_on, ends_on=ends_on)
        absence = CollectorAbsence(user=user, stand_in=stand_in, starts_on=starts_on, ends_on=ends_on,
                                   note=note, recorded_by=actor)
        absence.full_clean()
        absence.save()
        said = f"{person_name(user)} away {_period(starts_on, ends_on)}: {person_name(stand_in)} covers"
        _record_on_accounts(absence, actor=actor, summary=f"Cover: {said}" + (f" ({note})" if note else ""),
                            before={}, after=_absence_cover_fields(absence))
        if starts_on <= today:
            cover_recorded.send(sender=CollectorAbsence, absence=absence, on=today)
    return absence


def _refuse_circle(*, user: User, stand_in: User, starts_on: dt.date, ends_on: dt.date) -> None:
    """Refuse a stand-in who, on a day of the absence, is away with `user`
    covering for them, directly or down a chain: each would hand the work
    to the other and nobody would do it."""
    from customers.cover import follow

    others = list(CollectorAbsence.objects.overlapping(starts_on=starts_on, ends_on=ends_on)
                  .exclude(user=user).values_list("user_id", "stand_in_id", "starts_on", "ends_on"))
    if not others:
        return
    day = starts_on
    while day <= ends_on:  # at most ABSENCE_AT_MOST days, against the few absences of those days
        direct = {a: s for a, s, first, last in others if first <= day <= last}
        direct[user.pk] = stand_in.pk
        if stand_in.pk in direct and follow(direct, stand_in.pk) == user.pk:
            raise ValidationError({"stand_in": (
                f"{person_name(stand_in)} is away on {format_day(day)} with {person_name(user)} covering for "
                f"them: choose someone who is at work then.")})
        day += dt.timedelta(days=1)


def absence_end(*, absence: CollectorAbsence, actor: User, on: dt.date | None = None) -> CollectorAbsence:
    """The absent person is back on `on` (today by default): the absence ends
    the day before (that day, if it began on it), or, not begun yet, is
    called off. Their own items and accounts are theirs again, and what came
    to their stand-in goes back to them once the stand-in no longer covers
    (receivers of cover_ended). The absent person or a manager ends it."""
    on = on or timezone.localdate()
    if absence.user_id != actor.pk and not actor.has_perm("customers.act_on_any_customer"):
        raise PermissionDenied("Only a manager or the absent person ends an absence.")
    with transaction.atomic():
        locked = CollectorAbsence.objects.select_for_update().select_related("user", "stand_in").get(
            pk=absence.pk)
        # Ended once already (early, or on its first day): over.
        if locked.cancelled or locked.ends_on < on or locked.ended_at is not None:
            raise ValidationError("This absence is already over.")
        before = _absence_cover_fields(locked)
        if locked.starts_on > on:
            locked.cancelled = True
            said = (f"absence of {person_name(locked.user)} {_period(locked.starts_on, locked.ends_on)} "
                    "called off")
        elif locked.starts_on == on:
            # Begun this morning: the stand-in may have worked the accounts
            # already, so it stays on record with today as its last day, not
            # called off; it is over from now (ENDED_ON_ITS_LAST_DAY).
            said = (f"{person_name(locked.user)} back on {format_day(on)}, the first day away (away until "
                    f"{format_day(locked.ends_on)} was recorded); {person_name(locked.stand_in)} covered "
                    "until now and no longer covers")
            locked.ends_on = on
        else:
            said = (f"{person_name(locked.user)} back on {format_day(on)} (away until "
                    f"{format_day(locked.ends_on)} was recorded); "
                    f"{person_name(locked.stand_in)} no longer covers")
            locked.ends_on = on - dt.timedelta(days=1)
        locked.ended_by, locked.ended_at = actor, timezone.now()
        locked.full_clean()
        locked.save(update_fields=["ends_on", "cancelled", "ended_by", "ended_at"])
        _record_on_accounts(locked, actor=actor, summary=f"Cover: {said}", before=before,
                            after=_absence_cover_fields(locked))
        cover_ended.send(sender=CollectorAbsence, absence=locked, on=on)
    return locked


def _absence_cover_fields(absence: CollectorAbsence) -> dict:
    return {"user": absence.user_id, "stand_in": absence.stand_in_id,
            "starts_on": absence.starts_on.isoformat(), "ends_on": absence.ends_on.isoformat(),
            "note": absence.note, "cancelled": absence.cancelled}


def _record_on_accounts(absence: CollectorAbsence, *, actor: User, summary: str, before: dict,
                        after: dict) -> None:
    """The decision on the timeline of every account of the absent person:
    whoever reads an account sees who covered it, when, and who decided."""
    subject_type = ContentType.objects.get_for_model(absence)
    now = timezone.now()
    events = (
        TimelineEvent(customer_id=pk, kind=EventKind.WORK, actor=actor, summary=summary, occurred_at=now,
                      details={"absence": absence.pk, "before": before, "after": after},
                      subject_type=subject_type, subject_id=absence.pk)
        for pk in Customer.objects.filter(collector_id=absence.user_id).order_by("pk")
        .values_list("pk", flat=True).iterator()
    )
    TimelineEvent.objects.bulk_create(events, batch_size=ABSENCE_EVENTS_BATCH)


def _record(
    *, customer: Customer, actor: User, kind: str, summary: str, details: dict,
    subject: models.Model | None = None,
) -> TimelineEvent:
    return TimelineEvent.objects.create(
        customer=customer,
        kind=kind,
        actor=actor,
        summary=summary,
        details=details,
        subject_type=ContentType.objects.get_for_model(subject) if subject else None,
        subject_id=subject.pk if subject else None,
    )


# How a card change reads on the timeline: the card's own words where the
# model's are clumsy, and long texts only named (their before and after stay
# in the event's details).
CARD_LABELS = {"credit_limit_amount": "credit limit", "payment_terms_days": "days to pay",
               "terms_type": "payment terms", "typical_order_interval_days": "typical days between orders",
               "ap_run_days": "AP payment-run days"}
CARD_TEXTS = {"business_description", "buying_reasons", "special_bond", "notes"}


def _card_change(name: str, old: Any, new: Any, currencies: tuple[str, str]) -> str:
    """One change of the card in words: "credit limit EUR 100,000.00 → EUR
    250,000.00"; `currencies` the card's before and after (the limit is an
    amount in it)."""
    field = Customer._meta.get_field(name)
    label = CARD_LABELS.get(name, str(field.verbose_name))
    if name in CARD_TEXTS:
        return f"{label} {_card_text(field, old)} → {_card_text(field, new)}"
    return f"{label} {_card_value(field, old, currencies[0])} → {_card_value(field, new, currencies[1])}"


# A text on the card quoted on the timeline is cut to this many characters:
# enough to see what changed, while the summary stays one line (the event's
# details keep the texts whole).
CARD_TEXT_SHOWN = 60


def _card_text(field: models.Field, value: Any) -> str:
    said = _card_value(field, value, "")
    if said == "none":
        return said
    said = " ".join(said.split())
    if len(said) > CARD_TEXT_SHOWN:
        said = said[:CARD_TEXT_SHOWN - 1].rstrip() + "…"
    return f"“{said}”"


def _card_value(field: models.Field, value: Any, currency: str) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, Customer):
        return value.account_number
    if isinstance(value, models.Model):
        return person_name(value)
    if field.name == "credit_limit_amount":
        return format_money(value, currency)
    if isinstance(value, dt.date):
        return format_day(value)
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _jsonable(value: Any) -> Any:
    """A value as it can be kept in the event's JSON: related rows by id,
    Decimals as exact strings, dates in ISO form."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _fields_of(obj: models.Model, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _jsonable(getattr(obj, name)) for name in names}


def _only_changed(before: dict, after: dict) -> tuple[dict, dict]:
    changed = [name for name in after if before.get(name) != after[name]]
    return {n: before[n] for n in changed}, {n: after[n] for n in changed}


def _absence_fields(absence: ContactAbsence) -> dict[str, Any]:
    return {
        "absence": absence.pk,
        "starts_on": absence.starts_on.isoformat(),
        "ends_on": absence.ends_on.isoformat(),
        "delegate": absence.delegate_id,
        "note": absence.note,
    }


def _period(starts_on: dt.date, ends_on: dt.date) -> str:
    return f"{format_day(starts_on)}–{format_day(ends_on)}"
