import datetime as dt
import re

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ar_collections.dunning import RunRefused, dunning_run_execute, run_counts


class Command(BaseCommand):
    help = (
        "Plan the dunning run for a date (default: today) and hand its actions to the "
        "delivery workers. Running a date again plans nothing new."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="run date, YYYY-MM-DD (default: today)")

    def handle(self, *args, date: str | None = None, **options):
        run_date = timezone.localdate() if date is None else _day(date)
        try:
            run = dunning_run_execute(run_date=run_date)
        except RunRefused as refused:
            raise CommandError(str(refused)) from None
        counts = ", ".join(f"{status} {n}" for status, n in run_counts(run=run).items() if n)
        self.stdout.write(f"Dunning run {run.run_date}: {run.get_status_display().lower()}; "
                          f"actions: {counts or 'none'}")


def _day(written: str) -> dt.date:
    """The day `written` as YYYY-MM-DD. An empty value is refused, not read as
    today: it is what a script writes for a variable it forgot to set. Python
    would also take 20260305 or a week date; the help promises one form only."""
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", written):
            raise ValueError
        return dt.date.fromisoformat(written)
    except ValueError:
        raise CommandError(
            f"--date must be a day written YYYY-MM-DD, e.g. {timezone.localdate():%Y-%m-%d}; got {written!r}"
        ) from None
