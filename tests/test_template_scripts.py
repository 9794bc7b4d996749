"""Fast tier: every template script validates every value before its first kubectl call.

The scripts run rendered as Argo renders them (raw-text substitution), with a kubectl on PATH that
only records its arguments and fails: a value that gets past validation shows up as a recorded
call. The behaviour against an API server is in test_execution_plane.py (real kubectl).
"""

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.execution_plane import CREATE, DESTROY, EXTEND, REAPER, SERVICES, SETTINGS, Run, render, run_script

GOOD = {
    "env_name": "checkout-demo",
    "service": "checkout",
    "expires_at": "2026-11-28T15:00:00Z",
    "requested_by": "U111AAA",
    "slack_channel": "C111AAA",
}
MALICIOUS = [
    "a; kubectl delete ns kube-system",
    "$(id)",
    "`id`",
    "ok\nkubectl delete ns kube-system",
    'x"\n  labels: {evil: yes}',
    "x: y\n- z",
    "{{workflow.name}}",
    "' || true #",
    "A" * 64,
    "",
]


class Recorder:
    """A kubectl that records each call and fails, so no call can have an effect."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls_file = folder / "kubectl-calls.jsonl"
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        kubectl = bin_dir / "kubectl"
        kubectl.write_text(
            f"#!{sys.executable}\nimport json, sys\n"
            f"open({str(self.calls_file)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
            "sys.stderr.write('error: recorder kubectl does not talk to any cluster\\n')\nsys.exit(97)\n"
        )
        kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
        self.path = f"{bin_dir}:{os.environ['PATH']}"

    def run(
        self,
        name: str,
        settings: dict[str, str] | None = SETTINGS,
        /,
        services: dict[str, str] = SERVICES,
        **params: str,
    ) -> Run:
        self.calls_file.write_text("")
        rendered = render(name, params, settings, services=services)
        return run_script(rendered, self.folder / "pod", {"PATH": self.path})

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path)


def assert_refused_before_kubectl(recorder: Recorder, run: Run, message: str = "envbot:") -> None:
    assert run.returncode != 0
    assert message in run.stderr, run.stderr
    assert recorder.calls() == []


def test_good_values_reach_kubectl_and_a_kubectl_failure_stops_the_script(recorder: Recorder) -> None:
    run = recorder.run(CREATE, **GOOD)
    assert run.returncode != 0
    # The first call counts the requester's live environments (the quota), and its failure stops everything.
    assert "could not count the live environments of user U111AAA; nothing was changed: error: recorder" in run.stderr
    assert recorder.calls() == [
        [
            "get",
            "namespaces",
            "-l",
            "app.kubernetes.io/managed-by=envbot,envbot.dev/instance=envbot,envbot.dev/requested-by=U111AAA",
            "-o",
            "json",
        ]
    ]
    assert "ready" not in run.stdout


OPTIONAL = ("requested_by", "slack_channel")  # empty is their documented default, so it is allowed
CREATE_CASES = [
    (param, value)
    for param in ("env_name", "service", "expires_at", "requested_by", "slack_channel")
    for value in MALICIOUS
    if not (param in OPTIONAL and value == "")
]


@pytest.mark.parametrize(("param", "value"), CREATE_CASES)
def test_malicious_create_parameters_are_rejected_before_kubectl(recorder: Recorder, param: str, value: str) -> None:
    canary = recorder.folder / "pwned"
    run = recorder.run(CREATE, **(GOOD | {param: value.replace("id", f"touch {canary}")}))
    assert_refused_before_kubectl(recorder, run)
    assert not canary.exists()


@pytest.mark.parametrize("value", MALICIOUS)
def test_malicious_destroy_and_extend_parameters_are_rejected(recorder: Recorder, value: str) -> None:
    for name, params in (
        (DESTROY, {"env_name": value}),
        (EXTEND, {"env_name": value, "expires_at": "2026-11-30T09:00:00Z"}),
        (EXTEND, {"env_name": "checkout-demo", "expires_at": value}),
    ):
        run = recorder.run(name, **params)
        assert run.returncode != 0, (name, params)
        assert recorder.calls() == [], (name, params)


@pytest.mark.parametrize(
    "name", ["kube-system", "default", "argo", "kube-public", "argocd", "envbot", "envbot-workflows"]
)
def test_reserved_names_are_refused_by_every_template(recorder: Recorder, name: str) -> None:
    for template_name, params in (
        (CREATE, GOOD | {"env_name": name}),
        (DESTROY, {"env_name": name}),
        (EXTEND, {"env_name": name, "expires_at": "2026-11-30T09:00:00Z"}),
    ):
        assert_refused_before_kubectl(recorder, recorder.run(template_name, **params), "reserved")


# --- guard rails from the service profiles (ConfigMap envbot-services, docs/adr/0007) --------------

PROFILE = "ConfigMap envbot-services: checkout's"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pod_security_level", "none", "pod_security_level must be one of"),
        ("pod_security_level", "restricted\nevil: x", "pod_security_level must be one of"),
        ("egress_blocked_cidrs", "169.254.169.254", "egress_blocked_cidrs must be"),
        ("egress_blocked_cidrs", "300.1.1.1/32", "octet above 255"),
        ("egress_blocked_cidrs", "10.0.0.0/33", "prefix longer than 32"),
        ("egress_blocked_cidrs", "10.0.0.0/8,,", "egress_blocked_cidrs must be"),
        ("egress_blocked_cidrs", "10.0.0.0/8\n0.0.0.0/0", "egress_blocked_cidrs must be"),
        ("egress_blocked_cidrs", "fd00::/129", "prefix longer than 128"),
        ("quota.pods", "0", "quota.pods must be at least 1"),
        ("quota.pods", "16.5", "quota.pods must be a whole number"),
        ("quota.loadbalancers", "-1", "must be a whole number"),
        ("quota.nodeports", "1e3", "must be a whole number"),
        ("quota.persistentvolumeclaims", "99999", "from 0 to 1000"),
        ("quota.storage", "20Ti", "quota.storage must be a Kubernetes quantity"),
        ("quota.cpu", "$(id)", "quota.cpu must be a Kubernetes quantity"),
        ("limits.cpu_request", "2", "limits.cpu_request may not exceed limits.cpu_limit"),
        ("limits.memory_request", "1Gi", "limits.memory_request may not exceed limits.memory_limit"),
        # 16 pods at a 1-CPU default limit can never fit a 4-CPU quota: the pod quota would be unreachable.
        ("limits.cpu_limit", "1", "quota.pods x limits.cpu_limit exceeds quota.cpu"),
        ("limits.memory_limit", "1Gi", "quota.pods x limits.memory_limit exceeds quota.memory"),
    ],
)
def test_guard_rail_profiles_are_validated(recorder: Recorder, key: str, value: str, message: str) -> None:
    # A bad value in the service's own key, and the same in the default that every service falls back to.
    canary = recorder.folder / "pwned"
    value = value.replace("id", f"touch {canary}")
    for profiles in (SERVICES | {f"checkout.{key}": value}, SERVICES | {f"default.{key}": value}):
        run = recorder.run(CREATE, services=profiles, **GOOD)
        assert_refused_before_kubectl(recorder, run, message)
        assert PROFILE in run.stderr
    assert not canary.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"egress_blocked_cidrs": ""},
        {"egress_blocked_cidrs": "169.254.169.254/32,fd00:ec2::254/128,10.0.0.1/32"},
        {"quota.cpu": "8", "limits.cpu_limit": "500m", "quota.memory": "16Gi"},
        {"quota.pods": "4", "limits.cpu_limit": "1", "limits.memory_limit": "2Gi", "limits.cpu_request": "0.5"},
        {"pod_security_level": "baseline", "quota.storage": "1.5Gi", "quota.loadbalancers": "2"},
    ],
)
def test_consistent_service_profiles_are_accepted(recorder: Recorder, overrides: dict[str, str]) -> None:
    profiles = SERVICES | {f"checkout.{key}": value for key, value in overrides.items()}
    run = recorder.run(CREATE, services=profiles, **GOOD)
    assert recorder.calls(), run.stderr  # validation passed: the script got as far as kubectl
    assert "could not count the live environments" in run.stderr


# The guard rails create reads (recipes and access are the deploy step's, tested with it).
GUARD_RAILS = sorted(
    k.removeprefix("default.")
    for k in SERVICES
    if k.startswith("default.") and k.split(".")[1] not in ("recipe", "access")
)


@pytest.mark.parametrize("key", GUARD_RAILS)
def test_a_guard_rail_missing_from_the_profiles_stops_create_before_kubectl(recorder: Recorder, key: str) -> None:
    profiles = {k: v for k, v in SERVICES.items() if k != f"default.{key}"}
    run = recorder.run(CREATE, services=profiles, **GOOD)
    assert_refused_before_kubectl(
        recorder, run, f"neither checkout.{key} nor default.{key} is set in ConfigMap envbot-services"
    )
    # The service's own key is enough.
    run = recorder.run(CREATE, services=profiles | {f"checkout.{key}": SERVICES[f"default.{key}"]}, **GOOD)
    assert recorder.calls(), run.stderr


def test_no_profiles_at_all_stops_create_before_kubectl(recorder: Recorder) -> None:
    run = recorder.run(CREATE, services={}, **GOOD)
    assert_refused_before_kubectl(recorder, run, "is set in ConfigMap envbot-services (create it once")


@pytest.mark.parametrize("service", ["Checkout", "check.out", "x" * 64, "-checkout", "default.quota"])
def test_a_service_name_must_be_a_dns_label_to_look_up_its_profile(recorder: Recorder, service: str) -> None:
    assert_refused_before_kubectl(recorder, recorder.run(CREATE, **(GOOD | {"service": service})), "service must be")


def test_expiry_instants_must_be_real_utc_times(recorder: Recorder) -> None:
    for bad in ("2026-13-01T00:00:00Z", "2026-11-28T25:00:00Z", "2026-11-28T15:00:00+01:00", "2026-11-28"):
        run = recorder.run(CREATE, **(GOOD | {"expires_at": bad}))
        assert_refused_before_kubectl(recorder, run, "RFC 3339 UTC")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (None, "setting 'instance' is missing: create ConfigMap envbot-settings"),
        ({"reaper_dry_run": "false"}, "setting 'instance' is missing"),
        ({"instance": "Blue Team"}, "must be a DNS-1123 label"),
        ({"instance": "x\nkubectl"}, "must be a DNS-1123 label"),
    ],
)
def test_every_template_needs_a_valid_instance_setting(
    recorder: Recorder, settings: dict[str, str] | None, message: str
) -> None:
    for name, params in (
        (CREATE, GOOD),
        (DESTROY, {"env_name": "checkout-demo"}),
        (EXTEND, {"env_name": "checkout-demo", "expires_at": "2026-11-30T09:00:00Z"}),
        (REAPER, {}),
    ):
        assert_refused_before_kubectl(recorder, recorder.run(name, settings, **params), message)


@pytest.mark.parametrize("value", ["yes", "TRUE", "1", "true; rm -rf /", "false\n"])
def test_reaper_refuses_a_bad_dry_run_setting_without_touching_anything(recorder: Recorder, value: str) -> None:
    run = recorder.run(REAPER, SETTINGS | {"reaper_dry_run": value})
    assert_refused_before_kubectl(recorder, run, "reaper_dry_run (ConfigMap envbot-settings) must be true or false")


@pytest.mark.parametrize("value", ["0", "-1", "201", "5x", "$(id)", ""])
def test_reaper_validates_its_cap(recorder: Recorder, value: str) -> None:
    run = recorder.run(REAPER, SETTINGS | {"reaper_max_deletes": value})
    assert_refused_before_kubectl(recorder, run, "reaper_max_deletes (ConfigMap envbot-settings) must be")


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "87601", "$(id)", ""])
def test_reaper_validates_max_age(recorder: Recorder, value: str) -> None:
    run = recorder.run(REAPER, SETTINGS | {"reaper_max_age_hours": value})
    assert_refused_before_kubectl(recorder, run, "reaper_max_age_hours (ConfigMap envbot-settings) must be")


# --- notice parameters (docs/adr/0005) -------------------------------------------------------------

NOTICE_PARAMS = {"warn_before": "3600,600", "extend_choices": "2h,1d,1h30m", "latest_expiry": "2026-12-12T09:00:00Z"}
EXTEND_GOOD = {"env_name": "checkout-demo", "expires_at": "2026-11-30T09:00:00Z", "slack_channel": "C111AAA"}


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("warn_before", "1h", "warn_before must be up to 10 comma-separated lead times in whole seconds"),
        ("warn_before", "3600,", "warn_before must be"),
        ("warn_before", "0", "warn_before must be"),
        ("warn_before", "3600;600", "warn_before must be"),
        ("warn_before", "1,2,3,4,5,6,7,8,9,10,11", "warn_before must be"),
        ("warn_before", "3600\n600", "warn_before must be"),
        ("extend_choices", "2h,1d,3d,1h,30m", "extend_choices must be up to 4 comma-separated durations"),
        ("extend_choices", "1d2d", "extend_choices must be"),
        ("extend_choices", "30m2h", "extend_choices must be"),  # largest unit first
        ("extend_choices", "2w", "extend_choices must be"),
        ("extend_choices", "0h", "extend_choices may not contain a zero duration"),
        ("extend_choices", "2h,,1d", "extend_choices must be"),
        ("extend_choices", "$(id)", "extend_choices must be"),
        ("latest_expiry", "tomorrow", "latest_expiry must be an RFC 3339 UTC instant"),
        ("latest_expiry", "2026-12-12T09:00:00+01:00", "latest_expiry must be"),
    ],
)
def test_notice_parameters_are_validated_by_create_and_extend(
    recorder: Recorder, param: str, value: str, message: str
) -> None:
    canary = recorder.folder / "pwned"
    bad = {param: value.replace("id", f"touch {canary}")}
    assert_refused_before_kubectl(recorder, recorder.run(CREATE, **(GOOD | NOTICE_PARAMS | bad)), message)
    assert_refused_before_kubectl(recorder, recorder.run(EXTEND, **(EXTEND_GOOD | NOTICE_PARAMS | bad)), message)
    assert not canary.exists()


@pytest.mark.parametrize("value", [v for v in MALICIOUS if v])
def test_the_channel_of_extend_and_destroy_is_validated(recorder: Recorder, value: str) -> None:
    for name, params in ((EXTEND, EXTEND_GOOD), (DESTROY, {"env_name": "checkout-demo"})):
        run = recorder.run(name, **(params | {"slack_channel": value}))
        assert_refused_before_kubectl(recorder, run, "slack_channel must be")


@pytest.mark.parametrize(
    "notices",
    [
        NOTICE_PARAMS,
        {"warn_before": "", "extend_choices": "", "latest_expiry": ""},  # a policy without warnings
        {"warn_before": "86400,3600,600,60", "extend_choices": "9999d,1d12h,90m,1m", "latest_expiry": ""},
    ],
)
def test_notice_values_the_bot_writes_pass_validation(recorder: Recorder, notices: dict[str, str]) -> None:
    for name, params in ((CREATE, GOOD), (EXTEND, EXTEND_GOOD)):
        run = recorder.run(name, **(params | notices))
        assert recorder.calls(), (name, run.stderr)  # validation passed: the script got as far as kubectl


def test_the_exit_handler_reaches_kubectl_only_with_a_valid_workflow_name(recorder: Recorder) -> None:
    settings = SETTINGS | {"notices": "on"}
    for name in ("x; kubectl delete ns kube-system", "$(id)", "A" * 300, ""):
        rendered = render(
            CREATE, {}, settings, step="notify", workflow={"name": name, "status": "Succeeded", "failures": '"null"'}
        )
        run = run_script(rendered, recorder.folder / "pod", {"PATH": recorder.path})
        assert run.returncode == 0, run.output  # an exit handler never fails the workflow
        assert "the workflow name from Argo is not a Kubernetes name" in run.stderr
        assert not recorder.calls_file.exists() or recorder.calls() == []
