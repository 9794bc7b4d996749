"""Block Kit views: the create form (a modal) and the Home tab. Pure builders: data in, JSON out.

Limits that Slack enforces and slack_sdk's models check (tests validate every view against them):
100 blocks per view, 3,000 characters per text, 100 options per select, 75 per option text.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from slackbot.durations import format_duration, format_remaining, parse_duration
from slackbot.history import Environment
from slackbot.policy import Policy
from slackbot.replies import Button, running, slack_date, workflow_words
from slackbot.slack.blocks import button_element

CREATE_CALLBACK = "envbot_create"
NEW_ACTION = "envbot_new"  # the Home tab's "New environment" button
VIEW_BLOCKS = 100
HOME_ROWS = 30  # three blocks per row (divider, line, buttons), with room for the header, notice and "n more"
_TTL_STEPS = tuple(
    parse_duration(t) for t in ("15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "2d", "3d", "5d", "7d", "14d")
)
# What each input is called in the form, so a refusal can be shown on its field.
SERVICE, TTL, NAME, VERSION, CHANNEL = "service", "ttl", "name", "version", "channel"


def _text(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": kind, "text": text}


def _option(label: str, value: str, description: str | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"text": _text(label[:75]), "value": value[:150]}
    if description:
        option["description"] = _text(description[:75])
    return option


def ttl_choices(policy: Policy) -> list[timedelta]:
    """The TTLs the form offers: common steps within the policy's bounds, plus its default."""
    bounds = policy.ttl
    return sorted({t for t in _TTL_STEPS if bounds.min <= t <= bounds.max} | {bounds.default})[:100]


def _service_facts(policy: Policy, name: str) -> str:
    rules = policy.rules_for(name)
    facts = [rules.description or ""]
    if rules.max_ttl:
        facts.append(f"max {format_duration(rules.max_ttl)}")
    if rules.default_ttl:
        facts.append(f"default {format_duration(rules.default_ttl)}")
    return " · ".join(f for f in facts if f)


def create_modal(policy: Policy, channel_id: str | None) -> dict[str, Any]:
    """The create form. Submitting it runs the same `create` as typing it (slack/surfaces.py)."""
    if policy.services:
        services = sorted(policy.services)[:100]
        service_element: dict[str, Any] = {
            "type": "static_select",
            "action_id": SERVICE,
            "placeholder": _text("Choose a service"),
            "options": [_option(name, name, _service_facts(policy, name)) for name in services],
        }
    else:
        service_element = {"type": "plain_text_input", "action_id": SERVICE, "max_length": 63}
    default = policy.ttl.default
    ttl_options = [_option(format_duration(t), format_duration(t)) for t in ttl_choices(policy)]
    channel_element: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": CHANNEL,
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel_id and not channel_id.startswith("D"):
        channel_element["initial_conversation"] = channel_id
    blocks: list[dict[str, Any]] = [
        {"type": "input", "block_id": SERVICE, "label": _text("Service"), "element": service_element},
        {
            "type": "input",
            "block_id": TTL,
            "label": _text("Lifetime"),
            "element": {
                "type": "static_select",
                "action_id": TTL,
                "options": ttl_options,
                "initial_option": _option(format_duration(default), format_duration(default)),
            },
            "hint": _text(
                f"Between {format_duration(policy.ttl.min)} and {format_duration(policy.ttl.max)}; extensions up "
                f"to {format_duration(policy.ttl.lifetime)} after creation."
            ),
        },
        {
            "type": "input",
            "block_id": NAME,
            "optional": True,
            "label": _text("Name"),
            "element": {"type": "plain_text_input", "action_id": NAME, "max_length": 63},
            "hint": _text("Lowercase letters, digits and -. Leave empty for a generated one."),
        },
        *_version_blocks(policy),
        {"type": "input", "block_id": CHANNEL, "label": _text("Announce in"), "element": channel_element},
    ]
    return {
        "type": "modal",
        "callback_id": CREATE_CALLBACK,
        "title": _text("New environment"),
        "submit": _text("Create"),
        "close": _text("Cancel"),
        "blocks": blocks,
    }


