"""Receivables from the ERP: invoices and payments from CSV files, and from
the JSON API (ar_collections/api.py), whose rows take the same rules. The
customer accounts themselves come in the same way, read and reported by this
module's machinery, their rows checked by the account card's own form
(customers/imports.py).

A file is taken whole or not at all. Every row is checked first (the account
exists, dates and amounts are what they say, an invoice belongs to the
account of the payment naming it) and any problem is reported with its line
number, leaving the data as it was; a file with no problem is written in one
transaction. Running the same file again changes nothing: an invoice already
recorded exactly so, or a payment with the same reference, amount and date on
the same account (the same bank line), is counted as already there. An
invoice recorded before whose due date or PO reference the ERP has changed
since (terms extended, a reference given late) takes the new values, on its
account's timeline; any other difference is a problem of its row.

Invoices come in open, for their total: what has been paid on them comes in
as payments, so that an invoice's open amount is always its total less its
allocations, dated. Payments are recorded in the order the money came in
(a statement is often listed newest first), each to the invoices it names,
what is left to the late fees and interest still owed, then on account.
A row naming none pays, as the payment form does (workspace.unnamed_money_split):
the account's invoices in its currency due by the row's date, oldest due first,
then the late fees and interest still owed, then the invoices not yet due, then
the rest stays on account; none under open dispute (nor the interest charged
on one), and none for what another row of the file names. The charges are
those charged by the row's date: money sent before a fee was charged was not
sent for it.
Recording it checks what the account's promises and plans now keep; what
they break is for the daily check. A file's accounts are locked at once, in
id order, so two imports at the same time queue rather than deadlock.

Both files are UTF-8 (an Excel byte-order mark is fine), comma-, semicolon- or
tab-separated, or Excel workbooks (.xlsx, read into the same rows: see
_sheet_records), with a header row naming the columns in any order; dates are
YYYY-MM-DD and amounts use a dot for cents and no thousands separators. Every
payment carries its reference (the bank's, a cheque number): it is what tells
a new payment from one imported before.

A file uploaded on the managers' page is kept as a `ReceivablesImport` and
imported by a worker (a payment file of thousands of rows takes minutes, more
than a web request may); `manage.py import_receivables` imports in its own
process. A worker that dies mid-import rolls back and the broker hands the
task to another; an upload whose task was lost (the broker was down) is
handed over again by the sweep on the beat.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import openpyxl
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Upper
from django.utils import timezone
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.worksheet._reader import FORMULA_TAG, WorkSheetParser

from ar_collections.models import (
    ImportStatus,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    ReceivablesImport,
    bank_id_key,
    bank_id_key_in_database,
)
from ar_collections.services import behaviour_refresh, behaviour_refresh_on_commit
from ar_collections.timeline import event_record, events_link, invoice_issued
from ar_collections.worklist import order_gaps_ordered
from ar_collections.workspace import (
    allocations_oldest_first,
    invoice_cancel,
    invoice_cancel_refusal,
    payment_record,
    reversed_when_why,
    unnamed_money_split,
)
from arcrm.dates import INVOICE_LONG_AGO_DAYS, LONG_AGO_DAYS, far_ahead, format_day, long_ago
from arcrm.money import (
    LARGEST_AMOUNT,
    decimal_places,
    format_money,
    smallest_unit,
    validate_currency_in_use,
)
from arcrm.text import hidden_characters, is_one_line, other_digits
from customers.models import Customer, EventKind, TimelineEvent

log = logging.getLogger(__name__)

INVOICES, PAYMENTS, CUSTOMERS = "invoices", "payments", "customers"
# (required, optional) columns of each kind of file.
COLUMNS = {
    INVOICES: (("number", "account_number", "issue_date", "due_date", "currency", "total_amount"),
               ("po_reference", "confirm_old_date", "cancelled_on", "cancel_reason")),
    PAYMENTS: (("account_number", "received_on", "currency", "amount", "reference"),
               ("method", "invoices", "bank_reference", "confirm_old_date")),
    # The account card's fields an ERP keeps (customers/imports.py), and its billing contact.
    CUSTOMERS: (("account_number", "name"),
                ("currency", "payment_terms", "payment_terms_days", "credit_limit", "industry", "collector",
                 "contact_name", "contact_email", "contact_phone", "language")),
}
# What one row of each kind records, in the report's words.
NOUNS = {INVOICES: "invoice", PAYMENTS: "payment", CUSTOMERS: "account"}
# A payment received more than LONG_AGO_DAYS ago, or an invoice issued more
# than INVOICE_LONG_AGO_DAYS ago, is new only with the same date in a confirm_old_date column, as the payment
# form asks for a tick (arcrm.dates.long_ago): one recorded before comes again
# without it.
# Also below PostgreSQL's 65,535 parameters for the lookups of a file's
# accounts and invoices; a larger export is split.
MAX_ROWS = 50_000
_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,2})?")  # money fields: 14 digits, 2 after the point
# Written as an amount, but with more digits before the point than money is kept with.
_AMOUNT_TOO_LARGE = re.compile(r"\d{13,}(\.\d{1,2})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # 0-9: \d is any script's digit
# Dates before this year, or more than DATE_AHEAD_YEARS ahead, are mistyped.
EARLIEST_YEAR = 1990


def example_file(kind: str, *, account_number: str, currency: str, today: dt.date,
                 collector: str = "") -> str:
    """A file to start from, offered on the import page: the header and one
    row, on one of the installation's own accounts in its currency, dated
    lately, so that it imports as it is (a date long past would need
    confirm_old_date), and the example payment pays the example invoice.
    The accounts' example opens a new account instead (one of the
    installation's own would be renamed), owned by `collector` (a username)."""
    if kind == CUSTOMERS:
        return (f"{','.join(sum(COLUMNS[CUSTOMERS], ()))}\r\n"
                f"C90001,Harbour Supplies Ltd,{currency},standard,30,"
                f"{Decimal('25000').quantize(smallest_unit(currency))},wholesale,{collector},Anna Berg,"
                "ap@harbour-supplies.example,+44 20 7946 0018,en\r\n")
    issued = today - dt.timedelta(days=35)
    number = f"INV-{issued.year}-0001"
    amount = Decimal("1250").quantize(smallest_unit(currency))
    if kind == INVOICES:
        return ("number,account_number,issue_date,due_date,currency,total_amount,po_reference\r\n"
                f"{number},{account_number},{issued},{issued + dt.timedelta(days=30)},{currency},{amount},"
                "PO-881\r\n")
    received = today - dt.timedelta(days=1)
    return ("account_number,received_on,currency,amount,reference,method,invoices,bank_reference\r\n"
            f"{account_number},{received},{currency},{amount},BANK-{received:%Y%m%d}-17,bank_transfer,{number},"
            f"{received:%Y%m%d}00017\r\n")


@dataclass
class ImportReport:
    kind: str
    dry_run: bool = False
    # What a problem's number counts: a file's lines, or the rows of a request to the API.
    unit: str = "line"
    rows: int = 0
    created: int = 0
    already: int = 0  # recorded before, exactly so: left as they were
    # Recorded before, with a due date or PO reference the ERP has changed
    # since; an account: with a value the file changes.
    updated: int = 0
    # Invoices the ERP cancelled (a cancelled_on given): cancelled now, and
    # those a request sent again found cancelled already (counted in `already` too).
    cancelled: list[str] = field(default_factory=list)
    already_cancelled: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong); 0: the file

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def whole(self) -> str:
        """What the rows came in, as a problem names it: a file's lines, or a request to the API."""
        return "file" if self.unit == "line" else "request"

    @property
    def errors(self) -> list[str]:
        """The problems in the order of the file, each with its line."""
        return [f"{self.unit} {line}: {text}" if line else text for line, text in sorted(self.problems)]

    def problem(self, line: int, text: str) -> None:
        self.problems.append((line, str(text)))

    def summary(self) -> str:
        noun = NOUNS[self.kind]
        if self.problems:
            return (f"Nothing imported: {len(self.problems)} problem{'s' * (len(self.problems) != 1)} "
                    f"in {self.rows} row{'s' * (self.rows != 1)}.")
        verb = "would be recorded" if self.dry_run else "recorded"
        why = ("a due date or PO reference changed in the ERP" if self.kind != CUSTOMERS
               else f"changed by the {self.whole}")
        updated = (f"{self.updated} {'would be ' if self.dry_run else ''}updated ({why}), "
                   if self.updated else "")
        cancelled = (f"{len(self.cancelled)} {'would be ' if self.dry_run else ''}cancelled in the ERP "
                     f"({', '.join(self.cancelled)}), " if self.cancelled else "")
        again = (f"; {', '.join(self.already_cancelled)} cancelled already" if self.already_cancelled
                 else "")
        left = f"left as {'they were' if self.already != 1 else 'it was'}{again}"
        return (f"{self.created} {noun}{'s' * (self.created != 1)} {verb}, {updated}{cancelled}"
                f"{self.already} already there ({left}), from {self.rows} row{'s' * (self.rows != 1)}.")


