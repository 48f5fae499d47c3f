"""Whom a dunning action goes to, and by which channel.

`route_for` only reads: the customer's contacts and their absences (one
prefetch) and the step. Delivery stores its answer on the action, so the
collector sees why a reminder went where it went ("Anna Clerk away until
15 Aug: sent to Ben Backup", "no e-mail address: letter").
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from django.utils.text import capfirst

from ar_collections.models import Channel, DunningAction, DunningStep, StepAction
from arcrm.dates import format_day
from arcrm.text import person_name, shorten
from customers.cover import working_for
from customers.models import Contact, Customer, ReminderChannel

# Steps a manager or the system carries out; nobody outside is contacted.
INTERNAL_STEPS = {StepAction.MANAGER_REVIEW, StepAction.CREDIT_HOLD, StepAction.SWITCH_TO_COD}

# A contact's preference that names a written channel. A phone preference is
# not in here: a pay-by date must be put in writing, so written steps keep
# their channel for contacts who would rather be called.
_WRITTEN = {ReminderChannel.EMAIL: Channel.EMAIL, ReminderChannel.LETTER: Channel.LETTER}
_PREFERRED = {**_WRITTEN, ReminderChannel.PHONE: Channel.PHONE}
_PLURAL = {Channel.EMAIL: "e-mails", Channel.LETTER: "letters", Channel.PHONE: "calls"}


class Route(NamedTuple):
    contact: Contact | None
    channel: str
    note: str


class _Routing(NamedTuple):
    """A route and the reasons for it, in parts: the action's note says them
    one way, the account page's preview another."""

    contact: Contact | None
    channel: str
    note: str
    fell_back: str  # why an escalation goes to the billing contact ("" when it does not)
    away: str  # who is away of those the step went past ("" when nobody)
    # Why it goes by another channel than the contact's step would (a
    # preference, an address missing): () when it does not.
    changed: tuple[str, ...]


# How an action's note says the channel a step fell back to, and the
# account page's preview the written one it goes by.
_FELL_BACK_TO = {Channel.EMAIL: "e-mail", Channel.LETTER: "letter",
                 Channel.PHONE: "call task for the collector"}
_A = {Channel.EMAIL: "an e-mail", Channel.LETTER: "a letter"}


def route_for(*, action: DunningAction, day: dt.date) -> Route:
    """Recipient, channel and the reasons for both, as of `day`: the day it is
    sent, which for a step sent late (after a review, an outage) is not the
    day it was planned; whoever is away that day is away."""
    routing = _route(action.customer, action.step, day=day)
    return Route(routing.contact, routing.channel, routing.note)


def _route(customer: Customer, step: DunningStep, *, day: dt.date) -> _Routing:
    step_action = step.action
    if step_action in INTERNAL_STEPS:
        return _Routing(None, Channel.INTERNAL, "", "", "", ())
    notes: list[str] = []

    contact, fell_back, away = _recipient(
        customer, escalation=step_action == StepAction.ESCALATE_PRINCIPAL, day=day)
    if fell_back:
        notes.append(f"{fell_back}: sent to the billing contact")
    if contact is None:
        notes.append(f"{away or 'no billing contact on file'}: {_FELL_BACK_TO[Channel.PHONE]}")
        return _Routing(None, Channel.PHONE, join_notes(*notes), fell_back, away, ())
    if away:
        notes.append(f"{away}: sent to {contact.name}")

    changed = []
    if step_action == StepAction.CALL_TASK:
        wanted = Channel.PHONE
    elif step_action == StepAction.ESCALATE_PRINCIPAL and _charges(step):
        # A fee or interest is charged on a written notice only: a call would drop it unsaid.
        wanted = _WRITTEN.get(contact.reminder_channel, Channel.EMAIL)
        if contact.reminder_channel == ReminderChannel.PHONE:
            changed.append(f"{contact.name} prefers calls, but the step charges a fee or interest")
            notes.append(f"{changed[-1]}: in writing")
    elif step_action == StepAction.ESCALATE_PRINCIPAL:
        wanted = _PREFERRED.get(contact.reminder_channel, Channel.EMAIL)
        if wanted == Channel.PHONE:
            # The action's note needs no word on it (its step is named "by
            # phone"), but the account page's preview would otherwise read as
            # if the escalation were written: nothing put in writing is a change.
            changed.append(f"{contact.name} prefers {_PLURAL[Channel.PHONE]}")
    else:
        wanted = Channel.EMAIL if step_action == StepAction.EMAIL else Channel.LETTER
        preferred = _WRITTEN.get(contact.reminder_channel)
        if preferred and preferred != wanted:
            wanted = preferred
            changed.append(f"{contact.name} prefers {_PLURAL[preferred]}")
            notes.append(changed[-1])

    channel, why = _reachable(contact, wanted)
    if channel != wanted:
        changed.append(why)
        why = f"{why}: {_FELL_BACK_TO[channel]}"
    notes.append(why)
    return _Routing(contact, channel, join_notes(*notes), fell_back, away, tuple(changed))


