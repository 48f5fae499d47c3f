"""How a notice reads, rendered from plain values (no database)."""

import dataclasses
import datetime as dt
import re
from decimal import Decimal

import pytest

from ar_collections import rendering
from ar_collections.models import Tone


def notice(*, language: str, days_overdue: int) -> rendering.Notice:
    return rendering.Notice(
        tone=Tone.FRIENDLY, language=language, customer_name="Acme Tools", account_number="C00001",
        recipient_name="Anna Clerk", postal_address="Acme Tools\nMain Street 1\n10115 Berlin",
        letter_date=dt.date(2026, 2, 27), pay_by=dt.date(2026, 3, 9),
        lines=(rendering.NoticeLine("INV-1", dt.date(2026, 1, 29), dt.date(2026, 2, 27) - dt.timedelta(
            days=days_overdue), days_overdue, Decimal("500.00"), "EUR"),),
        collector_name="Carla", reference="D-1",
    )


@pytest.mark.parametrize(("language", "days", "shown"), [
    ("en", -1, "due tomorrow"), ("en", -2, "due in 2 days"),
    ("de", -1, "morgen fällig"), ("de", -2, "fällig in 2 Tagen"),
])
def test_an_invoice_not_yet_due_says_when_in_good_grammar(language, days, shown):
    text = rendering.render_email(notice(language=language, days_overdue=days)).text
    assert shown in text
    assert "in 1 days" not in text and "in 1 Tagen" not in text



@pytest.mark.parametrize(("recipient", "postal"), [
    ("Anna Clerk", "Acme Tools GmbH\nAttn. Anna Clerk\nMain Street 1\n10115 Berlin"),  # the address names her
    ("Anna Clerk", "Acme Tools GmbH\nMain Street 1\n10115 Berlin"),  # it does not: the letter adds her name
    ("Mark", "Bäckerei Müller GmbH\nMarktplatz 3\n10115 Berlin"),  # "Marktplatz" does not name Mark
    ("Mark", "Bäckerei Müller GmbH\nz. Hd. Mark\nMarktplatz 3\n10115 Berlin"),
])
def test_the_letter_names_its_recipient_once(recipient, postal):
    letter = dataclasses.replace(notice(language="en", days_overdue=3), recipient_name=recipient,
                                 postal_address=postal)
    address = rendering.render_letter_html(letter).split("<address>")[1].split("</address>")[0]
    assert len(re.findall(rf"\b{recipient}\b", address)) == 1, address


def test_a_standing_charge_in_a_currency_no_listed_invoice_is_in_adds_no_empty_invoices_line():
    listed = dataclasses.replace(notice(language="en", days_overdue=10), charges=(
        rendering.NoticeCharge("late_fee", Decimal("15.00"), "EUR", "late fee"),
        rendering.NoticeCharge("late_fee", Decimal("10.00"), "GBP", "late fee", earlier=True),
    ))

    email = rendering.render_email(listed)

    for text in (email.text, re.sub(r"<[^>]+>", " ", email.html)):
        words = " ".join(text.split())
        assert "Overdue invoices EUR 500.00" in words
        assert "GBP 0.00" not in words
        assert "Amount due GBP 10.00" in words and "Amount due EUR 515.00" in words


@pytest.mark.parametrize(("language", "shown", "not_shown"), [
    ("en", "JPY 6,000", "JPY 6,000.00"),
    ("de", "6.000 JPY", "6.000,00 JPY"),
])
def test_an_amount_in_yen_is_written_without_places_after_the_point(language, shown, not_shown):
    yen = dataclasses.replace(notice(language=language, days_overdue=10), lines=(
        rendering.NoticeLine("INV-1", dt.date(2026, 1, 29), dt.date(2026, 2, 17), 10, Decimal("6000"), "JPY"),
    ))

    email = rendering.render_email(yen)

    for text in (email.subject, email.text, email.html):
        assert not_shown not in text
    assert shown in email.text and shown in email.html


@pytest.mark.parametrize(("language", "heading", "overdue", "not_yet_due"), [
    ("en", "Overdue", "12", "due in 3 days"),
    ("de", "Überfällig", "12", "fällig in 3 Tagen"),
    ("nl", "Over tijd", "12", "vervalt over 3 dagen"),
    ("fr", "Retard", "12", "échéance dans 3 jours"),
    ("es", "Retraso", "12", "vence en 3 días"),
    ("it", "Ritardo", "12", "scade tra 3 giorni"),
])
def test_the_statement_heads_its_overdue_column_in_words_that_fit_an_invoice_not_yet_due(
    language, heading, overdue, not_yet_due
):
    """Not "Days overdue" above "due in 3 days": the heading fits both lines."""
    late = notice(language=language, days_overdue=12)
    both = dataclasses.replace(late, lines=(*late.lines, rendering.NoticeLine(
        "INV-2", dt.date(2026, 2, 1), dt.date(2026, 3, 2), -3, Decimal("200.00"), "EUR")))

    text = rendering.render_email(both).text
    html = rendering.render_letter_html(both)

    invoice = rendering.LABELS[language]["invoice"]
    [head] = [line for line in text.splitlines() if line.split()[:1] == [invoice]]
    assert f" {heading} " in head
    assert re.search(rf"INV-1 .* {overdue} .*\n.*INV-2 .* {not_yet_due} ", text)
    assert f'<th class="num">{heading}</th>' in html
    assert re.search(rf"<td[^>]*>{not_yet_due}</td>", html)
