"""Dunning notices in words: e-mails (subject / text / html) and PDF letters.

A `Notice` holds plain values only, so it is built once from the database by
delivery (or in memory by wording.sample_notice) and rendered without queries.
Its `wording` is the text a manager saved for its tone and language on the
Wording page, if any (see "wording edited on the Wording page" below).

One wording per tone and language: `email/dunning/<tone>/<lang>.html` fills
the blocks of a layout it is given. The e-mail uses `email/dunning/_layout.html`,
the letter `pdf/dunning_letter.html`, so a letter and an e-mail of the same
step always say the same thing. Each language's words are in LABELS and how
it writes dates, amounts and rates in FORMATS. Languages without their own
wording are written in English; `wording_language` says so, for the action's
channel note.

A collector's invoice copy (`InvoiceCopy`: `pdf/invoice_copy.html` and the
cover e-mail in `email/invoice_copy/`), a call's written summary
(`email/call_summary/`) and the schedule of a payment plan a manager approved
(`email/plan_agreed/`) are no notices: they ask for nothing, and are written
in the contact's language where the letters speak it, as notices are. An
invoice copy's and a statement's cover e-mail, and the words printed on
their PDFs (`pdf/<kind>/<lang>.html` in the blocks of `pdf/<kind>.html`),
can be edited on the Wording page too (their `wording`, by kind and
language). Nor is
a statement of account (`Statement`: `pdf/statement.html` and the cover
e-mail in `email/statement/`): everything open on the account on one day.

Letters are rendered by WeasyPrint with a fetcher that reads our own static
files and nothing else: a template that points at /etc/passwd, an intranet URL
or a tracking pixel fails loudly instead of leaking or hanging a worker.
"""

from __future__ import annotations

import datetime as dt
import functools
import mimetypes
import os
import posixpath
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template import (
    Context,
    Engine,
    TemplateDoesNotExist,
    TemplateSyntaxError,
    VariableDoesNotExist,
    engines,
)
from django.template.base import Variable
from django.template.loader import get_template
from django.template.loaders.filesystem import Loader as FilesystemLoader
from django.urls import NoReverseMatch

from ar_collections.models import NO_TONE, Tone, WordingKind, disputed_in_full
from arcrm import kpi
from arcrm.dates import format_day, format_day_long
from arcrm.money import ZERO, money_digits
from arcrm.text import one_line

TONE_FOLDERS = {Tone.FRIENDLY: "friendly", Tone.FIRM: "firm", Tone.FINAL: "final"}
# The languages we write in are those of LABELS and FORMATS, each with its
# templates: every language a contact can choose today. One added to the
# choices before its wording is written to in this one; `text_language` is
# the one place that decides so.
FALLBACK_LANGUAGE = "en"
LETTER_STYLESHEET = "pdf/dunning_letter.css"

