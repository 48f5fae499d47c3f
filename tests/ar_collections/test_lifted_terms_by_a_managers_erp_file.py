"""The ERP's accounts file is the ERP's record of an account's terms, whoever
uploads it: a manager sending it on the import page (who may set credit terms
on the card) does not thereby decide against C.O.D. or a credit hold, and the
ladder stays free to put the step before a manager again in the cycle. Only
a lift on the card, or the approval of a release, is such a decision."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from ar_collections.api import api_token_create
from ar_collections.imports import import_run
from ar_collections.models import DunningAction, DunningCycle, ImportStatus, ReceivablesImport, StepAction
from customers.models import Customer, EventKind, Segment, TermsType, TimelineEvent

from .conftest import DUE, frozen
from .test_dunning_ladder_switch import days, plan_and_send

pytestmark = pytest.mark.usefixtures("default_ladders")


def upload(client: Client, manager, account: Customer) -> None:
    """The file on the import page, run by the worker as the manager who sent it."""
    client.force_login(manager)
    accounts = f"account_number,name,payment_terms\n{account.account_number},{account.name},standard\n"
    client.post(reverse("collections:import"), {
        "kind": "customers", "file": SimpleUploadedFile("accounts.csv", accounts.encode(), "text/csv")})
    batch = ReceivablesImport.objects.get()
    assert batch.created_by == manager
    assert import_run(batch.pk) == ImportStatus.DONE, ReceivablesImport.objects.get().errors


def send(client: Client, manager, account: Customer) -> None:
    """The same row through the API, on a token the manager holds."""
    erp = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    response = erp.post(reverse("api:customers"), {"rows": [
        {"account_number": account.account_number, "name": account.name, "payment_terms": "standard"}]},
        content_type="application/json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("route", [upload, send], ids=["import page", "api"])
def test_the_erp_file_a_manager_sends_is_not_the_manager_lifting_c_o_d(client, make_account, manager, route):
    assert manager.has_perm("customers.set_credit_terms")
    customer = make_account(Segment.SYSTEMATIC_LATE)
    Customer.objects.filter(pk=customer.pk).update(terms_type=TermsType.COD)
    for day in days(-3, 40):
        plan_and_send(day)
        DunningAction.objects.filter(customer=customer, step__action=StepAction.CREDIT_HOLD).update(
            status="skipped", skip_reason="test")
    with frozen(DUE + dt.timedelta(days=40)):
        route(client, manager, customer)
    customer.refresh_from_db()
    assert customer.terms_type == TermsType.STANDARD
    cycle = DunningCycle.objects.get(customer=customer)
    lifted = TimelineEvent.objects.filter(customer=customer, kind=EventKind.DUNNING,
                                          summary__startswith="C.O.D. lifted")
    # The file changed the card; no one decided against C.O.D.
    assert cycle.cod_lifted_on is None, [e.summary for e in lifted]
    assert not lifted.exists()
    assert not DunningAction.objects.filter(customer=customer, step__action=StepAction.SWITCH_TO_COD).exists()
    for day in days(40, 70):
        plan_and_send(day)
    assert DunningAction.objects.filter(customer=customer, step__action=StepAction.SWITCH_TO_COD).exists()
