"""Routes of the users app (filled by the views)."""

from __future__ import annotations

app_name = "users"
urlpatterns: list[object] = []
