"""Text that must stay on one line: names and numbers that end up in e-mail
headers (a To or a Subject), where a line break would end the header. No Django."""

from __future__ import annotations

import unicodedata

from django.utils.text import get_valid_filename

# Letters that carry their mark in themselves (no combining accent to take
# off): written as PostgreSQL's unaccent writes them, so that a search folds
# alike on both databases.
_PLAIN_LETTERS = str.maketrans({
    "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
    "đ": "d", "Đ": "D", "ß": "ss", "ı": "i",
})

# Control characters (line feed, carriage return, tab, NUL, ...) and the
# Unicode line and paragraph separators: all of them break a line somewhere.
_NOT_ON_ONE_LINE = {"Cc", "Zl", "Zp"}


def one_line(text: str) -> str:
    """`text` with every run of white space, line breaks included, as one space."""
    return " ".join(text.split())


def fold(text: str) -> str:
    """`text` in small letters without accents, as a search compares names:
    "López" and "LOPEZ" fold alike, as do "Müller" and "muller"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN_LETTERS))
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def is_one_line(text: str) -> bool:
    """Whether `text` holds no line break nor any other control character."""
    return not any(unicodedata.category(char) in _NOT_ON_ONE_LINE for char in text)


def hidden_characters(text: str) -> list[str]:
    """The characters of `text` no one sees, as U+200B: control characters,
    line breaks and format characters (a zero-width space, a soft hyphen, a
    direction mark). Pasted into a document's number, they make a second
    number that reads as the first."""
    return [f"U+{ord(char):04X}" for char in text
            if unicodedata.category(char) in _NOT_ON_ONE_LINE | {"Cf"}]


def other_digits(text: str) -> list[str]:
    """The digits of `text` that are not 0-9, each once, as "１ (U+FF11)".
    Python reads full-width "１００" or Arabic-Indic "١٠٠" as 100, so an
    amount nobody wrote in the digits the ledger shows would be recorded."""
    return list(dict.fromkeys(f"{char} (U+{ord(char):04X})" for char in text
                              if char.isdigit() and not ("0" <= char <= "9")))


def nothing_seen(text: str) -> bool:
    """Whether `text` holds nothing anyone sees: only white space and the
    characters hidden_characters names. A note of zero-width spaces pasted
    from a web page is not empty to Python, yet says nothing."""
    return all(char.isspace() or unicodedata.category(char) in _NOT_ON_ONE_LINE | {"Cf", "Zs"}
               for char in text)


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shorten_words(text: str, limit: int) -> str:
    """`text` cut as `shorten` cuts it, but after a whole word when it has
    one to cut after: "called me h…" reads as a typing slip."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if not text[limit - 1].isspace():  # the cut falls inside a word: it goes
        cut = cut.rsplit(" ", 1)[0] if " " in cut.strip() else cut
    return cut.rstrip(" ,;:.") + "…"


def pdf_file_name(*words: str) -> str:
    """A PDF's file name from its words ("invoice", a number, a day), joined by
    dashes. An ERP's number may hold a slash ("RE 2026/07"), which a mail
    client and the file store read as a folder, or quotes and line breaks,
    which end a header early: slashes become dashes, spaces underscores, and
    anything else but letters, digits, dashes, underscores and dots goes."""
    name = "-".join(words).replace("/", "-").replace("\\", "-")
    return get_valid_filename(f"{name}.pdf")


def person_name(user) -> str:
    """How texts name a person: first and last name, or the username of
    someone who has no name on file."""
    return name_of(user.first_name, user.last_name, user.get_username())


def name_of(first: str, last: str, username: str) -> str:
    """person_name from a user's columns, for rows read without the user."""
    full = " ".join(part for part in (first.strip(), last.strip()) if part)
    return full or username
