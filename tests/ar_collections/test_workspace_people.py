"""Whom the worklist's hand-over form offers, and whose lists a manager may
open: the people who may work accounts, by the same rule as the account card's
owners (customers.owners), plus superusers, who may work any account."""

from __future__ import annotations

from django.contrib.auth.models import User

from ar_collections.workspace_forms import ReassignForm, collectors, worklist_owners
from customers.owners import account_owners


def test_the_hand_over_offers_active_collectors_managers_and_superusers_only(
    collector, other_collector, manager, viewer
):
    other_collector.is_active = False
    other_collector.save()
    root = User.objects.create_superuser("root", "root@example.test", "x", first_name="Rita")
    User.objects.create_superuser("gone", "gone@example.test", "x", is_active=False)
    User.objects.create_user("nobody")

    offered = list(ReassignForm().fields["to"].queryset)

    assert offered == list(collectors()) == [collector, manager, root]
    assert set(account_owners()) | {root} == set(offered)
    assert list(worklist_owners()) == offered
