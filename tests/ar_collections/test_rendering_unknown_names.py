"""A template naming a value its text is not given fails, as one that does
not parse does, instead of printing nothing where the value should be."""

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from django.template import TemplateSyntaxError

from ar_collections import rendering
from ar_collections.models import Tone

DAY = dt.date(2026, 3, 2)


def notice(**changes) -> rendering.Notice:
    values = dict(
        tone=Tone.FRIENDLY, language="en", customer_name="Acme Tools", account_number="C00001",
        recipient_name="Anna Clerk", postal_address="Acme Tools\nMain Street 1\n10115 Berlin",
        letter_date=DAY, pay_by=DAY + dt.timedelta(days=10),
        lines=(rendering.NoticeLine("INV-1", DAY - dt.timedelta(days=40), DAY - dt.timedelta(days=10), 10,
                                    Decimal("500.00"), "EUR"),),
        collector_name="Carla",
    )
    return rendering.Notice(**{**values, **changes})


def statement() -> rendering.Statement:
    line = rendering.StatementLine(number="S-1", issue_date=DAY - dt.timedelta(days=40),
                                   due_date=DAY - dt.timedelta(days=10), currency="EUR",
                                   total_amount=Decimal("1234.50"), open_amount=Decimal("1234.50"),
                                   days_late=10)
    return rendering.Statement(
        language="en", customer_name="Acme Tools", account_number="C00001", billing_address="Main Street 1",
        recipient_name="Anna Clerk", statement_date=DAY, lines=(line,), credits=(), charges=(),
        contact_name="Carla",
    )


def invoice_copy() -> rendering.InvoiceCopy:
    return rendering.InvoiceCopy(
        language="en", number="INV-1", issue_date=DAY - dt.timedelta(days=40),
        due_date=DAY - dt.timedelta(days=10), currency="EUR", total_amount=Decimal("500.00"),
        paid_amount=Decimal("0"), credited_amount=Decimal("0"),
        open_amount=Decimal("500.00"), customer_name="Acme Tools", account_number="C00001",
        billing_address="Main Street 1", recipient_name="Anna Clerk", copy_date=DAY,
        pay_by=DAY + dt.timedelta(days=7), sender_name="Carla",
    )


def plan_agreed() -> rendering.PlanAgreed:
    return rendering.PlanAgreed(
        language="en", recipient_name="Anna Clerk", customer_name="Acme Tools", account_number="C00001",
        currency="EUR", total_amount=Decimal("500.00"),
        instalments=((1, DAY + dt.timedelta(days=30), Decimal("250.00")),
                     (2, DAY + dt.timedelta(days=60), Decimal("250.00"))),
        invoices=("INV-1",), sender_name="Carla",
    )


def call_summary() -> rendering.CallSummary:
    return rendering.CallSummary(language="en", recipient_name="Anna Clerk", customer_name="Acme Tools",
                                 account_number="C00001", notes="Pays on Friday.", collector_name="Carla")


EXTENDS_NOTICE = "{% extends layout %}{% block request %}<p>Please pay by {{ WRONG }}.</p>{% endblock %}"

