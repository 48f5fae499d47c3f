"""The aged trial balance: each account's open amounts by bucket on a small
ledger worked out by hand, its ranking and paging, who may see which
accounts, the page and its htmx fragment, what it costs in queries, and its
CSV file.

The ledger, today being Tue 5 Aug 2025:

EUR
  Acme (Carla's): 3,000 due 10 Aug (not yet due), 1,200 due 15 Jul (21 days late),
    600 due 10 May (87; a dispute on it rejected), 900 due 31 Mar (127),
    700 due 1 Jul under open dispute                                → 6,400
  "=Evil Corp" (Carla's): 400 due 20 Jun (46), 2,500 due 1 Apr (126)  → 2,900
  Cogs (Otto's): 20 due today (not yet due), 80 due 6 Jul (30 days late, the
    last day of 1–30), 150.50 due 20 Apr (107); a paid and a cancelled
    invoice that never count                                        → 250.50
USD
  Bolt (Otto's): 5,000 due 9 Aug, 1,000 due 31 May (66)              → 6,000
  Acme: 300 due 1 Jun (65)                                           → 300
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from ar_collections import numbers, numbers_views
from ar_collections.models import Dispute, DisputeOutcome, DisputeReason, DisputeStatus, InvoiceStatus
from customers.models import Segment

D = Decimal
TODAY = dt.date(2025, 8, 5)
URL = reverse("collections:numbers_aged")
CSV_URL = reverse("collections:numbers_aged_csv")
HTMX = {"HX-Request": "true"}


def day(month: int, n: int) -> dt.date:
    return dt.date(2025, month, n)


@pytest.fixture(autouse=True)
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def dispute(invoice, *, user, **fields) -> Dispute:
    return Dispute.objects.create(
        customer=invoice.customer,
        invoice=invoice,
        reason=DisputeReason.PRICE,
        description="-",
        opened_by=user,
        opened_on=day(7, 20),
        answer_due_on=day(7, 27),
        disputed_amount=invoice.open_amount,
        **fields,
    )


@pytest.fixture
def ledger(make_customer, make_invoice, collector, other_collector):
    collector.first_name, collector.last_name = "Carla", "Cruz"
    collector.save()
    acme = make_customer(name="Acme", account_number="A-1", currency="EUR", collector=collector,
                         segment=Segment.SYSTEMATIC_LATE)
    evil = make_customer(name="=Evil Corp", account_number="E-1", currency="EUR", collector=collector)
    cogs = make_customer(name="Cogs", account_number="C-1", currency="EUR", collector=other_collector,
                         segment=Segment.PROMPT)
    bolt = make_customer(name="Bolt", account_number="B-1", currency="USD", collector=other_collector)

    make_invoice(acme, issued=day(7, 1), due=day(8, 10), amount="3000.00")
    make_invoice(acme, issued=day(6, 15), due=day(7, 15), amount="1200.00")
    rejected = make_invoice(acme, issued=day(4, 10), due=day(5, 10), amount="600.00")
    dispute(rejected, user=collector, status=DisputeStatus.RESOLVED, outcome=DisputeOutcome.REJECTED,
            resolved_on=day(7, 25), resolved_by=collector)
    make_invoice(acme, issued=day(3, 1), due=day(3, 31), amount="900.00")
    dispute(make_invoice(acme, issued=day(6, 1), due=day(7, 1), amount="700.00"), user=collector)
    make_invoice(acme, issued=day(5, 2), due=day(6, 1), amount="300.00", currency="USD")

    make_invoice(evil, issued=day(5, 21), due=day(6, 20), amount="400.00")
    make_invoice(evil, issued=day(3, 2), due=day(4, 1), amount="2500.00")

    make_invoice(cogs, issued=day(7, 6), due=TODAY, amount="20.00")
    make_invoice(cogs, issued=day(6, 6), due=day(7, 6), amount="80.00")
    make_invoice(cogs, issued=day(3, 21), due=day(4, 20), amount="150.50")
    make_invoice(cogs, issued=day(3, 1), due=day(3, 31), amount="999.00", paid_on=day(4, 2))
    cancelled = make_invoice(cogs, issued=day(3, 1), due=day(3, 31), amount="777.00")
    cancelled.status = InvoiceStatus.CANCELLED
    cancelled.save(update_fields=["status"])

    make_invoice(bolt, issued=day(7, 10), due=day(8, 9), amount="5000.00")
    make_invoice(bolt, issued=day(5, 1), due=day(5, 31), amount="1000.00")
    return {"acme": acme, "evil": evil, "cogs": cogs, "bolt": bolt}


def balances(scope: numbers.Scope | None = None, bucket: str | None = None) -> list[tuple]:
    rows = numbers.aged_balances(scope or numbers.Scope(), today=TODAY, bucket=bucket)
    return [(a.currency, a.name, *a.buckets, a.total, a.invoices) for a in numbers.aged_accounts(rows)]


def names(html: str) -> list[str]:
    """The accounts the page lists, in its order."""
    return [part.split("</a>", 1)[0].split(">")[-1] for part in html.split('<th scope="row"><a href=')[1:]]


# --- The figures ------------------------------------------------------------------------------


def test_each_account_shows_its_open_amounts_by_bucket_per_currency_biggest_first(ledger):
    assert balances() == [
        # currency, account, not yet due, 1–30, 31–60, 61–90, over 90, disputed, total, invoices
        ("EUR", "Acme", D("3000.00"), D("1200.00"), D("0.00"), D("600.00"), D("900.00"), D("700.00"),
         D("6400.00"), 5),
        ("EUR", "=Evil Corp", D("0.00"), D("0.00"), D("400.00"), D("0.00"), D("2500.00"), D("0.00"),
         D("2900.00"), 2),
        ("EUR", "Cogs", D("20.00"), D("80.00"), D("0.00"), D("0.00"), D("150.50"), D("0.00"),
         D("250.50"), 3),
        ("USD", "Bolt", D("5000.00"), D("0.00"), D("0.00"), D("1000.00"), D("0.00"), D("0.00"),
         D("6000.00"), 2),
        ("USD", "Acme", D("0.00"), D("0.00"), D("0.00"), D("300.00"), D("0.00"), D("0.00"),
         D("300.00"), 1),
    ]


def test_the_accounts_add_up_to_the_numbers_pages_aging(ledger):
    rows = numbers.aged_accounts(numbers.aged_balances(numbers.Scope(), today=TODAY))
    july = numbers.Period.ending(day(7, 1), months=1)
    for currency in numbers.figures(numbers.Scope(), today=TODAY, periods=[july]):
        columns = [sum((a.buckets[i] for a in rows if a.currency == currency.currency), D("0"))
                   for i in range(len(numbers.AGED_COLUMNS))]
        assert columns == [row.amount for row in currency.aging] + [currency.disputed.amount]


def test_each_row_carries_the_accounts_collector_segment_and_oldest_due_date(ledger):
    acme = numbers.aged_accounts(numbers.aged_balances(numbers.Scope(), today=TODAY))[0]

    assert (acme.customer_id, acme.account_number, acme.collector, acme.segment, acme.oldest_due) == (
        ledger["acme"].pk, "A-1", "Carla Cruz", "Systematic late payer", day(3, 31)
    )


def test_a_bucket_keeps_only_the_accounts_with_money_in_it_biggest_there_first(ledger):
    assert [(row[1], row[6]) for row in balances(bucket="late_over_90")] == [
        ("=Evil Corp", D("2500.00")),
        ("Acme", D("900.00")),
        ("Cogs", D("150.50")),
    ]
    assert [(row[0], row[1]) for row in balances(bucket="late_61_90")] == [
        ("EUR", "Acme"), ("USD", "Bolt"), ("USD", "Acme")
    ]
    assert [row[1] for row in balances(bucket="disputed")] == ["Acme"]


def test_the_balance_narrows_to_one_collector_and_one_currency(ledger, other_collector):
    assert [(r[0], r[1]) for r in balances(numbers.Scope(collector_id=other_collector.pk))] == [
        ("EUR", "Cogs"), ("USD", "Bolt")
    ]
    assert [r[1] for r in balances(numbers.Scope(currency="USD"))] == ["Bolt", "Acme"]


# --- The page ---------------------------------------------------------------------------------


def test_a_bucket_on_the_numbers_page_leads_to_the_accounts_with_money_in_it(client, manager, ledger):
    client.force_login(manager)

    numbers_html = client.get(reverse("collections:numbers")).content.decode()
    link = f"{URL}?bucket=late_over_90&amp;currency=EUR"
    assert f'<a href="{link}"' in numbers_html

    response = client.get(URL, {"bucket": "late_over_90", "currency": "EUR"})

    html = response.content.decode()
    assert response.status_code == 200
    assert names(html) == ["=Evil Corp", "Acme", "Cogs"]
    assert f'<a href="{reverse("customers:detail", args=[ledger["evil"].pk])}">=Evil Corp</a>' in html
    assert "Accounts with money over 90 days late today, biggest there first" in html
    assert "€2,500.00" in html or "2,500.00" in html


def test_the_table_s_caption_dates_the_balance_as_the_pages_write_dates(client, manager, ledger):
    """A screen reader reads the caption: "5 Aug 2025", not "2025-08-05"."""
    client.force_login(manager)

    html = client.get(URL).content.decode()

    caption = re.search(r"<caption[^>]*>(.*?)</caption>", html, re.S).group(1)
    assert caption.strip() == "Open amounts per account and bucket, as of 5 Aug 2025"


def test_a_manager_may_narrow_the_balance_to_one_collector(client, manager, ledger, other_collector):
    client.force_login(manager)

    html = client.get(URL, {"collector": other_collector.pk}).content.decode()

    assert names(html) == ["Cogs", "Bolt"]


def test_a_collector_sees_only_their_own_accounts_whatever_the_query_says(
    client, collector, ledger, other_collector
):
    client.force_login(collector)

    response = client.get(URL, {"collector": other_collector.pk})

    html = response.content.decode()
    assert response.status_code == 200
    assert names(html) == ["Acme", "=Evil Corp", "Acme"]
    assert 'name="collector"' not in html


def test_a_read_only_colleague_gets_no_balance_nor_file(client, viewer, ledger):
    client.force_login(viewer)

    assert client.get(URL).status_code == 403
    assert client.get(URL, headers=HTMX).status_code == 403
    assert client.get(CSV_URL).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    assert client.get(URL).status_code == 302
    assert client.get(CSV_URL).status_code == 302


def test_htmx_gets_the_accounts_alone_and_the_plain_page_takes_the_same_query(client, manager, ledger):
    client.force_login(manager)

    fragment = client.get(URL, {"bucket": "disputed"}, headers=HTMX).content.decode()
    page = client.get(URL, {"bucket": "disputed"}).content.decode()

    assert fragment.lstrip().startswith('<section id="aged-balances"')
    assert "<html" not in fragment and names(fragment) == ["Acme"]
    assert "<html" in page and names(page) == ["Acme"]
    assert '<option value="disputed" selected>' in page


@pytest.mark.parametrize("htmx", [False, True])
def test_a_bad_bucket_gets_a_clear_message_not_an_error(client, manager, ledger, htmx):
    client.force_login(manager)

    response = client.get(URL, {"bucket": "over_9000"}, headers=HTMX if htmx else {})

    html = response.content.decode()
    assert response.status_code == 422
    assert "Choose a bucket from the list." in html
    assert names(html) == []


def test_the_balance_comes_a_page_at_a_time(client, manager, ledger, monkeypatch):
    monkeypatch.setattr(numbers_views, "AGED_PAGE_SIZE", 2)
    client.force_login(manager)

    first = client.get(URL).content.decode()
    second = client.get(URL, {"page": "2"}, headers=HTMX).content.decode()
    last = client.get(URL, {"page": "3"}).content.decode()

    assert names(first) == ["Acme", "=Evil Corp"] and "Page 1 of 3" in first
    assert names(second) == ["Cogs", "Bolt"] and "Page 2 of 3" in second
    assert names(last) == ["Acme"] and 'rel="next"' not in last


def totals_row(html: str, currency: str) -> list[str]:
    row = re.search(rf'<tr id="aged-total-{currency}".*?</tr>', html, re.S).group(0)
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def test_every_page_shows_each_currency_s_totals_of_the_whole_balance_to_tie_to_the_ledger(
    client, manager, ledger, monkeypatch
):
    # Two accounts a page: the totals are of all five rows, whichever page is read, so a
    # month end is tied to the ledger without adding up pages or the file by hand.
    monkeypatch.setattr(numbers_views, "AGED_PAGE_SIZE", 2)
    client.force_login(manager)

    for html in [client.get(URL).content.decode(),
                 client.get(URL, {"page": "3"}, headers=HTMX).content.decode()]:
        assert totals_row(html, "EUR") == [
            "Total EUR", "3 accounts", "EUR 3,020.00", "EUR 1,280.00", "EUR 400.00", "EUR 600.00",
            "EUR 3,550.50", "EUR 700.00", "EUR 9,550.50", "10", "",
        ]
        assert totals_row(html, "USD") == [
            "Total USD", "2 accounts", "USD 5,000.00", "—", "—", "USD 1,300.00", "—", "—", "USD 6,300.00",
            "3", "",
        ]


def test_the_totals_are_those_of_the_accounts_chosen(client, manager, ledger):
    client.force_login(manager)

    html = client.get(URL, {"bucket": "late_over_90", "currency": "EUR"}).content.decode()

    assert totals_row(html, "EUR")[:2] == ["Total EUR", "3 accounts"]
    assert totals_row(html, "EUR")[-3] == "EUR 9,550.50"
    assert 'id="aged-total-USD"' not in html


@pytest.mark.parametrize("as_of", [None, "2025-07-31"])
@pytest.mark.parametrize("more", [False, True])
def test_the_balance_costs_the_same_queries_however_big_the_book(
    client, manager, ledger, make_customer, make_invoice, collector, django_assert_num_queries, more, as_of
):
    if more:
        for n in range(60):
            account = make_customer(currency=["EUR", "USD", "GBP"][n % 3], collector=collector)
            invoice = make_invoice(account, issued=day(4, 1 + n % 28), amount="100.00")
            if n % 4 == 0:
                dispute(invoice, user=collector)
    client.force_login(manager)

    # session, user, permissions (2), collectors, currencies; count and page of accounts,
    # and the totals per currency of every page (the month end ties to the ledger on the
    # page); role groups (the page head); as of a past day, the day the book begins too (no
    # day before it is shown), and the count is the totals' accounts summed, not a third
    # reading of the ledger. Not the money on account (one more without a bucket): it is
    # in no bucket, so it is not shown beside one bucket's accounts.
    with django_assert_num_queries(10):
        response = client.get(URL, {"bucket": "late_over_90", **({"as_of": as_of} if as_of else {})})

    assert response.status_code == 200
    assert names(response.content.decode())[:3] == ["=Evil Corp", "Acme", "Cogs"]


# --- The CSV file -----------------------------------------------------------------------------


def download(client, query: dict | None = None):
    response = client.get(CSV_URL, query or {})
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    # Marked as UTF-8 for Excel, which otherwise garbles accented names.
    assert body.startswith("\ufeff".encode())
    return response, body.decode("utf-8-sig")


def test_the_csv_holds_every_account_with_plain_amounts_iso_dates_and_harmless_names(
    client, manager, ledger, monkeypatch
):
    # Every page's accounts, not the one shown.
    monkeypatch.setattr(numbers_views, "AGED_PAGE_SIZE", 2)
    client.force_login(manager)

    response, text = download(client, {"currency": "EUR"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="aged-trial-balance-2025-08-05.csv"'
    assert list(csv.reader(io.StringIO(text))) == [
        ["Currency", "As of", "Account number", "Account", "Collector", "Segment", "Not yet due",
         "1-30 days late", "31-60 days late", "61-90 days late", "Over 90 days late", "Under open dispute",
         "Total open", "Open invoices", "Oldest due date", "Row"],
        ["EUR", "2025-08-05", "A-1", "Acme", "Carla Cruz", "Systematic late payer", "3000.00", "1200.00",
         "0.00", "600.00", "900.00", "700.00", "6400.00", "5", "2025-03-31", "account"],
        # A name a spreadsheet would run as a formula is written as text.
        ["EUR", "2025-08-05", "E-1", "'=Evil Corp", "Carla Cruz", "New", "0.00", "0.00", "400.00", "0.00",
         "2500.00", "0.00", "2900.00", "2", "2025-04-01", "account"],
        ["EUR", "2025-08-05", "C-1", "Cogs", "otto", "Prompt payer", "20.00", "80.00", "0.00", "0.00",
         "150.50", "0.00", "250.50", "3", "2025-04-20", "account"],
        # Every account's, whatever the page size: the page's total line.
        ["EUR", "2025-08-05", "", "Total, 3 accounts", "", "", "3020.00", "1280.00", "400.00",
         "600.00", "3550.50", "700.00", "9550.50", "10", "", "total"],
    ]
    assert text.endswith("\r\n")


def test_the_csv_takes_the_pages_choices_and_a_collectors_own_accounts(
    client, collector, ledger, other_collector
):
    client.force_login(collector)

    _, text = download(client, {"collector": other_collector.pk, "bucket": "late_61_90"})

    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert [(row[0], row[3], row[9]) for row in rows if row[-1] == "account"] == [
        ("EUR", "Acme", "600.00"), ("USD", "Acme", "300.00")
    ]


def test_a_bad_choice_for_the_csv_gets_the_pages_message(client, manager, ledger):
    client.force_login(manager)

    response = client.get(CSV_URL, {"currency": "XXX"})

    assert response.status_code == 422
    assert "Choose a currency from the list." in response.content.decode()


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+31 20 555", "'+31 20 555"),
        ("-Bad", "'-Bad"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("Acme = good", "Acme = good"),
        ("", ""),
    ],
)
def test_a_text_cell_starting_like_a_formula_is_made_plain_text(text, written):
    assert numbers_views.csv_text(text) == written


def test_the_collections_menu_shows_the_aged_balance_under_numbers(client, manager, ledger):
    client.force_login(manager)

    html = client.get(URL).content.decode()

    assert f'<a href="{reverse("collections:numbers")}" aria-current="page">Numbers</a>' in html


def test_each_account_s_amounts_have_their_currency_s_places_whatever_the_database_sums_to():
    # SQLite sums decimals to ten places; yen have none.
    row = {"customer_id": 1, "customer__account_number": "A-1", "customer__name": "Acme", "currency": "EUR",
           "customer__collector__first_name": "", "customer__collector__last_name": "",
           "customer__collector__username": "otto", "customer__segment": "prompt",
           "total": Decimal("64914.3900000000"), "invoices": 2, "oldest_due": dt.date(2025, 3, 31),
           **{key: Decimal("104911.5") for key, _ in numbers.AGED_COLUMNS}}

    eur, jpy = numbers.aged_accounts([row, {**row, "currency": "JPY", "total": Decimal("1858.00")}])

    assert [str(a) for a in (*eur.buckets, eur.total)] == ["104911.50"] * 6 + ["64914.39"]
    assert [str(a) for a in (*jpy.buckets, jpy.total)] == ["104912"] * 6 + ["1858"]
