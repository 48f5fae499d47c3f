"""The signed-in user's role and permissions, kept in the shared cache
between requests.

Every page asks who is signed in and what they may do. Django's ModelBackend
answers with three queries per request (the user, their own permissions, their
groups' permissions), and the role takes a fourth. With a shared cache (Redis,
when REDIS_URL is set) `CachedModelBackend` reads the user's row alone and
answers the rest from one cache read; without one it is the plain ModelBackend.

The user's row itself is never cached: Django checks the session against its
password hash on every request, and a hash belongs in the database, not in a
cache whose memory is copied more lightly. Read afresh, a password changed or
an account deactivated counts at the next request whatever the cache holds.

What is cached must never outlive a change to it:
- any change to a user, their groups or permissions, a group (renamed,
  deleted, its permissions) or a deleted permission replaces the entries of
  the users it concerns with a marker, at once and again after the transaction
  commits. A request that read the old rows before the change only ever adds
  an entry where there is none (`cache.add`), so the marker keeps it out;
  after FORGOTTEN_SECONDS the next request reads the rows afresh. A change
  while Redis cannot be told fails, rather than leave old rights cached;
- the cache is used only outside a transaction: nothing uncommitted, which a
  rollback could take back, is ever shared, and a transaction sees its own
  changes;
- every entry expires after AUTH_CACHE_SECONDS anyway, for changes made behind
  the application's back (SQL by hand).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from arcrm.db import CompiledRead

_KEY = "auth-rights:{}"
# What stands in for a dropped entry, and for how long: far longer than a
# request takes from reading the user's rows to caching them.
_FORGOTTEN = "forgotten"
FORGOTTEN_SECONDS = 60


def enabled() -> bool:
    return getattr(settings, "AUTH_CACHE_SECONDS", 0) > 0


class Rights(NamedTuple):
    """What a cache entry holds: what the user may do, and their roles."""

    user_permissions: frozenset[str]
    group_permissions: frozenset[str]
    group_names: frozenset[str]


class CachedModelBackend(ModelBackend):
    """ModelBackend whose users' permissions and roles come from the shared
    cache (see the module's docstring)."""

    def get_user(self, user_id):
        user = _user_read(user_id)
        if user is not None and not self.user_can_authenticate(user):
            user = None
        # Inside a transaction the rows read may not be committed yet: as if
        # there were no cache, neither read from it nor written to it.
        if user is None or not enabled() or connection.in_atomic_block:
            return user
        key = _KEY.format(user_id)
        rights = cache.get(key)
        if isinstance(rights, Rights):
            # Where ModelBackend keeps what it read: it reads nothing then.
            user._user_perm_cache, user._group_perm_cache = set(rights.user_permissions), set(
                rights.group_permissions)
            user._perm_cache = {*rights.user_permissions, *rights.group_permissions}
            user._arcrm_group_names = rights.group_names
            return user
        # Read now what the request would otherwise read later.
        self.get_all_permissions(user)
        user._arcrm_group_names = frozenset(user.groups.values_list("name", flat=True))
        rights = Rights(frozenset(user._user_perm_cache), frozenset(user._group_perm_cache),
                        user._arcrm_group_names)
        # Only where there is nothing: not over the marker of a change made
        # since these rows were read.
        cache.add(key, rights, settings.AUTH_CACHE_SECONDS)
        return user


def _user_read(user_id):
    """The user's row, read afresh on every request as ModelBackend.get_user
    reads it (None if there is none), by a read compiled once a process:
    building the queryset and its SQL cost more than running it."""
    model = get_user_model()
    rows = _user_row_read().rows(pk=model._meta.pk.get_prep_value(user_id))
    return model.from_db("default", _user_columns(), rows[0]) if rows else None


@functools.cache
def _user_columns() -> tuple[str, ...]:
    return tuple(field.attname for field in get_user_model()._meta.concrete_fields)


@functools.cache
def _user_row_read() -> CompiledRead:
    return CompiledRead(
        lambda pk: get_user_model()._default_manager.filter(pk=pk).values_list(*_user_columns()), pk=-1)


def forget(user_ids: Iterable[int]) -> None:
    """Mark the cached entries of these users forgotten, now and once the
    transaction commits. Not forgiving: if Redis cannot be told, the change fails."""
    keys = [_KEY.format(pk) for pk in set(user_ids)]
    if not keys or not enabled():
        return

    def mark() -> None:
        cache.set_many(dict.fromkeys(keys, _FORGOTTEN), FORGOTTEN_SECONDS)

    mark()
    transaction.on_commit(mark)


def _users_of_groups(group_ids: Iterable[int]) -> list[int]:
    return list(get_user_model().objects.filter(groups__in=list(group_ids)).values_list("pk", flat=True))


def _user_changed(sender, instance, created=False, update_fields=None, **kwargs) -> None:
    # A new user has no entry yet; signing in stamps last_login, which decides
    # nothing: the entry may stay.
    if created or (update_fields is not None and set(update_fields) == {"last_login"}):
        return
    forget([instance.pk])


def _user_links_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """User.groups or User.user_permissions: the instance is a user, or (from
    the other side) a group or permission with the users in `pk_set`."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:
        forget([instance.pk])
    elif action == "pre_clear":  # pk_set is not given: everyone linked to it now
        field = "groups" if isinstance(instance, Group) else "user_permissions"
        forget(get_user_model().objects.filter(**{field: instance}).values_list("pk", flat=True))
    else:
        forget(pk_set or ())


def _group_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """Group.permissions: the members of the groups concerned."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:
        forget(_users_of_groups([instance.pk]))
    elif action == "pre_clear":
        forget(_users_of_groups(instance.group_set.values_list("pk", flat=True)))
    else:
        forget(_users_of_groups(pk_set or ()))


def _group_changed(sender, instance, **kwargs) -> None:
    """A group renamed (the role shown) or deleted: its members."""
    if instance.pk is not None:
        forget(_users_of_groups([instance.pk]))


def _permission_deleted(sender, instance, **kwargs) -> None:
    users = get_user_model().objects
    forget([*users.filter(user_permissions=instance).values_list("pk", flat=True),
            *_users_of_groups(instance.group_set.values_list("pk", flat=True))])


def connect() -> None:
    """Called once from the app's ready()."""
    user_model = get_user_model()
    post_save.connect(_user_changed, sender=user_model, dispatch_uid="authcache-user-saved")
    post_delete.connect(_user_changed, sender=user_model, dispatch_uid="authcache-user-deleted")
    m2m_changed.connect(_user_links_changed, sender=user_model.groups.through,
                        dispatch_uid="authcache-user-groups")
    m2m_changed.connect(_user_links_changed, sender=user_model.user_permissions.through,
                        dispatch_uid="authcache-user-permissions")
    m2m_changed.connect(_group_permissions_changed, sender=Group.permissions.through,
                        dispatch_uid="authcache-group-permissions")
    post_save.connect(_group_changed, sender=Group, dispatch_uid="authcache-group-saved")
    pre_delete.connect(_group_changed, sender=Group, dispatch_uid="authcache-group-deleted")
    pre_delete.connect(_permission_deleted, sender=Permission, dispatch_uid="authcache-permission-deleted")