# Words the layouts need in every language; the tone templates hold the rest.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "name": "English",
        # After a label ("Please pay by: 15 Mar 2026"); French puts a space before it.
        "colon": ":",
        # The salutation, with its punctuation: Spanish ends it with a colon.
        "greeting": "Dear {name},",
        "regards": "Kind regards",
        "invoice": "Invoice",
        "issued": "Issued",
        "due": "Due",
        "days_overdue": "Overdue",
        "open": "Open amount",
        "not_yet_due": "due in {days} days",
        "due_tomorrow": "due tomorrow",
        "fee_basis": "as our terms of payment provide",
        "total_invoices": "Overdue invoices",
        # Listed invoices not overdue yet (due today or later), summed apart from the
        # overdue ones: a letter calls overdue only what is.
        "total_falling_due": "Invoices falling due",
        "charges": "Fees and interest",
        "late_fee": "Late fee",
        "and": "and",
        "interest": "Interest",
        "earlier": "from an earlier notice",
        "part_paid": "{amount} of it paid",
        "disputed_part": "{amount} of it under dispute, not asked for",
        "amount_due": "Amount due",
        "credits": "Credits on your account",
        "credits_hint": "These credits are not yet set against an invoice; you may deduct them.",
        "payment_on_account": "Payment {reference} on account",
        "earlier_credits": "{count} earlier credits and payments on account",
        "pay_by": "Please pay by",
        "customer_number": "Customer number",
        "date": "Date",
        "reference_label": "Our reference",
        "bank": "Please transfer to",
        "reference": "quoting your customer number",
        "payment_plan": (
            "If paying everything at once is hard right now, let us agree a payment plan: "
            "reply to us or call {collector}, and we will find a schedule that works for you."
        ),
        # An invoice copy (pdf/invoice_copy.html).
        "copy_mark": "COPY",
        "copy_title": "Copy of invoice {number}",
        "copy_note": (
            "This is a copy of invoice {number}, which we issued on {date}. "
            "It is not a new invoice: please do not book it a second time."
        ),
        "invoice_number": "Invoice number",
        "invoice_date": "Invoice date",
        "due_date": "Due date",
        "your_reference": "Your order number",
        "currency": "Currency",
        "invoice_total": "Invoice total",
        "paid": "Paid",
        "credited": "Credited",
        "open_now": "Open",
        "copy_charges": "Also still open from our reminders about this invoice:",
        "open_with_charges": "Open in total, with fees and interest",
        "copy_settled": "Nothing is open on this invoice.",
        "copy_pay": "Please transfer the open amount by {date} to",
        "copy_pay_undisputed": "Please transfer the {amount} not under dispute by {date} to",
        "copy_all_disputed": (
            "All that is open is under dispute: we ask for nothing on this invoice until it "
            "is settled."
        ),
        "quoting_invoice": "quoting invoice number",
        "copy_questions": "Questions about this invoice",
        # A statement of account (pdf/statement.html, email/statement/).
        "st_title": "Statement of account",
        "st_intro": "Everything open on your account on {date}, as our books show it.",
        "st_invoices": "Open invoices",
        "st_days_overdue": "Days overdue",
        "st_not_due": "not yet due",
        "st_total": "Total",
        "st_disputed": "under dispute",
        "st_disputed_part": "{amount} of it under dispute",
        "st_planned_part": "{amount} of it due later under the payment plan",
        "st_credits": "Credits and payments on account",
        "st_credit_note": "Credit note {number}",
        "st_charges": "Fees and interest still owed",
        "st_summary": "Summary",
        "st_less_credits": "Less credits and payments on account",
        "st_balance": "Balance",
        "st_held_back": "Held back while under dispute",
        "st_to_pay_now": "To pay now",
        "st_later": "Falling due later",
        "st_credit_left": "Credit left on your account",
        "st_aging": "Aging of the open invoices",
        "st_days_1_30": "1–30 days",
        "st_days_31_60": "31–60 days",
        "st_days_61_90": "61–90 days",
        "st_days_over_90": "Over 90 days",
        "st_nothing_open": "Nothing is open on your account today. Thank you.",
        "st_pay": "Please transfer what is due to",
        "st_questions": "Questions about your account",
    },
    "de": {
        "name": "Deutsch",
        "colon": ":",
        "greeting": "Guten Tag {name},",
        "regards": "Mit freundlichen Grüßen",
        "invoice": "Rechnung",
        "issued": "Datum",
        "due": "Fällig",
        "days_overdue": "Überfällig",
        "open": "Offener Betrag",
        "not_yet_due": "fällig in {days} Tagen",
        "due_tomorrow": "morgen fällig",
        "fee_basis": "gemäß unseren Zahlungsbedingungen",
        "total_invoices": "Überfällige Rechnungen",
        "total_falling_due": "Noch nicht überfällige Rechnungen",
        "charges": "Gebühren und Zinsen",
        "late_fee": "Mahngebühr",
        "and": "und",
        "interest": "Verzugszinsen",
        "earlier": "aus einer früheren Mahnung",
        "part_paid": "davon {amount} bezahlt",
        "disputed_part": "davon {amount} strittig, nicht gefordert",
        "amount_due": "Zu zahlen",
        "credits": "Guthaben auf Ihrem Konto",
        "credits_hint": "Diese Gutschriften sind noch keiner Rechnung zugeordnet; Sie können sie abziehen.",
        "payment_on_account": "Zahlung {reference} auf Ihrem Konto",
        "earlier_credits": "{count} frühere Gutschriften und Zahlungen auf Ihrem Konto",
        "pay_by": "Bitte zahlen Sie bis",
        "customer_number": "Kundennummer",
        "date": "Datum",
        "reference_label": "Unser Zeichen",
        "bank": "Bitte überweisen Sie auf",
        "reference": "unter Angabe Ihrer Kundennummer",
        "payment_plan": (
            "Falls Ihnen die Zahlung des gesamten Betrags gerade schwerfällt, vereinbaren wir gern "
            "eine Ratenzahlung: Antworten Sie uns oder rufen Sie {collector} an, und wir finden "
            "einen Plan, der für Sie passt."
        ),
        "copy_mark": "KOPIE",
        "copy_title": "Kopie der Rechnung {number}",
        "copy_note": (
            "Dies ist eine Kopie der Rechnung {number}, die wir am {date} ausgestellt haben. "
            "Sie ist keine neue Rechnung: Bitte buchen Sie sie nicht ein zweites Mal."
        ),
        "invoice_number": "Rechnungsnummer",
        "invoice_date": "Rechnungsdatum",
        "due_date": "Fällig am",
        "your_reference": "Ihre Bestellnummer",
        "currency": "Währung",
        "invoice_total": "Rechnungsbetrag",
        "paid": "Bezahlt",
        "credited": "Gutgeschrieben",
        "open_now": "Offen",
        "copy_charges": "Außerdem sind aus unseren Mahnungen zu dieser Rechnung noch offen:",
        "open_with_charges": "Insgesamt offen, mit Gebühren und Zinsen",
        "copy_settled": "Auf dieser Rechnung ist nichts mehr offen.",
        "copy_pay": "Bitte überweisen Sie den offenen Betrag bis zum {date} auf",
        "copy_pay_undisputed": "Bitte überweisen Sie die nicht strittigen {amount} bis zum {date} auf",
        "copy_all_disputed": (
            "Der offene Betrag ist vollständig strittig: Bis zur Klärung fordern wir auf diese "
            "Rechnung nichts."
        ),
        "quoting_invoice": "unter Angabe der Rechnungsnummer",
        "copy_questions": "Fragen zu dieser Rechnung",
        # A statement of account (pdf/statement.html, email/statement/).
        "st_title": "Kontoauszug",
        "st_intro": "Alles, was auf Ihrem Konto am {date} laut unserer Buchhaltung offen ist.",
        "st_invoices": "Offene Rechnungen",
        "st_days_overdue": "Tage überfällig",
        "st_not_due": "noch nicht fällig",
        "st_total": "Betrag",
        "st_disputed": "strittig",
        "st_disputed_part": "davon {amount} strittig",
        "st_planned_part": "davon {amount} laut Ratenplan später fällig",
        "st_credits": "Gutschriften und Zahlungen auf Ihrem Konto",
        "st_credit_note": "Gutschrift {number}",
        "st_charges": "Noch offene Gebühren und Zinsen",
        "st_summary": "Übersicht",
        "st_less_credits": "Abzüglich Gutschriften und Zahlungen auf Ihrem Konto",
        "st_balance": "Saldo",
        "st_held_back": "Zurückgehalten, solange strittig",
        "st_to_pay_now": "Jetzt zu zahlen",
        "st_later": "Später fällig",
        "st_credit_left": "Verbleibendes Guthaben auf Ihrem Konto",
        "st_aging": "Fälligkeitsstruktur der offenen Rechnungen",
        "st_days_1_30": "1–30 Tage",
        "st_days_31_60": "31–60 Tage",
        "st_days_61_90": "61–90 Tage",
        "st_days_over_90": "Über 90 Tage",
        "st_nothing_open": "Auf Ihrem Konto ist heute nichts offen. Vielen Dank.",
        "st_pay": "Bitte überweisen Sie den fälligen Betrag auf",
        "st_questions": "Fragen zu Ihrem Konto",
    },
    "nl": {
        "name": "Nederlands",
        "colon": ":",
        "greeting": "Geachte {name},",
        "regards": "Met vriendelijke groet",
        "invoice": "Factuur",
        "issued": "Datum",
        "due": "Vervaldatum",
        "days_overdue": "Over tijd",
        "open": "Openstaand bedrag",
        "not_yet_due": "vervalt over {days} dagen",
        "due_tomorrow": "vervalt morgen",
        "fee_basis": "volgens onze betalingsvoorwaarden",
        "total_invoices": "Vervallen facturen",
        "total_falling_due": "Nog te vervallen facturen",
        "charges": "Kosten en rente",
        "late_fee": "Aanmaningskosten",
        "and": "en",
        "interest": "Vertragingsrente",
        "earlier": "uit een eerdere aanmaning",
        "part_paid": "waarvan {amount} betaald",
        "disputed_part": "waarvan {amount} betwist, niet gevraagd",
        "amount_due": "Te betalen",
        "credits": "Tegoed op uw rekening",
        "credits_hint": (
            "Deze tegoeden zijn nog niet met een factuur verrekend; u mag ze in mindering brengen."
        ),
        "payment_on_account": "Betaling {reference} op uw rekening",
        "earlier_credits": "{count} eerdere creditnota's en betalingen op uw rekening",
        "pay_by": "Uiterste betaaldatum",
        "customer_number": "Klantnummer",
        "date": "Datum",
        "reference_label": "Ons kenmerk",
        "bank": "Graag overmaken aan",
        "reference": "onder vermelding van uw klantnummer",
        "payment_plan": (
            "Valt het u op dit moment zwaar om alles in één keer te betalen, dan spreken we graag een "
            "betalingsregeling met u af: laat het ons weten of bel {collector}, dan zoeken we samen naar "
            "een schema dat bij u past."
        ),
        "copy_mark": "KOPIE",
        "copy_title": "Kopie van factuur {number}",
        "copy_note": (
            "Dit is een kopie van factuur {number}, die wij op {date} hebben uitgereikt. "
            "Het is geen nieuwe factuur: boek deze alstublieft niet nogmaals."
        ),
        "invoice_number": "Factuurnummer",
        "invoice_date": "Factuurdatum",
        "due_date": "Vervaldatum",
        "your_reference": "Uw ordernummer",
        "currency": "Valuta",
        "invoice_total": "Factuurbedrag",
        "paid": "Betaald",
        "credited": "Gecrediteerd",
        "open_now": "Openstaand",
        "copy_charges": "Daarnaast staat uit onze aanmaningen over deze factuur nog open:",
        "open_with_charges": "Totaal openstaand, met kosten en rente",
        "copy_settled": "Op deze factuur staat niets meer open.",
        "copy_pay": "Gelieve het openstaande bedrag uiterlijk op {date} over te maken aan",
        "copy_pay_undisputed": "Gelieve de niet betwiste {amount} uiterlijk op {date} over te maken aan",
        "copy_all_disputed": (
            "Het openstaande bedrag wordt volledig betwist: tot dat is opgelost, vragen wij op deze "
            "factuur niets."
        ),
        "quoting_invoice": "onder vermelding van factuurnummer",
        "copy_questions": "Vragen over deze factuur",
        # A statement of account (pdf/statement.html, email/statement/).
        "st_title": "Rekeningoverzicht",
        "st_intro": "Alles wat op {date} volgens onze boeken op uw rekening openstaat.",
        "st_invoices": "Openstaande facturen",
        "st_days_overdue": "Dagen over tijd",
        "st_not_due": "nog niet vervallen",
        "st_total": "Bedrag",
        "st_disputed": "betwist",
        "st_disputed_part": "waarvan {amount} betwist",
        "st_planned_part": "waarvan {amount} later te betalen volgens de betalingsregeling",
        "st_credits": "Creditnota's en betalingen op uw rekening",
        "st_credit_note": "Creditnota {number}",
        "st_charges": "Nog openstaande kosten en rente",
        "st_summary": "Overzicht",
        "st_less_credits": "Min creditnota's en betalingen op uw rekening",
        "st_balance": "Saldo",
        "st_held_back": "Ingehouden zolang betwist",
        "st_to_pay_now": "Nu te betalen",
        "st_later": "Later te vervallen",
        "st_credit_left": "Resterend tegoed op uw rekening",
        "st_aging": "Ouderdom van de openstaande facturen",
        "st_days_1_30": "1–30 dagen",
        "st_days_31_60": "31–60 dagen",
        "st_days_61_90": "61–90 dagen",
        "st_days_over_90": "Meer dan 90 dagen",
        "st_nothing_open": "Er staat vandaag niets open op uw rekening. Dank u wel.",
        "st_pay": "Gelieve het verschuldigde bedrag over te maken aan",
        "st_questions": "Vragen over uw rekening",
    },
    # French typography: a no-break space (\u00a0) before ":", ";", "?" and "!".
    "fr": {
        "name": "Français",
        "colon": "\u00a0:",
        "greeting": "Bonjour {name},",
        "regards": "Cordialement",
        "invoice": "Facture",
        "issued": "Date",
        "due": "Échéance",
        "days_overdue": "Retard",
        "open": "Reste dû",
        "not_yet_due": "échéance dans {days} jours",
        "due_tomorrow": "échéance demain",
        "fee_basis": "selon nos conditions de paiement",
        "total_invoices": "Factures échues",
        "total_falling_due": "Factures à échoir",
        "charges": "Frais et intérêts",
        "late_fee": "Frais de relance",
        "and": "et",
        "interest": "Intérêts de retard",
        "earlier": "d'une relance précédente",
        "part_paid": "dont {amount} déjà réglés",
        "disputed_part": "dont {amount} contestés, non réclamés",
        "amount_due": "Total à payer",
        "credits": "Avoirs sur votre compte",
        "credits_hint": (
            "Ces avoirs ne sont encore imputés sur aucune facture\u00a0; vous pouvez les déduire."
        ),
        "payment_on_account": "Paiement {reference} sur votre compte",
        "earlier_credits": "{count} avoirs et paiements antérieurs sur votre compte",
        "pay_by": "Date limite de paiement",
        "customer_number": "Numéro client",
        "date": "Date",
        "reference_label": "Notre référence",
        "bank": "Merci d'effectuer votre virement sur le compte suivant\u00a0:",
        "reference": "en indiquant votre numéro client",
        "payment_plan": (
            "S'il vous est difficile de tout régler en une fois en ce moment, convenons ensemble d'un "
            "échéancier\u00a0: répondez-nous ou appelez {collector}, et nous trouverons un calendrier qui "
            "vous convient."
        ),
        "copy_mark": "COPIE",
        "copy_title": "Copie de la facture {number}",
        "copy_note": (
            "Ceci est une copie de la facture {number}, que nous avons émise le {date}. Il ne s'agit pas "
            "d'une nouvelle facture\u00a0: merci de ne pas la comptabiliser une seconde fois."
        ),
        "invoice_number": "Numéro de facture",
        "invoice_date": "Date de facture",
        "due_date": "Date d'échéance",
        "your_reference": "Votre numéro de commande",
        "currency": "Devise",
        "invoice_total": "Montant de la facture",
        "paid": "Payé",
        "credited": "Crédité",
        "open_now": "Reste dû",
        "copy_charges": "Restent également dus, au titre de nos relances concernant cette facture\u00a0:",
        "open_with_charges": "Total dû, frais et intérêts compris",
        "copy_settled": "Plus rien n'est dû sur cette facture.",
        "copy_pay": (
            "Merci de virer le montant restant dû au plus tard le {date} sur le compte suivant\u00a0:"
        ),
        "copy_pay_undisputed": (
            "Merci de virer les {amount} non contestés au plus tard le {date} sur le compte suivant\u00a0:"
        ),
        "copy_all_disputed": (
            "La totalité du montant restant dû est contestée\u00a0: nous ne réclamons rien sur cette facture "
            "tant que la contestation n'est pas réglée."
        ),
        "quoting_invoice": "en indiquant le numéro de facture",
        "copy_questions": "Contact pour cette facture",
        # A statement of account (pdf/statement.html, email/statement/).
        "st_title": "Relevé de compte",
        "st_intro": "Tout ce qui est ouvert sur votre compte au {date}, selon nos livres.",
        "st_invoices": "Factures ouvertes",
        "st_days_overdue": "Jours de retard",
        "st_not_due": "pas encore échue",
        "st_total": "Montant",
        "st_disputed": "contestée",
        "st_disputed_part": "dont {amount} contestés",
        "st_planned_part": "dont {amount} à payer plus tard selon l'échéancier",
        "st_credits": "Avoirs et paiements sur votre compte",
        "st_credit_note": "Avoir {number}",
        "st_charges": "Frais et intérêts encore dus",
        "st_summary": "Récapitulatif",
        "st_less_credits": "Moins avoirs et paiements sur votre compte",
        "st_balance": "Solde",
        "st_held_back": "Retenu tant que contesté",
        "st_to_pay_now": "À payer maintenant",
        "st_later": "À échoir plus tard",
        "st_credit_left": "Crédit restant sur votre compte",
        "st_aging": "Antériorité des factures ouvertes",
        "st_days_1_30": "1–30 jours",
        "st_days_31_60": "31–60 jours",
        "st_days_61_90": "61–90 jours",
        "st_days_over_90": "Plus de 90 jours",
        "st_nothing_open": "Rien n'est ouvert sur votre compte aujourd'hui. Merci.",
        "st_pay": "Merci de virer le montant dû sur le compte suivant\u00a0:",
        "st_questions": "Contact pour votre compte",
    },
    # Spanish: formal "usted"; a letter's salutation ends with a colon.
    "es": {
        "name": "Español",
        "colon": ":",
        "greeting": "Estimado/a {name}:",
        "regards": "Atentamente",
        "invoice": "Factura",
        "issued": "Fecha",
        "due": "Vencimiento",
        "days_overdue": "Retraso",
        "open": "Importe pendiente",
        "not_yet_due": "vence en {days} días",
        "due_tomorrow": "vence mañana",
        "fee_basis": "según nuestras condiciones de pago",
        "total_invoices": "Facturas vencidas",
        "total_falling_due": "Facturas por vencer",
        "charges": "Gastos e intereses",
        "late_fee": "Gastos de reclamación",
        "and": "y",
        "interest": "Intereses de demora",
        "earlier": "de un aviso anterior",
        "part_paid": "{amount} ya pagados",
        "disputed_part": "{amount} en disputa, no reclamados",
        "amount_due": "Importe a pagar",
        "credits": "Saldo a su favor",
        "credits_hint": "Estos abonos aún no se han aplicado a ninguna factura; puede descontarlos.",
        "payment_on_account": "Pago {reference} a cuenta",
        "earlier_credits": "{count} abonos y pagos a cuenta anteriores",
        "pay_by": "Fecha límite de pago",
        "customer_number": "Número de cliente",
        "date": "Fecha",
        "reference_label": "Nuestra referencia",
        "bank": "Por favor, transfiera el importe a",
        "reference": "indicando su número de cliente",
        "payment_plan": (
            "Si en este momento le resulta difícil pagarlo todo de una vez, acordemos un plan de pagos: "
            "respóndanos o llame a {collector} y encontraremos un calendario que le convenga."
        ),
        "copy_mark": "COPIA",
        "copy_title": "Copia de la factura {number}",
        "copy_note": (
            "Esta es una copia de la factura {number}, que emitimos el {date}. "
            "No es una factura nueva: por favor, no la contabilice por segunda vez."
        ),
        "invoice_number": "Número de factura",
        "invoice_date": "Fecha de factura",
        "due_date": "Fecha de vencimiento",
        "your_reference": "Su número de pedido",
        "currency": "Moneda",
        "invoice_total": "Importe de la factura",
        "paid": "Pagado",
        "credited": "Abonado",
        "open_now": "Pendiente",
        "copy_charges": "Siguen pendientes además, por nuestros avisos sobre esta factura:",
        "open_with_charges": "Total pendiente, con gastos e intereses",
        "copy_settled": "No queda nada pendiente en esta factura.",
        "copy_pay": "Por favor, transfiera el importe pendiente a más tardar el {date} a",
        "copy_pay_undisputed": "Por favor, transfiera los {amount} no disputados a más tardar el {date} a",
        "copy_all_disputed": (
            "Todo el importe pendiente está en disputa: no reclamamos nada de esta factura hasta que "
            "se resuelva."
        ),
        "quoting_invoice": "indicando el número de factura",
        "copy_questions": "Preguntas sobre esta factura",
        # A statement of account (pdf/statement.html, email/statement/).
        "st_title": "Extracto de cuenta",
        "st_intro": "Todo lo pendiente en su cuenta a {date}, según nuestra contabilidad.",
        "st_invoices": "Facturas pendientes",
        "st_days_overdue": "Días de retraso",
        "st_not_due": "aún no vencida",
        "st_total": "Importe",
        "st_disputed": "en disputa",
        "st_disputed_part": "{amount} en disputa",
        "st_planned_part": "{amount} a pagar más adelante según el plan de pagos",
        "st_credits": "Abonos y pagos a cuenta",
        "st_credit_note": "Abono {number}",
        "st_charges": "Gastos e intereses aún pendientes",
        "st_summary": "Resumen",
        "st_less_credits": "Menos abonos y pagos a cuenta",
        "st_balance": "Saldo",
        "st_held_back": "Retenido mientras está en disputa",
        "st_to_pay_now": "A pagar ahora",
        "st_later": "Vence más adelante",
        "st_credit_left": "Crédito restante en su cuenta",
        "st_aging": "Antigüedad de las facturas pendientes",
        "st_days_1_30": "1–30 días",
        "st_days_31_60": "31–60 días",
        "st_days_61_90": "61–90 días",
        "st_days_over_90": "Más de 90 días",
        "st_nothing_open": "Hoy no hay nada pendiente en su cuenta. Gracias.",
        "st_pay": "Por favor, transfiera el importe debido a",
        "st_questions": "Preguntas sobre su cuenta",
    },
    # Italian: the formal plural ("vi preghiamo") of business letters.
    "it": {
        "name": "Italiano",
        "colon": ":",
        "greeting": "Gentile {name},",
        "regards": "Cordiali saluti",
        "invoice": "Fattura",
        "issued": "Data",
        "due": "Scadenza",
        "days_overdue": "Ritardo",
        "open": "Importo residuo",
        "not_yet_due": "scade tra {days} giorni",
        "due_tomorrow": "scade domani",
        "fee_basis": "come da condizioni di pagamento",
        "total_invoices": "Fatture scadute",
        "total_falling_due": "Fatture in scadenza",
        "charges": "Spese e interessi",
        "late_fee": "Spese di sollecito",
        "and": "e",
        "interest": "Interessi di mora",
        "earlier": "da un sollecito precedente",
        "part_paid": "di cui {amount} pagati",
        "disputed_part": "di cui {amount} contestati, non richiesti",
        "amount_due": "Totale da pagare",
        "credits": "Crediti sul vostro conto",
        "credits_hint": "Questi crediti non sono ancora stati imputati a una fattura; potete detrarli.",
        "payment_on_account": "Pagamento {reference} sul vostro conto",
        "earlier_credits": "{count} note di credito e pagamenti precedenti sul vostro conto",
        "pay_by": "Da pagare entro",
        "customer_number": "Codice cliente",
        "date": "Data",
        "reference_label": "Nostro riferimento",
        "bank": "Vi preghiamo di effettuare il bonifico a",
        "reference": "indicando il vostro codice cliente",
        "payment_plan": (
            "Se in questo momento vi è difficile pagare tutto in una volta, concordiamo un piano di "
            "pagamento: rispondeteci o chiamate {collector} e troveremo insieme un calendario adatto a voi."
        ),
        "copy_mark": "COPIA",
        "copy_title": "Copia della fattura {number}",
        "copy_note": (
            "Questa è una copia della fattura {number}, che abbiamo emesso il {date}. "
            "Non è una nuova fattura: vi preghiamo di non registrarla una seconda volta."
        ),
        "invoice_number": "Numero fattura",
        "invoice_date": "Data fattura",
        "due_date": "Data di scadenza",
        "your_reference": "Vostro numero d'ordine",
        "currency": "Valuta",
        "invoice_total": "Importo fattura",
        "paid": "Pagato",
        "credited": "Accreditato",
        "open_now": "Residuo",
        "copy_charges": "Restano inoltre da pagare, dai nostri solleciti relativi a questa fattura:",
        "open_with_charges": "Totale da pagare, con spese e interessi",
        "copy_settled": "Su questa fattura non resta nulla da pagare.",
        "copy_pay": "Vi preghiamo di bonificare l'importo residuo entro il {date} a",
        "copy_pay_undisputed": "Vi preghiamo di bonificare i {amount} non contestati entro il {date} a",
        "copy_all_disputed": (
            "L'intero importo residuo è contestato: fino alla sua definizione non chiediamo nulla su "
            "questa fattura."
        ),
        "quoting_invoice": "indicando il numero della fattura",
        "copy_questions": "Domande su questa fattura",
        # A statement of account (pdf/statement.html, email/statement/).
        "st_title": "Estratto conto",
        "st_intro": "Tutto ciò che risulta aperto sul vostro conto al {date} secondo la nostra contabilità.",
        "st_invoices": "Fatture aperte",
        "st_days_overdue": "Giorni di ritardo",
        "st_not_due": "non ancora scaduta",
        "st_total": "Importo",
        "st_disputed": "contestata",
        "st_disputed_part": "di cui {amount} contestati",
        "st_planned_part": "di cui {amount} da pagare più avanti secondo il piano di rateizzazione",
        "st_credits": "Note di credito e pagamenti sul vostro conto",
        "st_credit_note": "Nota di credito {number}",
        "st_charges": "Spese e interessi ancora dovuti",
        "st_summary": "Riepilogo",
        "st_less_credits": "Meno note di credito e pagamenti sul vostro conto",
        "st_balance": "Saldo",
        "st_held_back": "Trattenuto finché contestato",
        "st_to_pay_now": "Da pagare ora",
        "st_later": "In scadenza più avanti",
        "st_credit_left": "Credito residuo sul vostro conto",
        "st_aging": "Anzianità delle fatture aperte",
        "st_days_1_30": "1–30 giorni",
        "st_days_31_60": "31–60 giorni",
        "st_days_61_90": "61–90 giorni",
        "st_days_over_90": "Oltre 90 giorni",
        "st_nothing_open": "Oggi non risulta nulla di aperto sul vostro conto. Grazie.",
        "st_pay": "Vi preghiamo di bonificare l'importo dovuto a",
        "st_questions": "Domande sul vostro conto",
    },
}


