"""Customer accounts from the ERP, as a CSV file or through the JSON API:
the third kind of import beside invoices and payments, read, queued and
reported by ar_collections/imports.py. The columns are in its COLUMNS.

Each row is checked by the account card's own form (CustomerForm, and
ContactForm for its billing contact), as a manager filling it in: a row can
never store what the card would refuse. A new account number opens the
account (and its billing contact, if the row gives one); a known one, found
in any capitals, changes only the values the row gives: an empty value, or a
column the file does not have, leaves what is recorded. A change is saved as
the card saves it (customers.services.customer_update): on the account's
timeline, before and after, a new collector taking over the account's open
work, a new currency asking for the credit limit in it.

A customer master of tens of thousands of rows comes in one file: what the
rows need of the database is read once for the file (_Known), the forms ask
it instead of PostgreSQL, a row as recorded skips them, and new accounts are
opened at once (customers.services.customers_open).

As the other kinds: every row is checked before any is written, a problem
names its line and column and leaves everything as it was, and the same file
again changes nothing (its rows counted as already there).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import prefetch_related_objects

from ar_collections.imports import (
    CUSTOMERS,
    ImportReport,
    _Fields,
    _RowError,
    _text,
    accounts_named,
    read_rows,
)
from arcrm.text import hidden_characters, other_digits
from customers.forms import CardRead, ContactForm, CustomerForm
from customers.models import Contact, ContactRole, Customer, Industry, Language, TermsType
from customers.owners import account_owners
from customers.services import (
    CONTACT_FIELDS,
    CREDIT_TERMS_FIELDS,
    contact_save,
    customer_update,
    customers_open,
)

# Why a file's row changed an account's payment terms, on its timeline as a
# manager's reason is when the card is saved by hand.
ERP_TERMS_REASON = "Sent by the ERP in an accounts file"
# The account card's fields each column fills.
CARD_COLUMNS = {
    "name": "name", "currency": "currency", "payment_terms": "terms_type",
    "payment_terms_days": "payment_terms_days", "credit_limit": "credit_limit_amount",
    "industry": "industry", "collector": "collector",
}
# The billing contact's fields each column fills.
CONTACT_COLUMNS = {"contact_name": "name", "contact_email": "email", "contact_phone": "phone",
                   "language": "language"}
# Columns whose values are one of the card's choices, by its value or its label in any capitals.
CHOICES = {"payment_terms": TermsType, "industry": Industry, "language": Language}
# Each such column's choice by how a row may write it, made once: a choices
# class builds its lists anew each time they are asked for, three times a row.
_CHOICE_BY_NAME = {column: {**{label.lower(): value for value, label in choices.choices},
                            **{value: value for value in choices.values}}
                   for column, choices in CHOICES.items()}
# A credit limit as the other imports write money, or nothing (0: no credit at all).
_LIMIT = re.compile(r"\d{1,12}(\.\d{1,2})?")


@dataclass
class _AccountRow:
    line: int
    recorded: Customer | None  # None: a new account
    # The account as the card's form left it, not the form: a file of 50,000 rows keeps no 50,000 forms.
    card: Customer | None  # None: a row as recorded, not checked again
    card_changes: dict  # field → value; for a new account, the whole card
    contact: Contact | None  # the billing contact to save, None if the row leaves it as it is


def customers_import(text: str, *, actor=None, dry_run: bool = False) -> ImportReport:
    report = ImportReport(CUSTOMERS, dry_run=dry_run)
    return customer_rows_import(read_rows(text, report), report=report, actor=actor)


def customer_rows_import(rows: list[tuple[int, dict[str, str]]], *, report: ImportReport,
                         actor=None) -> ImportReport:
    """Check and record account rows, a file's (read_rows) or a request's
    (read_json_rows), all or nothing; a dry run (report.dry_run) records nothing."""
    known = _Known.read(rows)
    # The line each account comes on first: a recorded one by its id (its
    # number as found, exactly or in other capitals), a new one by its number
    # in any capitals.
    first: dict[tuple, int] = {}
    parsed: list[_AccountRow] = []
    for line, row in rows:
        number = row.get("account_number", "")
        recorded = known.found.get(number)
        key = (recorded.pk,) if isinstance(recorded, Customer) else ("", number.upper())
        try:
            if number and not isinstance(recorded, list) and first.setdefault(key, line) != line:
                # Its second row would be checked against the card as it was, not as the first left it.
                raise _RowError(f"account_number {number} is on {report.unit} {first[key]} "
                                "already: give each account once")
            parsed.append(_account_of(line, row, known))
        except _RowError as error:
            report.problem(line, error)
    if not report.ok:
        return report
    changed = [p for p in parsed if p.recorded is None or p.card_changes or p.contact is not None]
    report.already = len(parsed) - len(changed)
    report.updated = sum(1 for p in changed if p.recorded is not None)
    report.created = len(changed) - report.updated
    if report.dry_run or not changed:
        return report
    try:
        with transaction.atomic():
            # The accounts' locks first, in id order, as the other imports take
            # them: a card saved meanwhile, or another file, queues behind this one.
            list(Customer.objects.select_for_update().order_by("pk").filter(
                pk__in=[p.recorded.pk for p in changed if p.recorded is not None]).values_list("pk"))
            # New accounts at once: a customer master opens tens of thousands.
            customers_open(accounts=[(p.card, p.contact) for p in changed if p.recorded is None],
                           actor=actor)
            for account in changed:
                if account.recorded is None:
                    continue
                try:
                    _account_write(account, actor=actor)
                except ValidationError as error:
                    # The card changed since it was checked (someone saved it meanwhile).
                    report.problem(account.line, " ".join(error.messages))
            if not report.ok:
                transaction.set_rollback(True)
    except IntegrityError:
        # Another import, or someone on the admin, opened one of these accounts since they were checked.
        again = "import the file again" if report.whole == "file" else "send the request again"
        report.problem(0, f"an account number in the {report.whole} was recorded meanwhile: {again}")
    if not report.ok:
        report.created = report.updated = report.already = 0
    return report


def _collectors_named(usernames: set[str]) -> dict[str, object]:
    """The users the rows name as collectors, by username; None for one who
    may not own accounts (not an active collector or manager)."""
    users = list(get_user_model().objects.filter(username__in=usernames))
    may_own = set(account_owners().filter(pk__in=[u.pk for u in users]).values_list("pk", flat=True))
    return {user.username: user if user.pk in may_own else None for user in users}


@dataclass
class _Known:
    """What the rows need of the database, read once for the whole file: a
    row is then checked with no query of its own, however many rows come."""

    found: dict  # accounts_named: the accounts the rows name
    numbers: set[str]  # the numbers looked up as written: any account with one of them is in found
    collectors: dict  # _collectors_named
    users: dict[int, object]  # the found accounts' collectors and relationship owners, by id
    referrers: dict[int, Customer]  # the found accounts' referrers, by id
    numbered: dict[str, Customer]  # the found accounts by their own numbers

    @classmethod
    def read(cls, rows) -> _Known:
        found = accounts_named(rows)
        recorded = [c for c in found.values() if isinstance(c, Customer)]
        prefetch_related_objects(recorded, "contacts")  # their billing contacts
        ids = {pk for c in recorded for pk in (c.collector_id, c.relationship_owner_id) if pk}
        referrers = Customer.objects.in_bulk({c.referred_by_id for c in recorded if c.referred_by_id})
        for customer in recorded:
            if customer.referred_by_id in referrers:
                # The card shows the referrer's number: read here, not by each row's form.
                customer.referred_by = referrers[customer.referred_by_id]
        return cls(found=found, numbers={row.get("account_number", "") for _, row in rows},
                   collectors=_collectors_named({row.get("collector", "") for _, row in rows} - {""}),
                   users=get_user_model().objects.in_bulk(ids), referrers=referrers,
                   numbered={customer.account_number: customer for named in found.values()
                             for customer in (named if isinstance(named, list) else [named])})


    @cached_property
    def card(self) -> CardRead:
        """What the card's form asks, answered from these rows."""
        may_own = {user.pk: user for user in self.collectors.values() if user is not None}
        return CardRead(may_own=may_own, users=self.users, referrers=self.referrers, numbered=self.numbered,
                        numbers=self.numbers)

    @cached_property
    def new_card(self) -> dict:
        """What a new account's card posts untouched: the same for each."""
        return _as_posted(_card_form(self, instance=Customer()))

    @cached_property
    def new_contact(self) -> dict:
        """What a new billing contact's form posts untouched: the same for each."""
        return _as_posted(ContactForm(instance=_new_contact(None)))


