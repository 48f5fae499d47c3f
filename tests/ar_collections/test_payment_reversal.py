"""A payment the bank took back (a direct debit returned, a cheque that
bounced, a transfer recalled): reversed, it stays on record and what it paid
is owed again — invoices reopen, charges are owed, promises and instalments
it kept are judged again, the figures follow, the ladder goes on where it stood."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.test import Client
from django.urls import reverse as url_reverse

from ar_collections import workspace
from ar_collections.api import api_token_create
from ar_collections.delivery import credits_held
from ar_collections.dunning import run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    Allocation,
    ChargeKind,
    CreditNote,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    Instalment,
    InstalmentStatus,
    Invoice,
    InvoiceStatus,
    LateCharge,
    Payment,
    PaymentBehaviour,
    PaymentPlan,
    PaymentReversal,
    PlanStatus,
    Promise,
    PromiseStatus,
    ReversalReason,
    TimelineEventInvoice,
)
from arcrm.text import person_name
from customers.models import EventKind, Segment, TimelineEvent
from tests.ar_collections.conftest import DUE, frozen

TODAY = dt.date(2025, 8, 5)


def after_due(days: int) -> dt.date:
    return DUE + dt.timedelta(days=days)

pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoices(customer, make_invoice) -> list[Invoice]:
    """INV-1 EUR 500.00 due 1 Jul, INV-2 EUR 700.00 due 15 Jul."""
    return [
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number)
        for number, due, amount in [("INV-1", dt.date(2025, 7, 1), "500.00"),
                                    ("INV-2", dt.date(2025, 7, 15), "700.00")]
    ]


def pay(customer, actor, parts, *, amount=None, received_on=TODAY, reference="BANK-1") -> Payment:
    total = amount or sum((Decimal(p) for _, p in parts), Decimal("0"))
    return workspace.payment_record(
        customer=customer, actor=actor, amount=Decimal(total), currency="EUR", received_on=received_on,
        allocations=[(invoice, Decimal(part)) for invoice, part in parts], reference=reference,
    )


def reverse(payment, actor, *, reason=ReversalReason.BOUNCED_CHEQUE, note="", on=TODAY) -> PaymentReversal:
    return workspace.payment_reverse(payment=payment, actor=actor, reason=reason, note=note, on=on)


def invoice_state(invoice) -> tuple:
    invoice.refresh_from_db()
    return invoice.open_amount, invoice.status, invoice.settled_on


def test_an_invoice_paid_in_full_reopens_with_its_whole_amount_open(manager, customer, invoices):
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1))
    assert invoice_state(invoices[0]) == (Decimal("0.00"), InvoiceStatus.PAID, dt.date(2025, 8, 1))

    reversal = reverse(payment, manager)

    assert invoice_state(invoices[0]) == (Decimal("500.00"), InvoiceStatus.OPEN, None)
    assert not Allocation.objects.exists()
    # The payment stays on record, and the reversal says who, when, why and what it undid.
    assert Payment.objects.get() == payment
    assert (reversal.reversed_by, reversal.reversed_on, reversal.reason) == (manager, TODAY, "bounced_cheque")
    assert reversal.undone == [{"invoice": "INV-1", "invoice_id": invoices[0].pk, "status": "paid",
                                "amount": "500.00", "allocated_on": "2025-08-01"}]


def test_an_invoice_part_paid_by_two_payments_owes_again_only_what_the_reversed_one_paid(
    manager, customer, invoices
):
    first = pay(customer, manager, [(invoices[0], "200.00")], reference="BANK-1")
    pay(customer, manager, [(invoices[0], "300.00")], reference="BANK-2")
    assert invoice_state(invoices[0])[1] == InvoiceStatus.PAID

    reverse(first, manager)

    assert invoice_state(invoices[0]) == (Decimal("200.00"), InvoiceStatus.OPEN, None)


def test_a_part_payment_reversed_puts_its_part_back_on_the_still_open_invoice(manager, customer, invoices):
    payment = pay(customer, manager, [(invoices[1], "250.00")])
    assert invoice_state(invoices[1])[:2] == (Decimal("450.00"), InvoiceStatus.OPEN)

    reverse(payment, manager)

    assert invoice_state(invoices[1]) == (Decimal("700.00"), InvoiceStatus.OPEN, None)


def test_a_payment_across_several_invoices_reopens_each_and_leaves_nothing_on_account(
    manager, customer, invoices
):
    payment = pay(customer, manager, [(invoices[0], "500.00"), (invoices[1], "300.00")], amount="1000.00")
    assert credits_held(customer) == [("EUR", Decimal("200.00"), 1)]

    reverse(payment, manager)

    assert [invoice_state(i)[:2] for i in invoices] == [
        (Decimal("500.00"), InvoiceStatus.OPEN), (Decimal("700.00"), InvoiceStatus.OPEN)]
    # What it kept on account is gone with it: no notice offers it as a credit.
    assert credits_held(customer) == []
    assert workspace.credits_to_apply(customer) == []


def test_one_timeline_entry_says_what_was_reversed_and_which_invoices_reopened(manager, customer, invoices):
    payment = pay(customer, manager, [(invoices[0], "500.00"), (invoices[1], "300.00")],
                  received_on=dt.date(2025, 8, 1))
    before = TimelineEvent.objects.count()

    reverse(payment, manager, reason=ReversalReason.RETURNED_DIRECT_DEBIT, note="R01 insufficient funds")

    event = TimelineEvent.objects.order_by("-pk").first()
    assert TimelineEvent.objects.count() == before + 1
    assert (event.kind, event.actor, event.subject) == (EventKind.PAYMENT_RECEIVED, manager, payment)
    assert event.summary == (
        "Payment of EUR 800.00 received on 1 Aug 2025 (bank transfer, reference BANK-1) reversed on "
        "5 Aug 2025 — direct debit returned: R01 insufficient funds; INV-1 open again; INV-2 owes more again")
    assert event.details["before"]["allocations"][1]["amount"] == "300.00"
    assert event.details["after"] == {"allocations": []}
    assert sorted(TimelineEventInvoice.objects.filter(event=event).values_list("invoice__number", flat=True)
                  ) == ["INV-1", "INV-2"]


def test_a_second_reversal_is_refused_and_changes_nothing(manager, collector, customer, invoices):
    payment = pay(customer, manager, [(invoices[0], "500.00")])
    reverse(payment, manager)
    events = TimelineEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        reverse(payment, collector, reason=ReversalReason.RECALLED)

    assert refused.value.message_dict["payment"] == [
        f"This payment of EUR 500.00 was reversed already, on 5 Aug 2025 by {person_name(manager)} "
        "(cheque bounced)."]
    assert invoice_state(invoices[0])[:2] == (Decimal("500.00"), InvoiceStatus.OPEN)
    assert TimelineEvent.objects.count() == events
    assert PaymentReversal.objects.count() == 1


def test_the_database_holds_one_reversal_per_payment(manager, customer, invoices):
    payment = pay(customer, manager, [(invoices[0], "500.00")])
    reverse(payment, manager)

    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentReversal.objects.create(payment=payment, reason=ReversalReason.RECALLED, reversed_on=TODAY,
                                       reversed_by=manager)


@pytest.mark.parametrize(("terms", "field"), [
    ({"reason": "lost"}, "reason"),
    ({"reason": ReversalReason.OTHER, "note": "  "}, "note"),
    ({"on": dt.date(2025, 7, 31)}, "reversed_on"),
    ({"on": TODAY + dt.timedelta(days=1)}, "reversed_on"),
])
def test_bad_terms_are_refused_with_a_message_and_change_nothing(manager, customer, invoices, terms, field):
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1))
    events = TimelineEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        reverse(payment, manager, **terms)

    assert refused.value.message_dict[field]
    assert invoice_state(invoices[0])[:2] == (Decimal("0.00"), InvoiceStatus.PAID)
    assert (Allocation.objects.count(), PaymentReversal.objects.count()) == (1, 0)
    assert TimelineEvent.objects.count() == events


def test_a_payment_whose_invoice_was_written_off_since_is_refused(manager, customer, invoices):
    payment = pay(customer, manager, [(invoices[0], "100.00")])
    workspace.invoice_write_off(customer=customer, actor=manager, invoice=invoices[0], reason="Insolvent",
                                on=TODAY)

    with pytest.raises(ValidationError, match="INV-1 was written off since"):
        reverse(payment, manager)

    assert Allocation.objects.filter(payment=payment).exists()


@pytest.fixture
def fee(customer, invoices) -> LateCharge:
    """A letter asking for INV-1 charged a late fee of EUR 40.00, in a cycle opened 10 Jul."""
    run = DunningRun.objects.create(run_date=dt.date(2025, 7, 10))
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=dt.date(2025, 7, 10))
    step = DunningStep.objects.get(policy__segment="systematic_late", position=3)
    letter = DunningAction.objects.create(run=run, cycle=cycle, customer=customer, step=step,
                                          status=ActionStatus.DONE, planned_on=dt.date(2025, 7, 10),
                                          pay_by=dt.date(2025, 7, 20))
    DunningActionInvoice.objects.create(action=letter, invoice=invoices[0], open_amount=Decimal("500.00"),
                                        currency="EUR")
    return LateCharge.objects.create(customer=customer, action=letter, kind=ChargeKind.LATE_FEE,
                                     currency="EUR", amount=Decimal("40.00"), open_amount=Decimal("40.00"),
                                     basis="step 3 of the ladder")


def test_a_charge_the_payment_paid_is_owed_again(manager, customer, invoices, fee):
    payment = pay(customer, manager, [(invoices[0], "500.00")], amount="540.00")
    fee.refresh_from_db()
    assert fee.open_amount == Decimal("0.00")

    reverse(payment, manager)

    fee.refresh_from_db()
    assert fee.open_amount == Decimal("40.00")
    assert list(LateCharge.objects.standing()) == [fee]
    summary = TimelineEvent.objects.order_by("-pk")[0].summary
    assert "EUR 40.00 of late fees and interest owed again" in summary


def test_the_cycle_the_payment_closed_opens_again_so_the_ladder_goes_on_where_it_stood(
    manager, customer, invoices, fee
):
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1))
    DunningCycle.objects.update(closed_on=dt.date(2025, 8, 2))  # the night's run saw nothing left

    reverse(payment, manager)

    assert list(DunningCycle.objects.values_list("number", "closed_on")) == [(1, None)]


def test_a_cycle_closed_before_the_payment_came_stays_closed(manager, customer, invoices, fee):
    DunningCycle.objects.update(closed_on=dt.date(2025, 7, 30))
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1))

    reverse(payment, manager)

    assert list(DunningCycle.objects.values_list("closed_on", flat=True)) == [dt.date(2025, 7, 30)]


def promise(customer, collector, invoices, *, promised_on, made_on=dt.date(2025, 7, 20)) -> Promise:
    made = Promise.objects.create(customer=customer, currency="EUR", amount=Decimal("500.00"),
                                  promised_on=promised_on, grace_days=3, made_on=made_on, made_by=collector,
                                  allocations_before=workspace._last_allocation())
    made.invoices.set(invoices)
    return made


def test_a_promise_the_payment_kept_is_broken_when_its_date_has_passed(
    collector, manager, customer, invoices
):
    kept = promise(customer, collector, [invoices[0]], promised_on=dt.date(2025, 7, 28))
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 7, 29))
    kept.refresh_from_db()
    assert kept.status == PromiseStatus.KEPT

    reverse(payment, manager)

    kept.refresh_from_db()
    assert (kept.status, kept.resolved_on, kept.paid_amount) == (PromiseStatus.BROKEN, TODAY, Decimal("0.00"))
    assert TimelineEvent.objects.filter(kind=EventKind.PROMISE, summary__startswith="Promise broken").exists()


def test_a_promise_the_payment_kept_is_open_again_while_its_date_is_to_come(
    collector, manager, customer, invoices
):
    kept = promise(customer, collector, [invoices[0]], promised_on=dt.date(2025, 8, 10))
    payment = pay(customer, manager, [(invoices[0], "500.00")])
    kept.refresh_from_db()
    assert kept.status == PromiseStatus.KEPT

    reverse(payment, manager)

    kept.refresh_from_db()
    assert (kept.status, kept.resolved_on) == (PromiseStatus.OPEN, None)


def test_an_instalment_the_payment_paid_is_missed_again_and_the_completed_plan_breaks(
    collector, manager, customer, invoices
):
    plan = PaymentPlan.objects.create(customer=customer, currency="EUR", total_amount=Decimal("500.00"),
                                      status=PlanStatus.ACTIVE, grace_days=3, proposed_by=collector,
                                      proposed_on=dt.date(2025, 7, 1),
                                      allocations_before=workspace._last_allocation())
    plan.invoices.set([invoices[0]])
    Instalment.objects.create(plan=plan, number=1, due_on=dt.date(2025, 7, 25), amount=Decimal("500.00"))
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 7, 26))
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED

    reverse(payment, manager)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.BROKEN
    assert list(plan.instalments.values_list("status", flat=True)) == [InstalmentStatus.MISSED]


def test_the_figures_are_refreshed_as_after_a_payment(
    manager, customer, invoices, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 7, 31))
    paid = PaymentBehaviour.objects.get(customer=customer)
    assert (paid.invoices_settled, paid.invoices_settled_late, paid.open_invoices) == (1, 1, 1)

    with django_capture_on_commit_callbacks(execute=True):
        reverse(payment, manager)

    figures = PaymentBehaviour.objects.get(customer=customer)
    assert (figures.invoices_settled, figures.invoices_settled_late, figures.open_invoices) == (0, 0, 2)


def test_balances_reconcile_to_the_cent_after_reversals(manager, customer, make_invoice, invoices):
    third = make_invoice(customer, issued=dt.date(2025, 7, 1), due=dt.date(2025, 7, 31), amount="333.33",
                         number="INV-3")
    workspace.credit_note_record(customer=customer, actor=manager, invoice=third, amount=Decimal("33.33"),
                                 reason="Price correction", issued_on=TODAY)
    kept = pay(customer, manager, [(invoices[0], "123.45"), (third, "100.01")], reference="BANK-1")
    bounced = pay(customer, manager, [(invoices[0], "376.55"), (invoices[1], "0.01"), (third, "199.99")],
                  reference="BANK-2")
    returned = pay(customer, manager, [(invoices[1], "699.99")], reference="BANK-3")

    reverse(bounced, manager)
    reverse(returned, manager, reason=ReversalReason.RETURNED_DIRECT_DEBIT)

    invoiced = Invoice.objects.aggregate(total=Sum("total_amount"))["total"]
    credited = Allocation.objects.filter(credit_note__isnull=False).aggregate(total=Sum("amount"))["total"]
    unreversed = Allocation.objects.filter(payment__reversal__isnull=True, payment__isnull=False,
                                           invoice__isnull=False).aggregate(total=Sum("amount"))["total"]
    open_total = (Invoice.objects.filter(status=InvoiceStatus.OPEN)
                  .aggregate(total=Sum("open_amount"))["total"])
    assert open_total == invoiced - credited - unreversed == Decimal("1276.54")
    assert CreditNote.objects.count() == 1
    assert unreversed == kept.amount


# --- The account page's action -------------------------------------------------------------

HTMX = {"HX-Request": "true"}


def reverse_url(customer) -> str:
    return url_reverse("collections:payment_reverse", args=[customer.pk])


def state() -> tuple:
    return (
        sorted(Allocation.objects.values_list("invoice__number", "amount")),
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
        PaymentReversal.objects.count(),
        TimelineEvent.objects.count(),
    )


def reverse_form(chosen, /, **fields) -> dict:
    data = {"payment": chosen.pk, "reason": "returned_direct_debit", "note": "R01",
            "reversed_on": "2025-08-05"}
    data.update(fields)
    return data


@pytest.fixture
def paid_twice(manager, customer, invoices) -> Payment:
    """EUR 800.00 of 1 Aug pays INV-1 in full and INV-2 in part."""
    return pay(customer, manager, [(invoices[0], "500.00"), (invoices[1], "300.00")],
               received_on=dt.date(2025, 8, 1))


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_manager_sees_what_a_reversal_undoes_then_confirms_it(
    client, manager, customer, paid_twice, headers
):
    client.force_login(manager)
    before = state()

    asked = client.post(reverse_url(customer), reverse_form(paid_twice), headers=headers)

    assert asked.status_code == 200
    shown = asked.content.decode()
    assert "Reverse the payment of EUR 800.00 received on 1 Aug 2025?" in shown
    assert "EUR 500.00 paid on invoice INV-1: it reopens, EUR 500.00 open" in shown
    assert "EUR 300.00 paid on invoice INV-2: it owes it again, EUR 700.00 open" in shown
    assert f'name="confirmed" value="{paid_twice.pk}"' in shown
    assert state() == before

    done = client.post(reverse_url(customer), reverse_form(paid_twice, confirmed=paid_twice.pk),
                       headers=headers)

    if headers:
        assert done.status_code == 200 and done.headers["HX-Retarget"] == "#action-panel"
        assert "Payment of EUR 800.00 received on 1 Aug 2025 reversed; INV-1, INV-2 are owed again." in (
            done.content.decode())
    else:
        assert done.status_code == 302
        assert done.url == url_reverse("customers:detail", args=[customer.pk]) + "#timeline"
    reversal = PaymentReversal.objects.get()
    assert (reversal.payment, reversal.reason, reversal.note, reversal.reversed_by) == (
        paid_twice, "returned_direct_debit", "R01", manager)
    assert sorted(Invoice.objects.values_list("number", "open_amount", "status")) == [
        ("INV-1", Decimal("500.00"), "open"), ("INV-2", Decimal("700.00"), "open")]


@pytest.fixture
def applied_in_goes(manager, customer, invoices, fee) -> Payment:
    """EUR 1,240.00 kept on account from 10 Jul, set against INV-1 on 1 Aug (200.00)
    and 3 Aug (300.00, the rest 20.00 to the fee), then against INV-2 on 5 Aug
    (700.00, the rest 20.00 to the fee): two rows each for INV-1 and the fee."""
    LateCharge.objects.filter(pk=fee.pk).update(created_at=dt.datetime(2025, 7, 20, 6, tzinfo=dt.UTC))
    money = pay(customer, manager, [], amount="1240.00", received_on=dt.date(2025, 7, 10))
    for invoice, amount, on in [(invoices[0], "200.00", dt.date(2025, 8, 1)),
                                (invoices[0], "320.00", dt.date(2025, 8, 3)),
                                (invoices[1], "720.00", TODAY)]:
        workspace.credit_apply(customer=customer, actor=manager, credit=money, invoices=[invoice],
                               amount=Decimal(amount), on=on)
    assert money.allocations.count() == 5
    return money


def test_money_set_against_an_invoice_in_two_goes_is_said_once_per_invoice_with_its_whole_part(
    client, manager, customer, applied_in_goes
):
    client.force_login(manager)

    asked = client.post(reverse_url(customer), reverse_form(applied_in_goes), headers=HTMX)

    shown = asked.content.decode()
    assert shown.count("paid on invoice INV-1") == 1
    assert "EUR 500.00 paid on invoice INV-1: it reopens, EUR 500.00 open" in shown
    assert "EUR 700.00 paid on invoice INV-2: it reopens, EUR 700.00 open" in shown
    assert shown.count("paid on late fee") == 1
    assert "EUR 40.00 paid on late fee EUR 40.00: owed again" in shown

    done = client.post(reverse_url(customer), reverse_form(applied_in_goes, confirmed=applied_in_goes.pk),
                       headers=HTMX)

    assert "Payment of EUR 1,240.00 received on 10 Jul 2025 reversed; INV-1, INV-2 are owed again." in (
        done.content.decode())
    assert sorted(Invoice.objects.values_list("number", "open_amount", "status")) == [
        ("INV-1", Decimal("500.00"), "open"), ("INV-2", Decimal("700.00"), "open")]


def test_a_confirmation_for_another_payment_shows_the_chosen_one_and_changes_nothing(
    client, manager, customer, invoices, paid_twice
):
    other = pay(customer, manager, [(invoices[1], "100.00")], reference="BANK-2")
    client.force_login(manager)
    before = state()

    response = client.post(reverse_url(customer), reverse_form(other, confirmed=paid_twice.pk), headers=HTMX)

    assert response.status_code == 200
    assert "Reverse the payment of EUR 100.00 received on 5 Aug 2025?" in response.content.decode()
    assert state() == before


@pytest.mark.parametrize(("fields", "said"), [
    ({"reason": "other", "note": ""}, "Say why the payment is reversed."),
    ({"reversed_on": "2025-07-31"},
     "The payment was received on 1 Aug 2025: it cannot be taken back before."),
    ({"reversed_on": "2025-08-06"}, "A payment cannot be reversed on a day still to come."),
    ({"reason": ""}, "This field is required."),
    ({"payment": "999999"}, "That payment is not one of this account"),
])
def test_bad_input_is_said_and_changes_nothing(client, manager, customer, paid_twice, fields, said):
    client.force_login(manager)
    before = state()

    response = client.post(reverse_url(customer), reverse_form(paid_twice, confirmed=paid_twice.pk, **fields),
                           headers=HTMX)

    assert response.status_code == 422
    assert said.replace("’", "&#x27;") in response.content.decode().replace("’", "&#x27;")
    assert state() == before


def test_a_reversed_payment_is_no_longer_offered_and_a_second_reversal_is_refused(
    client, manager, customer, paid_twice
):
    client.force_login(manager)
    client.post(reverse_url(customer), reverse_form(paid_twice, confirmed=paid_twice.pk))
    before = state()

    form = client.get(reverse_url(customer), headers=HTMX).content.decode()
    again = client.post(reverse_url(customer), reverse_form(paid_twice, confirmed=paid_twice.pk),
                        headers=HTMX)

    assert f'value="{paid_twice.pk}"' not in form
    assert again.status_code == 422
    assert "That payment is not one of this account" in again.content.decode()
    assert state() == before


def test_a_collector_who_may_record_payments_may_reverse_one(client, collector, customer, paid_twice):
    collector.user_permissions.add(Permission.objects.get(codename="add_payment"))
    client.force_login(collector)

    response = client.post(reverse_url(customer), reverse_form(paid_twice, confirmed=paid_twice.pk))

    assert response.status_code == 302
    assert PaymentReversal.objects.get().reversed_by == collector


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("who", ["collector", "viewer", "nobody"])
def test_who_may_not_record_payments_may_not_reverse_one(client, request, customer, paid_twice, who, headers):
    user = User.objects.create_user("nobody") if who == "nobody" else request.getfixturevalue(who)
    before = state()
    client.force_login(user)

    assert client.get(reverse_url(customer), headers=headers).status_code == 403
    assert client.post(reverse_url(customer), reverse_form(paid_twice, confirmed=paid_twice.pk),
                       headers=headers).status_code == 403
    assert state() == before


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_reversing_answers_only_get_and_post(client, manager, customer, method):
    client.force_login(manager)
    assert getattr(client, method)(reverse_url(customer)).status_code == 405


def test_the_account_page_offers_the_action_to_who_may_record_payments(client, manager, collector, customer):
    page = url_reverse("customers:detail", args=[customer.pk])
    client.force_login(collector)
    assert reverse_url(customer) not in client.get(page).content.decode()
    client.force_login(manager)
    assert reverse_url(customer) in client.get(page).content.decode()


# --- The JSON API ---------------------------------------------------------------------------


def api_post(user, payload) -> tuple[int, dict]:
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=user, name='ERP')[1]}"})
    body = payload if isinstance(payload, str) else json.dumps(payload)
    response = client.post(url_reverse("api:payment_reversals"), body, content_type="application/json")
    return response.status_code, response.json()


@pytest.fixture
def from_the_bank(manager, customer, invoices) -> Payment:
    """EUR 500.00 for INV-1 that came with the bank's id BANK-4000."""
    return workspace.payment_record(
        customer=customer, actor=manager, amount=Decimal("500.00"), currency="EUR", received_on=TODAY,
        allocations=[(invoices[0], Decimal("500.00"))], reference="INV-1", bank_reference="BANK-4000",
    )


