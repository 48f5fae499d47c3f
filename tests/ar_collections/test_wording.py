"""The Wording pages: managers read, preview and change the words customers
get; every save is a version, and notices say the newest."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from html import unescape

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from ar_collections import rendering, wording
from ar_collections.models import DunningAction, Tone, WordingKind, WordingVersion
from customers.models import Segment

from .conftest import DUE, frozen

HTMX = {"HX-Request": "true"}
FRIENDLY, FIRM, FINAL = Tone.FRIENDLY, Tone.FIRM, Tone.FINAL
DUNNING = WordingKind.DUNNING

NEW_TEXT = {
    "subject": "{% if before_due %}Soon due: {{ short_numbers }}"
               "{% else %}Still open: {{ short_numbers }}{% endif %}",
    "text": "{% block intro %}Our books show the invoices below as open, {{ recipient_name }}."
            "{% endblock %}\n{% block request %}Kindly settle them by {{ pay_by }}.{% endblock %}",
    "html": "{% block intro %}<p>Our books show the invoices below as open, {{ recipient_name }}.</p>"
            "{% endblock %}\n"
            "{% block request %}<p>Kindly settle them by <strong>{{ pay_by }}</strong>.</p>{% endblock %}",
}


def url(name: str, tone: int = FRIENDLY, language: str = "en") -> str:
    return reverse(f"collections:{name}", kwargs={"tone": tone, "language": language})


def posted(based_on: int = 0, **parts) -> dict:
    return {"based_on": based_on, **NEW_TEXT, **parts}


def saved(tone: int = FRIENDLY, language: str = "en") -> list[WordingVersion]:
    return list(WordingVersion.objects.filter(tone=tone, language=language).order_by("number"))


def save(manager, parts: dict | None = None, *, tone: int = FRIENDLY, language: str = "en") -> WordingVersion:
    found = wording.wording_get(DUNNING, tone, language)
    return wording.wording_save(wording=found, parts=parts or NEW_TEXT, based_on=found.number, actor=manager)


# --- who may ------------------------------------------------------------------

EVERY_VIEW = [
    ("get", "collections:wording", {}),
    ("get", "wording_edit", {}),
    ("post", "wording_edit", posted()),
    ("post", "wording_preview", posted()),
    ("post", "wording_letter", posted()),
    ("post", "wording_put_back", {"based_on": 1}),
]


@pytest.mark.parametrize(("method", "name", "data"), EVERY_VIEW)
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_collectors_and_read_only_colleagues_are_refused_every_wording_page_and_post(
    client, collector, viewer, manager, method, name, data, headers
):
    save(manager)  # something a put back could act on
    path = reverse(name) if name.startswith("collections:") else url(name)
    for user in (collector, viewer):
        client.force_login(user)
        response = getattr(client, method)(path, data, headers=headers)
        assert response.status_code == 403, user
    assert len(saved()) == 1


@pytest.mark.parametrize(("method", "name", "data"), EVERY_VIEW)
def test_the_wording_pages_need_a_login(db, client, method, name, data):
    path = reverse(name) if name.startswith("collections:") else url(name)

    response = getattr(client, method)(path, data)

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not WordingVersion.objects.exists()


def test_the_wording_page_is_reached_from_the_policy_pages_by_a_manager_only(client, manager, collector):
    client.force_login(manager)
    assert f'href="{reverse("collections:wording")}"' in client.get(reverse("collections:coming_up")).text
    client.force_login(collector)
    assert f'href="{reverse("collections:wording")}"' not in client.get(reverse("collections:runs")).text


def test_a_tone_and_language_notices_are_never_written_in_is_not_found(client, manager):
    client.force_login(manager)

    assert client.get(url("wording_edit", language="xx")).status_code == 404
    assert client.get(url("wording_edit", tone=9)).status_code == 404


# --- the list ---------------------------------------------------------------------


def test_the_list_shows_every_document_tone_and_language_and_which_are_edited_by_whom(
    client, manager, other_manager
):
    """A notice per tone, and the e-mails of an invoice copy, a statement, a
    call's summary and an agreed payment plan, each in every language."""
    save(other_manager, tone=FIRM, language="de")
    client.force_login(manager)

    rows = [row for row in client.get(reverse("collections:wording")).text.split("<tr>")[2:]]

    assert len(rows) == (len(rendering.TONE_FOLDERS) + 4) * len(rendering.LABELS) == 42
    for document in ("Invoice copy", "Statement", "Call summary", "Payment plan agreed"):
        assert sum(f"<td>{document}</td>" in row for row in rows) == 6, document
    [firm_german] = [row for row in rows if "Firm" in row and "Deutsch" in row]
    assert "Edited: version 1, by mark on" in firm_german
    assert all("Shipped text" in row for row in rows if row != firm_german)


