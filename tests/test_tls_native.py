"""The watch transport's native TLS (rustls sessions over buffers, `_native.TlsSession`):
the same failures in the same words as Python's ssl, the kubeconfig settings it takes and
the ones it leaves to Python's ssl, records torn anywhere, the end of a stream.

The scripted server (Python's ssl) is the peer; the real apiserver's side of the same is
in tests/e2e/test_cli_kubeconfigs.py (run on both paths)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import random
import socket
import ssl
import struct
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers.certs import CA, Pair
from streamserver import Reply, open_stream_server

from trio_controller._native import (
    BodyDecoder,
    InformerCore,
    Store,
    TlsConfig,
    TlsSession,
    TlsSessionError,
)
from trio_controller.cache.reflector import Reflector
from trio_controller.cache.sink import CoreSink, EventHandlers, Handlers
from trio_controller.config import ClusterConfig, TLSConfig
from trio_controller.errors import ConnectionFailed, ConnectionLost, TLSError
from trio_controller.transport import tls
from trio_controller.transport.client import Client

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


def dated_pair(ca: CA, *, days_from_now: int) -> Pair:
    """A server certificate for 127.0.0.1 valid for one day starting `days_from_now`."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days_from_now)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "dated")]))
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Pair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


async def watch_once(url: str, tls_config: TLSConfig, *, native: bool) -> tuple[bytes, bool]:
    """One watch to `url` on the chosen TLS path: its payload, and whether the native
    session carried it."""
    saved = tls.NATIVE_TLS
    tls.NATIVE_TLS = native
    try:
        async with Client(ClusterConfig(server=url, tls=tls_config)) as client:
            used = tls.native_config(client.watch_ssl_context) is not None
            async with client.watch(PODS, idle_timeout=10) as body:
                decoder = BodyDecoder(body.chunked, body.content_length)
                out = b""
                while not decoder.done:
                    data = await body.receive()
                    if not data:
                        break
                    out += decoder.feed(data)
        return out, used
    finally:
        tls.NATIVE_TLS = saved


async def failure_on(url: str, tls_config: TLSConfig, *, native: bool) -> str:
    with pytest.raises((TLSError, ConnectionFailed, ConnectionLost)) as info:
        await watch_once(url, tls_config, native=native)
    return f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize(
    "case", ["unknown CA", "wrong name", "expired", "not yet valid", "no client certificate"]
)
async def test_failures_read_the_same_on_both_tls_paths(ca: CA, tmp_path: Path, case: str) -> None:
    trusted = ca.cert_pem
    require = False
    if case == "unknown CA":
        pair = ca.issue("apiserver", server=True, ips=("127.0.0.1",))
        trusted = CA("elsewhere").cert_pem
    elif case == "wrong name":
        pair = ca.issue("apiserver", server=True, dns=("kubernetes.local",))
    elif case == "expired":
        pair = dated_pair(ca, days_from_now=-3)
    elif case == "not yet valid":
        pair = dated_pair(ca, days_from_now=3)
    else:
        pair = ca.issue("apiserver", server=True, ips=("127.0.0.1",))
        require = True
    ssl_ctx = ca.server_context(pair, tmp_path, require_client_cert=require)
    replies = [Reply.chunks([b"{}\n"]), Reply.chunks([b"{}\n"])]
    async with open_stream_server(*replies, ssl_context=ssl_ctx) as server:
        native = await failure_on(server.url, TLSConfig(ca_pem=trusted), native=True)
        python = await failure_on(server.url, TLSConfig(ca_pem=trusted), native=False)
    if require:
        # The server's alert races its RST (our request is unread when it closes): the
        # error depends on timing on either path, so only its form is compared.
        assert server.url in native and server.url in python
    else:
        assert native == python
    assert "\n" not in native and "\n" not in python


async def test_a_certificate_only_openssl_accepts_still_connects_then_skips_rustls(
    ca: CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A self-signed CA certificate as the server's own (what ``openssl req -x509`` makes):
    webpki refuses a CA as an end entity, OpenSSL accepts it as a trusted certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "self-signed")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ssl_ctx = ca.server_context(Pair(cert_pem, key_pem), tmp_path)
    tls.NATIVE_TLS, saved = True, tls.NATIVE_TLS
    caplog.set_level(logging.INFO, logger="trio_controller.transport.connection")
    try:
        replies = [Reply.chunks([b"{}\n"]), Reply.chunks([b"{}\n"])]
        async with (
            open_stream_server(*replies, ssl_context=ssl_ctx) as server,
            Client(ClusterConfig(server=server.url, tls=TLSConfig(ca_pem=cert_pem))) as client,
        ):
            assert tls.native_config(client.watch_ssl_context) is not None
            for _ in range(2):
                async with client.watch(PODS, idle_timeout=10) as body:
                    assert await body.receive()
            assert tls.native_config(client.watch_ssl_context) is None
    finally:
        tls.NATIVE_TLS = saved
    notes = [r.getMessage() for r in caplog.records if "rustls refused" in r.getMessage()]
    assert len(notes) == 1 and "CaUsedAsEndEntity" in notes[0], notes
    # Two requests: OpenSSL's retry and the second watch (the refused handshake sent none).
    assert len(server.requests) == 2


