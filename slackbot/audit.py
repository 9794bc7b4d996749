"""One structured audit record per decision: JSON lines on stdout and, optionally, a file."""

import json
import logging
import os
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict

from slackbot.clock import rfc3339
from slackbot.errors import ConfigError

log = logging.getLogger(__name__)

Decision = Literal["allowed", "refused", "invalid", "help", "duplicate"]
Outcome = Literal["submitted", "answered", "failed", "none"]


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True)
    time: datetime
    user: str
    channel: str | None
    command: str
    source: Literal["command", "button"] = "command"
    action: str | None
    decision: Decision
    reason: str | None = None
    env: str | None = None
    workflow: str | None = None
    outcome: Outcome = "none"
    ttl: str | None = None
    expires_at: datetime | None = None
    latency_ms: int

    def to_json(self) -> str:
        fields = self.model_dump(mode="json") | {"time": rfc3339(self.time), "kind": "audit"}
        if self.expires_at is not None:
            fields["expires_at"] = rfc3339(self.expires_at)
        return json.dumps(fields, sort_keys=True)


def check_appendable(path: Path) -> None:
    """Stop start-up (and fail `envbot check`) with one line if the audit file can't be appended to."""
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        raise ConfigError(
            f"ENVBOT_AUDIT_FILE={path} cannot be appended to ({error.strerror}); point it at a writable "
            "file or unset it (records always go to stdout)"
        ) from None


class AuditLog:
    """Thread-safe writer; each record is one line, written and flushed whole. Never raises: a record
    that can't be written is logged, and the command it describes goes on."""

    def __init__(self, path: Path | None = None, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._path = path
        self._lock = threading.Lock()
        self._file_failed = False

    def record(self, entry: AuditRecord) -> None:
        line = entry.to_json() + "\n"
        with self._lock:
            try:
                stream = self._stream or sys.stdout
                stream.write(line)
                stream.flush()
            except (OSError, ValueError) as error:
                log.error("could not write an audit record to stdout: %s", type(error).__name__)
            if self._path is not None:
                self._append(line)

    def _append(self, line: str) -> None:
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)  # type: ignore[arg-type]
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(line)
            self._file_failed = False
        except OSError as error:
            if not self._file_failed:  # one line per outage, not one per command
                log.error(
                    "cannot append to ENVBOT_AUDIT_FILE=%s (%s); records still go to stdout", self._path, error.strerror
                )
            self._file_failed = True
