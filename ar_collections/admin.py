import copy
import datetime as dt
import json
import re
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import BooleanField, Exists, OuterRef, Value
from django.forms.formsets import DELETION_FIELD_NAME
from django.forms.models import BaseInlineFormSet
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import capfirst

from ar_collections.api import api_token_revoke
from ar_collections.imports import invoice_values_check
from ar_collections.models import (
    PAY_BY_DAYS_AT_MOST,
    STEP_DAYS_FROM_DUE_AT_MOST,
    STEP_ON_RECORD,
    Allocation,
    ApiToken,
    Call,
    CollectionRules,
    CreditNote,
    Department,
    Dispute,
    DisputeStatus,
    DocumentCounter,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    ExceptionRequest,
    FormSubmission,
    Holiday,
    Instalment,
    Invoice,
    InvoiceStatus,
    LadderStamp,
    LateCharge,
    LatePaymentPolicy,
    MoneyPointScale,
    OutgoingMail,
    PaperDocument,
    Payment,
    PaymentBehaviour,
    PaymentPlan,
    PaymentReversal,
    PlanStatus,
    PolicyMinimum,
    Promise,
    PromiseStatus,
    ReceivablesImport,
    StepFee,
    TimelineEventInvoice,
    WordingVersion,
    WorkItem,
    WriteOff,
    WriteOffLine,
    ladder_problems,
    step_out_of_bounds,
)
from ar_collections.services import behaviour_refresh
from ar_collections.timeline import event_record, events_link, invoice_issued
from ar_collections.views import IMPORT_PERMISSION, import_file_response
from arcrm.admin_columns import MoneyShownReadOnly, PeopleShownReadOnly, ViewOnly, money_column, person_column
from arcrm.dates import format_day
from arcrm.forms import MoneyField
from arcrm.money import MONEY_MAX_DIGITS, decimal_places, format_money, validate_currency_in_use
from customers.models import Customer, EventKind, Segment


class _RecordedThroughTheApp(ViewOnly, PeopleShownReadOnly, MoneyShownReadOnly):
    """Money moved by payments and credit notes is recorded by the services
    (an account's "Record a payment" and "Record a credit note", a dispute's
    credit note), which keep the invoices' open amounts, the timeline, the
    promises and the payment plans in step. The admin shows these rows; one
    entered or edited here would leave the rest behind (a credit note added
    here took nothing off its invoice and reduced no plan)."""


def _allocated_currency(allocation: Allocation) -> str:
    """The currency of the money allocated, which its invoice or charge is in too."""
    return (allocation.payment or allocation.credit_note).currency


class _TheLedger:
    """Every allocation ever made (Allocation.ledger), not only those that
    stand today: a payment the bank took back keeps the rows of what it once
    paid, each marked with the reversal that undid it and its day. Read-only,
    as every allocation is here."""

    readonly_fields = ["reversed"]

    def get_queryset(self, request):
        # Each row carries whether this user may open the reversal's page: a
        # link for one who may not would only lead to a refusal.
        linked = self.admin_site.get_model_admin(PaymentReversal).has_view_permission(request)
        queryset = (Allocation.ledger.select_related("reversal__payment")
                    .annotate(reversal_linked=Value(linked, output_field=BooleanField())))
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    @admin.display(description="Reversed", ordering="reversal__reversed_on")
    def reversed(self, allocation: Allocation) -> str:
        reversal = allocation.reversal
        if reversal is None:
            return "—"
        if not getattr(allocation, "reversal_linked", False):
            return format_html("Reversed on {} by {}", format_day(reversal.reversed_on), reversal)
        return format_html('Reversed on {} by <a href="{}">{}</a>', format_day(reversal.reversed_on),
                           reverse("admin:collections_paymentreversal_change", args=[reversal.pk]), reversal)


class AllocationInline(_TheLedger, _RecordedThroughTheApp, admin.TabularInline):
    model = Allocation
    money_currency = staticmethod(_allocated_currency)
    extra = 0
    raw_id_fields = ["invoice", "payment", "credit_note"]


# What an invoice owes follows from its total and from what was paid, credited
# or corrected against it, each recorded by the services (DESIGN invariant 3:
# balances reconcile to the cent). Typed in here, an open amount would no longer
# be the total less its allocations, a status "paid" would have no payment
# behind it, and a total or currency changed under its payments would leave
# them allocated to a different debt. A total is corrected through a dispute.
INVOICE_FIGURES = ["currency", "total_amount", "open_amount", "status", "settled_on", "cancelled_on"]

# The form's fields by the invoices file's column that holds them.
INVOICE_COLUMNS = {"number": "number", "account_number": "customer", "issue_date": "issue_date",
                   "due_date": "due_date", "currency": "currency", "total_amount": "total_amount",
                   "po_reference": "po_reference"}
# What the payments and credit notes recorded against an invoice were made
# against: its number (what a remittance and the notices name, and what the
# ERP knows it by) and its issue date (from which its days late count).
# Once money is recorded, these stay as the customer paid them; a due date
# the terms extend, or a PO reference given late, may still change.
INVOICE_AS_PAID = ["issue_date"]


class InvoiceAdminForm(forms.ModelForm):
    class Meta:
        model = Invoice
        fields = ["number", "customer", "issue_date", "due_date", "po_reference", *INVOICE_FIGURES]

    def clean(self):
        """The import's rules for an invoice's values (imports.invoice_values_check),
        each problem on its field. A change is held to them only in what it
        changes: a value recorded before stays as it was, and refusing it
        would stop every correction of the rest."""
        data = super().clean()
        invoice = self.instance
        values = {name: data.get(name, getattr(invoice, name, None)) for name in INVOICE_COLUMNS.values()}
        customer = values["customer"]
        if customer is None or any(values[name] is None for name in ("issue_date", "due_date",
                                                                      "total_amount")):
            return data  # already refused by its field
        problems = invoice_values_check({
            "number": values["number"], "account_number": customer.account_number,
            "issue_date": values["issue_date"].isoformat(), "due_date": values["due_date"].isoformat(),
            "currency": values["currency"], "po_reference": values["po_reference"],
            # Its value, not as typed: JPY 1500.00 is whole yen.
            "total_amount": format(values["total_amount"].normalize(), "f"),
        }, customer=customer)
        checked = set(self.changed_data) if invoice.pk else set(INVOICE_COLUMNS.values())
        if checked & {"issue_date", "due_date"}:
            # Each date is checked against the other.
            checked |= {"issue_date", "due_date"}
        labels = {column: str(self.fields[name].label) for column, name in INVOICE_COLUMNS.items()
                  if name in self.fields}
        for column, said in problems.items():
            name = INVOICE_COLUMNS.get(column)
            if name is None or (name in checked and name not in self.errors):
                self.add_error(name if name in self.fields else None,
                               [_as_labelled(problem, column, labels) for problem in said])
        if invoice.pk and (as_paid := [name for name in INVOICE_AS_PAID if name in self.changed_data]):
            self._as_paid_check(as_paid)
        return data

    def _as_paid_check(self, names: list[str]) -> None:
        invoice = self.instance
        # Locked until the admin's save commits: no payment comes in against
        # it between this check and the change.
        list(Invoice.objects.select_for_update().filter(pk=invoice.pk).values_list("pk"))
        if not (invoice.allocations.exists() or invoice.credit_notes.exists()
                or WriteOff.objects.filter(invoice=invoice).exists()):
            return
        for name in names:
            if name not in self.errors:
                self.add_error(name, f"Money has been recorded against this invoice: its "
                                     f"{str(self.fields[name].label).lower()} stays as it was paid "
                                     f"({_said(getattr(invoice, name))}).")

    def clean_customer(self):
        """An invoice may be moved to the account it belongs to, unless money
        was recorded against it: its payments and credit notes are the first
        account's, and would then settle another account's debt. Nor while the
        first account's dispute, promise or plan covers it, money or not: it
        would then pause, promise or schedule another account's debt (and its
        dunning pause stay with the first)."""
        customer = self.cleaned_data["customer"]
        invoice = self.instance
        if not invoice.pk or customer is None or customer.pk == invoice.customer_id:
            return customer
        # Both accounts, then the invoice, locked until the admin's save
        # commits (its views are atomic), in the order a payment takes them: no
        # payment or credit note comes in against it between this check and the move.
        _accounts_lock({invoice.customer_id, customer.pk})
        list(Invoice.objects.select_for_update().filter(pk=invoice.pk).values_list("pk"))
        if invoice.allocations.exists() or invoice.credit_notes.exists():
            raise ValidationError(f"Money has been recorded against this invoice on "
                                  f"{invoice.customer.name}’s account: it stays with that account.")
        for what, covering in [
            ("A dispute still open", invoice.disputes.filter(status=DisputeStatus.OPEN)),
            ("A promise to pay still open", invoice.promises.filter(status=PromiseStatus.OPEN)),
            ("A payment plan in force or waiting for a manager", invoice.payment_plans.filter(
                status__in=[PlanStatus.ACTIVE, PlanStatus.AWAITING_APPROVAL])),
        ]:
            if covering.exists():
                raise ValidationError(f"{what} on {invoice.customer.name}’s account covers this invoice: "
                                      "it stays with that account.")
        return customer


