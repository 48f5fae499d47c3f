import datetime as dt
import re

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.urls import reverse
from PIL import Image

from ar_collections.models import CollectionRules, Payment
from customers.models import Customer, EventKind, TimelineEvent


def _project_models():
    for label in ("customers", "collections"):
        yield from apps.get_app_config(label).get_models()


def test_every_model_has_an_admin():
    missing = [m.__name__ for m in _project_models() if not admin.site.is_registered(m)]
    assert missing == []


@pytest.mark.parametrize("model", list(_project_models()), ids=lambda m: m.__name__)
def test_every_admin_list_opens_for_a_superuser(client, model, customer):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert client.get(url).status_code == 200


def test_the_admin_cannot_set_a_segment_override(client, customer):
    """An override is a manager's audited decision."""
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    page = client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert 'name="segment_override"' not in page and 'name="segment_override_note"' not in page


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


@pytest.fixture
def named(db):
    """Three collectors, one of them with no name on file."""
    def person(username, first, last):
        return User.objects.create_user(username=username, first_name=first, last_name=last)
    return [person("zed", "Carla", "Adams"), person("amy", "Bea", "Zorn"), person("bob", "Al", "Adams")]


def test_admin_dates_read_as_the_pages_write_them(admin_client, customer, make_invoice):
    make_invoice(customer, issued=dt.date(2026, 3, 2), number="INV-DATE")
    page = admin_client.get(reverse("admin:collections_invoice_changelist")).content.decode()
    assert "2 Mar 2026" in page and "March 2, 2026" not in page


def test_a_change_page_title_writes_its_date_as_the_pages_do(admin_client, customer, make_invoice):
    make_invoice(customer, issued=dt.date(2026, 3, 2), amount="100.00", paid_on=dt.date(2026, 3, 2))
    payment = Payment.objects.get()
    page = admin_client.get(reverse("admin:collections_payment_change", args=[payment.pk])).content.decode()
    assert "<h2>EUR 100.00 on 2 Mar 2026</h2>" in page


def test_admin_columns_name_people_and_sort_by_last_then_first_name(admin_client, named, make_customer):
    for collector in named:
        make_customer(collector=collector)
    url = reverse("admin:customers_customer_changelist")
    columns = admin_client.get(url).context["cl"].list_display
    index = [getattr(column, "__name__", column) for column in columns].index("collector_name")

    listed = admin_client.get(f"{url}?o={index}").context["cl"].result_list
    page = admin_client.get(f"{url}?o={index}").content.decode()

    assert [c.collector.username for c in listed] == ["bob", "zed", "amy"]
    assert "Carla Adams" in page and ">zed<" not in page


def test_the_collector_filter_lists_people_by_name_sorted_by_last_then_first(
    admin_client, named, make_customer
):
    for collector in named:
        make_customer(collector=collector)
    page = admin_client.get(reverse("admin:customers_customer_changelist")).content.decode()
    filters = page[page.index('id="changelist-filter"'):]
    choices = [filters.index(name) for name in ("Al Adams", "Carla Adams", "Bea Zorn")]
    assert choices == sorted(choices)


def _rules_kept_by(user):
    return CollectionRules.objects.update_or_create(pk=1, defaults={"updated_by": user})[0]


def _account_collected_by(user):
    return Customer.objects.create(name="Acme Tools", account_number="C-PEOPLE",
                                   customer_since=dt.date(2020, 1, 1), collector=user)


def _event_by(user):
    customer = _account_collected_by(user)
    return TimelineEvent.objects.create(customer=customer, kind=EventKind.ACCOUNT_CHANGED, summary="Terms",
                                        actor=user)


@pytest.mark.parametrize("row", [_rules_kept_by, _event_by, _account_collected_by],
                         ids=["rules-updated-by", "event-actor", "account-collector"])
def test_a_change_page_names_the_people_it_shows_as_the_pages_do(admin_client, named, row):
    """Read-only, on a page that may be edited (the rules' "updated by", an
    account's collector) or only looked at (a timeline event's actor)."""
    obj = row(named[0])
    opts = obj._meta

    page = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "Carla Adams" in html and ">zed<" not in html


def test_a_list_to_choose_a_person_from_names_them_as_the_pages_do(admin_client, named):
    page = admin_client.get(reverse("admin:customers_customer_add")).content.decode()

    assert ">Carla Adams</option>" in page and ">zed</option>" not in page