@dataclass(frozen=True)
class Formats:
    """How a language writes the dates, amounts and rates a text fills in."""

    date: Callable[[dt.date], str]  # in tables and beside a label
    long_date: Callable[[dt.date], str]  # in running text
    thousands: str
    decimal_mark: str
    money: str  # "{currency} {amount}" or "{amount} {currency}"; the amount carries its sign
    percent: str  # "{rate}%"

    def number(self, digits: str) -> str:
        """Python's "1,234.50" with this language's separators."""
        return digits.translate({ord(","): self.thousands, ord("."): self.decimal_mark})


def _german_date(day: dt.date) -> str:
    return f"{day:%d.%m.%Y}"


# Month names written out, not taken from the C locale: setlocale is for the
# whole process, and a worker writes to customers in several languages at once.
DUTCH_MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
                "oktober", "november", "december")


FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
                 "octobre", "novembre", "décembre")


SPANISH_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
                  "octubre", "noviembre", "diciembre")


ITALIAN_MONTHS = ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
                  "settembre", "ottobre", "novembre", "dicembre")


def _dutch_long_date(day: dt.date) -> str:
    return f"{day.day} {DUTCH_MONTHS[day.month - 1]} {day.year}"


def _french_long_date(day: dt.date) -> str:
    """"5 août 2025"; the first of a month is "1er mars 2026", as French writes it."""
    return f"{'1er' if day.day == 1 else day.day} {FRENCH_MONTHS[day.month - 1]} {day.year}"


def _spanish_long_date(day: dt.date) -> str:
    return f"{day.day} de {SPANISH_MONTHS[day.month - 1]} de {day.year}"


def _italian_long_date(day: dt.date) -> str:
    """"5 agosto 2025"; the first of a month is "1º marzo 2026", as Italian writes it."""
    return f"{'1º' if day.day == 1 else day.day} {ITALIAN_MONTHS[day.month - 1]} {day.year}"


