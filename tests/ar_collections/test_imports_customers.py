"""Customer accounts from the ERP, as CSV on the Import page and through the
JSON API: checked by the account card's own rules, all or nothing, each
problem named by its line and column, the same file twice changing nothing."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ar_collections.api import api_token_create
from ar_collections.imports import import_run
from ar_collections.models import ImportStatus, ReceivablesImport, WorkItem, WorkKind, WorkStatus
from arcrm.roles import INTEGRATION
from customers.imports import customers_import
from customers.models import Contact, Customer, EventKind, TermsType, TimelineEvent

pytestmark = pytest.mark.usefixtures("_frozen_today")

ACCOUNTS = """account_number,name,currency,payment_terms,payment_terms_days,credit_limit,industry,collector,\
contact_name,contact_email,contact_phone,language
C-HARB,Harbour Supplies Ltd,GBP,standard,45,25000.00,wholesale,carla,Anna Berg,ap@harbour.example,\
+44 20 7946 0018,en
C-KIEL,Kieler Werft GmbH,EUR,Cash on delivery,,0,Manufacturing,otto,,,,
"""


def state() -> tuple:
    return (
        sorted(Customer.objects.values_list(
            "account_number", "name", "currency", "terms_type", "payment_terms_days", "credit_limit_amount",
            "industry", "collector__username")),
        sorted(Contact.objects.values_list("customer__account_number", "name", "email", "phone", "language",
                                           "is_primary_billing")),
        TimelineEvent.objects.count(),
    )


def upload(text: str, **fields) -> dict:
    return {"kind": "customers", "file": SimpleUploadedFile("accounts.csv", text.encode(), "text/csv"),
            **fields}


@pytest.fixture
def harbour(make_customer, make_contact, collector) -> Customer:
    """Known already: a card filled in by hand, with its billing contact."""
    customer = make_customer(account_number="C-HARB", name="Harbour Supplies", currency="GBP",
                             credit_limit_amount=Decimal("20000.00"), payment_terms_days=30,
                             industry="retail", buying_reasons=["price", "range", "delivery"],
                             notes="Ask for Anna.", collector=collector)
    make_contact(customer, name="Anna Berg", email="anna@harbour.example", phone="", is_primary_billing=True)
    return customer


# --- the file -------------------------------------------------------------------------------


def test_a_file_opens_new_accounts_with_their_billing_contact(manager, collector, other_collector):
    report = customers_import(ACCOUNTS, actor=manager)

    assert (report.ok, report.rows, report.created, report.already, report.updated) == (True, 2, 2, 0, 0), \
        report.errors
    assert report.summary() == "2 accounts recorded, 0 already there (left as they were), from 2 rows."
    assert state()[:2] == (
        [("C-HARB", "Harbour Supplies Ltd", "GBP", TermsType.STANDARD, 45, Decimal("25000.00"), "wholesale",
          "carla"),
         ("C-KIEL", "Kieler Werft GmbH", "EUR", TermsType.COD, 30, Decimal("0.00"), "manufacturing", "otto")],
        [("C-HARB", "Anna Berg", "ap@harbour.example", "+44 20 7946 0018", "en", True)],
    )
    harbour = Customer.objects.get(account_number="C-HARB")
    assert list(harbour.events.order_by("pk").values_list("kind", "actor", "summary")) == [
        (EventKind.ACCOUNT_CREATED, manager.pk, "Account opened for Harbour Supplies Ltd"),
        (EventKind.CONTACT_CHANGED, manager.pk, "Contact added: Anna Berg (Accounts payable / billing)"),
    ]


def test_the_same_file_again_changes_nothing_and_says_so(manager, collector, other_collector):
    assert customers_import(ACCOUNTS, actor=manager).ok
    before = state()

    report = customers_import(ACCOUNTS, actor=manager)

    assert (report.ok, report.created, report.already, report.updated) == (True, 0, 2, 0)
    assert report.summary() == "0 accounts recorded, 2 already there (left as they were), from 2 rows."
    assert state() == before


def test_a_known_account_found_in_any_capitals_changes_only_the_columns_the_file_gives(manager, harbour):
    report = customers_import("account_number;name;payment_terms_days;contact_phone\n"
                              "c-harb;Harbour Supplies Ltd;60;+44 20 7946 0018\n", actor=manager)

    assert (report.ok, report.created, report.already, report.updated) == (True, 0, 0, 1), report.errors
    assert report.summary() == ("0 accounts recorded, 1 updated (changed by the file), 0 already there "
                                "(left as they were), from 1 row.")
    harbour.refresh_from_db()
    # What the file does not give stays as the card had it.
    assert (harbour.account_number, harbour.name, harbour.payment_terms_days, harbour.credit_limit_amount,
            harbour.industry, harbour.buying_reasons, harbour.notes) == (
        "C-HARB", "Harbour Supplies Ltd", 60, Decimal("20000.00"), "retail", ["price", "range", "delivery"],
        "Ask for Anna.")
    assert Contact.objects.get().phone == "+44 20 7946 0018"
    assert Contact.objects.get().email == "anna@harbour.example"
    summaries = list(harbour.events.order_by("pk").values_list("actor", "summary"))
    assert summaries == [
        (manager.pk,
         "Account card changed: name Harbour Supplies → Harbour Supplies Ltd; days to pay 30 → 60"),
        (manager.pk, "Contact Anna Berg changed: phone"),
    ]


def test_a_new_collector_takes_the_account_and_its_open_work_as_on_the_card(manager, harbour, collector,
                                                                          other_collector):
    item = WorkItem.objects.create(key="call-1", kind=WorkKind.CALL, customer=harbour, assignee=collector,
                                   title="Call Anna", due_on=dt.date(2025, 8, 6))

    report = customers_import("account_number,name,collector\nC-HARB,Harbour Supplies,otto\n", actor=manager)

    assert (report.ok, report.updated) == (True, 1), report.errors
    harbour.refresh_from_db()
    item.refresh_from_db()
    assert (harbour.collector, item.assignee, item.status) == (
        other_collector, other_collector, WorkStatus.OPEN)
    assert list(harbour.events.order_by("pk").values_list("summary", flat=True)) == [
        "Account card changed: collector carla → otto",
        "Worklist: 1 open item(s) handed over with the account",
    ]


def test_a_new_currency_needs_the_credit_limit_in_it_as_on_the_card(manager, harbour, make_invoice):
    make_invoice(harbour, issued=dt.date(2025, 7, 1), amount=Decimal("500.00"), currency="GBP")
    before = state()

    refused = customers_import("account_number,name,currency\nC-HARB,Harbour Supplies,EUR\n", actor=manager)

    assert refused.errors == ["line 2: credit_limit: The credit limit is GBP 20,000.00: give it in EUR, the "
                              "account's new currency."]
    assert state() == before

    taken = customers_import("account_number,name,currency,credit_limit\nC-HARB,Harbour Supplies,EUR,23000\n",
                             actor=manager)

    assert (taken.ok, taken.updated) == (True, 1), taken.errors
    harbour.refresh_from_db()
    assert (harbour.currency, harbour.credit_limit_amount) == ("EUR", Decimal("23000.00"))
    assert harbour.events.get(kind=EventKind.ACCOUNT_CHANGED).summary == (
        "Account card changed: currency GBP → EUR; credit limit GBP 20,000.00 → EUR 23,000.00")


BAD = """account_number,name,currency,payment_terms,payment_terms_days,credit_limit,collector,contact_email
C-NEW1,New One,XYZ,net30,400,"1,000.00",carla,
C-NEW2,New Two,EUR,standard,30,-5,nobody,
C-NEW3,New Three,EUR,,,,victor,not-an-address
C-NEW4,,EUR,,,,,
c-new1,New One Again,EUR,,,,carla,
C-HARB,Harbour Supplies,,,,,,billing@harbour.example
"""


def test_bad_rows_are_refused_naming_line_and_column_and_nothing_is_written(manager, harbour, collector,
                                                                              viewer):
    before = state()

    report = customers_import(BAD, actor=manager)

    assert report.errors == [
        "line 2: payment_terms 'net30' is not one of standard, cod, prepayment; credit_limit '1,000.00' is "
        "not an amount: write it like 25000.00 (a dot for cents, no thousands separators, no currency sign; "
        "0 for no credit); currency 'XYZ': XYZ is not an ISO 4217 currency in circulation (EUR, USD, GBP, "
        "...); payment_terms_days '400': Ensure this value is less than or equal to 365.",
        "line 3: credit_limit '-5' is not an amount: write it like 25000.00 (a dot for cents, no thousands "
        "separators, no currency sign; 0 for no credit); collector 'nobody' is no user's username",
        "line 4: collector 'victor' is not an active collector or manager, and could not work the account; "
        "contact_name is empty: a new account's billing contact needs a name, as reminders and letters are "
        "addressed to it (the row gives contact_email); "
        "contact_email 'not-an-address': Enter a valid email address.",
        "line 5: name is empty; collector is empty: a new account needs its collector (the username of an "
        "active collector or manager)",
        "line 6: account_number c-new1 is on line 2 already: give each account once",
    ]
    assert report.summary() == "Nothing imported: 5 problems in 6 rows."
    assert state() == before


def test_a_number_two_accounts_share_in_other_capitals_is_refused_and_each_given_exactly_is_taken(
        manager, make_customer):
    make_customer(account_number="C-a1", name="Lower")
    make_customer(account_number="C-A1", name="Upper")

    refused = customers_import("account_number,name\nc-a1,Which One\n", actor=manager)
    taken = customers_import("account_number,name\nC-a1,Lower Ltd\nC-A1,Upper Ltd\n", actor=manager)

    assert refused.errors == [
        "line 2: account_number 'c-a1': C-a1 and C-A1 differ from it only in case: give the number exactly"]
    assert (taken.ok, taken.updated) == (True, 2), taken.errors
    assert sorted(Customer.objects.values_list("account_number", "name")) == [
        ("C-A1", "Upper Ltd"), ("C-a1", "Lower Ltd")]


def test_a_billing_contact_is_checked_as_the_contact_form_checks_it(manager, harbour, make_customer):
    make_customer(account_number="C-BARE", name="Bare Account")

    report = customers_import("account_number,name,contact_name,contact_email\n"
                              "C-HARB,Harbour Supplies,,anna(at)harbour\n"
                              "C-BARE,Bare Account,Ben Hill,\n", actor=manager)

    assert report.errors == [
        "line 2: contact_email 'anna(at)harbour': Enter a valid email address.",
        "line 3: contact_email: An e-mail address is needed to e-mail invoices; "
        "contact_email: An e-mail address is needed for e-mail reminders.",
    ]


def test_a_billing_contact_without_a_name_is_refused_saying_why_new_account_or_known(
        manager, harbour, collector, make_customer):
    """A new account's billing contact, or the first of a known account, is
    addressed by name: the row is told so, with the contact's other problems;
    a known account's contact keeps the name recorded."""
    make_customer(account_number="C-BARE", name="Bare Account")
    before = state()

    report = customers_import("account_number,name,collector,contact_name,contact_email,contact_phone\n"
                              "C-NEW1,New One,carla,,ap@new.example,+49 30 1234567\n"
                              "C-NEW2,New Two,carla,,ap(at)new,\n"
                              "C-BARE,Bare Account,,,ap@bare.example,\n"
                              "C-HARB,Harbour Supplies,,,ap@harbour.example,\n", actor=manager)

    assert report.errors == [
        "line 2: contact_name is empty: a new account's billing contact needs a name, as reminders and "
        "letters are addressed to it (the row gives contact_email, contact_phone)",
        "line 3: contact_name is empty: a new account's billing contact needs a name, as reminders and "
        "letters are addressed to it (the row gives contact_email); "
        "contact_email 'ap(at)new': Enter a valid email address.",
        "line 4: contact_name is empty: the account has no billing contact yet, and a new one needs a name, "
        "as reminders and letters are addressed to it (the row gives contact_email)",
    ]
    assert state() == before
    taken = customers_import("account_number,name,contact_email\n"
                             "C-HARB,Harbour Supplies,ap@harbour.example\n", actor=manager)
    assert taken.ok and taken.updated == 1, taken.errors
    assert Contact.objects.get(customer=harbour, is_primary_billing=True).email == "ap@harbour.example"


