"""Routes of the activity page."""

from __future__ import annotations

from django.urls import path

from webapp.activity import views

app_name = "activity"
urlpatterns = [path("", views.activity, name="activity")]
