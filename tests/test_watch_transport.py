"""The owned watch transport (transport/watch.py, transport/connection.py) against the
scripted server: framing, statuses, idle timeouts, TLS, proxies, credentials.

Every test here is fault injection or its harness (tests/streamserver.py frames a watch
as the apiserver does: one HTTP chunk per piece, and over TLS one record per chunk);
the same transport against the real apiserver is in tests/e2e/test_watch_e2e.py.
"""

from __future__ import annotations

import gc
import logging
import socket
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers.certs import CA, Pair
from streamserver import Close, Pause, Reply, Request, Stall, WaitFor, open_stream_server

from trio_controller._native import BodyDecoder
from trio_controller.auth import BearerTokenAuth, ExecAuth, ExecConfig, TokenFileAuth
from trio_controller.config import ClusterConfig, TLSConfig
from trio_controller.errors import (
    ApiError,
    ConnectionFailed,
    Forbidden,
    Gone,
    ServerError,
    Timeout,
    TLSError,
    TooManyRequests,
    Unauthorized,
)
from trio_controller.transport import connection, tls
from trio_controller.transport.client import Client
from trio_controller.transport.watch import WatchBody

PODS = "/api/v1/namespaces/default/pods"
SECRET = "s3cr3t-watch-token"


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Virtual time that jumps only after 50 ms of real idleness: loopback I/O must
    # finish before the clock skips ahead to the next timeout.
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def server_pair(ca: CA) -> Pair:
    return ca.issue("apiserver", server=True, dns=("kubernetes.local",), ips=("127.0.0.1",))


