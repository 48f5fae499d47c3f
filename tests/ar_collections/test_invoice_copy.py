"""The "Re-send a copy" action: a one-page copy of the invoice as we issued it,
with what has been paid and credited since and what is open, and a neutral
cover e-mail, both in the contact's language. Read back from what a real
mail server received."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.conf import settings

from ar_collections import workspace
from ar_collections.models import (
    ActionStatus,
    ChargeKind,
    DisputeReason,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    LateCharge,
    MailPurpose,
    OutgoingMail,
    Tone,
)

from .conftest import frozen

TODAY = dt.date(2026, 4, 20)


@pytest.fixture
def account(make_customer, make_contact, make_invoice, collector):
    """Bäckerei Müller owes on INV-2026-002701 (EUR 1,250.00, ordered on their
    PO-481516): EUR 300.00 paid, EUR 50.00 credited, EUR 900.00 open, and a
    firm reminder about it charged a late fee of EUR 40.00 that is still owed."""
    customer = make_customer(name="Bäckerei Müller", legal_name="Bäckerei Müller GmbH")
    make_contact(customer, name="Petra Hoffmann", email="ap@baeckerei-mueller.test", is_primary_billing=True,
                 postal_address="Bäckerei Müller GmbH\nKreditorenbuchhaltung\nHauptstraße 5\n50667 Köln")
    invoice = make_invoice(customer, number="INV-2026-002701", issued=dt.date(2026, 2, 2),
                           due=dt.date(2026, 3, 4), amount="1250.00", po_reference="PO-481516")
    with frozen(TODAY):
        workspace.payment_record(customer=customer, amount=Decimal("300.00"), currency="EUR",
                                 received_on=dt.date(2026, 3, 20), allocations=[(invoice, Decimal("300.00"))],
                                 reference="Bank 7781", actor=collector)
        workspace.credit_note_record(customer=customer, actor=collector, invoice=invoice,
                                     amount=Decimal("50.00"), reason="Two trays returned",
                                     issued_on=dt.date(2026, 3, 25))
    run = DunningRun.objects.create(run_date=dt.date(2026, 4, 1))
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=dt.date(2026, 3, 5))
    reminder = DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer, step=DunningStep.objects.filter(tone=Tone.FIRM).first(),
        status=ActionStatus.DONE, planned_on=dt.date(2026, 4, 1), pay_by=dt.date(2026, 4, 10),
    )
    DunningActionInvoice.objects.create(action=reminder, invoice=invoice, open_amount=Decimal("900.00"),
                                        currency="EUR")
    LateCharge.objects.create(customer=customer, action=reminder, kind=ChargeKind.LATE_FEE, currency="EUR",
                              amount=Decimal("40.00"), open_amount=Decimal("40.00"),
                              basis="step 2 of the ladder")
    invoice.refresh_from_db()
    assert invoice.open_amount == Decimal("900.00")
    return customer


def copy_sent(account, collector, capture, *, language: str):
    """Send the copy of INV-2026-002701 to a contact speaking `language`; the
    message the mail server received."""
    contact = account.contacts.get()
    contact.language = language
    contact.save()
    with frozen(TODAY), capture(execute=True):
        workspace.invoice_copy_send(customer=account, invoice=account.invoices.get(), contact=contact,
                                    actor=collector, on=TODAY)


def one_line(text: str) -> str:
    """pdftotext's layout spaces columns apart: one space between words is enough to read."""
    return re.sub(r"\s+", " ", text)


