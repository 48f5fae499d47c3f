from django.apps import AppConfig


class ArcrmConfig(AppConfig):
    name = "arcrm"
    verbose_name = "arcrm"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from arcrm import authcache
        from arcrm.db import sqlite_functions_register

        authcache.connect()
        connection_created.connect(sqlite_functions_register, dispatch_uid="arcrm-sqlite-functions")