def test_a_dry_run_writes_nothing_and_says_what_it_would(manager, harbour, other_collector):
    before = state()

    report = customers_import(ACCOUNTS.replace(",carla,", ",otto,"), actor=manager, dry_run=True)

    assert report.summary() == ("1 account would be recorded, 1 would be updated (changed by the file), "
                                "0 already there (left as they were), from 2 rows.")
    assert state() == before


# --- the Import page ------------------------------------------------------------------------


def test_a_manager_uploads_accounts_on_the_import_page(client, manager, collector, other_collector):
    client.force_login(manager)

    response = client.post(reverse("collections:import"), upload(ACCOUNTS))

    assert response.status_code == 302 and response.url == reverse("collections:import")
    batch = ReceivablesImport.objects.get()
    assert (batch.kind, batch.status) == ("customers", ImportStatus.QUEUED)
    assert not Customer.objects.exists()  # the worker's job
    assert import_run(batch.pk) == ImportStatus.DONE
    assert Customer.objects.count() == 2
    page = client.get(reverse("collections:import")).content.decode()
    assert "Customer accounts" in page
    assert "2 accounts recorded, 0 already there (left as they were), from 2 rows." in page


def test_with_htmx_the_upload_list_comes_alone_with_what_the_accounts_import_did(client, manager, collector,
                                                                                 other_collector):
    client.force_login(manager)
    client.post(reverse("collections:import"), upload(ACCOUNTS), headers={"HX-Request": "true"})
    import_run(ReceivablesImport.objects.get().pk)

    listed = client.get(reverse("collections:import"), headers={"HX-Request": "true"}).content.decode()

    assert listed.lstrip().startswith('<section id="imports"')
    assert "Customer accounts" in listed and "2 accounts recorded" in listed


