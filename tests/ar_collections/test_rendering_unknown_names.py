"""A template naming a value its text is not given fails, as one that does
not parse does, instead of printing nothing where the value should be."""

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
    "statement": (lambda: rendering.render_statement(statement()), "pdf/statement.html",
                  "<p>{{ WRONG }}</p>"),
    "statement e-mail": (lambda: rendering.render_statement_email(statement()), "email/statement/en.txt",
                         "Your statement {{ WRONG }}"),
    "invoice copy": (lambda: rendering.render_invoice_copy(invoice_copy()), "pdf/invoice_copy.html",
                     "<p>{{ WRONG }}</p>"),
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
