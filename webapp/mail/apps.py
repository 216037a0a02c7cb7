from __future__ import annotations

from django.apps import AppConfig


class MailConfig(AppConfig):
    """Outgoing e-mail: a table of messages to send, and the tasks that send them."""

    name = "webapp.mail"
    label = "mail"