# (what renders, the template it reads, the wording installed in its place[, the file the error names])
TEXTS = {
    "e-mail text": (lambda: rendering.render_email(notice()), "email/dunning/friendly/en.txt",
                    "Please pay by {{ WRONG }}."),
    "e-mail html": (lambda: rendering.render_email(notice()), "email/dunning/friendly/en.html",
                    EXTENDS_NOTICE),
    "e-mail subject": (lambda: rendering.render_email(notice()), "email/dunning/friendly/en.subject.txt",
                       "Reminder {{ WRONG }}"),
    "letter": (lambda: rendering.render_letter_html(notice()), "email/dunning/friendly/en.html",
               EXTENDS_NOTICE),
    # The layout a wording extends: the message names the wording, "or a template it uses".
    "letter layout": (lambda: rendering.render_letter_html(notice()), "pdf/dunning_letter.html",
                      "<p>{{ WRONG }}</p>", "email/dunning/friendly/en.html"),
    # A PDF's layout, under its language's words: the message names the words' file.
    "statement": (lambda: rendering.render_statement(statement()), "pdf/statement.html",
                  "<p>{{ WRONG }}</p>", "pdf/statement/en.html"),
    "statement e-mail": (lambda: rendering.render_statement_email(statement()), "email/statement/en.txt",
                         "Your statement {{ WRONG }}"),
    "invoice copy": (lambda: rendering.render_invoice_copy(invoice_copy()), "pdf/invoice_copy.html",
                     "<p>{{ WRONG }}</p>", "pdf/invoice_copy/en.html"),
    "statement words": (lambda: rendering.render_statement(statement()), "pdf/statement/en.html",
                        '{% extends "pdf/statement.html" %}{% block payment %}{{ WRONG }}{% endblock %}'),
    "invoice copy words": (lambda: rendering.render_invoice_copy(invoice_copy()), "pdf/invoice_copy/en.html",
                           '{% extends "pdf/invoice_copy.html" %}{% block payment %}{{ WRONG }}'
                           "{% endblock %}"),
    "invoice copy e-mail": (lambda: rendering.render_invoice_copy_email(invoice_copy()),
                            "email/invoice_copy/en.txt", "As requested {{ WRONG }}"),
    "plan schedule": (lambda: rendering.render_plan_agreed(plan_agreed()), "email/plan_agreed/en.txt",
                      "{% for x in instalments %}{{ x.amount }} {% endfor %}{{ WRONG }}"),
    "call summary": (lambda: rendering.render_call_summary(call_summary()), "email/call_summary/en.txt",
                     "{{ notes }} {{ WRONG }}"),
}


@pytest.fixture
def install(settings, tmp_path):
    """install(path, text): the install's own template at `path`, found before the shipped one."""
    folder = tmp_path / "wording"

    def install(path: str, text: str) -> None:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
        engine = settings.TEMPLATES[0]
        settings.TEMPLATES = [{**engine, "DIRS": [folder, *[d for d in engine["DIRS"] if d != folder]]}]

    return install


@pytest.mark.parametrize("wrong", ["pay_byy", "t.pay_byy"])
@pytest.mark.parametrize("text", TEXTS)
def test_a_template_naming_a_value_it_is_not_given_fails_naming_the_file_and_the_name(install, text, wrong):
    render, path, wording, *named = TEXTS[text]
    install(path, wording.replace("WRONG", wrong))
    named = named[0] if named else path

    with pytest.raises(TemplateSyntaxError) as failed:
        render()

    assert str(failed.value) == (
        f"{named} (or a template it uses) names {wrong!r}, which is not a value it is given"
    )


@pytest.mark.parametrize("wording", [
    "{% if WRONG %}yes{% endif %}",
    "{% for x in WRONG %}{{ x }}{% endfor %}",
    "{{ pay_by|default:WRONG }}",
])
def test_a_name_it_is_not_given_fails_in_a_condition_a_loop_or_a_filter_too(install, wording):
    """`{% if pay_byy %}` would leave out a paragraph as silently as
    `{{ pay_byy }}` leaves out a date."""
    install("email/dunning/friendly/en.txt", wording.replace("WRONG", "pay_byy"))

    with pytest.raises(TemplateSyntaxError, match="names 'pay_byy', which is not a value it is given"):
        rendering.render_email(notice())


def test_values_that_are_blank_are_no_mistake(install):
    """What a notice may leave blank (no recipient, no collector's e-mail, no
    payment plan) is given as blank and reads as nothing, as before."""
    install("email/dunning/friendly/en.txt",
            "[{{ recipient_name }}][{{ collector_email }}][{% if payment_plan %}plan{% endif %}]"
            "[{{ t.regards }}][{{ company.phone|default:'no phone' }}]")

    email = rendering.render_email(notice(recipient_name="", collector_email=""))

    assert email.text.startswith("[][][][Kind regards][")


# --- the parts of a listed item ----------------------------------------------

