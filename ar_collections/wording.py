"""The words customers get, edited by the managers who own the policy.

Each document's wording has three parts: the subject, and the blocks of the
text and the HTML e-mail. A dunning notice's (`email/dunning/<tone>/<lang>.*`,
a tone × language) fill the intro and request blocks, and its letter is the
HTML part in the letter's layout; an invoice copy's and a statement's cover
e-mail (`email/<kind>/<lang>.*`) fill the body block, and the words printed
on their PDF (`pdf/<kind>/<lang>.html`) the PDF layout's blocks. A call's summary and an
agreed payment plan's schedule are text only: a subject and the whole text. A save on the Wording
page is a new `WordingVersion`, which those documents read from then on
(rendering._wording_templates); putting back the shipped text is a version
too, one that lets the files speak again.

A save is refused, with the part and what is wrong, for anything the strict
rendering of the document would refuse when it is sent: a name it is not
given (in any branch, not only those a sample takes), a syntax error, and
any tag outside the small set below.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from html.parser import HTMLParser

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.template import TemplateSyntaxError, engines
from django.template.base import FilterExpression, Lexer, TextNode, TokenType, Variable, VariableNode
from django.template.defaulttags import CommentNode, FirstOfNode, ForNode, IfNode, WithNode
from django.template.loader import get_template
from django.template.loader_tags import BlockNode
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst

from ar_collections import rendering
from ar_collections.models import NO_TONE, Tone, WordingKind, WordingVersion
from ar_collections.rendering import (
    LABELS,
    TONE_FOLDERS,
    WORDING_BLOCKS,
    CallSummary,
    InvoiceCopy,
    Notice,
    NoticeCharge,
    NoticeCredit,
    NoticeLine,
    PlanAgreed,
    RenderedEmail,
    Statement,
    StatementLine,
    wording_parts,
)
from arcrm.text import person_name

PART_NAMES = {"subject": "Subject", "text": "Text e-mail", "html": "HTML e-mail and letter"}
# A cover e-mail's HTML part is the e-mail alone: the words on the PDF are a part of their own.
COVER_PART_NAMES = {**PART_NAMES, "html": "HTML e-mail", "pdf": "Words on the PDF"}
TEXT_ONLY_PART_NAMES = {"subject": "Subject", "text": "Text"}

# The tags wording may use: they only choose and repeat words by the values a
# document is given, and each of them names those values where the check below
# can read them, so a save can be refused for a name that a branch the sample
# does not take would have failed on at send time. Everything else is refused:
# `load` brings in tag libraries (and with them tags that reach files, URLs or
# the database); `include` and `extends` read other templates, and `ssi`-like
# tags files; `debug` prints every value and the server's modules; `url` and
# `static` write our own addresses; `autoescape` (like the filters `safe` and
# `safeseq` below) lets a value such as a customer's name from the ERP into
# the HTML unescaped; the rest (`now`, `cycle`, `regroup`, `csrf_token`, …)
# have no use in a letter and would only widen what has to be checked.
ALLOWED_TAGS = frozenset({
    "if", "elif", "else", "endif", "for", "empty", "endfor", "with", "endwith",
    "firstof", "comment", "endcomment", "block", "endblock",
})
REFUSED_FILTERS = frozenset({"safe", "safeseq"})
# Where each kind's blocks sit, as a refusal names them.
BLOCKS_SAID = {
    WordingKind.DUNNING: "{% block intro %} (before the invoices) and {% block request %} (after them)",
    WordingKind.INVOICE_COPY: "{% block body %} (between the greeting and the signature)",
    WordingKind.STATEMENT: "{% block body %} (between the greeting and the signature)",
}
# A notice's HTML part is its letter's too, which has a block the e-mail has not.
LETTER_BLOCKS_SAID = (", and the letter's {% block customer_number %} (the customer number's label, at the "
                      "top and in the running head of the pages after the first), {% block date %} and "
                      "{% block our_reference %} (the labels beside the letter's date and our reference) and "
                      "{% block regards %} (the closing above the signature)")
PDF_BLOCKS_SAID = {
    WordingKind.INVOICE_COPY: "{% block payment %} (under the amounts)",
    WordingKind.STATEMENT: ("{% block intro %} (before the tables) and {% block payment %} "
                            "(under the figures)"),
}
# The PDF's headings and labels, a block each, as a refusal lists them.
PDF_LABELS_SAID = {kind: ", ".join(names) for kind, names in rendering.PDF_LABEL_BLOCKS.items()}
# The document as a refusal names it: "not a value a notice is given".
DOCUMENT_SAID = {WordingKind.DUNNING: "a notice", WordingKind.INVOICE_COPY: "an invoice copy's e-mail",
                 WordingKind.STATEMENT: "a statement's e-mail", WordingKind.CALL_SUMMARY: "a call summary",
                 WordingKind.PLAN_AGREED: "a payment plan's e-mail"}


@dataclass(frozen=True)
class Wording:
    """One document kind × language (× tone for a notice) on the Wording page, as it is said now."""

    kind: str
    tone: int  # NO_TONE for anything but a notice
    language: str
    version: WordingVersion | None  # the newest, or None while nobody saved one

    @property
    def edited(self) -> bool:
        return self.version is not None and not self.version.shipped

    @property
    def number(self) -> int:
        """The version a save replaces (0: none yet)."""
        return self.version.number if self.version else 0

    @property
    def name(self) -> str:
        """"Friendly notice", "Invoice copy"."""
        if self.kind == WordingKind.DUNNING:
            return f"{Tone(self.tone).label} notice"
        return WordingKind(self.kind).label

    @property
    def documents(self) -> str:
        """What says these words, as a message names it: "notices", "statements"."""
        return {WordingKind.DUNNING: "notices", WordingKind.INVOICE_COPY: "invoice copies",
                WordingKind.STATEMENT: "statements", WordingKind.CALL_SUMMARY: "call summaries",
                WordingKind.PLAN_AGREED: "payment plans' e-mails"}[self.kind]

    @property
    def is_notice(self) -> bool:
        return self.kind == WordingKind.DUNNING

    @property
    def language_name(self) -> str:
        return LABELS[self.language]["name"]

    @property
    def text_only(self) -> bool:
        return not WORDING_BLOCKS[self.kind]

    @property
    def has_pdf(self) -> bool:
        return _document(self.kind).pdf is not None

    @property
    def part_names(self) -> dict[str, str]:
        if self.text_only:
            return TEXT_ONLY_PART_NAMES
        return PART_NAMES if self.is_notice else COVER_PART_NAMES

    @property
    def url_kwargs(self) -> dict:
        """Its pages' address: a notice's by its tone, anything else by its kind."""
        if self.is_notice:
            return {"tone": self.tone, "language": self.language}
        return {"kind": self.kind, "language": self.language}

    def url(self, name: str) -> str:
        return reverse(f"collections:{name}", kwargs=self.url_kwargs)

    @property
    def edit_url(self) -> str:
        return self.url("wording_edit")

    @property
    def preview_url(self) -> str:
        return self.url("wording_preview")

    @property
    def pdf_url(self) -> str:
        return self.url("wording_letter")

    @property
    def put_back_url(self) -> str:
        return self.url("wording_put_back")

    def parts(self) -> dict[str, str]:
        return _parts_of(self.version) if self.edited else shipped_parts(self.kind, self.tone, self.language)


# Every kind × tone a document is written in: a notice per tone, the rest without one.
KINDS_AND_TONES = [(WordingKind.DUNNING, tone) for tone in TONE_FOLDERS] + [
    (kind, NO_TONE) for kind in WordingKind if kind != WordingKind.DUNNING]


def wordings() -> list[Wording]:
    """Every document kind × tone × language, with its newest version (one query)."""
    newest = {}
    versions = (WordingVersion.objects.select_related("saved_by")
                .order_by("kind", "tone", "language", "-number")
                .only("kind", "tone", "language", "number", "shipped", "saved_by", "saved_at"))
    for version in versions:
        newest.setdefault((version.kind, version.tone, version.language), version)
    return [Wording(kind, tone, language, newest.get((kind, tone, language)))
            for kind, tone in KINDS_AND_TONES for language in LABELS if _shipped(kind, tone, language)]


def wording_get(kind: str, tone: int, language: str) -> Wording | None:
    """The kind × tone × language, or None when no document is written in it."""
    if (kind, tone) not in KINDS_AND_TONES or language not in LABELS or not _shipped(kind, tone, language):
        return None
    newest = WordingVersion.objects.of(kind, tone, language).select_related("saved_by").first()
    return Wording(kind, tone, language, newest)


def wording_in_force(kind: str, tone: int, language: str) -> dict[str, str] | None:
    """The parts a document of this kind and tone, written in `language`, says:
    the newest version saved, or None for the shipped files (never edited, or
    put back).

    Read from the database for every document built (one row, by the unique
    constraint's index), and compiled once per text in each process
    (rendering._wording_compiled): a worker sends a version saved a moment
    ago without a restart, and no cache in between can hold an old text
    after a save."""
    version = WordingVersion.objects.of(kind, tone, language).first()
    return _parts_of(version) if version and not version.shipped else None


def cover_wording_in_force(kind: str, language: str) -> dict[str, str] | None:
    """wording_in_force for a cover e-mail asked for in `language`: the one it is written in."""
    return wording_in_force(kind, NO_TONE, rendering.written_language(kind, NO_TONE, language))


def _parts_of(version: WordingVersion) -> dict[str, str]:
    parts = {part: getattr(version, part) for part in wording_parts(version.kind)}
    if "pdf" in parts and not parts["pdf"]:
        # Saved before the PDF's words could be edited: the PDF says the shipped ones.
        parts["pdf"] = shipped_parts(version.kind, version.tone, version.language)["pdf"]
    return parts


def history(wording: Wording) -> list[WordingVersion]:
    versions = WordingVersion.objects.of(wording.kind, wording.tone, wording.language)
    return list(versions.select_related("saved_by"))


def _shipped(kind: str, tone: int, language: str) -> bool:
    """Whether the document is written in `language` (it has its files), not in English instead."""
    return rendering.written_language(kind, tone, language) == language


def shipped_parts(kind: str, tone: int, language: str) -> dict[str, str]:
    """The text shipped with the product (or an install's own files), without its frame."""
    return {part: rendering.wording_unframed(
        kind, part, get_template(rendering.wording_template_name(kind, tone, language, part)).template.source)
        for part in wording_parts(kind)}


# --- the documents -------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    """How the checks and the previews build and write a kind's sample document."""

    sample: Callable[..., object]  # (tone=, language=, on=) → the sample, as the preview shows it
    context: Callable[[object], dict]  # the values its templates are given
    email: Callable[[object], RenderedEmail]
    pdf: Callable[[object], bytes] | None  # None: the e-mail goes alone
    # Everything the wording is written into when it is sent, for the last check.
    written: tuple[Callable[[object], object], ...]


# Built once: `has_pdf` asks it for every row of the Wording page.
@functools.cache
def _document(kind: str) -> _Document:
    return {
        WordingKind.DUNNING: _Document(
            sample=lambda *, tone, language, on: sample_notice(tone=tone, language=language, on=on),
            context=lambda notice: rendering._context(notice, layout="email/dunning/_layout.html"),
            email=rendering.render_email, pdf=rendering.render_letter,
            written=(rendering.render_email, rendering.render_letter_html)),
        WordingKind.INVOICE_COPY: _Document(
            sample=lambda *, tone, language, on: sample_invoice_copy(language=language, on=on),
            context=rendering._copy_context, email=rendering.render_invoice_copy_email,
            pdf=rendering.render_invoice_copy,
            written=(rendering.render_invoice_copy_email, rendering.render_invoice_copy_html)),
        WordingKind.STATEMENT: _Document(
            sample=lambda *, tone, language, on: sample_statement(language=language, on=on),
            context=rendering._statement_context, email=rendering.render_statement_email,
            pdf=rendering.render_statement,
            written=(rendering.render_statement_email, rendering.render_statement_html)),
        WordingKind.CALL_SUMMARY: _Document(
            sample=lambda *, tone, language, on: sample_call_summary(language=language, on=on),
            context=rendering._call_summary_context, email=_text_only(rendering.render_call_summary),
            pdf=None, written=(rendering.render_call_summary,)),
        WordingKind.PLAN_AGREED: _Document(
            sample=lambda *, tone, language, on: sample_plan_agreed(language=language, on=on),
            context=rendering._plan_agreed_context, email=_text_only(rendering.render_plan_agreed),
            pdf=None, written=(rendering.render_plan_agreed,)),
    }[kind]


def _text_only(render: Callable[[object], tuple[str, str]]) -> Callable[[object], RenderedEmail]:
    return lambda document: RenderedEmail(*render(document), html="")


def _sample(wording: Wording, *, on: dt.date):
    return _document(wording.kind).sample(tone=wording.tone, language=wording.language, on=on)


def sample_context(wording: Wording, *, on: dt.date) -> dict:
    """The values the sample document's wording is given, as the checks read them."""
    return _document(wording.kind).context(_sample(wording, on=on))


# --- checks -------------------------------------------------------------------


def wording_problems(wording: Wording, parts: dict[str, str]) -> list[str]:
    """What is wrong with `parts` for this kind, tone and language's
    documents, in words a manager can act on; empty when they can be sent with them."""
    document = _document(wording.kind)
    sample = _sample(wording, on=timezone.localdate())
    context = document.context(sample)
    said = DOCUMENT_SAID[wording.kind]
    problems = []
    for part in wording_parts(wording.kind):
        source = parts[part]
        where = wording.part_names[part]
        if not source.strip():
            problems.append(f"{where}: it is empty; write what customers should read.")
            continue
        found = list(_tag_problems(wording.kind, part, source))
        if part in ("html", "pdf"):
            found.extend(_remote_images(source))
        if not found:
            try:
                template = engines["django"].from_string(source)
            except TemplateSyntaxError as error:
                found.append(f"the template does not read: {error}")
            else:
                nodes = template.template.nodelist
                if part != "subject" and not wording.text_only:
                    found.extend(_outside_blocks(wording, part, nodes))
                # The subject is rendered first; the e-mail's text and HTML parts may name it
                # (a text-only e-mail's text is not given it).
                bound = frozenset({"subject"} if part in ("text", "html") and not wording.text_only else ())
                found.extend(dict.fromkeys(_unknown(nodes, bound, context, said)))
        problems.extend(f"{where}: {problem}" for problem in found)
    if problems:
        return problems
    # Last, as it will be sent: anything the strict rendering refuses besides,
    # and anything the written HTML loads from another site that its source
    # did not show (an address in entities, cut by a comment, built by a tag).
    try:
        for write in document.written:
            written = write(replace(sample, wording=parts))
            part = "pdf" if isinstance(written, str) and "pdf" in parts else "html"
            page = written.html if isinstance(written, rendering.RenderedEmail) else written
            if isinstance(page, str) and part in parts:
                problems.extend(
                    f"{wording.part_names[part]}: as written out, it loads {what} from another site "
                    f"({address}), which would tell that site whenever a customer opens it, and which many "
                    "mail clients refuse: leave it out." for what, address in remote_loads(page))
        problems = list(dict.fromkeys(problems))
    except TemplateSyntaxError as error:
        problems.append(str(error))
    except Exception as error:
        # Whatever it is (a filter given what it cannot take), a send would fail on it too.
        sample_said = said.removeprefix("a ").removeprefix("an ")
        problems.append(f"The sample {sample_said} cannot be written with it: "
                        f"{type(error).__name__}: {error}")
    return problems


# An image, a background or a style's url() loaded from another site (or a
# scheme-relative //host address). Links (href) may point anywhere: they are
# followed only when clicked.
_REMOTE_IMAGE = re.compile(
    r"""(?:\b(?:src|srcset|background|poster)\s*=\s*["']?|url\(\s*["']?)\s*"""
    r"""((?:[a-z][a-z0-9+.-]*:)?//[^"'\s)>]*)""",
    re.IGNORECASE,
)


def _remote_images(source: str) -> Iterator[str]:
    """Images an HTML part would load from another site: the mail client
    tells that site (and whoever watches it) when and where the customer
    opened the e-mail, and many clients refuse to load them anyway."""
    # Read with entities decoded and {# #} comments (one line each) left out,
    # as in every branch, taken by the sample or not: an address spelled
    # "&#x2F;&#x2F;" or cut by a comment is the same address. (wording_problems
    # reads the sample as written out besides, for what tags put together.)
    source = html.unescape(re.sub(r"\{#.*?#\}", "", source))
    for match in _REMOTE_IMAGE.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        yield (f"line {line}: it loads an image from another site ({match.group(1)}), which would tell "
               "that site whenever a customer opens the e-mail, and which many mail clients refuse: "
               "leave the image out.")


# What a browser or mail client loads by itself, as it shows the page: (tag or
# None for any tag, attribute) → what it loads. A link (<a href>) is followed
# only when clicked; a <base href> makes every relative address load from it.
_LOADING_ATTRIBUTES = {
    (None, "src"): "an image", (None, "srcset"): "an image", (None, "background"): "an image",
    (None, "poster"): "an image", (None, "lowsrc"): "an image", (None, "xlink:href"): "an image",
    ("object", "data"): "an object", ("image", "href"): "an image", ("use", "href"): "an image",
    ("link", "href"): "a style sheet", ("base", "href"): "every relative address",
}
# A URL that names a scheme (http:, https:, ...) or a host (//host, which takes
# the page's scheme; browsers read a backslash as a slash), once tabs and line
# breaks are dropped as browsers drop them. data: and cid: (a part of the
# e-mail itself) load nothing from anywhere.
_REMOTE_URL = re.compile(r"^(?:[/\\]{2}|(?!(?:data|cid):)[a-z][a-z0-9+.-]*:)", re.IGNORECASE)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-f]{1,6})[ \t\n\r\f]?|(.))", re.IGNORECASE | re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
# Every url(...) and every quoted string in a style: @import "...", image-set("...").
_CSS_ADDRESS = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))|"([^"]*)"|'([^']*)'""", re.IGNORECASE)


