"""Extended terms for the whole account hold what the manager approved: the
open invoices issued by the day they were granted and falling due before they
end (workspace.extended_terms_cover). Dunning holds those and no others: an
invoice falling due after the end, or issued after the terms were granted,
follows its own terms, its reminder before the due date included, on the
planner's run, in eligible_invoices (Coming up, delivery) and on the account
page's Dunning card alike.

Acme (systematic late payer: a reminder 3 days before an invoice falls due)
is granted terms on 2 Mar 2026 until 1 Apr 2026. It owes OLD (due 20 Feb,
covered), LATER (issued 25 Feb, due 11 Apr: after the end) and NEW (issued
7 Mar, after the grant, due 17 Mar)."""

from __future__ import annotations

import datetime as dt

import pytest

from ar_collections import workspace
from ar_collections.dunning import eligible_invoices, next_step, run_plan, run_start
from ar_collections.models import DunningAction, ExceptionKind
from customers.models import Segment

from .conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

GRANTED = DUE
END = DUE + dt.timedelta(days=30)
REMINDED = DUE + dt.timedelta(days=12)  # 3 days before NEW falls due


@pytest.fixture
def acme(make_customer, make_contact, make_invoice, collector, manager):
    customer = make_customer(name="Acme Tools", segment=Segment.SYSTEMATIC_LATE)
    make_contact(customer, name="Anna Clerk", is_primary_billing=True, email="anna@acme.test")
    with frozen(GRANTED):
        make_invoice(customer, number="OLD", issued=DUE - dt.timedelta(days=40),
                           due=DUE - dt.timedelta(days=10), amount="900.00")
        make_invoice(customer, number="LATER", issued=DUE - dt.timedelta(days=5),
                             due=END + dt.timedelta(days=10), amount="300.00")
        asked = workspace.exception_request(customer=customer, actor=collector,
                                            kind=ExceptionKind.EXTENDED_TERMS, pause_until=END,
                                            reason="Their own customer pays them late", on=GRANTED)
        workspace.exception_decide(request=asked, manager=manager, approve=True, note="Agreed", on=GRANTED)
    with frozen(DUE + dt.timedelta(days=5)):
        make_invoice(customer, number="NEW", issued=DUE + dt.timedelta(days=5),
                           due=DUE + dt.timedelta(days=15), amount="200.00")
    return customer


def numbers(invoices) -> list[str]:
    return sorted(invoice.number for invoice in invoices)


@pytest.mark.parametrize("day", [GRANTED, REMINDED, END])
def test_account_wide_terms_hold_only_the_invoices_issued_by_then_that_fall_due_before_they_end(acme, day):
    customer = acme

    with frozen(day):
        card = next_step(customer, on=day)
    chased = eligible_invoices(on=day).filter(customer=customer)

    assert numbers(chased) == ["LATER", "NEW"]
    assert [(invoice.number, why) for invoice, why in card.held] == [
        ("OLD", "Approved exception until 1 Apr 2026")]


def test_an_invoice_issued_after_the_terms_were_granted_gets_its_reminder_before_it_falls_due(acme):
    customer = acme

    with frozen(REMINDED):
        card = next_step(customer, on=REMINDED)
        run_plan(run=run_start(run_date=REMINDED))

    action = DunningAction.objects.get(customer=customer)
    assert action.step.day_offset == -3
    assert numbers(line.invoice for line in action.lines.select_related("invoice")) == ["NEW"]
    assert (card.step, card.due_on, numbers(card.invoices)) == (action.step, REMINDED, ["NEW"])


def test_the_invoices_the_terms_hold_are_chased_again_once_they_end(acme):
    customer = acme
    day = END + dt.timedelta(days=1)

    with frozen(day):
        card = next_step(customer, on=day)

    assert not card.held
    assert numbers(eligible_invoices(on=day).filter(customer=customer)) == ["LATER", "NEW", "OLD"]
