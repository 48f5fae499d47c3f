"""The account page's Payments card: what came in, when, how, against which
invoices, and which payments the bank took back; "Reverse…" on each one that
stands, for whoever may record payments."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from ar_collections import workspace
from ar_collections.dunning import ladders
from ar_collections.models import PaymentMethod, ReversalReason
from ar_collections.workspace_views import PAYMENTS_SHOWN

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def page_url(customer) -> str:
    return reverse("customers:detail", args=[customer.pk])


def reverse_url(customer, payment) -> str:
    return reverse("collections:payment_reverse", args=[customer.pk]) + f"?payment={payment.pk}"


def pay(customer, actor, parts, *, amount=None, received_on=TODAY, reference="BANK-1", bank_reference="",
        method=PaymentMethod.BANK_TRANSFER):
    total = Decimal(amount) if amount else sum((Decimal(p) for _, p in parts), Decimal("0"))
    return workspace.payment_record(
        customer=customer, actor=actor, amount=total, currency="EUR", received_on=received_on,
        allocations=[(invoice, Decimal(part)) for invoice, part in parts], reference=reference,
        bank_reference=bank_reference, method=method,
    )


@pytest.fixture
def invoices(customer, make_invoice):
    """INV-1 EUR 500.00 due 1 Jul, INV-2 EUR 700.00 due 15 Jul."""
    return [
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number)
        for number, due, amount in [("INV-1", dt.date(2025, 7, 1), "500.00"),
                                    ("INV-2", dt.date(2025, 7, 15), "700.00")]
    ]


def card(response) -> str:
    """The Payments card's text, tags out and spaces squeezed."""
    html = response.content.decode()
    found = re.search(r'<section id="payments".*?</section>', html, re.S)
    assert found, "no Payments card on the page"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(0)).split())


def rows(response) -> list[str]:
    html = re.search(r'<section id="payments".*?</section>', response.content.decode(), re.S).group(0)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split())
            for row in re.findall(r'<tr id="payment-\d+".*?</tr>', html, re.S)]


def test_each_payment_says_when_how_much_how_and_what_it_paid_newest_first(
    client, collector, customer, invoices, manager
):
    pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 7, 20), reference="INV-1",
        bank_reference="2025072000017")
    pay(customer, manager, [(invoices[1], "300.00")], amount="350.00", received_on=dt.date(2025, 8, 2),
        reference="CHQ 4711", method=PaymentMethod.CHEQUE)
    client.force_login(collector)

    response = client.get(page_url(customer))

    assert rows(response) == [
        "2 Aug 2025 EUR 350.00 EUR Cheque CHQ 4711 INV-2 EUR 300.00; EUR 50.00 left on account",
        "20 Jul 2025 EUR 500.00 EUR Bank transfer INV-1 bank id 2025072000017 INV-1 EUR 500.00",
    ]


def test_a_reversed_payment_says_when_why_and_by_whom_and_what_it_had_paid(
    client, collector, customer, invoices, manager
):
    manager.first_name, manager.last_name = "Maria", "Manager"
    manager.save()
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1),
                  bank_reference="BANK-4000")
    workspace.payment_reverse(payment=payment, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE,
                              note="R01", on=TODAY)
    client.force_login(collector)

    response = client.get(page_url(customer))

    assert rows(response) == [
        "1 Aug 2025 EUR 500.00 EUR Bank transfer BANK-1 bank id BANK-4000 INV-1 EUR 500.00 "
        "Reversed on 5 Aug 2025 (cheque bounced: R01), by Maria Manager",
    ]


@pytest.mark.parametrize("reversed_", [False, True], ids=["standing", "reversed"])
def test_money_set_against_an_invoice_in_two_goes_shows_the_invoice_once_with_all_it_paid(
    client, collector, customer, invoices, manager, reversed_
):
    money = pay(customer, manager, [], amount="600.00", received_on=dt.date(2025, 7, 10))
    for amount, on in [("200.00", dt.date(2025, 8, 1)), ("300.00", TODAY)]:
        workspace.credit_apply(customer=customer, actor=manager, credit=money, invoices=[invoices[0]],
                               amount=Decimal(amount), on=on)
    if reversed_:
        workspace.payment_reverse(payment=money, actor=manager, reason=ReversalReason.BOUNCED_CHEQUE,
                                  note="R01", on=TODAY)
    client.force_login(collector)

    [row] = rows(client.get(page_url(customer)))

    assert row.startswith("10 Jul 2025 EUR 600.00 EUR Bank transfer BANK-1 INV-1 EUR 500.00; "
                          "EUR 100.00 left on account")


def test_an_account_without_payments_says_so(client, collector, customer):
    client.force_login(collector)

    assert "No payments recorded." in card(client.get(page_url(customer)))


def test_who_may_record_payments_gets_a_reverse_link_on_each_payment_that_stands(
    client, manager, customer, invoices
):
    kept = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1))
    taken_back = pay(customer, manager, [(invoices[1], "100.00")], reference="BANK-2")
    workspace.payment_reverse(payment=taken_back, actor=manager, reason=ReversalReason.RETURNED_DIRECT_DEBIT,
                              on=TODAY)
    client.force_login(manager)

    html = client.get(page_url(customer)).content.decode()

    link = reverse_url(customer, kept)
    assert f'href="{link}" hx-get="{link}" hx-target="#action-panel"' in html
    assert f'href="{reverse_url(customer, taken_back)}"' not in html
    assert html.count(">Reverse…<") == 1


