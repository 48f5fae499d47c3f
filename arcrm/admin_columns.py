"""What the admin shows as the rest of the product does: money in its
currency's own places ("JPY 6,000", "EUR 1,234.50") and people by name.

The admin's own would show the raw "6000.00" whatever the currency, and a user
by username ("carla") where the pages say "Carla Collins".
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.contrib.admin.options import FORMFIELD_FOR_DBFIELD_DEFAULTS
from django.contrib.auth import get_user_model
from django.db.models import BigIntegerField, DecimalField, IntegerField, Value
from django.db.models.functions import Coalesce, Concat, NullIf

from arcrm.forms import MoneyField, WholeNumberField
from arcrm.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, format_money
from arcrm.text import person_name

# Every amount the admin takes is typed as in the app's own forms (MoneyField:
# "1e3" refused, where Decimal would read EUR 1,000.00). Set here, where every
# admin module looks, before any of them registers: a ModelAdmin copies these
# defaults as it is made. (A model field of its own for money would do it for
# every form, but Django refuses an expression mixing two decimal field
# classes, such as a sum of an amount and a Value, without an output_field.)
FORMFIELD_FOR_DBFIELD_DEFAULTS[DecimalField] = {"form_class": MoneyField}
# A whole number likewise (WholeNumberField): "３０" refused, where int() would
# read 30. Big integers have an entry of their own; both keep the admin's widget.
for _whole in (IntegerField, BigIntegerField):
    FORMFIELD_FOR_DBFIELD_DEFAULTS[_whole] = {**FORMFIELD_FOR_DBFIELD_DEFAULTS.get(_whole, {}),
                                              "form_class": WholeNumberField}


def money_column(field: str, currency: str | Callable = "currency", description: str | None = None):
    """A list column (or read-only field) showing `field` as the rest of the
    product shows money; it still sorts by the amount.
    `currency` is the row's attribute holding it (dotted through relations,
    which the admin's list_select_related should load), or a function of the row."""

    def currency_of(obj) -> str:
        if callable(currency):
            return currency(obj)
        for name in currency.split("."):
            obj = getattr(obj, name)
        return obj

    def column(obj) -> str:
        return format_money(getattr(obj, field), currency_of(obj))

    # The column keeps the field's name, for its header and its CSS class.
    column.__name__ = field
    return admin.display(description=description or field.replace("_", " ").capitalize(),
                         ordering=field)(column)


def _is_money(field) -> bool:
    return (isinstance(field, DecimalField) and field.max_digits == MONEY_MAX_DIGITS
            and field.decimal_places == MONEY_DECIMAL_PLACES)


class ViewOnly:
    """An admin page that shows its rows and changes none: each subclass says
    why its rows change only through the product's own workflows."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MoneyShownReadOnly:
    """ModelAdmin mixin: a money field shown read-only (in the read-only
    fields, or on a page the user may only view) reads "EUR 1,234.50" as in
    the lists, not the admin's raw "1234.50". The row's `currency` says in
    what; a model whose currency lives elsewhere names it in `money_currency`.
    An admin that overrides get_readonly_fields passes its list through
    `with_money_shown`."""

    money_currency: str | Callable = "currency"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The admin finds a read-only field's value on itself by name.
        self.money_fields = {f.name for f in self.model._meta.concrete_fields if _is_money(f)}
        for name in self.money_fields:
            field = self.model._meta.get_field(name)
            setattr(self, _shown(name), money_column(name, self.money_currency,
                                                     description=field.verbose_name.capitalize()))

    def with_money_shown(self, readonly) -> list:
        """`readonly` and, for each money field in it, what shows it as money
        (the field itself stays read-only too: the form must leave it out)."""
        readonly = list(readonly)
        return readonly + [_shown(name) for name in readonly if name in self.money_fields]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            # An inline's form keeps every field it is not told is read-only.
            readonly += sorted(self.money_fields - set(readonly))
        return self.with_money_shown(readonly)

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            shown = self.money_fields
        else:
            shown = self.money_fields & set(self.get_readonly_fields(request, obj))
        fields = []
        for name in super().get_fields(request, obj):
            name = _shown(name) if name in shown else name
            if name not in fields:
                fields.append(name)
        return fields


def _shown(name: str) -> str:
    return f"{name}_as_money"


def sort_name(prefix: str = ""):
    """A person's name for sorting: last name, then first name; the username
    stands in for the last name of someone with no name on file. `prefix`
    leads from the row to the user ("collector__")."""
    return Concat(
        Coalesce(NullIf(f"{prefix}last_name", Value("")), f"{prefix}username"), Value(" "),
        f"{prefix}first_name",
    )


def person_column(field: str, description: str | None = None):
    """A list column naming the user in `field` by full name, sorted by last
    name then first name; "—" where there is nobody. The admin's
    list_select_related should load the user."""

    def column(obj) -> str:
        user = getattr(obj, field)
        return person_name(user) if user is not None else "—"

    column.__name__ = f"{field}_name"
    return admin.display(description=description or field.replace("_", " ").capitalize(),
                         ordering=sort_name(f"{field}__"))(column)


def _is_person(field) -> bool:
    return field.is_relation and field.many_to_one and field.related_model is get_user_model()


class PeopleShownReadOnly:
    """ModelAdmin mixin: a user field shown read-only (in the read-only
    fields, or on a page the user may only view) names the person as the
    pages do, "Carla Collins", not by username ("carla"); a list to choose a
    person from names them so too. An admin that overrides
    get_readonly_fields passes its list through `with_people_shown`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The admin finds a read-only field's value on itself by name.
        self.people_fields = {f.name for f in self.model._meta.concrete_fields if _is_person(f)}
        for name in self.people_fields:
            field = self.model._meta.get_field(name)
            setattr(self, _named(name), person_column(name, field.verbose_name.capitalize()))

    def with_people_shown(self, readonly) -> list:
        """`readonly` and, for each user field in it, what names the person."""
        readonly = list(readonly)
        return readonly + [_named(name) for name in readonly if name in self.people_fields]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + [_named(name) for name in readonly
                           if name in self.people_fields and _named(name) not in readonly]

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            shown = self.people_fields
        else:
            shown = self.people_fields & set(self.get_readonly_fields(request, obj))
        return [_named(name) if name in shown else name for name in super().get_fields(request, obj)]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and db_field.name in self.people_fields:
            formfield.label_from_instance = person_name
        return formfield


def _named(name: str) -> str:
    # The name person_column gives its column.
    return f"{name}_name"


class PersonListFilter(admin.RelatedFieldListFilter):
    """A filter on a user field that lists people by full name, sorted by last
    name then first name (the admin's own lists usernames)."""

    def field_choices(self, field, request, model_admin):
        users = field.related_model._default_manager.filter(
            pk__in=model_admin.get_queryset(request).values(field.name)
        ).order_by(sort_name(), "pk")
        return [(u.pk, person_name(u)) for u in users]
