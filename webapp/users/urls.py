"""Routes of the users app: the HTML pages under `/accounts/`, the JSON API under `/api/`."""

from __future__ import annotations

from django.urls import path

from webapp.users import apis, views

app_name = "users"
urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/register/", views.register, name="register"),
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/logout/", views.SignOutView.as_view(), name="logout"),
    path("api/users/", apis.user_create_api, name="api-user-create"),
    path("api/schema/", apis.api_schema, name="api-schema"),
]
