from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from arcrm.roles import sync_role_groups

        # contrib.auth creates each app's permissions in that app's post_migrate;
        # the roles hold permissions of both apps, so they are synced after each
        # (collections, listed last, completes them on a fresh database).
        post_migrate.connect(sync_role_groups, sender=self, dispatch_uid="arcrm-sync-role-groups")
