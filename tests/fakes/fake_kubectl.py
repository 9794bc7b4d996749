"""A stand-in `kubectl` for the template scripts: records every call, answers from a small state.

State (KUBECTL_STATE, JSON): {"namespaces": {name: {"labels": {}, "annotations": {}}}, "objects": [],
"unreachable": false}; unreachable makes every call fail as if the API server were down.
Only the calls envbot's scripts make are understood; anything else fails loudly, so a script that
starts calling something new shows up in the tests.
"""

import json
import os
import sys
from pathlib import Path

import yaml
from label_selectors import matches  # run as a script: its folder is on sys.path

STATE = Path(os.environ["KUBECTL_STATE"])
CALLS = Path(os.environ["KUBECTL_CALLS"])


def main(argv: list[str]) -> int:
    with CALLS.open("a") as handle:
        handle.write(json.dumps(argv) + "\n")
    state = json.loads(STATE.read_text())
    if state.get("unreachable"):
        print(
            "The connection to the server 10.0.0.1:6443 was refused - did you specify the right host or port?",
            file=sys.stderr,
        )
        return 1
    verb, args = argv[0], argv[1:]
    handler = {"get": _get, "apply": _apply, "delete": _delete, "annotate": _annotate}.get(verb)
    if handler is None:
        return _unsupported(argv)
    code = handler(state, args)
    STATE.write_text(json.dumps(state))
    return code


def _unsupported(argv: list[str]) -> int:
    print(f"stand-in kubectl: unsupported call {argv}", file=sys.stderr)
    return 99


def _flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _selected(state: dict, args: list[str]) -> list[str]:
    selector = _flag(args, "-l") or ""
    field = _flag(args, "--field-selector") or ""
    names = [n for n, ns in state["namespaces"].items() if matches(selector, ns["labels"])]
    if field:
        key, _, value = field.partition("=")
        if key != "metadata.name":
            raise SystemExit(_unsupported(["--field-selector", field]))
        names = [n for n in names if n == value]
    return sorted(names)


def _get(state: dict, args: list[str]) -> int:
    if args[0] not in ("namespace", "namespaces", "ns"):
        return _unsupported(["get", *args])
    output = _flag(args, "-o") or ""
    positional = [a for a in args[1:] if not a.startswith("-") and a not in _flag_values(args)]
    if positional:
        name = positional[0]
        if name not in state["namespaces"]:
            if "--ignore-not-found" in args:
                return 0
            print(f'Error from server (NotFound): namespaces "{name}" not found', file=sys.stderr)
            return 1
        names = [name]
    else:
        names = _selected(state, args)
    if output == "name":
        for name in names:
            print(f"namespace/{name}")
        return 0
    if output.startswith("custom-columns="):
        return _custom_columns(state, names, output, "--no-headers" in args)
    return _unsupported(["get", *args])


def _flag_values(args: list[str]) -> set[str]:
    return {args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-o", "-l", "--field-selector")}


def _custom_columns(state: dict, names: list[str], output: str, no_headers: bool) -> int:
    columns = [c.split(":", 1) for c in output.removeprefix("custom-columns=").split(",")]
    if not no_headers:
        print("   ".join(title for title, _ in columns))
    for name in names:
        values = [_path(name, state["namespaces"][name], path) for _, path in columns]
        print("   ".join(values))
    return 0


def _path(name: str, ns: dict, path: str) -> str:
    if path == ".metadata.name":
        return name
    if path.startswith(".metadata.annotations."):
        key = path.removeprefix(".metadata.annotations.").replace("\\.", ".")
        return ns["annotations"].get(key) or "<none>"
    raise SystemExit(_unsupported(["custom-columns", path]))


def _apply(state: dict, args: list[str]) -> int:
    if args != ["-f", "-"]:
        return _unsupported(["apply", *args])
    for doc in yaml.safe_load_all(sys.stdin.read()):
        kind, meta = doc["kind"], doc["metadata"]
        if kind == "Namespace":
            existed = meta["name"] in state["namespaces"]
            state["namespaces"][meta["name"]] = {
                "labels": dict(meta.get("labels") or {}),
                "annotations": dict(meta.get("annotations") or {}),
            }
            print(f"namespace/{meta['name']} {'configured' if existed else 'created'}")
            continue
        if meta.get("namespace") not in state["namespaces"]:
            print(f'Error from server (NotFound): namespaces "{meta.get("namespace")}" not found', file=sys.stderr)
            return 1
        state["objects"] = [
            o
            for o in state["objects"]
            if (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) != (kind, meta["namespace"], meta["name"])
        ] + [doc]
        print(f"{kind.lower()}/{meta['name']} created")
    return 0


def _delete(state: dict, args: list[str]) -> int:
    if args[0] not in ("namespace", "namespaces", "ns") or _flag(args, "-l") is None:
        return _unsupported(["delete", *args])  # envbot always deletes through its ownership selector
    names = _selected(state, args)
    if not names:
        print("No resources found")
    for name in names:
        del state["namespaces"][name]
        state["objects"] = [o for o in state["objects"] if o["metadata"]["namespace"] != name]
        print(f'namespace "{name}" deleted')
    return 0


def _annotate(state: dict, args: list[str]) -> int:
    if args[0] not in ("namespace", "namespaces", "ns") or "--overwrite" not in args:
        return _unsupported(["annotate", *args])
    name = args[1]
    if name not in state["namespaces"]:
        print(f'Error from server (NotFound): namespaces "{name}" not found', file=sys.stderr)
        return 1
    for pair in args[2:]:
        if "=" in pair and not pair.startswith("-"):
            key, value = pair.split("=", 1)
            state["namespaces"][name]["annotations"][key] = value
    print(f"namespace/{name} annotated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
