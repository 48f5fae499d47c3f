"""Benchmark: the dunning planner's first run over a large open ledger, against
a hand-written single-statement floor.

Builds a scratch PostgreSQL database with COPY (default 100,000 customers over
the six segments, 1,000,000 open invoices, about half overdue by 1 to 120
days, and a few thousand pauses, active and not), then times
`run_plan(run=run_start(run_date=D))` over everything: seconds, actions
planned, action lines inserted, SQL statements (in all and per batch) and peak
memory. The floor is one INSERT … SELECT into a temporary table that computes
the same due steps the way a person would write it by hand; its (customer,
step) pairs must be the planner's actions, and the planner's time over the
floor's is the ratio the planner is judged by. For the analysis, a "write
floor" then writes the planner's rows (cycles, actions, lines) set-based in one
transaction in place of the planner's output, and must come out the same, row
for row (an action's status and pay-by date included). Either floor that
differs is reported as a MISMATCH and the bench exits with status 1: its ratio
would compare unlike work. Last, the "least write" times the floor's select
with only what exactly-once rests on written beside it (an action per due step
and its cycle, no invoice line) in one transaction: the least any planner that
records its due steps can take, and so the lowest ratio one could reach.

    .venv/bin/python bench/dunning.py [--customers N] [--invoices N] [--keep]
                                      [--run-date YYYY-MM-DD] [--explain]

Needs PostgreSQL: BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/arcrm_bench_dunning); the database is
dropped and created anew unless --keep reuses a previous build. Either way the
planner's own tables (runs, cycles, actions, lines, late charges) are emptied
first, so every measurement is a first run on an empty history. --explain then
plans one batch again under auto_explain and prints the plans of its costliest
statements, and EXPLAIN ANALYZE of the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import random
import re
import resource
import statistics
import sys
import time
from array import array
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import machine
from bench.scratch import COPY_CUSTOMERS, django_on_scratch_database

ON = dt.date(2026, 6, 30)

# Shares of customers per segment, and of customers per account currency. CHF
# has no policy minimum in the default ladders, so any balance in it is chased.
SEGMENTS = {"new": 15, "prompt": 30, "occasional_slip": 20, "systematic_late": 15,
            "distressed": 8, "special_bond": 12}
CURRENCIES = {"EUR": 80, "USD": 10, "GBP": 7, "CHF": 3}

TARGET_SECONDS = 60
TARGET_RATIO = 2

# The planner's output, emptied before each measurement (children first).
# Work items are on the list because they may point at an action (a call
# task), and allocations because they may point at a charge: TRUNCATE refuses
# a referenced table alone. The data set is an open ledger with no payments, so
# no allocation of its own is lost.
PLANNER_TABLES = ("collections_allocation", "collections_latecharge", "collections_dunningactioninvoice",
                  "collections_workitem", "collections_dunningaction", "collections_dunningcycle",
                  "collections_dunningrun")

# The due steps of a first run, written by hand. For each customer with an
# eligible invoice (open, not paused singly or with its whole account, due at
# least its ladder's first day_offset ago): the ladder's first step (a retired
# step is no part of the ladder), when the oldest such invoice is that far past
# due (true by the reach filter; kept to state the rule), whether its eligible
# total in some currency reaches the policy minimum for that currency (none
# set: anything above 0), and that oldest due date (the write floor's pay-by
# date of a reminder before the due date reads it). Pauses are split into two
# anti-joins on plain equalities, so each can be a hash anti-join over the few
# thousand active pauses. The ledger's pauses carry no dispute, so each holds
# its invoice or account whole (a dispute of part of an invoice, which holds
# back that part only, is not written here), but for extended terms on the
# whole account, which hold the invoices issued by the day they were granted
# that fall due before they end.
REACH_SQL = """
    WITH first_step AS (
        SELECT DISTINCT ON (p.id) p.id AS policy_id, p.segment, s.id AS step_id, s.day_offset
        FROM collections_latepaymentpolicy p
        JOIN collections_dunningstep s ON s.policy_id = p.id AND NOT s.retired
        WHERE p.is_active
        ORDER BY p.id, s.position
    ),
    active_pause AS (
        SELECT p.customer_id, p.invoice_id, p.starts_on, p.ends_on, e.kind = 'extended_terms' AS terms
        FROM collections_dunningpause p LEFT JOIN collections_exceptionrequest e ON e.id = p.exception_id
        WHERE p.lifted_at IS NULL AND p.starts_on <= %(on)s AND (p.ends_on IS NULL OR p.ends_on >= %(on)s)
    ),
    totals AS (
        SELECT i.customer_id, i.currency, f.policy_id, f.step_id, f.day_offset,
               sum(i.open_amount) AS total, min(i.due_date) AS oldest
        FROM collections_invoice i
        JOIN customers_customer c ON c.id = i.customer_id
        JOIN first_step f ON f.segment = c.segment
        WHERE i.status = 'open' AND i.open_amount > 0
          AND i.due_date <= %(on)s - f.day_offset
          AND NOT EXISTS (SELECT FROM active_pause p WHERE p.invoice_id = i.id)
          AND NOT EXISTS (SELECT FROM active_pause p
                          WHERE p.invoice_id IS NULL AND p.customer_id = i.customer_id
                            AND (p.terms IS NOT TRUE
                                 OR (i.issue_date <= p.starts_on AND i.due_date < p.ends_on)))
        GROUP BY i.customer_id, i.currency, f.policy_id, f.step_id, f.day_offset
    )
    SELECT t.customer_id, t.step_id, bool_or(t.total >= coalesce(m.min_amount, 0)) AS above_minimum,
           min(t.oldest) AS oldest
    FROM totals t
    LEFT JOIN collections_policyminimum m ON m.policy_id = t.policy_id AND m.currency = t.currency
    GROUP BY t.customer_id, t.step_id, t.day_offset
    HAVING %(on)s - min(t.oldest) >= t.day_offset