FORMATS: dict[str, Formats] = {
    "en": Formats(date=format_day, long_date=format_day_long, thousands=",", decimal_mark=".",
                  money="{currency} {amount}", percent="{rate}%"),
    # German letters write a day as 05.08.2025 in running text too.
    "de": Formats(date=_german_date, long_date=_german_date, thousands=".", decimal_mark=",",
                  money="{amount} {currency}", percent="{rate} %"),
    # Dutch: 05-08-2025 in tables, "uiterlijk 5 augustus 2025" in sentences; no space before "%".
    "nl": Formats(date=lambda day: f"{day:%d-%m-%Y}", long_date=_dutch_long_date, thousands=".",
                  decimal_mark=",", money="{amount} {currency}", percent="{rate}%"),
    # French: 05/08/2025, "au plus tard le 5 août 2025"; a narrow no-break space
    # between thousands and before "%", a no-break space before the currency, so
    # that "1 234,56 EUR" never breaks over two lines.
    "fr": Formats(date=lambda day: f"{day:%d/%m/%Y}", long_date=_french_long_date, thousands="\u202f",
                  decimal_mark=",", money="{amount}\u00a0{currency}", percent="{rate}\u202f%"),
    # Spanish: 05/08/2025, "a más tardar el 5 de agosto de 2025", "1.234,56 EUR", "8,50 %".
    "es": Formats(date=lambda day: f"{day:%d/%m/%Y}", long_date=_spanish_long_date, thousands=".",
                  decimal_mark=",", money="{amount} {currency}", percent="{rate} %"),
    # Italian: 05/08/2025, "entro il 5 agosto 2025", "1.234,56 EUR", "8,50%".
    "it": Formats(date=lambda day: f"{day:%d/%m/%Y}", long_date=_italian_long_date, thousands=".",
                  decimal_mark=",", money="{amount} {currency}", percent="{rate}%"),
}


@dataclass(frozen=True)
class NoticeLine:
    number: str
    issue_date: dt.date
    due_date: dt.date
    days_overdue: int  # as of the action's planned date; negative before the due date
    open_amount: Decimal  # what the notice asks for: less what is under dispute
    currency: str
    disputed_amount: Decimal = ZERO  # under an open dispute of part of the invoice, not asked for


@dataclass(frozen=True)
class NoticeCredit:
    number: str  # a credit note's number, or a payment's reference
    issued_on: dt.date | None  # or the day the payment was received
    amount: Decimal  # what is not yet allocated to an invoice
    currency: str
    payment: bool = False  # money received and kept on account, not a credit note
    # A line standing for this many older credits, summed (issued_on: the newest of them).
    earlier_count: int = 0


@dataclass(frozen=True)
class NoticeCharge:
    kind: str  # ChargeKind value
    amount: Decimal
    currency: str
    basis: str
    earlier: bool = False  # charged by an earlier notice and still standing
    paid: Decimal = Decimal("0")  # already paid of it; `amount` is what is left
    # Interest: the rate and the (balance, days) it ran on, written out in the
    # notice's language; without them (older charges) `basis` is shown as it is.
    rate_percent: Decimal | None = None
    stretches: tuple[tuple[Decimal, int], ...] = ()


@dataclass(frozen=True)
class Notice:
    tone: int
    language: str
    customer_name: str
    account_number: str
    recipient_name: str
    postal_address: str
    letter_date: dt.date
    pay_by: dt.date
    lines: tuple[NoticeLine, ...]
    collector_name: str
    collector_email: str = ""
    credits: tuple[NoticeCredit, ...] = ()
    charges: tuple[NoticeCharge, ...] = ()
    interest_rate_percent: Decimal = Decimal("0")
    offer_payment_plan: bool = False
    reference: str = ""  # ours, e.g. "D-123" for action 123, printed beside the date
    # A copy of each invoice listed goes with the e-mail (a friendly "did it
    # reach you?"); the text says so. Never on a letter: it is one page.
    copies_attached: bool = False
    # The words in force for its tone and language when it was built, as saved
    # on the Wording page (WORDING_PARTS → text; wording.wording_in_force), or
    # None for the shipped files.
    wording: dict[str, str] | None = None


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Totals:
    currency: str
    invoices: Decimal
    charges: Decimal
    due: Decimal
    credits: Decimal = field(default=ZERO)
    # Of `invoices`, what is overdue (a day or more past its due date); the
    # rest falls due today or later.
    overdue: Decimal = field(default=ZERO)

    @property
    def falling_due(self) -> Decimal:
        return self.invoices - self.overdue


class UnknownName(Exception):
    """A template names a value its text is not given: a misspelt
    `{{ pay_byy }}`, or a label `{{ t.pay_byy }}` that no language has.

    Not a KeyError on purpose: Django reads a KeyError, wherever a name is
    looked up, as "no such value" and prints nothing, so customers were asked
    to "arrange payment by ?". Any other exception leaves the template."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Values(dict):
    """One of the dicts a text is given (its labels `t`, our letterhead
    `company`, each listed invoice, credit or charge): a key it does not hold
    is a mistake in the template, where a plain dict would let Django print
    nothing ("Invoice : 120.00" for a misspelt `{{ line.nmber }}`)."""

    def __init__(self, values: dict, *, name: str) -> None:
        super().__init__(values)
        self.name = name

    def __missing__(self, key):
        raise UnknownName(f"{self.name}.{key}")


def _strict(value, name: str):
    """`value` with every dict in it, however deep in lists and tuples, a
    _Values named by the way a template reaches it ("lines.0")."""
    kind = type(value)
    if kind is dict:
        return _Values({key: _strict(item, f"{name}.{key}") for key, item in value.items()}, name=name)
    if kind is list or kind is tuple:
        return kind(_strict(item, f"{name}.{index}") for index, item in enumerate(value))
    return value


class _TextContext(Context):
    """The values a customer's text is rendered with; naming one it does not
    have fails. Every value a text may leave out (no recipient's name, no
    payment plan, an invoice no one disputes) is in its context as blank, so
    `{% if payment_plan %}` and `{{ line.disputed }}` read it as nothing; a
    name that is in no context, in `{{ }}`, a condition, a loop or a filter's
    argument, can only be a mistake in the wording, and one that reached a
    customer as a blank."""

    def __getitem__(self, key):
        for values in reversed(self.dicts):
            if key in values:
                return values[key]
        raise UnknownName(key)

    def __setitem__(self, key, value):
        # `{% for line in lines %}` binds each item here: a misspelt part of
        # it is then named as the template writes it, "line.nmber".
        if type(value) is _Values:
            value.name = key
        super().__setitem__(key, value)


# Django reads a name that has no part it asks for ({{ customer_name.nmbr }},
# {{ forloop.countr }}, the same in a condition or a filter's argument) as
# blank or false, whatever the context. In a customer's text it can only be a
# mistake in the wording, so there it is refused by the name the template
# writes. Every other template, and every name a value does have (a string's
# methods, the loop's counter), reads as Django reads it; what Django will
# not call (alters_data, a method needing arguments) it still prints as nothing.
_django_resolve = Variable.resolve


def _resolve(variable: Variable, context):
    try:
        return _django_resolve(variable, context)
    except VariableDoesNotExist:
        if isinstance(context, _TextContext):
            raise UnknownName(variable.var) from None
        raise


Variable.resolve = _resolve


def _render_text(name: str, context: dict, template=None) -> str:
    template = template or get_template(name)
    values = {key: _strict(value, key) for key, value in context.items()}
    # The engine's own autoescaping, as Django's render_to_string applies it.
    return template.template.render(_TextContext(values, autoescape=template.backend.engine.autoescape))


def _named(load, name: str, *args):
    """`load(name, *args)`, a template error naming the template: an install's
    own wording that does not parse must say which file to look at (the error
    may be in a layout it extends or includes, which Django does not say
    outside debug mode)."""
    try:
        return load(name, *args)
    except TemplateSyntaxError as error:
        raise TemplateSyntaxError(f"{name} (or a template it uses): {error}") from error
    except UnknownName as error:
        raise TemplateSyntaxError(
            f"{name} (or a template it uses) names {error.name!r}, which is not a value it is given"
        ) from None
    except NoReverseMatch as error:
        raise TemplateSyntaxError(f"{name} (or a template it uses) links to a page that does not exist: "
                                  f"{error}") from None


def render_to_string(name: str, context: dict, template=None) -> str:
    """The template `name` rendered; with `template`, that one (compiled from
    a wording edited on the Wording page) under its name."""
    return _named(_render_text, name, context, template)


def wording_language(language: str, tone: int) -> tuple[str, str]:
    """The language the notice is written in, and a note when it is not the one asked for."""
    asked = (language or FALLBACK_LANGUAGE).lower()
    written = written_language(WordingKind.DUNNING, tone, asked)
    return written, "" if written == asked else f"no wording in language {asked!r} yet: written in English"


def written_language(kind: str, tone: int, language: str) -> str:
    """The language a document of `kind` (a notice of `tone`) asked for in `language` is written in."""
    return text_language(language, wording_template_name(kind, tone, "{language}", "subject"))


def totals(notice: Notice) -> list[Totals]:
    """Per currency: invoices (of them, the overdue ones), standing charges and
    what is due, credits apart: the customer may deduct them, the notice does not."""
    currencies = sorted(
        {line.currency for line in notice.lines} | {c.currency for c in notice.charges}
    )
    result = []
    for currency in currencies:
        invoices = sum((x.open_amount for x in notice.lines if x.currency == currency), ZERO)
        overdue = sum((x.open_amount for x in notice.lines if x.currency == currency and x.days_overdue > 0),
                      ZERO)
        charges = sum((x.amount for x in notice.charges if x.currency == currency), ZERO)
        credits = sum((x.amount for x in notice.credits if x.currency == currency), ZERO)
        result.append(Totals(currency, invoices, charges, invoices + charges, credits, overdue=overdue))
    return result


def render_email(notice: Notice) -> RenderedEmail:
    context = _context(notice, layout="email/dunning/_layout.html")
    return _email(context["template_base"], context, _notice_wording(notice, context))


def _email(base: str, context: dict, edited: dict | None = None) -> RenderedEmail:
    """The subject, text and html templates under `base` (or their `edited`
    wording), each with the subject rendered."""
    edited = edited or {}
    subject = _subject(_render_part(base, "subject", context, edited))
    return RenderedEmail(
        subject=subject,
        text=_tidy_text(_render_part(base, "text", {**context, "subject": subject}, edited)),
        html=_render_part(base, "html", {**context, "subject": subject}, edited),
    )


def _render_part(base: str, part: str, context: dict, edited: dict) -> str:
    name = f"{base}{WORDING_SUFFIXES[part]}" + (WORDING_EDITED if part in edited else "")
    return render_to_string(name, context, edited.get(part))


def render_letter_html(notice: Notice) -> str:
    """The letter's HTML: the e-mail's subject and HTML wording in the letter's layout."""
    context = _context(notice, layout="pdf/dunning_letter.html")
    edited = _notice_wording(notice, context)
    subject = _subject(_render_part(context["template_base"], "subject", context, edited))
    return _render_part(context["template_base"], "html", {**context, "subject": subject}, edited)


def render_letter(notice: Notice) -> bytes:
    """The one-page letter as PDF bytes."""
    return html_to_pdf(render_letter_html(notice))


# --- wording edited on the Wording page ---------------------------------------

