import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import services
from ar_collections.models import Invoice, PaymentBehaviour
from ar_collections.services import behaviour_refresh
from customers.models import EventKind, Segment, TimelineEvent

ON = dt.date(2026, 6, 30)
D = dt.date


@pytest.fixture
def history(customer, make_invoice):
    """Four settled invoices (two late) and five open ones, one in USD."""
    make_invoice(customer, issued=D(2026, 1, 1), due=D(2026, 1, 31), amount="100.00", paid_on=D(2026, 1, 31))
    make_invoice(customer, issued=D(2026, 1, 29), due=D(2026, 2, 28), amount="300.00", paid_on=D(2026, 3, 10))
    make_invoice(customer, issued=D(2026, 3, 31), due=D(2026, 4, 30), amount="100.00", paid_on=D(2026, 5, 30))
    make_invoice(customer, issued=D(2026, 5, 1), due=D(2026, 5, 31), amount="200.00", paid_on=D(2026, 5, 25))
    make_invoice(customer, issued=D(2026, 6, 15), due=D(2026, 7, 15), amount="50.00")
    make_invoice(customer, issued=D(2026, 5, 21), due=D(2026, 6, 20), amount="120.50")
    make_invoice(customer, issued=D(2026, 3, 16), due=D(2026, 4, 15), amount="80.00")
    partly = make_invoice(customer, issued=D(2026, 1, 30), due=D(2026, 3, 1), amount="1000.00")
    Invoice.objects.filter(pk=partly.pk).update(open_amount=Decimal("400.00"))
    make_invoice(customer, issued=D(2026, 5, 2), due=D(2026, 6, 1), amount="999.00", currency="USD")
    return customer


def test_it_computes_lateness_from_settled_invoices(history):
    behaviour_refresh(on=ON)

    b = PaymentBehaviour.objects.get(customer=history)
    assert b.computed_on == ON
    assert (b.invoices_settled, b.invoices_settled_late) == (4, 2)
    assert b.avg_days_late == Decimal("10.00")  # (0 + 10 + 30 + 0) / 4; early counts as 0
    assert b.weighted_days_late == Decimal("8.57")  # (10×300 + 30×100) / 700
    assert b.share_paid_late == Decimal("0.5000")
    assert b.last_days_late == 30  # the most recently settled invoice
    assert b.avg_days_late_90d == Decimal("15.00")
    assert b.avg_days_late_365d == Decimal("10.00")
    assert b.trend_days == Decimal("5.00")


def test_it_ages_open_amounts_in_the_account_currency(history):
    behaviour_refresh(on=ON)

    b = PaymentBehaviour.objects.get(customer=history)
    assert (b.open_invoices, b.overdue_invoices, b.max_days_overdue) == (4, 3, 121)  # the USD one apart
    assert b.open_amount == Decimal("650.50")
    assert b.overdue_amount == Decimal("600.50")
    assert [amount for _, amount in b.aging_buckets()] == [
        Decimal("50.00"), Decimal("120.50"), Decimal("0.00"), Decimal("80.00"), Decimal("400.00")
    ]
    assert b.other_currency_open_invoices == 1


def test_a_bucket_boundary_is_counted_once(customer, make_invoice):
    make_invoice(customer, issued=D(2026, 5, 1), due=ON - dt.timedelta(days=30), amount="10.00")
    make_invoice(customer, issued=D(2026, 4, 1), due=ON - dt.timedelta(days=31), amount="20.00")
    make_invoice(customer, issued=D(2026, 6, 1), due=ON, amount="40.00")

    behaviour_refresh(on=ON)

    b = PaymentBehaviour.objects.get(customer=customer)
    assert b.aging_current_amount == Decimal("40.00")  # due today is not yet late
    assert b.aging_1_30_amount == Decimal("10.00")
    assert b.aging_31_60_amount == Decimal("20.00")
    assert b.open_amount == sum(amount for _, amount in b.aging_buckets())


def test_a_customer_without_invoices_gets_zeroes(customer):
    behaviour_refresh(on=ON)

    b = PaymentBehaviour.objects.get(customer=customer)
    assert (b.invoices_settled, b.open_amount, b.avg_days_late_90d, b.last_days_late) == (
        0, Decimal("0.00"), None, None
    )


def test_the_segment_and_its_reason_are_set_and_the_change_recorded(history):
    behaviour_refresh(on=ON)

    history.refresh_from_db()
    assert history.segment == Segment.DISTRESSED
    assert history.segment_reason == (
        "EUR 480.00 of EUR 650.50 open is 60 days or more past due; the oldest 121 days."
    )
    event = TimelineEvent.objects.get(customer=history, kind=EventKind.SEGMENT_CHANGED)
    assert event.actor is None
    assert event.details["before"]["segment"] == Segment.NEW
    assert event.details["after"] == {"segment": "distressed", "reason": history.segment_reason}


def test_refreshing_again_records_no_second_change(history):
    behaviour_refresh(on=ON)
    behaviour_refresh(on=ON)

    assert TimelineEvent.objects.filter(kind=EventKind.SEGMENT_CHANGED).count() == 1
    assert PaymentBehaviour.objects.count() == 1


def test_a_prompt_payer_is_told_apart_from_an_occasional_slip(make_customer, make_invoice):
    prompt, slip = make_customer(), make_customer()
    for month in range(1, 6):
        due = D(2026, month, 28)
        make_invoice(prompt, issued=due - dt.timedelta(days=30), due=due, paid_on=due)
        paid = due + dt.timedelta(days=9) if month == 5 else due
        make_invoice(slip, issued=due - dt.timedelta(days=30), due=due, paid_on=paid)

    behaviour_refresh(on=ON)

    prompt.refresh_from_db()
    slip.refresh_from_db()
    assert (prompt.segment, prompt.segment_reason) == ("prompt", "Paid 5 of 5 invoices on time.")
    assert (slip.segment, slip.segment_reason) == (
        "occasional_slip", "Paid 4 of 5 invoices on time; last one 9 days late."
    )


