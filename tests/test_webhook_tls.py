"""The webhook server on a real socket: TLS 1.2 or newer from tls.crt/tls.key, the
certificate re-read when the files change (garbage keeps the old one serving, one error
line), a plain-HTTP request on the TLS port, a slow client, and start-up errors."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import trio
import trio.testing
from cryptography import x509

from trio_controller.errors import TrioControllerError
from trio_controller.observe.serving import IDLE_TIMEOUT
from trio_controller.runtime.webhooks import CertWatcher, WebhookServer, deny
from trio_controller.testing import ServingCert, write_serving_cert

VALIDATE = "/validate-example-com-v1-widget"
REVIEW = orjson.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "operation": "CREATE", "object": {"spec": {}}},
    }
)


@asynccontextmanager
async def running(cert_dir: Path) -> AsyncIterator[tuple[WebhookServer, int]]:
    server = WebhookServer("127.0.0.1:0", cert_dir)
    server.add_validating("example.com", "v1", "Widget", lambda r: deny("spec.message: no"))
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(server.run)
        yield server, listener.socket.getsockname()[1]
        nursery.cancel_scope.cancel()


def client_context(cert: ServingCert, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=cert.ca_pem.decode())
    context.set_alpn_protocols(["http/1.1"])
    for name, version in versions.items():
        setattr(context, name, version)
    return context


async def post(port: int, context: ssl.SSLContext) -> tuple[bytes, int, str | None]:
    """One review over a fresh TLS connection: the response, the served certificate's
    serial number and the TLS version."""
    stream = await trio.open_ssl_over_tcp_stream(
        "127.0.0.1", port, ssl_context=context, https_compatible=True
    )
    async with stream:
        await stream.do_handshake()
        der = stream.getpeercert(binary_form=True)
        version = stream.version()
        head = (
            f"POST {VALIDATE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(REVIEW)}\r\nConnection: close\r\n\r\n"
        ).encode()
        await stream.send_all(head + REVIEW)
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    assert der is not None
    return answer, x509.load_der_x509_certificate(der).serial_number, version


def serial(cert: ServingCert) -> int:
    return x509.load_pem_x509_certificate(cert.cert_file.read_bytes()).serial_number


async def test_reviews_are_answered_over_tls_1_2_and_the_context_refuses_older(
    tmp_path: Path,
) -> None:
    cert = write_serving_cert(tmp_path)
    async with running(tmp_path) as (server, port):
        answer, served, version = await post(
            port, client_context(cert, maximum_version=ssl.TLSVersion.TLSv1_2)
        )
        _, _, newest = await post(port, client_context(cert))
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"message":"spec.message: no"' in answer
    assert served == serial(cert)
    assert version == "TLSv1.2"
    assert newest == "TLSv1.3"
    assert server.certs.context is not None
    assert server.certs.context.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_a_plain_http_request_on_the_tls_port_is_dropped_and_tls_clients_go_on(
    tmp_path: Path,
) -> None:
    cert = write_serving_cert(tmp_path)
    async with running(tmp_path) as (_, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"POST /validate-example-com-v1-widget HTTP/1.1\r\nHost: x\r\n\r\n")
        plain = b""
        with trio.fail_after(10):
            try:
                while chunk := await stream.receive_some():
                    plain += chunk
            except trio.BrokenResourceError:
                pass  # reset by the server: dropped all the same
        await stream.aclose()
        answer, _, _ = await post(port, client_context(cert))
    assert b"HTTP/1.1" not in plain  # no HTTP answer in clear text
    assert answer.startswith(b"HTTP/1.1 200")


async def test_garbage_certificate_files_keep_the_old_certificate_with_one_error_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert = write_serving_cert(tmp_path)
    old = serial(cert)
    async with running(tmp_path) as (server, port):
        cert.cert_file.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
        cert.key_file.write_bytes(b"not a key")
        with caplog.at_level(logging.INFO, logger="trio_controller.runtime.webhooks.certs"):
            for _ in range(3):  # three polls of the same garbage
                server.certs.reload_if_changed()
        _, served_during_garbage, _ = await post(port, client_context(cert))
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        caplog.clear()
        rotated = write_serving_cert(tmp_path)  # a valid pair again, same CA
        with caplog.at_level(logging.INFO, logger="trio_controller.runtime.webhooks.certs"):
            assert server.certs.reload_if_changed()
        _, served_after, _ = await post(port, client_context(cert))
    assert served_during_garbage == old
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("Keeping the current webhook certificate: cannot load")
    assert errors[0].exc_info is None
    assert "\n" not in errors[0].getMessage()
    assert served_after == serial(rotated) != old
    assert [r.getMessage() for r in caplog.records] == [
        f"Loaded a new webhook serving certificate from {tmp_path / 'tls.crt'}"
    ]


async def test_a_key_that_does_not_match_the_new_certificate_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert = write_serving_cert(tmp_path)
    old_key = cert.key_file.read_bytes()
    old = serial(cert)
    async with running(tmp_path) as (server, port):
        # The new certificate with the old key, in one step: the server's own poll never
        # sees the new pair (written beside, only its certificate moved in).
        new = write_serving_cert(tmp_path / "new")
        new.cert_file.replace(cert.cert_file)  # atomic: no half-written file to poll
        assert cert.key_file.read_bytes() == old_key
        with caplog.at_level(logging.ERROR):
            server.certs.reload_if_changed()  # the poll may have tried it first: once
        _, served, _ = await post(port, client_context(cert))
    assert served == old != serial(cert)
    # One error line for the change (the poll and the call above see it once between them).
    ours = [r for r in caplog.records if r.name == "trio_controller.runtime.webhooks.certs"]
    assert len(ours) == 1
    assert "KEY_VALUES_MISMATCH" in ours[0].getMessage()


async def test_the_watcher_polls_and_loads_a_rotated_pair(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    write_serving_cert(tmp_path)
    watcher = CertWatcher(tmp_path, interval=2.0)
    watcher.load()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.watch)
        await trio.sleep(5)
        unchanged = watcher.reloads
        write_serving_cert(tmp_path)
        await trio.sleep(2.5)
        nursery.cancel_scope.cancel()
    assert unchanged == 0
    assert watcher.reloads == 1


async def test_missing_certificate_files_stop_the_start_with_one_line(tmp_path: Path) -> None:
    server = WebhookServer("127.0.0.1:0", tmp_path / "nothing")
    with pytest.raises(TrioControllerError) as caught:
        await server.run()
    message = str(caught.value)
    assert message.startswith(f"cannot load the webhook serving certificate {tmp_path}")
    assert "No such file or directory" in message and "\n" not in message


async def test_a_slow_client_is_closed_after_the_idle_timeout_while_others_are_served(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cert = write_serving_cert(tmp_path)
    async with running(tmp_path) as (_, port):
        slow = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", port, ssl_context=client_context(cert), https_compatible=True
        )
        await slow.send_all(b"POST /validate-example-com-v1-widget HTTP/1.1\r\nHost: x\r\n")
        answer, _, _ = await post(port, client_context(cert))
        start = trio.current_time()
        with trio.fail_after(IDLE_TIMEOUT * 2):
            try:
                rest = await slow.receive_some()
            except trio.BrokenResourceError:
                rest = b""
        closed_after = trio.current_time() - start
        await slow.aclose()
    assert answer.startswith(b"HTTP/1.1 200")
    assert rest == b""
    assert 0 < closed_after <= IDLE_TIMEOUT


async def test_a_client_sending_more_than_3_mib_reads_the_413_instead_of_a_reset(
    tmp_path: Path,
) -> None:
    cert = write_serving_cert(tmp_path)
    async with running(tmp_path) as (server, port):
        url = f"https://127.0.0.1:{port}{VALIDATE}"
        async with httpx.AsyncClient(verify=client_context(cert)) as http:
            big = await http.post(url, content=b" " * (4 * 1024 * 1024))

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(64):
                    yield b" " * 65536

            streamed = await http.post(url, content=chunks())
            after = await http.post(url, content=REVIEW)
    assert big.status_code == 413
    assert big.json()["response"]["status"]["message"] == (
        "request body is larger than 3145728 bytes"
    )
    assert streamed.status_code == 413
    assert after.status_code == 200
    assert server.stats.requests[(VALIDATE, "413")] == 2