@pytest.fixture(params=["rustls", "openssl"])
def tls_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a TLS test on both watch TLS paths (transport/tls.py's NATIVE_TLS switch) and
    checks afterwards that every watch handshake went the chosen way."""
    native = request.param == "rustls"
    monkeypatch.setattr(tls, "NATIVE_TLS", native)
    taken: list[bool] = []

    def spy(ctx: Any) -> Any:
        found = tls.native_config(ctx)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(connection, "native_config", spy)
    yield request.param
    assert all(t == native for t in taken), taken


def config(url: str, **kw: Any) -> ClusterConfig:
    return ClusterConfig(server=url, **kw)


async def drain(body: WatchBody, first: bytes = b"") -> tuple[bytes, bool]:
    """The de-framed payload of a watch body (after `first`, bytes already received) and
    whether it ended properly."""
    decoder = BodyDecoder(body.chunked, body.content_length)
    out = decoder.feed(first)
    while not decoder.done:
        data = await body.receive()
        if not data:
            break
        out += decoder.feed(data)
    return out, decoder.done


# -- the exchange --------------------------------------------------------------------------


async def test_a_watch_body_arrives_as_the_server_sends_it() -> None:
    go = trio.Event()
    reply = Reply.chunks([b'{"type":"ADDED"', b"}\n", WaitFor(go), b'{"type":"BOOKMARK"}\n'])
    async with (
        open_stream_server(reply) as server,
        Client(config(server.url)) as client,
        client.watch(PODS, {"watch": True}, idle_timeout=10) as body,
    ):
        assert body.status_code == 200 and body.chunked
        first = await body.receive()
        go.set()
        payload = await drain(body, first)
    assert first.startswith(b'f\r\n{"type":"ADDED"')  # the server's first chunk, framed
    assert payload == (b'{"type":"ADDED"}\n{"type":"BOOKMARK"}\n', True)
    request = server.requests[0]
    assert request.param("watch") == "true"
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["user-agent"].startswith("trio-controller/")


async def test_the_bearer_token_is_sent_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    replies = [Reply.chunks([b"{}\n"]), Reply.failure(403, "Forbidden", "no")]
    with caplog.at_level(logging.DEBUG):
        async with (
            open_stream_server(*replies) as server,
            Client(config(server.url, auth=BearerTokenAuth(SECRET))) as client,
        ):
            async with client.watch(PODS, idle_timeout=10) as body:
                await drain(body)
            with pytest.raises(Forbidden) as info:
                async with client.watch(PODS, idle_timeout=10):
                    pass
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in str(info.value)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_a_body_with_content_length_instead_of_chunks_is_read_to_its_length() -> None:
    reply = Reply(200, b'{"type":"BOOKMARK"}\n')
    async with (
        open_stream_server(reply) as server,
        Client(config(server.url)) as client,
        client.watch(PODS, idle_timeout=10) as body,
    ):
        assert not body.chunked and body.content_length == 20
        assert await drain(body) == (b'{"type":"BOOKMARK"}\n', True)


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (401, "Unauthorized", Unauthorized),
        (403, "Forbidden", Forbidden),
        (410, "Expired", Gone),
        (429, "TooManyRequests", TooManyRequests),
        (500, "InternalError", ServerError),
    ],
)
async def test_error_statuses_with_status_bodies_raise_their_api_error(
    code: int, reason: str, cls: type[ApiError]
) -> None:
    reply = Reply.failure(code, reason, f"the {reason} message", headers=[("Retry-After", "7")])
    async with open_stream_server(reply) as server, Client(config(server.url)) as client:
        with pytest.raises(cls) as info:
            async with client.watch(PODS, idle_timeout=10):
                raise AssertionError("must not be reached")
    assert info.value.status == code
    assert f"the {reason} message" in str(info.value)
    if code == 429:
        assert isinstance(info.value, TooManyRequests) and info.value.retry_after == 7.0


async def test_a_chunked_error_body_is_read_as_well() -> None:
    status = Reply.failure(410, "Expired", "too old resource version: 1 (9)").body
    assert isinstance(status, bytes)
    reply = Reply.chunks([status[:20], status[20:]], status=410)
    async with open_stream_server(reply) as server, Client(config(server.url)) as client:
        with pytest.raises(Gone, match="too old resource version"):
            async with client.watch(PODS, idle_timeout=10):
                pass


async def test_a_401_rereads_a_rotated_token_file_and_retries_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old-token")

    def rotate_then_refuse(request: Request) -> Reply:
        token.write_text("new-token")
        return Reply.failure(401, "Unauthorized", "expired")

    async with (
        open_stream_server(handler=rotate_then_refuse) as server,
        Client(config(server.url, auth=TokenFileAuth(token))) as client,
    ):
        with pytest.raises(Unauthorized):
            async with client.watch(PODS, idle_timeout=10):
                pass
    sent = [r.headers["authorization"] for r in server.requests]
    assert sent == ["Bearer old-token", "Bearer new-token"]  # one retry, not more


async def test_a_rotated_token_file_is_accepted_on_the_retry(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old-token")

    def accept_only_new(request: Request) -> Reply:
        if request.headers["authorization"] == "Bearer new-token":
            return Reply.chunks([b"{}\n"])
        token.write_text("new-token")
        return Reply.failure(401, "Unauthorized", "expired")

    async with (
        open_stream_server(handler=accept_only_new) as server,
        Client(config(server.url, auth=TokenFileAuth(token))) as client,
        client.watch(PODS, idle_timeout=10) as body,
    ):
        assert await drain(body) == (b"{}\n", True)
    assert len(server.requests) == 2


async def test_a_malformed_response_head_is_one_connection_error() -> None:
    reply = Reply.raw([b"HTTP/1.1 abc nonsense\r\n\r\n"])
    async with open_stream_server(reply) as server, Client(config(server.url)) as client:
        with pytest.raises(ConnectionFailed, match="invalid HTTP response") as info:
            async with client.watch(PODS, idle_timeout=10):
                pass
    assert "\n" not in str(info.value)


async def test_a_server_that_closes_before_answering_is_a_connection_error() -> None:
    reply = Reply.raw([Close()])
    async with open_stream_server(reply) as server, Client(config(server.url)) as client:
        with pytest.raises(ConnectionFailed, match="closed the watch before answering"):
            async with client.watch(PODS, idle_timeout=10):
                pass


async def test_a_body_that_ends_mid_chunk_is_not_complete() -> None:
    reply = Reply.raw([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly-half"])
    async with (
        open_stream_server(reply) as server,
        Client(config(server.url)) as client,
        client.watch(PODS, idle_timeout=10) as body,
    ):
        assert await drain(body) == (b"only-half", False)


# -- time ----------------------------------------------------------------------------------


async def test_a_stalled_watch_hits_the_idle_timeout(clock: trio.testing.MockClock) -> None:
    reply = Reply.chunks([b'{"type":"ADDED"}\n', Stall()])
    async with open_stream_server(reply) as server, Client(config(server.url)) as client:
        start = trio.current_time()
        with pytest.raises(Timeout, match="idle for 30s"):
            async with client.watch(PODS, idle_timeout=30) as body:
                await drain(body)
        assert 30 <= trio.current_time() - start < 31


async def test_a_slow_but_steady_watch_is_not_idle(clock: trio.testing.MockClock) -> None:
    reply = Reply.chunks([b"a", Pause(20), b"b", Pause(20), b"c"])
    async with (
        open_stream_server(reply) as server,
        Client(config(server.url)) as client,
        client.watch(PODS, idle_timeout=30) as body,
    ):
        assert await drain(body) == (b"abc", True)


async def test_the_response_head_must_arrive_within_the_idle_timeout(
    clock: trio.testing.MockClock,
) -> None:
    async def never(request: Request) -> Reply:
        await trio.sleep_forever()
        raise AssertionError

    async with open_stream_server(handler=never) as server, Client(config(server.url)) as client:
        with pytest.raises(Timeout):
            async with client.watch(PODS, idle_timeout=5):
                pass


async def test_errors_raised_by_the_caller_inside_a_watch_are_not_remapped() -> None:
    reply = Reply.chunks([b"x", Stall()])
    async with open_stream_server(reply) as server, Client(config(server.url)) as client:
        with pytest.raises(FileNotFoundError):
            async with client.watch(PODS, idle_timeout=10):
                raise FileNotFoundError("mine")


async def test_leaving_a_watch_early_closes_its_connection() -> None:
    replies = [Reply.chunks([b"a", b"b", Stall()]), Reply(200, b"{}")]
    async with open_stream_server(*replies) as server, Client(config(server.url)) as client:
        async with client.watch(PODS, idle_timeout=10) as body:
            assert await body.receive()
        assert await client.list_page(PODS) == b"{}"
    gc.collect()


@pytest.fixture
def closed_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port


async def test_a_refused_connection_names_the_server(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    async with Client(config(url)) as client:
        with pytest.raises(ConnectionFailed) as info:
            async with client.watch(PODS, idle_timeout=5):
                pass
    assert str(info.value) == f"connection to {url} refused"


async def test_request_hooks_see_each_watch_opening() -> None:
    seen: list[tuple[str, str, int | None]] = []
    replies = [Reply.chunks([b"{}\n"]), Reply.failure(500, "InternalError", "boom")]
    async with open_stream_server(*replies) as server, Client(config(server.url)) as client:
        client.add_request_hook(lambda m, p, s, t: seen.append((m, p, s)))
        async with client.watch(PODS, {"watch": True}, idle_timeout=5) as body:
            await drain(body)
        with pytest.raises(ServerError):
            async with client.watch(PODS, idle_timeout=5):
                pass
    assert seen == [("WATCH", PODS, 200), ("WATCH", PODS, 500)]


# -- TLS -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("tls_path")
async def test_tls_with_the_right_ca(ca: CA, server_pair: Pair, tmp_path: Path) -> None:
    ssl_ctx = ca.server_context(server_pair, tmp_path)
    reply = Reply.chunks([b'{"type":"BOOKMARK"}\n'] * 50)
    async with (
        open_stream_server(reply, ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem))) as client,
        client.watch(PODS, idle_timeout=10) as body,
    ):
        assert await drain(body) == (b'{"type":"BOOKMARK"}\n' * 50, True)


@pytest.mark.usefixtures("tls_path")
async def test_tls_verification_failure_is_readable(server_pair: Pair, tmp_path: Path) -> None:
    ssl_ctx = CA("other").server_context(server_pair, tmp_path)
    async with (
        open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(ca_pem=CA("else").cert_pem))) as client,
    ):
        with pytest.raises(TLSError) as info:
            async with client.watch(PODS, idle_timeout=10):
                pass
    message = str(info.value)
    assert message.startswith(f"TLS verification of {server.url} failed: ")
    assert "unable to get local issuer certificate" in message


@pytest.mark.usefixtures("tls_path")
async def test_tls_server_name_is_used_for_sni_and_verification(ca: CA, tmp_path: Path) -> None:
    pair = ca.issue("apiserver", server=True, dns=("kubernetes.local",))
    ssl_ctx = ca.server_context(pair, tmp_path)
    replies = [Reply.chunks([b"{}\n"]), Reply.chunks([b"{}\n"])]
    async with open_stream_server(*replies, ssl_context=ssl_ctx) as server:
        plain = config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem))
        async with Client(plain) as client:
            with pytest.raises(TLSError, match=r"not valid for '127\.0\.0\.1'"):
                async with client.watch(PODS, idle_timeout=10):
                    pass
        named = TLSConfig(ca_pem=ca.cert_pem, server_name="kubernetes.local")
        async with (
            Client(config(server.url, tls=named)) as client,
            client.watch(PODS, idle_timeout=10) as body,
        ):
            assert await drain(body) == (b"{}\n", True)


@pytest.mark.usefixtures("tls_path")
async def test_insecure_skips_verification(server_pair: Pair, tmp_path: Path) -> None:
    ssl_ctx = CA("other").server_context(server_pair, tmp_path)
    async with (
        open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(insecure=True))) as client,
        client.watch(PODS, idle_timeout=10) as body,
    ):
        assert await drain(body) == (b"{}\n", True)


@pytest.mark.usefixtures("tls_path")
@pytest.mark.parametrize("key_type", ["rsa", "ec"])
async def test_the_client_certificate_is_presented(
    ca: CA, server_pair: Pair, tmp_path: Path, key_type: str
) -> None:
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    pair = ca.issue("alice", org="devs", key_type=key_type)
    tls = TLSConfig(ca_pem=ca.cert_pem, cert_pem=pair.cert_pem, key_pem=pair.key_pem)
    async with (
        open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=tls)) as client,
        client.watch(PODS, idle_timeout=10) as body,
    ):
        await drain(body)
    peer = server.requests[0].peer_certificate
    assert peer is not None and (("commonName", "alice"),) in peer["subject"]


@pytest.mark.usefixtures("tls_path")
async def test_a_missing_client_certificate_is_one_clear_error(
    ca: CA, server_pair: Pair, tmp_path: Path
) -> None:
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    async with (
        open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem))) as client,
    ):
        with pytest.raises((TLSError, ConnectionFailed)) as info:
            async with client.watch(PODS, idle_timeout=10) as body:
                await drain(body)
    assert "\n" not in str(info.value)


PLUGIN = """\
import json, os
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {
        "clientCertificateData": open(os.environ["CERT"]).read(),
        "clientKeyData": open(os.environ["KEY"]).read(),
    },
}))
"""


@pytest.mark.usefixtures("tls_path")
async def test_an_exec_plugin_client_certificate_is_used_for_the_watch(
    ca: CA, server_pair: Pair, tmp_path: Path
) -> None:
    cert, key = ca.issue("exec-user", key_type="ec").write(tmp_path, "exec")
    plugin = tmp_path / "plugin"
    plugin.write_text(f"#!{sys.executable}\n{PLUGIN}")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    auth = ExecAuth(
        ExecConfig(
            command=str(plugin),
            env=(("CERT", str(cert)), ("KEY", str(key))),
            interactive_mode="Never",
        )
    )
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    async with open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server:
        cfg = config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem), auth=auth)
        async with Client(cfg) as client, client.watch(PODS, idle_timeout=10) as body:
            await drain(body)
    assert server.requests[0].peer_certificate is not None
    assert "authorization" not in server.requests[0].headers


# -- relays: torn TLS records, handshake drops, CONNECT proxies ----------------------------


@asynccontextmanager
async def open_relay(
    target: int | None = None, *, slice_size: int = 0, close_after: int | None = None
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP relay on 127.0.0.1 to port `target`, or, without one, an HTTP proxy that
    opens CONNECT tunnels (recording each request head). `slice_size` > 0 forwards the
    server's bytes in pieces that small with pauses between them, so TLS records are
    torn across the client's reads; `close_after` reads that many bytes from the client
    and closes (a server dying in the handshake)."""
    heads: list[bytes] = []

    async def pump(src: trio.SocketStream, dst: trio.SocketStream, tear: bool) -> None:
        try:
            while data := await src.receive_some(65536):
                if tear and slice_size:
                    for i in range(0, len(data), slice_size):
                        await dst.send_all(data[i : i + slice_size])
                        await trio.sleep(0.001)
                else:
                    await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.move_on_after(1):
                await dst.aclose()

    async def serve(client: trio.SocketStream) -> None:
        if close_after is not None:
            await client.receive_some(close_after)
            await client.aclose()
            return
        if target is None:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await client.receive_some(65536)
            heads.append(head)
            host, port = head.split(b" ")[1].decode().rsplit(":", 1)
            upstream = await trio.open_tcp_stream(host, int(port))
            await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream = await trio.open_tcp_stream("127.0.0.1", target)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, upstream, False)
            nursery.start_soon(pump, upstream, client, True)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, listeners)
        yield f"127.0.0.1:{port}", heads
        nursery.cancel_scope.cancel()


