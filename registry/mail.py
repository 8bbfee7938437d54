"""Mail the registry sends (account activation): to an SMTP server, else into an outbox directory.

The outbox holds one RFC 5322 message per file (``<time>-<random>.eml``, mode
0600), for a mail transfer agent to pick up, or for the tests to read.
"""

from __future__ import annotations

import logging
import os
import secrets
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

from .config import AccountSettings

log = logging.getLogger("dockyard.registry")


class Mailer:
    def __init__(self, settings: AccountSettings, default_outbox: Path) -> None:
        self.settings = settings
        self.outbox = settings.outbox or default_outbox

    def send(self, to: str, subject: str, body: str) -> str:
        """Send (or file) one message; returns where it went."""
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        if self.settings.smtp_host:
            smtp_class = smtplib.SMTP
            with smtp_class(self.settings.smtp_host, self.settings.smtp_port, timeout=30) as smtp:
                if self.settings.smtp_starttls:
                    smtp.starttls()
                if self.settings.smtp_username:
                    smtp.login(self.settings.smtp_username, self.settings.smtp_password)
                smtp.send_message(message)
            return f"smtp://{self.settings.smtp_host}:{self.settings.smtp_port}"
        self.outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.outbox / f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(message))
        log.info("mail to %s filed in %s", to, path)
        return str(path)


__all__ = ["Mailer"]
