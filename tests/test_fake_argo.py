"""The fake `argo` is a test double other tests trust, so it is held to the CLI contract
(../shared/reference/argo-cli-contract.md) and to argo v3.7.18's sources: real process, real argv,
exact stdout, stderr and exit codes."""

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.execution_plane import ARGO_NAMESPACE as NS
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.label_selectors import SelectorError, matches, parse

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-28T12:00:00Z"
T0 = datetime(2026, 11, 28, 12, tzinfo=UTC)
CREATE = "workflowtemplate/env-create-template"
PARAMS = ["-p", "env_name=co-1", "-p", "service=checkout", "-p", "expires_at=2026-11-28T16:00:00Z"]
SUBMIT = ["submit", "--from", CREATE, "-n", NS, *PARAMS]
GENERATED = re.compile(r"env-create-template-[bcdfghjklmnpqrstvwxz2456789]{5}")
FATAL = (
    f'time="{NOW}" level=fatal msg="Post \\"https://10.0.0.1:6443/apis/authorization.k8s.io/v1/'
    'selfsubjectaccessreviews\\": dial tcp 10.0.0.1:6443: connect: connection refused"\n'
)


@pytest.fixture
def fake(fake_argo: FakeArgo) -> FakeArgo:
    fake_argo.configure(now=NOW)
    return fake_argo


def argo(fake: FakeArgo, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(fake.bin), *args], capture_output=True, text=True, timeout=30, env=env or dict(os.environ)
    )