def test_batches_give_the_same_figures_as_one_pass(monkeypatch, make_customer, make_invoice):
    customers = [make_customer() for _ in range(5)]
    for i, c in enumerate(customers):
        make_invoice(c, issued=D(2026, 1, 1), due=D(2026, 1, 31), amount=f"{i + 1}00.00",
                     paid_on=D(2026, 2, i + 1))
    monkeypatch.setattr(services, "BEHAVIOUR_BATCH_SIZE", 2)

    assert behaviour_refresh(on=ON) == 5

    late = dict(PaymentBehaviour.objects.values_list("customer_id", "last_days_late"))
    assert late == {c.pk: i + 1 for i, c in enumerate(customers)}


def test_only_the_named_customers_are_refreshed(make_customer):
    make_customer()
    second = make_customer()

    assert behaviour_refresh(on=ON, customer_ids=[second.pk]) == 1

    assert list(PaymentBehaviour.objects.values_list("customer_id", flat=True)) == [second.pk]


def test_statements_do_not_grow_with_the_number_of_customers(
    make_customer, make_invoice, django_assert_max_num_queries, monkeypatch
):
    monkeypatch.setattr(services, "BEHAVIOUR_BATCH_SIZE", 100)
    for _ in range(30):
        c = make_customer()
        make_invoice(c, issued=D(2026, 1, 1), paid_on=D(2026, 2, 15))
        make_invoice(c, issued=D(2026, 5, 1))

    # ids, lock, broken promises, aggregate, upsert, segment update, events (+ savepoint/transaction)
    with django_assert_max_num_queries(9):
        behaviour_refresh(on=ON)


def _on_time_history(customer, make_invoice, n: int = 8) -> None:
    for i in range(n):
        due = ON - dt.timedelta(days=20 + 15 * i)
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount="100.00", paid_on=due)


def test_a_small_old_invoice_beside_a_large_one_due_yesterday_leaves_a_prompt_payer_prompt(
    make_customer, make_invoice
):
    customer = make_customer(customer_since=D(2024, 1, 1))
    _on_time_history(customer, make_invoice)
    make_invoice(customer, issued=ON - dt.timedelta(days=95), due=ON - dt.timedelta(days=65), amount="10.00")
    make_invoice(customer, issued=ON - dt.timedelta(days=31), due=ON - dt.timedelta(days=1), amount="1000.00")

    behaviour_refresh(on=ON)

    customer.refresh_from_db()
    assert (customer.segment, customer.segment_reason) == (Segment.PROMPT, "Paid 8 of 8 invoices on time.")


def test_an_old_invoice_in_another_currency_does_not_date_the_account_s_own_debt(make_customer, make_invoice):
    customer = make_customer(customer_since=D(2024, 1, 1), currency="EUR")
    _on_time_history(customer, make_invoice)
    make_invoice(customer, issued=ON - dt.timedelta(days=120), due=ON - dt.timedelta(days=90), amount="50.00",
                 currency="USD")
    make_invoice(customer, issued=ON - dt.timedelta(days=35), due=ON - dt.timedelta(days=5), amount="600.00")
    make_invoice(customer, issued=ON - dt.timedelta(days=10), due=ON + dt.timedelta(days=20), amount="400.00")

    behaviour_refresh(on=ON)

    customer.refresh_from_db()
    # Most days overdue counts it (days need no exchange rate); the segment weighs the euros alone.
    assert PaymentBehaviour.objects.get(customer=customer).max_days_overdue == 90
    assert customer.segment == Segment.PROMPT, customer.segment_reason


def test_a_customer_of_six_calendar_months_has_history_enough(make_customer, make_invoice):
    customer = make_customer(customer_since=D(2025, 12, 30))  # 182 days before ON
    _on_time_history(customer, make_invoice)

    behaviour_refresh(on=ON)

    customer.refresh_from_db()
    assert customer.segment == Segment.PROMPT, customer.segment_reason


def test_lateness_is_weighted_by_amounts_in_the_accounts_currency_only(customer, make_invoice):
    """JPY 900,000 outweighs EUR 1,000 only as a number: without exchange rates
    the weights are the account's own currency's amounts."""
    make_invoice(customer, issued=D(2026, 1, 1), due=D(2026, 1, 31), amount="1000.00", paid_on=D(2026, 2, 10))
    make_invoice(customer, issued=D(2026, 2, 1), due=D(2026, 3, 3), amount="900000", currency="JPY",
                 paid_on=D(2026, 3, 3))

    behaviour_refresh(on=ON)

    b = PaymentBehaviour.objects.get(customer=customer)
    assert b.avg_days_late == Decimal("5.00")  # (10 + 0) / 2: a count weighs every invoice alike
    assert b.weighted_days_late == Decimal("10.00")  # the EUR invoice's 10 days, not 10×1,000 / 901,000


def test_an_account_paid_only_in_other_currencies_weighs_its_lateness_evenly(customer, make_invoice):
    make_invoice(customer, issued=D(2026, 1, 1), due=D(2026, 1, 31), amount="500.00", currency="USD",
                 paid_on=D(2026, 2, 6))

    behaviour_refresh(on=ON)

    assert PaymentBehaviour.objects.get(customer=customer).weighted_days_late == Decimal("6.00")
