"""The verification token: for one account in one state, for a limited time, never a reset token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.tokens import default_token_generator
from pytest_django import Settings

from webapp.users.models import User
from webapp.users.tokens import EmailVerificationTokenGenerator, email_verification_token


def account(**fields: object) -> User:
    """An account as it is loaded from the database (no database needed here)."""
    return User(**{"pk": 7, "email": "ada@example.com", "password": "argon2$x", **fields})


class _Clock(EmailVerificationTokenGenerator):
    def __init__(self, now: datetime) -> None:
        super().__init__()
        self.now = now

    def _now(self) -> datetime:
        return self.now


def test_a_token_is_valid_for_the_account_it_was_made_for() -> None:
    token = email_verification_token.make_token(account())

    assert email_verification_token.check_token(account(), token)


def test_a_token_stops_working_once_the_address_is_verified() -> None:
    token = email_verification_token.make_token(account())

    verified = account(email_verified_at=datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC))

    assert not email_verification_token.check_token(verified, token)


def test_a_token_stops_working_when_the_address_changes() -> None:
    token = email_verification_token.make_token(account())

    assert not email_verification_token.check_token(account(email="eve@example.com"), token)


def test_a_token_is_not_valid_for_another_account() -> None:
    token = email_verification_token.make_token(account())

    assert not email_verification_token.check_token(account(pk=8), token)


def test_a_verification_token_is_no_password_reset_token_and_the_other_way_round() -> None:
    user = account()

    assert not default_token_generator.check_token(user, email_verification_token.make_token(user))
    assert not email_verification_token.check_token(user, default_token_generator.make_token(user))


@pytest.mark.parametrize("token", ["", "garbage", "zz-zz", "1a2b3c-", "-abc", "1-2-3"])
def test_malformed_tokens_are_refused(token: str) -> None:
    assert not email_verification_token.check_token(account(), token)


def test_a_token_expires_after_the_verification_timeout(settings: Settings) -> None:
    settings.EMAIL_VERIFICATION_TIMEOUT = 3600
    made = datetime(2026, 12, 3, 9, 0, 0)
    token = _Clock(made).make_token(account())

    assert _Clock(made + timedelta(seconds=3600)).check_token(account(), token)
    assert not _Clock(made + timedelta(seconds=3601)).check_token(account(), token)
