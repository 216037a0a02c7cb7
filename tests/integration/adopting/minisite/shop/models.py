"""One model: what the business change of the minimal project writes."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class Order(models.Model):
    """Someone ordered a quantity of a product."""

    product = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField()

    # Spelled out for mypy, whose Django plugin loads the site's settings, not this project's.
    objects: ClassVar[models.Manager[Order]] = models.Manager()

    def __str__(self) -> str:
        return f"order {self.pk}"
