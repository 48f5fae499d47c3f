"""Invoices and payments from Excel workbooks: read into the rows a CSV file
of the same data gives, so that the page, the report and what is recorded
are the same; the files a workbook import cannot read are refused up front."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import struct
import zipfile
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import Workbook, load_workbook

from ar_collections import imports
from ar_collections.forms import ImportForm
from ar_collections.imports import import_run, invoices_import
from ar_collections.models import (
    Allocation,
    ImportStatus,
    Invoice,
    Payment,
    ReceivablesImport,
)
from customers.models import TimelineEvent

pytestmark = pytest.mark.usefixtures("_frozen_today")  # 5 Aug 2025

INVOICES_CSV = """number,account_number,issue_date,due_date,currency,total_amount,po_reference
INV-100,C-ACME,2025-06-01,2025-07-01,EUR,500.00,PO-7
INV-101,C-ACME,2025-06-15,2025-07-15,EUR,1234.10,

INV-102,1001,2025-06-20,2025-07-20,USD,300.30,
INV-200,C-BETA,2025-07-01,2025-07-31,EUR,120.50,4711
"""
# The same invoices as a sheet: dates as date cells (one typed as text),
# amounts as number cells as a spreadsheet computes them (300.3 as 100.1 * 3,
# a float a hair below it), an account number typed as a number (1001.0), a
# PO reference that is a number, a blank row where the CSV has a blank line.
INVOICES_SHEET = [
    ["number", "account_number", "issue_date", "due_date", "currency", "total_amount", "po_reference"],
    ["INV-100", "C-ACME", dt.date(2025, 6, 1), dt.date(2025, 7, 1), "EUR", 500.0, "PO-7"],
    ["INV-101", "C-ACME", dt.datetime(2025, 6, 15), "2025-07-15", "EUR", 1234.1, None],
    [],
    ["INV-102", 1001.0, dt.date(2025, 6, 20), dt.date(2025, 7, 20), "USD", 100.1 * 3, None],
    ["INV-200", "C-BETA", dt.date(2025, 7, 1), dt.date(2025, 7, 31), "EUR", 120.5, 4711],
]

PAYMENTS_CSV = """account_number,received_on,currency,amount,reference,method,invoices,bank_reference
C-ACME,2025-08-01,EUR,600.00,BANK-1,bank_transfer,,20250801-1
1001,2025-08-02,USD,300.30,BANK-2,Cheque,INV-102,
C-BETA,2025-08-03,EUR,100.00,BANK-3,,INV-200,20250803-3
"""
PAYMENTS_SHEET = [
    ["account_number", "received_on", "currency", "amount", "reference", "method", "invoices",
     "bank_reference"],
    ["C-ACME", dt.date(2025, 8, 1), "EUR", 600, "BANK-1", "bank_transfer", None, "20250801-1"],
    [1001, dt.date(2025, 8, 2), "USD", 300.3, "BANK-2", "Cheque", "INV-102", None],
    ["C-BETA", "2025-08-03", "EUR", 100.0, "BANK-3", None, "INV-200", "20250803-3"],
]


@pytest.fixture
def accounts(make_customer):
    return {number: make_customer(account_number=number, name=name)
            for number, name in [("C-ACME", "Acme Tools"), ("C-BETA", "Beta Bau"), ("1001", "Numbered Ltd")]}


def workbook(rows: list[list], *, title: str = "Sheet1", before: dict[str, list[list]] | None = None,
             merge: str = "", cells: dict[str, object] | None = None) -> bytes:
    """An .xlsx whose sheet `title` holds `rows` from A1, after the sheets in `before`."""
    book = Workbook()
    book.remove(book.active)
    for name, other in (before or {}).items():
        sheet = book.create_sheet(name)
        for row in other:
            sheet.append(row)
    sheet = book.create_sheet(title)
    for row in rows:
        sheet.append(row)
    for at, value in (cells or {}).items():
        sheet[at] = value
    if merge:
        sheet.merge_cells(merge)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_sheet_xml(raw: bytes, change) -> bytes:
    """`raw` with its first sheet's XML passed through `change`: what openpyxl
    does not write (a formula with the value Excel saved with it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = change(data.decode()).encode()
            target.writestr(item, data)
    return out.getvalue()


def compound_file(*streams: str) -> bytes:
    """An OLE2 compound file holding empty streams of these names: the
    container of an .xls and of a workbook encrypted with a password."""
    end, free, fat_sector = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
              + struct.pack("<HHHHH6xIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, 0, 1, 1, 0, 0x1000, end, 0, end, 0)
              + struct.pack("<I", 0) + struct.pack("<I", free) * 108)
    fat = struct.pack("<II", fat_sector, end) + struct.pack("<I", free) * 126

    def entry(name: str, kind: int, right: int, child: int) -> bytes:
        encoded = (name + "\0").encode("utf-16-le")
        return (encoded.ljust(64, b"\0") + struct.pack("<HBBIII", len(encoded), kind, 1, free, right, child)
                + bytes(16 + 4 + 16) + struct.pack("<III", end, 0, 0))

    entries = [entry("Root Entry", 5, free, 1)]
    entries += [entry(name, 2, n + 2 if n + 1 < len(streams) else free, free)
                for n, name in enumerate(streams)]
    directory = b"".join(entries).ljust(512, b"\0")
    return header + fat + directory


def recorded() -> tuple:
    return (
        sorted(Invoice.objects.values_list("number", "customer__account_number", "issue_date", "due_date",
                                           "currency", "total_amount", "open_amount", "status",
                                           "po_reference")),
        sorted(Payment.objects.values_list("reference", "customer__account_number", "received_on", "currency",
                                           "amount", "method", "bank_reference")),
        sorted(Allocation.objects.values_list("payment__reference", "invoice__number", "amount")),
        sorted(TimelineEvent.objects.values_list("customer__account_number", "kind", "summary")),
    )


def through_the_page(client, kind: str, name: str, content: bytes, *, htmx: bool = False, **fields) -> dict:
    """Upload a file on the page, have the worker import it, and say what the
    page then shows and what was recorded; undone after, so that another
    file can be compared from the same start."""
    headers = {"HX-Request": "true"} if htmx else {}
    with transaction.atomic():
        response = client.post(reverse("collections:import"),
                               {"kind": kind, "file": SimpleUploadedFile(name, content), **fields},
                               headers=headers)
        assert response.status_code == 302, response.content.decode()
        batch = ReceivablesImport.objects.get(file_name=name)
        import_run(batch.pk)
        batch.refresh_from_db()
        listed = client.get(reverse("collections:import"), headers={"HX-Request": "true"}).content.decode()
        detail = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()
        seen = {
            "status": batch.status, "summary": batch.summary, "errors": batch.errors,
            "counts": (batch.rows, batch.created, batch.already, batch.updated),
            "listed": batch.summary in listed,
            "detail": re.sub(r"\s+", " ", detail.split('<section id="import-report"', 1)[1]
                             .split("</section>", 1)[0].replace(name, "FILE")
                             .replace(reverse("collections:import_file", args=[batch.pk]), "FILE-URL")),
            "recorded": recorded(),
        }
        transaction.set_rollback(True)
    return seen


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_workbook_of_invoices_is_imported_as_the_same_csv_file_is(client, manager, accounts, htmx):
    client.force_login(manager)

    as_csv = through_the_page(client, "invoices", "invoices.csv", INVOICES_CSV.encode(), htmx=htmx)
    as_xlsx = through_the_page(client, "invoices", "invoices.xlsx", workbook(INVOICES_SHEET), htmx=htmx)

    assert as_csv["status"] == ImportStatus.DONE
    assert as_csv["summary"] == "4 invoices recorded, 0 already there (left as they were), from 4 rows."
    assert as_xlsx == as_csv
    invoices = {row[0]: row for row in as_xlsx["recorded"][0]}
    assert invoices["INV-101"][2:6] == (dt.date(2025, 6, 15), dt.date(2025, 7, 15), "EUR", Decimal("1234.10"))
    assert str(invoices["INV-102"][5]) == "300.30" and invoices["INV-102"][1] == "1001"
    assert invoices["INV-200"][8] == "4711"


def test_a_workbook_of_payments_is_imported_as_the_same_csv_file_is(client, manager, accounts):
    client.force_login(manager)
    assert invoices_import(INVOICES_CSV, actor=manager).ok

    as_csv = through_the_page(client, "payments", "payments.csv", PAYMENTS_CSV.encode())
    as_xlsx = through_the_page(client, "payments", "payments.xlsx", workbook(PAYMENTS_SHEET))

    assert as_csv["status"] == ImportStatus.DONE and as_csv["counts"] == (3, 3, 0, 0)
    assert as_xlsx == as_csv
    cheque = ("BANK-2", "1001", dt.date(2025, 8, 2), "USD", Decimal("300.30"), "cheque", "")
    assert cheque in as_xlsx["recorded"][1]


def test_a_dry_run_of_a_workbook_reports_as_the_csv_s_and_records_nothing(client, manager, accounts):
    client.force_login(manager)
    before = recorded()

    as_csv = through_the_page(client, "invoices", "invoices.csv", INVOICES_CSV.encode(), dry_run="on")
    as_xlsx = through_the_page(client, "invoices", "invoices.xlsx", workbook(INVOICES_SHEET), dry_run="on")

    assert as_xlsx == as_csv
    assert (as_xlsx["status"], as_xlsx["recorded"]) == (ImportStatus.CHECKED, before)
    assert as_xlsx["summary"] == ("4 invoices would be recorded, 0 already there (left as they were), "
                                  "from 4 rows.")


def test_a_workbook_s_problems_are_named_by_the_sheet_s_row_numbers_as_the_csv_s_by_its_lines(
    client, manager, accounts
):
    client.force_login(manager)
    bad_csv = INVOICES_CSV.replace("C-BETA", "C-NOPE").replace("1234.10", '"12,34"')
    bad_sheet = [list(row) for row in INVOICES_SHEET]
    bad_sheet[2][5], bad_sheet[5][1] = "12,34", "C-NOPE"

    as_csv = through_the_page(client, "invoices", "invoices.csv", bad_csv.encode())
    as_xlsx = through_the_page(client, "invoices", "invoices.xlsx", workbook(bad_sheet))

    assert as_xlsx == as_csv
    assert as_xlsx["errors"] == [
        "line 3: total_amount '12,34' is not an amount: write it like 1234.50 (a dot for cents, no thousands "
        "separators, no currency sign)",
        "line 6: no account 'C-NOPE'",
    ]
    assert as_xlsx["status"] == ImportStatus.REFUSED and as_xlsx["recorded"] == recorded()


def test_the_sheet_named_like_the_kind_is_read_else_the_first(client, manager, accounts):
    client.force_login(manager)
    notes = {"Notes": [["exported from the ERP on 4 Aug 2025"]]}

    named = through_the_page(client, "invoices", "book.xlsx",
                             workbook(INVOICES_SHEET, title="INVOICES", before=notes))
    first = through_the_page(client, "invoices", "notes.xlsx", workbook(INVOICES_SHEET, title="Data",
                                                                        before=notes))

    assert named["status"] == ImportStatus.DONE and named["counts"] == (4, 4, 0, 0)
    assert first["status"] == ImportStatus.REFUSED
    assert first["errors"] == ["line 1: the first line must name the columns (number, account_number, "
                               "issue_date, due_date, currency, total_amount); this one names none of them"]


def test_a_formula_is_read_as_the_value_excel_saved_with_it_and_a_merged_cell_in_each_row_it_spans(accounts):
    rows = [list(row) for row in INVOICES_SHEET[:3]]
    rows[2][1] = None  # C-ACME once, merged over both its rows
    raw = with_sheet_xml(workbook(rows, merge="B2:B3"), lambda xml: re.sub(
        r'<c r="F3"[^>]*>.*?</c>', '<c r="F3"><f>F2*2+234.1</f><v>1234.1</v></c>', xml))

    report = invoices_import(imports.decode(raw))

    assert (report.ok, report.created) == (True, 2), report.errors
    assert sorted(Invoice.objects.values_list("number", "customer__account_number", "total_amount")) == [
        ("INV-100", "C-ACME", Decimal("500.00")), ("INV-101", "C-ACME", Decimal("1234.10"))]


def test_a_formula_without_a_saved_value_and_an_error_cell_are_problems_of_their_rows(accounts):
    raw = workbook(INVOICES_SHEET, cells={"F2": "=SUM(1,2)", "D6": "#REF!"})

    report = invoices_import(imports.decode(raw))

    assert report.errors == [
        "line 2: cell F2 holds a formula with no value saved: open the workbook in Excel and save it again, "
        "or type the value",
        "line 6: cell D6 holds the error #REF!: correct it in the workbook",
    ]
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(("rows", "problem"), [
    ([], "line 1: the sheet 'Sheet1' is empty: its first row names the columns (number, account_number, "
         "issue_date, due_date, currency, total_amount); the import reads the sheet named invoices, else the "
         "first one"),
    (INVOICES_SHEET[1:], "line 1: the first line must name the columns (number, account_number, issue_date, "
                         "due_date, currency, total_amount); this one names none of them"),
], ids=["empty", "no-header"])
def test_a_sheet_without_a_header_row_is_refused_and_records_nothing(client, manager, accounts, rows,
                                                                     problem):
    client.force_login(manager)

    seen = through_the_page(client, "invoices", "invoices.xlsx", workbook(rows))

    assert (seen["status"], seen["errors"], seen["recorded"]) == (ImportStatus.REFUSED, [problem], recorded())


def test_a_workbook_over_the_row_limit_is_refused_as_a_csv_file_is(accounts, monkeypatch):
    monkeypatch.setattr("ar_collections.imports.MAX_ROWS", 3)

    report = invoices_import(imports.decode(workbook(INVOICES_SHEET)))

    assert report.errors == ["more than 3 rows: split the file"]
    assert not Invoice.objects.exists()


def truncated() -> bytes:
    raw = workbook(INVOICES_SHEET)
    return raw[: len(raw) // 2]


def not_a_workbook() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("invoices.csv", INVOICES_CSV)
    return out.getvalue()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("invoices.xls", lambda: compound_file("Workbook", "\x05SummaryInformation"),
     "The file is an old Excel workbook (.xls): save it as “Excel Workbook (.xlsx)” or as “CSV UTF-8”."),
    ("invoices.xlsx", lambda: compound_file("\x06DataSpaces", "EncryptionInfo", "EncryptedPackage"),
     "The workbook is protected by a password, so nothing in it can be read: remove the password in Excel"),
    ("invoices.xlsx", truncated,
     "The workbook is damaged (it is not a complete .xlsx file): open it in Excel, save it again and upload "
     "that."),
    ("invoices.xlsx", not_a_workbook,
     "The workbook cannot be read (it is damaged, or not an .xlsx file): open it in Excel, save it as "
     "“Excel Workbook (.xlsx)” and upload that."),
    ("invoices.xlsx", lambda: b"number,account_number\n",
     "The workbook is damaged (it is not a complete .xlsx file)"),
], ids=["xls", "password", "truncated", "zip-not-workbook", "text-named-xlsx"])
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_workbook_that_cannot_be_read_is_refused_on_the_page_with_what_to_do(
    client, manager, accounts, name, content, message, htmx
):
    client.force_login(manager)
    before = recorded()

    response = client.post(reverse("collections:import"),
                           {"kind": "invoices", "file": SimpleUploadedFile(name, content())},
                           headers={"HX-Request": "true"} if htmx else {})

    assert response.status_code == 422
    assert message in html.unescape(response.content.decode())
    assert recorded() == before and not ReceivablesImport.objects.exists()


