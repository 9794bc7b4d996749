"""Replies as Slack messages: Block Kit sections and buttons, with the mrkdwn text as fallback."""

import json
from typing import Any

from slackbot.replies import Button, Reply

ACTION_PREFIX = "envbot"  # action_id = envbot:<action>:<n>; unique within a message, routed by prefix
SECTION_LIMIT = 3000


def message(reply: Reply) -> dict[str, Any]:
    """The body for ack(), respond() or chat.postMessage."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in _sections(reply.text)
    ]
    if reply.buttons:
        blocks.append({"type": "actions", "elements": [_button(b, i) for i, b in enumerate(reply.buttons)]})
    return {"text": reply.text[:3900], "blocks": blocks, "response_type": reply.visibility}


def button_value(button: Button) -> str:
    return json.dumps({"command": button.command}, separators=(",", ":"))


def command_from_value(value: str) -> str | None:
    """The command a clicked button stands for; None if the value isn't one of ours."""
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    return command if isinstance(command, str) and len(command) <= 200 else None


def _button(button: Button, index: int) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}:{button.action}:{index}",
        "text": {"type": "plain_text", "text": button.label[:75]},
        "value": button_value(button),
    }
    if button.action == "destroy":
        element["style"] = "danger"
    if button.confirm is not None:
        element["confirm"] = {
            "title": {"type": "plain_text", "text": f"Destroy {button.env}?"[:100]},
            "text": {"type": "mrkdwn", "text": button.confirm[:300]},
            "confirm": {"type": "plain_text", "text": "Destroy"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    return element


def _sections(text: str) -> list[str]:
    """Split at line breaks into sections Slack accepts (3,000 characters each)."""
    sections: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > SECTION_LIMIT and current:
            sections.append(current)
            candidate = line
        current = candidate[:SECTION_LIMIT]
    return [*sections, current] if current else sections
