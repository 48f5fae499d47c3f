"""The words printed on an invoice copy's and a statement's PDF, edited on the
Wording page beside their cover e-mail: per language, versioned, previewed as
a real PDF, refused when a copy could not be printed with them, and said by
the next copy or statement sent."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import replace

import pytest
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
     "(under the amounts)."),
    ("Thanks! {% block payment %}x{% endblock %}",
     "Words on the PDF: there are words outside {% block payment %} (under the amounts), which the PDF "
     "never shows: put them in it."),
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
                        "{% block intro %} (before the tables) and {% block payment %} (under the figures)."]


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
