"""The late fees and personal-treatment items leave the worklist the moment
a payment, credit note or write-off makes them untrue, as a finished
ladder's item does, with the reason on the account's timeline: not the next
morning."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections import workspace
from ar_collections.api import api_token_create
from ar_collections.forms import letters_in_queue
from ar_collections.models import WorkItem, WorkKind, WorkStatus
from ar_collections.worklist import worklist_refresh
from customers.models import EventKind, ReminderChannel, Segment, TimelineEvent

from .conftest import DUE, frozen


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def pay_by_form(client, manager, account, amount: str, *, on: dt.date) -> str:
    client.force_login(manager)
    with frozen(on):
        response = client.post(reverse("collections:payment_record", args=[account.pk]), {
            "received_on": on.isoformat(), "currency": "EUR", "amount": amount, "method": "bank_transfer",
            "reference": f"BANK-{amount}",
        }, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def pay_by_api(manager, account, amount: str, *, on: dt.date) -> None:
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    rows = [{"account_number": account.account_number, "received_on": on.isoformat(), "currency": "EUR",
             "amount": amount, "reference": f"BANK-{amount}"}]
    with frozen(on):
        response = client.post(reverse("api:payments"), json.dumps({"rows": rows}),
                               content_type="application/json")
    assert response.status_code == 200, response.json()


def pay(by: str, client, manager, account, amount: str, *, on: dt.date) -> None:
    if by == "form":
        pay_by_form(client, manager, account, amount, on=on)
    else:
        pay_by_api(manager, account, amount, on=on)


def open_items(account, kind: str) -> list[str]:
    return list(WorkItem.objects.filter(customer=account, kind=kind, status=WorkStatus.OPEN)
                .values_list("title", flat=True))


def why_closed(account, kind: str) -> str:
    item = WorkItem.objects.get(customer=account, kind=kind)
    return TimelineEvent.objects.for_subject(item).filter(kind=EventKind.WORK).latest("pk").summary


@pytest.fixture
def wolf_owing_the_fee(make_account, plan_and_deliver, client, manager):
    """A systematic late payer whose letter of day 12 added a EUR 40.00 late
    fee; it paid the EUR 1,200.00 of its invoices and not the fee: the run of
    day 14 closes its cycle and the fee is on the worklist."""
    account = make_account(Segment.SYSTEMATIC_LATE, name="Wolf Trading",
                           reminder_channel=ReminderChannel.LETTER)
    account.segment_override, account.segment_override_note = Segment.SYSTEMATIC_LATE, "Pays late every month"
    account.save(update_fields=["segment_override", "segment_override_note"])
    for day in (-3, 3, 12):
        plan_and_deliver(days(day))
        letters_in_queue().update(printed_at=dt.datetime.combine(days(day), dt.time(8), tzinfo=dt.UTC))
    client.force_login(manager)
    with frozen(days(13)):
        client.post(reverse("collections:payment_record", args=[account.pk]), {
            "received_on": days(13).isoformat(), "currency": "EUR", "amount": "1200.00",
            "method": "bank_transfer", "reference": "BANK-INVOICES",
            "invoices": list(account.invoices.values_list("pk", flat=True)),
        })
    plan_and_deliver(days(14))
    with frozen(days(14)):
        worklist_refresh(on=days(14))
    assert open_items(account, WorkKind.CHARGES) == [
        "Late fees and interest of EUR 40.00 still owed with the invoices paid: ask for them, or for a "
        "manager's waiver"]
    return account


@pytest.mark.parametrize("by", ["form", "api"])
def test_paying_the_fee_closes_its_worklist_item_at_once_and_says_why(
    wolf_owing_the_fee, client, manager, by
):
    pay(by, client, manager, wolf_owing_the_fee, "40.00", on=days(15))

    assert open_items(wolf_owing_the_fee, WorkKind.CHARGES) == []
    assert why_closed(wolf_owing_the_fee, WorkKind.CHARGES).endswith(
        "; the late fees and interest are paid or waived: nothing of them is owed")


@pytest.mark.parametrize("by", ["form", "api"])
def test_paying_part_of_the_fee_leaves_its_item_open(wolf_owing_the_fee, client, manager, by):
    pay(by, client, manager, wolf_owing_the_fee, "15.00", on=days(15))

    assert len(open_items(wolf_owing_the_fee, WorkKind.CHARGES)) == 1


@pytest.fixture
def bonded(make_account, plan_and_deliver):
    """A special-bond account behind on its EUR 1,200.00 since the run of day 7 (its first step, a call)."""
    account = make_account(Segment.SPECIAL_BOND, name="Old Friend Ltd")
    account.segment_override, account.segment_override_note = Segment.SPECIAL_BOND, "Helped us start"
    account.save(update_fields=["segment_override", "segment_override_note"])
    plan_and_deliver(days(7))
    with frozen(days(7)):
        worklist_refresh(on=days(7))
    assert len(open_items(account, WorkKind.PERSONAL)) == 1
    return account


@pytest.mark.parametrize("by", ["form", "api"])
def test_paying_everything_overdue_closes_the_personal_treatment_item_at_once(bonded, client, manager, by):
    pay(by, client, manager, bonded, "1200.00", on=days(8))

    assert open_items(bonded, WorkKind.PERSONAL) == []
    assert why_closed(bonded, WorkKind.PERSONAL).endswith("; nothing is overdue any more")


@pytest.mark.parametrize("by", ["form", "api"])
def test_paying_part_of_what_is_overdue_leaves_the_personal_treatment_item_open(
    bonded, client, manager, by
):
    pay(by, client, manager, bonded, "500.00", on=days(8))

    assert len(open_items(bonded, WorkKind.PERSONAL)) == 1


def test_writing_off_the_last_overdue_invoices_closes_the_personal_treatment_item_at_once(bonded, manager):
    with frozen(days(8)):
        for invoice in bonded.invoices.order_by("pk"):
            workspace.invoice_write_off(customer=bonded, actor=manager, invoice=invoice,
                                        reason="The business closed", on=days(8))

    assert open_items(bonded, WorkKind.PERSONAL) == []
    assert why_closed(bonded, WorkKind.PERSONAL).endswith("; nothing is overdue any more")
