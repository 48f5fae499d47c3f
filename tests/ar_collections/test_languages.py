"""Notices in the languages contacts speak: every phrase and template in each
language we write, dates, amounts and rates as that language writes them, a
tone that stays friendly, firm or final, and English for the others."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from decimal import Decimal

import pytest
from django.template.loader import get_template

from ar_collections import rendering
from ar_collections.models import DunningAction, Tone
from customers.models import Language, ReminderChannel, Segment

from .conftest import DUE

WRITTEN = ["en", "de", "nl", "fr", "es", "it"]
# French typography: a narrow no-break space between thousands and before "%",
# a no-break space between an amount and its currency, so neither is split
# over two lines.
NNBSP, NBSP = "\u202f", "\u00a0"


@pytest.mark.parametrize("language", WRITTEN)
def test_every_phrase_and_template_english_has_exists_in_every_language_we_write(language):
    assert set(rendering.LABELS[language]) == set(rendering.LABELS["en"])
    assert language in rendering.FORMATS
    for tone in ("friendly", "firm", "final"):
        for kind in ("subject.txt", "txt", "html"):
            get_template(f"email/dunning/{tone}/{language}.{kind}")
    for kind in ("subject.txt", "txt", "html"):
        get_template(f"email/invoice_copy/{language}.{kind}")
    for kind in ("subject.txt", "txt"):
        get_template(f"email/call_summary/{language}.{kind}")
        get_template(f"email/plan_agreed/{language}.{kind}")


def test_the_languages_we_write_have_their_formats_and_no_more():
    assert set(rendering.FORMATS) == set(rendering.LABELS)


def test_every_language_a_contact_can_choose_is_one_we_write():
    assert set(Language.values) <= set(rendering.LABELS)


def test_a_language_we_do_not_write_gets_english_with_a_note_saying_so():
    language = "pt"  # not among a contact's choices today
    assert rendering.wording_language(language, Tone.FIRM) == (
        "en", f"no wording in language '{language}' yet: written in English"
    )
    assert rendering.text_language(language, rendering.COPY_EMAIL + ".subject.txt") == "en"
    assert rendering.text_language(language, rendering.CALL_SUMMARY_EMAIL + ".subject.txt") == "en"


@pytest.mark.parametrize(("language", "day", "short", "long"), [
    ("en", dt.date(2025, 8, 5), "5 Aug 2025", "5 August 2025"),
    ("de", dt.date(2025, 8, 5), "05.08.2025", "05.08.2025"),
    ("nl", dt.date(2025, 8, 5), "05-08-2025", "5 augustus 2025"),
    ("nl", dt.date(2026, 3, 1), "01-03-2026", "1 maart 2026"),
    ("fr", dt.date(2025, 8, 5), "05/08/2025", "5 août 2025"),
    ("fr", dt.date(2026, 3, 1), "01/03/2026", "1er mars 2026"),
    ("es", dt.date(2025, 8, 5), "05/08/2025", "5 de agosto de 2025"),
    ("es", dt.date(2026, 3, 1), "01/03/2026", "1 de marzo de 2026"),
    ("it", dt.date(2025, 8, 5), "05/08/2025", "5 agosto 2025"),
    ("it", dt.date(2026, 3, 1), "01/03/2026", "1º marzo 2026"),
])
def test_a_day_is_written_as_the_language_writes_it(language, day, short, long):
    shown = dataclasses.replace(notice(language, Tone.FRIENDLY), pay_by=day)

    email = rendering.render_email(shown)

    t = rendering.LABELS[language]
    assert f"{t['pay_by']}{t['colon']} {short}" in email.text
    assert rendering._long_date(day, language) == long


@pytest.mark.parametrize(("language", "amount", "currency", "shown"), [
    ("en", "1234567.5", "EUR", "EUR 1,234,567.50"),
    ("de", "1234567.5", "EUR", "1.234.567,50 EUR"),
    ("nl", "1234567.5", "EUR", "1.234.567,50 EUR"),
    ("nl", "-40", "EUR", "-40,00 EUR"),
    ("nl", "6000", "JPY", "6.000 JPY"),
    ("fr", "1234567.5", "EUR", f"1{NNBSP}234{NNBSP}567,50{NBSP}EUR"),
    ("fr", "-40", "EUR", f"-40,00{NBSP}EUR"),
    ("fr", "6000", "JPY", f"6{NNBSP}000{NBSP}JPY"),
    ("es", "1234567.5", "EUR", "1.234.567,50 EUR"),
    ("es", "-40", "EUR", "-40,00 EUR"),
    ("it", "1234567.5", "EUR", "1.234.567,50 EUR"),
    ("it", "6000", "JPY", "6.000 JPY"),
])
def test_an_amount_is_written_with_the_language_s_separators_and_the_currency_code(
    language, amount, currency, shown
):
    assert rendering._money(Decimal(amount), currency, language) == shown


@pytest.mark.parametrize(("language", "shown"), [
    ("en", "8.50%"), ("de", "8,50 %"), ("nl", "8,50%"), ("fr", f"8,50{NNBSP}%"), ("es", "8,50 %"),
    ("it", "8,50%"),
])
def test_a_rate_is_written_as_the_language_writes_it(language, shown):
    assert rendering._percent(Decimal("8.5"), language) == shown


# --- dunning e-mails, per tone ------------------------------------------------


def notice(language: str, tone: int) -> rendering.Notice:
    """Two overdue invoices of Acme Tools, to pay by 15 March 2026; firmer
    notices with a late fee of 40.00 and interest at 8 % a year."""
    charges = () if tone == Tone.FRIENDLY else (
        rendering.NoticeCharge("late_fee", Decimal("40.00"), "EUR", "step 2 of Prompt payers"),
    )
    return rendering.Notice(
        tone=tone, language=language, customer_name="Acme Tools", account_number="C-4711",
        recipient_name="Anna Clerk", postal_address="Acme Tools\nMain Street 1\n10115 Berlin",
        letter_date=dt.date(2026, 3, 5), pay_by=dt.date(2026, 3, 15),
        lines=(
            rendering.NoticeLine("INV-1001", dt.date(2026, 1, 29), dt.date(2026, 2, 28), 5, Decimal("500.00"),
                                 "EUR"),
            rendering.NoticeLine("INV-1002", dt.date(2026, 1, 30), dt.date(2026, 3, 1), 4, Decimal("1234.56"),
                                 "EUR"),
        ),
        collector_name="Carla", collector_email="carla@arcrm.test", charges=charges,
        interest_rate_percent=Decimal("0") if tone == Tone.FRIENDLY else Decimal("8.00"),
        offer_payment_plan=True, reference="D-12",
    )


# What each tone says, in words a reader checks: it greets, names the total and
# the pay-by date, and asks (friendly), insists (firm) or names the consequence (final).
NOTICE_SAYS = {
    "nl": {
        "greeting": "Geachte Anna Clerk,",
        "statement": ["Factuur", "Vervaldatum", "Over tijd", "INV-1001", "29-01-2026", "28-02-2026",
                      "500,00 EUR", "1.234,56 EUR", "Uiterste betaaldatum: 15-03-2026",
                      "onder vermelding van uw klantnummer C-4711",
                      "Met vriendelijke groet", "betalingsregeling"],
        Tone.FRIENDLY: {
            "subject": "Hebben onze facturen INV-1001, INV-1002 u bereikt?",
            "says": ["nog geen betaling ontvangen", "uiterlijk 15 maart 2026", "Te betalen 1.734,56 EUR"],
        },
        Tone.FIRM: {
            "subject": "Betalingsherinnering: 2 vervallen facturen, graag betaling uiterlijk 15 maart 2026",
            "says": ["Ondanks onze eerdere herinnering", "aanmaningskosten van 40,00 EUR",
                     "vertragingsrente van 8,00% per jaar", "1.774,56 EUR", "uiterlijk 15 maart 2026"],
        },
        Tone.FINAL: {
            "subject": "Laatste aanmaning: betaling van 1.774,56 EUR uiterlijk 15 maart 2026",
            "says": ["Dit is onze laatste aanmaning", "uiterlijk 15 maart 2026",
                     "blokkeren wij uw klantrekening", "onder rembours of tegen vooruitbetaling"],
        },
    },
    "fr": {
        "greeting": "Bonjour Anna Clerk,",
        "statement": ["Facture", "Échéance", "Retard", "INV-1001", "29/01/2026", "28/02/2026", "500,00 EUR",
                      "1 234,56 EUR", "Date limite de paiement : 15/03/2026",
                      "en indiquant votre numéro client C-4711", "Cordialement", "échéancier"],
        Tone.FRIENDLY: {
            "subject": f"Avez-vous bien reçu nos factures INV-1001, INV-1002{NBSP}?",
            "says": ["pas encore reçu le paiement", "au plus tard le 15 mars 2026",
                     "Total à payer 1 734,56 EUR"],
        },
        Tone.FIRM: {
            "subject": f"Rappel de paiement{NBSP}: 2 factures échues, merci de régler au plus tard le "
                       "15 mars 2026",
            "says": ["Malgré notre précédent rappel", "frais de relance de 40,00 EUR",
                     "intérêts de retard de 8,00 % par an", "1 774,56 EUR", "au plus tard le 15 mars 2026"],
        },
        Tone.FINAL: {
            "subject": f"Dernière relance{NBSP}: paiement de 1{NNBSP}774,56{NBSP}EUR au plus tard le "
                       "15 mars 2026",
            "says": ["Ceci est notre dernière relance", "au plus tard le 15 mars 2026",
                     "nous bloquerons votre compte client", "contre remboursement ou paiement d'avance"],
        },
    },
    "es": {
        # A Spanish salutation ends with a colon.
        "greeting": "Estimado/a Anna Clerk:",
        "statement": ["Factura", "Vencimiento", "Retraso", "INV-1001", "29/01/2026", "28/02/2026",
                      "500,00 EUR", "1.234,56 EUR", "Fecha límite de pago: 15/03/2026",
                      "indicando su número de cliente C-4711", "Atentamente", "plan de pagos"],
        Tone.FRIENDLY: {
            "subject": "¿Ha recibido nuestras facturas INV-1001, INV-1002?",
            "says": ["Aún no hemos recibido el pago", "a más tardar el 15 de marzo de 2026",
                     "Importe a pagar 1.734,56 EUR"],
        },
        Tone.FIRM: {
            "subject": "Recordatorio de pago: 2 facturas vencidas, le rogamos el pago a más tardar el "
                       "15 de marzo de 2026",
            "says": ["Pese a nuestro recordatorio anterior", "gastos de reclamación de 40,00 EUR",
                     "intereses de demora del 8,00 % anual", "1.774,56 EUR",
                     "a más tardar el 15 de marzo de 2026"],
        },
        Tone.FINAL: {
            "subject": "Último aviso: pago de 1.774,56 EUR a más tardar el 15 de marzo de 2026",
            "says": ["Este es nuestro último aviso", "a más tardar el 15 de marzo de 2026",
                     "bloquearemos su cuenta de cliente", "contra reembolso o con pago anticipado"],
        },
    },
    "it": {
        "greeting": "Gentile Anna Clerk,",
        "statement": ["Fattura", "Scadenza", "Ritardo", "INV-1001", "29/01/2026", "28/02/2026", "500,00 EUR",
                      "1.234,56 EUR", "Da pagare entro: 15/03/2026",
                      "indicando il vostro codice cliente C-4711", "Cordiali saluti", "piano di pagamento"],
        Tone.FRIENDLY: {
            "subject": "Avete ricevuto le nostre fatture INV-1001, INV-1002?",
            "says": ["Non abbiamo ancora ricevuto il pagamento", "entro il 15 marzo 2026",
                     "Totale da pagare 1.734,56 EUR"],
        },
        Tone.FIRM: {
            "subject": "Sollecito di pagamento: 2 fatture scadute, pagamento entro il 15 marzo 2026",
            "says": ["Nonostante il nostro precedente sollecito", "spese di sollecito di 40,00 EUR",
                     "interessi di mora al tasso annuo di 8,00%", "1.774,56 EUR", "entro il 15 marzo 2026"],
        },
        Tone.FINAL: {
            "subject": "Ultimo sollecito: pagamento di 1.774,56 EUR entro il 15 marzo 2026",
            "says": ["Questo è il nostro ultimo sollecito", "entro il 15 marzo 2026",
                     "bloccheremo il vostro conto cliente",
                     "solo in contrassegno o con pagamento anticipato"],
        },
    },
}
ENGLISH = ["Dear ", "Please pay by", "Kind regards", "EUR 500.00", "Invoice ", "15 Mar 2026"]
# Where an amount sits in running text, its spaces must not break.
UNBROKEN = {"fr": f"1{NNBSP}234,56{NBSP}EUR"}


def words(text: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


@pytest.mark.parametrize("tone", [Tone.FRIENDLY, Tone.FIRM, Tone.FINAL])
@pytest.mark.parametrize("language", list(NOTICE_SAYS))
def test_a_dunning_e_mail_is_written_in_the_contact_s_language_in_its_tone(language, tone):
    says = NOTICE_SAYS[language]

    email = rendering.render_email(notice(language, tone))

    assert email.subject == says[tone]["subject"]
    for text in (email.text, email.html):
        read = words(text)
        for phrase in [says["greeting"], *says["statement"], *says[tone]["says"]]:
            assert phrase in read, (phrase, read)
        for english in ENGLISH:
            assert english not in read, english
    assert f'<html lang="{language}">' in email.html
    if language in UNBROKEN:
        assert UNBROKEN[language] in email.text and UNBROKEN[language] in email.html


# --- a letter, through delivery ------------------------------------------------

# Sent on Thursday 5 Mar with ten days to pay: Sunday 15 Mar, so Monday 16 Mar.
LETTER_SAYS = {
    "nl": ["Acme Tools", "Main Street 1", "Klantnummer", "Hebben onze facturen", "Geachte Anna Clerk,",
           "500,00 EUR", "700,00 EUR", "Te betalen 1.200,00 EUR", "Uiterste betaaldatum: 16-03-2026",
           "uiterlijk 16 maart 2026", "carla"],
    "fr": ["Acme Tools", "Main Street 1", "Numéro client", "Avez-vous bien reçu nos factures",
           "Bonjour Anna Clerk,", "500,00 EUR", "700,00 EUR", "Total à payer 1 200,00 EUR",
           "Date limite de paiement : 16/03/2026", "au plus tard le 16 mars 2026", "carla"],
    "es": ["Acme Tools", "Main Street 1", "Número de cliente", "Ha recibido nuestras facturas",
           "Estimado/a Anna Clerk:", "500,00 EUR", "700,00 EUR", "Importe a pagar 1.200,00 EUR",
           "Fecha límite de pago: 16/03/2026", "a más tardar el 16 de marzo de 2026", "carla"],
    "it": ["Acme Tools", "Main Street 1", "Codice cliente", "Avete ricevuto le nostre fatture",
           "Gentile Anna Clerk,", "500,00 EUR", "700,00 EUR", "Totale da pagare 1.200,00 EUR",
           "Da pagare entro: 16/03/2026", "entro il 16 marzo 2026", "carla"],
}


@pytest.mark.parametrize("language", list(LETTER_SAYS))
def test_a_letter_to_a_contact_is_written_in_her_language_with_its_total_and_pay_by_date(
    make_account, plan_and_deliver, pdf_text, pdf_pages, language
):
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER, language=language)

    plan_and_deliver(DUE + dt.timedelta(days=3))

    action = DunningAction.objects.get(customer=account, step__position=1)
    assert action.channel == "letter"
    assert "written in English" not in action.channel_note
    pdf = action.letter_pdf.read()
    assert pdf_pages(pdf) == 1
    text = " ".join(pdf_text(pdf).split())
    for invoice in account.invoices.values_list("number", flat=True):
        assert invoice in text, invoice
    for phrase in LETTER_SAYS[language]:
        assert phrase in text, (phrase, text)
    for english in ENGLISH:
        assert english not in text, english
