"""Accounts in the admin: found by address or name, their access granted or withdrawn.

What a person does to their own account (signing up, changing a name, a
password, deleting it) goes through the services, which write its event in
the same transaction; the admin adds no other way around them. It cannot add
accounts (the sign-up page and `manage.py createsuperuser` do), shows no
password hash, leaves names and address to their owner, and deletes through
`user_delete`, so an account deleted here is erased like one deleted by its
owner.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from webapp.users.models import User
from webapp.users.services import user_delete


@admin.register(User)
class UserAdmin(admin.ModelAdmin[User]):
    """Find an account; grant or withdraw its access; delete it as its owner would."""

    list_display = (
        "id",
        "email",
        "first_name",
        "last_name",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
    )
    list_display_links = ("id", "email")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "first_name", "last_name")
    ordering = ("-date_joined",)
    date_hierarchy = "date_joined"
    # The password hash is neither shown nor editable: `password` is left out of every form.
    fieldsets = (
        (None, {"fields": ("email", "first_name", "last_name")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    readonly_fields = ("email", "first_name", "last_name", "date_joined", "last_login")
    filter_horizontal = ("groups", "user_permissions")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # An account made here would have no `user_created` event and no password.
        return False

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        user_delete(user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_delete(user=user)
