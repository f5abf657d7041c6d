"""Resource names and paths, as the apiserver routes them."""

from __future__ import annotations

import pytest

from trio_controller.api import NAMESPACES, PODS, Resource


def test_core_resources_live_under_api_and_groups_under_apis() -> None:
    widgets = Resource("example.com", "v1", "widgets", "Widget")
    assert PODS.path() == "/api/v1/pods"
    assert PODS.path("default") == "/api/v1/namespaces/default/pods"
    assert PODS.path("default", "web", "status") == "/api/v1/namespaces/default/pods/web/status"
    assert widgets.path("ns", "w1") == "/apis/example.com/v1/namespaces/ns/widgets/w1"
    assert NAMESPACES.path(name="kube-system") == "/api/v1/namespaces/kube-system"


def test_names_are_quoted_and_scope_is_checked() -> None:
    assert PODS.path("default", "a b/c") == "/api/v1/namespaces/default/pods/a%20b%2Fc"
    with pytest.raises(ValueError, match="cluster-scoped"):
        NAMESPACES.path("default")
    with pytest.raises(ValueError, match="object name"):
        PODS.path("default", subresource="status")


def test_display_names_follow_client_go() -> None:
    assert PODS.display == "*v1.Pod"
    assert Resource("example.com", "v1", "widgets", "Widget").display == "*example.com/v1.Widget"
    assert PODS.api_version == "v1"
