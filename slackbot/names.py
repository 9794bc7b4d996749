"""Naming rules. An environment is a Kubernetes namespace, so its name is a DNS-1123 label."""

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Annotated

from pydantic import AfterValidator

MAX_NAME = 63
SUFFIX_LENGTH = 5
_LABEL = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_SLACK_ID = re.compile(r"[A-Z][A-Z0-9]{1,31}")
# Letters and digits that never read as one another, like the suffixes Kubernetes generates.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

NAME_RULE = (
    "lowercase letters, digits and `-`, starting with a letter, ending with a letter or digit, "
    f"at most {MAX_NAME} characters"
)

# Namespaces that exist on most clusters or belong to the platform itself.
RESERVED_NAMES = frozenset(
    {
        "default",
        "argo",
        "argo-events",
        "argocd",
        "envbot",
        "envbot-workflows",
        "cert-manager",
        "ingress-nginx",
        "istio-system",
        "gatekeeper-system",
        "kyverno",
        "local-path-storage",
        "monitoring",
    }
)
RESERVED_PREFIXES = ("kube-", "openshift", "istio-")

RandomSuffix = Callable[[], str]


def random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def derived_suffix(seed: str) -> str:
    """A suffix that is the same for the same seed (a replayed request picks the same name)."""
    digest = hashlib.sha256(f"env-name:{seed}".encode()).digest()
    return "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in digest[:SUFFIX_LENGTH])


def is_dns_label(value: str) -> bool:
    return _LABEL.fullmatch(value) is not None


def is_slack_id(value: str) -> bool:
    return _SLACK_ID.fullmatch(value) is not None


def _slack_id(prefixes: str) -> AfterValidator:
    def check(value: str) -> str:
        if not (is_slack_id(value) and value[0] in prefixes):
            raise ValueError(f"'{value}' is not a Slack id starting with one of {', '.join(prefixes)}")
        return value

    return AfterValidator(check)


UserId = Annotated[str, _slack_id("UW")]
ChannelId = Annotated[str, _slack_id("CGD")]
_MESSAGE_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}")


def _message_ts(value: str) -> str:
    if not _MESSAGE_TS.fullmatch(value):
        raise ValueError("not a Slack message timestamp")
    return value


MessageTs = Annotated[str, AfterValidator(_message_ts)]  # a message's id within its channel, e.g. 1764320001.000100
GroupId = Annotated[str, _slack_id("S")]


def check_label(kind: str, value: str) -> str:
    """Return `value` if it is a valid name, else raise ValueError naming the rule."""
    if not is_dns_label(value):
        raise ValueError(f"{kind} `{value}` is not valid: use {NAME_RULE}")
    return value


def reserved_reason(name: str, extra: Iterable[str] = ()) -> str | None:
    """Why `name` may not be used as an environment, or None if it may."""
    if name in RESERVED_NAMES or name in set(extra):
        return f"`{name}` is a system or reserved namespace"
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"names starting with `{prefix}` are reserved for the cluster"
    return None


def derive_env_name(service: str, suffix: RandomSuffix = random_suffix) -> str:
    """`checkout` -> `checkout-x7k2p`, trimmed so the result is still a valid label."""
    stem = service[: MAX_NAME - SUFFIX_LENGTH - 1].rstrip("-")
    return f"{stem}-{suffix()}"


_WORKFLOW_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,61}[a-z0-9])?")


def is_workflow_name(value: str) -> bool:
    return _WORKFLOW_NAME.fullmatch(value) is not None


def _workflow_name(value: str) -> str:
    # Workflow names travel as label values too, so they must fit in 63 characters.
    if not _WORKFLOW_NAME.fullmatch(value):
        raise ValueError(f"'{value[:80]}' is not a workflow name of at most 63 characters")
    return value


WorkflowName = Annotated[str, AfterValidator(_workflow_name)]
