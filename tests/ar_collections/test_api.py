"""The ERP's JSON API: a bearer token acting as a user, an account's standing,
and invoices and payments taken by the CSV import's own rules, all or
nothing, the same request twice recording nothing twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from ar_collections import api, workspace
from ar_collections.api import api_token_create, api_token_revoke
from ar_collections.models import (
    ActionStatus,
    Allocation,
    ApiToken,
    ChargeKind,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    DunningAction,
    DunningCycle,
    DunningRun,
    DunningStep,
    ImportOrigin,
    ImportStatus,
    Invoice,
    InvoiceStatus,
    LateCharge,
    Payment,
    ReceivablesImport,
    TimelineEventInvoice,
)
from customers.models import Customer, EventKind, Segment, TermsType, TimelineEvent

pytestmark = pytest.mark.usefixtures("_frozen_today")

INVOICE_ROWS = [
    {"number": "INV-100", "account_number": "C-ACME", "issue_date": "2025-06-01", "due_date": "2025-07-01",
     "currency": "EUR", "total_amount": "500.00", "po_reference": "PO-7"},
    {"number": "INV-101", "account_number": "C-ACME", "issue_date": "2025-07-20", "due_date": "2025-08-20",
     "currency": "EUR", "total_amount": "700.00"},
    {"number": "INV-200", "account_number": "C-BETA", "issue_date": "2025-07-01", "due_date": "2025-07-31",
     "currency": "USD", "total_amount": "120.50"},
]


@pytest.fixture
def accounts(make_customer) -> dict[str, Customer]:
    return {number: make_customer(account_number=number, name=name)
            for number, name in [("C-ACME", "Acme Tools"), ("C-BETA", "Beta Bau")]}


def token_for(user) -> str:
    return api_token_create(user=user, name="ERP")[1]


def client_for(user) -> Client:
    return Client(headers={"Authorization": f"Bearer {token_for(user)}"})


@pytest.fixture
def erp(manager) -> Client:
    return client_for(manager)


def post(client: Client, name: str, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    response = client.post(reverse(f"api:{name}"), body, content_type="application/json")
    return response.status_code, response.json()


def state() -> tuple:
    return (
        sorted(Invoice.objects.values_list("number", "open_amount", "status", "due_date")),
        sorted(Payment.objects.values_list("reference", "amount")),
        Allocation.objects.count(),
        TimelineEvent.objects.count(),
    )


# --- tokens ---------------------------------------------------------------------------------


def test_the_command_prints_a_token_once_and_keeps_only_its_hash(manager):
    out, err = StringIO(), StringIO()

    call_command("api_token_create", user="maria", name="ERP", stdout=out, stderr=err)

    secret = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert (token.name, token.user, token.revoked_at) == ("ERP", manager, None)
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiToken.objects.values_list())
    assert "shown this once" in err.getvalue()
    # And it works.
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    assert client.get(reverse("api:customer_standing", args=["NOPE"])).status_code == 404
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_command_refuses_an_unknown_user_and_makes_no_token(db):
    with pytest.raises(CommandError, match="there is no active user 'nobody'"):
        call_command("api_token_create", user="nobody", name="ERP")
    assert not ApiToken.objects.exists()


def test_the_admin_lists_tokens_without_their_secret_and_revokes_them(manager, admin_client):
    token, secret = api_token_create(user=manager, name="ERP")

    listed = admin_client.get(reverse("admin:collections_apitoken_changelist")).content.decode()
    shown = admin_client.get(reverse("admin:collections_apitoken_change", args=[token.pk])).content.decode()

    assert "ERP" in listed and secret not in listed and token.secret_hash not in listed
    assert secret not in shown and token.secret_hash not in shown
    response = admin_client.post(reverse("admin:collections_apitoken_changelist"),
                                 {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by.username == "admin"
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    assert client.get(reverse("api:customer_standing", args=["NOPE"])).status_code == 401


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Bearer arcrm_wrong", "Basic bWFyaWE6cHc="])
def test_a_request_without_a_valid_token_is_401_and_records_nothing(accounts, authorization):
    client = Client(headers={"Authorization": authorization} if authorization else {})
    before = state()

    status, body = post(client, "invoices", {"rows": INVOICE_ROWS})
    read = client.get(reverse("api:customer_standing", args=["C-ACME"]))

    assert (status, read.status_code) == (401, 401)
    assert body["error"].startswith("Send a valid API token")
    assert read["WWW-Authenticate"] == 'Bearer realm="arcrm"'
    assert state() == before


def test_a_revoked_token_is_401(accounts, manager):
    token, secret = api_token_create(user=manager, name="ERP")
    assert api_token_revoke(token=token, actor=manager)

    client = Client(headers={"Authorization": f"Bearer {secret}"})

    status, _ = post(client, "invoices", {"rows": INVOICE_ROWS})

    assert status == 401
    assert not Invoice.objects.exists()
    assert not api_token_revoke(token=token, actor=manager)  # once is enough: the first who and when stay


def test_a_signed_in_session_does_not_authenticate_a_write(accounts, manager):
    """A page open in a manager's browser must not lend its cookie to a
    request another site makes the browser send."""
    for client in (Client(), Client(enforce_csrf_checks=True)):
        client.force_login(manager)

        status, _ = post(client, "invoices", {"rows": INVOICE_ROWS})

        assert status == 401
    assert not Invoice.objects.exists()


@pytest.mark.parametrize("role", ["collector", "viewer"])
def test_only_a_manager_may_write(accounts, request, role):
    client = client_for(request.getfixturevalue(role))

    status, body = post(client, "invoices", {"rows": INVOICE_ROWS})
    payments = post(client, "payments", {"rows": []})[0]

    assert (status, payments) == (403, 403)
    assert body == {"error": f"User {request.getfixturevalue(role).username} may not do this."}
    assert not Invoice.objects.exists()


def test_the_api_takes_no_get_for_writes_nor_post_for_reading_and_says_so_in_json(erp, accounts):
    """An ERP's client reads JSON: a wrong method or address answers in JSON too."""
    wrong_get = erp.get(reverse("api:invoices"))
    wrong_post = erp.post(reverse("api:customer_standing", args=["C-ACME"]))

    assert (wrong_get.status_code, wrong_get["Allow"], wrong_get.json()) == (
        405, "POST", {"error": "Use POST here, not GET."})
    assert (wrong_post.status_code, wrong_post["Allow"], wrong_post.json()) == (
        405, "GET", {"error": "Use GET here, not POST."})


def test_an_address_the_api_does_not_have_answers_404_in_json(erp):
    response = erp.get("/api/v1/customer/C-ACME/")

    assert erp.post("/api/v1/invoice/", {"rows": []}, content_type="application/json").status_code == 404
    assert response.status_code == 404
    assert response.json() == {"error": "The API has no address /api/v1/customer/C-ACME/; it has "
                                        "customers/<account number>/, invoices/, payments/ and "
                                        "payments/reversals/."}


# --- an account's standing ------------------------------------------------------------------


