"""The Numbers page: the measures a credit manager reads every Monday, and
the aged trial balance behind its aging (each account's open amount by
bucket), on a page and as a CSV file; the period's figures as a CSV file too.

Managers see the whole book and may narrow it to one collector's accounts and
to one currency; a collector sees their own accounts' figures; read-only
colleagues have no numbers. One view serves each page and, to htmx, its
figures region alone.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import re
from collections.abc import Iterator

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from ar_collections import numbers
from arcrm.dates import format_day
from arcrm.htmx import wants_fragment
from arcrm.money import quantize
from arcrm.text import person_name

WORK = "customers.change_customer"
ACT_ON_ANY = "customers.act_on_any_customer"
MONTH = re.compile(r"(\d{4})-(\d{2})")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
DEFAULT_LENGTH = 3
AGED_PAGE_SIZE = 50
# Rows fetched at a time while the CSV streams: a whole book's accounts are
# never held in memory at once.
CSV_CHUNK = 2000


class ScopeForm(forms.Form):
    """Whose figures: for a manager, the whole book or one collector's
    accounts; for everyone, every currency or one."""

    collector = forms.ChoiceField(
        label="Collector",
        required=False,
        error_messages={"invalid_choice": "Choose a collector from the list."},
    )
    currency = forms.ChoiceField(
        label="Currency",
        required=False,
        error_messages={"invalid_choice": "Choose a currency from the list."},
    )

    def __init__(self, *args, manager: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if manager:
            owners = (
                User.objects.filter(collected_customers__isnull=False)
                .distinct()
                .order_by("first_name", "last_name", "username")
            )
            self.fields["collector"].choices = [
                ("", "Whole book"),
                *((str(u.pk), person_name(u)) for u in owners),
            ]
        else:
            del self.fields["collector"]
        self.fields["currency"].choices = [
            ("", "Every currency"),
            *((c, c) for c in numbers.currencies_in_use()),
        ]

    def scope(self, user) -> numbers.Scope:
        chosen = self.cleaned_data.get("collector")
        collector_id = int(chosen) if chosen else None
        if "collector" not in self.fields:
            # A collector's numbers are their own accounts', whatever the query says.
            collector_id = user.pk
        return numbers.Scope(collector_id=collector_id, currency=self.cleaned_data["currency"] or None)


class NumbersForm(ScopeForm):
    """What the page shows: the period's last month and its length, and for a
    manager whose accounts and which currency."""

    field_order = ["month", "months", "collector", "currency"]

    month = forms.CharField(
        label="Period ending with",
        required=False,
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
    )
    months = forms.TypedChoiceField(
        label="Length",
        coerce=int,
        choices=[(n, f"{n} month{'s' if n > 1 else ''}") for n in numbers.PERIOD_LENGTHS],
        error_messages={"invalid_choice": "Choose a period of 1, 3, 6 or 12 months."},
    )

    def __init__(self, *args, today: dt.date, manager: bool, **kwargs) -> None:
        super().__init__(*args, manager=manager, **kwargs)
        self.today = today
        self.last_full = numbers.last_full_month(today)
        self.earliest = numbers.earliest_month(today)
        # This month may be chosen too: its figures run to today.
        self.fields["month"].widget.attrs.update(min=f"{self.earliest:%Y-%m}", max=f"{today:%Y-%m}")

    def clean_month(self) -> dt.date:
        text = self.cleaned_data["month"].strip()
        if not text:
            return self.last_full
        match = MONTH.fullmatch(text)
        if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1900:
            raise forms.ValidationError(
                f"Write the month as year and month, e.g. {self.last_full:%Y-%m}; {text!r} is not one."
            )
        month = dt.date(int(match[1]), int(match[2]), 1)
        if month > self.today:
            raise forms.ValidationError(
                f"{month:%B %Y} has not begun yet; the latest month is {self.today:%B %Y}, to date."
            )
        if month < self.earliest:
            raise forms.ValidationError(
                f"The numbers go back {numbers.YEARS_BACK} years: "
                f"choose a month from {self.earliest:%B %Y} on."
            )
        return month

    def periods(self) -> list[numbers.Period]:
        """The end month alone, and the chosen length ending with it (the two
        are one when the length is a month)."""
        month, length = self.cleaned_data["month"], self.cleaned_data["months"]
        lengths = [1] if length == 1 else [1, length]
        return [numbers.Period.ending(month, months=n, today=self.today) for n in lengths]


class AgedForm(ScopeForm):
    """The aged trial balance's choices: the day it is as of (today, or a past
    day's end), whose accounts, which currency, and optionally one bucket
    (only the accounts with money in it, ranked by it).

    A day that cannot be shown is not an error of the form: the balance of
    today is shown, and `day_problem` says why the day was not; the other
    choices stand."""

    field_order = ["as_of", "collector", "currency", "bucket"]

    as_of = forms.CharField(
        label="As of",
        required=False,
        widget=forms.TextInput(attrs={"type": "date", "placeholder": "YYYY-MM-DD"}),
    )
    bucket = forms.ChoiceField(
        label="Accounts with money",
        required=False,
        choices=[("", "Anywhere open"), *numbers.AGED_COLUMNS],
        error_messages={"invalid_choice": "Choose a bucket from the list."},
    )

    def __init__(self, *args, today: dt.date, manager: bool, **kwargs) -> None:
        super().__init__(*args, manager=manager, **kwargs)
        self.today = today
        self.day_problem = ""
        self.fields["as_of"].widget.attrs.update(max=today.isoformat())

    def clean_as_of(self) -> dt.date | None:
        """The past day chosen; None for today (nothing chosen, today, or a
        day that cannot be shown, with `day_problem` saying why)."""
        text = self.cleaned_data["as_of"].strip()
        if not text:
            return None
        try:
            day = dt.date.fromisoformat(text) if DAY.fullmatch(text) else None
        except ValueError:  # 2025-02-30
            day = None
        if day is None:
            month_end = self.today.replace(day=1) - dt.timedelta(days=1)
            self.day_problem = (f"Write the day as year, month and day, e.g. {month_end.isoformat()}; "
                                f"{text!r} is not one.")
        elif day > self.today:
            self.day_problem = (f"{format_day(day)} is still to come: choose a day up to today, "
                                f"{format_day(self.today)}.")
        elif day < self.today:
            # Before the first invoice nothing was owed: a page of nothing
            # would read as a real day's balance (a mistyped year, say).
            begins = numbers.book_begins()
            if begins is None or day < begins:
                self.day_problem = (
                    f"The book begins on {format_day(begins)}, its first invoice's day: choose a day from "
                    "then on." if begins else "No invoice is recorded yet: there is no past day to show.")
        return day if day is not None and day < self.today and not self.day_problem else None


def numbers_reader(request: HttpRequest) -> bool:
    """Whether the user may read the numbers (else 403); True for a manager."""
    # Figures about many accounts' money are for those who work the accounts.
    if not request.user.has_perm(WORK):
        raise PermissionDenied("The numbers are for collectors and managers.")
    return request.user.has_perm(ACT_ON_ANY)


def _with_defaults(query: QueryDict, *, today: dt.date) -> dict[str, str]:
    data = {"month": f"{numbers.last_full_month(today):%Y-%m}", "months": str(DEFAULT_LENGTH)}
    data.update({key: query[key] for key in query if key in ("month", "months", "collector", "currency")})
    return data


@login_required
@require_safe
def numbers_page(request: HttpRequest) -> HttpResponse:
    """Aging today, DSO, countback, best-possible DSO, ADD and CEI for the
    period, write-offs, credit notes and disputes in it, and the cash
    expected in the next weeks; per currency."""
    manager = numbers_reader(request)
    today = timezone.localdate()
    form = NumbersForm(_with_defaults(request.GET, today=today), today=today, manager=manager)
    context = {"form": form, "manager": manager, "today": today, "figures": None, "periods": []}
    status = 200
    if form.is_valid():
        context["periods"] = periods = form.periods()
        context["figures"] = numbers.figures(form.scope(request.user), today=today, periods=periods)
        context["weeks"] = numbers.FORECAST_WEEKS
    else:
        # As a rejected form: base.html swaps a 422 in, so the message shows where the figures were.
        status = 422
    template = "collections/numbers.html"
    if wants_fragment(request):
        template += "#numbers-figures"
    return render(request, template, context, status=status)


def _aged_query(query: QueryDict) -> dict[str, str]:
    return {key: query[key] for key in query if key in ("as_of", "collector", "currency", "bucket")}


def _aged_rows(form: AgedForm, request: HttpRequest):
    return numbers.aged_balances(form.scope(request.user), today=form.today, on=form.cleaned_data["as_of"],
                                 bucket=form.cleaned_data["bucket"] or None)


@login_required
@require_safe
def numbers_aged(request: HttpRequest) -> HttpResponse:
    """The aged trial balance: each account's open amount by bucket, per
    currency, with its collector and segment; biggest first, a page at a time.
    Today's, or as of the end of a past day."""
    manager = numbers_reader(request)
    today = timezone.localdate()
    form = AgedForm(_aged_query(request.GET), today=today, manager=manager)
    context = {"form": form, "manager": manager, "today": today, "columns": numbers.AGED_COLUMNS}
    status = 200
    if form.is_valid():
        context["as_of"] = form.cleaned_data["as_of"]
        rows = _aged_rows(form, request)
        page = Paginator(rows, AGED_PAGE_SIZE).get_page(request.GET.get("page"))
        page.object_list = numbers.aged_accounts(page.object_list)
        context["page"] = page
        # Under every page, the whole balance's: a month end ties to the ledger on the page.
        context["totals"] = numbers.aged_totals(rows) if page.object_list else []
        context["bucket_label"] = dict(numbers.AGED_COLUMNS).get(form.cleaned_data["bucket"])
        # The money on account beside the invoices, so the balance's total reconciles to the
        # ledger; in no bucket, so not beside one bucket's accounts.
        if not form.cleaned_data["bucket"]:
            context["on_account"] = numbers.on_account(form.scope(request.user),
                                                       day=form.cleaned_data["as_of"] or today)
    else:
        status = 422
    template = "collections/numbers_aged.html"
    if wants_fragment(request):
        template += "#aged-balances"
    return render(request, template, context, status=status)


