"""Receivables: invoices, payments, credit notes, the late-payment policy and
each customer's payment behaviour."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Sum, Value
from django.db.models.functions import Replace, Upper
from django.utils import timezone

from arcrm.dates import format_day
from arcrm.money import (
    MONEY_DECIMAL_PLACES,
    MONEY_MAX_DIGITS,
    ZERO,
    by_currency,
    format_money,
    validate_currency,
)
from customers.models import Segment


def _default_currency() -> str:
    return settings.DEFAULT_CURRENCY


def money_field(verbose_name: str | None = None, **kwargs) -> models.DecimalField:
    kwargs.setdefault("default", ZERO)
    return models.DecimalField(
        verbose_name, max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs
    )


def currency_field() -> models.CharField:
    return models.CharField(max_length=3, default=_default_currency, validators=[validate_currency])


class InvoiceStatus(models.TextChoices):
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    WRITTEN_OFF = "written_off", "Written off"
    CANCELLED = "cancelled", "Cancelled"


class InvoiceQuerySet(models.QuerySet):
    def open(self) -> InvoiceQuerySet:
        return self.filter(status=InvoiceStatus.OPEN)

    def overdue(self, *, on: dt.date) -> InvoiceQuerySet:
        return self.open().filter(due_date__lt=on)

    def settled(self) -> InvoiceQuerySet:
        return self.filter(status=InvoiceStatus.PAID, settled_on__isnull=False)


def overdue_in_other_currencies(invoices: Iterable[Invoice], *, currency: str,
                                on: dt.date) -> list[tuple[str, Decimal]]:
    """What of these open invoices is overdue on `on` in currencies other than
    the account's `currency`, per currency, less what an open dispute holds
    back (the invoices read with numbers.with_disputed_part, whose
    `undisputed` it sums; a currency whose overdue money is all under dispute
    is left out): shown beside the account currency's figures, never folded
    into them at a made-up rate."""
    return [(code, amount) for code, amount in by_currency(
        (invoice.currency, invoice.undisputed) for invoice in invoices
        if invoice.currency != currency and invoice.days_late(on=on)) if amount]


class Invoice(models.Model):
    number = models.CharField(max_length=40, unique=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="invoices"
    )
    issue_date = models.DateField()
    due_date = models.DateField()
    currency = currency_field()
    total_amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    # Kept equal to total minus allocations by the services that allocate; it is
    # stored because dunning plans over a million open invoices by this column.
    open_amount = money_field()
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.OPEN)
    po_reference = models.CharField("PO reference", max_length=60, blank=True)
    settled_on = models.DateField(null=True, blank=True)
    # The day the ERP cancelled it (workspace.invoice_cancel): until then it
    # counted in the receivables, and a past day's figures still count it.
    cancelled_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["due_date", "number"]
        constraints = [
            models.CheckConstraint(name="invoice_total_positive", condition=Q(total_amount__gt=0)),
            # One invoice per number in any capitals, across accounts as the
            # number's own uniqueness: w-1 beside W-1 is one invoice billed twice.
            # The index serves the import's look-up of a file's numbers so.
            models.UniqueConstraint(
                Upper("number"), name="invoice_number_once",
                violation_error_message="An invoice with this number in other capitals is recorded already.",
            ),
            models.CheckConstraint(
                name="invoice_open_within_total",
                condition=Q(open_amount__gte=0) & Q(open_amount__lte=F("total_amount")),
            ),
            models.CheckConstraint(
                name="invoice_due_on_or_after_issue", condition=Q(due_date__gte=F("issue_date"))
            ),
            # A paid invoice owes nothing and knows when it was settled; an open one is not settled.
            models.CheckConstraint(
                name="invoice_paid_means_settled",
                condition=(
                    Q(status=InvoiceStatus.PAID, open_amount=0, settled_on__isnull=False)
                    | ~Q(status=InvoiceStatus.PAID)
                ),
            ),
            models.CheckConstraint(
                name="invoice_open_has_balance",
                condition=Q(status=InvoiceStatus.OPEN, open_amount__gt=0, settled_on__isnull=True)
                | ~Q(status=InvoiceStatus.OPEN),
            ),
            # Only a cancelled invoice has a day of cancellation (invoices
            # cancelled before the day was kept have none).
            models.CheckConstraint(
                name="invoice_cancelled_on_only_if_cancelled",
                condition=Q(cancelled_on__isnull=True) | Q(status=InvoiceStatus.CANCELLED),
            ),
        ]
        indexes = [
            # Aging, dunning planning and the account page read open invoices by
            # customer and due date; paid history is far larger and never needed there.
            models.Index(
                fields=["customer", "due_date"],
                name="invoice_open_by_customer_due",
                condition=Q(status=InvoiceStatus.OPEN),
            ),
            # Payment behaviour reads settled invoices per customer by settlement date.
            models.Index(
                fields=["customer", "settled_on"],
                name="invoice_settled_by_customer",
                condition=Q(status=InvoiceStatus.PAID),
            ),
        ]

    def __str__(self) -> str:
        return self.number

    def clean(self) -> None:
        if self.issue_date and self.due_date and self.due_date < self.issue_date:
            raise ValidationError({"due_date": "The due date cannot be before the issue date."})

    def settled_how(self) -> str:
        """What took the invoice's money off, in words: "paid", "credited"
        (credit notes only, nothing paid) or "paid and credited"."""
        paid = self.allocations.filter(payment__isnull=False).exists()
        if not self.allocations.filter(credit_note__isnull=False).exists():
            return "paid"
        return "paid and credited" if paid else "credited"

    def days_late(self, *, on: dt.date) -> int:
        """Days past due: at settlement for a paid invoice, else as of `on` (0 if not yet due)."""
        end = self.settled_on if self.status == InvoiceStatus.PAID else on
        return max((end - self.due_date).days, 0)

    @property
    def paid_amount(self) -> Decimal:
        return self.total_amount - self.open_amount


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    DIRECT_DEBIT = "direct_debit", "Direct debit"
    CARD = "card", "Card"
    CHEQUE = "cheque", "Cheque"
    CASH = "cash", "Cash"


# What banks leave out when they compare their ids of statement entries: the
# spaces a statement prints them in groups with ("ab12 cd" is AB12CD in the
# CSV export of the same entry), a spreadsheet's no-break space, a pasted tab,
# and the punctuation a statement or a clerk puts between the groups
# ("BANK-4000", "bank_4000" and "BANK/4000" are BANK4000): the banks' own
# (SWIFT's / - ? : ( ) . , ' +) and what else people type there. Listed one
# by one, as the database leaves each out in turn (bank_key): with a longer
# list, SQLite's parser refuses the column's nested expression.
BANK_ID_LEFT_OUT = " \u00a0\t-_/\\.,:;'\"()+#?*"
_BANK_ID_LEFT_OUT_TABLE = dict.fromkeys(map(ord, BANK_ID_LEFT_OUT))


def bank_id_key(text: str) -> str:
    """A bank's id as banks compare it: without spaces and punctuation, in capitals.
    Bank ids are written in Latin letters and digits, whose capitals Python
    and the database agree on (see bank_key)."""
    return text.translate(_BANK_ID_LEFT_OUT_TABLE).upper()


def bank_id_key_in_database(field: str) -> models.Func:
    """bank_id_key, as the database works it out from `field`."""
    expression = F(field)
    for left_out in BANK_ID_LEFT_OUT:
        expression = Replace(expression, Value(left_out), Value(""))
    return Upper(expression)


class Payment(models.Model):
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="payments"
    )
    received_on = models.DateField()
    currency = currency_field()
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    method = models.CharField(
        max_length=16, choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER
    )
    reference = models.CharField(max_length=80, blank=True)
    # The bank's own id of the statement entry, when the import gives one: it
    # tells apart two payments alike in everything else (a customer paying the
    # same invoice twice), which the reference, amount and date cannot.
    bank_reference = models.CharField(max_length=80, blank=True)
    # The id as it is compared (bank_id_key), kept by the database from the id
    # as the file gave it, which is what people are shown: rows recorded
    # before ids were compared so have theirs too.
    bank_key = models.GeneratedField(expression=bank_id_key_in_database("bank_reference"),
                                     output_field=models.CharField(max_length=80), db_persist=True)
    # Reversed as recalled (a transfer booked to the wrong account, which the
    # bank took back): the bank entry is no longer this payment's, and may be
    # recorded on another account. Set by workspace.payment_reverse only.
    bank_id_released = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(name="payment_amount_positive", condition=Q(amount__gt=0)),
            # One bank entry is one payment, whatever account a file gives it:
            # two imports at once, each holding only its own accounts' locks,
            # cannot both record it. A payment recalled from the wrong account
            # keeps the id it came with but no longer holds it. The index
            # serves the payments import's look-up of a file's bank ids among
            # those recorded, too (the standing ones; see imports._Known).
            models.UniqueConstraint(fields=["bank_key"], name="payment_bank_id_once",
                                    condition=~Q(bank_key="") & Q(bank_id_released=False)),
        ]
        indexes = [
            models.Index(fields=["customer", "-received_on"], name="payment_by_customer"),
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.currency)} on {format_day(self.received_on)}"

    def unallocated_amount(self) -> Decimal:
        allocated = self.allocations.aggregate(total=Sum("amount"))["total"] or ZERO
        return self.amount - allocated


class ReversalReason(models.TextChoices):
    RETURNED_DIRECT_DEBIT = "returned_direct_debit", "Direct debit returned"
    BOUNCED_CHEQUE = "bounced_cheque", "Cheque bounced"
    RECALLED = "recalled", "Recalled, or booked to the wrong account"
    OTHER = "other", "Other"


class PaymentReversal(models.Model):
    """A payment the bank took back (a direct debit returned, a cheque that
    bounced, a transfer recalled or booked to the wrong account): the payment
    stays on record, and this says who reversed it, when, why, and what its
    money had settled before (`undone`); its allocations are kept, marked
    with it, and no longer stand (Allocation, workspace.payment_reverse).
    One per payment, which the database holds: a second reversal would reopen
    the invoices twice."""

    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="reversal")
    reason = models.CharField(max_length=24, choices=ReversalReason.choices)
    note = models.CharField(max_length=300, blank=True)
    reversed_on = models.DateField(help_text="The day the bank took the money back.")
    reversed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # What the payment's allocations were, before: [{"invoice" or "charge":
    # its number or id, "amount", "allocated_on", "status" of the invoice}, ...].
    undone = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["-reversed_on", "-id"]
        constraints = [
            models.CheckConstraint(name="reversal_other_says_why",
                                   condition=~Q(reason="other") | ~Q(note="")),
        ]

    def __str__(self) -> str:
        return f"Reversal of {self.payment}"


class CreditNote(models.Model):
    number = models.CharField(max_length=40, unique=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="credit_notes"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_notes",
        help_text="The invoice this note corrects, if it corrects one.",
    )
    issued_on = models.DateField()
    currency = currency_field()
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-issued_on", "-id"]
        constraints = [
            models.CheckConstraint(name="credit_note_amount_positive", condition=Q(amount__gt=0)),
            # One ERP document per number, whatever its capitals ("Cn-1" is
            # CN-1): a second note under it would credit the customer twice.
            # Numbers are stored stripped (workspace._credit_note_terms_check);
            # the index serves the number__iexact look-up that refuses one.
            models.UniqueConstraint(Upper("number"), name="credit_note_number_once"),
        ]

    def __str__(self) -> str:
        return self.number


class FormSubmission(models.Model):
    """A form that sends something to the customer, carried out: its one-time
    token (rendered in the form as it opened), written in the transaction
    that recorded and queued what it sent (services.submission_record). The
    same form sent again (a second click, a retry, another tab) finds its
    token taken and sends nothing."""

    token = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.token)


def allocation_stands(prefix: str = "") -> Q:
    """An allocation as it stands today: not undone by the reversal of its
    payment. `prefix` reaches it through a join ("invoice__allocations__")."""
    return Q(**{f"{prefix}reversal__isnull": True})


def allocation_stood(day) -> Q:
    """An allocation as it stood at the end of `day` (a date, or an
    expression of one): applied by then, and its payment not reversed by then.
    For the figures of a past day, over Allocation.ledger."""
    return Q(applied_on__lte=day) & (Q(reversal__isnull=True) | Q(reversal__reversed_on__gt=day))


class StandingAllocations(models.Manager):
    """Allocations that stand today, the default: every sum of what is paid
    and open now (open amounts, money on account, promises and plans judged,
    invoice copies, statements) reads a reversed payment as reversed without
    saying so. A join that reaches allocations from another model bypasses
    it, and says allocation_stands() itself."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(allocation_stands())


