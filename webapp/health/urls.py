"""Routes of the health app, included under `/health/`."""

from __future__ import annotations

from django.urls import path

from webapp.health import views

app_name = "health"
urlpatterns = [
    path("", views.health, name="health"),
]
