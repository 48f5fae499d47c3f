"""Create the Collector, Manager and Viewer groups with their permissions."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    from arcrm.roles import GROUP_PERMISSIONS

    # Permissions are normally created after all migrations; make them now so
    # the groups can hold them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            # A permission added by a later migration does not exist yet; the
            # post_migrate sync (arcrm.roles.sync_role_groups) grants it then.
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission:
                group.permissions.add(permission)


def remove_roles(apps, schema_editor):
    from arcrm.roles import GROUP_PERMISSIONS

    apps.get_model("auth", "Group").objects.filter(name__in=GROUP_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0001_initial"),
        ("collections", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