class _Echo:
    """A file that hands back what is written to it, for csv.writer to format one row at a time."""

    def write(self, text: str) -> str:
        return text


def csv_text(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula: one starting with
    = + - @ (or a tab or carriage return, which some spreadsheets skip before
    reading one) gets a leading apostrophe, which they show as text. Only text
    cells: an amount is written as a plain number and stays one."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


AGED_CSV_HEADER = [
    "Currency",
    # The day each row is as of, today's or a past one's, as the Numbers
    # file names its period: a row copied into a reconciliation keeps it.
    "As of",
    "Account number",
    "Account",
    "Collector",
    "Segment",
    # Plain hyphens: the headings are read by programs as well as by people.
    "Not yet due",
    "1-30 days late",
    "31-60 days late",
    "61-90 days late",
    "Over 90 days late",
    "Under open dispute",
    "Total open",
    "Open invoices",
    "Oldest due date",
    # What the row is: "account" (one account's open invoices), "total" (a
    # currency's accounts summed) or "on_account" (a currency's money on
    # account, as a negative amount: the ledger's receivables are the open
    # invoices less it). A column rather than totals after a blank line: a
    # spreadsheet's filter, pivot table or SUMIF picks the account rows by it
    # and never adds a total to the accounts it sums, where a blank line ends
    # the table a spreadsheet detects and a sum over the column counts twice.
    # The last column, so every other keeps the place it has always had for
    # a program reading the file by position.
    "Row",
]


def _aged_csv_rows(rows, *, day: dt.date, scope: numbers.Scope, bucket: str) -> Iterator[list[str]]:
    yield AGED_CSV_HEADER
    # After the accounts, as under the page: each currency's total, summed
    # from the very rows written (not read again, when a payment recorded
    # meanwhile would make it disagree with them), then its money on account
    # that day. Money on account is in no bucket: a file of one bucket's
    # accounts has none. Per currency: the columns summed, total open, open
    # invoices and accounts.
    totals: dict[str, list] = {}
    chunk = []
    for row in rows.iterator(chunk_size=CSV_CHUNK):
        chunk.append(row)
        if len(chunk) == CSV_CHUNK:
            yield from _aged_csv_lines(chunk, day=day, totals=totals)
            chunk = []
    yield from _aged_csv_lines(chunk, day=day, totals=totals)
    for currency in sorted(totals):
        *amounts, invoices, accounts = totals[currency]
        named = f"Total, {accounts} account{'s' if accounts != 1 else ''}"
        yield [currency, day.isoformat(), "", named, "", "", *(str(amount) for amount in amounts),
               str(invoices), "", "total"]
    if bucket:
        return
    for money in numbers.on_account(scope, day=day):
        yield [money.currency, day.isoformat(), "",
               f"Money on account: payments {money.payments}, credit notes {money.credit_notes}", "", "",
               *("" for _ in numbers.AGED_COLUMNS), str(-money.total), "", "", "on_account"]


def _aged_csv_lines(chunk: list[dict], *, day: dt.date, totals: dict[str, list]) -> Iterator[list[str]]:
    for account in numbers.aged_accounts(chunk):
        row = [*account.buckets, account.total, account.invoices, 1]
        summed = totals.get(account.currency)
        totals[account.currency] = (
            row if summed is None else [a + b for a, b in zip(summed, row, strict=True)])
        yield [
            account.currency,
            day.isoformat(),
            csv_text(account.account_number),
            csv_text(account.name),
            csv_text(account.collector),
            csv_text(account.segment),
            # Plain decimals, a point and two places: no thousands separators or currency signs.
            *(str(amount) for amount in account.buckets),
            str(account.total),
            str(account.invoices),
            account.oldest_due.isoformat(),
            "account",
        ]


@login_required
@require_safe
def numbers_aged_csv(request: HttpRequest) -> HttpResponse:
    """The aged trial balance as a CSV file: every account the page would
    list (all pages), streamed as it is read; today's, or as of a past day."""
    manager = numbers_reader(request)
    today = timezone.localdate()
    form = AgedForm(_aged_query(request.GET), today=today, manager=manager)
    if not form.is_valid() or form.day_problem:
        # A file cannot carry the message: the page does, with the same query.
        # Nor would today's file do for the day asked for: it would be reconciled as that day's.
        return numbers_aged(request)
    day = form.cleaned_data["as_of"] or today
    writer = csv.writer(_Echo())
    rows = _aged_csv_rows(_aged_rows(form, request), day=day, scope=form.scope(request.user),
                          bucket=form.cleaned_data["bucket"])
    lines = (writer.writerow(line) for line in rows)
    response = StreamingHttpResponse(itertools.chain([EXCEL_KNOWS_UTF8], lines),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"aged-trial-balance-{day.isoformat()}.csv")
    return response


# A byte-order mark first: without it Excel, where most of these files are
# opened, reads UTF-8 as the local code page and garbles "Müller" and "Łódź".
# The product's own import strips one.
EXCEL_KNOWS_UTF8 = "\ufeff"

# The roll-forward's lines in the period's file: its field and its heading.
ROLL_FORWARD_LINES = [
    ("invoiced", "invoiced"),
    ("cancelled", "cancelled (still owed)"),
    ("corrected", "corrected by disputes"),
    ("credit_notes", "credit notes set against invoices"),
    ("payments", "payments set against invoices"),
    ("reversed", "payments reversed"),
    ("written_off", "written off"),
]

NUMBERS_CSV_HEADER = [
    "Currency",
    "Period start",
    "Period end",
    "Months",
    # As the page names it: the month in progress says "to date", so a file
    # of its first days is not read as the whole month.
    "Period",
    "Receivables at the start",
    "Credit sales",
    "Receivables at the end",
    "Not yet due at the end",
    "DSO simple (days)",
    "DSO countback (days)",
    "Countback complete",
    "Best-possible DSO (days)",
    "ADD (days)",
    "CEI (%)",
    "Written off",
    "Write-offs",
    "Credit notes",
    "Credit notes count",
    "Disputes opened",
    "Disputes opened count",
    "Disputes caused by us",
    "Disputes caused by us count",
    # The roll-forward, the start plus these being the end (numbers.RollForward).
    *(f"Roll-forward: {line}" for _, line in ROLL_FORWARD_LINES),
]


def _plain(value) -> str:
    # A measure without a divisor is not defined: an empty cell, as the page's dash.
    return "" if value is None else str(value)


def _money(amount, currency: str) -> str:
    # In the currency's places, as the page shows it (SQLite sums to ten places).
    return "" if amount is None else str(quantize(amount, currency))


@login_required
@require_safe
def numbers_csv(request: HttpRequest) -> HttpResponse:
    """The period's figures as a CSV file: a row per currency and period (the
    end month alone and the chosen length), as the page shows them."""
    manager = numbers_reader(request)
    today = timezone.localdate()
    form = NumbersForm(_with_defaults(request.GET, today=today), today=today, manager=manager)
    if not form.is_valid():
        return numbers_page(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"numbers-{today.isoformat()}.csv")
    response.write(EXCEL_KNOWS_UTF8)
    writer = csv.writer(response)
    writer.writerow(NUMBERS_CSV_HEADER)
    for c in numbers.figures(form.scope(request.user), today=today, periods=form.periods()):
        for p in c.periods:
            writer.writerow([
                c.currency,
                p.period.start.isoformat(),
                p.period.end.isoformat(),
                p.period.months,
                p.period.label,
                *(_money(v, c.currency) for v in (p.opening, p.sales, p.closing, p.closing_current)),
                _plain(p.dso),
                _plain(p.countback.days),
                "yes" if p.countback.complete else "no",
                *(_plain(v) for v in (p.best_possible_dso, p.add, p.cei)),
                *(
                    cell
                    for amount in (p.write_offs, p.credit_notes, p.disputes, p.disputes_ours)
                    for cell in (_money(amount.amount, c.currency), amount.count)
                ),
                *(_money(getattr(p.moves, key), c.currency) for key, _ in ROLL_FORWARD_LINES),
            ])
    return response
