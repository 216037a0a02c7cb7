"""HTML pages: home, sign-up, sign-in and sign-out."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from webapp.users.forms import EMAIL_TAKEN_MESSAGE, SignInForm, UserCreateForm
from webapp.users.services import EmailTaken, user_create
from webapp.users.throttling import sign_up_retry_after, too_many_sign_ups_message


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
            user = user_create(**form.cleaned_data)
        except EmailTaken:
            form.add_error("email", ValidationError(EMAIL_TAKEN_MESSAGE, code="email_taken"))
        except ValidationError as error:
            # The service's validation error is about the password (Django's validators).
            form.add_error("password", error)
        else:
            login(request, user, backend="webapp.users.backends.EmailBackend")
            messages.success(request, "Welcome! Your account is ready.")
            return redirect("users:home")
    return render(request, "users/register.html", {"form": form})


class SignInView(LoginView):
    """Django's sign-in page, asking for an e-mail address."""

    authentication_form = SignInForm
    template_name = "users/login.html"
    redirect_authenticated_user = True


class SignOutView(LogoutView):
    """Django's sign-out (POST only); then back to the sign-in page."""