@pytest.mark.parametrize("named", [{"bank_reference": "bank 4000"}, "id"])
def test_the_erp_reverses_a_payment_by_the_banks_id_or_its_own(manager, from_the_bank, invoices, named):
    named = {"payment": from_the_bank.pk} if named == "id" else named

    status, body = api_post(manager, {**named, "reason": "returned_direct_debit", "note": "MD06",
                                      "reversed_on": "2025-08-05"})

    assert status == 200
    assert body == {"payment": from_the_bank.pk, "bank_reference": "BANK-4000", "reversed_on": "2025-08-05",
                    "reason": "returned_direct_debit", "reopened": ["INV-1"],
                    "summary": "Payment of EUR 500.00 received on 5 Aug 2025 reversed; INV-1 is owed again."}
    assert invoice_state(invoices[0]) == (Decimal("500.00"), InvoiceStatus.OPEN, None)
    assert PaymentReversal.objects.get().reversed_by == manager


def test_the_erp_is_told_each_invoice_once_when_the_money_was_set_against_it_in_two_goes(
    manager, applied_in_goes
):
    status, body = api_post(manager, {"payment": applied_in_goes.pk, "reason": "returned_direct_debit",
                                      "reversed_on": "2025-08-05"})

    assert status == 200
    assert body["reopened"] == ["INV-1", "INV-2"]
    assert body["summary"] == ("Payment of EUR 1,240.00 received on 10 Jul 2025 reversed; INV-1, INV-2 are "
                               "owed again.")


