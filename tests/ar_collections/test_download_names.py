"""A download's file name comes from data (an account number from the ERP):
whatever it holds, the Content-Disposition header names one file, readable,
and nothing after it."""

from __future__ import annotations

import datetime as dt
from email.message import Message

from django.urls import reverse

from ar_collections.statements import statement_file_name


def _file_name(header: str) -> str:
    message = Message()
    message["Content-Disposition"] = header
    return message.get_filename()


def test_the_statement_of_an_account_number_with_quotes_semicolons_and_a_newline_downloads_safely(
        client, collector, make_customer, make_contact, make_invoice):
    customer = make_customer(account_number='K"1; x=y\nÄ')
    client.force_login(collector)

    response = client.get(reverse("collections:statement_download", args=[customer.pk]))

    assert response.status_code == 200
    header = response["Content-Disposition"]
    assert header.startswith("attachment; ")
    assert "\n" not in header and header.count(";") == 1  # one parameter: the name
    name = _file_name(header)
    assert name.startswith("statement-K1_xyÄ-") and name.endswith(".pdf")


def test_a_plain_account_number_keeps_its_plain_name(client, collector, customer):
    client.force_login(collector)

    response = client.get(reverse("collections:statement_download", args=[customer.pk]))

    expected = f'attachment; filename="statement-{customer.account_number}-'
    assert response["Content-Disposition"].startswith(expected)


def test_the_statement_e_mailed_is_named_as_safely(collector, make_customer):
    name = statement_file_name(make_customer(account_number='K"1; x=y\nÄ'), dt.date(2026, 4, 20))

    assert name == "statement-K1_xyÄ-2026-04-20.pdf"