# A document's words as the Wording page edits them (a notice of a tone, an
# invoice copy's or a statement's cover e-mail, in a language): the subject's
# text and the blocks of the text and HTML e-mails, without the frame every
# one of them has in its file (the layout it extends, the subject's
# autoescape off). The frame is ours to keep: a notice's layouts put the same
# blocks in the e-mail and in the letter, so they keep saying the same.
# An invoice copy and a statement have a fourth part, the words printed on
# their PDF (`pdf/<kind>/<lang>.html`, filling the blocks of `pdf/<kind>.html`
# around the tables and figures, which stay ours).
WORDING_PARTS = ("subject", "text", "html", "pdf")
WORDING_SUFFIXES = {"subject": ".subject.txt", "text": ".txt", "html": ".html", "pdf": ".html"}
# The blocks each kind's layouts fill, in the text and the HTML e-mail alike;
# none for an e-mail that is text only, whose file is the whole text.
WORDING_BLOCKS = {
    WordingKind.DUNNING: ("intro", "request"),
    WordingKind.INVOICE_COPY: ("body",),
    WordingKind.STATEMENT: ("body",),
    WordingKind.CALL_SUMMARY: (),
    WordingKind.PLAN_AGREED: (),
}
# The blocks each kind's PDF layout has for its words: the sentence before
# the statement's tables, under the figures how to pay and whom to ask, and
# each heading and label the page prints (the copy's COPY mark among them), so
# that a company writes its own vocabulary in every language. A block a saved
# version leaves out prints the layout's label, which is the shipped word.
# A label the statement says twice (the customer number's, "Open invoices",
# "Total") is one block, which the layout keeps for both places; a version
# saved when each place had a block of its own still prints, its second
# block ("running_head_customer_number", "summary_invoices", "aging_total")
# simply not read.
PDF_LABEL_BLOCKS = {
    WordingKind.INVOICE_COPY: (
        "title", "customer_number", "date", "copy_mark", "copy_note", "invoice_number", "invoice_date",
        "due_date",
        "your_reference", "currency", "invoice_total", "paid", "credited", "open_now", "copy_charges",
        "open_with_charges", "disputed", "late_fee", "fee_basis", "interest", "interest_basis",
    ),
    WordingKind.STATEMENT: (
        "title", "customer_number", "date", "nothing_open", "invoices", "invoice",
        "issued", "due", "days_overdue",
        "total", "open", "not_due", "under_dispute", "under_dispute_part", "planned_later", "charges",
        "late_fee", "fee_basis", "interest", "interest_basis", "credits", "credit_note", "payment_on_account",
        "credits_hint",
        "summary",
        "summary_charges", "summary_credits", "balance", "later", "held_back", "credit_left", "to_pay_now",
        "aging", "aging_not_due", "aging_1_30", "aging_31_60", "aging_61_90", "aging_over_90",
    ),
}
PDF_SENTENCE_BLOCKS = {
    WordingKind.INVOICE_COPY: ("payment",),
    WordingKind.STATEMENT: ("intro", "payment"),
}
PDF_BLOCKS = {kind: PDF_SENTENCE_BLOCKS[kind] + PDF_LABEL_BLOCKS[kind] for kind in PDF_SENTENCE_BLOCKS}
# The words in a table's cells are blocks inside the layout's loop over its
# rows: each is given the row, by the name the Wording page's placeholder
# table gives a list's item ({{ credit.number }}), from the list it is in.
PDF_ROW_BLOCKS = {
    "not_due": ("line", "lines"), "under_dispute": ("line", "lines"), "under_dispute_part": ("line", "lines"),
    "planned_later": ("line", "lines"), "credit_note": ("credit", "credits"),
    "payment_on_account": ("credit", "credits"), "late_fee": ("charge", "charges"),
    "fee_basis": ("charge", "charges"), "interest": ("charge", "charges"),
    "interest_basis": ("charge", "charges"),
}
# A notice's letter has blocks of its own in the HTML part, which its e-mail
# has not: the labels of its meta table (the customer number's, in the
# running head of the pages after the first too; the date's; our
# reference's) and the closing above the signature.
LETTER_BLOCKS = ("customer_number", "date", "our_reference", "regards")
# After a template's name in an error: the text is the one saved on the page, not the file.
WORDING_EDITED = " as edited on the Wording page"


def wording_parts(kind: str) -> tuple[str, ...]:
    """The parts a kind's wording has: a text-only e-mail has no HTML, a notice's
    letter is its HTML part, and only a document printed apart has PDF words."""
    if not WORDING_BLOCKS[kind]:
        return ("subject", "text")
    return WORDING_PARTS if kind in PDF_BLOCKS else ("subject", "text", "html")


def wording_blocks(kind: str, part: str) -> tuple[str, ...]:
    """The blocks a part fills: the PDF layout's for the PDF words, else the
    e-mail's (and for a notice's HTML part, the letter's too)."""
    if part == "subject":
        return ()
    if kind == WordingKind.DUNNING and part == "html":
        return WORDING_BLOCKS[kind] + LETTER_BLOCKS
    return PDF_BLOCKS[kind] if part == "pdf" else WORDING_BLOCKS[kind]


def wording_frame(kind: str, part: str) -> tuple[str, str]:
    """What a part's file has around its words: the subject's (and a text-only
    e-mail's text's) autoescape off, or the layout the e-mail extends (a
    notice's HTML, the e-mail's or the letter's, as the context's `layout` says)."""
    if part == "subject" or not WORDING_BLOCKS[kind]:
        return "{% autoescape off %}", "{% endautoescape %}"
    if kind == WordingKind.DUNNING and part == "html":
        return "{% extends layout %}\n", ""
    if part == "pdf":
        return f'{{% extends "pdf/{kind}.html" %}}\n', ""
    return f'{{% extends "email/{kind}/_layout{WORDING_SUFFIXES[part]}" %}}\n', ""


def wording_template_name(kind: str, tone: int, language: str, part: str) -> str:
    """The file a document's part is shipped in: email/<kind>/[<tone>/]<language>.<part>,
    or for the PDF words pdf/<kind>/<language>.html."""
    if part == "pdf":
        return f"pdf/{kind}/{language}.html"
    folder = f"email/{kind}/{TONE_FOLDERS[Tone(tone)]}" if kind == WordingKind.DUNNING else f"email/{kind}"
    return f"{folder}/{language}{WORDING_SUFFIXES[part]}"


def wording_unframed(kind: str, part: str, source: str) -> str:
    """A wording file's text without its frame (the shipped files all have it)."""
    head, tail = wording_frame(kind, part)
    head, source = head.rstrip("\n"), source.rstrip("\n")
    if source.startswith(head) and source.endswith(tail):
        source = source[len(head):len(source) - len(tail)]
        return source.removeprefix("\n")
    return source


def _notice_wording(notice: Notice, context: dict) -> dict:
    return _wording_templates(WordingKind.DUNNING, notice.tone, context["language"], notice.wording)


def _wording_templates(kind: str, tone: int, language: str, wording: dict[str, str] | None) -> dict:
    """The compiled parts of a document's edited wording; none for the shipped files."""
    if wording is None:
        return {}
    return _wording_compiled(kind, tone, language, *(wording[part] for part in wording_parts(kind)))


# Keyed by the texts themselves: a new version is a new key, never a stale
# hit. 96: the 18 tones × languages of notices and the 24 other e-mails,
# edited, with room for the previews a manager tries in a web process.
@functools.lru_cache(maxsize=96)
def _wording_compiled(kind: str, tone: int, language: str, *sources: str) -> dict:
    compiled = {}
    for part, source in zip(wording_parts(kind), sources, strict=True):
        head, tail = wording_frame(kind, part)
        name = wording_template_name(kind, tone, language, part) + WORDING_EDITED
        compiled[part] = _named(_from_string, name, head + source + tail)
    return compiled


def _from_string(name: str, source: str):
    return _WordingTemplate(wording_engine().from_string(source))


# The e-mail and PDF layouts a wording's frame extends, and what they include:
# the only templates a saved wording's engine can load.
WORDING_LAYOUT_FOLDERS = ("email/", "pdf/")


class _LayoutsOnly(FilesystemLoader):
    """Our templates folders, and in them the e-mail and PDF templates alone:
    no admin page, error page or sign-in form for an include to print."""

    def get_template_sources(self, template_name):
        # Normalised first: "email/../500.html" is 500.html, which it may not read.
        if posixpath.normpath(template_name) == template_name and template_name.startswith(
                WORDING_LAYOUT_FOLDERS):
            yield from super().get_template_sources(template_name)


class _WordingEngine(Engine):
    # Django's engine adds its whole set of tags and filters to those it is
    # given; this one has only those it is given.
    default_builtins = []


@functools.cache
def wording_engine() -> Engine:
    """The engine a wording saved on the Wording page is compiled with: the
    tags and filters of ar_collections/wording_builtins.py and no tag library
    to load, our layouts and nothing else to extend or include. The page's
    checks refuse anything else at save time; this holds at send time for a
    text that never passed them (saved before a check existed, restored from
    a backup). Its layouts are read once a process, as the main engine's are;
    in DEBUG at every render, so that an edited layout shows at once."""
    main = engines["django"].engine
    loader = ("ar_collections.rendering._LayoutsOnly", list(main.dirs))
    return _WordingEngine(
        dirs=list(main.dirs), debug=main.debug, autoescape=main.autoescape,
        # The PDF layouts a wording extends are compiled by layout_tags.Loader, with their own tags.
        loaders=["ar_collections.layout_tags.Loader",
                 *([loader] if settings.DEBUG else [("django.template.loaders.cached.Loader", [loader])])],
        libraries={}, builtins=["ar_collections.wording_builtins"],
    )


@dataclass(frozen=True)
class _WordingTemplate:
    """A compiled wording as render_to_string takes a template: `.template`
    and `.backend.engine`, as Django's backend wraps one."""

    template: object

    @property
    def backend(self):
        return self

    @property
    def engine(self) -> Engine:
        return self.template.engine


def text_language(language: str, template: str) -> str:
    """The language a text is written in: the one asked for when we have its
    phrases and `template` ("…/{language}.txt") has its wording, else
    FALLBACK_LANGUAGE. Notices, invoice copies and call summaries all ask here."""
    language = (language or FALLBACK_LANGUAGE).lower()
    if language in LABELS:
        try:
            _named(get_template, template.format(language=language))
            return language
        except TemplateDoesNotExist:
            pass
    return FALLBACK_LANGUAGE


# --- Invoice copies ---------------------------------------------------------


@dataclass(frozen=True)
class InvoiceCopy:
    """One invoice as we issued it, what has come off it since and what is
    open: a copy for a customer who asked for one, not a reminder."""

    language: str
    number: str
    issue_date: dt.date
    due_date: dt.date
    currency: str
    total_amount: Decimal
    paid_amount: Decimal
    credited_amount: Decimal
    open_amount: Decimal
    customer_name: str
    account_number: str
    billing_address: str
    recipient_name: str  # whom the cover e-mail is to
    copy_date: dt.date
    # The day to pay by that the copy gives (dunning.copy_pay_by), which the
    # ladder's next step waits for.
    pay_by: dt.date
    sender_name: str
    sender_email: str = ""
    customer_reference: str = ""  # the customer's order number the invoice quotes
    # Fees and interest our reminders about it charged and that are still owed:
    # not part of the invoice, but what the customer has to pay with it.
    charges: tuple[NoticeCharge, ...] = ()
    # Of the open amount, what an open dispute covers: not asked for.
    disputed_amount: Decimal = ZERO
    # The cover e-mail's words in force for its language, as saved on the
    # Wording page (wording.wording_in_force), or None for the shipped files.
    wording: dict[str, str] | None = None


COPY_EMAIL = "email/invoice_copy/{language}"