def test_a_viewer_reads_whether_an_account_may_have_its_order_shipped(accounts, viewer, manager,
                                                                      make_invoice):
    acme = accounts["C-ACME"]
    Customer.objects.filter(pk=acme.pk).update(
        credit_limit_amount=Decimal("5000.00"), on_credit_hold=True, terms_type=TermsType.COD,
        segment=Segment.SYSTEMATIC_LATE,
    )
    late = make_invoice(acme, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="500.10")
    make_invoice(acme, issued=dt.date(2025, 7, 20), due=dt.date(2025, 8, 20), amount="700.00")
    make_invoice(acme, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="99.99", currency="USD")
    make_invoice(acme, issued=dt.date(2025, 5, 1), amount="1000.00", paid_on=dt.date(2025, 6, 1))
    Dispute.objects.create(customer=acme, invoice=late, reason=DisputeReason.PRICE, description="Price",
                           opened_by=manager, opened_on=dt.date(2025, 8, 1),
                           answer_due_on=dt.date(2025, 8, 15), disputed_amount=Decimal("100.00"))

    response = client_for(viewer).get(reverse("api:customer_standing", args=["C-ACME"]))

    assert response.status_code == 200
    assert response.json() == {
        "account_number": "C-ACME",
        "name": "Acme Tools",
        "as_of": "2025-08-05",
        "open": {"EUR": "1200.10", "USD": "99.99"},
        # EUR 100.00 of the late invoice is under open dispute: left out, and said apart.
        "overdue": {"EUR": "400.10", "USD": "99.99"},
        "overdue_under_dispute": {"EUR": "100.00"},
        "overdue_invoices": 2,
        "credit_limit": {"currency": "EUR", "amount": "5000.00"},
        "on_credit_hold": True,
        "payment_terms": {"type": "cod", "label": "Cash on delivery", "days": 30},
        "segment": "systematic_late",
        "open_disputes": 1,
        "charges": {},
        "credit_on_account": {},
        "may_ship": False,
        "ship_terms": "against_payment",
        # USD 99.99 open, and the limit is in EUR: it grants no credit in USD.
        "over_credit_limit": True,
        "may_not_ship_because": "On credit hold.",
    }


def test_an_account_owing_nothing_reads_empty_amounts(accounts, viewer):
    body = client_for(viewer).get(reverse("api:customer_standing", args=["C-BETA"])).json()

    assert (body["open"], body["overdue"], body["overdue_under_dispute"], body["overdue_invoices"],
            body["may_ship"]) == ({}, {}, {}, 0, True)
    assert (body["ship_terms"], body["over_credit_limit"], body["may_not_ship_because"]) == (
        "on_credit", False, None)


def overdue_read(customer, viewer) -> tuple:
    body = client_for(viewer).get(reverse("api:customer_standing", args=[customer.account_number])).json()
    return body["overdue"], body["overdue_under_dispute"], body["overdue_invoices"]


@pytest.fixture
def owing(accounts, make_invoice):
    """Acme owes EUR 1,000.00 and USD 300.00 overdue, and EUR 50.00 not yet due."""
    acme = accounts["C-ACME"]
    acme.euros = make_invoice(acme, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="1000.00")
    acme.dollars = make_invoice(acme, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="300.00",
                                currency="USD")
    acme.later = make_invoice(acme, issued=dt.date(2025, 7, 20), due=dt.date(2025, 8, 20), amount="50.00")
    return acme


def disputed(acme, invoice, manager, amount: str | None = None):
    return workspace.dispute_open(customer=acme, actor=manager, invoice=invoice, reason=DisputeReason.PRICE,
                                  description="Price", on=dt.date(2025, 8, 5),
                                  amount=Decimal(amount) if amount else None)


def test_the_overdue_standing_leaves_out_the_disputed_part_of_an_invoice_and_says_it_apart(
    owing, viewer, manager
):
    disputed(owing, owing.euros, manager, amount="400.00")

    assert overdue_read(owing, viewer) == ({"EUR": "600.00", "USD": "300.00"}, {"EUR": "400.00"}, 2)


def test_an_invoice_wholly_under_dispute_is_neither_overdue_nor_counted_among_the_overdue_invoices(
    owing, viewer, manager
):
    disputed(owing, owing.dollars, manager)

    assert overdue_read(owing, viewer) == ({"EUR": "1000.00"}, {"USD": "300.00"}, 1)


def test_a_resolved_dispute_puts_its_invoice_back_in_the_overdue_standing(owing, viewer, manager):
    dispute = disputed(owing, owing.euros, manager)
    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=DisputeOutcome.REJECTED,
                              note="Price was as quoted", on=dt.date(2025, 8, 5))

    assert overdue_read(owing, viewer) == ({"EUR": "1000.00", "USD": "300.00"}, {}, 2)


def test_a_disputed_invoice_not_yet_due_is_in_neither_overdue_figure(owing, viewer, manager):
    disputed(owing, owing.later, manager)

    assert overdue_read(owing, viewer) == ({"EUR": "1000.00", "USD": "300.00"}, {}, 2)


def charge(customer, *, kind=ChargeKind.LATE_FEE, currency="EUR", amount="10.00", open_amount=None,
           **fields) -> LateCharge:
    """A charge on a letter of its own (one fee per letter and currency)."""
    run = DunningRun.objects.get_or_create(run_date=dt.date(2025, 7, 20))[0]
    cycle = DunningCycle.objects.get_or_create(customer=customer, number=1,
                                               defaults={"opened_on": dt.date(2025, 7, 20)})[0]
    letter = DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer,
        step=DunningStep.objects.order_by("pk")[LateCharge.objects.count()],
        status=ActionStatus.DONE, planned_on=dt.date(2025, 7, 20), pay_by=dt.date(2025, 7, 20))
    return LateCharge.objects.create(customer=customer, action=letter, kind=kind, currency=currency,
                                     amount=Decimal(amount), open_amount=Decimal(open_amount or amount),
                                     **fields)


def test_the_late_fees_and_interest_still_owed_are_read_per_currency(accounts, viewer, manager, make_invoice):
    acme = accounts["C-ACME"]
    invoice = make_invoice(acme, issued=dt.date(2025, 6, 1), amount="700.00")
    charge(acme, amount="95.50", open_amount="90.00")
    charge(acme, kind=ChargeKind.INTEREST, invoice=invoice, amount="4.50")
    charge(acme, currency="USD", amount="12.00")
    charge(acme, amount="20.00", open_amount="0.00")  # paid
    charge(acme, amount="30.00", waived_at=dt.datetime(2025, 8, 1, tzinfo=dt.UTC), waived_by=manager)
    charge(acme, amount="40.00", cancelled_at=dt.datetime(2025, 8, 1, tzinfo=dt.UTC),
           cancel_reason="Letter withdrawn")
    charge(accounts["C-BETA"], amount="50.00")

    body = client_for(viewer).get(reverse("api:customer_standing", args=["C-ACME"])).json()

    assert body["charges"] == {
        "EUR": {"late_fees": "90.00", "interest": "4.50", "total": "94.50"},
        "USD": {"late_fees": "12.00", "interest": "0.00", "total": "12.00"},
    }
    assert body["open"] == {"EUR": "700.00"}


def test_the_credit_on_account_is_read_per_currency_as_the_account_page_shows_it(
    accounts, viewer, manager, client, make_invoice
):
    """Money kept on account and credit notes not yet set against an invoice:
    the ERP may let the customer deduct them, as the account page says."""
    acme = accounts["C-ACME"]
    make_invoice(acme, issued=dt.date(2025, 7, 1), amount="200.00", number="INV-7")
    workspace.payment_record(customer=acme, amount=Decimal("500.00"), currency="EUR",
                             received_on=dt.date(2025, 8, 1), allocations=[], reference="BANK-9")
    workspace.credit_note_on_account(customer=acme, actor=manager, currency="USD", amount=Decimal("12.50"),
                                     reason="Volume rebate", issued_on=dt.date(2025, 8, 1))
    workspace.payment_record(customer=accounts["C-BETA"], amount=Decimal("70.00"), currency="EUR",
                             received_on=dt.date(2025, 8, 1), allocations=[], reference="BANK-10")

    body = client_for(viewer).get(reverse("api:customer_standing", args=["C-ACME"])).json()
    client.force_login(manager)
    page = client.get(reverse("customers:detail", args=[acme.pk])).content.decode()

    assert body["credit_on_account"] == {"EUR": "500.00", "USD": "12.50"}
    assert body["open"] == {"EUR": "200.00"}
    assert re.search(r'data-figure="credits">EUR\s*500\.00 \+ USD\s*12\.50<', html.unescape(page))


