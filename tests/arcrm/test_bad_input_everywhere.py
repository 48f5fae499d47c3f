"""Every URL that takes a POST, sent bad input by the role it is for, with the
form's token: the form comes back with a message, or a 4xx, and the database
is as it was (DESIGN invariant 6) — never a 500, never half a change.

The URLs are the access matrix's (tests/arcrm/test_access_matrix.py), with
its one account's world; the fields are every field of the project's forms,
so a form added later is swept too. A value bad for any field (missing,
empty, blank, too long, NUL, only hidden characters) goes into every field at
once; a value bad for one kind of field (an amount, a date, an id) goes into
the fields of that kind, the others holding something plausible, so it is
that value the form refuses.
"""

from __future__ import annotations

import datetime as dt
import html
import inspect
import re
import uuid
from decimal import Decimal

import pytest
from django import forms
from django.db import connection, transaction
from django.test import Client

from ar_collections import forms as collections_forms
from ar_collections import wording_views, workspace_forms
from ar_collections.models import DisputeReason, ExceptionKind, Invoice, InvoiceStatus
from ar_collections.services import SENT_ALREADY
from customers import forms as customers_forms
from customers.models import Contact, ContactRole
from tests.arcrm.test_access_matrix import (
    ACCOUNT,
    MANAGER_ONLY,
    TABLE,
    TODAY,
    WORK,
    World,
    Worlds,
    _writes,
    time_machine_at,
    worlds_written,
)

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="the writes are counted by PostgreSQL's statistics views"),
    pytest.mark.django_db,
]

# Views whose POST is a button with no input: a bad value has nowhere to go.
# Sent all the same (they must not fail on fields they do not read), but what
# they do is what the button does.
BUTTONS = {
    "collections/customers/<int:pk>/resume/",
    "collections/worklist/<int:item_id>/<str:change>/",
    "collections/api-tokens/<int:pk>/revoke/",
    "collections/cover/<int:pk>/end/",
    "customers/<int:pk>/contacts/<int:contact_id>/delete/",
    "customers/<int:pk>/absences/<int:absence_id>/delete/",
}

# The URLs that take a POST from the people who work accounts (the API has its
# own sweep in tests/ar_collections/test_api.py; signing in is Django's).
POSTED = {route: row for route, row in TABLE.items() if row.access in (WORK, ACCOUNT, MANAGER_ONLY)}


def _form_classes() -> list[type[forms.BaseForm]]:
    found = []
    for module in (workspace_forms, collections_forms, customers_forms, wording_views):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, forms.BaseForm) and value.__module__ == module.__name__:
                found.append(value)
    return found


def _fields() -> dict[str, forms.Field]:
    """Every form field by name (the first form's, where two forms share a name)."""
    fields: dict[str, forms.Field] = {}
    for form in _form_classes():
        for name, field in form.base_fields.items():
            fields.setdefault(name, field)
    return fields


FIELDS = _fields()
# Read straight from the POST by a view (wording_views.wording_put_back).
EXTRA = ["based_on", "list"]
NAMES = sorted({*FIELDS, *EXTRA})

HIDDEN = "\u200b\u200b\u2060"
BAD_EVERYWHERE = {
    "missing": None,
    "empty": "",
    "blank": "   \t ",
    "10,000 characters": "x" * 10_000,
    "NUL": "a\x00b",
    "zero-width only": HIDDEN,
}

AMOUNT = (forms.DecimalField,)
DATE = (forms.DateField,)
NUMBER = (forms.IntegerField,)
ID = (forms.ModelChoiceField,)  # ModelMultipleChoiceField is one too


def _kind(field: forms.Field | None) -> str:
    if isinstance(field, AMOUNT):
        return "amount"
    if isinstance(field, DATE):
        return "date"
    if isinstance(field, ID):
        return "id"
    if isinstance(field, NUMBER):
        return "number"
    return "other"


BAD_OF_A_KIND = {
    "amount abc": ("amount", "abc"),
    "amount negative": ("amount", "-100.00"),
    "amount 1e30": ("amount", "1e30"),
    "amount of 13 digits": ("amount", "9999999999999"),
    "amount in full-width digits": ("amount", "１００"),
    "amount NaN": ("amount", "NaN"),
    "date abc": ("date", "abc"),
    "date 0001-01-01": ("date", "0001-01-01"),
    "date 9999-12-31": ("date", "9999-12-31"),
    "date 2026-02-30": ("date", "2026-02-30"),
    "id abc": ("id", "abc"),
    "id that does not exist": ("id", "987654321"),
    "id beyond any column": ("id", "99999999999999999999999"),
    "id negative": ("id", "-1"),
    "number abc": ("number", "abc"),
    "number huge": ("number", "99999999999999999999999"),
    "number negative": ("number", "-5"),
    "number in full-width digits": ("number", "３０"),
    "number in Arabic-Indic digits": ("number", "٣٠"),
}