class _RowError(Exception):
    """A problem of a row's value; `column`: the column it is in, if one."""

    def __init__(self, text: str, *, column: str = "") -> None:
        super().__init__(text)
        self.column = column


class _Fields:
    """Reads a row's values noting every problem instead of stopping at the
    first, so that one look at the report shows all that a line needs."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # The same problems by the column they are in ("" for the row's own).
        self.by_column: dict[str, list[str]] = defaultdict(list)

    def read(self, getter, *args, **kwargs):
        """`getter`'s value, or None with its problem noted."""
        try:
            return getter(*args, **kwargs)
        except _RowError as error:
            self.note(error.column, str(error))
            return None

    def note(self, column: str, problem: str) -> None:
        self.problems.append(problem)
        self.by_column[column].append(problem)

    def done(self) -> None:
        if self.problems:
            *first, last = self.problems
            raise _RowError("; ".join([*(problem.removesuffix(".") for problem in first), last]))


# --- queued imports (the managers' page) ------------------------------------------------

# A queued import older than this is handed to the workers again by the sweep.
SWEEP_AFTER = dt.timedelta(minutes=5)


def import_queue(*, kind: str, text: str | bytes, file_name: str = "", dry_run: bool = False,
                 actor=None) -> ReceivablesImport:
    """Keep the file (`text`: as decode reads it) and have a worker import it
    once this transaction commits."""
    workbook = text if isinstance(text, bytes) else None
    batch = ReceivablesImport.objects.create(
        kind=kind, text="" if workbook else text, workbook=workbook, file_name=file_name[:200],
        dry_run=dry_run, created_by=actor,
    )
    from ar_collections.tasks import run_import  # the tasks module imports this one

    # robust: a broker that is down must not lose the upload; the sweep hands it over.
    transaction.on_commit(lambda: run_import.delay(batch.pk), robust=True)
    return batch


def import_run(pk: int) -> str:
    """Import a queued file; its status says what came of it. An import
    another worker holds, or one already done, is left alone. An error the
    import did not foresee ends it as failed, nothing recorded, rather than
    leaving it queued to fail again at every sweep."""
    # The import's own transaction holds the row until it commits, so others
    # would see it queued until the end: say first, and commit, that it began.
    with transaction.atomic():
        (ReceivablesImport.objects.filter(
            pk__in=ReceivablesImport.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, status=ImportStatus.QUEUED).values("pk"))
         .update(started_at=timezone.now()))
    with transaction.atomic():
        batch = (ReceivablesImport.objects.select_for_update(skip_locked=True)
                 .filter(pk=pk, status=ImportStatus.QUEUED).first())
        if batch is None:
            return "not_claimed"
        run = importer(batch.kind)
        try:
            with transaction.atomic():
                report = run(batch.text if batch.workbook is None else bytes(batch.workbook),
                             actor=batch.created_by, dry_run=batch.dry_run)
        except Exception as error:
            log.exception("receivables import %s failed", batch.pk)
            batch.status, batch.finished_at = ImportStatus.FAILED, timezone.now()
            batch.errors = [f"The import stopped on an error: {type(error).__name__}: {error}"]
            if isinstance(error, SoftTimeLimitExceeded):  # the task's time ran out (JOB_TIME_LIMIT)
                batch.errors = [f"The import took longer than its time limit (JOB_TIME_LIMIT, "
                                f"{settings.JOB_TIME_LIMIT} s) and was stopped: nothing was imported. "
                                "Import the file in parts."]
            batch.summary = "Nothing imported: the import stopped on an error (see below)."
            batch.save()
            return batch.status
        if not report.ok:
            batch.status = ImportStatus.CHECKED_PROBLEMS if batch.dry_run else ImportStatus.REFUSED
        else:
            batch.status = ImportStatus.CHECKED if batch.dry_run else ImportStatus.DONE
        batch.rows, batch.created, batch.already = report.rows, report.created, report.already
        batch.updated = report.updated
        batch.errors, batch.summary, batch.finished_at = report.errors, report.summary(), timezone.now()
        batch.save()
        return batch.status


def importer(kind: str):
    """The function importing a file of `kind`: its text, actor and dry_run in, an ImportReport out."""
    if kind == CUSTOMERS:
        from customers.imports import customers_import  # that module reads files with this one

        return customers_import
    return invoices_import if kind == INVOICES else payments_import


def imports_sweep(*, now: dt.datetime | None = None) -> int:
    """Hand queued imports whose task was lost to the workers again."""
    from ar_collections.tasks import run_import

    now = now or timezone.now()
    ids = list(ReceivablesImport.objects.filter(status=ImportStatus.QUEUED, created_at__lte=now - SWEEP_AFTER)
               .values_list("pk", flat=True))
    for pk in ids:
        run_import.delay(pk)
    return len(ids)


class NotText(ValueError):
    """The upload is neither a UTF-8 text file nor an Excel workbook that can be read."""


# An OLE2 compound file: Excel 97-2003's .xls, or any Office file protected
# by a password (its package encrypted inside such a file).
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = b"PK\x03\x04"  # an .xlsx is a zip of XML parts
# A workbook packs its XML tight: a sheet of a file's 50,000 rows unpacks to
# tens of MB. Bound the unpacked parts so that a small file that unpacks to
# gigabytes (a zip bomb) is refused before anything reads it.
WORKBOOK_UNPACKED_MAX_BYTES = 100 * 1024 * 1024


def decode(raw: bytes, *, name: str = "") -> str | bytes:
    """The file's content as read_rows reads it: a CSV file's text, or an Excel
    workbook's bytes once it opens; NotText (with what to do) otherwise."""
    if raw.startswith(_OLE2):
        if "EncryptedPackage".encode("utf-16-le") in raw:
            raise NotText("The workbook is protected by a password, so nothing in it can be read: remove the "
                          "password in Excel (File › Info › Protect Workbook › Encrypt with Password, "
                          "emptied), save it and upload it again.")
        raise NotText("The file is an old Excel workbook (.xls): save it as “Excel Workbook (.xlsx)” "
                      "or as “CSV UTF-8”.")
    if raw.startswith(_ZIP) or name.lower().endswith((".xlsx", ".xlsm")):
        _workbook_open(raw).close()
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotText(f"The file is not UTF-8 (byte {error.start}): save it as “CSV UTF-8”.") from None
    if "\x00" in text:
        raise NotText(f"The file holds a NUL character (byte {raw.index(0)}): it is not a CSV text file.")
    return text


