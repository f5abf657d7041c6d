"""The webhook server's answers, request by request, at its ASGI edge (no sockets): the
reviews in and out, every bad input, a handler that raises or hangs, the metrics, the
path convention and the flags. TLS and the connection behaviour are in
test_webhook_tls.py; the apiserver's side in tests/e2e/test_webhooks_e2e.py."""

from __future__ import annotations

import argparse
import base64
import logging
from collections.abc import Iterable
from typing import Any

import jsonpatch
import orjson
import pytest
import trio
import trio.lowlevel
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from trio_controller.observe.metrics import WebhookCollector
from trio_controller.runtime.flags import add_webhook_flags
from trio_controller.runtime.webhooks import (
    AdmissionRequest,
    WebhookServer,
    allow,
    deny,
    mutating_path,
    patched,
    validating_path,
    webhook_server_from_args,
)
from trio_controller.runtime.webhooks.server import BODY_TIMEOUT, MAX_BODY

VALIDATE = "/validate-example-com-v1-widget"
MUTATE = "/mutate-example-com-v1-widget"


def review(
    obj: Any = None, *, uid: str = "uid-1", operation: str = "CREATE", **extra: Any
) -> bytes:
    request = {"uid": uid, "operation": operation, "object": obj, **extra}
    return orjson.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    )


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = b""

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message["headers"])
        else:
            self.body += message.get("body", b"")

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def response(self) -> dict[str, Any]:
        value: dict[str, Any] = self.json["response"]
        return value


