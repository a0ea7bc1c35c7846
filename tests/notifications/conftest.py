import email
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from tests.worker import free_port


class Inbox:
    """A real SMTP server's mailbox; it can refuse the next messages, as a busy server does."""

    def __init__(self):
        self.messages = []
        self.refuse_next = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_next:
            self.refuse_next -= 1
            return "451 Requested action aborted: try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def inbox(settings):
    handler = Inbox()
    port = free_port()  # given: the controller checks its own readiness
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.SITE_URL = "https://promo.example.com"
    yield handler
    controller.stop()