def names(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# --- submit ---------------------------------------------------------------------------------------


def test_submit_prints_only_the_generated_name_and_stores_a_brand_new_workflow(fake: FakeArgo) -> None:
    result = argo(fake, *SUBMIT, "-l", "envbot.dev/env=co-1", "-o", "name")
    assert (result.returncode, result.stderr) == (0, "")
    assert GENERATED.fullmatch(result.stdout.removesuffix("\n")) and result.stdout.endswith("\n")
    (stored,) = fake.workflows()
    assert stored["metadata"]["name"] == result.stdout.strip()
    assert stored["metadata"]["creationTimestamp"] == NOW
    assert stored["metadata"]["labels"] == {
        "envbot.dev/env": "co-1",
        "workflows.argoproj.io/workflow-template": "env-create-template",
    }  # no phase/completed labels until the controller has seen it
    assert stored["status"] == {"startedAt": None, "finishedAt": None}
    assert stored["spec"] == {
        "arguments": {
            "parameters": [
                {"name": "env_name", "value": "co-1"},
                {"name": "service", "value": "checkout"},
                {"name": "expires_at", "value": "2026-11-28T16:00:00Z"},
            ]
        },
        "workflowTemplateRef": {"name": "env-create-template"},
    }


def test_submit_json_is_the_created_workflow_with_four_space_indent(fake: FakeArgo) -> None:
    result = argo(fake, *SUBMIT, "-o", "json")
    workflow = json.loads(result.stdout)
    assert result.stdout == json.dumps(workflow, indent=4) + "\n"
    meta = workflow["metadata"]
    assert list(meta) == [
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "labels",
    ]
    assert (meta["generateName"], meta["namespace"], meta["creationTimestamp"]) == ("env-create-template-", NS, NOW)
    assert "phase" not in workflow["status"] and "apiVersion" not in workflow


def test_creation_timestamp_has_whole_seconds_from_the_real_clock(fake_argo: FakeArgo) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = json.loads(argo(fake_argo, *SUBMIT, "-o", "json").stdout)["metadata"]["creationTimestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    assert before <= datetime.fromisoformat(created) <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (
            ["submit", "--from", "workflowtemplate/nope", "-n", NS, *PARAMS, "-o", "name"],
            'Error: Failed to submit workflow: rpc error: code = NotFound desc = workflowtemplates.argoproj.io "nope"'
            " not found\n",
        ),
        (
            ["submit", "--from", CREATE, "-n", "workflows", *PARAMS, "-o", "name"],
            "Error: Failed to submit workflow: rpc error: code = NotFound desc = workflowtemplates.argoproj.io "
            '"env-create-template" not found\n',
        ),
        (
            ["submit", "--from", CREATE, "-n", NS, "-p", "env_name=x", "-o", "name"],
            "Error: Failed to submit workflow: rpc error: code = InvalidArgument desc = spec.arguments.service.value "
            "or spec.arguments.service.valueFrom is required\n",
        ),
        (
            [*SUBMIT, "-p", "foo", "-o", "name"],
            "Error: Failed to submit workflow: rpc error: code = Internal desc = expected parameter of the form: "
            "NAME=VALUE. Received: foo\n",
        ),
        (
            [*SUBMIT, "-l", "ok=1,a=b=c", "-o", "name"],
            "Error: Failed to submit workflow: rpc error: code = Internal desc = expected labels of the form: "
            "NAME1=VALUE2,NAME2=VALUE2. Received: ok=1,a=b=c: unexpected label spec: a=b=c\n",
        ),
        (
            ["submit", "--from", "env-create-template", "-n", NS, "-o", "name"],
            "Error: resource identifier 'env-create-template' is malformed. Should be `kind/name`, "
            "e.g. cronwf/hello-world-cwf\n",
        ),
        (
            ["submit", "--from", "pipeline/x", "-n", NS, "-o", "name"],
            "Error: Failed to submit workflow: rpc error: code = InvalidArgument desc = Resource kind 'pipeline' is "
            "not supported for submitting\n",
        ),
        ([*SUBMIT, "--dry-run"], "Error: --dry-run should have an output option\n"),
        ([*SUBMIT, "--server-dry-run"], "Error: --server-dry-run should have an output option\n"),
        (
            [*SUBMIT, "--dry-run", "--server-dry-run", "-o", "name"],
            "Error: --dry-run cannot be combined with --server-dry-run\n",
        ),
    ],
)
def test_submit_errors_are_the_clis_and_store_nothing(fake: FakeArgo, args: list[str], stderr: str) -> None:
    result = argo(fake, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", stderr)
    assert fake.workflows() == []


def test_submit_validates_in_the_servers_order(fake: FakeArgo) -> None:
    # ApplySubmitOpts parses labels, then parameters; only then is the template looked up.
    both = argo(fake, "submit", "--from", "workflowtemplate/nope", "-n", NS, "-p", "bad", "-l", "a=b=c")
    assert "expected labels of the form" in both.stderr
    params = argo(fake, "submit", "--from", "workflowtemplate/nope", "-n", NS, "-p", "bad")
    assert "expected parameter of the form" in params.stderr


def test_an_invalid_label_value_is_rejected_by_the_api_server(fake: FakeArgo) -> None:
    result = argo(fake, *SUBMIT, "-l", "envbot.dev/requested-by=a b", "-o", "name")
    assert result.returncode == 1
    assert re.fullmatch(
        r"Error: Failed to submit workflow: rpc error: code = InvalidArgument desc = Workflow\.argoproj\.io "
        r'"env-create-template-\w{5}" is invalid: metadata\.labels: Invalid value: "a b": a valid label must be an '
        r"empty string or consist of alphanumeric characters, '-', '_' or '\.', and must start and end with an "
        r"alphanumeric character \(e\.g\. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        r"'\(\(\[A-Za-z0-9\]\[-A-Za-z0-9_\.\]\*\)\?\[A-Za-z0-9\]\)\?'\)\n",
        result.stderr,
    )


def test_a_bad_output_flag_is_a_flag_error_with_usage(fake: FakeArgo) -> None:
    result = argo(fake, *SUBMIT, "-o", "table")
    assert result.returncode == 1 and result.stdout == ""
    first, usage = result.stderr.split("\n", 1)
    assert first == 'Error: invalid argument "table" for "-o, --output" flag: One of: name|json|yaml|wide'
    assert usage.startswith("Usage:\n  argo submit [FILE... | --from `kind/name] [flags]\n")


def test_name_is_used_as_given_and_a_taken_name_already_exists(fake: FakeArgo) -> None:
    assert names(argo(fake, *SUBMIT, "--name", "co-1-create", "-o", "name")) == ["co-1-create"]
    again = argo(fake, *SUBMIT, "--name", "co-1-create", "-o", "name")
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == (
        "Error: Failed to submit workflow: rpc error: code = AlreadyExists desc = "
        'workflows.argoproj.io "co-1-create" already exists\n'
    )
    assert [w["metadata"]["name"] for w in fake.workflows()] == ["co-1-create"]