async def test_a_reset_during_a_native_handshake_is_a_connection_failure(ca: CA) -> None:
    async def reset_at_once(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)  # the ClientHello
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), reset_at_once, 0)
        url = f"https://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        message = await failure_on(url, TLSConfig(ca_pem=ca.cert_pem), native=True)
        nursery.cancel_scope.cancel()
    assert message.startswith("ConnectionLost: ") and url in message, message


@pytest.mark.parametrize(
    ("case", "words", "verification"),
    [
        ("unknown CA", "unable to get local issuer certificate", True),
        ("wrong name", "Hostname mismatch, certificate is not valid for 'elsewhere'.", True),
        ("expired", "certificate has expired", True),
    ],
)
def test_a_session_names_a_refused_certificate_in_openssls_words(
    ca: CA, tmp_path: Path, case: str, words: str, verification: bool
) -> None:
    trusted = CA("elsewhere") if case == "unknown CA" else ca
    pair = dated_pair(ca, days_from_now=-3) if case == "expired" else None
    name = "elsewhere" if case == "wrong name" else "s"
    with pytest.raises(TlsSessionError) as info:
        _pair(ca, tmp_path, trusted=trusted, server=pair, name=name)
    assert str(info.value) == words
    assert info.value.verification is verification


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
@pytest.mark.parametrize(
    "key_format",
    [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8],
    ids=["traditional", "pkcs8"],
)
async def test_client_keys_of_each_type_and_format_are_presented_natively(
    ca: CA, tmp_path: Path, key_type: str, key_format: serialization.PrivateFormat
) -> None:
    server_pair = ca.issue("apiserver", server=True, ips=("127.0.0.1",))
    ssl_ctx = ca.server_context(server_pair, tmp_path, require_client_cert=True)
    pair = ca.issue("bob", key_type=key_type, key_format=key_format)
    settings = TLSConfig(ca_pem=ca.cert_pem, cert_pem=pair.cert_pem, key_pem=pair.key_pem)
    async with open_stream_server(Reply.chunks([b"{}\n"]), ssl_context=ssl_ctx) as server:
        assert await watch_once(server.url, settings, native=True) == (b"{}\n", True)
    peer = server.requests[0].peer_certificate
    assert peer is not None and (("commonName", "bob"),) in peer["subject"]


