"""One byte connection to the apiserver for a watch: TCP, an HTTP proxy's CONNECT tunnel,
TLS through a native rustls session (`_native.TlsSession`, when the context has a native
twin: transport/tls.py) or `ssl.SSLObject` over `ssl.MemoryBIO`.

    conn = await open_connection(url, ssl_context, server_name=..., proxy=..., timeout=30)
    await conn.send_all(request)
    data = await conn.receive()      # everything one socket read brought, decrypted
    conn.close()

With a native session (`conn.tls_session`), a watch body skips the decryption here: each
`receive_encrypted()` is one socket read as it came, which the informer core decrypts and
decodes in one call (`InformerCore.feed_tls`), so the plaintext never crosses into Python.

Trio's `SSLStream` hands back one TLS record per `receive_some`; the apiserver writes a
record per ~4 KB event, so that would be one Trio round trip per event. Here one socket
read (up to `READ_SIZE`, into a reused buffer) is decrypted record after record before
control returns: a burst of events costs one wake-up and one FFI call downstream. The
native session decrypts a whole socket read in one call (bench/tls_native.py: about 1.6x
less CPU per 4 KB record than `SSLObject`); its failures are raised as the `ssl` errors
OpenSSL would raise for the same cause, so `map_exceptions` words them the same.

Errors are left to the caller's `map_exceptions` (OSError, ssl.SSLError, Trio's), except
the ones only this file can name (a proxy refusing the tunnel, a server closing during
the handshake).

`StreamConnection` has the same interface over any `trio.abc.Stream` (an in-process
server on `trio.testing.memory_stream_pair()`, the simulation in tests/sim/): plain bytes,
one `receive_some` per `receive`, so the socket variant keeps its `recv_into` path.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
import urllib.parse

import trio

from trio_controller._native import (
    DecodeError,
    ResponseHead,
    TlsConfig,
    TlsSession,
    TlsSessionError,
    parse_response_head,
)
from trio_controller.errors import ConnectionFailed, ConnectionLost
from trio_controller.transport.tls import drop_native, native_config

__all__ = [
    "READ_SIZE",
    "ByteConnection",
    "Connection",
    "StreamConnection",
    "as_ssl_error",
    "open_connection",
    "read_head",
]

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
MAX_HEAD = 64 * 1024


class Connection:
    """A connected socket, plain or TLS. Not safe for concurrent readers."""

    def __init__(self, sock: trio.socket.SocketType, tls: ssl.SSLObject | None = None) -> None:
        self._sock = sock
        self._raw = sock._sock  # the stdlib socket under Trio's (non-blocking)
        self._drained = True  # the last read left the socket empty
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._tls = tls
        self._plain_buf = bytearray(READ_SIZE)  # decrypted bytes of one receive()
        self._plain = memoryview(self._plain_buf)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._native: TlsSession | None = None
        self._early = b""  # plaintext that arrived with the end of a native handshake
        self.eof = False

    # -- plain socket ----------------------------------------------------------------

    async def _send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = await self._sock.send(view)
            view = view[sent:]

    async def _recv(self) -> int:
        """One socket read into the buffer: its size, 0 at the end of the stream.

        Trio's `recv_into` tries the read, catches BlockingIOError, then waits; at the
        apiserver's pace (one event per read at low rates) that failed read is the
        common case. So after a read that left the socket empty, wait first; after a
        full one, read again at once (one checkpoint, so other tasks still run).
        """
        raw = self._raw
        if self._drained:
            await trio.lowlevel.wait_readable(raw)
        else:
            await trio.lowlevel.checkpoint()
        while True:
            try:
                n = raw.recv_into(self._buf)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(raw)
                continue
            self._drained = n < len(self._buf)
            return n

    async def _receive_raw(self) -> bytes:
        n = await self._recv()
        return bytes(self._view[:n])

    # -- TLS -------------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """The TLS handshake through `context`, over whatever this connection carries
        (a proxy tunnel too)."""
        tls = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                n = await self._recv()
                if n == 0:
                    raise ConnectionFailed(
                        "the server closed the connection during the TLS handshake"
                    ) from None
                self._in.write(self._view[:n])
        await self._flush()
        protocol = tls.selected_alpn_protocol()
        if protocol not in (None, "http/1.1"):
            raise ConnectionFailed(f"the server chose {protocol} (ALPN); watches speak HTTP/1.1")
        self._tls = tls

    async def start_native_tls(self, config: TlsConfig, server_hostname: str) -> None:
        """The TLS handshake in a native (rustls) session; its failures raised as the
        `ssl` errors OpenSSL raises for the same cause."""
        try:
            session = config.session(server_hostname, time.time())
            early = []
            while True:
                out = session.take_output()
                if out:
                    await self._send_raw(out)
                if not session.handshaking:
                    break
                n = await self._recv()
                if n == 0:
                    raise ConnectionFailed(
                        "the server closed the connection during the TLS handshake"
                    )
                early.append(session.receive(self._view[:n]))
        except TlsSessionError as exc:
            raise as_ssl_error(exc) from None
        protocol = session.alpn_protocol
        if protocol not in (None, "http/1.1"):
            raise ConnectionFailed(f"the server chose {protocol} (ALPN); watches speak HTTP/1.1")
        self._early = b"".join(early)
        self._native = session

    async def _flush(self) -> None:
        if self._out.pending:
            await self._send_raw(self._out.read())

    async def send_all(self, data: bytes) -> None:
        native = self._native
        if native is not None:
            try:
                native.write(data)
            except TlsSessionError as exc:
                raise as_ssl_error(exc) from None
            await self._send_raw(native.take_output())
            return
        if self._tls is None:
            await self._send_raw(data)
            return
        self._tls.write(data)
        await self._flush()

    async def _receive_native(self, session: TlsSession) -> bytes:
        if self._early:
            data, self._early = self._early, b""
            return data
        while not session.eof:
            n = await self._recv()
            try:
                data = session.receive(self._view[:n])
            except TlsSessionError as exc:
                raise as_ssl_error(exc) from None
            out = session.take_output()  # post-handshake answers (TLS 1.3 key updates)
            if out:
                await self._send_raw(out)
            if data:
                self.eof = session.eof
                return data
        self.eof = True
        return b""

    @property
    def tls_session(self) -> TlsSession | None:
        """The native (rustls) session this connection's TLS runs in, or None (plain, or
        Python's ssl)."""
        return self._native

    async def receive_encrypted(self) -> memoryview:
        """One socket read of a native TLS connection as it came (TLS records), for the
        session's owner to decrypt (`InformerCore.feed_tls(conn.tls_session, data, now)`);
        empty once the stream ended (the peer closed, or its close_notify was
        decrypted). The view is valid until the next receive. First sends what the
        session has to answer (a TLS 1.3 key update). Plaintext left from the handshake
        or a `receive()` comes only from `receive()`."""
        session = self._native
        assert session is not None, "receive_encrypted() needs a native TLS session"
        if session.wants_write:
            await self._send_raw(session.take_output())
        if session.eof:
            self.eof = True
            return self._view[:0]
        n = await self._recv()
        self.eof = n == 0
        return self._view[:n]

    async def receive(self) -> bytes:
        """The next bytes (b"" at the end of the stream), every TLS record that one socket
        read completed decrypted and joined."""
        if self._native is not None:
            return await self._receive_native(self._native)
        tls = self._tls
        if tls is None:
            data = await self._receive_raw()
            self.eof = not data
            return data
        incoming = self._in
        plain = self._plain
        limit = len(plain)
        while True:
            size = 0
            try:
                # One record per read(), decrypted into a reused buffer (read(n) alone
                # would allocate n bytes per record); stop without the WantRead
                # exception when the socket read ended on a record boundary (the usual
                # case). After the peer closed, read once more: it raises the alert or
                # the EOF.
                # A full buffer returns; what is left stays in the BIO for the next call.
                while (incoming.pending or tls.pending() or incoming.eof) and size < limit:
                    n = tls.read(limit - size, plain[size:])
                    if n == 0:
                        break
                    size += n
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self.eof = True  # close_notify, or the peer just closed (the body
                # framing tells a complete body from a torn one)
            if self._out.pending:  # post-handshake messages (TLS 1.3 key updates)
                await self._flush()
            if size or self.eof:
                return bytes(plain[:size])
            n = await self._recv()
            if n == 0:
                self._in.write_eof()
            else:
                self._in.write(self._view[:n])

    def close(self) -> None:
        self._sock.close()