def _card_form(known: _Known, data: dict | None = None, *, instance: Customer) -> CustomerForm:
    """The account card's form as a manager fills it in, its questions to the
    database answered from what was read for the whole file."""
    return CustomerForm(data, instance=instance, may_set_terms=True, read=known.card)


def _account_of(line: int, row: dict[str, str], known: _Known) -> _AccountRow:
    """The row's account checked by the card's form, or _RowError with all its problems."""
    fields = _Fields()
    number = fields.read(_text, row, "account_number", limit=32, required=True)
    if number and (hidden := hidden_characters(number)):
        fields.note("account_number", f"account_number {number!r} holds a character no one sees "
                                      f"({', '.join(hidden)}): give the number as in the ERP")
    recorded = known.found.get(number) if number else None
    if isinstance(recorded, list):
        fields.note("account_number", f"account_number {number!r}: "
                                      f"{' and '.join(c.account_number for c in recorded)} differ from it "
                                      "only in case: give the number exactly")
        fields.done()  # which account the rest would change is not known
    if not row.get("name"):
        fields.note("name", "name is empty")
    values = {column: fields.read(_value, row, column, known.collectors)
              for column in (*CARD_COLUMNS, *CONTACT_COLUMNS)}
    if recorded is None and number and not row.get("collector"):
        fields.note("collector", "collector is empty: a new account needs its collector (the username of "
                                 "an active collector or manager)")
    if recorded is not None and not fields.problems and _as_recorded(recorded, values):
        # Most rows of a file sent again: nothing to write, so nothing to check the card for.
        return _AccountRow(line, recorded, None, {}, None)
    # The card as the form would show it, the row's values typed over it: the
    # form then checks the whole card, as when a manager saves it.
    account = copy.copy(recorded) if recorded is not None else Customer()
    data = dict(known.new_card) if recorded is None else _as_posted(_card_form(known, instance=account))
    data["account_number"] = recorded.account_number if recorded is not None else number
    data.update({CARD_COLUMNS[c]: values[c] for c in CARD_COLUMNS if values[c] not in (None, "")})
    # By hand the card asks why the payment terms change; here the ERP changed them.
    data["terms_reason"] = ERP_TERMS_REASON
    card = _card_form(known, data, instance=account)
    if not card.is_valid():
        _note_errors(fields, card, CARD_COLUMNS, row, whose="the account's")
    contact = _contact_of(row, values, recorded, fields, known)
    fields.done()
    changes = card.changes()
    if recorded is not None:
        changes = {name: value for name, value in changes.items() if _differs(recorded, name, value)}
    return _AccountRow(line, recorded, card.instance, changes, contact)


