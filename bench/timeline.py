"""Benchmark: the per-customer timeline pages, served by gunicorn under load.

Builds a scratch PostgreSQL database with COPY: 100,000 customers and
1,000,000 timeline events over three years, written in time order as the
application appends them, of which one customer (the bench collector's only
account) has exactly 10,000 of mixed kinds, about the invoices, payments and
credit notes it really has. Then starts gunicorn as arcrm.launcher does (2
workers, DEBUG off, no access log) and, from a second process, keeps 20
clients busy on loopback in a closed loop (each sends its next request when
the last one is answered) for each page in turn:

1. account page                  GET /customers/<pk>/
2. timeline, first page          GET /customers/<pk>/timeline/               HX-Request: true
3. timeline, load more at depth  GET /customers/<pk>/timeline/?before=<cursor> HX-Request: true
   (the cursor of the customer's 9,975th newest event: the page is the last one)

Prints per page requests/s, latency p50/p95/p99, errors, response size and the
server's CPU time per request (gunicorn workers, their PostgreSQL backends
and the Redis server, which barely moves with other work on the machine), then the targets: p95 <= 50
ms and >= 200 requests/s per page, and the deep page's p95 within 1.5 x the
first page's. Before each load the page is fetched once and checked: 200, the
right events (the newest on the first page, the oldest and not the cursor's on
the deep one) and, for htmx, a fragment rather than a whole page. Any other
status, a failed connection or a failed check is an error: the run says so and
exits 1.

    .venv/bin/python bench/timeline.py [--customers N] [--events N] [--events-per-customer N]
                                       [--clients 20] [--seconds 15] [--port 8311] [--keep]
                                       [--cache-url redis://127.0.0.1:6379/13 | none]
                                       [--scenarios account,first,deep]

Needs PostgreSQL on this machine: --database-url (default BENCH_DATABASE_URL or
postgres://postgres@127.0.0.1:5432/arcrm_bench_timeline), dropped and created
anew unless --keep reuses the previous build (it is migrated either way). The server reads
the signed-in user's permissions and role from Redis at --cache-url (default
BENCH_CACHE_URL or redis://127.0.0.1:6379/13), as it does with REDIS_URL set;
`--cache-url none` measures it without one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import multiprocessing
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import machine
from bench.scratch import COPY_CUSTOMERS, django_on_scratch_database

BASE_DIR = Path(__file__).resolve().parent.parent

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/arcrm_bench_timeline"
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/13"
# The bench process signs the session the server must accept: both use this key.
SECRET_KEY = "bench-timeline-only"
COLLECTOR = "bench-timeline-collector"  # owns the chosen customer, and only it
COLLEAGUE = "bench-timeline-colleague"  # owns every other account
YEARS = 3
PAGE_SIZE = 25  # ar_collections.timeline.PAGE_SIZE: the deep page's cursor leaves exactly one page

TARGET_P95_MS = 50
TARGET_RATE = 200
TARGET_DEEP_RATIO = 1.5

WARM_UP_SECONDS = 3.0  # connections, worker caches, PostgreSQL's buffers; not measured
REQUEST_TIMEOUT = 30.0  # a request unanswered this long is an error, not a slow request
SERVE_TIMEOUT = 60.0  # from starting gunicorn to its first answer
STOP_TIMEOUT = 20.0  # after SIGTERM; then the process group is killed

# How often each kind of event happens on the chosen, busy account (relative
# weights). Kinds the model has and this list does not get a small share.
KIND_WEIGHTS = {
    "invoice_issued": 26, "invoice_paid": 24, "payment_received": 18, "dunning": 8, "call": 6,
    "note": 4, "promise": 2, "credit_note": 2, "dispute": 1.5, "account_changed": 1.5,
    "contact_changed": 1.5, "payment_plan": 1, "segment_changed": 1, "exception": 0.5, "pause": 1,
    "work": 1,
}
OTHER_KIND_WEIGHT = 0.5
# Kinds recorded by a person (the collector); the others by the system.
BY_A_PERSON = {"call", "note", "promise", "dispute", "payment_plan", "exception", "account_changed",
               "contact_changed", "pause", "work"}
# Above this many open invoices the account pays before it is billed again,
# so its open ledger (on the account page) stays the size of a real one.
MAX_OPEN_INVOICES = 12

NOTES = ["Customer changes ERP system in spring, invoices may be late",
         "AP asks for invoices as PDF to the shared mailbox",
         "Owner prefers a call before any letter", "Payment run moved to the 15th",
         "New AP clerk, introduced ourselves"]
CALL_OUTCOMES = ["reached AP", "left a voicemail", "no answer", "reached the owner"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000, help="timeline events in all")
    parser.add_argument("--events-per-customer", type=int, default=10_000,
                        help="events of the chosen customer, whose pages are loaded")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients, closed loop")
    parser.add_argument("--seconds", type=float, default=15.0,
                        help=f"measured seconds per page (after {WARM_UP_SECONDS:.0f} s of warm-up)")
    parser.add_argument("--port", type=int, default=8311)
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", DEFAULT_CACHE_URL),
                        help="the shared cache (Redis) the server reads the signed-in user's permissions "
                             "and role from, as with REDIS_URL set; 'none' runs without one")
    parser.add_argument("--keep", action="store_true", help="reuse the data set of an earlier run")
    parser.add_argument("--scenarios", default="account,first,deep",
                        help="which pages to load, in order (account, first, deep)")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not wanted or set(wanted) - {"account", "first", "deep"}:
        parser.error("--scenarios takes account, first and/or deep")
    if args.events_per_customer <= PAGE_SIZE or args.events < args.events_per_customer or args.customers < 2:
        parser.error(f"need --events >= --events-per-customer > {PAGE_SIZE} and --customers >= 2")
    _port_free_or_exit(args.port)

    with tempfile.TemporaryDirectory(prefix="arcrm-bench-timeline-") as scratch:
        # The server and this process share the settings that matter: the
        # database, the key sessions are signed with, and the collected static
        # files (DEBUG off: WhiteNoise's manifest must exist). Runtime files go
        # to the temporary folder, not the work tree's var/.
        server_env = {
            "DATABASE_URL": args.database_url, "SECRET_KEY": SECRET_KEY, "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "STATIC_ROOT": str(Path(scratch, "static")),
            "ARCRM_VAR_DIR": str(Path(scratch, "var")),
            # Only the cache: the server runs no tasks. A prefix of this run's
            # own, so no entry of an earlier build can answer for this one.
            "CACHE_URL": "" if args.cache_url == "none" else args.cache_url,
            "CACHE_KEY_PREFIX": f"bench-timeline-{os.getpid()}-{time.time_ns()}",
        }
        os.environ.update(server_env)
        django_on_scratch_database(args.database_url, recreate=not args.keep)
        try:
            code = _run(args, wanted=wanted, server_env=server_env, scratch=Path(scratch))
        except KeyboardInterrupt:  # the server and the load process are stopped on the way out
            print("interrupted", file=sys.stderr)
            code = 130
    sys.exit(code)


def _run(args, *, wanted: list[str], server_env: dict, scratch: Path) -> int:
    from django.core.management import call_command
    from django.db import OperationalError, connection

    try:
        connection.ensure_connection()
    except OperationalError as error:
        print(f"cannot reach {args.database_url}: {error}".strip(), file=sys.stderr)
        if args.keep:
            print("(--keep reuses an earlier build: run once without it first)", file=sys.stderr)
        return 2
    # A kept database is migrated too, so it follows the models it is measured with.
    call_command("migrate", verbosity=0)
    if not args.keep:
        started = time.perf_counter()
        built = _build(connection, customers=args.customers, events=args.events,
                       per_customer=args.events_per_customer)
        print(f"built in {time.perf_counter() - started:.1f} s: {built}")
        if args.cache_url != "none":
            _forgotten_marks_drop()
    started = time.perf_counter()
    call_command("collectstatic", interactive=False, verbosity=0)
    print(f"collected static files in {time.perf_counter() - started:.1f} s")

    chosen = _chosen(connection)
    if chosen is None:
        print(f"no customer of {COLLECTOR} in the database: run without --keep", file=sys.stderr)
        return 2
    scenarios = [s for key in wanted for s in _scenarios(chosen) if s["key"] == key]
    connection.close()  # idle through the measurement; its backend is not the server's

    base = f"http://127.0.0.1:{args.port}"
    load_average = os.getloadavg()  # what else the machine was doing, just before the measurement
    yardstick = machine.describe()
    log = scratch / "gunicorn.log"
    with _Server(port=args.port, env=server_env, log=log) as server:
        print(f"gunicorn answering at {base} ({server.describe()})")
        for scenario in scenarios:
            scenario["check"] = _check(base, scenario, cookie=chosen["cookie"])
            print(f"{scenario['title']}: {scenario['check']['verdict']}; loading with {args.clients} "
                  f"clients for {WARM_UP_SECONDS:.0f} + {args.seconds:.0f} s ...", flush=True)
            scenario["result"] = _measure(args, scenario, cookie=chosen["cookie"], server=server)
    failed = _report(args, chosen=chosen, scenarios=scenarios, load_average=load_average,
                     yardstick=yardstick)
    if failed:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print("gunicorn's log, last lines:", *(f"  {line}" for line in tail), sep="\n")
    return 1 if failed else 0


# -- the data set -------------------------------------------------------------------------------------


def _forgotten_marks_drop() -> None:
    """The build made the bench's users, so arcrm/authcache.py marked them
    forgotten for a minute, as after any change to a user: every request of
    that minute reads the user and their rights from the database. The pages
    are measured in the steady state, as a user not changed in the last
    minute sees them, so this run's own marks go (its key prefix is its own)."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache

    from arcrm import authcache

    users = get_user_model().objects.values_list("pk", flat=True)
    cache.delete_many([authcache._KEY.format(pk) for pk in users])


