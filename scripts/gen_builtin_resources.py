"""Generate trio_controller/api/builtin.py: a `Resource` constant for every kind the
pinned Kubernetes version serves, read from a real apiserver's discovery (testenv).

    .venv/bin/python scripts/gen_builtin_resources.py        # needs `make testenv`

Each group's preferred version; subresources left out. A constant is named after the
kind's words and the plural's ending (`ResourceQuota`/`resourcequotas` ->
`RESOURCE_QUOTAS`, `NetworkPolicy`/`networkpolicies` -> `NETWORK_POLICIES`). When two
groups serve a kind of the same name, the core group's gets `CORE_` and another group's
its first label (`events.k8s.io`'s Event stays `EVENTS`, core's is `CORE_EVENTS`). The
hand-written names of api/resource.py (`CONFIGMAPS`) are kept as aliases.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from trio_controller import Client, load_config
from trio_controller.testing import open_envtest

OUT = Path(__file__).resolve().parents[1] / "trio_controller" / "api" / "builtin.py"
# Names api/resource.py has always had, kept as aliases of the generated ones.
ALIASES = {"CONFIGMAPS": "CONFIG_MAPS"}
# Which group keeps the plain name when two serve a kind of the same name.
PREFERRED_GROUP = {"Event": "events.k8s.io"}


def constant(kind: str, plural: str) -> str:
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|$)|[A-Z][a-z0-9]*", kind)
    lower = kind.lower()
    common = 0
    while common < min(len(lower), len(plural)) and lower[common] == plural[common]:
        common += 1
    cut = len(lower) - common  # letters of the kind the plural replaces
    snake = "_".join(w.upper() for w in words)
    if cut:
        snake = snake[:-cut]
    return snake + plural[common:].upper()


async def discover() -> tuple[str, list[tuple[str, str, str, str, bool]]]:
    found: list[tuple[str, str, str, str, bool]] = []
    async with open_envtest() as env, Client(load_config(str(env.info.admin_kubeconfig))) as c:
        version = (await c.request_json("GET", "/version"))["gitVersion"]
        lists: list[tuple[str, str, dict[str, Any]]] = [
            ("", "v1", await c.request_json("GET", "/api/v1"))
        ]
        groups = await c.request_json("GET", "/apis")
        for group in groups["groups"]:
            preferred = group["preferredVersion"]["version"]
            path = f"/apis/{group['name']}/{preferred}"
            lists.append((group["name"], preferred, await c.request_json("GET", path)))
        for group_name, ver, listed in lists:
            for r in listed["resources"]:
                if "/" in r["name"]:
                    continue  # a subresource
                found.append((group_name, ver, r["name"], r["kind"], r["namespaced"]))
    return version, found


def render(version: str, found: list[tuple[str, str, str, str, bool]]) -> str:
    by_name: dict[str, list[tuple[str, str, str, str, bool]]] = {}
    for entry in found:
        by_name.setdefault(constant(entry[3], entry[2]), []).append(entry)
    named: dict[str, tuple[str, str, str, str, bool]] = {}
    for name, entries in by_name.items():
        if len(entries) == 1:
            named[name] = entries[0]
            continue
        keep = PREFERRED_GROUP.get(entries[0][3])
        for entry in entries:
            if entry[0] == keep:
                named[name] = entry
            else:
                prefix = "CORE" if not entry[0] else entry[0].split(".")[0].upper()
                named[f"{prefix}_{name}"] = entry
    lines = [
        f'"""Every built-in kind of Kubernetes {version} as a `Resource` (each API group\'s',
        "preferred version), generated from testenv's discovery by",
        "scripts/gen_builtin_resources.py: do not edit by hand.",
        "",
        "    from trio_controller.api.builtin import RESOURCE_QUOTAS",
        '"""',
        "",
        "from trio_controller.api.resource import Resource",
        "",
        f'KUBERNETES_VERSION = "{version}"',
        "",
    ]
    for name in sorted(named):
        group, ver, plural, kind, namespaced = named[name]
        scope = "" if namespaced else ", namespaced=False"
        lines.append(f'{name} = Resource("{group}", "{ver}", "{plural}", "{kind}"{scope})')
    lines.append("")
    lines.append("# The names api/resource.py has always had.")
    for alias, target in sorted(ALIASES.items()):
        lines.append(f"{alias} = {target}")
    lines.append("")
    names = sorted([*named, *ALIASES, "KUBERNETES_VERSION"])
    lines.append("__all__ = [")
    lines.extend(f'    "{n}",' for n in names)
    lines.append("]")
    return "\n".join(lines) + "\n"


def main() -> int:
    version, found = trio.run(discover)
    OUT.write_text(render(version, found))
    subprocess.run([sys.executable, "-m", "ruff", "format", str(OUT)], check=True)
    print(f"{OUT}: {len(found)} resources of Kubernetes {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
