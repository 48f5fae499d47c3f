"""The words printed on an invoice copy's and a statement's PDF, edited on the
Wording page beside their cover e-mail: per language, versioned, previewed as
a real PDF, refused when a copy could not be printed with them, and said by
the next copy or statement sent."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import replace
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse

from ar_collections import rendering, statements, wording, workspace
from ar_collections.models import NO_TONE, WordingKind, WordingVersion

from .conftest import frozen

HTMX = {"HX-Request": "true"}
COPY, STATEMENT = WordingKind.INVOICE_COPY, WordingKind.STATEMENT
TODAY = dt.date(2026, 4, 20)
QUOTE = "Please quote the invoice number with your payment"


def url(name: str, kind: str = COPY, language: str = "en") -> str:
    return reverse(f"collections:{name}", kwargs={"kind": kind, "language": language})


def with_pdf(kind: str, language: str, pdf: str) -> dict[str, str]:
    """The shipped text of the kind and language, with other words on the PDF."""
    return {**wording.shipped_parts(kind, NO_TONE, language), "pdf": pdf}


def save(manager, kind: str, language: str, pdf: str) -> WordingVersion:
    found = wording.wording_get(kind, NO_TONE, language)
    return wording.wording_save(wording=found, parts=with_pdf(kind, language, pdf), based_on=found.number,
                                actor=manager)


def words(text: str) -> str:
    return " ".join(text.split())


COPY_PDF = ("{% block payment %}<p>" + QUOTE + ": {{ number }}, by {{ pay_by }}, to {{ company.bank }}.</p>"
            "{% endblock %}")
GERMAN_COPY_PDF = ("{% block payment %}<p>Bitte geben Sie bei Zahlung die Rechnungsnummer {{ number }} an."
                   "</p>{% endblock %}")
GERMAN_STATEMENT_PDF = ("{% block intro %}<p>So steht Ihr Konto am {{ statement_date_long }}.</p>"
                        "{% endblock %}"
                        "{% block payment %}<p>Bitte geben Sie Ihre Kundennummer {{ account_number }} an."
                        "</p>{% endblock %}")


# --- the page --------------------------------------------------------------------


def test_an_invoice_copy_s_page_shows_the_words_on_its_pdf_in_its_language_without_their_frame(
    client, manager
):
    client.force_login(manager)

    page = client.get(url("wording_edit", COPY, "de")).text

    assert 'name="pdf"' in page and "Words on the PDF" in page
    field = html.unescape(page.split('name="pdf"', 1)[1].split("</textarea>", 1)[0])
    assert "{% block payment %}" in field
    assert "unter Angabe der Rechnungsnummer {{ number }}" in field
    assert "extends" not in field


def test_a_notice_s_page_has_no_separate_pdf_words_its_letter_is_its_html(client, manager):
    client.force_login(manager)

    page = client.get(reverse("collections:wording_edit", kwargs={"tone": 1, "language": "en"})).text

    assert 'name="html"' in page and 'name="pdf"' not in page


# --- saving ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_a_save_of_the_words_on_a_copy_s_pdf_is_a_version_with_the_words_before_and_after(
    client, manager, headers
):
    client.force_login(manager)
    posted = {"based_on": 0, **with_pdf(COPY, "en", COPY_PDF)}

    response = client.post(url("wording_edit"), posted, headers=headers)

    assert response.status_code == (200 if headers else 302)
    [version] = WordingVersion.objects.all()
    assert version.pdf == COPY_PDF
    assert version.pdf_before == wording.shipped_parts(COPY, NO_TONE, "en")["pdf"]
    assert "quoting invoice number {{ number }}" in version.pdf_before
    assert wording.wording_in_force(COPY, NO_TONE, "en")["pdf"] == COPY_PDF


@pytest.mark.parametrize(("source", "said"), [
    ("{% block payment %}Pay by {{ pay_byy }}.{% endblock %}",
     "Words on the PDF: it names 'pay_byy', which is not a value an invoice copy's e-mail is given."),
    ("{% block body %}Hello{% endblock %}",
     "Words on the PDF: line 1: the layout has no block 'body': the words go in {% block payment %} "
     "(under the amounts), and the headings and labels in a block each (title, customer_number, date,"),
    ("Thanks! {% block payment %}x{% endblock %}",
     "Words on the PDF: there are words outside the blocks ({% block payment %} (under the amounts), and a "
     "block for each heading and label), which the PDF never shows: put them in one of them."),
    ("{% block payment %}{% if settled %}Paid.{% endblock %}",
     "Words on the PDF: the template does not read"),
    ("{% block payment %}{{ customer_name|safe }}{% endblock %}",
     "Words on the PDF: the filter |safe is not allowed"),
    ("{% block payment %}{% include 'pdf/_letterhead.html' %}{% endblock %}",
     "Words on the PDF: line 1: the tag {% include %} is not allowed in wording"),
    ("   ", "Words on the PDF: it is empty; write what customers should read."),
])
def test_words_a_copy_could_not_be_printed_with_are_refused_and_the_saved_words_stay(
    client, manager, source, said
):
    save(manager, COPY, "en", COPY_PDF)
    client.force_login(manager)

    response = client.post(url("wording_edit"), {"based_on": 1, **with_pdf(COPY, "en", source)},
                           headers=HTMX)

    assert response.status_code == 422
    assert said in words(html.unescape(response.text))
    assert WordingVersion.objects.count() == 1
    assert wording.wording_in_force(COPY, NO_TONE, "en")["pdf"] == COPY_PDF


def test_a_statement_s_pdf_words_outside_its_two_blocks_are_refused_naming_both(manager):
    found = wording.wording_get(STATEMENT, NO_TONE, "en")

    problems = wording.wording_problems(found, with_pdf(STATEMENT, "en", "{% block body %}x{% endblock %}"))

    assert problems == ["Words on the PDF: line 1: the layout has no block 'body': the words go in "
                        "{% block intro %} (before the tables) and {% block payment %} (under the figures), "
                        "and the headings and labels in a block each ("
                        + ", ".join(rendering.PDF_LABEL_BLOCKS[STATEMENT]) + ")."]


# --- previews -------------------------------------------------------------------


def test_the_pdf_preview_prints_the_words_in_the_form_on_the_sample_copy_and_saves_nothing(
    client, manager, pdf_text
):
    client.force_login(manager)

    response = client.post(url("wording_letter"), {"based_on": 0, **with_pdf(COPY, "en", COPY_PDF)})

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = words(pdf_text(response.content))
    assert f"{QUOTE}: INV-2026-000001, by" in text
    assert "quoting invoice number" not in text  # the shipped sentence is replaced, not added to
    assert "Copy of invoice INV-2026-000001" in text  # the layout's tables stay around the words
    assert not WordingVersion.objects.exists()


def test_the_pdf_preview_of_a_statement_prints_its_german_words(client, manager, pdf_text):
    client.force_login(manager)

    response = client.post(url("wording_letter", STATEMENT, "de"),
                           {"based_on": 0, **with_pdf(STATEMENT, "de", GERMAN_STATEMENT_PDF)})

    assert response.status_code == 200
    text = words(pdf_text(response.content))
    assert "So steht Ihr Konto am" in text and "Bitte geben Sie Ihre Kundennummer C0000001 an." in text
    assert "laut unserer Buchhaltung offen ist" not in text
    assert not WordingVersion.objects.exists()


def test_a_pdf_preview_of_broken_words_says_why_and_prints_nothing(client, manager):
    client.force_login(manager)

    broken = with_pdf(COPY, "en", "{% block payment %}{{ nmber }}{% endblock %}")

    response = client.post(url("wording_letter"), {"based_on": 0, **broken})

    assert response.status_code == 422 and response["Content-Type"].startswith("text/html")
    assert "it names &#x27;nmber&#x27;, which is not a value" in response.text


# --- what is sent -----------------------------------------------------------------


@pytest.fixture
def account(make_customer, make_contact, make_invoice):
    customer = make_customer(name="Bäckerei Müller", legal_name="Bäckerei Müller GmbH")
    make_contact(customer, name="Petra Hoffmann", email="ap@baeckerei-mueller.test", is_primary_billing=True,
                 language="de", postal_address="Bäckerei Müller GmbH\nHauptstraße 5\n50667 Köln")
    make_invoice(customer, number="INV-2026-002701", issued=dt.date(2026, 2, 2), due=dt.date(2026, 3, 4),
                 amount="1250.00")
    return customer


def send_copy(account, collector, capture) -> None:
    with frozen(TODAY), capture(execute=True):
        workspace.invoice_copy_send(customer=account, invoice=account.invoices.get(),
                                    contact=account.contacts.get(), actor=collector, on=TODAY)


def test_the_next_copy_sent_prints_the_newest_german_words_on_its_pdf(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    save(manager, COPY, "de", GERMAN_COPY_PDF)
    send_copy(account, collector, django_capture_on_commit_callbacks)
    save(manager, COPY, "de", GERMAN_COPY_PDF.replace("Bitte geben Sie", "Geben Sie bitte"))
    send_copy(account, collector, django_capture_on_commit_callbacks)

    first, second = (words(pdf_text(next(m.iter_attachments()).get_content())) for m in smtp_server.messages)
    assert "Bitte geben Sie bei Zahlung die Rechnungsnummer INV-2026-002701 an." in first
    assert "Geben Sie bitte bei Zahlung die Rechnungsnummer INV-2026-002701 an." in second
    assert "unter Angabe der Rechnungsnummer" not in first + second


def test_german_words_on_the_pdf_leave_the_english_copies_as_shipped(manager, pdf_text):
    save(manager, COPY, "de", GERMAN_COPY_PDF)
    copy = wording.sample_invoice_copy(language="en", on=TODAY)

    english = rendering.render_invoice_copy(
        replace(copy, wording=wording.cover_wording_in_force(COPY, "en")))

    assert wording.cover_wording_in_force(COPY, "en") is None
    assert "quoting invoice number INV-2026-000001" in words(pdf_text(english))


def test_the_next_statement_sent_prints_the_edited_words_on_its_pdf(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    save(manager, STATEMENT, "de", GERMAN_STATEMENT_PDF)

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        statements.statement_send(customer=account, actor=collector, on=TODAY)

    (message,) = smtp_server.messages
    (attachment,) = list(message.iter_attachments())
    text = words(pdf_text(attachment.get_content()))
    assert "So steht Ihr Konto am 20.04.2026." in text
    assert f"Bitte geben Sie Ihre Kundennummer {account.account_number} an." in text
    assert "INV-2026-002701" in text  # the invoices' table is the layout's, as always


def test_a_version_saved_before_the_pdf_words_were_editable_prints_the_shipped_ones(manager, pdf_text):
    version = save(manager, COPY, "en", COPY_PDF)
    WordingVersion.objects.filter(pk=version.pk).update(pdf="")  # as the migration leaves older versions
    copy = wording.sample_invoice_copy(language="en", on=TODAY)

    in_force = wording.cover_wording_in_force(COPY, "en")
    text = words(pdf_text(rendering.render_invoice_copy(replace(copy, wording=in_force))))

    assert in_force["pdf"] == wording.shipped_parts(COPY, NO_TONE, "en")["pdf"]
    assert "quoting invoice number INV-2026-000001" in text


# --- the shipped words -----------------------------------------------------------


def visible(markup: str) -> str:
    """What a page says: its text without tags, comments or the spacing between them."""
    return words(html.unescape(re.sub(r"<[^>]+>", " ", markup.split("<body", 1)[1])))


@pytest.mark.parametrize("language", list(rendering.LABELS))
@pytest.mark.parametrize("settled", [False, True], ids=["open", "settled"])
def test_each_language_s_shipped_pdf_words_say_what_the_pdfs_said_before(db, language, settled):
    """The layouts alone still print the product's labels; each language's file must say the same."""
    copy = wording.sample_invoice_copy(language=language, on=TODAY)
    statement = wording.sample_statement(language=language, on=TODAY)
    if settled:
        copy = replace(copy, open_amount=rendering.ZERO, charges=())
        statement = replace(statement, lines=(), credits=(), charges=())

    assert (visible(rendering.render_invoice_copy_html(copy))
            == visible(render_to_string("pdf/invoice_copy.html", rendering._copy_context(copy))))
    assert (visible(rendering.render_statement_html(statement))
            == visible(render_to_string("pdf/statement.html", rendering._statement_context(statement))))


@pytest.mark.parametrize("language", list(rendering.LABELS))
def test_the_shipped_pdf_words_as_the_editor_shows_them_print_as_the_files_do(db, language):
    copy = wording.sample_invoice_copy(language=language, on=TODAY)
    statement = wording.sample_statement(language=language, on=TODAY)
    copy_parts = wording.shipped_parts(COPY, NO_TONE, language)
    statement_parts = wording.shipped_parts(STATEMENT, NO_TONE, language)

    assert (rendering.render_invoice_copy_html(replace(copy, wording=copy_parts))
            == rendering.render_invoice_copy_html(copy))
    assert (rendering.render_statement_html(replace(statement, wording=statement_parts))
            == rendering.render_statement_html(statement))


# --- the headings and labels ------------------------------------------------------


def relabelled(kind: str, language: str, **labels: str) -> str:
    """The shipped words on the kind's PDF in `language`, with some headings or labels of a company's own."""
    source = wording.shipped_parts(kind, NO_TONE, language)["pdf"]
    for block, label in labels.items():
        source, found = re.subn(r"({% block " + block + r" %}).*?({% endblock %})", rf"\g<1>{label}\g<2>",
                                source, flags=re.S)
        assert found == 1, block
    return source


def test_a_copy_s_page_offers_its_copy_mark_and_labels_in_its_language_for_editing(client, manager):
    client.force_login(manager)

    page = client.get(url("wording_edit", COPY, "nl")).text

    field = html.unescape(page.split('name="pdf"', 1)[1].split("</textarea>", 1)[0])
    assert "{% block copy_mark %}KOPIE{% endblock %}" in field
    assert "{% block invoice_total %}Factuurbedrag{% endblock %}" in field
    assert "each heading and label printed on it, the COPY mark too, in a block of its own" in page


def test_a_dutch_company_s_own_copy_mark_and_labels_print_on_the_next_copy_sent(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    account.contacts.update(language="nl")
    save(manager, COPY, "nl", relabelled(COPY, "nl", copy_mark="DUPLICAAT", invoice_total="Factuurtotaal",
                                         open_now="Nog te betalen"))
    send_copy(account, collector, django_capture_on_commit_callbacks)
    save(manager, COPY, "nl", relabelled(COPY, "nl", copy_mark="AFSCHRIFT", invoice_total="Factuurtotaal",
                                         open_now="Nog te betalen"))
    send_copy(account, collector, django_capture_on_commit_callbacks)

    first, second = (words(pdf_text(next(m.iter_attachments()).get_content())) for m in smtp_server.messages)
    # The mark is printed letter-spaced, which the read-back splits into letters.
    first_mark, second_mark = (text.replace(" ", "") for text in (first, second))
    assert "DUPLICAAT" in first_mark and "KOPIE" not in first_mark
    assert "Factuurtotaal" in first and "Nog te betalen" in first and "Factuurbedrag" not in first
    assert "AFSCHRIFT" in second_mark and "DUPLICAAT" not in second_mark  # the newest version, no restart
    assert "INV-2026-002701" in second and "1.250,00" in second  # the figures are the layout's


def test_a_french_company_s_own_statement_headings_print_on_the_next_statement_sent(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    account.contacts.update(language="fr")
    save(manager, STATEMENT, "fr", relabelled(STATEMENT, "fr", invoices="Vos factures ouvertes",
                                              days_overdue="Jours de retard", summary="Récapitulatif",
                                              aging="Ancienneté",
                                              aging_over_90="Plus de trois mois"))

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        statements.statement_send(customer=account, actor=collector, on=TODAY)

    (message,) = smtp_server.messages
    text = words(pdf_text(next(message.iter_attachments()).get_content()))
    for label in ("Vos factures ouvertes", "Jours de retard", "Récapitulatif", "Ancienneté",
                  "Plus de trois mois"):
        assert label in text
    assert "Factures impayées" not in text and "Plus de 90 jours" not in text
    assert "INV-2026-002701" in text


def test_the_pdf_preview_prints_the_headings_in_the_form_and_saves_nothing(client, manager, pdf_text):
    client.force_login(manager)
    source = relabelled(STATEMENT, "en", balance="Total owed to us", total="All of it")

    response = client.post(url("wording_letter", STATEMENT), {"based_on": 0, **with_pdf(STATEMENT, "en",
                                                                                       source)})

    assert response.status_code == 200
    text = words(pdf_text(response.content))
    assert "Total owed to us" in text and "All of it" in text
    assert not WordingVersion.objects.exists()


def test_a_label_block_the_pdf_has_not_is_refused_naming_the_blocks_and_the_saved_words_stay(
    client, manager
):
    saved = relabelled(COPY, "en", copy_mark="DUPLICATE")
    save(manager, COPY, "en", saved)
    client.force_login(manager)

    response = client.post(url("wording_edit"), {
        "based_on": 1, **with_pdf(COPY, "en", saved + "{% block copy_stamp %}DUPLICATE{% endblock %}")},
        headers=HTMX)

    assert response.status_code == 422
    said = words(html.unescape(response.text))
    assert "the layout has no block 'copy_stamp'" in said
    assert "copy_mark, copy_note, invoice_number" in said  # the label blocks there are, by name
    assert WordingVersion.objects.count() == 1
    assert wording.wording_in_force(COPY, NO_TONE, "en")["pdf"] == saved


def test_words_that_leave_out_a_label_s_block_print_the_shipped_label(manager, pdf_text):
    save(manager, COPY, "en", COPY_PDF)  # the payment block alone, as saved before labels were editable
    copy = wording.sample_invoice_copy(language="en", on=TODAY)

    text = words(pdf_text(rendering.render_invoice_copy(
        replace(copy, wording=wording.cover_wording_in_force(COPY, "en")))))

    assert "COPY" in text.replace(" ", "") and "Invoice total" in text and f"{QUOTE}: INV-2026-000001" in text


@pytest.mark.parametrize("language", list(rendering.LABELS))
def test_each_language_s_shipped_headings_print_what_the_pdfs_printed_before(db, language, pdf_text):
    """Read back from the PDFs: the language's file prints the product's labels, as the layout alone does."""
    copy = wording.sample_invoice_copy(language=language, on=TODAY)
    statement = wording.sample_statement(language=language, on=TODAY)
    # An invoice over 90 days late too, so that every aging column is printed.
    statement = replace(statement, lines=(*statement.lines, rendering.StatementLine(
        number="INV-2025-000009", issue_date=dt.date(2025, 12, 1), due_date=dt.date(2025, 12, 31),
        currency="EUR", total_amount=Decimal("10.00"), open_amount=Decimal("10.00"), days_late=110)))
    labels = rendering.LABELS[language]

    copy_text = words(pdf_text(rendering.render_invoice_copy(copy)))
    statement_text = words(pdf_text(rendering.render_statement(statement)))

    assert copy_text == words(pdf_text(rendering.html_to_pdf(
        render_to_string("pdf/invoice_copy.html", rendering._copy_context(copy)))))
    assert statement_text == words(pdf_text(rendering.html_to_pdf(
        render_to_string("pdf/statement.html", rendering._statement_context(statement)))))
    assert labels["copy_mark"] in copy_text.replace(" ", "")  # printed letter-spaced
    for key in ("invoice_total", "open_with_charges"):
        assert words(labels[key]) in copy_text
    for key in ("st_invoices", "st_days_overdue", "st_summary", "st_less_credits", "st_aging",
                "st_days_over_90"):
        assert words(labels[key]) in statement_text


def test_the_running_head_on_a_long_statement_s_later_pages_says_the_manager_s_label_as_written(
    manager, pdf_text
):
    save(manager, STATEMENT, "en",
         relabelled(STATEMENT, "en", customer_number='Our <b>"no."</b> & yours'))
    statement = wording.sample_statement(language="en", on=TODAY)
    line = statement.lines[0]
    # Enough invoices for a second page, whose running head names the account.
    statement = replace(statement, wording=wording.cover_wording_in_force(STATEMENT, "en"), lines=tuple(
        replace(line, number=f"INV-2026-{n:06d}") for n in range(1, 61)))

    text = words(pdf_text(rendering.render_statement(statement)))

    assert f'{statement.customer_name} · Our "no." & yours C0000001 · 20 Apr 2026' in text
    assert "Customer number C0000001 ·" not in text


# --- one block for a label said twice -----------------------------------------------


def long_statement(language: str = "en", wording_in_force=None):
    """The sample statement with enough invoices for a second page, whose running head names the account."""
    statement = wording.sample_statement(language=language, on=TODAY)
    line = statement.lines[0]
    return replace(statement, wording=wording_in_force, lines=tuple(
        replace(line, number=f"INV-2026-{n:06d}") for n in range(1, 61)))


def test_a_statement_label_said_twice_is_renamed_in_both_places_by_its_one_block(manager, pdf_text):
    save(manager, STATEMENT, "en", relabelled(STATEMENT, "en", customer_number="Account",
                                              invoices="Unpaid bills", total="Billed"))
    statement = long_statement(wording_in_force=wording.cover_wording_in_force(STATEMENT, "en"))

    text = pdf_text(rendering.render_statement(statement))

    said = words(text)
    assert re.search(r"\s{2}Account\s+C0000001$", text, re.M)  # the meta table
    assert f"{statement.customer_name} · Account C0000001 · 20 Apr 2026" in said  # the later pages' head
    assert said.count("Unpaid bills") == 2  # the invoices' heading and the summary's row
    assert re.search(r"^\s*Unpaid bills\s+[\d.,]+$", text, re.M)
    assert re.search(r"Billed\s+Open amount", text) and re.search(r"Over 90 days\s+Billed", text)
    for shipped in ("Customer number", "Open invoices", "Total"):
        assert shipped not in said


def test_the_statement_s_page_offers_each_label_said_twice_once(client, manager):
    client.force_login(manager)

    page = client.get(url("wording_edit", STATEMENT, "de")).text

    field = html.unescape(page.split('name="pdf"', 1)[1].split("</textarea>", 1)[0])
    assert "{% block customer_number %}Kundennummer{% endblock %}" in field
    for twin in ("running_head_customer_number", "summary_invoices", "aging_total"):
        assert twin not in field


def test_a_version_saved_with_a_label_s_twin_block_still_prints_and_its_twin_is_not_read(manager, pdf_text):
    """Saved when each place of a label had a block: the one block left drives both places."""
    source = (relabelled(STATEMENT, "en", invoices="Unpaid bills", total="Billed")
              + "{% block running_head_customer_number %}Twin number{% endblock %}"
              + "{% block summary_invoices %}Twin invoices{% endblock %}"
              + "{% block aging_total %}Twin total{% endblock %}")
    WordingVersion.objects.create(
        kind=STATEMENT, tone=NO_TONE, language="en", number=1, saved_by=manager,
        **{**wording.shipped_parts(STATEMENT, NO_TONE, "en"), "pdf": source})
    statement = long_statement(wording_in_force=wording.cover_wording_in_force(STATEMENT, "en"))

    text = words(pdf_text(rendering.render_statement(statement)))

    assert "Twin" not in text
    assert text.count("Unpaid bills") == 2 and "Open invoices" not in text
    assert f"{statement.customer_name} · Customer number C0000001 ·" in text
    assert "Billed Open amount" in text


# --- titles, the words in the tables' cells, the letter's running head --------------


INTEREST = rendering.NoticeCharge("interest", Decimal("12.34"), "EUR", "", rate_percent=Decimal("8"),
                                  stretches=((Decimal("1000"), 30),))


def every_cell(statement: rendering.Statement) -> rendering.Statement:
    """The sample statement with a row of each kind: part disputed, part due later by a plan, a payment
    kept on account, interest."""
    line = statement.lines[0]
    return replace(
        statement,
        lines=(*statement.lines, replace(line, number="INV-2026-000010", disputed_amount=Decimal("50.00")),
               replace(line, number="INV-2026-000011", planned_later_amount=Decimal("70.00"))),
        credits=(*statement.credits,
                 rendering.NoticeCredit("PAY-9", TODAY, Decimal("5.00"), "EUR", payment=True)),
        charges=(*statement.charges, INTEREST))


def test_a_company_s_own_statement_title_and_cell_words_print_with_their_row_s_values(manager, pdf_text):
    save(manager, STATEMENT, "en", relabelled(
        STATEMENT, "en", title="Where your account stands", not_due="due later",
        under_dispute="contested in full", under_dispute_part="{{ line.disputed_amount }} contested",
        planned_later="{{ line.planned_amount }} by instalments",
        credit_note="Credit memo {{ credit.number }}",
        payment_on_account="Received {{ credit.number }}, unallocated", late_fee="Reminder fee",
        fee_basis="per contract", interest="Late interest"))
    statement = every_cell(wording.sample_statement(language="en", on=TODAY))

    text = words(pdf_text(rendering.render_statement(
        replace(statement, wording=wording.cover_wording_in_force(STATEMENT, "en")))))

    for said in ("Where your account stands", "due later", "contested in full", "EUR 50.00 contested",
                 "EUR 70.00 by instalments", "Credit memo CN-000001", "Received PAY-9, unallocated",
                 "Reminder fee (per contract)", "Late interest (EUR 1,000.00 × 8.00% × 30/365)"):
        assert said in text
    for shipped in ("Statement of account", "not yet due", "under dispute",
                    "due later under the payment plan", "Credit note", "Payment PAY-9", "Late fee",
                    "as our terms", "Interest"):
        assert shipped not in text.replace("Held back while under dispute", "")  # a summary's label


def test_a_company_s_own_copy_title_and_cell_words_print_with_the_copy_s_values(manager, pdf_text):
    save(manager, COPY, "en", relabelled(
        COPY, "en", title="Duplicate of {{ number }}", disputed="{{ disputed_amount }} contested",
        late_fee="Reminder fee", fee_basis="per contract", interest="Late interest"))
    copy = wording.sample_invoice_copy(language="en", on=TODAY)
    copy = replace(copy, disputed_amount=Decimal("100.00"), charges=(*copy.charges, INTEREST),
                   wording=wording.cover_wording_in_force(COPY, "en"))

    text = words(pdf_text(rendering.render_invoice_copy(copy)))

    for said in ("Duplicate of INV-2026-000001", "EUR 100.00 contested", "Reminder fee (per contract)",
                 "Late interest (EUR 1,000.00 × 8.00% × 30/365)"):
        assert said in text
    for shipped in ("Copy of invoice", "under dispute, not asked for", "Late fee", "Interest"):
        assert shipped not in text


def test_a_cell_word_naming_a_part_its_row_has_not_is_refused_and_nothing_is_saved(manager):
    found = wording.wording_get(STATEMENT, NO_TONE, "en")

    with pytest.raises(ValidationError) as refused:
        wording.wording_save(wording=found, based_on=0, actor=manager, parts=with_pdf(
            STATEMENT, "en", relabelled(STATEMENT, "en", credit_note="Credit memo {{ credit.numbr }}",
                                        payment_on_account="Received {{ line.number }}")))

    said = " ".join(refused.value.messages)
    assert "'credit.numbr'" in said and "'line.number'" in said
    assert not WordingVersion.objects.exists()


def test_the_statement_s_placeholders_say_which_row_a_cell_word_is_given(client, manager):
    client.force_login(manager)

    page = visible(client.get(url("wording_edit", STATEMENT, "en")).text)

    assert ("On the PDF, {% block credit_note %} and {% block payment_on_account %} are given the row they "
            "print in as credit") in page
    assert "credit.number" in page and "line.disputed_amount" in page and "line.planned_amount" in page


def test_a_notice_s_own_customer_number_label_prints_at_the_top_and_atop_the_letter_s_later_pages(
    manager, pdf_text
):
    parts = wording.shipped_parts(WordingKind.DUNNING, 1, "en")
    parts["html"] = parts["html"].replace("{% block customer_number %}Customer number{% endblock %}",
                                          "{% block customer_number %}Your account{% endblock %}")
    found = wording.wording_get(WordingKind.DUNNING, 1, "en")
    wording.wording_save(wording=found, parts=parts, based_on=0, actor=manager)
    notice = wording.sample_notice(on=TODAY, tone=1, language="en")
    notice = replace(notice, wording=wording.wording_in_force(WordingKind.DUNNING, 1, "en"),
                     lines=tuple(replace(notice.lines[0], number=f"INV-{n}") for n in range(45)))

    text = pdf_text(rendering.render_letter(notice))

    assert re.search(r"\s{2}Your account\s+C0000001$", text, re.M)
    assert f"{notice.customer_name} · Your account C0000001 · 20 Apr 2026" in words(text)
    assert "Customer number" not in text
    assert "Your account" not in rendering.render_email(notice).html  # the e-mail's layout has no such label


@pytest.mark.parametrize("language", list(rendering.LABELS))
def test_each_language_s_shipped_titles_and_cell_words_print_what_the_pdfs_printed_before(
    db, language, pdf_text
):
    """Read back from the PDFs: the language's file prints the product's phrases, as the layout alone does."""
    copy = wording.sample_invoice_copy(language=language, on=TODAY)
    copy = replace(copy, disputed_amount=Decimal("100.00"), charges=(*copy.charges, INTEREST))
    statement = every_cell(wording.sample_statement(language=language, on=TODAY))
    notice = wording.sample_notice(on=TODAY, tone=2, language=language)
    notice = replace(notice, lines=tuple(replace(notice.lines[0], number=f"INV-{n}") for n in range(45)))
    labels = rendering.LABELS[language]

    copy_text = words(pdf_text(rendering.render_invoice_copy(copy)))
    statement_text = words(pdf_text(rendering.render_statement(statement)))
    letter_text = words(pdf_text(rendering.render_letter(notice)))

    assert copy_text == words(pdf_text(rendering.html_to_pdf(
        render_to_string("pdf/invoice_copy.html", rendering._copy_context(copy)))))
    assert statement_text == words(pdf_text(rendering.html_to_pdf(
        render_to_string("pdf/statement.html", rendering._statement_context(statement)))))
    assert words(labels["copy_title"].format(number=copy.number)) in copy_text
    for key in ("st_title", "st_not_due", "st_disputed", "late_fee", "interest", "fee_basis"):
        assert words(labels[key]) in statement_text
    assert words(labels["st_credit_note"].format(number="CN-000001")) in statement_text
    assert words(labels["payment_on_account"].format(reference="PAY-9")) in statement_text
    assert f"· {labels['customer_number']} C0000001 ·" in letter_text  # the later pages' head


# --- which document each block belongs to ------------------------------------------


def help_of(page: str, part: str) -> str:
    return words(html.unescape(page.split(f'id="id_{part}_helptext">', 1)[1].split("</p>", 1)[0]))


def test_a_statement_s_page_says_which_document_each_part_s_blocks_are_printed_in(client, manager):
    client.force_login(manager)

    page = client.get(url("wording_edit", STATEMENT, "en")).text

    assert help_of(page, "text") == ("The cover e-mail, as mail programs without HTML show it: "
                                     "{% block body %}.")
    assert help_of(page, "html") == ("The cover e-mail most customers read: {% block body %}. "
                                     "The statement goes with it as a PDF, whose words are below.")
    pdf = help_of(page, "pdf")
    assert pdf.startswith("Printed on the statement (the PDF), not in the cover e-mail: {% block intro %}, "
                          "{% block payment %}, {% block title %}, {% block customer_number %},")
    assert "{% block credit_note %}" in pdf
    assert ("a word changed in one is not changed in the other, and each part's field below says which "
            "document its blocks are printed in") in words(page)
    assert pdf.endswith("A heading renamed here is not renamed in the e-mail, which says its own words "
                        "above.")


def test_a_notice_s_page_says_the_customer_number_s_label_is_the_letter_s_alone(client, manager):
    client.force_login(manager)

    page = client.get(reverse("collections:wording_edit", kwargs={"tone": 2, "language": "de"})).text

    assert help_of(page, "html") == (
        "The e-mail most customers read, and the printed letter: {% block intro %} and {% block request %} "
        "in both; {% block customer_number %}, {% block date %}, {% block our_reference %}, "
        "{% block regards %} in the letter alone (the labels at its top, the customer number's atop its "
        "later pages too, and the closing above the signature).")


# --- the last fixed words: the copy's note, the letter's labels and closing, an older interest's basis ----


# Interest charged before a charge kept its rate and balances: its basis is the English record.
RECORDED_INTEREST = rendering.NoticeCharge("interest", Decimal("3.29"), "EUR", "EUR 500.00 × 8.00% × 30/365")


def test_a_german_company_s_own_note_on_the_copy_prints_with_the_invoice_s_number_and_date(manager, pdf_text):
    own = "Duplikat der Rechnung {{ number }} vom {{ issue_date }}, nicht erneut buchen."
    save(manager, COPY, "de", relabelled(COPY, "de", copy_note=own))
    copy = wording.sample_invoice_copy(language="de", on=TODAY)

    text = words(pdf_text(rendering.render_invoice_copy(
        replace(copy, wording=wording.cover_wording_in_force(COPY, "de")))))

    issued = rendering._date(copy.issue_date, "de")
    assert f"Duplikat der Rechnung INV-2026-000001 vom {issued}, nicht erneut buchen." in text
    assert "keine neue Rechnung" not in text


def test_a_notice_s_own_date_and_reference_labels_and_closing_print_on_its_letter_alone(manager, pdf_text):
    parts = wording.shipped_parts(WordingKind.DUNNING, 2, "de")
    for block, label in (("date", "Briefdatum"), ("our_reference", "Vorgang"),
                         ("regards", "Hochachtungsvoll")):
        parts["html"], found = re.subn(r"({% block " + block + r" %}).*?({% endblock %})",
                                       rf"\g<1>{label}\g<2>", parts["html"], flags=re.S)
        assert found == 1, block
    found = wording.wording_get(WordingKind.DUNNING, 2, "de")
    wording.wording_save(wording=found, parts=parts, based_on=0, actor=manager)
    notice = wording.sample_notice(on=TODAY, tone=2, language="de")
    notice = replace(notice, wording=wording.wording_in_force(WordingKind.DUNNING, 2, "de"))

    text = pdf_text(rendering.render_letter(notice))

    assert re.search(r"\s{2}Briefdatum\s+20\.04\.2026$", text, re.M)
    assert re.search(rf"\s{{2}}Vorgang\s+{notice.reference}$", text, re.M)
    assert re.search(r"^\s*Hochachtungsvoll$", text, re.M)
    assert not re.search(r"\bDatum\s+20\.04\.2026", text)  # the invoices' column keeps its own "Datum"
    for shipped in ("Unser Zeichen", "Mit freundlichen Grüßen"):
        assert shipped not in text
    assert "Mit freundlichen Grüßen" in rendering.render_email(notice).html  # the e-mail keeps its closing


def test_a_company_s_own_words_for_an_older_interest_s_basis_print_on_the_statement_and_the_copy(
    manager, pdf_text
):
    own = "{% if charge.recorded %}wie in unserer Mahnung berechnet{% else %}{{ charge.basis }}{% endif %}"
    save(manager, STATEMENT, "de", relabelled(STATEMENT, "de", interest_basis=own))
    save(manager, COPY, "de", relabelled(COPY, "de", interest_basis=own))
    statement = wording.sample_statement(language="de", on=TODAY)
    statement = replace(statement, charges=(*statement.charges, INTEREST, RECORDED_INTEREST),
                        wording=wording.cover_wording_in_force(STATEMENT, "de"))
    copy = wording.sample_invoice_copy(language="de", on=TODAY)
    copy = replace(copy, charges=(*copy.charges, INTEREST, RECORDED_INTEREST),
                   wording=wording.cover_wording_in_force(COPY, "de"))

    for text in (words(pdf_text(rendering.render_statement(statement))),
                 words(pdf_text(rendering.render_invoice_copy(copy)))):
        assert "Verzugszinsen (wie in unserer Mahnung berechnet) 3,29 EUR" in text
        assert "Verzugszinsen (1.000,00 EUR × 8,00 % × 30/365) 12,34 EUR" in text
        assert "EUR 500.00" not in text


@pytest.mark.parametrize("language", list(rendering.LABELS))
def test_each_language_s_shipped_note_letter_labels_closing_and_older_basis_print_what_they_did(
    db, language, pdf_text
):
    labels = rendering.LABELS[language]
    copy = wording.sample_invoice_copy(language=language, on=TODAY)
    copy = replace(copy, charges=(*copy.charges, RECORDED_INTEREST))
    statement = wording.sample_statement(language=language, on=TODAY)
    statement = replace(statement, charges=(*statement.charges, RECORDED_INTEREST))
    notice = wording.sample_notice(on=TODAY, tone=3, language=language)

    copy_text = words(pdf_text(rendering.render_invoice_copy(copy)))
    statement_text = words(pdf_text(rendering.render_statement(statement)))
    letter_text = words(pdf_text(rendering.render_letter(notice)))

    note = labels["copy_note"].format(number=copy.number, date=rendering._date(copy.issue_date, language))
    assert words(note) in copy_text
    for text in (copy_text, statement_text):
        assert f"{labels['interest']} (EUR 500.00 × 8.00% × 30/365)" in text
    assert f"{labels['date']} {rendering._date(TODAY, language)}" in letter_text
    assert f"{labels['reference_label']} {notice.reference}" in letter_text
    assert f"{labels['regards']} {notice.collector_name}" in letter_text
    for kind in (COPY, STATEMENT):
        assert "{% block interest_basis %}{{ charge.basis }}{% endblock %}" in wording.shipped_parts(
            kind, NO_TONE, language)["pdf"]
