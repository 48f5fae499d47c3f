"""Benchmark: a customer master imported from the ERP's accounts file.

Builds a scratch PostgreSQL database (migrated, two collectors) and a
customers file of N rows (default 20,000), every column given and every
other row with a billing contact, as an ERP exports its whole customer
master on day one. Then times `customers_import` on it three times:

1. new        every account opened (account, contact, timeline events)
2. again      the same file: every row already there, nothing written
3. dry run    the same file checked only

and prints for each the seconds, rows/s and SQL statements (in all and per
1,000 rows), beside JOB_TIME_LIMIT, the time a queued import may take.

    .venv/bin/python bench/imports.py [--rows N]

Needs PostgreSQL: BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/arcrm_bench_imports), dropped and created anew.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import machine
from bench.scratch import django_on_scratch_database

HEADER = ("account_number,name,currency,payment_terms,payment_terms_days,credit_limit,industry,collector,"
          "contact_name,contact_email,contact_phone,language")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/arcrm_bench_imports")
    django_on_scratch_database(url, recreate=True)
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection

    from arcrm.roles import COLLECTOR, MANAGER
    from customers.imports import customers_import
    from customers.models import Contact, Customer, TimelineEvent

    call_command("migrate", verbosity=0)
    manager = User.objects.create_user("bench-manager")
    manager.groups.add(Group.objects.get(name=MANAGER))
    for username in ("bench-carla", "bench-otto"):
        User.objects.create_user(username).groups.add(Group.objects.get(name=COLLECTOR))
    text = _file(args.rows)
    print(machine.describe())
    print(f"customers file: {args.rows:,} rows, {len(text) / 1e6:.1f} MB; "
          f"JOB_TIME_LIMIT {settings.JOB_TIME_LIMIT} s")

    for label, dry_run in (("new", False), ("again", False), ("dry run", True)):
        queries = _Counter()
        with connection.execute_wrapper(queries):
            started = time.perf_counter()
            report = customers_import(text, actor=manager, dry_run=dry_run)
            elapsed = time.perf_counter() - started
        if not report.ok:
            print(f"{label}: refused: {report.errors[:3]}")
            sys.exit(1)
        print(f"{label:8} {elapsed:7.1f} s  {args.rows / elapsed:8,.0f} rows/s  "
              f"{queries.count:6,} SQL statements ({queries.count / args.rows * 1000:,.1f} per 1,000 rows)  "
              f"[{report.summary()}]")
    print(f"recorded: {Customer.objects.count():,} accounts, {Contact.objects.count():,} contacts, "
          f"{TimelineEvent.objects.count():,} timeline events")
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


class _Counter:
    """SQL statements counted, not logged: Django's query log keeps only the last 9,000."""

    count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _file(rows: int) -> str:
    """Every column given; every other account with a billing contact."""
    lines = [HEADER]
    for n in range(rows):
        collector = "bench-carla" if n % 3 else "bench-otto"
        contact = (f"Anna Berg {n},ap{n}@customer{n}.example,+44 20 7946 {n % 10_000:04d},en" if n % 2
                   else ",,,")
        lines.append(f"C-{n:07d},Customer {n} Ltd,EUR,standard,{30 + n % 4 * 15},{n % 50 * 1000}.00,"
                     f"wholesale,{collector},{contact}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