# --- saving ---------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_a_save_is_a_new_version_with_who_when_and_the_text_before_and_after(client, manager, headers):
    client.force_login(manager)
    shipped = wording.shipped_parts(DUNNING, FRIENDLY, "en")

    response = client.post(url("wording_edit"), posted(), headers=headers)

    if headers:
        assert response.status_code == 200
        assert response.text.lstrip().startswith('<div id="wording-editor">')
        assert "saved as version 1" in response.text
    else:
        assert response.status_code == 302 and response["Location"] == url("wording_edit")
    [version] = saved()
    assert (version.number, version.saved_by, version.shipped) == (1, manager, False)
    assert {p: getattr(version, p) for p in rendering.wording_parts(DUNNING)} == NEW_TEXT
    assert {p: getattr(version, p + "_before") for p in rendering.wording_parts(DUNNING)} == shipped
    assert "Did our invoice" in version.subject_before


def test_the_form_shows_the_newest_text_and_the_history_names_each_version(client, manager, other_manager):
    save(manager)
    save(other_manager, {**NEW_TEXT, "subject": "Open invoices {{ short_numbers }}"})
    client.force_login(manager)

    page = unescape(client.get(url("wording_edit")).text)

    assert "Open invoices {{ short_numbers }}</textarea>" in page
    assert 'name="based_on" value="2"' in page
    assert "Version 2</strong>: edited by mark on" in page and "(notices say this)" in page
    assert "Version 1</strong>: edited by maria on" in page
    assert "Put back the shipped text" in page


def test_a_wording_never_edited_shows_the_shipped_text_without_its_frame(client, manager):
    client.force_login(manager)

    page = unescape(client.get(url("wording_edit", tone=FINAL, language="de")).text)

    assert "{% block intro %}\n<p>Dies ist unsere letzte Mahnung." in page
    assert "extends" not in page and "autoescape" not in page.split("<form")[1]
    assert "Never edited" in page and "Put back the shipped text" not in page


