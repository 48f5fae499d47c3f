"""Which invoices dunning may chase (open, something owed, neither the invoice
nor its account held by a pause in force, less what a dispute of part of it
holds back) is read three ways: by the planner in SQL, one statement per batch
of accounts (dunning._eligible_totals, _insert_lines); by eligible_invoices()
in the ORM, for Coming up and delivery; and in Python by next_step(), for the
account's Dunning card. Over accounts with a bit of everything, on days as
pauses start and end, all three name the same invoices for the same amounts;
and the step the card says is due on a day is the one the run plans that day,
none where the card announces none (a step asking for terms the account has
already: an account on credit hold moved part-way to a ladder that ends with
a hold). The worklist, asking what overdue money nothing holds once a ladder
has no step left, reads disputes and promises as the planner does."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import connection

from ar_collections import workspace
from ar_collections.dunning import (
    _NOT_HELD,
    _eligible_totals,
    _held_sql,
    eligible_invoices,
    ladders,
    next_step,
    run_plan,
    run_start,
)
from ar_collections.models import (
    ActionStatus,
    DisputeReason,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    ExceptionKind,
    Invoice,
    InvoiceStatus,
    PauseKind,
)
from ar_collections.worklist import _overdue_unheld
from customers.models import Customer, Segment

from .conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

ON = DUE + dt.timedelta(days=20)  # when the commitments are made
DAYS = [ON, ON + dt.timedelta(days=9), ON + dt.timedelta(days=35), ON + dt.timedelta(days=80),
        ON + dt.timedelta(days=200)]


def invoices_of(customer, *amounts, currency="EUR", due=DUE) -> list[Invoice]:
    return [Invoice.objects.create(
        number=f"{customer.account_number}-{n}-{currency}", customer=customer,
        issue_date=due - dt.timedelta(days=30), due_date=due + dt.timedelta(days=n), currency=currency,
        total_amount=Decimal(a), open_amount=Decimal(a), status=InvoiceStatus.OPEN)
        for n, a in enumerate(amounts)]


@pytest.fixture
def accounts(make_customer, make_contact, collector, manager) -> list[Customer]:
    made = []

    def account(segment=Segment.PROMPT, **fields) -> Customer:
        customer = make_customer(segment=segment, **fields)
        make_contact(customer, name="Anna Clerk", is_primary_billing=True, email="anna@acme.test")
        made.append(customer)
        return customer

    with frozen(ON):
        # Nothing held; and one in two currencies, owing in each.
        plain = account()
        invoices_of(plain, "500.00", "700.00")
        two = account(Segment.SYSTEMATIC_LATE)
        invoices_of(two, "300.00")
        invoices_of(two, "90000", currency="JPY")
        invoices_of(two, "250.00", currency="USD", due=DUE + dt.timedelta(days=60))
        # Disputes: of part of one invoice, of all of another; then the part
        # disputed paid around (what is left is all disputed).
        disputes = account(Segment.OCCASIONAL_SLIP)
        part, whole, paid_around = invoices_of(disputes, "1000.00", "400.00", "600.00")
        for invoice, amount in ((part, "250.00"), (whole, None), (paid_around, "200.00")):
            workspace.dispute_open(customer=disputes, actor=collector, invoice=invoice,
                                   reason=DisputeReason.PRICE, description="Price differs", on=ON,
                                   amount=Decimal(amount) if amount else None)
        workspace.payment_record(customer=disputes, amount=Decimal("400.00"), currency="EUR", received_on=ON,
                                 allocations=[(paid_around, Decimal("400.00"))], actor=collector)
        # Promises: of two invoices in full, and of one paid in part since.
        promises = account()
        first, second, third = invoices_of(promises, "100.00", "200.00", "300.00")
        workspace.promise_record(customer=promises, actor=collector, amount=Decimal("300.00"),
                                 promised_on=ON + dt.timedelta(days=7), invoices=[first, second], on=ON)
        workspace.promise_record(customer=promises, actor=collector, amount=Decimal("150.00"),
                                 promised_on=ON + dt.timedelta(days=12), invoices=[third], on=ON)
        workspace.payment_record(customer=promises, amount=Decimal("50.00"), currency="EUR", received_on=ON,
                                 allocations=[(third, Decimal("50.00"))], actor=collector)
        # A payment plan over two of three invoices, one of them credited in part.
        plan = account(Segment.DISTRESSED)
        a, b, _ = invoices_of(plan, "600.00", "600.00", "800.00")
        workspace.credit_note_record(customer=plan, actor=manager, invoice=b, amount=Decimal("100.00"),
                                     reason="Damaged goods", issued_on=ON)
        b.refresh_from_db()
        workspace.plan_propose(customer=plan, actor=manager, invoices=[a, b], on=ON, instalments=[
            (ON + dt.timedelta(days=10), Decimal("550.00")), (ON + dt.timedelta(days=40), Decimal("550.00"))])
        # An approved exception pausing the account; a manual hold of one invoice.
        exception = account(Segment.SPECIAL_BOND)
        invoices_of(exception, "5000.00", "120.00")
        request = workspace.exception_request(customer=exception, actor=collector, kind=ExceptionKind.PAUSE,
                                              reason="Owner in hospital", on=ON,
                                              pause_until=ON + dt.timedelta(days=30))
        workspace.exception_decide(request=request, manager=manager, approve=True, note="Yes", on=ON)
        hold = account()
        held, _ = invoices_of(hold, "80.00", "90.00", currency="USD")
        workspace.pause_set(customer=hold, actor=collector, ends_on=ON + dt.timedelta(days=14),
                            reason="Waiting for their new AP clerk", on=ON, invoice=held)
        # Paid in part, credited in part, paid in full: only what is open counts.
        paid = account(Segment.NEW)
        p1, p2, p3 = invoices_of(paid, "100.00", "100.00", "100.00")
        workspace.payment_record(customer=paid, amount=Decimal("160.00"), currency="EUR", received_on=ON,
                                 allocations=[(p1, Decimal("100.00")), (p2, Decimal("60.00"))],
                                 actor=collector)
        workspace.credit_note_record(customer=paid, actor=manager, invoice=p3, amount=Decimal("30.00"),
                                     reason="Discount agreed", issued_on=ON)
        # Not yet due.
        invoices_of(account(), "999.00", due=ON + dt.timedelta(days=60))
        # Extended terms for the whole account: they hold the invoices owed
        # when granted that fall due before they end, not one falling due
        # after, nor one issued since.
        terms = account(Segment.SYSTEMATIC_LATE)
        invoices_of(terms, "400.00", "150.00")
        for n, (issued, due) in enumerate([(ON - dt.timedelta(days=10), ON + dt.timedelta(days=50)),
                                           (ON + dt.timedelta(days=5), ON + dt.timedelta(days=20))]):
            Invoice.objects.create(number=f"{terms.account_number}-T{n}", customer=terms, issue_date=issued,
                                   due_date=due, currency="EUR", total_amount=Decimal("250.00"),
                                   open_amount=Decimal("250.00"), status=InvoiceStatus.OPEN)
        asked = workspace.exception_request(
            customer=terms, actor=collector, kind=ExceptionKind.EXTENDED_TERMS, reason="A slow quarter",
            on=ON, pause_until=ON + dt.timedelta(days=30))
        workspace.exception_decide(request=asked, manager=manager, approve=True, note="Yes", on=ON)
        # On credit hold, its systematic-late ladder taken up to the letter
        # (step 3), then moved to the distressed ladder, whose next step is
        # the hold it has already.
        switched = account(Segment.SYSTEMATIC_LATE, on_credit_hold=True)
        invoices_of(switched, "800.00", "450.00")
        run = DunningRun.objects.create(run_date=DUE + dt.timedelta(days=12))
        cycle = DunningCycle.objects.create(customer=switched, number=1, opened_on=DUE - dt.timedelta(days=3))
        for step in DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position__lte=3):
            day = DUE + dt.timedelta(days=step.day_offset)
            DunningAction.objects.create(run=run, cycle=cycle, customer=switched, step=step, planned_on=day,
                                         pay_by=day + dt.timedelta(days=step.pay_by_days),
                                         status=ActionStatus.DONE)
        switched.segment = Segment.DISTRESSED
        switched.save(update_fields=["segment"])
    return made


def by_orm(on: dt.date) -> dict[int, Decimal]:
    return {i.pk: i.asked_amount for i in eligible_invoices(on=on)}


def by_planner(accounts, on: dt.date) -> dict[int, Decimal]:
    """The invoices the planner's rules let through, and what it asks of each,
    as _insert_lines lists them on a notice (without its step's date bound)."""
    pks = [a.pk for a in accounts]
    held, params = _held_sql(on, min(pks), max(pks))
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH {held}
            SELECT i.id, i.open_amount - COALESCE(h.disputed, 0)
            FROM collections_invoice i LEFT JOIN held h ON h.invoice_id = i.id
            WHERE i.customer_id BETWEEN %s AND %s AND i.status = 'open' AND {_NOT_HELD}
        """, [*params, min(pks), max(pks)])
        return dict(cursor.fetchall())


def planner_totals(accounts, on: dt.date) -> dict[tuple[int, str], tuple[Decimal, dt.date]]:
    pks = [a.pk for a in accounts]
    return {(c, cur): (total, oldest)
            for c, cur, total, oldest in _eligible_totals(ladders(), on=on, lo=min(pks), hi=max(pks))}


def orm_totals(accounts, on: dt.date) -> dict[tuple[int, str], tuple[Decimal, dt.date]]:
    book, asked = ladders(), by_orm(on)
    segment = {a.pk: a.segment for a in accounts}
    totals: dict = defaultdict(lambda: (Decimal("0"), dt.date.max))
    for invoice in Invoice.objects.filter(pk__in=asked):
        if invoice.due_date <= on - dt.timedelta(days=book[segment[invoice.customer_id]].reach):
            total, oldest = totals[invoice.customer_id, invoice.currency]
            totals[invoice.customer_id, invoice.currency] = (total + asked[invoice.pk],
                                                             min(oldest, invoice.due_date))
    return dict(totals)


def test_the_data_set_holds_what_it_is_meant_to(accounts):
    asked = by_orm(ON)
    eligible = Invoice.objects.filter(pk__in=asked)
    assert eligible.filter(currency="JPY").exists() and eligible.filter(currency="USD").exists()
    # The invoice disputed in part is asked for the rest; the one disputed in whole is held.
    assert sorted(asked[i.pk] for i in eligible.filter(customer=accounts[2])) == [Decimal("750.00")]
    # The plan holds the two invoices it covers, not the third.
    assert list(eligible.filter(customer=accounts[4]).values_list("number", flat=True)) == [
        f"{accounts[4].account_number}-2-EUR"]
    assert not eligible.filter(customer=accounts[5]).exists()  # the account paused whole
    # The terms hold the two invoices falling due before they end, owed when granted.
    assert sorted(eligible.filter(customer=accounts[9]).values_list("number", flat=True)) == [
        f"{accounts[9].account_number}-T0", f"{accounts[9].account_number}-T1"]


@pytest.mark.parametrize("day", DAYS)
def test_the_planner_and_eligible_invoices_let_the_same_invoices_through_asking_the_same(accounts, day):
    assert by_planner(accounts, day) == by_orm(day)


@pytest.mark.parametrize("day", DAYS)
def test_the_planner_and_eligible_invoices_count_the_same_invoices_for_the_same_amounts(accounts, day):
    assert planner_totals(accounts, day) == orm_totals(accounts, day)


@pytest.mark.parametrize("day", DAYS)
def test_the_dunning_card_holds_back_the_invoices_eligible_invoices_leaves_out(accounts, day):
    asked = by_orm(day)
    for account in accounts:
        open_ids = set(account.invoices.filter(status=InvoiceStatus.OPEN, open_amount__gt=0)
                       .values_list("pk", flat=True))
        with frozen(day):
            held = {invoice.pk for invoice, _ in next_step(account, on=day).held}
        assert held == open_ids - set(asked), account.name


@pytest.mark.parametrize("day", DAYS)
def test_the_run_plans_the_step_the_dunning_card_says_is_due_that_day_and_no_other(accounts, day):
    with frozen(day):
        cards = {account.pk: next_step(account, on=day) for account in accounts}
        run_plan(run=run_start(run_date=day))
    planned = {action.customer_id: (action.step_id, sorted(action.lines.values_list("invoice_id", flat=True)))
               for action in DunningAction.objects.filter(run__run_date=day)}
    announced = {pk: (card.step.pk, sorted(invoice.pk for invoice in card.invoices))
                 for pk, card in cards.items()
                 if card.step and card.due_on == day and "below the policy's minimum" not in card.note}
    assert planned == announced
    switched = accounts[-1]
    assert cards[switched.pk].step is None, cards[switched.pk]


@pytest.mark.parametrize("day", DAYS)
def test_the_worklist_leaves_to_chase_what_the_planner_asks_where_disputes_and_promises_hold(accounts, day):
    """Of the accounts nothing but disputes and promises hold (the worklist
    reads a plan waiting for a manager, a hold and an exception otherwise:
    those accounts are left out), the overdue money a finished ladder's item
    is about is what the planner would ask for: a dispute of part of an
    invoice holds that part, not the invoice."""
    others = [PauseKind.PAYMENT_PLAN, PauseKind.EXCEPTION, PauseKind.MANUAL_HOLD]
    compared = [a for a in accounts if not a.dunning_pauses.filter(kind__in=others).exists()]
    disputes = accounts[2]
    assert disputes in compared and len(compared) == len(accounts) - 4  # extended terms, an exception too

    asked = {pk: amount for pk, amount in by_orm(day).items()
             if Invoice.objects.filter(pk=pk, customer__in=compared, due_date__lt=day).exists()}
    unheld = {i.pk: i.unheld_amount for i in _overdue_unheld(on=day).filter(customer__in=compared)}
    assert unheld == asked
