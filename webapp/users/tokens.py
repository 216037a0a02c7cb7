"""One-time tokens in e-mailed links: Django's password-reset tokens, and ours for verifying an address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int

if TYPE_CHECKING:
    from webapp.users.models import User


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    """Django's reset-token machinery (HMAC of the user's state, keyed with `SECRET_KEY`), for addresses.

    The token covers the account, its address and whether that address is
    verified yet, so it works once: verifying changes the state it was made
    from, and so does a change of address. It expires after
    `EMAIL_VERIFICATION_TIMEOUT` seconds. Its own salt keeps it from ever
    passing for a password-reset token, and the other way round.
    """

    key_salt = "webapp.users.tokens.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        verified_at = user.email_verified_at
        # Whole seconds, naive: the token must not depend on how the database rounds.
        verified = "" if verified_at is None else verified_at.replace(microsecond=0, tzinfo=None)
        return f"{user.pk}{user.email}{verified}{timestamp}"

    def check_token(self, user: User | None, token: str | None) -> bool:
        """Whether `token` was made for this user in its current state, within the verification timeout.

        Django's own check, with this generator's timeout instead of the
        password reset's (`PASSWORD_RESET_TIMEOUT` is an hour; an address is
        often confirmed later than that).
        """
        if not (user and token):
            return False
        try:
            timestamp_b36, _ = token.split("-")
            timestamp = base36_to_int(timestamp_b36)
        except ValueError:
            return False
        if not any(
            constant_time_compare(self._make_token_with_timestamp(user, timestamp, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        ):
            return False
        age: int = self._num_seconds(self._now()) - timestamp
        return age <= settings.EMAIL_VERIFICATION_TIMEOUT


email_verification_token = EmailVerificationTokenGenerator()