def test_a_check_only_upload_of_accounts_records_nothing(client, manager, collector, other_collector):
    client.force_login(manager)
    client.post(reverse("collections:import"), upload(ACCOUNTS, dry_run="on"))

    assert import_run(ReceivablesImport.objects.get().pk) == ImportStatus.CHECKED

    batch = ReceivablesImport.objects.get()
    assert batch.summary == "2 accounts would be recorded, 0 already there (left as they were), from 2 rows."
    assert not Customer.objects.exists()


def test_a_refused_accounts_file_lists_its_problems_by_line_on_its_page(client, manager, harbour, viewer,
                                                                       collector):
    client.force_login(manager)
    client.post(reverse("collections:import"), upload(BAD))
    batch = ReceivablesImport.objects.get()

    assert import_run(batch.pk) == ImportStatus.REFUSED

    page = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()
    assert "Nothing imported: 5 problems in 6 rows." in page
    assert "line 5: name is empty" in page
    assert Customer.objects.count() == 1


@pytest.mark.parametrize("who", ["collector", "viewer"])
def test_only_a_manager_uploads_accounts(client, request, manager, who):
    client.force_login(request.getfixturevalue(who))

    assert client.post(reverse("collections:import"), upload(ACCOUNTS)).status_code == 403
    assert client.get(reverse("collections:import_example", args=["customers"])).status_code == 403
    assert not ReceivablesImport.objects.exists()


