"""Recording a payment on the account page: a manager's cash application,
oldest invoice first, the rest on account; what it refuses and who may."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ar_collections import services, workspace
from ar_collections.models import (
    Allocation,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentBehaviour,
    Promise,
    PromiseStatus,
)
from customers.models import EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoices(customer, make_invoice) -> list[Invoice]:
    """Oldest first: INV-1 EUR 500.00 due 1 Jul, INV-2 EUR 700.00 due 15 Jul, INV-3 USD 300.00 due 20 Jul."""
    return [
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number,
                     currency=currency)
        for number, due, amount, currency in [
            ("INV-1", dt.date(2025, 7, 1), "500.00", "EUR"),
            ("INV-2", dt.date(2025, 7, 15), "700.00", "EUR"),
            ("INV-3", dt.date(2025, 7, 20), "300.00", "USD"),
        ]
    ]


def payment_url(customer) -> str:
    return reverse("collections:payment_record", args=[customer.pk])


def state() -> tuple:
    return (
        sorted(Payment.objects.values_list("amount", "currency", "reference")),
        sorted(Allocation.objects.values_list("invoice__number", "amount")),
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
        TimelineEvent.objects.count(),
    )


def open_amounts() -> dict[str, Decimal]:
    return dict(Invoice.objects.values_list("number", "open_amount"))


def form(invoices, /, **fields) -> dict:
    data = {"received_on": "2025-08-04", "currency": "EUR", "amount": "900.00", "method": "bank_transfer",
            "reference": "BANK-0815", "invoices": [invoices[0].pk, invoices[1].pk]}
    data.update(fields)
    return data


def test_a_payment_pays_the_oldest_invoice_first_and_the_next_in_part(client, manager, customer, invoices):
    client.force_login(manager)

    response = client.post(payment_url(customer), form(invoices))

    assert response.status_code == 302
    assert response.url == reverse("customers:detail", args=[customer.pk]) + "#timeline"
    payment = Payment.objects.get()
    assert (payment.amount, payment.currency, payment.received_on, payment.reference, payment.method) == (
        Decimal("900.00"), "EUR", dt.date(2025, 8, 4), "BANK-0815", "bank_transfer"
    )
    assert sorted(payment.allocations.values_list("invoice__number", "amount", "allocated_on")) == [
        ("INV-1", Decimal("500.00"), dt.date(2025, 8, 4)), ("INV-2", Decimal("400.00"), dt.date(2025, 8, 4)),
    ]
    assert open_amounts() == {
        "INV-1": Decimal("0.00"), "INV-2": Decimal("300.00"), "INV-3": Decimal("300.00")
    }
    paid = Invoice.objects.get(number="INV-1")
    assert (paid.status, paid.settled_on) == (InvoiceStatus.PAID, dt.date(2025, 8, 4))
    received = TimelineEvent.objects.get(customer=customer, kind=EventKind.PAYMENT_RECEIVED)
    assert received.summary == (
        "Payment of EUR 900.00 received on 4 Aug 2025 (bank transfer, reference BANK-0815), "
        "applied to INV-1, INV-2"
    )
    assert received.actor == manager
    assert TimelineEvent.objects.filter(customer=customer, kind=EventKind.INVOICE_PAID).count() == 1
    page = client.get(response.url).content.decode()
    assert "Payment of EUR 900.00 recorded, applied to INV-1, INV-2." in page


@pytest.mark.parametrize(("received_on", "said"), [
    ("2025-08-04", "Invoice INV-1 paid in full, 34 days late"),
    ("2025-07-02", "Invoice INV-1 paid in full, 1 day late"),
    ("2025-07-01", "Invoice INV-1 paid in full"),
])
def test_a_payment_settling_an_invoice_says_on_the_timeline_how_late_it_was_paid(
    client, manager, customer, invoices, received_on, said
):
    """As the invoices paid before the account came to us read: due 1 Jul, paid on the day received."""
    client.force_login(manager)

    client.post(payment_url(customer), form(invoices, received_on=received_on, amount="500.00",
                                            invoices=[invoices[0].pk]))

    paid = TimelineEvent.objects.get(customer=customer, kind=EventKind.INVOICE_PAID)
    assert paid.summary == said
    assert paid.details["days_late"] == Invoice.objects.get(number="INV-1").days_late(on=TODAY)
    assert said in client.get(reverse("customers:detail", args=[customer.pk])).content.decode()


def test_with_no_invoice_ticked_a_payment_pays_the_open_ones_in_its_currency_oldest_first(
    client, manager, customer, invoices
):
    client.force_login(manager)

    client.post(payment_url(customer), form(invoices, amount="900.00", invoices=[]))

    # INV-1 in full, 400.00 of INV-2; the USD invoice is untouched.
    assert open_amounts() == {"INV-1": Decimal("0.00"), "INV-2": Decimal("300.00"),
                              "INV-3": Decimal("300.00")}
    assert Payment.objects.get().unallocated_amount() == Decimal("0.00")


@pytest.mark.django_db(transaction=True)
def test_with_htmx_the_payment_behaviour_block_swaps_in_with_the_new_figures(
    client, manager, customer, invoices
):
    """Recomputed once the payment commits, the figures reach the page in the
    same answer: not the old overdue amount beside the new open invoices."""
    client.force_login(manager)

    response = client.post(payment_url(customer), form(invoices, amount="500.00", invoices=[invoices[0].pk]),
                           headers=HTMX)

    html = response.content.decode()
    block = re.search(r'<section id="behaviour"[^>]*hx-swap-oob="true".*?</section>', html, re.S)
    assert block, "the behaviour block is not in the answer"
    assert "EUR 700.00" in block.group(0) and "EUR 1,200.00" not in block.group(0)


def test_money_that_names_no_invoice_passes_over_a_disputed_one(client, manager, customer, invoices):
    """A customer disputing an invoice holds its payment back on purpose:
    applying other money to it would settle the dispute by the back door and
    leave an undisputed invoice unpaid, and chased."""
    workspace.dispute_open(customer=customer, actor=manager, invoice=invoices[0], reason="price",
                           description="Charged the list price, not the contract's", on=TODAY)
    client.force_login(manager)

    response = client.post(payment_url(customer), form(invoices, amount="900.00", invoices=[]), follow=True)

    assert open_amounts() == {"INV-1": Decimal("500.00"), "INV-2": Decimal("0.00"),
                              "INV-3": Decimal("300.00")}
    assert Payment.objects.get().unallocated_amount() == Decimal("200.00")
    assert "applied to INV-2; EUR 200.00 stays on account." in response.content.decode()


def test_a_disputed_invoice_ticked_is_paid_as_the_customer_says(client, manager, customer, invoices):
    workspace.dispute_open(customer=customer, actor=manager, invoice=invoices[0], reason="price",
                           description="Charged the list price, not the contract's", on=TODAY)
    client.force_login(manager)

    client.post(payment_url(customer), form(invoices, amount="500.00", invoices=[invoices[0].pk]))

    assert open_amounts()["INV-1"] == Decimal("0.00")


def test_with_htmx_the_account_parts_swap_in_place_with_the_new_open_amounts(
    client, manager, customer, invoices
):
    client.force_login(manager)

    response = client.post(payment_url(customer), form(invoices, amount="1500.00"), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#action-panel"
    assert re.search(r'<section id="open-invoices"[^>]*hx-swap-oob="true"', html)
    assert re.search(r'<section id="account-header"[^>]*hx-swap-oob="true"', html)
    # Both EUR invoices paid; EUR 300.00 stays on account, and the USD invoice is untouched.
    assert ("Payment of EUR 1,500.00 received on 4 Aug 2025 (bank transfer, reference BANK-0815), "
            "applied to INV-1, "
            "INV-2; EUR 300.00 left on account") in html
    assert "EUR 300.00 stays on account" in html
    assert open_amounts() == {"INV-1": Decimal("0.00"), "INV-2": Decimal("0.00"), "INV-3": Decimal("300.00")}
    assert Payment.objects.get().unallocated_amount() == Decimal("300.00")


def test_a_payment_that_covers_a_promise_keeps_it_at_once(client, manager, collector, customer, invoices):
    promise = workspace.promise_record(
        customer=customer, actor=collector, contact=None, amount=Decimal("700.00"),
        promised_on=dt.date(2025, 8, 8), invoices=[invoices[1]], on=TODAY,
    )
    client.force_login(manager)

    client.post(payment_url(customer), form(invoices, amount="700.00", invoices=[invoices[1].pk],
                                            received_on="2025-08-05"))

    promise.refresh_from_db()
    assert promise.status == PromiseStatus.KEPT
    assert Promise.objects.filter(status=PromiseStatus.OPEN).count() == 0


def test_money_sent_before_the_invoice_was_issued_counts_from_its_issue_date(
    manager, customer, make_invoice
):
    """A prepayment (a C.O.D. or prepayment customer pays before the invoice
    exists): the invoice was paid the day it was issued, not before it existed,
    so its figures (paid on, days late, the order of payments) stay true."""
    invoice = make_invoice(customer, issued=dt.date(2025, 7, 20), due=dt.date(2025, 8, 19),
                           amount="500.00", number="INV-9")

    workspace.payment_record(customer=customer, actor=manager, amount=Decimal("500.00"), currency="EUR",
                             received_on=dt.date(2025, 7, 15), allocations=[(invoice, Decimal("500.00"))],
                             reference="PREPAID-9")

    invoice.refresh_from_db()
    assert (invoice.status, invoice.settled_on) == (InvoiceStatus.PAID, dt.date(2025, 7, 20))
    assert list(Allocation.objects.values_list("allocated_on", flat=True)) == [dt.date(2025, 7, 20)]


def test_an_invoice_paid_in_parts_is_settled_on_its_latest_part_s_day(manager, customer, invoices):
    """Parts entered out of order (a cheque found late): the invoice was paid
    in full only once the latest part came in."""
    first = invoices[0]
    for received_on, amount in [(dt.date(2025, 7, 28), "300.00"), (dt.date(2025, 7, 20), "200.00")]:
        workspace.payment_record(customer=customer, actor=manager, amount=Decimal(amount), currency="EUR",
                                 received_on=received_on, allocations=[(first, Decimal(amount))],
                                 reference=f"BANK-{received_on.day}")

    first.refresh_from_db()
    assert (first.status, first.settled_on) == (InvoiceStatus.PAID, dt.date(2025, 7, 28))


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"invoices": None}, "invoices", "Not in EUR: INV-3."),  # filled in below: a USD invoice
    ({"received_on": "2025-08-06"}, "received_on", "A payment cannot be received after today."),
    ({"amount": "0.00"}, "amount", "Ensure this value is greater than or equal to 0.01."),
    ({"amount": "-5"}, "amount", "Ensure this value is greater than or equal to 0.01."),
    ({"currency": "CHF"}, "currency", "Select a valid choice."),
    ({"method": "barter"}, "method", "Select a valid choice."),
    # A reference of zero-width spaces tells this payment from no other, and shows as none.
    ({"reference": "\u200b\u200b"}, "reference", "This holds only characters no one sees (U+200B)"),
], ids=["other-currency-invoice", "future", "zero", "negative", "unknown-currency", "unknown-method",
        "invisible-reference"])
def test_a_bad_payment_is_refused_with_a_clear_message_and_changes_nothing(
    client, manager, customer, invoices, fields, field, message
):
    if fields.get("invoices", "") is None:
        fields = {"invoices": [invoices[0].pk, invoices[2].pk]}
    before = state()
    client.force_login(manager)

    response = client.post(payment_url(customer), form(invoices, **fields), headers=HTMX)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert f'id="payment-{field}"' in response.content.decode()
    assert state() == before


def test_a_date_long_ago_is_recorded_only_once_confirmed(client, manager, customer, invoices):
    """A mistyped year would settle the invoices on the wrong day."""
    client.force_login(manager)
    before = state()
    long_ago = form(invoices, received_on="2024-08-04")

    refused = client.post(payment_url(customer), long_ago, headers=HTMX)

    assert refused.status_code == 422
    message = "4 Aug 2024 is 366 days ago. If that is right, tick “The date is right” and record it again."
    assert message in refused.content.decode()
    assert state() == before
    # The form asks again with the box for that date, unticked.
    assert confirmation_box(refused).endswith(' value="2024-08-04">')
    assert client.post(payment_url(customer), {**long_ago, "date_confirmed": "2024-08-04"}).status_code == 302
    assert Payment.objects.get().received_on == dt.date(2024, 8, 4)
    # Money dated before the invoice was issued (1 Jun 2025) pays it on its issue date.
    assert Invoice.objects.get(number="INV-1").settled_on == dt.date(2025, 6, 1)
    # Within the last 90 days no confirmation is asked for.
    recent = form(invoices, received_on="2025-05-08", reference="BANK-0816", amount="10.00",
                  invoices=[invoices[1].pk])
    assert client.post(payment_url(customer), recent).status_code == 302


def confirmation_box(response) -> str:
    return re.search(r'<input type="checkbox" name="date_confirmed"[^>]*>', response.content.decode()).group()


def test_a_box_ticked_for_one_date_does_not_confirm_another(client, manager, customer, invoices):
    """The form came back for another error with the box ticked; the clerk
    then typed a different date long ago: that date is asked about too."""
    client.force_login(manager)
    before = state()
    ticked = form(invoices, received_on="2024-08-04", date_confirmed="2024-08-04", amount="")

    again = client.post(payment_url(customer), ticked, headers=HTMX)

    assert again.status_code == 422
    assert confirmation_box(again).endswith('value="2024-08-04" checked>')
    moved = client.post(payment_url(customer), {**ticked, "received_on": "2023-08-04", "amount": "10.00"},
                        headers=HTMX)
    assert moved.status_code == 422
    assert "4 Aug 2023 is 732 days ago." in moved.content.decode()
    assert confirmation_box(moved).endswith('value="2023-08-04">')
    assert state() == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_the_date_box_shows_only_once_a_date_needs_confirming(client, manager, customer, invoices, headers):
    """Today's date, or any within the last 90 days, needs no confirming: the
    box would only puzzle the clerk. It comes with the question it answers."""
    client.force_login(manager)

    opened = client.get(payment_url(customer), headers=headers).content.decode()
    recent = client.post(payment_url(customer), form(invoices, received_on="2025-08-05", amount=""),
                         headers=headers).content.decode()
    long_ago = client.post(payment_url(customer), form(invoices, received_on="2024-08-04", amount=""),
                           headers=headers)

    assert 'id="payment-received_on"' in opened
    assert "The date is right" not in opened and 'name="date_confirmed"' not in opened
    assert "This field is required." in recent
    assert "The date is right" not in recent and 'name="date_confirmed"' not in recent
    assert "366 days ago" in long_ago.content.decode()
    assert confirmation_box(long_ago).endswith(' value="2024-08-04">')


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_box_ticked_stays_ticked_when_the_form_comes_back_for_another_error(
    client, manager, customer, invoices, headers
):
    """The clerk ticked the box for the date asked about, but left out the
    amount: the form asks for the amount, not for the tick again."""
    client.force_login(manager)
    before = state()

    again = client.post(payment_url(customer), form(invoices, received_on="2024-08-04",
                                                    date_confirmed="2024-08-04", amount=""), headers=headers)

    assert again.status_code == 422
    assert "This field is required." in again.content.decode()
    assert "366 days ago" not in again.content.decode()
    assert confirmation_box(again).endswith('value="2024-08-04" checked>')
    assert state() == before
    recorded = client.post(payment_url(customer), form(invoices, received_on="2024-08-04",
                                                       date_confirmed="2024-08-04"), headers=headers)
    assert recorded.status_code in (200, 302) and Payment.objects.get().received_on == dt.date(2024, 8, 4)


def test_another_accounts_invoice_is_not_a_choice(
    client, manager, customer, invoices, make_customer, make_invoice
):
    stranger = make_invoice(make_customer(name="Other GmbH"), issued=dt.date(2025, 6, 1), amount="100.00")
    before = state()
    client.force_login(manager)

    response = client.post(payment_url(customer), form(invoices, invoices=[stranger.pk]))

    assert response.status_code == 422
    assert "An invoice chosen is no longer open on this account" in response.content.decode()
    assert state() == before


def test_the_same_bank_line_twice_is_refused(client, manager, customer, invoices):
    client.force_login(manager)
    line = form(invoices, amount="100.00", invoices=[invoices[1].pk])
    assert client.post(payment_url(customer), line).status_code == 302
    client.get(reverse("customers:detail", args=[customer.pk]))  # shows (and uses up) the message
    before = state()

    again = client.post(payment_url(customer), line, headers=HTMX)

    assert again.status_code == 422
    html = again.content.decode()
    assert ("A payment of EUR 100.00 with reference BANK-0815 received on 4 Aug 2025 is already recorded "
            "for this account.") in html
    assert "message-success" not in html
    assert state() == before
    # The same amount on another day is another payment; one without a
    # reference could not be told from a double submit, so it is refused.
    assert client.post(payment_url(customer), {**line, "received_on": "2025-08-05"}).status_code == 302
    nameless = client.post(payment_url(customer), {**line, "reference": ""}, headers=HTMX)
    assert nameless.status_code == 422 and "This field is required." in nameless.content.decode()
    assert Payment.objects.count() == 2
    assert open_amounts()["INV-2"] == Decimal("500.00")


@pytest.mark.parametrize("reference", ["bank-0815", " BANK-08 15", "Bank-0815\t", "BANK 0815", "BANK0815",
                                       "bank_0815", "BANK/0815", "BANK.0815"])
def test_the_same_bank_line_with_its_reference_in_other_capitals_spaces_or_punctuation_is_refused(
    client, manager, customer, invoices, reference
):
    """A reference is compared as the import compares a bank's id: its
    letters and digits only, in capitals; typed again another way it is
    still the same line."""
    client.force_login(manager)
    line = form(invoices, amount="100.00", invoices=[])
    assert client.post(payment_url(customer), line).status_code == 302
    before = state()

    again = client.post(payment_url(customer), {**line, "reference": reference}, headers=HTMX)

    assert again.status_code == 422
    assert " is already recorded for this account." in again.content.decode()
    assert state() == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize("who", ["collector", "other_collector", "viewer", "nobody"])
def test_only_a_manager_records_a_payment(client, request, customer, invoices, who, headers):
    """Cash application is kept apart from chasing: even the account's own
    collector may not take money off its invoices."""
    user = User.objects.create_user("nobody") if who == "nobody" else request.getfixturevalue(who)
    before = state()
    client.force_login(user)

    assert client.get(payment_url(customer), headers=headers).status_code == 403
    assert client.post(payment_url(customer), form(invoices), headers=headers).status_code == 403
    assert state() == before


def test_the_account_page_offers_the_action_to_managers_only(client, manager, collector, customer, invoices):
    page = reverse("customers:detail", args=[customer.pk])
    client.force_login(collector)
    assert payment_url(customer) not in client.get(page).content.decode()
    client.force_login(manager)
    assert payment_url(customer) in client.get(page).content.decode()


def test_the_form_opens_as_a_page_and_as_a_panel_with_todays_date(client, manager, customer, invoices):
    client.force_login(manager)

    page = client.get(payment_url(customer)).content.decode()
    panel = client.get(payment_url(customer), headers=HTMX).content.decode()

    assert "<html" in page and "<html" not in panel
    assert panel.lstrip().startswith('<section id="action-panel"')
    assert 'value="2025-08-05"' in panel
    # The account's currencies (its own and those of its open invoices), and its open invoices only.
    assert '<option value="EUR" selected>EUR</option>' in panel
    assert '<option value="USD">USD</option>' in panel
    assert all(number in panel for number in ("INV-1", "INV-2", "INV-3"))


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_recording_a_payment_answers_only_get_and_post(client, manager, customer, invoices, method):
    client.force_login(manager)
    assert getattr(client, method)(payment_url(customer)).status_code == 405


def test_recording_a_payment_without_the_csrf_token_is_refused(manager, customer, invoices):
    before = state()
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    assert client.post(payment_url(customer), form(invoices), headers=HTMX).status_code == 403
    assert state() == before


def test_the_admin_shows_payments_and_allocations_but_does_not_edit_them(client, customer, invoices):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    payment = workspace.payment_record(
        customer=customer, amount=Decimal("500.00"), currency="EUR", received_on=TODAY,
        allocations=[(invoices[0], Decimal("500.00"))],
    )

    assert client.get(reverse("admin:collections_payment_add")).status_code == 403
    change = client.get(reverse("admin:collections_payment_change", args=[payment.pk]))
    assert change.status_code == 200 and 'name="amount"' not in change.content.decode()  # read-only
    delete = reverse("admin:collections_payment_delete", args=[payment.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:collections_allocation_add")).status_code == 403
    assert Payment.objects.count() == 1 and Allocation.objects.count() == 1


def test_a_payment_recomputes_the_account_s_behaviour_and_segment_as_of_today(
    client, manager, customer, invoices, django_capture_on_commit_callbacks
):
    """Not only at night: the account page shows the payment in its figures at once,
    computed as of today, for an account never computed before too."""
    assert not PaymentBehaviour.objects.filter(customer=customer).exists()
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(payment_url(customer), form(invoices))

    behaviour = PaymentBehaviour.objects.get(customer=customer)
    assert behaviour.computed_on == TODAY
    settled = (behaviour.invoices_settled, behaviour.invoices_settled_late, behaviour.last_days_late)
    assert settled == (1, 1, 34)
    assert (behaviour.open_invoices, behaviour.open_amount, behaviour.overdue_amount) == (
        1, Decimal("300.00"), Decimal("300.00")
    )
    assert behaviour.other_currency_open_invoices == 1  # the other-currency invoice, counted apart
    customer.refresh_from_db()
    assert customer.segment_reason == (
        "Customer for 67 months with 1 settled invoice; too little history to judge."
    )


def test_a_payment_updates_figures_computed_on_an_earlier_day(
    client, manager, customer, invoices, django_capture_on_commit_callbacks
):
    services.behaviour_refresh(on=TODAY - dt.timedelta(days=3), customer_ids=[customer.pk])
    assert PaymentBehaviour.objects.get(customer=customer).open_amount == Decimal("1200.00")
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(payment_url(customer), form(invoices, received_on="2025-08-01"))

    behaviour = PaymentBehaviour.objects.get(customer=customer)
    assert (behaviour.computed_on, behaviour.open_amount) == (TODAY, Decimal("300.00"))
