"""The table of e-mails waiting to be sent; a sent (or abandoned) e-mail's row is deleted."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class OutgoingEmail(models.Model):
    """One plain-text message to one recipient, written in the transaction that asked for it."""

    id = models.BigAutoField(primary_key=True)
    # The account the message is for, when there is one: deleting the account
    # deletes what was still waiting to be sent to it.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    to = models.EmailField(max_length=254)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(db_default=Now())
    # When the next try is due; the dispatcher picks due rows in this order.
    next_attempt_at = models.DateTimeField(db_default=Now())
    attempts = models.PositiveSmallIntegerField(default=0)
    # The kind of the last failure (an exception class name), never its text:
    # mail servers quote the address in their answers.
    last_error = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        indexes = (models.Index(fields=["next_attempt_at", "id"], name="mail_outgoing_due"),)
        verbose_name = "outgoing e-mail"

    def __str__(self) -> str:
        return f"e-mail {self.pk}"