def test_the_example_file_opens_an_account_as_it_is(client, manager, make_customer):
    make_customer(account_number="C00042", currency="CHF")
    client.force_login(manager)

    response = client.get(reverse("collections:import_example", args=["customers"]))

    assert response["Content-Disposition"] == 'attachment; filename="arcrm-customers-example.csv"'
    text = response.content.decode()
    assert text.startswith("account_number,name,currency,payment_terms,payment_terms_days,credit_limit,")
    report = customers_import(text, actor=manager)
    assert (report.ok, report.created) == (True, 1), report.errors
    opened = Customer.objects.get(account_number="C90001")
    assert (opened.currency, opened.collector, opened.contacts.get().email) == (
        "CHF", manager, "ap@harbour-supplies.example")



def test_the_example_file_downloaded_by_an_administrator_names_someone_who_may_own_the_account(
        client, manager, collector):
    # A superuser in no group may import but owns no accounts: the example
    # names the first collector or manager by name instead, so it imports as it is.
    admin = User.objects.create_superuser("root-admin", "root@example.com", "pw")
    client.force_login(admin)

    text = client.get(reverse("collections:import_example", args=["customers"])).content.decode()

    report = customers_import(text, actor=admin)
    assert (report.ok, report.created) == (True, 1), report.errors
    first = sorted([manager, collector], key=lambda u: (u.first_name, u.last_name, u.username))[0]
    assert Customer.objects.get(account_number="C90001").collector == first

