"""Forms for the customer list filters, the account card, contacts and absences."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from ar_collections.models import Invoice
from arcrm.dates import format_day
from arcrm.forms import MoneyField, VisibleText, WholeNumberField, one_time_token, written_plainly
from arcrm.money import format_money, validate_currency_in_use
from arcrm.roles import INTEGRATION
from arcrm.text import is_one_line, person_name
from customers.models import CollectorAbsence, Contact, ContactAbsence, Customer, Segment, TermsType
from customers.owners import account_owners
from customers.services import CREDIT_TERMS_FIELDS, terms_reason_check

User = get_user_model()

MINE = "mine"
CREDIT_HOLD = "credit_hold"


class CustomerFilterForm(forms.Form):
    """The list's search box and filters. Bad values are dropped, not fatal."""

    q = forms.CharField(
        label="Search", required=False, max_length=200,
        widget=forms.TextInput(attrs={
            "type": "search",
            "placeholder": "Name, account number, contact or invoice number",
            "autocomplete": "off",
        }),
    )
    segment = forms.ChoiceField(
        required=False, choices=[("", "All segments"), *Segment.choices]
    )
    collector = forms.ChoiceField(label="Collector", required=False)
    # The accounts whose terms a manager bent, to weigh giving them back:
    # a credit hold sits beside any terms, so it is a choice of its own.
    terms = forms.ChoiceField(label="Terms", required=False, choices=[
        ("", "Any terms"), (CREDIT_HOLD, "On credit hold"),
        (TermsType.COD, TermsType.COD.label), (TermsType.PREPAYMENT, TermsType.PREPAYMENT.label),
    ])
    overdue = forms.BooleanField(label="Overdue only", required=False)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["collector"].choices = [
            ("", "Everyone"),
            (MINE, "Mine"),
            # Anyone who owns an account now, a leaver too: their accounts can be found.
            *((str(u.pk), person_name(u))
              for u in account_owners(also=Q(Exists(Customer.objects.filter(collector=OuterRef("pk")))))),
        ]

    def filter(self, customers, *, on: dt.date, search: bool = True):
        """Apply whichever filters are valid to a Customer queryset (overdue on
        `on`); the search box's text too, unless `search` is false."""
        self.is_valid()
        data = self.cleaned_data
        if search:
            customers = customers.search(data.get("q") or "")
        if data.get("segment"):
            customers = customers.filter(segment=data["segment"])
        collector = data.get("collector")
        if collector == MINE:
            customers = customers.owned_by(self.user)
        elif collector:
            customers = customers.filter(collector_id=int(collector))
        terms = data.get("terms")
        if terms == CREDIT_HOLD:
            customers = customers.filter(on_credit_hold=True)
        elif terms:
            customers = customers.filter(terms_type=terms)
        if data.get("overdue"):
            # Or overdue in another currency than the account's (its currency
            # changed since it was billed): the behaviour's amount is in its own only.
            customers = customers.filter(
                Q(behaviour__overdue_amount__gt=0)
                | Q(behaviour__other_currency_open_invoices__gt=0) & Exists(overdue_elsewhere(on=on)))
        return customers


    def narrows(self) -> bool:
        """Whether a filter besides the search box's text is chosen."""
        self.is_valid()
        return any(self.cleaned_data.get(name) for name in ("segment", "collector", "terms", "overdue"))


def overdue_elsewhere(*, on: dt.date):
    """For a Customer query: its invoices overdue on `on` in another currency
    than the account's (its currency changed since they were billed), which
    its behaviour's amounts, in its own currency, leave out."""
    return (Invoice.objects.overdue(on=on).filter(customer=OuterRef("pk"))
            .exclude(currency=OuterRef("currency")))


