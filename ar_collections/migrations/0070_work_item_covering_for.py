import re

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# What the worklist added to the title of an item it gave a stand-in
# (worklist.items_covered) before the item said so in its data.
COVERING_SAID = re.compile(r" \(covering for ([^()]*)\)$")


def _name(user) -> str:
    # As arcrm.text.person_name says it, which wrote the title.
    full = " ".join(part for part in (user.first_name.strip(), user.last_name.strip()) if part)
    return full or user.username


def open_items_covering_for_their_collector(apps, schema_editor):
    """An open item with someone other than its account's collector whose
    title says it covers for that collector went to them for the absence:
    it is the collector's once they are back. One naming anyone else (an
    item put on another person's list) is left as it was: the name alone
    does not say who that was."""
    WorkItem = apps.get_model("collections", "WorkItem")
    for item in (WorkItem.objects.filter(status="open", customer__collector__isnull=False,
                                         title__endswith=")", title__contains=" (covering for ")
                 .exclude(assignee_id=models.F("customer__collector_id"))
                 .select_related("customer__collector").iterator()):
        said = COVERING_SAID.search(item.title)
        if said and said.group(1) == _name(item.customer.collector):
            WorkItem.objects.filter(pk=item.pk).update(covering_for_id=item.customer.collector_id)


class Migration(migrations.Migration):

    dependencies = [
        ('collections', '0069_allocations_of_reversals_kept'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='workitem',
            name='covering_for',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(open_items_covering_for_their_collector, migrations.RunPython.noop),
    ]
