"""The users' admin, with a way to let a user sign in again at once after
too many failed sign-ins (as `manage.py sign_in_unlock` does)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from arcrm import throttle

admin.site.unregister(User)


@admin.register(User)
class ArcrmUserAdmin(UserAdmin):
    actions = ["sign_in_unlock"]

    @admin.action(description="Let the selected users sign in again now (after too many failed sign-ins)",
                  permissions=["change"])
    def sign_in_unlock(self, request, queryset) -> None:
        names = list(queryset.values_list("username", flat=True))
        for name in names:
            throttle.forget_name(name)
        self.message_user(request, f"May sign in again: {', '.join(names)}.", messages.SUCCESS)
