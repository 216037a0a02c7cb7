"""HTML pages: home, sign-up, sign-in and sign-out, and the account's own pages under `/accounts/`."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import (
    INTERNAL_RESET_SESSION_TOKEN,
    LoginView,
    LogoutView,
    PasswordResetConfirmView,
)
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.core.clients import client_ip
from webapp.users.forms import (
    EMAIL_TAKEN_MESSAGE,
    AccountDeleteForm,
    PasswordChangeForm,
    PasswordResetRequestForm,
    ProfileForm,
    SetPasswordForm,
    SignInForm,
    UserCreateForm,
)
from webapp.users.links import verify_link_builder
from webapp.users.models import User
from webapp.users.services import (
    EmailTaken,
    user_create,
    user_delete,
    user_email_verification_send,
    user_email_verify,
    user_password_change,
    user_password_reset,
    user_password_reset_request,
    user_update,
)
from webapp.users.throttling import (
    email_verification_retry_after,
    locked_out_response,
    password_reset_address_retry_after,
    password_reset_client_retry_after,
    recheck_locked_out,
    sign_up_retry_after,
    too_many_password_resets_message,
    too_many_sign_ups_message,
    too_many_verification_emails_message,
)
from webapp.users.tokens import email_verification_token

# The verification link's token leaves the address bar for the session, as a
# password-reset link's does (Django's `PasswordResetConfirmView`): the page
# that confirms is then at `.../<uidb64>/confirm/`.
EMAIL_VERIFY_URL_TOKEN = "confirm"  # noqa: S105  (a path segment, not a secret)
EMAIL_VERIFY_SESSION_TOKEN = "_email_verification_token"  # noqa: S105  (a session key name)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The home page: tells whether you are signed in."""
    return render(request, "users/home.html")


@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("password")
@sensitive_variables("form", "password")
@never_cache
def register(request: HttpRequest) -> HttpResponse:
    """The sign-up page: a valid form creates the account, signs the person in and goes home."""
    if request.user.is_authenticated:
        return redirect("users:home")
    if request.method == "POST" and (retry_after := sign_up_retry_after(request)) is not None:
        context = {"form": UserCreateForm(), "throttled": too_many_sign_ups_message(retry_after)}
        response = render(request, "users/register.html", context, status=429)
        response["Retry-After"] = str(retry_after)
        return response
    form = UserCreateForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            user = user_create(**form.cleaned_data, verify_link=verify_link_builder(request))
        except EmailTaken:
            form.add_error("email", ValidationError(EMAIL_TAKEN_MESSAGE, code="email_taken"))
        except ValidationError as error:
            # The service's validation error is about the password (Django's validators).
            form.add_error("password", error)
        else:
            login(request, user, backend="webapp.users.backends.EmailBackend")
            messages.success(
                request,
                "Welcome! Your account is ready. Please confirm your address with the link we e-mailed you.",
            )
            return redirect("users:home")
    return render(request, "users/register.html", {"form": form})


class SignInView(LoginView):
    """Django's sign-in page, asking for an e-mail address."""

    authentication_form = SignInForm
    template_name = "users/login.html"
    # No redirect for the signed-in: another site could tell from it whether its visitor is signed in here.
    redirect_authenticated_user = False


class SignOutView(LogoutView):
    """Django's sign-out (POST only); then back to the sign-in page."""


def _signed_in_user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required let only signed-in users through
    return user


@login_required
@require_http_methods(["GET", "POST"])
@never_cache
def account(request: HttpRequest) -> HttpResponse:
    """The account page: who you are, your name to edit, and the way to everything else."""
    user = _signed_in_user(request)
    form = _profile_form(user, request.POST if request.method == "POST" else None)
    if form.is_valid():
        changed = user_update(user=user, ip_address=client_ip(request), **form.cleaned_data)
        messages.success(request, "Your name is saved." if changed else "Nothing to change.")
        return redirect("users:account")
    return render(request, "users/account.html", {"form": form})


def _profile_form(user: User, data: Any = None) -> ProfileForm:
    return ProfileForm(data, initial={"first_name": user.first_name, "last_name": user.last_name})


@login_required
@require_POST
@never_cache
def email_verification_send(request: HttpRequest) -> HttpResponse:
    """Send the link that verifies the address again, from the account page; throttled per account."""
    user = _signed_in_user(request)
    if (retry_after := email_verification_retry_after(request, user)) is not None:
        context = {
            "form": _profile_form(user),
            "throttled": too_many_verification_emails_message(retry_after),
        }
        response = render(request, "users/account.html", context, status=429)
        response["Retry-After"] = str(retry_after)
        return response
    if user_email_verification_send(user=user, verify_link=verify_link_builder(request)):
        messages.success(request, f"We sent a new link to {user.email}. It works once, within three days.")
    else:
        messages.success(request, "Your e-mail address is already verified.")
    return redirect("users:account")


