"""The segment rules on their own: plain facts in, segment and reason out."""

from dataclasses import replace
from decimal import Decimal

from ar_collections.segmentation import Facts, Rules, classify

STEADY = Facts(
    special_bond="",
    months_served=36,
    invoices_settled=12,
    invoices_settled_late=0,
    avg_days_late=Decimal("0"),
    last_days_late=0,
    avg_days_late_90d=Decimal("0"),
    avg_days_late_365d=Decimal("0"),
    overdue_invoices=0,
    max_days_overdue=0,
    open_amount=Decimal("1000.00"),
    overdue_amount=Decimal("0.00"),
    old_overdue_amount=Decimal("0.00"),
    currency="EUR",
)


def test_a_customer_who_always_pays_on_time_is_prompt():
    verdict = classify(STEADY)
    assert (verdict.segment, verdict.reason) == ("prompt", "Paid 12 of 12 invoices on time.")


def test_one_miss_in_twelve_is_an_occasional_slip_with_the_last_delay_named():
    facts = replace(STEADY, invoices_settled_late=1, avg_days_late=Decimal("0.75"), last_days_late=9)
    verdict = classify(facts)
    assert verdict.segment == "occasional_slip"
    assert verdict.reason == "Paid 11 of 12 invoices on time; last one 9 days late."


def test_mostly_late_by_more_than_a_week_is_systematic():
    # 18.4 days on average over all 12 (the on-time ones count 0): 24.53 over the 9 late.
    facts = replace(STEADY, invoices_settled_late=9, avg_days_late=Decimal("18.4"), last_days_late=20)
    verdict = classify(facts)
    assert verdict.segment == "systematic_late"
    assert verdict.reason == "Paid 9 of 12 invoices late, those 25 days late on average."


def test_ten_of_twelve_paid_eight_days_late_is_systematic_though_the_average_over_all_is_under_a_week():
    facts = replace(STEADY, invoices_settled_late=10, avg_days_late=Decimal("6.67"), last_days_late=8)
    verdict = classify(facts)
    assert (verdict.segment, verdict.reason) == ("systematic_late",
                                                 "Paid 10 of 12 invoices late, those 8 days late on average.")


def test_rules_tuned_to_need_no_settled_invoice_still_call_a_customer_without_one_new():
    facts = replace(STEADY, invoices_settled=0, avg_days_late=Decimal("0"), last_days_late=None)
    assert classify(facts, Rules(min_settled_invoices=0)).segment == "new"


def test_mostly_late_by_a_day_or_two_is_not_systematic():
    facts = replace(STEADY, invoices_settled_late=9, avg_days_late=Decimal("1.5"), last_days_late=2)
    assert classify(facts).segment == "occasional_slip"


def test_old_debt_making_up_most_of_the_balance_is_distress():
    facts = replace(STEADY, overdue_invoices=3, max_days_overdue=75, overdue_amount=Decimal("800.00"),
                    old_overdue_amount=Decimal("600.00"))
    verdict = classify(facts)
    assert verdict.segment == "distressed"
    assert verdict.reason == ("EUR 600.00 of EUR 1,000.00 open is 60 days or more past due; "
                              "the oldest 75 days.")


def test_old_debt_in_yen_is_named_in_whole_yen():
    facts = replace(STEADY, currency="JPY", overdue_invoices=3, max_days_overdue=75,
                    open_amount=Decimal("100000"), overdue_amount=Decimal("80000"),
                    old_overdue_amount=Decimal("60000"))
    assert classify(facts).reason == ("JPY 60,000 of JPY 100,000 open is 60 days or more past due; "
                                      "the oldest 75 days.")


def test_old_debt_that_is_a_small_part_of_the_balance_is_not_distress():
    facts = replace(STEADY, overdue_invoices=1, max_days_overdue=75, overdue_amount=Decimal("100.00"),
                    old_overdue_amount=Decimal("100.00"))
    assert classify(facts).segment == "prompt"


def test_a_small_old_invoice_beside_a_large_one_due_yesterday_is_not_distress():
    facts = replace(STEADY, overdue_invoices=2, max_days_overdue=65, open_amount=Decimal("1010.00"),
                    overdue_amount=Decimal("1010.00"), old_overdue_amount=Decimal("10.00"))
    assert classify(facts).segment == "prompt"


def test_a_sharp_recent_slowdown_is_distress():
    facts = replace(
        STEADY, invoices_settled_late=4, avg_days_late=Decimal("8"), last_days_late=40,
        avg_days_late_90d=Decimal("38"), avg_days_late_365d=Decimal("12"),
    )
    verdict = classify(facts)
    assert verdict.segment == "distressed"
    assert verdict.reason == "Paying 38 days late over the last 90 days against 12 days over the year."


def test_broken_promises_are_distress():
    assert classify(replace(STEADY, broken_promises=2)).segment == "distressed"


def test_a_special_bond_wins_over_everything_else():
    facts = replace(STEADY, special_bond="Pays us first because we helped them in 2024",
                    max_days_overdue=90, overdue_amount=Decimal("900"))
    verdict = classify(facts)
    assert verdict.segment == "special_bond"
    assert verdict.reason == "Special bond: Pays us first because we helped them in 2024"


def test_too_little_history_is_new():
    verdict = classify(replace(STEADY, invoices_settled=3, months_served=2))
    assert verdict.segment == "new"
    assert verdict.reason == "Customer for 2 months with 3 settled invoices; too little history to judge."


def test_thresholds_can_be_tuned():
    facts = replace(STEADY, invoices_settled_late=5, avg_days_late=Decimal("10"), last_days_late=10)
    assert classify(facts).segment == "occasional_slip"
    assert classify(facts, Rules(systematic_share_late=Decimal("0.4"))).segment == "systematic_late"