def _build(connection, *, customers: int, events: int, per_customer: int) -> str:
    """COPY customers and events; the chosen customer's invoices, payments and
    credit notes; link its events to the invoices they concern. Returns a
    description of what was built."""
    from django.apps import apps
    from django.contrib.auth.models import Group, User
    from django.contrib.contenttypes.models import ContentType

    from arcrm.roles import COLLECTOR as COLLECTOR_GROUP
    from customers.models import EventKind

    rng = random.Random(20)
    collector = User.objects.create_user(COLLECTOR, first_name="Carla", last_name="Collector")
    colleague = User.objects.create_user(COLLEAGUE, first_name="Colin", last_name="Colleague")
    # Groups are synced after migrate (arcrm.roles.sync_role_groups).
    Group.objects.get(name=COLLECTOR_GROUP).user_set.add(collector, colleague)

    Invoice, Payment, CreditNote = (apps.get_model("collections", name)
                                    for name in ("Invoice", "Payment", "CreditNote"))
    types = ContentType.objects.get_for_models(Invoice, Payment, CreditNote)
    chosen = customers // 2 + 1  # in the middle of the id range, like any account
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=1)
    start = end - dt.timedelta(days=round(365.25 * YEARS))
    step = (end - start).total_seconds() / events
    history = _History(rng, collector=collector.pk, types={m.__name__: t.pk for m, t in types.items()},
                       kinds=[k.value for k in EventKind], labels={k.value: k.label for k in EventKind})
    filler = _filler_rows(rng, kinds=[k.value for k in EventKind], actor=colleague.pk)
    positions = sorted(rng.sample(range(events), per_customer))  # the chosen customer's events

    timings = []
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor, for COPY
        started = time.perf_counter()
        with raw.copy(COPY_CUSTOMERS) as copy:
            for i in range(1, customers + 1):
                ours = i == chosen
                copy.write_row((
                    i, f"T{i:07d}", "Hafenbau Timeline GmbH" if ours else f"Bench customer {i}", "",
                    "construction" if ours else "other", "", "[]",
                    start.date() if ours else end.date() - dt.timedelta(days=rng.randint(30, 4000)),
                    collector.pk if ours else colleague.pk, "", "EUR", "50000.00", "standard", 30, False,
                    "[15, 30]" if ours else "[]", "", "", "systematic_late" if ours else "new", "", "", "",
                    start, start,
                ))
        timings.append(f"customers {time.perf_counter() - started:.1f} s")

        # Events in time order, as the application appends them: the chosen
        # customer's are spread over the whole table, one here and there.
        started = time.perf_counter()
        chosen_at = iter(positions)
        next_chosen = next(chosen_at)
        buffer: list[str] = []
        with raw.copy(
            "COPY customers_timelineevent (id, customer_id, occurred_at, kind, actor_id, summary, "
            "details, subject_type_id, subject_id) FROM STDIN"
        ) as copy:
            for n in range(events):
                at = start + dt.timedelta(seconds=int((n + rng.random()) * step))
                if n == next_chosen:
                    kind, actor, summary, details, subject_type, subject = history.event(n + 1, at)
                    fields = (n + 1, chosen, at.isoformat(), kind, _null(actor), _copy_text(summary),
                              _copy_text(details), _null(subject_type), _null(subject))
                    buffer.append("\t".join(map(str, fields)) + "\n")
                    next_chosen = next(chosen_at, -1)
                else:
                    customer = rng.randrange(1, customers)  # any but the chosen one
                    customer += customer >= chosen
                    buffer.append(f"{n + 1}\t{customer}\t{at.isoformat()}\t{rng.choice(filler)}")
                if len(buffer) >= 5_000:
                    copy.write("".join(buffer))
                    buffer.clear()
            copy.write("".join(buffer))
        timings.append(f"events {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        _copy_rows(raw, Invoice._meta.db_table,
                   "id, number, customer_id, issue_date, due_date, currency, total_amount, open_amount, "
                   "status, po_reference, settled_on, created_at",
                   [(pk, number, chosen, issued, due, "EUR", _decimal(cents),
                     _decimal(0 if settled else cents), "paid" if settled else "open", "", settled, start)
                    for pk, number, issued, due, cents, settled in history.invoices])
        # Columns NOT NULL with no database default, given where the code has them (older code has not).
        later = [(name, value) for name, value in (("bank_reference", ""), ("bank_id_released", False))
                 if any(f.name == name for f in Payment._meta.fields)]
        _copy_rows(raw, Payment._meta.db_table,
                   "id, customer_id, received_on, currency, amount, method, reference, created_at"
                   + "".join(f", {name}" for name, _ in later),
                   [(pk, chosen, on, "EUR", _decimal(cents), "bank_transfer", reference, start,
                     *(value for _, value in later)) for pk, on, cents, reference in history.payments])
        _copy_rows(raw, CreditNote._meta.db_table,
                   "id, number, customer_id, invoice_id, issued_on, currency, amount, reason, created_at",
                   [(pk, number, chosen, invoice, on, "EUR", _decimal(cents), "Price correction", start)
                    for pk, number, invoice, on, cents in history.credit_notes])
        try:
            links = apps.get_model("collections", "TimelineEventInvoice")._meta.db_table
        except LookupError:
            links = None  # an older schema: the timeline cannot be filtered by invoice
        if links:
            _copy_rows(raw, links, "event_id, invoice_id", history.links)
        for model, last in ((apps.get_model("customers", "Customer"), customers),
                            (apps.get_model("customers", "TimelineEvent"), events),
                            (Invoice, len(history.invoices)), (Payment, len(history.payments)),
                            (CreditNote, len(history.credit_notes))):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                           [model._meta.db_table, max(last, 1)])
        timings.append(f"documents {time.perf_counter() - started:.1f} s")

        # Statistics for the planner, and hint bits and the visibility map set
        # once, as autovacuum would have long since done on a real table: the
        # first readers under load must not pay for the COPY.
        started = time.perf_counter()
        cursor.execute("VACUUM (ANALYZE) customers_customer, customers_timelineevent, "
                       f"{Invoice._meta.db_table}, {Payment._meta.db_table}, {CreditNote._meta.db_table}"
                       + (f", {links}" if links else ""))
        timings.append(f"VACUUM ANALYZE {time.perf_counter() - started:.1f} s")
    kinds = ", ".join(f"{k} {c:,}" for k, c in history.kinds.most_common())
    return (f"{customers:,} customers / {events:,} events with COPY ({'; '.join(timings)})\n"
            f"  the chosen customer's {per_customer:,} events: {kinds}\n"
            f"  its documents: {len(history.invoices):,} invoices "
            f"({sum(1 for i in history.invoices if not i[5]):,} open), {len(history.payments):,} payments, "
            f"{len(history.credit_notes):,} credit notes, {len(history.links):,} event-invoice links")


