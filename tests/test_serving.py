"""The serving stack under the metrics and probe routes and the webhook server: hypercorn
loaded only when a server starts, a slow client closed while others are served, a route
that raises, and TLS with a context of the caller's."""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from trio_controller.observe.serving import (
    IDLE_TIMEOUT,
    Response,
    format_address,
    routes_app,
    serve_asgi,
    serve_http,
)
from trio_controller.testing import write_serving_cert


def test_importing_the_library_and_the_program_does_not_load_hypercorn() -> None:
    code = (
        "import sys, trio_controller, trio_controller.programs.pods.cli, "
        "trio_controller.observe.health, trio_controller.runtime.webhooks, "
        "trio_controller.testing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hypercorn', 'jsonpatch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_client_that_never_finishes_its_request_is_closed_and_others_are_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    routes = {"/healthz": lambda q: Response(200, b"ok")}
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(serve_http, "127.0.0.1", 0, routes)
        port = listener.socket.getsockname()[1]
        slow = await trio.open_tcp_stream("127.0.0.1", port)
        await slow.send_all(b"GET /healthz HTTP/1.1\r\nHo")
        other = await trio.open_tcp_stream("127.0.0.1", port)
        await other.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := await other.receive_some():
            answer += chunk
        start = trio.current_time()
        with trio.fail_after(IDLE_TIMEOUT * 2):
            rest = await slow.receive_some()
        closed_after = trio.current_time() - start
        await slow.aclose()
        await other.aclose()
        nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    assert rest == b""
    assert 0 < closed_after <= IDLE_TIMEOUT


async def test_a_route_that_raises_is_500_with_one_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(query: object) -> Response:
        raise RuntimeError("no")

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            serve_http, "127.0.0.1", 0, {"/x": broken, "/y": lambda q: Response(200, b"y")}
        )
        async with httpx.AsyncClient(base_url=f"http://{format_address(listener)}") as http:
            with caplog.at_level(logging.ERROR):
                failed = await http.get("/x")
            fine = await http.get("/y?verbose")
        nursery.cancel_scope.cancel()
    assert failed.status_code == 500
    assert [r.getMessage() for r in caplog.records] == ["Serving /x failed"]
    assert caplog.records[0].exc_info is not None
    assert fine.text == "y"


async def test_any_asgi_app_is_served_over_tls_with_the_callers_context(tmp_path: Path) -> None:
    cert = write_serving_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert_file, cert.key_file)
    app = routes_app({"/readyz": lambda q: Response(200, b"ready")})
    client_context = ssl.create_default_context(cadata=cert.ca_pem.decode())
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(serve_asgi, "127.0.0.1", 0, app, context)
        port = listener.socket.getsockname()[1]
        async with httpx.AsyncClient(verify=client_context) as http:
            answer = await http.get(f"https://127.0.0.1:{port}/readyz")
        nursery.cancel_scope.cancel()
    assert answer.text == "ready"


async def test_one_keep_alive_connection_serves_more_than_a_thousand_requests() -> None:
    routes = {"/healthz": lambda q: Response(200, b"ok")}
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answered = 0
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(serve_http, "127.0.0.1", 0, routes)
        stream = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
        async with stream:
            for _ in range(1200):  # hypercorn's own default closes after 1000
                await stream.send_all(request)
                data = b""
                while not data.endswith(b"\r\n\r\nok"):
                    chunk = await stream.receive_some()
                    if not chunk:
                        break
                    data += chunk
                if not data.endswith(b"ok"):
                    break
                answered += 1
        nursery.cancel_scope.cancel()
    assert answered == 1200
