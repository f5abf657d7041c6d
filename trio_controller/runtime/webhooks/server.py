"""The webhook server: admission and conversion webhooks over HTTPS, controller-runtime's way.

    server = WebhookServer(":9443", cert_dir="/tmp/k8s-webhook-server/serving-certs")
    server.add_validating("example.com", "v1", "Widget", check)  # /validate-example-com-v1-widget
    server.add_mutating("example.com", "v1", "Widget", default)  # /mutate-example-com-v1-widget
    server.add_converter("example.com", "Widget", "v1alpha1", "v1", up)  # served on /convert
    await nursery.start(server.run)     # TLS from tls.crt/tls.key, re-read when they change

What a request goes through (each failure one clear answer, the server keeps serving):
POST only (405); a body over `MAX_BODY` (3 MiB) is 413 before anything is read or
parsed; a body that does not arrive within `BODY_TIMEOUT` is 408; a body that is not
JSON, not an AdmissionReview/ConversionReview of the served version, or has no
`request.uid` is 400 with an AdmissionReview (or ConversionReview) saying why. A handler
that raises answers `allowed: false` with code 500 and a short message, its traceback
logged; one that has not answered when the apiserver's timeout (the `timeout` query
parameter, default 10 s) runs out answers `allowed: false`, code 500, "timed out".
Connections: TLS 1.2 or newer, keep-alive, a silent connection closed after
`IDLE_TIMEOUT`; a plain-HTTP request on the TLS port fails its handshake and is closed.

`stats` feeds observe/metrics.py's `WebhookCollector`:
`controller_runtime_webhook_requests_total{webhook,code}`,
`controller_runtime_webhook_latency_seconds{webhook}`,
`controller_runtime_webhook_requests_in_flight{webhook}` (webhook = the path).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import trio

from trio_controller.observe.serving import (
    ASGIApp,
    Response,
    lifespan,
    parse_bind_address,
    send_response,
    serve_asgi,
)
from trio_controller.runtime.webhooks.admission import (
    AdmissionRequest,
    ReviewError,
    Verdict,
    allow,
    errored,
    parse_admission_review,
    review_response,
)
from trio_controller.runtime.webhooks.certs import DEFAULT_CERT_DIR, CertWatcher
from trio_controller.runtime.webhooks.conversion import (
    CONVERSION_API_VERSION,
    Converter,
    Converters,
    conversion_response,
)
from trio_controller.runtime.webhooks.stats import WebhookStats

__all__ = [
    "BODY_TIMEOUT",
    "CONVERT_PATH",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "MAX_BODY",
    "AdmissionHandler",
    "WebhookServer",
    "mutating_path",
    "validating_path",
    "webhook_server_from_args",
]

log = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024  # bytes: the apiserver's largest object is 3 MiB (etcd's limit)
DISCARD_LIMIT = 64 * 1024 * 1024  # bytes of a refused body read (and dropped) before closing
BODY_TIMEOUT = 10.0  # seconds for the whole body once the request head has arrived
DEFAULT_TIMEOUT = 10.0  # the apiserver's default webhook timeout
DEFAULT_PORT = 9443
CONVERT_PATH = "/convert"

AdmissionHandler = Callable[[AdmissionRequest], Any]
_JSON = "application/json"


def _path(prefix: str, group: str, version: str, kind: str) -> str:
    return f"/{prefix}-{group.replace('.', '-')}-{version}-{kind.lower()}"


def validating_path(group: str, version: str, kind: str) -> str:
    """controller-runtime's path: `/validate-<group, dots as dashes>-<version>-<kind>`
    (the core group "" gives `/validate--v1-pod`, as controller-runtime does)."""
    return _path("validate", group, version, kind)


def mutating_path(group: str, version: str, kind: str) -> str:
    """`/mutate-<group, dots as dashes>-<version>-<kind lower case>`."""
    return _path("mutate", group, version, kind)


@dataclass(frozen=True)
class _Admission:
    handler: AdmissionHandler
    mutating: bool


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, *, unread: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.unread = unread  # bytes of body still coming (-1: unknown), None: none


class WebhookServer:
    """Admission and conversion webhooks on one HTTPS address (see the module doc)."""

    def __init__(
        self,
        bind_address: str = f":{DEFAULT_PORT}",
        cert_dir: str | os.PathLike[str] = DEFAULT_CERT_DIR,
        *,
        cert_name: str = "tls.crt",
        key_name: str = "tls.key",
        cert_poll_interval: float = 1.0,
    ) -> None:
        address = parse_bind_address(bind_address)
        if address is None:
            raise ValueError("the webhook server needs a bind address, not 0")
        self.host, self.port = address
        self.certs = CertWatcher(
            cert_dir, cert_name=cert_name, key_name=key_name, interval=cert_poll_interval
        )
        self.converters = Converters()
        self.stats = WebhookStats()
        self.listeners: list[trio.SocketListener] = []
        self._admission: dict[str, _Admission] = {}
        self.stats.register(CONVERT_PATH)

    # -- registration ------------------------------------------------------------------
    def add_admission(self, path: str, handler: AdmissionHandler, *, mutating: bool) -> str:
        """Serve `handler` on `path` (validating unless `mutating`); returns the path."""
        if not path.startswith("/") or path == CONVERT_PATH:
            raise ValueError(f"{path!r} cannot be a webhook path")
        if path in self._admission:
            raise ValueError(f"a webhook is already registered on {path}")
        self._admission[path] = _Admission(handler, mutating)
        self.stats.register(path)
        return path

    def add_validating(self, group: str, version: str, kind: str, handler: AdmissionHandler) -> str:
        """A validating webhook for `kind` on `validating_path(...)`; returns the path."""
        return self.add_admission(validating_path(group, version, kind), handler, mutating=False)

    def add_mutating(self, group: str, version: str, kind: str, handler: AdmissionHandler) -> str:
        """A mutating (defaulting) webhook for `kind` on `mutating_path(...)`."""
        return self.add_admission(mutating_path(group, version, kind), handler, mutating=True)

    def add_converter(
        self, group: str, kind: str, from_version: str, to_version: str, fn: Converter
    ) -> None:
        """Convert `kind` objects of `group` from one version to another on `/convert`."""
        self.converters.add(group, kind, from_version, to_version, fn)

    @property
    def paths(self) -> list[str]:
        """Every path served: the admission webhooks' and `/convert`."""
        return [*self._admission, CONVERT_PATH]

    # -- serving -----------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; `nursery.start` returns once listening (the listeners).
        A missing or invalid certificate, or a port in use, is a `TrioControllerError`."""
        context = self.certs.load()
        async with trio.open_nursery() as nursery:
            self.listeners = await nursery.start(
                serve_asgi, self.host, self.port, self.app, context
            )
            nursery.start_soon(self.certs.watch)
            where = ", ".join(_address(listener) for listener in self.listeners)
            log.info("Serving webhooks %s on https://%s", ", ".join(self.paths), where)
            task_status.started(self.listeners)

    @property
    def app(self) -> ASGIApp:
        """The ASGI application (served over TLS by `run`)."""
        return self._asgi

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        admission = self._admission.get(path)
        if admission is None and path != CONVERT_PATH:
            await send_response(send, Response(404, b"404 page not found\n"))
            return
        started = trio.current_time()
        self.stats.started(path)
        status = 500
        try:
            status, body = await self._serve(scope, receive, admission)
            await send_response(send, Response(status, body, _JSON))
        finally:
            self.stats.finished(path, status, trio.current_time() - started)

    async def _serve(
        self, scope: dict[str, Any], receive: Any, admission: _Admission | None
    ) -> tuple[int, bytes]:
        kind = "AdmissionReview" if admission is not None else "ConversionReview"
        try:
            if scope["method"] != "POST":
                raise _BadRequest(405, f"method {scope['method']} not allowed, use POST")
            body = await _read_body(scope, receive)
            if admission is None:
                return 200, self._convert(body)
            request, api_version = parse_admission_review(body)
        except _BadRequest as bad:
            if bad.unread is not None and bad.unread <= DISCARD_LIMIT:
                await _discard_body(receive)
            return bad.status, orjson.dumps(_refusal(kind, bad.status, bad.message))
        except ReviewError as exc:
            return 400, orjson.dumps(_refusal(kind, 400, str(exc)))
        seconds = _timeout(scope.get("query_string", b""))
        admission_request = AdmissionRequest(request, body)
        review = await self._admit(scope["path"], admission, admission_request, seconds)
        review["apiVersion"] = api_version
        return 200, orjson.dumps(review)

    def _convert(self, body: bytes) -> bytes:
        answer = self.converters.review(body)
        try:
            return orjson.dumps(answer)
        except TypeError as exc:  # a converter put something JSON cannot hold
            log.error("A converter's result is not JSON: %s", exc)
            response = answer["response"]
            failure = f"a converter's result is not JSON: {exc}"
            failed = conversion_response(
                response["uid"], failure=failure, api_version=answer["apiVersion"]
            )
            return orjson.dumps(failed)

    async def _admit(
        self, path: str, admission: _Admission, request: AdmissionRequest, seconds: float
    ) -> dict[str, Any]:
        uid = request.uid
        try:
            with trio.move_on_after(seconds) as scope:
                result = await _call(admission.handler, request)
            if scope.cancelled_caught:
                log.error("Webhook %s did not answer %s within %gs", path, uid, seconds)
                return errored(uid, 500, f"webhook {path} timed out after {seconds:g}s")
            verdict = _verdict(result, mutating=admission.mutating)
            original = request.original_object() if verdict.object is not None else None
            return review_response(uid, verdict, original=original)
        except Exception as exc:
            log.exception("Webhook %s failed for request %s", path, uid)
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            message = f"webhook {path} failed: {type(exc).__name__}" + (
                f": {detail}" if detail else ""
            )
            return errored(uid, 500, message)


def _refusal(kind: str, code: int, message: str) -> dict[str, Any]:
    if kind == "AdmissionReview":
        return errored("", code, message)
    return {
        "apiVersion": CONVERSION_API_VERSION,
        "kind": "ConversionReview",
        "response": {
            "uid": "",
            "convertedObjects": [],
            "result": {"status": "Failure", "message": message, "code": code},
        },
    }


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


async def _read_body(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]]) -> bytes:
    length = _header(scope, b"content-length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_BODY:
        message = f"request body is larger than {MAX_BODY} bytes"
        raise _BadRequest(413, message, unread=int(length))
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(BODY_TIMEOUT) as scope_:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BadRequest(400, "client went away before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                more = -1 if message.get("more_body", False) else None
                raise _BadRequest(413, f"request body is larger than {MAX_BODY} bytes", unread=more)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    if scope_.cancelled_caught:
        raise _BadRequest(408, f"request body not received within {BODY_TIMEOUT:g}s")
    if size == 0:
        raise _BadRequest(400, "request body is empty")
    return b"".join(chunks)


async def _discard_body(receive: Callable[[], Awaitable[Any]]) -> None:
    """Read and drop the rest of a refused body (up to `DISCARD_LIMIT` bytes within
    `BODY_TIMEOUT`) before answering 413: hypercorn closes a connection whose request is
    unfinished when the answer ends, and a client still writing its body would see the
    connection reset instead of the 413. Nothing of it is kept or parsed."""
    dropped = 0
    with trio.move_on_after(BODY_TIMEOUT):
        while dropped <= DISCARD_LIMIT:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            dropped += len(message.get("body", b""))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def _timeout(query: bytes) -> float:
    """The apiserver's `?timeout=10s` (a Go duration such as `1m30s`), else 10 s."""
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name != b"timeout":
            continue
        text = value.decode("latin-1")
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        matches = _DURATION.findall(text)
        if matches and "".join(n + u for n, u in matches) == text:
            seconds = sum(float(n) * units[u] for n, u in matches)
            if seconds > 0:
                return seconds
    return DEFAULT_TIMEOUT


async def _call(handler: AdmissionHandler, request: AdmissionRequest) -> Any:
    result = handler(request)
    if inspect.isawaitable(result):
        result = await result
    return result


def _verdict(result: Any, *, mutating: bool) -> Verdict:
    if result is None:
        return allow()
    if isinstance(result, Verdict):
        if result.object is not None and not mutating:
            raise TypeError("a validating webhook cannot change the object")
        return result
    if mutating and isinstance(result, dict):
        return Verdict(True, object=result)
    expected = "an object, a Verdict or None" if mutating else "a Verdict or None"
    raise TypeError(f"the handler returned {type(result).__name__}, not {expected}")


def _address(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- from the Manager's flags (runtime/flags.py) ------------------------------------


def webhook_server_from_args(args: argparse.Namespace) -> WebhookServer | None:
    """The server the flags ask for, None when `--webhook-bind-address` was not given."""
    if args.webhook_bind_address is None:
        return None
    return WebhookServer(args.webhook_bind_address, args.webhook_cert_dir)
