"""What an account paying up asks for: a credit hold to be lifted by a
manager, a dispute on an invoice paid in full to be closed, and no more
chasing of a department for an answer nobody awaits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from ar_collections import worklist, workspace
from ar_collections.models import (
    ActionStatus,
    ChargeKind,
    Department,
    DisputeOutcome,
    DisputeReason,
    DisputeStatus,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Invoice,
    LateCharge,
    StepAction,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import Customer, EventKind, TermsType, TimelineEvent
from customers.services import customer_update
from tests.ar_collections.conftest import frozen

TODAY = dt.date(2025, 8, 5)
LATER = TODAY + dt.timedelta(days=20)
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def overdue(customer, make_invoice) -> Invoice:
    return make_invoice(customer, issued=TODAY - dt.timedelta(days=60), due=TODAY - dt.timedelta(days=30),
                        amount="1200.00", number="INV-LATE")


@pytest.fixture
def on_hold(customer, manager, overdue) -> Customer:
    """Put on credit hold "until the overdue balance is cleared"."""
    return customer_update(customer=customer, actor=manager, changes={"on_credit_hold": True},
                           reason="Agreed with the customer")


def paid(customer, manager, invoice):
    workspace.payment_record(customer=customer, actor=manager, amount=invoice.open_amount, currency="EUR",
                             received_on=TODAY, allocations=[(invoice, invoice.open_amount)],
                             reference="BANK-1")


def credited(customer, manager, invoice):
    workspace.credit_note_record(customer=customer, actor=manager, invoice=invoice,
                                 amount=invoice.open_amount, reason="Goods returned", issued_on=TODAY)


def written_off(customer, manager, invoice):
    workspace.invoice_write_off(customer=customer, actor=manager, invoice=invoice, reason="Insolvent",
                                on=TODAY)


def hold_items(customer, **filters):
    return list(WorkItem.objects.filter(customer=customer, kind=WorkKind.HOLD_RELEASE, **filters))


def work_events(customer) -> list[str]:
    return list(TimelineEvent.objects.filter(customer=customer, kind=EventKind.WORK).order_by("pk")
                .values_list("summary", flat=True))


@pytest.mark.parametrize("move", [paid, credited, written_off], ids=["paid", "credited", "written-off"])
def test_an_account_on_credit_hold_that_clears_its_overdue_money_asks_its_collector_once_to_have_it_lifted(
    on_hold, manager, collector, overdue, move, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        move(on_hold, manager, overdue)

    (item,) = hold_items(on_hold)
    assert (item.status, item.assignee, item.due_on) == (WorkStatus.OPEN, collector, TODAY)
    assert item.title == "Paid up, nothing overdue: ask a manager to lift the credit hold"
    assert work_events(on_hold) == [f"Worklist: {item.title}"]
    # Not lifted by itself: a manager weighs it.
    assert Customer.objects.get(pk=on_hold.pk).on_credit_hold

    assert worklist.worklist_refresh(on=TODAY) == 0
    assert len(hold_items(on_hold)) == 1


def test_the_daily_refresh_asks_too_for_an_account_paid_up_without_a_hook(on_hold, manager, overdue):
    paid(on_hold, manager, overdue)  # its commit's callbacks never ran
    assert not hold_items(on_hold)

    worklist.worklist_refresh(on=TODAY)

    (item,) = hold_items(on_hold, status=WorkStatus.OPEN)
    assert item.title == "Paid up, nothing overdue: ask a manager to lift the credit hold"


def test_an_account_on_hold_with_money_still_overdue_is_not_asked_about(
    on_hold, manager, overdue, make_invoice, django_capture_on_commit_callbacks
):
    make_invoice(on_hold, issued=TODAY - dt.timedelta(days=40), due=TODAY - dt.timedelta(days=10))
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    worklist.worklist_refresh(on=TODAY)

    assert not hold_items(on_hold)


def test_an_account_put_on_hold_by_hand_with_nothing_overdue_is_not_asked_about(customer, manager):
    customer_update(customer=customer, actor=manager, changes={"on_credit_hold": True},
                    reason="Agreed with the customer")

    worklist.worklist_refresh(on=TODAY)

    assert not hold_items(customer)


def test_an_account_on_cash_on_delivery_terms_agreed_by_hand_is_not_asked_about(
    customer, manager, overdue
):
    customer_update(customer=customer, actor=manager, changes={"terms_type": TermsType.COD},
                    reason="Agreed with the customer")
    paid(customer, manager, overdue)

    worklist.worklist_refresh(on=TODAY)

    assert not hold_items(customer)


def test_the_item_ends_itself_once_a_manager_lifts_the_hold(
    on_hold, manager, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    with django_capture_on_commit_callbacks(execute=True):
        customer_update(customer=on_hold, actor=manager, changes={"on_credit_hold": False},
                        reason="Agreed with the customer")

    (item,) = hold_items(on_hold)
    assert (item.status, item.done_by) == (WorkStatus.DONE, manager)
    assert work_events(on_hold)[-1] == f"Worklist: done — {item.title}; the hold was lifted"
    worklist.worklist_refresh(on=TODAY)
    assert hold_items(on_hold, status=WorkStatus.OPEN) == []


def test_the_item_ends_itself_once_money_is_overdue_again_and_comes_back_when_that_is_paid(
    on_hold, manager, overdue, make_invoice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    later = make_invoice(on_hold, issued=TODAY, due=TODAY + dt.timedelta(days=10), amount="300.00")

    with frozen(LATER):
        worklist.worklist_refresh(on=LATER)
        (first,) = hold_items(on_hold)
        assert first.status == WorkStatus.DONE
        assert work_events(on_hold)[-1] == (f"Worklist: done — {first.title}; money is overdue again: the "
                                            "hold stands for now")
        with django_capture_on_commit_callbacks(execute=True):
            workspace.payment_record(customer=on_hold, actor=manager, amount=later.open_amount,
                                     currency="EUR", received_on=LATER,
                                     allocations=[(later, later.open_amount)], reference="BANK-2")

    assert [i.status for i in hold_items(on_hold)] == [WorkStatus.DONE, WorkStatus.OPEN]


def test_an_item_ticked_off_by_hand_stays_done_while_the_account_stays_paid_up(
    on_hold, manager, collector, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    (item,) = hold_items(on_hold)
    worklist.item_complete(item=item, actor=collector)

    worklist.worklist_refresh(on=TODAY + dt.timedelta(days=1))

    assert [i.status for i in hold_items(on_hold)] == [WorkStatus.DONE]


def test_the_worklist_item_leads_to_the_exception_request(
    client, on_hold, manager, collector, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    client.force_login(collector)

    page = client.get(reverse("collections:worklist")).content.decode()

    request_url = reverse("collections:exception_request", args=[on_hold.pk]) + "?kind=hold_release"
    assert "Paid up, nothing overdue: ask a manager to lift the credit hold" in page
    assert f'<a href="{request_url}">Ask a manager</a>' in page
    assert client.get(request_url).status_code == 200


# --- Disputes on invoices paid in full ---------------------------------------------------


@pytest.fixture
def dispute(customer, collector, overdue):
    logistics = Department.objects.create(name="Logistics", email="logistics@example.test",
                                          reasons=[DisputeReason.OUR_DELIVERY])
    return workspace.dispute_open(customer=customer, actor=collector, invoice=overdue,
                                  reason=DisputeReason.OUR_DELIVERY, description="Pallets arrived late",
                                  department=logistics, on=TODAY - dt.timedelta(days=20))


def dispute_items(dispute, kind):
    return list(WorkItem.objects.filter(dispute=dispute, kind=kind))


def test_paying_a_disputed_invoice_in_full_stops_waiting_for_the_department_and_asks_to_close_the_dispute(
    customer, manager, collector, dispute, overdue, django_capture_on_commit_callbacks
):
    worklist.worklist_refresh(on=TODAY)
    (waiting,) = dispute_items(dispute, WorkKind.DISPUTE_WAITING)
    assert waiting.status == WorkStatus.OPEN

    with django_capture_on_commit_callbacks(execute=True):
        paid(customer, manager, overdue)

    waiting.refresh_from_db()
    assert waiting.status == WorkStatus.DONE
    (close,) = dispute_items(dispute, WorkKind.DISPUTE_SETTLED)
    assert (close.status, close.assignee, close.due_on) == (WorkStatus.OPEN, collector, TODAY)
    assert close.title == ("Dispute on INV-LATE (Logistics): paid in full on 5 Aug, nothing left to settle: "
                           "close the dispute")
    assert work_events(customer)[-2:] == [
        f"Worklist: done — {waiting.title}; INV-LATE was paid in full on 5 Aug 2025: no answer from "
        "Logistics is awaited",
        f"Worklist: {close.title}",
    ]
    # Paid in full or rejected is the collector's judgement: the dispute waits for it.
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.OPEN

    with frozen(LATER):
        worklist.worklist_refresh(on=LATER)
    assert [i.status for i in dispute_items(dispute, WorkKind.DISPUTE_WAITING)] == [WorkStatus.DONE]
    assert [i.status for i in dispute_items(dispute, WorkKind.DISPUTE_SETTLED)] == [WorkStatus.OPEN]


def test_closing_the_dispute_as_paid_in_full_ends_the_item_that_asked_for_it(
    customer, manager, collector, dispute, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(customer, manager, overdue)

    workspace.dispute_resolve(dispute=dispute, actor=collector, outcome=DisputeOutcome.PAID_IN_FULL,
                              note="Paid; Logistics redelivered", on=TODAY)

    (close,) = dispute_items(dispute, WorkKind.DISPUTE_SETTLED)
    assert (close.status, close.done_by) == (WorkStatus.DONE, collector)


def test_a_disputed_invoice_paid_in_part_still_waits_for_the_departments_answer(
    customer, manager, dispute, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        workspace.payment_record(customer=customer, actor=manager, amount=overdue.open_amount / 2,
                                 currency="EUR", received_on=TODAY,
                                 allocations=[(overdue, overdue.open_amount / 2)], reference="BANK-1")
    worklist.worklist_refresh(on=TODAY)

    assert [i.status for i in dispute_items(dispute, WorkKind.DISPUTE_WAITING)] == [WorkStatus.OPEN]
    assert dispute_items(dispute, WorkKind.DISPUTE_SETTLED) == []


# --- The request to lift a hold ---------------------------------------------------------


def switched_by_a_step(customer, manager) -> None:
    """A dunning step's switch to C.O.D., approved three days ago."""
    run = DunningRun.objects.create(run_date=TODAY - dt.timedelta(days=3))
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=run.run_date)
    DunningAction.objects.create(run=run, cycle=cycle, customer=customer, status=ActionStatus.DONE,
                                 step=DunningStep.objects.filter(action=StepAction.SWITCH_TO_COD).first(),
                                 planned_on=run.run_date, pay_by=run.run_date)
    customer_update(customer=customer, actor=manager, changes={"terms_type": TermsType.COD},
                    reason="Agreed with the customer")


