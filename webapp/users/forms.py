"""Forms that validate what people send; the views hand the cleaned data to a service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from webapp.users.models import InvalidEmail, canonical_email

# Shown on the e-mail field (HTML) or under "email" (API) when `EmailTaken` is raised.
EMAIL_TAKEN_MESSAGE = "An account with this e-mail address already exists."


class _StringOnly(forms.Field):
    """Refuse values that are not strings instead of converting them with `str()`.

    HTML forms only ever send strings; a JSON body can send `123` or `["x"]`,
    which Django's fields would otherwise quietly turn into "123" or "['x']".
    """

    def to_python(self, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValidationError("Enter a string.", code="invalid_type")
        return super().to_python(value)


class _StringField(_StringOnly, forms.CharField):
    pass


class _EmailField(_StringOnly, forms.EmailField):
    """An e-mail address, refused unless it has the canonical form accounts are compared in."""

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value in self.empty_values:
            return
        try:
            canonical_email(value)
        except InvalidEmail as error:
            raise ValidationError(
                "Enter an address whose part before the @ uses plain ASCII letters, digits or punctuation.",
                code="invalid_characters",
            ) from error


class UserCreateForm(forms.Form):
    """Sign-up data: an e-mail address, a password and a name, for the HTML form and the API."""

    email = _EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    password = _StringField(
        label="Password",
        # Passwords are taken exactly as typed, spaces included.
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    first_name = _StringField(
        label="First name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = _StringField(
        label="Last name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )


class SignInForm(AuthenticationForm):
    """Django's sign-in form, with the login field asking for an e-mail address."""

    username = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