def _version_blocks(policy: Policy) -> list[dict[str, Any]]:
    """The version to deploy (an image tag, as `version=` in the typed command); empty: the recipe's default."""
    return [
        {
            "type": "input",
            "block_id": VERSION,
            "optional": True,
            "label": _text("Version"),
            "element": {"type": "plain_text_input", "action_id": VERSION, "max_length": 128},
            "hint": _text("An image tag such as 1.4.2. Leave empty for the service's default."),
        }
    ]


def submitted_values(view: dict[str, Any]) -> dict[str, str]:
    """The form's values by field (empty for what was left empty)."""
    values = (view.get("state") or {}).get("values") or {}
    found: dict[str, str] = {}
    for field in (SERVICE, TTL, NAME, VERSION, CHANNEL):
        entry = (values.get(field) or {}).get(field) or {}
        raw = (
            (entry.get("selected_option") or {}).get("value")
            or entry.get("selected_conversation")
            or entry.get("value")
            or ""
        )
        found[field] = raw.strip() if isinstance(raw, str) else ""
    return found


def command_text(values: dict[str, str]) -> str:
    """The `/env` text the form stands for: the same parser and checks as a typed command."""
    text = f"create {values[SERVICE]}"
    if values[TTL]:
        text += f" ttl={values[TTL]}"
    if values[NAME]:
        text += f" name={values[NAME]}"
    if values.get(VERSION):
        text += f" version={values[VERSION]}"
    return text


def field_of(message: str) -> str:
    """Which field a refusal is about, to show it there."""
    lowered = message.lower()
    if "ttl" in lowered or "lifetime" in lowered:
        return TTL
    if "version" in lowered:
        return VERSION
    if "channel" in lowered and "service" not in lowered:
        return CHANNEL
    if "name" in lowered or "reserved" in lowered or "already exists" in lowered:
        return NAME
    return SERVICE


def home_view(
    rows: Sequence[tuple[Environment, tuple[Button, ...]]], now: datetime, notice: str | None = None
) -> dict[str, Any]:
    """The Home tab: the user's environments, one section per row with its state, expiry and buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _text("Your environments")},
        {
            "type": "actions",
            "block_id": "envbot_home_new",
            "elements": [
                {"type": "button", "action_id": NEW_ACTION, "text": _text("New environment"), "style": "primary"}
            ],
        },
    ]
    if notice:
        blocks.append({"type": "section", "text": _text(notice[:3000], "mrkdwn")})
    if not rows:
        blocks.append({"type": "section", "text": _text("None live. Create one with *New environment*.", "mrkdwn")})
    for env, buttons in rows[:HOME_ROWS]:
        blocks.append({"type": "divider"})
        blocks.append({"type": "section", "text": _text(_home_line(env, now)[:3000], "mrkdwn")})
        if buttons:
            elements = [button_element(button, i) for i, button in enumerate(buttons)]
            blocks.append({"type": "actions", "block_id": f"envbot_row_{env.name}"[:255], "elements": elements})
    if len(rows) > HOME_ROWS:
        more = f"…and {len(rows) - HOME_ROWS} more: `/env list` shows them all."
        blocks.append({"type": "context", "elements": [_text(more, "mrkdwn")]})
    return {"type": "home", "blocks": blocks[:VIEW_BLOCKS]}


def _home_line(env: Environment, now: datetime) -> str:
    state = env.state(now)
    head = f"*`{env.name}`* · {env.service or '?'}" + (f" · <#{env.channel}>" if env.channel else "")
    if state == "failed":
        return f":x: {head}\nCreate failed: see `/env status {env.name}`."
    expiry = (
        f"expires {slack_date(env.expires_at)} ({format_remaining(env.expires_at - now)} left)"
        if env.expires_at
        else "no expiry recorded"
    )
    return f"{head}{running(env)}\n{workflow_words(env.last_workflow)} · {expiry}"
