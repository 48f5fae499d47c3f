"""A saved wording is rendered by an engine of its own, which has no tag
libraries to load, no `debug` and no templates to include or extend but our
e-mail and PDF layouts: a text that reached the database without the Wording
page's checks (saved before a check existed, restored from a backup) still
cannot print our settings or modules, or another page's template, to a customer."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.template import TemplateDoesNotExist, TemplateSyntaxError

from ar_collections import rendering, wording
from ar_collections.models import Tone

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
