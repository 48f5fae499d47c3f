"""The Wording page explains, to a manager who has never seen a template, what
each placeholder is, what the sample fills it with, how to choose and repeat
words, and which mistakes a save is refused for."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from ar_collections import rendering, wording, wording_guide
from ar_collections.models import NO_TONE, WordingKind

TODAY = dt.date(2026, 4, 20)
EVERY_WORDING = [(kind, tone, language)
                 for kind, tone in wording.KINDS_AND_TONES for language in rendering.LABELS]


def page_of(client, manager, kind: str, language: str, tone: int = NO_TONE) -> str:
    client.force_login(manager)
    kwargs = {"tone": tone} if kind == WordingKind.DUNNING else {"kind": kind}
    response = client.get(reverse("collections:wording_edit", kwargs={**kwargs, "language": language}))
    assert response.status_code == 200
    # What the page says, without its tags: "{{ pay_by }} The date to pay by. 27 Apr 2026".
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", response.text)).split())


@pytest.mark.parametrize(("kind", "tone", "language"), EVERY_WORDING)
def test_every_value_a_document_s_wording_is_given_is_explained_or_only_the_layout_s(
    db, kind, tone, language
):
    found = wording.wording_get(kind, tone, language)
    if found is None:
        pytest.skip("no document of this kind is written in this language")

    context = wording.sample_context(found, on=TODAY)

    unexplained = [name for name in context
                   if name not in wording_guide.LAYOUT_ONLY and not wording_guide.meaning(kind, name)]
    assert unexplained == []


@pytest.mark.parametrize(("kind", "tone"), wording.KINDS_AND_TONES)
def test_every_placeholder_the_page_offers_is_one_a_save_accepts(db, kind, tone):
    """Each placeholder, in a part that may name it, passes the checks a save makes."""
    found = wording.wording_get(kind, tone, "en")
    offered = wording_guide.placeholders(found, on=TODAY)
    shipped = found.parts()
    part = "html" if "html" in shipped else "text"
    block = rendering.WORDING_BLOCKS[kind][0] if rendering.WORDING_BLOCKS[kind] else ""

    for placeholder in offered:
        if placeholder.name == "t.…":
            use = "{{ t.colon }}"
        elif placeholder.is_list:
            fields = "".join(f"{{{{ {placeholder.item}.{field} }}}}" for field in placeholder.fields)
            use = f"{{% for {placeholder.item} in {placeholder.name} %}}{fields}{{% endfor %}}"
        elif placeholder.fields:
            use = "".join(f"{{{{ {placeholder.name}.{field} }}}}" for field in placeholder.fields)
        else:
            use = f"{{% if {placeholder.name} %}}{{{{ {placeholder.name} }}}}{{% endif %}}"
        source = f"{{% block {block} %}}{use}{{% endblock %}}" if block else use
        parts = {**shipped, part: source}
        assert wording.wording_problems(found, parts) == [], placeholder.name


def test_an_invoice_copy_s_page_says_what_each_placeholder_is_and_what_the_sample_fills_in(client, manager):
    page = page_of(client, manager, WordingKind.INVOICE_COPY, "de")
    sample = wording.sample_invoice_copy(language="de", on=timezone.localdate())
    context = rendering._copy_context(sample)

    assert "The placeholders invoice copies are given" in page
    assert f"{{{{ pay_by }}}} The date to pay by. {context['pay_by']}" in page
    assert ("{{ customer_reference }} The customer's order number the invoice quotes (blank when none). "
            f"{context['customer_reference']}") in page
    assert "{{ settled }} Yes when nothing is open on the invoice. no" in page
    assert "Its parts: company.name, company.address," in page
    assert "{{ template_base }}" not in page and "{{ number_width }}" not in page


def test_a_statement_s_page_shows_how_to_go_through_its_invoices(client, manager):
    page = page_of(client, manager, WordingKind.STATEMENT, "en")

    assert ("{{ lines }} The open invoices, one after the other. A list: {% for line in lines %}, each with "
            "line.number, line.issue_date, line.due_date,") in page
    assert "{{ statement_date_long }} The date of the statement, the month written out." in page


def test_a_notice_s_page_explains_how_to_write_and_which_mistakes_a_save_is_refused_for(client, manager):
    page = page_of(client, manager, WordingKind.DUNNING, "en", tone=1)

    assert "How to write it" in page
    assert "{% if customer_reference %}Your order: {{ customer_reference }}{% endif %}" in page
    assert "A save is refused, and nothing changes, when" in page
    for refusal in ("a part is empty;", "a misspelt {{ pay_byy }}", "there are words outside the blocks",
                    "|safe", "someone else saved this wording after you opened it."):
        assert refusal in page
    assert "{{ pay_by_long }} The date to pay by, the month written out." in page
    assert "{{ subject }} The subject as written above" in page


def test_a_text_only_e_mail_s_page_speaks_of_no_blocks(client, manager):
    page = page_of(client, manager, WordingKind.CALL_SUMMARY, "en")

    assert "{{ notes }} What the collector wrote about the call." in page
    assert "words outside the blocks" not in page and "Keep the {% block" not in page
    assert "{{ subject }}" not in page  # a text-only e-mail's text is not given its subject


def test_a_text_only_e_mail_naming_the_subject_is_refused_by_the_part_and_the_name(db):
    """The page does not offer {{ subject }} there, and the refusal says so in the same words as any other."""
    found = wording.wording_get(WordingKind.CALL_SUMMARY, NO_TONE, "en")

    problems = wording.wording_problems(found, {**found.parts(), "text": "{{ greeting }} {{ subject }}"})

    assert problems == ["Text: it names 'subject', which is not a value a call summary is given."]