def test_the_import_page_describes_the_accounts_file(client, manager):
    client.force_login(manager)

    page = client.get(reverse("collections:import")).content.decode()

    columns = page.split('id="columns-customers"', 1)[1].split("</dd>", 1)[0]
    assert "<code>account_number, name</code>" in columns
    assert "an empty value leaves what is recorded" in columns
    assert "a new billing contact needs one: reminders and letters are addressed to it" in columns
    assert reverse("collections:import_example", args=["customers"]) in page


def test_the_command_imports_accounts_from_a_file(tmp_path, collector, other_collector):
    path = tmp_path / "accounts.csv"
    path.write_text(ACCOUNTS, encoding="utf-8")
    out = StringIO()

    call_command("import_receivables", "customers", str(path), stdout=out)

    assert out.getvalue().strip() == "2 accounts recorded, 0 already there (left as they were), from 2 rows."
    assert Customer.objects.get(account_number="C-KIEL").events.get().actor is None


# --- the API --------------------------------------------------------------------------------

ROWS = [
    {"account_number": "C-HARB", "name": "Harbour Supplies Ltd", "currency": "GBP", "collector": "carla",
     "credit_limit": "25000.00", "contact_name": "Anna Berg", "contact_email": "ap@harbour.example"},
]


def api_client(user) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_token_create(user=user, name='ERP')[1]}"})


