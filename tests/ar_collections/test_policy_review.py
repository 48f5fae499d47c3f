"""The policy review: each step's figures on a small set of notices worked
out by hand, the flag's rule, who may see which notices, the page and its
htmx fragment, bad parameters, the CSV file, and what the page costs.

Today is Tue 5 Aug 2025. The default 90 days are of pay-by dates from
23 Apr to 21 Jul (the latest whose 14 days after are over by today).

The "Slip review" ladder: S1 e-mail (day 3), S2 letter (day 14), S3 call
task (day 30), S4 manager review (day 45).

  Acme (EUR, Carla's), cycle 1:
    n1 S1 e-mail sent 1 Jun, pay by 8 Jun, lists A1 1,000.
       600 paid 5 Jun (by the pay-by date, 4 days on), 400 on 20 Jun
       (19 days on, within the 14 days after); a credit note of 50 on
       6 Jun is no payment. S2 for the cycle was skipped: it did not go on.
  Bolt (EUR, Carla's), cycle 1:
    n2 S1 e-mail sent 10 Jun, pay by 17 Jun, lists B1 500: nothing by then.
    n4 S2 letter written 18 Jun, posted 20 Jun, pay by 30 Jun, lists B1 500.
       500 paid 25 Jun: 15 days after n2 (within its 14 days after),
       5 days after the letter was posted.
  Cogs (USD, Carla's), cycle 1:
    n3 S1 e-mail sent 1 Jul, pay by 8 Jul, lists C1 2,000; a dispute on
       C1 opened 10 Jul, nothing paid: ended with a dispute.
    Cycle 2: S1 skipped (pay by 15 Jul): no notice.
  Dent (EUR, Otto's), cycle 1:
    n6 S1 e-mail sent 1 May, pay by 8 May, lists D1 300, paid 8 May (7 days).
    Cycle 2: S1 sent 25 Jul, pay by 1 Aug (after the period); S2 letter
       written 20 Jun, still in the print queue: neither counts.
  Out of the period or no notice: S3 call task, pay by 1 Apr; S4 manager
    review carried out inside the house, pay by 1 Jul.

So, for 90 days:
  S1: 4 notices, 4 accounts; EUR 3 notices asked 1,800, paid by the pay-by
      date 600 + 0 + 300 = 900 (50 %), by 14 days after 1,000 + 500 + 300 =
      1,800 (100 %); USD 1 notice asked 2,000, nothing paid; payments after
      4, 7, 15, 19 days: median 11; went on 1 (Bolt), ended with a dispute 1 (Cogs).
  S2: 1 notice, EUR 500 asked, 500 paid by the pay-by date; median 5 days.
  S3, S4: no notices.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import policy_review, workspace
from ar_collections.models import (
    ActionStatus,
    Allocation,
    Channel,
    CreditNote,
    Dispute,
    DisputeReason,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    Invoice,
    InvoiceStatus,
    LatePaymentPolicy,
    Payment,
    PaymentPlan,
    PlanStatus,
    ReversalReason,
    RunStatus,
    StepAction,
    Tone,
)
from ar_collections.numbers import Scope
from customers.models import Segment

D = Decimal
TODAY = dt.date(2025, 8, 5)
URL = reverse("collections:policy_review")
CSV_URL = reverse("collections:policy_review_csv")
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


def day(month: int, n: int) -> dt.date:
    return dt.date(2025, month, n)


def at(d: dt.date) -> dt.datetime:
    return dt.datetime.combine(d, dt.time(9), tzinfo=dt.UTC)


def pay(invoice, amount: str, on: dt.date) -> None:
    payment = Payment.objects.create(
        customer=invoice.customer, received_on=on, currency=invoice.currency, amount=D(amount)
    )
    Allocation.objects.create(invoice=invoice, payment=payment, amount=D(amount), allocated_on=on,
                              applied_on=on)


class Book:
    """Notices written by hand: a run, cycles, actions and their lines."""

    def __init__(self) -> None:
        self.run = DunningRun.objects.create(run_date=day(4, 1), status=RunStatus.FINISHED)
        self.cycles: dict[tuple[int, int], DunningCycle] = {}

    def cycle(self, customer, number: int) -> DunningCycle:
        key = (customer.pk, number)
        if key not in self.cycles:
            self.cycles[key] = DunningCycle.objects.create(
                customer=customer, number=number, opened_on=day(4, 1), closed_on=day(8, 1)
            )
        return self.cycles[key]

    def notice(self, step, customer, *, cycle: int = 1, sent: dt.date, pay_by: dt.date, lines=(),
               status: str = ActionStatus.DONE, channel: str = Channel.EMAIL,
               posted: dt.date | None = None) -> DunningAction:
        action = DunningAction.objects.create(
            run=self.run, cycle=self.cycle(customer, cycle), customer=customer, step=step, status=status,
            planned_on=sent, pay_by=pay_by, channel=channel,
            done_at=at(sent) if status == ActionStatus.DONE else None,
            printed_at=at(posted) if posted else None,
        )
        for invoice, amount in lines:
            DunningActionInvoice.objects.create(action=action, invoice=invoice, open_amount=D(amount),
                                                currency=invoice.currency)
        return action


@pytest.fixture
def ladder(db):
    LatePaymentPolicy.objects.filter(segment=Segment.OCCASIONAL_SLIP).update(is_active=False)
    policy = LatePaymentPolicy.objects.create(name="Slip review", segment=Segment.OCCASIONAL_SLIP)
    return [
        policy.steps.create(position=1, day_offset=3, action=StepAction.EMAIL, pay_by_days=7),
        policy.steps.create(position=2, day_offset=14, action=StepAction.LETTER, tone=Tone.FIRM,
                            pay_by_days=10),
        policy.steps.create(position=3, day_offset=30, action=StepAction.CALL_TASK, tone=Tone.FIRM),
        policy.steps.create(position=4, day_offset=45, action=StepAction.MANAGER_REVIEW, tone=Tone.FINAL),
    ]


@pytest.fixture
def book(ladder, make_customer, make_invoice, collector, other_collector):
    s1, s2, s3, s4 = ladder
    acme = make_customer(name="Acme", currency="EUR")
    bolt = make_customer(name="Bolt", currency="EUR")
    cogs = make_customer(name="Cogs", currency="USD")
    dent = make_customer(name="Dent", currency="EUR", collector=other_collector)
    b = Book()

    a1 = make_invoice(acme, issued=day(4, 20), amount="1000.00")
    b.notice(s1, acme, sent=day(6, 1), pay_by=day(6, 8), lines=[(a1, "1000.00")])
    pay(a1, "600.00", day(6, 5))
    note = CreditNote.objects.create(number="CN-9", customer=acme, invoice=a1, issued_on=day(6, 6),
                                     currency="EUR", amount=D("50.00"))
    Allocation.objects.create(invoice=a1, credit_note=note, amount=D("50.00"), allocated_on=day(6, 6),
                              applied_on=day(6, 6))
    pay(a1, "400.00", day(6, 20))
    b.notice(s2, acme, sent=day(6, 20), pay_by=day(6, 30), status=ActionStatus.SKIPPED)

    b1 = make_invoice(bolt, issued=day(5, 1), amount="500.00")
    b.notice(s1, bolt, sent=day(6, 10), pay_by=day(6, 17), lines=[(b1, "500.00")])
    b.notice(s2, bolt, sent=day(6, 18), posted=day(6, 20), pay_by=day(6, 30), channel=Channel.LETTER,
             lines=[(b1, "500.00")])
    pay(b1, "500.00", day(6, 25))

    c1 = make_invoice(cogs, issued=day(5, 20), amount="2000.00", currency="USD")
    b.notice(s1, cogs, sent=day(7, 1), pay_by=day(7, 8), lines=[(c1, "2000.00")])
    Dispute.objects.create(customer=cogs, invoice=c1, reason=DisputeReason.PRICE, description="-",
                           opened_by=collector, opened_on=day(7, 10), answer_due_on=day(7, 17),
                           disputed_amount=D("2000.00"))
    b.notice(s1, cogs, cycle=2, sent=day(7, 8), pay_by=day(7, 15), status=ActionStatus.SKIPPED,
             lines=[(c1, "2000.00")])

    d1 = make_invoice(dent, issued=day(3, 20), amount="300.00")
    b.notice(s1, dent, sent=day(5, 1), pay_by=day(5, 8), lines=[(d1, "300.00")])
    pay(d1, "300.00", day(5, 8))
    d2 = make_invoice(dent, issued=day(6, 1), amount="700.00")
    b.notice(s1, dent, cycle=2, sent=day(7, 25), pay_by=day(8, 1), lines=[(d2, "700.00")])
    b.notice(s2, dent, cycle=2, sent=day(6, 20), pay_by=day(7, 10), channel=Channel.LETTER,
             lines=[(d2, "700.00")])

    b.notice(s3, acme, cycle=3, sent=day(3, 25), pay_by=day(4, 1), channel=Channel.PHONE,
             lines=[(a1, "1000.00")])
    b.notice(s4, bolt, cycle=3, sent=day(6, 24), pay_by=day(7, 1), channel=Channel.INTERNAL,
             lines=[(b1, "500.00")])
    return b


def reviewed(scope: Scope | None = None, days: int = 90) -> dict[int, policy_review.StepReview]:
    _, policies = policy_review.review(scope or Scope(), today=TODAY, days=days)
    (slip,) = [p for p in policies if p.policy.name == "Slip review"]
    return {s.step.position: s for s in slip.steps}


def money(step: policy_review.StepReview) -> dict[str, tuple]:
    return {c.currency: (c.notices, c.asked, c.paid_by_pay_by, c.paid_late) for c in step.currencies}


# --- The figures, worked out by hand ----------------------------------------------------------


def test_the_period_is_of_pay_by_dates_whose_two_weeks_after_are_over():
    window = policy_review.Window.ending_before(TODAY, days=90)

    assert (window.start, window.end) == (day(4, 23), day(7, 21))


def test_each_step_counts_its_notices_carried_out_and_the_accounts_they_reached(book):
    steps = reviewed()

    assert [(n, steps[n].notices, steps[n].accounts) for n in (1, 2, 3, 4)] == [
        (1, 4, 4), (2, 1, 1), (3, 0, 0), (4, 0, 0)
    ]


def test_the_money_asked_and_paid_is_per_currency_never_summed_across(book):
    steps = reviewed()

    assert money(steps[1]) == {
        "EUR": (3, D("1800.00"), D("900.00"), D("1800.00")),
        "USD": (1, D("2000.00"), D("0.00"), D("0.00")),
    }
    eur = steps[1].currencies[0]
    assert (eur.share_by_pay_by, eur.share_late) == (D("0.5"), D("1"))
    # The letter counts from the day it was posted.
    assert money(steps[2]) == {"EUR": (1, D("500.00"), D("500.00"), D("500.00"))}


def test_the_median_days_to_the_money_count_from_the_day_each_notice_reached_the_customer(book):
    steps = reviewed()

    assert (steps[1].median_days, steps[1].payments) == (D("11"), 4)
    assert (steps[2].median_days, steps[2].payments) == (D("5"), 1)
    assert steps[3].median_days is None


def test_a_payment_the_bank_took_back_is_no_money_paid_after_the_notices(book, manager):
    """Bolt's EUR 500.00 of 25 Jun bounced: neither the e-mail of 10 Jun nor
    the letter posted 20 Jun brought money."""
    bolts = Payment.objects.get(customer__name="Bolt")
    # As recording it would have left the invoice: paid.
    Invoice.objects.filter(customer__name="Bolt").update(open_amount=0, status=InvoiceStatus.PAID,
                                                         settled_on=day(6, 25))
    workspace.payment_reverse(payment=bolts, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE, on=TODAY)

    steps = reviewed()

    assert money(steps[1])["EUR"] == (3, D("1800.00"), D("900.00"), D("1300.00"))
    assert (steps[1].median_days, steps[1].payments) == (D("7"), 3)
    assert money(steps[2]) == {"EUR": (1, D("500.00"), D("0.00"), D("0.00"))}
    assert (steps[2].median_days, steps[2].payments) == (None, 0)


def test_cycles_that_went_on_and_those_that_ended_with_a_dispute_are_counted_apart(book):
    steps = reviewed()

    assert (steps[1].went_on, steps[1].ended_disputed_or_planned) == (1, 1)
    assert (steps[2].went_on, steps[2].ended_disputed_or_planned) == (0, 0)


@pytest.mark.parametrize(("status", "ended"), [(PlanStatus.ACTIVE, 2), (PlanStatus.REJECTED, 1)])
def test_a_plan_agreed_after_a_notice_ends_its_cycle_and_one_rejected_does_not(
    book, ladder, make_customer, make_invoice, collector, status, ended
):
    eddy = make_customer(name="Eddy", currency="EUR")
    invoice = make_invoice(eddy, issued=day(5, 1), amount="800.00")
    book.notice(ladder[0], eddy, sent=day(6, 2), pay_by=day(6, 9), lines=[(invoice, "800.00")])
    plan = PaymentPlan.objects.create(customer=eddy, currency="EUR", total_amount=D("800.00"), status=status,
                                      grace_days=3, proposed_by=collector, proposed_on=day(6, 12))
    plan.invoices.add(invoice)

    assert reviewed()[1].ended_disputed_or_planned == ended


def test_a_shorter_period_leaves_out_the_older_pay_by_dates(book):
    steps = reviewed(days=30)  # pay-by dates 22 Jun – 21 Jul

    assert steps[1].notices == 1 and money(steps[1]) == {"USD": (1, D("2000.00"), D("0.00"), D("0.00"))}
    assert steps[2].notices == 1


def test_a_collector_reviews_the_notices_to_their_own_accounts(book, collector):
    steps = reviewed(Scope(collector_id=collector.pk))

    assert money(steps[1])["EUR"] == (2, D("1500.00"), D("600.00"), D("1500.00"))
    assert steps[1].notices == 3


@pytest.mark.parametrize(
    ("notices", "share", "flag"),
    [
        (19, D("0.90"), "too few notices to judge"),
        (20, D("0.19"), "rarely works"),
        (20, D("0.20"), "watch"),
        (40, D("0.49"), "watch"),
        (20, D("0.50"), "works"),
        (25, None, "too few notices to judge"),
    ],
)
def test_the_flag_follows_the_rule_stated_on_the_page(notices, share, flag):
    assert policy_review.judge(notices=notices, share=share) == flag


def many_currencies(ladder, make_customer, make_invoice) -> Book:
    """25 e-mails of the first step to 25 accounts, EUR 100.00 asked by each:
    19 in EUR with EUR 1.00 of each paid by the pay-by date (1 %), 2 in GBP
    and 4 in USD with nothing paid."""
    b = Book()
    for currency in ["EUR"] * 19 + ["GBP"] * 2 + ["USD"] * 4:
        account = make_customer(currency=currency)
        invoice = make_invoice(account, issued=day(5, 1), amount="100.00", currency=currency)
        b.notice(ladder[0], account, sent=day(6, 1), pay_by=day(6, 8), lines=[(invoice, "100.00")])
        if currency == "EUR":
            pay(invoice, "1.00", day(6, 8))
    return b


def test_a_step_is_judged_over_all_its_notices_whatever_their_currencies(ladder, make_customer,
                                                                          make_invoice):
    many_currencies(ladder, make_customer, make_invoice)

    first = reviewed()[1]

    # No currency has 20 notices, the step has 25: enough to judge, and it rarely works.
    assert {c.currency: c.notices for c in first.currencies} == {"EUR": 19, "GBP": 2, "USD": 4}
    assert first.notices == 25
    assert first.share_by_pay_by == D("0.0076")  # 19 notices at 1 %, 6 at nothing
    assert first.flag == "rarely works"
    # The money stays per currency.
    assert money(first)["EUR"] == (19, D("1900.00"), D("19.00"), D("19.00"))


def test_the_currencies_shares_are_weighted_by_their_notices_not_by_their_money(ladder):
    # Ten EUR notices got 80 % of large sums paid, thirty USD notices 10 %
    # of small ones: most notices went largely unpaid. Adding the amounts up
    # (8,030 of 10,300, 78 %) would say it works, and mixes currencies.
    step = policy_review.StepReview(step=ladder[0], notices=40, currencies=[
        policy_review.CurrencyRow("EUR", 10, D("10000.00"), D("8000.00"), D("8000.00")),
        policy_review.CurrencyRow("USD", 30, D("300.00"), D("30.00"), D("30.00")),
    ])

    assert step.share_by_pay_by == D("0.275")
    assert step.flag == "watch"


def test_the_page_and_the_csv_give_one_flag_for_a_step_in_many_currencies(client, manager, ladder,
                                                                          make_customer, make_invoice):
    many_currencies(ladder, make_customer, make_invoice)
    client.force_login(manager)

    html = client.get(URL).content.decode()
    rows = list(csv.reader(io.StringIO(client.get(CSV_URL).content.decode("utf-8-sig"))))

    first = html.split(f'id="step-{ladder[0].pk}"')[1].split('<tr class="step"')[0]
    assert first.count('class="flag"') == 1
    assert '<td class="flag" rowspan="3">rarely works' in first
    assert "1 % paid by the pay-by date over all 25 notices" in first
    assert "too few notices to judge" not in first
    assert "fewer than 20 notices in all, whatever their currencies" in html
    flags = [(row[7], row[-2], row[-1]) for row in rows if row[0] == "Slip review" and row[2] == "1"]
    assert flags == [("EUR", "0.8", "rarely works"), ("GBP", "0.8", "rarely works"),
                     ("USD", "0.8", "rarely works")]


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two():
    assert policy_review.median({4: 1, 7: 1, 15: 1, 19: 1}) == D("11")
    assert policy_review.median({3: 2, 9: 1}) == D("3")
    assert policy_review.median({}) is None


# --- The page -----------------------------------------------------------------------------------


def test_the_page_shows_each_steps_figures_and_flag(client, manager, book):
    client.force_login(manager)

    response = client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Slip review" in html and "from 23 Apr to 21 Jul (90 days)" in html
    assert "EUR 1,800.00" in html and "EUR 900.00 <span class=\"share\">(50 %)</span>" in html
    assert "USD 2,000.00" in html and "USD 0.00 <span class=\"share\">(0 %)</span>" in html
    assert "fewer than 20 notices" in html and "too few notices to judge" in html
    assert 'aria-current="page">Policy review</a>' in html


def test_twenty_notices_mostly_unpaid_are_flagged_to_watch(client, manager, book, ladder, make_customer,
                                                            make_invoice):
    for _ in range(20):
        account = make_customer(currency="EUR")
        invoice = make_invoice(account, issued=day(5, 1), amount="100.00")
        book.notice(ladder[0], account, sent=day(6, 1), pay_by=day(6, 8), lines=[(invoice, "100.00")])
    client.force_login(manager)

    html = client.get(URL).content.decode()

    # EUR: 23 notices, 900 of 3,800 paid by the pay-by date = 24 %.
    assert "EUR 900.00 <span class=\"share\">(24 %)</span>" in html
    # One flag for the step's EUR and USD rows: 23 EUR notices at 24 %, one USD at nothing, 23 %.
    assert '<td class="flag" rowspan="2">watch <span class="muted">(23 % paid by the pay-by date' in html


def test_htmx_gets_the_figures_alone_for_the_period_chosen(client, manager, book):
    client.force_login(manager)

    response = client.get(URL, {"days": "30"}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="policy-review-figures"')
    assert "<html" not in html and "from 22 Jun to 21 Jul (30 days)" in html


def test_the_page_without_javascript_takes_the_same_query(client, manager, book):
    client.force_login(manager)

    html = client.get(URL, {"days": "365"}).content.decode()

    assert "<html" in html and "(365 days)" in html and '<option value="365" selected>' in html


@pytest.mark.parametrize("htmx", [False, True])
def test_a_bad_period_gets_a_clear_message_not_an_error(client, manager, book, htmx):
    client.force_login(manager)

    response = client.get(URL, {"days": "45"}, headers=HTMX if htmx else {})

    html = response.content.decode()
    assert response.status_code == 422
    assert "Choose a period of 30, 90, 180 or 365 days." in html
    assert "Slip review" not in html


def test_a_collectors_page_shows_their_own_accounts_notices(client, collector, book):
    client.force_login(collector)

    response = client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Your accounts" in html and "EUR 1,500.00" in html and "EUR 1,800.00" not in html


def test_a_read_only_colleague_gets_no_review(client, viewer, book):
    client.force_login(viewer)

    assert client.get(URL).status_code == 403
    assert client.get(URL, headers=HTMX).status_code == 403
    assert client.get(CSV_URL).status_code == 403
    assert URL not in client.get(reverse("collections:runs")).content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client):
    assert client.get(URL).status_code == 302


def test_the_page_is_only_read(client, manager, book):
    client.force_login(manager)

    assert client.post(URL).status_code == 405
    assert client.post(URL, headers=HTMX).status_code == 405


def test_the_table_downloads_as_csv_a_row_per_step_and_currency(client, manager, book):
    client.force_login(manager)

    html = client.get(URL).content.decode()
    response = client.get(CSV_URL, {"days": "90"})

    assert f'href="{CSV_URL}" download>' in html
    assert response["Content-Disposition"] == 'attachment; filename="policy-review-2025-08-05.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    slip = [row for row in rows if row[0] == "Slip review"]
    assert slip == [
        ["Slip review", "Occasional slip", "1", "3", "E-mail", "4", "4", "EUR", "3", "1800.00", "900.00",
         "50.0", "1800.00", "100.0", "11", "1", "1", "37.5", "too few notices to judge"],
        ["Slip review", "Occasional slip", "1", "3", "E-mail", "4", "4", "USD", "1", "2000.00", "0.00",
         "0.0", "0.00", "0.0", "11", "1", "1", "37.5", "too few notices to judge"],
        ["Slip review", "Occasional slip", "2", "14", "PDF letter", "1", "1", "EUR", "1", "500.00", "500.00",
         "100.0", "500.00", "100.0", "5", "0", "0", "100.0", "too few notices to judge"],
        ["Slip review", "Occasional slip", "3", "30", "Call task for the collector", "0", "0", "", "", "", "",
         "", "", "", "", "0", "0", "", "too few notices to judge"],
        ["Slip review", "Occasional slip", "4", "45", "Manager review", "0", "0", "", "", "", "",
         "", "", "", "", "0", "0", "", "too few notices to judge"],
    ]


def test_a_bad_period_for_the_csv_gets_the_pages_message(client, manager, book):
    client.force_login(manager)

    response = client.get(CSV_URL, {"days": "7"})

    assert response.status_code == 422
    assert "Choose a period of 30, 90, 180 or 365 days." in response.content.decode()


@pytest.mark.parametrize("more", [False, True])
def test_the_page_costs_the_same_queries_however_many_notices(
    client, manager, book, ladder, make_customer, make_invoice, django_assert_num_queries, more
):
    if more:
        for n in range(12):
            account = make_customer(currency=["EUR", "USD", "GBP"][n % 3])
            invoice = make_invoice(account, issued=day(5, 1), amount="100.00", currency=account.currency)
            book.notice(ladder[n % 2], account, sent=day(6, 1 + n), pay_by=day(6, 8 + n),
                        lines=[(invoice, "100.00")])
            pay(invoice, "40.00", day(6, 2 + n))
    client.force_login(manager)

    # session, user, permissions (2); money, cycles, days to the money, steps; role groups (the page head)
    with django_assert_num_queries(9):
        response = client.get(URL)

    assert response.status_code == 200