def test_a_workbook_too_large_is_refused_packed_as_a_csv_file_is_and_unpacked(client, manager, accounts,
                                                                               monkeypatch):
    client.force_login(manager)
    raw = workbook(INVOICES_SHEET * 3000)  # 18,000 rows, a few MB of XML packed into some hundred kB
    post = {"kind": "invoices"}
    # The limits, at sizes a test builds in a moment: 20 MB packed, as a CSV
    # file's; 100 MB unpacked, what a small file that unpacks to gigabytes meets.
    monkeypatch.setattr(ImportForm, "MAX_BYTES", len(raw) - 1)
    packed = client.post(reverse("collections:import"), {**post, "file": SimpleUploadedFile("a.xlsx", raw)})
    monkeypatch.setattr(ImportForm, "MAX_BYTES", len(raw))
    monkeypatch.setattr(imports, "WORKBOOK_UNPACKED_MAX_BYTES", 1024 * 1024)
    unpacked = client.post(reverse("collections:import"), {**post, "file": SimpleUploadedFile("a.xlsx", raw)})

    assert packed.status_code == unpacked.status_code == 422
    assert "The file is larger than 20 MB: split it." in packed.content.decode()
    assert re.search(r"The workbook unpacks to [2-9] MB, more than 1 MB: split it\.",
                     unpacked.content.decode())
    assert not ReceivablesImport.objects.exists() and not Invoice.objects.exists()


