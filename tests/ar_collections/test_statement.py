"""A statement of account on demand: everything open on the account today,
as a PDF to download or e-mailed to the billing contact of the day. Read back
with pdftotext, and from what a real mail server received."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.html import strip_tags

from ar_collections import rendering, workspace
from ar_collections.models import (
    ActionStatus,
    ChargeKind,
    CreditNote,
    Dispute,
    DisputeReason,
    DunningAction,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    LateCharge,
    MailPurpose,
    OutgoingMail,
    Payment,
    TimelineEventInvoice,
    Tone,
)
from customers.models import CollectorAbsence, ContactAbsence, TimelineEvent

from .conftest import frozen, sent_once

TODAY = dt.date(2026, 4, 20)
HTMX = {"HX-Request": "true"}


def one_line(text: str) -> str:
    """pdftotext's layout spaces columns apart: one space between words is enough to read."""
    return re.sub(r"\s+", " ", text)


def amount(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


@pytest.fixture
def account(make_customer, make_contact, make_invoice, collector):
    """Bäckerei Müller, billed in euros and once in dollars. In euros: one
    invoice not yet due, and one in each aging bucket (one part paid, one
    disputed in part), a late fee still owed and a credit note not yet set
    against an invoice; in dollars: one invoice and a payment kept on account."""
    customer = make_customer(name="Bäckerei Müller", legal_name="Bäckerei Müller GmbH", currency="EUR")
    make_contact(customer, name="Petra Hoffmann", email="ap@baeckerei-mueller.test", is_primary_billing=True,
                 postal_address="Bäckerei Müller GmbH\nKreditorenbuchhaltung\nHauptstraße 5\n50667 Köln")
    make_invoice(customer, number="S-1", issued=dt.date(2026, 4, 10), due=dt.date(2026, 5, 10),
                 amount="500.00")
    part_paid = make_invoice(customer, number="S-2", issued=dt.date(2026, 3, 6), due=dt.date(2026, 4, 5),
                             amount="300.00")
    disputed = make_invoice(customer, number="S-3", issued=dt.date(2026, 2, 1), due=dt.date(2026, 3, 1),
                            amount="400.00")
    make_invoice(customer, number="S-4", issued=dt.date(2026, 1, 5), due=dt.date(2026, 2, 4), amount="250.00")
    make_invoice(customer, number="S-5", issued=dt.date(2025, 11, 1), due=dt.date(2025, 12, 1),
                 amount="1000.00")
    make_invoice(customer, number="U-1", issued=dt.date(2026, 2, 28), due=dt.date(2026, 3, 30),
                 amount="120.00", currency="USD")
    make_invoice(customer, number="S-0", issued=dt.date(2026, 1, 2), amount="77.00",
                 paid_on=dt.date(2026, 2, 1))
    with frozen(TODAY):
        workspace.payment_record(customer=customer, amount=Decimal("100.00"), currency="EUR",
                                 received_on=dt.date(2026, 4, 12), reference="Bank 7781", actor=collector,
                                 allocations=[(part_paid, Decimal("100.00"))])
        workspace.dispute_open(customer=customer, actor=collector, invoice=disputed,
                               reason=DisputeReason.OUR_DELIVERY, description="Two trays short", on=TODAY,
                               amount=Decimal("150.00"))
    CreditNote.objects.create(customer=customer, number="CN-9", issued_on=dt.date(2026, 4, 2), currency="EUR",
                              amount=Decimal("60.00"))
    Payment.objects.create(customer=customer, received_on=dt.date(2026, 4, 15), currency="USD",
                           amount=Decimal("20.00"), reference="Wire 55")
    run = DunningRun.objects.create(run_date=dt.date(2026, 4, 1))
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=dt.date(2025, 12, 2))
    reminder = DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer, step=DunningStep.objects.filter(tone=Tone.FIRM).first(),
        status=ActionStatus.DONE, planned_on=dt.date(2026, 4, 1), pay_by=dt.date(2026, 4, 10),
    )
    LateCharge.objects.create(customer=customer, action=reminder, kind=ChargeKind.LATE_FEE, currency="EUR",
                              amount=Decimal("40.00"), open_amount=Decimal("40.00"), basis="step 2")
    return customer