REFUSED = [
    ("subject", "{{ pay_byy }}", "Subject: it names 'pay_byy', which is not a value a notice is given."),
    # In a branch the sample notice does not take, too: a send could take it.
    ("text", "{% block intro %}{% if late_fees > 5 %}{{ late_feee }}{% endif %}{% endblock %}",
     "Text e-mail: it names 'late_feee', which is not a value a notice is given."),
    ("html", "{% block intro %}{{ t.pay_byy }}{% endblock %}",
     "HTML e-mail and letter: it names 't.pay_byy', which is not a value a notice is given."),
    ("html", "{% block intro %}{% if %}{% endblock %}",
     "HTML e-mail and letter: the template does not read: Unexpected end of expression in if tag."),
    ("text", "{% load static %}{% block intro %}{% static 'x.css' %}{% endblock %}",
     "Text e-mail: line 1: the tag {% load %} is not allowed in wording"),
    ("text", '{% block intro %}{% include "email/dunning/_statement.txt" %}{% endblock %}',
     "Text e-mail: line 1: the tag {% include %} is not allowed in wording"),
    ("html", '{% extends "pdf/statement.html" %}',
     "HTML e-mail and letter: line 1: the tag {% extends %} is not"),
    ("html", "{% block intro %}\n{% debug %}{% endblock %}",
     "HTML e-mail and letter: line 2: the tag {% debug %} is not allowed"),
    ("html", "{% block intro %}{% autoescape off %}{{ customer_name }}{% endautoescape %}{% endblock %}",
     "the tag {% autoescape %} is not allowed"),
    ("html", "{% block intro %}{{ customer_name|safe }}{% endblock %}",
     "HTML e-mail and letter: the filter |safe is not allowed: it would put values in the HTML unescaped."),
    ("html", "{% block footer %}Bye{% endblock %}",
     "HTML e-mail and letter: line 1: the layout has no block 'footer'"),
    ("text", "Hello {{ recipient_name }}", "Text e-mail: there are words outside {% block intro %}"),
    ("subject", "{% block intro %}Hi{% endblock %}", "Subject: line 1: a subject has no blocks"),
    ("subject", "   ", "Subject: it is empty"),
]


@pytest.mark.parametrize(("part", "text", "said"), REFUSED,
                         ids=[f"{part}-{i}" for i, (part, _, _) in enumerate(REFUSED)])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_a_save_notices_could_not_be_sent_with_is_refused_in_clear_words_and_changes_nothing(
    client, manager, part, text, said, headers
):
    client.force_login(manager)

    response = client.post(url("wording_edit"), posted(**{part: text}), headers=headers)

    assert response.status_code == 422
    assert said in unescape(response.text)
    assert "Nothing was saved" in response.text
    assert not WordingVersion.objects.exists()
    assert wording.wording_in_force(DUNNING, FRIENDLY, "en") is None


def test_a_refused_save_says_why_once_as_nothing_saved_not_also_as_a_preview_refused(client, manager):
    client.force_login(manager)

    response = client.post(url("wording_edit"), posted(subject="Still open: {{ pay_byy }}"), headers=HTMX)

    assert response.status_code == 422
    assert "Nothing was saved" in response.text
    assert "It cannot be previewed" not in response.text  # nobody asked for a preview
    assert unescape(response.text).count("it names 'pay_byy'") == 1


def test_a_save_made_from_an_older_version_is_refused_rather_than_undo_the_newer_one(
    client, manager, other_manager
):
    client.force_login(manager)
    page_read_at = 0
    save(other_manager)

    response = client.post(url("wording_edit"), posted(based_on=page_read_at, subject="Mine"), headers=HTMX)

    assert response.status_code == 422
    assert ("This wording was saved by mark after you opened it (version 1): nothing was saved."
            in response.text)
    assert [v.saved_by for v in saved()] == [other_manager]


def test_two_saves_from_the_same_version_cannot_both_be_made(manager, other_manager):
    """Each read the page before the other saved: the database takes the first only."""
    first = wording.wording_get(DUNNING, FRIENDLY, "en")
    second = wording.wording_get(DUNNING, FRIENDLY, "en")
    wording.wording_save(wording=first, parts=NEW_TEXT, based_on=0, actor=manager)

    with pytest.raises(ValidationError, match="saved by maria after you opened it"):
        wording.wording_save(wording=second, parts={**NEW_TEXT, "subject": "Theirs"}, based_on=0,
                             actor=other_manager)
    assert [v.subject for v in saved()] == [NEW_TEXT["subject"]]


def test_saving_the_text_notices_say_already_is_refused(manager):
    found = wording.wording_get(DUNNING, FRIENDLY, "en")

    with pytest.raises(ValidationError, match="Nothing was changed"):
        wording.wording_save(wording=found, parts=wording.shipped_parts(DUNNING, FRIENDLY, "en"), based_on=0,
                             actor=manager)
    assert not WordingVersion.objects.exists()


