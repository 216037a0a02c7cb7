"""The outbox in the admin: pending events to look at, dead letters to re-queue or purge.

Events are facts: nobody adds or edits one by hand. Dead letters leave the
table only through the services (re-queued to the outbox unchanged, or purged).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from webapp.outbox.errors import error_summary
from webapp.outbox.models import DeadLetter, OutboxEvent
from webapp.outbox.services import dead_letter_purge, dead_letter_requeue


class ReadOnlyEventAdmin[M: Model](admin.ModelAdmin[M]):
    """Events can be looked at, never added or edited."""

    # The changelist already counts the filtered rows once; a second count of
    # the whole table is wasted on an outbox that may hold a large backlog.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyEventAdmin[OutboxEvent]):
    """Events waiting for the relay, oldest first."""

    list_display = ("id", "event_type", "event_id", "event_date_time", "attempts")
    list_filter = ("event_type",)
    search_fields = ("=event_id",)
    ordering = ("id",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a pending event loses it: the relay alone removes delivered rows.
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyEventAdmin[DeadLetter]):
    """Events ClickHouse refused: read the error, fix the cause, re-queue or purge."""

    list_display = ("event_type", "event_id", "attempts", "dead_lettered_at", "error_preview")
    list_filter = ("event_type", "dead_lettered_at")
    search_fields = ("=event_id",)
    actions = ("requeue", "purge")

    @admin.display(description="error")
    def error_preview(self, letter: DeadLetter) -> str:
        """The error's code and headline; the full text, which quotes the row, is on the detail page."""
        return error_summary(letter.error)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Purging goes through the service, like every other way out of the table.
        actions.pop("delete_selected", None)
        return actions

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        """Re-queueing changes where an event lives, so it takes the model's change permission."""
        return request.user.has_perm("outbox.change_deadletter")

    @admin.action(description="Re-queue selected dead letters", permissions=["requeue"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        """Move the selected dead letters back to the outbox, unchanged."""
        staff_id = request.user.pk
        assert staff_id is not None, "the admin serves signed-in staff only"
        # One transaction: the history records a move only if the move happened.
        with transaction.atomic():
            LogEntry.objects.log_actions(
                user_id=staff_id,
                queryset=queryset,
                action_flag=DELETION,
                change_message="Re-queued to the outbox.",
            )
            moved = dead_letter_requeue(ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Re-queued {moved} dead letter(s) to the outbox.", messages.SUCCESS)

    @admin.action(description="Purge selected dead letters", permissions=["delete"])
    def purge(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        """Delete the selected dead letters for good."""
        # The history entries and the deletion commit together, or neither does.
        with transaction.atomic():
            self.log_deletions(request, queryset)
            purged = dead_letter_purge(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Purged {purged} dead letter(s).", messages.SUCCESS)