def statement_events(customer):
    return TimelineEvent.objects.filter(customer=customer, summary__startswith="Statement")


def url(name: str, customer) -> str:
    return reverse(f"collections:{name}", args=[customer.pk])


def downloaded(client, user, customer, pdf_text) -> str:
    client.force_login(user)
    with frozen(TODAY):
        response = client.get(url("statement_download", customer))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    return one_line(pdf_text(response.content))


# --- What the statement says -----------------------------------------------------------------


def test_the_statement_lists_every_open_invoice_and_the_totals_and_aging_per_currency_add_up(
    client, collector, account, pdf_text
):
    text = downloaded(client, collector, account, pdf_text)

    assert "Statement of account" in text and "Bäckerei Müller GmbH" in text and "Hauptstraße 5" in text
    assert re.search(rf"Customer number {account.account_number}", text), text
    assert "Date 20 Apr 2026" in text
    for line in [
        "S-1 10 Apr 2026 10 May 2026 not yet due EUR 500.00 EUR 500.00",
        "S-2 6 Mar 2026 5 Apr 2026 15 EUR 300.00 EUR 200.00",
        "S-3 1 Feb 2026 1 Mar 2026 50 EUR 400.00 EUR 400.00",
        "EUR 150.00 of it under dispute",
        "S-4 5 Jan 2026 4 Feb 2026 75 EUR 250.00 EUR 250.00",
        "S-5 1 Nov 2025 1 Dec 2025 140 EUR 1,000.00 EUR 1,000.00",
        "U-1 28 Feb 2026 30 Mar 2026 21 USD 120.00 USD 120.00",
        "CN-9 2 Apr 2026 EUR 60.00",
        "Payment Wire 55 on account 15 Apr 2026 USD 20.00",
        "Late fee (as our terms of payment provide) EUR 40.00",
    ]:
        assert line in text, (line, text)
    assert "S-0" not in text  # paid: nothing open on it

    # The summary: a column per currency, and what is due adds up.
    invoices = re.search(r"Open invoices ([\d,.]+) ([\d,.]+)", text)
    charges = re.search(r"Fees and interest ([\d,.]+) ([\d,.]+)", text)
    credits = re.search(r"Less credits and payments on account ([\d,.]+) ([\d,.]+)", text)
    balance = re.search(r"Balance ([\d,.]+) ([\d,.]+)", text)
    assert [amount(x) for x in invoices.groups()] == [Decimal("2350.00"), Decimal("120.00")], text
    assert [amount(x) for x in charges.groups()] == [Decimal("40.00"), Decimal("0.00")]
    assert [amount(x) for x in credits.groups()] == [Decimal("60.00"), Decimal("20.00")]
    assert [amount(x) for x in balance.groups()] == [Decimal("2330.00"), Decimal("100.00")]
    for column in range(2):
        assert (amount(invoices.group(column + 1)) + amount(charges.group(column + 1))
                - amount(credits.group(column + 1))) == amount(balance.group(column + 1))

    # The aging of the open invoices, a row per currency, adds up to what is open.
    assert "Not yet due 1–30 days 31–60 days 61–90 days Over 90 days Total" in text, text
    aging = text.split("Aging")[-1]
    euros = re.search(r"EUR ([\d,.]+) ([\d,.]+) ([\d,.]+) ([\d,.]+) ([\d,.]+) ([\d,.]+)", aging)
    buckets = [amount(x) for x in euros.groups()]
    assert buckets == [Decimal(x) for x in ("500.00", "200.00", "400.00", "250.00", "1000.00", "2350.00")]
    assert sum(buckets[:5]) == buckets[5] == amount(invoices.group(1))
    dollars = re.search(r"USD ([\d,.]+) ([\d,.]+) ([\d,.]+) ([\d,.]+) ([\d,.]+) ([\d,.]+)", aging)
    assert [amount(x) for x in dollars.groups()] == [Decimal(x) for x in ("0", "120.00", "0", "0", "0",
                                                                            "120.00")]
    # How to pay, and whom to ask.
    assert re.search(r"Please transfer what is due to arcrm Demo GmbH, IBAN .* quoting your customer number "
                     rf"{account.account_number}\.", text), text
    assert "Questions about your account: Carla" in text or "Questions about your account: carla" in text



