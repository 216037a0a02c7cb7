"""Forms that validate what people send; the views hand the cleaned data to a service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.forms import PasswordChangeForm as DjangoPasswordChangeForm
from django.contrib.auth.forms import SetPasswordForm as DjangoSetPasswordForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from webapp.users.models import InvalidEmail, QuotedLocalPart, User, canonical_email, validate_name
from webapp.users.throttling import password_recheck

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
        except QuotedLocalPart as error:
            raise ValidationError(
                "Enter the address without quotation marks around the part before the @.",
                code="quoted_local_part",
            ) from error
        except InvalidEmail as error:
            raise ValidationError(
                "Enter an address whose part before the @ uses plain ASCII letters, digits or punctuation.",
                code="invalid_characters",
            ) from error


class _NameField(_StringField):
    """A first or last name: one line of text, no control characters (`validate_name`)."""

    default_validators = [validate_name]  # noqa: RUF012  (Django's class attribute, extended)


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
    first_name = _NameField(
        label="First name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = _NameField(
        label="Last name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )


class SignInForm(AuthenticationForm):
    """Django's sign-in form, with the login field asking for an e-mail address."""

    username = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class ProfileForm(forms.Form):
    """The name a person goes by on the site."""

    first_name = _NameField(
        label="First name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = _NameField(
        label="Last name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )


class PasswordChangeForm(DjangoPasswordChangeForm):
    """Django's form: the current password, then the new one twice; it only validates here.

    The current password is checked like a sign-in (`password_recheck`), so
    wrong guesses count towards the same lock-out.
    """

    def __init__(self, user: Any, data: Any = None, *, request: HttpRequest) -> None:
        super().__init__(user, data)
        self.request = request

    def clean_old_password(self) -> str:
        old_password: str = self.cleaned_data["old_password"]
        if not password_recheck(self.request, self.user, old_password):
            raise ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old_password

    def save(self, commit: bool = True) -> Any:
        raise NotImplementedError("the view calls services.user_password_change")


# Generic for the type checker only: Django's class takes no type argument at run time.
if TYPE_CHECKING:
    _SetPasswordBase = DjangoSetPasswordForm[User]
else:
    _SetPasswordBase = DjangoSetPasswordForm


class PasswordResetRequestForm(forms.Form):
    """The e-mail address to send a password-reset link to."""

    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class SetPasswordForm(_SetPasswordBase):
    """Django's form for a new password typed twice; it only validates here."""

    def save(self, commit: bool = True) -> Any:
        raise NotImplementedError("the view calls services.user_password_reset")


class AccountDeleteForm(forms.Form):
    """Deleting an account asks for its password, so an unattended session cannot do it."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args: Any, user: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.request = request

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        # Checked like a sign-in: wrong guesses count towards the same lock-out.
        if not password_recheck(self.request, self.user, password):
            raise ValidationError("The password is not correct.", code="password_incorrect")
        return password