TEXT = "email/dunning/friendly/en.txt"
CHARGE = rendering.NoticeCharge("late_fee", Decimal("40.00"), "EUR", "step 2")


def notice_with_everything() -> rendering.Notice:
    return notice(
        credits=(rendering.NoticeCredit("CN-7", DAY - dt.timedelta(days=5), Decimal("20.00"), "EUR"),),
        charges=(CHARGE,),
    )


def statement_with_everything() -> rendering.Statement:
    return dataclasses.replace(
        statement(),
        credits=(rendering.NoticeCredit("CN-7", DAY - dt.timedelta(days=5), Decimal("20.00"), "EUR"),),
        charges=(CHARGE,),
    )


# (what renders, the template it reads, the wording installed in its place, the name it misspells)
def statement_words(inner: str) -> str:
    """An install's own words for the statement's PDF, `inner` under the figures."""
    return '{% extends "pdf/statement.html" %}{% block payment %}' + inner + "{% endblock %}"


ITEMS = {
    "notice line": (lambda: rendering.render_email(notice()), TEXT,
                    "{% for line in lines %}Invoice {{ line.nmber }}: {{ line.amount }}{% endfor %}",
                    "line.nmber"),
    "notice line in a condition": (lambda: rendering.render_email(notice()), TEXT,
                                   "{% for line in lines %}{% if line.disputd %}!{% endif %}{% endfor %}",
                                   "line.disputd"),
    "notice credit": (lambda: rendering.render_email(notice_with_everything()), TEXT,
                      "{% for c in credits %}{{ c.nmber }}: {{ c.amount }}{% endfor %}", "c.nmber"),
    "notice charge": (lambda: rendering.render_email(notice_with_everything()), TEXT,
                      "{% for c in charges %}{{ c.label }}: {{ c.amont }}{% endfor %}", "c.amont"),
    "notice total": (lambda: rendering.render_email(notice()), TEXT,
                     "{% for s in totals %}{{ s.currency }} {{ s.dues }}{% endfor %}", "s.dues"),
    "letter line": (lambda: rendering.render_letter_html(notice()), "email/dunning/friendly/en.html",
                    "{% extends layout %}{% block request %}{% for line in lines %}{{ line.nmber }}"
                    "{% endfor %}{% endblock %}", "line.nmber"),
    "statement line": (lambda: rendering.render_statement(statement()), "pdf/statement/en.html",
                       statement_words("{% for line in lines %}<p>{{ line.nmber }}</p>{% endfor %}"),
                       "line.nmber"),
    "statement credit": (lambda: rendering.render_statement(statement_with_everything()),
                         "pdf/statement/en.html",
                         statement_words("{% for c in credits %}<p>{{ c.lable }}</p>{% endfor %}"),
                         "c.lable"),
    "statement charge": (lambda: rendering.render_statement(statement_with_everything()),
                         "pdf/statement/en.html",
                         statement_words("{% for c in charges %}<p>{{ c.amont }}</p>{% endfor %}"),
                         "c.amont"),
    "invoice copy charge": (
        lambda: rendering.render_invoice_copy(dataclasses.replace(invoice_copy(), charges=(CHARGE,))),
        "pdf/invoice_copy/en.html",
        '{% extends "pdf/invoice_copy.html" %}{% block payment %}'
        "{% for c in charges %}<p>{{ c.amont }}</p>{% endfor %}{% endblock %}", "c.amont"),
    "plan instalment": (lambda: rendering.render_plan_agreed(plan_agreed()), "email/plan_agreed/en.txt",
                        "{% for i in instalments %}{{ i.number }}. {{ i.amont }}{% endfor %}", "i.amont"),
}


@pytest.mark.parametrize("item", ITEMS)
def test_a_misspelt_part_of_a_listed_item_fails_naming_the_file_and_the_name(install, item):
    """{{ line.nmber }} printed nothing: a customer read "Invoice : 500.00"."""
    render, path, wording, wrong = ITEMS[item]
    install(path, wording)

    with pytest.raises(TemplateSyntaxError) as failed:
        render()

    assert str(failed.value) == (
        f"{path} (or a template it uses) names {wrong!r}, which is not a value it is given"
    )