@pytest.mark.usefixtures("tls_path")
async def test_tls_records_torn_across_reads_are_put_back_together(
    ca: CA, server_pair: Pair, tmp_path: Path
) -> None:
    line = b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"%d"}}}\n'
    events = [line % i for i in range(20)]
    ssl_ctx = ca.server_context(server_pair, tmp_path)
    async with (
        open_stream_server(Reply.chunks(events), ssl_context=ssl_ctx) as server,
        open_relay(server.port, slice_size=7) as (relay, _),
    ):
        cfg = config(f"https://{relay}", tls=TLSConfig(ca_pem=ca.cert_pem))
        async with Client(cfg) as client, client.watch(PODS, idle_timeout=10) as body:
            assert await drain(body) == (b"".join(events), True)


@pytest.mark.usefixtures("tls_path")
async def test_a_server_that_closes_during_the_handshake_is_one_clear_error(
    ca: CA,
) -> None:
    async with open_relay(close_after=10) as (relay, _):
        cfg = config(f"https://{relay}", tls=TLSConfig(ca_pem=ca.cert_pem))
        async with Client(cfg) as client:
            with pytest.raises((ConnectionFailed, TLSError)) as info:
                async with client.watch(PODS, idle_timeout=10):
                    pass
    assert relay in str(info.value) and "\n" not in str(info.value)


