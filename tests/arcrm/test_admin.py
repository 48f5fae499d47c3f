import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse


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