def step_goes_to(customer: Customer, *, step: DunningStep, day: dt.date) -> str:
    """For the account page's preview of a step due on `day`: whom it goes to
    when not the contact of record (the principal for an escalation, else the
    billing contact), and how when not as the step says, by the rule
    route_for sends it by on that day ("" when it goes to them as the step
    says, and for a step nobody outside is told of)."""
    routing = _route(customer, step, day=day)
    if routing.channel == Channel.INTERNAL:
        return ""
    if step.action == StepAction.ESCALATE_PRINCIPAL:
        whom = _escalation_goes_to(customer, routing, day=day)
    elif routing.contact is None:
        why = capfirst(routing.away or "no billing contact on file")
        if step.action == StepAction.CALL_TASK:
            # It is a call task all the same, for the account rather than a person.
            return f"{why}: the call task names nobody to ask for."
        return f"{why}: it becomes {_call_task_for(customer, day=day)}."
    else:
        whom = f"{routing.away}: goes to {routing.contact.name}." if routing.away else ""
    if not routing.changed:
        return whom
    how = (f"it becomes {_call_task_for(customer, day=day)}" if routing.channel == Channel.PHONE
           else f"it goes as {_A[routing.channel]}")
    return " ".join(filter(None, [whom, f"{capfirst('; '.join(routing.changed))}: {how}."]))


def _call_task_for(customer: Customer, *, day: dt.date) -> str:
    return f"a call task for {caller_for(customer, day=day)[1]}"


def caller_for(customer: Customer, *, day: dt.date) -> tuple[int, str]:
    """Who makes a call task of the account's on `day`: its collector, or
    whoever covers for them while they are away; and how the task names
    them ("otto (covering for carla)")."""
    collector, caller = customer.collector, working_for(customer, on=day)
    if caller.pk == collector.pk:
        return caller.pk, person_name(collector)
    return caller.pk, f"{person_name(caller)} (covering for {person_name(collector)})"


def _escalation_goes_to(customer: Customer, routing: _Routing, *, day: dt.date) -> str:
    contact, fell_back, away = routing.contact, routing.fell_back, routing.away
    if not fell_back:
        return f"{away}: goes to {contact.name}." if away else ""
    if contact is None and not away:
        if _of_record(customer, principal=True) is None:
            return f"No principal or billing contact on file: it becomes {_call_task_for(customer, day=day)}."
        return (f"{capfirst(fell_back)}, and no billing contact on file: "
                f"it becomes {_call_task_for(customer, day=day)}.")
    why = capfirst(f"{fell_back}; the billing contact {away}" if away else fell_back)
    if contact is None:
        return f"{why}: it becomes {_call_task_for(customer, day=day)}."
    if away:
        return f"{why}: goes to {contact.name}."
    return f"{why}: goes to {contact.name}, the billing contact."


# The channel each step goes by unless a contact's preference or address
# changes it; an escalation has none of its own (the principal's preference).
_OWN_CHANNEL = {StepAction.EMAIL: Channel.EMAIL, StepAction.LETTER: Channel.LETTER,
                StepAction.CALL_TASK: Channel.PHONE}
