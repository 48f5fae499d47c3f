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
