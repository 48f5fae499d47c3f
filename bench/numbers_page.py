"""Benchmark: the Numbers page for the whole book of a large ledger.

Builds a scratch PostgreSQL database with COPY (default 100,000 customers in
four currencies and 1,000,000 invoices issued over eighteen months, about
80 % paid, with partial payments, credit notes, write-offs, disputes, open
promises, payment plans and each customer's payment behaviour), then asks
for the Numbers page as a manager — the whole book, every currency, the last
full month and the three months ending with it — and prints the server time
(best and median of --repeat requests, in the process, through Django's
test client), the SQL statements and how many rows the figures rest on; then
the same for the aged trial balance's first page (every account, and those
with money over 90 days late) and its CSV file of the whole book, today's and
as of the last month end.

    .venv/bin/python bench/numbers_page.py [--customers N] [--invoices N] [--repeat N] [--keep]

Needs PostgreSQL: BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/arcrm_bench_numbers); the database is
dropped and created anew unless --keep reuses a previous build.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine
from bench.scratch import COPY_CUSTOMERS, django_on_scratch_database

ON = dt.date(2026, 7, 6)
STAMP = "2026-01-01T00:00:00Z"
CURRENCIES = {"EUR": 80, "USD": 10, "GBP": 7, "CHF": 3}
COLLECTORS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="reuse the database of an earlier run")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/arcrm_bench_numbers")
    django_on_scratch_database(url, recreate=not args.keep)
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    if not args.keep:
        started = time.perf_counter()
        _load(connection, customers=args.customers, invoices=args.invoices)
        print(
            f"built {args.customers:,} customers / {args.invoices:,} invoices with COPY "
            f"in {time.perf_counter() - started:.1f} s"
        )
    # Static files by their plain names: the page's time is the figures', and
    # the hashed names would need `collectstatic` first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    manager, _ = User.objects.get_or_create(username="bench-manager")
    manager.groups.add(Group.objects.get(name="Manager"))
    client = Client(HTTP_HOST="localhost")
    client.force_login(manager)

    import time_machine

    timings = []
    with time_machine.travel(dt.datetime.combine(ON, dt.time(9), tzinfo=dt.UTC), tick=True):
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get("/collections/numbers/", secure=True)
                timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
        slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:3]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM collections_invoice), "
            "(SELECT count(*) FROM collections_allocation), "
            "(SELECT count(*) FROM collections_invoice WHERE status = 'open')"
        )
        invoices, allocations, still_open = cursor.fetchone()
    print(machine.describe())
    print(f"ledger: {invoices:,} invoices ({still_open:,} open), {allocations:,} allocations")
    print(
        f"Numbers page, whole book, as of {ON}: best {min(timings) * 1000:,.0f} ms, "
        f"median {statistics.median(timings) * 1000:,.0f} ms over {args.repeat} requests; "
        f"{len(queries)} SQL statements"
    )
    for query in slowest:
        print(f"  {float(query['time']) * 1000:7.0f} ms  {query['sql'][:100]}")

    with time_machine.travel(dt.datetime.combine(ON, dt.time(9), tzinfo=dt.UTC), tick=True):
        for label, url in [
            ("aged trial balance, first page", "/collections/numbers/aged/"),
            ("aged trial balance, over 90 days late", "/collections/numbers/aged/?bucket=late_over_90"),
            ("aged trial balance as CSV, whole book", "/collections/numbers/aged.csv"),
            # Rebuilt from the ledger: every invoice issued by then, not only those open today.
            ("aged trial balance as of the last month end, first page",
             f"/collections/numbers/aged/?as_of={ON.replace(day=1) - dt.timedelta(days=1)}"),
            ("aged trial balance as of the last month end as CSV, whole book",
             f"/collections/numbers/aged.csv?as_of={ON.replace(day=1) - dt.timedelta(days=1)}"),
        ]:
            timings, size = [], 0
            for _ in range(args.repeat):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(url, secure=True)
                    # A streamed file's time is until its last row is sent.
                    size = len(b"".join(response.streaming_content)) if response.streaming else 0
                    timings.append(time.perf_counter() - started)
                assert response.status_code == 200, response.status_code
            print(
                f"{label}: best {min(timings) * 1000:,.0f} ms, "
                f"median {statistics.median(timings) * 1000:,.0f} ms over {args.repeat} requests; "
                f"{len(queries)} SQL statements"
                + (f"; {size / 1e6:.1f} MB" if size else "")
            )


def _pick(rng: random.Random, shares: dict[str, int]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _load(connection, *, customers: int, invoices: int) -> None:
    """COPY a deterministic ledger: per customer a payer habit drives its lateness."""
    from django.contrib.auth.models import Group, User

    rng = random.Random(5)
    collectors = []
    for n in range(COLLECTORS):
        user = User.objects.create_user(f"bench-collector-{n}")
        user.groups.add(Group.objects.get(name="Collector"))
        collectors.append(user.pk)
    currencies = [_pick(rng, CURRENCIES) for _ in range(customers)]
    habits = [rng.choice((0, 0, 2, 12, 35)) for _ in range(customers)]
    payments, notes, write_offs, disputes = [], [], [], []
    promises, plans, instalments = [], [], []
    invoice_rows = []
    for n in range(invoices):
        customer = n % customers
        issued = ON - dt.timedelta(days=rng.randint(0, 540))
        due = issued + dt.timedelta(days=30)
        cents = rng.randint(10_000, 500_000)
        currency = currencies[customer]
        settled = due + dt.timedelta(days=max(0, int(rng.gauss(habits[customer], 5))))
        status, open_cents, settled_on = "open", cents, None
        roll = rng.random()
        if settled < ON and roll < 0.85:
            status, open_cents, settled_on = "paid", 0, settled
            paid = cents
            if rng.random() < 0.02:  # a credit note for a tenth, the rest paid
                credit = cents // 10
                paid -= credit
                notes.append((n + 1, customer + 1, issued + dt.timedelta(days=5), currency, credit))
            payments.append((customer + 1, settled, currency, paid, n + 1))
        elif roll < 0.87:  # paid in part
            part = cents // 2
            open_cents -= part
            payments.append((customer + 1, min(due, ON), currency, part, n + 1))
        elif due < ON - dt.timedelta(days=180) and roll < 0.875:
            status, open_cents, settled_on = "written_off", 0, ON - dt.timedelta(days=rng.randint(1, 170))
            write_offs.append((n + 1, customer + 1, currency, cents, settled_on))
        elif roll < 0.88:
            reason = rng.choice(("our_delivery", "our_service", "price", "quantity"))
            disputes.append(
                (customer + 1, n + 1, reason, ON - dt.timedelta(days=rng.randint(0, 120)), open_cents)
            )
        elif roll < 0.882:
            promises.append((customer + 1, n + 1, currency, open_cents))
        elif roll < 0.883:
            plans.append((customer + 1, n + 1, currency, open_cents))
        invoice_rows.append(
            (
                n + 1,
                f"N-{n + 1:08d}",
                customer + 1,
                issued,
                due,
                currency,
                _money(cents),
                _money(open_cents),
                status,
                "",
                settled_on,
                STAMP,
            )
        )

    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor, for COPY
        with raw.copy(COPY_CUSTOMERS) as copy:
            for i in range(customers):
                copy.write_row(
                    (
                        i + 1,
                        f"N{i + 1:07d}",
                        f"Bench customer {i + 1}",
                        "",
                        "other",
                        "",
                        "[]",
                        dt.date(2020, 1, 1),
                        collectors[i % COLLECTORS],
                        "",
                        currencies[i],
                        "10000.00",
                        "standard",
                        30,
                        False,
                        "[]",
                        "",
                        "",
                        "new",
                        "",
                        "",
                        "",
                        STAMP,
                        STAMP,
                    )
                )
        with raw.copy(
            "COPY collections_paymentbehaviour (customer_id, computed_on, invoices_settled, "
            "invoices_settled_late, avg_days_late, weighted_days_late, share_paid_late, open_invoices, "
            "overdue_invoices, max_days_overdue, open_amount, overdue_amount, aging_current_amount, "
            "aging_1_30_amount, aging_31_60_amount, aging_61_90_amount, aging_over_90_amount, "
            "other_currency_open_invoices) FROM STDIN"
        ) as copy:
            for i in range(customers):
                late = f"{habits[i]:.2f}"
                copy.write_row((i + 1, ON, 0, 0, late, late, "0", 0, 0, 0, *["0.00"] * 7, 0))
        with raw.copy(
            "COPY collections_invoice (id, number, customer_id, issue_date, due_date, currency, "
            "total_amount, open_amount, status, po_reference, settled_on, created_at) FROM STDIN"
        ) as copy:
            for row in invoice_rows:
                copy.write_row(row)
        with raw.copy(
            "COPY collections_payment (id, customer_id, received_on, currency, amount, method, reference, "
            "bank_reference, bank_id_released, created_at) FROM STDIN"
        ) as copy:
            for n, (customer, day, currency, cents, _) in enumerate(payments, 1):
                copy.write_row((n, customer, day, currency, _money(cents), "bank_transfer", "", "", False,
                                STAMP))
        with raw.copy(
            "COPY collections_creditnote (id, number, customer_id, invoice_id, issued_on, currency, amount, "
            "reason, created_at) FROM STDIN"
        ) as copy:
            for n, (invoice, customer, day, currency, cents) in enumerate(notes, 1):
                copy.write_row((n, f"NC-{n:07d}", customer, invoice, day, currency, _money(cents), "", STAMP))
        with raw.copy(
            "COPY collections_allocation (invoice_id, payment_id, credit_note_id, amount, allocated_on, "
            "applied_on) FROM STDIN"
        ) as copy:
            for n, (_, day, _, cents, invoice) in enumerate(payments, 1):
                copy.write_row((invoice, n, None, _money(cents), day, day))
            for n, (invoice, _, day, _, cents) in enumerate(notes, 1):
                copy.write_row((invoice, None, n, _money(cents), day, day))
        with raw.copy(
            "COPY collections_writeoff (invoice_id, customer_id, currency, amount, reason, written_off_on, "
            "decided_by_id, created_at) FROM STDIN"
        ) as copy:
            for invoice, customer, currency, cents, day in write_offs:
                copy.write_row(
                    (invoice, customer, currency, _money(cents), "Insolvent", day, collectors[0], STAMP)
                )
        with raw.copy(
            "COPY collections_dispute (customer_id, invoice_id, reason, description, routed_to, "
            "opened_by_id, opened_on, answer_due_on, status, outcome, resolution_note, taken_off_amount, "
            "disputed_amount) FROM STDIN"
        ) as copy:
            for customer, invoice, reason, day, cents in disputes:
                copy.write_row(
                    (
                        customer,
                        invoice,
                        reason,
                        "-",
                        "",
                        collectors[0],
                        day,
                        day + dt.timedelta(days=7),
                        "open",
                        "",
                        "",
                        "0.00",
                        _money(cents),  # the whole invoice's open amount
                    )
                )
        with raw.copy(
            "COPY collections_promise (id, customer_id, currency, amount, promised_on, grace_days, made_on, "
            "made_by_id, status, paid_amount) FROM STDIN"
        ) as copy:
            for n, (customer, _, currency, cents) in enumerate(promises, 1):
                copy.write_row(
                    (
                        n,
                        customer,
                        currency,
                        _money(cents),
                        ON + dt.timedelta(days=rng.randint(0, 40)),
                        3,
                        ON - dt.timedelta(days=2),
                        collectors[0],
                        "open",
                        "0.00",
                    )
                )
        with raw.copy("COPY collections_promise_invoices (promise_id, invoice_id) FROM STDIN") as copy:
            for n, (_, invoice, _, _) in enumerate(promises, 1):
                copy.write_row((n, invoice))
        with raw.copy(
            "COPY collections_paymentplan (id, customer_id, currency, total_amount, status, grace_days, "
            "note, proposed_by_id, proposed_on, decision_note, paid_amount, credited_instalments, "
            "disputes_left_out) FROM STDIN"
        ) as copy:
            for n, (customer, _, currency, cents) in enumerate(plans, 1):
                copy.write_row(
                    (
                        n,
                        customer,
                        currency,
                        _money(cents),
                        "active",
                        3,
                        "",
                        collectors[0],
                        ON - dt.timedelta(days=10),
                        "",
                        "0.00",
                        "[]",
                        "[]",
                    )
                )
                instalments.extend((n, k, ON + dt.timedelta(days=30 * k - 20), cents // 3) for k in (1, 2, 3))
        with raw.copy(
            "COPY collections_paymentplan_invoices (paymentplan_id, invoice_id) FROM STDIN"
        ) as copy:
            for n, (_, invoice, _, _) in enumerate(plans, 1):
                copy.write_row((n, invoice))
        with raw.copy(
            "COPY collections_instalment (plan_id, number, due_on, amount, status, deducted_amount, "
            "held_for) FROM STDIN"
        ) as copy:
            for plan, number, day, cents in instalments:
                copy.write_row((plan, number, day, _money(cents), "due", "0.00", "[]"))
        for table in (
            "customers_customer",
            "collections_invoice",
            "collections_payment",
            "collections_creditnote",
            "collections_promise",
            "collections_paymentplan",
        ):
            cursor.execute(f"SELECT setval('{table}_id_seq', greatest((SELECT max(id) FROM {table}), 1))")
    # Hint bits and the visibility map once, so the first request does not pay for the COPY.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


if __name__ == "__main__":
    main()
