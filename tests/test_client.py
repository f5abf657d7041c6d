"""The client: request shape, error mapping, streams, TLS and auth on the wire.

Most tests here talk to `tests/streamserver.py`, a scripted HTTP server on 127.0.0.1.
That is fault injection (a real apiserver cannot be made to answer 429 or stall on cue);
"works with Kubernetes" is tested in tests/e2e/ against a real kube-apiserver.
"""

from __future__ import annotations

import copy
import logging
import socket
import ssl
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from helpers.certs import CA, Pair
from streamserver import Reply, Request, open_stream_server

from trio_controller import errors
from trio_controller.auth import BearerTokenAuth, Credentials, ExecAuth, ExecConfig, TokenFileAuth
from trio_controller.config import ClusterConfig, TLSConfig
from trio_controller.errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    NotFound,
    ServerError,
    Timeout,
    TLSError,
    TooManyRequests,
    Unauthorized,
)
from trio_controller.transport import client as client_module
from trio_controller.transport.client import USER_AGENT, Client

SECRET = "s3cr3t-token-value"
PODS = "/api/v1/namespaces/default/pods"


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


def config(url: str, **kw: Any) -> ClusterConfig:
    return ClusterConfig(server=url, **kw)


def status_body(code: int, reason: str, message: str) -> bytes:
    return Reply.failure(code, reason, message).body  # type: ignore[return-value]


# -- errors (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (410, Gone),
        (429, TooManyRequests),
        (500, ServerError),
        (503, ServerError),
        (400, ApiError),
    ],
)
def test_errors_are_built_from_a_status_body(code: int, cls: type[ApiError]) -> None:
    err = errors.from_response(code, status_body(code, "SomeReason", "it went\nwrong"))
    assert type(err) is cls
    assert (err.status, err.reason, err.message) == (code, "SomeReason", "it went\nwrong")
    assert str(err) == f"{code} SomeReason: it went wrong"


def test_error_without_a_status_body_keeps_one_short_line() -> None:
    err = errors.from_response(502, b"<html>\n<body>bad gateway</body>\n</html>" + b"x" * 500)
    assert isinstance(err, ServerError)
    assert str(err).startswith("502 Bad Gateway: <html> <body>bad gateway")
    assert "\n" not in str(err) and len(str(err)) < 260


def test_retry_after_comes_from_the_header_or_the_status_details() -> None:
    err = errors.from_response(429, b"", "7")
    assert isinstance(err, TooManyRequests) and err.retry_after == 7.0
    body = orjson.dumps(
        {
            "kind": "Status",
            "code": 429,
            "reason": "TooManyRequests",
            "details": {"retryAfterSeconds": 2},
        }
    )
    err = errors.from_response(429, body)
    assert isinstance(err, TooManyRequests) and err.retry_after == 2.0
    assert errors.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert errors.parse_retry_after("soon") is None


def test_watch_error_events_become_api_errors() -> None:
    class Event:
        code = 410
        reason = "Expired"
        message = "too old resource version: 1 (5)"

    err = errors.from_watch_error(Event())
    assert isinstance(err, Gone) and "too old resource version" in str(err)


# -- requests ------------------------------------------------------------------------------


async def test_list_page_returns_the_raw_body_and_sends_params() -> None:
    """Scripted server (fault-injection harness, no fault here): the request we send."""
    body = b'{"kind":"PodList","items":[]}'
    async with open_stream_server(Reply(200, body)) as server:
        cfg = config(server.url, auth=BearerTokenAuth(SECRET))
        async with Client(cfg) as client:
            params = {"limit": 500, "continue": "abc", "labelSelector": "app=x", "watch": False}
            assert await client.list_page(PODS, params) == body
    (request,) = server.requests
    assert request.path == PODS
    assert request.query == {
        "limit": ["500"],
        "continue": ["abc"],
        "labelSelector": ["app=x"],
        "watch": ["false"],
    }
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["accept"] == "application/json"