class _History:
    """The chosen customer's events, oldest first, and the documents they are about."""

    def __init__(self, rng, *, collector: int, types: dict, kinds: list[str], labels: dict[str, str]):
        self.rng, self.collector, self.labels = rng, collector, labels
        self.invoice_type, self.payment_type, self.credit_type = (
            types["Invoice"], types["Payment"], types["CreditNote"])
        drawn = [k for k in kinds if k != "account_created"]
        self.draw_kinds = drawn
        self.draw_weights = [KIND_WEIGHTS.get(k, OTHER_KIND_WEIGHT) for k in drawn]
        self.kinds: Counter[str] = Counter()
        self.invoices: list[list] = []  # [id, number, issued, due, cents, settled_on or None]
        self.payments: list[tuple] = []  # (id, received_on, cents, reference)
        self.credit_notes: list[tuple] = []  # (id, number, invoice id, issued_on, cents)
        self.links: list[tuple[int, int]] = []  # (event id, invoice id)
        self.open: deque[list] = deque()
        self.last_paid: list | None = None

    def event(self, pk: int, at: dt.datetime) -> tuple:
        """(kind, actor id, summary, details JSON, subject type id, subject id) of event `pk` at `at`."""
        if not self.kinds:
            kind = "account_created"
        else:
            kind = self.rng.choices(self.draw_kinds, self.draw_weights)[0]
            if kind == "invoice_paid" and not self.open:
                kind = "invoice_issued"
            elif kind == "invoice_issued" and len(self.open) >= MAX_OPEN_INVOICES:
                kind = "invoice_paid"
        self.kinds[kind] += 1
        n = self.kinds[kind]
        actor = self.collector if kind in BY_A_PERSON else None
        day = at.date()
        rng = self.rng
        subject_type = subject = None
        invoice = None
        if kind == "account_created":
            summary, details = "Account opened for Hafenbau Timeline GmbH", {"referred_by": None}
        elif kind == "invoice_issued":
            number = len(self.invoices) + 1
            cents = rng.randint(20_000, 2_500_000)
            invoice = [number, f"TL-{number:06d}", day, day + dt.timedelta(days=30), cents, None]
            self.invoices.append(invoice)
            self.open.append(invoice)
            summary = f"Invoice {invoice[1]} issued: {_money(cents)}, due {invoice[3]:%d %b %Y}"
            details = {"number": invoice[1], "amount": _decimal(cents), "currency": "EUR",
                       "due_date": invoice[3].isoformat()}
            subject_type, subject = self.invoice_type, invoice[0]
        elif kind == "invoice_paid":
            invoice = self.open.popleft()
            invoice[5] = max(day, invoice[2])
            self.last_paid = invoice
            late = max((invoice[5] - invoice[3]).days, 0)
            summary = f"Invoice {invoice[1]} paid in full" + (f", {late} days late" if late else "")
            details = {"number": invoice[1], "days_late": late}
            subject_type, subject = self.invoice_type, invoice[0]
        elif kind == "payment_received":
            cents = rng.randint(20_000, 2_500_000)
            invoice = self.last_paid
            payment = len(self.payments) + 1
            reference = f"PAY-{payment:06d}"
            self.payments.append((payment, day, cents, reference))
            applied = invoice[1] if invoice else "the account"
            summary = f"Payment {reference} of {_money(cents)} received (bank transfer), applied to {applied}"
            details = {"amount": _decimal(cents), "currency": "EUR", "reference": reference,
                       "invoices": [invoice[1]] if invoice else []}
            subject_type, subject = self.payment_type, payment
        elif kind == "credit_note" and self.invoices:
            cents = rng.randint(1_000, 50_000)
            invoice = rng.choice(self.invoices[-50:])
            note = len(self.credit_notes) + 1
            number = f"CN-{note:06d}"
            self.credit_notes.append((note, number, invoice[0], day, cents))
            summary = f"Credit note {number} for {_money(cents)} on {invoice[1]}: price correction"
            details = {"number": number, "amount": _decimal(cents), "currency": "EUR", "invoice": invoice[1]}
            subject_type, subject = self.credit_type, note
        elif kind == "dunning" and self.open:
            # As ar_collections.delivery records a notice: the action it sent
            # (the page links to it), and for a letter the PDF.
            invoice = self.open[0]
            step = rng.randint(1, 4)
            if step == 4:
                summary = f"Final notice D-{n:05d} for {invoice[1]}: letter queued for printing"
                details = {"action": n, "step": step, "address": "Kaistrasse 5, 20457 Hamburg",
                           "letter": f"letters/dunning-{n}.pdf"}
            else:
                summary = f"Reminder {step} (notice D-{n:05d}) for {invoice[1]} e-mailed to AP"
                details = {"action": n, "step": step, "address": "ap@hafenbau.example",
                           "message_id": f"<dunning-{n}@arcrm.example>"}
        elif kind == "call":
            outcome = rng.choice(CALL_OUTCOMES)
            summary, details = f"Call {n}: {outcome}", {"outcome": outcome, "minutes": rng.randint(1, 20)}
        elif kind == "note":
            text = rng.choice(NOTES)
            summary, details = f"Note {n}: {text}", {"text": text}
        elif kind == "promise":
            cents = rng.randint(50_000, 1_000_000)
            by = day + dt.timedelta(days=rng.randint(3, 21))
            summary = f"Promise {n}: {_money(cents)} by {by:%d %b %Y}"
            details = {"amount": _decimal(cents), "currency": "EUR", "promised_on": by.isoformat()}
        elif kind == "segment_changed":
            summary = f"Segment reviewed ({n}): Systematic late payer"
            details = {"before": {"segment": "systematic_late"}, "after": {"segment": "systematic_late"}}
        else:
            summary, details = f"{self.labels[kind]} ({n})", {"reference": n}
        if invoice is not None:
            self.links.append((pk, invoice[0]))
        return kind, actor, summary, json.dumps(details), subject_type, subject


