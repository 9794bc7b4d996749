"""ARGO_ENV_PASSTHROUGH: more of envbot's environment for `argo`, for kubeconfig login plugins.

Outside the cluster, a kubeconfig's `exec` credential plugin (aws eks get-token, gke-gcloud-auth-plugin,
kubelogin) runs as a child of `argo` and needs its cloud's variables. The value is a comma-separated
list of names (`AWS_PROFILE`) and prefixes ending in `*` (`AWS_*`). Slack's secrets and envbot's own
settings never pass, whatever the list says: they are refused when the setting is read, and dropped
again when the environment is built.
"""

import re
from dataclasses import dataclass

_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")
# Never passed: Slack's credentials and envbot's own settings (some hold secrets or paths).
NEVER = ("SLACK_", "ENVBOT_")


@dataclass(frozen=True)
class Passthrough:
    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Passthrough":
        """From `AWS_*,GOOGLE_APPLICATION_CREDENTIALS`; ValueError naming the first entry not allowed."""
        names: set[str] = set()
        prefixes: list[str] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            if not _ENTRY.fullmatch(entry):
                raise ValueError(f"'{entry[:40]}' is not a variable name or a prefix ending in *")
            stem = entry.removesuffix("*")
            if entry.endswith("*") and len(stem) < 2:
                raise ValueError(f"'{entry}' is too broad: give at least two characters before *")
            if any(stem.upper().startswith(never) or never.startswith(stem.upper()) for never in NEVER):
                raise ValueError(f"'{entry}' would pass Slack's secrets or envbot's settings to argo")
            (prefixes.append(stem) if entry.endswith("*") else names.add(entry))
        return cls(frozenset(names), tuple(prefixes))

    def allows(self, name: str, settings: frozenset[str]) -> bool:
        if name.upper().startswith(NEVER) or name in settings:
            return False
        return name in self.names or name.startswith(self.prefixes)