_SENT_AS = {Channel.EMAIL: "sent as an e-mail", Channel.LETTER: "sent as a letter",
            Channel.PHONE: "made a call task for the collector"}
_BY = {Channel.EMAIL: "by e-mail", Channel.LETTER: "by letter", Channel.PHONE: "by phone"}


def step_as_sent(step_action: str, channel: str) -> str:
    """A step named with the channel it went by, when that is not its own:
    "E-mail step, sent as a letter", not "E-mail by letter"."""
    label = StepAction(step_action).label
    if not channel or channel == Channel.INTERNAL or channel == _OWN_CHANNEL.get(step_action):
        return label
    if step_action == StepAction.ESCALATE_PRINCIPAL:
        return f"{label}, {_BY[channel]}"
    if step_action == StepAction.LETTER and channel == Channel.EMAIL:
        # The letter itself goes, as the e-mail's PDF: it is no e-mail step.
        return f"{label}, e-mailed as an attachment"
    return f"{label} step, {_SENT_AS[channel]}"


def _charges(step) -> bool:
    return step.charges_anything()


def _of_record(customer: Customer, *, principal: bool) -> Contact | None:
    """The contact of record before absences (Customer.billing_contact and
    principal_contact return the stand-in only, and the note needs to name
    who is away)."""
    return customer.principal_contact_of_record() if principal else customer.billing_contact_of_record()


def _recipient(customer: Customer, *, escalation: bool, day: dt.date) -> tuple[Contact | None, str, str]:
    """Whom a step goes to on `day`: the billing contact, or for an escalation
    the principal, or whoever they asked us to write to while away. Nobody
    to write to (none on file, or all away) falls back as it always has: an
    escalation to the billing contact, anything else to nobody (a call task).

    Also says why an escalation fell back ("" when it did not), and who is
    away of those the step went past ("" when nobody)."""
    fell_back = ""
    if escalation:
        contact, away = _stand_in(_of_record(customer, principal=True), day)
        if contact is not None:
            return contact, "", away
        fell_back = away or "no principal on file"
    contact, away = _stand_in(_of_record(customer, principal=False), day)
    return contact, fell_back, away


def _stand_in(contact: Contact | None, day: dt.date) -> tuple[Contact | None, str]:
    """Whom to write to instead of `contact` on `day`, and who is away ("Anna
    Clerk away until 15 Aug"; "" when the contact is written to); None with
    the reason when the contact and their stand-ins are all away (None with
    no reason when there is no contact at all)."""
    if contact is None:
        return None, ""
    stand_in = contact.stand_in(on=day)
    if stand_in is None:
        return None, contact.nobody_to_write_to(on=day, year=False)
    if stand_in.pk == contact.pk:
        return contact, ""
    back = contact.away_until(day)
    until = f"{format_day(back, year=False)}" if back else "further notice"
    return stand_in, f"{contact.name} away until {until}"


def _reachable(contact: Contact, wanted: str) -> tuple[str, str]:
    """The wanted channel if the contact can be reached by it, else the
    fallback; and why ("" when nothing is missing). An address the mail
    server refused for good counts as none."""
    email, post = contact.email_usable, bool(contact.postal_address.strip())
    day = contact.email_refused_on
    refused = (f"the mail server refused {contact.email} on {format_day(day)}"
               if contact.email_refused_now and day else "")
    nowhere = (f"{refused}, and no postal address" if refused else "no e-mail or postal address")
    if wanted == Channel.EMAIL and not email:
        return (Channel.LETTER, refused or "no e-mail address") if post else (Channel.PHONE, nowhere)
    if wanted == Channel.LETTER and not post:
        return (Channel.EMAIL, "no postal address") if email else (Channel.PHONE, nowhere)
    if wanted == Channel.PHONE and not contact.phone.strip():
        return Channel.PHONE, "no phone number on file"
    return wanted, ""


def join_notes(*notes: str) -> str:
    """A channel note from its parts, cut to what the action's column holds."""
    text = "; ".join(n for n in notes if n)
    limit = DunningAction._meta.get_field("channel_note").max_length
    return shorten(text, limit)