def test_a_blank_part_of_a_listed_item_is_no_mistake(install):
    """An invoice no one disputes, a credit without a date: given as blank,
    read as nothing, as before."""
    install("email/dunning/friendly/en.txt",
            "{% for line in lines %}[{{ line.number }}][{{ line.disputed }}]{% endfor %}"
            "{% for c in credits %}[{{ c.number }}][{{ c.issued_on }}]{% endfor %}")

    email = rendering.render_email(notice(
        credits=(rendering.NoticeCredit("CN-7", None, Decimal("20.00"), "EUR"),)))

    assert email.text == "[INV-1][][CN-7][]\n"


# --- what we ship -------------------------------------------------------------

def every_part(language: str, tone: int) -> rendering.Notice:
    """A notice with every part a text may show: an invoice disputed in part
    and one not yet due, a credit note, a payment and earlier credits on
    account, a new fee, interest worked out and an earlier charge part paid,
    a payment plan, copies attached."""
    return notice(
        tone=tone, language=language, collector_email="carla@arcrm.test", reference="D-12",
        offer_payment_plan=True, copies_attached=True, interest_rate_percent=Decimal("8.00"),
        lines=(
            rendering.NoticeLine("INV-1", DAY - dt.timedelta(days=40), DAY - dt.timedelta(days=10), 10,
                                 Decimal("400.00"), "EUR", disputed_amount=Decimal("100.00")),
            rendering.NoticeLine("INV-2", DAY - dt.timedelta(days=20), DAY + dt.timedelta(days=3), -3,
                                 Decimal("300.00"), "EUR"),
        ),
        credits=(
            rendering.NoticeCredit("CN-7", DAY - dt.timedelta(days=5), Decimal("20.00"), "EUR"),
            rendering.NoticeCredit("PAY-8", DAY - dt.timedelta(days=4), Decimal("30.00"), "EUR",
                                   payment=True),
            rendering.NoticeCredit("", DAY - dt.timedelta(days=90), Decimal("15.00"), "EUR",
                                   earlier_count=3),
        ),
        charges=(
            rendering.NoticeCharge("late_fee", Decimal("40.00"), "EUR", "step 2"),
            rendering.NoticeCharge("interest", Decimal("0.88"), "EUR", "", rate_percent=Decimal("8.00"),
                                   stretches=((Decimal("400.00"), 10),)),
            rendering.NoticeCharge("late_fee", Decimal("25.00"), "EUR", "step 1", earlier=True,
                                   paid=Decimal("15.00")),
        ),
    )


