"""µs per ~4 KB TLS record decrypted by the watch transport's two TLS paths, on buffers:
Python's `ssl.SSLObject` over `MemoryBIO` (read as transport/connection.py reads) against
the native rustls session (`_native.TlsSession.receive`, one call per socket read).

    .venv/bin/python bench/tls_native.py [--records 4096] [--rounds 7]

The server end is Python's ssl in both cases (records of 4096 bytes of plaintext, as
the apiserver writes about one record per event). Two shapes of socket read: a burst
(64 records per read, as under load) and one record per read (a quiet stream).
Rounds interleave the two paths; the medians of process CPU time are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.certs import CA  # the tests' throwaway CA

from trio_controller._native import TlsConfig

RECORD = 4096


def _server(ca: CA, folder: Path) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    ctx = ca.server_context(ca.issue("s", server=True, dns=("s",)), folder)
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    return ctx.wrap_bio(s_in, s_out, server_side=True), s_in, s_out


def _records(server: ssl.SSLObject, s_out: ssl.MemoryBIO, count: int) -> list[bytes]:
    payload = b"x" * RECORD
    out = []
    for _ in range(count):
        server.write(payload)
        out.append(s_out.read())
    return out


def python_reader(ca: CA, folder: Path, count: int) -> tuple[Callable[[bytes], bytes], list, str]:
    server, s_in, s_out = _server(ca, folder)
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(c_in, c_out, server_hostname="s")
    for _ in range(10):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        if c_out.pending:
            s_in.write(c_out.read())
        if s_out.pending:
            c_in.write(s_out.read())
    plain_buf = bytearray(256 * 1024)
    plain = memoryview(plain_buf)
    limit = len(plain)

    def receive(data: bytes) -> bytes:  # connection.py's Connection.receive, minus the socket
        c_in.write(data)
        size = 0
        try:
            while (c_in.pending or client.pending()) and size < limit:
                n = client.read(limit - size, plain[size:])
                if n == 0:
                    break
                size += n
        except ssl.SSLWantReadError:
            pass
        return bytes(plain[:size])

    cipher = client.cipher()
    return receive, _records(server, s_out, count), cipher[0] if cipher else "?"


def native_reader(ca: CA, folder: Path, count: int) -> tuple[Callable[[bytes], bytes], list, str]:
    server, s_in, s_out = _server(ca, folder)
    session = TlsConfig(ca_pem=ca.cert_pem).session("s", time.time())
    for _ in range(10):
        out = session.take_output()
        if out:
            s_in.write(out)
        with contextlib.suppress(ssl.SSLWantReadError):
            server.do_handshake()
        if s_out.pending:
            session.receive(s_out.read())
    assert not session.handshaking
    return session.receive, _records(server, s_out, count), session.cipher or "?"


def measure(make, ca: CA, folder: Path, count: int, per_read: int) -> tuple[float, str]:
    receive, records, cipher = make(ca, folder, count)
    reads = [b"".join(records[i : i + per_read]) for i in range(0, count, per_read)]
    got = 0
    start = time.process_time()  # CPU time: the machine is shared
    for chunk in reads:
        got += len(receive(chunk))
    seconds = time.process_time() - start
    assert got == count * RECORD, (got, count * RECORD)
    return seconds / count * 1e6, cipher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ca = CA()
    results: dict[tuple[str, int], list[float]] = {}
    ciphers: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for per_read in (64, 1):
                for name, make in (("ssl.SSLObject", python_reader), ("rustls", native_reader)):
                    us, cipher = measure(make, ca, Path(tmp), args.records, per_read)
                    results.setdefault((name, per_read), []).append(us)
                    ciphers[name] = cipher
    print(f"{ssl.OPENSSL_VERSION}; ciphers: {ciphers}")
    print(f"µs per {RECORD}-byte record, median of {args.rounds} interleaved rounds:")
    for per_read in (64, 1):
        py = statistics.median(results[("ssl.SSLObject", per_read)])
        rs = statistics.median(results[("rustls", per_read)])
        print(
            f"  {per_read:>2} record(s) per read: ssl.SSLObject {py:.2f}  rustls {rs:.2f}"
            f"  ({py / rs:.2f}x)"
        )


if __name__ == "__main__":
    main()
