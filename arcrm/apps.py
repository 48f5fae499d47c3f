from django.apps import AppConfig


class ArcrmConfig(AppConfig):
    name = "arcrm"
    verbose_name = "arcrm"