_SPACE_AND_CONTROLS = "".join(map(chr, range(0x21)))  # stripped from an address's ends


def _remote(address: str) -> bool:
    return bool(_REMOTE_URL.match(re.sub(r"[\t\n\r]", "", address).strip(_SPACE_AND_CONTROLS)))


def _css_addresses(css: str) -> Iterator[str]:
    def unescaped(match: re.Match) -> str:
        if match.group(1):
            code = int(match.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"
        return match.group(2)

    css = _CSS_COMMENT.sub("", _CSS_ESCAPE.sub(unescaped, css))
    for match in _CSS_ADDRESS.finditer(css):
        yield next(group for group in match.groups() if group is not None)


class _LoadFinder(HTMLParser):
    """The addresses an HTML page loads by itself, as the browser reads them
    (entities decoded): attributes, style attributes and <style> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            value = value or ""
            what = _LOADING_ATTRIBUTES.get((tag, name)) or _LOADING_ATTRIBUTES.get((None, name))
            if name == "style":
                self.found.extend(("an image or a style", address) for address in _css_addresses(value)
                                  if _remote(address))
            elif what and name == "srcset":
                # Each candidate: an address, then its width or density. A
                # comma inside an address splits it too, which only errs on the side of refusing.
                self.found.extend((what, address) for address in re.split(r"[\s,]+", value)
                                  if _remote(address))
            elif what and _remote(value):
                self.found.append((what, value.strip()))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found.extend(("an image or a style", address) for address in _css_addresses(data)
                              if _remote(address))


def remote_loads(page: str) -> list[tuple[str, str]]:
    """What `page` would load from another site as it is shown: (what it is,
    its address), in order, each once."""
    finder = _LoadFinder()
    finder.feed(page)
    finder.close()
    return list(dict.fromkeys(finder.found))


def _tag_problems(kind: str, part: str, source: str) -> Iterator[str]:
    """Tags outside ALLOWED_TAGS and blocks the layouts have not, read from the
    tokens before anything is parsed (a `load` does its work while parsing)."""
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK:
            continue
        bits = token.split_contents()
        tag = bits[0] if bits else ""
        line = f"line {token.lineno}"
        if tag not in ALLOWED_TAGS:
            yield (f"{line}: the tag {{% {tag} %}} is not allowed in wording (allowed: "
                   f"{', '.join(sorted(t for t in ALLOWED_TAGS if not t.startswith('end')))}).")
        elif tag == "block" and part == "subject":
            yield f"{line}: a subject has no blocks; write its text alone."
        elif tag == "block" and not WORDING_BLOCKS[kind]:
            yield f"{line}: this e-mail has no blocks; write its text alone."
        elif tag == "block" and (len(bits) != 2 or bits[1] not in rendering.wording_blocks(kind, part)):
            name = bits[1] if len(bits) > 1 else ""
            said = (f"{PDF_BLOCKS_SAID[kind]}, and the headings and labels in a block each "
                    f"({PDF_LABELS_SAID[kind]})" if part == "pdf" else BLOCKS_SAID[kind])
            if kind == WordingKind.DUNNING and part == "html":
                said += LETTER_BLOCKS_SAID
            yield f"{line}: the layout has no block {name!r}: the words go in {said}."


def _outside_blocks(wording: Wording, part: str, nodelist) -> Iterator[str]:
    """The layout shows the e-mail's (and the letter's, or the PDF's) blocks, nothing else of the part."""
    for node in nodelist:
        if not isinstance(node, BlockNode | CommentNode) and not (
            isinstance(node, TextNode) and not node.s.strip()
        ):
            if part == "pdf":
                yield (f"there are words outside the blocks ({PDF_BLOCKS_SAID[wording.kind]}, and a block "
                       "for each heading and label), which the PDF never shows: put them in one of them.")
            elif wording.is_notice:
                yield ("there are words outside {% block intro %} and {% block request %}, which the e-mail "
                       "and the letter never show: put them in one of the two.")
            else:
                yield ("there are words outside {% block body %}, which the e-mail never shows: "
                       "put them in it.")
            return


def _unknown(nodelist, bound: frozenset[str], context: dict, said: str) -> Iterator[str]:
    """What is wrong with the names in `nodelist`: those neither in the
    notice's context nor bound by a tag around them (a loop's variable, a
    `with`), and filters that would unescape them."""
    for node in nodelist:
        if isinstance(node, VariableNode):
            yield from _expression(node.filter_expression, bound, context, said)
        elif isinstance(node, IfNode):
            for condition, nodes in node.conditions_nodelists:
                if condition is not None:
                    yield from _condition(condition, bound, context, said)
                yield from _unknown(nodes, bound, context, said)
        elif isinstance(node, ForNode):
            yield from _expression(node.sequence, bound, context, said)
            yield from _unknown(node.nodelist_loop, bound | set(node.loopvars) | {"forloop"}, context, said)
            yield from _unknown(node.nodelist_empty, bound, context, said)
        elif isinstance(node, WithNode):
            for value in node.extra_context.values():
                yield from _expression(value, bound, context, said)
            yield from _unknown(node.nodelist, bound | set(node.extra_context), context, said)
        elif isinstance(node, FirstOfNode):
            for value in node.vars:
                yield from _expression(value, bound, context, said)
        elif isinstance(node, BlockNode):
            yield from _unknown(node.nodelist, bound | {"block"}, _with_row(node.name, context), said)


def _with_row(block: str, context: dict) -> dict:
    """The values a block is given: a table cell's word is given its row too
    (rendering.PDF_ROW_BLOCKS), whose parts are those of the sample's first row."""
    if block not in rendering.PDF_ROW_BLOCKS:
        return context
    item, rows = rendering.PDF_ROW_BLOCKS[block]
    first = next((row for row in context.get(rows, ()) if isinstance(row, dict)), {})
    return {**context, item: first}


def _condition(condition, bound: frozenset[str], context: dict, said: str) -> Iterator[str]:
    """An `if` condition: a literal (`.value`) or an operator over one or two of them."""
    if isinstance(getattr(condition, "value", None), FilterExpression):
        yield from _expression(condition.value, bound, context, said)
    for side in (getattr(condition, "first", None), getattr(condition, "second", None)):
        if side is not None:
            yield from _condition(side, bound, context, said)


def _expression(expression: FilterExpression, bound: frozenset[str], context: dict, said: str
                ) -> Iterator[str]:
    yield from _variable(expression.var, bound, context, said)
    for function, arguments in expression.filters:
        name = getattr(function, "_filter_name", function.__name__)
        if name in REFUSED_FILTERS:
            yield f"the filter |{name} is not allowed: it would put values in the HTML unescaped."
        for lookup, argument in arguments:
            if lookup:
                yield from _variable(argument, bound, context, said)


def _variable(variable, bound: frozenset[str], context: dict, said: str) -> Iterator[str]:
    lookups = getattr(variable, "lookups", None) if isinstance(variable, Variable) else None
    if not lookups:
        return  # a literal: "text", 3
    first = lookups[0]
    if first in bound:
        return
    if first not in context:
        yield _not_given(".".join(lookups), said)
    elif len(lookups) > 1 and type(context[first]) is dict and lookups[1] not in context[first]:
        # The labels `t` and our letterhead `company`: their keys are known too.
        yield _not_given(f"{first}.{lookups[1]}", said)


def _not_given(name: str, said: str) -> str:
    return f"it names {name!r}, which is not a value {said} is given."


# --- saving -------------------------------------------------------------------


def wording_save(*, wording: Wording, parts: dict[str, str], based_on: int, actor) -> WordingVersion:
    """Save `parts` as the newest version, made from version `based_on` (0:
    the shipped text). Refused (ValidationError, nothing saved) when the
    documents could not be sent with them, when nothing changed, or when
    someone saved another version meanwhile."""
    parts = {part: parts[part].replace("\r\n", "\n") for part in wording_parts(wording.kind)}
    if problems := wording_problems(wording, parts):
        raise ValidationError(problems)
    if based_on == wording.number and parts == wording.parts():
        raise ValidationError(f"Nothing was changed: the text is the one {wording.documents} say already.")
    return _version_add(wording=wording, parts=parts, shipped=False, based_on=based_on, actor=actor)


def wording_put_back(*, wording: Wording, based_on: int, actor) -> WordingVersion:
    """The documents of this kind, tone and language say the shipped text
    again; the edited versions stay in the history."""
    if not wording.edited:
        raise ValidationError(f"{capfirst(wording.documents)} say the shipped text already.")
    return _version_add(wording=wording, parts=dict.fromkeys(wording_parts(wording.kind), ""), shipped=True,
                        based_on=based_on, actor=actor)


def _version_add(*, wording: Wording, parts: dict[str, str], shipped: bool, based_on: int,
                 actor) -> WordingVersion:
    if based_on != wording.number:
        raise _saved_meanwhile(wording)
    before = wording.parts()
    try:
        # The constraint on (kind, tone, language, number) refuses the second
        # of two saves made from the same version, however close together.
        with transaction.atomic():
            return WordingVersion.objects.create(
                kind=wording.kind, tone=wording.tone, language=wording.language, number=based_on + 1,
                shipped=shipped,
                **parts, **{f"{part}_before": before[part] for part in parts}, saved_by=actor,
            )
    except IntegrityError:
        raise _saved_meanwhile(wording_get(wording.kind, wording.tone, wording.language)) from None


def _saved_meanwhile(wording: Wording) -> ValidationError:
    version = wording.version
    who = f" by {person_name(version.saved_by)}" if version else ""
    return ValidationError(
        f"This wording was saved{who} after you opened it (version {wording.number}): nothing was saved. "
        "Open it again to see theirs, then make your change to it."
    )


# --- preview -------------------------------------------------------------------


def preview_email(wording: Wording, parts: dict[str, str], *, on: dt.date) -> RenderedEmail:
    return _document(wording.kind).email(replace(_sample(wording, on=on), wording=parts))


def preview_pdf(wording: Wording, parts: dict[str, str], *, on: dt.date) -> bytes:
    """A notice's letter, or the invoice copy or statement the cover e-mail
    goes with (wording.has_pdf: a text-only e-mail has none)."""
    return _document(wording.kind).pdf(replace(_sample(wording, on=on), wording=parts))


# --- the sample notice ---------------------------------------------------------

FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hans", "Ines", "Jonas", "Katrin", "Lukas"]
LAST = ["Clerk", "Backup", "Müller", "Schmidt", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Koch"]
COMPANIES = ["Acme Tools", "Nordlicht Logistik", "Bäckerei Sonnenschein", "Riverside Clinics",
             "Hafenbau & Söhne", "Greenfield Farms", "Byte Foundry", "Alpenblick Hotels"]
ENDINGS = ["GmbH", "AG", "KG", "Ltd", "GmbH & Co. KG", "e.K."]
STREETS = ["Hauptstraße", "Industriestraße", "Bahnhofstraße", "Am Markt", "High Street", "Mühlenweg"]
CITIES = ["10115 Berlin", "20457 Hamburg", "80331 München", "50667 Köln", "60311 Frankfurt am Main"]
# The preview's customer: two invoices, and from a firm step on a late fee and interest,
# so that the preview shows the sentences that speak of them.
PREVIEW_SEED = 4


def sample_notice(rng: random.Random | None = None, n: int = 1, *, on: dt.date, tone: int | None = None,
                  language: str | None = None) -> Notice:
    """A realistic notice built in memory from seeded data: 1–8 invoices, every
    tone, some with fees, interest, earlier charges, credits and a payment-plan
    paragraph. The letters bench renders thousands; the Wording page previews
    one of the tone and language asked for (the same one each time)."""
    rng = rng or random.Random(PREVIEW_SEED)
    tone = tone or rng.choice((1, 1, 2, 2, 3))
    language = language or ("de" if rng.random() < 0.3 else "en")
    currency = "EUR"
    lines = []
    for i in range(rng.choice((1, 1, 2, 2, 3, 4, 5, 8))):
        due = on - dt.timedelta(days=rng.randint(-3, 90))
        lines.append(NoticeLine(
            number=f"INV-{on.year}-{n:06d}-{i}", issue_date=due - dt.timedelta(days=30), due_date=due,
            days_overdue=(on - due).days, currency=currency,
            open_amount=Decimal(rng.randint(2_500, 2_500_000)) / 100,
        ))
    charges = []
    rate = Decimal("0")
    if tone >= 2 and rng.random() < 0.5:
        charges.append(NoticeCharge("late_fee", Decimal("40.00"), currency, "step 3 of Systematic late"))
    if tone >= 2 and rng.random() < 0.3:
        rate = Decimal("8.00")
        for line in lines[:3]:
            if line.days_overdue > 0:
                amount = (line.open_amount * rate * line.days_overdue / 36_500).quantize(Decimal("0.01"))
                if amount > 0:
                    charges.append(NoticeCharge(
                        "interest", amount, currency,
                        f"{currency} {line.open_amount:,.2f} × 8.00% × {line.days_overdue}/365",
                        earlier=tone == 3,
                    ))
    credits = ()
    if rng.random() < 0.2:
        credits = (NoticeCredit(f"CN-{n:06d}", on - dt.timedelta(days=40), Decimal("120.00"), currency),)
    company = f"{rng.choice(COMPANIES)} {rng.choice(ENDINGS)}"
    person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return Notice(
        tone=tone, language=language, customer_name=company, account_number=f"C{n:07d}",
        recipient_name=person,
        postal_address=f"{company}\n{rng.choice(STREETS)} {rng.randint(1, 120)}\n{rng.choice(CITIES)}",
        letter_date=on, pay_by=on + dt.timedelta(days=rng.choice((7, 10, 14))), lines=tuple(lines),
        collector_name=rng.choice(("Carla Collector", "Otto Owens")), collector_email="ar@example.com",
        credits=credits, charges=tuple(charges), interest_rate_percent=rate,
        offer_payment_plan=rng.random() < 0.15, reference=f"D-{n}",
    )


def sample_invoice_copy(rng: random.Random | None = None, *, language: str, on: dt.date) -> InvoiceCopy:
    """A realistic invoice copy built in memory from seeded data: part paid, a
    fee still owed, for the Wording page's preview (the same one each time)."""
    rng = rng or random.Random(PREVIEW_SEED)
    company = f"{rng.choice(COMPANIES)} {rng.choice(ENDINGS)}"
    total = Decimal(rng.randint(50_000, 2_500_000)) / 100
    paid = (total / 4).quantize(Decimal("0.01"))
    issued = on - dt.timedelta(days=rng.randint(35, 75))
    return InvoiceCopy(
        language=language, number=f"INV-{on.year}-000001", issue_date=issued,
        due_date=issued + dt.timedelta(days=30), currency="EUR", total_amount=total, paid_amount=paid,
        credited_amount=Decimal("0.00"), open_amount=total - paid, customer_name=company,
        account_number="C0000001",
        billing_address=f"{company}\n{rng.choice(STREETS)} {rng.randint(1, 120)}\n{rng.choice(CITIES)}",
        recipient_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}", copy_date=on,
        pay_by=on + dt.timedelta(days=10), sender_name="Carla Collector", sender_email="ar@example.com",
        customer_reference="PO-4711",
        charges=(NoticeCharge("late_fee", Decimal("40.00"), "EUR", "step 3 of Systematic late"),),
    )


def sample_statement(rng: random.Random | None = None, *, language: str, on: dt.date) -> Statement:
    """A realistic statement built in memory from seeded data: invoices due and
    not yet due, one in dispute, a credit and a fee, for the Wording page's
    preview (the same one each time)."""
    rng = rng or random.Random(PREVIEW_SEED)
    company = f"{rng.choice(COMPANIES)} {rng.choice(ENDINGS)}"
    lines = []
    for i, days_late in enumerate((45, 12, 0)):
        due = on - dt.timedelta(days=days_late or -14)
        amount = Decimal(rng.randint(25_000, 1_500_000)) / 100
        lines.append(StatementLine(
            number=f"INV-{on.year}-{i + 1:06d}", issue_date=due - dt.timedelta(days=30), due_date=due,
            currency="EUR", total_amount=amount, open_amount=amount, days_late=days_late,
            disputed_amount=amount if i == 1 else Decimal("0.00"),
        ))
    return Statement(
        language=language, customer_name=company, account_number="C0000001",
        billing_address=f"{company}\n{rng.choice(STREETS)} {rng.randint(1, 120)}\n{rng.choice(CITIES)}",
        recipient_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}", statement_date=on, lines=tuple(lines),
        credits=(NoticeCredit("CN-000001", on - dt.timedelta(days=40), Decimal("120.00"), "EUR"),),
        charges=(NoticeCharge("late_fee", Decimal("40.00"), "EUR", "step 3 of Systematic late"),),
        contact_name="Carla Collector", contact_email="ar@example.com",
        sender_name="Carla Collector", sender_email="ar@example.com",
    )