def figures(label: str, text: str) -> list[Decimal]:
    """The summary row `label`'s two columns (EUR, USD)."""
    found = re.search(rf"{label} ([\d,.]+) ([\d,.]+)", text)
    assert found, (label, text)
    return [amount(x) for x in found.groups()]


def test_to_pay_now_is_what_is_overdue_and_not_disputed_with_what_falls_due_later_apart(
    client, collector, account, pdf_text
):
    """S-3's EUR 150.00 under dispute is still owed on our books, but nobody
    asks the customer to pay it until the dispute is settled; S-1's EUR 500.00
    is owed too, but not before 10 May: neither is asked for now."""
    text = downloaded(client, collector, account, pdf_text)

    assert figures("Balance", text) == [Decimal("2330.00"), Decimal("100.00")]
    assert figures("Falling due later", text) == [Decimal("500.00"), Decimal("0.00")]
    assert figures("Held back while under dispute", text) == [Decimal("150.00"), Decimal("0.00")]
    # The overdue invoices less their disputed part, the fee, less the credits.
    assert figures("To pay now", text) == [Decimal("1680.00"), Decimal("100.00")]
    assert "Credit left on your account" not in text


def test_what_an_agreed_payment_plan_asks_for_later_is_not_asked_for_now(
    client, manager, account, pdf_text
):
    """S-4 and S-5 (EUR 1,250.00, both overdue) are on a plan agreed today:
    EUR 450.00 today, the rest in May and June. The statement asks for today's
    instalment now and says the rest falls due later under the plan, as the
    customer was told when it was agreed, not for all of it at once."""
    s4, s5 = account.invoices.get(number="S-4"), account.invoices.get(number="S-5")
    with frozen(TODAY):
        workspace.plan_propose(
            customer=account, actor=manager, invoices=[s4, s5], on=TODAY,
            instalments=[(TODAY, Decimal("450.00")), (dt.date(2026, 5, 20), Decimal("400.00")),
                         (dt.date(2026, 6, 20), Decimal("400.00"))],
        )

    text = downloaded(client, manager, account, pdf_text)

    # S-1 not yet due, and the plan's two later instalments.
    assert figures("Falling due later", text) == [Decimal("1300.00"), Decimal("0.00")]
    assert figures("To pay now", text) == [Decimal("880.00"), Decimal("100.00")]
    assert figures("Balance", text) == [Decimal("2330.00"), Decimal("100.00")]
    # The plan's later instalments set against its newest invoice first, as
    # its instalments pay the oldest first.
    assert ("S-4 5 Jan 2026 4 Feb 2026 75 EUR 250.00 EUR 250.00 EUR 250.00 of it due later under the "
            "payment plan") in text, text
    assert "S-5 1 Nov 2025 1 Dec 2025 140 EUR 1,000.00 EUR 1,000.00 EUR 550.00 of it due later under the " \
        "payment plan" in text, text


def test_a_statement_without_a_dispute_has_nothing_held_back(client, collector, account, pdf_text):
    DunningPause.objects.filter(dispute__invoice__customer=account).delete()
    Dispute.objects.filter(invoice__customer=account).delete()

    text = downloaded(client, collector, account, pdf_text)

    assert "Held back" not in text
    assert figures("Falling due later", text) == [Decimal("500.00"), Decimal("0.00")]
    assert figures("To pay now", text) == [Decimal("1830.00"), Decimal("100.00")]


def test_when_everything_open_is_due_and_undisputed_the_balance_is_what_to_pay(
    client, collector, account, pdf_text
):
    DunningPause.objects.filter(dispute__invoice__customer=account).delete()
    Dispute.objects.filter(invoice__customer=account).delete()
    account.invoices.filter(number="S-1").update(due_date=dt.date(2026, 4, 15))

    text = downloaded(client, collector, account, pdf_text)

    assert figures("Balance", text) == [Decimal("2330.00"), Decimal("100.00")]
    assert "Falling due later" not in text and "Held back" not in text and "To pay now" not in text


