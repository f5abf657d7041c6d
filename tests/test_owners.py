"""`controller_reference` / `set_controller_reference`: controller-runtime's
SetControllerReference semantics on plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from trio_controller import (
    NAMESPACES,
    AlreadyOwned,
    TrioControllerError,
    controller_reference,
    set_controller_reference,
)
from trio_controller.api import Resource

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")


def namespace(name: str = "team-a", uid: str = "uid-1") -> dict[str, Any]:
    """A Namespace as a cache holds it after a list: no apiVersion, no kind."""
    return {"metadata": {"name": name, "uid": uid}}


def widget(name: str = "w", ns: str = "apps", uid: str = "uid-w") -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": ns, "uid": uid},
    }


def test_the_controller_reference_names_the_owner_and_blocks_its_deletion() -> None:
    assert controller_reference(namespace(), NAMESPACES) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "name": "team-a",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert controller_reference(widget())["apiVersion"] == "example.com/v1"


def test_an_owner_read_from_a_list_needs_its_resource_and_the_error_says_so() -> None:
    with pytest.raises(ValueError, match="pass its resource"):
        controller_reference(namespace())


def test_an_owner_without_a_uid_is_refused() -> None:
    with pytest.raises(ValueError, match="no name or uid"):
        controller_reference({"metadata": {"name": "x"}}, NAMESPACES)


def test_setting_the_reference_adds_it_and_keeps_other_owners() -> None:
    other = {"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "u"}
    child: dict[str, Any] = {"metadata": {"name": "q", "namespace": "team-a",
                                          "ownerReferences": [other]}}  # fmt: skip
    assert set_controller_reference(child, namespace(), NAMESPACES) is child
    assert child["metadata"]["ownerReferences"] == [
        other,
        controller_reference(namespace(), NAMESPACES),
    ]


def test_setting_it_on_a_body_without_metadata_creates_the_metadata() -> None:
    child: dict[str, Any] = {"kind": "ClusterRole"}
    set_controller_reference(child, namespace(), NAMESPACES)
    assert child["metadata"]["ownerReferences"][0]["name"] == "team-a"


def test_setting_it_again_for_the_same_owner_replaces_it_instead_of_adding_another() -> None:
    child: dict[str, Any] = {"metadata": {"name": "c", "namespace": "apps"}}
    set_controller_reference(child, widget(uid="old"))
    set_controller_reference(child, widget(uid="new"))  # recreated under the same name
    refs = child["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == ["new"]


def test_a_child_controlled_by_another_object_is_refused_with_a_clear_error() -> None:
    child: dict[str, Any] = {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}}
    set_controller_reference(child, widget("first"))
    with pytest.raises(AlreadyOwned, match="already controlled by Widget first") as caught:
        set_controller_reference(child, widget("second"))
    assert isinstance(caught.value, TrioControllerError)
    assert [r["name"] for r in child["metadata"]["ownerReferences"]] == ["first"]


def test_a_namespaced_owner_cannot_own_a_cluster_scoped_object_or_one_elsewhere() -> None:
    with pytest.raises(ValueError, match="cluster-scoped object cannot have"):
        set_controller_reference({"metadata": {"name": "n"}}, widget())
    with pytest.raises(ValueError, match="cannot own an object in namespace other"):
        set_controller_reference({"metadata": {"name": "c", "namespace": "other"}}, widget())


def test_a_cluster_scoped_owner_may_own_an_object_in_any_namespace() -> None:
    child: dict[str, Any] = {"metadata": {"name": "c", "namespace": "team-b"}}
    set_controller_reference(child, namespace(), NAMESPACES)
    assert child["metadata"]["ownerReferences"][0]["kind"] == "Namespace"