def render_invoice_copy_email(copy: InvoiceCopy) -> RenderedEmail:
    """The cover e-mail of a copy: "as requested", in the copy's language."""
    context = _copy_context(copy)
    return _email(COPY_EMAIL.format(language=context["language"]), context,
                  _wording_templates(WordingKind.INVOICE_COPY, NO_TONE, context["language"], copy.wording))


def render_invoice_copy(copy: InvoiceCopy) -> bytes:
    """The one-page copy of the invoice as PDF bytes."""
    return render_invoice_copies([copy])


def render_invoice_copies(copies: Sequence[InvoiceCopy]) -> bytes:
    """Copies of several invoices in one PDF, a page each (an outgoing mail
    carries one attachment)."""
    return html_to_pdf(*(render_invoice_copy_html(copy) for copy in copies))


def render_invoice_copy_html(copy: InvoiceCopy) -> str:
    """The copy's page as HTML: the layout's tables with its words (the file's, or as edited)."""
    context = _copy_context(copy)
    return _pdf_words(WordingKind.INVOICE_COPY, context, copy.wording)


def _pdf_words(kind: str, context: dict, wording: dict[str, str] | None) -> str:
    """A PDF's HTML: its language's words, edited on the Wording page or as shipped."""
    edited = _wording_templates(kind, NO_TONE, context["language"], wording)
    name = wording_template_name(kind, NO_TONE, context["language"], "pdf")
    return render_to_string(name + (WORDING_EDITED if "pdf" in edited else ""), context, edited.get("pdf"))


def _copy_context(copy: InvoiceCopy) -> dict:
    language = text_language(copy.language, COPY_EMAIL + ".subject.txt")
    t = LABELS[language]
    currency = copy.currency
    owed = copy.open_amount + sum((c.amount for c in copy.charges), ZERO)
    return {
        "t": t,
        "language": language,
        "company": company(),
        "title": t["copy_title"].format(number=copy.number),
        "note": t["copy_note"].format(number=copy.number, date=_date(copy.issue_date, language)),
        "number": copy.number,
        "issue_date": _date(copy.issue_date, language),
        "due_date": _date(copy.due_date, language),
        "currency": currency,
        "customer_reference": copy.customer_reference,
        "total": _money(copy.total_amount, currency, language),
        "paid": _money(copy.paid_amount, currency, language),
        "credited": _money(copy.credited_amount, currency, language),
        "open": _money(copy.open_amount, currency, language),
        "settled": copy.open_amount == 0,
        "pay": (t["copy_pay_undisputed"].format(amount=_money(copy.open_amount - copy.disputed_amount,
                                                               currency, language),
                                                date=_date(copy.pay_by, language))
                if copy.disputed_amount else t["copy_pay"].format(date=_date(copy.pay_by, language))),
        # The same sentence's values, for PDF words of a company's own.
        "pay_by": _date(copy.pay_by, language),
        "undisputed": _money(copy.open_amount - copy.disputed_amount, currency, language),
        "disputed": (t["disputed_part"].format(amount=_money(copy.disputed_amount, currency, language))
                     if copy.disputed_amount else ""),
        # The same sentence's value, for PDF words of a company's own.
        "disputed_amount": _money(copy.disputed_amount, currency, language) if copy.disputed_amount else "",
        "all_disputed": (bool(copy.disputed_amount)
                         and disputed_in_full(copy.disputed_amount, copy.open_amount)),
        "charges": [
            {"label": t["late_fee"] if c.kind == "late_fee" else t["interest"],
             "basis": _charge_basis(c, t, language),
             "recorded": _basis_recorded(c),
             "amount": _money(c.amount, c.currency, language),
             "late_fee": c.kind == "late_fee"}
            for c in copy.charges
        ],
        "owed": _money(owed, currency, language),
        "customer_name": copy.customer_name,
        "account_number": copy.account_number,
        "address_lines": [x.strip() for x in copy.billing_address.splitlines() if x.strip()],
        # The copy's window is the invoice's: its billing address, no person
        # named (whom the cover e-mail is to may not be whom the invoice was).
        "window_name": "",
        "recipient_name": copy.recipient_name,
        "greeting": _greeting(t, copy.recipient_name),
        "copy_date": _date(copy.copy_date, language),
        "sender_name": copy.sender_name,
        "sender_email": copy.sender_email,
    }


# --- Statements of account -------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    """An open invoice as it stands on the statement's day."""

    number: str
    issue_date: dt.date
    due_date: dt.date
    currency: str
    total_amount: Decimal
    open_amount: Decimal
    days_late: int  # 0: not yet due (an invoice due today is not late yet)
    disputed_amount: Decimal = ZERO  # of the open amount, what an open dispute covers
    # Of the open amount, what an agreed payment plan asks for after the
    # statement's day: owed, but not before the instalments' dates.
    planned_later_amount: Decimal = ZERO


@dataclass(frozen=True)
class Statement:
    """Everything open on an account on one day, for its billing contact:
    the open invoices, the credits and payments not yet set against one, the
    fees and interest still owed. It asks for nothing by a date: it says
    where the account stands."""

    language: str
    customer_name: str
    account_number: str
    billing_address: str
    recipient_name: str  # whom it is for; the window names them unless the address does
    statement_date: dt.date
    lines: tuple[StatementLine, ...]
    credits: tuple[NoticeCredit, ...]
    charges: tuple[NoticeCharge, ...]
    # The account's collector, whom the customer asks about it.
    contact_name: str
    contact_email: str = ""
    # Whoever sends the cover e-mail, and a short note of theirs, word for word.
    sender_name: str = ""
    sender_email: str = ""
    note: str = ""
    # The cover e-mail's words in force for its language, as saved on the
    # Wording page (wording.wording_in_force), or None for the shipped files.
    wording: dict[str, str] | None = None


@dataclass(frozen=True)
class StatementTotals:
    currency: str
    invoices: Decimal
    charges: Decimal
    credits: Decimal
    balance: Decimal  # invoices + charges - credits
    aging: tuple[Decimal, ...]  # the invoices' open amounts by kpi.BUCKETS, adding up to `invoices`
    # The part of the invoices under an open dispute: owed on our books (in
    # the balance) but not asked for until the dispute is settled.
    disputed: Decimal = ZERO
    # What is open and not disputed on the invoices not yet due, and what a
    # payment plan in good standing asks for after the statement's day of
    # those overdue: owed, but not before their due dates or instalments.
    later: Decimal = ZERO

    @property
    def _due_now(self) -> Decimal:
        # The overdue invoices' undisputed part and the charges, less the
        # credits and payments on account (set against what is due first).
        return self.balance - self.later - self.disputed

    @property
    def to_pay_now(self) -> Decimal:
        """Never below nothing: credits beyond what is due are credit left."""
        return max(self._due_now, ZERO)

    @property
    def credit_left(self) -> Decimal:
        """Credits and payments on account beyond what is due now: they wait
        for what falls due later (or to be paid back), they are not a sum to
        pay. to_pay_now + later + disputed - credit_left is the balance."""
        return max(-self._due_now, ZERO)

    @property
    def differs_from_balance(self) -> bool:
        return bool(self.later or self.disputed or self.credit_left)


STATEMENT_EMAIL = "email/statement/{language}"


def statement_totals(statement: Statement) -> list[StatementTotals]:
    """Per currency (alphabetical), what the statement lists, summed: never
    one currency's amounts added to another's."""
    currencies = sorted({x.currency for x in statement.lines} | {x.currency for x in statement.credits}
                        | {x.currency for x in statement.charges})
    labels = [label for label, _ in kpi.BUCKETS]
    result = []
    for currency in currencies:
        lines = [x for x in statement.lines if x.currency == currency]
        aging = dict.fromkeys(labels, ZERO)
        for line in lines:
            aging[kpi.aging_bucket(line.days_late)] += line.open_amount
        invoices = sum((x.open_amount for x in lines), ZERO)
        charges = sum((x.amount for x in statement.charges if x.currency == currency), ZERO)
        credits = sum((x.amount for x in statement.credits if x.currency == currency), ZERO)
        disputed = sum((x.disputed_amount for x in lines), ZERO)
        later = sum((x.open_amount - x.disputed_amount if x.days_late <= 0 else x.planned_later_amount
                     for x in lines), ZERO)
        result.append(StatementTotals(currency, invoices, charges, credits, invoices + charges - credits,
                                      tuple(aging.values()), disputed, later))
    return result


def render_statement(statement: Statement) -> bytes:
    """The statement as PDF bytes, as many pages as it takes."""
    return html_to_pdf(render_statement_html(statement))


def render_statement_html(statement: Statement) -> str:
    """The statement as HTML: the layout's tables with its words (the file's, or as edited)."""
    return _pdf_words(WordingKind.STATEMENT, _statement_context(statement), statement.wording)


def render_statement_email(statement: Statement) -> RenderedEmail:
    """The cover e-mail of a statement, in the statement's language."""
    context = _statement_context(statement)
    return _email(STATEMENT_EMAIL.format(language=context["language"]), context,
                  _wording_templates(WordingKind.STATEMENT, NO_TONE, context["language"], statement.wording))