def post(client: Client, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    response = client.post(reverse("api:customers"), body, content_type="application/json")
    return response.status_code, response.json()


def test_the_api_opens_accounts_and_a_second_request_changes_nothing(manager, collector):
    erp = api_client(manager)

    assert post(erp, {"rows": ROWS}) == (200, {
        "dry_run": False, "rows": 1, "recorded": 1, "already_there": 0, "updated": 0,
        "summary": "1 account recorded, 0 already there (left as they were), from 1 row."})
    before = state()
    status, answer = post(erp, {"rows": ROWS})
    assert (status, answer["recorded"], answer["already_there"]) == (200, 0, 1)
    assert state() == before
    assert ReceivablesImport.objects.filter(kind="customers").count() == 2
    # The account's standing is still read at its own address.
    standing = erp.get(reverse("api:customer_standing", args=["C-HARB"]))
    assert standing.status_code == 200 and standing.json()["account_number"] == "C-HARB"


def test_the_integration_user_sends_accounts(collector):
    erp_user = User.objects.create_user("erp")
    erp_user.groups.add(Group.objects.get(name=INTEGRATION))

    status, answer = post(api_client(erp_user), {"rows": ROWS, "dry_run": True})

    assert (status, answer["recorded"]) == (200, 1) and not Customer.objects.exists()


def test_the_api_refuses_bad_rows_naming_each_and_records_nothing(manager, collector):
    rows = [ROWS[0], {"account_number": "C-KIEL", "name": "Kiel", "payment_terms_days": 30, "collector": ""}]

    status, answer = post(api_client(manager), {"rows": rows})

    assert status == 422
    assert answer["problems"] == [{"row": 2, "messages": ["payment_terms_days must be a string"]}]
    assert not Customer.objects.exists() and not TimelineEvent.objects.exists()

    status, answer = post(api_client(manager), {"rows": [{**rows[1], "payment_terms_days": "30"}]})
    assert answer["problems"] == [{"row": 1, "messages": [
        "collector is empty: a new account needs its collector (the username of an active collector or "
        "manager)"]}]


def test_the_api_answers_400_to_what_is_not_json_and_401_403_to_who_may_not(manager, collector, viewer):
    assert post(api_client(manager), "{rows: ")[0] == 400
    assert post(Client(), {"rows": ROWS})[0] == 401
    assert post(api_client(collector), {"rows": ROWS})[0] == 403
    assert post(api_client(viewer), {"rows": ROWS})[0] == 403
    assert not Customer.objects.exists()


# --- a whole customer master --------------------------------------------------------------------


def master(rows: int, *, start: int = 0) -> str:
    """An ERP's customer master of `rows` new accounts, half with a billing contact."""
    lines = [ACCOUNTS.splitlines()[0]]
    for n in range(start, start + rows):
        contact = f"Anna {n},ap{n}@example.com,,en" if n % 2 else ",,,"
        lines.append(f"C-{n:05d},Account {n} Ltd,EUR,standard,30,1000.00,retail,carla,{contact}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_file_reads_and_writes_in_as_many_queries_for_5_accounts_as_for_50(
        manager, collector, dry_run):
    counts = []
    for start, rows in ((0, 5), (100, 50)):
        ContentType.objects.clear_cache()  # read by the first file only, else
        with CaptureQueriesContext(connection) as new:
            assert customers_import(master(rows, start=start), actor=manager, dry_run=dry_run).ok
        if dry_run:
            customers_import(master(rows, start=start), actor=manager)
        with CaptureQueriesContext(connection) as again:
            report = customers_import(master(rows, start=start), actor=manager, dry_run=dry_run)
        assert (report.ok, report.already) == (True, rows)
        counts.append((len(new), len(again)))

    assert counts[0] == counts[1], counts
    # Each account opened as one by one: its timeline begins with who opened it, then its contact.
    assert Customer.objects.count() == 55
    assert list(Customer.objects.get(account_number="C-00101").events.order_by("pk").values_list(
        "kind", "actor", "summary", "details")) == [
        (EventKind.ACCOUNT_CREATED, manager.pk, "Account opened for Account 101 Ltd",
         {"account_number": "C-00101", "referred_by": None}),
        (EventKind.CONTACT_CHANGED, manager.pk, "Contact added: Anna 101 (Accounts payable / billing)",
         {"contact": Contact.objects.get(name="Anna 101").pk, "before": {}, "after": {
             "name": "Anna 101", "job_title": "", "role": "ap", "email": "ap101@example.com", "phone": "",
             "postal_address": "", "language": "en", "invoice_delivery": "pdf_email",
             "reminder_channel": "email", "best_time_to_call": "", "is_primary_billing": True, "notes": "",
             "email_refused": ""}}),
    ]
    assert list(Customer.objects.get(account_number="C-00100").events.values_list("kind", flat=True)) == [
        EventKind.ACCOUNT_CREATED]
    assert Contact.objects.get(name="Anna 101").customer.account_number == "C-00101"


def test_a_row_as_recorded_is_still_refused_for_a_collector_who_left(manager, harbour, collector):
    collector.is_active = False
    collector.save()
    before = state()

    report = customers_import("account_number,name,collector\nC-HARB,Harbour Supplies,carla\n", actor=manager)

    assert report.errors == ["line 2: collector 'carla' is not an active collector or manager, and could not "
                             "work the account"]
    assert state() == before


def test_a_file_putting_a_known_account_on_cash_on_delivery_says_on_its_timeline_that_the_erp_did(
        manager, harbour):
    # By hand the card asks why the terms change; a file says it was the ERP's.
    report = customers_import("account_number,name,payment_terms\nC-HARB,Harbour Supplies,cod\n",
                              actor=manager)

    assert (report.ok, report.updated) == (True, 1), report.errors
    harbour.refresh_from_db()
    assert harbour.terms_type == TermsType.COD
    event = harbour.events.filter(kind=EventKind.ACCOUNT_CHANGED).get()
    assert event.summary.endswith("because “Sent by the ERP in an accounts file”"), event.summary
    assert event.details["reason"] == "Sent by the ERP in an accounts file"
