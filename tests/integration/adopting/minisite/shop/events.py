"""The minimal project's event, declared as docs/ADOPTING.md shows."""

from __future__ import annotations

from shared.events import Event


class OrderPlaced(Event):
    """Someone placed an order; its event type is `order_placed` (the class name in snake case)."""

    order_id: int
    product: str
    quantity: int