def _workbook_open(raw: bytes):
    """The workbook, read-only, with each formula's value as Excel last
    calculated it; NotText if it cannot be read."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            unpacked = sum(part.file_size for part in archive.infolist())
    except zipfile.BadZipFile:
        raise NotText("The workbook is damaged (it is not a complete .xlsx file): open it in Excel, save it "
                      "again and upload that.") from None
    if unpacked > WORKBOOK_UNPACKED_MAX_BYTES:
        raise NotText(f"The workbook unpacks to {unpacked / 1024 / 1024:,.0f} MB, more than "
                      f"{WORKBOOK_UNPACKED_MAX_BYTES // 1024 // 1024} MB: split it.")
    try:
        return openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as error:  # a damaged file fails in many ways, each the same to the user
        log.info("unreadable workbook: %s: %s", type(error).__name__, error)
        raise NotText("The workbook cannot be read (it is damaged, or not an .xlsx file): open it in Excel, "
                      "save it as “Excel Workbook (.xlsx)” and upload that.") from None


# --- reading the file -----------------------------------------------------------------


class _FileError(Exception):
    """The file cannot be read on from `line` (0: the file as a whole)."""

    def __init__(self, line: int, text: str) -> None:
        super().__init__(text)
        self.line = line


def read_rows(content: str | bytes, report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each non-blank row without a problem; the
    problems go to `report`, which also counts the rows. `content` is a CSV
    file's text, or an Excel workbook's bytes (decode): the workbook's rows
    are read as the CSV file's, numbered as the sheet numbers them."""
    if isinstance(content, bytes):
        return _rows_of(_sheet_records(content, report.kind), report)
    return _rows_of(_csv_records(content), report)


def _csv_records(text: str):
    """(line it starts on, values, "") for each row of a CSV text."""
    text = text.removeprefix("\ufeff")
    # Lines may end in CRLF, LF or a lone CR (Excel for Mac); blank lines
    # before the header are skipped.
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        return
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","  # one column only, or nothing to tell by
    # RFC 4180 as Excel writes it; strict, so an unclosed quote is an error
    # rather than a field that swallows the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, doublequote=True, strict=True)
    # A quoted value may hold line breaks: a row is told by the line it starts on.
    start = 1
    try:
        for values in reader:
            line, start = start, reader.line_num + 1
            yield line, values, ""
    except csv.Error as error:
        hint = " (a quote opened and not closed?)" if "unexpected end of data" in str(error) else ""
        raise _FileError(reader.line_num, f"{error}{hint}") from None


