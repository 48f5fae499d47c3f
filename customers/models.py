"""The account card: who the customer is and how it likes to be dealt with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from decimal import Decimal

from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from arcrm.dates import format_day
from arcrm.db import Folded
from arcrm.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, places_check, validate_currency
from arcrm.text import fold, one_line


def _default_currency() -> str:
    return settings.DEFAULT_CURRENCY


class Industry(models.TextChoices):
    MANUFACTURING = "manufacturing", "Manufacturing"
    WHOLESALE = "wholesale", "Wholesale & distribution"
    RETAIL = "retail", "Retail"
    CONSTRUCTION = "construction", "Construction"
    HOSPITALITY = "hospitality", "Hospitality"
    HEALTHCARE = "healthcare", "Healthcare"
    LOGISTICS = "logistics", "Transport & logistics"
    PROFESSIONAL = "professional", "Professional services"
    TECHNOLOGY = "technology", "Technology"
    PUBLIC = "public", "Public sector"
    AGRICULTURE = "agriculture", "Agriculture & food"
    OTHER = "other", "Other"


class TermsType(models.TextChoices):
    STANDARD = "standard", "Standard terms"
    COD = "cod", "Cash on delivery"
    PREPAYMENT = "prepayment", "Prepayment"


class Segment(models.TextChoices):
    """What kind of payer a customer is; computed from history (see segmentation.py)."""

    NEW = "new", "New"
    PROMPT = "prompt", "Prompt payer"
    OCCASIONAL_SLIP = "occasional_slip", "Occasional slip"
    SYSTEMATIC_LATE = "systematic_late", "Systematic late payer"
    DISTRESSED = "distressed", "Distressed"
    SPECIAL_BOND = "special_bond", "Special bond"


class CustomerQuerySet(models.QuerySet):
    def visible_to(self, user) -> CustomerQuerySet:
        """Every signed-in role may read every account (colleagues cover each other)."""
        if user.is_authenticated and user.has_perm("customers.view_customer"):
            return self
        return self.none()

    def owned_by(self, user) -> CustomerQuerySet:
        """The user's accounts, and today those of a colleague away whom they cover for."""
        from customers.cover import covered_by

        return self.filter(Q(collector=user) | Q(collector_id__in=covered_by(user)))

    def search(self, text: str) -> CustomerQuerySet:
        """Accounts whose name, legal name, account number or a contact's name
        or e-mail address holds `text` (any case, runs of spaces as one, the
        names with or without their accents: "lopez" finds López), or
        with an invoice whose number ends with `text` (any case; three
        characters or more, a digit among them: the number as a caller reads
        it, else exactly): "10036", "Hendriks Data B.V.", "Ruben Bakker",
        "hollow-clinic.co.uk", "inv-2026-001774" and "1774" all find the
        account they belong to. The contacts and invoices are subqueries, not
        joins: no account comes twice.

        The matches are one set, the accounts' own UNION their contacts' UNION
        their invoices', for the trigram indexes on PostgreSQL (migrations
        0008, 0013 and 0014, collections 0076): each side reads its indexes,
        where an OR of the accounts' columns and subqueries makes PostgreSQL
        read every account."""
        text = one_line(text)
        if not text:
            return self
        own, contacts, invoice = _search_sides(text)
        matches = own.order_by().values("pk").union(
            contacts.order_by().values("customer_id"), invoice.order_by().values("customer_id"))
        return self.filter(pk__in=matches)


def _search_sides(text: str):
    """What Customer.objects.search looks in: the accounts' own columns, their
    contacts, the invoices `text` numbers (already one line)."""
    # Names are compared without their accents (a caller's "Lopez" is López
    # Accountants), through the trigram indexes of customers 0014, and as
    # typed, through those of 0008: PostgreSQL's unaccent keeps marks the
    # typed text's fold takes off (the й of "Сергей", a kana's voicing), and
    # a name typed as it is on file is always found. Account numbers,
    # addresses and invoice numbers as typed.
    folded = fold(text)
    return (
        Customer.objects.alias(folded_name=Folded("name"), folded_legal_name=Folded("legal_name")).filter(
            Q(folded_name__icontains=folded) | Q(folded_legal_name__icontains=folded)
            | Q(name__icontains=text) | Q(legal_name__icontains=text)
            | Q(account_number__icontains=text)),
        Contact.objects.alias(folded_name=Folded("name")).filter(
            Q(folded_name__icontains=folded) | Q(name__icontains=text) | Q(email__icontains=text)),
        _invoices().filter(_invoice_number_holds(text)),
    )


