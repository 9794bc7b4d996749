"""Is a signed Slack payload one envbot can read? Checked before Bolt sees it, over HTTP and Socket Mode.

Bolt's context extraction and listener matching index into the fields below without checking their
types (`body["event"]["type"]`, `payload["authorizations"][0]`, `channel.get("id")`): a signed body
with a number or a list where Slack sends an object made it raise, which answered HTTP 500 with a
traceback in the log, and in Socket Mode left the envelope unacknowledged. Slack never sends such
bodies, so they are refused with one log line (HTTP 400; in Socket Mode an ack saying so).
"""

from typing import Any

MAX_DEPTH = 32  # Slack's deepest payloads (block_actions with a message's blocks) nest about 10 levels
_OBJECTS = ("container", "view", "event", "message", "previous_message", "item", "assistant_thread",
            "function_data", "state", "subteam")  # fmt: skip
_OBJECT_OR_ID = ("enterprise", "team", "user", "channel")
_LISTS_OF_OBJECTS = ("authorizations", "actions")
_STRINGS = ("type", "command", "token", "team_id", "api_app_id", "event_id", "user_id", "channel_id",
            "enterprise_id", "response_url", "trigger_id", "callback_id", "thread_ts", "subteam_id")  # fmt: skip


def unreadable(body: dict[str, Any]) -> str | None:
    """Why envbot can't read `body` (short, no content), or None."""
    if _depth(body) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    problem = _fields(body)
    if problem is not None:
        return problem
    for name in ("event", "message", "previous_message", "item", "container", "view"):
        inner = body.get(name)
        if isinstance(inner, dict):
            problem = _fields(inner)
            if problem is not None:
                return f"{name}.{problem}"
    return None


def _fields(body: dict[str, Any]) -> str | None:
    for name in _OBJECTS:
        if body.get(name) is not None and not isinstance(body[name], dict):
            return f"{name} is not an object"
    for name in _OBJECT_OR_ID:
        value = body.get(name)
        if value is not None and not isinstance(value, dict | str):
            return f"{name} is not an object or an id"
        if isinstance(value, dict) and not all(isinstance(value.get(k), str | None) for k in ("id", "team_id")):
            return f"{name}.id is not a string"
    for name in _LISTS_OF_OBJECTS:
        value = body.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            return f"{name} is not a list of objects"
    for name in _STRINGS:
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"{name} is not a string"
    return None


def _depth(value: object) -> int:
    """How deeply `value` nests, without recursion (a hostile body could be deeper than Python's stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest
