"""Who covers for whom: while a collector is away (CollectorAbsence), their
stand-in works their list and their accounts as their own, and work that
comes up for them goes to the stand-in.

A stand-in away too hands on to their own stand-in ("Anna away, Ben covers;
Ben away as well, Carla covers Ben": Carla has both lists). absence_record
refuses a circle; these follow a chain without ever looping, whatever rows
were written around it.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from customers.models import CollectorAbsence


def stand_ins(*, on: dt.date) -> dict[int, int]:
    """{absent user id: the user id who covers for them on `on`}, chains followed. One query."""
    direct = dict(CollectorAbsence.objects.in_force(on=on).values_list("user_id", "stand_in_id"))
    return {absent: follow(direct, absent) for absent in direct}


def stand_in_for(user_id: int, *, on: dt.date):
    """The user who covers for `user_id` on `on`, chains followed as
    stand_ins follows them; None while they are at work. One query."""
    absences = CollectorAbsence.objects.in_force(on=on).select_related("stand_in")
    direct = {absence.user_id: absence.stand_in for absence in absences}
    if user_id not in direct:
        return None
    covering = follow({absent: stand_in.pk for absent, stand_in in direct.items()}, user_id)
    return next(stand_in for stand_in in direct.values() if stand_in.pk == covering)


def follow(direct: dict[int, int], absent: int) -> int:
    """The end of `absent`'s chain of stand-ins in `direct` (absent → stand-in):
    the first one not away, or the last before the chain would come back."""
    seen = {absent}
    covering = direct[absent]
    while covering in direct and direct[covering] not in seen:
        seen.add(covering)
        covering = direct[covering]
    return covering


def chain(absences, *, absence, on: dt.date) -> list:
    """Who `absence`'s work passes through on `on`, from the absent person to
    the one who does it ("Anna → Ben → Carla" when Ben, her stand-in, is away
    too), read from `absences` (rows already loaded with their users, among
    them every absence in force on `on`), followed as `follow` does."""
    direct = {a.user_id: a.stand_in for a in absences if a.starts_on <= on <= a.ends_on}
    people, seen = [absence.user, absence.stand_in], {absence.user_id}
    while people[-1].pk in direct and direct[people[-1].pk].pk not in seen:
        seen.add(people[-1].pk)
        people.append(direct[people[-1].pk])
    return people


def covered_by(user, *, on: dt.date | None = None) -> frozenset[int]:
    """The ids of the people `user` covers for on `on` (today by default).
    Kept on the user object for the request (one query however often a page
    asks, as every account it lists does through can_act_on)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    on = on or timezone.localdate()
    kept = getattr(user, "_arcrm_covering", None)
    if kept is None or kept[0] != on:
        kept = (on, frozenset(a for a, s in stand_ins(on=on).items() if s == user.pk))
        user._arcrm_covering = kept
    return kept[1]


def covering_for(user_id: int | None, *, on: dt.date | None = None) -> int | None:
    """Who gets the work of `user_id` on `on` (today by default): their stand-in
    while they are away, else themselves."""
    if user_id is None:
        return None
    return stand_ins(on=on or timezone.localdate()).get(user_id, user_id)


def working_for(customer, *, on: dt.date | None = None):
    """Who works `customer`'s account on `on` (today by default): its
    collector, or, while they are away, whoever covers for them. The name and
    address the customer is given to write to, so that a question never goes
    to someone on holiday. None for an account without a collector. One
    query: the stand-in comes with the absences (stand_in_for)."""
    if customer.collector_id is None:
        return None
    stand_in = stand_in_for(customer.collector_id, on=on or timezone.localdate())
    return customer.collector if stand_in is None else stand_in
