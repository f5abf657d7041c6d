"""Start-up imports only what a command uses (issue 17 item 6): checked in a fresh
interpreter, since this test process has everything imported already."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.certs import CA

HEAVY = (
    "cryptography",
    "yaml",
    "prometheus_client",
    "hypercorn",
    "h11",
    "trio_controller.observe.serving",
    "trio_controller.observe.metrics",
    "trio_controller.observe.health",
)

HTTP_CLIENT = ("httpx", "httpcore", "h2")  # made on a client's first ordinary request


def imported_after(code: str) -> set[str]:
    """The names of HEAVY (and trio, the HTTP client's) modules imported by `code` in a
    fresh interpreter."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import sys
        watched = {(*HEAVY, *HTTP_CLIENT, "trio", "argparse")!r}
        print(" ".join(m for m in watched if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_importing_the_package_and_its_public_names_loads_no_optional_dependency() -> None:
    loaded = imported_after(
        """
        import trio_controller
        from trio_controller import (
            Api, Client, Controller, EventRecorder, LeaderElector, Manager,
            SharedInformerFactory, finalizer, set_condition,
        )
        """
    )
    assert not loaded & set(HEAVY), loaded
    assert "argparse" not in loaded  # only a program's own parser imports it


def test_the_names_a_manager_program_imports_load_no_http_client() -> None:
    loaded = imported_after(
        "from trio_controller import Manager, Controller, Client, Api, load_config"
    )
    assert "trio" in loaded
    assert not loaded & {*HEAVY, *HTTP_CLIENT}, loaded


def test_a_client_imports_httpx_on_its_first_ordinary_request_only() -> None:
    loaded = imported_after(
        """
        import trio
        from trio_controller import Client, ClusterConfig, ConnectionFailed

        async def main():
            async with Client(ClusterConfig(server="http://127.0.0.1:1")) as client:
                client.watch_endpoint()
                assert "httpx" not in sys.modules
                try:
                    await client.request_json("GET", "/version")
                except ConnectionFailed:
                    pass

        import sys
        trio.run(main)
        """
    )
    assert "httpx" in loaded


def test_a_bare_import_of_the_package_does_not_even_load_trio() -> None:
    assert imported_after("import trio_controller") == set()


def test_version_imports_neither_trio_nor_the_http_client() -> None:
    loaded = imported_after(
        """
        from trio_controller.programs.pods.cli import main
        try:
            main(["--version"])
        except SystemExit:
            pass
        """
    )
    assert not loaded & {"trio", "httpx", *HEAVY}, loaded


def test_a_client_certificate_and_ca_load_without_cryptography(tmp_path: Path) -> None:
    ca = CA()
    pair = ca.issue("admin")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    cert, key = pair.write(tmp_path, "admin")
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:1', "
        f"certificate-authority: '{tmp_path / 'ca.crt'}'}}}}]\n"
        f"users: [{{name: u, user: {{client-certificate: '{cert}', client-key: '{key}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    loaded = imported_after(
        f"""
        from trio_controller import load_config
        from trio_controller.transport.tls import build_ssl_context
        build_ssl_context(load_config({str(config)!r}).tls)
        """
    )
    assert "cryptography" not in loaded
    assert "yaml" in loaded  # reading a kubeconfig is what PyYAML is for


def test_serving_metrics_is_what_loads_prometheus_client() -> None:
    loaded = imported_after(
        """
        from trio_controller.observe.metrics import Metrics
        Metrics()
        """
    )
    assert "prometheus_client" in loaded
