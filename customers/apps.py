from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from arcrm.roles import sync_role_groups

        # After the permissions themselves are created (contrib.auth's own
        # post_migrate handler runs first, its app being listed first).
        post_migrate.connect(sync_role_groups, sender=self, dispatch_uid="arcrm-sync-role-groups")
