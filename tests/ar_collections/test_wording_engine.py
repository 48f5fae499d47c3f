"""A saved wording is rendered by an engine of its own, which has no tag
libraries to load, no `debug` and no templates to include or extend but our
e-mail and PDF layouts: a text that reached the database without the Wording
page's checks (saved before a check existed, restored from a backup) still
cannot print our settings or modules, or another page's template, to a customer."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.core.exceptions import ValidationError
from django.template import TemplateDoesNotExist, TemplateSyntaxError, engines

from ar_collections import rendering, wording
from ar_collections.models import Tone, WordingKind, WordingVersion

from .conftest import DUE

SUBJECT = "Still open: {{ short_numbers }}"
TEXT = "{% block intro %}Our books show these as open.{% endblock %}"
HTML = "{% block intro %}<p>Our books show these as open.</p>{% endblock %}"


def notice_saying(**parts):
    notice = wording.sample_notice(tone=Tone.FRIENDLY, language="en", on=DUE)
    return replace(notice, wording={"subject": SUBJECT, "text": TEXT, "html": HTML, **parts})


@pytest.mark.parametrize(("html", "refusal"), [
    ("{% block intro %}{% debug %}{% endblock %}", "Invalid block tag on line 2: 'debug'"),
    ("{% load static %}{% block intro %}{% endblock %}", "Invalid block tag on line 2: 'load'"),
    ("{% load i18n %}{% block intro %}{% endblock %}", "Invalid block tag on line 2: 'load'"),
    ("{% block intro %}{% url 'login' %}{% endblock %}", "Invalid block tag on line 2: 'url'"),
])
def test_a_saved_wording_that_reaches_past_its_values_is_refused_when_sent_not_rendered(html, refusal):
    with pytest.raises(TemplateSyntaxError) as refused:
        rendering.render_email(notice_saying(html=html))

    assert refusal in str(refused.value)
    assert "as edited on the Wording page" in str(refused.value)


@pytest.mark.parametrize("template", ["500.html", "admin/base.html", "registration/login.html",
                                      "email/../500.html", "pdf/../admin/base.html"])
def test_a_saved_wording_that_includes_a_template_not_of_our_e_mails_or_pdfs_is_refused_when_sent(template):
    html = f"{{% block intro %}}{{% include '{template}' %}}{{% endblock %}}"

    with pytest.raises(TemplateDoesNotExist) as refused:
        rendering.render_email(notice_saying(html=html))

    assert template in str(refused.value)


def test_a_saved_wording_still_says_its_words_in_the_layouts_of_the_e_mail_and_the_letter():
    notice = notice_saying()

    email = rendering.render_email(notice)

    assert email.subject.startswith("Still open: INV-")
    assert "Our books show these as open." in email.text
    assert "<p>Our books show these as open.</p>" in email.html
    assert "<p>Our books show these as open.</p>" in rendering.render_letter_html(notice)


# --- the PDF layouts' own tag and filter ------------------------------------------------

KEEP = "{% keep label %}{% block title %}Statement{% endblock %}{% endkeep %}"


@pytest.mark.parametrize("source", [KEEP, "{{ customer_name|as_text }}"])
def test_the_pdf_layouts_own_tag_and_filter_are_not_the_site_s_other_templates(source):
    with pytest.raises(TemplateSyntaxError):
        engines["django"].from_string(source)


@pytest.mark.parametrize(("html", "refusal"), [
    ("{% block intro %}" + KEEP + "{% endblock %}", "Invalid block tag on line 2: 'keep'"),
    ("{% block intro %}{{ customer_name|as_text }}{% endblock %}", "Invalid filter: 'as_text'"),
    ("{% block intro %}{{ customer_name|safe }}{% endblock %}", "Invalid filter: 'safe'"),
])
def test_a_saved_wording_cannot_use_the_pdf_layouts_own_tag_and_filter_nor_safe_when_sent(html, refusal):
    with pytest.raises(TemplateSyntaxError) as refused:
        rendering.render_letter_html(notice_saying(html=html))

    assert refusal in str(refused.value)


def test_a_wording_using_the_pdf_layouts_own_filter_is_refused_on_save_and_nothing_is_saved(manager):
    found = wording.wording_get(WordingKind.DUNNING, Tone.FRIENDLY, "en")
    parts = wording.shipped_parts(WordingKind.DUNNING, Tone.FRIENDLY, "en")
    parts["html"] = parts["html"].replace("{% block customer_number %}Customer number",
                                          "{% block customer_number %}{{ customer_name|as_text }}")

    with pytest.raises(ValidationError) as refused:
        wording.wording_save(wording=found, parts=parts, based_on=0, actor=manager)

    assert "Invalid filter: 'as_text'" in " ".join(refused.value.messages)
    assert not WordingVersion.objects.exists()


def test_the_pdf_layouts_still_keep_a_label_for_the_running_head_under_either_engine(pdf_text):
    notice = wording.sample_notice(tone=Tone.FRIENDLY, language="en", on=DUE)
    notice = replace(notice, lines=tuple(replace(notice.lines[0], number=f"INV-{n}") for n in range(45)))
    edited = notice_saying(html=HTML + "{% block customer_number %}Account & number{% endblock %}")
    edited = replace(edited, lines=notice.lines)

    assert "· Customer number C0000001 ·" in " ".join(pdf_text(rendering.render_letter(notice)).split())
    assert 'data-running-head="' in rendering.render_letter_html(edited)
    assert "· Account &amp; number C0000001 ·" in rendering.render_letter_html(edited)
