"""examples/widget_webhooks.py's handlers on their own: what is allowed, denied (naming the
field), defaulted and converted. The same handlers behind the apiserver are in
tests/e2e/test_webhooks_e2e.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

from trio_controller.runtime.flags import add_webhook_flags
from trio_controller.runtime.webhooks import AdmissionRequest, WebhookServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from widget_webhooks import (
    add_widget_webhooks,
    default_widget,
    v1_to_v1alpha1,
    v1alpha1_to_v1,
    validate_widget,
    widget_webhook_server,
)


def request(operation: str, spec: Any, version: str = "v1") -> AdmissionRequest:
    obj = {"apiVersion": f"example.com/{version}", "kind": "Widget", "metadata": {"name": "w"}}
    if spec is not None:
        obj["spec"] = spec
    raw = {"uid": "u", "operation": operation, "object": None if operation == "DELETE" else obj}
    return AdmissionRequest(raw, b"")


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"message": "hi"}, None),
        ({"message": "x" * 253, "replicas": 0}, None),
        ({"message": "hi", "replicas": 10}, None),
        ({"message": ""}, "spec.message: must be a non-empty string"),
        ({}, "spec.message: must be a non-empty string"),
        (None, "spec.message: must be a non-empty string"),
        ({"message": 7}, "spec.message: must be a non-empty string"),
        ({"message": "x" * 254}, "spec.message: must be at most 253 characters, not 254"),
        ({"message": "hi", "replicas": 11}, "spec.replicas: must be from 0 to 10, not 11"),
        ({"message": "hi", "replicas": -1}, "spec.replicas: must be from 0 to 10, not -1"),
        ({"message": "hi", "replicas": "3"}, "spec.replicas: must be an integer from 0 to 10"),
        ({"message": "hi", "replicas": True}, "spec.replicas: must be an integer from 0 to 10"),
        ({"message": "hi", "replicas": 1.5}, "spec.replicas: must be an integer from 0 to 10"),
    ],
)
def test_validation_allows_or_denies_naming_the_field(
    operation: str, spec: Any, message: str | None
) -> None:
    verdict = validate_widget(request(operation, spec))
    assert verdict.allowed is (message is None)
    assert verdict.message == (message or "")
    if message is not None:
        assert verdict.code == 403


def test_a_v1alpha1_widget_is_checked_on_its_text_field() -> None:
    verdict = validate_widget(request("CREATE", {"text": ""}, "v1alpha1"))
    assert verdict.message == "spec.text: must be a non-empty string"
    assert validate_widget(request("CREATE", {"text": "t"}, "v1alpha1")).allowed


def test_deletes_are_always_allowed() -> None:
    assert validate_widget(request("DELETE", {"message": ""})).allowed


def test_a_created_widget_without_replicas_gets_one_and_others_are_left_alone() -> None:
    defaulted = default_widget(request("CREATE", {"message": "m"}))
    no_spec = default_widget(request("CREATE", None))
    assert defaulted is not None and defaulted["spec"] == {"message": "m", "replicas": 1}
    assert no_spec is not None and no_spec["spec"] == {"replicas": 1}
    assert default_widget(request("CREATE", {"message": "m", "replicas": 0})) is None
    assert default_widget(request("UPDATE", {"message": "m"})) is None


def test_conversion_renames_the_message_both_ways_and_keeps_every_other_field() -> None:
    alpha = {
        "apiVersion": "example.com/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"text": "t", "replicas": 3, "extra": [1]},
        "status": {"observedGeneration": 2},
    }
    v1 = v1alpha1_to_v1(_copy(alpha))
    assert v1["spec"] == {"message": "t", "replicas": 3, "extra": [1]}
    assert {k: v for k, v in v1.items() if k != "spec"} == {
        k: v for k, v in alpha.items() if k != "spec"
    }
    assert v1_to_v1alpha1(v1) == alpha


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(obj)


def test_the_registration_serves_the_three_paths() -> None:
    server = WebhookServer("127.0.0.1:0", "/nonexistent")
    assert add_widget_webhooks(server) == [
        "/validate-example-com-v1-widget",
        "/mutate-example-com-v1-widget",
        "/convert",
    ]
    assert server.paths == [
        "/validate-example-com-v1-widget",
        "/mutate-example-com-v1-widget",
        "/convert",
    ]


def test_the_flags_give_a_server_with_the_widget_webhooks_only_when_asked(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_webhook_flags(parser)
    off = widget_webhook_server(parser.parse_args([]))
    on = widget_webhook_server(
        parser.parse_args(
            ["--webhook-bind-address", "127.0.0.1:9443", "--webhook-cert-dir", str(tmp_path)]
        )
    )
    assert off is None
    assert on is not None and (on.host, on.port) == ("127.0.0.1", 9443)
    assert on.paths == [
        "/validate-example-com-v1-widget",
        "/mutate-example-com-v1-widget",
        "/convert",
    ]
    assert on.certs.cert_path == tmp_path / "tls.crt"