@pytest.mark.parametrize("language", sorted(rendering.LABELS))
def test_every_shipped_text_renders_in_every_language_and_tone_with_every_part_present(pdf_text, language):
    """Each listed invoice, credit and charge, each optional paragraph: the
    shipped wording names only what its text is given, in every language."""
    for tone in rendering.TONE_FOLDERS:
        email = rendering.render_email(every_part(language, tone))
        letter = rendering.render_letter_html(every_part(language, tone))
        for text in (email.text, email.html, letter):
            for shown in ("INV-1", "INV-2", "CN-7", "PAY-8", "carla@arcrm.test"):
                assert shown in text, (tone, shown)

    everything = every_part(language, Tone.FINAL)
    statement_ = dataclasses.replace(
        statement(), language=language, contact_email="carla@arcrm.test", sender_name="Bea",
        sender_email="bea@arcrm.test", note="As discussed.",
        lines=(*statement().lines,
               rendering.StatementLine("S-2", DAY - dt.timedelta(days=20), DAY + dt.timedelta(days=3), "EUR",
                                       Decimal("300.00"), Decimal("300.00"), 0,
                                       disputed_amount=Decimal("50.00")),
               rendering.StatementLine("S-3", DAY - dt.timedelta(days=60), DAY - dt.timedelta(days=30), "EUR",
                                       Decimal("80.00"), Decimal("80.00"), 30,
                                       disputed_amount=Decimal("80.00"))),
        credits=everything.credits[:2], charges=everything.charges,
    )
    assert "As discussed." in rendering.render_statement_email(statement_).text
    read = pdf_text(rendering.render_statement(statement_))
    for shown in ("S-1", "S-2", "S-3", "CN-7", "PAY-8", "carla@arcrm.test"):
        assert shown in read, shown

    copy = dataclasses.replace(
        invoice_copy(), language=language, sender_email="bea@arcrm.test", customer_reference="PO-9",
        disputed_amount=Decimal("100.00"), charges=everything.charges,
    )
    assert "INV-1" in rendering.render_invoice_copy_email(copy).text
    read = pdf_text(rendering.render_invoice_copy(copy))
    for shown in ("INV-1", "PO-9", "bea@arcrm.test"):
        assert shown in read, shown

    summary = dataclasses.replace(call_summary(), language=language, promise_amount=Decimal("250.00"),
                                  promise_currency="EUR", promised_on=DAY + dt.timedelta(days=7),
                                  promise_invoices=("INV-1",))
    assert "INV-1" in rendering.render_call_summary(summary)[1]

    plan = dataclasses.replace(plan_agreed(), language=language, paid_amount=Decimal("50.00"),
                               rescheduled=True)
    assert "INV-1" in rendering.render_plan_agreed(plan)[1]


# --- the parts of a plain value, and of the loop ---------------------------------

@pytest.mark.parametrize(("wording", "wrong"), [
    ("Dear {{ customer_name.nmbr }}", "customer_name.nmbr"),
    ("{% if customer_name.nmbr %}yes{% endif %}", "customer_name.nmbr"),
    ("{% if pay_by|default:customer_name.nmbr %}yes{% endif %}", "customer_name.nmbr"),
    ("{{ pay_by|default:customer_name.nmbr }}", "customer_name.nmbr"),
    ("{% for line in lines %}{{ forloop.countr }}. {{ line.number }}{% endfor %}", "forloop.countr"),
    ("{% for line in lines %}{% if forloop.frist %}first{% endif %}{% endfor %}", "forloop.frist"),
    ("{% for line in lines %}{% for c in credits %}{{ forloop.parentloop.countr }}{% endfor %}{% endfor %}",
     "forloop.parentloop.countr"),
])
def test_a_misspelt_part_of_a_plain_value_or_of_the_loop_fails_naming_it(install, wording, wrong):
    """{{ customer_name.nmbr }} and {{ forloop.countr }} printed nothing, and
    {% if customer_name.nmbr %} left a paragraph out as silently."""
    install(TEXT, wording)

    with pytest.raises(TemplateSyntaxError) as failed:
        rendering.render_email(notice_with_everything())

    assert str(failed.value) == (
        f"{TEXT} (or a template it uses) names {wrong!r}, which is not a value it is given"
    )


def test_what_a_plain_value_and_the_loop_have_is_no_mistake(install):
    """A string's own methods, the loop's counter, first, last and parent
    loop, and a blank value read as Django reads them."""
    install(TEXT,
            "[{{ customer_name.upper }}][{{ recipient_name.strip }}]"
            "{% for line in lines %}{% for c in credits %}"
            "[{{ forloop.counter }}/{{ forloop.parentloop.counter }}"
            "{% if forloop.first %} first{% endif %}{% if forloop.last %} last{% endif %}]"
            "{% endfor %}{% endfor %}[{{ collector_email|default:customer_name.lower }}]")

    email = rendering.render_email(notice_with_everything())

    assert email.text == "[ACME TOOLS][Anna Clerk][1/1 first last][acme tools]\n"


def test_a_method_django_will_not_call_still_reads_as_nothing(install):
    """Django refuses to call what changes data (alters_data) and what needs
    arguments, and prints nothing for it: no name is misspelt there."""
    install(TEXT, "[{{ customer_name.count }}]")

    assert rendering.render_email(notice()).text == "[]\n"
