from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_missing_ladders(sender, using="default", **kwargs) -> None:
    from ar_collections.default_policies import ladders_install_missing
    from ar_collections.models import DunningStep, LatePaymentPolicy, PolicyMinimum, StepFee

    ladders_install_missing(
        policy_model=LatePaymentPolicy, step_model=DunningStep, minimum_model=PolicyMinimum,
        fee_model=StepFee, using=using,
    )


def _rules_row_create(sender, using="default", **kwargs) -> None:
    """The one row of collection rules, as migration 0077 makes it, made again
    after a flush empties the tables (as the default ladders are): pages read
    the rules and never write them."""
    from ar_collections.models import CollectionRules

    if not CollectionRules.objects.using(using).filter(pk=1).exists():
        CollectionRules.objects.using(using).create(pk=1)


class CollectionsConfig(AppConfig):
    # The package is ar_collections because a top-level "collections" would
    # shadow the standard library; tables, admin and URLs keep the label.
    name = "ar_collections"
    label = "collections"
    verbose_name = "Collections"

    def ready(self) -> None:
        from ar_collections import checks  # noqa: F401  (registers them)
        from ar_collections.services import (
            behaviour_in_new_currency_on_commit,
            credit_terms_in_force_skip_on_commit,
            cycle_terms_lifted_record,
        )
        from ar_collections.worklist import items_hand_over, items_handed_back_on_commit
        from arcrm.roles import sync_role_groups
        from customers.services import (
            collector_changed,
            cover_ended,
            cover_recorded,
            credit_terms_changed,
            currency_changed,
        )

        collector_changed.connect(items_hand_over, dispatch_uid="arcrm-work-items-follow-the-account")
        cover_ended.connect(items_handed_back_on_commit, dispatch_uid="arcrm-work-items-back-after-cover")
        cover_recorded.connect(items_handed_back_on_commit, dispatch_uid="arcrm-work-items-on-with-cover")
        credit_terms_changed.connect(credit_terms_in_force_skip_on_commit,
                                     dispatch_uid="arcrm-steps-in-force-skip")
        credit_terms_changed.connect(cycle_terms_lifted_record, dispatch_uid="arcrm-cycle-terms-lifted")
        currency_changed.connect(behaviour_in_new_currency_on_commit,
                                 dispatch_uid="arcrm-behaviour-in-new-currency")

        post_migrate.connect(_install_missing_ladders, sender=self, dispatch_uid="arcrm-default-ladders")
        post_migrate.connect(_rules_row_create, sender=self, dispatch_uid="arcrm-collection-rules-row")
        # The roles' collections permissions exist only from this app's post_migrate on.
        post_migrate.connect(
            sync_role_groups, sender=self, dispatch_uid="arcrm-sync-role-groups-collections"
        )