async def call(
    server: WebhookServer,
    path: str,
    body: bytes | Iterable[bytes] = b"",
    *,
    method: str = "POST",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    stall: bool = False,
) -> Answer:
    """One request through the server's ASGI app; `body` as one chunk or as chunks;
    `stall`: the body never finishes."""
    chunks = [body] if isinstance(body, bytes) else list(body)
    received: list[int] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks) or stall}
        await trio.sleep_forever()
        raise AssertionError

    if headers is None and isinstance(body, bytes):
        headers = [(b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": headers or [],
    }
    answer = Answer()
    await server.app(scope, receive, answer.send)
    answer.received = len(received)  # type: ignore[attr-defined]
    return answer


def widget(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def server_with(validate: Any = None, mutate: Any = None) -> WebhookServer:
    server = WebhookServer("127.0.0.1:0", "/nonexistent")
    if validate is not None:
        server.add_validating("example.com", "v1", "Widget", validate)
    if mutate is not None:
        server.add_mutating("example.com", "v1", "Widget", mutate)
    return server


# -- admission -------------------------------------------------------------------------


async def test_a_denial_answers_the_uid_with_403_its_message_and_warnings() -> None:
    server = server_with(lambda r: deny("spec.message: required", warnings=["careful"]))
    answer = await call(server, VALIDATE, review(widget({})))
    assert answer.status == 200
    assert answer.headers[b"content-type"] == b"application/json"
    assert answer.json["apiVersion"] == "admission.k8s.io/v1"
    assert answer.json["kind"] == "AdmissionReview"
    assert answer.response == {
        "uid": "uid-1",
        "allowed": False,
        "status": {
            "code": 403,
            "message": "spec.message: required",
            "reason": "Forbidden",
            "status": "Failure",
        },
        "warnings": ["careful"],
    }


async def test_an_async_handler_allows_with_warnings_and_none_means_allowed() -> None:
    async def validate(request: AdmissionRequest) -> Any:
        await trio.lowlevel.checkpoint()
        return allow(warnings=[f"seen {request.operation} of {request.object['metadata']['name']}"])

    warned = await call(server_with(validate), VALIDATE, review(widget({})))
    silent = await call(server_with(lambda r: None), VALIDATE, review(widget({})))
    assert warned.response == {"uid": "uid-1", "allowed": True, "warnings": ["seen CREATE of w"]}
    assert silent.response == {"uid": "uid-1", "allowed": True}


async def test_the_request_fields_reach_the_handler() -> None:
    seen: dict[str, Any] = {}

    def validate(request: AdmissionRequest) -> None:
        seen.update(
            uid=request.uid,
            operation=request.operation,
            name=request.name,
            namespace=request.namespace,
            kind=request.kind,
            user=request.user_info.get("username"),
            dry_run=request.dry_run,
            old=request.old_object,
            new=request.object,
        )

    body = review(
        None,
        operation="DELETE",
        name="w",
        namespace="ns",
        kind={"group": "example.com", "version": "v1", "kind": "Widget"},
        userInfo={"username": "alice"},
        dryRun=True,
        oldObject=widget({"message": "bye"}),
    )
    await call(server_with(validate), VALIDATE, body)
    assert seen == {
        "uid": "uid-1",
        "operation": "DELETE",
        "name": "w",
        "namespace": "ns",
        "kind": {"group": "example.com", "version": "v1", "kind": "Widget"},
        "user": "alice",
        "dry_run": True,
        "old": widget({"message": "bye"}),
        "new": None,
    }


def apply(patch_b64: str, obj: dict[str, Any]) -> Any:
    ops = orjson.loads(base64.b64decode(patch_b64))
    return jsonpatch.apply_patch(obj, ops)


async def test_a_mutating_handler_changing_the_object_in_place_gets_the_json_patch() -> None:
    def default(request: AdmissionRequest) -> Any:
        obj = request.object
        assert obj is not None
        obj["spec"]["replicas"] = 1
        obj["metadata"].setdefault("labels", {})["a/b~c"] = "x"
        return obj

    original = widget({"message": "hi"})
    answer = await call(server_with(mutate=default), MUTATE, review(original))
    assert answer.response["allowed"] is True
    assert answer.response["patchType"] == "JSONPatch"
    result = apply(answer.response["patch"], original)
    assert result["spec"] == {"message": "hi", "replicas": 1}
    assert result["metadata"]["labels"] == {"a/b~c": "x"}


async def test_a_mutating_handler_returning_the_same_object_or_none_sends_no_patch() -> None:
    same = await call(server_with(mutate=lambda r: r.object), MUTATE, review(widget({"a": 1})))
    none = await call(server_with(mutate=lambda r: None), MUTATE, review(widget({"a": 1})))
    assert same.response == {"uid": "uid-1", "allowed": True}
    assert none.response == {"uid": "uid-1", "allowed": True}


async def test_a_mutating_handler_may_patch_with_warnings_or_deny() -> None:
    def default(request: AdmissionRequest) -> Any:
        return patched({**widget({}), "spec": {"replicas": 1}}, warnings=["defaulted"])

    warned = await call(server_with(mutate=default), MUTATE, review(widget({})))
    denied = await call(server_with(mutate=lambda r: deny("no")), MUTATE, review(widget({})))
    assert warned.response["warnings"] == ["defaulted"]
    assert apply(warned.response["patch"], widget({}))["spec"] == {"replicas": 1}
    assert denied.response["allowed"] is False
    assert denied.response["status"]["message"] == "no"


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not JSON"),
        (b"", "request body is empty"),
        (b"[1, 2]", "request body is not an AdmissionReview"),
        (orjson.dumps({"apiVersion": "v1", "kind": "Pod"}), "not an AdmissionReview (kind 'Pod')"),
        (
            orjson.dumps({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}),
            "apiVersion 'admission.k8s.io/v2' is not served",
        ),
        (
            orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
            "AdmissionReview has no request",
        ),
        (review(widget({}), uid=""), "request.uid is missing"),
        (
            orjson.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
            ),
            "request.uid is missing",
        ),
    ],
)
async def test_a_body_that_is_not_an_admission_review_is_400_saying_why(
    body: bytes, message: str
) -> None:
    called: list[AdmissionRequest] = []
    server = server_with(called.append)
    answer = await call(server, VALIDATE, body)
    assert answer.status == 400
    assert answer.response["allowed"] is False
    assert answer.response["status"]["code"] == 400
    assert message in answer.response["status"]["message"]
    assert called == []
    ok = await call(server, VALIDATE, review(widget({})))  # and the next one is served
    assert ok.response["allowed"] is True