# --- putting back the shipped text ------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_put_back_makes_notices_say_the_shipped_text_again_and_keeps_the_history(client, manager, headers):
    save(manager)
    client.force_login(manager)
    assert rendering.render_email(in_force()).subject.startswith("Still open")

    response = client.post(url("wording_put_back"), {"based_on": 1}, headers=headers)

    assert response.status_code == (200 if headers else 302)
    _, second = saved()
    assert (second.number, second.shipped, second.saved_by) == (2, True, manager)
    assert second.subject_before == NEW_TEXT["subject"] and second.subject == ""
    assert wording.wording_in_force(DUNNING, FRIENDLY, "en") is None
    assert rendering.render_email(in_force()).subject.startswith("Did our invoice")
    page = client.get(url("wording_edit")).text
    assert "Version 2</strong>: shipped text put back by maria" in page
    assert "Version 1</strong>: edited by maria" in page
    assert "Put back the shipped text</button>" not in page
    assert "Shipped text, put back by maria" in client.get(reverse("collections:wording")).text


def test_put_back_of_a_wording_that_says_the_shipped_text_already_changes_nothing(client, manager):
    client.force_login(manager)

    response = client.post(url("wording_put_back"), {"based_on": 0}, headers=HTMX)

    assert response.status_code == 422
    assert "Notices say the shipped text already." in response.text
    assert not WordingVersion.objects.exists()


# --- preview ----------------------------------------------------------------------


def test_the_preview_shows_the_email_as_a_customer_gets_it_and_saves_nothing(client, manager):
    client.force_login(manager)

    response = client.post(url("wording_preview"), posted(), headers=HTMX)

    assert response.status_code == 200
    text = unescape(response.text)
    assert text.lstrip().startswith('<section id="wording-preview"')
    notice = wording.sample_notice(tone=FRIENDLY, language="en", on=timezone.localdate())
    assert f"Kindly settle them by {rendering._date(notice.pay_by, 'en')}." in text
    assert f"Dear {notice.recipient_name}," in text  # the layout around the words
    assert notice.lines[0].number in text
    assert not WordingVersion.objects.exists()


def test_the_preview_of_text_a_notice_could_not_be_sent_with_says_why(client, manager):
    client.force_login(manager)

    response = client.post(url("wording_preview"), posted(subject="{{ pay_byy }}"), headers=HTMX)

    assert response.status_code == 422
    assert "Subject: it names &#x27;pay_byy&#x27;" in response.text


def test_the_letter_preview_of_text_no_letter_could_be_written_with_is_the_page_saying_why(client, manager):
    client.force_login(manager)
    broken = "{% block intro %}{{ t.pay_byy }}{% endblock %}"

    response = client.post(url("wording_letter"), posted(html=broken))

    assert response.status_code == 422 and response["Content-Type"].startswith("text/html")
    assert "It cannot be previewed:" in response.text
    assert "HTML e-mail and letter: it names &#x27;t.pay_byy&#x27;" in response.text
    assert "Nothing was saved" not in response.text


def test_the_preview_without_htmx_is_the_whole_page_with_the_text_kept(client, manager):
    client.force_login(manager)

    response = client.post(url("wording_preview"), posted())

    assert response.status_code == 200
    assert "<title>Friendly notice wording in English" in response.text
    assert "Kindly settle them by" in unescape(response.text)
    assert not WordingVersion.objects.exists()


def test_the_letter_preview_is_the_printed_letter_with_the_text_in_the_form(client, manager, pdf_text):
    client.force_login(manager)

    response = client.post(url("wording_letter"), posted())

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    assert "Our books show the invoices below as open" in text
    assert "Still open" in text or "Soon due" in text  # the subject heads the letter
    assert not WordingVersion.objects.exists()


# --- sending ----------------------------------------------------------------------