async def test_server_path_prefix_and_disable_compression() -> None:
    """Scripted server (fault-injection harness, no fault here): a proxied apiserver URL."""
    async with (
        open_stream_server(Reply(200, b"{}")) as server,
        Client(config(server.url + "/k8s/clusters/c1", disable_compression=True)) as c,
    ):
        await c.list_page(PODS)
    assert server.requests[0].path == "/k8s/clusters/c1" + PODS
    assert server.requests[0].headers["accept-encoding"] == "identity"


async def test_request_json_sends_and_parses_json() -> None:
    """Scripted server (fault-injection harness, no fault here): create and delete calls."""
    created = {"kind": "Pod", "metadata": {"name": "p"}}
    async with (
        open_stream_server(Reply.json(created, 201), Reply(200, b"")) as server,
        Client(config(server.url)) as client,
    ):
        assert await client.request_json("POST", PODS, {"metadata": {"name": "p"}}) == created
        assert await client.request_json("DELETE", PODS + "/p") is None
    post, delete = server.requests
    assert (post.method, orjson.loads(post.body)) == ("POST", {"metadata": {"name": "p"}})
    assert post.headers["content-type"] == "application/json"
    assert delete.method == "DELETE"


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (401, "Unauthorized", Unauthorized),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (409, "AlreadyExists", Conflict),
        (410, "Expired", Gone),
        (500, "InternalError", ServerError),
    ],
)
async def test_error_statuses_raise_typed_errors(code: int, reason: str, cls: type) -> None:
    """Fault injection: the server answers with an error Status."""
    reply = Reply.failure(code, reason, f"injected {code}")
    async with open_stream_server(reply, reply) as server, Client(config(server.url)) as client:
        with pytest.raises(cls) as info:
            await client.list_page(PODS)
        assert str(info.value) == f"{code} {reason}: injected {code}"
        with pytest.raises(cls):
            await client.request_json("POST", PODS, {})


async def test_429_carries_retry_after() -> None:
    """Fault injection: the server throttles with Retry-After."""
    reply = Reply.failure(429, "TooManyRequests", "slow down", headers=[("Retry-After", "3")])
    async with open_stream_server(reply) as server, Client(config(server.url)) as client:
        with pytest.raises(TooManyRequests) as info:
            await client.list_page(PODS)
    assert info.value.retry_after == 3.0


# -- connection failures -------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port


async def test_refused_connection_names_the_server(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    async with Client(config(url)) as client:
        with pytest.raises(ConnectionFailed) as info:
            await client.list_page(PODS)
    assert str(info.value) == f"connection to {url} refused"


async def test_unresolvable_host_is_a_connection_failure() -> None:
    async with Client(config("https://no-such-host.invalid:6443")) as client:
        with trio.fail_after(30), pytest.raises(ConnectionFailed) as info:
            await client.list_page(PODS)
    assert "no-such-host.invalid" in str(info.value)


# -- TLS -----------------------------------------------------------------------------------


async def test_tls_with_the_right_ca(ca: CA, server_pair: Pair, tmp_path: Path) -> None:
    """Scripted TLS server (fault-injection harness, no fault here)."""
    ssl_ctx = ca.server_context(server_pair, tmp_path)
    async with open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server:
        cfg = config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem))
        async with Client(cfg, http2=True) as client:
            assert await client.list_page(PODS) == b"{}"


async def test_tls_verification_failure_is_readable(server_pair: Pair, tmp_path: Path) -> None:
    """Fault injection: the server's certificate is signed by a CA we do not trust."""
    ssl_ctx = CA("other").server_context(server_pair, tmp_path)
    other = CA("someone-else")
    async with (
        open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(ca_pem=other.cert_pem))) as client,
    ):
        with pytest.raises(TLSError) as info:
            await client.list_page(PODS)
    message = str(info.value)
    assert message.startswith(f"TLS verification of {server.url} failed: ")
    assert "unable to get local issuer certificate" in message


async def test_tls_server_name_is_used_for_verification(ca: CA, tmp_path: Path) -> None:
    """Fault injection: the certificate does not name 127.0.0.1, only kubernetes.local."""
    pair = ca.issue("apiserver", server=True, dns=("kubernetes.local",))
    ssl_ctx = ca.server_context(pair, tmp_path)
    async with open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server:
        plain = config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem))
        async with Client(plain) as client:
            with pytest.raises(
                TLSError, match=r"mismatch, certificate is not valid for '127\.0\.0\.1'"
            ):
                await client.list_page(PODS)
        named = config(
            server.url, tls=TLSConfig(ca_pem=ca.cert_pem, server_name="kubernetes.local")
        )
        async with Client(named) as client:
            assert await client.list_page(PODS) == b"{}"