def shipping(accounts, viewer, **terms) -> dict:
    Customer.objects.filter(pk=accounts["C-ACME"].pk).update(**terms)
    body = client_for(viewer).get(reverse("api:customer_standing", args=["C-ACME"])).json()
    return {name: body[name]
            for name in ("may_ship", "ship_terms", "over_credit_limit", "may_not_ship_because")}


@pytest.mark.parametrize("terms", [TermsType.COD, TermsType.PREPAYMENT])
def test_an_account_on_cod_or_prepayment_ships_only_against_payment(accounts, viewer, make_invoice, terms):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="9000.00")

    assert shipping(accounts, viewer, terms_type=terms, credit_limit_amount=Decimal("1000.00")) == {
        "may_ship": True, "ship_terms": "against_payment", "over_credit_limit": True,
        "may_not_ship_because": None,
    }


def test_an_account_over_its_credit_limit_may_not_ship_on_credit_and_says_why(accounts, viewer, make_invoice):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="600.00")
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 20), amount="500.00")

    assert shipping(accounts, viewer, credit_limit_amount=Decimal("1000.00")) == {
        "may_ship": False, "ship_terms": "on_credit", "over_credit_limit": True,
        "may_not_ship_because": "Over its credit limit: EUR 1,100.00 open against a limit of EUR 1,000.00.",
    }


def test_an_account_at_its_credit_limit_ships_on_credit(accounts, viewer, make_invoice):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="1000.00")

    assert shipping(accounts, viewer, credit_limit_amount=Decimal("1000.00")) == {
        "may_ship": True, "ship_terms": "on_credit", "over_credit_limit": False, "may_not_ship_because": None,
    }


def test_money_open_in_a_currency_the_credit_limit_is_not_in_stops_an_order_on_credit_and_says_so(
    accounts, viewer, make_invoice
):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="1000.00")
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 20), amount="5000.00", currency="USD")

    assert shipping(accounts, viewer, credit_limit_amount=Decimal("1000.00")) == {
        "may_ship": False, "ship_terms": "on_credit", "over_credit_limit": True,
        "may_not_ship_because": "USD 5,000.00 open on credit in USD, which its credit limit of EUR 1,000.00 "
                                "does not cover (no rate to count it against it).",
    }


def test_each_currency_over_the_limit_is_named_and_none_is_summed_with_another(accounts, viewer,
                                                                                make_invoice):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="1500.00")
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="0.50", currency="GBP")

    assert shipping(accounts, viewer, credit_limit_amount=Decimal("1000.00"))["may_not_ship_because"] == (
        "Over its credit limit: EUR 1,500.00 open against a limit of EUR 1,000.00. GBP 0.50 open on credit "
        "in GBP, which its credit limit of EUR 1,000.00 does not cover (no rate to count it against it).")


def test_money_in_another_currency_does_not_stop_an_order_shipped_against_payment(accounts, viewer,
                                                                                   make_invoice):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="5000.00", currency="USD")

    assert shipping(accounts, viewer, terms_type=TermsType.COD, credit_limit_amount=Decimal("1000.00")) == {
        "may_ship": True, "ship_terms": "against_payment", "over_credit_limit": True,
        "may_not_ship_because": None,
    }


def test_an_account_on_hold_and_over_its_limit_gives_both_reasons(accounts, viewer, make_invoice):
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 7, 1), amount="10.00")

    assert shipping(accounts, viewer, on_credit_hold=True)["may_not_ship_because"] == (
        "On credit hold. Over its credit limit: EUR 10.00 open against a limit of EUR 0.00.")


def test_an_unknown_account_is_404_in_json(viewer, db):
    response = client_for(viewer).get(reverse("api:customer_standing", args=["C-NOPE"]))

    assert (response.status_code, response.json()) == (404, {"error": "There is no account C-NOPE."})


def test_an_account_is_found_by_its_number_in_any_case(accounts, viewer):
    response = client_for(viewer).get(reverse("api:customer_standing", args=["c-acme"]))

    assert response.status_code == 200
    assert (response.json()["account_number"], response.json()["name"]) == ("C-ACME", "Acme Tools")


def test_a_number_written_exactly_finds_its_account_beside_one_differing_only_in_case(
    accounts, viewer, make_customer
):
    make_customer(account_number="c-acme", name="Acme Lowercase")
    client = client_for(viewer)

    assert client.get(reverse("api:customer_standing", args=["c-acme"])).json()["name"] == "Acme Lowercase"
    assert client.get(reverse("api:customer_standing", args=["C-ACME"])).json()["name"] == "Acme Tools"
    response = client.get(reverse("api:customer_standing", args=["C-Acme"]))
    assert (response.status_code, response.json()) == (404, {
        "error": "There is no account C-Acme; C-ACME and c-acme differ from it only in case: give the number "
                 "exactly."})


def test_an_account_number_with_a_nul_character_is_no_account_answered_in_json(accounts, viewer):
    """A NUL in the address (%00) reached the database, which refuses it in
    text: the shipping desk's client got Django's HTML 500."""
    response = client_for(viewer).get("/api/v1/customers/C-ACME%00/")

    assert (response.status_code, response.json()) == (404, {
        "error": "There is no account 'C-ACME\\x00': an account number holds no NUL character."})


def test_an_account_found_in_another_case_takes_one_query_more(accounts, viewer, django_assert_num_queries):
    client = client_for(viewer)
    client.get(reverse("api:customer_standing", args=["C-ACME"]))  # the token's use, written once a minute

    with django_assert_num_queries(10):
        assert client.get(reverse("api:customer_standing", args=["c-acme"])).status_code == 200


# --- invoices -------------------------------------------------------------------------------


def test_invoices_are_recorded_open_with_their_issue_on_the_timeline(erp, accounts, manager):
    status, body = post(erp, "invoices", {"rows": INVOICE_ROWS})

    assert status == 200, body
    assert body == {"dry_run": False, "rows": 3, "recorded": 3, "already_there": 0, "updated": 0,
                    "cancelled": [], "already_cancelled": [],
                    "summary": "3 invoices recorded, 0 already there (left as they were), from 3 rows."}
    assert sorted(Invoice.objects.values_list("number", "customer__account_number", "currency",
                                              "total_amount", "open_amount", "status", "po_reference")) == [
        ("INV-100", "C-ACME", "EUR", Decimal("500.00"), Decimal("500.00"), InvoiceStatus.OPEN, "PO-7"),
        ("INV-101", "C-ACME", "EUR", Decimal("700.00"), Decimal("700.00"), InvoiceStatus.OPEN, ""),
        ("INV-200", "C-BETA", "USD", Decimal("120.50"), Decimal("120.50"), InvoiceStatus.OPEN, ""),
    ]
    event = TimelineEvent.objects.get(customer=accounts["C-BETA"], kind=EventKind.INVOICE_ISSUED)
    assert (event.summary, event.actor, event.details["imported"]) == (
        "Invoice INV-200 issued: USD 120.50, due 31 Jul 2025", manager, True)
    links = TimelineEventInvoice.objects.filter(event=event).values_list("invoice__number", flat=True)
    assert list(links) == ["INV-200"]


