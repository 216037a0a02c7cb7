"""`manage.py dead_letters list|requeue|purge`: look at, re-queue or purge events ClickHouse refused."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.outbox.errors import error_summary
from webapp.outbox.selectors import dead_letter_list
from webapp.outbox.services import dead_letter_purge, dead_letter_requeue


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    # The chained comparison also refuses nan and inf, which timedelta cannot take.
    if not 0 <= value <= 36_500:
        raise argparse.ArgumentTypeError(f"expected a number of days from 0 to 36500, got {text!r}")
    return value


class Command(BaseCommand):
    """Dead letters from the command line, for operators without the admin."""

    help = "List, re-queue or purge dead letters (events ClickHouse refused)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="{list,requeue,purge}", required=True)

        listing = actions.add_parser("list", help="show dead letters, newest first (no payloads)")
        listing.add_argument("--event-type", help="only dead letters of this event type")
        listing.add_argument(
            "--limit", type=_positive_int, default=100, help="show at most this many (default 100)"
        )

        requeue = actions.add_parser(
            "requeue", help="move dead letters back to the outbox, unchanged, for the relay to deliver"
        )
        requeue.add_argument(
            "--id", dest="ids", type=_positive_int, action="append", metavar="ID", help="a dead letter's id"
        )
        requeue.add_argument("--event-type", help="every dead letter of this event type")
        requeue.add_argument("--all", action="store_true", help="every dead letter")

        purge = actions.add_parser("purge", help="delete dead letters for good")
        selection = purge.add_mutually_exclusive_group(required=True)
        selection.add_argument(
            "--older-than", type=_days, metavar="DAYS", help="those set aside more than DAYS days ago"
        )
        selection.add_argument(
            "--id", dest="ids", type=_positive_int, action="append", metavar="ID", help="a dead letter's id"
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        match action:
            case "list":
                self._list(event_type=options["event_type"], limit=options["limit"])
            case "requeue":
                self._requeue(ids=options["ids"], event_type=options["event_type"], everything=options["all"])
            case "purge":
                self._purge(ids=options["ids"], older_than_days=options["older_than"])

    def _list(self, *, event_type: str | None, limit: int) -> None:
        letters = list(dead_letter_list(event_type=event_type, limit=limit))
        if not letters:
            self.stdout.write("No dead letters.")
            return
        header = ("id", "event_type", "event_id", "attempts", "dead_lettered_at", "error")
        rows = [
            (
                str(letter.pk),
                letter.event_type,
                str(letter.event_id),
                str(letter.attempts),
                letter.dead_lettered_at.isoformat(timespec="seconds"),
                error_summary(letter.error),
            )
            for letter in letters
        ]
        # Every column but the last (the error) is padded to its widest value.
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
        for row in (header, *rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]))

    def _requeue(self, *, ids: list[int] | None, event_type: str | None, everything: bool) -> None:
        if everything and (ids or event_type):
            raise CommandError("--all re-queues every dead letter: give it without --id or --event-type")
        if not (everything or ids or event_type):
            raise CommandError(
                "say which dead letters to re-queue: --id ID (repeatable), --event-type or --all"
            )
        moved = dead_letter_requeue(ids=ids, event_type=event_type, everything=everything)
        self.stdout.write(self.style.SUCCESS(f"Re-queued {moved} dead letter(s) to the outbox."))

    def _purge(self, *, ids: list[int] | None, older_than_days: float | None) -> None:
        older_than = timedelta(days=older_than_days) if older_than_days is not None else None
        purged = dead_letter_purge(ids=ids, older_than=older_than)
        self.stdout.write(self.style.SUCCESS(f"Purged {purged} dead letter(s)."))
