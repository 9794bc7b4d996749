"""Reading what `argo` prints: workflow lists (streamed), single workflows, templates.

`argo list -o json` prints full Workflow objects. Parsing the array one item at a time keeps only
the few fields envbot needs, so memory follows the number of records, not the size of the JSON.
"""

import json
import re
from datetime import UTC, datetime
from typing import Any

from slackbot.argo_cli.labels import (
    LABEL_ACTION,
    LABEL_AFTER,
    LABEL_CHANNEL,
    LABEL_ENV,
    LABEL_EXPIRES,
    LABEL_INCARNATION,
    LABEL_NOTICE,
    LABEL_OWNER,
    LABEL_REQUEST,
    LABEL_REQUESTED_BY,
    LABEL_SERVICE,
)
from slackbot.commands import Target
from slackbot.names import is_dns_label
from slackbot.orchestrator import FailedStep, PlaneLimits, TemplateInfo, WorkflowDetail, WorkflowRecord

MAX_ITEM = 8 * 1024 * 1024
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class NotAWorkflowList(Exception):
    """The output is not a JSON array of objects."""


class WorkflowListReader:
    """Feed it stdout as it arrives; it keeps one WorkflowRecord per envbot workflow."""

    def __init__(self) -> None:
        self.records: list[WorkflowRecord] = []
        self._buffer = ""
        self._state = "start"  # start -> item -> separator -> ... -> done

    def feed(self, text: str) -> None:
        self._buffer += text
        self._advance(final=False)

    def finish(self) -> list[WorkflowRecord]:
        self._advance(final=True)
        if self._state != "done" or self._buffer.strip(_WHITESPACE):
            raise NotAWorkflowList("the output ended before the list did" if self._state != "done" else "extra output")
        return self.records

    def _advance(self, final: bool) -> None:
        while True:
            text = self._buffer.lstrip(_WHITESPACE)
            if not text:
                self._buffer = ""
                return
            if self._state == "done":
                raise NotAWorkflowList("extra output after the list")
            if self._state == "start":
                if not text.startswith("["):
                    raise NotAWorkflowList("not a JSON list")
                self._buffer, self._state = text[1:], "first"
            elif self._state in ("first", "separator") and text.startswith("]"):
                self._buffer, self._state = text[1:], "done"
            elif self._state == "separator":
                if not text.startswith(","):
                    raise NotAWorkflowList("items are not separated by commas")
                self._buffer, self._state = text[1:], "item"
            elif not self._take_item(text, final):
                return

    def _take_item(self, text: str, final: bool) -> bool:
        try:
            item, end = _DECODER.raw_decode(text)
        except json.JSONDecodeError:
            if final or len(text) > MAX_ITEM:
                raise NotAWorkflowList("an item is not valid JSON") from None
            self._buffer = text
            return False  # wait for the rest of this item
        if not isinstance(item, dict):
            raise NotAWorkflowList("an item is not a workflow object")
        record = workflow_record(item)
        if record is not None:
            self.records.append(record)
        self._buffer, self._state = text[end:], "separator"
        return True


def workflow_record(item: dict[str, Any]) -> WorkflowRecord | None:
    """The envbot facts of one Workflow object; None for workflows that aren't envbot's."""
    metadata = _dict(item.get("metadata"))
    labels = _dict(metadata.get("labels"))
    status = _dict(item.get("status"))
    params = _parameters(item)
    action = labels.get(LABEL_ACTION)
    env = labels.get(LABEL_ENV)
    if action not in ("create", "extend", "deploy", "destroy") or not isinstance(env, str) or not env:
        return None
    return WorkflowRecord(
        name=str(metadata.get("name", "")),
        action=action,
        env_name=env,
        service=labels.get(LABEL_SERVICE),
        owner=labels.get(LABEL_OWNER) or (labels.get(LABEL_REQUESTED_BY) if action == "create" else None),
        requested_by=labels.get(LABEL_REQUESTED_BY),
        channel=labels.get(LABEL_CHANNEL),
        created_at=instant(metadata.get("creationTimestamp")) or datetime(1970, 1, 1, tzinfo=UTC),
        finished_at=instant(status.get("finishedAt")),
        phase=str(status.get("phase") or ""),
        message=str(status["message"]) if status.get("message") else None,
        expires_at=instant(params.get("expires_at")) or _epoch(labels.get(LABEL_EXPIRES)),
        incarnation=labels.get(LABEL_INCARNATION),
        after=labels.get(LABEL_AFTER),
        request=labels.get(LABEL_REQUEST),
        thread=_message_ts(params.get("slack_thread")),
        requested_version=_requested(params) if action in ("create", "deploy") else None,
        version=_reported(status, "version", _VERSION),
        url=_reported(status, "url", _URL),
        notice=_notice(labels.get(LABEL_NOTICE)),
        warn_before=_leads(params.get("warn_before")) if action in ("create", "extend") else (),
        failed_step=failed_step(item) if status.get("phase") in ("Failed", "Error") else None,
        namespace=metadata["namespace"] if is_dns_label(str(metadata.get("namespace", ""))) else None,
    )