def test_the_same_invoices_again_change_nothing_and_say_so(erp, accounts):
    assert post(erp, "invoices", {"rows": INVOICE_ROWS})[0] == 200
    before = state()

    status, body = post(erp, "invoices", {"rows": INVOICE_ROWS})

    assert (status, body["recorded"], body["already_there"], body["updated"]) == (200, 0, 3, 0)
    assert state() == before


def test_a_due_date_the_erp_moved_is_updated_on_the_timeline(erp, accounts, manager):
    assert post(erp, "invoices", {"rows": INVOICE_ROWS})[0] == 200
    moved = [dict(INVOICE_ROWS[0], due_date="2025-08-31"), *INVOICE_ROWS[1:]]

    status, body = post(erp, "invoices", {"rows": moved})

    assert (status, body["recorded"], body["already_there"], body["updated"]) == (200, 0, 2, 1)
    assert Invoice.objects.get(number="INV-100").due_date == dt.date(2025, 8, 31)
    event = TimelineEvent.objects.get(kind=EventKind.INVOICE_CHANGED)
    assert (event.summary, event.actor) == (
        "Invoice INV-100 changed in the ERP: due date 1 Jul 2025 → 31 Aug 2025", manager)


def test_a_bad_row_is_named_by_its_row_and_nothing_is_written(erp, accounts):
    rows = [INVOICE_ROWS[0],
            dict(INVOICE_ROWS[1], account_number="C-NOPE", due_date="20.08.2025"),
            dict(INVOICE_ROWS[2], total_amount=120.5, colour="red"),
            "INV-300"]
    before = state()

    status, body = post(erp, "invoices", {"rows": rows})

    assert status == 422
    assert body == {
        "error": "Nothing imported: 3 problems in 4 rows.",
        "problems": [
            {"row": 2, "messages": ["no account 'C-NOPE'; due_date '20.08.2025' is not a date: write "
                                    "YYYY-MM-DD"]},
            {"row": 3, "messages": ["unknown field 'colour' (the fields are number, account_number, "
                                    "issue_date, due_date, currency, total_amount, po_reference, "
                                    "confirm_old_date, cancelled_on, cancel_reason); "
                                    'total_amount must be a string (an amount like "1250.00": a number '
                                    "may lose its cents)"]},
            {"row": 4, "messages": ['a row is an object of fields, e.g. {"number": "…", '
                                    '"account_number": "…", …}']},
        ],
    }
    assert state() == before


def test_a_row_missing_a_field_says_which(erp, accounts):
    row = {k: v for k, v in INVOICE_ROWS[0].items() if k not in ("currency", "due_date")}

    status, body = post(erp, "invoices", {"rows": [row]})

    assert (status, body["problems"]) == (422, [
        {"row": 1, "messages": ["missing fields due_date, currency"]}])
    assert not Invoice.objects.exists()


def test_an_invoice_given_twice_in_a_request_names_both_rows(erp, accounts):
    rows = [*INVOICE_ROWS, dict(INVOICE_ROWS[0], total_amount="550.00")]

    status, body = post(erp, "invoices", {"rows": rows})

    assert (status, body["problems"]) == (422, [
        {"row": 4, "messages": ["invoice INV-100 is on row 1 already: give each invoice once"]}])
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(("body", "status", "error"), [
    ('{"rows": [', 400, "The body is not JSON: Expecting value: line 1 column 11 (char 10)."),
    (b"\xff\xfe", 400, "The body is not JSON: "),
    ('[{"number": "INV-1"}]', 422, 'Send an object with the rows in a list: {"rows": [{...}, ...]}.'),
    ('{"row": []}', 422, 'Send an object with the rows in a list: {"rows": [{...}, ...]}.'),
    ('{"rows": [], "dry_run": "yes"}', 422, "dry_run is true or false."),
    ('{"rows": [], "mode": "fast"}', 422, "Unknown key mode: send rows (and dry_run)."),
    # Nested deeper than the parser goes: refused as any other body it cannot read, not a 500.
    ('{"rows": [' + "[" * 100_000 + "]" * 100_000 + "]}", 400, "The body is not JSON: it nests deeper"),
])
def test_a_body_that_is_not_a_request_of_rows_is_refused_plainly(erp, accounts, body, status, error):
    answer, said = post(erp, "invoices", body)

    assert (answer, said["error"][:len(error)]) == (status, error)
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(("kind", "row", "field"), [
    ("invoices", dict(INVOICE_ROWS[0], number="INV-1\x00"), "number"),
    ("invoices", dict(INVOICE_ROWS[0], account_number="C-ACME\x00"), "account_number"),
    ("payments", {"account_number": "C-ACME\x00", "received_on": "2025-08-01", "currency": "EUR",
                  "amount": "10.00", "reference": "INV-100"}, "account_number"),
    ("payments", {"account_number": "C-ACME", "received_on": "2025-08-01", "currency": "EUR",
                  "amount": "10.00", "reference": "INV-100", "invoices": ["INV-100\x00"]}, "invoices"),
    ("customers", {"account_number": "C-NEW\x00", "name": "New Co", "collector": "carla"}, "account_number"),
])
def test_a_nul_character_in_a_rows_value_is_refused_with_the_row_and_nothing_changes(
    erp, accounts, kind, row, field
):
    """JSON may carry a NUL (\\u0000), which no file the import reads does and
    the database refuses in text: told which row and field, a 422 like any other
    bad value, not the 500 of an internal error."""
    before = (Invoice.objects.count(), Payment.objects.count(), Customer.objects.count())

    status, body = post(erp, kind, {"rows": [row]})

    assert (status, body["problems"]) == (422, [
        {"row": 1, "messages": [f"{field} holds a NUL character (\\u0000): send it without"]}])
    assert (Invoice.objects.count(), Payment.objects.count(), Customer.objects.count()) == before
    assert not ReceivablesImport.objects.filter(status=ImportStatus.FAILED).exists()


def test_more_rows_than_a_request_takes_are_refused_whole(erp, accounts, monkeypatch):
    monkeypatch.setattr(api, "MAX_ROWS", 2)

    status, body = post(erp, "invoices", {"rows": INVOICE_ROWS})

    assert (status, body) == (413, {"error": "3 rows: send at most 2 rows a request, nothing was recorded."})
    assert not Invoice.objects.exists()
    batch = ReceivablesImport.objects.get()
    assert (batch.status, batch.origin, batch.api_token.name, batch.rows, batch.created) == (
        ImportStatus.REFUSED, ImportOrigin.API, "ERP", 3, 0)
    assert batch.summary == "Nothing imported: too large (3 rows, at most 2 a request)."
    assert batch.errors == [body["error"]]
    assert json.loads(batch.text) == {"rows": INVOICE_ROWS}


def test_a_dry_run_of_more_rows_than_a_request_takes_leaves_no_import_record(erp, accounts, monkeypatch):
    monkeypatch.setattr(api, "MAX_ROWS", 2)

    assert post(erp, "invoices", {"rows": INVOICE_ROWS, "dry_run": True})[0] == 413
    assert not ReceivablesImport.objects.exists()


def test_a_request_bounds_its_rows_at_a_thousand(erp, accounts):
    rows = [dict(INVOICE_ROWS[0], number=f"INV-{n}") for n in range(1001)]

    status, body = post(erp, "invoices", {"rows": rows})

    assert (status, body["error"]) == (
        413, "1,001 rows: send at most 1,000 rows a request, nothing was recorded.")
    assert not Invoice.objects.exists()


def test_a_dry_run_says_what_it_would_record_and_records_nothing(erp, accounts):
    status, body = post(erp, "invoices", {"rows": INVOICE_ROWS, "dry_run": True})

    assert (status, body["dry_run"], body["recorded"]) == (200, True, 3)
    assert body["summary"] == (
        "3 invoices would be recorded, 0 already there (left as they were), from 3 rows.")
    assert not Invoice.objects.exists()


# --- payments -------------------------------------------------------------------------------

PAYMENT_ROWS = [
    {"account_number": "C-ACME", "received_on": "2025-08-01", "currency": "EUR", "amount": "500.00",
     "reference": "BANK-1", "invoices": ["INV-100"], "bank_reference": "20250801-0001"},
    {"account_number": "C-BETA", "received_on": "2025-08-02", "currency": "USD", "amount": "20.50",
     "reference": "BANK-2", "invoices": "INV-200", "method": "cheque"},
]


@pytest.fixture
def invoiced(erp, accounts) -> None:
    assert post(erp, "invoices", {"rows": INVOICE_ROWS})[0] == 200


def test_payments_pay_the_invoices_they_name_on_the_timeline(erp, invoiced, manager):
    status, body = post(erp, "payments", {"rows": PAYMENT_ROWS})

    assert status == 200, body
    assert (body["recorded"], body["already_there"]) == (2, 0)
    assert sorted(Invoice.objects.values_list("number", "open_amount", "status")) == [
        ("INV-100", Decimal("0.00"), InvoiceStatus.PAID),
        ("INV-101", Decimal("700.00"), InvoiceStatus.OPEN),
        ("INV-200", Decimal("100.00"), InvoiceStatus.OPEN),
    ]
    assert sorted(Payment.objects.values_list("reference", "amount", "method", "bank_reference")) == [
        ("BANK-1", Decimal("500.00"), "bank_transfer", "20250801-0001"),
        ("BANK-2", Decimal("20.50"), "cheque", ""),
    ]
    received = TimelineEvent.objects.filter(kind=EventKind.PAYMENT_RECEIVED)
    assert sorted(received.values_list("customer__account_number", "actor")) == [
        ("C-ACME", manager.pk), ("C-BETA", manager.pk)]


def test_the_same_payments_again_change_nothing_and_say_so(erp, invoiced):
    assert post(erp, "payments", {"rows": PAYMENT_ROWS})[0] == 200
    before = state()

    status, body = post(erp, "payments", {"rows": PAYMENT_ROWS})

    assert (status, body["recorded"], body["already_there"]) == (200, 0, 2)
    assert body["summary"] == "0 payments recorded, 2 already there (left as they were), from 2 rows."
    assert state() == before


def test_a_bad_payment_row_writes_none_of_the_others(erp, invoiced):
    rows = [PAYMENT_ROWS[0], dict(PAYMENT_ROWS[1], invoices=["INV-100"], amount="-5")]
    before = state()

    status, body = post(erp, "payments", {"rows": rows})

    assert status == 422
    assert body["problems"] == [{"row": 2, "messages": [
        "account C-BETA has no invoice INV-100; amount must be more than zero: credit notes and refunds are "
        "not imported from the ERP; record a credit note on the account page (Record a credit note)"]}]
    assert state() == before


@pytest.mark.parametrize("invoices", [100, ["INV-100", 101], {"number": "INV-100"}])
def test_a_payments_invoices_of_the_wrong_type_are_refused_saying_what_they_may_be(erp, invoiced, invoices):
    before = state()

    status, body = post(erp, "payments", {"rows": [dict(PAYMENT_ROWS[0], invoices=invoices)]})

    assert (status, body["problems"]) == (422, [{"row": 1, "messages": [
        'invoices must be a list of invoice numbers, each a string (["INV-1", "INV-2"]), or one string '
        '("INV-1;INV-2")']}])
    assert state() == before


def test_a_payment_naming_one_invoice_twice_is_refused(erp, invoiced):
    status, body = post(erp, "payments", {"rows": [dict(PAYMENT_ROWS[0], invoices=["INV-100", "INV-100"])]})

    assert (status, body["problems"]) == (422, [
        {"row": 1, "messages": ["invoices names INV-100 twice: name each invoice once"]}])
    assert not Payment.objects.exists()


def test_one_bank_entry_twice_in_a_request_names_both_rows(erp, invoiced):
    status, body = post(erp, "payments", {"rows": [PAYMENT_ROWS[0], dict(PAYMENT_ROWS[0], reference="X")]})

    assert (status, body["problems"]) == (422, [
        {"row": 2, "messages": ["bank_reference 20250801-0001 is on row 1 already"]}])
    assert not Payment.objects.exists()


@pytest.mark.parametrize("twin", ["20250801 0001", "202508010001", "20250801_0001", "20250801/0001"])
def test_one_bank_entry_with_its_id_punctuated_otherwise_is_refused_in_a_request_and_after_it(
    erp, invoiced, twin
):
    status, body = post(erp, "payments", {"rows": [PAYMENT_ROWS[0], dict(PAYMENT_ROWS[0], reference="X",
                                                                        bank_reference=twin)]})

    assert (status, body["problems"]) == (422, [
        {"row": 2, "messages": [f"bank_reference {twin} is on row 1 already"]}])
    assert not Payment.objects.exists()

    assert post(erp, "payments", {"rows": PAYMENT_ROWS[:1]})[0] == 200
    before = state()
    status, body = post(erp, "payments", {"rows": [dict(PAYMENT_ROWS[1], bank_reference=twin)]})

    assert (status, body["problems"]) == (422, [{"row": 1, "messages": [
        f"bank_reference {twin} is recorded already, as EUR 500.00 received 2025-08-01 on account C-ACME; "
        "the request says USD 20.50 on account C-BETA. One bank entry is one payment: correct the request, "
        "or the payment recorded"]}])
    assert state() == before


def test_a_body_too_large_to_be_a_request_of_rows_is_refused_before_it_is_read(erp, accounts):
    body = json.dumps({"rows": [dict(INVOICE_ROWS[0], po_reference="x" * 3000)] * 800})

    status, said = post(erp, "invoices", body)

    assert (status, said["error"]) == (413, "The body is over 2,097,152 bytes: send at most 1,000 rows a "
                                            "request.")
    assert not Invoice.objects.exists()
    # Recorded unread: what it held is not kept, only how large it was and who sent it.
    batch = ReceivablesImport.objects.get()
    assert (batch.kind, batch.status, batch.origin, batch.api_token.name, batch.rows, batch.text) == (
        "invoices", ImportStatus.REFUSED, ImportOrigin.API, "ERP", 0, "")
    assert batch.summary == f"Nothing imported: too large (a body of {len(body):,} bytes, at most 2,097,152)."
    assert batch.errors == [said["error"]]


def test_a_token_of_a_user_no_longer_active_is_401(accounts, manager):
    client = client_for(manager)
    manager.is_active = False
    manager.save()

    assert post(client, "invoices", {"rows": INVOICE_ROWS})[0] == 401
    assert not Invoice.objects.exists()


def test_an_accounts_standing_takes_a_fixed_number_of_queries(accounts, viewer, make_invoice,
                                                               django_assert_num_queries):
    for n in range(5):
        make_invoice(accounts["C-ACME"], issued=dt.date(2025, 6, n + 1), currency=("EUR", "USD")[n % 2])
    client = client_for(viewer)

    # The token and its use, the user's rights, the account, its totals, its disputes, its charges,
    # its credit notes and its payments left to apply.
    with django_assert_num_queries(10):
        assert client.get(reverse("api:customer_standing", args=["C-ACME"])).status_code == 200


