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


def imported_after(code: str) -> set[str]:
    """The names of HEAVY (and trio, httpx) modules imported by `code` in a fresh
    interpreter."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import sys
        watched = {(*HEAVY, "trio", "httpx", "argparse")!r}
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
