"""Writing off what an invoice still owes as bad debt: a manager's recorded
decision that settles the invoice for good (the whole open amount, so its
total stays its allocations plus the write-off), stops dunning for it, and
is refused, changing nothing, whenever something else still asks for the
money or the decision is not a manager's."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from ar_collections import workspace
from ar_collections.dunning import run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    Channel,
    ChargeKind,
    CollectionRules,
    DisputeReason,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Invoice,
    InvoiceStatus,
    LateCharge,
    PaymentBehaviour,
    StepAction,
    TimelineEventInvoice,
    WorkItem,
    WorkKind,
    WorkStatus,
    WriteOff,
)
from ar_collections.worklist import worklist_refresh
from customers.models import EventKind, TimelineEvent
from tests.ar_collections.conftest import DUE, frozen

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoices(customer, make_invoice) -> list[Invoice]:
    """INV-1 EUR 500.00 due 1 Jul, of which EUR 200.00 paid on 10 Jul; INV-2
    EUR 700.00 due 15 Jul; INV-3 JPY 30,000 due 20 Jul."""
    made = [
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number,
                     currency=currency)
        for number, due, amount, currency in [
            ("INV-1", dt.date(2025, 7, 1), "500.00", "EUR"),
            ("INV-2", dt.date(2025, 7, 15), "700.00", "EUR"),
            ("INV-3", dt.date(2025, 7, 20), "30000", "JPY"),
        ]
    ]
    workspace.payment_record(customer=customer, amount=Decimal("200.00"), currency="EUR",
                             received_on=dt.date(2025, 7, 10), allocations=[(made[0], Decimal("200.00"))])
    for invoice in made:
        invoice.refresh_from_db()
    return made


def write_off(manager, customer, invoice, **given):
    given.setdefault("reason", "Customer insolvent; the administrator pays nothing to unsecured creditors")
    given.setdefault("on", dt.date(2025, 8, 4))
    return workspace.invoice_write_off(customer=customer, actor=manager, invoice=invoice, **given)


def state() -> tuple:
    return (
        sorted(WriteOff.objects.values_list("invoice__number", "amount")),
        sorted(Invoice.objects.values_list("number", "open_amount", "status", "settled_on")),
        TimelineEvent.objects.count(),
    )


# --- The service --------------------------------------------------------------------------


def test_a_write_off_takes_the_whole_open_amount_and_settles_the_invoice_on_record(
    manager, customer, invoices
):
    done = write_off(manager, customer, invoices[0])

    assert (done.invoice, done.customer, done.amount, done.currency) == (
        invoices[0], customer, Decimal("300.00"), "EUR")
    assert (done.written_off_on, done.decided_by) == (dt.date(2025, 8, 4), manager)
    assert done.reason == "Customer insolvent; the administrator pays nothing to unsecured creditors"
    invoice = Invoice.objects.get(number="INV-1")
    assert (invoice.status, invoice.open_amount, invoice.settled_on) == (
        InvoiceStatus.WRITTEN_OFF, Decimal("0.00"), dt.date(2025, 8, 4))
    # Balances reconcile to the cent: what was paid and what was written off make the total.
    allocated = invoice.allocations.aggregate(total=Sum("amount"))["total"]
    assert allocated + done.amount == invoice.total_amount
    # The other invoices are as they were.
    assert sorted(Invoice.objects.filter(status=InvoiceStatus.OPEN).values_list("number", "open_amount")) == [
        ("INV-2", Decimal("700.00")), ("INV-3", Decimal("30000.00"))]


def test_a_write_off_goes_on_the_timeline_with_who_why_and_the_invoice_before_and_after(
    manager, customer, invoices
):
    done = write_off(manager, customer, invoices[0])

    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.WRITE_OFF)
    assert event.get_kind_display() == "Write-off"
    assert event.summary == ("EUR 300.00 still owed on INV-1 written off as bad debt by maria: Customer "
                             "insolvent; the administrator pays nothing to unsecured creditors")
    assert event.actor == manager
    assert (event.subject_type, event.subject_id) == (ContentType.objects.get_for_model(WriteOff), done.pk)
    assert event.details["before"] == {"status": "open", "open_amount": "300.00"}
    assert event.details["after"] == {"status": "written_off", "open_amount": "0.00",
                                      "settled_on": "2025-08-04"}
    assert (event.details["amount"], event.details["currency"]) == ("300.00", "EUR")
    # Filtering the timeline by the invoice finds it.
    assert TimelineEventInvoice.objects.filter(event=event, invoice=invoices[0]).exists()


def test_the_timeline_s_write_off_filter_finds_write_offs_and_not_other_exceptions(
    client, manager, customer, invoices
):
    done = write_off(manager, customer, invoices[0])
    exception = workspace.exception_request(customer=customer, actor=manager, kind="pause", invoice=None,
                                            reason="Owner in hospital", on=TODAY,
                                            pause_until=TODAY + dt.timedelta(days=14))
    client.force_login(manager)

    page = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    written_off = client.get(reverse("customers:timeline", args=[customer.pk]), {"kind": "write_off"},
                             headers=HTMX).content.decode()
    exceptions = client.get(reverse("customers:timeline", args=[customer.pk]), {"kind": "exception"},
                            headers=HTMX).content.decode()

    # Offered among the timeline's filters, under its own name.
    assert re.search(r'value="write_off"[^>]*> Write-offs</label>', page)
    event = TimelineEvent.objects.for_subject(done).get()
    assert f'id="event-{event.pk}"' in written_off and "Write-off</span>" in written_off
    assert TimelineEvent.objects.for_subject(exception).get().summary not in written_off
    assert f'id="event-{event.pk}"' not in exceptions and "Owner in hospital" in exceptions


def test_a_write_off_recomputes_the_account_s_figures_as_of_today(
    manager, customer, invoices, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        write_off(manager, customer, invoices[1])

    behaviour = PaymentBehaviour.objects.get(customer=customer)
    assert behaviour.computed_on == TODAY
    # INV-1's EUR 300.00 and INV-3 (in yen, counted apart) are what is open now.
    assert (behaviour.open_invoices, behaviour.open_amount) == (1, Decimal("300.00"))
    assert behaviour.other_currency_open_invoices == 1
    # Written off is not paid: it does not count as an invoice the customer settled.
    assert behaviour.invoices_settled == 0


def test_a_write_off_withdraws_the_unposted_letter_that_asked_only_for_it(manager, customer, invoices):
    run = DunningRun.objects.create(run_date=TODAY)
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=TODAY)
    letter = DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer, status=ActionStatus.DONE, channel=Channel.LETTER,
        step=DunningStep.objects.get(policy__segment="prompt", action=StepAction.LETTER),
        planned_on=TODAY, pay_by=TODAY + dt.timedelta(days=10), done_at=timezone.now(),
        recipient_address="Main Street 1, 10115 Berlin",
    )
    letter.letter_pdf.save(f"dunning-{letter.pk}.pdf", ContentFile(b"%PDF-1.4\n% a dunning letter\n"))
    DunningActionInvoice.objects.create(action=letter, invoice=invoices[1], open_amount=Decimal("700.00"),
                                        currency="EUR")

    write_off(manager, customer, invoices[1])

    letter.refresh_from_db()
    assert letter.status == ActionStatus.SKIPPED
    assert TimelineEvent.objects.filter(customer=customer, summary__contains="withdrawn from the print queue"
                                        ).exists()


def test_the_service_refuses_an_invoice_paid_in_full(manager, customer, invoices):
    workspace.payment_record(customer=customer, amount=Decimal("700.00"), currency="EUR", received_on=TODAY,
                             allocations=[(invoices[1], Decimal("700.00"))])
    before = state()

    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, invoices[1])

    assert refused.value.message_dict == {"invoice": [
        "Invoice INV-2 is paid in full: nothing is open to write off."]}
    assert state() == before


def test_an_invoice_is_written_off_once(manager, customer, invoices):
    write_off(manager, customer, invoices[0])
    before = state()

    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, invoices[0], reason="Again")

    assert refused.value.message_dict == {"invoice": [
        "Invoice INV-1 is written off: nothing is open to write off."]}
    assert state() == before


def test_an_invoice_under_open_dispute_is_written_off_once_the_dispute_is_resolved(
    manager, customer, invoices
):
    dispute = workspace.dispute_open(customer=customer, actor=manager, invoice=invoices[1], on=TODAY,
                                     reason=DisputeReason.QUALITY, description="Scratched")
    before = state()

    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, invoices[1])

    assert refused.value.message_dict == {"invoice": [
        "INV-2 has an open dispute: resolve it first, then write off what it leaves open."]}
    assert state() == before
    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome="rejected",
                              note="Photos show no damage", on=TODAY)
    assert write_off(manager, customer, invoices[1]).amount == Decimal("700.00")


def test_an_invoice_under_an_open_promise_is_refused(manager, customer, invoices):
    workspace.promise_record(customer=customer, actor=manager, amount=Decimal("700.00"),
                             promised_on=TODAY + dt.timedelta(days=10), invoices=[invoices[1]], on=TODAY)
    before = state()

    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, invoices[1])

    assert refused.value.message_dict == {"invoice": [
        "INV-2 is covered by an open promise to pay: withdraw the promise first, then write off what is "
        "open."]}
    assert state() == before


@pytest.mark.parametrize("approved", [True, False])
def test_an_invoice_in_a_payment_plan_waiting_or_in_force_is_refused(
    manager, collector, customer, invoices, approved
):
    # A collector's plan within the limit is in force at once; above it, it waits for a manager.
    if not approved:
        CollectionRules.objects.update_or_create(pk=1,
                                                 defaults={"plan_approval_above_amount": Decimal("500")})
    half = Decimal("350.00")
    plan = workspace.plan_propose(customer=customer, actor=collector, invoices=[invoices[1]], on=TODAY,
                                  instalments=[(dt.date(2025, 8, 20), half), (dt.date(2025, 9, 20), half)])
    assert (plan.status == "active") is approved
    before = state()

    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, invoices[1])

    assert refused.value.message_dict == {"invoice": [
        "INV-2 is in a payment plan: end or withdraw the plan first, then write off what is open."]}
    assert state() == before


@pytest.mark.parametrize(("given", "field", "message"), [
    ({"reason": "  "}, "reason", "Say why what INV-1 still owes is written off."),
    ({"on": TODAY + dt.timedelta(days=1)}, "written_off_on", "A write-off cannot be dated after today."),
    ({"on": dt.date(2025, 7, 9)}, "written_off_on",
     "INV-1 was last paid or credited on 10 Jul 2025: what it still owes is written off on that day or "
     "later."),
    ({"amount": Decimal("100.00")}, "amount",
     "INV-1 has EUR 300.00 open now, not EUR 100.00: a write-off takes all that is open (to take off part, "
     "record a credit note). Confirm the write-off of EUR 300.00."),
])
def test_a_wrong_write_off_is_refused_with_a_clear_message_and_changes_nothing(
    manager, customer, invoices, given, field, message
):
    before = state()

    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, invoices[0], **given)

    assert refused.value.message_dict == {field: [message]}
    assert state() == before


def test_a_write_off_dated_before_the_invoice_was_issued_is_refused(manager, customer, invoices):
    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, invoices[1], on=dt.date(2025, 6, 14))

    assert refused.value.message_dict == {"written_off_on": [
        "INV-2 was issued on 15 Jun 2025: what it still owes is written off on that day or later."]}
    assert not WriteOff.objects.exists()


def test_an_invoice_of_another_account_is_refused(manager, customer, invoices, make_customer, make_invoice):
    other = make_customer(name="Other Ltd")
    theirs = make_invoice(other, issued=dt.date(2025, 6, 1), number="INV-9")
    before = state()

    with pytest.raises(ValidationError) as refused:
        write_off(manager, customer, theirs)

    assert refused.value.message_dict == {"invoice": ["Choose an invoice of this account."]}
    assert state() == before


def test_a_collector_may_not_write_off_even_on_their_own_account(collector, customer, invoices):
    before = state()

    with pytest.raises(PermissionDenied):
        write_off(collector, customer, invoices[0])

    assert state() == before


# --- Late fees and interest ------------------------------------------------------------------


@pytest.fixture
def charges(customer, invoices) -> dict[str, LateCharge]:
    """Two e-mailed notices of a cycle closed since: the first listed INV-1 and
    INV-2 and charged a late fee of EUR 40.00 and interest on each (EUR 3.00 on
    INV-1, EUR 5.00 on INV-2); the second listed INV-1 alone and charged a fee
    of EUR 25.00 (EUR 5.00 of it paid since) and EUR 1.50 of interest on it."""
    run = DunningRun.objects.create(run_date=dt.date(2025, 7, 20))
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=dt.date(2025, 7, 20),
                                        closed_on=TODAY)
    first_step, second_step = DunningStep.objects.filter(policy__segment="prompt").order_by("position")[:2]
    made = {}
    for step, listed, day in [(first_step, invoices[:2], dt.date(2025, 7, 20)),
                              (second_step, invoices[:1], dt.date(2025, 7, 30))]:
        notice = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=ActionStatus.DONE,
            channel=Channel.EMAIL, planned_on=day, pay_by=day + dt.timedelta(days=7), done_at=timezone.now(),
        )
        for invoice in listed:
            DunningActionInvoice.objects.create(action=notice, invoice=invoice, currency="EUR",
                                                open_amount=invoice.open_amount)
        made[notice.pk] = notice
    first, second = made.values()

    def charge(notice, kind, amount, *, invoice=None, open_amount=None):
        return LateCharge.objects.create(customer=customer, action=notice, invoice=invoice, kind=kind,
                                         currency="EUR", amount=Decimal(amount),
                                         open_amount=Decimal(open_amount or amount), basis="as charged")

    return {
        "fee on both": charge(first, ChargeKind.LATE_FEE, "40.00"),
        "interest on INV-1": charge(first, ChargeKind.INTEREST, "3.00", invoice=invoices[0]),
        "interest on INV-2": charge(first, ChargeKind.INTEREST, "5.00", invoice=invoices[1]),
        "fee on INV-1": charge(second, ChargeKind.LATE_FEE, "25.00", open_amount="20.00"),
        "interest again on INV-1": charge(second, ChargeKind.INTEREST, "1.50", invoice=invoices[0]),
    }


def owed(charges) -> dict[str, Decimal]:
    """The charges still owed (as every notice repeats them and the worklist
    asks for them), by name."""
    standing = dict(LateCharge.objects.standing().values_list("pk", "open_amount"))
    return {name: standing[c.pk] for name, c in charges.items() if c.pk in standing}


def test_writing_off_an_invoice_waives_its_interest_and_the_fees_of_notices_that_asked_only_for_it(
    manager, customer, invoices, charges
):
    write_off(manager, customer, invoices[0])

    # The notice that asked for INV-2 as well keeps its fee: the customer still owes INV-2.
    assert owed(charges) == {"fee on both": Decimal("40.00"), "interest on INV-2": Decimal("5.00")}
    fee = LateCharge.objects.get(pk=charges["fee on INV-1"].pk)
    assert (fee.waived_by, fee.open_amount) == (manager, Decimal("20.00"))  # what was paid of it stays paid
    assert fee.waiver_note == ("Written off with INV-1: Customer insolvent; the administrator pays nothing "
                               "to unsecured creditors")
    # On record in the write-off's own entry, with the amounts.
    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.WRITE_OFF)
    assert event.summary.startswith("EUR 300.00 still owed on INV-1 written off as bad debt by maria, and "
                                    "EUR 24.50 of late fees and interest on it: Customer insolvent")
    assert sorted((c["kind"], c["waived_amount"]) for c in event.details["charges_waived"]) == [
        ("interest", "1.50"), ("interest", "3.00"), ("late_fee", "20.00")]
    assert not TimelineEvent.objects.filter(customer=customer, kind=EventKind.EXCEPTION).exists()


def test_the_fee_of_a_notice_goes_with_the_last_of_its_invoices_written_off(
    manager, customer, invoices, charges
):
    write_off(manager, customer, invoices[0])
    write_off(manager, customer, invoices[1])

    assert owed(charges) == {}
    event = TimelineEvent.objects.filter(customer=customer, kind=EventKind.WRITE_OFF).order_by("pk").last()
    assert "and EUR 45.00 of late fees and interest on it" in event.summary


def test_a_notice_that_also_asked_for_an_invoice_since_paid_keeps_its_fee(
    manager, customer, invoices, charges
):
    """The customer was late with the invoice it paid too: that fee was not
    charged for the debt given up alone, and a fee is not split."""
    workspace.payment_record(customer=customer, amount=Decimal("700.00"), currency="EUR", received_on=TODAY,
                             allocations=[(invoices[1], Decimal("700.00"))])

    write_off(manager, customer, invoices[0])

    assert owed(charges) == {"fee on both": Decimal("40.00"), "interest on INV-2": Decimal("5.00")}


def ask_fee_waiver(collector, customer, invoice=None):
    return workspace.exception_request(customer=customer, actor=collector, kind=ExceptionKind.FEE_WAIVER,
                                       reason="Paid late because our delivery was late", on=TODAY,
                                       invoice=invoice)


def test_a_fee_waiver_waiting_for_a_manager_closes_when_the_write_off_waives_all_it_asked_for(
    client, collector, manager, customer, invoices, charges
):
    asked = ask_fee_waiver(collector, customer, invoices[1])  # the fee on both, the interest on INV-2

    write_off(manager, customer, invoices[0])
    asked.refresh_from_db()
    assert asked.status == ExceptionStatus.PENDING  # the fee on both still stands: INV-2 is owed

    write_off(manager, customer, invoices[1])

    asked.refresh_from_db()
    assert (asked.status, asked.decided_by) == (ExceptionStatus.APPROVED, manager)
    assert asked.decision_note == ("Nothing left to waive: the late fees and interest asked about went with "
                                   "the write-off of INV-2 on 4 Aug 2025.")
    # Out of the manager's queue, and on the timeline and worklist of the collector who asked.
    client.force_login(manager)
    assert "Paid late because our delivery was late" not in client.get(
        reverse("collections:approvals")).content.decode()
    event = TimelineEvent.objects.for_subject(asked).order_by("pk").last()
    assert event.summary == ("Exception (waive fees or interest) approved by maria: Nothing left to waive: "
                             "the late fees and interest asked about went with the write-off of INV-2 on 4 "
                             "Aug 2025.")
    assert WorkItem.objects.get(kind=WorkKind.DECIDED, assignee=collector).status == WorkStatus.OPEN
    # Decided, it is not decided again.
    with pytest.raises(ValidationError, match="already approved by maria"):
        workspace.exception_decide(request=asked, manager=manager, approve=True, note="Yes", on=TODAY)


def test_a_fee_waiver_that_still_covers_a_charge_left_standing_waits_for_its_manager(
    collector, manager, customer, invoices, charges
):
    on_account = ask_fee_waiver(collector, customer)
    on_inv_1 = ask_fee_waiver(collector, customer, invoices[0])

    write_off(manager, customer, invoices[0])

    # The notice that listed INV-2 too keeps its fee, which both requests cover.
    assert set(ExceptionRequest.objects.values_list("pk", "status")) == {
        (on_account.pk, ExceptionStatus.PENDING), (on_inv_1.pk, ExceptionStatus.PENDING)}


def test_an_account_whose_debt_and_charges_are_written_off_leaves_the_worklist_s_charges_left(
    manager, customer, invoices, charges
):
    write_off(manager, customer, invoices[0])
    write_off(manager, customer, invoices[1])

    worklist_refresh(on=TODAY)

    assert not WorkItem.objects.filter(customer=customer, kind=WorkKind.CHARGES,
                                       status=WorkStatus.OPEN).exists()


# --- Dunning --------------------------------------------------------------------------------


def test_a_written_off_invoice_is_no_longer_planned_by_a_dunning_run(make_account, manager):
    account = make_account()
    five_hundred, seven_hundred = account.invoices.order_by("total_amount")
    with frozen(DUE + dt.timedelta(days=1)):
        write_off(manager, account, seven_hundred, on=DUE + dt.timedelta(days=1))

    with frozen(DUE + dt.timedelta(days=3)):
        planned = run_plan(run=run_start(run_date=DUE + dt.timedelta(days=3)))

    assert planned == 1
    assert list(DunningAction.objects.get().lines.values_list("invoice__number", flat=True)) == [
        five_hundred.number]


def test_an_account_whose_overdue_invoices_are_all_written_off_is_not_chased(make_account, manager):
    account = make_account()
    with frozen(DUE + dt.timedelta(days=1)):
        for invoice in account.invoices.all():
            write_off(manager, account, invoice, on=DUE + dt.timedelta(days=1))

    with frozen(DUE + dt.timedelta(days=3)):
        planned = run_plan(run=run_start(run_date=DUE + dt.timedelta(days=3)))

    assert planned == 0
    assert not DunningAction.objects.exists()


# --- The page -------------------------------------------------------------------------------


def write_off_url(customer, invoice) -> str:
    return reverse("collections:invoice_write_off", args=[customer.pk, invoice.pk])


def form(**fields) -> dict:
    data = {"amount": "300.00", "written_off_on": "2025-08-04", "reason": "Customer insolvent"}
    data.update(fields)
    return data


def test_the_form_asks_the_manager_to_confirm_the_amount(client, manager, customer, invoices):
    client.force_login(manager)

    response = client.get(write_off_url(customer, invoices[0]), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Write off EUR 300.00 of INV-1?" in html
    assert 'name="amount" value="300.00"' in html
    # A panel, not the page.
    assert html.lstrip().startswith('<section id="action-panel"')


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_the_form_puts_the_keyboard_on_its_first_field_not_on_the_amount_it_carries(
    client, manager, customer, invoices, headers
):
    client.force_login(manager)

    opened = client.get(write_off_url(customer, invoices[0]), headers=headers).content.decode()
    refused = client.post(write_off_url(customer, invoices[0]), form(amount="250.00"),
                          headers=headers).content.decode()

    # The amount is hidden: focus put there goes nowhere, and the manager starts from the top of the page.
    for html in (opened, refused):
        assert re.search(r'<input type="date" name="written_off_on"[^>]*autofocus', html)
        assert not re.search(r'<input type="hidden" name="amount"[^>]*autofocus', html)


def test_without_htmx_the_form_is_a_page_of_its_own(client, manager, customer, invoices):
    client.force_login(manager)

    response = client.get(write_off_url(customer, invoices[2]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and "Write off JPY 30,000 of INV-3?" in html
    assert f'action="{write_off_url(customer, invoices[2])}"' in html


def test_a_manager_writes_off_an_invoice_and_is_sent_back_to_the_account(client, manager, customer, invoices):
    client.force_login(manager)

    response = client.post(write_off_url(customer, invoices[0]), form())

    assert response.status_code == 302
    assert response.url == reverse("customers:detail", args=[customer.pk]) + "#timeline"
    done = WriteOff.objects.get()
    assert (done.invoice, done.amount, done.written_off_on, done.reason, done.decided_by) == (
        invoices[0], Decimal("300.00"), dt.date(2025, 8, 4), "Customer insolvent", manager)
    assert Invoice.objects.get(number="INV-1").status == InvoiceStatus.WRITTEN_OFF
    page = client.get(response.url).content.decode()
    assert "EUR 300.00 of INV-1 written off; it is no longer chased." in page
    # Listed as written off, with the reason and who decided; no longer among the open invoices.
    written_off = page[page.index('id="write-offs-title"'):]
    assert "INV-1" in written_off and "Customer insolvent" in written_off and "maria" in written_off
    assert write_off_url(customer, invoices[0]) not in page


def test_with_htmx_the_account_parts_swap_in_place(client, manager, customer, invoices):
    client.force_login(manager)

    response = client.post(write_off_url(customer, invoices[0]), form(), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Retarget"] == "#action-panel"
    assert re.search(r'<section id="open-invoices"[^>]*hx-swap-oob="true"', html)
    assert "EUR 300.00 still owed on INV-1 written off as bad debt by maria: Customer insolvent" in html
    # The swapped-in invoices list it as written off, linked to its invoice's timeline, which shows the event.
    written_off = html[html.index('id="write-offs-title"'):]
    assert '<a href="?invoice=INV-1#timeline"' in written_off and "Customer insolvent" in written_off
    filtered = client.get(reverse("customers:detail", args=[customer.pk]), {"invoice": "INV-1"})
    assert f'id="event-{TimelineEvent.objects.get(kind=EventKind.WRITE_OFF).pk}"' in filtered.content.decode()
    assert WriteOff.objects.get().invoice == invoices[0]


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_the_manager_confirms_and_is_told_of_the_late_fees_and_interest_written_off_with_it(
    client, manager, customer, invoices, charges, headers
):
    client.force_login(manager)

    asked = client.get(write_off_url(customer, invoices[0]), headers=headers).content.decode()
    response = client.post(write_off_url(customer, invoices[0]), form(), headers=headers, follow=True)

    assert "Write off EUR 300.00 of INV-1 and EUR 24.50 of late fees and interest on it?" in asked
    page = response.content.decode()
    assert ("EUR 300.00 of INV-1 written off, and EUR 24.50 of late fees and interest on it; it is no longer "
            "chased.") in page
    # Still owed of the charges: what the notice that also asked for INV-2 charged.
    assert re.search(r'data-figure="charges"[^>]*>EUR 45.00</dd>', page)
    charges_owed = page[page.index('id="charges-title"'):]
    assert "Interest on INV-2" in charges_owed and "Interest on INV-1" not in charges_owed


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_a_write_off_without_a_reason_is_refused_and_changes_nothing(
    client, manager, customer, invoices, headers
):
    client.force_login(manager)
    before = state()

    response = client.post(write_off_url(customer, invoices[0]), form(reason=""), headers=headers)

    assert response.status_code == 422
    assert response.context["form"].errors["reason"] == ["This field is required."]
    assert state() == before


def test_a_payment_since_the_form_opened_asks_to_confirm_the_new_amount(client, manager, customer, invoices):
    client.force_login(manager)
    workspace.payment_record(customer=customer, amount=Decimal("100.00"), currency="EUR", received_on=TODAY,
                             allocations=[(invoices[0], Decimal("100.00"))])
    today = form(written_off_on="2025-08-05")
    before = state()

    response = client.post(write_off_url(customer, invoices[0]), today, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 422
    assert response.context["form"].non_field_errors() == [
        "INV-1 has EUR 200.00 open now, not EUR 300.00: a write-off takes all that is open (to take off "
        "part, record a credit note). Confirm the write-off of EUR 200.00."]
    assert state() == before
    # The panel now asks for what is open, and confirming it writes that off.
    assert "Write off EUR 200.00 of INV-1?" in html and 'name="amount" value="200.00"' in html
    client.post(write_off_url(customer, invoices[0]), {**today, "amount": "200.00"}, headers=HTMX)
    assert WriteOff.objects.get().amount == Decimal("200.00")


def test_an_invoice_no_longer_open_has_no_write_off_form(client, manager, customer, invoices):
    client.force_login(manager)
    client.post(write_off_url(customer, invoices[0]), form())

    assert client.get(write_off_url(customer, invoices[0])).status_code == 404
    response = client.post(write_off_url(customer, invoices[0]), form(), headers=HTMX)
    assert response.status_code == 422
    assert response.context["form"].non_field_errors() == [
        "Invoice INV-1 is written off: nothing is open to write off."]
    assert WriteOff.objects.count() == 1


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_collectors_and_viewers_may_not_write_off(client, collector, viewer, customer, invoices, headers):
    before = state()
    for user in (collector, viewer):
        client.force_login(user)
        assert client.get(write_off_url(customer, invoices[0]), headers=headers).status_code == 403
        assert client.post(write_off_url(customer, invoices[0]), form(), headers=headers).status_code == 403
    assert state() == before


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_writing_off_answers_only_get_and_post(client, manager, customer, invoices, method):
    client.force_login(manager)
    assert getattr(client, method)(write_off_url(customer, invoices[0])).status_code == 405
    assert not WriteOff.objects.exists()


def test_an_invoice_of_another_account_is_not_found(client, manager, customer, invoices, make_customer,
                                                   make_invoice):
    theirs = make_invoice(make_customer(name="Other Ltd"), issued=dt.date(2025, 6, 1))
    client.force_login(manager)

    assert client.get(write_off_url(customer, theirs)).status_code == 404
    assert client.post(write_off_url(customer, theirs), form()).status_code == 404
    assert not WriteOff.objects.exists()


def test_the_account_page_offers_managers_a_write_off_on_each_open_invoice(
    client, manager, collector, viewer, customer, invoices
):
    account_page = reverse("customers:detail", args=[customer.pk])
    client.force_login(manager)
    page = client.get(account_page).content.decode()
    assert all(write_off_url(customer, invoice) in page for invoice in invoices)
    for user in (collector, viewer):
        client.force_login(user)
        page = client.get(account_page).content.decode()
        assert not any(write_off_url(customer, invoice) in page for invoice in invoices)
        assert "Write off" not in page


# --- The admin -------------------------------------------------------------------------------


def test_the_admin_shows_write_offs_but_neither_enters_changes_nor_deletes_them(
    client, manager, customer, invoices
):
    """Entered there, a write-off would settle no invoice and record no
    decision; changed or deleted, the invoice would stay settled with no
    decision behind it, or one for another sum."""
    done = write_off(manager, customer, invoices[0])
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    before = state()
    fields = {"invoice": invoices[1].pk, "customer": customer.pk, "currency": "EUR", "amount": "700.00",
              "reason": "Gone", "written_off_on": "2025-08-05", "decided_by": manager.pk}

    listed = client.get(reverse("admin:collections_writeoff_changelist")).content.decode()
    assert "INV-1" in listed and "EUR 300.00" in listed
    assert client.post(reverse("admin:collections_writeoff_add"), fields).status_code == 403
    change = reverse("admin:collections_writeoff_change", args=[done.pk])
    assert client.post(change, {**fields, "invoice": invoices[0].pk, "amount": "5.00"}).status_code == 403
    shown = client.get(change)
    assert shown.status_code == 200 and 'name="amount"' not in shown.content.decode()  # read-only
    delete = reverse("admin:collections_writeoff_delete", args=[done.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert state() == before
