"""Kubernetes label-selector matching, shared by the argo and kubectl stand-ins."""

import re

_TERM = re.compile(r"[^,(]+(?:\([^)]*\))?")
_SET = re.compile(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)")


def matches(selector: str, labels: dict[str, str]) -> bool:
    for raw in _TERM.findall(selector):
        term = raw.strip().lstrip(",").strip()
        if term and not _term_matches(term, labels):
            return False
    return True


def _term_matches(term: str, labels: dict[str, str]) -> bool:
    if found := _SET.fullmatch(term):
        key, op, values = found.group(1), found.group(2), {v.strip() for v in found.group(3).split(",")}
        return (labels.get(key) in values) == (op == "in")
    if "!=" in term:
        key, value = term.split("!=", 1)
        return labels.get(key) != value
    if "=" in term:
        key, value = term.replace("==", "=").split("=", 1)
        return labels.get(key) == value
    if term.startswith("!"):
        return term[1:] not in labels
    return term in labels