def _filler_rows(rng, *, kinds: list[str], actor: int) -> list[str]:
    """Row endings (kind, actor, summary, details, no subject) for the other
    customers' events; a pool to pick from keeps a million rows cheap to write."""
    weights = [KIND_WEIGHTS.get(k, OTHER_KIND_WEIGHT) for k in kinds]
    rows = []
    for n in range(2_000):
        kind = rng.choices(kinds, weights)[0]
        cents = rng.randint(10_000, 1_000_000)
        summary = f"{kind.replace('_', ' ').capitalize()}: {_money(cents)} (ref F-{n:05d})"
        details = {"amount": _decimal(cents), "currency": "EUR", "reference": f"F-{n:05d}"}
        if kind == "dunning":
            details["action"] = n + 1
        details = json.dumps(details)
        who = str(actor) if kind in BY_A_PERSON else r"\N"
        rows.append(f"{kind}\t{who}\t{_copy_text(summary)}\t{_copy_text(details)}\t\\N\t\\N\n")
    return rows


def _copy_rows(raw, table: str, columns: str, rows: list) -> None:
    with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _copy_text(value: str) -> str:
    """A value in COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _null(value) -> str:
    return r"\N" if value is None else str(value)


def _decimal(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _money(cents: int) -> str:
    return f"EUR {cents // 100:,}.{cents % 100:02d}"


def _chosen(connection) -> dict | None:
    """The customer whose pages are loaded, its events at the page boundaries,
    and a session of its collector that the server will accept."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from customers.models import Customer, TimelineEvent

    customer = Customer.objects.filter(collector__username=COLLECTOR).first()
    if customer is None:
        return None
    events = list(TimelineEvent.objects.filter(customer=customer).order_by("-occurred_at", "-id")
                  .values_list("pk", "occurred_at", "summary"))
    client = Client()
    client.force_login(User.objects.get(username=COLLECTOR))
    cursor_event = events[len(events) - PAGE_SIZE - 1]  # leaves exactly one page after it
    from ar_collections.timeline import cursor_for

    cursor = cursor_for(SimpleNamespace(pk=cursor_event[0], occurred_at=cursor_event[1]))
    return {
        "pk": customer.pk, "name": customer.name, "events": len(events),
        "table_events": TimelineEvent.objects.count(), "customers": Customer.objects.count(),
        "newest": events[0], "oldest": events[-1], "cursor_event": cursor_event,
        "cursor": cursor,
        "cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}",
        "server": connection.connection.info.parameter_status("server_version"),
    }


