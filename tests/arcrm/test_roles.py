import pytest
from django.contrib.auth.models import Group, User

from ar_collections.models import WorkItem, WorkKind, WorkStatus
from arcrm.roles import COLLECTOR, MANAGER, VIEWER, can_act_on, may_work_for_item, role_of


def test_the_migration_creates_the_three_roles(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {COLLECTOR, MANAGER, VIEWER}


def test_a_viewer_may_read_but_not_change(viewer):
    assert viewer.has_perm("customers.view_customer")
    assert viewer.has_perm("collections.view_invoice")
    assert not viewer.has_perm("customers.change_customer")


@pytest.mark.parametrize(
    ("who", "may_act"),
    [("collector", True), ("other_collector", False), ("manager", True), ("viewer", False)],
)
def test_who_may_act_on_a_collectors_account(request, customer, who, may_act):
    assert can_act_on(request.getfixturevalue(who), customer) is may_act


@pytest.mark.parametrize(
    ("who", "holds", "may_work"),
    [("other_collector", "handed over", True), ("other_collector", "left over", False),
     ("other_collector", "handed over, done", False), ("other_collector", "handed over, deactivated", False),
     ("other_collector", "nothing", False), ("viewer", "handed over", False),
     ("collector", "nothing", True), ("manager", "nothing", True)],
)
def test_who_may_work_a_collectors_account_for_an_item(request, customer, collector, who, holds, may_work):
    """Only a deliberate hand-over (handed_by), still open, lets a fellow
    collector work the account; an item merely left with them does not, nor
    does one handed to a viewer or to someone no longer active."""
    user = request.getfixturevalue(who)
    if holds != "nothing":
        WorkItem.objects.create(key="call:1", kind=WorkKind.CALL, customer=customer, assignee=user,
                                title="Call", due_on=customer.customer_since,
                                handed_by=None if holds == "left over" else collector,
                                status=WorkStatus.DONE if holds.endswith("done") else WorkStatus.OPEN)
    if holds.endswith("deactivated"):
        user.is_active = False
        user.save(update_fields=["is_active"])

    assert may_work_for_item(user, customer) is may_work
    assert can_act_on(user, customer) is (who in ("collector", "manager"))


def test_a_user_without_a_role_has_none(db):
    nobody = User.objects.create_user("nobody")
    assert role_of(nobody) is None
    assert not nobody.has_perm("customers.view_customer")


def test_the_role_shown_follows_the_strongest_group(collector):
    assert role_of(collector) == COLLECTOR
    collector.groups.add(Group.objects.get(name=MANAGER))
    assert role_of(User.objects.get(pk=collector.pk)) == MANAGER


@pytest.mark.django_db(transaction=True)
def test_the_roles_survive_a_database_flush():
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)

    viewer = Group.objects.get(name=VIEWER)
    assert viewer.permissions.filter(codename="view_customer").exists()
    assert not viewer.permissions.filter(codename="change_customer").exists()
