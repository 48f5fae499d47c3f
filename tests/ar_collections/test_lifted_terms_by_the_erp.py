"""Only a person allowed to set credit terms decides against a credit hold
or C.O.D.: the ERP's accounts file putting an account back to standard terms
(the Integration role, which may not set them) changes the card, but the
ladder stays free to put the step before a manager again in the cycle."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group, User

from ar_collections.models import DunningAction, DunningCycle, StepAction
from arcrm.roles import INTEGRATION
from customers.imports import customers_import
from customers.models import Customer, EventKind, Segment, TermsType, TimelineEvent

from .conftest import DUE, frozen
from .test_dunning_ladder_switch import days, plan_and_send

pytestmark = pytest.mark.usefixtures("default_ladders")


def test_the_erp_sending_standard_terms_is_not_a_manager_lifting_c_o_d(make_account):
    erp = User.objects.create_user("erp")
    erp.groups.add(Group.objects.get(name=INTEGRATION))
    assert not erp.has_perm("customers.set_credit_terms")
    customer = make_account(Segment.SYSTEMATIC_LATE)
    Customer.objects.filter(pk=customer.pk).update(terms_type=TermsType.COD)
    for day in days(-3, 40):
        plan_and_send(day)
        DunningAction.objects.filter(customer=customer, step__action=StepAction.CREDIT_HOLD).update(
            status="skipped", skip_reason="test")
    customer.refresh_from_db()
    with frozen(DUE + dt.timedelta(days=40)):
        report = customers_import(f"account_number,name,payment_terms\n{customer.account_number},"
                                  f"{customer.name},standard\n", actor=erp)
    assert report.ok, report.errors
    customer.refresh_from_db()
    assert customer.terms_type != TermsType.COD
    cycle = DunningCycle.objects.get(customer=customer)
    lifted = TimelineEvent.objects.filter(customer=customer, kind=EventKind.DUNNING,
                                          summary__startswith="C.O.D. lifted")
    # Nobody with the right to set terms decided against C.O.D.: the ladder
    # is free to put it before a manager again.
    assert cycle.cod_lifted_on is None, [e.summary for e in lifted]
    assert not lifted.exists()
    assert not DunningAction.objects.filter(customer=customer, step__action=StepAction.SWITCH_TO_COD).exists()
    for day in days(40, 70):
        plan_and_send(day)
    assert DunningAction.objects.filter(customer=customer, step__action=StepAction.SWITCH_TO_COD).exists()