def test_the_erp_reversing_a_payment_again_is_told_it_is_done_and_nothing_changes(manager, from_the_bank):
    assert api_post(manager, {"bank_reference": "BANK-4000", "reason": "bounced_cheque"})[0] == 200
    before = state()

    status, body = api_post(manager, {"bank_reference": "BANK-4000", "reason": "bounced_cheque"})

    assert status == 409
    assert body["error"].startswith("This payment of EUR 500.00 was reversed already, on 5 Aug 2025 by ")
    assert state() == before


@pytest.mark.parametrize(("payload", "status", "said"), [
    ("not json", 400, "The body is not JSON"),
    ([1, 2], 422, "Send an object"),
    ({"bank_reference": "BANK-4000", "reason": "bounced_cheque", "amount": "1"}, 422, "Unknown key amount"),
    ({"reason": "bounced_cheque"}, 422, "Name the payment by one of payment (its id) or bank_reference."),
    ({"payment": "1", "reason": "bounced_cheque"}, 422, "payment is the payment's id, a whole number."),
    ({"bank_reference": "BANK-9999", "reason": "bounced_cheque"}, 404, "There is no payment BANK-9999"),
    ({"bank_reference": "BANK-4000", "reason": "lost"}, 422, "reason is one of returned_direct_debit"),
    ({"bank_reference": "BANK-4000", "reason": "other"}, 422, "Say why the payment is reversed."),
    ({"bank_reference": "BANK-4000", "reason": "recalled", "reversed_on": "5/8/2025"}, 422,
     "reversed_on is a day written YYYY-MM-DD."),
    ({"bank_reference": "BANK-4000", "reason": "recalled", "reversed_on": "2025-08-06"}, 422,
     "A payment cannot be reversed on a day still to come."),
    ('{"bank_reference": ' + "[" * 100_000 + "]" * 100_000 + "}", 400,
     "The body is not JSON: it nests deeper"),
    ({"bank_reference": "BANK-4000\x00", "reason": "recalled"}, 422,
     "bank_reference is the bank's id of the statement entry, as text."),
    ({"bank_reference": "BANK-4000", "reason": "other", "note": "bounced\x00"}, 422,
     "The note holds a NUL character"),
])
def test_the_erp_sending_bad_input_gets_a_clear_4xx_and_nothing_changes(
    manager, from_the_bank, payload, status, said
):
    before = state()

    answer = api_post(manager, payload)

    assert answer[0] == status
    assert said in answer[1]["error"]
    assert state() == before


