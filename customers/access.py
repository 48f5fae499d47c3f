"""Loading an account for the user asking: every view that shows or changes
one goes through these, so a page, a fragment or an action requested
directly is no back door (DESIGN invariant 5)."""

from __future__ import annotations

import functools

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from arcrm.roles import require_act_on
from customers.models import Customer


def customer_readable(request: HttpRequest, pk: int, *, card: bool = True) -> Customer:
    """The customer, if this user may look at it: 404 otherwise. With `card`
    False only what deciding access needs is read (the pk and the collector's),
    for a fragment that shows nothing else of the account."""
    if card:
        customers = Customer.objects.select_related(
            "collector", "relationship_owner", "referred_by", "behaviour")
    else:
        customers = _access_only()
    return get_object_or_404(customers.visible_to(request.user), pk=pk)


@functools.cache
def _access_only():
    """The accounts with only the columns deciding access reads, built once a
    process for the fragments that ask on every request (the timeline's
    pages). Only ever copied (get_object_or_404 filters a copy), never read
    itself, so it holds no rows."""
    return Customer.objects.only("pk", "collector_id")


def customer_changeable(request: HttpRequest, pk: int, *, permission: str) -> Customer:
    """The customer, if this user may change it: 404 if there is none, 403 if not theirs."""
    customer = get_object_or_404(Customer.objects.select_related("collector"), pk=pk)
    require_act_on(request.user, customer)
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your role may not make this change.")
    return customer
