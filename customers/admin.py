from django.contrib import admin

from customers.models import Contact, ContactAbsence, Customer, TimelineEvent


class ContactInline(admin.StackedInline):
    model = Contact
    extra = 0


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "account_number", "segment", "collector", "terms_type", "on_credit_hold"]
    list_filter = ["segment", "terms_type", "on_credit_hold", "industry", "collector"]
    search_fields = ["name", "account_number", "contacts__email"]
    list_select_related = ["collector"]
    raw_id_fields = ["referred_by"]
    readonly_fields = ["segment", "segment_reason", "created_at", "updated_at"]
    inlines = [ContactInline]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "customer", "role", "email", "reminder_channel", "is_primary_billing"]
    list_filter = ["role", "reminder_channel", "invoice_delivery", "language"]
    search_fields = ["name", "email", "customer__name"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]


@admin.register(ContactAbsence)
class ContactAbsenceAdmin(admin.ModelAdmin):
    list_display = ["contact", "starts_on", "ends_on", "delegate", "note"]
    list_select_related = ["contact", "delegate"]
    raw_id_fields = ["contact", "delegate"]
    date_hierarchy = "starts_on"


@admin.register(TimelineEvent)
class TimelineEventAdmin(admin.ModelAdmin):
    """Read-only: the timeline is append-only, in the admin as everywhere."""

    list_display = ["occurred_at", "customer", "kind", "summary", "actor"]
    list_filter = ["kind"]
    search_fields = ["summary", "customer__name"]
    list_select_related = ["customer", "actor"]
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