COPY_SAYS = {
    "en": {
        "mark": "COPY", "title": "Copy of invoice INV-2026-002701",
        "facts": [r"Invoice date 2 Feb 2026", r"Due date 4 Mar 2026", r"Your order number PO-481516",
                  r"Currency EUR", r"Invoice total EUR 1,250.00", r"Paid EUR 300.00",
                  r"Credited EUR 50.00", r"Open EUR 900.00",
                  r"Late fee \(as our terms of payment provide\) EUR 40.00",
                  r"Open in total, with fees and interest EUR 940.00",
                  # As an invoice gives its terms; the ladder's next step waits for that day.
                  r"Please transfer the open amount by 27 Apr 2026 to arcrm Demo GmbH, IBAN .* quoting "
                  r"invoice number INV-2026-002701\."],
        "subject": "Copy of invoice INV-2026-002701",
        "cover": "As requested, please find attached a copy of our invoice INV-2026-002701",
    },
    "de": {
        "mark": "KOPIE", "title": "Kopie der Rechnung INV-2026-002701",
        "facts": [r"Rechnungsdatum 02.02.2026", r"Fällig am 04.03.2026", r"Ihre Bestellnummer PO-481516",
                  r"Währung EUR", r"Rechnungsbetrag 1.250,00 EUR", r"Bezahlt 300,00 EUR",
                  r"Gutgeschrieben 50,00 EUR", r"Offen 900,00 EUR",
                  r"Mahngebühr \(gemäß unseren Zahlungsbedingungen\) 40,00 EUR",
                  r"Insgesamt offen, mit Gebühren und Zinsen 940,00 EUR",
                  r"Bitte überweisen Sie den offenen Betrag bis zum 27.04.2026 auf arcrm Demo GmbH, IBAN .* "
                  r"unter Angabe der Rechnungsnummer INV-2026-002701\."],
        "subject": "Kopie der Rechnung INV-2026-002701",
        "cover": "wie gewünscht erhalten Sie anbei eine Kopie unserer Rechnung INV-2026-002701",
    },
    "nl": {
        "mark": "KOPIE", "title": "Kopie van factuur INV-2026-002701",
        "facts": [r"Factuurdatum 02-02-2026", r"Vervaldatum 04-03-2026", r"Uw ordernummer PO-481516",
                  r"Valuta EUR", r"Factuurbedrag 1.250,00 EUR", r"Betaald 300,00 EUR",
                  r"Gecrediteerd 50,00 EUR", r"Openstaand 900,00 EUR",
                  r"Aanmaningskosten \(volgens onze betalingsvoorwaarden\) 40,00 EUR",
                  r"Totaal openstaand, met kosten en rente 940,00 EUR",
                  r"Gelieve het openstaande bedrag uiterlijk op 27-04-2026 over te maken aan "
                  r"arcrm Demo GmbH, IBAN .* onder vermelding van factuurnummer INV-2026-002701\."],
        "subject": "Kopie van factuur INV-2026-002701",
        "cover": "Zoals gevraagd ontvangt u in de bijlage een kopie van onze factuur INV-2026-002701",
    },
    "fr": {
        "mark": "COPIE", "title": "Copie de la facture INV-2026-002701",
        "facts": [r"Date de facture 02/02/2026", r"Date d'échéance 04/03/2026",
                  r"Votre numéro de commande PO-481516", r"Devise EUR", r"Montant de la facture 1 250,00 EUR",
                  r"Payé 300,00 EUR", r"Crédité 50,00 EUR", r"Reste dû 900,00 EUR",
                  r"Frais de relance \(selon nos conditions de paiement\) 40,00 EUR",
                  r"Total dû, frais et intérêts compris 940,00 EUR",
                  r"Merci de virer le montant restant dû au plus tard le 27/04/2026 sur le compte suivant : "
                  r"arcrm Demo GmbH, IBAN .* en indiquant le numéro de facture INV-2026-002701\."],
        "subject": "Copie de la facture INV-2026-002701",
        "cover": "Comme demandé, vous trouverez ci-joint une copie de notre facture INV-2026-002701",
    },
    "es": {
        "mark": "COPIA", "title": "Copia de la factura INV-2026-002701",
        "facts": [r"Fecha de factura 02/02/2026", r"Fecha de vencimiento 04/03/2026",
                  r"Su número de pedido PO-481516", r"Moneda EUR", r"Importe de la factura 1.250,00 EUR",
                  r"Pagado 300,00 EUR", r"Abonado 50,00 EUR", r"Pendiente 900,00 EUR",
                  r"Gastos de reclamación \(según nuestras condiciones de pago\) 40,00 EUR",
                  r"Total pendiente, con gastos e intereses 940,00 EUR",
                  r"Por favor, transfiera el importe pendiente a más tardar el 27/04/2026 a "
                  r"arcrm Demo GmbH, IBAN .* indicando el número de factura INV-2026-002701\."],
        "subject": "Copia de la factura INV-2026-002701",
        "cover": "Tal como nos pidió, le adjuntamos una copia de nuestra factura INV-2026-002701",
    },
    "it": {
        "mark": "COPIA", "title": "Copia della fattura INV-2026-002701",
        "facts": [r"Data fattura 02/02/2026", r"Data di scadenza 04/03/2026",
                  r"Vostro numero d'ordine PO-481516", r"Valuta EUR", r"Importo fattura 1.250,00 EUR",
                  r"Pagato 300,00 EUR", r"Accreditato 50,00 EUR", r"Residuo 900,00 EUR",
                  r"Spese di sollecito \(come da condizioni di pagamento\) 40,00 EUR",
                  r"Totale da pagare, con spese e interessi 940,00 EUR",
                  r"Vi preghiamo di bonificare l'importo residuo entro il 27/04/2026 a "
                  r"arcrm Demo GmbH, IBAN .* indicando il numero della fattura INV-2026-002701\."],
        "subject": "Copia della fattura INV-2026-002701",
        "cover": "Come richiesto, vi inviamo in allegato una copia della nostra fattura INV-2026-002701",
    },
}