# What a superuser may do in the admin, per model and per inline: (add, change, delete).
# A row that changes through a workflow (a payment, a promise, a dunning run...)
# is only looked at here; one the admin edits keeps what the workflow would
# (an invoice refreshes its account's figures, a policy checks its ladder).
# A new admin, or a permission opened on an old one, fails here until it is
# written down with its reason.
ADMIN_PERMISSIONS = {
    # Django's own: people and their roles.
    "auth.Group": (True, True, True),
    "auth.User": (True, True, True),
    # Money in and out: recorded by "Record a payment" / "Record a credit note" / imports.
    "collections.Payment": (False, False, False),
    "collections.CreditNote": (False, False, False),
    "collections.Allocation": (False, False, False),
    # A payment the bank took back: "Reverse a payment" on the account page, or the API.
    "collections.PaymentReversal": (False, False, False),
    "collections.ReceivablesImport": (False, False, False),
    # Made by manage.py api_token_create (the only time its secret shows); revoked by an action.
    "collections.ApiToken": (False, False, False),
    # A manager's decision on the account page ("Write off").
    "collections.WriteOff": (False, False, False),
    # Gap-free numbering, taken under a lock as notes are issued.
    "collections.DocumentCounter": (False, False, False),
    # Set by the database's triggers as a ladder is written (dunning.ladders).
    "collections.LadderStamp": (False, False, False),
    # Invoices: entered and corrected here, figures kept by the admin (InvoiceAdmin).
    "collections.Invoice": (True, True, True),
    # Computed from the account's history.
    "collections.PaymentBehaviour": (False, False, False),
    # Taken as a form that sends to the customer is carried out (services.submission_record).
    "collections.FormSubmission": (False, False, False),
    # The ladders: edited here, checked as a whole; taken steps stay (see DunningStepAdmin).
    "collections.LatePaymentPolicy": (True, True, True),
    "collections.DunningStep": (True, True, True),
    "collections.PolicyMinimum": (True, True, True),
    "collections.StepFee": (False, False, False),
    # The rules: one row, changed with before and after, never deleted.
    # Its one row is made with the schema (collections 0077): nothing left to add.
    "collections.CollectionRules": (False, True, False),
    "collections.MoneyPointScale": (False, False, False),
    "collections.Holiday": (False, False, False),
    # Teams disputes are routed to: plain settings.
    "collections.Department": (True, True, True),
    # What the planner reads and writes for exactly-once dunning.
    "collections.DunningCycle": (False, False, False),
    "collections.DunningRun": (False, False, False),
    "collections.DunningPause": (False, False, False),
    "collections.DunningAction": (False, False, False),
    "collections.DunningActionInvoice": (False, False, False),
    "collections.LateCharge": (False, False, False),
    # The collector's workspace, changed through the account page and the queues.
    "collections.Call": (False, False, False),
    "collections.Promise": (False, False, False),
    "collections.PaymentPlan": (False, False, False),
    "collections.Instalment": (False, False, False),
    "collections.Dispute": (False, False, False),
    "collections.ExceptionRequest": (False, False, False),
    "collections.WriteOffLine": (False, False, False),
    "collections.WorkItem": (False, False, False),
    # Saved on the Wording page only, which checks the words a notice is sent with.
    "collections.WordingVersion": (False, False, False),
    "collections.OutgoingMail": (False, False, False),
    "collections.PaperDocument": (False, False, False),
    "collections.TimelineEventInvoice": (False, False, False),
    # Accounts: opened here, their card changed on the account page (with before
    # and after); one opened by mistake, with no history yet, can be deleted.
    "customers.Customer": (True, False, True),
    # Changed on the account page, whose services keep the timeline, the one
    # primary billing contact and the "address refused" work item.
    "customers.Contact": (False, False, False),
    "customers.ContactAbsence": (False, False, False),
    # Recorded and ended on the Cover page, which refuses overlaps and writes the timelines.
    "customers.CollectorAbsence": (False, False, False),
    "customers.TimelineEvent": (False, False, False),
    # Inlines, on the page of the model before the arrow.
    "collections.Invoice > Allocation": (False, False, False),
    "collections.Payment > Allocation": (False, False, False),
    "collections.CreditNote > Allocation": (False, False, False),
    "collections.LatePaymentPolicy > DunningStep": (True, True, True),
    "collections.LatePaymentPolicy > PolicyMinimum": (True, True, True),
    "collections.DunningStep > StepFee": (True, True, True),
    "collections.CollectionRules > MoneyPointScale": (True, True, True),
    "collections.CollectionRules > Holiday": (True, True, True),
    "collections.DunningAction > DunningActionInvoice": (False, False, False),
    "collections.PaymentPlan > Instalment": (False, False, False),
    "customers.Customer > Contact": (False, False, False),
}


def test_the_admin_allows_a_superuser_to_add_change_and_delete_only_what_the_table_says(rf, db):
    request = rf.get("/admin/")
    request.user = User.objects.create_superuser("root-admin", password="x")
    allowed = {}
    for model, model_admin in admin.site._registry.items():
        name = f"{model._meta.app_label}.{model.__name__}"
        allowed[name] = (model_admin.has_add_permission(request), model_admin.has_change_permission(request),
                         model_admin.has_delete_permission(request))
        for inline in model_admin.get_inline_instances(request):
            allowed[f"{name} > {inline.model.__name__}"] = (
                inline.has_add_permission(request, None), inline.has_change_permission(request),
                inline.has_delete_permission(request))
    assert allowed == ADMIN_PERMISSIONS


def _icon_linked(html: str) -> str:
    """The icon a page links, by its address; fails if it links none."""
    found = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert found, "no icon linked"
    return found.group(1)


@pytest.mark.parametrize("page", ["admin:index", "admin:collections_dunningstep_add", "customers:list"])
def test_admin_and_app_pages_link_the_project_s_icon_which_is_served(admin_client, page):
    """Without one, the browser asks for /favicon.ico on every admin page and
    gets a 404 in the logs."""
    html = admin_client.get(reverse(page)).content.decode()

    href = _icon_linked(html)
    assert href == settings.STATIC_URL + "favicon.ico"
    # What the static files (collected, or served by WhiteNoise) hold under that name.
    found = finders.find(href.removeprefix(settings.STATIC_URL))
    assert found and Image.open(found).format == "ICO"