def _rows_of(records, report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    """The rows of `records` ((line, values, problem) of a CSV file or a
    sheet), the first non-blank one naming the columns."""
    required, optional = COLUMNS[report.kind]
    rows = []
    try:
        records = iter(records)
        first = next((record for record in records if record[2] or any(v.strip() for v in record[1])), None)
        if first is None:
            report.problem(1, "the file is empty; the first line names the columns: " + ", ".join(required))
            return []
        at, header, problem = first
        if problem:
            report.problem(at, problem)
            return []
        header = [name.strip().lower() for name in header]
        named = [c for c in header if c]  # a trailing delimiter leaves a column without a name
        missing = [c for c in required if c not in named]
        unknown = [c for c in named if c not in required + optional]
        if not set(named) & set(required + optional):
            report.problem(at, "the first line must name the columns (" + ", ".join(required)
                           + "); this one names none of them")
            return []
        if missing:
            report.problem(at, f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}")
        if unknown:
            report.problem(at, f"unknown column{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))} "
                               f"(the columns are {', '.join(required + optional)})")
        if twice := sorted({c for c in named if named.count(c) > 1}):
            report.problem(at, f"column{'s' * (len(twice) > 1)} {', '.join(twice)} named twice")
        if report.problems:
            return []
        for line, values, problem in records:
            if not problem and not any(v.strip() for v in values):
                continue
            report.rows += 1
            if report.rows > MAX_ROWS:
                report.problems[:] = [(0, f"more than {MAX_ROWS:,} rows: split the file")]
                return []
            if problem:
                report.problem(line, problem)
                continue
            values = [v.strip() for v in values]
            if any(values[len(header):]):
                report.problem(line, "more values than columns")
                continue
            if any(value for name, value in zip(header, values, strict=False) if not name):
                report.problem(line, "a value under a column without a name")
                continue
            # A short row (an export that drops trailing empty cells) leaves the rest empty.
            values += [""] * (len(header) - len(values))
            rows.append((line, {name: value for name, value in zip(header, values, strict=False) if name}))
    except _FileError as error:
        report.problem(error.line, str(error))
        return []
    return rows


# --- reading a workbook -----------------------------------------------------------------


def _sheet_records(raw: bytes, kind: str):
    """(sheet row number, the cells as a CSV file would hold them, a problem
    of the row or "") for each row of the sheet named like `kind` (any
    capitals), else of the first visible one.

    Each cell is read as the CSV export of the sheet would hold it, so that
    every rule and message is the CSV file's: a date as YYYY-MM-DD, a number
    as the digits Excel shows (15 significant ones: 1234.1, never
    1234.0999999; 5, never 5.0), a formula as the value Excel last
    calculated, a merged cell's value in every cell of its range. A formula
    never calculated (a workbook written by a program, not saved by Excel)
    or a cell holding an error (#REF!) is a problem of its row."""
    try:
        workbook = _workbook_open(raw)
    except NotText as error:
        raise _FileError(0, str(error)) from None
    # By sheet row number, the rows holding something: (cells by column, problems).
    rows: dict[int, tuple[dict[int, str], list[str]]] = {}
    try:
        visible = [s for s in workbook.worksheets if s.sheet_state == "visible"] or workbook.worksheets
        sheet = next((s for s in workbook.worksheets if s.title.strip().lower() == kind), visible[0])
        # openpyxl's own read-only reader (ReadOnlyWorksheet._cells_by_row),
        # less what it loses: the merged cells, and the formulas without a
        # value, which it reads as empty cells. Its private names are those of
        # the version pinned.
        with sheet._get_source() as source:
            parser = _SheetParser(source, sheet._shared_strings, data_only=True, epoch=workbook.epoch,
                                  date_formats=workbook._date_formats,
                                  timedelta_formats=workbook._timedelta_formats)
            for number, cells in parser.parse():
                values, problems = {}, []
                for cell in cells:
                    at = f"{get_column_letter(cell['column'])}{number}"
                    if cell["data_type"] == "f":
                        problems.append(f"cell {at} holds a formula with no value saved: open the workbook "
                                        "in Excel and save it again, or type the value")
                    elif cell["data_type"] == "e":
                        problems.append(f"cell {at} holds the error {cell['value']}: correct it in the "
                                        "workbook")
                    elif text := _cell_text(cell["value"]):
                        values[cell["column"]] = text
                if problems or any(v.strip() for v in values.values()):
                    rows[number] = (values, problems)
                if len(rows) > MAX_ROWS + 1:  # the header and a row too many: the file is refused
                    break
            else:
                # The ranges come after the cells; their other cells are empty in the file.
                for merged in (parser.merged_cells.mergeCell if parser.merged_cells else []):
                    _merge_fill(rows, merged.ref)
    except Exception as error:  # a damaged part fails in many ways, each the same to the user
        log.info("unreadable workbook: %s: %s", type(error).__name__, error)
        raise _FileError(0, "the workbook is damaged (a sheet of it cannot be read): open it in Excel, save "
                            "it again and upload that") from None
    finally:
        workbook.close()
    if not rows:
        raise _FileError(1, f"the sheet {sheet.title!r} is empty: its first row names the columns "
                            f"({', '.join(COLUMNS[kind][0])}); the import reads the sheet named {kind}, else "
                            "the first one")
    width = 0
    for number in sorted(rows):
        values, problems = rows[number]
        # The header's last column: the rows are read that wide, and a value
        # beyond it is one more than the columns, as in a CSV file.
        width = width or max(values, default=0)
        line = [values.get(column, "") for column in range(1, width + 1)]
        if beyond := next((v for c, v in sorted(values.items()) if c > width and v.strip()), ""):
            line.append(beyond)
        yield number, line, "; ".join(problems)


class _SheetParser(WorkSheetParser):
    def parse_cell(self, element):
        cell = super().parse_cell(element)
        if cell["value"] is None and element.find(FORMULA_TAG) is not None:
            cell["data_type"] = "f"  # a formula without the value it had when last saved
        return cell


def _merge_fill(rows: dict[int, tuple[dict[int, str], list[str]]], ref: str) -> None:
    """Give every cell of the merged range `ref` its top-left cell's value, which Excel shows there."""
    first_column, first_row, last_column, last_row = range_boundaries(ref)
    value = rows.get(first_row, ({}, []))[0].get(first_column, "")
    if not value:
        return
    for number in range(first_row, last_row + 1):
        values, _ = rows.setdefault(number, ({}, []))
        for column in range(first_column, last_column + 1):
            values[column] = value


def _cell_text(value) -> str:
    """A cell's value as text, as the import reads a CSV file's."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        # Excel keeps 15 significant digits and shows no more: 1234.1 is
        # stored as the float nearest it, 1234.09999999999990905052982270717620849609375.
        return format(Decimal(f"{value:.15g}").normalize(), "f")
    return str(value)


def read_json_rows(rows: list, report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    """(row number, counted from 1, and row) for each row of a request to the
    API (ar_collections/api.py) whose fields are as a file's columns would be;
    the problems of the others go to `report`, which also counts the rows. The
    values are then checked as a file's are, by the same functions.

    Every value is a string, as a file's is: an amount sent as a JSON number
    may arrive as a float that has lost its cents. Payments may list their
    invoices as an array of numbers as well as a file's "INV-1;INV-2"."""
    required, optional = COLUMNS[report.kind]
    read = []
    for number, row in enumerate(rows, start=1):
        report.rows += 1
        if not isinstance(row, dict):
            report.problem(number, "a row is an object of fields, e.g. {" + ", ".join(
                f'"{name}": "…"' for name in required[:2]) + ", …}")
            continue
        problems = []
        if missing := [name for name in required if name not in row]:
            problems.append(f"missing field{'s' * (len(missing) > 1)} {', '.join(missing)}")
        if unknown := [name for name in row if name not in required + optional]:
            problems.append(f"unknown field{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))} "
                            f"(the fields are {', '.join(required + optional)})")
        values = {}
        for name, value in row.items():
            if name == "invoices" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = ";".join(value)
            elif name == "invoices" and value is not None and not isinstance(value, str):
                problems.append('invoices must be a list of invoice numbers, each a string (["INV-1", '
                                '"INV-2"]), or one string ("INV-1;INV-2")')
                continue
            if value is None:
                value = ""
            if isinstance(value, str) and "\x00" in value:
                # JSON may carry a NUL, which the database refuses in text (a
                # file holding one is refused whole, read_text): the row is
                # refused before any look-up takes the value to the database.
                problems.append(f"{name} holds a NUL character (\\u0000): send it without")
            elif isinstance(value, str):
                values[name] = value.strip()
            elif name in required + optional:
                problems.append(f"{name} must be a string" + (
                    ' (an amount like "1250.00": a number may lose its cents)'
                    if "amount" in name or name == "credit_limit" else ""))
        if problems:
            report.problem(number, "; ".join(problems))
            continue
        read.append((number, {name: values.get(name, "") for name in required + optional}))
    return read


def _date(row: dict, column: str) -> dt.date:
    value = row.get(column, "")
    if not value:
        raise _RowError(f"{column} is empty", column=column)
    if not _DATE.fullmatch(value):
        raise _RowError(f"{column} {value!r} is not a date: write YYYY-MM-DD", column=column)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:  # 2025-02-30: in the form, but the calendar has no such day
        raise _RowError(f"{column} {value} is no such day", column=column) from None
    # A mistyped year (2925 for 2025) would keep an invoice out of
    # collections for ever: refused, as the account's forms refuse it.
    if day.year < EARLIEST_YEAR or far_ahead(day, today=timezone.localdate()):
        raise _RowError(f"{column} {value} is not a plausible date: check the year", column=column)
    return day


def _amount(row: dict, column: str, *, currency: str | None) -> Decimal:
    """The row's amount; its places are checked against `currency` unless
    that was unreadable (its own problem)."""
    value = row.get(column, "")
    if not value:
        raise _RowError(f"{column} is empty", column=column)
    if digits := other_digits(value):  # Decimal would read "１００" as 100
        raise _RowError(f"{column} {value!r} is written with digits other than 0-9 ({', '.join(digits)}): "
                        "write it like 1234.50", column=column)
    if value.startswith("-") and _AMOUNT.fullmatch(value[1:]):
        raise _RowError(f"{column} must be more than zero: credit notes and refunds are not imported "
                        "from the ERP; record a credit note on the account page (Record a credit note)",
                        column=column)
    if _AMOUNT_TOO_LARGE.fullmatch(value.lstrip("0") or "0"):
        raise _RowError(f"{column} {value} is more than an amount may be ({LARGEST_AMOUNT} at most)",
                        column=column)
    if not _AMOUNT.fullmatch(value):
        raise _RowError(f"{column} {value!r} is not an amount: write it like 1234.50 "
                        "(a dot for cents, no thousands separators, no currency sign)", column=column)
    amount = Decimal(value)
    if amount <= 0:
        raise _RowError(f"{column} must be more than zero", column=column)
    places = decimal_places(currency) if currency else None
    if places is not None and -amount.as_tuple().exponent > places:
        raise _RowError(f"{column} {value} has more places after the point than {currency} has ({places})",
                        column=column)
    return amount


def _currency(row: dict) -> str:
    value = row.get("currency", "")
    if not value:
        raise _RowError("currency is empty", column="currency")
    try:
        validate_currency_in_use(value)
    except ValidationError as error:
        raise _RowError(f"currency {value!r}: {' '.join(error.messages)}", column="currency") from None
    return value


def _text(row: dict, column: str, *, limit: int, required: bool = False) -> str:
    value = row.get(column, "")
    if required and not value:
        raise _RowError(f"{column} is empty", column=column)
    if len(value) > limit:
        raise _RowError(f"{column} is longer than {limit} characters", column=column)
    if not is_one_line(value):
        # A quoted CSV value may hold a line break; numbers and references go
        # into e-mail subjects and file names, where it would stop the mail.
        raise _RowError(f"{column} {value!r} has a line break or another control character: "
                        "write it on one line", column=column)
    return value


def _old_date_problem(report: ImportReport, column: str, day: dt.date, *, today: dt.date) -> str:
    return (f"{column} {day.isoformat()} is {(today - day).days} days ago: if that is right, give the same "
            f"date in a confirm_old_date {'column' if report.unit == 'line' else 'field'}")


def _old_date_unconfirmed(row: dict, day: dt.date | None, *, today: dt.date,
                          days: int = LONG_AGO_DAYS) -> bool:
    """Whether `day` is more than `days` ago and the row does not confirm that very day."""
    return (bool(day) and long_ago(day, today=today, days=days)
            and row.get("confirm_old_date") != day.isoformat())


def _account(row: dict, accounts: dict[str, Customer | list[Customer]]) -> Customer:
    number = row.get("account_number", "")
    found = accounts.get(number)
    if isinstance(found, list):
        raise _RowError(f"no account {number!r}; {' and '.join(c.account_number for c in found)} differ from "
                        "it only in case: give the number exactly", column="account_number")
    if found is None:
        raise _RowError(f"no account {number!r}" if number else "account_number is empty",
                        column="account_number")
    return found


def accounts_named(rows) -> dict[str, Customer | list[Customer]]:
    """The accounts the rows name, by the number as written: that number
    exactly, else in any case ("c-1001" finds C-1001), as the API finds an
    account. Two accounts differing only in case, neither written so, are
    not guessed between: the number maps to both, the row's problem."""
    numbers = {row.get("account_number", "") for _, row in rows}
    accounts: dict = _in_bulk(Customer.objects, numbers, field_name="account_number")
    if rest := {number.upper() for number in numbers - set(accounts) if number}:
        ordered = sorted(rest)
        by_upper: dict[str, list[Customer]] = defaultdict(list)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            # Only the numbers not found as written are looked for again, in any case.
            for customer in (Customer.objects.annotate(upper_number=Upper("account_number"))
                             .filter(upper_number__in=ordered[start:start + LOOKUP_CHUNK]).order_by("pk")):
                by_upper[customer.upper_number].append(customer)
        for number in numbers - set(accounts):
            found = by_upper.get(number.upper(), [])
            if found:
                accounts[number] = found[0] if len(found) == 1 else found
    return accounts


# Values per lookup: PostgreSQL takes at most 65,535 parameters a statement,
# and a file's rows may name more invoices than that.
LOOKUP_CHUNK = 10_000


def _in_bulk(queryset, values: set[str], *, field_name: str) -> dict:
    """The rows whose `field_name` is among `values`, by that value (the
    oldest row where several share it), looked up a chunk at a time."""
    ordered, found = sorted(values), {}
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        chunk = queryset.filter(**{f"{field_name}__in": ordered[start:start + LOOKUP_CHUNK]}).order_by("-pk")
        found.update((getattr(row, field_name), row) for row in chunk)
    return found


# --- invoices -----------------------------------------------------------------------------


def invoices_import(text: str | bytes, *, actor=None, dry_run: bool = False) -> ImportReport:
    report = ImportReport(INVOICES, dry_run=dry_run)
    return invoice_rows_import(read_rows(text, report), report=report, actor=actor)


def invoice_rows_import(rows: list[tuple[int, dict[str, str]]], *, report: ImportReport,
                        actor=None) -> ImportReport:
    """Check and record invoice rows, a file's (read_rows) or a request's
    (read_json_rows), all or nothing; a dry run (report.dry_run) records nothing."""
    dry_run = report.dry_run
    accounts = accounts_named(rows)
    existing = _in_bulk(Invoice.objects, {row["number"] for _, row in rows}, field_name="number")
    # One invoice per number in any capitals (invoice_number_once): w-1 is
    # not a second invoice beside W-1, in the file or recorded.
    by_key = _in_bulk(Invoice.objects.annotate(key=Upper("number")).select_related("customer"),
                      {row["number"].upper() for _, row in rows}, field_name="key")
    new: list[Invoice] = []
    changed: list[tuple[Invoice, dict]] = []
    to_cancel: list[tuple[Invoice, dt.date, str]] = []
    # Where each number comes first, whatever that row's other problems: a
    # number given twice is named on its second row even while the first has
    # a problem of its own, so that one look at the report shows both.
    first: dict[str, int] = {}
    for line, row in rows:
        first.setdefault(row.get("number", "").upper(), line)
    for line, row in rows:
        number = row.get("number", "")
        again = ([f"invoice {number} is on {report.unit} {first[number.upper()]} already: give each invoice "
                  "once"] if number and first[number.upper()] != line else [])
        if number not in existing and (twin := by_key.get(number.upper())):
            again.append(f"invoice {twin.number} is recorded already, on account "
                         f"{twin.customer.account_number}: {number} is the same number in other capitals")
        try:
            invoice = _invoice_of(row, accounts, noted=again)
            recorded = existing.get(invoice.number)
            if row.get("cancelled_on") or row.get("cancel_reason"):
                cancel = _cancellation_of(row, invoice, recorded, whole=report.whole)
                if cancel is None:
                    report.already += 1
                    report.already_cancelled.append(invoice.number)
                else:
                    to_cancel.append(cancel)
            elif recorded is not None and recorded.status == InvoiceStatus.CANCELLED:
                on = f" on {format_day(recorded.cancelled_on)}" if recorded.cancelled_on else ""
                raise _RowError(f"invoice {invoice.number} was cancelled{on}: a cancelled invoice is not "
                                "opened again; give its cancelled_on and cancel_reason (the ERP bills "
                                "anew under a new number)")
            elif invoice.number in existing:
                if changes := _changes_from_erp(invoice, existing[invoice.number], whole=report.whole):
                    changed.append((existing[invoice.number], changes))
                else:
                    report.already += 1
            elif problem := _unnameable(invoice.number):
                raise _RowError(problem)
            elif _old_date_unconfirmed(row, invoice.issue_date, today=timezone.localdate(),
                                       days=INVOICE_LONG_AGO_DAYS):
                raise _RowError(_old_date_problem(report, "issue_date", invoice.issue_date,
                                                  today=timezone.localdate()))
            else:
                new.append(invoice)
        except _RowError as error:
            report.problem(line, error)
    if not report.ok:
        report.already = 0
        return report
    report.updated = len(changed)
    report.cancelled = [invoice.number for invoice, _, _ in to_cancel]
    if dry_run:
        report.created = len(new)
        return report
    try:
        with transaction.atomic():
            # The accounts' locks first, in id order, as a payment and the
            # payments import take them: a payment on one of them meanwhile
            # queues behind the file rather than deadlocking with it.
            touched = ({i.customer.pk for i in new} | {i.customer_id for i, _ in changed}
                       | {i.customer_id for i, _, _ in to_cancel})
            list(Customer.objects.select_for_update().filter(pk__in=touched).order_by("pk").values_list("pk"))
            Invoice.objects.bulk_create(new)
            _issued_events(new, actor=actor)
            _changed_in_erp(changed, actor=actor)
            for invoice, on, reason in to_cancel:
                try:
                    invoice_cancel(invoice=invoice, actor=actor, on=on, reason=reason)
                except ValidationError as error:
                    # Paid (or cancelled, written off) since the rows were checked,
                    # before the account's lock: nothing of the file stays.
                    raise _Meanwhile(f"invoice {invoice.number}: {' '.join(error.messages)}") from None
            # New invoices and moved due dates count in the accounts' figures
            # and segments today, as of today as the nightly refresh counts them.
            behaviour_refresh(on=timezone.localdate(), customer_ids=touched)
            # An account that had stopped ordering has ordered: its alert ends now.
            order_gaps_ordered(customer_ids=touched, on=timezone.localdate())
    except IntegrityError:
        # Another import recorded one of these numbers since they were checked.
        again = "import the file again" if report.whole == "file" else "send the request again"
        report.problem(0, f"an invoice number in the {report.whole} was recorded meanwhile: {again}")
        return report
    except _Meanwhile as error:
        report.problem(0, f"{error}: it changed while the {report.whole} was checked, nothing was recorded")
        report.cancelled = []
        return report
    report.created = len(new)
    return report


class _Meanwhile(Exception):
    """A row's invoice changed between the check and the account's lock."""


def _cancellation_of(row: dict, invoice: Invoice, recorded: Invoice | None, *,
                     whole: str) -> tuple[Invoice, dt.date, str] | None:
    """The row's cancellation of the invoice recorded (the invoice, its day,
    why), None if it is cancelled already (the ERP sending it again), or
    _RowError: an invoice not recorded, one whose money or write-off forbids
    it (workspace.invoice_cancel_refusal), a row whose other values are not
    the invoice's, or a day or reason missing or wrong."""
    fields = _Fields()
    on = fields.read(_date, row, "cancelled_on")
    reason = fields.read(_text, row, "cancel_reason", limit=200)
    if not reason and "cancel_reason is longer than 200 characters" not in fields.problems:
        fields.note("cancel_reason", "cancel_reason is empty: say why the ERP cancelled the invoice (raised "
                    "in error, replaced by another)")
    if recorded is None:
        fields.note("number", f"invoice {invoice.number} is not recorded: there is nothing to cancel")
        fields.done()
    try:
        _changes_from_erp(invoice, recorded, whole=whole)
    except _RowError as error:
        fields.note("", str(error))
    if recorded.status == InvoiceStatus.CANCELLED:
        fields.done()
        return None
    if refusal := invoice_cancel_refusal(recorded, on=on):
        fields.note("number", refusal)
    if on and on > timezone.localdate():
        fields.note("cancelled_on", f"cancelled_on {on} is after today ({format_day(timezone.localdate())})")
    elif on and on < recorded.issue_date:
        fields.note("cancelled_on", f"cancelled_on {on} is before the invoice's issue_date "
                                    f"{recorded.issue_date}")
    fields.done()
    return recorded, on, reason


def _invoice_of(row: dict, accounts: dict[str, Customer], *, noted: list[str]) -> Invoice:
    """The row's invoice, or _RowError with its problems: those `noted` by
    the caller first, then those of its values."""
    fields = _Fields()
    for problem in noted:
        fields.note("number", problem)
    invoice = _invoice_read(row, accounts, fields)
    fields.done()
    return invoice


def invoice_values_check(row: dict[str, str], *, customer: Customer) -> dict[str, list[str]]:
    """What an import would refuse in an invoice's values for `customer`
    (`row`: the values as an invoices file writes them), by column, {} if
    nothing. An invoice entered by hand (the admin) takes the same rules as
    one from the ERP: it counts in the same figures and is chased the same way."""
    fields = _Fields()
    _invoice_read(row, {row.get("account_number", ""): customer}, fields)
    if problem := _unnameable(row.get("number", "")):
        fields.note("number", problem)
    return dict(fields.by_column)


def _unnameable(number: str) -> str:
    """Why a payments file could not name the invoice numbered so, or ""."""
    return (f"number {number!r} has a ';', which a payments file's invoices column cannot name"
            if ";" in number else "")


def _invoice_read(row: dict, accounts: dict[str, Customer], fields: _Fields) -> Invoice:
    """The row's invoice, with each of its values' problems noted in `fields`."""
    number = fields.read(_text, row, "number", limit=40, required=True)
    if number and (hidden := hidden_characters(number)):
        fields.note("number", f"number {number!r} holds a character no one sees ({', '.join(hidden)}): "
                    "give the number as on the invoice")
    customer = fields.read(_account, row, accounts)
    issue_date, due_date = fields.read(_date, row, "issue_date"), fields.read(_date, row, "due_date")
    if issue_date and issue_date > (today := timezone.localdate()):
        # Not yet owed, and a mistyped year would count in credit sales, DSO
        # and the forecast until someone noticed.
        fields.note("issue_date", f"issue_date {issue_date} is after today ({format_day(today)}): an invoice "
                    "comes in once it is issued")
    if issue_date and due_date and due_date < issue_date:
        fields.note("due_date", f"due_date {due_date} is before issue_date {issue_date}")
    currency = fields.read(_currency, row)
    total = fields.read(_amount, row, "total_amount", currency=currency)
    po_reference = fields.read(_text, row, "po_reference", limit=60)
    return Invoice(
        number=number, customer=customer, issue_date=issue_date, due_date=due_date, currency=currency,
        total_amount=total, open_amount=total, status=InvoiceStatus.OPEN, po_reference=po_reference,
    )


# What the ERP may change on an invoice recorded before (terms extended, a PO
# reference given late); the rest is the invoice itself: a different amount
# comes as a credit note or a new invoice, never as an edit. A PO reference
# is changed only by one given: a file without the column, a request without
# the field, or an empty value leaves the one recorded (an export that does
# not carry it must not erase what was recorded); one recorded wrongly is
# cleared on the invoice in the admin.
ERP_MAY_CHANGE = ("due_date", "po_reference")


def _changes_from_erp(invoice: Invoice, recorded: Invoice, *, whole: str) -> dict:
    """The fields of ERP_MAY_CHANGE the file (or request: `whole`) gives
    otherwise ({} if none; one it leaves empty is no change); a difference
    in any other field is the row's problem."""
    for name in ("customer_id", "issue_date", "currency", "total_amount"):
        was, now = getattr(recorded, name), getattr(invoice, name)
        if was != now:
            label = {"customer_id": "account"}.get(name, name)
            if name == "customer_id":
                was, now = recorded.customer.account_number, invoice.customer.account_number
            if name == "total_amount":
                how = ("an import changes only an invoice's due date and PO reference: a different amount "
                       "comes as a credit note or a new invoice")
            else:
                how = ("an invoice's account, issue date and currency stay as first recorded: check the row "
                       "(an import changes only an invoice's due date and PO reference)")
            raise _RowError(f"invoice {invoice.number} is recorded with {label} {was}, the {whole} says "
                            f"{now}; {how}")
    return {name: getattr(invoice, name) for name in ERP_MAY_CHANGE
            if getattr(invoice, name) and getattr(recorded, name) != getattr(invoice, name)}


def _changed_in_erp(changed: list[tuple[Invoice, dict]], *, actor) -> None:
    """Apply the ERP's changes, each on its account's timeline, before and after."""
    labels = {"due_date": "due date", "po_reference": "PO reference"}
    for invoice, changes in changed:
        before = {name: getattr(invoice, name) for name in changes}
        Invoice.objects.filter(pk=invoice.pk).update(**changes)
        said = "; ".join(f"{labels[name]} {_said(before[name])} → {_said(value)}"
                         for name, value in changes.items())
        event_record(
            customer=invoice.customer, kind=EventKind.INVOICE_CHANGED, actor=actor, subject=invoice,
            summary=f"Invoice {invoice.number} changed in the ERP: {said}",
            details={"number": invoice.number, "before": {k: str(v) for k, v in before.items()},
                     "after": {k: str(v) for k, v in changes.items()}},
        )


def _said(value) -> str:
    if isinstance(value, dt.date):
        return format_day(value)
    return value or "none"


def _issued_events(invoices: list[Invoice], *, actor) -> None:
    """Each invoice's issue on its account's timeline, at 08:00 on its issue date."""
    zone = timezone.get_current_timezone()
    events = TimelineEvent.objects.bulk_create(
        invoice_issued(invoice, at=dt.datetime.combine(invoice.issue_date, dt.time(8), tzinfo=zone),
                       actor=actor, imported=True)
        for invoice in invoices
    )
    events_link({event.pk: [invoice.pk] for event, invoice in zip(events, invoices, strict=True)})


# --- payments -----------------------------------------------------------------------------


@dataclass
class _PaymentRow:
    line: int
    customer: Customer
    received_on: dt.date
    currency: str
    amount: Decimal
    reference: str
    method: str
    invoice_ids: list[int]
    bank_reference: str
    # Received long ago and not confirmed so: refused if new.
    date_unconfirmed: bool
    # What it will pay on each invoice it names: its amount spread over them
    # as recording it will, on their open amounts as the file was read.
    plan: dict[int, Decimal]

    @property
    def alike(self) -> tuple:
        """What two payments share when they are the same bank line, short of the bank's own id:
        the reference compared as the payment form compares it (bank_id_key)."""
        return (self.customer.pk, bank_id_key(self.reference), self.amount, self.currency, self.received_on)

    @property
    def bank_key(self) -> str:
        """The bank's id as it is compared: "ab12 cd" is the entry AB12CD."""
        return bank_id_key(self.bank_reference)

    @property
    def key(self) -> tuple:
        """What tells this payment from every other: the bank's id where the file gives it."""
        return (self.customer.pk, self.bank_key) if self.bank_key else self.alike


_METHODS = {**{value: value for value in PaymentMethod.values},
            **{label.lower(): value for value, label in PaymentMethod.choices}}


def payments_import(
    text: str | bytes, *, actor=None, dry_run: bool = False, today: dt.date | None = None
) -> ImportReport:
    report = ImportReport(PAYMENTS, dry_run=dry_run)
    return payment_rows_import(read_rows(text, report), report=report, actor=actor, today=today)


def payment_rows_import(rows: list[tuple[int, dict[str, str]]], *, report: ImportReport, actor=None,
                        today: dt.date | None = None) -> ImportReport:
    """Check and record payment rows, a file's (read_rows) or a request's
    (read_json_rows), all or nothing; a dry run (report.dry_run) records nothing."""
    today = today or timezone.localdate()
    accounts = accounts_named(rows)
    # By number in any capitals, as the bank line carries what the customer
    # typed: one invoice per number in any capitals (invoice_number_once), so
    # inv-1 can only be INV-1.
    named = {n.strip().upper() for _, row in rows for n in row.get("invoices", "").split(";") if n.strip()}
    invoices = _in_bulk(Invoice.objects.annotate(key=Upper("number")), named, field_name="key")
    # The currencies each account is billed in: its own, and any an invoice
    # of it has (open or paid), read once for the whole file.
    billed: dict[int, set[str]] = defaultdict(set)
    for customer in accounts.values():
        billed[customer.pk].add(customer.currency)
    for customer_id, currency in (Invoice.objects.filter(customer__in=list(accounts.values()))
                                  .values_list("customer_id", "currency").distinct().order_by()):
        billed[customer_id].add(currency)
    parsed: list[_PaymentRow] = []
    # The file's own repeats: a bank id twice is one entry twice; a row
    # without an id is the same payment as any row alike in all it has; rows
    # told apart by their ids only are two payments.
    lines_by_id: dict[tuple, int] = {}
    alike_with_id: dict[tuple, int] = {}
    alike_without_id: dict[tuple, int] = {}
    old_dates: dict[int, str] = {}
    for line, row in rows:
        try:
            payment = _payment_of(line, row, accounts, invoices, billed, today=today)
            if payment.date_unconfirmed:
                old_dates[line] = _old_date_problem(report, "received_on", payment.received_on, today=today)
            if payment.bank_reference:
                if payment.key in lines_by_id:
                    raise _RowError(f"bank_reference {payment.bank_reference} is on {report.unit} "
                                    f"{lines_by_id[payment.key]} already")
                same = alike_without_id.get(payment.alike)
            else:
                same = alike_without_id.get(payment.alike) or alike_with_id.get(payment.alike)
            if same:
                raise _RowError(f"the same payment (reference {payment.reference}) is on {report.unit} "
                                f"{same} already; if these are two payments, give each the bank's id of its "
                                "entry in a bank_reference column")
            if payment.bank_reference:
                lines_by_id[payment.key] = line
            (alike_with_id if payment.bank_reference else alike_without_id).setdefault(payment.alike, line)
            parsed.append(payment)
        except _RowError as error:
            report.problem(line, error)
    if not report.ok or not parsed:
        return report
    # In the order the money came in, whatever order the bank listed it in:
    # the oldest open invoices take the oldest payments, so settled dates are
    # the real ones. A payment no longer fitting is still named by its line.
    parsed.sort(key=lambda p: p.received_on)
    # A bank id of the file may be recorded since it was looked for, by an
    # import holding other accounts than these (the unique index had this one
    # wait for it): looked for again, its row says where it is. Another import
    # may record a second id of the file while this one looks again, and so on;
    # each time one more id is recorded for good, so the file's ids bound the
    # attempts, and only the last may stop on the error.
    attempts = 1 + len({p.bank_key for p in parsed if p.bank_reference})
    for attempt in range(1, attempts + 1):
        report.created, report.already, report.problems = 0, 0, []
        try:
            _payments_write(parsed, report, actor=actor, dry_run=report.dry_run, old_dates=old_dates)
            break
        except IntegrityError:
            if attempt == attempts:
                raise
    if not report.ok:
        report.created = report.already = 0
    return report


def _payments_write(parsed: list[_PaymentRow], report: ImportReport, *, actor, dry_run: bool,
                    old_dates: dict[int, str]) -> None:
    """Record the file's rows not recorded before, in one transaction, each
    problem on `report`; rolled back if there is one, or on a dry run.
    `old_dates`: by line, why a row received long ago is refused if new."""
    # Per account and invoice, what rows still to be recorded will pay on it
    # (their plans): a payment naming none leaves that much of it to them,
    # whichever comes first by date, and may pay the rest.
    reserved: dict[int, Counter] = defaultdict(Counter)
    for payment in parsed:
        reserved[payment.customer.pk].update(payment.plan)
    with transaction.atomic():
        # Every account's lock at once, in one order: two imports at the same
        # time queue one behind the other instead of deadlocking, as they would
        # taking each account's lock as their rows come.
        accounts = list(Customer.objects.select_for_update().filter(pk__in={p.customer.pk for p in parsed})
                        .order_by("pk").values_list("pk", flat=True))
        # The bank lines already recorded, read once under those locks: a copy
        # of this file imported at the same time waited above, and finds these.
        # A bank id is the bank's for one entry, whatever account or day a
        # file gives it.
        fields = ("pk", "customer_id", "reference", "amount", "currency", "received_on", "bank_key")
        known = _Known(
            Payment.objects.filter(
                customer_id__in=accounts,
                received_on__range=(parsed[0].received_on, parsed[-1].received_on),
            ).order_by("pk").values_list(*fields),
            by_bank_id=_with_bank_ids({p.bank_key for p in parsed if p.bank_reference}),
            # Recorded by hand, its reference the bank's id on the statement,
            # whatever day: the file's copy of one is the same entry.
            by_hand=Payment.objects.filter(bank_key="", customer_id__in=accounts).annotate(
                reference_key=bank_id_key_in_database("reference")).filter(
                reference_key__in={p.bank_key for p in parsed if p.bank_reference},
            ).select_related("customer"),
            whole=report.whole,
        )
        paid_into: set[int] = set()
        for payment in parsed:
            pending = reserved[payment.customer.pk]
            # This row's own: its to pay now, or known already.
            pending.subtract(payment.plan)
            try:
                if known.recorded(payment):
                    report.already += 1
                    continue
                if payment.line in old_dates:
                    raise _RowError(old_dates[payment.line])
                _record(payment, actor=actor, held={pk: n for pk, n in pending.items() if n > 0})
                paid_into.add(payment.customer.pk)
                report.created += 1
            except _RowError as error:
                report.problem(payment.line, error)
            except ValidationError as error:
                # Refused while being recorded (without a savepoint, see
                # payment_record), half written: the file is rolled back
                # whole, and the rows after it cannot be recorded on top.
                report.problem(payment.line, " ".join(error.messages))
                break
        if not report.ok or dry_run:
            transaction.set_rollback(True)
        else:
            # Every account's figures and segment in one refresh after the
            # file commits, not one per row (a statement has many lines per
            # account), as of today as the nightly refresh: the account pages
            # show the money at once.
            behaviour_refresh_on_commit(customer_ids=paid_into)


def _payment_of(line: int, row: dict, accounts, invoices, billed: Mapping[int, set[str]], *,
                today: dt.date) -> _PaymentRow:
    fields = _Fields()
    customer = fields.read(_account, row, accounts)
    received_on = fields.read(_date, row, "received_on")
    if received_on and received_on > today:
        fields.problems.append(f"received_on {received_on} is after today")
    currency = fields.read(_currency, row)
    if customer and currency and currency not in billed[customer.pk]:
        # Refused rather than kept on account: no invoice of the account could
        # ever take it (money is set against invoices of its own currency),
        # and a wrong currency column is likelier than a customer paying in
        # one it is never billed in. Whoever checks the file knows which.
        fields.problems.append(
            f"account {customer.account_number} is never billed in {currency} (only in "
            f"{', '.join(sorted(billed[customer.pk]))}): a payment in {currency} could pay none of its "
            f"invoices; check the currency, or record the {currency} invoice it pays first")
    method = _METHODS.get(row.get("method", "").lower() or PaymentMethod.BANK_TRANSFER)
    if method is None:
        fields.problems.append(f"method {row['method']!r} is not one of {', '.join(PaymentMethod.values)}")
    named, unknown = [], []
    numbers = [n for n in (n.strip() for n in row.get("invoices", "").split(";")) if n]
    # Each invoice as first written, by its number in any capitals.
    first: dict[str, str] = {}
    for number in numbers:
        first.setdefault(number.upper(), number)
    keys = [number.upper() for number in numbers]
    if twice := sorted({first[key] for key in keys if keys.count(key) > 1}):
        # Its amount would be spread as if over two invoices: say so rather than guess.
        fields.problems.append(f"invoices names {', '.join(twice)} twice: name each invoice once")
    for number in first.values():
        invoice = invoices.get(number.upper())
        if invoice is None or (customer and invoice.customer_id != customer.pk):
            unknown.append(number)
        elif currency and invoice.currency != currency:
            fields.problems.append(f"invoice {number} is in {invoice.currency}, the payment in {currency}")
        elif received_on and long_ago(received_on, today=invoice.issue_date):
            # Paid ahead of its invoice is a prepayment (or C.O.D.), days or
            # weeks ahead; months ahead is a mistyped year, which recorded
            # would settle the invoice on its issue day, after the fact.
            fields.problems.append(f"received_on {received_on} is {(invoice.issue_date - received_on).days} "
                                   f"days before invoice {number} was issued "
                                   f"({format_day(invoice.issue_date)}): too early to be paid ahead; "
                                   "check the year")
        else:
            named.append(invoice)
    if unknown:
        # With the account unreadable (its own problem), an invoice is checked for existing only.
        whose = f"account {customer.account_number} has" if customer else "there is"
        problem = f"{whose} no invoice{'s' * (len(unknown) > 1)} {', '.join(unknown)}"
        if listed := next((n for n in unknown if re.search(r"[,\s]", n)), ""):
            # "W-10, W-20": several numbers with another separator, read as one.
            example = ";".join(re.split(r"[,\s]+", listed))
            problem += f" (separate invoices with ';', as in {example})"
        fields.problems.append(problem)
    amount = fields.read(_amount, row, "amount", currency=currency)
    reference = fields.read(_reference, row)
    bank_reference = fields.read(_text, row, "bank_reference", limit=80)
    if bank_reference and not bank_id_key(bank_reference):
        bank_reference = ""  # no-break spaces only (a spreadsheet's empty cell): no id
    fields.done()
    return _PaymentRow(line, customer, received_on, currency, amount, reference, method,
                       [i.pk for i in named], bank_reference,
                       _old_date_unconfirmed(row, received_on, today=today),
                       {i.pk: part for i, part in allocations_oldest_first(named, amount)})


def _with_bank_ids(keys: set[str]) -> dict[str, list[Payment]]:
    """The payments with these bank ids (bank_key), by id: the one standing
    with it, if any, and those recalled from another account that let go of
    it, the standing one first. With their reversals, which the problems say."""
    ordered, found = sorted(keys), defaultdict(list)
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        for payment in (Payment.objects.filter(bank_key__in=ordered[start:start + LOOKUP_CHUNK])
                        .select_related("customer", "reversal").order_by("bank_id_released", "pk")):
            found[payment.bank_key].append(payment)
    return found


def _reversed_said(known: Payment, payment: _PaymentRow) -> str:
    """A problem's start: the row's bank id was recorded, and reversed."""
    return (f"bank_reference {payment.bank_reference} was recorded on account "
            f"{known.customer.account_number} as {format_money(known.amount, known.currency)} received "
            f"{known.received_on} and {reversed_when_why(known.reversal)}")


class _Known:
    """The payments recorded already, to tell a file's rows imported before.

    A row with the bank's id is recorded if a payment has that id: on the same
    account, in the same amount and currency, it is that payment (a statement
    may give the value date for the booking date); otherwise the row is a
    problem to look into, never a second payment. A payment reversed keeps
    its id, and the row is a problem saying so (a bank file sent again after
    a cheque bounced records nothing twice), unless it was recalled from
    another account than the row's: the entry is then new to this one. Else it is recorded if a
    payment alike in all else was recorded without an id (by a file without
    the column, or by hand): that payment takes the row's id then, so it
    answers for that row only, in this file and every later one. A row
    without an id is recorded if any payment alike is, as it always was. The
    caller holds the accounts' locks."""

    def __init__(self, rows, *, by_bank_id: dict[str, list[Payment]], by_hand, whole: str) -> None:
        self.by_bank_id = by_bank_id
        self.by_hand = {(p.customer_id, p.reference_key): p for p in by_hand.order_by("-pk")}  # oldest kept
        self.whole = whole  # what the rows came in, as the problem names it: a file or a request
        self.alike: set[tuple] = set()
        self.without_id: dict[tuple, list[int]] = defaultdict(list)  # oldest first
        for pk, customer_id, reference, amount, currency, received_on, bank_key in rows:
            alike = (customer_id, bank_id_key(reference), amount, currency, received_on)
            self.alike.add(alike)
            if not bank_key:
                self.without_id[alike].append(pk)

    def recorded(self, payment: _PaymentRow) -> bool:
        if not payment.bank_reference:
            return payment.alike in self.alike
        with_id = self.by_bank_id.get(payment.bank_key, [])
        recalled = [p for p in with_id if p.bank_id_released and p.customer_id == payment.customer.pk]
        if recalled:
            raise _RowError(f"{_reversed_said(recalled[0], payment)}: a reversed entry is not recorded again "
                            f"on the account it was reversed on; take the row out of the {self.whole}")
        if (known := next((p for p in with_id if not p.bank_id_released), None)) is not None:
            if getattr(known, "reversal", None) is not None:
                raise _RowError(f"{_reversed_said(known, payment)}: a reversed entry is not recorded again "
                                "(only one recalled, or booked to the wrong account, may be recorded on "
                                f"another account); take the row out of the {self.whole}")
            if (known.customer_id, known.amount, known.currency) != (
                payment.customer.pk, payment.amount, payment.currency
            ):
                raise _RowError(
                    f"bank_reference {payment.bank_reference} is recorded already, as "
                    f"{format_money(known.amount, known.currency)} received {known.received_on} on account "
                    f"{known.customer.account_number}; the {self.whole} says "
                    f"{format_money(payment.amount, payment.currency)} on account "
                    f"{payment.customer.account_number}. One bank entry is one payment: correct "
                    f"the {self.whole}, or the payment recorded"
                )
            return True
        if self.without_id[payment.alike]:
            pk = self.without_id[payment.alike].pop(0)
            Payment.objects.filter(pk=pk).update(bank_reference=payment.bank_reference)
            self.by_bank_id[payment.bank_key] = [Payment.objects.select_related("customer").get(pk=pk)]
            return True
        if (known := self.by_hand.get((payment.customer.pk, payment.bank_key))) is not None:
            raise _RowError(
                f"bank_reference {payment.bank_reference} is recorded already, by hand, as "
                f"{format_money(known.amount, known.currency)} received {known.received_on} on account "
                f"{known.customer.account_number} with reference {known.reference}. One bank entry is one "
                f"payment: correct the {self.whole}, or the payment recorded"
            )
        return False


def _reference(row: dict) -> str:
    if not row.get("reference"):
        raise _RowError("reference is empty: the payment's reference (the bank's, the cheque number) is "
                        "what tells a new payment from one imported before")
    return _text(row, "reference", limit=80)


def _record(payment: _PaymentRow, *, actor, held: dict[int, Decimal]) -> None:
    # Read now, not when the file was checked: an earlier row may have paid them.
    if payment.invoice_ids:
        named = list(Invoice.objects.filter(pk__in=payment.invoice_ids))
        targets = [i for i in named if i.status == InvoiceStatus.OPEN]
        # Paid meanwhile, every one of them (a customer paying an invoice twice):
        # a problem to look into. One of several paid by an earlier row that
        # named none (whose share this row's plan left it) is not.
        if not targets:
            settled = sorted(i.number for i in named)
            raise _RowError(f"invoice{'s' if len(settled) > 1 else ''} {', '.join(settled)} "
                            f"{'are' if len(settled) > 1 else 'is'} not open any more "
                            "(paid, written off or cancelled); if the customer paid twice, empty this "
                            "row's invoices column to apply the money to its other open invoices (or "
                            "hold it on the account), or take the row out and refund it")
        allocations = allocations_oldest_first(targets, payment.amount)
        later = []
    else:
        # The invoices due on the bank line's date, the charges, then those not
        # yet due, as the payment form does; each less what rows of the file
        # naming it may pay on it: that much is theirs, whichever comes first by date.
        allocations, later = unnamed_money_split(customer=payment.customer, currency=payment.currency,
                                                 amount=payment.amount, received_on=payment.received_on,
                                                 held=held)
    payment_record(
        customer=payment.customer, amount=payment.amount, currency=payment.currency,
        received_on=payment.received_on, allocations=allocations, not_yet_due=later, held=held,
        reference=payment.reference, method=payment.method, actor=actor, known_checked=True,
        bank_reference=payment.bank_reference, refresh_behaviour=False,
    )