def test_server_dry_run_returns_a_generated_name_and_uid_but_stores_nothing(fake: FakeArgo) -> None:
    (name,) = names(argo(fake, *SUBMIT, "--server-dry-run", "-o", "name"))
    assert GENERATED.fullmatch(name)
    workflow = json.loads(argo(fake, *SUBMIT, "--server-dry-run", "-o", "json").stdout)
    assert GENERATED.fullmatch(workflow["metadata"]["name"]) and workflow["metadata"]["uid"]
    assert "resourceVersion" not in workflow["metadata"]
    taken = argo(fake, *SUBMIT, "--name", "exists", "-o", "name")
    assert taken.returncode == 0
    dry = argo(fake, *SUBMIT, "--name", "exists", "--server-dry-run", "-o", "name")
    assert "code = AlreadyExists" in dry.stderr  # it still validates like a real create
    invalid = argo(fake, "submit", "--from", CREATE, "-n", NS, "--server-dry-run", "-o", "name")
    assert "code = InvalidArgument desc = spec.arguments.env_name.value" in invalid.stderr
    assert [w["metadata"]["name"] for w in fake.workflows()] == ["exists"]


def test_client_dry_run_prints_an_empty_name_and_the_uncreated_object(fake: FakeArgo) -> None:
    result = argo(fake, *SUBMIT, "--dry-run", "-o", "name")
    assert (result.returncode, result.stdout, result.stderr) == (0, "\n", "")
    workflow = json.loads(argo(fake, *SUBMIT, "--dry-run", "-o", "json", "-l", "a=b").stdout)
    assert workflow["metadata"] == {
        "generateName": "env-create-template-",
        "creationTimestamp": None,
        "labels": {"a": "b", "workflows.argoproj.io/workflow-template": "env-create-template"},
    }
    assert fake.workflows() == []


def test_submit_without_output_prints_the_summary_block(fake: FakeArgo) -> None:
    result = argo(fake, *SUBMIT)
    name = fake.workflows()[0]["metadata"]["name"]
    assert result.stdout == (
        f"Name:                {name}\n"
        f"Namespace:           {NS}\n"
        "ServiceAccount:      unset\n"
        "Status:              Pending\n"
        "Created:             Sat Nov 28 12:00:00 +0000 (now)\n"
        "Progress:            \n"
        "Parameters:          \n"
        "  env_name:          co-1\n"
        "  service:           checkout\n"
        "  expires_at:        2026-11-28T16:00:00Z\n"
    )


# --- phases ---------------------------------------------------------------------------------------


def test_a_template_rule_drives_new_workflows_to_a_final_phase(fake: FakeArgo) -> None:
    fake.configure(now=NOW, phases={"env-create-template": "Succeeded"})
    printed = json.loads(argo(fake, *SUBMIT, "-o", "json").stdout)
    assert "phase" not in printed["status"]  # the controller acts after the CLI has printed
    (stored,) = fake.workflows()
    labels, status = stored["metadata"]["labels"], stored["status"]
    assert labels["workflows.argoproj.io/phase"] == "Succeeded"
    assert labels["workflows.argoproj.io/completed"] == "true"
    assert labels["envbot.dev/action"] == "create"  # the template's workflowMetadata, applied on reconcile
    assert (status["phase"], status["startedAt"], status["finishedAt"]) == ("Succeeded", NOW, NOW)
    name = stored["metadata"]["name"]
    node = status["nodes"][name]
    # The create template's entrypoint is steps (the namespace, then the deploy): a Steps root node
    # whose children are one Pod node per step, as the controller records them.
    assert {k: node[k] for k in ("id", "name", "displayName", "type", "templateName", "phase")} == {
        "id": name,
        "name": name,
        "displayName": name,
        "type": "Steps",
        "templateName": "main",
        "phase": "Succeeded",
    }
    pods = [status["nodes"][child] for child in node["children"]]
    assert [(p["name"], p["displayName"], p["type"], p["templateName"], p["phase"]) for p in pods] == [
        (f"{name}[0].create", "create", "Pod", "create", "Succeeded"),
        (f"{name}[1].deploy", "deploy", "Pod", "deploy", "Succeeded"),
        # The platform team's recipe and envbot's check of it run only for recipe kind `workflow`.
        (f"{name}[2].recipe", "recipe", "Skipped", "deploy", "Skipped"),
        (f"{name}[3].verify", "verify", "Skipped", "verify", "Skipped"),
    ]
    assert (node["startedAt"], node["finishedAt"]) == (NOW, NOW)
    assert status["storedWorkflowTemplateSpec"]["entrypoint"] == "main"


