"""The Wording pages for the e-mails an invoice copy and a statement go with,
and for the text-only e-mails of a call's summary and an agreed payment
plan: the same editor, checks, versions and previews as a notice's, by kind
and language; what the customer then gets says the newest version."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from ar_collections import rendering, statements, wording, workspace
from ar_collections.models import NO_TONE, Tone, WordingKind, WordingVersion

from .conftest import frozen

HTMX = {"HX-Request": "true"}
COPY, STATEMENT = WordingKind.INVOICE_COPY, WordingKind.STATEMENT
CALL, PLAN = WordingKind.CALL_SUMMARY, WordingKind.PLAN_AGREED
TODAY = dt.date(2026, 4, 20)

COPY_TEXT = {
    "subject": "Your copy of {{ number }}",
    "text": "{% block body %}Here is invoice {{ number }} again, as you asked.{% endblock %}",
    "html": "{% block body %}<p>Here is invoice <strong>{{ number }}</strong> again, as you asked.</p>"
            "{% endblock %}",
    "pdf": "{% block payment %}<p>Please quote {{ number }} with your payment.</p>{% endblock %}",
}
STATEMENT_TEXT = {
    "subject": "Where account {{ account_number }} stands",
    "text": "{% block body %}Attached: where your account stands today, {{ balance }} in all."
            "{% endblock %}",
    "html": "{% block body %}<p>Attached: where your account stands today, {{ balance }} in all.</p>"
            "{% endblock %}",
    "pdf": "{% block intro %}<p>Your account on {{ statement_date_long }}.</p>{% endblock %}"
           "{% block payment %}<p>Please quote {{ account_number }} with your payment.</p>{% endblock %}",
}


def url(name: str, kind: str = COPY, language: str = "en") -> str:
    return reverse(f"collections:{name}", kwargs={"kind": kind, "language": language})


def posted(based_on: int = 0, **parts) -> dict:
    return {"based_on": based_on, **COPY_TEXT, **parts}


def save(manager, parts: dict | None = None, *, kind: str = COPY, language: str = "en") -> WordingVersion:
    found = wording.wording_get(kind, NO_TONE, language)
    text = parts or (COPY_TEXT if kind == COPY else STATEMENT_TEXT)
    return wording.wording_save(wording=found, parts=text, based_on=found.number, actor=manager)


# --- who may ------------------------------------------------------------------

EVERY_POST = [
    ("wording_edit", posted()),
    ("wording_preview", posted()),
    ("wording_letter", posted()),
    ("wording_put_back", {"based_on": 1}),
]


CALL_TEXT = {
    "subject": "Our call about {{ account_number }}",
    "text": "{{ greeting }}\n\nThanks for the call about {{ customer_name }}."
            "{% if promise_amount %} You will pay {{ promise_amount }} by {{ promised_on }}.{% endif %}\n\n"
            "{{ collector_name }}\n",
}


@pytest.mark.parametrize("kind", [COPY, STATEMENT, CALL])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_collectors_and_read_only_colleagues_are_refused_every_page_and_post_of_a_cover_e_mail(
    client, collector, viewer, manager, headers, kind
):
    save(manager, CALL_TEXT if kind == CALL else None, kind=kind)
    for user in (collector, viewer):
        client.force_login(user)
        assert client.get(url("wording_edit", kind), headers=headers).status_code == 403
        for name, data in EVERY_POST:
            assert client.post(url(name, kind), data, headers=headers).status_code == 403, (user, name)
    assert WordingVersion.objects.count() == 1


def test_a_kind_or_language_no_document_is_written_in_is_not_found(client, manager):
    client.force_login(manager)

    assert client.get(url("wording_edit", "dunning")).status_code == 404  # a notice needs its tone
    assert client.get(url("wording_edit", "reminder")).status_code == 404
    assert client.get(url("wording_edit", COPY, "pt")).status_code == 404


# --- the editor ------------------------------------------------------------------


def test_a_cover_e_mail_never_edited_shows_its_shipped_text_without_its_frame(client, manager):
    client.force_login(manager)

    page = client.get(url("wording_edit", STATEMENT, "de")).text

    assert "<h1>Statement wording in Deutsch</h1>" in page
    assert "{% block body %}{% if nothing_open %}anbei erhalten Sie den Auszug Ihres Kontos" in page
    assert "extends" not in page.split("<form", 1)[1].split("</form>")[0]
    assert "Kontoauszug {{ account_number }} vom {{ statement_date }}" in page


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_a_save_of_an_invoice_copy_s_e_mail_is_a_version_with_who_when_before_and_after(
    client, manager, headers
):
    client.force_login(manager)
    shipped = wording.shipped_parts(COPY, NO_TONE, "en")

    response = client.post(url("wording_edit"), posted(), headers=headers)

    assert response.status_code == (200 if headers else 302)
    [version] = WordingVersion.objects.all()
    assert (version.kind, version.tone, version.language, version.number) == (COPY, NO_TONE, "en", 1)
    assert version.subject == COPY_TEXT["subject"] and version.text == COPY_TEXT["text"]
    assert version.subject_before == shipped["subject"] == "Copy of invoice {{ number }}"
    assert version.saved_by == manager
    assert wording.wording_in_force(COPY, NO_TONE, "en") == COPY_TEXT
    # The notices and the statement keep their own words.
    assert wording.wording_in_force(STATEMENT, NO_TONE, "en") is None
    assert wording.wording_in_force(WordingKind.DUNNING, Tone.FRIENDLY, "en") is None


@pytest.mark.parametrize(("part", "source", "said"), [
    ("subject", "Copy of {{ nmber }}",
     "Subject: it names 'nmber', which is not a value an invoice copy's e-mail is given."),
    ("text", "{% block intro %}Hello{% endblock %}",
     "Text e-mail: line 1: the layout has no block 'intro': the words go in {% block body %}"),
    ("text", "Hello {% block body %}x{% endblock %}",
     "Text e-mail: there are words outside {% block body %}, which the e-mail never shows"),
    ("html", "{% block body %}{{ customer_name|safe }}{% endblock %}",
     "HTML e-mail: the filter |safe is not allowed"),
    ("html", "{% block body %}{% load static %}{% endblock %}",
     "HTML e-mail: line 1: the tag {% load %} is not allowed in wording"),
    ("html", "{% block body %}{% if %}{% endblock %}", "HTML e-mail: the template does not read"),
    ("subject", "  ", "Subject: it is empty; write what customers should read."),
])
def test_a_save_an_invoice_copy_could_not_be_sent_with_is_refused_in_clear_words_and_changes_nothing(
    client, manager, part, source, said
):
    client.force_login(manager)

    response = client.post(url("wording_edit"), posted(**{part: source}), headers=HTMX)

    assert response.status_code == 422
    assert said in " ".join(response.text.replace("&#x27;", "'").replace("&quot;", '"').split())
    assert not WordingVersion.objects.exists()


def test_saving_the_text_a_statement_says_already_is_refused(manager):
    found = wording.wording_get(STATEMENT, NO_TONE, "fr")

    with pytest.raises(ValidationError, match="Nothing was changed: the text is the one statements say"):
        wording.wording_save(wording=found, parts=wording.shipped_parts(STATEMENT, NO_TONE, "fr"),
                             based_on=0, actor=manager)


def test_a_save_made_from_an_older_version_of_a_cover_e_mail_is_refused(client, manager, other_manager):
    save(other_manager)
    client.force_login(manager)

    response = client.post(url("wording_edit"), posted(based_on=0, subject="Mine"), headers=HTMX)

    assert response.status_code == 422
    assert "saved by mark after you opened it (version 1): nothing was saved" in response.text
    assert WordingVersion.objects.count() == 1


def test_put_back_makes_statements_say_the_shipped_text_again(client, manager):
    save(manager, kind=STATEMENT)
    client.force_login(manager)

    response = client.post(url("wording_put_back", STATEMENT), {"based_on": 1}, headers=HTMX)

    assert response.status_code == 200
    assert "Statement wording in English: statements say the shipped text again." in response.text
    assert [v.shipped for v in WordingVersion.objects.order_by("number")] == [False, True]
    assert wording.wording_in_force(STATEMENT, NO_TONE, "en") is None


# --- previews --------------------------------------------------------------------


def test_the_preview_shows_a_statement_s_e_mail_for_a_sample_statement_and_saves_nothing(client, manager):
    client.force_login(manager)

    response = client.post(url("wording_preview", STATEMENT),
                           {"based_on": 0, **STATEMENT_TEXT}, headers=HTMX)

    assert response.status_code == 200
    statement = wording.sample_statement(language="en", on=timezone.localdate())
    said = rendering.render_statement_email(replace(statement, wording=STATEMENT_TEXT))
    assert "Where account C0000001 stands" in response.text
    assert said.text.split("\n")[2] in response.text  # "Attached: where your account stands today, …"
    assert not WordingVersion.objects.exists()


def test_the_pdf_preview_of_an_invoice_copy_s_wording_is_the_sample_copy(client, manager, pdf_text):
    client.force_login(manager)

    response = client.post(url("wording_letter"), posted())

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert "Copy of invoice INV-2026-000001" in " ".join(pdf_text(response.content).split())
    assert not WordingVersion.objects.exists()


# --- sending -------------------------------------------------------------------


@pytest.fixture
def account(make_customer, make_contact, make_invoice):
    customer = make_customer(name="Bäckerei Müller", legal_name="Bäckerei Müller GmbH")
    make_contact(customer, name="Petra Hoffmann", email="ap@baeckerei-mueller.test", is_primary_billing=True,
                 language="de", postal_address="Bäckerei Müller GmbH\nHauptstraße 5\n50667 Köln")
    make_invoice(customer, number="INV-2026-002701", issued=dt.date(2026, 2, 2), due=dt.date(2026, 3, 4),
                 amount="1250.00")
    return customer


GERMAN_COPY = {
    "subject": "Ihre Kopie von {{ number }}",
    "text": "{% block body %}Hier ist die Rechnung {{ number }} noch einmal, wie gewünscht.{% endblock %}",
    "html": "{% block body %}<p>Hier ist die Rechnung <strong>{{ number }}</strong> noch einmal, "
            "wie gewünscht.</p>{% endblock %}",
    "pdf": "{% block payment %}<p>Bitte geben Sie bei Zahlung die Rechnungsnummer {{ number }} an."
           "</p>{% endblock %}",
}
GERMAN_STATEMENT = {
    "subject": "So steht Ihr Konto {{ account_number }}",
    "text": "{% block body %}Im Anhang: wie Ihr Konto heute steht, {{ balance }} insgesamt.{% endblock %}",
    "html": "{% block body %}<p>Im Anhang: wie Ihr Konto heute steht, <strong>{{ balance }}</strong> "
            "insgesamt.</p>{% endblock %}",
    "pdf": "{% block intro %}<p>Ihr Konto am {{ statement_date_long }}.</p>{% endblock %}"
           "{% block payment %}<p>Bitte geben Sie Ihre Kundennummer {{ account_number }} an.</p>"
           "{% endblock %}",
}


def test_an_invoice_copy_sent_through_the_outbox_carries_the_edited_words(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    save(manager, GERMAN_COPY, language="de")

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        workspace.invoice_copy_send(customer=account, invoice=account.invoices.get(),
                                    contact=account.contacts.get(), actor=collector, on=TODAY)

    (message,) = smtp_server.messages
    assert message["Subject"] == "Ihre Kopie von INV-2026-002701"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hier ist die Rechnung INV-2026-002701 noch einmal, wie gewünscht." in text
    assert "Petra Hoffmann" in text  # the layout's greeting around the words
    assert "<strong>INV-2026-002701</strong> noch einmal" in html
    (attachment,) = list(message.iter_attachments())
    assert "INV-2026-002701" in pdf_text(attachment.get_content())


def test_a_statement_sent_through_the_outbox_carries_the_edited_words(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    save(manager, GERMAN_STATEMENT, kind=STATEMENT, language="de")

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        statements.statement_send(customer=account, actor=collector, on=TODAY, note="Wie besprochen.")

    (message,) = smtp_server.messages
    assert message["Subject"] == f"So steht Ihr Konto {account.account_number}"
    text = message.get_body(("plain",)).get_content()
    assert "Im Anhang: wie Ihr Konto heute steht, 1.250,00 EUR insgesamt." in text
    assert "Wie besprochen." in text  # the layout's note around the words


def test_a_cover_e_mail_built_reads_its_newest_version_in_one_query(account, collector, manager,
                                                                   django_assert_num_queries):
    save(manager, GERMAN_STATEMENT, kind=STATEMENT, language="de")
    contact = account.contacts.get()

    with django_assert_num_queries(1):
        in_force = wording.cover_wording_in_force(STATEMENT, contact.language)

    assert in_force == GERMAN_STATEMENT


# --- the shipped text --------------------------------------------------------------


@pytest.mark.parametrize("language", list(rendering.LABELS))
def test_the_shipped_text_as_the_editor_shows_it_writes_every_cover_e_mail_as_the_files_do(db, language):
    """The editor takes the frame off a file and sending puts it back: nothing else may change."""
    copy = wording.sample_invoice_copy(language=language, on=TODAY)
    statement = wording.sample_statement(language=language, on=TODAY)
    copy_parts = wording.shipped_parts(COPY, NO_TONE, language)
    statement_parts = wording.shipped_parts(STATEMENT, NO_TONE, language)

    assert (rendering.render_invoice_copy_email(replace(copy, wording=copy_parts))
            == rendering.render_invoice_copy_email(copy))
    assert (rendering.render_statement_email(replace(statement, wording=statement_parts))
            == rendering.render_statement_email(statement))
    assert wording.wording_problems(wording.wording_get(COPY, NO_TONE, language), copy_parts) == []
    assert wording.wording_problems(wording.wording_get(STATEMENT, NO_TONE, language), statement_parts) == []


@pytest.mark.parametrize("language", list(rendering.LABELS))
def test_the_shipped_text_as_the_editor_shows_it_writes_every_call_summary_and_plan_as_the_files_do(
    db, language
):
    summary = wording.sample_call_summary(language=language, on=TODAY)
    plan = wording.sample_plan_agreed(language=language, on=TODAY)
    summary_parts = wording.shipped_parts(CALL, NO_TONE, language)
    plan_parts = wording.shipped_parts(PLAN, NO_TONE, language)

    assert set(summary_parts) == set(plan_parts) == {"subject", "text"}
    assert "autoescape" not in summary_parts["text"] and "{{ greeting }}" in summary_parts["text"]
    assert (rendering.render_call_summary(replace(summary, wording=summary_parts))
            == rendering.render_call_summary(summary))
    assert (rendering.render_plan_agreed(replace(plan, wording=plan_parts))
            == rendering.render_plan_agreed(plan))
    assert wording.wording_problems(wording.wording_get(CALL, NO_TONE, language), summary_parts) == []
    assert wording.wording_problems(wording.wording_get(PLAN, NO_TONE, language), plan_parts) == []


# --- text-only e-mails ----------------------------------------------------------------


def test_a_call_summary_s_page_edits_its_subject_and_whole_text_and_has_no_pdf(client, manager):
    client.force_login(manager)

    page = client.get(url("wording_edit", CALL)).text
    response = client.post(url("wording_edit", CALL), {"based_on": 0, **CALL_TEXT}, headers=HTMX)

    assert 'name="subject"' in page and 'name="text"' in page and 'name="html"' not in page
    assert "(PDF)" not in page
    assert response.status_code == 200
    [version] = WordingVersion.objects.all()
    assert (version.kind, version.subject, version.text, version.html) == (
        CALL, CALL_TEXT["subject"], CALL_TEXT["text"], "")
    assert version.text_before.startswith("{{ greeting }}\n\nThank you for talking to us today")
    assert client.post(url("wording_letter", CALL), {"based_on": 1, **CALL_TEXT}).status_code == 404


@pytest.mark.parametrize(("source", "said"), [
    ("{% block body %}Hi{% endblock %}", "Text: line 1: this e-mail has no blocks; write its text alone."),
    ("{{ greeting }} {{ balance }}",
     "Text: it names 'balance', which is not a value a call summary is given."),
    ("{{ notes|safe }}", "Text: the filter |safe is not allowed"),
])
def test_a_call_summary_it_could_not_be_sent_with_is_refused_and_changes_nothing(
    client, manager, source, said
):
    client.force_login(manager)

    response = client.post(url("wording_edit", CALL), {"based_on": 0, **CALL_TEXT, "text": source})

    assert response.status_code == 422
    assert said in " ".join(response.text.replace("&#x27;", "'").split())
    assert not WordingVersion.objects.exists()


def test_the_preview_of_a_plan_s_e_mail_is_its_text_for_a_sample_plan(client, manager):
    client.force_login(manager)
    text = ("{{ greeting }}\n\n"
            "{% for i in instalments %}{{ i.number }}: {{ i.amount }} by {{ i.due_on }}\n{% endfor %}")

    response = client.post(url("wording_preview", PLAN),
                           {"based_on": 0, "subject": "Your plan", "text": text}, headers=HTMX)

    assert response.status_code == 200
    assert "1: EUR 1,000.00 by" in response.text and "Your plan" in response.text
    assert "The HTML e-mail" not in response.text
    assert not WordingVersion.objects.exists()


def test_a_call_summary_sent_through_the_outbox_carries_the_edited_words(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    found = wording.wording_get(CALL, NO_TONE, "en")
    wording.wording_save(wording=found, parts=CALL_TEXT, based_on=0, actor=manager)
    contact = account.contacts.get()
    contact.language = "en"
    contact.save()

    with frozen(TODAY), django_capture_on_commit_callbacks(execute=True):
        workspace.call_log(
            customer=account, actor=collector, contact=contact, outcome="reached", notes="Pays on Friday.",
            email_summary=True, on=TODAY,
            promise=workspace.PromiseTerms(Decimal("1250.00"), dt.date(2026, 4, 24),
                                           list(account.invoices.all())),
        )

    (message,) = smtp_server.messages
    assert message["Subject"] == f"Our call about {account.account_number}"
    assert "Thanks for the call about Bäckerei Müller. You will pay EUR 1,250.00 by" in message.get_content()