def _scenarios(chosen: dict) -> list[dict]:
    pk, depth = chosen["pk"], chosen["events"]
    escape = _escape
    return [
        {"key": "account", "title": "account page", "path": f"/customers/{pk}/", "htmx": False,
         "must": [escape(chosen["newest"][2])], "must_not": []},
        {"key": "first", "title": "timeline, first page", "path": f"/customers/{pk}/timeline/",
         "htmx": True, "must": [escape(chosen["newest"][2])], "must_not": []},
        {"key": "deep", "title": f"timeline, load more at depth {depth:,}",
         "path": f"/customers/{pk}/timeline/?before={quote(chosen['cursor'], safe='')}", "htmx": True,
         "must": [escape(chosen["oldest"][2])], "must_not": [escape(chosen["cursor_event"][2])]},
    ]


def _escape(text: str) -> str:
    from django.utils.html import escape

    return str(escape(text))


# -- serving -----------------------------------------------------------------------------------------


def _port_free_or_exit(port: int) -> None:
    with socket.socket() as probe:
        # As gunicorn binds: the last run's connections in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(f"port {port} on 127.0.0.1 is in use: pick another with --port")


class _Server:
    """gunicorn as arcrm.launcher starts it (2 sync workers, no control socket),
    without the access log; stopped with SIGTERM, killed if it lingers."""

    def __init__(self, *, port: int, env: dict, log: Path):
        self.port, self.env, self.log = port, env, log
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> _Server:
        command = [sys.executable, "-m", "gunicorn", "arcrm.wsgi", "--workers", "2",
                   "--bind", f"127.0.0.1:{self.port}", "--no-control-socket"]
        self.command = command
        with self.log.open("wb") as out:
            # A process group of its own, so that whatever it starts is killed with it.
            self.process = subprocess.Popen(command, cwd=BASE_DIR, env={**os.environ, **self.env},
                                            stdout=out, stderr=subprocess.STDOUT, process_group=0)
        try:
            self._wait_until_answering()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def describe(self) -> str:
        return " ".join(["python", *self.command[1:]])

    def workers(self) -> list[int]:
        """The worker processes (children of the master)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    children.append(int(stat.parent.name))
        return children

    def _wait_until_answering(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        deadline = time.monotonic() + SERVE_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited with code {self.process.returncode}:\n{self._log_tail()}")
            try:
                with opener.open(f"http://127.0.0.1:{self.port}/login/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means the server is up
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within {SERVE_TIMEOUT:.0f} s:\n{self._log_tail()}")

    def _stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"gunicorn did not stop within {STOP_TIMEOUT:.0f} s; killing it", file=sys.stderr)
            os.killpg(self.process.pid, signal.SIGKILL)  # not yet reaped: the group id is still its pid
            self.process.wait()

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _check(base: str, scenario: dict, *, cookie: str) -> dict:
    """Fetch the page once and check it is the page the figures are about."""
    headers = {"Cookie": cookie, **({"HX-Request": "true"} if scenario["htmx"] else {})}
    request = urllib.request.Request(base + scenario["path"], headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    try:
        with opener.open(request, timeout=REQUEST_TIMEOUT) as response:
            status, body, location = response.status, response.read().decode(errors="replace"), ""
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode(errors="replace")
        location = error.headers.get("Location", "")
    except OSError as error:
        return {"ok": False, "verdict": f"CHECK FAILED: {error}"}
    problems = []
    if status != 200:
        login = " (to the login page: the session was not accepted)" if "/login/" in location else ""
        problems.append(f"status {status}{login}")
    else:
        problems += [f"missing {text!r}" for text in scenario["must"] if text not in body]
        problems += [f"shows {text!r}, which is not on this page" for text in scenario["must_not"]
                     if text in body]
        if scenario["htmx"] and ("<html" in body.lower() or "<!doctype" in body.lower()):
            problems.append("a whole page, not a fragment")
    if problems:
        return {"ok": False, "verdict": "CHECK FAILED: " + "; ".join(problems)}
    return {"ok": True, "verdict": f"check ok (200, {len(body.encode()):,} bytes, the expected events)"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer to report (e.g. to the login page), not to follow


# -- load ----------------------------------------------------------------------------------------------


def _measure(args, scenario: dict, *, cookie: str, server: _Server) -> dict:
    """Run the load process against one page; meanwhile take the server's CPU
    time at the start and end of the measured window."""
    from django.db import connection

    request = _request_bytes(args.port, scenario["path"], cookie=cookie, htmx=scenario["htmx"])
    spawn = multiprocessing.get_context("spawn")  # a small fresh interpreter: no Django in it
    results = spawn.Queue()
    start_at = time.time() + 1.0  # time for the load process to start
    process = spawn.Process(target=_drive, args=("127.0.0.1", args.port, request, args.clients, start_at,
                                                  WARM_UP_SECONDS, args.seconds, results))
    process.start()
    try:
        time.sleep(max(start_at + WARM_UP_SECONDS - time.time(), 0))
        workers, backends, cache = server.workers(), _backends(connection), _cache_server()
        before = _cpu_seconds(workers), _cpu_seconds(backends), _cpu_seconds(cache)
        time.sleep(max(start_at + WARM_UP_SECONDS + args.seconds - time.time(), 0))
        after = _cpu_seconds(workers), _cpu_seconds(backends), _cpu_seconds(cache)
        result = results.get(timeout=REQUEST_TIMEOUT + 30)
        process.join(timeout=10)
    finally:
        if process.is_alive():
            process.terminate()
            process.join()
        connection.close()
    if None in before or None in after:
        result["server_cpu"] = result["worker_cpu"] = result["database_cpu"] = result["cache_cpu"] = None
    else:
        result["worker_cpu"], result["database_cpu"], result["cache_cpu"] = (
            a - b for a, b in zip(after, before, strict=True))
        result["server_cpu"] = result["worker_cpu"] + result["database_cpu"] + result["cache_cpu"]
    return result


def _request_bytes(port: int, path: str, *, cookie: str, htmx: bool) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "User-Agent: arcrm-bench-timeline",
             "Accept: text/html", f"Cookie: {cookie}"]
    if htmx:
        lines.append("HX-Request: true")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _backends(connection) -> list[int]:
    """The PostgreSQL backends of the server's workers (persistent connections)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        return [pid for (pid,) in cursor.fetchall()]