def _statement_context(statement: Statement) -> dict:
    language = text_language(statement.language, STATEMENT_EMAIL + ".subject.txt")
    t, number = LABELS[language], FORMATS[language].number
    sums = statement_totals(statement)

    def figure(amount: Decimal, currency: str) -> str:
        """An amount under its currency's column: the currency's places, no code."""
        sign, digits = money_digits(amount, currency)
        return sign + number(digits)

    address = [x.strip() for x in statement.billing_address.splitlines() if x.strip()]
    return {
        "t": t,
        "language": language,
        "company": company(),
        "title": t["st_title"],
        "intro": t["st_intro"].format(date=_long_date(statement.statement_date, language)),
        "customer_name": statement.customer_name,
        "account_number": statement.account_number,
        "address_lines": address,
        "window_name": "" if _names(address, statement.recipient_name) else statement.recipient_name,
        "recipient_name": statement.recipient_name,
        "greeting": _greeting(t, statement.recipient_name or statement.customer_name),
        "statement_date": _date(statement.statement_date, language),
        "statement_date_long": _long_date(statement.statement_date, language),
        "lines": [
            {
                "number": x.number,
                "issue_date": _date(x.issue_date, language),
                "due_date": _date(x.due_date, language),
                "overdue": str(x.days_late) if x.days_late > 0 else t["st_not_due"],
                "not_due": x.days_late <= 0,
                "total": _money(x.total_amount, x.currency, language),
                "open": _money(x.open_amount, x.currency, language),
                "disputed": ("" if not x.disputed_amount
                             else t["st_disputed"] if disputed_in_full(x.disputed_amount, x.open_amount)
                             else t["st_disputed_part"].format(amount=_money(x.disputed_amount, x.currency,
                                                                             language))),
                "disputed_in_full": disputed_in_full(x.disputed_amount, x.open_amount),
                "disputed_amount": (_money(x.disputed_amount, x.currency, language)
                                    if x.disputed_amount else ""),
                # Of an overdue invoice only: one not yet due is due later whole.
                "planned": (t["st_planned_part"].format(
                    amount=_money(x.planned_later_amount, x.currency, language))
                    if x.planned_later_amount and x.days_late > 0 else ""),
                "planned_amount": (_money(x.planned_later_amount, x.currency, language)
                                   if x.planned_later_amount and x.days_late > 0 else ""),
            }
            for x in statement.lines
        ],
        "count": len(statement.lines),
        "credits": [
            {"label": (t["payment_on_account"].format(reference=x.number) if x.payment
                       else t["st_credit_note"].format(number=x.number)),
             "date": _date(x.issued_on, language) if x.issued_on else "",
             "amount": _money(x.amount, x.currency, language),
             # The label's parts, for PDF words of a company's own: a credit note's
             # number, or the reference of a payment kept on account.
             "number": x.number, "payment": x.payment}
            for x in statement.credits
        ],
        "charges": [
            {"label": t["late_fee"] if x.kind == "late_fee" else t["interest"],
             "basis": _charge_basis(x, t, language),
             "recorded": _basis_recorded(x),
             "amount": _money(x.amount, x.currency, language),
             "late_fee": x.kind == "late_fee"}
            for x in statement.charges
        ],
        "nothing_open": not (statement.lines or statement.credits or statement.charges),
        "currencies": [s.currency for s in sums],
        "summary": [
            (t["st_invoices"], [figure(s.invoices, s.currency) for s in sums]),
            (t["charges"], [figure(s.charges, s.currency) for s in sums]),
            (t["st_less_credits"], [figure(s.credits, s.currency) for s in sums]),
        ],
        "balances": [figure(s.balance, s.currency) for s in sums],
        # Said only when the balance is not simply what to pay now: when some
        # of it falls due later or is under dispute, or credits exceed it;
        # each row only where some currency has something in it.
        "to_pay_now": ([figure(s.to_pay_now, s.currency) for s in sums]
                       if any(s.differs_from_balance for s in sums) else []),
        "later": ([figure(s.later, s.currency) for s in sums] if any(s.later for s in sums) else []),
        "held_back": ([figure(s.disputed, s.currency) for s in sums]
                      if any(s.disputed for s in sums) else []),
        "credit_left": ([figure(s.credit_left, s.currency) for s in sums]
                        if any(s.credit_left for s in sums) else []),
        "balance": ", ".join(_money(s.balance, s.currency, language) for s in sums),
        # The cover e-mail's words for the same, said on the same condition.
        "to_pay_now_said": (", ".join(_money(s.to_pay_now, s.currency, language) for s in sums)
                            if any(s.differs_from_balance for s in sums) else ""),
        "later_said": ", ".join(_money(s.later, s.currency, language) for s in sums if s.later),
        "held_back_said": ", ".join(_money(s.disputed, s.currency, language) for s in sums if s.disputed),
        "credit_left_said": ", ".join(_money(s.credit_left, s.currency, language) for s in sums
                                      if s.credit_left),
        "aging_labels": [t["st_not_due"].capitalize(), t["st_days_1_30"], t["st_days_31_60"],
                         t["st_days_61_90"], t["st_days_over_90"], t["st_total"]],
        "aging": [(s.currency, [figure(x, s.currency) for x in (*s.aging, s.invoices)])
                  for s in sums if s.invoices],
        "contact_name": statement.contact_name,
        "contact_email": statement.contact_email,
        "sender_name": statement.sender_name or statement.contact_name,
        "sender_email": statement.sender_email,
        "note": statement.note,
    }


# --- Call summaries ---------------------------------------------------------


@dataclass(frozen=True)
class CallSummary:
    """What a collector and a contact said on a call, for the contact."""

    language: str
    recipient_name: str
    customer_name: str
    account_number: str
    notes: str
    collector_name: str
    promise_amount: Decimal | None = None
    promise_currency: str = ""
    promised_on: dt.date | None = None
    promise_invoices: tuple[str, ...] = ()
    # Its words in force for its language, as saved on the Wording page
    # (wording.wording_in_force), or None for the shipped files.
    wording: dict[str, str] | None = None


CALL_SUMMARY_EMAIL = "email/call_summary/{language}"


def render_call_summary(summary: CallSummary) -> tuple[str, str]:
    """The summary's subject and text, in the contact's language."""
    context = _call_summary_context(summary)
    return _text_email(CALL_SUMMARY_EMAIL, WordingKind.CALL_SUMMARY, context, summary.wording)


def _text_email(base: str, kind: str, context: dict, wording: dict[str, str] | None) -> tuple[str, str]:
    """A text-only e-mail's subject and text under `base`, or its edited wording."""
    language = context["language"]
    base = base.format(language=language)
    edited = _wording_templates(kind, NO_TONE, language, wording)
    subject = _subject(_render_part(base, "subject", context, edited))
    return subject, _tidy_text(_render_part(base, "text", context, edited))


def _call_summary_context(summary: CallSummary) -> dict:
    language = text_language(summary.language, CALL_SUMMARY_EMAIL + ".subject.txt")
    promised = summary.promise_amount is not None
    context = {
        "t": LABELS[language],
        "language": language,
        "recipient_name": summary.recipient_name,
        "greeting": _greeting(LABELS[language], summary.recipient_name),
        "customer_name": summary.customer_name,
        "account_number": summary.account_number,
        "notes": summary.notes,
        "collector_name": summary.collector_name,
        "promise_amount": (_money(summary.promise_amount, summary.promise_currency, language)
                           if promised else ""),
        "promised_on": _long_date(summary.promised_on, language) if promised else "",
        "promise_invoices": ", ".join(summary.promise_invoices),
        "promise_count": len(summary.promise_invoices),
    }
    return context


# --- An agreed payment plan -------------------------------------------------


@dataclass(frozen=True)
class PlanAgreed:
    """A payment plan a manager approved, for the customer's billing contact:
    what is to be paid when, for which invoices."""

    language: str
    recipient_name: str
    customer_name: str
    account_number: str
    currency: str
    total_amount: Decimal
    instalments: tuple[tuple[int, dt.date, Decimal], ...]  # (number, due on, amount), in order
    invoices: tuple[str, ...]
    sender_name: str
    # What came in on the invoices since the plan was proposed: it counts
    # towards the first instalments, and the customer should know so.
    paid_amount: Decimal = ZERO
    # A manager's new schedule for a plan in force: the customer is told it
    # replaces the one agreed, with the instalments still to pay.
    rescheduled: bool = False
    # Its words in force for its language, as saved on the Wording page
    # (wording.wording_in_force), or None for the shipped files.
    wording: dict[str, str] | None = None


PLAN_AGREED_EMAIL = "email/plan_agreed/{language}"


def render_plan_agreed(plan: PlanAgreed) -> tuple[str, str]:
    """The schedule's subject and text, in the contact's language."""
    return _text_email(PLAN_AGREED_EMAIL, WordingKind.PLAN_AGREED, _plan_agreed_context(plan), plan.wording)


def _plan_agreed_context(plan: PlanAgreed) -> dict:
    language = text_language(plan.language, PLAN_AGREED_EMAIL + ".subject.txt")
    t = LABELS[language]
    context = {
        "t": t,
        "language": language,
        "greeting": _greeting(t, plan.recipient_name),
        "customer_name": plan.customer_name,
        "account_number": plan.account_number,
        "total": _money(plan.total_amount, plan.currency, language),
        "instalments": [{"number": number, "due_on": _long_date(due_on, language),
                         "amount": _money(amount, plan.currency, language)}
                        for number, due_on, amount in plan.instalments],
        "invoices": ", ".join(plan.invoices),
        "invoice_count": len(plan.invoices),
        "paid": _money(plan.paid_amount, plan.currency, language) if plan.paid_amount else "",
        "sender_name": plan.sender_name,
        "rescheduled": plan.rescheduled,
    }
    return context


# --- PDF --------------------------------------------------------------------


class ResourceRefused(ValueError):
    """A letter template asked for something other than our own static files."""


class LetterRenderError(RuntimeError):
    """WeasyPrint could not render a letter; the message says why."""


def static_roots() -> list[Path]:
    """Folders a letter may read from: our static sources and their collected copy."""
    roots = []
    for entry in settings.STATICFILES_DIRS:
        path = entry[1] if isinstance(entry, (tuple, list)) else entry
        roots.append(Path(path).resolve())
    if settings.STATIC_ROOT:
        roots.append(Path(settings.STATIC_ROOT).resolve())
    return roots


def static_file_for(url: str) -> Path:
    """The static file a `file://` URL names, or ResourceRefused."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ResourceRefused(
            f"refused to fetch {url!r}: a letter may only use our own static files (file:// URLs)"
        )
    # resolve() follows symlinks and "..", so neither can lead outside the roots.
    path = Path(url2pathname(unquote(parts.path))).resolve()
    if not any(path.is_relative_to(root) for root in static_roots()):
        raise ResourceRefused(
            f"refused to fetch {url!r}: {path} is outside our static files"
        )
    if not path.is_file():
        raise ResourceRefused(f"refused to fetch {url!r}: no such static file")
    return path


@functools.cache
def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFilesOnly(URLFetcher):
        """WeasyPrint's fetcher, cut down to reading our static files."""

        def __init__(self) -> None:
            # fail_on_errors: a refused resource stops the rendering instead of
            # being logged and left out of the letter.
            super().__init__(fail_on_errors=True, allowed_protocols=("file",))
            # Some callers inside WeasyPrint (an image in inline SVG) catch the
            # refusal and only log it; html_to_pdf reads this list afterwards.
            self.refused: list[str] = []

        def fetch(self, url: str, headers=None) -> URLFetcherResponse:
            try:
                path = static_file_for(url)
            except ResourceRefused as refusal:
                self.refused.append(str(refusal))
                raise
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(
                path.as_uri(), body=path.read_bytes(), headers={"Content-Type": content_type}
            )

    return StaticFilesOnly


def static_files_fetcher():
    """A WeasyPrint url_fetcher that reads our static files and refuses anything else."""
    return _fetcher_class()()


@functools.cache
def _font_config():
    """One Fontconfig set-up per process: building it scans every system font,
    which costs more than rendering a letter."""
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


@functools.lru_cache(maxsize=4)
def _stylesheet(path: str, mtime_ns: int):
    """The letter stylesheet, parsed once per process and file version."""
    from weasyprint import CSS

    return CSS(url=Path(path).as_uri(), url_fetcher=static_files_fetcher(), font_config=_font_config())


def letter_stylesheet():
    found = finders.find(LETTER_STYLESHEET)
    if not found:
        raise LetterRenderError(f"static file {LETTER_STYLESHEET} is missing")
    return _stylesheet(found, os.stat(found).st_mtime_ns)


def renderer_load() -> None:
    """Import WeasyPrint and what a render takes from it and from Pillow.

    Imported by the first render, they would take their time (seconds on a
    busy machine) from that task's time limit, and the limit striking inside
    the import leaves WeasyPrint half-imported in the process, where every
    later render fails another way. Workers call this when they start
    (arcrm/celery.py), before any task's time runs; elsewhere (the web, a
    command) the first render imports them as before."""
    from PIL import Image
    from weasyprint import CSS, HTML  # noqa: F401
    from weasyprint.text.fonts import FontConfiguration  # noqa: F401
    from weasyprint.urls import FatalURLFetchingError  # noqa: F401

    Image.preinit()  # the image formats Pillow otherwise imports at the first image it reads
    _fetcher_class()


