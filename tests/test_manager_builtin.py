"""The generated constants of built-in kinds (api/builtin.py) and the hand-written ones
agree, and are importable from the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import trio_controller
from trio_controller.api import builtin, resource

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gen_builtin_resources.py"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_builtin_resources", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hand_written_constants_are_the_generated_ones() -> None:
    for name in ("PODS", "CONFIGMAPS", "SECRETS", "SERVICES", "NAMESPACES", "DEPLOYMENTS",
                 "LEASES", "EVENTS", "CUSTOM_RESOURCE_DEFINITIONS"):  # fmt: skip
        assert getattr(resource, name) == getattr(builtin, name), name


def test_every_built_in_kind_is_importable_from_the_package() -> None:
    from trio_controller import RESOURCE_QUOTAS, STATEFUL_SETS

    assert RESOURCE_QUOTAS.path(namespace="a") == "/api/v1/namespaces/a/resourcequotas"
    assert STATEFUL_SETS.api_version == "apps/v1"
    for name in builtin.__all__:
        assert getattr(trio_controller, name) == getattr(builtin, name)


def test_constant_names_follow_the_kind_and_the_plural() -> None:
    constant = _generator().constant
    assert constant("ResourceQuota", "resourcequotas") == "RESOURCE_QUOTAS"
    assert constant("NetworkPolicy", "networkpolicies") == "NETWORK_POLICIES"
    assert constant("Endpoints", "endpoints") == "ENDPOINTS"
    assert constant("Ingress", "ingresses") == "INGRESSES"
    assert constant("CSIDriver", "csidrivers") == "CSI_DRIVERS"
    assert constant("IPAddress", "ipaddresses") == "IP_ADDRESSES"


def test_cluster_scoped_kinds_are_marked() -> None:
    assert not builtin.NODES.namespaced and not builtin.CLUSTER_ROLES.namespaced
    assert builtin.ROLES.namespaced