def _cache_server() -> list[int]:
    """The Redis server the application's cache talks to (its CPU is the
    server's too), or none when it runs without one."""
    import redis
    from django.conf import settings

    if not settings.AUTH_CACHE_SECONDS:
        return []
    with redis.Redis.from_url(settings.CACHE_URL) as client:
        return [int(client.info("server")["process_id"])]


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU time so far of these processes (Linux; None elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _drive(host: str, port: int, request: bytes, clients: int, start_at: float, warm_up: float,
           seconds: float, results) -> None:
    """The load process: `clients` connections in a closed loop from `start_at`
    (wall clock, shared with the parent), measured after `warm_up`."""
    results.put(asyncio.run(_drive_async(host, port, request, clients, start_at, warm_up, seconds)))


async def _drive_async(host, port, request, clients, start_at, warm_up, seconds) -> dict:
    offset = time.time() - time.perf_counter()
    measure_from, stop_at = start_at + warm_up - offset, start_at + warm_up + seconds - offset
    await asyncio.sleep(max(start_at - time.time(), 0))
    # In the measured window: latencies, statuses and sizes of the answers.
    # Over the whole run, warm-up included: attempts, failures and what they were.
    stats = {"latencies": [], "statuses": Counter(), "sizes": Counter(), "attempts": 0, "failures": 0,
             "failed": Counter(), "connections": 0}
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(_client(host, port, request, measure_from, stop_at, stats)
                           for _ in range(clients)))
    used = resource.getrusage(resource.RUSAGE_SELF)
    stats["cpu"] = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    stats["seconds"] = seconds
    return stats


async def _client(host, port, request, measure_from, stop_at, stats) -> None:
    """One user: send, read the whole answer, send again. A new connection
    whenever the server closes one (gunicorn's sync workers close after every
    response, as HTTP/1.1 lets them); the latency includes that connect."""
    reader = writer = None
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        reused = writer is not None
        stats["attempts"] += 1
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), REQUEST_TIMEOUT)
                stats["connections"] += 1
            writer.write(request)
            status, body, keep = await asyncio.wait_for(_response(reader), REQUEST_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            writer = _close(writer)
            if reused and isinstance(error, asyncio.IncompleteReadError) and not error.partial:
                stats["attempts"] -= 1
                continue  # the server closed an idle kept-alive connection: ask again on a new one
            stats["failures"] += 1
            stats["failed"][f"{type(error).__name__}: {error}"[:160]] += 1
            await asyncio.sleep(0.05)  # no tight loop against a server that refuses
            continue
        done = time.perf_counter()
        if status != 200:
            stats["failures"] += 1
            stats["failed"][f"status {status}: {body[:120]!r}"] += 1
        if measure_from <= done <= stop_at:
            stats["latencies"].append(done - started)
            stats["statuses"][status] += 1
            stats["sizes"][len(body)] += 1
        if not keep:
            writer = _close(writer)
    _close(writer)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the connection stays open, of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size + 2)
            del body[-2:]
        await reader.readuntil(b"\r\n")  # no trailers expected: the empty line
        return status, bytes(body), keep
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"])), keep
    return status, await reader.read(), False  # delimited by the end of the connection


def _close(writer):
    if writer is not None:
        writer.close()
    return None


# -- reporting ---------------------------------------------------------------------------------------


def _statements_note() -> str:
    """How the server's connections send statements (the same DATABASE_URL as this process)."""
    from django.db import connection

    options = connection.settings_dict.get("OPTIONS", {})
    if options.get("server_side_binding") and options.get("prepare_threshold") is not None:
        return (f"prepared by each connection from a statement's run {options['prepare_threshold'] + 1} "
                f"(server-side binding; ?prepare_threshold=off in the URL turns it off)")
    return "sent with their values bound in, parsed and planned anew each time (nothing prepared)"


def _cache_note(args) -> str:
    if args.cache_url == "none":
        return "none (--cache-url none): the signed-in user's permissions and role read from PostgreSQL"
    return (f"{args.cache_url}: the signed-in user's permissions and role read from Redis "
            f"(arcrm/authcache.py; sessions and the user's row from PostgreSQL); "
            f"its server's CPU is counted in CPU/req")


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    return sorted_values[max(math.ceil(q * len(sorted_values)) - 1, 0)]


def _report(args, *, chosen: dict, scenarios: list[dict], load_average, yardstick: str) -> bool:
    """Print the figures and the targets; True if the run had errors."""
    line = "=" * 110
    print(line)
    print(f"timeline pages under load - {urlsplit(args.database_url).path.lstrip('/')} "
          f"(PostgreSQL {chosen['server']})")
    print(line)
    print(f"machine      {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in load_average)} "
          f"before the server started (server, PostgreSQL and the load share the cores); {yardstick}")
    print(f"data         {chosen['customers']:,} customers, {chosen['table_events']:,} timeline events; "
          f"customer {chosen['pk']} ({chosen['name']}) has {chosen['events']:,}")
    print(f"deep page    before={chosen['cursor']}: after event {chosen['cursor_event'][0]}, the "
          f"{chosen['events'] - PAGE_SIZE:,}th newest, so the page holds the last {PAGE_SIZE} events "
          f"(from ar_collections.timeline.cursor_for)")
    print(f"cache        {_cache_note(args)}")
    print(f"statements   {_statements_note()}")
    print(f"load         {args.clients} clients in a closed loop from a second process on loopback, "
          f"{WARM_UP_SECONDS:.0f} s warm-up + {args.seconds:.0f} s measured per page; latency from "
          f"connect to the last byte")
    print()
    print(f"{'page':<36}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}"
          f"{'non-200':>8}{'bytes':>9}{'CPU/req':>10}{'CPU-bound':>11}")
    failed = False
    for s in scenarios:
        r = s["result"]
        times = sorted(t * 1000 for t in r["latencies"])
        s["rate"] = len(times) / r["seconds"]
        s["p95"] = _percentile(times, 0.95) if times else math.inf
        size = r["sizes"].most_common(1)[0][0] if r["sizes"] else 0
        cpu, bound = "n/a", "n/a"
        if r["server_cpu"] and times:
            per_request = r["server_cpu"] / len(times)
            cpu, bound = f"{per_request * 1000:.1f} ms", f"{os.cpu_count() / per_request:.0f}/s"
        if times:
            cells = (f"{_percentile(times, 0.5):>8.1f}{s['p95']:>8.1f}{_percentile(times, 0.99):>8.1f}"
                     f"{times[-1]:>8.1f}")
        else:
            cells = f"{'-':>8}" * 4
        non_200 = len(times) - r["statuses"][200]
        print(f"{s['title']:<36}{len(times):>9,}{s['rate']:>8.0f}{cells}{non_200:>8,}{size:>9,}{cpu:>10}{bound:>11}")
        if r["failures"] or not s["check"]["ok"] or not times:
            failed = True
    print()
    for s in scenarios:
        r = s["result"]
        print(f"{s['title']}: {s['check']['verdict']}; {r['attempts']:,} requests in all (warm-up "
              f"included) on {r['connections']:,} connections, {r['failures']:,} failed; load process "
              f"CPU {r['cpu']:.1f} s")
        if r["server_cpu"] and r["latencies"]:
            count = len(r["latencies"])
            print(f"  server CPU per request: {r['worker_cpu'] / count * 1000:.1f} ms in gunicorn's workers "
                  f"+ {r['database_cpu'] / count * 1000:.1f} ms in their PostgreSQL backends "
                  f"+ {r['cache_cpu'] / count * 1000:.1f} ms in Redis")
        for what, count in r["failed"].most_common(5):
            print(f"  ERROR x {count:,}: {what}")
    if any(s["result"]["server_cpu"] for s in scenarios):
        print("CPU/req: CPU time of the gunicorn workers, their PostgreSQL backends and Redis per measured "
              "request (other work on the machine barely moves it); CPU-bound: the requests/s at which the "
              f"server alone would keep all {os.cpu_count()} cores busy (the load generator not counted)")
    print()
    verdict = {True: "PASS", False: "MISS"}
    print(f"targets      p95 <= {TARGET_P95_MS} ms, >= {TARGET_RATE} requests/s per page; "
          f"deep page p95 <= {TARGET_DEEP_RATIO} x first page p95")
    for s in scenarios:
        print(f"  {s['title']:<36} p95 {s['p95']:6.1f} ms {verdict[s['p95'] <= TARGET_P95_MS]}"
              f"   {s['rate']:5.0f} req/s {verdict[s['rate'] >= TARGET_RATE]}")
    pages = {s["key"]: s for s in scenarios}
    if "first" in pages and "deep" in pages:
        ratio = pages["deep"]["p95"] / pages["first"]["p95"]
        print(f"  {'deep / first p95':<36} {ratio:.2f} {verdict[ratio <= TARGET_DEEP_RATIO]}")
    # Little's law for a closed loop: mean latency = clients / throughput.
    print(f"  (with {args.clients} clients in a closed loop, mean latency = {args.clients} / (requests/s): "
          f"a mean under {TARGET_P95_MS} ms needs over {args.clients * 1000 // TARGET_P95_MS} requests/s)")
    if failed:
        print("ERRORS: the run had failed requests or checks (above); its figures do not stand")
    print(line)
    return failed


if __name__ == "__main__":
    main()
