"""CustomResourceDefinitions installed when a test control plane starts (envtest's
CRDInstallOptions.Paths): read from YAML/JSON files and folders, or given as dicts.

    documents = load_crds(["config/crd", "extra/widget.yaml", {...}])   # before start-up
    await install_crds(info, documents, within=60)   # create (or update), then wait

`install_crds` returns once every CRD is Established and each of its served versions lists
the plural in discovery (`/apis/<group>/<version>`), so a client asking right after finds it.
Errors are `CRDError` with one line naming the file or the CRD.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from trio_controller.testing.info import EnvInfo

__all__ = ["CRDError", "CRDSource", "install_crds", "load_crds"]

CRDSource = str | os.PathLike[str] | Mapping[str, Any]
CRDS_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_SUFFIXES = (".yaml", ".yml", ".json")
_POLL_INTERVAL = 0.05


class CRDError(Exception):
    """A CRD source cannot be read, or a CRD was refused or not established in time."""


def _is_crd(document: Any) -> bool:
    return isinstance(document, Mapping) and document.get("kind") == "CustomResourceDefinition"


def _read_file(path: Path) -> list[dict[str, Any]]:
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise CRDError(f"cannot read CRDs from {path}: {error}") from None
    # Other kinds in the same file (a kustomize build) are skipped, as envtest does.
    return [dict(document) for document in documents if _is_crd(document)]


def load_crds(sources: Sequence[CRDSource] | CRDSource) -> list[dict[str, Any]]:
    """The CRD documents of `sources`: files (every CRD document in them), folders (their
    .yaml/.yml/.json files, not recursive, by name) and dicts. A path that does not exist,
    a path holding no CRD, or a dict that is not a CRD raises `CRDError`."""
    if isinstance(sources, str | os.PathLike | Mapping):  # one source, not a list of them
        sources = [sources]
    found: list[dict[str, Any]] = []
    for source in sources:
        if isinstance(source, Mapping):
            if not _is_crd(source):
                raise CRDError(f"not a CustomResourceDefinition: kind {source.get('kind')!r}")
            found.append(dict(source))
            continue
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        elif path.exists():
            files = [path]
        else:
            raise CRDError(f"CRD path {path} does not exist")
        documents = [document for file in files for document in _read_file(file)]
        if not documents:
            raise CRDError(f"no CustomResourceDefinition in {path}")
        found.extend(documents)
    return found


def _name(crd: Mapping[str, Any]) -> str:
    return str((crd.get("metadata") or {}).get("name") or "?")


def _refusal(response: httpx.Response, crd: Mapping[str, Any]) -> CRDError:
    try:
        message = response.json().get("message") or response.text
    except ValueError:
        message = response.text
    return CRDError(f"CRD {_name(crd)} refused: {response.status_code} {message}")


async def _create_or_update(client: httpx.AsyncClient, crd: Mapping[str, Any]) -> None:
    response = await client.post(CRDS_PATH, json=crd)
    if response.status_code == 409:  # a kept work_dir's etcd has it already: update it
        current = await client.get(f"{CRDS_PATH}/{_name(crd)}")
        if current.status_code != 200:
            raise _refusal(current, crd)
        metadata = {**crd.get("metadata", {})}
        metadata["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
        response = await client.put(f"{CRDS_PATH}/{_name(crd)}", json={**crd, "metadata": metadata})
    if not response.is_success:
        raise _refusal(response, crd)


def _established(crd: Mapping[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _why(crd: Mapping[str, Any]) -> str:
    """The messages of the CRD's false conditions (NamesAccepted: a name is taken...)."""
    conditions = (crd.get("status") or {}).get("conditions") or ()
    false = [
        f"{c.get('type')}: {c.get('message')}" for c in conditions if c.get("status") == "False"
    ]
    return "; ".join(false) or "not established yet"


async def _wait_served(client: httpx.AsyncClient, crd: Mapping[str, Any]) -> None:
    """Until the CRD is Established and discovery lists it in each served version."""
    while True:
        response = await client.get(f"{CRDS_PATH}/{_name(crd)}")
        if response.status_code == 200 and _established(response.json()):
            break
        await trio.sleep(_POLL_INTERVAL)
    spec = crd.get("spec") or {}
    plural = (spec.get("names") or {}).get("plural")
    for version in spec.get("versions") or ():
        if not version.get("served", True):
            continue
        while True:
            response = await client.get(f"/apis/{spec.get('group')}/{version['name']}")
            if response.status_code == 200 and any(
                r.get("name") == plural for r in response.json().get("resources") or ()
            ):
                break
            await trio.sleep(_POLL_INTERVAL)


async def install_crds(info: EnvInfo, crds: Sequence[Mapping[str, Any]], within: float) -> None:
    """Create (or update) `crds` as the envtest admin; wait until each is served."""
    if not crds:
        return
    async with httpx.AsyncClient(
        base_url=info.server, verify=info.ssl_context(client_cert=True), timeout=10.0
    ) as client:
        for crd in crds:
            await _create_or_update(client, crd)
        with trio.move_on_after(within) as scope:
            for crd in crds:
                await _wait_served(client, crd)
        if scope.cancelled_caught:
            waiting = []
            for crd in crds:
                response = await client.get(f"{CRDS_PATH}/{_name(crd)}")
                if response.status_code != 200:
                    waiting.append(f"{_name(crd)} ({response.status_code})")
                elif not _established(current := response.json()):
                    waiting.append(f"{_name(crd)} ({_why(current)})")
            raise CRDError(
                f"CRDs not established and served after {within:g} s: "
                f"{', '.join(waiting) or 'discovery did not list them'}"
            )