"""
# The floor the planner is judged by: the due steps, into a temporary table.
FLOOR_SQL = f"""
    INSERT INTO bench_floor (customer_id, step_id)
    SELECT customer_id, step_id FROM ({REACH_SQL}) reach WHERE above_minimum
"""
# A second reference, for the analysis: the same rows the planner writes (a
# cycle per account in reach, an action per due step, a line per invoice the
# action lists), written set-based in one transaction. Runs, cycles, actions
# and lines must be empty; the run's id is %(run)s. An action's status and
# pay-by date follow the planner's rules (dunning._first_status,
# dunning.planned_pay_by): a manager's step (review, credit hold, C.O.D.)
# awaits approval, a policy that does not send by itself queues its steps for
# review; the pay-by date is the step's days to pay (at most
# PAY_BY_DAYS_AT_MOST, 90) from the run date, moved past a Saturday, a Sunday
# or an office holiday to the next working day, and never later than the
# oldest due date a reminder before the due date lists. The working day is
# worked out once per step, not per action.
WRITE_FLOOR_SQL = (
    f"CREATE TEMPORARY TABLE bench_reach ON COMMIT DROP AS {REACH_SQL}",
    """INSERT INTO collections_dunningcycle (customer_id, number, opened_on, cause)
       SELECT customer_id, 1, %(on)s, '' FROM bench_reach""",
    """WITH step_pay_by AS (
           SELECT s.id AS step_id, min(d.day) AS pay_by
           FROM collections_dunningstep s
           CROSS JOIN LATERAL (SELECT %(on)s + LEAST(s.pay_by_days, 90) + n AS day
                               FROM generate_series(0, 366) n) d
           WHERE extract(isodow FROM d.day) < 6
             AND NOT EXISTS (SELECT FROM collections_holiday h WHERE h.day = d.day)
           GROUP BY s.id
       )
       INSERT INTO collections_dunningaction (run_id, cycle_id, customer_id, step_id, status, planned_on,
           pay_by, channel, recipient_address, channel_note, skip_reason, error, attempts, subject,
           body_text, body_html, letter_pdf)
       SELECT %(run)s, c.id, r.customer_id, r.step_id,
              CASE WHEN s.action IN ('manager_review', 'credit_hold', 'switch_to_cod')
                   THEN 'awaiting_approval'
                   WHEN NOT p.auto_send THEN 'in_review' ELSE 'planned' END,
              %(on)s,
              CASE WHEN r.oldest >= %(on)s THEN LEAST(w.pay_by, r.oldest) ELSE w.pay_by END,
              '', '', '', '', '', 0, '', '', '', ''
       FROM bench_reach r
       JOIN collections_dunningcycle c ON c.customer_id = r.customer_id
       JOIN collections_dunningstep s ON s.id = r.step_id
       JOIN collections_latepaymentpolicy p ON p.id = s.policy_id
       JOIN step_pay_by w ON w.step_id = r.step_id
       WHERE r.above_minimum""",
    """INSERT INTO collections_dunningactioninvoice (action_id, invoice_id, open_amount, currency)
       SELECT a.id, i.id, i.open_amount, i.currency
       FROM collections_dunningaction a
       JOIN collections_dunningstep s ON s.id = a.step_id
       JOIN collections_invoice i ON i.customer_id = a.customer_id
       WHERE a.run_id = %(run)s AND i.status = 'open' AND i.open_amount > 0
         AND i.due_date <= %(on)s - LEAST(s.day_offset, 1)
         AND NOT EXISTS (
             SELECT FROM collections_dunningpause p
             LEFT JOIN collections_exceptionrequest e ON e.id = p.exception_id
             WHERE p.customer_id = i.customer_id AND p.lifted_at IS NULL
               AND (p.invoice_id = i.id
                    OR (p.invoice_id IS NULL
                        AND (e.kind IS DISTINCT FROM 'extended_terms'
                             OR (i.issue_date <= p.starts_on AND i.due_date < p.ends_on))))
               AND (p.ends_on IS NULL OR p.ends_on >= %(on)s) AND p.starts_on <= %(on)s)""",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="reuse the database of an earlier run")
    parser.add_argument("--run-date", type=dt.date.fromisoformat, default=ON,
                        help=f"the date the run plans for and the ledger is built around ({ON})")
    parser.add_argument("--explain", action="store_true",
                        help="then print the plans of one batch's costliest statements and the floor's")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/arcrm_bench_dunning")
    django_on_scratch_database(url, recreate=not args.keep)
    from django.core.management import call_command
    from django.db import connection

    # A kept database is migrated too, so it follows the models it is measured with.
    call_command("migrate", verbosity=0)
    if not args.keep:
        started = time.perf_counter()
        _load(connection, customers=args.customers, invoices=args.invoices, on=args.run_date)
        print(f"built {args.customers:,} customers / {args.invoices:,} invoices with COPY "
              f"in {time.perf_counter() - started:.1f} s")
    _reset_planner_tables(connection)

    ledger = _describe_ledger(connection, on=args.run_date)
    _checkpoint(connection)
    planner = _time_planner(connection, on=args.run_date)
    floor = _time_floor(connection, on=args.run_date, run_id=planner["run_id"])
    _checkpoint(connection)
    write_floor = _time_write_floor(connection, on=args.run_date, planner=planner)
    least = _time_least_write(connection, on=args.run_date)
    matched = _report(url=url, on=args.run_date, ledger=ledger, planner=planner, floor=floor,
                      write_floor=write_floor, least=least)
    if args.explain:
        _explain(connection, on=args.run_date)
    if not matched:
        sys.exit(1)  # a floor that differs from the planner is a failed run, not a figure


# -- building the ledger -----------------------------------------------------------------------------



def _pick(rng: random.Random, shares: dict[str, int]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _load(connection, *, customers: int, invoices: int, on: dt.date) -> None:
    """COPY a deterministic open ledger around `on`.

    Each customer has a lateness cap of 1 to 120 days; half its invoices are
    overdue by up to that cap, the other half fall due within the next 60 days
    (some within 3, for the reminder before the due date). So the oldest
    overdue invoice of the customers is spread over 0-120 days and every step
    of every ladder is reached by someone. One customer in fifty is a big
    account with about ten times the invoices; one in twenty buys in small
    amounts, so the policy minimum turns some accounts away. One invoice in
    twenty is in a currency other than the account's. The office has one
    holiday, on the first working day a week after `on`, where a 7-day step's
    pay-by date falls: the planner moves it to the next working day.
    """
    from django.contrib.auth.models import User

    from ar_collections.models import CollectionRules, Holiday
    from arcrm.dates import working_day_from

    rng = random.Random(11)
    collector = User.objects.create_user("bench-collector")
    Holiday.objects.create(rules=CollectionRules.current(), name="Bench holiday",
                           day=working_day_from(on + dt.timedelta(days=7)))
    stamp = "2026-01-01T00:00:00Z"
    caps = [rng.randint(1, 120) for _ in range(customers)]
    small = [rng.random() < 0.05 for _ in range(customers)]
    currencies = [_pick(rng, CURRENCIES) for _ in range(customers)]
    invoice_customer = array("l")  # customer id by invoice id - 1, to pause real invoices
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor, for COPY
        with raw.copy(COPY_CUSTOMERS) as copy:
            for i in range(customers):
                copy.write_row((
                    i + 1, f"D{i + 1:07d}", f"Bench customer {i + 1}", "", "other", "", "[]",
                    on - dt.timedelta(days=rng.randint(30, 4000)), collector.pk, "",
                    currencies[i], "10000.00", "standard", 30, False, "[]", "", "",
                    _pick(rng, SEGMENTS), "", "", "", stamp, stamp,
                ))
        with raw.copy(
            "COPY collections_invoice (id, number, customer_id, issue_date, due_date, currency, "
            "total_amount, open_amount, status, po_reference, created_at) FROM STDIN"
        ) as copy:
            for n in range(invoices):
                customer = rng.randrange(customers) if rng.random() < 0.8 else rng.randrange(0, customers, 50)
                if rng.random() < 0.5:
                    due = on - dt.timedelta(days=rng.randint(1, caps[customer]))
                else:
                    due = on + dt.timedelta(days=rng.randint(0, 60))
                cents = rng.randint(100, 3_000) if small[customer] or rng.random() < 0.1 else (
                    rng.randint(5_000, 500_000))
                amount = f"{cents / 100:.2f}"
                currency = currencies[customer] if rng.random() < 0.95 else _pick(rng, CURRENCIES)
                copy.write_row((n + 1, f"D-{n + 1:08d}", customer + 1, due - dt.timedelta(days=30), due,
                                currency, amount, amount, "open", "", stamp))
                invoice_customer.append(customer + 1)
        with raw.copy(
            "COPY collections_dunningpause (customer_id, invoice_id, kind, reason, owner_id, "
            "starts_on, ends_on, lifted_at, created_at) FROM STDIN"
        ) as copy:
            for row in _pauses(rng, invoice_customer, customers=customers, on=on, stamp=stamp):
                copy.write_row((*row[:4], collector.pk, *row[4:], stamp))
        _account_terms(raw, rng, customers=customers, on=on, owner=collector.pk, stamp=stamp)
        for table, last in (("customers_customer", customers), ("collections_invoice", invoices)):
            cursor.execute(f"SELECT setval('{table}_id_seq', %s)", [max(last, 1)])
    # Sets hint bits and the visibility map once, so neither contender pays for the COPY.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _pauses(rng: random.Random, invoice_customer: array, *, customers: int, on: dt.date, stamp: str):
    """(customer, invoice, kind, reason, starts_on, ends_on, lifted_at) rows: active
    disputes on single invoices and whole-account promises, plus pauses the
    planner must ignore (lifted, ended, not started yet)."""
    days = dt.timedelta

    def invoice() -> tuple[int, int]:
        n = rng.randrange(len(invoice_customer))
        return invoice_customer[n], n + 1

    def account() -> int:
        return rng.randrange(customers) + 1

    for _ in range(max(1, len(invoice_customer) // 500)):
        yield (*invoice(), "dispute", "Disputed quantity", on - days(rng.randint(0, 60)), None, None)
    for _ in range(max(1, customers // 50)):
        yield (account(), None, "promise", "Promised to pay", on - days(rng.randint(0, 30)),
               on + days(rng.randint(0, 30)), None)
    for _ in range(max(1, customers // 200)):
        yield (*invoice(), "dispute", "Resolved dispute", on - days(rng.randint(30, 90)), None, stamp)
        yield (account(), None, "promise", "Broken promise", on - days(rng.randint(30, 60)),
               on - days(rng.randint(1, 29)), None)
        yield (account(), None, "payment_plan", "Plan from next month", on + days(rng.randint(1, 30)),
               on + days(rng.randint(31, 120)), None)


def _account_terms(raw, rng: random.Random, *, customers: int, on: dt.date, owner: int, stamp: str) -> None:
    """COPY extended terms on the whole account for one customer in a hundred:
    an approved request and its pause, granted up to 90 days before `on` and
    ending up to 60 days after it. They hold the invoices issued by the day
    they were granted that fall due before they end; the account's others
    (issued since, some overdue by now; falling due after) are chased by
    their own terms."""
    days = dt.timedelta
    terms = []
    for n in range(max(1, customers // 100)):
        granted = on - days(rng.randint(0, 90))
        terms.append((n + 1, rng.randrange(customers) + 1, granted, on + days(rng.randint(1, 60))))
    with raw.copy(
        "COPY collections_exceptionrequest (id, customer_id, kind, reason, pause_until, granted_until, "
        "requested_by_id, requested_on, status, decided_by_id, decided_at, decision_note) FROM STDIN"
    ) as copy:
        for pk, customer, granted, ends in terms:
            copy.write_row((pk, customer, "extended_terms", "A slow quarter", ends, ends, owner, granted,
                            "approved", owner, stamp, "Agreed"))
    with raw.copy(
        "COPY collections_dunningpause (customer_id, kind, reason, owner_id, starts_on, ends_on, "
        "exception_id, created_at) FROM STDIN"
    ) as copy:
        for pk, customer, granted, ends in terms:
            copy.write_row((customer, "exception", "A slow quarter", owner, granted, ends, pk, stamp))
    raw.execute("SELECT setval('collections_exceptionrequest_id_seq', %s)", [len(terms)])


def _reset_planner_tables(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(PLANNER_TABLES)}")
        cursor.execute(f"ANALYZE {', '.join(PLANNER_TABLES)}")


def _checkpoint(connection) -> None:
    """Start each contender just after a checkpoint, so neither pays for the
    other's dirty pages and both write the same full-page images to the WAL."""
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def _describe_ledger(connection, *, on: dt.date) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT (SELECT count(*) FROM customers_customer),
                      count(*), count(*) FILTER (WHERE due_date < %(on)s)
               FROM collections_invoice WHERE status = 'open'""", {"on": on})
        customers, invoices, overdue = cursor.fetchone()
        cursor.execute(
            """SELECT count(*), count(*) FILTER (WHERE lifted_at IS NULL AND starts_on <= %(on)s
                                                 AND (ends_on IS NULL OR ends_on >= %(on)s))
               FROM collections_dunningpause""", {"on": on})
        pauses, active = cursor.fetchone()
        # How many customers' oldest open invoice has reached each step's day: the
        # ladders are exercised over their whole length, not just step 1.
        cursor.execute(
            """WITH oldest AS (
                   SELECT c.segment, %(on)s - min(i.due_date) AS days
                   FROM customers_customer c JOIN collections_invoice i ON i.customer_id = c.id
                   WHERE i.status = 'open' GROUP BY c.id)
               SELECT p.segment, s.day_offset, count(o.days)
               FROM collections_latepaymentpolicy p
               JOIN collections_dunningstep s ON s.policy_id = p.id
               LEFT JOIN oldest o ON o.segment = p.segment AND o.days >= s.day_offset
               WHERE p.is_active GROUP BY p.segment, s.position, s.day_offset
               ORDER BY p.segment, s.position""", {"on": on})
        reach = defaultdict(list)
        for segment, day, count in cursor.fetchall():
            reach[segment].append((day, count))
        cursor.execute("SELECT version(), current_setting('shared_buffers'), current_setting('work_mem'), "
                       "current_setting('jit'), current_setting('max_parallel_workers_per_gather')")
        version, shared_buffers, work_mem, jit, parallel = cursor.fetchone()
    server = (f"{' '.join(version.split()[:2])}; shared_buffers {shared_buffers}, work_mem {work_mem}, "
              f"jit {jit}, parallel workers/gather {parallel}")
    return {"load": os.getloadavg(), "customers": customers, "invoices": invoices, "overdue": overdue,
            "pauses": pauses, "active_pauses": active, "reach": dict(reach), "server": server}


# -- the contenders ---------------------------------------------------------------------------------


def _time_planner(connection, *, on: dt.date) -> dict:
    from django.test.utils import CaptureQueriesContext

    from ar_collections.dunning import run_plan, run_start
    from ar_collections.models import DunningActionInvoice, DunningCycle

    backend = _backend_pid(connection)
    cpu_before = _cpu_seconds(backend)
    _peak_reset()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        run = run_start(run_date=on)
        planned = run_plan(run=run)
        elapsed = time.perf_counter() - started
    peak_mb = _peak_mb()
    cpu = [after - before if before is not None and after is not None else None
           for before, after in zip(cpu_before, _cpu_seconds(backend), strict=True)]
    return {
        "run_id": run.pk, "seconds": elapsed, "planned": planned, "peak_mb": peak_mb,
        "lines": DunningActionInvoice.objects.filter(action__run=run).count(),
        "cycles": DunningCycle.objects.count(),
        "queries": list(queries.captured_queries), "cpu": cpu,
    }


def _time_floor(connection, *, on: dt.date, run_id: int, repeat: int = 3) -> dict:
    """Run the floor `repeat` times (INSERT into a temporary table; the median
    counts) and compare its (customer, step) pairs with the planner's actions."""
    times = []
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_floor")
        cursor.execute("CREATE TEMPORARY TABLE bench_floor (customer_id bigint, step_id bigint)")
        for _ in range(repeat):
            cursor.execute("TRUNCATE bench_floor")
            started = time.perf_counter()
            cursor.execute(FLOOR_SQL, {"on": on})
            times.append(time.perf_counter() - started)
            rows = cursor.rowcount
        cursor.execute(
            """SELECT
                 (SELECT count(*) FROM (SELECT customer_id, step_id FROM bench_floor EXCEPT
                    SELECT customer_id, step_id FROM collections_dunningaction WHERE run_id = %(run)s) x),
                 (SELECT count(*) FROM (SELECT customer_id, step_id FROM collections_dunningaction
                    WHERE run_id = %(run)s EXCEPT SELECT customer_id, step_id FROM bench_floor) y)""",
            {"run": run_id})
        only_floor, only_planner = cursor.fetchone()
    return {"seconds": statistics.median(times), "all": times, "rows": rows,
            "only_floor": only_floor, "only_planner": only_planner}