def sample_call_summary(*, language: str, on: dt.date) -> CallSummary:
    """A call's summary with notes and a promise to pay, for the Wording page's preview."""
    return CallSummary(
        language=language, recipient_name="Anna Clerk", customer_name="Acme Tools GmbH",
        account_number="C0000001", notes="The invoice had gone to the old address; it is paid this week.",
        collector_name="Carla Collector", promise_amount=Decimal("1200.00"), promise_currency="EUR",
        promised_on=on + dt.timedelta(days=5),
        promise_invoices=(f"INV-{on.year}-000001", f"INV-{on.year}-000002"),
    )


def sample_plan_agreed(*, language: str, on: dt.date) -> PlanAgreed:
    """A payment plan of three instalments, part paid already, for the Wording page's preview."""
    return PlanAgreed(
        language=language, recipient_name="Anna Clerk", customer_name="Acme Tools GmbH",
        account_number="C0000001", currency="EUR", total_amount=Decimal("3000.00"),
        instalments=tuple((n, on + dt.timedelta(days=30 * n), Decimal("1000.00")) for n in (1, 2, 3)),
        invoices=(f"INV-{on.year}-000001", f"INV-{on.year}-000002"), sender_name="Carla Collector",
        paid_amount=Decimal("250.00"),
    )
