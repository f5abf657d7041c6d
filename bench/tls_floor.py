"""What one ~4 KB TLS record costs to decrypt through Python's `ssl` (SSLObject over
MemoryBIO, as the watch transport reads), against the raw cipher in `openssl speed`.

    .venv/bin/python bench/tls_floor.py [--records 3000]

The apiserver sends about one TLS record per 4 KB pod event, so this is a floor under
the CPU per event of any Python client over TLS, ours included: OpenSSL's record layer
(per-record work around the AES-GCM itself) costs several times the cipher.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.certs import CA  # the tests' throwaway CA


def _pair(folder: Path) -> tuple[ssl.SSLObject, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    ca = CA()
    server_ctx = ca.server_context(ca.issue("s", server=True, dns=("s",)), folder)
    client_ctx = ssl.create_default_context()
    client_ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="s")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        if c_out.pending:
            s_in.write(c_out.read())
        if s_out.pending:
            c_in.write(s_out.read())
    return client, server, c_in, s_out


def decrypt_us(records: int) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        client, server, c_in, s_out = _pair(Path(tmp))
        payload = b"x" * 4096
        for _ in range(records):
            server.write(payload)
        c_in.write(s_out.read())
        view = memoryview(bytearray(256 * 1024))
        start = time.perf_counter()
        for _ in range(records):
            client.read(len(view), view)
        seconds = time.perf_counter() - start
        cipher = client.cipher()
        return (cipher[0] if cipher else "?"), seconds / records * 1e6


def openssl_speed_us() -> float | None:
    """µs per 4 KB of AES-256-GCM by `openssl speed` (the cipher alone), if installed."""
    try:
        out = subprocess.run(
            ["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", "1", "-bytes", "4096"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.search(r"AES-256-GCM\s+([\d.]+)k", out)
    return 4096 / (float(match.group(1)) * 1000) * 1e6 if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    args = parser.parse_args()
    cipher, us = decrypt_us(args.records)
    print(f"{ssl.OPENSSL_VERSION}, {cipher}: {us:.2f} µs to read one 4 KB record")
    raw = openssl_speed_us()
    if raw is not None:
        print(f"openssl speed, AES-256-GCM alone: {raw:.2f} µs per 4 KB")


if __name__ == "__main__":
    main()
