from django.apps import AppConfig


class ArcrmConfig(AppConfig):
    name = "arcrm"
    verbose_name = "arcrm"

    def ready(self) -> None:
        from arcrm import authcache

        authcache.connect()