async def test_a_body_over_3_mib_is_413_and_never_parsed() -> None:
    called: list[AdmissionRequest] = []
    server = server_with(called.append)
    announced = await call(
        server,
        VALIDATE,
        [b"x"],
        headers=[(b"content-length", str(MAX_BODY + 1).encode())],
    )
    streamed = await call(server, VALIDATE, [b" " * (1024 * 1024)] * 4, headers=[])
    assert announced.status == 413
    assert announced.received == 1  # type: ignore[attr-defined]  # dropped, so the client reads the 413
    assert "larger than 3145728 bytes" in announced.response["status"]["message"]
    assert streamed.status == 413
    assert streamed.received == 4  # type: ignore[attr-defined]  # stopped at the limit
    assert called == []


async def test_a_body_that_never_finishes_is_408_after_the_body_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = server_with(lambda r: None)
    start = trio.current_time()
    answer = await call(server, VALIDATE, [b'{"apiVersion":'], headers=[], stall=True)
    assert answer.status == 408
    assert trio.current_time() - start == pytest.approx(BODY_TIMEOUT)


async def test_only_post_is_served_and_unknown_paths_are_404() -> None:
    server = server_with(lambda r: None)
    get = await call(server, VALIDATE, method="GET")
    unknown = await call(server, "/validate-nothing", review(widget({})))
    assert get.status == 405
    assert unknown.status == 404


async def test_a_handler_that_raises_answers_500_logs_the_traceback_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def validate(request: AdmissionRequest) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("spec")
        return allow()

    server = server_with(validate)
    with caplog.at_level(logging.ERROR):
        failed = await call(server, VALIDATE, review(widget({})))
    ok = await call(server, VALIDATE, review(widget({}), uid="uid-2"))
    assert failed.status == 200
    assert failed.response["uid"] == "uid-1"
    assert failed.response["allowed"] is False
    assert failed.response["status"]["code"] == 500
    assert failed.response["status"]["message"] == f"webhook {VALIDATE} failed: KeyError: 'spec'"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert ok.response == {"uid": "uid-2", "allowed": True}


async def test_a_validating_handler_returning_an_object_is_a_500_not_a_patch() -> None:
    answer = await call(server_with(lambda r: r.object), VALIDATE, review(widget({})))
    assert answer.response["allowed"] is False
    assert answer.response["status"]["code"] == 500
    assert "not a Verdict or None" in answer.response["status"]["message"]


async def test_a_handler_that_hangs_answers_at_the_apiservers_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hang(request: AdmissionRequest) -> None:
        await trio.sleep_forever()

    server = server_with(hang)
    start = trio.current_time()
    given = await call(server, VALIDATE, review(widget({})), query=b"timeout=3s")
    given_at = trio.current_time() - start
    default = await call(server, VALIDATE, review(widget({})), query=b"")
    default_at = trio.current_time() - start - given_at
    assert "timed out after 10s" in default.response["status"]["message"]
    assert given.status == 200
    assert given.response["allowed"] is False
    assert given.response["status"]["code"] == 500
    assert given.response["status"]["message"] == f"webhook {VALIDATE} timed out after 3s"
    assert given_at == pytest.approx(3.0)
    assert default_at == pytest.approx(10.0)


# -- metrics -----------------------------------------------------------------------------