def _invoice_number_holds(text: str) -> Q:
    """The invoices `text` names: on the phone a customer reads "invoice 1774"
    for INV-2026-001774, the end of the number; the whole number typed finds
    that one invoice, not INV-2026-0017745 too. A text with no digit (a
    name) or shorter than three characters (not worth reading every invoice
    for) is compared with the whole number."""
    if len(text) >= 3 and any(char.isdigit() for char in text):
        return Q(number__iendswith=text)
    return Q(number__iexact=text)


def search_matches(text: str, *, cap: int) -> tuple[list[int], bool]:
    """The ids of the accounts Customer.objects.search(text) finds, `cap` at
    most, and whether they are all it finds. Each side of the search is read
    by itself and stops at cap + 1 rows: a broad text ("ha", too short for
    the trigram indexes, or "ap@", in every account's billing address) ends a
    sequential scan after a few thousand rows, where the union reads and
    hashes every match before the first comes out. Of a broad text's
    matches, those the accounts' own columns hold come first, then those
    their contacts and invoices lead to: the name a collector sees is the
    likeliest to be the one meant. Each side keeps its lowest account ids
    (_lowest), so the `cap` kept are the same on every page a collector
    turns to while rows change (a card saved, the nightly segments): kept
    as read, in no order, PostgreSQL hands back another first `cap` once a
    row moves. Up to four queries (a very broad side, two), one or two
    where the accounts' own columns already hold more than `cap`."""
    text = one_line(text)
    own, contacts, invoice = _search_sides(text)
    # In the order read, the accounts' own first: a dict keeps it, and counts each account once.
    found = dict.fromkeys(_lowest(own, "pk", cap + 1))
    if len(found) > cap:
        return list(found)[:cap], False
    # Rows, not accounts: several contacts of an account may match (its AP
    # clerk's and its owner's addresses on its domain). Three an account,
    # enough for most books, spare the union below.
    rows = 3 * cap + 1
    through_contacts = _lowest(contacts, "customer_id", rows)
    found.update(dict.fromkeys(through_contacts))
    # Several invoices may end with the digits read out ("1774": one a year),
    # several of them an account's.
    through_invoices = _lowest(invoice, "customer_id", rows)
    found.update(dict.fromkeys(through_invoices))
    if len(found) > cap:
        return list(found)[:cap], False
    if rows in (len(through_contacts), len(through_invoices)):
        # The contacts (or invoices) read were not all that match, yet led to fewer
        # accounts than `cap`: only the union can tell how many there are.
        every = _lowest(Customer.objects.search(text), "pk", cap + 1)
        if len(every) > cap:
            found.update(dict.fromkeys(every))
            return list(found)[:cap], False
        return sorted(every), True
    return sorted(found), True


# How many times the rows it wants a side of a search reads in no order
# before it reads them again in the order of their ids (_lowest).
UNORDERED_SPAN = 4


def _lowest(side: models.QuerySet, column: str, limit: int) -> list[int]:
    """The `limit` lowest values of `column` over the rows of `side`, in
    order, repeats kept: the same rows whatever order the table holds them
    in. Read first in no order, up to UNORDERED_SPAN times `limit` rows: a
    text matching a few thousand rows comes whole from its trigram index and
    is sorted here, where ORDER BY … LIMIT walks the primary key folding
    every name on the way (at 1,500 matches among 200,000 accounts, 12 ms
    against 600-800 ms). Only a side matching more than that, dense enough
    for the walk in order to find `limit` soon, is read again in order."""
    read = list(side.order_by().values_list(column, flat=True)[:UNORDERED_SPAN * limit + 1])
    if len(read) <= UNORDERED_SPAN * limit:
        return sorted(read)[:limit]
    return list(side.order_by(column).values_list(column, flat=True)[:limit])


