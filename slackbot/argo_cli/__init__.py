"""The Argo CLI adapter: the only part of envbot that runs a process (see process.py)."""

from slackbot.argo_cli.dry_run import DryRunRunner
from slackbot.argo_cli.labels import (
    LABEL_ACTION,
    LABEL_AFTER,
    LABEL_CHANNEL,
    LABEL_ENV,
    LABEL_EXPIRES,
    LABEL_INCARNATION,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    LABEL_REQUESTED_BY,
    LABEL_SERVICE,
    MANAGED_BY,
)
from slackbot.argo_cli.orchestrator import ArgoCliOrchestrator
from slackbot.argo_cli.process import CHILDREN, Completed, ProcessRunner, Runner

__all__ = [
    "CHILDREN",
    "LABEL_ACTION",
    "LABEL_AFTER",
    "LABEL_CHANNEL",
    "LABEL_ENV",
    "LABEL_EXPIRES",
    "LABEL_INCARNATION",
    "LABEL_MANAGED_BY",
    "LABEL_OWNER",
    "LABEL_REQUESTED_BY",
    "LABEL_SERVICE",
    "MANAGED_BY",
    "ArgoCliOrchestrator",
    "Completed",
    "DryRunRunner",
    "ProcessRunner",
    "Runner",
]
