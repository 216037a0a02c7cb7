"""URL routes of the site."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from webapp.core.metrics import metrics

urlpatterns = [
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("health/", include("webapp.health.urls")),
    path("accounts/activity/", include("webapp.activity.urls")),
    path("", include("webapp.users.urls")),
]
