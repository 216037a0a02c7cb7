"""`place_order PRODUCT QUANTITY`: place an order as the minimal project's code would."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tests.integration.adopting.minisite.shop.services import order_place


class Command(BaseCommand):
    help = "Place an order (and publish its event)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("product")
        parser.add_argument("quantity", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        order = order_place(product=options["product"], quantity=options["quantity"])
        self.stdout.write(str(order.pk))