@admin.register(Invoice)
class InvoiceAdmin(MoneyShownReadOnly, admin.ModelAdmin):
    form = InvoiceAdminForm
    list_display = ["number", "customer", "issue_date", "due_date", "currency", money_column("total_amount"),
                    money_column("open_amount"), "status"]
    list_filter = ["status", "currency"]
    search_fields = ["number", "po_reference", "customer__name"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    date_hierarchy = "due_date"
    inlines = [AllocationInline]

    def get_readonly_fields(self, request, obj=None):
        # The number is the ERP's: renumbered here, the ERP's next file would
        # bring the invoice in again under its own number, and the debt twice.
        return self.with_money_shown([*INVOICE_FIGURES, "number"] if obj is not None else [])

    def get_exclude(self, request, obj=None):
        # A new invoice owes its total (see save_model): nothing to type in.
        return ["open_amount", "status", "settled_on", "cancelled_on"] if obj is None else []

    # An invoice added, corrected or deleted here counts in its account's
    # payment behaviour and segment at once, as one the import or a payment
    # changes does, not only after the nightly refresh. The accounts' locks
    # come first, in id order, as a payment takes them before its invoices.

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            # Nothing has been paid or credited against it yet.
            obj.open_amount, obj.status, obj.settled_on = obj.total_amount, InvoiceStatus.OPEN, None
        with transaction.atomic():
            accounts = {obj.customer_id}
            before = None
            if change:
                before = Invoice.objects.select_related("customer").get(pk=obj.pk)
                # Moved to another account: the one it leaves recomputes too.
                accounts.add(before.customer_id)
            _accounts_lock(accounts)
            super().save_model(request, obj, form, change)
            if before is None:
                _issued_record(obj, actor=request.user)
            else:
                _changed_record(before, obj, actor=request.user)
            behaviour_refresh(on=timezone.localdate(), customer_ids=accounts)

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            _accounts_lock({obj.customer_id})
            super().delete_model(request, obj)
            _deleted_record([obj], actor=request.user)
            behaviour_refresh(on=timezone.localdate(), customer_ids=[obj.customer_id])

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            accounts = set(queryset.values_list("customer_id", flat=True))
            _accounts_lock(accounts)
            deleted = list(queryset.select_related("customer"))
            super().delete_queryset(request, queryset)
            _deleted_record(deleted, actor=request.user)
            behaviour_refresh(on=timezone.localdate(), customer_ids=accounts)


def _issued_record(invoice: Invoice, *, actor) -> None:
    """An invoice entered here is on its account's timeline as an imported
    one is: issued at 08:00 on its issue date, with who entered it."""
    at = dt.datetime.combine(invoice.issue_date, dt.time(8), tzinfo=timezone.get_current_timezone())
    event = invoice_issued(invoice, at=at, actor=actor, entered_in="admin")
    event.save()
    events_link({event.pk: [invoice.pk]})


# What a change here may touch, as the timeline names it.
INVOICE_CHANGE_LABELS = {"number": "number", "customer": "account", "issue_date": "issue date",
                         "due_date": "due date", "po_reference": "PO reference"}


def _changed_record(before: Invoice, after: Invoice, *, actor) -> None:
    """A change here on the account's timeline with who, before and after, as
    the ERP's changes are (a due date moved stops or starts the invoice's
    dunning: the collector sees why). An invoice moved to another account is
    on both accounts' timelines."""
    changed = [name for name in INVOICE_CHANGE_LABELS if getattr(before, name) != getattr(after, name)]
    if not changed:
        return
    said = "; ".join(f"{INVOICE_CHANGE_LABELS[name]} {_said(getattr(before, name))} → "
                     f"{_said(getattr(after, name))}" for name in changed)
    details = {"number": after.number, "entered_in": "admin",
               "before": {name: _plain(getattr(before, name)) for name in changed},
               "after": {name: _plain(getattr(after, name)) for name in changed}}
    summary = f"Invoice {after.number} changed in the admin: {said}"
    event_record(customer=after.customer, kind=EventKind.INVOICE_CHANGED, actor=actor, subject=after,
                 summary=summary, details=details)
    if before.customer_id != after.customer_id:
        event_record(customer=before.customer, kind=EventKind.INVOICE_CHANGED, actor=actor, subject=after,
                     summary=summary, details=details)


def _deleted_record(invoices: list[Invoice], *, actor) -> None:
    """Each invoice deleted here on its account's timeline, with who and what
    it was: its "Invoice issued" entry stays there, and without a word the
    collector would look for a debt that is no longer owed. (Only an invoice
    with nothing recorded against it can be deleted: its payments, notices
    and disputes protect it.)"""
    for invoice in invoices:
        event_record(
            customer=invoice.customer, kind=EventKind.INVOICE_CHANGED, actor=actor,
            summary=f"Invoice {invoice.number} deleted in the admin: it was "
                    f"{format_money(invoice.total_amount, invoice.currency)}, "
                    f"due {format_day(invoice.due_date)}",
            details={"number": invoice.number, "entered_in": "admin", "deleted": True,
                     "before": {"total_amount": str(invoice.total_amount), "currency": invoice.currency,
                                "issue_date": invoice.issue_date.isoformat(),
                                "due_date": invoice.due_date.isoformat()}},
        )


# A day as the import's rules write it (YYYY-MM-DD), to be said as the admin says one.
_ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def _as_labelled(problem: str, column: str, labels: dict[str, str]) -> str:
    """An import's problem in the admin's words: its fields by their labels
    and its days as the admin's lists and fields write them ("Due date 1 Jul
    2025 is before the issue date 1 Aug 2025"), not the file's column names
    and ISO days ("due_date 2025-07-01 is before issue_date 2025-08-01")."""
    label = labels.get(column, "")
    if label and problem.startswith(f"{column} "):
        problem = f"{label[0].upper()}{label[1:]} {problem.removeprefix(column + ' ')}"
    for other, other_label in labels.items():
        if "_" in other:  # a column name no sentence uses as a word of its own
            said = other_label if other_label[:2].isupper() else other_label[0].lower() + other_label[1:]
            problem = re.sub(rf"\b(before|after|than) {other}\b", rf"\1 the {said}", problem)
            problem = re.sub(rf"\b{other}\b", said, problem)
    problem = _ISO_DAY.sub(_day_said, problem)
    return problem if problem.endswith(".") else problem + "."


def _day_said(match: re.Match) -> str:
    try:
        return date_format(dt.date.fromisoformat(match[0]), "DATE_FORMAT")
    except ValueError:
        return match[0]  # not a day after all (part of a number, say): as it was


def _said(value) -> str:
    if isinstance(value, dt.date):
        return format_day(value)
    if isinstance(value, Customer):
        return f"{value.name} ({value.account_number})"
    return str(value) if value else "none"


def _accounts_lock(customer_ids) -> None:
    list(Customer.objects.select_for_update().filter(pk__in=customer_ids).order_by("pk").values_list("pk"))


@admin.register(Payment)
class PaymentAdmin(_RecordedThroughTheApp, admin.ModelAdmin):
    list_display = ["received_on", "customer", "currency", money_column("amount"), "method", "reference"]
    list_filter = ["method", "currency"]
    search_fields = ["reference", "customer__name"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    inlines = [AllocationInline]


@admin.register(PaymentReversal)
class PaymentReversalAdmin(_RecordedThroughTheApp, admin.ModelAdmin):
    """A payment the bank took back, reversed on the account page or through
    the API (workspace.payment_reverse): shown here, never entered, changed
    or deleted (its invoices would stay reopened with no decision behind it)."""

    list_display = ["payment", "reversed_on", "reason", person_column("reversed_by"), "created_at"]
    list_filter = ["reason"]
    search_fields = ["payment__reference", "payment__bank_reference", "payment__customer__name"]
    list_select_related = ["payment", "reversed_by"]
    raw_id_fields = ["payment", "reversed_by"]
    readonly_fields = ["undone"]


@admin.register(CreditNote)
class CreditNoteAdmin(_RecordedThroughTheApp, admin.ModelAdmin):
    list_display = ["number", "customer", "invoice", "issued_on", "currency", money_column("amount")]
    search_fields = ["number", "customer__name"]
    list_select_related = ["customer", "invoice"]
    raw_id_fields = ["customer", "invoice"]
    inlines = [AllocationInline]


@admin.register(WriteOff)
class WriteOffAdmin(_RecordedThroughTheApp, admin.ModelAdmin):
    """A manager's write-off, decided on the account page, which takes the
    invoice's open amount off and records who decided on its timeline: shown
    here, never entered, changed or deleted (the invoice would stay settled
    with no decision behind it)."""

    list_display = ["invoice", "customer", "written_off_on", "currency", money_column("amount"),
                    person_column("decided_by")]
    search_fields = ["invoice__number", "customer__name"]
    list_select_related = ["invoice", "customer", "decided_by"]
    raw_id_fields = ["invoice", "customer", "decided_by"]


@admin.register(Allocation)
class AllocationAdmin(_TheLedger, _RecordedThroughTheApp, admin.ModelAdmin):
    list_display = ["invoice", "payment", "credit_note", money_column("amount", _allocated_currency),
                    "allocated_on", "reversed"]
    money_currency = staticmethod(_allocated_currency)
    list_select_related = ["invoice", "payment", "credit_note", "reversal__payment"]
    raw_id_fields = ["invoice", "payment", "credit_note"]


@admin.register(DocumentCounter)
class DocumentCounterAdmin(ViewOnly, admin.ModelAdmin):
    """Credit notes are numbered without gaps from these counters, each taken
    under a lock as a note is issued (workspace.document_number). Set
    forward here, a counter leaves a gap in the numbers; set back or deleted,
    it hands out numbers already issued, which are then skipped: a gap too.
    Shown for looking up the next number, never set by hand."""

    list_display = ["prefix", "next_value"]


@admin.register(LadderStamp)
class LadderStampAdmin(ViewOnly, admin.ModelAdmin):
    """The stamp the database sets anew whenever a ladder (a policy, a step,
    a minimum, a fee) is written, by triggers (migration 0071): each process
    keeps the ladders it read while the stamp stays the one it read them
    under (dunning.ladders). Shown to look at, never set by hand: a stamp set
    back to an earlier value would let a process keep ladders changed since."""

    list_display = ["stamp"]


@admin.register(FormSubmission)
class FormSubmissionAdmin(ViewOnly, admin.ModelAdmin):
    """The one-time tokens of the forms that send something to the customer,
    taken as each was carried out (services.submission_record). Deleted, a
    form still open in a browser could be sent a second time."""

    list_display = ["token", "created_at"]
    search_fields = ["token"]


@admin.register(PaymentBehaviour)
class PaymentBehaviourAdmin(ViewOnly, MoneyShownReadOnly, admin.ModelAdmin):
    """Computed nightly; shown for reading, never edited by hand. Deleted, an
    account would have no figures (its worklist score, its segment's
    evidence) until the nightly refresh computed them again."""

    money_currency = "customer.currency"
    # Its amounts are in the account's currency (see PaymentBehaviour).
    list_display = ["customer", "computed_on", "avg_days_late", "share_paid_late",
                    money_column("open_amount", "customer.currency"),
                    money_column("overdue_amount", "customer.currency"), "max_days_overdue"]
    list_select_related = ["customer"]
    search_fields = ["customer__name"]



class _ChangesWithBeforeAndAfter:
    """The admin's history of a change keeps the values before and after, not
    only the names of the fields (DESIGN invariant 4: a policy change is
    recorded with who, when, before and after), and its history page says
    them: "Changed Tone for dunning step “…”: Tone Firm → Final."."""

    object_history_template = "admin/history_with_values.html"

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        for entry in getattr(response, "context_data", {}).get("action_list") or []:
            entry.change_in_words = _change_in_words(entry, self.model)
        return response

    def construct_change_message(self, request, form, formsets, add=False):
        message = super().construct_change_message(request, form, formsets, add)
        if add:
            return message
        changed = [form] + [f for formset in formsets or [] for f in formset.initial_forms
                            if f.has_changed() and f not in formset.deleted_forms]
        entries = [entry["changed"] for entry in message if "changed" in entry]
        for entry, edited in zip(entries, [f for f in changed if f.changed_data], strict=False):
            entry["before"] = {name: _plain(edited.initial.get(name)) for name in edited.changed_data}
            entry["after"] = {name: _plain(edited.cleaned_data.get(name)) for name in edited.changed_data}
        return message


def _plain(value):
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(getattr(value, "pk", value))


def _change_in_words(entry: LogEntry, model) -> str:
    """The history's usual sentence for each change, with what each field was
    and became; a choice by its label, as the form offered it."""
    try:
        changes = json.loads(entry.change_message)
    except ValueError:  # an entry written as plain text
        return entry.get_change_message()
    if not isinstance(changes, list):
        return entry.get_change_message()
    sentences = []
    for change in changes:
        usual = LogEntry(change_message=json.dumps([change])).get_change_message()
        changed = change.get("changed") if isinstance(change, dict) else None
        if not changed or "before" not in changed or "after" not in changed:
            sentences.append(usual)
            continue
        owner = _model_named(model, changed.get("name")) if "name" in changed else model
        values = []
        for label, name in zip(changed["fields"], changed["before"], strict=False):
            before = _value_in_words(owner, name, changed["before"][name])
            after = _value_in_words(owner, name, changed["after"].get(name))
            # One field is named by the sentence already; several each by their label.
            named = f"{label} " if len(changed["before"]) > 1 else ""
            values.append(f"{named}{before} → {after}")
        sentences.append(f"{usual.removesuffix('.')}: {', '.join(values)}.")
    return " ".join(sentences)


def _model_named(model, verbose_name: str):
    """The model of an inline change, known in the entry by its verbose name."""
    for related in model._meta.related_objects:
        if str(related.related_model._meta.verbose_name) == verbose_name:
            return related.related_model
    return None


def _value_in_words(model, name: str, value) -> str:
    if model is not None:
        try:
            field = model._meta.get_field(name)
        except Exception:  # a name the entry keeps that is no field of the model now
            field = None
        if field is not None and field.choices:
            return str(dict(field.flatchoices).get(value, value))
    if value is None or value == "":
        return "nothing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# What ladder_problems weighs of a step.
LADDER_FIELDS = ("position", "day_offset", "tone", "pay_by_days")

TAKEN_NOTE = "Taken for customers: stays as they got it. To change it, retire it and add a new step."


def _step_as_entered(data: dict) -> DunningStep:
    return DunningStep(**{name: data[name] for name in LADDER_FIELDS})


def _kept_as_saved(form: forms.ModelForm, entered: DunningStep) -> bool:
    """Whether the step on `form` is one saved past the bounds a step keeps
    (before they existed) and posted with its day and days to pay as saved:
    the ladder is saved with it as it runs, and step_bounds_warnings says
    how to mend it. Changed, it is held to the bounds like any step."""
    if form.instance.pk is None:
        return False
    saved = DunningStep(**{name: form.initial.get(name) for name in LADDER_FIELDS})
    return (bool(step_out_of_bounds(saved)) and saved.day_offset == entered.day_offset
            and saved.pay_by_days == entered.pay_by_days)


def step_bounds_warnings(request, model_admin, policy: LatePaymentPolicy) -> None:
    """After a save: each step of the ladder past the bounds a step keeps
    (saved before they existed), named with how to mend it. A step taken
    for customers stays as they got it, so it is retired and replaced."""
    for step in policy.steps.in_ladder().with_taken().order_by("position"):
        problems = step_out_of_bounds(step)
        if not problems:
            continue
        if step.is_taken():
            mend = ("It has been taken for customers, so it cannot be changed: tick “Retired” on it and add "
                    "a new step in its place.")
        else:
            mends = []
            if abs(step.day_offset) > STEP_DAYS_FROM_DUE_AT_MOST:
                limit = STEP_DAYS_FROM_DUE_AT_MOST if step.day_offset > 0 else -STEP_DAYS_FROM_DUE_AT_MOST
                mends.append(f"move it to day {limit} or nearer the due date")
            if step.pay_by_days > PAY_BY_DAYS_AT_MOST:
                mends.append(f"set its days to pay to {PAY_BY_DAYS_AT_MOST} or fewer")
            mend = f"To mend it, {' and '.join(mends)}."
        # Past the bound, a notice gives the bound's days (DunningStep.days_to_pay).
        meanwhile = (f" (meanwhile its notices give {PAY_BY_DAYS_AT_MOST} days to pay)"
                     if step.pay_by_days > PAY_BY_DAYS_AT_MOST else "")
        model_admin.message_user(request, f"{' '.join(problems)} It was saved before that limit{meanwhile}. "
                                 f"{mend}", messages.WARNING)


def _taken_for_sure(step: DunningStep) -> bool:
    """Whether `step` has been taken, with its row locked until the admin's
    save commits (the admin's views are atomic): the planner's insert of an
    action then waits for the save, and an action planned just before it is
    seen here, so what it records cannot change under it."""
    DunningStep.objects.select_for_update().filter(pk=step.pk).first()
    # Asked again, not as the page loaded it: the planner may have taken it since.
    return step.pk is not None and step.actions.exists()


class DunningStepFormBase(forms.ModelForm):
    """A step taken for customers shows what it sent, charged and where it
    stands as it stays, read-only, and cannot be deleted; its "retired" box
    stays free. A posted change to any of those (a page opened before the
    step was taken, say) is refused with the way to change the ladder, not
    dropped without a word."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.taken = self.instance.is_taken()
        if self.taken:
            for name in STEP_ON_RECORD:
                if name in self.fields:
                    self.fields[name].disabled = True

    def clean(self):
        data = super().clean()
        changed = _changes_posted(self, STEP_ON_RECORD)
        if changed and self.instance.pk and _taken_for_sure(self.instance):
            labels = ", ".join(str(self.fields[name].label).lower() for name in changed)
            raise ValidationError(_taken_refusal(self.instance, labels))
        return data


def _taken_refusal(step: DunningStep, changed: str) -> str:
    return (f"Step {step.position} has been taken for customers already: what it sent and charged, and its "
            f"place on the ladder, stay as they got it (changed here: {changed}). To change the ladder, "
            "tick “Retired” on this step and add a new step in its place.")


def _changes_posted(form: forms.BaseForm, names) -> list[str]:
    """Fields among `names` the post changes, read from the posted values
    themselves: a read-only (disabled) field's cleaned value is the row's
    own whatever was posted, and a browser posts none."""
    changed = []
    for name in names:
        field, key = form.fields.get(name), form.add_prefix(name)
        if field is None or key not in form.data:
            continue
        probe = copy.copy(field)
        probe.disabled = False
        posted = field.widget.value_from_datadict(form.data, form.files, key)
        if probe.has_changed(form.get_initial_for_field(field, name), posted):
            changed.append(name)
    return changed


def step_on_record(step: DunningStep) -> str:
    """What the step's page and its policy's say of a step taken, or not yet."""
    if not step.is_taken():
        return "Not taken yet."
    if step.retired:
        return "Taken for customers, now retired: stays on record as they got it."
    return TAKEN_NOTE


def _deletion_refused(step: DunningStep) -> str:
    return (f"Step {step.position} has been taken for customers and stays on record with them, so it cannot "
            "be deleted. Tick “Retired” instead: it then leaves the ladder and is no longer taken.")


class DunningStepFormSet(BaseInlineFormSet):
    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        if getattr(form, "taken", False) and DELETION_FIELD_NAME in form.fields:
            form.fields[DELETION_FIELD_NAME].disabled = True

    def clean(self) -> None:
        """The ladder as it will be saved must hold together: the planner relies on it."""
        super().clean()
        # Refused here, not on the step's own form: the errors of a form
        # marked for deletion are not counted, and it would be deleted.
        if refused := [_deletion_refused(form.instance) for form in self.initial_forms
                       if self._deletion_posted(form) and _taken_for_sure(form.instance)]:
            raise ValidationError(refused)
        if any(self.errors):
            return
        # The policy's own form refused its segment or its gap (left empty, or
        # not one there is): it says so and nothing is saved; the ladder is
        # checked against them once they read.
        if self.instance.segment not in Segment.values or self.instance.min_days_between_contacts is None:
            return
        steps, kept = [], []
        for form in self.forms:
            if (form.cleaned_data and not form.cleaned_data.get(DELETION_FIELD_NAME)
                    and not form.cleaned_data.get("retired")):
                steps.append(entered := _step_as_entered(form.cleaned_data))
                if _kept_as_saved(form, entered):
                    kept.append(entered)
        # The policy as entered: its minimum gap between contacts is checked
        # against the steps as they will be, whichever of the two changed.
        gap = self.instance.min_days_between_contacts
        if problems := (ladder_problems(steps, kept_as_saved=kept, min_gap=gap)
                        + _segments_left_unchased(self.instance, has_steps=bool(steps))):
            raise ValidationError(problems)

    @staticmethod
    def _deletion_posted(form) -> bool:
        # Read from the post itself: a taken step's box is read-only, and its
        # cleaned value says "keep" whatever was posted.
        field = form.fields.get(DELETION_FIELD_NAME)
        key = form.add_prefix(DELETION_FIELD_NAME)
        return field is not None and bool(field.widget.value_from_datadict(form.data, form.files, key))

    def save_existing_objects(self, commit=True):
        # Position and day are unique among a policy's steps in the ladder, and
        # the rows are saved one by one: swapping two steps' days, or retiring
        # one and bringing back another at its place, would meet the other row
        # half-way (an IntegrityError). Rows that move, leave or come back
        # first step aside to places no real step uses, then are saved with
        # their own (a taken step's as they were); the checks above make the
        # final places unique.
        if commit:
            moving = [
                form.instance.pk for form in self.initial_forms
                if form.instance.pk and (form in self.deleted_forms
                                         or {"position", "day_offset", "retired"} & set(form.changed_data))
            ]
            for n, pk in enumerate(moving):
                DunningStep.objects.filter(pk=pk).update(position=STEP_ASIDE_POSITION + n,
                                                         day_offset=STEP_ASIDE_DAY + n)
        return super().save_existing_objects(commit)


def _segments_left_unchased(policy: LatePaymentPolicy, *, has_steps: bool) -> list[str]:
    """What is wrong with saving the policy as entered (`policy`: the form's
    values; `has_steps`: steps left after this save) for the segments it
    chases: an active policy with no steps chases nobody, and switching off,
    or moving to another segment, the one ladder a segment is chased by
    leaves its accounts unchased, silently, from the next run on.

    Checked here, with the steps: the policy's inline is always on its form
    for whoever may change it."""
    label = Segment(policy.segment).label
    if policy.is_active and not has_steps:
        return [f"An active policy needs at least one step: with none, nobody in the segment “{label}” "
                "is chased."]
    before = LatePaymentPolicy.objects.chasing().filter(pk=policy.pk).first() if policy.pk else None
    if before is None or (policy.is_active and policy.segment == before.segment):
        return []
    if LatePaymentPolicy.objects.chasing().filter(segment=before.segment).exclude(pk=policy.pk).exists():
        return []
    return [f"Nobody in the segment “{Segment(before.segment).label}” would be chased: this is its only "
            "active policy with steps. Keep it active for that segment and change its steps instead."]


# Out of any real ladder's reach, inside the columns' small-integer range.
STEP_ASIDE_POSITION = 30_000
STEP_ASIDE_DAY = -32_000


class DunningStepInline(admin.TabularInline):
    model = DunningStep
    form = DunningStepFormBase
    formset = DunningStepFormSet
    extra = 0
    readonly_fields = ["late_fees", "on_record"]
    show_change_link = True

    def get_queryset(self, request):
        # What each row shows (its name, its fees, whether it was taken) in
        # a fixed number of queries, however long the ladder.
        return super().get_queryset(request).select_related("policy").prefetch_related("fees").with_taken()

    @admin.display(description="Late fees (on the step's page)")
    def late_fees(self, step: DunningStep) -> str:
        return step.fees_text() if step.pk else ""

    @admin.display(description="On record")
    def on_record(self, step: DunningStep) -> str:
        return step_on_record(step)


class PolicyMinimumInline(admin.TabularInline):
    model = PolicyMinimum
    extra = 0


def minimums_missing(policy: LatePaymentPolicy, *, entered: list[str] | None = None) -> list[str]:
    """The currencies of open invoices the policy has no minimum for, whose
    accounts it chases over any amount (see dunning.above_minimum). Amounts in
    different currencies are not compared without exchange rates, so the floor
    is not guessed from another currency's: the manager is told, and sets it.
    `entered`: the currencies of the minimums on a form not saved, instead of
    the policy's own."""
    covered = policy.minimums.values("currency") if entered is None else entered
    return list(Invoice.objects.open().exclude(currency__in=covered)
                .values_list("currency", flat=True).distinct().order_by("currency"))


def _minimums_entered(formset) -> list[str]:
    """The currencies of the minimums as the refused post would have saved
    them: the rows kept and the rows added, read from the post itself (a row
    with an error has no cleaned value)."""
    entered = []
    for form in formset.forms:
        if form.data.get(form.add_prefix(DELETION_FIELD_NAME)):
            continue
        if form in formset.initial_forms or form.has_changed():
            entered.append(form.data.get(form.add_prefix("currency"), ""))
    return entered


# A taken step's fields read as fixed, and a ladder's row fits the screen.
POLICY_CSS = forms.Media(css={"all": ["css/admin-policy.css"]})


@admin.register(LatePaymentPolicy)
class LatePaymentPolicyAdmin(_ChangesWithBeforeAndAfter, admin.ModelAdmin):
    list_display = ["name", "segment", "is_active", "auto_send", "min_days_between_contacts"]
    list_filter = ["segment", "is_active"]
    inlines = [DunningStepInline, PolicyMinimumInline]
    actions = ["put_in_force"]

    @property
    def media(self):
        return super().media + POLICY_CSS

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        """The policy's page warns of currencies without a minimum. Shown
        again after a refused save, it warns of the minimums as entered on
        it: one just added is not said to be missing, one marked for deletion
        is (nothing is saved until the whole form is)."""
        entered = None
        if request.method == "POST":
            entered = next((_minimums_entered(inline.formset) for inline in context["inline_admin_formsets"]
                            if inline.formset.model is PolicyMinimum), None)
        context["minimums_missing"] = minimums_missing(obj, entered=entered) if change and obj else []
        # As saved (a refused post says what is wrong with what was entered).
        context["gap_problems"] = obj.gap_problems() if change and obj and request.method == "GET" else []
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(self, request, extra_context=None):
        """The list warns of each ladder its minimum gap freezes, as a save of
        it would be refused: one saved before the gap was checked runs so."""
        if request.method == "GET":
            for policy, problems in LatePaymentPolicy.objects.gap_problems():
                for problem in problems:
                    self.message_user(request, f"{policy.name}: {problem}", messages.WARNING)
        return super().changelist_view(request, extra_context)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        step_bounds_warnings(request, self, form.instance)

    def has_delete_permission(self, request, obj=None) -> bool:
        """A ladder in force is not deleted: another is put in force first."""
        if obj is not None and obj.is_active:
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        """A policy whose steps were taken stays, with them, on record."""
        steps = DunningStep.objects.filter(policy__in=[p.pk for p in objs])
        return _deleted_unless_taken(self, steps, objs, request)

    @admin.action(description="Put in force for its segment (the segment's current ladder is switched off)",
                  permissions=["change"])
    def put_in_force(self, request, queryset) -> None:
        """A ladder prepared as a draft replaces the one in force in one step:
        switched off alone, the one in force would leave its segment unchased
        (refused on its form), and two cannot be active at once."""
        chosen = list(queryset.order_by("segment", "pk"))
        segments = [p.segment for p in chosen]
        if len(set(segments)) < len(segments):
            self.message_user(request, "Choose one policy per segment: only one ladder runs per segment.",
                              messages.ERROR)
            return
        for policy in chosen:
            steps = list(policy.steps.in_ladder())
            if problems := (ladder_problems(steps, min_gap=policy.min_days_between_contacts) if steps
                            else ["it has no steps"]):
                self.message_user(request, f"“{policy.name}” was not put in force: {' '.join(problems)}",
                                  messages.ERROR)
                return
        with transaction.atomic():
            for policy in chosen:
                before = list(LatePaymentPolicy.objects.select_for_update()
                              .filter(segment=policy.segment, is_active=True).exclude(pk=policy.pk))
                for old in before:
                    self._switch(request, old, active=False)
                if not policy.is_active:
                    self._switch(request, policy, active=True)
                label = Segment(policy.segment).label
                replaced = f", in place of “{before[0].name}”" if before else ""
                self.message_user(request, f"“{policy.name}” is now the ladder for “{label}”{replaced}.",
                                  messages.SUCCESS)

    def _switch(self, request, policy: LatePaymentPolicy, *, active: bool) -> None:
        """Switch a policy on or off, in the admin's history with before and after."""
        policy.is_active = active
        policy.save(update_fields=["is_active"])
        self.log_change(request, policy, [{"changed": {
            # The field's label, as a form's change names it: the history page reads it out.
            "fields": [capfirst(LatePaymentPolicy._meta.get_field("is_active").verbose_name)],
            "before": {"is_active": not active}, "after": {"is_active": active},
        }}])


class _CurrencyAmountForm(forms.ModelForm):
    """A currency money comes in, and an amount of it, which `amount_problem`
    checks against that currency (its places: two for EUR, none for JPY)."""

    amount_field = "amount"

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"]
        validate_currency_in_use(currency)
        return currency

    def amount_problem(self, currency: str | None, amount: Decimal) -> str:
        raise NotImplementedError

    def clean(self):
        data = super().clean()
        amount = data.get(self.amount_field)
        if amount is not None and (problem := self.amount_problem(data.get("currency"), amount)):
            self.add_error(self.amount_field, problem)
        return data


class StepFeeForm(_CurrencyAmountForm):
    """One fee: a currency money comes in, and an amount that currency can be paid in."""

    # Places are checked per currency in clean(), not by the field.
    amount = MoneyField(label="Amount", max_digits=MONEY_MAX_DIGITS + 3, decimal_places=None)

    class Meta:
        model = StepFee
        fields = ["currency", "amount"]

    def amount_problem(self, currency: str | None, amount: Decimal) -> str:
        return _fee_problem(currency, amount)


def _fee_problem(currency: str | None, amount: Decimal) -> str:
    if amount < 0:
        return "A late fee cannot be negative."
    if amount == 0:
        return f"A late fee of {f'{currency} ' if currency else ''}0 charges nothing: delete the row instead."
    if currency is None:
        return ""
    return _places_problem("A fee", currency, amount)


def _places_problem(what: str, currency: str, amount: Decimal) -> str:
    """An amount with more places after the point than `currency` has."""
    places = decimal_places(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        if places == 0:
            return f"{what} in {currency} is in whole units, with no places after the point."
        return f"{what} in {currency} has at most {places} places after the point."
    return ""


class StepFeeFormSet(BaseInlineFormSet):
    """A step's fees: one per currency. Those of a step taken for customers
    are what it charged them and stay as they were, read-only; a posted
    change, deletion or new currency is refused with the way to change the
    ladder. A fee in a new currency is refused too: accounts that had the
    step with a notice in that currency were charged nothing, and what the
    step says it charged would no longer be what they got."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.taken = self.instance.is_taken()
        if self.taken:
            for form in self.forms:
                for field in form.fields.values():
                    field.disabled = True

    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        if getattr(self, "taken", False) and DELETION_FIELD_NAME in form.fields:
            form.fields[DELETION_FIELD_NAME].disabled = True

    def clean(self) -> None:
        changed = self._changes_posted()
        if changed and self.instance.pk and _taken_for_sure(self.instance):
            raise ValidationError(_taken_refusal(self.instance, "; ".join(changed)))
        # Before the formset's own check of unique rows, which says only
        # "Please correct the duplicate data".
        currencies = [form.cleaned_data["currency"] for form in self.forms
                      if form.cleaned_data.get("currency") and not form.cleaned_data.get(DELETION_FIELD_NAME)]
        if twice := sorted({c for c in currencies if currencies.count(c) > 1}):
            raise ValidationError([f"{c} is listed twice: a step charges one late fee per currency."
                                   for c in twice])
        super().clean()

    def _changes_posted(self) -> list[str]:
        """What the post changes of the fees, read from the posted values:
        a taken step's fields are read-only and clean to the fee as it is."""
        changed = []
        for form in self.initial_forms:
            fee = form.instance
            if self._deletion_posted(form):
                changed.append(f"the late fee in {fee.currency} deleted")
            elif _changes_posted(form, ["currency", "amount"]):
                changed.append(f"the late fee in {fee.currency} changed")
        for form in self.extra_forms:
            if form.data.get(form.add_prefix("amount")):
                currency = form.data.get(form.add_prefix("currency")) or "another currency"
                changed.append(f"a late fee in {currency} added")
        return changed

    @staticmethod
    def _deletion_posted(form) -> bool:
        key = form.add_prefix(DELETION_FIELD_NAME)
        return DELETION_FIELD_NAME in form.fields and bool(
            form.fields[DELETION_FIELD_NAME].widget.value_from_datadict(form.data, form.files, key))


class StepFeeInline(admin.TabularInline):
    model = StepFee
    form = StepFeeForm
    formset = StepFeeFormSet
    extra = 0
    verbose_name = "late fee"
    verbose_name_plural = ("Late fees: one per currency, charged on a notice that lists an invoice in that "
                           "currency")

    def has_add_permission(self, request, obj=None) -> bool:
        # A taken step gets no new fee (StepFeeFormSet says why): no empty row to add one.
        if obj is not None and obj.is_taken():
            return False
        return super().has_add_permission(request, obj)


class DunningStepForm(DunningStepFormBase):
    class Meta:
        model = DunningStep
        fields = ["policy", "position", "day_offset", "action", "tone", "pay_by_days",
                  "interest_rate_percent", "retired"]

    def clean(self):
        """One step edited alone must fit the rest of its ladder."""
        data = super().clean()
        # On a change the policy is not on the form (a step stays with its policy).
        policy = data.get("policy") or (self.instance.policy if self.instance.policy_id else None)
        if policy is None or any(data.get(name) is None for name in LADDER_FIELDS):
            return data
        others = list(policy.steps.in_ladder().exclude(pk=self.instance.pk))
        entered = _step_as_entered(data)
        steps = others if data.get("retired") else [*others, entered]
        # The others as saved; this one if posted with its day and days to pay as saved.
        kept = [step for step in others if step_out_of_bounds(step)]
        kept += [entered] if _kept_as_saved(self, entered) else []
        if problems := (ladder_problems(steps, kept_as_saved=kept, min_gap=policy.min_days_between_contacts)
                        + _segments_left_unchased(policy, has_steps=bool(steps))):
            raise ValidationError(problems)
        return data


@admin.register(DunningStep)
class DunningStepAdmin(_ChangesWithBeforeAndAfter, admin.ModelAdmin):
    """One step at a time. What changes a ladder as a whole (a step leaving
    it, for another policy or for good) is done on its policy's page, which
    checks the ladder as it will be. Here a step stays with its policy, no
    step of a ladder in force is deleted, and retiring one must leave a
    ladder that holds together and still chases its segment."""

    form = DunningStepForm
    inlines = [StepFeeInline]

    @property
    def media(self):
        return super().media + POLICY_CSS

    list_display = [
        "policy", "position", "day_offset", "action", "tone", "pay_by_days",
        "late_fees", "interest_rate_percent", "retired",
    ]
    list_filter = ["policy", "retired", "action", "tone"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("fees")

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        step_bounds_warnings(request, self, form.instance.policy)

    @admin.display(description="Late fees")
    def late_fees(self, step: DunningStep) -> str:
        return step.fees_text()

    def get_readonly_fields(self, request, obj=None):
        return ["policy", "on_record"] if obj is not None else []

    @admin.display(description="On record")
    def on_record(self, step: DunningStep) -> str:
        return step_on_record(step)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.policy.is_active:
            return False
        return super().has_delete_permission(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        """A step of a ladder in force has no delete button, but its delete
        page may still be opened (a bookmark, a link passed on): to a manager
        who may delete steps, say why this one stays, as the bulk delete
        does, rather than the admin's bare "403 Forbidden"."""
        step = self.get_object(request, unquote(object_id))
        if (step is not None and step.policy.is_active
                and super().has_delete_permission(request, step)):
            self.message_user(request, _taken_stays(step) if step.is_taken() else _in_force_stays(step),
                              messages.WARNING)
            return redirect("admin:collections_dunningstep_change", step.pk)
        return super().delete_view(request, object_id, extra_context)

    def get_deleted_objects(self, objs, request):
        """The admin's own answer for a step of a ladder in force would be
        that the manager lacks the permission to delete it (see
        has_delete_permission), which they have: say why it stays instead."""
        steps = DunningStep.objects.filter(pk__in=[s.pk for s in objs])
        deleted, counts, perms_needed, protected = _deleted_unless_taken(self, steps, objs, request)
        in_force = (steps.filter(policy__is_active=True)
                    .exclude(Exists(DunningAction.objects.filter(step=OuterRef("pk"))))
                    .select_related("policy").order_by("policy__name", "position"))
        if stays := [*protected, *(_in_force_stays(step) for step in in_force)]:
            return [], {}, set(), stays
        return deleted, counts, perms_needed, protected


def _deleted_unless_taken(model_admin, steps, objs, request):
    """The admin's deletion summary, unless some of `steps` have been taken:
    then one plain line per such step, rather than every action it was taken
    in, one by one (thousands, for a step of a ladder that ran for a while)."""
    taken = (steps.filter(Exists(DunningAction.objects.filter(step=OuterRef("pk"))))
             .select_related("policy").order_by("policy__name", "position"))
    if protected := [_taken_stays(step) for step in taken]:
        return [], {}, set(), protected
    return admin.ModelAdmin.get_deleted_objects(model_admin, objs, request)


def _in_force_stays(step: DunningStep) -> str:
    return (f"Step {step.position} of “{step.policy.name}” belongs to a ladder in force. Retire it to take "
            "it out of the ladder, or edit the ladder on its policy’s page.")


def _taken_stays(step: DunningStep) -> str:
    return (f"Step {step.position} of “{step.policy.name}” has been taken for customers and stays on record "
            "with them. Retire a step to take it out of its ladder; switch a policy off to stop it "
            "chasing anyone.")


@admin.register(StepFee)
class StepFeeAdmin(ViewOnly, MoneyShownReadOnly, admin.ModelAdmin):
    """For looking fees up across ladders. They are entered on their step's
    page, which keeps those of a step taken for customers as they were."""

    list_display = ["step", "currency", money_column("amount")]
    list_filter = ["currency", "step__policy"]
    list_select_related = ["step__policy"]


@admin.register(PolicyMinimum)
class PolicyMinimumAdmin(_ChangesWithBeforeAndAfter, admin.ModelAdmin):
    list_display = ["policy", "currency", money_column("min_amount", description="Minimum")]


class _KeptByTheWorkflows(ViewOnly):
    """Cycles, runs and pauses are what the planner reads to take each step
    once per cycle (DESIGN invariant 1) and to skip what is paused; the
    planner, the runs page and the account page keep them. A cycle closed or
    added here let the ladder start over, its first step sent again; a run's
    date, status or progress edited would stop the next run from finishing
    it, or let a date run twice; a pause added here skipped the collector's
    limit, the manager's approval and the timeline, and one lifted, edited or
    deleted here ended a promise's, plan's or dispute's pause under it. None
    needs a hand-made fix: a hold is set or lifted on the account page, a
    run left unfinished is finished by the next, and a cycle closes when
    nothing is owed in it. The admin shows them, and changes none."""


@admin.register(DunningPause)
class DunningPauseAdmin(_KeptByTheWorkflows, PeopleShownReadOnly, admin.ModelAdmin):
    list_display = ["customer", "invoice", "kind", "starts_on", "ends_on", "lifted_at",
                    person_column("owner")]
    list_filter = ["kind"]
    list_select_related = ["customer", "invoice", "owner"]
    raw_id_fields = ["customer", "invoice", "promise", "plan", "dispute", "exception"]
    search_fields = ["customer__name", "reason"]


@admin.register(DunningRun)
class DunningRunAdmin(_KeptByTheWorkflows, PeopleShownReadOnly, admin.ModelAdmin):
    list_display = ["run_date", "status", "started_at", "finished_at", person_column("started_by")]
    list_select_related = ["started_by"]
    readonly_fields = ["planned_through_customer_id"]


@admin.register(DunningCycle)
class DunningCycleAdmin(_KeptByTheWorkflows, PeopleShownReadOnly, admin.ModelAdmin):
    list_display = ["customer", "number", "opened_on", "closed_on"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]


class _OnRecord(ViewOnly):
    """What dunning sent and listed is the record the planner and the timeline
    read: an action deleted here would let the planner send its step to the
    customer again in the same cycle (DESIGN invariant 1), and free the step
    it was taken in to be deleted. The admin shows these rows, and neither
    edits, deletes nor makes them up."""


class DunningActionInvoiceInline(_OnRecord, MoneyShownReadOnly, admin.TabularInline):
    model = DunningActionInvoice
    extra = 0
    raw_id_fields = ["invoice"]


@admin.register(DunningAction)
class DunningActionAdmin(_OnRecord, PeopleShownReadOnly, admin.ModelAdmin):
    list_display = ["planned_on", "customer", "step", "status", "channel", "pay_by"]
    list_filter = ["status", "channel"]
    list_select_related = ["customer", "step__policy"]
    search_fields = ["customer__name"]
    inlines = [DunningActionInvoiceInline]


@admin.register(DunningActionInvoice)
class DunningActionInvoiceAdmin(_OnRecord, MoneyShownReadOnly, admin.ModelAdmin):
    list_display = ["action", "invoice", "currency", money_column("open_amount")]
    list_select_related = ["action__customer", "action__step__policy", "invoice"]
    raw_id_fields = ["action", "invoice"]


@admin.register(LateCharge)
class LateChargeAdmin(ViewOnly, PeopleShownReadOnly, MoneyShownReadOnly, admin.ModelAdmin):
    """Charges are what the customer owes beside its invoices, paid through
    allocations like them. They are added by the notice that charged them and
    waived through the manager's decision, which records who and why: one
    deleted here would be a fee forgiven without a word, one added here owed
    for no notice."""

    list_display = ["customer", "kind", "currency", money_column("amount"), "invoice", "waived_at",
                    "cancelled_at", "created_at"]
    list_filter = ["kind", "currency"]
    list_select_related = ["customer", "invoice"]
    raw_id_fields = ["customer", "action", "invoice"]


# --- The collector's workspace ----------------------------------------------------
# Calls, promises, plans, disputes, exceptions and work items change through the
# account page and the queues, which keep pauses, the timeline and the worklist
# in step; the admin shows them and never edits them.


class ReadOnlyAdmin(ViewOnly, PeopleShownReadOnly, MoneyShownReadOnly, admin.ModelAdmin):
    """Nor deletes them: each ends through its own workflow, which leaves a
    trace and takes the rest with it. A promise is withdrawn, a plan
    withdrawn, a dispute resolved, an exception decided, a work item done:
    deleted here, the pauses and worklist they keep would go on without them
    (or the delete would be refused half-way over those rows), and the
    timeline would tell of something no longer there. A call is on the
    timeline for good; a mail deleted before it went out is never sent, and
    one sent loses what was said to the customer; an event's link to an
    invoice deleted hides the event from that invoice's timeline."""


class MoneyPointScaleForm(_CurrencyAmountForm):
    """One currency's scale: a currency money comes in, and an amount of it."""

    amount_field = "per_point_amount"
    # Places are checked per currency in clean(), not by the field.
    per_point_amount = MoneyField(label="1 point per", max_digits=MONEY_MAX_DIGITS + 3, decimal_places=None,
                                  help_text=MoneyPointScale._meta.get_field("per_point_amount").help_text)

    class Meta:
        model = MoneyPointScale
        fields = ["currency", "per_point_amount"]

    def amount_problem(self, currency: str | None, amount: Decimal) -> str:
        if amount <= 0:
            return "A point must stand for more than 0."
        return _places_problem("An amount", currency, amount) if currency else ""


class MoneyPointScaleInline(admin.TabularInline):
    """The worklist's money part per currency: amounts are never converted, so
    a currency whose unit is worth much less than a euro (JPY, HUF, ...) gets
    its own "1 point per"; a currency not listed counts 1 point per 1,000."""

    model = MoneyPointScale
    form = MoneyPointScaleForm
    extra = 0
    verbose_name_plural = "Worklist money scale per currency (not listed: 1 point per 1,000 overdue)"


class HolidayInline(admin.TabularInline):
    """The days the office is shut: no letter goes to the post on them, and a
    letter's days to pay count from the working day it is posted."""

    model = Holiday
    extra = 0
    verbose_name_plural = "Office holidays (no letter is posted on them; weekends need no entry)"


@admin.register(CollectionRules)
class CollectionRulesAdmin(_ChangesWithBeforeAndAfter, PeopleShownReadOnly, admin.ModelAdmin):
    list_display = ["__str__", "max_pause_days", "promise_grace_days", "instalment_grace_days",
                    "dispute_answer_days",
                    money_column("plan_approval_above_amount", lambda rules: settings.DEFAULT_CURRENCY,
                                 "Plan approval above"),
                    person_column("updated_by"), "updated_at"]
    list_select_related = ["updated_by"]
    readonly_fields = ["updated_by", "updated_at"]
    inlines = [MoneyPointScaleInline, HolidayInline]

    def has_add_permission(self, request):
        return not CollectionRules.objects.exists()

    def has_delete_permission(self, request, obj=None):
        # Deleted, the rules would fall back to their defaults (and lose their
        # money scales) with no record of what they were: they are changed
        # here, with before and after in their history.
        return False

    def save_model(self, request, obj, form, change):
        obj.pk, obj.updated_by = 1, request.user
        super().save_model(request, obj, form, change)

    # Limits saved before their bounds existed hold as saved: the list and the
    # page say which, as a save would refuse them, before anyone saves.

    def changelist_view(self, request, extra_context=None):
        self._bounds_warned(request)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._bounds_warned(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def _bounds_warned(self, request) -> None:
        rules = CollectionRules.objects.filter(pk=1).first() if request.method == "GET" else None
        for problem in rules.bounds_problems() if rules else []:
            self.message_user(request, f"Saved before this limit: {problem}", messages.WARNING)


@admin.register(MoneyPointScale)
class MoneyPointScaleAdmin(ViewOnly, MoneyShownReadOnly, admin.ModelAdmin):
    """A list to look at: the scales are edited with the collection rules,
    whose form checks one scale per currency and keeps the history."""

    list_display = ["__str__", "currency", money_column("per_point_amount", description="1 point per")]


@admin.register(Holiday)
class HolidayAdmin(ViewOnly, admin.ModelAdmin):
    """A list to look at: the holidays are kept with the collection rules,
    whose history records each change."""

    list_display = ["day", "name"]
    date_hierarchy = "day"


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "reasons"]


@admin.register(Call)
class CallAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "customer", "contact", "outcome", "cause", person_column("made_by")]
    list_filter = ["outcome", "cause"]
    list_select_related = ["customer", "contact", "made_by"]
    search_fields = ["customer__name", "notes"]


@admin.register(Promise)
class PromiseAdmin(ReadOnlyAdmin):
    list_display = ["customer", "currency", money_column("amount"), "promised_on", "status",
                    money_column("paid_amount"), person_column("made_by")]
    list_filter = ["status"]
    list_select_related = ["customer", "made_by"]
    search_fields = ["customer__name"]


class InstalmentInline(ViewOnly, MoneyShownReadOnly, admin.TabularInline):
    model = Instalment
    money_currency = "plan.currency"
    extra = 0


@admin.register(PaymentPlan)
class PaymentPlanAdmin(ReadOnlyAdmin):
    list_display = ["customer", "currency", money_column("total_amount"), "status", "proposed_on",
                    person_column("proposed_by"), person_column("decided_by")]
    list_filter = ["status"]
    list_select_related = ["customer", "proposed_by", "decided_by"]
    search_fields = ["customer__name"]
    inlines = [InstalmentInline]


@admin.register(Instalment)
class InstalmentAdmin(ReadOnlyAdmin):
    list_display = ["plan", "number", "due_on", money_column("amount", "plan.currency"), "status"]
    money_currency = "plan.currency"
    list_select_related = ["plan__customer"]
    list_filter = ["status"]


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "customer", "reason", "department", "status", "outcome", "opened_on",
                    "answer_due_on"]
    list_filter = ["status", "reason", "outcome", "department"]
    list_select_related = ["invoice", "customer", "department"]
    search_fields = ["customer__name", "invoice__number", "description"]


@admin.register(ExceptionRequest)
class ExceptionRequestAdmin(ReadOnlyAdmin):
    list_display = ["customer", "kind", "status", person_column("requested_by"), "requested_on",
                    person_column("decided_by")]
    list_filter = ["status", "kind"]
    list_select_related = ["customer", "requested_by", "decided_by"]
    search_fields = ["customer__name", "reason"]


@admin.register(WriteOffLine)
class WriteOffLineAdmin(ReadOnlyAdmin):
    """An invoice a write-off request names, with what it owed when asked:
    made with the request, written off by a manager's approval of it."""

    list_display = ["request", "invoice", "currency", money_column("asked_amount")]
    list_select_related = ["request__customer", "invoice"]
    raw_id_fields = ["request", "invoice"]
    search_fields = ["invoice__number", "request__customer__name"]


@admin.register(WorkItem)
class WorkItemAdmin(ReadOnlyAdmin):
    list_display = ["title", "kind", "customer", person_column("assignee"), "due_on", "snoozed_until",
                    "status"]
    list_filter = ["status", "kind"]
    list_select_related = ["customer", "assignee"]
    search_fields = ["title", "customer__name"]


@admin.register(TimelineEventInvoice)
class TimelineEventInvoiceAdmin(ReadOnlyAdmin):
    list_display = ["event", "invoice"]
    list_select_related = ["event", "invoice"]


@admin.register(OutgoingMail)
class OutgoingMailAdmin(ReadOnlyAdmin):
    list_display = ["subject", "customer", "purpose", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "purpose"]
    list_select_related = ["customer"]
    search_fields = ["subject", "customer__name"]
    exclude = ["attachment"]


@admin.register(PaperDocument)
class PaperDocumentAdmin(ReadOnlyAdmin):
    """Copies and statements for the post are written and marked posted on the
    account page and the print queue; here they can be looked up."""

    list_display = ["done_at", "customer", "kind", "recipient_name", "printed_at"]
    list_filter = ["kind"]
    list_select_related = ["customer"]
    search_fields = ["customer__name", "recipient_name"]


@admin.register(ReceivablesImport)
class ReceivablesImportAdmin(_RecordedThroughTheApp, admin.ModelAdmin):
    """Files uploaded on Collections › Import and the ERP's requests to the
    API; here they can be looked up, each with where it came from and, for a
    request, the token that signed it."""

    list_display = ["created_at", "kind", "origin", "file_name", "token", "dry_run", "status", "rows",
                    "created", "already", person_column("created_by", "By")]
    # By token: which of the ERP's keys sent what, e.g. before revoking one
    # whose secret may have been seen. Only tokens that sent something are offered.
    list_filter = ["origin", "kind", "status", "dry_run", ("api_token", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["file_name", "api_token__name"]
    list_select_related = ["created_by", "api_token"]

    def get_queryset(self, request):
        # The list names the files; read whole, a page of 100 uploads of up
        # to 20 MB each would be gigabytes. A row's own page reads its file
        # when it shows it.
        return super().get_queryset(request).defer("text", "workbook")

    @admin.display(description="Token", ordering="api_token__name")
    def token(self, batch: ReceivablesImport) -> str:
        return batch.api_token.name if batch.api_token else "—"

    # A workbook is kept as bytes, which no field here can show: the file
    # (a CSV file's or a request's too) is offered as it came in, to whoever
    # may download it (file_view); anyone else who may view the row reads its name.
    readonly_fields = ["kept_file"]

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if request.user.has_perm(IMPORT_PERMISSION):
            return readonly
        return ["kept_file_name" if name == "kept_file" else name for name in readonly]

    @admin.display(description="As it came in")
    def kept_file(self, batch: ReceivablesImport) -> str:
        return format_html('<a href="{}" download>{}</a>', reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_file", args=[batch.pk]), batch.source)

    @admin.display(description="As it came in")
    def kept_file_name(self, batch: ReceivablesImport) -> str:
        return batch.source

    def get_urls(self):
        return [path("<path:object_id>/file/", self.admin_site.admin_view(self.file_view),
                     name=f"{self.opts.app_label}_{self.opts.model_name}_file"), *super().get_urls()]

    def file_view(self, request, object_id: str):
        """Whoever may view the import and may import downloads its file, as on
        the imports page (views.receivables_import_file): the file is the ERP's
        data as it was sent, every row of it, whatever account it names. 404
        for one not there."""
        batch = self.get_object(request, unquote(object_id))
        if batch is None:
            raise Http404("No such import.")
        if not (self.has_view_permission(request, batch) and request.user.has_perm(IMPORT_PERMISSION)):
            raise PermissionDenied
        return import_file_response(batch)


@admin.register(ApiToken)
class ApiTokenAdmin(ViewOnly, admin.ModelAdmin):
    """Tokens are made by `manage.py api_token_create`, which shows the secret
    once; here they are listed and revoked. The secret's hash is never shown:
    it is no use to anyone but someone guessing tokens."""

    list_display = ["name", person_column("user", "Acts as"), "created_at", person_column("created_by"),
                    "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username"]
    list_select_related = ["user", "created_by"]
    exclude = ["secret_hash"]
    actions = ["revoke"]

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("collections.change_apitoken")

    @admin.action(description="Revoke the selected tokens (refused from now on, for good)",
                  permissions=["revoke"])
    def revoke(self, request, queryset) -> None:
        revoked = sum(api_token_revoke(token=token, actor=request.user) for token in queryset)
        self.message_user(request, f"{revoked} token{'s' * (revoked != 1)} revoked; "
                                   f"{queryset.count() - revoked} had been already.", messages.SUCCESS)


@admin.register(WordingVersion)
class WordingVersionAdmin(ViewOnly, PeopleShownReadOnly, admin.ModelAdmin):
    """Every save of the words to customers, as the Wording page keeps them:
    each is a version with what its documents said before it (DESIGN
    invariant 4), and the newest is what they say. Saved only through that
    page, which refuses words a document could not be sent with; one edited here would
    bypass that check and rewrite the history."""

    list_display = ["kind", "tone", "language", "number", "shipped", person_column("saved_by"), "saved_at"]
    list_filter = ["kind", "tone", "language", "shipped"]
    list_select_related = ["saved_by"]
