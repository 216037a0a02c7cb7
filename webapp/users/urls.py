"""Routes of the users app: the HTML pages under `/accounts/`, the JSON API under `/api/`."""

from __future__ import annotations

from django.urls import path

from webapp.users import apis, views

app_name = "users"
urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", views.account, name="account"),
    path("accounts/register/", views.register, name="register"),
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/logout/", views.SignOutView.as_view(), name="logout"),
    path("accounts/password/change/", views.password_change, name="password-change"),
    path("accounts/password/reset/", views.password_reset, name="password-reset"),
    path("accounts/password/reset/sent/", views.password_reset_done, name="password-reset-done"),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirm.as_view(),
        name="password-reset-confirm",
    ),
    path("accounts/password/reset/done/", views.password_reset_complete, name="password-reset-complete"),
    path("accounts/delete/", views.account_delete, name="account-delete"),
    path("accounts/email/verify/", views.email_verification_send, name="email-verification-send"),
    path("accounts/email/verify/done/", views.email_verified, name="email-verified"),
    path("accounts/email/verify/<uidb64>/<token>/", views.email_verify, name="email-verify"),
    path("api/users/", apis.user_create_api, name="api-user-create"),
    path("api/schema/", apis.api_schema, name="api-schema"),
]
