"""How a notice reads, rendered from plain values (no database)."""

import dataclasses
import datetime as dt
import re
import threading
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


# --- what the statement sums up -------------------------------------------------


def lille(*, language: str = "fr", charges=(), credits=()) -> rendering.Notice:
    """A letter of 2 Dec 2026 listing an invoice 30 days overdue and one that
    falls due in 3 days."""
    return rendering.Notice(
        tone=Tone.FIRM, language=language, customer_name="Lille School Board", account_number="C10246",
        recipient_name="Claire Martin", postal_address="Lille School Board\n2 rue Royale\n59000 Lille",
        letter_date=dt.date(2026, 12, 2), pay_by=dt.date(2026, 12, 12),
        lines=(
            rendering.NoticeLine("INV-2026-002871", dt.date(2026, 10, 3), dt.date(2026, 11, 2), 30,
                                 Decimal("1816.19"), "EUR"),
            rendering.NoticeLine("INV-2026-003053", dt.date(2026, 11, 5), dt.date(2026, 12, 5), -3,
                                 Decimal("1798.07"), "EUR"),
        ),
        collector_name="Carla", reference="D-371", charges=charges, credits=credits,
    )


def readable(text: str) -> str:
    """Words only, one space apart: no tags, no column padding, no no-break spaces."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


@pytest.mark.parametrize(("language", "overdue", "falling_due", "total"), [
    ("en", "Overdue invoices EUR 1,816.19", "Invoices falling due EUR 1,798.07", "Amount due EUR 3,614.26"),
    ("de", "Überfällige Rechnungen 1.816,19 EUR", "Noch nicht überfällige Rechnungen 1.798,07 EUR",
     "Zu zahlen 3.614,26 EUR"),
    ("nl", "Vervallen facturen 1.816,19 EUR", "Nog te vervallen facturen 1.798,07 EUR",
     "Te betalen 3.614,26 EUR"),
    ("fr", "Factures échues 1 816,19 EUR", "Factures à échoir 1 798,07 EUR", "Total à payer 3 614,26 EUR"),
    ("es", "Facturas vencidas 1.816,19 EUR", "Facturas por vencer 1.798,07 EUR",
     "Importe a pagar 3.614,26 EUR"),
    ("it", "Fatture scadute 1.816,19 EUR", "Fatture in scadenza 1.798,07 EUR",
     "Totale da pagare 3.614,26 EUR"),
])
def test_a_statement_sums_the_overdue_invoices_apart_from_those_not_yet_due(
    pdf_text, language, overdue, falling_due, total
):
    mixed = lille(language=language)
    overdue_label = rendering.LABELS[language]["total_invoices"]

    email = rendering.render_email(mixed)
    letter = pdf_text(rendering.render_letter(mixed))

    for text in (readable(letter), readable(email.text), readable(email.html)):
        assert overdue in text and falling_due in text, text
        # What is asked stays the whole of it.
        assert total in text, text
        # Wherever the statement says "overdue", it names the overdue amount.
        assert text.count(overdue_label) == text.count(overdue), text


def test_with_a_fee_the_statement_still_calls_overdue_only_what_is():
    fee = rendering.NoticeCharge("late_fee", Decimal("40.00"), "EUR", "step 2")
    email = rendering.render_email(lille(language="en", charges=(fee,)))

    # The text e-mail puts a colon after a charge's label.
    for text in (readable(email.text).replace("):", ")"), readable(email.html)):
        assert ("Overdue invoices EUR 1,816.19 Invoices falling due EUR 1,798.07 "
                "Late fee (as our terms of payment provide) EUR 40.00 Amount due EUR 3,654.26") in text, text


def test_a_reminder_before_the_due_date_does_not_call_its_invoices_overdue():
    """A standing fee from an earlier cycle puts a subtotal under invoices none of which is late."""
    before = dataclasses.replace(notice(language="en", days_overdue=-3), charges=(
        rendering.NoticeCharge("late_fee", Decimal("15.00"), "EUR", "late fee", earlier=True),))

    email = rendering.render_email(before)

    for text in (readable(email.text), readable(email.html)):
        assert "Invoices falling due EUR 500.00" in text
        assert "Overdue invoices" not in text
        assert "Amount due EUR 515.00" in text


def test_a_statement_of_overdue_invoices_only_and_no_charges_names_just_the_amount_due():
    email = rendering.render_email(notice(language="en", days_overdue=10))

    for text in (readable(email.text), readable(email.html)):
        assert "Amount due EUR 500.00" in text
        assert "Overdue invoices" not in text and "falling due" not in text


@pytest.mark.parametrize(("language", "subject"), [
    ("en", "Payment reminder: 1 overdue invoice, please pay by 12 Dec 2026"),
    ("de", "Zahlungserinnerung: 1 überfällige Rechnung, bitte zahlen Sie bis 12.12.2026"),
    ("nl", "Betalingsherinnering: 1 vervallen factuur, graag betaling uiterlijk 12 december 2026"),
    ("fr", "Rappel de paiement\u00a0: 1 facture échue, merci de régler au plus tard le 12 décembre 2026"),
    ("es", "Recordatorio de pago: 1 factura vencida, le rogamos el pago a más tardar el "
           "12 de diciembre de 2026"),
    ("it", "Sollecito di pagamento: 1 fattura scaduta, pagamento entro il 12 dicembre 2026"),
])
def test_a_firm_reminder_counts_as_overdue_only_the_invoices_that_are(pdf_text, language, subject):
    mixed = lille(language=language)

    assert rendering.render_email(mixed).subject == subject
    assert " ".join(subject.split()) in readable(pdf_text(rendering.render_letter(mixed)))


@pytest.mark.parametrize(("language", "subject"), [
    ("en", "Payment reminder: 2 invoices, please pay by 12 Dec 2026"),
    ("de", "Zahlungserinnerung: 2 Rechnungen, bitte zahlen Sie bis 12.12.2026"),
])
def test_a_firm_reminder_of_invoices_none_of_which_is_overdue_does_not_call_them_so(language, subject):
    mixed = lille(language=language)
    early = dataclasses.replace(mixed, lines=tuple(
        dataclasses.replace(x, days_overdue=-2) for x in mixed.lines))

    assert rendering.render_email(early).subject == subject



def amounts_in(line: str, language: str) -> list[Decimal]:
    """The EUR amounts a line of pdftotext's reading holds, as Decimals."""
    formats = rendering.FORMATS[language]
    pattern = (r"EUR\s(\d{1,3}(?:,\d{3})*\.\d\d)" if language == "en"
               else r"(?<![\d/])(\d{1,3}(?:[\s.]\d{3})*,\d\d)\sEUR")
    return [Decimal(re.sub(r"\s", "", x).replace(formats.thousands, "").replace(formats.decimal_mark, "."))
            for x in re.findall(pattern, line)]


def rows_between(lines: list[str], first: str, last: str, language: str) -> list[tuple[str, Decimal]]:
    """(line, its last amount) for the lines from the one starting with `first`
    to the one before that starting with `last`, skipping lines without an
    amount (the rest of a label that ran on over a second line)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith(last))
    return [(line, amounts_in(line, language)[-1]) for line in lines[start:end] if amounts_in(line, language)]


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_letter_s_figures_add_up_to_what_it_asks_with_credits_listed_apart(pdf_text, language):
    t = rendering.LABELS[language]
    charged = lille(language=language, charges=(
        rendering.NoticeCharge("interest", Decimal("11.94"), "EUR", "", earlier=True, paid=Decimal("2.00"),
                               rate_percent=Decimal("8.00"), stretches=((Decimal("1816.19"), 30),)),
        rendering.NoticeCharge("late_fee", Decimal("40.00"), "EUR", "step 2"),
    ), credits=(
        rendering.NoticeCredit("", None, Decimal("75.50"), "EUR", earlier_count=12),
        rendering.NoticeCredit("CN-2026-0091", dt.date(2026, 11, 20), Decimal("250.00"), "EUR"),
        rendering.NoticeCredit("BANK-7781", dt.date(2026, 11, 27), Decimal("120.00"), "EUR", payment=True),
    ))

    lines = [line.strip() for line in pdf_text(rendering.render_letter(charged)).splitlines()]

    # Each line of the sum is labelled, its figure last.
    summed = rows_between(lines, t["total_invoices"], t["amount_due"], language)
    expected = [(t["total_invoices"], Decimal("1816.19")), (t["total_falling_due"], Decimal("1798.07")),
                (t["interest"], Decimal("11.94")), (t["late_fee"], Decimal("40.00"))]
    assert [(line[:len(label)], figure) for (line, figure), (label, _) in zip(summed, expected, strict=True)
            ] == expected
    [(_, asked)] = rows_between(lines, t["amount_due"], t["credits"], language)
    assert asked == sum(figure for _, figure in summed) == Decimal("3666.20")
    # Credits are the customer's to deduct: listed with their amounts, and
    # not taken off what the letter asks, which its request names too.
    credits = rows_between(lines, t["credits"], t["credits_hint"][:20], language)
    expected = [(t["earlier_credits"].format(count=12), Decimal("75.50")),
                ("CN-2026-0091", Decimal("250.00")),
                (t["payment_on_account"].format(reference="BANK-7781"), Decimal("120.00"))]
    assert [(line[:len(label)], figure) for (line, figure), (label, _) in zip(credits, expected, strict=True)
            ] == expected
    request = readable(" ".join(lines).split(t["credits_hint"][:20])[1])
    assert [asked] == amounts_in(request, language)


def test_two_threads_rendering_at_once_take_turns_and_both_get_their_pdf(monkeypatch, pdf_text):
    """WeasyPrint (Pango underneath) is not safe to use from two threads at
    once: two deliveries rendering side by side in one process crashed it
    (a segmentation fault in Pango's line breaking). Rendering takes turns."""
    from weasyprint import HTML

    render = HTML.render
    inside, overlap, lock = [0], [0], threading.Lock()
    both_in = threading.Event()

    def watched(self, *args, **kwargs):
        with lock:
            inside[0] += 1
            overlap[0] = max(overlap[0], inside[0])
            if inside[0] == 2:
                both_in.set()
        both_in.wait(timeout=2)  # the other thread's turn comes now, or after this one's
        try:
            return render(self, *args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(HTML, "render", watched)
    pdfs: dict[str, bytes] = {}

    def letter(name: str) -> None:
        html = f'<link rel="stylesheet" href="pdf/dunning_letter.css"><p>{name}</p>'
        pdfs[name] = rendering.html_to_pdf(html)

    threads = [threading.Thread(target=letter, args=(name,)) for name in ("Acme Tools", "Beta Bau")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert overlap[0] == 1
    assert {name: name in pdf_text(pdf) for name, pdf in pdfs.items()} == {
        "Acme Tools": True, "Beta Bau": True,
    }


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_text_e_mail_keeps_its_columns_under_their_heads_whatever_the_invoice_number_s_length(language):
    long_numbers = dataclasses.replace(lille(language=language), lines=(
        rendering.NoticeLine("INV-2026-000001-0", dt.date(2026, 10, 1), dt.date(2026, 10, 31), 32,
                             Decimal("4352.09"), "EUR"),
        rendering.NoticeLine("ERP/2026/SALES/00000000417", dt.date(2026, 8, 8), dt.date(2026, 9, 7), 86,
                             Decimal("12345678.90"), "EUR"),
        rendering.NoticeLine("INV-7", dt.date(2026, 11, 5), dt.date(2026, 12, 5), -3,
                             Decimal("1798.07"), "EUR"),
    ))
    t = rendering.LABELS[language]

    lines = rendering.render_email(long_numbers).text.splitlines()

    [head] = [line for line in lines if line.strip().startswith(t["invoice"]) and t["issued"] in line]
    rows = [line for line in lines if line.strip().startswith(("INV-", "ERP/"))]
    due = [line for line in lines if line.strip().startswith(t["amount_due"])]
    assert len(rows) == 3 and due
    # A plain-text mail is read in a fixed-width font: each date starts under "Date",
    # each amount ends under "Open amount", and the total under them.
    issued_at = head.index(t["issued"])
    for row, line in zip(rows, long_numbers.lines, strict=True):
        assert row[:issued_at].strip() == line.number and row[issued_at] != " ", "\n".join([head, *rows])
    widths = {len(row) for row in rows} | {len(line) for line in due}
    assert widths == {len(head)}, "\n".join([head, *rows, *due])


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_text_e_mail_keeps_its_credits_dates_and_amounts_in_columns_whatever_their_length(language):
    t = rendering.LABELS[language]
    notice = lille(language=language, credits=(
        rendering.NoticeCredit("", dt.date(2026, 9, 1), Decimal("75.50"), "EUR", earlier_count=12),
        rendering.NoticeCredit("CN-7", dt.date(2026, 11, 20), Decimal("1250000.00"), "EUR"),
        rendering.NoticeCredit("BANK-2026-000007781", dt.date(2026, 11, 27), Decimal("120.00"), "EUR",
                               payment=True),
    ))
    labels = [t["earlier_credits"].format(count=12), "CN-7",
              t["payment_on_account"].format(reference="BANK-2026-000007781")]

    lines = rendering.render_email(notice).text.splitlines()

    rows = [line for line in lines if line.strip().startswith(tuple(labels))]
    assert len(rows) == 3, "\n".join(lines)
    # Read in a fixed-width font: each date starts where the others do, after its
    # whole label, and each amount ends where the others do.
    dates_at = {len(row) - len(row[row.index(label) + len(label):].lstrip())
                for row, label in zip(rows, labels, strict=True)}
    assert len(dates_at) == 1, "\n".join(rows)
    assert len({len(row) for row in rows}) == 1, "\n".join(rows)
