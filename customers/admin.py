from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from arcrm.admin_columns import (
    MoneyShownReadOnly,
    PeopleShownReadOnly,
    PersonListFilter,
    ViewOnly,
    person_column,
)
from arcrm.money import validate_currency_in_use
from customers import services
from customers.models import CollectorAbsence, Contact, ContactAbsence, Customer, TimelineEvent


class LeadsToTheAccountPage:
    """ModelAdmin mixin: a read-only field `account_page` linking to the page
    where the row is changed."""

    @admin.display(description="Change on")
    def account_page(self, obj) -> str:
        customer = self.customer_of(obj)
        return format_html('<a href="{}">the account page of {}</a>',
                           reverse("customers:detail", args=[customer.pk]), customer.name)

    def customer_of(self, obj) -> Customer:
        return obj.customer


class ChangedOnTheAccountPage(ViewOnly, LeadsToTheAccountPage):
    """ModelAdmin or inline mixin: only looked at here. Contacts and absences
    change on the account page, through the services that write the timeline
    entry with before and after, take the primary billing flag from the
    contact that had it and close the "find a working address" item once an
    address works again; a save here would do none of that. One way to make
    each change, so the admin leads there instead."""


# Why mail to a contact stops: the address the mail server refused for good,
# when and what it said. Kept by delivery (not editable, so the admin leaves
# them out unless told), shown beside the address.
REFUSED_ADDRESS_FIELDS = ["email_refused", "email_refused_on", "email_refused_reason"]


class ContactInline(ChangedOnTheAccountPage, admin.StackedInline):
    model = Contact
    extra = 0
    readonly_fields = REFUSED_ADDRESS_FIELDS


class CustomerOpenForm(forms.ModelForm):
    def clean_currency(self) -> str:
        # A new account's money comes in a currency people pay in, and one
        # whose amounts are kept to their last unit (no KWD, whose fils need
        # three places): as the account card and the imports take it.
        currency = self.cleaned_data["currency"].strip().upper()
        validate_currency_in_use(currency)
        return currency


@admin.register(Customer)
class CustomerAdmin(LeadsToTheAccountPage, PeopleShownReadOnly, MoneyShownReadOnly, admin.ModelAdmin):
    """Accounts are opened here (imports and the ERP sync bring invoices and
    payments for accounts that exist), through services.customer_open, which
    begins their timeline, and only looked at afterwards: the card
    changes on the account page, which records every change with before and
    after (services.customer_update) and hands the worklist over with the
    collector."""

    list_display = ["name", "account_number", "segment", person_column("collector"), "terms_type",
                    "on_credit_hold"]
    list_filter = ["segment", "terms_type", "on_credit_hold", "industry", ("collector", PersonListFilter)]
    search_fields = ["name", "account_number", "contacts__email"]
    list_select_related = ["collector"]
    raw_id_fields = ["referred_by"]
    # A segment override is a manager's audited decision (the account page's
    # "Override segment", services.segment_override), never a silent edit here.
    readonly_fields = ["segment", "segment_reason", "segment_override", "segment_override_note",
                       "created_at", "updated_at"]
    inlines = [ContactInline]
    form = CustomerOpenForm

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change) -> None:
        # Only ever an account being opened (nothing changes here): its
        # timeline begins with the opening, as every account's does.
        services.customer_open(customer=obj, actor=request.user)

    def get_readonly_fields(self, request, obj=None):
        # An account not yet opened has no page to link to.
        readonly = super().get_readonly_fields(request, obj)
        return [*readonly, "account_page"] if obj is not None else readonly

    def customer_of(self, obj) -> Customer:
        return obj


@admin.register(Contact)
class ContactAdmin(ChangedOnTheAccountPage, admin.ModelAdmin):
    list_display = ["name", "customer", "role", "email", "reminder_channel", "is_primary_billing"]
    list_filter = ["role", "reminder_channel", "invoice_delivery", "language"]
    search_fields = ["name", "email", "customer__name"]
    list_select_related = ["customer"]
    readonly_fields = [*REFUSED_ADDRESS_FIELDS, "account_page"]


@admin.register(ContactAbsence)
class ContactAbsenceAdmin(ChangedOnTheAccountPage, admin.ModelAdmin):
    list_display = ["contact", "starts_on", "ends_on", "delegate", "note"]
    list_select_related = ["contact__customer", "delegate"]
    date_hierarchy = "starts_on"
    readonly_fields = ["account_page"]

    def customer_of(self, obj) -> Customer:
        return obj.contact.customer


@admin.register(CollectorAbsence)
class CollectorAbsenceAdmin(ViewOnly, PeopleShownReadOnly, admin.ModelAdmin):
    """Only looked at here: absences are recorded and ended on the Cover page
    (services.absence_record, absence_end), which refuse overlaps and circles
    of stand-ins and put each decision on the absent collector's accounts."""

    list_display = [person_column("user", "Away"), "starts_on", "ends_on",
                    person_column("stand_in", "Covered by"), "cancelled", person_column("recorded_by")]
    list_filter = ["cancelled", ("user", PersonListFilter), ("stand_in", PersonListFilter)]
    list_select_related = ["user", "stand_in", "recorded_by"]
    date_hierarchy = "starts_on"


@admin.register(TimelineEvent)
class TimelineEventAdmin(ViewOnly, PeopleShownReadOnly, admin.ModelAdmin):
    """Read-only: the timeline is append-only, in the admin as everywhere."""

    list_display = ["occurred_at", "customer", "kind", "summary", person_column("actor")]
    list_filter = ["kind"]
    search_fields = ["summary", "customer__name"]
    list_select_related = ["customer", "actor"]
    date_hierarchy = "occurred_at"
