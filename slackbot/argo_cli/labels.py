"""The labels envbot puts on every workflow it submits: what `argo list -l` selects on."""

import re

from slackbot.errors import OrchestratorError

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "envbot"
LABEL_ENV = "envbot.dev/env"
LABEL_ACTION = "envbot.dev/action"
LABEL_SERVICE = "envbot.dev/service"
LABEL_OWNER = "envbot.dev/owner"  # the environment's owner, on every workflow of it (quota reads)
LABEL_REQUESTED_BY = "envbot.dev/requested-by"  # who asked for this workflow
LABEL_CHANNEL = "envbot.dev/channel"  # the environment's channel, on every workflow of it
LABEL_INCARNATION = "envbot.dev/create-workflow"  # extend/destroy: the create they act on
LABEL_AFTER = "envbot.dev/after"  # the workflow this one followed in the environment's history
LABEL_EXPIRES = "envbot.dev/expires"  # create/extend: the expiry they set, in epoch seconds
LABEL_REQUEST = "envbot.dev/request"  # the key of the Slack request that submitted it (docs/adr/0011)
LABEL_NOTICE = "envbot.dev/notice"  # written by the execution plane once it settled the workflow's notice

_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise OrchestratorError(f"`{value[:80]}` cannot be used as a Kubernetes label value.")
    return value


def selector(labels: dict[str, str | None]) -> str:
    """`k=v,k=v` for the given labels; absent values are left out, every value is validated."""
    return ",".join(f"{key}={label_value(value)}" for key, value in labels.items() if value)
