import pytest
from django.contrib.auth.models import User

from arcrm.text import fold, is_one_line, nothing_seen, one_line, person_name, shorten


def test_one_line_turns_every_run_of_white_space_into_one_space():
    assert one_line("  Anna Clerk\r\nAccounts\tPayable \u2028 ") == "Anna Clerk Accounts Payable"


@pytest.mark.parametrize(("text", "ok"), [
    ("Bäckerei Müller GmbH", True),
    ("INV-1001 / PO 7", True),
    ("INV-1\nBcc: someone@evil.test", False),
    ("INV-1\r", False),
    ("INV\t1", False),
    ("INV\x001", False),
    ("INV\u20281", False),  # a Unicode line separator
])
def test_is_one_line_refuses_line_breaks_and_other_control_characters(text, ok):
    assert is_one_line(text) is ok


@pytest.mark.parametrize(("text", "blank"), [
    ("", True),
    (" \t\n\u00a0", True),
    ("\u200b\u200c\u200d\u2060\ufeff", True),  # zero-width spaces and joiners, a byte order mark
    ("\u202e\u00ad", True),  # a direction override, a soft hyphen
    ("\x00", True),
    ("a\u200b", False),
    ("·", False),
    ("\u0301", False),  # a combining accent alone is drawn, on a dotted circle
])
def test_nothing_seen_is_true_of_text_of_only_white_space_control_and_format_characters(text, blank):
    assert nothing_seen(text) is blank


def test_shorten_cuts_to_the_limit_with_an_ellipsis():
    assert shorten("Acme", 4) == "Acme"
    assert shorten("Acme Tools", 5) == "Acme…"


@pytest.mark.parametrize(("first", "last", "shown"), [
    ("Carla", "Collins", "Carla Collins"),
    ("Carla", "", "Carla"),
    ("", "Collins", "Collins"),
    (" ", "", "carla"),  # no name at all: the username
    ("", "", "carla"),
])
def test_a_person_is_named_by_full_name_or_else_by_username(first, last, shown):
    user = User(username="carla", first_name=first, last_name=last)
    assert person_name(user) == shown


@pytest.mark.parametrize(("text", "folded"), [
    ("López Accountants", "lopez accountants"),
    ("KRÜGER", "kruger"),
    ("ŁÓDŹ Freight", "lodz freight"),
    ("Søren Æbelø", "soren aebelo"),
    ("Straße", "strasse"),
])
def test_a_name_folds_to_small_letters_without_accents(text, folded):
    assert fold(text) == folded


def test_a_text_cut_short_ends_after_a_whole_word():
    from arcrm.text import shorten_words

    assert shorten_words("Give them until the end of the month", 20) == "Give them until the…"
    assert shorten_words("Short enough", 20) == "Short enough"
    # One long word has no word to cut after: cut where it must be.
    assert shorten_words("Supercalifragilistic", 10) == "Supercali…"
