"""Changes to the account card, its contacts and their absences.

Each function is one atomic workflow: it validates with the model's own rules,
saves, and records a timeline event saying who changed what, from what to
what (DESIGN invariant 4). A ValidationError leaves the database untouched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.dispatch import Signal

from arcrm.dates import format_day
from arcrm.money import format_money
from arcrm.text import person_name, shorten
from customers.models import (
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
# payment terms change (sender=Customer; customer, actor). The collections app
# takes the steps waiting for a manager to impose those terms off the approvals.
credit_terms_changed = Signal()
# The card's fields a credit hold or a switch to C.O.D. changes.
CREDIT_TERMS_FIELDS = ("on_credit_hold", "terms_type")

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
        summary=shorten(f"Account opened for {customer.name}"
                        + (f", referred by {referrer.name}" if referrer else ""),
                        TimelineEvent._meta.get_field("summary").max_length),
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


def customer_update(*, customer: Customer, actor: User, changes: Mapping[str, Any]) -> Customer:
    """Apply card changes (field name → new value) and record what actually changed."""
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
        current.full_clean()
        current.save(update_fields=[*after, "updated_at"])
        currencies = (old_values.get("currency", current.currency), current.currency)
        said = "; ".join(_card_change(name, old_values[name], getattr(current, name), currencies)
                         for name in after)
        _record(
            customer=current, actor=actor, kind=EventKind.ACCOUNT_CHANGED,
            summary=shorten(f"Account card changed: {said}",
                            TimelineEvent._meta.get_field("summary").max_length),
            details={"before": before, "after": after},
        )
        if "collector" in after:
            collector_changed.send(sender=Customer, customer=current, before_id=collector_before,
                                   after_id=current.collector_id, actor=actor)
        if any(name in after for name in CREDIT_TERMS_FIELDS):
            credit_terms_changed.send(sender=Customer, customer=current, actor=actor)
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
            summary = f"Contact added: {contact.name} ({contact.get_role_display()})"
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
    with transaction.atomic():
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


def _record(
    *, customer: Customer, actor: User, kind: str, summary: str, details: dict,
    subject: models.Model | None = None,
) -> TimelineEvent:
    max_length = TimelineEvent._meta.get_field("summary").max_length
    summary = shorten(summary, max_length)
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
        return label
    return f"{label} {_card_value(field, old, currencies[0])} → {_card_value(field, new, currencies[1])}"


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
