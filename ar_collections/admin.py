from django.contrib import admin

from ar_collections.models import (
    Allocation,
    CreditNote,
    DocumentCounter,
    DunningStep,
    Invoice,
    LatePaymentPolicy,
    Payment,
    PaymentBehaviour,
)


class AllocationInline(admin.TabularInline):
    model = Allocation
    extra = 0
    raw_id_fields = ["invoice", "payment", "credit_note"]


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["number", "customer", "issue_date", "due_date", "currency", "total_amount",
                    "open_amount", "status"]
    list_filter = ["status", "currency"]
    search_fields = ["number", "po_reference", "customer__name"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    date_hierarchy = "due_date"
    inlines = [AllocationInline]


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["received_on", "customer", "currency", "amount", "method", "reference"]
    list_filter = ["method", "currency"]
    search_fields = ["reference", "customer__name"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    inlines = [AllocationInline]


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin):
    list_display = ["number", "customer", "invoice", "issued_on", "currency", "amount"]
    search_fields = ["number", "customer__name"]
    list_select_related = ["customer", "invoice"]
    raw_id_fields = ["customer", "invoice"]
    inlines = [AllocationInline]


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = ["invoice", "payment", "credit_note", "amount", "allocated_on"]
    list_select_related = ["invoice", "payment", "credit_note"]
    raw_id_fields = ["invoice", "payment", "credit_note"]


@admin.register(DocumentCounter)
class DocumentCounterAdmin(admin.ModelAdmin):
    list_display = ["prefix", "next_value"]


@admin.register(PaymentBehaviour)
class PaymentBehaviourAdmin(admin.ModelAdmin):
    """Computed nightly; shown for reading, never edited by hand."""

    list_display = ["customer", "computed_on", "avg_days_late", "share_paid_late",
                    "open_amount", "overdue_amount", "max_days_overdue"]
    list_select_related = ["customer"]
    search_fields = ["customer__name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DunningStepInline(admin.TabularInline):
    model = DunningStep
    extra = 0


@admin.register(LatePaymentPolicy)
class LatePaymentPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "segment", "is_active", "auto_send", "min_days_between_contacts"]
    list_filter = ["segment", "is_active"]
    inlines = [DunningStepInline]


@admin.register(DunningStep)
class DunningStepAdmin(admin.ModelAdmin):
    list_display = ["policy", "position", "day_offset", "action", "tone", "pay_by_days"]
    list_filter = ["policy", "action", "tone"]