# What the deploy step reports (docs/adr/0008), quoted in replies only when it has the expected shape.
_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
_URL = re.compile(r"https://[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def _requested(params: dict[str, Any]) -> str | None:
    try:
        target = Target(
            version=params.get("version") or None, ref=params.get("ref") or None, pr=params.get("pr") or None
        )
    except ValueError:
        return None
    return target.text if target != Target() else None


def _reported(status: dict[str, Any], name: str, shape: re.Pattern[str]) -> str | None:
    for node in _dict(status.get("nodes")).values():
        for parameter in _dict(_dict(node).get("outputs")).get("parameters") or []:
            value = _dict(parameter).get("value")
            if _dict(parameter).get("name") == name and isinstance(value, str) and shape.fullmatch(value):
                return value
    return None


def workflow_detail(item: dict[str, Any]) -> WorkflowDetail:
    """One workflow from `argo get -o json`, with the step that failed (the earliest failed pod)."""
    return WorkflowDetail(record=workflow_record(item), failed_step=failed_step(item))


def failed_step(item: dict[str, Any]) -> FailedStep | None:
    """The step that failed (the earliest failed pod) and its message; None unless the workflow failed."""
    status = _dict(item.get("status"))
    nodes = [n for n in _dict(status.get("nodes")).values() if isinstance(n, dict)]
    failed = [n for n in nodes if n.get("phase") in ("Failed", "Error") and n.get("type") in ("Pod", "Retry", None)]
    failed.sort(key=lambda n: str(n.get("finishedAt") or n.get("startedAt") or ""))
    if failed:
        node = failed[0]
        # A one-step workflow's pod is its root node, whose display name is the workflow's own name.
        display = node.get("displayName")
        root = display == _dict(item.get("metadata")).get("name")
        name = str((node.get("templateName") if root else display) or node.get("templateName") or "?")
        return FailedStep(name=name, message=str(node.get("message") or status.get("message") or "no message"))
    if status.get("phase") in ("Failed", "Error"):
        return FailedStep(name="workflow", message=str(status.get("message") or "no message"))
    return None


def plane_limits(item: dict[str, Any]) -> PlaneLimits | None:
    """What a create step recorded as its `limits` output; None if it recorded nothing readable."""
    status = _dict(item.get("status"))
    for node in _dict(status.get("nodes")).values():
        for param in _dict(_dict(node).get("outputs")).get("parameters") or []:
            if not isinstance(param, dict) or param.get("name") != "limits":
                continue
            try:
                recorded = _dict(json.loads(str(param.get("value") or "")))
            except json.JSONDecodeError:
                return None
            if not recorded:
                return None
            return PlaneLimits(
                workflow=str(_dict(item.get("metadata")).get("name", "")),
                finished_at=instant(status.get("finishedAt")),
                per_user=_count(recorded.get("max_environments_per_user")),
                per_channel=_count(recorded.get("max_environments_per_channel")),
            )
    return None


def _count(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 7 else None


def template_info(item: dict[str, Any]) -> TemplateInfo:
    spec = _dict(item.get("spec"))
    parameters = {}
    for param in _dict(spec.get("arguments")).get("parameters") or []:
        if isinstance(param, dict) and isinstance(param.get("name"), str):
            parameters[param["name"]] = "value" not in param and "valueFrom" not in param
    ttl = _dict(spec.get("ttlStrategy"))
    seconds = [int(v) for k, v in ttl.items() if k.startswith("seconds") and isinstance(v, int)]
    return TemplateInfo(
        name=str(_dict(item.get("metadata")).get("name", "")),
        parameters=parameters,
        retention_seconds=min(seconds) if seconds else None,
    )


def instant(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _epoch(text: object) -> datetime | None:
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    return datetime.fromtimestamp(int(text), tz=UTC)


def _parameters(item: dict[str, Any]) -> dict[str, Any]:
    arguments = _dict(_dict(item.get("spec")).get("arguments"))
    parameters = arguments.get("parameters") or []
    return {str(p.get("name")): p.get("value") for p in parameters if isinstance(p, dict)}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _leads(value: object) -> tuple[int, ...]:
    """`warn_before` as the bot passes it (`3600,600`); anything else: none."""
    if not isinstance(value, str) or not re.fullmatch(r"[1-9][0-9]{0,8}(,[1-9][0-9]{0,8}){0,9}", value):
        return ()
    return tuple(int(lead) for lead in value.split(","))


def _notice(value: object) -> str | None:
    """The plane's notice label, only as one of the words it writes (anything else: not settled)."""
    return value if value in ("sending", "sent", "pending", "refused", "skipped") else None


def _message_ts(value: object) -> str | None:
    """A Slack message ts from a parameter, or None (empty, or not one: never trusted as anything else)."""
    return value if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}\.[0-9]{1,9}", value) else None