# --- the imports page: what the ERP sent ----------------------------------------------------


def test_an_applied_request_is_recorded_on_the_imports_page_as_the_tokens_user(erp, accounts, manager):
    status, body = post(erp, "invoices", {"rows": INVOICE_ROWS})

    assert status == 200, body
    batch = ReceivablesImport.objects.get()
    assert (batch.kind, batch.origin, batch.api_token.name, batch.created_by) == (
        "invoices", ImportOrigin.API, "ERP", manager)
    assert (batch.status, batch.dry_run) == (ImportStatus.DONE, False)
    assert (batch.rows, batch.created, batch.already, batch.updated, batch.errors) == (3, 3, 0, 0, [])
    assert batch.summary == body["summary"]
    assert json.loads(batch.text) == {"rows": INVOICE_ROWS}
    assert batch.finished_at is not None


@pytest.mark.parametrize("kind, rows, domain", [
    ("invoices", INVOICE_ROWS, "invoice_rows_import"),
    ("payments", [], "payment_rows_import"),
])
def test_a_request_that_fails_inside_answers_500_in_json_changes_nothing_and_is_recorded_as_failed(
        erp, accounts, manager, monkeypatch, caplog, kind, rows, domain):
    real = getattr(api, domain)

    def fails_after_writing(rows, **kwargs):
        real(rows, **kwargs)  # whatever it wrote must go with the request
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(api, domain, fails_after_writing)
    before = state()

    status, body = post(erp, kind, {"rows": rows})

    assert (status, body) == (500, {"error": "The request failed on an internal error: nothing was "
                                             "recorded. Send it again later; if it fails again, tell "
                                             "the team that runs arcrm."})
    assert state() == before
    batch = ReceivablesImport.objects.get()
    assert (batch.kind, batch.origin, batch.api_token.name, batch.created_by, batch.status) == (
        kind, ImportOrigin.API, "ERP", manager, ImportStatus.FAILED)
    assert (batch.rows, batch.created, batch.already, batch.updated) == (len(rows), 0, 0, 0)
    assert batch.summary == "Failed: internal error; nothing was recorded."
    assert batch.errors == ["The request stopped on an error: RuntimeError: the disk is full"]
    assert json.loads(batch.text) == {"rows": rows}
    assert "the disk is full" in caplog.text


