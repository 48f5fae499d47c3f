"""`manage.py check --database default` (and `migrate`) warns of a policy
or of collection rules saved before a check that would now refuse them:
they run as saved, and nothing else would tell whoever deploys that a
ladder stands still or a limit lies outside its bounds.

A database check, as Django's own are: run only when the command names the
databases to check. Every other caller of the checks — `runserver`, a
Celery worker starting (its Django fixup runs them), a test without the
database — reaches no database through it.
"""

from __future__ import annotations

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError, connection, transaction


@register(Tags.database)
def saved_before_checks(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    """One warning per problem, in the words a save would refuse it with.
    Not on a database without our tables yet (`migrate` runs the checks
    before it creates them), nor on one that cannot be reached or whose
    tables are behind our models (`makemigrations` must still run)."""
    from ar_collections.models import CollectionRules, LatePaymentPolicy

    if not databases or "default" not in databases:
        return []
    if app_configs is not None and not any(config.label == "collections" for config in app_configs):
        return []
    tables = {LatePaymentPolicy._meta.db_table, CollectionRules._meta.db_table}
    try:
        if not tables <= set(connection.introspection.table_names()):
            return []
        # A savepoint when called inside a transaction: a failed query must not spoil it.
        with transaction.atomic():
            policies = LatePaymentPolicy.objects.gap_problems()
            rules = CollectionRules.objects.filter(pk=1).first()
            limits = rules.bounds_problems() if rules else []
    except DatabaseError:
        return []
    warnings = [
        Warning(f"This late-payment policy runs as saved, but a save of it would be refused: {problem}",
                hint="Mend it on its page in the admin.", obj=policy, id="collections.W001")
        for policy, problems in policies for problem in problems
    ]
    warnings += [
        Warning(f"The collection rules hold as saved, but a save of them would be refused: {problem}",
                hint="Mend them on their page in the admin.", obj=rules, id="collections.W002")
        for problem in limits
    ]
    return warnings
