"""The written summary of a call ("E-mail the contact a written summary" on
Log a call), in the contact's language, read from what a real mail server
received."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import workspace

from .conftest import frozen

TODAY = dt.date(2025, 8, 5)

SUMMARY_SAYS = {
    "en": {
        "subject": "Our call today about account C-4711",
        "lines": ["Dear Anna Clerk,", "Thank you for talking to us today about the account of Acme Tools.",
                  "What we discussed:", "Pays the first invoice on Friday.",
                  "As agreed, you will pay EUR 1,200.00 by 15 August 2025 for invoice(s) INV-1001, INV-1002.",
                  "Kind regards,", "carla"],
    },
    "de": {
        "subject": "Unser heutiges Telefonat zu Ihrem Kundenkonto C-4711",
        "lines": ["Guten Tag Anna Clerk,",
                  "vielen Dank für das heutige Gespräch über das Konto von Acme Tools.",
                  "Was wir besprochen haben:", "Pays the first invoice on Friday.",
                  "Wie vereinbart zahlen Sie 1.200,00 EUR bis zum 15.08.2025 für die Rechnungen "
                  "INV-1001, INV-1002.",
                  "Mit freundlichen Grüßen", "carla"],
    },
    "nl": {
        "subject": "Ons telefoongesprek van vandaag over uw klantrekening C-4711",
        "lines": ["Geachte Anna Clerk,",
                  "Hartelijk dank voor het gesprek van vandaag over de rekening van Acme Tools.",
                  "Wat we hebben besproken:", "Pays the first invoice on Friday.",
                  "Zoals afgesproken betaalt u 1.200,00 EUR uiterlijk 15 augustus 2025 voor de facturen "
                  "INV-1001, INV-1002.",
                  "Met vriendelijke groet", "carla"],
    },
    "fr": {
        "subject": "Notre entretien téléphonique de ce jour au sujet de votre compte client C-4711",
        "lines": ["Bonjour Anna Clerk,",
                  "Merci pour notre échange de ce jour concernant le compte Acme Tools.",
                  "Ce dont nous avons parlé\u00a0:", "Pays the first invoice on Friday.",
                  # No-break spaces in the amount and before a colon, as French typography writes them.
                  "Comme convenu, vous réglerez 1\u202f200,00\u00a0EUR au plus tard le 15 août 2025 pour "
                  "les factures INV-1001, INV-1002.",
                  "Cordialement", "carla"],
    },
    "es": {
        "subject": "Nuestra conversación telefónica de hoy sobre su cuenta de cliente C-4711",
        # A Spanish salutation ends with a colon.
        "lines": ["Estimado/a Anna Clerk:",
                  "Gracias por la conversación de hoy sobre la cuenta de Acme Tools.",
                  "Lo que hemos hablado:", "Pays the first invoice on Friday.",
                  "Tal como acordamos, pagará 1.200,00 EUR a más tardar el 15 de agosto de 2025 por "
                  "las facturas INV-1001, INV-1002.",
                  "Atentamente", "carla"],
    },
    "it": {
        "subject": "La nostra telefonata di oggi sul vostro conto cliente C-4711",
        "lines": ["Gentile Anna Clerk,",
                  "Grazie per il colloquio di oggi sul conto di Acme Tools.",
                  "Quanto abbiamo discusso:", "Pays the first invoice on Friday.",
                  "Come concordato, pagherete 1.200,00 EUR entro il 15 agosto 2025 per "
                  "le fatture INV-1001, INV-1002.",
                  "Cordiali saluti", "carla"],
    },
}


@pytest.fixture
def account(make_customer, make_contact, make_invoice):
    customer = make_customer(name="Acme Tools", account_number="C-4711")
    make_contact(customer, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    for number, amount in [("INV-1001", "500.00"), ("INV-1002", "700.00")]:
        make_invoice(customer, number=number, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                     amount=amount)
    return customer


def summary_sent(account, collector, capture, *, language: str):
    """Log a call to Anna, who speaks `language`, that brought a promise: the
    mail server receives its summary."""
    contact = account.contacts.get()
    contact.language = language
    contact.save()
    with frozen(TODAY), capture(execute=True):
        workspace.call_log(
            customer=account, actor=collector, contact=contact, outcome="reached",
            notes="Pays the first invoice on Friday.", email_summary=True, on=TODAY,
            promise=workspace.PromiseTerms(Decimal("1200.00"), dt.date(2025, 8, 15),
                                           list(account.invoices.order_by("number"))),
        )


@pytest.mark.parametrize("language", list(SUMMARY_SAYS))
def test_a_call_summary_is_written_in_the_contact_s_language(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery, language
):
    says = SUMMARY_SAYS[language]

    summary_sent(account, collector, django_capture_on_commit_callbacks, language=language)

    (message,) = smtp_server.messages
    # A long subject with accents is folded onto a line of its own after
    # "Subject:"; Python's parser keeps the fold's space, mail clients do not.
    assert message["Subject"].lstrip() == says["subject"]
    lines = message.get_content().splitlines()
    for line in says["lines"]:
        assert line in lines, (line, lines)


def test_a_call_summary_to_a_contact_whose_language_the_letters_do_not_speak_is_in_english(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    # A language we have no wording for: every choice a contact has is written
    # today, but one added to the choices must still get a text.
    summary_sent(account, collector, django_capture_on_commit_callbacks, language="pt")

    (message,) = smtp_server.messages
    assert message["Subject"] == SUMMARY_SAYS["en"]["subject"]
    assert "Thank you for talking to us today about the account of Acme Tools." in message.get_content()


def test_a_german_call_summary_of_one_invoice_says_rechnung_and_nothing_agreed_leaves_the_promise_out(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    contact = account.contacts.get()
    contact.language = "de"
    contact.save()
    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        workspace.call_log(customer=account, actor=collector, contact=contact, outcome="reached",
                           email_summary=True, on=TODAY,
                           promise=workspace.PromiseTerms(Decimal("500.00"), dt.date(2025, 8, 15),
                                                          [account.invoices.get(number="INV-1001")]))
        workspace.call_log(customer=account, actor=collector, contact=contact, outcome="reached",
                           email_summary=True, on=TODAY)

    with_promise, without = (m.get_content() for m in smtp_server.messages)
    said = "Wie vereinbart zahlen Sie 500,00 EUR bis zum 15.08.2025 für die Rechnung INV-1001."
    assert said in with_promise
    assert "Wie vereinbart" not in without and "Was wir besprochen haben" not in without


def test_the_call_form_says_the_summary_quotes_what_was_said_as_typed(client, collector, customer):
    """The collector's own notes go to the customer inside the summary: the
    form says so before anyone writes "Spoke to Lukas: goes out in the run"."""
    client.force_login(collector)

    page = client.get(reverse("collections:call_log", args=[customer.pk])).content.decode()

    assert "It quotes “What was said” word for word: write it as the customer may read it." in page