class Allocation(models.Model):
    """Part of a payment or credit note applied to one invoice, or to one late
    fee or interest charge (a payment's rest after its invoices, see
    workspace.payment_record).

    One payment may settle many invoices and one invoice may be settled by
    many partial payments; each pairing is one row, one per day it was
    applied (money on account set against the invoice in two goes). The sum of a payment's
    rows is what it paid off; the rest of it is on account.

    A payment reversed keeps its rows, marked with the reversal: what stands
    today leaves them out (`objects`, the default manager), while the figures
    of a past day read them from `applied_on` until the reversal's day
    (`ledger`, every row ever made; numbers._ledger). History is not
    rewritten: October's receivables read in December as they did in November.
    """

    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    charge = models.ForeignKey(
        "LateCharge", on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    credit_note = models.ForeignKey(
        CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    # The day the money counts from for the payer: the payment's or the credit
    # note's own day (an invoice issued later: its issue day). What is paid
    # when, how late a payer is, read this.
    allocated_on = models.DateField()
    # The day it was set against the invoice or charge: the same day for a
    # payment that named it, the day of the application for money kept on
    # account and set against it later (workspace.credit_apply). Until then
    # the invoice stood open and the money stood on account, so a past day's
    # figures (numbers._ledger, the aged trial balance as of a day) read this,
    # and a month end does not move when money is applied after it.
    applied_on = models.DateField()
    # The payment's reversal, once the bank took the money back: the row no
    # longer stands from the reversal's day on (workspace.payment_reverse).
    reversal = models.ForeignKey(
        PaymentReversal, on_delete=models.PROTECT, null=True, blank=True, editable=False,
        related_name="allocations",
    )

    ledger = models.Manager()
    objects = StandingAllocations()

    class Meta:
        ordering = ["allocated_on", "id"]
        # What stands is the default, whatever order the managers are named
        # in: the related managers (invoice.allocations, payment.allocations)
        # are the default one's, and read what stands too.
        default_manager_name = "objects"
        constraints = [
            models.CheckConstraint(name="allocation_amount_positive", condition=Q(amount__gt=0)),
            # Only a payment is reversed: a credit note's allocation always stands.
            models.CheckConstraint(name="allocation_reversed_is_a_payments",
                                   condition=Q(reversal__isnull=True) | Q(payment__isnull=False)),
            models.CheckConstraint(
                name="allocation_from_payment_xor_credit_note",
                condition=(
                    Q(payment__isnull=False, credit_note__isnull=True)
                    | Q(payment__isnull=True, credit_note__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="allocation_to_invoice_xor_charge",
                condition=(
                    Q(invoice__isnull=False, charge__isnull=True)
                    | Q(invoice__isnull=True, charge__isnull=False)
                ),
            ),
            # Once a day: money on account set against an invoice or a charge
            # again on a later day is a row of its own, so each part keeps its day.
            models.UniqueConstraint(
                fields=["payment", "invoice", "applied_on"], name="allocation_once_per_payment_invoice",
                condition=Q(payment__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["payment", "charge", "applied_on"], name="allocation_once_per_payment_charge",
                condition=Q(payment__isnull=False, charge__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["credit_note", "charge", "applied_on"], name="allocation_once_per_credit_note_charge",
                condition=Q(credit_note__isnull=False, charge__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["credit_note", "invoice", "applied_on"],
                name="allocation_once_per_credit_note_invoice",
                condition=Q(credit_note__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        target = self.invoice.number if self.invoice_id else str(self.charge)
        # In the currency of the money allocated, which its invoice or charge is in too.
        currency = (self.payment or self.credit_note).currency
        return f"{format_money(self.amount, currency)} to {target}"


class WriteOff(models.Model):
    """What an invoice still owed, written off as bad debt: a manager's
    decision, with who, when and why (workspace.invoice_write_off). Always the
    whole open amount, so the invoice's total is its allocations plus this;
    taking off part of what is owed is a credit note's job."""

    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="write_off")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="write_offs"
    )
    # The invoice's currency: what it still owed, in its own units.
    currency = currency_field()
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    reason = models.CharField(max_length=300)
    written_off_on = models.DateField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-written_off_on", "-id"]
        constraints = [
            models.CheckConstraint(name="write_off_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="write_off_has_a_reason", condition=~Q(reason="")),
        ]
        permissions = [
            ("write_off_invoice", "Can write off what an invoice still owes as bad debt"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice.number}: {format_money(self.amount, self.currency)} written off"


class DocumentCounter(models.Model):
    """Gap-free numbering for documents we issue (credit notes, letters).

    Taken under SELECT … FOR UPDATE, never max()+1, so two workers cannot
    hand out the same number.
    """

    prefix = models.CharField(max_length=16, unique=True)
    next_value = models.PositiveBigIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.prefix}{self.next_value}"


class PaymentBehaviour(models.Model):
    """How a customer pays, computed nightly from its invoices (services.behaviour_refresh)."""

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.CASCADE, related_name="behaviour"
    )
    computed_on = models.DateField()
    invoices_settled = models.PositiveIntegerField(default=0)
    invoices_settled_late = models.PositiveIntegerField(default=0)
    avg_days_late = models.DecimalField(max_digits=7, decimal_places=2, default=Decimal("0"))
    weighted_days_late = models.DecimalField(max_digits=7, decimal_places=2, default=Decimal("0"))
    share_paid_late = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0"))
    # Average days late of invoices settled in the last 90 days and the last 365;
    # "recent minus year" above zero means the customer is getting slower.
    avg_days_late_90d = models.DecimalField(max_digits=7, decimal_places=2, null=True)
    avg_days_late_365d = models.DecimalField(max_digits=7, decimal_places=2, null=True)
    last_days_late = models.IntegerField(null=True)
    open_invoices = models.PositiveIntegerField(default=0)
    overdue_invoices = models.PositiveIntegerField(default=0)
    # Of every overdue invoice, whatever its currency: days need no exchange rate.
    max_days_overdue = models.PositiveIntegerField(default=0)
    # Amounts and the counts of open and overdue invoices are in the account
    # currency; invoices in other currencies are counted in
    # other_currency_open_invoices rather than summed at a made-up rate.
    open_amount = money_field()
    overdue_amount = money_field()
    aging_current_amount = money_field()
    aging_1_30_amount = money_field()
    aging_31_60_amount = money_field()
    aging_61_90_amount = money_field()
    aging_over_90_amount = money_field()
    other_currency_open_invoices = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "payment behaviour"

    def __str__(self) -> str:
        return f"Behaviour of {self.customer.name} on {format_day(self.computed_on)}"

    @property
    def trend_days(self) -> Decimal | None:
        if self.avg_days_late_90d is None or self.avg_days_late_365d is None:
            return None
        return self.avg_days_late_90d - self.avg_days_late_365d

    def aging_buckets(self) -> list[tuple[str, Decimal]]:
        return [
            ("Not yet due", self.aging_current_amount),
            ("1–30", self.aging_1_30_amount),
            ("31–60", self.aging_31_60_amount),
            ("61–90", self.aging_61_90_amount),
            ("90+", self.aging_over_90_amount),
        ]


class StepAction(models.TextChoices):
    EMAIL = "email", "E-mail"
    LETTER = "letter", "PDF letter"
    CALL_TASK = "call_task", "Call task for the collector"
    ESCALATE_PRINCIPAL = "escalate_principal", "Escalate to the principal"
    MANAGER_REVIEW = "manager_review", "Manager review"
    CREDIT_HOLD = "credit_hold", "Credit hold"
    SWITCH_TO_COD = "switch_to_cod", "Switch to C.O.D./prepayment"


class Tone(models.IntegerChoices):
    """Ordered: a ladder's tone may stay or get firmer, never softer."""

    FRIENDLY = 1, "Friendly"
    FIRM = 2, "Firm"
    FINAL = 3, "Final"


class LatePaymentPolicyQuerySet(models.QuerySet):
    def chasing(self) -> LatePaymentPolicyQuerySet:
        """Active and with steps: the ladders dunning plans by. A segment
        without one is chased by nobody."""
        return self.filter(is_active=True).filter(
            Exists(DunningStep.objects.in_ladder().filter(policy=OuterRef("pk")))
        )

    def gap_problems(self) -> list[tuple[LatePaymentPolicy, list[str]]]:
        """The policies among these whose minimum gap between contacts
        freezes their ladder as it runs, each with what a save of it would
        be refused with (contact_gap_problems), by name. One saved before the
        gap was checked runs as saved until a manager mends it, and must be
        seen without a save. One query."""
        ladders: dict[int, list[DunningStep]] = {}
        policies: dict[int, LatePaymentPolicy] = {}
        for step in DunningStep.objects.in_ladder().filter(policy__in=self).select_related("policy"):
            ladders.setdefault(step.policy_id, []).append(step)
            policies[step.policy_id] = step.policy
        found = [(policies[pk], problems) for pk, steps in ladders.items()
                 if (problems := policies[pk].gap_problems(steps))]
        return sorted(found, key=lambda policy_problems: policy_problems[0].name)


class LatePaymentPolicy(models.Model):
    name = models.CharField(max_length=120, unique=True)
    segment = models.CharField(
        max_length=20,
        choices=Segment.choices,
        help_text="The payer segment this ladder is for.",
    )
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    auto_send = models.BooleanField(
        default=True, help_text="Send steps automatically; otherwise queue them for a collector to review."
    )
    min_days_between_contacts = models.PositiveSmallIntegerField(default=5)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LatePaymentPolicyQuerySet.as_manager()

    class Meta:
        verbose_name = "late-payment policy"
        verbose_name_plural = "late-payment policies"
        ordering = ["segment", "name"]
        constraints = [
            # Exactly one ladder runs per segment at a time.
            models.UniqueConstraint(
                fields=["segment"], condition=Q(is_active=True), name="policy_one_active_per_segment",
                violation_error_message="This segment already has an active policy; only one ladder runs "
                "per segment at a time. Save this one as not active, or change the active one's steps.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def ladder_problems(self) -> list[str]:
        """What is wrong with the ordered steps, in words a manager understands."""
        return ladder_problems(self.steps.in_ladder(), min_gap=self.min_days_between_contacts)

    def gap_problems(self, steps: Iterable[DunningStep] | None = None) -> list[str]:
        """contact_gap_problems of the policy's minimum gap and its ladder as
        it runs (`steps`, when read already)."""
        steps = self.steps.in_ladder() if steps is None else steps
        return contact_gap_problems(steps, min_gap=self.min_days_between_contacts)


# How far from the due date a step may run, either way: a year. A reminder
# earlier than that comes before the invoice exists; a step later than that
# chases a debt that belongs with a collector or a lawyer by then, not with a
# ladder. The policy simulator lets a step be tried within the same bounds.
STEP_DAYS_FROM_DUE_AT_MOST = 365
# The longest time to pay a step may give. A notice's deadline is a matter of
# days or weeks: the next step waits for it, so a longer one holds the ladder
# still for months, and one of thousands of days lies past the calendar's end
# (the planner could not write it). A step saved before this bound is planned
# with this many days at most (DunningStep.days_to_pay).
PAY_BY_DAYS_AT_MOST = 90


def step_out_of_bounds(step: DunningStep) -> list[str]:
    """Where a step goes past the bounds a step keeps (too far from the due
    date, too long to pay), in words a manager understands."""
    problems = []
    if abs(step.day_offset) > STEP_DAYS_FROM_DUE_AT_MOST:
        side = "after" if step.day_offset > 0 else "before"
        problems.append(f"Step {step.position} runs on day {step.day_offset}; a step runs at most "
                        f"{STEP_DAYS_FROM_DUE_AT_MOST} days {side} the due date.")
    if step.pay_by_days > PAY_BY_DAYS_AT_MOST:
        problems.append(f"Step {step.position} gives {step.pay_by_days} days to pay; a step gives at "
                        f"most {PAY_BY_DAYS_AT_MOST}.")
    return problems


def ladder_problems(steps: Iterable[DunningStep], *, min_gap: int,
                    kept_as_saved: Iterable[DunningStep] = ()) -> list[str]:
    """What is wrong with a ladder of steps (saved or not yet; retired ones
    are no part of it) and its policy's minimum gap between contacts, in
    position order: a step the planner cannot follow (too far from the due
    date, too long to pay), two steps at one place, days that do not
    increase, a tone that softens, a step that would overtake the pay-by date
    the one before gave, a gap longer than the ladder (contact_gap_problems).
    The policy's page, a step's page, putting a ladder in force and the
    policy simulator all ask here, so that what one refuses none saves.

    Steps in `kept_as_saved` (saved before the bounds existed, their day and
    days to pay unchanged since) are not held to the bounds: the planner
    runs them (a notice gives PAY_BY_DAYS_AT_MOST days at most), and were
    they, nothing else on the ladder could be saved until they are mended.
    The admin names them with how to mend them (admin.step_bounds_warnings)."""
    kept = [id(step) for step in kept_as_saved]
    problems: list[str] = []
    for step in sorted(steps, key=lambda s: s.position):
        if id(step) not in kept:
            problems += step_out_of_bounds(step)
    for earlier, later in itertools.pairwise(sorted(steps, key=lambda s: s.position)):
        if later.position == earlier.position:
            problems.append(f"Two steps are at position {later.position}; each step needs one of its own.")
        if later.day_offset <= earlier.day_offset:
            problems.append(
                f"Step {later.position} runs on day {later.day_offset}, not after step "
                f"{earlier.position} (day {earlier.day_offset})."
            )
        if later.tone < earlier.tone:
            problems.append(
                f"Step {later.position} is {later.get_tone_display().lower()}, softer than "
                f"step {earlier.position}; tone may only get firmer."
            )
        pay_by = earlier.day_offset + earlier.pay_by_days
        if later.day_offset < pay_by:
            problems.append(
                f"Step {later.position} (day {later.day_offset}) would overtake step "
                f"{earlier.position}'s pay-by date (day {pay_by})."
            )
    return problems + contact_gap_problems(steps, min_gap=min_gap)


def contact_gap_problems(steps: Iterable[DunningStep], *, min_gap: int) -> list[str]:
    """A minimum gap between contacts longer than the ladder, first step to
    last. The planner never contacts an account sooner than the gap after its
    last contact, so such a gap decides every later step's day on its own:
    365 days put each step after the first a year after the one before, and
    the credit hold and C.O.D. at the end of the ladder never came."""
    steps = sorted(steps, key=lambda s: s.position)
    if len(steps) < 2:
        return []
    first, last = steps[0], steps[-1]
    span = last.day_offset - first.day_offset
    if min_gap <= span:
        return []
    return [f"At least {min_gap} days between contacts is longer than the {span} days from step "
            f"{first.position} to step {last.position}: every step after the first would come that long "
            "after the one before, whatever its day. Give a shorter gap."]


# What an account that had a step got (what was sent, asked and charged) and
# where its cycle has stood on the ladder since (the planner reads the position
# of the last step it had): kept as they were once the step is taken. Its late
# fees (StepFee rows) are kept as they were too.
STEP_ON_RECORD = ("position", "day_offset", "action", "tone", "pay_by_days", "interest_rate_percent")


class DunningStepQuerySet(models.QuerySet):
    def in_ladder(self) -> DunningStepQuerySet:
        """The steps of the ladder as it runs now: a retired step stays on
        record for the accounts that had it, and is taken no more."""
        return self.filter(retired=False)

    def with_taken(self) -> DunningStepQuerySet:
        """Each step with whether it has been taken (see DunningStep.is_taken),
        in the same query: a ladder's page asks it of every step."""
        return self.annotate(was_taken=Exists(DunningAction.objects.filter(step=OuterRef("pk"))))


class DunningStep(models.Model):
    """One rung of a ladder. Once taken for an account (it has actions), what
    it sent and charged and its place on the ladder are what the timeline,
    letters, runs and reports say that account got, and where the planner
    says its cycle stands (STEP_ON_RECORD): the admin keeps them as they
    were, and the ladder changes by retiring the step and adding a new one."""

    policy = models.ForeignKey(LatePaymentPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    day_offset = models.SmallIntegerField(
        help_text="Days relative to the due date; negative means before it is due."
    )
    action = models.CharField(max_length=24, choices=StepAction.choices)
    tone = models.PositiveSmallIntegerField(choices=Tone.choices, default=Tone.FRIENDLY)
    pay_by_days = models.PositiveSmallIntegerField(
        default=7, help_text="The letter asks for payment within this many days."
    )
    interest_rate_percent = models.DecimalField(
        "annual interest rate (%)", max_digits=5, decimal_places=2, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    retired = models.BooleanField(
        default=False,
        help_text="A retired step is no longer taken; accounts that had it go on to the step after it. "
                  "It stays on record with them, and a new step may take its place and day.",
    )

    objects = DunningStepQuerySet.as_manager()

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            # The admin shows these messages to the manager who edits the ladder.
            # Among the ladder's steps only: a retired step keeps its place
            # and day on record, and its replacement takes them over.
            models.UniqueConstraint(fields=["policy", "position"], name="step_position_unique",
                                    condition=Q(retired=False),
                                    violation_error_message="This policy already has a step at this "
                                    "position."),
            models.UniqueConstraint(fields=["policy", "day_offset"], name="step_day_unique",
                                    condition=Q(retired=False),
                                    violation_error_message="This policy already has a step on this day."),
            models.CheckConstraint(name="step_pay_by_positive", condition=Q(pay_by_days__gt=0),
                                   violation_error_message="A step must give at least 1 day to pay."),
            models.CheckConstraint(
                name="step_interest_not_negative", condition=Q(interest_rate_percent__gte=0),
                violation_error_message="An interest rate cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy}: step {self.position} ({self.get_action_display()}, day {self.day_offset})"

    @property
    def days_to_pay(self) -> int:
        """The days to pay a notice of this step gives: its own, within
        PAY_BY_DAYS_AT_MOST (a step saved before that bound asked for more)."""
        return min(self.pay_by_days, PAY_BY_DAYS_AT_MOST)

    def is_taken(self) -> bool:
        """Some account has had this step, whatever became of the action: as
        the step was loaded, if it was loaded `with_taken()`."""
        if self.pk is None:
            return False
        known = getattr(self, "was_taken", None)
        return self.actions.exists() if known is None else known

    def charges_anything(self) -> bool:
        """A notice of this step may carry a late fee or interest."""
        return self.interest_rate_percent > 0 or (self.pk is not None and bool(self.fees.all()))

    def fees_text(self) -> str:
        """`"EUR 40.00 / GBP 35.00"` (one fee per currency, not a sum), or "None"."""
        return " / ".join(format_money(fee.amount, fee.currency) for fee in self.fees.all()) or "None"


class StepFee(models.Model):
    """A step's fixed late fee in one currency, charged once per notice that
    lists an invoice in that currency: each currency is its own debt, so a
    notice listing EUR and GBP invoices carries the EUR fee and the GBP fee,
    and one listing a currency the step has no fee in carries none for it
    (never converted: 40 in euros is not 40 in yen)."""

    step = models.ForeignKey(DunningStep, on_delete=models.CASCADE, related_name="fees")
    currency = currency_field()
    # No default: a fee of 0 is no fee, and the admin asks for the amount.
    amount = money_field(default=models.NOT_PROVIDED)

    class Meta:
        ordering = ["currency"]
        constraints = [
            models.UniqueConstraint(fields=["step", "currency"], name="step_fee_per_currency",
                                    violation_error_message="This step already has a late fee in this "
                                    "currency."),
            models.CheckConstraint(name="step_fee_positive", condition=Q(amount__gt=0),
                                   violation_error_message="A late fee must be more than 0; to charge "
                                   "none in a currency, leave the currency out."),
        ]

    def __str__(self) -> str:
        return f"Late fee {format_money(self.amount, self.currency)}"


class PolicyMinimum(models.Model):
    """Below this overdue total in a currency, a step waits rather than chase small change."""

    policy = models.ForeignKey(LatePaymentPolicy, on_delete=models.CASCADE, related_name="minimums")
    currency = currency_field()
    min_amount = money_field(validators=[MinValueValidator(Decimal("0"))])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "currency"], name="policy_minimum_per_currency",
                                    violation_error_message="This policy already has a minimum for this "
                                    "currency."),
            models.CheckConstraint(name="policy_minimum_not_negative", condition=Q(min_amount__gte=0),
                                   violation_error_message="A minimum cannot be negative."),
        ]

    def __str__(self) -> str:
        return f"{self.policy}: {format_money(self.min_amount, self.currency)}"


class LadderStamp(models.Model):
    """One row whose `stamp` the database itself sets anew, by triggers
    (migration 0071), whenever a policy, a step, a minimum or a step's fee is
    written, however it is written (a form, an update in bulk, a database
    tool). A process that read the ladders keeps them while the stamp is the
    one it read them under (dunning.ladders). A random value, not a counter:
    a transaction rolled back takes its count back, and the next change would
    count to a number already seen with other ladders."""

    stamp = models.CharField(max_length=36)

    def __str__(self) -> str:
        return self.stamp


class PauseKind(models.TextChoices):
    DISPUTE = "dispute", "Open dispute"
    PROMISE = "promise", "Promise to pay"
    PAYMENT_PLAN = "payment_plan", "Payment plan"
    EXCEPTION = "exception", "Approved exception"
    MANUAL_HOLD = "manual_hold", "Manual hold"
    # An invoice a write-off request names, while it waits for a manager: the
    # collector has stopped pursuing it, so no firmer step goes out about it
    # meanwhile. Lifted when the request is decided or closes undecided.
    WRITE_OFF = "write_off", "Write-off waiting for a manager"


class DunningPauseQuerySet(models.QuerySet):
    def active(self, *, on: dt.date) -> DunningPauseQuerySet:
        return self.filter(
            Q(ends_on__isnull=True) | Q(ends_on__gte=on), starts_on__lte=on, lifted_at__isnull=True
        )


class DunningPause(models.Model):
    """Stops dunning for what it covers — one invoice, or the whole account when
    `invoice` is empty — from `starts_on` to `ends_on` (open-ended while a
    dispute is open or a write-off waits for a manager), unless lifted
    earlier. Disputes, promises, payment plans, exceptions and write-offs
    waiting each keep their pause row in step with themselves."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="dunning_pauses"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="dunning_pauses"
    )
    kind = models.CharField(max_length=16, choices=PauseKind.choices)
    reason = models.CharField(max_length=300)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
        help_text="Who answers for this pause.",
    )
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # What the pause stands for, when it stands for something: lifting the
    # promise, plan, dispute or exception lifts its pauses with it.
    promise = models.ForeignKey(
        "Promise", on_delete=models.PROTECT, null=True, blank=True, related_name="pauses"
    )
    plan = models.ForeignKey(
        "PaymentPlan", on_delete=models.PROTECT, null=True, blank=True, related_name="pauses"
    )
    dispute = models.ForeignKey(
        "Dispute", on_delete=models.PROTECT, null=True, blank=True, related_name="pauses"
    )
    exception = models.ForeignKey(
        "ExceptionRequest", on_delete=models.PROTECT, null=True, blank=True, related_name="pauses"
    )

    objects = DunningPauseQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_on", "-id"]
        constraints = [
            models.CheckConstraint(
                name="pause_ends_after_it_starts",
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=F("starts_on")),
            ),
            models.CheckConstraint(
                name="pause_dispute_names_its_invoice",
                condition=~Q(kind="dispute") | Q(invoice__isnull=False),
            ),
            # A dispute and a write-off waiting for a manager last until decided.
            models.CheckConstraint(
                name="pause_only_a_dispute_or_write_off_is_open_ended",
                condition=Q(kind__in=["dispute", "write_off"]) | Q(ends_on__isnull=False),
            ),
        ]
        indexes = [
            # Planning excludes paused invoices and accounts: it reads the pauses
            # not yet lifted, by customer.
            models.Index(
                fields=["customer", "invoice"], name="pause_unlifted_by_customer",
                condition=Q(lifted_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        until = format_day(self.ends_on) if self.ends_on else "resolved"
        return f"{self.held_said} until {until}"

    @property
    def held_said(self) -> str:
        """What the pause holds, in the words every page uses: "EUR 4,000.00
        of INV-1 in dispute" (a dispute of part of it, disputed_in_part),
        "Open dispute on INV-1", "Manual hold on the account", and for
        extended terms on the whole account the invoices they hold (holds)."""
        part = self.disputed_in_part()
        if part is not None:
            return f"{format_money(part, self.invoice.currency)} of {self.invoice.number} in dispute"
        if self.invoice_id is not None:
            return f"{self.get_kind_display()} on {self.invoice.number}"
        if self.account_terms:
            return (f"Extended terms on the invoices issued by {format_day(self.starts_on)} that fall due "
                    "before their end")
        return f"{self.get_kind_display()} on the account"

    def disputed_in_part(self) -> Decimal | None:
        """What of its invoice the pause's dispute holds back, when that is
        part of what the invoice owes now: dunning chases the rest (as
        dunning.DISPUTED_IN_PART reads it in SQL). None for any other pause,
        one of a dispute of all that is open included (a payment of the rest
        since makes it so), which holds the whole invoice."""
        if self.kind != PauseKind.DISPUTE or self.dispute_id is None:
            return None
        amount = self.dispute.disputed_amount
        return None if disputed_in_full(amount, self.invoice.open_amount) else amount

    def holds(self, invoice: Invoice) -> bool:
        """Whether this pause (in force) holds `invoice`: its own, or one of
        its account's that the pause covers (account_pause_holds, the same
        rule for a query; the exception loaded with the pause)."""
        if self.invoice_id is not None:
            return self.invoice_id == invoice.pk
        if self.customer_id != invoice.customer_id:
            return False
        if self.account_terms:
            return invoice.issue_date <= self.starts_on and invoice.due_date < self.ends_on
        return True

    @property
    def account_terms(self) -> bool:
        """Extended terms on the whole account, which hold part of it only."""
        return (self.invoice_id is None and self.kind == PauseKind.EXCEPTION and self.exception_id is not None
                and self.exception.kind == ExceptionKind.EXTENDED_TERMS)


def account_pause_holds() -> Q:
    """For a DunningPause query inside an Invoice one: a pause of the outer
    invoice's whole account that holds it (DunningPause.holds, the same rule
    for one pause; the planner's SQL in dunning._held_sql).

    Extended terms on the whole account hold what the manager approved
    (workspace.extended_terms_cover): the invoices the account owed the day
    they were granted that fall due before they end. One falling due on
    their end or later has as long by its own terms, and one issued since
    was never asked about: each follows its own terms, its reminder before
    the due date included. Every other pause of the whole account holds all
    of it."""
    terms = Q(kind=PauseKind.EXCEPTION, exception__kind=ExceptionKind.EXTENDED_TERMS)
    return Q(invoice__isnull=True, customer=OuterRef("customer_id")) & (
        ~terms | Q(starts_on__gte=OuterRef("issue_date"), ends_on__gt=OuterRef("due_date"))
    )


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"


class DunningRun(models.Model):
    """The dunning work for one date. Starting the same date again resumes it."""

    run_date = models.DateField(unique=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Empty when the nightly schedule started it.",
    )
    # Progress of planning: customers with a primary key up to this one are planned.
    planned_through_customer_id = models.BigIntegerField(default=0)
    # Accounts whose step was due but waited for a manager's decision on a
    # request (dunning.requests_holding): planned nothing, counted with why.
    waited_for_decision = models.PositiveIntegerField(default=0)
    planned_at = models.DateTimeField(
        null=True, blank=True, help_text="When planning reached the last customer."
    )

    class Meta:
        ordering = ["-run_date"]

    def __str__(self) -> str:
        return f"Dunning run {format_day(self.run_date)} ({self.get_status_display()})"


class MissCause(models.TextChoices):
    """Why a customer is behind, as the collector found out; it steers the treatment."""

    STUFF_HAPPENS = "stuff_happens", "Stuff happens (offer a payment plan)"
    RED_TAPE = "red_tape", "Red tape (re-send the invoice to the right AP person)"
    SPECIAL_BOND = "special_bond", "Special bond (personal treatment)"
    CANNOT_PAY = "cannot_pay", "Cannot pay (escalate fast)"


class DunningCycle(models.Model):
    """One stretch of a customer being behind: it opens when an invoice comes
    within reach of the ladder's first step and closes when nothing open is
    left in reach. Within a cycle each step is taken at most once, in order."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="dunning_cycles"
    )
    number = models.PositiveIntegerField()
    opened_on = models.DateField()
    closed_on = models.DateField(null=True, blank=True)
    cause = models.CharField(max_length=16, choices=MissCause.choices, blank=True)
    cause_noted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Red tape: the overdue invoices were re-sent to the right AP person on this
    # day. Claimed with a conditional update, so a repeated task re-sends nothing.
    invoices_resent_on = models.DateField(null=True, blank=True)
    # A manager lifted the account's credit hold, or put it back from C.O.D.
    # or prepayment, on this day while the cycle was open: a decision against
    # that step for the rest of the cycle, as a decline is (dunning.declined_in).
    credit_hold_lifted_on = models.DateField(null=True, blank=True)
    cod_lifted_on = models.DateField(null=True, blank=True)
    # The day the first request that held the account's next step in this
    # cycle was asked (recorded by the run that first waited for it): later
    # requests hold the step only within DUNNING_WAITS_FOR_DECISION_DAYS of
    # it (dunning.requests_holding), so a request withdrawn and asked again
    # does not start the days again.
    decision_awaited_from = models.DateField(null=True, blank=True)
    # A collector e-mailed a copy of an invoice during the cycle, asking for
    # payment by a date: the next step waits for it as for a notice's, and
    # the minimum gap counts from the copy.

    class Meta:
        ordering = ["customer", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "number"], name="cycle_number_per_customer"),
            # At most one open cycle per customer, whatever two planners do at once.
            models.UniqueConstraint(
                fields=["customer"], condition=Q(closed_on__isnull=True), name="cycle_one_open_per_customer"
            ),
            models.CheckConstraint(
                name="cycle_closes_after_it_opens",
                condition=Q(closed_on__isnull=True) | Q(closed_on__gte=F("opened_on")),
            ),
        ]

    def __str__(self) -> str:
        return f"Cycle {self.number} of {self.customer.name}"


class ActionStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    IN_REVIEW = "in_review", "Waiting for a collector's review"
    AWAITING_APPROVAL = "awaiting_approval", "Waiting for a manager's approval"
    SENDING = "sending", "Sending"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


# Steps that told the customer nothing.
NOT_CARRIED_OUT = [ActionStatus.SKIPPED, ActionStatus.FAILED]


def why_not_carried_out(status: str, error: str, skip_reason: str) -> str:
    """Why a step that was skipped or failed told the customer nothing: its
    error, else the reason it was skipped; empty for any other step."""
    return (error or skip_reason) if status in NOT_CARRIED_OUT else ""


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    LETTER = "letter", "Letter"
    PHONE = "phone", "Phone call"
    INTERNAL = "internal", "Internal (review, hold)"


class DunningAction(models.Model):
    """One step taken for one customer in one cycle: a communication listing
    every invoice it covers, a call task, a review or a hold."""

    run = models.ForeignKey(DunningRun, on_delete=models.PROTECT, related_name="actions")
    cycle = models.ForeignKey(DunningCycle, on_delete=models.PROTECT, related_name="actions")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="dunning_actions"
    )
    step = models.ForeignKey(DunningStep, on_delete=models.PROTECT, related_name="actions")
    status = models.CharField(max_length=20, choices=ActionStatus.choices, default=ActionStatus.PLANNED)
    planned_on = models.DateField()
    pay_by = models.DateField()
    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    recipient = models.ForeignKey(
        "customers.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recipient_address = models.CharField(max_length=300, blank=True)
    channel_note = models.CharField(
        max_length=300, blank=True, help_text='Why this channel or person, e.g. "no e-mail address: letter".'
    )
    skip_reason = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the last attempt was counted, by the database's clock (the one every
    # host reads alike), and the token that attempt claims the step by: a
    # time read back would be compared as text, and SQLite writes its own
    # clock's times with other digits than Python's.
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    sweep_after = models.DateTimeField(
        null=True, blank=True,
        help_text="When the delivery sweep may hand a step still planned to the workers again: "
                  "after its hand-over, or once a put-off attempt's wait is over.",
    )
    done_at = models.DateTimeField(null=True, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    letter_pdf = models.FileField(upload_to="letters/%Y/%m/", blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    printed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the letter left the print queue for the post."
    )

    class Meta:
        ordering = ["-planned_on", "-id"]
        constraints = [
            # Invariant 1: never the same step twice in the same overdue cycle,
            # whatever crashes, retries, duplicate beats or parallel workers do.
            models.UniqueConstraint(fields=["cycle", "step"], name="action_once_per_cycle_step"),
        ]
        indexes = [
            # Delivery sweeps pick up planned actions of a run, oldest first.
            models.Index(
                fields=["run", "id"], name="action_planned_by_run",
                condition=Q(status="planned"),
            ),
            models.Index(fields=["customer", "-planned_on"], name="action_by_customer"),
            # Letters written and not yet posted: the print queue, and the daily
            # withdrawal of those made moot (delivery.letters_withdraw_moot),
            # without reading every action ever taken.
            models.Index(
                fields=["done_at", "id"], name="action_letter_unprinted",
                condition=Q(channel="letter", status="done", printed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step} for {self.customer.name} ({self.get_status_display()})"

    @property
    def why_not_carried_out(self) -> str:
        return why_not_carried_out(self.status, self.error, self.skip_reason)


class DunningActionInvoice(models.Model):
    """An invoice listed on an action, with its balance as it stood then."""

    action = models.ForeignKey(DunningAction, on_delete=models.CASCADE, related_name="lines")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="dunning_lines")
    open_amount = money_field()
    currency = currency_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["action", "invoice"], name="action_line_once_per_invoice"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice.number} on {self.action}"


def lists_open_invoice() -> models.Exists:
    """For a DunningAction query: some invoice the action lists is still open.
    A letter not yet posted that lists none would ask for money already
    received (forms.letters_in_queue, delivery.letters_withdraw_moot)."""
    return models.Exists(DunningActionInvoice.objects.filter(
        action=models.OuterRef("pk"), invoice__status=InvoiceStatus.OPEN, invoice__open_amount__gt=0
    ))


class PaperKind(models.TextChoices):
    INVOICE_COPY = "invoice_copy", "Invoice copy"
    STATEMENT = "statement", "Statement of account"


class PaperDocument(models.Model):
    """An invoice copy or a statement a collector sent to a contact who takes
    paper (or has no usable e-mail address): written as a PDF, it waits in the
    print queue with the dunning letters until someone prints and posts it.
    Not a DunningAction: it belongs to no run, cycle or step. A copy's pay-by
    date holds the ladder back as an e-mailed copy's does, unless it was
    withdrawn (dunning.copies_told)."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="paper_documents"
    )
    kind = models.CharField(max_length=16, choices=PaperKind.choices)
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="paper_copies",
        help_text="The invoice copied; empty for a statement.",
    )
    recipient = models.ForeignKey(
        "customers.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recipient_name = models.CharField(max_length=200)
    recipient_address = models.TextField()
    pdf = models.FileField(upload_to="letters/%Y/%m/")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Named as a letter's: the print queue lists both in one order (views.QUEUE_ORDER).
    done_at = models.DateTimeField(help_text="When it was written and joined the print queue.")
    printed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it left the print queue for the post."
    )
    printed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # A statement of an account with nothing to pay (it shows a credit, say)
    # asks for nothing: no payment makes it moot (paper.documents_withdraw_moot).
    asks_payment = models.BooleanField(
        default=True, help_text="It asked for something to be paid when it was written."
    )
    # Taken out of the queue before the post: by a person (withdrawn_by, with
    # the reason), or by itself once what it asked for was settled (no one).
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    withdrawn_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-done_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="paper_copy_names_its_invoice",
                condition=Q(kind="statement") | Q(invoice__isnull=False),
            ),
            models.CheckConstraint(
                name="paper_posted_by_someone",
                condition=Q(printed_at__isnull=True) | Q(printed_by__isnull=False),
            ),
            models.CheckConstraint(
                name="paper_posted_or_withdrawn",
                condition=Q(printed_at__isnull=True) | Q(withdrawn_at__isnull=True),
            ),
        ]
        indexes = [
            # The print queue reads the documents neither posted nor withdrawn, oldest first.
            models.Index(
                fields=["done_at", "id"], name="paper_unprinted",
                condition=Q(printed_at__isnull=True, withdrawn_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        what = f"Copy of {self.invoice.number}" if self.invoice_id else self.get_kind_display()
        return f"{what} to {self.recipient_name} ({self.customer.name})"


class ChargeKind(models.TextChoices):
    LATE_FEE = "late_fee", "Late fee"
    INTEREST = "interest", "Interest"


class LateChargeQuerySet(models.QuerySet):
    def standing(self) -> LateChargeQuerySet:
        """Owed still: neither paid off, waived nor cancelled. Such a charge
        stays on the account (on every notice, and on the worklist once its
        invoices are paid) until it is paid or a manager waives it, whatever
        its cycle."""
        return self.filter(waived_at__isnull=True, cancelled_at__isnull=True, open_amount__gt=0)


class LateCharge(models.Model):
    """A late fee or interest a dunning step added. Kept apart from the invoices
    it concerns, so partial payments reduce the invoices and the charges stay
    explicit; waiving one is a manager's decision, recorded, never a silent loss.
    Paid through Allocation rows, like an invoice; `open_amount` is what is
    left to pay."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="late_charges"
    )
    action = models.ForeignKey(DunningAction, on_delete=models.PROTECT, related_name="charges")
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="late_charges",
        help_text="The invoice interest was charged on; empty for a fee on the whole notice.",
    )
    kind = models.CharField(max_length=16, choices=ChargeKind.choices)
    currency = currency_field()
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    open_amount = money_field()
    basis = models.CharField(
        max_length=200, blank=True, help_text='How it was worked out, e.g. "EUR 500.00 × 8% × 30/365".'
    )
    # Interest: the rate and the [balance, days] it ran on, so a notice can
    # write the working out in its own language; `basis` is the English record.
    rate_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    stretches = models.JSONField(default=list, blank=True)
    # Interest: the last day it covers. The next notice of the cycle charges
    # from the day after, so no day is charged twice.
    interest_through = models.DateField(null=True, blank=True)
    waived_at = models.DateTimeField(null=True, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    waiver_note = models.CharField(max_length=300, blank=True)
    # Cancelled: the notice that charged it never reached the customer (a
    # letter withdrawn before the post). Kept, with why, when and by whom
    # (nobody: the nightly refresh), rather than deleted; it counts in no
    # total, and nothing of it was paid.
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cancel_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LateChargeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(name="charge_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="charge_open_amount_within_amount",
                condition=Q(open_amount__gte=0, open_amount__lte=F("amount")),
            ),
            # One fee per notice and currency, and interest once per invoice per
            # notice. (Two partial constraints rather than NULLS NOT DISTINCT,
            # which SQLite lacks.)
            models.UniqueConstraint(
                fields=["action", "kind", "invoice"], name="charge_once_per_action_invoice",
                condition=Q(invoice__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["action", "kind", "currency"], name="charge_once_per_action_currency",
                condition=Q(invoice__isnull=True),
            ),
            models.CheckConstraint(
                name="charge_waiver_is_complete",
                condition=Q(waived_at__isnull=True, waived_by__isnull=True)
                | Q(waived_at__isnull=False, waived_by__isnull=False),
            ),
            models.CheckConstraint(
                name="charge_cancellation_is_complete",
                condition=Q(cancelled_at__isnull=True, cancelled_by__isnull=True, cancel_reason="")
                | (Q(cancelled_at__isnull=False) & ~Q(cancel_reason="")),
            ),
            # Forgiven by a manager or never asked for: one end, not two.
            models.CheckConstraint(
                name="charge_waived_or_cancelled_not_both",
                condition=Q(waived_at__isnull=True) | Q(cancelled_at__isnull=True),
            ),
        ]
        indexes = [
            # Charges still owed, per account (LateChargeQuerySet.standing):
            # every notice lists them and the worklist's nightly refresh looks
            # for those left after the invoices.
            models.Index(fields=["customer"], name="charge_standing",
                         condition=Q(waived_at__isnull=True, cancelled_at__isnull=True, open_amount__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_money(self.amount, self.currency)}"


# --- The collector's workspace: calls, promises, plans, disputes, exceptions -------


# Zero is the strictest limit there is: a negative one would mean the same, in confusing words.
LIMIT_NOT_NEGATIVE = "A limit cannot be negative; 0 sends every such request to a manager."


# How long a collector may pause dunning alone: a year at most, as long as a
# manager's exception may hold it (workspace.EXCEPTION_MONTHS_AT_MOST); 0
# sends every pause to a manager.
PAUSE_DAYS_AT_MOST = 365
# How far a collector's own payment plan may run: a month at least (to send
# every plan to a manager, set the plan approval amount to 0), three years at
# most, the longest plan of monthly instalments a plan may have
# (workspace.PLAN_INSTALMENTS_AT_MOST).
PLAN_MONTHS_AT_LEAST, PLAN_MONTHS_AT_MOST = 1, 36


class CollectionRules(models.Model):
    """The limits a manager sets for collectors, one row (pk 1).

    Beyond them a collector's move becomes a request a manager decides.
    """

    max_pause_days = models.PositiveSmallIntegerField(
        default=14, help_text="A collector may pause dunning this many days; longer needs a manager.",
        validators=[MaxValueValidator(PAUSE_DAYS_AT_MOST, (
            f"A collector may pause dunning for at most {PAUSE_DAYS_AT_MOST} days: even a manager's "
            "exception holds it a year at most. 0 sends every pause to a manager."
        ))],
    )
    promise_grace_days = models.PositiveSmallIntegerField(
        default=3, help_text="Days after a promised date before the promise counts as broken."
    )
    instalment_grace_days = models.PositiveSmallIntegerField(
        default=3, help_text="Days after an instalment's due date before it counts as missed."
    )
    dispute_answer_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days a department has to answer a dispute before it lands on the worklist."
    )
    plan_approval_above_amount = money_field(
        default=Decimal("5000.00"), validators=[MinValueValidator(Decimal("0"), LIMIT_NOT_NEGATIVE)],
        help_text="Payment plans above this amount (in the default currency, the account's plans in force "
        "together) need a manager; plans in any other currency always do.",
    )
    plan_first_within_days = models.PositiveSmallIntegerField(
        default=30, help_text="A collector may agree a payment plan whose first instalment is at most this "
        "many days away; a later one needs a manager (a plan paying nothing for months is a pause).",
    )
    plan_max_months = models.PositiveSmallIntegerField(
        default=12, help_text="A collector may agree a payment plan whose last instalment is at most this "
        "many months away; a longer plan needs a manager.",
        validators=[
            MinValueValidator(PLAN_MONTHS_AT_LEAST, (
                f"A payment plan a collector agrees alone may run at least {PLAN_MONTHS_AT_LEAST} month: "
                "with 0 no plan would be theirs to agree. To send every plan to a manager, set the plan "
                "approval amount to 0."
            )),
            MaxValueValidator(PLAN_MONTHS_AT_MOST, (
                f"A payment plan a collector agrees alone may run at most {PLAN_MONTHS_AT_MOST} months, "
                f"the longest plan of monthly instalments there is ({PLAN_MONTHS_AT_MOST} instalments)."
            )),
        ],
    )
    credit_without_manager_amount = money_field(
        default=Decimal("1000.00"), validators=[MinValueValidator(Decimal("0"), LIMIT_NOT_NEGATIVE)],
        help_text="Collectors may settle disputes by credit notes or corrected invoices taking off up to "
        "this amount per invoice, all disputes on it together (in the default currency); more, or any "
        "other currency, is a manager's decision.",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "collection rules"
        constraints = [
            models.CheckConstraint(name="collection_rules_single_row", condition=Q(pk=1)),
            models.CheckConstraint(name="rules_plan_limit_not_negative",
                                   condition=Q(plan_approval_above_amount__gte=0),
                                   violation_error_message=LIMIT_NOT_NEGATIVE),
            models.CheckConstraint(name="rules_credit_limit_not_negative",
                                   condition=Q(credit_without_manager_amount__gte=0),
                                   violation_error_message=LIMIT_NOT_NEGATIVE),
        ]

    def __str__(self) -> str:
        return "Collection rules"

    @classmethod
    def current(cls) -> CollectionRules:
        """The rules in force. Their row is made by migration 0077 (and again
        after a flush, apps._rules_row_create); a database without it (emptied
        by hand) reads the defaults, unsaved: a page that reads the rules
        never writes."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)

    def bounds_problems(self) -> list[str]:
        """The limits as saved that a save would refuse now, in the words it
        would refuse them with (the fields' own validators), one sentence
        each. Limits saved before their bounds existed (migration 0058 added
        them) go on holding as saved until a manager mends them."""
        try:
            self.clean_fields(exclude=["updated_by"])
        except ValidationError as error:
            return [message for messages in error.message_dict.values() for message in messages]
        return []

    def plan_needs_approval(self, *, amount: Decimal, currency: str) -> bool:
        return currency != settings.DEFAULT_CURRENCY or amount > self.plan_approval_above_amount

    def credit_needs_manager(self, *, amount: Decimal, currency: str) -> bool:
        return currency != settings.DEFAULT_CURRENCY or amount > self.credit_without_manager_amount


class MoneyPointScale(models.Model):
    """How much overdue in one currency makes one point of the worklist's
    priority. Amounts are never converted (the product knows no exchange
    rates): without a scale a currency counts 1 point per 1,000, which puts
    1,000 yen level with 1,000 euros, so a manager sets e.g. JPY 150,000."""

    rules = models.ForeignKey(CollectionRules, on_delete=models.CASCADE, related_name="money_scales")
    currency = currency_field()
    # No default: the admin asks for the amount.
    per_point_amount = money_field(
        "1 point per", default=models.NOT_PROVIDED,
        help_text="Overdue in this currency that makes one point of an item's money part.",
    )

    class Meta:
        verbose_name = "worklist money scale"
        ordering = ["currency"]
        constraints = [
            models.UniqueConstraint(fields=["rules", "currency"], name="money_scale_per_currency",
                                    violation_error_message="The worklist already has a scale for this "
                                    "currency."),
            # The points are the overdue amount divided by it.
            models.CheckConstraint(name="money_scale_positive", condition=Q(per_point_amount__gt=0),
                                   violation_error_message="A point must stand for more than 0."),
        ]

    def __str__(self) -> str:
        return f"1 point per {format_money(self.per_point_amount, self.currency)} overdue"


class HolidayQuerySet(models.QuerySet):
    def days_after(self, day: dt.date) -> frozenset[dt.date]:
        """The office's holidays after `day`, for arcrm.dates.next_working_day
        and working_day_from (one query). All of them, not only the next few
        weeks': a pay-by date may lie further ahead, and an office has a
        handful of holidays a year."""
        return frozenset(self.filter(day__gt=day).values_list("day", flat=True))


class Holiday(models.Model):
    """A day the office is shut (a public holiday, the days between Christmas
    and New Year): no letter goes to the post on it, and a letter's days to
    pay count from the working day it is posted."""

    rules = models.ForeignKey(CollectionRules, on_delete=models.CASCADE, related_name="holidays")
    day = models.DateField()
    name = models.CharField(max_length=100, help_text="What the day is, e.g. \"Good Friday\".")

    objects = HolidayQuerySet.as_manager()

    class Meta:
        verbose_name = "office holiday"
        ordering = ["day"]
        constraints = [
            # On the day alone (the rules are one row): the rules' page checks
            # it then, where a constraint naming the rules is left to the database.
            models.UniqueConstraint(fields=["day"], name="holiday_once_a_day",
                                    violation_error_message="This day is already a holiday."),
        ]

    def __str__(self) -> str:
        return f"{format_day(self.day)}: {self.name}"


class CallOutcome(models.TextChoices):
    REACHED = "reached", "Reached"
    VOICEMAIL = "voicemail", "Left a voicemail"
    NO_ANSWER = "no_answer", "No answer"
    WRONG_NUMBER = "wrong_number", "Wrong number"


class Call(models.Model):
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="calls")
    contact = models.ForeignKey(
        "customers.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    made_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=CallOutcome.choices)
    cause = models.CharField(
        "cause of non-payment", max_length=16, choices=MissCause.choices, blank=True
    )
    notes = models.TextField(blank=True)
    summary_sent_to = models.EmailField(blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"Call to {self.customer.name}: {self.get_outcome_display()}"


class PromiseStatus(models.TextChoices):
    OPEN = "open", "Open"
    KEPT = "kept", "Kept"
    BROKEN = "broken", "Broken"
    CANCELLED = "cancelled", "Cancelled"


class Promise(models.Model):
    """A customer's word to pay an amount by a date. While open it pauses dunning
    for the invoices it covers until the date plus the grace period."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="promises")
    contact = models.ForeignKey(
        "customers.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    call = models.OneToOneField(
        Call, on_delete=models.PROTECT, null=True, blank=True, related_name="promise"
    )
    invoices = models.ManyToManyField(Invoice, related_name="promises")
    currency = currency_field()
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    promised_on = models.DateField("promised payment date")
    grace_days = models.PositiveSmallIntegerField()
    made_on = models.DateField()
    made_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=PromiseStatus.choices, default=PromiseStatus.OPEN)
    resolved_on = models.DateField(null=True, blank=True)
    paid_amount = money_field(help_text="Paid on the covered invoices since the promise was made.")
    # The last allocation recorded when it was made: money allocated up to it
    # was already in the open amounts it was made for, so it does not count
    # towards it (a payment of the same morning included). Empty on rows
    # older than this field: those count by the day received only.
    allocations_before = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-promised_on", "-id"]
        constraints = [
            models.CheckConstraint(name="promise_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="promise_not_before_it_was_made", condition=Q(promised_on__gte=F("made_on"))
            ),
        ]
        indexes = [
            # The daily check reads open promises only.
            models.Index(fields=["promised_on"], name="promise_open_by_date",
                         condition=Q(status="open")),
        ]

    def __str__(self) -> str:
        return f"Promise of {format_money(self.amount, self.currency)} by {format_day(self.promised_on)}"

    @property
    def broken_after(self) -> dt.date:
        """The last day on which paying still keeps the promise."""
        return self.promised_on + dt.timedelta(days=self.grace_days)


class PlanStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Waiting for a manager's approval"
    ACTIVE = "active", "In good standing"
    COMPLETED = "completed", "Completed"
    BROKEN = "broken", "Broken (instalment missed)"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class PaymentPlan(models.Model):
    """Instalments agreed for some invoices. While in good standing it pauses
    dunning for them; a missed instalment breaks it and dunning resumes."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="payment_plans"
    )
    invoices = models.ManyToManyField(Invoice, related_name="payment_plans")
    currency = currency_field()
    total_amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    status = models.CharField(max_length=20, choices=PlanStatus.choices)
    grace_days = models.PositiveSmallIntegerField()
    note = models.CharField(max_length=300, blank=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_on = models.DateField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=300, blank=True)
    paid_amount = money_field(help_text="Paid on the plan's invoices since it was proposed.")
    # The last allocation recorded when it was made: money allocated up to it
    # was already in the open amounts it was made for, so it does not count
    # towards it (a payment of the same morning included). Empty on rows
    # older than this field: those count by the day received only.
    allocations_before = models.BigIntegerField(null=True, blank=True, editable=False)
    # What credit notes and corrections took off the end of the schedule, per
    # instalment as agreed: [[number, due_on, amount], ...] (see
    # workspace._plan_reduce). A customer who deducts a credit from their next
    # payments instead is asked for it back where it came off, on the dates
    # they expect, even for an instalment the credit took off altogether.
    credited_instalments = models.JSONField(default=list, blank=True, editable=False)
    # What it left out of its invoices for the disputes of part of them open
    # when it was proposed: [[dispute_id, amount], ...]. The customer may not
    # hold that back from an instalment (the plan never asked for it), a
    # credit for it takes nothing off the plan, and what a dispute that ends
    # against the customer left out is asked with the next instalment
    # (workspace._plans_follow_dispute).
    disputes_left_out = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["-proposed_on", "-id"]
        constraints = [
            models.CheckConstraint(name="plan_total_positive", condition=Q(total_amount__gt=0)),
        ]

    def __str__(self) -> str:
        return f"Plan of {format_money(self.total_amount, self.currency)} for {self.customer.name}"

    @property
    def still_owed_amount(self) -> Decimal:
        """What the plan asks for less what came in on its invoices since it was proposed."""
        return self.total_amount - self.paid_amount


class InstalmentStatus(models.TextChoices):
    DUE = "due", "Due"
    PAID = "paid", "Paid"
    MISSED = "missed", "Missed"
    # Its date passed short by no more than an invoice of the plan under open
    # dispute still owes: the customer holds that back until the dispute ends.
    HELD = "held", "Held back (dispute open)"


class Instalment(models.Model):
    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="instalments")
    number = models.PositiveSmallIntegerField()
    due_on = models.DateField()
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    status = models.CharField(max_length=8, choices=InstalmentStatus.choices, default=InstalmentStatus.DUE)
    # What the customer took off this instalment, which the plan asks for
    # elsewhere or no longer: held back while a dispute on one of its invoices
    # was open, or a credit note deducted from it rather than from the last.
    # The instalment is judged on its amount less this.
    deducted_amount = money_field()
    # Held back: which open disputes it was held back for, [[dispute id,
    # amount], ...], so that each dispute settles its own share as it ends
    # (see workspace._instalment_hold). Empty on rows held before this field:
    # those are settled when the last dispute on the plan's invoices ends.
    held_for = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["plan", "number"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="instalment_number_per_plan"),
            models.CheckConstraint(name="instalment_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="instalment_deducted_within_amount",
                                   condition=Q(deducted_amount__gte=0, deducted_amount__lte=F("amount"))),
        ]

    def __str__(self) -> str:
        return f"Instalment {self.number} of the payment plan for {self.plan.customer.name}"

    @property
    def judged_amount(self) -> Decimal:
        """What the instalment asks for less what the customer took off it:
        what a held-back instalment was paid, what a paid one came to."""
        return self.amount - self.deducted_amount


class DisputeReason(models.TextChoices):
    OUR_DELIVERY = "our_delivery", "Our delivery problem (late, damaged, incomplete)"
    OUR_SERVICE = "our_service", "Our service problem"
    PRICE = "price", "Price differs from the order or contract"
    QUANTITY = "quantity", "Quantity differs from what was delivered"
    QUALITY = "quality", "Quality of the goods"
    NOT_ORDERED = "not_ordered", "Not ordered"
    DUPLICATE = "duplicate", "Billed twice"
    OTHER = "other", "Other"


class Department(models.Model):
    """An internal team that can settle disputes, reached by e-mail."""

    name = models.CharField(max_length=80, unique=True)
    email = models.EmailField()
    reasons = models.JSONField(
        default=list, blank=True,
        help_text="Dispute reasons this team handles; a new dispute with one of them is routed here.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DisputeStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class DisputeOutcome(models.TextChoices):
    CREDIT_NOTE = "credit_note", "Credit note issued"
    CORRECTED_INVOICE = "corrected_invoice", "Invoice corrected"
    REJECTED = "rejected", "Rejected: the invoice stands"
    # The customer paid the invoice while the dispute was open: nothing is left
    # to credit, and nobody rejected anything.
    PAID_IN_FULL = "paid_in_full", "Paid in full since: nothing left to settle"
    # The ERP cancelled the invoice (workspace.invoice_cancel): nothing is owed to dispute.
    INVOICE_CANCELLED = "invoice_cancelled", "Invoice cancelled"

    @classmethod
    def offered(cls, invoice: Invoice) -> list[str]:
        """The outcomes that can be true of a dispute on `invoice` as it stands:
        a credit only while something is open to take it off, paid in full
        only once nothing is."""
        if invoice.open_amount == 0:
            return [cls.PAID_IN_FULL, cls.REJECTED]
        return [cls.CREDIT_NOTE, cls.CORRECTED_INVOICE, cls.REJECTED]

    @classmethod
    def label_for(cls, outcome: str, invoice: Invoice) -> str:
        """The outcome's label for `invoice`: "paid in full" reads as what
        settled it, since an invoice credited to nothing was not paid."""
        if outcome == cls.PAID_IN_FULL:
            return f"{invoice.settled_how().capitalize()} in full since: nothing left to settle"
        return str(cls(outcome).label)


# The one rule of what a dispute holds: the whole invoice when the amount it
# contests covers everything still open on it (a payment of the rest since
# included), else that amount only, and dunning chases the rest. Read in
# Python (disputed_in_full), in a query (disputed_in_full_q, disputed_in_part_q)
# and in the planner's raw SQL (DISPUTED_IN_FULL_SQL, dunning._NOT_HELD);
# tests/ar_collections/test_disputes_one_rule.py holds the four to the same cases.
def disputed_in_full(disputed: Decimal, open_amount: Decimal) -> bool:
    """Whether a dispute of `disputed` holds all of an invoice owing `open_amount`."""
    return disputed >= open_amount


def disputed_in_full_q(disputed: str, open_amount: F | OuterRef) -> Q:
    """For a query: the dispute whose amount is the field `disputed` holds all
    of an invoice owing `open_amount` (an F or an OuterRef)."""
    return Q(**{f"{disputed}__gte": open_amount})


def disputed_in_part_q(disputed: str, open_amount: F | OuterRef) -> Q:
    """For a query: the dispute holds back part of the invoice only (the
    converse of disputed_in_full_q, written so a missing dispute matches neither)."""
    return Q(**{f"{disputed}__lt": open_amount})


# disputed_in_full in SQL, to be formatted with the two columns' expressions.
DISPUTED_IN_FULL_SQL = "{disputed} >= {open_amount}"


class Dispute(models.Model):
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="disputes")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="disputes")
    reason = models.CharField(max_length=16, choices=DisputeReason.choices)
    description = models.TextField()
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="disputes"
    )
    routed_to = models.EmailField(blank=True)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_on = models.DateField()
    answer_due_on = models.DateField()
    status = models.CharField(max_length=10, choices=DisputeStatus.choices, default=DisputeStatus.OPEN)
    outcome = models.CharField(max_length=20, choices=DisputeOutcome.choices, blank=True)
    resolution_note = models.CharField(max_length=300, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_on = models.DateField(null=True, blank=True)
    credit_note = models.ForeignKey(
        CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What the resolution took off the invoice (a credit note, or a corrected
    # total's difference): the collectors' credit limit counts every one on an invoice.
    taken_off_amount = money_field(default=Decimal("0.00"))
    # What the customer disputes: all that was open when it was opened, or a
    # part ("only 40 of 50 pallets arrived"). Dunning chases the rest of the
    # invoice meanwhile (dunning.eligible_invoices), and the resolution takes
    # off no more than this. No default: every dispute says what it is about.
    disputed_amount = money_field(default=models.NOT_PROVIDED)

    class Meta:
        ordering = ["-opened_on", "-id"]
        permissions = [
            ("settle_beyond_credit_limit",
             "Can settle a dispute taking off more than the collectors' credit limit"),
        ]
        constraints = [
            # A second open dispute on one invoice would be two threads about one question.
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(status="open"), name="dispute_one_open_per_invoice"
            ),
            models.CheckConstraint(
                name="dispute_resolution_is_complete",
                condition=Q(status="open", outcome="", resolved_on__isnull=True)
                | (Q(status="resolved", resolved_on__isnull=False) & ~Q(outcome="")),
            ),
            models.CheckConstraint(name="dispute_amount_positive", condition=Q(disputed_amount__gt=0)),
        ]

    def __str__(self) -> str:
        return f"Dispute on {self.invoice.number}: {self.get_reason_display()}"

    @property
    def in_full(self) -> bool:
        """Whether it holds all its invoice owes now (disputed_in_full)."""
        return disputed_in_full(self.disputed_amount, self.invoice.open_amount)


class ExceptionKind(models.TextChoices):
    PAUSE = "pause", "Pause dunning beyond the collector's limit"
    EXTENDED_TERMS = "extended_terms", "Extended terms"
    FEE_WAIVER = "fee_waiver", "Waive fees or interest"
    # An account on credit hold, or on C.O.D. since a dunning step switched it
    # there, that has paid up: approved, the hold comes off and the terms go
    # back to standard (workspace.exception_decide).
    HOLD_RELEASE = "hold_release", "Lift the credit hold or C.O.D."
    # Invoices the collector gives up on (WriteOffLine names them): approved,
    # each is written off as bad debt (workspace.exception_decide), so dunning
    # and the worklist stop chasing money nobody expects any more.
    WRITE_OFF = "write_off", "Write off as bad debt"
    OTHER = "other", "Other"


class ExceptionStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a manager"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    # A pause or extended terms whose day passed before a manager decided it
    # (workspace.exceptions_lapse): it grants nothing, and asking again is open.
    LAPSED = "lapsed", "Lapsed undecided"


class ExceptionRequest(models.Model):
    """A collector asks a manager to bend a rule for one account."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="exception_requests"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Empty when the request is about the whole account.",
    )
    kind = models.CharField(max_length=16, choices=ExceptionKind.choices)
    reason = models.TextField()
    pause_until = models.DateField(null=True, blank=True, help_text="The end the collector asked for.")
    granted_until = models.DateField(
        null=True, blank=True,
        help_text="The end a manager granted: the one asked for, or an earlier one. Empty unless approved.",
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_on = models.DateField()
    status = models.CharField(max_length=10, choices=ExceptionStatus.choices, default=ExceptionStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-requested_on", "-id"]
        constraints = [
            models.CheckConstraint(
                name="exception_pause_has_an_end", condition=~Q(kind="pause") | Q(pause_until__isnull=False)
            ),
            # A write-off names its invoices in lines of its own, each with its amount.
            models.CheckConstraint(
                name="exception_write_off_names_no_one_invoice",
                condition=~Q(kind="write_off") | Q(invoice__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.customer.name} ({self.get_status_display()})"

    @property
    def lapsed_on(self) -> dt.date | None:
        """The day a pause or extended terms left undecided lapses: the day
        after the day it asked for (workspace.exceptions_lapsed), whenever
        the daily check came to record it. A write-off asks for no day: it
        closes undecided the day its last invoice is settled another way."""
        if self.pause_until:
            return self.pause_until + dt.timedelta(days=1)
        if self.status == ExceptionStatus.LAPSED and self.decided_at:
            return timezone.localdate(self.decided_at)
        return None


class WriteOffLine(models.Model):
    """One invoice a write-off request asks a manager to write off, with what
    it still owed when asked. A payment or credit may come in while the
    request waits: the manager sees what it owed then and what it owes now,
    and confirms what is written off."""

    request = models.ForeignKey(ExceptionRequest, on_delete=models.PROTECT, related_name="write_off_lines")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")
    # The invoice's currency: what it owed when asked, in its own units.
    currency = currency_field()
    asked_amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["request", "invoice"], name="write_off_line_once_per_request"),
            models.CheckConstraint(name="write_off_line_asks_an_amount", condition=Q(asked_amount__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.invoice.number}: {format_money(self.asked_amount, self.currency)} asked to write off"


class WorkKind(models.TextChoices):
    CALL = "call", "Call task from dunning"
    REVIEW = "review", "Notice to review before sending"
    PROMISE_DUE = "promise_due", "Promise due"
    PROMISE_BROKEN = "promise_broken", "Broken promise"
    INSTALMENT_MISSED = "instalment_missed", "Missed instalment"
    DISPUTE_WAITING = "dispute_waiting", "Dispute waiting for an answer"
    PERSONAL = "personal", "Personal treatment"
    CHARGES = "charges", "Charges left after the invoices"
    ADDRESS_REFUSED = "address_refused", "E-mail address refused"
    DECIDED = "decided", "A manager decided your request"
    # Anything in the print queue nobody posted: a dunning letter (`action`), an
    # invoice copy or a statement (`document`).
    LETTER_UNPOSTED = "letter_unposted", "Not posted"
    # The cycle's ladder has no step left and money is still overdue that
    # nothing holds: nothing more goes out unless someone decides what next.
    LADDER_ENDED = "ladder_ended", "Ladder finished: decide the next action"
    # An account a credit hold or a switch to C.O.D. was put on owes nothing
    # overdue any more: a manager weighs lifting it (worklist.hold_release_items).
    HOLD_RELEASE = "hold_release", "Paid up: ask for the hold to be lifted"
    # The invoice an open dispute is about was paid in full meanwhile: the
    # department's answer is no longer awaited, the collector closes it.
    DISPUTE_SETTLED = "dispute_settled", "Disputed invoice paid: close the dispute"
    # An account has gone well past its usual interval without ordering: money
    # trouble, or lost to a competitor; the collector asks how they are
    # (worklist.order_gap_items).
    ORDER_GAP = "order_gap", "No order for longer than usual"


class WorkStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class WorkItem(models.Model):
    """One thing a collector should do, on the worklist until done.

    `key` names what the item is about (e.g. "call:action:17"), so however
    often the daily job or a retried task creates it, it exists once.
    """

    key = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, choices=WorkKind.choices)
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="work_items")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="work_items"
    )
    # Whose item this is while it is with their stand-in only because they are
    # away (worklist.items_covered): it goes back to them once they are back
    # (worklist.items_back_from_cover). Empty for an item handed over on
    # purpose (worklist.item_reassign), which stays where it was handed.
    covering_for = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Who held the item while its holder was away, now that it is back with
    # them (worklist.items_back_from_cover): said beside the item, not in its
    # title, and only while it is open with them; done or moved on, it is cleared.
    back_from = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Who handed the item over on purpose (worklist.item_reassign), when and
    # why: the marker that tells a deliberate hand-over from an item a
    # stand-in was left holding. While the item is open its holder may work
    # the account for what the item needs (arcrm.roles.may_work_for_item) and
    # the morning's refresh leaves it with them (worklist.items_handed_back);
    # done, the marker is cleared and their access to the account ends.
    handed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    handed_at = models.DateTimeField(null=True, blank=True)
    handed_reason = models.TextField(blank=True)
    title = models.CharField(max_length=300)
    due_on = models.DateField()
    snoozed_until = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=WorkStatus.choices, default=WorkStatus.OPEN)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    action = models.ForeignKey(
        DunningAction, on_delete=models.PROTECT, null=True, blank=True, related_name="work_items"
    )
    promise = models.ForeignKey(
        Promise, on_delete=models.PROTECT, null=True, blank=True, related_name="work_items"
    )
    plan = models.ForeignKey(
        PaymentPlan, on_delete=models.PROTECT, null=True, blank=True, related_name="work_items"
    )
    dispute = models.ForeignKey(
        Dispute, on_delete=models.PROTECT, null=True, blank=True, related_name="work_items"
    )
    document = models.ForeignKey(
        "PaperDocument", on_delete=models.PROTECT, null=True, blank=True, related_name="work_items"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_on", "id"]
        indexes = [
            # "My work today": a collector's open items.
            models.Index(fields=["assignee", "due_on"], name="work_open_by_assignee",
                         condition=Q(status="open")),
        ]

    def __str__(self) -> str:
        return self.title


class TimelineEventInvoice(models.Model):
    """An invoice an event concerns, so the timeline can be filtered by invoice."""

    event = models.ForeignKey("customers.TimelineEvent", on_delete=models.CASCADE, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["invoice", "event"], name="event_invoice_once"),
        ]

    def __str__(self) -> str:
        # The event's day in local time and its kind, as the timeline names it ("5 Aug 2025 00:30 Note").
        event = self.event
        local = timezone.localtime(event.occurred_at)
        return f"{self.invoice.number} – {format_day(local.date())} {local:%H:%M} {event.get_kind_display()}"


class MailPurpose(models.TextChoices):
    CALL_SUMMARY = "call_summary", "Summary of a call"
    INVOICE_COPY = "invoice_copy", "Copy of an invoice"
    DISPUTE_ROUTING = "dispute_routing", "Dispute sent to a department"
    INVOICES_RESEND = "invoices_resend", "Invoices re-sent (red tape)"
    PLAN_AGREED = "plan_agreed", "Payment plan agreed"
    STATEMENT = "statement", "Statement of account"


class MailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class OutgoingMail(models.Model):
    """An e-mail a collector's action sends: a call's summary, an invoice copy,
    a dispute routed to a department. Written in the action's transaction and
    sent by a worker (ar_collections/outbox.py), so a slow or broken mail server
    neither holds up the page nor loses the message."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="outgoing_mails"
    )
    purpose = models.CharField(max_length=20, choices=MailPurpose.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    from_email = models.CharField(max_length=254)
    to = models.JSONField(default=list)
    reply_to = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    html = models.TextField(blank=True)
    attachment_name = models.CharField(max_length=200, blank=True)
    attachment_type = models.CharField(max_length=100, blank=True)
    attachment = models.BinaryField(null=True, blank=True)
    # The invoice the mail is about (a copy, a dispute), so a failure shows under its filter.
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=MailStatus.choices, default=MailStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the sweep may hand the mail to a worker (again): after its own worker
    # had its chance, after a back-off once the mail server said "not now".
    next_attempt_at = models.DateTimeField()
    # The back-off after a "not now", which every worker respects: a second
    # task for the same mail (its own worker's and a sweep's) that comes
    # sooner leaves it, rather than spend the next attempt at once.
    retry_not_before = models.DateTimeField(null=True, blank=True)
    # The worker's claim on the mail while it sends it; both times above are
    # the database's clock's, so that hosts whose clocks differ agree on
    # when a claim or a back-off is over (outbox._claim).
    claim = models.UUIDField(null=True, blank=True, editable=False)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # outbox.mails_sweep: the queued mails whose next attempt is due.
            models.Index(fields=["next_attempt_at"], name="mail_queued_due", condition=Q(status="queued")),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {', '.join(self.to)}"


# --- Receivables from the ERP ---------------------------------------------------------


class ImportKind(models.TextChoices):
    INVOICES = "invoices", "Invoices"
    PAYMENTS = "payments", "Payments"
    CUSTOMERS = "customers", "Customer accounts"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DONE = "done", "Imported"
    CHECKED = "checked", "Checked (nothing recorded)"
    # A check-only file with problems: what was asked was done (the file was
    # checked), so it is no refusal; its problems are the check's answer.
    CHECKED_PROBLEMS = "checked_problems", "Checked: problems found (nothing recorded)"
    REFUSED = "refused", "Refused (nothing recorded)"
    FAILED = "failed", "Failed (nothing recorded)"


class ImportOrigin(models.TextChoices):
    UPLOAD = "upload", "Uploaded file"
    API = "api", "API request"


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM_TYPE = "application/vnd.ms-excel.sheet.macroEnabled.12"


class ReceivablesImport(models.Model):
    """A CSV file or Excel workbook from the ERP, uploaded by a manager and imported by a worker
    (ar_collections/imports.py), or a request the ERP sent to the JSON API
    (ar_collections/api.py), recorded or refused there and then; with what
    came of it. The file or request is kept: what was imported, and by whom,
    stays on record."""

    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    origin = models.CharField(max_length=16, choices=ImportOrigin.choices, default=ImportOrigin.UPLOAD)
    # The token an API request was signed with: which of the ERP's keys sent it.
    api_token = models.ForeignKey("ApiToken", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="imports")
    file_name = models.CharField(max_length=200, blank=True)
    text = models.TextField()
    # An Excel workbook as uploaded (its text empty): its rows are read where
    # they are imported, numbered as its sheet numbers them, which a CSV copy
    # of a sheet whose cells hold line breaks could not keep.
    workbook = models.BinaryField(null=True, blank=True, editable=False)
    dry_run = models.BooleanField(default=False, help_text="Only check the file; record nothing.")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    already = models.PositiveIntegerField(default=0, help_text="Rows recorded before, left as they were.")
    updated = models.PositiveIntegerField(
        default=0, help_text="Rows recorded before that it changed: an invoice's due date or PO reference, "
                             "an account's values."
    )
    errors = models.JSONField(default=list, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When a worker last took the file up: a queued import with it is being
    # imported (or was, by a worker that died; the sweep hands it on again).
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], name="import_queued_since",
                         condition=Q(status="queued")),
        ]
        constraints = [
            models.CheckConstraint(name="import_api_request_has_its_token",
                                   condition=Q(origin="upload", api_token__isnull=True)
                                   | Q(origin="api", api_token__isnull=False)),
        ]
        permissions = [
            # Its own permission, not add_invoice: that would also open the
            # admin's invoice form, which puts nothing on the timeline.
            ("import_receivables", "Can import invoices, payments and customer accounts from the ERP"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} import {self.file_name or self.pk} ({self.get_status_display()})"

    def kept_file(self) -> tuple[str, str, bytes]:
        """What came in, as it came: its file name, content type and bytes. A
        CSV file's text was read as UTF-8, so written back so it is the upload's
        bytes; an API request is the JSON it sent."""
        if self.workbook is not None:
            name = self.file_name or f"import-{self.pk}.xlsx"
            macros = name.lower().endswith(".xlsm")  # decode reads .xlsm too; Excel opens it by its type
            return name, XLSM_TYPE if macros else XLSX_TYPE, bytes(self.workbook)
        if self.origin == ImportOrigin.API:
            return f"api-request-{self.pk}.json", "application/json", self.text.encode("utf-8")
        return self.file_name or f"import-{self.pk}.csv", "text/csv; charset=utf-8", self.text.encode("utf-8")

    @property
    def source(self) -> str:
        """What came in, as the imports page names it: the file, or the API request and its token."""
        if self.origin == ImportOrigin.API:
            return f"API request (token {self.api_token.name})"
        return self.file_name or "(no name)"


class ApiToken(models.Model):
    """A key the ERP signs its requests to the JSON API with (ar_collections/api.py),
    acting as one user: it may do what that user may. Only the secret's SHA-256 is
    kept: whoever reads the database (or a backup of it) cannot sign requests with
    it. The secret is shown once, by `manage.py api_token_create`; a token lost is
    revoked and another made, never shown again."""

    name = models.CharField(max_length=100, help_text="What uses it, e.g. “ERP”.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens",
                             help_text="Requests with this token act as this user, with this user's rights.")
    # A token is 32 random bytes: a plain hash, not a slow password hash, is
    # enough against guessing, and lets a request find its token by index.
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.user}{', revoked' if self.revoked_at else ''})"


class WordingKind(models.TextChoices):
    """The documents whose words the Wording page edits, each per language
    (and a notice per tone too)."""

    DUNNING = "dunning", "Dunning notice"
    INVOICE_COPY = "invoice_copy", "Invoice copy"
    STATEMENT = "statement", "Statement"
    CALL_SUMMARY = "call_summary", "Call summary"
    PLAN_AGREED = "plan_agreed", "Payment plan agreed"


# The tone of a document that has none (anything but a notice): 0, not NULL,
# so that the unique constraint holds for them too.
NO_TONE = 0


class WordingVersionQuerySet(models.QuerySet):
    def of(self, kind: str, tone: int, language: str) -> WordingVersionQuerySet:
        """A document kind × tone × language's versions, the newest first."""
        return self.filter(kind=kind, tone=tone, language=language).order_by("-number")


class WordingVersion(models.Model):
    """One save of a document's words to customers (a notice of a tone, an
    invoice copy's or a statement's cover e-mail, a call's summary, an agreed
    payment plan's schedule) in a language, from the
    Wording page: the newest is what those documents say. The
    versions before it stay as its history (who, when, what it said before
    and after: DESIGN invariant 4). `shipped` is a manager putting back the
    text shipped with the product: the templates' files speak again, and
    their parts here are blank.

    The parts are the words without their frame: the subject's text, and the
    text and HTML e-mails' blocks, which the layouts fill (a notice's `intro`
    and `request`, in the e-mail and the letter; a cover e-mail's `body`; an
    invoice copy's and a statement's PDF's own blocks, in `pdf`),
    or a text-only e-mail's whole text (`html` blank): ar_collections/wording.py
    adds the rest."""

    kind = models.CharField(max_length=16, choices=WordingKind.choices, default=WordingKind.DUNNING)
    tone = models.PositiveSmallIntegerField(choices=Tone.choices)  # NO_TONE for anything but a notice
    language = models.CharField(max_length=8)
    # 1, 2, 3 … per kind × tone × language: a save names the version it was made
    # from, so that of two managers editing the same words at once the second
    # is refused (by the constraint) instead of silently undoing the first.
    number = models.PositiveIntegerField()
    shipped = models.BooleanField(default=False)
    subject = models.TextField(blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    # The words printed on an invoice copy's or a statement's PDF (blank for
    # other kinds, and in versions saved before they could be edited: those
    # PDFs say the shipped words).
    pdf = models.TextField(blank=True)
    # What notices said until this save (the shipped text or the version before).
    subject_before = models.TextField(blank=True)
    text_before = models.TextField(blank=True)
    html_before = models.TextField(blank=True)
    pdf_before = models.TextField(blank=True)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    saved_at = models.DateTimeField(default=timezone.now)

    objects = WordingVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [
            # Also the index every notice rendered reads its tone × language's newest version by.
            models.UniqueConstraint(fields=["kind", "tone", "language", "number"],
                                    name="wording_version_number_once"),
        ]

    def __str__(self) -> str:
        tone = f" {self.get_tone_display()}" if self.tone != NO_TONE else ""
        return f"{self.get_kind_display()}{tone} {self.language}, version {self.number}"
