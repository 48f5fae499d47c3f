"""rows_insert: the planner's column-by-column insert, on PostgreSQL; CompiledRead,
the reads compiled once a process; DaysAfter, a day plus days on either database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DataError, connection
from django.db.models import Value

from ar_collections.models import DunningCycle, Payment
from arcrm.db import CompiledRead, DaysAfter, rows_insert
from customers.models import Customer

OPENED = dt.date(2026, 3, 2)


def test_rows_are_inserted_with_the_defaults_of_the_fields_not_given(make_customer):
    first, second = make_customer(), make_customer()
    assert connection.vendor == "postgresql"

    rows_insert(DunningCycle, {"customer_id": [first.pk, second.pk], "number": [1, 4],
                               "opened_on": [OPENED, OPENED + dt.timedelta(days=1)]})

    rows = list(DunningCycle.objects.order_by("customer_id").values_list(
        "customer_id", "number", "opened_on", "closed_on", "cause", "invoices_resent_on"))
    assert rows == [(first.pk, 1, OPENED, None, "", None),
                    (second.pk, 4, OPENED + dt.timedelta(days=1), None, "", None)]


def test_a_row_breaking_a_unique_constraint_is_left_out_and_the_others_go_in(make_customer):
    first, second = make_customer(), make_customer()
    DunningCycle.objects.create(customer=first, number=1, opened_on=OPENED)

    # A second open cycle for the first account: refused by its partial unique index.
    rows_insert(DunningCycle, {"customer_id": [first.pk, second.pk], "number": [2, 1],
                               "opened_on": [OPENED, OPENED]})

    cycles = sorted(DunningCycle.objects.values_list("customer_id", "number"))
    assert cycles == [(first.pk, 1), (second.pk, 1)]


def test_columns_of_different_lengths_are_refused_before_anything_is_written(make_customer):
    customer = make_customer()

    with pytest.raises(ValueError, match="every column needs a value for every row"):
        rows_insert(DunningCycle, {"customer_id": [customer.pk], "number": [1, 2], "opened_on": [OPENED]})

    assert not DunningCycle.objects.exists()
    rows_insert(DunningCycle, {"customer_id": [], "number": [], "opened_on": []})  # nothing to do
    assert not DunningCycle.objects.exists()


def test_a_value_too_long_for_its_column_is_refused_not_cut_short(make_customer):
    customer = make_customer()

    with pytest.raises(DataError):
        rows_insert(DunningCycle, {"customer_id": [customer.pk], "number": [1], "opened_on": [OPENED],
                                   "cause": ["x" * 30]})


def test_a_field_set_on_save_must_be_given(make_customer):
    customer = make_customer()

    # Payment.created_at is stamped on save: one constant for every row would be wrong.
    with pytest.raises(ValueError, match="set on save or per row, so to be given: created_at"):
        rows_insert(Payment, {"customer_id": [customer.pk], "received_on": [OPENED], "currency": ["EUR"],
                              "amount": [Decimal("10.00")]})
    assert not Payment.objects.exists()


def _accounts_since():
    return CompiledRead(
        lambda pk, since: Customer.objects.filter(pk__gte=pk, customer_since__lte=since).order_by("pk")
        .values_list("pk", "name"),
        pk=-1, since=dt.date(1, 1, 1))


def test_a_compiled_read_answers_each_run_with_that_run_s_values(make_customer):
    first = make_customer(name="Alpha Ltd", customer_since=dt.date(2019, 5, 1))
    second = make_customer(name="Alpine AG", customer_since=dt.date(2024, 5, 1))
    read = _accounts_since()

    assert read.rows(pk=first.pk, since=dt.date(2025, 1, 1)) == [
        (first.pk, "Alpha Ltd"), (second.pk, "Alpine AG")]
    assert read.rows(pk=second.pk, since=dt.date(2025, 1, 1)) == [(second.pk, "Alpine AG")]
    assert read.rows(pk=first.pk, since=dt.date(2020, 1, 1)) == [(first.pk, "Alpha Ltd")]


def test_a_placeholder_the_query_does_not_carry_is_refused_when_compiled():
    read = CompiledRead(lambda pk: Customer.objects.filter(pk__gt=0).values_list("pk"), pk=-1)

    with pytest.raises(ValueError, match="placeholder pk=-1"):
        read.rows(pk=5)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="just-in-time compilation is PostgreSQL's")
def test_the_connection_compiles_no_query_just_in_time(db):
    """A search matching thousands of accounts once spent three of its four
    seconds compiling the list's query (estimated costly for subqueries it never
    runs) before reading a row."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)


def test_days_after_a_day_read_from_a_column_is_a_date_across_a_month_end(make_customer):
    # On SQLite, date + integer added the days to the year and read back as a number.
    DunningCycle.objects.create(customer=make_customer(), number=1, opened_on=dt.date(2026, 1, 30))

    days = DunningCycle.objects.values_list(
        DaysAfter("opened_on", Value(5)), DaysAfter("opened_on", Value(-30)), DaysAfter("opened_on", Value(0))
    )

    assert list(days) == [(dt.date(2026, 2, 4), dt.date(2025, 12, 31), dt.date(2026, 1, 30))]