@pytest.mark.parametrize("language", list(COPY_SAYS))
def test_a_copy_is_a_one_page_invoice_copy_in_the_contact_s_language_not_a_reminder(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text, pdf_pages,
    language,
):
    says = COPY_SAYS[language]

    copy_sent(account, collector, django_capture_on_commit_callbacks, language=language)

    (message,) = smtp_server.messages
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "invoice-INV-2026-002701.pdf"
    pdf = attachment.get_content()
    assert pdf_pages(pdf) == 1
    text = one_line(pdf_text(pdf))
    assert says["mark"] in text and says["title"] in text, text
    # Our company sends it, to the customer's billing address.
    assert settings.COMPANY_NAME in text and "Hafenstraße 1" in text
    for line in ("Bäckerei Müller GmbH", "Kreditorenbuchhaltung", "Hauptstraße 5", "50667 Köln"):
        assert line in text, line
    for fact in says["facts"]:
        assert re.search(fact, text), (fact, text)
    # Not the friendly first reminder it used to be.
    for reminder_words in ("not received", "not yet received", "reached you", "reach you",
                           "noch keine Zahlung", "erreicht", "copy of an invoice", "Rechnungskopie brauchen",
                           "nog geen betaling", "bereikt", "kopie van een factuur", "pas encore reçu",
                           "bien parvenue", "copie de facture", "no hemos recibido", "le ha llegado",
                           "copia de una factura", "non abbiamo ancora ricevuto", "vi sia arrivata",
                           "copia di una fattura"):
        assert reminder_words not in text, reminder_words
    assert message["Subject"] == says["subject"]
    body = message.get_body(("plain",)).get_content()
    assert says["cover"] in body, body
    assert "Petra Hoffmann" in body
    html = message.get_body(("html",)).get_content()
    assert "INV-2026-002701" in html and f'lang="{language}"' in html
    for reminder_words in ("reminder", "Erinnerung", "Mahnung", "reach you", "erreicht", "herinnering",
                           "aanmaning", "bereikt", "rappel", "relance", "parvenu", "recordatorio", "aviso",
                           "sollecito", "promemoria"):
        assert reminder_words not in body and reminder_words not in message["Subject"], reminder_words