# What the planner wrote, kept while the write floor writes in its place, and
# what is compared: each cycle, each action (its status, planned day and
# pay-by date with it) and each line (its invoice, amount and currency), as
# rows of their own, duplicates counted.
PLANNER_ROWS = {
    "cycles": "SELECT customer_id, number, opened_on, closed_on, cause FROM collections_dunningcycle",
    "actions": "SELECT customer_id, step_id, status, planned_on, pay_by FROM collections_dunningaction",
    "lines": """SELECT a.customer_id, a.step_id, l.invoice_id, l.open_amount, l.currency
                FROM collections_dunningactioninvoice l
                JOIN collections_dunningaction a ON a.id = l.action_id""",
}


def _time_write_floor(connection, *, on: dt.date, planner: dict) -> dict:
    """Replace the planner's output with the write floor's, timed from the
    first statement to the end of COMMIT, and compare the two row for row:
    per kind, the rows only the planner wrote and those only the write floor
    wrote, and the actions (customer, step) the two do not agree on."""
    from django.db import transaction

    with connection.cursor() as cursor:
        for kind, select in PLANNER_ROWS.items():
            cursor.execute(f"DROP TABLE IF EXISTS bench_planned_{kind}")
            cursor.execute(f"CREATE TEMPORARY TABLE bench_planned_{kind} AS {select}")
    _reset_planner_tables(connection)
    counts = []
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        params = {"on": on, "run": _planned_run(cursor, on=on)}
        for sql in WRITE_FLOOR_SQL:
            cursor.execute(sql, params)
            counts.append(cursor.rowcount)
    elapsed = time.perf_counter() - started
    only_planner, only_floor = {}, {}
    with connection.cursor() as cursor:
        for kind, select in PLANNER_ROWS.items():
            cursor.execute(
                f"""SELECT (SELECT count(*) FROM (TABLE bench_planned_{kind} EXCEPT ALL {select}) p),
                           (SELECT count(*) FROM ({select} EXCEPT ALL TABLE bench_planned_{kind}) f)""")
            only_planner[kind], only_floor[kind] = cursor.fetchone()
        # An action the two write differently is one action, not a row on each side.
        cursor.execute(
            f"""SELECT count(*) FROM (
                  SELECT customer_id, step_id FROM (
                    (TABLE bench_planned_actions EXCEPT ALL {PLANNER_ROWS["actions"]})
                    UNION ALL
                    ({PLANNER_ROWS["actions"]} EXCEPT ALL TABLE bench_planned_actions)) d
                  GROUP BY customer_id, step_id) pairs""")
        differing = cursor.fetchone()[0]
    _, cycles, actions, lines = counts
    same = ((cycles, actions, lines) == (planner["cycles"], planner["planned"], planner["lines"])
            and not any(only_planner.values()) and not any(only_floor.values()))
    return {"seconds": elapsed, "cycles": cycles, "actions": actions, "lines": lines,
            "differing": differing, "only_planner": only_planner, "only_floor": only_floor, "same": same}


