"""The account page's "Promises, plans and disputes" box shows what of a
plan's instalment has come in, as a promise due shows what was paid so far."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace
from ar_collections.dunning import ladders
from ar_collections.models import InstalmentStatus

from .conftest import frozen

TODAY = dt.date(2026, 11, 20)


@pytest.fixture
def gbp_account(make_customer, make_contact, make_invoice):
    customer = make_customer(name="Harbour Supplies", currency="GBP")
    make_contact(customer, name="Anna Clerk", is_primary_billing=True)
    make_invoice(customer, issued=dt.date(2026, 9, 1), due=dt.date(2026, 10, 1), amount="13417.04",
                 currency="GBP")
    return customer


def plan_of(account, collector, manager, count: int):
    """A plan of `count` monthly instalments from 15 Dec 2026, the first two
    of GBP 6,708.52 or so (more ask for no more than the invoice owes, so the
    others are small), approved by a manager (a plan in another currency than
    the default always waits for one)."""
    invoice = account.invoices.get()
    first = [(dt.date(2026, 12, 15), Decimal("6708.52")), (dt.date(2027, 1, 15), Decimal("6708.52"))]
    rest = [(dt.date(2027, 1, 15) + dt.timedelta(days=30 * n), Decimal("0.01")) for n in range(1, count - 1)]
    if rest:
        first[1] = (first[1][0], first[1][1] - Decimal("0.01") * len(rest))
    with frozen(TODAY):
        plan = workspace.plan_propose(customer=account, actor=collector, invoices=[invoice], on=TODAY,
                                      instalments=first + rest)
        return workspace.plan_decide(plan=plan, manager=manager, approve=True, note="Fine.", on=TODAY)


def commitments(response) -> str:
    page = response.content.decode()
    box = re.search(r'<section id="commitments".*?</section>', page, re.S).group(0)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", box)).split())


@pytest.fixture
def agreed_plan(gbp_account, collector, manager):
    return plan_of(gbp_account, collector, manager, 2)


def test_a_part_paid_instalment_shows_what_was_paid_and_what_is_still_due(
    client, collector, gbp_account, agreed_plan
):
    with frozen(TODAY):
        workspace.payment_record(customer=gbp_account, amount=Decimal("5000.00"), currency="GBP",
                                 received_on=TODAY, reference="BANK-1",
                                 allocations=[(gbp_account.invoices.get(), Decimal("5000.00"))])
    client.force_login(collector)

    with frozen(TODAY):
        box = commitments(client.get(reverse("customers:detail", args=[gbp_account.pk])))

    assert "15 Dec 2026 · GBP 6,708.52 · Due · GBP 5,000.00 paid, GBP 1,708.52 still due" in box
    # The next instalment is untouched: the money counts towards the earliest first.
    assert "15 Jan 2027 · GBP 6,708.52 · Due" in box
    assert "15 Jan 2027 · GBP 6,708.52 · Due · " not in box


def test_an_instalment_nothing_was_paid_on_shows_only_that_it_is_due(client, collector, gbp_account,
                                                                     agreed_plan):
    client.force_login(collector)

    with frozen(TODAY):
        box = commitments(client.get(reverse("customers:detail", args=[gbp_account.pk])))

    assert "15 Dec 2026 · GBP 6,708.52 · Due 15 Jan 2027" in box
    assert "paid," not in box


def test_money_beyond_an_instalment_shows_on_the_next_once_the_first_is_paid(
    client, collector, gbp_account, agreed_plan
):
    with frozen(TODAY):
        workspace.payment_record(customer=gbp_account, amount=Decimal("8000.00"), currency="GBP",
                                 received_on=TODAY, reference="BANK-1",
                                 allocations=[(gbp_account.invoices.get(), Decimal("8000.00"))])
    client.force_login(collector)

    with frozen(TODAY):
        box = commitments(client.get(reverse("customers:detail", args=[gbp_account.pk])))

    assert agreed_plan.instalments.get(number=1).status == InstalmentStatus.PAID
    assert "15 Dec 2026 · GBP 6,708.52 · Paid 15 Jan" in box
    assert "15 Jan 2027 · GBP 6,708.52 · Due · GBP 1,291.48 paid, GBP 5,417.04 still due" in box


@pytest.mark.parametrize("count", [2, 12])
def test_the_account_page_costs_the_same_queries_for_a_plan_of_2_or_12_instalments(
    client, collector, manager, gbp_account, django_assert_num_queries, count
):
    plan_of(gbp_account, collector, manager, count)
    client.force_login(collector)

    # The plan's invoices and instalments are read with the plans, one query
    # each, and what is still due of each instalment is worked out from them.
    # (33 with the card's ordering rhythm: the account's last order days; 39
    # as the plan holds every open invoice: the preview again for the day
    # after the hold ends, to say when dunning starts again; 35 with the open
    # cycle, the pauses and the open invoices read once for the Dunning card,
    # the preview and the invoices, the preview of the later day included;
    # one more for the Payments card, which has none to list; 34 with the
    # ladders kept from an earlier page, their stamp read in place of them;
    # 37 with the account's open work items, and whether a request waiting for
    # a manager holds the step, asked by each of the two previews.)
    ladders()
    with frozen(TODAY), django_assert_num_queries(37):
        response = client.get(reverse("customers:detail", args=[gbp_account.pk]))

    assert commitments(response).count("· Due") == count