def as_ssl_error(exc: TlsSessionError) -> ssl.SSLError:
    """The `ssl` exception OpenSSL raises for the cause rustls reported (same wording)."""
    message = str(exc)
    if exc.verification:
        err = ssl.SSLCertVerificationError(
            1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
        )
        err.verify_message = message
        err.reason = "CERTIFICATE_VERIFY_FAILED"
    else:
        err = ssl.SSLError(1, f"[SSL: {message}] {message}")
        err.reason = message
    err.library = "SSL"
    return err


class StreamConnection:
    """`Connection`'s interface (send_all, receive, close, eof) over a `trio.abc.Stream`,
    as it is: no TLS, no proxy. Not safe for concurrent readers."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self.eof = False

    async def send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)

    @property
    def tls_session(self) -> None:
        """No native TLS session: the stream's bytes are what `receive` gives."""
        return None

    async def receive(self) -> bytes:
        """The next bytes (b"" at the end of the stream), one `receive_some` of them."""
        data = bytes(await self._stream.receive_some(READ_SIZE))
        self.eof = not data
        return data

    def close(self) -> None:
        """Close now (the callers close from synchronous code): a stream with a
        synchronous `close()` (memory and lockstep streams), a `StapledStream` of such,
        or, for any other, `aclose_forcefully` in a system task."""
        _close_now(self._stream)


