"""Loading an account for the user asking: every view that shows or changes
one goes through these, so a page, a fragment or an action requested
directly is no back door (DESIGN invariant 5)."""

from __future__ import annotations

import functools

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from arcrm.db import CompiledRead
from arcrm.roles import require_act_on, require_work_for_item
from customers.models import Customer


def customer_readable(request: HttpRequest, pk: int, *, card: bool = True) -> Customer:
    """The customer, if this user may look at it: 404 otherwise. With `card`
    False only what deciding access needs is read (the pk and the collector's),
    for a fragment that shows nothing else of the account."""
    if card:
        customers = Customer.objects.select_related(
            "collector", "relationship_owner", "referred_by", "behaviour")
        return get_object_or_404(customers.visible_to(request.user), pk=pk)
    customers = Customer.objects.all()
    visible = customers.visible_to(request.user)
    if visible is not customers:
        # Narrowed for this user (or nothing at all): the ORM reads what it says.
        return get_object_or_404(visible.only(*_ACCESS_COLUMNS), pk=pk)
    # Every account: the read compiled once a process, for the fragments that
    # ask on every request (the timeline's pages).
    rows = _access_read().rows(pk=pk)
    if not rows:
        raise Http404("No Customer matches the given query.")
    return Customer.from_db("default", _ACCESS_COLUMNS, rows[0])


# What deciding access reads of an account: a fragment that shows nothing
# else of it reads no more.
_ACCESS_COLUMNS = ("id", "collector_id")


@functools.cache
def _access_read() -> CompiledRead:
    return CompiledRead(lambda pk: Customer.objects.filter(pk=pk).values_list(*_ACCESS_COLUMNS), pk=-1)


def customer_changeable(request: HttpRequest, pk: int, *, permission: str,
                        for_item: bool = False) -> Customer:
    """The customer, if this user may change it: 404 if there is none, 403 if
    not theirs. `for_item`: a change an item handed over asks for (a call, a
    promise, a note), which its holder may make too (roles.may_work_for_item)."""
    customer = get_object_or_404(Customer.objects.select_related("collector"), pk=pk)
    (require_work_for_item if for_item else require_act_on)(request.user, customer)
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your role may not make this change.")
    return customer
