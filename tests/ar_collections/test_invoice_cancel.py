"""The ERP cancels an invoice (raised in error, replaced), through the JSON API
or an invoices file: a row that gives the invoice a cancelled_on and a
cancel_reason. The invoice leaves what is open and dunning at once, its day
is kept so that past figures stay as they were, and what a credit team would
refuse (money set against it, unknown, written off) is refused, changing
nothing; the same cancellation sent again is reported as done already."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from ar_collections import numbers, workspace
from ar_collections.api import api_token_create
from ar_collections.delivery import actions_deliver
from ar_collections.dunning import run_plan, run_start
from ar_collections.imports import invoices_import
from ar_collections.models import (
    ActionStatus,
    DisputeOutcome,
    DisputeReason,
    DisputeStatus,
    DunningAction,
    DunningActionInvoice,
    DunningPause,
    Invoice,
    InvoiceStatus,
    PlanStatus,
    PromiseStatus,
    ReceivablesImport,
    TimelineEventInvoice,
)
from arcrm.text import person_name
from customers.models import EventKind, TimelineEvent
from tests.ar_collections.conftest import DUE, frozen
from tests.ar_collections.plans import LATE, day, instalments_of, schedule

from . import test_views_review

make_action = test_views_review.make_action  # the review queue's fixture

TODAY = dt.date(2025, 8, 5)


def row(invoice: Invoice, **more) -> dict:
    """The invoice as the ERP sends it, with `more` (its cancellation)."""
    return {"number": invoice.number, "account_number": invoice.customer.account_number,
            "issue_date": invoice.issue_date.isoformat(), "due_date": invoice.due_date.isoformat(),
            "currency": invoice.currency, "total_amount": str(invoice.total_amount), **more}


CANCEL = {"cancelled_on": "2025-08-04", "cancel_reason": "Raised in error, replaced by INV-9"}


@pytest.fixture
def erp(manager) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_token_create(user=manager, name='ERP')[1]}"})


def post(client: Client, rows: list[dict], **more) -> tuple[int, dict]:
    response = client.post(reverse("api:invoices"), json.dumps({"rows": rows, **more}),
                           content_type="application/json")
    return response.status_code, response.json()


@pytest.fixture
def invoice(customer, make_invoice) -> Invoice:
    return make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.00",
                        number="INV-1")


def state() -> tuple:
    return (sorted(Invoice.objects.values_list("number", "status", "open_amount", "cancelled_on")),
            TimelineEvent.objects.count())


# --- the API --------------------------------------------------------------------------------


@pytest.mark.usefixtures("_frozen_today")
def test_the_erp_cancels_an_invoice_and_the_timeline_says_who_and_why(erp, manager, customer, invoice):
    status, body = post(erp, [row(invoice, **CANCEL)])

    assert status == 200, body
    assert (body["cancelled"], body["already_cancelled"], body["recorded"], body["already_there"]) == (
        ["INV-1"], [], 0, 0)
    assert body["summary"] == ("0 invoices recorded, 1 cancelled in the ERP (INV-1), 0 already there "
                               "(left as they were), from 1 row.")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.open_amount, invoice.cancelled_on) == (
        InvoiceStatus.CANCELLED, Decimal("0.00"), dt.date(2025, 8, 4))
    assert invoice.total_amount == Decimal("500.00")  # what was billed stays, for the past days' figures
    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.INVOICE_CHANGED)
    assert event.actor == manager
    assert event.summary == ("Invoice INV-1 for EUR 500.00 cancelled in the ERP on 4 Aug 2025 by "
                             f"{person_name(manager)}: Raised in error, replaced by INV-9")
    assert event.details["before"] == {"status": "open", "open_amount": "500.00"}
    assert event.details["after"] == {"status": "cancelled", "open_amount": "0.00"}
    linked = TimelineEventInvoice.objects.filter(event=event).values_list("invoice__number", flat=True)
    assert list(linked) == ["INV-1"]
    # Kept on the imports page as any request is.
    assert ReceivablesImport.objects.get().summary == body["summary"]


@pytest.mark.usefixtures("_frozen_today")
def test_the_same_cancellation_sent_again_is_reported_as_cancelled_already_and_changes_nothing(
    erp, customer, invoice, make_invoice
):
    assert post(erp, [row(invoice, **CANCEL)])[0] == 200
    before = state()
    other = make_invoice(customer, issued=dt.date(2025, 7, 1), amount="80.00", number="INV-2")

    status, body = post(erp, [row(invoice, **CANCEL), row(other)])

    # Not an error that would refuse the rest of the request: done already.
    assert status == 200, body
    assert (body["cancelled"], body["already_cancelled"], body["already_there"]) == ([], ["INV-1"], 2)
    assert "INV-1 cancelled already" in body["summary"]
    assert state()[0] == sorted([*before[0], ("INV-2", "open", Decimal("80.00"), None)])
    assert state()[1] == before[1]


@pytest.mark.usefixtures("_frozen_today")
def test_a_part_paid_invoice_is_not_cancelled_and_the_erp_is_told_to_issue_a_credit_note(
    erp, manager, customer, invoice, make_invoice
):
    workspace.payment_record(customer=customer, actor=manager, amount=Decimal("100.00"), currency="EUR",
                             received_on=TODAY, allocations=[(invoice, Decimal("100.00"))], reference="B-1")
    other = make_invoice(customer, issued=dt.date(2025, 7, 1), amount="80.00", number="INV-2")
    before = state()

    status, body = post(erp, [row(other, **CANCEL), row(invoice, **CANCEL)])

    assert status == 422
    assert body["problems"] == [{"row": 2, "messages": [
        "invoice INV-1 is paid in part: an invoice with money set against it is not cancelled; issue a "
        "credit note for it instead"]}]
    # The whole request refused: INV-2's cancellation is not applied either.
    assert state() == before


@pytest.mark.usefixtures("_frozen_today")
@pytest.mark.parametrize("cancelled_on", ["2025-07-20", "2025-07-05"])
def test_a_cancellation_dated_to_when_a_payment_since_reversed_stood_against_the_invoice_is_refused(
    erp, manager, customer, invoice, cancelled_on
):
    # Paid in full on 10 Jul, the cheque bounced on 1 Aug: open today, but a
    # cancellation dated 20 Jul (paid then) or 5 Jul (paid after it) would
    # have the books of those days hold money against an invoice never owed.
    payment = workspace.payment_record(customer=customer, actor=manager, amount=Decimal("500.00"),
                                       currency="EUR", received_on=dt.date(2025, 7, 10),
                                       allocations=[(invoice, Decimal("500.00"))], reference="CHQ-1")
    workspace.payment_reverse(payment=payment, actor=manager, reason="bounced_cheque", on=dt.date(2025, 8, 1))
    before = state()

    status, body = post(erp, [row(invoice, cancelled_on=cancelled_on, cancel_reason="Replaced by INV-9")])

    assert status == 422, body
    assert body["problems"] == [{"row": 1, "messages": [
        "invoice INV-1 had money set against it until 1 Aug 2025, when the payment was reversed: an invoice "
        "is not cancelled on a day money stood against it, nor before; date the cancellation 1 Aug 2025 or "
        "later, or issue a credit note for it instead"]}]
    assert state() == before
    # The figures of 20 Jul still read it as paid.
    assert numbers.aged_balances(numbers.Scope(), today=TODAY, on=dt.date(2025, 7, 20)).count() == 0


@pytest.mark.usefixtures("_frozen_today")
def test_a_cancellation_dated_after_the_payment_was_reversed_is_accepted(erp, manager, customer, invoice):
    payment = workspace.payment_record(customer=customer, actor=manager, amount=Decimal("500.00"),
                                       currency="EUR", received_on=dt.date(2025, 7, 10),
                                       allocations=[(invoice, Decimal("500.00"))], reference="CHQ-1")
    workspace.payment_reverse(payment=payment, actor=manager, reason="bounced_cheque", on=dt.date(2025, 8, 1))

    status, body = post(erp, [row(invoice, cancelled_on="2025-08-01", cancel_reason="Replaced by INV-9")])

    assert (status, body["cancelled"]) == (200, ["INV-1"])
    invoice.refresh_from_db()
    assert (invoice.status, invoice.cancelled_on) == (InvoiceStatus.CANCELLED, dt.date(2025, 8, 1))


@pytest.mark.usefixtures("_frozen_today")
def test_a_paid_invoice_is_not_cancelled(erp, customer, make_invoice):
    paid = make_invoice(customer, issued=dt.date(2025, 6, 1), paid_on=dt.date(2025, 7, 1), number="INV-P")

    status, body = post(erp, [row(paid, **CANCEL)])

    assert status == 422
    assert "invoice INV-P is paid in full: an invoice with money set against it is not cancelled" in (
        body["problems"][0]["messages"][0])
    assert Invoice.objects.get(number="INV-P").status == InvoiceStatus.PAID


@pytest.mark.usefixtures("_frozen_today")
def test_an_unknown_invoice_is_not_cancelled_nor_recorded(erp, customer, invoice):
    unknown = row(invoice, number="INV-404", **CANCEL)

    status, body = post(erp, [unknown])

    assert status == 422
    assert body["problems"] == [{"row": 1, "messages": [
        "invoice INV-404 is not recorded: there is nothing to cancel"]}]
    assert not Invoice.objects.filter(number="INV-404").exists()


@pytest.mark.usefixtures("_frozen_today")
def test_a_written_off_invoice_is_not_cancelled(erp, manager, customer, invoice):
    workspace.invoice_write_off(customer=customer, actor=manager, invoice=invoice, reason="Insolvent",
                                on=TODAY)
    before = state()

    status, body = post(erp, [row(invoice, **CANCEL)])

    assert status == 422
    assert body["problems"][0]["messages"][0].startswith(
        "invoice INV-1 was written off as bad debt: a written-off invoice is not cancelled")
    assert state() == before


@pytest.mark.usefixtures("_frozen_today")
@pytest.mark.parametrize(("cancel", "problem"), [
    ({"cancelled_on": "2025-08-04"},
     "cancel_reason is empty: say why the ERP cancelled the invoice (raised in error, replaced by another)"),
    ({"cancel_reason": "Replaced"}, "cancelled_on is empty"),
    ({"cancelled_on": "2025-08-06", "cancel_reason": "Replaced"},
     "cancelled_on 2025-08-06 is after today (5 Aug 2025)"),
    ({"cancelled_on": "2025-05-31", "cancel_reason": "Replaced"},
     "cancelled_on 2025-05-31 is before the invoice's issue_date 2025-06-01"),
])
def test_a_cancellation_without_its_day_or_reason_or_on_a_wrong_day_is_refused(
    erp, invoice, cancel, problem
):
    before = state()

    status, body = post(erp, [row(invoice, **cancel)])

    assert status == 422
    assert body["problems"] == [{"row": 1, "messages": [problem]}]
    assert state() == before


@pytest.mark.usefixtures("_frozen_today")
def test_a_cancelled_invoice_sent_again_without_its_cancellation_is_not_opened_again(erp, invoice):
    assert post(erp, [row(invoice, **CANCEL)])[0] == 200
    before = state()

    status, body = post(erp, [row(invoice)])

    assert status == 422
    assert body["problems"][0]["messages"][0].startswith(
        "invoice INV-1 was cancelled on 4 Aug 2025: a cancelled invoice is not opened again")
    assert state() == before


@pytest.mark.usefixtures("_frozen_today")
def test_a_dry_run_says_what_it_would_cancel_and_cancels_nothing(erp, invoice):
    status, body = post(erp, [row(invoice, **CANCEL)], dry_run=True)

    assert (status, body["cancelled"]) == (200, ["INV-1"])
    assert "1 would be cancelled in the ERP (INV-1)" in body["summary"]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN


# --- an invoices file -----------------------------------------------------------------------


def csv_of(*rows: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["number", "account_number", "issue_date", "due_date", "currency",
                                  "total_amount", "cancelled_on", "cancel_reason"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.usefixtures("_frozen_today")
def test_an_invoices_file_cancels_an_invoice_and_the_same_file_again_reports_it_cancelled_already(
    manager, customer, invoice
):
    report = invoices_import(csv_of(row(invoice, **CANCEL)), actor=manager)

    assert (report.ok, report.cancelled) == (True, ["INV-1"])
    invoice.refresh_from_db()
    assert (invoice.status, invoice.cancelled_on) == (InvoiceStatus.CANCELLED, dt.date(2025, 8, 4))
    before = state()

    again = invoices_import(csv_of(row(invoice, **CANCEL)), actor=manager)

    assert (again.ok, again.cancelled, again.already_cancelled, again.already) == (True, [], ["INV-1"], 1)
    assert again.summary() == ("0 invoices recorded, 1 already there (left as it was; INV-1 cancelled "
                               "already), from 1 row.")
    assert state() == before


@pytest.mark.usefixtures("_frozen_today")
def test_a_file_with_a_cancellation_refused_records_none_of_its_rows(
    manager, customer, invoice, make_invoice
):
    written_off = make_invoice(customer, issued=dt.date(2025, 6, 1), amount="40.00", number="INV-W")
    workspace.invoice_write_off(customer=customer, actor=manager, invoice=written_off, reason="Gone",
                                on=TODAY)
    before = state()

    report = invoices_import(csv_of(row(invoice, **CANCEL), row(written_off, **CANCEL)), actor=manager)

    assert not report.ok
    assert report.errors[0].startswith("line 3: invoice INV-W was written off as bad debt")
    assert state() == before


# --- what the cancellation ends -------------------------------------------------------------


@pytest.mark.usefixtures("_frozen_today")
def test_an_open_dispute_on_it_closes_with_the_cancellation_as_its_reason(erp, manager, customer, invoice):
    dispute = workspace.dispute_open(customer=customer, actor=manager, invoice=invoice,
                                     reason=DisputeReason.PRICE, description="Wrong price", on=TODAY)
    assert DunningPause.objects.filter(dispute=dispute, lifted_at__isnull=True).exists()

    assert post(erp, [row(invoice, **CANCEL)])[0] == 200

    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome, dispute.resolved_on) == (
        DisputeStatus.RESOLVED, DisputeOutcome.INVOICE_CANCELLED, TODAY)
    assert dispute.resolution_note == ("Invoice INV-1 cancelled in the ERP on 4 Aug 2025: Raised in error, "
                                       "replaced by INV-9")
    assert not DunningPause.objects.filter(dispute=dispute, lifted_at__isnull=True).exists()
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.DISPUTE).latest("pk")
    assert event.summary == f"Dispute on INV-1 closed: {dispute.resolution_note}"


@pytest.mark.usefixtures("_frozen_today")
def test_a_promise_for_it_alone_is_withdrawn_one_with_an_invoice_still_open_goes_on(
    erp, manager, customer, invoice, make_invoice
):
    other, third = (make_invoice(customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2),
                                 amount="70.00", number=number) for number in ("INV-2", "INV-3"))
    alone = workspace.promise_record(customer=customer, actor=manager, invoices=[invoice],
                                     amount=Decimal("500.00"), promised_on=dt.date(2025, 8, 20), on=TODAY)
    both = workspace.promise_record(customer=customer, actor=manager, invoices=[other, third],
                                    amount=Decimal("140.00"), promised_on=dt.date(2025, 8, 20), on=TODAY)

    assert post(erp, [row(invoice, **CANCEL), row(other, **CANCEL)])[0] == 200

    alone.refresh_from_db()
    both.refresh_from_db()
    assert (alone.status, both.status) == (PromiseStatus.CANCELLED, PromiseStatus.OPEN)
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.PROMISE).latest("pk")
    assert event.summary == ("Promise of EUR 500.00 by 20 Aug 2025 withdrawn: Invoice INV-1 cancelled in the "
                             "ERP")


@pytest.mark.usefixtures("_frozen_today")
def test_a_promise_whose_other_invoices_were_paid_is_kept_not_withdrawn(
    erp, manager, customer, invoice, make_invoice
):
    # The customer paid what it promised on INV-2; INV-1, raised in error, is cancelled:
    # it did what it said, and a broken or withdrawn promise would wrong it.
    other = make_invoice(customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2), amount="70.00",
                         number="INV-2")
    promise = workspace.promise_record(customer=customer, actor=manager, invoices=[invoice, other],
                                       amount=Decimal("570.00"), promised_on=dt.date(2025, 8, 20), on=TODAY)
    workspace.payment_record(customer=customer, actor=manager, amount=Decimal("70.00"), currency="EUR",
                             received_on=TODAY, allocations=[(other, Decimal("70.00"))], reference="P-2")

    assert post(erp, [row(invoice, **CANCEL)])[0] == 200

    promise.refresh_from_db()
    assert (promise.status, promise.resolved_on) == (PromiseStatus.KEPT, TODAY)


@pytest.mark.usefixtures("_frozen_today")
def test_the_review_queue_says_the_day_it_was_cancelled(client, collector, manager, customer, make_action,
                                                       make_invoice, erp):
    action = make_action(customer)
    other = make_invoice(customer, issued=dt.date(2025, 6, 2), due=dt.date(2025, 7, 2), amount="50.00")
    DunningActionInvoice.objects.create(action=action, invoice=other, open_amount=other.open_amount,
                                        currency="EUR")

    assert post(erp, [row(other, **CANCEL)])[0] == 200

    client.force_login(collector)
    page = client.get(reverse("collections:review")).content.decode()
    assert f"{other.number} — cancelled on 4 Aug 2025" in page


def plan(day: dt.date) -> list[DunningAction]:
    with frozen(day):
        dunning_run = run_start(run_date=day)
        run_plan(run=dunning_run)
        return list(DunningAction.objects.filter(run=dunning_run))


def cancel(invoice: Invoice, actor, *, on: dt.date) -> None:
    with frozen(on):
        workspace.invoice_cancel(invoice=invoice, actor=actor, on=on, reason="Raised in error")


def test_a_step_planned_before_the_cancellation_leaves_the_invoice_out_when_it_is_sent(
    make_account, smtp_server, manager
):
    account = make_account()
    first, second = account.invoices.order_by("total_amount")
    day = DUE + dt.timedelta(days=3)
    [action] = plan(day)
    assert set(action.lines.values_list("invoice", flat=True)) == {first.pk, second.pk}

    cancel(first, manager, on=day)
    with frozen(day):
        actions_deliver(action_ids=[action.pk])

    [message] = smtp_server.messages
    assert second.number in message["Subject"] and first.number not in message["Subject"]
    assert first.number not in message.get_body(("plain",)).get_content()


def test_a_step_whose_every_invoice_was_cancelled_is_not_sent_and_the_next_run_plans_none(
    make_account, smtp_server, manager
):
    account = make_account()
    day = DUE + dt.timedelta(days=3)
    [action] = plan(day)

    for invoice in account.invoices.all():
        cancel(invoice, manager, on=day)
    with frozen(day):
        actions_deliver(action_ids=[action.pk])

    action.refresh_from_db()
    assert action.status == ActionStatus.SKIPPED
    assert smtp_server.messages == []
    assert plan(day + dt.timedelta(days=20)) == []


# --- past figures ---------------------------------------------------------------------------


def receivables(*, today: dt.date, month: dt.date) -> tuple[Decimal, Decimal]:
    """The Numbers page's receivables at the start and end of `month`, as of `today`."""
    with frozen(today):
        period = numbers.Period.ending(month, months=1, today=today)
        [currency] = numbers.figures(numbers.Scope(), today=today, periods=[period])
    return currency.periods[0].opening, currency.periods[0].closing


