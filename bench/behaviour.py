"""Benchmark: the nightly payment-behaviour refresh over a large ledger.

Builds a scratch PostgreSQL database with COPY (default 50,000 customers and
1,000,000 invoices, about 60 % settled), runs `behaviour_refresh` over every
customer and prints the time taken, SQL statements issued and peak memory.

    .venv/bin/python bench/behaviour.py [--customers N] [--invoices N] [--keep]

Needs PostgreSQL: BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/arcrm_bench); the database is dropped and
created anew unless --keep reuses a previous build.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import COPY_CUSTOMERS, django_on_scratch_database

ON = dt.date(2026, 6, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="reuse the database of an earlier run")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/arcrm_bench")
    django_on_scratch_database(url, recreate=not args.keep)
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ar_collections.services import behaviour_refresh

    if not args.keep:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        _load(connection, customers=args.customers, invoices=args.invoices)
        print(f"built {args.customers:,} customers / {args.invoices:,} invoices with COPY "
              f"in {time.perf_counter() - started:.1f} s")

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        refreshed = behaviour_refresh(on=ON)
        elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"behaviour_refresh: {refreshed:,} customers in {elapsed:.1f} s "
          f"({refreshed / elapsed:,.0f} customers/s)")
    print(f"SQL statements: {len(queries)} "
          f"({len(queries) / max(refreshed, 1) * 1000:.2f} per 1,000 customers)")
    print(f"peak memory of this process: {peak_mb:,.0f} MB")



def _load(connection, *, customers: int, invoices: int) -> None:
    """COPY a deterministic ledger: per customer a payer habit drives its lateness."""
    from django.contrib.auth.models import User

    rng = random.Random(7)
    collector = User.objects.create_user("bench-collector")
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor, for COPY
        with raw.copy(COPY_CUSTOMERS) as copy:
            for i in range(1, customers + 1):
                copy.write_row((
                    i, f"B{i:07d}", f"Bench customer {i}", "", "other", "", "[]",
                    ON - dt.timedelta(days=rng.randint(30, 4000)), collector.pk, "",
                    "EUR", "10000.00", "standard", 30, False, "[]", "", "", "new", "", "", "",
                    "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z",
                ))
        habits = [rng.choice((0, 0, 2, 12, 35)) for _ in range(customers)]
        with raw.copy(
            "COPY collections_invoice (number, customer_id, issue_date, due_date, currency, "
            "total_amount, open_amount, status, po_reference, settled_on, created_at) FROM STDIN"
        ) as copy:
            for n in range(invoices):
                customer = n % customers
                issued = ON - dt.timedelta(days=rng.randint(0, 540))
                due = issued + dt.timedelta(days=30)
                amount = f"{rng.randint(100, 500_000) / 100:.2f}"
                settled = due + dt.timedelta(days=max(0, int(rng.gauss(habits[customer], 5))))
                if settled < ON and rng.random() < 0.85:
                    row = (amount, "0.00", "paid", settled)
                else:
                    row = (amount, amount, "open", None)
                copy.write_row((f"B-{n:08d}", customer + 1, issued, due, "EUR", row[0], row[1],
                                row[2], "", row[3], "2026-01-01T00:00:00Z"))
        cursor.execute("SELECT setval('customers_customer_id_seq', %s)", [customers])
        cursor.execute("ANALYZE")


if __name__ == "__main__":
    main()
