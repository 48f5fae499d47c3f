import pytest

from arcrm.text import is_one_line, one_line, shorten


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


def test_shorten_cuts_to_the_limit_with_an_ellipsis():
    assert shorten("Acme", 4) == "Acme"
    assert shorten("Acme Tools", 5) == "Acme…"
