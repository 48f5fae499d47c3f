"""The three roles and what each may do, and the group of the users other
systems sign API requests as.

Roles are Django groups holding model permissions (created by the migration
customers/0002_roles). Views ask these helpers; templates only mirror them.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

COLLECTOR = "Collector"
MANAGER = "Manager"
VIEWER = "Viewer"
# Not a person's role: the user a system such as the ERP signs API requests as
# (ar_collections/api.py), who reads accounts and records invoices and
# payments, and works no list (the pickers of people offer only the roles above).
INTEGRATION = "Integration"

# Which model permissions each group holds, by app label and codename.
READ = [
    ("customers", "view_customer"),
    ("customers", "view_contact"),
    ("customers", "view_contactabsence"),
    ("customers", "view_timelineevent"),
    ("collections", "view_invoice"),
    ("collections", "view_payment"),
    ("collections", "view_creditnote"),
    ("collections", "view_allocation"),
    ("collections", "view_writeoff"),
    ("collections", "view_paymentbehaviour"),
    ("collections", "view_latepaymentpolicy"),
    ("collections", "view_dunningstep"),
    ("collections", "view_stepfee"),
    ("collections", "view_dunningpause"),
    ("collections", "view_call"),
    ("collections", "view_promise"),
    ("collections", "view_paymentplan"),
    ("collections", "view_instalment"),
    ("collections", "view_dispute"),
    ("collections", "view_exceptionrequest"),
    ("collections", "view_workitem"),
    ("collections", "view_moneypointscale"),
    ("collections", "view_holiday"),
]
WORK_AN_ACCOUNT = [
    ("customers", "change_customer"),
    ("customers", "add_contact"),
    ("customers", "change_contact"),
    ("customers", "delete_contact"),
    ("customers", "add_contactabsence"),
    ("customers", "change_contactabsence"),
    ("customers", "delete_contactabsence"),
    ("customers", "add_timelineevent"),
    ("collections", "add_call"),
    ("collections", "add_promise"),
    ("collections", "add_paymentplan"),
    ("collections", "add_dispute"),
    ("collections", "change_dispute"),
    ("collections", "add_dunningpause"),
    ("collections", "change_dunningpause"),
    ("collections", "add_exceptionrequest"),
    ("collections", "change_workitem"),
]
MANAGE = [
    ("customers", "act_on_any_customer"),
    ("customers", "set_credit_terms"),
    ("customers", "add_customer"),
    ("collections", "add_latepaymentpolicy"),
    ("collections", "change_latepaymentpolicy"),
    ("collections", "add_dunningstep"),
    ("collections", "change_dunningstep"),
    ("collections", "delete_dunningstep"),
    # A step's late fees per currency belong to the step.
    ("collections", "add_stepfee"),
    ("collections", "change_stepfee"),
    ("collections", "delete_stepfee"),
    # A policy's minimum amount per currency belongs to the policy.
    ("collections", "add_policyminimum"),
    ("collections", "change_policyminimum"),
    ("collections", "delete_policyminimum"),
    ("collections", "change_paymentplan"),
    ("collections", "change_exceptionrequest"),
    # Cash application: a payment takes money off invoices and can keep a promise.
    ("collections", "add_payment"),
    # A credit note takes money off an invoice as a payment does, and a plan asks for less.
    ("collections", "add_creditnote"),
    # The ERP's invoices, payments and customer accounts, imported from CSV or a workbook.
    ("collections", "import_receivables"),
    # Bad debt: what an invoice still owes, written off (workspace.invoice_write_off).
    ("collections", "write_off_invoice"),
    # A credit beyond the collectors' limit (CollectionRules.credit_without_manager_amount).
    ("collections", "settle_beyond_credit_limit"),
    ("collections", "change_collectionrules"),
    # The worklist's money scale per currency belongs to the collection rules.
    ("collections", "add_moneypointscale"),
    ("collections", "change_moneypointscale"),
    ("collections", "delete_moneypointscale"),
    # So do the office's holidays (the days no letter is posted).
    ("collections", "add_holiday"),
    ("collections", "change_holiday"),
    ("collections", "delete_holiday"),
    ("collections", "add_department"),
    ("collections", "change_department"),
]
GROUP_PERMISSIONS = {
    VIEWER: READ,
    COLLECTOR: READ + WORK_AN_ACCOUNT,
    MANAGER: READ + WORK_AN_ACCOUNT + MANAGE,
    INTEGRATION: [*READ, ("collections", "import_receivables"), ("customers", "integration_account")],
}


def role_of(user) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return MANAGER
    # Kept on the user when it came from the cache (arcrm/authcache.py).
    names = getattr(user, "_arcrm_group_names", None)
    if names is None:
        names = {group.name for group in user.groups.all()}
    for role in (MANAGER, COLLECTOR, VIEWER):
        if role in names:
            return role
    return None


def is_integration_account(user) -> bool:
    """Told by the Integration group's own permission, not by reading the
    groups: the permissions are read for the view's checks anyway, so asking
    costs no query. A superuser holds every permission and is no such account."""
    return (user.is_authenticated and not user.is_superuser
            and "customers.integration_account" in user.get_all_permissions())


def integration_account_refusal(user) -> str:
    return (f"{user.get_username()} is an integration account: the system using it signs API requests "
            "with a token and opens no page here. Sign in with a person's login.")


class IntegrationAccountMiddleware:
    """Keeps the Integration group's users out of every page meant for people
    (the admin too), with a 403 saying why. Sign-in refuses them already
    (arcrm/forms.py); this covers a session from before an admin put the
    user in the group. Above all such a user must never manage API tokens:
    it could issue itself one acting as a manager. The API (which never reads
    the session) and signing out stay open."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match.namespace == "api" or match.url_name == "logout" or not is_integration_account(request.user):
            return None
        raise PermissionDenied(integration_account_refusal(request.user))


