"""Who may own an account (be its collector): active collectors and
managers. One queryset for everyone who asks: the account card offers them,
the accounts import takes them by username, and the worklist hands items to
them (and to superusers, who may work any account though they own none)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q

from arcrm.roles import COLLECTOR, MANAGER


def account_owners(*, also: Q | None = None):
    """People who can own accounts, by name, and those `also` names."""
    may_own = Q(is_active=True, groups__name__in=[COLLECTOR, MANAGER])
    return (
        get_user_model().objects.filter(may_own | also if also is not None else may_own)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )
