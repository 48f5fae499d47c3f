"""`manage.py seed_demo`: fill an empty database with demo accounts (see arcrm/demo.py)."""

from __future__ import annotations

import datetime as dt
import sys
import time

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from arcrm import demo
from arcrm.launcher import DEMO_ABSENT
from customers.models import Customer


class Command(BaseCommand):
    help = (
        "Fill an empty database with demo users, customers, contacts and 18 months of "
        "invoices and payments. The same --seed and --today give the same data."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--customers", type=int, default=demo.DEFAULT_CUSTOMERS,
            help=f"How many customers (default {demo.DEFAULT_CUSTOMERS}).",
        )
        parser.add_argument(
            "--seed", type=int, default=demo.DEFAULT_SEED,
            help=f"Seed of the random generator (default {demo.DEFAULT_SEED}).",
        )
        parser.add_argument(
            "--today", default=None, metavar="YYYY-MM-DD",
            help="The reference date the history leads up to (default: today).",
        )
        parser.add_argument(
            "--if-empty", action="store_true",
            help="Do nothing, successfully, when the database already has customers.",
        )
        parser.add_argument(
            "--check", action="store_true",
            help=f"Seed nothing: exit 0 when the demo users are in the database, {DEMO_ABSENT} when not.",
        )

    def handle(self, *args, customers: int, seed: int, today, if_empty: bool, check: bool = False,
               **options):
        if check:
            # The launcher asks, to say the demo logins when an earlier run seeded them.
            usernames = [username for username, *_ in demo.DEMO_USERS]
            if not User.objects.filter(username__in=usernames).exists():
                sys.exit(DEMO_ABSENT)
            return
        today = _reference_date(today)
        if customers < 1:
            raise CommandError("--customers must be at least 1.")
        existing = Customer.objects.count()
        if existing:
            if if_empty:
                self.stdout.write(f"The database already has {existing} customers; seeded nothing.")
                return
            raise CommandError(
                f"The database already has {existing} customers; seed_demo only fills an empty "
                "database. Use --if-empty to skip quietly, or start from a fresh database."
            )
        started = time.monotonic()
        summary = demo.seed(customers=customers, seed=seed, today=today)
        for line in summary.lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Seeded in {time.monotonic() - started:.1f} s."))


def _reference_date(value: str | dt.date | None) -> dt.date:
    # call_command(today=...) hands the value over as given, without argparse.
    if value is None:
        return timezone.localdate()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--today must be a date as YYYY-MM-DD, not {value!r}.") from None