def test_a_user_who_may_not_record_payments_may_not_reverse_one_through_the_api(viewer, from_the_bank):
    before = state()

    assert api_post(viewer, {"bank_reference": "BANK-4000", "reason": "bounced_cheque"})[0] == 403
    assert state() == before


# --- Dunning after a reversal -----------------------------------------------------------------


def test_the_next_run_chases_the_reopened_invoices_with_the_next_step_none_repeated_none_skipped(
    make_account, plan_and_deliver, smtp_server, manager
):
    """A prompt payer's ladder: an e-mail 3 days after due, a letter at 14
    once the e-mail's pay-by date has passed.
    Paid after the e-mail, the cycle closed; the payment bounced: the letter
    is next, in the same cycle, not the friendly e-mail a second time."""
    account = make_account(Segment.PROMPT)
    assert plan_and_deliver(after_due(3))["emailed"] == 1
    with frozen(after_due(5)):
        payment = workspace.payment_record(
            customer=account, actor=manager, amount=Decimal("1200.00"), currency="EUR",
            received_on=after_due(5), allocations=[(i, i.open_amount) for i in account.invoices.all()],
            reference="CHQ-77", method="cheque")
    plan_and_deliver(after_due(6))
    assert list(DunningCycle.objects.values_list("closed_on", flat=True)) == [after_due(6)]
    with frozen(after_due(9)):
        reverse(payment, manager, on=after_due(9))

    for day in (10, 14):
        with frozen(after_due(day)):
            run_plan(run=run_start(run_date=after_due(day)))
    assert list(DunningAction.objects.values_list("cycle__number", "step__position")) == [(1, 1)]
    with frozen(after_due(15)):  # the e-mail's pay-by date has passed (day 14: ten days fell on a Sunday)
        run_plan(run=run_start(run_date=after_due(15)))

    assert sorted(DunningAction.objects.values_list("cycle__number", "step__position")) == [(1, 1), (1, 2)]
    assert DunningCycle.objects.count() == 1


