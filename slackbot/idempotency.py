"""Idempotency keys: one Slack request, one workflow name, whichever replica or restart sees it.

Slack gives every user interaction (a slash command, a button click, a view submission) a
`trigger_id`; a replay or a retry of that request carries the same one. Its digest names the
workflow (`argo submit --name`), so the API server itself refuses a second workflow for the same
request (AlreadyExists), and labels it (`envbot.dev/request`), so a duplicate can prove that the
workflow it collided with is its own before answering as the first did (docs/adr/0011).
"""

import base64
import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator

KEY_LENGTH = 32  # 160 bits of SHA-256 in base32: collisions are not a practical concern
_KEY = re.compile(rf"[a-z2-7]{{{KEY_LENGTH}}}")


def request_key(slack_request: str) -> str:
    """The request's key: lowercase base32 (a valid label value and workflow-name suffix)."""
    digest = hashlib.sha256(slack_request.encode()).digest()
    return base64.b32encode(digest).decode().lower()[:KEY_LENGTH]


def _check_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise ValueError("not an envbot request key")
    return value


RequestKey = Annotated[str, AfterValidator(_check_key)]


def workflow_name(template: str, key: str) -> str:
    """`env-create-template-<key>`: like the names argo generates, and at most 63 characters."""
    name = f"{template}-{_check_key(key)}"
    assert len(name) <= 63, name
    return name