def _as_recorded(recorded: Customer, values: dict) -> bool:
    """Whether every value the row gives (as _value reads it) is the one
    recorded, exactly: then the row changes nothing. Any doubt (another way of
    writing the same value) is left to the forms."""
    for column, value in values.items():
        if value in (None, ""):
            continue
        if column in CONTACT_COLUMNS:
            contact = recorded.billing_contact_of_record()
            if contact is None or getattr(contact, CONTACT_COLUMNS[column]) != value:
                return False
        elif column == "collector":
            if recorded.collector_id != value:
                return False
        elif column == "credit_limit":
            if recorded.credit_limit_amount != Decimal(value):
                return False
        elif column == "payment_terms_days":
            if recorded.payment_terms_days != int(value):
                return False
        elif getattr(recorded, CARD_COLUMNS[column]) != value:
            return False
    return True


def _value(row: dict[str, str], column: str, collectors) -> object:
    """The column's value as the card's form takes it; "" for none given."""
    value = row.get(column, "")
    if not value:
        return ""
    if column in CHOICES:
        by_name = _CHOICE_BY_NAME[column]
        if value.lower() not in by_name:
            raise _RowError(f"{column} {value!r} is not one of {', '.join(CHOICES[column].values)}",
                            column=column)
        return by_name[value.lower()]
    if column == "collector":
        if value not in collectors:
            raise _RowError(f"collector {value!r} is no user's username", column=column)
        if collectors[value] is None:
            raise _RowError(f"collector {value!r} is not an active collector or manager, and could not work "
                            "the account", column=column)
        return collectors[value].pk
    if column == "credit_limit":
        if digits := other_digits(value):  # Decimal would read "２５０００" as 25000
            raise _RowError(f"credit_limit {value!r} is written with digits other than 0-9 "
                            f"({', '.join(digits)}): write it like 25000.00", column=column)
        if not _LIMIT.fullmatch(value):
            raise _RowError(f"credit_limit {value!r} is not an amount: write it like 25000.00 (a dot for "
                            "cents, no thousands separators, no currency sign; 0 for no credit)",
                            column=column)
        return value
    if column == "payment_terms_days" and not (value.isascii() and value.isdigit()):
        raise _RowError(f"payment_terms_days {value!r} is not a whole number of days", column=column)
    return _text(row, column, limit=200)