def test_the_receivables_of_a_day_before_the_cancellation_still_count_it_those_after_do_not(
    manager, customer, make_invoice
):
    make_invoice(customer, issued=dt.date(2025, 9, 5), due=dt.date(2025, 10, 5), amount="1000.00")
    cancelled = make_invoice(customer, issued=dt.date(2025, 9, 20), due=dt.date(2025, 10, 20),
                             amount="600.00")
    september = receivables(today=dt.date(2025, 10, 3), month=dt.date(2025, 9, 1))
    assert september == (Decimal("0.00"), Decimal("1600.00"))

    cancel(cancelled, manager, on=dt.date(2025, 10, 15))

    # September read in November as it read in October; October ends without it.
    assert receivables(today=dt.date(2025, 11, 3), month=dt.date(2025, 9, 1)) == september
    assert receivables(today=dt.date(2025, 11, 3), month=dt.date(2025, 10, 1)) == (
        Decimal("1600.00"), Decimal("1000.00"))


def sales(*, today: dt.date, month: dt.date) -> Decimal:
    """The Numbers page's credit sales of `month`, as of `today`."""
    with frozen(today):
        period = numbers.Period.ending(month, months=1, today=today)
        [currency] = numbers.figures(numbers.Scope(), today=today, periods=[period])
    return currency.periods[0].sales