def test_a_failing_template_carries_its_message_on_the_pod_node_and_the_workflow(fake: FakeArgo) -> None:
    message = "envbot: namespace co-1 exists and is not managed by envbot"
    fake.configure(now=NOW, phases={"env-create-template": "Failed"}, fail_message={"env-create-template": message})
    argo(fake, *SUBMIT, "-o", "name")
    destroy = ["submit", "--from", "workflowtemplate/env-destroy-template", "-n", NS, "-p", "env_name=co-1"]
    argo(fake, *destroy, "-o", "name")
    create, other = fake.workflows()
    first, node = [n for n in create["status"]["nodes"].values() if n["type"] == "Pod"]
    assert (create["status"]["phase"], create["status"]["message"]) == ("Failed", message)
    assert (node["phase"], node["message"], node["type"]) == ("Failed", message, "Pod")
    assert first["phase"] == "Succeeded"  # the fake fails a steps workflow at its last step
    assert other["status"] == {"startedAt": None, "finishedAt": None}  # the rule is per template


def test_set_phase_moves_a_workflow_like_the_controller(fake: FakeArgo) -> None:
    (name,) = names(argo(fake, *SUBMIT, "-o", "name"))
    pending = fake.set_phase(name, "Pending", message="Waiting for argo/Mutex/envbot-env-co-1 lock. Lock status: 0/1")
    assert pending["status"]["phase"] == "Pending" and pending["status"]["startedAt"] is None
    assert pending["metadata"]["labels"]["workflows.argoproj.io/completed"] == "false"
    running = fake.set_phase(name, "Running", at=T0 + timedelta(seconds=5))
    assert running["status"]["startedAt"] == "2026-11-28T12:00:05Z" and running["status"]["finishedAt"] is None
    assert running["status"]["nodes"][name]["phase"] == "Running"
    assert "message" not in running["status"]
    failed = fake.set_phase(name, "Failed", "boom", node_message="exit 3", at="2026-11-28T12:01:00Z")
    (pod,) = [n for n in failed["status"]["nodes"].values() if n["type"] == "Pod" and n["phase"] == "Failed"]
    assert (failed["status"]["message"], pod["message"]) == ("boom", "exit 3")
    assert failed["status"]["nodes"][name]["message"] == f"child '{pod['id']}' failed"  # the Steps node's own
    assert (failed["status"]["startedAt"], failed["status"]["finishedAt"]) == (
        "2026-11-28T12:00:05Z",
        "2026-11-28T12:01:00Z",
    )
    assert failed["metadata"]["labels"]["workflows.argoproj.io/phase"] == "Failed"
    got = json.loads(argo(fake, "get", name, "-n", NS, "-o", "json").stdout)
    assert got == failed
    with pytest.raises(ValueError, match="already Failed"):
        fake.set_phase(name, "Running")


# --- list -----------------------------------------------------------------------------------------


def test_list_json_is_a_two_space_array_and_empty_output_per_format(fake: FakeArgo) -> None:
    assert argo(fake, "list", "-n", NS, "-o", "json").stdout == "[]\n"
    assert argo(fake, "list", "-n", NS, "-o", "yaml").stdout == "[]\n"
    assert argo(fake, "list", "-n", NS, "-o", "name").stdout == "No workflows found\n"
    assert argo(fake, "list", "-n", NS).stdout == "No workflows found\n"
    argo(fake, *SUBMIT, "-o", "name")
    result = argo(fake, "list", "-n", NS, "-o", "json")
    items = json.loads(result.stdout)
    assert result.stdout == json.dumps(items, indent=2) + "\n"
    assert items == fake.workflows()
    assert argo(fake, "list", "-n", "other", "-o", "json").stdout == "[]\n"  # other namespaces are invisible


