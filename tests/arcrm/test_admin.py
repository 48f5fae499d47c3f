import datetime as dt

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

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


def test_the_admin_cannot_set_a_segment_override_or_move_a_contact(client, customer, make_contact):
    """An override is a manager's audited decision; a contact moved to another
    customer would stay the stand-in its absences name."""
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    page = client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert 'name="segment_override"' not in page and 'name="segment_override_note"' not in page
    contact = make_contact(customer, name="Ben Backup")
    page = client.get(reverse("admin:customers_contact_change", args=[contact.pk])).content.decode()
    assert 'name="customer"' not in page
    assert 'name="customer"' in client.get(reverse("admin:customers_contact_add")).content.decode()


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
    return CollectionRules.objects.create(pk=1, updated_by=user)


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