def test_the_page_offers_workbooks_and_says_how_they_are_read(client, manager):
    client.force_login(manager)

    page = client.get(reverse("collections:import")).content.decode()

    accept = re.search(r'<input type="file" name="file"[^>]*accept="([^"]+)"', page).group(1)
    assert {".csv", ".xlsx"} <= set(accept.split(",")) and ".xls" not in accept.split(",")
    assert "CSV file or Excel workbook" in page
    assert "An Excel workbook (.xlsx) is read from its sheet named like what it holds" in page


def test_the_scheduled_command_imports_a_workbook_as_the_page_does(accounts, tmp_path):
    path = tmp_path / "invoices.xlsx"
    path.write_bytes(workbook(INVOICES_SHEET))
    out = io.StringIO()

    call_command("import_receivables", "invoices", str(path), stdout=out)

    assert out.getvalue().strip() == "4 invoices recorded, 0 already there (left as they were), from 4 rows."
    assert Invoice.objects.get(number="INV-101").total_amount == Decimal("1234.10")


def test_the_admin_lists_uploads_without_reading_their_files(admin_client, manager):
    """Each file may be 20 MB: a page of 100 uploads read whole is 2 GB."""
    ReceivablesImport.objects.create(kind="invoices", file_name="invoices.csv", text=INVOICES_CSV,
                                     created_by=manager)
    ReceivablesImport.objects.create(kind="invoices", file_name="invoices.xlsx", text="",
                                     workbook=workbook(INVOICES_SHEET), created_by=manager)

    with CaptureQueriesContext(connection) as queries:
        listed = admin_client.get(reverse("admin:collections_receivablesimport_changelist"))

    assert listed.status_code == 200 and "invoices.xlsx" in listed.content.decode()
    read = [q["sql"] for q in queries.captured_queries if 'FROM "collections_receivablesimport"' in q["sql"]]
    assert read and not [sql for sql in read if '."text"' in sql or '."workbook"' in sql]


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def uploaded(client, name: str, content: bytes) -> ReceivablesImport:
    response = client.post(reverse("collections:import"),
                           {"kind": "invoices", "file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302, response.content.decode()
    return ReceivablesImport.objects.get(file_name=name)


def test_a_workbook_kept_with_its_import_is_downloaded_as_it_was_uploaded(client, manager, accounts):
    content = workbook(INVOICES_SHEET, title="Invoices")
    client.force_login(manager)
    batch = uploaded(client, "ERP März.xlsx", content)
    link = reverse("collections:import_file", args=[batch.pk])
    report = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()
    assert f'href="{link}" download>download the file as it came in</a>' in report

    response = client.get(link)

    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_TYPE
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''ERP%20M%C3%A4rz.xlsx"
    assert response.content == content
    sheet = load_workbook(io.BytesIO(response.content), read_only=True)["Invoices"]
    assert [[cell for cell in row] for row in sheet.iter_rows(max_row=2, values_only=True)] == [
        INVOICES_SHEET[0],
        ["INV-100", "C-ACME", dt.datetime(2025, 6, 1), dt.datetime(2025, 7, 1), "EUR", 500, "PO-7"],
    ]


def test_a_csv_file_kept_with_its_import_is_downloaded_as_it_was_uploaded(client, manager, accounts):
    content = ("\ufeff" + INVOICES_CSV).encode("utf-8")
    client.force_login(manager)
    batch = uploaded(client, "invoices.csv", content)

    response = client.get(reverse("collections:import_file", args=[batch.pk]))

    assert response.status_code == 200
    assert (response["Content-Type"], response["Content-Disposition"]) == (
        "text/csv; charset=utf-8", 'attachment; filename="invoices.csv"')
    assert response.content == content


@pytest.mark.parametrize("who", ["collector", "viewer"])
def test_only_who_may_see_an_import_downloads_its_file(client, request, manager, accounts, who):
    client.force_login(manager)
    batch = uploaded(client, "invoices.xlsx", workbook(INVOICES_SHEET))
    client.force_login(request.getfixturevalue(who))

    assert client.get(reverse("collections:import_file", args=[batch.pk])).status_code == 403
    client.force_login(manager)
    assert client.get(reverse("collections:import_file", args=[batch.pk + 1])).status_code == 404
    assert client.post(reverse("collections:import_file", args=[batch.pk])).status_code == 405


def test_the_admin_offers_an_import_s_workbook_to_whoever_may_view_the_import(
        client, admin_client, manager, accounts):
    batch = ReceivablesImport.objects.create(kind="invoices", file_name="invoices.xlsx", text="",
                                             workbook=workbook(INVOICES_SHEET), created_by=manager)
    link = reverse("admin:collections_receivablesimport_file", args=[batch.pk])
    page = admin_client.get(reverse("admin:collections_receivablesimport_change", args=[batch.pk]))
    assert f'href="{link}"' in page.content.decode()

    response = admin_client.get(link)

    assert (response.status_code, response["Content-Type"]) == (200, XLSX_TYPE)
    assert response.content == bytes(ReceivablesImport.objects.get(pk=batch.pk).workbook)
    staff = User.objects.create_user("stan", is_staff=True)
    client.force_login(staff)
    assert client.get(link).status_code == 403
    assert admin_client.get(reverse("admin:collections_receivablesimport_file", args=[batch.pk + 1])
                            ).status_code == 404


def _staff_with(*codenames: str) -> User:
    staff = User.objects.create_user(f"staff-{len(codenames)}", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="collections",
                                                         codename__in=codenames))
    return staff


def test_the_admin_downloads_an_import_s_file_only_for_whoever_may_import(client, manager, accounts):
    """The file is the ERP's data as sent: the page's own download asks for the
    import permission, so the admin's asks for it too, not only to view the row."""
    batch = ReceivablesImport.objects.create(kind="invoices", file_name="invoices.xlsx", text="",
                                             workbook=workbook(INVOICES_SHEET), created_by=manager)
    link = reverse("admin:collections_receivablesimport_file", args=[batch.pk])

    client.force_login(_staff_with("view_receivablesimport"))
    page = client.get(reverse("admin:collections_receivablesimport_change", args=[batch.pk]))
    assert page.status_code == 200
    assert "invoices.xlsx" in page.content.decode() and f'href="{link}"' not in page.content.decode()
    assert client.get(link).status_code == 403

    client.force_login(_staff_with("view_receivablesimport", "import_receivables"))
    response = client.get(link)
    assert (response.status_code, response["Content-Type"]) == (200, XLSX_TYPE)
    assert response.content == bytes(ReceivablesImport.objects.get(pk=batch.pk).workbook)
