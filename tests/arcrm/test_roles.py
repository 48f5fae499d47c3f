import pytest
from django.contrib.auth.models import Group, User

from arcrm.roles import COLLECTOR, MANAGER, VIEWER, can_act_on, role_of


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
