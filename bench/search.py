"""Benchmark: the customer list's search box over a large book of accounts.

Builds a scratch PostgreSQL database with COPY (default 100,000 customers, each
with one to three contacts and a computed payment behaviour, and two invoices
each), then loads the customer list searched for typical texts — part of a
name, an account number's prefix, part of a contact's e-mail address, an exact
invoice number and a text found nowhere — in this process through Django's
test client, as a manager (who reads every account), the htmx fragment the
search box asks for. Prints per text: the accounts found, the median, p95 and
slowest of the requests, the SQL statements of one request and the costliest
of them.

    .venv/bin/python bench/search.py [--customers N] [--repeat N] [--keep] [--explain]

Needs PostgreSQL: BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/arcrm_bench_search); the database is
dropped and created anew unless --keep reuses a previous build. --explain
prints EXPLAIN ANALYZE of the costliest statement of each text.
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

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/arcrm_bench_search"
MANAGER = "bench-search-manager"
TARGET_P95_MS = 100

FIRST = ["Hafen", "Nord", "Alpen", "Rhein", "Blue", "Green", "Silver", "Oak", "Delta", "Summit", "Atlas",
         "Pioneer", "Harbor", "Granite", "Linden", "Falcon", "Meridian", "Cedar", "Vector", "Orbit"]
SECOND = ["bau", "tech", "logistik", "foods", "clinic", "systems", "works", "trading", "metal", "print",
          "media", "energy", "pharma", "textil", "design", "motors", "garden", "optics", "care", "data"]
FORMS = ["GmbH", "B.V.", "Ltd", "AG", "S.A.", "Inc.", "KG", "SARL"]
PEOPLE = ["Anna", "Ruben", "Sofie", "Jonas", "Marta", "Pieter", "Lena", "Tomas", "Ines", "Karl"]
SURNAMES = ["Bakker", "Jansen", "Meyer", "Schmidt", "Rossi", "Dubois", "Novak", "Larsen", "Costa", "Weber"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="requests per searched text")
    parser.add_argument("--keep", action="store_true", help="reuse the data set of an earlier run")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    django_on_scratch_database(args.database_url, recreate=not args.keep)

    from django.core.management import call_command
    from django.db import connection

    print(machine.describe())
    if not args.keep:
        call_command("migrate", verbosity=0)
        print(_build(connection, customers=args.customers))
    _measure(connection, customers=args.customers, repeat=args.repeat, explain=args.explain)


def _build(connection, *, customers: int) -> str:
    from django.contrib.auth.models import Group, User

    from arcrm.roles import MANAGER as MANAGER_GROUP

    rng = random.Random(7)
    manager = User.objects.create_user(MANAGER, first_name="Mia", last_name="Manager")
    Group.objects.get(name=MANAGER_GROUP).user_set.add(manager)
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    started = time.perf_counter()
    contacts = invoices = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor, for COPY
        with raw.copy(COPY_CUSTOMERS) as copy:
            for i in range(1, customers + 1):
                name = f"{rng.choice(FIRST)}{rng.choice(SECOND)} {i}"
                legal = f"{name} {rng.choice(FORMS)}" if i % 3 else ""
                copy.write_row((
                    i, f"C{i:06d}", name, legal, "other", "", "[]", today - dt.timedelta(days=i % 3000),
                    manager.pk, "", "EUR", "50000.00", "standard", 30, False, "[]", "", "", "new", "", "", "",
                    now, now,
                ))
        with raw.copy(
            "COPY customers_contact (name, job_title, role, email, phone, postal_address, language, "
            "invoice_delivery, reminder_channel, best_time_to_call, is_primary_billing, notes, customer_id, "
            "email_refused, email_refused_reason) FROM STDIN"
        ) as copy:
            for i in range(1, customers + 1):
                domain = f"{rng.choice(FIRST)}{rng.choice(SECOND)}-{i}.example".lower()
                for n in range(rng.randint(1, 3)):
                    person = f"{rng.choice(PEOPLE)} {rng.choice(SURNAMES)}"
                    mailbox = "ap" if n == 0 else person.split()[0].lower()
                    copy.write_row((person, "", "ap_clerk", f"{mailbox}@{domain}", "", "", "en", "pdf_email",
                                    "email", "", n == 0, "", i, "", ""))
                    contacts += 1
        with raw.copy(
            "COPY collections_paymentbehaviour (computed_on, invoices_settled, invoices_settled_late, "
            "avg_days_late, weighted_days_late, share_paid_late, open_invoices, overdue_invoices, "
            "max_days_overdue, open_amount, overdue_amount, aging_current_amount, aging_1_30_amount, "
            "aging_31_60_amount, aging_61_90_amount, aging_over_90_amount, other_currency_open_invoices, "
            "customer_id) FROM STDIN"
        ) as copy:
            for i in range(1, customers + 1):
                overdue = rng.randint(0, 2000000) / 100 if i % 4 else 0
                copy.write_row((today, 10, 3, "4.00", "5.00", "0.3000", 2, 1 if overdue else 0,
                                30 if overdue else 0, overdue + 100, overdue, 100, overdue, 0, 0, 0, 0, i))
        with raw.copy(
            "COPY collections_invoice (number, customer_id, issue_date, due_date, currency, total_amount, "
            "open_amount, status, po_reference, created_at) FROM STDIN"
        ) as copy:
            for i in range(1, customers + 1):
                for n in range(2):
                    copy.write_row((f"INV-{i:06d}-{n}", i, today - dt.timedelta(days=60),
                                    today - dt.timedelta(days=30), "EUR", "100.00", "100.00", "open", "",
                                    now))
                    invoices += 1
        cursor.execute("VACUUM (ANALYZE)")
    return (f"{customers:,} customers, {contacts:,} contacts, {invoices:,} invoices with COPY "
            f"in {time.perf_counter() - started:.1f} s")


def _texts(customers: int) -> list[tuple[str, str]]:
    middle = customers // 2
    return [
        ("part of a name", "Hafenbau"),
        ("part of a name, broad", "bau"),
        ("part of a name, rare", f"{middle}"),
        ("legal form", "GmbH"),
        ("two letters", "ha"),
        ("account number prefix", f"C{middle // 100:04d}"),
        ("account number, short", "C05"),
        ("contact's surname", "Bakker"),
        ("contact e-mail", f"-{middle}.example"),
        ("contact e-mail, broad", "ap@"),
        ("exact invoice number", f"INV-{middle:06d}-1"),
        ("matches nothing", "zzqx no such account"),
    ]


def _measure(connection, *, customers: int, repeat: int, explain: bool) -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from customers.models import Customer

    client = Client(headers={"HX-Request": "true"})
    client.force_login(User.objects.get(username=MANAGER))
    print(f"{'search':<24} {'text':<22} {'found':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'SQL':>4}  costliest statement")
    worst = 0.0
    for label, text in _texts(customers):
        client.get("/customers/", {"q": text})  # warm: plans prepared, pages cached
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get("/customers/", {"q": text})
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/customers/", {"q": text})
        found = Customer.objects.search(text).count()
        costliest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        timings.sort()
        p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
        worst = max(worst, p95)
        print(f"{label:<24} {text:<22} {found:>7,} {statistics.median(timings):>8.1f} {p95:>8.1f} "
              f"{timings[-1]:>8.1f} {len(queries.captured_queries):>4}  "
              f"{float(costliest['time']) * 1000:.1f} ms: {costliest['sql'][:70]}…")
        if explain:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + costliest["sql"])
                print("\n".join("    " + row for (row,) in cursor.fetchall()))
    verdict = "met" if worst < TARGET_P95_MS else "MISSED"
    print(f"target p95 < {TARGET_P95_MS} ms per search at {customers:,} accounts: {verdict} "
          f"(worst p95 {worst:.1f} ms)")


if __name__ == "__main__":
    main()
