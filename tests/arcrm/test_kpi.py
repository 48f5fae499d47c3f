"""The managers' measures as formulas, each checked against a worked example
computed by hand (the working is in the comment above the assertion)."""

from decimal import Decimal

import pytest

from arcrm.kpi import (
    NOT_YET_DUE,
    Countback,
    aging_bucket,
    average_days_delinquent,
    best_possible_dso,
    collection_effectiveness,
    dso_countback,
    dso_simple,
    share,
)

D = Decimal


@pytest.mark.parametrize(
    ("days_late", "bucket"),
    [
        (-12, NOT_YET_DUE),
        (0, NOT_YET_DUE),
        (1, "1–30 days late"),
        (30, "1–30 days late"),
        (31, "31–60 days late"),
        (60, "31–60 days late"),
        (61, "61–90 days late"),
        (90, "61–90 days late"),
        (91, "Over 90 days late"),
        (400, "Over 90 days late"),
    ],
)
def test_an_invoice_falls_in_the_bucket_of_its_days_late(days_late, bucket):
    assert aging_bucket(days_late) == bucket


def test_simple_dso_is_receivables_over_sales_times_the_days():
    # 45,000 / 90,000 × 30 = 15
    assert dso_simple(receivables=D("45000"), credit_sales=D("90000"), days=30) == D("15.0")
    # 120,000 / 270,000 × 92 = 40.888… → 40.9
    assert dso_simple(receivables=D("120000"), credit_sales=D("270000"), days=92) == D("40.9")


def test_simple_dso_is_not_defined_without_sales_and_zero_without_receivables():
    assert dso_simple(receivables=D("5000"), credit_sales=D("0"), days=31) is None
    assert dso_simple(receivables=D("0"), credit_sales=D("1000"), days=31) == D("0.0")


def test_countback_consumes_whole_months_then_a_share_of_the_last():
    # 250,000 open. May's 100,000 is used up whole (31 days, 150,000 left), April's
    # 80,000 too (30 days, 70,000 left); March: 70,000 / 120,000 × 31 = 18.083 days.
    # 31 + 30 + 18.083 = 79.083 → 79.1
    months = [(31, D("100000")), (30, D("80000")), (31, D("120000")), (28, D("999999"))]

    assert dso_countback(receivables=D("250000"), months=months) == Countback(D("79.1"), complete=True)


def test_countback_within_the_last_month_is_its_share_of_that_month():
    # 50,000 / 100,000 × 31 = 15.5
    assert dso_countback(receivables=D("50000"), months=[(31, D("100000"))]) == Countback(D("15.5"), True)
    # Exactly one month's sales: that month's days, not a day more.
    assert dso_countback(receivables=D("100000"), months=[(31, D("100000")), (30, D("5"))]) == Countback(
        D("31.0"), True
    )


def test_a_month_without_sales_counts_whole_and_uses_up_nothing():
    # 150,000: 31 days use up 100,000; 30 days of no sales; 50,000 / 100,000 × 31 = 15.5 → 76.5
    months = [(31, D("100000")), (30, D("0")), (31, D("100000"))]

    assert dso_countback(receivables=D("150000"), months=months) == Countback(D("76.5"), complete=True)


def test_countback_says_so_when_the_history_runs_out_first():
    # 300,000 against 200,000 of sales in 31 + 28 days: more than 59 days.
    months = [(31, D("100000")), (28, D("100000"))]

    assert dso_countback(receivables=D("300000"), months=months) == Countback(D("59.0"), complete=False)


def test_countback_of_no_receivables_is_zero_days():
    assert dso_countback(receivables=D("0"), months=[(31, D("0"))]) == Countback(D("0"), complete=True)
    assert dso_countback(receivables=D("0"), months=[]).days == 0


def test_best_possible_dso_counts_only_what_is_not_yet_due_and_add_is_the_difference():
    # Best possible: 30,000 / 90,000 × 30 = 10; DSO 45,000 / 90,000 × 30 = 15; ADD = 5.
    best = best_possible_dso(current_receivables=D("30000"), credit_sales=D("90000"), days=30)
    dso = dso_simple(receivables=D("45000"), credit_sales=D("90000"), days=30)

    assert best == D("10.0")
    assert average_days_delinquent(dso=dso, best_possible=best) == D("5.0")


def test_add_is_not_defined_when_the_dsos_are_not():
    best = best_possible_dso(current_receivables=D("0"), credit_sales=D("0"), days=30)

    assert best is None
    assert average_days_delinquent(dso=None, best_possible=best) is None


def test_cei_is_what_was_collected_out_of_what_could_have_been():
    # (100,000 + 90,000 − 80,000) / (100,000 + 90,000 − 50,000) × 100 = 110 / 140 × 100 = 78.571… → 78.6
    cei = collection_effectiveness(
        opening=D("100000"), credit_sales=D("90000"), closing=D("80000"), closing_current=D("50000")
    )

    assert cei == D("78.6")


def test_cei_is_100_when_everything_due_was_collected():
    # (10,000 + 5,000 − 5,000) / (10,000 + 5,000 − 5,000) × 100: all that stays is not yet due.
    assert collection_effectiveness(
        opening=D("10000"), credit_sales=D("5000"), closing=D("5000"), closing_current=D("5000")
    ) == D("100.0")


def test_cei_is_not_defined_with_nothing_collectable():
    assert (
        collection_effectiveness(opening=D("0"), credit_sales=D("0"), closing=D("0"), closing_current=D("0"))
        is None
    )


def test_a_share_of_nothing_is_not_defined():
    assert share(D("25"), D("100")) == D("0.25")
    assert share(D("0"), D("0")) is None