def test_a_dry_run_that_fails_inside_answers_500_in_json_and_leaves_no_record(erp, accounts, monkeypatch):
    def fails(rows, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(api, "invoice_rows_import", fails)

    status, body = post(erp, "invoices", {"rows": INVOICE_ROWS, "dry_run": True})

    assert status == 500 and body["error"].startswith("The request failed on an internal error")
    assert not ReceivablesImport.objects.exists()


def test_the_failed_request_shows_on_the_imports_page(erp, accounts, client, manager, monkeypatch):
    def fails(rows, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(api, "invoice_rows_import", fails)
    post(erp, "invoices", {"rows": INVOICE_ROWS})
    client.force_login(manager)

    listed = client.get(reverse("collections:import")).content.decode()

    assert "API request (token ERP)" in listed
    assert "Failed: internal error; nothing was recorded." in listed


def test_a_request_the_erp_sends_again_is_recorded_again_with_what_was_there(erp, accounts):
    post(erp, "invoices", {"rows": INVOICE_ROWS})

    post(erp, "invoices", {"rows": [dict(INVOICE_ROWS[0], due_date="2025-07-15"), *INVOICE_ROWS[1:]]})

    assert list(ReceivablesImport.objects.order_by("pk").values_list("created", "already", "updated")) == [
        (3, 0, 0), (0, 2, 1)]


def test_a_refused_request_is_recorded_as_refused_with_its_problems_and_nothing_else(erp, accounts):
    before = state()

    status, _ = post(erp, "invoices", {"rows": [INVOICE_ROWS[0], dict(INVOICE_ROWS[1], currency="EURO")]})

    assert status == 422
    assert state() == before
    batch = ReceivablesImport.objects.get()
    assert (batch.status, batch.origin, batch.rows, batch.created) == (ImportStatus.REFUSED, "api", 2, 0)
    assert batch.errors and batch.errors[0].startswith("row 2: currency 'EURO'")
    assert batch.summary == "Nothing imported: 1 problem in 2 rows."


def test_a_refused_payment_request_is_recorded_too(erp, invoiced):
    status, _ = post(erp, "payments", {"rows": [dict(PAYMENT_ROWS[0], amount="-5")]})

    assert status == 422
    assert list(ReceivablesImport.objects.filter(kind="payments").values_list("status", "origin")) == [
        (ImportStatus.REFUSED, "api")]


def test_a_dry_run_and_a_request_that_is_not_rows_leave_no_import_record(erp, accounts):
    assert post(erp, "invoices", {"rows": INVOICE_ROWS, "dry_run": True})[0] == 200
    assert post(erp, "invoices", "not json")[0] == 400
    assert post(erp, "invoices", {"lines": []})[0] == 422

    assert not ReceivablesImport.objects.exists()


def test_a_request_refused_for_its_token_leaves_no_import_record(accounts, collector):
    assert post(client_for(collector), "invoices", {"rows": INVOICE_ROWS})[0] == 403
    assert post(Client(), "invoices", {"rows": INVOICE_ROWS})[0] == 401

    assert not ReceivablesImport.objects.exists()


def test_the_imports_page_shows_a_request_with_its_origin_and_token(erp, accounts, client, manager):
    post(erp, "invoices", {"rows": INVOICE_ROWS})
    batch = ReceivablesImport.objects.get()
    client.force_login(manager)

    listed = client.get(reverse("collections:import")).content.decode()
    shown = client.get(reverse("collections:import_detail", args=[batch.pk])).content.decode()

    assert "API request (token ERP)" in listed
    assert "3 invoices recorded" in listed
    assert "API request (token ERP)" in shown
    assert "download the request as it came in" in shown
    request = client.get(reverse("collections:import_file", args=[batch.pk]))
    assert (request["Content-Type"], request["Content-Disposition"]) == (
        "application/json", f'attachment; filename="api-request-{batch.pk}.json"')
    assert json.loads(request.content) == {"rows": INVOICE_ROWS}


def test_the_admin_lists_imports_with_their_origin_and_token_and_filters_by_them(erp, accounts, manager,
                                                                                  admin_client):
    post(erp, "invoices", {"rows": INVOICE_ROWS})
    ReceivablesImport.objects.create(kind="payments", file_name="bank-august.csv", text="x",
                                     created_by=manager)
    changelist = reverse("admin:collections_receivablesimport_changelist")

    listed = admin_client.get(changelist).content.decode()
    by_api = admin_client.get(changelist, {"origin__exact": "api"}).content.decode()
    uploaded = admin_client.get(changelist, {"origin__exact": "upload"}).content.decode()
    token = ApiToken.objects.get()
    by_token = admin_client.get(changelist, {"api_token__id__exact": token.pk}).content.decode()

    assert "column-origin" in listed and "column-token" in listed
    assert "API request" in listed and "Uploaded file" in listed and "bank-august.csv" in listed
    assert '<td class="field-token">ERP</td>' in listed
    assert 'data-filter-title="origin"' in listed and 'data-filter-title="api token"' in listed
    assert "1 receivables import" in by_api and "bank-august.csv" not in by_api
    assert "1 receivables import" in uploaded and "bank-august.csv" in uploaded
    assert "1 receivables import" in by_token and "bank-august.csv" not in by_token


# --- tokens in the managers' workspace ------------------------------------------------------


def test_a_manager_sees_the_tokens_without_their_secrets(client, manager, viewer):
    token, secret = api_token_create(user=viewer, name="Shipping desk", actor=manager)
    api_token_revoke(token=api_token_create(user=manager, name="Old ERP")[0], actor=manager)
    client.force_login(manager)

    page = client.get(reverse("collections:api_tokens")).content.decode()

    assert "Shipping desk" in page and "Old ERP" in page and "victor" in page
    assert "Revoked 5 Aug 2025" in page and "by maria" in page and "Never used" in page
    assert secret not in page and token.secret_hash not in page


def test_issuing_a_token_shows_its_secret_once_and_keeps_its_hash(client, manager, other_manager, accounts):
    client.force_login(manager)

    response = client.post(reverse("collections:api_tokens"), {"name": "ERP", "user": other_manager.pk})

    # Post, redirect, get: reloading the page that shows the secret asks for the page again, not
    # for another token.
    assert (response.status_code, response.url) == (302, reverse("collections:api_tokens"))
    shown = client.get(response.url)
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    token = ApiToken.objects.get()
    assert (token.name, token.user, token.created_by, token.revoked_at) == (
        "ERP", other_manager, manager, None)
    secret = shown.context["secret"]
    assert secret in shown.content.decode() and "Token ERP issued" in shown.content.decode()
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    erp = Client(headers={"Authorization": f"Bearer {secret}"})
    assert erp.get(reverse("api:customer_standing", args=["C-ACME"])).status_code == 200


def test_reloading_the_page_after_issuing_a_token_issues_no_other_and_shows_the_secret_no_more(
        client, manager, other_manager):
    client.force_login(manager)
    shown = client.post(reverse("collections:api_tokens"), {"name": "ERP", "user": other_manager.pk},
                        follow=True)
    secret = shown.context["secret"]

    reloaded = client.get(reverse("collections:api_tokens")).content.decode()

    assert ApiToken.objects.count() == 1
    assert secret not in reloaded and "Token ERP issued" not in reloaded
    assert secret not in str(dict(client.session))


def test_issuing_a_token_with_htmx_answers_the_secret_and_the_list_in_place(client, manager, other_manager):
    client.force_login(manager)

    response = client.post(reverse("collections:api_tokens"), {"name": "ERP", "user": other_manager.pk},
                           headers={"HX-Request": "true"})

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="token-issue"')
    secret = response.context["secret"]
    token = ApiToken.objects.get()
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret in html and "Token ERP issued" in html
    assert 'aria-labelledby="api-tokens-title" hx-swap-oob="true"' in html
    assert "Never used" in html  # the new token, in the list swapped in beside
    assert secret not in client.get(reverse("collections:api_tokens")).content.decode()


def test_a_token_refused_with_htmx_answers_the_form_with_its_problem(client, manager, django_user_model):
    nobody = django_user_model.objects.create_user("nora")
    client.force_login(manager)

    response = client.post(reverse("collections:api_tokens"), {"name": "ERP", "user": nobody.pk},
                           headers={"HX-Request": "true"})

    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="token-issue"')
    assert "Choose a user from the list: an active user who may read accounts, never a superuser." in html
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("data, problem", [
    ({"name": "", "user": "me"}, "This field is required."),
    ({"name": "ERP", "user": "999999"}, "Choose a user from the list: an active user who may read accounts, "
                                        "never a superuser."),
])
def test_a_token_without_a_name_or_a_user_is_refused_and_none_is_made(client, manager, data, problem):
    client.force_login(manager)
    data = {**data, "user": manager.pk if data["user"] == "me" else data["user"]}

    response = client.post(reverse("collections:api_tokens"), data)

    assert response.status_code == 422
    assert problem in response.content.decode()
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("who, problem", [
    ("inactive", "Choose an active user: that one is unknown or no longer active."),
    ("nobody", "nora may not read accounts, so a token acting as them could do nothing here: choose a "
               "viewer (to read an account's standing) or a manager (to record invoices and payments too)."),
    ("admin_user", "A token acts as its user, and admin is a superuser, who may do anything: choose a "
                   "user with only the rights the system that signs with it needs."),
])
def test_a_token_acts_only_as_an_active_user_who_may_read_accounts_and_never_as_a_superuser(
        other_manager, request, django_user_model, who, problem):
    if who == "inactive":
        user = other_manager
        user.is_active = False
        user.save()
    elif who == "nobody":
        user = django_user_model.objects.create_user("nora")
    else:
        user = request.getfixturevalue(who)

    assert api.api_token_user_refusal(user) == problem
    with pytest.raises(CommandError, match=r"superuser|may not read|active user"):
        call_command("api_token_create", f"--user={user.username}", "--name=ERP", stdout=StringIO())
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("who", ["inactive", "nobody", "admin_user"])
def test_the_tokens_page_neither_offers_nor_accepts_a_user_it_would_refuse(
        client, manager, other_manager, viewer, request, django_user_model, who):
    if who == "inactive":
        user = other_manager
        user.is_active = False
        user.save()
    elif who == "nobody":
        user = django_user_model.objects.create_user("nora")
    else:
        user = request.getfixturevalue(who)
    reader = django_user_model.objects.create_user("rita")
    reader.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client.force_login(manager)

    page = client.get(reverse("collections:api_tokens")).content.decode()
    response = client.post(reverse("collections:api_tokens"), {"name": "ERP", "user": user.pk})

    offered = set(re.findall(r'<option value="(\d+)"', page))
    readers = {manager, viewer, reader} | ({other_manager} if who != "inactive" else set())
    assert offered == {str(each.pk) for each in readers}
    assert "except superusers, who may do anything" in page
    assert response.status_code == 422
    assert ("Choose a user from the list: an active user who may read accounts, never a superuser."
            in html.unescape(response.content.decode()))
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("htmx", [False, True])
def test_revoking_a_token_records_who_and_when_and_refuses_it_from_then_on(client, manager, accounts, htmx):
    token, secret = api_token_create(user=manager, name="ERP")
    client.force_login(manager)
    headers = {"HX-Request": "true"} if htmx else {}

    response = client.post(reverse("collections:api_token_revoke", args=[token.pk]), headers=headers)

    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == manager
    if htmx:
        assert response.status_code == 200
        assert response.content.decode().lstrip().startswith('<section id="api-tokens"')
    else:
        assert (response.status_code, response.url) == (302, reverse("collections:api_tokens"))
    erp = Client(headers={"Authorization": f"Bearer {secret}"})
    assert post(erp, "invoices", {"rows": INVOICE_ROWS})[0] == 401


def test_revoking_a_token_again_keeps_the_first_revocation(client, manager, other_manager):
    token = api_token_create(user=manager, name="ERP")[0]
    api_token_revoke(token=token, actor=other_manager)
    first = ApiToken.objects.get().revoked_at
    client.force_login(manager)

    response = client.post(reverse("collections:api_token_revoke", args=[token.pk]), follow=True)

    assert "was revoked already" in response.content.decode()
    assert ApiToken.objects.values_list("revoked_at", "revoked_by").get() == (first, other_manager.pk)


def test_revoking_takes_a_post_only(client, manager):
    token = api_token_create(user=manager, name="ERP")[0]
    client.force_login(manager)

    assert client.get(reverse("collections:api_token_revoke", args=[token.pk])).status_code == 405
    assert client.post(reverse("collections:api_token_revoke", args=[999999])).status_code == 404
    assert ApiToken.objects.get().revoked_at is None


@pytest.mark.parametrize("role", ["collector", "viewer"])
def test_collectors_and_viewers_may_not_see_issue_or_revoke_tokens(client, request, role, manager):
    token = api_token_create(user=manager, name="ERP")[0]
    client.force_login(request.getfixturevalue(role))

    assert client.get(reverse("collections:api_tokens")).status_code == 403
    issued = client.post(reverse("collections:api_tokens"), {"name": "Mine", "user": manager.pk})
    assert issued.status_code == 403
    assert client.post(reverse("collections:api_token_revoke", args=[token.pk])).status_code == 403
    assert list(ApiToken.objects.values_list("name", "revoked_at")) == [("ERP", None)]


def test_the_managers_menu_links_the_tokens_page(client, manager):
    client.force_login(manager)
    assert reverse("collections:api_tokens") in client.get(reverse("collections:import")).content.decode()


def test_a_tokens_use_is_written_at_most_once_a_minute(accounts, manager):
    secret = api_token_create(user=manager, name="ERP")[1]
    erp = Client(headers={"Authorization": f"Bearer {secret}"})
    standing = reverse("api:customer_standing", args=["C-ACME"])
    at = dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC)

    def used_at(seconds: int) -> dt.datetime:
        with time_machine.travel(at + dt.timedelta(seconds=seconds), tick=False):
            assert erp.get(standing).status_code == 200
        return ApiToken.objects.get().last_used_at

    assert used_at(0) == at
    assert used_at(59) == at
    assert used_at(61) == at + dt.timedelta(seconds=61)


# --- the words of a refusal -----------------------------------------------------------------


def test_an_invoice_recorded_by_another_import_meanwhile_asks_to_send_the_request_again(
        erp, accounts, monkeypatch):
    real = Invoice.objects.bulk_create

    def after_another_import(invoices, *args, **kwargs):
        # Another import records the first number between this request's check and its write.
        Invoice.objects.create(**{f.attname: getattr(invoices[0], f.attname)
                                  for f in Invoice._meta.concrete_fields if f.attname != "id"})
        return real(invoices, *args, **kwargs)

    monkeypatch.setattr(Invoice.objects, "bulk_create", after_another_import)

    status, body = post(erp, "invoices", {"rows": INVOICE_ROWS})

    assert (status, body["problems"]) == (422, [{"row": None, "messages": [
        "an invoice number in the request was recorded meanwhile: send the request again"]}])
    assert not Invoice.objects.exists()
    assert ReceivablesImport.objects.get().status == ImportStatus.REFUSED


def test_a_row_that_would_change_an_invoice_speaks_of_the_request(erp, accounts):
    post(erp, "invoices", {"rows": INVOICE_ROWS})

    status, body = post(erp, "invoices", {"rows": [dict(INVOICE_ROWS[0], total_amount="501.00")]})

    assert status == 422
    assert "invoice INV-100 is recorded with total_amount 500.00, the request says 501.00" in (
        body["problems"][0]["messages"][0])


def test_a_bank_entry_recorded_otherwise_speaks_of_the_request(erp, invoiced):
    post(erp, "payments", {"rows": PAYMENT_ROWS[:1]})

    status, body = post(erp, "payments", {"rows": [dict(PAYMENT_ROWS[0], amount="400.00")]})

    assert status == 422
    message = body["problems"][0]["messages"][0]
    assert "the request says EUR 400.00 on account C-ACME" in message
    assert "correct the request, or the payment recorded" in message


def test_a_request_in_utf_16_is_kept_on_the_imports_page_as_it_was_read(erp, accounts):
    body = json.dumps({"rows": [dict(INVOICE_ROWS[0], po_reference="Bestellung Nr. 7 – Größe")]})

    status, said = post(erp, "invoices", body.encode("utf-16"))

    assert status == 200, said
    batch = ReceivablesImport.objects.get()
    assert json.loads(batch.text)["rows"][0]["po_reference"] == "Bestellung Nr. 7 – Größe"


def test_amounts_are_given_in_their_currency_s_places(accounts, viewer, make_invoice):
    # Yen have no cents: "6000", as the ERP books it, not "6000.00".
    make_invoice(accounts["C-ACME"], issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="6000",
                 currency="JPY")

    body = client_for(viewer).get(reverse("api:customer_standing", args=["C-ACME"])).json()

    assert (body["open"], body["overdue"]) == ({"JPY": "6000"}, {"JPY": "6000"})


def test_a_manager_issues_the_shipping_desk_a_viewers_token_that_reads_standings_and_writes_nothing(
        client, manager, viewer, accounts):
    client.force_login(manager)

    response = client.post(reverse("collections:api_tokens"), {"name": "Shipping", "user": viewer.pk},
                           headers={"HX-Request": "true"})

    assert response.status_code == 201
    desk = Client(headers={"Authorization": f"Bearer {response.context['secret']}"})
    assert desk.get(reverse("api:customer_standing", args=["C-ACME"])).status_code == 200
    assert desk.post("/api/v1/invoices/", {"rows": []}, content_type="application/json").status_code == 403


@pytest.mark.parametrize(("authorization", "said"), [
    (None, "no token"),
    ("Bearer arcrm_not-a-token-we-issued", "an unknown token"),
    ("Basic dXNlcjpwYXNz", "no token"),
])
def test_every_request_refused_for_its_token_is_logged_with_where_it_came_from_and_never_the_secret(
        accounts, caplog, authorization, said):
    """A run of refusals in the log is someone guessing tokens, or a system
    left with an old one: the team that runs arcrm sees where from."""
    client = Client(headers={"Authorization": authorization} if authorization else {},
                    REMOTE_ADDR="203.0.113.7")

    with caplog.at_level("WARNING", logger="ar_collections.api"):
        client.get(reverse("api:customer_standing", args=["C-ACME"]))

    [record] = [r for r in caplog.records if r.name == "ar_collections.api"]
    assert record.levelname == "WARNING"
    assert f"API request refused: {said}" in record.getMessage()
    assert "203.0.113.7" in record.getMessage()
    assert f"GET {reverse('api:customer_standing', args=['C-ACME'])}" in record.getMessage()
    assert "not-a-token" not in record.getMessage()


def test_a_revoked_token_s_refusal_is_logged_naming_the_token_so_the_system_still_using_it_is_found(
        accounts, manager, caplog):
    token, secret = api_token_create(user=manager, name="ERP")
    api_token_revoke(token=token, actor=manager)

    with caplog.at_level("WARNING", logger="ar_collections.api"):
        Client(headers={"Authorization": f"Bearer {secret}"}).get(
            reverse("api:customer_standing", args=["C-ACME"]))

    [record] = [r for r in caplog.records if r.name == "ar_collections.api"]
    assert f"API request refused: token {token.pk} (ERP) is revoked" in record.getMessage()
    assert secret not in record.getMessage()


def test_a_token_whose_user_may_not_do_it_is_logged_as_refused_too(accounts, viewer, caplog):
    with caplog.at_level("WARNING", logger="ar_collections.api"):
        status, _ = post(client_for(viewer), "invoices", {"rows": INVOICE_ROWS})

    assert status == 403
    [record] = [r for r in caplog.records if r.name == "ar_collections.api"]
    assert f"user {viewer.get_username()} of token" in record.getMessage()
    assert "may not do this: collections.import_receivables" in record.getMessage()
