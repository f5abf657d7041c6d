"""The Widget's webhooks: validation, defaulting and conversion (examples/widget_operator.py
serves them when `--webhook-bind-address` is given).

    add_webhook_flags(parser)                  # --webhook-bind-address, --webhook-cert-dir
    server = widget_webhook_server(args)       # None unless --webhook-bind-address was given
    if server is not None:
        await nursery.start(server.run)        # or manager.add_runnable(server.run)

    # or by hand:
    server = WebhookServer(":9443", cert_dir)
    add_widget_webhooks(server)
    # /validate-example-com-v1-widget, /mutate-example-com-v1-widget, /convert

- validation on create and update: `spec.message` a non-empty string of at most 253
  characters; `spec.replicas`, when present, an integer from 0 to 10. A denial names the
  field (`spec.message: ...`, `spec.replicas: ...`). Deletes are always allowed.
- defaulting on create: a Widget without `spec.replicas` gets `spec.replicas: 1`.
- conversion between example.com/v1alpha1 (`spec.text`, `spec.replicas`) and
  example.com/v1 (`spec.message`, `spec.replicas`), both ways, every other field kept.
"""

from __future__ import annotations

import argparse
from typing import Any

from trio_controller.runtime.webhooks import (
    AdmissionRequest,
    Verdict,
    WebhookServer,
    allow,
    deny,
    webhook_server_from_args,
)

GROUP = "example.com"
KIND = "Widget"
MAX_MESSAGE = 253
MAX_REPLICAS = 10
DEFAULT_REPLICAS = 1


def message_field(obj: dict[str, Any]) -> str:
    """`message` in v1, `text` in v1alpha1."""
    return "text" if str(obj.get("apiVersion", "")).endswith("/v1alpha1") else "message"


def validate_widget(request: AdmissionRequest) -> Verdict:
    """Allow a Widget whose message and replicas are valid; deletes always."""
    if request.operation not in ("CREATE", "UPDATE"):
        return allow()
    obj = request.object or {}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    name = message_field(obj)
    message = spec.get(name)
    if not isinstance(message, str) or not message:
        return deny(f"spec.{name}: must be a non-empty string")
    if len(message) > MAX_MESSAGE:
        return deny(f"spec.{name}: must be at most {MAX_MESSAGE} characters, not {len(message)}")
    if "replicas" in spec:
        replicas = spec["replicas"]
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            return deny(f"spec.replicas: must be an integer from 0 to {MAX_REPLICAS}")
        if not 0 <= replicas <= MAX_REPLICAS:
            return deny(f"spec.replicas: must be from 0 to {MAX_REPLICAS}, not {replicas}")
    return allow()


def default_widget(request: AdmissionRequest) -> dict[str, Any] | None:
    """On create, `spec.replicas: 1` when absent; nothing otherwise."""
    if request.operation != "CREATE":
        return None
    obj = request.object
    if obj is None:
        return None
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    if not isinstance(spec, dict) or "replicas" in spec:
        return None
    spec["replicas"] = DEFAULT_REPLICAS
    return obj


def _rename(obj: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    spec = obj.get("spec")
    if isinstance(spec, dict) and old in spec:
        renamed = {}
        for key, value in spec.items():  # same place in the spec, other fields as they were
            renamed[new if key == old else key] = value
        obj["spec"] = renamed
    return obj


def v1alpha1_to_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """`spec.text` becomes `spec.message`."""
    return _rename(obj, "text", "message")


def v1_to_v1alpha1(obj: dict[str, Any]) -> dict[str, Any]:
    """`spec.message` becomes `spec.text`."""
    return _rename(obj, "message", "text")


def add_widget_webhooks(server: WebhookServer) -> list[str]:
    """Register the Widget's validating, mutating and conversion webhooks; the paths."""
    return [
        server.add_validating(GROUP, "v1", KIND, validate_widget),
        server.add_mutating(GROUP, "v1", KIND, default_widget),
        *_converters(server),
    ]


def widget_webhook_server(args: argparse.Namespace) -> WebhookServer | None:
    """The webhook server with the Widget's webhooks, from the flags `add_webhook_flags`
    adds; None when `--webhook-bind-address` was not given (webhooks off)."""
    server = webhook_server_from_args(args)
    if server is not None:
        add_widget_webhooks(server)
    return server


def _converters(server: WebhookServer) -> list[str]:
    server.add_converter(GROUP, KIND, "v1alpha1", "v1", v1alpha1_to_v1)
    server.add_converter(GROUP, KIND, "v1", "v1alpha1", v1_to_v1alpha1)
    return ["/convert"]
