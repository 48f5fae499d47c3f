"""What a manager may write on the Wording page, in plain words: every value
a document's wording is given, what it means and what the sample preview
fills it with, and the mistakes a save is refused for.

The names come from the sample document itself (wording.sample_context), so
the list is never longer or shorter than what the checks accept; MEANINGS
says what each means. tests/ar_collections/test_wording_guide.py fails for
a value a document is given that has no meaning here, so a new one cannot
reach the page unexplained.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ar_collections.models import WordingKind
from ar_collections.rendering import PDF_BLOCKS, PDF_ROW_BLOCKS
from ar_collections.wording import Wording, sample_context

# Values the layouts use to draw their tables (column widths, figures by
# currency, the templates they are built from): no use in a sentence, so not
# offered, though a wording naming one is not refused.
LAYOUT_ONLY = frozenset({
    "layout", "template_base", "number_width", "overdue_width", "amount_width", "credit_width",
    "credit_amount_width", "label_width", "aging_labels", "aging", "summary", "currencies", "balances",
    "to_pay_now", "later", "held_back", "credit_left",
})

# What each value means, as a credit manager would say it. A kind's own
# meaning, where a name means something else there, is keyed by (kind, name).
MEANINGS: dict[str | tuple[str, str], str] = {
    "subject": "The subject as written above, filled in: in the e-mail's text (not in the subject itself, "
               "nor on the PDF).",
    "t": "The product's own phrases in this language, each by its name (the shipped text shows those it "
         "uses).",
    "company": "Our own company, as on the letterhead.",
    "language": "The language's code: en, de, nl, fr, es or it.",
    "tone": "The notice's tone: friendly, firm or final.",
    "customer_name": "The customer's name.",
    "account_number": "The customer's number with us.",
    "recipient_name": "The person written to (blank when the account has no named contact).",
    "greeting": "The opening line with the person's name, in this language.",
    "address_lines": "The postal address, one line after the other.",
    "window_name": "The person's name above the address in the envelope window, when the address lacks it.",
    "letter_date": "The date of the notice.",
    "pay_by": "The date to pay by.",
    "pay_by_long": "The date to pay by, the month written out.",
    "lines": "The invoices the notice lists, one after the other.",
    (WordingKind.STATEMENT, "lines"): "The open invoices, one after the other.",
    "count": "How many invoices are listed.",
    "overdue_count": "How many of the invoices listed are overdue.",
    "short_numbers": "The listed invoices' numbers, separated by commas.",
    "before_due": "Yes when the notice goes out before the invoices fall due.",
    "copies_attached": "Yes when a copy of each invoice goes with the e-mail.",
    "totals": "The sums the notice shows, one per currency.",
    "amount_due": "What is to be paid in all, invoices, fees and interest, per currency.",
    "charges": "The fees and interest charged and still owed.",
    "credits": "The credit notes and payments on account the customer may deduct.",
    "late_fee": "The late fee this notice charges (blank when none).",
    "late_fees": "How many late fees are charged.",
    "interest_rate": "The yearly interest rate charged (blank when none).",
    "payment_plan": "The sentence offering a payment plan, when the step offers one (blank otherwise).",
    "collector_name": "The collector who signs.",
    "collector_email": "The collector's e-mail address.",
    "reference": "Our reference for the notice.",
    "title": "The document's heading.",
    "note": "The sentence saying this is a copy, not a new invoice.",
    (WordingKind.STATEMENT, "note"): "The collector's own note, word for word (blank when none).",
    "number": "The invoice number.",
    "issue_date": "The day the invoice was issued.",
    "due_date": "The day the invoice fell due, or falls due.",
    "currency": "The invoice's currency.",
    "customer_reference": "The customer's order number the invoice quotes (blank when none).",
    "total": "The invoice's total.",
    (WordingKind.PLAN_AGREED, "total"): "What the payment plan pays in all.",
    "paid": "What has been paid on the invoice.",
    (WordingKind.PLAN_AGREED, "paid"): "What has come in on the invoices since the plan was proposed.",
    "credited": "What credit notes took off the invoice.",
    "open": "What is still open on the invoice.",
    "settled": "Yes when nothing is open on the invoice.",
    "pay": "The product's sentence asking to pay by the date, up to the bank account.",
    "undisputed": "The open amount not under dispute.",
    "disputed": "The sentence saying how much is under dispute (blank when nothing is).",
    "disputed_amount": "How much of the open amount is under dispute (blank when nothing is).",
    "all_disputed": "Yes when everything open is under dispute: nothing is asked for.",
    "owed": "What is open on the invoice with its fees and interest.",
    "copy_date": "The date of the copy.",
    "sender_name": "Who sends it.",
    "sender_email": "The sender's e-mail address.",
    "intro": "The product's first sentence of the statement, with its date.",
    "statement_date": "The date of the statement.",
    "statement_date_long": "The date of the statement, the month written out.",
    "nothing_open": "Yes when nothing is open on the account.",
    "balance": "The account's balance: invoices and charges less credits, per currency.",
    "to_pay_now_said": "What to pay now, when it is not the balance (blank otherwise).",
    "later_said": "What falls due later (blank when nothing does).",
    "held_back_said": "What is under dispute and not asked for (blank when nothing is).",
    "credit_left_said": "Credits beyond what is due now (blank when none).",
    "contact_name": "The collector to ask about the account.",
    "contact_email": "That collector's e-mail address.",
    "notes": "What the collector wrote about the call.",
    "promise_amount": "The amount the customer promised to pay (blank when no promise).",
    "promised_on": "The day they promised to pay by.",
    "promise_invoices": "The numbers of the invoices the promise covers.",
    "promise_count": "How many invoices the promise covers.",
    "instalments": "The plan's instalments, one after the other.",
    "invoices": "The numbers of the invoices the plan covers.",
    "invoice_count": "How many invoices the plan covers.",
    "rescheduled": "Yes when this schedule replaces one agreed before.",
}


@dataclass(frozen=True)
class Placeholder:
    name: str  # as written between {{ and }}
    meaning: str
    example: str  # what the sample preview fills in; blank for a list
    fields: tuple[str, ...] = ()  # a list's items' (or our company's) parts: {{ line.number }}
    item: str = ""  # the name a loop gives each item: {% for line in lines %}
    is_list: bool = False
    # The PDF's blocks in a table's cells that are given the row they print in, by `item`.
    row_blocks: tuple[str, ...] = ()


def meaning(kind: str, name: str) -> str | None:
    return MEANINGS.get((kind, name), MEANINGS.get(name))


def placeholders(wording: Wording, *, on: dt.date) -> list[Placeholder]:
    """The values this wording may name, in the order its document gives them."""
    context = sample_context(wording, on=on)
    if not wording.text_only:
        context = {"subject": "", **context}
    found = []
    for name, value in context.items():
        if name in LAYOUT_ONLY:
            continue
        said = meaning(wording.kind, name) or ""
        if name == "t":
            found.append(Placeholder("t.…", said, ""))
        elif isinstance(value, dict):
            found.append(Placeholder(name, said, "", fields=tuple(value)))
        elif isinstance(value, list | tuple):
            items = [item for item in value if isinstance(item, dict)]
            fields = tuple(items[0]) if items else ()
            singular = {"lines": "line", "charges": "charge", "credits": "credit", "totals": "total",
                        "instalments": "instalment"}.get(name, "item")
            on_pdf = PDF_BLOCKS.get(wording.kind, ())
            row_blocks = tuple(block for block, (item, rows) in PDF_ROW_BLOCKS.items()
                               if rows == name and item == singular and block in on_pdf)
            found.append(Placeholder(name, said, "" if fields else ", ".join(map(str, value)),
                                     fields=fields, item=singular, is_list=True, row_blocks=row_blocks))
        elif isinstance(value, bool):
            found.append(Placeholder(name, said, "yes" if value else "no"))
        else:
            found.append(Placeholder(name, said, "" if name == "subject" else str(value)))
    return found