class OfferedChoiceField(forms.ModelChoiceField):
    def offer(self, queryset) -> None:
        """List only `queryset` in the menu, still accepting the field's own
        queryset: a choice not offered but posted anyway reaches the service,
        which refuses it with its own reason (or allows it, as it may)."""
        choices = self.iterator(self)
        choices.queryset = queryset
        self.widget.choices = choices


class UserChoiceField(OfferedChoiceField):
    def label_from_instance(self, obj) -> str:
        return person_name(obj)


class WorkerChoiceField(UserChoiceField):
    """Someone to hand an account or a worklist item to, from those who work
    accounts. Anyone else posted (a viewer, someone without a role, a leaver,
    an id that is no one's) comes from a page crafted or long stale, and is
    told only that the choice is not one of the menu's: a name said for any
    id posted would list the users of the system to whoever tries them."""


class StandInChoiceField(OfferedChoiceField):
    """A contact to write to instead; one away on `today` says until when."""

    today: dt.date | None = None

    def label_from_instance(self, obj: Contact) -> str:
        back = obj.away_until(self.today) if self.today else None
        return f"{obj} (away until {format_day(back)})" if back else str(obj)


class LinesField(forms.CharField):
    """A textarea holding one item per line, cleaned to a list of non-blank strings."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value) -> list[str]:
        text = super().to_python(value)
        # The field's own NUL check sees the cleaned list's repr, where a NUL is
        # the four characters "\x00"; PostgreSQL refuses the real one in JSON.
        if "\x00" in text:
            raise forms.ValidationError("Null characters are not allowed.", code="null_characters")
        return [line.strip() for line in text.splitlines() if line.strip()]


class DaysOfMonthField(forms.CharField):
    """Comma-separated days of the month ("15, 30") cleaned to a sorted list of ints."""

    default_error_messages = {
        "invalid_day": (
            "“%(value)s” is not a day of the month. Use whole numbers from 1 to 31, "
            "separated by commas, e.g. 15, 30."
        ),
    }

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(day) for day in value)
        return value

    def to_python(self, value) -> list[int]:
        text = super().to_python(value)
        days: set[int] = set()
        for part in text.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            # isascii: "²" is a digit to isdigit() but not to int().
            if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= 31:
                raise forms.ValidationError(
                    self.error_messages["invalid_day"], code="invalid_day", params={"value": part}
                )
            days.add(int(part))
        return sorted(days)


def _name_on_one_line(name: str) -> str:
    """A name goes into e-mail headers (To, Subject), where a line break ends
    the header; the text box is one line, but a pasted or posted one is kept."""
    if not is_one_line(name):
        raise forms.ValidationError("Write the name on one line, without line breaks or tabs.")
    return name


class _PlainLabels:
    """Labels without the trailing colon; the layout already sets them apart."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class ReadChoiceField(forms.Field):
    """A ModelChoiceField's choice among rows read already, by the value
    posted (an id, an account number): the same choices and message for any
    other, without the field's query."""

    def __init__(self, field: forms.ModelChoiceField, rows: dict) -> None:
        super().__init__(required=field.required, label=field.label, error_messages=field.error_messages)
        self.rows = {str(key): row for key, row in rows.items()}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.rows[str(value)]
        except KeyError:
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                        params={"value": value}) from None


@dataclass
class CardRead:
    """What the account card's form would ask of the database, read already
    (an import reads it once for a whole file of accounts): the card then
    asks PostgreSQL nothing of its own, however many are checked."""

    may_own: dict[int, object]  # people who may own accounts, by id (beside an account's own collector)
    users: dict[int, object]  # the accounts' own collectors and relationship owners, by id
    referrers: dict[int, Customer]  # the accounts' referrers, by id
    numbered: dict[str, Customer]  # accounts by their own numbers
    numbers: set[str]  # the numbers looked up: any account with one of them is in numbered


# The longest typical gap between orders the card takes: a year.
ORDER_INTERVAL_DAYS_AT_MOST = 365


