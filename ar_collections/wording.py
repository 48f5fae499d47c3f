"""The words customers get, edited by the managers who own the policy.

Each tone × language's dunning wording (`email/dunning/<tone>/<lang>.*`) has
three parts: the subject, and the intro and request blocks of the text and
the HTML e-mail (the letter is the HTML part in the letter's layout). A save
on the Wording page is a new `WordingVersion`, which notices read from then
on (rendering._wording_templates); putting back the shipped text is a version
too, one that lets the files speak again.

A save is refused, with the part and what is wrong, for anything the strict
rendering of a notice would refuse when it is sent: a name no notice is given
(in any branch, not only those a sample takes), a syntax error, and any tag
outside the small set below.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.template import TemplateSyntaxError, engines
from django.template.base import FilterExpression, Lexer, TextNode, TokenType, Variable, VariableNode
from django.template.defaulttags import CommentNode, FirstOfNode, ForNode, IfNode, WithNode
from django.template.loader import get_template
from django.template.loader_tags import BlockNode
from django.utils import timezone

from ar_collections import rendering
from ar_collections.models import Tone, WordingVersion
from ar_collections.rendering import (
    LABELS,
    TONE_FOLDERS,
    WORDING_PARTS,
    Notice,
    NoticeCharge,
    NoticeCredit,
    NoticeLine,
    RenderedEmail,
)
from arcrm.text import person_name

PART_NAMES = {"subject": "Subject", "text": "Text e-mail", "html": "HTML e-mail and letter"}

# The tags wording may use: they only choose and repeat words by the values a
# notice is given, and each of them names those values where the check below
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
# The blocks the layouts fill, the same in the e-mails and the letter.
BLOCKS = ("intro", "request")


@dataclass(frozen=True)
class Wording:
    """One tone × language on the Wording page, as notices say it now."""

    tone: int
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
    def tone_name(self) -> str:
        return Tone(self.tone).label

    @property
    def language_name(self) -> str:
        return LABELS[self.language]["name"]

    def parts(self) -> dict[str, str]:
        return _parts_of(self.version) if self.edited else shipped_parts(self.tone, self.language)


def wordings() -> list[Wording]:
    """Every tone × language a notice can be written in, with its newest version (one query)."""
    newest = {}
    versions = (WordingVersion.objects.select_related("saved_by").order_by("tone", "language", "-number")
                .only("tone", "language", "number", "shipped", "saved_by", "saved_at"))
    for version in versions:
        newest.setdefault((version.tone, version.language), version)
    return [Wording(tone, language, newest.get((tone, language)))
            for tone in TONE_FOLDERS for language in LABELS if _shipped(tone, language)]


def wording_get(tone: int, language: str) -> Wording | None:
    """The tone × language, or None when notices are never written in it."""
    if tone not in TONE_FOLDERS or language not in LABELS or not _shipped(tone, language):
        return None
    newest = WordingVersion.objects.of(tone, language).select_related("saved_by").first()
    return Wording(tone, language, newest)


def wording_in_force(tone: int, language: str) -> dict[str, str] | None:
    """The parts a notice of this tone, written in `language`, says: the newest
    version saved, or None for the shipped files (never edited, or put back).

    Read from the database for every notice built (one row, by the unique
    constraint's index), and compiled once per text in each process
    (rendering._wording_compiled): a worker sends a version saved a moment
    ago without a restart, and no cache in between can hold an old text
    after a save."""
    version = WordingVersion.objects.of(tone, language).first()
    return _parts_of(version) if version and not version.shipped else None


def _parts_of(version: WordingVersion) -> dict[str, str]:
    return {part: getattr(version, part) for part in WORDING_PARTS}


def history(wording: Wording) -> list[WordingVersion]:
    return list(WordingVersion.objects.of(wording.tone, wording.language).select_related("saved_by"))


def _shipped(tone: int, language: str) -> bool:
    """Whether notices of this tone are written in `language` (it has its files), not in English instead."""
    return rendering.wording_language(language, tone)[0] == language


def shipped_parts(tone: int, language: str) -> dict[str, str]:
    """The text shipped with the product (or an install's own files), without its frame."""
    return {part: rendering.wording_unframed(
        part, get_template(rendering.wording_template_name(tone, language, part)).template.source)
        for part in WORDING_PARTS}


# --- checks -------------------------------------------------------------------


def wording_problems(tone: int, language: str, parts: dict[str, str]) -> list[str]:
    """What is wrong with `parts` for notices of this tone and language, in
    words a manager can act on; empty when notices can be sent with them."""
    sample = sample_notice(tone=tone, language=language, on=timezone.localdate())
    context = rendering._context(sample, layout="email/dunning/_layout.html")
    problems = []
    for part in WORDING_PARTS:
        source = parts[part]
        where = PART_NAMES[part]
        if not source.strip():
            problems.append(f"{where}: it is empty; write what customers should read.")
            continue
        found = list(_tag_problems(part, source))
        if not found:
            try:
                template = engines["django"].from_string(source)
            except TemplateSyntaxError as error:
                found.append(f"the template does not read: {error}")
            else:
                nodes = template.template.nodelist
                if part != "subject":
                    found.extend(_outside_blocks(nodes))
                # The subject is rendered first; the text and HTML parts may name it.
                bound = frozenset({"subject"} if part != "subject" else ())
                found.extend(dict.fromkeys(_unknown(nodes, bound, context)))
        problems.extend(f"{where}: {problem}" for problem in found)
    if problems:
        return problems
    # Last, as it will be sent: anything the strict rendering refuses besides.
    try:
        rendering.render_email(replace(sample, wording=parts))
        rendering.render_letter_html(replace(sample, wording=parts))
    except TemplateSyntaxError as error:
        problems.append(str(error))
    except Exception as error:
        # Whatever it is (a filter given what it cannot take), a send would fail on it too.
        problems.append(f"The sample notice cannot be written with it: {type(error).__name__}: {error}")
    return problems


def _tag_problems(part: str, source: str) -> Iterator[str]:
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
        elif tag == "block" and (len(bits) != 2 or bits[1] not in BLOCKS):
            name = bits[1] if len(bits) > 1 else ""
            yield (f"{line}: the layout has no block {name!r}: the words go in "
                   f"{{% block intro %}} (before the invoices) and {{% block request %}} (after them).")


def _outside_blocks(nodelist) -> Iterator[str]:
    """The layout shows the e-mail's and the letter's blocks, nothing else of the part."""
    for node in nodelist:
        if not isinstance(node, BlockNode | CommentNode) and not (
            isinstance(node, TextNode) and not node.s.strip()
        ):
            yield ("there are words outside {% block intro %} and {% block request %}, which the e-mail "
                   "and the letter never show: put them in one of the two.")
            return


def _unknown(nodelist, bound: frozenset[str], context: dict) -> Iterator[str]:
    """What is wrong with the names in `nodelist`: those neither in the
    notice's context nor bound by a tag around them (a loop's variable, a
    `with`), and filters that would unescape them."""
    for node in nodelist:
        if isinstance(node, VariableNode):
            yield from _expression(node.filter_expression, bound, context)
        elif isinstance(node, IfNode):
            for condition, nodes in node.conditions_nodelists:
                if condition is not None:
                    yield from _condition(condition, bound, context)
                yield from _unknown(nodes, bound, context)
        elif isinstance(node, ForNode):
            yield from _expression(node.sequence, bound, context)
            yield from _unknown(node.nodelist_loop, bound | set(node.loopvars) | {"forloop"}, context)
            yield from _unknown(node.nodelist_empty, bound, context)
        elif isinstance(node, WithNode):
            for value in node.extra_context.values():
                yield from _expression(value, bound, context)
            yield from _unknown(node.nodelist, bound | set(node.extra_context), context)
        elif isinstance(node, FirstOfNode):
            for value in node.vars:
                yield from _expression(value, bound, context)
        elif isinstance(node, BlockNode):
            yield from _unknown(node.nodelist, bound | {"block"}, context)


def _condition(condition, bound: frozenset[str], context: dict) -> Iterator[str]:
    """An `if` condition: a literal (`.value`) or an operator over one or two of them."""
    if isinstance(getattr(condition, "value", None), FilterExpression):
        yield from _expression(condition.value, bound, context)
    for side in (getattr(condition, "first", None), getattr(condition, "second", None)):
        if side is not None:
            yield from _condition(side, bound, context)


def _expression(expression: FilterExpression, bound: frozenset[str], context: dict) -> Iterator[str]:
    yield from _variable(expression.var, bound, context)
    for function, arguments in expression.filters:
        name = getattr(function, "_filter_name", function.__name__)
        if name in REFUSED_FILTERS:
            yield f"the filter |{name} is not allowed: it would put values in the HTML unescaped."
        for lookup, argument in arguments:
            if lookup:
                yield from _variable(argument, bound, context)


def _variable(variable, bound: frozenset[str], context: dict) -> Iterator[str]:
    lookups = getattr(variable, "lookups", None) if isinstance(variable, Variable) else None
    if not lookups:
        return  # a literal: "text", 3
    first = lookups[0]
    if first in bound:
        return
    if first not in context:
        yield _not_given(".".join(lookups))
    elif len(lookups) > 1 and type(context[first]) is dict and lookups[1] not in context[first]:
        # The labels `t` and our letterhead `company`: their keys are known too.
        yield _not_given(f"{first}.{lookups[1]}")


def _not_given(name: str) -> str:
    return f"it names {name!r}, which is not a value a notice is given."


# --- saving -------------------------------------------------------------------


def wording_save(*, wording: Wording, parts: dict[str, str], based_on: int, actor) -> WordingVersion:
    """Save `parts` as the newest version, made from version `based_on` (0:
    the shipped text). Refused (ValidationError, nothing saved) when notices
    could not be sent with them, when nothing changed, or when someone saved
    another version meanwhile."""
    parts = {part: parts[part].replace("\r\n", "\n") for part in WORDING_PARTS}
    if problems := wording_problems(wording.tone, wording.language, parts):
        raise ValidationError(problems)
    if based_on == wording.number and parts == wording.parts():
        raise ValidationError("Nothing was changed: the text is the one notices say already.")
    return _version_add(wording=wording, parts=parts, shipped=False, based_on=based_on, actor=actor)


def wording_put_back(*, wording: Wording, based_on: int, actor) -> WordingVersion:
    """Notices of this tone and language say the shipped text again; the
    edited versions stay in the history."""
    if not wording.edited:
        raise ValidationError("Notices say the shipped text already.")
    return _version_add(wording=wording, parts=dict.fromkeys(WORDING_PARTS, ""), shipped=True,
                        based_on=based_on, actor=actor)


def _version_add(*, wording: Wording, parts: dict[str, str], shipped: bool, based_on: int,
                 actor) -> WordingVersion:
    if based_on != wording.number:
        raise _saved_meanwhile(wording)
    before = wording.parts()
    try:
        # The constraint on (tone, language, number) refuses the second of two
        # saves made from the same version, however close together.
        with transaction.atomic():
            return WordingVersion.objects.create(
                tone=wording.tone, language=wording.language, number=based_on + 1, shipped=shipped,
                **parts, **{f"{part}_before": before[part] for part in WORDING_PARTS}, saved_by=actor,
            )
    except IntegrityError:
        raise _saved_meanwhile(wording_get(wording.tone, wording.language)) from None


def _saved_meanwhile(wording: Wording) -> ValidationError:
    version = wording.version
    who = f" by {person_name(version.saved_by)}" if version else ""
    return ValidationError(
        f"This wording was saved{who} after you opened it (version {wording.number}): nothing was saved. "
        "Open it again to see theirs, then make your change to it."
    )


# --- preview -------------------------------------------------------------------


def preview_email(wording: Wording, parts: dict[str, str], *, on: dt.date) -> RenderedEmail:
    return rendering.render_email(_preview_notice(wording, parts, on=on))


def preview_letter(wording: Wording, parts: dict[str, str], *, on: dt.date) -> bytes:
    return rendering.render_letter(_preview_notice(wording, parts, on=on))


def _preview_notice(wording: Wording, parts: dict[str, str], *, on: dt.date) -> Notice:
    return replace(sample_notice(tone=wording.tone, language=wording.language, on=on), wording=parts)


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
