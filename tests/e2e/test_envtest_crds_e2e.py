"""open_envtest(crds=...) and `python -m trio_controller.testing --crd`: CRDs from files,
folders and dicts are installed on a real kube-apiserver before it is handed over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from trio_controller.api import CUSTOM_RESOURCE_DEFINITIONS, NAMESPACES, Api, Discovery
from trio_controller.config import load_config
from trio_controller.errors import NotFound
from trio_controller.testing import EnvTestError, open_envtest
from trio_controller.testing._crds import CRDError, load_crds
from trio_controller.transport.client import Client


def crd(group: str, kind: str, plural: str, *, scope: str = "Namespaced") -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


async def test_crds_from_a_file_a_folder_and_a_dict_are_served_when_envtest_yields(
    tmp_path: Path,
) -> None:
    single = tmp_path / "gadget.yaml"
    # A file may hold other kinds too (a kustomize build): only its CRDs are installed.
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "skipped"}}
    single.write_text(yaml.safe_dump_all([namespace, crd("a.example.com", "Gadget", "gadgets")]))
    folder = tmp_path / "crds"
    folder.mkdir()
    (folder / "1.yml").write_text(yaml.safe_dump(crd("b.example.com", "Gizmo", "gizmos")))
    (folder / "2.json").write_text(
        yaml.safe_dump(crd("b.example.com", "Knob", "knobs", scope="Cluster"))
    )
    (folder / "notes.txt").write_text("not a manifest")
    given = crd("c.example.com", "Dial", "dials")
    with trio.fail_after(90):
        async with open_envtest(work_dir=tmp_path / "env", crds=[single, folder, given]) as env:
            config = load_config(env.admin_kubeconfig, environ={})
            async with Client(config) as client:
                discovery = Discovery(client)
                found = {
                    kind: await discovery.resource_for(api_version, kind)
                    for api_version, kind in [
                        ("a.example.com/v1", "Gadget"),
                        ("b.example.com/v1", "Gizmo"),
                        ("b.example.com/v1", "Knob"),
                        ("c.example.com/v1", "Dial"),
                    ]
                }
                assert found["Knob"].namespaced is False and found["Dial"].namespaced is True
                # Served already: an object can be made at once.
                dials = Api(client, found["Dial"], "default")
                made = await dials.create({"metadata": {"name": "d1"}, "spec": {"x": 1}})
                assert made["spec"] == {"x": 1}
                crds = await Api(client, CUSTOM_RESOURCE_DEFINITIONS).list()
                names = {item["metadata"]["name"] for item in crds}
                assert names == {
                    "gadgets.a.example.com",
                    "gizmos.b.example.com",
                    "knobs.b.example.com",
                    "dials.c.example.com",
                }
                with pytest.raises(NotFound):
                    await Api(client, NAMESPACES).get("skipped")


async def test_a_missing_crd_path_fails_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(EnvTestError, match=r"does-not-exist\.yaml does not exist"):
        async with open_envtest(work_dir=tmp_path / "env", crds=[tmp_path / "does-not-exist.yaml"]):
            pytest.fail("envtest started with a missing CRD path")
    assert not (tmp_path / "env").exists()


async def test_a_crd_the_apiserver_refuses_is_named_in_the_error(tmp_path: Path) -> None:
    bad = crd("d.example.com", "Bad", "bads")
    bad["metadata"]["name"] = "wrong.d.example.com"  # must be <plural>.<group>
    with (
        trio.fail_after(90),
        pytest.raises(EnvTestError, match=r"CRD wrong\.d\.example\.com refused"),
    ):
        async with open_envtest(work_dir=tmp_path / "env", crds=[bad]):
            pytest.fail("envtest started with a refused CRD")


def test_the_command_line_installs_crds_before_it_says_ready(tmp_path: Path) -> None:
    manifest = tmp_path / "sprocket.yaml"
    manifest.write_text(yaml.safe_dump(crd("e.example.com", "Sprocket", "sprockets")))
    kubeconfig = tmp_path / "admin.kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trio_controller.testing",
            f"--kubeconfig-out={kubeconfig}",
            f"--work-dir={tmp_path / 'env'}",
            f"--crd={manifest}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"

        async def look() -> list[str]:
            async with Client(load_config(kubeconfig, environ={})) as client:
                resources = await Discovery(client).resources("e.example.com/v1")
                return [r.kind for r in resources]

        assert trio.run(look) == ["Sprocket"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


async def test_a_crd_that_is_never_established_is_named_with_its_false_conditions(
    tmp_path: Path,
) -> None:
    first = crd("f.example.com", "Part", "parts")
    # Same kind in the same group under another plural: NamesAccepted stays False.
    second = crd("f.example.com", "Part", "pieces")
    with (
        trio.fail_after(120),
        pytest.raises(EnvTestError, match=r"pieces\.f\.example\.com \(NamesAccepted: .*Part"),
    ):
        async with open_envtest(work_dir=tmp_path / "env", crds=[first, second], start_timeout=25):
            pytest.fail("envtest started with a CRD that cannot be established")


# -- reading CRD sources (no apiserver) ---------------------------------------------------


def test_one_path_may_be_given_without_a_list(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(crd("g.example.com", "One", "ones")))
    assert [d["metadata"]["name"] for d in load_crds(path)] == ["ones.g.example.com"]
    assert [d["metadata"]["name"] for d in load_crds(str(path))] == ["ones.g.example.com"]


def test_folders_are_read_in_name_order_and_not_recursively(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(crd("g.example.com", "Bee", "bees")))
    (tmp_path / "a.json").write_text(yaml.safe_dump(crd("g.example.com", "Ant", "ants")))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text(yaml.safe_dump(crd("g.example.com", "Cat", "cats")))
    assert [d["spec"]["names"]["kind"] for d in load_crds([tmp_path])] == ["Ant", "Bee"]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_text("kind: ConfigMap\n"), "no CustomResourceDefinition in"),
        (lambda p: p.write_text("a: [unclosed\n"), "cannot read CRDs from"),
    ],
)
def test_a_file_without_crds_or_with_bad_yaml_is_refused(
    tmp_path: Path, write: Any, message: str
) -> None:
    path = tmp_path / "x.yaml"
    write(path)
    with pytest.raises(CRDError, match=message):
        load_crds([path])


def test_a_dict_that_is_not_a_crd_is_refused() -> None:
    with pytest.raises(CRDError, match="not a CustomResourceDefinition: kind 'Namespace'"):
        load_crds([{"kind": "Namespace", "metadata": {"name": "x"}}])