def test_money_a_reversed_payment_kept_on_account_cannot_be_set_against_an_invoice(
    manager, customer, invoices
):
    payment = pay(customer, manager, [(invoices[0], "500.00")], amount="800.00")
    reverse(payment, manager)

    with pytest.raises(ValidationError, match="Nothing of that credit is left to apply"):
        workspace.credit_apply(customer=customer, actor=manager, credit=payment, invoices=[invoices[1]])

    assert invoice_state(invoices[1])[:2] == (Decimal("700.00"), InvoiceStatus.OPEN)


def test_the_bank_file_sent_again_after_a_reversal_does_not_record_the_payment_again(
    manager, customer, from_the_bank, invoices
):
    assert api_post(manager, {"bank_reference": "BANK-4000", "reason": "returned_direct_debit"})[0] == 200
    client = Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})
    row = {"account_number": customer.account_number, "received_on": "2025-08-05", "currency": "EUR",
           "amount": "500.00", "reference": "INV-1", "invoices": ["INV-1"], "bank_reference": "BANK-4000"}

    response = client.post(url_reverse("api:payments"), json.dumps({"rows": [row]}),
                           content_type="application/json")

    # Refused, saying why: counted "already there", the ERP would take the
    # entry for standing (see tests/ar_collections/test_payment_bank_id_recalled.py).
    assert response.status_code == 422, response.json()
    assert "reversed on 5 Aug 2025 (direct debit returned)" in response.json()["problems"][0]["messages"][0]
    assert Payment.objects.count() == 1
    assert invoice_state(invoices[0])[:2] == (Decimal("500.00"), InvoiceStatus.OPEN)