def search_reasons(customers: list[Customer], text: str) -> dict[int, str]:
    """Why each of `customers`, found by searching `text`, was found, where
    its name does not show it ("legal name …", "contact …", "invoice …"): an
    account listed for a colleague's e-mail address would otherwise look like
    a wrong hit. At most two queries, none where every name holds the text.
    The account number is left out: the list shows it beside the name."""
    text = one_line(text)
    folded = fold(text)
    unexplained = [c for c in customers if text and folded not in fold(c.name)
                   and text.casefold() not in c.account_number.casefold()]
    reasons = {c.pk: f"legal name {c.legal_name}" for c in unexplained if folded in fold(c.legal_name)}
    rest = [c.pk for c in unexplained if c.pk not in reasons]
    if not rest:
        return reasons
    contacts = Contact.objects.filter(customer_id__in=rest).alias(folded_name=Folded("name")).filter(
        Q(folded_name__icontains=folded) | Q(name__icontains=text) | Q(email__icontains=text))
    for contact in contacts.order_by("customer_id", "pk"):
        reasons.setdefault(contact.customer_id, f"contact {contact.name}" if folded in fold(contact.name)
                           else f"contact {contact.name} ({contact.email})")
    invoices = _invoices().filter(_invoice_number_holds(text), customer_id__in=rest).order_by("number")
    for customer_id, number in invoices.values_list("customer_id", "number"):
        reasons.setdefault(customer_id, f"invoice {number}")
    return reasons


def _invoices():
    # ar_collections' models import this module: looked up when searched.
    return apps.get_model("collections", "Invoice").objects


