from django.db import migrations, models


def granted_as_asked(apps, schema_editor):
    """Until now a dated exception was approved for the end asked, or not at all."""
    ExceptionRequest = apps.get_model("collections", "ExceptionRequest")
    ExceptionRequest.objects.filter(status="approved", pause_until__isnull=False).update(
        granted_until=models.F("pause_until")
    )


class Migration(migrations.Migration):

    dependencies = [
        ("collections", "0039_ladder_ended_work_plan_agreed_mail"),
    ]

    operations = [
        migrations.AlterField(
            model_name="exceptionrequest",
            name="pause_until",
            field=models.DateField(blank=True, help_text="The end the collector asked for.", null=True),
        ),
        migrations.AddField(
            model_name="exceptionrequest",
            name="granted_until",
            field=models.DateField(
                blank=True,
                help_text="The end a manager granted: the one asked for, or an earlier one. Empty unless approved.",
                null=True,
            ),
        ),
        migrations.RunPython(granted_as_asked, migrations.RunPython.noop),
    ]
