"""`manage.py sign_in_unlock [EMAIL ...] [--ip ADDRESS ...]`: lift sign-in lock-outs now."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import structlog
from axes.utils import reset
from django.core.management.base import BaseCommand, CommandError

from webapp.users.throttling import account_key

logger = structlog.get_logger(__name__)


class Command(BaseCommand):
    """Forget the failed sign-ins counted for accounts and client addresses, which unlocks them."""

    help = (
        "Unlock sign-in for the given e-mail addresses (any spelling: they are folded as accounts are"
        " compared) and/or client addresses (--ip)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("emails", nargs="*", metavar="EMAIL", help="an account's e-mail address")
        parser.add_argument(
            "--ip", action="append", default=[], metavar="ADDRESS", help="a client address (repeatable)"
        )

    def handle(self, *args: Any, emails: list[str], ip: list[str], **options: Any) -> None:
        if not emails and not ip:
            raise CommandError("say what to unlock: one or more e-mail addresses and/or --ip ADDRESS")
        for email in emails:
            reset(username=account_key(email))
        for address in ip:
            reset(ip=address)  # folded to its throttle key (an IPv6 /64) by the handler
        logger.info("sign_in_unlocked", accounts=len(emails), addresses=len(ip))
        self.stdout.write(f"Unlocked {len(emails)} account(s) and {len(ip)} address(es).")