def test_money_on_account_beyond_what_is_due_is_credit_left_never_a_negative_amount_to_pay(
    client, collector, account, pdf_text
):
    Payment.objects.create(customer=account, received_on=dt.date(2026, 4, 18), currency="EUR",
                           amount=Decimal("2000.00"), reference="Wire 99")

    text = downloaded(client, collector, account, pdf_text)

    assert "Payment Wire 99 on account 18 Apr 2026 EUR 2,000.00" in text, text
    balance = figures("Balance", text)
    later = figures("Falling due later", text)
    held = figures("Held back while under dispute", text)
    now = figures("To pay now", text)
    left = figures("Credit left on your account", text)
    assert balance == [Decimal("330.00"), Decimal("100.00")]
    assert now == [Decimal("0.00"), Decimal("100.00")]
    assert left == [Decimal("320.00"), Decimal("0.00")]
    assert "-" not in re.search(r"To pay now [^A-Za-z]+", text).group(0)
    for column in range(2):  # what the books say, told apart: it adds up
        assert now[column] + later[column] + held[column] - left[column] == balance[column]

def test_a_customer_with_nothing_open_gets_a_statement_saying_so(
    client, collector, make_customer, make_contact, make_invoice, pdf_text
):
    customer = make_customer(name="Paid Up Ltd")
    make_contact(customer, name="Anna", is_primary_billing=True)
    make_invoice(customer, number="P-1", issued=dt.date(2026, 1, 2), amount="77.00",
                 paid_on=dt.date(2026, 2, 1))

    text = downloaded(client, collector, customer, pdf_text)

    assert "Nothing is open on your account today." in text, text
    assert "P-1" not in text and "Balance" not in text and "Aging" not in text


@pytest.mark.parametrize(("language", "says"), [
    ("de", ["Kontoauszug", "Offene Rechnungen", "noch nicht fällig", "1.000,00 EUR", "Saldo 2.330,00 100,00",
            "Datum 20.04.2026"]),
    ("nl", ["Rekeningoverzicht", "Openstaande facturen", "nog niet vervallen", "Saldo 2.330,00 100,00"]),
    ("fr", ["Relevé de compte", "Factures ouvertes", "pas encore échue", "Solde 2 330,00 100,00"]),
    ("es", ["Extracto de cuenta", "Facturas pendientes", "aún no vencida", "Saldo 2.330,00 100,00"]),
    ("it", ["Estratto conto", "Fatture aperte", "non ancora scaduta", "Saldo 2.330,00 100,00"]),
])
def test_the_statement_is_written_in_the_billing_contact_s_language(
    client, collector, account, pdf_text, language, says
):
    account.contacts.update(language=language)

    text = downloaded(client, collector, account, pdf_text).replace("\u202f", " ")

    for phrase in says:
        assert phrase in text, (phrase, text)


def test_every_language_has_the_statement_s_words():
    for language, words in rendering.LABELS.items():
        assert set(rendering.LABELS["en"]) <= set(words), language


# --- Who may have it ----------------------------------------------------------------------------


def test_a_viewer_may_download_the_statement_of_any_account_but_not_e_mail_it(
    client, viewer, account, pdf_text
):
    text = downloaded(client, viewer, account, pdf_text)
    assert "S-5" in text

    response = client.post(url("statement_send", account), sent_once({"note": "Hello"}))

    assert response.status_code == 403
    assert not OutgoingMail.objects.exists() and not statement_events(account).exists()


def test_a_collector_may_not_e_mail_another_collector_s_account_statement(client, other_collector, account):
    client.force_login(other_collector)

    assert client.get(url("statement_send", account)).status_code == 403
    assert client.post(url("statement_send", account), sent_once({"note": ""})).status_code == 403
    assert not OutgoingMail.objects.exists()