def _plausible(name: str, field: forms.Field | None, world: World) -> str | list[str]:
    """A value the field would take, so that the bad one beside it is what is refused."""
    kind = _kind(field)
    if kind == "amount":
        return "10.00"
    if kind == "date":
        return TODAY.isoformat()
    if kind == "number":
        return "1"
    if kind == "id":
        return str(world.invoice.pk if "invoice" in name else world.contact.pk)
    if isinstance(field, forms.UUIDField):
        return str(uuid.uuid4())
    if isinstance(field, forms.ChoiceField) and field.choices:
        first = next((value for value, _ in field.choices if value not in ("", None)), "")
        return str(first)
    if isinstance(field, forms.BooleanField):
        return "on"
    return "Checked with the customer"


def _data(value: str | None, *, kind: str | None = None, world: World | None = None) -> dict:
    if value is None:
        return {}
    if kind is None:
        return {name: value for name in NAMES}
    return {name: value if _kind(FIELDS.get(name)) == kind else _plausible(name, FIELDS.get(name), world)
            for name in NAMES}


def _contents() -> dict[str, str]:
    """A digest of each table's rows, sessions aside (signing in writes one).
    PostgreSQL's count of rows written (_writes) counts those a savepoint took
    back too, as a service does that refuses half way: it says where to look,
    this says whether anything stayed."""
    tables = [t for t in connection.introspection.table_names() if t != "django_session"]
    digest = "(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} t)"
    digests = ", ".join(digest.format(connection.ops.quote_name(t)) for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ARRAY[{digests}]")
        return dict(zip(tables, cursor.fetchone()[0], strict=True))


def _post(client: Client, url: str, data: dict, *, htmx: bool, baseline: dict[str, str]) -> tuple[int, list]:
    """(status, tables changed): the request is rolled back, the world kept for the next."""
    headers = {"HX-Request": "true"} if htmx else {}
    with transaction.atomic():
        before = _writes()
        response = client.post(url, data, headers=headers)
        changed = []
        if _writes() != before:
            changed = sorted(t for t, digest in _contents().items() if baseline.get(t) != digest)
        transaction.set_rollback(True)
    return response.status_code, changed


@pytest.fixture(scope="module")
def worlds(django_db_setup, django_db_blocker, tmp_path_factory):
    """The access matrix's two accounts, Carla's and Otto's, each with one of
    every row a URL names."""
    with worlds_written(django_db_blocker, tmp_path_factory) as written:
        yield written


@pytest.fixture
def world(worlds: Worlds) -> World:
    return worlds.carlas


@pytest.fixture
def manager_client(world) -> Client:
    # Checked as the browser sends it: a valid CSRF token with each POST.
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(world.users["manager"])
    return client


def _csrf_posting(client: Client, world: World):
    """The client's POST with the CSRF cookie and field a page gives the browser."""
    client.get(TABLE["customers/"].url(world))
    token = client.cookies["csrftoken"].value
    original = client.post

    def post(url, data, **kwargs):
        return original(url, {**data, "csrfmiddlewaretoken": token}, **kwargs)

    client.post = post
    return client


# Routes that answered a POST with 405 (pages only read): not asked again.
GET_ONLY: set[str] = set()
# The field names each route's form renders when asked with GET (None: it
# has no GET, being only a POST's target).
RENDERED: dict[str, set[str] | None] = {}
_NAME = re.compile(r'<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"')


# The routes that are only a POST's target, by their form.
POSTED_ONLY = {
    "collections/runs/start/": collections_forms.StartRunForm,
    "collections/customers/<int:pk>/cause/": collections_forms.CauseForm,
    "collections/customers/<int:pk>/segment/": collections_forms.SegmentOverrideForm,
    "collections/letters/printed/": collections_forms.MarkPrintedForm,
    "collections/approvals/<int:pk>/": collections_forms.ApprovalForm,
}


def _rendered(client: Client, route: str, url: str) -> set[str] | None:
    if route in POSTED_ONLY:
        return set(POSTED_ONLY[route].base_fields)
    if route not in RENDERED:
        response = client.get(url, headers={"HX-Request": "true"})
        page = response.status_code == 200 and response.get("Content-Type", "").startswith("text/html")
        RENDERED[route] = set(_NAME.findall(response.content.decode())) if page else None
    return RENDERED[route]


def _sweep(world: World, client: Client, data_for, *, kind: str | None = None) -> list[str]:
    failures = []
    with time_machine_at(TODAY):
        _csrf_posting(client, world)
        baseline = _contents()
        for route, row in POSTED.items():
            if route in GET_ONLY:
                continue
            url = row.url(world)
            if kind is not None:
                names = _rendered(client, route, url)
                if names is not None and not any(_kind(FIELDS.get(name)) == kind for name in names):
                    continue  # no field of the kind: the plausible values would only be taken
            data = data_for(route)
            for htmx in (False, True):
                status, changed = _post(client, url, data, htmx=htmx, baseline=baseline)
                if status == 405:
                    GET_ONLY.add(route)
                    break
                if status >= 500 or (changed and route not in BUTTONS) or status in (401, 403):
                    failures.append(f"POST{' htmx' if htmx else ''} {route}: {status}, changed {changed}")
    return failures


@pytest.mark.parametrize("case", list(BAD_EVERYWHERE))
def test_a_value_no_field_takes_is_refused_everywhere_and_changes_nothing(world, manager_client, case):
    failures = _sweep(world, manager_client, lambda route: _data(BAD_EVERYWHERE[case]))

    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", list(BAD_OF_A_KIND))
def test_a_value_of_the_wrong_kind_is_refused_and_changes_nothing(world, manager_client, case):
    kind, value = BAD_OF_A_KIND[case]

    failures = _sweep(world, manager_client, lambda route: _data(value, kind=kind, world=world), kind=kind)

    assert not failures, "\n".join(failures)


def test_an_id_of_another_accounts_row_is_refused_and_changes_nothing(worlds, manager_client):
    """Carla's account's forms sent the ids of Otto's account's invoice and contact."""
    carlas, ottos = worlds.carlas, worlds.ottos

    def data(route: str) -> dict:
        values = _data("", kind="id", world=carlas)
        for name in values:
            if _kind(FIELDS.get(name)) == "id":
                values[name] = str(ottos.invoice.pk if "invoice" in name else ottos.contact.pk)
        return values

    failures = _sweep(carlas, manager_client, data, kind="id")

    assert not failures, "\n".join(failures)


# A form sent twice (a double click, a page re-posted) or after what it acts on
# was settled in another tab: the first does it, the second changes nothing.
SECOND_CLICKS = {
    "collections/customers/<int:pk>/promises/<int:promise_id>/withdraw/": {"reason": "Paid meanwhile"},
    "collections/customers/<int:pk>/plans/<int:plan_id>/withdraw/": {"reason": "Paid meanwhile"},
    "collections/customers/<int:pk>/disputes/<int:dispute_id>/resolve/": {
        "outcome": "rejected", "note": "The price was agreed"},
    "collections/plans/<int:plan_id>/decide/": {"decision": "reject", "note": "Too long"},
    "collections/exceptions/<int:request_id>/decide/": {"decision": "reject", "note": "Not now"},
    "collections/letters/<int:pk>/withdraw/": {"reason": "Sent by mistake"},
    "collections/letters/paper/<int:pk>/withdraw/": {"reason": "Sent by mistake"},
    "collections/worklist/<int:item_id>/<str:change>/": {},
    "collections/cover/<int:pk>/end/": {},
    "collections/api-tokens/<int:pk>/revoke/": {},
    "customers/<int:pk>/contacts/<int:contact_id>/delete/": {},
    "customers/<int:pk>/absences/<int:absence_id>/delete/": {},
}


@pytest.mark.parametrize("route", list(SECOND_CLICKS))
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_same_form_sent_twice_does_its_work_once(world, manager_client, route, htmx):
    url = TABLE[route].url(world)
    headers = {"HX-Request": "true"} if htmx else {}
    with time_machine_at(TODAY), transaction.atomic():
        _csrf_posting(manager_client, world)
        first = manager_client.post(url, SECOND_CLICKS[route], headers=headers).status_code
        before = _writes()
        second = manager_client.post(url, SECOND_CLICKS[route], headers=headers).status_code
        writes = _writes() - before
        transaction.set_rollback(True)

    assert first < 400, "the first click was refused: the test sends the wrong form"
    assert (second < 500, writes) == (True, 0)


def _fresh_invoice(world: World) -> Invoice:
    """An open invoice nothing holds yet: the world's own is disputed, promised and planned."""
    return Invoice.objects.create(
        number="INV-FRESH", customer=world.customer, issue_date=dt.date(2025, 8, 1),
        due_date=dt.date(2025, 9, 1), currency=world.customer.currency, total_amount=Decimal("800.00"),
        open_amount=Decimal("800.00"), status=InvoiceStatus.OPEN)


def _contact_data(world: World, invoice: Invoice) -> dict:
    contact = Contact(customer=world.customer, name="Cleo Payable", role=ContactRole.AP,
                      email="cleo@example.com")
    values = forms.model_to_dict(contact, fields=customers_forms.ContactForm._meta.fields)
    return {name: value for name, value in values.items() if value not in (None, False)}


LATER = TODAY + dt.timedelta(days=60)

# Forms that record something new, each with what it records: sent twice with
# the token the page rendered in it (a double click), the second records nothing.
RECORDED_ONCE = {
    "collections/customers/<int:pk>/note/": lambda w, invoice: {"text": "Called, no answer"},
    "collections/customers/<int:pk>/promise/": lambda w, invoice: {
        "contact": w.contact.pk, "amount": "100.00", "invoices": [invoice.pk],
        "promised_on": (TODAY + dt.timedelta(days=7)).isoformat()},
    "collections/customers/<int:pk>/payment/": lambda w, invoice: {
        "received_on": TODAY.isoformat(), "currency": w.customer.currency, "amount": "100.00",
        "method": "bank_transfer", "reference": "BANK-77", "invoices": [invoice.pk]},
    "collections/customers/<int:pk>/credit-note/": lambda w, invoice: {
        "invoice": invoice.pk, "amount": "50.00", "issued_on": TODAY.isoformat(), "reason": "Goodwill"},
    "collections/customers/<int:pk>/dispute/": lambda w, invoice: {
        "invoice": invoice.pk, "reason": DisputeReason.PRICE, "description": "Price differs from the order"},
    "collections/customers/<int:pk>/plan/": lambda w, invoice: {
        "invoices": [invoice.pk], "instalment_count": "2",
        "first_due_on": (TODAY + dt.timedelta(days=10)).isoformat(), "every_days": "30"},
    "collections/customers/<int:pk>/pause/": lambda w, invoice: {
        "invoice": invoice.pk, "ends_on": (TODAY + dt.timedelta(days=5)).isoformat(),
        "reason": "Waiting for their bank"},
    "collections/customers/<int:pk>/exception/": lambda w, invoice: {
        "kind": ExceptionKind.PAUSE, "invoice": invoice.pk, "pause_until": LATER.isoformat(),
        "reason": "Their bank moves in spring"},
    "customers/<int:pk>/contacts/new/": _contact_data,
    "customers/<int:pk>/contacts/<int:contact_id>/absences/new/": lambda w, invoice: {
        "starts_on": LATER.isoformat(), "ends_on": (LATER + dt.timedelta(days=5)).isoformat(),
        "delegate": w.customer.contacts.get(name="Bob Payable").pk, "note": "Holiday"},
    "collections/cover/": lambda w, invoice: {
        "user": w.users["collector"].pk, "stand_in": w.users["other_collector"].pk,
        "starts_on": (LATER + dt.timedelta(days=30)).isoformat(),
        "ends_on": (LATER + dt.timedelta(days=35)).isoformat()},
    "collections/api-tokens/": lambda w, invoice: {"name": "Warehouse", "user": w.users["erp"].pk},
}
_TOKEN = re.compile(r'name="submission" value="([0-9a-f-]{36})"')


@pytest.mark.parametrize("route", list(RECORDED_ONCE))
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_form_that_records_something_sent_twice_with_its_token_records_it_once(
    world, manager_client, route, htmx
):
    url = TABLE[route].url(world)
    headers = {"HX-Request": "true"} if htmx else {}
    with time_machine_at(TODAY), transaction.atomic():
        _csrf_posting(manager_client, world)
        invoice = _fresh_invoice(world)
        # Opened as the browser opens it: into the page with htmx, or as a
        # page (the tokens' form comes with its page, not with the list htmx asks for).
        form = (_TOKEN.search(manager_client.get(url, headers=headers).content.decode())
                or _TOKEN.search(manager_client.get(url).content.decode()))
        data = {**RECORDED_ONCE[route](world, invoice), "submission": form.group(1) if form else ""}
        before = _contents()
        first = manager_client.post(url, data, headers=headers)
        recorded = _contents()
        second = manager_client.post(url, data, headers=headers)
        # Row by row: PostgreSQL counts the token's refused insert as a write.
        changed = sorted(t for t, digest in _contents().items() if recorded[t] != digest)
        transaction.set_rollback(True)

    assert form, "the form opens without its one-time token"
    assert first.status_code < 400 and recorded != before, "the first click was refused: wrong form sent"
    assert second.status_code == 422
    assert SENT_ALREADY in html.unescape(second.content.decode())
    assert changed == []