def test_list_orders_unfinished_newest_first_then_finished_by_finish_time(fake: FakeArgo) -> None:
    fake.add_workflow(name="running-10", created=T0.replace(hour=10), phase="Running")
    fake.add_workflow(name="new-11", created=T0.replace(hour=11))
    fake.add_workflow(
        name="done-0930", created=T0.replace(hour=9), phase="Succeeded", finished=T0.replace(hour=9, minute=30)
    )
    fake.add_workflow(
        name="done-1130", created=T0.replace(hour=8), phase="Failed", finished=T0.replace(hour=11, minute=30)
    )
    expected = ["new-11", "running-10", "done-1130", "done-0930"]
    assert names(argo(fake, "list", "-n", NS, "-o", "name")) == expected
    assert [w["metadata"]["name"] for w in json.loads(argo(fake, "list", "-n", NS, "-o", "json").stdout)] == expected


def test_list_table_columns(fake: FakeArgo) -> None:
    created = T0 - timedelta(hours=2)
    fake.add_workflow(
        name="co-1-done", created=created, phase="Failed", message="boom", finished=created + timedelta(seconds=75)
    )
    fake.add_workflow(name="co-2-new", created=T0 - timedelta(seconds=30))
    assert argo(fake, "list", "-n", NS).stdout == (
        "NAME        STATUS    AGE   DURATION   PRIORITY   MESSAGE\n"
        "co-2-new    Pending   30s   0s         0          \n"
        "co-1-done   Failed    2h    1m         0          boom\n"
    )
    assert argo(fake, "list", "-n", NS, "--no-headers").stdout.startswith("co-2-new ")


@pytest.fixture
def labelled(fake: FakeArgo) -> FakeArgo:
    fake.add_workflow(name="w1", labels={"env": "a", "tier": "1"}, created=T0 - timedelta(minutes=3))
    fake.add_workflow(name="w2", labels={"env": "b", "tier": "5"}, created=T0 - timedelta(minutes=2))
    fake.add_workflow(name="w3", labels={"env": "c"}, created=T0 - timedelta(minutes=1))
    return fake


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=a", {"w1"}),
        ("env==b", {"w2"}),
        ("env!=a", {"w2", "w3"}),
        ("env in (a,c)", {"w1", "w3"}),
        ("env notin (a)", {"w2", "w3"}),
        ("tier", {"w1", "w2"}),
        ("!tier", {"w3"}),
        ("tier>2", {"w2"}),
        ("tier<2", {"w1"}),
        ("env in (a, b) , tier>0", {"w1", "w2"}),
        ("env=zzz", set()),
        ("", {"w1", "w2", "w3"}),
    ],
)
def test_list_selector_syntax(labelled: FakeArgo, selector: str, expected: set[str]) -> None:
    result = argo(labelled, "list", "-n", NS, "-l", selector, "-o", "name")
    assert set(names(result)) - {"No workflows found"} == expected
    assert argo(labelled, "list", "-n", NS, f"--selector={selector}", "-o", "name").stdout == result.stdout