def can_act_on(user, customer) -> bool:
    """May this user change this account? Managers: any; collectors: their
    own, and those of a colleague away whom they cover for today
    (customers.cover)."""
    if not user.is_authenticated or not user.has_perm("customers.change_customer"):
        return False
    if customer.collector_id == user.pk or user.has_perm("customers.act_on_any_customer"):
        return True
    from customers.cover import covered_by  # customers imports this module

    return customer.collector_id in covered_by(user)


def require_act_on(user, customer) -> None:
    if not can_act_on(user, customer):
        raise PermissionDenied("You may look at this account but not change it.")


def holds_handed_over_item(user, customer) -> bool:
    """Does this user, active and in a role that works accounts, hold an open
    item of this account that was handed to them on purpose (WorkItem.handed_by)?"""
    if not user.is_authenticated or not user.is_active or not user.has_perm("collections.change_workitem"):
        return False
    from ar_collections.models import WorkItem, WorkStatus  # ar_collections imports this module

    return WorkItem.objects.filter(customer_id=customer.pk, assignee_id=user.pk, status=WorkStatus.OPEN,
                                   handed_by__isnull=False).exists()


def may_work_for_item(user, customer) -> bool:
    """May this user do on this account what a worklist item asks: log the
    call and its outcome, record a promise to pay, add a note, and tick off,
    snooze or hand on the item? Whoever may act on the account (can_act_on);
    and a fellow collector holding an open item of it handed to them on
    purpose, until that item is done. Nothing more of the account is theirs:
    not its card or contacts, plans, disputes, pauses, exceptions, letters
    or statements, which stay with whoever works the account."""
    return can_act_on(user, customer) or (user.has_perm("customers.change_customer")
                                          and holds_handed_over_item(user, customer))


def require_work_for_item(user, customer) -> None:
    if not may_work_for_item(user, customer):
        raise PermissionDenied("You may look at this account but not change it.")


def sync_role_groups(**kwargs) -> None:
    """After every `migrate` (and every test-database flush), make the three
    groups hold exactly the permissions listed above, so adding a permission
    here is all it takes to grant it."""
    from django.contrib.auth.models import Group, Permission

    using = kwargs.get("using", "default")
    permissions = {
        (p.content_type.app_label, p.codename): p
        for p in Permission.objects.using(using).select_related("content_type")
    }
    for name, wanted in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set([permissions[key] for key in wanted if key in permissions])