def test_a_cancellation_takes_the_invoice_off_the_sales_of_its_own_month_not_of_the_past(
    manager, customer, make_invoice
):
    # Raised in error in September and billed again in October: counted once in the
    # sales that DSO divides by, and September's figures read as they did then.
    make_invoice(customer, issued=dt.date(2025, 9, 5), due=dt.date(2025, 10, 5), amount="1000.00")
    wrong = make_invoice(customer, issued=dt.date(2025, 9, 20), due=dt.date(2025, 10, 20), amount="600.00")
    cancel(wrong, manager, on=dt.date(2025, 10, 15))
    make_invoice(customer, issued=dt.date(2025, 10, 15), due=dt.date(2025, 11, 15), amount="600.00")

    assert sales(today=dt.date(2025, 11, 3), month=dt.date(2025, 9, 1)) == Decimal("1600.00")
    assert sales(today=dt.date(2025, 11, 3), month=dt.date(2025, 10, 1)) == Decimal("0.00")


# --- the admin ------------------------------------------------------------------------------


@pytest.mark.usefixtures("_frozen_today")
def test_the_admin_shows_the_day_of_cancellation_read_only(admin_client, manager, invoice):
    workspace.invoice_cancel(invoice=invoice, actor=manager, on=dt.date(2025, 8, 4), reason="Replaced")

    page = admin_client.get(reverse("admin:collections_invoice_change", args=[invoice.pk])).content.decode()

    assert "Cancelled on" in page and "4 Aug 2025" in page
    assert 'name="cancelled_on"' not in page


@pytest.mark.usefixtures("default_ladders")
def test_a_plan_holding_it_asks_for_its_amount_less_and_one_left_owing_nothing_is_done(
    make_account, collector, manager
):
    """EUR 1,200.00 in four instalments of EUR 300.00: the EUR 500.00 invoice
    cancelled comes off the end of the schedule, as a credit note would."""
    account = make_account()
    small, large = account.invoices.order_by("total_amount")
    with frozen(LATE):
        plan = workspace.plan_propose(
            customer=account, actor=collector, invoices=[small, large], on=LATE,
            instalments=schedule((10, "300.00"), (40, "300.00"), (70, "300.00"), (100, "300.00")))
    assert plan.status == PlanStatus.ACTIVE

    cancel(small, manager, on=day(5))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    amounts = [amount for _, _, amount, _ in instalments_of(plan)]
    assert amounts == [Decimal("300.00"), Decimal("300.00"), Decimal("100.00")]

    cancel(large, manager, on=day(6))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    event = TimelineEvent.objects.filter(customer=account, kind=EventKind.PAYMENT_PLAN).latest("pk")
    assert event.summary == f"Payment plan completed: the cancellation of {large.number} left nothing to pay"