async def test_insecure_skips_verification(
    server_pair: Pair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injection: an untrusted certificate, accepted because insecure is set."""
    ssl_ctx = CA("other").server_context(server_pair, tmp_path)
    async with (
        open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(insecure=True))) as client,
    ):
        assert await client.list_page(PODS) == b"{}"


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
async def test_client_certificate_is_presented(
    ca: CA, server_pair: Pair, tmp_path: Path, key_type: str
) -> None:
    """Scripted TLS server requiring a client certificate (harness, no fault here)."""
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    client_pair = ca.issue("alice", org="devs", key_type=key_type)
    tls = TLSConfig(ca_pem=ca.cert_pem, cert_pem=client_pair.cert_pem, key_pem=client_pair.key_pem)
    async with (
        open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=tls)) as client,
    ):
        await client.list_page(PODS)
    peer = server.requests[0].peer_certificate
    assert peer is not None
    assert (("commonName", "alice"),) in peer["subject"]


async def test_missing_client_certificate_is_a_tls_error(
    ca: CA, server_pair: Pair, tmp_path: Path
) -> None:
    """Fault injection: the server demands a client certificate we do not have."""
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    async with (
        open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server,
        Client(config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem))) as client,
    ):
        with pytest.raises((TLSError, ConnectionFailed)):
            await client.list_page(PODS)


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


def certificate_plugin(tmp_path: Path, cert: Path, key: Path) -> ExecAuth:
    plugin = tmp_path / "plugin"
    plugin.write_text(f"#!{sys.executable}\n{PLUGIN}")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    return ExecAuth(
        ExecConfig(
            command=str(plugin),
            env=(("CERT", str(cert)), ("KEY", str(key))),
            interactive_mode="Never",
        )
    )


async def test_exec_plugin_client_certificate_is_used_for_tls(
    ca: CA, server_pair: Pair, tmp_path: Path
) -> None:
    """Scripted TLS server requiring a client certificate that an exec plugin supplies."""
    cert, key = ca.issue("exec-user", key_type="ec").write(tmp_path, "exec")
    auth = certificate_plugin(tmp_path, cert, key)
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    async with open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server:
        cfg = config(server.url, tls=TLSConfig(ca_pem=ca.cert_pem), auth=auth)
        async with Client(cfg) as client:
            assert await client.list_page(PODS) == b"{}"
    assert server.requests[0].peer_certificate is not None
    assert "authorization" not in server.requests[0].headers


async def test_credentials_load_the_exec_certificate_for_new_connections(
    ca: CA, server_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripted TLS server requiring a client certificate; a raw TLS connection stands in
    for the owned watch transport, which asks `client.credentials()` before it connects."""
    cert, key = ca.issue("exec-user", key_type="ec").write(tmp_path, "exec")
    loads: list[str] = []
    original = client_module.load_client_certificate
    monkeypatch.setattr(
        client_module,
        "load_client_certificate",
        lambda *a, **kw: (loads.append(kw["cert_source"]), original(*a, **kw)),
    )
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    async with open_stream_server(Reply(200, b"{}"), ssl_context=ssl_ctx) as server:
        cfg = config(
            server.url,
            tls=TLSConfig(ca_pem=ca.cert_pem),
            auth=certificate_plugin(tmp_path, cert, key),
        )
        async with Client(cfg) as client:
            creds = await client.credentials()
            assert creds is not None and creds.client_certificate is not None
            assert creds.authorization is None
            assert await client.credentials() is creds
            # loaded once into the watch context, not per request; the requests' context
            # is built on first use, with the certificate already in it
            assert loads == ["clientCertificateData"]
            assert isinstance(client.ssl_context, ssl.SSLContext)
            assert await client.credentials() is creds
            assert loads == ["clientCertificateData"] * 2
            stream = await trio.open_ssl_over_tcp_stream(
                "127.0.0.1", server.port, ssl_context=client.ssl_context, https_compatible=True
            )
            async with stream:
                await stream.send_all(
                    f"GET {PODS} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
                )
                answer = b""
                while chunk := await stream.receive_some():
                    answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert server.requests[0].peer_certificate is not None


async def test_an_unusable_exec_certificate_is_an_exec_plugin_error(ca: CA, tmp_path: Path) -> None:
    _, key = ca.issue("exec-user", key_type="ec").write(tmp_path, "exec")
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    auth = certificate_plugin(tmp_path, garbage, key)
    async with Client(config("https://a", auth=auth)) as client:
        with pytest.raises(errors.ExecPluginError, match="unusable client certificate") as info:
            await client.credentials()
    message = str(info.value)
    assert "plugin" in message and "clientCertificateData: not a PEM certificate" in message
    assert "PRIVATE KEY" not in message


async def test_client_leaves_its_config_and_provider_unmodified(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET)
    providers = [
        BearerTokenAuth(SECRET),
        TokenFileAuth(tmp_path / "token"),
        ExecAuth(ExecConfig(command="plugin", interactive_mode="Never")),
    ]
    for provider in providers:
        cfg = config("https://a", auth=provider)
        before_config, before_provider = copy.copy(cfg), dict(vars(provider))
        async with Client(cfg) as client:
            assert client.config is cfg
        assert cfg == before_config and cfg.auth is provider
        assert vars(provider) == before_provider


async def test_without_auth_there_are_no_credentials_to_invalidate() -> None:
    async with Client(config("https://a")) as client:
        assert await client.credentials() is None
        assert await client.invalidate(Credentials(authorization="Bearer x")) is False


async def test_invalidate_is_forwarded_to_the_provider(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    async with Client(config("https://a", auth=TokenFileAuth(path, period=3600))) as client:
        sent = await client.credentials()
        assert sent is not None
        assert await client.invalidate(sent) is False
        path.write_text("new")
        assert await client.invalidate(sent) is True
        fresh = await client.credentials()
        assert fresh is not None and fresh.authorization == "Bearer new"


# -- secrets -------------------------------------------------------------------------------


async def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Fault injection: a 401 and a 403, with every logger at DEBUG."""
    replies = [Reply.failure(401, "Unauthorized", "no"), Reply.failure(403, "Forbidden", "no")]
    with caplog.at_level(logging.DEBUG):
        async with open_stream_server(*replies) as server:
            cfg = config(server.url, auth=BearerTokenAuth(SECRET))
            async with Client(cfg) as client:
                for cls in (Unauthorized, Forbidden):
                    with pytest.raises(cls) as info:
                        await client.list_page(PODS)
                    assert SECRET not in str(info.value)
    assert caplog.records
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert SECRET not in repr(cfg)


def test_client_constructor_rejects_bad_tls_material() -> None:
    with pytest.raises(errors.KubeconfigError, match="not a PEM certificate"):
        Client(config("https://a", tls=TLSConfig(ca_pem=b"nope")))


def test_ssl_context_is_shared_with_httpx() -> None:
    client = Client(config("https://a"))
    assert isinstance(client.ssl_context, ssl.SSLContext)


async def test_proxy_url_is_used() -> None:
    """Scripted server acting as an HTTP proxy (harness, no fault): the request goes there."""
    async with open_stream_server(Reply(200, b"{}")) as proxy:
        cfg = config("http://kubernetes.invalid:6443", proxy=proxy.url)
        async with Client(cfg) as client:
            assert await client.list_page(PODS, {"limit": 1}) == b"{}"
    assert proxy.requests[0].target == f"http://kubernetes.invalid:6443{PODS}?limit=1"


async def test_slow_list_hits_the_request_timeout(clock: trio.testing.MockClock) -> None:
    """Fault injection: the server accepts a list request and never answers it."""

    async def never(request: Request) -> Reply:
        await trio.sleep_forever()
        raise AssertionError

    async with (
        open_stream_server(handler=never) as server,
        Client(config(server.url), timeout=20) as client,
    ):
        with pytest.raises(Timeout, match="timed out reading from"):
            await client.list_page(PODS)
