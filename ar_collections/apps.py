from django.apps import AppConfig


class CollectionsConfig(AppConfig):
    # The package is ar_collections because a top-level "collections" would
    # shadow the standard library; tables, admin and URLs keep the label.
    name = "ar_collections"
    label = "collections"
    verbose_name = "Collections"