def _planned_run(cursor, *, on: dt.date) -> int:
    """A run row for `on` that has planned every account, for a floor's rows to name."""
    cursor.execute(
        "INSERT INTO collections_dunningrun (run_date, status, started_at, planned_through_customer_id, "
        "planned_at, waited_for_decision) "
        "VALUES (%s, 'running', now(), (SELECT max(id) FROM customers_customer), now(), 0) "
        "RETURNING id", [on])
    return cursor.fetchone()[0]


def _time_least_write(connection, *, on: dt.date, repeat: int = 3) -> dict:
    """The least any planner that records its due steps must do, timed from the
    first statement to the end of COMMIT (the median of `repeat`): the floor's
    select, and in the same transaction an action per due step and the cycle
    its exactly-once constraint names, with their indexes and foreign keys; no
    invoice line. The write floor's first three statements, on emptied tables
    each time; its rows are the write floor's, already compared."""
    from django.db import transaction

    times = []
    for _ in range(repeat):
        _reset_planner_tables(connection)
        _checkpoint(connection)
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            params = {"on": on, "run": _planned_run(cursor, on=on)}
            for sql in WRITE_FLOOR_SQL[:3]:
                cursor.execute(sql, params)
            actions = cursor.rowcount
        times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "all": times, "actions": actions}