def _contact_of(row: dict[str, str], values: dict, recorded: Customer | None, fields: _Fields,
                known: _Known) -> Contact | None:
    """The billing contact with the row's values, checked by the contact form;
    None when the row gives none of its columns or changes nothing of it."""
    columns = [c for c in CONTACT_COLUMNS if values[c]]
    if not columns:
        return None
    given = {CONTACT_COLUMNS[c]: values[c] for c in columns}
    before = recorded.billing_contact_of_record() if recorded is not None else None
    unnamed = before is None and "name" not in given
    if unnamed:
        # The form's "This field is required." would not say whose name, nor
        # why a row giving an e-mail address needs one: a reminder opens with it.
        whose = ("a new account's billing contact needs a name" if recorded is None else
                 "the account has no billing contact yet, and a new one needs a name")
        fields.note("contact_name", f"contact_name is empty: {whose}, as reminders and letters are addressed "
                                    f"to it (the row gives {', '.join(columns)})")
    contact = copy.copy(before) if before is not None else _new_contact(recorded)
    data = _as_posted(ContactForm(instance=contact)) if before is not None else dict(known.new_contact)
    data.update(given)
    form = ContactForm(data, instance=contact)
    # Checked even so: the row's other contact values are named with it (the name's error was noted above).
    if not form.is_valid():
        _note_errors(fields, form, CONTACT_COLUMNS, row, whose="the billing contact's")
        return None
    if unnamed:
        return None
    if before is not None and all(getattr(before, name) == getattr(contact, name) for name in CONTACT_FIELDS):
        return None
    return contact


def _new_contact(customer: Customer | None) -> Contact:
    return Contact(customer=customer, role=ContactRole.AP, is_primary_billing=True)


def _as_posted(form) -> dict:
    """What the form's page would post back untouched: the values it shows,
    less its one-time token (arcrm.forms.one_time_token), which guards a page
    sent twice: a new one each time the form opens, it would cost a look-up a
    row, and a file's rows are each recorded once by their account number."""
    return {name: form[name].value() for name in form.fields if name != "submission"}


def _differs(recorded: Customer, name: str, value) -> bool:
    field = Customer._meta.get_field(name)
    if field.is_relation:  # compared by id: the recorded user or account is not loaded for it
        return getattr(recorded, field.attname) != (value.pk if value is not None else None)
    return getattr(recorded, name) != value


def _note_errors(fields: _Fields, form, columns: dict[str, str], row: dict[str, str], *, whose: str) -> None:
    """The form's errors, each named by the row's column (and the value given)
    where one is its field; none for a column whose value was refused already."""
    by_field = {field: column for column, field in columns.items()}
    for name, errors in form.errors.items():
        column = by_field.get(name, "")
        if column and fields.by_column.get(column):
            continue
        for message in errors:
            if column:
                value = row.get(column, "")
                fields.note(column, f"{column} {value!r}: {message}" if value else f"{column}: {message}")
            elif name == "__all__":
                fields.note("", message)
            else:
                # A value of the card the row does not give (recorded so before a rule came in).
                fields.note("", f"{whose} {form.fields[name].label.lower()}: {message}")


def _account_write(account: _AccountRow, *, actor) -> None:
    """Save a recorded account's changes as the card saves them, each on its timeline."""
    customer = account.recorded
    if account.card_changes:
        reason = ERP_TERMS_REASON if account.card_changes.keys() & set(CREDIT_TERMS_FIELDS) else ""
        # The ERP's record of the account, whoever sends it: a manager
        # uploading it lifts no credit hold or C.O.D. as on the card.
        customer = customer_update(customer=customer, actor=actor, changes=account.card_changes,
                                   reason=reason, by_erp=True)
    if account.contact is not None:
        account.contact.customer = customer
        contact_save(contact=account.contact, actor=actor)
