"""Forms of the account page's inline actions and of the worklist.

Each form knows the account it works on: invoice and contact choices are that
account's own, so a forged id from another account is an invalid choice, not
a question for the service.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

from ar_collections import paper
from ar_collections.models import (
    CallOutcome,
    CollectionRules,
    Department,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    DisputeStatus,
    ExceptionKind,
    ExceptionRequest,
    InstalmentStatus,
    Invoice,
    InvoiceStatus,
    MissCause,
    Payment,
    PaymentMethod,
    PaymentPlan,
    PlanStatus,
    Promise,
    PromiseStatus,
    ReversalReason,
    WorkItem,
    WorkStatus,
)
from ar_collections.statements import NOTE_MAX_LENGTH as STATEMENT_NOTE_MAX_LENGTH
from ar_collections.statements import statement_recipient
from ar_collections.worklist import LadderDecision
from ar_collections.workspace import (
    DATED_EXCEPTIONS,
    DISPUTE_CANCELLED_BY_THE_ERP_ONLY,
    PLAN_DAYS_APART_AT_MOST,
    PLAN_INSTALMENTS_AT_MOST,
    PromiseTerms,
    credit_label,
    credits_to_apply,
    disputed_parts,
    exception_earliest_end,
    write_off_lines_now,
)
from arcrm.dates import DATE_AHEAD_YEARS, LONG_AGO_DAYS, far_ahead, format_day, long_ago
from arcrm.forms import (
    MoneyField,
    WholeNumberField,
    nothing_hidden,
    one_time_token,
    plain_amount_check,
    something_seen,
)
from arcrm.money import format_money, smallest_unit
from customers.forms import WorkerChoiceField
from customers.models import Contact, ContactAbsence, Customer
from customers.owners import account_owners

User = get_user_model()

NOTE_MAX_LENGTH = 300


class _AccountForm(forms.Form):
    # Every form that records something on the account is carried out once
    # (workspace_views.carried_out_once): a double click records one row.
    # A form that sends something to the customer requires its token (_sent_once).
    submission = one_time_token(required=False)

    def __init__(self, *args, customer: Customer, today: dt.date, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.customer, self.today = customer, today
        for field in self.fields.values():
            if isinstance(field, InvoiceChoices | InvoiceChoice):
                field.queryset = customer.invoices.filter(status=InvoiceStatus.OPEN).order_by(
                    "due_date", "number"
                )
            elif isinstance(field, forms.ModelChoiceField) and field.queryset.model is Contact:
                field.queryset = customer.contacts.all()


def _invoice_label(invoice: Invoice) -> str:
    money = format_money(invoice.open_amount, invoice.currency)
    label = f"{invoice.number} · due {format_day(invoice.due_date)} · {money}"
    # Set where a form annotates its choices with them (_mark_taken).
    if getattr(invoice, "disputed", False):
        part = getattr(invoice, "disputed_part", None)
        if part is not None and part < invoice.open_amount:
            return label + f" · {format_money(part, invoice.currency)} of it under open dispute"
        return label + " · under open dispute"
    if getattr(invoice, "promised", False):
        return label + " · under an open promise"
    if getattr(invoice, "planned", False):
        return label + " · in a payment plan"
    return label


# An invoice offered when the form opened and settled since (another tab, the
# bank import): said in words, not with the invoice's database id.
NO_LONGER_OPEN = ("An invoice chosen is no longer open on this account (paid or credited meanwhile): "
                  "choose from those listed now.")


class InvoiceChoice(forms.ModelChoiceField):
    def __init__(self, **kwargs) -> None:
        # Said in words: Django's "---------" tells nobody what to pick.
        kwargs.setdefault("empty_label", "Choose an invoice")
        super().__init__(queryset=Invoice.objects.none(), **kwargs)
        self.error_messages["invalid_choice"] = NO_LONGER_OPEN

    def label_from_instance(self, obj: Invoice) -> str:
        return _invoice_label(obj)


def _mark_taken(field: forms.ModelChoiceField) -> None:
    """Invoices under open dispute, under an open promise or in a live plan
    (proposed or in force) stay offered, marked, so a collector sees before
    choosing why a promise or a plan on them would be refused, or (disputed
    in part) cover only what is not disputed (workspace.promise_record,
    plan_propose: _not_disputed_in_full, _not_committed)."""
    open_dispute = Dispute.objects.filter(invoice=OuterRef("pk"), status=DisputeStatus.OPEN)
    field.queryset = field.queryset.annotate(
        disputed=Exists(open_dispute),
        disputed_part=Subquery(open_dispute.values("disputed_amount")[:1]),
        promised=Exists(Promise.objects.filter(invoices=OuterRef("pk"), status=PromiseStatus.OPEN)),
        planned=Exists(PaymentPlan.objects.filter(
            invoices=OuterRef("pk"), status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL]
        )),
    )
    field.help_text = ("An invoice under open dispute in full cannot be promised or put in a plan until "
                       "the dispute is settled; of one disputed in part, only what is not disputed. Nor "
                       "one already promised or in a payment plan.")


class InvoiceChoices(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs) -> None:
        super().__init__(queryset=Invoice.objects.none(), **kwargs)
        self.error_messages["invalid_choice"] = NO_LONGER_OPEN

    def label_from_instance(self, obj: Invoice) -> str:
        return _invoice_label(obj)


def _money(**kwargs) -> MoneyField:
    return MoneyField(min_value=Decimal("0.01"), **kwargs)


def _not_far_ahead(value: dt.date) -> None:
    if far_ahead(value, today=timezone.localdate()):
        raise forms.ValidationError(f"{format_day(value)} is more than {DATE_AHEAD_YEARS} years ahead: "
                                    "check the year.")


def _date(**kwargs) -> forms.DateField:
    return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), validators=[_not_far_ahead],
                           **kwargs)


def _sent_once() -> forms.UUIDField:
    """The one-time token of a form that sends something to the customer
    (arcrm.forms.one_time_token), required: sent twice, it sends once."""
    return one_time_token()


def _contact_choice() -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Contact.objects.none(), required=False, empty_label="(no one named)"
    )


def _text(label: str, *, required: bool = True, rows: int = 2, max_length: int | None = NOTE_MAX_LENGTH):
    return forms.CharField(label=label, required=required, max_length=max_length,
                           validators=[something_seen], widget=forms.Textarea(attrs={"rows": rows}))


# Said before a collector chooses, as workspace.promise_record refuses the rest.
PROMISE_COVERS = ("Paid oldest due first, it covers only the invoices it reaches; the last may be paid "
                  "in part. It pauses dunning only of those it pays in full: dunning goes on for one it "
                  "pays in part.")


class CallForm(_AccountForm):
    submission = _sent_once()
    contact = _contact_choice()
    outcome = forms.ChoiceField(choices=CallOutcome.choices, widget=forms.RadioSelect)
    cause = forms.ChoiceField(
        label="Cause of non-payment", choices=[("", "Not found out"), *MissCause.choices], required=False
    )
    notes = _text("What was said", required=False, rows=3, max_length=2000)
    promise_amount = _money(label="Promised amount", required=False, help_text=PROMISE_COVERS)
    promise_date = _date(label="Promised by", required=False)
    promise_invoices = InvoiceChoices(label="Promise covers", required=False)
    email_summary = forms.BooleanField(
        label="E-mail the contact a written summary", required=False,
        # The words go to the customer as typed, inside a text in their language.
        help_text="It quotes “What was said” word for word: write it as the customer may read it.",
    )
    # The promise's fields as the service names them (workspace.promise_record):
    # its refusals are shown under the fields they are about.
    SERVICE_FIELDS = {
        "amount": "promise_amount", "promised_on": "promise_date", "invoices": "promise_invoices",
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _mark_taken(self.fields["promise_invoices"])

    def clean(self):
        data = super().clean()
        promise_parts = [data.get("promise_amount"), data.get("promise_date"), data.get("promise_invoices")]
        # A part refused on its own (an invoice paid meanwhile) says why where it stands.
        refused = {"promise_amount", "promise_date", "promise_invoices"} & set(self.errors)
        if any(promise_parts) and not all(promise_parts) and not refused:
            raise forms.ValidationError("A promise needs an amount, a date and the invoices it covers.")
        # "(no one named)" is a fine answer for the call, not for a letter: it says whom to pick,
        # where the service could only say that no one has an address.
        if data.get("email_summary") and not data.get("contact") and "contact" not in self.errors:
            self.add_error("contact", "Choose the contact to write the summary to.")
        return data

    @property
    def promise(self) -> PromiseTerms | None:
        data = self.cleaned_data
        if not data.get("promise_amount"):
            return None
        return PromiseTerms(data["promise_amount"], data["promise_date"], list(data["promise_invoices"]))


class NoteForm(_AccountForm):
    text = _text("Note", rows=3, max_length=300)


class CopyForm(_AccountForm):
    submission = _sent_once()
    invoice = InvoiceChoice()
    contact = forms.ModelChoiceField(
        queryset=Contact.objects.none(), label="Send to", empty_label="Choose a contact",
        help_text="By post to a contact who takes paper or has no e-mail address: it waits in the print "
                  "queue. By e-mail to the others.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["contact"]
        # Today's and coming absences, loaded with the contacts: one query for the menu.
        field.queryset = field.queryset.prefetch_related(
            Prefetch("absences", queryset=ContactAbsence.objects.filter(ends_on__gte=self.today)))
        # Said before choosing: how the copy reaches each contact, or why it
        # cannot, and who is away; the one the account writes to today
        # (absences applied) is chosen already.
        field.label_from_instance = lambda contact: _contact_way(contact, on=self.today)
        if not self.is_bound and (billed := self.customer.billing_contact(on=self.today)):
            field.initial = billed.pk

    def clean_contact(self) -> Contact:
        contact = self.cleaned_data["contact"]
        way = paper.way_to(contact)
        if not way.by:
            raise forms.ValidationError(f"The copy cannot be sent: {way.why}.")
        return contact


def _contact_way(contact: Contact, *, on: dt.date) -> str:
    way = paper.way_to(contact)
    if way.by == paper.POST:
        said = f"{contact.name} · by post to {paper.first_line(contact.postal_address)}"
    elif way.by == paper.EMAIL:
        said = f"{contact.name} · by e-mail to {contact.email}"
    else:
        said = f"{contact.name} · cannot be sent: no e-mail or postal address"
    if until := contact.away_until(on):
        said += f" · away until {format_day(until)}"
    return said


class StatementForm(_AccountForm):
    submission = _sent_once()
    note = _text("Note for the customer", required=False, max_length=STATEMENT_NOTE_MAX_LENGTH)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Said before sending: the billing contact of the day, absences applied.
        contact, why = statement_recipient(self.customer, on=self.today)
        if contact is None:
            self.fields["note"].help_text = f"It cannot be sent: {why}."
        elif paper.way_to(contact).by == paper.POST:
            self.fields["note"].help_text = (
                f"The statement goes by post to {contact.name}, {paper.first_line(contact.postal_address)}: "
                "it waits in the print queue. The note is printed on the statement, above its figures.")
        else:
            self.fields["note"].help_text = (
                f"The statement goes to {contact.name} <{contact.email}> as a PDF; the note is quoted word "
                "for word in the e-mail.")


class PromiseForm(_AccountForm):
    contact = _contact_choice()
    amount = _money(label="Amount", help_text=PROMISE_COVERS)
    promised_on = _date(label="Promised by")
    invoices = InvoiceChoices(label="Covers")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _mark_taken(self.fields["invoices"])


class PlanForm(_AccountForm):
    submission = _sent_once()
    invoices = InvoiceChoices(label="Invoices in the plan")
    instalment_count = WholeNumberField(label="Instalments", min_value=2,
                                          max_value=PLAN_INSTALMENTS_AT_MOST, initial=3)
    first_due_on = _date(label="First instalment on")
    every_days = WholeNumberField(label="Then every (days)", min_value=7, max_value=PLAN_DAYS_APART_AT_MOST,
                                    initial=30)
    note = _text("Note", required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _mark_taken(self.fields["invoices"])

    def schedule(self) -> list[tuple[dt.date, Decimal]]:
        """Equal instalments in cents, or whole yen for yen (what the currency
        is paid in); the last one takes the rounding. Invoices in several
        currencies are refused when the plan is proposed."""
        data = self.cleaned_data
        # What is not disputed: a plan covers no more (workspace.plan_propose).
        disputed = disputed_parts(list(data["invoices"]))
        total = sum((i.open_amount - disputed.get(i.pk, (None, Decimal("0")))[1] for i in data["invoices"]),
                    Decimal("0"))
        count = data["instalment_count"]
        currencies = {i.currency for i in data["invoices"]}
        unit = smallest_unit(currencies.pop()) if len(currencies) == 1 else Decimal("0.01")
        part = (total / count).quantize(unit, rounding="ROUND_DOWN")
        amounts = [part] * (count - 1) + [total - part * (count - 1)]
        return [(data["first_due_on"] + dt.timedelta(days=data["every_days"] * n), amounts[n])
                for n in range(count)]




class DateConfirmation(forms.CheckboxInput):
    """A checkbox that confirms one date: it sends the date it was shown
    with, and comes back ticked only while the form still holds that date.
    A box ticked for 4 Aug 2024 says nothing about 4 Aug 2023 typed after.
    Shown only on a form sent back with a date that needs confirming."""

    confirms = ""  # the date as the form holds it, set by the form

    def value_from_datadict(self, data, files, name) -> str:
        return data.get(name, "")

    def get_context(self, name, value, attrs):
        context = super().get_context(name, None, attrs)
        widget = context["widget"]
        widget["attrs"]["value"] = self.confirms or ""
        if value and value == self.confirms:
            widget["attrs"]["checked"] = True
        else:
            widget["attrs"].pop("checked", None)
        return context


class PaymentForm(_AccountForm):
    received_on = _date(label="Received on")
    currency = forms.ChoiceField()
    amount = _money(label="Amount")
    method = forms.ChoiceField(choices=PaymentMethod.choices, initial=PaymentMethod.BANK_TRANSFER)
    reference = forms.CharField(
        label="Reference", max_length=80, validators=[something_seen, nothing_hidden],
        help_text="As on the bank statement, the cheque's number, a receipt's for cash: "
                  "it tells this payment from one recorded before.",
    )
    invoices = InvoiceChoices(
        label="Apply to", required=False,
        help_text="The ticked invoices, oldest due first, then late fees and interest still owed, then "
                  "the rest stays on account. With none ticked, in the payment's currency and passing over "
                  "invoices under dispute (but for the undisputed rest of one on a payment plan): first the "
                  "invoices due by the day it was received, oldest due first, then late fees and interest "
                  "still owed, then the invoices not yet due, then the rest stays on account. Either way, "
                  "only fees and interest charged by the day it was received, and none on an invoice under "
                  "dispute.",
    )
    # Shown only when asked for (see clean): for today's date it would only puzzle the clerk.
    date_confirmed = forms.CharField(
        label="The date is right", required=False, widget=DateConfirmation,
        help_text=f"Asked for when the payment was received more than {LONG_AGO_DAYS} days ago.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        currencies = sorted({self.customer.currency, *self.fields["invoices"].queryset.values_list(
            "currency", flat=True)})
        self.fields["currency"].choices = [(c, c) for c in currencies]
        self.fields["currency"].initial = self.customer.currency
        self.fields["received_on"].initial = self.today
        # The box confirms the date now in the form, and only that one.
        if self.is_bound:
            self.fields["date_confirmed"].widget.confirms = self["received_on"].value()
        else:
            del self.fields["date_confirmed"]  # no date typed yet: nothing to confirm

    def clean_received_on(self) -> dt.date:
        received_on = self.cleaned_data["received_on"]
        if received_on > self.today:
            raise forms.ValidationError("A payment cannot be received after today.")
        return received_on

    def clean(self):
        data = super().clean()
        # A mistyped year (2024 for 2025) would settle invoices on the wrong
        # day and skew the payer's behaviour: a date long ago is confirmed.
        received_on = data.get("received_on")
        if received_on and long_ago(received_on, today=self.today):
            if self._confirmed_date(data.get("date_confirmed")) != received_on:
                self.add_error("received_on", (
                    f"{format_day(received_on)} is {(self.today - received_on).days} days ago. "
                    "If that is right, tick “The date is right” and record it again."
                ))
        else:
            # A date that needs no confirming: the form, if it comes back, shows no box.
            del self.fields["date_confirmed"]
        currency = data.get("currency")
        others = [i.number for i in data.get("invoices") or () if i.currency != currency]
        if currency and others:
            self.add_error("invoices", f"Not in {currency}: {', '.join(others)}. "
                                       "A payment is applied to invoices in its own currency.")
        return data

    def _confirmed_date(self, value: str) -> dt.date | None:
        try:
            return self.fields["received_on"].to_python(value)
        except forms.ValidationError:
            return None


class CreditApplyForm(_AccountForm):
    """Money kept on account or a credit note not yet set against an invoice,
    set against invoices now the customer has said which."""

    credit = forms.ChoiceField(label="Credit")
    invoices = InvoiceChoices(
        label="Set against", required=False,
        help_text="The ticked invoices, oldest due first, then late fees and interest still owed. With "
                  "none ticked, as a payment naming no invoice, in the credit's currency and passing over "
                  "invoices under dispute: the invoices due by today, oldest due first, then late fees and "
                  "interest still owed, then the invoices not yet due. Never the interest on an invoice "
                  "under dispute. What is left stays on account.",
    )
    amount = _money(label="Amount", required=False, help_text="Left empty: all that is left of it.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.credits = {self.credit_key(c): c for c in credits_to_apply(self.customer)}
        self.fields["credit"].choices = [(key, credit_label(c)) for key, c in self.credits.items()]
        self.fields["credit"].error_messages["invalid_choice"] = (
            "Nothing of that credit is left to apply (set against invoices meanwhile): choose from those "
            "listed now."
        )
        if len(self.credits) == 1:
            self.fields["credit"].initial = next(iter(self.credits))

    @staticmethod
    def credit_key(document) -> str:
        return f"{'payment' if document._meta.model_name == 'payment' else 'note'}-{document.pk}"

    def clean_credit(self):
        # What is left of it, what it may be set against: the service checks, under its lock.
        return self.credits[self.cleaned_data["credit"]]


class CreditNoteForm(_AccountForm):
    invoice = InvoiceChoice(
        label="On invoice", required=False, empty_label="None: keep it on account",
        help_text="Kept on account (a rebate, goodwill), it is set against invoices later, and notices "
                  "offer it for deduction meanwhile.",
    )
    currency = forms.ChoiceField(label="Currency", required=False,
                                 help_text="Of a credit note kept on account; on an invoice, the invoice's.")
    amount = _money(label="Amount")
    issued_on = _date(label="Issued on")
    number = forms.CharField(
        label="Number", max_length=40, required=False,
        help_text="The credit note's number from the ERP; left empty, it takes the next of our own series.",
    )
    reason = _text("What it is for", max_length=200)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["issued_on"].initial = self.today
        currencies = sorted({self.customer.currency, *self.fields["invoice"].queryset.values_list(
            "currency", flat=True)})
        self.fields["currency"].choices = [(c, c) for c in currencies]
        self.fields["currency"].initial = self.customer.currency

    def clean_issued_on(self) -> dt.date:
        issued_on = self.cleaned_data["issued_on"]
        if issued_on > self.today:
            raise forms.ValidationError("A credit note cannot be issued after today.")
        return issued_on

    def clean(self):
        data = super().clean()
        invoice = data.get("invoice")
        if invoice is not None:
            data["currency"] = invoice.currency
        elif not data.get("currency") and not {"invoice", "currency"} & self.errors.keys():
            self.add_error("currency", "Give the currency of a credit note kept on account.")
        return data


class DisputeForm(_AccountForm):
    invoice = InvoiceChoice()
    # No lower bound here: the service says what is wrong with zero or less
    # (workspace._disputed_amount_check), as it does with too much.
    amount = MoneyField(
        label="Disputed amount", required=False,
        help_text="Blank: all that is open on the invoice. Only the amount disputed is held back from "
                  "dunning; the rest is chased as usual.",
    )
    reason = forms.ChoiceField(choices=DisputeReason.choices)
    description = _text("What the customer says", rows=3, max_length=2000)
    department = forms.ModelChoiceField(
        queryset=Department.objects.all(), required=False, empty_label="(by the reason)",
        help_text="Who can settle it; by default the team that handles the reason.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # One open dispute per invoice: those already disputed are not offered.
        invoice = self.fields["invoice"]
        invoice.queryset = invoice.queryset.exclude(disputes__status=DisputeStatus.OPEN)
        invoice.error_messages["invalid_choice"] = "That invoice is settled or already has an open dispute."


class WithdrawForm(forms.Form):
    reason = _text("Why is it withdrawn?")

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class PlanAmendForm(forms.Form):
    """A manager's new schedule for what an agreed plan still asks: one
    instalment a line, its date and its amount (workspace.plan_amend)."""

    submission = _sent_once()  # the new schedule is e-mailed to the customer
    instalments = forms.CharField(
        label="Instalments still to pay", widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One a line: the date (YYYY-MM-DD) and the amount, e.g. 2025-09-15 400.00. They add up to "
                  "what the instalments still due ask; none is in the past.",
    )
    note = _text("Why does the schedule change?")

    def __init__(self, *args, plan: PaymentPlan, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["instalments"].initial = "\n".join(
            f"{i.due_on.isoformat()} {i.amount}"
            for i in plan.instalments.filter(status=InstalmentStatus.DUE).order_by("number"))

    def clean_instalments(self) -> list[tuple[dt.date, Decimal]]:
        schedule = []
        for n, line in enumerate(self.cleaned_data["instalments"].splitlines(), 1):
            if not line.strip():
                continue
            try:
                day, amount = line.split()
                plain_amount_check(amount)
                amount = Decimal(amount)
                if not amount.is_finite():  # "NaN" and "Infinity" read as Decimals
                    raise ValueError(amount)
                schedule.append((dt.date.fromisoformat(day), amount))
            except forms.ValidationError as error:
                said = error.messages[0]
                raise forms.ValidationError(f"Line {n}: {said[0].lower()}{said[1:]}") from None
            except (ValueError, ArithmeticError):
                raise forms.ValidationError(
                    f"Line {n}: write the date (YYYY-MM-DD), a space, then the amount, "
                    "e.g. 2025-09-15 400.00."
                ) from None
        return schedule


# How far back the reverse form offers payments: a direct debit is returned
# within weeks (eight for a SEPA core debit, thirteen months when unauthorised),
# a cheque bounces sooner; a year of payments keeps the list readable.
REVERSIBLE_DAYS = 400


class PaymentChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Payment) -> str:
        came = obj.get_method_display().lower()
        if obj.reference:
            came += f" {obj.reference}"
        return f"{format_day(obj.received_on)} · {format_money(obj.amount, obj.currency)} · {came}"


class PaymentReverseForm(_AccountForm):
    """Which payment the bank took back, why and when. Sent once it shows
    what reversing it undoes (the view's confirm step): `confirmed` is the
    payment confirmed, so a payment changed in the form meanwhile is shown
    again rather than reversed unseen."""

    SERVICE_FIELDS = {"payment": "__all__"}

    payment = PaymentChoice(
        queryset=Payment.objects.none(), label="Payment", empty_label="Choose a payment",
        error_messages={"invalid_choice": "That payment is not one of this account's to reverse (reversed "
                                          "already, or too old): choose from those listed now."},
    )
    reason = forms.ChoiceField(label="Why", choices=ReversalReason.choices, widget=forms.RadioSelect)
    note = _text("Note", required=False)
    reversed_on = _date(label="Taken back on", help_text="The day on the bank statement.")
    confirmed = WholeNumberField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["payment"].queryset = self.customer.payments.filter(
            reversal__isnull=True, received_on__gte=self.today - dt.timedelta(days=REVERSIBLE_DAYS),
        ).order_by("-received_on", "-pk")
        self.fields["reversed_on"].initial = self.today
        self.fields["note"].help_text = ("The bank's return code or what happened; needed for “Other”. "
                                         "Kept with the reversal and on the timeline.")


class WriteOffForm(forms.Form):
    """A manager's write-off of what one invoice still owes. The amount shown
    goes with the form, as the runs page's date does: a payment or credit
    since makes the write-off refused, not taken for another sum nobody saw."""

    # The service's refusals about the invoice or the amount are the form's own,
    # said above its fields (the amount is not one anybody types).
    SERVICE_FIELDS = {"invoice": "__all__", "amount": "__all__"}
    CHANGED = "The amount to write off did not come with the form: open it again from the account page."

    written_off_on = _date(label="Written off on")
    reason = _text("Why is it written off?")
    # Last: the panel puts the keyboard on the first field, and on a hidden one
    # the focus goes nowhere.
    amount = _money(widget=forms.HiddenInput, error_messages={"required": CHANGED, "invalid": CHANGED})

    def __init__(self, *args, invoice: Invoice, today: dt.date, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["amount"].initial = invoice.open_amount
        self.fields["written_off_on"].initial = today
        self.fields["reason"].help_text = ("Kept with the write-off and on the timeline: the customer is "
                                           "insolvent, collecting would cost more than it brings, …")


class _DisputeOutcomeField(forms.ChoiceField):
    """The outcomes a person closes a dispute with: every one but cancelled,
    which only the ERP's cancelling the invoice gives (workspace.invoice_cancel);
    posted anyway, it is refused saying so rather than "not a valid choice"."""

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=[(value, label) for value, label in DisputeOutcome.choices
                                  if value != DisputeOutcome.INVOICE_CANCELLED], **kwargs)

    def validate(self, value) -> None:
        if value == DisputeOutcome.INVOICE_CANCELLED:
            raise forms.ValidationError(DISPUTE_CANCELLED_BY_THE_ERP_ONLY, code="invalid_choice")
        super().validate(value)


class DisputeResolveForm(forms.Form):
    outcome = _DisputeOutcomeField(widget=forms.RadioSelect)
    amount = _money(label="Credit note amount or corrected total", required=False)
    note = _text("How it was settled")

    def __init__(self, *args, invoice: Invoice, actor, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        # Only the outcomes that can be true of the invoice as it stands are
        # shown; any outcome is accepted, so one that stopped fitting since the
        # form was opened gets the service's reason, not "not a valid choice".
        offered = DisputeOutcome.offered(invoice)
        outcome = self.fields["outcome"]
        outcome.widget.choices = [(value, DisputeOutcome.label_for(value, invoice)) for value in offered]
        if invoice.open_amount == 0:
            outcome.help_text = (f"{invoice.number} is {invoice.settled_how()} in full: nothing is open to "
                                 "credit or correct.")
            del self.fields["amount"]
        elif not actor.has_perm("collections.settle_beyond_credit_limit"):
            # Said up front: otherwise a collector learns it from a refusal (workspace._credit_allowed).
            limit = format_money(CollectionRules.current().credit_without_manager_amount,
                                 settings.DEFAULT_CURRENCY)
            self.fields["amount"].help_text = (
                f"Collectors may take off up to {limit} per invoice, in {settings.DEFAULT_CURRENCY} only; "
                "more is a manager's decision."
            )


class PauseForm(_AccountForm):
    invoice = InvoiceChoice(required=False, empty_label="(the whole account)")
    ends_on = _date(label="Until")
    reason = _text("Why")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        days = CollectionRules.current().max_pause_days
        self.fields["ends_on"].help_text = (
            f"Up to {days} days from today; a longer pause goes to the managers as an exception request."
        )


class ExceptionForm(_AccountForm):
    kind = forms.ChoiceField(choices=ExceptionKind.choices)
    invoice = InvoiceChoice(required=False, empty_label="(the whole account)")
    # Its help text is set with the invoices marked (__init__): _mark_taken writes one of its own.
    invoices = InvoiceChoices(label="Invoices to write off", required=False)
    pause_until = _date(label="Until", required=False,
                        help_text="For a pause, its last day; for extended terms, the new day to pay by.")
    reason = _text("What you ask for and why", rows=3, max_length=2000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _mark_taken(self.fields["invoices"])
        self.fields["invoices"].help_text = (
            "For a write-off only: what each still owes is asked to be written off as bad debt. An invoice "
            "under open dispute, promised or in a payment plan is not written off until that ends.")


class DecideForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")], widget=forms.RadioSelect
    )
    note = _text("Note")

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    @property
    def approve(self) -> bool:
        return self.cleaned_data["decision"] == "approve"

    def terms(self) -> dict:
        """What the decision grants beyond its verdict: nothing, for a plan (approve or reject)."""
        return {}


class ExceptionDecideForm(DecideForm):
    """A decision on an exception. One that holds dunning until a day (a
    pause, extended terms) may be approved until an earlier day than asked;
    the service checks the day against what was asked and today."""

    until = _date(label="Grant until", required=False)
    write_off = forms.MultipleChoiceField(
        label="Write off", required=False, widget=forms.CheckboxSelectMultiple,
        help_text=("Approving writes off what each invoice ticked owes now, dated today, with the request's "
                   "reason."),
        error_messages={"invalid_choice": (
            "An invoice ticked was paid, credited or taken up by a dispute, promise or plan since the page "
            "opened: check the invoices as they stand now and confirm again."
        )},
    )
    field_order = ["decision", "until", "write_off", "note"]

    def __init__(self, *args, asked: ExceptionRequest, today: dt.date, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if asked.kind in DATED_EXCEPTIONS and asked.pause_until:
            self.fields["until"].initial = asked.pause_until
            earliest, invoice = exception_earliest_end(asked, on=today)
            if invoice is not None:
                first = f"{format_day(earliest)}, the day after {invoice.number} falls due"
            else:
                first = f"today, {format_day(today)}"
            less = ("give less time to pay" if asked.kind == ExceptionKind.EXTENDED_TERMS
                    else "approve a shorter pause")
            self.fields["until"].help_text = (
                f"Asked until {format_day(asked.pause_until)}. To {less}, choose an earlier day ({first}, "
                "at the earliest)."
            )
        else:
            del self.fields["until"]
        if asked.kind == ExceptionKind.WRITE_OFF:
            self._write_off_choices(asked)
        else:
            del self.fields["write_off"]

    def _write_off_choices(self, asked: ExceptionRequest) -> None:
        """The invoices a write-off may still write off, each valued with what
        it owes now: an amount that changed before the form is sent is no
        longer a choice, so nothing is written off but what the manager saw.
        Those as asked come ticked; one paid or credited in part since is
        ticked only by a manager who confirms the new amount."""
        lines = write_off_lines_now(asked)
        field = self.fields["write_off"]
        field.choices = [
            (f"{line.invoice.pk}:{line.owed_amount}",
             f"{line.invoice.number} · {format_money(line.owed_amount, line.invoice.currency)}"
             + (f" · {line.changed}" if line.changed else ""))
            for line in lines if line.writable
        ]
        field.initial = [f"{line.invoice.pk}:{line.owed_amount}" for line in lines if line.as_asked]
        if not field.choices:
            field.help_text = "None of these invoices can be written off now: reject the request."

    def clean(self) -> dict:
        data = super().clean()
        # A rejection writes off nothing: invoices ticked on a page opened
        # before a payment came in do not stand in its way.
        if data.get("decision") == "reject" and "write_off" in self._errors:
            del self._errors["write_off"]
            data["write_off"] = []
        return data

    def terms(self) -> dict:
        terms = {"until": self.cleaned_data.get("until")} if "until" in self.fields else {}
        if "write_off" in self.fields:
            terms["write_off"] = {int(pk): Decimal(amount) for pk, _, amount in
                                  (chosen.partition(":") for chosen in self.cleaned_data["write_off"])}
        return terms


class SnoozeForm(forms.Form):
    until = _date(label="Snooze until")


class LadderDecisionForm(forms.Form):
    """What was decided for an account whose ladder has no step left, as its
    item is ticked off (worklist.item_complete asks the same)."""

    decision = forms.ChoiceField(
        label="What was decided", choices=LadderDecision.choices, widget=forms.RadioSelect,
        error_messages={"required": "Choose what was decided: the ladder has no step left, and nothing else "
                                    "goes out."},
    )
    note = _text("Note: what was agreed or asked, with whom, and what happens next", rows=3)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["note"].error_messages["required"] = (
            "Say in a note what was agreed or asked, with whom, and what happens next.")


class ReassignForm(forms.Form):
    to = WorkerChoiceField(queryset=User.objects.none(), label="Hand to")
    # Shown to whoever takes it, and on the timeline (worklist.item_reassign).
    reason = forms.CharField(label="Why", max_length=NOTE_MAX_LENGTH, validators=[something_seen],
                             error_messages={"required": "Say why you hand it over: whoever takes it sees "
                                                         "the reason."})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["to"].queryset = collectors()

    def refusal(self) -> str:
        """What the form says is wrong, in one sentence or two: the list starts
        on "Choose a person", where "required" would not say what to do."""
        if self.has_error("to", "required"):
            return "Choose whom to hand the item to."
        return " ".join(message for field in ("to", "reason") for message in self.errors.get(field, []))


def collectors():
    """Users who work accounts (collectors and managers, and superusers), by name."""
    return _people()


def worklist_owners():
    """Whose list a manager may open: everyone who works accounts, and anyone
    else with open items (a leaver's, until their accounts are handed over)."""
    return _people(also=Q(Exists(
        WorkItem.objects.filter(assignee=OuterRef("pk"), status=WorkStatus.OPEN)
    )))


def _people(*, also: Q | None = None):
    """Who may work accounts: those who may own them, by the account card's
    rule, and superusers, who may work any account though they own none; and
    those `also` names."""
    superusers = Q(is_active=True, is_superuser=True)
    return account_owners(also=superusers | also if also is not None else superusers)