class CustomerForm(VisibleText, _PlainLabels, forms.ModelForm):
    """The account card. Commercial terms are a manager's decision (DESIGN:
    managers approve extended terms, credit-hold releases and C.O.D.), so for
    anyone else those fields are shown but disabled: Django then ignores
    whatever is posted for them."""

    # The currency too: the credit limit is an amount in it.
    # A special bond puts the account on its own, reviewed ladder (segmentation
    # weighs it before distress): a manager's call, as a segment override is.
    # The account number too: the ERP's imports find the account by it.
    MANAGER_FIELDS = (
        "account_number", "collector", "credit_limit_amount", "currency", "terms_type", "payment_terms_days",
        "on_credit_hold", "special_bond",
    )

    buying_reasons = LinesField(
        label="Why they buy from us", required=False,
        help_text="One reason per line; at least three make a useful card.",
    )
    # The order-gap alert watches for an order this many days (and a margin)
    # after the last: a customer who orders less than once a year has no
    # rhythm to watch, and a mistyped 100000 would switch the alert off unseen.
    typical_order_interval_days = WholeNumberField(
        label="Typical days between orders", required=False,
        min_value=1, max_value=ORDER_INTERVAL_DAYS_AT_MOST,
        error_messages={
            "min_value": "A typical gap between orders is at least 1 day.",
            "max_value": f"A typical gap between orders is at most {ORDER_INTERVAL_DAYS_AT_MOST} days; leave "
                         "it empty if they order less often.",
        },
    )
    ap_run_days = DaysOfMonthField(
        label="AP payment-run days", required=False,
        help_text="Days of the month on which their AP pays, separated by commas, e.g. 15, 30.",
    )
    # The menus' blank choices say what choosing nothing means: Django's "---------" tells nobody.
    collector = WorkerChoiceField(
        queryset=User.objects.none(), empty_label="Choose a collector",
        error_messages={"required": "Choose a collector: every account has one who chases its receivables."},
    )
    relationship_owner = UserChoiceField(queryset=User.objects.none(), required=False,
                                         empty_label="No relationship owner")
    referred_by = forms.ModelChoiceField(
        label="Referred by",
        queryset=Customer.objects.all(),
        to_field_name="account_number",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Account number"}),
        help_text="Account number of the customer who brought this one to us.",
        error_messages={"invalid_choice": "No customer has that account number."},
    )

    # Asked only when the hold or the terms change (services.terms_reason_check):
    # with script the field shows itself then, and is hidden until then.
    terms_reason = forms.CharField(
        label="Why the credit hold or payment terms change", required=False, max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "data-asked-when": " ".join(CREDIT_TERMS_FIELDS)}),
        help_text="Needed when you change the credit hold or the payment terms; the timeline keeps it.",
    )

    class Meta:
        formfield_callback = written_plainly
        model = Customer
        fields = [
            "name", "account_number", "legal_name", "industry", "business_description", "buying_reasons",
            "customer_since", "collector", "relationship_owner", "special_bond", "referred_by",
            "currency", "credit_limit_amount", "terms_type", "payment_terms_days",
            "on_credit_hold", "ap_run_days", "ordering_rhythm", "typical_order_interval_days",
            "notes",
        ]
        field_classes = {"credit_limit_amount": MoneyField}
        labels = {
            "account_number": "Account number",
            "credit_limit_amount": "Credit limit",
            "terms_type": "Payment terms",
            "payment_terms_days": "Days to pay",
            "on_credit_hold": "On credit hold",
            "typical_order_interval_days": "Typical days between orders",
        }
        help_texts = {
            "account_number": "The ERP's number for this account: imported invoices and payments find the "
                              "account by it, and letters quote it. Change it only to match the ERP's.",
        }
        widgets = {
            "customer_since": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "business_description": forms.Textarea(attrs={"rows": 2}),
            "special_bond": forms.Textarea(attrs={"rows": 2}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, may_set_terms: bool, read: CardRead | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        self.read = read
        # The account's own collector stays on offer (a leaver until handed over); no other leaver.
        self.fields["collector"].queryset = account_owners(also=Q(pk=instance.collector_id))
        # People only: an integration account (the ERP's login) owns no relationship.
        self.fields["relationship_owner"].queryset = User.objects.filter(
            Q(is_active=True) | Q(pk=instance.relationship_owner_id)
        ).exclude(Q(groups__name=INTEGRATION) & ~Q(pk=instance.relationship_owner_id)).order_by(
            "first_name", "last_name", "username")
        if read is not None:
            self._choose_among(read)
        # The text box shows the referrer's account number, not its database id.
        if instance.referred_by_id:
            self.initial["referred_by"] = instance.referred_by.account_number
        if not may_set_terms:
            for name in self.MANAGER_FIELDS:
                self.fields[name].disabled = True
                self.fields[name].help_text = "A manager decides this."
            del self.fields["terms_reason"]
        else:
            # Asked beside the terms it explains, not at the foot of the card.
            order = [name for name in self.fields if name != "terms_reason"]
            order.insert(order.index("on_credit_hold") + 1, "terms_reason")
            self.order_fields(order)

    def _choose_among(self, read: CardRead) -> None:
        """The menus' choices from `read`, as their querysets would find them:
        who may own accounts or the account's own collector; the account's own
        relationship owner and referrer (what an import cannot change)."""
        instance = self.instance

        def own(pk):
            return {pk: read.users[pk]} if pk else {}

        referrer = read.referrers.get(instance.referred_by_id)
        for name, rows in (("collector", {**read.may_own, **own(instance.collector_id)}),
                           ("relationship_owner", own(instance.relationship_owner_id)),
                           ("referred_by", {referrer.account_number: referrer} if referrer else {})):
            self.fields[name] = ReadChoiceField(self.fields[name], rows)

    def clean_buying_reasons(self) -> list[str]:
        # Reasons once known are changed, never wiped by a slip of the
        # keyboard; a card that never had any (an account the ERP's import
        # opened) may still be saved for its other fields.
        reasons = self.cleaned_data["buying_reasons"]
        if not reasons and self.instance.pk and self.instance.buying_reasons:
            raise forms.ValidationError(
                "Give at least one reason why they buy from us, one per line: change the reasons, "
                "do not remove them all.")
        return reasons

    def clean_name(self) -> str:
        return _name_on_one_line(self.cleaned_data["name"])

    def clean_account_number(self) -> str:
        number = self.cleaned_data["account_number"].strip()
        other = self.other_numbered(number)
        if other is not None:
            raise forms.ValidationError(
                f"{number} is the account number of {other.name}: each account has its own.")
        return number

    def other_numbered(self, number: str) -> Customer | None:
        """Another account with this number, if any."""
        other = self.read.numbered.get(number) if self.read is not None else None
        if other is None and (self.read is None or number not in self.read.numbers):
            return Customer.objects.filter(account_number=number).exclude(pk=self.instance.pk).first()
        return other if other is not None and other.pk != self.instance.pk else None

    def validate_unique(self) -> None:
        # The account number, the card's one unique field, is checked by
        # clean_account_number, which names the account holding it; any other
        # as ModelForm checks it, of the values the form cleaned.
        exclude = {field.name for field in Customer._meta.fields if field.name not in self.cleaned_data}
        try:
            self.instance.validate_unique(exclude={*exclude, "account_number"})
        except forms.ValidationError as error:
            self.add_error(None, error)

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        # A currency kept since it was withdrawn stays; a new one must be one people pay in.
        if currency != self.instance.currency:
            validate_currency_in_use(currency)
        return currency

    def clean(self):
        data = super().clean()
        # The credit limit is an amount in the account's currency: a change of
        # currency alone would turn EUR 100,000 into GBP 100,000 unseen.
        currency, limit = data.get("currency"), data.get("credit_limit_amount")
        before = self.instance.currency
        if (currency and currency != before and limit and limit == self.instance.credit_limit_amount
                and "credit_limit_amount" not in self.errors):
            self.add_error("credit_limit_amount", f"The credit limit is {format_money(limit, before)}: "
                                                  f"give it in {currency}, the account's new currency.")
        if "terms_reason" in self.fields:
            # Checked here too so that the message stands beside the field, with the card's other errors.
            try:
                terms_reason_check(changed=[name for name in CREDIT_TERMS_FIELDS
                                            if name in data and data[name] != self.initial.get(name)],
                                   reason=data.get("terms_reason", ""))
            except forms.ValidationError as refused:
                self.add_error(None, refused)
        return data

    def clean_terms_reason(self) -> str:
        return " ".join(self.cleaned_data["terms_reason"].split())

    def changes(self) -> dict:
        """The editable card values after the model's own cleaning, by field name."""
        return {
            name: getattr(self.instance, name)
            for name, field in self.fields.items()
            if not field.disabled and name != "terms_reason"
        }


class ContactForm(VisibleText, _PlainLabels, forms.ModelForm):
    # Recorded once however often the form is sent (a double click): arcrm.forms.one_time_token.
    submission = one_time_token(required=False)

    class Meta:
        formfield_callback = written_plainly
        model = Contact
        fields = [
            "name", "job_title", "role", "email", "phone", "postal_address", "language",
            "invoice_delivery", "reminder_channel", "best_time_to_call", "is_primary_billing",
            "notes",
        ]
        widgets = {
            "postal_address": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "is_primary_billing": "Invoices and reminders go here first. Marking this contact "
            "takes the flag from whoever had it.",
        }

    # Offered while the contact's address is one the mail server refused for
    # good: the customer may have fixed the mailbox, and a collector who has
    # checked it should not have to retype the address to be heard.
    email_works = forms.BooleanField(
        label="The mail server takes this address again", required=False,
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        contact = self.instance
        if contact.email_refused_now:
            self.fields["email_works"].help_text = (
                f"Refused on {format_day(contact.email_refused_on)}"
                f"{f' ({contact.email_refused_reason})' if contact.email_refused_reason else ''}; "
                "written reminders go by post meanwhile. Tick once the customer has confirmed the "
                "mailbox works: reminders go by e-mail again."
            )
        else:
            del self.fields["email_works"]

    def clean_name(self) -> str:
        return _name_on_one_line(self.cleaned_data["name"])

    def _update_errors(self, errors: forms.ValidationError) -> None:
        # A value the form refused (an e-mail address that is not one) never
        # reaches the contact, so the contact's own rules would judge it as
        # left empty and add "an e-mail address is needed" to "enter a valid
        # e-mail address". The form's message is the true one: the model's
        # word on a field the form already refused is dropped.
        if hasattr(errors, "error_dict"):
            refused = set(self.errors) - {NON_FIELD_ERRORS}
            kept = {name: error for name, error in errors.error_dict.items() if name not in refused}
            if not kept:
                return
            errors = forms.ValidationError(kept)
        super()._update_errors(errors)

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("email_works"):
            self.instance.email_refused, self.instance.email_refused_on = "", None
            self.instance.email_refused_reason = ""
        return cleaned


class AbsenceForm(VisibleText, _PlainLabels, forms.ModelForm):
    # Recorded once however often the form is sent (a double click): arcrm.forms.one_time_token.
    submission = one_time_token(required=False)

    class Meta:
        formfield_callback = written_plainly
        model = ContactAbsence
        fields = ["starts_on", "ends_on", "delegate", "note"]
        labels = {
            "starts_on": "Away from",
            "ends_on": "Away until (last day)",
            "delegate": "Write to instead",
        }
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "ends_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }
        field_classes = {"delegate": StandInChoiceField}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        contact = self.instance.contact
        delegate = self.fields["delegate"]
        delegate.empty_label = "Nobody – keep writing to this contact"
        delegate.today = timezone.localdate()
        # Only the same customer's other contacts are offered. The field takes
        # any contact, so that one posted anyway (the contact itself, another
        # customer's) is refused by ContactAbsence.clean, in its words, as
        # the service and the model refuse it: one rule.
        others = contact.customer.contacts.exclude(pk=contact.pk)
        delegate.offer(self._in_then(others, today=delegate.today))

    def _in_then(self, contacts, *, today: dt.date):
        """Of `contacts`, those in on every day of the absence as far as the
        form knows them (posted, or chosen and sent back by htmx): one away on
        any of them would leave nobody to write to (ContactAbsence.clean
        refuses them, naming their days). Until both days are chosen, all of
        them, those away today saying until when (their absences loaded once)."""
        starts_on = _day_of(self.fields["starts_on"], self["starts_on"].value())
        ends_on = _day_of(self.fields["ends_on"], self["ends_on"].value())
        if starts_on and ends_on and starts_on <= ends_on:
            contacts = contacts.exclude(Exists(ContactAbsence.objects.overlapping(
                starts_on=starts_on, ends_on=ends_on).filter(contact=OuterRef("pk"))))
        return contacts.prefetch_related(
            Prefetch("absences", queryset=ContactAbsence.objects.filter(ends_on__gte=today)))


def _pk_of(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _day_of(field: forms.DateField, value):
    try:
        return field.clean(value)
    except forms.ValidationError:
        return None


class CoverForm(VisibleText, forms.Form):
    """An absence of a collector (or manager) and who covers for them. A
    manager chooses whose; a collector records their own (no `user` field)."""

    # Recorded once however often the form is sent (a double click): arcrm.forms.one_time_token.
    submission = one_time_token(required=False)

    user = UserChoiceField(label="Who is away", queryset=User.objects.none(), empty_label="Choose a person")
    starts_on = forms.DateField(label="Away from", widget=forms.DateInput(attrs={"type": "date"}))
    ends_on = forms.DateField(label="Away until (last day)", widget=forms.DateInput(attrs={"type": "date"}))
    stand_in = UserChoiceField(label="Covered by", queryset=User.objects.none(),
                               empty_label="Choose a person")
    note = forms.CharField(label="Note", required=False, max_length=300,
                           help_text='e.g. "holiday", "course in Leeds; reachable by phone".')

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        people = account_owners(also=Q(is_superuser=True, is_active=True))
        self.fields["stand_in"].queryset = people
        if user.has_perm("customers.act_on_any_customer"):
            self.fields["user"].queryset = people
        else:
            del self.fields["user"]
        # The fields' order on the page: whose, when, who covers, why.
        self.order_fields(["user", "starts_on", "ends_on", "stand_in", "note"])
        away = _pk_of(self["user"].value()) if "user" in self.fields else user.pk
        self.fields["stand_in"].offer(self._free(people, away=away))

    def _free(self, people, *, away: int | None):
        """Of `people`, those who could cover as far as the form knows yet
        (posted, or chosen and sent back by htmx): not the person away, nor
        anyone away on any of those days. absence_record accepts some of the
        latter (a stand-in with cover of their own), but they are no choice to
        offer; and it refuses the former whatever the menu said."""
        if away:
            people = people.exclude(pk=away)
        starts_on = _day_of(self.fields["starts_on"], self["starts_on"].value())
        ends_on = _day_of(self.fields["ends_on"], self["ends_on"].value())
        if starts_on and ends_on and starts_on <= ends_on:
            people = people.exclude(Exists(CollectorAbsence.objects.overlapping(
                starts_on=starts_on, ends_on=ends_on).filter(user=OuterRef("pk"))))
        return people

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not is_one_line(note):
            raise forms.ValidationError("Keep the note to one line.")
        return note
