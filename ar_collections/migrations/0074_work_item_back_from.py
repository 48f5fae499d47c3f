import re

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# What the worklist added to the title of an item handed back after an absence
# (worklist.items_back_from_cover) before the item said so beside it.
BACK_SAID = re.compile(r" \(back from ([^()]*), who covered\)$")


def _name(user) -> str:
    # As arcrm.text.person_name says it, which wrote the title.
    full = " ".join(part for part in (user.first_name.strip(), user.last_name.strip()) if part)
    return full or user.username


def back_said_beside_the_item(apps, schema_editor):
    """The title loses what it said of who covered, which it kept for good;
    an open item says it beside it instead, when the name is one person's
    (the name alone does not say which of two namesakes it was)."""
    WorkItem = apps.get_model("collections", "WorkItem")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    named: dict[str, list[int]] = {}
    for user in User.objects.only("pk", "first_name", "last_name", "username").iterator():
        named.setdefault(_name(user), []).append(user.pk)
    for item in WorkItem.objects.filter(title__endswith=", who covered)").only("pk", "title", "status"):
        said = BACK_SAID.search(item.title)
        if said is None:
            continue
        who = named.get(said.group(1), [])
        WorkItem.objects.filter(pk=item.pk).update(
            title=item.title[:said.start()],
            back_from_id=who[0] if item.status == "open" and len(who) == 1 else None,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0073_wording_pdf'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='workitem',
            name='back_from',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(back_said_beside_the_item, migrations.RunPython.noop),
    ]