def test_a_manager_may_e_mail_the_statement_of_any_account(client, manager, account):
    client.force_login(manager)

    with frozen(TODAY):
        response = client.post(url("statement_send", account), sent_once({"note": ""}))

    assert response.status_code == 302
    assert OutgoingMail.objects.get().purpose == MailPurpose.STATEMENT


def test_no_statement_of_an_account_that_does_not_exist_or_for_someone_signed_out(client, collector, account):
    missing = reverse("collections:statement_download", args=[account.pk + 1000])
    assert client.get(url("statement_download", account)).status_code == 302  # to the sign-in page
    client.force_login(collector)
    assert client.get(missing).status_code == 404
    assert client.post(reverse("collections:statement_send", args=[account.pk + 1000])).status_code == 404


def test_the_statement_is_fetched_and_sent_with_the_right_methods_only(client, collector, account):
    client.force_login(collector)

    assert client.post(url("statement_download", account)).status_code == 405
    assert client.put(url("statement_send", account)).status_code == 405
    assert client.delete(url("statement_send", account)).status_code == 405
    assert not OutgoingMail.objects.exists()


def test_a_download_asked_for_by_htmx_sends_the_browser_to_the_file(client, collector, account):
    client.force_login(collector)

    response = client.get(url("statement_download", account), headers=HTMX)

    assert response.headers["HX-Redirect"] == url("statement_download", account)
    assert not response.content.startswith(b"%PDF")


# --- E-mailed ---------------------------------------------------------------------------------


def test_the_form_says_whom_the_statement_goes_to(client, collector, account):
    client.force_login(collector)

    response = client.get(url("statement_send", account), headers=HTMX)

    assert response.status_code == 200
    assert "Petra Hoffmann &lt;ap@baeckerei-mueller.test&gt;" in response.content.decode()


def test_a_statement_e_mailed_reaches_the_billing_contact_with_the_pdf_and_lands_on_the_timeline(
    client, collector, account, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    client.force_login(collector)

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("statement_send", account),
                               sent_once({"note": "As promised on the phone."}))

    assert response.status_code == 302
    assert response.url == reverse("customers:detail", args=[account.pk]) + "#timeline"
    (message,) = smtp_server.messages
    assert message["To"] == "Petra Hoffmann <ap@baeckerei-mueller.test>"
    assert message["Subject"] == f"Statement of account {account.account_number} on 20 Apr 2026"
    body = message.get_body(("plain",)).get_content()
    assert "Dear Petra Hoffmann," in body and "As promised on the phone." in body, body
    assert "EUR 2,330.00" in body and "USD 100.00" in body, body
    # As the statement splits it: overdue and undisputed now, the rest later or held back.
    assert ("a balance of EUR 2,330.00, USD 100.00. To pay now: EUR 1,680.00, USD 100.00; falling due later: "
            "EUR 500.00; held back while under dispute: EUR 150.00." in one_line(body)), body
    html = message.get_body(("html",)).get_content()
    assert "To pay now: <strong>EUR 1,680.00, USD 100.00</strong>" in html
    assert 'lang="en"' in html and "As promised on the phone." in html
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == f"statement-{account.account_number}-2026-04-20.pdf"
    text = one_line(pdf_text(attachment.get_content()))
    assert "S-5 1 Nov 2025 1 Dec 2025 140 EUR 1,000.00 EUR 1,000.00" in text
    assert "As promised on the phone." not in text  # the cover e-mail carries it
    assert OutgoingMail.objects.get().purpose == MailPurpose.STATEMENT
    (event,) = statement_events(account)
    assert event.actor == collector
    assert event.summary == ("Statement of account e-mailed to Petra Hoffmann <ap@baeckerei-mueller.test>: "
                             "6 open invoices; balance EUR 2,330.00, USD 100.00; to pay now EUR 1,680.00, "
                             "USD 100.00; falling due later EUR 500.00; held back while under dispute "
                             "EUR 150.00 — As promised on the phone.")
    linked = TimelineEventInvoice.objects.filter(event=event).values_list("invoice__number", flat=True)
    numbers = sorted(linked)
    assert numbers == ["S-1", "S-2", "S-3", "S-4", "S-5", "U-1"]