# -- reporting --------------------------------------------------------------------------------------


def _batches(queries: list[dict]) -> tuple[list[list[dict]], int]:
    """Split captured statements at each batch's lock on the run row. Returns
    the batches that planned customers and the count of the other statements
    (run start, ladders, the closing batch that finds no customer, bookkeeping)."""
    starts = [n for n, q in enumerate(queries)
              if 'FROM "collections_dunningrun" WHERE "collections_dunningrun"."id" =' in q["sql"]
              and "FOR UPDATE" in q["sql"]]
    # A batch is one transaction: it begins with the BEGIN just before the lock.
    starts = [n - 1 if n and queries[n - 1]["sql"] == "BEGIN" else n for n in starts]
    if not starts:
        return [], len(queries)
    segments = [queries[a:b] for a, b in zip(starts, [*starts[1:], len(queries)], strict=True)]
    batches = segments[:-1]  # the last one found no customers left (and carries the bookkeeping)
    return batches, len(queries) - sum(len(b) for b in batches)


def _shape(sql: str) -> str:
    """A statement in a few words: verb, tables, what it aggregates."""
    verb = sql.split(None, 1)[0].upper()
    tables = dict.fromkeys(re.findall(r'\b(?:FROM|JOIN|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE))
    short = [t.removeprefix("collections_").removeprefix("customers_") for t in tables if t != "UNNEST"]
    aggregates = re.findall(r'\b(?:MIN|MAX|SUM|COUNT)\(.*?\) AS "(\w+)"', sql[:2000])
    computes = f" -> {', '.join(aggregates)}" if aggregates else ""
    lock = " FOR UPDATE" if "FOR UPDATE" in sql else ""
    return f"{verb} {'+'.join(short)}{computes}{lock}"[:72]


def _report(*, url: str, on: dt.date, ledger: dict, planner: dict, floor: dict, write_floor: dict,
            least: dict) -> bool:
    """Print the figures; return whether both floors came out as the planner's rows."""
    from ar_collections.dunning import PLAN_BATCH_SIZE

    queries = planner["queries"]
    batches, other = _batches(queries)
    sizes = sorted({len(b) for b in batches})
    per_batch = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    db_seconds = sum(float(q["time"]) for q in queries)
    ratio = planner["seconds"] / floor["seconds"]
    same = floor["rows"] == planner["planned"] and not floor["only_floor"] and not floor["only_planner"]
    check = "MATCH" if same else "MISMATCH"
    verdict = {True: "met", False: "MISSED"}

    line = "=" * 100
    print(line)
    print(f"dunning planning benchmark - {urlsplit(url).path.lstrip('/')} ({ledger['server']})")
    print(line)
    load = ", ".join(f"{x:.2f}" for x in ledger["load"])
    print(f"machine          {os.cpu_count()} cores, load average {load} when the measurement started "
          f"(other work on the machine slows both contenders); {machine.describe()}")
    print(f"ledger           {ledger['customers']:,} customers, {ledger['invoices']:,} open invoices "
          f"({ledger['overdue']:,} overdue), {ledger['pauses']:,} pauses ({ledger['active_pauses']:,} "
          f"active on {on})")
    print(f"run date         {on}; PLAN_BATCH_SIZE {PLAN_BATCH_SIZE:,} customers "
          f"-> {math.ceil(ledger['customers'] / PLAN_BATCH_SIZE)} batch(es)")
    print("ladder reach     customers whose oldest open invoice has reached each step (day: customers)")
    for segment, steps in ledger["reach"].items():
        print(f"  {segment:<16} " + "  ".join(f"d{day}: {count:,}" for day, count in steps))
    print(f"planner          {planner['seconds']:.1f} s   run_plan(run=run_start(run_date={on}))")
    print(f"  actions        {planner['planned']:,} planned ({planner['cycles']:,} cycles opened)")
    print(f"  action lines   {planner['lines']:,} inserted")
    print(f"  SQL statements {len(queries)} = {per_batch} per batch x {len(batches)} batch(es) + {other} "
          f"once per run (CaptureQueriesContext, BEGIN/COMMIT included)")
    python = planner["seconds"] - db_seconds
    print(f"  in execute()   {db_seconds:.1f} s of them (server, round trip, psycopg "
          f"quoting); the other {python:.1f} s is Python in Django and dunning.py")
    python_cpu, server_cpu = planner["cpu"]
    server = "its PostgreSQL backend not measured"
    if server_cpu is not None:
        server = f"{server_cpu:.1f} s in its PostgreSQL backend (parallel workers not counted)"
    print(f"  CPU time       {python_cpu:.1f} s in this process + {server}")
    print(f"  peak memory    {planner['peak_mb']:,.0f} MB resident in this process while planning")
    print(f"floor            {floor['seconds']:.2f} s  one INSERT ... SELECT into a temporary table: "
          f"{floor['rows']:,} rows (median of {', '.join(f'{t:.2f}' for t in floor['all'])} s)")
    diff = floor["rows"] - planner["planned"]
    print(f"  check          {check}: floor {floor['rows']:,} vs planner {planner['planned']:,} "
          f"(difference {diff:+,}; {floor['only_floor']:,} (customer, step) pairs only in the floor, "
          f"{floor['only_planner']:,} only in the planner)")
    print(f"ratio            planner / floor = {ratio:.1f}")
    wf = write_floor
    print(f"write floor      {wf['seconds']:.1f} s   the planner's rows written set-based in one transaction "
          f"(analysis only): {wf['cycles']:,} cycles, {wf['actions']:,} actions, {wf['lines']:,} lines")
    if wf["same"]:
        print("  check          MATCH: the same cycles, actions (status, pay-by included) and invoice lines "
              "as the planner's")
    else:
        apart = ", ".join(f"{kind} {wf['only_planner'][kind]:,} / {wf['only_floor'][kind]:,}"
                          for kind in PLANNER_ROWS)
        print(f"  check          MISMATCH: NOT the same rows as the planner's: {wf['differing']:,} actions "
              f"differ in customer, step, status, planned day or pay-by; rows only in the planner's / only "
              f"in the write floor's: {apart}")
    print(f"  ratio          planner / write floor = {planner['seconds'] / wf['seconds']:.1f}"
          + ("" if wf["same"] else " (of unlike work: the write floor differs)"))
    bound = least["seconds"] / floor["seconds"]
    print(f"least write      {least['seconds']:.1f} s   the floor's select with an action per due step and "
          f"its cycle, in one transaction, no lines "
          f"(median of {', '.join(f'{t:.1f}' for t in least['all'])} s)")
    print(f"  ratio          least write / floor = {bound:.1f}: "
          + (f"no planner that records its due steps can reach {TARGET_RATIO} on this machine"
             if bound > TARGET_RATIO else f"a planner that records its due steps could reach {TARGET_RATIO}"))
    ratio_verdict = verdict[ratio <= TARGET_RATIO] if same else "not judged, the floor differs"
    print(f"targets          planning <= {TARGET_SECONDS} s: {verdict[planner['seconds'] <= TARGET_SECONDS]}"
          f"   ratio <= {TARGET_RATIO}: {ratio_verdict}"
          f"   statements per batch constant: {verdict[len(sizes) == 1]} ({per_batch})")
    print("planner statements by position in the batch, summed over the batches:")
    cost: dict[tuple[int, str], list[float]] = defaultdict(list)
    for batch in batches:
        for position, q in enumerate(batch, start=1):
            cost[position, _shape(q["sql"])].append(float(q["time"]))
    for (position, shape), times in sorted(cost.items()):
        print(f"  #{position:<3}{shape:<72} {sum(times):7.2f} s {sum(times) / planner['seconds']:6.1%}"
              f"  (max {max(times):.2f} s)")
    print(line)
    differ = [name for name, matches in (("the floor", same), ("the write floor", wf["same"])) if not matches]
    if differ:
        print(f"MISMATCH: {' and '.join(differ)} did not come out as the planner's rows; "
              f"a ratio against {'them' if len(differ) > 1 else 'it'} compares unlike work.")
    return not differ


# -- analysis ---------------------------------------------------------------------------------------


def _explain(connection, *, on: dt.date, show: int = 5) -> None:
    """Plan the first batch again under auto_explain (ANALYZE, BUFFERS) and print
    the plans of its `show` slowest statements, then EXPLAIN ANALYZE the floor.

    Foreign keys are checked at each statement's end rather than at COMMIT
    (Django makes them DEFERRABLE INITIALLY DEFERRED), so each plan shows what
    its checks cost ("Trigger for constraint ...") instead of a COMMIT that
    auto_explain cannot see into."""
    from django.db import transaction

    from ar_collections.dunning import HOLIDAYS_LOOK_BACK, _plan_next_batch, ladders, run_start
    from ar_collections.models import Holiday

    _reset_planner_tables(connection)
    run = run_start(run_date=on)
    book = ladders()
    # As run_plan reads them, once a run: the office's holidays, for the pay-by dates.
    holidays = Holiday.objects.days_after(on - HOLIDAYS_LOOK_BACK)
    plans: list[str] = []
    raw = connection.connection

    def collect(diagnostic) -> None:
        plans.append(diagnostic.message_primary or "")

    with connection.cursor() as cursor:
        for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                        "SET auto_explain.log_analyze = on", "SET auto_explain.log_buffers = on",
                        "SET auto_explain.log_triggers = on", "SET auto_explain.log_level = notice"):
            cursor.execute(setting)
    raw.add_notice_handler(collect)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            _plan_next_batch(run.pk, book, holidays)
    finally:
        raw.remove_notice_handler(collect)
        with connection.cursor() as cursor:
            cursor.execute("SET auto_explain.log_min_duration = -1")

    def duration(plan: str) -> float:
        found = re.match(r"duration: ([\d.]+) ms", plan)
        return float(found.group(1)) if found else 0.0

    print(f"the {show} slowest statements of one batch, under auto_explain (ANALYZE, BUFFERS, foreign keys "
          f"checked per statement):")
    for plan in sorted(plans, key=duration, reverse=True)[:show]:
        # "duration: … plan:", "Query Text: …" (any number of lines), then the plan.
        found = re.search(r"^\S.*\(cost=", plan, re.MULTILINE)
        text, tree = (plan[: found.start()], plan[found.start():]) if found else (plan, "")
        text = re.sub(r"\s+", " ", text)[:500]
        print(f"--- {text}\n{tree}")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bench_floor")
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {FLOOR_SQL}", {"on": on})
        print("--- the floor, EXPLAIN (ANALYZE, BUFFERS):")
        print("\n".join(row[0] for row in cursor.fetchall()))


# -- CPU time and peak memory ----------------------------------------------------------------------


def _backend_pid(connection) -> int | None:
    """The PostgreSQL backend serving this connection, when it runs on this machine."""
    if connection.settings_dict["HOST"] not in {"", "127.0.0.1", "localhost", "::1"}:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _cpu_seconds(backend: int | None) -> tuple[float, float | None]:
    """CPU time so far of this process and of the backend (user + system).
    Unlike wall time it barely moves when other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
        server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        server = None
    return usage.ru_utime + usage.ru_stime, server


# -- peak memory ------------------------------------------------------------------------------------


def _peak_reset() -> None:
    """Reset this process's peak resident size (Linux), so the build does not count."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
