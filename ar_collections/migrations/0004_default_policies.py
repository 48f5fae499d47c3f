"""Create the default ladder of every segment (ar_collections/default_policies.py)."""

from django.db import migrations


def create(apps, schema_editor):
    from ar_collections.default_policies import ladders_install_missing

    ladders_install_missing(
        policy_model=apps.get_model("collections", "LatePaymentPolicy"),
        step_model=apps.get_model("collections", "DunningStep"),
        minimum_model=apps.get_model("collections", "PolicyMinimum"),
        fee_model=None,  # the fee was a column of the step then
        using=schema_editor.connection.alias,
    )


class Migration(migrations.Migration):
    dependencies = [("collections", "0003_dunning")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