# WeasyPrint (Pango underneath, and the one font set-up per process) is not
# safe to use from two threads at once: two renders side by side crashed the
# process (a segmentation fault in Pango's line breaking). Workers and web
# servers run in processes of their own, where this lock is never waited for;
# it matters to anything that renders from threads (a threaded server or pool).
_rendering = threading.Lock()


def html_to_pdf(*htmls: str) -> bytes:
    """Render our own HTML to PDF, the documents one after the other in one
    file; any resource outside our static files is refused."""
    with _rendering:
        return _html_to_pdf(*htmls)


def _html_to_pdf(*htmls: str) -> bytes:
    from weasyprint import HTML
    from weasyprint.urls import FatalURLFetchingError

    base = static_roots()[0].as_uri() + "/"
    fetcher = static_files_fetcher()
    try:
        documents = [
            HTML(string=html, base_url=base, url_fetcher=fetcher).render(
                stylesheets=[letter_stylesheet()], font_config=_font_config()
            )
            for html in htmls
        ]
        if len(documents) > 1:
            documents = [documents[0].copy([page for document in documents for page in document.pages])]
        pdf = documents[0].write_pdf()
    except FatalURLFetchingError as error:
        # A BaseException in WeasyPrint; turned into an ordinary error so the
        # caller's error handling (FAILED with the reason) sees it.
        raise LetterRenderError(str(error.__cause__ or error)) from error.__cause__
    if fetcher.refused:
        raise LetterRenderError(fetcher.refused[0])
    return pdf


# --- context ----------------------------------------------------------------


def _context(notice: Notice, *, layout: str) -> dict:
    language, _ = wording_language(notice.language, notice.tone)
    t = LABELS[language]
    lines = [
        {
            "number": x.number,
            "issue_date": _date(x.issue_date, language),
            "due_date": _date(x.due_date, language),
            "overdue": (
                str(x.days_overdue) if x.days_overdue >= 0
                else t["due_tomorrow"] if x.days_overdue == -1
                else t["not_yet_due"].format(days=-x.days_overdue)
            ),
            "amount": _money(x.open_amount, x.currency, language),
            "disputed": (t["disputed_part"].format(amount=_money(x.disputed_amount, x.currency, language))
                         if x.disputed_amount else ""),
        }
        for x in notice.lines
    ]
    charges = [
        {
            "label": t["late_fee"] if c.kind == "late_fee" else t["interest"],
            "basis": "; ".join(filter(None, [
                _charge_basis(c, t, language),
                c.paid and t["part_paid"].format(amount=_money(c.paid, c.currency, language)),
            ])),
            "earlier": c.earlier,
            "amount": _money(c.amount, c.currency, language),
        }
        for c in notice.charges
    ]
    credits = [
        {"number": (t["earlier_credits"].format(count=c.earlier_count) if c.earlier_count
                    else t["payment_on_account"].format(reference=c.number) if c.payment else c.number),
         "issued_on": _date(c.issued_on, language) if c.issued_on else "",
         "amount": _money(c.amount, c.currency, language)}
        for c in notice.credits
    ]
    sums = totals(notice)
    sum_lines = [
        {
            "currency": s.currency,
            "subtotals": _subtotals(s, t, language, charged=bool(notice.charges)),
            "charges": _money(s.charges, s.currency, language) if s.charges else "",
            "due": _money(s.due, s.currency, language),
        }
        for s in sums
    ]
    # One fee per currency the notice lists that the step has a fee in.
    new_fees = sorted((c for c in notice.charges if c.kind == "late_fee" and not c.earlier),
                      key=lambda c: c.currency)
    return {
        "layout": layout,
        "template_base": f"email/dunning/{TONE_FOLDERS[Tone(notice.tone)]}/{language}",
        "t": t,
        "language": language,
        "tone": TONE_FOLDERS[Tone(notice.tone)],
        "company": company(),
        "customer_name": notice.customer_name,
        "account_number": notice.account_number,
        "recipient_name": notice.recipient_name,
        "greeting": _greeting(t, notice.recipient_name or notice.customer_name),
        "address_lines": (address := [x.strip() for x in notice.postal_address.splitlines() if x.strip()]),
        # The recipient under the customer's name in the window, unless the
        # address names them already ("Attn. Petra Hoffmann").
        "window_name": "" if _names(address, notice.recipient_name) else notice.recipient_name,
        "letter_date": _date(notice.letter_date, language),
        "pay_by": _date(notice.pay_by, language),
        # For running text ("uiterlijk 15 maart 2026"), where a language writes
        # the month out; the statement's label gives the short form.
        "pay_by_long": _long_date(notice.pay_by, language),
        "lines": lines,
        **_text_columns(t, lines, sum_lines, credits),
        "count": len(lines),
        # A firm reminder's subject counts the overdue ones: it may list one falling due too.
        "overdue_count": sum(1 for x in notice.lines if x.days_overdue > 0),
        # Subjects name up to three invoices; more would not fit a subject line.
        "short_numbers": ", ".join(x.number for x in notice.lines[:3])
        + (f" (+{len(lines) - 3})" if len(lines) > 3 else ""),
        "before_due": all(x.days_overdue <= 0 for x in notice.lines),
        "copies_attached": notice.copies_attached,
        "totals": sum_lines,
        "amount_due": " + ".join(_money(s.due, s.currency, language) for s in sums),
        "charges": charges,
        "credits": credits,
        "late_fee": f" {t['and']} ".join(_money(c.amount, c.currency, language) for c in new_fees),
        "late_fees": len(new_fees),
        "interest_rate": _percent(notice.interest_rate_percent, language)
        if notice.interest_rate_percent > 0 else "",
        "payment_plan": t["payment_plan"].format(collector=notice.collector_name)
        if notice.offer_payment_plan else "",
        "collector_name": notice.collector_name,
        "collector_email": notice.collector_email,
        "reference": notice.reference,
    }


def _text_columns(
    t: dict[str, str], lines: list[dict], sums: list[dict], credits: list[dict]
) -> dict[str, int]:
    """The text e-mail's column widths (_statement.txt): each at least 16 and as
    wide as its widest value, so that in a fixed-width font every date and amount
    stands under its head however long an ERP's invoice number (up to 40
    characters), a "not yet due" in words ("fällig in 3 Tagen") or an amount
    is. The totals' labels span the columns before the amount. The credits
    below keep to the same rule: their dates start, and their amounts end, in
    one column however long a payment's reference or an amount is."""
    amounts = [line["amount"] for line in lines] + [s["due"] for s in sums] + [
        amount for s in sums for _, amount in s["subtotals"]]
    widths = {
        "number_width": _column(t["invoice"], (x["number"] for x in lines)),
        "overdue_width": _column(t["days_overdue"], (x["overdue"] for x in lines)),
        "amount_width": _column(t["open"], amounts),
        "credit_width": _column("", (c["number"] for c in credits)),
        "credit_amount_width": _column("", (c["amount"] for c in credits)),
    }
    # The issue and due dates' columns are 12 wide; a space after each column.
    widths["label_width"] = widths["number_width"] + 1 + 12 + 1 + 12 + 1 + widths["overdue_width"]
    return widths


def _column(head: str, values: Iterable[str]) -> int:
    """A text column's width: at least 16, and as wide as its head and its widest value."""
    return max(16, len(head), *(len(value) for value in values))


def _subtotals(s: Totals, t: dict[str, str], language: str, *, charged: bool) -> list[tuple[str, str]]:
    """The statement's (label, amount) lines above its charges: the overdue
    invoices and those falling due, each summed and called what it is. Shown
    when charges follow, or when the statement lists both kinds, so that the
    customer reads how much is overdue; a currency only a standing charge is
    in has none. What is due stays the sum of them all."""
    parts = [(t["total_invoices"], s.overdue), (t["total_falling_due"], s.falling_due)]
    parts = [(label, amount) for label, amount in parts if amount]
    if not (charged or len(parts) > 1):
        return []
    return [(label, _money(amount, s.currency, language)) for label, amount in parts]


def _names(address_lines: list[str], name: str) -> bool:
    """Whether a line of the address names `name`, as whole words: "Marktplatz 3"
    does not name Mark, "z. Hd. Mark" does."""
    if not (name := one_line(name)):
        return False
    pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)
    return any(pattern.search(line) for line in address_lines)


def company() -> dict[str, str]:
    """Our letterhead (settings COMPANY_NAME, COMPANY_ADDRESS, …)."""
    address = settings.COMPANY_ADDRESS
    return {
        "name": settings.COMPANY_NAME,
        "address": address,
        "address_line": ", ".join(x.strip() for x in address.splitlines() if x.strip()),
        "phone": settings.COMPANY_PHONE,
        "bank": settings.COMPANY_BANK,
        "email": _address_of(settings.DEFAULT_FROM_EMAIL),
    }


def _address_of(from_email: str) -> str:
    match = re.search(r"<([^>]+)>", from_email)
    return match.group(1) if match else from_email


def _charge_basis(charge: NoticeCharge, t: dict, language: str) -> str:
    """How a charge was worked out, for the customer: a fee by our terms (the
    policy and the step that charged it are ours to know), interest balance by
    balance in the notice's own number format."""
    if charge.kind == "late_fee":
        return t["fee_basis"]
    if _basis_recorded(charge):
        return charge.basis
    rate = _percent(charge.rate_percent, language)
    return " + ".join(f"{_money(balance, charge.currency, language)} × {rate} × {days}/365"
                      for balance, days in charge.stretches)


def _basis_recorded(charge: NoticeCharge) -> bool:
    """Interest charged before a charge kept its rate and balances: its basis
    can only be said as it was recorded then, in English ("EUR 500.00 × 8.00%
    × 12/365"), which a PDF's words may put otherwise ({% block interest_basis %})."""
    return charge.kind != "late_fee" and not (charge.stretches and charge.rate_percent is not None)


def _greeting(t: dict[str, str], name: str) -> str:
    return t["greeting"].format(name=name)


def _date(day: dt.date, language: str) -> str:
    return FORMATS[language].date(day)


def _long_date(day: dt.date, language: str) -> str:
    return FORMATS[language].long_date(day)


def _money(amount: Decimal, currency: str, language: str) -> str:
    """The amount with its currency's own places (none for yen), in the
    notice's number format: "EUR 1,234.50", German and Dutch "1.234,50 EUR",
    French "1 234,50 EUR"."""
    sign, digits = money_digits(amount, currency)
    return FORMATS[language].money.format(amount=sign + FORMATS[language].number(digits), currency=currency)


def _percent(rate: Decimal, language: str) -> str:
    return FORMATS[language].percent.format(rate=FORMATS[language].number(f"{rate:.2f}"))


def _subject(text: str) -> str:
    """A subject template's text on one line. The no-break spaces French puts
    in "1 234,56 EUR" and before "?" stay, so that no mail client breaks there."""
    return re.sub(r"[^\S\u00a0\u202f]+", " ", text).strip()


def _tidy_text(text: str) -> str:
    """Plain text without template whitespace: no trailing spaces, at most one blank line."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"
