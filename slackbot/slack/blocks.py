"""Replies as Slack messages: Block Kit sections and buttons, with the mrkdwn text as fallback."""

import re
from dataclasses import dataclass
from typing import Any

from slackbot.names import is_workflow_name
from slackbot.replies import Button, Reply

ACTION_PREFIX = "envbot"  # action_id = envbot:<action>:<n>; unique within a message, routed by prefix
# Bolt matches action ids with re.search, so the pattern is anchored at both ends (\Z: `$` allows a "\n").
ACTION_ID = re.compile(rf"\A{ACTION_PREFIX}:(?:extend|destroy):[0-9]{{1,2}}\Z")
ROW_ACTION_ID = re.compile(rf"\A{ACTION_PREFIX}:row:[0-9]{{1,2}}\Z")  # a list row's overflow menu
SECTION_LIMIT = 3000
# A button's value: "<incarnation>|<command>", e.g. "envbot-create-x7k2p|destroy checkout-x7k2p". The
# incarnation is the create workflow of the environment the message is about, so a click can be refused
# when that environment has since been destroyed or created again. At most 150 characters (63 + 1 + 86),
# so the same value fits an overflow menu option. The execution plane's warnings build the same value.
VALUE_LIMIT = 150
_VALUE = re.compile(r"(?P<incarnation>[^|]{1,63})\|(?P<command>(?:extend|destroy) [ -~]{1,84})")


@dataclass(frozen=True)
class Click:
    """What a clicked button stands for: a command, about one incarnation of an environment."""

    command: str
    incarnation: str


MESSAGE_BLOCKS = 50  # Slack's limit per message (the SDK does not check it)
CUT = "_…(cut: too long for one Slack message)_"


def message(reply: Reply) -> dict[str, Any]:
    """The body for ack(), respond() or chat.postMessage: at most Slack's 50 blocks (the text is cut, and
    says so, rather than the message refused)."""
    if reply.rows:
        return _list_message(reply)
    parts = _sections(reply.text)
    room = MESSAGE_BLOCKS - (1 if reply.buttons else 0)
    if len(parts) > room:
        parts = [*parts[: room - 1], CUT]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in parts]
    if reply.buttons:
        blocks.append({"type": "actions", "elements": [_button(b, i) for i, b in enumerate(reply.buttons)]})
    return {"text": reply.text[:3900], "blocks": blocks, "response_type": reply.visibility}


def _list_message(reply: Reply) -> dict[str, Any]:
    """A list: its title, one section per row with an overflow menu of the row's actions, and "n more"."""
    blocks: list[dict[str, Any]] = [_section(reply.title or "")] if reply.title else []
    for index, row in enumerate(reply.rows[: MESSAGE_BLOCKS - 2]):
        block = _section(row.text[:SECTION_LIMIT])
        if row.buttons:
            block["accessory"] = _overflow(row.buttons, index)
        blocks.append(block)
    if reply.more:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": reply.more}]})
    return {"text": reply.text[:3900], "blocks": blocks, "response_type": reply.visibility}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _overflow(buttons: tuple[Button, ...], index: int) -> dict[str, Any]:
    """A row's actions. One confirmation covers the menu (Slack has none per option): it says what Destroy does."""
    env = buttons[0].env
    return {
        "type": "overflow",
        "action_id": f"{ACTION_PREFIX}:row:{index}",
        "options": [
            {"text": {"type": "plain_text", "text": b.label[:75]}, "value": button_value(b)} for b in buttons[:5]
        ],
        "confirm": {
            "title": {"type": "plain_text", "text": f"Act on {env}?"[:100]},
            "text": {
                "type": "mrkdwn",
                "text": f"Destroy deletes `{env}` and everything in it; Extend keeps it longer."[:300],
            },
            "confirm": {"type": "plain_text", "text": "Go ahead"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        },
    }


def button_value(button: Button) -> str:
    value = f"{button.incarnation}|{button.command}"
    if len(value) > VALUE_LIMIT:
        raise ValueError(f"button value over {VALUE_LIMIT} characters")
    return value


def click_from_value(value: object) -> Click | None:
    """What a clicked button stands for; None if the value isn't one of ours (or an older format)."""
    if not isinstance(value, str) or len(value) > VALUE_LIMIT:
        return None
    match = _VALUE.fullmatch(value)
    if match is None or not is_workflow_name(match["incarnation"]):
        return None
    return Click(command=match["command"], incarnation=match["incarnation"])


def button_element(button: Button, index: int) -> dict[str, Any]:
    """The element a message carries for `button`; App Home rows use the very same (slack/views.py)."""
    return _button(button, index)


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