def test_a_dunning_email_sent_through_delivery_says_the_newest_saved_wording(
    make_account, plan_and_deliver, smtp_server, manager
):
    account = make_account(Segment.PROMPT)
    with frozen(DUE):
        save(manager)

    plan_and_deliver(DUE + dt.timedelta(days=3))

    [message] = smtp_server.messages
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert message["Subject"].startswith("Still open: INV-")
    assert "Our books show the invoices below as open, Anna Clerk." in text
    assert "Kindly settle them by 16 Mar 2026." in text
    assert "Kindly settle them by <strong>16 Mar 2026</strong>." in html
    assert "EUR 1,200.00" in text  # the layout's statement around the words
    assert DunningAction.objects.get(customer=account).subject == message["Subject"]


def test_a_letter_of_the_same_step_says_the_same_edited_words(
    make_account, plan_and_deliver, manager, pdf_text
):
    account = make_account(Segment.PROMPT, email="")
    with frozen(DUE):
        save(manager)

    assert plan_and_deliver(DUE + dt.timedelta(days=3))["letters"] == 1

    text = pdf_text(DunningAction.objects.get(customer=account).letter_pdf.read())
    assert "Our books show the invoices below as open, Anna Clerk." in text
    assert "Kindly settle them by 16 Mar 2026." in text
    assert "Dear Anna Clerk" in text


def in_force(tone: int = FRIENDLY, language: str = "en"):
    """A notice as delivery builds it: with the wording in force at that moment."""
    notice = wording.sample_notice(tone=tone, language=language, on=DUE)
    return replace(notice, wording=wording.wording_in_force(DUNNING, tone, language))


def test_a_version_saved_after_a_process_rendered_the_last_one_is_what_it_renders_next(manager):
    """A worker reads the newest version at each notice: no restart, no stale copy."""
    save(manager)
    assert rendering.render_email(in_force()).subject.startswith("Still open")

    save(manager, {**NEW_TEXT, "subject": "Second thoughts about {{ short_numbers }}"})

    assert rendering.render_email(in_force()).subject.startswith("Second thoughts about INV-")


def test_another_tone_or_language_keeps_its_own_text(manager):
    save(manager)

    assert "Kindly settle" in rendering.render_email(in_force()).text
    for tone, language in ((FIRM, "en"), (FRIENDLY, "de")):
        assert "Kindly settle" not in rendering.render_email(in_force(tone, language)).text


@pytest.mark.parametrize("tone", list(rendering.TONE_FOLDERS))
@pytest.mark.parametrize("language", list(rendering.LABELS))
def test_the_shipped_text_as_the_editor_shows_it_writes_every_notice_as_the_files_do(db, tone, language):
    """The editor takes the frame off a file and sending puts it back: nothing
    else may change, or a manager's first save would change more than the words."""
    notice = wording.sample_notice(tone=tone, language=language, on=DUE)
    parts = wording.shipped_parts(DUNNING, tone, language)

    edited = replace(notice, wording=parts)
    assert rendering.render_email(edited) == rendering.render_email(notice)
    assert rendering.render_letter_html(edited) == rendering.render_letter_html(notice)
    assert wording.wording_problems(wording.wording_get(DUNNING, tone, language), parts) == []


@pytest.mark.parametrize("versions", [0, 3])
def test_the_list_and_a_wording_s_page_cost_the_same_queries_however_many_versions(
    client, manager, other_manager, django_assert_num_queries, versions
):
    for n in range(versions):
        save([manager, other_manager][n % 2], {**NEW_TEXT, "subject": f"Open invoices ({n})"},
             tone=[FRIENDLY, FIRM][n % 2])
    client.force_login(manager)

    # session, user, permissions (2); the versions with their savers; role groups (the page head)
    with django_assert_num_queries(6):
        assert client.get(reverse("collections:wording")).status_code == 200
    # … the newest version, and the history, each with its savers
    with django_assert_num_queries(7):
        assert client.get(url("wording_edit")).status_code == 200