class Customer(models.Model):
    account_number = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    legal_name = models.CharField(max_length=200, blank=True)
    industry = models.CharField(max_length=32, choices=Industry.choices, default=Industry.OTHER)
    business_description = models.TextField(
        "what they do", blank=True, help_text="What the company does, in a sentence or two."
    )
    buying_reasons = models.JSONField(
        "why they buy from us",
        default=list,
        blank=True,
        help_text="Reasons this customer chose us; at least three make a useful card.",
    )
    customer_since = models.DateField(default=dt.date.today)
    collector = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="collected_customers",
        help_text="The collector who owns this account's receivables.",
    )
    relationship_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_relationships",
        help_text="Who owns the commercial relationship (usually sales).",
    )
    special_bond = models.TextField(
        blank=True,
        help_text='A bond that earns personal treatment, e.g. "pays us first because we helped them".',
    )
    referred_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="referrals",
        help_text="The customer who brought this one to us.",
    )
    currency = models.CharField(
        max_length=3, default=_default_currency, validators=[validate_currency]
    )
    credit_limit_amount = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    terms_type = models.CharField(
        max_length=16, choices=TermsType.choices, default=TermsType.STANDARD
    )
    payment_terms_days = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(365)]
    )
    on_credit_hold = models.BooleanField(default=False)
    ap_run_days = models.JSONField(
        "AP payment-run days",
        default=list,
        blank=True,
        help_text="Days of the month on which the customer's AP pays (e.g. 15 and 30).",
    )
    ordering_rhythm = models.CharField(
        max_length=200, blank=True, help_text='e.g. "orders at the start of every month".'
    )
    typical_order_interval_days = models.PositiveSmallIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True)

    segment = models.CharField(max_length=20, choices=Segment.choices, default=Segment.NEW)
    segment_reason = models.CharField(max_length=300, blank=True)
    # A manager's override wins over the computed segment until removed; the
    # nightly refresh then explains both ("Manager: …; computed: …").
    segment_override = models.CharField(max_length=20, choices=Segment.choices, blank=True)
    segment_override_note = models.CharField(max_length=300, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [
            ("act_on_any_customer", "Can act on every customer's account"),
            ("set_credit_terms", "Can change credit limit, terms, credit hold and collector"),
            # Held by the Integration group alone (arcrm/roles.py): a system's
            # user, kept out of the browser pages.
            ("integration_account", "Is an integration account: signs API requests, opens no page"),
        ]
        constraints = [
            models.CheckConstraint(
                name="customer_credit_limit_not_negative",
                condition=Q(credit_limit_amount__gte=0),
            ),
            models.CheckConstraint(
                name="customer_terms_days_at_most_a_year",
                condition=Q(payment_terms_days__lte=365),
            ),
        ]
        indexes = [
            # Worklists and the "my customers" filter select by collector.
            models.Index(fields=["collector", "name"], name="customer_collector_name"),
            models.Index(fields=["segment"], name="customer_segment"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.account_number})"

    # The check constraints above whose rule a field's validator holds (a
    # credit limit not below 0, at most 365 days to pay).
    CHECKED_BY_VALIDATORS = frozenset({
        "customer_credit_limit_not_negative", "customer_terms_days_at_most_a_year"})

    def clean_fields(self, exclude=None) -> None:
        # A user or account set on the account as a row (the card's menus read
        # it, an import reads its rows once for a whole file, or the account
        # was read with it) is known to exist: its field's check would ask
        # PostgreSQL again, once for each. The foreign key still refuses one
        # deleted meanwhile.
        loaded = {field.name for field in self._meta.fields
                  if field.is_relation and field.is_cached(self) and field.get_cached_value(self) is not None}
        super().clean_fields(exclude={*(exclude or ()), *loaded})

    def validate_constraints(self, exclude=None) -> None:
        # Those the fields' validators hold are not checked again: clean_fields
        # ran the validators, and full_clean leaves a field whose validators
        # failed out of these checks, so PostgreSQL, asked for each account
        # (or Django, building the question), could only agree. The database
        # still holds them on every write.
        errors: dict = {}
        for constraint in self._meta.constraints:
            if constraint.name not in self.CHECKED_BY_VALIDATORS:
                try:
                    constraint.validate(type(self), self, exclude=exclude)
                except ValidationError as error:
                    errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def clean(self) -> None:
        self.clean_changed(fields=None)

    def clean_changed(self, *, fields: Collection[str] | None) -> None:
        """clean()'s checks, only those reading one of `fields` (all when
        None): a change of the hold or the terms is not refused for a value
        elsewhere on the card it leaves as it was (services.customer_update)."""
        def reads(*names: str) -> bool:
            return fields is None or any(name in fields for name in names)

        # The admin takes these as JSON: null, a number or a list of numbers
        # would otherwise fail below as a server error, not as the field's message.
        if reads("buying_reasons"):
            if not isinstance(self.buying_reasons, list) or not all(
                    isinstance(r, str) for r in self.buying_reasons):
                raise ValidationError({"buying_reasons": 'Give the reasons as a list of texts, e.g. '
                                                         '["price", "delivery speed", "service"].'})
            self.buying_reasons = [r.strip() for r in self.buying_reasons if r.strip()]
        if reads("ap_run_days"):
            if not isinstance(self.ap_run_days, list):
                raise ValidationError({"ap_run_days": "Payment-run days are days of the month, 1 to 31, "
                                                      "as a list, e.g. [5, 20]."})
            for day in self.ap_run_days:
                if not isinstance(day, int) or not 1 <= day <= 31:
                    raise ValidationError({"ap_run_days": "Payment-run days are days of the month, 1 to 31."})
        if reads("referred_by") and self.referred_by_id and self.referred_by_id == self.pk:
            raise ValidationError({"referred_by": "A customer cannot refer itself."})
        # A date to come would make the account look new, and the nightly
        # segmentation would move a late payer onto the gentle new-customer ladder.
        if reads("customer_since") and self.customer_since and self.customer_since > timezone.localdate():
            raise ValidationError({"customer_since": "A customer since a day still to come? Check the year."})
        # In its currency's own places, as it is shown: a limit of JPY 100000.50
        # would read JPY 100,001 on the card and be checked as another.
        if (reads("currency", "credit_limit_amount") and self.currency
                and self.credit_limit_amount is not None):
            places_check(self.credit_limit_amount, self.currency, field="credit_limit_amount")

    def years_served(self, *, on: dt.date | None = None) -> float:
        on = on or timezone.localdate()
        return max((on - self.customer_since).days, 0) / 365.25

    def billing_contact(self, *, on: dt.date | None = None) -> Contact | None:
        """Who to write to about invoices on a given day, absences applied
        (None too when the contact and their stand-ins are all away)."""
        chosen = self.billing_contact_of_record()
        return chosen.stand_in(on=on or timezone.localdate()) if chosen else None

    def principal_contact(self, *, on: dt.date | None = None) -> Contact | None:
        """The owner or principal, for escalations; absences applied."""
        chosen = self.principal_contact_of_record()
        return chosen.stand_in(on=on or timezone.localdate()) if chosen else None

    def nobody_billed_why(self, *, on: dt.date) -> str:
        """Why billing_contact(on=on) is None, in words: no billing contact on
        file, or she and whoever she asked us to write to are all away."""
        chosen = self.billing_contact_of_record()
        why = chosen.nobody_to_write_to(on=on) if chosen else ""
        return why or "the account has no billing contact"

    def billing_contact_of_record(self) -> Contact | None:
        """The primary billing contact, else the first AP contact, before absences."""
        contacts = list(self.contacts.all())  # uses the caller's prefetch when there is one
        return next((c for c in contacts if c.is_primary_billing), None) or next(
            (c for c in contacts if c.role == ContactRole.AP), None
        )

    def principal_contact_of_record(self) -> Contact | None:
        return next((c for c in self.contacts.all() if c.role == ContactRole.PRINCIPAL), None)


class ContactRole(models.TextChoices):
    AP = "ap", "Accounts payable / billing"
    PRINCIPAL = "principal", "Principal / owner"
    PURCHASING = "purchasing", "Purchasing"
    OTHER = "other", "Other"


class InvoiceDelivery(models.TextChoices):
    E_INVOICE = "e_invoice", "E-invoice"
    PDF_EMAIL = "pdf_email", "E-mailed PDF"
    PAPER = "paper", "Paper"


class ReminderChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone"
    LETTER = "letter", "Letter"


class Language(models.TextChoices):
    EN = "en", "English"
    DE = "de", "German"
    FR = "fr", "French"
    NL = "nl", "Dutch"
    ES = "es", "Spanish"
    IT = "it", "Italian"


class Contact(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    job_title = models.CharField(max_length=120, blank=True)
    role = models.CharField(max_length=16, choices=ContactRole.choices, default=ContactRole.AP)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    postal_address = models.TextField(blank=True)
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.EN)
    invoice_delivery = models.CharField(
        max_length=16, choices=InvoiceDelivery.choices, default=InvoiceDelivery.PDF_EMAIL
    )
    reminder_channel = models.CharField(
        max_length=16, choices=ReminderChannel.choices, default=ReminderChannel.EMAIL
    )
    best_time_to_call = models.CharField(max_length=120, blank=True, help_text='e.g. "Tue–Thu mornings".')
    is_primary_billing = models.BooleanField("primary billing contact", default=False)
    notes = models.TextField(blank=True)
    # The address a mail server refused for good ("user unknown"), when and
    # why: nothing more is e-mailed to it while it is the contact's address
    # (a changed address is written to again).
    email_refused = models.EmailField(blank=True, editable=False)
    email_refused_on = models.DateField(null=True, blank=True, editable=False)
    email_refused_reason = models.CharField(max_length=300, blank=True, editable=False)

    class Meta:
        ordering = ["-is_primary_billing", "role", "name"]
        constraints = [
            # One primary billing contact per customer: dunning must know whom to address.
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(is_primary_billing=True),
                name="contact_one_primary_billing_per_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} – {self.get_role_display()}"

    def clean(self) -> None:
        # Every rule broken, each on its field: stopping at the first would
        # have the person fixing the form meet one message per save.
        broken: dict[str, list[str]] = {}
        for rule_broken, field, message in (
            (self.invoice_delivery == InvoiceDelivery.PDF_EMAIL and not self.email,
             "email", "An e-mail address is needed to e-mail invoices."),
            (self.invoice_delivery == InvoiceDelivery.PAPER and not self.postal_address,
             "postal_address", "A postal address is needed for paper invoices."),
            (self.reminder_channel == ReminderChannel.EMAIL and not self.email,
             "email", "An e-mail address is needed for e-mail reminders."),
            (self.reminder_channel == ReminderChannel.PHONE and not self.phone,
             "phone", "A phone number is needed for phone reminders."),
            (self.reminder_channel == ReminderChannel.LETTER and not self.postal_address,
             "postal_address", "A postal address is needed for letters."),
        ):
            if rule_broken:
                broken.setdefault(field, []).append(message)
        if broken:
            raise ValidationError(broken)

    @property
    def email_refused_now(self) -> bool:
        """The contact's address is one the mail server refused for good."""
        return bool(self.email_refused) and self.email.strip().lower() == self.email_refused.lower()

    @property
    def email_usable(self) -> bool:
        return bool(self.email.strip()) and not self.email_refused_now

    def absence_on(self, on: dt.date) -> ContactAbsence | None:
        """The absence that decides who stands in on `on`. Of overlapping
        ones ("away all August", then "Ben covers 10-20 Aug"), one naming a
        stand-in wins, the latest begun first: it is the more specific."""
        return max(self._absences_on(on), key=lambda a: (a.delegate_id is not None, a.starts_on, a.pk),
                   default=None)

    def away_until(self, on: dt.date) -> dt.date | None:
        """The last day of the absences that cover `on` (None if not away)."""
        return max((a.ends_on for a in self._absences_on(on)), default=None)

    def _absences_on(self, on: dt.date) -> list[ContactAbsence]:
        # Iterates the prefetched absences when there are any, so a page of
        # contacts asks the database once, not once per contact.
        return [a for a in self.absences.all() if a.starts_on <= on <= a.ends_on]

    def stand_in(self, *, on: dt.date) -> Contact | None:
        """This contact, or whoever it asked us to write to while it is away.

        Follows a chain of delegates (X away → Y, Y away too → Z). None when
        the chain ends at a stand-in who is away as well (naming nobody, or
        naming someone already in the chain): writing to them would reach
        nobody, so callers do as when nobody is on file. A contact away who
        named nobody is still written to ("keep writing to this contact").
        """
        chain, reached = self._stand_ins(on)
        return chain[-1] if reached else None

    def nobody_to_write_to(self, *, on: dt.date, year: bool = True) -> str:
        """Why stand_in(on) is None, in words ("" when it is not): "Anna Clerk
        away until 15 Aug, and Ben Backup, written to instead, away until 10 Aug"."""
        chain, reached = self._stand_ins(on)
        if reached:
            return ""

        def until(contact: Contact) -> str:
            return format_day(contact.away_until(on), year=year)

        head = f"{self.name} away until {until(self)}"
        if len(chain) == 2:
            return f"{head}, and {chain[1].name}, written to instead, away until {until(chain[1])}"
        return (f"{head}, and those written to instead away too: "
                + ", ".join(f"{c.name} until {until(c)}" for c in chain[1:]))

    def _stand_ins(self, on: dt.date) -> tuple[list[Contact], bool]:
        """This contact and the stand-ins written to in turn on `on`; and
        whether the last one is in (or is this contact, away naming nobody)."""
        chain = [self]
        while True:
            absence = chain[-1].absence_on(on)
            if absence is None:
                return chain, True
            # Never a stand-in of another customer (ContactAbsence.clean refuses one;
            # this holds for rows written around it too), and never round a circle.
            delegate = absence.delegate
            if delegate is None or delegate.customer_id != self.customer_id or any(
                    c.pk == delegate.pk for c in chain):
                return chain, len(chain) == 1
            chain.append(delegate)


# A contact away longer than this has left the post rather than gone on leave
# (a year of parental leave still fits): their mail should go to whoever
# holds it now, made the billing contact or principal on the account, not to a
# stand-in named once and forgotten. Counting both days, as the page shows them.
CONTACT_ABSENCE_DAYS_AT_MOST = 366


class ContactAbsenceQuerySet(models.QuerySet):
    def overlapping(self, *, starts_on: dt.date, ends_on: dt.date) -> ContactAbsenceQuerySet:
        """Absences with at least one day from `starts_on` to `ends_on`."""
        return self.filter(starts_on__lte=ends_on, ends_on__gte=starts_on)


class ContactAbsence(models.Model):
    """A contact away for some days, and whom to write to instead. The rules
    live in clean(), which the account page's form and services.absence_add
    (under the customer's lock) both run: one rule. The admin only shows
    absences; they are recorded on the account page."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="absences")
    starts_on = models.DateField()
    ends_on = models.DateField()
    delegate = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="covering_for",
        help_text="Whom to write to instead while this contact is away.",
    )
    note = models.CharField(max_length=200, blank=True)

    objects = ContactAbsenceQuerySet.as_manager()

    class Meta:
        ordering = ["starts_on"]
        constraints = [
            models.CheckConstraint(
                name="absence_ends_after_it_starts", condition=Q(ends_on__gte=models.F("starts_on"))
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact.name} away {format_day(self.starts_on, year=False)}–{format_day(self.ends_on)}"

    def clean(self) -> None:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValidationError({"ends_on": "The absence must end on or after its first day."})
        if self.delegate_id:
            if self.delegate_id == self.contact_id:
                raise ValidationError({"delegate": "A contact cannot stand in for itself."})
            if self.delegate.customer_id != self.contact.customer_id:
                raise ValidationError({"delegate": "The stand-in must be a contact of the same customer."})
        if not (self.starts_on and self.ends_on and self.contact_id):
            return
        days = (self.ends_on - self.starts_on).days + 1
        if days > CONTACT_ABSENCE_DAYS_AT_MOST:
            raise ValidationError({"ends_on": (
                f"An absence lasts at most {CONTACT_ABSENCE_DAYS_AT_MOST} days; this one is {days:,} "
                f"({self._days()}). Someone away longer has left the post: make whoever holds it now "
                "the account's billing contact or principal instead.")})
        others = ContactAbsence.objects.overlapping(starts_on=self.starts_on, ends_on=self.ends_on)
        # One absence a day, so that who is written to on a day is never a
        # matter of which of two absences wins.
        clash = others.filter(contact_id=self.contact_id).exclude(pk=self.pk).first()
        if clash is not None:
            raise ValidationError(
                f"{self.contact.name} is already away {clash._days()}: remove that absence first, or choose "
                "days outside it.")
        # A stand-in away too would leave nobody to write to on those days;
        # two contacts naming each other are the plainest case of it.
        away = others.filter(contact_id=self.delegate_id).first() if self.delegate_id else None
        if away is not None:
            raise ValidationError({"delegate": (
                f"{self.delegate.name} is away {away._days()} too: choose someone who is in while "
                f"{self.contact.name} is away, or nobody.")})

    def _days(self) -> str:
        return f"{format_day(self.starts_on)}–{format_day(self.ends_on)}"


class EventKind(models.TextChoices):
    ACCOUNT_CREATED = "account_created", "Account created"
    ACCOUNT_CHANGED = "account_changed", "Account card changed"
    CONTACT_CHANGED = "contact_changed", "Contact changed"
    INVOICE_ISSUED = "invoice_issued", "Invoice issued"
    INVOICE_PAID = "invoice_paid", "Invoice paid"
    INVOICE_CHANGED = "invoice_changed", "Invoice changed"
    PAYMENT_RECEIVED = "payment_received", "Payment received"
    CREDIT_NOTE = "credit_note", "Credit note"
    SEGMENT_CHANGED = "segment_changed", "Segment changed"
    NOTE = "note", "Note"
    DUNNING = "dunning", "Dunning"
    CALL = "call", "Call"
    PROMISE = "promise", "Promise to pay"
    PAYMENT_PLAN = "payment_plan", "Payment plan"
    DISPUTE = "dispute", "Dispute"
    EXCEPTION = "exception", "Exception"
    # Bad debt given up: a decision of its own, which a credit team reviews
    # apart from the exceptions that only bend a rule for a while.
    WRITE_OFF = "write_off", "Write-off"
    PAUSE = "pause", "Dunning paused or resumed"
    WORK = "work", "Worklist"


def _now():
    """timezone.now, looked up when an event is recorded (the demo's replay
    of past days sets the clock there)."""
    return timezone.now()


class TimelineEventQuerySet(models.QuerySet):
    def for_customer(self, customer: Customer) -> TimelineEventQuerySet:
        return self.filter(customer=customer).order_by("-occurred_at", "-id")

    def for_subject(self, subject: models.Model) -> TimelineEventQuerySet:
        """What happened to one row (a plan, an invoice), through the event_subject index."""
        return self.filter(subject_type=ContentType.objects.get_for_model(subject), subject_id=subject.pk)


class TimelineEvent(models.Model):
    """One thing that happened on an account. Append-only: rows are never edited.

    PostgreSQL enforces that with a trigger (see the migration); the ORM side
    offers no update path.
    """

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    occurred_at = models.DateTimeField(default=_now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who did it; empty for the system (imports, scheduled jobs).",
    )
    # Whole, however long: the timeline is the account's record, and what a
    # person wrote into an entry (a plan's reason, why a step was declined)
    # must read there as written.
    summary = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    subject_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")

    objects = TimelineEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            # The customer timeline: newest first, keyset-paginated on (occurred_at, id).
            models.Index(
                "customer", models.F("occurred_at").desc(), models.F("id").desc(),
                name="event_customer_timeline",
            ),
            # "What happened to this invoice/payment?" looks up by subject.
            models.Index(fields=["subject_type", "subject_id"], name="event_subject"),
            # The due dates invoices had at a past day (ar_collections.numbers.due_dates_then)
            # read only the invoice changes since that day, not every event of every invoice.
            models.Index(fields=["occurred_at"], condition=models.Q(kind=EventKind.INVOICE_CHANGED),
                         name="event_invoice_changed"),
        ]

    def __str__(self) -> str:
        # In local time, as the timeline writes it: "5 Aug 2025 00:30", not "2025-08-04 22:30" in UTC.
        local = timezone.localtime(self.occurred_at)
        return f"{format_day(local.date())} {local:%H:%M} {self.get_kind_display()}: {self.summary}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Timeline events are append-only; record a new event instead.")
        super().save(*args, **kwargs)


# An absence ended on its first day keeps that day as its last (the stand-in
# may have worked the accounts that morning, and the record must say they
# were allowed to), but it is over from the moment it was ended: the absent
# person is back, and their list and accounts are theirs again at once.
ENDED_ON_ITS_LAST_DAY = Q(ended_at__date=models.F("ends_on"))


class CollectorAbsenceQuerySet(models.QuerySet):
    def standing(self) -> CollectorAbsenceQuerySet:
        """Absences not called off before they began."""
        return self.filter(cancelled=False)

    def in_force(self, *, on: dt.date) -> CollectorAbsenceQuerySet:
        return self.standing().filter(starts_on__lte=on, ends_on__gte=on).exclude(
            ENDED_ON_ITS_LAST_DAY, ends_on=on)

    def not_over(self, *, on: dt.date) -> CollectorAbsenceQuerySet:
        """In force on `on` or still to come."""
        return self.standing().filter(ends_on__gte=on).exclude(ENDED_ON_ITS_LAST_DAY, ends_on=on)

    def overlapping(self, *, starts_on: dt.date, ends_on: dt.date) -> CollectorAbsenceQuerySet:
        return self.standing().filter(starts_on__lte=ends_on, ends_on__gte=starts_on)


class CollectorAbsence(models.Model):
    """A collector (or manager) away for some days, and who covers for them:
    their worklist and their accounts are the stand-in's while it is in force
    (customers.cover). Written through customers.services (absence_record,
    absence_end), which record each decision on the accounts' timelines."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="absences")
    starts_on = models.DateField("away from")
    ends_on = models.DateField("away until (last day)")
    stand_in = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="covering",
        help_text="Who works the absent person's list and accounts meanwhile.",
    )
    note = models.CharField(max_length=300, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=_now)
    # Ended early: who and when (ends_on then holds the new last day), or,
    # ended before it began, called off altogether (`cancelled`).
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    cancelled = models.BooleanField(default=False)

    objects = CollectorAbsenceQuerySet.as_manager()

    class Meta:
        ordering = ["starts_on", "pk"]
        constraints = [
            models.CheckConstraint(
                name="collector_absence_ends_after_it_starts", condition=Q(ends_on__gte=models.F("starts_on"))
            ),
            models.CheckConstraint(
                name="collector_absence_not_own_stand_in", condition=~Q(stand_in=models.F("user"))
            ),
        ]
        indexes = [
            # "Who covers for whom today" (customers.cover.stand_ins) reads the absences not over yet.
            models.Index(fields=["ends_on", "starts_on"], name="collector_absence_period",
                         condition=Q(cancelled=False)),
        ]

    def __str__(self) -> str:
        return f"{self.user} away {format_day(self.starts_on, year=False)}–{format_day(self.ends_on)}"
