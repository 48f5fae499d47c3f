"""How a notice reads, rendered from plain values (no database)."""

import dataclasses
import datetime as dt
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



@pytest.mark.parametrize(("postal", "times"), [
    ("Acme Tools GmbH\nAttn. Anna Clerk\nMain Street 1\n10115 Berlin", 1),  # the address names her
    ("Acme Tools GmbH\nMain Street 1\n10115 Berlin", 1),  # it does not: the letter adds her name
])
def test_the_letter_names_its_recipient_once(postal, times):
    letter = dataclasses.replace(notice(language="en", days_overdue=3), postal_address=postal)
    address = rendering.render_letter_html(letter).split("<address>")[1].split("</address>")[0]
    assert address.count("Anna Clerk") == times