def test_a_statement_e_mailed_with_htmx_swaps_the_account_page_in_place(
    client, collector, account, django_capture_on_commit_callbacks
):
    client.force_login(collector)

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=False):
        response = client.post(url("statement_send", account), sent_once({"note": ""}), headers=HTMX)

    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#action-panel"
    assert "Statement of account e-mailed to Petra Hoffmann" in response.content.decode()
    assert OutgoingMail.objects.count() == 1


def test_a_statement_goes_to_whom_an_absent_billing_contact_asked_us_to_write_to(
    client, collector, account, make_contact, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    petra = account.contacts.get()
    ben = make_contact(account, name="Ben Vertretung", email="ben@baeckerei-mueller.test", language="de")
    ContactAbsence.objects.create(contact=petra, starts_on=dt.date(2026, 4, 15), ends_on=dt.date(2026, 4, 30),
                                  delegate=ben)
    client.force_login(collector)

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        client.post(url("statement_send", account), sent_once({"note": ""}))

    (message,) = smtp_server.messages
    assert message["To"] == "Ben Vertretung <ben@baeckerei-mueller.test>"
    assert message["Subject"] == f"Kontoauszug {account.account_number} vom 20.04.2026"


def test_a_statement_is_not_sent_when_the_billing_contact_and_her_stand_in_are_both_away_and_says_so(
    client, collector, account, make_contact
):
    petra = account.contacts.get()
    ben = make_contact(account, name="Ben Vertretung", email="ben@baeckerei-mueller.test")
    ContactAbsence.objects.create(contact=petra, starts_on=dt.date(2026, 4, 15), ends_on=dt.date(2026, 4, 30),
                                  delegate=ben)
    ContactAbsence.objects.create(contact=ben, starts_on=dt.date(2026, 4, 18), ends_on=dt.date(2026, 4, 24))
    client.force_login(collector)

    with frozen(TODAY):
        response = client.post(url("statement_send", account), sent_once({"note": ""}))

    assert response.status_code == 422
    page = " ".join(response.content.decode().split())
    assert ("Petra Hoffmann away until 30 Apr 2026, and Ben Vertretung, written to instead, away until "
            "24 Apr 2026") in page, page
    assert "no billing contact" not in page
    assert not OutgoingMail.objects.exists() and not statement_events(account).exists()


@pytest.mark.parametrize("htmx", [False, True])
def test_a_statement_is_not_e_mailed_to_an_address_the_mail_server_refused(client, collector, account, htmx):
    # Without a postal address either: with one, it would go by post (test_paper_copies.py).
    account.contacts.update(email_refused="ap@baeckerei-mueller.test", email_refused_on=TODAY,
                            postal_address="")
    client.force_login(collector)

    with frozen(TODAY):
        response = client.post(url("statement_send", account), sent_once({"note": ""}),
                               headers=HTMX if htmx else {})

    assert response.status_code == 422
    assert "the mail server refused Petra Hoffmann&#x27;s address" in response.content.decode()
    assert not OutgoingMail.objects.exists() and not statement_events(account).exists()


def test_a_statement_is_not_e_mailed_for_an_account_without_a_billing_contact(
    client, collector, make_customer
):
    customer = make_customer(name="Nobody Billed")
    client.force_login(collector)

    response = client.post(url("statement_send", customer), sent_once({"note": ""}))

    assert response.status_code == 422
    assert "the account has no billing contact" in response.content.decode()
    assert not OutgoingMail.objects.exists()


def test_a_note_too_long_for_a_statement_is_refused(client, collector, account):
    client.force_login(collector)

    response = client.post(url("statement_send", account), sent_once({"note": "x" * 301}))

    assert response.status_code == 422
    assert not OutgoingMail.objects.exists()


def test_the_account_page_offers_the_statement_to_a_viewer_as_a_download_only(
    client, viewer, collector, account
):
    client.force_login(viewer)
    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    assert url("statement_download", account) in page and url("statement_send", account) not in page

    client.force_login(collector)
    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    assert url("statement_download", account) in page and url("statement_send", account) in page


def statement(language: str, *, lines=True, disputed: str = "0") -> rendering.Statement:
    line = rendering.StatementLine(number="S-1", issue_date=dt.date(2026, 3, 1),
                                   due_date=dt.date(2026, 3, 31), currency="EUR",
                                   total_amount=Decimal("1234.50"), open_amount=Decimal("1234.50"),
                                   days_late=20, disputed_amount=Decimal(disputed))
    return rendering.Statement(
        language=language, customer_name="Bäckerei Müller GmbH", account_number="C10036", billing_address="",
        recipient_name="Petra Hoffmann", statement_date=TODAY, lines=(line,) if lines else (), credits=(),
        charges=(), contact_name="Carla Collector", sender_name="Carla Collector", note="Wie besprochen.",
    )


@pytest.mark.parametrize(("language", "subject", "balance"), [
    ("en", "Statement of account C10036 on 20 Apr 2026", "EUR 1,234.50"),
    ("de", "Kontoauszug C10036 vom 20.04.2026", "1.234,50 EUR"),
    ("nl", "Rekeningoverzicht C10036 per 20-04-2026", "1.234,50 EUR"),
    ("fr", "Relevé de compte C10036 au 20/04/2026", "1\u202f234,50\u00a0EUR"),
    ("es", "Extracto de cuenta C10036 a 20/04/2026", "1.234,50 EUR"),
    ("it", "Estratto conto C10036 al 20/04/2026", "1.234,50 EUR"),
])
def test_the_cover_e_mail_is_written_in_the_contact_s_language_with_the_note_word_for_word(
    language, subject, balance
):
    email = rendering.render_statement_email(statement(language))

    assert email.subject == subject
    assert rendering.LABELS[language]["greeting"].format(name="Petra Hoffmann") in email.text
    assert balance in email.text and "Wie besprochen." in email.text, email.text
    assert f'lang="{language}"' in email.html and "Wie besprochen." in email.html

    nothing = rendering.render_statement_email(statement(language, lines=False))
    assert balance not in nothing.text and "C10036" in nothing.text


@pytest.mark.parametrize(("language", "to_pay", "held"), [
    ("en", "To pay now: EUR 1,000.00; held back while under dispute: EUR 234.50.", "Held back"),
    ("de", "Jetzt zu zahlen: 1.000,00 EUR; zurückgehalten, solange strittig: 234,50 EUR.", "zurückgehalten"),
    ("nl", "Nu te betalen: 1.000,00 EUR; ingehouden zolang betwist: 234,50 EUR.", "ingehouden"),
    ("fr", "À payer maintenant\u00a0: 1\u202f000,00\u00a0EUR; retenu tant que contesté\u00a0: "
           "234,50\u00a0EUR.", "retenu"),
    ("es", "A pagar ahora: 1.000,00 EUR; retenido mientras está en disputa: 234,50 EUR.", "retenido"),
    ("it", "Da pagare ora: 1.000,00 EUR; trattenuto finché contestato: 234,50 EUR.", "trattenuto"),
])
def test_the_cover_e_mail_says_what_to_pay_now_and_what_is_held_back_as_disputed(language, to_pay, held):
    email = rendering.render_statement_email(statement(language, disputed="234.50"))

    assert to_pay in email.text, email.text
    assert to_pay in strip_tags(email.html), email.html

    undisputed = rendering.render_statement_email(statement(language))
    assert held.lower() not in undisputed.text.lower() and held.lower() not in undisputed.html.lower()


def test_the_statement_of_an_account_whose_collector_is_away_names_the_stand_in_in_a_pinned_number_of_queries(
    client, collector, other_collector, account, pdf_text, django_assert_num_queries
):
    """Who covers is read in one query with the chain followed (cover.working_for),
    where reading the stand-in apart from the absences took one more; and one
    reads the account's payment plans, whose later instalments the statement
    asks for on their own dates, not now: 15."""
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=5))
    client.force_login(collector)

    with frozen(TODAY), django_assert_num_queries(15):
        response = client.get(url("statement_download", account))

    assert response.status_code == 200
    assert "otto" in one_line(pdf_text(response.content))