async def test_requests_latency_and_in_flight_are_counted_per_webhook_and_code(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()

    async def slow(request: AdmissionRequest) -> None:
        await release.wait()

    server = server_with(slow)
    registry = CollectorRegistry()
    registry.register(WebhookCollector(server.stats))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, server, VALIDATE, review(widget({})))
        await trio.sleep(1.5)
        during = generate_latest(registry).decode()
        release.set()
    await call(server, VALIDATE, b"nope")
    after = generate_latest(registry).decode()
    flight = "controller_runtime_webhook_requests_in_flight"
    assert f'{flight}{{webhook="{VALIDATE}"}} 1.0' in during
    assert f'{flight}{{webhook="{VALIDATE}"}} 0.0' in after
    assert f'{flight}{{webhook="/convert"}} 0.0' in after
    total = "controller_runtime_webhook_requests_total"
    assert f'{total}{{code="200",webhook="{VALIDATE}"}} 1.0' in after
    assert f'{total}{{code="400",webhook="{VALIDATE}"}} 1.0' in after
    latency = "controller_runtime_webhook_latency_seconds"
    assert f'{latency}_bucket{{le="1.0",webhook="{VALIDATE}"}} 1.0' in after
    assert f'{latency}_bucket{{le="2.5",webhook="{VALIDATE}"}} 2.0' in after
    assert f'{latency}_count{{webhook="{VALIDATE}"}} 2.0' in after


# -- paths and flags ---------------------------------------------------------------------


def test_paths_follow_controller_runtimes_convention() -> None:
    assert validating_path("example.com", "v1", "Widget") == "/validate-example-com-v1-widget"
    assert mutating_path("apps", "v1", "Deployment") == "/mutate-apps-v1-deployment"
    assert validating_path("", "v1", "Pod") == "/validate--v1-pod"
    server = server_with(lambda r: None, lambda r: None)
    assert server.paths == [VALIDATE, MUTATE, "/convert"]
    with pytest.raises(ValueError, match="already registered"):
        server.add_validating("example.com", "v1", "Widget", lambda r: None)


def test_the_flags_build_a_server_only_when_a_bind_address_is_given(tmp_path: Any) -> None:
    parser = argparse.ArgumentParser()
    add_webhook_flags(parser)
    off = webhook_server_from_args(parser.parse_args([]))
    zero = webhook_server_from_args(parser.parse_args(["--webhook-bind-address", "0"]))
    on = webhook_server_from_args(
        parser.parse_args(["--webhook-bind-address", ":9443", "--webhook-cert-dir", str(tmp_path)])
    )
    assert off is None and zero is None
    assert on is not None
    assert (on.host, on.port) == (None, 9443)
    assert on.certs.cert_path == tmp_path / "tls.crt"
    assert on.certs.key_path == tmp_path / "tls.key"
    with pytest.raises(SystemExit):
        parser.parse_args(["--webhook-bind-address", "nonsense"])


async def test_a_v1beta1_review_is_answered_in_v1beta1() -> None:
    body = orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1beta1",
            "kind": "AdmissionReview",
            "request": {"uid": "old-1", "operation": "CREATE", "object": widget({})},
        }
    )
    answer = await call(server_with(lambda r: deny("no")), VALIDATE, body)
    assert answer.json["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer.response["uid"] == "old-1" and answer.response["allowed"] is False


async def test_a_converter_returning_something_json_cannot_hold_fails_the_review() -> None:
    server = WebhookServer("127.0.0.1:0", "/nonexistent")
    server.add_converter("example.com", "Widget", "v1", "v2", lambda o: {**o, "spec": {1j}})
    body = orjson.dumps(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {
                "uid": "c",
                "desiredAPIVersion": "example.com/v2",
                "objects": [widget({})],
            },
        }
    )
    answer = await call(server, "/convert", body)
    assert answer.status == 200
    assert answer.response["uid"] == "c"
    assert answer.response["result"]["status"] == "Failure"
    assert "not JSON" in answer.response["result"]["message"]


async def test_a_body_that_is_not_a_conversion_review_is_400_on_convert() -> None:
    server = WebhookServer("127.0.0.1:0", "/nonexistent")
    answer = await call(server, "/convert", b'{"kind": "AdmissionReview"}')
    assert answer.status == 400
    assert answer.json["kind"] == "ConversionReview"
    assert answer.response["result"]["status"] == "Failure"
    assert "not a ConversionReview" in answer.response["result"]["message"]