def hold_release_asked(customer, collector, reason="Paid everything overdue; orders waiting"):
    return workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.HOLD_RELEASE,
                                       reason=reason, on=TODAY)


def test_a_manager_approving_the_request_lifts_the_hold_and_ends_the_item(
    on_hold, manager, collector, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    asked = hold_release_asked(on_hold, collector)

    with django_capture_on_commit_callbacks(execute=True):
        workspace.exception_decide(request=asked, manager=manager, approve=True, note="Paid up; fine",
                                   on=TODAY)

    customer = Customer.objects.get(pk=on_hold.pk)
    assert (customer.on_credit_hold, customer.terms_type) == (False, TermsType.STANDARD)
    (item,) = hold_items(on_hold)
    assert item.status == WorkStatus.DONE
    changed = TimelineEvent.objects.filter(customer=on_hold, kind=EventKind.ACCOUNT_CHANGED).latest("pk")
    assert (changed.actor, changed.details["after"]) == (manager, {"on_credit_hold": False})
    decided = TimelineEvent.objects.filter(customer=on_hold, kind=EventKind.EXCEPTION).latest("pk")
    assert decided.summary.startswith("Exception (lift the credit hold or C.O.D.) approved by ")


def test_a_rejected_request_leaves_the_hold_on(on_hold, manager, collector, overdue):
    paid(on_hold, manager, overdue)
    asked = hold_release_asked(on_hold, collector)

    workspace.exception_decide(request=asked, manager=manager, approve=False, note="Wait a month", on=TODAY)

    assert Customer.objects.get(pk=on_hold.pk).on_credit_hold


def test_approving_the_request_takes_an_account_a_step_switched_to_cash_on_delivery_back_to_standard_terms(
    customer, manager, collector, overdue, default_ladders
):
    switched_by_a_step(customer, manager)
    paid(customer, manager, overdue)
    asked = hold_release_asked(customer, collector)

    workspace.exception_decide(request=asked, manager=manager, approve=True, note="Back to terms", on=TODAY)

    assert Customer.objects.get(pk=customer.pk).terms_type == TermsType.STANDARD


def test_cash_on_delivery_agreed_from_the_start_is_not_the_holds_to_lift(customer, manager, collector):
    customer_update(customer=customer, actor=manager, changes={"terms_type": TermsType.COD},
                    reason="Agreed with the customer")

    with pytest.raises(ValidationError, match=r"neither on credit hold nor on C\.O\.D\."):
        hold_release_asked(customer, collector)

    assert not ExceptionRequest.objects.filter(customer=customer).exists()


def test_an_account_not_on_hold_cannot_ask_for_one_to_be_lifted(customer, collector):
    with pytest.raises(ValidationError, match="nothing to lift"):
        hold_release_asked(customer, collector)


def test_a_request_for_one_invoice_is_refused_the_hold_is_on_the_account(on_hold, collector, overdue):
    with pytest.raises(ValidationError, match="whole account"):
        workspace.exception_request(customer=on_hold, actor=collector, kind=ExceptionKind.HOLD_RELEASE,
                                    reason="Paid", on=TODAY, invoice=overdue)


def test_a_hold_lifted_on_the_card_meanwhile_is_approved_without_changing_anything(
    on_hold, manager, collector, overdue
):
    paid(on_hold, manager, overdue)
    asked = hold_release_asked(on_hold, collector)
    customer_update(customer=on_hold, actor=manager, changes={"on_credit_hold": False},
                    reason="Agreed with the customer")
    changes = TimelineEvent.objects.filter(customer=on_hold, kind=EventKind.ACCOUNT_CHANGED).count()

    decided = workspace.exception_decide(request=asked, manager=manager, approve=True, note="ok", on=TODAY)

    assert decided.status == ExceptionStatus.APPROVED
    assert TimelineEvent.objects.filter(customer=on_hold, kind=EventKind.ACCOUNT_CHANGED).count() == changes


def test_the_worklist_item_opens_the_request_form_on_lifting_the_hold(
    client, on_hold, manager, collector, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    client.force_login(collector)

    page = client.get(reverse("collections:worklist")).content.decode()
    url = reverse("collections:exception_request", args=[on_hold.pk]) + "?kind=hold_release"
    assert f'<a href="{url}">Ask a manager</a>' in page.replace("&amp;", "&")

    form = client.get(url).content.decode()
    assert '<option value="hold_release" selected>' in form
    response = client.post(url, {"kind": "hold_release", "reason": "All paid"})
    assert response.status_code == 302
    assert ExceptionRequest.objects.get(customer=on_hold).kind == ExceptionKind.HOLD_RELEASE


def test_once_a_request_waits_the_item_says_since_when_and_who_asked_instead_of_offering_another(
    client, on_hold, manager, collector, overdue, django_capture_on_commit_callbacks
):
    collector.first_name, collector.last_name = "Carla", "Collins"
    collector.save()
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    with frozen(TODAY - dt.timedelta(days=1)):
        workspace.exception_request(customer=on_hold, actor=collector, kind=ExceptionKind.HOLD_RELEASE,
                                    reason="All paid", on=TODAY - dt.timedelta(days=1))
    client.force_login(collector)

    page = client.get(reverse("collections:worklist")).content.decode()

    url = reverse("collections:exception_request", args=[on_hold.pk]) + "?kind=hold_release"
    assert "Paid up, nothing overdue: ask a manager to lift the credit hold" in page
    assert "Ask a manager</a>" not in page and url not in page.replace("&amp;", "&")
    assert "A manager has been asked to lift it since 4 Aug, by Carla Collins" in page


def test_a_second_request_to_lift_the_hold_is_refused_with_why_and_nothing_is_added(
    client, on_hold, manager, collector, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    hold_release_asked(on_hold, collector)
    events = TimelineEvent.objects.filter(customer=on_hold).count()
    client.force_login(collector)

    url = reverse("collections:exception_request", args=[on_hold.pk]) + "?kind=hold_release"
    response = client.post(url, {"kind": "hold_release", "reason": "All paid, asked again"})

    assert response.status_code == 422
    assert ("A request (lift the credit hold or C.O.D.) for the whole account already waits for a manager, "
            "asked on 5 Aug 2025: a manager decides it first.") in response.content.decode()
    assert ExceptionRequest.objects.filter(customer=on_hold).count() == 1
    assert TimelineEvent.objects.filter(customer=on_hold).count() == events


def test_a_decided_request_lets_the_item_ask_a_manager_again(
    client, on_hold, manager, collector, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    workspace.exception_decide(request=hold_release_asked(on_hold, collector), manager=manager, approve=False,
                               note="Wait a month", on=TODAY)
    client.force_login(collector)

    page = client.get(reverse("collections:worklist")).content.decode()

    assert "Ask a manager</a>" in page and "has been asked to lift it" not in page


def test_the_daily_refresh_outside_any_transaction_closes_items_with_why(
    transactional_db, on_hold, manager, overdue, make_invoice
):
    """As the daily task runs it: in autocommit, where a lock needs a transaction of its own."""
    paid(on_hold, manager, overdue)
    worklist.worklist_refresh(on=TODAY)
    make_invoice(on_hold, issued=TODAY, due=TODAY + dt.timedelta(days=10), amount="300.00")

    with frozen(LATER):
        worklist.worklist_refresh(on=LATER)

    (item,) = hold_items(on_hold)
    assert item.status == WorkStatus.DONE
    assert work_events(on_hold)[-1].endswith("money is overdue again: the hold stands for now")


# --- Late fees and interest still owed ----------------------------------------------------------


def charge_on(customer, *, kind=ChargeKind.LATE_FEE, amount="40.00") -> LateCharge:
    """A late fee (or interest) the hold's own notice charged."""
    run = DunningRun.objects.get_or_create(run_date=TODAY - dt.timedelta(days=10))[0]
    cycle = DunningCycle.objects.get_or_create(customer=customer, number=1,
                                               defaults={"opened_on": TODAY - dt.timedelta(days=10)})[0]
    notice = DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer,
        step=DunningStep.objects.order_by("pk")[LateCharge.objects.count()],
        status=ActionStatus.DONE, planned_on=run.run_date, pay_by=run.run_date)
    return LateCharge.objects.create(customer=customer, action=notice, kind=kind, currency="EUR",
                                     amount=Decimal(amount), open_amount=Decimal(amount))


@pytest.mark.usefixtures("default_ladders")
@pytest.mark.parametrize("kind", [ChargeKind.LATE_FEE, ChargeKind.INTEREST])
def test_an_account_that_paid_its_invoices_but_still_owes_a_late_fee_or_interest_is_not_paid_up(
    on_hold, manager, overdue, kind, django_capture_on_commit_callbacks
):
    charge_on(on_hold, kind=kind)
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)  # the invoice only: nothing is left over for the charge
    worklist.worklist_refresh(on=TODAY)

    assert not hold_items(on_hold)


@pytest.mark.usefixtures("default_ladders")
def test_paying_the_late_fee_too_asks_for_the_hold_to_be_lifted(
    on_hold, manager, overdue, django_capture_on_commit_callbacks
):
    fee = charge_on(on_hold)
    paid(on_hold, manager, overdue)
    assert not hold_items(on_hold)

    with django_capture_on_commit_callbacks(execute=True):
        workspace.payment_record(customer=on_hold, actor=manager, amount=Decimal("40.00"), currency="EUR",
                                 received_on=TODAY, allocations=[], reference="BANK-FEE")

    assert LateCharge.objects.get(pk=fee.pk).open_amount == 0
    (item,) = hold_items(on_hold, status=WorkStatus.OPEN)
    assert item.title == "Paid up, nothing overdue: ask a manager to lift the credit hold"


@pytest.mark.usefixtures("default_ladders")
def test_a_late_fee_waived_counts_as_nothing_owed(on_hold, manager, overdue):
    fee = charge_on(on_hold)
    LateCharge.objects.filter(pk=fee.pk).update(waived_at=timezone.now(), waived_by=manager)
    paid(on_hold, manager, overdue)

    worklist.worklist_refresh(on=TODAY)

    assert len(hold_items(on_hold, status=WorkStatus.OPEN)) == 1


@pytest.mark.usefixtures("default_ladders")
def test_the_item_ends_itself_once_a_late_fee_is_owed_again_and_says_why(
    on_hold, manager, overdue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid(on_hold, manager, overdue)
    (item,) = hold_items(on_hold, status=WorkStatus.OPEN)
    charge_on(on_hold)

    worklist.worklist_refresh(on=TODAY)

    assert hold_items(on_hold)[0].status == WorkStatus.DONE
    assert work_events(on_hold)[-1] == (f"Worklist: done — {item.title}; late fees or interest are still "
                                        "owed: the hold stands for now")
