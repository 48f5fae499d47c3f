"""The Numbers page: every measure on a small ledger worked out by hand, who
may see which figures, the page and its htmx fragment, bad parameters, and
what the page costs in queries.

The ledger, today being Tue 5 Aug 2025 (July is the last full month):

EUR, Acme (Carla's, usually 10 days late, amount-weighted):
  I1 issued 10 Apr, due 10 May, 1,000; 400 paid 20 May           → 600 open
     (a dispute on price opened 10 Jun and rejected 20 Jun: 600 owed then)
  I2 issued 15 Jun, due 15 Jul, 2,000; credit note 500 on 20 Jul,
     300 paid 2 Aug (after July)                                 → 1,200 open
  I3 issued 1 Jul, due 10 Aug, 3,000                             → 3,000 open
  I4 issued 5 May, due 4 Jun, 800, written off 10 Jul            → 0
  I5 issued 1 Jun, due 1 Jul, 700, disputed since 5 Jul (our delivery)
  I6 issued 20 Jul, due 19 Aug, 1,200, promised for 12 Aug
  I7 issued 1 Mar, due 31 Mar, 900, in a plan: 450 on 15 Aug and 15 Sep
USD, Bolt (Otto's, no behaviour yet):
  U1 issued 10 Jul, due 9 Aug, 5,000;  U2 issued 1 May, due 31 May, 1,000
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from ar_collections import numbers, workspace
from ar_collections.models import (
    Allocation,
    CreditNote,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    DisputeStatus,
    ExceptionKind,
    Instalment,
    InstalmentStatus,
    InvoiceStatus,
    Payment,
    PaymentBehaviour,
    PaymentPlan,
    PlanStatus,
    Promise,
    WriteOff,
)

D = Decimal
TODAY = dt.date(2025, 8, 5)
URL = reverse("collections:numbers")
JULY = numbers.Period.ending(dt.date(2025, 7, 1), months=1)
MAY_TO_JULY = numbers.Period.ending(dt.date(2025, 7, 1), months=3)


def day(month: int, n: int) -> dt.date:
    return dt.date(2025, month, n)


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def pay(invoice, amount: str, on: dt.date) -> None:
    payment = Payment.objects.create(
        customer=invoice.customer, received_on=on, currency=invoice.currency, amount=D(amount)
    )
    Allocation.objects.create(invoice=invoice, payment=payment, amount=D(amount), allocated_on=on,
                              applied_on=on)
    invoice.open_amount -= D(amount)
    invoice.save(update_fields=["open_amount"])


def dispute(invoice, *, reason: str, on: dt.date, user, **fields) -> Dispute:
    return Dispute.objects.create(
        customer=invoice.customer,
        invoice=invoice,
        reason=reason,
        description="-",
        opened_by=user,
        opened_on=on,
        answer_due_on=on + dt.timedelta(days=7),
        disputed_amount=invoice.open_amount or invoice.total_amount,
        **fields,
    )


@pytest.fixture
def ledger(make_customer, make_invoice, collector, other_collector, manager):
    acme = make_customer(name="Acme", currency="EUR", collector=collector)
    bolt = make_customer(name="Bolt", currency="USD", collector=other_collector)
    PaymentBehaviour.objects.create(customer=acme, computed_on=TODAY, weighted_days_late=D("10.2"))

    i1 = make_invoice(acme, issued=day(4, 10), due=day(5, 10), amount="1000.00")
    pay(i1, "400.00", day(5, 20))
    dispute(
        i1,
        reason=DisputeReason.PRICE,
        on=day(6, 10),
        user=collector,
        status=DisputeStatus.RESOLVED,
        outcome=DisputeOutcome.REJECTED,
        resolved_on=day(6, 20),
        resolved_by=collector,
    )

    i2 = make_invoice(acme, issued=day(6, 15), due=day(7, 15), amount="2000.00")
    note = CreditNote.objects.create(
        number="CN-1", customer=acme, invoice=i2, issued_on=day(7, 20), currency="EUR", amount=D("500.00")
    )
    Allocation.objects.create(invoice=i2, credit_note=note, amount=D("500.00"), allocated_on=day(7, 20),
                              applied_on=day(7, 20))
    i2.open_amount -= D("500.00")
    i2.save(update_fields=["open_amount"])
    pay(i2, "300.00", day(8, 2))

    make_invoice(acme, issued=day(7, 1), due=day(8, 10), amount="3000.00")

    i4 = make_invoice(acme, issued=day(5, 5), due=day(6, 4), amount="800.00")
    WriteOff.objects.create(
        invoice=i4,
        customer=acme,
        currency="EUR",
        amount=D("800.00"),
        reason="Insolvent",
        written_off_on=day(7, 10),
        decided_by=manager,
    )
    i4.open_amount, i4.status, i4.settled_on = D("0.00"), InvoiceStatus.WRITTEN_OFF, day(7, 10)
    i4.save()

    i5 = make_invoice(acme, issued=day(6, 1), due=day(7, 1), amount="700.00")
    dispute(i5, reason=DisputeReason.OUR_DELIVERY, on=day(7, 5), user=collector)

    i6 = make_invoice(acme, issued=day(7, 20), due=day(8, 19), amount="1200.00")
    promise = Promise.objects.create(
        customer=acme,
        currency="EUR",
        amount=D("1200.00"),
        promised_on=day(8, 12),
        grace_days=3,
        made_on=day(8, 1),
        made_by=collector,
    )
    promise.invoices.add(i6)

    i7 = make_invoice(acme, issued=day(3, 1), due=day(3, 31), amount="900.00")
    plan = PaymentPlan.objects.create(
        customer=acme,
        currency="EUR",
        total_amount=D("900.00"),
        status=PlanStatus.ACTIVE,
        grace_days=3,
        proposed_by=collector,
        proposed_on=day(7, 1),
    )
    plan.invoices.add(i7)
    Instalment.objects.create(plan=plan, number=1, due_on=day(8, 15), amount=D("450.00"))
    Instalment.objects.create(plan=plan, number=2, due_on=day(9, 15), amount=D("450.00"))

    make_invoice(bolt, issued=day(7, 10), due=day(8, 9), amount="5000.00", currency="USD")
    make_invoice(bolt, issued=day(5, 1), due=day(5, 31), amount="1000.00", currency="USD")
    return {"acme": acme, "bolt": bolt}


def figures(scope: numbers.Scope | None = None) -> dict[str, numbers.CurrencyFigures]:
    found = numbers.figures(scope or numbers.Scope(), today=TODAY, periods=[JULY, MAY_TO_JULY])
    return {c.currency: c for c in found}


# --- Each measure, worked out by hand -------------------------------------------------------


def test_aging_puts_todays_open_amounts_in_their_buckets_and_disputes_apart(ledger):
    eur = figures()["EUR"]

    rows = {row.label: (row.amount, row.invoices) for row in eur.aging}
    # Not yet due: I3 3,000 + I6 1,200; 1–30: I2 (21 days); 61–90: I1 (87 days); over 90: I7 (127 days).
    assert rows == {
        "Not yet due": (D("4200.00"), 2),
        "1–30 days late": (D("1200.00"), 1),
        "31–60 days late": (D("0.00"), 0),
        "61–90 days late": (D("600.00"), 1),
        "Over 90 days late": (D("900.00"), 1),
    }
    assert (eur.disputed.amount, eur.disputed.invoices) == (D("700.00"), 1)
    assert (eur.open_total, eur.open_invoices) == (D("7600.00"), 6)
    # 4,200 / 7,600 = 55.3 %; 700 / 7,600 = 9.2 %
    assert round(eur.aging[0].share * 1000) == 553
    assert round(eur.disputed.share * 1000) == 92


def test_receivables_at_past_dates_are_rebuilt_from_the_ledger_not_from_todays_open_amounts(ledger):
    july, may_to_july = figures()["EUR"].periods

    # End of July: I1 600 + I2 1,500 (the 300 came in August) + I3 3,000 + I5 700 + I6 1,200 + I7 900;
    # I4 written off 10 Jul. Not yet due then: I3 and I6.
    assert (july.closing, july.closing_current) == (D("7900.00"), D("4200.00"))
    # End of June: I1 600 + I2 2,000 (credited in July) + I4 800 (written off in July) + I5 700 + I7 900.
    assert july.opening == D("5000.00")
    # End of April: I1 1,000 (paid in part in May) + I7 900.
    assert may_to_july.opening == D("1900.00")


def test_credit_sales_are_the_invoices_issued_in_the_period(ledger):
    july, may_to_july = figures()["EUR"].periods

    assert july.sales == D("4200.00")  # I3 + I6
    assert may_to_july.sales == D("7700.00")  # + I4 800 in May, I2 2,000 and I5 700 in June


def test_dso_best_possible_dso_and_add(ledger):
    july, may_to_july = figures()["EUR"].periods

    # 7,900 / 4,200 × 31 = 58.31; 4,200 / 4,200 × 31 = 31; ADD 27.3
    assert (july.dso, july.best_possible_dso, july.add) == (D("58.3"), D("31.0"), D("27.3"))
    # 7,900 / 7,700 × 92 = 94.39; 4,200 / 7,700 × 92 = 50.18; ADD 44.2
    assert (may_to_july.dso, may_to_july.best_possible_dso, may_to_july.add) == (
        D("94.4"),
        D("50.2"),
        D("44.2"),
    )


def test_countback_walks_back_from_the_periods_last_month(ledger):
    july, may_to_july = figures()["EUR"].periods

    # 7,900: July's 4,200 (31 days, 3,700 left), June's 2,700 (30, 1,000 left), May's 800 (31, 200 left),
    # April's 1,000: 200 / 1,000 × 30 = 6 → 98 days.
    assert july.countback.days == may_to_july.countback.days == D("98.0")
    assert july.countback.complete


def test_cei(ledger):
    july, may_to_july = figures()["EUR"].periods

    # (5,000 + 4,200 − 7,900) / (5,000 + 4,200 − 4,200) = 1,300 / 5,000
    assert july.cei == D("26.0")
    # (1,900 + 7,700 − 7,900) / (1,900 + 7,700 − 4,200) = 1,700 / 5,400 = 31.48
    assert may_to_july.cei == D("31.5")


def test_write_offs_credit_notes_and_disputes_in_the_period(ledger):
    july, may_to_july = figures()["EUR"].periods

    assert (july.write_offs.amount, july.write_offs.count) == (D("800.00"), 1)
    assert (july.credit_notes.amount, july.credit_notes.count) == (D("500.00"), 1)
    # July: I5's dispute, ours, 700 owed when opened.
    assert (july.disputes.amount, july.disputes.count) == (D("700.00"), 1)
    assert (july.disputes_ours.amount, july.disputes_ours.count) == (D("700.00"), 1)
    # May–July adds I1's price dispute of 10 Jun: 1,000 less the 400 paid on 20 May.
    assert (may_to_july.disputes.amount, may_to_july.disputes.count) == (D("1300.00"), 2)
    assert (may_to_july.disputes_ours.amount, may_to_july.disputes_ours.count) == (D("700.00"), 1)


def test_a_corrected_invoice_counts_at_its_total_as_issued_until_the_correction(
    make_customer, make_invoice, collector
):
    account = make_customer(currency="EUR")
    invoice = make_invoice(account, issued=day(6, 2), due=day(7, 2), amount="600.00")  # was 1,000
    dispute(
        invoice,
        reason=DisputeReason.PRICE,
        on=day(6, 20),
        user=collector,
        status=DisputeStatus.RESOLVED,
        outcome=DisputeOutcome.CORRECTED_INVOICE,
        resolved_on=day(7, 10),
        resolved_by=collector,
        taken_off_amount=D("400.00"),
    )

    july = figures()["EUR"].periods[0]

    assert july.opening == D("1000.00")
    assert july.closing == D("600.00")
    assert figures()["EUR"].periods[1].sales == D("1000.00")
    # What the dispute held back when it was opened: the invoice as issued.
    assert figures()["EUR"].periods[1].disputes.amount == D("1000.00")


def test_the_forecast_spreads_expected_cash_over_the_next_eight_weeks(ledger):
    forecast = figures()["EUR"].forecast
    weeks = [(w.start, w.invoices, w.promises, w.instalments) for w in forecast.weeks]

    assert weeks[0][0] == TODAY and forecast.weeks[-1].end == day(9, 29)
    # I3 due 10 Aug + 10 days late = 20 Aug (week 3); I6 promised 12 Aug (week 2) rather than by its
    # due date; I7 by its instalments of 15 Aug (week 2) and 15 Sep (week 6), not by its due date.
    assert weeks[1][1:] == (D("0.00"), D("1200.00"), D("450.00"))
    assert weeks[2][1:] == (D("3000.00"), D("0.00"), D("0.00"))
    assert weeks[5][1:] == (D("0.00"), D("0.00"), D("450.00"))
    assert forecast.total == D("5100.00")
    # I5 is disputed: left out and shown apart. I1 (expected 20 May) and I2 (25 Jul) are later than usual.
    assert (forecast.disputed.amount, forecast.disputed.count) == (D("700.00"), 1)
    assert (forecast.overdue_beyond_usual.amount, forecast.overdue_beyond_usual.count) == (D("1800.00"), 2)


def test_each_day_is_forecast_in_its_own_week_at_the_weeks_edges(make_customer, make_invoice):
    account = make_customer(currency="EUR")  # no behaviour: expected on the due date
    for due, amount in [
        (day(7, 29), "1.00"),  # 7 days ago
        (day(8, 4), "2.00"),  # yesterday: before today, not in the first week
        (TODAY, "4.00"),  # the first week's first day
        (day(8, 11), "8.00"),  # its last
        (day(8, 12), "16.00"),  # the second week's first
        (day(9, 29), "32.00"),  # the eighth week's last
        (day(9, 30), "64.00"),  # after the eight weeks
    ]:
        make_invoice(account, issued=day(7, 1), due=due, amount=amount)

    forecast = figures()["EUR"].forecast

    assert [week.invoices for week in forecast.weeks] == [
        D("12.00"), D("16.00"), D("0"), D("0"), D("0"), D("0"), D("0"), D("32.00")
    ]
    assert (forecast.overdue_beyond_usual.amount, forecast.overdue_beyond_usual.count) == (D("3.00"), 2)
    assert forecast.later == D("64.00")


def test_a_disputed_invoice_a_promise_covers_is_left_out_once_as_disputed(
    make_customer, make_invoice, collector
):
    account = make_customer(currency="EUR")
    invoice = make_invoice(account, issued=day(7, 1), due=day(8, 20), amount="500.00")
    make_invoice(account, issued=day(7, 1), due=day(8, 20), amount="50.00")
    promise = Promise.objects.create(
        customer=account,
        currency="EUR",
        amount=D("500.00"),
        promised_on=day(8, 12),
        grace_days=3,
        made_on=day(8, 1),
        made_by=collector,
    )
    promise.invoices.add(invoice)
    dispute(invoice, reason=DisputeReason.QUANTITY, on=day(8, 4), user=collector)

    forecast = figures()["EUR"].forecast

    assert (forecast.disputed.amount, forecast.disputed.count) == (D("500.00"), 1)
    # The promise still stands for its cash; the invoice itself is not expected by its due date too.
    assert [week.invoices for week in forecast.weeks][2] == D("50.00")
    assert forecast.weeks[1].promises == D("500.00")


def test_a_customer_without_behaviour_is_expected_on_the_due_date(ledger):
    usd = figures()["USD"].forecast

    assert usd.weeks[0].invoices == D("5000.00")  # due 9 Aug
    assert usd.overdue_beyond_usual.amount == D("1000.00")


def test_a_promise_whose_day_passed_within_its_grace_is_expected_in_the_first_week(
    make_customer, make_invoice, collector
):
    account = make_customer(currency="EUR")
    invoice = make_invoice(account, issued=day(6, 1), amount="250.00")
    promise = Promise.objects.create(
        customer=account,
        currency="EUR",
        amount=D("250.00"),
        promised_on=day(8, 4),
        grace_days=3,
        made_on=day(7, 30),
        made_by=collector,
        paid_amount=D("50.00"),
    )
    promise.invoices.add(invoice)

    assert figures()["EUR"].forecast.weeks[0].promises == D("200.00")


def test_paid_instalments_and_plans_not_in_force_are_not_expected(make_customer, make_invoice, collector):
    account = make_customer(currency="EUR")
    make_invoice(account, issued=day(8, 1), due=dt.date(2025, 12, 1), amount="100.00")
    for status, instalment in [
        (PlanStatus.ACTIVE, InstalmentStatus.PAID),
        (PlanStatus.BROKEN, InstalmentStatus.DUE),
    ]:
        plan = PaymentPlan.objects.create(
            customer=account,
            currency="EUR",
            total_amount=D("100.00"),
            status=status,
            grace_days=3,
            proposed_by=collector,
            proposed_on=day(7, 1),
        )
        Instalment.objects.create(
            plan=plan, number=1, due_on=day(8, 8), amount=D("100.00"), status=instalment
        )

    forecast = figures()["EUR"].forecast
    assert forecast.total == D("0.00")
    # The invoice is due after the eighth week: later.
    assert forecast.later == D("100.00")


def test_each_currency_stands_alone(ledger):
    usd = figures()["USD"]
    july, may_to_july = usd.periods

    # 6,000 / 5,000 × 31 = 37.2; best 31; CEI (1,000 + 5,000 − 6,000) / (1,000 + 5,000 − 5,000) = 0
    assert (july.closing, july.sales, july.dso, july.best_possible_dso, july.cei) == (
        D("6000.00"),
        D("5000.00"),
        D("37.2"),
        D("31.0"),
        D("0.0"),
    )
    # Countback: July 5,000 (31), June nothing (30), May 1,000 / 1,000 × 31 → 92
    assert may_to_july.countback.days == D("92.0")
    assert usd.open_total == D("6000.00")


def test_the_figures_narrow_to_one_collector_and_one_currency(ledger, other_collector):
    assert set(figures(numbers.Scope(collector_id=other_collector.pk))) == {"USD"}
    assert set(figures(numbers.Scope(currency="EUR"))) == {"EUR"}


def test_cancelled_invoices_never_count(make_customer, make_invoice):
    account = make_customer(currency="EUR")
    make_invoice(account, issued=day(7, 1), amount="300.00")
    cancelled = make_invoice(account, issued=day(7, 1), amount="500.00")
    cancelled.status = InvoiceStatus.CANCELLED
    cancelled.save(update_fields=["status"])

    eur = figures()["EUR"]

    assert (eur.periods[0].sales, eur.periods[0].closing, eur.open_total) == (
        D("300.00"),
        D("300.00"),
        D("300.00"),
    )


# --- The page ---------------------------------------------------------------------------------


def test_a_manager_sees_the_whole_book_with_the_formulas(client, manager, ledger):
    client.force_login(manager)

    response = client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="numbers-EUR"' in html and 'id="numbers-USD"' in html
    assert "Jul 2025" in html and "May–Jul 2025" in html
    assert "58.3 days" in html and "98.0 days" in html and "26.0 %" in html
    assert "receivables at the end / credit sales × days in the period" in html
    assert 'href="/collections/numbers/" aria-current="page">Numbers' in html


def test_a_manager_may_narrow_the_page_to_one_collector_and_currency(
    client, manager, ledger, other_collector
):
    client.force_login(manager)

    response = client.get(URL, {"collector": other_collector.pk})
    html = response.content.decode()

    assert 'id="numbers-USD"' in html and 'id="numbers-EUR"' not in html
    html = client.get(URL, {"currency": "EUR"}).content.decode()
    assert 'id="numbers-EUR"' in html and 'id="numbers-USD"' not in html


def test_a_collector_sees_only_their_own_accounts_whatever_the_query_says(
    client, collector, ledger, other_collector
):
    client.force_login(collector)

    response = client.get(URL, {"collector": other_collector.pk})

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="numbers-EUR"' in html and 'id="numbers-USD"' not in html
    assert 'name="collector"' not in html


def test_a_read_only_colleague_gets_no_numbers(client, viewer, ledger):
    client.force_login(viewer)

    assert client.get(URL).status_code == 403
    assert client.get(URL, headers={"HX-Request": "true"}).status_code == 403
    assert "/collections/numbers/" not in client.get(reverse("collections:runs")).content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client):
    assert client.get(URL).status_code == 302


def test_htmx_gets_the_figures_alone(client, manager, ledger):
    client.force_login(manager)

    response = client.get(URL, {"months": "6"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="numbers-figures"')
    assert "<html" not in html and "Feb–Jul 2025" in html


def test_the_page_without_javascript_takes_the_same_query(client, manager, ledger):
    client.force_login(manager)

    html = client.get(URL, {"month": "2025-06", "months": "12"}).content.decode()

    assert "<html" in html and "Jul 2024–Jun 2025" in html and 'value="2025-06"' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"month": "2026-13"}, "Write the month as year and month, e.g. 2025-07"),
        ({"month": "July"}, "Write the month as year and month"),
        ({"month": "2025-09"}, "September 2025 has not begun yet"),
        ({"months": "7"}, "Choose a period of 1, 3, 6 or 12 months."),
        ({"currency": "XXX"}, "Choose a currency from the list."),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_a_bad_parameter_gets_a_clear_message_not_an_error(client, manager, ledger, query, message, htmx):
    client.force_login(manager)

    response = client.get(URL, query, headers={"HX-Request": "true"} if htmx else {})

    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert 'id="numbers-EUR"' not in html


def test_the_periods_figures_download_as_csv_a_row_per_currency_and_period(client, manager, ledger):
    client.force_login(manager)

    html = client.get(URL).content.decode()
    response = client.get(reverse("collections:numbers_csv"), {"currency": "EUR"})

    assert f'href="{reverse("collections:numbers_csv")}" download>' in html
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="numbers-2025-08-05.csv"'
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:10] == [
        "Currency", "Period start", "Period end", "Months", "Period", "Receivables at the start",
        "Credit sales", "Receivables at the end", "Not yet due at the end", "DSO simple (days)",
    ]
    # The roll-forward's columns follow (tests/ar_collections/test_numbers_roll_forward.py).
    assert [row[:23] for row in rows[1:]] == [
        ["EUR", "2025-07-01", "2025-07-31", "1", "Jul 2025", "5000.00", "4200.00", "7900.00", "4200.00",
         "58.3", "98.0", "yes", "31.0", "27.3", "26.0", "800.00", "1", "500.00", "1", "700.00", "1", "700.00",
         "1"],
        ["EUR", "2025-05-01", "2025-07-31", "3", "May–Jul 2025", "1900.00", "7700.00", "7900.00", "4200.00",
         "94.4", "98.0", "yes", "50.2", "44.2", "31.5", "800.00", "1", "500.00", "1", "1300.00", "2",
         "700.00", "1"],
    ]


def test_a_collector_downloads_their_own_accounts_figures_and_a_colleague_none(
    client, collector, viewer, ledger, other_collector
):
    client.force_login(collector)
    response = client.get(reverse("collections:numbers_csv"), {"collector": other_collector.pk})
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert {row[0] for row in rows[1:]} == {"EUR"}

    client.force_login(viewer)
    assert client.get(reverse("collections:numbers_csv")).status_code == 403


@pytest.mark.parametrize(
    ("month", "message"),
    [
        ("2025-09", "September 2025 has not begun yet"),
        ("1900-01", "The numbers go back 10 years: choose a month from August 2015 on."),
        ("2015-07", "The numbers go back 10 years: choose a month from August 2015 on."),
    ],
)
def test_a_bad_month_for_the_csv_gets_the_pages_message_not_a_file_of_zeros(
    client, manager, ledger, month, message
):
    client.force_login(manager)

    response = client.get(reverse("collections:numbers_csv"), {"month": month})
    page = client.get(URL, {"month": month})

    assert response.status_code == page.status_code == 422
    assert "attachment" not in response.get("Content-Disposition", "")
    assert message in response.content.decode() and message in page.content.decode()


def test_this_month_so_far_is_measured_to_today_by_the_same_figures_as_a_full_month(
    make_invoice, ledger, manager
):
    """August 2025 on 5 August: 300 paid on 2 August, 500 invoiced on 3
    August and 100 of it written off on 4 August."""
    late = make_invoice(ledger["acme"], issued=day(8, 3), due=day(9, 2), amount="500.00")
    WriteOff.objects.create(invoice=late, customer=ledger["acme"], currency="EUR", amount=D("100.00"),
                            reason="Goodwill", written_off_on=day(8, 4), decided_by=manager)
    so_far = numbers.Period.ending(dt.date(2025, 8, 1), months=1, today=TODAY)

    found = numbers.figures(numbers.Scope(), today=TODAY, periods=[so_far])
    [august] = next(c for c in found if c.currency == "EUR").periods

    assert (so_far.start, so_far.end, so_far.days, so_far.label) == (
        day(8, 1), TODAY, 5, "1–5 Aug 2025, to date")
    # July ended at 7,900; then 300 paid, 500 invoiced, 100 written off.
    assert (august.opening, august.sales, august.closing) == (D("7900.00"), D("500.00"), D("8000.00"))
    assert (august.write_offs.amount, august.write_offs.count) == (D("100.00"), 1)
    # 8,000 / 500 × 5 days.
    assert august.dso == D("80.0")


@pytest.mark.parametrize(
    ("today", "months", "label"),
    [
        (dt.date(2026, 12, 1), 1, "1 Dec 2026, to date"),
        (dt.date(2026, 12, 31), 1, "1–31 Dec 2026, to date"),
        (dt.date(2026, 12, 5), 12, "Jan–5 Dec 2026, to date"),
        (dt.date(2027, 1, 5), 3, "Nov 2026–5 Jan 2027, to date"),
    ],
)
def test_a_period_running_to_today_says_it_is_partial(today, months, label):
    period = numbers.Period.ending(today.replace(day=1), months=months, today=today)

    assert (period.end, period.partial, period.label) == (today, True, label)
    assert numbers.Period.ending(dt.date(2026, 11, 1), months=1, today=today).label == "Nov 2026"


def test_this_month_so_far_downloads_saying_to_date_as_the_page_does(client, manager, ledger):
    """A file of 1–5 August is not read as the whole of August: each row
    names its period in the page's words."""
    client.force_login(manager)

    response = client.get(reverse("collections:numbers_csv"), {"month": "2025-08", "months": "3",
                                                               "currency": "EUR"})

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][1:5] == ["Period start", "Period end", "Months", "Period"]
    assert [row[1:5] for row in rows[1:]] == [
        ["2025-08-01", "2025-08-05", "1", "1–5 Aug 2025, to date"],
        ["2025-06-01", "2025-08-05", "3", "Jun–5 Aug 2025, to date"],
    ]


