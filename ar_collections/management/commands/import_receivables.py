from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ar_collections.imports import COLUMNS, NotText, decode, importer


class Command(BaseCommand):
    help = (
        "Import invoices, payments or customer accounts from a CSV file or an Excel "
        "workbook (.xlsx) exported by the ERP, all or nothing: "
        "any problem is reported by line and nothing is written. Running a file again "
        "records nothing twice. See ar_collections/imports.py for the columns."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=list(COLUMNS))
        parser.add_argument("file", help="the CSV file (UTF-8) or the Excel workbook (.xlsx)")
        parser.add_argument("--dry-run", action="store_true",
                            help="check the file and say what it would record, recording nothing")

    def handle(self, *args, kind: str, file: str, dry_run: bool, **options):
        try:
            raw = Path(file).read_bytes()
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from None
        try:
            text = decode(raw)
        except NotText as error:
            raise CommandError(f"{file}: {error}") from None
        report = importer(kind)(text, dry_run=dry_run)
        for problem in report.errors:
            self.stderr.write(problem)
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(report.summary())
