"""The account page: card, contacts, open invoices and payment behaviour."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import User
from django.urls import reverse

from ar_collections import numbers, workspace
from ar_collections.dunning import ladders
from ar_collections.models import (
    CreditNote,
    DisputeReason,
    DunningAction,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    PauseKind,
    Payment,
    PaymentBehaviour,
)
from ar_collections.services import behaviour_refresh
from customers.models import (
    ContactAbsence,
    ContactRole,
    Industry,
    InvoiceDelivery,
    Language,
    ReminderChannel,
    Segment,
    TermsType,
)

TODAY = dt.date(2025, 8, 5)
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def _frozen_today():
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def url(customer) -> str:
    return reverse("customers:detail", args=[customer.pk])


def test_anonymous_visitors_are_sent_to_the_login_page(client, customer):
    response = client.get(url(customer))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_user_without_a_role_is_refused(client, customer):
    client.force_login(User.objects.create_user("nobody"))

    assert client.get(url(customer)).status_code == 403


@pytest.mark.parametrize("reader", ["viewer", "collector", "other_collector", "manager"])
def test_every_role_may_read_every_account(client, customer, request, reader):
    client.force_login(request.getfixturevalue(reader))

    assert client.get(url(customer)).status_code == 200


def test_an_unknown_customer_is_not_found(client, collector):
    client.force_login(collector)

    assert client.get(reverse("customers:detail", args=[999999])).status_code == 404


def test_the_card_shows_what_we_know_about_the_customer(
    client, collector, manager, make_customer
):
    manager.first_name, manager.last_name = "Maria", "Moss"
    manager.save()
    referrer = make_customer(name="Old Friend AG")
    acme = make_customer(
        name="Acme Tools",
        industry=Industry.MANUFACTURING,
        business_description="Makes hand tools for the trade.",
        buying_reasons=["price", "next-day delivery", "our service desk"],
        customer_since=dt.date(2015, 8, 5),
        relationship_owner=manager,
        special_bond="Pays us first because we helped them in 2020",
        referred_by=referrer,
        currency="EUR",
        credit_limit_amount=Decimal("25000.00"),
        terms_type=TermsType.STANDARD,
        payment_terms_days=45,
        on_credit_hold=True,
        ap_run_days=[15, 30],
        ordering_rhythm="Orders at the start of every month",
        notes="Ask for Jana.",
        segment=Segment.SPECIAL_BOND,
        segment_reason="Helped through the 2020 crisis.",
    )
    make_customer(name="Newcomer SA", referred_by=acme)
    client.force_login(collector)

    html = client.get(url(acme)).content.decode()

    for text in [
        "Manufacturing", "Makes hand tools for the trade.",
        "<li>next-day delivery</li>", "5 Aug 2015", "(10.0 years)", "carla", "Maria Moss",
        "Pays us first because we helped them in 2020", "Old Friend AG", "Newcomer SA",
        "EUR 25,000.00", "Standard terms, 45 days", "On hold", "15, 30 of the month",
        "Orders at the start of every month", "Ask for Jana.", "Special bond",
        "Helped through the 2020 crisis.",
    ]:
        assert text in html, text


def test_contacts_show_their_preferences(client, collector, customer, make_contact):
    make_contact(
        customer, name="Jana Novak", role=ContactRole.AP, email="jana@acme.example",
        phone="+49 30 1234", language=Language.DE, invoice_delivery=InvoiceDelivery.E_INVOICE,
        reminder_channel=ReminderChannel.PHONE, best_time_to_call="Tue–Thu mornings",
        is_primary_billing=True,
    )
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    for text in [
        "Jana Novak", "Accounts payable / billing", "jana@acme.example", "+49 30 1234",
        "German", "E-invoice", "Reminders by</dt>\n                <dd>Phone",
        "Tue–Thu mornings", "Primary billing",
    ]:
        assert text in html, text


def test_an_absent_billing_contact_hands_today_over_to_the_stand_in(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak", is_primary_billing=True)
    bob = make_contact(customer, name="Bob Stand-in", email="bob@acme.example")
    boss = make_contact(customer, name="Petra Boss", role=ContactRole.PRINCIPAL)
    ContactAbsence.objects.create(
        contact=jana, starts_on=dt.date(2025, 8, 1), ends_on=dt.date(2025, 8, 15), delegate=bob,
        note="summer holiday",
    )
    ContactAbsence.objects.create(
        contact=boss, starts_on=dt.date(2025, 9, 1), ends_on=dt.date(2025, 9, 3)
    )
    ContactAbsence.objects.create(
        contact=bob, starts_on=dt.date(2025, 7, 1), ends_on=dt.date(2025, 7, 2), note="long gone"
    )
    client.force_login(collector)

    response = client.get(url(customer))

    html = response.content.decode()
    assert response.context["billing_contact"] == bob
    assert response.context["principal_contact"] == boss
    assert "Away today" in html
    assert "write to Bob Stand-in instead" in html
    assert "summer holiday" in html
    assert "1 Sep 2025 – 3 Sep 2025" in html
    assert "long gone" not in html


def test_a_billing_contact_and_principal_whose_stand_ins_are_away_too_are_not_shown_as_written_to(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak", is_primary_billing=True)
    bob = make_contact(customer, name="Bob Stand-in", email="bob@acme.example")
    boss = make_contact(customer, name="Petra Boss", role=ContactRole.PRINCIPAL)
    ContactAbsence.objects.create(contact=jana, starts_on=dt.date(2025, 8, 1), ends_on=dt.date(2025, 8, 15),
                                  delegate=bob)
    ContactAbsence.objects.create(contact=boss, starts_on=dt.date(2025, 8, 4), ends_on=dt.date(2025, 8, 8),
                                  delegate=bob)
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2025, 8, 5), ends_on=dt.date(2025, 8, 6))
    client.force_login(collector)

    response = client.get(url(customer))

    html = " ".join(response.content.decode().split())
    assert response.context["billing_contact"] is None and response.context["principal_contact"] is None
    assert ("Nobody today: Jana Novak away until 15 Aug 2025, and Bob Stand-in, written to instead, away "
            "until 6 Aug 2025.") in html
    assert ("Nobody today: Jana Novak away until 15 Aug 2025, and Bob Stand-in, written to instead, away "
            "until 6 Aug 2025. Reminders become call tasks for the collector.") in html
    # The billing contact is nobody today as well: as the send does, an escalation becomes a call task.
    assert ("Nobody today: Petra Boss away until 8 Aug 2025, and Bob Stand-in, written to instead, away "
            "until 6 Aug 2025. Escalations become call tasks for the collector.") in html
    assert "No billing contact" not in html and "No principal" not in html


def test_a_principal_nobody_stands_in_for_today_hands_escalations_to_the_billing_contact_in_today(
    client, collector, customer, make_contact
):
    make_contact(customer, name="Jana Novak", is_primary_billing=True)
    boss = make_contact(customer, name="Petra Boss", role=ContactRole.PRINCIPAL)
    bob = make_contact(customer, name="Bob Stand-in", email="bob@acme.example")
    ContactAbsence.objects.create(contact=boss, starts_on=dt.date(2025, 8, 4), ends_on=dt.date(2025, 8, 8),
                                  delegate=bob)
    ContactAbsence.objects.create(contact=bob, starts_on=dt.date(2025, 8, 5), ends_on=dt.date(2025, 8, 6))
    client.force_login(collector)

    html = " ".join(client.get(url(customer)).content.decode().split())

    assert ("Nobody today: Petra Boss away until 8 Aug 2025, and Bob Stand-in, written to instead, away "
            "until 6 Aug 2025. Escalations go to the billing contact.") in html


def test_each_absence_s_remove_button_names_the_contact_and_the_days_with_their_years(
    client, collector, customer, make_contact
):
    jana = make_contact(customer, name="Jana Novak")
    bob = make_contact(customer, name="Bob Stand-in")
    for contact in (jana, bob):
        ContactAbsence.objects.create(contact=contact, starts_on=dt.date(2025, 12, 29),
                                      ends_on=dt.date(2026, 1, 2))
    ContactAbsence.objects.create(contact=jana, starts_on=dt.date(2026, 12, 29), ends_on=dt.date(2027, 1, 2))
    client.force_login(collector)

    html = " ".join(client.get(url(customer)).content.decode().split())
    labels = re.findall(r'<button type="submit" class="link-button">'
                        r'(Remove<span class="visually-hidden">[^<]*)</span></button>', html)

    assert sorted(label.replace('<span class="visually-hidden">', "") for label in labels) == [
        "Remove absence of Bob Stand-in, 29 Dec 2025 – 2 Jan 2026",
        "Remove absence of Jana Novak, 29 Dec 2025 – 2 Jan 2026",
        "Remove absence of Jana Novak, 29 Dec 2026 – 2 Jan 2027",
    ]


def test_a_customer_without_contacts_says_so(client, collector, customer):
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    assert "No billing contact" in html
    assert "No contacts yet." in html


def test_open_invoices_are_listed_with_days_overdue_and_aging(
    client, collector, customer, make_invoice
):
    make_invoice(
        customer, number="INV-OLD", issued=dt.date(2025, 3, 1), due=dt.date(2025, 4, 1),
        amount="300.00", po_reference="PO-77",
    )
    make_invoice(customer, number="INV-MID", issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                 amount="200.00")
    make_invoice(customer, number="INV-NEW", issued=dt.date(2025, 8, 1), due=dt.date(2025, 8, 31),
                 amount="100.00")
    make_invoice(customer, number="INV-USD", issued=dt.date(2025, 7, 1), due=dt.date(2025, 7, 31),
                 amount="50.00", currency="USD")
    make_invoice(customer, number="INV-PAID", issued=dt.date(2025, 1, 1), amount="999.00",
                 paid_on=dt.date(2025, 2, 1))
    client.force_login(collector)

    response = client.get(url(customer))

    html = response.content.decode()
    assert [i.number for i in response.context["invoices"]] == [
        "INV-OLD", "INV-MID", "INV-USD", "INV-NEW",
    ]
    # Paid, it is not among the open ones (the Payments card names it, as what its payment paid).
    assert "INV-PAID" not in re.search(r'<section id="open-invoices".*?</section>', html, re.S).group(0)
    assert "PO-77" in html
    assert [i.days_overdue for i in response.context["invoices"]] == [126, 35, 5, 0]
    assert response.context["invoice_aging"] == [
        ("Not yet due", Decimal("100.00")),
        ("1–30", Decimal("0.00")),
        ("31–60", Decimal("200.00")),
        ("61–90", Decimal("0.00")),
        ("90+", Decimal("300.00")),
        ("Under open dispute", Decimal("0.00")),
    ]
    assert response.context["open_total"] == Decimal("600.00")
    assert "USD 50.00" in html
    # The invoice in dollars has an aging of its own, never added to the euros'.
    assert [currency for currency, _ in response.context["invoice_agings"]] == ["EUR", "USD"]
    assert "In EUR" in html and "In USD" in html
    assert 'class="aging-bar" role="img"' in html


def test_the_open_invoices_aging_is_drawn_once_in_the_header_not_again_in_their_card(
    client, collector, customer, make_invoice
):
    """The header's aging is the open invoices' own: drawn again over their
    table, a collector read the same bar twice on one screen."""
    make_invoice(customer, issued=dt.date(2025, 3, 1), due=dt.date(2025, 4, 1), amount="300.00")
    make_invoice(customer, issued=dt.date(2025, 7, 1), due=dt.date(2025, 7, 31), amount="50.00",
                 currency="USD")
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    header = re.search(r'<section id="account-header".*?</section>', html, re.S).group(0)
    card = re.search(r'<section id="open-invoices".*?</section>', html, re.S).group(0)
    # Not computed yet: the payment behaviour card draws no aging of its own.
    assert html.count('class="aging-bar"') == 2  # one a currency
    assert header.count('class="aging-bar"') == 2
    assert "In EUR" in header and "In USD" in header
    assert "aging" not in card.lower()
    assert "INV-" in card


def test_the_aging_keeps_what_is_under_open_dispute_apart_as_the_aged_trial_balance_does(
    client, collector, manager, customer, make_invoice
):
    # INV-DSP, 35 days late, is disputed for 400 of its 1,000: the 600 left is owed and
    # late, the 400 is held back. The aged trial balance has the account's row so (31–60
    # days late 600, under open dispute 400), and so does the account's own aging.
    make_invoice(customer, number="INV-OLD", issued=dt.date(2025, 3, 1), due=dt.date(2025, 4, 1),
                 amount="300.00")
    disputed = make_invoice(customer, number="INV-DSP", issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                            amount="1000.00")
    workspace.dispute_open(customer=customer, actor=manager, invoice=disputed, reason=DisputeReason.PRICE,
                           description="Price not as quoted", on=TODAY, amount=Decimal("400.00"))
    client.force_login(collector)

    response = client.get(url(customer))

    assert response.context["invoice_aging"] == [
        ("Not yet due", Decimal("0.00")),
        ("1–30", Decimal("0.00")),
        ("31–60", Decimal("600.00")),
        ("61–90", Decimal("0.00")),
        ("90+", Decimal("300.00")),
        ("Under open dispute", Decimal("400.00")),
    ]
    assert "Under open dispute: EUR 400.00" in response.content.decode()
    [row] = numbers.aged_accounts(numbers.aged_balances(numbers.Scope(), today=TODAY, on=None))
    assert row.buckets == [amount for _, amount in response.context["invoice_aging"]]


def header_of(response) -> str:
    return re.search(r'id="account-header".*?</section>', response.content.decode(), re.S).group(0)


def test_the_header_shows_other_currencies_beside_the_account_s_own(
    client, collector, customer, make_invoice
):
    make_invoice(customer, number="INV-USD", issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1),
                 amount="5000.00", currency="USD")
    client.force_login(collector)

    header = header_of(client.get(url(customer)))

    # Nothing open in euros: no "EUR 0.00" beside (or instead of) the dollars owed.
    assert 'data-figure="overdue" class="overdue">USD 5,000.00<' in header
    assert 'data-figure="open">USD 5,000.00<' in header


def test_an_account_in_yen_shows_whole_yen(client, collector, make_customer, make_invoice):
    account = make_customer(name="Tokyo Parts", currency="JPY")
    make_invoice(account, number="INV-JP", issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1), amount="6000")
    client.force_login(collector)

    response = client.get(url(account))

    html = response.content.decode()
    assert 'data-figure="overdue" class="overdue">JPY 6,000<' in header_of(response)
    # The invoice's row in the Open invoices table: its number, then its amount.
    row = html.split('id="open-invoices"')[1].split("</tr>", 2)[1]
    assert "INV-JP" in row and "JPY 6,000" in row
    assert "6,000.00" not in html


def test_credits_and_money_on_account_are_shown_where_the_collector_looks(
    client, collector, customer, make_invoice
):
    make_invoice(customer, number="INV-1", issued=dt.date(2025, 5, 1), due=dt.date(2025, 6, 1),
                 amount="1000.00")
    Payment.objects.create(customer=customer, received_on=dt.date(2025, 7, 1), currency="EUR",
                           amount=Decimal("400.00"), reference="BANK-77")
    CreditNote.objects.create(number="CN-9", customer=customer, issued_on=dt.date(2025, 7, 2),
                              currency="EUR", amount=Decimal("100.00"))
    client.force_login(collector)

    response = client.get(url(customer))

    assert 'data-figure="credits">EUR 500.00<' in header_of(response)
    html = response.content.decode()
    assert "Payment BANK-77 on account" in html and "EUR 400.00" in html
    assert "Credit note CN-9" in html and "EUR 100.00" in html


def test_years_of_money_on_account_show_as_totals_and_the_newest_few(client, collector, customer):
    for n in range(1, 31):
        Payment.objects.create(customer=customer, received_on=dt.date(2025, 7, 1) + dt.timedelta(days=n % 28),
                               currency="EUR", amount=Decimal("10.00"), reference=f"BANK-{n:02d}")
    client.force_login(collector)

    response = client.get(url(customer))

    assert 'data-figure="credits">EUR 300.00<' in header_of(response)
    assert len(response.context["credits"]) == 10
    assert "The newest 10 are shown; 20 older ones are in the totals above." in response.content.decode()


def test_the_behaviour_block_shows_how_the_customer_pays(client, collector, customer):
    PaymentBehaviour.objects.create(
        customer=customer,
        computed_on=dt.date(2025, 8, 4),
        invoices_settled=20,
        invoices_settled_late=5,
        avg_days_late=Decimal("6.40"),
        weighted_days_late=Decimal("9.25"),
        share_paid_late=Decimal("0.2500"),
        avg_days_late_90d=Decimal("12.00"),
        avg_days_late_365d=Decimal("7.50"),
        open_amount=Decimal("1500.00"),
        overdue_amount=Decimal("600.00"),
        overdue_invoices=2,
        open_invoices=4,
        max_days_overdue=41,
        aging_current_amount=Decimal("900.00"),
        aging_1_30_amount=Decimal("200.00"),
        aging_31_60_amount=Decimal("400.00"),
    )
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    for text in [
        "<dd>6.4</dd>", "<dd>9.3</dd>", "25 %", "(5 of 20)", "+4.5 days", "paying slower",
        "EUR 1,500.00", "EUR 600.00", ">41<", "EUR 900.00", "EUR 400.00",
        "Computed on 4 Aug 2025",
    ]:
        assert text in html, text
    assert "Not computed yet" not in html


def test_the_behaviour_block_counts_the_invoices_its_amounts_add_up(
    client, collector, customer, make_invoice
):
    """The counts beside the account's own-currency amounts count the same
    invoices; one in another currency is said beside them in its own, not
    counted in."""
    make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="400.00")
    make_invoice(customer, issued=dt.date(2025, 7, 20), due=dt.date(2025, 8, 20), amount="100.00")
    make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="999.00",
                 currency="USD")
    behaviour_refresh(on=TODAY)
    client.force_login(collector)

    html = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", client.get(url(customer)).content.decode()))

    assert "Open EUR 500.00 (2 invoices) + USD 999.00 (1 invoice)" in html
    assert "Overdue EUR 400.00 (1 invoice) + USD 999.00 (1 invoice)" in html
    assert "The aging of the 1 open invoice in other currencies is at the top of the page" in html


def test_figures_computed_before_today_say_as_of_which_day(client, collector, customer):
    """So a collector does not take yesterday's figures for today's."""
    PaymentBehaviour.objects.create(customer=customer, computed_on=dt.date(2025, 8, 2),
                                    open_amount=Decimal("1500.00"), overdue_amount=Decimal("600.00"))
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    heading = re.search(r'<h2 id="behaviour-title">(.*?)</h2>', html, re.S).group(1)
    assert re.sub(r"<[^>]+>|\s+", " ", heading).split() == ["Payment", "behaviour", "(as", "of", "2", "Aug",
                                                             "2025)"]


def test_figures_computed_today_carry_no_day(client, collector, customer):
    PaymentBehaviour.objects.create(customer=customer, computed_on=TODAY, open_amount=Decimal("1500.00"),
                                    overdue_amount=Decimal("600.00"))
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    assert re.search(r'<h2 id="behaviour-title">\s*Payment behaviour\s*</h2>', html)
    assert "(as of" not in html


def test_a_customer_without_behaviour_says_it_is_not_computed_yet(client, collector, customer):
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    assert "Not computed yet." in html


def test_the_owning_collector_sees_the_edit_controls(client, collector, customer, make_contact):
    make_contact(customer)
    client.force_login(collector)

    html = client.get(url(customer)).content.decode()

    assert reverse("customers:edit", args=[customer.pk]) in html
    assert reverse("customers:contact_add", args=[customer.pk]) in html
    assert "Delete<span" in html


@pytest.mark.parametrize("reader", ["viewer", "other_collector"])
def test_people_who_may_not_change_the_account_see_no_edit_controls(
    client, customer, make_contact, request, reader
):
    make_contact(customer)
    client.force_login(request.getfixturevalue(reader))

    html = client.get(url(customer)).content.decode()

    assert reverse("customers:edit", args=[customer.pk]) not in html
    assert reverse("customers:contact_add", args=[customer.pk]) not in html
    assert "Delete<span" not in html


def test_a_manager_sees_the_edit_controls_on_any_account(client, manager, customer):
    client.force_login(manager)

    html = client.get(url(customer)).content.decode()

    assert reverse("customers:edit", args=[customer.pk]) in html


@pytest.mark.parametrize("section", ["account-card", "contacts"])
def test_htmx_can_ask_for_one_section(client, collector, customer, section):
    client.force_login(collector)

    response = client.get(url(customer), headers={"HX-Request": "true", "HX-Target": section})

    html = response.content.decode()
    assert html.lstrip().startswith(f'<section id="{section}"')
    assert "<html" not in html
    assert "HX-Target" in response["Vary"]


def test_a_section_asked_for_directly_still_needs_a_role(client, customer):
    client.force_login(User.objects.create_user("nobody"))

    response = client.get(
        url(customer), headers={"HX-Request": "true", "HX-Target": "contacts"}
    )

    assert response.status_code == 403


@pytest.mark.parametrize("rows", [2, 20])
def test_the_number_of_queries_does_not_grow_with_invoices_or_contacts(
    client, collector, make_customer, make_contact, make_invoice, django_assert_num_queries,
    rows,
):
    customer = make_customer()
    for n in range(5):
        make_customer(referred_by=customer, name=f"Referral {n}")
    PaymentBehaviour.objects.create(customer=customer, computed_on=TODAY)
    contacts = [make_contact(customer, is_primary_billing=(n == 0)) for n in range(rows)]
    make_contact(customer, role=ContactRole.PRINCIPAL)
    for n, contact in enumerate(contacts):
        # A chain of stand-ins: every contact is away and hands over to the next one.
        ContactAbsence.objects.create(
            contact=contact, starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=3),
            delegate=contacts[(n + 1) % rows],
        )
        invoice = make_invoice(customer, issued=dt.date(2025, 1, 1) + dt.timedelta(days=n))
        # A payment on every invoice, every other one reversed: the Payments card.
        payment = workspace.payment_record(
            customer=customer, amount=Decimal("10.00"), currency=invoice.currency, received_on=TODAY,
            allocations=[(invoice, Decimal("10.00"))], reference=f"BANK-{n}", bank_reference=f"B-{n}",
        )
        if n % 2:
            workspace.payment_reverse(payment=payment, actor=collector, reason="other", note="Returned",
                                      on=TODAY)
    # Dunning history: a closed cycle with a step for every row, an open cycle,
    # and a pause on every invoice.
    run = DunningRun.objects.create(run_date=TODAY)
    step = DunningStep.objects.get(policy__segment="prompt", position=1)
    for n, invoice in enumerate(customer.invoices.all(), start=1):
        cycle = DunningCycle.objects.create(
            customer=customer, number=n, opened_on=TODAY, closed_on=TODAY
        )
        DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, planned_on=TODAY, pay_by=TODAY
        )
        DunningPause.objects.create(
            customer=customer, invoice=invoice, kind=PauseKind.PROMISE, reason="Promised",
            owner=collector, starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=7),
        )
    DunningCycle.objects.create(customer=customer, number=rows + 1, opened_on=TODAY)
    # Exception requests: one waiting, and one lapsed undecided for every row.
    for n in range(rows + 1):
        ExceptionRequest.objects.create(
            customer=customer, kind=ExceptionKind.PAUSE, reason="Asked", requested_by=collector,
            requested_on=TODAY - dt.timedelta(days=25),
            pause_until=TODAY - dt.timedelta(days=n) if n else TODAY + dt.timedelta(days=9),
            status=ExceptionStatus.LAPSED if n else ExceptionStatus.PENDING,
        )
    client.force_login(collector)

    # session, user, role groups, permissions (2), customer, referrals, its
    # last order days (the ordering rhythm), contacts, absences, open invoices,
    # charges owed, credit notes and payments left to apply (the newest, and
    # the totals), write-offs, the newest payments with their reversals and
    # their allocations (2); the ladders' stamp (the ladders themselves were
    # read by the page before, and are kept while it stands), the open
    # dunning cycle and the pauses in force, read once for the Dunning card and
    # the preview; last dunning steps; the timeline page; the preview's last
    # contact; open promises, plans (their invoices and instalments when there
    # is one), disputes, exception requests; and, every invoice being held until
    # a day, the preview again for the day after the earliest hold ends (6: it
    # says when dunning starts again, and whether a request waiting for a
    # manager holds the step then; the open invoices are today's); the
    # account's open work items, with whom each is and who handed it over
    ladders()
    with django_assert_num_queries(35):
        response = client.get(url(customer))

    assert len(response.context["invoices"]) == rows
    assert len(response.context["contacts"]) == rows + 1
    assert len(response.context["dunning_pauses"]) == rows
    assert len(response.context["dunning_actions"]) == min(rows, 5)
    assert len(response.context["exceptions_asked"]) == rows + 1
