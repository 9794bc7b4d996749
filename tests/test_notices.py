"""Notices from the execution plane (issue 9, docs/adr/0005): the exit handlers and the env-notifier
sweep, run as Argo would run them, with the real kubectl against the Kubernetes API stand-in and
the real curl against the Slack Web API stand-in.

Time is the scripts' `date`, shifted by a test clock (a `date` on PATH that adds an offset), so a
warning an hour before expiry is a clock move, not an hour. curl is the real one, behind a
recorder on PATH that notes its argv and environment before exec'ing it.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from slackbot.slack.blocks import Click, click_from_value
from tests.conftest import ROOT
from tests.execution_plane import (
    ARGO_NAMESPACE,
    CREATE,
    DESTROY,
    EXTEND,
    NOTIFIER,
    REAPER,
    SETTINGS,
    Run,
    allowed,
    argo_failures,
    render,
    run_script,
    service_account,
    template,
)
from tests.fakes.cluster import install
from tests.fakes.kube_api import DEFAULT_USER, FakeKubeApi, kubectl_env, kubectl_path
from tests.fakes.slack_api import FakeSlack

CHANNEL = "C111AAA"
OWNER = "U111AAA"
ENV = "checkout-demo"
UI = "https://argo.example.com"
NOTICE = "envbot.dev/notice"
DETAIL = "envbot.dev/notice-detail"
WARNING = "envbot.dev/warning"
HOUR = 3600


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slack_date(epoch: int) -> str:
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}> ({rfc3339(epoch)})"


class Plane:
    """The cluster (kube stand-in), Slack (stand-in), a clock, and the notice scripts run as Argo would."""

    def __init__(self, api: FakeKubeApi, slack: FakeSlack, folder: Path) -> None:
        self.api, self.slack, self.folder = api, slack, folder
        install(api)  # RBAC and admission from argo/ judge every request the scripts make
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True)
        self.offset_file = folder / "clock-offset"
        self.offset_file.write_text("0")
        self.curl_log = folder / "curl-calls.jsonl"
        self.token = "xoxb-" + secrets.token_hex(16)
        secret = folder / "secret"
        secret.mkdir()
        self.token_file = secret / "bot-token"
        self.token_file.write_text(self.token + "\n")
        # Secret envbot-slack-notifier's optional key slack_api_url: the Slack stand-in (docs/adr/0014).
        self.api_url_file = secret / "slack_api_url"
        self.api_url_file.write_text(slack.api_url)
        self.settings = SETTINGS | {"notices": "on", "argo_ui_url": UI}
        self.runs: list[Run] = []
        self._write(
            "date",
            f'#!/bin/bash\noffset=$(<{self.offset_file})\nexec /bin/date -d "@$(($(/bin/date +%s) + offset))" "$@"\n',
        )
        recorder = (
            "import json, os, stat, sys\n"
            "argv = sys.argv[1:]\n"
            "header = argv[argv.index('--header') + 1] if '--header' in argv else ''\n"
            "mode = stat.S_IMODE(os.stat(header[1:]).st_mode) if header.startswith('@') else None\n"
            f"with open({str(self.curl_log)!r}, 'a') as log:\n"
            "    log.write(json.dumps({'argv': argv, 'env': dict(os.environ), 'header_mode': mode}) + '\\n')\n"
            "os.execv('/usr/bin/curl', ['curl', *sys.argv[1:]])\n"
        )
        self._write("curl", f"#!{sys.executable}\n{recorder}")

    def _write(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    # --- time --------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(time.time()) + int(self.offset_file.read_text())

    def advance(self, seconds: int) -> None:
        self.offset_file.write_text(str(int(self.offset_file.read_text()) + seconds))

    # --- running the scripts -----------------------------------------------------------------------

    def run(
        self,
        name: str,
        params: dict[str, str],
        *,
        step: str | None = None,
        workflow: dict[str, str] | None = None,
        settings: dict[str, str] | None = None,
        folder: str = "pod",
    ) -> Run:
        user = service_account(name, step)
        base = kubectl_env(self.api, self.folder / "home" / user.rsplit(":", 1)[1], user=user)
        base["PATH"] = f"{self.bin}:{base['PATH']}"
        base["ENVBOT_SLACK_TOKEN_FILE"] = str(self.token_file)
        base["ENVBOT_SLACK_API_URL_FILE"] = str(self.api_url_file)
        rendered = render(name, params, self.settings if settings is None else settings, step=step, workflow=workflow)
        run = run_script(rendered, self.folder / folder, base, timeout=120)
        self.runs.append(run)
        return run

    def exit_handler(
        self,
        name: str,
        workflow: str,
        status: str = "Succeeded",
        failures: list[dict[str, Any]] | None = None,
        settings: dict[str, str] | None = None,
    ) -> Run:
        # The exit handler reads the parameters from the Workflow object, not from its environment.
        variables = {"name": workflow, "status": status, "failures": argo_failures(failures)}
        run = self.run(name, {}, step="notify", workflow=variables, settings=settings, folder=f"exit-{workflow}")
        assert run.returncode == 0, run.output  # an exit handler never fails its workflow
        return run

    def sweep(self, settings: dict[str, str] | None = None, folder: str = "sweep") -> Run:
        return self.run(NOTIFIER, {}, settings=settings, folder=folder)

    # --- the cluster -------------------------------------------------------------------------------

    def create(self, **params: str) -> Run:
        """The create step itself (as envbot-create): the environment the notices are about."""
        run = self.run(CREATE, {"env_name": ENV, "service": "checkout", "requested_by": OWNER} | params)
        assert run.returncode == 0, run.output
        return run

    def workflow(
        self,
        name: str,
        params: dict[str, str],
        *,
        phase: str = "Running",
        ended_ago: int | None = None,
        nodes: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> str:
        """A Workflow as the controller keeps it: a bare reference, and the template in its status."""
        workflow_name = f"{name}-{secrets.token_hex(3)}"
        spec = template(name)["spec"]
        status: dict[str, Any] = {
            "phase": phase,
            "startedAt": rfc3339(self.now() - 60),
            "storedWorkflowTemplateSpec": spec,
            "nodes": nodes or {},
        }
        # Labels as Argo v3.7 leaves them: the template's workflowMetadata labels (applied by the
        # controller), and workflow-template only for `argo submit --from` (not for cron-started runs).
        meta_labels = dict(spec["workflowMetadata"]["labels"]) | {"workflows.argoproj.io/completed": "false"}
        if name == REAPER:
            meta_labels["workflows.argoproj.io/cron-workflow"] = "env-reaper"
        else:
            meta_labels["workflows.argoproj.io/workflow-template"] = name
        if ended_ago is not None:
            status["finishedAt"] = rfc3339(self.now() - ended_ago)
            meta_labels["workflows.argoproj.io/completed"] = "true"
        metadata: dict[str, Any] = {
            "name": workflow_name,
            "namespace": ARGO_NAMESPACE,
            "labels": meta_labels | (labels or {}),
        }
        if annotations:
            metadata["annotations"] = annotations
        if name == REAPER:  # Argo makes the CronWorkflow the controller of the workflows it starts
            cron = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "name": "env-reaper"}
            metadata["ownerReferences"] = [cron | {"uid": "0f1e2d3c", "controller": True, "blockOwnerDeletion": True}]
        parameters = [{"name": k, "value": v} for k, v in params.items()]
        self.api.put(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": metadata,
                "spec": {"workflowTemplateRef": {"name": name}, "arguments": {"parameters": parameters}},
                "status": status,
            }
        )
        return workflow_name

    def end(self, workflow: str, phase: str = "Succeeded", ago: int = 0, nodes: dict[str, Any] | None = None) -> None:
        """The controller completes the workflow (after its exit handler, if it ran)."""
        obj = self.get(workflow)
        obj["status"] |= {"phase": phase, "finishedAt": rfc3339(self.now() - ago)}
        if nodes is not None:
            obj["status"]["nodes"] = nodes
        obj["metadata"]["labels"]["workflows.argoproj.io/completed"] = "true"
        self.api.put(obj)

    def get(self, workflow: str) -> dict[str, Any]:
        (obj,) = [w for w in self.api.objects("Workflow", ARGO_NAMESPACE) if w["metadata"]["name"] == workflow]
        return obj

    def params_of(self, workflow: str) -> dict[str, str]:
        return {p["name"]: p["value"] for p in self.get(workflow)["spec"]["arguments"]["parameters"]}

    def notice(self, workflow: str) -> tuple[str | None, dict[str, Any]]:
        meta = self.get(workflow)["metadata"]
        detail = json.loads((meta.get("annotations") or {}).get(DETAIL, "{}"))
        return meta["labels"].get(NOTICE), detail

    def warning_record(self, env: str = ENV) -> dict[str, Any]:
        ns = self.api.namespace(env)
        assert ns is not None
        return json.loads((ns["metadata"].get("annotations") or {}).get(WARNING, "{}"))

    def posted(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return self.slack.posted(channel)

    def curl_calls(self) -> list[dict[str, Any]]:
        if not self.curl_log.exists():
            return []
        return [json.loads(line) for line in self.curl_log.read_text().splitlines()]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def plane(api: FakeKubeApi, slack: FakeSlack, tmp_path: Path) -> Plane:
    return Plane(api, slack, tmp_path)


def create_params(plane: Plane, ttl: int = 4 * HOUR, **extra: str) -> dict[str, str]:
    """What the bot passes to env-create-template (with the policy's notice settings)."""
    return {
        "env_name": ENV,
        "service": "checkout",
        "expires_at": rfc3339(plane.now() + ttl),
        "requested_by": OWNER,
        "slack_channel": CHANNEL,
        "warn_before": "3600,600",
        "extend_choices": "2h,1d",
        "latest_expiry": rfc3339(plane.now() + 14 * 24 * HOUR),
    } | extra


def environment(plane: Plane, **params: Any) -> int:
    """An environment as env-create-template leaves it for `create_params(plane, **params)` (the
    warnings test runs the real create and checks it writes the same); returns its expiry."""
    p = create_params(plane, **params)
    labels = {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": "envbot",
        "envbot.dev/env": p["env_name"],
        "envbot.dev/service": p["service"],
        "envbot.dev/requested-by": p["requested_by"],
    }
    annotations = {
        "envbot.dev/expires-at": p["expires_at"],
        "janitor/expires": p["expires_at"],
        "envbot.dev/slack-channel": p["slack_channel"],
        "envbot.dev/warn-before": p["warn_before"],
        "envbot.dev/extend-choices": p["extend_choices"],
        "envbot.dev/latest-expiry": p["latest_expiry"],
        "envbot.dev/expiry-set-at": rfc3339(plane.now()),
        "envbot.dev/incarnation": f"{CREATE}-test1",
        "envbot.dev/slack-thread": p.get("slack_thread", ""),
        "envbot.dev/warn-owner-dm": p.get("warn_owner_dm", "false"),
    }
    plane.api.add_namespace(p["env_name"], labels, annotations)
    return expiry_of(plane, p["env_name"])


# --- ready and failed ------------------------------------------------------------------------------


def test_a_create_that_succeeds_says_ready_with_the_expiry(plane: Plane) -> None:
    params = create_params(plane)
    workflow = plane.workflow(CREATE, params)
    run = plane.exit_handler(CREATE, workflow, "Succeeded")
    assert f"notice for {workflow} sent" in run.stdout
    (message,) = plane.posted()
    expires = int(datetime.strptime(params["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
    text = f":white_check_mark: `{ENV}` is ready. It expires {slack_date(expires)}."
    assert message["text"] == text
    assert message["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    assert plane.notice(workflow)[0] == "sent"


def failure(message: str, step: str = "create") -> list[dict[str, Any]]:
    """`{{workflow.failures}}` for a workflow whose one script step failed."""
    return [
        {
            "displayName": "env-create-template-x7k2p",
            "message": message,
            "templateName": step,
            "phase": "Failed",
            "podName": "env-create-template-x7k2p",
            "finishedAt": "2026-11-28T15:00:00Z",
        }
    ]


def test_a_failed_create_mentions_the_requester_names_the_step_and_links_to_argo(plane: Plane) -> None:
    params = create_params(plane)
    workflow = plane.workflow(CREATE, params)
    reason = "Error (exit code 1): envbot: namespace checkout-demo is not managed by this envbot install"
    plane.exit_handler(CREATE, workflow, "Failed", failure(reason))
    (message,) = plane.posted()
    text = (
        f"<@{OWNER}> :x: Creating `{ENV}` failed at step `create`: {reason}\n"
        f"Workflow `{workflow}` (<{UI}/workflows/{ARGO_NAMESPACE}/{workflow}|Argo UI>). "
        f"See what exists with `/env status {ENV}`."
    )
    assert message["text"] == text
    assert message["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    assert "actions" not in json.dumps(message["blocks"])  # only warnings carry buttons


def test_a_create_the_plane_refused_over_quota_says_why_and_what_to_do(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    reason = (  # the create step's own words (tests/test_plane_quotas.py), as Argo quotes them
        "Error (exit code 1): envbot: user U111AAA already has 3 live environments (limit 3): a, b, c. "
        "Destroy one with /env destroy <name> and try again; nothing was created"
    )
    plane.exit_handler(CREATE, workflow, "Failed", failure(reason), plane.settings | {"argo_ui_url": ""})
    (message,) = plane.posted()
    assert message["text"] == (
        f"<@{OWNER}> :x: Creating `{ENV}` failed at step `create`: Error (exit code 1): envbot: user U111AAA "
        "already has 3 live environments (limit 3): a, b, c. Destroy one with /env destroy &lt;name&gt; and try "
        f"again; nothing was created\nWorkflow `{workflow}`. See what exists with `/env status {ENV}`."
    )


@pytest.mark.parametrize(
    ("name", "status", "expected"),
    [
        (EXTEND, "Succeeded", ":hourglass: `checkout-demo` was extended. It now expires {date}."),
        (DESTROY, "Succeeded", ":wastebasket: `checkout-demo` was deleted."),
        (
            EXTEND,
            "Error",
            f"<@{OWNER}> :x: Extending `checkout-demo` failed at step `extend`: boom\nWorkflow `{{wf}}`.",
        ),
        (
            DESTROY,
            "Failed",
            f"<@{OWNER}> :x: Destroying `checkout-demo` failed at step `destroy`: boom\nWorkflow `{{wf}}`.",
        ),
    ],
)
def test_extend_and_destroy_notices(plane: Plane, name: str, status: str, expected: str) -> None:
    expires = plane.now() + 6 * HOUR
    params = {"env_name": ENV, "requested_by": OWNER, "slack_channel": CHANNEL}
    if name == EXTEND:
        params |= {"expires_at": rfc3339(expires), "warn_before": "3600", "extend_choices": "2h", "latest_expiry": ""}
    workflow = plane.workflow(name, params)
    no_ui = plane.settings | {"argo_ui_url": ""}
    plane.exit_handler(name, workflow, status, None if status == "Succeeded" else failure("boom", name[4:-9]), no_ui)
    (message,) = plane.posted()
    assert message["text"] == expected.format(date=slack_date(expires), wf=workflow)


def test_hostile_failure_messages_are_escaped_and_cannot_ping(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    hostile = "<!channel> & <@U999EVIL> <https://evil.example|click> `x`\n\x1b[31mred\x07" + "z" * 1000
    plane.exit_handler(CREATE, workflow, "Failed", failure(hostile, step="<!here>"))
    (message,) = plane.posted()
    text = message["text"]
    assert "<!channel>" not in text and "<!here>" not in text and "<@U999EVIL>" not in text
    assert "<https://evil" not in text and "\x1b" not in text and "\x07" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U999EVIL&gt; &lt;https://evil.example|click&gt;" in text
    assert "at step `&lt;!here&gt;`" in text
    assert len(text) < 1000  # Argo's message is cut, not the notice's own links
    assert text.startswith(f"<@{OWNER}> :x: ")


def test_no_channel_means_no_notice_and_the_workflow_is_marked(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane, slack_channel=""))
    run = plane.exit_handler(CREATE, workflow)
    assert plane.slack.posted() == []
    assert plane.notice(workflow) == ("skipped", plane.notice(workflow)[1])
    assert "nothing to announce" in run.stdout


# --- Slack down, rate limits: delayed, never lost, never in the way --------------------------------

POST = "/api/chat.postMessage"


def test_slack_down_leaves_the_notice_pending_and_a_later_sweep_delivers_it_once(plane: Plane) -> None:
    params = create_params(plane)
    workflow = plane.workflow(CREATE, params)
    plane.slack.fail(POST, 500, times=2)  # every attempt of the exit handler: 5xx, then no answer at all
    plane.slack.fail(POST, 0, times=1)
    run = plane.exit_handler(CREATE, workflow)  # exits 0: the create is not failed by Slack
    assert plane.posted() == [] and len(plane.slack.requests(POST)) == 3
    mark, detail = plane.notice(workflow)
    assert mark == "pending" and detail["delivered"] == 0 and detail["why"].startswith("Slack did not answer")
    assert f"notice for {workflow}: pending" in run.stdout
    plane.end(workflow)
    plane.sweep()
    (message,) = plane.posted()
    assert message["text"].startswith(f":white_check_mark: `{ENV}` is ready.")
    assert "Sent again" not in message["text"]
    assert plane.notice(workflow)[0] == "sent"
    plane.sweep()
    assert len(plane.posted()) == 1


def test_a_dropped_connection_and_a_short_429_are_retried_within_the_run(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    plane.slack.fail(POST, 0, times=1)
    plane.slack.fail(POST, 429, times=1, retry_after=1)
    plane.exit_handler(CREATE, workflow)
    requests = plane.slack.requests(POST)
    assert len(requests) == 3 and len(plane.posted()) == 1
    assert requests[2].at - requests[1].at >= 0.9  # Retry-After was honoured
    assert plane.notice(workflow)[0] == "sent"


def test_a_long_retry_after_is_obeyed_across_sweeps(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    plane.slack.fail(POST, 429, times=1, retry_after=600)
    started = time.monotonic()
    plane.exit_handler(CREATE, workflow)
    assert time.monotonic() - started < 15  # gave up at once instead of sleeping through the exit handler
    mark, detail = plane.notice(workflow)
    assert mark == "pending" and detail["retry_at"] >= plane.now() + 590
    plane.end(workflow)
    plane.advance(300)
    plane.sweep()
    assert len(plane.slack.requests(POST)) == 1  # still rate-limited: not even tried
    plane.advance(301)
    plane.sweep()
    assert len(plane.posted()) == 1 and plane.notice(workflow)[0] == "sent", plane.runs[-1].output


def test_slack_refusing_the_message_for_good_is_recorded_and_not_retried(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane, slack_channel="C000GONE"))
    plane.slack.fail(POST, 200, times=1)  # 200 with ok:false and fatal_error: Slack's own trouble, retried
    plane.exit_handler(CREATE, workflow)
    assert plane.notice(workflow)[0] == "sent"
    gone = plane.workflow(CREATE, create_params(plane))
    plane.slack.fail(POST, 200, times=1, error="channel_not_found")
    run = plane.exit_handler(CREATE, gone)
    mark, detail = plane.notice(gone)
    assert mark == "refused" and detail["why"] == "Slack refused the message (channel_not_found)"
    assert "channel_not_found" in run.stdout
    plane.end(gone)
    plane.sweep()
    assert len(plane.slack.requests(POST)) == 3  # 2 for the first workflow, 1 for the refused one; none again


# --- the exit handler is never in the way -----------------------------------------------------------


def test_the_exit_handler_exits_0_whatever_goes_wrong(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    # The API server fails every read of the workflow.
    path = rf"^/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NAMESPACE}/workflows/{workflow}$"
    plane.api.fail("GET", path, 500, times=99)
    run = plane.exit_handler(CREATE, workflow)
    assert "could not read workflow" in run.stderr and "the env-notifier sweep will send it" in run.stdout
    # No settings at all (ConfigMap missing).
    run = plane.exit_handler(CREATE, workflow, settings={})
    assert "setting 'instance' is missing" in run.stderr
    # A workflow name Argo would never produce.
    run = plane.exit_handler(CREATE, "Not_A_Name")
    assert plane.slack.posted() == [] and plane.notice(workflow)[0] is None


@pytest.mark.parametrize(
    ("change", "url", "why"),
    [
        ({"notices": "off"}, None, "notices are off (setting 'notices' in ConfigMap envbot-settings)"),
        ({"notices": "yes"}, None, "setting 'notices' in ConfigMap envbot-settings must be on or off: notices are off"),
        ({}, "http://slack.example.com/api/", "key 'slack_api_url' in Secret envbot-slack-notifier must be an https"),
        ({}, "https://slack.com/api", "must be an https URL ending in /"),
        ({}, "https://slack.com/api/\nhttps://evil.example/", "must be an https URL ending in /"),
    ],
)
def test_notices_off_or_misconfigured_send_nothing_and_mark_the_workflow(
    plane: Plane, change: dict[str, str], url: str | None, why: str
) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    if url is not None:
        plane.api_url_file.write_text(url)
    plane.exit_handler(CREATE, workflow, settings=plane.settings | change)
    mark, detail = plane.notice(workflow)
    assert mark == "skipped" and why in detail["why"]
    assert plane.slack.received == []
    # Turning notices on later never announces what ended meanwhile.
    plane.end(workflow, ago=3600)
    plane.sweep()
    assert plane.slack.received == []


def test_a_slack_api_url_left_in_the_settings_stops_every_notice_loudly_and_loses_none(plane: Plane) -> None:
    # Even Slack's own URL: the key is refused wherever it stands in envbot-settings (docs/adr/0014).
    leftover = plane.settings | {"slack_api_url": plane.slack.api_url}
    moved = (
        "setting 'slack_api_url' in ConfigMap envbot-settings is refused: "
        "the Slack API URL moved to Secret envbot-slack-notifier (key slack_api_url)"
    )
    workflow = plane.workflow(CREATE, create_params(plane))
    run = plane.exit_handler(CREATE, workflow, settings=leftover)
    assert moved in run.stderr and "the notice was not sent" in run.stdout, run.output
    plane.end(workflow, ago=600)
    sweep = plane.sweep(settings=leftover)
    assert sweep.returncode != 0 and moved in sweep.stderr, sweep.output
    assert plane.curl_calls() == [] and plane.notice(workflow)[0] is None  # nothing sent, nothing marked
    # With notices off it is harmless (nothing is sent), and nothing fails.
    off = plane.exit_handler(
        CREATE, plane.workflow(CREATE, create_params(plane)), settings=leftover | {"notices": "off"}
    )
    assert moved not in off.stderr
    # Removed: what waited goes out.
    assert plane.sweep().returncode == 0
    assert len(plane.posted()) == 1 and plane.notice(workflow)[0] == "sent"


def test_without_a_url_in_the_secret_notices_go_to_slack_itself(plane: Plane) -> None:
    plane.api_url_file.unlink()  # the Secret has only bot-token: the optional key is not mounted
    calls = plane.folder / "offline-curl.jsonl"
    # Slack is not reachable from the tests: a curl that notes its argv and fails to connect (exit 7).
    offline = f"import json, sys\nopen({str(calls)!r}, 'a').write(json.dumps(sys.argv) + '\\n')\nsys.exit(7)\n"
    plane._write("curl", f"#!{sys.executable}\n{offline}")
    workflow = plane.workflow(CREATE, create_params(plane))
    plane.exit_handler(CREATE, workflow)
    urls = {json.loads(line)[-1] for line in calls.read_text().splitlines()}
    assert urls == {"https://slack.com/api/chat.postMessage"}
    assert plane.notice(workflow)[0] == "pending"  # Slack unreachable from here: the sweep retries


def test_no_token_means_notices_off(plane: Plane) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    plane.token_file.unlink()  # the Secret is optional: absent, nothing is mounted
    plane.exit_handler(CREATE, workflow)
    assert (
        plane.notice(workflow)[1]["why"]
        == "Secret envbot-slack-notifier (key bot-token) is not mounted: notices are off"
    )
    plane.token_file.write_text("not a token")
    other = plane.workflow(CREATE, create_params(plane))
    plane.exit_handler(CREATE, other)
    assert "is not a Slack token" in plane.notice(other)[1]["why"]
    assert plane.slack.received == []


def test_the_sweep_marks_what_ends_while_notices_are_off_so_turning_them_on_announces_nothing_old(
    plane: Plane,
) -> None:
    off = plane.settings | {"notices": "off"}
    ended = plane.workflow(CREATE, create_params(plane), phase="Succeeded", ended_ago=600)  # no exit handler ran
    run = plane.sweep(settings=off)
    assert run.returncode == 0, run.output
    assert "only marking ended workflows as skipped" in run.stdout
    assert plane.notice(ended)[0] == "skipped"
    plane.sweep()
    assert plane.slack.received == []


# --- the sweep: notices whose exit handler never ran, abandoned claims --------------------------------


def test_the_sweep_sends_what_no_exit_handler_sent_after_a_grace_period_and_only_recent_ones(plane: Plane) -> None:
    params = create_params(plane)
    just_ended = plane.workflow(CREATE, params, phase="Succeeded", ended_ago=10)  # its exit handler may be running
    missed = plane.workflow(
        CREATE,
        params,
        phase="Failed",
        ended_ago=300,
        nodes={
            "n1": {
                "name": "wf",
                "displayName": "wf",
                "templateName": "create",
                "phase": "Failed",
                "message": "Error (exit code 1): envbot: could not create namespace checkout-demo: Error from server",
            },
        },
    )
    ancient = plane.workflow(CREATE, params, phase="Succeeded", ended_ago=2 * 24 * HOUR)
    running = plane.workflow(CREATE, params)
    run = plane.sweep()
    assert run.returncode == 0, run.output
    (message,) = plane.posted()
    assert message["text"].startswith(f"<@{OWNER}> :x: Creating `{ENV}` failed at step `create`: Error (exit code 1)")
    assert plane.notice(missed)[0] == "sent"
    assert plane.notice(just_ended)[0] is None and plane.notice(running)[0] is None
    assert plane.notice(ancient)[0] == "skipped"
    assert "it ended more than 24 hours ago" in plane.notice(ancient)[1]["why"]
    plane.advance(120)
    plane.sweep()
    assert len(plane.posted()) == 2 and plane.notice(just_ended)[0] == "sent"


def test_workflows_from_templates_without_notices_are_never_announced(plane: Plane) -> None:
    old = plane.workflow(CREATE, create_params(plane), phase="Succeeded", ended_ago=600)
    obj = plane.get(old)
    del obj["status"]["storedWorkflowTemplateSpec"]["onExit"]  # submitted before this release
    plane.api.put(obj)
    plane.sweep()
    assert plane.slack.received == [] and plane.notice(old) == ("skipped", plane.notice(old)[1])
    assert plane.notice(old)[1]["why"] == "its template predates notices"


def test_an_abandoned_claim_is_taken_over_after_the_lease_and_marked_as_a_possible_repeat(plane: Plane) -> None:
    claim = {"state": "sending", "by": "exit-handler/gone", "at": plane.now() - 30, "delivered": 0}
    workflow = plane.workflow(
        CREATE,
        create_params(plane),
        phase="Succeeded",
        ended_ago=30,
        labels={NOTICE: "sending"},
        annotations={DETAIL: json.dumps(claim)},
    )
    plane.sweep()
    assert plane.slack.received == []  # within the lease: someone may still be sending it
    plane.advance(100)
    run = plane.sweep()
    (message,) = plane.posted()
    assert message["text"].endswith(
        "\n_Sent again: envbot could not confirm an earlier attempt, so this may be a repeat._"
    )
    assert plane.notice(workflow)[0] == "sent" and "took over an abandoned claim" in run.stdout


# --- warnings before expiry -------------------------------------------------------------------------


def warning_blocks(
    env: str, head: str, choices: list[str], incarnation: str = f"{CREATE}-test1"
) -> list[dict[str, Any]]:
    """The Block Kit the bot's click handler expects (slackbot/slack/blocks.py, listeners.button): each
    button's value names the incarnation (the create workflow) the warning is about."""
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": f"envbot:extend:{i}",
            "text": {"type": "plain_text", "text": f"Extend +{choice}"},
            "value": f"{incarnation}|extend {env} ttl={choice}",
        }
        for i, choice in enumerate(choices)
    ]
    buttons.append(
        {
            "type": "button",
            "action_id": f"envbot:destroy:{len(choices)}",
            "text": {"type": "plain_text", "text": "Destroy now"},
            "style": "danger",
            "value": f"{incarnation}|destroy {env}",
            "confirm": {
                "title": {"type": "plain_text", "text": f"Destroy {env}?"},
                "text": {
                    "type": "mrkdwn",
                    "text": f"This deletes the namespace `{env}` and everything in it. It cannot be undone.",
                },
                "confirm": {"type": "plain_text", "text": "Destroy"},
                "deny": {"type": "plain_text", "text": "Cancel"},
                "style": "danger",
            },
        }
    )
    return [{"type": "section", "text": {"type": "mrkdwn", "text": head}}, {"type": "actions", "elements": buttons}]


def expiry_of(plane: Plane, env: str = ENV) -> int:
    ns = plane.api.namespace(env)
    assert ns is not None
    stamp = ns["metadata"]["annotations"]["envbot.dev/expires-at"]
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def test_warnings_at_both_lead_times_with_extend_and_destroy_buttons_and_never_repeated(plane: Plane) -> None:
    # Created for 4h; the policy allows living until 20h from now, so a 1d extension no longer fits.
    latest = rfc3339(plane.now() + 20 * HOUR)
    plane.create(**create_params(plane, latest_expiry=latest))  # the real create: what it records is what is read
    expires = expiry_of(plane)
    annotations = (plane.api.namespace(ENV) or {})["metadata"]["annotations"]
    twin = environment(plane, env_name="twin-env", ttl=100 * HOUR, latest_expiry=latest)  # the tests' shortcut
    twin_annotations = (plane.api.namespace("twin-env") or {})["metadata"]["annotations"]
    assert twin > expires and set(twin_annotations) == set(annotations)
    assert annotations["envbot.dev/warn-before"] == "3600,600" and annotations["envbot.dev/extend-choices"] == "2h,1d"
    assert annotations["envbot.dev/latest-expiry"] == latest
    plane.sweep()
    assert plane.slack.received == []
    plane.advance(expires - HOUR + 30 - plane.now())  # 59m30s before expiry: the 1h warning is due
    run = plane.sweep()
    assert run.returncode == 0, run.output
    (first,) = plane.posted()
    head = f"<@{OWNER}> :hourglass_flowing_sand: `{ENV}` expires {slack_date(expires)}, in 59m."
    assert first["blocks"] == warning_blocks(ENV, head, ["2h"])
    clicks = [click_from_value(b["value"]) for b in first["blocks"][1]["elements"]]
    assert clicks == [Click(f"extend {ENV} ttl=2h", f"{CREATE}-test1"), Click(f"destroy {ENV}", f"{CREATE}-test1")]
    assert (
        first["text"] == f"{head} Extend it with `/env extend {ENV} ttl=2h` or delete it now with `/env destroy {ENV}`."
    )
    assert first["channel"] == CHANNEL and first["unfurl_links"] is False
    record = plane.warning_record()
    assert {k: record[k] for k in ("state", "expires", "lead")} == {"state": "sent", "expires": expires, "lead": 3600}
    for _ in range(3):  # sweep after sweep: nothing new
        plane.advance(60)
        plane.sweep()
    assert len(plane.posted()) == 1
    plane.advance(expires - 600 + 5 - plane.now())  # the 10m warning
    plane.sweep()
    second = plane.posted()[1]
    assert f"`{ENV}` expires {slack_date(expires)}, in 9m." in second["text"]
    for _ in range(3):
        plane.advance(60)
        plane.sweep()
    plane.advance(expires + 60 - plane.now())  # expired: never warned about again
    plane.sweep()
    assert len(plane.posted()) == 2


def test_the_buttons_offer_only_extensions_that_fit_the_lifetime(plane: Plane) -> None:
    # Warned 50m before a 2h TTL runs out, 1h10m after creation; the policy allows 4h in all.
    latest = rfc3339(plane.now() + 4 * HOUR)
    environment(plane, ttl=2 * HOUR, extend_choices="30m,2h,1d,3d", latest_expiry=latest)
    cases = {  # no latest expiry: every choice; no choices: only Destroy now
        "env-b": ("1d,3d", "", ["Extend +1d", "Extend +3d", "Destroy now"]),
        "env-c": ("", "", ["Destroy now"]),
    }
    for env, (choices, latest_expiry, _) in cases.items():
        environment(plane, env_name=env, extend_choices=choices, latest_expiry=latest_expiry)
    plane.advance(expiry_of(plane) - 3000 - plane.now())
    plane.sweep()
    assert len(plane.posted()) == 1  # the others expire later: not due yet
    plane.advance(expiry_of(plane, "env-b") - 3000 - plane.now())
    plane.sweep()
    # now+1d and now+3d pass the latest; now+30m would end it sooner than its 50m left (an extend never shortens)
    cases[ENV] = ("", "", ["Extend +2h", "Destroy now"])
    by_env = {m["blocks"][1]["elements"][-1]["value"]: m for m in plane.posted()}
    for env, (_, _, expected) in cases.items():
        message = by_env[f"{CREATE}-test1|destroy {env}"]
        elements = message["blocks"][1]["elements"]
        assert [e["text"]["text"] for e in elements] == expected, env
        assert len({e["action_id"] for e in elements}) == len(elements)


def test_short_ttls_get_scaled_down_warnings(plane: Plane) -> None:
    # 30m TTL with leads 1h and 10m: the 1h lead becomes 15m (half the TTL); 10m stays.
    environment(plane, ttl=30 * 60)
    expires = expiry_of(plane)
    plane.sweep()
    assert plane.slack.received == []  # not at creation, even though "1h before" has long passed
    plane.advance(expires - 15 * 60 + 20 - plane.now())
    plane.sweep()
    plane.advance(expires - 10 * 60 + 20 - plane.now())
    plane.sweep()
    plane.advance(60)
    plane.sweep()
    texts = [m["text"] for m in plane.posted()]
    assert len(texts) == 2
    assert ", in 14m." in texts[0] and ", in 9m." in texts[1]
    # 10m TTL: both leads scale to 5m and are sent once.
    environment(plane, env_name="tiny-env", ttl=10 * 60)
    plane.advance(expiry_of(plane, "tiny-env") - 5 * 60 + 20 - plane.now())
    for _ in range(2):
        plane.sweep()
        plane.advance(30)
    assert [m["text"] for m in plane.posted()][2:] == [
        f"<@{OWNER}> :hourglass_flowing_sand: `tiny-env` expires {slack_date(expiry_of(plane, 'tiny-env'))}, in 4m."
        " Extend it with `/env extend tiny-env ttl=2h` or delete it now with `/env destroy tiny-env`."
    ]


def test_an_extend_re_arms_the_warnings(plane: Plane) -> None:
    environment(plane)
    first_expiry = expiry_of(plane)
    plane.advance(first_expiry - 50 * 60 - plane.now())
    plane.sweep()
    assert len(plane.posted()) == 1
    # /env extend (its extend template, run for real): a new expiry 3h from now.
    extend = {
        "env_name": ENV,
        "expires_at": rfc3339(plane.now() + 3 * HOUR),
        "requested_by": OWNER,
        "slack_channel": CHANNEL,
        "warn_before": "3600,600",
        "extend_choices": "2h,1d",
        "latest_expiry": rfc3339(plane.now() + 10 * 24 * HOUR),
    }
    run = plane.run(EXTEND, extend)
    assert run.returncode == 0, run.output
    second_expiry = expiry_of(plane)
    plane.sweep()
    assert len(plane.posted()) == 1  # the new expiry is 3h away: nothing due
    plane.advance(second_expiry - 50 * 60 + 20 - plane.now())
    plane.sweep()
    plane.advance(second_expiry - 5 * 60 + 20 - plane.now())
    plane.sweep()
    texts = [m["text"] for m in plane.posted()]
    assert len(texts) == 3
    assert slack_date(first_expiry) in texts[0]
    assert slack_date(second_expiry) in texts[1] and ", in 49m." in texts[1]
    assert slack_date(second_expiry) in texts[2] and ", in 4m." in texts[2]


def test_after_downtime_only_the_most_urgent_warning_is_sent_and_never_after_expiry(plane: Plane) -> None:
    environment(plane)
    environment(plane, env_name="gone-env", ttl=HOUR)
    plane.advance(expiry_of(plane) - 5 * 60 + 20 - plane.now())  # the sweep was down for hours
    plane.sweep()
    plane.sweep()
    (message,) = plane.posted()  # gone-env expired while the sweep was down: no warning at all
    assert f"`{ENV}` expires" in message["text"] and ", in 4m." in message["text"]
    assert plane.warning_record()["lead"] == 600


def test_an_operator_can_silence_one_environment(plane: Plane) -> None:
    environment(plane)
    environment(plane, env_name="loud-env")
    ns = plane.api.namespace(ENV)
    assert ns is not None
    ns["metadata"]["annotations"]["envbot.dev/notices"] = "off"
    plane.api.put(ns)
    plane.advance(expiry_of(plane) - 5 * 60 - plane.now())
    plane.sweep()
    (message,) = plane.posted()
    assert "`loud-env`" in message["text"]


def test_warnings_skip_what_is_not_this_installs_live_environment(plane: Plane) -> None:
    environment(plane)
    expires = expiry_of(plane)
    meta = plane.api.namespace(ENV)
    assert meta is not None
    annotations = meta["metadata"]["annotations"]
    plane.api.add_namespace("foreign-env", {"team": "x"}, annotations)  # envbot's annotations, not its labels
    blue = dict(meta["metadata"]["labels"], **{"envbot.dev/instance": "blue", "envbot.dev/env": "blue-env"})
    plane.api.add_namespace("blue-env", blue, annotations)  # another install's
    doomed = dict(meta["metadata"]["labels"], **{"envbot.dev/env": "doomed-env"})
    plane.api.add_namespace("doomed-env", doomed, annotations, terminating=True)
    plane.advance(expires - 5 * 60 - plane.now())
    plane.sweep()
    assert [m["text"].split("`")[1] for m in plane.posted()] == [ENV]
    assert WARNING not in (plane.api.namespace("foreign-env") or {})["metadata"].get("annotations", {})


# --- the reaper ---------------------------------------------------------------------------------------


def reap(plane: Plane) -> str:
    """Run the reaper for real (deleting), then the Workflow the controller would keep of that run."""
    run = plane.run(REAPER, {}, settings=plane.settings | {"reaper_dry_run": "false"}, folder="reaper")
    assert run.returncode == 0, run.output
    reaped = (plane.folder / "reaper" / "envbot-reaped.json").read_text()
    node = {"name": "r", "templateName": "reap", "phase": "Succeeded"}
    node["outputs"] = {"parameters": [{"name": "reaped", "value": reaped}]}
    return plane.workflow(REAPER, {}, phase="Succeeded", ended_ago=5, nodes={"r": node})


def test_the_reaper_records_what_it_deleted_and_each_channel_is_told_once(plane: Plane) -> None:
    for env, channel in (("old-a", CHANNEL), ("old-b", "C222BBB"), ("old-quiet", "")):
        environment(plane, env_name=env, ttl=-60, slack_channel=channel)
    environment(plane, env_name="live-env")
    workflow = reap(plane)
    reaped = json.loads((plane.folder / "reaper" / "envbot-reaped.json").read_text())
    assert reaped == [
        {"env": "old-a", "channel": CHANNEL, "thread": ""},  # thread: none (created without a channel message)
        {"env": "old-b", "channel": "C222BBB", "thread": ""},
        {"env": "old-quiet", "channel": "", "thread": ""},
    ]
    for _ in range(3):
        plane.sweep()
    assert [m["text"] for m in plane.posted()] == [":wastebasket: `old-a` expired and was deleted."]
    assert [m["text"] for m in plane.posted("C222BBB")] == [":wastebasket: `old-b` expired and was deleted."]
    assert plane.notice(workflow)[0] == "sent" and plane.notice(workflow)[1]["delivered"] == 2


def test_a_reaper_run_that_deleted_nothing_or_only_reported_is_not_announced(plane: Plane) -> None:
    environment(plane, env_name="old-a", ttl=-60)
    dry = plane.run(REAPER, {}, folder="reaper")  # the shipped default: dry run
    assert "would delete old-a" in dry.stdout
    assert (plane.folder / "reaper" / "envbot-reaped.json").read_text() == "[]"
    workflow = plane.workflow(REAPER, {}, phase="Succeeded", ended_ago=5)  # no output at all: older reaper
    plane.sweep()
    assert plane.slack.received == [] and plane.notice(workflow)[0] == "skipped"


def test_a_reaper_notice_interrupted_half_way_resumes_without_repeating(plane: Plane, api: FakeKubeApi) -> None:
    for env in ("old-a", "old-b", "old-c"):
        environment(plane, env_name=env, ttl=-60)
    workflow = reap(plane)
    patches = 0

    def slack_goes_down_after_the_first_message(_: FakeKubeApi) -> None:
        nonlocal patches
        patches += 1
        if patches == 2:  # the claim, then the progress after the first message
            plane.slack.fail(POST, 429, times=1, retry_after=600)

    api.after(
        "PUT",  # the notifier writes a workflow as a PUT of the object it read (one request, no discovery)
        rf"^/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NAMESPACE}/workflows/{workflow}$",
        slack_goes_down_after_the_first_message,
        times=5,
    )
    run = plane.sweep()
    assert run.returncode == 0, run.output  # Slack down delays notices; it does not fail the sweep
    assert [m["text"].split("`")[1] for m in plane.posted()] == ["old-a"]
    mark, detail = plane.notice(workflow)
    assert mark == "pending" and detail["delivered"] == 1
    plane.advance(601)  # after Retry-After
    plane.sweep()
    assert [m["text"].split("`")[1] for m in plane.posted()] == ["old-a", "old-b", "old-c"]
    assert plane.notice(workflow)[0] == "sent"


# --- exactly once: concurrent senders ------------------------------------------------------------------


def test_two_sweeps_at_once_send_every_notice_exactly_once(plane: Plane) -> None:
    envs = [f"env-{i}" for i in range(4)]
    for env in envs:
        environment(plane, env_name=env)
    for _ in range(3):  # ended workflows whose exit handler never ran
        plane.workflow(CREATE, create_params(plane), phase="Succeeded", ended_ago=300)
    expires = expiry_of(plane, envs[-1])

    def both() -> list[Run]:
        runs: list[Run] = []
        threads = [
            threading.Thread(target=lambda f=folder: runs.append(plane.sweep(folder=f))) for folder in ("a", "b")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(r.returncode == 0 for r in runs), [r.output for r in runs]
        return runs

    plane.advance(expires - 50 * 60 + 20 - plane.now())
    both()
    both()
    plane.advance(45 * 60)
    both()
    texts = [m["text"] for m in plane.posted()]
    assert len([t for t in texts if "is ready" in t]) == 3
    warnings = sorted(re.findall(r"`([-a-z0-9]+)` expires .*, in (49m|4m)\.", t)[0] for t in texts if "hourglass" in t)
    assert warnings == sorted((env, lead) for env in envs for lead in ("49m", "4m"))  # each lead once, each env


def test_a_sweep_that_loses_the_race_for_a_warning_claims_nothing_and_posts_nothing(
    plane: Plane, api: FakeKubeApi
) -> None:
    environment(plane)
    plane.advance(expiry_of(plane) - 50 * 60 - plane.now())
    other: list[Run] = []

    def another_sweep_runs_in_between(_: FakeKubeApi) -> None:
        other.append(plane.sweep(folder="other"))  # lists, claims, posts, confirms

    # Sweep A lists the environments; before it claims, sweep B does everything.
    api.after("GET", r"^/api/v1/namespaces$", another_sweep_runs_in_between, times=1)
    run = plane.sweep()
    assert run.returncode == 0 and other[0].returncode == 0, run.output + other[0].output
    assert len(plane.posted()) == 1
    claims = [r for r in api.requests if r.method == "PATCH" and r.path == f"/api/v1/namespaces/{ENV}"]
    assert [r.status for r in claims] == [200, 200, 409]  # B's claim and confirm, then A's stale claim


def test_a_sweep_that_loses_the_race_for_a_workflow_notice_posts_nothing(plane: Plane, api: FakeKubeApi) -> None:
    workflow = plane.workflow(CREATE, create_params(plane), phase="Succeeded", ended_ago=300)
    other: list[Run] = []
    path = rf"^/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NAMESPACE}/workflows/{workflow}$"
    # Another sweep runs to the end between this one's listing and its claim.
    listing = rf"^/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NAMESPACE}/workflows$"
    api.after("GET", listing, lambda _: other.append(plane.sweep(folder="other")), times=1)
    run = plane.sweep()
    assert run.returncode == 0 and other[0].returncode == 0, run.output + other[0].output
    assert len(plane.posted()) == 1 and plane.notice(workflow)[0] == "sent", plane.runs[-1].output
    claims = [r.status for r in api.requests if r.method == "PUT" and re.fullmatch(path, r.path)]
    assert claims == [200, 200, 409]


def test_an_exit_handler_and_a_sweep_never_both_send(plane: Plane, api: FakeKubeApi) -> None:
    # A notice left pending is retried by the sweep while a second sweep (or a late exit handler)
    # arrives: whoever holds a fresh claim sends; the other sees it busy.
    pending = {"state": "pending", "delivered": 0, "retry_at": 0, "why": "Slack answered HTTP 500"}
    workflow = plane.workflow(
        CREATE,
        create_params(plane),
        phase="Succeeded",
        ended_ago=300,
        labels={NOTICE: "pending"},
        annotations={DETAIL: json.dumps(pending)},
    )
    other: list[Run] = []
    path = rf"^/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NAMESPACE}/workflows/{workflow}$"
    api.after("PUT", path, lambda _: other.append(plane.exit_handler(CREATE, workflow)), times=1)
    plane.sweep()
    assert len(plane.posted()) == 1 and plane.notice(workflow)[0] == "sent", plane.runs[-1].output
    assert f"notice for {workflow}: busy" in other[0].stdout


# --- the one window exactly-once cannot close ------------------------------------------------------------


def test_posted_but_not_recorded_is_sent_again_after_the_lease_marked_as_a_possible_repeat(
    plane: Plane, api: FakeKubeApi
) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    path = rf"^/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NAMESPACE}/workflows/{workflow}$"
    api.fail("PUT", path, 503, times=99, after=1)  # the claim lands; every write after the post fails
    run = plane.exit_handler(CREATE, workflow)
    assert "posted to Slack, but could not record it" in run.stderr
    assert len(plane.posted()) == 1 and plane.notice(workflow)[0] == "sending"
    api._rules.clear()  # the API server is back
    plane.end(workflow)
    plane.sweep()
    assert len(plane.posted()) == 1  # within the lease: it may still be on its way
    plane.advance(150)
    plane.sweep()
    first, second = plane.posted()
    assert second["text"] == first["text"] + (
        "\n_Sent again: envbot could not confirm an earlier attempt, so this may be a repeat._"
    )
    assert plane.notice(workflow)[0] == "sent"


# --- the token -----------------------------------------------------------------------------------------


def test_the_token_only_ever_travels_in_the_authorization_header(plane: Plane) -> None:
    params = create_params(plane)
    environment(plane)
    workflow = plane.workflow(CREATE, params)
    plane.slack.fail(POST, 500, times=1)  # one retry
    plane.exit_handler(CREATE, workflow, "Failed", failure("boom"))
    plane.end(workflow, "Failed")
    plane.advance(expiry_of(plane) - 50 * 60 - plane.now())
    plane.sweep()
    assert len(plane.posted()) == 2
    token = plane.token
    calls = plane.curl_calls()
    assert len(calls) == 3  # a retry, the failure notice, the warning
    for call in calls:
        assert token not in " ".join(call["argv"]), "token in curl's argv"
        assert token not in json.dumps(call["env"]), "token in curl's environment"
        header = call["argv"][call["argv"].index("--header") + 1]
        assert header.startswith("@")  # read from a file
        assert call["header_mode"] == 0o600
    for run in plane.runs:
        assert token not in run.output, "token in a log"
    for kind in ("Workflow", "Namespace"):
        assert token not in json.dumps(plane.api.objects(kind)), f"token in a {kind}"
    assert not [r for r in plane.api.requests if token in json.dumps(r.body)]
    for received in plane.slack.requests(POST):
        assert received.headers["Authorization"] == f"Bearer {token}"
        assert token not in json.dumps(received.body)
    for name in (CREATE, EXTEND, DESTROY, NOTIFIER):
        assert "token" not in json.dumps(template(name)["spec"].get("arguments", {}))


# --- least privilege --------------------------------------------------------------------------------------


def test_the_notifier_uses_only_its_own_rights(plane: Plane, api: FakeKubeApi) -> None:
    params = create_params(plane)
    environment(plane)
    start = len(api.requests)
    workflow = plane.workflow(CREATE, params)
    plane.exit_handler(CREATE, workflow)
    plane.workflow(CREATE, params, phase="Succeeded", ended_ago=300)
    plane.advance(expiry_of(plane) - 50 * 60 - plane.now())
    plane.sweep()
    assert len(plane.posted()) == 3
    requests = [r for r in api.requests[start:] if r.user]
    assert {r.user for r in requests} == {f"system:serviceaccount:{ARGO_NAMESPACE}:envbot-notify"}
    used = {api.attributes(r.method, r.path, r.query) for r in requests} - {None}
    assert used and all(allowed("envbot-notify", u) for u in used), [u for u in used if not allowed("envbot-notify", u)]
    # What it wrote: only its notice label/annotation on workflows, its warning record on namespaces.
    for r in requests:
        if r.method == "PATCH":
            meta = r.body["metadata"]
            assert set(meta) <= {"resourceVersion", "labels", "annotations"}
            assert set(meta.get("labels", {})) <= {NOTICE}
            assert set(meta.get("annotations", {})) <= {DETAIL, WARNING}


def test_an_operator_can_resend_a_notice_or_a_warning(plane: Plane, api: FakeKubeApi) -> None:
    workflow = plane.workflow(CREATE, create_params(plane))
    plane.exit_handler(CREATE, workflow)
    plane.end(workflow)
    environment(plane)
    plane.advance(expiry_of(plane) - 50 * 60 + 20 - plane.now())
    plane.sweep()
    assert len(plane.posted()) == 2
    # What docs/operations.md says: relabel the workflow pending; remove the namespace's record.
    obj = plane.get(workflow)
    obj["metadata"]["labels"][NOTICE] = "pending"
    api.put(obj)
    ns = api.namespace(ENV)
    assert ns is not None
    del ns["metadata"]["annotations"][WARNING]
    api.put(ns)
    plane.sweep()
    plane.sweep()
    texts = [m["text"] for m in plane.posted()]
    assert len(texts) == 4 and sorted(texts[2:]) == sorted(texts[:2])


def test_a_warning_during_a_slack_outage_is_sent_once_slack_is_back_and_only_api_errors_fail_the_sweep(
    plane: Plane, api: FakeKubeApi
) -> None:
    environment(plane)
    environment(plane, env_name="env-b")
    plane.advance(expiry_of(plane) - 50 * 60 + 20 - plane.now())
    plane.slack.fail(POST, 429, times=1, retry_after=120)
    run = plane.sweep()
    assert run.returncode == 0, run.output  # Slack down: delayed, not a failed run
    assert "1 pending, 1 deferred" in run.stdout  # the second one is not even tried this run
    assert plane.warning_record()["state"] == "pending" and plane.posted() == []
    plane.sweep()
    assert len(plane.posted()) == 1  # env-b; the first waits for Retry-After
    plane.advance(121)
    plane.sweep()
    plane.sweep()
    assert sorted(m["text"].split("`")[1] for m in plane.posted()) == [ENV, "env-b"]
    api.fail("GET", r"^/api/v1/namespaces$", 500, times=1)
    failed = plane.sweep()
    assert failed.returncode != 0
    assert "envbot: the notifier hit 1 error(s): could not list environments" in failed.stderr


# --- wording ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "said"),
    [
        (CREATE, {"env_name": "kube-system"}, "env_name 'kube-system' is a system or reserved namespace"),
        (DESTROY, {"env_name": "default"}, "env_name 'default' is a system or reserved namespace"),
        (EXTEND, {"expires_at": "tomorrow"}, "expires_at must be an RFC 3339 UTC instant"),
    ],
)
def test_no_failure_notice_carries_the_scripts_path(plane: Plane, name: str, params: dict[str, str], said: str) -> None:
    # Issue 14, "What was seen" 9: the termination message began with $0, the script's path in the pod.
    base = {"env_name": ENV, "requested_by": OWNER, "slack_channel": CHANNEL, "expires_at": rfc3339(plane.now() + HOUR)}
    if name == CREATE:
        base |= {"service": "checkout"}
    if name == DESTROY:
        del base["expires_at"]
    folder = plane.folder / f"failing-{name}"
    log = folder / "termination-log"
    folder.mkdir()
    log.write_text("")
    user = service_account(name)
    env = kubectl_env(plane.api, plane.folder / "home" / user.rsplit(":", 1)[1], user=user)
    env["ENVBOT_TERMINATION_LOG"] = str(log)
    run = run_script(render(name, base | params, plane.settings), folder, env)
    assert run.returncode == 1
    reason = log.read_text().strip()
    assert reason.startswith(f"envbot: {said}"), reason
    assert str(folder) not in reason and "script" not in reason and "/" not in reason.split(":", 2)[1]
    # Argo quotes the termination message as the step's message; the notice quotes that.
    workflow = plane.workflow(name, base | params)
    plane.exit_handler(name, workflow, "Failed", failure(f"Error (exit code 1): {reason}", name[4:-9]))
    (message,) = plane.posted()
    assert f"failed at step `{name[4:-9]}`: Error (exit code 1): envbot: {said}" in message["text"]
    assert str(folder) not in message["text"] and "script.sh" not in message["text"]


# --- the deployed service (docs/adr/0008) -----------------------------------------------------------


def deployed_nodes(version: str, url: str) -> dict[str, Any]:
    """The deploy step's node as the controller records it, with the outputs the step wrote."""
    outputs = {"parameters": [{"name": "version", "value": version}, {"name": "url", "value": url}]}
    node = {"id": "wf-1", "displayName": "deploy", "templateName": "deploy", "type": "Pod", "phase": "Succeeded"}
    return {"wf-1": node | {"outputs": outputs}}


def deploy_params(version: str) -> dict[str, str]:
    return {"env_name": ENV, "service": "checkout", "requested_by": OWNER, "slack_channel": CHANNEL, "version": version}


def test_a_create_that_deployed_its_service_says_which_version_runs_and_where(plane: Plane) -> None:
    params = create_params(plane, version="1.4.2")
    workflow = plane.workflow(CREATE, params, nodes=deployed_nodes("1.4.2", f"https://{ENV}.preview.example.com"))
    plane.exit_handler(CREATE, workflow, "Succeeded")
    (message,) = plane.posted()
    assert message["text"].startswith(
        f":white_check_mark: `{ENV}` is ready. It runs `1.4.2`. Open <https://{ENV}.preview.example.com>. It expires "
    )


def test_outputs_that_are_not_a_version_or_an_https_url_are_not_quoted(plane: Plane) -> None:
    nodes = deployed_nodes("1.0`<!channel>", "javascript:alert(1)")
    workflow = plane.workflow(CREATE, create_params(plane), nodes=nodes)
    plane.exit_handler(CREATE, workflow, "Succeeded")
    (message,) = plane.posted()
    assert "runs" not in message["text"] and "Open" not in message["text"] and "<!channel>" not in message["text"]


def test_a_deploy_that_failed_names_the_reason_and_what_to_do(plane: Plane) -> None:
    params = deploy_params("1.4.9")
    workflow = plane.workflow("env-deploy-template", params)
    reason = "envbot: checkout is not ready: deployment checkout: image `ghcr.io/acme/checkout:1.4.9` not found"
    plane.exit_handler("env-deploy-template", workflow, "Failed", failure(reason, step="deploy"))
    (message,) = plane.posted()
    assert message["text"].startswith(f"<@{OWNER}> :x: Deploying `{ENV}` failed at step `deploy`: {reason}")
    assert f"Deploy another version with `/env deploy {ENV} version=...`, or `/env destroy {ENV}`." in message["text"]


def test_a_deploy_that_succeeded_says_what_runs_now(plane: Plane) -> None:
    params = deploy_params("1.5.0")
    nodes = deployed_nodes("1.5.0", f"https://{ENV}.preview.example.com")
    workflow = plane.workflow("env-deploy-template", params, nodes=nodes)
    plane.exit_handler("env-deploy-template", workflow, "Succeeded")
    (message,) = plane.posted()
    assert (
        message["text"] == f":rocket: `{ENV}` was deployed. It runs `1.5.0`. Open <https://{ENV}.preview.example.com>."
    )


# --- guards that check themselves (issue 14) --------------------------------------------------------

DEPLOY = "env-deploy-template"


def exit_handler_params(plane: Plane, name: str) -> dict[str, str]:
    base = {"env_name": ENV, "requested_by": OWNER, "slack_channel": CHANNEL}
    if name == CREATE:
        return create_params(plane)
    if name == EXTEND:
        expiry = rfc3339(plane.now() + 6 * HOUR)
        return base | {"expires_at": expiry, "warn_before": "3600", "extend_choices": "2h", "latest_expiry": ""}
    if name == DEPLOY:
        return deploy_params("1.5.0")
    return base


def admin_kubectl(plane: Plane, *args: str) -> None:
    env = kubectl_env(plane.api, plane.folder / "admin", user=DEFAULT_USER)
    done = subprocess.run([str(kubectl_path()), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", [CREATE, EXTEND, DESTROY, DEPLOY])
@pytest.mark.parametrize(
    ("guard", "breaking"),
    [
        ("envbot-slack-token", ("delete", "validatingadmissionpolicybinding", "envbot-slack-token")),
        (
            "envbot-workflow-references",
            ("patch", "validatingadmissionpolicy", "envbot-workflow-references", "--type=merge", "-p",
             '{"spec": {"failurePolicy": "Ignore"}}'),
        ),
    ],
)  # fmt: skip
def test_without_its_guards_an_exit_handler_posts_nothing_writes_nothing_and_says_what_is_missing(
    plane: Plane, name: str, guard: str, breaking: tuple[str, ...]
) -> None:
    workflow = plane.workflow(name, exit_handler_params(plane, name))
    admin_kubectl(plane, *breaking)
    before = len(plane.api.requests)
    run = plane.exit_handler(name, workflow)  # exits 0: the workflow's outcome is not the notice's to change
    assert "admission guards are not in force" in run.stderr and guard in run.stderr, run.output
    assert f"refusing to send or record the notice for {workflow}" in run.stderr
    assert "the notice was not sent" in run.stdout
    assert plane.slack.received == [] and plane.curl_calls() == []  # the token went nowhere
    assert [r for r in plane.api.requests[before:] if r.method != "GET"] == []
    assert plane.notice(workflow)[0] is None  # not marked: nothing is lost
    # Once the guards are back, the sweep announces it.
    policy = str(ROOT / "argo/admission" / f"{guard.removeprefix('envbot-')}.yaml")
    admin_kubectl(plane, "delete", "--ignore-not-found", "-f", policy)
    admin_kubectl(plane, "create", "-f", policy)
    plane.end(workflow, ago=600)  # past the exit handler's grace
    plane.sweep()
    assert len(plane.posted()) == 1 and plane.notice(workflow)[0] == "sent", plane.runs[-1].output
