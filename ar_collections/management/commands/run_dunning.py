import datetime as dt

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
        try:
            run_date = dt.date.fromisoformat(date) if date else timezone.localdate()
        except ValueError:
            raise CommandError(f"--date must be YYYY-MM-DD, not {date!r}") from None
        try:
            run = dunning_run_execute(run_date=run_date)
        except RunRefused as refused:
            raise CommandError(str(refused)) from None
        counts = ", ".join(f"{status} {n}" for status, n in run_counts(run=run).items() if n)
        self.stdout.write(f"Dunning run {run.run_date}: {run.get_status_display().lower()}; "
                          f"actions: {counts or 'none'}")
