"""A Runner that runs nothing: the console's `--dry-run` and the README quickstart."""

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slackbot.argo_cli.process import Completed
from slackbot.clock import rfc3339


class DryRunRunner:
    """Remembers each argv so the console can show it, and answers `argo list`/`get` with the
    workflows this session would have submitted, so a later extend or destroy finds its create."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.argvs: list[list[str]] = []
        self._submitted: list[dict[str, Any]] = []
        self._clock = clock or (lambda: datetime.now(UTC))

    def __call__(self, argv: list[str], timeout: float, on_stdout: Callable[[str], None] | None = None) -> Completed:
        self.argvs.append(argv)
        verb = argv[1]
        if verb == "submit":
            workflow = self._workflow(argv)
            self._submitted.append(workflow)
            return Completed(0, f"{workflow['metadata']['name']}\n", "")
        if verb == "version":
            return Completed(0, "argo: (dry run)\n", "")
        if verb == "get":
            found = [w for w in self._submitted if w["metadata"]["name"] == argv[2]]
            if not found:
                return Completed(
                    1, "", f'Error: rpc error: code = NotFound desc = workflows.argoproj.io "{argv[2]}" not found'
                )
            return Completed(0, json.dumps(found[0]), "")
        selected = [w for w in self._submitted if _matches(_flag(argv, "-l"), w["metadata"]["labels"])]
        text = json.dumps(selected)
        if on_stdout is None:
            return Completed(0, text, "")
        on_stdout(text)
        return Completed(0, "", "")

    def _workflow(self, argv: list[str]) -> dict[str, Any]:
        template = _flag(argv, "--from").partition("/")[2]
        labels = dict(term.split("=", 1) for term in _flag(argv, "-l").split(",") if term)
        params = [dict(zip(("name", "value"), v.split("=", 1), strict=True)) for f, v in _pairs(argv) if f == "-p"]
        return {
            "metadata": {
                "name": f"{template}-dry{len(self._submitted) + 1}",
                "labels": labels,
                "creationTimestamp": rfc3339(self._clock()),
            },
            "spec": {"arguments": {"parameters": params}, "workflowTemplateRef": {"name": template}},
            "status": {},
        }


def _pairs(argv: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(argv))


def _flag(argv: list[str], name: str) -> str:
    return next((value for flag, value in _pairs(argv) if flag == name), "")


def _matches(selector: str, labels: dict[str, str]) -> bool:
    # The bot only ever selects with equality terms.
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in selector.split(",") if term))
