"""Loading an account for the user asking: every view that shows or changes
one goes through these, so a page, a fragment or an action requested
directly is no back door (DESIGN invariant 5)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from arcrm.roles import require_act_on
from customers.models import Customer


def customer_readable(request: HttpRequest, pk: int, *, card: bool = True) -> Customer:
    """The customer, if this user may look at it: 404 otherwise. With `card`
    False only what deciding access needs is read (the pk and the collector's),
    for a fragment that shows nothing else of the account."""
    customers = Customer.objects.visible_to(request.user)
    if card:
        customers = customers.select_related("collector", "relationship_owner", "referred_by", "behaviour")
    else:
        customers = customers.only("pk", "collector_id")
    return get_object_or_404(customers, pk=pk)


def customer_changeable(request: HttpRequest, pk: int, *, permission: str) -> Customer:
    """The customer, if this user may change it: 404 if there is none, 403 if not theirs."""
    customer = get_object_or_404(Customer.objects.select_related("collector"), pk=pk)
    require_act_on(request.user, customer)
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your role may not make this change.")
    return customer