@require_http_methods(["GET", "POST"])
@never_cache
def email_verify(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The e-mailed link: its token moves into the session, then a button verifies the address.

    Opening the link changes nothing, so mail scanners that fetch every link
    verify nobody's address; the person confirms with a POST. Anyone holding
    the link may confirm, signed in or not: the link is the proof.
    """
    user = _user_from_uidb64(uidb64)
    if token != EMAIL_VERIFY_URL_TOKEN:
        if request.method == "GET" and email_verification_token.check_token(user, token):
            request.session[EMAIL_VERIFY_SESSION_TOKEN] = token
            return redirect(request.path.replace(token, EMAIL_VERIFY_URL_TOKEN))
        return render(request, "users/email_verify_invalid.html")
    if user is None or not email_verification_token.check_token(
        user, request.session.get(EMAIL_VERIFY_SESSION_TOKEN)
    ):
        return render(request, "users/email_verify_invalid.html")
    if request.method == "GET":
        return render(request, "users/email_verify_confirm.html", {"address": user.email})
    # False only when a concurrent request verified it first: verified either way.
    user_email_verify(user=user, ip_address=client_ip(request))
    del request.session[EMAIL_VERIFY_SESSION_TOKEN]
    return redirect("users:email-verified")


def _user_from_uidb64(uidb64: str) -> User | None:
    """The account a link's encoded id names, or None (what `PasswordResetConfirmView.get_user` does)."""
    try:
        return User.objects.get(pk=urlsafe_base64_decode(uidb64).decode())
    except (TypeError, ValueError, OverflowError, User.DoesNotExist, ValidationError):
        return None


@require_GET
def email_verified(request: HttpRequest) -> HttpResponse:
    """The address is verified."""
    return render(request, "users/email_verified.html")


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters()
@sensitive_variables("form")
@never_cache
def password_change(request: HttpRequest) -> HttpResponse:
    """Change the password, giving the current one; this session stays signed in, others end."""
    user = _signed_in_user(request)
    form = PasswordChangeForm(user, request.POST if request.method == "POST" else None, request=request)
    if form.is_valid():
        try:
            user_password_change(
                user=user, new_password=form.cleaned_data["new_password1"], ip_address=client_ip(request)
            )
        except ValidationError as error:
            form.add_error("new_password2", error)
        else:
            update_session_auth_hash(request, user)
            messages.success(request, "Your password is changed.")
            return redirect("users:account")
    elif recheck_locked_out(request):
        return _end_guessing_session(request)
    return render(request, "users/password_change.html", {"form": form})


def _end_guessing_session(request: HttpRequest) -> HttpResponse:
    """A session whose password checks reached the lock-out is ended: 429, and signed out."""
    logout(request)
    return locked_out_response(request)


@require_http_methods(["GET", "POST"])
@never_cache
def password_reset(request: HttpRequest) -> HttpResponse:
    """Ask for a password-reset link; the answer is the same whether or not the address has an account.

    Throttled per client address, then per address asked for (both before any
    account is looked up): past either, a 429 that writes nothing.
    """
    if request.method == "POST" and (retry_after := password_reset_client_retry_after(request)) is not None:
        return _password_reset_throttled(request, retry_after)
    form = PasswordResetRequestForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        retry_after = password_reset_address_retry_after(request, form.cleaned_data["email"])
        if retry_after is not None:
            return _password_reset_throttled(request, retry_after)

        def reset_link(uidb64: str, token: str) -> str:
            path = reverse("users:password-reset-confirm", kwargs={"uidb64": uidb64, "token": token})
            return request.build_absolute_uri(path)

        user_password_reset_request(
            email=form.cleaned_data["email"], reset_link=reset_link, ip_address=client_ip(request)
        )
        return redirect("users:password-reset-done")
    return render(request, "users/password_reset.html", {"form": form})


def _password_reset_throttled(request: HttpRequest, retry_after: int) -> HttpResponse:
    context = {"form": PasswordResetRequestForm(), "throttled": too_many_password_resets_message(retry_after)}
    response = render(request, "users/password_reset.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


@require_GET
def password_reset_done(request: HttpRequest) -> HttpResponse:
    """What happens next after a reset was asked for."""
    return render(request, "users/password_reset_done.html")


class PasswordResetConfirm(PasswordResetConfirmView):
    """Django's check of the link (its token moves into the session, off the address bar); our save."""

    form_class = SetPasswordForm
    template_name = "users/password_reset_confirm.html"
    success_url = reverse_lazy("users:password-reset-complete")

    def form_valid(self, form: Any) -> HttpResponse:
        try:
            user_password_reset(
                user=self.user,
                new_password=form.cleaned_data["new_password1"],
                ip_address=client_ip(self.request),
            )
        except ValidationError as error:
            form.add_error("new_password2", error)
            return self.form_invalid(form)
        del self.request.session[INTERNAL_RESET_SESSION_TOKEN]
        return redirect(self.success_url)


@require_GET
def password_reset_complete(request: HttpRequest) -> HttpResponse:
    """The new password is set: sign in with it."""
    return render(request, "users/password_reset_complete.html")


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("password")
@sensitive_variables("form")
@never_cache
def account_delete(request: HttpRequest) -> HttpResponse:
    """Delete the account after the password is confirmed; the session ends with it."""
    user = _signed_in_user(request)
    form = AccountDeleteForm(request.POST if request.method == "POST" else None, user=user, request=request)
    if form.is_valid():
        user_delete(user=user)
        # Ended without Django's `logout`: its signal would write a sign-out
        # event about an account that no longer exists.
        request.session.flush()
        messages.success(request, "Your account is deleted. Goodbye.")
        return redirect("users:home")
    if recheck_locked_out(request):
        return _end_guessing_session(request)
    return render(request, "users/account_delete.html", {"form": form})