ByteConnection = Connection | StreamConnection
"""What a watch reads from: a socket (`open_connection`) or any Trio stream."""


def _close_now(stream: trio.abc.AsyncResource) -> None:
    if isinstance(stream, trio.StapledStream):
        halves = (stream.send_stream, stream.receive_stream)
        if all(callable(getattr(half, "close", None)) for half in halves):
            for half in halves:
                half.close()  # type: ignore[attr-defined]
            return
    close = getattr(stream, "close", None)
    if callable(close):
        close()
        return
    trio.lowlevel.spawn_system_task(trio.aclose_forcefully, stream)


async def _connect(host: str, port: int) -> Connection:
    stream = await trio.open_tcp_stream(host, port)
    sock = stream.socket
    return Connection(sock)


def _host_port(url: urllib.parse.SplitResult) -> tuple[str, int]:
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    return host, port


def authority(url: urllib.parse.SplitResult) -> str:
    """`host:port` as a Host header or CONNECT target names it (IPv6 in brackets)."""
    host, port = _host_port(url)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


async def read_head(
    conn: ByteConnection, what: str, exchange: str = "connection"
) -> tuple[ResponseHead, bytes]:
    """The response head from `conn` (a watch's, or a proxy's CONNECT answer) and the
    bytes after it. The peer closing first is ConnectionLost (it had accepted us);
    a head that does not parse is ConnectionFailed."""
    buf = b""
    while True:
        data = await conn.receive()
        if not data:
            raise ConnectionLost(f"{what} closed the {exchange} before answering")
        buf = buf + data if buf else data
        try:
            head = parse_response_head(buf)
        except DecodeError as exc:
            raise ConnectionFailed(f"invalid HTTP response from {what}: {exc}") from None
        if head is not None:
            return head, buf[head.length :]
        if len(buf) > MAX_HEAD:
            raise ConnectionFailed(f"invalid HTTP response from {what}: head too large")


async def _tunnel(conn: Connection, proxy: urllib.parse.SplitResult, target: str) -> None:
    """Ask an HTTP proxy for a CONNECT tunnel to `target` (kubectl's proxy-url)."""
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None:
        user = urllib.parse.unquote(proxy.username)
        password = urllib.parse.unquote(proxy.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    await conn.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
    head, rest = await read_head(conn, f"proxy {proxy.hostname}")
    status = head.status
    if status != 200:
        reason = head.reason
        raise ConnectionFailed(
            f"proxy {proxy.hostname} refused the tunnel to {target}: {status} {reason}"
        )
    if rest:
        raise ConnectionFailed(f"proxy {proxy.hostname} sent data before the tunnel opened")


async def _reach(
    server: urllib.parse.SplitResult, proxy: urllib.parse.SplitResult | None
) -> Connection:
    """A TCP connection to `server`, or to `proxy` (a CONNECT tunnel to `server` for
    https, the proxy itself for http)."""
    if proxy is None:
        return await _connect(*_host_port(server))
    if proxy.scheme != "http":
        raise ConnectionFailed(
            f"{proxy.scheme}:// proxies are not supported for watches (use an http:// proxy)"
        )
    conn = await _connect(*_host_port(proxy))
    if server.scheme == "https":
        try:
            await _tunnel(conn, proxy, authority(server))
        except BaseException:
            conn.close()
            raise
    return conn


async def open_connection(
    server: urllib.parse.SplitResult,
    ssl_context: ssl.SSLContext | None,
    *,
    server_name: str | None = None,
    proxy: urllib.parse.SplitResult | None = None,
) -> Connection:
    """Connect to `server` (through `proxy`'s CONNECT tunnel for https, or to the proxy
    itself for http), then TLS for https with SNI and verification against
    `server_name` (kubeconfig tls-server-name) or the server's host.

    TLS is native (rustls) when `ssl_context` has a native twin. A handshake rustls
    fails is tried again through `ssl_context` on a new connection, so OpenSSL decides
    as it always did (rustls is stricter in places: a CA certificate presented as the
    server's own, TLS 1.2 without ECDHE or with CBC): its error is the one raised, or,
    when it succeeds, the twin is dropped and this server's watches use Python's ssl.
    """
    conn = await _reach(server, proxy)
    if server.scheme != "https":
        return conn
    assert ssl_context is not None
    name = server_name or server.hostname or ""
    native = native_config(ssl_context)
    try:
        if native is None:
            await conn.start_tls(ssl_context, name)
            return conn
        try:
            await conn.start_native_tls(native, name)
            return conn
        except ssl.SSLError as exc:
            refused = str(exc)
        conn.close()
        conn = await _reach(server, proxy)
        await conn.start_tls(ssl_context, name)
    except BaseException:
        conn.close()
        raise
    drop_native(ssl_context)
    log.info(
        "TLS to %s: rustls refused the handshake (%s), Python's ssl accepted it; "
        "watches with these settings use Python's ssl from now on",
        authority(server),
        refused,
    )
    return conn