@pytest.mark.parametrize("months", ["1", "3"])
def test_a_manager_sees_this_month_so_far_labelled_as_partial(client, manager, ledger, months):
    client.force_login(manager)

    response = client.get(URL, {"month": "2025-08", "months": months})

    html = " ".join(response.content.decode().split())
    assert response.status_code == 200
    assert "1–5 Aug 2025, to date <span class=\"muted\">(5 days)</span>" in html
    if months == "3":
        assert "Jun–5 Aug 2025, to date <span class=\"muted\">(66 days)</span>" in html
    assert 'max="2025-08"' in html


def test_the_oldest_month_the_page_takes_is_ten_years_back(client, manager, ledger):
    client.force_login(manager)

    response = client.get(reverse("collections:numbers_csv"), {"month": "2015-08"})

    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[1][1:3] == ["2015-08-01", "2015-08-31"]
    assert 'min="2015-08" max="2025-08"' in client.get(URL).content.decode()


@pytest.mark.parametrize("more", [False, True])
def test_the_page_costs_the_same_queries_however_big_the_book(
    client, manager, ledger, make_customer, make_invoice, collector, django_assert_num_queries, more
):
    if more:
        for n in range(12):
            account = make_customer(currency=["EUR", "USD", "GBP"][n % 3], collector=collector)
            invoice = make_invoice(account, issued=day(5, 1 + n), amount="100.00")
            pay(invoice, "40.00", day(6, 1 + n))
            dispute(invoice, reason=DisputeReason.OUR_SERVICE, on=day(7, 1 + n), user=collector)
            # Extended terms in force, on the invoice or the whole account: read in the same query.
            asked = workspace.exception_request(
                customer=account, actor=collector, kind=ExceptionKind.EXTENDED_TERMS, reason="A slow month",
                on=TODAY, pause_until=day(9, 1 + n), invoice=invoice if n % 2 else None,
            )
            workspace.exception_decide(request=asked, manager=manager, approve=True, note="Agreed", on=TODAY)
    client.force_login(manager)

    # session, user, permissions (2), collectors, currencies; aging; ledger (5: with the
    # cancellations taken off the sales of their month; the due dates moved since its days
    # are read within its statements); flows (3); forecast (3); role groups (the page head)
    with django_assert_num_queries(19):
        response = client.get(URL)

    assert response.status_code == 200
