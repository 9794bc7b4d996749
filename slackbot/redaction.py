"""Blanking secrets out of text that is logged, audited or shown (user input, argo's output)."""

import re

# Slack token shapes (bot, user, app-level, refresh, config), bearer tokens, and JWTs (service-account tokens).
SECRET = re.compile(
    r"x(?:ox[abpeor]|app)-[A-Za-z0-9-]+"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
)
SLACK_TOKEN = re.compile(r"x(?:ox[abpeor]|app)-[A-Za-z0-9-]+", re.IGNORECASE)


def redact(text: str) -> str:
    return SECRET.sub("[redacted]", text)