def test_settings_without_a_ca_stay_on_pythons_ssl_and_the_switch_turns_native_off(
    ca: CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system store (no certificate-authority) is OpenSSL's to read: no native twin."""
    assert tls.native_config(tls.build_ssl_context(TLSConfig())) is None
    assert tls.native_config(tls.build_ssl_context(TLSConfig(insecure=True))) is not None
    assert tls.native_config(tls.build_ssl_context(TLSConfig(ca_pem=ca.cert_pem))) is not None
    monkeypatch.setattr(tls, "NATIVE_TLS", False)
    assert tls.native_config(tls.build_ssl_context(TLSConfig(ca_pem=ca.cert_pem))) is None


def test_an_exec_plugin_certificate_reaches_the_native_twin(ca: CA) -> None:
    ctx = tls.build_ssl_context(TLSConfig(ca_pem=ca.cert_pem))
    before = tls.native_config(ctx)
    pair = ca.issue("exec", key_type="rsa")
    tls.load_client_certificate(ctx, pair.cert_pem, pair.key_pem)
    after = tls.native_config(ctx)
    assert after is not None and after is not before


def test_unusable_pem_is_one_value_error_line() -> None:
    with pytest.raises(ValueError, match="no PEM certificate") as info:
        TlsConfig(ca_pem=b"not a certificate")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="certificate-authority"):
        TlsConfig(ca_pem=b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# -- the session on its own, against Python's ssl over memory -------------------------


def _pair(
    ca: CA,
    folder: Path,
    *,
    trusted: CA | None = None,
    server: Pair | None = None,
    name: str = "s",
) -> tuple[TlsSession, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A session to a Python ssl server end over memory, handshake done."""
    pair = server or ca.issue("s", server=True, dns=("s",))
    server_ctx = ca.server_context(pair, folder)
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    end = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    session = TlsConfig(ca_pem=(trusted or ca).cert_pem).session(name, time.time())
    for _ in range(10):
        if out := session.take_output():
            s_in.write(out)
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLError):
            end.do_handshake()
        if s_out.pending:
            assert session.receive(s_out.read()) == b""
    assert not session.handshaking and session.alpn_protocol is None
    return session, end, s_in, s_out


def test_records_torn_at_any_byte_come_out_whole_and_in_order(ca: CA, tmp_path: Path) -> None:
    session, server, _, s_out = _pair(ca, tmp_path)
    rng = random.Random(7)
    sent = [bytes([i % 251]) * rng.randint(1, 20000) for i in range(60)]
    for piece in sent:
        server.write(piece)
    wire = s_out.read()
    got = b""
    at = 0
    while at < len(wire):
        step = rng.choice((1, 5, 100, 4096, 70000))
        got += session.receive(wire[at : at + step])
        at += step
    assert got == b"".join(sent)
    assert not session.eof


def test_close_notify_and_a_dropped_socket_both_end_the_stream(ca: CA, tmp_path: Path) -> None:
    session, server, _, s_out = _pair(ca, tmp_path)
    server.write(b"last words")
    with contextlib.suppress(ssl.SSLWantReadError):
        server.unwrap()
    assert session.receive(s_out.read()) == b"last words"
    assert session.eof
    dropped, server, _, s_out = _pair(ca, tmp_path)
    server.write(b"half")
    assert dropped.receive(s_out.read()) == b"half" and not dropped.eof
    assert dropped.receive(b"") == b"" and dropped.eof


def test_garbage_on_the_wire_is_a_protocol_error_and_stays_one(ca: CA, tmp_path: Path) -> None:
    session, *_ = _pair(ca, tmp_path)
    with pytest.raises(TlsSessionError) as first:
        session.receive(b"\x17\x03\x03\x00\x05hello")
    assert first.value.verification is False
    with pytest.raises(TlsSessionError):
        session.receive(b"")


def test_a_request_written_to_the_session_reaches_the_server(ca: CA, tmp_path: Path) -> None:
    session, server, s_in, _ = _pair(ca, tmp_path)
    session.write(b"GET / HTTP/1.1\r\n\r\n")
    s_in.write(session.take_output())
    assert server.read(1000) == b"GET / HTTP/1.1\r\n\r\n"


# -- ciphertext straight into the informer core (`InformerCore.feed_tls`) --------------


def _pods_stream(count: int) -> bytes:
    """Watch lines (unframed) for `count` pods: each added, then the first modified."""
    from helpers.watch import event, pod

    lines = [event("ADDED", pod(f"p{i}", 10 + i)) for i in range(count)]
    lines.append(event("MODIFIED", pod("p0", 10 + count)))
    return b"".join(lines)


def test_the_core_decrypts_and_applies_records_torn_anywhere_in_one_call_per_read(
    ca: CA, tmp_path: Path
) -> None:
    session, server, _, s_out = _pair(ca, tmp_path)
    plain = _pods_stream(40)
    rng = random.Random(11)
    at = 0
    while at < len(plain):  # records of every size, as the server's flushes make them
        step = rng.randint(1, 9000)
        server.write(plain[at : at + step])
        at += step
    wire = s_out.read()
    store = Store()
    core = InformerCore(store, changes=True)
    core.begin(None)
    applied, at = 0, 0
    changes: list[tuple[str, str]] = []
    while at < len(wire):
        step = rng.choice((1, 7, 300, 4096, 20000))
        read = bytearray(wire[at : at + step])  # a socket read lands in a bytearray
        applied += core.feed_tls(session, memoryview(read), 1.0).applied
        changes += [(kind, key) for kind, key, *_ in core.take_changes()]
        at += step
    assert applied == 41
    assert len(store) == 40 and store.resource_version == "50"
    assert store.object_resource_version("default/p0") == "50"
    assert changes[-1] == ("MODIFIED", "default/p0") and len(changes) == 41
    assert core.pending_bytes == 0 and not session.eof


def test_a_bad_record_fed_to_the_core_is_a_tls_error_that_applies_nothing_of_that_read(
    ca: CA, tmp_path: Path
) -> None:
    session, server, _, s_out = _pair(ca, tmp_path)
    server.write(_pods_stream(1))
    good = s_out.read()
    store = Store()
    core = InformerCore(store)
    core.begin(None)
    assert core.feed_tls(session, good, 1.0).applied == 2
    server.write(_pods_stream(3))
    with pytest.raises(TlsSessionError) as info:
        core.feed_tls(session, s_out.read() + b"\x17\x03\x03\x00\x05hello", 1.0)
    assert info.value.verification is False and "\n" not in str(info.value)
    assert store.list_keys() == ["default/p0"] and store.resource_version == "11"
    with pytest.raises(TlsSessionError):  # the session stays failed
        core.feed_tls(session, b"", 1.0)


def test_close_notify_fed_to_the_core_ends_the_session_after_its_last_events(
    ca: CA, tmp_path: Path
) -> None:
    session, server, _, s_out = _pair(ca, tmp_path)
    server.write(_pods_stream(2))
    with contextlib.suppress(ssl.SSLWantReadError):
        server.unwrap()
    core = InformerCore(Store())
    core.begin(None)
    assert core.feed_tls(session, s_out.read(), 1.0).applied == 3
    assert session.eof and not session.wants_write


async def test_a_watch_over_native_tls_goes_to_the_core_encrypted_and_keeps_every_event(
    ca: CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reflector hands the core each socket read still encrypted (after the bytes
    that came with the head); a dropped watch resumes on a new session; an
    `EventHandlers` consumer sees client-go's add/update/delete."""
    from helpers.watch import event, pod, pod_list
    from streamserver import Close, Stall

    fed: list[int] = []
    apply_tls = CoreSink.apply_tls

    def counting(self: CoreSink, session: TlsSession, data: bytes, *rest: object) -> object:
        fed.append(len(data))
        return apply_tls(self, session, data, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(CoreSink, "apply_tls", counting)
    monkeypatch.setattr(tls, "NATIVE_TLS", True)
    seen: list[tuple[str, str, str]] = []

    def name_rv(obj: Any) -> str:
        return f"{obj['metadata']['name']}@{obj['metadata']['resourceVersion']}"

    handlers = EventHandlers(
        on_add=lambda new: seen.append(("add", "", name_rv(new))),
        on_update=lambda old, new: seen.append(("update", name_rv(old), name_rv(new))),
        on_delete=lambda old: seen.append(("delete", name_rv(old), "")),
    )
    pair = ca.issue("apiserver", server=True, ips=("127.0.0.1",))
    replies = [
        pod_list(10, pod("a", 5), pod("b", 6)),
        Reply.chunks([event("MODIFIED", pod("a", 11)), event("ADDED", pod("c", 12)), Close()]),
        Reply.chunks([event("DELETED", pod("b", 13)), Stall()]),
    ]
    store = Store()
    sink = CoreSink(store)
    sink.add_consumer(Handlers(handlers))
    async with (
        open_stream_server(*replies, ssl_context=ca.server_context(pair, tmp_path)) as server,
        Client(ClusterConfig(server=server.url, tls=TLSConfig(ca_pem=ca.cert_pem))) as client,
    ):
        assert tls.native_config(client.watch_ssl_context) is not None
        reflector = Reflector(client, PODS, sink)
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reflector.run)
                while store.resource_version != "13":  # noqa: ASYNC110
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
    assert sorted(store.list_keys()) == ["default/a", "default/c"]
    assert sorted(seen[:2]) == [("add", "", "a@5"), ("add", "", "b@6")]  # the list
    assert seen[2:] == [  # the watch events, in order
        ("update", "a@5", "a@11"),
        ("add", "", "c@12"),
        ("delete", "b@13", ""),  # the DELETED event's object: the last state
    ]
    assert fed, "no read reached the core encrypted"


async def test_a_bad_record_in_a_native_watch_is_one_tls_error_line(ca: CA, tmp_path: Path) -> None:
    """A server end that sends a valid head and event, then a record it did not encrypt."""
    from helpers.watch import event, pod

    pair = ca.issue("apiserver", server=True, ips=("127.0.0.1",))
    server_ctx = ca.server_context(pair, tmp_path)

    async def serve(stream: trio.SocketStream) -> None:
        tls_stream = trio.SSLStream(stream, server_ctx, server_side=True)
        await tls_stream.receive_some(65536)  # the request
        line = event("ADDED", pod("a", 5))
        await tls_stream.send_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n" % (len(line), line)
        )
        await first_applied.wait()  # not in the same socket read as the event
        await stream.send_all(b"\x17\x03\x03\x00\x05hello")
        await trio.sleep_forever()

    first_applied = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), serve, 0)
            url = f"https://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            settings = TLSConfig(ca_pem=ca.cert_pem)
            async with (
                Client(ClusterConfig(server=url, tls=settings)) as client,
                client.watch(PODS, idle_timeout=10) as body,
            ):
                assert body.tls is not None
                core = InformerCore(Store())
                core.begin(body.head)
                applied = core.feed(body.take_first(), 0.0).applied
                while not applied:
                    data = await body.receive_encrypted()
                    applied += core.feed_tls(body.tls, data, 0.0).applied
                first_applied.set()
                with pytest.raises(TlsSessionError) as info:
                    while True:
                        core.feed_tls(body.tls, await body.receive_encrypted(), 0.0)
                error = body.tls_error(info.value)
            nursery.cancel_scope.cancel()
    assert applied == 1
    assert isinstance(error, TLSError)
    assert str(error).startswith(f"TLS handshake with {url} failed: ") and "\n" not in str(error)
