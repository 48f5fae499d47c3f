"""The admin pages the product is run with (the ladders, the rules, invoices,
accounts, departments), sent malformed forms: each comes back with its
message, never a 500, and the database is as it was.

The fields posted are the ones the page itself renders (the inlines' too),
each given the bad value; the inlines' management form is kept as the page
gave it, but where the case is about the management form itself.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.urls import reverse

from ar_collections.models import (
    CollectionRules,
    Department,
    DunningStep,
    Holiday,
    LatePaymentPolicy,
    MoneyPointScale,
    PolicyMinimum,
    StepFee,
)
from customers.models import Customer
from tests.arcrm.test_access_matrix import _writes

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="the writes are counted by PostgreSQL's statistics views"),
    pytest.mark.usefixtures("_today"),
]

MANAGEMENT = re.compile(r"-(TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS$")

# Bad in any field: nothing may be saved.
NEVER_TAKEN = {
    "missing": None,
    "empty": "",
    "blank": "  \t ",
    "10,000 characters": "x" * 10_000,
    "NUL": "a\x00b",
    "zero-width only": "\u200b\u2060",
}
# Bad for a number, a date, an id or an amount; text fields may well take
# them (a department named "abc"): no 500, whatever the page says.
WRONG_KIND = {
    "abc": "abc",
    "negative": "-1",
    "1e30": "1e30",
    "13 digits": "9999999999999",
    "full-width digits": "１００",
    "beyond any column": "99999999999999999999999",
    "0001-01-01": "0001-01-01",
    "9999-12-31": "9999-12-31",
    "2026-02-30": "2026-02-30",
}


@pytest.fixture
def _today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


@pytest.fixture
def pages(db, customer, make_invoice) -> dict[str, str]:
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-ADMIN")
    department = Department.objects.create(name="Shipping", email="shipping@example.com")
    policy = LatePaymentPolicy.objects.order_by("pk").first()
    step = DunningStep.objects.order_by("pk").first()
    rules = CollectionRules.objects.get()

    def change(name, obj):
        return reverse(f"admin:{name}_change", args=[obj.pk])

    return {
        "customer add": reverse("admin:customers_customer_add"),
        "invoice add": reverse("admin:collections_invoice_add"),
        "invoice change": change("collections_invoice", invoice),
        "policy add": reverse("admin:collections_latepaymentpolicy_add"),
        "policy change": change("collections_latepaymentpolicy", policy),
        "step add": reverse("admin:collections_dunningstep_add"),
        "step change": change("collections_dunningstep", step),
        "policy minimum add": reverse("admin:collections_policyminimum_add"),
        "rules change": change("collections_collectionrules", rules),
        "department add": reverse("admin:collections_department_add"),
        "department change": change("collections_department", department),
    }


_FIELD = re.compile(r"<(input|select|textarea)\b([^>]*)>", re.S)
_ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')


def _form_fields(page: str) -> dict[str, str]:
    """The names of the fields the page's form renders, with the values of its inputs."""
    form = page[page.index('<form'):page.rindex("</form>")]
    fields = {}
    for _, attrs in _FIELD.findall(form):
        attr = dict(_ATTR.findall(attrs))
        name = attr.get("name")
        if name and attr.get("type") not in ("submit", "button") and "__prefix__" not in name:
            fields[name] = html.unescape(attr.get("value", ""))
    return fields


def _post(client, url: str, data: dict) -> tuple[int, int]:
    with transaction.atomic():
        before = _writes()
        response = client.post(url, data)
        writes = _writes() - before
        transaction.set_rollback(True)
    return response.status_code, writes


def _malformed(fields: dict[str, str], value: str | None) -> dict[str, str]:
    kept = {name: given for name, given in fields.items()
            if name == "csrfmiddlewaretoken" or MANAGEMENT.search(name)}
    if value is None:
        return kept
    return {**{name: value for name in fields}, **kept}


def _sweep(admin_client, pages: dict[str, str], cases: dict[str, str | None]) -> list[tuple]:
    answers = []
    for page, url in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, page
        fields = _form_fields(response.content.decode())
        for case, value in cases.items():
            answers.append((page, case, *_post(admin_client, url, _malformed(fields, value))))
    return answers


def test_a_value_no_field_takes_comes_back_with_a_message_and_saves_nothing(admin_client, pages):
    answers = _sweep(admin_client, pages, NEVER_TAKEN)

    assert [a for a in answers if a[2:] != (200, 0)] == []


def test_a_value_of_the_wrong_kind_is_never_a_server_error(admin_client, pages):
    answers = _sweep(admin_client, pages, WRONG_KIND)

    assert [a for a in answers if a[2] >= 500] == []


def _inline_rows() -> tuple:
    return (sorted(DunningStep.objects.values_list("pk", "day_offset", "action")),
            PolicyMinimum.objects.count(), StepFee.objects.count(), MoneyPointScale.objects.count(),
            Holiday.objects.count())


@pytest.mark.parametrize("total", ["abc", "-1", "100000", "99999999999999999999999"])
def test_a_forged_count_of_inline_rows_is_no_server_error_and_changes_no_inline_row(
    admin_client, pages, total
):
    """A count below zero reads as no inline rows sent: the page saves as if
    they were left alone; none is changed or deleted."""
    answers = []
    before = _inline_rows()
    for page in ("policy change", "step change", "rules change"):
        url = pages[page]
        fields = _form_fields(admin_client.get(url).content.decode())
        forged = {name: (total if name.endswith("-TOTAL_FORMS") else given) for name, given in fields.items()}
        answers.append((page, admin_client.post(url, forged).status_code))

    assert [a for a in answers if a[1] >= 500] == []
    assert _inline_rows() == before


def test_an_account_s_buying_reasons_not_a_list_of_texts_are_refused_by_name(admin_client, pages):
    fields = _form_fields(admin_client.get(pages["customer add"]).content.decode())
    answers = {}
    for given in ("", "null", "-1", "[1, 2]", '"price"'):
        response = admin_client.post(pages["customer add"], {
            **fields, "account_number": "C-NEW", "name": "New Ltd", "buying_reasons": given})
        form = response.context["adminform"].form
        answers[given] = (response.status_code, form.errors.get("buying_reasons"))

    refused = (200, ['Give the reasons as a list of texts, e.g. ["price", "delivery speed", "service"].'])
    assert answers == {given: refused for given in answers}
    assert not Customer.objects.filter(account_number="C-NEW").exists()