@pytest.mark.parametrize(
    ("selector", "error"),
    [
        ("env in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("env=a b", "found 'b', expected: ',' or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        (
            "tier>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, "
            "the value must be an integer",
        ),
        (
            "Env_=a",
            'unable to parse requirement: <nil>: Invalid value: "Env_": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
            "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
    ],
)
def test_a_bad_selector_fails_on_the_client_like_labels_parse(labelled: FakeArgo, selector: str, error: str) -> None:
    result = argo(labelled, "list", "-n", NS, "-l", selector, "-o", "json")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Error: {error}\n")


def test_status_running_completed_and_prefix(fake: FakeArgo) -> None:
    fake.add_workflow(name="a-new", created=T0 - timedelta(minutes=4))
    fake.add_workflow(name="a-running", created=T0 - timedelta(minutes=3), phase="Running")
    fake.add_workflow(name="b-ok", created=T0 - timedelta(minutes=2), phase="Succeeded")
    fake.add_workflow(name="a-failed", created=T0 - timedelta(minutes=1), phase="Failed")
    listing = ["list", "-n", NS, "-o", "name"]
    assert set(names(argo(fake, *listing, "--status", "Succeeded,Failed"))) == {"b-ok", "a-failed"}
    assert set(names(argo(fake, *listing, "--status", "Running", "--status", "Pending"))) == {"a-running"}
    assert set(names(argo(fake, *listing, "--running"))) == {"a-new", "a-running"}  # no completed label yet counts
    assert set(names(argo(fake, *listing, "--completed"))) == {"b-ok", "a-failed"}
    assert set(names(argo(fake, *listing, "--prefix", "a-", "--completed"))) == {"a-failed"}
    both = argo(fake, *listing, "--running", "--completed")
    assert (both.returncode, both.stderr) == (1, "Error: --completed and --running cannot be used together\n")


def test_chunk_size_is_validated_recorded_and_truncates_in_kube_mode(fake: FakeArgo) -> None:
    for i in range(5):
        fake.add_workflow(name=f"wf-{i}", created=T0 - timedelta(minutes=i))
    bad = argo(fake, "list", "-n", NS, "--chunk-size", "ten")
    assert bad.returncode == 1
    assert bad.stderr.startswith(
        'Error: invalid argument "ten" for "--chunk-size" flag: strconv.ParseInt: parsing "ten": invalid syntax\n'
        "Usage:\n  argo list [flags]\n"
    )
    listing = ["list", "-n", NS, "-o", "name"]
    assert names(argo(fake, *listing, "--chunk-size", "0")) == [f"wf-{i}" for i in range(5)]
    # kube mode: the count uses the same Limit as the list, so no second page is ever asked for
    assert names(argo(fake, *listing, "--chunk-size", "2")) == ["wf-0", "wf-1"]
    assert names(argo(fake, *listing, "--chunk-size=-1")) == [f"wf-{i}" for i in range(5)]
    assert fake.lists()[-2][-2:] == ["--chunk-size", "2"]
    fake.configure(now=NOW, server_version="v3.7.18")  # argo-server pages through the whole list
    assert names(argo(fake, *listing, "--chunk-size", "2")) == [f"wf-{i}" for i in range(5)]


# --- get, template, version -----------------------------------------------------------------------


def test_get_prints_one_workflow_and_a_missing_one_is_not_found(fake: FakeArgo) -> None:
    (name,) = names(argo(fake, *SUBMIT, "-o", "name"))
    result = argo(fake, "get", name, "-n", NS, "-o", "json")
    assert result.stdout == json.dumps(fake.workflow(name), indent=4) + "\n"
    assert names(argo(fake, "get", name, "-n", NS, "-o", "name")) == [name]
    assert names(argo(fake, "get", "@latest", "-n", NS, "-o", "name")) == [name]
    missing = argo(fake, "get", "nope", "-n", NS, "-o", "json")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == (
        f'time="{NOW}" level=error msg="failed to get live workflow: workflows.argoproj.io \\"nope\\" not found; '
        'failed to get archived workflow: getting archived workflows not supported"\n'
        'Error: rpc error: code = NotFound desc = workflows.argoproj.io "nope" not found\n'
    )


def test_template_get_prints_the_installed_template(fake: FakeArgo) -> None:
    result = argo(fake, "template", "get", "env-create-template", "-n", NS, "-o", "json")
    template = json.loads(result.stdout)
    installed = yaml.safe_load((ROOT / "argo/workflowtemplates/env-create-template.yaml").read_text())
    assert template["spec"] == installed["spec"]
    assert template["metadata"]["name"] == "env-create-template" and template["metadata"]["namespace"] == NS
    assert "kind" not in template
    assert result.stdout.endswith("}\n") and '\n    "metadata": {' in result.stdout
    for name, namespace in (("nope", NS), ("env-create-template", "workflows")):
        missing = argo(fake, "template", "get", name, "-n", namespace, "-o", "json")
        assert (missing.returncode, missing.stdout) == (1, "")
        assert (
            missing.stderr
            == f'Error: rpc error: code = NotFound desc = workflowtemplates.argoproj.io "{name}" not found\n'
        )
    listed = names(argo(fake, "template", "list", "-n", NS, "-o", "name"))
    assert {"env-create-template", "env-destroy-template", "env-extend-template"} <= set(listed)
    fake.configure(now=NOW, modes={"template get": "notfound-template"})
    assert "code = NotFound" in argo(fake, "template", "get", "env-create-template", "-n", NS).stderr


def test_version_formats(fake: FakeArgo) -> None:
    assert argo(fake, "version", "--short").stdout == "argo: v3.7.18\n"
    assert argo(fake, "version").stdout == (
        "argo: v3.7.18\n"
        "  BuildDate: 2026-08-14T07:11:57Z\n"
        "  GitCommit: 66e32e5cc367f223e2ecf4fbe852b95eaed83034\n"
        "  GitTreeState: clean\n"
        "  GitTag: v3.7.18\n"
        "  GoVersion: go1.25.7\n"
        "  Compiler: gc\n"
        "  Platform: linux/amd64\n"
    )
    no_json = argo(fake, "version", "-o", "json")  # v3.7's version command has no --output flag
    assert no_json.returncode == 1 and no_json.stderr.startswith("Error: unknown shorthand flag: 'o' in -o\n")
    fake.configure(now=NOW, version="v3.7.18", server_version="v3.7.17")
    both = argo(fake, "version", "--short")
    assert both.stdout == "argo: v3.7.18\nargo-server: v3.7.17\n"
    assert both.stderr == (
        f'time="{NOW}" level=warning msg="CLI version (v3.7.18) does not match server version (v3.7.17). '
        'This can lead to unexpected behavior."\n'
    )
    fake.configure(now=NOW, mode="unavailable")  # kube mode: version never contacts the cluster
    assert argo(fake, "version", "--short").stdout == "argo: v3.7.18\n"


# --- faults ---------------------------------------------------------------------------------------


def test_modes_are_per_verb_and_junk_exits_zero(fake: FakeArgo) -> None:
    fake.configure(now=NOW, modes={"list": "garbage", "get": "null", "template": "object"})
    (name,) = names(argo(fake, *SUBMIT, "-o", "name"))  # submit stays normal
    garbage = argo(fake, "list", "-n", NS, "-o", "json")
    assert garbage.returncode == 0 and garbage.stdout.startswith("NAME ")
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbage.stdout)
    assert argo(fake, "get", name, "-n", NS, "-o", "json").stdout == "null\n"
    assert argo(fake, "template", "get", "env-create-template", "-n", NS, "-o", "json").stdout == "{}\n"
    fake.configure(now=NOW, modes={"submit": "empty"})
    empty = argo(fake, *SUBMIT, "-o", "name")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")
    assert len(fake.workflows()) == 2  # argo created it but printed nothing


def test_unavailable_is_the_kube_mode_fatal_line_for_every_cluster_verb(fake: FakeArgo) -> None:
    fake.configure(now=NOW, mode="unavailable")
    for args in (SUBMIT, ["list", "-n", NS], ["get", "x", "-n", NS], ["template", "get", "x", "-n", NS]):
        result = argo(fake, *args)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", FATAL)


def test_forbidden_is_the_rbac_error_each_verb_gets(fake: FakeArgo) -> None:
    user = 'User "system:serviceaccount:envbot:envbot"'
    fake.configure(now=NOW, modes=dict.fromkeys(("submit", "list", "get", "template"), "forbidden"))
    assert argo(fake, *SUBMIT, "-o", "name").stderr == (
        "Error: Failed to submit workflow: rpc error: code = PermissionDenied desc = workflows.argoproj.io is "
        f'forbidden: {user} cannot create resource "workflows" in API group "argoproj.io" in the namespace "{NS}"\n'
    )
    assert argo(fake, "list", "-n", NS).stderr == (
        "Error: rpc error: code = PermissionDenied desc = Permission denied, you are not allowed to list workflows "
        f'in namespace "{NS}". Maybe you want to specify a namespace with query parameter `.namespace={NS}`?\n'
    )
    get = argo(fake, "get", "x", "-n", NS).stderr.splitlines()
    assert get[0].startswith(f'time="{NOW}" level=error msg="failed to get live workflow: ')
    assert get[1] == (
        f'Error: rpc error: code = PermissionDenied desc = workflows.argoproj.io "x" is forbidden: {user} cannot '
        f'get resource "workflows" in API group "argoproj.io" in the namespace "{NS}"'
    )
    template = argo(fake, "template", "get", "env-create-template", "-n", NS)
    assert template.stderr == "Error: rpc error: code = PermissionDenied desc = permission denied\n"
    assert fake.workflows() == []


def test_the_global_mode_keeps_its_meaning_junk_and_rbac_only_for_submit(fake: FakeArgo) -> None:
    fake.configure(now=NOW, mode="forbidden")
    assert "code = PermissionDenied" in argo(fake, *SUBMIT, "-o", "name").stderr
    assert argo(fake, "list", "-n", NS, "-o", "json").stdout == "[]\n"
    template = argo(fake, "template", "get", "env-create-template", "-n", NS, "-o", "json")
    assert json.loads(template.stdout)["metadata"]["name"] == "env-create-template"
    fake.configure(now=NOW, mode="garbage", modes={"list": "null"})
    assert argo(fake, "list", "-n", NS, "-o", "json").stdout == "null\n"
    assert argo(fake, *SUBMIT, "-o", "name").stdout.startswith("Name:                env-create-template-")
    fake.configure(now=NOW, mode="notfound-template")
    assert "code = NotFound" in argo(fake, "template", "get", "env-create-template", "-n", NS).stderr


def test_hang_runs_until_killed(fake: FakeArgo) -> None:
    fake.configure(now=NOW, modes={"list": "hang"})
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([str(fake.bin), "list", "-n", NS], capture_output=True, timeout=1)
    assert fake.calls() == [["list", "-n", NS]]
    assert argo(fake, "version", "--short").returncode == 0


@pytest.mark.serial
def test_per_verb_delay(fake: FakeArgo) -> None:
    fake.configure(now=NOW, delays={"list": 1.0})
    started = time.monotonic()
    argo(fake, "version", "--short")
    quick = time.monotonic() - started
    started = time.monotonic()
    argo(fake, "list", "-n", NS)
    assert time.monotonic() - started >= 1.0 > quick


# --- recording, seeding, concurrency --------------------------------------------------------------


def test_each_call_records_argv_pid_and_only_the_names_of_its_environment(fake: FakeArgo) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": "/nowhere", "ARGO_TOKEN": "Bearer s3cret-value", "KUBECONFIG": "/k"}
    result = argo(fake, "version", "--short", env=env)
    (record,) = fake.records()
    assert record == {"argv": ["version", "--short"], "pid": record["pid"], "env": sorted(env)}
    assert record["pid"] > 0 and result.returncode == 0
    assert "s3cret" not in (fake.state / "calls.jsonl").read_text()


@pytest.mark.serial
def test_seed_is_fast_and_list_with_a_selector_stays_correct(fake: FakeArgo) -> None:
    started = time.monotonic()
    fake.seed(
        5000,
        labels=lambda i: {"app.kubernetes.io/managed-by": "envbot", "envbot.dev/env": f"env-{i % 250}"},
        params=lambda i: {"env_name": f"env-{i % 250}", "service": "checkout", "expires_at": NOW},
        phase=lambda i: "Succeeded" if i % 3 else "Failed",
    )
    seeded = time.monotonic() - started
    started = time.monotonic()
    result = argo(fake, "list", "-n", NS, "-l", "envbot.dev/env in (env-7,env-8)", "-o", "json")
    listed = time.monotonic() - started
    items = json.loads(result.stdout)
    assert len(items) == 40 and {i["metadata"]["labels"]["envbot.dev/env"] for i in items} == {"env-7", "env-8"}
    finished = [i["status"]["finishedAt"] for i in items]
    assert finished == sorted(finished, reverse=True)
    assert seeded < 20 and listed < 5, (seeded, listed)


def test_concurrent_submits_from_many_processes_all_land(fake: FakeArgo) -> None:
    def submit(i: int) -> str:
        result = argo(fake, *SUBMIT, "-l", f"envbot.dev/env=co-{i}", "-o", "name")
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    with ThreadPoolExecutor(12) as pool:
        created = list(pool.map(submit, range(24)))
    assert len(set(created)) == 24
    assert set(names(argo(fake, "list", "-n", NS, "-o", "name"))) == set(created)
    assert len(fake.submits()) == 24 and len(set(fake.pids())) == 25


# --- the selector module itself (also used by the kubectl stand-in) --------------------------------


def test_selectors_normalise_like_kubernetes() -> None:
    assert str(parse("z=1,a in (c,b),!x,y,n>3")) == "a in (b,c),n>3,!x,y,z=1"  # sorted by key, values too
    assert matches("app.kubernetes.io/managed-by=envbot", {"app.kubernetes.io/managed-by": "envbot"})
    assert not matches("envbot.dev/env notin (a)", {"envbot.dev/env": "a"})
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        parse("a in (")