def test_a_copy_for_a_contact_whose_language_the_letters_do_not_speak_is_written_in_english(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    # A language we have no wording for: every choice a contact has is written
    # today, but one added to the choices must still get a text.
    copy_sent(account, collector, django_capture_on_commit_callbacks, language="pt")

    (message,) = smtp_server.messages
    assert message["Subject"] == "Copy of invoice INV-2026-002701"
    (attachment,) = list(message.iter_attachments())
    assert "Copy of invoice INV-2026-002701" in one_line(pdf_text(attachment.get_content()))


def test_a_copy_still_goes_through_the_outbox_once_and_lands_on_the_timeline(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    copy_sent(account, collector, django_capture_on_commit_callbacks, language="en")

    mail = OutgoingMail.objects.get(purpose=MailPurpose.INVOICE_COPY)
    assert mail.invoice == account.invoices.get()
    assert mail.subject == "Copy of invoice INV-2026-002701"
    assert len(smtp_server.messages) == 1
    event = account.events.get(summary__startswith="Copy of invoice")
    assert event.summary == ("Copy of invoice INV-2026-002701 e-mailed to "
                             "Petra Hoffmann <ap@baeckerei-mueller.test>")



def copy_text(account, invoice, collector, capture, smtp_server, pdf_text) -> str:
    with frozen(TODAY), capture(execute=True):
        workspace.invoice_copy_send(customer=account, invoice=invoice, contact=account.contacts.get(),
                                    actor=collector, on=TODAY)
    (message,) = smtp_server.messages
    return one_line(pdf_text(next(message.iter_attachments()).get_content()))


def test_a_copy_leaves_out_the_fee_of_a_reminder_that_did_not_list_the_invoice(
    account, make_invoice, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    other = make_invoice(account, number="INV-2026-002702", issued=dt.date(2026, 3, 2),
                         due=dt.date(2026, 4, 1), amount="80.00")

    text = copy_text(account, other, collector, django_capture_on_commit_callbacks, smtp_server, pdf_text)

    assert "Open EUR 80.00" in text and "Paid EUR 0.00" in text, text
    assert "Late fee" not in text and "Open in total" not in text


def test_a_copy_leaves_out_a_fee_paid_since(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    LateCharge.objects.update(open_amount=Decimal("0.00"))

    text = copy_text(account, account.invoices.get(), collector, django_capture_on_commit_callbacks,
                     smtp_server, pdf_text)

    assert "Open EUR 900.00" in text, text
    assert "Late fee" not in text and "Open in total" not in text


@pytest.mark.parametrize(("amount", "says", "not_says"), [
    (Decimal("200.00"), ["EUR 200.00 of it under dispute, not asked for",
                         "Please transfer the EUR 700.00 not under dispute by 27 Apr 2026"],
     ["Please transfer the open amount"]),
    (None, ["EUR 900.00 of it under dispute, not asked for",
            "All that is open is under dispute: we ask for nothing on this invoice until it is settled."],
     ["Please transfer"]),
])
def test_a_copy_of_an_invoice_under_dispute_asks_only_for_what_is_not_disputed(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text, amount, says,
    not_says,
):
    with frozen(TODAY):
        workspace.dispute_open(customer=account, actor=collector, invoice=account.invoices.get(),
                               reason=DisputeReason.OUR_DELIVERY, description="Two trays short",
                               on=TODAY, amount=amount)

    copy_sent(account, collector, django_capture_on_commit_callbacks, language="en")

    (message,) = smtp_server.messages
    (attachment,) = list(message.iter_attachments())
    text = one_line(pdf_text(attachment.get_content()))
    for phrase in says:
        assert phrase in text, (phrase, text)
    for phrase in not_says:
        assert phrase not in text, (phrase, text)
    assert "Open EUR 900.00" in text


def test_a_copy_of_an_invoice_numbered_with_a_slash_is_attached_under_a_name_a_mail_client_keeps(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery,
):
    """ERPs number invoices "RE 2026/07": a slash in an attachment's name is a
    folder to the mail client, which cuts the name at it or refuses to save it."""
    account.invoices.update(number="RE 2026/07")

    copy_sent(account, collector, django_capture_on_commit_callbacks, language="en")

    (message,) = smtp_server.messages
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "invoice-RE_2026-07.pdf"