@pytest.mark.parametrize("who", ["collector", "viewer"])
def test_who_may_not_record_payments_sees_them_but_no_reverse_link(client, request, who, customer, invoices,
                                                                   manager):
    payment = pay(customer, manager, [(invoices[0], "500.00")])
    client.force_login(request.getfixturevalue(who))

    response = client.get(page_url(customer))

    assert rows(response)[0].startswith("5 Aug 2025 EUR 500.00")
    assert reverse_url(customer, payment) not in response.content.decode()
    assert "Reverse…" not in response.content.decode()


def test_a_payment_too_old_to_reverse_has_no_reverse_link(client, manager, customer, make_invoice):
    old = make_invoice(customer, issued=dt.date(2023, 1, 1), due=dt.date(2023, 1, 31), amount="100.00",
                       number="INV-OLD")
    payment = pay(customer, manager, [(old, "100.00")], received_on=dt.date(2023, 2, 1))
    client.force_login(manager)

    response = client.get(page_url(customer))

    assert rows(response)[0].startswith("1 Feb 2023 EUR 100.00")
    assert reverse_url(customer, payment) not in response.content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_the_reverse_link_opens_the_panel_with_that_payment_chosen_and_the_keyboard_on_why(
    client, manager, customer, invoices, headers
):
    pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1))
    chosen = pay(customer, manager, [(invoices[1], "100.00")], reference="BANK-2")
    client.force_login(manager)

    html = client.get(reverse_url(customer, chosen), headers=headers).content.decode()

    assert re.search(rf'<option value="{chosen.pk}" selected>', html)
    assert html.count(" selected>") == 1
    autofocused = re.findall(r'<(?:input|select|textarea)[^>]*autofocus[^>]*>', html)
    assert len(autofocused) == 1 and 'name="reason"' in autofocused[0]


@pytest.mark.parametrize("chosen", ["999999", "x", ""])
def test_a_reverse_link_to_a_payment_not_offered_opens_the_panel_with_none_chosen(
    client, manager, customer, invoices, chosen
):
    pay(customer, manager, [(invoices[0], "500.00")])
    client.force_login(manager)

    url = reverse("collections:payment_reverse", args=[customer.pk]) + f"?payment={chosen}"
    response = client.get(url, headers=HTMX)

    assert response.status_code == 200
    assert " selected>" not in response.content.decode().replace('value="" selected>', "")


def test_the_newest_payments_are_listed_and_the_timeline_has_the_older_ones(
    client, collector, customer, manager, make_invoice
):
    for n in range(PAYMENTS_SHOWN + 2):
        pay(customer, manager, [], amount="10.00", received_on=TODAY - dt.timedelta(days=n),
            reference=f"BANK-{n}")
    client.force_login(collector)

    response = client.get(page_url(customer))

    shown = rows(response)
    assert len(shown) == PAYMENTS_SHOWN
    assert shown[0].startswith("5 Aug 2025") and shown[-1].startswith(
        f"{(TODAY - dt.timedelta(days=PAYMENTS_SHOWN - 1)).day} Jul 2025")
    text = card(response)
    assert f"The newest {PAYMENTS_SHOWN} are shown; the timeline has every one." in text
    assert '?kind=payment_received#timeline' in response.content.decode()


def test_a_few_payments_carry_no_link_to_older_ones(client, collector, customer, invoices, manager):
    pay(customer, manager, [(invoices[0], "500.00")])
    client.force_login(collector)

    response = client.get(page_url(customer))

    assert "The newest" not in card(response)


def test_a_reversal_redraws_the_payments_card_in_place(client, manager, customer, invoices):
    payment = pay(customer, manager, [(invoices[0], "500.00")], received_on=dt.date(2025, 8, 1))
    client.force_login(manager)
    form = {"payment": payment.pk, "reason": "recalled", "note": "", "reversed_on": "2025-08-05",
            "confirmed": payment.pk}

    response = client.post(reverse("collections:payment_reverse", args=[customer.pk]), form, headers=HTMX)

    html = response.content.decode()
    assert '<section id="payments" class="card" aria-labelledby="payments-title" hx-swap-oob="true"' in html
    assert "Reversed on 5 Aug 2025 (recalled, or booked to the wrong account), by maria" in card(response)


@pytest.mark.parametrize("payments", [2, 20])
def test_the_card_s_queries_do_not_grow_with_its_payments(
    client, manager, customer, make_invoice, django_assert_num_queries,
    payments,
):
    for n in range(payments):
        invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="100.00",
                               number=f"INV-{n}")
        payment = pay(customer, manager, [(invoice, "60.00")], amount="70.00", reference=f"BANK-{n}",
                      bank_reference=f"B{n}")
        if n % 2:
            workspace.payment_reverse(payment=payment, actor=manager, reason=ReversalReason.OTHER,
                                      note="Returned", on=TODAY)
    client.force_login(manager)

    # The page's queries (see tests/customers/test_views_account.py), of which
    # the card's two: the newest payments with their reversals and who
    # reversed them, and their allocations with their invoices (34: the open
    # cycle, the pauses and the open invoices read once for the whole page;
    # 33 with the ladders kept from an earlier page, their stamp read in their place:
    # the preview asks whether a request waiting for a manager holds the step, and
    # the account's open work items are read with whom each is).
    ladders()
    with django_assert_num_queries(33):
        response = client.get(page_url(customer))

    assert len(rows(response)) == min(payments, PAYMENTS_SHOWN)
