"""The minimal project's one app: orders."""

from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "tests.integration.adopting.minisite.shop"
    label = "shop"
