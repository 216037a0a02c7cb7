"""The business change and its event, written in one transaction."""

from __future__ import annotations

from django.db import transaction

from tests.integration.adopting.minisite.shop.events import OrderPlaced
from tests.integration.adopting.minisite.shop.models import Order
from webapp.outbox.client import EventLogClient


def order_place(*, product: str, quantity: int) -> Order:
    """Save an order and publish `order_placed`: both commit, or neither does."""
    with transaction.atomic():
        order = Order.objects.create(product=product, quantity=quantity)
        EventLogClient.from_settings().publish(
            OrderPlaced(order_id=order.pk, product=order.product, quantity=order.quantity)
        )
    return order