@pytest.mark.usefixtures("tls_path")
async def test_an_https_server_is_watched_through_an_http_proxy_tunnel(
    ca: CA, server_pair: Pair, tmp_path: Path
) -> None:
    ssl_ctx = ca.server_context(server_pair, tmp_path)
    async with (
        open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server,
        open_relay() as (proxy, heads),
    ):
        cfg = config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem), proxy=f"http://{proxy}")
        async with Client(cfg) as client, client.watch(PODS, idle_timeout=10) as body:
            assert await drain(body) == (b"{}\n", True)
    assert heads[0].startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n".encode())
    assert server.requests[0].path == PODS


async def test_an_http_server_is_watched_through_a_proxy_with_an_absolute_target() -> None:
    async with open_stream_server(Reply.chunks([b"{}\n"])) as proxy:
        cfg = config("http://kubernetes.invalid:6443", proxy=proxy.url)
        async with Client(cfg) as client, client.watch(PODS, {"watch": 1}, idle_timeout=5) as b:
            assert await drain(b) == (b"{}\n", True)
    assert proxy.requests[0].target == f"http://kubernetes.invalid:6443{PODS}?watch=1"


@pytest.mark.usefixtures("tls_path")
async def test_a_watch_speaks_http_1_1_even_when_requests_may_use_http2(
    ca: CA, server_pair: Pair, tmp_path: Path
) -> None:
    """httpx sets ALPN h2 on the context it is given; the watch must not offer h2, or a
    server that prefers it answers in HTTP/2 framing."""
    ssl_ctx = ca.server_context(server_pair, tmp_path)
    ssl_ctx.set_alpn_protocols(["h2", "http/1.1"])
    async with (
        open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem)), http2=True) as client,
    ):
        # What httpcore does to its context on its first HTTP/2-capable connection.
        client.ssl_context.set_alpn_protocols(["http/1.1", "h2"])
        async with client.watch(PODS, idle_timeout=10) as body:
            assert await drain(body) == (b"{}\n", True)


@pytest.mark.usefixtures("tls_path")
async def test_records_larger_than_the_read_buffer_arrive_whole(
    ca: CA, server_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More plaintext than one buffer holds (records of 4 KB into 1 KB buffers): the
    rest waits in the TLS object for the next receive, nothing is lost or resized."""
    monkeypatch.setattr(connection, "READ_SIZE", 1000)
    line = b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"1"}}}'
    events = [line + b" " * 3000 + b"\n" for _ in range(30)]
    ssl_ctx = ca.server_context(server_pair, tmp_path)
    async with (
        open_stream_server(Reply.chunks(events), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem))) as client,
        client.watch(PODS, idle_timeout=10) as body,
    ):
        assert await drain(body) == (b"".join(events), True)
